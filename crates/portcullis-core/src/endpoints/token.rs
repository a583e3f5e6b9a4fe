//! The token endpoint (RFC 6749 §3.2, §4.1.3, §6) with sender-constrained access tokens (DPoP,
//! RFC 9449 §5; certificate-bound, RFC 8705 §3) and OpenID Connect id_tokens (OIDC Core
//! §3.1.3). The checks run in the order of [`CODE_CHECKS`] and [`REFRESH_CHECKS`].

use portcullis_jose::Algorithm;
use serde::Serialize;
use serde_json::{Map, Value};

use std::sync::Arc;

use crate::checks::{self, Check, CheckFuture, Run};
use crate::client_auth::ClientCredentials;
use crate::dpop::VerifiedProof;
use crate::error::{ErrorCode, OAuthError, OAuthResult, Status};
use crate::model::{
    AuthorizationCode, CodeRedemption, Grant, SenderConstraint, SenderConstraintMethod, TokenKind, TokenRecord,
};
use crate::provider::{ParsedClient, Provider};
use crate::random::{credential, hash};
use crate::request::Params;
use crate::request::{DirectRequest, Endpoint};
use crate::settings::AccessTokenFormat;
use crate::types::{CertificateThumbprint, is_code_verifier};

/// RFC 6749 §5.1 (+ RFC 9449 §5, OIDC Core §3.1.3.3).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
    /// Sent as the `DPoP-Nonce` header, not in the body.
    #[serde(skip)]
    pub dpop_nonce: Option<String>,
    /// Who the tokens went to and for whom (for the audit log; not in the body).
    #[serde(skip)]
    pub client_id: String,
    #[serde(skip)]
    pub subject: String,
}

/// What a token response carries beside the binding.
struct Issuance<'a> {
    scope: &'a [String],
    /// RFC 8707: the access token's audience.
    audience: &'a [String],
    /// OIDC Core §3.1.3.6: the authorization request's `nonce`, for the id_token.
    nonce: Option<&'a str>,
    /// A refresh token too (the code grant, for clients with the refresh_token grant).
    with_refresh: bool,
}

/// What the token checks work on and fill in.
pub struct TokenContext {
    req: DirectRequest,
    grant_type: &'static str,
    proof: Option<VerifiedProof>,
    client: Option<Arc<ParsedClient>>,
    /// The sender constraint this request proves (a DPoP key or the certificate).
    binding: Option<SenderConstraint>,
    /// authorization_code: the redeemed code.
    code: Option<Box<AuthorizationCode>>,
    /// refresh_token: the grant and the scope asked for.
    grant: Option<Grant>,
    scope: Vec<String>,
    /// RFC 8707: the access token's audience.
    audience: Vec<String>,
}

impl TokenContext {
    fn params(&self) -> Params<'_> {
        self.req.params.view()
    }

    fn client(&self) -> OAuthResult<&Arc<ParsedClient>> {
        self.client
            .as_ref()
            .ok_or_else(|| OAuthError::server_error("token check table: no authenticated client"))
    }

    fn code(&self) -> OAuthResult<&AuthorizationCode> {
        self.code
            .as_deref()
            .ok_or_else(|| OAuthError::server_error("token check table: no redeemed code"))
    }
}

