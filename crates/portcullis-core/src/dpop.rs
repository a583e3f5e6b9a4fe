//! DPoP at the authorization server: stateless server nonces (RFC 9449 §8) under rotating
//! secrets, and the proof checks of the resource crate (`portcullis_resource::dpop`) mapped to
//! protocol errors.

use portcullis_jose::{b64url, b64url_decode};
pub use portcullis_resource::dpop::{DpopRequest, NonceSource, ProofError, VerifiedProof, same_target};

use crate::error::{OAuthError, OAuthResult};
use crate::random::secure_eq;
use crate::secrets::{RotatingKey, SECRET_ROTATION_PERIOD};
use crate::settings::DPOP_NONCE_STEP;
use crate::store::Store;

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

/// Checks a DPoP proof (RFC 9449 §4.3) with the resource crate's rules; each failure is
/// `invalid_dpop_proof` with a description of the rule, or `use_dpop_nonce` (§8) with a fresh
/// nonce.
pub fn check_proof(
    req: &DpopRequest<'_>,
    now: i64,
    nonces: &DpopNonces,
    nonce_required: bool,
) -> OAuthResult<VerifiedProof> {
    portcullis_resource::dpop::check_proof(req, now, nonces, nonce_required).map_err(proof_error)
}

/// The protocol error of a refused proof.
pub fn proof_error(e: ProofError) -> OAuthError {
    match e {
        ProofError::Invalid(d) => OAuthError::invalid_dpop_proof(d),
        ProofError::UseNonce(n) => OAuthError::use_dpop_nonce(n),
    }
}

impl NonceSource for DpopNonces {
    fn current(&self, now: i64) -> String {
        DpopNonces::current(self, now)
    }
    fn is_current(&self, nonce: &str, now: i64) -> bool {
        DpopNonces::is_current(self, nonce, now)
    }
    fn is_valid(&self, nonce: &str, now: i64) -> bool {
        DpopNonces::is_valid(self, nonce, now)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

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
