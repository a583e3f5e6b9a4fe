//! The login and consent pages (INTERFACE.md forms): password login with a `__Host-` session
//! cookie, CSRF tokens bound to a browser cookie and the request_uri, 303 after every POST
//! (SP 5.3.2.2-10/-11), and HTML error pages for what must not be redirected (AS-SP-53).

use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use aws_lc_rs::hmac;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::authorize::{AuthorizationFailure, Decision, NextStep, PendingAuthorization};
use portcullis_core::model::Session;
use portcullis_core::random::{credential, hash, secure_eq};
use portcullis_jose::b64url;

use crate::app::AppState;
use crate::http::html;

const SESSION_COOKIE: &str = "__Host-portcullis-session";
const CSRF_COOKIE: &str = "__Host-portcullis-csrf";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    action: &'a str,
    client_name: &'a str,
    client_id: &'a str,
    request_uri: &'a str,
    csrf_token: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    action: &'a str,
    client_name: &'a str,
    client_id: &'a str,
    request_uri: &'a str,
    csrf_token: &'a str,
    username: &'a str,
    scopes: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    message: &'a str,
}

/// Scopes in words a person reads (SP 5.3.2.2-13, AS-SP-54).
fn describe_scope(scope: &str) -> &'static str {
    match scope {
        "openid" => "confirm who you are (sign you in)",
        "profile" => "see your name and basic profile",
        "email" => "see your email address",
        "offline_access" => "keep access while you are not using it",
        _ => "use a permission this server does not describe",
    }
}

fn render(t: &impl Template, status: StatusCode) -> Response {
    match t.render() {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>Internal error.</p>".into(),
            )
        }
    }
}

pub fn error_page(status: u16, message: &str) -> Response {
    render(
        &ErrorPage { message },
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
    )
}

fn see_other(location: &str) -> Response {
    // SP 5.3.2.2-10/-11 (AS-SP-52): 303, never 307
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => error_page(500, "The redirect target is not a valid URL."),
    }
}

fn failure(f: AuthorizationFailure) -> Response {
    match f {
        AuthorizationFailure::Page { status, message } => error_page(status, &message),
        AuthorizationFailure::Redirect(url) => see_other(&url),
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

fn set_cookie(name: &str, value: &str, max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The CSRF token of a form: bound to the browser (its `__Host-` cookie) and to the request.
fn csrf_token(state: &AppState, browser: &str, request_uri: &str) -> String {
    let tag = hmac::sign(&state.csrf_key, format!("{browser}\n{request_uri}").as_bytes());
    b64url(tag.as_ref())
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

struct Browser {
    csrf_cookie: String,
    new_cookie: bool,
    session: Option<Session>,
}

async fn browser(state: &AppState, headers: &HeaderMap) -> Result<Browser, Response> {
    let (csrf_cookie, new_cookie) = match cookie(headers, CSRF_COOKIE) {
        Some(c) => (c, false),
        None => (credential(), true),
    };
    let session = match cookie(headers, SESSION_COOKIE) {
        Some(id) => state
            .provider
            .store()
            .get_session(&hash(&id), state.provider.now())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "session lookup failed");
                error_page(500, "The server could not read your session.")
            })?,
        None => None,
    };
    Ok(Browser {
        csrf_cookie,
        new_cookie,
        session,
    })
}

/// GET on the authorization endpoint.
pub async fn authorize(State(s): State<Arc<AppState>>, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    let query = query_pairs(q.as_deref());
    let pending = match s.provider.begin_authorization(&query).await {
        Ok(p) => p,
        Err(f) => return failure(f),
    };
    let b = match browser(&s, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request_uri = query
        .iter()
        .find(|(k, _)| k == "request_uri")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let mut res = match (s.provider.next_step(&pending, b.session.as_ref()), &b.session) {
        (NextStep::Redirect(url), _) => return see_other(&url),
        (NextStep::Consent, Some(session)) => {
            consent_page(&s, &pending, request_uri, &b.csrf_cookie, &session.username)
        }
        _ => login_page(&s, &pending, request_uri, &b.csrf_cookie, "", None, StatusCode::OK),
    };
    if b.new_cookie {
        res.headers_mut()
            .append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &b.csrf_cookie, 86_400));
    }
    res
}

fn login_page(
    s: &AppState,
    pending: &PendingAuthorization,
    request_uri: &str,
    browser: &str,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = csrf_token(s, browser, request_uri);
    render(
        &LoginPage {
            action: &s.login_action,
            client_name: &pending.client_name,
            client_id: &pending.request.client_id,
            request_uri,
            csrf_token: &csrf,
            username,
            error,
        },
        status,
    )
}

fn consent_page(
    s: &AppState,
    pending: &PendingAuthorization,
    request_uri: &str,
    browser: &str,
    username: &str,
) -> Response {
    let csrf = csrf_token(s, browser, request_uri);
    let mut scopes: Vec<&'static str> = pending.request.scope.iter().map(|x| describe_scope(x)).collect();
    if scopes.is_empty() {
        scopes.push("access your account on your behalf");
    }
    render(
        &ConsentPage {
            action: &s.consent_action,
            client_name: &pending.client_name,
            client_id: &pending.request.client_id,
            request_uri,
            csrf_token: &csrf,
            username,
            scopes,
        },
        StatusCode::OK,
    )
}

struct PostedForm {
    fields: Vec<(String, String)>,
}

