//! The front-channel half of the code flow: the pushed request's secrets (PKCE verifier,
//! `state`, `nonce`), the authorization URL, and the checks on the response that comes back
//! to the redirect URI (RFC 6749 §4.1.2, RFC 9207).

use std::collections::HashMap;

use portcullis_jose::sha256_b64url;

use crate::{CallbackError, random};

/// What the caller asks for in an authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizationParams {
    pub redirect_uri: String,
    /// Space-separated scopes, e.g. `openid profile accounts`.
    pub scope: String,
    /// Further parameters (`resource`, `prompt`, `max_age`, ...), sent as given.
    pub extra: Vec<(String, String)>,
}

/// A request pushed to the server (RFC 9126) and waiting for the user: everything needed to
/// check the response and redeem the code. Keep it on the client side only (its `Debug` shows
/// no secret).
#[derive(Clone)]
pub struct PendingAuthorization {
    /// RFC 9126 §2.2: the reference to the pushed request.
    pub request_uri: String,
    /// Seconds the request_uri stays valid.
    pub expires_in: i64,
    /// The URL to send the user's browser to: `client_id` and `request_uri` only (RFC 9126 §4).
    pub authorization_url: String,
    pub redirect_uri: String,
    pub state: String,
    pub nonce: String,
    /// RFC 7636: the secret whose S256 hash went into the pushed request.
    pub code_verifier: String,
    /// The issuer the response must name (RFC 9207).
    pub issuer: String,
    /// RFC 9207 §3: whether the server announced `iss` in its responses.
    pub iss_required: bool,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("request_uri", &self.request_uri)
            .field("expires_in", &self.expires_in)
            .field("redirect_uri", &self.redirect_uri)
            .field("issuer", &self.issuer)
            .field("iss_required", &self.iss_required)
            .finish_non_exhaustive()
    }
}

/// The secrets of one authorization request, made before it is pushed.
#[derive(Clone)]
pub(crate) struct RequestSecrets {
    pub state: String,
    pub nonce: String,
    pub code_verifier: String,
}

impl RequestSecrets {
    pub fn new() -> Self {
        Self {
            state: random::token(),
            nonce: random::token(),
            code_verifier: random::token(),
        }
    }

    /// RFC 7636 §4.2: `BASE64URL(SHA256(ASCII(code_verifier)))`.
    pub fn code_challenge(&self) -> String {
        sha256_b64url(&self.code_verifier)
    }
}

/// An authorization code that passed the response checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode(pub String);

