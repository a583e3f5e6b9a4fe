/// Why a JOSE object or key was refused. Messages are safe to show to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoseError {
    #[error("malformed JWS: {0}")]
    Malformed(&'static str),
    #[error("unsupported signing algorithm {0:?} (only PS256, ES256, EdDSA and Ed25519 are allowed)")]
    UnsupportedAlgorithm(String),
    #[error("signature verification failed")]
    BadSignature,
    #[error("invalid JWK: {0}")]
    InvalidKey(&'static str),
    #[error("no key matches the JWS header (kid and algorithm)")]
    NoMatchingKey,
    #[error("signing failed")]
    SigningFailed,
}
