//! Wiring: opens the store, loads or creates keys and secrets, builds the `Provider` and the
//! shared state of the HTTP layer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::address_policy::{AllowedHosts, refused_literal};
use portcullis_core::dpop::DpopNonces;
use portcullis_core::secrets::{RotatingKey, SECRET_ROTATION_PERIOD};
use portcullis_core::{Clock, JwksFetcher, KeyRing, Provider, Store};
use portcullis_store::SqliteStore;
use serde_json::Value;

use crate::audit::{AuditLog, AuditWriter};
use crate::config::Config;
use crate::login_failures::LoginFailures;
use crate::signing_keys::{self, SharedCustody};
use crate::users::PasswordWorkers;
use portcullis_resource::proxy::CertificateSource;

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

pub struct AppState {
    pub provider: Provider,
    pub metadata: Value,
    /// Signs CSRF tokens; rotates daily, the previous secret still accepted.
    pub csrf: RotatingKey,
    pub login_failures: LoginFailures,
    /// Where a request's client certificate comes from (TLS, or a trusted proxy's header).
    pub certificates: CertificateSource,
    pub passwords: PasswordWorkers,
    /// The issuer's path ("" or "/tenant"), under which every route lives.
    pub base_path: String,
    pub authorize_path: String,
    pub login_action: String,
    pub consent_action: String,
    pub logout_action: String,
    /// "Not you?" on the consent page.
    pub switch_account_action: String,
    /// The page templates and the operator's branding (issue 17 item 8).
    pub ui: crate::branding::Ui,
    /// The evidence log (issue 16 item 5): signed messages of successful requests go here.
    pub audit: AuditLog,
    /// `audit.retention_days` in seconds; 0 keeps entries forever.
    pub audit_retention: i64,
    /// Opens the sealed signing keys at each reload (issue 17 item 4).
    pub custody: SharedCustody,
}

/// The shared state, and the evidence log's writer (finished at shutdown).
/// `keys` is the ring [`crate::signing_keys::load`] made; `custody` reloads it.
pub async fn build(
    config: &Config,
    store: Arc<SqliteStore>,
    ui: crate::branding::Ui,
    keys: KeyRing,
    custody: SharedCustody,
) -> Result<(Arc<AppState>, AuditWriter), String> {
    let settings = crate::setup::settings(config)?;
    let certificates = CertificateSource::new(&config.tls.client_cert_header, &config.tls.trusted_proxies)?;
    let clock = Arc::new(SystemClock);
    let now = clock.now();
    // issue 13 item 14: the DPoP nonce and CSRF secrets rotate daily (previous one accepted)
    let csrf = RotatingKey::new("csrf", SECRET_ROTATION_PERIOD);
    csrf.refresh(store.as_ref(), now)
        .await
        .map_err(|e| format!("cannot load the server secrets: {e}; check the database"))?;
    // signs the device cookies of the login back-off (kept, so they hold across restarts)
    let device_secret = store
        .get_or_create_secret("login_device", &portcullis_core::random::random_bytes::<32>())
        .await
        .map_err(|e| format!("cannot load the server secrets: {e}; check the database"))?;
    let base_path = url::Url::parse(&settings.issuer)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let (audit, audit_writer) = AuditLog::start(store.clone());
    let provider = Provider::new(
        settings,
        Arc::new(crate::timed_store::TimedStore(store)),
        clock,
        keys,
        DpopNonces::rotating(),
        Arc::new(HttpsJwksFetcher::new(AllowedHosts::new(
            &config.clients.jwks_uri_allowed_hosts,
        ))?),
    );
    provider.refresh_secrets().await.map_err(|e| e.to_string())?;
    let metadata = provider.metadata();
    let state = Arc::new(AppState {
        custody,
        audit,
        audit_retention: config.audit.retention_days.saturating_mul(86_400),
        metadata,
        csrf,
        login_failures: LoginFailures::new(&device_secret, 10_000),
        certificates,
        // one worker per core, at most two: each holds a 19 MiB argon2id buffer
        passwords: PasswordWorkers::new(std::thread::available_parallelism().map_or(1, |n| n.get().min(2))),
        authorize_path: format!("{base_path}/authorize"),
        login_action: format!("{base_path}/login"),
        consent_action: format!("{base_path}/consent"),
        logout_action: format!("{base_path}/logout"),
        switch_account_action: format!("{base_path}/switch-account"),
        ui,
        base_path,
        provider,
    });
    Ok((state, audit_writer))
}

