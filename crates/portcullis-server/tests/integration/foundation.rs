//! Discovery, JWKS, registration (RFC 7591/7592), the CLI and restarts.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use portcullis_jose::{Algorithm, SigningKey, b64url, b64url_decode};
use reqwest::Response;
use serde_json::{Value, json};

#[allow(unused_imports)]
use crate::harness::*;

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

const FAPI_ALGS: [&str; 4] = ["PS256", "ES256", "EdDSA", "Ed25519"];
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A valid private_key_jwt registration request for `key`.
fn registration_body(key: &SigningKey) -> Value {
    json!({
        "client_name": "Foundation test client",
        "redirect_uris": [REDIRECT_URI, REDIRECT_URI_2],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.public_jwk().to_json()]},
        "dpop_bound_access_tokens": true,
    })
}

fn es256() -> SigningKey {
    SigningKey::generate(Algorithm::Es256).unwrap()
}

/// POSTs a JSON registration request with an optional initial access token.
async fn register_raw(s: &Server, token: Option<&str>, body: &Value) -> Response {
    let mut req = s.http.post(s.endpoint("registration_endpoint")).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// `registration-token create` with extra arguments.
fn registration_token(s: &Server, args: &[&str]) -> String {
    let mut all = vec!["registration-token", "create"];
    all.extend_from_slice(args);
    let out = s.cli(&all, None);
    assert!(
        out.status.success(),
        "registration-token create {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.len() >= 43, "initial access token too short: {token:?}");
    token
}

/// Registers a client over DCR and returns it as an `Rp` (with the registration response).
async fn dcr_client(s: &Server) -> Rp {
    let key = es256();
    let r = register_raw(s, Some(&s.initial_access_token()), &registration_body(&key)).await;
    let status = r.status();
    let registration: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "registration refused: {registration}");
    Rp {
        client_id: registration["client_id"].as_str().unwrap().to_owned(),
        key,
        registration,
    }
}

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

fn interaction_id(r: &Response) -> String {
    header(r, "x-fapi-interaction-id").unwrap_or_else(|| panic!("{} {}: no x-fapi-interaction-id", r.status(), r.url()))
}

fn assert_fresh_uuid(r: &Response) -> String {
    let id = interaction_id(r);
    let parsed =
        uuid::Uuid::parse_str(&id).unwrap_or_else(|e| panic!("x-fapi-interaction-id {id:?} is not a UUID: {e}"));
    assert_eq!(
        parsed.get_version_num(),
        4,
        "a minted x-fapi-interaction-id should be a random (v4) UUID: {id}"
    );
    id
}

fn assert_no_store(r: &Response, what: &str) {
    let cc = header(r, "cache-control").unwrap_or_default();
    assert!(
        cc.split(',').any(|d| d.trim().eq_ignore_ascii_case("no-store")),
        "{what}: Cache-Control {cc:?} lacks no-store"
    );
}

/// Status and JSON body; the body must be an RFC 6749 error with `error` and `error_description`.
async fn json_error(r: Response, what: &str) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {text}"));
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: no `error`: {body}"
    );
    assert!(
        body["error_description"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: no `error_description`: {body}"
    );
    (status, body)
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Exit status 2 and exactly one line on stderr.
fn assert_usage_error(o: &Output, what: &str) -> String {
    let err = stderr_of(o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{what}: expected exit 2, got {:?}; stdout {:?} stderr {err:?}",
        o.status,
        stdout_of(o)
    );
    assert_eq!(
        err.trim().lines().count(),
        1,
        "{what}: expected a one-line reason on stderr, got {err:?}"
    );
    err
}

/// Runs a command with `stdin`, killing it after `timeout`.
fn run_with_timeout(mut cmd: Command, stdin: &[u8], timeout: Duration) -> Output {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "{:?} is not installed on this machine; this test needs it",
                cmd.get_program()
            )
        }
        Err(e) => panic!("cannot run {:?}: {e}", cmd.get_program()),
    };
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin);
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            let out = rx.recv().unwrap().unwrap();
            panic!(
                "{:?} did not finish within {timeout:?}; stdout {:?} stderr {:?}",
                cmd.get_program(),
                stdout_of(&out),
                stderr_of(&out)
            );
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the binary on its own data dir, with ports that cannot collide and `env` on top.
fn run_bin(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--data-dir").arg(data_dir);
    cmd.env("PORTCULLIS_SERVER_ISSUER", format!("https://localhost:{port}"))
        .env("PORTCULLIS_SERVER_LISTEN", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_SERVER_MTLS_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("PORTCULLIS_LOG_LEVEL", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(cmd, b"", Duration::from_secs(20))
}

async fn get_json(s: &Server, url: &str) -> Value {
    let r = s.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    let text = r.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {text}"))
}

async fn server_jwks(s: &Server) -> Value {
    get_json(s, &s.endpoint("jwks_uri")).await
}

fn kids(jwks: &Value) -> HashSet<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn jwt_header(jwt: &str) -> Value {
    let h = jwt.split('.').next().unwrap();
    serde_json::from_slice(&b64url_decode(h).unwrap()).unwrap()
}

/// The tokens of a full flow for a fresh DCR client.
async fn id_token_of(s: &Server, rp: &Rp) -> String {
    let (body, _) = tokens(s, rp, &DpopKey::new()).await;
    body["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token: {body}"))
        .to_owned()
}

/// All bytes of the SQLite database, including its WAL and shared-memory files.
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with("portcullis.db") {
            all.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    assert!(!all.is_empty(), "no portcullis.db in {}", dir.display());
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// 1. discovery — AS-SP-12..20, §11
// ---------------------------------------------------------------------------------------------

// AS-SP-12, AS-SP-13, AS-SP-14, AS-SP-15, AS-SP-16, AS-SP-17, AS-SP-19, AS-SP-20, §11
#[tokio::test]
async fn as_sp_12_20_discovery_documents() {
    let s = Server::start().await;
    let oidc_url = format!("{}/.well-known/openid-configuration", s.issuer);
    let oauth_url = format!("https://localhost:{}/.well-known/oauth-authorization-server", s.port);
    let mut docs = Vec::new();
    for url in [&oidc_url, &oauth_url] {
        let r = s.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {url}");
        let ct = header(&r, "content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "GET {url}: content-type {ct:?}");
        docs.push(r.json::<Value>().await.unwrap());
    }
    assert_eq!(docs[0], docs[1], "the OIDC and RFC 8414 documents differ");
    let m = &docs[0];
    // AS-SP-13
    assert_eq!(m["issuer"], json!(s.issuer), "issuer");
    // every endpoint is https under the issuer
    let prefix = format!("{}/", s.issuer);
    let obj = m.as_object().unwrap();
    let mut endpoints = 0;
    for (k, v) in obj {
        if k.ends_with("_endpoint") || k == "jwks_uri" {
            let u = v.as_str().unwrap_or_else(|| panic!("{k} is not a string: {v}"));
            assert!(
                u.starts_with(&prefix),
                "{k} = {u} is not https under the issuer {}",
                s.issuer
            );
            url::Url::parse(u).unwrap_or_else(|e| panic!("{k} = {u}: {e}"));
            endpoints += 1;
        }
    }
    for k in [
        "authorization_endpoint",
        "token_endpoint",
        "pushed_authorization_request_endpoint",
        "jwks_uri",
        "registration_endpoint",
        "userinfo_endpoint",
    ] {
        assert!(obj.contains_key(k), "metadata lacks {k}: {m}");
    }
    assert!(endpoints >= 6);
    // AS-SP-15
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    // AS-SP-20
    assert_eq!(m["response_types_supported"], json!(["code"]));
    // AS-SP-14
    assert_eq!(m["require_pushed_authorization_requests"], json!(true));
    // AS-SP-16
    assert_eq!(m["authorization_response_iss_parameter_supported"], json!(true));
    // AS-SP-19
    let methods = m["token_endpoint_auth_methods_supported"]
        .as_array()
        .expect("token_endpoint_auth_methods_supported");
    assert!(methods.contains(&json!("private_key_jwt")), "{methods:?}");
    for bad in ["none", "client_secret_basic", "client_secret_post", "client_secret_jwt"] {
        assert!(
            !methods.contains(&json!(bad)),
            "token_endpoint_auth_methods_supported lists {bad}"
        );
    }
    // AS-SP-17, AS-SP-19, SP 5.4.1: FAPI algorithms only
    let mut alg_lists = 0;
    for (k, v) in obj.iter().filter(|(k, _)| k.ends_with("_alg_values_supported")) {
        let list = v.as_array().unwrap_or_else(|| panic!("{k} is not an array"));
        assert!(!list.is_empty(), "{k} is empty");
        for a in list {
            assert!(
                a.as_str().is_some_and(|a| FAPI_ALGS.contains(&a)),
                "{k} lists {a}, not a FAPI 2.0 algorithm"
            );
        }
        alg_lists += 1;
    }
    for k in [
        "dpop_signing_alg_values_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(obj.contains_key(k), "metadata lacks {k}");
    }
    assert!(alg_lists >= 3);
    let text = m.to_string();
    assert!(!text.contains("\"plain\""), "metadata mentions plain: {text}");
    assert!(!text.contains("\"RS256\""), "metadata mentions RS256: {text}");
    assert!(!text.contains("\"HS256\""), "metadata mentions HS256: {text}");
    // §11
    assert!(
        m["scopes_supported"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("openid"))),
        "scopes_supported lacks openid"
    );
    assert!(
        m["subject_types_supported"].as_array().is_some_and(|a| !a.is_empty()),
        "subject_types_supported"
    );
    assert!(
        m["grant_types_supported"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("authorization_code")))
    );
    assert!(m["registration_endpoint"].is_string(), "registration_endpoint");
}

// AS-SP-11, AS-SP-18, OPT-18..20: do not advertise what is not implemented
#[tokio::test]
async fn as_sp_18_discovery_advertises_nothing_unimplemented() {
    let s = Server::start().await;
    for url in [
        format!("{}/.well-known/openid-configuration", s.issuer),
        format!("https://localhost:{}/.well-known/oauth-authorization-server", s.port),
    ] {
        let m = get_json(&s, &url).await;
        for k in [
            "mtls_endpoint_aliases",
            "revocation_endpoint",
            "tls_client_certificate_bound_access_tokens",
            "request_object_signing_alg_values_supported",
        ] {
            assert!(m.get(k).is_none(), "{url} advertises {k} = {}", m[k]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. JWKS — AS-SP-21, AS-SP-22, SP 5.4.1
// ---------------------------------------------------------------------------------------------

// AS-SP-21, AS-SP-22
#[tokio::test]
async fn as_sp_21_jwks_three_public_signing_keys() {
    let s = Server::start().await;
    let jwks_uri = s.endpoint("jwks_uri");
    assert!(jwks_uri.starts_with("https://"), "jwks_uri {jwks_uri}");
    let jwks = server_jwks(&s).await;
    let keys = jwks["keys"].as_array().expect("keys array");
    assert_eq!(keys.len(), 3, "expected three keys: {jwks}");
    assert_eq!(kids(&jwks).len(), 3, "kids are not unique: {jwks}");
    let mut seen = HashSet::new();
    for k in keys {
        let kid = k["kid"].as_str().unwrap_or_else(|| panic!("key without kid: {k}"));
        assert!(!kid.is_empty());
        assert_eq!(k["use"], json!("sig"), "{kid}: use");
        for m in PRIVATE_JWK_MEMBERS {
            assert!(k.get(m).is_none(), "{kid} publishes private member {m}");
        }
        let (kty, alg) = (k["kty"].as_str().unwrap(), k["alg"].as_str().unwrap_or(""));
        match kty {
            "EC" => {
                assert_eq!(k["crv"], json!("P-256"), "{k}");
                assert_eq!(alg, "ES256", "{k}");
            }
            "RSA" => {
                assert_eq!(alg, "PS256", "{k}");
                let n = b64url_decode(k["n"].as_str().unwrap()).unwrap();
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                assert!(bits >= 2048, "RSA modulus has {bits} bits");
            }
            "OKP" => {
                assert_eq!(k["crv"], json!("Ed25519"), "{k}");
                assert!(alg == "EdDSA" || alg == "Ed25519", "{k}");
            }
            other => panic!("unexpected kty {other}: {k}"),
        }
        seen.insert(kty.to_owned());
        // an independent JOSE library accepts every key
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(k.clone()).unwrap_or_else(|e| panic!("jsonwebtoken cannot parse {k}: {e}"));
        jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap_or_else(|e| panic!("jsonwebtoken cannot use {k}: {e}"));
    }
    assert_eq!(
        seen,
        HashSet::from(["EC".to_owned(), "RSA".to_owned(), "OKP".to_owned()])
    );
}

// ---------------------------------------------------------------------------------------------
// 3. HTTP conventions — IA 2.2.1, RFC 6749 §5.1/§5.2, RFC 9126 §2.3
// ---------------------------------------------------------------------------------------------

// IA 2.2.1 (x-fapi-interaction-id)
#[tokio::test]
async fn ia_interaction_id_echoed_or_minted() {
    let s = Server::start().await;
    let discovery = format!("{}/.well-known/openid-configuration", s.issuer);
    let par = s.endpoint("pushed_authorization_request_endpoint");
    let reg = s.endpoint("registration_endpoint");
    let sent = uuid::Uuid::new_v4().to_string();

    // discovery
    let r = s
        .http
        .get(&discovery)
        .header("x-fapi-interaction-id", &sent)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(interaction_id(&r), sent, "discovery does not echo the interaction id");
    let r1 = s.http.get(&discovery).send().await.unwrap();
    let r2 = s.http.get(&discovery).send().await.unwrap();
    assert_ne!(
        assert_fresh_uuid(&r1),
        assert_fresh_uuid(&r2),
        "two requests got the same minted interaction id"
    );

    // an error: PAR without client authentication
    let form = [("response_type", "code"), ("client_id", "nobody")];
    let r = s
        .http
        .post(&par)
        .header("x-fapi-interaction-id", &sent)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(interaction_id(&r), sent, "PAR error does not echo the interaction id");
    let r = s.http.post(&par).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_fresh_uuid(&r);

    // the registration endpoint: refusal and success
    let r = s
        .http
        .post(&reg)
        .header("x-fapi-interaction-id", &sent)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        interaction_id(&r),
        sent,
        "registration error does not echo the interaction id"
    );
    let other = uuid::Uuid::new_v4().to_string();
    let r = s
        .http
        .post(&reg)
        .bearer_auth(s.initial_access_token())
        .header("x-fapi-interaction-id", &other)
        .json(&registration_body(&es256()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        interaction_id(&r),
        other,
        "registration does not echo the interaction id"
    );
    let r = register_raw(&s, Some(&s.initial_access_token()), &registration_body(&es256())).await;
    assert_eq!(r.status(), 201);
    assert_fresh_uuid(&r);
}

// RFC 6749 §5.1 / RFC 7591 §3.2: no-store on registration and token responses
#[tokio::test]
async fn rfc6749_no_store_on_registration_and_token_errors() {
    let s = Server::start().await;
    // registration: 201, 400, 401
    let r = register_raw(&s, Some(&s.initial_access_token()), &registration_body(&es256())).await;
    assert_eq!(r.status(), 201);
    assert_no_store(&r, "registration 201");
    let reg: Value = r.json().await.unwrap();
    let mut bad = registration_body(&es256());
    bad["redirect_uris"] = json!(["http://client.example.org/cb"]);
    let r = register_raw(&s, Some(&s.initial_access_token()), &bad).await;
    assert_eq!(r.status(), 400);
    assert_no_store(&r, "registration 400");
    let r = register_raw(&s, None, &registration_body(&es256())).await;
    assert_eq!(r.status(), 401);
    assert_no_store(&r, "registration 401");
    // RFC 7592 read
    let r = s
        .http
        .get(reg["registration_client_uri"].as_str().unwrap())
        .bearer_auth(reg["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_no_store(&r, "registration read 200");

    // token endpoint errors: no client auth, then a bad grant from an authenticated client
    let te = s.endpoint("token_endpoint");
    let r = s
        .http
        .post(&te)
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_client_error(),
        "token without client auth: {}",
        r.status()
    );
    assert_no_store(&r, "token error (no client auth)");
    let (status, body) = json_error(r, "token without client auth").await;
    assert!(status == 400 || status == 401, "{status} {body}");
    assert_eq!(body["error"], json!("invalid_client"), "{body}");

    let rp = Rp::register(&s).await;
    let mut params = rp.auth(&s);
    params.push(("grant_type".into(), "authorization_code".into()));
    params.push(("code".into(), "no-such-code".into()));
    params.push(("redirect_uri".into(), REDIRECT_URI.into()));
    params.push(("code_verifier".into(), pkce().0));
    let key = DpopKey::new();
    let r = s.post_form(&te, &params, &[key.proof("POST", &te, None, None)]).await;
    assert_eq!(r.status(), 400);
    assert_no_store(&r, "token error 400");
    json_error(r, "token 400").await;
}

// RFC 6749 §5.2, RFC 9126 §2.3 (405, 413), RFC 9110 (404)
#[tokio::test]
async fn rfc9126_http_status_and_json_errors() {
    let s = Server::start().await;
    let par = s.endpoint("pushed_authorization_request_endpoint");

    // PAR without client authentication: 401 invalid_client, JSON
    let r = s
        .http
        .post(&par)
        .form(&[("response_type", "code"), ("client_id", "nobody")])
        .send()
        .await
        .unwrap();
    let (status, body) = json_error(r, "PAR without client auth").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], json!("invalid_client"));

    // 405 on GET
    let r = s.http.get(&par).send().await.unwrap();
    assert_eq!(r.status(), 405, "GET on PAR");
    json_error(r, "GET on PAR").await;

    // 413 over 64 KiB
    let big = format!("response_type=code&client_id=x&state={}", "a".repeat(70 * 1024));
    let r = s
        .http
        .post(&par)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "a 70 KiB PAR body");
    assert!(
        header(&r, "x-fapi-interaction-id").is_some(),
        "413 without x-fapi-interaction-id"
    );
    json_error(r, "413 at PAR").await;
    // just under the limit is not refused for its size
    let small = format!("response_type=code&client_id=x&state={}", "a".repeat(60 * 1024));
    let r = s
        .http
        .post(&par)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(small)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a 60 KiB PAR body should reach client authentication");

    // 404 with a JSON body
    let r = s.http.get(format!("{}/no/such/path", s.issuer)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(header(&r, "x-fapi-interaction-id").is_some());
    json_error(r, "unknown path").await;

    // a registration refusal is JSON too
    let mut bad = registration_body(&es256());
    bad["response_types"] = json!(["token"]);
    let r = register_raw(&s, Some(&s.initial_access_token()), &bad).await;
    let (status, _) = json_error(r, "registration refusal").await;
    assert_eq!(status, 400);
}

// ---------------------------------------------------------------------------------------------
// 4. DCR (RFC 7591) — AS-OPT-21..25, AS-SP-23, AS-SP-30
// ---------------------------------------------------------------------------------------------

// AS-OPT-21, AS-OPT-25
#[tokio::test]
async fn as_opt_21_registration_accepted() {
    let s = Server::start().await;
    let key = es256();
    let body = registration_body(&key);
    let before = now();
    let r = register_raw(&s, Some(&s.initial_access_token()), &body).await;
    assert_eq!(r.status(), 201);
    let ct = header(&r, "content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let reg: Value = r.json().await.unwrap();
    let client_id = reg["client_id"].as_str().expect("client_id");
    assert!(!client_id.is_empty());
    let iat = reg["client_id_issued_at"]
        .as_i64()
        .expect("client_id_issued_at is a number");
    assert!((before - 5..=now() + 5).contains(&iat), "client_id_issued_at {iat}");
    let rat = reg["registration_access_token"]
        .as_str()
        .expect("registration_access_token");
    assert!(
        rat.len() >= 43,
        "registration_access_token too short for 128 bits: {rat:?} (AS-OPT-25)"
    );
    assert_eq!(
        reg["registration_client_uri"],
        json!(format!("{}/{client_id}", s.endpoint("registration_endpoint"))),
        "registration_client_uri"
    );
    for k in [
        "client_name",
        "redirect_uris",
        "grant_types",
        "response_types",
        "token_endpoint_auth_method",
        "jwks",
        "dpop_bound_access_tokens",
    ] {
        assert_eq!(reg[k], body[k], "{k} not echoed: {reg}");
    }
    // AS-SP-31: the client cannot choose its client_id
    let mut chosen = body.clone();
    chosen["client_id"] = json!(USER);
    let r = register_raw(&s, Some(&s.initial_access_token()), &chosen).await;
    assert_eq!(r.status(), 201);
    let reg3: Value = r.json().await.unwrap();
    assert_ne!(reg3["client_id"], json!(USER), "the client chose its own client_id");
    // a second registration gets another client_id and another token
    let reg2: Value = register_raw(&s, Some(&s.initial_access_token()), &body)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(reg2["client_id"], reg["client_id"]);
    assert_ne!(reg2["registration_access_token"], reg["registration_access_token"]);
    // and the registered client authenticates at PAR
    let rp = Rp {
        client_id: client_id.to_owned(),
        key,
        registration: reg.clone(),
    };
    Par::new(&rp).push(&s, &rp).await;
}

// AS-OPT-22, AS-OPT-23, AS-SP-23, AS-SP-30, AS-SP-38
#[tokio::test]
async fn as_opt_23_registration_refusals() {
    let s = Server::start().await;
    let token = s.initial_access_token();
    let rsa_1024 = json!({"kty": "RSA", "e": "AQAB", "n": b64url([0xc5u8; 128])});
    let mut with_d = es256().public_jwk().to_json();
    with_d["d"] = json!(b64url([7u8; 32]));
    let oct = json!({"kty": "oct", "k": b64url([1u8; 32])});
    let no_jwks = |v: &mut Value| {
        v.as_object_mut().unwrap().remove("jwks");
    };
    type Edit = Box<dyn Fn(&mut Value)>;
    let set = |k: &'static str, val: Value| -> Edit { Box::new(move |v: &mut Value| v[k] = val.clone()) };
    let cases: Vec<(&str, Edit, &str, &[&str])> = vec![
        (
            "http redirect URI",
            set("redirect_uris", json!(["http://client.example.org/cb"])),
            "invalid_redirect_uri",
            &["redirect_uris"],
        ),
        (
            "redirect URI with fragment",
            set("redirect_uris", json!(["https://client.example.org/cb#x"])),
            "invalid_redirect_uri",
            &["redirect_uris"],
        ),
        (
            "missing redirect_uris",
            Box::new(|v: &mut Value| {
                v.as_object_mut().unwrap().remove("redirect_uris");
            }),
            "invalid_redirect_uri",
            &["redirect_uris"],
        ),
        (
            "empty redirect_uris",
            set("redirect_uris", json!([])),
            "invalid_redirect_uri",
            &["redirect_uris"],
        ),
        (
            "response_types token",
            set("response_types", json!(["token"])),
            "invalid_client_metadata",
            &["response_types"],
        ),
        (
            "response_types code id_token",
            set("response_types", json!(["code id_token"])),
            "invalid_client_metadata",
            &["response_types"],
        ),
        (
            "grant password",
            set("grant_types", json!(["authorization_code", "password"])),
            "invalid_client_metadata",
            &["grant_types"],
        ),
        (
            "grant implicit",
            set("grant_types", json!(["authorization_code", "implicit"])),
            "invalid_client_metadata",
            &["grant_types"],
        ),
        (
            "grant client_credentials",
            set("grant_types", json!(["authorization_code", "client_credentials"])),
            "invalid_client_metadata",
            &["grant_types"],
        ),
        (
            "client_secret_basic",
            set("token_endpoint_auth_method", json!("client_secret_basic")),
            "invalid_client_metadata",
            &["token_endpoint_auth_method"],
        ),
        (
            "auth method none",
            set("token_endpoint_auth_method", json!("none")),
            "invalid_client_metadata",
            &["token_endpoint_auth_method"],
        ),
        (
            "client_secret_jwt",
            set("token_endpoint_auth_method", json!("client_secret_jwt")),
            "invalid_client_metadata",
            &["token_endpoint_auth_method"],
        ),
        (
            "client_secret_post",
            set("token_endpoint_auth_method", json!("client_secret_post")),
            "invalid_client_metadata",
            &["token_endpoint_auth_method"],
        ),
        (
            "private_key_jwt without keys",
            Box::new(no_jwks),
            "invalid_client_metadata",
            &["jwks"],
        ),
        (
            "jwks and jwks_uri",
            set("jwks_uri", json!("https://client.example.org/jwks")),
            "invalid_client_metadata",
            &["jwks", "jwks_uri"],
        ),
        (
            "jwks_uri over http",
            Box::new(move |v: &mut Value| {
                no_jwks(v);
                v["jwks_uri"] = json!("http://client.example.org/jwks");
            }),
            "invalid_client_metadata",
            &["jwks_uri"],
        ),
        (
            "JWK with private part d",
            set("jwks", json!({"keys": [with_d]})),
            "invalid_client_metadata",
            &["jwks"],
        ),
        (
            "RSA key of 1024 bits",
            set("jwks", json!({"keys": [rsa_1024]})),
            "invalid_client_metadata",
            &["jwks"],
        ),
        (
            "oct key",
            set("jwks", json!({"keys": [oct]})),
            "invalid_client_metadata",
            &["jwks"],
        ),
        (
            "token_endpoint_auth_signing_alg RS256",
            set("token_endpoint_auth_signing_alg", json!("RS256")),
            "invalid_client_metadata",
            &["token_endpoint_auth_signing_alg"],
        ),
        (
            "id_token_signed_response_alg none",
            set("id_token_signed_response_alg", json!("none")),
            "invalid_client_metadata",
            &["id_token_signed_response_alg"],
        ),
        (
            "tls_client_auth without subject field",
            Box::new(move |v: &mut Value| {
                no_jwks(v);
                v["token_endpoint_auth_method"] = json!("tls_client_auth");
            }),
            "invalid_client_metadata",
            &["tls_client_auth"],
        ),
        (
            "tls_client_auth with two subject fields",
            Box::new(move |v: &mut Value| {
                no_jwks(v);
                v["token_endpoint_auth_method"] = json!("tls_client_auth");
                v["tls_client_auth_subject_dn"] = json!("CN=client");
                v["tls_client_auth_san_dns"] = json!("client.example.org");
            }),
            "invalid_client_metadata",
            &["tls_client_auth"],
        ),
    ];
    let mut failures = Vec::new();
    for (what, edit, error, fields) in &cases {
        let mut body = registration_body(&es256());
        edit(&mut body);
        let r = register_raw(&s, Some(&token), &body).await;
        let (status, err) = json_error(r, what).await;
        let description = err["error_description"].as_str().unwrap();
        if status != 400 || err["error"] != json!(error) || !fields.iter().all(|f| description.contains(f)) {
            failures.push(format!(
                "{what}: expected 400 {error} naming {fields:?}, got {status} {err}"
            ));
        }
    }
    // a body that is not JSON at all
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, err) = json_error(r, "non-JSON body").await;
    if status != 400 || err["error"] != json!("invalid_client_metadata") {
        failures.push(format!(
            "non-JSON body: expected 400 invalid_client_metadata, got {status} {err}"
        ));
    }
    // a JSON value that is not an object
    let r = register_raw(&s, Some(&token), &json!(["redirect_uris"])).await;
    let (status, err) = json_error(r, "JSON array body").await;
    if status != 400 || err["error"] != json!("invalid_client_metadata") {
        failures.push(format!(
            "JSON array body: expected 400 invalid_client_metadata, got {status} {err}"
        ));
    }
    assert!(
        failures.is_empty(),
        "registration refusals wrong:\n{}",
        failures.join("\n")
    );
    // nothing of the above was registered
    let out = s.cli(&["client", "list"], None);
    assert!(out.status.success());
    assert_eq!(stdout_of(&out).trim(), "", "refused registrations left clients behind");
}

// AS-OPT-21 (initial access token), RFC 6750 §3
#[tokio::test]
async fn as_opt_21_initial_access_token_required() {
    let s = Server::start().await;
    let body = registration_body(&es256());
    // none
    let r = register_raw(&s, None, &body).await;
    assert_eq!(r.status(), 401);
    let www = header(&r, "www-authenticate").unwrap_or_default();
    assert!(
        www.starts_with("Bearer"),
        "WWW-Authenticate {www:?} should be a Bearer challenge"
    );
    json_error(r, "registration without token").await;
    // wrong
    let r = register_raw(&s, Some("not-a-real-initial-access-token-0123456789abcdef"), &body).await;
    let www = header(&r, "www-authenticate").unwrap_or_default();
    let (status, err) = json_error(r, "registration with a wrong token").await;
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["error"], json!("invalid_token"), "{err}");
    assert!(www.starts_with("Bearer"), "WWW-Authenticate {www:?}");
    // a registration access token is not an initial access token
    let reg: Value = register_raw(&s, Some(&s.initial_access_token()), &body)
        .await
        .json()
        .await
        .unwrap();
    let r = register_raw(&s, Some(reg["registration_access_token"].as_str().unwrap()), &body).await;
    assert_eq!(
        r.status(),
        401,
        "a registration access token served as an initial access token"
    );
    // an unlimited token serves several registrations
    let t = s.initial_access_token();
    for i in 0..3 {
        assert_eq!(
            register_raw(&s, Some(&t), &body).await.status(),
            201,
            "registration {i} with an unlimited token"
        );
    }
}

// AS-OPT-21: --uses N
#[tokio::test]
async fn as_opt_21_initial_access_token_single_use() {
    let s = Server::start().await;
    let t = registration_token(&s, &["--uses", "1"]);
    let r = register_raw(&s, Some(&t), &registration_body(&es256())).await;
    assert_eq!(r.status(), 201, "first registration with a --uses 1 token");
    let r = register_raw(&s, Some(&t), &registration_body(&es256())).await;
    let (status, err) = json_error(r, "second use").await;
    assert_eq!(status, 401, "second registration with a --uses 1 token: {err}");
    assert_eq!(err["error"], json!("invalid_token"));

    // --uses 2: exactly two
    let t = registration_token(&s, &["--uses", "2"]);
    for i in 0..2 {
        assert_eq!(
            register_raw(&s, Some(&t), &registration_body(&es256())).await.status(),
            201,
            "use {i} of 2"
        );
    }
    assert_eq!(
        register_raw(&s, Some(&t), &registration_body(&es256())).await.status(),
        401,
        "use 3 of 2"
    );

    // --uses 0 is refused by the CLI
    let out = s.cli(&["registration-token", "create", "--uses", "0"], None);
    assert_usage_error(&out, "--uses 0");
}

// AS-OPT-21: a refused registration does not spend a use
#[tokio::test]
async fn as_opt_21_refused_registration_keeps_the_use() {
    let s = Server::start().await;
    let t = registration_token(&s, &["--uses", "1"]);
    let mut bad = registration_body(&es256());
    bad["token_endpoint_auth_method"] = json!("client_secret_basic");
    let r = register_raw(&s, Some(&t), &bad).await;
    assert_eq!(r.status(), 400, "bad registration");
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "non-JSON registration");
    let r = register_raw(&s, Some(&t), &registration_body(&es256())).await;
    assert_eq!(
        r.status(),
        201,
        "the good registration after refused ones must still have its use"
    );
    assert_eq!(
        register_raw(&s, Some(&t), &registration_body(&es256())).await.status(),
        401
    );
}

// AS-OPT-21: --ttl
#[tokio::test]
async fn as_opt_21_initial_access_token_expires() {
    let s = Server::start().await;
    let t = registration_token(&s, &["--ttl", "1s"]);
    let long = registration_token(&s, &["--ttl", "1h"]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = register_raw(&s, Some(&t), &registration_body(&es256())).await;
    let (status, err) = json_error(r, "expired token").await;
    assert_eq!(status, 401, "registration with an expired initial access token: {err}");
    assert_eq!(err["error"], json!("invalid_token"));
    assert_eq!(
        register_raw(&s, Some(&long), &registration_body(&es256()))
            .await
            .status(),
        201
    );
    // bad durations are usage errors
    for bad in ["1y", "abc", "0s"] {
        let out = s.cli(&["registration-token", "create", "--ttl", bad], None);
        assert_usage_error(&out, &format!("--ttl {bad}"));
    }
}

// ---------------------------------------------------------------------------------------------
// 5. RFC 7592 — AS-OPT-24, AS-OPT-25
// ---------------------------------------------------------------------------------------------

// AS-OPT-24: read and update
#[tokio::test]
async fn as_opt_24_read_and_update() {
    let s = Server::start().await;
    let rp = dcr_client(&s).await;
    let reg = &rp.registration;
    let uri = reg["registration_client_uri"].as_str().unwrap().to_owned();
    let rat = reg["registration_access_token"].as_str().unwrap().to_owned();

    // GET → 200, same metadata, without the registration access token
    let r = s.http.get(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let read: Value = r.json().await.unwrap();
    for (k, v) in reg.as_object().unwrap() {
        if k != "registration_access_token" {
            assert_eq!(&read[k], v, "GET differs from the registration in {k}");
        }
    }

    // the second redirect URI works before the update
    Par::new(&rp).set("redirect_uri", REDIRECT_URI_2).push(&s, &rp).await;

    // PUT a full replacement
    let new_uri = "https://client.example.org/new-cb";
    let mut update = registration_body(&rp.key);
    update["client_id"] = json!(rp.client_id);
    update["client_name"] = json!("Renamed client");
    update["redirect_uris"] = json!([REDIRECT_URI, new_uri]);
    let r = s.http.put(&uri).bearer_auth(&rat).json(&update).send().await.unwrap();
    let status = r.status();
    assert_no_store(&r, "PUT 200");
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "PUT: {body}");
    assert_eq!(body["client_name"], json!("Renamed client"));
    assert_eq!(body["redirect_uris"], json!([REDIRECT_URI, new_uri]));
    assert_eq!(body["client_id"], json!(rp.client_id));
    let read: Value = s
        .http
        .get(&uri)
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        read["client_name"],
        json!("Renamed client"),
        "update not visible on GET: {read}"
    );
    assert_eq!(
        read["redirect_uris"],
        json!([REDIRECT_URI, new_uri]),
        "update not visible on GET: {read}"
    );
    assert_eq!(
        read["client_id_issued_at"], reg["client_id_issued_at"],
        "PUT changed client_id_issued_at"
    );

    // the change applies at once at PAR: the new URI works, the dropped one does not
    Par::new(&rp).set("redirect_uri", new_uri).push(&s, &rp).await;
    let r = Par::new(&rp)
        .set("redirect_uri", REDIRECT_URI_2)
        .send(&s, &rp, None)
        .await;
    let (status, err) = json_error(r, "PAR with a removed redirect URI").await;
    assert_eq!(status, 400, "PAR with a redirect URI removed by PUT: {err}");

    // PUT with omitted optional fields clears them (full replacement)
    let mut minimal = update.clone();
    minimal.as_object_mut().unwrap().remove("client_name");
    let r = s.http.put(&uri).bearer_auth(&rat).json(&minimal).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let read: Value = s
        .http
        .get(&uri)
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        read.get("client_name").is_none(),
        "PUT without client_name kept it: {read}"
    );

    // PUT with the GET body itself (server fields unchanged) is accepted
    let r = s.http.put(&uri).bearer_auth(&rat).json(&read).send().await.unwrap();
    assert_eq!(r.status(), 200, "PUT of the GET response");
}

// AS-OPT-24: refused updates
#[tokio::test]
async fn as_opt_24_update_refusals() {
    let s = Server::start().await;
    let rp = dcr_client(&s).await;
    let uri = rp.registration["registration_client_uri"].as_str().unwrap().to_owned();
    let rat = rp.registration["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut good = registration_body(&rp.key);
    good["client_id"] = json!(rp.client_id);

    // a different client_id in the body
    let mut other = good.clone();
    other["client_id"] = json!("someone-else");
    let r = s.http.put(&uri).bearer_auth(&rat).json(&other).send().await.unwrap();
    let (status, err) = json_error(r, "PUT with another client_id").await;
    assert_eq!(status, 400, "PUT with another client_id: {err}");
    // no client_id at all
    let mut none = good.clone();
    none.as_object_mut().unwrap().remove("client_id");
    let r = s.http.put(&uri).bearer_auth(&rat).json(&none).send().await.unwrap();
    let (status, err) = json_error(r, "PUT without client_id").await;
    assert_eq!(status, 400, "PUT without client_id: {err}");
    // a registration_access_token field (RFC 7592 §2.2: MUST NOT be sent)
    let mut with_rat = good.clone();
    with_rat["registration_access_token"] = json!("chosen-by-the-client-0123456789abcdefghijklmnop");
    let r = s.http.put(&uri).bearer_auth(&rat).json(&with_rat).send().await.unwrap();
    let (status, err) = json_error(r, "PUT with registration_access_token").await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"], json!("invalid_client_metadata"), "{err}");
    assert!(
        err["error_description"]
            .as_str()
            .unwrap()
            .contains("registration_access_token"),
        "{err}"
    );
    // metadata that a registration would refuse is refused on update too
    let mut http = good.clone();
    http["redirect_uris"] = json!(["http://client.example.org/cb"]);
    let r = s.http.put(&uri).bearer_auth(&rat).json(&http).send().await.unwrap();
    let (status, err) = json_error(r, "PUT with an http redirect URI").await;
    assert_eq!(
        (status, err["error"].as_str().unwrap()),
        (400, "invalid_redirect_uri"),
        "{err}"
    );
    // none of that changed anything, and the old token still works
    let read: Value = s
        .http
        .get(&uri)
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["redirect_uris"], rp.registration["redirect_uris"]);
    assert_eq!(read["client_name"], rp.registration["client_name"]);
}

// AS-OPT-24: authentication of the management endpoints
#[tokio::test]
async fn as_opt_24_management_requires_the_registration_token() {
    let s = Server::start().await;
    let rp = dcr_client(&s).await;
    let other = dcr_client(&s).await;
    let uri = rp.registration["registration_client_uri"].as_str().unwrap().to_owned();
    let mut body = registration_body(&rp.key);
    body["client_id"] = json!(rp.client_id);
    let wrong = "wrong-registration-access-token-0123456789abcdefgh";
    let other_rat = other.registration["registration_access_token"].as_str().unwrap();
    for (what, token) in [
        ("no token", None),
        ("wrong token", Some(wrong)),
        ("another client's token", Some(other_rat)),
    ] {
        for method in ["GET", "PUT", "DELETE"] {
            let mut req = s.http.request(method.parse().unwrap(), &uri);
            if method == "PUT" {
                req = req.json(&body);
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} with {what}");
            let www = header(&r, "www-authenticate").unwrap_or_default();
            assert!(
                www.starts_with("Bearer"),
                "{method} with {what}: WWW-Authenticate {www:?}"
            );
            let (_, err) = json_error(r, &format!("{method} with {what}")).await;
            assert_eq!(err["error"], json!("invalid_token"), "{method} with {what}: {err}");
        }
    }
    // an unknown client looks the same as a wrong token
    let r = s
        .http
        .get(format!("{}/no-such-client", s.endpoint("registration_endpoint")))
        .bearer_auth(rp.registration["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "GET of an unknown client");
    // the client is untouched
    let r = s
        .http
        .get(&uri)
        .bearer_auth(rp.registration["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

// AS-OPT-24: delete
#[tokio::test]
async fn as_opt_24_delete() {
    let s = Server::start().await;
    let rp = dcr_client(&s).await;
    let uri = rp.registration["registration_client_uri"].as_str().unwrap().to_owned();
    let rat = rp.registration["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // the client works (and is now in the server's cache)
    Par::new(&rp).push(&s, &rp).await;
    let r = s.http.delete(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 204, "DELETE");
    assert!(r.bytes().await.unwrap().is_empty(), "204 with a body");
    let r = s.http.get(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 401, "GET after DELETE");
    let r = s.http.delete(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 401, "second DELETE");
    // the deleted client can no longer authenticate
    let r = Par::new(&rp).send(&s, &rp, None).await;
    let (status, err) = json_error(r, "PAR of a deleted client").await;
    assert_eq!(status, 401, "PAR of a deleted client: {err}");
    assert_eq!(err["error"], json!("invalid_client"), "{err}");
    let out = s.cli(&["client", "show", &rp.client_id], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "client show after DELETE: {}",
        stdout_of(&out)
    );
}

// AS-OPT-25: credentials are stored hashed
#[tokio::test]
async fn as_opt_25_tokens_stored_hashed() {
    let s = Server::start().await;
    let iat = s.initial_access_token();
    let r = register_raw(&s, Some(&iat), &registration_body(&es256())).await;
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.unwrap();
    let rat = reg["registration_access_token"].as_str().unwrap();
    let client_id = reg["client_id"].as_str().unwrap();
    let bytes = database_bytes(&s.dir);
    // sanity: we are reading the right files
    assert!(
        contains(&bytes, client_id),
        "the client_id is not in the database files: wrong file?"
    );
    assert!(
        !contains(&bytes, rat),
        "the registration access token is stored in clear"
    );
    assert!(!contains(&bytes, &iat), "the initial access token is stored in clear");
    // and after a checkpoint/restart too
    let mut s = s;
    s.restart().await;
    let bytes = database_bytes(&s.dir);
    assert!(
        !contains(&bytes, rat),
        "the registration access token is stored in clear (after restart)"
    );
    assert!(
        !contains(&bytes, &iat),
        "the initial access token is stored in clear (after restart)"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. CLI — INTERFACE.md
// ---------------------------------------------------------------------------------------------

// INTERFACE.md: user add
#[tokio::test]
async fn cli_user_add() {
    let s = Server::start().await;
    let out = s.cli(
        &[
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--claim",
            "email=bob@example.com",
        ],
        Some("builder"),
    );
    assert!(out.status.success(), "user add bob: {}", stderr_of(&out));
    let v: Value =
        serde_json::from_str(stdout_of(&out).trim()).unwrap_or_else(|e| panic!("user add output is not JSON: {e}"));
    assert_eq!(v["username"], json!("bob"));
    assert!(v["sub"].as_str().is_some_and(|s| !s.is_empty()));
    // duplicates
    let out = s.cli(&["user", "add", USER, "--password-stdin"], Some("other"));
    let err = assert_usage_error(&out, "duplicate user");
    assert!(err.contains(USER), "the message should name the user: {err}");
    let out = s.cli(&["user", "add", "bob", "--password-stdin"], Some("again"));
    assert_usage_error(&out, "duplicate user bob");
    // an empty password and a reserved claim
    let out = s.cli(&["user", "add", "carol", "--password-stdin"], Some(""));
    assert_usage_error(&out, "empty password");
    let out = s.cli(
        &["user", "add", "dave", "--password-stdin", "--claim", "sub=x"],
        Some("pw"),
    );
    assert_usage_error(&out, "reserved claim");
}

// INTERFACE.md: client add | list | show | remove
#[tokio::test]
async fn cli_client_lifecycle() {
    let s = Server::start().await;
    let key = es256();
    let jwks_file = s.dir.join("client-jwks.json");
    std::fs::write(&jwks_file, json!({"keys": [key.public_jwk().to_json()]}).to_string()).unwrap();
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "private_key_jwt",
            "--redirect-uri",
            REDIRECT_URI,
            "--redirect-uri",
            REDIRECT_URI_2,
            "--jwks-file",
            jwks_file.to_str().unwrap(),
            "--name",
            "CLI client",
        ],
        None,
    );
    assert!(out.status.success(), "client add: {}", stderr_of(&out));
    let added: Value = serde_json::from_str(&stdout_of(&out))
        .unwrap_or_else(|e| panic!("client add output is not JSON ({e}): {}", stdout_of(&out)));
    let client_id = added["client_id"].as_str().expect("client_id").to_owned();
    assert_eq!(added["client_name"], json!("CLI client"));
    assert_eq!(added["token_endpoint_auth_method"], json!("private_key_jwt"));
    assert_eq!(added["redirect_uris"], json!([REDIRECT_URI, REDIRECT_URI_2]));

    // the running server accepts it
    let rp = Rp {
        client_id: client_id.clone(),
        key,
        registration: added.clone(),
    };
    Par::new(&rp).push(&s, &rp).await;

    let out = s.cli(&["client", "list"], None);
    assert!(out.status.success());
    let list = stdout_of(&out);
    let line = list
        .lines()
        .find(|l| l.contains(&client_id))
        .unwrap_or_else(|| panic!("client list lacks {client_id}: {list}"));
    assert!(line.contains("CLI client"), "client list line lacks the name: {line}");

    let out = s.cli(&["client", "show", &client_id], None);
    assert!(out.status.success(), "client show: {}", stderr_of(&out));
    let shown: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(shown["client_id"], json!(client_id));
    assert_eq!(shown["client_name"], json!("CLI client"));
    assert_eq!(shown["jwks"], added["jwks"]);

    let out = s.cli(&["client", "remove", &client_id], None);
    assert!(out.status.success(), "client remove: {}", stderr_of(&out));
    let out = s.cli(&["client", "show", &client_id], None);
    assert_usage_error(&out, "client show after remove");
    let out = s.cli(&["client", "remove", &client_id], None);
    assert_usage_error(&out, "second client remove");
    let out = s.cli(&["client", "list"], None);
    assert!(
        !stdout_of(&out).contains(&client_id),
        "client list still shows the removed client"
    );
}

// AS-SP-38 / AS-OPT-23 through the CLI
#[tokio::test]
async fn cli_client_add_refusals() {
    let s = Server::start().await;
    let key = es256();
    let jwks_file = s.dir.join("client-jwks.json");
    std::fs::write(&jwks_file, json!({"keys": [key.public_jwk().to_json()]}).to_string()).unwrap();
    let jwks = jwks_file.to_str().unwrap();
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "private_key_jwt",
            "--redirect-uri",
            "http://client.example.org/cb",
            "--jwks-file",
            jwks,
        ],
        None,
    );
    let err = assert_usage_error(&out, "client add with an http redirect URI");
    assert!(
        err.contains("redirect") || err.contains("https"),
        "the message should name the problem: {err}"
    );
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "client_secret_basic",
            "--redirect-uri",
            REDIRECT_URI,
            "--jwks-file",
            jwks,
        ],
        None,
    );
    let err = assert_usage_error(&out, "client add with client_secret_basic");
    assert!(
        err.contains("token_endpoint_auth_method") || err.contains("client_secret_basic"),
        "{err}"
    );
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "private_key_jwt",
            "--redirect-uri",
            REDIRECT_URI,
        ],
        None,
    );
    let err = assert_usage_error(&out, "client add without keys");
    assert!(err.contains("jwks"), "{err}");
    let out = s.cli(&["client", "list"], None);
    assert_eq!(stdout_of(&out).trim(), "", "refused client add left a client behind");
}

// AS-SP-21, AS-SP-22, SP 5.4.1: keys list | rotate; old keys stay published
#[tokio::test]
async fn cli_keys_rotate() {
    let mut s = Server::start().await;
    let out = s.cli(&["keys", "list"], None);
    assert!(out.status.success(), "keys list: {}", stderr_of(&out));
    let list = stdout_of(&out);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "keys list: {list}");
    assert!(lines.iter().all(|l| l.contains("active")), "keys list: {list}");
    let old: HashSet<String> = lines.iter().map(|l| l.split('\t').next().unwrap().to_owned()).collect();
    let jwks = server_jwks(&s).await;
    assert_eq!(kids(&jwks), old, "keys list and the JWKS disagree");

    let rp = dcr_client(&s).await;
    let first = id_token_of(&s, &rp).await;
    let h = jwt_header(&first);
    assert!(
        old.contains(h["kid"].as_str().unwrap()),
        "id_token kid {h} is not a published key"
    );

    let out = s.cli(&["keys", "rotate"], None);
    assert!(out.status.success(), "keys rotate: {}", stderr_of(&out));
    let rotated = stdout_of(&out);
    let new: HashSet<String> = rotated
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect();
    assert_eq!(new.len(), 3, "keys rotate should make three keys: {rotated}");
    assert!(new.is_disjoint(&old), "rotation reused a kid");

    let out = s.cli(&["keys", "list"], None);
    let list = stdout_of(&out);
    assert_eq!(list.lines().count(), 6, "keys list after rotate: {list}");
    for l in list.lines() {
        let kid = l.split('\t').next().unwrap();
        if new.contains(kid) {
            assert!(l.contains("active"), "new key not active: {l}");
        } else {
            assert!(
                old.contains(kid) && !l.contains("\tactive"),
                "old key still active: {l}"
            );
        }
    }

    // the running server polls every 30 s; a restart picks the keys up at once
    s.restart().await;
    let jwks = server_jwks(&s).await;
    let published = kids(&jwks);
    assert_eq!(published.len(), 6, "JWKS after rotation: {jwks}");
    assert!(published.is_superset(&new), "new kids not published: {jwks}");
    assert!(published.is_superset(&old), "old kids no longer published: {jwks}");

    let second = id_token_of(&s, &rp).await;
    let h = jwt_header(&second);
    let kid = h["kid"].as_str().unwrap();
    assert!(new.contains(kid), "id_token still signed with an old key: {h}");
    // verify it with an independent library against the published key
    let jwk_json = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == json!(kid))
        .unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk_json.clone()).unwrap();
    let alg = match h["alg"].as_str().unwrap() {
        "ES256" => jsonwebtoken::Algorithm::ES256,
        "PS256" => jsonwebtoken::Algorithm::PS256,
        "EdDSA" | "Ed25519" => jsonwebtoken::Algorithm::EdDSA,
        other => panic!("id_token alg {other}"),
    };
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_audience(&[&rp.client_id]);
    v.set_issuer(&[&s.issuer]);
    let decoded = jsonwebtoken::decode::<Value>(&second, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &v)
        .unwrap_or_else(|e| panic!("jsonwebtoken rejects the id_token: {e}"));
    assert!(decoded.claims["sub"].is_string());
}

