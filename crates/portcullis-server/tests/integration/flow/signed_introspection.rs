//! Signed introspection responses (RFC 9701, FAPI 2.0 Message Signing AS-MS-16).

use super::*;

async fn signed(s: &Server, rp: &Rp, token: &str) -> (String, reqwest::header::HeaderMap) {
    let mut params = vec![("token".to_owned(), token.to_owned())];
    params.extend(rp.auth(s));
    let r = s
        .http
        .post(s.endpoint("introspection_endpoint"))
        .header("accept", "application/token-introspection+jwt")
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    (r.text().await.unwrap(), h)
}

fn verify(s: &Server, keys: &Value, jwt: &str, aud: &str) -> (jsonwebtoken::Header, Value) {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
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
    v.set_audience(&[aud]);
    v.required_spec_claims = ["iss", "aud"].iter().map(|c| c.to_string()).collect();
    v.validate_exp = false;
    let claims = jsonwebtoken::decode::<Value>(jwt, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &v)
        .expect("the signed introspection response verifies independently")
        .claims;
    (header, claims)
}

#[tokio::test]
async fn as_ms_16_signed_introspection() {
    let s = Server::start().await;
    assert!(s.meta["introspection_signing_alg_values_supported"].is_array());
    let rp = Rp::register_with(
        &s,
        Algorithm::Es256,
        json!({"introspection_signed_response_alg": "PS256"}),
    )
    .await;
    let key = DpopKey::new();
    let (t, _) = tokens(&s, &rp, &key).await;
    let at = t["access_token"].as_str().unwrap();
    let keys = jwks(&s).await;
    let (jwt, h) = signed(&s, &rp, at).await;
    assert_eq!(h["content-type"], "application/token-introspection+jwt");
    let (header, claims) = verify(&s, &keys, &jwt, &rp.client_id);
    assert_eq!(header.typ.as_deref(), Some("token-introspection+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256, "the registered algorithm");
    assert!(claims["iat"].is_i64());
    let ti = &claims["token_introspection"];
    assert_eq!(ti["active"], true);
    assert_eq!(ti["client_id"], json!(rp.client_id));
    assert_eq!(ti["cnf"]["jkt"], json!(key.jkt()));
    // an unknown token: signed too, inactive
    let (jwt, _) = signed(&s, &rp, "no-such-token").await;
    let (_, claims) = verify(&s, &keys, &jwt, &rp.client_id);
    assert_eq!(claims["token_introspection"], json!({"active": false}));
    // the default algorithm is ES256; without the Accept header the answer is JSON
    let plain = Rp::register(&s).await;
    let (jwt, _) = signed(&s, &plain, "no-such-token").await;
    let (header, _) = verify(&s, &keys, &jwt, &plain.client_id);
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let mut params = vec![("token".to_owned(), at.to_owned())];
    params.extend(rp.auth(&s));
    let r = s.post_form(&s.endpoint("introspection_endpoint"), &params, &[]).await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    // RS256 is not a FAPI algorithm
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth(s.initial_access_token())
        .json(
            &json!({"redirect_uris": [REDIRECT_URI], "introspection_signed_response_alg": "RS256",
            "jwks": {"keys": [SigningKey::generate(Algorithm::Es256).unwrap().public_jwk().to_json()]}}),
        )
        .send()
        .await
        .unwrap();
    expect_error(r, 400, &["invalid_client_metadata"]).await;
}
