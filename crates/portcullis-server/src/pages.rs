//! The login and consent pages (INTERFACE.md forms): password login with a `__Host-` session
//! cookie, CSRF tokens bound to a browser cookie and the interaction, 303 after every POST
//! (SP 5.3.2.2-10/-11), and HTML error pages for what must not be redirected (AS-SP-53).
//!
//! Issue 17 item 7: a browser's first visit of the authorization endpoint starts an interaction
//! (core's `begin_authorization`) bound to it by the `__Host-portcullis-interaction` cookie,
//! without consuming the request_uri (AS-SP-44: another browser, or the same one after a link
//! pre-fetcher, may still sign in); the forms and the page after a login name the interaction,
//! never the request_uri, so a slow login is no race against the request_uri. The consent
//! answer completes the interaction and consumes the request_uri together.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::OAuthError;
use portcullis_core::authorize::{Decision, NextStep, PendingAuthorization};
use portcullis_core::model::Session;
use portcullis_core::random::{credential, hash};
use portcullis_core::response::AuthorizationResponse;
use portcullis_jose::{b64url, b64url_decode};

use crate::app::AppState;
use crate::audit_events;
use crate::http::InteractionId;
use crate::login_failures::DEVICE_COOKIE_LIFETIME;
use crate::users::Verdict;
use crate::web::{form, html, html_with_form_targets, http_status};

const SESSION_COOKIE: &str = "__Host-portcullis-session";
const CSRF_COOKIE: &str = "__Host-portcullis-csrf";
/// Marks a browser where a user signed in before (OWASP "device cookies"): its attempts for that
/// user skip the per-username back-off, which others' guesses fill.
const DEVICE_COOKIE: &str = "__Host-portcullis-device";
/// Binds login interactions to the browser (issue 17 item 7): a random key whose hash each
/// interaction started here holds. One per browser, so that sign-ins in several tabs go on side
/// by side; it lives as long as the newest interaction.
const INTERACTION_COOKIE: &str = "__Host-portcullis-interaction";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    action: &'a str,
    client_name: Option<&'a str>,
    interaction: &'a str,
    csrf_token: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    action: &'a str,
    client_name: Option<&'a str>,
    interaction: &'a str,
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
        "accounts" => "see your accounts and their balances",
        "payments" => "make payments from your accounts",
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

pub fn error_page(status: StatusCode, message: &str) -> Response {
    render(&ErrorPage { message }, status)
}

fn see_other(location: &str) -> Response {
    // SP 5.3.2.2-10/-11 (AS-SP-52): 303, never 307
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The redirect target is not a valid URL.",
        ),
    }
}

/// A refusal at the authorization endpoint: to the client's verified redirect URI when it may
/// go there, otherwise shown to the user (AS-SP-53).
async fn failure(s: &AppState, e: OAuthError) -> Response {
    if let Some(response) = e.authorization_response() {
        tracing::info!(error = e.code.as_str(), description = %e.public_description(), "authorization refused (redirected)");
        return respond(s, &response, None).await;
    }
    if e.status.is_server_error() {
        tracing::error!(error = %e, "authorization failed");
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server could not complete the request.",
        );
    }
    tracing::info!(error = e.code.as_str(), description = %e.public_description(), "authorization refused (page)");
    error_page(http_status(e.status), &e.public_description())
}

