//! Whatever arrives from the network, parsing returns an error instead of panicking.

use portcullis_jose::{CompactJws, Jwks, PublicJwk, b64url};
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[A-Za-z0-9_-]{0,64}".prop_map(Value::String),
        Just(json!("P-256")),
        Just(json!("EC")),
        Just(json!("RSA")),
        Just(json!("OKP")),
        Just(json!("Ed25519")),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("kty".to_owned()),
                    Just("crv".to_owned()),
                    Just("x".to_owned()),
                    Just("y".to_owned()),
                    Just("n".to_owned()),
                    Just("e".to_owned()),
                    Just("alg".to_owned()),
                    Just("kid".to_owned()),
                    Just("keys".to_owned()),
                    "[a-z]{1,4}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn compact_jws_never_panics(s in ".{0,300}") {
        let _ = CompactJws::parse(&s);
    }

    #[test]
    fn structured_jws_never_panics(header in json_value(), payload in json_value(), sig in prop::collection::vec(any::<u8>(), 0..80)) {
        let token = format!("{}.{}.{}", b64url(header.to_string()), b64url(payload.to_string()), b64url(sig));
        if let Ok(jws) = CompactJws::parse(&token) {
            let _ = jws.claims::<Value>();
        }
    }

    #[test]
    fn jwk_parsing_never_panics(v in json_value()) {
        let _ = PublicJwk::from_json(&v);
        let _ = Jwks::from_json(&v);
    }
}
