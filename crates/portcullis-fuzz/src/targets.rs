//! The fuzz targets. Each builds its own fixtures (keys, a provider on the in-memory store) once,
//! offers seed inputs built in code, and runs one input against the real parsing and checking
//! code. The returned label names the outcome (`ok` or the error), for the runner's feedback.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use portcullis_core::client_auth::{ClientCredentials, JWT_BEARER_ASSERTION_TYPE};
use portcullis_core::clock::ManualClock;
use portcullis_core::dpop::{DpopNonces, DpopRequest, check_proof};
use portcullis_core::keyring::{SERVER_ALGORITHMS, generate_stored_key};
use portcullis_core::memory::MemoryStore;
use portcullis_core::model::{Client, ClientMetadata};
use portcullis_core::registration::validate_metadata;
use portcullis_core::request::Params;
use portcullis_core::request::{DirectRequest, FormParams};
use portcullis_core::{KeyRing, NoFetcher, OAuthError, Provider, Settings, Store};
use portcullis_jose::{
    Algorithm, CompactJws, JoseError, Jwks, PublicJwk, SigningKey, b64url, b64url_decode, sha256_b64url,
};
use serde_json::{Value, json};

use crate::mutate::{self, JwsParts, Rng};

const ISSUER: &str = "https://as.example";
const START: i64 = 1_800_000_000;
const REDIRECT: &str = "https://rp.example/cb";
const CLIENT_ID: &str = "rp";
const VERIFIER: &str = "0123456789012345678901234567890123456789abc";
const ACCESS_TOKEN: &str = "fuzz-access-token";

/// Every target's name, in the order `scripts/fuzz` runs them.
pub const TARGETS: [&str; 6] = ["jws", "jwk", "dpop", "client_assertion", "form", "registration"];

/// One fuzz target.
pub trait Target {
    fn name(&self) -> &'static str;
    /// Valid (and a few near-valid) inputs to start from.
    fn seeds(&self) -> Vec<Vec<u8>>;
    /// A mutated copy of `input`.
    fn mutate(&self, input: &[u8], rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8>;
    /// Runs one input; a panic is a finding. Returns a label of the outcome.
    fn run(&self, input: &[u8]) -> String;
}

/// The target called `name`.
pub fn target(name: &str) -> Option<Box<dyn Target>> {
    Some(match name {
        "jws" => Box::new(JwsTarget::new()),
        "jwk" => Box::new(JwkTarget::new()),
        "dpop" => Box::new(DpopTarget::new()),
        "client_assertion" => Box::new(AssertionTarget::new()),
        "form" => Box::new(FormTarget::new()),
        "registration" => Box::new(RegistrationTarget::new()),
        _ => return None,
    })
}

/// Drives a future that never waits on I/O (the in-memory store, no fetcher) to completion.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

fn label_jose(r: Result<(), JoseError>, input: &str) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => short(&e.to_string(), input),
    }
}

fn label_oauth<T>(r: &Result<T, OAuthError>, input: &str) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => short(&format!("{:?} {}", e.code, e.description), input),
    }
}

