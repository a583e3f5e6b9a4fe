//! The resource crate as a standalone resource server (issue 15): an axum API elsewhere,
//! protected by `portcullis_resource::service`, learning about tokens by introspection at this
//! server as a resource server registered by the operator.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use portcullis_jose::{Algorithm, SigningKey};
use portcullis_resource::service::{
    Introspection, LocalNonces, MemoryReplay, ProtectedResource, Verified, fapi_headers,
};
use serde_json::{Value, json};

use crate::harness::*;

pub const RS: &str = "https://rs.example/api";

/// Starts the API on an ephemeral port, introspecting with `private_key_jwt`; returns its URL.
async fn start_api(s: &Server, client_id: &str, key: SigningKey) -> String {
    let ca = std::fs::read(s.ca_path()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap();
    let endpoint = Introspection::discover(&http, &s.issuer).await.unwrap();
    serve_api(Introspection::new(http, &s.issuer, &endpoint, client_id, key), None).await
}

/// Serves the API over `source` (and `certificates` from a proxy); returns its URL.
pub async fn serve_api(
    source: Introspection,
    certificates: Option<portcullis_resource::proxy::CertificateSource>,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/api/data", listener.local_addr().unwrap().port());
    let resource = Arc::new(ProtectedResource {
        url: url.clone(),
        audience: Some(RS.into()),
        scopes: vec!["accounts".into()],
        nonce_required: true,
        source: Arc::new(source),
        nonces: Arc::new(LocalNonces::new().unwrap()),
        replay: Arc::new(MemoryReplay::new(10_000)),
        certificates,
        client_keys: None,
        require_signed_requests: false,
        response_signer: None,
    });
    let app = Router::new()
        .route(
            "/api/data",
            get(|Verified(token): Verified| async move {
                axum::Json(json!({"sub": token.subject, "client": token.client_id}))
            }),
        )
        .layer(axum::middleware::from_fn(fapi_headers))
        .with_state(resource);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    url
}

#[tokio::test]
async fn the_resource_crate_protects_another_service() {
    let s = Server::start_with(&[("PORTCULLIS_TOKENS_RESOURCES", RS)]).await;
    // the operator registers the API as a resource server
    let rs_key = SigningKey::generate(Algorithm::Es256).unwrap();
    let jwks = s.dir.join("api-jwks.json");
    std::fs::write(&jwks, json!({"keys": [rs_key.public_jwk().to_json()]}).to_string()).unwrap();
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "private_key_jwt",
            "--jwks-file",
            jwks.to_str().unwrap(),
            "--resource-server",
            RS,
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reg: Value = serde_json::from_slice(&out.stdout).unwrap();
    let api = start_api(&s, reg["client_id"].as_str().unwrap(), rs_key).await;

    // a client gets a DPoP-bound token for the API's resource
    let rp = Rp::register(&s).await;
    let key = DpopKey::new();
    let mut par = Par::new(&rp).set("scope", "openid accounts");
    par.params.push(("resource".into(), RS.into()));
    let (code, par) = authorize(&s, &rp, par).await;
    let t: Value = token_request(&s, &rp, &key, code_params(&code, &par.verifier))
        .await
        .json()
        .await
        .unwrap();
    let at = t["access_token"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let call = |proof: Option<String>, scheme: &str, token: &str| {
        let mut req = http
            .get(&api)
            .header("authorization", format!("{scheme} {token}"))
            .header("x-fapi-interaction-id", "0D4E8B1A-1A2B-4C3D-8E9F-001122334455");
        if let Some(p) = proof {
            req = req.header("dpop", p);
        }
        req.send()
    };
    // the API's own nonce (RFC 9449 §9): 401 use_dpop_nonce, then admitted
    let r = call(Some(key.proof("GET", &api, None, Some(&at))), "DPoP", &at)
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let w = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(w.starts_with("DPoP error=\"use_dpop_nonce\""), "{w}");
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let r = call(Some(key.proof("GET", &api, Some(&nonce), Some(&at))), "DPoP", &at)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["x-fapi-interaction-id"], "0D4E8B1A-1A2B-4C3D-8E9F-001122334455");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h.get("date").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["client"], json!(rp.client_id));
    // the same token as Bearer, or with another key: refused with the scheme's challenge
    let r = call(None, "Bearer", &at).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer error=\"invalid_token\"")
    );
    let other = DpopKey::new();
    let r = call(Some(other.proof("GET", &api, Some(&nonce), Some(&at))), "DPoP", &at)
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "invalid_token");

    // a token without the scope (no resource asked: it is for every resource, this one too)
    // is 403 insufficient_scope
    let (t2, _) = tokens(&s, &rp, &key).await;
    let at2 = t2["access_token"].as_str().unwrap().to_owned();
    let r = call(Some(key.proof("GET", &api, Some(&nonce), Some(&at2))), "DPoP", &at2)
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    // a token for another resource (the demo API's) is not admitted: introspection does not
    // even show it to this resource server
    let mut par = Par::new(&rp).set("scope", "openid accounts");
    par.params.push(("resource".into(), format!("{}/api", s.issuer)));
    let (code, par) = authorize(&s, &rp, par).await;
    let t3: Value = token_request(&s, &rp, &key, code_params(&code, &par.verifier))
        .await
        .json()
        .await
        .unwrap();
    let at3 = t3["access_token"].as_str().unwrap().to_owned();
    let r = call(Some(key.proof("GET", &api, Some(&nonce), Some(&at3))), "DPoP", &at3)
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "invalid_token");

    // a revoked token (never seen by the API before) is refused at once
    let mut par = Par::new(&rp).set("scope", "openid accounts");
    par.params.push(("resource".into(), RS.into()));
    let (code, par) = authorize(&s, &rp, par).await;
    let t4: Value = token_request(&s, &rp, &key, code_params(&code, &par.verifier))
        .await
        .json()
        .await
        .unwrap();
    let at4 = t4["access_token"].as_str().unwrap().to_owned();
    let mut params = vec![("token".to_owned(), at4.clone())];
    params.extend(rp.auth(&s));
    assert_eq!(
        s.post_form(&s.endpoint("revocation_endpoint"), &params, &[])
            .await
            .status(),
        200
    );
    let r = call(Some(key.proof("GET", &api, Some(&nonce), Some(&at4))), "DPoP", &at4)
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "invalid_token");
}

