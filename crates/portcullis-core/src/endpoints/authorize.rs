//! The authorization endpoint (SP 5.3.2.2, RFC 9126 §4): only `client_id` + `request_uri` from a
//! PAR count; the response goes by redirect with `code`, `state` and `iss` (RFC 9207).

use std::sync::Arc;

use crate::audit::{Direction, Evidence, EvidenceKind};
use crate::checks::{self, Check, CheckFuture, Run};
use crate::error::{ErrorCode, OAuthError, OAuthResult, Status};
use crate::model::{AuthorizationCode, AuthorizationRequest, Grant, PushedRequest, Session};
use crate::provider::{ParsedClient, Provider};
use crate::random::{credential, hash};
use crate::response::{AuthorizationResponse, ResponseMode, ResponseTarget};
use crate::types::{ClientId, RequestUri};

/// How long a JARM response is valid (AS-MS-11: 10 minutes at most).
const JARM_LIFETIME: i64 = 300;

/// A valid pushed request, waiting for login and consent.
#[derive(Debug, Clone)]
pub struct PendingAuthorization {
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
    client: Option<Arc<ParsedClient>>,
    request_uri: Option<RequestUri>,
    pushed: Option<PushedRequest>,
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
        rule: "not used yet (redirected `invalid_request_uri`)",
        source: "AS-SP-43, AS-SP-44; RFC 9126 §7.3",
        run: Run::Sync(unused),
    },
    Check {
        name: "unexpired",
        rule: "within its lifetime (redirected `invalid_request_uri`)",
        source: "AS-SP-40, AS-SP-43; RFC 9126 §2.2",
        run: Run::Sync(unexpired),
    },
];

impl Provider {
    /// Resolves an authorization request (front channel) by running [`AUTHORIZE_CHECKS`]. A
    /// `request_uri` stays usable until the authorization completes (AS-SP-44).
    pub async fn begin_authorization(&self, query: Vec<(String, String)>) -> OAuthResult<PendingAuthorization> {
        let mut ctx = AuthorizeContext {
            query,
            client: None,
            request_uri: None,
            pushed: None,
        };
        checks::run(self, AUTHORIZE_CHECKS, &mut ctx).await?;
        let (Some(client), Some(request_uri), Some(pushed)) = (ctx.client, ctx.request_uri, ctx.pushed) else {
            return Err(OAuthError::server_error("authorize check table: incomplete"));
        };
        let metadata = &client.client.metadata;
        let client_name = metadata.client_name.clone();
        let pushed_at = pushed.expires_at - self.settings.request_uri_lifetime;
        Ok(PendingAuthorization {
            request_uri_hash: request_uri.hash(),
            request: pushed.request,
            client_name,
            pushed_at,
            policy_uri: https_metadata(metadata, "policy_uri"),
            tos_uri: https_metadata(metadata, "tos_uri"),
            refresh_token: metadata.allows_grant("refresh_token"),
        })
    }

    /// Ends an authorization: consumes the request_uri (atomically, single use) and answers
    /// with a code, or with `access_denied` (RFC 6749 §4.1.2.1, AS-SP-55).
    pub async fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        decision: Decision,
    ) -> OAuthResult<AuthorizationResponse> {
        let req = &pending.request;
        let target = req.response_target();
        let now = self.now();
        // issue 13 item 6: the login behind an Allow must still satisfy prompt=login and
        // max_age now, whatever page was shown before (checked before the request_uri is spent)
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
        let won = self
            .store
            .consume_pushed_request(&pending.request_uri_hash, now)
            .await?;
        if !won {
            return Err(
                OAuthError::invalid_request_uri("the request_uri has already been used or has expired")
                    .redirected_to(&target),
            );
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
    /// form carries the request_uri, and the session remembers it); `max_age` wants a login
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

/// RFC 9126 §4, §7.3 (AS-SP-43): a used request_uri is refused.
fn unused(_: &Provider, c: &mut AuthorizeContext) -> OAuthResult<()> {
    let pushed = c.pushed()?;
    if pushed.consumed {
        return Err(OAuthError::invalid_request_uri("the request_uri has already been used")
            .redirected_to(&pushed.request.response_target()));
    }
    Ok(())
}

/// RFC 9126 §2.2 (AS-SP-40/43): an expired request_uri is refused.
fn unexpired(p: &Provider, c: &mut AuthorizeContext) -> OAuthResult<()> {
    let pushed = c.pushed()?;
    if pushed.expires_at <= p.now() {
        return Err(OAuthError::invalid_request_uri("the request_uri has expired")
            .redirected_to(&pushed.request.response_target()));
    }
    Ok(())
}
