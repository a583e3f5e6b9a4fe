//! `portcullis`: a FAPI 2.0 authorization server. See INTERFACE.md for the commands.
#![forbid(unsafe_code)]

mod admin;
mod app;
mod audit;
mod audit_cli;
mod audit_events;
mod branding;
mod check;
mod config;
mod config_shape;
mod connections;
mod datadir;
mod demo;
mod demo_cmd;
mod dev_ca;
mod http;
mod i18n;
mod login_failures;
mod management;
mod pages;
mod server_cert;
mod setup;
mod signing_keys;
mod time;
mod timed_store;
mod tls;
mod users;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use portcullis_core::Store;
use portcullis_core::model::Client;
use portcullis_core::registration::{auth_method_available, validate_metadata, validate_resource_server_metadata};
use portcullis_core::request::Listener;
use serde_json::{Value, json};

use crate::admin::{TokenCommand, UserCommand};
use crate::config::Config;

#[derive(Parser)]
#[command(name = "portcullis", version, about = "A FAPI 2.0 authorization server")]
struct Cli {
    /// Configuration file (TOML)
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory (database, keys, development CA); overrides server.data_dir
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the authorization server
    Serve,
    /// Validate the configuration and the database (integrity, schema version); print the
    /// effective settings (secrets masked)
    Check,
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// Manage clients
    #[command(subcommand)]
    Client(ClientCommand),
    /// Initial access tokens for dynamic client registration (RFC 7591)
    #[command(subcommand, name = "registration-token")]
    RegistrationToken(TokenCommand),
    /// The server's signing keys
    #[command(subcommand)]
    Keys(signing_keys::KeysCommand),
    /// The non-repudiation evidence log
    #[command(subcommand)]
    Audit(audit_cli::AuditCommand),
    /// Register a demo client and run a complete FAPI 2.0 flow against the server, step by step
    Demo(demo_cmd::DemoArgs),
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its metadata as JSON
    Add(Box<ClientAdd>),
    /// List clients
    List,
    /// Show one client
    Show { client_id: String },
    /// Remove a client and everything issued to it
    Remove { client_id: String },
}