const GRANT_TYPE: Check<TokenContext> = Check {
    name: "`grant_type`",
    rule: "`authorization_code` or `refresh_token` only",
    source: "AS-SP-69; SP 5.3.2.1-2",
    run: Run::Sync(grant_type),
};
const DPOP_PROOF: Check<TokenContext> = Check {
    name: "DPoP proof",
    rule: "if sent, every proof check but replay, before the client assertion is spent",
    source: "RFC 9449 §4.3, §8",
    run: Run::Sync(dpop_proof),
};
const CLIENT_AUTHENTICATION: Check<TokenContext> = Check {
    name: "client authentication",
    rule: "private_key_jwt, tls_client_auth or self_signed_tls_client_auth",
    source: "AS-SP-24, AS-SP-90; RFC 8705 §2; RFC 7523 §3",
    run: Run::Async(client_authentication),
};
const GRANT_ALLOWED: Check<TokenContext> = Check {
    name: "grant registered",
    rule: "the client is registered for this grant type",
    source: "RFC 6749 §5.2 `unauthorized_client`",
    run: Run::Sync(grant_allowed),
};
const SENDER_CONSTRAINT: Check<TokenContext> = Check {
    name: "sender constraint",
    rule: "the client's one binding is proven: a DPoP proof, or the TLS client certificate (never both, never neither)",
    source: "AS-SP-72, AS-SP-79, AS-SP-87, AS-SP-91; RFC 9449 §5; RFC 8705 §3",
    run: Run::Sync(sender_constraint),
};
const RESOURCE: Check<TokenContext> = Check {
    name: "`resource`",
    rule: "within the grant's resources (else `invalid_target`); the access token's audience",
    source: "RFC 8707 §2.2",
    run: Run::Sync(resource),
};
const DPOP_REPLAY: Check<TokenContext> = Check {
    name: "DPoP proof replay",
    rule: "the proof's `jti` is recorded, once everything else held",
    source: "AS-SP-84; RFC 9449 §11.1",
    run: Run::Async(record_dpop),
};

/// The checks of the authorization code grant, in order.
pub const CODE_CHECKS: &[Check<TokenContext>] = &[
    GRANT_TYPE,
    DPOP_PROOF,
    CLIENT_AUTHENTICATION,
    GRANT_ALLOWED,
    SENDER_CONSTRAINT,
    Check {
        name: "`code`",
        rule: "redeemed once, atomically, by the client it was issued to; a replay revokes what it issued",
        source: "AS-SP-63, AS-SP-64, AS-SP-65; SP 5.3.2.2-9",
        run: Run::Async(redeem_code),
    },
    Check {
        name: "`redirect_uri`",
        rule: "the one of the authorization request",
        source: "RFC 6749 §4.1.3",
        run: Run::Sync(code_redirect_uri),
    },
    Check {
        name: "`code_verifier`",
        rule: "43 to 128 unreserved characters whose S256 is the code_challenge",
        source: "AS-SP-60, AS-SP-61; RFC 7636 §4.6",
        run: Run::Sync(code_verifier),
    },
    Check {
        name: "DPoP code binding",
        rule: "the proof's key is the one the code is bound to (`dpop_jkt`)",
        source: "AS-SP-67; RFC 9449 §10",
        run: Run::Sync(code_dpop_binding),
    },
    RESOURCE,
    DPOP_REPLAY,
];

/// The checks of the refresh token grant, in order.
pub const REFRESH_CHECKS: &[Check<TokenContext>] = &[
    GRANT_TYPE,
    DPOP_PROOF,
    CLIENT_AUTHENTICATION,
    GRANT_ALLOWED,
    SENDER_CONSTRAINT,
    Check {
        name: "`refresh_token`",
        rule: "known, unexpired, unrevoked, issued to this client",
        source: "AS-SP-90; RFC 6749 §6",
        run: Run::Async(refresh_token),
    },
    Check {
        name: "`scope`",
        rule: "no wider than the original grant",
        source: "AS-SP-92; RFC 6749 §6",
        run: Run::Sync(refresh_scope),
    },
    RESOURCE,
    DPOP_REPLAY,
];

