//! Dynamic Client Registration (RFC 7591) and its management protocol (RFC 7592), with the
//! FAPI 2.0 rules applied to the metadata (AS-OPT-21..25).

use portcullis_jose::{Algorithm, Jwks};
use serde_json::{Map, Value, json};

use crate::address_policy::refused_literal;
use crate::error::{Challenge, OAuthError, OAuthResult};
use crate::model::{Client, ClientAuthMethod, ClientMetadata};
use crate::provider::Provider;
use crate::random::{credential, hash};
use crate::settings::Settings;

/// URL metadata kept as given (RFC 7591 §2); each must be an absolute https URL with a host.
const URI_FIELDS: [&str; 4] = ["client_uri", "logo_uri", "policy_uri", "tos_uri"];
/// Human-readable string metadata kept as given (RFC 7591 §2, RFC 8705 §2.1.2), with its bound.
const TEXT_FIELDS: [(&str, usize); 7] = [
    ("software_id", MAX_SOFTWARE_CHARS),
    ("software_version", MAX_SOFTWARE_CHARS),
    ("tls_client_auth_subject_dn", MAX_TLS_SUBJECT_CHARS),
    ("tls_client_auth_san_dns", MAX_TLS_SUBJECT_CHARS),
    ("tls_client_auth_san_uri", MAX_TLS_SUBJECT_CHARS),
    ("tls_client_auth_san_ip", MAX_TLS_SUBJECT_CHARS),
    ("tls_client_auth_san_email", MAX_TLS_SUBJECT_CHARS),
];

// Issue 13 item 11: bounds on registration metadata, in characters (Unicode scalar values).
// Registered metadata is stored, echoed and shown on the consent page; nothing legitimate
// comes near these.
/// The longest `client_name`.
pub const MAX_CLIENT_NAME_CHARS: usize = 200;
/// The longest URI (`redirect_uris` entries, `jwks_uri`, `client_uri`, `logo_uri`, ...).
pub const MAX_URI_CHARS: usize = 2048;
/// The most `redirect_uris`.
pub const MAX_REDIRECT_URIS: usize = 20;
/// The most `contacts`, and the longest one.
pub const MAX_CONTACTS: usize = 10;
pub const MAX_CONTACT_CHARS: usize = 256;
/// The longest `software_id` / `software_version`.
pub const MAX_SOFTWARE_CHARS: usize = 256;
/// The longest `tls_client_auth_*` subject value (a distinguished name can be long).
pub const MAX_TLS_SUBJECT_CHARS: usize = 1024;
/// The longest `scope` value.
pub const MAX_SCOPE_CHARS: usize = 1024;
/// The most entries in `grant_types` / `response_types` (only a few values are allowed anyway).
pub const MAX_TYPE_ENTRIES: usize = 8;
/// RFC 8705 §2.1.2: exactly one of these for tls_client_auth.
const TLS_SUBJECT_FIELDS: [&str; 5] = [
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
];
/// Fields the client must not send in an RFC 7592 update (§2.2).
const SERVER_FIELDS: [&str; 4] = [
    "registration_access_token",
    "registration_client_uri",
    "client_id_issued_at",
    "client_secret_expires_at",
];

/// A checked initial access token (RFC 7591 §3), not yet spent.
#[derive(Debug)]
pub struct InitialAccessToken {
    token_hash: String,
}

/// A client whose registration access token was checked (RFC 7592 §2).
#[derive(Debug)]
pub struct ManagedClient {
    client: Client,
    token_hash: String,
}

/// A registration (or RFC 7592 read/update) response.
#[derive(Debug, Clone)]
pub struct RegistrationResponse {
    pub body: Value,
}

fn bad(field: &str, why: &str) -> OAuthError {
    OAuthError::invalid_client_metadata(format!("{field}: {why}"))
}

/// A Bearer credential from the Authorization header (RFC 6750 §2.1), or 401 `invalid_token`.
fn bearer<'a>(authorization: Option<&'a str>, what: &str) -> OAuthResult<&'a str> {
    let invalid = |d: String| OAuthError::invalid_token(d).with_challenge(Challenge::Bearer { with_error: true });
    let Some(h) = authorization else {
        // RFC 6750 §3.1: no error code when the request had no credentials
        return Err(
            OAuthError::invalid_token(format!("{what} is required as a Bearer token"))
                .with_challenge(Challenge::Bearer { with_error: false }),
        );
    };
    match h.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("Bearer") && !t.trim().is_empty() => Ok(t.trim()),
        _ => Err(invalid(format!("{what} must be sent as Authorization: Bearer"))),
    }
}

