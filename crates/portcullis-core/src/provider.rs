//! `Provider`: the authorization server's protocol engine. It is given a `Store`, a `Clock`,
//! the key ring and a JWKS fetcher, takes typed requests and returns typed outcomes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use portcullis_jose::Jwks;
use serde_json::Value;

use crate::clock::Clock;
use crate::dpop::{DpopNonces, DpopRequest, VerifiedProof, check_proof};
use crate::error::{OAuthError, OAuthResult};
use crate::jwks_cache::RemoteJwksCache;
use crate::keyring::KeyRing;
use crate::model::Client;
use crate::request::{DirectRequest, Endpoint};
use crate::settings::Settings;
use crate::store::Store;

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

/// A client with its keys parsed once (no key parsing on the hot path).
pub struct ParsedClient {
    pub client: Client,
    pub inline_jwks: Option<Jwks>,
}

const CACHE_CAPACITY: usize = 10_000;

pub struct Provider {
    pub(crate) settings: Settings,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    keys: RwLock<Arc<KeyRing>>,
    pub(crate) nonces: DpopNonces,
    pub(crate) fetcher: Arc<dyn JwksFetcher>,
    clients: Mutex<HashMap<String, Arc<ParsedClient>>>,
    pub(crate) remote_jwks: RemoteJwksCache,
}

