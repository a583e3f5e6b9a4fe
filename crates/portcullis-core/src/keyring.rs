//! The server's signing keys: one active key per algorithm, the next one published before it
//! signs (pre-publication), earlier keys still published until everything they signed has
//! expired.

use portcullis_jose::{Algorithm, JoseError, SigningKey};
use serde_json::{Value, json};

use crate::model::StoredKey;

/// The algorithms the server signs with, one key each (INTERFACE.md "Defaults").
pub const SERVER_ALGORITHMS: [Algorithm; 3] = [Algorithm::Es256, Algorithm::Ps256, Algorithm::EdDsa];

pub struct KeyRing {
    keys: Vec<RingKey>,
    jwks: Value,
    ignored: Vec<String>,
    /// When the ring was built (for [`KeyRing::missing`] and [`KeyRing::ignored`]).
    built_at: i64,
    grace: i64,
}

struct RingKey {
    key: SigningKey,
    created_at: i64,
    activates_at: i64,
    retired_at: Option<i64>,
}

impl RingKey {
    /// Signs (or would, but for an older key of its algorithm) at `now`: activated and not yet
    /// retired.
    fn current(&self, now: i64) -> bool {
        self.activates_at <= now && self.retired_at.is_none_or(|r| r > now)
    }
}

/// Where a key is in its life at some moment (`portcullis keys list`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Published, signing from its `activates_at` (pre-publication, issue 17 item 4).
    Next,
    /// The key that signs for its algorithm.
    Active,
    /// Current, but an older current key of its algorithm signs (see [`KeyRing::ignored`]).
    Published,
    /// Signs no more; published until what it signed has expired.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Published => "published",
            KeyState::Retired => "retired",
        }
    }
}

/// One key of the ring as `portcullis keys list` shows it.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: Algorithm,
    pub state: KeyState,
    pub created_at: i64,
    pub activates_at: i64,
    pub retired_at: Option<i64>,
    /// When it leaves the JWKS (and the store): `retired_at` plus the publication grace.
    pub removed_at: Option<i64>,
}

impl KeyRing {
    /// Builds the ring from stored keys, their private keys in the clear (the caller opens
    /// sealed ones, [`crate::key_encryption`]). Keys retired more than `grace` seconds before
    /// `now` are left out of the JWKS; every other key is published, keys that sign only
    /// later (pre-published by a rotation) included.
    ///
    /// Which key signs is decided at each signature from the time ([`KeyRing::active`]), so a
    /// pre-published key takes over at its `activates_at` on every server without a reload.
    /// Deterministic whatever order the keys come in, so that every server reading one
    /// database signs with the same key and publishes the same JWK Set (issue 13 item 17): if
    /// two current keys of one algorithm were ever stored, the oldest (then the smallest `kid`)
    /// signs, the others are only published, and [`KeyRing::ignored`] names them.
    pub fn from_stored(stored: &[StoredKey], now: i64, grace: i64) -> Result<Self, JoseError> {
        let mut keys = Vec::with_capacity(stored.len());
        for s in stored {
            if s.retired_at.is_some_and(|r| r + grace < now) {
                continue;
            }
            keys.push(RingKey {
                key: SigningKey::from_pkcs8(s.alg, &s.private_key, Some(s.kid.clone()))?,
                created_at: s.created_at,
                activates_at: s.activates_at,
                retired_at: s.retired_at,
            });
        }
        // oldest first: the order in which keys are elected ...
        keys.sort_by(|a, b| (a.created_at, a.key.kid()).cmp(&(b.created_at, b.key.kid())));
        let mut ring = Self {
            keys,
            jwks: Value::Null,
            ignored: Vec::new(),
            built_at: now,
            grace,
        };
        ring.ignored = ring
            .keys
            .iter()
            .filter(|k| k.current(now) && !ring.signs(k, now))
            .map(|k| k.key.kid().to_owned())
            .collect();
        // ... and newest first in the JWK Set
        ring.jwks = json!({ "keys": ring.keys.iter().rev().map(|k| k.key.public_jwk().to_json()).collect::<Vec<_>>() });
        Ok(ring)
    }

    /// The key that signs for `alg` at `now` (either name of EdDSA finds the Ed25519 key).
    pub fn active(&self, alg: Algorithm, now: i64) -> Option<&SigningKey> {
        self.elected(alg, now).map(|k| &k.key)
    }

