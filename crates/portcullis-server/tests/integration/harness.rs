//! Starts the real `portcullis` binary (real TLS, ephemeral ports, a temporary data dir) and
//! drives it over HTTPS, trusting the development CA it generates.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use portcullis_jose::{Algorithm, SigningKey, b64url, sha256_b64url};
use reqwest::Response;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Map, Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
pub const REDIRECT_URI: &str = "https://client.example.org/cb";
pub const REDIRECT_URI_2: &str = "https://client.example.org/cb?dummy1=lorem&dummy2=ipsum";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "wonderland";
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Makes `dir` as the server would: 0700, since its contents are secret.
pub fn private_dir(dir: &Path) {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.recursive(true).create(dir).unwrap();
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub struct Server {
    child: Option<Child>,
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub issuer: String,
    pub port: u16,
    pub mtls_port: u16,
    /// The management listener (health, metrics), plain HTTP on loopback.
    pub management_port: u16,
    env: Vec<(String, String)>,
    /// `--config FILE` for `serve` and every command, if the test wrote one.
    pub config: Option<PathBuf>,
    pub http: reqwest::Client,
    pub meta: Value,
    pub stdout: String,
    /// The CA the test trusts when the server has a configured certificate (`tls.cert_file`);
    /// otherwise the development CA in the data dir.
    ca_file: Option<PathBuf>,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(&[]).await
    }

    /// A fresh server with extra `PORTCULLIS_*` settings, and user alice.
    pub async fn start_with(extra_env: &[(&str, &str)]) -> Server {
        Self::start_full(None, extra_env, None).await
    }

    /// A fresh server whose certificate chains to `ca_file` (set `PORTCULLIS_TLS_CERT_FILE`
    /// and `_KEY_FILE` in `extra_env`), or to the development CA when `None`.
    pub async fn start_trusting(extra_env: &[(&str, &str)], ca_file: Option<PathBuf>) -> Server {
        Self::start_full(None, extra_env, ca_file).await
    }

    /// A fresh server with a configuration file (TOML text), extra settings, and user alice.
    pub async fn start_configured(config: Option<&str>, extra_env: &[(&str, &str)]) -> Server {
        Self::start_full(config, extra_env, None).await
    }

    async fn start_full(config: Option<&str>, extra_env: &[(&str, &str)], ca_file: Option<PathBuf>) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let config = config.map(|text| {
            let path = tmp.path().join("portcullis.toml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let dir = tmp.path().join("data");
        // `user add` runs before the first `serve`: only `serve` makes a missing data dir
        private_dir(&dir);
        let port = free_port();
        let mtls_port = free_port();
        let management_port = free_port();
        let issuer = format!("https://localhost:{port}");
        let mut env = vec![
            (
                "PORTCULLIS_SERVER_MANAGEMENT_LISTEN".to_owned(),
                format!("127.0.0.1:{management_port}"),
            ),
            ("PORTCULLIS_SERVER_ISSUER".to_owned(), issuer.clone()),
            ("PORTCULLIS_SERVER_LISTEN".to_owned(), format!("127.0.0.1:{port}")),
            (
                "PORTCULLIS_SERVER_MTLS_LISTEN".to_owned(),
                format!("127.0.0.1:{mtls_port}"),
            ),
            ("PORTCULLIS_LOG_LEVEL".to_owned(), "warn".to_owned()),
        ];
        env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut s = Server {
            child: None,
            _tmp: tmp,
            dir,
            issuer,
            port,
            mtls_port,
            management_port,
            env,
            config,
            http: reqwest::Client::new(),
            meta: Value::Null,
            stdout: String::new(),
            ca_file,
        };
        let out = s.cli(
            &[
                "user",
                "add",
                USER,
                "--password-stdin",
                "--claim",
                "email=alice@example.com",
                "--claim",
                "name=Alice Liddell",
            ],
            Some(PASSWORD),
        );
        assert!(
            out.status.success(),
            "user add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // free_port() cannot reserve a port: a parallel test may take it before the server binds
        for _ in 0..5 {
            if s.spawn().await {
                return s;
            }
            if let Some(mut exited) = s.child.take() {
                let _ = exited.wait();
            }
            s.use_new_ports();
        }
        panic!("portcullis serve did not start");
    }

    fn use_new_ports(&mut self) {
        self.port = free_port();
        self.mtls_port = free_port();
        self.management_port = free_port();
        self.issuer = format!("https://localhost:{}", self.port);
        for (k, v) in &mut self.env {
            match k.as_str() {
                "PORTCULLIS_SERVER_ISSUER" => *v = self.issuer.clone(),
                "PORTCULLIS_SERVER_LISTEN" => *v = format!("127.0.0.1:{}", self.port),
                "PORTCULLIS_SERVER_MTLS_LISTEN" => *v = format!("127.0.0.1:{}", self.mtls_port),
                "PORTCULLIS_SERVER_MANAGEMENT_LISTEN" => *v = format!("127.0.0.1:{}", self.management_port),
                _ => {}
            }
        }
    }

    /// Where `serve` writes its log (stderr), across restarts.
    pub fn log_path(&self) -> PathBuf {
        self._tmp.path().join("server.log")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn ca_path(&self) -> PathBuf {
        self.ca_file.clone().unwrap_or_else(|| self.dir.join("tls/ca.pem"))
    }

    /// The running `serve` process's id (for signals).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts `serve` and waits until discovery answers; false if it exited before listening.
    async fn spawn(&mut self) -> bool {
        let mut cmd = Command::new(BIN);
        // the server's log (stderr) goes to a file the test can read ([`Server::log`])
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("server log file");
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.dir)
            .stdout(Stdio::piped())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn portcullis");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = Vec::new();
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.push(line);
                if lines.len() == 5 {
                    let _ = tx.send(lines.join("\n"));
                }
            }
        });
        self.child = Some(child);
        self.stdout = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(lines) => lines,
            // it exited before listening: the port was taken meanwhile (see start_with)
            Err(_) => return false,
        };
        let ca = std::fs::read(self.ca_path()).expect("ca.pem");
        self.http = client_trusting(&ca);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self
                .http
                .get(format!("{}/.well-known/openid-configuration", self.issuer))
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => {
                    self.meta = r.json().await.unwrap();
                    return true;
                }
                _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                other => panic!("server did not come up: {other:?}"),
            }
        }
    }

    /// SIGTERM, wait for a clean exit, start again on the same data dir.
    pub async fn restart(&mut self) {
        self.stop().await;
        assert!(self.spawn().await, "portcullis serve did not restart");
    }

    /// Waits without blocking the runtime, so that this test's own HTTP client can still answer
    /// the server's graceful HTTP/2 shutdown (GOAWAY + PING).
    pub async fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs a `portcullis` command against this server's data dir and settings.
    /// Sets (or replaces) a `PORTCULLIS_*` setting for the next start and every CLI call.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg("--data-dir").arg(&self.dir);
        if let Some(c) = &self.config
            && !args.contains(&"--config")
        {
            cmd.arg("--config").arg(c);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut input = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                input.write_all(s.as_bytes()).unwrap();
                input.write_all(b"\n").unwrap();
            }
        }
        child.wait_with_output().unwrap()
    }

    pub fn initial_access_token(&self) -> String {
        let out = self.cli(&["registration-token", "create"], None);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn endpoint(&self, name: &str) -> String {
        self.meta[name]
            .as_str()
            .unwrap_or_else(|| panic!("metadata lacks {name}"))
            .to_owned()
    }

    pub async fn post_form(&self, endpoint: &str, params: &[(String, String)], dpop: &[String]) -> Response {
        let mut req = self.http.post(endpoint).form(params);
        for p in dpop {
            req = req.header("DPoP", p);
        }
        req.send().await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn client_trusting(ca_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A registered private_key_jwt client (the relying party).
pub struct Rp {
    pub client_id: String,
    pub key: SigningKey,
    pub registration: Value,
}

impl Rp {
    pub async fn register(s: &Server) -> Rp {
        Self::register_with(s, Algorithm::Es256, json!({})).await
    }

    pub async fn register_with(s: &Server, alg: Algorithm, extra: Value) -> Rp {
        let key = SigningKey::generate(alg).unwrap();
        let mut body = json!({
            "client_name": "Integration test client",
            "redirect_uris": [REDIRECT_URI, REDIRECT_URI_2],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [key.public_jwk().to_json()]},
            "dpop_bound_access_tokens": true,
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        let r = s
            .http
            .post(s.endpoint("registration_endpoint"))
            .bearer_auth(s.initial_access_token())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "registration refused");
        let registration: Value = r.json().await.unwrap();
        Rp {
            client_id: registration["client_id"].as_str().unwrap().to_owned(),
            key,
            registration,
        }
    }

    pub fn claims(&self, s: &Server) -> Map<String, Value> {
        let t = now();
        let mut m = Map::new();
        m.insert("iss".into(), json!(self.client_id));
        m.insert("sub".into(), json!(self.client_id));
        m.insert("aud".into(), json!(s.issuer));
        m.insert("iat".into(), json!(t));
        m.insert("nbf".into(), json!(t));
        m.insert("exp".into(), json!(t + 60));
        m.insert("jti".into(), json!(b64url(rand_bytes())));
        m
    }

    pub fn assertion_with(&self, s: &Server, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        let mut c = self.claims(s);
        edit(&mut c);
        self.key.sign_jwt(self.key.algorithm(), None, &c).unwrap()
    }

    /// Client authentication parameters with a fresh assertion.
    pub fn auth(&self, s: &Server) -> Vec<(String, String)> {
        self.auth_with(s, |_| {})
    }

    pub fn auth_with(&self, s: &Server, edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<(String, String)> {
        vec![
            ("client_assertion_type".into(), ASSERTION_TYPE.into()),
            ("client_assertion".into(), self.assertion_with(s, edit)),
        ]
    }
}

pub fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b
}

/// A DPoP key pair with a proof builder.
pub struct DpopKey {
    pub key: SigningKey,
    pub alg: Algorithm,
}

impl DpopKey {
    pub fn new() -> Self {
        Self::with(Algorithm::Es256)
    }

    /// A key for `alg` (the proof header names `alg` as given, e.g. `Ed25519`).
    pub fn with(alg: Algorithm) -> Self {
        Self {
            key: SigningKey::generate(alg).unwrap(),
            alg,
        }
    }

    pub fn jkt(&self) -> String {
        self.key.public_jwk().thumbprint().to_owned()
    }

    /// The public JWK without kid/alg/use, as a client embeds it.
    pub fn jwk(&self) -> Value {
        let mut j = self.key.public_jwk().to_json();
        for k in ["kid", "alg", "use"] {
            j.as_object_mut().unwrap().remove(k);
        }
        j
    }

    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg.as_str(), "jwk": self.jwk()})
    }

    pub fn claims(&self, htm: &str, htu: &str, nonce: Option<&str>, token: Option<&str>) -> Value {
        let mut c = json!({"jti": b64url(rand_bytes()), "htm": htm, "htu": htu, "iat": now()});
        if let Some(n) = nonce {
            c["nonce"] = json!(n);
        }
        if let Some(t) = token {
            c["ath"] = json!(sha256_b64url(t));
        }
        c
    }

    pub fn proof(&self, htm: &str, htu: &str, nonce: Option<&str>, token: Option<&str>) -> String {
        self.sign(&self.header(), &self.claims(htm, htu, nonce, token))
    }

    /// Signs any header and claims with this key.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64url(header.to_string()), b64url(claims.to_string()));
        let sig = self.key.sign_raw(input.as_bytes()).unwrap();
        format!("{input}.{}", b64url(sig))
    }
}

