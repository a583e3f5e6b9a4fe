//! The authorization endpoint (SP 5.3.2.2, RFC 9126 §4): only `client_id` + `request_uri` from a
//! PAR count; the response goes by redirect with `code`, `state` and `iss` (RFC 9207).
//!
//! A browser's first visit with an unexpired, unconsumed request_uri starts an [`Interaction`]
//! bound to that browser (issue 17 item 7) without consuming the request_uri: a link
//! pre-fetcher or a first visit without login burns nothing (FAPI 2.0 SP 5.3.2.2 Note 3,
//! AS-SP-44). Login and consent then run on the interaction's clock
//! (`Settings::interaction_lifetime`), not the request_uri's. Only the same browser continues
//! an interaction (its interaction cookie, whose hash the interaction holds); another browser
//! with the same URL starts its own (a few at most per request_uri). Completing an interaction
//! consumes the request_uri in the same store step, so of all the browsers one gives the
//! authorization response, once; after that the request_uri gets `invalid_request_uri`.

use std::sync::Arc;

use crate::audit::{Direction, Evidence, EvidenceKind};
use crate::checks::{self, Check, CheckFuture, Run};
use crate::error::{ErrorCode, OAuthError, OAuthResult, Status};
use crate::model::{
    AuthorizationCode, AuthorizationRequest, Grant, Interaction, InteractionStart, PushedRequest, Session,
};
use crate::provider::{ParsedClient, Provider};
use crate::random::{credential, hash, secure_eq};
use crate::response::{AuthorizationResponse, ResponseMode, ResponseTarget};
use crate::settings::MAX_LIVE_INTERACTIONS_PER_REQUEST;
use crate::types::{ClientId, RequestUri};

/// How long a JARM response is valid (AS-MS-11: 10 minutes at most).
const JARM_LIFETIME: i64 = 300;

/// A valid pushed request, waiting for login and consent in its interaction.
#[derive(Debug, Clone)]
pub struct PendingAuthorization {
    /// The interaction's id: what the pages' forms and URLs carry (issue 17 item 7).
    pub interaction: String,
    pub request_uri_hash: String,
    pub request: AuthorizationRequest,
    /// The client's registered `client_name`, if it gave one. Pages show a neutral phrase
    /// without it, never the client_id (issue 17 item 9: an id is no name a person can judge).
    pub client_name: Option<String>,
    /// When the request was pushed (for `prompt=login`).
    pub pushed_at: i64,
    /// The client's registered `policy_uri` and `tos_uri` (RFC 7591 §2; https, checked at
    /// registration and again here), shown on the consent page.
    pub policy_uri: Option<String>,
    pub tos_uri: Option<String>,
    /// Whether a refresh token will be issued with the code (the client has the refresh_token
    /// grant): the consent page then says access lasts as long as that token.
    pub refresh_token: bool,
}

/// Where the browser goes with an authorization response, and, for a signed (JARM) one, the
/// evidence of what was sent.
#[derive(Debug, Clone)]
pub struct AuthorizationRedirect {
    pub url: String,
    pub evidence: Option<Evidence>,
}

/// What the authorization endpoint does next for a pending request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Ask the user to log in.
    Login,
    /// Ask for consent (asked on every authorization).
    Consent,
    /// End with an authorization response (e.g. `login_required` for `prompt=none`).
    Respond(AuthorizationResponse),
}

/// What the user decided on the consent page.
#[derive(Debug, Clone)]
pub enum Decision {
    /// The user allowed it, signed in at `auth_time` for `login_request` (a request_uri hash).
    Allow {
        sub: String,
        auth_time: i64,
        login_request: Option<String>,
    },
    Deny,
}

/// A registered URL for a page link: an absolute https URL (as registration requires; a
/// client stored before that rule shows no link).
fn https_metadata(metadata: &crate::model::ClientMetadata, field: &str) -> Option<String> {
    let v = metadata.extra.get(field)?.as_str()?;
    let u = url::Url::parse(v).ok()?;
    (u.scheme() == "https" && u.host().is_some() && u.username().is_empty() && v.len() <= 2048).then(|| v.to_owned())
}

