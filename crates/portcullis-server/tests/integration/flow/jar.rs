//! Signed request objects through PAR (RFC 9101, RFC 9126 §3; FAPI 2.0 Message Signing
//! AS-MS-01..09): verified, then the same checks as form parameters; every defect 400
//! `invalid_request_object`.

use super::*;

/// The claims of a request object carrying `par`'s parameters, valid now.
fn object_claims(s: &Server, rp: &Rp, par: &Par) -> serde_json::Map<String, Value> {
    let t = now();
    let mut c = serde_json::Map::new();
    for (k, v) in &par.params {
        c.insert(k.clone(), json!(v));
    }
    c.insert("iss".into(), json!(rp.client_id));
    c.insert("aud".into(), json!(s.issuer));
    c.insert("nbf".into(), json!(t));
    c.insert("exp".into(), json!(t + 300));
    c
}

fn sign(rp: &Rp, claims: &serde_json::Map<String, Value>, typ: Option<&str>) -> String {
    rp.key.sign_jwt(rp.key.algorithm(), typ, claims).unwrap()
}

/// PAR with only `request` (and client authentication) in the form, plus `extra` form fields.
async fn push(s: &Server, rp: &Rp, request: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut params = vec![("request".to_owned(), request.to_owned())];
    params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    params.extend(rp.auth(s));
    s.post_form(&s.endpoint("pushed_authorization_request_endpoint"), &params, &[])
        .await
}

#[tokio::test]
async fn as_ms_01_request_objects_through_par() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let key = DpopKey::new();
    let par = Par::new(&rp);
    // the happy path: no typ, or oauth-authz-req+jwt in any letter case; parameters outside
    // the object are not used (state comes from the object)
    for typ in [None, Some("OautH-auThZ-REQ+jWt")] {
        let request = sign(&rp, &object_claims(&s, &rp, &par), typ);
        let r = push(&s, &rp, &request, &[("state", "from-outside")]).await;
        assert_eq!(r.status(), 201, "{typ:?}");
        let body: Value = r.json().await.unwrap();
        let cb = Browser::default()
            .run(&s, &rp.client_id, body["request_uri"].as_str().unwrap(), "allow")
            .await;
        let q = query(&cb);
        assert_eq!(q["state"], par.state, "the object's state, not the form's");
        let r = token_request(&s, &rp, &key, code_params(&q["code"], &par.verifier)).await;
        assert_eq!(r.status(), 200, "{typ:?}");
    }
    // an aud array containing the issuer is accepted (AS-MS-02)
    let mut c = object_claims(&s, &rp, &par);
    c.insert("aud".into(), json!([s.issuer, "https://other.example"]));
    assert_eq!(push(&s, &rp, &sign(&rp, &c, None), &[]).await.status(), 201);
}

