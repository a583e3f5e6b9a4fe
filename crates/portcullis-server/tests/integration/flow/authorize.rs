//! The authorization endpoint, login and consent (AS-SP-42..58; OIDC Core §3.1.2.1).

use super::*;

/// AS-SP-47/53: a plain authorization request is refused: by redirect only to a registered
/// redirect_uri, otherwise on a page.
#[tokio::test]
async fn authorization_request_without_par_is_refused() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let mut u = url::Url::parse(&s.endpoint("authorization_endpoint")).unwrap();
    for (k, v) in Par::new(&rp).params {
        u.query_pairs_mut().append_pair(&k, &v);
    }
    let r = s.http.get(u.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(loc.as_str().starts_with(REDIRECT_URI));
    let q = query(&loc);
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["iss"], s.issuer);
    // an unregistered redirect_uri is never redirected to
    let mut u = url::Url::parse(&s.endpoint("authorization_endpoint")).unwrap();
    u.query_pairs_mut()
        .append_pair("client_id", &rp.client_id)
        .append_pair("redirect_uri", "https://attacker.example/");
    let r = s.http.get(u.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    // unknown client and unknown request_uri: pages
    let r = s
        .http
        .get(Browser::authorization_url(
            &s,
            "nobody",
            "urn:ietf:params:oauth:request_uri:x",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    let r = s
        .http
        .get(Browser::authorization_url(
            &s,
            &rp.client_id,
            "urn:ietf:params:oauth:request_uri:x",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

/// AS-SP-42: a request_uri is bound to the client that pushed it.
#[tokio::test]
async fn request_uri_is_bound_to_its_client() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let other = Rp::register(&s).await;
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let r = s
        .http
        .get(Browser::authorization_url(&s, &other.client_id, &request_uri))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

/// The interaction id a page's forms carry.
fn interaction_of(page: &str) -> String {
    hidden_fields(page)
        .into_iter()
        .find(|(k, _)| k == "interaction")
        .expect("interaction field")
        .1
}

/// Follows `headers`' redirect to the client and returns its query.
fn callback(headers: &reqwest::header::HeaderMap) -> std::collections::HashMap<String, String> {
    query(&url::Url::parse(headers["location"].to_str().unwrap()).unwrap())
}

/// Conformance row 62 (`par-ensure-reused-request-uri-prior-to-auth-completion-succeeds`,
/// AS-SP-44, SP 5.3.2.2 Note 3): the suite opens the authorization URL once without logging
/// in, then again in a fresh browser (no shared cookies), and logs in there: success, with a
/// code that works. Opening the URL consumes nothing; completing does.
#[tokio::test]
async fn reused_request_uri_before_completion_succeeds() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp);
    let request_uri = par.push(&s, &rp).await;
    let url = Browser::authorization_url(&s, &rp.client_id, &request_uri);
    // the first visit: the login page, nobody logs in
    let mut first = Browser::default();
    let (status, _, first_page) = first.get(&s, &url).await;
    assert_eq!(status, 200, "{first_page}");
    assert!(first_page.contains("name=\"password\""));
    // a fresh browser opens the same URL, logs in and consents
    let mut second = Browser::default();
    let cb = second.run(&s, &rp.client_id, &request_uri, "allow").await;
    let q = query(&cb);
    assert_eq!(q["state"], par.state);
    assert_eq!(q["iss"], s.issuer);
    let r = token_request(&s, &rp, &DpopKey::new(), code_params(&q["code"], &par.verifier)).await;
    assert_eq!(r.status(), 200, "the code works");
    // now the request_uri is consumed: any browser opening it gets invalid_request_uri
    let mut third = Browser::default();
    for browser in [&mut first, &mut second, &mut third] {
        let (status, headers, _) = browser.get(&s, &url).await;
        assert_eq!(status, 303);
        let q = callback(&headers);
        assert_eq!(q["error"], "invalid_request_uri");
        assert_eq!(q["state"], par.state);
        assert_eq!(q["iss"], s.issuer);
    }
    // the first browser's sign-in cannot go on: a page, no code
    let (status, headers, body) = first
        .post(
            &s,
            &absolute(&s, &form_action(&first_page)),
            &login_form(&first_page, USER, PASSWORD),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(headers.get("location").is_none());
    assert!(body.contains("already completed elsewhere"), "{body}");
    let resume = format!(
        "{}?interaction={}",
        s.endpoint("authorization_endpoint"),
        interaction_of(&first_page)
    );
    let (status, _, body) = first.get(&s, &resume).await;
    assert_eq!(status, 409, "{body}");
}

/// AS-SP-43/44, issue 17 item 7: opening a request_uri (a reload, another browser) consumes
/// nothing; each browser has its own interaction (the same browser continues its own); the
/// first to answer consent consumes the request_uri, the other browser's consent gets a page
/// and no code, and the URL is refused everywhere from then on.
#[tokio::test]
async fn request_uri_single_use_after_completion() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp);
    let request_uri = par.push(&s, &rp).await;
    let url = Browser::authorization_url(&s, &rp.client_id, &request_uri);
    let mut b = Browser::default();
    let (status, _, page) = b.get(&s, &url).await;
    assert_eq!(status, 200);
    let cookie = b
        .set_cookie_lines
        .iter()
        .find(|l| l.starts_with("__Host-portcullis-interaction="))
        .expect("interaction cookie")
        .clone();
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Domain"));
    let (status, _, reloaded) = b.get(&s, &url).await;
    assert_eq!(status, 200, "a reload continues: {reloaded}");
    assert_eq!(interaction_of(&reloaded), interaction_of(&page), "the same interaction");
    // another browser: its own interaction
    let mut other = Browser::default();
    let (status, _, other_page) = other.get(&s, &url).await;
    assert_eq!(status, 200, "{other_page}");
    assert!(other.cookies.contains_key("__Host-portcullis-interaction"));
    assert_ne!(interaction_of(&other_page), interaction_of(&page));
    // both sign in and reach the consent page
    let mut consent_pages = Vec::new();
    for (browser, page) in [(&mut b, &page), (&mut other, &other_page)] {
        let (status, headers, body) = browser
            .post(&s, &absolute(&s, &form_action(page)), &login_form(page, USER, PASSWORD))
            .await;
        assert_eq!(status, 303, "{body}");
        let (status, _, consent) = browser
            .get(&s, &absolute(&s, headers["location"].to_str().unwrap()))
            .await;
        assert_eq!(status, 200);
        assert!(consent.contains("name=\"decision\""), "{consent}");
        consent_pages.push(consent);
    }
    // the first browser answers first: its code
    let mut form = hidden_fields(&consent_pages[0]);
    form.push(("decision".into(), "allow".into()));
    let (status, headers, _) = b.post(&s, &absolute(&s, &form_action(&consent_pages[0])), &form).await;
    assert_eq!(status, 303);
    assert!(callback(&headers).contains_key("code"));
    // the other browser's consent, allow or deny: a page, no code, nothing to the client
    for decision in ["allow", "deny"] {
        let mut form = hidden_fields(&consent_pages[1]);
        form.push(("decision".into(), decision.into()));
        let (status, headers, body) = other
            .post(&s, &absolute(&s, &form_action(&consent_pages[1])), &form)
            .await;
        assert_eq!(status, 409, "{body}");
        assert!(headers.get("location").is_none(), "no second response");
        assert!(
            body.contains("This sign-in was already completed elsewhere. Go back to the application and start again."),
            "{body}"
        );
    }
    // once completed: invalid_request_uri, by redirect with state and iss, for every browser
    let mut fresh = Browser::default();
    for browser in [&mut b, &mut other, &mut fresh] {
        let (status, headers, _) = browser.get(&s, &url).await;
        assert_eq!(status, 303);
        let q = callback(&headers);
        assert_eq!(q["error"], "invalid_request_uri");
        assert_eq!(q["state"], par.state);
        assert_eq!(q["iss"], s.issuer);
    }
    assert!(!fresh.cookies.contains_key("__Host-portcullis-interaction"));
    // and the winner's own interaction page says it is done
    let resume = format!(
        "{}?interaction={}",
        s.endpoint("authorization_endpoint"),
        interaction_of(&page)
    );
    let (status, _, body) = b.get(&s, &resume).await;
    assert_eq!(status, 400);
    assert!(body.contains("already been completed"), "{body}");
}

/// Issue 17 item 7: one leaked URL cannot create unbounded rows: at most 5 browsers have a
/// live sign-in on a request_uri; the sixth gets a page (and no cookie), those that have one
/// go on.
#[tokio::test]
async fn interactions_per_request_uri_are_capped() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let url = Browser::authorization_url(&s, &rp.client_id, &request_uri);
    let mut browsers: Vec<Browser> = (0..5).map(|_| Browser::default()).collect();
    for b in &mut browsers {
        assert_eq!(b.get(&s, &url).await.0, 200);
    }
    let mut sixth = Browser::default();
    let (status, headers, body) = sixth.get(&s, &url).await;
    assert_eq!(status, 409, "{body}");
    assert!(headers.get("location").is_none());
    assert!(body.contains("opened in too many browsers"), "{body}");
    assert!(!sixth.cookies.contains_key("__Host-portcullis-interaction"));
    let cb = browsers[4].run(&s, &rp.client_id, &request_uri, "allow").await;
    assert!(query(&cb).contains_key("code"));
}

/// Issue 17 item 7: the forms of one browser's interaction do not work in another browser,
/// even with its CSRF cookie and token copied; a guessed or made-up interaction is a page too.
#[tokio::test]
async fn interaction_is_bound_to_the_browser() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let mut b = Browser::default();
    let (_, _, page) = b
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    let action = absolute(&s, &form_action(&page));
    let form = login_form(&page, USER, PASSWORD);
    assert!(form.iter().any(|(k, _)| k == "interaction"));
    assert!(!form.iter().any(|(k, _)| k == "request_uri" || k == "client_id"));
    // a second browser with the first one's CSRF cookie (and so a valid token), not its
    // interaction cookie
    let mut thief = Browser::default();
    thief.cookies.insert(
        "__Host-portcullis-csrf".into(),
        b.cookies["__Host-portcullis-csrf"].clone(),
    );
    let (status, headers, body) = thief.post(&s, &action, &form).await;
    assert_eq!(status, 403, "{body}");
    assert!(headers.get("location").is_none());
    assert!(body.contains("started in another browser"), "{body}");
    let interaction = form.iter().find(|(k, _)| k == "interaction").unwrap().1.clone();
    let resume = format!("{}?interaction={interaction}", s.endpoint("authorization_endpoint"));
    assert_eq!(thief.get(&s, &resume).await.0, 403);
    // opening the URL itself gives the second browser its own interaction, not the first's:
    // with its own interaction cookie the first's form is still refused
    let (status, _, own_page) = thief
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    assert_eq!(status, 200, "{own_page}");
    assert!(thief.cookies.contains_key("__Host-portcullis-interaction"));
    assert_ne!(interaction_of(&own_page), interaction);
    let (status, _, body) = thief.post(&s, &action, &form).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("started in another browser"), "{body}");
    assert_eq!(thief.get(&s, &resume).await.0, 403);
    // an unknown interaction: a page, in this very browser too
    let (status, _, body) = b
        .get(
            &s,
            &format!("{}?interaction=made-up", s.endpoint("authorization_endpoint")),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("Go back to the application"), "{body}");
    // the owner goes on
    let (status, _, _) = b.post(&s, &action, &form).await;
    assert_eq!(status, 303);
    assert_eq!(b.get(&s, &resume).await.0, 200);
}

