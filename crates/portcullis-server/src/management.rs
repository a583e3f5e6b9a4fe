//! The management listener (INTERFACE.md, issue 17 item 1): liveness, readiness and Prometheus
//! metrics on a plain-HTTP listener of its own (`server.management_listen`, 127.0.0.1:9000 by
//! default), never on the public listeners.
//!
//! The metrics are recorded with the `metrics` facade wherever the event happens and rendered
//! by `metrics-exporter-prometheus`; nothing here writes exposition text by hand. Every label
//! takes its values from a closed set (endpoint names, status codes, OAuth error codes, grant
//! types), so a client cannot grow the series.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use portcullis_jose::Algorithm;
use portcullis_store::SqliteStore;
use serde_json::json;

use crate::app::AppState;

/// Requests by endpoint, listener and status.
pub const HTTP_REQUESTS: &str = "portcullis_http_requests_total";
/// Request latency by endpoint (seconds, histogram).
pub const HTTP_DURATION: &str = "portcullis_http_request_duration_seconds";
/// OAuth error responses by endpoint and `error` code.
pub const OAUTH_ERRORS: &str = "portcullis_oauth_errors_total";
/// DPoP refusals by reason (`invalid_dpop_proof`, `use_dpop_nonce`) and endpoint.
pub const DPOP_REFUSALS: &str = "portcullis_dpop_refusals_total";
/// Client-authentication refusals (`invalid_client`) by endpoint.
pub const CLIENT_AUTH_REFUSALS: &str = "portcullis_client_auth_refusals_total";
/// Flows started: pushed authorization requests accepted.
pub const FLOWS_STARTED: &str = "portcullis_flows_started_total";
/// Flows completed: authorization codes exchanged for tokens.
pub const FLOWS_COMPLETED: &str = "portcullis_flows_completed_total";
/// Tokens issued by the token endpoint, by grant type.
pub const TOKENS_ISSUED: &str = "portcullis_tokens_issued_total";
/// Password checks waiting for a worker.
pub const PASSWORD_QUEUE: &str = "portcullis_password_queue_depth";
pub use crate::timed_store::DB_DURATION;

/// Latency buckets (seconds): 0.5 ms to 10 s.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder (once, at `serve`).
pub fn install_recorder() -> Result<PrometheusHandle, String> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
        .map_err(|e| format!("metrics: {e}"))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| format!("metrics: {e}"))?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by endpoint, listener and status"
    );
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "Time to answer a request, by endpoint");
    describe_counter!(OAUTH_ERRORS, "OAuth error responses, by endpoint and error code");
    describe_counter!(
        DPOP_REFUSALS,
        "Requests refused for their DPoP proof, by reason and endpoint"
    );
    describe_counter!(CLIENT_AUTH_REFUSALS, "Client authentication refusals, by endpoint");
    describe_counter!(
        FLOWS_STARTED,
        "Authorization flows started (pushed authorization requests accepted)"
    );
    describe_counter!(
        FLOWS_COMPLETED,
        "Authorization flows completed (codes exchanged for tokens)"
    );
    describe_counter!(TOKENS_ISSUED, "Token responses, by grant type");
    describe_gauge!(PASSWORD_QUEUE, "Password checks waiting for a worker");
    describe_histogram!(DB_DURATION, Unit::Seconds, "Database call latency, by operation");
}

/// The endpoint label of a request path (under the issuer's `base` path): one of a closed set.
pub fn endpoint_label(base: &str, path: &str) -> &'static str {
    let Some(p) = path.strip_prefix(base) else {
        return if path.starts_with("/.well-known/oauth-authorization-server") {
            "discovery"
        } else {
            "other"
        };
    };
    match p {
        "/.well-known/openid-configuration" => "discovery",
        "/jwks" => "jwks",
        "/par" => "par",
        "/authorize" => "authorize",
        "/login" => "login",
        "/consent" => "consent",
        "/logout" => "logout",
        "/token" => "token",
        "/userinfo" => "userinfo",
        "/introspect" => "introspect",
        "/revoke" => "revoke",
        "/api/accounts" | "/api/payments" => "demo_api",
        "/register" => "register",
        "/switch-account" => "switch_account",
        "/branding/logo" => "logo",
        _ if p.starts_with("/register/") => "registration_management",
        _ if path.starts_with("/.well-known/oauth-authorization-server") => "discovery",
        _ => "other",
    }
}

/// Every endpoint label [`endpoint_label`] gives.
#[cfg(test)]
const ENDPOINTS: [&str; 17] = [
    "discovery",
    "jwks",
    "par",
    "authorize",
    "login",
    "consent",
    "logout",
    "token",
    "userinfo",
    "introspect",
    "revoke",
    "demo_api",
    "register",
    "switch_account",
    "logo",
    "registration_management",
    "other",
];
/// Every label [`status_label`] gives.
#[cfg(test)]
const STATUSES: [&str; 22] = [
    "200", "201", "204", "302", "303", "400", "401", "403", "404", "405", "408", "409", "410", "413", "415", "429",
    "500", "503", "2xx", "3xx", "4xx", "5xx",
];