impl Provider {
    pub async fn token(&self, req: DirectRequest) -> OAuthResult<TokenResponse> {
        let refresh = req.params.view().get("grant_type") == Some("refresh_token");
        let mut ctx = TokenContext {
            req,
            grant_type: "",
            proof: None,
            client: None,
            binding: None,
            code: None,
            grant: None,
            scope: Vec::new(),
            audience: Vec::new(),
        };
        let table = if refresh { REFRESH_CHECKS } else { CODE_CHECKS };
        checks::run(self, table, &mut ctx).await?;
        let client = ctx.client()?.clone();
        let binding = ctx
            .binding
            .take()
            .ok_or_else(|| OAuthError::server_error("token check table: no sender constraint"))?;
        let mut response = if refresh {
            let grant = ctx
                .grant
                .take()
                .ok_or_else(|| OAuthError::server_error("token check table: no grant"))?;
            // SP 5.3.2.1-9 (AS-SP-89): the refresh token is not rotated
            let what = Issuance {
                scope: &ctx.scope,
                audience: &ctx.audience,
                nonce: None,
                with_refresh: false,
            };
            self.issue(&client, &grant, what, binding).await?
        } else {
            let code = ctx.code()?;
            let what = Issuance {
                scope: &code.grant.scope,
                audience: &ctx.audience,
                nonce: code.nonce.as_deref(),
                with_refresh: true,
            };
            self.issue(&client, &code.grant, what, binding).await?
        };
        response.dpop_nonce = ctx.proof.and_then(|p| p.fresh_nonce);
        Ok(response)
    }

    async fn issue(
        &self,
        client: &ParsedClient,
        grant: &Grant,
        what: Issuance<'_>,
        binding: SenderConstraint,
    ) -> OAuthResult<TokenResponse> {
        let Issuance {
            scope,
            audience,
            nonce,
            with_refresh,
        } = what;
        let now = self.now();
        let expires_at = now + self.settings.access_token_lifetime;
        let format = client
            .client
            .metadata
            .access_token_format()
            .unwrap_or(self.settings.access_token_format);
        let access_token = match format {
            AccessTokenFormat::Opaque => credential(),
            AccessTokenFormat::Jwt => self.jwt_access_token(grant, scope, audience, &binding, now, expires_at)?,
        };
        let mut records = vec![TokenRecord {
            token_hash: hash(&access_token),
            kind: TokenKind::Access,
            grant_id: grant.grant_id.clone(),
            constraint: Some(binding.clone()),
            scope: scope.to_vec(),
            audience: audience.to_vec(),
            issued_at: now,
            expires_at,
        }];
        // INTERFACE.md: every client with the refresh_token grant gets one from the code grant
        let refresh_token = if with_refresh && client.client.metadata.allows_grant("refresh_token") {
            let rt = credential();
            records.push(TokenRecord {
                token_hash: hash(&rt),
                kind: TokenKind::Refresh,
                grant_id: grant.grant_id.clone(),
                constraint: None,
                scope: grant.scope.clone(),
                audience: Vec::new(),
                issued_at: now,
                expires_at: now + self.settings.refresh_token_lifetime,
            });
            Some(rt)
        } else {
            None
        };
        let id_token = if scope.iter().any(|s| s == "openid") {
            Some(self.id_token(client, grant, nonce, now)?)
        } else {
            None
        };
        self.store.insert_tokens(&records).await?;
        Ok(TokenResponse {
            access_token,
            token_type: binding.token_type(),
            expires_in: self.settings.access_token_lifetime,
            refresh_token,
            id_token,
            scope: scope.join(" "),
            dpop_nonce: None,
            client_id: grant.client_id.clone(),
            subject: grant.sub.clone(),
        })
    }