/// What the authorization endpoint's checks work on and fill in.
pub struct AuthorizeContext {
    query: Vec<(String, String)>,
    /// SHA-256 of the browser's interaction cookie.
    browser_hash: String,
    client: Option<Arc<ParsedClient>>,
    request_uri: Option<RequestUri>,
    pushed: Option<PushedRequest>,
    interaction: Option<Interaction>,
}

impl AuthorizeContext {
    /// A query parameter; an empty value counts as absent. Extra parameters are ignored
    /// (AS-SP-49): only the pushed ones count.
    fn get(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn pushed(&self) -> OAuthResult<&PushedRequest> {
        self.pushed
            .as_ref()
            .ok_or_else(|| OAuthError::server_error("authorize check table: no pushed request"))
    }
}

/// The checks of `GET /authorize`, in order.
pub const AUTHORIZE_CHECKS: &[Check<AuthorizeContext>] = &[
    Check {
        name: "`client_id`",
        rule: "present and a registered client (else an error page)",
        source: "RFC 6749 §4.1.2.1; RFC 9126 §4",
        run: Run::Async(known_client),
    },
    Check {
        name: "`request_uri`",
        rule: "present: PAR is required (an error goes back only to a registered redirect_uri)",
        source: "AS-SP-47; SP 5.3.2.2-3",
        run: Run::Sync(par_required),
    },
    Check {
        name: "pushed request",
        rule: "a request_uri this server issued and still holds (else an error page)",
        source: "RFC 9126 §2.2, §4",
        run: Run::Async(pushed_request),
    },
    Check {
        name: "same client",
        rule: "the request_uri was pushed by this client_id (else an error page)",
        source: "AS-SP-42; RFC 9126 §2.2",
        run: Run::Sync(same_client),
    },
    Check {
        name: "unused",
        rule: "not consumed: no sign-in on it has completed, in any browser (redirected \
               `invalid_request_uri`)",
        source: "AS-SP-43; RFC 9126 §4, §7.3",
        run: Run::Sync(unused),
    },
    Check {
        name: "this browser's interaction",
        rule: "a request_uri this browser has opened before continues its interaction, also past the \
               request_uri's lifetime (an error page once the interaction has expired)",
        source: "issue 17 item 7; RFC 9126 §7.3 (reload)",
        run: Run::Async(own_interaction),
    },
    Check {
        name: "unexpired",
        rule: "otherwise within its lifetime (redirected `invalid_request_uri`)",
        source: "AS-SP-40, AS-SP-43; RFC 9126 §2.2",
        run: Run::Sync(unexpired),
    },
    Check {
        name: "interaction",
        rule: "starts an interaction bound to this browser without consuming the request_uri; at most \
               5 live ones per request_uri (else an error page); the request_uri is consumed when one \
               of them completes (redirected `invalid_request_uri` if it was consumed meanwhile)",
        source: "AS-SP-44; SP 5.3.2.2 Note 3; RFC 9126 §4; issue 17 item 7",
        run: Run::Async(start_interaction),
    },
];

impl Provider {
    /// Resolves an authorization request (front channel) by running [`AUTHORIZE_CHECKS`]: the
    /// first visit starts an interaction bound to the browser whose interaction cookie is
    /// `browser_key` (the caller makes one for a browser without it, and sets it), leaving the
    /// request_uri unconsumed (AS-SP-44); a later visit from that browser continues the
    /// interaction. Nothing is stored for a request that fails a check.
    pub async fn begin_authorization(
        &self,
        query: Vec<(String, String)>,
        browser_key: &str,
    ) -> OAuthResult<PendingAuthorization> {
        let mut ctx = AuthorizeContext {
            query,
            browser_hash: hash(browser_key),
            client: None,
            request_uri: None,
            pushed: None,
            interaction: None,
        };
        checks::run(self, AUTHORIZE_CHECKS, &mut ctx).await?;
        let (Some(client), Some(interaction)) = (ctx.client, ctx.interaction) else {
            return Err(OAuthError::server_error("authorize check table: incomplete"));
        };
        Ok(pending(interaction, &client))
    }

