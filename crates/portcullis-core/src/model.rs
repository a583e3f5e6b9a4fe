//! Domain types shared by the protocol and the store.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use portcullis_jose::Algorithm;

use crate::response::{ResponseMode, ResponseTarget};
use crate::types::{JwkThumbprint, PkceChallenge};

/// How a client authenticates (SP 5.3.2.1-6): one variant per method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    PrivateKeyJwt,
    TlsClientAuth,
    SelfSignedTlsClientAuth,
}

impl ClientAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }
}

/// Registered client metadata (RFC 7591 §2), already validated against the FAPI 2.0 rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadata {
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: ClientAuthMethod,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_alg")]
    pub token_endpoint_auth_signing_alg: Option<Algorithm>,
    #[serde(with = "alg")]
    pub id_token_signed_response_alg: Algorithm,
    pub dpop_bound_access_tokens: bool,
    pub tls_client_certificate_bound_access_tokens: bool,
    /// RFC 8705 §2.1.2 subject attributes, and any other plain string metadata kept as given
    /// (client_uri, logo_uri, contacts, tls_client_auth_*).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ClientMetadata {
    /// The one sender constraint of the client's tokens: certificate-bound when registered with
    /// `tls_client_certificate_bound_access_tokens` (RFC 8705 §3.4), DPoP-bound otherwise.
    pub fn sender_constraint(&self) -> SenderConstraintMethod {
        if self.tls_client_certificate_bound_access_tokens {
            SenderConstraintMethod::Mtls
        } else {
            SenderConstraintMethod::Dpop
        }
    }

    /// RFC 8707: the resources this client may ask tokens for, if it is restricted to some of
    /// the server's (`resources` metadata).
    pub fn resources(&self) -> Option<Vec<&str>> {
        self.extra
            .get("resources")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
    }

    /// RFC 9701 §6 `introspection_signed_response_alg`.
    pub fn introspection_signed_response_alg(&self) -> Option<Algorithm> {
        self.extra
            .get("introspection_signed_response_alg")
            .and_then(Value::as_str)
            .and_then(|a| Algorithm::parse(a).ok())
    }

    /// JARM §3 `authorization_signed_response_alg`.
    pub fn authorization_signed_response_alg(&self) -> Option<Algorithm> {
        self.extra
            .get("authorization_signed_response_alg")
            .and_then(Value::as_str)
            .and_then(|a| Algorithm::parse(a).ok())
    }

    /// OIDC Registration `request_object_signing_alg`: the one algorithm of the client's
    /// request objects, when it registered one.
    pub fn request_object_signing_alg(&self) -> Option<Algorithm> {
        self.extra
            .get("request_object_signing_alg")
            .and_then(Value::as_str)
            .and_then(|a| Algorithm::parse(a).ok())
    }

    /// RFC 9101 §10.5 `require_signed_request_object`.
    pub fn requires_signed_request_object(&self) -> bool {
        self.extra
            .get("require_signed_request_object")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Portcullis client metadata `require_signed_resource_requests`: the client signs every
    /// request to the demo API with HTTP message signatures (FAPI 2.0 HTTP Signatures), and an
    /// unsigned one is refused.
    pub fn requires_signed_resource_requests(&self) -> bool {
        self.extra
            .get("require_signed_resource_requests")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The client's own access token format (`access_token_format`), if it registered one.
    pub fn access_token_format(&self) -> Option<crate::settings::AccessTokenFormat> {
        self.extra
            .get("access_token_format")
            .and_then(Value::as_str)
            .and_then(crate::settings::AccessTokenFormat::parse)
    }

    /// The resource identifier of a resource server registered by the operator (it may
    /// introspect the access tokens issued for that resource).
    pub fn resource_server(&self) -> Option<&str> {
        self.extra
            .get(crate::registration::RESOURCE_SERVER)
            .and_then(Value::as_str)
    }

    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }
}

