//! The FAPI 2.0 rules for authorization parameters (SP 5.3.2.2, AS-SP-32..59), as functions of
//! the parameters whatever carried them: form fields at PAR, or the claims of a verified request
//! object (JAR, RFC 9101).

use crate::error::{ErrorCode, OAuthError, OAuthResult, Status};
use crate::model::ClientMetadata;
use crate::request::Params;
use crate::response::ResponseMode;
use crate::settings::Settings;
use crate::types::{JwkThumbprint, PkceChallenge, is_pkce_value};

/// Bounds on values we keep (SP 5.3.2.2 Note 4: state may be long; IA 2.7).
pub const MAX_STATE_LEN: usize = 4096;
pub const MAX_NONCE_LEN: usize = 512;

/// Authorization parameters by name, whatever their source.
pub trait AuthorizationParameters: Sync {
    /// A parameter's value; an empty value counts as absent (RFC 6749 §3.1).
    fn get(&self, name: &str) -> Option<&str>;
    /// Whether the parameter was sent at all.
    fn has(&self, name: &str) -> bool;
    /// Every value of a parameter that may repeat (RFC 8707 `resource`).
    fn get_all(&self, name: &str) -> Vec<&str>;
}

impl AuthorizationParameters for Params<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        Params::get(self, name)
    }
    fn has(&self, name: &str) -> bool {
        Params::has(self, name)
    }
    fn get_all(&self, name: &str) -> Vec<&str> {
        Params::get_all(self, name)
    }
}

/// SP 5.3.2.2-1 (AS-SP-48): the code flow only.
pub fn response_type(p: &dyn AuthorizationParameters) -> OAuthResult<()> {
    match p.get("response_type") {
        Some("code") => Ok(()),
        Some(other) => Err(OAuthError::new(
            ErrorCode::UnsupportedResponseType,
            Status::BadRequest,
            format!("response_type {other} is not supported: only code"),
        )),
        None => Err(OAuthError::invalid_request(
            "the response_type parameter is required (code)",
        )),
    }
}

/// OAuth 2.0 Multiple Response Type Encoding Practices §2.1: a mode this server renders.
pub fn response_mode(p: &dyn AuthorizationParameters) -> OAuthResult<ResponseMode> {
    match p.get("response_mode") {
        None => Ok(ResponseMode::default()),
        Some(v) => ResponseMode::from_name(v).ok_or_else(|| {
            OAuthError::invalid_request(format!(
                "response_mode {v} is not supported: only {}",
                ResponseMode::supported_names().join(", ")
            ))
        }),
    }
}

/// SP 5.3.2.2-6 (AS-SP-36/37): `redirect_uri` is required and exactly a registered one (RFC
/// 9126 §2.4 lets the server refuse unregistered ones).
pub fn redirect_uri(p: &dyn AuthorizationParameters, client: &ClientMetadata) -> OAuthResult<String> {
    let uri = p
        .get("redirect_uri")
        .ok_or_else(|| OAuthError::invalid_request("the redirect_uri parameter is required"))?;
    if !client.redirect_uris.iter().any(|r| r == uri) {
        return Err(OAuthError::invalid_request(
            "redirect_uri is not one of the client's registered redirect URIs",
        ));
    }
    Ok(uri.to_owned())
}

/// SP 5.3.2.2-5 (AS-SP-59), RFC 7636 §4.3: PKCE with S256 only (an absent method would mean
/// plain) and a well-formed challenge.
pub fn pkce(p: &dyn AuthorizationParameters) -> OAuthResult<PkceChallenge> {
    let challenge = p.get("code_challenge").ok_or_else(|| {
        OAuthError::invalid_request("PKCE is required: send code_challenge with code_challenge_method=S256")
    })?;
    match p.get("code_challenge_method") {
        Some("S256") => {}
        Some(m) => {
            return Err(OAuthError::invalid_request(format!(
                "code_challenge_method {m} is not allowed: use S256"
            )));
        }
        None => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method S256 is required (an absent method means plain, which is not allowed)",
            ));
        }
    }
    PkceChallenge::parse(challenge).ok_or_else(|| {
        OAuthError::invalid_request("code_challenge must be the 43-character base64url SHA-256 of the verifier")
    })
}

/// RFC 6749 §3.3: an unordered set of scopes the server knows and the client is registered for.
pub fn scope(
    p: &dyn AuthorizationParameters,
    settings: &Settings,
    client: &ClientMetadata,
) -> OAuthResult<Vec<String>> {
    let mut scope: Vec<String> = Vec::new();
    for s in p.get("scope").unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        if !settings.scopes_supported.iter().any(|k| k == s) {
            return Err(OAuthError::invalid_scope(format!("unknown scope {s}")));
        }
        if let Some(allowed) = &client.scope
            && !allowed.split(' ').any(|a| a == s)
        {
            return Err(OAuthError::invalid_scope(format!(
                "the client is not registered for scope {s}"
            )));
        }
        if !scope.iter().any(|x| x == s) {
            scope.push(s.to_owned());
        }
    }
    Ok(scope)
}

