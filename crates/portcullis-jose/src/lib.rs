//! JWS (compact serialisation) and JWK for Portcullis, on aws-lc-rs.
//!
//! Only the algorithms FAPI 2.0 permits exist here (SP 5.4.1, AS-SP-95/96): `PS256`, `ES256` and
//! `EdDSA` (Ed25519), plus the fully-specified name `Ed25519` (RFC 9864). There is no `none`, no
//! RS256 and no MAC algorithm: such a header fails to parse. Keys are parsed once into
//! verification or signing objects and reused, so no request pays for key parsing.
#![forbid(unsafe_code)]

mod alg;
mod error;
mod jwk;
mod jws;
mod signing;

pub use alg::Algorithm;
pub use error::JoseError;
pub use jwk::{Jwks, MAX_JWKS_KEYS, PublicJwk};
pub use jws::{CompactJws, JwsHeader};
pub use signing::SigningKey;

use base64::Engine as _;

/// base64url without padding (RFC 7515 §2).
pub fn b64url(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url decoding without padding (RFC 7515 §2).
pub fn b64url_decode(s: &str) -> Result<Vec<u8>, JoseError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JoseError::Malformed("invalid base64url"))
}

/// base64url(SHA-256(input)), used for JWK thumbprints, `ath`, PKCE S256 and token hashes.
pub fn sha256_b64url(input: impl AsRef<[u8]>) -> String {
    b64url(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_ref()))
}