/// Issue 13 item 11: characters refused in any string metadata: control characters (Unicode
/// `Cc`), the line and paragraph separators, and the Unicode bidirectional formatting characters
/// (embeddings/overrides U+202A..U+202E, isolates U+2066..U+2069, marks U+200E, U+200F,
/// U+061C) that can make a client name or contact display as something else (CVE-2021-42574).
fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{2028}' | '\u{2029}'
        )
}

/// Issue 13 item 11: a bounded string without control or bidirectional formatting characters.
fn check_text(field: &str, value: &str, max_chars: usize) -> OAuthResult<()> {
    if value.chars().nth(max_chars).is_some() {
        return Err(bad(field, &format!("must be at most {max_chars} characters")));
    }
    if value.chars().any(is_forbidden_char) {
        return Err(bad(
            field,
            "must not contain control characters or Unicode bidirectional formatting characters",
        ));
    }
    Ok(())
}

/// Issue 13 item 11: URL metadata (RFC 7591 §2 `client_uri`, `logo_uri`, `policy_uri`,
/// `tos_uri`, `jwks_uri`) must be an absolute https URL with a host and no user information, so
/// that no `javascript:`/`data:` URL or `https://bank@evil` look-alike is stored and shown.
fn check_https_uri(field: &str, value: &str) -> OAuthResult<()> {
    check_text(field, value, MAX_URI_CHARS)?;
    if value.chars().any(char::is_whitespace) {
        return Err(bad(field, "must not contain whitespace"));
    }
    match url::Url::parse(value) {
        Ok(u)
            if u.scheme() == "https"
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.username().is_empty()
                && u.password().is_none() =>
        {
            Ok(())
        }
        _ => Err(bad(
            field,
            "must be an absolute https URL with a host (and no user information)",
        )),
    }
}

/// Validates registration metadata against RFC 7591 and FAPI 2.0; refusals name the field.
///
/// Issue 13 item 11: every string is bounded (the `MAX_*` constants of this module), free of
/// control and bidirectional formatting characters, and every URL is https.
pub fn validate_metadata(input: &Value, scopes_supported: &[String]) -> OAuthResult<ClientMetadata> {
    validate(input, scopes_supported, None)
}

/// The metadata of a resource server registered by the operator (`portcullis client add
/// --resource-server URI`): a client that only authenticates, to introspect the access tokens
/// issued for its resource (RFC 7662 §2.1); no redirect URIs, no grants. The role is never
/// taken from a registration request (DCR drops the member), and the resource must be one this
/// server issues tokens for.
pub fn validate_resource_server_metadata(
    input: &Value,
    resource: &str,
    settings: &Settings,
) -> OAuthResult<ClientMetadata> {
    if !settings.resources.iter().any(|r| r == resource) {
        return Err(bad(
            RESOURCE_SERVER,
            &format!("{resource} is not one of this server's resources (tokens.resources)"),
        ));
    }
    validate(input, &settings.scopes_supported, Some(resource))
}

/// The client metadata member that marks a resource server, with its resource identifier.
pub const RESOURCE_SERVER: &str = "portcullis_resource_server";

