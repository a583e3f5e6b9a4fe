//! What an access token is bound to (RFC 9449 §6, RFC 8705 §3), as parsed values.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether `s` is a base64url SHA-256 digest without padding (43 characters).
pub fn is_sha256_b64url(s: &str) -> bool {
    s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A string newtype for a base64url SHA-256 digest (43 characters): `parse`, `from_trusted`,
/// `as_str`, constant-time `matches`. Used here and by Portcullis core (`PkceChallenge`).
#[macro_export]
macro_rules! digest_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A well-formed value (base64url SHA-256, 43 characters), or `None`.
            pub fn parse(s: &str) -> Option<Self> {
                $crate::binding::is_sha256_b64url(s).then(|| Self(s.to_owned()))
            }

            /// A value computed here or stored after parsing.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Constant-time equality.
            pub fn matches(&self, other: &Self) -> bool {
                $crate::secure_eq(self.0.as_bytes(), other.0.as_bytes())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

crate::digest_newtype!(
    /// RFC 7638 JWK SHA-256 thumbprint: what a DPoP-bound token or code is bound to (RFC 9449
    /// §6.1 `jkt`, §10 `dpop_jkt`).
    JwkThumbprint
);

crate::digest_newtype!(
    /// RFC 8705 §3.1 `x5t#S256`: the SHA-256 of a client certificate's DER, what a
    /// certificate-bound token is bound to.
    CertificateThumbprint
);

/// The sender constraint of an access token: `token_type`, `cnf` and every resource check come
/// from this value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SenderConstraint {
    Dpop { jkt: JwkThumbprint },
    Mtls { x5t_s256: CertificateThumbprint },
}

impl SenderConstraint {
    /// RFC 9449 §5 / RFC 8705 §3: `DPoP` for a DPoP-bound token, `Bearer` for a
    /// certificate-bound one.
    pub fn token_type(&self) -> &'static str {
        match self {
            Self::Dpop { .. } => "DPoP",
            Self::Mtls { .. } => "Bearer",
        }
    }

    /// RFC 7800 `cnf`: `{"jkt": ...}` (RFC 9449 §6.1) or `{"x5t#S256": ...}` (RFC 8705 §3.1).
    pub fn cnf(&self) -> Value {
        match self {
            Self::Dpop { jkt } => serde_json::json!({ "jkt": jkt.as_str() }),
            Self::Mtls { x5t_s256 } => serde_json::json!({ "x5t#S256": x5t_s256.as_str() }),
        }
    }

    /// RFC 7800 `cnf` back from an introspection response or a JWT access token: exactly one
    /// well-formed member.
    pub fn from_cnf(cnf: &Value) -> Option<Self> {
        let obj = cnf.as_object()?;
        match (obj.get("jkt"), obj.get("x5t#S256")) {
            (Some(Value::String(j)), None) => JwkThumbprint::parse(j).map(|jkt| Self::Dpop { jkt }),
            (None, Some(Value::String(x))) => CertificateThumbprint::parse(x).map(|x5t_s256| Self::Mtls { x5t_s256 }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_strictly() {
        let good = "a".repeat(43);
        assert!(JwkThumbprint::parse(&good).is_some());
        assert!(JwkThumbprint::parse(&"a".repeat(42)).is_none());
        assert!(JwkThumbprint::parse(&format!("{}=", "a".repeat(42))).is_none());
        assert!(CertificateThumbprint::parse(&format!("{}+", "a".repeat(42))).is_none());
    }

    #[test]
    fn cnf_round_trips() {
        let d = SenderConstraint::Dpop {
            jkt: JwkThumbprint::parse(&"a".repeat(43)).unwrap(),
        };
        let m = SenderConstraint::Mtls {
            x5t_s256: CertificateThumbprint::parse(&"b".repeat(43)).unwrap(),
        };
        for c in [d, m] {
            assert_eq!(SenderConstraint::from_cnf(&c.cnf()), Some(c));
        }
        let both = serde_json::json!({"jkt": "a".repeat(43), "x5t#S256": "b".repeat(43)});
        assert_eq!(SenderConstraint::from_cnf(&both), None);
        assert_eq!(SenderConstraint::from_cnf(&serde_json::json!({"jkt": "short"})), None);
    }
}
