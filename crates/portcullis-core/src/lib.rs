//! The FAPI 2.0 protocol: client authentication, PAR, the authorization endpoint, PKCE, DPoP,
//! grants, token issuance, userinfo, introspection and client registration.
//!
//! No HTTP framework, no SQL, no clock reads: a [`Provider`] is given a [`Store`], a [`Clock`]
//! and a [`KeyRing`], takes typed requests and returns typed outcomes or an [`OAuthError`].
#![forbid(unsafe_code)]

pub mod address_policy;
pub mod authorize;
pub mod client_auth;
pub mod clock;
#[cfg(feature = "test-support")]
pub mod contract;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod jwks_cache;
pub mod keyring;
pub mod logout;
pub mod memory;
pub mod model;
pub mod par;
pub mod provider;
pub mod random;
pub mod registration;
pub mod resource;
pub mod secrets;
pub mod settings;
pub mod store;
pub mod token;

pub use clock::Clock;
pub use error::{ErrorCode, OAuthError, OAuthResult, StoreError};
pub use keyring::KeyRing;
pub use provider::{JwksFetcher, NoFetcher, Provider};
pub use settings::Settings;
pub use store::Store;