    /// OIDC Core §2 (AS-SP-101): iss, sub, aud, azp, exp, iat, auth_time and nonce, signed with
    /// the client's registered algorithm (never a default of RS256), `kid` in the header.
    /// RFC 9068 §2: a JWT access token, `typ: at+jwt`, with `iss`, `exp`, `aud` (the token's
    /// resources, or the issuer when the server has none), `sub`, `client_id`, `iat`, `jti`,
    /// `scope`, `auth_time` and the binding as `cnf` (RFC 9449 §6, RFC 8705 §3.1). Signed with
    /// the server's ES256 key (SP 5.4.1: FAPI algorithms only). It is stored by its hash like an
    /// opaque token, so introspection, revocation and userinfo treat both alike.
    fn jwt_access_token(
        &self,
        grant: &Grant,
        scope: &[String],
        audience: &[String],
        binding: &SenderConstraint,
        now: i64,
        expires_at: i64,
    ) -> OAuthResult<String> {
        let alg = Algorithm::Es256;
        let keys = self.keys();
        let key = keys
            .active(alg, now)
            .ok_or_else(|| OAuthError::server_error(format!("no active signing key for {alg}")))?;
        let aud = if audience.is_empty() {
            Value::from(self.settings.issuer.as_str())
        } else {
            Value::from(audience.to_vec())
        };
        let mut claims = Map::new();
        claims.insert("iss".into(), Value::from(self.settings.issuer.as_str()));
        claims.insert("exp".into(), Value::from(expires_at));
        claims.insert("aud".into(), aud);
        claims.insert("sub".into(), Value::from(grant.sub.as_str()));
        claims.insert("client_id".into(), Value::from(grant.client_id.as_str()));
        claims.insert("iat".into(), Value::from(now));
        claims.insert("jti".into(), Value::from(credential()));
        claims.insert("scope".into(), Value::from(scope.join(" ")));
        claims.insert("auth_time".into(), Value::from(grant.auth_time));
        claims.insert("cnf".into(), binding.cnf());
        key.sign_jwt(alg, Some("at+jwt"), &claims)
            .map_err(|e| OAuthError::server_error(format!("access token signing failed: {e}")))
    }

    fn id_token(&self, client: &ParsedClient, grant: &Grant, nonce: Option<&str>, now: i64) -> OAuthResult<String> {
        let alg = client.client.metadata.id_token_signed_response_alg;
        let keys = self.keys();
        let key = keys
            .active(alg, now)
            .ok_or_else(|| OAuthError::server_error(format!("no active signing key for {alg}")))?;
        let mut claims = Map::new();
        claims.insert("iss".into(), Value::from(self.settings.issuer.as_str()));
        claims.insert("sub".into(), Value::from(grant.sub.as_str()));
        claims.insert("aud".into(), Value::from(grant.client_id.as_str()));
        claims.insert("azp".into(), Value::from(grant.client_id.as_str()));
        claims.insert("iat".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(now + self.settings.id_token_lifetime));
        claims.insert("auth_time".into(), Value::from(grant.auth_time));
        if let Some(n) = nonce {
            claims.insert("nonce".into(), Value::from(n));
        }
        key.sign_jwt(alg, Some("JWT"), &claims)
            .map_err(|e| OAuthError::server_error(format!("id_token signing failed: {e}")))
    }
}

/// SP 5.3.2.1-2 (AS-SP-69): no password grant, nor anything else.
fn grant_type(_: &Provider, c: &mut TokenContext) -> OAuthResult<()> {
    let params = c.params();
    c.grant_type = match params.require("grant_type")? {
        "authorization_code" => "authorization_code",
        "refresh_token" => "refresh_token",
        other => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                Status::BadRequest,
                format!("grant_type {other} is not supported: use authorization_code or refresh_token"),
            ));
        }
    };
    Ok(())
}

/// RFC 9449 §8: the proof and its nonce are checked before client authentication spends the
/// client assertion, so that a retry with the server's nonce has lost nothing.
fn dpop_proof(p: &Provider, c: &mut TokenContext) -> OAuthResult<()> {
    c.proof = p.precheck_dpop(&c.req, Endpoint::Token)?;
    Ok(())
}

/// AS-SP-24/90: the client authenticates with the one method it is registered for.
fn client_authentication<'a>(p: &'a Provider, c: &'a mut TokenContext) -> CheckFuture<'a> {
    Box::pin(async move {
        let credentials = ClientCredentials::from_request(p, &c.req)?;
        let client = p.authenticate_client(&credentials).await?;
        c.client = Some(client);
        Ok(())
    })
}

/// RFC 6749 §5.2: `unauthorized_client` for a grant type the client is not registered for.
fn grant_allowed(_: &Provider, c: &mut TokenContext) -> OAuthResult<()> {
    if !c.client()?.client.metadata.allows_grant(c.grant_type) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            Status::BadRequest,
            format!("the client is not registered for the {} grant", c.grant_type),
        ));
    }
    Ok(())
}

