//! Client signs → resource server verifies → resource server signs the response → client
//! verifies, for every FAPI key type.

use http::{HeaderMap, HeaderValue};
use portcullis_httpsig::{
    RequestPolicy, ResponseView, SignOptions, parse_signatures, sign_request, sign_request_with, sign_response,
    verify_request, verify_response, verify_with_base,
};
use portcullis_jose::Algorithm;

use crate::common::{BODY, NOW, URI, key, keys_of, request, request_headers, server_key};

const ALGS: [Algorithm; 3] = [Algorithm::Es256, Algorithm::Ps256, Algorithm::EdDsa];

#[test]
fn request_and_response_round_trip_for_every_algorithm() {
    for alg in ALGS {
        let (client, server) = (key(alg), server_key(alg));
        let mut req_headers = request_headers(true);
        let signed = sign_request(&mut req_headers, "POST", URI, BODY, client, NOW).expect("sign request");
        assert_eq!(signed.label, "sig1");
        assert_eq!(signed.algorithm, alg);
        let input = req_headers.get("signature-input").unwrap().to_str().unwrap();
        assert_eq!(
            input,
            format!(
                r#"sig1=("@method" "@target-uri" "authorization" "dpop" "content-digest");created={NOW};keyid="{}";tag="fapi-2-request""#,
                client.kid()
            )
        );
        assert!(req_headers.contains_key("content-digest"));

        // The resource server, 3 s later.
        let client_keys = keys_of(&[client]);
        let verified = verify_request(
            &request("POST", &req_headers),
            BODY,
            NOW + 3,
            &RequestPolicy::default(),
            &client_keys,
        )
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(verified.label(), "sig1");
        assert_eq!(verified.keyid(), client.kid());
        assert_eq!(verified.algorithm(), alg);
        assert_eq!(verified.base(), signed.base);
        assert_eq!(verified.signature(), signed.signature.as_slice());
        assert_eq!(verified.signature_params(), signed.signature_params);
        assert_eq!(verified.created(), NOW);
        // Evidence: the stored base and signature re-verify on their own.
        verify_with_base(
            verified.algorithm(),
            client.public_jwk(),
            verified.base(),
            verified.signature(),
        )
        .expect("evidence re-verifies");

        let mut resp_headers = HeaderMap::new();
        resp_headers.insert("content-type", HeaderValue::from_static("application/json"));
        let resp_body = br#"{"balance":"42.00"}"#;
        let req_view = request("POST", &req_headers);
        let signed_resp = sign_response(
            &mut resp_headers,
            200,
            resp_body,
            &req_view,
            true,
            Some(&verified),
            server,
            NOW + 3,
        )
        .expect("sign response");
        let resp_input = resp_headers.get("signature-input").unwrap().to_str().unwrap();
        assert_eq!(
            resp_input,
            format!(
                r#"sig1=("@status" "content-digest" "@method";req "@target-uri";req "content-digest";req "signature";req;key="sig1" "signature-input";req;key="sig1");created={};keyid="{}";tag="fapi-2-response""#,
                NOW + 3,
                server.kid()
            )
        );
        // The req components carry the request's values into the response base.
        assert!(signed_resp.base.contains(&format!("\"@target-uri\";req: {URI}\n")));
        assert!(signed_resp.base.contains(&format!(
            "\"signature-input\";req;key=\"sig1\": {}\n",
            verified.signature_params()
        )));

        // The client checks the response.
        let server_keys = keys_of(&[server]);
        let response = ResponseView {
            status: 200,
            headers: &resp_headers,
        };
        let checked = verify_response(
            &response,
            resp_body,
            &req_view,
            true,
            Some("sig1"),
            NOW + 4,
            &RequestPolicy::default(),
            &server_keys,
        )
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(checked.base(), signed_resp.base);
        assert_eq!(checked.keyid(), server.kid());
    }
}

