//! The login and consent pages (INTERFACE.md forms): password login with a `__Host-` session
//! cookie, CSRF tokens bound to a browser cookie and the request_uri, 303 after every POST
//! (SP 5.3.2.2-10/-11), and HTML error pages for what must not be redirected (AS-SP-53).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use aws_lc_rs::hmac;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::OAuthError;
use portcullis_core::authorize::{Decision, NextStep, PendingAuthorization};
use portcullis_core::model::Session;
use portcullis_core::random::{credential, hash, random_bytes};
use portcullis_core::response::AuthorizationResponse;
use portcullis_jose::{b64url, b64url_decode};

use crate::app::AppState;
use crate::http::{html, html_with_form_targets};
use crate::users::Verdict;

const SESSION_COOKIE: &str = "__Host-portcullis-session";
const CSRF_COOKIE: &str = "__Host-portcullis-csrf";
/// Marks a browser where a user signed in before (OWASP "device cookies"): its attempts for that
/// user skip the per-username back-off, which others' guesses fill.
const DEVICE_COOKIE: &str = "__Host-portcullis-device";
/// How long a device cookie is honoured (seconds).
const DEVICE_COOKIE_LIFETIME: i64 = 90 * 86_400;

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

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    action: &'a str,
    client_name: Option<&'a str>,
    fields: &'a [(String, String)],
    csrf_token: &'a str,
}

#[derive(Template)]
#[template(path = "signed-out.html")]
struct SignedOutPage;

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
    render_for(t, status, None)
}

/// Renders a page whose form may end in a redirect to `target` (CSP `form-action` also governs
/// where the form's response redirects to).
fn render_for(t: &impl Template, status: StatusCode, target: Option<&str>) -> Response {
    match t.render() {
        Ok(body) => match target {
            Some(t) => html_with_form_targets(status, body, t),
            None => html(status, body),
        },
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

/// A refusal at the authorization endpoint: to the client's verified redirect URI when it may
/// go there, otherwise shown to the user (AS-SP-53).
fn failure(s: &AppState, e: OAuthError) -> Response {
    if let Some(response) = AuthorizationResponse::from_error(&e) {
        tracing::info!(error = e.code.as_str(), description = %e.public_description(), "authorization refused (redirected)");
        return respond(s, &response);
    }
    if e.status.is_server_error() {
        tracing::error!(error = %e, "authorization failed");
        return error_page(500, "The server could not complete the request.");
    }
    tracing::info!(error = e.code.as_str(), description = %e.public_description(), "authorization refused (page)");
    error_page(e.status.code(), &e.public_description())
}

/// Sends the browser to the client with an authorization response, in its response mode.
fn respond(s: &AppState, response: &AuthorizationResponse) -> Response {
    see_other(&response.redirect_url(&s.provider.settings().issuer))
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

/// Which form a CSRF token is for: a token of one form is never accepted by another (issue 13
/// item 6: the login form's token must not post the consent form).
#[derive(Debug, Clone, Copy)]
enum FormPurpose {
    Login,
    Consent,
    Logout,
}

impl FormPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Consent => "consent",
            Self::Logout => "logout",
        }
    }
}

/// The CSRF token of a form: bound to the browser (its `__Host-` cookie), to the form and to
/// the request; signed with the rotating CSRF secret (issue 13 item 14).
fn csrf_token(state: &AppState, browser: &str, purpose: FormPurpose, bound_to: &str) -> String {
    b64url(state.csrf.sign(csrf_message(browser, purpose, bound_to).as_bytes()))
}

fn csrf_valid(state: &AppState, browser: &str, purpose: FormPurpose, bound_to: &str, token: &str) -> bool {
    match b64url_decode(token) {
        Ok(tag) => state
            .csrf
            .verify(csrf_message(browser, purpose, bound_to).as_bytes(), &tag),
        Err(_) => false,
    }
}

fn csrf_message(browser: &str, purpose: FormPurpose, bound_to: &str) -> String {
    format!("{}\n{browser}\n{bound_to}", purpose.as_str())
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
    /// The hash of the session cookie the browser sent, if any (valid or not).
    session_hash: Option<String>,
}