fn validate(input: &Value, scopes_supported: &[String], resource_server: Option<&str>) -> OAuthResult<ClientMetadata> {
    let obj = input
        .as_object()
        .ok_or_else(|| OAuthError::invalid_client_metadata("the registration request must be a JSON object"))?;
    let string_list = |field: &str| -> OAuthResult<Option<Vec<String>>> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(String::from)
                        .ok_or_else(|| bad(field, "must be an array of strings"))
                })
                .collect::<OAuthResult<Vec<_>>>()
                .map(Some),
            Some(_) => Err(bad(field, "must be an array of strings")),
        }
    };
    let opt_string = |field: &str| -> OAuthResult<Option<String>> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(field, "must be a string")),
        }
    };
    let opt_text = |field: &str, max_chars: usize| -> OAuthResult<Option<String>> {
        let value = opt_string(field)?;
        if let Some(v) = &value {
            check_text(field, v, max_chars)?;
        }
        Ok(value)
    };
    let opt_https_uri = |field: &str| -> OAuthResult<Option<String>> {
        let value = opt_string(field)?;
        if let Some(v) = &value {
            check_https_uri(field, v)?;
        }
        Ok(value)
    };
    let bounded_list = |field: &str, max_entries: usize| -> OAuthResult<Option<Vec<String>>> {
        let list = string_list(field)?;
        if list.as_ref().is_some_and(|l| l.len() > max_entries) {
            return Err(bad(field, &format!("must have at most {max_entries} entries")));
        }
        Ok(list)
    };
    let opt_bool = |field: &str| -> OAuthResult<Option<bool>> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(bad(field, "must be a boolean")),
        }
    };
    let opt_alg = |field: &str| -> OAuthResult<Option<Algorithm>> {
        opt_string(field)?
            .map(|a| Algorithm::parse(&a).map_err(|_| bad(field, "must be PS256, ES256, EdDSA or Ed25519")))
            .transpose()
    };

    let (redirect_uris, response_types, grant_types) = if resource_server.is_some() {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        // RFC 7591 §2; SP 5.3.2.2-8 (AS-SP-38): https only, exact strings, no fragment
        let redirect_uris = bounded_list("redirect_uris", MAX_REDIRECT_URIS)?.unwrap_or_default();
        if redirect_uris.is_empty() {
            return Err(OAuthError::invalid_redirect_uri(
                "redirect_uris: at least one redirect URI is required",
            ));
        }
        for r in &redirect_uris {
            // Issue 13 item 11: bounded, and no control characters or whitespace (which the URL
            // parser would silently drop, so the stored string would not be the URL it parsed)
            if r.chars().nth(MAX_URI_CHARS).is_some() {
                return Err(OAuthError::invalid_redirect_uri(format!(
                    "redirect_uris: a redirect URI must be at most {MAX_URI_CHARS} characters"
                )));
            }
            if r.chars().any(|c| is_forbidden_char(c) || c.is_whitespace()) {
                return Err(OAuthError::invalid_redirect_uri(
                    "redirect_uris: a redirect URI must not contain whitespace, control or bidirectional formatting characters",
                ));
            }
            let Ok(u) = url::Url::parse(r) else {
                return Err(OAuthError::invalid_redirect_uri(format!(
                    "redirect_uris: {r} is not an absolute URI"
                )));
            };
            if u.scheme() != "https" {
                return Err(OAuthError::invalid_redirect_uri(format!(
                    "redirect_uris: {r} must use https"
                )));
            }
            if u.fragment().is_some() || r.contains('#') {
                return Err(OAuthError::invalid_redirect_uri(format!(
                    "redirect_uris: {r} must not contain a fragment"
                )));
            }
            if u.host_str().is_none_or(str::is_empty) {
                return Err(OAuthError::invalid_redirect_uri(format!(
                    "redirect_uris: {r} has no host"
                )));
            }
        }
        // SP 5.3.2.2-1: code only
        let response_types = bounded_list("response_types", MAX_TYPE_ENTRIES)?.unwrap_or_else(|| vec!["code".into()]);
        if response_types != ["code"] {
            return Err(bad("response_types", "only code is allowed"));
        }
        let grant_types =
            bounded_list("grant_types", MAX_TYPE_ENTRIES)?.unwrap_or_else(|| vec!["authorization_code".into()]);
        if let Some(g) = grant_types
            .iter()
            .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
        {
            return Err(bad(
                "grant_types",
                &format!("{g} is not allowed (authorization_code and refresh_token only)"),
            ));
        }
        if !grant_types.iter().any(|g| g == "authorization_code") {
            return Err(bad("grant_types", "must include authorization_code"));
        }
        (redirect_uris, response_types, grant_types)
    };
    // SP 5.3.2.1-6 (AS-SP-23/24): confidential clients with strong authentication only
    let method = match opt_string("token_endpoint_auth_method")?.as_deref() {
        None | Some("private_key_jwt") => ClientAuthMethod::PrivateKeyJwt,
        Some("tls_client_auth") => ClientAuthMethod::TlsClientAuth,
        Some("self_signed_tls_client_auth") => ClientAuthMethod::SelfSignedTlsClientAuth,
        Some(other) => {
            return Err(bad(
                "token_endpoint_auth_method",
                &format!("{other} is not allowed (private_key_jwt, tls_client_auth or self_signed_tls_client_auth)"),
            ));
        }
    };
    let jwks = obj.get("jwks").filter(|v| !v.is_null()).cloned();
    let jwks_uri = opt_https_uri("jwks_uri")?;
    if jwks.is_some() && jwks_uri.is_some() {
        return Err(bad("jwks", "jwks and jwks_uri must not both be present (RFC 7591 §2)"));
    }
    if let Some(j) = &jwks {
        Jwks::from_json(j).map_err(|e| bad("jwks", &e.to_string()))?;
        // RFC 8705 §2.2: a registered certificate (x5c) must be one, and carry the JWK's key
        for key in j.get("keys").and_then(Value::as_array).into_iter().flatten() {
            if key.get("x5c").is_some() {
                portcullis_cert::check_jwk_x5c(key).map_err(|e| bad("jwks", &format!("x5c: {e}")))?;
            }
        }
    }
    match method {
        ClientAuthMethod::PrivateKeyJwt | ClientAuthMethod::SelfSignedTlsClientAuth => {
            if jwks.is_none() && jwks_uri.is_none() {
                return Err(bad(
                    "jwks",
                    &format!("jwks or jwks_uri is required for {}", method.as_str()),
                ));
            }
            // RFC 8705 §2.2: the self-signed certificate is registered as a key's x5c
            if method == ClientAuthMethod::SelfSignedTlsClientAuth
                && let Some(j) = &jwks
                && !j
                    .get("keys")
                    .and_then(Value::as_array)
                    .is_some_and(|keys| keys.iter().any(|k| k.get("x5c").is_some()))
            {
                return Err(bad(
                    "jwks",
                    "self_signed_tls_client_auth needs the client's certificate as the x5c of a key",
                ));
            }
        }
        ClientAuthMethod::TlsClientAuth => {
            let n = TLS_SUBJECT_FIELDS
                .iter()
                .filter(|f| obj.get(**f).is_some_and(|v| !v.is_null()))
                .count();
            if n != 1 {
                return Err(bad(
                    "tls_client_auth_subject_dn",
                    "tls_client_auth needs exactly one tls_client_auth_* subject field",
                ));
            }
            // RFC 8705 §2.1.2: the subject must be one a certificate can carry
            for f in TLS_SUBJECT_FIELDS {
                if let Some(v) = obj.get(f).filter(|v| !v.is_null()) {
                    let text = v.as_str().ok_or_else(|| bad(f, "must be a string"))?;
                    portcullis_cert::TlsSubject::from_metadata(f, text).map_err(|e| bad(f, &e.to_string()))?;
                }
            }
        }
    }
    // SP 5.4.1 (AS-SP-95): FAPI algorithms only
    let token_endpoint_auth_signing_alg = opt_alg("token_endpoint_auth_signing_alg")?;
    let id_token_signed_response_alg = opt_alg("id_token_signed_response_alg")?.unwrap_or(Algorithm::Es256);
    // RFC 7591 §2 / OIDC Registration: request objects from this client must use this one
    let request_object_signing_alg = opt_alg("request_object_signing_alg")?;
    opt_alg("userinfo_signed_response_alg")?;
    // RFC 9701 §6: the algorithm of the client's signed introspection responses
    let introspection_signed_response_alg = opt_alg("introspection_signed_response_alg")?;
    // JARM §3: the algorithm of the client's signed authorization responses (FAPI ones only)
    let authorization_signed_response_alg = opt_alg("authorization_signed_response_alg")?;
    if opt_string("id_token_encrypted_response_alg")?.is_some() {
        return Err(bad(
            "id_token_encrypted_response_alg",
            "encrypted id_tokens are not supported",
        ));
    }
    let scope = opt_text("scope", MAX_SCOPE_CHARS)?;
    if let Some(s) = &scope
        && let Some(unknown) = s
            .split(' ')
            .filter(|x| !x.is_empty())
            .find(|x| !scopes_supported.iter().any(|k| k == x))
    {
        return Err(bad("scope", &format!("unknown scope {unknown}")));
    }
    // SP 5.3.2.1-4 (AS-SP-72): every access token is sender-constrained, and a client is
    // registered for exactly one constraint (IA-07: not both): certificate-bound (RFC 8705
    // §3.4) or DPoP-bound (RFC 9449 §5.2, the default)
    let tls_bound = opt_bool("tls_client_certificate_bound_access_tokens")?.unwrap_or(false);
    let dpop_bound = match (tls_bound, opt_bool("dpop_bound_access_tokens")?) {
        (true, Some(true)) => {
            return Err(bad(
                "dpop_bound_access_tokens",
                "a client is registered for one sender constraint: not both dpop_bound_access_tokens and \
                 tls_client_certificate_bound_access_tokens",
            ));
        }
        (true, _) => false,
        (false, Some(false)) => {
            return Err(bad(
                "dpop_bound_access_tokens",
                "access tokens are always sender-constrained: set dpop_bound_access_tokens or \
                 tls_client_certificate_bound_access_tokens to true",
            ));
        }
        (false, _) => true,
    };
    let mut extra = Map::new();
    for f in URI_FIELDS {
        if let Some(v) = opt_https_uri(f)? {
            extra.insert(f.to_owned(), Value::String(v));
        }
    }
    // OpenID Connect RP-Initiated Logout 1.0 §3.1: https URIs without a fragment, kept exactly
    // as registered
    if let Some(uris) = bounded_list("post_logout_redirect_uris", MAX_REDIRECT_URIS)? {
        for u in &uris {
            check_https_uri("post_logout_redirect_uris", u)?;
            if u.contains('#') {
                return Err(bad("post_logout_redirect_uris", "must not contain a fragment"));
            }
        }
        extra.insert("post_logout_redirect_uris".into(), json!(uris));
    }
    for (f, max_chars) in TEXT_FIELDS {
        if let Some(v) = opt_text(f, max_chars)? {
            extra.insert(f.to_owned(), Value::String(v));
        }
    }
    if let Some(contacts) = bounded_list("contacts", MAX_CONTACTS)? {
        for c in &contacts {
            check_text("contacts", c, MAX_CONTACT_CHARS)?;
        }
        extra.insert("contacts".into(), json!(contacts));
    }
    let client_name = opt_text("client_name", MAX_CLIENT_NAME_CHARS)?;
    // RFC 8707: the resources the client is restricted to (absolute URIs, no fragment); each
    // must be one of the server's when the client asks for it
    if let Some(list) = bounded_list("resources", 10)? {
        for r in &list {
            if !url::Url::parse(r).is_ok_and(|u| u.fragment().is_none()) || r.contains('#') {
                return Err(bad(
                    "resources",
                    &format!("{r} is not an absolute URI without a fragment"),
                ));
            }
        }
        extra.insert("resources".to_owned(), json!(list));
    }
    if let Some(alg) = introspection_signed_response_alg {
        extra.insert(
            "introspection_signed_response_alg".to_owned(),
            Value::String(alg.as_str().to_owned()),
        );
    }
    if let Some(alg) = request_object_signing_alg {
        extra.insert(
            "request_object_signing_alg".to_owned(),
            Value::String(alg.as_str().to_owned()),
        );
    }
    if let Some(alg) = authorization_signed_response_alg {
        extra.insert(
            "authorization_signed_response_alg".to_owned(),
            Value::String(alg.as_str().to_owned()),
        );
    }
    // RFC 9101 §10.5: the client promises to sign every authorization request
    if let Some(b) = opt_bool("require_signed_request_object")? {
        extra.insert("require_signed_request_object".to_owned(), Value::Bool(b));
    }
    // HTTP message signatures on resource requests (FAPI 2.0 HTTP Signatures): they are
    // verified with the client's registered keys
    if let Some(b) = opt_bool("require_signed_resource_requests")? {
        if b && jwks.is_none() && jwks_uri.is_none() {
            return Err(bad(
                "require_signed_resource_requests",
                "needs jwks or jwks_uri (the keys the signatures are verified with)",
            ));
        }
        extra.insert("require_signed_resource_requests".to_owned(), Value::Bool(b));
    }
    // the client's own access token format (RFC 9068 JWTs, or opaque)
    if let Some(f) = opt_string("access_token_format")? {
        if crate::settings::AccessTokenFormat::parse(&f).is_none() {
            return Err(bad("access_token_format", "must be jwt or opaque"));
        }
        extra.insert("access_token_format".to_owned(), Value::String(f));
    }
    if let Some(r) = resource_server {
        extra.insert(RESOURCE_SERVER.to_owned(), Value::String(r.to_owned()));
    }
    Ok(ClientMetadata {
        redirect_uris,
        token_endpoint_auth_method: method,
        grant_types,
        response_types,
        client_name,
        scope,
        jwks,
        jwks_uri,
        token_endpoint_auth_signing_alg,
        id_token_signed_response_alg,
        dpop_bound_access_tokens: dpop_bound,
        tls_client_certificate_bound_access_tokens: tls_bound,
        extra,
    })
}

