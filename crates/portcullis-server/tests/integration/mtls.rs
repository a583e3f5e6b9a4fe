//! RFC 8705 end to end, over real TLS with certificates made here: `tls_client_auth` and
//! `self_signed_tls_client_auth` client authentication, certificate-bound tokens, both mixed
//! combinations with private_key_jwt and DPoP, the mTLS endpoint aliases, and client
//! certificates forwarded by a TLS-terminating proxy (AS-SP-18, 24, 29, 30, 72, 86..88, 91;
//! RS-SP-15).

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use serde_json::{Value, json};

use crate::harness::*;

/// A client CA of the tester's, and the certificates it issues.
struct Pki {
    _dir: tempfile::TempDir,
    ca_file: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.distinguished_name
        .push(DnType::OrganizationName, "Portcullis Test PKI");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = ca_params(name).self_signed(&key).unwrap();
        let ca_file = dir.path().join("client-ca.pem");
        std::fs::write(&ca_file, cert.pem()).unwrap();
        Pki {
            ca_file: ca_file.to_str().unwrap().to_owned(),
            _dir: dir,
            issuer: Issuer::new(ca_params(name), key),
        }
    }

    /// A client certificate `CN=<cn>, O=Portcullis Test` with the clientAuth EKU.
    fn issue(&self, cn: &str, sans: Vec<SanType>) -> ClientCert {
        self.issue_with(cn, sans, |_| {})
    }

    fn issue_with(&self, cn: &str, sans: Vec<SanType>, edit: impl FnOnce(&mut CertificateParams)) -> ClientCert {
        let mut p = client_params(cn, sans);
        edit(&mut p);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        ClientCert::new(cert.pem(), cert.der().to_vec(), key)
    }
}

fn client_params(cn: &str, sans: Vec<SanType>) -> CertificateParams {
    let mut p = CertificateParams::default();
    // the subject is O=Portcullis Test, CN=<cn> in ASN.1 order: `CN=<cn>,O=Portcullis Test` in
    // RFC 4514's (rcgen's default name holds a CN already, which would keep its place)
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::OrganizationName, "Portcullis Test");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = sans;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p
}

/// A client certificate with its key.
struct ClientCert {
    pem: String,
    der: Vec<u8>,
    key: KeyPair,
}

impl ClientCert {
    fn new(pem: String, der: Vec<u8>, key: KeyPair) -> Self {
        Self { pem, der, key }
    }

    fn self_signed(cn: &str) -> ClientCert {
        let key = KeyPair::generate().unwrap();
        let cert = client_params(cn, vec![]).self_signed(&key).unwrap();
        ClientCert::new(cert.pem(), cert.der().to_vec(), key)
    }

    /// RFC 8705 §3.1 `x5t#S256`, computed here independently of the server.
    fn x5t(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.der);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
    }

    /// The P-256 public JWK of the certificate's key, with the certificate as `x5c` (RFC 7517
    /// §4.7: standard base64 DER).
    fn jwk(&self) -> Value {
        let raw = self.key.public_key_raw();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig",
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
            "x5c": [base64::engine::general_purpose::STANDARD.encode(&self.der)],
        })
    }

    /// An HTTPS client trusting the server's CA and presenting this certificate.
    fn client(&self, s: &Server) -> reqwest::Client {
        let ca = std::fs::read(s.ca_path()).unwrap();
        let identity =
            reqwest::Identity::from_pem(format!("{}{}", self.pem, self.key.serialize_pem()).as_bytes()).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .identity(identity)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// RFC 9440 `Client-Cert`: the DER as a structured-field byte sequence.
    fn rfc9440(&self) -> String {
        format!(":{}:", base64::engine::general_purpose::STANDARD.encode(&self.der))
    }
}

/// The `mtls_endpoint_aliases` URL of an endpoint.
fn alias(s: &Server, name: &str) -> String {
    s.meta["mtls_endpoint_aliases"][name].as_str().unwrap().to_owned()
}

/// A client as the tests drive it: how it authenticates, and over which HTTPS client.
struct MtlsRp {
    rp: Rp,
    /// Present when it authenticates with private_key_jwt.
    assertion: bool,
    http: reqwest::Client,
}

