//! Protocol rules that depend on time, checked against the in-memory store with a clock moved
//! by hand: exact lifetimes and windows, nonce rotation, jwks_uri caching, key rotation. The
//! integration tests cover the same rules over HTTP; here every boundary is exercised exactly.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use portcullis_core::authorize::Decision;
use portcullis_core::client_auth::JWT_BEARER_ASSERTION_TYPE;
use portcullis_core::clock::ManualClock;
use portcullis_core::keyring::{SERVER_ALGORITHMS, generate_stored_key};
use portcullis_core::memory::MemoryStore;
use portcullis_core::model::{Client, ClientAuthMethod, ClientMetadata};
use portcullis_core::request::{DirectRequest, FormParams};
use portcullis_core::store::Store;
use portcullis_core::{ErrorCode, JwksFetcher, KeyRing, OAuthError, Provider, Settings};
use portcullis_jose::{Algorithm, SigningKey, b64url, sha256_b64url};
use serde_json::{Map, Value, json};

const ISSUER: &str = "https://as.example";
const START: i64 = 1_800_000_000;
const REDIRECT: &str = "https://rp.example/cb";
const VERIFIER: &str = "0123456789012345678901234567890123456789abc";

type ClaimsEdit = dyn FnOnce(&mut Map<String, Value>);

/// A jwks_uri stand-in that counts fetches.
struct Fetcher {
    jwks: Mutex<Value>,
    fetches: AtomicUsize,
    /// Each fetch takes a while (so that concurrent requests overlap).
    slow: AtomicBool,
    /// Each fetch fails (unreachable).
    fail: AtomicBool,
}

#[async_trait]
impl JwksFetcher for Fetcher {
    async fn fetch(&self, _uri: &str) -> Result<Value, String> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.slow.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err("connection refused".into());
        }
        Ok(self.jwks.lock().unwrap().clone())
    }
}

struct Env {
    provider: Provider,
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
    fetcher: Arc<Fetcher>,
    key: SigningKey,
    client_id: String,
    dpop: SigningKey,
}

fn metadata(jwks: Option<Value>, jwks_uri: Option<&str>) -> ClientMetadata {
    ClientMetadata {
        redirect_uris: vec![REDIRECT.into()],
        token_endpoint_auth_method: ClientAuthMethod::PrivateKeyJwt,
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        response_types: vec!["code".into()],
        client_name: None,
        scope: None,
        jwks,
        jwks_uri: jwks_uri.map(String::from),
        token_endpoint_auth_signing_alg: None,
        id_token_signed_response_alg: Algorithm::Es256,
        dpop_bound_access_tokens: true,
        tls_client_certificate_bound_access_tokens: false,
        extra: Map::new(),
    }
}

async fn env_with(remote_keys: bool) -> Env {
    let clock = Arc::new(ManualClock::new(START));
    let store = Arc::new(MemoryStore::new());
    let settings = Settings::with_defaults(ISSUER);
    for alg in SERVER_ALGORITHMS {
        store
            .insert_signing_key(&generate_stored_key(alg, START).unwrap())
            .await
            .unwrap();
    }
    let ring = KeyRing::from_stored(
        &store.list_signing_keys().await.unwrap(),
        START,
        settings.key_publication_grace(),
    )
    .unwrap();
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let jwks = json!({"keys": [key.public_jwk().to_json()]});
    let fetcher = Arc::new(Fetcher {
        jwks: Mutex::new(jwks.clone()),
        fetches: AtomicUsize::new(0),
        slow: AtomicBool::new(false),
        fail: AtomicBool::new(false),
    });
    let meta = if remote_keys {
        metadata(None, Some("https://rp.example/jwks"))
    } else {
        metadata(Some(jwks), None)
    };
    let client = Client {
        client_id: "rp".into(),
        issued_at: START,
        metadata: meta,
    };
    store.insert_client(&client, None).await.unwrap();
    let provider = Provider::new(
        settings,
        store.clone(),
        clock.clone(),
        ring,
        portcullis_core::dpop::DpopNonces::new(b"nonce secret"),
        fetcher.clone(),
    );
    Env {
        provider,
        clock,
        store,
        fetcher,
        key,
        client_id: "rp".into(),
        dpop: SigningKey::generate(Algorithm::Es256).unwrap(),
    }
}

async fn env() -> Env {
    env_with(false).await
}

impl Env {
    fn now(&self) -> i64 {
        portcullis_core::Clock::now(self.clock.as_ref())
    }

