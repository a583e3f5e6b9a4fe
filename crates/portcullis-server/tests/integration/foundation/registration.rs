//! Dynamic Client Registration (RFC 7591) and its management (RFC 7592).

use super::*;

// AS-OPT-21, AS-OPT-25
#[tokio::test]
async fn as_opt_21_registration_accepted() {
    let s = Server::start().await;
    let key = es256();
    let body = registration_body(&key);
    let before = now();
    let r = register_raw(&s, Some(&s.initial_access_token()), &body).await;
    assert_eq!(r.status(), 201);
    let ct = header(&r, "content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let reg: Value = r.json().await.unwrap();
    let client_id = reg["client_id"].as_str().expect("client_id");
    assert!(!client_id.is_empty());
    let iat = reg["client_id_issued_at"]
        .as_i64()
        .expect("client_id_issued_at is a number");
    assert!((before - 5..=now() + 5).contains(&iat), "client_id_issued_at {iat}");
    let rat = reg["registration_access_token"]
        .as_str()
        .expect("registration_access_token");
    assert!(
        rat.len() >= 43,
        "registration_access_token too short for 128 bits: {rat:?} (AS-OPT-25)"
    );
    assert_eq!(
        reg["registration_client_uri"],
        json!(format!("{}/{client_id}", s.endpoint("registration_endpoint"))),
        "registration_client_uri"
    );
    for k in [
        "client_name",
        "redirect_uris",
        "grant_types",
        "response_types",
        "token_endpoint_auth_method",
        "jwks",
        "dpop_bound_access_tokens",
    ] {
        assert_eq!(reg[k], body[k], "{k} not echoed: {reg}");
    }
    // AS-SP-31: the client cannot choose its client_id
    let mut chosen = body.clone();
    chosen["client_id"] = json!(USER);
    let r = register_raw(&s, Some(&s.initial_access_token()), &chosen).await;
    assert_eq!(r.status(), 201);
    let reg3: Value = r.json().await.unwrap();
    assert_ne!(reg3["client_id"], json!(USER), "the client chose its own client_id");
    // a second registration gets another client_id and another token
    let reg2: Value = register_raw(&s, Some(&s.initial_access_token()), &body)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(reg2["client_id"], reg["client_id"]);
    assert_ne!(reg2["registration_access_token"], reg["registration_access_token"]);
    // and the registered client authenticates at PAR
    let rp = Rp {
        client_id: client_id.to_owned(),
        key,
        registration: reg.clone(),
    };
    Par::new(&rp).push(&s, &rp).await;
}

// AS-OPT-22, AS-OPT-23, AS-SP-23, AS-SP-30, AS-SP-38
#[tokio::test]
async fn as_opt_23_registration_refusals() {
    let s = Server::start().await;
    let token = s.initial_access_token();
    let rsa_1024 = json!({"kty": "RSA", "e": "AQAB", "n": b64url([0xc5u8; 128])});
    let mut with_d = es256().public_jwk().to_json();
    with_d["d"] = json!(b64url([7u8; 32]));
    let oct = json!({"kty": "oct", "k": b64url([1u8; 32])});
    // Issue 13 item 11: keys marked `use: enc` used to skip every check
    let mut enc_with_d = with_d.clone();
    enc_with_d["use"] = json!("enc");
    enc_with_d["alg"] = json!("ECDH-ES");
    let enc_oct = json!({"kty": "oct", "use": "enc", "k": b64url([1u8; 32])});
    let with_enc = |extra: Value| -> Edit {
        Box::new(move |v: &mut Value| v["jwks"]["keys"].as_array_mut().unwrap().push(extra.clone()))
    };
    let es_jwk = es256().public_jwk().to_json();
    // Issue 13 item 12: the same RSA key with a leading zero octet in n, or in e
    let rsa_jwk = SigningKey::generate(Algorithm::Ps256).unwrap().public_jwk().to_json();
    let n = b64url_decode(rsa_jwk["n"].as_str().unwrap()).unwrap();
    let mut rsa_zero_n = rsa_jwk.clone();
    rsa_zero_n["n"] = json!(b64url([&[0u8][..], &n].concat()));
    let mut rsa_zero_e = rsa_jwk.clone();
    rsa_zero_e["e"] = json!(b64url([0u8, 1, 0, 1]));
    let rlo_name = format!("{}\u{202E}gnp.exe", "a".repeat(20 * 1024));
    let no_jwks = |v: &mut Value| {
        v.as_object_mut().unwrap().remove("jwks");
    };
    type Edit = Box<dyn Fn(&mut Value)>;
    let set = |k: &'static str, val: Value| -> Edit { Box::new(move |v: &mut Value| v[k] = val.clone()) };
    let cases: Vec<(&str, Edit, &str, &[&str])> = vec![
        (
            "http redirect URI",
            set("redirect_uris", json!(["http://client.example.org/cb"])),
            "invalid_redirect_uri",
            &["redirect_uris"],
        ),
        (
            "redirect URI with fragment",
            set("redirect_uris", json!(["https://client.example.org/cb#x"])),
            "invalid_redirect_uri",
            &["redirect_uris"],
        ),
        (
            "missing redirect_uris",
            Box::new(|v: &mut Value| {
                v.as_object_mut().unwrap().remove("redirect_uris");
            }),
            "invalid_redirect_uri",
            &["redirect_uris"],
        ),
        (
            "empty redirect_uris",
            set("redirect_uris", json!([])),
            "invalid_redirect_uri",
            &["redirect_uris"],
        ),
        (
            "response_types token",
            set("response_types", json!(["token"])),
            "invalid_client_metadata",
            &["response_types"],
        ),
        (
            "response_types code id_token",
            set("response_types", json!(["code id_token"])),
            "invalid_client_metadata",
            &["response_types"],
        ),
        (
            "grant password",
            set("grant_types", json!(["authorization_code", "password"])),
            "invalid_client_metadata",
            &["grant_types"],
        ),
        (
            "grant implicit",
            set("grant_types", json!(["authorization_code", "implicit"])),
            "invalid_client_metadata",
            &["grant_types"],
        ),
        (
            "grant client_credentials",
            set("grant_types", json!(["authorization_code", "client_credentials"])),
            "invalid_client_metadata",
            &["grant_types"],
        ),
        (
            "client_secret_basic",
            set("token_endpoint_auth_method", json!("client_secret_basic")),
            "invalid_client_metadata",
            &["token_endpoint_auth_method"],
        ),
        (
            "auth method none",
            set("token_endpoint_auth_method", json!("none")),
            "invalid_client_metadata",
            &["token_endpoint_auth_method"],
        ),
        (
            "client_secret_jwt",
            set("token_endpoint_auth_method", json!("client_secret_jwt")),
            "invalid_client_metadata",
            &["token_endpoint_auth_method"],
        ),
        (
            "client_secret_post",
            set("token_endpoint_auth_method", json!("client_secret_post")),
            "invalid_client_metadata",
            &["token_endpoint_auth_method"],
        ),
        (
            "private_key_jwt without keys",
            Box::new(no_jwks),
            "invalid_client_metadata",
            &["jwks"],
        ),
        (
            "jwks and jwks_uri",
            set("jwks_uri", json!("https://client.example.org/jwks")),
            "invalid_client_metadata",
            &["jwks", "jwks_uri"],
        ),
        (
            "jwks_uri over http",
            Box::new(move |v: &mut Value| {
                no_jwks(v);
                v["jwks_uri"] = json!("http://client.example.org/jwks");
            }),
            "invalid_client_metadata",
            &["jwks_uri"],
        ),
        (
            "JWK with private part d",
            set("jwks", json!({"keys": [with_d]})),
            "invalid_client_metadata",
            &["jwks"],
        ),
        (
            "RSA key of 1024 bits",
            set("jwks", json!({"keys": [rsa_1024]})),
            "invalid_client_metadata",
            &["jwks"],
        ),
        (
            "oct key",
            set("jwks", json!({"keys": [oct]})),
            "invalid_client_metadata",
            &["jwks"],
        ),
        (
            "token_endpoint_auth_signing_alg RS256",
            set("token_endpoint_auth_signing_alg", json!("RS256")),
            "invalid_client_metadata",
            &["token_endpoint_auth_signing_alg"],
        ),
        (
            "id_token_signed_response_alg none",
            set("id_token_signed_response_alg", json!("none")),
            "invalid_client_metadata",
            &["id_token_signed_response_alg"],
        ),
        (
            "tls_client_auth without subject field",
            Box::new(move |v: &mut Value| {
                no_jwks(v);
                v["token_endpoint_auth_method"] = json!("tls_client_auth");
            }),
            "invalid_client_metadata",
            &["tls_client_auth"],
        ),
        (
            "tls_client_auth with two subject fields",
            Box::new(move |v: &mut Value| {
                no_jwks(v);
                v["token_endpoint_auth_method"] = json!("tls_client_auth");
                v["tls_client_auth_subject_dn"] = json!("CN=client");
                v["tls_client_auth_san_dns"] = json!("client.example.org");
            }),
            "invalid_client_metadata",
            &["tls_client_auth"],
        ),
        // Issue 13 item 11: private and symmetric keys, whatever their use
        (
            "use:enc JWK with private part d",
            with_enc(enc_with_d),
            "invalid_client_metadata",
            &["jwks", "private"],
        ),
        (
            "use:enc oct key",
            with_enc(enc_oct),
            "invalid_client_metadata",
            &["jwks", "oct"],
        ),
        (
            "17 keys in jwks",
            set("jwks", json!({"keys": vec![es_jwk; 17]})),
            "invalid_client_metadata",
            &["jwks", "16"],
        ),
        // Issue 13 item 12: non-minimal RSA integers
        (
            "RSA n with a leading zero octet",
            set("jwks", json!({"keys": [rsa_zero_n]})),
            "invalid_client_metadata",
            &["jwks", "leading zero"],
        ),
        (
            "RSA e with a leading zero octet",
            set("jwks", json!({"keys": [rsa_zero_e]})),
            "invalid_client_metadata",
            &["jwks", "leading zero"],
        ),
        // Issue 13 item 11: URL metadata is https only
        (
            "logo_uri javascript:",
            set("logo_uri", json!("javascript:alert(document.cookie)")),
            "invalid_client_metadata",
            &["logo_uri"],
        ),
        (
            "policy_uri data:",
            set("policy_uri", json!("data:text/html,<script>alert(1)</script>")),
            "invalid_client_metadata",
            &["policy_uri"],
        ),
        (
            "client_uri over http",
            set("client_uri", json!("http://client.example.org/")),
            "invalid_client_metadata",
            &["client_uri"],
        ),
        (
            "tos_uri relative",
            set("tos_uri", json!("/tos")),
            "invalid_client_metadata",
            &["tos_uri"],
        ),
        (
            "logo_uri with user information",
            set("logo_uri", json!("https://bank.example@evil.example/logo.png")),
            "invalid_client_metadata",
            &["logo_uri"],
        ),
        // Issue 13 item 11: bounded, display-safe strings
        (
            "20 KB client_name ending in U+202E",
            set("client_name", json!(rlo_name)),
            "invalid_client_metadata",
            &["client_name", "200"],
        ),
        (
            "client_name with U+202E",
            set("client_name", json!("Example Bank\u{202E}gnp.exe")),
            "invalid_client_metadata",
            &["client_name", "bidirectional"],
        ),
        (
            "client_name with a newline",
            set("client_name", json!("Example Bank\nApproved by the bank")),
            "invalid_client_metadata",
            &["client_name", "control"],
        ),
        (
            "11 contacts",
            set("contacts", json!(vec!["ops@client.example.org"; 11])),
            "invalid_client_metadata",
            &["contacts", "10"],
        ),
        (
            "contact with U+2066",
            set("contacts", json!(["ops@client.example.org\u{2066}"])),
            "invalid_client_metadata",
            &["contacts"],
        ),
        (
            "software_version too long",
            set("software_version", json!("1".repeat(257))),
            "invalid_client_metadata",
            &["software_version"],
        ),
        (
            "21 redirect URIs",
            set("redirect_uris", json!(vec![REDIRECT_URI; 21])),
            "invalid_client_metadata",
            &["redirect_uris", "20"],
        ),
        (
            "redirect URI with a tab",
            set("redirect_uris", json!(["https://client.example.org/c\tb"])),
            "invalid_redirect_uri",
            &["redirect_uris"],
        ),
    ];
    let mut failures = Vec::new();
    for (what, edit, error, fields) in &cases {
        let mut body = registration_body(&es256());
        edit(&mut body);
        let r = register_raw(&s, Some(&token), &body).await;
        let (status, err) = json_error(r, what).await;
        let description = err["error_description"].as_str().unwrap();
        if status != 400 || err["error"] != json!(error) || !fields.iter().all(|f| description.contains(f)) {
            failures.push(format!(
                "{what}: expected 400 {error} naming {fields:?}, got {status} {err}"
            ));
        }
    }
    // a body that is not JSON at all
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, err) = json_error(r, "non-JSON body").await;
    if status != 400 || err["error"] != json!("invalid_client_metadata") {
        failures.push(format!(
            "non-JSON body: expected 400 invalid_client_metadata, got {status} {err}"
        ));
    }
    // a JSON value that is not an object
    let r = register_raw(&s, Some(&token), &json!(["redirect_uris"])).await;
    let (status, err) = json_error(r, "JSON array body").await;
    if status != 400 || err["error"] != json!("invalid_client_metadata") {
        failures.push(format!(
            "JSON array body: expected 400 invalid_client_metadata, got {status} {err}"
        ));
    }
    assert!(
        failures.is_empty(),
        "registration refusals wrong:\n{}",
        failures.join("\n")
    );
    // nothing of the above was registered
    let out = s.cli(&["client", "list"], None);
    assert!(out.status.success());
    assert_eq!(stdout_of(&out).trim(), "", "refused registrations left clients behind");
}

