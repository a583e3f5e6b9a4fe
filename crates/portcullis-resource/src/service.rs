//! A standalone resource server's parts (feature `service`): token facts by introspection
//! (RFC 7662) at a remote Portcullis, authenticated with `private_key_jwt`; resource-server DPoP
//! nonces (RFC 9449 §9) and a replay cache kept in memory; and an axum extractor that admits a
//! request or answers with the RFC 6750 / RFC 9449 refusal, challenge included.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use aws_lc_rs::hmac;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_cert::ClientCertificate;
use portcullis_jose::{SigningKey, b64url, b64url_decode, sha256_b64url};
use serde_json::{Value, json};

use crate::access::{ResourceError, ResourceErrorKind, ResourceRequest, Scheme};
use crate::admit::{AdmitError, Admitted, Policy, ReplayGuard, SourceError, TokenInfo, TokenSource, admit};
use crate::binding::SenderConstraint;
use crate::dpop::NonceSource;
use crate::signature::{ClientKeys, ClientSigning, RequestBody, SignatureCheck};
use crate::{DPOP_ALGS, secure_eq};

/// The nonce time step: a nonce is accepted in its step and the next (60 to 120 s).
const NONCE_STEP: i64 = 60;

/// Resource-server nonces (RFC 9449 §9): an HMAC of the time step under a key made at start.
pub struct LocalNonces {
    key: hmac::Key,
}

impl LocalNonces {
    pub fn new() -> Result<Self, SourceError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key =
            hmac::Key::generate(hmac::HMAC_SHA256, &rng).map_err(|_| SourceError("cannot make a nonce key".into()))?;
        Ok(Self { key })
    }

    fn at(&self, step: i64) -> String {
        b64url(hmac::sign(&self.key, &step.to_be_bytes()).as_ref())
    }
}

impl NonceSource for LocalNonces {
    fn current(&self, now: i64) -> String {
        self.at(now.div_euclid(NONCE_STEP))
    }
    fn is_current(&self, nonce: &str, now: i64) -> bool {
        secure_eq(self.current(now).as_bytes(), nonce.as_bytes())
    }
    fn is_valid(&self, nonce: &str, now: i64) -> bool {
        let Ok(tag) = b64url_decode(nonce) else {
            return false;
        };
        let step = now.div_euclid(NONCE_STEP);
        [step, step - 1]
            .iter()
            .any(|s| hmac::verify(&self.key, &s.to_be_bytes(), &tag).is_ok())
    }
}

/// A bounded in-memory replay cache (RFC 9449 §11.1) for one resource-server process.
pub struct MemoryReplay {
    seen: Mutex<HashMap<String, i64>>,
    max: usize,
}

impl MemoryReplay {
    pub fn new(max: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            max,
        }
    }
}

#[async_trait]
impl ReplayGuard for MemoryReplay {
    async fn remember_once(&self, key: &str, until: i64, now: i64) -> Result<bool, SourceError> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.get(key).is_some_and(|u| *u > now) {
            return Ok(false);
        }
        if seen.len() >= self.max {
            seen.retain(|_, u| *u > now);
            if seen.len() >= self.max {
                // every entry is live: the quarter closest to expiry makes room (refusing every
                // client because one fills the cache would be worse; with server nonces a proof
                // that old is refused anyway once its nonce has passed)
                let mut untils: Vec<i64> = seen.values().copied().collect();
                untils.sort_unstable();
                let cut = untils[untils.len() / 4];
                seen.retain(|_, u| *u > cut);
            }
        }
        seen.insert(key.to_owned(), until);
        Ok(true)
    }
}

/// How long an introspection answer is reused (never past the token's `exp`).
const INTROSPECTION_CACHE_SECONDS: i64 = 10;
/// The most answers kept.
const INTROSPECTION_CACHE_ENTRIES: usize = 10_000;

