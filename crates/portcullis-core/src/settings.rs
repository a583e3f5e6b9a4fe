//! The protocol's view of the configuration: a typed value, validated by the server at start.

use crate::request::{Endpoint, Listener};

/// SP 5.3.2.1-11 (AS-SP-63): an authorization code lives at most 60 s.
pub const MAX_CODE_LIFETIME: i64 = 60;
/// SP 5.3.2.2-12 (AS-SP-40): `expires_in` of a request_uri must be under 600 s.
pub const MAX_REQUEST_URI_LIFETIME: i64 = 599;
/// Issue 17 item 7: a login and consent may take at most an hour; the interaction (and its
/// cookie) is a bearer of the pushed request for that long, and pushed requests are purged an
/// hour after their expiry.
pub const MAX_INTERACTION_LIFETIME: i64 = 3600;
/// Issue 17 item 7: at most this many browsers may have a live sign-in on one request_uri (a
/// leaked or pre-fetched URL cannot fill the database); the next gets a page.
pub const MAX_LIVE_INTERACTIONS_PER_REQUEST: u32 = 5;
/// SP 5.3.2.1-13 (AS-SP-28): JWTs whose `iat`/`nbf` lie more than 60 s ahead are refused.
pub const MAX_FUTURE_SKEW: i64 = 60;
/// How old a DPoP proof may be (RFC 9449 §11.1 leaves the window to the server).
pub const DPOP_MAX_AGE: i64 = portcullis_resource::dpop::DPOP_MAX_AGE;
/// A client assertion may not be valid for longer than this (bounds the `jti` replay record).
pub const MAX_ASSERTION_LIFETIME: i64 = 3600;
/// The DPoP nonce time step; a nonce is accepted in its own step and the next (60 to 120 s).
pub const DPOP_NONCE_STEP: i64 = 60;

/// The mTLS listener's default public URL: the issuer's, on port 8444 (the default
/// `server.mtls_listen`), with the issuer's path.
pub fn default_mtls_base(issuer: &str) -> String {
    match url::Url::parse(issuer) {
        Ok(mut u) => {
            let _ = u.set_port(Some(8444));
            u.as_str().trim_end_matches('/').to_owned()
        }
        Err(_) => issuer.to_owned(),
    }
}

/// What an access token looks like (`tokens.access_token_format`, per client
/// `access_token_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessTokenFormat {
    /// 32 random bytes; resources introspect it.
    #[default]
    Opaque,
    /// RFC 9068: a JWT (`typ: at+jwt`) resources can validate themselves.
    Jwt,
}

impl AccessTokenFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "opaque" => Some(Self::Opaque),
            "jwt" => Some(Self::Jwt),
            _ => None,
        }
    }
}

pub use crate::scope::{DEMO_API_PAYMENTS_SCOPE, DEMO_API_SCOPE};

/// The default of `Settings::max_form_params`.
pub const DEFAULT_MAX_FORM_PARAMS: usize = 64;

/// Every endpoint's public URL, derived from the issuer so that `htu` checks hold behind proxies.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
    pub par: String,
    pub userinfo: String,
    pub jwks: String,
    pub registration: String,
    pub introspection: String,
    /// RFC 7009 `revocation_endpoint`.
    pub revocation: String,
    /// The demo protected API (INTERFACE.md): `GET /api/accounts`.
    pub accounts: String,
    /// The demo API's payments: `POST /api/payments`.
    pub payments: String,
    /// OpenID Connect RP-Initiated Logout 1.0 `end_session_endpoint`.
    pub end_session: String,
}

impl Endpoints {
    pub fn from_issuer(issuer: &str) -> Self {
        Self::under(issuer)
    }

