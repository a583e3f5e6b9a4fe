//! Credentials: random values and their stored hashes.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use portcullis_jose::{b64url, sha256_b64url};

/// SP 5.4.1-4 asks for 128 bits; the conformance suite estimates entropy from the string, and
/// 32 random bytes (43 base64url characters) always pass it (AS-SP-41/66/74).
pub const CREDENTIAL_BYTES: usize = 32;

/// A new random credential: 32 bytes from the system CSPRNG, base64url (RFC 6749 A.12 safe).
pub fn credential() -> String {
    b64url(random_bytes::<CREDENTIAL_BYTES>())
}

/// A new client_id: a credential that starts with a letter or digit, so that it can never be
/// read as an option on a command line (`portcullis client show -x...`).
pub fn client_id() -> String {
    loop {
        let id = credential();
        if id.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric) {
            return id;
        }
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The system RNG failing is not recoverable and never caused by input.
    SystemRandom::new()
        .fill(&mut buf)
        .expect("system random number generator failed");
    buf
}

/// How a credential is stored: SHA-256, base64url. Credentials carry 256 bits, so an unsalted
/// hash is enough to make a database leak useless.
pub fn hash(credential: &str) -> String {
    sha256_b64url(credential.as_bytes())
}

/// Constant-time equality for secrets.
pub fn secure_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    /// A client_id never starts with `-` (a command line would take it for an option).
    #[test]
    fn client_ids_start_with_a_letter_or_digit() {
        for _ in 0..2000 {
            let id = super::client_id();
            assert!(id.as_bytes()[0].is_ascii_alphanumeric(), "{id}");
            assert_eq!(id.len(), 43);
        }
    }
}