/// A token with its base64url segments decoded, for finding echoed values in error messages.
fn jws_text(token: &str) -> String {
    let mut out = token.to_owned();
    for segment in token.split('.') {
        if let Ok(bytes) = b64url_decode(segment) {
            out.push('\n');
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    out
}

/// An error label without the parts that vary with the input: words found in the input, and
/// words that are not short plain lowercase ASCII (values, URLs, numbers), become `_`; only the
/// first word (the field or the kind of error) and the last five (the rule) are kept.
fn short(s: &str, input: &str) -> String {
    let words: Vec<&str> = s
        .split_whitespace()
        .map(|w| {
            let w = w.trim_matches(|c: char| c.is_ascii_punctuation() && c != '_');
            let repeats = w.as_bytes().windows(3).any(|t| t[0] == t[1] && t[1] == t[2]);
            let echoed = w.len() >= 2 && input.contains(w);
            if !w.is_empty()
                && w.len() <= 40
                && !repeats
                && !echoed
                && w.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            {
                w
            } else {
                "_"
            }
        })
        .collect();
    if words.len() <= 6 {
        words.join(" ")
    } else {
        format!("{} .. {}", words[0], words[words.len() - 5..].join(" "))
    }
}

/// The client and test keys: one per algorithm family.
struct Keys {
    es: SigningKey,
    ps: SigningKey,
    ed: SigningKey,
}

impl Keys {
    fn new() -> Self {
        Self {
            es: SigningKey::generate(Algorithm::Es256).expect("ES256 key"),
            ps: SigningKey::generate(Algorithm::Ps256).expect("PS256 key"),
            ed: SigningKey::generate(Algorithm::EdDsa).expect("Ed25519 key"),
        }
    }

    fn all(&self) -> [&SigningKey; 3] {
        [&self.es, &self.ps, &self.ed]
    }

    fn jwks(&self) -> Value {
        json!({"keys": self.all().map(|k| k.public_jwk().to_json())})
    }

    fn for_alg(&self, alg: Algorithm) -> &SigningKey {
        match alg {
            Algorithm::Es256 => &self.es,
            Algorithm::Ps256 => &self.ps,
            Algorithm::EdDsa | Algorithm::Ed25519 => &self.ed,
        }
    }

    /// A signature over the parts' signing input by the key the header's `alg` names.
    fn sign(&self, parts: &JwsParts) -> Option<String> {
        let alg = Algorithm::parse(parts.header.get("alg")?.as_str()?).ok()?;
        let sig = self.for_alg(alg).sign_raw(parts.signing_input().as_bytes()).ok()?;
        Some(b64url(sig))
    }

    /// A compact JWS of `header` and `payload` signed by `key` under `alg`.
    fn jws(&self, key: &SigningKey, header: Value, payload: Value) -> String {
        let parts = JwsParts {
            header,
            payload,
            signature: String::new(),
        };
        let input = parts.signing_input();
        let sig = key.sign_raw(input.as_bytes()).expect("signing");
        format!("{input}.{}", b64url(sig))
    }
}

// ---------------------------------------------------------------------------------------------

/// JWS compact parsing and verification against a JWK Set.
struct JwsTarget {
    keys: Keys,
    set: Jwks,
}

impl JwsTarget {
    fn new() -> Self {
        let keys = Keys::new();
        let set = Jwks::from_json(&keys.jwks()).expect("the fixture set");
        Self { keys, set }
    }
}

impl Target for JwsTarget {
    fn name(&self) -> &'static str {
        "jws"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for key in self.keys.all() {
            let alg = key.algorithm();
            let claims = json!({"sub": "alice", "n": 1, "aud": ["a", "b"]});
            out.push(key.sign_jwt(alg, Some("JWT"), &claims).expect("sign").into_bytes());
            // without kid: every key of the family is tried
            out.push(
                self.keys
                    .jws(key, json!({"alg": alg.as_str(), "typ": "JWT"}), claims)
                    .into_bytes(),
            );
        }
        out.push(
            self.keys
                .jws(&self.keys.ed, json!({"alg": "Ed25519"}), json!({}))
                .into_bytes(),
        );
        out
    }

    fn mutate(&self, input: &[u8], rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
        mutate::mutate_jws(input, rng, corpus, &|p| self.keys.sign(p))
    }

    fn run(&self, input: &[u8]) -> String {
        let token = String::from_utf8_lossy(input);
        let text = jws_text(&token);
        let jws = match CompactJws::parse(&token) {
            Ok(j) => j,
            Err(e) => return short(&e.to_string(), &text),
        };
        let verified = jws.verify_with_set(&self.set);
        if verified.is_ok() {
            let _ = jws.claims::<Value>();
        }
        label_jose(verified, &text)
    }
}

// ---------------------------------------------------------------------------------------------

/// JWK and JWK Set parsing, with the issue 13 item 12 property as an oracle: an accepted key's
/// thumbprint members are canonical base64url and RSA integers are minimal.
struct JwkTarget {
    keys: Keys,
}

impl JwkTarget {
    fn new() -> Self {
        Self { keys: Keys::new() }
    }
}

/// The members of `jwk` that enter its RFC 7638 thumbprint.
fn thumbprint_members(jwk: &Value) -> &'static [&'static str] {
    match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => &["n", "e"],
        Some("EC") => &["x", "y"],
        Some("OKP") => &["x"],
        _ => &[],
    }
}

