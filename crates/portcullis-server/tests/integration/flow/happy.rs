//! The whole flow, and what the id_token and tokens look like.

use super::*;

/// AS-SP-50/66/73/74/80/100/101: the whole flow; the id_token checked with jsonwebtoken.
#[tokio::test]
async fn full_flow_issues_dpop_bound_tokens_and_a_verifiable_id_token() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
    assert!(code.len() >= 43, "AS-SP-66: code entropy");
    let r = token_request(&s, &rp, &dpop, code_params(&code, &par.verifier)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store", "AS-SP-68");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "DPoP", "AS-SP-80");
    assert!(t["access_token"].as_str().unwrap().len() >= 43, "AS-SP-74");
    assert!(t["refresh_token"].as_str().unwrap().len() >= 43, "AS-SP-93");
    assert!(t["expires_in"].as_i64().unwrap() > 0);
    let jwks = jwks(&s).await;
    let (header, claims) = id_token_claims(&s, &jwks, t["id_token"].as_str().unwrap());
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(claims["aud"], rp.client_id.as_str());
    assert_eq!(claims["azp"], rp.client_id.as_str());
    assert_eq!(claims["nonce"], par.nonce.as_str());
    assert!(claims["auth_time"].as_i64().unwrap() <= now());
    assert!((claims["iat"].as_i64().unwrap() - now()).abs() < 30);
    assert!(claims["exp"].as_i64().unwrap() > now());
    assert!(
        claims.get("email").is_none(),
        "profile claims go to userinfo, not the id_token"
    );
    let access = t["access_token"].as_str().unwrap();
    let ui = userinfo(&s, &rp, &dpop, access).await;
    assert_eq!(ui.status(), 200);
    let info: Value = ui.json().await.unwrap();
    assert_eq!(info["sub"], claims["sub"]);
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["name"], "Alice Liddell");
    // RFC 7662: the client's own token, with its binding
    let mut params = rp.auth(&s);
    params.push(("token".into(), access.into()));
    let r = s.post_form(&s.endpoint("introspection_endpoint"), &params, &[]).await;
    let i: Value = r.json().await.unwrap();
    assert_eq!(i["active"], true);
    assert_eq!(i["cnf"]["jkt"], dpop.jkt().as_str());
    assert_eq!(i["client_id"], rp.client_id.as_str());
    // another client learns nothing
    let other = Rp::register(&s).await;
    let mut params = other.auth(&s);
    params.push(("token".into(), access.into()));
    let i: Value = s
        .post_form(&s.endpoint("introspection_endpoint"), &params, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(i, json!({"active": false}));
}

/// The id_token is signed with the client's registered algorithm (AS-SP-101, AS-SP-95).
#[tokio::test]
async fn id_token_uses_the_registered_algorithm() {
    let s = Server::start().await;
    for (alg, expect) in [
        ("PS256", jsonwebtoken::Algorithm::PS256),
        ("EdDSA", jsonwebtoken::Algorithm::EdDSA),
    ] {
        let rp = Rp::register_with(&s, Algorithm::Es256, json!({"id_token_signed_response_alg": alg})).await;
        let (t, _) = tokens(&s, &rp, &DpopKey::new()).await;
        let (header, _) = id_token_claims(&s, &jwks(&s).await, t["id_token"].as_str().unwrap());
        assert_eq!(header.alg, expect);
    }
}

/// Plain OAuth: no openid scope, no id_token (AS-SP-100); userinfo releases only `sub`.
#[tokio::test]
async fn without_openid_there_is_no_id_token() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let (code, par) = authorize(&s, &rp, Par::new(&rp).set("scope", "offline_access").remove("nonce")).await;
    let t: Value = token_request(&s, &rp, &dpop, code_params(&code, &par.verifier))
        .await
        .json()
        .await
        .unwrap();
    assert!(t.get("id_token").is_none(), "{t}");
    let r = userinfo(&s, &rp, &dpop, t["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert!(info["sub"].is_string() && info.get("email").is_none(), "{info}");
}
