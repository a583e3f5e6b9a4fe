//! The HTTP surface: thin handlers (parse -> core -> respond), the conventions every response
//! follows, and the one mapping from `OAuthError` to an RFC 6749 JSON error response.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use http_body_util::LengthLimitError;
use portcullis_core::audit::{Direction, Evidence, EvidenceKind, Proof};
use portcullis_core::endpoints::resource::SignedResourceRequest;
use portcullis_core::request::{DirectRequest, Endpoint, FormParams, Listener};
use portcullis_core::settings::{DEMO_API_PAYMENTS_SCOPE, DEMO_API_SCOPE};
use portcullis_core::{ErrorCode, OAuthError, Status};
use portcullis_resource::httpsig::SignedMessage;
use serde_json::Value;
use tower_http::limit::RequestBodyLimitLayer;

use crate::app::AppState;
use crate::audit_events;
use crate::connections::BodyBudget;
use crate::pages;
use crate::tls::PeerCertificate;
use crate::web::{InteractionId, form, http_status};

pub const INTERACTION_ID: HeaderName = HeaderName::from_static("x-fapi-interaction-id");

const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");
/// RFC 9701 §4: the media type of a signed introspection response.
const INTROSPECTION_JWT: &str = "application/token-introspection+jwt";
/// Requests larger than this are refused with 413 (RFC 9126 §2.3 allows it at PAR).
const MAX_BODY: usize = 64 * 1024;

pub fn router(state: Arc<AppState>, body_timeouts: BodyTimeouts, body_budget: Arc<BodyBudget>) -> Router {
    let base = state.base_path.clone();
    let routes = Router::new()
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/jwks", get(jwks))
        .route("/par", post(par).fallback(method_not_allowed))
        .route("/authorize", get(pages::authorize).fallback(method_not_allowed))
        .route("/login", post(pages::login).fallback(method_not_allowed))
        .route("/consent", post(pages::consent).fallback(method_not_allowed))
        .route(
            "/switch-account",
            post(pages::switch_account).fallback(method_not_allowed),
        )
        .route(
            crate::branding::LOGO_PATH,
            get(pages::logo).fallback(method_not_allowed),
        )
        .route(
            "/logout",
            get(pages::logout).post(pages::logout).fallback(method_not_allowed),
        )
        .route("/token", post(token).fallback(method_not_allowed))
        .route("/userinfo", get(userinfo).post(userinfo).fallback(method_not_allowed))
        .route("/introspect", post(introspect).fallback(method_not_allowed))
        .route("/revoke", post(revoke).fallback(method_not_allowed))
        .route("/api/accounts", get(accounts).fallback(method_not_allowed))
        .route("/api/payments", post(payments).fallback(method_not_allowed))
        .route("/register", post(register).fallback(method_not_allowed))
        .route(
            "/register/{client_id}",
            get(read_registration)
                .put(update_registration)
                .delete(delete_registration)
                .fallback(method_not_allowed),
        );
    // RFC 8414 §3.1: the well-known segment goes between host and issuer path
    let rfc8414 = format!("/.well-known/oauth-authorization-server{base}");
    let app = if base.is_empty() {
        routes.route(&rfc8414, get(metadata))
    } else {
        Router::new().nest(&base, routes).route(&rfc8414, get(metadata))
    };
    let mtls_paths: Arc<[String]> = MTLS_ALIASED
        .iter()
        .map(|p| format!("{base}{p}"))
        .chain([
            format!("{base}/.well-known/openid-configuration"),
            format!("{base}/jwks"),
            rfc8414,
        ])
        .collect();
    let base_label: Arc<str> = Arc::from(base.as_str());
    app.fallback(not_found)
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            read_body_within(body_timeouts, body_budget.clone(), req, next)
        }))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            mtls_listener_scope(mtls_paths.clone(), req, next)
        }))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            conventions(base_label.clone(), req, next)
        }))
        .with_state(state)
}

