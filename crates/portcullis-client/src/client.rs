//! [`Client`]: a FAPI 2.0 client registered at one authorization server, authenticating with
//! `private_key_jwt` (RFC 7523) and holding DPoP-bound tokens (RFC 9449).

use std::sync::{Arc, Mutex};

use portcullis_httpsig::http::{HeaderMap, Method};
use portcullis_httpsig::{RequestPolicy, RequestView, ResponseView, VerifiedSignature, sign_request, verify_response};
use portcullis_jose::{JoseError, Jwks, PublicJwk, SigningKey};
use serde_json::{Value, json};

use crate::authorization::{AuthorizationCode, AuthorizationParams, PendingAuthorization, RequestSecrets};
use crate::dpop::{DpopExchange, DpopKey, DpopNonces, ProofTarget, send_with_dpop};
use crate::tokens::{IdToken, IdTokenExpectations, TokenResponse, validate_id_token};
use crate::transport::{HttpRequest, HttpResponse, Transport};
use crate::{ClientError, ServerMetadata, random};

/// RFC 7523 §2.2: the client assertion type of `private_key_jwt`.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Seconds a client assertion is valid; FAPI 2.0 servers refuse long-lived ones.
const ASSERTION_LIFETIME: i64 = 60;

/// A clock in UNIX seconds. Tests and load drivers may bring their own.
pub type Clock = fn() -> i64;

/// The system clock.
pub fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The answer of one exchange, with what its DPoP handling went through and the server's
/// `x-fapi-interaction-id` (FAPI 2.0 SP 5.3.4), for logs and reports.
#[derive(Debug, Clone)]
pub struct Exchanged<T> {
    pub value: T,
    pub dpop: DpopExchange,
    pub interaction_id: Option<String>,
}

/// A call to a protected resource.
#[derive(Debug, Clone)]
pub struct ResourceRequest<'a> {
    pub method: Method,
    pub url: &'a str,
    pub access_token: &'a str,
    /// A JSON body for POST; empty for none.
    pub body: Vec<u8>,
    /// Sign the request with the client's key (FAPI 2.0 HTTP Signatures, RFC 9421).
    pub sign: bool,
    /// Verify the resource's response signature with the keys at this JWKS URL.
    pub verify_response_with: Option<&'a str>,
}

/// A resource's answer.
#[derive(Debug, Clone)]
pub struct ResourceResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The label our request signature was made under, when it was signed.
    pub request_signature: Option<String>,
    /// The resource's response signature, when it was asked for and verified.
    pub response_signature: Option<VerifiedSignature>,
}

/// A client registered at one server: its `client_id`, its signing key (client assertions,
/// HTTP message signatures), its DPoP key, and the server nonces it has been given.
pub struct Client {
    transport: Arc<dyn Transport>,
    metadata: ServerMetadata,
    client_id: String,
    key: SigningKey,
    assertion_typ: Option<String>,
    dpop: DpopKey,
    nonces: DpopNonces,
    jwks: Mutex<Option<Arc<Jwks>>>,
    clock: Clock,
}

impl Client {
    pub fn new(
        transport: Arc<dyn Transport>,
        metadata: ServerMetadata,
        client_id: impl Into<String>,
        key: SigningKey,
        dpop: DpopKey,
    ) -> Self {
        Self {
            transport,
            metadata,
            client_id: client_id.into(),
            key,
            assertion_typ: None,
            dpop,
            nonces: DpopNonces::default(),
            jwks: Mutex::new(None),
            clock: system_now,
        }
    }

