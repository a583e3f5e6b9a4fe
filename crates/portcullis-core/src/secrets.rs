//! Server secrets that rotate (issue 13 item 14): the DPoP nonce secret and the CSRF secret.
//! Each period has its own random secret, created by the first node that needs it and read by
//! every other (`Store::get_or_create_secret`, first writer wins), so nodes agree without talking
//! to each other. The previous period's secret is still accepted, so nothing minted just before
//! a rotation is refused just after it.

use std::sync::RwLock;

use aws_lc_rs::hmac;

use crate::error::OAuthResult;
use crate::random::random_bytes;
use crate::store::Store;

/// How long one secret signs before the next one takes over (a day).
pub const SECRET_ROTATION_PERIOD: i64 = 86_400;

/// A secret per period: the current one signs, the current and the previous one verify.
pub struct RotatingKey {
    name: &'static str,
    period: i64,
    /// Newest first: (period number, key); at most two.
    keys: RwLock<Vec<(i64, hmac::Key)>>,
}

impl RotatingKey {
    pub fn new(name: &'static str, period: i64) -> Self {
        Self {
            name,
            period,
            keys: RwLock::new(Vec::new()),
        }
    }

    /// A key ring from fixed secrets (tests, and embedders without a store): the first signs.
    pub fn fixed(name: &'static str, secret: &[u8]) -> Self {
        let k = Self::new(name, i64::MAX);
        k.install(vec![(0, hmac::Key::new(hmac::HMAC_SHA256, secret))]);
        k
    }

    /// Loads (creating if needed) the secrets of the current and the previous period. Called at
    /// start and then periodically; cheap when nothing changed.
    pub async fn refresh(&self, store: &dyn Store, now: i64) -> OAuthResult<()> {
        let period = now.div_euclid(self.period);
        if self.current_period() == Some(period) {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(2);
        for p in [period, period - 1] {
            let name = format!("{}:{p}", self.name);
            // the previous period's secret is read, never created afresh (a new one would
            // verify nothing that was minted)
            let secret = if p == period {
                Some(store.get_or_create_secret(&name, &random_bytes::<32>()).await?)
            } else {
                store.get_secret(&name).await?
            };
            if let Some(secret) = secret {
                keys.push((p, hmac::Key::new(hmac::HMAC_SHA256, &secret)));
            }
        }
        self.install(keys);
        // two periods back verifies nothing any more
        store.delete_secret(&format!("{}:{}", self.name, period - 2)).await?;
        Ok(())
    }

    fn install(&self, keys: Vec<(i64, hmac::Key)>) {
        match self.keys.write() {
            Ok(mut k) => *k = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
    }

    fn current_period(&self) -> Option<i64> {
        self.read(|keys| keys.first().map(|(p, _)| *p))
    }

    fn read<T>(&self, f: impl FnOnce(&[(i64, hmac::Key)]) -> T) -> T {
        match self.keys.read() {
            Ok(k) => f(&k),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// The tag of `message` under the current key (empty if no key is loaded yet).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.read(|keys| {
            keys.first()
                .map(|(_, k)| hmac::sign(k, message).as_ref().to_vec())
                .unwrap_or_default()
        })
    }

    /// Whether `tag` is the tag of `message` under the current or the previous key (constant
    /// time per key).
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        self.read(|keys| keys.iter().any(|(_, k)| hmac::verify(k, message, tag).is_ok()))
    }

    /// Every loaded key's tag of `message`, newest first.
    pub fn tags(&self, message: &[u8]) -> Vec<Vec<u8>> {
        self.read(|keys| {
            keys.iter()
                .map(|(_, k)| hmac::sign(k, message).as_ref().to_vec())
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    /// Issue 13 item 14: a tag made in one period verifies in the next, not in the one after;
    /// two nodes on one store use the same secrets.
    #[tokio::test]
    async fn rotation_keeps_the_previous_secret_for_one_period() {
        let store = MemoryStore::new();
        let a = RotatingKey::new("csrf", 100);
        let b = RotatingKey::new("csrf", 100);
        a.refresh(&store, 1_000).await.unwrap();
        b.refresh(&store, 1_050).await.unwrap();
        let tag = a.sign(b"m");
        assert!(b.verify(b"m", &tag), "nodes agree");
        assert!(!a.verify(b"n", &tag));
        a.refresh(&store, 1_100).await.unwrap();
        assert!(a.verify(b"m", &tag), "the previous period's tag still verifies");
        assert_ne!(a.sign(b"m"), tag, "a new secret signs");
        a.refresh(&store, 1_200).await.unwrap();
        assert!(!a.verify(b"m", &tag), "two periods later it does not");
    }
}