    fn assertion_with(&self, key: &SigningKey, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        let t = self.now();
        let mut c = Map::new();
        for (k, v) in [
            ("iss", json!(self.client_id)),
            ("sub", json!(self.client_id)),
            ("aud", json!(ISSUER)),
            ("iat", json!(t)),
            ("exp", json!(t + 60)),
            ("jti", json!(b64url(portcullis_core::random::random_bytes::<16>()))),
        ] {
            c.insert(k.into(), v);
        }
        edit(&mut c);
        key.sign_jwt(key.algorithm(), None, &c).unwrap()
    }

    fn auth(&self, edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<(String, String)> {
        vec![
            ("client_assertion_type".into(), JWT_BEARER_ASSERTION_TYPE.into()),
            ("client_assertion".into(), self.assertion_with(&self.key, edit)),
        ]
    }

    fn proof(&self, url: &str, iat: i64, nonce: Option<&str>) -> String {
        let mut jwk = self.dpop.public_jwk().to_json();
        jwk.as_object_mut().unwrap().remove("kid");
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let mut claims = json!({"jti": b64url(portcullis_core::random::random_bytes::<16>()), "htm": "POST", "htu": url, "iat": iat});
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        let input = format!("{}.{}", b64url(header.to_string()), b64url(claims.to_string()));
        let sig = self.dpop.sign_raw(input.as_bytes()).unwrap();
        format!("{input}.{}", b64url(sig))
    }

    /// A proof for a resource request (with `ath`).
    fn resource_proof(&self, url: &str, token: &str, nonce: Option<&str>) -> String {
        let mut jwk = self.dpop.public_jwk().to_json();
        jwk.as_object_mut().unwrap().remove("kid");
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let mut claims = json!({"jti": b64url(portcullis_core::random::random_bytes::<16>()), "htm": "GET",
            "htu": url, "iat": self.now(), "ath": sha256_b64url(token)});
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        let input = format!("{}.{}", b64url(header.to_string()), b64url(claims.to_string()));
        let sig = self.dpop.sign_raw(input.as_bytes()).unwrap();
        format!("{input}.{}", b64url(sig))
    }

    async fn par(&self) -> Result<String, OAuthError> {
        self.par_with(&[]).await
    }

    async fn par_with(&self, extra: &[(&str, &str)]) -> Result<String, OAuthError> {
        let mut params: Vec<(String, String)> = [
            ("response_type", "code"),
            ("client_id", "rp"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("state", "s1"),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        params.push(("code_challenge".into(), sha256_b64url(VERIFIER)));
        params.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
        params.extend(self.auth(|_| {}));
        let r = self.provider.push_authorization_request(direct(params)?).await?;
        Ok(r.request_uri.as_str().to_owned())
    }

    async fn code(&self) -> String {
        let request_uri = self.par().await.unwrap();
        let q = vec![("client_id".into(), "rp".into()), ("request_uri".into(), request_uri)];
        let pending = self.provider.begin_authorization(q, "browser").await.unwrap();
        let response = self
            .provider
            .complete_authorization(
                &pending,
                Decision::Allow {
                    sub: "alice".into(),
                    auth_time: self.now(),
                    login_request: Some(pending.request_uri_hash.clone()),
                },
            )
            .await
            .unwrap();
        let url = response.redirect_url(ISSUER);
        let u = url::Url::parse(&url).unwrap();
        u.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned()
    }

    async fn redeem(
        &self,
        code: &str,
        nonce: Option<&str>,
    ) -> Result<portcullis_core::token::TokenResponse, OAuthError> {
        let mut params: Vec<(String, String)> = vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code.into()),
            ("redirect_uri".into(), REDIRECT.into()),
            ("code_verifier".into(), VERIFIER.into()),
        ];
        params.extend(self.auth(|_| {}));
        let n = nonce
            .map(String::from)
            .unwrap_or_else(|| self.provider.current_dpop_nonce());
        let proof = self.proof(&format!("{ISSUER}/token"), self.now(), Some(&n));
        self.provider.token(direct(params)?.with_dpop(vec![proof])).await
    }
}

/// AS-SP-63: a code is good for exactly the code lifetime (60 s).
#[tokio::test]
async fn code_lifetime_boundary() {
    let e = env().await;
    let code = e.code().await;
    e.clock.advance(59);
    assert!(e.redeem(&code, None).await.is_ok());
    let code = e.code().await;
    e.clock.advance(60);
    let err = e.redeem(&code, None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidGrant);
    assert!(err.description.contains("expired"));
}

/// AS-SP-40/43: a request_uri lives `request_uri_lifetime` (90 s by default), then is refused.
#[tokio::test]
async fn request_uri_lifetime_boundary() {
    let e = env().await;
    let q = |uri: &str| {
        vec![
            ("client_id".to_owned(), "rp".to_owned()),
            ("request_uri".to_owned(), uri.to_owned()),
        ]
    };
    let uri = e.par().await.unwrap();
    let late = e.par().await.unwrap();
    e.clock.advance(89);
    assert!(e.provider.begin_authorization(q(&uri), "b1").await.is_ok());
    e.clock.advance(1);
    let err = e.provider.begin_authorization(q(&late), "b1").await.unwrap_err();
    let u = err.authorization_response().expect("redirected").redirect_url(ISSUER);
    assert!(u.contains("error=invalid_request_uri"), "{u}");
}

/// Issue 17 item 7, AS-SP-44: a browser's first visit starts an interaction bound to it and
/// leaves the request_uri unconsumed; another browser with the same URL starts its own (but
/// cannot continue the first's). Each continues for `interaction_lifetime` (600 s by default),
/// however short the request_uri's life; then a page says the sign-in took too long. The first
/// to complete consumes the request_uri: the others get a page, never a code, and the URL gets
/// `invalid_request_uri` from then on.
#[tokio::test]
async fn interaction_lifetime_boundary() {
    let e = env().await;
    let q = |uri: &str| {
        vec![
            ("client_id".to_owned(), "rp".to_owned()),
            ("request_uri".to_owned(), uri.to_owned()),
        ]
    };
    let uri = e.par().await.unwrap();
    let pending = e.provider.begin_authorization(q(&uri), "b1").await.unwrap();
    // another browser with the same URL: its own interaction (row 62)
    let other = e.provider.begin_authorization(q(&uri), "b2").await.unwrap();
    assert_ne!(other.interaction, pending.interaction);
    assert_eq!(other.request, pending.request);
    // which cannot continue the first browser's
    let err = e
        .provider
        .resume_interaction(&pending.interaction, Some("b2"))
        .await
        .unwrap_err();
    assert_eq!(err.status.code(), 403);
    assert!(err.authorization_response().is_none());
    assert!(e.provider.resume_interaction(&pending.interaction, None).await.is_err());
    // the same browser, long after the request_uri expired: by URL (a reload) and by id; a new
    // browser is refused then
    e.clock.advance(599);
    let again = e.provider.begin_authorization(q(&uri), "b1").await.unwrap();
    assert_eq!(again.interaction, pending.interaction);
    assert_eq!(again.pushed_at, pending.pushed_at);
    let err = e.provider.begin_authorization(q(&uri), "b3").await.unwrap_err();
    let u = err.authorization_response().expect("redirected").redirect_url(ISSUER);
    assert!(u.contains("error=invalid_request_uri") && u.contains("state=s1"), "{u}");
    let resumed = e
        .provider
        .resume_interaction(&pending.interaction, Some("b1"))
        .await
        .unwrap();
    assert_eq!(resumed.request, pending.request);
    // then it has expired: a page in plain words (410), no redirect, no code
    e.clock.advance(1);
    for err in [
        e.provider.begin_authorization(q(&uri), "b1").await.unwrap_err(),
        e.provider
            .resume_interaction(&pending.interaction, Some("b1"))
            .await
            .unwrap_err(),
        e.provider
            .complete_authorization(&resumed, allow(&resumed, e.now()))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.status.code(), 410);
        assert!(err.authorization_response().is_none());
        assert!(
            err.public_description().contains("took too long"),
            "{}",
            err.public_description()
        );
    }
    // completed once: a second consent is a page, not a second code
    let uri = e.par().await.unwrap();
    let pending = e.provider.begin_authorization(q(&uri), "b1").await.unwrap();
    let other = e.provider.begin_authorization(q(&uri), "b2").await.unwrap();
    e.clock.advance(300);
    let done = e
        .provider
        .complete_authorization(&pending, allow(&pending, e.now()))
        .await;
    assert!(matches!(
        done,
        Ok(portcullis_core::response::AuthorizationResponse::Code { .. })
    ));
    let err = e
        .provider
        .complete_authorization(&pending, allow(&pending, e.now()))
        .await
        .unwrap_err();
    assert_eq!(err.status.code(), 400);
    assert!(err.authorization_response().is_none());
    let err = e
        .provider
        .resume_interaction(&pending.interaction, Some("b1"))
        .await
        .unwrap_err();
    assert!(err.public_description().contains("already been completed"));
    // the other browser's interaction lost: a page (409), no code, allow or deny
    for decision in [allow(&other, e.now()), Decision::Deny] {
        let err = e.provider.complete_authorization(&other, decision).await.unwrap_err();
        assert_eq!(err.status.code(), 409);
        assert!(err.authorization_response().is_none());
        assert!(
            err.public_description().contains("already completed elsewhere"),
            "{}",
            err.public_description()
        );
    }
    let err = e
        .provider
        .resume_interaction(&other.interaction, Some("b2"))
        .await
        .unwrap_err();
    assert_eq!(err.status.code(), 409);
    // and the used request_uri, opened again by any browser: invalid_request_uri
    for browser in ["b1", "b2", "b3"] {
        let err = e.provider.begin_authorization(q(&uri), browser).await.unwrap_err();
        let u = err.authorization_response().expect("redirected").redirect_url(ISSUER);
        assert!(u.contains("error=invalid_request_uri"), "{browser}: {u}");
    }
    // unknown ids are pages too
    assert!(e.provider.resume_interaction("nope", Some("b1")).await.is_err());
    assert!(e.provider.resume_interaction("", Some("b1")).await.is_err());
}