async fn browser(state: &AppState, headers: &HeaderMap) -> Result<Browser, Response> {
    let (csrf_cookie, new_cookie) = match cookie(headers, CSRF_COOKIE) {
        Some(c) => (c, false),
        None => (credential(), true),
    };
    let session_hash = cookie(headers, SESSION_COOKIE).map(|id| hash(&id));
    let session = match &session_hash {
        Some(id_hash) => state
            .provider
            .store()
            .get_session(id_hash, state.provider.now())
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
        session_hash,
    })
}

/// GET on the authorization endpoint.
pub async fn authorize(State(s): State<Arc<AppState>>, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    let query = query_pairs(q.as_deref());
    let pending = match s.provider.begin_authorization(query.clone()).await {
        Ok(p) => p,
        Err(e) => return failure(&s, e),
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
        (NextStep::Respond(response), _) => return respond(&s, &response),
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
    let csrf = csrf_token(s, browser, FormPurpose::Login, request_uri);
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
    let csrf = csrf_token(s, browser, FormPurpose::Consent, request_uri);
    let mut scopes: Vec<&'static str> = pending.request.scope.iter().map(|x| describe_scope(x)).collect();
    if scopes.is_empty() {
        scopes.push("access your account on your behalf");
    }
    // the consent form's response redirects to the client (SP 5.3.2.2-10): CSP form-action
    // names that redirect URI (issue 13 item 16)
    render_for(
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
        Some(&pending.request.redirect_uri),
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
    purpose: FormPurpose,
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
    if !csrf_valid(
        s,
        &b.csrf_cookie,
        purpose,
        form.get("request_uri"),
        form.get("csrf_token"),
    ) {
        return Err(error_page(
            403,
            "The form has expired or was not sent from this site (CSRF check failed).",
        ));
    }
    let query = vec![
        ("client_id".to_owned(), form.get("client_id").to_owned()),
        ("request_uri".to_owned(), form.get("request_uri").to_owned()),
    ];
    let pending = s.provider.begin_authorization(query).await.map_err(|e| failure(s, e))?;
    Ok((form, pending, b))
}

fn authorize_again(s: &AppState, form: &PostedForm) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    ser.append_pair("client_id", form.get("client_id"));
    ser.append_pair("request_uri", form.get("request_uri"));
    format!("{}?{}", s.authorize_path, ser.finish())
}

/// POST of the login form.
pub async fn login(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (form, pending, b) = match posted(&s, &headers, &body, FormPurpose::Login).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let username = form.get("username");
    let password = form.get("password");
    let request_uri = form.get("request_uri");
    // issue 13 item 7: back-off per username, per client address and per request; the wait is
    // taken before the password is checked, and parallel attempts queue one after another. A
    // browser where this user signed in before is not held up by others' guesses at the name.
    let device =
        cookie(&headers, DEVICE_COOKIE).and_then(|c| s.login_failures.known_device(&c, username, s.provider.now()));
    let keys = s
        .login_failures
        .keys(username, peer.ip(), request_uri, device.as_deref());
    let Some((attempt, wait)) = s.login_failures.admit(keys) else {
        tracing::info!(user = %s.login_failures.tag(username), "login refused: too many recent failures");
        return too_many_attempts();
    };
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
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
    let verdict = s
        .passwords
        .verify(user.as_ref().map(|u| u.password_hash.clone()), password.to_owned())
        .await;
    let user = match (verdict, user) {
        (Verdict::Match, Some(user)) => user,
        // no check was made: not a wrong password, and no failure
        (Verdict::Busy, _) => {
            attempt.busy();
            return busy();
        }
        _ => {
            attempt.failed();
            // issue 13 item 13: never the username as typed (it may be a password, or huge)
            tracing::info!(user = %s.login_failures.tag(username), "login failed");
            let shown = if username.chars().count() > 256 { "" } else { username };
            return login_page(
                &s,
                &pending,
                request_uri,
                &b.csrf_cookie,
                shown,
                Some("The username or password is not correct."),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    attempt.succeeded();
    let now = s.provider.now();
    // issue 13 item 15: a login starts a new session and ends the one the browser had
    if let Some(old) = &b.session_hash
        && let Err(e) = s.provider.store().delete_session(old).await
    {
        tracing::error!(error = %e, "session delete failed");
        return error_page(500, "The server could not end your previous session.");
    }
    let session_id = credential();
    let session = Session {
        username: user.username.clone(),
        auth_time: now,
        expires_at: now + s.provider.settings().session_lifetime,
        login_request: Some(pending.request_uri_hash.clone()),
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
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            DEVICE_COOKIE,
            &s.login_failures.device_cookie(&user.username, now),
            DEVICE_COOKIE_LIFETIME,
        ),
    );
    res
}

/// 503 with `Retry-After`: every password worker is busy (issue 13 item 7).
fn busy() -> Response {
    let mut res = error_page(
        503,
        "The server is busy checking other sign-ins. Please try again in a few seconds.",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}

/// 429: this account, address or request has failed too often to queue another attempt.
fn too_many_attempts() -> Response {
    let mut res = error_page(
        429,
        "Too many failed sign-in attempts. Please wait a minute and try again.",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    res
}

/// POST of the consent form.
pub async fn consent(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (form, pending, b) = match posted(&s, &headers, &body, FormPurpose::Consent).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(session) = b.session else {
        return see_other(&authorize_again(&s, &form));
    };
    // issue 13 item 6: prompt=login and max_age are decided again when consent is given, not
    // only when the page was shown (OIDC Core §3.1.2.1)
    match s.provider.next_step(&pending, Some(&session)) {
        NextStep::Consent => {}
        NextStep::Login => return see_other(&authorize_again(&s, &form)),
        NextStep::Respond(response) => return respond(&s, &response),
    }
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
                login_request: session.login_request.clone(),
            }
        }
        "deny" => Decision::Deny,
        _ => return error_page(400, "Choose allow or deny."),
    };
    match s.provider.complete_authorization(&pending, decision).await {
        Ok(response) => respond(&s, &response),
        Err(e) => failure(&s, e),
    }
}

/// GET and POST of the end-session endpoint (OpenID Connect RP-Initiated Logout 1.0): GET asks
/// the user to confirm; the confirmed POST (CSRF-checked) ends the session and, when the client
/// registered it, redirects to its `post_logout_redirect_uri` (issue 13 item 15).
pub async fn logout(
    State(s): State<Arc<AppState>>,
    method: axum::http::Method,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let max = s.provider.settings().max_form_params;
    let confirmed = method == axum::http::Method::POST;
    let params = if confirmed {
        match crate::http::form(&headers, &body, max) {
            Ok(p) => p,
            Err(e) => return error_page(400, &e.description),
        }
    } else {
        let p = query_pairs(q.as_deref());
        if p.len() > max {
            return error_page(400, "The logout request has too many parameters.");
        }
        p
    };
    let b = match browser(&s, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request = match s.provider.logout_request(&params, b.session.as_ref()).await {
        Ok(r) => r,
        Err(message) => return error_page(400, &message),
    };
    // what the CSRF token binds: the logout parameters as checked
    let fields: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "id_token_hint" | "post_logout_redirect_uri" | "state" | "client_id"
            )
        })
        .cloned()
        .collect();
    let bound = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter())
        .finish();
    if b.session.is_none() {
        // nothing to end: no question to ask
        return signed_out(&s, request.redirect.as_deref());
    }
    if !confirmed {
        let csrf = csrf_token(&s, &b.csrf_cookie, FormPurpose::Logout, &bound);
        let mut res = render_for(
            &LogoutPage {
                action: &s.logout_action,
                client_name: request.client_name.as_deref(),
                fields: &fields,
                csrf_token: &csrf,
            },
            StatusCode::OK,
            request.redirect.as_deref(),
        );
        if b.new_cookie {
            res.headers_mut()
                .append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &b.csrf_cookie, 86_400));
        }
        return res;
    }
    let token = params
        .iter()
        .find(|(k, _)| k == "csrf_token")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if b.new_cookie || !csrf_valid(&s, &b.csrf_cookie, FormPurpose::Logout, &bound, token) {
        return error_page(
            403,
            "The form has expired or was not sent from this site (CSRF check failed).",
        );
    }
    if let Some(old) = &b.session_hash
        && let Err(e) = s.provider.store().delete_session(old).await
    {
        tracing::error!(error = %e, "session delete failed");
        return error_page(500, "The server could not end your session.");
    }
    let mut res = signed_out(&s, request.redirect.as_deref());
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    res
}