    /// Continues the interaction `id` for the browser whose interaction cookie is
    /// `browser_key` (the login and consent forms, and the page after a login). Refusals are
    /// pages in plain words, never redirects: the interaction may have been started by another
    /// browser, have given its response already, have run out of time, or have lost its
    /// request_uri to a sign-in completed in another browser.
    pub async fn resume_interaction(&self, id: &str, browser_key: Option<&str>) -> OAuthResult<PendingAuthorization> {
        let unknown = unknown_interaction;
        if id.is_empty() || id.len() > 128 {
            return Err(unknown());
        }
        let interaction = self.store.get_interaction(id).await?.ok_or_else(unknown)?;
        let same_browser =
            browser_key.is_some_and(|k| secure_eq(hash(k).as_bytes(), interaction.browser_hash.as_bytes()));
        if !same_browser {
            return Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                Status::Forbidden,
                OTHER_BROWSER,
            ));
        }
        if interaction.completed {
            return Err(already_completed());
        }
        if interaction.expires_at <= self.now() {
            return Err(took_too_long());
        }
        let still_open = self
            .store
            .get_pushed_request(&interaction.request_uri_hash)
            .await?
            .is_some_and(|p| !p.consumed);
        if !still_open {
            return Err(completed_elsewhere());
        }
        let client = self.client(&interaction.request.client_id).await?.ok_or_else(|| {
            page(
                ErrorCode::InvalidRequest,
                "The authorization request names an unknown client.",
            )
        })?;
        Ok(pending(interaction, &client))
    }

    /// For an error page (its language, and its way back to the application): the interaction
    /// this browser (`browser_key`, its interaction cookie) started, named by its `id` or, for
    /// an authorization request's `query`, by the request_uri and client_id, in whatever state
    /// (completed, expired, its request_uri consumed). Its request is the copy taken when the
    /// request_uri was opened, so its redirect URI is the one verified at PAR (AS-SP-53);
    /// another browser's interaction, or an unknown one, is `None`.
    pub async fn own_interaction(
        &self,
        id: Option<&str>,
        query: &[(String, String)],
        browser_key: Option<&str>,
    ) -> OAuthResult<Option<PendingAuthorization>> {
        let Some(browser_hash) = browser_key.map(hash) else {
            return Ok(None);
        };
        let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let interaction = match id.filter(|i| !i.is_empty() && i.len() <= 128) {
            Some(id) => self.store.get_interaction(id).await?,
            None => {
                let Some(uri) = param("request_uri").and_then(RequestUri::parse) else {
                    return Ok(None);
                };
                self.store
                    .get_browser_interaction(&uri.hash(), &browser_hash)
                    .await?
                    .filter(|i| param("client_id") == Some(i.request.client_id.as_str()))
            }
        };
        let Some(interaction) = interaction else {
            return Ok(None);
        };
        if !secure_eq(browser_hash.as_bytes(), interaction.browser_hash.as_bytes()) {
            return Ok(None);
        }
        let Some(client) = self.client(&interaction.request.client_id).await? else {
            return Ok(None);
        };
        Ok(Some(pending(interaction, &client)))
    }

    /// Ends an authorization: completes the interaction and consumes its request_uri in one
    /// store step (one response per request_uri, whichever browser gets there first; AS-SP-43/44)
    /// and answers with a code, or with `access_denied` (RFC 6749 §4.1.2.1, AS-SP-55). A second
    /// completion, one after the interaction expired, or one after another browser's completed
    /// is a page.
    pub async fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        decision: Decision,
    ) -> OAuthResult<AuthorizationResponse> {
        let req = &pending.request;
        let target = req.response_target();
        let now = self.now();
        // issue 13 item 6: the login behind an Allow must still satisfy prompt=login and
        // max_age now, whatever page was shown before (checked before the interaction ends)
        if let Decision::Allow {
            auth_time,
            login_request,
            ..
        } = &decision
            && !self.login_is_fresh(pending, *auth_time, login_request.as_deref())
        {
            return Err(OAuthError::new(
                ErrorCode::LoginRequired,
                Status::Forbidden,
                "This request needs a newer sign-in. Start again from the application.",
            ));
        }
        if !self.store.complete_interaction(&pending.interaction, now).await? {
            // states only move forward (completed, consumed, expired): read why it lost
            return Err(match self.store.get_interaction(&pending.interaction).await? {
                Some(i) if i.completed => already_completed(),
                Some(i) if i.expires_at <= now => took_too_long(),
                Some(_) => completed_elsewhere(),
                None => unknown_interaction(),
            });
        }
        let (sub, auth_time) = match decision {
            Decision::Deny => {
                return Ok(AuthorizationResponse::Error {
                    target,
                    error: ErrorCode::AccessDenied.as_str(),
                    description: "the user denied the request".into(),
                });
            }
            Decision::Allow { sub, auth_time, .. } => (sub, auth_time),
        };
        let code = credential();
        let record = AuthorizationCode {
            code_hash: hash(&code),
            grant: Grant {
                grant_id: credential(),
                client_id: req.client_id.clone(),
                sub,
                scope: req.scope.clone(),
                auth_time,
                created_at: now,
                resources: req.resources.clone(),
            },
            redirect_uri: req.redirect_uri.clone(),
            code_challenge: req.code_challenge.clone(),
            dpop_jkt: req.dpop_jkt.clone(),
            nonce: req.nonce.clone(),
            expires_at: now + self.settings.code_lifetime,
        };
        self.store.insert_code(&record).await?;
        Ok(AuthorizationResponse::Code { target, code })
    }

    /// The redirect for `response`, in its response mode: the query, or a JARM `response`
    /// JWT (AS-MS-11..13) signed with the client's `authorization_signed_response_alg` (a FAPI
    /// algorithm; ES256 by default), `kid` in the header, valid for 5 minutes. A signed
    /// response comes with its evidence (issue 16 item 5), filed under the interaction that
    /// pushed the request, else under `interaction_id` (the browser request's).
    pub async fn authorization_redirect(
        &self,
        response: &AuthorizationResponse,
        interaction_id: &str,
    ) -> OAuthResult<AuthorizationRedirect> {
        if !response.is_signed() {
            return Ok(AuthorizationRedirect {
                url: response.redirect_url(&self.settings.issuer),
                evidence: None,
            });
        }
        let alg = self
            .client(&response.target().client_id)
            .await?
            .and_then(|c| c.client.metadata.authorization_signed_response_alg())
            .unwrap_or(portcullis_jose::Algorithm::Es256);
        let keys = self.keys();
        let key = keys
            .active(alg, self.now())
            .ok_or_else(|| OAuthError::server_error(format!("no active signing key for {alg}")))?;
        let claims = response.jwt_claims(&self.settings.issuer, self.now() + JARM_LIFETIME);
        let jwt = key
            .sign_jwt(alg, None, &claims)
            .map_err(|e| OAuthError::server_error(format!("JARM signing failed: {e}")))?;
        let target = response.target();
        let interaction = if target.interaction_id.is_empty() {
            interaction_id
        } else {
            &target.interaction_id
        };
        let evidence = Evidence::jws(
            EvidenceKind::AuthorizationResponse,
            Direction::Sent,
            interaction,
            &target.client_id,
            self.now(),
            key.public_jwk(),
            &jwt,
        );
        Ok(AuthorizationRedirect {
            url: response.signed_redirect_url(&jwt),
            evidence: Some(evidence),
        })
    }

    /// OIDC Core §3.1.2.1: a login is good enough unless `prompt=login` asks for one newer than
    /// the request, or `max_age` has passed; §3.1.2.6: `prompt=none` shows no page at all, and
    /// since consent is asked every time it ends in `login_required` or `consent_required`.
    pub fn next_step(&self, pending: &PendingAuthorization, login: Option<&Session>) -> NextStep {
        let req = &pending.request;
        let login = login.filter(|s| self.login_is_fresh(pending, s.auth_time, s.login_request.as_deref()));
        if req.prompt.iter().any(|p| p == "none") {
            let (error, description) = match login {
                Some(_) => (
                    ErrorCode::ConsentRequired,
                    "the user must consent, which prompt=none does not allow",
                ),
                None => (ErrorCode::LoginRequired, "the user is not signed in"),
            };
            return NextStep::Respond(AuthorizationResponse::Error {
                target: req.response_target(),
                error: error.as_str(),
                description: description.into(),
            });
        }
        match login {
            Some(_) => NextStep::Consent,
            None => NextStep::Login,
        }
    }

    /// OIDC Core §3.1.2.1: `prompt=login` wants a login made for this very request (the login
    /// form belongs to the request's interaction, and the session remembers the request); `max_age` wants a login
    /// within that many seconds, or one made for this request (so `max_age=0` can complete).
    pub fn login_is_fresh(&self, pending: &PendingAuthorization, auth_time: i64, login_request: Option<&str>) -> bool {
        let req = &pending.request;
        let during_request = login_request == Some(pending.request_uri_hash.as_str());
        // max_age=0 asks for a new login just as prompt=login does (whole seconds cannot tell
        // a login for another request apart from one made now)
        let login_asked = req.prompt.iter().any(|p| p == "login") || req.max_age == Some(0);
        during_request || (!login_asked && req.max_age.is_none_or(|max| self.now() - auth_time <= max))
    }
}

