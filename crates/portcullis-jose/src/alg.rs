use std::fmt;

use crate::JoseError;

/// A JWS algorithm FAPI 2.0 permits (SP 5.4.1-1.2, RFC 9864 for `Ed25519`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Ps256,
    Es256,
    /// `EdDSA` with an Ed25519 key (the only curve SP 5.4.1 allows).
    EdDsa,
    /// The fully-specified name for the same algorithm (RFC 9864).
    Ed25519,
}

impl Algorithm {
    /// Every algorithm, in the order they are advertised in metadata.
    pub const ALL: [Algorithm; 4] = [Algorithm::Ps256, Algorithm::Es256, Algorithm::EdDsa, Algorithm::Ed25519];

    /// Parses a JOSE `alg` value; anything outside the FAPI allow-list is refused (AS-SP-95/96).
    pub fn parse(name: &str) -> Result<Self, JoseError> {
        match name {
            "PS256" => Ok(Self::Ps256),
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            "Ed25519" => Ok(Self::Ed25519),
            other => Err(JoseError::UnsupportedAlgorithm(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Ed25519 => "Ed25519",
        }
    }

    /// The JWK `kty` this algorithm needs.
    pub fn key_type(self) -> &'static str {
        match self {
            Self::Ps256 => "RSA",
            Self::Es256 => "EC",
            Self::EdDsa | Self::Ed25519 => "OKP",
        }
    }

    /// Two names for one algorithm (`EdDSA` and `Ed25519`) count as the same key family.
    pub fn same_family(self, other: Algorithm) -> bool {
        self.key_type() == other.key_type()
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