/// Issue 17 item 7: at most 5 browsers have a live interaction on one request_uri; the sixth
/// gets a page (nothing stored), a browser that has one continues it, and a denial by one of
/// them consumes the request_uri as well.
#[tokio::test]
async fn interactions_per_request_uri_are_capped() {
    let e = env().await;
    let q = |uri: &str| {
        vec![
            ("client_id".to_owned(), "rp".to_owned()),
            ("request_uri".to_owned(), uri.to_owned()),
        ]
    };
    let uri = e.par().await.unwrap();
    let mut started = Vec::new();
    for n in 0..5 {
        started.push(e.provider.begin_authorization(q(&uri), &format!("b{n}")).await.unwrap());
    }
    let err = e.provider.begin_authorization(q(&uri), "b5").await.unwrap_err();
    assert_eq!(err.status.code(), 409);
    assert!(err.authorization_response().is_none());
    assert!(
        err.public_description().contains("too many browsers"),
        "{}",
        err.public_description()
    );
    assert_eq!(e.provider.store().table_sizes().await.unwrap().interactions, 5);
    let again = e.provider.begin_authorization(q(&uri), "b4").await.unwrap();
    assert_eq!(again.interaction, started[4].interaction);
    let denied = e
        .provider
        .complete_authorization(&started[2], Decision::Deny)
        .await
        .unwrap();
    assert!(matches!(
        denied,
        portcullis_core::response::AuthorizationResponse::Error {
            error: "access_denied",
            ..
        }
    ));
    let err = e.provider.begin_authorization(q(&uri), "b5").await.unwrap_err();
    assert!(err.authorization_response().is_some(), "consumed: invalid_request_uri");
}

