//! Userinfo as a protected resource (AS-SP-103, RS-SP-02..13) and introspection (RFC 7662).

use super::*;

async fn resource_call(s: &Server, scheme: &str, token: &str, proofs: &[String]) -> reqwest::Response {
    let mut req = s
        .http
        .get(s.endpoint("userinfo_endpoint"))
        .header("authorization", format!("{scheme} {token}"));
    for p in proofs {
        req = req.header("dpop", p);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn userinfo_challenges() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let key = DpopKey::new();
    let (t, _) = tokens(&s, &rp, &key).await;
    let token = t["access_token"].as_str().unwrap();
    let ui = s.endpoint("userinfo_endpoint");
    // no credentials: 401, DPoP challenge with algs and a Bearer one (certificate-bound tokens),
    // no error (RFC 6750 §3.1, RFC 9449 §7.1)
    let r = s.http.get(&ui).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let w = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        w.starts_with("DPoP ") && w.contains("algs=") && w.ends_with(", Bearer") && !w.contains("error="),
        "{w}"
    );
    // RS-SP-09: a DPoP-bound token as Bearer, or without a proof; the challenge is for the
    // scheme the request used (RFC 6750 §3, RFC 9449 §7.1)
    for (scheme, proofs, challenge) in [
        ("Bearer", vec![], "Bearer error=\"invalid_token\""),
        (
            "bearer",
            vec![key.proof("GET", &ui, None, Some(token))],
            "Bearer error=\"invalid_token\"",
        ),
        ("DPoP", vec![], "DPoP error=\"invalid_dpop_proof\""),
    ] {
        let r = resource_call(&s, scheme, token, &proofs).await;
        assert_eq!(r.status(), 401, "{scheme}");
        let w = r.headers()["www-authenticate"].to_str().unwrap();
        assert!(w.starts_with(challenge), "{scheme}: {w}");
    }
    // RS-SP-13: a proof without the nonce: 401 use_dpop_nonce with one DPoP-Nonce
    let r = resource_call(&s, "DPoP", token, &[key.proof("GET", &ui, None, Some(token))]).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"use_dpop_nonce\"")
    );
    let nonces: Vec<_> = r
        .headers()
        .get_all("dpop-nonce")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(nonces.len(), 1);
    // RS-SP-02: the scheme in any letter case
    for scheme in ["DPoP", "dpop", "dPoP", "DPOP"] {
        let r = resource_call(
            &s,
            scheme,
            token,
            &[key.proof("GET", &ui, Some(&nonces[0]), Some(token))],
        )
        .await;
        assert_eq!(r.status(), 200, "{scheme}");
    }
    // POST works too (OIDC Core §5.3.1)
    let r = s
        .http
        .post(&ui)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", key.proof("POST", &ui, Some(&nonces[0]), Some(token)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // RS-SP-03: a token in the query is not a credential
    let r = s.http.get(format!("{ui}?access_token={token}")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // an unknown token
    let r = resource_call(
        &s,
        "DPoP",
        "unknown",
        &[key.proof("GET", &ui, Some(&nonces[0]), Some("unknown"))],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

/// The conformance suite's dpop-negative-tests list, against userinfo (RS-SP-07/08/10/12).
#[tokio::test]
async fn userinfo_dpop_negative_tests() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let key = DpopKey::new();
    let (t, _) = tokens(&s, &rp, &key).await;
    let token = t["access_token"].as_str().unwrap().to_owned();
    let ui = s.endpoint("userinfo_endpoint");
    let nonce = dpop_nonce(&s, &rp).await;
    let good = || key.claims("GET", &ui, Some(&nonce), Some(&token));
    let header = || key.header();
    let other = DpopKey::new();
    let mut with_private = key.header();
    with_private["jwk"]["d"] = json!(b64url([1u8; 32]));
    let signed = |h: Value, c: Value| key.sign(&h, &c);
    let edit_claims = |f: &dyn Fn(&mut Value)| {
        let mut c = good();
        f(&mut c);
        signed(header(), c)
    };
    let edit_header = |f: &dyn Fn(&mut Value)| {
        let mut h = header();
        f(&mut h);
        signed(h, good())
    };
    let valid = signed(header(), good());
    let (head, _) = valid.rsplit_once('.').unwrap();
    let must_fail: Vec<(&str, Vec<String>)> = vec![
        (
            "two DPoP headers",
            vec![signed(header(), good()), signed(header(), good())],
        ),
        ("no signature", vec![format!("{head}.")]),
        ("corrupted signature", vec![format!("{head}.{}", b64url([9u8; 64]))]),
        (
            "typ missing",
            vec![edit_header(&|h| drop(h.as_object_mut().unwrap().remove("typ")))],
        ),
        (
            "alg missing",
            vec![edit_header(&|h| drop(h.as_object_mut().unwrap().remove("alg")))],
        ),
        (
            "jwk missing",
            vec![edit_header(&|h| drop(h.as_object_mut().unwrap().remove("jwk")))],
        ),
        (
            "wrong typ",
            vec![edit_header(&|h| h["typ"] = json!("dpop+jwt+wrongyousee"))],
        ),
        ("alg none", vec![edit_header(&|h| h["alg"] = json!("none"))]),
        ("alg RS256", vec![edit_header(&|h| h["alg"] = json!("RS256"))]),
        ("private key in jwk", vec![signed(with_private.clone(), good())]),
        (
            "jti missing",
            vec![edit_claims(&|c| drop(c.as_object_mut().unwrap().remove("jti")))],
        ),
        (
            "htm missing",
            vec![edit_claims(&|c| drop(c.as_object_mut().unwrap().remove("htm")))],
        ),
        (
            "htu missing",
            vec![edit_claims(&|c| drop(c.as_object_mut().unwrap().remove("htu")))],
        ),
        (
            "iat missing",
            vec![edit_claims(&|c| drop(c.as_object_mut().unwrap().remove("iat")))],
        ),
        (
            "ath missing",
            vec![edit_claims(&|c| drop(c.as_object_mut().unwrap().remove("ath")))],
        ),
        ("htm PUT", vec![edit_claims(&|c| c["htm"] = json!("PUT"))]),
        (
            "htu elsewhere",
            vec![edit_claims(&|c| c["htu"] = json!(s.endpoint("token_endpoint")))],
        ),
        (
            "wrong ath",
            vec![edit_claims(&|c| {
                c["ath"] = json!(portcullis_jose::sha256_b64url("other"))
            })],
        ),
        (
            "iat an hour ahead",
            vec![edit_claims(&|c| c["iat"] = json!(now() + 3600))],
        ),
        (
            "iat an hour ago",
            vec![edit_claims(&|c| c["iat"] = json!(now() - 3600))],
        ),
        (
            "other key",
            vec![other.sign(&other.header(), &other.claims("GET", &ui, Some(&nonce), Some(&token)))],
        ),
    ];
    for (what, proofs) in must_fail {
        let r = resource_call(&s, "DPoP", &token, &proofs).await;
        assert!(matches!(r.status().as_u16(), 400 | 401), "{what}: {}", r.status());
    }
    let must_succeed: Vec<(&str, String)> = vec![
        (
            "htu with query and fragment",
            edit_claims(&|c| c["htu"] = json!(format!("{ui}?a=b#frag"))),
        ),
        (
            "upper-case scheme and host",
            edit_claims(&|c| c["htu"] = json!(ui.replace("https://localhost", "HTTPS://LOCALHOST"))),
        ),
        ("extra header and claim", {
            let mut h = header();
            h["x-extra"] = json!("yes");
            let mut c = good();
            c["x-extra"] = json!(1);
            signed(h, c)
        }),
    ];
    for (what, proof) in must_succeed {
        let r = resource_call(&s, "DPoP", &token, std::slice::from_ref(&proof)).await;
        assert_eq!(r.status(), 200, "{what}");
        // RS-SP-12 / AS-SP-84: the same jti again is refused
        if what == "extra header and claim" {
            let r = resource_call(&s, "DPoP", &token, &[proof]).await;
            assert_eq!(r.status(), 401, "jti replay");
        }
    }
}

/// AS-OPT-14/15/16: introspection needs client authentication; unknown tokens are inactive;
/// refresh tokens introspect without a key binding (they are bound to the client).
#[tokio::test]
async fn introspection_rules() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let (t, _) = tokens(&s, &rp, &DpopKey::new()).await;
    let ep = s.endpoint("introspection_endpoint");
    let token = vec![("token".to_owned(), t["access_token"].as_str().unwrap().to_owned())];
    expect_error(s.post_form(&ep, &token, &[]).await, 401, &["invalid_client"]).await;
    let mut params = rp.auth(&s);
    params.push(("token".into(), "unknown".into()));
    let r = s.post_form(&ep, &params, &[]).await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"active": false}));
    let mut params = rp.auth(&s);
    params.push(("token".into(), t["refresh_token"].as_str().unwrap().into()));
    params.push(("token_type_hint".into(), "refresh_token".into()));
    let i: Value = s.post_form(&ep, &params, &[]).await.json().await.unwrap();
    assert_eq!(i["active"], true);
    assert!(i.get("cnf").is_none(), "{i}");
    let mut params = rp.auth(&s);
    params.push(("token".into(), t["access_token"].as_str().unwrap().into()));
    let i: Value = s.post_form(&ep, &params, &[]).await.json().await.unwrap();
    assert_eq!(i["token_type"], "DPoP");
    assert_eq!(i["iss"], s.issuer.as_str());
    assert!(i["exp"].as_i64().unwrap() > now());
}
