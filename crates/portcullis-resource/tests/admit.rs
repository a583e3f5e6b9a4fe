//! Every refusal of the resource rules, against a fake token source (issue 15): real DPoP proofs
//! and real certificates, a token store and a replay store in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use portcullis_cert::ClientCertificate;
use portcullis_jose::{Algorithm, SigningKey, b64url, sha256_b64url};
use portcullis_resource::{
    AdmitError, CertificateThumbprint, JwkThumbprint, NonceSource, Policy, ReplayGuard, ResourceRequest,
    SenderConstraint, SourceError, TokenInfo, TokenSource, admit,
};
use serde_json::{Value, json};

const URL: &str = "https://rs.example/api/accounts";
const NOW: i64 = 1_800_000_000;
const NONCE: &str = "server-nonce";

struct Nonces;
impl NonceSource for Nonces {
    fn current(&self, _: i64) -> String {
        NONCE.into()
    }
    fn is_current(&self, n: &str, _: i64) -> bool {
        n == NONCE
    }
    fn is_valid(&self, n: &str, _: i64) -> bool {
        n == NONCE
    }
}

#[derive(Default)]
struct Tokens {
    tokens: HashMap<String, TokenInfo>,
    fail: AtomicBool,
}

#[async_trait]
impl TokenSource for Tokens {
    async fn lookup(&self, token: &str, _: i64) -> Result<Option<TokenInfo>, SourceError> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(SourceError("introspection unavailable".into()));
        }
        Ok(self.tokens.get(token).cloned())
    }
}

#[derive(Default)]
struct Replay(Mutex<HashMap<String, i64>>);

#[async_trait]
impl ReplayGuard for Replay {
    async fn remember_once(&self, key: &str, until: i64, _: i64) -> Result<bool, SourceError> {
        Ok(self.0.lock().unwrap().insert(key.to_owned(), until).is_none())
    }
}

struct Key(SigningKey);

impl Key {
    fn new() -> Self {
        Self(SigningKey::generate(Algorithm::Es256).unwrap())
    }
    fn jkt(&self) -> JwkThumbprint {
        JwkThumbprint::parse(self.0.public_jwk().thumbprint()).unwrap()
    }
    fn proof_with(&self, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
        let mut jwk = self.0.public_jwk().to_json();
        jwk.as_object_mut().unwrap().remove("kid");
        let mut header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let mut claims = json!({"jti": b64url(rand()), "htm": "GET", "htu": URL, "iat": NOW,
            "ath": sha256_b64url("dpop-token"), "nonce": NONCE});
        edit(&mut header, &mut claims);
        let input = format!("{}.{}", b64url(header.to_string()), b64url(claims.to_string()));
        let sig = self.0.sign_raw(input.as_bytes()).unwrap();
        format!("{input}.{}", b64url(sig))
    }
    fn proof(&self) -> String {
        self.proof_with(|_, _| {})
    }
}

/// A distinct jti for every proof.
fn rand() -> [u8; 8] {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes()
}

fn certificate(cn: &str) -> ClientCertificate {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let cert = p.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
    ClientCertificate::from_der_chain(vec![cert.der().to_vec()]).unwrap()
}

fn info(binding: Option<SenderConstraint>) -> TokenInfo {
    TokenInfo {
        subject: "alice".into(),
        client_id: "c1".into(),
        scope: vec!["accounts".into()],
        audience: vec![],
        expires_at: NOW + 60,
        binding,
    }
}

struct World {
    key: Key,
    cert: ClientCertificate,
    tokens: Tokens,
    replay: Replay,
}

impl World {
    fn new() -> Self {
        let key = Key::new();
        let cert = certificate("client");
        let mut tokens = Tokens::default();
        tokens.tokens.insert(
            "dpop-token".into(),
            info(Some(SenderConstraint::Dpop { jkt: key.jkt() })),
        );
        tokens.tokens.insert(
            "mtls-token".into(),
            info(Some(SenderConstraint::Mtls {
                x5t_s256: CertificateThumbprint::parse(cert.thumbprint()).unwrap(),
            })),
        );
        tokens.tokens.insert("unbound-token".into(), info(None));
        Self {
            key,
            cert,
            tokens,
            replay: Replay::default(),
        }
    }

