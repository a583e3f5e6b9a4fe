//! Whatever arrives from the network, the protocol's parsers refuse it with an error instead of
//! panicking: DPoP proofs, registration metadata, `htu` values.

use portcullis_core::dpop::{DpopNonces, DpopRequest, check_proof, same_target};
use portcullis_core::registration::validate_metadata;
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        Just(json!("https://rp.example/cb")),
        Just(json!("private_key_jwt")),
        Just(json!(["code"])),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("redirect_uris".to_owned()),
                    Just("jwks".to_owned()),
                    Just("jwks_uri".to_owned()),
                    Just("grant_types".to_owned()),
                    Just("response_types".to_owned()),
                    Just("token_endpoint_auth_method".to_owned()),
                    Just("scope".to_owned()),
                    Just("keys".to_owned()),
                    "[a-z_]{1,12}",
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
    fn dpop_proofs_never_panic(headers in prop::collection::vec(".{0,200}", 0..3), method in "[A-Z]{0,6}") {
        let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let req = DpopRequest { headers: &refs, method: &method, url: "https://as.example/token", access_token: Some("t") };
        prop_assert!(check_proof(&req, 1_800_000_000, &DpopNonces::new(b"k"), true).is_err());
    }

    #[test]
    fn registration_metadata_never_panics(v in json_value()) {
        let _ = validate_metadata(&v, &["openid".to_owned()]);
    }

    #[test]
    fn htu_comparison_never_panics(a in ".{0,80}", b in ".{0,80}") {
        let _ = same_target(&a, &b);
    }
}
