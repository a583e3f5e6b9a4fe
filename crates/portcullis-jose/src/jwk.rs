use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use serde_json::{Map, Value};

use crate::{Algorithm, JoseError, b64url, b64url_decode, sha256_b64url};

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

/// Issue 13 item 11: the most keys a JWK Set may hold, registered (`jwks`) or fetched
/// (`jwks_uri`). A client assertion without `kid` is tried against every fitting key, so this
/// bounds the signature checks one request can cause.
pub const MAX_JWKS_KEYS: usize = 16;

/// SP 5.4.1-2: RSA keys must have at least 2048 bits.
const MIN_RSA_MODULUS_BYTES: usize = 256;

impl PublicJwk {
    /// Parses a JWK object. Private members, unknown key types, curves other than P-256 and
    /// Ed25519, RSA moduli below 2048 bits and a non-FAPI `alg` are refused (SP 5.4.1).
    pub fn from_json(value: &Value) -> Result<Self, JoseError> {
        let obj = value
            .as_object()
            .ok_or(JoseError::InvalidKey("a JWK must be a JSON object"))?;
        refuse_secret_material(obj)?;
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
        // Issue 13 item 12: every member that enters the thumbprint must be the one canonical
        // base64url encoding of its bytes (no padding, no stray low bits), so one key has one
        // RFC 7638 thumbprint. The thumbprint is computed from the decoded bytes re-encoded.
        let member = |name: &'static str| -> Result<Vec<u8>, JoseError> {
            let s = obj
                .get(name)
                .and_then(Value::as_str)
                .ok_or(JoseError::InvalidKey("JWK lacks a required member"))?;
            let bytes = b64url_decode(s).map_err(|_| JoseError::InvalidKey("JWK member is not base64url"))?;
            if b64url(&bytes) != s {
                return Err(JoseError::InvalidKey("JWK member is not canonical base64url"));
            }
            Ok(bytes)
        };
        let kty = obj
            .get("kty")
            .and_then(Value::as_str)
            .ok_or(JoseError::InvalidKey("JWK lacks kty"))?;
        let (key_type, verifier, canonical) = match kty {
            "RSA" => {
                let n = member("n")?;
                let e = member("e")?;
                // Issue 13 item 12, RFC 7518 §6.3.1.1/§6.3.1.2: n and e are unsigned big-endian
                // integers in the minimum number of octets. A leading zero octet would give the
                // same key a second thumbprint.
                match n.first() {
                    None => return Err(JoseError::InvalidKey("RSA n must not be empty")),
                    Some(0) => {
                        return Err(JoseError::InvalidKey(
                            "RSA n must not have leading zero octets (RFC 7518 §6.3.1.1)",
                        ));
                    }
                    Some(_) => {}
                }
                match e.first() {
                    None => return Err(JoseError::InvalidKey("RSA e must not be empty")),
                    Some(0) => {
                        return Err(JoseError::InvalidKey(
                            "RSA e must not have leading zero octets (RFC 7518 §6.3.1.2)",
                        ));
                    }
                    Some(_) => {}
                }
                if n.len() < MIN_RSA_MODULUS_BYTES {
                    return Err(JoseError::InvalidKey("RSA keys must have at least 2048 bits"));
                }
                let components = RsaPublicKeyComponents { n: &n, e: &e };
                let verifier = components
                    .to_parsed_public_key(&signature::RSA_PSS_2048_8192_SHA256)
                    .map_err(|_| JoseError::InvalidKey("unusable RSA key"))?;
                let canonical = format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64url(&e), b64url(&n));
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
                    b64url(&x),
                    b64url(&y)
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
                let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64url(&x));
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
    /// The document as received: members this layer does not interpret (`x5c` for RFC 8705
    /// §2.2 self-signed certificates) are read from it.
    document: Value,
}

