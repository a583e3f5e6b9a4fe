//! Protected-resource checks at the AS itself: userinfo (OIDC Core §5.3), which must accept
//! only a DPoP-bound token with a valid proof (AS-SP-103, RFC 9449 §7), and token
//! introspection (RFC 7662).

use serde_json::{Map, Value, json};

use crate::client_auth::ClientAuthentication;
use crate::dpop::DpopRequest;
use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::model::{SenderConstraint, TokenKind};
use crate::provider::Provider;
use crate::random::hash;

/// A request to a protected resource.
pub struct ResourceRequest<'a> {
    /// Every `Authorization` header value.
    pub authorization: &'a [&'a str],
    pub dpop: &'a [&'a str],
    pub method: &'a str,
    /// The resource's public URL.
    pub url: &'a str,
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
    pub async fn userinfo(&self, req: &ResourceRequest<'_>) -> OAuthResult<UserinfoResponse> {
        let algs = self.dpop_algs().to_owned();
        self.userinfo_inner(req).await.map_err(|e| e.for_resource(&algs))
    }

    async fn userinfo_inner(&self, req: &ResourceRequest<'_>) -> OAuthResult<UserinfoResponse> {
        let token_err = |d: &'static str| OAuthError::new(ErrorCode::InvalidToken, 401, d);
        // RFC 6750 §2.1 / RFC 9449 §7.1: exactly one Authorization header, scheme case-insensitive
        let header = match req.authorization {
            [] => {
                let mut e = OAuthError::new(ErrorCode::InvalidToken, 401, "an access token is required");
                // RFC 6750 §3.1: no error code when the request had no credentials
                e.www_authenticate = Some(format!("DPoP algs=\"{}\"", self.dpop_algs()));
                return Err(e);
            }
            [one] => *one,
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
        let is_dpop = scheme.eq_ignore_ascii_case("DPoP");
        if !is_dpop && !scheme.eq_ignore_ascii_case("Bearer") {
            return Err(token_err("the Authorization scheme must be DPoP"));
        }
        // RFC 9449 §7.2 (RS-SP-09): a DPoP-bound token is never accepted as a bearer token;
        // every token this server issues is DPoP-bound
        if !is_dpop {
            return Err(token_err(
                "this access token is DPoP-bound: use the DPoP scheme with a DPoP proof",
            ));
        }
        if req.dpop.is_empty() {
            return Err(OAuthError::invalid_dpop_proof(
                "a DPoP proof is required with a DPoP-bound access token",
            ));
        }
        // every check of the proof but replay; its jti is recorded only once the token is known
        // and bound to the proof's key (issue 13 item 4: a made-up token writes nothing)
        let proof = self.check_dpop(&DpopRequest {
            headers: req.dpop,
            method: req.method,
            url: req.url,
            access_token: Some(token),
        })?;
        let now = self.now();
        // one answer whether the token is unknown or bound to another key: a leaked token
        // without its key does not even tell whether it is live
        let rejected = || token_err("the access token is unknown, expired, revoked or bound to another DPoP key");
        let Some((record, grant)) = self.store.get_token(&hash(token), TokenKind::Access, now).await? else {
            return Err(rejected());
        };
        match &record.constraint {
            Some(SenderConstraint::Dpop { jkt }) if *jkt == proof.jkt => {}
            _ => return Err(rejected()),
        }
        self.record_dpop(&proof).await?;
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
            dpop_nonce: proof.fresh_nonce,
        })
    }

    /// RFC 7662: a client may introspect the tokens issued to itself; anything else is
    /// `{"active": false}`.
    pub async fn introspect(&self, params: &[(String, String)], authorization_header: bool) -> OAuthResult<Value> {
        let params = self.params(params)?;
        let client = self
            .authenticate_client(&ClientAuthentication::from_params(&params, authorization_header))
            .await?;
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
                if kind == TokenKind::Access {
                    // RFC 9449 §6.2
                    out["token_type"] = json!("DPoP");
                }
                if let Some(SenderConstraint::Dpop { jkt }) = &record.constraint {
                    out["cnf"] = json!({ "jkt": jkt });
                }
                return Ok(out);
            }
        }
        Ok(json!({ "active": false }))
    }
}