/// RFC 7591 §3.2.2: a `tls_client_auth` client could never authenticate on a server that
/// trusts no client CA (`tls.client_ca_file`), so it is not registered there (and discovery
/// does not offer the method).
pub fn auth_method_available(metadata: &ClientMetadata, settings: &Settings) -> OAuthResult<()> {
    if metadata.token_endpoint_auth_method == ClientAuthMethod::TlsClientAuth && settings.client_cas.is_none() {
        return Err(bad(
            "token_endpoint_auth_method",
            "tls_client_auth is not available: this server trusts no client CA (tls.client_ca_file); \
             use self_signed_tls_client_auth or private_key_jwt",
        ));
    }
    // RFC 8707: a client may be restricted to some of the server's resources, never given others
    if let Some(unknown) = metadata
        .resources()
        .into_iter()
        .flatten()
        .find(|r| !settings.resources.iter().any(|k| k == r))
    {
        return Err(bad(
            "resources",
            &format!("{unknown} is not one of this server's resources"),
        ));
    }
    Ok(())
}

impl Provider {
    /// RFC 7591 §3, RFC 6750 §3.1: checks the initial access token before anything else is
    /// looked at, so that a caller without one learns nothing about validation.
    pub async fn authorize_registration(&self, authorization: Option<&str>) -> OAuthResult<InitialAccessToken> {
        let token_hash = hash(bearer(authorization, "an initial access token")?);
        if !self.store.initial_access_token_valid(&token_hash, self.now()).await? {
            return Err(invalid_initial_access_token());
        }
        Ok(InitialAccessToken { token_hash })
    }