impl Target for JwkTarget {
    fn name(&self) -> &'static str {
        "jwk"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Value> = self.keys.all().iter().map(|k| k.public_jwk().to_json()).collect();
        let mut bare = out[0].clone();
        if let Some(m) = bare.as_object_mut() {
            m.remove("kid");
            m.remove("use");
            m.remove("alg");
        }
        out.push(bare);
        out.push(self.keys.jwks());
        let mut enc = self.keys.es.public_jwk().to_json();
        enc["use"] = json!("enc");
        enc["alg"] = json!("ECDH-ES");
        out.push(json!({"keys": [self.keys.ed.public_jwk().to_json(), enc]}));
        out.iter().map(|v| serde_json::to_vec(v).unwrap_or_default()).collect()
    }

    fn mutate(&self, input: &[u8], rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
        mutate::mutate_json_input(input, rng, corpus)
    }

    fn run(&self, input: &[u8]) -> String {
        let Ok(value) = serde_json::from_slice::<Value>(input) else {
            return "not JSON".into();
        };
        let single = PublicJwk::from_json(&value);
        if let Ok(key) = &single {
            for m in thumbprint_members(&value) {
                let s = value[*m].as_str().unwrap_or_default();
                let bytes = b64url_decode(s).unwrap_or_default();
                assert_eq!(b64url(&bytes), s, "accepted a non-canonical {m}: {s:?}");
                if matches!(*m, "n" | "e") {
                    assert_ne!(bytes.first(), Some(&0), "accepted RSA {m} with a leading zero");
                }
            }
            assert_eq!(key.thumbprint().len(), 43);
        }
        let set = Jwks::from_json(&value);
        if let Ok(set) = &set {
            assert!(set.keys().len() <= portcullis_jose::MAX_JWKS_KEYS);
            for key in set.keys() {
                let _ = key.thumbprint();
            }
        }
        let text = String::from_utf8_lossy(input);
        format!(
            "{} / {}",
            label_jose(single.map(|_| ()), &text),
            label_jose(set.map(|_| ()), &text)
        )
    }
}

// ---------------------------------------------------------------------------------------------

/// DPoP proof checking (RFC 9449 §4.3), with and without an access token.
struct DpopTarget {
    keys: Keys,
    nonces: DpopNonces,
}

impl DpopTarget {
    fn new() -> Self {
        Self {
            keys: Keys::new(),
            nonces: DpopNonces::new(b"fuzz nonce secret"),
        }
    }

    fn url() -> String {
        format!("{ISSUER}/token")
    }
}

impl Target for DpopTarget {
    fn name(&self) -> &'static str {
        "dpop"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for key in self.keys.all() {
            let header = json!({"alg": key.algorithm().as_str(), "typ": "dpop+jwt", "jwk": key.public_jwk().to_json()});
            let mut claims = json!({
                "jti": "seed", "htm": "POST", "htu": Self::url(), "iat": START,
                "nonce": self.nonces.current(START),
            });
            out.push(self.keys.jws(key, header.clone(), claims.clone()).into_bytes());
            claims["ath"] = json!(sha256_b64url(ACCESS_TOKEN));
            out.push(self.keys.jws(key, header, claims).into_bytes());
        }
        out
    }

    fn mutate(&self, input: &[u8], rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
        mutate::mutate_jws(input, rng, corpus, &|p| self.keys.sign(p))
    }

    fn run(&self, input: &[u8]) -> String {
        let proof = String::from_utf8_lossy(input);
        let text = jws_text(&proof);
        let headers = [proof.as_ref()];
        let url = Self::url();
        let mut labels = Vec::new();
        for access_token in [None, Some(ACCESS_TOKEN)] {
            let req = DpopRequest {
                headers: &headers,
                method: "POST",
                url: &url,
                access_token,
            };
            let r = check_proof(&req, START, &self.nonces, true);
            if let Ok(p) = &r {
                assert_eq!(p.jkt.as_str().len(), 43, "a jkt is a SHA-256 thumbprint");
            }
            labels.push(label_oauth(&r, &text));
        }
        labels.join(" / ")
    }
}

// ---------------------------------------------------------------------------------------------

