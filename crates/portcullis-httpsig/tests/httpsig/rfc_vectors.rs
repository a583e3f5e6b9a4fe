//! RFC 9421 Appendix B vectors for the FAPI algorithms, and the RFC 9530 Content-Digest examples.
//!
//! Sources: RFC 9421 B.1.3 (test-key-ecc-p256), B.1.4 (test-key-ed25519), B.2 (test request and
//! response), B.2.4 (ecdsa-p256-sha256 response signature), B.2.6 (ed25519 request signature);
//! RFC 9530 / RFC 9421 B.2 digests of the example bodies. The PEM keys were converted to PKCS#8
//! DER with `openssl pkcs8 -topk8 -nocrypt` / `openssl pkey` and are embedded as base64 below.

use base64::Engine as _;
use http::{HeaderMap, HeaderValue};
use portcullis_httpsig::{
    MessageView, RequestPolicy, RequestView, ResponseView, SigError, SignatureParams, check_content_digest,
    content_digest, parse_signatures, signature_base, verify_request, verify_with_base,
};
use portcullis_jose::{Algorithm, PublicJwk, SigningKey};
use serde_json::json;

/// RFC 9421 B.1.3 test-key-ecc-p256 (SEC1 PEM in the RFC), as PKCS#8 DER.
const ECC_P256_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgUpuF81l+kOxbjf7T4mNSv0r5tN67Gim7rnf6EFpcYDuhRANCAASohVhlUsKs9kcYeM/XsJNbT/4P0t/DQSSOoXvEHgWK8DHOJzfS0wzgYX6FHoPGHvVnnRUYZ2V2SQNdkKdM2ehd";
/// RFC 9421 B.1.3 public key as a JWK.
const ECC_P256_X: &str = "qIVYZVLCrPZHGHjP17CTW0_-D9Lfw0EkjqF7xB4FivA";
const ECC_P256_Y: &str = "Mc4nN9LTDOBhfoUeg8Ye9WedFRhnZXZJA12Qp0zZ6F0";
/// RFC 9421 B.1.4 test-key-ed25519 (PKCS#8 PEM in the RFC).
const ED25519_PKCS8: &str = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF";
const ED25519_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";

const REQUEST_DIGEST_512: &str =
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:";
const RESPONSE_DIGEST_512: &str =
    "sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:";

const B24_INPUT: &str =
    r#"("@status" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-ecc-p256""#;
const B24_SIGNATURE: &str = "wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32oiasw==";
const B26_INPUT: &str = r#"("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;
const B26_SIGNATURE: &str = "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==";

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).expect("base64")
}

/// RFC 9421 B.2 test-request headers.
fn test_request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("example.com"));
    h.insert("date", HeaderValue::from_static("Tue, 20 Apr 2021 02:07:55 GMT"));
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("content-digest", HeaderValue::from_static(REQUEST_DIGEST_512));
    h.insert("content-length", HeaderValue::from_static("18"));
    h
}

/// RFC 9421 B.2 test-response headers.
fn test_response_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("date", HeaderValue::from_static("Tue, 20 Apr 2021 02:07:56 GMT"));
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("content-digest", HeaderValue::from_static(RESPONSE_DIGEST_512));
    h.insert("content-length", HeaderValue::from_static("23"));
    h
}

fn test_request(headers: &HeaderMap) -> RequestView<'_> {
    RequestView {
        method: "POST",
        target_uri: "https://example.com/foo?param=Value&Pet=dog",
        headers,
    }
}

fn ecc_jwk() -> PublicJwk {
    PublicJwk::from_json(&json!({"kty": "EC", "crv": "P-256", "x": ECC_P256_X, "y": ECC_P256_Y})).expect("jwk")
}

fn ed25519_jwk() -> PublicJwk {
    PublicJwk::from_json(&json!({"kty": "OKP", "crv": "Ed25519", "x": ED25519_X})).expect("jwk")
}

#[test]
fn the_rfc_private_keys_match_the_rfc_public_keys() {
    let ecc = SigningKey::from_pkcs8(Algorithm::Es256, &b64(ECC_P256_PKCS8), None).expect("ecc key");
    assert_eq!(ecc.public_jwk().thumbprint(), ecc_jwk().thumbprint());
    let ed = SigningKey::from_pkcs8(Algorithm::EdDsa, &b64(ED25519_PKCS8), None).expect("ed25519 key");
    assert_eq!(ed.public_jwk().thumbprint(), ed25519_jwk().thumbprint());
}

