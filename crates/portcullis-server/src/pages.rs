//! The login and consent pages (INTERFACE.md forms): password login with a `__Host-` session
//! cookie, CSRF tokens bound to a browser cookie and the interaction, 303 after every POST
//! (SP 5.3.2.2-10/-11), and HTML error pages for what must not be redirected (AS-SP-53).
//!
//! Issue 17 item 8: the pages carry the operator's branding, speak the user's language
//! (`ui_locales`, else `Accept-Language`), say on the consent page who is signed in (with a
//! way out), how long access lasts and where the client's policy and terms are, and error pages
//! give the interaction id as a reference and a way back to the application only when its
//! redirect URI was verified at PAR.
//!
//! Issue 17 item 7: a browser's first visit of the authorization endpoint starts an interaction
//! (core's `begin_authorization`) bound to it by the `__Host-portcullis-interaction` cookie,
//! without consuming the request_uri (AS-SP-44: another browser, or the same one after a link
//! pre-fetcher, may still sign in); the forms and the page after a login name the interaction,
//! never the request_uri, so a slow login is no race against the request_uri. The consent
//! answer completes the interaction and consumes the request_uri together.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use portcullis_core::authorize::{Decision, InteractionEnd, NextStep, PendingAuthorization};
use portcullis_core::model::{Session, User};
use portcullis_core::random::{credential, hash};
use portcullis_core::response::AuthorizationResponse;
use portcullis_core::{ErrorCode, OAuthError};
use portcullis_jose::{b64url, b64url_decode};

use crate::app::AppState;
use crate::audit_events;
use crate::branding::Ui;
use crate::i18n::{Locale, Problem};
use crate::login_failures::DEVICE_COOKIE_LIFETIME;
use crate::users::Verdict;
use crate::web::InteractionId;
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

/// What every page of one request shares: its language and its interaction id (the reference
/// an error page gives for support).
pub struct PageCtx {
    locale: Locale,
    interaction: String,
    accept_language: Option<String>,
}

impl PageCtx {
    pub fn new(headers: &HeaderMap, interaction: &InteractionId) -> Self {
        let accept_language = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(512).collect::<String>());
        Self {
            locale: Locale::negotiate(&[], accept_language.as_deref()),
            interaction: interaction.0.clone(),
            accept_language,
        }
    }

    /// The pushed request's `ui_locales` come before the browser's languages.
    fn prefer(&mut self, pending: &PendingAuthorization) {
        self.locale = Locale::negotiate(&pending.request.ui_locales, self.accept_language.as_deref());
    }
}

/// An error page: the problem in plain words, the protocol's detail for support, the
/// interaction id as a reference, and a way back to the application when that is safe.
struct ErrorView {
    status: StatusCode,
    problem: Problem,
    detail: Option<String>,
    back: Option<String>,
}

impl ErrorView {
    fn new(status: StatusCode, problem: Problem) -> Self {
        Self {
            status,
            problem,
            detail: None,
            back: None,
        }
    }

    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// A link back to the application: only ever the redirect URI the pushed request was
    /// verified with at PAR (AS-SP-53), carrying an `access_denied` response.
    async fn back_to(mut self, s: &AppState, pending: Option<&PendingAuthorization>) -> Self {
        if let Some(p) = pending {
            self.back = back_link(s, p).await;
        }
        self
    }

    fn render(self, s: &AppState, pc: &PageCtx) -> Response {
        let ctx = context! {
            message => self.problem.words(pc.locale),
            detail => self.detail,
            back_url => self.back,
            reference => pc.interaction,
        };
        page(s, pc, "error.html", ctx, self.status, None)
    }
}

/// Renders a page template with the branding, the language's words and `ctx`.
fn page(
    s: &AppState,
    pc: &PageCtx,
    name: &str,
    ctx: minijinja::Value,
    status: StatusCode,
    target: Option<&str>,
) -> Response {
    let ui = &s.ui;
    let full = context! {
        lang => pc.locale.tag(),
        t => minijinja::Value::from_serialize(pc.locale.strings()),
        brand => minijinja::Value::from_serialize(ui.brand()),
        ..ctx
    };
    let images = ui.logo().is_some();
    match ui.render(name, full) {
        Ok(body) => match target {
            Some(t) => html_with_form_targets(status, body, t, images),
            None => html(status, body, images),
        },
        Err(e) => {
            tracing::error!(error = %e, template = name, "template failed");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><html lang=\"en\"><title>Error</title><p>Internal error.</p></html>".into(),
                false,
            )
        }
    }
}

