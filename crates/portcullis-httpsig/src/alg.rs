//! Which algorithm verifies a signature (RFC 9421 §3.3, profiled by FAPI SP 5.4.1).

use portcullis_jose::{Algorithm, PublicJwk};

use crate::SigError;

/// RFC 9421 §3.3.4 / §6.2.2: ECDSA P-256 SHA-256, raw r||s, the same bytes as JWS `ES256`.
pub const ALG_ECDSA_P256_SHA256: &str = "ecdsa-p256-sha256";
/// RFC 9421 §3.3.6 / §6.2.2: Ed25519, the same bytes as JWS `EdDSA` with an Ed25519 key.
pub const ALG_ED25519: &str = "ed25519";

/// Registered RFC 9421 algorithms that FAPI 2.0 does not allow (SP 5.4.1: no PKCS#1 v1.5, no
/// MACs, and we keep to the JOSE set PS256/ES256/EdDSA). Listed for the tests and the docs.
pub const REFUSED_REGISTERED: [&str; 4] = ["rsa-pss-sha512", "rsa-v1_5-sha256", "hmac-sha256", "ecdsa-p384-sha384"];

/// The algorithm to verify with, from the `alg` signature parameter and the key.
///
/// * `alg` absent: the key's JWS algorithm (RFC 9421 §3.3.7): the JWK `alg` member if present,
///   else EC P-256 → ES256, OKP Ed25519 → EdDSA, RSA → PS256.
/// * `alg` present (RFC 9421 §3.2 step 6): only `ecdsa-p256-sha256` and `ed25519`, and it must
///   fit the key's type; every other value is refused.
pub(crate) fn resolve(alg_param: Option<&str>, key: &PublicJwk) -> Result<Algorithm, SigError> {
    let from_key = key_algorithm(key)?;
    let Some(alg) = alg_param else {
        return Ok(from_key);
    };
    let wanted = match alg {
        ALG_ECDSA_P256_SHA256 => Algorithm::Es256,
        ALG_ED25519 => Algorithm::EdDsa,
        // Registered (REFUSED_REGISTERED) or unknown: refused alike.
        other => return Err(SigError::AlgorithmNotAllowed(other.to_owned())),
    };
    if !key.supports(wanted) {
        return Err(SigError::AlgorithmKeyMismatch {
            alg: alg.to_owned(),
            key: key_description(from_key),
        });
    }
    Ok(if from_key.same_family(wanted) { from_key } else { wanted })
}

/// The RFC 9421 registry name of a JWS algorithm, if it has one (PS256 has none: the registry's
/// RSA-PSS entry is SHA-512).
pub(crate) fn registry_name(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::Es256 => Some(ALG_ECDSA_P256_SHA256),
        Algorithm::EdDsa | Algorithm::Ed25519 => Some(ALG_ED25519),
        Algorithm::Ps256 => None,
    }
}

/// RFC 9421 §3.3.7: the JWS algorithm a key is for.
fn key_algorithm(key: &PublicJwk) -> Result<Algorithm, SigError> {
    if let Some(alg) = key.to_json().get("alg").and_then(|v| v.as_str())
        && let Ok(alg) = Algorithm::parse(alg)
        && key.supports(alg)
    {
        return Ok(alg);
    }
    [Algorithm::Es256, Algorithm::EdDsa, Algorithm::Ps256]
        .into_iter()
        .find(|alg| key.supports(*alg))
        .ok_or(SigError::UnusableKey)
}

fn key_description(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::Es256 => "EC P-256",
        Algorithm::EdDsa | Algorithm::Ed25519 => "Ed25519",
        Algorithm::Ps256 => "RSA",
    }
}