// AS-OPT-21 (initial access token), RFC 6750 §3
#[tokio::test]
async fn as_opt_21_initial_access_token_required() {
    let s = Server::start().await;
    let body = registration_body(&es256());
    // none
    let r = register_raw(&s, None, &body).await;
    assert_eq!(r.status(), 401);
    let www = header(&r, "www-authenticate").unwrap_or_default();
    assert!(
        www.starts_with("Bearer"),
        "WWW-Authenticate {www:?} should be a Bearer challenge"
    );
    json_error(r, "registration without token").await;
    // wrong
    let r = register_raw(&s, Some("not-a-real-initial-access-token-0123456789abcdef"), &body).await;
    let www = header(&r, "www-authenticate").unwrap_or_default();
    let (status, err) = json_error(r, "registration with a wrong token").await;
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["error"], json!("invalid_token"), "{err}");
    assert!(www.starts_with("Bearer"), "WWW-Authenticate {www:?}");
    // a registration access token is not an initial access token
    let reg: Value = register_raw(&s, Some(&s.initial_access_token()), &body)
        .await
        .json()
        .await
        .unwrap();
    let r = register_raw(&s, Some(reg["registration_access_token"].as_str().unwrap()), &body).await;
    assert_eq!(
        r.status(),
        401,
        "a registration access token served as an initial access token"
    );
    // an unlimited token serves several registrations
    let t = s.initial_access_token();
    for i in 0..3 {
        assert_eq!(
            register_raw(&s, Some(&t), &body).await.status(),
            201,
            "registration {i} with an unlimited token"
        );
    }
}

