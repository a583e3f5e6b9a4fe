//! The resource-server side of FAPI 2.0 (SP 5.3.4): the rules that admit a request to a
//! protected resource only with a valid sender-constrained access token — a DPoP-bound one with
//! its proof (RFC 9449 §7) or a certificate-bound one over its certificate (RFC 8705 §3) — and
//! the challenges every refusal carries (RFC 6750 §3, RFC 9449 §7.1).
//!
//! No HTTP framework, no storage, no clock reads: the caller gives the request's parts, the
//! time, a source of server nonces, and (after the token is looked up, by whatever means) the
//! token's binding. The authorization server's userinfo and the demo API use these rules; a
//! standalone service uses the same ones.
#![forbid(unsafe_code)]

pub mod access;
pub mod admit;
pub mod binding;
pub mod dpop;
#[cfg(feature = "service")]
pub mod proxy;
#[cfg(feature = "service")]
pub mod service;
pub mod signature;
pub mod source;

pub use access::{Presented, ResourceError, ResourceErrorKind, ResourceRequest, Scheme};
pub use admit::{AdmitError, Admitted, Policy, ReplayGuard, SourceError, TokenInfo, TokenSource, admit};
pub use binding::{CertificateThumbprint, JwkThumbprint, SenderConstraint};
pub use dpop::{DpopRequest, NonceSource, ProofError, VerifiedProof};
/// The HTTP message signature rules this crate applies (re-exported for its callers).
pub use portcullis_httpsig as httpsig;
/// The `http` types signatures are read from.
pub use portcullis_httpsig::http;
pub use signature::{ClientKeys, ClientSigning, RequestBody, SignatureCheck, SignedBy};

/// Constant-time equality (for values that may be secrets, and cheap for public ones).
pub fn secure_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The DPoP proof algorithms (RFC 9449 §7.1 `algs`): the FAPI 2.0 ones (SP 5.4.1).
pub const DPOP_ALGS: &str = "PS256 ES256 EdDSA Ed25519";