impl MtlsRp {
    async fn register(s: &Server, http: reqwest::Client, metadata: Value) -> MtlsRp {
        let mut body = json!({
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": "openid profile email",
        });
        let key = portcullis_jose::SigningKey::generate(portcullis_jose::Algorithm::Es256).unwrap();
        let assertion = metadata["token_endpoint_auth_method"] == "private_key_jwt";
        if assertion {
            body["jwks"] = json!({"keys": [key.public_jwk().to_json()]});
        }
        for (k, v) in metadata.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = s
            .http
            .post(s.endpoint("registration_endpoint"))
            .bearer_auth(s.initial_access_token())
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let registration: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "registration: {registration}");
        MtlsRp {
            rp: Rp {
                client_id: registration["client_id"].as_str().unwrap().to_owned(),
                key,
                registration,
            },
            assertion,
            http,
        }
    }

    /// The client authentication parameters: an assertion, or the client_id that goes with the
    /// certificate (RFC 8705 §2).
    fn auth(&self, s: &Server) -> Vec<(String, String)> {
        if self.assertion {
            self.rp.auth(s)
        } else {
            vec![("client_id".into(), self.rp.client_id.clone())]
        }
    }

    async fn post(
        &self,
        url: &str,
        mut params: Vec<(String, String)>,
        s: &Server,
        dpop: Option<String>,
    ) -> reqwest::Response {
        params.extend(self.auth(s));
        let mut req = self.http.post(url).form(&params);
        if let Some(p) = dpop {
            req = req.header("dpop", p);
        }
        req.send().await.unwrap()
    }

    /// PAR at the mTLS alias, the front channel, and the code.
    async fn code(&self, s: &Server) -> (String, Par) {
        self.code_with(s, Par::new(&self.rp)).await
    }

    async fn code_with(&self, s: &Server, par: Par) -> (String, Par) {
        let params: Vec<(String, String)> = par.params.iter().filter(|(k, _)| k != "client_id").cloned().collect();
        let r = self
            .post(&alias(s, "pushed_authorization_request_endpoint"), params, s, None)
            .await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "PAR: {body}");
        let cb = Browser::default()
            .run(s, &self.rp.client_id, body["request_uri"].as_str().unwrap())
            .await;
        let q = query(&cb);
        assert_eq!(q.get("iss"), Some(&s.issuer));
        (q["code"].clone(), par)
    }

    async fn token(&self, s: &Server, params: Vec<(String, String)>) -> reqwest::Response {
        self.post(&alias(s, "token_endpoint"), params, s, None).await
    }
}

trait RunAllow {
    async fn run(self, s: &Server, client_id: &str, request_uri: &str) -> url::Url;
}

impl RunAllow for Browser {
    async fn run(mut self, s: &Server, client_id: &str, request_uri: &str) -> url::Url {
        Browser::run(&mut self, s, client_id, request_uri, "allow").await
    }
}

async fn json(r: reqwest::Response, what: &str) -> Value {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{what}: {body}");
    body
}

async fn userinfo_bearer(http: &reqwest::Client, s: &Server, scheme: &str, token: &str) -> reqwest::Response {
    http.get(alias(s, "userinfo_endpoint"))
        .header("authorization", format!("{scheme} {token}"))
        .send()
        .await
        .unwrap()
}