/// The endpoints published as `mtls_endpoint_aliases` (RFC 8705 §5).
/// The demo API is on that listener too, for certificate-bound tokens.
const MTLS_ALIASED: [&str; 7] = [
    "/par",
    "/token",
    "/userinfo",
    "/introspect",
    "/revoke",
    "/api/accounts",
    "/api/payments",
];

/// The listener that asks for client certificates serves the aliased endpoints (and discovery
/// and the JWKS), nothing else: the pages live on the main listener, where no browser is ever
/// asked for a certificate.
async fn mtls_listener_scope(paths: Arc<[String]>, req: Request, next: Next) -> Response {
    if req.extensions().get::<Listener>() == Some(&Listener::Mtls) && !paths.iter().any(|p| p == req.uri().path()) {
        return not_found().await;
    }
    next.run(req).await
}

/// The request-body time-outs (`[server]` settings).
#[derive(Clone, Copy, Debug)]
pub struct BodyTimeouts {
    /// `server.body_timeout`: the whole body, counted from the headers.
    pub whole: Duration,
    /// `server.body_stall_timeout`: the longest wait for the next body byte.
    pub stall: Duration,
}

/// Issue 13 item 2: the whole request body must arrive within `server.body_timeout` of the
/// headers, or the request is answered 408 `invalid_request` and the HTTP/1.1 connection closed
/// (a per-read time-out would let a client trickle one byte at a time). Every handler buffers
/// its (at most 64 KiB) body anyway, so it is read here and handed on in full.
///
/// Issue 13 item 2 follow-up: the buffered bytes count against `budget` (global and per client
/// address) from the moment they are read until the request is answered, so that many
/// half-sent bodies cannot use up memory before any authentication. A body whose bytes do not
/// fit is not read further: 503 with `Retry-After`.
///
/// Issue 13 item 2, second review: only bytes actually received are counted, never the
/// declared `Content-Length` (which costs a client nothing to send: HEADERS alone on many
/// HTTP/2 streams reserved the whole budget and turned everyone else away with 503); the
/// count is bounded by `Content-Length` and the 64 KiB limit, which hyper and the limit layer
/// enforce on the bytes. And a body that makes no progress for `server.body_stall_timeout`
/// is answered 408 like a late one, so that holding a share costs a client steady sending,
/// not one byte now and then for the whole `server.body_timeout`.
async fn read_body_within(timeouts: BodyTimeouts, budget: Arc<BodyBudget>, req: Request, next: Next) -> Response {
    let (parts, mut body) = req.into_parts();
    let deadline = tokio::time::Instant::now() + timeouts.whole;
    let mut stall_at = tokio::time::Instant::now() + timeouts.stall;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let mut reservation = budget.reservation(peer);
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline.min(stall_at), body.frame()).await {
            Ok(None) => break,
            Ok(Some(Ok(frame))) => {
                // only data counts as progress (an empty DATA frame or trailers do not)
                if let Ok(data) = frame.into_data()
                    && !data.is_empty()
                {
                    if !reservation.grow_to(buf.len().saturating_add(data.len())) {
                        return busy(&budget, parts.version);
                    }
                    buf.extend_from_slice(&data);
                    stall_at = tokio::time::Instant::now() + timeouts.stall;
                }
            }
            Ok(Some(Err(e))) => {
                let too_large = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                    .any(|e| e.is::<LengthLimitError>());
                let e = if too_large {
                    OAuthError::new(
                        ErrorCode::InvalidRequest,
                        Status::PayloadTooLarge,
                        "the request is too large",
                    )
                } else {
                    OAuthError::new(
                        ErrorCode::InvalidRequest,
                        Status::BadRequest,
                        "the request body could not be read",
                    )
                };
                return ApiError(e).into_response();
            }
            Err(_) => {
                let description = if tokio::time::Instant::now() >= deadline {
                    "the request body did not arrive in time"
                } else {
                    "the request body stopped arriving"
                };
                let e = OAuthError::new(ErrorCode::InvalidRequest, Status::RequestTimeout, description);
                let mut res = ApiError(e).into_response();
                if parts.version <= axum::http::Version::HTTP_11 {
                    res.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                return res;
            }
        }
    }
    // held until the request is answered: the handler works on these bytes
    let res = next.run(Request::from_parts(parts, Body::from(buf))).await;
    drop(reservation);
    res
}

