//! Protected-resource checks at the AS itself: userinfo (OIDC Core §5.3), which accepts only a
//! sender-constrained token with its proof (AS-SP-103; RFC 9449 §7; RFC 8705 §3), and token
//! introspection (RFC 7662).

use serde_json::{Map, Value, json};

use async_trait::async_trait;
use portcullis_jose::{Jwks, PublicJwk};
use portcullis_resource::access::{ResourceError, ResourceErrorKind, ResourceRequest};
use portcullis_resource::{
    AdmitError, ClientKeys, Policy, ReplayGuard, SignatureCheck, SignedBy, SourceError, TokenInfo, TokenSource, admit,
};

use crate::audit::{Direction, Evidence, EvidenceKind};
use crate::client_auth::ClientCredentials;
use crate::error::{Challenge, ErrorCode, OAuthError, OAuthResult, Status};
use crate::jwks_cache::Refreshed;
use crate::model::TokenKind;
use crate::provider::Provider;
use crate::random::hash;
use crate::request::{DirectRequest, Endpoint};
use crate::store::Store;

/// The protocol error of a refusal by the resource rules.
fn resource_error(e: ResourceError) -> OAuthError {
    let (code, status) = match &e.kind {
        ResourceErrorKind::InvalidRequest => (ErrorCode::InvalidRequest, Status::BadRequest),
        ResourceErrorKind::InvalidToken => (ErrorCode::InvalidToken, Status::Unauthorized),
        ResourceErrorKind::InsufficientScope => (ErrorCode::InsufficientScope, Status::Forbidden),
        ResourceErrorKind::InvalidDpopProof => (ErrorCode::InvalidDpopProof, Status::Unauthorized),
        ResourceErrorKind::UseDpopNonce(_) => (ErrorCode::UseDpopNonce, Status::Unauthorized),
        ResourceErrorKind::InvalidSignature => (ErrorCode::InvalidSignature, Status::Unauthorized),
    };
    let mut o = OAuthError::new(code, status, e.description);
    if let ResourceErrorKind::UseDpopNonce(n) = e.kind {
        o.dpop_nonce = Some(n);
    }
    if e.without_credentials {
        // RFC 6750 §3.1: no error code when the request had no credentials
        o.challenge = Some(Challenge::DpopOrBearer);
    }
    o
}

/// A signed introspection response (RFC 9701) and its evidence.
#[derive(Debug, Clone)]
pub struct SignedIntrospection {
    pub jwt: String,
    pub evidence: Evidence,
}

/// A successful userinfo answer, with the DPoP nonce to rotate to (if any).
pub struct UserinfoResponse {
    pub claims: Value,
    pub dpop_nonce: Option<String>,
}

/// A request admitted to a protected resource: the token's facts, and the DPoP nonce to
/// rotate to (if any).
#[derive(Debug, Clone)]
pub struct AdmittedRequest {
    pub token: TokenInfo,
    pub dpop_nonce: Option<String>,
    /// The request's verified HTTP message signature, with the client key that verified it.
    pub signed: Option<SignedBy>,
}

/// What an HTTP message signature on a resource request covers beside what
/// [`DirectRequest`] holds: every header, the query and the body (FAPI 2.0 HTTP Signatures).
pub struct SignedResourceRequest<'a> {
    /// The request method as received (`@method`; HEAD is not GET).
    pub method: &'a str,
    pub headers: &'a portcullis_resource::http::HeaderMap,
    /// The query string as received (part of `@target-uri`).
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

/// This server's clients as the resource crate's source of signing keys: the registered
/// `jwks` or `jwks_uri` (cached), and `require_signed_resource_requests`.
struct RegisteredClientKeys<'a>(&'a Provider);

#[async_trait]
impl ClientKeys for RegisteredClientKeys<'_> {
    async fn must_sign(&self, client_id: &str) -> Result<bool, SourceError> {
        let client = self.0.client(client_id).await.map_err(source_error)?;
        Ok(client.is_some_and(|c| c.client.metadata.requires_signed_resource_requests()))
    }

    /// The registered `jwks`, or the `jwks_uri` document (cached; refetched for an unknown
    /// `kid` at most once per `limits.jwks_refresh_interval`, as for client assertions).
    async fn key(&self, client_id: &str, kid: &str) -> Result<Option<PublicJwk>, SourceError> {
        let p = self.0;
        let Some(client) = p.client(client_id).await.map_err(source_error)? else {
            return Ok(None);
        };
        let find = |jwks: &Jwks| jwks.keys().iter().find(|k| k.kid() == Some(kid)).cloned();
        if let Some(jwks) = &client.inline_jwks {
            return Ok(find(jwks));
        }
        let Some(uri) = client.client.metadata.jwks_uri.as_deref() else {
            return Ok(None);
        };
        let now = p.now();
        let jwks = p
            .remote_jwks
            .get(uri, now, p.fetcher.as_ref())
            .await
            .map_err(source_error)?;
        if let Some(key) = find(&jwks) {
            return Ok(Some(key));
        }
        let miss = format!("kid:{kid}");
        let refreshed = p
            .remote_jwks
            .refresh(
                uri,
                &jwks,
                &miss,
                now,
                p.settings.jwks_refresh_interval,
                p.fetcher.as_ref(),
            )
            .await
            .map_err(source_error)?;
        let found = match refreshed {
            Refreshed::Newer(fresh) => find(&fresh),
            _ => None,
        };
        if found.is_none() {
            p.remote_jwks.remember_miss(uri, &miss, now).await;
        }
        Ok(found)
    }
}

