//! The authorization endpoint (SP 5.3.2.2, RFC 9126 §4): only `client_id` + `request_uri` from a
//! PAR count; the response goes by redirect with `code`, `state` and `iss` (RFC 9207).

use crate::model::{AuthorizationCode, AuthorizationRequest, Grant, Session};
use crate::par::REQUEST_URI_PREFIX;
use crate::provider::Provider;
use crate::random::{credential, hash};

/// A refusal at the authorization endpoint: either it may go to the client's redirect_uri, or it
/// must be shown to the user because the redirect target cannot be trusted (AS-SP-53).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationFailure {
    Page { status: u16, message: String },
    Redirect(String),
}

impl AuthorizationFailure {
    fn page(status: u16, message: impl Into<String>) -> Self {
        Self::Page {
            status,
            message: message.into(),
        }
    }
}

/// A valid pushed request, waiting for login and consent.
#[derive(Debug, Clone)]
pub struct PendingAuthorization {
    pub request_uri_hash: String,
    pub request: AuthorizationRequest,
    pub client_name: String,
    /// When the request was pushed (for `prompt=login`).
    pub pushed_at: i64,
}

/// What the authorization endpoint does next for a pending request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Ask the user to log in.
    Login,
    /// Ask for consent (asked on every authorization).
    Consent,
    /// End with an error response (e.g. `login_required` for `prompt=none`).
    Redirect(String),
}

/// What the user decided on the consent page.
#[derive(Debug, Clone)]
pub enum Decision {
    /// The user allowed it, signed in at `auth_time` for `login_request` (a request_uri hash).
    Allow {
        sub: String,
        auth_time: i64,
        login_request: Option<String>,
    },
    Deny,
}

impl Provider {
    /// Resolves an authorization request (front channel). Extra parameters are ignored
    /// (AS-SP-49): only the pushed ones count. A `request_uri` stays usable until the
    /// authorization completes (AS-SP-44).
    pub async fn begin_authorization(
        &self,
        query: &[(String, String)],
    ) -> Result<PendingAuthorization, AuthorizationFailure> {
        let get = |name: &str| {
            query
                .iter()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.as_str())
        };
        let Some(client_id) = get("client_id") else {
            return Err(AuthorizationFailure::page(
                400,
                "The authorization request has no client_id.",
            ));
        };
        let client = match self.client(client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Err(AuthorizationFailure::page(
                    400,
                    "The authorization request names an unknown client.",
                ));
            }
            Err(e) => return Err(server_failure(&e)),
        };
        let Some(request_uri) = get("request_uri") else {
            // SP 5.3.2.2-3 (AS-SP-47): PAR is required. Redirect only to a registered URI.
            let description = "pushed authorization requests (PAR) are required: send only client_id and request_uri";
            return Err(match get("redirect_uri") {
                Some(r) if client.client.metadata.redirect_uris.iter().any(|x| x == r) => {
                    AuthorizationFailure::Redirect(self.error_redirect(r, "invalid_request", description, get("state")))
                }
                _ => {
                    AuthorizationFailure::page(400, "Pushed authorization requests (PAR) are required by this server.")
                }
            });
        };
        if !request_uri.starts_with(REQUEST_URI_PREFIX) {
            return Err(AuthorizationFailure::page(
                400,
                "The request_uri was not issued by this server.",
            ));
        }
        let request_uri_hash = hash(request_uri);
        let pushed = match self.store.get_pushed_request(&request_uri_hash).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(AuthorizationFailure::page(
                    400,
                    "The request_uri is unknown or has expired.",
                ));
            }
            Err(e) => return Err(server_failure(&e.into())),
        };
        // RFC 9126 §2.2 (AS-SP-42): bound to the client that pushed it
        if pushed.request.client_id != client_id {
            return Err(AuthorizationFailure::page(
                400,
                "The request_uri was pushed by a different client.",
            ));
        }
        let state = pushed.request.state.as_deref();
        let redirect_uri = &pushed.request.redirect_uri;
        // RFC 9126 §4, §7.3 (AS-SP-43): used and expired request_uris are refused
        if pushed.consumed {
            return Err(AuthorizationFailure::Redirect(self.error_redirect(
                redirect_uri,
                "invalid_request_uri",
                "the request_uri has already been used",
                state,
            )));
        }
        if pushed.expires_at <= self.now() {
            return Err(AuthorizationFailure::Redirect(self.error_redirect(
                redirect_uri,
                "invalid_request_uri",
                "the request_uri has expired",
                state,
            )));
        }
        let client_name = client
            .client
            .metadata
            .client_name
            .clone()
            .unwrap_or_else(|| client.client.client_id.clone());
        let pushed_at = pushed.expires_at - self.settings.request_uri_lifetime;
        Ok(PendingAuthorization {
            request_uri_hash,
            request: pushed.request,
            client_name,
            pushed_at,
        })
    }

    /// Ends an authorization: consumes the request_uri (atomically, single use) and builds the
    /// redirect with a code, or with `access_denied` (RFC 6749 §4.1.2.1, AS-SP-55).
    pub async fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        decision: Decision,
    ) -> Result<String, AuthorizationFailure> {
        let req = &pending.request;
        let now = self.now();
        // issue 13 item 6: the login behind an Allow must still satisfy prompt=login and
        // max_age now, whatever page was shown before (checked before the request_uri is spent)
        if let Decision::Allow {
            auth_time,
            login_request,
            ..
        } = &decision
            && !self.login_is_fresh(pending, *auth_time, login_request.as_deref())
        {
            return Err(AuthorizationFailure::page(
                403,
                "This request needs a newer sign-in. Start again from the application.",
            ));
        }
        let won = self
            .store
            .consume_pushed_request(&pending.request_uri_hash, now)
            .await
            .map_err(|e| server_failure(&e.into()))?;
        if !won {
            return Err(AuthorizationFailure::Redirect(self.error_redirect(
                &req.redirect_uri,
                "invalid_request_uri",
                "the request_uri has already been used or has expired",
                req.state.as_deref(),
            )));
        }
        let (sub, auth_time) = match decision {
            Decision::Deny => {
                return Ok(self.error_redirect(
                    &req.redirect_uri,
                    "access_denied",
                    "the user denied the request",
                    req.state.as_deref(),
                ));
            }
            Decision::Allow { sub, auth_time, .. } => (sub, auth_time),
        };
        let code = credential();
        let record = AuthorizationCode {
            code_hash: hash(&code),
            grant: Grant {
                grant_id: credential(),
                client_id: req.client_id.clone(),
                sub,
                scope: req.scope.clone(),
                auth_time,
                created_at: now,
            },
            redirect_uri: req.redirect_uri.clone(),
            code_challenge: req.code_challenge.clone(),
            dpop_jkt: req.dpop_jkt.clone(),
            nonce: req.nonce.clone(),
            expires_at: now + self.settings.code_lifetime,
        };
        self.store
            .insert_code(&record)
            .await
            .map_err(|e| server_failure(&e.into()))?;
        let mut params: Vec<(&str, &str)> = vec![("code", &code)];
        if let Some(s) = &req.state {
            params.push(("state", s));
        }
        params.push(("iss", &self.settings.issuer));
        Ok(append_query(&req.redirect_uri, &params))
    }

    /// An error response by redirect, with `state` and `iss` (RFC 9207 §2).
    pub fn error_redirect(&self, redirect_uri: &str, error: &str, description: &str, state: Option<&str>) -> String {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(s) = state {
            params.push(("state", s));
        }
        params.push(("iss", &self.settings.issuer));
        append_query(redirect_uri, &params)
    }

    /// OIDC Core §3.1.2.1: a login is good enough unless `prompt=login` asks for one newer than
    /// the request, or `max_age` has passed; §3.1.2.6: `prompt=none` shows no page at all, and
    /// since consent is asked every time it ends in `login_required` or `consent_required`.
    pub fn next_step(&self, pending: &PendingAuthorization, login: Option<&Session>) -> NextStep {
        let req = &pending.request;
        let login = login.filter(|s| self.login_is_fresh(pending, s.auth_time, s.login_request.as_deref()));
        if req.prompt.iter().any(|p| p == "none") {
            return NextStep::Redirect(match login {
                Some(_) => self.pending_error(
                    pending,
                    "consent_required",
                    "the user must consent, which prompt=none does not allow",
                ),
                None => self.pending_error(pending, "login_required", "the user is not signed in"),
            });
        }
        match login {
            Some(_) => NextStep::Consent,
            None => NextStep::Login,
        }
    }

    /// OIDC Core §3.1.2.1: `prompt=login` wants a login made for this very request (the login
    /// form carries the request_uri, and the session remembers it); `max_age` wants a login
    /// within that many seconds, or one made for this request (so `max_age=0` can complete).
    pub fn login_is_fresh(&self, pending: &PendingAuthorization, auth_time: i64, login_request: Option<&str>) -> bool {
        let req = &pending.request;
        let during_request = login_request == Some(pending.request_uri_hash.as_str());
        // max_age=0 asks for a new login just as prompt=login does (whole seconds cannot tell
        // a login for another request apart from one made now)
        let login_asked = req.prompt.iter().any(|p| p == "login") || req.max_age == Some(0);
        during_request || (!login_asked && req.max_age.is_none_or(|max| self.now() - auth_time <= max))
    }

    /// An error redirect for a pending request (e.g. `login_required` for `prompt=none`).
    pub fn pending_error(&self, pending: &PendingAuthorization, error: &str, description: &str) -> String {
        self.error_redirect(
            &pending.request.redirect_uri,
            error,
            description,
            pending.request.state.as_deref(),
        )
    }
}