/// Housekeeping: purge expired rows (every 30 s, in bounded batches), delete keys retired
/// past their publication, and pick up rotated keys.
pub fn spawn_maintenance(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            let p = &state.provider;
            let now = p.now();
            // issue 13 item 5: bounded batches, so requests are never held up for long
            if let Err(e) = p.store().purge_expired(now).await {
                tracing::warn!(error = %e, "purge failed");
            }
            // issue 16 item 5: evidence older than audit.retention_days (the chain keeps an
            // anchor, so what remains still verifies)
            if state.audit_retention > 0
                && let Err(e) = p.store().purge_audit_before(now - state.audit_retention).await
            {
                tracing::warn!(error = %e, "audit log purge failed");
            }
            if let Err(e) = p.refresh_secrets().await {
                tracing::warn!(error = %e, "cannot refresh the DPoP nonce secrets");
            }
            if let Err(e) = state.csrf.refresh(p.store().as_ref(), now).await {
                tracing::warn!(error = %e, "cannot refresh the CSRF secrets");
            }
            // keys retired long enough ago that nothing they signed is still valid
            let grace = p.settings().key_publication_grace();
            if let Err(e) = p.store().delete_signing_keys_retired_before(now - grace).await {
                tracing::warn!(error = %e, "cannot delete retired keys");
            }
            // a rotation's keys (published at once; each signs from its activation, decided
            // at every signature, so the switch needs no reload)
            match signing_keys::reload(p.store().as_ref(), p.settings(), &state.custody, now).await {
                Ok(ring) if ring.missing().is_empty() => p.replace_keys(ring),
                Ok(_) => tracing::warn!("stored key ring lacks an algorithm; keeping the current one"),
                Err(e) => tracing::warn!(error = %e, "cannot reload keys"),
            }
        }
    });
}

/// Fetches client `jwks_uri` documents: https only, no redirects, 5 s time-out, 64 KiB cap
/// (AS-SP-01/05); never from loopback, private, link-local or unique-local addresses unless the
/// host is allowed by the operator (issue 13 item 9). Names are resolved by [`PolicyResolver`],
/// which hands the connector only checked addresses, so DNS cannot rebind between check and
/// connect. The roots trusted are the system's (`SSL_CERT_FILE` is honoured).
pub struct HttpsJwksFetcher {
    client: reqwest::Client,
    allowed: AllowedHosts,
}

const JWKS_MAX_BYTES: usize = 64 * 1024;

impl HttpsJwksFetcher {
    pub fn new(allowed: AllowedHosts) -> Result<Self, String> {
        Self::build(None, Duration::from_secs(5), allowed)
    }

    /// `only_root`: trust just this CA instead of the system's (tests).
    fn build(
        only_root: Option<reqwest::Certificate>,
        timeout: Duration,
        allowed: AllowedHosts,
    ) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            // a proxy from the environment would resolve the host itself, past the policy
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver {
                allowed: allowed.clone(),
            }));
        if let Some(root) = only_root {
            builder = builder.tls_certs_only([root]);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client, allowed })
    }
}

