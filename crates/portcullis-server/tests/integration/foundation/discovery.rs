//! Discovery, JWKS and the HTTP conventions every response follows.

use super::*;

// AS-SP-12, AS-SP-13, AS-SP-14, AS-SP-15, AS-SP-16, AS-SP-17, AS-SP-19, AS-SP-20, §11
#[tokio::test]
async fn as_sp_12_20_discovery_documents() {
    let s = Server::start().await;
    let oidc_url = format!("{}/.well-known/openid-configuration", s.issuer);
    let oauth_url = format!("https://localhost:{}/.well-known/oauth-authorization-server", s.port);
    let mut docs = Vec::new();
    for url in [&oidc_url, &oauth_url] {
        let r = s.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {url}");
        let ct = header(&r, "content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "GET {url}: content-type {ct:?}");
        docs.push(r.json::<Value>().await.unwrap());
    }
    assert_eq!(docs[0], docs[1], "the OIDC and RFC 8414 documents differ");
    let m = &docs[0];
    // AS-SP-13
    assert_eq!(m["issuer"], json!(s.issuer), "issuer");
    // every endpoint is https under the issuer
    let prefix = format!("{}/", s.issuer);
    let obj = m.as_object().unwrap();
    let mut endpoints = 0;
    for (k, v) in obj {
        if k.ends_with("_endpoint") || k == "jwks_uri" {
            let u = v.as_str().unwrap_or_else(|| panic!("{k} is not a string: {v}"));
            assert!(
                u.starts_with(&prefix),
                "{k} = {u} is not https under the issuer {}",
                s.issuer
            );
            url::Url::parse(u).unwrap_or_else(|e| panic!("{k} = {u}: {e}"));
            endpoints += 1;
        }
    }
    for k in [
        "authorization_endpoint",
        "token_endpoint",
        "pushed_authorization_request_endpoint",
        "jwks_uri",
        "registration_endpoint",
        "userinfo_endpoint",
    ] {
        assert!(obj.contains_key(k), "metadata lacks {k}: {m}");
    }
    assert!(endpoints >= 6);
    // AS-SP-15
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    // AS-SP-20
    assert_eq!(m["response_types_supported"], json!(["code"]));
    // AS-SP-14
    assert_eq!(m["require_pushed_authorization_requests"], json!(true));
    // AS-SP-16
    assert_eq!(m["authorization_response_iss_parameter_supported"], json!(true));
    // AS-SP-19
    let methods = m["token_endpoint_auth_methods_supported"]
        .as_array()
        .expect("token_endpoint_auth_methods_supported");
    assert!(methods.contains(&json!("private_key_jwt")), "{methods:?}");
    for bad in ["none", "client_secret_basic", "client_secret_post", "client_secret_jwt"] {
        assert!(
            !methods.contains(&json!(bad)),
            "token_endpoint_auth_methods_supported lists {bad}"
        );
    }
    // AS-SP-17, AS-SP-19, SP 5.4.1: FAPI algorithms only
    let mut alg_lists = 0;
    for (k, v) in obj.iter().filter(|(k, _)| k.ends_with("_alg_values_supported")) {
        let list = v.as_array().unwrap_or_else(|| panic!("{k} is not an array"));
        assert!(!list.is_empty(), "{k} is empty");
        for a in list {
            assert!(
                a.as_str().is_some_and(|a| FAPI_ALGS.contains(&a)),
                "{k} lists {a}, not a FAPI 2.0 algorithm"
            );
        }
        alg_lists += 1;
    }
    for k in [
        "dpop_signing_alg_values_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(obj.contains_key(k), "metadata lacks {k}");
    }
    assert!(alg_lists >= 3);
    let text = m.to_string();
    assert!(!text.contains("\"plain\""), "metadata mentions plain: {text}");
    assert!(!text.contains("\"RS256\""), "metadata mentions RS256: {text}");
    assert!(!text.contains("\"HS256\""), "metadata mentions HS256: {text}");
    // §11
    assert!(
        m["scopes_supported"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("openid"))),
        "scopes_supported lacks openid"
    );
    assert!(
        m["subject_types_supported"].as_array().is_some_and(|a| !a.is_empty()),
        "subject_types_supported"
    );
    assert!(
        m["grant_types_supported"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("authorization_code")))
    );
    assert!(m["registration_endpoint"].is_string(), "registration_endpoint");
}