fn allow(pending: &portcullis_core::authorize::PendingAuthorization, now: i64) -> Decision {
    Decision::Allow {
        sub: "alice".into(),
        auth_time: now,
        login_request: Some(pending.request_uri_hash.clone()),
    }
}

/// AS-SP-26/28: exp must be in the future; iat/nbf may be up to 60 s ahead, not 61.
#[tokio::test]
async fn client_assertion_time_windows() {
    let e = env().await;
    let t = e.now();
    let try_auth = |edit: Box<ClaimsEdit>| authenticate(&e, e.auth(edit));
    assert!(
        try_auth(Box::new(move |c| drop(c.insert("exp".into(), json!(t)))))
            .await
            .is_err(),
        "exp == now"
    );
    assert!(
        try_auth(Box::new(move |c| drop(c.insert("exp".into(), json!(t + 1)))))
            .await
            .is_ok()
    );
    assert!(
        try_auth(Box::new(move |c| drop(c.insert("iat".into(), json!(t + 60)))))
            .await
            .is_ok()
    );
    assert!(
        try_auth(Box::new(move |c| drop(c.insert("iat".into(), json!(t + 61)))))
            .await
            .is_err()
    );
    assert!(
        try_auth(Box::new(move |c| drop(c.insert("nbf".into(), json!(t + 61)))))
            .await
            .is_err()
    );
    assert!(
        try_auth(Box::new(move |c| drop(c.insert("exp".into(), json!(t + 3601)))))
            .await
            .is_err(),
        "over an hour"
    );
}