/// The pages' templates and branding (`[branding]`), read and trial-rendered once.
pub fn load_ui(config: &crate::config::Config) -> Result<crate::branding::Ui, String> {
    let base_path = url::Url::parse(&config.server.issuer)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    crate::branding::Ui::load(&config.branding, &base_path, sample_context)
}

/// The values a page template gets, with sample data: the start-up trial render of every
/// template (an override that fails fails the start, not a sign-in).
pub fn sample_context(ui: &Ui, name: &str) -> minijinja::Value {
    let locale = Locale::default();
    let common = context! {
        lang => locale.tag(),
        t => minijinja::Value::from_serialize(locale.strings()),
        brand => minijinja::Value::from_serialize(ui.brand()),
    };
    let specific = match name {
        "login.html" => context! {
            action => "/login", client_name => "Client", interaction => "i",
            csrf_token => "t", username => "alice", error => "wrong",
        },
        "consent.html" => context! {
            action => "/consent", switch_action => "/switch-account", client_name => "Client",
            interaction => "i", csrf_token => "t", switch_csrf_token => "t",
            display_name => "Alice", scopes => vec!["see your accounts"],
            access_lasts => locale.access_lasts(86_400, true),
            policy_uri => "https://client.example/policy", tos_uri => "https://client.example/tos",
        },
        "error.html" => context! {
            message => Problem::InvalidRequest.words(locale), detail => "detail",
            back_url => "https://client.example/cb?error=access_denied", reference => "id",
        },
        "logout.html" => context! {
            action => "/logout", client_name => "Client", fields => vec![("state", "s")], csrf_token => "t",
        },
        _ => context! {},
    };
    context! { ..common, ..specific }
}

async fn back_link(s: &AppState, pending: &PendingAuthorization) -> Option<String> {
    let response = AuthorizationResponse::Error {
        target: pending.request.response_target(),
        error: ErrorCode::AccessDenied.as_str(),
        description: "the user returned to the application from an error page".into(),
    };
    match s.provider.authorization_redirect(&response, "").await {
        Ok(r) => Some(r.url),
        Err(e) => {
            tracing::warn!(error = %e, "no way back to the application");
            None
        }
    }
}

fn see_other(s: &AppState, pc: &PageCtx, location: &str) -> Response {
    // SP 5.3.2.2-10/-11 (AS-SP-52): 303, never 307
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => ErrorView::new(StatusCode::INTERNAL_SERVER_ERROR, Problem::ServerError)
            .detail("The redirect target is not a valid URL.")
            .render(s, pc),
    }
}

/// A refusal at the authorization endpoint: to the client's verified redirect URI when it may
/// go there, otherwise shown to the user (AS-SP-53), with a way back only when `pending` (the
/// pushed request, verified) is known.
async fn failure(s: &AppState, pc: &PageCtx, e: OAuthError, pending: Option<&PendingAuthorization>) -> Response {
    if let Some(response) = e.authorization_response() {
        tracing::info!(error = e.code.as_str(), description = %e.public_description(), "authorization refused (redirected)");
        return respond(s, pc, &response, None).await;
    }
    if e.status.is_server_error() {
        tracing::error!(error = %e, "authorization failed");
        return ErrorView::new(StatusCode::INTERNAL_SERVER_ERROR, Problem::ServerError).render(s, pc);
    }
    tracing::info!(error = e.code.as_str(), description = %e.public_description(), "authorization refused (page)");
    // issue 17 item 7: why a sign-in (interaction) cannot go on, in the user's words
    let problem = match InteractionEnd::of(&e) {
        Some(InteractionEnd::Unknown) => Problem::SignInUnknown,
        Some(InteractionEnd::OtherBrowser) => Problem::OtherBrowser,
        Some(InteractionEnd::AlreadyCompleted) => Problem::AlreadyCompleted,
        Some(InteractionEnd::TookTooLong) => Problem::TookTooLong,
        Some(InteractionEnd::CompletedElsewhere) => Problem::CompletedElsewhere,
        Some(InteractionEnd::TooManyBrowsers) => Problem::TooManyBrowsers,
        None if e.code == ErrorCode::LoginRequired => Problem::SignInAgain,
        None => Problem::InvalidRequest,
    };
    ErrorView::new(http_status(e.status), problem)
        .detail(e.public_description())
        .back_to(s, pending)
        .await
        .render(s, pc)
}