/// OIDC Core §3.1.2.1 `ui_locales`: space-separated BCP 47 tags in order of preference. A
/// preference, never a reason to refuse: malformed tags are dropped, at most 10 kept.
pub fn ui_locales(p: &dyn AuthorizationParameters) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for tag in p.get("ui_locales").unwrap_or("").split(' ') {
        if kept.len() == 10 {
            break;
        }
        if crate::scope::is_language_tag(tag) && !kept.iter().any(|k| k.eq_ignore_ascii_case(tag)) {
            kept.push(tag.to_owned());
        }
    }
    kept
}

/// SP 5.3.2.2 Note 4 (AS-SP-56/57): `state` and `nonce` are kept byte-exact, within bounds.
pub fn state_and_nonce(p: &dyn AuthorizationParameters) -> OAuthResult<(Option<String>, Option<String>)> {
    let state = p.get("state");
    if state.is_some_and(|s| s.len() > MAX_STATE_LEN) {
        return Err(OAuthError::invalid_request(
            "state is too long (at most 4096 characters)",
        ));
    }
    let nonce = p.get("nonce");
    if nonce.is_some_and(|n| n.len() > MAX_NONCE_LEN) {
        return Err(OAuthError::invalid_request(
            "nonce is too long (at most 512 characters)",
        ));
    }
    Ok((state.map(str::to_owned), nonce.map(str::to_owned)))
}

/// OIDC Core §3.1.2.1: `max_age` is a non-negative integer; `prompt` values are ones this server
/// implements.
pub fn max_age_and_prompt(p: &dyn AuthorizationParameters) -> OAuthResult<(Option<i64>, Vec<String>)> {
    let max_age = match p.get("max_age") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| OAuthError::invalid_request("max_age must be a non-negative integer"))?,
        ),
    };
    let prompt: Vec<String> = p
        .get("prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    if let Some(v) = prompt
        .iter()
        .find(|p| !matches!(p.as_str(), "none" | "login" | "consent"))
    {
        return Err(OAuthError::invalid_request(format!(
            "prompt value {v} is not supported"
        )));
    }
    Ok((max_age, prompt))
}

/// RFC 9396 is not implemented yet: `authorization_details` is refused rather than ignored.
pub fn no_authorization_details(p: &dyn AuthorizationParameters) -> OAuthResult<()> {
    if p.has("authorization_details") {
        return Err(OAuthError::invalid_request(
            "authorization_details is not supported yet",
        ));
    }
    Ok(())
}

/// RFC 9449 §10 (AS-SP-46): `dpop_jkt`, when sent, is a JWK SHA-256 thumbprint.
pub fn dpop_jkt(p: &dyn AuthorizationParameters) -> OAuthResult<Option<JwkThumbprint>> {
    match p.get("dpop_jkt") {
        None => Ok(None),
        Some(j) if is_pkce_value(j) => JwkThumbprint::parse(j)
            .map(Some)
            .ok_or_else(|| OAuthError::invalid_request("dpop_jkt must be a base64url SHA-256 JWK thumbprint")),
        Some(_) => Err(OAuthError::invalid_request(
            "dpop_jkt must be a base64url SHA-256 JWK thumbprint",
        )),
    }
}

/// The most resources one request may name.
pub const MAX_RESOURCES: usize = 10;

/// RFC 8707 §2: every `resource` is an absolute URI without a fragment, and one this server
/// issues tokens for (and, when the client is restricted to some, one of the client's); else
/// 400 `invalid_target`. None means the default.
pub fn resources(values: &[&str], settings: &Settings, client: &ClientMetadata) -> OAuthResult<Vec<String>> {
    if values.len() > MAX_RESOURCES {
        return Err(OAuthError::invalid_target(format!(
            "at most {MAX_RESOURCES} resource parameters may be sent"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for v in values {
        let absolute = url::Url::parse(v).is_ok_and(|u| u.fragment().is_none() && !v.contains('#'));
        if !absolute {
            return Err(OAuthError::invalid_target(format!(
                "resource {v} is not an absolute URI without a fragment"
            )));
        }
        if !settings.resources.iter().any(|r| r == v) {
            return Err(OAuthError::invalid_target(format!(
                "resource {v} is not one this server issues tokens for"
            )));
        }
        if client.resources().is_some_and(|mine| !mine.contains(v)) {
            return Err(OAuthError::invalid_target(format!(
                "the client is not registered for resource {v}"
            )));
        }
        if !out.iter().any(|o| o == v) {
            out.push((*v).to_owned());
        }
    }
    Ok(out)
}
