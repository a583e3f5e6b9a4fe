//! Configuration: a TOML file plus `PORTCULLIS_<SECTION>_<KEY>` environment overrides, validated
//! once at start into a typed value (INTERFACE.md). Every setting's default is written here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use portcullis_core::Settings;
use portcullis_core::settings::{MAX_CODE_LIFETIME, MAX_INTERACTION_LIFETIME, MAX_REQUEST_URI_LIFETIME};
use serde::{Deserialize, Serialize};

use crate::branding::BrandingConfig;
use crate::config_shape::Shape;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub tokens: TokenConfig,
    pub dpop: DpopConfig,
    pub demo_api: DemoApiConfig,
    pub log: LogConfig,
    pub clients: ClientsConfig,
    pub limits: LimitsConfig,
    pub tls: TlsConfig,
    pub audit: AuditConfig,
    pub keys: KeysConfig,
    pub branding: BrandingConfig,
    /// The scopes the server knows (issue 17 item 6), `[[scopes]]` in the file only. The
    /// default is the built-in list (`openid`, `profile`, `email`, `offline_access`, and the
    /// demo API's `accounts` and `payments`, offered only while it is served); a `[[scopes]]`
    /// list replaces it whole (`portcullis check` prints the effective list to start from).
    pub scopes: Vec<ScopeConfig>,
}

/// The server's signing keys (issue 17 item 4; `portcullis keys`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Seconds between `keys rotate` and the moment the new keys start signing: they are in
    /// the JWKS at once, so that a client caching the JWKS (the server allows 60 s) never
    /// meets an unknown `kid`. 0 switches at once (`keys rotate --now` does too). Default an
    /// hour; at most 30 days.
    pub prepublication: i64,
    /// The key-encryption key that seals the signing private keys in the database: the base64
    /// of 32 random bytes (`openssl rand -base64 32`). Prefer the environment
    /// (`PORTCULLIS_KEYS_ENCRYPTION_KEY`) or `encryption_key_file` to a configuration file.
    /// Empty (and no file): `<data_dir>/keys.key`, generated at the first start.
    pub encryption_key: String,
    /// A file holding that base64 key (a mounted secret). Not with `encryption_key`.
    pub encryption_key_file: String,
}

/// Never the key-encryption key itself, whoever prints the configuration.
impl std::fmt::Debug for KeysConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysConfig")
            .field("prepublication", &self.prepublication)
            .field(
                "encryption_key",
                &if self.encryption_key.is_empty() { "" } else { "****" },
            )
            .field("encryption_key_file", &self.encryption_key_file)
            .finish()
    }
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            prepublication: 3600,
            encryption_key: String::new(),
            encryption_key_file: String::new(),
        }
    }
}

/// One `[[scopes]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeConfig {
    /// The scope name: an RFC 6749 §3.3 scope-token (printable ASCII but space, `"` and `\`).
    pub name: String,
    /// What the user allows, completing "<application> would like to:" on the consent page.
    pub description: String,
    /// The same in other languages the pages are shown in, by language (`de = "..."`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub descriptions: BTreeMap<String, String>,
    /// The user claims (from `user add --claim`) this scope releases at userinfo and in the
    /// id_token.
    #[serde(default)]
    pub claims: Vec<String>,
}

/// The built-in scopes as configuration.
fn default_scopes() -> Vec<ScopeConfig> {
    portcullis_core::scope::builtin()
        .into_iter()
        .map(|d| ScopeConfig {
            name: d.name.as_str().to_owned(),
            description: d.description,
            descriptions: d.descriptions,
            claims: d.claims,
        })
        .collect()
}

/// The non-repudiation evidence log (issue 16 item 5; `portcullis audit`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Days a signed message is kept in the evidence log; older entries are removed by the
    /// periodic purge (the chain keeps an anchor, so the rest still verifies). 0 keeps them
    /// forever. Default 400 days (13 months).
    pub retention_days: i64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { retention_days: 400 }
    }
}

