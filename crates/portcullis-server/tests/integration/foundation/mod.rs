//! Discovery, JWKS, registration (RFC 7591/7592), the CLI, restarts and TLS.

mod certificates;
mod cli;
mod cli_admin;
mod connections;
mod discovery;
mod keys;
mod management;
mod registration;
mod startup;
mod tls;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use portcullis_jose::{Algorithm, SigningKey, b64url, b64url_decode};
use reqwest::Response;
use serde_json::{Value, json};

#[allow(unused_imports)]
use crate::harness::*;

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
        .env("PORTCULLIS_SERVER_MANAGEMENT_LISTEN", "127.0.0.1:0")
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
