//! `Provider`: the authorization server's protocol engine. It is given a `Store`, a `Clock`,
//! the key ring and a JWKS fetcher, takes typed requests and returns typed outcomes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use portcullis_jose::Jwks;

use crate::clock::Clock;
use crate::dpop::{DpopNonces, DpopRequest, VerifiedProof, check_proof};
use crate::error::{OAuthError, OAuthResult};
use crate::jwks_cache::{JwksFetcher, RemoteJwksCache};
use crate::keyring::KeyRing;
use crate::model::Client;
use crate::request::{DirectRequest, Endpoint, Params};
use crate::settings::Settings;
use crate::store::Store;
use crate::sync::lock;

/// A client with its keys parsed once (no key parsing on the hot path).
pub struct ParsedClient {
    pub client: Client,
    pub inline_jwks: Option<Arc<Jwks>>,
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
                Some(Arc::new(Jwks::from_json(v).map_err(|e| {
                    OAuthError::server_error(format!("stored jwks unusable: {e}"))
                })?))
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