    /// The endpoints under a base URL (the issuer, or the mTLS listener's public URL).
    pub fn under(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            authorization: format!("{base}/authorize"),
            token: format!("{base}/token"),
            par: format!("{base}/par"),
            userinfo: format!("{base}/userinfo"),
            jwks: format!("{base}/jwks"),
            registration: format!("{base}/register"),
            introspection: format!("{base}/introspect"),
            revocation: format!("{base}/revoke"),
            accounts: format!("{base}/api/accounts"),
            payments: format!("{base}/api/payments"),
            end_session: format!("{base}/logout"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer identifier (RFC 8414 §2): https, no query or fragment.
    pub issuer: String,
    pub endpoints: Endpoints,
    /// The same endpoints on the listener that asks for client certificates (RFC 8705 §5
    /// `mtls_endpoint_aliases`); its public base URL is configured, never taken from `Host`.
    pub mtls_endpoints: Endpoints,
    /// The CAs whose certificates `tls_client_auth` accepts (RFC 8705 §2.1); `None` when the
    /// operator has configured none, and then no `tls_client_auth` client can authenticate.
    pub client_cas: Option<std::sync::Arc<portcullis_cert::TrustedCas>>,
    pub code_lifetime: i64,
    pub request_uri_lifetime: i64,
    /// How long a login and consent may take once the authorization endpoint has accepted a
    /// request_uri (issue 17 item 7): the browser-bound interaction's lifetime, counted from
    /// that first visit; minutes, where the request_uri has seconds.
    pub interaction_lifetime: i64,
    pub access_token_lifetime: i64,
    pub refresh_token_lifetime: i64,
    pub id_token_lifetime: i64,
    pub session_lifetime: i64,
    /// RFC 9449 §8: require server-provided nonces in DPoP proofs.
    pub dpop_nonce_required: bool,
    /// The scopes offered (discovery `scopes_supported`): the defined ones, less the demo
    /// API's while it is not served. Set with [`Settings::set_scopes`].
    pub scopes_supported: Vec<String>,
    /// Every defined scope, with its consent words and the claims it releases (issue 17 item 6).
    pub scopes: Vec<crate::scope::ScopeDefinition>,
    /// The languages the pages are shown in (discovery `ui_locales_supported`).
    pub ui_locales_supported: Vec<String>,
    /// The most form parameters a request may carry; more is 400 `invalid_request` (issue 13
    /// item 1: an OAuth request needs a few dozen, and every one costs work before the client
    /// is authenticated).
    pub max_form_params: usize,
    /// At most one forced refetch of a `jwks_uri` per this many seconds (issue 13 item 3).
    pub jwks_refresh_interval: i64,
    /// How long a registration access token (RFC 7592) stays valid; a new one is issued on
    /// every update.
    pub registration_token_lifetime: i64,
    /// Whether the demo protected API (`/api/accounts`, scope `accounts`) is served.
    pub demo_api: bool,
    /// Every client must sign its demo API requests (HTTP message signatures), not only those
    /// registered with `require_signed_resource_requests`.
    pub demo_api_require_signed_requests: bool,
    /// RFC 8707: the resource identifiers this server issues access tokens for (a token's
    /// audience is the ones requested, or all of them).
    pub resources: Vec<String>,
    /// The server's access token format; a client may register its own.
    pub access_token_format: AccessTokenFormat,
    /// RFC 9101 §10.5: every client must push signed request objects.
    pub require_signed_request_object: bool,
    /// FAPI 2.0 Message Signing: every authorization response is a signed JARM response.
    pub require_jarm: bool,
    /// Hosts whose `jwks_uri` may point at non-public addresses (issue 13 item 9).
    pub jwks_uri_allowed_hosts: crate::address_policy::AllowedHosts,
}

impl Settings {
    /// Settings with the documented defaults for `issuer`.
    pub fn with_defaults(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            endpoints: Endpoints::from_issuer(issuer),
            mtls_endpoints: Endpoints::under(&default_mtls_base(issuer)),
            client_cas: None,
            code_lifetime: MAX_CODE_LIFETIME,
            request_uri_lifetime: 90,
            interaction_lifetime: 600,
            access_token_lifetime: 600,
            refresh_token_lifetime: 86_400,
            id_token_lifetime: 600,
            session_lifetime: 3600,
            dpop_nonce_required: true,
            scopes_supported: ["openid", "profile", "email", "offline_access"]
                .map(String::from)
                .to_vec(),
            scopes: crate::scope::builtin(),
            ui_locales_supported: vec!["en".into()],
            max_form_params: DEFAULT_MAX_FORM_PARAMS,
            jwks_refresh_interval: 60,
            registration_token_lifetime: 30 * 86_400,
            jwks_uri_allowed_hosts: Default::default(),
            demo_api: false,
            demo_api_require_signed_requests: false,
            resources: Vec::new(),
            access_token_format: AccessTokenFormat::Opaque,
            require_signed_request_object: false,
            require_jarm: false,
        }
    }

    /// The public URL of `endpoint` on `listener` (RFC 8705 §5).
    pub fn url(&self, listener: Listener, endpoint: Endpoint) -> &str {
        let e = match listener {
            Listener::Main => &self.endpoints,
            Listener::Mtls => &self.mtls_endpoints,
        };
        match endpoint {
            Endpoint::PushedAuthorization => &e.par,
            Endpoint::Token => &e.token,
            Endpoint::Userinfo => &e.userinfo,
            Endpoint::Introspection => &e.introspection,
            Endpoint::Revocation => &e.revocation,
            Endpoint::Accounts => &e.accounts,
            Endpoint::Payments => &e.payments,
        }
    }

    /// Serves the demo API: its scope becomes known.
    pub fn enable_demo_api(&mut self) {
        self.demo_api = true;
        let resource = self.demo_api_resource();
        if !self.resources.contains(&resource) {
            self.resources.push(resource);
        }
        self.offer_scopes();
    }

    /// The scopes this server knows (configuration `[[scopes]]`); offered at once, the demo
    /// API's `accounts` and `payments` only while it is served.
    pub fn set_scopes(&mut self, scopes: Vec<crate::scope::ScopeDefinition>) {
        self.scopes = scopes;
        self.offer_scopes();
    }

    /// Whether the granted scopes release a user claim (userinfo, id_token).
    pub fn releases_claim(&self, granted: &[String], claim: &str) -> bool {
        crate::scope::releases(&self.scopes, granted, claim)
    }

    fn offer_scopes(&mut self) {
        let demo = self.demo_api;
        self.scopes_supported = self
            .scopes
            .iter()
            .map(|d| d.name.as_str())
            .filter(|n| demo || !matches!(*n, DEMO_API_SCOPE | DEMO_API_PAYMENTS_SCOPE))
            .map(str::to_owned)
            .collect();
    }

    /// The demo API's resource identifier (RFC 8707): its base URL under the issuer.
    pub fn demo_api_resource(&self) -> String {
        format!("{}/api", self.issuer.trim_end_matches('/'))
    }

    /// Sets the mTLS listener's public base URL.
    pub fn set_mtls_base(&mut self, base: &str) {
        self.mtls_endpoints = Endpoints::under(base);
    }

    /// How long a retired signing key must stay published: until everything it signed expired.
    pub fn key_publication_grace(&self) -> i64 {
        self.id_token_lifetime.max(self.access_token_lifetime) + MAX_FUTURE_SKEW
    }
}
