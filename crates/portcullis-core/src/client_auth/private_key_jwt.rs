//! Client authentication by `private_key_jwt` (RFC 7523 §3, OIDC Core §9) with the final FAPI 2.0
//! Security Profile's rules (SP 5.3.2.1-6/-8, AS-SP-24..28).

use std::sync::Arc;

use portcullis_jose::{CompactJws, JoseError, PublicJwk};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{OAuthError, OAuthResult};
use crate::jwks_cache::Refreshed;
use crate::model::ClientAuthMethod;
use crate::provider::{ParsedClient, Provider};
use crate::random::hash;
use crate::settings::{MAX_ASSERTION_LIFETIME, MAX_FUTURE_SKEW};
use crate::types::ClientId;

/// RFC 7523 §2.2.
pub const JWT_BEARER_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Deserialize)]
struct AssertionClaims {
    iss: Option<Value>,
    sub: Option<Value>,
    aud: Option<Value>,
    exp: Option<Value>,
    iat: Option<Value>,
    nbf: Option<Value>,
    jti: Option<Value>,
}

impl Provider {
    /// RFC 7523 §3 / OIDC Core §9 `private_key_jwt`: the assertion is verified with the client's
    /// registered keys and spent (its `jti` is good once). Every failure is 401
    /// `invalid_client` with a description of the rule that failed.
    pub(crate) async fn authenticate_with_assertion(
        &self,
        client_id: Option<ClientId<'_>>,
        assertion_type: Option<&str>,
        assertion: &str,
    ) -> OAuthResult<Arc<ParsedClient>> {
        fn fail(d: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
            OAuthError::invalid_client(d)
        }
        if assertion_type != Some(JWT_BEARER_ASSERTION_TYPE) {
            return Err(fail(format!(
                "client_assertion_type must be {JWT_BEARER_ASSERTION_TYPE}"
            )));
        }
        let jws = CompactJws::parse(assertion).map_err(|e| match e {
            JoseError::UnsupportedAlgorithm(a) => fail(format!(
                "client assertion alg {a} is not allowed (PS256, ES256, EdDSA or Ed25519)"
            )),
            other => fail(format!("the client assertion is not a valid JWS: {other}")),
        })?;
        // draft-ietf-oauth-rfc7523bis: explicit typing, so a DPoP proof or request object cannot
        // pass as a client assertion (RFC 8725 §3.11).
        if let Some(typ) = jws.header().typ.as_deref()
            && !typ.eq_ignore_ascii_case("JWT")
            && !typ.eq_ignore_ascii_case("client-authentication+jwt")
        {
            return Err(fail(format!("client assertion typ {typ} is not acceptable")));
        }
        let claims: AssertionClaims = jws
            .claims()
            .map_err(|_| fail("the client assertion payload is not a JSON object"))?;
        let iss = claims
            .iss
            .as_ref()
            .and_then(Value::as_str)
            .ok_or_else(|| fail("client assertion has no iss"))?;
        // RFC 7523 §3 (B): sub is the client_id; AS-MS-08: refuse assertions without sub
        let sub = claims
            .sub
            .as_ref()
            .and_then(Value::as_str)
            .ok_or_else(|| fail("client assertion has no sub"))?;
        if iss != sub {
            return Err(fail("client assertion iss and sub must both be the client_id"));
        }
        // RFC 6749 §3.2.1 (AS-SP-71): a client_id parameter must name the same client
        if let Some(cid) = client_id
            && cid.as_str() != iss
        {
            return Err(fail(
                "the client_id parameter does not match the client assertion's iss",
            ));
        }
        let client = self
            .client(iss)
            .await?
            .ok_or_else(|| fail("unknown client (client assertion iss)"))?;
        let meta = &client.client.metadata;
        if meta.token_endpoint_auth_method != ClientAuthMethod::PrivateKeyJwt {
            return Err(fail(format!(
                "this client is registered for {}, not private_key_jwt",
                meta.token_endpoint_auth_method.as_str()
            )));
        }
        let alg = jws.header().alg;
        if let Some(registered) = meta.token_endpoint_auth_signing_alg
            && !registered.same_family(alg)
        {
            return Err(fail(format!(
                "client assertion alg {alg} differs from the registered token_endpoint_auth_signing_alg {registered}"
            )));
        }
        self.verify_client_signature(&client, &jws).await?;

        // SP 5.3.2.1-8 (AS-SP-25): aud is exactly the issuer identifier, as a string
        match &claims.aud {
            Some(Value::String(a)) if *a == self.settings.issuer => {}
            Some(Value::Array(_)) => {
                return Err(fail(
                    "client assertion aud must be the issuer identifier as a single string, not an array",
                ));
            }
            Some(_) => {
                return Err(fail(format!(
                    "client assertion aud must be the issuer identifier {}",
                    self.settings.issuer
                )));
            }
            None => return Err(fail("client assertion has no aud")),
        }
        let now = self.now();
        let exp = numeric(&claims.exp).ok_or_else(|| fail("client assertion has no numeric exp"))?;
        if exp <= now {
            return Err(fail("the client assertion has expired (exp)"));
        }
        if exp > now + MAX_ASSERTION_LIFETIME {
            return Err(fail("client assertion exp is too far in the future (at most one hour)"));
        }
        // SP 5.3.2.1-13 (AS-SP-28): iat/nbf up to 60 s ahead are tolerated, more is refused
        for (name, value) in [("iat", &claims.iat), ("nbf", &claims.nbf)] {
            match value {
                None => {}
                Some(v) => {
                    let t = numeric(&Some(v.clone()))
                        .ok_or_else(|| fail(format!("client assertion {name} is not a number")))?;
                    if t > now + MAX_FUTURE_SKEW {
                        return Err(fail(format!(
                            "client assertion {name} is more than 60 seconds in the future"
                        )));
                    }
                }
            }
        }
        let jti = match &claims.jti {
            Some(Value::String(j)) if !j.is_empty() => j,
            _ => return Err(fail("client assertion has no jti")),
        };
        // AS-SP-27: a jti is good for one use
        let key = format!("assertion:{}", hash(&format!("{iss}\n{jti}")));
        if !self.store.remember_once(&key, exp, now).await? {
            return Err(fail("client assertion jti has already been used"));
        }
        Ok(client)
    }