/// The issuer's discovery document (OIDC Discovery §4), which must name this issuer (§4.3).
async fn discovery(http: &reqwest::Client, issuer: &str) -> Result<Value, SourceError> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let meta: Value = http
        .get(&url)
        .timeout(REMOTE_TIMEOUT)
        .send()
        .await
        .map_err(|e| SourceError(format!("discovery: {e}")))?
        .json()
        .await
        .map_err(|e| SourceError(format!("discovery: {e}")))?;
    if meta["issuer"] != issuer {
        return Err(SourceError("discovery: the issuer does not match".into()));
    }
    Ok(meta)
}

/// Token facts by introspection (RFC 7662) at the issuer, the resource server authenticating
/// with `private_key_jwt` (RFC 7523, FAPI 2.0: `aud` the issuer). Active answers are cached
/// briefly, never past the token's `exp`; inactive ones are not cached.
pub struct Introspection {
    http: reqwest::Client,
    issuer: String,
    endpoint: String,
    client_id: String,
    /// `None`: the HTTP client presents the resource server's certificate (RFC 8705 §2).
    key: Option<SigningKey>,
    cache: Mutex<HashMap<String, (Option<TokenInfo>, i64)>>,
}

/// The longest an introspection call or a JWKS fetch may take.
const REMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Introspection {
    /// `http` must trust the issuer's TLS certificate.
    pub fn new(http: reqwest::Client, issuer: &str, endpoint: &str, client_id: &str, key: SigningKey) -> Self {
        Self {
            http,
            issuer: issuer.to_owned(),
            endpoint: endpoint.to_owned(),
            client_id: client_id.to_owned(),
            key: Some(key),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Authenticating with the TLS client certificate `http` presents (`tls_client_auth` or
    /// `self_signed_tls_client_auth`); `endpoint` is then the introspection endpoint of the
    /// issuer's `mtls_endpoint_aliases`.
    pub fn with_certificate(http: reqwest::Client, issuer: &str, endpoint: &str, client_id: &str) -> Self {
        Self {
            http,
            issuer: issuer.to_owned(),
            endpoint: endpoint.to_owned(),
            client_id: client_id.to_owned(),
            key: None,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The issuer's `introspection_endpoint` from its discovery document.
    pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<String, SourceError> {
        let meta = discovery(http, issuer).await?;
        meta["introspection_endpoint"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SourceError("discovery: no introspection_endpoint".into()))
    }

    fn assertion(&self, key: &SigningKey, now: i64) -> Result<String, SourceError> {
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| SourceError("no randomness".into()))?;
        let claims = json!({
            "iss": self.client_id, "sub": self.client_id, "aud": self.issuer,
            "iat": now, "exp": now + 60, "jti": b64url(jti),
        });
        key.sign_jwt(key.algorithm(), None, &claims)
            .map_err(|e| SourceError(format!("cannot sign the client assertion: {e}")))
    }
}

/// An introspection answer as token facts; `None` unless active, complete and bound.
fn token_info(v: &Value) -> Option<TokenInfo> {
    if v["active"] != true {
        return None;
    }
    let audience = match &v["aud"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    Some(TokenInfo {
        subject: v["sub"].as_str()?.to_owned(),
        client_id: v["client_id"].as_str()?.to_owned(),
        scope: v["scope"]
            .as_str()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        audience,
        expires_at: v["exp"].as_i64()?,
        binding: Some(SenderConstraint::from_cnf(&v["cnf"])?),
    })
}

#[async_trait]
impl TokenSource for Introspection {
    async fn lookup(&self, token: &str, now: i64) -> Result<Option<TokenInfo>, SourceError> {
        let key = sha256_b64url(token);
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((info, until)) = cache.get(&key)
                && *until > now
            {
                // an inactive answer is remembered too: a token never becomes active again,
                // and made-up tokens must not each cost a signed introspection call
                return Ok(info.clone());
            }
        }
        let mut form = vec![
            ("token", token.to_owned()),
            ("token_type_hint", "access_token".to_owned()),
        ];
        match &self.key {
            Some(key) => {
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ));
                form.push(("client_assertion", self.assertion(key, now)?));
            }
            None => form.push(("client_id", self.client_id.clone())),
        }
        let res = self
            .http
            .post(&self.endpoint)
            .timeout(REMOTE_TIMEOUT)
            .form(&form)
            .send()
            .await
            .map_err(|e| SourceError(format!("introspection: {e}")))?;
        if !res.status().is_success() {
            return Err(SourceError(format!("introspection answered {}", res.status())));
        }
        let body: Value = res
            .json()
            .await
            .map_err(|e| SourceError(format!("introspection: {e}")))?;
        let info = token_info(&body);
        let until = match &info {
            Some(i) => (now + INTROSPECTION_CACHE_SECONDS).min(i.expires_at),
            None => now + INTROSPECTION_CACHE_SECONDS,
        };
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= INTROSPECTION_CACHE_ENTRIES {
            cache.retain(|_, (_, u)| *u > now);
            if cache.len() >= INTROSPECTION_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, (info.clone(), until));
        Ok(info)
    }
}

/// How often the issuer's JWKS may be fetched again for an unknown `kid`.
const JWKS_REFRESH_SECONDS: i64 = 60;
/// How long a fetched JWKS is used before it is fetched again.
const JWKS_CACHE_SECONDS: i64 = 300;

/// Token facts from RFC 9068 JWT access tokens, validated here against the issuer's JWKS
/// (from its discovery document; cached, fetched again for an unknown `kid` at most once a
/// minute). A JWT's revocation is not seen (use [`Introspection`] when that matters).
pub struct JwtAccessTokens {
    http: reqwest::Client,
    issuer: String,
    jwks_uri: String,
    keys: tokio::sync::Mutex<JwksState>,
}

#[derive(Default)]
struct JwksState {
    jwks: Option<Arc<portcullis_jose::Jwks>>,
    fetched_at: i64,
    last_forced: Option<i64>,
    /// After a failed fetch, none is tried again for a while (the cached keys still serve).
    failed_at: Option<i64>,
}

/// After a failed JWKS fetch, the next one waits this long.
const JWKS_FAILURE_BACKOFF: i64 = 10;

impl JwtAccessTokens {
    /// The issuer's `jwks_uri` from its discovery document.
    pub async fn discover(http: reqwest::Client, issuer: &str) -> Result<Self, SourceError> {
        let meta = discovery(&http, issuer).await?;
        let jwks_uri = meta["jwks_uri"]
            .as_str()
            .ok_or_else(|| SourceError("discovery: no jwks_uri".into()))?
            .to_owned();
        Ok(Self {
            http,
            issuer: issuer.to_owned(),
            jwks_uri,
            keys: tokio::sync::Mutex::new(JwksState::default()),
        })
    }

    async fn fetch(&self) -> Result<Arc<portcullis_jose::Jwks>, SourceError> {
        let v: Value = self
            .http
            .get(&self.jwks_uri)
            .timeout(REMOTE_TIMEOUT)
            .send()
            .await
            .map_err(|e| SourceError(format!("jwks_uri: {e}")))?
            .json()
            .await
            .map_err(|e| SourceError(format!("jwks_uri: {e}")))?;
        portcullis_jose::Jwks::from_json(&v)
            .map(Arc::new)
            .map_err(|e| SourceError(format!("jwks_uri: {e}")))
    }

    /// The issuer's keys; `force` fetches again for an unknown `kid` (at most once a minute).
    async fn keys(&self, now: i64, force: bool) -> Result<Option<Arc<portcullis_jose::Jwks>>, SourceError> {
        // one fetch at a time: waiters get its result (bounded by REMOTE_TIMEOUT)
        let mut st = self.keys.lock().await;
        let stale = st.jwks.is_none() || now - st.fetched_at >= JWKS_CACHE_SECONDS;
        let may_force = force && st.last_forced.is_none_or(|t| now - t >= JWKS_REFRESH_SECONDS);
        let backing_off = st.failed_at.is_some_and(|t| now - t < JWKS_FAILURE_BACKOFF);
        if (stale || may_force) && !backing_off {
            if force {
                st.last_forced = Some(now);
            }
            match self.fetch().await {
                Ok(jwks) => {
                    st.jwks = Some(jwks);
                    st.fetched_at = now;
                    st.failed_at = None;
                }
                // the cached keys, if any, keep serving
                Err(e) if st.jwks.is_some() => {
                    st.failed_at = Some(now);
                    let _ = e;
                    if force {
                        return Ok(None);
                    }
                }
                Err(e) => {
                    st.failed_at = Some(now);
                    return Err(e);
                }
            }
        } else if force {
            return Ok(None);
        }
        match &st.jwks {
            Some(j) => Ok(Some(j.clone())),
            None => Err(SourceError("the issuer's keys are not available".into())),
        }
    }
}

#[async_trait]
impl TokenSource for JwtAccessTokens {
    async fn lookup(&self, token: &str, now: i64) -> Result<Option<TokenInfo>, SourceError> {
        let Ok(jws) = portcullis_jose::CompactJws::parse(token) else {
            return Ok(None);
        };
        // RFC 9068 §4: typ at+jwt (or application/at+jwt), so that no other JWT passes
        let typ_ok = jws
            .header()
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"));
        if !typ_ok {
            return Ok(None);
        }
        let Some(keys) = self.keys(now, false).await? else {
            return Ok(None);
        };
        match jws.verify_with_set(&keys) {
            Ok(()) => {}
            Err(portcullis_jose::JoseError::NoMatchingKey) => {
                let Some(fresh) = self.keys(now, true).await? else {
                    return Ok(None);
                };
                if jws.verify_with_set(&fresh).is_err() {
                    return Ok(None);
                }
            }
            Err(_) => return Ok(None),
        }
        let Ok(claims) = jws.claims::<Value>() else {
            return Ok(None);
        };
        // RFC 9068 §2.2: iss is the issuer, and aud is required
        let has_aud = match &claims["aud"] {
            Value::String(a) => !a.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => false,
        };
        if claims["iss"] != self.issuer.as_str() || !has_aud {
            return Ok(None);
        }
        Ok(token_info(&json!({
            "active": claims["exp"].as_i64().is_some_and(|e| e > now),
            "sub": claims["sub"], "client_id": claims["client_id"], "scope": claims["scope"],
            "aud": claims["aud"], "exp": claims["exp"], "cnf": claims["cnf"],
        })))
    }
}

/// One protected resource: its public URL (for `htu`), what it asks of tokens, and where it
/// learns about them.
pub struct ProtectedResource {
    /// The public URL clients call (configured, never taken from `Host`): its scheme, host and
    /// port, with the path of the request received, are the `htu` a DPoP proof must name
    /// (RFC 9449 §4.3), so one resource may guard several routes.
    pub url: String,
    /// The resource's identifier (RFC 8707), which a token's audience must contain.
    pub audience: Option<String>,
    pub scopes: Vec<String>,
    pub nonce_required: bool,
    pub source: Arc<dyn TokenSource>,
    pub nonces: Arc<dyn NonceSource>,
    pub replay: Arc<dyn ReplayGuard>,
    /// Behind a TLS-terminating proxy: the header it forwards client certificates in and the
    /// proxies believed (RFC 8705 §3 binding through the proxy); `None` reads only the
    /// connection's own certificate ([`PresentedCertificate`]).
    pub certificates: Option<crate::proxy::CertificateSource>,
    /// HTTP message signatures (FAPI 2.0 HTTP Signatures): where clients' keys come from;
    /// `None` ignores signatures. A signed request is verified whenever this is set.
    pub client_keys: Option<Arc<dyn ClientKeys>>,
    /// Every client must sign its requests (HS 5.3.1.2-3), not only those registered to.
    pub require_signed_requests: bool,
    /// Signs every response of the routes [`require_token`] wraps (HS 5.3.2.1), with this key
    /// (publish its public JWK where clients find it).
    pub response_signer: Option<Arc<portcullis_jose::SigningKey>>,
}

/// A request's query and body, for its signature (see [`ProtectedResource::admit_signed`]).
pub struct SignedParts<'a> {
    /// The query string as received (part of `@target-uri`).
    pub query: Option<&'a str>,
    /// Read only when a signature is verified, after the token was admitted.
    pub body: &'a dyn RequestBody,
}

impl ProtectedResource {
    /// The URL a request for `path` was made to: the configured origin and that path.
    fn target(&self, path: &str) -> String {
        match url::Url::parse(&self.url) {
            Ok(u) => format!("{}{path}", u.origin().ascii_serialization()),
            Err(_) => self.url.clone(),
        }
    }

    /// Admits a request given as its method, path, query, headers and client certificate; the
    /// verified token and a DPoP nonce to rotate to (if any). A signed request is verified as
    /// one without a body (use [`require_token`] for routes with bodies).
    pub async fn admit(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        certificate: Option<&ClientCertificate>,
        now: i64,
    ) -> Result<(TokenInfo, Option<String>), Refusal> {
        let empty: &[u8] = &[];
        let parts = SignedParts { query, body: &empty };
        self.admit_signed(method, path, headers, certificate, &parts, now)
            .await
            .map(|a| (a.token, a.fresh_nonce))
    }

    /// [`Self::admit`] with the request's query and body, so that its HTTP message signature
    /// (if any, or required) is verified over them (HS 5.3.1.2).
    pub async fn admit_signed(
        &self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        certificate: Option<&ClientCertificate>,
        signed: &SignedParts<'_>,
        now: i64,
    ) -> Result<Admitted, Refusal> {
        let url = self.target(path);
        let target_uri = portcullis_httpsig::target_uri(&url, signed.query);
        let all = |name: header::HeaderName| -> Vec<&str> {
            headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap_or("\u{0}"))
                .collect()
        };
        let authorization = all(header::AUTHORIZATION);
        let dpop = all(header::HeaderName::from_static("dpop"));
        let scheme = authorization
            .first()
            .and_then(|h| h.split_once(' '))
            .filter(|(s, _)| s.eq_ignore_ascii_case("Bearer"))
            .map_or(Scheme::Dpop, |_| Scheme::Bearer);
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        let req = ResourceRequest {
            method,
            url: &url,
            authorization: &authorization,
            dpop: &dpop,
            certificate,
        };
        let check = self.client_keys.as_deref().map(|clients| SignatureCheck {
            request: portcullis_httpsig::RequestView {
                method,
                target_uri: &target_uri,
                headers,
            },
            body: signed.body,
            required: self.require_signed_requests,
            clients,
            policy: portcullis_httpsig::RequestPolicy::default(),
        });
        let policy = Policy {
            scopes: &scopes,
            audience: self.audience.as_deref(),
            nonce_required: self.nonce_required,
            signatures: check.as_ref(),
        };
        let nonce_now = self.nonces.current(now);
        admit(
            &req,
            now,
            self.nonces.as_ref(),
            self.source.as_ref(),
            self.replay.as_ref(),
            &policy,
        )
        .await
        .map_err(|error| Refusal {
            error,
            scheme,
            nonce: nonce_now,
        })
    }
}