impl Jwks {
    /// Parses `{"keys": [...]}`. Every key must be usable: a set with a bad key is refused whole,
    /// so that a registration never stores keys it cannot use.
    ///
    /// Issue 13 item 11: no key of the set, whatever its `use`, may carry private or symmetric
    /// material (RFC 7517 §9.2: a public JWK Set holds public keys), and the set holds at most
    /// [`MAX_JWKS_KEYS`] keys. Encryption keys (`use: enc`) are otherwise not judged.
    pub fn from_json(value: &Value) -> Result<Self, JoseError> {
        let all = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JoseError::InvalidKey("a JWK Set needs a keys array"))?;
        if all.len() > MAX_JWKS_KEYS {
            return Err(JoseError::InvalidKey("a JWK Set may hold at most 16 keys"));
        }
        let mut keys = Vec::with_capacity(all.len());
        for key in all {
            let obj = key
                .as_object()
                .ok_or(JoseError::InvalidKey("a JWK must be a JSON object"))?;
            refuse_secret_material(obj)?;
            // encryption keys are not ours to judge beyond that; every signing key must be usable
            if obj.get("use").and_then(Value::as_str) != Some("enc") {
                keys.push(PublicJwk::from_json(key)?);
            }
        }
        if keys.is_empty() {
            return Err(JoseError::InvalidKey("the JWK Set has no signing keys"));
        }
        Ok(Self {
            keys,
            document: value.clone(),
        })
    }

    pub fn keys(&self) -> &[PublicJwk] {
        &self.keys
    }

    /// The JWK Set document this was parsed from.
    pub fn document(&self) -> &Value {
        &self.document
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

/// Issue 13 item 11: private members (RFC 7518 §6.2.2, §6.3.2) and symmetric keys (`kty: oct`,
/// RFC 7518 §6.4) have no place in a public JWK, whatever its `use`.
fn refuse_secret_material(obj: &Map<String, Value>) -> Result<(), JoseError> {
    if obj.get("kty").and_then(Value::as_str) == Some("oct") {
        return Err(JoseError::InvalidKey("symmetric (oct) keys are not allowed"));
    }
    if PRIVATE_MEMBERS.iter().any(|m| obj.contains_key(*m)) {
        return Err(JoseError::InvalidKey("JWK contains private key material"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::SigningKey;

    fn rsa() -> Value {
        SigningKey::generate(Algorithm::Ps256).unwrap().public_jwk().to_json()
    }

    fn es() -> Value {
        SigningKey::generate(Algorithm::Es256).unwrap().public_jwk().to_json()
    }

    /// Replaces the last character of a base64url member with one that decodes to the same
    /// bytes but sets the unused low bits (a non-canonical encoding), if the length allows it.
    fn dirty_trailing_bits(s: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let unused_bits = match s.len() % 4 {
            2 => 4,
            3 => 2,
            _ => panic!("no unused bits in a member of length {}", s.len()),
        };
        let last = s.as_bytes()[s.len() - 1];
        let index = ALPHABET.iter().position(|c| *c == last).unwrap();
        assert_eq!(
            index & ((1 << unused_bits) - 1),
            0,
            "{s} is not canonical to begin with"
        );
        // flip the lowest (unused) bit: the data bits, and so the decoded bytes, stay the same
        let dirty = index ^ 1;
        format!("{}{}", &s[..s.len() - 1], ALPHABET[dirty] as char)
    }

    /// Issue 13 item 12: a leading zero octet in `n` gave the same key a second thumbprint.
    #[test]
    fn rsa_n_with_leading_zero_is_refused() {
        let jwk = rsa();
        let n = b64url_decode(jwk["n"].as_str().unwrap()).unwrap();
        let mut padded = jwk.clone();
        padded["n"] = json!(b64url([&[0u8][..], &n].concat()));
        let err = PublicJwk::from_json(&padded).unwrap_err();
        assert!(err.to_string().contains("leading zero"), "{err}");
        assert!(PublicJwk::from_json(&jwk).is_ok());
    }

    /// Issue 13 item 12: `e` must be minimal (RFC 7518 §6.3.1.2) and non-empty.
    #[test]
    fn rsa_e_with_leading_zero_or_empty_is_refused() {
        let jwk = rsa();
        assert_eq!(jwk["e"], json!("AQAB"));
        for e in [b64url([0u8, 1, 0, 1]), b64url([0u8, 0, 1, 0, 1]), String::new()] {
            let mut bad = jwk.clone();
            bad["e"] = json!(e);
            assert!(PublicJwk::from_json(&bad).is_err(), "e = {e:?} accepted");
        }
    }

    /// Issue 13 item 12: every thumbprint member must be canonical base64url: no padding, no
    /// non-zero unused bits, so that one key has one thumbprint.
    #[test]
    fn non_canonical_base64url_members_are_refused() {
        let ec = es();
        let okp = SigningKey::generate(Algorithm::EdDsa).unwrap().public_jwk().to_json();
        let rsa = rsa();
        for (jwk, member) in [(&ec, "x"), (&ec, "y"), (&okp, "x"), (&rsa, "n")] {
            let s = jwk[member].as_str().unwrap();
            let mut dirty = jwk.clone();
            dirty[member] = json!(dirty_trailing_bits(s));
            assert!(
                PublicJwk::from_json(&dirty).is_err(),
                "{member} with dirty bits accepted"
            );
            let mut padded = jwk.clone();
            padded[member] = json!(format!("{s}{}", "=".repeat((4 - s.len() % 4) % 4)));
            assert!(PublicJwk::from_json(&padded).is_err(), "{member} with padding accepted");
        }
        // the base64url decoder agrees that the dirty forms are not valid
        assert!(b64url_decode(&dirty_trailing_bits(ec["x"].as_str().unwrap())).is_err());
    }

    /// Issue 13 item 11: an encryption key is skipped, but never with private material, and
    /// never a symmetric key.
    #[test]
    fn jwks_refuses_secret_material_in_encryption_keys() {
        let sig = es();
        let mut enc_with_d = es();
        enc_with_d["use"] = json!("enc");
        enc_with_d["alg"] = json!("ECDH-ES");
        enc_with_d["d"] = json!(b64url([7u8; 32]));
        let enc_oct = json!({"kty": "oct", "use": "enc", "k": b64url([1u8; 32])});
        let enc_oct_no_k = json!({"kty": "oct", "use": "enc"});
        for bad in [enc_with_d, enc_oct, enc_oct_no_k] {
            let set = json!({"keys": [sig.clone(), bad.clone()]});
            assert!(Jwks::from_json(&set).is_err(), "{bad} accepted in a JWK Set");
        }
        let sig_oct = json!({"kty": "oct", "k": b64url([1u8; 32])});
        assert!(Jwks::from_json(&json!({"keys": [sig.clone(), sig_oct]})).is_err());
        // a public encryption key is still allowed and simply not used
        let mut enc = es();
        enc["use"] = json!("enc");
        enc["alg"] = json!("ECDH-ES");
        let set = Jwks::from_json(&json!({"keys": [sig, enc]})).unwrap();
        assert_eq!(set.keys().len(), 1);
    }

    /// Issue 13 item 11: a JWK Set holds at most MAX_JWKS_KEYS keys (encryption keys count).
    #[test]
    fn jwks_key_count_is_capped() {
        let key = es();
        let full = vec![key.clone(); MAX_JWKS_KEYS];
        assert!(Jwks::from_json(&json!({ "keys": full })).is_ok());
        let mut over = vec![key; MAX_JWKS_KEYS];
        over.push(json!({"kty": "EC", "use": "enc", "crv": "P-256", "x": "AA", "y": "AA"}));
        let err = Jwks::from_json(&json!({ "keys": over })).unwrap_err();
        assert!(err.to_string().contains(&MAX_JWKS_KEYS.to_string()), "{err}");
    }
}