fn source_error(e: OAuthError) -> SourceError {
    SourceError(e.description.into_owned())
}

/// This server's token store as the resource crate's token source.
struct StoreTokens<'a>(&'a dyn Store);

#[async_trait]
impl TokenSource for StoreTokens<'_> {
    async fn lookup(&self, token: &str, now: i64) -> Result<Option<TokenInfo>, SourceError> {
        let found = self
            .0
            .get_token(&hash(token), TokenKind::Access, now)
            .await
            .map_err(|e| SourceError(e.0))?;
        Ok(found.map(|(record, grant)| TokenInfo {
            subject: grant.sub,
            client_id: grant.client_id,
            scope: record.scope,
            audience: record.audience,
            expires_at: record.expires_at,
            binding: record.constraint,
        }))
    }
}

/// This server's replay table as the resource crate's replay guard.
struct StoreReplay<'a>(&'a dyn Store);

#[async_trait]
impl ReplayGuard for StoreReplay<'_> {
    async fn remember_once(&self, key: &str, until: i64, now: i64) -> Result<bool, SourceError> {
        self.0
            .remember_once(key, until, now)
            .await
            .map_err(|e| SourceError(e.0))
    }
}

impl Provider {
    /// A protected resource of this server (userinfo, the demo API), admitted by the resource
    /// crate's rules (SP 5.3.4, RS-SP-01..15) over this server's token store. Errors carry the
    /// challenge of the scheme the request used (RFC 6750 §3, RFC 9449 §7.1).
    pub async fn admit(
        &self,
        req: &DirectRequest,
        endpoint: Endpoint,
        scopes: &[&str],
        audience: Option<&str>,
    ) -> OAuthResult<AdmittedRequest> {
        self.admit_signed(req, endpoint, scopes, audience, None).await
    }

    /// [`Self::admit`], and the request's HTTP message signature (FAPI 2.0 HTTP Signatures
    /// 5.3.1.2) when `signed` is given: verified whenever the request carries one, and required
    /// of clients registered with `require_signed_resource_requests` (or of every client with
    /// `demo_api.require_signed_requests`).
    pub async fn admit_signed(
        &self,
        req: &DirectRequest,
        endpoint: Endpoint,
        scopes: &[&str],
        audience: Option<&str>,
        signed: Option<&SignedResourceRequest<'_>>,
    ) -> OAuthResult<AdmittedRequest> {
        let bearer = req
            .authorization
            .first()
            .and_then(|h| h.split_once(' '))
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"));
        let authorization: Vec<&str> = req.authorization.iter().map(String::as_str).collect();
        let dpop: Vec<&str> = req.dpop.iter().map(String::as_str).collect();
        let resource_request = ResourceRequest {
            method: req.method.as_str(),
            url: self.settings.url(req.listener, endpoint),
            authorization: &authorization,
            dpop: &dpop,
            certificate: req.certificate.as_deref(),
        };
        let url = resource_request.url;
        let target_uri = signed.map(|s| portcullis_resource::httpsig::target_uri(url, s.query));
        let clients = RegisteredClientKeys(self);
        let check = match (signed, &target_uri) {
            (Some(s), Some(target_uri)) => Some(SignatureCheck {
                request: portcullis_resource::httpsig::RequestView {
                    method: s.method,
                    target_uri,
                    headers: s.headers,
                },
                body: &s.body,
                required: self.settings.demo_api_require_signed_requests,
                clients: &clients,
                policy: portcullis_resource::httpsig::RequestPolicy::default(),
            }),
            _ => None,
        };
        let policy = Policy {
            scopes,
            audience,
            nonce_required: self.settings.dpop_nonce_required,
            signatures: check.as_ref(),
        };
        let store = self.store.as_ref();
        match admit(
            &resource_request,
            self.now(),
            &self.nonces,
            &StoreTokens(store),
            &StoreReplay(store),
            &policy,
        )
        .await
        {
            Ok(a) => Ok(AdmittedRequest {
                token: a.token,
                dpop_nonce: a.fresh_nonce,
                signed: a.signed,
            }),
            Err(AdmitError::Refused(e)) => Err(resource_error(e).for_resource(bearer)),
            Err(AdmitError::Source(e)) => Err(OAuthError::server_error(e.0)),
        }
    }