/// A registered client.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub client_id: String,
    pub issued_at: i64,
    pub metadata: ClientMetadata,
}

/// An end user who can log in.
#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    pub sub: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Claims for the id_token and userinfo (OIDC Core §5.1), e.g. `email`, `name`.
    pub claims: Map<String, Value>,
    /// When the user was added (Unix seconds); unknown for users added before it was recorded.
    pub created_at: Option<i64>,
}

/// An initial access token for dynamic client registration (RFC 7591 §3), stored as the hash
/// of the token only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialAccessToken {
    pub token_hash: String,
    /// Unknown for tokens created before it was recorded.
    pub created_at: Option<i64>,
    pub expires_at: i64,
    /// Registrations it still allows; `None`: any number until it expires.
    pub uses_left: Option<i64>,
}

/// What a client's access tokens are bound to (SP 5.3.2.1-4, AS-SP-72): a client is registered
/// for exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderConstraintMethod {
    /// RFC 9449: the key of a DPoP proof.
    Dpop,
    /// RFC 8705 §3: the client's TLS certificate.
    Mtls,
}

/// The sender constraint of an access token, as the token request proved it (RFC 9449 §6,
/// RFC 8705 §3): the resource crate's type, so that every resource check reads the same value.
pub use portcullis_resource::SenderConstraint;

/// The authorization request as the client pushed it (RFC 9126), after every check. Later, a
/// verified request object (JAR) turns into the same value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub code_challenge: PkceChallenge,
    /// RFC 9449 §10: the key the authorization code is bound to (`dpop_jkt` or the PAR proof).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<JwkThumbprint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt: Vec<String>,
    #[serde(default)]
    pub response_mode: ResponseMode,
    /// RFC 8707: the resources the client asked for (empty: the server's default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// OIDC Core §3.1.2.1: the user's preferred languages for the pages, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ui_locales: Vec<String>,
    /// The `x-fapi-interaction-id` of the PAR request: the authorization response is filed
    /// under it in the evidence log (the browser's requests carry none of their own).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interaction_id: String,
}

impl AuthorizationRequest {
    pub fn is_openid(&self) -> bool {
        self.scope.iter().any(|s| s == "openid")
    }

    /// Where its authorization response goes (the redirect URI was verified at PAR).
    pub fn response_target(&self) -> ResponseTarget {
        ResponseTarget {
            client_id: self.client_id.clone(),
            redirect_uri: self.redirect_uri.clone(),
            state: self.state.clone(),
            mode: self.response_mode,
            interaction_id: self.interaction_id.clone(),
        }
    }
}

/// A stored pushed authorization request.
#[derive(Debug, Clone)]
pub struct PushedRequest {
    pub request_uri_hash: String,
    pub request: AuthorizationRequest,
    pub expires_at: i64,
    pub consumed: bool,
}

/// A login and consent in progress in one browser (issue 17 item 7). The authorization
/// endpoint starts one when a browser first opens an unexpired, unconsumed request_uri (which
/// stays unconsumed: FAPI 2.0 SP 5.3.2.2 Note 3, AS-SP-44), with a copy of the pushed request;
/// it runs on its own, longer clock (`Settings::interaction_lifetime`), so that a slow login is
/// no race against the request_uri. Each browser has at most one per request_uri; the first of
/// them to complete consumes the request_uri. Not to be confused with the
/// `x-fapi-interaction-id` of a request (`AuthorizationRequest::interaction_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    /// What the pages' forms and URLs carry (a random credential); worth nothing without the
    /// browser's interaction cookie.
    pub id: String,
    /// SHA-256 of the browser's interaction cookie: only that browser continues it.
    pub browser_hash: String,
    /// The request_uri it belongs to (consumed when one of its interactions completes).
    pub request_uri_hash: String,
    pub request: AuthorizationRequest,
    /// When the request was pushed (for `prompt=login`).
    pub pushed_at: i64,
    pub expires_at: i64,
    /// The authorization response has been given: no second one (single completion).
    pub completed: bool,
}