/// SP 5.3.2.1-4/-5 (AS-SP-72/79/91): only sender-constrained tokens, bound the way the client
/// is registered for; no proof, no token. RFC 8705 §3 (AS-SP-87): a certificate-bound token is
/// bound to the certificate of this very request.
fn sender_constraint(_: &Provider, c: &mut TokenContext) -> OAuthResult<()> {
    let binding = match c.client()?.client.metadata.sender_constraint() {
        SenderConstraintMethod::Dpop => {
            let Some(proof) = &c.proof else {
                return Err(OAuthError::invalid_dpop_proof(
                    "a DPoP proof is required: this client's access tokens are DPoP-bound",
                ));
            };
            SenderConstraint::Dpop { jkt: proof.jkt.clone() }
        }
        SenderConstraintMethod::Mtls => {
            if c.proof.is_some() {
                return Err(OAuthError::invalid_request(
                    "this client's access tokens are certificate-bound: send no DPoP proof",
                ));
            }
            let Some(certificate) = &c.req.certificate else {
                return Err(OAuthError::invalid_request(
                    "this client's access tokens are certificate-bound: send the token request with the \
                     client's TLS certificate, to the token endpoint of mtls_endpoint_aliases",
                ));
            };
            SenderConstraint::Mtls {
                x5t_s256: CertificateThumbprint::from_trusted(certificate.thumbprint().to_owned()),
            }
        }
    };
    c.binding = Some(binding);
    Ok(())
}

/// SP 5.3.2.2-9 (AS-SP-64/65): one atomic redemption; a replay revokes what the code issued.
fn redeem_code<'a>(p: &'a Provider, c: &'a mut TokenContext) -> CheckFuture<'a> {
    Box::pin(async move {
        let code = c.params().require("code")?;
        let client_id = &c.client()?.client.client_id;
        let record = match p.store.redeem_code(&hash(code), client_id, p.now()).await? {
            CodeRedemption::Redeemed(r) => r,
            CodeRedemption::Replayed { grant_id } => {
                p.store.revoke_grant(&grant_id).await?;
                return Err(OAuthError::invalid_grant(
                    "the authorization code has already been used; the tokens issued with it are revoked",
                ));
            }
            CodeRedemption::OtherClient => {
                return Err(OAuthError::invalid_grant(
                    "the authorization code was issued to another client",
                ));
            }
            CodeRedemption::Expired => return Err(OAuthError::invalid_grant("the authorization code has expired")),
            CodeRedemption::Unknown => return Err(OAuthError::invalid_grant("the authorization code is unknown")),
        };
        c.code = Some(record);
        Ok(())
    })
}

/// RFC 6749 §4.1.3: the same redirect_uri as in the authorization request.
fn code_redirect_uri(_: &Provider, c: &mut TokenContext) -> OAuthResult<()> {
    let redirect_uri = c.params().require("redirect_uri")?;
    if c.code()?.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the one of the authorization request",
        ));
    }
    Ok(())
}