/// The current server DPoP nonce: a proof without one earns `use_dpop_nonce` (RFC 9449 §8).
pub async fn dpop_nonce(s: &Server, rp: &Rp) -> String {
    let key = DpopKey::new();
    let mut params = rp.auth(s);
    params.push(("grant_type".into(), "refresh_token".into()));
    params.push(("refresh_token".into(), "x".into()));
    let r = s
        .post_form(
            &s.endpoint("token_endpoint"),
            &params,
            &[key.proof("POST", &s.endpoint("token_endpoint"), None, None)],
        )
        .await;
    assert_eq!(r.status(), 400);
    r.headers()
        .get("dpop-nonce")
        .expect("DPoP-Nonce")
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn pkce() -> (String, String) {
    let verifier = b64url([rand_bytes(), rand_bytes()].concat());
    let challenge = sha256_b64url(&verifier);
    (verifier, challenge)
}

/// A pushed authorization request under construction.
pub struct Par {
    pub params: Vec<(String, String)>,
    pub verifier: String,
    pub state: String,
    pub nonce: String,
}

impl Par {
    pub fn new(rp: &Rp) -> Par {
        let (verifier, challenge) = pkce();
        let state = b64url(rand_bytes());
        let nonce = b64url(rand_bytes());
        let params = vec![
            ("response_type".into(), "code".into()),
            ("client_id".into(), rp.client_id.clone()),
            ("redirect_uri".into(), REDIRECT_URI.into()),
            ("scope".into(), "openid profile email".into()),
            ("state".into(), state.clone()),
            ("nonce".into(), nonce.clone()),
            ("code_challenge".into(), challenge),
            ("code_challenge_method".into(), "S256".into()),
        ];
        Par {
            params,
            verifier,
            state,
            nonce,
        }
    }

    pub fn set(mut self, k: &str, v: &str) -> Self {
        self.params.retain(|(a, _)| a != k);
        self.params.push((k.into(), v.into()));
        if k == "state" {
            self.state = v.into();
        }
        if k == "nonce" {
            self.nonce = v.into();
        }
        self
    }

    pub fn remove(mut self, k: &str) -> Self {
        self.params.retain(|(a, _)| a != k);
        self
    }

    /// Sends it with a fresh client assertion and optional DPoP proof.
    pub async fn send(&self, s: &Server, rp: &Rp, dpop: Option<String>) -> Response {
        let mut params = self.params.clone();
        params.extend(rp.auth(s));
        s.post_form(
            &s.endpoint("pushed_authorization_request_endpoint"),
            &params,
            &dpop.into_iter().collect::<Vec<_>>(),
        )
        .await
    }

    /// Sends it and expects 201; returns the request_uri.
    pub async fn push(&self, s: &Server, rp: &Rp) -> String {
        let r = self.send(s, rp, None).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "PAR refused: {body}");
        body["request_uri"].as_str().unwrap().to_owned()
    }
}

