//! One failing case per rule of the profile (HS 5.3.1.2, 5.3.2.2; RFC 9421 §3.2; SP 5.4.1).

use http::{HeaderMap, HeaderValue};
use portcullis_httpsig::{
    ComponentId, RequestPolicy, ResponseView, SigError, sign_request, sign_response, verify_request, verify_response,
};
use portcullis_jose::Algorithm;

use crate::common::{
    BODY, NOW, URI, craft, fapi_components, fapi_params, ids, key, keys_of, request, request_headers, server_key,
};

fn es() -> &'static portcullis_jose::SigningKey {
    key(Algorithm::Es256)
}

fn verify(h: &HeaderMap, body: &[u8]) -> Result<portcullis_httpsig::VerifiedSignature, SigError> {
    verify_at(h, body, NOW)
}

fn verify_at(h: &HeaderMap, body: &[u8], now: i64) -> Result<portcullis_httpsig::VerifiedSignature, SigError> {
    verify_request(
        &request("POST", h),
        body,
        now,
        &RequestPolicy::default(),
        &keys_of(&[key(Algorithm::Es256), key(Algorithm::EdDsa), key(Algorithm::Ps256)]),
    )
}

/// A request carrying a profile-conformant hand-made signature, then `tweak`ed params.
fn crafted(
    dpop: bool,
    components: Vec<ComponentId>,
    build: impl FnOnce(portcullis_httpsig::SignatureParams) -> Result<portcullis_httpsig::SignatureParams, SigError>,
) -> HeaderMap {
    let mut h = request_headers(dpop);
    h.insert(
        "content-digest",
        HeaderValue::from_str(&portcullis_httpsig::content_digest(BODY)).unwrap(),
    );
    craft(&mut h, "POST", components, build, es(), "sig1");
    h
}

#[test]
fn the_crafted_baseline_verifies() {
    // Guards every test below: each differs from this one in a single respect.
    let h = crafted(true, fapi_components(true, true), fapi_params(es()));
    verify(&h, BODY).expect("baseline");
}

#[test]
fn missing_tag() {
    let h = crafted(true, fapi_components(true, true), |p| {
        p.with_created(NOW)?.with_keyid(es().kid())
    });
    assert_eq!(
        verify(&h, BODY).unwrap_err(),
        SigError::NoTaggedSignature("fapi-2-request")
    );
}

#[test]
fn wrong_tag() {
    let h = crafted(true, fapi_components(true, true), |p| {
        p.with_created(NOW)?.with_keyid(es().kid())?.with_tag("fapi-2-response")
    });
    assert_eq!(
        verify(&h, BODY).unwrap_err(),
        SigError::NoTaggedSignature("fapi-2-request")
    );
}

