//! `portcullis demo` (INTERFACE.md): registers a demo client and runs a complete FAPI 2.0 flow
//! against the server with `portcullis-client`, printing one line per step and what it proved.
//!
//! Local by default: the issuer of the configuration, the development CA of the data dir, an
//! initial access token (and, with `--user`, the user) made directly in the store. With
//! `--issuer` it runs against any Portcullis, given `--ca` and `--initial-access-token`.
//!
//! The redirect URI: registration refuses `http` redirect URIs, loopback ones too (FAPI 2.0 SP
//! 5.3.2.2-8 asks for https; RFC 8252 §7.3's http loopback exception is for native public
//! clients, which FAPI 2.0 does not have). So the demo registers
//! `https://127.0.0.1:<port>/callback` and, in interactive mode, serves that callback itself
//! over TLS: with the server's own development certificate when local (the browser that
//! trusts the login page trusts it too), with a self-signed one otherwise. Headless mode
//! (`--user`) needs no listener: its scripted user agent stops at the redirect.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use portcullis_client::http::Method;
use portcullis_client::{
    Algorithm, AuthorizationParams, Client, ClientError, DpopExchange, DpopKey, HeadlessBrowser, Registration,
    RegistrationRequest, ReqwestTransport, ResourceRequest, ServerMetadata, SigningKey, TlsTrust, Transport, register,
    resource_error,
};
use portcullis_core::Store;
use portcullis_core::model::User;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::Config;
use crate::{Failure, admin, now, setup};

#[derive(Args)]
pub struct DemoArgs {
    /// Sign in as this user with a scripted browser (headless; no person needed). When running
    /// locally, the user is created if it does not exist
    #[arg(long)]
    user: Option<String>,
    /// Read the user's password from standard input (one line)
    #[arg(long, requires = "user")]
    password_stdin: bool,
    /// Run against this issuer instead of the local server of the configuration
    #[arg(long)]
    issuer: Option<String>,
    /// The CA certificate (PEM) to trust; default: the data dir's development CA when local,
    /// the system's roots otherwise
    #[arg(long)]
    ca: Option<PathBuf>,
    /// An initial access token for dynamic client registration (needed with --issuer; made in
    /// the local store otherwise)
    #[arg(long)]
    initial_access_token: Option<String>,
}

/// How long the interactive mode waits for the browser to come back.
const CALLBACK_WAIT: Duration = Duration::from_secs(300);

pub async fn run(config: &Config, args: DemoArgs) -> Result<(), Failure> {
    let local = args.issuer.is_none();
    if local {
        crate::require_data_dir(config)?;
    }
    let issuer = args
        .issuer
        .clone()
        .unwrap_or_else(|| config.server.issuer.clone())
        .trim_end_matches('/')
        .to_owned();
    let ca_path = match (&args.ca, local) {
        (Some(p), _) => Some(p.clone()),
        // the development CA, unless the operator configured real certificates (then the
        // system's roots trust the server, as they trust any other)
        (None, true) if config.tls.cert_file.is_empty() => {
            Some(crate::tls::TlsFiles::new(&config.server.data_dir).ca_cert())
        }
        (None, true) => None,
        (None, false) => None,
    };
    if !local && args.initial_access_token.is_none() {
        return Err(Failure::Usage(
            "--issuer needs --initial-access-token (from `portcullis registration-token create` on that server)".into(),
        ));
    }
    let trust = match &ca_path {
        Some(p) => TlsTrust::Only(
            std::fs::read(p).map_err(|e| Failure::Usage(format!("cannot read the CA file {}: {e}", p.display())))?,
        ),
        None => TlsTrust::System,
    };
    let login = match &args.user {
        Some(user) => Some((user.clone(), read_password(user, args.password_stdin)?)),
        None => None,
    };

    println!("Portcullis demo: a FAPI 2.0 flow against {issuer}");
    let mut demo = Demo {
        steps: 0,
        ca_hint: match (&ca_path, local) {
            (Some(p), true) => format!("{} for the login page and the callback", p.display()),
            (Some(p), false) => format!(
                "{} for the login page; the callback's certificate is self-signed",
                p.display()
            ),
            (None, _) => "the server; the callback's certificate is self-signed".into(),
        },
    };
    match demo.flow(config, &args, &issuer, &trust, login, local).await {
        Ok(()) => {
            println!(
                "All {} steps held: PAR, PKCE, private_key_jwt, DPoP with server nonces, RFC 9207, id_token, userinfo, the demo API and refresh work end to end.",
                demo.steps
            );
            Ok(())
        }
        Err((step, e)) => {
            println!("✗ {step}: {e}");
            Err(Failure::Runtime(format!("demo failed at {step}: {e}")))
        }
    }
}