/// A provider on the in-memory store with one private_key_jwt client holding `keys`.
fn provider(keys: &Keys) -> Provider {
    let clock = Arc::new(ManualClock::new(START));
    let store = Arc::new(MemoryStore::new());
    let settings = Settings::with_defaults(ISSUER);
    for alg in SERVER_ALGORITHMS {
        let key = generate_stored_key(alg, START).expect("server key");
        block_on(store.insert_signing_key(&key)).expect("store");
    }
    let stored = block_on(store.list_signing_keys()).expect("store");
    let ring = KeyRing::from_stored(&stored, START, settings.key_publication_grace()).expect("key ring");
    let body = json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": ["authorization_code", "refresh_token"],
        "jwks": keys.jwks(),
        "scope": "openid profile offline_access",
    });
    let metadata = validate_metadata(&body, &settings.scopes_supported).expect("fixture metadata");
    let client = Client {
        client_id: CLIENT_ID.into(),
        issued_at: START,
        metadata,
    };
    block_on(store.insert_client(&client, None)).expect("store");
    Provider::new(
        settings,
        store,
        clock,
        ring,
        portcullis_core::dpop::DpopNonces::new(b"fuzz nonce secret"),
        Arc::new(NoFetcher),
    )
}

fn assertion_claims(jti: &str) -> Value {
    json!({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": ISSUER, "iat": START, "exp": START + 60, "jti": jti})
}

/// Client assertions (RFC 7523) through `Provider::authenticate_client`.
struct AssertionTarget {
    keys: Keys,
    provider: Provider,
}

impl AssertionTarget {
    fn new() -> Self {
        let keys = Keys::new();
        let provider = provider(&keys);
        Self { keys, provider }
    }
}

impl Target for AssertionTarget {
    fn name(&self) -> &'static str {
        "client_assertion"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (i, key) in self.keys.all().into_iter().enumerate() {
            let alg = key.algorithm();
            out.push(
                key.sign_jwt(alg, Some("JWT"), &assertion_claims(&format!("seed-{i}")))
                    .expect("sign")
                    .into_bytes(),
            );
            out.push(
                self.keys
                    .jws(
                        key,
                        json!({"alg": alg.as_str()}),
                        assertion_claims(&format!("seed-nokid-{i}")),
                    )
                    .into_bytes(),
            );
        }
        out
    }

    fn mutate(&self, input: &[u8], rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
        mutate::mutate_jws(input, rng, corpus, &|p| self.keys.sign(p))
    }

    fn run(&self, input: &[u8]) -> String {
        let assertion = String::from_utf8_lossy(input);
        let auth = ClientCredentials::Assertion {
            // both with and without a client_id parameter, decided by the input
            client_id: input
                .len()
                .is_multiple_of(2)
                .then(|| portcullis_core::types::ClientId::parse(CLIENT_ID).expect("a valid client_id")),
            assertion_type: Some(JWT_BEARER_ASSERTION_TYPE),
            assertion: &assertion,
        };
        label_oauth(
            &block_on(self.provider.authenticate_client(&auth)),
            &jws_text(&assertion),
        )
    }
}

// ---------------------------------------------------------------------------------------------

/// Form bodies (`application/x-www-form-urlencoded`, parsed like the server does) through
/// `Params` and the PAR, token and introspection endpoints. A value `@sign` is replaced by a
/// fresh valid client assertion, so mutations of the other parameters get past authentication.
struct FormTarget {
    keys: Keys,
    dpop: SigningKey,
    provider: Provider,
    counter: Cell<u64>,
}

impl FormTarget {
    fn new() -> Self {
        let keys = Keys::new();
        let provider = provider(&keys);
        Self {
            keys,
            dpop: SigningKey::generate(Algorithm::Es256).expect("DPoP key"),
            provider,
            counter: Cell::new(0),
        }
    }

    fn fresh(&self) -> String {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        format!("fuzz-{n}")
    }

    fn with_assertions(&self, pairs: &[(String, String)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| {
                if v == "@sign" {
                    let a = self
                        .keys
                        .es
                        .sign_jwt(Algorithm::Es256, None, &assertion_claims(&self.fresh()))
                        .unwrap_or_default();
                    (k.clone(), a)
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect()
    }

    fn dpop_proof(&self, url: &str) -> String {
        let header = json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": self.dpop.public_jwk().to_json()});
        let claims = json!({
            "jti": self.fresh(), "htm": "POST", "htu": url, "iat": START,
            "nonce": self.provider.current_dpop_nonce(),
        });
        self.keys.jws(&self.dpop, header, claims)
    }
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish().into_bytes()
}

impl Target for FormTarget {
    fn name(&self) -> &'static str {
        "form"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let challenge = sha256_b64url(VERIFIER);
        let auth = [
            ("client_assertion_type", JWT_BEARER_ASSERTION_TYPE),
            ("client_assertion", "@sign"),
        ];
        let par = [
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("scope", "openid profile"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "xyz"),
            ("nonce", "n-0S6_WzA2Mj"),
        ];
        let code = [
            ("grant_type", "authorization_code"),
            ("code", "some-code"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ];
        let refresh = [("grant_type", "refresh_token"), ("refresh_token", "some-refresh-token")];
        let introspect = [("token", "some-token"), ("token_type_hint", "access_token")];
        [&par[..], &code[..], &refresh[..], &introspect[..]]
            .iter()
            .map(|p| form(&[*p, &auth[..]].concat()))
            .collect()
    }

    fn mutate(&self, input: &[u8], rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
        mutate::mutate_form(input, rng, corpus)
    }

    fn run(&self, input: &[u8]) -> String {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(input).into_owned().collect();
        let text: String = pairs.iter().map(|(k, v)| format!("{k}\n{}\n", jws_text(v))).collect();
        let mut labels = Vec::new();
        if let Ok(params) = Params::new(&pairs, portcullis_core::settings::DEFAULT_MAX_FORM_PARAMS) {
            for name in ["client_id", "scope", "grant_type"] {
                let _ = (params.get(name), params.has(name), params.require(name));
            }
        }
        let max = self.provider.settings().max_form_params;
        let direct = |pairs: Vec<(String, String)>| FormParams::parse(pairs, max).map(DirectRequest::post);
        let r = match direct(self.with_assertions(&pairs)) {
            Ok(req) => block_on(self.provider.push_authorization_request(req)),
            Err(e) => Err(e),
        };
        labels.push(label_oauth(&r, &text));
        let proof = self.dpop_proof(&self.provider.settings().endpoints.token);
        let r = match direct(self.with_assertions(&pairs)) {
            Ok(req) => block_on(self.provider.token(req.with_dpop(vec![proof]))),
            Err(e) => Err(e),
        };
        labels.push(label_oauth(&r, &text));
        let r = match direct(self.with_assertions(&pairs)) {
            Ok(req) => block_on(self.provider.introspect(&req)),
            Err(e) => Err(e),
        };
        labels.push(label_oauth(&r, &text));
        labels.join(" / ")
    }
}

// ---------------------------------------------------------------------------------------------

/// Registration metadata (RFC 7591) through `validate_metadata`; what is accepted must survive
/// the store's JSON round trip unchanged.
struct RegistrationTarget {
    keys: Keys,
    scopes: Vec<String>,
}

impl RegistrationTarget {
    fn new() -> Self {
        Self {
            keys: Keys::new(),
            scopes: Settings::with_defaults(ISSUER).scopes_supported,
        }
    }
}

impl Target for RegistrationTarget {
    fn name(&self) -> &'static str {
        "registration"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let full = json!({
            "client_name": "Example", "redirect_uris": [REDIRECT, "https://rp.example/cb2"],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "private_key_jwt", "jwks": self.keys.jwks(),
            "dpop_bound_access_tokens": true, "scope": "openid profile",
            "client_uri": "https://rp.example/", "logo_uri": "https://rp.example/logo.png",
            "policy_uri": "https://rp.example/policy", "tos_uri": "https://rp.example/tos",
            "contacts": ["ops@rp.example"], "software_id": "rp", "software_version": "1.0",
            "token_endpoint_auth_signing_alg": "ES256", "id_token_signed_response_alg": "PS256",
        });
        let remote = json!({"redirect_uris": [REDIRECT], "jwks_uri": "https://rp.example/jwks"});
        let tls = json!({
            "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=rp,O=Example",
        });
        [full, remote, tls]
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap_or_default())
            .collect()
    }

    fn mutate(&self, input: &[u8], rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
        mutate::mutate_json_input(input, rng, corpus)
    }

    fn run(&self, input: &[u8]) -> String {
        let Ok(value) = serde_json::from_slice::<Value>(input) else {
            return "not JSON".into();
        };
        let r = validate_metadata(&value, &self.scopes);
        if let Ok(m) = &r {
            let stored = serde_json::to_string(m).expect("metadata serialises");
            let back: ClientMetadata = serde_json::from_str(&stored).expect("stored metadata reads back");
            assert_eq!(&back, m, "metadata changed in the store's JSON round trip");
        }
        label_oauth(&r, &String::from_utf8_lossy(input))
    }
}
