//! Resource indicators (RFC 8707): `resource` at PAR and token, the access token's audience,
//! `invalid_target`, and a resource refusing a token for another one.

use super::*;

const RS1: &str = "https://rs1.example/api";
const RS2: &str = "https://rs2.example/api";

async fn introspect(s: &Server, rp: &Rp, token: &str) -> Value {
    let mut params = vec![("token".to_owned(), token.to_owned())];
    params.extend(rp.auth(s));
    s.post_form(&s.endpoint("introspection_endpoint"), &params, &[])
        .await
        .json()
        .await
        .unwrap()
}

/// The flow with `extra` PAR parameters and `token_extra` token parameters.
async fn flow(s: &Server, rp: &Rp, key: &DpopKey, par: Par, token_extra: &[(&str, &str)]) -> reqwest::Response {
    let (code, par) = authorize(s, rp, par).await;
    let mut params = code_params(&code, &par.verifier);
    params.extend(token_extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    token_request(s, rp, key, params).await
}

fn with_resources(mut par: Par, resources: &[&str]) -> Par {
    par.params.retain(|(k, _)| k != "resource");
    par.params
        .extend(resources.iter().map(|r| ("resource".to_owned(), r.to_string())));
    par
}

#[tokio::test]
async fn rfc8707_resource_indicators() {
    let s = Server::start_with(&[("PORTCULLIS_TOKENS_RESOURCES", &format!("{RS1},{RS2}"))]).await;
    let demo = s.meta["portcullis_demo_api"]["resource"].as_str().unwrap().to_owned();
    assert_eq!(demo, format!("{}/api", s.issuer));
    let rp = Rp::register(&s).await;
    let key = DpopKey::new();

    // PAR: unknown, relative or fragment-carrying resources are invalid_target
    for bad in ["https://unknown.example/api", "/api", "https://rs1.example/api#x"] {
        let r = with_resources(Par::new(&rp), &[bad]).send(&s, &rp, None).await;
        let d = expect_error(r, 400, &["invalid_target"]).await;
        assert!(d.contains("resource"), "{bad}: {d}");
    }

    // one resource: the token is for it alone, and the demo API refuses it
    let par = with_resources(Par::new(&rp).set("scope", "openid accounts"), &[RS1]);
    let t: Value = flow(&s, &rp, &key, par, &[]).await.json().await.unwrap();
    let at = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(&s, &rp, &at).await["aud"], json!([RS1]));
    let url = s.meta["portcullis_demo_api"]["accounts_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let nonce = dpop_nonce(&s, &rp).await;
    let r = s
        .http
        .get(&url)
        .header("authorization", format!("DPoP {at}"))
        .header("dpop", key.proof("GET", &url, Some(&nonce), Some(&at)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (_, error, description) = error_of(r).await;
    assert_eq!(error, "invalid_token");
    assert!(description.contains("not for this resource"), "{description}");

    // two resources (the parameter repeats); the token narrows to one; outside the grant is
    // invalid_target (and the code is spent on that refusal, as with any token error)
    let par = with_resources(Par::new(&rp), &[RS1, RS2]);
    let t: Value = flow(&s, &rp, &key, par, &[("resource", RS2)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        introspect(&s, &rp, t["access_token"].as_str().unwrap()).await["aud"],
        json!([RS2])
    );
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let par = with_resources(Par::new(&rp), &[RS1]);
    let r = flow(&s, &rp, &key, par, &[("resource", &demo)]).await;
    expect_error(r, 400, &["invalid_target"]).await;
    // refresh: narrowed within the grant, or refused outside it
    let refresh = |resource: &'static str| {
        let (s, rp, rt) = (&s, &rp, rt.clone());
        async move {
            let mut params = vec![
                ("grant_type".to_owned(), "refresh_token".to_owned()),
                ("refresh_token".to_owned(), rt),
            ];
            params.push(("resource".into(), resource.into()));
            token_request(s, rp, &DpopKey::new(), params).await
        }
    };
    let t: Value = refresh(RS1).await.json().await.unwrap();
    assert_eq!(
        introspect(&s, &rp, t["access_token"].as_str().unwrap()).await["aud"],
        json!([RS1])
    );
    expect_error(refresh("https://unknown.example/api").await, 400, &["invalid_target"]).await;

    // no resource: the token is for every resource of this server, the demo API included
    let t: Value = flow(&s, &rp, &key, Par::new(&rp).set("scope", "openid accounts"), &[])
        .await
        .json()
        .await
        .unwrap();
    let at = t["access_token"].as_str().unwrap().to_owned();
    let aud = introspect(&s, &rp, &at).await["aud"].clone();
    for r in [RS1, RS2, demo.as_str()] {
        assert!(aud.as_array().unwrap().contains(&json!(r)), "{aud}");
    }
    let r = s
        .http
        .get(&url)
        .header("authorization", format!("DPoP {at}"))
        .header("dpop", key.proof("GET", &url, Some(&nonce), Some(&at)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// RFC 7662 §2.1 with RFC 8707: a resource server registered by the operator introspects the
/// access tokens issued for its resource, and nothing else; it cannot run a flow.
#[tokio::test]
async fn rfc7662_resource_servers_introspect_their_tokens() {
    let s = Server::start_with(&[("PORTCULLIS_TOKENS_RESOURCES", &format!("{RS1},{RS2}"))]).await;
    let rs_key = SigningKey::generate(Algorithm::Es256).unwrap();
    let jwks = s.dir.join("rs-jwks.json");
    std::fs::write(&jwks, json!({"keys": [rs_key.public_jwk().to_json()]}).to_string()).unwrap();
    let add = |resource: &str| {
        s.cli(
            &[
                "client",
                "add",
                "--name",
                "Accounts API",
                "--auth",
                "private_key_jwt",
                "--jwks-file",
                jwks.to_str().unwrap(),
                "--resource-server",
                resource,
            ],
            None,
        )
    };
    let out = add("https://unknown.example/api");
    assert_eq!(out.status.code(), Some(2), "an unknown resource is refused");
    let out = add(RS1);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reg: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reg["portcullis_resource_server"], RS1);
    assert_eq!(reg["redirect_uris"], json!([]));
    let rs = Rp {
        client_id: reg["client_id"].as_str().unwrap().to_owned(),
        key: rs_key,
        registration: reg,
    };

    let rp = Rp::register(&s).await;
    let key = DpopKey::new();
    let for_rs1: Value = flow(&s, &rp, &key, with_resources(Par::new(&rp), &[RS1]), &[])
        .await
        .json()
        .await
        .unwrap();
    let for_rs2: Value = flow(&s, &rp, &key, with_resources(Par::new(&rp), &[RS2]), &[])
        .await
        .json()
        .await
        .unwrap();
    let i = introspect(&s, &rs, for_rs1["access_token"].as_str().unwrap()).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["aud"], json!([RS1]));
    assert_eq!(i["client_id"], json!(rp.client_id));
    assert!(i["cnf"]["jkt"].is_string());
    // another resource's token, and any refresh token: not active for this caller
    assert_eq!(
        introspect(&s, &rs, for_rs2["access_token"].as_str().unwrap()).await,
        json!({"active": false})
    );
    assert_eq!(
        introspect(&s, &rs, for_rs1["refresh_token"].as_str().unwrap()).await,
        json!({"active": false})
    );
    // another (ordinary) client sees nothing of them
    let other = Rp::register(&s).await;
    assert_eq!(
        introspect(&s, &other, for_rs1["access_token"].as_str().unwrap()).await,
        json!({"active": false})
    );
    // the resource server cannot push an authorization request
    let r = Par::new(&rs).send(&s, &rs, None).await;
    assert_eq!(r.status(), 400);
}

/// RFC 8707 per client: a client registered for some of the server's resources asks only for
/// those, and its tokens default to them.
#[tokio::test]
async fn rfc8707_resources_registered_per_client() {
    let s = Server::start_with(&[("PORTCULLIS_TOKENS_RESOURCES", &format!("{RS1},{RS2}"))]).await;
    let rp = Rp::register_with(&s, Algorithm::Es256, json!({"resources": [RS1]})).await;
    assert_eq!(rp.registration["resources"], json!([RS1]));
    let key = DpopKey::new();
    let r = with_resources(Par::new(&rp), &[RS2]).send(&s, &rp, None).await;
    let d = expect_error(r, 400, &["invalid_target"]).await;
    assert!(d.contains("not registered"), "{d}");
    let t: Value = flow(&s, &rp, &key, Par::new(&rp), &[]).await.json().await.unwrap();
    assert_eq!(
        introspect(&s, &rp, t["access_token"].as_str().unwrap()).await["aud"],
        json!([RS1])
    );
    // a list naming a resource the server does not serve is refused, as is a malformed one
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth(s.initial_access_token())
        .json(&json!({"redirect_uris": [REDIRECT_URI],
            "jwks": {"keys": [SigningKey::generate(Algorithm::Es256).unwrap().public_jwk().to_json()]},
            "resources": ["https://anything.example/"]}))
        .send()
        .await
        .unwrap();
    let d = expect_error(r, 400, &["invalid_client_metadata"]).await;
    assert!(d.contains("not one of this server's resources"), "{d}");
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth(s.initial_access_token())
        .json(&json!({"redirect_uris": [REDIRECT_URI],
            "jwks": {"keys": [SigningKey::generate(Algorithm::Es256).unwrap().public_jwk().to_json()]},
            "resources": ["not a uri"]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, &["invalid_client_metadata"]).await;
}
