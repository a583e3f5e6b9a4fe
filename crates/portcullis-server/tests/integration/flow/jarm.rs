//! JARM (FAPI 2.0 Message Signing AS-MS-11..15): `response_mode=jwt` / `query.jwt` answers
//! with nothing but a `response` JWT signed by the server, for codes and errors alike.

use super::*;

/// The `response` JWT of a callback, verified with jsonwebtoken against the server's JWKS.
async fn jarm_claims(s: &Server, cb: &url::Url, client_id: &str) -> (jsonwebtoken::Header, Value) {
    let q = query(cb);
    assert!(q.contains_key("response"), "{cb}");
    assert!(
        !q.contains_key("iss") && !q.contains_key("code") && !q.contains_key("state"),
        "nothing but response (and the redirect URI's own query): {cb}"
    );
    let jwt = &q["response"];
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let keys = jwks(s).await;
    let jwk = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header.kid.clone().expect("kid").as_str())
        .unwrap()
        .clone();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&[&s.issuer]);
    v.set_audience(&[client_id]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &v)
        .expect("the JARM response verifies independently")
        .claims;
    assert!(claims["exp"].as_i64().unwrap() <= now() + 600, "exp within 10 minutes");
    (header, claims)
}

#[tokio::test]
async fn as_ms_11_jarm_responses() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let key = DpopKey::new();
    for mode in ["jwt", "query.jwt"] {
        let par = Par::new(&rp).set("response_mode", mode);
        let request_uri = par.push(&s, &rp).await;
        let cb = Browser::default().run(&s, &rp.client_id, &request_uri, "allow").await;
        let (header, claims) = jarm_claims(&s, &cb, &rp.client_id).await;
        assert_eq!(
            header.alg,
            jsonwebtoken::Algorithm::ES256,
            "ES256 unless the client registered another"
        );
        assert_eq!(claims["state"], json!(par.state));
        let code = claims["code"].as_str().unwrap();
        let r = token_request(&s, &rp, &key, code_params(code, &par.verifier)).await;
        assert_eq!(r.status(), 200, "{mode}");
    }
    // errors too (access_denied), and the redirect URI's own query is kept
    let par = Par::new(&rp)
        .set("response_mode", "jwt")
        .set("redirect_uri", REDIRECT_URI_2);
    let request_uri = par.push(&s, &rp).await;
    let cb = Browser::default().run(&s, &rp.client_id, &request_uri, "deny").await;
    let q = query(&cb);
    assert_eq!((q["dummy1"].as_str(), q["dummy2"].as_str()), ("lorem", "ipsum"));
    let (_, claims) = jarm_claims(&s, &cb, &rp.client_id).await;
    assert_eq!(claims["error"], "access_denied");
    assert_eq!(claims["state"], json!(par.state));
    assert!(claims.get("code").is_none());
}

#[tokio::test]
async fn as_ms_13_jarm_algorithm_and_requirement() {
    let s = Server::start().await;
    let rp = Rp::register_with(
        &s,
        Algorithm::Es256,
        json!({"authorization_signed_response_alg": "PS256"}),
    )
    .await;
    let par = Par::new(&rp).set("response_mode", "jwt");
    let request_uri = par.push(&s, &rp).await;
    let cb = Browser::default().run(&s, &rp.client_id, &request_uri, "allow").await;
    let (header, _) = jarm_claims(&s, &cb, &rp.client_id).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
    // RS256 is not a FAPI algorithm: refused at registration
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth(s.initial_access_token())
        .json(
            &json!({"redirect_uris": [REDIRECT_URI], "authorization_signed_response_alg": "RS256",
            "jwks": {"keys": [SigningKey::generate(Algorithm::Es256).unwrap().public_jwk().to_json()]}}),
        )
        .send()
        .await
        .unwrap();
    expect_error(r, 400, &["invalid_client_metadata"]).await;
    // a server that requires JARM refuses a plain response mode at PAR
    let s = Server::start_with(&[("PORTCULLIS_CLIENTS_REQUIRE_JARM", "true")]).await;
    let rp = Rp::register(&s).await;
    let r = Par::new(&rp).send(&s, &rp, None).await;
    let d = expect_error(r, 400, &["invalid_request"]).await;
    assert!(d.contains("response_mode=jwt"), "{d}");
    assert_eq!(
        Par::new(&rp)
            .set("response_mode", "jwt")
            .send(&s, &rp, None)
            .await
            .status(),
        201
    );
    // an unknown mode is refused everywhere
    let r = Par::new(&rp)
        .set("response_mode", "form_post.jwt")
        .send(&s, &rp, None)
        .await;
    expect_error(r, 400, &["invalid_request"]).await;
}
