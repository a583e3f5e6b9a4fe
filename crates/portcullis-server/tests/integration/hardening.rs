//! Issue 13: the defects an outside security review found in the running server, each driven
//! against the real binary (items whose cause is best reached directly are tested beside the
//! code: core's protocol tests, the store contract, the server's unit tests).

use std::time::Duration;

use portcullis_jose::Algorithm;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION};
use serde_json::{Value, json};

use crate::harness::*;

/// Item 1: a body of thousands of distinct keys is refused at once (400 invalid_request), and
/// so is a repeated parameter, before any client authentication.
#[tokio::test]
async fn item1_parameter_floods_are_refused() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let mut params: Vec<(String, String)> = (0..5000).map(|i| (format!("k{i}"), "v".into())).collect();
    params.extend(rp.auth(&s));
    let r = s
        .post_form(&s.endpoint("pushed_authorization_request_endpoint"), &params, &[])
        .await;
    let (status, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"), "{description}");
    assert!(description.contains("more than"), "{description}");
    let mut par = Par::new(&rp).params;
    par.push(("state".into(), "again".into()));
    par.extend(rp.auth(&s));
    let r = s
        .post_form(&s.endpoint("pushed_authorization_request_endpoint"), &par, &[])
        .await;
    let (status, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"), "{description}");
    assert!(description.contains("state was sent more than once"), "{description}");
}

/// Item 6: the login form's CSRF token does not post the consent form, and prompt=login /
/// max_age are decided again when consent is submitted.
#[tokio::test]
async fn item6_consent_rechecks_the_login() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let mut b = Browser::default();
    // an older session in this browser
    let first = Par::new(&rp).push(&s, &rp).await;
    b.run(&s, &rp.client_id, &first, "allow").await;

    // prompt=login: the page asks for a login, even right after one (a login counts only for
    // the request it was made for); its token posted to /consent is refused
    let uri = Par::new(&rp).set("prompt", "login").push(&s, &rp).await;
    let (status, _, page) = b.get(&s, &Browser::authorization_url(&s, &rp.client_id, &uri)).await;
    assert_eq!(status, 200);
    assert!(page.contains("name=\"password\""), "prompt=login shows the login page");
    let mut form = hidden_fields(&page);
    form.push(("decision".into(), "allow".into()));
    let consent = s.endpoint("authorization_endpoint").replace("/authorize", "/consent");
    let (status, headers, body) = b.post(&s, &consent, &form).await;
    assert_eq!(status, 403, "the login form's token posted the consent form: {body}");
    assert!(headers.get(LOCATION).is_none());

    // max_age: the consent page is shown while the (earlier) login is fresh; once it is not,
    // the posted consent goes back to the login instead of issuing a code
    let uri = Par::new(&rp).set("max_age", "2").push(&s, &rp).await;
    let url = Browser::authorization_url(&s, &rp.client_id, &uri);
    let (_, _, page) = b.get(&s, &url).await;
    assert!(
        page.contains("name=\"decision\""),
        "consent page within max_age: {page}"
    );
    // (times are whole seconds: 3.5 s later the login is at least 3 s old, over max_age)
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut form = hidden_fields(&page);
    form.push(("decision".into(), "allow".into()));
    let (status, headers, body) = b.post(&s, &absolute(&s, &form_action(&page)), &form).await;
    assert_eq!(status, 303, "{body}");
    let location = headers.get(LOCATION).unwrap().to_str().unwrap();
    assert!(
        !location.starts_with(REDIRECT_URI) && location.contains("/authorize"),
        "a code was issued for a login older than max_age: {location}"
    );
}