#[async_trait]
impl JwksFetcher for HttpsJwksFetcher {
    async fn fetch(&self, uri: &str) -> Result<Value, String> {
        let url = url::Url::parse(uri).map_err(|e| format!("jwks_uri is not a URL: {e}"))?;
        if url.scheme() != "https" {
            return Err("jwks_uri must be https".into());
        }
        // an address literal never reaches the resolver: check it here
        let host = url.host_str().unwrap_or_default();
        if refused_literal(host, &self.allowed) {
            return Err(format!("jwks_uri host {host} is not a public address"));
        }
        let mut res = self.client.get(url).send().await.map_err(|e| error_chain(&e))?;
        if !res.status().is_success() {
            return Err(format!("jwks_uri answered {}", res.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > JWKS_MAX_BYTES {
                return Err("jwks_uri document is too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("jwks_uri is not JSON: {e}"))
    }
}

/// An error with its sources, for the log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

/// Resolves a `jwks_uri` host and keeps only the addresses the policy permits; the connector
/// connects to exactly these.
struct PolicyResolver {
    allowed: AllowedHosts,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allowed.permits(&host, a.ip()))
                .collect();
            if addrs.is_empty() {
                let e: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves to no public address").into();
                return Err(e);
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::Router;
    use axum::response::Redirect;
    use axum::routing::get;
    use portcullis_core::JwksFetcher;

    use portcullis_core::address_policy::AllowedHosts;

    use super::HttpsJwksFetcher;
    use crate::tls;

    /// Issue 10: jwks_uri is fetched safely: https only, no redirects, a size cap, a time-out,
    /// and only JSON.
    #[tokio::test]
    async fn jwks_fetcher_is_careful() {
        let dir = tempfile::tempdir().unwrap();
        let files = tls::TlsFiles::new(dir.path());
        let hosts = vec!["localhost".to_owned()];
        tls::ensure_dev_certificates(&files, &hosts, crate::now()).unwrap();
        let provider = Arc::new(tls::fapi_provider());
        let source = crate::server_cert::Source::Dev { files, hosts };
        let certificate = crate::server_cert::load(&source, &provider, crate::now()).unwrap();
        let (config, _) =
            tls::server_configs(crate::server_cert::ServerCertificate::new(certificate), provider).unwrap();
        let files = tls::TlsFiles::new(dir.path());
        let app = Router::new()
            .route("/jwks", get(|| async { r#"{"keys":[]}"# }))
            .route(
                "/big",
                get(|| async { format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(100_000)) }),
            )
            .route("/redirect", get(|| async { Redirect::temporary("/jwks") }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    "{}"
                }),
            )
            .route("/html", get(|| async { "<html></html>" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let timeouts = crate::connections::Timeouts::default();
        let gate = crate::connections::Gate::new(64, 64);
        tokio::spawn(tls::serve(
            listener,
            config,
            app,
            portcullis_core::request::Listener::Main,
            gate,
            timeouts,
            rx,
        ));
        let ca = reqwest::Certificate::from_pem(&std::fs::read(files.ca_cert()).unwrap()).unwrap();
        let allow_localhost = AllowedHosts::new(&["localhost".into()]);
        let f = Arc::new(HttpsJwksFetcher::build(Some(ca.clone()), Duration::from_secs(1), allow_localhost).unwrap());
        let url = |p: &str| format!("https://localhost:{port}{p}");
        assert_eq!(f.fetch(&url("/jwks")).await.unwrap(), serde_json::json!({"keys": []}));
        assert!(
            f.fetch(&format!("http://localhost:{port}/jwks")).await.is_err(),
            "https only"
        );
        assert!(f.fetch(&url("/big")).await.unwrap_err().contains("too large"));
        assert!(
            f.fetch(&url("/redirect")).await.unwrap_err().contains("307"),
            "no redirects"
        );
        assert!(f.fetch(&url("/slow")).await.is_err(), "time-out");
        assert!(f.fetch(&url("/html")).await.unwrap_err().contains("JSON"));
        // the system roots do not include the development CA
        let system = HttpsJwksFetcher::new(AllowedHosts::new(&["localhost".into()])).unwrap();
        assert!(system.fetch(&url("/jwks")).await.is_err(), "certificates are checked");

        // issue 13 item 9: by default, loopback is refused however it is named, before any
        // connection: as a name, as literals, and as a name that resolves to it
        let strict = HttpsJwksFetcher::build(Some(ca), Duration::from_secs(1), AllowedHosts::default()).unwrap();
        for u in [
            url("/jwks"),
            format!("https://127.0.0.1:{port}/jwks"),
            format!("https://[::1]:{port}/jwks"),
            format!("https://[::ffff:127.0.0.1]:{port}/jwks"),
        ] {
            let e = strict.fetch(&u).await.unwrap_err();
            assert!(e.contains("not a public address"), "{u}: {e}");
        }
        let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let hostname = hostname.trim();
        let resolves_locally = !hostname.is_empty()
            && std::net::ToSocketAddrs::to_socket_addrs(&(hostname, port))
                .map(|mut a| a.all(|a| !portcullis_core::address_policy::is_public(a.ip())))
                .unwrap_or(false);
        if resolves_locally {
            let e = strict
                .fetch(&format!("https://{hostname}:{port}/jwks"))
                .await
                .unwrap_err();
            assert!(e.contains("no public address"), "{e}");
        }
    }
}