fn signed_out(_s: &AppState, redirect: Option<&str>) -> Response {
    match redirect {
        Some(url) => see_other(url),
        None => render(&SignedOutPage, StatusCode::OK),
    }
}

/// Login failures, kept per username, per client address and per request_uri (issue 13 item
/// 7). After a few failures each further attempt on a key takes a turn of growing length (up to
/// 5 s). An attempt counts as a failure from the moment it is admitted until its password is
/// found correct, and turns are reserved before the password is checked, so parallel attempts
/// wait one after another instead of all at once. A browser with this user's device cookie skips
/// the username's turns (others' guesses cannot lock the user out of a browser they used
/// before). Bounded in size: when full, the oldest entries make room (never a reset of
/// everyone). Local to the node (ROADMAP 1: shared through the database later).
pub struct LoginFailures {
    map: std::sync::Mutex<std::collections::HashMap<String, Attempts>>,
    max_tracked: usize,
    /// A per-process key for log tags of usernames (issue 13 item 13).
    log_key: hmac::Key,
    /// Signs device cookies (stored, so they survive restarts and hold on every node).
    device_key: hmac::Key,
}

struct Attempts {
    failures: u32,
    /// Attempts admitted and not yet resolved: they count as failures meanwhile.
    in_flight: u32,
    /// Failures a key gets before attempts take turns.
    free: u32,
    last: Instant,
    /// When the next attempt's turn starts.
    next_turn: Instant,
}