// AS-OPT-21: --uses N
#[tokio::test]
async fn as_opt_21_initial_access_token_single_use() {
    let s = Server::start().await;
    let t = registration_token(&s, &["--uses", "1"]);
    let r = register_raw(&s, Some(&t), &registration_body(&es256())).await;
    assert_eq!(r.status(), 201, "first registration with a --uses 1 token");
    let r = register_raw(&s, Some(&t), &registration_body(&es256())).await;
    let (status, err) = json_error(r, "second use").await;
    assert_eq!(status, 401, "second registration with a --uses 1 token: {err}");
    assert_eq!(err["error"], json!("invalid_token"));

    // --uses 2: exactly two
    let t = registration_token(&s, &["--uses", "2"]);
    for i in 0..2 {
        assert_eq!(
            register_raw(&s, Some(&t), &registration_body(&es256())).await.status(),
            201,
            "use {i} of 2"
        );
    }
    assert_eq!(
        register_raw(&s, Some(&t), &registration_body(&es256())).await.status(),
        401,
        "use 3 of 2"
    );

    // --uses 0 is refused by the CLI
    let out = s.cli(&["registration-token", "create", "--uses", "0"], None);
    assert_usage_error(&out, "--uses 0");
}

// AS-OPT-21: a refused registration does not spend a use
#[tokio::test]
async fn as_opt_21_refused_registration_keeps_the_use() {
    let s = Server::start().await;
    let t = registration_token(&s, &["--uses", "1"]);
    let mut bad = registration_body(&es256());
    bad["token_endpoint_auth_method"] = json!("client_secret_basic");
    let r = register_raw(&s, Some(&t), &bad).await;
    assert_eq!(r.status(), 400, "bad registration");
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "non-JSON registration");
    let r = register_raw(&s, Some(&t), &registration_body(&es256())).await;
    assert_eq!(
        r.status(),
        201,
        "the good registration after refused ones must still have its use"
    );
    assert_eq!(
        register_raw(&s, Some(&t), &registration_body(&es256())).await.status(),
        401
    );
}

