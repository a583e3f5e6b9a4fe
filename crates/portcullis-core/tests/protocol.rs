//! Protocol rules that depend on time, checked against the in-memory store with a clock moved
//! by hand: exact lifetimes and windows, nonce rotation, jwks_uri caching, key rotation. The
//! integration tests cover the same rules over HTTP; here every boundary is exercised exactly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use portcullis_core::authorize::{AuthorizationFailure, Decision};
use portcullis_core::client_auth::JWT_BEARER_ASSERTION_TYPE;
use portcullis_core::clock::ManualClock;
use portcullis_core::keyring::{SERVER_ALGORITHMS, generate_stored_key};
use portcullis_core::memory::MemoryStore;
use portcullis_core::model::{Client, ClientAuthMethod, ClientMetadata};
use portcullis_core::par::PushedAuthorizationRequest;
use portcullis_core::store::Store;
use portcullis_core::token::TokenRequest;
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
}

#[async_trait]
impl JwksFetcher for Fetcher {
    async fn fetch(&self, _uri: &str) -> Result<Value, String> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
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
        b"nonce secret",
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
        let r = self
            .provider
            .push_authorization_request(&PushedAuthorizationRequest {
                params: &params,
                dpop: &[],
                authorization_header: false,
            })
            .await?;
        Ok(r.request_uri)
    }

    async fn code(&self) -> String {
        let request_uri = self.par().await.unwrap();
        let q = vec![("client_id".into(), "rp".into()), ("request_uri".into(), request_uri)];
        let pending = self.provider.begin_authorization(&q).await.unwrap();
        let url = self
            .provider
            .complete_authorization(
                &pending,
                Decision::Allow {
                    sub: "alice".into(),
                    auth_time: self.now(),
                },
            )
            .await
            .unwrap();
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
        self.provider
            .token(&TokenRequest {
                params: &params,
                dpop: &[&proof],
                authorization_header: false,
            })
            .await
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
    e.clock.advance(89);
    assert!(e.provider.begin_authorization(&q(&uri)).await.is_ok());
    e.clock.advance(1);
    match e.provider.begin_authorization(&q(&uri)).await.unwrap_err() {
        AuthorizationFailure::Redirect(u) => assert!(u.contains("error=invalid_request_uri"), "{u}"),
        other => panic!("{other:?}"),
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
        let r = e
            .provider
            .token(&TokenRequest {
                params: &params,
                dpop: &[&proof],
                authorization_header: false,
            })
            .await;
        assert_eq!(r.is_ok(), ok, "iat {}: {:?}", iat - t, r.err());
    }
}

/// Issue 10: jwks_uri is fetched once, cached, refetched once for an unknown kid, and again
/// after the cache time.
#[tokio::test]
async fn jwks_uri_is_cached_and_refreshed_on_unknown_kid() {
    let e = env_with(true).await;
    let auth = |key: &SigningKey| {
        let params = vec![
            ("client_assertion_type".to_owned(), JWT_BEARER_ASSERTION_TYPE.to_owned()),
            ("client_assertion".to_owned(), e.assertion_with(key, |_| {})),
        ];
        authenticate(&e, params)
    };
    let fetches = || e.fetcher.fetches.load(Ordering::SeqCst);
    auth(&e.key).await.unwrap();
    auth(&e.key).await.unwrap();
    assert_eq!(fetches(), 1, "cached");
    // the client rotates its key: one refetch finds the new kid
    let rotated = SigningKey::generate(Algorithm::Es256).unwrap();
    *e.fetcher.jwks.lock().unwrap() = json!({"keys": [rotated.public_jwk().to_json()]});
    auth(&rotated).await.unwrap();
    assert_eq!(fetches(), 2);
    // a kid that is nowhere: one refetch, then invalid_client
    let stranger = SigningKey::generate(Algorithm::Es256).unwrap();
    let err = auth(&stranger).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidClient);
    assert_eq!(fetches(), 3);
    // after the cache time the set is fetched again
    auth(&rotated).await.unwrap();
    assert_eq!(fetches(), 3);
    e.clock.advance(301);
    auth(&rotated).await.unwrap();
    assert_eq!(fetches(), 4);
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
            .insert_signing_key(&generate_stored_key(alg, e.now() + 1).unwrap())
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

async fn authenticate(e: &Env, params: Vec<(String, String)>) -> Result<(), OAuthError> {
    let p = portcullis_core::provider::Params::new(&params).unwrap();
    e.provider
        .authenticate_client(&portcullis_core::client_auth::ClientAuthentication::from_params(
            &p, false,
        ))
        .await
        .map(|_| ())
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
    };
    let t = e.now();
    let pending = e
        .provider
        .begin_authorization(&q(e.par_with(&[("max_age", "60")]).await.unwrap()))
        .await
        .unwrap();
    assert_eq!(
        e.provider.next_step(&pending, Some(&session(t - 60))),
        NextStep::Consent
    );
    assert_eq!(e.provider.next_step(&pending, Some(&session(t - 61))), NextStep::Login);
    assert_eq!(e.provider.next_step(&pending, None), NextStep::Login);
    let pending = e
        .provider
        .begin_authorization(&q(e.par_with(&[("prompt", "login")]).await.unwrap()))
        .await
        .unwrap();
    assert_eq!(e.provider.next_step(&pending, Some(&session(t - 1))), NextStep::Login);
    assert_eq!(e.provider.next_step(&pending, Some(&session(t))), NextStep::Consent);
    let pending = e
        .provider
        .begin_authorization(&q(e.par_with(&[("prompt", "none")]).await.unwrap()))
        .await
        .unwrap();
    match e.provider.next_step(&pending, None) {
        NextStep::Redirect(u) => assert!(u.contains("error=login_required") && u.contains("state=s1"), "{u}"),
        other => panic!("{other:?}"),
    }
    match e.provider.next_step(&pending, Some(&session(t))) {
        NextStep::Redirect(u) => assert!(u.contains("error=consent_required"), "{u}"),
        other => panic!("{other:?}"),
    }
}
