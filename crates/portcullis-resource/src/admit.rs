//! The whole admission of a request to a protected resource, over a [`TokenSource`] (the
//! authorization server's own store, introspection, or a JWT access token) and a
//! [`ReplayGuard`] for DPoP proof `jti`s. The order writes nothing for a request that fails
//! anyway (issue 13 item 4): every check that needs no lookup, then the lookup, the binding,
//! the audience and the scopes, and only then the replay record.

use async_trait::async_trait;

use crate::access::{self, ResourceError, ResourceErrorKind, ResourceRequest};
use crate::binding::SenderConstraint;
use crate::dpop::NonceSource;
use crate::signature::{SignatureCheck, SignedBy};

/// What a resource learns about an active token from its issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The user (`sub`).
    pub subject: String,
    pub client_id: String,
    pub scope: Vec<String>,
    /// The resources the token is for (RFC 8707 / RFC 9068 `aud`); empty when the issuer
    /// restricts nothing.
    pub audience: Vec<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// RFC 7800 `cnf`: an unbound token is never admitted.
    pub binding: Option<SenderConstraint>,
}

pub use crate::source::SourceError;

/// Where a resource learns about tokens.
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// The token's facts if it is active (known, unexpired, unrevoked); `None` otherwise.
    async fn lookup(&self, token: &str, now: i64) -> Result<Option<TokenInfo>, SourceError>;
}

/// RFC 9449 §11.1: remembers DPoP proof `jti`s (per resource URL) within their window.
#[async_trait]
pub trait ReplayGuard: Send + Sync {
    /// True the first time `key` is seen before `until`.
    async fn remember_once(&self, key: &str, until: i64, now: i64) -> Result<bool, SourceError>;
}

/// What a route asks of a token.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy<'a> {
    /// Scopes the token must carry (RFC 6750 §3.1 `insufficient_scope`).
    pub scopes: &'a [&'a str],
    /// The resource's identifier, which the token's audience must contain when it names any
    /// (RFC 8707 §2, RFC 9068 §4).
    pub audience: Option<&'a str>,
    /// Require server nonces in DPoP proofs (RFC 9449 §9).
    pub nonce_required: bool,
    /// Verify HTTP message signatures (FAPI 2.0 HTTP Signatures 5.3.1.2); `None`: the route
    /// ignores them.
    pub signatures: Option<&'a SignatureCheck<'a>>,
}

/// A request admitted: the token's facts, a DPoP nonce to rotate to (if any), and the request's
/// verified HTTP message signature (if it was signed).
#[derive(Debug, Clone)]
pub struct Admitted {
    pub token: TokenInfo,
    pub fresh_nonce: Option<String>,
    pub signed: Option<SignedBy>,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmitError {
    /// The request's fault: an RFC 6750 / RFC 9449 refusal.
    Refused(ResourceError),
    /// Ours: the token source or the replay store failed.
    Source(SourceError),
}

impl From<ResourceError> for AdmitError {
    fn from(e: ResourceError) -> Self {
        Self::Refused(e)
    }
}

impl From<SourceError> for AdmitError {
    fn from(e: SourceError) -> Self {
        Self::Source(e)
    }
}

/// Admits `req` (SP 5.3.4, RS-SP-01..15) or says why not.
pub async fn admit(
    req: &ResourceRequest<'_>,
    now: i64,
    nonces: &dyn NonceSource,
    source: &dyn TokenSource,
    replay: &dyn ReplayGuard,
    policy: &Policy<'_>,
) -> Result<Admitted, AdmitError> {
    let pre = access::precheck(req, now, nonces, policy.nonce_required)?;
    let Some(token) = source.lookup(pre.presented.token, now).await? else {
        return Err(ResourceError::rejected_token().into());
    };
    // RS-SP-04: never past exp, whatever the source cached
    if token.expires_at <= now || !access::binding_holds(token.binding.as_ref(), &pre, req.certificate) {
        return Err(ResourceError::rejected_token().into());
    }
    // RFC 8707 §2: a token restricted to other resources is not for this one
    if let Some(me) = policy.audience
        && !token.audience.is_empty()
        && !token.audience.iter().any(|a| a == me)
    {
        return Err(ResourceError::invalid_token("the access token is not for this resource (aud)").into());
    }
    access::require_scopes(&token.scope, policy.scopes)?;
    // HS 5.3.1.2: the client's signature, with the client's keys, once the token named it
    let signed = match policy.signatures {
        Some(check) => crate::signature::verify(check, &token.client_id, now).await??,
        None => None,
    };
    if let Some(proof) = &pre.proof
        && !replay.remember_once(&proof.replay_key, proof.replay_until, now).await?
    {
        return Err(ResourceError {
            kind: ResourceErrorKind::InvalidDpopProof,
            description: "the DPoP proof jti has already been used".into(),
            without_credentials: false,
        }
        .into());
    }
    Ok(Admitted {
        token,
        fresh_nonce: pre.proof.and_then(|p| p.fresh_nonce),
        signed,
    })
}