impl Provider {
    pub fn new(
        settings: Settings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        keys: KeyRing,
        nonces: DpopNonces,
        fetcher: Arc<dyn JwksFetcher>,
    ) -> Self {
        Self {
            settings,
            store,
            clock,
            keys: RwLock::new(Arc::new(keys)),
            nonces,
            fetcher,
            clients: Mutex::new(HashMap::new()),
            remote_jwks: RemoteJwksCache::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn keys(&self) -> Arc<KeyRing> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a reloaded key ring (after `keys rotate`).
    pub fn replace_keys(&self, ring: KeyRing) {
        let ring = Arc::new(ring);
        match self.keys.write() {
            Ok(mut k) => *k = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
    }

    /// The form parameters of a request, checked (count, duplicates) against the configured
    /// limit (issue 13 item 1).
    pub fn params<'a>(&self, pairs: &'a [(String, String)]) -> OAuthResult<Params<'a>> {
        Params::new(pairs, self.settings.max_form_params)
    }

    /// Loads the current and previous period's DPoP nonce secrets (at start, then periodically).
    pub async fn refresh_secrets(&self) -> OAuthResult<()> {
        self.nonces.refresh(self.store.as_ref(), self.now()).await
    }

    /// The current DPoP nonce.
    pub fn current_dpop_nonce(&self) -> String {
        self.nonces.current(self.now())
    }

    /// A client by id, with its inline JWKS parsed. The row is read every time (so a removal or
    /// an update, on any node, takes effect at once); only the parsed keys are cached, and
    /// reused while the stored client is unchanged.
    pub async fn client(&self, client_id: &str) -> OAuthResult<Option<Arc<ParsedClient>>> {
        let Some(client) = self.store.get_client(client_id).await? else {
            lock(&self.clients).remove(client_id);
            return Ok(None);
        };
        if let Some(cached) = lock(&self.clients).get(client_id)
            && cached.client == client
        {
            return Ok(Some(cached.clone()));
        }
        let inline_jwks = match &client.metadata.jwks {
            Some(v) => {
                Some(Jwks::from_json(v).map_err(|e| OAuthError::server_error(format!("stored jwks unusable: {e}")))?)
            }
            None => None,
        };
        let parsed = Arc::new(ParsedClient { client, inline_jwks });
        let mut cache = lock(&self.clients);
        if cache.len() >= CACHE_CAPACITY
            && let Some(k) = cache.keys().next().cloned()
        {
            // make room for one (never drop every client's parsed keys at once)
            cache.remove(&k);
        }
        cache.insert(client_id.to_owned(), parsed.clone());
        Ok(Some(parsed))
    }

    /// Drops a client from the cache after it changed.
    pub fn forget_client(&self, client_id: &str) {
        lock(&self.clients).remove(client_id);
    }

    /// Every check of a proof but replay; touches no storage (RFC 9449 §4.3, §8).
    pub(crate) fn check_dpop(&self, req: &DpopRequest<'_>) -> OAuthResult<VerifiedProof> {
        check_proof(req, self.now(), &self.nonces, self.settings.dpop_nonce_required)
    }

    /// The proof of a POST to a client-authenticated endpoint, if one was sent. RFC 9449 §8: the
    /// proof and its nonce are checked before client authentication spends the client
    /// assertion, so that a retry with the server's nonce has lost nothing.
    pub(crate) fn precheck_dpop(&self, req: &DirectRequest, endpoint: Endpoint) -> OAuthResult<Option<VerifiedProof>> {
        if req.dpop.is_empty() {
            return Ok(None);
        }
        let headers: Vec<&str> = req.dpop.iter().map(String::as_str).collect();
        self.check_dpop(&DpopRequest {
            headers: &headers,
            method: req.method.as_str(),
            url: self.settings.url(req.listener, endpoint),
            access_token: None,
        })
        .map(Some)
    }

    /// RFC 9449 §11.1: a proof's `jti` is good once.
    pub(crate) async fn record_dpop(&self, proof: &VerifiedProof) -> OAuthResult<()> {
        if !self
            .store
            .remember_once(&proof.replay_key, proof.replay_until, self.now())
            .await?
        {
            return Err(OAuthError::invalid_dpop_proof(
                "the DPoP proof jti has already been used",
            ));
        }
        Ok(())
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Form parameters as received; a parameter sent twice is an error (RFC 6749 §3.1, §3.2).
pub struct Params<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Params<'a> {
    /// Checks the parameter count (at most `max`: an OAuth request needs a few dozen) and
    /// refuses duplicates, in time linear in the number of parameters (issue 13 item 1: this
    /// runs before client authentication).
    pub fn new(pairs: &'a [(String, String)], max: usize) -> OAuthResult<Self> {
        if pairs.len() > max {
            return Err(too_many_params(max));
        }
        let mut seen = HashSet::with_capacity(pairs.len());
        for (k, _) in pairs {
            if !seen.insert(k.as_str()) {
                return Err(OAuthError::invalid_request(format!(
                    "the parameter {} was sent more than once",
                    printable(k)
                )));
            }
        }
        Ok(Self { pairs })
    }

    /// A view of pairs already checked (see [`crate::request::FormParams`]).
    pub(crate) fn trusted(pairs: &'a [(String, String)]) -> Self {
        Self { pairs }
    }

    /// A parameter's value; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    pub fn require(&self, name: &str) -> OAuthResult<&'a str> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("the {name} parameter is required")))
    }
}

/// 400 `invalid_request` for a request with more parameters than `max`.
pub fn too_many_params(max: usize) -> OAuthError {
    OAuthError::invalid_request(format!("the request has more than {max} parameters"))
}

/// A parameter name as it may appear in an error description: bounded, printable ASCII only.
fn printable(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if name.len() > out.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(keys: impl IntoIterator<Item = String>) -> Vec<(String, String)> {
        keys.into_iter().map(|k| (k, "v".to_owned())).collect()
    }

    /// Issue 13 item 1: more parameters than the limit are refused with 400 invalid_request.
    #[test]
    fn parameter_count_is_capped() {
        let ok = pairs((0..64).map(|i| format!("k{i}")));
        assert!(Params::new(&ok, 64).is_ok());
        let many = pairs((0..18_000).map(|i| format!("k{i}")));
        let e = Params::new(&many, 64).err().expect("refused");
        assert_eq!((e.code.as_str(), e.status.code()), ("invalid_request", 400));
        assert!(e.description.contains("more than 64"), "{}", e.description);
    }

    /// RFC 6749 §3.1: a repeated parameter is refused, wherever it repeats; the name in the
    /// description is bounded and printable.
    #[test]
    fn duplicates_are_refused() {
        let mut p = pairs((0..60).map(|i| format!("k{i}")));
        p.push(("k59".into(), "x".into()));
        let e = Params::new(&p, 64).err().expect("refused");
        assert!(
            e.description.contains("k59 was sent more than once"),
            "{}",
            e.description
        );
        let long = "\u{202e}".to_owned() + &"a".repeat(5000);
        let p = pairs([long.clone(), long]);
        let e = Params::new(&p, 64).err().expect("refused");
        assert!(e.description.len() < 200, "{}", e.description);
        assert!(e.description.is_ascii());
    }
}