/// The whole flow with `tls_client_auth` and certificate-bound tokens: PAR and token at the
/// aliases with the certificate and `client_id`, `token_type: Bearer`, `cnf.x5t#S256` of this
/// very certificate, userinfo with the same certificate only, refresh with it only.
#[tokio::test]
async fn tls_client_auth_with_certificate_bound_tokens() {
    let pki = Pki::new("Test client CA");
    let s = Server::start_with(&[("PORTCULLIS_TLS_CLIENT_CA_FILE", &pki.ca_file)]).await;
    let cert = pki.issue("client-one", vec![]);
    let other = pki.issue("client-two", vec![]);
    let rp = MtlsRp::register(
        &s,
        cert.client(&s),
        json!({
            "token_endpoint_auth_method": "tls_client_auth",
            // RFC 4514 order (the certificate's last RDN first), in other letter case
            "tls_client_auth_subject_dn": "cn=client-one, o=portcullis test",
            "tls_client_certificate_bound_access_tokens": true,
        }),
    )
    .await;
    let (code, par) = rp.code(&s).await;
    let t = json(rp.token(&s, code_params(&code, &par.verifier)).await, "token").await;
    assert_eq!(t["token_type"], "Bearer");
    let at = t["access_token"].as_str().unwrap();

    // introspection (with the certificate) reports the binding, computed independently
    let i = json(
        rp.post(
            &alias(&s, "introspection_endpoint"),
            vec![("token".into(), at.into())],
            &s,
            None,
        )
        .await,
        "introspection",
    )
    .await;
    assert_eq!(i["active"], true);
    assert_eq!(i["token_type"], "Bearer");
    assert_eq!(i["cnf"], json!({ "x5t#S256": cert.x5t() }));

    // RS-SP-15: userinfo with the same certificate, the Bearer scheme in any letter case
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = userinfo_bearer(&rp.http, &s, scheme, at).await;
        assert_eq!(r.status(), 200, "{scheme}");
    }
    // another client's certificate, none at all, or the DPoP scheme: 401 invalid_token
    let bad = [
        (userinfo_bearer(&other.client(&s), &s, "Bearer", at).await, "Bearer"),
        (
            s.http
                .get(s.endpoint("userinfo_endpoint"))
                .bearer_auth(at)
                .send()
                .await
                .unwrap(),
            "Bearer",
        ),
        (
            // a certificate-bound token with the DPoP scheme and a valid proof (nonce and ath)
            {
                let key = DpopKey::new();
                let ui = alias(&s, "userinfo_endpoint");
                let r = rp
                    .http
                    .get(&ui)
                    .header("authorization", format!("DPoP {at}"))
                    .header("dpop", key.proof("GET", &ui, None, Some(at)))
                    .send()
                    .await
                    .unwrap();
                let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_owned();
                rp.http
                    .get(&ui)
                    .header("authorization", format!("DPoP {at}"))
                    .header("dpop", key.proof("GET", &ui, Some(&nonce), Some(at)))
                    .send()
                    .await
                    .unwrap()
            },
            "DPoP",
        ),
    ];
    for (r, scheme) in bad {
        assert_eq!(r.status(), 401, "{scheme}");
        let w = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(w.starts_with(scheme), "{w}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token", "{scheme}: {body}");
    }

    // AS-SP-91: a refresh needs the certificate; with it, a new certificate-bound token
    let rt = t["refresh_token"].as_str().unwrap();
    let refresh = || {
        vec![
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), rt.into()),
        ]
    };
    let r = s
        .post_form(
            &s.endpoint("token_endpoint"),
            &[refresh(), vec![("client_id".into(), rp.rp.client_id.clone())]].concat(),
            &[],
        )
        .await;
    let (status, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"), "{description}");
    assert!(description.contains("no client certificate"), "{description}");
    let t2 = json(rp.token(&s, refresh()).await, "refresh").await;
    assert_eq!(t2["token_type"], "Bearer");
    let r = userinfo_bearer(&rp.http, &s, "Bearer", t2["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    // the other client's certificate does not authenticate this client
    let r = s2_post(&other, &s, &alias(&s, "token_endpoint"), &rp.rp.client_id, refresh()).await;
    let (status, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"), "{description}");
    assert!(description.contains("registered subject"), "{description}");
}

/// A GET over a certificate other than the token's.
async fn other_client_get(s: &Server, url: &str, token: &str) -> reqwest::Response {
    ClientCert::self_signed("someone-else")
        .client(s)
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn without_client_id(mut params: Vec<(String, String)>) -> Vec<(String, String)> {
    params.retain(|(k, _)| k != "client_id");
    params
}

/// A POST as `client_id` over `cert`'s connection.
async fn s2_post(
    cert: &ClientCert,
    s: &Server,
    url: &str,
    client_id: &str,
    mut params: Vec<(String, String)>,
) -> reqwest::Response {
    params.push(("client_id".into(), client_id.into()));
    cert.client(s).post(url).form(&params).send().await.unwrap()
}

/// RFC 8705 §2.1: every way a certificate fails tls_client_auth is 401 invalid_client saying
/// which check failed; the SAN subjects match as registered.
#[tokio::test]
async fn tls_client_auth_refusals() {
    let pki = Pki::new("Test client CA");
    let foreign = Pki::new("Someone else's CA");
    let s = Server::start_with(&[("PORTCULLIS_TLS_CLIENT_CA_FILE", &pki.ca_file)]).await;
    let good = pki.issue(
        "client-one",
        vec![SanType::DnsName("client-one.example".try_into().unwrap())],
    );
    let register = |subject: Value| {
        let http = good.client(&s);
        let s = &s;
        async move {
            let mut m = json!({"token_endpoint_auth_method": "tls_client_auth"});
            for (k, v) in subject.as_object().unwrap() {
                m[k] = v.clone();
            }
            MtlsRp::register(s, http, m).await
        }
    };
    let by_dn = register(json!({"tls_client_auth_subject_dn": "CN=client-one,O=Portcullis Test"})).await;
    let by_dns = register(json!({"tls_client_auth_san_dns": "CLIENT-ONE.example"})).await;
    let wrong_dns = register(json!({"tls_client_auth_san_dns": "client-two.example"})).await;
    let par = |rp: &MtlsRp, cert: &ClientCert| {
        let p = Par::new(&rp.rp);
        let params: Vec<(String, String)> = p.params.into_iter().filter(|(k, _)| k != "client_id").collect();
        let url = alias(&s, "pushed_authorization_request_endpoint");
        let client_id = rp.rp.client_id.clone();
        let http = cert.client(&s);
        async move {
            let mut params = params;
            params.push(("client_id".into(), client_id));
            http.post(url).form(&params).send().await.unwrap()
        }
    };
    assert_eq!(par(&by_dn, &good).await.status(), 201, "DN");
    assert_eq!(par(&by_dns, &good).await.status(), 201, "SAN DNS, any case");
    let expired = pki.issue_with("client-one", vec![], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let server_only = pki.issue_with("client-one", vec![], |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    });
    let cases = [
        (par(&wrong_dns, &good).await, "registered subject"),
        (
            par(&by_dn, &pki.issue("client-two", vec![])).await,
            "registered subject",
        ),
        (par(&by_dn, &foreign.issue("client-one", vec![])).await, "not accepted"),
        (
            par(&by_dn, &ClientCert::self_signed("client-one")).await,
            "not accepted",
        ),
        (par(&by_dn, &expired).await, "not accepted"),
        (par(&by_dn, &server_only).await, "not accepted"),
    ];
    for (i, (r, says)) in cases.into_iter().enumerate() {
        let (status, error, description) = error_of(r).await;
        assert_eq!(
            (status, error.as_str()),
            (401, "invalid_client"),
            "case {i}: {description}"
        );
        assert!(description.contains(says), "case {i}: {description}");
    }
    // a client_id that is not registered, and no client_id at all
    let r = s2_post(
        &good,
        &s,
        &alias(&s, "pushed_authorization_request_endpoint"),
        "nobody",
        vec![],
    )
    .await;
    let (status, error, _) = error_of(r).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    let r = good
        .client(&s)
        .post(alias(&s, "pushed_authorization_request_endpoint"))
        .form(&[("response_type", "code")])
        .send()
        .await
        .unwrap();
    let (status, error, _) = error_of(r).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
}

/// Without `tls.client_ca_file` no CA is trusted: tls_client_auth is not offered in discovery,
/// not registered (by DCR or the CLI), and a client registered while a CA was configured is
/// refused, saying why.
#[tokio::test]
async fn tls_client_auth_without_a_configured_ca() {
    let pki = Pki::new("Test client CA");
    let mut s = Server::start_with(&[("PORTCULLIS_TLS_CLIENT_CA_FILE", &pki.ca_file)]).await;
    let cert = pki.issue("client-one", vec![]);
    let rp = MtlsRp::register(
        &s,
        cert.client(&s),
        json!({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=client-one,O=Portcullis Test"}),
    )
    .await;
    // the operator removes the CA
    s.set_env("PORTCULLIS_TLS_CLIENT_CA_FILE", "");
    s.restart().await;
    assert!(
        !s.meta["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("tls_client_auth"))
    );
    let rp = MtlsRp {
        http: cert.client(&s),
        ..rp
    };
    let r = rp
        .post(
            &alias(&s, "pushed_authorization_request_endpoint"),
            without_client_id(Par::new(&rp.rp).params),
            &s,
            None,
        )
        .await;
    let (status, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    assert!(description.contains("tls.client_ca_file"), "{description}");
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth(s.initial_access_token())
        .json(&json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=client-one,O=Portcullis Test",
        }))
        .send()
        .await
        .unwrap();
    let (status, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_client_metadata"));
    assert!(description.contains("tls.client_ca_file"), "{description}");
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "tls_client_auth",
            "--tls-subject-dn",
            "CN=client-one",
            "--redirect-uri",
            REDIRECT_URI,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls.client_ca_file"));
}

/// RFC 8705 §2.2: a self-signed certificate registered as a key's `x5c` authenticates; another
/// self-signed certificate with the same subject does not.
#[tokio::test]
async fn self_signed_tls_client_auth() {
    let s = Server::start().await;
    let cert = ClientCert::self_signed("self-signed-client");
    let rp = MtlsRp::register(
        &s,
        cert.client(&s),
        json!({
            "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": {"keys": [cert.jwk()]},
            "tls_client_certificate_bound_access_tokens": true,
        }),
    )
    .await;
    let (code, par) = rp.code(&s).await;
    let t = json(rp.token(&s, code_params(&code, &par.verifier)).await, "token").await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(
        userinfo_bearer(&rp.http, &s, "Bearer", t["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    let impostor = ClientCert::self_signed("self-signed-client");
    let r = s2_post(
        &impostor,
        &s,
        &alias(&s, "pushed_authorization_request_endpoint"),
        &rp.rp.client_id,
        without_client_id(Par::new(&rp.rp).params),
    )
    .await;
    let (status, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    assert!(description.contains("x5c"), "{description}");
    // a registration whose x5c does not carry the JWK's key is refused
    let mut jwk = cert.jwk();
    jwk["x5c"] = impostor.jwk()["x5c"].clone();
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth(s.initial_access_token())
        .json(&json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": {"keys": [jwk]},
        }))
        .send()
        .await
        .unwrap();
    let (status, error, _) = error_of(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_client_metadata"));
}

/// Mixed: private_key_jwt with certificate-bound tokens. The token request must come over the
/// certificate (never an unbound token), without a DPoP proof.
#[tokio::test]
async fn private_key_jwt_with_certificate_bound_tokens() {
    let s = Server::start().await;
    let cert = ClientCert::self_signed("any-certificate");
    let rp = MtlsRp::register(
        &s,
        cert.client(&s),
        json!({"token_endpoint_auth_method": "private_key_jwt", "tls_client_certificate_bound_access_tokens": true}),
    )
    .await;
    let (code, par) = rp.code(&s).await;
    // AS-SP-72: no certificate (the main listener never asks for one): refused, code kept
    let r = s
        .post_form(
            &s.endpoint("token_endpoint"),
            &[code_params(&code, &par.verifier), rp.auth(&s)].concat(),
            &[],
        )
        .await;
    let (status, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"), "{description}");
    assert!(description.contains("certificate-bound"), "{description}");
    // a DPoP proof is not the binding this client registered for (the proof itself is
    // checked first: a nonce, then the refusal)
    let key = DpopKey::new();
    let te = alias(&s, "token_endpoint");
    let r = rp
        .post(
            &te,
            code_params(&code, &par.verifier),
            &s,
            Some(key.proof("POST", &te, None, None)),
        )
        .await;
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let r = rp
        .post(
            &te,
            code_params(&code, &par.verifier),
            &s,
            Some(key.proof("POST", &te, Some(&nonce), None)),
        )
        .await;
    let (status, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"), "{description}");
    assert!(description.contains("send no DPoP proof"), "{description}");
    let t = json(rp.token(&s, code_params(&code, &par.verifier)).await, "token").await;
    assert_eq!(t["token_type"], "Bearer");
    let i = json(
        rp.post(
            &alias(&s, "introspection_endpoint"),
            vec![("token".into(), t["access_token"].as_str().unwrap().into())],
            &s,
            None,
        )
        .await,
        "introspection",
    )
    .await;
    assert_eq!(i["cnf"], json!({ "x5t#S256": cert.x5t() }));

    // the demo API takes the certificate-bound token over the certificate only (its scope was
    // granted: the client asked for every scope it is registered for)
    let at = t["access_token"].as_str().unwrap();
    let api = s.meta["portcullis_demo_api"]["mtls_accounts_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = rp.http.get(&api).bearer_auth(at).send().await.unwrap();
    assert_eq!(r.status(), 403, "no accounts scope in this grant");
    let r = other_client_get(&s, &api, at).await;
    assert_eq!(r.status(), 401);

    // AS-SP-91: a refresh without the certificate is refused (the client did authenticate)
    let rt = t["refresh_token"].as_str().unwrap();
    let refresh = || {
        vec![
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), rt.into()),
        ]
    };
    let r = s
        .post_form(&s.endpoint("token_endpoint"), &[refresh(), rp.auth(&s)].concat(), &[])
        .await;
    let (status, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"), "{description}");
    // a refresh over another certificate binds the new token to that one (the refresh token
    // is bound to the client, RFC 8705 §3), and the old certificate does not use it
    let other = ClientCert::self_signed("another-certificate");
    let mut rp = rp;
    let first_http = std::mem::replace(&mut rp.http, other.client(&s));
    let t2 = json(rp.token(&s, refresh()).await, "refresh").await;
    let at2 = t2["access_token"].as_str().unwrap();
    assert_eq!(userinfo_bearer(&rp.http, &s, "Bearer", at2).await.status(), 200);
    assert_eq!(userinfo_bearer(&first_http, &s, "Bearer", at2).await.status(), 401);
}

/// Mixed: tls_client_auth with DPoP-bound tokens. The proof's `htu` is the URL actually called
/// (the alias), and the tokens are DPoP tokens, used at userinfo on the main listener.
#[tokio::test]
async fn tls_client_auth_with_dpop_bound_tokens() {
    let pki = Pki::new("Test client CA");
    let s = Server::start_with(&[("PORTCULLIS_TLS_CLIENT_CA_FILE", &pki.ca_file)]).await;
    let cert = pki.issue(
        "client-one",
        vec![SanType::URI("https://client-one.example/".try_into().unwrap())],
    );
    let rp = MtlsRp::register(
        &s,
        cert.client(&s),
        json!({
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_uri": "https://client-one.example/",
            "dpop_bound_access_tokens": true,
        }),
    )
    .await;
    let (code, par) = rp.code(&s).await;
    let key = DpopKey::new();
    let te = alias(&s, "token_endpoint");
    // a proof for the main token URL does not fit a request to the alias; the nonce comes back
    let r = rp
        .post(
            &te,
            code_params(&code, &par.verifier),
            &s,
            Some(key.proof("POST", &s.endpoint("token_endpoint"), None, None)),
        )
        .await;
    let (status, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_dpop_proof"), "{description}");
    assert!(description.contains("htu"), "{description}");
    let r = rp
        .post(
            &te,
            code_params(&code, &par.verifier),
            &s,
            Some(key.proof("POST", &te, None, None)),
        )
        .await;
    assert_eq!(r.status(), 400);
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    // without a proof: no token (AS-SP-79)
    let r = rp.token(&s, code_params(&code, &par.verifier)).await;
    let (status, error, _) = error_of(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_dpop_proof"));
    let r = rp
        .post(
            &te,
            code_params(&code, &par.verifier),
            &s,
            Some(key.proof("POST", &te, Some(&nonce), None)),
        )
        .await;
    let t = json(r, "token").await;
    assert_eq!(t["token_type"], "DPoP");
    let at = t["access_token"].as_str().unwrap();
    let ui = s.endpoint("userinfo_endpoint");
    let r = s
        .http
        .get(&ui)
        .header("authorization", format!("DPoP {at}"))
        .header("dpop", key.proof("GET", &ui, Some(&nonce), Some(at)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // a DPoP-bound token presented as Bearer with a certificate stays refused
    let r = userinfo_bearer(&rp.http, &s, "Bearer", at).await;
    assert_eq!(r.status(), 401);
}

/// Behind a TLS-terminating proxy: the named header is believed only from
/// `tls.trusted_proxies`, in both forms; from anyone else it is ignored; a certificate on the
/// TLS connection is never overridden by a header.
#[tokio::test]
async fn client_certificates_forwarded_by_a_proxy() {
    let pki = Pki::new("Test client CA");
    let trusted = Server::start_with(&[
        ("PORTCULLIS_TLS_CLIENT_CA_FILE", &pki.ca_file),
        ("PORTCULLIS_TLS_CLIENT_CERT_HEADER", "X-Client-Cert"),
        ("PORTCULLIS_TLS_TRUSTED_PROXIES", "127.0.0.1/32,::1"),
    ])
    .await;
    let cert = pki.issue("client-one", vec![]);
    let other = pki.issue("client-two", vec![]);
    let s = &trusted;
    let rp = MtlsRp::register(
        s,
        s.http.clone(),
        json!({
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=client-one,O=Portcullis Test",
            "tls_client_certificate_bound_access_tokens": true,
        }),
    )
    .await;
    let push = |http: reqwest::Client, header: Option<String>, url: String| {
        let mut params = Par::new(&rp.rp).params;
        params.retain(|(k, _)| k != "client_id");
        params.push(("client_id".into(), rp.rp.client_id.clone()));
        async move {
            let mut req = http.post(url).form(&params);
            if let Some(h) = header {
                req = req.header("x-client-cert", h);
            }
            req.send().await.unwrap()
        }
    };
    let par_url = s.endpoint("pushed_authorization_request_endpoint");
    // RFC 9440 form and URL-encoded PEM form, on the main listener (no TLS certificate there)
    // as nginx's $ssl_client_escaped_cert sends it: percent-encoded (a `+` stays a `+`, as in
    // the base64 body)
    let pem_form: String = cert
        .pem
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    for form in [cert.rfc9440(), pem_form] {
        let r = push(s.http.clone(), Some(form), par_url.clone()).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let r = push(s.http.clone(), Some("not a certificate".into()), par_url.clone()).await;
    let (status, error, _) = error_of(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"));
    // a header never overrides a TLS certificate: from a trusted proxy, a connection whose
    // certificate (client-two's) differs from the forwarded one (client-one's) is refused
    let mtls_par = alias(s, "pushed_authorization_request_endpoint");
    let r = push(other.client(s), Some(cert.rfc9440()), mtls_par.clone()).await;
    let (status, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"), "{description}");
    assert!(description.contains("differ"), "{description}");
    // ... the same certificate both ways is fine, and so is a header on the mTLS listener from
    // a proxy that presents no certificate of its own
    let r = push(cert.client(s), Some(cert.rfc9440()), mtls_par.clone()).await;
    assert_eq!(r.status(), 201);
    let r = push(s.http.clone(), Some(cert.rfc9440()), mtls_par.clone()).await;
    assert_eq!(r.status(), 201);
    // the header twice (a proxy that appends instead of replacing): refused, whichever is first
    for pair in [[other.rfc9440(), cert.rfc9440()], [cert.rfc9440(), other.rfc9440()]] {
        let mut params = without_client_id(Par::new(&rp.rp).params);
        params.push(("client_id".into(), rp.rp.client_id.clone()));
        let r = s
            .http
            .post(&par_url)
            .header("x-client-cert", &pair[0])
            .header("x-client-cert", &pair[1])
            .form(&params)
            .send()
            .await
            .unwrap();
        let (status, error, description) = error_of(r).await;
        assert_eq!((status, error.as_str()), (400, "invalid_request"), "{description}");
        assert!(description.contains("more than once"), "{description}");
    }
    // the whole flow through the proxy: the token is bound to the forwarded certificate
    let p = Par::new(&rp.rp);
    let forwarded = |url: String, params: Vec<(String, String)>| {
        let http = s.http.clone();
        let h = cert.rfc9440();
        async move {
            http.post(url)
                .header("x-client-cert", h)
                .form(&params)
                .send()
                .await
                .unwrap()
        }
    };
    let r = forwarded(par_url.clone(), p.params.clone()).await;
    let body: Value = r.json().await.unwrap();
    let cb = Browser::default()
        .run(s, &rp.rp.client_id, body["request_uri"].as_str().unwrap())
        .await;
    let code = query(&cb)["code"].clone();
    let mut params = code_params(&code, &p.verifier);
    params.push(("client_id".into(), rp.rp.client_id.clone()));
    let t = json(forwarded(s.endpoint("token_endpoint"), params).await, "token").await;
    assert_eq!(t["token_type"], "Bearer");
    let at = t["access_token"].as_str().unwrap().to_owned();
    let i = json(
        forwarded(
            s.endpoint("introspection_endpoint"),
            vec![
                ("token".into(), at.clone()),
                ("client_id".into(), rp.rp.client_id.clone()),
            ],
        )
        .await,
        "introspection",
    )
    .await;
    assert_eq!(i["cnf"], json!({ "x5t#S256": cert.x5t() }));
    let r = s
        .http
        .get(s.endpoint("userinfo_endpoint"))
        .header("x-client-cert", cert.rfc9440())
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // a server whose trusted proxies do not include this address ignores the header
    let untrusted = Server::start_with(&[
        ("PORTCULLIS_TLS_CLIENT_CA_FILE", &pki.ca_file),
        ("PORTCULLIS_TLS_CLIENT_CERT_HEADER", "X-Client-Cert"),
        ("PORTCULLIS_TLS_TRUSTED_PROXIES", "10.0.0.0/8"),
    ])
    .await;
    let rp2 = MtlsRp::register(
        &untrusted,
        untrusted.http.clone(),
        json!({
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=client-one,O=Portcullis Test",
        }),
    )
    .await;
    let mut params = Par::new(&rp2.rp).params;
    params.retain(|(k, _)| k != "client_id");
    params.push(("client_id".into(), rp2.rp.client_id.clone()));
    let r = untrusted
        .http
        .post(untrusted.endpoint("pushed_authorization_request_endpoint"))
        .header("x-client-cert", cert.rfc9440())
        .form(&params)
        .send()
        .await
        .unwrap();
    let (status, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    assert!(description.contains("no client certificate"), "{description}");
}

/// The demo API with a certificate-bound token (tls_client_auth): over the certificate only,
/// with the Bearer scheme only.
#[tokio::test]
async fn demo_api_with_certificate_bound_tokens() {
    let pki = Pki::new("Test client CA");
    let s = Server::start_with(&[("PORTCULLIS_TLS_CLIENT_CA_FILE", &pki.ca_file)]).await;
    let cert = pki.issue("client-one", vec![]);
    let rp = MtlsRp::register(
        &s,
        cert.client(&s),
        json!({
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=client-one,O=Portcullis Test",
            "tls_client_certificate_bound_access_tokens": true,
            "scope": "openid accounts",
        }),
    )
    .await;
    let (code, par) = rp.code_with(&s, Par::new(&rp.rp).set("scope", "openid accounts")).await;
    let t = json(rp.token(&s, code_params(&code, &par.verifier)).await, "token").await;
    let at = t["access_token"].as_str().unwrap();
    let api = s.meta["portcullis_demo_api"]["mtls_accounts_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = rp.http.get(&api).bearer_auth(at).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("date").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["accounts"].as_array().unwrap().len(), 2);
    assert_eq!(other_client_get(&s, &api, at).await.status(), 401);
    let main = s.meta["portcullis_demo_api"]["accounts_endpoint"].as_str().unwrap();
    assert_eq!(s.http.get(main).bearer_auth(at).send().await.unwrap().status(), 401);
}

/// The resource crate as another service, with certificate-bound tokens: it introspects as a
/// resource server authenticated by its own self-signed certificate (at the mTLS alias), and
/// reads the client's certificate from its TLS-terminating proxy's header.
#[tokio::test]
async fn resource_crate_with_certificates() {
    use crate::resource_crate::{RS, serve_api};
    use portcullis_resource::proxy::CertificateSource;
    use portcullis_resource::service::Introspection;

    let s = Server::start_with(&[("PORTCULLIS_TOKENS_RESOURCES", RS)]).await;
    // the API registers its self-signed certificate as a resource server
    let api_cert = ClientCert::self_signed("accounts-api");
    let jwks = s.dir.join("api-jwks.json");
    std::fs::write(&jwks, json!({"keys": [api_cert.jwk()]}).to_string()).unwrap();
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "self_signed_tls_client_auth",
            "--jwks-file",
            jwks.to_str().unwrap(),
            "--resource-server",
            RS,
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reg: Value = serde_json::from_slice(&out.stdout).unwrap();
    let source = Introspection::with_certificate(
        api_cert.client(&s),
        &s.issuer,
        &alias(&s, "introspection_endpoint"),
        reg["client_id"].as_str().unwrap(),
    );
    let proxy = CertificateSource::new("X-Client-Cert", &["127.0.0.1".into()]).unwrap();
    let api = serve_api(source, Some(proxy)).await;

    // a client with certificate-bound tokens for the API's resource
    let cert = ClientCert::self_signed("client-one");
    let rp = MtlsRp::register(
        &s,
        cert.client(&s),
        json!({"token_endpoint_auth_method": "private_key_jwt", "tls_client_certificate_bound_access_tokens": true,
            "scope": "openid accounts"}),
    )
    .await;
    let mut par = Par::new(&rp.rp).set("scope", "openid accounts");
    par.params.push(("resource".into(), RS.into()));
    let (code, par) = rp.code_with(&s, par).await;
    let t = json(rp.token(&s, code_params(&code, &par.verifier)).await, "token").await;
    let at = t["access_token"].as_str().unwrap().to_owned();
    let call = |header: Option<String>| {
        let mut req = reqwest::Client::new().get(&api).bearer_auth(&at);
        if let Some(h) = header {
            req = req.header("x-client-cert", h);
        }
        req.send()
    };
    assert_eq!(call(Some(cert.rfc9440())).await.unwrap().status(), 200);
    let other = ClientCert::self_signed("client-two");
    let r = call(Some(other.rfc9440())).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer error=\"invalid_token\"")
    );
    assert_eq!(call(None).await.unwrap().status(), 401);
}
