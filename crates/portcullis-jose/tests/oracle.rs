//! Our JWS layer checked against an independent implementation (jsonwebtoken) in both
//! directions, plus the refusals FAPI 2.0 requires (AS-SP-95/96/97).

use std::collections::HashSet;

use jsonwebtoken as jwt;
use portcullis_jose::{Algorithm, CompactJws, JoseError, Jwks, PublicJwk, SigningKey, b64url};
use serde_json::{Value, json};

fn oracle_validation(alg: jwt::Algorithm) -> jwt::Validation {
    let mut v = jwt::Validation::new(alg);
    v.required_spec_claims = HashSet::new();
    v.validate_exp = false;
    v.validate_aud = false;
    v
}

fn oracle_alg(alg: Algorithm) -> jwt::Algorithm {
    match alg {
        Algorithm::Ps256 => jwt::Algorithm::PS256,
        Algorithm::Es256 => jwt::Algorithm::ES256,
        Algorithm::EdDsa | Algorithm::Ed25519 => jwt::Algorithm::EdDSA,
    }
}

#[test]
fn our_signatures_verify_with_jsonwebtoken() {
    for alg in [Algorithm::Es256, Algorithm::Ps256, Algorithm::EdDsa] {
        let key = SigningKey::generate(alg).unwrap();
        let token = key
            .sign_jwt(alg, Some("JWT"), &json!({"sub": "alice", "n": 1}))
            .unwrap();
        let jwk: jwt::jwk::Jwk = serde_json::from_value(key.public_jwk().to_json()).unwrap();
        let decoded = jwt::decode::<Value>(
            &token,
            &jwt::DecodingKey::from_jwk(&jwk).unwrap(),
            &oracle_validation(oracle_alg(alg)),
        )
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(decoded.claims["sub"], "alice");
        assert_eq!(decoded.header.kid.as_deref(), Some(key.kid()));
        // and our own verifier agrees
        let jws = CompactJws::parse(&token).unwrap();
        jws.verify(key.public_jwk()).unwrap();
    }
}

#[test]
fn jsonwebtoken_signatures_verify_with_ours() {
    for alg in [Algorithm::Es256, Algorithm::EdDsa] {
        let ours = SigningKey::generate(alg).unwrap();
        let enc = match alg {
            Algorithm::Es256 => jwt::EncodingKey::from_ec_der(ours.pkcs8()),
            _ => jwt::EncodingKey::from_ed_der(ours.pkcs8()),
        };
        let token = jwt::encode(&jwt::Header::new(oracle_alg(alg)), &json!({"x": "y"}), &enc).unwrap();
        let jws = CompactJws::parse(&token).unwrap();
        jws.verify(ours.public_jwk()).unwrap();
        let claims: Value = jws.claims().unwrap();
        assert_eq!(claims["x"], "y");
    }
}

#[test]
fn tampered_signature_fails() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let token = key.sign_jwt(Algorithm::Es256, None, &json!({"a": 1})).unwrap();
    let (head, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", b64url([7u8; 64]));
    let jws = CompactJws::parse(&forged).unwrap();
    assert_eq!(jws.verify(key.public_jwk()), Err(JoseError::BadSignature));
    // another key of the same type does not verify either
    let other = SigningKey::generate(Algorithm::Es256).unwrap();
    let jws = CompactJws::parse(&token).unwrap();
    assert_eq!(jws.verify(other.public_jwk()), Err(JoseError::BadSignature));
}

/// AS-SP-95/96: `none`, RS256 and HS256 never parse.
#[test]
fn non_fapi_algorithms_are_refused() {
    for alg in ["none", "RS256", "HS256", "ES384", "EdDSA448"] {
        let header = b64url(json!({"alg": alg}).to_string());
        let token = format!("{header}.{}.{}", b64url("{}"), b64url("sig"));
        assert!(
            matches!(CompactJws::parse(&token), Err(JoseError::UnsupportedAlgorithm(_))),
            "{alg} accepted"
        );
    }
    let unsigned = format!("{}.{}.", b64url(json!({"alg": "ES256"}).to_string()), b64url("{}"));
    assert!(CompactJws::parse(&unsigned).is_err());
}

/// RFC 7638 §3.1 example thumbprint.
#[test]
fn rfc7638_thumbprint() {
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "PS256",
        "kid": "2011-04-29"
    });
    let key = PublicJwk::from_json(&jwk).unwrap();
    assert_eq!(key.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

/// AS-SP-97 and RFC 9449 §4.3: private parts, small RSA keys and wrong curves are refused.
#[test]
fn bad_keys_are_refused() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let mut with_d = key.public_jwk().to_json();
    with_d["d"] = json!("AAAA");
    assert!(PublicJwk::from_json(&with_d).is_err());
    let mut p384 = key.public_jwk().to_json();
    p384["crv"] = json!("P-384");
    assert!(PublicJwk::from_json(&p384).is_err());
    let small_rsa = json!({"kty": "RSA", "e": "AQAB", "n": b64url([0xC3u8; 128])});
    assert!(PublicJwk::from_json(&small_rsa).is_err());
    let oct = json!({"kty": "oct", "k": "AAAA"});
    assert!(PublicJwk::from_json(&oct).is_err());
    let rs256 = {
        let mut v = SigningKey::generate(Algorithm::Ps256).unwrap().public_jwk().to_json();
        v["alg"] = json!("RS256");
        v
    };
    assert!(PublicJwk::from_json(&rs256).is_err());
}

#[test]
fn key_selection_by_kid_and_type() {
    let es = SigningKey::generate(Algorithm::Es256).unwrap();
    let ed = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let set = Jwks::from_json(&json!({"keys": [es.public_jwk().to_json(), ed.public_jwk().to_json()]})).unwrap();
    let token = ed.sign_jwt(Algorithm::Ed25519, None, &json!({})).unwrap();
    CompactJws::parse(&token).unwrap().verify_with_set(&set).unwrap();
    let es_token = es.sign_jwt(Algorithm::Es256, None, &json!({})).unwrap();
    CompactJws::parse(&es_token).unwrap().verify_with_set(&set).unwrap();
    let only_ed = Jwks::from_json(&json!({"keys": [ed.public_jwk().to_json()]})).unwrap();
    assert_eq!(
        CompactJws::parse(&es_token).unwrap().verify_with_set(&only_ed),
        Err(JoseError::NoMatchingKey)
    );
}

#[test]
fn persisted_keys_round_trip() {
    for alg in [Algorithm::Es256, Algorithm::Ps256, Algorithm::EdDsa] {
        let key = SigningKey::generate(alg).unwrap();
        let again = SigningKey::from_pkcs8(alg, key.pkcs8(), Some(key.kid().to_owned())).unwrap();
        assert_eq!(again.public_jwk().thumbprint(), key.public_jwk().thumbprint());
    }
}