#[derive(Args)]
struct ClientAdd {
    #[arg(long)]
    name: Option<String>,
    /// private_key_jwt, tls_client_auth or self_signed_tls_client_auth
    #[arg(long)]
    auth: String,
    #[arg(long = "redirect-uri", required_unless_present = "resource_server")]
    redirect_uris: Vec<String>,
    /// Register a resource server for this resource identifier (one of tokens.resources): it
    /// may introspect the access tokens issued for it, and nothing else
    #[arg(long, conflicts_with_all = ["redirect_uris", "no_refresh", "scope"])]
    resource_server: Option<String>,
    #[arg(long, conflicts_with = "jwks_uri")]
    jwks_file: Option<PathBuf>,
    #[arg(long)]
    jwks_uri: Option<String>,
    #[arg(long)]
    tls_subject_dn: Option<String>,
    #[arg(long = "tls-san-dns")]
    tls_san_dns: Vec<String>,
    /// dpop (default) or mtls
    #[arg(long, default_value = "dpop")]
    sender_constraint: String,
    /// jwt (RFC 9068) or opaque; the server's tokens.access_token_format when absent
    #[arg(long)]
    access_token_format: Option<String>,
    /// Allowed scopes (space-separated)
    #[arg(long)]
    scope: Option<String>,
    /// Do not allow the refresh_token grant
    #[arg(long)]
    no_refresh: bool,
    /// The client signs every demo API request (HTTP message signatures, FAPI 2.0 HTTP
    /// Signatures) with a key of its JWKS; unsigned ones are refused
    #[arg(long)]
    require_signed_resource_requests: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let config = match Config::load(cli.config.as_deref(), cli.data_dir.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("portcullis: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("portcullis: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(run(cli.command, config));
    // everything that matters is done; do not wait for idle worker threads
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("portcullis: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("portcullis: {e}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Usage(String),
    Runtime(String),
}

impl From<datadir::StartError> for Failure {
    fn from(e: datadir::StartError) -> Self {
        match e {
            datadir::StartError::Usage(m) => Failure::Usage(m),
            datadir::StartError::Runtime(m) => Failure::Runtime(m),
        }
    }
}

fn rt(e: impl std::fmt::Display) -> Failure {
    Failure::Runtime(e.to_string())
}

async fn run(command: Command, config: Config) -> Result<(), Failure> {
    // only `serve` makes a data dir: any other command on a missing one is a mistake (a typo
    // in --data-dir, or the wrong working directory), not a reason to start an empty one
    if !matches!(command, Command::Serve | Command::Demo(_)) {
        require_data_dir(&config)?;
    }
    if !matches!(command, Command::Serve) {
        init_cli_tracing(&config);
    }
    match command {
        Command::Serve => serve(config).await,
        Command::Check => check::run(&config).await,
        Command::User(u) => admin::user_command(&config, u).await,
        Command::Client(c) => client_command(&config, c).await,
        Command::RegistrationToken(t) => admin::token_command(&config, t).await,
        Command::Keys(k) => Ok(signing_keys::command(&config, k).await?),
        Command::Demo(d) => demo_cmd::run(&config, d).await,
        Command::Audit(a) => {
            let store = setup::open_store(&config).await?;
            match audit_cli::run(store.as_ref(), a).await {
                Ok(true) => Ok(()),
                // `audit verify` found a broken link (already printed): exit 1
                Ok(false) => Err(Failure::Runtime("the evidence log is not intact".into())),
                Err(e) => Err(rt(e)),
            }
        }
    }
}

/// The data dir of every command but `serve` must exist already (issue 17).
fn require_data_dir(config: &Config) -> Result<(), Failure> {
    let dir = &config.server.data_dir;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Failure::Usage(format!(
            "data directory {} is not a directory (pass --data-dir)",
            dir.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::Usage(format!(
            "data directory {} does not exist (run `portcullis serve` first, or pass --data-dir)",
            dir.display()
        ))),
        Err(e) => Err(Failure::Usage(format!(
            "cannot read the data directory {}: {e}",
            dir.display()
        ))),
    }
}

fn now() -> i64 {
    use portcullis_core::Clock;
    app::SystemClock.now()
}

fn parse_duration(s: &str) -> Result<i64, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (e.g. 30m, 1h, 7d)"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("invalid duration unit in {s:?} (s, m, h, d)")),
    };
    let secs = n
        .checked_mul(factor)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("invalid duration {s:?}"))?;
    Ok(secs)
}