/// Seconds a client refused for the body budget is asked to wait (the budget frees as requests
/// are answered, or cut by `server.body_stall_timeout` or `server.body_timeout`).
const BUSY_RETRY_AFTER: &str = "5";

/// Issue 13 item 2 follow-up: the answer when the request-body budget is used up: 503 (the
/// server is overloaded, RFC 9110 §15.6.4) with `Retry-After`, and an RFC 6749 §5.2 JSON body;
/// RFC 6749 has no code for "busy" at the token endpoint, so `invalid_request` with a
/// description that says to retry. Logged as a rate-limited warning rather than per request
/// (it is what a flood looks like). The unread body closes an HTTP/1.1 connection.
fn busy(budget: &BodyBudget, version: axum::http::Version) -> Response {
    budget.report_refusal();
    let e = OAuthError::new(
        ErrorCode::InvalidRequest,
        Status::ServiceUnavailable,
        "the server is busy; retry the request later",
    );
    let mut res = (StatusCode::SERVICE_UNAVAILABLE, Json(e.body())).into_response();
    let h = res.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from_static(BUSY_RETRY_AFTER));
    if version <= axum::http::Version::HTTP_11 {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// IA 2.2.1 (IA-02): echo `x-fapi-interaction-id` or mint a UUID; log with it; `no-store` unless
/// a handler chose otherwise (RFC 6749 §5.1); HSTS everywhere (AS-SP-07).
async fn conventions(base: Arc<str>, mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&INTERACTION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let endpoint = crate::management::endpoint_label(&base, req.uri().path());
    let listener = match req.extensions().get::<Listener>() {
        Some(Listener::Mtls) => "mtls",
        _ => "main",
    };
    // bounded: the path is the client's, and it goes into every log line of the request
    let path: String = req.uri().path().chars().take(200).collect();
    let client_address = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let span = tracing::info_span!("request", interaction_id = %id, %method, %path);
    req.extensions_mut().insert(InteractionId(id.clone()));
    let context = audit_events::RequestContext {
        interaction_id: Arc::from(id.as_str()),
        client_address,
    };
    let mut res = audit_events::REQUEST
        .scope(context, tracing::Instrument::instrument(next.run(req), span.clone()))
        .await;
    // RFC 9126 §2.3: 413 for an oversized request, as JSON like every other API error
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let e = OAuthError::new(
            ErrorCode::InvalidRequest,
            Status::PayloadTooLarge,
            "the request is too large",
        );
        res = ApiError(e).into_response();
    }
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(INTERACTION_ID, v);
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let status = res.status();
    if let Some(ErrorTag(code)) = res.extensions().get::<ErrorTag>() {
        crate::management::record_error(endpoint, code);
    }
    crate::management::record_request(endpoint, listener, status.as_u16(), started);
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status = status.as_u16(), latency_ms, "response"));
    res
}

/// The one mapping from a protocol error to a response: status, JSON body, `DPoP-Nonce`,
/// `WWW-Authenticate`. 5xx never reveals more than `server_error`.
pub struct ApiError(pub OAuthError);

impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        if e.status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        } else {
            // the sanitised, bounded description: it may quote what the client sent
            tracing::info!(error = e.code.as_str(), description = %e.public_description(), detail = e.detail.as_deref().unwrap_or(""), "request refused");
        }
        let status = http_status(e.status);
        let mut res = (status, Json(e.body())).into_response();
        res.extensions_mut().insert(ErrorTag(e.code.as_str()));
        if let Some(n) = e.dpop_nonce.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
            res.headers_mut().insert(DPOP_NONCE, n);
        }
        if let Some(w) = e.www_authenticate().and_then(|w| HeaderValue::from_str(&w).ok()) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, w);
        }
        res
    }
}