// INTERFACE.md: check prints the effective configuration
#[tokio::test]
async fn cli_check_prints_effective_config() {
    let s = Server::start().await;
    let out = s.cli(&["check"], None);
    assert!(out.status.success(), "check: {}", stderr_of(&out));
    let text = stdout_of(&out);
    let t: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("check output is not TOML ({e}): {text}"));
    assert_eq!(t["server"]["issuer"].as_str(), Some(s.issuer.as_str()), "{text}");
    assert_eq!(
        t["server"]["listen"].as_str(),
        Some(format!("127.0.0.1:{}", s.port).as_str()),
        "{text}"
    );
    assert_eq!(t["tokens"]["code_lifetime"].as_integer(), Some(60), "{text}");
    assert!(
        t["tokens"]["request_uri_lifetime"]
            .as_integer()
            .is_some_and(|v| v < 600),
        "{text}"
    );
    // a config file is honoured, and env overrides it
    let file = s.dir.join("check.toml");
    std::fs::write(&file, "[tokens]\ncode_lifetime = 30\naccess_token_lifetime = 300\n").unwrap();
    let out = run_bin(
        &s.dir,
        &["check", "--config", file.to_str().unwrap()],
        &[("PORTCULLIS_TOKENS_ACCESS_TOKEN_LIFETIME", "120")],
    );
    assert!(out.status.success(), "check --config: {}", stderr_of(&out));
    let t: toml::Table = stdout_of(&out).parse().unwrap();
    assert_eq!(t["tokens"]["code_lifetime"].as_integer(), Some(30));
    assert_eq!(t["tokens"]["access_token_lifetime"].as_integer(), Some(120));
}

