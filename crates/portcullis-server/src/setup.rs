//! What every command starts from: the store opened with the data dir's permissions kept
//! private, and the protocol settings derived from the configuration.

use std::sync::Arc;

use portcullis_core::Settings;
use portcullis_core::address_policy::AllowedHosts;
use portcullis_store::SqliteStore;

use crate::config::Config;
use crate::datadir::{self, StartError};

/// Opens the store for `serve` and every command: the data dir is created 0700 and the
/// database 0600, and loose permissions on existing ones are tightened (issue 13 item 10); a
/// database another process holds locked is waited for, up to 30 s (issue 13 item 17).
pub async fn open_store(config: &Config) -> Result<Arc<SqliteStore>, StartError> {
    datadir::private_dir(&config.server.data_dir, "data dir")?;
    let file = if config.storage.database_url.is_empty() {
        Some(config.database_path())
    } else {
        portcullis_store::sqlite_url_file(&config.storage.database_url)
    };
    if let Some(f) = &file {
        datadir::prepare_database(f)?;
    }
    let store = if config.storage.database_url.is_empty() {
        SqliteStore::open(&config.database_path()).await
    } else {
        SqliteStore::open_url(&config.storage.database_url).await
    };
    let name = file.as_ref().map_or_else(
        || "the database".to_owned(),
        |f| format!("the database {}", f.display()),
    );
    let store = store.map_err(|e| {
        let hint = if e.0.contains("locked") {
            "stop the other portcullis process or use another --data-dir"
        } else if e.0.contains("schema version") {
            "run the newer portcullis that wrote it, or use another --data-dir"
        } else {
            "check server.data_dir / storage.database_url and the file's permissions"
        };
        StartError::Runtime(format!("cannot open {name}: {e}; {hint}"))
    })?;
    // the -wal and -shm files now exist: SQLite gives them the database file's mode
    if let Some(f) = &file {
        datadir::check_database(f)?;
    }
    Ok(Arc::new(store))
}

pub fn settings(config: &Config) -> Result<Settings, String> {
    let mut s = Settings::with_defaults(&config.server.issuer);
    s.set_mtls_base(&config.mtls_url());
    if !config.tls.client_ca_file.is_empty() {
        let path = &config.tls.client_ca_file;
        let pem = std::fs::read(path).map_err(|e| format!("tls.client_ca_file {path}: {e}"))?;
        let cas = portcullis_cert::TrustedCas::from_pem(&pem).map_err(|e| format!("tls.client_ca_file {path}: {e}"))?;
        s.client_cas = Some(Arc::new(cas));
    }
    let t = &config.tokens;
    s.code_lifetime = t.code_lifetime;
    s.request_uri_lifetime = t.request_uri_lifetime;
    s.interaction_lifetime = t.interaction_lifetime;
    s.access_token_lifetime = t.access_token_lifetime;
    s.refresh_token_lifetime = t.refresh_token_lifetime;
    s.id_token_lifetime = t.id_token_lifetime;
    s.session_lifetime = t.session_lifetime;
    s.dpop_nonce_required = config.dpop.require_nonce;
    s.max_form_params = config.limits.max_form_params;
    s.jwks_refresh_interval = config.limits.jwks_refresh_interval;
    s.registration_token_lifetime = config.clients.registration_token_lifetime;
    s.jwks_uri_allowed_hosts = AllowedHosts::new(&config.clients.jwks_uri_allowed_hosts);
    s.resources = config.tokens.resources.clone();
    s.require_signed_request_object = config.clients.require_signed_request_object;
    s.require_jarm = config.clients.require_jarm;
    s.access_token_format =
        portcullis_core::settings::AccessTokenFormat::parse(&config.tokens.access_token_format).unwrap_or_default();
    s.demo_api_require_signed_requests = config.demo_api.require_signed_requests;
    s.set_scopes(config.scope_definitions()?);
    s.ui_locales_supported = crate::i18n::Locale::TAGS.map(String::from).to_vec();
    if config.demo_api.enabled {
        s.enable_demo_api();
    }
    Ok(s)
}
