//! The FAPI 2.0 protocol: client authentication, PAR, the authorization endpoint, PKCE, DPoP,
//! grants, token issuance, userinfo, introspection and client registration.
//!
//! No HTTP framework, no SQL, no clock reads: a [`Provider`] is given a [`Store`], a [`Clock`]
//! and a [`KeyRing`], takes typed requests and returns typed outcomes or an [`OAuthError`].
#![forbid(unsafe_code)]

pub mod address_policy;
pub mod audit;
pub mod checks;
pub mod client_auth;
pub mod clock;
#[cfg(feature = "test-support")]
pub mod contract;
pub mod dpop;
pub mod endpoints;
pub mod error;
pub mod jwks_cache;
pub mod key_encryption;
pub mod keyring;
pub mod memory;
pub mod model;
pub mod provider;
pub mod random;
pub mod request;
pub mod response;
pub mod scope;
pub mod secrets;
pub mod settings;
pub mod store;
mod sync;
pub mod types;

pub use endpoints::{authorize, discovery, logout, par, registration, resource, revocation, token};

pub use clock::Clock;
pub use error::{Challenge, ErrorCode, OAuthError, OAuthResult, Status, StoreError};
pub use jwks_cache::{JwksFetcher, NoFetcher};
pub use keyring::KeyRing;
pub use provider::Provider;
pub use settings::Settings;
pub use store::Store;