/// An admitted login attempt. Until [`Attempt::succeeded`] it counts as a failure on each of its
/// keys, and so does an attempt dropped unresolved (the client went away while its password was
/// being checked). [`Attempt::busy`] (no check was made) counts as nothing.
pub struct Attempt<'a> {
    owner: &'a LoginFailures,
    keys: Vec<(String, u32)>,
    resolved: bool,
}

impl Attempt<'_> {
    pub fn failed(mut self) {
        self.resolved = true;
        self.owner.resolve(&self.keys, true);
    }

    /// A correct password clears the username's and the request's failures (not the
    /// address's or network's: one success must not hide a guessing run from there; nor a
    /// device's: a copied device cookie must not get its free guesses back whenever the real
    /// user signs in).
    pub fn succeeded(mut self) {
        self.resolved = true;
        self.owner.resolve(&self.keys, false);
        let mut map = self.owner.lock();
        for (k, _) in self
            .keys
            .iter()
            .filter(|(k, _)| k.starts_with("u:") || k.starts_with("r:"))
        {
            map.remove(k);
        }
    }
}

impl Attempt<'_> {
    /// No check was made: counts as nothing (a flood's own checked attempts already charge its
    /// addresses, and a busy answer must not push people sharing an address into back-off).
    pub fn busy(mut self) {
        self.resolved = true;
        self.owner.resolve(&self.keys, false);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.resolved {
            self.owner.resolve(&self.keys, true);
        }
    }
}

/// How long failures are remembered.
const FAILURE_MEMORY: Duration = Duration::from_secs(900);
/// The most entries tracked (each a short hashed key).
const MAX_TRACKED: usize = 10_000;
/// An attempt that would have to wait longer than this is refused at once (429), so that
/// waiting attempts cannot pile up.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Failures before attempts take turns: per username and per request, and (several people may
/// share one address) per client address.
const FREE_PER_USER: u32 = 3;
const FREE_PER_ADDRESS: u32 = 10;
const FREE_PER_NETWORK: u32 = 30;

impl Default for LoginFailures {
    fn default() -> Self {
        Self::new(&random_bytes::<32>(), MAX_TRACKED)
    }
}