/// Sends the browser to the client with an authorization response, in its response mode. A
/// signed (JARM) response of a request that succeeded (`interaction`: the browser request's
/// id) goes into the evidence log (issue 16 item 5); a refusal's does not.
async fn respond(s: &AppState, response: &AuthorizationResponse, interaction: Option<&InteractionId>) -> Response {
    let id = interaction.map_or("", |i| i.0.as_str());
    match s.provider.authorization_redirect(response, id).await {
        Ok(redirect) => {
            if let (Some(e), Some(_)) = (redirect.evidence, interaction) {
                s.audit.record(e).await;
            }
            see_other(&redirect.url)
        }
        Err(e) => {
            tracing::error!(error = %e, "authorization response failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server could not complete the request.",
            )
        }
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
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The server could not read your session.",
                )
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

/// GET on the authorization endpoint: `client_id` + `request_uri` (a new interaction, or this
/// browser's for that request_uri), or `interaction` alone (where a login leads back to).
pub async fn authorize(
    State(s): State<Arc<AppState>>,
    interaction: InteractionId,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query_pairs(q.as_deref());
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let resume = match (param("request_uri"), param("interaction")) {
        (None, Some(id)) => Some(id),
        _ => None,
    };
    let browser_key = cookie(&headers, INTERACTION_COOKIE);
    let begun = match resume {
        Some(id) => s
            .provider
            .resume_interaction(&id, browser_key.as_deref())
            .await
            .map(|p| (p, None)),
        None => {
            // a browser without the cookie gets one; one with it has it renewed, so that it
            // outlives the newest interaction started with it
            let key = browser_key.unwrap_or_else(credential);
            s.provider
                .begin_authorization(query, &key)
                .await
                .map(|p| (p, Some(key)))
        }
    };
    let (pending, set_key) = match begun {
        Ok(x) => x,
        Err(e) => return failure(&s, e).await,
    };
    let b = match browser(&s, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut res = match (s.provider.next_step(&pending, b.session.as_ref()), &b.session) {
        (NextStep::Respond(response), _) => return respond(&s, &response, Some(&interaction)).await,
        (NextStep::Consent, Some(session)) => consent_page(&s, &pending, &b.csrf_cookie, &session.username),
        _ => login_page(&s, &pending, &b.csrf_cookie, "", None, StatusCode::OK),
    };
    if b.new_cookie {
        res.headers_mut()
            .append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &b.csrf_cookie, 86_400));
    }
    if let Some(key) = set_key {
        res.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(INTERACTION_COOKIE, &key, s.provider.settings().interaction_lifetime),
        );
    }
    res
}

fn login_page(
    s: &AppState,
    pending: &PendingAuthorization,
    browser: &str,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = csrf_token(s, browser, FormPurpose::Login, &pending.interaction);
    render(
        &LoginPage {
            action: &s.login_action,
            client_name: pending.client_name.as_deref(),
            interaction: &pending.interaction,
            csrf_token: &csrf,
            username,
            error,
        },
        status,
    )
}

fn consent_page(s: &AppState, pending: &PendingAuthorization, browser: &str, username: &str) -> Response {
    let csrf = csrf_token(s, browser, FormPurpose::Consent, &pending.interaction);
    let mut scopes: Vec<&'static str> = pending.request.scope.iter().map(|x| describe_scope(x)).collect();
    if scopes.is_empty() {
        scopes.push("access your account on your behalf");
    }
    // the consent form's response redirects to the client (SP 5.3.2.2-10): CSP form-action
    // names that redirect URI (issue 13 item 16)
    render_for(
        &ConsentPage {
            action: &s.consent_action,
            client_name: pending.client_name.as_deref(),
            interaction: &pending.interaction,
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

/// The checks common to both POSTs: form body, CSRF (bound to the browser, the form and the
/// interaction), and an interaction this browser started that is still going.
async fn posted(
    s: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    purpose: FormPurpose,
) -> Result<(PostedForm, PendingAuthorization, Browser), Response> {
    let fields = form(headers, body, s.provider.settings().max_form_params)
        .map_err(|e| error_page(StatusCode::BAD_REQUEST, &e.description))?;
    let form = PostedForm { fields };
    let b = browser(s, headers).await?;
    if b.new_cookie {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "Your browser did not send the cookie this form needs. Enable cookies and start again.",
        ));
    }
    if !csrf_valid(
        s,
        &b.csrf_cookie,
        purpose,
        form.get("interaction"),
        form.get("csrf_token"),
    ) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "The form has expired or was not sent from this site (CSRF check failed).",
        ));
    }
    let browser_key = cookie(headers, INTERACTION_COOKIE);
    let pending = match s
        .provider
        .resume_interaction(form.get("interaction"), browser_key.as_deref())
        .await
    {
        Ok(p) => p,
        Err(e) => return Err(failure(s, e).await),
    };
    Ok((form, pending, b))
}

