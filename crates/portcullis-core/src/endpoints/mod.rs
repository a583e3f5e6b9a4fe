//! One module per endpoint: each takes a typed request, runs its checks and returns a typed
//! response or an [`crate::OAuthError`].

pub mod authorize;
pub mod discovery;
pub mod logout;
pub mod par;
pub mod registration;
pub mod resource;
pub mod token;