/// A scripted browser: keeps cookies, reads hidden fields, never follows redirects itself.
#[derive(Default)]
pub struct Browser {
    pub cookies: HashMap<String, String>,
    pub set_cookie_lines: Vec<String>,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(SET_COOKIE) {
            let line = v.to_str().unwrap().to_owned();
            if let Some((kv, _)) = line.split_once(';')
                && let Some((k, val)) = kv.split_once('=')
            {
                self.cookies.insert(k.trim().to_owned(), val.trim().to_owned());
            }
            self.set_cookie_lines.push(line);
        }
    }

    pub async fn get(&mut self, s: &Server, url: &str) -> (u16, HeaderMap, String) {
        let r = s
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        self.absorb(&headers);
        (status, headers, r.text().await.unwrap())
    }

    pub async fn post(&mut self, s: &Server, url: &str, form: &[(String, String)]) -> (u16, HeaderMap, String) {
        let r = s
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        self.absorb(&headers);
        (status, headers, r.text().await.unwrap())
    }

    pub fn authorization_url(s: &Server, client_id: &str, request_uri: &str) -> String {
        let mut u = url::Url::parse(&s.endpoint("authorization_endpoint")).unwrap();
        u.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("request_uri", request_uri);
        u.to_string()
    }

    /// Opens the authorization URL, logs in, answers the consent page; returns the final
    /// redirect (Location) as a URL.
    pub async fn run(&mut self, s: &Server, client_id: &str, request_uri: &str, decision: &str) -> url::Url {
        let (status, _, page) = self.get(s, &Self::authorization_url(s, client_id, request_uri)).await;
        assert_eq!(status, 200, "authorization page: {page}");
        let page = if page.contains("name=\"password\"") {
            let (status, headers, body) = self
                .post(s, &absolute(s, &form_action(&page)), &login_form(&page, USER, PASSWORD))
                .await;
            assert_eq!(status, 303, "login: {body}");
            let next = absolute(s, headers.get(LOCATION).unwrap().to_str().unwrap());
            let (status, _, page) = self.get(s, &next).await;
            assert_eq!(status, 200);
            page
        } else {
            page
        };
        assert!(page.contains("name=\"decision\""), "no consent page: {page}");
        let mut form = hidden_fields(&page);
        form.push(("decision".into(), decision.into()));
        let (status, headers, body) = self.post(s, &absolute(s, &form_action(&page)), &form).await;
        assert_eq!(status, 303, "consent: {body}");
        url::Url::parse(headers.get(LOCATION).unwrap().to_str().unwrap()).unwrap()
    }
}