/// The authorization endpoint again, for the interaction (the page after a login).
fn authorize_again(s: &AppState, pending: &PendingAuthorization) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    ser.append_pair("interaction", &pending.interaction);
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
    // issue 13 item 7: back-off per username, per client address and per request; the wait is
    // taken before the password is checked, and parallel attempts queue one after another. A
    // browser where this user signed in before is not held up by others' guesses at the name.
    let device =
        cookie(&headers, DEVICE_COOKIE).and_then(|c| s.login_failures.known_device(&c, username, s.provider.now()));
    let keys = s
        .login_failures
        .keys(username, peer.ip(), &pending.interaction, device.as_deref());
    let Some((attempt, wait)) = s.login_failures.admit(keys) else {
        tracing::info!(user = %s.login_failures.tag(username), "login refused: too many recent failures");
        audit_events::record("login", "refused", Some(&pending.request.client_id), None);
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
                return error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The server could not check your password.",
                );
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
            audit_events::record("login", "failure", Some(&pending.request.client_id), None);
            let shown = if username.chars().count() > 256 { "" } else { username };
            return login_page(
                &s,
                &pending,
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
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server could not end your previous session.",
        );
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
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server could not start your session.",
        );
    }
    audit_events::record("login", "success", Some(&pending.request.client_id), Some(&user.sub));
    let mut res = see_other(&authorize_again(&s, &pending));
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
        StatusCode::SERVICE_UNAVAILABLE,
        "The server is busy checking other sign-ins. Please try again in a few seconds.",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}

/// 429: this account, address or request has failed too often to queue another attempt.
fn too_many_attempts() -> Response {
    let mut res = error_page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many failed sign-in attempts. Please wait a minute and try again.",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    res
}

/// POST of the consent form.
pub async fn consent(
    State(s): State<Arc<AppState>>,
    interaction: InteractionId,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (form, pending, b) = match posted(&s, &headers, &body, FormPurpose::Consent).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(session) = b.session else {
        return see_other(&authorize_again(&s, &pending));
    };
    // issue 13 item 6: prompt=login and max_age are decided again when consent is given, not
    // only when the page was shown (OIDC Core §3.1.2.1)
    match s.provider.next_step(&pending, Some(&session)) {
        NextStep::Consent => {}
        NextStep::Login => return see_other(&authorize_again(&s, &pending)),
        NextStep::Respond(response) => return respond(&s, &response, Some(&interaction)).await,
    }
    let decision = match form.get("decision") {
        "allow" => {
            let user = match s.provider.store().get_user(&session.username).await {
                Ok(Some(u)) => u,
                Ok(None) => return error_page(StatusCode::FORBIDDEN, "Your account no longer exists."),
                Err(e) => {
                    tracing::error!(error = %e, "user lookup failed");
                    return error_page(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "The server could not read your account.",
                    );
                }
            };
            Decision::Allow {
                sub: user.sub,
                auth_time: session.auth_time,
                login_request: session.login_request.clone(),
            }
        }
        "deny" => Decision::Deny,
        _ => return error_page(StatusCode::BAD_REQUEST, "Choose allow or deny."),
    };
    let client_id = pending.request.client_id.as_str();
    let (given, sub) = match &decision {
        Decision::Allow { sub, .. } => (true, Some(sub.clone())),
        Decision::Deny => (false, None),
    };
    match s.provider.complete_authorization(&pending, decision).await {
        Ok(response) => {
            if given {
                audit_events::record("consent", "given", Some(client_id), sub.as_deref());
                audit_events::record("code_issued", "success", Some(client_id), sub.as_deref());
            } else {
                audit_events::record("consent", "denied", Some(client_id), None);
            }
            respond(&s, &response, Some(&interaction)).await
        }
        Err(e) => {
            audit_events::record("consent", "failure", Some(client_id), sub.as_deref());
            failure(&s, e).await
        }
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
        match form(&headers, &body, max) {
            Ok(p) => p,
            Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.description),
        }
    } else {
        let p = query_pairs(q.as_deref());
        if p.len() > max {
            return error_page(StatusCode::BAD_REQUEST, "The logout request has too many parameters.");
        }
        p
    };
    let b = match browser(&s, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request = match s.provider.logout_request(&params, b.session.as_ref()).await {
        Ok(r) => r,
        Err(message) => return error_page(StatusCode::BAD_REQUEST, &message),
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
            StatusCode::FORBIDDEN,
            "The form has expired or was not sent from this site (CSRF check failed).",
        );
    }
    if let Some(old) = &b.session_hash
        && let Err(e) = s.provider.store().delete_session(old).await
    {
        tracing::error!(error = %e, "session delete failed");
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server could not end your session.",
        );
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

#[cfg(test)]
mod tests {
    use super::*;

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
