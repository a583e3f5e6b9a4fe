//! The pushed authorization request endpoint (RFC 9126; AS-SP-32..46).

use super::*;

/// AS-SP-39/40/41: 201, a request_uri with at least 32 random bytes, expires_in under 600 s.
#[tokio::test]
async fn par_response_shape() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let r = Par::new(&rp).send(&s, &rp, None).await;
    assert_eq!(r.status(), 201);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let b: Value = r.json().await.unwrap();
    let uri = b["request_uri"].as_str().unwrap();
    let random = uri
        .strip_prefix("urn:ietf:params:oauth:request_uri:")
        .expect("RFC 9126 prefix");
    assert!(random.len() >= 43, "{uri}");
    let e = b["expires_in"].as_i64().unwrap();
    assert!((30..600).contains(&e), "{e}");
}

#[tokio::test]
async fn par_refusals_are_400_json_with_the_right_error() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let base = || Par::new(&rp);
    let cases: Vec<(&str, Par, &[&str])> = vec![
        // AS-SP-34
        (
            "request_uri",
            base().set("request_uri", "urn:ietf:params:oauth:request_uri:abc"),
            &["invalid_request"],
        ),
        // AS-SP-48
        ("response_type", base().remove("response_type"), &["invalid_request"]),
        (
            "response_type",
            base().set("response_type", "code id_token"),
            &["unsupported_response_type"],
        ),
        (
            "response_type",
            base().set("response_type", "token"),
            &["unsupported_response_type"],
        ),
        // AS-SP-36/37
        ("redirect_uri", base().remove("redirect_uri"), &["invalid_request"]),
        (
            "redirect_uri",
            base().set("redirect_uri", "https://client.example.org/cb/other"),
            &["invalid_request"],
        ),
        (
            "redirect_uri",
            base().set("redirect_uri", "https://attacker.example/cb"),
            &["invalid_request"],
        ),
        // AS-SP-59
        ("code_challenge", base().remove("code_challenge"), &["invalid_request"]),
        (
            "code_challenge_method",
            base().remove("code_challenge_method"),
            &["invalid_request"],
        ),
        (
            "plain",
            base().set("code_challenge_method", "plain"),
            &["invalid_request"],
        ),
        (
            "code_challenge",
            base().set("code_challenge", "short"),
            &["invalid_request"],
        ),
        // RFC 6749 §3.3
        ("scope", base().set("scope", "openid admin"), &["invalid_scope"]),
        (
            "response_mode",
            base().set("response_mode", "fragment"),
            &["invalid_request"],
        ),
    ];
    for (what, par, errors) in cases {
        let d = expect_error(par.send(&s, &rp, None).await, 400, errors).await;
        assert!(d.contains(what), "{what}: {d}");
    }
    // RFC 6749 §3.1: a parameter sent twice
    let mut par = base();
    par.params.push(("scope".into(), "openid".into()));
    let d = expect_error(par.send(&s, &rp, None).await, 400, &["invalid_request"]).await;
    assert!(d.contains("more than once"), "{d}");
    // AS-SP-32: other methods
    let r = s
        .http
        .get(s.endpoint("pushed_authorization_request_endpoint"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = s
        .http
        .put(s.endpoint("pushed_authorization_request_endpoint"))
        .form(&base().params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // not form-encoded
    let r = s
        .http
        .post(s.endpoint("pushed_authorization_request_endpoint"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, &["invalid_request"]).await;
}

/// AS-SP-82/83: a DPoP proof at PAR without the server nonce gets use_dpop_nonce with exactly
/// one DPoP-Nonce header; the proof with the nonce is accepted.
#[tokio::test]
async fn par_dpop_nonce_challenge() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let par_ep = s.endpoint("pushed_authorization_request_endpoint");
    let r = Par::new(&rp)
        .send(&s, &rp, Some(dpop.proof("POST", &par_ep, None, None)))
        .await;
    let nonces: Vec<_> = r
        .headers()
        .get_all("dpop-nonce")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(nonces.len(), 1);
    assert!(nonces[0].bytes().all(|b| b.is_ascii_graphic() && b != b'"'), "NQCHAR");
    expect_error(r, 400, &["use_dpop_nonce"]).await;
    let r = Par::new(&rp)
        .send(&s, &rp, Some(dpop.proof("POST", &par_ep, Some(&nonces[0]), None)))
        .await;
    assert_eq!(r.status(), 201);
    // a made-up nonce is refused the same way
    let r = Par::new(&rp)
        .send(&s, &rp, Some(dpop.proof("POST", &par_ep, Some("made-up"), None)))
        .await;
    expect_error(r, 400, &["use_dpop_nonce"]).await;
}

/// AS-SP-46: dpop_jkt and the PAR proof must name the same key.
#[tokio::test]
async fn par_dpop_jkt_mismatch_is_refused() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let nonce = dpop_nonce(&s, &rp).await;
    let par_ep = s.endpoint("pushed_authorization_request_endpoint");
    let wrong: Vec<u8> = portcullis_jose::b64url_decode(&dpop.jkt())
        .unwrap()
        .iter()
        .map(|b| b ^ 0x5a)
        .collect();
    let par = Par::new(&rp).set("dpop_jkt", &b64url(wrong));
    let r = par
        .send(&s, &rp, Some(dpop.proof("POST", &par_ep, Some(&nonce), None)))
        .await;
    expect_error(r, 400, &["invalid_request", "invalid_dpop_proof"]).await;
}

/// AS-SP-67 (catalogue rows 16-19): the code is bound to the PAR key or dpop_jkt.
#[tokio::test]
async fn code_is_bound_to_the_dpop_key_named_at_par() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par_ep = s.endpoint("pushed_authorization_request_endpoint");
    // proof at PAR with key A, token with key B: refused
    let a = DpopKey::new();
    let nonce = dpop_nonce(&s, &rp).await;
    let par = Par::new(&rp);
    let r = par
        .send(&s, &rp, Some(a.proof("POST", &par_ep, Some(&nonce), None)))
        .await;
    assert_eq!(r.status(), 201);
    let request_uri = r.json::<Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let cb = Browser::default().run(&s, &rp.client_id, &request_uri, "allow").await;
    let code = query(&cb)["code"].clone();
    let r = token_request(&s, &rp, &DpopKey::new(), code_params(&code, &par.verifier)).await;
    expect_error(r, 400, &["invalid_grant"]).await;
    // dpop_jkt of key A, token with key B: refused; with key A: accepted
    for (use_a, ok) in [(false, false), (true, true)] {
        let a = DpopKey::new();
        let (code, par) = authorize(&s, &rp, Par::new(&rp).set("dpop_jkt", &a.jkt())).await;
        let key = if use_a { a } else { DpopKey::new() };
        let r = token_request(&s, &rp, &key, code_params(&code, &par.verifier)).await;
        if ok {
            assert_eq!(r.status(), 200);
        } else {
            expect_error(r, 400, &["invalid_grant"]).await;
        }
    }
    // proof at PAR and dpop_jkt, both key A, token with A: accepted (row 19)
    let a = DpopKey::new();
    let nonce = dpop_nonce(&s, &rp).await;
    let par = Par::new(&rp).set("dpop_jkt", &a.jkt());
    let r = par
        .send(&s, &rp, Some(a.proof("POST", &par_ep, Some(&nonce), None)))
        .await;
    let request_uri = r.json::<Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let cb = Browser::default().run(&s, &rp.client_id, &request_uri, "allow").await;
    let r = token_request(&s, &rp, &a, code_params(&query(&cb)["code"], &par.verifier)).await;
    assert_eq!(r.status(), 200);
}

/// RFC 9126 §2.3: an oversized PAR is 413, and still a JSON object (AS-SP-45).
#[tokio::test]
async fn oversized_par_is_413_json() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp).set("state", &"x".repeat(70_000));
    let r = par.send(&s, &rp, None).await;
    expect_error(r, 413, &["invalid_request"]).await;
}

/// RFC 9449 §8: the nonce is checked before the client assertion is spent, so a client that
/// retries with the same assertion after use_dpop_nonce succeeds.
#[tokio::test]
async fn nonce_retry_may_reuse_the_client_assertion() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let key = DpopKey::new();
    let par_ep = s.endpoint("pushed_authorization_request_endpoint");
    let mut params = Par::new(&rp).params;
    params.extend(rp.auth(&s));
    let r = s
        .post_form(&par_ep, &params, &[key.proof("POST", &par_ep, None, None)])
        .await;
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    expect_error(r, 400, &["use_dpop_nonce"]).await;
    let r = s
        .post_form(&par_ep, &params, &[key.proof("POST", &par_ep, Some(&nonce), None)])
        .await;
    assert_eq!(r.status(), 201);
}