/// Issue 17 item 7: a replayed consent POST (a second click, the back button, a copied form)
/// issues no second code: the interaction gives one response.
#[tokio::test]
async fn replayed_consent_issues_no_second_code() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let mut b = Browser::default();
    b.run(&s, &rp.client_id, &request_uri, "allow").await;
    // signed in now: the next request goes straight to consent
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let (status, _, page) = b
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    assert_eq!(status, 200);
    let mut form = hidden_fields(&page);
    form.push(("decision".into(), "allow".into()));
    let action = absolute(&s, &form_action(&page));
    let (status, headers, _) = b.post(&s, &action, &form).await;
    assert_eq!(status, 303);
    assert!(headers["location"].to_str().unwrap().contains("code="));
    for decision in ["allow", "deny"] {
        let mut again = hidden_fields(&page);
        again.push(("decision".into(), decision.into()));
        let (status, headers, body) = b.post(&s, &action, &again).await;
        assert_eq!(status, 400, "{body}");
        assert!(headers.get("location").is_none(), "no second response");
        assert!(body.contains("already been completed"), "{body}");
    }
}

/// Issue 17 item 7: the login is no race against the request_uri. With a 10 s request_uri and
/// a 20 s interaction: a login and consent finished after the request_uri expired succeed (and
/// the code works at the token endpoint) while a new browser is refused the expired
/// request_uri; one finished after the interaction expired gets a page in plain words, and no
/// code.
#[tokio::test]
async fn slow_login_outlives_the_request_uri_not_the_interaction() {
    let s = Server::start_with(&[
        ("PORTCULLIS_TOKENS_REQUEST_URI_LIFETIME", "10"),
        ("PORTCULLIS_TOKENS_INTERACTION_LIFETIME", "20"),
    ])
    .await;
    let rp = Rp::register(&s).await;
    // two users open their login pages at once
    let slow = Par::new(&rp);
    let slow_uri = slow.push(&s, &rp).await;
    let mut a = Browser::default();
    let (status, _, slow_page) = a
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &slow_uri))
        .await;
    assert_eq!(status, 200);
    let too_slow_uri = Par::new(&rp).push(&s, &rp).await;
    let mut b = Browser::default();
    let (status, _, too_slow_page) = b
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &too_slow_uri))
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    // the request_uris have expired: a browser that has no interaction on one is refused
    let (status, headers, _) = Browser::default()
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &slow_uri))
        .await;
    assert_eq!(status, 303);
    assert_eq!(callback(&headers)["error"], "invalid_request_uri");
    // the first user now types the password
    let (status, headers, body) = a
        .post(
            &s,
            &absolute(&s, &form_action(&slow_page)),
            &login_form(&slow_page, USER, PASSWORD),
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (status, _, page) = a.get(&s, &absolute(&s, headers["location"].to_str().unwrap())).await;
    assert_eq!(status, 200, "{page}");
    let mut form = hidden_fields(&page);
    form.push(("decision".into(), "allow".into()));
    let (status, headers, _) = a.post(&s, &absolute(&s, &form_action(&page)), &form).await;
    assert_eq!(status, 303);
    let q = query(&url::Url::parse(headers["location"].to_str().unwrap()).unwrap());
    assert_eq!(q["state"], slow.state);
    let r = token_request(&s, &rp, &DpopKey::new(), code_params(&q["code"], &slow.verifier)).await;
    assert_eq!(r.status(), 200, "the code works");
    // the second user takes longer than the interaction's 20 s
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let (status, headers, body) = b
        .post(
            &s,
            &absolute(&s, &form_action(&too_slow_page)),
            &login_form(&too_slow_page, USER, PASSWORD),
        )
        .await;
    assert_eq!(status, 410, "{body}");
    assert!(headers.get("location").is_none(), "nothing goes to the client");
    assert!(
        body.contains("This sign-in took too long. Go back to the application and start again."),
        "{body}"
    );
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    // and opening the URL again in that browser says the same
    let (status, _, body) = b
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &too_slow_uri))
        .await;
    assert_eq!(status, 410);
    assert!(body.contains("took too long"), "{body}");
}