/// A page error (the redirect target is not known or not verified yet, AS-SP-53).
fn page(code: ErrorCode, d: &'static str) -> OAuthError {
    OAuthError::new(code, Status::BadRequest, d)
}

/// Why an interaction cannot go on (issue 17 item 7): the pages say it in the user's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InteractionEnd {
    /// The interaction is unknown (or purged).
    Unknown,
    /// Another browser started it (403).
    OtherBrowser,
    /// It has given its one response already (400).
    AlreadyCompleted,
    /// It ran out of time (410).
    TookTooLong,
    /// Another browser's sign-in on the same request_uri completed first (409).
    CompletedElsewhere,
    /// Too many browsers have a live sign-in on the request_uri (409).
    TooManyBrowsers,
}

const UNKNOWN_INTERACTION: &str = "This sign-in is unknown or has ended. Go back to the application and start again.";
const OTHER_BROWSER: &str = "This sign-in was started in another browser. Go back to the application and start again.";
const ALREADY_COMPLETED: &str = "This sign-in has already been completed. Go back to the application.";
const TOOK_TOO_LONG: &str = "This sign-in took too long. Go back to the application and start again.";
const COMPLETED_ELSEWHERE: &str =
    "This sign-in was already completed elsewhere. Go back to the application and start again.";
