//! HTTP message signatures on resource requests (FAPI 2.0 HTTP Signatures, HS 5.3.1.2; RFC 9421
//! with RFC 9530 `Content-Digest`), as one step of [`admit`](crate::admit): a request that
//! carries a signature has it verified with the key its `keyid` names in the client's JWK Set,
//! and a client (or route) that must sign is refused without one. Either refusal is 401
//! (RS-MS-03). The rules themselves live in `portcullis-httpsig`.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_httpsig::{
    RequestPolicy, RequestView, SigError, TAG_REQUEST, VerifiedSignature, parse_signatures, verify_request,
};
use portcullis_jose::{Jwks, PublicJwk};

use crate::access::{ResourceError, ResourceErrorKind};
use crate::source::SourceError;

/// A client's signing keys and whether it must sign, as an operator gives them
/// ([`crate::service::StaticClientKeys`]).
#[derive(Debug, Clone)]
pub struct ClientSigning {
    /// The client registered to sign every resource request.
    pub required: bool,
    /// Its public keys; a signature's `keyid` names one of them (RS-MS-02).
    pub keys: Arc<Jwks>,
}

/// Where a resource learns whether a client must sign, and its signing keys.
#[async_trait]
pub trait ClientKeys: Send + Sync {
    /// Whether `client_id` registered to sign every request (read for unsigned requests only:
    /// no key is fetched for them).
    async fn must_sign(&self, client_id: &str) -> Result<bool, SourceError>;
    /// The client's key named `kid`, if it has one (a source that fetches keys refetches them
    /// for an unknown `kid`, within its limits).
    async fn key(&self, client_id: &str, kid: &str) -> Result<Option<PublicJwk>, SourceError>;
}

/// A request's body, as the signature step needs it: only once the token was admitted and the
/// request carries a signature (so that unauthenticated bodies are never read).
#[async_trait]
pub trait RequestBody: Send + Sync {
    /// The whole body; an error when it cannot be read (too large, too slow): the request is
    /// refused with it.
    async fn bytes(&self) -> Result<Cow<'_, [u8]>, String>;
}

/// A body already read.
#[async_trait]
impl RequestBody for &[u8] {
    async fn bytes(&self) -> Result<Cow<'_, [u8]>, String> {
        Ok(Cow::Borrowed(self))
    }
}

/// A request's signature step: the request as it was signed, and the rules of the route.
pub struct SignatureCheck<'a> {
    /// Method, absolute target URI (the resource's public URL and the query, as called) and
    /// every header.
    pub request: RequestView<'a>,
    /// The request body (RS-MS-08: its `Content-Digest` is recomputed), read only when a
    /// signature is to be verified, after the token was admitted.
    pub body: &'a dyn RequestBody,
    /// Every client must sign at this route.
    pub required: bool,
    pub clients: &'a dyn ClientKeys,
    /// The `created` window (HS 5.3.1.2-6: one minute recommended).
    pub policy: RequestPolicy,
}

impl std::fmt::Debug for SignatureCheck<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureCheck")
            .field("method", &self.request.method)
            .field("target_uri", &self.request.target_uri)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

/// A verified request signature, with the key that verified it (for the evidence log).
#[derive(Debug, Clone)]
pub struct SignedBy {
    pub signature: VerifiedSignature,
    pub key: PublicJwk,
}

/// Whether the request carries an RFC 9421 message signature at all: `Signature-Input` is what
/// marks one (a lone `Signature` header of another scheme, e.g. the Cavage drafts, is not).
fn carries_signature(request: &RequestView<'_>) -> bool {
    request.headers.contains_key("signature-input")
}

fn refused(description: String) -> ResourceError {
    ResourceError {
        kind: ResourceErrorKind::InvalidSignature,
        description: description.into(),
        without_credentials: false,
    }
}

/// HS 5.3.1.2: verifies `check`'s request for the token's client `client_id`; `Ok(None)` when it
/// is unsigned and no signature is required.
pub(crate) async fn verify(
    check: &SignatureCheck<'_>,
    client_id: &str,
    now: i64,
) -> Result<Result<Option<SignedBy>, ResourceError>, SourceError> {
    if !carries_signature(&check.request) {
        if check.required {
            return Ok(Err(refused(
                "this resource requires a signed request (HTTP Message Signatures, tag fapi-2-request)".into(),
            )));
        }
        // one metadata lookup, no key fetch: does this client have to sign?
        return Ok(if check.clients.must_sign(client_id).await? {
            Err(refused(
                "this client must sign its requests (HTTP Message Signatures, tag fapi-2-request)".into(),
            ))
        } else {
            Ok(None)
        });
    }
    // the key the FAPI signature names (when the headers parse at all; the verification below
    // says precisely what is wrong otherwise)
    let key = match requested_keyid(&check.request) {
        Some(kid) => check.clients.key(client_id, &kid).await?,
        None => None,
    };
    let lookup = |kid: &str| key.clone().filter(|k| k.kid() == Some(kid));
    let body = match check.body.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return Ok(Err(ResourceError {
                kind: ResourceErrorKind::InvalidRequest,
                description: e.into(),
                without_credentials: false,
            }));
        }
    };
    Ok(
        match verify_request(&check.request, &body, now, &check.policy, &lookup) {
            Ok(signature) => match key {
                Some(key) => Ok(Some(SignedBy { signature, key })),
                None => Err(refused("the signature's keyid is not among the client's keys".into())),
            },
            Err(e) => Err(refused(describe(&e))),
        },
    )
}

/// The `keyid` of the one signature tagged `fapi-2-request`, if the headers say so.
fn requested_keyid(request: &RequestView<'_>) -> Option<String> {
    let entries = parse_signatures(request.headers).ok()?;
    let mut tagged = entries.iter().filter(|e| e.params.tag() == Some(TAG_REQUEST));
    let first = tagged.next()?;
    if tagged.next().is_some() {
        return None;
    }
    first.params.keyid().map(str::to_owned)
}

fn describe(e: &SigError) -> String {
    format!("HTTP message signature refused: {e}")
}