#[tokio::test]
async fn as_ms_09_request_object_refusals() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let other = Rp::register(&s).await;
    let par = Par::new(&rp);
    let t = now();
    type Edit = Box<dyn Fn(&mut serde_json::Map<String, Value>)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "aud",
            Box::new(|c| drop(c.insert("aud".into(), json!("https://other.example")))),
        ),
        ("aud token endpoint", {
            let te = s.endpoint("token_endpoint");
            Box::new(move |c| drop(c.insert("aud".into(), json!(te.clone()))))
        }),
        ("no exp", Box::new(|c| drop(c.remove("exp")))),
        ("expired", Box::new(move |c| drop(c.insert("exp".into(), json!(t - 1))))),
        ("no nbf", Box::new(|c| drop(c.remove("nbf")))),
        (
            "nbf over 60 min old",
            Box::new(move |c| {
                c.insert("nbf".into(), json!(t - 3601));
                c.insert("exp".into(), json!(t + 60));
            }),
        ),
        (
            "exp over 60 min after nbf",
            Box::new(move |c| drop(c.insert("exp".into(), json!(t + 3601)))),
        ),
        (
            "nbf in the future",
            Box::new(move |c| drop(c.insert("nbf".into(), json!(t + 120)))),
        ),
        (
            "iat in the future",
            Box::new(move |c| drop(c.insert("iat".into(), json!(t + 120)))),
        ),
        ("iss", Box::new(|c| drop(c.insert("iss".into(), json!("someone-else"))))),
        (
            "client_id",
            Box::new(|c| drop(c.insert("client_id".into(), json!("someone-else")))),
        ),
        ("no client_id", Box::new(|c| drop(c.remove("client_id")))),
        (
            "request_uri inside",
            Box::new(|c| drop(c.insert("request_uri".into(), json!("urn:x")))),
        ),
        (
            "sub is the client",
            Box::new(|c| {
                let iss = c["iss"].clone();
                c.insert("sub".into(), iss);
            }),
        ),
    ];
    for (what, edit) in cases {
        let mut c = object_claims(&s, &rp, &par);
        edit(&mut c);
        let r = push(&s, &rp, &sign(&rp, &c, None), &[]).await;
        expect_error(r, 400, &["invalid_request_object"]).await;
        let _ = what;
    }
    let good = object_claims(&s, &rp, &par);
    // another typ; signed by another client's key; alg none; a broken signature
    let r = push(&s, &rp, &sign(&rp, &good, Some("JWT")), &[]).await;
    expect_error(r, 400, &["invalid_request_object"]).await;
    let r = push(
        &s,
        &rp,
        &other.key.sign_jwt(other.key.algorithm(), None, &good).unwrap(),
        &[],
    )
    .await;
    expect_error(r, 400, &["invalid_request_object"]).await;
    let none = format!(
        "{}.{}.",
        b64url(json!({"alg": "none"}).to_string()),
        b64url(Value::Object(good.clone()).to_string())
    );
    let r = push(&s, &rp, &none, &[]).await;
    expect_error(r, 400, &["invalid_request_object"]).await;
    let signed = sign(&rp, &good, None);
    let broken = format!("{}AAAA", &signed[..signed.len() - 4]);
    let r = push(&s, &rp, &broken, &[]).await;
    expect_error(r, 400, &["invalid_request_object"]).await;
    // the object's parameters go through the usual checks (here PKCE)
    let mut c = object_claims(&s, &rp, &par);
    c.insert("code_challenge_method".into(), json!("plain"));
    let r = push(&s, &rp, &sign(&rp, &c, None), &[]).await;
    expect_error(r, 400, &["invalid_request"]).await;
}

/// AS-MS-01: a client registered with require_signed_request_object, or any client on a
/// server that requires them, cannot push plain parameters.
#[tokio::test]
async fn as_ms_01_signed_requests_required() {
    let s = Server::start().await;
    let strict = Rp::register_with(&s, Algorithm::Es256, json!({"require_signed_request_object": true})).await;
    let r = Par::new(&strict).send(&s, &strict, None).await;
    let d = expect_error(r, 400, &["invalid_request"]).await;
    assert!(d.contains("signed request object"), "{d}");
    let par = Par::new(&strict);
    assert_eq!(
        push(
            &s,
            &strict,
            &sign(&strict, &object_claims(&s, &strict, &par), None),
            &[]
        )
        .await
        .status(),
        201
    );
    let lax = Rp::register(&s).await;
    assert_eq!(Par::new(&lax).send(&s, &lax, None).await.status(), 201);

    let s = Server::start_with(&[("PORTCULLIS_CLIENTS_REQUIRE_SIGNED_REQUEST_OBJECT", "true")]).await;
    assert_eq!(s.meta["require_signed_request_object"], json!(true));
    let rp = Rp::register(&s).await;
    let r = Par::new(&rp).send(&s, &rp, None).await;
    expect_error(r, 400, &["invalid_request"]).await;
}

/// OIDC Registration §2: a client that registered `request_object_signing_alg` has request
/// objects of that algorithm only (its other keys do not help).
#[tokio::test]
async fn registered_request_object_signing_alg_is_enforced() {
    let s = Server::start().await;
    let ps256 = SigningKey::generate(Algorithm::Ps256).unwrap();
    let rp = Rp::register_with(&s, Algorithm::Es256, json!({"request_object_signing_alg": "ES256"})).await;
    assert_eq!(rp.registration["request_object_signing_alg"], "ES256");
    let par = Par::new(&rp);
    let claims = object_claims(&s, &rp, &par);
    assert_eq!(push(&s, &rp, &sign(&rp, &claims, None), &[]).await.status(), 201);
    // a PS256 object (from a key the client does not even have registered) is refused for its alg
    let other = ps256.sign_jwt(Algorithm::Ps256, None, &claims).unwrap();
    let r = push(&s, &rp, &other, &[]).await;
    let (status, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request_object"));
    assert!(description.contains("request_object_signing_alg"), "{description}");
    // an algorithm outside FAPI cannot be registered
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth(s.initial_access_token())
        .json(&json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [ps256.public_jwk().to_json()]},
            "request_object_signing_alg": "RS256",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
