//! Certificates registered in a client's JWK Set (`x5c`), for `self_signed_tls_client_auth`.

use base64::Engine as _;
use serde_json::Value;

use crate::cert::{KeyParams, MAX_CERT_LEN, MAX_CHAIN_LEN, parse_der};
use crate::{CertError, ClientCertificate};

/// RFC 8705 §2.2: `self_signed_tls_client_auth`. The presented certificate matches when it is,
/// byte for byte, the first `x5c` certificate of a key in the client's JWK Set (`jwks` is the
/// `{"keys": [...]}` JSON), and that JWK's own key parameters are the certificate's public key.
/// No chain is validated and no validity period is checked; at most
/// [`portcullis_jose::MAX_JWKS_KEYS`] keys are looked at.
pub fn matches_registered(cert: &ClientCertificate, jwks: &Value) -> bool {
    if *cert.key() == KeyParams::Other {
        return false;
    }
    let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
        return false;
    };
    keys.iter().take(portcullis_jose::MAX_JWKS_KEYS).any(|jwk| {
        // an encryption key's certificate does not authenticate the client (RFC 7517 §4.2)
        if jwk.get("use").and_then(Value::as_str) == Some("enc") {
            return false;
        }
        let first = jwk
            .get("x5c")
            .and_then(Value::as_array)
            .and_then(|x5c| x5c.first())
            .and_then(Value::as_str);
        match first.map(decode_x5c_entry) {
            Some(Ok(der)) => der == cert.der() && jwk_key(jwk).is_ok_and(|key| key == *cert.key()),
            _ => false,
        }
    })
}

/// RFC 7517 §4.7, checked when a JWK Set is registered: every `x5c` entry is standard base64
/// (not base64url) of a DER X.509 certificate, and the first certificate's public key is the
/// key the JWK's own members state (RSA `n`/`e`; EC P-256 `x`/`y`; OKP Ed25519 `x`). A JWK
/// without `x5c` passes. The error message suits `invalid_client_metadata`.
pub fn check_jwk_x5c(jwk: &Value) -> Result<(), CertError> {
    let Some(x5c) = jwk.get("x5c") else {
        return Ok(());
    };
    let entries = x5c
        .as_array()
        .ok_or(CertError::InvalidX5c("x5c must be an array of strings"))?;
    if entries.is_empty() {
        return Err(CertError::InvalidX5c("x5c must not be empty"));
    }
    if entries.len() > MAX_CHAIN_LEN {
        return Err(CertError::InvalidX5c("x5c holds too many certificates"));
    }
    let mut first = None;
    for entry in entries {
        let text = entry
            .as_str()
            .ok_or(CertError::InvalidX5c("x5c must be an array of strings"))?;
        let der = decode_x5c_entry(text)?;
        let cert = parse_der(&der).map_err(|_| CertError::InvalidX5c("an x5c entry is not a DER X.509 certificate"))?;
        if first.is_none() {
            first = Some(KeyParams::of(&cert));
        }
    }
    let key = jwk_key(jwk).map_err(CertError::InvalidX5c)?;
    if first != Some(key) {
        return Err(CertError::InvalidX5c(
            "the first x5c certificate's public key is not the JWK's key",
        ));
    }
    Ok(())
}

/// RFC 7517 §4.7: each x5c entry is base64 (RFC 4648 §4, with padding) DER.
fn decode_x5c_entry(text: &str) -> Result<Vec<u8>, CertError> {
    if text.len() > MAX_CERT_LEN.div_ceil(3) * 4 {
        return Err(CertError::InvalidX5c("an x5c certificate is too large"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| CertError::InvalidX5c("an x5c entry is not standard base64"))
}

/// The key a JWK's own members state (RFC 7518 §6), in the form [`KeyParams`] holds.
fn jwk_key(jwk: &Value) -> Result<KeyParams, &'static str> {
    let member = |name: &str| -> Result<Vec<u8>, &'static str> {
        let text = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or("the JWK lacks a key member")?;
        portcullis_jose::b64url_decode(text).map_err(|_| "a JWK key member is not base64url")
    };
    let crv = jwk.get("crv").and_then(Value::as_str);
    match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => Ok(KeyParams::Rsa {
            n: strip_leading_zeros(member("n")?),
            e: strip_leading_zeros(member("e")?),
        }),
        Some("EC") if crv == Some("P-256") => Ok(KeyParams::P256 {
            x: member("x")?,
            y: member("y")?,
        }),
        Some("OKP") if crv == Some("Ed25519") => Ok(KeyParams::Ed25519 { x: member("x")? }),
        _ => Err("the JWK's key type is not RSA, EC P-256 or OKP Ed25519"),
    }
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.drain(..start);
    bytes
}