/// This browser's interaction (`id`, or the request_uri of an authorization `query`), in
/// whatever state, for an error page: its language, and a way back only to the redirect URI
/// verified at PAR (the interaction's copy of the pushed request). Another browser's is none.
async fn own_interaction(
    s: &AppState,
    id: Option<&str>,
    query: &[(String, String)],
    browser_key: Option<&str>,
) -> Option<PendingAuthorization> {
    match s.provider.own_interaction(id, query, browser_key).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "interaction lookup for an error page failed");
            None
        }
    }
}

/// Sends the browser to the client with an authorization response, in its response mode. A
/// signed (JARM) response of a request that succeeded (`interaction`: the browser request's
/// id) goes into the evidence log (issue 16 item 5); a refusal's does not.
async fn respond(
    s: &AppState,
    pc: &PageCtx,
    response: &AuthorizationResponse,
    interaction: Option<&InteractionId>,
) -> Response {
    let id = interaction.map_or("", |i| i.0.as_str());
    match s.provider.authorization_redirect(response, id).await {
        Ok(redirect) => {
            if let (Some(e), Some(_)) = (redirect.evidence, interaction) {
                s.audit.record(e).await;
            }
            see_other(s, pc, &redirect.url)
        }
        Err(e) => {
            tracing::error!(error = %e, "authorization response failed");
            ErrorView::new(StatusCode::INTERNAL_SERVER_ERROR, Problem::ServerError).render(s, pc)
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
    /// "Not you?" on the consent page (issue 17 item 8).
    SwitchAccount,
}

impl FormPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Consent => "consent",
            Self::Logout => "logout",
            Self::SwitchAccount => "switch-account",
        }
    }

    /// The form field carrying the token ("Not you?" shares the consent form, with its own).
    fn field(self) -> &'static str {
        match self {
            Self::SwitchAccount => "switch_csrf_token",
            _ => "csrf_token",
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

async fn browser(state: &AppState, pc: &PageCtx, headers: &HeaderMap) -> Result<Browser, Response> {
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
                ErrorView::new(StatusCode::INTERNAL_SERVER_ERROR, Problem::ServerError)
                    .detail("The server could not read your session.")
                    .render(state, pc)
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
    let mut pc = PageCtx::new(&headers, &interaction);
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
    let begun = match &resume {
        Some(id) => s
            .provider
            .resume_interaction(id, browser_key.as_deref())
            .await
            .map(|p| (p, None)),
        None => {
            // a browser without the cookie gets one; one with it has it renewed, so that it
            // outlives the newest interaction started with it
            let key = browser_key.clone().unwrap_or_else(credential);
            s.provider
                .begin_authorization(query.clone(), &key)
                .await
                .map(|p| (p, Some(key)))
        }
    };
    let (pending, set_key) = match begun {
        Ok(x) => x,
        Err(e) => {
            // an interaction of this browser that cannot go on (took too long, completed): its
            // language, and its way back
            let own = match InteractionEnd::of(&e) {
                Some(_) => own_interaction(&s, resume.as_deref(), &query, browser_key.as_deref()).await,
                None => None,
            };
            if let Some(p) = &own {
                pc.prefer(p);
            }
            return failure(&s, &pc, e, own.as_ref()).await;
        }
    };
    pc.prefer(&pending);
    let b = match browser(&s, &pc, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut res = match (s.provider.next_step(&pending, b.session.as_ref()), &b.session) {
        (NextStep::Respond(response), _) => return respond(&s, &pc, &response, Some(&interaction)).await,
        (NextStep::Consent, Some(session)) => match s.provider.store().get_user(&session.username).await {
            Ok(user) => consent_page(
                &s,
                &pc,
                &pending,
                &b.csrf_cookie,
                &display_name(&session.username, user.as_ref()),
            ),
            Err(e) => {
                tracing::error!(error = %e, "user lookup failed");
                return ErrorView::new(StatusCode::INTERNAL_SERVER_ERROR, Problem::ServerError).render(&s, &pc);
            }
        },
        _ => login_page(&s, &pc, &pending, &b.csrf_cookie, "", false, StatusCode::OK),
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

/// The name the consent page greets the user by: the `name` claim, else the username.
fn display_name(username: &str, user: Option<&User>) -> String {
    user.and_then(|u| u.claims.get("name"))
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.chars().count() <= 200)
        .unwrap_or(username)
        .to_owned()
}

#[allow(clippy::too_many_arguments)]
fn login_page(
    s: &AppState,
    pc: &PageCtx,
    pending: &PendingAuthorization,
    browser: &str,
    username: &str,
    wrong_password: bool,
    status: StatusCode,
) -> Response {
    let csrf = csrf_token(s, browser, FormPurpose::Login, &pending.interaction);
    let ctx = context! {
        action => s.login_action,
        client_name => pending.client_name,
        interaction => pending.interaction,
        csrf_token => csrf,
        username,
        error => wrong_password.then_some(pc.locale.strings().wrong_password),
    };
    page(s, pc, "login.html", ctx, status, None)
}

fn consent_page(
    s: &AppState,
    pc: &PageCtx,
    pending: &PendingAuthorization,
    browser: &str,
    display_name: &str,
) -> Response {
    // every form's token is bound to the interaction (issue 17 item 7), "Not you?" included
    let csrf = csrf_token(s, browser, FormPurpose::Consent, &pending.interaction);
    let switch_csrf = csrf_token(s, browser, FormPurpose::SwitchAccount, &pending.interaction);
    let settings = s.provider.settings();
    let language = pc.locale.tag();
    // issue 17 item 6: each scope in the operator's words, in the user's language
    let mut scopes: Vec<&str> = pending
        .request
        .scope
        .iter()
        .filter_map(|name| settings.scopes.iter().find(|d| d.name.as_str() == name.as_str()))
        .map(|d| d.words(language))
        .collect();
    if scopes.is_empty() {
        scopes.push(pc.locale.strings().scope_fallback);
    }
    // access lasts as long as the refresh token when one will be issued, else the access token
    let lasts = if pending.refresh_token {
        settings.refresh_token_lifetime
    } else {
        settings.access_token_lifetime
    };
    let ctx = context! {
        action => s.consent_action,
        switch_action => s.switch_account_action,
        client_name => pending.client_name,
        interaction => pending.interaction,
        csrf_token => csrf,
        switch_csrf_token => switch_csrf,
        display_name,
        scopes,
        access_lasts => pc.locale.access_lasts(lasts, pending.refresh_token),
        policy_uri => pending.policy_uri,
        tos_uri => pending.tos_uri,
    };
    // the consent form's response redirects to the client (SP 5.3.2.2-10): CSP form-action
    // names that redirect URI (issue 13 item 16)
    page(
        s,
        pc,
        "consent.html",
        ctx,
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

/// The checks common to the POSTs: form body, CSRF (bound to the browser, the form and the
/// interaction), and an interaction this browser started that is still going.
async fn posted(
    s: &AppState,
    pc: &mut PageCtx,
    headers: &HeaderMap,
    body: &Bytes,
    purpose: FormPurpose,
) -> Result<(PostedForm, PendingAuthorization, Browser), Response> {
    let fields = form(headers, body, s.provider.settings().max_form_params).map_err(|e| {
        ErrorView::new(StatusCode::BAD_REQUEST, Problem::BadForm)
            .detail(e.description)
            .render(s, pc)
    })?;
    let form = PostedForm { fields };
    let b = browser(s, pc, headers).await?;
    let csrf_ok = !b.new_cookie
        && csrf_valid(
            s,
            &b.csrf_cookie,
            purpose,
            form.get("interaction"),
            form.get(purpose.field()),
        );
    if !csrf_ok {
        // the way back and the language come from this browser's interaction, if it is one
        let key = cookie(headers, INTERACTION_COOKIE);
        let pending = own_interaction(s, Some(form.get("interaction")), &[], key.as_deref()).await;
        if let Some(p) = &pending {
            pc.prefer(p);
        }
        let (status, problem) = if b.new_cookie {
            (StatusCode::FORBIDDEN, Problem::CookiesNeeded)
        } else {
            (StatusCode::FORBIDDEN, Problem::FormExpired)
        };
        return Err(ErrorView::new(status, problem)
            .detail("CSRF check failed")
            .back_to(s, pending.as_ref())
            .await
            .render(s, pc));
    }
    let browser_key = cookie(headers, INTERACTION_COOKIE);
    let pending = match s
        .provider
        .resume_interaction(form.get("interaction"), browser_key.as_deref())
        .await
    {
        Ok(p) => p,
        Err(e) => {
            // an interaction of this browser that cannot go on (took too long, completed here or
            // elsewhere): its language, and its way back
            let own = match InteractionEnd::of(&e) {
                Some(_) => own_interaction(s, Some(form.get("interaction")), &[], browser_key.as_deref()).await,
                None => None,
            };
            if let Some(p) = &own {
                pc.prefer(p);
            }
            return Err(failure(s, pc, e, own.as_ref()).await);
        }
    };
    pc.prefer(&pending);
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
    interaction: InteractionId,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut pc = PageCtx::new(&headers, &interaction);
    let (form, pending, b) = match posted(&s, &mut pc, &headers, &body, FormPurpose::Login).await {
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
        return too_many_attempts(&s, &pc, &pending).await;
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
                return ErrorView::new(StatusCode::INTERNAL_SERVER_ERROR, Problem::ServerError)
                    .detail("The server could not check your password.")
                    .render(&s, &pc);
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
            return busy(&s, &pc, &pending).await;
        }
        _ => {
            attempt.failed();
            // issue 13 item 13: never the username as typed (it may be a password, or huge)
            tracing::info!(user = %s.login_failures.tag(username), "login failed");
            audit_events::record("login", "failure", Some(&pending.request.client_id), None);
            let shown = if username.chars().count() > 256 { "" } else { username };
            return login_page(&s, &pc, &pending, &b.csrf_cookie, shown, true, StatusCode::UNAUTHORIZED);
        }
    };
    attempt.succeeded();
    let now = s.provider.now();
    // issue 13 item 15: a login starts a new session and ends the one the browser had
    if let Some(old) = &b.session_hash
        && let Err(e) = s.provider.store().delete_session(old).await
    {
        tracing::error!(error = %e, "session delete failed");
        return ErrorView::new(StatusCode::INTERNAL_SERVER_ERROR, Problem::ServerError)
            .detail("The server could not end your previous session.")
            .render(&s, &pc);
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
        return ErrorView::new(StatusCode::INTERNAL_SERVER_ERROR, Problem::ServerError)
            .detail("The server could not start your session.")
            .render(&s, &pc);
    }
    audit_events::record("login", "success", Some(&pending.request.client_id), Some(&user.sub));
    let mut res = see_other(&s, &pc, &authorize_again(&s, &pending));
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
async fn busy(s: &AppState, pc: &PageCtx, pending: &PendingAuthorization) -> Response {
    let mut res = ErrorView::new(StatusCode::SERVICE_UNAVAILABLE, Problem::Busy)
        .back_to(s, Some(pending))
        .await
        .render(s, pc);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}

/// 429: this account, address or request has failed too often to queue another attempt.
async fn too_many_attempts(s: &AppState, pc: &PageCtx, pending: &PendingAuthorization) -> Response {
    let mut res = ErrorView::new(StatusCode::TOO_MANY_REQUESTS, Problem::TooManyAttempts)
        .back_to(s, Some(pending))
        .await
        .render(s, pc);
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
    let mut pc = PageCtx::new(&headers, &interaction);
    let (form, pending, b) = match posted(&s, &mut pc, &headers, &body, FormPurpose::Consent).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(session) = b.session else {
        return see_other(&s, &pc, &authorize_again(&s, &pending));
    };
    // issue 13 item 6: prompt=login and max_age are decided again when consent is given, not
    // only when the page was shown (OIDC Core §3.1.2.1)
    match s.provider.next_step(&pending, Some(&session)) {
        NextStep::Consent => {}
        NextStep::Login => return see_other(&s, &pc, &authorize_again(&s, &pending)),
        NextStep::Respond(response) => return respond(&s, &pc, &response, Some(&interaction)).await,
    }
    let decision = match form.get("decision") {
        "allow" => {
            let user = match s.provider.store().get_user(&session.username).await {
                Ok(Some(u)) => u,
                Ok(None) => {
                    return ErrorView::new(StatusCode::FORBIDDEN, Problem::AccountGone)
                        .back_to(&s, Some(&pending))
                        .await
                        .render(&s, &pc);
                }
                Err(e) => {
                    tracing::error!(error = %e, "user lookup failed");
                    return ErrorView::new(StatusCode::INTERNAL_SERVER_ERROR, Problem::ServerError)
                        .detail("The server could not read your account.")
                        .render(&s, &pc);
                }
            };
            Decision::Allow {
                sub: user.sub,
                auth_time: session.auth_time,
                login_request: session.login_request.clone(),
            }
        }
        "deny" => Decision::Deny,
        _ => {
            return ErrorView::new(StatusCode::BAD_REQUEST, Problem::NoDecision)
                .back_to(&s, Some(&pending))
                .await
                .render(&s, &pc);
        }
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
            respond(&s, &pc, &response, Some(&interaction)).await
        }
        Err(e) => {
            audit_events::record("consent", "failure", Some(client_id), sub.as_deref());
            failure(&s, &pc, e, Some(&pending)).await
        }
    }
}

/// POST of "Not you?" on the consent page (issue 17 item 8; a button of the consent form with
/// its own `formaction`): ends the browser's session and returns to the login page of the same
/// interaction (issue 17 item 7). CSRF-checked like the consent form, with a token of its own
/// (`switch_csrf_token`, bound to the interaction too).
pub async fn switch_account(
    State(s): State<Arc<AppState>>,
    interaction: InteractionId,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut pc = PageCtx::new(&headers, &interaction);
    let (_, pending, b) = match posted(&s, &mut pc, &headers, &body, FormPurpose::SwitchAccount).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Some(old) = &b.session_hash
        && let Err(e) = s.provider.store().delete_session(old).await
    {
        tracing::error!(error = %e, "session delete failed");
        return ErrorView::new(StatusCode::INTERNAL_SERVER_ERROR, Problem::ServerError)
            .detail("The server could not end your session.")
            .render(&s, &pc);
    }
    tracing::info!(client_id = %pending.request.client_id, "session ended from the consent page (not you?)");
    let mut res = see_other(&s, &pc, &authorize_again(&s, &pending));
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    res
}

/// GET and POST of the end-session endpoint (OpenID Connect RP-Initiated Logout 1.0): GET asks
/// the user to confirm; the confirmed POST (CSRF-checked) ends the session and, when the client
/// registered it, redirects to its `post_logout_redirect_uri` (issue 13 item 15).
pub async fn logout(
    State(s): State<Arc<AppState>>,
    interaction: InteractionId,
    method: axum::http::Method,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pc = PageCtx::new(&headers, &interaction);
    let max = s.provider.settings().max_form_params;
    let confirmed = method == axum::http::Method::POST;
    let params = if confirmed {
        match form(&headers, &body, max) {
            Ok(p) => p,
            Err(e) => {
                return ErrorView::new(StatusCode::BAD_REQUEST, Problem::BadForm)
                    .detail(e.description)
                    .render(&s, &pc);
            }
        }
    } else {
        let p = query_pairs(q.as_deref());
        if p.len() > max {
            return ErrorView::new(StatusCode::BAD_REQUEST, Problem::InvalidLogout)
                .detail("The logout request has too many parameters.")
                .render(&s, &pc);
        }
        p
    };
    let b = match browser(&s, &pc, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request = match s.provider.logout_request(&params, b.session.as_ref()).await {
        Ok(r) => r,
        Err(message) => {
            return ErrorView::new(StatusCode::BAD_REQUEST, Problem::InvalidLogout)
                .detail(message)
                .render(&s, &pc);
        }
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
        return signed_out(&s, &pc, request.redirect.as_deref());
    }
    if !confirmed {
        let csrf = csrf_token(&s, &b.csrf_cookie, FormPurpose::Logout, &bound);
        let ctx = context! {
            action => s.logout_action,
            client_name => request.client_name,
            fields,
            csrf_token => csrf,
        };
        let mut res = page(&s, &pc, "logout.html", ctx, StatusCode::OK, request.redirect.as_deref());
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
        return ErrorView::new(StatusCode::FORBIDDEN, Problem::FormExpired)
            .detail("CSRF check failed")
            .render(&s, &pc);
    }
    if let Some(old) = &b.session_hash
        && let Err(e) = s.provider.store().delete_session(old).await
    {
        tracing::error!(error = %e, "session delete failed");
        return ErrorView::new(StatusCode::INTERNAL_SERVER_ERROR, Problem::ServerError)
            .detail("The server could not end your session.")
            .render(&s, &pc);
    }
    let mut res = signed_out(&s, &pc, request.redirect.as_deref());
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    res
}

fn signed_out(s: &AppState, pc: &PageCtx, redirect: Option<&str>) -> Response {
    match redirect {
        Some(url) => see_other(s, pc, url),
        None => page(s, pc, "signed-out.html", context! {}, StatusCode::OK, None),
    }
}

/// The operator's logo (`branding.logo_file`), served from this origin so that the pages'
/// CSP needs only `img-src 'self'`; an SVG cannot run anything (sandboxed, no scripts).
pub async fn logo(State(s): State<Arc<AppState>>) -> Response {
    let Some(logo) = s.ui.logo() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut res = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, logo.content_type)],
        logo.bytes.clone(),
    )
        .into_response();
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    res
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
