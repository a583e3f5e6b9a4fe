//! Authorization codes, the token endpoint and refresh (AS-SP-60..92).

use super::*;

/// AS-SP-64: a replayed code fails with invalid_grant and revokes what the first use issued.
#[tokio::test]
async fn code_replay_revokes_the_grant() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
    let t: Value = token_request(&s, &rp, &dpop, code_params(&code, &par.verifier))
        .await
        .json()
        .await
        .unwrap();
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&s, &rp, &dpop, access).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let r = token_request(&s, &rp, &dpop, code_params(&code, &par.verifier)).await;
    expect_error(r, 400, &["invalid_grant"]).await;
    assert_eq!(
        userinfo(&s, &rp, &dpop, access).await.status(),
        401,
        "access token revoked"
    );
    let mut params = vec![("grant_type".to_owned(), "refresh_token".to_owned())];
    params.push(("refresh_token".into(), t["refresh_token"].as_str().unwrap().into()));
    expect_error(token_request(&s, &rp, &dpop, params).await, 400, &["invalid_grant"]).await;
}

/// AS-SP-60/65: code bound to client, redirect_uri and PKCE verifier.
#[tokio::test]
async fn code_binding_and_pkce() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let other = Rp::register(&s).await;
    let dpop = DpopKey::new();
    // another client
    let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
    expect_error(
        token_request(&s, &other, &dpop, code_params(&code, &par.verifier)).await,
        400,
        &["invalid_grant"],
    )
    .await;
    // and the rightful client can still redeem it
    assert_eq!(
        token_request(&s, &rp, &dpop, code_params(&code, &par.verifier))
            .await
            .status(),
        200
    );
    // missing verifier, wrong verifier, malformed verifier, wrong redirect_uri
    let (wrong, _) = pkce();
    let cases: Vec<Box<ParamsEdit>> = vec![
        Box::new(|p| p.retain(|(k, _)| k != "code_verifier")),
        Box::new(move |p| p[3].1 = wrong.clone()),
        Box::new(|p| p[3].1 = "short".into()),
        Box::new(|p| p[2].1 = REDIRECT_URI_2.into()),
    ];
    for edit in cases {
        let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
        let mut params = code_params(&code, &par.verifier);
        edit(&mut params);
        expect_error(token_request(&s, &rp, &dpop, params).await, 400, &["invalid_grant"]).await;
    }
    // a 128-character verifier from the whole RFC 7636 alphabet works
    let verifier: String =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".repeat(2)[..128].to_owned();
    let challenge = portcullis_jose::sha256_b64url(&verifier);
    let par = Par::new(&rp).set("code_challenge", &challenge);
    let (code, _) = authorize(&s, &rp, par).await;
    assert_eq!(
        token_request(&s, &rp, &dpop, code_params(&code, &verifier))
            .await
            .status(),
        200
    );
}

/// AS-SP-63: codes live at most the configured lifetime.
#[tokio::test]
async fn expired_code_is_refused() {
    let s = Server::start_with(&[("PORTCULLIS_TOKENS_CODE_LIFETIME", "1")]).await;
    let rp = Rp::register(&s).await;
    let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let d = expect_error(
        token_request(&s, &rp, &DpopKey::new(), code_params(&code, &par.verifier)).await,
        400,
        &["invalid_grant"],
    )
    .await;
    assert!(d.contains("expired"), "{d}");
}

/// AS-SP-24/68/69/72/79: the token endpoint's refusals.
#[tokio::test]
async fn token_endpoint_refusals() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let te = s.endpoint("token_endpoint");
    let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
    // no DPoP proof: no bearer fallback
    let mut params = code_params(&code, &par.verifier);
    params.extend(rp.auth(&s));
    let r = s.post_form(&te, &params, &[]).await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    expect_error(r, 400, &["invalid_dpop_proof", "invalid_request"]).await;
    // no client authentication: 401 with JSON
    let key = DpopKey::new();
    let nonce = dpop_nonce(&s, &rp).await;
    let r = s
        .post_form(
            &te,
            &code_params(&code, &par.verifier),
            &[key.proof("POST", &te, Some(&nonce), None)],
        )
        .await;
    expect_error(r, 401, &["invalid_client"]).await;
    // the password grant and unknown grants
    for g in ["password", "client_credentials", "implicit"] {
        let r = token_request(&s, &rp, &key, vec![("grant_type".into(), g.into())]).await;
        expect_error(r, 400, &["unsupported_grant_type"]).await;
    }
    let r = token_request(&s, &rp, &key, vec![]).await;
    expect_error(r, 400, &["invalid_request"]).await;
    // the token endpoint nonce challenge carries exactly one DPoP-Nonce
    let mut params = code_params(&code, &par.verifier);
    params.extend(rp.auth(&s));
    let r = s.post_form(&te, &params, &[key.proof("POST", &te, None, None)]).await;
    assert_eq!(r.headers().get_all("dpop-nonce").iter().count(), 1);
    expect_error(r, 400, &["use_dpop_nonce"]).await;
    // and the code still works after all of that
    assert_eq!(
        token_request(&s, &rp, &key, code_params(&code, &par.verifier))
            .await
            .status(),
        200
    );
}