fn server_failure(e: &crate::error::OAuthError) -> AuthorizationFailure {
    AuthorizationFailure::Page {
        status: 500,
        message: format!("The server could not complete the request ({}).", e.code.as_str()),
    }
}

/// Appends parameters to a registered redirect URI, keeping its own query (RFC 6749 §3.1.2).
pub fn append_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    let encoded = ser.finish();
    let sep = if !uri.contains('?') {
        "?"
    } else if uri.ends_with('?') || uri.ends_with('&') {
        ""
    } else {
        "&"
    };
    format!("{uri}{sep}{encoded}")
}

/// RFC 7636 §4.1 unreserved characters: `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn is_pkce_value(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 §4.1: a verifier is 43 to 128 unreserved characters.
pub fn is_code_verifier(s: &str) -> bool {
    (43..=128).contains(&s.len()) && is_pkce_value(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_query_is_kept() {
        assert_eq!(
            append_query(
                "https://c.example/cb?dummy1=lorem&dummy2=ipsum",
                &[("code", "x"), ("state", "a b")]
            ),
            "https://c.example/cb?dummy1=lorem&dummy2=ipsum&code=x&state=a+b"
        );
        assert_eq!(
            append_query("https://c.example/cb", &[("code", "x")]),
            "https://c.example/cb?code=x"
        );
    }

    #[test]
    fn verifier_syntax() {
        let all = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
        assert!(is_code_verifier(all));
        assert!(is_code_verifier(&"a".repeat(43)));
        assert!(!is_code_verifier(&"a".repeat(42)));
        assert!(!is_code_verifier(&"a".repeat(129)));
        assert!(!is_code_verifier(&format!("{}+", "a".repeat(43))));
    }
}