    async fn call(
        &self,
        authorization: &[&str],
        dpop: &[&str],
        certificate: Option<&ClientCertificate>,
        policy: Policy<'_>,
    ) -> Result<portcullis_resource::Admitted, AdmitError> {
        let req = ResourceRequest {
            method: "GET",
            url: URL,
            authorization,
            dpop,
            certificate,
        };
        admit(&req, NOW, &Nonces, &self.tokens, &self.replay, &policy).await
    }
}

fn policy() -> Policy<'static> {
    Policy {
        scopes: &["accounts"],
        audience: Some(URL),
        nonce_required: true,
        signatures: None,
    }
}

/// (code, status) of a refusal.
fn refused(r: Result<portcullis_resource::Admitted, AdmitError>) -> (&'static str, u16) {
    match r {
        Err(AdmitError::Refused(e)) => (e.code(), e.status()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn good_requests_are_admitted_once() {
    let w = World::new();
    let proof = w.key.proof();
    let ok = w.call(&["DPoP dpop-token"], &[&proof], None, policy()).await.unwrap();
    assert_eq!(ok.token.subject, "alice");
    // RFC 9449 §11.1: the same proof again is a replay
    assert_eq!(
        refused(w.call(&["DPoP dpop-token"], &[&proof], None, policy()).await),
        ("invalid_dpop_proof", 401)
    );
    // RFC 8705 §3: the certificate-bound token over its certificate, Bearer in any case
    for scheme in ["Bearer", "bearer"] {
        let auth = format!("{scheme} mtls-token");
        assert!(w.call(&[&auth], &[], Some(&w.cert), policy()).await.is_ok());
    }
}

#[tokio::test]
async fn dpop_proof_refusals() {
    let w = World::new();
    let a = ["DPoP dpop-token"];
    let cases: Vec<(&str, String)> = vec![
        ("htm", w.key.proof_with(|_, c| c["htm"] = json!("POST"))),
        (
            "htu",
            w.key.proof_with(|_, c| c["htu"] = json!("https://rs.example/other")),
        ),
        (
            "ath",
            w.key
                .proof_with(|_, c| c["ath"] = json!(sha256_b64url("another token"))),
        ),
        (
            "no ath",
            w.key.proof_with(|_, c| drop(c.as_object_mut().unwrap().remove("ath"))),
        ),
        ("old iat", w.key.proof_with(|_, c| c["iat"] = json!(NOW - 301))),
        ("future iat", w.key.proof_with(|_, c| c["iat"] = json!(NOW + 61))),
        ("typ", w.key.proof_with(|h, _| h["typ"] = json!("jwt"))),
        (
            "no jti",
            w.key.proof_with(|_, c| drop(c.as_object_mut().unwrap().remove("jti"))),
        ),
        ("alg none", w.key.proof_with(|h, _| h["alg"] = json!("none"))),
        ("signature", {
            let p = w.key.proof();
            let (head, _) = p.rsplit_once('.').unwrap();
            format!("{head}.{}", b64url([1u8; 64]))
        }),
    ];
    for (what, proof) in cases {
        assert_eq!(
            refused(w.call(&a, &[&proof], None, policy()).await),
            ("invalid_dpop_proof", 401),
            "{what}"
        );
    }
    // two proofs, or none
    let (p1, p2) = (w.key.proof(), w.key.proof());
    assert_eq!(
        refused(w.call(&a, &[&p1, &p2], None, policy()).await).0,
        "invalid_dpop_proof"
    );
    assert_eq!(refused(w.call(&a, &[], None, policy()).await).0, "invalid_dpop_proof");
    // RFC 9449 §9: a missing or unknown nonce asks for the current one
    for proof in [
        w.key
            .proof_with(|_, c| drop(c.as_object_mut().unwrap().remove("nonce"))),
        w.key.proof_with(|_, c| c["nonce"] = json!("stale")),
    ] {
        match w.call(&a, &[&proof], None, policy()).await {
            Err(AdmitError::Refused(e)) => {
                assert_eq!((e.code(), e.status()), ("use_dpop_nonce", 401));
                assert_eq!(
                    e.kind,
                    portcullis_resource::ResourceErrorKind::UseDpopNonce(NONCE.into())
                );
            }
            other => panic!("{other:?}"),
        }
    }
    // none of these wrote a replay record
    assert!(w.replay.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn token_and_binding_refusals() {
    let w = World::new();
    let other_key = Key::new();
    let other_cert = certificate("someone else");
    let proof = || w.key.proof_with(|_, c| c["ath"] = json!(sha256_b64url("mtls-token")));
    let cases = [
        // RS-SP-09: a DPoP-bound token as Bearer (with a certificate), or with another key
        (
            "dpop as bearer",
            w.call(&["Bearer dpop-token"], &[], Some(&w.cert), policy()).await,
        ),
        (
            "other key",
            w.call(&["DPoP dpop-token"], &[&other_key.proof()], None, policy())
                .await,
        ),
        // RS-SP-15: a certificate-bound token without, or over another, certificate, or as DPoP
        (
            "mtls without cert",
            w.call(&["Bearer mtls-token"], &[], None, policy()).await,
        ),
        (
            "mtls other cert",
            w.call(&["Bearer mtls-token"], &[], Some(&other_cert), policy()).await,
        ),
        (
            "mtls as dpop",
            w.call(&["DPoP mtls-token"], &[&proof()], None, policy()).await,
        ),
        // an unbound token is never admitted, an unknown one is as unknown
        (
            "unbound",
            w.call(&["Bearer unbound-token"], &[], Some(&w.cert), policy()).await,
        ),
        ("unknown", w.call(&["Bearer nope"], &[], Some(&w.cert), policy()).await),
        // the scheme, the header
        ("basic", w.call(&["Basic x"], &[], None, policy()).await),
        ("empty", w.call(&["Bearer "], &[], Some(&w.cert), policy()).await),
    ];
    for (what, r) in cases {
        assert_eq!(refused(r), ("invalid_token", 401), "{what}");
    }
    assert_eq!(refused(w.call(&[], &[], None, policy()).await), ("invalid_token", 401));
    assert_eq!(
        refused(w.call(&["Bearer a", "Bearer b"], &[], None, policy()).await),
        ("invalid_request", 400)
    );
    assert!(
        w.replay.0.lock().unwrap().is_empty(),
        "refused requests wrote replay records"
    );
}

#[tokio::test]
async fn expiry_audience_scope_and_source_failures() {
    let mut w = World::new();
    let cert = w.cert.clone();
    let bound = Some(SenderConstraint::Mtls {
        x5t_s256: CertificateThumbprint::parse(cert.thumbprint()).unwrap(),
    });
    let mut expired = info(bound.clone());
    expired.expires_at = NOW;
    let mut elsewhere = info(bound.clone());
    elsewhere.audience = vec!["https://other.example/api".into()];
    let mut mine = info(bound.clone());
    mine.audience = vec!["https://other.example/api".into(), URL.into()];
    let mut narrow = info(bound);
    narrow.scope = vec!["openid".into()];
    for (name, t) in [
        ("expired", expired),
        ("elsewhere", elsewhere),
        ("mine", mine),
        ("narrow", narrow),
    ] {
        w.tokens.tokens.insert(name.into(), t);
    }
    let call = |t: &'static str| {
        let auth = format!("Bearer {t}");
        let w = &w;
        let cert = cert.clone();
        async move { w.call(&[&auth], &[], Some(&cert), policy()).await }
    };
    assert_eq!(refused(call("expired").await), ("invalid_token", 401));
    assert_eq!(refused(call("elsewhere").await), ("invalid_token", 401));
    assert!(call("mine").await.is_ok());
    assert_eq!(refused(call("narrow").await), ("insufficient_scope", 403));
    w.tokens.fail.store(true, Ordering::Relaxed);
    assert!(matches!(call("mine").await, Err(AdmitError::Source(_))));
}
