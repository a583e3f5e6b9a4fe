use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{Algorithm, JoseError, PublicJwk, b64url};

/// A private signing key of the server, parsed once and kept in memory.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    inner: Inner,
    pkcs8: Vec<u8>,
    public: PublicJwk,
}

enum Inner {
    Es256(EcdsaKeyPair),
    Ps256(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl SigningKey {
    /// Generates a new key: P-256 for ES256, RSA 2048 for PS256, Ed25519 for EdDSA.
    /// The `kid` is the key's JWK thumbprint, so it is unique and stable.
    pub fn generate(alg: Algorithm) -> Result<Self, JoseError> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Algorithm::Es256 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| JoseError::SigningFailed)?
                .as_ref()
                .to_vec(),
            Algorithm::Ps256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .and_then(|k| k.as_der())
                .map_err(|_| JoseError::SigningFailed)?
                .as_ref()
                .to_vec(),
            Algorithm::EdDsa | Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| JoseError::SigningFailed)?
                .as_ref()
                .to_vec(),
        };
        Self::from_pkcs8(alg, &pkcs8, None)
    }

    /// Loads a PKCS#8 key. `kid` defaults to the JWK thumbprint.
    pub fn from_pkcs8(alg: Algorithm, pkcs8: &[u8], kid: Option<String>) -> Result<Self, JoseError> {
        let bad = |_| JoseError::InvalidKey("unusable PKCS#8 private key");
        let (inner, public_json) = match alg {
            Algorithm::Es256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(bad)?;
                let point = kp.public_key().as_ref();
                if point.len() != 65 {
                    return Err(JoseError::InvalidKey("unexpected P-256 point encoding"));
                }
                let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64url(&point[1..33]), "y": b64url(&point[33..])});
                (Inner::Es256(kp), jwk)
            }
            Algorithm::Ps256 => {
                let kp = RsaKeyPair::from_pkcs8(pkcs8).map_err(bad)?;
                let c: PublicKeyComponents<Vec<u8>> = kp.public_key().into();
                let jwk = json!({"kty": "RSA", "n": b64url(&c.n), "e": b64url(&c.e)});
                (Inner::Ps256(kp), jwk)
            }
            Algorithm::EdDsa | Algorithm::Ed25519 => {
                let kp = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(bad)?;
                let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(kp.public_key().as_ref())});
                (Inner::Ed25519(kp), jwk)
            }
        };
        let thumbprint = PublicJwk::from_json(&public_json)?.thumbprint().to_owned();
        let kid = kid.unwrap_or(thumbprint);
        let mut full = public_json;
        if let Value::Object(m) = &mut full {
            m.insert("kid".into(), Value::String(kid.clone()));
            m.insert("use".into(), Value::String("sig".into()));
            m.insert("alg".into(), Value::String(alg.as_str().into()));
        }
        let public = PublicJwk::from_json(&full)?;
        Ok(Self {
            kid,
            alg,
            inner,
            pkcs8: pkcs8.to_vec(),
            public,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The PKCS#8 encoding, for persistence.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public JWK (with `kid`, `use` and `alg`), for the JWKS.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    /// Signs `claims` as a compact JWS with header `{alg, kid, typ}`. `alg` may be a different
    /// name for the same algorithm (`Ed25519` for an `EdDSA` key).
    pub fn sign_jwt(&self, alg: Algorithm, typ: Option<&str>, claims: &impl Serialize) -> Result<String, JoseError> {
        if !self.alg.same_family(alg) {
            return Err(JoseError::NoMatchingKey);
        }
        let header = match typ {
            Some(typ) => json!({"alg": alg.as_str(), "kid": self.kid, "typ": typ}),
            None => json!({"alg": alg.as_str(), "kid": self.kid}),
        };
        let header = serde_json::to_vec(&header).map_err(|_| JoseError::SigningFailed)?;
        let payload = serde_json::to_vec(claims).map_err(|_| JoseError::SigningFailed)?;
        let mut out = b64url(header);
        out.push('.');
        out.push_str(&b64url(payload));
        let signature = self.sign_raw(out.as_bytes())?;
        out.push('.');
        out.push_str(&b64url(signature));
        Ok(out)
    }

    /// A raw JWS signature over `message` (fixed-size r||s for ES256, RFC 7518 §3.4).
    pub fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Es256(kp) => Ok(kp
                .sign(&rng, message)
                .map_err(|_| JoseError::SigningFailed)?
                .as_ref()
                .to_vec()),
            Inner::Ps256(kp) => {
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(&signature::RSA_PSS_SHA256, &rng, message, &mut sig)
                    .map_err(|_| JoseError::SigningFailed)?;
                Ok(sig)
            }
            Inner::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
        }
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}