async fn serve(config: Config) -> Result<(), Failure> {
    init_tracing(&config);
    // before anything records a metric (the store's timing keeps its handles)
    let prometheus = management::install_recorder().map_err(rt)?;
    // a next key must be in every JWKS a client holds before it signs: servers reload every
    // 30 s and the JWKS may be cached for 60 s
    if (1..90).contains(&config.keys.prepublication) {
        tracing::warn!(
            prepublication = config.keys.prepublication,
            "keys.prepublication is shorter than 90 s (30 s reload + 60 s JWKS cache): clients may meet an unknown kid after a rotation"
        );
    }
    // first-start initialisation (database, keys, development certificates) has one winner
    // among processes starting together on this data dir; the others adopt what it made
    // (issue 13 item 17)
    // the branding's files and templates are part of the configuration: a bad one is exit 2
    let ui = pages::load_ui(&config).map_err(Failure::Usage)?;
    let init = datadir::StartupLock::acquire(&config.server.data_dir).await?;
    let store = setup::open_store(&config).await?;
    // issue 17 item 4: the signing keys are sealed at rest; a wrong key-encryption key is the
    // operator's to fix (exit 2)
    let custody = std::sync::Arc::new(signing_keys::Custody::load(&config, store.as_ref()).await?);
    let settings = setup::settings(&config).map_err(Failure::Usage)?;
    let keys = signing_keys::load(store.as_ref(), &settings, &custody, now()).await?;
    let (state, audit_writer) = app::build(&config, store.clone(), ui, keys, custody)
        .await
        .map_err(rt)?;
    // issue 17 item 3: the configured certificate, else the development CA's
    let provider = std::sync::Arc::new(tls::fapi_provider());
    let (source, trust_line) = certificate_source(&config)?;
    let first = server_cert::load(&source, &provider, now()).map_err(|e| match &source {
        server_cert::Source::Files { .. } => Failure::Usage(e),
        server_cert::Source::Dev { files, .. } => rt(format!(
            "{e}; if the development certificate and key do not belong together, delete {} (they are made \
             again at start)",
            files.dir.display()
        )),
    })?;
    let certificate = server_cert::ServerCertificate::new(first);
    let (plain, mtls) = tls::server_configs(certificate.clone(), provider.clone()).map_err(rt)?;
    server_cert::spawn_reloader(source, certificate, provider, secs(config.tls.reload_interval), now);
    drop(init);
    let listen_hint = |e: String| {
        rt(format!(
            "{e}; stop what uses it or set server.listen / server.mtls_listen"
        ))
    };
    let main_listener = tls::bind(config.server.listen).await.map_err(listen_hint)?;
    let mtls_listener = tls::bind(config.server.mtls_listen).await.map_err(listen_hint)?;
    let management_listener = tokio::net::TcpListener::bind(config.server.management_listen)
        .await
        .map_err(|e| {
            rt(format!(
                "cannot listen on {} (server.management_listen): {e}; stop what uses it or set server.management_listen",
                config.server.management_listen
            ))
        })?;
    if !config.server.management_listen.ip().is_loopback() {
        tracing::warn!(
            address = %config.server.management_listen,
            "the management listener (health, metrics) is not on loopback: keep it off public networks"
        );
    }
    let discovery = format!("{}/.well-known/openid-configuration", config.server.issuer);
    println!("issuer: {}", config.server.issuer);
    println!("discovery: {discovery}");
    println!("{trust_line}");
    println!(
        "listening: https://{} and https://{} (client certificates requested)",
        config.server.listen, config.server.mtls_listen
    );
    let management_addr = management_listener
        .local_addr()
        .unwrap_or(config.server.management_listen);
    println!("management: http://{management_addr} (/health/live, /health/ready, /metrics)");
    let (gate, timeouts) = connection_limits(&config);
    let body_timeouts = http::BodyTimeouts {
        whole: secs(config.server.body_timeout),
        stall: secs(config.server.body_stall_timeout),
    };
    let to_usize = |n: i64| usize::try_from(n).unwrap_or(usize::MAX);
    let body_budget = connections::BodyBudget::new(
        to_usize(config.server.max_buffered_body_bytes),
        to_usize(config.server.max_buffered_body_bytes_per_ip),
    );
    let router = http::router(state.clone(), body_timeouts, body_budget);
    let management_router = management::router(std::sync::Arc::new(management::Management {
        state: state.clone(),
        store: store.clone(),
        metrics: prometheus,
    }));
    app::spawn_maintenance(state);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut stop_management = rx.clone();
    let c = tokio::spawn(async move {
        let served = axum::serve(management_listener, management_router)
            .with_graceful_shutdown(async move {
                let _ = stop_management.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the management listener failed");
        }
    });
    let a = tokio::spawn(tls::serve(
        main_listener,
        plain,
        router.clone(),
        Listener::Main,
        gate.clone(),
        timeouts,
        rx.clone(),
    ));
    let b = tokio::spawn(tls::serve(
        mtls_listener,
        mtls,
        router,
        Listener::Mtls,
        gate,
        timeouts,
        rx,
    ));
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = tx.send(true);
    let _ = a.await;
    let _ = b.await;
    let _ = c.await;
    // the evidence still queued goes into the chain before the database closes
    audit_writer.finish(std::time::Duration::from_secs(10)).await;
    // a clean close checkpoints the SQLite write-ahead log
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Where the server certificate comes from, and the line `serve` prints about it: the CA to
/// trust (development) or the configured file. The development CA is made (or renewed) here,
/// never when `tls.cert_file` is set.
fn certificate_source(config: &Config) -> Result<(server_cert::Source, String), Failure> {
    let files = tls::TlsFiles::new(&config.server.data_dir);
    let tls = &config.tls;
    if !tls.cert_file.is_empty() {
        if files.ca_key().exists() {
            datadir::warn(&format!(
                "{} holds a development CA key, unused with tls.cert_file: delete that directory",
                files.dir.display()
            ));
        }
        let source = server_cert::Source::Files {
            cert: PathBuf::from(&tls.cert_file),
            key: PathBuf::from(&tls.key_file),
        };
        return Ok((source, format!("certificate: {} (tls.cert_file)", tls.cert_file)));
    }
    let issuer_host = url::Url::parse(&config.server.issuer)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
        .unwrap_or_else(|| "localhost".into());
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if !hosts.contains(&issuer_host) {
        hosts.insert(0, issuer_host);
    }
    datadir::check_tls(&files.dir)?;
    tls::ensure_dev_certificates(&files, &hosts, now()).map_err(|e| {
        rt(format!(
            "cannot create the development TLS certificates in {}: {e}; check that directory's permissions",
            files.dir.display()
        ))
    })?;
    let line = format!("ca: {}", files.ca_cert().display());
    Ok((server_cert::Source::Dev { files, hosts }, line))
}

fn secs(n: i64) -> std::time::Duration {
    std::time::Duration::from_secs(n.unsigned_abs())
}

/// Issue 13 item 2: raises the open-file limit, keeps the connection cap below it, and logs
/// both. The settings were validated (positive) at load.
fn connection_limits(config: &Config) -> (std::sync::Arc<connections::Gate>, connections::Timeouts) {
    let s = &config.server;
    let nofile = connections::raise_open_file_limit();
    let wanted = s.max_connections.unsigned_abs();
    let max = connections::effective_max_connections(wanted, nofile);
    if max < wanted {
        tracing::warn!(
            max_connections = max,
            configured = wanted,
            open_file_limit = nofile,
            "server.max_connections lowered to stay below the open-file limit"
        );
    }
    tracing::info!(
        open_file_limit = nofile,
        max_connections = max,
        max_connections_per_ip = s.max_connections_per_ip,
        "connection limits"
    );
    let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let gate = connections::Gate::new(to_usize(max), to_usize(s.max_connections_per_ip.unsigned_abs()));
    let timeouts = connections::Timeouts {
        handshake: secs(s.handshake_timeout),
        first_byte: secs(s.first_byte_timeout),
        header: secs(s.header_timeout),
        idle: secs(s.idle_timeout),
        write: secs(s.write_timeout),
        max_age: secs(s.max_connection_age),
    };
    (gate, timeouts)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The log of a command other than `serve`: warnings, and its audit events (issue 17 item 2).
fn init_cli_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(format!("warn,{}=info,sqlx=warn", audit_events::TARGET));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    if config.log.format == "json" {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

fn init_tracing(config: &Config) {
    let mut filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // issue 17 item 2: `debug` is ours, not every SQL statement and the schema (ask for
    // `sqlx=debug` by name to see those)
    if !config.log.level.contains("sqlx")
        && let Ok(quiet) = "sqlx=warn".parse()
    {
        filter = filter.add_directive(quiet);
    }
    // colours only on a terminal, never in files or journals
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if config.log.format == "json" {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

async fn client_command(config: &Config, command: ClientCommand) -> Result<(), Failure> {
    let store = setup::open_store(config).await?;
    let settings = setup::settings(config).map_err(Failure::Usage)?;
    // the registration body needs a Provider only for URLs; build the JSON directly
    let body = |c: &Client| {
        let mut v = serde_json::to_value(&c.metadata).unwrap_or_default();
        v["client_id"] = json!(c.client_id);
        v["client_id_issued_at"] = json!(c.issued_at);
        v
    };
    match command {
        ClientCommand::Add(a) => {
            let mut meta = json!({
                "redirect_uris": a.redirect_uris,
                "token_endpoint_auth_method": a.auth,
                "grant_types": if a.no_refresh { json!(["authorization_code"]) } else { json!(["authorization_code", "refresh_token"]) },
                "response_types": ["code"],
            });
            if let Some(n) = a.name {
                meta["client_name"] = json!(n);
            }
            if let Some(s) = a.scope {
                meta["scope"] = json!(s);
            }
            if let Some(f) = a.jwks_file {
                let text = std::fs::read_to_string(&f).map_err(|e| Failure::Usage(format!("{}: {e}", f.display())))?;
                let v: Value =
                    serde_json::from_str(&text).map_err(|e| Failure::Usage(format!("{}: {e}", f.display())))?;
                meta["jwks"] = v;
            }
            if let Some(u) = a.jwks_uri {
                meta["jwks_uri"] = json!(u);
            }
            if let Some(f) = &a.access_token_format {
                meta["access_token_format"] = json!(f);
            }
            if a.require_signed_resource_requests {
                meta["require_signed_resource_requests"] = json!(true);
            }
            if let Some(dn) = a.tls_subject_dn {
                meta["tls_client_auth_subject_dn"] = json!(dn);
            }
            if let Some(d) = a.tls_san_dns.first() {
                if a.tls_san_dns.len() > 1 {
                    return Err(Failure::Usage(
                        "give exactly one --tls-san-dns (RFC 8705 §2.1.2)".into(),
                    ));
                }
                meta["tls_client_auth_san_dns"] = json!(d);
            }
            match a.sender_constraint.as_str() {
                "dpop" => meta["dpop_bound_access_tokens"] = json!(true),
                "mtls" => meta["tls_client_certificate_bound_access_tokens"] = json!(true),
                other => {
                    return Err(Failure::Usage(format!(
                        "--sender-constraint must be dpop or mtls, not {other}"
                    )));
                }
            }
            let metadata = match &a.resource_server {
                Some(resource) => validate_resource_server_metadata(&meta, resource, &settings),
                None => validate_metadata(&meta, &settings.scopes_supported),
            }
            .and_then(|m| auth_method_available(&m, &settings).map(|()| m))
            .map_err(|e| Failure::Usage(e.description.to_string()))?;
            let client = Client {
                client_id: portcullis_core::random::client_id(),
                issued_at: now(),
                metadata,
            };
            store.insert_client(&client, None).await.map_err(rt)?;
            audit_events::record_with("client_registered", "success", Some(&client.client_id), None, "by=cli");
            println!("{}", serde_json::to_string_pretty(&body(&client)).unwrap_or_default());
        }
        ClientCommand::List => {
            let clients = store.list_clients().await.map_err(rt)?;
            // on standard error: standard output stays one line per client for scripts
            if clients.is_empty() {
                eprintln!("no clients registered");
            }
            for c in clients {
                let name = c.metadata.client_name.clone().unwrap_or_default();
                println!(
                    "{}\t{}\t{}",
                    c.client_id,
                    c.metadata.token_endpoint_auth_method.as_str(),
                    name
                );
            }
        }
        ClientCommand::Show { client_id } => match store.get_client(&client_id).await.map_err(rt)? {
            Some(c) => println!("{}", serde_json::to_string_pretty(&body(&c)).unwrap_or_default()),
            None => return Err(Failure::Usage(format!("no client {client_id}"))),
        },
        ClientCommand::Remove { client_id } => {
            if !store.delete_client(&client_id).await.map_err(rt)? {
                return Err(Failure::Usage(format!("no client {client_id}")));
            }
            audit_events::record_with("client_removed", "success", Some(&client_id), None, "by=cli");
            println!("removed {client_id}");
        }
    }
    Ok(())
}
