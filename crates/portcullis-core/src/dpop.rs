//! DPoP proof checks (RFC 9449 §4.3) and stateless server nonces (§8), one function used by the
//! token endpoint, PAR, userinfo and, later, resource servers.

use portcullis_jose::{CompactJws, PublicJwk, b64url, b64url_decode, sha256_b64url};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{OAuthError, OAuthResult};
use crate::random::secure_eq;
use crate::secrets::{RotatingKey, SECRET_ROTATION_PERIOD};
use crate::settings::{DPOP_MAX_AGE, DPOP_NONCE_STEP, MAX_FUTURE_SKEW};
use crate::store::Store;
use crate::types::JwkThumbprint;

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

/// Server nonces derived from a shared secret and a time step: no state to synchronise between
/// nodes, and valid across restarts (RFC 9449 §8, §11.3). The secret itself rotates daily, the
/// previous one still accepted (issue 13 item 14).
pub struct DpopNonces {
    key: RotatingKey,
}

impl DpopNonces {
    /// Nonces under one fixed secret (tests, embedders).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: RotatingKey::fixed("dpop_nonce", secret),
        }
    }

    /// Nonces under a secret per period, loaded from the store by [`DpopNonces::refresh`].
    pub fn rotating() -> Self {
        Self {
            key: RotatingKey::new("dpop_nonce", SECRET_ROTATION_PERIOD),
        }
    }

    /// Loads the current and previous period's secrets.
    pub async fn refresh(&self, store: &dyn Store, now: i64) -> OAuthResult<()> {
        self.key.refresh(store, now).await
    }

    /// The nonce to hand out now.
    pub fn current(&self, now: i64) -> String {
        b64url(self.key.sign(&now.div_euclid(DPOP_NONCE_STEP).to_be_bytes()))
    }

    /// Accepts the current and the previous step's nonce, under the current or the previous
    /// secret.
    pub fn is_valid(&self, nonce: &str, now: i64) -> bool {
        let Ok(tag) = b64url_decode(nonce) else {
            return false;
        };
        let step = now.div_euclid(DPOP_NONCE_STEP);
        [step, step - 1].iter().any(|s| self.key.verify(&s.to_be_bytes(), &tag))
    }

    pub fn is_current(&self, nonce: &str, now: i64) -> bool {
        secure_eq(self.current(now).as_bytes(), nonce.as_bytes())
    }
}

/// Checks a DPoP proof (RFC 9449 §4.3), one rule at a time; each failure is `invalid_dpop_proof`
/// with a description of the rule, or `use_dpop_nonce` (§8) with a fresh nonce.
pub fn check_proof(
    req: &DpopRequest<'_>,
    now: i64,
    nonces: &DpopNonces,
    nonce_required: bool,
) -> OAuthResult<VerifiedProof> {
    fn bad(d: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
        OAuthError::invalid_dpop_proof(d)
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
        Some(_) => return Err(OAuthError::use_dpop_nonce(nonces.current(now))),
        None if nonce_required => return Err(OAuthError::use_dpop_nonce(nonces.current(now))),
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

    #[test]
    fn nonces_rotate_and_expire() {
        let n = DpopNonces::new(b"secret");
        let t = 1_000_000;
        let cur = n.current(t);
        assert!(n.is_valid(&cur, t));
        assert!(n.is_valid(&cur, t + DPOP_NONCE_STEP));
        assert!(!n.is_valid(&cur, t + 3 * DPOP_NONCE_STEP));
        assert!(!DpopNonces::new(b"other").is_valid(&cur, t));
        assert!(cur.len() >= 43);
    }

    /// A DPoP proof signed by `key` whose header `jwk` is `jwk`.
    fn proof_with_jwk(key: &portcullis_jose::SigningKey, jwk: &Value, now: i64) -> String {
        let header = serde_json::json!({"alg": "PS256", "typ": "dpop+jwt", "jwk": jwk});
        let claims = serde_json::json!({"jti": "j1", "htm": "POST", "htu": "https://as.example.com/token", "iat": now});
        let input = format!("{}.{}", b64url(header.to_string()), b64url(claims.to_string()));
        let signature = key.sign_raw(input.as_bytes()).unwrap();
        format!("{input}.{}", b64url(signature))
    }

    /// Issue 13 item 12: an RSA proof key whose `n` (or `e`) carries a leading zero octet is the
    /// same key under another thumbprint, so such a proof is refused.
    #[test]
    fn proof_key_with_leading_zero_modulus_is_refused() {
        let key = portcullis_jose::SigningKey::generate(portcullis_jose::Algorithm::Ps256).unwrap();
        let jwk = key.public_jwk().to_json();
        let now = 1_000_000;
        let nonces = DpopNonces::new(b"secret");
        let check = |proof: &str| {
            let headers = [proof];
            let req = DpopRequest {
                headers: &headers,
                method: "POST",
                url: "https://as.example.com/token",
                access_token: None,
            };
            check_proof(&req, now, &nonces, false)
        };
        let good = check(&proof_with_jwk(&key, &jwk, now)).unwrap();
        assert_eq!(good.jkt.as_str(), key.public_jwk().thumbprint());
        let n = portcullis_jose::b64url_decode(jwk["n"].as_str().unwrap()).unwrap();
        let mut padded_n = jwk.clone();
        padded_n["n"] = serde_json::json!(b64url([&[0u8][..], &n].concat()));
        let mut padded_e = jwk.clone();
        padded_e["e"] = serde_json::json!("AAEAAQ");
        for bad_jwk in [padded_n, padded_e] {
            let err = check(&proof_with_jwk(&key, &bad_jwk, now)).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::InvalidDpopProof, "{err:?}");
            assert!(err.description.contains("leading zero"), "{err:?}");
        }
    }
}