/// A refusal as an HTTP response: the RFC status, a JSON body, the `WWW-Authenticate`
/// challenge of the scheme used (RFC 6750 §3, RFC 9449 §7.1), `DPoP-Nonce` when one is asked
/// for (§9), and `Cache-Control: no-store`.
#[derive(Debug)]
pub struct Refusal {
    pub error: AdmitError,
    pub scheme: Scheme,
    nonce: String,
}

/// `error_description` in the RFC 6749 §5.2 character set, bounded.
fn printable(d: &str) -> String {
    d.chars()
        .take(300)
        .map(|c| {
            if matches!(c, ' '..='~') && c != '"' && c != '\\' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let e = match self.error {
            AdmitError::Refused(e) => e,
            AdmitError::Source(_) => {
                let body = json!({"error": "server_error", "error_description": "the token could not be checked"});
                let mut res = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return res;
            }
        };
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let description = printable(&e.description);
        let body = json!({"error": e.code(), "error_description": description});
        let mut res = (status, axum::Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let challenge = challenge(&e, self.scheme, &description);
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        if let ResourceErrorKind::UseDpopNonce(n) = &e.kind
            && let Ok(v) = HeaderValue::from_str(n)
        {
            h.insert("dpop-nonce", v);
        } else if let Ok(v) = HeaderValue::from_str(&self.nonce)
            && self.scheme == Scheme::Dpop
            && e.status() == 401
        {
            // a client that got no nonce yet learns the current one with any DPoP refusal
            h.insert("dpop-nonce", v);
        }
        res
    }
}

fn challenge(e: &ResourceError, scheme: Scheme, description: &str) -> Option<String> {
    if e.status() == 400 {
        return None;
    }
    if e.without_credentials {
        return Some(format!("DPoP algs=\"{DPOP_ALGS}\", Bearer"));
    }
    Some(match scheme {
        Scheme::Dpop => format!(
            "DPoP error=\"{}\", error_description=\"{description}\", algs=\"{DPOP_ALGS}\"",
            e.code()
        ),
        Scheme::Bearer => format!("Bearer error=\"{}\", error_description=\"{description}\"", e.code()),
    })
}

/// The client certificate of a request, put in its extensions by the server's accept loop (or
/// its proxy handling); absent when the connection presented none.
#[derive(Clone, Debug)]
pub struct PresentedCertificate(pub Arc<ClientCertificate>);

/// An axum extractor: the verified token of an admitted request, or the refusal.
pub struct Verified(pub TokenInfo);

/// A DPoP nonce to send with the response (RFC 9449 §9), left in the request's extensions by
/// [`Verified`]; [`require_token`] sends it.
#[derive(Clone, Debug)]
pub struct FreshNonce(pub String);

impl<S> FromRequestParts<S> for Verified
where
    Arc<ProtectedResource>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refusal> {
        // already admitted by the [`require_token`] layer: never twice (the DPoP jti is spent)
        if let Some(LayerAdmitted(token)) = parts.extensions.get::<LayerAdmitted>() {
            return Ok(Verified(token.clone()));
        }
        let resource = Arc::<ProtectedResource>::from_ref(state);
        let certificate = certificate_of(&resource, parts)?;
        // the request's path (under a nested router axum strips the prefix, and the proof's
        // htu then does not match: mount protected routes unnested)
        let path = parts.uri.path().to_owned();
        // review M5: without the layer the body is not at hand, so a signed request that has
        // one cannot be verified here: refused rather than admitted over an unchecked body
        if resource.client_keys.is_some() && parts.headers.contains_key("signature-input") && has_body(&parts.headers) {
            return Err(Refusal {
                error: AdmitError::Refused(ResourceError {
                    kind: ResourceErrorKind::InvalidSignature,
                    description:
                        "signed requests with a body are verified by the require_token layer, which this route lacks"
                            .into(),
                    without_credentials: false,
                }),
                scheme: Scheme::Bearer,
                nonce: String::new(),
            });
        }
        let empty: &[u8] = &[];
        let signed = SignedParts {
            query: parts.uri.query(),
            body: &empty,
        };
        let admitted = resource
            .admit_signed(
                parts.method.as_str(),
                &path,
                &parts.headers,
                certificate.as_deref(),
                &signed,
                unix_now(),
            )
            .await?;
        if let Some(n) = admitted.fresh_nonce {
            parts.extensions.insert(FreshNonce(n));
        }
        Ok(Verified(admitted.token))
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The request's client certificate: the connection's, or (behind a trusted proxy) the one it
/// forwarded.
fn certificate_of(resource: &ProtectedResource, parts: &Parts) -> Result<Option<Arc<ClientCertificate>>, Refusal> {
    let direct = parts.extensions.get::<PresentedCertificate>().map(|c| c.0.clone());
    match &resource.certificates {
        None => Ok(direct),
        Some(source) => {
            let peer = parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
            source
                .certificate(peer, direct.as_ref(), &parts.headers)
                .map_err(|e| Refusal {
                    error: AdmitError::Refused(e),
                    scheme: Scheme::Bearer,
                    nonce: String::new(),
                })
        }
    }
}

/// Marks a request the [`require_token`] layer admitted, for the [`Verified`] extractor.
#[derive(Clone, Debug)]
struct LayerAdmitted(TokenInfo);

/// The largest request body [`require_token`] holds to check its signature's `Content-Digest`
/// (larger ones are refused).
pub const MAX_SIGNED_BODY: usize = 1024 * 1024;

/// How long [`require_token`] waits for a signed request's body once it reads it.
const SIGNED_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The largest response body [`require_token`] signs.
const MAX_SIGNED_RESPONSE: usize = 16 * 1024 * 1024;

/// Whether the request says it has a body.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// A request body read only if a signature is to be verified over it (review M4: after the
/// token was admitted, within [`MAX_SIGNED_BODY`] and [`SIGNED_BODY_TIMEOUT`]); otherwise
/// handed on untouched.
struct LazyBody {
    body: Mutex<Option<axum::body::Body>>,
    bytes: tokio::sync::OnceCell<axum::body::Bytes>,
}

impl LazyBody {
    fn new(body: axum::body::Body) -> Self {
        Self {
            body: Mutex::new(Some(body)),
            bytes: tokio::sync::OnceCell::new(),
        }
    }

    /// The body for the handler: the bytes if they were read, else the body as it came.
    fn into_body(self) -> axum::body::Body {
        match self.bytes.into_inner() {
            Some(bytes) => axum::body::Body::from(bytes),
            None => self
                .body
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .unwrap_or_else(axum::body::Body::empty),
        }
    }
}

#[async_trait]
impl RequestBody for LazyBody {
    async fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, String> {
        let bytes = self
            .bytes
            .get_or_try_init(|| async {
                let body = self.body.lock().unwrap_or_else(PoisonError::into_inner).take();
                let Some(body) = body else {
                    return Err("the request body was already taken".to_owned());
                };
                match tokio::time::timeout(SIGNED_BODY_TIMEOUT, axum::body::to_bytes(body, MAX_SIGNED_BODY)).await {
                    Ok(Ok(b)) => Ok(b),
                    Ok(Err(_)) => Err(format!(
                        "the request body is larger than {MAX_SIGNED_BODY} bytes or broken"
                    )),
                    Err(_) => Err("the request body did not arrive in time".to_owned()),
                }
            })
            .await?;
        Ok(std::borrow::Cow::Borrowed(&bytes[..]))
    }
}

/// The tower layer form (`axum::middleware::from_fn_with_state(resource, require_token)`):
/// admits every request of the routes it wraps, hands the handler the [`TokenInfo`] as an
/// extension (and to the [`Verified`] extractor), or answers with the refusal. With
/// [`ProtectedResource::client_keys`] it verifies request signatures over the whole body
/// (HS 5.3.1.2), reading the body only once the token was admitted; with
/// [`ProtectedResource::response_signer`] it signs every response of the route, refusals
/// included (HS 5.3.2.1), bound to the request (`;req`).
pub async fn require_token(
    axum::extract::State(resource): axum::extract::State<Arc<ProtectedResource>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let body = LazyBody::new(body);
    let signer = resource.response_signer.clone();
    // what the response signature binds to (only when responses are signed)
    let request = signer.as_ref().map(|_| {
        (
            parts.method.as_str().to_owned(),
            portcullis_httpsig::target_uri(&resource.target(parts.uri.path()), parts.uri.query()),
            parts.headers.clone(),
        )
    });
    let now = unix_now();
    let (res, signature) = match admit_parts(&resource, &mut parts, &body).await {
        Ok(admitted) => {
            let fresh = admitted.fresh_nonce;
            let signature = admitted.signed.map(|s| s.signature);
            parts.extensions.insert(LayerAdmitted(admitted.token.clone()));
            parts.extensions.insert(admitted.token);
            let req = axum::extract::Request::from_parts(parts, body.into_body());
            (with_nonce(next.run(req).await, fresh), signature)
        }
        Err(refusal) => (refusal.into_response(), None),
    };
    let (Some(key), Some((method, target_uri, request_headers))) = (signer, request) else {
        return res;
    };
    let request = portcullis_httpsig::RequestView {
        method: &method,
        target_uri: &target_uri,
        headers: &request_headers,
    };
    let (mut res_parts, res_body) = res.into_parts();
    let Ok(res_bytes) = axum::body::to_bytes(res_body, MAX_SIGNED_RESPONSE).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "response too large to sign").into_response();
    };
    let status = res_parts.status.as_u16();
    let signed = portcullis_httpsig::sign_response_binding_digest(
        &mut res_parts.headers,
        status,
        &res_bytes,
        &request,
        has_body(&request_headers),
        signature.as_ref(),
        &key,
        now,
    );
    match signed {
        Ok(_) => Response::from_parts(res_parts, axum::body::Body::from(res_bytes)),
        Err(e) => {
            tracing::error!(error = %e, "cannot sign the response");
            (StatusCode::INTERNAL_SERVER_ERROR, "the response could not be signed").into_response()
        }
    }
}

async fn admit_parts(
    resource: &ProtectedResource,
    parts: &mut Parts,
    body: &dyn RequestBody,
) -> Result<Admitted, Refusal> {
    let certificate = certificate_of(resource, parts)?;
    let signed = SignedParts {
        query: parts.uri.query(),
        body,
    };
    resource
        .admit_signed(
            parts.method.as_str(),
            parts.uri.path(),
            &parts.headers,
            certificate.as_deref(),
            &signed,
            unix_now(),
        )
        .await
}

/// RFC 9449 §9: the next nonce rides along on a success.
fn with_nonce(mut res: Response, fresh: Option<String>) -> Response {
    if let Some(v) = fresh.and_then(|n| HeaderValue::from_str(&n).ok()) {
        res.headers_mut().insert("dpop-nonce", v);
    }
    res
}

/// Clients' signing keys given by the operator (a resource without a registry of its own).
#[derive(Debug, Clone, Default)]
pub struct StaticClientKeys(pub HashMap<String, ClientSigning>);

#[async_trait]
impl ClientKeys for StaticClientKeys {
    async fn must_sign(&self, client_id: &str) -> Result<bool, SourceError> {
        Ok(self.0.get(client_id).is_some_and(|c| c.required))
    }

    async fn key(&self, client_id: &str, kid: &str) -> Result<Option<portcullis_jose::PublicJwk>, SourceError> {
        Ok(self
            .0
            .get(client_id)
            .and_then(|c| c.keys.keys().iter().find(|k| k.kid() == Some(kid)).cloned()))
    }
}

/// FAPI 2.0 Implementation Advice (IA 2.2.1): echo `x-fapi-interaction-id` (or mint one), and
/// `Cache-Control: no-store` on every response; for `axum::middleware::from_fn`.
pub async fn fapi_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let id = req
        .headers()
        .get("x-fapi-interaction-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-fapi-interaction-id", v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_nonces_rotate() {
        let n = LocalNonces::new().unwrap();
        let t = 1_800_000_000;
        let cur = n.current(t);
        assert!(n.is_current(&cur, t) && n.is_valid(&cur, t + NONCE_STEP));
        assert!(!n.is_valid(&cur, t + 3 * NONCE_STEP));
        assert!(!LocalNonces::new().unwrap().is_valid(&cur, t));
    }

    #[tokio::test]
    async fn replay_cache_is_bounded() {
        let r = MemoryReplay::new(2);
        assert!(r.remember_once("a", 100, 0).await.unwrap());
        assert!(!r.remember_once("a", 100, 50).await.unwrap());
        assert!(r.remember_once("b", 100, 0).await.unwrap());
        // full of live entries: the ones closest to expiry make room, and the cache stays bounded
        assert!(r.remember_once("c", 300, 0).await.unwrap());
        assert!(r.seen.lock().unwrap().len() <= 2);
        assert!(!r.remember_once("c", 300, 10).await.unwrap(), "the newest is kept");
    }

    #[test]
    fn introspection_answers() {
        let jkt = "a".repeat(43);
        let good = json!({"active": true, "sub": "u", "client_id": "c", "scope": "a b", "aud": "https://rs",
            "exp": 10, "cnf": {"jkt": jkt}});
        let info = token_info(&good).unwrap();
        assert_eq!(info.audience, vec!["https://rs".to_owned()]);
        assert_eq!(info.scope.len(), 2);
        assert!(token_info(&json!({"active": false})).is_none());
        let mut unbound = good.clone();
        unbound.as_object_mut().unwrap().remove("cnf");
        assert!(token_info(&unbound).is_none(), "an unbound token is never admitted");
    }
}