/// What [`crate::store::Store::start_interaction`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum InteractionStart {
    /// The interaction was stored.
    Started,
    /// This browser already has an interaction on the request_uri (a concurrent first visit
    /// stored it): that one continues, nothing was stored.
    Existing(Box<Interaction>),
    /// The request_uri is unknown, consumed or expired: nothing was stored.
    Unavailable,
    /// The request_uri already has the most live (uncompleted, unexpired) interactions allowed:
    /// nothing was stored.
    TooMany,
}

/// What the user granted; access and refresh tokens hang off it so they can be revoked together
/// (SP 6.8, RFC 6749 §4.1.2 on code replay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub grant_id: String,
    pub client_id: String,
    pub sub: String,
    pub scope: Vec<String>,
    pub auth_time: i64,
    pub created_at: i64,
    /// RFC 8707: the resources the grant's access tokens may be for.
    #[serde(default)]
    pub resources: Vec<String>,
}

/// A stored authorization code (hash only).
#[derive(Debug, Clone)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub grant: Grant,
    pub redirect_uri: String,
    pub code_challenge: PkceChallenge,
    pub dpop_jkt: Option<JwkThumbprint>,
    pub nonce: Option<String>,
    pub expires_at: i64,
}

/// Result of the atomic single-use consumption of a code (AS-SP-64).
#[derive(Debug, Clone)]
pub enum CodeRedemption {
    /// This caller won: the code was unused, unexpired and issued to this client.
    Redeemed(Box<AuthorizationCode>),
    /// The code was already used: the grant it created must be revoked.
    Replayed {
        grant_id: String,
    },
    /// Exists but was issued to another client (not consumed).
    OtherClient,
    Expired,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }
}

/// A stored access or refresh token (hash only).
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub token_hash: String,
    pub kind: TokenKind,
    pub grant_id: String,
    /// Access tokens only: the key they are bound to. Refresh tokens of confidential clients are
    /// bound to the client, not to a key (RFC 9449 §5, AS-SP-85).
    pub constraint: Option<SenderConstraint>,
    pub scope: Vec<String>,
    /// Access tokens: the resources they are for (RFC 8707 `aud`); empty for refresh tokens.
    pub audience: Vec<String>,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// A logged-in browser session.
#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    pub auth_time: i64,
    pub expires_at: i64,
    /// The request (request_uri hash) this login was made for: only such a login satisfies that
    /// request's `prompt=login` (OIDC Core §3.1.2.1; seconds cannot order a login and a push).
    pub login_request: Option<String>,
}

/// A persisted server signing key.
///
/// Its life (issue 17 item 4): published in the JWKS from `created_at`; signs from
/// `activates_at` (a later time when it was pre-published by `keys rotate`, so that clients
/// caching the JWKS know its `kid` before they meet it) until `retired_at`; published until
/// `retired_at` plus the publication grace, then deleted.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub kid: String,
    pub alg: Algorithm,
    /// The PKCS#8 private key: sealed ([`crate::key_encryption`]) in the store, in the clear
    /// only in memory (and in stores written before encryption at rest, until the next start
    /// seals it).
    pub private_key: Vec<u8>,
    pub created_at: i64,
    pub activates_at: i64,
    pub retired_at: Option<i64>,
}

mod alg {
    use portcullis_jose::Algorithm;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(a: &Algorithm, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(a.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Algorithm, D::Error> {
        let s = String::deserialize(d)?;
        Algorithm::parse(&s).map_err(serde::de::Error::custom)
    }
}

mod opt_alg {
    use portcullis_jose::Algorithm;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(a: &Option<Algorithm>, s: S) -> Result<S::Ok, S::Error> {
        match a {
            Some(a) => s.serialize_str(a.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Algorithm>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| Algorithm::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
