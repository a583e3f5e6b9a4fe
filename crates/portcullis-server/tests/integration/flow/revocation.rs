//! Token revocation (RFC 7009, AS-OPT-18..20): a client's own tokens only, 200 whatever the
//! token was, a refresh token takes its grant with it.

use super::*;

async fn revoke(s: &Server, rp: &Rp, token: &str, hint: Option<&str>) -> reqwest::Response {
    let mut params = vec![("token".to_owned(), token.to_owned())];
    if let Some(h) = hint {
        params.push(("token_type_hint".into(), h.into()));
    }
    params.extend(rp.auth(s));
    s.post_form(&s.endpoint("revocation_endpoint"), &params, &[]).await
}

async fn active(s: &Server, rp: &Rp, token: &str) -> bool {
    let mut params = vec![("token".to_owned(), token.to_owned())];
    params.extend(rp.auth(s));
    let r = s.post_form(&s.endpoint("introspection_endpoint"), &params, &[]).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["active"] == json!(true)
}

async fn refresh(s: &Server, rp: &Rp, rt: &str) -> reqwest::Response {
    token_request(
        s,
        rp,
        &DpopKey::new(),
        vec![
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), rt.into()),
        ],
    )
    .await
}

#[tokio::test]
async fn as_opt_18_revocation() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let other = Rp::register(&s).await;
    let key = DpopKey::new();
    let (t, _) = tokens(&s, &rp, &key).await;
    let at = t["access_token"].as_str().unwrap();
    let rt = t["refresh_token"].as_str().unwrap();

    // another client's tokens: 200, and nothing happens to them (nor is anything revealed)
    for token in [at, rt] {
        let r = revoke(&s, &other, token, None).await;
        assert_eq!(r.status(), 200);
        assert!(active(&s, &rp, token).await, "another client revoked a token");
    }
    // an access token alone: inactive, refused at userinfo; the grant lives on
    let r = revoke(&s, &rp, at, Some("access_token")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "");
    assert!(!active(&s, &rp, at).await);
    assert_eq!(userinfo(&s, &rp, &key, at).await.status(), 401);
    let r = refresh(&s, &rp, rt).await;
    assert_eq!(r.status(), 200, "revoking an access token leaves the refresh token");
    let t2: Value = r.json().await.unwrap();
    let at2 = t2["access_token"].as_str().unwrap();
    // a refresh token (with a wrong hint: only a hint): the grant and every access token go
    let r = revoke(&s, &rp, rt, Some("access_token")).await;
    assert_eq!(r.status(), 200);
    assert!(!active(&s, &rp, rt).await);
    assert!(!active(&s, &rp, at2).await, "the grant's access tokens are revoked too");
    let (status, error, _) = error_of(refresh(&s, &rp, rt).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    // again, unknown, or with an unknown hint: 200 (RFC 7009 §2.2)
    for (token, hint) in [(rt, None), ("no-such-token", None), ("no-such-token", Some("weird"))] {
        assert_eq!(revoke(&s, &rp, token, hint).await.status(), 200);
    }
}

#[tokio::test]
async fn as_opt_19_revocation_refusals() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let url = s.endpoint("revocation_endpoint");
    // no token
    let r = s.post_form(&url, &rp.auth(&s), &[]).await;
    expect_error(r, 400, &["invalid_request"]).await;
    // no client authentication, or HTTP Basic
    let r = s.post_form(&url, &[("token".into(), "x".into())], &[]).await;
    expect_error(r, 401, &["invalid_client"]).await;
    let r = s
        .http
        .post(&url)
        .basic_auth(&rp.client_id, Some("secret"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic "));
    expect_error(r, 401, &["invalid_client"]).await;
    // GET is not revocation
    let r = s.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // discovery lists it with its authentication methods, and the mTLS alias
    assert_eq!(
        s.meta["revocation_endpoint_auth_methods_supported"],
        s.meta["token_endpoint_auth_methods_supported"]
    );
    assert!(s.meta["mtls_endpoint_aliases"]["revocation_endpoint"].is_string());
}