/// The server certificate (issue 17 item 3), and mutual TLS (RFC 8705): client CAs, and client
/// certificates forwarded by a TLS-terminating proxy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// A PEM file of the CAs whose certificates `tls_client_auth` accepts (RFC 8705 §2.1).
    /// Empty: no CA is trusted, and only `self_signed_tls_client_auth` clients can use a
    /// certificate.
    pub client_ca_file: String,
    /// The request header a TLS-terminating proxy puts the client certificate in: RFC 9440
    /// `Client-Cert` (a structured-field byte sequence) or a URL-encoded PEM (nginx, AWS ALB).
    /// Empty: no header is read.
    pub client_cert_header: String,
    /// The proxies (addresses or CIDRs) whose `client_cert_header` is believed; from any other
    /// peer the header is ignored (and logged). From the environment: comma-separated.
    #[serde(deserialize_with = "string_or_list")]
    pub trusted_proxies: Vec<String>,
    /// The server certificate: a PEM file with the certificate first, then its intermediates
    /// (e.g. Let's Encrypt's `fullchain.pem`). With `key_file`; when both are set no
    /// development CA is made or used.
    pub cert_file: String,
    /// The server certificate's PEM private key (PKCS#8, PKCS#1 or SEC1; e.g. `privkey.pem`).
    pub key_file: String,
    /// Seconds between checks of `cert_file` and `key_file` for new contents (a renewed
    /// certificate is then used for new connections; SIGHUP reloads at once). 0: only on
    /// SIGHUP. Default 5.
    pub reload_interval: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientsConfig {
    /// Hosts (names or addresses) whose `jwks_uri` may be fetched although they resolve to a
    /// loopback, private, link-local, unique-local or unspecified address (test setups). Empty
    /// by default: such addresses are refused (issue 13 item 9, server-side request forgery).
    /// From the environment: comma-separated.
    #[serde(deserialize_with = "string_or_list")]
    pub jwks_uri_allowed_hosts: Vec<String>,
    /// Lifetime of a registration access token (RFC 7592) in seconds; every update issues a new
    /// one (RFC 7592 §3), so an active client renews it. Default 30 days.
    pub registration_token_lifetime: i64,
    /// Every client must push its authorization requests as signed request objects (RFC 9101
    /// §10.5; FAPI 2.0 Message Signing). A client may also register
    /// `require_signed_request_object` for itself.
    pub require_signed_request_object: bool,
    /// Every authorization response is a signed JARM response: a client must ask for
    /// `response_mode=jwt` (FAPI 2.0 Message Signing).
    pub require_jarm: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The most form parameters one request may carry (more: 400 `invalid_request`).
    pub max_form_params: usize,
    /// At most one forced refetch of a client's `jwks_uri` (for an unknown `kid`) per this many
    /// seconds; unknown kids are remembered as misses until then.
    pub jwks_refresh_interval: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The issuer identifier: https, no query or fragment (RFC 8414 §2). All endpoint URLs and
    /// every DPoP `htu` check derive from it, so it must be the URL clients use.
    pub issuer: String,
    /// The main HTTPS listener.
    pub listen: SocketAddr,
    /// The listener that requests (but does not require) client certificates.
    pub mtls_listen: SocketAddr,
    /// The management listener (plain HTTP): `/health/live`, `/health/ready` and `/metrics`,
    /// never served on the public listeners. Keep it on loopback or a private network.
    pub management_listen: SocketAddr,
    /// The public base URL of that listener, published as the `mtls_endpoint_aliases` (RFC 8705
    /// §5) and used for DPoP `htu` there. Empty: the issuer's URL on port 8444.
    pub mtls_url: String,
    /// Where the database, keys and the development CA live.
    pub data_dir: PathBuf,
    /// Open connections across both listeners (issue 13 item 2). A connection over the cap is
    /// closed at once, before its TLS handshake. The server lowers it to stay below its
    /// open-file limit.
    pub max_connections: i64,
    /// Open connections from one client address (one IPv6 /64), so that one address cannot
    /// take every slot. Generous by default for proxies and test rigs.
    pub max_connections_per_ip: i64,
    /// Seconds a TLS handshake may take.
    pub handshake_timeout: i64,
    /// Seconds after the handshake within which the client must start its request: the first
    /// byte on HTTP/1.1, the whole 24-byte preface on HTTP/2.
    pub first_byte_timeout: i64,
    /// Seconds a client has to send a request's headers; also how long an idle HTTP/1.1
    /// keep-alive connection is kept.
    pub header_timeout: i64,
    /// Seconds a client has to send a request's whole body (answered with 408 after that).
    pub body_timeout: i64,
    /// Seconds a request's body may go without a single new byte while it is incomplete
    /// (answered with 408 after that), so that a trickled body cannot hold its share of the
    /// body budget for the whole `body_timeout` (issue 13 item 2, second review).
    pub body_stall_timeout: i64,
    /// Seconds a connection may stay open with no request in flight; then it is closed (on
    /// HTTP/2 with a GOAWAY). An HTTP/2 client answers the server's pings by itself, so
    /// without this an idle one would be kept forever.
    pub idle_timeout: i64,
    /// Seconds a write to the client may stay blocked (the client does not read what the
    /// server sends, say after pipelining many requests); then the connection is closed.
    pub write_timeout: i64,
    /// Seconds after which any connection is asked to close: requests in flight are finished,
    /// and the client reconnects for more.
    pub max_connection_age: i64,
    /// Bytes of request bodies the server holds at once, over all connections; a request
    /// whose body does not fit is answered 503 with `Retry-After` (issue 13 item 2 follow-up).
    pub max_buffered_body_bytes: i64,
    /// The same from one client address (one IPv6 /64).
    pub max_buffered_body_bytes_per_ip: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://PATH`; empty means `<data_dir>/portcullis.db`. (`postgres://` arrives with
    /// the PostgreSQL engine.)
    pub database_url: String,
}

/// Lifetimes in seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Authorization codes: at most 60 (SP 5.3.2.1-11).
    pub code_lifetime: i64,
    /// PAR request_uris: under 600 (SP 5.3.2.2-12).
    pub request_uri_lifetime: i64,
    /// A login and consent, from a browser's first visit of the authorization endpoint (the
    /// request_uri is consumed when it completes): 10 to 3600; minutes in practice (under a
    /// minute only for tests).
    pub interaction_lifetime: i64,
    pub access_token_lifetime: i64,
    pub refresh_token_lifetime: i64,
    pub id_token_lifetime: i64,
    /// Login sessions.
    pub session_lifetime: i64,
    /// RFC 8707: the resource identifiers (absolute URIs) access tokens may be issued for, beside
    /// the demo API's; a client asks with `resource`, and a token's audience is what it asked
    /// for, or all of them. From the environment: comma-separated.
    #[serde(deserialize_with = "string_or_list")]
    pub resources: Vec<String>,
    /// `opaque` (default) or `jwt` (RFC 9068); a client may register its own
    /// (`access_token_format`).
    pub access_token_format: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpopConfig {
    /// Require server-provided nonces in DPoP proofs (RFC 9449 §8).
    pub require_nonce: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoApiConfig {
    /// Serve the demo protected API: `GET /api/accounts` (scope `accounts`) on both listeners,
    /// published in discovery as `portcullis_demo_api`.
    pub enabled: bool,
    /// Every client must sign its demo API requests (HTTP message signatures, FAPI 2.0 HTTP
    /// Signatures); otherwise only clients registered with `require_signed_resource_requests`.
    pub require_signed_requests: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `portcullis=debug`.
    pub level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            issuer: "https://localhost:8443".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            mtls_listen: SocketAddr::from(([127, 0, 0, 1], 8444)),
            management_listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            mtls_url: String::new(),
            data_dir: PathBuf::from("./portcullis-data"),
            max_connections: 4096,
            max_connections_per_ip: 256,
            handshake_timeout: 10,
            first_byte_timeout: 10,
            header_timeout: 15,
            body_timeout: 30,
            body_stall_timeout: 5,
            idle_timeout: 60,
            write_timeout: 30,
            max_connection_age: 3600,
            max_buffered_body_bytes: 64 * 1024 * 1024,
            max_buffered_body_bytes_per_ip: 4 * 1024 * 1024,
        }
    }
}

