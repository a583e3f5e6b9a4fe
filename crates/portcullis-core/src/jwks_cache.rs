//! The cache of clients' `jwks_uri` documents (RFC 7591 §2, SP 5.3.2.1-6). A client assertion
//! is looked up before the client is authenticated, so an attacker chooses how often this is
//! asked: every fetch of one URI is coalesced into one, a forced refresh for an unknown `kid`
//! happens at most once per interval, and unknown kids are remembered as misses until the next
//! allowed refresh (issue 13 item 3).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use portcullis_jose::Jwks;
use serde_json::Value;

use crate::error::{OAuthError, OAuthResult};
use crate::sync::lock;

/// Fetches a client's `jwks_uri` (https only, time-outs and a size cap are the implementer's
/// duty, AS-SP-01/05).
#[async_trait]
pub trait JwksFetcher: Send + Sync + 'static {
    async fn fetch(&self, uri: &str) -> Result<Value, String>;
}

/// A fetcher for deployments without outbound HTTP: every `jwks_uri` fails.
pub struct NoFetcher;

#[async_trait]
impl JwksFetcher for NoFetcher {
    async fn fetch(&self, _uri: &str) -> Result<Value, String> {
        Err("fetching jwks_uri is not available".into())
    }
}

/// How long a fetched document is used before it is fetched again.
pub const JWKS_CACHE_TTL: i64 = 300;
/// After a failed fetch, the URI is not asked again for this long (every request fails fast).
pub const FAILED_FETCH_BACKOFF: i64 = 10;
/// The most URIs kept; past it the least recently fetched entry makes room.
const MAX_ENTRIES: usize = 10_000;
/// The most unknown kids remembered per URI until the next refresh.
const MAX_MISSES: usize = 256;

/// What a request for a key that the cached set lacks gets.
pub enum Refreshed {
    /// A newer set (fetched now, or by a concurrent request meanwhile).
    Newer(Arc<Jwks>),
    /// No newer set may be fetched yet: the kid is a known miss.
    NotYet,
}

#[derive(Default)]
pub struct RemoteJwksCache {
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

#[derive(Default)]
struct Entry {
    /// Held across a fetch: concurrent requests for one URI wait for that one fetch.
    state: tokio::sync::Mutex<EntryState>,
}

#[derive(Default)]
struct EntryState {
    jwks: Option<Arc<Jwks>>,
    fetched_at: i64,
    failed_at: Option<i64>,
    last_forced: Option<i64>,
    /// Unknown kids, with when each was found missing: a miss counts only within the
    /// refresh interval it was found in.
    misses: HashMap<String, i64>,
}

impl RemoteJwksCache {
    /// The document behind `uri`: cached while fresh, otherwise fetched once for everyone
    /// waiting.
    pub async fn get(&self, uri: &str, now: i64, fetcher: &dyn JwksFetcher) -> OAuthResult<Arc<Jwks>> {
        let entry = self.entry(uri);
        let mut st = entry.state.lock().await;
        if let Some(j) = &st.jwks
            && now - st.fetched_at < JWKS_CACHE_TTL
        {
            return Ok(j.clone());
        }
        fetch_into(&mut st, uri, now, fetcher).await
    }

    /// Called when `seen` (the set a signature was checked against) has no key for `miss`
    /// (a kid, or the algorithm when the JWS names no kid): at most one forced refresh per
    /// `interval` seconds for this URI.
    pub async fn refresh(
        &self,
        uri: &str,
        seen: &Arc<Jwks>,
        miss: &str,
        now: i64,
        interval: i64,
        fetcher: &dyn JwksFetcher,
    ) -> OAuthResult<Refreshed> {
        let entry = self.entry(uri);
        let mut st = entry.state.lock().await;
        if let Some(current) = &st.jwks
            && !Arc::ptr_eq(current, seen)
        {
            return Ok(Refreshed::Newer(current.clone()));
        }
        let allowed = st.last_forced.is_none_or(|t| now - t >= interval);
        let known_miss = st.misses.get(miss).is_some_and(|at| now - at < interval);
        if !allowed || known_miss {
            remember(&mut st, miss, now);
            return Ok(Refreshed::NotYet);
        }
        st.last_forced = Some(now);
        let fresh = fetch_into(&mut st, uri, now, fetcher).await?;
        Ok(Refreshed::Newer(fresh))
    }

    /// Remembers that the set fetched for `uri` lacks a key for `miss` (so it is not fetched for
    /// again within the interval).
    pub async fn remember_miss(&self, uri: &str, miss: &str, now: i64) {
        let entry = self.entry(uri);
        let mut st = entry.state.lock().await;
        remember(&mut st, miss, now);
    }

    fn entry(&self, uri: &str) -> Arc<Entry> {
        let mut map = lock(&self.entries);
        if let Some(e) = map.get(uri) {
            return e.clone();
        }
        if map.len() >= MAX_ENTRIES {
            // make room: drop an entry nobody is using right now (never clear them all)
            if let Some(k) = map
                .iter()
                .find(|(_, e)| Arc::strong_count(e) == 1)
                .map(|(k, _)| k.clone())
            {
                map.remove(&k);
            }
        }
        let e = Arc::new(Entry::default());
        map.insert(uri.to_owned(), e.clone());
        e
    }
}

fn remember(st: &mut EntryState, miss: &str, now: i64) {
    if st.misses.len() >= MAX_MISSES && !st.misses.contains_key(miss) {
        return;
    }
    st.misses.entry(miss.to_owned()).or_insert(now);
}

async fn fetch_into(st: &mut EntryState, uri: &str, now: i64, fetcher: &dyn JwksFetcher) -> OAuthResult<Arc<Jwks>> {
    if st.failed_at.is_some_and(|t| now - t < FAILED_FETCH_BACKOFF) {
        return Err(unusable("an earlier fetch failed moments ago".into()));
    }
    let fetched = match fetcher.fetch(uri).await {
        Ok(value) => Jwks::from_json(&value).map_err(|e| format!("no usable JWK Set: {e}")),
        Err(e) => Err(e),
    };
    match fetched {
        Ok(jwks) => {
            let jwks = Arc::new(jwks);
            st.jwks = Some(jwks.clone());
            st.fetched_at = now;
            st.failed_at = None;
            st.misses.clear();
            Ok(jwks)
        }
        Err(detail) => {
            st.failed_at = Some(now);
            Err(unusable(detail))
        }
    }
}

/// One answer for every way a `jwks_uri` can fail (unreachable, refused address, not JSON, no
/// usable keys), so that the answer maps nothing behind it (issue 13 item 9); the cause goes
/// to the log only.
fn unusable(detail: String) -> OAuthError {
    OAuthError::invalid_client("the client's jwks_uri could not be used").with_detail(detail)
}