    /// Sets the `typ` header of client assertions (e.g. `client-authentication+jwt`); absent by
    /// default, which every FAPI 2.0 server accepts.
    pub fn with_assertion_typ(mut self, typ: Option<&str>) -> Self {
        self.assertion_typ = typ.map(str::to_owned);
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The transport this client sends with (to build another client beside it).
    pub fn transport(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }

    pub fn metadata(&self) -> &ServerMetadata {
        &self.metadata
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn dpop_key(&self) -> &DpopKey {
        &self.dpop
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// A fresh `private_key_jwt` assertion (RFC 7523 §3): `iss` = `sub` = client_id, `aud` = the
    /// issuer as a single string (FAPI 2.0 SP 5.3.2.1-8), a 60 s lifetime, a new `jti`.
    pub fn client_assertion(&self) -> Result<String, ClientError> {
        let now = (self.clock)();
        let claims = json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.metadata.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": random::token(),
        });
        Ok(self
            .key
            .sign_jwt(self.key.algorithm(), self.assertion_typ.as_deref(), &claims)?)
    }

    /// Pushes an authorization request (RFC 9126) with PKCE S256, `state` and `nonce`,
    /// authenticated with a client assertion and carrying a DPoP proof, which binds the code
    /// to the DPoP key (RFC 9449 §10).
    pub async fn push_authorization(
        &self,
        params: &AuthorizationParams,
    ) -> Result<Exchanged<PendingAuthorization>, ClientError> {
        if params.scope.trim().is_empty() {
            return Err(ClientError::Usage("the scope is empty".into()));
        }
        let secrets = RequestSecrets::new();
        let challenge = secrets.code_challenge();
        let url = self.metadata.pushed_authorization_request_endpoint.clone();
        let (response, dpop) = self
            .post_with_dpop(&url, || {
                let mut form: Vec<(&str, &str)> = vec![
                    ("response_type", "code"),
                    ("client_id", &self.client_id),
                    ("redirect_uri", &params.redirect_uri),
                    ("scope", &params.scope),
                    ("state", &secrets.state),
                    ("nonce", &secrets.nonce),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ];
                form.extend(params.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                Ok(form)
            })
            .await?;
        if response.status != 201 {
            return Err(endpoint_error("PAR", &response));
        }
        let body = response.json().unwrap_or(Value::Null);
        let request_uri = body["request_uri"]
            .as_str()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| unexpected("PAR", &response, "no request_uri in the answer"))?
            .to_owned();
        let expires_in = body["expires_in"]
            .as_i64()
            .ok_or_else(|| unexpected("PAR", &response, "no expires_in in the answer"))?;
        let mut authorization_url = url::Url::parse(&self.metadata.authorization_endpoint)
            .map_err(|e| ClientError::Usage(format!("authorization_endpoint: {e}")))?;
        // RFC 9126 §4: only client_id and request_uri go through the browser
        authorization_url
            .query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("request_uri", &request_uri);
        Ok(Exchanged {
            interaction_id: interaction_id(&response),
            value: PendingAuthorization {
                request_uri,
                expires_in,
                authorization_url: authorization_url.to_string(),
                redirect_uri: params.redirect_uri.clone(),
                state: secrets.state,
                nonce: secrets.nonce,
                code_verifier: secrets.code_verifier,
                issuer: self.metadata.issuer.clone(),
                // FAPI 2.0 SP 5.3.3.2 (RFC 9207): every FAPI 2.0 server sends iss, whatever its
                // metadata says; a response without it is refused
                iss_required: true,
            },
            dpop,
        })
    }

    /// Redeems an authorization code (RFC 6749 §4.1.3) with the PKCE verifier and a DPoP proof.
    /// The answer must be a DPoP-bound token (`token_type` `DPoP`, RFC 9449 §5).
    pub async fn exchange_code(
        &self,
        pending: &PendingAuthorization,
        code: &AuthorizationCode,
    ) -> Result<Exchanged<TokenResponse>, ClientError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.0.as_str()),
            ("redirect_uri", pending.redirect_uri.as_str()),
            ("code_verifier", pending.code_verifier.as_str()),
        ];
        self.token_request(&form).await
    }

    /// Uses a refresh token (RFC 6749 §6) with a DPoP proof of the same key.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Exchanged<TokenResponse>, ClientError> {
        self.token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
            .await
    }

    /// Checks an id_token against the server's JWKS (fetched once, and again when no key
    /// matches, as after a rotation) and this client's expectations.
    pub async fn validate_id_token(&self, id_token: &str, nonce: Option<&str>) -> Result<IdToken, ClientError> {
        let expected = IdTokenExpectations {
            issuer: &self.metadata.issuer,
            client_id: &self.client_id,
            nonce,
            now: (self.clock)(),
        };
        let jwks = self.server_jwks(false).await?;
        match validate_id_token(id_token, &jwks, &expected) {
            Err(crate::IdTokenError::Signature(JoseError::NoMatchingKey)) => {
                let jwks = self.server_jwks(true).await?;
                Ok(validate_id_token(id_token, &jwks, &expected)?)
            }
            other => Ok(other?),
        }
    }

    /// The userinfo endpoint (OIDC Core §5.3) with the DPoP-bound access token.
    pub async fn userinfo(&self, access_token: &str) -> Result<Exchanged<Value>, ClientError> {
        let url = self
            .metadata
            .userinfo_endpoint
            .clone()
            .ok_or(crate::DiscoveryError::Missing("userinfo_endpoint"))?;
        let r = self
            .resource(ResourceRequest {
                method: Method::GET,
                url: &url,
                access_token,
                body: Vec::new(),
                sign: false,
                verify_response_with: None,
            })
            .await?;
        if r.value.status != 200 {
            return Err(resource_error(
                "userinfo",
                r.value.status,
                &r.value.headers,
                &r.value.body,
            ));
        }
        let claims = serde_json::from_slice(&r.value.body).map_err(|_| ClientError::UnexpectedResponse {
            endpoint: "userinfo",
            status: 200,
            detail: "the claims are not JSON".into(),
        })?;
        Ok(Exchanged {
            value: claims,
            dpop: r.dpop,
            interaction_id: r.interaction_id,
        })
    }

    /// Token introspection (RFC 7662) of one of this client's tokens, authenticated with a
    /// client assertion.
    pub async fn introspect(&self, token: &str) -> Result<Value, ClientError> {
        let url = self.metadata.document["introspection_endpoint"]
            .as_str()
            .ok_or(crate::DiscoveryError::Missing("introspection_endpoint"))?
            .to_owned();
        let assertion = self.client_assertion()?;
        let request = HttpRequest::form(
            &url,
            &[
                ("token", token),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
        );
        let response = self.transport.send(request).await?;
        if response.status != 200 {
            return Err(endpoint_error("introspection", &response));
        }
        response
            .json()
            .ok_or_else(|| unexpected("introspection", &response, "the answer is not JSON"))
    }

    /// Calls a protected resource with the DPoP-bound token: `Authorization: DPoP <token>` and
    /// a proof with `ath` (RFC 9449 §7), the resource's nonce honoured (§9); optionally signed
    /// (HS 5.3.1.1) and with the response signature verified (HS 5.3.2.2). Any status is
    /// returned; only transport and signature failures are errors.
    pub async fn resource(&self, request: ResourceRequest<'_>) -> Result<Exchanged<ResourceResponse>, ClientError> {
        let now = (self.clock)();
        let mut sent: Option<(HeaderMap, Option<String>)> = None;
        let (response, dpop) = send_with_dpop(
            self.transport.as_ref(),
            &self.dpop,
            &self.nonces,
            now,
            ProofTarget {
                method: &request.method,
                url: request.url,
                access_token: Some(request.access_token),
            },
            |proof| {
                let mut r = HttpRequest {
                    method: request.method.clone(),
                    url: request.url.to_owned(),
                    headers: HeaderMap::new(),
                    body: request.body.clone(),
                }
                .header("authorization", &format!("DPoP {}", request.access_token))?
                .header("dpop", &proof)?;
                if !r.body.is_empty() {
                    r = r.header("content-type", "application/json")?;
                }
                let label = if request.sign {
                    let signed = sign_request(
                        &mut r.headers,
                        request.method.as_str(),
                        request.url,
                        &r.body,
                        &self.key,
                        now,
                    )?;
                    Some(signed.label)
                } else {
                    None
                };
                sent = Some((r.headers.clone(), label));
                Ok(r)
            },
        )
        .await?;
        let (sent_headers, request_signature) = sent.unwrap_or_default();
        let response_signature = match request.verify_response_with {
            None => None,
            Some(jwks_uri) => {
                let jwks = self.jwks_at(jwks_uri).await?;
                let lookup =
                    |kid: &str| -> Option<PublicJwk> { jwks.keys().iter().find(|k| k.kid() == Some(kid)).cloned() };
                let verified = verify_response(
                    &ResponseView {
                        status: response.status,
                        headers: &response.headers,
                    },
                    &response.body,
                    &RequestView {
                        method: request.method.as_str(),
                        target_uri: request.url,
                        headers: &sent_headers,
                    },
                    !request.body.is_empty(),
                    request_signature.as_deref(),
                    (self.clock)(),
                    &RequestPolicy::default(),
                    &lookup,
                )?;
                Some(verified)
            }
        };
        Ok(Exchanged {
            interaction_id: interaction_id(&response),
            value: ResourceResponse {
                status: response.status,
                headers: response.headers,
                body: response.body,
                request_signature,
                response_signature,
            },
            dpop,
        })
    }

    async fn token_request(&self, grant: &[(&str, &str)]) -> Result<Exchanged<TokenResponse>, ClientError> {
        let url = self.metadata.token_endpoint.clone();
        let (response, dpop) = self.post_with_dpop(&url, || Ok(grant.to_vec())).await?;
        if response.status != 200 {
            return Err(endpoint_error("token endpoint", &response));
        }
        let tokens: TokenResponse = serde_json::from_slice(&response.body)
            .map_err(|e| unexpected("token endpoint", &response, &format!("not a token response: {e}")))?;
        // RFC 9449 §5: a DPoP-bound token says so; a Bearer token would be usable by anyone
        if !tokens.token_type.eq_ignore_ascii_case("DPoP") {
            return Err(unexpected(
                "token endpoint",
                &response,
                &format!(
                    "token_type is {:?}, not DPoP: the token is not bound to our key",
                    tokens.token_type
                ),
            ));
        }
        Ok(Exchanged {
            interaction_id: interaction_id(&response),
            value: tokens,
            dpop,
        })
    }

    /// A form POST with a fresh client assertion and a DPoP proof, retried once for a nonce.
    async fn post_with_dpop<'a>(
        &self,
        url: &str,
        form: impl Fn() -> Result<Vec<(&'a str, &'a str)>, ClientError>,
    ) -> Result<(HttpResponse, DpopExchange), ClientError> {
        send_with_dpop(
            self.transport.as_ref(),
            &self.dpop,
            &self.nonces,
            (self.clock)(),
            ProofTarget {
                method: &Method::POST,
                url,
                access_token: None,
            },
            |proof| {
                let assertion = self.client_assertion()?;
                let mut params = form()?;
                params.push(("client_assertion_type", ASSERTION_TYPE));
                params.push(("client_assertion", &assertion));
                HttpRequest::form(url, &params).header("dpop", &proof)
            },
        )
        .await
    }

    async fn server_jwks(&self, refresh: bool) -> Result<Arc<Jwks>, ClientError> {
        if !refresh
            && let Ok(cached) = self.jwks.lock()
            && let Some(jwks) = cached.as_ref()
        {
            return Ok(jwks.clone());
        }
        let jwks = Arc::new(self.fetch_jwks(&self.metadata.jwks_uri.clone()).await?);
        if let Ok(mut cached) = self.jwks.lock() {
            *cached = Some(jwks.clone());
        }
        Ok(jwks)
    }

    /// A JWK Set: the server's (cached) or another's (fetched).
    async fn jwks_at(&self, url: &str) -> Result<Arc<Jwks>, ClientError> {
        if url == self.metadata.jwks_uri {
            return self.server_jwks(false).await;
        }
        Ok(Arc::new(self.fetch_jwks(url).await?))
    }

    async fn fetch_jwks(&self, url: &str) -> Result<Jwks, ClientError> {
        let response = self.transport.send(HttpRequest::get(url)).await?;
        if response.status != 200 {
            return Err(unexpected("jwks_uri", &response, "no JWK Set"));
        }
        let document = response
            .json()
            .ok_or_else(|| unexpected("jwks_uri", &response, "the JWK Set is not JSON"))?;
        Ok(Jwks::from_json(&document)?)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("issuer", &self.metadata.issuer)
            .field("client_id", &self.client_id)
            .field("dpop_jkt", &self.dpop.jkt())
            .finish_non_exhaustive()
    }
}