/// AS-SP-82/83: nonces rotate every 60 s; the previous one still works but a fresh one is sent
/// back; two steps later it is refused with use_dpop_nonce and the current nonce.
#[tokio::test]
async fn dpop_nonce_rotation() {
    let e = env().await;
    // align to the start of a nonce step
    e.clock.advance(60 - e.now().rem_euclid(60));
    let nonce = e.provider.current_dpop_nonce();
    let code = e.code().await;
    let r = e.redeem(&code, Some(&nonce)).await.unwrap();
    assert!(r.dpop_nonce.is_none(), "current nonce: nothing to rotate");
    e.clock.advance(60);
    let code = e.code().await;
    let r = e.redeem(&code, Some(&nonce)).await.unwrap();
    assert_eq!(
        r.dpop_nonce.as_deref(),
        Some(e.provider.current_dpop_nonce().as_str()),
        "rotation via DPoP-Nonce"
    );
    e.clock.advance(60);
    let code = e.code().await;
    let err = e.redeem(&code, Some(&nonce)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UseDpopNonce);
    assert_eq!(err.dpop_nonce, Some(e.provider.current_dpop_nonce()));
}

/// AS-SP-28 and RFC 9449 §11.1: proof iat from 300 s ago to 60 s ahead.
#[tokio::test]
async fn dpop_iat_window() {
    let e = env().await;
    let t = e.now();
    let url = format!("{ISSUER}/token");
    for (iat, ok) in [(t - 300, true), (t - 301, false), (t + 60, true), (t + 61, false)] {
        let code = e.code().await;
        let mut params: Vec<(String, String)> = vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code),
            ("redirect_uri".into(), REDIRECT.into()),
            ("code_verifier".into(), VERIFIER.into()),
        ];
        params.extend(e.auth(|_| {}));
        let proof = e.proof(&url, iat, Some(&e.provider.current_dpop_nonce()));
        let r = e.provider.token(direct(params).unwrap().with_dpop(vec![proof])).await;
        assert_eq!(r.is_ok(), ok, "iat {}: {:?}", iat - t, r.err());
    }
}

/// Issue 10: jwks_uri is fetched once, cached, refetched once for an unknown kid, and again
/// after the cache time.
#[tokio::test]
async fn jwks_uri_is_cached_and_refreshed_on_unknown_kid() {
    let e = env_with(true).await;
    let fetches = || e.fetcher.fetches.load(Ordering::SeqCst);
    authenticate_as(&e, &e.key).await.unwrap();
    authenticate_as(&e, &e.key).await.unwrap();
    assert_eq!(fetches(), 1, "cached");
    // the client rotates its key: one refetch finds the new kid
    let rotated = SigningKey::generate(Algorithm::Es256).unwrap();
    *e.fetcher.jwks.lock().unwrap() = json!({"keys": [rotated.public_jwk().to_json()]});
    authenticate_as(&e, &rotated).await.unwrap();
    assert_eq!(fetches(), 2);
    // a kid that is nowhere: one refetch (once the refresh interval has passed), then
    // invalid_client
    e.clock.advance(e.provider.settings().jwks_refresh_interval);
    let stranger = SigningKey::generate(Algorithm::Es256).unwrap();
    let err = authenticate_as(&e, &stranger).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidClient);
    assert_eq!(fetches(), 3);
    // the same unknown kid again: a remembered miss, no fetch
    assert!(authenticate_as(&e, &stranger).await.is_err());
    assert_eq!(fetches(), 3);
    // after the cache time the set is fetched again
    authenticate_as(&e, &rotated).await.unwrap();
    assert_eq!(fetches(), 3);
    e.clock.advance(301);
    authenticate_as(&e, &rotated).await.unwrap();
    assert_eq!(fetches(), 4);
}