impl PostedForm {
    fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// The checks common to both POSTs: form body, CSRF, a still-valid pushed request.
async fn posted(
    s: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(PostedForm, PendingAuthorization, Browser), Response> {
    let fields = crate::http::form(headers, body, s.provider.settings().max_form_params)
        .map_err(|e| error_page(400, &e.description))?;
    let form = PostedForm { fields };
    let b = browser(s, headers).await?;
    if b.new_cookie {
        return Err(error_page(
            403,
            "Your browser did not send the cookie this form needs. Enable cookies and start again.",
        ));
    }
    let expected = csrf_token(s, &b.csrf_cookie, form.get("request_uri"));
    if !secure_eq(expected.as_bytes(), form.get("csrf_token").as_bytes()) {
        return Err(error_page(
            403,
            "The form has expired or was not sent from this site (CSRF check failed).",
        ));
    }
    let query = vec![
        ("client_id".to_owned(), form.get("client_id").to_owned()),
        ("request_uri".to_owned(), form.get("request_uri").to_owned()),
    ];
    let pending = s.provider.begin_authorization(&query).await.map_err(failure)?;
    Ok((form, pending, b))
}

fn authorize_again(s: &AppState, form: &PostedForm) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    ser.append_pair("client_id", form.get("client_id"));
    ser.append_pair("request_uri", form.get("request_uri"));
    format!("{}?{}", s.authorize_path, ser.finish())
}

/// POST of the login form.
pub async fn login(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (form, pending, b) = match posted(&s, &headers, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let username = form.get("username");
    let password = form.get("password");
    let user = if username.is_empty() || username.len() > 256 || password.len() > 1024 {
        None
    } else {
        match s.provider.store().get_user(username).await {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "user lookup failed");
                return error_page(500, "The server could not check your password.");
            }
        }
    };
    let verified = s
        .passwords
        .verify(user.as_ref().map(|u| u.password_hash.clone()), password.to_owned())
        .await;
    let Some(user) = user.filter(|_| verified) else {
        // repeated failures slow down
        let delay = s.login_failures.record_failure(username);
        tokio::time::sleep(delay).await;
        tracing::info!(username, "login failed");
        let request_uri = form.get("request_uri");
        return login_page(
            &s,
            &pending,
            request_uri,
            &b.csrf_cookie,
            username,
            Some("The username or password is not correct."),
            StatusCode::UNAUTHORIZED,
        );
    };
    s.login_failures.reset(username);
    let now = s.provider.now();
    let session_id = credential();
    let session = Session {
        username: user.username.clone(),
        auth_time: now,
        expires_at: now + s.provider.settings().session_lifetime,
    };
    if let Err(e) = s.provider.store().insert_session(&hash(&session_id), &session).await {
        tracing::error!(error = %e, "session insert failed");
        return error_page(500, "The server could not start your session.");
    }
    let mut res = see_other(&authorize_again(&s, &form));
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &session_id, s.provider.settings().session_lifetime),
    );
    res
}

/// POST of the consent form.
pub async fn consent(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (form, pending, b) = match posted(&s, &headers, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(session) = b.session else {
        return see_other(&authorize_again(&s, &form));
    };
    let decision = match form.get("decision") {
        "allow" => {
            let user = match s.provider.store().get_user(&session.username).await {
                Ok(Some(u)) => u,
                Ok(None) => return error_page(403, "Your account no longer exists."),
                Err(e) => {
                    tracing::error!(error = %e, "user lookup failed");
                    return error_page(500, "The server could not read your account.");
                }
            };
            Decision::Allow {
                sub: user.sub,
                auth_time: session.auth_time,
            }
        }
        "deny" => Decision::Deny,
        _ => return error_page(400, "Choose allow or deny."),
    };
    match s.provider.complete_authorization(&pending, decision).await {
        Ok(url) => see_other(&url),
        Err(f) => failure(f),
    }
}

/// Login failures per username: after three, each failure waits longer (up to 5 s). Local to
/// the node, bounded in size.
#[derive(Default)]
pub struct LoginFailures {
    map: std::sync::Mutex<std::collections::HashMap<String, (u32, Instant)>>,
}

const FAILURE_MEMORY: Duration = Duration::from_secs(900);
const MAX_TRACKED: usize = 10_000;

impl LoginFailures {
    fn record_failure(&self, username: &str) -> Duration {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (_, at)| at.elapsed() < FAILURE_MEMORY);
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let entry = map.entry(username.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() > FAILURE_MEMORY {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = Instant::now();
        let n = entry.0;
        if n < 3 {
            Duration::ZERO
        } else {
            Duration::from_millis((250u64 << (n - 3).min(5)).min(5000))
        }
    }

    fn reset(&self, username: &str) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue: repeated login failures slow down; a success resets the count.
    #[test]
    fn login_failures_back_off() {
        let f = LoginFailures::default();
        assert_eq!(f.record_failure("a"), Duration::ZERO);
        assert_eq!(f.record_failure("a"), Duration::ZERO);
        let third = f.record_failure("a");
        let fourth = f.record_failure("a");
        assert!(third > Duration::ZERO && fourth > third);
        for _ in 0..20 {
            assert!(f.record_failure("a") <= Duration::from_secs(5));
        }
        assert_eq!(f.record_failure("b"), Duration::ZERO, "per username");
        f.reset("a");
        assert_eq!(f.record_failure("a"), Duration::ZERO);
    }

    #[test]
    fn cookies_are_read_strictly() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-portcullis-session=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, CSRF_COOKIE), None);
        let v = set_cookie(SESSION_COOKIE, "v", 60);
        let v = v.to_str().unwrap();
        assert!(v.starts_with("__Host-") && v.contains("Secure") && v.contains("HttpOnly") && v.contains("Path=/"));
    }
}