    /// RFC 7591 §3: registers a client. A use of the initial access token is spent only when
    /// the metadata is accepted.
    pub async fn register_client(&self, iat: InitialAccessToken, body: &Value) -> OAuthResult<RegistrationResponse> {
        let metadata = validate_metadata(body, &self.settings.scopes_supported)?;
        self.check_jwks_uri_host(&metadata)?;
        auth_method_available(&metadata, &self.settings)?;
        let now = self.now();
        if !self.store.use_initial_access_token(&iat.token_hash, now).await? {
            return Err(invalid_initial_access_token());
        }
        let client = Client {
            client_id: crate::random::client_id(),
            issued_at: now,
            metadata,
        };
        let registration_token = credential();
        let expires_at = now + self.settings.registration_token_lifetime;
        self.store
            .insert_client(&client, Some((&hash(&registration_token), expires_at)))
            .await?;
        Ok(RegistrationResponse {
            body: self.registration_body(&client, Some(&registration_token)),
        })
    }

    /// RFC 7592 §2: checks the registration access token before anything else; the returned
    /// handle is what read, update and delete act on.
    pub async fn managed_registration(
        &self,
        client_id: &str,
        authorization: Option<&str>,
    ) -> OAuthResult<ManagedClient> {
        let token = bearer(authorization, "the registration access token")?;
        let token_hash = hash(token);
        // RFC 7592 §2: an unknown client, a wrong token and an expired one look the same (401)
        let client = self
            .store
            .get_client_by_registration_token(client_id, &token_hash, self.now())
            .await?
            .ok_or_else(invalid_registration_token)?;
        Ok(ManagedClient { client, token_hash })
    }