const TOO_MANY_BROWSERS: &str =
    "This sign-in link has been opened in too many browsers. Go back to the application and start again.";

impl InteractionEnd {
    /// The interaction refusal `e` is, if it is one.
    pub fn of(e: &OAuthError) -> Option<Self> {
        if e.redirect.is_some() {
            return None;
        }
        Some(match e.description.as_ref() {
            UNKNOWN_INTERACTION => Self::Unknown,
            OTHER_BROWSER => Self::OtherBrowser,
            ALREADY_COMPLETED => Self::AlreadyCompleted,
            TOOK_TOO_LONG => Self::TookTooLong,
            COMPLETED_ELSEWHERE => Self::CompletedElsewhere,
            TOO_MANY_BROWSERS => Self::TooManyBrowsers,
            _ => return None,
        })
    }
}

fn unknown_interaction() -> OAuthError {
    page(ErrorCode::InvalidRequest, UNKNOWN_INTERACTION)
}

/// Issue 17 item 7: the interaction ran out of time. A page, never a redirect with a code.
fn took_too_long() -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequest, Status::Gone, TOOK_TOO_LONG)
}

/// Issue 17 item 7: the interaction has given its one response (a replayed form, a second tab).
fn already_completed() -> OAuthError {
    page(ErrorCode::InvalidRequest, ALREADY_COMPLETED)
}

/// Issue 17 item 7: another browser's sign-in on the same request_uri completed first (its
/// completion consumed the request_uri). A page, never a code.
fn completed_elsewhere() -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequest, Status::Conflict, COMPLETED_ELSEWHERE)
}

/// Issue 17 item 7: too many browsers have a live sign-in on this request_uri.
fn too_many_interactions() -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequestUri, Status::Conflict, TOO_MANY_BROWSERS)
}

