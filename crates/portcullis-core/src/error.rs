//! The one protocol error type: every refusal becomes exactly one OAuth error response.

use std::borrow::Cow;

/// RFC 6749 §5.2, RFC 6750 §3.1, RFC 7591 §3.2.2, RFC 9126 §2.3 and RFC 9449 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    InvalidRequestUri,
    InvalidDpopProof,
    UseDpopNonce,
    InvalidToken,
    InsufficientScope,
    InvalidClientMetadata,
    InvalidRedirectUri,
    ServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::InvalidRequestUri => "invalid_request_uri",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::ServerError => "server_error",
        }
    }
}

/// A refusal: the RFC `error` code, the HTTP status, the headers that must go with it, a public
/// `error_description` and a private detail that only goes to the logs.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub status: u16,
    pub description: Cow<'static, str>,
    /// RFC 9449 §8: a fresh nonce to send as `DPoP-Nonce`.
    pub dpop_nonce: Option<String>,
    /// RFC 6750 §3 / RFC 9449 §7.1: the `WWW-Authenticate` value for 401 responses.
    pub www_authenticate: Option<String>,
    /// Never sent to the peer.
    pub detail: Option<String>,
}

pub type OAuthResult<T> = Result<T, OAuthError>;

/// The longest `error_description` sent (and logged), in characters.
pub const MAX_DESCRIPTION: usize = 300;

impl OAuthError {
    pub fn new(code: ErrorCode, status: u16, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            status,
            description: description.into(),
            dpop_nonce: None,
            www_authenticate: None,
            detail: None,
        }
    }

    /// RFC 6749 §5.2: 400 `invalid_request`.
    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, 400, d)
    }

    /// RFC 6749 §5.2: `invalid_client`, sent as 401 (AS-SP-70 allows it; CS accepts it).
    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, 401, d)
    }

    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, 400, d)
    }

    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, 400, d)
    }

    pub fn invalid_dpop_proof(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidDpopProof, 400, d)
    }

    /// RFC 9449 §8: 400 `use_dpop_nonce` with exactly one `DPoP-Nonce` header.
    pub fn use_dpop_nonce(nonce: String) -> Self {
        let mut e = Self::new(
            ErrorCode::UseDpopNonce,
            400,
            "the DPoP proof must carry the nonce this server provides in the DPoP-Nonce header",
        );
        e.dpop_nonce = Some(nonce);
        e
    }

    pub fn invalid_client_metadata(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClientMetadata, 400, d)
    }

    pub fn invalid_redirect_uri(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRedirectUri, 400, d)
    }

    /// Anything that is our fault: 500 `server_error`, the cause only in the logs.
    pub fn server_error(detail: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorCode::ServerError, 500, "the server could not complete the request");
        e.detail = Some(detail.into());
        e
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Turns an error into its protected-resource form (RFC 6750 §3, RFC 9449 §7.1): 401 with a
    /// `WWW-Authenticate: DPoP` challenge, except `insufficient_scope` (403) and
    /// `invalid_request` (400).
    pub fn for_resource(mut self, algs: &str) -> Self {
        self.status = match self.code {
            ErrorCode::InsufficientScope => 403,
            ErrorCode::InvalidRequest => 400,
            ErrorCode::ServerError => 500,
            _ => 401,
        };
        if self.status != 500 && self.www_authenticate.is_none() {
            let desc = self.public_description();
            self.www_authenticate = Some(format!(
                "DPoP error=\"{}\", error_description=\"{}\", algs=\"{}\"",
                self.code.as_str(),
                desc,
                algs
            ));
        }
        self
    }

    /// The JSON body (RFC 6749 §5.2). 5xx never says more than `server_error`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": self.code.as_str(),
            "error_description": self.public_description(),
        })
    }

    /// RFC 6749 §5.2 (AS-SP-70): `error_description` uses only %x20-21 / %x23-5B / %x5D-7E.
    /// Descriptions may quote what the client sent, so anything else becomes `?`, and a
    /// description is cut at [`MAX_DESCRIPTION`] characters (a quoted 60 KB value must not be
    /// echoed and logged whole).
    pub fn public_description(&self) -> String {
        let mut out: String = self
            .description
            .chars()
            .take(MAX_DESCRIPTION)
            .map(|c| {
                if matches!(c, ' '..='~') && c != '"' && c != '\\' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if self.description.chars().nth(MAX_DESCRIPTION).is_some() {
            out.push_str("...");
        }
        out
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for OAuthError {}

/// A storage failure; always becomes `server_error`.
#[derive(Debug, thiserror::Error)]
#[error("storage error: {0}")]
pub struct StoreError(pub String);

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        OAuthError::server_error(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AS-SP-70: whatever a description quotes, the wire form stays in the allowed set, and so
    /// does the WWW-Authenticate value built from it.
    #[test]
    fn descriptions_are_sanitised() {
        let e = OAuthError::invalid_request("grant_type \"x\\y\" é\n is not supported");
        let d = e.body()["error_description"].as_str().unwrap().to_owned();
        assert_eq!(d, "grant_type ?x?y? ?? is not supported");
        let w = e.for_resource("ES256").www_authenticate.unwrap();
        assert!(w.is_ascii() && !w.contains('\n'), "{w}");
        // a quoted 60 KB value is cut
        let e = OAuthError::invalid_request(format!("grant_type {} is not supported", "x".repeat(60_000)));
        assert!(e.public_description().len() <= MAX_DESCRIPTION + 3);
    }
}