/// AS-SP-28/81 (catalogue rows 12-14): proofs with iat -10 s / +8 s and extra nbf/exp claims.
#[tokio::test]
async fn token_endpoint_dpop_clock_skew_and_extra_claims() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let te = s.endpoint("token_endpoint");
    for (shift, extra) in [(-10i64, false), (8, false), (0, true)] {
        let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
        let key = DpopKey::new();
        let nonce = dpop_nonce(&s, &rp).await;
        let mut claims = key.claims("POST", &te, Some(&nonce), None);
        claims["iat"] = json!(now() + shift);
        if extra {
            claims["nbf"] = json!(now());
            claims["exp"] = json!(now() + 300);
        }
        let mut params = code_params(&code, &par.verifier);
        params.extend(rp.auth(&s));
        let r = s.post_form(&te, &params, &[key.sign(&key.header(), &claims)]).await;
        assert_eq!(
            r.status(),
            200,
            "iat shift {shift}, extra {extra}: {}",
            r.text().await.unwrap()
        );
    }
}

#[tokio::test]
async fn refresh_with_a_new_dpop_key_binds_the_new_token_to_it() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let first = DpopKey::new();
    let (t, _) = tokens(&s, &rp, &first).await;
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let (_, first_claims) = id_token_claims(&s, &jwks(&s).await, t["id_token"].as_str().unwrap());
    let second = DpopKey::new();
    let refresh_params = || {
        vec![
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("refresh_token".to_owned(), rt.clone()),
        ]
    };
    let r = token_request(&s, &rp, &second, refresh_params()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t2: Value = r.json().await.unwrap();
    assert_eq!(t2["token_type"], "DPoP");
    // AS-SP-89: not rotated
    assert!(t2.get("refresh_token").is_none_or(|v| v == rt.as_str()));
    let access2 = t2["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&s, &rp, &second, access2).await.status(), 200);
    assert_eq!(
        userinfo(&s, &rp, &first, access2).await.status(),
        401,
        "bound to the new key"
    );
    // the id_token from a refresh keeps iss, sub, aud, auth_time, azp (AS-SP-101)
    let (_, c2) = id_token_claims(&s, &jwks(&s).await, t2["id_token"].as_str().unwrap());
    for k in ["iss", "sub", "aud", "auth_time", "azp"] {
        assert_eq!(c2[k], first_claims[k], "{k}");
    }
    // the same refresh token keeps working
    assert_eq!(
        token_request(&s, &rp, &DpopKey::new(), refresh_params()).await.status(),
        200
    );
}

#[tokio::test]
async fn refresh_refusals() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let other = Rp::register(&s).await;
    let key = DpopKey::new();
    let (t, _) = tokens(&s, &rp, &key).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let te = s.endpoint("token_endpoint");
    let base = vec![
        ("grant_type".to_owned(), "refresh_token".to_owned()),
        ("refresh_token".to_owned(), rt.to_owned()),
    ];
    // AS-SP-90: without client authentication
    let nonce = dpop_nonce(&s, &rp).await;
    let r = s
        .post_form(&te, &base, &[key.proof("POST", &te, Some(&nonce), None)])
        .await;
    expect_error(r, 401, &["invalid_client"]).await;
    // AS-SP-91: without a proof
    let mut params = base.clone();
    params.extend(rp.auth(&s));
    expect_error(
        s.post_form(&te, &params, &[]).await,
        400,
        &["invalid_dpop_proof", "invalid_request"],
    )
    .await;
    // another client's refresh token
    expect_error(
        token_request(&s, &other, &key, base.clone()).await,
        400,
        &["invalid_grant"],
    )
    .await;
    // AS-SP-92: no widening
    let mut params = base.clone();
    params.push(("scope".into(), "openid offline_access".into()));
    expect_error(token_request(&s, &rp, &key, params).await, 400, &["invalid_scope"]).await;
    // a narrower scope is fine
    let mut params = base.clone();
    params.push(("scope".into(), "openid".into()));
    let r = token_request(&s, &rp, &key, params).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["scope"], "openid");
    // unknown refresh token
    let params = vec![
        ("grant_type".to_owned(), "refresh_token".to_owned()),
        ("refresh_token".to_owned(), "nope".to_owned()),
    ];
    expect_error(token_request(&s, &rp, &key, params).await, 400, &["invalid_grant"]).await;
}

/// Issue 10: server nonces stay valid across a restart (they derive from a stored secret).
#[tokio::test]
async fn dpop_nonce_survives_a_restart() {
    let mut s = Server::start().await;
    let rp = Rp::register(&s).await;
    let nonce = dpop_nonce(&s, &rp).await;
    s.restart().await;
    let key = DpopKey::new();
    let par_ep = s.endpoint("pushed_authorization_request_endpoint");
    let r = Par::new(&rp)
        .send(&s, &rp, Some(key.proof("POST", &par_ep, Some(&nonce), None)))
        .await;
    assert_eq!(r.status(), 201);
}