// AS-SP-63 (code ≤ 60 s), AS-SP-40 (request_uri < 600 s), AS-SP-13 (https issuer): bad configuration
#[tokio::test]
async fn cli_bad_config_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let unknown = tmp.path().join("unknown.toml");
    std::fs::write(&unknown, "[server]\nnope = 1\n").unwrap();
    let unknown_section = tmp.path().join("unknown-section.toml");
    std::fs::write(&unknown_section, "[bogus]\nx = 1\n").unwrap();
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Vec<(&str, &str)>, Vec<&str>, &str)> = vec![
        (
            "code lifetime 61",
            vec![("PORTCULLIS_TOKENS_CODE_LIFETIME", "61")],
            vec![],
            "code_lifetime",
        ),
        (
            "request_uri lifetime 600",
            vec![("PORTCULLIS_TOKENS_REQUEST_URI_LIFETIME", "600")],
            vec![],
            "request_uri_lifetime",
        ),
        (
            "http issuer",
            vec![("PORTCULLIS_SERVER_ISSUER", "http://x")],
            vec![],
            "issuer",
        ),
        (
            "unknown key",
            vec![],
            vec!["--config", unknown.to_str().unwrap()],
            "nope",
        ),
        (
            "unknown section",
            vec![],
            vec!["--config", unknown_section.to_str().unwrap()],
            "bogus",
        ),
    ];
    for (what, env, extra, needle) in &cases {
        for command in ["check", "serve"] {
            let mut args = vec![command];
            args.extend(extra.iter().copied());
            let out = run_bin(&dir, &args, env);
            let err = assert_usage_error(&out, &format!("{command} with {what}"));
            assert!(
                err.contains(needle),
                "{command} with {what}: stderr should mention {needle}: {err}"
            );
            assert!(
                !stdout_of(&out).contains("listening"),
                "{command} with {what} started serving"
            );
        }
    }
}