impl Default for TokenConfig {
    /// The protocol's documented defaults (`portcullis_core::Settings::with_defaults`).
    fn default() -> Self {
        let d = Settings::with_defaults("");
        Self {
            code_lifetime: d.code_lifetime,
            request_uri_lifetime: d.request_uri_lifetime,
            interaction_lifetime: d.interaction_lifetime,
            access_token_lifetime: d.access_token_lifetime,
            refresh_token_lifetime: d.refresh_token_lifetime,
            id_token_lifetime: d.id_token_lifetime,
            session_lifetime: d.session_lifetime,
            resources: Vec::new(),
            access_token_format: "opaque".into(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            client_ca_file: String::new(),
            client_cert_header: String::new(),
            trusted_proxies: Vec::new(),
            cert_file: String::new(),
            key_file: String::new(),
            reload_interval: 5,
        }
    }
}

impl Default for ClientsConfig {
    fn default() -> Self {
        Self {
            jwks_uri_allowed_hosts: Vec::new(),
            registration_token_lifetime: 30 * 86_400,
            require_signed_request_object: false,
            require_jarm: false,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let d = Settings::with_defaults("");
        Self {
            max_form_params: d.max_form_params,
            jwks_refresh_interval: d.jwks_refresh_interval,
        }
    }
}

/// A list from TOML (`["a", "b"]`) or from the environment (`a,b`).
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Either::deserialize(d)? {
        Either::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect(),
        Either::Many(v) => v,
    })
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self { require_nonce: true }
    }
}

impl Default for DemoApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            require_signed_requests: false,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: Default::default(),
            storage: Default::default(),
            tokens: Default::default(),
            dpop: Default::default(),
            demo_api: Default::default(),
            log: Default::default(),
            clients: Default::default(),
            limits: Default::default(),
            tls: Default::default(),
            audit: Default::default(),
            keys: Default::default(),
            branding: Default::default(),
            scopes: default_scopes(),
        }
    }
}

/// The sections, longest first, so `PORTCULLIS_DEMO_API_ENABLED` finds `demo_api`.
const SECTIONS: [&str; 12] = [
    "demo_api", "branding", "storage", "clients", "server", "tokens", "limits", "audit", "keys", "dpop", "tls", "log",
];

/// Sections that are lists of tables (`[[scopes]]`): in the file only.
const LIST_SECTIONS: [&str; 1] = ["scopes"];

