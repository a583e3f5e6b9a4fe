//! Encryption at rest of the server's signing private keys (issue 17 item 4; ROADMAP §1: "the
//! key ring with private keys encrypted at rest").
//!
//! AES-256-GCM (aws-lc-rs) under a key-encryption key (KEK) the operator supplies, or that the
//! server generates into its data dir for the zero-configuration start. Each key is sealed
//! with a fresh random 96-bit nonce and its `kid` as additional authenticated data, so a
//! sealed key moved to another row does not open. A sealed blob is
//! `"PCK1" || nonce (12) || ciphertext || tag (16)`; a PKCS#8 document is a DER SEQUENCE and
//! starts with 0x30, so the two cannot be confused (stores written before encryption hold
//! plain PKCS#8, sealed at the next start).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// The length of a key-encryption key: AES-256.
pub const KEK_LEN: usize = 32;

/// What a sealed blob starts with (version 1 of the format above).
const SEALED_PREFIX: &[u8; 4] = b"PCK1";

/// The key that seals and opens the stored signing keys. Never printed (no `Debug` of the
/// key material).
pub struct KeyEncryptionKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(..)")
    }
}

/// Why a sealed key did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyEncryptionError {
    /// The KEK is not 32 bytes.
    #[error("a key-encryption key is {KEK_LEN} bytes, not {0}")]
    KekLength(usize),
    /// Authentication failed: another KEK sealed it, or the blob (or its `kid`) was altered.
    #[error("the key {kid} does not decrypt with this key-encryption key")]
    Undecryptable { kid: String },
    /// Too short, or not in the sealed format.
    #[error("the key {kid} is not a sealed key")]
    Malformed { kid: String },
    /// The system random generator failed.
    #[error("no randomness for a nonce")]
    Random,
}

impl KeyEncryptionKey {
    /// The KEK from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyEncryptionError> {
        if bytes.len() != KEK_LEN {
            return Err(KeyEncryptionError::KekLength(bytes.len()));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| KeyEncryptionError::KekLength(bytes.len()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Fresh KEK bytes from the system random generator.
    pub fn generate_bytes() -> Result<[u8; KEK_LEN], KeyEncryptionError> {
        let mut bytes = [0u8; KEK_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| KeyEncryptionError::Random)?;
        Ok(bytes)
    }

    /// Seals `pkcs8` for the key `kid`.
    pub fn seal(&self, kid: &str, pkcs8: &[u8]) -> Result<Vec<u8>, KeyEncryptionError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyEncryptionError::Random)?;
        let mut in_out = pkcs8.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| KeyEncryptionError::Random)?;
        let mut blob = Vec::with_capacity(SEALED_PREFIX.len() + NONCE_LEN + in_out.len());
        blob.extend_from_slice(SEALED_PREFIX);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&in_out);
        Ok(blob)
    }

    /// Opens a blob sealed by [`KeyEncryptionKey::seal`] for `kid`: the PKCS#8 document.
    pub fn open(&self, kid: &str, blob: &[u8]) -> Result<Vec<u8>, KeyEncryptionError> {
        let malformed = || KeyEncryptionError::Malformed { kid: kid.to_owned() };
        let rest = blob.strip_prefix(SEALED_PREFIX.as_slice()).ok_or_else(malformed)?;
        if rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(malformed());
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| malformed())?;
        let mut in_out = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut in_out)
            .map_err(|_| KeyEncryptionError::Undecryptable { kid: kid.to_owned() })?;
        Ok(plain.to_vec())
    }
}

/// Whether a stored blob is sealed (else it is a plain PKCS#8 document from an older store).
pub fn is_sealed(blob: &[u8]) -> bool {
    blob.starts_with(SEALED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_what_does_not_open() {
        let kek = KeyEncryptionKey::from_bytes(&KeyEncryptionKey::generate_bytes().unwrap()).unwrap();
        let other = KeyEncryptionKey::from_bytes(&[7u8; KEK_LEN]).unwrap();
        let secret = b"\x30\x81\x87 a pkcs8 document";
        let a = kek.seal("k1", secret).unwrap();
        let b = kek.seal("k1", secret).unwrap();
        assert!(is_sealed(&a) && !is_sealed(secret));
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(
            !a.windows(secret.len()).any(|w| w == secret),
            "no plaintext in the blob"
        );
        assert_eq!(kek.open("k1", &a).unwrap(), secret);
        assert_eq!(
            other.open("k1", &a),
            Err(KeyEncryptionError::Undecryptable { kid: "k1".into() }),
            "another KEK"
        );
        assert!(
            matches!(kek.open("k2", &a), Err(KeyEncryptionError::Undecryptable { .. })),
            "the kid is authenticated"
        );
        let mut flipped = a.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(kek.open("k1", &flipped).is_err());
        assert!(matches!(
            kek.open("k1", secret),
            Err(KeyEncryptionError::Malformed { .. })
        ));
        assert!(matches!(
            kek.open("k1", b"PCK1short"),
            Err(KeyEncryptionError::Malformed { .. })
        ));
        assert!(matches!(
            KeyEncryptionKey::from_bytes(&[0; 16]),
            Err(KeyEncryptionError::KekLength(16))
        ));
        assert_eq!(format!("{kek:?}"), "KeyEncryptionKey(..)");
    }
}
