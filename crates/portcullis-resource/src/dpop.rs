//! DPoP proof checks (RFC 9449 §4.3), one function for the authorization server's endpoints
//! (PAR, token) and for protected resources (§7: with `ath`). Server nonces (§8) come from a
//! [`NonceSource`] the caller provides.

use std::borrow::Cow;

use portcullis_jose::{CompactJws, PublicJwk, sha256_b64url};
use serde::Deserialize;
use serde_json::Value;

use crate::binding::JwkThumbprint;
use crate::secure_eq;

/// How old a DPoP proof may be (RFC 9449 §11.1 leaves the window to the server).
pub const DPOP_MAX_AGE: i64 = 300;
/// SP 5.3.2.1-13 (AS-SP-28): JWTs whose `iat` lies more than 60 s ahead are refused.
pub const MAX_FUTURE_SKEW: i64 = 60;

/// Server-provided nonces (RFC 9449 §8, §9): the current one, and which are still accepted.
pub trait NonceSource: Send + Sync {
    /// The nonce to hand out now.
    fn current(&self, now: i64) -> String;
    /// Whether `nonce` is the current one.
    fn is_current(&self, nonce: &str, now: i64) -> bool;
    /// Whether `nonce` is still accepted (the current or a recent one).
    fn is_valid(&self, nonce: &str, now: i64) -> bool;
}

/// A refused proof: every rule has its description (`invalid_dpop_proof`), and a missing or
/// stale nonce asks for the current one (`use_dpop_nonce`, §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    Invalid(Cow<'static, str>),
    UseNonce(String),
}

/// What a request offers as proof of possession.
#[derive(Debug, Clone, Copy)]
pub struct DpopRequest<'a> {
    /// Every `DPoP` header value of the request.
    pub headers: &'a [&'a str],
    /// The HTTP method.
    pub method: &'a str,
    /// The endpoint's public URL (derived from the issuer, never from `Host`).
    pub url: &'a str,
    /// The access token presented with the proof (resource requests): `ath` must match.
    pub access_token: Option<&'a str>,
}

/// A proof that passed every check except replay, which the caller records with the store.
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    /// RFC 7638 thumbprint of the proof key.
    pub jkt: JwkThumbprint,
    /// The key under which the `jti` must be remembered (RFC 9449 §11.1).
    pub replay_key: String,
    /// When the replay record may be forgotten.
    pub replay_until: i64,
    /// A nonce to send back because the proof's was not the current one (§8.2).
    pub fresh_nonce: Option<String>,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: Option<Value>,
    htm: Option<Value>,
    htu: Option<Value>,
    iat: Option<Value>,
    ath: Option<Value>,
    nonce: Option<Value>,
}

/// Longest `jti` kept in the replay store (RFC 9449 §11.1: refuse over-long values).
const MAX_JTI_LEN: usize = 256;