/// RFC 7636 §4.6 (AS-SP-60/61).
fn code_verifier(_: &Provider, c: &mut TokenContext) -> OAuthResult<()> {
    let params = c.params();
    let verifier = params
        .get("code_verifier")
        .ok_or_else(|| OAuthError::invalid_grant("code_verifier is required (PKCE)"))?;
    if !is_code_verifier(verifier) {
        return Err(OAuthError::invalid_grant(
            "code_verifier must be 43 to 128 unreserved characters (RFC 7636)",
        ));
    }
    if !c.code()?.code_challenge.is_met_by(verifier) {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    Ok(())
}

/// RFC 9449 §10 (AS-SP-67): the code is bound to the key named at PAR.
fn code_dpop_binding(_: &Provider, c: &mut TokenContext) -> OAuthResult<()> {
    if let Some(bound) = &c.code()?.dpop_jkt {
        let matches = matches!(&c.binding, Some(SenderConstraint::Dpop { jkt }) if jkt.matches(bound));
        if !matches {
            return Err(OAuthError::invalid_grant(
                "the DPoP proof key does not match the key the authorization code is bound to (dpop_jkt)",
            ));
        }
    }
    Ok(())
}

/// RFC 6749 §6 (AS-SP-90): a live refresh token of this client.
fn refresh_token<'a>(p: &'a Provider, c: &'a mut TokenContext) -> CheckFuture<'a> {
    Box::pin(async move {
        let token = c.params().require("refresh_token")?;
        let Some((_, grant)) = p.store.get_token(&hash(token), TokenKind::Refresh, p.now()).await? else {
            return Err(OAuthError::invalid_grant(
                "the refresh token is unknown, expired or revoked",
            ));
        };
        if grant.client_id != c.client()?.client.client_id {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        c.grant = Some(grant);
        Ok(())
    })
}

/// RFC 6749 §6 (AS-SP-92): no widening.
fn refresh_scope(_: &Provider, c: &mut TokenContext) -> OAuthResult<()> {
    let granted = &c
        .grant
        .as_ref()
        .ok_or_else(|| OAuthError::server_error("token check table: no grant"))?
        .scope;
    let scope = match c.params().get("scope") {
        None => granted.clone(),
        Some(s) => {
            let asked: Vec<String> = s.split(' ').filter(|x| !x.is_empty()).map(String::from).collect();
            if let Some(extra) = asked.iter().find(|a| !granted.contains(a)) {
                return Err(OAuthError::invalid_scope(format!(
                    "scope {extra} was not part of the original grant"
                )));
            }
            asked
        }
    };
    c.scope = scope;
    Ok(())
}

/// RFC 8707 §2.2: `resource` at the token endpoint narrows the audience to resources the grant
/// covers (the ones asked for at PAR, or all this server's when none were); without it the
/// access token is for all of the grant's.
fn resource(p: &Provider, c: &mut TokenContext) -> OAuthResult<()> {
    let granted = match (&c.code, &c.grant) {
        (Some(code), _) => &code.grant.resources,
        (None, Some(grant)) => &grant.resources,
        (None, None) => return Err(OAuthError::server_error("token check table: no grant for resource")),
    };
    // the grant's resources; else the client's registered ones; else all the server's
    let client_resources: Option<Vec<String>> = c
        .client()?
        .client
        .metadata
        .resources()
        .map(|r| r.into_iter().map(str::to_owned).collect());
    let allowed: &[String] = if !granted.is_empty() {
        granted
    } else if let Some(mine) = &client_resources {
        mine
    } else {
        &p.settings.resources
    };
    // whatever was stored, a token is only ever for resources the server still serves
    let allowed: Vec<String> = allowed
        .iter()
        .filter(|a| p.settings.resources.contains(a))
        .cloned()
        .collect();
    let asked = c.params().get_all("resource");
    if asked.len() > crate::checks::authorization::MAX_RESOURCES {
        return Err(OAuthError::invalid_target("too many resource parameters"));
    }
    let mut audience: Vec<String> = Vec::with_capacity(asked.len());
    for r in asked {
        if !allowed.iter().any(|a| a == r) {
            return Err(OAuthError::invalid_target(format!(
                "resource {r} is not covered by the grant"
            )));
        }
        if !audience.iter().any(|a| a == r) {
            audience.push(r.to_owned());
        }
    }
    c.audience = if audience.is_empty() { allowed } else { audience };
    Ok(())
}

/// RFC 9449 §11.1: the proof's `jti` is good once; recorded only for a request that passed
/// every other check (issue 13 item 4).
fn record_dpop<'a>(p: &'a Provider, c: &'a mut TokenContext) -> CheckFuture<'a> {
    Box::pin(async move {
        if let Some(proof) = &c.proof {
            p.record_dpop(proof).await?;
        }
        Ok(())
    })
}