/// Item 8: a spent code presented by another client is refused and revokes nothing of the
/// owner's grant.
#[tokio::test]
async fn item8_another_client_cannot_revoke_a_grant() {
    let s = Server::start().await;
    let owner = Rp::register(&s).await;
    let other = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let (code, par) = authorize(&s, &owner, Par::new(&owner)).await;
    let r = token_request(&s, &owner, &dpop, code_params(&code, &par.verifier)).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let r = token_request(&s, &other, &DpopKey::new(), code_params(&code, &par.verifier)).await;
    let (status, error, _) = error_of(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    let r = userinfo(&s, &owner, &dpop, access).await;
    assert_eq!(r.status(), 200, "another client's attempt revoked the owner's tokens");
}

/// Item 9: a jwks_uri on a loopback or private address literal is refused at registration
/// unless the host is allowed by the operator.
#[tokio::test]
async fn item9_private_jwks_uri_is_refused() {
    let register = |s: &Server, uri: &str| {
        let body = json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": uri,
        });
        let req = s
            .http
            .post(s.endpoint("registration_endpoint"))
            .bearer_auth(s.initial_access_token())
            .json(&body);
        async move { req.send().await.unwrap() }
    };
    let s = Server::start().await;
    for uri in [
        "https://127.0.0.1/jwks",
        "https://localhost:8443/jwks",
        "https://[::1]/jwks",
        "https://169.254.169.254/latest",
        "https://10.0.0.5/jwks",
    ] {
        let (status, error, description) = error_of(register(&s, uri).await).await;
        assert_eq!(
            (status, error.as_str()),
            (400, "invalid_client_metadata"),
            "{uri}: {description}"
        );
    }
    assert_eq!(register(&s, "https://client.example.org/jwks").await.status(), 201);
    let s = Server::start_with(&[("PORTCULLIS_CLIENTS_JWKS_URI_ALLOWED_HOSTS", "127.0.0.1, keys.internal")]).await;
    assert_eq!(register(&s, "https://127.0.0.1/jwks").await.status(), 201);
}