type ApiResult = Result<Response, ApiError>;

/// The OAuth error code of an error response, for the metrics (set by [`ApiError`]).
#[derive(Clone, Copy)]
struct ErrorTag(&'static str);

fn json_response(status: StatusCode, body: Value, dpop_nonce: Option<&str>) -> Response {
    let mut res = (status, Json(body)).into_response();
    if let Some(n) = dpop_nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
        res.headers_mut().insert(DPOP_NONCE, n);
    }
    res
}

/// Every value of a header (RFC 9449 §4.3 needs to see duplicates); a value that is not
/// visible ASCII stays in, as one that fails every check.
fn all(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}").to_owned())
        .collect()
}

async fn metadata(State(s): State<Arc<AppState>>) -> Response {
    let mut res = Json(s.metadata.clone()).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    res
}

async fn jwks(State(s): State<Arc<AppState>>) -> Response {
    let ring = s.provider.keys();
    let mut res = (
        [(header::CONTENT_TYPE, "application/jwk-set+json")],
        ring.jwks().to_string(),
    )
        .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    res
}

/// The one extractor of a back-channel request (PAR, token, userinfo, introspection): the
/// listener it came in on, its `DPoP` and `Authorization` headers, and its client certificate
/// (from the TLS connection, or a trusted proxy's header). The form body is added by the
/// handlers that take one.
pub struct Direct(pub DirectRequest);

impl FromRequestParts<Arc<AppState>> for Direct {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<AppState>) -> Result<Self, ApiError> {
        let listener = parts.extensions.get::<Listener>().copied().unwrap_or_default();
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let tls = match parts.extensions.get::<PeerCertificate>().and_then(|p| p.0.as_ref()) {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                return Err(ApiError(OAuthError::invalid_request(format!(
                    "the TLS client certificate could not be read: {e}"
                ))));
            }
        };
        let certificate = s
            .certificates
            .certificate(peer, tls, &parts.headers)
            .map_err(|e| ApiError(OAuthError::invalid_request(e.description)))?;
        let method = if parts.method == Method::GET {
            portcullis_core::request::Method::Get
        } else {
            portcullis_core::request::Method::Post
        };
        Ok(Direct(DirectRequest {
            listener,
            method,
            params: FormParams::default(),
            dpop: all(&parts.headers, "dpop"),
            authorization: all(&parts.headers, "authorization"),
            certificate,
            interaction_id: parts
                .extensions
                .get::<InteractionId>()
                .map(|i| i.0.clone())
                .unwrap_or_default(),
        }))
    }
}

/// The form body of a direct request.
fn with_form(
    s: &AppState,
    mut req: DirectRequest,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<DirectRequest, ApiError> {
    let max = s.provider.settings().max_form_params;
    req.params = FormParams::parse(form(headers, body, max)?, max)?;
    Ok(req)
}

async fn par(State(s): State<Arc<AppState>>, Direct(req): Direct, headers: HeaderMap, body: Bytes) -> ApiResult {
    let req = with_form(&s, req, &headers, &body)?;
    let r = s.provider.push_authorization_request(req).await?;
    metrics::counter!(crate::management::FLOWS_STARTED).increment(1);
    // issue 16 item 5: the verified request object, once the request has succeeded
    if let Some(e) = r.evidence {
        s.audit.record(e).await;
    }
    // RFC 9126 §2.2: 201 with request_uri and expires_in
    Ok(json_response(
        StatusCode::CREATED,
        serde_json::json!({ "request_uri": r.request_uri.as_str(), "expires_in": r.expires_in }),
        r.dpop_nonce.as_deref(),
    ))
}

async fn token(State(s): State<Arc<AppState>>, Direct(req): Direct, headers: HeaderMap, body: Bytes) -> ApiResult {
    let req = with_form(&s, req, &headers, &body)?;
    let grant = grant_label(req.params.view().get("grant_type"));
    let r = s.provider.token(req).await?;
    metrics::counter!(crate::management::TOKENS_ISSUED, "grant_type" => grant).increment(1);
    let action = if grant == "refresh_token" {
        "token_refreshed"
    } else {
        "token_issued"
    };
    audit_events::record(action, "success", Some(&r.client_id), Some(&r.subject));
    if grant == "authorization_code" {
        metrics::counter!(crate::management::FLOWS_COMPLETED).increment(1);
    }
    let nonce = r.dpop_nonce.clone();
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_value(&r).unwrap_or_default(),
        nonce.as_deref(),
    ))
}

