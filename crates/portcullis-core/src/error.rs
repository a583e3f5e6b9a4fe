//! The one protocol error type: every refusal becomes exactly one OAuth error response.

use std::borrow::Cow;

use crate::response::{AuthorizationResponse, ResponseTarget};

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
    LoginRequired,
    ConsentRequired,
    InvalidTarget,
    InvalidRequestObject,
    /// FAPI 2.0 HTTP Signatures 5.3.1.2-3: a missing or invalid HTTP message signature at a
    /// resource (an extension code, RFC 6750 §6.2).
    InvalidSignature,
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
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidRequestObject => "invalid_request_object",
            Self::InvalidSignature => "invalid_signature",
            Self::ServerError => "server_error",
        }
    }
}

/// The HTTP status of a refusal: only the statuses the RFCs give for OAuth errors (no free
/// numbers at call sites).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    /// For pages only: what the user came back to was settled meanwhile (another browser's
    /// sign-in on the same request_uri completed first, issue 17 item 7).
    Conflict,
    /// For pages only: what the user came back to has ended (a login interaction past its
    /// lifetime, issue 17 item 7).
    Gone,
    PayloadTooLarge,
    TooManyRequests,
    InternalServerError,
    ServiceUnavailable,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::Conflict => 409,
            Self::Gone => 410,
            Self::PayloadTooLarge => 413,
            Self::TooManyRequests => 429,
            Self::InternalServerError => 500,
            Self::ServiceUnavailable => 503,
        }
    }

    pub fn is_server_error(self) -> bool {
        self.code() >= 500
    }
}

/// The `WWW-Authenticate` challenge of a 401 (RFC 9110 §11.6.1), rendered in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// RFC 9449 §7.1: `DPoP`, with the error (unless the request had no credentials, RFC 6750
    /// §3.1) and the accepted proof algorithms.
    Dpop { with_error: bool },
    /// RFC 6750 §3: `Bearer`, with the error unless the request had no credentials.
    Bearer { with_error: bool },
    /// A protected resource asked without credentials: both schemes it accepts, without an
    /// error (RFC 6750 §3.1, RFC 9449 §7.1): `DPoP algs="..."`, `Bearer`.
    DpopOrBearer,
    /// RFC 6749 §5.2 / RFC 7617: a client that tried HTTP Basic authentication.
    Basic { realm: String },
}

/// The `algs` of DPoP challenges (RFC 9449 §7.1): the FAPI 2.0 algorithms (SP 5.4.1).
pub const DPOP_ALGS: &str = "PS256 ES256 EdDSA Ed25519";

/// A refusal: the RFC `error` code, the HTTP status, what must go with it (a `DPoP-Nonce`, a
/// challenge, the client's redirect URI), a public `error_description` and a private detail
/// that only goes to the logs.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub status: Status,
    pub description: Cow<'static, str>,
    /// RFC 9449 §8: a fresh nonce to send as `DPoP-Nonce`.
    pub dpop_nonce: Option<String>,
    /// The `WWW-Authenticate` challenge (401 responses).
    pub challenge: Option<Challenge>,
    /// At the authorization endpoint: where the error may be sent (RFC 6749 §4.1.2.1). `None`
    /// means it must be shown to the user, because the redirect target is not verified
    /// (AS-SP-53).
    pub redirect: Option<Box<ResponseTarget>>,
    /// Never sent to the peer.
    pub detail: Option<String>,
}

pub type OAuthResult<T> = Result<T, OAuthError>;

/// The longest `error_description` sent (and logged), in characters.
pub const MAX_DESCRIPTION: usize = 300;

