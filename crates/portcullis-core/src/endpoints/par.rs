//! The pushed authorization request endpoint (RFC 9126), with the FAPI 2.0 rules applied to the
//! pushed parameters (SP 5.3.2.2, AS-SP-32..46). The checks run in the order of [`PAR_CHECKS`].

use std::sync::Arc;

use crate::audit::{Direction, Evidence, EvidenceKind};
use crate::checks::authorization as rules;
use crate::checks::{self, Check, CheckFuture, Run};
use crate::client_auth::ClientCredentials;
use crate::dpop::VerifiedProof;
use crate::error::{OAuthError, OAuthResult};
use crate::model::{AuthorizationRequest, PushedRequest, SenderConstraintMethod};
use crate::provider::{ParsedClient, Provider};
use crate::request::Params;
use crate::request::{DirectRequest, Endpoint};
use crate::types::{JwkThumbprint, RequestUri};

/// A successful PAR (RFC 9126 §2.2).
#[derive(Debug, Clone)]
pub struct PushedAuthorizationResponse {
    pub request_uri: RequestUri,
    pub expires_in: i64,
    /// A DPoP nonce to send along (RFC 9449 §8.2).
    pub dpop_nonce: Option<String>,
    /// The verified request object with the client key that verified it, for the evidence
    /// log (issue 16 item 5); only for a request that passed every check.
    pub evidence: Option<Evidence>,
}

/// What the PAR checks work on and fill in.
pub struct ParContext {
    req: DirectRequest,
    /// The verified request object's claims, which replace the form's authorization
    /// parameters (RFC 9126 §3, AS-MS-07).
    object: Option<Vec<(String, String)>>,
    proof: Option<VerifiedProof>,
    client: Option<Arc<ParsedClient>>,
    request: Option<AuthorizationRequest>,
    evidence: Option<Evidence>,
}

impl ParContext {
    fn client(&self) -> OAuthResult<&Arc<ParsedClient>> {
        self.client
            .as_ref()
            .ok_or_else(|| OAuthError::server_error("PAR check table: no authenticated client"))
    }

    fn request(&mut self) -> OAuthResult<&mut AuthorizationRequest> {
        self.request
            .as_mut()
            .ok_or_else(|| OAuthError::server_error("PAR check table: no request"))
    }

    /// The authorization parameters (form fields, or a verified request object).
    /// The authorization parameters: a verified request object's claims when one was pushed,
    /// else the form fields.
    fn authorization(&self) -> Params<'_> {
        match &self.object {
            Some(pairs) => Params::trusted(pairs),
            None => self.req.params.view(),
        }
    }
}

/// The checks of `POST /par`, in order.
pub const PAR_CHECKS: &[Check<ParContext>] = &[
    Check {
        name: "DPoP proof",
        rule: "if sent, every proof check but replay, before the client assertion is spent",
        source: "AS-SP-46; RFC 9449 §4.3, §8",
        run: Run::Sync(dpop_proof),
    },
    Check {
        name: "client authentication",
        rule: "private_key_jwt, tls_client_auth or self_signed_tls_client_auth",
        source: "AS-SP-24, AS-SP-33; RFC 8705 §2; RFC 7523 §3",
        run: Run::Async(client_authentication),
    },
    Check {
        name: "no `request_uri`",
        rule: "a request_uri is never pushed",
        source: "AS-SP-34; RFC 9126 §2.1",
        run: Run::Sync(no_request_uri),
    },
    Check {
        name: "request object",
        rule: "if pushed (or required for the client): signed by the client (FAPI alg), typ, iss, aud, exp, nbf, \
               client_id; its claims become the parameters checked below",
        source: "AS-MS-01..09; RFC 9101 §4, §6; RFC 9126 §3",
        run: Run::Async(request_object),
    },
    Check {
        name: "`client_id`",
        rule: "if sent, equals the authenticated client",
        source: "AS-SP-35; RFC 9126 §2.1",
        run: Run::Sync(client_id),
    },
    Check {
        name: "`response_type`",
        rule: "`code` only",
        source: "AS-SP-48; SP 5.3.2.2-1",
        run: Run::Sync(response_type),
    },
    Check {
        name: "`response_mode`",
        rule: "absent or one this server renders (`query`, `query.jwt`, `jwt`); JARM when the server requires it",
        source: "OAuth 2.0 Multiple Response Types §2.1",
        run: Run::Sync(response_mode),
    },
    Check {
        name: "`redirect_uri`",
        rule: "required, exactly a registered one",
        source: "AS-SP-36, AS-SP-37; SP 5.3.2.2-6",
        run: Run::Sync(redirect_uri),
    },
    Check {
        name: "PKCE",
        rule: "S256 with a well-formed challenge",
        source: "AS-SP-59; RFC 7636 §4.3",
        run: Run::Sync(pkce),
    },
    Check {
        name: "`scope`",
        rule: "known scopes the client is registered for",
        source: "RFC 6749 §3.3",
        run: Run::Sync(scope),
    },
    Check {
        name: "`resource`",
        rule: "absolute URIs this server issues tokens for (else `invalid_target`); repeatable",
        source: "RFC 8707 §2",
        run: Run::Sync(resource),
    },
    Check {
        name: "`state`, `nonce`",
        rule: "kept byte-exact, bounded",
        source: "AS-SP-56, AS-SP-57",
        run: Run::Sync(state_and_nonce),
    },
    Check {
        name: "`max_age`, `prompt`",
        rule: "a non-negative integer; `none`, `login`, `consent`",
        source: "OIDC Core §3.1.2.1",
        run: Run::Sync(max_age_and_prompt),
    },
    Check {
        name: "`ui_locales`",
        rule: "kept as a preference: well-formed language tags only, at most 10 (never refused)",
        source: "OIDC Core §3.1.2.1; issue 17 item 8",
        run: Run::Sync(ui_locales),
    },
    Check {
        name: "no `authorization_details`",
        rule: "RAR is not supported yet",
        source: "RFC 9396 (later)",
        run: Run::Sync(no_authorization_details),
    },
    Check {
        name: "DPoP code binding",
        rule: "`dpop_jkt` and/or the proof's key, equal when both; only for DPoP-bound clients",
        source: "AS-SP-46; RFC 9449 §10",
        run: Run::Sync(dpop_code_binding),
    },
    Check {
        name: "DPoP proof replay",
        rule: "the proof's `jti` is recorded, once everything else held",
        source: "RFC 9449 §11.1",
        run: Run::Async(record_dpop),
    },
];