    /// RFC 7592 §2.1: read.
    pub fn read_registration(&self, managed: &ManagedClient) -> RegistrationResponse {
        RegistrationResponse {
            body: self.registration_body(&managed.client, None),
        }
    }

    /// RFC 7592 §2.2: full replacement of the metadata.
    /// Every update rotates the registration access token (RFC 7592 §3: the new one is in the
    /// response, the old one stops working), so a leaked token is not a permanent key to the
    /// client (issue 13 item 14).
    pub async fn update_registration(&self, managed: ManagedClient, body: &Value) -> OAuthResult<RegistrationResponse> {
        let client = managed.client;
        match body.get("client_id") {
            Some(Value::String(id)) if *id == client.client_id => {}
            _ => {
                return Err(OAuthError::invalid_request(
                    "client_id in the body must be this client's client_id",
                ));
            }
        }
        let current = self.registration_body(&client, None);
        for f in SERVER_FIELDS {
            if let Some(v) = body.get(f)
                && current.get(f) != Some(v)
            {
                return Err(bad(f, "must not be sent in an update (RFC 7592 §2.2)"));
            }
        }
        let metadata = validate_metadata(body, &self.settings.scopes_supported)?;
        self.check_jwks_uri_host(&metadata)?;
        auth_method_available(&metadata, &self.settings)?;
        let updated = Client { metadata, ..client };
        let new_token = credential();
        let expires_at = self.now() + self.settings.registration_token_lifetime;
        if !self
            .store
            .update_client_registration(&updated, &managed.token_hash, (&hash(&new_token), expires_at))
            .await?
        {
            return Err(invalid_registration_token());
        }
        self.forget_client(&updated.client_id);
        Ok(RegistrationResponse {
            body: self.registration_body(&updated, Some(&new_token)),
        })
    }