/// A failed step: its name and why.
type StepError = (&'static str, String);

struct Demo {
    steps: usize,
    /// What the user's browser must trust to show the pages and the callback without warnings.
    ca_hint: String,
}

impl Demo {
    fn held(&mut self, step: &str, detail: impl std::fmt::Display) {
        self.steps += 1;
        println!("✓ {step}: {detail}");
        let _ = std::io::stdout().flush();
    }

    async fn flow(
        &mut self,
        config: &Config,
        args: &DemoArgs,
        issuer: &str,
        trust: &TlsTrust,
        login: Option<(String, String)>,
        local: bool,
    ) -> Result<(), StepError> {
        let transport: Arc<dyn Transport> =
            Arc::new(ReqwestTransport::new(trust).map_err(|e| ("setup", e.to_string()))?);

        // 1. discovery
        let metadata = ServerMetadata::discover(transport.as_ref(), issuer)
            .await
            .map_err(|e| {
                let hint = match (&e, local) {
                    (ClientError::Transport { .. }, true) => " (is `portcullis serve` running?)",
                    _ => "",
                };
                ("discovery", format!("{e}{hint}"))
            })?;
        let dpop_algs = list(&metadata.document["dpop_signing_alg_values_supported"]);
        self.held(
            "discovery",
            format!(
                "issuer matches the metadata (RFC 8414 §3.3); PAR required: {}; PKCE S256; iss in responses: {}; DPoP algs {dpop_algs}",
                metadata.document["require_pushed_authorization_requests"] == Value::Bool(true),
                metadata.authorization_response_iss_parameter_supported
            ),
        );

        // 2. the user and the initial access token, made in the local store
        let store = if local {
            Some(setup::open_store(config).await.map_err(|e| ("store", start_error(e)))?)
        } else {
            None
        };
        if let (Some(store), Some((user, password))) = (&store, &login) {
            let created = ensure_user(store.as_ref(), user, password)
                .await
                .map_err(|e| ("user", e))?;
            if created {
                self.held(
                    "user",
                    format!(
                        "created {user} in the local store (it did not exist; it stays: \
                         `portcullis user remove {user}` removes it)"
                    ),
                );
            } else {
                self.held("user", format!("{user} exists in the local store"));
            }
        }
        let initial_access_token = match (&args.initial_access_token, &store) {
            (Some(t), _) => t.clone(),
            (None, Some(store)) => {
                let t = initial_access_token(store.as_ref())
                    .await
                    .map_err(|e| ("initial access token", e))?;
                self.held(
                    "initial access token",
                    "made in the local store (one use, valid 10 min), as `registration-token create` does",
                );
                t
            }
            (None, None) => return Err(("initial access token", "none given".into())),
        };

        // 3. keys
        let key = SigningKey::generate(Algorithm::Es256).map_err(|e| ("keys", e.to_string()))?;
        let dpop = DpopKey::generate(Algorithm::Es256).map_err(|e| ("keys", e.to_string()))?;
        let jkt = dpop.jkt().to_owned();
        self.held(
            "keys",
            format!("client key ES256 kid={}…, DPoP key ES256 jkt={jkt}", short(key.kid())),
        );

        // 4. the callback: a TLS listener in interactive mode
        let listener = match &login {
            Some(_) => None,
            None => Some(
                CallbackListener::bind(config, local)
                    .await
                    .map_err(|e| ("callback listener", e))?,
            ),
        };
        let redirect_uri = match &listener {
            Some(l) => format!("https://127.0.0.1:{}/callback", l.port),
            None => "https://127.0.0.1/callback".to_owned(),
        };

        // 5. registration
        let demo_api = metadata.demo_api.clone();
        let mut scope = "openid profile email".to_owned();
        if let Some(api) = &demo_api {
            scope.push(' ');
            scope.push_str(&api.scope);
        }
        let request = RegistrationRequest {
            client_name: Some("portcullis demo".into()),
            redirect_uris: vec![redirect_uri.clone()],
            scope: Some(scope.clone()),
            extra: Map::new(),
        };
        let registration = register(
            transport.as_ref(),
            &metadata,
            Some(&initial_access_token),
            &request,
            &key,
        )
        .await
        .map_err(|e| ("registration", e.to_string()))?;
        self.held(
            "registration",
            format!(
                "client_id {}… (RFC 7591: private_key_jwt with our public key, DPoP-bound tokens, redirect URI {redirect_uri})",
                short(&registration.client_id)
            ),
        );
        let client = Client::new(
            transport.clone(),
            metadata.clone(),
            registration.client_id.clone(),
            key,
            dpop,
        );
        let result = self
            .authorized_flow(&client, trust, &scope, &redirect_uri, listener, login)
            .await;
        // RFC 7592: the demo client goes away again, and with it what it was issued
        let cleanup = registration_cleanup(transport.as_ref(), &registration).await;
        result?;
        cleanup.map_err(|e| ("cleanup", e.to_string()))?;
        self.held("cleanup", "demo client deleted (RFC 7592), its tokens revoked with it");
        Ok(())
    }

    async fn authorized_flow(
        &mut self,
        client: &Client,
        trust: &TlsTrust,
        scope: &str,
        redirect_uri: &str,
        listener: Option<CallbackListener>,
        login: Option<(String, String)>,
    ) -> Result<(), StepError> {
        let metadata = client.metadata();
        // 6. PAR
        let params = AuthorizationParams {
            redirect_uri: redirect_uri.to_owned(),
            scope: scope.to_owned(),
            extra: Vec::new(),
        };
        let pushed = client
            .push_authorization(&params)
            .await
            .map_err(|e| ("PAR", e.to_string()))?;
        let pending = pushed.value;
        self.held(
            "PAR",
            format!(
                "request_uri {}… (expires in {} s); private_key_jwt accepted, PKCE S256 challenge sent, {}",
                short_tail(&pending.request_uri),
                pending.expires_in,
                nonce_note(&pushed.dpop)
            ),
        );

        // 7. the user: a scripted browser, or a person
        let callback = match (login, listener) {
            (Some((user, password)), _) => {
                let browser = HeadlessBrowser::new(trust).map_err(|e| ("login", e.to_string()))?;
                let outcome = browser
                    .authorize(&pending.authorization_url, redirect_uri, &user, &password, "allow")
                    .await
                    .map_err(|e| ("login and consent", e.to_string()))?;
                self.held(
                    "login and consent",
                    format!(
                        "{} as {user}, {} (headless user agent, cookies and CSRF fields kept)",
                        if outcome.signed_in {
                            "signed in"
                        } else {
                            "already signed in"
                        },
                        if outcome.consented {
                            "allowed the scopes on the consent page"
                        } else {
                            "no consent page"
                        },
                    ),
                );
                outcome.callback
            }
            (None, Some(listener)) => {
                println!(
                    "Open this URL in your browser within {} s, sign in and allow (the browser must trust {}):",
                    pending.expires_in, self.ca_hint
                );
                println!("  {}", pending.authorization_url);
                open_browser(&pending.authorization_url);
                let callback = listener.wait(CALLBACK_WAIT).await.map_err(|e| ("browser", e))?;
                self.held("login and consent", "the browser came back to the callback listener");
                callback
            }
            (None, None) => return Err(("login", "no way to reach the user".into())),
        };

        // 8. the authorization response
        let code = pending
            .callback(&callback)
            .map_err(|e| ("authorization response", e.to_string()))?;
        self.held(
            "authorization response",
            "code received; iss matched the issuer (RFC 9207), state matched (RFC 6749 §10.12)",
        );

        // 9. tokens
        let tokens = client
            .exchange_code(&pending, &code)
            .await
            .map_err(|e| ("token", e.to_string()))?;
        let t = tokens.value;
        self.held(
            "token",
            format!(
                "{} access token (expires in {} s){}{}; PKCE verifier and private_key_jwt accepted, {}",
                t.token_type,
                t.expires_in.unwrap_or_default(),
                if t.refresh_token.is_some() {
                    ", refresh token"
                } else {
                    ""
                },
                if t.id_token.is_some() { ", id_token" } else { "" },
                nonce_note(&tokens.dpop)
            ),
        );

        // 10. id_token
        let id_token = t
            .id_token
            .as_deref()
            .ok_or(("id_token", "the token response has no id_token".to_owned()))?;
        let id = client
            .validate_id_token(id_token, Some(&pending.nonce))
            .await
            .map_err(|e| ("id_token", e.to_string()))?;
        self.held(
            "id_token",
            format!(
                "{} signature verified with the server JWKS (kid {}); iss, aud, exp, iat and nonce matched; sub {}",
                id.alg,
                id.kid.as_deref().map(short).unwrap_or("none"),
                id.sub
            ),
        );

        // 11. the binding, as the server records it
        let introspection = client
            .introspect(&t.access_token)
            .await
            .map_err(|e| ("introspection", e.to_string()))?;
        let bound = introspection["cnf"]["jkt"].as_str().unwrap_or_default();
        if introspection["active"] != Value::Bool(true) || bound != client.dpop_key().jkt() {
            return Err((
                "introspection",
                format!("the token is not active and bound to our DPoP key: {introspection}"),
            ));
        }
        self.held(
            "introspection",
            format!("token active and bound to our DPoP key (cnf.jkt={bound})"),
        );

        // 12. userinfo
        let userinfo = client
            .userinfo(&t.access_token)
            .await
            .map_err(|e| ("userinfo", e.to_string()))?;
        if userinfo.value["sub"].as_str() != Some(id.sub.as_str()) {
            return Err(("userinfo", "sub differs from the id_token's".into()));
        }
        let claims: Vec<&str> = userinfo
            .value
            .as_object()
            .map(|m| m.keys().map(String::as_str).filter(|k| *k != "sub").collect())
            .unwrap_or_default();
        self.held(
            "userinfo",
            format!(
                "sub matches the id_token; claims: {}; DPoP proof with ath accepted, {}",
                if claims.is_empty() {
                    "none but sub".to_owned()
                } else {
                    claims.join(", ")
                },
                nonce_note(&userinfo.dpop)
            ),
        );

        // 13. the demo API
        if let Some(api) = &metadata.demo_api {
            self.demo_api(client, api, &t.access_token).await?;
        }

        // 14. refresh
        let refresh_token = t
            .refresh_token
            .as_deref()
            .ok_or(("refresh", "the token response has no refresh token".to_owned()))?;
        let refreshed = client
            .refresh(refresh_token)
            .await
            .map_err(|e| ("refresh", e.to_string()))?;
        let r = refreshed.value;
        if let Some(id_token) = &r.id_token {
            let again = client
                .validate_id_token(id_token, None)
                .await
                .map_err(|e| ("refresh", e.to_string()))?;
            if again.sub != id.sub {
                return Err(("refresh", "the new id_token names another sub".into()));
            }
        }
        if r.access_token == t.access_token {
            return Err(("refresh", "the same access token came back".into()));
        }
        let check = client
            .userinfo(&r.access_token)
            .await
            .map_err(|e| ("refresh", format!("the new access token does not work: {e}")))?;
        if check.value["sub"] != userinfo.value["sub"] {
            return Err(("refresh", "userinfo with the new token names another sub".into()));
        }
        self.held(
            "refresh",
            format!(
                "new {} access token (expires in {} s){}, works at userinfo; same DPoP key",
                r.token_type,
                r.expires_in.unwrap_or_default(),
                if r.id_token.is_some() { " and id_token" } else { "" },
            ),
        );
        Ok(())
    }

    async fn demo_api(
        &mut self,
        client: &Client,
        api: &portcullis_client::DemoApi,
        token: &str,
    ) -> Result<(), StepError> {
        let url = api.accounts_endpoint.as_str();
        let call = |sign: bool| ResourceRequest {
            method: Method::GET,
            url,
            access_token: token,
            body: Vec::new(),
            sign,
            verify_response_with: api.response_signing_jwks_uri.as_deref(),
        };
        let r = client
            .resource(call(false))
            .await
            .map_err(|e| ("demo API", e.to_string()))?;
        let count = accounts(&r.value).map_err(|e| ("demo API", e))?;
        self.held(
            "demo API",
            format!(
                "GET {} → {count} accounts; DPoP-bound token accepted, {}{}",
                path(url),
                nonce_note(&r.dpop),
                signed_note(&r.value)
            ),
        );

        let r = client
            .resource(call(true))
            .await
            .map_err(|e| ("demo API, signed", e.to_string()))?;
        accounts(&r.value).map_err(|e| ("demo API, signed", e))?;
        self.held(
            "demo API, signed",
            format!(
                "request signed with our client key (RFC 9421, label {}, tag fapi-2-request) and accepted{}",
                r.value.request_signature.as_deref().unwrap_or("?"),
                signed_note(&r.value)
            ),
        );

        // the same token with another key's proof: what a thief holding the token would send
        let thief = Client::new(
            client.transport(),
            client.metadata().clone(),
            client.client_id(),
            SigningKey::generate(Algorithm::Es256).map_err(|e| ("sender constraint", e.to_string()))?,
            DpopKey::generate(Algorithm::Es256).map_err(|e| ("sender constraint", e.to_string()))?,
        );
        let stolen = thief
            .resource(ResourceRequest {
                verify_response_with: None,
                ..call(false)
            })
            .await
            .map_err(|e| ("sender constraint", e.to_string()))?
            .value;
        if stolen.status != 401 {
            return Err((
                "sender constraint",
                format!("the token with another key's proof was answered {}", stolen.status),
            ));
        }
        let challenge = stolen
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let error = challenge
            .split("error=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("no error code");
        self.held(
            "sender constraint",
            format!("the token presented with another key's DPoP proof was refused (401 {error})"),
        );
        Ok(())
    }
}

/// The number of accounts in a 200 answer, or why it is not one.
fn accounts(r: &portcullis_client::ResourceResponse) -> Result<usize, String> {
    if r.status != 200 {
        return Err(resource_error("demo API", r.status, &r.headers, &r.body).to_string());
    }
    let body: Value = serde_json::from_slice(&r.body).map_err(|_| "the answer is not JSON".to_owned())?;
    body["accounts"]
        .as_array()
        .map(Vec::len)
        .ok_or_else(|| "the answer has no accounts".to_owned())
}

fn signed_note(r: &portcullis_client::ResourceResponse) -> String {
    match &r.response_signature {
        Some(s) => format!(
            "; response signature verified with the server JWKS (keyid {}…, {}{})",
            short(s.keyid()),
            s.algorithm(),
            if r.request_signature.is_some() {
                ", bound to our request signature"
            } else {
                ""
            }
        ),
        None => String::new(),
    }
}

fn nonce_note(x: &DpopExchange) -> &'static str {
    if x.nonce_required {
        "DPoP nonce required (use_dpop_nonce) and honoured"
    } else if x.nonce.is_some() {
        "DPoP proof with the server's current nonce"
    } else {
        "DPoP proof accepted without a nonce"
    }
}

fn short(s: &str) -> &str {
    let end = s.char_indices().nth(12).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

/// A URN with its last segment shortened: `urn:ietf:params:oauth:request_uri:Ab3dE…`.
fn short_tail(urn: &str) -> String {
    match urn.rsplit_once(':') {
        Some((head, tail)) => format!("{head}:{}", short(tail)),
        None => short(urn).to_owned(),
    }
}

fn path(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.path().to_owned())
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn start_error(e: crate::datadir::StartError) -> String {
    match e {
        crate::datadir::StartError::Usage(m) | crate::datadir::StartError::Runtime(m) => m,
    }
}

/// The password for `--user`: one line of standard input, or asked on the terminal.
fn read_password(user: &str, from_stdin: bool) -> Result<String, Failure> {
    let password = if from_stdin {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(|e| Failure::Usage(format!("cannot read the password from standard input: {e}")))?;
        input.lines().next().unwrap_or_default().to_owned()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Password for {user}: "))
            .map_err(|e| Failure::Usage(format!("cannot read the password from the terminal: {e}")))?
    } else {
        return Err(Failure::Usage(
            "standard input is not a terminal: pass --password-stdin to read the password from it".into(),
        ));
    };
    if password.is_empty() {
        return Err(Failure::Usage("the password is empty".into()));
    }
    Ok(password)
}

/// Creates `username` with `password` unless it exists; true when it was created.
async fn ensure_user(store: &dyn Store, username: &str, password: &str) -> Result<bool, String> {
    if store.get_user(username).await.map_err(|e| e.to_string())?.is_some() {
        return Ok(false);
    }
    let user = User {
        username: username.to_owned(),
        sub: uuid::Uuid::new_v4().to_string(),
        password_hash: admin::hashed(password.to_owned()).await.map_err(failure_text)?,
        claims: Map::new(),
        created_at: Some(now()),
    };
    store.insert_user(&user).await.map_err(|e| e.to_string())?;
    crate::audit_events::record_with(
        "user_created",
        "success",
        None,
        Some(&user.sub),
        &format!("username={username} by=demo"),
    );
    Ok(true)
}

/// One initial access token for one registration, valid 10 minutes.
async fn initial_access_token(store: &dyn Store) -> Result<String, String> {
    let (token, record) = admin::create_initial_access_token(store, 600, Some(1))
        .await
        .map_err(failure_text)?;
    crate::audit_events::record_with(
        "registration_token_created",
        "success",
        None,
        None,
        &format!("id={} by=demo", admin::token_id(&record.token_hash)),
    );
    Ok(token)
}

fn failure_text(f: Failure) -> String {
    match f {
        Failure::Usage(m) | Failure::Runtime(m) => m,
    }
}

async fn registration_cleanup(transport: &dyn Transport, registration: &Registration) -> Result<(), ClientError> {
    registration.delete(transport).await
}

/// Starts the user's browser on `url` if the platform has an opener; the URL is printed anyway.
fn open_browser(url: &str) {
    for opener in ["xdg-open", "open"] {
        let started = std::process::Command::new(opener)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if started.is_ok() {
            return;
        }
    }
}

/// The loopback TLS listener the browser is redirected to in interactive mode.
struct CallbackListener {
    port: u16,
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl CallbackListener {
    async fn bind(config: &Config, local: bool) -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let files = crate::tls::TlsFiles::new(&config.server.data_dir);
        // the development certificate serves the callback when the server uses it
        let dev = local && config.tls.cert_file.is_empty();
        let tls = crate::tls::loopback_config(dev.then_some(&files))?;
        Ok(Self {
            port,
            listener,
            acceptor: tokio_rustls::TlsAcceptor::from(tls),
        })
    }

    /// Answers requests until one comes to `/callback`; returns its URL.
    async fn wait(self, limit: Duration) -> Result<String, String> {
        let wait = async {
            loop {
                let Ok((tcp, _)) = self.listener.accept().await else {
                    // out of file descriptors or similar: do not spin
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let handshake = tokio::time::timeout(Duration::from_secs(10), self.acceptor.accept(tcp)).await;
                let Ok(Ok(mut tls)) = handshake else { continue };
                let Ok(Ok(target)) = tokio::time::timeout(Duration::from_secs(10), read_target(&mut tls)).await else {
                    continue;
                };
                let is_callback = target.split('?').next() == Some("/callback");
                let (status, text) = if is_callback {
                    (
                        "200 OK",
                        "Portcullis demo: the authorization response arrived. You can close this window; the demo goes on in the terminal.",
                    )
                } else {
                    ("404 Not Found", "Not found.")
                };
                let page = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{text}",
                    text.len()
                );
                let _ = tls.write_all(page.as_bytes()).await;
                let _ = tls.shutdown().await;
                if is_callback {
                    return format!("https://127.0.0.1:{}{target}", self.port);
                }
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| format!("no callback within {} s", limit.as_secs()))
    }
}

/// The request target of an HTTP/1.1 request head (`GET /callback?... HTTP/1.1`).
async fn read_target(stream: &mut (impl AsyncReadExt + Unpin)) -> Result<String, String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 || head.len() + n > 16 * 1024 {
            return Err("incomplete request".into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next().unwrap_or_default().split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) if target.starts_with('/') => Ok(target.to_owned()),
        _ => Err("not a GET".into()),
    }
}
