//! Why a client operation failed, grouped by cause. Every message says what was expected and
//! what came instead, in words an operator can act on.

use portcullis_httpsig::SigError;
use portcullis_jose::JoseError;

/// Everything a [`crate::Client`] operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The request never got an HTTP answer (connection, TLS, time-out).
    #[error("{url}: {detail}")]
    Transport { url: String, detail: String },
    /// The server's metadata is not usable (RFC 8414 §3.3).
    #[error("discovery: {0}")]
    Discovery(#[from] DiscoveryError),
    /// An endpoint answered with an OAuth error (RFC 6749 §5.2, RFC 6750 §3, RFC 9449 §7.1).
    #[error("{endpoint} answered {status} {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Server {
        endpoint: &'static str,
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// An endpoint answered something that is neither success nor an OAuth error.
    #[error("{endpoint} answered {status}: {detail}")]
    UnexpectedResponse {
        endpoint: &'static str,
        status: u16,
        detail: String,
    },
    /// The authorization response (the redirect back to the client) was refused.
    #[error("authorization response: {0}")]
    Callback(#[from] CallbackError),
    /// The id_token was refused.
    #[error("id_token: {0}")]
    IdToken(#[from] IdTokenError),
    /// A key or a JWS could not be made or read.
    #[error("JOSE: {0}")]
    Jose(#[from] JoseError),
    /// An HTTP message signature could not be made, or the server's did not verify.
    #[error("HTTP message signature: {0}")]
    HttpSignature(#[from] SigError),
    /// Driving the login or consent pages (headless user agent) failed.
    #[error("{step}: {message}")]
    Login { step: &'static str, message: String },
    /// The caller passed something unusable (a URL that does not parse, an empty scope).
    #[error("{0}")]
    Usage(String),
}

/// The server metadata (RFC 8414, OpenID Connect Discovery) cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// RFC 8414 §3.3: the `issuer` in the document must equal the issuer it was fetched for.
    #[error("the metadata names issuer {found:?}, not {expected:?} (RFC 8414 §3.3)")]
    IssuerMismatch { expected: String, found: String },
    /// A member the FAPI 2.0 flow needs is absent or not a string.
    #[error("the metadata has no {0}")]
    Missing(&'static str),
    /// An endpoint URL that is not https (FAPI 2.0 SP 5.2.2: TLS everywhere).
    #[error("{member} is not an https URL: {value}")]
    NotHttps { member: &'static str, value: String },
    /// The server does not support something the FAPI 2.0 profile requires of it.
    #[error("{0}")]
    Unsupported(String),
    /// The document is not a JSON object.
    #[error("the metadata is not a JSON object")]
    NotJson,
}

/// The authorization response was refused (RFC 6749 §4.1.2, RFC 9207).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// RFC 9207 §2.4: the server announces `iss` in responses, so a response without it is refused.
    #[error("no iss parameter, though the server announces it (RFC 9207 §2.4)")]
    MissingIssuer,
    /// RFC 9207 §2.4: a different `iss` means the response may come from another server (mix-up).
    #[error("iss is {found:?}, not the issuer {expected:?} (RFC 9207: possible mix-up attack)")]
    IssuerMismatch { expected: String, found: String },
    /// RFC 6749 §10.12: `state` ties the response to the request this client made.
    #[error("state does not match the request's (RFC 6749 §10.12: possible CSRF)")]
    StateMismatch,
    /// The server answered with an error (RFC 6749 §4.1.2.1).
    #[error("the server answered {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Error { error: String, description: Option<String> },
    /// Neither `code` nor `error`.
    #[error("no code in the response")]
    MissingCode,
    /// A parameter appears more than once (RFC 6749 §3.1).
    #[error("the parameter {0} appears more than once")]
    Repeated(String),
    /// The URL does not parse, or is not the redirect URI the request named.
    #[error("{0}")]
    Malformed(String),
}

/// The id_token was refused (OpenID Connect Core §3.1.3.7, FAPI 2.0 SP 5.4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdTokenError {
    /// Not a compact JWS with a FAPI algorithm, or its claims are not JSON.
    #[error("{0}")]
    Jws(JoseError),
    /// No key of the server's JWKS verifies the signature.
    #[error("the signature does not verify with the server's JWKS: {0}")]
    Signature(JoseError),
    /// OIDC Core §3.1.3.7 (2): `iss` must be the issuer.
    #[error("iss is {found:?}, not {expected:?}")]
    Issuer { expected: String, found: String },
    /// OIDC Core §3.1.3.7 (3)-(5): `aud` must contain the client, with `azp` for several audiences.
    #[error("aud does not name this client ({0})")]
    Audience(String),
    /// OIDC Core §3.1.3.7 (9): the token has expired.
    #[error("expired at {exp}, now is {now}")]
    Expired { exp: i64, now: i64 },
    /// OIDC Core §3.1.3.7 (10): `iat` far in the future.
    #[error("issued in the future (iat {iat}, now {now})")]
    IssuedInFuture { iat: i64, now: i64 },
    /// OIDC Core §3.1.3.7 (11): the `nonce` of the authentication request must come back.
    #[error("nonce does not match the authorization request's (OIDC Core §3.1.3.7: possible replay)")]
    Nonce,
    /// A required claim is absent or of the wrong type.
    #[error("the claim {0} is missing or not of the right type")]
    Claim(&'static str),
}