    /// RFC 7592 §2.3: delete; the client's tokens go with it.
    pub async fn delete_registration(&self, managed: ManagedClient) -> OAuthResult<()> {
        self.store.delete_client(&managed.client.client_id).await?;
        self.forget_client(&managed.client.client_id);
        Ok(())
    }

    /// Issue 13 item 9: a `jwks_uri` naming localhost or a non-public address literal is
    /// refused at registration (names that resolve to such addresses are refused when fetched).
    fn check_jwks_uri_host(&self, metadata: &ClientMetadata) -> OAuthResult<()> {
        let Some(uri) = &metadata.jwks_uri else {
            return Ok(());
        };
        let host = url::Url::parse(uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        if refused_literal(&host, &self.settings.jwks_uri_allowed_hosts) {
            return Err(bad(
                "jwks_uri",
                "must name a public host (loopback, private and link-local addresses are refused)",
            ));
        }
        Ok(())
    }

    /// The client information response (RFC 7591 §3.2.1, RFC 7592 §3).
    pub fn registration_body(&self, client: &Client, registration_token: Option<&str>) -> Value {
        let mut body = serde_json::to_value(&client.metadata).unwrap_or_else(|_| json!({}));
        body["client_id"] = json!(client.client_id);
        body["client_id_issued_at"] = json!(client.issued_at);
        body["registration_client_uri"] =
            json!(format!("{}/{}", self.settings.endpoints.registration, client.client_id));
        body["require_pushed_authorization_requests"] = json!(true);
        if let Some(t) = registration_token {
            body["registration_access_token"] = json!(t);
        }
        body
    }
}

fn invalid_initial_access_token() -> OAuthError {
    OAuthError::invalid_token("the initial access token is unknown, expired or used up")
        .with_challenge(Challenge::Bearer { with_error: true })
}

fn invalid_registration_token() -> OAuthError {
    OAuthError::invalid_token("the registration access token is not valid for this client")
        .with_challenge(Challenge::Bearer { with_error: true })
}

#[cfg(test)]
mod tests {
    use crate::ErrorCode;
    use portcullis_jose::{SigningKey, b64url};

    use super::*;

