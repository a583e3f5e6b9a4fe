//! private_key_jwt client authentication (RFC 7523, SP 5.3.2.1; AS-SP-24..28, AS-SP-33, AS-SP-71).

use super::*;

#[tokio::test]
async fn client_assertion_audience_must_be_the_issuer_string() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp);
    // AS-SP-25: token endpoint URL, PAR URL, an array (even with the issuer), another URL
    for aud in [
        json!(s.endpoint("token_endpoint")),
        json!(s.endpoint("pushed_authorization_request_endpoint")),
        json!([s.issuer.clone()]),
        json!([s.issuer.clone(), s.endpoint("token_endpoint")]),
        json!("https://fapidev-rs.authlete.net/api/userinfo"),
    ] {
        let auth = rp.auth_with(&s, |c| {
            c.insert("aud".into(), aud.clone());
        });
        let d = expect_error(par_with(&s, &par, auth, &[]).await, 401, &["invalid_client"]).await;
        assert!(d.contains("aud"), "{d}");
    }
}

#[tokio::test]
async fn client_assertion_claims_are_checked() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp);
    let t = now();
    let cases: Vec<(&str, Box<ClaimsEdit>)> = vec![
        // AS-SP-26, AS-MS-08
        (
            "sub",
            Box::new(|c| {
                c.remove("sub");
            }),
        ),
        (
            "iss and sub",
            Box::new(|c| {
                c.insert("sub".into(), json!("someone-else"));
            }),
        ),
        (
            "expired",
            Box::new(move |c| {
                c.insert("exp".into(), json!(t - 300));
            }),
        ),
        (
            "exp",
            Box::new(|c| {
                c.remove("exp");
            }),
        ),
        (
            "jti",
            Box::new(|c| {
                c.remove("jti");
            }),
        ),
        // AS-SP-28: more than 60 s in the future
        (
            "iat",
            Box::new(move |c| {
                c.insert("iat".into(), json!(t + 62));
                c.insert("nbf".into(), json!(t + 62));
                c.insert("exp".into(), json!(t + 122));
            }),
        ),
        (
            "nbf",
            Box::new(move |c| {
                c.insert("nbf".into(), json!(t + 62));
            }),
        ),
    ];
    for (what, edit) in cases {
        let auth = rp.auth_with(&s, |c| edit(c));
        let d = expect_error(par_with(&s, &par, auth, &[]).await, 401, &["invalid_client"]).await;
        assert!(d.contains(what), "{what}: {d}");
    }
    // AS-SP-28: 8 s in the future is accepted
    let auth = rp.auth_with(&s, |c| {
        c.insert("iat".into(), json!(t + 8));
        c.insert("nbf".into(), json!(t + 8));
    });
    assert_eq!(par_with(&s, &par, auth, &[]).await.status(), 201);
}

/// AS-SP-27: a client assertion is good once.
#[tokio::test]
async fn client_assertion_jti_is_single_use() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp);
    let auth = rp.auth(&s);
    assert_eq!(par_with(&s, &par, auth.clone(), &[]).await.status(), 201);
    let d = expect_error(par_with(&s, &par, auth, &[]).await, 401, &["invalid_client"]).await;
    assert!(d.contains("jti"), "{d}");
}

/// AS-SP-95/96: RS256 and none are refused; a wrong key fails; AS-SP-33: no auth at all fails.
#[tokio::test]
async fn client_assertion_algorithm_key_and_presence() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp);
    let claims = Value::Object(rp.claims(&s));
    for alg in ["RS256", "none", "HS256"] {
        let token = format!(
            "{}.{}.{}",
            b64url(json!({"alg": alg}).to_string()),
            b64url(claims.to_string()),
            b64url("x")
        );
        let auth = vec![
            ("client_assertion_type".into(), ASSERTION_TYPE.into()),
            ("client_assertion".into(), token),
        ];
        let d = expect_error(par_with(&s, &par, auth, &[]).await, 401, &["invalid_client"]).await;
        assert!(d.contains(alg), "{d}");
    }
    let stranger = SigningKey::generate(Algorithm::Es256).unwrap();
    let token = stranger.sign_jwt(Algorithm::Es256, None, &rp.claims(&s)).unwrap();
    let auth = vec![
        ("client_assertion_type".into(), ASSERTION_TYPE.into()),
        ("client_assertion".into(), token),
    ];
    expect_error(par_with(&s, &par, auth, &[]).await, 401, &["invalid_client"]).await;
    // no client authentication: 401 with a JSON body (AS-SP-33, AS-SP-45)
    expect_error(par_with(&s, &par, vec![], &[]).await, 401, &["invalid_client"]).await;
    // a wrong assertion type
    let mut auth = rp.auth(&s);
    auth[0].1 = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer".into();
    expect_error(par_with(&s, &par, auth, &[]).await, 401, &["invalid_client"]).await;
    // RFC 6749 §2.3: an assertion and an Authorization header together are refused
    let mut params = par.params.clone();
    params.extend(rp.auth(&s));
    let r = s
        .http
        .post(s.endpoint("pushed_authorization_request_endpoint"))
        .basic_auth(&rp.client_id, Some("secret"))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic "),
        "RFC 6749 §5.2"
    );
    expect_error(r, 401, &["invalid_client"]).await;
    // client_secret_basic is not a FAPI method (AS-SP-23)
    let r = s
        .http
        .post(s.endpoint("pushed_authorization_request_endpoint"))
        .basic_auth(&rp.client_id, Some("secret"))
        .form(&par.params)
        .send()
        .await
        .unwrap();
    expect_error(r, 401, &["invalid_client"]).await;
}

/// AS-SP-71: a client_id parameter naming another client is refused at the token endpoint.
#[tokio::test]
async fn client_id_must_match_the_assertion() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let other = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
    let mut params = code_params(&code, &par.verifier);
    params.push(("client_id".into(), other.client_id.clone()));
    let r = token_request(&s, &rp, &dpop, params).await;
    expect_error(r, 401, &["invalid_client"]).await;
}

/// AS-SP-95: every FAPI algorithm works for client assertions and DPoP proofs (the conformance
/// suite defaults to PS256 DPoP keys; oauth4webapi names Ed25519 keys `Ed25519`).
#[tokio::test]
async fn every_fapi_algorithm_for_assertions_and_proofs() {
    let s = Server::start().await;
    for (client_alg, dpop_alg) in [
        (Algorithm::Ps256, Algorithm::Ps256),
        (Algorithm::EdDsa, Algorithm::Ed25519),
        (Algorithm::Ed25519, Algorithm::EdDsa),
    ] {
        let rp = Rp::register_with(&s, client_alg, json!({})).await;
        let dpop = DpopKey::with(dpop_alg);
        let (t, _) = tokens(&s, &rp, &dpop).await;
        let access = t["access_token"].as_str().unwrap();
        assert_eq!(
            userinfo(&s, &rp, &dpop, access).await.status(),
            200,
            "{client_alg} / {dpop_alg}"
        );
    }
}