// AS-SP-11, AS-SP-18, OPT-18..20: do not advertise what is not implemented
#[tokio::test]
async fn as_sp_18_discovery_advertises_nothing_unimplemented() {
    let s = Server::start().await;
    for url in [
        format!("{}/.well-known/openid-configuration", s.issuer),
        format!("https://localhost:{}/.well-known/oauth-authorization-server", s.port),
    ] {
        let m = get_json(&s, &url).await;
        // RAR (RFC 9396) is not implemented yet
        let k = "authorization_details_types_supported";
        assert!(m.get(k).is_none(), "{url} advertises {k} = {}", m[k]);
        // AS-MS-15: JARM is implemented
        assert_eq!(m["response_modes_supported"], json!(["query", "query.jwt", "jwt"]));
        assert!(m["authorization_signing_alg_values_supported"].is_array());
        // AS-MS-10: request objects through PAR are implemented
        assert_eq!(m["request_parameter_supported"], json!(true));
        assert_eq!(
            m["request_object_signing_alg_values_supported"],
            json!(["PS256", "ES256", "EdDSA", "Ed25519"])
        );
    }
}

// AS-SP-18, AS-SP-19, AS-SP-88: mTLS is advertised as implemented: both certificate methods
// (a server with only the self-signed one fails the suite's discovery), certificate-bound
// tokens, and the aliases on the listener that asks for certificates (its configured URL,
// never the request's Host)
#[tokio::test]
async fn as_sp_88_mtls_endpoint_aliases() {
    // without a trusted client CA, tls_client_auth could never succeed: not offered
    let plain = Server::start().await;
    let m = get_json(&plain, &format!("{}/.well-known/openid-configuration", plain.issuer)).await;
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt", "self_signed_tls_client_auth"])
    );
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = write_client_ca(ca_dir.path());
    let s = Server::start_with(&[("PORTCULLIS_TLS_CLIENT_CA_FILE", &ca)]).await;
    let m = get_json(&s, &format!("{}/.well-known/openid-configuration", s.issuer)).await;
    assert_eq!(m["tls_client_certificate_bound_access_tokens"], json!(true));
    for key in [
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
    ] {
        assert_eq!(
            m[key],
            json!(["private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"]),
            "{key}"
        );
    }
    let aliases = m["mtls_endpoint_aliases"].as_object().expect("an object");
    let base = format!("https://localhost:{}", s.mtls_port);
    for (name, path) in [
        ("token_endpoint", "/token"),
        ("pushed_authorization_request_endpoint", "/par"),
        ("userinfo_endpoint", "/userinfo"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
    ] {
        assert_eq!(aliases[name], json!(format!("{base}{path}")), "{name}");
    }
    assert_eq!(aliases.len(), 5, "{aliases:?}");
    // the same document whichever listener and Host it is asked through
    let other = s
        .http
        .get(format!(
            "https://localhost:{}/.well-known/openid-configuration",
            s.mtls_port
        ))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(other["mtls_endpoint_aliases"], m["mtls_endpoint_aliases"]);
    // that listener serves only the aliased endpoints (and discovery and the JWKS): the pages
    // and registration are on the main listener, where no browser is asked for a certificate
    for path in ["/authorize", "/login", "/register", "/logout"] {
        let r = s
            .http
            .get(format!("https://localhost:{}{path}", s.mtls_port))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    for path in ["/jwks", "/.well-known/oauth-authorization-server"] {
        let r = s
            .http
            .get(format!("https://localhost:{}{path}", s.mtls_port))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}

// AS-SP-21, AS-SP-22
#[tokio::test]
async fn as_sp_21_jwks_three_public_signing_keys() {
    let s = Server::start().await;
    let jwks_uri = s.endpoint("jwks_uri");
    assert!(jwks_uri.starts_with("https://"), "jwks_uri {jwks_uri}");
    let jwks = server_jwks(&s).await;
    let keys = jwks["keys"].as_array().expect("keys array");
    assert_eq!(keys.len(), 3, "expected three keys: {jwks}");
    assert_eq!(kids(&jwks).len(), 3, "kids are not unique: {jwks}");
    let mut seen = HashSet::new();
    for k in keys {
        let kid = k["kid"].as_str().unwrap_or_else(|| panic!("key without kid: {k}"));
        assert!(!kid.is_empty());
        assert_eq!(k["use"], json!("sig"), "{kid}: use");
        for m in PRIVATE_JWK_MEMBERS {
            assert!(k.get(m).is_none(), "{kid} publishes private member {m}");
        }
        let (kty, alg) = (k["kty"].as_str().unwrap(), k["alg"].as_str().unwrap_or(""));
        match kty {
            "EC" => {
                assert_eq!(k["crv"], json!("P-256"), "{k}");
                assert_eq!(alg, "ES256", "{k}");
            }
            "RSA" => {
                assert_eq!(alg, "PS256", "{k}");
                let n = b64url_decode(k["n"].as_str().unwrap()).unwrap();
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                assert!(bits >= 2048, "RSA modulus has {bits} bits");
            }
            "OKP" => {
                assert_eq!(k["crv"], json!("Ed25519"), "{k}");
                assert!(alg == "EdDSA" || alg == "Ed25519", "{k}");
            }
            other => panic!("unexpected kty {other}: {k}"),
        }
        seen.insert(kty.to_owned());
        // an independent JOSE library accepts every key
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(k.clone()).unwrap_or_else(|e| panic!("jsonwebtoken cannot parse {k}: {e}"));
        jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap_or_else(|e| panic!("jsonwebtoken cannot use {k}: {e}"));
    }
    assert_eq!(
        seen,
        HashSet::from(["EC".to_owned(), "RSA".to_owned(), "OKP".to_owned()])
    );
}

// IA 2.2.1 (x-fapi-interaction-id)
#[tokio::test]
async fn ia_interaction_id_echoed_or_minted() {
    let s = Server::start().await;
    let discovery = format!("{}/.well-known/openid-configuration", s.issuer);
    let par = s.endpoint("pushed_authorization_request_endpoint");
    let reg = s.endpoint("registration_endpoint");
    let sent = uuid::Uuid::new_v4().to_string();

    // discovery
    let r = s
        .http
        .get(&discovery)
        .header("x-fapi-interaction-id", &sent)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(interaction_id(&r), sent, "discovery does not echo the interaction id");
    let r1 = s.http.get(&discovery).send().await.unwrap();
    let r2 = s.http.get(&discovery).send().await.unwrap();
    assert_ne!(
        assert_fresh_uuid(&r1),
        assert_fresh_uuid(&r2),
        "two requests got the same minted interaction id"
    );

    // an error: PAR without client authentication
    let form = [("response_type", "code"), ("client_id", "nobody")];
    let r = s
        .http
        .post(&par)
        .header("x-fapi-interaction-id", &sent)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(interaction_id(&r), sent, "PAR error does not echo the interaction id");
    let r = s.http.post(&par).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_fresh_uuid(&r);

    // the registration endpoint: refusal and success
    let r = s
        .http
        .post(&reg)
        .header("x-fapi-interaction-id", &sent)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        interaction_id(&r),
        sent,
        "registration error does not echo the interaction id"
    );
    let other = uuid::Uuid::new_v4().to_string();
    let r = s
        .http
        .post(&reg)
        .bearer_auth(s.initial_access_token())
        .header("x-fapi-interaction-id", &other)
        .json(&registration_body(&es256()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        interaction_id(&r),
        other,
        "registration does not echo the interaction id"
    );
    let r = register_raw(&s, Some(&s.initial_access_token()), &registration_body(&es256())).await;
    assert_eq!(r.status(), 201);
    assert_fresh_uuid(&r);
}

// RFC 6749 §5.1 / RFC 7591 §3.2: no-store on registration and token responses
#[tokio::test]
async fn rfc6749_no_store_on_registration_and_token_errors() {
    let s = Server::start().await;
    // registration: 201, 400, 401
    let r = register_raw(&s, Some(&s.initial_access_token()), &registration_body(&es256())).await;
    assert_eq!(r.status(), 201);
    assert_no_store(&r, "registration 201");
    let reg: Value = r.json().await.unwrap();
    let mut bad = registration_body(&es256());
    bad["redirect_uris"] = json!(["http://client.example.org/cb"]);
    let r = register_raw(&s, Some(&s.initial_access_token()), &bad).await;
    assert_eq!(r.status(), 400);
    assert_no_store(&r, "registration 400");
    let r = register_raw(&s, None, &registration_body(&es256())).await;
    assert_eq!(r.status(), 401);
    assert_no_store(&r, "registration 401");
    // RFC 7592 read
    let r = s
        .http
        .get(reg["registration_client_uri"].as_str().unwrap())
        .bearer_auth(reg["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_no_store(&r, "registration read 200");

    // token endpoint errors: no client auth, then a bad grant from an authenticated client
    let te = s.endpoint("token_endpoint");
    let r = s
        .http
        .post(&te)
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_client_error(),
        "token without client auth: {}",
        r.status()
    );
    assert_no_store(&r, "token error (no client auth)");
    let (status, body) = json_error(r, "token without client auth").await;
    assert!(status == 400 || status == 401, "{status} {body}");
    assert_eq!(body["error"], json!("invalid_client"), "{body}");

    let rp = Rp::register(&s).await;
    let mut params = rp.auth(&s);
    params.push(("grant_type".into(), "authorization_code".into()));
    params.push(("code".into(), "no-such-code".into()));
    params.push(("redirect_uri".into(), REDIRECT_URI.into()));
    params.push(("code_verifier".into(), pkce().0));
    let key = DpopKey::new();
    let r = s.post_form(&te, &params, &[key.proof("POST", &te, None, None)]).await;
    assert_eq!(r.status(), 400);
    assert_no_store(&r, "token error 400");
    json_error(r, "token 400").await;
}

// RFC 6749 §5.2, RFC 9126 §2.3 (405, 413), RFC 9110 (404)
#[tokio::test]
async fn rfc9126_http_status_and_json_errors() {
    let s = Server::start().await;
    let par = s.endpoint("pushed_authorization_request_endpoint");

    // PAR without client authentication: 401 invalid_client, JSON
    let r = s
        .http
        .post(&par)
        .form(&[("response_type", "code"), ("client_id", "nobody")])
        .send()
        .await
        .unwrap();
    let (status, body) = json_error(r, "PAR without client auth").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], json!("invalid_client"));

    // 405 on GET
    let r = s.http.get(&par).send().await.unwrap();
    assert_eq!(r.status(), 405, "GET on PAR");
    json_error(r, "GET on PAR").await;

    // 413 over 64 KiB
    let big = format!("response_type=code&client_id=x&state={}", "a".repeat(70 * 1024));
    let r = s
        .http
        .post(&par)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "a 70 KiB PAR body");
    assert!(
        header(&r, "x-fapi-interaction-id").is_some(),
        "413 without x-fapi-interaction-id"
    );
    json_error(r, "413 at PAR").await;
    // just under the limit is not refused for its size
    let small = format!("response_type=code&client_id=x&state={}", "a".repeat(60 * 1024));
    let r = s
        .http
        .post(&par)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(small)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a 60 KiB PAR body should reach client authentication");

    // 404 with a JSON body
    let r = s.http.get(format!("{}/no/such/path", s.issuer)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(header(&r, "x-fapi-interaction-id").is_some());
    json_error(r, "unknown path").await;

    // a registration refusal is JSON too
    let mut bad = registration_body(&es256());
    bad["response_types"] = json!(["token"]);
    let r = register_raw(&s, Some(&s.initial_access_token()), &bad).await;
    let (status, _) = json_error(r, "registration refusal").await;
    assert_eq!(status, 400);
}