/// What the pages work on: the interaction's copy of the pushed request (its redirect URI as
/// verified at PAR) and what the client registered for the consent page.
fn pending(interaction: Interaction, client: &ParsedClient) -> PendingAuthorization {
    let metadata = &client.client.metadata;
    PendingAuthorization {
        interaction: interaction.id,
        request_uri_hash: interaction.request_uri_hash,
        request: interaction.request,
        client_name: metadata.client_name.clone(),
        pushed_at: interaction.pushed_at,
        policy_uri: https_metadata(metadata, "policy_uri"),
        tos_uri: https_metadata(metadata, "tos_uri"),
        refresh_token: metadata.allows_grant("refresh_token"),
    }
}

/// The client named by `client_id`.
fn known_client<'a>(p: &'a Provider, c: &'a mut AuthorizeContext) -> CheckFuture<'a> {
    Box::pin(async move {
        let Some(client_id) = c.get("client_id") else {
            return Err(page(
                ErrorCode::InvalidRequest,
                "The authorization request has no client_id.",
            ));
        };
        let unknown = || {
            page(
                ErrorCode::InvalidRequest,
                "The authorization request names an unknown client.",
            )
        };
        let client_id = ClientId::parse(client_id).map_err(|_| unknown())?;
        let client = p.client(client_id.as_str()).await?.ok_or_else(unknown)?;
        c.client = Some(client);
        Ok(())
    })
}

/// SP 5.3.2.2-3 (AS-SP-47): PAR is required. The error is redirected only to a registered URI.
fn par_required(_: &Provider, c: &mut AuthorizeContext) -> OAuthResult<()> {
    if let Some(uri) = c.get("request_uri") {
        c.request_uri = Some(RequestUri::parse(uri).ok_or_else(|| {
            page(
                ErrorCode::InvalidRequestUri,
                "The request_uri was not issued by this server.",
            )
        })?);
        return Ok(());
    }
    let registered = c
        .client
        .as_ref()
        .map(|cl| cl.client.metadata.redirect_uris.clone())
        .unwrap_or_default();
    let e = OAuthError::invalid_request(
        "pushed authorization requests (PAR) are required: send only client_id and request_uri",
    );
    Err(match c.get("redirect_uri") {
        Some(r) if registered.iter().any(|x| x == r) => e.redirected_to(&ResponseTarget {
            client_id: c.get("client_id").unwrap_or_default().to_owned(),
            redirect_uri: r.to_owned(),
            state: c.get("state").map(str::to_owned),
            mode: ResponseMode::Query,
            interaction_id: String::new(),
        }),
        _ => page(
            ErrorCode::InvalidRequest,
            "Pushed authorization requests (PAR) are required by this server.",
        ),
    })
}

/// RFC 9126 §2.2: the pushed request behind the request_uri.
fn pushed_request<'a>(p: &'a Provider, c: &'a mut AuthorizeContext) -> CheckFuture<'a> {
    Box::pin(async move {
        let hash = c
            .request_uri
            .as_ref()
            .ok_or_else(|| OAuthError::server_error("authorize check table: no request_uri"))?
            .hash();
        let pushed = p.store.get_pushed_request(&hash).await?.ok_or_else(|| {
            page(
                ErrorCode::InvalidRequestUri,
                "The request_uri is unknown or has expired.",
            )
        })?;
        c.pushed = Some(pushed);
        Ok(())
    })
}

/// RFC 9126 §2.2 (AS-SP-42): bound to the client that pushed it.
fn same_client(_: &Provider, c: &mut AuthorizeContext) -> OAuthResult<()> {
    if Some(c.pushed()?.request.client_id.as_str()) != c.get("client_id") {
        return Err(page(
            ErrorCode::InvalidRequestUri,
            "The request_uri was pushed by a different client.",
        ));
    }
    Ok(())
}

/// RFC 9126 §4, §7.3 (AS-SP-43): a consumed request_uri (a sign-in on it has completed, in
/// this browser or another) is refused, whoever asks.
fn unused(_: &Provider, c: &mut AuthorizeContext) -> OAuthResult<()> {
    let pushed = c.pushed()?;
    if pushed.consumed {
        return Err(OAuthError::invalid_request_uri("the request_uri has already been used")
            .redirected_to(&pushed.request.response_target()));
    }
    Ok(())
}