/// Checks a DPoP proof (RFC 9449 §4.3), one rule at a time; each failure is `invalid_dpop_proof`
/// with a description of the rule, or `use_dpop_nonce` (§8) with a fresh nonce.
pub fn check_proof(
    req: &DpopRequest<'_>,
    now: i64,
    nonces: &dyn NonceSource,
    nonce_required: bool,
) -> Result<VerifiedProof, ProofError> {
    fn bad(d: impl Into<Cow<'static, str>>) -> ProofError {
        ProofError::Invalid(d.into())
    }
    // §4.3 (1): exactly one DPoP header
    let proof = match req.headers {
        [one] => *one,
        [] => return Err(bad("the DPoP header is missing")),
        _ => return Err(bad("more than one DPoP header was sent")),
    };
    // §4.3 (2)-(5): one well-formed JWS, FAPI algorithm (AS-SP-95/96)
    let jws = CompactJws::parse(proof).map_err(|e| bad(format!("the DPoP proof is not a valid JWS: {e}")))?;
    let header = jws.header();
    // §4.3 (4): typ dpop+jwt (media types compare case-insensitively)
    match header.typ.as_deref() {
        Some(t) if t.eq_ignore_ascii_case("dpop+jwt") => {}
        Some(_) => return Err(bad("the DPoP proof typ must be dpop+jwt")),
        None => return Err(bad("the DPoP proof has no typ (dpop+jwt)")),
    }
    // §4.3 (7): a public key in jwk, no private parts
    let jwk = header
        .jwk
        .as_ref()
        .ok_or_else(|| bad("the DPoP proof header has no jwk"))?;
    let key = PublicJwk::from_json(jwk).map_err(|e| bad(format!("the DPoP proof jwk is not acceptable: {e}")))?;
    // §4.3 (6): the signature verifies with that key
    jws.verify(&key)
        .map_err(|_| bad("the DPoP proof signature does not verify with its jwk"))?;
    let claims: ProofClaims = jws
        .claims()
        .map_err(|_| bad("the DPoP proof payload is not a JSON object"))?;

    let jti = match &claims.jti {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_JTI_LEN => s,
        Some(Value::String(s)) if !s.is_empty() => return Err(bad("the DPoP proof jti is too long")),
        _ => return Err(bad("the DPoP proof has no jti")),
    };
    // §4.3 (8): htm matches the method
    match &claims.htm {
        Some(Value::String(m)) if m == req.method => {}
        Some(Value::String(_)) => return Err(bad(format!("the DPoP proof htm must be {}", req.method))),
        _ => return Err(bad("the DPoP proof has no htm")),
    }
    // §4.3 (9): htu matches the URL, ignoring query and fragment, after normalisation
    match &claims.htu {
        Some(Value::String(u)) if same_target(u, req.url) => {}
        Some(Value::String(_)) => return Err(bad(format!("the DPoP proof htu must be {}", req.url))),
        _ => return Err(bad("the DPoP proof has no htu")),
    }
    // §4.3 (11) / AS-SP-28: iat within the window; up to 60 s in the future
    let iat = claims
        .iat
        .as_ref()
        .and_then(Value::as_f64)
        .ok_or_else(|| bad("the DPoP proof has no numeric iat"))? as i64;
    if iat > now + MAX_FUTURE_SKEW {
        return Err(bad("the DPoP proof iat is too far in the future"));
    }
    if iat < now - DPOP_MAX_AGE {
        return Err(bad("the DPoP proof is too old (iat)"));
    }
    // §7.1: ath binds the proof to the access token
    if let Some(token) = req.access_token {
        match &claims.ath {
            Some(Value::String(a)) if secure_eq(a.as_bytes(), sha256_b64url(token).as_bytes()) => {}
            Some(_) => return Err(bad("the DPoP proof ath does not match the access token")),
            None => return Err(bad("the DPoP proof has no ath")),
        }
    }
    // §4.3 (10), §8: the server nonce
    let fresh_nonce = match &claims.nonce {
        Some(Value::String(n)) if nonces.is_current(n, now) => None,
        // the previous step's nonce still counts, but the client should move on (§8.2)
        Some(Value::String(n)) if nonces.is_valid(n, now) => Some(nonces.current(now)),
        Some(_) => return Err(ProofError::UseNonce(nonces.current(now))),
        None if nonce_required => return Err(ProofError::UseNonce(nonces.current(now))),
        None => None,
    };
    Ok(VerifiedProof {
        jkt: JwkThumbprint::from_trusted(key.thumbprint().to_owned()),
        replay_key: format!("dpop:{}", sha256_b64url(format!("{}\n{jti}", req.url))),
        replay_until: now.max(iat) + DPOP_MAX_AGE + MAX_FUTURE_SKEW,
        fresh_nonce,
    })
}

/// RFC 9449 §4.3 (9) with RFC 3986 §6.2.2/§6.2.3 normalisation: scheme and host compare
/// case-insensitively, the default port is elided, query and fragment are ignored.
pub fn same_target(htu: &str, endpoint: &str) -> bool {
    let (Ok(a), Ok(b)) = (url::Url::parse(htu), url::Url::parse(endpoint)) else {
        return false;
    };
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path() == b.path()
        && a.username().is_empty()
        && a.password().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_normalisation() {
        let ep = "https://as.example.com/token";
        assert!(same_target("https://as.example.com/token", ep));
        assert!(same_target("HTTPS://AS.EXAMPLE.COM/token", ep));
        assert!(same_target("https://as.example.com:443/token", ep));
        assert!(same_target("https://as.example.com/token?x=1#frag", ep));
        assert!(!same_target("https://as.example.com/other", ep));
        assert!(!same_target("https://as.example.com:8443/token", ep));
        assert!(!same_target("http://as.example.com/token", ep));
        assert!(!same_target("not a url", ep));
    }
}