    /// The oldest current key of `alg`'s family (`keys` is sorted oldest first).
    fn elected(&self, alg: Algorithm, now: i64) -> Option<&RingKey> {
        self.keys
            .iter()
            .find(|k| k.current(now) && k.key.algorithm().same_family(alg))
    }

    fn signs(&self, key: &RingKey, now: i64) -> bool {
        self.elected(key.key.algorithm(), now)
            .is_some_and(|e| std::ptr::eq(e, key))
    }

    /// Current keys that do not sign because an older key of their algorithm does (the trace
    /// of two servers that both created keys; see [`KeyRing::from_stored`]), when the ring was
    /// built.
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }

    /// The published JWK Set: public parts only (AS-SP-21).
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// Which algorithms lacked a signing key when the ring was built.
    pub fn missing(&self) -> Vec<Algorithm> {
        SERVER_ALGORITHMS
            .into_iter()
            .filter(|a| self.active(*a, self.built_at).is_none())
            .collect()
    }

    /// Every key of the ring, newest first, as it stands at `now`.
    pub fn describe(&self, now: i64) -> Vec<KeyInfo> {
        self.keys
            .iter()
            .rev()
            .map(|k| {
                let state = if k.activates_at > now && k.retired_at.is_none_or(|r| r > now) {
                    KeyState::Next
                } else if !k.current(now) {
                    KeyState::Retired
                } else if self.signs(k, now) {
                    KeyState::Active
                } else {
                    KeyState::Published
                };
                KeyInfo {
                    kid: k.key.kid().to_owned(),
                    alg: k.key.algorithm(),
                    state,
                    created_at: k.created_at,
                    activates_at: k.activates_at,
                    retired_at: k.retired_at,
                    removed_at: k.retired_at.map(|r| r + self.grace),
                }
            })
            .collect()
    }
}

/// A new key to persist, signing at once (`activates_at = now`).
pub fn generate_stored_key(alg: Algorithm, now: i64) -> Result<StoredKey, JoseError> {
    let key = SigningKey::generate(alg)?;
    Ok(StoredKey {
        kid: key.kid().to_owned(),
        alg,
        private_key: key.pkcs8().to_vec(),
        created_at: now,
        activates_at: now,
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
                ring.active(Algorithm::Es256, 2000).unwrap().kid(),
                older.kid,
                "the oldest signs"
            );
            assert_eq!(ring.active(Algorithm::EdDsa, 2000).unwrap().kid(), ed.kid);
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
        assert_eq!(x.active(Algorithm::Es256, 2000).unwrap().kid(), first);
        assert_eq!(y.active(Algorithm::Es256, 2000).unwrap().kid(), first);
        assert_eq!(x.jwks(), y.jwks());
    }

    /// Issue 17 item 4: a pre-published key is in the JWKS at once, signs only from its
    /// `activates_at`, and the key it replaces signs until then and stays published for the
    /// grace period; decided by the time of each signature, without a rebuild.
    #[test]
    fn pre_published_keys_sign_from_their_activation() {
        let mut old = generate_stored_key(Algorithm::Es256, 1000).unwrap();
        let mut next = generate_stored_key(Algorithm::Es256, 2000).unwrap();
        next.activates_at = 3000;
        old.retired_at = Some(3000);
        let ring = KeyRing::from_stored(&[old.clone(), next.clone()], 2000, 600).unwrap();
        assert_eq!(
            kids(ring.jwks()),
            vec![next.kid.clone(), old.kid.clone()],
            "both published, newest first"
        );
        assert!(!ring.missing().contains(&Algorithm::Es256) && ring.ignored().is_empty());
        assert_eq!(ring.active(Algorithm::Es256, 2999).unwrap().kid(), old.kid);
        assert_eq!(ring.active(Algorithm::Es256, 3000).unwrap().kid(), next.kid);
        let states = |now| ring.describe(now).iter().map(|k| k.state).collect::<Vec<_>>();
        assert_eq!(states(2999), vec![KeyState::Next, KeyState::Active]);
        assert_eq!(states(3000), vec![KeyState::Active, KeyState::Retired]);
        assert_eq!(ring.describe(3000)[1].removed_at, Some(3600));
        // past the grace the old key leaves the JWKS
        let later = KeyRing::from_stored(&[old, next.clone()], 3601, 600).unwrap();
        assert_eq!(kids(later.jwks()), vec![next.kid]);
    }

    fn kids(jwks: &Value) -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }
}
