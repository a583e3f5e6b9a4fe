use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{Algorithm, JoseError, Jwks, PublicJwk, b64url_decode};

/// The protected header of a JWS, with the members Portcullis looks at parsed.
#[derive(Debug, Clone)]
pub struct JwsHeader {
    pub alg: Algorithm,
    pub typ: Option<String>,
    pub kid: Option<String>,
    /// The embedded public key of a DPoP proof (RFC 9449 §4.2); never trusted elsewhere (RFC 8725).
    pub jwk: Option<Value>,
    /// Every member, for checks such as `crit`.
    pub raw: Map<String, Value>,
}

/// A JWS in compact serialisation, parsed but not yet verified.
#[derive(Debug, Clone)]
pub struct CompactJws<'a> {
    header: JwsHeader,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// A bound on what Portcullis accepts as one JWS (client assertions, DPoP proofs).
const MAX_JWS_LEN: usize = 16 * 1024;

impl<'a> CompactJws<'a> {
    /// Splits and decodes `token`. The algorithm must be on the FAPI allow-list (AS-SP-95/96),
    /// `crit` is refused (RFC 7515 §4.1.11: we understand no extensions), and there must be
    /// exactly three parts (a JWE or an unsecured JWS fails here).
    pub fn parse(token: &'a str) -> Result<Self, JoseError> {
        if token.len() > MAX_JWS_LEN {
            return Err(JoseError::Malformed("too long"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(JoseError::Malformed("a compact JWS has exactly three parts"));
        };
        if s.is_empty() {
            return Err(JoseError::Malformed("the signature is missing"));
        }
        let header_bytes = b64url_decode(h)?;
        let raw: Map<String, Value> = serde_json::from_slice(&header_bytes)
            .map_err(|_| JoseError::Malformed("the header is not a JSON object"))?;
        let alg = match raw.get("alg") {
            Some(Value::String(a)) => Algorithm::parse(a)?,
            Some(_) => return Err(JoseError::Malformed("alg must be a string")),
            None => return Err(JoseError::Malformed("the header has no alg")),
        };
        if raw.contains_key("crit") {
            return Err(JoseError::Malformed("crit header parameters are not supported"));
        }
        let typ = opt_string(&raw, "typ")?;
        let kid = opt_string(&raw, "kid")?;
        let jwk = raw.get("jwk").cloned();
        let payload = b64url_decode(p)?;
        let signature = b64url_decode(s)?;
        Ok(Self {
            header: JwsHeader {
                alg,
                typ,
                kid,
                jwk,
                raw,
            },
            signing_input: &token[..h.len() + 1 + p.len()],
            payload,
            signature,
        })
    }

    pub fn header(&self) -> &JwsHeader {
        &self.header
    }

    /// Verifies the signature with one key.
    pub fn verify(&self, key: &PublicJwk) -> Result<(), JoseError> {
        key.verify(self.header.alg, self.signing_input.as_bytes(), &self.signature)
    }

    /// Verifies with the key of `jwks` that the header designates (`kid`, else by algorithm).
    pub fn verify_with_set(&self, jwks: &Jwks) -> Result<(), JoseError> {
        self.verifying_key(jwks).map(|_| ())
    }

    /// [`Self::verify_with_set`], answering which key verified (kept as evidence, so that the
    /// signature can be checked again later).
    pub fn verifying_key<'k>(&self, jwks: &'k Jwks) -> Result<&'k PublicJwk, JoseError> {
        let mut found = false;
        let kid = self.header.kid.as_deref();
        // Jwks::candidates, with the key's lifetime kept apart from the header's
        let candidates = jwks
            .keys()
            .iter()
            .filter(|k| k.supports(self.header.alg) && kid.is_none_or(|kid| k.kid() == Some(kid)));
        for key in candidates {
            found = true;
            if self.verify(key).is_ok() {
                return Ok(key);
            }
        }
        Err(if found {
            JoseError::BadSignature
        } else {
            JoseError::NoMatchingKey
        })
    }

    /// The payload parsed as JSON claims. Only call after verification.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, JoseError> {
        serde_json::from_slice(&self.payload).map_err(|_| JoseError::Malformed("the payload is not the expected JSON"))
    }

    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

fn opt_string(raw: &Map<String, Value>, name: &'static str) -> Result<Option<String>, JoseError> {
    match raw.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JoseError::Malformed("typ and kid must be strings")),
    }
}
