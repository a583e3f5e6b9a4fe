//! The demo protected API (INTERFACE.md): `GET /api/accounts`, scope `accounts`, admitted by the
//! resource crate's rules like userinfo (RS-SP-01..15), published as `portcullis_demo_api`.

use super::*;

async fn accounts_call(
    s: &Server,
    token: Option<&str>,
    proof: Option<String>,
    interaction: Option<&str>,
) -> reqwest::Response {
    let mut req = s
        .http
        .get(s.meta["portcullis_demo_api"]["accounts_endpoint"].as_str().unwrap());
    if let Some(t) = token {
        req = req.header("authorization", format!("DPoP {t}"));
    }
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    if let Some(i) = interaction {
        req = req.header("x-fapi-interaction-id", i);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn rs_sp_demo_api_accounts() {
    let s = Server::start().await;
    let demo = &s.meta["portcullis_demo_api"];
    let url = demo["accounts_endpoint"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("{}/api/accounts", s.issuer));
    assert_eq!(
        demo["mtls_accounts_endpoint"],
        json!(format!("https://localhost:{}/api/accounts", s.mtls_port))
    );
    assert!(
        s.meta["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("accounts"))
    );

    let rp = Rp::register(&s).await;
    let key = DpopKey::new();
    let (code, par) = authorize(&s, &rp, Par::new(&rp).set("scope", "openid accounts")).await;
    let r = token_request(&s, &rp, &key, code_params(&code, &par.verifier)).await;
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["scope"], "openid accounts");
    let at = t["access_token"].as_str().unwrap();
    let nonce = dpop_nonce(&s, &rp).await;

    // RS-SP-01: the accounts, with Date, no-store and the interaction id echoed
    let id = "C1A1F2B3-1234-4ABC-8DEF-0123456789AB";
    let r = accounts_call(
        &s,
        Some(at),
        Some(key.proof("GET", &url, Some(&nonce), Some(at))),
        Some(id),
    )
    .await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(h.get("date").is_some(), "Date on the resource response");
    assert_eq!(h["x-fapi-interaction-id"], id);
    assert!(h["cache-control"].to_str().unwrap().contains("no-store"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["accounts"].as_array().unwrap().len(), 2);
    // a replayed proof is refused (RFC 9449 §11.1)
    let proof = key.proof("GET", &url, Some(&nonce), Some(at));
    assert_eq!(
        accounts_call(&s, Some(at), Some(proof.clone()), None).await.status(),
        200
    );
    let r = accounts_call(&s, Some(at), Some(proof), None).await;
    assert_eq!(r.status(), 401);
    let (_, error, description) = error_of(r).await;
    assert_eq!(error, "invalid_dpop_proof");
    assert!(description.contains("already been used"), "{description}");
    // a proof for userinfo's URL does not fit the API (htu)
    let r = accounts_call(
        &s,
        Some(at),
        Some(key.proof("GET", &s.endpoint("userinfo_endpoint"), Some(&nonce), Some(at))),
        None,
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_dpop_proof")
    );

    // no credentials: 401 with both challenges and no error (RFC 6750 §3.1)
    let r = accounts_call(&s, None, None, None).await;
    assert_eq!(r.status(), 401);
    let w = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        w.starts_with("DPoP algs=") && w.ends_with("Bearer") && !w.contains("error="),
        "{w}"
    );
    // RS-SP-03: a token in the query is not a credential
    let r = s.http.get(format!("{url}?access_token={at}")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // RFC 6750 §3.1: a token without the scope is 403 insufficient_scope
    let (t2, _) = tokens(&s, &rp, &key).await;
    let at2 = t2["access_token"].as_str().unwrap();
    let r = accounts_call(
        &s,
        Some(at2),
        Some(key.proof("GET", &url, Some(&nonce), Some(at2))),
        None,
    )
    .await;
    assert_eq!(r.status(), 403);
    let w = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(w.starts_with("DPoP error=\"insufficient_scope\""), "{w}");
    let (_, error, _) = error_of(r).await;
    assert_eq!(error, "insufficient_scope");
}

#[tokio::test]
async fn demo_api_can_be_switched_off() {
    let s = Server::start_with(&[("PORTCULLIS_DEMO_API_ENABLED", "false")]).await;
    assert!(s.meta.get("portcullis_demo_api").is_none());
    assert!(
        !s.meta["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("accounts"))
    );
    let r = s.http.get(format!("{}/api/accounts", s.issuer)).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