/// The example service (`crates/portcullis-resource/examples/accounts_api.rs`) run as its
/// README says, against this server (the harness passes its settings to every command, as the
/// README's `export` does).
#[tokio::test]
async fn the_example_service_runs_as_its_readme_says() {
    let example = std::path::Path::new(BIN)
        .parent()
        .unwrap()
        .join("examples/accounts_api");
    assert!(
        example.exists(),
        "{} is missing: build it with cargo build --workspace --all-targets",
        example.display()
    );
    let s = Server::start_with(&[("PORTCULLIS_TOKENS_RESOURCES", RS)]).await;
    let keys = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&example)
        .args(["keygen", keys.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let jwks = keys.path().join("api-jwks.json");
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "private_key_jwt",
            "--jwks-file",
            jwks.to_str().unwrap(),
            "--resource-server",
            RS,
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reg: Value = serde_json::from_slice(&out.stdout).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = format!("http://127.0.0.1:{port}/api/accounts");
    let mut child = std::process::Command::new(&example)
        .arg("serve")
        .env("ISSUER", &s.issuer)
        .env("CA_FILE", s.ca_path())
        .env("CLIENT_ID", reg["client_id"].as_str().unwrap())
        .env("KEY_DIR", keys.path())
        .env("RESOURCE", RS)
        .env("LISTEN", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http.get(&api).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "the example did not start");

    let rp = Rp::register(&s).await;
    let key = DpopKey::new();
    let mut par = Par::new(&rp).set("scope", "openid accounts");
    par.params.push(("resource".into(), RS.into()));
    let (code, par) = authorize(&s, &rp, par).await;
    let t: Value = token_request(&s, &rp, &key, code_params(&code, &par.verifier))
        .await
        .json()
        .await
        .unwrap();
    let at = t["access_token"].as_str().unwrap().to_owned();
    let r = http
        .get(&api)
        .header("authorization", format!("DPoP {at}"))
        .header("dpop", key.proof("GET", &api, None, Some(&at)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let r = http
        .get(&api)
        .header("authorization", format!("DPoP {at}"))
        .header("dpop", key.proof("GET", &api, Some(&nonce), Some(&at)))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let signature_input = r
        .headers()
        .get("signature-input")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = r.json().await.unwrap();
    // the API publishes the key its responses are signed with
    let jwks: Value = http
        .get(api.replace("/api/accounts", "/api/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{body}");
    assert!(body["owner"].is_string());
    // FAPI 2.0 HTTP Signatures: the response is signed with that key
    let kid = jwks["keys"][0]["kid"].as_str().unwrap();
    assert!(
        signature_input.contains("tag=\"fapi-2-response\"") && signature_input.contains(&format!("keyid=\"{kid}\"")),
        "{signature_input}"
    );
}

/// RFC 9068 JWT access tokens (`tokens.access_token_format = "jwt"`): checked with an
/// independent JOSE library, admitted by the resource crate validating them itself, and still
/// introspected, revoked and used at userinfo like opaque ones.
#[tokio::test]
async fn rfc9068_jwt_access_tokens() {
    let s = Server::start_with(&[
        ("PORTCULLIS_TOKENS_RESOURCES", RS),
        ("PORTCULLIS_TOKENS_ACCESS_TOKEN_FORMAT", "jwt"),
    ])
    .await;
    let rp = Rp::register(&s).await;
    let key = DpopKey::new();
    let mut par = Par::new(&rp).set("scope", "openid accounts");
    par.params.push(("resource".into(), RS.into()));
    let (code, par) = authorize(&s, &rp, par).await;
    let t: Value = token_request(&s, &rp, &key, code_params(&code, &par.verifier))
        .await
        .json()
        .await
        .unwrap();
    let at = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(t["token_type"], "DPoP");

    // RFC 9068 §2, checked with jsonwebtoken against the published JWKS
    let header = jsonwebtoken::decode_header(&at).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwks: Value = s
        .http
        .get(s.endpoint("jwks_uri"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header.kid.clone().unwrap().as_str())
        .unwrap()
        .clone();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&[&s.issuer]);
    v.set_audience(&[RS]);
    let claims = jsonwebtoken::decode::<Value>(&at, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &v)
        .expect("the JWT access token verifies independently")
        .claims;
    assert_eq!(claims["client_id"], json!(rp.client_id));
    assert_eq!(claims["cnf"]["jkt"], json!(key.jkt()));
    assert_eq!(claims["aud"], json!([RS]));
    assert!(claims["jti"].is_string() && claims["sub"].is_string());
    assert_eq!(claims["scope"], "openid accounts");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);

    // a resource that validates JWTs itself
    let ca = std::fs::read(s.ca_path()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap();
    let source = portcullis_resource::service::JwtAccessTokens::discover(http, &s.issuer)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://127.0.0.1:{}/api/data", listener.local_addr().unwrap().port());
    let resource = Arc::new(ProtectedResource {
        url: api.clone(),
        audience: Some(RS.into()),
        scopes: vec!["accounts".into()],
        nonce_required: false,
        source: Arc::new(source),
        nonces: Arc::new(LocalNonces::new().unwrap()),
        replay: Arc::new(MemoryReplay::new(1000)),
        certificates: None,
        client_keys: None,
        require_signed_requests: false,
        response_signer: None,
    });
    // this one with the tower layer form: the handler gets the token as an extension
    let app = Router::new()
        .route(
            "/api/data",
            get(
                |axum::Extension(t): axum::Extension<portcullis_resource::TokenInfo>| async move {
                    axum::Json(json!({"sub": t.subject}))
                },
            ),
        )
        .route("/api/other", get(|| async { "other" }))
        .layer(axum::middleware::from_fn_with_state(
            resource,
            portcullis_resource::service::require_token,
        ));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let call = |proof: String, token: &str| {
        reqwest::Client::new()
            .get(&api)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .send()
    };
    let r = call(key.proof("GET", &api, None, Some(&at)), &at).await.unwrap();
    assert_eq!(r.status(), 200);
    // one layer, two routes: each proof names its own route (RFC 9449 §4.3 htu)
    let other = api.replace("/api/data", "/api/other");
    let r = reqwest::Client::new()
        .get(&other)
        .header("authorization", format!("DPoP {at}"))
        .header("dpop", key.proof("GET", &api, None, Some(&at)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_of(r).await.1, "invalid_dpop_proof");
    let r = reqwest::Client::new()
        .get(&other)
        .header("authorization", format!("DPoP {at}"))
        .header("dpop", key.proof("GET", &other, None, Some(&at)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // a JWT for another resource (the demo API's) is not admitted here (RFC 9068 §4 aud)
    let mut par = Par::new(&rp).set("scope", "openid accounts");
    par.params.push(("resource".into(), format!("{}/api", s.issuer)));
    let (code, par) = authorize(&s, &rp, par).await;
    let t_other: Value = token_request(&s, &rp, &key, code_params(&code, &par.verifier))
        .await
        .json()
        .await
        .unwrap();
    let at_other = t_other["access_token"].as_str().unwrap().to_owned();
    let r = call(key.proof("GET", &api, None, Some(&at_other)), &at_other)
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (_, error, description) = error_of(r).await;
    assert_eq!(error, "invalid_token");
    assert!(description.contains("not for this resource"), "{description}");
    // a tampered JWT, and a JWT that is not an access token (the id_token), are refused
    let mut tampered = at.clone();
    tampered.replace_range(at.len() - 4.., "AAAA");
    let r = call(key.proof("GET", &api, None, Some(&tampered)), &tampered)
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "invalid_token");
    let id_token = t["id_token"].as_str().unwrap();
    let r = call(key.proof("GET", &api, None, Some(id_token)), id_token)
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "invalid_token");

    // userinfo, introspection and revocation treat it like an opaque token
    assert_eq!(userinfo(&s, &rp, &key, &at).await.status(), 200);
    let mut params = vec![("token".to_owned(), at.clone())];
    params.extend(rp.auth(&s));
    let i: Value = s
        .post_form(&s.endpoint("introspection_endpoint"), &params, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(i["active"], true);
    let mut params = vec![("token".to_owned(), at.clone())];
    params.extend(rp.auth(&s));
    assert_eq!(
        s.post_form(&s.endpoint("revocation_endpoint"), &params, &[])
            .await
            .status(),
        200
    );
    let mut params = vec![("token".to_owned(), at.clone())];
    params.extend(rp.auth(&s));
    let i: Value = s
        .post_form(&s.endpoint("introspection_endpoint"), &params, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        i,
        json!({"active": false}),
        "introspection tells the truth about a revoked JWT"
    );
}

/// A client may register its own format: JWTs for it on a server issuing opaque tokens.
#[tokio::test]
async fn access_token_format_per_client() {
    let s = Server::start().await;
    let jwt_client = Rp::register_with(&s, Algorithm::Es256, json!({"access_token_format": "jwt"})).await;
    let plain = Rp::register(&s).await;
    let key = DpopKey::new();
    let (t, _) = tokens(&s, &jwt_client, &key).await;
    assert_eq!(t["access_token"].as_str().unwrap().split('.').count(), 3);
    let (t, _) = tokens(&s, &plain, &key).await;
    assert_eq!(t["access_token"].as_str().unwrap().len(), 43, "opaque by default");
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth(s.initial_access_token())
        .json(&json!({"redirect_uris": [REDIRECT_URI], "jwks": {"keys": [SigningKey::generate(Algorithm::Es256).unwrap().public_jwk().to_json()]},
            "access_token_format": "paseto"}))
        .send()
        .await
        .unwrap();
    let (status, error, _) = error_of(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_client_metadata"));
}

/// FAPI 2.0 HTTP Signatures in the resource crate's service (HS 5.3.1.2, 5.3.2.1): the
/// `require_token` layer verifies a client's signed request over its whole body with the
/// client's keys, refuses unsigned and tampered ones with 401 `invalid_signature`, and signs
/// every response with the API's own key; the `Verified` extractor behind the layer does not
/// admit the request a second time.
#[tokio::test]
async fn the_service_verifies_signed_requests_and_signs_responses() {
    use portcullis_httpsig::http::{HeaderMap, HeaderValue};
    use portcullis_httpsig::{RequestPolicy, RequestView, ResponseView, sign_request, verify_response};
    use portcullis_resource::ClientSigning;
    use portcullis_resource::service::StaticClientKeys;

    let s = Server::start_with(&[
        ("PORTCULLIS_TOKENS_RESOURCES", RS),
        ("PORTCULLIS_TOKENS_ACCESS_TOKEN_FORMAT", "jwt"),
    ])
    .await;
    let rp = Rp::register(&s).await;
    let key = DpopKey::new();
    let mut par = Par::new(&rp).set("scope", "openid accounts");
    par.params.push(("resource".into(), RS.into()));
    let (code, par) = authorize(&s, &rp, par).await;
    let t: Value = token_request(&s, &rp, &key, code_params(&code, &par.verifier))
        .await
        .json()
        .await
        .unwrap();
    let at = t["access_token"].as_str().unwrap().to_owned();

    let ca = std::fs::read(s.ca_path()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap();
    let source = portcullis_resource::service::JwtAccessTokens::discover(http, &s.issuer)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://127.0.0.1:{}/api/data", listener.local_addr().unwrap().port());
    let api_key = Arc::new(SigningKey::generate(Algorithm::Es256).unwrap());
    let client_jwks = portcullis_jose::Jwks::from_json(&json!({"keys": [rp.key.public_jwk().to_json()]})).unwrap();
    let mut clients = std::collections::HashMap::new();
    clients.insert(
        rp.client_id.clone(),
        ClientSigning {
            required: true,
            keys: Arc::new(client_jwks),
        },
    );
    let resource = Arc::new(ProtectedResource {
        url: api.clone(),
        audience: Some(RS.into()),
        scopes: vec!["accounts".into()],
        nonce_required: false,
        source: Arc::new(source),
        nonces: Arc::new(LocalNonces::new().unwrap()),
        replay: Arc::new(MemoryReplay::new(1000)),
        certificates: None,
        client_keys: Some(Arc::new(StaticClientKeys(clients))),
        require_signed_requests: false,
        response_signer: Some(api_key.clone()),
    });
    let app = Router::new()
        .route(
            "/api/data",
            axum::routing::post(|Verified(t): Verified, body: String| async move {
                axum::Json(json!({"sub": t.subject, "echo": body}))
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            resource.clone(),
            portcullis_resource::service::require_token,
        ))
        .with_state(resource);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let body = r#"{"amount":"1.00"}"#;
    let headers = |signed: bool, sign_body: &str| {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(&format!("DPoP {at}")).unwrap());
        h.insert(
            "dpop",
            HeaderValue::from_str(&key.proof("POST", &api, None, Some(&at))).unwrap(),
        );
        let label = signed.then(|| {
            sign_request(&mut h, "POST", &api, sign_body.as_bytes(), &rp.key, now())
                .unwrap()
                .label
        });
        (h, label)
    };
    let send = |h: HeaderMap, body: &'static str| {
        let mut req = reqwest::Client::new().post(&api);
        for (k, v) in &h {
            req = req.header(k.as_str(), v.to_str().unwrap());
        }
        req.body(body).send()
    };
    let api_jwk = api_key.public_jwk().clone();
    let check_signed =
        |status: u16, rh: &reqwest::header::HeaderMap, rbody: &[u8], h: &HeaderMap, label: Option<&str>| {
            let mut resp_headers = HeaderMap::new();
            for (k, v) in rh {
                resp_headers.append(
                    k.as_str().parse::<portcullis_httpsig::http::HeaderName>().unwrap(),
                    HeaderValue::from_bytes(v.as_bytes()).unwrap(),
                );
            }
            let lookup = |kid: &str| (api_jwk.kid() == Some(kid)).then(|| api_jwk.clone());
            verify_response(
                &ResponseView {
                    status,
                    headers: &resp_headers,
                },
                rbody,
                &RequestView {
                    method: "POST",
                    target_uri: &api,
                    headers: h,
                },
                h.contains_key("content-digest"),
                label,
                now(),
                &RequestPolicy::default(),
                &lookup,
            )
            .unwrap_or_else(|e| panic!("the API's response signature: {e}"));
        };

    // signed: admitted once (the extractor reuses the layer's admission), answered and signed
    let (h, label) = headers(true, body);
    let r = send(h.clone(), body).await.unwrap();
    let status = r.status().as_u16();
    let rh = r.headers().clone();
    let rbody = r.bytes().await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&rbody));
    check_signed(status, &rh, &rbody, &h, label.as_deref());
    let v: Value = serde_json::from_slice(&rbody).unwrap();
    assert_eq!(v["echo"], body, "the handler got the whole body");

    // unsigned from a client that must sign: 401, and the refusal is signed too
    let (h, _) = headers(false, body);
    let r = send(h.clone(), body).await.unwrap();
    let status = r.status().as_u16();
    let rh = r.headers().clone();
    let rbody = r.bytes().await.unwrap();
    assert_eq!(status, 401);
    check_signed(status, &rh, &rbody, &h, None);
    let e: Value = serde_json::from_slice(&rbody).unwrap();
    assert_eq!(e["error"], "invalid_signature");

    // the body changed after signing: 401
    let (h, _) = headers(true, body);
    let r = send(h, r#"{"amount":"9.00"}"#).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_of(r).await.1, "invalid_signature");

    // review M4: a made-up token with a large signed body is refused for its token, the body
    // never read (nothing is buffered before the token is admitted)
    let (mut h, _) = headers(true, body);
    h.insert("authorization", HeaderValue::from_static("DPoP made-up"));
    let mut req = reqwest::Client::new().post(&api);
    for (k, v) in &h {
        req = req.header(k.as_str(), v.to_str().unwrap());
    }
    let r = req.body(vec![b'x'; 2 * 1024 * 1024]).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (_, error, description) = error_of(r).await;
    // refused for its credentials (the proof's ath does not fit the made-up token), not its body
    assert_eq!(error, "invalid_dpop_proof", "{description}");
    // and an admitted one with a body over the limit is refused for its size
    let (h, _) = headers(true, body);
    let mut req = reqwest::Client::new().post(&api);
    for (k, v) in &h {
        req = req.header(k.as_str(), v.to_str().unwrap());
    }
    let r = req.body(vec![b'x'; 2 * 1024 * 1024]).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let (_, error, description) = error_of(r).await;
    assert_eq!(error, "invalid_request");
    assert!(description.contains("larger than"), "{description}");
}
