//! The server's signing keys: one active key per algorithm, earlier keys still published until
//! everything they signed has expired.

use portcullis_jose::{Algorithm, JoseError, SigningKey};
use serde_json::{Value, json};

use crate::model::StoredKey;

/// The algorithms the server signs with, one key each (INTERFACE.md "Defaults").
pub const SERVER_ALGORITHMS: [Algorithm; 3] = [Algorithm::Es256, Algorithm::Ps256, Algorithm::EdDsa];

pub struct KeyRing {
    keys: Vec<RingKey>,
    jwks: Value,
}

struct RingKey {
    key: SigningKey,
    created_at: i64,
    retired_at: Option<i64>,
}

impl KeyRing {
    /// Builds the ring from stored keys. Keys retired more than `grace` seconds before `now` are
    /// left out of the JWKS.
    pub fn from_stored(stored: &[StoredKey], now: i64, grace: i64) -> Result<Self, JoseError> {
        let mut keys = Vec::with_capacity(stored.len());
        for s in stored {
            if s.retired_at.is_some_and(|r| r + grace < now) {
                continue;
            }
            keys.push(RingKey {
                key: SigningKey::from_pkcs8(s.alg, &s.pkcs8, Some(s.kid.clone()))?,
                created_at: s.created_at,
                retired_at: s.retired_at,
            });
        }
        // newest first, so `active` finds the current key first
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        let jwks = json!({ "keys": keys.iter().map(|k| k.key.public_jwk().to_json()).collect::<Vec<_>>() });
        Ok(Self { keys, jwks })
    }

    /// The current key for `alg` (either name of EdDSA finds the Ed25519 key).
    pub fn active(&self, alg: Algorithm) -> Option<&SigningKey> {
        self.keys
            .iter()
            .find(|k| k.retired_at.is_none() && k.key.algorithm().same_family(alg))
            .map(|k| &k.key)
    }

    /// The published JWK Set: public parts only (AS-SP-21).
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// Which algorithms lack an active key.
    pub fn missing(&self) -> Vec<Algorithm> {
        SERVER_ALGORITHMS
            .into_iter()
            .filter(|a| self.active(*a).is_none())
            .collect()
    }

    pub fn describe(&self) -> Vec<(String, Algorithm, i64, Option<i64>)> {
        self.keys
            .iter()
            .map(|k| (k.key.kid().to_owned(), k.key.algorithm(), k.created_at, k.retired_at))
            .collect()
    }
}

/// A new key to persist.
pub fn generate_stored_key(alg: Algorithm, now: i64) -> Result<StoredKey, JoseError> {
    let key = SigningKey::generate(alg)?;
    Ok(StoredKey {
        kid: key.kid().to_owned(),
        alg,
        pkcs8: key.pkcs8().to_vec(),
        created_at: now,
        retired_at: None,
    })
}