#[test]
fn get_without_body_or_dpop_covers_only_the_minimum() {
    for alg in ALGS {
        let client = key(alg);
        let mut h = request_headers(false);
        sign_request(&mut h, "GET", URI, b"", client, NOW).expect("sign");
        assert!(!h.contains_key("content-digest"));
        let entries = parse_signatures(&h).unwrap();
        let names: Vec<String> = entries[0].params.components().iter().map(|c| c.to_string()).collect();
        assert_eq!(names, [r#""@method""#, r#""@target-uri""#, r#""authorization""#]);
        let verified = verify_request(
            &request("GET", &h),
            b"",
            NOW,
            &RequestPolicy::default(),
            &keys_of(&[client]),
        )
        .expect("verify");

        // An unsigned-request response: no signature;req components, no request digest.
        let mut rh = HeaderMap::new();
        let server = server_key(alg);
        let req_view = request("GET", &h);
        sign_response(&mut rh, 204, b"", &req_view, false, None, server, NOW).expect("sign response");
        let resp = ResponseView {
            status: 204,
            headers: &rh,
        };
        verify_response(
            &resp,
            b"",
            &req_view,
            false,
            None,
            NOW,
            &RequestPolicy::default(),
            &keys_of(&[server]),
        )
        .expect("verify response");
        // And a client that did sign may still insist on the binding.
        let err = verify_response(
            &resp,
            b"",
            &req_view,
            false,
            Some(verified.label()),
            NOW,
            &RequestPolicy::default(),
            &keys_of(&[server]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"the signature does not cover "signature";req;key="sig1""#
        );
    }
}

#[test]
fn alg_parameter_is_added_on_request_for_registry_algorithms_only() {
    let options = SignOptions {
        include_alg: true,
        ..SignOptions::default()
    };
    for (alg, expected) in [
        (Algorithm::Es256, Some("ecdsa-p256-sha256")),
        (Algorithm::EdDsa, Some("ed25519")),
        (Algorithm::Ps256, None),
    ] {
        let client = key(alg);
        let mut h = request_headers(true);
        sign_request_with(&mut h, "POST", URI, BODY, client, NOW, &options).expect("sign");
        let entries = parse_signatures(&h).unwrap();
        assert_eq!(entries[0].params.alg(), expected);
        verify_request(
            &request("POST", &h),
            BODY,
            NOW,
            &RequestPolicy::default(),
            &keys_of(&[client]),
        )
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
}

#[test]
fn several_signature_lines_and_labels_are_read() {
    // A foreign signature on its own line does not disturb the FAPI one.
    let client = key(Algorithm::Es256);
    let mut h = request_headers(false);
    h.append(
        "signature-input",
        HeaderValue::from_static(r#"other=("@method");created=1"#),
    );
    h.append("signature", HeaderValue::from_static("other=:AAAA:"));
    sign_request(&mut h, "GET", URI, b"", client, NOW).expect("sign");
    assert_eq!(h.get_all("signature-input").iter().count(), 2);
    assert_eq!(parse_signatures(&h).unwrap().len(), 2);
    verify_request(
        &request("GET", &h),
        b"",
        NOW,
        &RequestPolicy::default(),
        &keys_of(&[client]),
    )
    .expect("verify");
    // Signing again under a label already present is refused.
    assert!(sign_request(&mut h, "GET", URI, b"", client, NOW).is_err());
}

/// A resource server binds the request's `Content-Digest` (`;req`) when the request sent one it
/// can cover, and leaves it out, rather than failing the answer, when there is none or it is
/// malformed.
#[test]
fn response_binding_of_the_request_digest() {
    let sign = |digest: Option<&'static [u8]>| {
        let mut h = request_headers(false);
        if let Some(d) = digest {
            h.insert("content-digest", HeaderValue::from_bytes(d).unwrap());
        }
        let mut resp = HeaderMap::new();
        portcullis_httpsig::sign_response_binding_digest(
            &mut resp,
            200,
            b"{}",
            &request("POST", &h),
            true,
            None,
            server_key(Algorithm::Es256),
            NOW,
        )
        .unwrap();
        resp["signature-input"].to_str().unwrap().to_owned()
    };
    let digest = portcullis_httpsig::content_digest(BODY);
    let bound = sign(Some(Box::leak(digest.into_bytes().into_boxed_slice())));
    assert!(bound.contains("\"content-digest\";req"), "{bound}");
    for unusable in [None, Some(&b"sha-256=\xff"[..])] {
        let input = sign(unusable);
        assert!(
            !input.contains("\"content-digest\";req") && input.contains("\"@status\""),
            "{input}"
        );
    }
}