impl Provider {
    pub async fn push_authorization_request(&self, req: DirectRequest) -> OAuthResult<PushedAuthorizationResponse> {
        let mut ctx = ParContext {
            req,
            object: None,
            proof: None,
            client: None,
            request: None,
            evidence: None,
        };
        checks::run(self, PAR_CHECKS, &mut ctx).await?;
        let request = ctx
            .request
            .take()
            .ok_or_else(|| OAuthError::server_error("PAR check table: no request"))?;
        let request_uri = RequestUri::generate();
        let record = PushedRequest {
            request_uri_hash: request_uri.hash(),
            request,
            expires_at: self.now() + self.settings.request_uri_lifetime,
            consumed: false,
        };
        self.store.insert_pushed_request(&record).await?;
        Ok(PushedAuthorizationResponse {
            request_uri,
            expires_in: self.settings.request_uri_lifetime,
            dpop_nonce: ctx.proof.and_then(|p| p.fresh_nonce),
            evidence: ctx.evidence,
        })
    }
}

/// RFC 9449 §8: the proof and its nonce are checked before client authentication spends the
/// client assertion, so that a retry with the server's nonce has lost nothing.
fn dpop_proof(p: &Provider, c: &mut ParContext) -> OAuthResult<()> {
    c.proof = p.precheck_dpop(&c.req, Endpoint::PushedAuthorization)?;
    Ok(())
}

/// AS-SP-24/33: the client authenticates with the one method it is registered for.
fn client_authentication<'a>(p: &'a Provider, c: &'a mut ParContext) -> CheckFuture<'a> {
    Box::pin(async move {
        let credentials = ClientCredentials::from_request(p, &c.req)?;
        let client = p.authenticate_client(&credentials).await?;
        c.request = Some(AuthorizationRequest {
            client_id: client.client.client_id.clone(),
            redirect_uri: String::new(),
            scope: Vec::new(),
            state: None,
            nonce: None,
            code_challenge: crate::types::PkceChallenge::from_trusted(String::new()),
            dpop_jkt: None,
            max_age: None,
            prompt: Vec::new(),
            response_mode: Default::default(),
            resources: Vec::new(),
            ui_locales: Vec::new(),
            interaction_id: c.req.interaction_id.clone(),
        });
        c.client = Some(client);
        Ok(())
    })
}

/// RFC 9126 §2.1 (AS-SP-34): request_uri must not be pushed.
fn no_request_uri(_: &Provider, c: &mut ParContext) -> OAuthResult<()> {
    if c.authorization().has("request_uri") {
        return Err(OAuthError::invalid_request(
            "request_uri must not be sent to the pushed authorization request endpoint",
        ));
    }
    Ok(())
}

/// RFC 9126 §3, MS 5.3.1 (AS-MS-01..09): a pushed `request` is verified and its claims become
/// the authorization parameters (those outside it are not used); a client required to sign its
/// requests must push one.
fn request_object<'a>(p: &'a Provider, c: &'a mut ParContext) -> CheckFuture<'a> {
    Box::pin(async move {
        let client = c.client()?.clone();
        let form = c.req.params.view();
        let Some(jwt) = form.get("request") else {
            if p.settings.require_signed_request_object || client.client.metadata.requires_signed_request_object() {
                return Err(OAuthError::invalid_request(
                    "this client must push its authorization request as a signed request object (request)",
                ));
            }
            return Ok(());
        };
        let (pairs, key) = p
            .verify_request_object(&client, jwt, p.settings.max_form_params)
            .await?;
        c.object = Some(pairs);
        c.evidence = Some(Evidence::jws(
            EvidenceKind::RequestObject,
            Direction::Received,
            &c.req.interaction_id,
            &client.client.client_id,
            p.now(),
            &key,
            jwt,
        ));
        Ok(())
    })
}