/// Issue 13 item 3: assertions with made-up kids cannot make the server fetch a client's
/// jwks_uri at will: concurrent fetches of one URI are one fetch, at most one forced refresh
/// per interval, and unknown kids are remembered as misses until the next allowed refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jwks_uri_refetch_is_not_amplified() {
    let e = Arc::new(env_with(true).await);
    e.fetcher.slow.store(true, Ordering::SeqCst);
    let fetches = || e.fetcher.fetches.load(Ordering::SeqCst);
    let run = |n: usize| {
        let e = e.clone();
        async move {
            let mut tasks = Vec::new();
            for _ in 0..n {
                let e = e.clone();
                tasks.push(tokio::spawn(async move {
                    let stranger = SigningKey::generate(Algorithm::Es256).unwrap();
                    authenticate_as(&e, &stranger).await.unwrap_err()
                }));
            }
            for t in tasks {
                let err = t.await.unwrap();
                assert_eq!(err.code, ErrorCode::InvalidClient);
            }
        }
    };
    // 40 assertions with random kids, 16 at a time (the review's attack): the first fetch and
    // one forced refresh, not 40
    for _ in 0..3 {
        run(16).await;
    }
    run(8).await;
    assert!(fetches() <= 2, "{} fetches for 40 unknown kids", fetches());
    // the next interval allows exactly one more forced refresh
    e.clock.advance(e.provider.settings().jwks_refresh_interval);
    run(16).await;
    assert!(fetches() <= 3, "{} fetches", fetches());
    // the real key still works, from the cache
    let before = fetches();
    authenticate_as(&e, &e.key).await.unwrap();
    assert_eq!(fetches(), before);
}

/// Issue 13 item 3 (review follow-up): an unknown kid is a remembered miss only within the
/// interval it was found in; after it, the client's newly published key is found.
#[tokio::test]
async fn jwks_uri_misses_expire_with_the_interval() {
    let e = env_with(true).await;
    authenticate_as(&e, &e.key).await.unwrap();
    // an attacker guesses the kid of the client's next key before it is published
    let next = SigningKey::generate(Algorithm::Es256).unwrap();
    assert!(authenticate_as(&e, &next).await.is_err());
    // the client publishes it; within the interval the miss stands
    *e.fetcher.jwks.lock().unwrap() = json!({"keys": [e.key.public_jwk().to_json(), next.public_jwk().to_json()]});
    assert!(authenticate_as(&e, &next).await.is_err());
    // after the interval, the first use of the kid refreshes and succeeds
    e.clock.advance(e.provider.settings().jwks_refresh_interval);
    authenticate_as(&e, &next).await.unwrap();
}

/// Issue 13 items 3 and 9: a failing jwks_uri is answered with one generic description,
/// whatever the cause, and is not asked again at once.
#[tokio::test]
async fn jwks_uri_failures_look_alike() {
    let e = env_with(true).await;
    let auth = || authenticate_as(&e, &e.key);
    *e.fetcher.jwks.lock().unwrap() = json!({"not": "a jwk set"});
    let unusable = auth().await.unwrap_err();
    e.clock.advance(portcullis_core::jwks_cache::FAILED_FETCH_BACKOFF);
    e.fetcher.fail.store(true, Ordering::SeqCst);
    let unreachable = auth().await.unwrap_err();
    assert_eq!(unusable.description, unreachable.description);
    assert_eq!(unusable.code, ErrorCode::InvalidClient);
    let n = e.fetcher.fetches.load(Ordering::SeqCst);
    assert!(auth().await.is_err());
    assert_eq!(
        e.fetcher.fetches.load(Ordering::SeqCst),
        n,
        "failed moments ago: not refetched"
    );
}

/// Issue 2: rotation keeps earlier public keys published until what they signed has expired.
#[tokio::test]
async fn rotated_keys_stay_published_for_the_grace_period() {
    let e = env().await;
    let grace = e.provider.settings().key_publication_grace();
    let kid_of = |jwt: &str| {
        let h = jwt.split('.').next().unwrap();
        let v: Value = serde_json::from_slice(&portcullis_jose::b64url_decode(h).unwrap()).unwrap();
        v["kid"].as_str().unwrap().to_owned()
    };
    let old = kid_of(&e.redeem(&e.code().await, None).await.unwrap().id_token.unwrap());
    e.store.retire_signing_keys(e.now()).await.unwrap();
    for alg in SERVER_ALGORITHMS {
        e.store
            .insert_signing_key(&generate_stored_key(alg, e.now()).unwrap())
            .await
            .unwrap();
    }
    let stored = e.store.list_signing_keys().await.unwrap();
    let reload = |at: i64| KeyRing::from_stored(&stored, at, grace).unwrap();
    e.provider.replace_keys(reload(e.now()));
    let new = kid_of(&e.redeem(&e.code().await, None).await.unwrap().id_token.unwrap());
    assert_ne!(old, new);
    let published = |ring: &KeyRing| {
        ring.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == old.as_str())
    };
    assert!(
        published(&reload(e.now() + grace)),
        "still published within the grace period"
    );
    assert!(!published(&reload(e.now() + grace + 1)), "dropped after it");
}

