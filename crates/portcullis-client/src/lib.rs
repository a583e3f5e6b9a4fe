//! A FAPI 2.0 client (Security Profile, with the HTTP Signatures of Message Signing) for Rust:
//! the client side of what Portcullis serves, and the start of a general client library.
//!
//! * [`ServerMetadata::discover`]: RFC 8414 metadata, with the issuer checked (§3.3).
//! * [`register`]: dynamic client registration (RFC 7591) of a `private_key_jwt`, DPoP client.
//! * [`Client`]: PAR (RFC 9126) with PKCE S256, `state` and `nonce`; `private_key_jwt` client
//!   assertions (RFC 7523, `aud` = issuer); DPoP proofs (RFC 9449) with the server's nonces
//!   remembered per server and one automatic retry on `use_dpop_nonce`; code exchange, refresh,
//!   userinfo, introspection; id_token checks with the server's JWKS; protected resource calls
//!   with HTTP message signatures (RFC 9421) made and verified.
//! * [`PendingAuthorization::callback`]: the authorization response checks (`iss` per RFC 9207,
//!   `state`, error responses).
//! * [`HeadlessBrowser`]: a scripted user agent for Portcullis' own login and consent pages.
//!
//! Every network exchange goes through a [`Transport`] ([`ReqwestTransport`]: rustls, https
//! only, no redirects, a chosen CA). Nothing here prints; failures are [`ClientError`]s.
#![forbid(unsafe_code)]

mod authorization;
mod client;
mod discovery;
mod dpop;
mod error;
mod login;
mod random;
mod registration;
mod tokens;
mod transport;

pub use authorization::{AuthorizationCode, AuthorizationParams, PendingAuthorization};
pub use client::{
    ASSERTION_TYPE, Client, Clock, Exchanged, ResourceRequest, ResourceResponse, resource_error, system_now,
};
pub use discovery::{DemoApi, ServerMetadata};
pub use dpop::{DpopExchange, DpopKey, DpopNonces};
pub use error::{CallbackError, ClientError, DiscoveryError, IdTokenError};
pub use login::{HeadlessBrowser, HeadlessOutcome};
pub use registration::{Registration, RegistrationRequest, register};
pub use tokens::{CLOCK_SKEW, IdToken, IdTokenExpectations, TokenResponse, validate_id_token};
pub use transport::{HttpRequest, HttpResponse, MAX_RESPONSE_BYTES, ReqwestTransport, TlsTrust, Transport};

/// The `http` crate whose types requests and responses use.
pub use portcullis_httpsig::http;
/// The JOSE types a caller needs: keys and algorithms.
pub use portcullis_jose::{Algorithm, SigningKey};