#[test]
fn two_fapi_request_signatures_are_ambiguous() {
    let mut h = crafted(true, fapi_components(true, true), fapi_params(es()));
    craft(
        &mut h,
        "POST",
        fapi_components(true, true),
        fapi_params(es()),
        es(),
        "sig2",
    );
    let err = verify(&h, BODY).unwrap_err();
    assert_eq!(
        err,
        SigError::AmbiguousTag {
            tag: "fapi-2-request",
            count: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "2 signatures have tag=\"fapi-2-request\"; exactly one is accepted"
    );
}

#[test]
fn each_required_component_must_be_covered() {
    for missing in ["@method", "@target-uri", "authorization", "dpop", "content-digest"] {
        let components: Vec<ComponentId> = fapi_components(true, true)
            .into_iter()
            .filter(|c| c.name() != missing)
            .collect();
        let h = crafted(true, components, fapi_params(es()));
        let err = verify(&h, BODY).unwrap_err();
        assert_eq!(err, SigError::NotCovered(format!("\"{missing}\"")), "{missing}");
        assert_eq!(err.to_string(), format!("the signature does not cover \"{missing}\""));
    }
}

#[test]
fn dpop_is_required_only_when_present_and_digest_only_with_a_body() {
    let mut h = request_headers(false);
    craft(
        &mut h,
        "POST",
        fapi_components(false, false),
        fapi_params(es()),
        es(),
        "sig1",
    );
    verify(&h, b"").expect("no DPoP header, no body");
    // The same signature with a DPoP header added afterwards.
    h.insert("dpop", HeaderValue::from_static("x.y.z"));
    assert_eq!(verify(&h, b"").unwrap_err(), SigError::NotCovered("\"dpop\"".into()));
}

#[test]
fn a_parameterised_component_does_not_count_as_covering() {
    let mut components = fapi_components(true, false);
    components.retain(|c| c.name() != "authorization");
    components.push(ComponentId::new("authorization").unwrap().with_key("x").unwrap());
    let mut h = request_headers(true);
    // A value that parses as a dictionary, so the key="x" component has a value to sign.
    h.insert("authorization", HeaderValue::from_static("x=1"));
    craft(&mut h, "POST", components, fapi_params(es()), es(), "sig1");
    assert_eq!(
        verify(&h, b"").unwrap_err(),
        SigError::NotCovered("\"authorization\"".into())
    );
}

#[test]
fn tampered_body_fails_the_digest() {
    let h = crafted(true, fapi_components(true, true), fapi_params(es()));
    assert_eq!(
        verify(&h, br#"{"amount":"99.00"}"#).unwrap_err(),
        SigError::DigestMismatch("sha-256")
    );
}

#[test]
fn body_without_content_digest_field() {
    let mut h = request_headers(true);
    craft(
        &mut h,
        "POST",
        fapi_components(true, false),
        fapi_params(es()),
        es(),
        "sig1",
    );
    assert_eq!(
        verify(&h, BODY).unwrap_err(),
        SigError::NotCovered("\"content-digest\"".into())
    );
}

#[test]
fn created_missing() {
    let h = crafted(true, fapi_components(true, true), |p| {
        p.with_keyid(es().kid())?.with_tag("fapi-2-request")
    });
    assert_eq!(verify(&h, BODY).unwrap_err(), SigError::CreatedMissing);
}

#[test]
fn created_too_old_and_too_far_ahead() {
    let h = crafted(true, fapi_components(true, true), fapi_params(es()));
    let err = verify_at(&h, BODY, NOW + 95).unwrap_err();
    assert_eq!(err, SigError::CreatedTooOld { age: 95, max: 60 });
    assert_eq!(err.to_string(), "created is 95 s old; at most 60 s accepted");
    verify_at(&h, BODY, NOW + 60).expect("60 s is still accepted");
    verify_at(&h, BODY, NOW - 5).expect("5 s of skew is accepted");
    let err = verify_at(&h, BODY, NOW - 6).unwrap_err();
    assert_eq!(err, SigError::CreatedInFuture { ahead: 6, max: 5 });
}

#[test]
fn expires_passed() {
    let h = crafted(true, fapi_components(true, true), |p| {
        p.with_created(NOW)?
            .with_expires(NOW + 10)?
            .with_keyid(es().kid())?
            .with_tag("fapi-2-request")
    });
    verify_at(&h, BODY, NOW + 10).expect("not yet expired");
    assert_eq!(verify_at(&h, BODY, NOW + 11).unwrap_err(), SigError::Expired(1));
}

#[test]
fn keyid_missing_or_unknown() {
    let h = crafted(true, fapi_components(true, true), |p| {
        p.with_created(NOW)?.with_tag("fapi-2-request")
    });
    assert_eq!(verify(&h, BODY).unwrap_err(), SigError::KeyIdMissing);
    let h = crafted(true, fapi_components(true, true), |p| {
        p.with_created(NOW)?.with_keyid("nobody")?.with_tag("fapi-2-request")
    });
    assert_eq!(verify(&h, BODY).unwrap_err(), SigError::UnknownKeyId("nobody".into()));
}

#[test]
fn alg_parameter_outside_fapi_is_refused() {
    for alg in [
        "rsa-pss-sha512",
        "rsa-v1_5-sha256",
        "hmac-sha256",
        "ecdsa-p384-sha384",
        "none",
        "ES256",
    ] {
        let h = crafted(true, fapi_components(true, true), |p| {
            p.with_created(NOW)?
                .with_keyid(es().kid())?
                .with_alg(alg)?
                .with_tag("fapi-2-request")
        });
        assert_eq!(
            verify(&h, BODY).unwrap_err(),
            SigError::AlgorithmNotAllowed(alg.into()),
            "{alg}"
        );
    }
    // The allowed one with the matching key verifies.
    let h = crafted(true, fapi_components(true, true), |p| {
        p.with_created(NOW)?
            .with_keyid(es().kid())?
            .with_alg("ecdsa-p256-sha256")?
            .with_tag("fapi-2-request")
    });
    verify(&h, BODY).expect("ecdsa-p256-sha256 with an EC key");
}

#[test]
fn alg_parameter_must_fit_the_key() {
    let h = crafted(true, fapi_components(true, true), |p| {
        p.with_created(NOW)?
            .with_keyid(es().kid())?
            .with_alg("ed25519")?
            .with_tag("fapi-2-request")
    });
    let err = verify(&h, BODY).unwrap_err();
    assert_eq!(
        err,
        SigError::AlgorithmKeyMismatch {
            alg: "ed25519".into(),
            key: "EC P-256"
        }
    );
    // And the other way round: an Ed25519 key announced as ECDSA.
    let ed = key(Algorithm::EdDsa);
    let mut h = request_headers(true);
    h.insert(
        "content-digest",
        HeaderValue::from_str(&portcullis_httpsig::content_digest(BODY)).unwrap(),
    );
    craft(
        &mut h,
        "POST",
        fapi_components(true, true),
        |p| {
            p.with_created(NOW)?
                .with_keyid(ed.kid())?
                .with_alg("ecdsa-p256-sha256")?
                .with_tag("fapi-2-request")
        },
        ed,
        "sig1",
    );
    assert!(matches!(
        verify(&h, BODY).unwrap_err(),
        SigError::AlgorithmKeyMismatch { .. }
    ));
}

#[test]
fn signature_bytes_altered() {
    let mut h = crafted(true, fapi_components(true, true), fapi_params(es()));
    let sig = h.get("signature").unwrap().to_str().unwrap().to_owned();
    // Flip one base64 character inside the byte sequence.
    let flipped = if sig.as_bytes()[10] == b'A' {
        sig.replacen('A', "B", 1)
    } else {
        let mut b = sig.into_bytes();
        b[10] = b'A';
        String::from_utf8(b).unwrap()
    };
    h.insert("signature", HeaderValue::from_str(&flipped).unwrap());
    assert_eq!(verify(&h, BODY).unwrap_err(), SigError::BadSignature);
}

#[test]
fn covered_header_altered_after_signing() {
    let mut h = crafted(true, fapi_components(true, true), fapi_params(es()));
    h.insert("authorization", HeaderValue::from_static("DPoP someone-elses-token"));
    assert_eq!(verify(&h, BODY).unwrap_err(), SigError::BadSignature);
    // A different target URI than the one signed.
    let h = crafted(true, fapi_components(true, true), fapi_params(es()));
    let other = portcullis_httpsig::RequestView {
        method: "POST",
        target_uri: "https://rs.example.com/accounts/999",
        headers: &h,
    };
    let err = verify_request(&other, BODY, NOW, &RequestPolicy::default(), &keys_of(&[es()])).unwrap_err();
    assert_eq!(err, SigError::BadSignature);
}

#[test]
fn covered_field_absent_from_the_message() {
    let mut components = fapi_components(true, true);
    components.push(ComponentId::new("x-custom").unwrap());
    let mut h = request_headers(true);
    h.insert(
        "content-digest",
        HeaderValue::from_str(&portcullis_httpsig::content_digest(BODY)).unwrap(),
    );
    h.insert("x-custom", HeaderValue::from_static("1"));
    craft(&mut h, "POST", components, fapi_params(es()), es(), "sig1");
    h.remove("x-custom");
    assert_eq!(
        verify(&h, BODY).unwrap_err(),
        SigError::ComponentMissing("\"x-custom\"".into())
    );
}

#[test]
fn malformed_fields() {
    let base = crafted(true, fapi_components(true, true), fapi_params(es()));
    for (field, value) in [
        ("signature-input", r#"sig1=("@method" "@target-uri"#),
        ("signature-input", r#"sig1="@method";created=1"#),
        ("signature-input", r#"sig1=("@method" 12);created=1"#),
        ("signature-input", r#"sig1=("@Method");created=1"#),
        ("signature-input", r#"sig1=("@method";bs);created=1"#),
        ("signature-input", r#"sig1=("@method");created=1.5"#),
        ("signature", "sig1=AAAA"),
        ("signature", "sig1=:AAAA:;x=1"),
        ("signature", "sig1=(:AAAA:)"),
    ] {
        let mut h = base.clone();
        h.insert(field, HeaderValue::from_static(value));
        let err = verify(&h, BODY).unwrap_err();
        assert!(
            matches!(err, SigError::Malformed { .. } | SigError::InvalidComponent { .. }),
            "{field}: {value}: {err}"
        );
    }
}

#[test]
fn labels_must_pair_up_and_be_unique() {
    let mut h = crafted(true, fapi_components(true, true), fapi_params(es()));
    h.insert("signature", HeaderValue::from_static("other=:AAAA:"));
    assert_eq!(
        verify(&h, BODY).unwrap_err(),
        SigError::InputMissingForLabel("other".into())
    );

    let mut h = crafted(true, fapi_components(true, true), fapi_params(es()));
    h.append(
        "signature-input",
        HeaderValue::from_static(r#"sig2=("@method");created=1"#),
    );
    assert_eq!(
        verify(&h, BODY).unwrap_err(),
        SigError::SignatureMissingForLabel("sig2".into())
    );

    // A second line reusing a label must not replace the first (RFC 8941 would keep the last).
    let mut h = crafted(true, fapi_components(true, true), fapi_params(es()));
    h.append(
        "signature-input",
        HeaderValue::from_static(r#"sig1=("@method");created=1"#),
    );
    assert!(matches!(verify(&h, BODY).unwrap_err(), SigError::DuplicateLabel { .. }));
}

#[test]
fn unsigned_request() {
    let h = request_headers(true);
    assert_eq!(verify(&h, b"").unwrap_err(), SigError::MissingField("Signature-Input"));
}

#[test]
fn response_rules() {
    let (client, server) = (es(), server_key(Algorithm::Es256));
    let mut rq = request_headers(false);
    sign_request(&mut rq, "POST", URI, BODY, client, NOW).unwrap();
    let verified = verify_request(
        &request("POST", &rq),
        BODY,
        NOW,
        &RequestPolicy::default(),
        &keys_of(&[client]),
    )
    .unwrap();
    let req_view = request("POST", &rq);
    let body = b"{}";
    let mut rh = HeaderMap::new();
    sign_response(&mut rh, 200, body, &req_view, true, Some(&verified), server, NOW).unwrap();
    let keys = keys_of(&[server]);
    let check = |rh: &HeaderMap, status: u16, body: &[u8], req_body: bool, now: i64| {
        verify_response(
            &ResponseView { status, headers: rh },
            body,
            &req_view,
            req_body,
            Some("sig1"),
            now,
            &RequestPolicy::default(),
            &keys,
        )
    };
    check(&rh, 200, body, true, NOW).expect("baseline");
    // Status altered (the response claims 201 but was signed as 200).
    assert_eq!(check(&rh, 201, body, true, NOW).unwrap_err(), SigError::BadSignature);
    // Body tampered.
    assert_eq!(
        check(&rh, 200, b"[]", true, NOW).unwrap_err(),
        SigError::DigestMismatch("sha-256")
    );
    // Too old.
    assert!(matches!(
        check(&rh, 200, body, true, NOW + 61).unwrap_err(),
        SigError::CreatedTooOld { .. }
    ));
    // The request signature the response is bound to differs from the one the client sent.
    let mut other_rq = request_headers(false);
    sign_request(&mut other_rq, "POST", URI, BODY, client, NOW + 1).unwrap();
    let other_view = request("POST", &other_rq);
    let err = verify_response(
        &ResponseView {
            status: 200,
            headers: &rh,
        },
        body,
        &other_view,
        true,
        Some("sig1"),
        NOW,
        &RequestPolicy::default(),
        &keys,
    )
    .unwrap_err();
    assert_eq!(err, SigError::BadSignature);
    // A request tag on a response is not a response signature.
    let mut wrong = HeaderMap::new();
    sign_request(&mut wrong, "POST", URI, b"", server, NOW).unwrap_err(); // no Authorization: cannot sign
    wrong.insert("authorization", HeaderValue::from_static("x"));
    sign_request(&mut wrong, "POST", URI, b"", server, NOW).unwrap();
    assert_eq!(
        check(&wrong, 200, b"", false, NOW).unwrap_err(),
        SigError::NoTaggedSignature("fapi-2-response")
    );
    // Missing required response components when the response was signed without request binding.
    let mut unbound = HeaderMap::new();
    sign_response(&mut unbound, 200, body, &req_view, false, None, server, NOW).unwrap();
    assert_eq!(
        check(&unbound, 200, body, true, NOW).unwrap_err(),
        SigError::NotCovered("\"content-digest\";req".into())
    );
}

#[test]
fn components_refused_in_the_wrong_message() {
    // @status in a request, and req in a request.
    for component in [
        ComponentId::new("@status").unwrap(),
        ComponentId::new("@method").unwrap().with_req().unwrap(),
    ] {
        let mut components = fapi_components(true, false);
        components.push(component);
        let params = portcullis_httpsig::SignatureParams::new(components).unwrap();
        let h = request_headers(true);
        let err = params
            .signature_base(&portcullis_httpsig::MessageView::Request(request("POST", &h)))
            .unwrap_err();
        assert!(matches!(err, SigError::InvalidComponent { .. }), "{err}");
    }
    let _ = ids(&["@method"]);
}