/// Authenticates with a fresh assertion signed by `key`.
async fn authenticate_as(e: &Env, key: &SigningKey) -> Result<(), OAuthError> {
    let params = vec![
        ("client_assertion_type".to_owned(), JWT_BEARER_ASSERTION_TYPE.to_owned()),
        ("client_assertion".to_owned(), e.assertion_with(key, |_| {})),
    ];
    authenticate(e, params).await
}

async fn authenticate(e: &Env, params: Vec<(String, String)>) -> Result<(), OAuthError> {
    let req = direct(params).unwrap();
    let credentials = portcullis_core::client_auth::ClientCredentials::from_request(&e.provider, &req)?;
    e.provider.authenticate_client(&credentials).await.map(|_| ())
}

/// OIDC Core §3.1.2.1: max_age counts to the second; prompt=login wants a login newer than the
/// request; prompt=none never shows a page.
#[tokio::test]
async fn login_freshness() {
    use portcullis_core::authorize::NextStep;
    use portcullis_core::model::Session;
    let e = env().await;
    let q = |uri: String| {
        vec![
            ("client_id".to_owned(), "rp".to_owned()),
            ("request_uri".to_owned(), uri),
        ]
    };
    let session = |auth_time: i64| Session {
        username: "alice".into(),
        auth_time,
        expires_at: auth_time + 3600,
        login_request: None,
    };
    let session_for = |auth_time: i64, pending: &portcullis_core::authorize::PendingAuthorization| Session {
        login_request: Some(pending.request_uri_hash.clone()),
        ..session(auth_time)
    };
    let t = e.now();
    let pending = e
        .provider
        .begin_authorization(q(e.par_with(&[("max_age", "60")]).await.unwrap()), "browser")
        .await
        .unwrap();
    assert_eq!(
        e.provider.next_step(&pending, Some(&session(t - 60))),
        NextStep::Consent
    );
    assert_eq!(e.provider.next_step(&pending, Some(&session(t - 61))), NextStep::Login);
    assert_eq!(e.provider.next_step(&pending, None), NextStep::Login);
    // max_age=0: only a login made during this request will do, and one does (no endless loop)
    let pending0 = e
        .provider
        .begin_authorization(q(e.par_with(&[("max_age", "0")]).await.unwrap()), "browser")
        .await
        .unwrap();
    assert_eq!(e.provider.next_step(&pending0, Some(&session(t - 1))), NextStep::Login);
    // third review: not even a login in this very second, when it was made for another request
    assert_eq!(e.provider.next_step(&pending0, Some(&session(t))), NextStep::Login);
    e.clock.advance(5);
    assert_eq!(
        e.provider.next_step(&pending0, Some(&session_for(t + 2, &pending0))),
        NextStep::Consent,
        "a login made for the request satisfies max_age=0"
    );
    e.clock.advance(-5);
    let pending = e
        .provider
        .begin_authorization(q(e.par_with(&[("prompt", "login")]).await.unwrap()), "browser")
        .await
        .unwrap();
    assert_eq!(e.provider.next_step(&pending, Some(&session(t - 1))), NextStep::Login);
    // a login in the very second of the push, but not made for this request (another tab,
    // another client), does not satisfy prompt=login; one made for it does
    assert_eq!(e.provider.next_step(&pending, Some(&session(t))), NextStep::Login);
    assert_eq!(
        e.provider.next_step(&pending, Some(&session_for(t, &pending))),
        NextStep::Consent
    );
    // issue 13 item 6: an Allow carrying an older login is refused when consent is submitted,
    // and the request_uri is not spent by that refusal
    let stale = Decision::Allow {
        sub: "alice".into(),
        auth_time: t,
        login_request: None,
    };
    let err = e.provider.complete_authorization(&pending, stale).await.unwrap_err();
    assert_eq!(err.status.code(), 403);
    assert!(err.authorization_response().is_none(), "shown, not redirected");
    let fresh = Decision::Allow {
        sub: "alice".into(),
        auth_time: t,
        login_request: Some(pending.request_uri_hash.clone()),
    };
    assert!(e.provider.complete_authorization(&pending, fresh).await.is_ok());
    let pending = e
        .provider
        .begin_authorization(q(e.par_with(&[("prompt", "none")]).await.unwrap()), "browser")
        .await
        .unwrap();
    match e.provider.next_step(&pending, None) {
        NextStep::Respond(r) => {
            let u = r.redirect_url(ISSUER);
            assert!(u.contains("error=login_required") && u.contains("state=s1"), "{u}")
        }
        other => panic!("{other:?}"),
    }
    match e.provider.next_step(&pending, Some(&session(t))) {
        NextStep::Respond(r) => {
            let u = r.redirect_url(ISSUER);
            assert!(u.contains("error=consent_required"), "{u}")
        }
        other => panic!("{other:?}"),
    }
}