impl LoginFailures {
    pub fn new(device_secret: &[u8], max_tracked: usize) -> Self {
        Self {
            map: Default::default(),
            max_tracked: max_tracked.max(1),
            log_key: hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()),
            device_key: hmac::Key::new(hmac::HMAC_SHA256, device_secret),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Attempts>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys of one attempt: client address (as the connection gate counts it: IPv4-mapped
    /// as IPv4, IPv6 by /64), request, and username, or instead of the username the device (a
    /// browser where this user signed in before) while that device has fewer than
    /// [`DEVICE_MAX_FAILURES`] failures: a stolen device cookie buys a few guesses, not a way
    /// around the username's back-off.
    fn keys(&self, username: &str, addr: IpAddr, request_uri: &str, device: Option<&str>) -> Vec<(String, u32)> {
        let mut keys = vec![
            (format!("a:{}", crate::connections::address_key(addr)), FREE_PER_ADDRESS),
            (format!("r:{}", hash(request_uri)), FREE_PER_USER),
        ];
        // one IPv6 subscriber commonly holds a /56 or a /48, i.e. hundreds of /64s: the
        // enclosing /48 is limited too
        if let IpAddr::V6(v6) = addr.to_canonical() {
            let net = std::net::Ipv6Addr::from(v6.to_bits() & !((1u128 << 80) - 1));
            keys.push((format!("n:{net}/48"), FREE_PER_NETWORK));
        }
        let device_key = device.map(|d| format!("d:{d}"));
        let trusted = device_key.as_ref().is_some_and(|k| {
            self.lock()
                .get(k)
                .is_none_or(|a| a.failures + a.in_flight < DEVICE_MAX_FAILURES)
        });
        match device_key {
            Some(k) if trusted => keys.push((k, FREE_PER_USER)),
            _ => keys.push((format!("u:{}", hash(&username.to_lowercase())), FREE_PER_USER)),
        }
        keys
    }

    /// A bounded, non-reversible tag of a username for the log: the same name gives the same
    /// tag within one process, so repeated failures can be followed without logging the name.
    fn tag(&self, username: &str) -> String {
        let t = hmac::sign(&self.log_key, username.as_bytes());
        t.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A device cookie (OWASP "device cookies"): a random device id and the issue time, with a
    /// MAC binding both to the user. A new one is issued at every successful login.
    fn device_cookie(&self, username: &str, now: i64) -> String {
        let mut value = random_bytes::<16>().to_vec();
        value.extend_from_slice(&now.to_be_bytes());
        let tag = hmac::sign(&self.device_key, &device_message(username, &value));
        value.extend_from_slice(tag.as_ref());
        b64url(value)
    }

    /// The device id of a cookie issued to `username` within [`DEVICE_COOKIE_LIFETIME`].
    fn known_device(&self, cookie: &str, username: &str, now: i64) -> Option<String> {
        let raw = b64url_decode(cookie).ok()?;
        if raw.len() != 16 + 8 + 32 {
            return None;
        }
        let (value, tag) = raw.split_at(24);
        hmac::verify(&self.device_key, &device_message(username, value), tag).ok()?;
        let issued = i64::from_be_bytes(value[16..24].try_into().ok()?);
        if now < issued || now - issued > DEVICE_COOKIE_LIFETIME {
            return None;
        }
        Some(value[..16].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Admits an attempt: reserves its turn on every key and counts it as in flight. Returns
    /// how long to wait before checking the password, or None when that would be longer than
    /// [`MAX_WAIT`].
    fn admit(&self, keys: Vec<(String, u32)>) -> Option<(Attempt<'_>, Duration)> {
        let now = Instant::now();
        let mut map = self.lock();
        let mut wait = Duration::ZERO;
        for (k, _) in &keys {
            if let Some(a) = map.get(k)
                && !turn(pending(a, now), a.free).is_zero()
            {
                wait = wait.max(a.next_turn.saturating_duration_since(now));
            }
        }
        if wait > MAX_WAIT {
            return None;
        }
        for (k, free) in &keys {
            if !map.contains_key(k) && map.len() >= self.max_tracked {
                evict_oldest(&mut map, self.max_tracked, now);
            }
            let a = map.entry(k.clone()).or_insert(Attempts {
                failures: 0,
                in_flight: 0,
                free: *free,
                last: now,
                next_turn: now,
            });
            if now.duration_since(a.last) > FAILURE_MEMORY {
                a.failures = 0;
            }
            let t = turn(a.failures + a.in_flight, a.free);
            if !t.is_zero() {
                a.next_turn = a.next_turn.max(now) + t;
            }
            a.in_flight = a.in_flight.saturating_add(1);
            a.last = now;
        }
        Some((
            Attempt {
                owner: self,
                keys,
                resolved: false,
            },
            wait,
        ))
    }

    fn resolve(&self, keys: &[(String, u32)], failed: bool) {
        let now = Instant::now();
        let mut map = self.lock();
        for (k, _) in keys {
            if let Some(a) = map.get_mut(k) {
                a.in_flight = a.in_flight.saturating_sub(1);
                if failed {
                    a.failures = a.failures.saturating_add(1);
                    a.last = now;
                }
            }
        }
    }
}

fn device_message(username: &str, value: &[u8]) -> Vec<u8> {
    let mut m = format!("device\n{}\n", username.to_lowercase()).into_bytes();
    m.extend_from_slice(value);
    m
}

/// Failures (and attempts in flight) a device may have before it is treated as unknown.
const DEVICE_MAX_FAILURES: u32 = 5;

/// Failures plus attempts in flight, for an entry not yet forgotten.
fn pending(a: &Attempts, now: Instant) -> u32 {
    let failures = if now.duration_since(a.last) > FAILURE_MEMORY {
        0
    } else {
        a.failures
    };
    failures + a.in_flight
}

/// The length of an attempt's turn after `failures` failures on a key that gets `free`.
fn turn(failures: u32, free: u32) -> Duration {
    if failures < free {
        Duration::ZERO
    } else {
        Duration::from_millis((250u64 << (failures - free).min(5)).min(5000))
    }
}

/// Makes room: forgets stale entries, and if that is not enough the oldest tenth (never one
/// with an attempt in flight).
fn evict_oldest(map: &mut std::collections::HashMap<String, Attempts>, max: usize, now: Instant) {
    map.retain(|_, a| a.in_flight > 0 || now.duration_since(a.last) < FAILURE_MEMORY);
    if map.len() < max {
        return;
    }
    // entries that hold no failure go first (a flood of successful or pending logins must not
    // push out anyone's back-off)
    map.retain(|_, a| a.in_flight > 0 || a.failures > 0);
    if map.len() < max {
        return;
    }
    let mut ages: Vec<(Instant, String)> = map
        .iter()
        .filter(|(_, a)| a.in_flight == 0)
        .map(|(k, a)| (a.last, k.clone()))
        .collect();
    if ages.is_empty() {
        return;
    }
    let n = (max / 10).max(1).min(ages.len());
    ages.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
    for (_, k) in ages.into_iter().take(n) {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(f: &LoginFailures, user: &str, ip: &str, req: &str) -> Vec<(String, u32)> {
        f.keys(user, ip.parse().unwrap(), req, None)
    }

    /// Admits and resolves one attempt at once; returns its wait.
    fn attempt(f: &LoginFailures, k: &[(String, u32)], failed: bool) -> Option<Duration> {
        let (a, wait) = f.admit(k.to_vec())?;
        if failed {
            a.failed();
        } else {
            a.succeeded();
        }
        Some(wait)
    }

    /// Repeated failures make attempts take turns; a success resets the username's count.
    #[test]
    fn login_failures_back_off() {
        let f = LoginFailures::default();
        let k = keys(&f, "a", "192.0.2.1", "r1");
        for _ in 0..3 {
            assert_eq!(attempt(&f, &k, true), Some(Duration::ZERO));
        }
        // the fourth attempt reserves a turn; the fifth, made at once, waits for it
        assert_eq!(attempt(&f, &k, true), Some(Duration::ZERO));
        assert!(attempt(&f, &k, true).unwrap() > Duration::ZERO);
        let other = keys(&f, "b", "192.0.2.2", "r2");
        assert_eq!(
            attempt(&f, &other, true),
            Some(Duration::ZERO),
            "per username, address, request"
        );
        let (a, _) = f.admit(k.clone()).unwrap();
        a.succeeded();
        let fresh = keys(&f, "a", "192.0.2.3", "r3");
        assert_eq!(
            attempt(&f, &fresh, true),
            Some(Duration::ZERO),
            "a success resets the username"
        );
    }

    /// Issue 13 item 7 (and the review's follow-up): a burst of parallel guesses, none yet
    /// resolved, already takes turns (attempts in flight count as failures); past the longest
    /// wait they are refused outright.
    #[test]
    fn parallel_attempts_take_turns() {
        let f = LoginFailures::default();
        let k = keys(&f, "victim", "198.51.100.7", "r");
        let admitted: Vec<_> = (0..60).map(|_| f.admit(k.clone())).collect();
        let waits: Vec<Duration> = admitted.iter().flatten().map(|(_, w)| *w).collect();
        assert!(waits.iter().filter(|w| w.is_zero()).count() <= 4, "{waits:?}");
        assert!(waits.windows(2).skip(4).all(|w| w[1] > w[0]), "{waits:?}");
        assert!(waits.iter().all(|w| *w <= MAX_WAIT));
        assert!(admitted.iter().any(Option::is_none), "no refusal past the longest wait");
        drop(admitted);
        let map = f.lock();
        // abandoned, they count as failures (their checks may have run)
        assert!(map.values().all(|a| a.in_flight == 0 && a.failures > 0));
    }

    /// Review follow-up: IPv4 clients on a dual-stack listener arrive IPv4-mapped; each is its
    /// own address, not one shared "/64".
    #[test]
    fn mapped_ipv4_addresses_are_distinct() {
        let f = LoginFailures::default();
        let a = f.keys("u", "::ffff:192.0.2.1".parse().unwrap(), "r", None);
        let b = f.keys("u", "::ffff:192.0.2.2".parse().unwrap(), "r", None);
        assert_ne!(a[0], b[0]);
        assert_eq!(a[0], f.keys("u", "192.0.2.1".parse().unwrap(), "r", None)[0]);
    }

    /// Review follow-up: guesses at a username from elsewhere do not hold up that user on a
    /// browser where they signed in before (device cookie); a forged cookie does not count.
    #[test]
    fn known_devices_skip_the_username_queue() {
        let f = LoginFailures::default();
        for i in 0..40 {
            let k = keys(&f, "alice", &format!("203.0.113.{i}"), &format!("r{i}"));
            let _ = attempt(&f, &k, true);
        }
        let stranger = keys(&f, "alice", "192.0.2.50", "fresh");
        assert!(
            f.admit(stranger).is_none_or(|(_, w)| w > Duration::ZERO),
            "the name is throttled"
        );
        let now = 1_800_000_000;
        let cookie = f.device_cookie("Alice", now);
        let device = f.known_device(&cookie, "alice", now + 60).expect("a known device");
        assert_ne!(
            f.known_device(&f.device_cookie("alice", now), "alice", now),
            Some(device.clone()),
            "one id per device"
        );
        assert_eq!(f.known_device(&cookie, "bob", now), None);
        assert_eq!(f.known_device("AAAA", "alice", now), None);
        assert_eq!(
            f.known_device(&cookie, "alice", now + DEVICE_COOKIE_LIFETIME + 1),
            None,
            "expires"
        );
        let mine = f.keys("alice", "192.0.2.51".parse().unwrap(), "mine", Some(&device));
        assert_eq!(attempt(&f, &mine, false), Some(Duration::ZERO));
    }

    /// Second review: a copied device cookie buys a few guesses, then the device counts as
    /// unknown and the username's back-off applies again.
    #[test]
    fn a_device_with_failures_loses_its_pass() {
        let f = LoginFailures::default();
        let now = 1_800_000_000;
        let device = f.known_device(&f.device_cookie("alice", now), "alice", now).unwrap();
        for i in 0..DEVICE_MAX_FAILURES {
            let k = f.keys(
                "alice",
                format!("198.51.100.{i}").parse().unwrap(),
                &format!("r{i}"),
                Some(&device),
            );
            assert!(k.iter().any(|(k, _)| k.starts_with("d:")));
            let _ = attempt(&f, &k, true);
        }
        let k = f.keys("alice", "198.51.100.99".parse().unwrap(), "r99", Some(&device));
        assert!(k.iter().any(|(k, _)| k.starts_with("u:")), "{k:?}");
        assert!(!k.iter().any(|(k, _)| k.starts_with("d:")));
    }

    /// Third review: the real user signing in with the device does not give a copied cookie
    /// its free guesses back.
    #[test]
    fn a_success_does_not_reset_the_device() {
        let f = LoginFailures::default();
        let now = 1_800_000_000;
        let device = f.known_device(&f.device_cookie("alice", now), "alice", now).unwrap();
        let guess = |i: u32| {
            f.keys(
                "alice",
                format!("198.51.100.{i}").parse().unwrap(),
                &format!("g{i}"),
                Some(&device),
            )
        };
        for i in 0..DEVICE_MAX_FAILURES - 1 {
            let _ = attempt(&f, &guess(i), true);
        }
        let _ = attempt(
            &f,
            &f.keys("alice", "192.0.2.77".parse().unwrap(), "ok", Some(&device)),
            false,
        );
        let _ = attempt(&f, &guess(50), true);
        assert!(
            !guess(51).iter().any(|(k, _)| k.starts_with("d:")),
            "the device got its guesses back"
        );
    }

    /// Third review: the IPv6 /48 around an address is limited too (one subscriber may hold
    /// hundreds of /64s).
    #[test]
    fn ipv6_networks_are_limited_as_a_whole() {
        let f = LoginFailures::default();
        let a = f.keys("u", "2001:db8:1:1::1".parse().unwrap(), "r", None);
        let b = f.keys("u", "2001:db8:1:ff00::1".parse().unwrap(), "r", None);
        let net = |k: &[(String, u32)]| k.iter().find(|(k, _)| k.starts_with("n:")).cloned();
        assert_ne!(a[0], b[0], "different /64s");
        assert_eq!(net(&a), net(&b), "one /48");
        assert!(net(&f.keys("u", "192.0.2.1".parse().unwrap(), "r", None)).is_none());
    }

    /// Second review: an attempt abandoned while its password is checked counts as a failure;
    /// a busy answer counts as nothing.
    #[test]
    fn abandoned_attempts_count_and_busy_charges_the_address() {
        let f = LoginFailures::default();
        let k = keys(&f, "carol", "192.0.2.9", "rq");
        let (a, _) = f.admit(k.clone()).unwrap();
        drop(a);
        let (a, _) = f.admit(k.clone()).unwrap();
        a.busy();
        let map = f.lock();
        let failures = |prefix: &str| {
            map.iter()
                .find(|(key, _)| key.starts_with(prefix))
                .map(|(_, a)| a.failures)
        };
        assert_eq!(failures("u:"), Some(1));
        assert_eq!(failures("a:"), Some(1));
        assert!(map.values().all(|a| a.in_flight == 0));
    }

    /// Issue 13 item 7: a flood of failures for other names neither resets nor evicts the
    /// back-off of a recent victim wholesale: the oldest entries go first.
    #[test]
    fn a_flood_evicts_oldest_entries_not_everyone() {
        let f = LoginFailures::new(b"k", 100);
        let victim = keys(&f, "victim", "203.0.113.9", "rv");
        for _ in 0..5 {
            let _ = attempt(&f, &victim, true);
        }
        for i in 0..300 {
            let k = vec![(format!("u:flood{i}"), FREE_PER_USER)];
            let _ = attempt(&f, &k, true);
            if i % 20 == 0 {
                let _ = attempt(&f, &victim[2..], true);
            }
        }
        let map = f.lock();
        assert!(map.len() <= 100 && map.len() > 80, "{}", map.len());
        assert!(
            map.contains_key(&victim[2].0),
            "the victim's back-off survived the flood"
        );
    }

    /// Issue 13 item 13: the log gets a short tag, never the name as typed.
    #[test]
    fn usernames_are_logged_as_tags() {
        let f = LoginFailures::default();
        let typed = format!("{}correct horse battery staple", "x".repeat(10_000));
        let tag = f.tag(&typed);
        assert_eq!(tag.len(), 12);
        assert!(!typed.contains(&tag) && tag.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(tag, f.tag(&typed), "stable within the process");
        assert_ne!(tag, f.tag("alice"));
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