/// AS-SP-43: an expired request_uri is refused with invalid_request_uri.
#[tokio::test]
async fn expired_request_uri_is_refused() {
    let s = Server::start_with(&[("PORTCULLIS_TOKENS_REQUEST_URI_LIFETIME", "10")]).await;
    let rp = Rp::register(&s).await;
    let r = Par::new(&rp).send(&s, &rp, None).await;
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["expires_in"], 10);
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let url = Browser::authorization_url(&s, &rp.client_id, b["request_uri"].as_str().unwrap());
    let r = s.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let q = query(&url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap());
    assert_eq!(q["error"], "invalid_request_uri");
}

/// AS-SP-49/56/57: front-channel parameters are ignored; long state and a 64-character nonce
/// come back byte-exact; the registered redirect URI keeps its query (RFC 6749 §3.1.2).
#[tokio::test]
async fn pushed_parameters_are_the_only_ones_used() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let state: String = "aZ09-._~".repeat(125);
    let nonce: String = format!("{}-._~", "n".repeat(60));
    let par = Par::new(&rp)
        .set("state", &state)
        .set("nonce", &nonce)
        .set("redirect_uri", REDIRECT_URI_2);
    let request_uri = par.push(&s, &rp).await;
    let mut url = url::Url::parse(&Browser::authorization_url(&s, &rp.client_id, &request_uri)).unwrap();
    url.query_pairs_mut()
        .append_pair("state", "front-channel-state")
        .append_pair("nonce", "front-channel-nonce")
        .append_pair("redirect_uri", "https://attacker.example/")
        .append_pair("scope", "openid");
    let mut b = Browser::default();
    let (status, _, page) = b.get(&s, url.as_str()).await;
    assert_eq!(status, 200);
    let (st, h, _) = b
        .post(
            &s,
            &absolute(&s, &form_action(&page)),
            &login_form(&page, USER, PASSWORD),
        )
        .await;
    assert_eq!(st, 303);
    let (_, _, page) = b.get(&s, &absolute(&s, h["location"].to_str().unwrap())).await;
    let mut form = hidden_fields(&page);
    form.push(("decision".into(), "allow".into()));
    let (st, h, _) = b.post(&s, &absolute(&s, &form_action(&page)), &form).await;
    assert_eq!(st, 303);
    let cb = url::Url::parse(h["location"].to_str().unwrap()).unwrap();
    assert!(
        cb.as_str()
            .starts_with("https://client.example.org/cb?dummy1=lorem&dummy2=ipsum&"),
        "{cb}"
    );
    assert!(cb.fragment().is_none(), "AS-SP-51");
    let q = query(&cb);
    assert_eq!(q["state"], state);
    assert_eq!(q["iss"], s.issuer);
    let mut params = code_params(&q["code"], &par.verifier);
    params[2].1 = REDIRECT_URI_2.into();
    let t: Value = token_request(&s, &rp, &dpop, params).await.json().await.unwrap();
    let (_, claims) = id_token_claims(&s, &jwks(&s).await, t["id_token"].as_str().unwrap());
    assert_eq!(claims["nonce"], nonce.as_str());
}