/// Item 14: the initial registration access token expires (setting), and every update rotates
/// it (the old one stops working at once).
#[tokio::test]
async fn item14_registration_access_tokens_rotate() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let uri = rp.registration["registration_client_uri"].as_str().unwrap().to_owned();
    let old = rp.registration["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut body = rp.registration.clone();
    for f in [
        "registration_access_token",
        "registration_client_uri",
        "client_id_issued_at",
    ] {
        body.as_object_mut().unwrap().remove(f);
    }
    let r = s.http.put(&uri).bearer_auth(&old).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    let new = updated["registration_access_token"]
        .as_str()
        .expect("a new token in the response");
    assert_ne!(new, old);
    assert_eq!(s.http.get(&uri).bearer_auth(&old).send().await.unwrap().status(), 401);
    assert_eq!(s.http.get(&uri).bearer_auth(new).send().await.unwrap().status(), 200);
    // a second update with the spent token changes nothing
    let r = s.http.put(&uri).bearer_auth(&old).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

/// Items 15 and 16: a new login ends the browser's previous session; RP-initiated logout asks,
/// ends the session and redirects only to a registered post_logout_redirect_uri; pages restrict
/// where forms go (CSP form-action), the consent page to this server and the client.
#[tokio::test]
async fn item15_16_sessions_logout_and_form_action() {
    let s = Server::start().await;
    assert_eq!(
        s.meta["end_session_endpoint"],
        json!(format!("{}/logout", s.issuer)),
        "end_session_endpoint in discovery"
    );
    let logout_uri = "https://client.example.org/logged-out";
    let rp = Rp::register_with(&s, Algorithm::Es256, json!({"post_logout_redirect_uris": [logout_uri]})).await;
    let mut b = Browser::default();

    // the login page: forms post to this server only
    let uri = Par::new(&rp).push(&s, &rp).await;
    let url = Browser::authorization_url(&s, &rp.client_id, &uri);
    // (in the browser that then signs in: the first visit binds the request to it)
    let (_, headers, _) = b.get(&s, &url).await;
    let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    b.run(&s, &rp.client_id, &uri, "allow").await;
    let first_session = b.cookies["__Host-portcullis-session"].clone();

    // the consent page may also send the browser on to the client
    let uri = Par::new(&rp).push(&s, &rp).await;
    let url = Browser::authorization_url(&s, &rp.client_id, &uri);
    let cookie = b
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let r = s.http.get(&url).header("cookie", cookie).send().await.unwrap();
    let csp = r.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    let page = r.text().await.unwrap();
    assert!(page.contains("name=\"decision\""));
    assert!(csp.contains("form-action 'self' https://client.example.org"), "{csp}");

    // logging in again (prompt=login) replaces the session: the old cookie is dead
    let uri = Par::new(&rp).set("prompt", "login").push(&s, &rp).await;
    b.run(&s, &rp.client_id, &uri, "allow").await;
    assert_ne!(b.cookies["__Host-portcullis-session"], first_session);
    let mut old = Browser::default();
    old.cookies
        .insert("__Host-portcullis-session".into(), first_session.clone());
    let uri = Par::new(&rp).push(&s, &rp).await;
    let (_, _, page) = old.get(&s, &Browser::authorization_url(&s, &rp.client_id, &uri)).await;
    assert!(page.contains("name=\"password\""), "the previous session still works");

    // an id_token for the hint
    let dpop = DpopKey::new();
    let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
    let r = token_request(&s, &rp, &dpop, code_params(&code, &par.verifier)).await;
    let id_token = r.json::<Value>().await.unwrap()["id_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // logout: an unregistered target is refused without a redirect, and so is a registered one
    // without a valid id_token_hint (no open redirector), with or without a session
    let end = s.meta["end_session_endpoint"].as_str().unwrap().to_owned();
    for query in [
        format!("id_token_hint={id_token}&post_logout_redirect_uri=https://evil.example/"),
        format!(
            "client_id={}&post_logout_redirect_uri={logout_uri}&state=x",
            rp.client_id
        ),
        format!("id_token_hint=e30.e30.e30&post_logout_redirect_uri={logout_uri}"),
    ] {
        for browser in [&mut b, &mut Browser::default()] {
            let (status, headers, _) = browser.get(&s, &format!("{end}?{query}")).await;
            assert_eq!(status, 400, "{query}");
            assert!(headers.get(LOCATION).is_none(), "{query}");
        }
    }
    // a registered one with the hint: asked first, then the session ends and the browser goes
    // there
    let mut ask = url::Url::parse(&end).unwrap();
    ask.query_pairs_mut()
        .append_pair("id_token_hint", &id_token)
        .append_pair("post_logout_redirect_uri", logout_uri)
        .append_pair("state", "st8");
    let (status, headers, page) = b.get(&s, ask.as_str()).await;
    assert_eq!(status, 200, "{page}");
    let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("form-action 'self' https://client.example.org"), "{csp}");
    let form = hidden_fields(&page);
    // the confirmation cannot be forged without the page's token
    let mut forged = form.clone();
    forged.retain(|(k, _)| k != "csrf_token");
    let (status, _, _) = b.post(&s, &end, &forged).await;
    assert_eq!(status, 403);
    let (status, headers, _) = b.post(&s, &absolute(&s, &form_action(&page)), &form).await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION].to_str().unwrap(), format!("{logout_uri}?state=st8"));
    let uri = Par::new(&rp).push(&s, &rp).await;
    let (_, _, page) = b.get(&s, &Browser::authorization_url(&s, &rp.client_id, &uri)).await;
    assert!(page.contains("name=\"password\""), "still signed in after logout");

    // third review: alice's id_token does not end bob's session (nor send his browser away)
    assert!(
        s.cli(&["user", "add", "bob", "--password-stdin"], Some("builder"))
            .status
            .success()
    );
    let mut bob = Browser::default();
    let uri = Par::new(&rp).push(&s, &rp).await;
    let (_, _, page) = bob.get(&s, &Browser::authorization_url(&s, &rp.client_id, &uri)).await;
    let (status, _, _) = bob
        .post(
            &s,
            &absolute(&s, &form_action(&page)),
            &login_form(&page, "bob", "builder"),
        )
        .await;
    assert_eq!(status, 303, "bob signs in");
    let (status, headers, _) = bob.get(&s, ask.as_str()).await;
    assert_eq!(status, 400, "another user's id_token_hint was accepted");
    assert!(headers.get(LOCATION).is_none());
}

/// Beyond the list: a connection buffers at most 32 KiB of request head (hyper's default is
/// about 400 KB per connection, times thousands of connections).
#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let s = Server::start().await;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(s.ca_path()).unwrap()).unwrap();
    let h1 = reqwest::Client::builder()
        .tls_certs_only([ca])
        .http1_only()
        .build()
        .unwrap();
    let jwks = s.endpoint("jwks_uri");
    assert_eq!(h1.get(&jwks).send().await.unwrap().status(), 200);
    let r = h1.get(&jwks).header("x-padding", "a".repeat(100_000)).send().await;
    // a closed connection (an error here) is also a refusal
    if let Ok(r) = r {
        assert_eq!(r.status(), 431, "a 100 KB header was accepted");
    }
}
