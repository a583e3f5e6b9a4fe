//! RP-Initiated Logout (OpenID Connect RP-Initiated Logout 1.0 §2, §3): which client asks, and
//! where the browser may be sent afterwards. The session itself is the server's to end; this
//! module decides only what is allowed (issue 13 item 15).

use portcullis_jose::{CompactJws, Jwks};
use serde_json::Value;

use crate::model::Session;
use crate::provider::Provider;
use crate::response::append_query;

/// A checked logout request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    /// Where to send the browser once the session has ended: a `post_logout_redirect_uri`
    /// registered by the client that asked, with its `state` (§3).
    pub redirect: Option<String>,
    /// The asking client's registered name, to show on the confirmation page (none when it
    /// registered none: a client_id is never shown as a name).
    pub client_name: Option<String>,
}

impl Provider {
    /// Checks the parameters of a logout request (§2): `id_token_hint` must be an id_token this
    /// server signed (it may have expired); `client_id`, when both are given, must be its
    /// audience; a `post_logout_redirect_uri` must be registered by that client. A refusal is a
    /// message for an error page: nothing is ever redirected to an unchecked URI.
    /// With a session (`signed_in`), the hint must name its user (§2: the hint says whose
    /// session the client wants ended; another user's is never ended, nor sent on).
    pub async fn logout_request(
        &self,
        params: &[(String, String)],
        signed_in: Option<&Session>,
    ) -> Result<LogoutRequest, String> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.as_str())
        };
        for name in ["id_token_hint", "post_logout_redirect_uri", "state", "client_id"] {
            if params.iter().filter(|(k, _)| k == name).count() > 1 {
                return Err(format!("The parameter {name} was sent more than once."));
            }
        }
        let (hinted, hint_sub) = match get("id_token_hint") {
            Some(hint) => {
                let (aud, sub) = self.id_token_audience(hint)?;
                (Some(aud), Some(sub))
            }
            None => (None, None),
        };
        if let (Some(hint_sub), Some(session)) = (&hint_sub, signed_in) {
            match self.store.get_user(&session.username).await {
                Ok(Some(u)) if u.sub == *hint_sub => {}
                Ok(_) => return Err("The id_token_hint is for another user than the one signed in.".into()),
                Err(_) => return Err("The server could not check the logout request.".into()),
            }
        }
        let client_id = match (get("client_id"), hinted.as_deref()) {
            (Some(c), Some(aud)) if c != aud => {
                return Err("The client_id does not match the id_token_hint.".into());
            }
            (Some(c), _) => Some(c),
            (None, aud) => aud,
        };
        let client = match client_id {
            Some(id) => match self.client(id).await {
                Ok(Some(c)) => Some(c),
                Ok(None) => return Err("The logout request names an unknown client.".into()),
                Err(_) => return Err("The server could not check the logout request.".into()),
            },
            None => None,
        };
        let redirect = match get("post_logout_redirect_uri") {
            None => None,
            Some(uri) => {
                // §3: no post-logout redirection without an id_token_hint for the client (else
                // anyone could bounce a browser through this server to a URI they registered)
                let (Some(client), Some(_)) = (&client, &hinted) else {
                    return Err("A post_logout_redirect_uri needs an id_token_hint.".into());
                };
                let registered = client
                    .client
                    .metadata
                    .extra
                    .get("post_logout_redirect_uris")
                    .and_then(Value::as_array)
                    .is_some_and(|uris| uris.iter().any(|u| u.as_str() == Some(uri)));
                if !registered {
                    return Err("The post_logout_redirect_uri is not registered for this client.".into());
                }
                let mut extra = Vec::new();
                if let Some(state) = get("state") {
                    extra.push(("state", state));
                }
                Some(if extra.is_empty() {
                    uri.to_owned()
                } else {
                    append_query(uri, &extra)
                })
            }
        };
        Ok(LogoutRequest {
            redirect,
            // a client without a registered name is not named at all (never by its client_id)
            client_name: client.and_then(|c| c.client.metadata.client_name.clone()),
        })
    }

    /// The `aud` and `sub` of an id_token this server issued (signature and `iss` checked;
    /// expiry not, §2: the hint may have expired).
    fn id_token_audience(&self, hint: &str) -> Result<(String, String), String> {
        let bad = || "The id_token_hint was not issued by this server.".to_owned();
        let jws = CompactJws::parse(hint).map_err(|_| bad())?;
        let keys = self.keys();
        let jwks = Jwks::from_json(keys.jwks()).map_err(|_| bad())?;
        jws.verify_with_set(&jwks).map_err(|_| bad())?;
        let claims: Value = jws.claims().map_err(|_| bad())?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return Err(bad());
        }
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok((text("aud").ok_or_else(bad)?, text("sub").ok_or_else(bad)?))
    }
}