/// Issue 17 item 7, RFC 9126 §7.3 (a reload): a browser that opened the request_uri before
/// continues its interaction, however old the request_uri; once the interaction has expired it
/// is told so.
fn own_interaction<'a>(p: &'a Provider, c: &'a mut AuthorizeContext) -> CheckFuture<'a> {
    Box::pin(async move {
        let hash = c.pushed()?.request_uri_hash.clone();
        let Some(interaction) = p.store.get_browser_interaction(&hash, &c.browser_hash).await? else {
            return Ok(());
        };
        c.interaction = Some(live(p, interaction)?);
        Ok(())
    })
}

/// An interaction this browser may continue: not completed (the request_uri would be consumed,
/// but a read may lag a completion), not expired.
fn live(p: &Provider, interaction: Interaction) -> OAuthResult<Interaction> {
    if interaction.completed {
        return Err(already_completed());
    }
    if interaction.expires_at <= p.now() {
        return Err(took_too_long());
    }
    Ok(interaction)
}

/// RFC 9126 §2.2 (AS-SP-40/43): an expired request_uri is refused (unless this browser's
/// interaction on it goes on).
fn unexpired(p: &Provider, c: &mut AuthorizeContext) -> OAuthResult<()> {
    if c.interaction.is_some() {
        return Ok(());
    }
    let pushed = c.pushed()?;
    if pushed.expires_at <= p.now() {
        return Err(OAuthError::invalid_request_uri("the request_uri has expired")
            .redirected_to(&pushed.request.response_target()));
    }
    Ok(())
}

/// Issue 17 item 7; AS-SP-44 (SP 5.3.2.2 Note 3): the first visit from a browser starts its
/// interaction and leaves the request_uri unconsumed (completion consumes it). The store checks
/// again, in one atomic step, that the request_uri is still open, that this browser has none
/// yet (a concurrent first visit: that one continues) and that the request_uri has room.
fn start_interaction<'a>(p: &'a Provider, c: &'a mut AuthorizeContext) -> CheckFuture<'a> {
    Box::pin(async move {
        if c.interaction.is_some() {
            return Ok(());
        }
        let pushed = c.pushed()?;
        let now = p.now();
        let interaction = Interaction {
            id: credential(),
            browser_hash: c.browser_hash.clone(),
            request_uri_hash: pushed.request_uri_hash.clone(),
            request: pushed.request.clone(),
            pushed_at: pushed.expires_at - p.settings.request_uri_lifetime,
            expires_at: now + p.settings.interaction_lifetime,
            completed: false,
        };
        let started = match p
            .store
            .start_interaction(&interaction, now, MAX_LIVE_INTERACTIONS_PER_REQUEST)
            .await?
        {
            InteractionStart::Started => interaction,
            InteractionStart::Existing(existing) => live(p, *existing)?,
            InteractionStart::TooMany => return Err(too_many_interactions()),
            InteractionStart::Unavailable => {
                return Err(
                    OAuthError::invalid_request_uri("the request_uri has already been used or has expired")
                        .redirected_to(&pushed.request.response_target()),
                );
            }
        };
        c.interaction = Some(started);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pages tell the interaction's ends apart (issue 17 item 7), and nothing else is one.
    #[test]
    fn interaction_ends_are_recognised() {
        let forbidden = OAuthError::new(ErrorCode::InvalidRequest, Status::Forbidden, OTHER_BROWSER);
        let cases = [
            (unknown_interaction(), InteractionEnd::Unknown, 400),
            (forbidden, InteractionEnd::OtherBrowser, 403),
            (already_completed(), InteractionEnd::AlreadyCompleted, 400),
            (took_too_long(), InteractionEnd::TookTooLong, 410),
            (completed_elsewhere(), InteractionEnd::CompletedElsewhere, 409),
            (too_many_interactions(), InteractionEnd::TooManyBrowsers, 409),
        ];
        for (e, end, status) in cases {
            assert_eq!(InteractionEnd::of(&e), Some(end), "{e}");
            assert_eq!(e.status.code(), status, "{e}");
            assert!(e.redirect.is_none(), "a page, never a redirect: {e}");
        }
        assert_eq!(InteractionEnd::of(&OAuthError::invalid_request("x")), None);
        assert_eq!(
            InteractionEnd::of(&page(
                ErrorCode::InvalidRequest,
                "The authorization request names an unknown client."
            )),
            None
        );
    }
}