/// RFC 9126 §2.1 (AS-SP-35): a `client_id` parameter names the authenticated client.
fn client_id(_: &Provider, c: &mut ParContext) -> OAuthResult<()> {
    let authenticated = &c.client()?.client.client_id;
    if let Some(cid) = c.authorization().get("client_id")
        && cid != authenticated
    {
        return Err(OAuthError::invalid_request(
            "client_id does not match the authenticated client",
        ));
    }
    Ok(())
}

fn response_type(_: &Provider, c: &mut ParContext) -> OAuthResult<()> {
    rules::response_type(&c.authorization())
}

fn response_mode(p: &Provider, c: &mut ParContext) -> OAuthResult<()> {
    let mode = rules::response_mode(&c.authorization())?;
    // AS-MS-11: a server set up for signed responses issues nothing else
    if p.settings.require_jarm && mode == crate::response::ResponseMode::Query {
        return Err(OAuthError::invalid_request(
            "this server answers only with signed authorization responses: send response_mode=jwt",
        ));
    }
    c.request()?.response_mode = mode;
    Ok(())
}

fn redirect_uri(_: &Provider, c: &mut ParContext) -> OAuthResult<()> {
    let client = c.client()?.clone();
    let uri = rules::redirect_uri(&c.authorization(), &client.client.metadata)?;
    c.request()?.redirect_uri = uri;
    Ok(())
}

fn pkce(_: &Provider, c: &mut ParContext) -> OAuthResult<()> {
    let challenge = rules::pkce(&c.authorization())?;
    c.request()?.code_challenge = challenge;
    Ok(())
}

fn scope(p: &Provider, c: &mut ParContext) -> OAuthResult<()> {
    let client = c.client()?.clone();
    let scope = rules::scope(&c.authorization(), &p.settings, &client.client.metadata)?;
    c.request()?.scope = scope;
    Ok(())
}

fn resource(p: &Provider, c: &mut ParContext) -> OAuthResult<()> {
    let client = c.client()?.clone();
    let resources = rules::resources(
        &c.authorization().get_all("resource"),
        &p.settings,
        &client.client.metadata,
    )?;
    c.request()?.resources = resources;
    Ok(())
}

fn state_and_nonce(_: &Provider, c: &mut ParContext) -> OAuthResult<()> {
    let (state, nonce) = rules::state_and_nonce(&c.authorization())?;
    let r = c.request()?;
    r.state = state;
    r.nonce = nonce;
    Ok(())
}

fn max_age_and_prompt(_: &Provider, c: &mut ParContext) -> OAuthResult<()> {
    let (max_age, prompt) = rules::max_age_and_prompt(&c.authorization())?;
    let r = c.request()?;
    r.max_age = max_age;
    r.prompt = prompt;
    Ok(())
}

fn ui_locales(_: &Provider, c: &mut ParContext) -> OAuthResult<()> {
    let locales = rules::ui_locales(&c.authorization());
    c.request()?.ui_locales = locales;
    Ok(())
}

fn no_authorization_details(_: &Provider, c: &mut ParContext) -> OAuthResult<()> {
    rules::no_authorization_details(&c.authorization())
}

/// RFC 9449 §10 (AS-SP-46): `dpop_jkt` and/or a PAR proof bind the code to a key; a client
/// whose tokens are certificate-bound has no use for either (IA-07: not both constraints).
fn dpop_code_binding(_: &Provider, c: &mut ParContext) -> OAuthResult<()> {
    let param = rules::dpop_jkt(&c.authorization())?;
    let proof_jkt = c.proof.as_ref().map(|p| p.jkt.clone());
    if (param.is_some() || proof_jkt.is_some())
        && c.client()?.client.metadata.sender_constraint() == SenderConstraintMethod::Mtls
    {
        return Err(OAuthError::invalid_request(
            "this client's tokens are certificate-bound (tls_client_certificate_bound_access_tokens): \
             send no DPoP proof or dpop_jkt",
        ));
    }
    let bound: Option<JwkThumbprint> = match (param, proof_jkt) {
        (Some(p), Some(k)) if !p.matches(&k) => {
            return Err(OAuthError::invalid_request(
                "dpop_jkt does not match the key of the DPoP proof",
            ));
        }
        (Some(p), _) => Some(p),
        (None, k) => k,
    };
    c.request()?.dpop_jkt = bound;
    Ok(())
}

/// RFC 9449 §11.1: the proof's `jti` is good once; recorded only for a request that passed
/// every other check (issue 13 item 4).
fn record_dpop<'a>(p: &'a Provider, c: &'a mut ParContext) -> CheckFuture<'a> {
    Box::pin(async move {
        if let Some(proof) = &c.proof {
            p.record_dpop(proof).await?;
        }
        Ok(())
    })
}