/// Issue 13 item 4: a replay record is written only for a proof that would otherwise succeed:
/// userinfo with a made-up token and a self-signed proof, and a token request whose code is
/// unknown, add no DPoP jti row; a good request does, and its replay is refused.
#[tokio::test]
async fn failing_requests_write_no_replay_records() {
    let e = env().await;
    let resource = |auth: String, proof: String| {
        DirectRequest::post(FormParams::default())
            .with_method(portcullis_core::request::Method::Get)
            .with_authorization(vec![auth])
            .with_dpop(vec![proof])
    };
    let userinfo = format!("{ISSUER}/userinfo");
    let nonce = e.provider.current_dpop_nonce();
    for _ in 0..20 {
        let token = b64url(portcullis_core::random::random_bytes::<32>());
        let proof = e.resource_proof(&userinfo, &token, Some(&nonce));
        let auth = format!("DPoP {token}");
        let err = e
            .provider
            .userinfo(&resource(auth, proof))
            .await
            .err()
            .expect("made-up token refused");
        assert_eq!(err.code, ErrorCode::InvalidToken);
    }
    assert_eq!(e.store.replay_records(), 0, "made-up tokens wrote replay records");

    // an unknown code: the client assertion's jti is spent (the client did authenticate), the
    // DPoP proof's is not
    let before = e.store.replay_records();
    assert_eq!(
        e.redeem("no-such-code", None).await.unwrap_err().code,
        ErrorCode::InvalidGrant
    );
    assert_eq!(e.store.replay_records(), before + 1);

    // a good request records its proof, and the same proof is refused afterwards
    let tokens = e.redeem(&e.code().await, None).await.unwrap();
    let proof = e.resource_proof(&userinfo, &tokens.access_token, Some(&nonce));
    let auth = format!("DPoP {}", tokens.access_token);
    let req = resource(auth, proof);
    let before = e.store.replay_records();
    e.provider.userinfo(&req).await.unwrap();
    assert_eq!(e.store.replay_records(), before + 1);
    assert_eq!(
        e.provider.userinfo(&req).await.err().expect("replay refused").code,
        ErrorCode::InvalidDpopProof
    );
}

/// Issue 13 item 11: a fetched jwks_uri document goes through the same JWK Set rules as a
/// registered `jwks`: more than 16 keys, or a private key marked `use: enc`, make it unusable.
#[tokio::test]
async fn fetched_jwks_uri_documents_are_capped_and_public_only() {
    let others: Vec<Value> = (0..16)
        .map(|_| SigningKey::generate(Algorithm::Es256).unwrap().public_jwk().to_json())
        .collect();
    let mut enc_with_d = SigningKey::generate(Algorithm::Es256).unwrap().public_jwk().to_json();
    enc_with_d["use"] = json!("enc");
    enc_with_d["d"] = json!(b64url([7u8; 32]));
    // each document holds the client's own key; (what, extra keys, accepted)
    let cases: [(&str, Vec<Value>, bool); 3] = [
        ("16 keys", others[..15].to_vec(), true),
        ("17 keys", others.clone(), false),
        ("a use:enc key with d", vec![enc_with_d], false),
    ];
    for (what, extra, accepted) in cases {
        // a fresh provider each time, so nothing is cached
        let e = env_with(true).await;
        let mut keys = vec![e.key.public_jwk().to_json()];
        keys.extend(extra);
        *e.fetcher.jwks.lock().unwrap() = json!({ "keys": keys });
        let params = vec![
            ("client_assertion_type".to_owned(), JWT_BEARER_ASSERTION_TYPE.to_owned()),
            ("client_assertion".to_owned(), e.assertion_with(&e.key, |_| {})),
        ];
        let result = authenticate(&e, params).await;
        if accepted {
            result.unwrap_or_else(|err| panic!("{what}: {err:?}"));
        } else {
            let err = result.unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidClient, "{what}: {err:?}");
            assert!(err.description.contains("jwks_uri"), "{what}: {err:?}");
        }
    }
}

/// A POST of `params` (count and duplicates checked as the server's extractor does).
fn direct(params: Vec<(String, String)>) -> Result<DirectRequest, OAuthError> {
    FormParams::parse(params, portcullis_core::settings::DEFAULT_MAX_FORM_PARAMS).map(DirectRequest::post)
}
