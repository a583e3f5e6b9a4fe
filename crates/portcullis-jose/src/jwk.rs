use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use serde_json::{Map, Value};

use crate::{Algorithm, JoseError, b64url_decode, sha256_b64url};

/// A parsed public JWK, ready to verify signatures without further parsing.
#[derive(Clone)]
pub struct PublicJwk {
    kid: Option<String>,
    alg: Option<Algorithm>,
    key_type: KeyType,
    verifier: ParsedPublicKey,
    thumbprint: String,
    /// The public members only, as published or registered.
    json: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Rsa,
    EcP256,
    Ed25519,
}

/// Members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// SP 5.4.1-2: RSA keys must have at least 2048 bits.
const MIN_RSA_MODULUS_BYTES: usize = 256;

impl PublicJwk {
    /// Parses a JWK object. Private members, unknown key types, curves other than P-256 and
    /// Ed25519, RSA moduli below 2048 bits and a non-FAPI `alg` are refused (SP 5.4.1).
    pub fn from_json(value: &Value) -> Result<Self, JoseError> {
        let obj = value
            .as_object()
            .ok_or(JoseError::InvalidKey("a JWK must be a JSON object"))?;
        if PRIVATE_MEMBERS.iter().any(|m| obj.contains_key(*m)) {
            return Err(JoseError::InvalidKey("JWK contains private key material"));
        }
        let kid = match obj.get("kid") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(JoseError::InvalidKey("kid must be a string")),
        };
        let alg = match obj.get("alg") {
            None => None,
            Some(Value::String(s)) => {
                Some(Algorithm::parse(s).map_err(|_| JoseError::InvalidKey("JWK alg is not a FAPI 2.0 algorithm"))?)
            }
            Some(_) => return Err(JoseError::InvalidKey("alg must be a string")),
        };
        if let Some(use_) = obj.get("use")
            && use_ != "sig"
        {
            return Err(JoseError::InvalidKey("JWK use must be sig"));
        }
        let member = |name: &'static str| -> Result<Vec<u8>, JoseError> {
            let s = obj
                .get(name)
                .and_then(Value::as_str)
                .ok_or(JoseError::InvalidKey("JWK lacks a required member"))?;
            b64url_decode(s).map_err(|_| JoseError::InvalidKey("JWK member is not base64url"))
        };
        let kty = obj
            .get("kty")
            .and_then(Value::as_str)
            .ok_or(JoseError::InvalidKey("JWK lacks kty"))?;
        let (key_type, verifier, canonical) = match kty {
            "RSA" => {
                let n = member("n")?;
                let e = member("e")?;
                let n_trimmed = trim_leading_zeros(&n);
                if n_trimmed.len() < MIN_RSA_MODULUS_BYTES {
                    return Err(JoseError::InvalidKey("RSA keys must have at least 2048 bits"));
                }
                let components = RsaPublicKeyComponents {
                    n: n_trimmed,
                    e: trim_leading_zeros(&e),
                };
                let verifier = components
                    .to_parsed_public_key(&signature::RSA_PSS_2048_8192_SHA256)
                    .map_err(|_| JoseError::InvalidKey("unusable RSA key"))?;
                let canonical = format!(
                    r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                    str_member(obj, "e")?,
                    str_member(obj, "n")?
                );
                (KeyType::Rsa, verifier, canonical)
            }
            "EC" => {
                if obj.get("crv").and_then(Value::as_str) != Some("P-256") {
                    return Err(JoseError::InvalidKey("EC keys must use the P-256 curve"));
                }
                let x = member("x")?;
                let y = member("y")?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(JoseError::InvalidKey("P-256 coordinates must be 32 bytes"));
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let verifier = ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                    .map_err(|_| JoseError::InvalidKey("the EC point is not on P-256"))?;
                let canonical = format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    str_member(obj, "x")?,
                    str_member(obj, "y")?
                );
                (KeyType::EcP256, verifier, canonical)
            }
            "OKP" => {
                if obj.get("crv").and_then(Value::as_str) != Some("Ed25519") {
                    return Err(JoseError::InvalidKey("OKP keys must use the Ed25519 curve"));
                }
                let x = member("x")?;
                if x.len() != 32 {
                    return Err(JoseError::InvalidKey("Ed25519 keys are 32 bytes"));
                }
                let verifier = ParsedPublicKey::new(&signature::ED25519, &x)
                    .map_err(|_| JoseError::InvalidKey("unusable Ed25519 key"))?;
                let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, str_member(obj, "x")?);
                (KeyType::Ed25519, verifier, canonical)
            }
            _ => return Err(JoseError::InvalidKey("kty must be RSA, EC or OKP")),
        };
        if let Some(alg) = alg
            && !key_type.supports(alg)
        {
            return Err(JoseError::InvalidKey("JWK alg does not fit its key type"));
        }
        Ok(Self {
            kid,
            alg,
            key_type,
            verifier,
            thumbprint: sha256_b64url(canonical.as_bytes()),
            json: obj.clone(),
        })
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The JWK SHA-256 thumbprint (RFC 7638), base64url.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Whether this key can verify `alg`, honouring the key's own `alg` member (SP 5.4.3).
    pub fn supports(&self, alg: Algorithm) -> bool {
        self.key_type.supports(alg) && self.alg.is_none_or(|own| own.same_family(alg))
    }

    /// Verifies `signature` over `message` under `alg`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> Result<(), JoseError> {
        if !self.supports(alg) {
            return Err(JoseError::NoMatchingKey);
        }
        self.verifier
            .verify_sig(message, signature)
            .map_err(|_| JoseError::BadSignature)
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.json.clone())
    }
}

impl std::fmt::Debug for PublicJwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicJwk")
            .field("kid", &self.kid)
            .field("kty", &self.key_type)
            .field("thumbprint", &self.thumbprint)
            .finish()
    }
}

impl KeyType {
    fn supports(self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (KeyType::Rsa, Algorithm::Ps256)
                | (KeyType::EcP256, Algorithm::Es256)
                | (KeyType::Ed25519, Algorithm::EdDsa | Algorithm::Ed25519)
        )
    }
}

/// A parsed JWK Set (RFC 7517 §5).
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: Vec<PublicJwk>,
}

impl Jwks {
    /// Parses `{"keys": [...]}`. Every key must be usable: a set with a bad key is refused whole,
    /// so that a registration never stores keys it cannot use.
    pub fn from_json(value: &Value) -> Result<Self, JoseError> {
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JoseError::InvalidKey("a JWK Set needs a keys array"))?;
        // encryption keys are not ours to judge; every signing key must be usable
        let keys = keys
            .iter()
            .filter(|k| k.get("use").and_then(Value::as_str) != Some("enc"))
            .map(PublicJwk::from_json)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(JoseError::InvalidKey("the JWK Set has no signing keys"));
        }
        Ok(Self { keys })
    }

    pub fn keys(&self) -> &[PublicJwk] {
        &self.keys
    }

    /// Keys that may have made a signature with `alg` and `kid` (SP 5.4.3: kid plus kty/alg).
    pub fn candidates<'a>(&'a self, kid: Option<&'a str>, alg: Algorithm) -> impl Iterator<Item = &'a PublicJwk> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.supports(alg) && kid.is_none_or(|kid| k.kid() == Some(kid)))
    }

    /// Whether a key with this `kid` exists at all (to decide on a JWKS refresh).
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == Some(kid))
    }
}

fn str_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, JoseError> {
    obj.get(name)
        .and_then(Value::as_str)
        .ok_or(JoseError::InvalidKey("JWK lacks a required member"))
}

fn trim_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}
