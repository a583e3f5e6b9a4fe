//! Values that cross module boundaries, parsed once at the edge (parse, don't validate): a
//! function that takes a [`JwkThumbprint`] never has to ask whether it is well-formed.

pub use portcullis_resource::binding::{CertificateThumbprint, JwkThumbprint};

use crate::error::{OAuthError, OAuthResult};
use crate::random::{credential, hash, secure_eq};

portcullis_resource::digest_newtype!(
    /// RFC 7636 §4.2 S256 `code_challenge`: the base64url SHA-256 of the verifier (AS-SP-59).
    PkceChallenge
);

impl PkceChallenge {
    /// RFC 7636 §4.6: does `verifier` (already checked by [`is_code_verifier`]) hash to this
    /// challenge? Compared in constant time.
    pub fn is_met_by(&self, verifier: &str) -> bool {
        secure_eq(portcullis_jose::sha256_b64url(verifier).as_bytes(), self.0.as_bytes())
    }
}

/// RFC 7636 §4.1 unreserved characters: `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn is_pkce_value(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 §4.1: a verifier is 43 to 128 unreserved characters.
pub fn is_code_verifier(s: &str) -> bool {
    (43..=128).contains(&s.len()) && is_pkce_value(s)
}

/// RFC 9126 §2.2: the request_uri prefix.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// A request_uri this server issued (RFC 9126 §2.2): the prefix and a random credential. Only
/// its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUri(String);

impl RequestUri {
    /// A fresh one (RFC 9126 §2.2, AS-SP-41: unguessable).
    pub fn generate() -> Self {
        Self(format!("{REQUEST_URI_PREFIX}{}", credential()))
    }

    /// A request_uri as a client presents it: it must have this server's form.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(REQUEST_URI_PREFIX)?;
        (!rest.is_empty()
            && rest.len() <= 128
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key it is stored under.
    pub fn hash(&self) -> String {
        hash(&self.0)
    }
}

/// The longest client_id accepted in a request.
const MAX_CLIENT_ID_LEN: usize = 255;

/// A `client_id` as a request carries it (RFC 6749 §2.2): at most 255 visible ASCII
/// characters, so that it can be looked up, logged and echoed safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientId<'a>(&'a str);

impl<'a> ClientId<'a> {
    pub fn parse(s: &'a str) -> OAuthResult<Self> {
        if s.is_empty() || s.len() > MAX_CLIENT_ID_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(OAuthError::invalid_client(
                "client_id must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_strictly() {
        let good = "a".repeat(43);
        assert!(PkceChallenge::parse(&good).is_some());
        assert!(PkceChallenge::parse(&"a".repeat(42)).is_none());
        assert!(PkceChallenge::parse(&format!("{}=", "a".repeat(42))).is_none());
    }

    #[test]
    fn verifier_syntax() {
        let all = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
        assert!(is_code_verifier(all));
        assert!(is_code_verifier(&"a".repeat(43)));
        assert!(!is_code_verifier(&"a".repeat(42)));
        assert!(!is_code_verifier(&"a".repeat(129)));
        assert!(!is_code_verifier(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn pkce_challenge_is_met_by_its_verifier_only() {
        let verifier = "x".repeat(64);
        let c = PkceChallenge::parse(&portcullis_jose::sha256_b64url(&verifier)).unwrap();
        assert!(c.is_met_by(&verifier));
        assert!(!c.is_met_by(&"y".repeat(64)));
    }

    #[test]
    fn request_uris_have_our_form() {
        let r = RequestUri::generate();
        assert_eq!(RequestUri::parse(r.as_str()), Some(r.clone()));
        assert!(RequestUri::parse("urn:ietf:params:oauth:request_uri:").is_none());
        assert!(RequestUri::parse("https://evil.example/r").is_none());
        assert!(RequestUri::parse(&format!("{REQUEST_URI_PREFIX}a b")).is_none());
    }

    #[test]
    fn client_ids_are_bounded_and_printable() {
        assert!(ClientId::parse("abc").is_ok());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("a b").is_err());
        assert!(ClientId::parse(&"a".repeat(256)).is_err());
    }
}