type RequestKey = (&'static str, &'static str, &'static str);

/// The request metrics' handles, registered on first use and kept (a registry lookup with
/// labels per request costs more than the counting); bounded by the closed label sets.
#[derive(Default)]
struct RequestHandles {
    requests: RwLock<HashMap<RequestKey, metrics::Counter>>,
    durations: RwLock<HashMap<&'static str, metrics::Histogram>>,
}

static REQUEST_HANDLES: OnceLock<RequestHandles> = OnceLock::new();

/// The handle under `key`, registered by `make` the first time.
fn cached<K: std::hash::Hash + Eq + Copy, H: Clone>(
    map: &RwLock<HashMap<K, H>>,
    key: K,
    make: impl FnOnce() -> H,
) -> H {
    if let Some(h) = map.read().unwrap_or_else(PoisonError::into_inner).get(&key) {
        return h.clone();
    }
    map.write()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_insert_with(make)
        .clone()
}

/// Records one answered request.
pub fn record_request(endpoint: &'static str, listener: &'static str, status: u16, started: Instant) {
    let status = status_label(status);
    let h = REQUEST_HANDLES.get_or_init(RequestHandles::default);
    cached(
        &h.requests,
        (endpoint, listener, status),
        || metrics::counter!(HTTP_REQUESTS, "endpoint" => endpoint, "listener" => listener, "status" => status),
    )
    .increment(1);
    cached(
        &h.durations,
        endpoint,
        || metrics::histogram!(HTTP_DURATION, "endpoint" => endpoint),
    )
    .record(started.elapsed().as_secs_f64());
}

/// Records an OAuth error response (its code is from a closed set).
pub fn record_error(endpoint: &'static str, code: &'static str) {
    metrics::counter!(OAUTH_ERRORS, "endpoint" => endpoint, "error" => code).increment(1);
    match code {
        "invalid_dpop_proof" | "use_dpop_nonce" => {
            metrics::counter!(DPOP_REFUSALS, "endpoint" => endpoint, "reason" => code).increment(1);
        }
        "invalid_client" => metrics::counter!(CLIENT_AUTH_REFUSALS, "endpoint" => endpoint).increment(1),
        _ => {}
    }
}

/// Status codes as static labels (no allocation per request).
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        204 => "204",
        302 => "302",
        303 => "303",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        410 => "410",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// What the management routes need.
pub struct Management {
    pub state: Arc<AppState>,
    pub store: Arc<SqliteStore>,
    pub metrics: PrometheusHandle,
}

/// The management router: `/health/live`, `/health/ready`, `/metrics`.
pub fn router(m: Arc<Management>) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(render))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(m)
}

/// Liveness: the process answers.
async fn live() -> Response {
    json_status(StatusCode::OK, json!({"status": "ok"}))
}

/// How long readiness waits for the database.
const READY_DB_TIMEOUT: Duration = Duration::from_secs(2);

/// Readiness: 200 only when the database answers (within 2 s) and the key ring holds a usable
/// signing key for every algorithm.
async fn ready(State(m): State<Arc<Management>>) -> Response {
    let database = match tokio::time::timeout(READY_DB_TIMEOUT, m.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("database: {e}")),
        Err(_) => Err("database: no answer within 2 s".to_owned()),
    };
    let ring = m.state.provider.keys();
    let now = m.state.provider.now();
    let missing: Vec<&str> = Algorithm::ALL
        .into_iter()
        .filter(|a| *a != Algorithm::Ed25519 && ring.active(*a, now).is_none())
        .map(Algorithm::as_str)
        .collect();
    let keys = if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("no active signing key for {}", missing.join(", ")))
    };
    let check = |r: &Result<(), String>| match r {
        Ok(()) => json!({"status": "ok"}),
        Err(e) => json!({"status": "failing", "reason": e}),
    };
    let ok = database.is_ok() && keys.is_ok();
    if let Err(e) = database.as_ref().and(keys.as_ref()) {
        tracing::warn!(reason = %e, "not ready");
    }
    json_status(
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        json!({
            "status": if ok { "ok" } else { "failing" },
            "checks": {"database": check(&database), "keys": check(&keys)},
        }),
    )
}

/// Prometheus text exposition format.
async fn render(State(m): State<Arc<Management>>) -> Response {
    metrics::gauge!(PASSWORD_QUEUE).set(m.state.passwords.queued() as f64);
    m.metrics.run_upkeep();
    let mut res = m.metrics.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

fn json_status(status: StatusCode, body: serde_json::Value) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_labels_are_a_closed_set() {
        assert_eq!(endpoint_label("", "/par"), "par");
        assert_eq!(endpoint_label("", "/register/abc"), "registration_management");
        assert_eq!(
            endpoint_label("", "/.well-known/oauth-authorization-server"),
            "discovery"
        );
        assert_eq!(endpoint_label("/t", "/t/token"), "token");
        assert_eq!(
            endpoint_label("/t", "/.well-known/oauth-authorization-server/t"),
            "discovery"
        );
        assert_eq!(endpoint_label("/t", "/token"), "other");
        assert_eq!(endpoint_label("", "/anything/else"), "other");
        assert_eq!(endpoint_label("", "/par/"), "other");
    }

    #[test]
    fn handles_cover_every_label() {
        for endpoint in ["/par", "/register/x", "/nowhere", "/branding/logo", "/switch-account"] {
            assert!(ENDPOINTS.contains(&endpoint_label("", endpoint)), "{endpoint}");
        }
        for status in [200, 409, 410, 418, 302, 599, 101] {
            assert!(STATUSES.contains(&status_label(status)), "{status}");
        }
    }

    #[test]
    fn status_labels_are_static() {
        assert_eq!(status_label(201), "201");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(599), "5xx");
    }
}