impl PendingAuthorization {
    /// Checks the authorization response the browser brought to the redirect URI (the full
    /// URL, or just its query), in this order: `iss` (RFC 9207 §2.4, also on error responses,
    /// so that another server's error is not believed), then `state` (RFC 6749 §10.12), then
    /// `error` or `code`.
    pub fn callback(&self, response: &str) -> Result<AuthorizationCode, CallbackError> {
        let query = match url::Url::parse(response) {
            Ok(u) => {
                let expected = url::Url::parse(&self.redirect_uri)
                    .map_err(|_| CallbackError::Malformed("the redirect URI does not parse".into()))?;
                if u.origin() != expected.origin() || u.path() != expected.path() {
                    return Err(CallbackError::Malformed(format!(
                        "the response came to {}, not to the redirect URI {}",
                        u.path(),
                        self.redirect_uri
                    )));
                }
                u.query().unwrap_or_default().to_owned()
            }
            Err(_) => response.trim_start_matches('?').to_owned(),
        };
        let mut params: HashMap<String, String> = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if params.insert(k.to_string(), v.into_owned()).is_some() {
                return Err(CallbackError::Repeated(k.into_owned()));
            }
        }
        match params.get("iss") {
            Some(iss) if *iss != self.issuer => {
                return Err(CallbackError::IssuerMismatch {
                    expected: self.issuer.clone(),
                    found: iss.clone(),
                });
            }
            None if self.iss_required => return Err(CallbackError::MissingIssuer),
            _ => {}
        }
        if params.get("state") != Some(&self.state) {
            return Err(CallbackError::StateMismatch);
        }
        if let Some(error) = params.get("error") {
            return Err(CallbackError::Error {
                error: error.clone(),
                description: params.get("error_description").cloned(),
            });
        }
        match params.remove("code") {
            Some(code) if !code.is_empty() => Ok(AuthorizationCode(code)),
            _ => Err(CallbackError::MissingCode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PendingAuthorization {
        PendingAuthorization {
            request_uri: "urn:ietf:params:oauth:request_uri:x".into(),
            expires_in: 60,
            authorization_url: String::new(),
            redirect_uri: "https://127.0.0.1:4000/callback".into(),
            state: "s1".into(),
            nonce: "n1".into(),
            code_verifier: "v".into(),
            issuer: "https://as.example".into(),
            iss_required: true,
        }
    }

    #[test]
    fn a_good_response_yields_the_code() {
        let p = pending();
        let url = "https://127.0.0.1:4000/callback?code=c1&state=s1&iss=https%3A%2F%2Fas.example";
        assert_eq!(p.callback(url), Ok(AuthorizationCode("c1".into())));
        // the query alone, as a user may paste it
        assert_eq!(
            p.callback("?code=c1&state=s1&iss=https%3A%2F%2Fas.example"),
            Ok(AuthorizationCode("c1".into()))
        );
    }

    #[test]
    fn a_wrong_or_missing_iss_is_refused_even_on_errors() {
        let p = pending();
        let e = p
            .callback("https://127.0.0.1:4000/callback?code=c1&state=s1&iss=https%3A%2F%2Fevil.example")
            .unwrap_err();
        assert!(matches!(e, CallbackError::IssuerMismatch { .. }), "{e}");
        assert!(e.to_string().contains("mix-up"));
        assert_eq!(
            p.callback("https://127.0.0.1:4000/callback?code=c1&state=s1"),
            Err(CallbackError::MissingIssuer)
        );
        let e = p
            .callback("https://127.0.0.1:4000/callback?error=access_denied&state=s1&iss=https%3A%2F%2Fevil.example")
            .unwrap_err();
        assert!(matches!(e, CallbackError::IssuerMismatch { .. }));
        // a server that does not announce iss may omit it
        let mut lax = pending();
        lax.iss_required = false;
        assert!(lax.callback("?code=c1&state=s1").is_ok());
    }

    #[test]
    fn a_wrong_or_missing_state_is_refused() {
        let p = pending();
        assert_eq!(
            p.callback("?code=c1&state=s2&iss=https%3A%2F%2Fas.example"),
            Err(CallbackError::StateMismatch)
        );
        assert_eq!(
            p.callback("?code=c1&iss=https%3A%2F%2Fas.example"),
            Err(CallbackError::StateMismatch)
        );
    }

    #[test]
    fn error_responses_are_reported() {
        let p = pending();
        let e = p
            .callback("?error=access_denied&error_description=the+user+said+no&state=s1&iss=https%3A%2F%2Fas.example")
            .unwrap_err();
        assert_eq!(
            e,
            CallbackError::Error {
                error: "access_denied".into(),
                description: Some("the user said no".into())
            }
        );
        assert_eq!(
            p.callback("?state=s1&iss=https%3A%2F%2Fas.example"),
            Err(CallbackError::MissingCode)
        );
    }

    #[test]
    fn repeated_parameters_and_foreign_paths_are_refused() {
        let p = pending();
        assert_eq!(
            p.callback("?code=a&code=b&state=s1&iss=https%3A%2F%2Fas.example"),
            Err(CallbackError::Repeated("code".into()))
        );
        assert!(matches!(
            p.callback("https://127.0.0.1:4000/other?code=c1&state=s1&iss=https%3A%2F%2Fas.example"),
            Err(CallbackError::Malformed(_))
        ));
    }

    #[test]
    fn pkce_challenge_is_s256_of_the_verifier() {
        // RFC 7636 Appendix B
        let s = RequestSecrets {
            state: String::new(),
            nonce: String::new(),
            code_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        };
        assert_eq!(s.code_challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}