    /// OIDC Core §5.3 userinfo: a protected resource (AS-SP-103) that releases the user's
    /// claims for the granted scopes.
    pub async fn userinfo(&self, req: &DirectRequest) -> OAuthResult<UserinfoResponse> {
        // userinfo is the authorization server's own resource: any audience
        let AdmittedRequest { token, dpop_nonce, .. } = self.admit(req, Endpoint::Userinfo, &[], None).await?;
        // Without `openid` only `sub` is released: userinfo doubles as the protected resource of
        // plain OAuth 2.0 deployments until the demo API exists (conformance plain_oauth variant).
        let user = self.store.get_user_by_sub(&token.subject).await?;
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::from(token.subject.as_str()));
        if let Some(user) = user {
            // issue 17 item 6: each granted scope releases the claims configured for it
            for (k, v) in &user.claims {
                if self.settings.releases_claim(&token.scope, k) {
                    claims.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(UserinfoResponse {
            claims: Value::Object(claims),
            dpop_nonce,
        })
    }

    /// RFC 7662: a client may introspect the tokens issued to itself, and a resource server
    /// (registered by the operator for a resource) the access tokens issued for its resource;
    /// anything else is `{"active": false}`.
    pub async fn introspect(&self, req: &DirectRequest) -> OAuthResult<Value> {
        let client = self
            .authenticate_client(&ClientCredentials::from_request(self, req)?)
            .await?;
        self.introspection_of(req, &client).await
    }

    /// RFC 9701 (AS-MS-16): the introspection answer as a JWT the server signs, for a caller
    /// that asked with `Accept: application/token-introspection+jwt`: `typ`
    /// `token-introspection+jwt`, `iss`, `aud` (the caller), `iat` and `token_introspection`,
    /// signed with the caller's `introspection_signed_response_alg` (a FAPI algorithm; ES256
    /// by default).
    /// The answer comes with its evidence (issue 16 item 5).
    pub async fn signed_introspection(&self, req: &DirectRequest) -> OAuthResult<SignedIntrospection> {
        let client = self
            .authenticate_client(&ClientCredentials::from_request(self, req)?)
            .await?;
        let answer = self.introspection_of(req, &client).await?;
        let alg = client
            .client
            .metadata
            .introspection_signed_response_alg()
            .unwrap_or(portcullis_jose::Algorithm::Es256);
        let keys = self.keys();
        let key = keys
            .active(alg, self.now())
            .ok_or_else(|| OAuthError::server_error(format!("no active signing key for {alg}")))?;
        let claims = json!({
            "iss": self.settings.issuer,
            "aud": client.client.client_id,
            "iat": self.now(),
            "token_introspection": answer,
        });
        let jwt = key
            .sign_jwt(alg, Some("token-introspection+jwt"), &claims)
            .map_err(|e| OAuthError::server_error(format!("introspection signing failed: {e}")))?;
        let evidence = Evidence::jws(
            EvidenceKind::IntrospectionResponse,
            Direction::Sent,
            &req.interaction_id,
            &client.client.client_id,
            self.now(),
            key.public_jwk(),
            &jwt,
        );
        Ok(SignedIntrospection { jwt, evidence })
    }

    /// The RFC 7662 answer to `client` for the request's token.
    async fn introspection_of(
        &self,
        req: &DirectRequest,
        client: &crate::provider::ParsedClient,
    ) -> OAuthResult<Value> {
        let params = req.params.view();
        let token = params.require("token")?;
        let now = self.now();
        let h = hash(token);
        let kinds = match params.get("token_type_hint") {
            Some("refresh_token") => [TokenKind::Refresh, TokenKind::Access],
            _ => [TokenKind::Access, TokenKind::Refresh],
        };
        let resource_server = client.client.metadata.resource_server();
        for kind in kinds {
            if let Some((record, grant)) = self.store.get_token(&h, kind, now).await? {
                // RFC 7662 §2.1: a client's own tokens, and a resource server's the access
                // tokens issued for its resource; to anyone else a token is not active
                let own = grant.client_id == client.client.client_id;
                let for_this_resource = kind == TokenKind::Access
                    && resource_server.is_some_and(|r| record.audience.iter().any(|a| a == r));
                if !own && !for_this_resource {
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
                // RFC 7662 §2.2, RFC 8707: the resources an access token is for
                if !record.audience.is_empty() {
                    out["aud"] = json!(record.audience);
                }
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