/// The grant type as a metrics label (a closed set; the token endpoint refuses the rest).
fn grant_label(grant: Option<&str>) -> &'static str {
    match grant {
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        Some("client_credentials") => "client_credentials",
        _ => "other",
    }
}

async fn userinfo(State(s): State<Arc<AppState>>, Direct(req): Direct) -> ApiResult {
    let r = s.provider.userinfo(&req).await?;
    Ok(json_response(StatusCode::OK, r.claims, r.dpop_nonce.as_deref()))
}

async fn introspect(State(s): State<Arc<AppState>>, Direct(req): Direct, headers: HeaderMap, body: Bytes) -> ApiResult {
    let req = with_form(&s, req, &headers, &body)?;
    // RFC 9701 §4: a signed answer for a caller that asks for one
    let wants_jwt = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(INTROSPECTION_JWT)
        });
    if wants_jwt {
        let signed = s.provider.signed_introspection(&req).await?;
        s.audit.record(signed.evidence).await;
        return Ok(([(header::CONTENT_TYPE, INTROSPECTION_JWT)], signed.jwt).into_response());
    }
    let r = s.provider.introspect(&req).await?;
    Ok(json_response(StatusCode::OK, r, None))
}

/// RFC 7009 §2.2: 200 with an empty body, whatever became of the token.
async fn revoke(State(s): State<Arc<AppState>>, Direct(req): Direct, headers: HeaderMap, body: Bytes) -> ApiResult {
    let req = with_form(&s, req, &headers, &body)?;
    let r = s.provider.revoke(&req).await?;
    let outcome = if r.revoked.is_some() {
        "success"
    } else {
        "no_such_token"
    };
    audit_events::record("token_revoked", outcome, Some(&r.client_id), None);
    Ok(StatusCode::OK.into_response())
}

/// The demo protected API (INTERFACE.md), when `demo_api.enabled`: the user's accounts.
async fn accounts(
    State(s): State<Arc<AppState>>,
    Direct(req): Direct,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = DemoCall {
        req,
        method: method.as_str(),
        headers: &headers,
        query: query.as_deref(),
        body: &body,
    };
    demo_api(&s, call, Endpoint::Accounts, DEMO_API_SCOPE, |token, _| {
        Ok((StatusCode::OK, crate::demo::accounts(&token.subject)))
    })
    .await
}

/// The demo API's payment initiation: a JSON body (so that signed requests cover one through
/// `Content-Digest`), answered with a made-up accepted payment; nothing is stored or moved.
async fn payments(
    State(s): State<Arc<AppState>>,
    Direct(req): Direct,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = DemoCall {
        req,
        method: method.as_str(),
        headers: &headers,
        query: query.as_deref(),
        body: &body,
    };
    demo_api(&s, call, Endpoint::Payments, DEMO_API_PAYMENTS_SCOPE, |token, body| {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(OAuthError::invalid_request(
                "the payment must be sent as application/json",
            ));
        }
        let payment: Value = serde_json::from_slice(body)
            .map_err(|e| OAuthError::invalid_request(format!("the payment is not JSON: {e}")))?;
        let answer = crate::demo::payment(&token.subject, &payment).map_err(OAuthError::invalid_request)?;
        Ok((StatusCode::CREATED, answer))
    })
    .await
}