// AS-OPT-21: --ttl
#[tokio::test]
async fn as_opt_21_initial_access_token_expires() {
    let s = Server::start().await;
    let t = registration_token(&s, &["--ttl", "1s"]);
    let long = registration_token(&s, &["--ttl", "1h"]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = register_raw(&s, Some(&t), &registration_body(&es256())).await;
    let (status, err) = json_error(r, "expired token").await;
    assert_eq!(status, 401, "registration with an expired initial access token: {err}");
    assert_eq!(err["error"], json!("invalid_token"));
    assert_eq!(
        register_raw(&s, Some(&long), &registration_body(&es256()))
            .await
            .status(),
        201
    );
    // bad durations are usage errors
    for bad in ["1y", "abc", "0s"] {
        let out = s.cli(&["registration-token", "create", "--ttl", bad], None);
        assert_usage_error(&out, &format!("--ttl {bad}"));
    }
}

// AS-OPT-24: read and update
#[tokio::test]
async fn as_opt_24_read_and_update() {
    let s = Server::start().await;
    let rp = dcr_client(&s).await;
    let reg = &rp.registration;
    let uri = reg["registration_client_uri"].as_str().unwrap().to_owned();
    let mut rat = reg["registration_access_token"].as_str().unwrap().to_owned();

    // GET → 200, same metadata, without the registration access token
    let r = s.http.get(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let read: Value = r.json().await.unwrap();
    for (k, v) in reg.as_object().unwrap() {
        if k != "registration_access_token" {
            assert_eq!(&read[k], v, "GET differs from the registration in {k}");
        }
    }

    // the second redirect URI works before the update
    Par::new(&rp).set("redirect_uri", REDIRECT_URI_2).push(&s, &rp).await;

    // PUT a full replacement
    let new_uri = "https://client.example.org/new-cb";
    let mut update = registration_body(&rp.key);
    update["client_id"] = json!(rp.client_id);
    update["client_name"] = json!("Renamed client");
    update["redirect_uris"] = json!([REDIRECT_URI, new_uri]);
    let r = s.http.put(&uri).bearer_auth(&rat).json(&update).send().await.unwrap();
    let status = r.status();
    assert_no_store(&r, "PUT 200");
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "PUT: {body}");
    // issue 13 item 14 (RFC 7592 §3): every update rotates the registration access token; the
    // new one is in the response and the old one stops working
    let new_rat = body["registration_access_token"].as_str().unwrap().to_owned();
    assert_ne!(new_rat, rat);
    let r = s.http.get(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 401, "the old registration access token still works");
    rat = new_rat;
    assert_eq!(body["client_name"], json!("Renamed client"));
    assert_eq!(body["redirect_uris"], json!([REDIRECT_URI, new_uri]));
    assert_eq!(body["client_id"], json!(rp.client_id));
    let read: Value = s
        .http
        .get(&uri)
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        read["client_name"],
        json!("Renamed client"),
        "update not visible on GET: {read}"
    );
    assert_eq!(
        read["redirect_uris"],
        json!([REDIRECT_URI, new_uri]),
        "update not visible on GET: {read}"
    );
    assert_eq!(
        read["client_id_issued_at"], reg["client_id_issued_at"],
        "PUT changed client_id_issued_at"
    );

    // the change applies at once at PAR: the new URI works, the dropped one does not
    Par::new(&rp).set("redirect_uri", new_uri).push(&s, &rp).await;
    let r = Par::new(&rp)
        .set("redirect_uri", REDIRECT_URI_2)
        .send(&s, &rp, None)
        .await;
    let (status, err) = json_error(r, "PAR with a removed redirect URI").await;
    assert_eq!(status, 400, "PAR with a redirect URI removed by PUT: {err}");

    // PUT with omitted optional fields clears them (full replacement)
    let mut minimal = update.clone();
    minimal.as_object_mut().unwrap().remove("client_name");
    let r = s.http.put(&uri).bearer_auth(&rat).json(&minimal).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    rat = body["registration_access_token"].as_str().unwrap().to_owned();
    let read: Value = s
        .http
        .get(&uri)
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        read.get("client_name").is_none(),
        "PUT without client_name kept it: {read}"
    );

    // PUT with the GET body itself (server fields unchanged) is accepted
    let r = s.http.put(&uri).bearer_auth(&rat).json(&read).send().await.unwrap();
    assert_eq!(r.status(), 200, "PUT of the GET response");
}

