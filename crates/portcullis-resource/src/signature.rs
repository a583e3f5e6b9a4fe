//! HTTP message signatures on resource requests (FAPI 2.0 HTTP Signatures, HS 5.3.1.2; RFC 9421
//! with RFC 9530 `Content-Digest`), as one step of [`admit`](crate::admit): a request that
//! carries a signature has it verified with the key its `keyid` names in the client's JWK Set,
//! and a client (or route) that must sign is refused without one. Either refusal is 401
//! (RS-MS-03). The rules themselves live in `portcullis-httpsig`.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_httpsig::{RequestPolicy, RequestView, SigError, VerifiedSignature, verify_request};
use portcullis_jose::{Jwks, PublicJwk};

use crate::access::{ResourceError, ResourceErrorKind};
use crate::source::SourceError;

/// A client's part in HTTP message signatures.
#[derive(Debug, Clone)]
pub struct ClientSigning {
    /// The client registered to sign every resource request.
    pub required: bool,
    /// Its public keys; a signature's `keyid` names one of them (RS-MS-02).
    pub keys: Arc<Jwks>,
}

/// Where a resource learns a client's signing keys and whether it must sign.
#[async_trait]
pub trait ClientKeys: Send + Sync {
    /// `None` when the client is unknown or has no keys.
    async fn signing(&self, client_id: &str) -> Result<Option<ClientSigning>, SourceError>;
}

/// A request's signature step: the request as it was signed, and the rules of the route.
pub struct SignatureCheck<'a> {
    /// Method, absolute target URI (the resource's public URL and the query, as called) and
    /// every header.
    pub request: RequestView<'a>,
    /// The request body (RS-MS-08: its `Content-Digest` is recomputed).
    pub body: &'a [u8],
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
            .field("body_len", &self.body.len())
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
    let signed = carries_signature(&check.request);
    if !signed && !check.required {
        // one lookup, only for requests that may need it: does this client have to sign?
        return Ok(match check.clients.signing(client_id).await? {
            Some(c) if c.required => Err(refused(
                "this client must sign its requests (HTTP Message Signatures, tag fapi-2-request)".into(),
            )),
            _ => Ok(None),
        });
    }
    if !signed {
        return Ok(Err(refused(
            "this resource requires a signed request (HTTP Message Signatures, tag fapi-2-request)".into(),
        )));
    }
    let Some(client) = check.clients.signing(client_id).await? else {
        return Ok(Err(refused(
            "the request is signed, but the client has no registered keys to verify it with".into(),
        )));
    };
    let keys = &client.keys;
    let lookup = |kid: &str| keys.keys().iter().find(|k| k.kid() == Some(kid)).cloned();
    Ok(
        match verify_request(&check.request, check.body, now, &check.policy, &lookup) {
            Ok(signature) => match lookup(signature.keyid()) {
                Some(key) => Ok(Some(SignedBy { signature, key })),
                None => Err(refused("the signature's keyid is not among the client's keys".into())),
            },
            Err(e) => Err(refused(describe(&e))),
        },
    )
}

fn describe(e: &SigError) -> String {
    format!("HTTP message signature refused: {e}")
}
