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
    ignored: Vec<String>,
}

struct RingKey {
    key: SigningKey,
    created_at: i64,
    retired_at: Option<i64>,
    /// The one key that signs for its algorithm.
    active: bool,
}

impl KeyRing {
    /// Builds the ring from stored keys. Keys retired more than `grace` seconds before `now` are
    /// left out of the JWKS.
    ///
    /// Deterministic whatever order the keys come in, so that every server reading one
    /// database signs with the same key and publishes the same JWK Set (issue 13 item 17): if
    /// two unretired keys of one algorithm were ever stored, the oldest (then the smallest
    /// `kid`) signs, the others are only published, and [`KeyRing::ignored`] names them.
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
                active: false,
            });
        }
        // oldest first to elect the active keys ...
        keys.sort_by(|a, b| (a.created_at, a.key.kid()).cmp(&(b.created_at, b.key.kid())));
        let mut ignored = Vec::new();
        for i in 0..keys.len() {
            if keys[i].retired_at.is_some() {
                continue;
            }
            let family = keys[i].key.algorithm();
            if keys[..i]
                .iter()
                .any(|k| k.active && k.key.algorithm().same_family(family))
            {
                ignored.push(keys[i].key.kid().to_owned());
            } else {
                keys[i].active = true;
            }
        }
        // ... and newest first in the JWK Set
        keys.reverse();
        let jwks = json!({ "keys": keys.iter().map(|k| k.key.public_jwk().to_json()).collect::<Vec<_>>() });
        Ok(Self { keys, jwks, ignored })
    }

    /// The current key for `alg` (either name of EdDSA finds the Ed25519 key).
    pub fn active(&self, alg: Algorithm) -> Option<&SigningKey> {
        self.keys
            .iter()
            .find(|k| k.active && k.key.algorithm().same_family(alg))
            .map(|k| &k.key)
    }

    /// Unretired keys that do not sign because an older key of their algorithm does (the
    /// trace of two servers that both created keys; see [`KeyRing::from_stored`]).
    pub fn ignored(&self) -> &[String] {
        &self.ignored
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13 item 17: two unretired keys for one algorithm (two servers that both created
    /// keys) give the same ring whatever order they are read in: the oldest signs, the other is
    /// named as ignored, and the JWK Set is identical.
    #[test]
    fn two_active_keys_for_one_algorithm_resolve_deterministically() {
        let older = generate_stored_key(Algorithm::Es256, 1000).unwrap();
        let newer = generate_stored_key(Algorithm::Es256, 1001).unwrap();
        let ed = generate_stored_key(Algorithm::EdDsa, 1001).unwrap();
        let a = KeyRing::from_stored(&[older.clone(), newer.clone(), ed.clone()], 2000, 600).unwrap();
        let b = KeyRing::from_stored(&[ed.clone(), newer.clone(), older.clone()], 2000, 600).unwrap();
        for ring in [&a, &b] {
            assert_eq!(
                ring.active(Algorithm::Es256).unwrap().kid(),
                older.kid,
                "the oldest signs"
            );
            assert_eq!(ring.active(Algorithm::EdDsa).unwrap().kid(), ed.kid);
            assert_eq!(ring.ignored(), std::slice::from_ref(&newer.kid));
        }
        assert_eq!(a.jwks(), b.jwks());
        // created in the same second: the smaller kid signs, in any order
        let mut twins = [
            generate_stored_key(Algorithm::Es256, 1000).unwrap(),
            generate_stored_key(Algorithm::Es256, 1000).unwrap(),
        ];
        let first = twins.iter().map(|k| k.kid.clone()).min().unwrap();
        let x = KeyRing::from_stored(&twins, 2000, 600).unwrap();
        twins.reverse();
        let y = KeyRing::from_stored(&twins, 2000, 600).unwrap();
        assert_eq!(x.active(Algorithm::Es256).unwrap().kid(), first);
        assert_eq!(y.active(Algorithm::Es256).unwrap().kid(), first);
        assert_eq!(x.jwks(), y.jwks());
    }
}