// AS-OPT-24: refused updates
#[tokio::test]
async fn as_opt_24_update_refusals() {
    let s = Server::start().await;
    let rp = dcr_client(&s).await;
    let uri = rp.registration["registration_client_uri"].as_str().unwrap().to_owned();
    let rat = rp.registration["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut good = registration_body(&rp.key);
    good["client_id"] = json!(rp.client_id);

    // a different client_id in the body
    let mut other = good.clone();
    other["client_id"] = json!("someone-else");
    let r = s.http.put(&uri).bearer_auth(&rat).json(&other).send().await.unwrap();
    let (status, err) = json_error(r, "PUT with another client_id").await;
    assert_eq!(status, 400, "PUT with another client_id: {err}");
    // no client_id at all
    let mut none = good.clone();
    none.as_object_mut().unwrap().remove("client_id");
    let r = s.http.put(&uri).bearer_auth(&rat).json(&none).send().await.unwrap();
    let (status, err) = json_error(r, "PUT without client_id").await;
    assert_eq!(status, 400, "PUT without client_id: {err}");
    // a registration_access_token field (RFC 7592 §2.2: MUST NOT be sent)
    let mut with_rat = good.clone();
    with_rat["registration_access_token"] = json!("chosen-by-the-client-0123456789abcdefghijklmnop");
    let r = s.http.put(&uri).bearer_auth(&rat).json(&with_rat).send().await.unwrap();
    let (status, err) = json_error(r, "PUT with registration_access_token").await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"], json!("invalid_client_metadata"), "{err}");
    assert!(
        err["error_description"]
            .as_str()
            .unwrap()
            .contains("registration_access_token"),
        "{err}"
    );
    // metadata that a registration would refuse is refused on update too
    let mut http = good.clone();
    http["redirect_uris"] = json!(["http://client.example.org/cb"]);
    let r = s.http.put(&uri).bearer_auth(&rat).json(&http).send().await.unwrap();
    let (status, err) = json_error(r, "PUT with an http redirect URI").await;
    assert_eq!(
        (status, err["error"].as_str().unwrap()),
        (400, "invalid_redirect_uri"),
        "{err}"
    );
    // Issue 13 item 11: an update goes through the same metadata checks
    for (field, value) in [
        ("logo_uri", json!("javascript:alert(1)")),
        ("client_name", json!("Example Bank\u{202E}gnp.exe")),
    ] {
        let mut bad = good.clone();
        bad[field] = value;
        let r = s.http.put(&uri).bearer_auth(&rat).json(&bad).send().await.unwrap();
        let (status, err) = json_error(r, field).await;
        assert_eq!(
            (status, err["error"].as_str().unwrap()),
            (400, "invalid_client_metadata"),
            "{err}"
        );
        assert!(err["error_description"].as_str().unwrap().contains(field), "{err}");
    }
    let mut enc_oct = good.clone();
    enc_oct["jwks"]["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "oct", "use": "enc", "k": b64url([1u8; 32])}));
    let r = s.http.put(&uri).bearer_auth(&rat).json(&enc_oct).send().await.unwrap();
    let (status, err) = json_error(r, "PUT with a use:enc oct key").await;
    assert_eq!(
        (status, err["error"].as_str().unwrap()),
        (400, "invalid_client_metadata"),
        "{err}"
    );
    // none of that changed anything, and the old token still works
    let read: Value = s
        .http
        .get(&uri)
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["redirect_uris"], rp.registration["redirect_uris"]);
    assert_eq!(read["client_name"], rp.registration["client_name"]);
    assert_eq!(read["jwks"], rp.registration["jwks"]);
    assert!(read.get("logo_uri").is_none(), "{read}");
}

// AS-OPT-24: authentication of the management endpoints
#[tokio::test]
async fn as_opt_24_management_requires_the_registration_token() {
    let s = Server::start().await;
    let rp = dcr_client(&s).await;
    let other = dcr_client(&s).await;
    let uri = rp.registration["registration_client_uri"].as_str().unwrap().to_owned();
    let mut body = registration_body(&rp.key);
    body["client_id"] = json!(rp.client_id);
    let wrong = "wrong-registration-access-token-0123456789abcdefgh";
    let other_rat = other.registration["registration_access_token"].as_str().unwrap();
    for (what, token) in [
        ("no token", None),
        ("wrong token", Some(wrong)),
        ("another client's token", Some(other_rat)),
    ] {
        for method in ["GET", "PUT", "DELETE"] {
            let mut req = s.http.request(method.parse().unwrap(), &uri);
            if method == "PUT" {
                req = req.json(&body);
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} with {what}");
            let www = header(&r, "www-authenticate").unwrap_or_default();
            assert!(
                www.starts_with("Bearer"),
                "{method} with {what}: WWW-Authenticate {www:?}"
            );
            let (_, err) = json_error(r, &format!("{method} with {what}")).await;
            assert_eq!(err["error"], json!("invalid_token"), "{method} with {what}: {err}");
        }
    }
    // an unknown client looks the same as a wrong token
    let r = s
        .http
        .get(format!("{}/no-such-client", s.endpoint("registration_endpoint")))
        .bearer_auth(rp.registration["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "GET of an unknown client");
    // the client is untouched
    let r = s
        .http
        .get(&uri)
        .bearer_auth(rp.registration["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

// AS-OPT-24: delete
#[tokio::test]
async fn as_opt_24_delete() {
    let s = Server::start().await;
    let rp = dcr_client(&s).await;
    let uri = rp.registration["registration_client_uri"].as_str().unwrap().to_owned();
    let rat = rp.registration["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // the client works (and is now in the server's cache)
    Par::new(&rp).push(&s, &rp).await;
    let r = s.http.delete(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 204, "DELETE");
    assert!(r.bytes().await.unwrap().is_empty(), "204 with a body");
    let r = s.http.get(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 401, "GET after DELETE");
    let r = s.http.delete(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 401, "second DELETE");
    // the deleted client can no longer authenticate
    let r = Par::new(&rp).send(&s, &rp, None).await;
    let (status, err) = json_error(r, "PAR of a deleted client").await;
    assert_eq!(status, 401, "PAR of a deleted client: {err}");
    assert_eq!(err["error"], json!("invalid_client"), "{err}");
    let out = s.cli(&["client", "show", &rp.client_id], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "client show after DELETE: {}",
        stdout_of(&out)
    );
}

// AS-OPT-25: credentials are stored hashed
#[tokio::test]
async fn as_opt_25_tokens_stored_hashed() {
    let s = Server::start().await;
    let iat = s.initial_access_token();
    let r = register_raw(&s, Some(&iat), &registration_body(&es256())).await;
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.unwrap();
    let rat = reg["registration_access_token"].as_str().unwrap();
    let client_id = reg["client_id"].as_str().unwrap();
    let bytes = database_bytes(&s.dir);
    // sanity: we are reading the right files
    assert!(
        contains(&bytes, client_id),
        "the client_id is not in the database files: wrong file?"
    );
    assert!(
        !contains(&bytes, rat),
        "the registration access token is stored in clear"
    );
    assert!(!contains(&bytes, &iat), "the initial access token is stored in clear");
    // and after a checkpoint/restart too
    let mut s = s;
    s.restart().await;
    let bytes = database_bytes(&s.dir);
    assert!(
        !contains(&bytes, rat),
        "the registration access token is stored in clear (after restart)"
    );
    assert!(
        !contains(&bytes, &iat),
        "the initial access token is stored in clear (after restart)"
    );
}

/// RFC 6750 §3.1: a wrong initial access token is 401 whatever the body holds; the metadata
/// is not even looked at.
#[tokio::test]
async fn as_opt_21_wrong_token_is_401_before_validation() {
    let s = Server::start().await;
    let bad_meta = json!({"redirect_uris": ["http://x.example/cb"]});
    let r = register_raw(&s, Some("wrong-token"), &bad_meta).await;
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").is_some_and(|w| w.starts_with("Bearer")));
    let (_, body) = json_error(r, "wrong token").await;
    assert_eq!(body["error"], "invalid_token");
    // not JSON at all, with a wrong token: still 401
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth("wrong-token")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// RFC 8705 registration rules: one sender constraint per client (certificate-bound or
/// DPoP-bound, never both, never neither); exactly one well-formed tls_client_auth subject; a
/// self-signed client registers its certificate as an x5c. A tls_client_auth client that comes
/// without its certificate is told so.
#[tokio::test]
async fn registration_rules_for_mtls() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = write_client_ca(ca_dir.path());
    let s = Server::start_with(&[("PORTCULLIS_TLS_CLIENT_CA_FILE", &ca)]).await;
    let mut body = registration_body(&es256());
    body.as_object_mut().unwrap().remove("dpop_bound_access_tokens");
    body["tls_client_certificate_bound_access_tokens"] = json!(true);
    let r = register_raw(&s, Some(&s.initial_access_token()), &body).await;
    assert_eq!(r.status(), 201, "certificate-bound tokens with private_key_jwt");
    let reg: Value = r.json().await.unwrap();
    assert_eq!(reg["tls_client_certificate_bound_access_tokens"], json!(true));
    assert_eq!(reg["dpop_bound_access_tokens"], json!(false));
    let refused = [
        json!({"tls_client_certificate_bound_access_tokens": true, "dpop_bound_access_tokens": true}),
        json!({"dpop_bound_access_tokens": false}),
    ];
    for extra in refused {
        let mut body = registration_body(&es256());
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = register_raw(&s, Some(&s.initial_access_token()), &body).await;
        let (status, e) = json_error(r, "constraints").await;
        assert_eq!(
            (status, e["error"].as_str().unwrap()),
            (400, "invalid_client_metadata"),
            "{extra}"
        );
        assert!(
            e["error_description"]
                .as_str()
                .unwrap()
                .contains("dpop_bound_access_tokens"),
            "{e}"
        );
    }
    for (subjects, what) in [
        (json!({}), "no subject"),
        (
            json!({"tls_client_auth_subject_dn": "CN=a", "tls_client_auth_san_dns": "a.example"}),
            "two subjects",
        ),
        (
            json!({"tls_client_auth_subject_dn": "CN=a,,"}),
            "a DN that does not parse",
        ),
        (json!({"tls_client_auth_san_ip": "not-an-ip"}), "an IP that is not one"),
    ] {
        let mut body = json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "tls_client_auth",
        });
        for (k, v) in subjects.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = register_raw(&s, Some(&s.initial_access_token()), &body).await;
        let (status, e) = json_error(r, what).await;
        assert_eq!(
            (status, e["error"].as_str().unwrap()),
            (400, "invalid_client_metadata"),
            "{what}: {e}"
        );
    }
    let mut body = registration_body(&es256());
    body["token_endpoint_auth_method"] = json!("self_signed_tls_client_auth");
    let r = register_raw(&s, Some(&s.initial_access_token()), &body).await;
    let (status, e) = json_error(r, "self-signed without x5c").await;
    assert_eq!(
        (status, e["error"].as_str().unwrap()),
        (400, "invalid_client_metadata"),
        "{e}"
    );
    assert!(e["error_description"].as_str().unwrap().contains("x5c"), "{e}");

    let body = json!({
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_subject_dn": "CN=client",
    });
    let r = register_raw(&s, Some(&s.initial_access_token()), &body).await;
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.unwrap();
    let client_id = reg["client_id"].as_str().unwrap();
    let params = vec![
        ("client_id".to_owned(), client_id.to_owned()),
        ("response_type".to_owned(), "code".to_owned()),
    ];
    let r = s
        .post_form(&s.endpoint("pushed_authorization_request_endpoint"), &params, &[])
        .await;
    let (status, e) = json_error(r, "mtls client").await;
    assert_eq!(status, 401);
    assert_eq!(e["error"], "invalid_client");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("no client certificate was presented"),
        "{e}"
    );
}
