//! What the HTTP handlers share: reading a form body, and answering with an HTML page under
//! the security headers of AS-SP-07/09.

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::{OAuthError, Status};

/// An `application/x-www-form-urlencoded` body (RFC 6749 §3.2, RFC 9126 §2.1) of at most
/// `max_params` parameters: parsing stops at the first one over (issue 13 item 1).
pub fn form(headers: &HeaderMap, body: &Bytes, max_params: usize) -> Result<Vec<(String, String)>, OAuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the request body must be application/x-www-form-urlencoded",
        ));
    }
    if std::str::from_utf8(body).is_err() {
        return Err(OAuthError::invalid_request("the request body must be UTF-8"));
    }
    let mut pairs = Vec::new();
    for pair in url::form_urlencoded::parse(body) {
        if pairs.len() == max_params {
            return Err(portcullis_core::request::too_many_params(max_params));
        }
        pairs.push((pair.0.into_owned(), pair.1.into_owned()));
    }
    Ok(pairs)
}

/// For pages: an HTML response with the security headers of AS-SP-07/09 (no framing, strict CSP,
/// no referrer, never cached). Forms post only to this server (CSP `form-action`, issue 13
/// item 16). `images`: the operator's logo, served by this server, may be shown (`img-src
/// 'self'`; nothing else is loosened).
pub fn html(status: StatusCode, body: String, images: bool) -> Response {
    let csp = if images { PAGE_CSP_WITH_LOGO } else { PAGE_CSP };
    page(status, body, HeaderValue::from_static(csp))
}

/// A page whose form's response may redirect to `target` (the client's redirect URI): CSP
/// `form-action` covers redirects after a form submission, so that origin is allowed too.
pub fn html_with_form_targets(status: StatusCode, body: String, target: &str, images: bool) -> Response {
    let base = if images { PAGE_CSP_BASE_WITH_LOGO } else { PAGE_CSP_BASE };
    let origin = url::Url::parse(target)
        .ok()
        .filter(|u| u.scheme() == "https")
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b','));
    let csp = match origin {
        Some(o) => HeaderValue::from_str(&format!("{base} form-action 'self' {o}")).ok(),
        None => None,
    };
    let fallback = if images { PAGE_CSP_WITH_LOGO } else { PAGE_CSP };
    page(status, body, csp.unwrap_or(HeaderValue::from_static(fallback)))
}

const PAGE_CSP_BASE: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none';";
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const PAGE_CSP_BASE_WITH_LOGO: &str =
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none';";
const PAGE_CSP_WITH_LOGO: &str = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn page(status: StatusCode, body: String, csp: HeaderValue) -> Response {
    let mut res = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Body::from(body),
    )
        .into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The HTTP status of a protocol refusal.
pub fn http_status(s: Status) -> StatusCode {
    match s {
        Status::BadRequest => StatusCode::BAD_REQUEST,
        Status::Unauthorized => StatusCode::UNAUTHORIZED,
        Status::Forbidden => StatusCode::FORBIDDEN,
        Status::NotFound => StatusCode::NOT_FOUND,
        Status::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Status::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        Status::Conflict => StatusCode::CONFLICT,
        Status::Gone => StatusCode::GONE,
        Status::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Status::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        Status::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
        Status::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The request's `x-fapi-interaction-id` (echoed, or minted by the server's conventions middleware), as a request
/// extension: what the evidence log files the request's signed messages under.
#[derive(Clone, Debug, Default)]
pub struct InteractionId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for InteractionId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<InteractionId>().cloned().unwrap_or_default())
    }
}
