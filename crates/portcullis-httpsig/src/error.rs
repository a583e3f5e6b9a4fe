use portcullis_jose::JoseError;

/// Why an HTTP message signature or a Content-Digest was refused, or could not be made.
///
/// Every message names the rule that failed and is safe to return to the sender (HS 5.3.1.2-3
/// answers a missing or invalid signature with HTTP 401; the description may carry this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigError {
    // --- Framing: the Signature-Input / Signature / Content-Digest fields themselves ---
    /// A structured field (RFC 8941) or one of its members does not have the expected shape.
    #[error("malformed {field}: {detail}")]
    Malformed { field: &'static str, detail: String },
    /// The message carries no field of this name.
    #[error("the message has no {0} field")]
    MissingField(&'static str),
    /// RFC 9421 §4.1/§4.2: a label appears twice within Signature-Input or Signature.
    #[error("the label {label:?} appears more than once in {field}")]
    DuplicateLabel { field: &'static str, label: String },
    /// RFC 9421 §4.2: a Signature-Input member without its Signature member.
    #[error("Signature-Input label {0:?} has no matching Signature member")]
    SignatureMissingForLabel(String),
    /// RFC 9421 §4.1: a Signature member without its Signature-Input member.
    #[error("Signature label {0:?} has no matching Signature-Input member")]
    InputMissingForLabel(String),

    // --- Profile (FAPI HS) ---
    /// HS 5.3.1.2-4 / 5.3.2.2: no signature carries the expected `tag`.
    #[error("no signature has tag=\"{0}\"")]
    NoTaggedSignature(&'static str),
    /// More than one signature carries the profile `tag`, so which one counts is ambiguous.
    #[error("{count} signatures have tag=\"{tag}\"; exactly one is accepted")]
    AmbiguousTag { tag: &'static str, count: usize },
    /// HS 5.3.1.2-5/-7/-8, 5.3.2.2: a component the profile requires is not covered.
    #[error("the signature does not cover {0}")]
    NotCovered(String),
    /// HS 5.3.1.2-6: `created` is required.
    #[error("the signature has no created parameter")]
    CreatedMissing,
    /// HS 5.3.1.2-6: `created` older than the accepted window.
    #[error("created is {age} s old; at most {max} s accepted")]
    CreatedTooOld { age: i64, max: i64 },
    /// HS 5.3.1.2-6: `created` too far in the future.
    #[error("created is {ahead} s in the future; at most {max} s accepted")]
    CreatedInFuture { ahead: i64, max: i64 },
    /// RFC 9421 §2.3, §3.2 step 8: `expires` has passed.
    #[error("the signature expired {0} s ago")]
    Expired(i64),
    /// The profile needs `keyid` to find the key (HS 5.3.1.2-2).
    #[error("the signature has no keyid parameter")]
    KeyIdMissing,
    /// `keyid` names no key the verifier knows.
    #[error("unknown keyid {0:?}")]
    UnknownKeyId(String),
    /// SP 5.4.1: only `ecdsa-p256-sha256` and `ed25519` (or none, so the key decides) are accepted.
    #[error("signature algorithm {0:?} is not allowed (only ecdsa-p256-sha256 and ed25519, or alg absent)")]
    AlgorithmNotAllowed(String),
    /// RFC 9421 §3.2 step 6: the `alg` parameter must fit the key.
    #[error("alg={alg:?} does not fit the {key} key")]
    AlgorithmKeyMismatch { alg: String, key: &'static str },
    /// The key cannot be used with any FAPI algorithm.
    #[error("the key cannot verify any FAPI 2.0 signature algorithm")]
    UnusableKey,

    // --- Components (RFC 9421 §2) ---
    /// A covered component identifier is not understood or not allowed here.
    #[error("invalid component {component}: {reason}")]
    InvalidComponent { component: String, reason: String },
    /// RFC 9421 §2.5: a covered component is absent from the message.
    #[error("the message lacks the covered component {0}")]
    ComponentMissing(String),
    /// RFC 9421 §2.5: the same component identifier listed twice.
    #[error("the component {0} is covered more than once")]
    DuplicateComponent(String),
    /// The target URI is not an absolute http(s) URI we can derive components from.
    #[error("invalid target URI: {0}")]
    InvalidTargetUri(&'static str),

    // --- Content-Digest (RFC 9530) ---
    /// RFC 9530 §2: no digest algorithm we know (sha-256, sha-512) is present.
    #[error("Content-Digest has no sha-256 or sha-512 member")]
    DigestNoKnownAlgorithm,
    /// RFC 9530 §2: the digest does not match the received body.
    #[error("Content-Digest {0} does not match the body")]
    DigestMismatch(&'static str),

    // --- Cryptography ---
    /// RFC 9421 §3.2 step 9: the signature does not verify over the signature base.
    #[error("the signature does not verify")]
    BadSignature,
    /// Signing failed or the key cannot produce this algorithm.
    #[error("signing failed: {0}")]
    Signing(JoseError),
}

impl SigError {
    pub(crate) fn malformed(field: &'static str, detail: impl Into<String>) -> Self {
        Self::Malformed {
            field,
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid_component(component: &impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Self::InvalidComponent {
            component: component.to_string(),
            reason: reason.into(),
        }
    }
}