    fn body() -> Value {
        let key = SigningKey::generate(Algorithm::Es256).unwrap();
        json!({
            "client_name": "Example",
            "redirect_uris": ["https://client.example.org/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [key.public_jwk().to_json()]},
        })
    }

    fn scopes() -> Vec<String> {
        vec!["openid".into()]
    }

    /// The refusal for `edit`, asserted to be 400 `invalid_client_metadata` naming `field`.
    fn refused(edit: impl FnOnce(&mut Value), field: &str) -> String {
        let mut b = body();
        edit(&mut b);
        let err = validate_metadata(&b, &scopes()).expect_err("accepted");
        assert_eq!(err.status.code(), 400, "{err:?}");
        assert_eq!(err.code, ErrorCode::InvalidClientMetadata, "{err:?}");
        let description = err.description.to_string();
        assert!(description.contains(field), "{description} does not name {field}");
        description
    }

    #[test]
    fn the_base_body_is_accepted() {
        let m = validate_metadata(&body(), &scopes()).unwrap();
        assert_eq!(m.client_name.as_deref(), Some("Example"));
    }

    /// Issue 13 item 11: private or symmetric keys are refused even when marked `use: enc`.
    #[test]
    fn private_and_symmetric_keys_are_refused_whatever_their_use() {
        let enc = |mut k: Value| {
            k["use"] = json!("enc");
            k
        };
        let mut with_d = SigningKey::generate(Algorithm::Es256).unwrap().public_jwk().to_json();
        with_d["d"] = json!(b64url([7u8; 32]));
        let oct = json!({"kty": "oct", "k": b64url([1u8; 32])});
        for key in [enc(with_d.clone()), enc(oct.clone()), with_d, oct] {
            refused(|b| b["jwks"]["keys"].as_array_mut().unwrap().push(key.clone()), "jwks");
        }
    }

    /// Issue 13 item 11: a registered JWK Set holds at most MAX_JWKS_KEYS keys.
    #[test]
    fn too_many_keys_are_refused() {
        refused(
            |b| {
                let k = b["jwks"]["keys"][0].clone();
                b["jwks"]["keys"] = json!(vec![k; portcullis_jose::MAX_JWKS_KEYS + 1]);
            },
            "jwks",
        );
    }

    /// Issue 13 item 11: every URL metadata is an absolute https URL with a host.
    #[test]
    fn uri_metadata_must_be_https() {
        for field in ["client_uri", "logo_uri", "policy_uri", "tos_uri"] {
            for bad_uri in [
                "javascript:alert(1)",
                "data:text/html,<script>alert(1)</script>",
                "http://client.example.org/x",
                "/relative/logo.png",
                "https://bank.example@evil.example/logo.png",
                "https://client.example.org/\u{202E}gnp.exe",
                "https://client.example.org/a b",
            ] {
                refused(|b| b[field] = json!(bad_uri), field);
            }
            refused(
                |b| b[field] = json!(format!("https://client.example.org/{}", "a".repeat(MAX_URI_CHARS))),
                field,
            );
            let mut ok = body();
            ok[field] = json!("https://client.example.org/x.png");
            let m = validate_metadata(&ok, &scopes()).unwrap();
            assert_eq!(m.extra[field], json!("https://client.example.org/x.png"));
        }
        refused(
            |b| {
                b.as_object_mut().unwrap().remove("jwks");
                b["jwks_uri"] = json!("javascript:alert(1)");
            },
            "jwks_uri",
        );
    }

    /// Issue 13 item 11: bounded lengths and counts.
    #[test]
    fn string_metadata_is_bounded() {
        let mut ok = body();
        ok["client_name"] = json!("é".repeat(MAX_CLIENT_NAME_CHARS));
        assert!(
            validate_metadata(&ok, &scopes()).is_ok(),
            "{MAX_CLIENT_NAME_CHARS} characters is allowed"
        );
        refused(
            |b| b["client_name"] = json!("a".repeat(MAX_CLIENT_NAME_CHARS + 1)),
            "client_name",
        );
        refused(|b| b["client_name"] = json!("a".repeat(20_000)), "client_name");
        refused(
            |b| b["contacts"] = json!(vec!["ops@client.example.org"; MAX_CONTACTS + 1]),
            "contacts",
        );
        refused(
            |b| b["contacts"] = json!(["a".repeat(MAX_CONTACT_CHARS + 1)]),
            "contacts",
        );
        refused(
            |b| b["software_id"] = json!("a".repeat(MAX_SOFTWARE_CHARS + 1)),
            "software_id",
        );
        refused(
            |b| b["software_version"] = json!("1".repeat(MAX_SOFTWARE_CHARS + 1)),
            "software_version",
        );
        refused(
            |b| b["redirect_uris"] = json!(vec!["https://client.example.org/cb"; MAX_REDIRECT_URIS + 1]),
            "redirect_uris",
        );
        refused(
            |b| b["grant_types"] = json!(vec!["authorization_code"; MAX_TYPE_ENTRIES + 1]),
            "grant_types",
        );
        refused(|b| b["scope"] = json!("openid ".repeat(MAX_SCOPE_CHARS)), "scope");
        // one redirect URI too long is an invalid redirect URI
        let mut long = body();
        long["redirect_uris"] = json!([format!("https://client.example.org/{}", "a".repeat(MAX_URI_CHARS))]);
        let err = validate_metadata(&long, &scopes()).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRedirectUri, "{err:?}");
    }

    /// Issue 13 item 11: no control or bidirectional formatting characters in human-readable
    /// metadata.
    #[test]
    fn control_and_bidi_characters_are_refused() {
        for c in [
            '\u{0}', '\n', '\u{1b}', '\u{7f}', '\u{85}', '\u{200E}', '\u{200F}', '\u{061C}', '\u{202A}', '\u{202E}',
            '\u{2066}', '\u{2069}', '\u{2028}',
        ] {
            let text = format!("Example Bank{c}gnp.exe");
            refused(|b| b["client_name"] = json!(text), "client_name");
            refused(|b| b["contacts"] = json!([text]), "contacts");
            refused(|b| b["software_id"] = json!(text), "software_id");
            refused(|b| b["software_version"] = json!(text), "software_version");
            refused(
                |b| {
                    b.as_object_mut().unwrap().remove("jwks");
                    b["token_endpoint_auth_method"] = json!("tls_client_auth");
                    b["tls_client_auth_subject_dn"] = json!(text);
                },
                "tls_client_auth_subject_dn",
            );
        }
        // other scripts are fine
        let mut ok = body();
        ok["client_name"] = json!("Banque d'Exemple — 例 — مثال");
        assert!(validate_metadata(&ok, &scopes()).is_ok());
    }
}