// INTERFACE.md: bad usage exits 2
#[tokio::test]
async fn cli_unknown_subcommand_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        vec!["frobnicate"],
        vec!["client", "frobnicate"],
        vec!["keys", "burn"],
        vec![],
    ] {
        let out = run_bin(tmp.path(), &args, &[]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "portcullis {args:?}: {:?} {}",
            out.status,
            stderr_of(&out)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 7. restart and shutdown
// ---------------------------------------------------------------------------------------------

// AS-SP-22 (stable keys), INTERFACE.md: state survives a restart
#[tokio::test]
async fn restart_keeps_keys_clients_users_and_ca() {
    let mut s = Server::start().await;
    let rp = dcr_client(&s).await;
    let cli_key = es256();
    let jwks_file = s.dir.join("client-jwks.json");
    std::fs::write(
        &jwks_file,
        json!({"keys": [cli_key.public_jwk().to_json()]}).to_string(),
    )
    .unwrap();
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "private_key_jwt",
            "--redirect-uri",
            REDIRECT_URI,
            "--jwks-file",
            jwks_file.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let cli_reg: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    let cli_rp = Rp {
        client_id: cli_reg["client_id"].as_str().unwrap().to_owned(),
        key: cli_key,
        registration: cli_reg,
    };
    let jwks = server_jwks(&s).await;
    let ca = std::fs::read(s.ca_path()).unwrap();
    let meta = s.meta.clone();

    s.restart().await;

    assert_eq!(server_jwks(&s).await, jwks, "the JWKS changed across a restart");
    assert_eq!(
        std::fs::read(s.ca_path()).unwrap(),
        ca,
        "the CA changed across a restart"
    );
    assert_eq!(s.meta, meta, "the metadata changed across a restart");
    Par::new(&rp).push(&s, &rp).await;
    Par::new(&cli_rp).push(&s, &cli_rp).await;
    let (body, _) = tokens(&s, &rp, &DpopKey::new()).await;
    assert!(body["access_token"].is_string());
    // the registration access token survives too
    let r = s
        .http
        .get(rp.registration["registration_client_uri"].as_str().unwrap())
        .bearer_auth(rp.registration["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "RFC 7592 read after restart");
}

// INTERFACE.md: SIGTERM is a clean shutdown
#[tokio::test]
async fn sigterm_exits_0() {
    let mut s = Server::start().await;
    // INTERFACE.md: the first lines name the issuer, the discovery URL and the CA
    let lines: Vec<&str> = s.stdout.lines().collect();
    assert_eq!(lines[0], format!("issuer: {}", s.issuer), "{}", s.stdout);
    assert!(
        lines[1].contains(&format!("{}/.well-known/openid-configuration", s.issuer)),
        "{}",
        s.stdout
    );
    assert!(lines[2].contains(s.ca_path().to_str().unwrap()), "{}", s.stdout);
    // with a connection open
    assert_eq!(s.http.get(s.endpoint("jwks_uri")).send().await.unwrap().status(), 200);
    let status = s.stop().await.expect("server was running");
    assert!(status.success(), "serve exited with {status:?} on SIGTERM");
    assert_eq!(status.code(), Some(0));
}

// ---------------------------------------------------------------------------------------------
// 8. TLS — AS-SP-02, AS-SP-03, AS-SP-06
// ---------------------------------------------------------------------------------------------

/// `openssl s_client` against 127.0.0.1:port; returns (handshake succeeded, combined output).
fn s_client(s: &Server, port: u16, extra: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-servername")
        .arg("localhost")
        .arg("-CAfile")
        .arg(s.ca_path())
        .arg("-verify_return_error")
        .arg("-brief")
        .args(extra);
    let out = run_with_timeout(cmd, b"Q\n", Duration::from_secs(15));
    let text = format!("{}{}", stdout_of(&out), stderr_of(&out));
    let ok = out.status.success() && text.contains("Protocol version");
    (ok, text)
}

fn negotiated_version(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("Protocol version: "))
        .map(str::trim)
}

// AS-SP-02, AS-SP-03, AS-SP-06
#[tokio::test]
async fn as_sp_02_06_tls_versions_and_suites() {
    let s = Server::start().await;
    // the client is allowed to offer old protocols (SECLEVEL=0) so that the refusal is the server's
    for v in ["-tls1", "-tls1_1"] {
        let (ok, text) = s_client(&s, s.port, &[v, "-cipher", "DEFAULT:@SECLEVEL=0"]);
        assert!(!ok, "{v} handshake succeeded (AS-SP-02):\n{text}");
    }
    let (ok, text) = s_client(&s, s.port, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
    assert!(ok, "TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256 failed:\n{text}");
    assert_eq!(negotiated_version(&text), Some("TLSv1.2"), "{text}");
    let (ok, text) = s_client(&s, s.port, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"]);
    assert!(ok, "TLS 1.2 with ECDHE-ECDSA-AES256-GCM-SHA384 failed:\n{text}");
    for suite in [
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA384",
        "ECDHE-ECDSA-AES128-SHA256",
    ] {
        let (ok, text) = s_client(&s, s.port, &["-tls1_2", "-cipher", suite]);
        assert!(!ok, "TLS 1.2 with only {suite} succeeded (AS-SP-06):\n{text}");
    }
    // AS-SP-02: TLS 1.3 preferred when the client offers it
    let (ok, text) = s_client(&s, s.port, &[]);
    assert!(ok, "default handshake failed:\n{text}");
    assert_eq!(negotiated_version(&text), Some("TLSv1.3"), "{text}");
}

// INTERFACE.md: the second listener requests client certificates and accepts any
#[tokio::test]
async fn mtls_listener_handshakes_with_and_without_client_cert() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("k.pem");
    let cert = tmp.path().join("c.pem");
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=test",
        "-days",
        "1",
    ])
    .arg("-keyout")
    .arg(&key)
    .arg("-out")
    .arg(&cert);
    let out = run_with_timeout(cmd, b"", Duration::from_secs(15));
    assert!(out.status.success(), "openssl req: {}", stderr_of(&out));

    let (ok, text) = s_client(&s, s.mtls_port, &[]);
    assert!(ok, "mTLS listener without a client certificate:\n{text}");
    assert!(
        text.contains("Requested Signature Algorithms"),
        "the mTLS listener did not request a client certificate:\n{text}"
    );
    let (ok, text) = s_client(
        &s,
        s.mtls_port,
        &["-cert", cert.to_str().unwrap(), "-key", key.to_str().unwrap()],
    );
    assert!(ok, "mTLS listener with a self-signed client certificate:\n{text}");
    // the main listener does not ask for one
    let (ok, text) = s_client(&s, s.port, &[]);
    assert!(ok, "{text}");
    assert!(
        !text.contains("Requested Signature Algorithms"),
        "the main listener requests client certificates:\n{text}"
    );
    // same TLS rules on the second listener
    let (ok, text) = s_client(&s, s.mtls_port, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    assert!(!ok, "TLS 1.1 on the mTLS listener:\n{text}");
    let (ok, text) = s_client(
        &s,
        s.mtls_port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"],
    );
    assert!(!ok, "ChaCha20 on TLS 1.2 on the mTLS listener:\n{text}");

    // discovery is served there too, with and without a certificate
    let url = format!("https://localhost:{}/.well-known/openid-configuration", s.mtls_port);
    let ca = std::fs::read(s.ca_path()).unwrap();
    let plain = client_trusting(&ca);
    let r = plain.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "discovery on the mTLS listener without a certificate");
    assert_eq!(r.json::<Value>().await.unwrap(), s.meta);
    let mut pem = std::fs::read(&cert).unwrap();
    pem.extend(std::fs::read(&key).unwrap());
    let with_cert = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let r = with_cert.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "discovery on the mTLS listener with a certificate");
    assert_eq!(r.json::<Value>().await.unwrap(), s.meta);
}

/// RFC 6750 §3.1: a wrong initial access token is 401 whatever the body holds; the metadata
/// is not even looked at.
#[tokio::test]
async fn as_opt_21_wrong_token_is_401_before_validation() {
    let s = Server::start().await;
    let bad_meta = json!({"redirect_uris": ["http://x.example/cb"]});
    let r = register_raw(&s, Some("wrong-token"), &bad_meta).await;
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").is_some_and(|w| w.starts_with("Bearer")));
    let (_, body) = json_error(r, "wrong token").await;
    assert_eq!(body["error"], "invalid_token");
    // not JSON at all, with a wrong token: still 401
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth("wrong-token")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// The server never registers what it cannot honour: certificate-bound tokens are refused until
/// mTLS exists; a client registered for tls_client_auth is told why it cannot authenticate.
#[tokio::test]
async fn registration_is_honest_about_mtls() {
    let s = Server::start().await;
    let mut body = registration_body(&es256());
    body["tls_client_certificate_bound_access_tokens"] = json!(true);
    let r = register_raw(&s, Some(&s.initial_access_token()), &body).await;
    let (status, e) = json_error(r, "tls-bound").await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "invalid_client_metadata");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("tls_client_certificate_bound_access_tokens")
    );
    let body = json!({
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_subject_dn": "CN=client",
    });
    let r = register_raw(&s, Some(&s.initial_access_token()), &body).await;
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.unwrap();
    let client_id = reg["client_id"].as_str().unwrap();
    let params = vec![
        ("client_id".to_owned(), client_id.to_owned()),
        ("response_type".to_owned(), "code".to_owned()),
    ];
    let r = s
        .post_form(&s.endpoint("pushed_authorization_request_endpoint"), &params, &[])
        .await;
    let (status, e) = json_error(r, "mtls client").await;
    assert_eq!(status, 401);
    assert_eq!(e["error"], "invalid_client");
    assert!(
        e["error_description"].as_str().unwrap().contains("tls_client_auth"),
        "{e}"
    );
}

/// `client remove` takes effect on a running server at once (INTERFACE.md).
#[tokio::test]
async fn cli_client_remove_takes_effect_immediately() {
    let s = Server::start().await;
    let rp = dcr_client(&s).await;
    assert_eq!(Par::new(&rp).send(&s, &rp, None).await.status(), 201);
    let out = s.cli(&["client", "remove", &rp.client_id], None);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let r = Par::new(&rp).send(&s, &rp, None).await;
    assert_eq!(r.status(), 401);
}