pub fn absolute(s: &Server, path_or_url: &str) -> String {
    if path_or_url.starts_with("https://") {
        path_or_url.to_owned()
    } else {
        format!("https://localhost:{}{}", s.port, path_or_url)
    }
}

pub fn form_action(page: &str) -> String {
    let i = page.find("action=\"").expect("form action") + 8;
    let end = page[i..].find('"').unwrap();
    html_unescape(&page[i..i + end])
}

/// The hidden fields of the page's first form.
pub fn hidden_fields(page: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let first_form = page.split("</form>").next().unwrap_or(page);
    for part in first_form.split("<input type=\"hidden\"").skip(1) {
        let name = attr(part, "name").unwrap();
        let value = attr(part, "value").unwrap_or_default();
        out.push((name, value));
    }
    out
}

pub fn login_form(page: &str, user: &str, password: &str) -> Vec<(String, String)> {
    let mut f = hidden_fields(page);
    f.push(("username".into(), user.into()));
    f.push(("password".into(), password.into()));
    f
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let i = tag.find(&needle)? + needle.len();
    let end = tag[i..].find('"')?;
    Some(html_unescape(&tag[i..i + end]))
}

fn html_unescape(s: &str) -> String {
    s.replace("&#x3a;", ":")
        .replace("&#58;", ":")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub fn query(u: &url::Url) -> HashMap<String, String> {
    u.query_pairs().into_owned().collect()
}

/// Runs PAR (with PKCE, state, nonce), login and consent; returns the code and the Par.
pub async fn authorize(s: &Server, rp: &Rp, par: Par) -> (String, Par) {
    let request_uri = par.push(s, rp).await;
    let mut b = Browser::default();
    let cb = b.run(s, &rp.client_id, &request_uri, "allow").await;
    let q = query(&cb);
    assert_eq!(q.get("iss"), Some(&s.issuer), "iss in the authorization response");
    (q["code"].clone(), par)
}

/// A token request with a DPoP proof carrying the current nonce.
pub async fn token_request(s: &Server, rp: &Rp, dpop: &DpopKey, mut params: Vec<(String, String)>) -> Response {
    let nonce = dpop_nonce(s, rp).await;
    params.extend(rp.auth(s));
    let te = s.endpoint("token_endpoint");
    s.post_form(&te, &params, &[dpop.proof("POST", &te, Some(&nonce), None)])
        .await
}

pub fn code_params(code: &str, verifier: &str) -> Vec<(String, String)> {
    vec![
        ("grant_type".into(), "authorization_code".into()),
        ("code".into(), code.into()),
        ("redirect_uri".into(), REDIRECT_URI.into()),
        ("code_verifier".into(), verifier.into()),
    ]
}

/// The whole flow up to tokens.
pub async fn tokens(s: &Server, rp: &Rp, dpop: &DpopKey) -> (Value, Par) {
    let (code, par) = authorize(s, rp, Par::new(rp)).await;
    let r = token_request(s, rp, dpop, code_params(&code, &par.verifier)).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "token: {body}");
    (body, par)
}

/// Userinfo with a DPoP proof for `token`, with the current nonce.
pub async fn userinfo(s: &Server, rp: &Rp, dpop: &DpopKey, token: &str) -> Response {
    let nonce = dpop_nonce(s, rp).await;
    let ui = s.endpoint("userinfo_endpoint");
    s.http
        .get(&ui)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", dpop.proof("GET", &ui, Some(&nonce), Some(token)))
        .send()
        .await
        .unwrap()
}

pub async fn error_of(r: Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"].as_str().unwrap_or("").to_owned(),
        body["error_description"].as_str().unwrap_or("").to_owned(),
    )
}

pub fn data_dir_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// A client CA of the tester's, written as PEM under `dir` (for `PORTCULLIS_TLS_CLIENT_CA_FILE`).
pub fn write_client_ca(dir: &Path) -> String {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "Harness client CA");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let cert = p.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
    let file = dir.join("client-ca.pem");
    std::fs::write(&file, cert.pem()).unwrap();
    file.to_str().unwrap().to_owned()
}