impl OAuthError {
    pub fn new(code: ErrorCode, status: Status, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            status,
            description: description.into(),
            dpop_nonce: None,
            challenge: None,
            redirect: None,
            detail: None,
        }
    }

    /// RFC 6749 §5.2: 400 `invalid_request`.
    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, Status::BadRequest, d)
    }

    /// RFC 6749 §5.2: `invalid_client`, sent as 401 (AS-SP-70 allows it; CS accepts it).
    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, Status::Unauthorized, d)
    }

    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, Status::BadRequest, d)
    }

    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, Status::BadRequest, d)
    }

    pub fn invalid_dpop_proof(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidDpopProof, Status::BadRequest, d)
    }

    /// RFC 6750 §3.1: 401 `invalid_token`.
    pub fn invalid_token(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidToken, Status::Unauthorized, d)
    }

    /// RFC 9101 §6.3 / RFC 9126 §2.3: 400 `invalid_request_object`.
    pub fn invalid_request_object(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequestObject, Status::BadRequest, d)
    }

    /// RFC 8707 §2: 400 `invalid_target`.
    pub fn invalid_target(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidTarget, Status::BadRequest, d)
    }

    /// RFC 9126 §2.3 / RFC 6749 §4.1.2.1: `invalid_request_uri`.
    pub fn invalid_request_uri(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequestUri, Status::BadRequest, d)
    }

    /// RFC 9449 §8: 400 `use_dpop_nonce` with exactly one `DPoP-Nonce` header.
    pub fn use_dpop_nonce(nonce: String) -> Self {
        let mut e = Self::new(
            ErrorCode::UseDpopNonce,
            Status::BadRequest,
            "the DPoP proof must carry the nonce this server provides in the DPoP-Nonce header",
        );
        e.dpop_nonce = Some(nonce);
        e
    }

    pub fn invalid_client_metadata(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClientMetadata, Status::BadRequest, d)
    }

    pub fn invalid_redirect_uri(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRedirectUri, Status::BadRequest, d)
    }

    /// Anything that is our fault: 500 `server_error`, the cause only in the logs.
    pub fn server_error(detail: impl Into<String>) -> Self {
        let mut e = Self::new(
            ErrorCode::ServerError,
            Status::InternalServerError,
            "the server could not complete the request",
        );
        e.detail = Some(detail.into());
        e
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }

    pub fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = Some(challenge);
        self
    }

    /// At the authorization endpoint: this error may go to the client's verified redirect URI.
    pub fn redirected_to(mut self, target: &ResponseTarget) -> Self {
        self.redirect = Some(Box::new(target.clone()));
        self
    }

    /// The error response for a refusal that may be redirected to the client (RFC 6749
    /// §4.1.2.1); `None` for one that must be shown to the user (AS-SP-53).
    pub fn authorization_response(&self) -> Option<AuthorizationResponse> {
        let target = self.redirect.as_deref()?.clone();
        Some(AuthorizationResponse::Error {
            target,
            error: self.code.as_str(),
            description: self.public_description(),
        })
    }

    /// Turns an error into its protected-resource form (RFC 6750 §3, RFC 9449 §7.1, RFC 8705
    /// §3): 401 with a `WWW-Authenticate` challenge for the scheme the request used (`DPoP`
    /// unless it was `Bearer`), except `insufficient_scope` (403) and `invalid_request` (400).
    pub fn for_resource(mut self, bearer: bool) -> Self {
        self.status = match self.code {
            ErrorCode::InsufficientScope => Status::Forbidden,
            ErrorCode::InvalidRequest => Status::BadRequest,
            ErrorCode::ServerError => Status::InternalServerError,
            _ => Status::Unauthorized,
        };
        if !self.status.is_server_error() && self.challenge.is_none() {
            self.challenge = Some(if bearer {
                Challenge::Bearer { with_error: true }
            } else {
                Challenge::Dpop { with_error: true }
            });
        }
        self
    }

    /// The `WWW-Authenticate` value, if this error carries a challenge. Every value it quotes
    /// is in the RFC 6749 §5.2 character set, so it is a valid quoted-string.
    pub fn www_authenticate(&self) -> Option<String> {
        let error = |scheme: &str, with_error: bool, extra: &str| {
            if with_error {
                format!(
                    "{scheme} error=\"{}\", error_description=\"{}\"{extra}",
                    self.code.as_str(),
                    self.public_description()
                )
            } else if extra.is_empty() {
                scheme.to_owned()
            } else {
                format!("{scheme}{}", extra.trim_start_matches(','))
            }
        };
        Some(match self.challenge.as_ref()? {
            Challenge::Dpop { with_error } => error("DPoP", *with_error, &format!(", algs=\"{DPOP_ALGS}\"")),
            Challenge::Bearer { with_error } => error("Bearer", *with_error, ""),
            Challenge::DpopOrBearer => format!("DPoP algs=\"{DPOP_ALGS}\", Bearer"),
            Challenge::Basic { realm } => format!("Basic realm=\"{realm}\""),
        })
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
        let w = e.for_resource(false).www_authenticate().unwrap();
        assert!(w.is_ascii() && !w.contains('\n'), "{w}");
        // a quoted 60 KB value is cut
        let e = OAuthError::invalid_request(format!("grant_type {} is not supported", "x".repeat(60_000)));
        assert!(e.public_description().len() <= MAX_DESCRIPTION + 3);
    }

    /// RFC 9449 §7.1 / RFC 6750 §3.1: challenges are rendered in one place; a request without
    /// credentials gets no error code.
    #[test]
    fn challenges() {
        let e = OAuthError::invalid_token("no").with_challenge(Challenge::Dpop { with_error: false });
        assert_eq!(e.www_authenticate().unwrap(), format!("DPoP algs=\"{DPOP_ALGS}\""));
        let e = OAuthError::invalid_token("bad").for_resource(true);
        assert_eq!(
            e.www_authenticate().unwrap(),
            "Bearer error=\"invalid_token\", error_description=\"bad\""
        );
        let e = OAuthError::invalid_token("x").with_challenge(Challenge::Bearer { with_error: false });
        assert_eq!(e.www_authenticate().unwrap(), "Bearer");
        assert_eq!(e.status.code(), 401);
    }

    /// RFC 6749 §4.1.2.1: only an error with a verified target is redirected, with `state`.
    #[test]
    fn redirected_errors() {
        let target = ResponseTarget {
            client_id: "c1".into(),
            redirect_uri: "https://c.example/cb".into(),
            state: Some("s1".into()),
            mode: crate::response::ResponseMode::Query,
            interaction_id: String::new(),
        };
        let e = OAuthError::invalid_request("bad \"x\"").redirected_to(&target);
        let url = e.authorization_response().unwrap().redirect_url("https://as.example");
        assert_eq!(
            url,
            "https://c.example/cb?error=invalid_request&error_description=bad+%3Fx%3F&state=s1&iss=https%3A%2F%2Fas.example"
        );
        assert!(OAuthError::invalid_request("x").authorization_response().is_none());
    }

    /// The `algs` constant lists exactly the algorithms the JOSE layer accepts.
    #[test]
    fn dpop_algs_are_the_fapi_algorithms() {
        let all: Vec<&str> = portcullis_jose::Algorithm::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(DPOP_ALGS, all.join(" "));
    }
}