/// A demo API request as received.
struct DemoCall<'a> {
    req: DirectRequest,
    /// The method as received (the request's `@method`).
    method: &'a str,
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    body: &'a Bytes,
}

/// The demo API's common part: the resource crate's admission with the request's HTTP message
/// signature (FAPI 2.0 HTTP Signatures 5.3.1.2: verified when present, required of clients
/// registered to sign), then `answer`, and every response (refusals too) signed with the
/// server's ES256 key from its JWKS (HS 5.3.2.1), bound to the request (`;req`).
async fn demo_api(
    s: &AppState,
    call: DemoCall<'_>,
    endpoint: Endpoint,
    scope: &str,
    answer: impl FnOnce(&portcullis_resource::TokenInfo, &[u8]) -> Result<(StatusCode, Value), OAuthError>,
) -> Response {
    let settings = s.provider.settings();
    if !settings.demo_api {
        return not_found().await;
    }
    let resource = settings.demo_api_resource();
    let signed = SignedResourceRequest {
        method: call.method,
        headers: call.headers,
        query: call.query,
        body: call.body,
    };
    let admitted = s
        .provider
        .admit_signed(&call.req, endpoint, &[scope], Some(&resource), Some(&signed))
        .await;
    let now = s.provider.now();
    let interaction = call.req.interaction_id.as_str();
    // the client an admitted request came from (evidence is kept only for those: a refusal
    // before authentication writes nothing)
    let mut client = None;
    let mut evidence = Vec::new();
    let (res, request_signature) = match admitted {
        Ok(a) => {
            let signed = a.signed.map(|signed| {
                // issue 16 item 5: the signed request, with the client key that verified it
                evidence.push(Evidence {
                    kind: EvidenceKind::ResourceRequest,
                    direction: Direction::Received,
                    interaction_id: interaction.to_owned(),
                    client_id: a.token.client_id.clone(),
                    at: now,
                    alg: signed.signature.algorithm().as_str().to_owned(),
                    key: signed.key.to_json().to_string(),
                    proof: Proof::HttpSignature {
                        base: signed.signature.base().to_owned(),
                        signature: signed.signature.signature().to_vec(),
                        body: (!call.body.is_empty()).then(|| call.body.to_vec()),
                    },
                });
                signed.signature
            });
            client = Some(a.token.client_id.clone());
            match answer(&a.token, call.body) {
                Ok((status, value)) => (json_response(status, value, a.dpop_nonce.as_deref()), signed),
                Err(e) => (ApiError(e).into_response(), signed),
            }
        }
        Err(e) => (ApiError(e).into_response(), None),
    };
    let url = settings.url(call.req.listener, endpoint);
    let target_uri = portcullis_resource::httpsig::target_uri(url, call.query);
    let request = portcullis_resource::httpsig::RequestView {
        method: call.method,
        target_uri: &target_uri,
        headers: call.headers,
    };
    let (res, sent) = sign_response(s, res, &request, !call.body.is_empty(), request_signature.as_ref()).await;
    if let (Some(client_id), Some((message, key, body))) = (client, sent) {
        evidence.push(Evidence {
            kind: EvidenceKind::ResourceResponse,
            direction: Direction::Sent,
            interaction_id: interaction.to_owned(),
            client_id,
            at: now,
            alg: message.algorithm.as_str().to_owned(),
            key,
            proof: Proof::HttpSignature {
                base: message.base,
                signature: message.signature,
                body: (!body.is_empty()).then(|| body.to_vec()),
            },
        });
    }
    // never waits: a flood of API calls drops its own evidence rather than stall sign-ins
    for e in evidence {
        s.audit.offer(e);
    }
    res
}