/// RFC 9421 B.2.4: our base equals the RFC's, and the RFC's ECDSA signature verifies over it.
#[test]
fn b_2_4_ecdsa_p256_response() {
    let headers = test_response_headers();
    let response = ResponseView {
        status: 200,
        headers: &headers,
    };
    let params = SignatureParams::parse(B24_INPUT).expect("params");
    let base = signature_base(
        &MessageView::Response {
            response,
            request: None,
        },
        &params,
    )
    .expect("base");
    let expected = concat!(
        "\"@status\": 200\n",
        "\"content-type\": application/json\n",
        "\"content-digest\": sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:\n",
        "\"content-length\": 23\n",
        "\"@signature-params\": (\"@status\" \"content-type\" \"content-digest\" \"content-length\");created=1618884473;keyid=\"test-key-ecc-p256\"",
    );
    assert_eq!(base, expected);
    verify_with_base(Algorithm::Es256, &ecc_jwk(), &base, &b64(B24_SIGNATURE)).expect("RFC signature verifies");

    // The same through the Signature-Input / Signature fields.
    let mut signed = headers.clone();
    signed.insert(
        "signature-input",
        HeaderValue::from_str(&format!("sig-b24={B24_INPUT}")).unwrap(),
    );
    signed.insert(
        "signature",
        HeaderValue::from_str(&format!("sig-b24=:{B24_SIGNATURE}:")).unwrap(),
    );
    let entries = parse_signatures(&signed).expect("parse");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].label, "sig-b24");
    assert_eq!(entries[0].params.serialize(), B24_INPUT);
    assert_eq!(entries[0].signature, b64(B24_SIGNATURE));

    // One altered byte of the base and it no longer verifies.
    let tampered = base.replace("200", "201");
    assert_eq!(
        verify_with_base(Algorithm::Es256, &ecc_jwk(), &tampered, &b64(B24_SIGNATURE)),
        Err(SigError::BadSignature)
    );
    // The body digest of B.2 checks out.
    check_content_digest(RESPONSE_DIGEST_512, br#"{"message": "good dog"}"#).expect("digest");
}

/// RFC 9421 B.2.6: Ed25519 is deterministic, so our signature equals the RFC's byte for byte.
#[test]
fn b_2_6_ed25519_request() {
    let headers = test_request_headers();
    let params = SignatureParams::parse(B26_INPUT).expect("params");
    let base = signature_base(&MessageView::Request(test_request(&headers)), &params).expect("base");
    let expected = concat!(
        "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n",
        "\"@method\": POST\n",
        "\"@path\": /foo\n",
        "\"@authority\": example.com\n",
        "\"content-type\": application/json\n",
        "\"content-length\": 18\n",
        "\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"",
    );
    assert_eq!(base, expected);
    let key = SigningKey::from_pkcs8(Algorithm::EdDsa, &b64(ED25519_PKCS8), Some("test-key-ed25519".into())).unwrap();
    let ours = key.sign_raw(base.as_bytes()).expect("sign");
    assert_eq!(ours, b64(B26_SIGNATURE));
    verify_with_base(Algorithm::EdDsa, &ed25519_jwk(), &base, &ours).expect("verifies");
    verify_with_base(Algorithm::Ed25519, &ed25519_jwk(), &base, &ours).expect("verifies under the RFC 9864 name");
}

/// The RFC's B.2.6 request is a valid RFC 9421 message but not a FAPI one: no tag.
#[test]
fn rfc_request_is_not_a_fapi_request() {
    let mut headers = test_request_headers();
    headers.insert(
        "signature-input",
        HeaderValue::from_str(&format!("sig-b26={B26_INPUT}")).unwrap(),
    );
    headers.insert(
        "signature",
        HeaderValue::from_str(&format!("sig-b26=:{B26_SIGNATURE}:")).unwrap(),
    );
    let keys = |kid: &str| (kid == "test-key-ed25519").then(ed25519_jwk);
    let err = verify_request(
        &test_request(&headers),
        br#"{"hello": "world"}"#,
        1618884473,
        &RequestPolicy::default(),
        &keys,
    )
    .unwrap_err();
    assert_eq!(err, SigError::NoTaggedSignature("fapi-2-request"));
}

/// RFC 9530 §2 / RFC 9421 B.2 digests of `{"hello": "world"}`.
#[test]
fn rfc_9530_content_digest_examples() {
    let body = br#"{"hello": "world"}"#;
    assert_eq!(
        content_digest(body),
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    );
    check_content_digest("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", body).expect("sha-256");
    check_content_digest(REQUEST_DIGEST_512, body).expect("sha-512");
    // Both present: both must match.
    let both = format!("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, {REQUEST_DIGEST_512}");
    check_content_digest(&both, body).expect("both");
    let one_wrong = format!("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, {RESPONSE_DIGEST_512}");
    assert_eq!(
        check_content_digest(&one_wrong, body),
        Err(SigError::DigestMismatch("sha-512"))
    );
    // Unknown algorithms are ignored, but at least one known one is needed.
    check_content_digest(
        "md5=:AAAA:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
        body,
    )
    .expect("ignore md5");
    assert_eq!(
        check_content_digest("md5=:AAAA:", body),
        Err(SigError::DigestNoKnownAlgorithm)
    );
    assert_eq!(
        check_content_digest(
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
            b"{\"hello\": \"World\"}"
        ),
        Err(SigError::DigestMismatch("sha-256"))
    );
    assert!(matches!(
        check_content_digest("sha-256=X48E9q", body),
        Err(SigError::Malformed { .. })
    ));
    assert!(matches!(
        check_content_digest("sha-256=\"X48E9q\"", body),
        Err(SigError::Malformed { .. })
    ));
    assert!(matches!(
        check_content_digest("", body),
        Err(SigError::DigestNoKnownAlgorithm)
    ));
}
