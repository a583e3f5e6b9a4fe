//! Arbitrary Signature-Input / Signature / Content-Digest values never panic; they verify or
//! fail with an error.

use http::HeaderValue;
use portcullis_httpsig::{RequestPolicy, SignatureParams, check_content_digest, parse_signatures, verify_request};
use portcullis_jose::Algorithm;
use proptest::prelude::*;

use crate::common::{BODY, NOW, key, keys_of, request, request_headers};

/// Strings built from the structured-field alphabet, so the parser gets deep, not just rejected
/// at the first byte.
fn sfish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9=();:\"@ ,*.?/+_-]{0,120}",
        "sig1=\\((\"[@a-z-]{0,12}\"(;[a-z]{1,4}(=\"[a-z0-9]{0,4}\")?)? ?){0,6}\\)(;[a-z]{1,8}=(\"[a-z0-9-]{0,12}\"|-?[0-9]{1,16}|\\?[01]|[0-9]{1,3}\\.[0-9]{1,4}))*",
        any::<String>(),
    ]
}

fn sig_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "sig1=:[A-Za-z0-9+/=]{0,100}:",
        "[a-z0-9=():, ;\"]{0,60}",
        any::<String>()
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_signature_fields_never_panic(input in sfish(), sig in sig_value(), dpop in any::<bool>(), body in any::<bool>()) {
        let mut h = request_headers(dpop);
        if let (Ok(i), Ok(s)) = (HeaderValue::from_str(&input), HeaderValue::from_str(&sig)) {
            h.insert("signature-input", i);
            h.insert("signature", s);
        }
        let body: &[u8] = if body { BODY } else { b"" };
        let keys = keys_of(&[key(Algorithm::Es256)]);
        let result = verify_request(&request("POST", &h), body, NOW, &RequestPolicy::default(), &keys);
        // Nothing random carries a valid ES256 signature by our key.
        prop_assert!(result.is_err());
        let _ = parse_signatures(&h);
    }

    #[test]
    fn arbitrary_params_and_digests_never_panic(input in sfish()) {
        let _ = SignatureParams::parse(&input);
        let _ = check_content_digest(&input, BODY);
    }

    #[test]
    fn parsed_params_reserialise_stably(input in sfish()) {
        if let Ok(p) = SignatureParams::parse(&input) {
            let again = SignatureParams::parse(&p.serialize()).expect("our own serialisation parses");
            prop_assert_eq!(again.serialize(), p.serialize());
        }
    }
}