/// AS-SP-57: without state, none comes back; AS-SP-56: without nonce, none in the id_token.
#[tokio::test]
async fn state_and_nonce_are_optional() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp).remove("state").remove("nonce");
    let request_uri = par.push(&s, &rp).await;
    let cb = Browser::default().run(&s, &rp.client_id, &request_uri, "allow").await;
    let q = query(&cb);
    assert!(!q.contains_key("state"));
    let t: Value = token_request(&s, &rp, &DpopKey::new(), code_params(&q["code"], &par.verifier))
        .await
        .json()
        .await
        .unwrap();
    let (_, claims) = id_token_claims(&s, &jwks(&s).await, t["id_token"].as_str().unwrap());
    assert!(claims.get("nonce").is_none());
}

/// AS-SP-55: deny ends in access_denied with state and iss.
#[tokio::test]
async fn user_denies() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp);
    let request_uri = par.push(&s, &rp).await;
    let cb = Browser::default().run(&s, &rp.client_id, &request_uri, "deny").await;
    let q = query(&cb);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], par.state);
    assert_eq!(q["iss"], s.issuer);
    assert!(!q.contains_key("code"));
}

/// AS-SP-09: no CORS on the authorization endpoint; AS-SP-07: HSTS; pages cannot be framed.
#[tokio::test]
async fn authorization_pages_headers() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let r = s
        .http
        .get(Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .header("origin", "https://client.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert!(h.get("access-control-allow-origin").is_none());
    assert!(h["strict-transport-security"].to_str().unwrap().contains("max-age="));
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(h["cache-control"], "no-store");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Integration test client"),
        "AS-SP-54: the client is named"
    );
    let cors = s
        .http
        .request(reqwest::Method::OPTIONS, s.endpoint("authorization_endpoint"))
        .send()
        .await
        .unwrap();
    assert!(cors.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn login_cookie_csrf_and_failures() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let url = Browser::authorization_url(&s, &rp.client_id, &request_uri);
    let mut b = Browser::default();
    let (_, _, page) = b.get(&s, &url).await;
    let action = absolute(&s, &form_action(&page));
    // a wrong password: the form again, 401, with a message
    let (status, _, again) = b.post(&s, &action, &login_form(&page, USER, "wrong")).await;
    assert_eq!(status, 401);
    assert!(again.contains("name=\"password\"") && again.contains("not correct"));
    let (status, _, _) = b.post(&s, &action, &login_form(&page, "nobody", "wrong")).await;
    assert_eq!(status, 401);
    // CSRF: a missing or foreign token is refused
    let mut form = login_form(&page, USER, PASSWORD);
    form.retain(|(k, _)| k != "csrf_token");
    assert_eq!(b.post(&s, &action, &form).await.0, 403);
    let mut other = Browser::default();
    other.get(&s, &url).await;
    assert_eq!(other.post(&s, &action, &login_form(&page, USER, PASSWORD)).await.0, 403);
    // the right password: 303 (never 307, AS-SP-52) and a __Host- session cookie
    let (status, headers, _) = b.post(&s, &action, &login_form(&page, USER, PASSWORD)).await;
    assert_eq!(status, 303);
    // back to the authorization endpoint for the interaction, not the request_uri (issue 17
    // item 7)
    let location = headers["location"].to_str().unwrap();
    assert!(
        location.contains("?interaction=") && !location.contains("request_uri"),
        "{location}"
    );
    let session = b
        .set_cookie_lines
        .iter()
        .find(|l| l.starts_with("__Host-portcullis-session="))
        .expect("session cookie");
    for attr in ["Secure", "HttpOnly", "SameSite=", "Path=/"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(!session.contains("Domain"));
    // a logged-in browser goes straight to consent for the next request
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let (status, _, page) = b
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("name=\"decision\"") && !page.contains("name=\"password\""));
    assert!(page.contains("see your email address"), "scopes in words");
}

/// OIDC Core §3.1.2.6: prompt=none never shows a page: login_required without a session,
/// consent_required with one (consent is asked every time).
#[tokio::test]
async fn prompt_none() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp).set("prompt", "none");
    let request_uri = par.push(&s, &rp).await;
    let mut b = Browser::default();
    let (status, headers, _) = b
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    assert_eq!(status, 303);
    let q = query(&url::Url::parse(headers["location"].to_str().unwrap()).unwrap());
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["state"], par.state);
    // sign in through a normal request, then prompt=none again
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    b.run(&s, &rp.client_id, &request_uri, "allow").await;
    let request_uri = Par::new(&rp).set("prompt", "none").push(&s, &rp).await;
    let (status, headers, _) = b
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    assert_eq!(status, 303);
    let q = query(&url::Url::parse(headers["location"].to_str().unwrap()).unwrap());
    assert_eq!(q["error"], "consent_required");
}

/// max_age and prompt=login force a fresh login even with a session (OIDC Core §3.1.2.1).
#[tokio::test]
async fn prompt_login_and_max_age_force_a_fresh_login() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let mut b = Browser::default();
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    b.run(&s, &rp.client_id, &request_uri, "allow").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for par in [Par::new(&rp).set("prompt", "login"), Par::new(&rp).set("max_age", "0")] {
        let request_uri = par.push(&s, &rp).await;
        let (status, _, page) = b
            .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
            .await;
        assert_eq!(status, 200);
        assert!(page.contains("name=\"password\""), "a login page");
    }
}

/// AS-SP-58: scope is an unordered set.
#[tokio::test]
async fn scope_order_does_not_matter() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let (code, par) = authorize(&s, &rp, Par::new(&rp).set("scope", "email profile openid")).await;
    let r = token_request(&s, &rp, &DpopKey::new(), code_params(&code, &par.verifier)).await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["id_token"].is_string());
}