impl Config {
    /// Reads the file (if any), applies `PORTCULLIS_*` overrides and `--data-dir`, validates.
    pub fn load(file: Option<&Path>, data_dir: Option<&Path>) -> Result<Self, String> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, data_dir, &env)
    }

    pub fn load_from(file: Option<&Path>, data_dir: Option<&Path>, env: &[(String, String)]) -> Result<Self, String> {
        let shape = Shape::new(&Self::defaults_table()?);
        let mut table: toml::Table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let table = text
                    .parse()
                    .map_err(|e: toml::de::Error| format!("{}: {}", path.display(), one_line(e.message())))?;
                shape.check_file(&table, &path.display().to_string())?;
                table
            }
            None => toml::Table::new(),
        };
        // the variables that set something, for messages about the values they gave
        let mut from_env: Vec<(String, &str)> = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("PORTCULLIS_") else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            if let Some(list) = LIST_SECTIONS.iter().find(|s| rest.starts_with(&format!("{s}_"))) {
                return Err(format!(
                    "{name}: [[{list}]] is set in the configuration file only, not from the environment"
                ));
            }
            let Some(section) = SECTIONS.iter().find(|s| rest.starts_with(&format!("{s}_"))) else {
                continue;
            };
            let key = &rest[section.len() + 1..];
            let typed = shape.env_value(section, key, name, value)?;
            from_env.push((format!("{section}.{key}"), name.as_str()));
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(t) = entry else {
                return Err(format!("[{section}] must be a table"));
            };
            t.insert(key.to_owned(), typed);
        }
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| format!("invalid configuration: {}", one_line(e.message())))?;
        if let Some(d) = data_dir {
            config.server.data_dir = d.to_path_buf();
        }
        config.validate().map_err(|e| {
            // a message about a setting names the variable it came from
            let about = |key: &str| {
                e.strip_prefix(key)
                    .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
            };
            match from_env.iter().find(|(key, _)| about(key)) {
                Some((_, var)) => format!("{e} (from {var})"),
                None => e,
            }
        })?;
        Ok(config)
    }

    /// The default configuration as a TOML table of sections (the shape settings must have).
    fn defaults_table() -> Result<toml::Table, String> {
        toml::Table::try_from(Config::default()).map_err(|e| format!("cannot describe the default configuration: {e}"))
    }

    fn validate(&self) -> Result<(), String> {
        if !(0..=MAX_PREPUBLICATION).contains(&self.keys.prepublication) {
            return Err(format!(
                "keys.prepublication must be 0 to {MAX_PREPUBLICATION} seconds (30 days)"
            ));
        }
        if !self.keys.encryption_key.is_empty() && !self.keys.encryption_key_file.is_empty() {
            return Err("keys.encryption_key and keys.encryption_key_file are both set: choose one".into());
        }
        if !(0..=36_500).contains(&self.audit.retention_days) {
            return Err("audit.retention_days must be between 0 (keep forever) and 36500".into());
        }
        let issuer = url::Url::parse(&self.server.issuer).map_err(|e| format!("server.issuer is not a URL: {e}"))?;
        if issuer.scheme() != "https" {
            return Err("server.issuer must be an https URL (RFC 8414 §2)".into());
        }
        if issuer.query().is_some()
            || issuer.fragment().is_some()
            || self.server.issuer.contains('?')
            || self.server.issuer.contains('#')
        {
            return Err("server.issuer must not have a query or fragment (RFC 8414 §2)".into());
        }
        if self.server.issuer.ends_with('/') {
            return Err("server.issuer must not end with a slash".into());
        }
        self.validate_connection_limits()?;
        let t = &self.tokens;
        if !(1..=MAX_CODE_LIFETIME).contains(&t.code_lifetime) {
            return Err(format!(
                "tokens.code_lifetime must be 1 to {MAX_CODE_LIFETIME} seconds (FAPI 2.0 SP 5.3.2.1-11)"
            ));
        }
        if !(10..=MAX_REQUEST_URI_LIFETIME).contains(&t.request_uri_lifetime) {
            return Err("tokens.request_uri_lifetime must be 10 to 599 seconds (FAPI 2.0 SP 5.3.2.2-12)".into());
        }
        if !(10..=MAX_INTERACTION_LIFETIME).contains(&t.interaction_lifetime) {
            return Err(format!(
                "tokens.interaction_lifetime must be 10 to {MAX_INTERACTION_LIFETIME} seconds"
            ));
        }
        if !(30..=86_400).contains(&t.access_token_lifetime) {
            return Err("tokens.access_token_lifetime must be 30 to 86400 seconds".into());
        }
        if !(60..=31_536_000).contains(&t.refresh_token_lifetime) {
            return Err("tokens.refresh_token_lifetime must be 60 seconds to a year".into());
        }
        if !(30..=86_400).contains(&t.id_token_lifetime) {
            return Err("tokens.id_token_lifetime must be 30 to 86400 seconds".into());
        }
        if !(60..=604_800).contains(&t.session_lifetime) {
            return Err("tokens.session_lifetime must be 60 seconds to a week".into());
        }
        if !(8..=1000).contains(&self.limits.max_form_params) {
            return Err("limits.max_form_params must be 8 to 1000".into());
        }
        if !(1..=86_400).contains(&self.limits.jwks_refresh_interval) {
            return Err("limits.jwks_refresh_interval must be 1 to 86400 seconds".into());
        }
        if !(300..=31_536_000).contains(&self.clients.registration_token_lifetime) {
            return Err("clients.registration_token_lifetime must be 300 seconds to a year".into());
        }
        if let Some(h) = self
            .clients
            .jwks_uri_allowed_hosts
            .iter()
            .find(|h| h.is_empty() || h.contains(['/', ' ', '@']))
        {
            return Err(format!(
                "clients.jwks_uri_allowed_hosts: {h:?} is not a host name or address"
            ));
        }
        self.validate_tls()?;
        if portcullis_core::settings::AccessTokenFormat::parse(&self.tokens.access_token_format).is_none() {
            return Err(format!(
                "tokens.access_token_format must be opaque or jwt, not {:?}",
                self.tokens.access_token_format
            ));
        }
        for r in &self.tokens.resources {
            // exactly as parsed: no whitespace or control characters (the URL parser would drop
            // them), no fragment, bounded
            let ok = r.len() <= 512
                && r.bytes().all(|b| b.is_ascii_graphic())
                && !r.contains('#')
                && url::Url::parse(r).is_ok_and(|u| {
                    u.scheme() == "https" && u.as_str().trim_end_matches('/') == r.trim_end_matches('/')
                });
            if !ok {
                return Err(format!(
                    "tokens.resources: {r:?} is not an https URI without a fragment"
                ));
            }
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err("log.format must be text or json".into());
        }
        check_log_level(&self.log.level)?;
        let db = &self.storage.database_url;
        if !db.is_empty() && !db.starts_with("sqlite:") {
            return Err("storage.database_url: only sqlite: URLs are supported so far".into());
        }
        self.scope_definitions()?;
        crate::branding::validate(&self.branding)?;
        Ok(())
    }

    /// `[[scopes]]` as checked definitions (issue 17 item 6): RFC 6749 scope-tokens, unique,
    /// words for languages the pages are shown in.
    pub fn scope_definitions(&self) -> Result<Vec<portcullis_core::scope::ScopeDefinition>, String> {
        let mut list = Vec::with_capacity(self.scopes.len());
        for (i, s) in self.scopes.iter().enumerate() {
            let at = if s.name.is_empty() || s.name.len() > 60 {
                format!("scopes[{i}]")
            } else {
                format!("scopes[{i}] ({})", s.name)
            };
            let d = portcullis_core::scope::ScopeDefinition::new(&s.name, &s.description, &s.descriptions, &s.claims)
                .map_err(|e| format!("{at}: {e}"))?;
            if let Some(tag) = d.descriptions.keys().find(|t| crate::i18n::Locale::exact(t).is_none()) {
                return Err(format!(
                    "{at}: descriptions: {tag:?} is not a language the pages are shown in ({})",
                    crate::i18n::Locale::TAGS.join(", ")
                ));
            }
            list.push(d);
        }
        portcullis_core::scope::check_list(&list).map_err(|e| format!("scopes: {e}"))?;
        Ok(list)
    }

    /// The mTLS settings: a public URL like the issuer's, a header name, parsable proxies.
    fn validate_tls(&self) -> Result<(), String> {
        if !self.server.mtls_url.is_empty() {
            let u = url::Url::parse(&self.server.mtls_url).map_err(|e| format!("server.mtls_url is not a URL: {e}"))?;
            if u.scheme() != "https"
                || u.query().is_some()
                || u.fragment().is_some()
                || self.server.mtls_url.ends_with('/')
            {
                return Err("server.mtls_url must be an https URL without query, fragment or trailing slash".into());
            }
            // the same routes serve both listeners: the paths must agree (`/` is an empty path)
            let path = |p: &str| p.trim_end_matches('/').to_owned();
            let issuer_path = url::Url::parse(&self.server.issuer)
                .map(|i| path(i.path()))
                .unwrap_or_default();
            if path(u.path()) != issuer_path {
                return Err(format!(
                    "server.mtls_url must have the issuer's path ({issuer_path:?}), not {:?}",
                    u.path()
                ));
            }
        }
        if self.tls.cert_file.is_empty() != self.tls.key_file.is_empty() {
            return Err(
                "tls.cert_file and tls.key_file go together: set both (or neither, for the development CA)".into(),
            );
        }
        if !(0..=86_400).contains(&self.tls.reload_interval) {
            return Err("tls.reload_interval must be 0 (only on SIGHUP) to 86400 seconds".into());
        }
        let h = &self.tls.client_cert_header;
        if !h.is_empty() && axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return Err(format!("tls.client_cert_header: {h:?} is not a header name"));
        }
        for p in &self.tls.trusted_proxies {
            portcullis_resource::proxy::parse_proxy(p).map_err(|e| format!("tls.trusted_proxies: {e}"))?;
        }
        if !self.tls.trusted_proxies.is_empty() && h.is_empty() {
            return Err(
                "tls.trusted_proxies needs tls.client_cert_header (the header they put the certificate in)".into(),
            );
        }
        Ok(())
    }

    /// The mTLS listener's public base URL.
    pub fn mtls_url(&self) -> String {
        if self.server.mtls_url.is_empty() {
            // the issuer's URL on the mTLS listener's port
            match url::Url::parse(&self.server.issuer) {
                Ok(mut u) => {
                    let _ = u.set_port(Some(self.server.mtls_listen.port()));
                    u.as_str().trim_end_matches('/').to_owned()
                }
                Err(_) => portcullis_core::settings::default_mtls_base(&self.server.issuer),
            }
        } else {
            self.server.mtls_url.clone()
        }
    }

    /// Issue 13 item 2: every connection limit is finite and non-zero, so that no connection
    /// is held forever and one client cannot take every slot.
    fn validate_connection_limits(&self) -> Result<(), String> {
        let s = &self.server;
        if !(1..=1_000_000).contains(&s.max_connections) {
            return Err("server.max_connections must be 1 to 1000000".into());
        }
        if !(1..=1_000_000).contains(&s.max_connections_per_ip) {
            return Err("server.max_connections_per_ip must be 1 to 1000000".into());
        }
        for (name, value, max) in [
            ("handshake_timeout", s.handshake_timeout, 300),
            ("first_byte_timeout", s.first_byte_timeout, 300),
            ("header_timeout", s.header_timeout, 300),
            ("body_timeout", s.body_timeout, 600),
            ("body_stall_timeout", s.body_stall_timeout, 600),
            ("idle_timeout", s.idle_timeout, 3600),
            ("write_timeout", s.write_timeout, 600),
            ("max_connection_age", s.max_connection_age, 604_800),
        ] {
            if !(1..=max).contains(&value) {
                return Err(format!("server.{name} must be 1 to {max} seconds"));
            }
        }
        // one request body of the largest size (64 KiB) must fit in either budget
        const MIN_BODY_BUDGET: i64 = 64 * 1024;
        const MAX_BODY_BUDGET: i64 = 1 << 40;
        if !(MIN_BODY_BUDGET..=MAX_BODY_BUDGET).contains(&s.max_buffered_body_bytes) {
            return Err(format!(
                "server.max_buffered_body_bytes must be {MIN_BODY_BUDGET} to {MAX_BODY_BUDGET}"
            ));
        }
        if !(MIN_BODY_BUDGET..=s.max_buffered_body_bytes).contains(&s.max_buffered_body_bytes_per_ip) {
            return Err(format!(
                "server.max_buffered_body_bytes_per_ip must be {MIN_BODY_BUDGET} to server.max_buffered_body_bytes"
            ));
        }
        Ok(())
    }

    pub fn database_path(&self) -> PathBuf {
        self.server.data_dir.join("portcullis.db")
    }

    /// The effective configuration as TOML, secrets masked (`portcullis check`).
    pub fn to_masked_toml(&self) -> String {
        let mut c = self.clone();
        c.storage.database_url = mask_url(&c.storage.database_url);
        if !c.keys.encryption_key.is_empty() {
            c.keys.encryption_key = "****".into();
        }
        toml::to_string(&c).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

/// The longest `keys.prepublication`: 30 days.
pub const MAX_PREPUBLICATION: i64 = 30 * 86_400;

/// The levels `log.level` knows.
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// `log.level`: a level, or comma-separated `target=level` directives (`info,portcullis=debug`).
/// Anything else is refused rather than read as a target name that matches nothing (issue 17).
fn check_log_level(filter: &str) -> Result<(), String> {
    let level = |l: &str| LOG_LEVELS.iter().any(|known| known.eq_ignore_ascii_case(l.trim()));
    let target = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
    };
    for directive in filter.split(',') {
        let ok = match directive.split_once('=') {
            Some((t, l)) => target(t.trim()) && level(l),
            None => level(directive),
        };
        if !ok {
            return Err(format!(
                "log.level: unknown level {directive:?} (expected one of {}, or target=level directives \
                 separated by commas, e.g. \"info,portcullis=debug\")",
                LOG_LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

/// An error message on one line (a TOML parse error shows the offending line below its reason).
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Hides a password in `scheme://user:password@host`.
fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::load_from(None, None, &[]).unwrap();
        assert_eq!(c.server.issuer, "https://localhost:8443");
        assert!(c.dpop.require_nonce);
    }

    #[test]
    fn env_overrides_and_unrelated_variables() {
        let c = Config::load_from(
            None,
            None,
            &env(&[
                ("PORTCULLIS_SERVER_ISSUER", "https://as.example.com"),
                ("PORTCULLIS_DEMO_API_ENABLED", "false"),
                ("PORTCULLIS_TOKENS_CODE_LIFETIME", "30"),
                ("PORTCULLIS_BIN", "/x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.issuer, "https://as.example.com");
        assert!(!c.demo_api.enabled);
        assert_eq!(c.tokens.code_lifetime, 30);
    }

    /// The code lifetime limit of SP 5.3.2.1-11 is enforced at start.
    /// Issue 16 item 5: evidence retention, 400 days unless set; 0 keeps it forever.
    #[test]
    fn audit_retention() {
        assert_eq!(Config::load_from(None, None, &[]).unwrap().audit.retention_days, 400);
        let c = Config::load_from(None, None, &env(&[("PORTCULLIS_AUDIT_RETENTION_DAYS", "0")])).unwrap();
        assert_eq!(c.audit.retention_days, 0);
        assert!(c.to_masked_toml().contains("[audit]"));
        let e = Config::load_from(None, None, &env(&[("PORTCULLIS_AUDIT_RETENTION_DAYS", "-1")])).unwrap_err();
        assert!(e.contains("audit.retention_days"), "{e}");
    }

    /// Issue 17 item 4: the keys settings, their limits, and the key masked by `check`.
    #[test]
    fn keys_settings() {
        let d = Config::load_from(None, None, &[]).unwrap();
        assert_eq!(d.keys.prepublication, 3600);
        let c = Config::load_from(
            None,
            None,
            &env(&[
                ("PORTCULLIS_KEYS_PREPUBLICATION", "0"),
                ("PORTCULLIS_KEYS_ENCRYPTION_KEY", "c2VjcmV0"),
            ]),
        )
        .unwrap();
        assert_eq!(c.keys.prepublication, 0);
        let shown = c.to_masked_toml();
        assert!(
            !shown.contains("c2VjcmV0") && shown.contains("encryption_key = \"****\""),
            "{shown}"
        );
        let e = Config::load_from(None, None, &env(&[("PORTCULLIS_KEYS_PREPUBLICATION", "-1")])).unwrap_err();
        assert!(e.starts_with("keys.prepublication"), "{e}");
        let e = Config::load_from(
            None,
            None,
            &env(&[
                ("PORTCULLIS_KEYS_ENCRYPTION_KEY", "x"),
                ("PORTCULLIS_KEYS_ENCRYPTION_KEY_FILE", "/f"),
            ]),
        )
        .unwrap_err();
        assert!(e.contains("both set"), "{e}");
    }

    #[test]
    fn limits_are_enforced() {
        let e = Config::load_from(None, None, &env(&[("PORTCULLIS_TOKENS_CODE_LIFETIME", "61")])).unwrap_err();
        assert!(e.contains("code_lifetime"), "{e}");
        let e = Config::load_from(None, None, &env(&[("PORTCULLIS_TOKENS_REQUEST_URI_LIFETIME", "600")])).unwrap_err();
        assert!(e.contains("request_uri_lifetime"), "{e}");
        // issue 17 item 7: the interaction's lifetime, 600 s unless set, 10 s to an hour
        assert_eq!(
            Config::load_from(None, None, &[]).unwrap().tokens.interaction_lifetime,
            600
        );
        for bad in ["9", "3601"] {
            let e =
                Config::load_from(None, None, &env(&[("PORTCULLIS_TOKENS_INTERACTION_LIFETIME", bad)])).unwrap_err();
            assert!(
                e.contains("tokens.interaction_lifetime must be 10 to 3600 seconds"),
                "{e}"
            );
        }
        let c = Config::load_from(None, None, &env(&[("PORTCULLIS_TOKENS_INTERACTION_LIFETIME", "1800")])).unwrap();
        assert_eq!(c.tokens.interaction_lifetime, 1800);
        let e = Config::load_from(None, None, &env(&[("PORTCULLIS_SERVER_ISSUER", "http://x")])).unwrap_err();
        assert!(e.contains("https"), "{e}");
        let e = Config::load_from(None, None, &env(&[("PORTCULLIS_SERVER_NOPE", "1")])).unwrap_err();
        assert!(e.contains("nope"), "{e}");
    }

    /// Issue 13 item 2: the connection limits have finite defaults and are read from the
    /// environment.
    #[test]
    fn connection_limits_defaults_and_overrides() {
        let d = Config::load_from(None, None, &[]).unwrap().server;
        assert_eq!(
            (d.max_connections, d.max_connections_per_ip),
            (4096, 256),
            "default connection caps"
        );
        assert_eq!(
            (
                d.handshake_timeout,
                d.first_byte_timeout,
                d.header_timeout,
                d.body_timeout
            ),
            (10, 10, 15, 30),
            "default time-outs"
        );
        assert_eq!(
            (d.idle_timeout, d.write_timeout, d.max_connection_age),
            (60, 30, 3600),
            "default connection lifetimes"
        );
        assert_eq!(d.body_stall_timeout, 5, "default body stall time-out");
        assert_eq!(
            (d.max_buffered_body_bytes, d.max_buffered_body_bytes_per_ip),
            (64 << 20, 4 << 20),
            "default body budgets"
        );
        let c = Config::load_from(
            None,
            None,
            &env(&[
                ("PORTCULLIS_SERVER_MAX_CONNECTIONS", "7"),
                ("PORTCULLIS_SERVER_MAX_CONNECTIONS_PER_IP", "3"),
                ("PORTCULLIS_SERVER_HANDSHAKE_TIMEOUT", "4"),
                ("PORTCULLIS_SERVER_FIRST_BYTE_TIMEOUT", "1"),
                ("PORTCULLIS_SERVER_HEADER_TIMEOUT", "2"),
                ("PORTCULLIS_SERVER_BODY_TIMEOUT", "5"),
                ("PORTCULLIS_SERVER_BODY_STALL_TIMEOUT", "3"),
                ("PORTCULLIS_SERVER_IDLE_TIMEOUT", "6"),
                ("PORTCULLIS_SERVER_WRITE_TIMEOUT", "7"),
                ("PORTCULLIS_SERVER_MAX_CONNECTION_AGE", "8"),
                ("PORTCULLIS_SERVER_MAX_BUFFERED_BODY_BYTES", "1000000"),
                ("PORTCULLIS_SERVER_MAX_BUFFERED_BODY_BYTES_PER_IP", "100000"),
            ]),
        )
        .unwrap()
        .server;
        assert_eq!((c.max_connections, c.max_connections_per_ip), (7, 3));
        assert_eq!(
            (
                c.handshake_timeout,
                c.first_byte_timeout,
                c.header_timeout,
                c.body_timeout
            ),
            (4, 1, 2, 5)
        );
        assert_eq!((c.idle_timeout, c.write_timeout, c.max_connection_age), (6, 7, 8));
        assert_eq!(c.body_stall_timeout, 3);
        assert_eq!(
            (c.max_buffered_body_bytes, c.max_buffered_body_bytes_per_ip),
            (1_000_000, 100_000)
        );
    }

    /// Issue 13 item 2: a zero, negative or absurd limit is refused at start, naming the key.
    #[test]
    fn connection_limits_are_validated() {
        for (key, value) in [
            ("MAX_CONNECTIONS", "0"),
            ("MAX_CONNECTIONS", "1000001"),
            ("MAX_CONNECTIONS_PER_IP", "0"),
            ("HANDSHAKE_TIMEOUT", "0"),
            ("FIRST_BYTE_TIMEOUT", "0"),
            ("FIRST_BYTE_TIMEOUT", "301"),
            ("HEADER_TIMEOUT", "0"),
            ("BODY_TIMEOUT", "0"),
            ("BODY_TIMEOUT", "601"),
            ("BODY_TIMEOUT", "-1"),
            ("BODY_STALL_TIMEOUT", "0"),
            ("BODY_STALL_TIMEOUT", "601"),
            ("IDLE_TIMEOUT", "0"),
            ("IDLE_TIMEOUT", "3601"),
            ("WRITE_TIMEOUT", "0"),
            ("WRITE_TIMEOUT", "601"),
            ("MAX_CONNECTION_AGE", "0"),
            ("MAX_BUFFERED_BODY_BYTES", "0"),
            ("MAX_BUFFERED_BODY_BYTES", "65535"),
            ("MAX_BUFFERED_BODY_BYTES_PER_IP", "0"),
            ("MAX_BUFFERED_BODY_BYTES_PER_IP", "67108865"),
        ] {
            let name = format!("PORTCULLIS_SERVER_{key}");
            let e = Config::load_from(None, None, &env(&[(name.as_str(), value)]))
                .expect_err(&format!("{name}={value} was accepted"));
            assert!(e.contains(&key.to_ascii_lowercase()), "{name}={value}: {e}");
        }
        let e = Config::load_from(None, None, &env(&[("PORTCULLIS_SERVER_HEADER_TIMEOUT", "soon")]));
        assert!(e.is_err(), "a non-number time-out was accepted");
    }

    /// Issue 17: a wrong type names the key, the variable and the type expected, in one line.
    #[test]
    fn type_errors_name_the_key_and_the_variable() {
        let e = Config::load_from(None, None, &env(&[("PORTCULLIS_TOKENS_CODE_LIFETIME", "60s")])).unwrap_err();
        assert_eq!(
            e,
            "tokens.code_lifetime (from PORTCULLIS_TOKENS_CODE_LIFETIME): expected an integer, got \"60s\""
        );
        let e = Config::load_from(None, None, &env(&[("PORTCULLIS_DPOP_REQUIRE_NONCE", "yes")])).unwrap_err();
        assert!(
            e.starts_with("dpop.require_nonce (from PORTCULLIS_DPOP_REQUIRE_NONCE): expected true or false"),
            "{e}"
        );
        // a string setting takes text that looks like a number or a boolean
        let c = Config::load_from(None, None, &env(&[("PORTCULLIS_TLS_CLIENT_CERT_HEADER", "true")])).unwrap();
        assert_eq!(c.tls.client_cert_header, "true");
        // a value of the right type but out of range names its variable too
        let e = Config::load_from(None, None, &env(&[("PORTCULLIS_SERVER_MAX_CONNECTIONS", "0")])).unwrap_err();
        assert!(e.ends_with("(from PORTCULLIS_SERVER_MAX_CONNECTIONS)"), "{e}");
        let e = Config::load_from(None, None, &env(&[("PORTCULLIS_SERVER_MAX_CONNECTIONS_PER_IP", "0")])).unwrap_err();
        assert!(e.ends_with("(from PORTCULLIS_SERVER_MAX_CONNECTIONS_PER_IP)"), "{e}");
    }

    /// Issue 17: `log.level` is a level or target=level directives; anything else is refused.
    #[test]
    fn log_levels_are_checked() {
        for ok in [
            "info",
            "WARN",
            "off",
            "info,portcullis=debug",
            "portcullis_server::http=trace",
        ] {
            check_log_level(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "verbose",
            "",
            "info,",
            "portcullis=loud",
            "=info",
            "a b=info",
            "info[span]",
        ] {
            let e = check_log_level(bad).expect_err(bad);
            assert!(e.starts_with("log.level: unknown level"), "{e}");
            assert!(e.contains("off, error, warn, info, debug, trace"), "{e}");
        }
    }

    fn from_file(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, text).unwrap();
        Config::load_from(Some(&path), None, &[]).map_err(|e| e.replace(&path.display().to_string(), "p.toml"))
    }

    /// Issue 17 item 6: the built-in scopes are the default; `[[scopes]]` replaces them.
    #[test]
    fn scopes_are_configuration() {
        let d = Config::load_from(None, None, &[]).unwrap();
        let names: Vec<&str> = d.scopes.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["openid", "profile", "email", "offline_access", "accounts", "payments"]
        );
        assert_eq!(
            d.scopes[4].descriptions["de"],
            "Ihre Konten und deren Kontostände sehen"
        );
        // check prints them, and the printed configuration loads again
        let printed = d.to_masked_toml();
        assert!(printed.contains("[[scopes]]"), "{printed}");
        assert_eq!(from_file(&printed).unwrap().scopes.len(), 6);
        let c = from_file(
            "[[scopes]]\nname = \"openid\"\ndescription = \"know who you are\"\n\
             [[scopes]]\nname = \"loyalty:read\"\ndescription = \"see your points\"\nclaims = [\"loyalty_tier\"]\n\
             [scopes.descriptions]\nde = \"Ihre Punkte sehen\"\n",
        )
        .unwrap();
        let defs = c.scope_definitions().unwrap();
        assert_eq!(defs.len(), 2);
        assert_eq!(defs[1].words("de"), "Ihre Punkte sehen");
        assert_eq!(defs[1].claims, ["loyalty_tier"]);
    }

    /// Issue 17 item 6: names are RFC 6749 scope-tokens, unique; entries are checked by key.
    #[test]
    fn scope_errors_name_the_entry() {
        let one = |body: &str| from_file(&format!("[[scopes]]\n{body}\n")).unwrap_err();
        let e = one("name = \"a b\"\ndescription = \"x\"");
        assert!(
            e.starts_with("scopes[0] (a b): scope name \"a b\" has the character ' '"),
            "{e}"
        );
        let e = one("name = \"x\"\ndescription = \"\"");
        assert_eq!(e, "scopes[0] (x): scope \"x\": description is empty");
        let e = one("name = \"x\"");
        assert_eq!(e, "scopes[0] (in p.toml): description is required");
        let e = one("name = \"x\"\ndescription = \"y\"\ncolour = 1");
        assert!(e.starts_with("scopes[0].colour (in p.toml): unknown setting"), "{e}");
        let e = one("name = \"x\"\ndescription = \"y\"\nclaims = \"email\"\nclaims2 = 1");
        assert!(e.contains("unknown setting"), "{e}");
        let e = one("name = 5\ndescription = \"y\"");
        assert_eq!(e, "scopes[0].name (in p.toml): expected a string, got 5");
        let e = one("name = \"x\"\ndescription = \"y\"\nclaims = [\"sub\"]");
        assert!(e.contains("belongs to the protocol"), "{e}");
        let e = one("name = \"x\"\ndescription = \"y\"\n[scopes.descriptions]\nfr = \"z\"");
        assert!(
            e.contains("\"fr\" is not a language the pages are shown in (en, de)"),
            "{e}"
        );
        let e =
            from_file("[[scopes]]\nname = \"x\"\ndescription = \"y\"\n[[scopes]]\nname = \"x\"\ndescription = \"z\"\n")
                .unwrap_err();
        assert_eq!(e, "scopes: scope \"x\" is defined twice");
        let e = from_file("scopes = 3\n").unwrap_err();
        assert!(e.starts_with("scopes (in p.toml): expected a list of tables"), "{e}");
        let e = Config::load_from(None, None, &env(&[("PORTCULLIS_SCOPES_NAME", "x")])).unwrap_err();
        assert!(e.contains("configuration file only"), "{e}");
    }

    /// Issue 17 item 8: branding values are checked at start: hex colours with readable
    /// contrast, https footer links, plain names.
    #[test]
    fn branding_is_checked() {
        let d = Config::load_from(None, None, &[]).unwrap().branding;
        assert_eq!((d.name.as_str(), d.primary_color.as_str()), ("Portcullis", "#1d4ed8"));
        let c = Config::load_from(
            None,
            None,
            &env(&[
                ("PORTCULLIS_BRANDING_NAME", "Example Bank"),
                ("PORTCULLIS_BRANDING_PRIMARY_COLOR", "#005a32"),
            ]),
        )
        .unwrap();
        assert_eq!(c.branding.name, "Example Bank");
        for (key, value, expect) in [
            ("PRIMARY_COLOR", "red", "is not a colour"),
            ("PRIMARY_COLOR", "#fff;}body{x:y", "is not a colour"),
            ("PRIMARY_COLOR", "#ffff00", "contrast"),
            ("NAME", "", "must not be empty"),
            ("NAME", "a\u{202E}b", "bidirectional"),
        ] {
            let var = format!("PORTCULLIS_BRANDING_{key}");
            let e = Config::load_from(None, None, &env(&[(var.as_str(), value)])).unwrap_err();
            assert!(e.contains(expect) && e.contains(&var), "{var}={value}: {e}");
        }
        let e = Config::load_from(
            None,
            None,
            &env(&[
                ("PORTCULLIS_BRANDING_PRIMARY_COLOR", "#ffffff"),
                ("PORTCULLIS_BRANDING_BACKGROUND_COLOR", "#000"),
            ]),
        )
        .unwrap_err();
        assert!(e.starts_with("branding.background_color: the text colour"), "{e}");
        let e = from_file("[branding]\nfooter_links = [{ label = \"Help\", url = \"http://bank.example/help\" }]\n")
            .unwrap_err();
        assert!(e.starts_with("branding.footer_links[0].url"), "{e}");
        let ok =
            from_file("[[branding.footer_links]]\nlabel = \"Help\"\nurl = \"https://bank.example/help\"\n").unwrap();
        assert_eq!(ok.branding.footer_links.len(), 1);
        let e = Config::load_from(None, None, &env(&[("PORTCULLIS_BRANDING_FOOTER_LINKS", "x")])).unwrap_err();
        assert!(e.contains("a list of tables"), "{e}");
    }
}