fn interaction_id(response: &HttpResponse) -> Option<String> {
    response.header("x-fapi-interaction-id").map(str::to_owned)
}

/// An endpoint's refusal: the RFC 6749 §5.2 JSON error when there is one.
pub(crate) fn endpoint_error(endpoint: &'static str, response: &HttpResponse) -> ClientError {
    match response.json() {
        Some(body) if body["error"].is_string() => ClientError::Server {
            endpoint,
            status: response.status,
            error: body["error"].as_str().unwrap_or_default().to_owned(),
            description: body["error_description"].as_str().map(str::to_owned),
        },
        _ => unexpected(endpoint, response, "no OAuth error in the answer"),
    }
}

/// A resource's refusal: the JSON error, else the `WWW-Authenticate` challenge (RFC 6750 §3).
pub fn resource_error(endpoint: &'static str, status: u16, headers: &HeaderMap, body: &[u8]) -> ClientError {
    let response = HttpResponse {
        status,
        headers: headers.clone(),
        body: body.to_vec(),
    };
    if response.json().is_some_and(|b| b["error"].is_string()) {
        return endpoint_error(endpoint, &response);
    }
    let challenge = response
        .header("www-authenticate")
        .unwrap_or("no WWW-Authenticate challenge");
    unexpected(endpoint, &response, challenge)
}

fn unexpected(endpoint: &'static str, response: &HttpResponse, detail: &str) -> ClientError {
    ClientError::UnexpectedResponse {
        endpoint,
        status: response.status,
        detail: detail.to_owned(),
    }
}
