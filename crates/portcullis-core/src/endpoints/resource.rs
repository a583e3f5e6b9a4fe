//! Protected-resource checks at the AS itself: userinfo (OIDC Core §5.3), which accepts only a
//! sender-constrained token with its proof (AS-SP-103; RFC 9449 §7; RFC 8705 §3), and token
//! introspection (RFC 7662).

use serde_json::{Map, Value, json};

use crate::client_auth::ClientCredentials;
use crate::dpop::DpopRequest;
use crate::error::{Challenge, OAuthError, OAuthResult};
use crate::model::{SenderConstraint, TokenKind};
use crate::provider::Provider;
use crate::random::{hash, secure_eq};
use crate::request::{DirectRequest, Endpoint};

/// The scheme an access token was presented with.
#[derive(Clone, Copy)]
enum Presented {
    Dpop,
    Bearer,
}

/// A successful userinfo answer, with the DPoP nonce to rotate to (if any).
pub struct UserinfoResponse {
    pub claims: Value,
    pub dpop_nonce: Option<String>,
}

/// Which claims each scope releases (OIDC Core §5.4).
const PROFILE_CLAIMS: [&str; 14] = [
    "name",
    "family_name",
    "given_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "updated_at",
];
const EMAIL_CLAIMS: [&str; 2] = ["email", "email_verified"];

impl Provider {
    /// OIDC Core §5.3 userinfo, a protected resource: errors carry the challenge of the scheme
    /// the request used (RFC 6750 §3, RFC 9449 §7.1).
    pub async fn userinfo(&self, req: &DirectRequest) -> OAuthResult<UserinfoResponse> {
        let bearer = req
            .authorization
            .first()
            .and_then(|h| h.split_once(' '))
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"));
        self.userinfo_inner(req).await.map_err(|e| e.for_resource(bearer))
    }

    async fn userinfo_inner(&self, req: &DirectRequest) -> OAuthResult<UserinfoResponse> {
        let token_err = OAuthError::invalid_token;
        // RFC 6750 §2.1 / RFC 9449 §7.1: exactly one Authorization header, scheme case-insensitive
        let header = match req.authorization.as_slice() {
            [] => {
                // RFC 6750 §3.1: no error code when the request had no credentials
                return Err(
                    OAuthError::invalid_token("an access token is required").with_challenge(Challenge::DpopOrBearer)
                );
            }
            [one] => one.as_str(),
            _ => {
                return Err(OAuthError::invalid_request(
                    "more than one Authorization header was sent",
                ));
            }
        };
        let (scheme, token) = header
            .split_once(' ')
            .ok_or_else(|| token_err("malformed Authorization header"))?;
        let token = token.trim();
        if token.is_empty() {
            return Err(token_err("malformed Authorization header"));
        }
        let binding = if scheme.eq_ignore_ascii_case("DPoP") {
            Presented::Dpop
        } else if scheme.eq_ignore_ascii_case("Bearer") {
            Presented::Bearer
        } else {
            return Err(token_err("the Authorization scheme must be DPoP or Bearer"));
        };
        let proof = match binding {
            Presented::Dpop => {
                if req.dpop.is_empty() {
                    return Err(OAuthError::invalid_dpop_proof(
                        "a DPoP proof is required with a DPoP-bound access token",
                    ));
                }
                // every check of the proof but replay; its jti is recorded only once the token
                // is known and bound to the proof's key (issue 13 item 4: a made-up token
                // writes nothing)
                let headers: Vec<&str> = req.dpop.iter().map(String::as_str).collect();
                Some(self.check_dpop(&DpopRequest {
                    headers: &headers,
                    method: req.method.as_str(),
                    url: self.settings.url(req.listener, Endpoint::Userinfo),
                    access_token: Some(token),
                })?)
            }
            // RFC 8705 §3 (RS-SP-15): every Bearer token this server issues is certificate-bound,
            // so without a certificate it cannot be used (and the store is not asked)
            Presented::Bearer if req.certificate.is_none() => {
                return Err(token_err(
                    "no client certificate was presented: a Bearer access token here is certificate-bound \
                     (RFC 8705), and a DPoP-bound one needs the DPoP scheme",
                ));
            }
            Presented::Bearer => None,
        };
        let now = self.now();
        // one answer whether the token is unknown or bound to another key or certificate: a
        // leaked token without its key does not even tell whether it is live
        let rejected =
            || token_err("the access token is unknown, expired or revoked, or bound to another key or certificate");
        let Some((record, grant)) = self.store.get_token(&hash(token), TokenKind::Access, now).await? else {
            return Err(rejected());
        };
        // RFC 9449 §7.2 / RFC 8705 §3: the token's binding, proven the way it was bound
        let proven = match (&record.constraint, &proof, req.certificate.as_deref()) {
            (Some(SenderConstraint::Dpop { jkt }), Some(proof), _) => jkt.matches(&proof.jkt),
            (Some(SenderConstraint::Mtls { x5t_s256 }), None, Some(cert)) => {
                secure_eq(x5t_s256.as_str().as_bytes(), cert.thumbprint().as_bytes())
            }
            _ => false,
        };
        if !proven {
            return Err(rejected());
        }
        if let Some(proof) = &proof {
            self.record_dpop(proof).await?;
        }
        // Without `openid` only `sub` is released: userinfo doubles as the protected resource of
        // plain OAuth 2.0 deployments until the demo API exists (conformance plain_oauth variant).
        let user = self.store.get_user_by_sub(&grant.sub).await?;
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::from(grant.sub.as_str()));
        if let Some(user) = user {
            let has = |s: &str| record.scope.iter().any(|x| x == s);
            for (k, v) in &user.claims {
                let released = (has("profile") && PROFILE_CLAIMS.contains(&k.as_str()))
                    || (has("email") && EMAIL_CLAIMS.contains(&k.as_str()));
                if released {
                    claims.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(UserinfoResponse {
            claims: Value::Object(claims),
            dpop_nonce: proof.and_then(|p| p.fresh_nonce),
        })
    }

    /// RFC 7662: a client may introspect the tokens issued to itself; anything else is
    /// `{"active": false}`.
    pub async fn introspect(&self, req: &DirectRequest) -> OAuthResult<Value> {
        let client = self
            .authenticate_client(&ClientCredentials::from_request(self, req)?)
            .await?;
        let params = req.params.view();
        let token = params.require("token")?;
        let now = self.now();
        let h = hash(token);
        let kinds = match params.get("token_type_hint") {
            Some("refresh_token") => [TokenKind::Refresh, TokenKind::Access],
            _ => [TokenKind::Access, TokenKind::Refresh],
        };
        for kind in kinds {
            if let Some((record, grant)) = self.store.get_token(&h, kind, now).await? {
                if grant.client_id != client.client.client_id {
                    break;
                }
                let mut out = json!({
                    "active": true,
                    "iss": self.settings.issuer,
                    "client_id": grant.client_id,
                    "sub": grant.sub,
                    "scope": record.scope.join(" "),
                    "iat": record.issued_at,
                    "exp": record.expires_at,
                });
                // RFC 9449 §6.2, RFC 8705 §3.2: the binding, and the token type it implies
                if let Some(constraint) = &record.constraint {
                    out["token_type"] = json!(constraint.token_type());
                    out["cnf"] = constraint.cnf();
                }
                return Ok(out);
            }
        }
        Ok(json!({ "active": false }))
    }
}