    async fn verify_client_signature(&self, client: &ParsedClient, jws: &CompactJws<'_>) -> OAuthResult<()> {
        self.verify_with_client_keys(client, jws)
            .await?
            .map(drop)
            .map_err(|e| match e {
                JoseError::NoMatchingKey => {
                    OAuthError::invalid_client("no registered client key matches the client assertion (kid, alg)")
                }
                _ => OAuthError::invalid_client(
                    "the client assertion signature does not verify with the client's registered keys",
                ),
            })
    }

    /// Verifies a JWS the client signed (client assertion, request object) with its registered
    /// keys: the outer error is ours (a `jwks_uri` that cannot be used), the inner one the
    /// signature's. A `jwks_uri` is refetched for an unknown key at most once per interval
    /// (issue 13 item 3). The answer is the key that verified (for the evidence log).
    pub(crate) async fn verify_with_client_keys(
        &self,
        client: &ParsedClient,
        jws: &CompactJws<'_>,
    ) -> OAuthResult<Result<PublicJwk, JoseError>> {
        if let Some(jwks) = &client.inline_jwks {
            return Ok(jws.verifying_key(jwks).cloned());
        }
        let Some(uri) = client.client.metadata.jwks_uri.as_deref() else {
            return Ok(Err(JoseError::NoMatchingKey));
        };
        let now = self.now();
        let jwks = self.remote_jwks.get(uri, now, self.fetcher.as_ref()).await?;
        match jws.verifying_key(&jwks).cloned() {
            // a key we do not know yet (key rotation at the client): one forced refresh per
            // interval for this URI, and a kid still unknown after it is a remembered miss
            Err(JoseError::NoMatchingKey) => {
                let header = jws.header();
                let miss = match header.kid.as_deref() {
                    Some(kid) => format!("kid:{kid}"),
                    None => format!("alg:{}", header.alg),
                };
                let refreshed = self
                    .remote_jwks
                    .refresh(
                        uri,
                        &jwks,
                        &miss,
                        now,
                        self.settings.jwks_refresh_interval,
                        self.fetcher.as_ref(),
                    )
                    .await?;
                let Refreshed::Newer(fresh) = refreshed else {
                    return Ok(Err(JoseError::NoMatchingKey));
                };
                let r = jws.verifying_key(&fresh).cloned();
                if matches!(r, Err(JoseError::NoMatchingKey)) {
                    self.remote_jwks.remember_miss(uri, &miss, now).await;
                }
                Ok(r)
            }
            other => Ok(other),
        }
    }
}

fn numeric(v: &Option<Value>) -> Option<i64> {
    v.as_ref().and_then(Value::as_f64).map(|f| f as i64)
}