/// HS 5.3.2.1 (RS-MS-09..12): `Content-Digest` and a `fapi-2-response` signature over
/// `@status`, the body's digest and the request's components, with the server's ES256 key.
/// The response, and what was signed (the message, the public key as JSON, the body) for the
/// evidence log.
async fn sign_response(
    s: &AppState,
    res: Response,
    request: &portcullis_resource::httpsig::RequestView<'_>,
    request_body_present: bool,
    request_signature: Option<&portcullis_resource::httpsig::VerifiedSignature>,
) -> (Response, Option<(SignedMessage, String, Bytes)>) {
    let keys = s.provider.keys();
    let Some(key) = keys.active(portcullis_jose::Algorithm::Es256, s.provider.now()) else {
        tracing::error!("no active ES256 key to sign the demo API's response with");
        return (
            ApiError(OAuthError::server_error("no signing key")).into_response(),
            None,
        );
    };
    let (mut parts, body) = res.into_parts();
    // our own JSON answers: small
    let Ok(bytes) = axum::body::to_bytes(body, 1024 * 1024).await else {
        return (
            ApiError(OAuthError::server_error("response too large to sign")).into_response(),
            None,
        );
    };
    let signed = portcullis_resource::httpsig::sign_response_binding_digest(
        &mut parts.headers,
        parts.status.as_u16(),
        &bytes,
        request,
        request_body_present,
        request_signature,
        key,
        s.provider.now(),
    );
    match signed {
        Ok(message) => {
            let key = key.public_jwk().to_json().to_string();
            (
                Response::from_parts(parts, Body::from(bytes.clone())),
                Some((message, key, bytes)),
            )
        }
        Err(e) => (
            ApiError(OAuthError::server_error(format!("cannot sign the response: {e}"))).into_response(),
            None,
        ),
    }
}

fn bearer_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, OAuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        return Err(OAuthError::invalid_client_metadata(
            "the registration request must be application/json",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| OAuthError::invalid_client_metadata(format!("the body is not valid JSON: {e}")))
}

async fn register(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> ApiResult {
    // the initial access token first: without one, the body is never looked at
    let iat = s.provider.authorize_registration(bearer_header(&headers)).await?;
    let value = json_body(&headers, &body)?;
    let r = s.provider.register_client(iat, &value).await?;
    audit_events::record("client_registered", "success", r.body["client_id"].as_str(), None);
    Ok(json_response(StatusCode::CREATED, r.body, None))
}

async fn read_registration(
    State(s): State<Arc<AppState>>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let managed = s
        .provider
        .managed_registration(&client_id, bearer_header(&headers))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        s.provider.read_registration(&managed).body,
        None,
    ))
}

async fn update_registration(
    State(s): State<Arc<AppState>>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    // the registration access token first: a bad one is 401 whatever the body holds
    let managed = s
        .provider
        .managed_registration(&client_id, bearer_header(&headers))
        .await?;
    let value = json_body(&headers, &body)?;
    let r = s.provider.update_registration(managed, &value).await?;
    audit_events::record("client_updated", "success", Some(&client_id), None);
    Ok(json_response(StatusCode::OK, r.body, None))
}

async fn delete_registration(
    State(s): State<Arc<AppState>>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let managed = s
        .provider
        .managed_registration(&client_id, bearer_header(&headers))
        .await?;
    s.provider.delete_registration(managed).await?;
    audit_events::record("client_removed", "success", Some(&client_id), None);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// RFC 9126 §2.3 / RFC 9110 §15.5.6: 405 with a JSON body.
async fn method_not_allowed() -> Response {
    let mut e = OAuthError::new(
        ErrorCode::InvalidRequest,
        Status::MethodNotAllowed,
        "this method is not allowed at this endpoint",
    );
    e.detail = None;
    ApiError(e).into_response()
}

async fn not_found() -> Response {
    let body = serde_json::json!({ "error": "not_found", "error_description": "no such endpoint" });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}
