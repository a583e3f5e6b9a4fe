//! Issue 17 items 6 and 8: scopes as configuration, and pages a bank can put its name on
//! (branding, template overrides, consent details, error pages, languages).

use reqwest::header::LOCATION;
use serde_json::{Value, json};

use crate::harness::*;

const CONFIG: &str = r##"
[branding]
name = "Example Bank"
primary_color = "#005a32"

[[branding.footer_links]]
label = "Help & contact"
url = "https://bank.example/help"

[[scopes]]
name = "openid"
description = "confirm who you are"

[[scopes]]
name = "profile"
description = "see your name"
claims = ["name"]

[[scopes]]
name = "loyalty:read"
description = "see your loyalty points"
claims = ["loyalty_tier"]
[scopes.descriptions]
de = "Ihre Treuepunkte sehen"

[[scopes]]
name = "accounts"
description = "look at your current accounts"
[scopes.descriptions]
de = "Ihre Girokonten ansehen"
"##;

/// Logs `user` in on the login page `page` (got with `b`); returns the consent page.
async fn sign_in(s: &Server, b: &mut Browser, page: &str, user: &str, password: &str) -> String {
    let (status, headers, body) = b
        .post(s, &absolute(s, &form_action(page)), &login_form(page, user, password))
        .await;
    assert_eq!(status, 303, "login: {body}");
    let next = absolute(s, headers.get(LOCATION).unwrap().to_str().unwrap());
    let (status, _, consent) = b.get(s, &next).await;
    assert_eq!(status, 200);
    consent
}

/// The consent page of a fresh request for alice.
async fn consent_for(s: &Server, rp: &Rp, par: Par) -> (Browser, String, String) {
    let request_uri = par.push(s, rp).await;
    let mut b = Browser::default();
    let (status, _, login) = b
        .get(s, &Browser::authorization_url(s, &rp.client_id, &request_uri))
        .await;
    assert_eq!(status, 200, "{login}");
    let consent = sign_in(s, &mut b, &login, USER, PASSWORD).await;
    (b, consent, request_uri)
}

fn href_of(page: &str, id: &str) -> Option<String> {
    let tag_start = page.find(&format!("id=\"{id}\""))?;
    let open = page[..tag_start].rfind('<')?;
    let tag = &page[open..];
    let i = tag.find("href=\"")? + 6;
    let end = tag[i..].find('"')?;
    Some(tag[i..i + end].replace("&amp;", "&"))
}

/// Issue 17 item 6: `[[scopes]]` is what discovery offers; the consent page uses its words
/// (per language); userinfo releases the claims it names; an unknown scope is refused at PAR as
/// before (`invalid_scope`).
#[tokio::test]
async fn scopes_come_from_configuration() {
    let s = Server::start_configured(Some(CONFIG), &[]).await;
    assert_eq!(
        s.meta["scopes_supported"],
        json!(["openid", "profile", "loyalty:read", "accounts"])
    );
    assert_eq!(s.meta["ui_locales_supported"], json!(["en", "de"]));
    let claims = s.meta["claims_supported"].as_array().unwrap();
    assert!(claims.contains(&json!("loyalty_tier")) && claims.contains(&json!("name")));
    assert!(
        !claims.contains(&json!("email")),
        "email is released by no configured scope"
    );
    let out = s.cli(
        &[
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--claim",
            "loyalty_tier=gold",
            "--claim",
            "email=bob@example.com",
        ],
        Some("bobs-password"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rp = Rp::register(&s).await;

    // an unknown scope: refused at PAR, as before
    let r = Par::new(&rp).set("scope", "openid email").send(&s, &rp, None).await;
    assert_eq!(error_of(r).await.1, "invalid_scope");

    // the operator's words, in English and in German
    let par = Par::new(&rp).set("scope", "openid loyalty:read accounts");
    let verifier = par.verifier.clone();
    let request_uri = par.push(&s, &rp).await;
    let mut b = Browser::default();
    let (_, _, login) = b
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    let consent = sign_in(&s, &mut b, &login, "bob", "bobs-password").await;
    for words in [
        "confirm who you are",
        "see your loyalty points",
        "look at your current accounts",
    ] {
        assert!(consent.contains(&format!("<li>{words}</li>")), "{words}: {consent}");
    }
    assert!(!consent.contains("balances"), "the built-in words are replaced");
    let de = Par::new(&rp)
        .set("scope", "openid loyalty:read accounts")
        .set("ui_locales", "de");
    let (_, german, _) = consent_for(&s, &rp, de).await;
    assert!(german.contains("<li>Ihre Treuepunkte sehen</li>"), "{german}");
    assert!(german.contains("<li>Ihre Girokonten ansehen</li>"), "{german}");
    // no German words configured: the default words
    assert!(german.contains("<li>confirm who you are</li>"), "{german}");

    // bob allows: userinfo releases loyalty_tier (and not email, whose scope is not granted)
    let mut form = hidden_fields(&consent);
    form.push(("decision".into(), "allow".into()));
    let (status, headers, _) = b.post(&s, &absolute(&s, &form_action(&consent)), &form).await;
    assert_eq!(status, 303);
    let cb = url::Url::parse(headers.get(LOCATION).unwrap().to_str().unwrap()).unwrap();
    let code = query(&cb)["code"].clone();
    let dpop = DpopKey::new();
    let r = token_request(&s, &rp, &dpop, code_params(&code, &verifier)).await;
    let t: Value = r.json().await.unwrap();
    let at = t["access_token"].as_str().unwrap();
    let info: Value = userinfo(&s, &rp, &dpop, at).await.json().await.unwrap();
    assert_eq!(info["loyalty_tier"], "gold", "{info}");
    assert!(info.get("email").is_none(), "{info}");
    // the id_token keeps to the protocol's claims: user claims go to userinfo (OIDC Core §5.4)
    let jwks = crate::flow::jwks(&s).await;
    let (_, id) = crate::flow::id_token_claims(&s, &jwks, t["id_token"].as_str().unwrap());
    assert!(id.get("loyalty_tier").is_none(), "{id:?}");
}

/// Issue 17 item 8: the operator's name, colour and footer links are on every page, and the
/// CSP is exactly today's (no logo: no `img-src`).
#[tokio::test]
async fn branding_is_rendered_with_the_same_headers() {
    let s = Server::start_configured(Some(CONFIG), &[]).await;
    let rp = Rp::register(&s).await;
    let request_uri = Par::new(&rp).set("scope", "openid").push(&s, &rp).await;
    let r = s
        .http
        .get(Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .send()
        .await
        .unwrap();
    let h = r.headers().clone();
    let page = r.text().await.unwrap();
    assert!(page.contains("<title>Sign in - Example Bank</title>"), "{page}");
    assert!(page.contains("<span class=\"brand\">Example Bank</span>"), "{page}");
    assert!(page.contains("#005a32"), "{page}");
    assert!(
        page.contains("<a href=\"https://bank.example/help\">Help &amp; contact</a>"),
        "{page}"
    );
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(!page.contains("<img"), "no logo configured");
    let logo = s.http.get(format!("{}/branding/logo", s.issuer)).send().await.unwrap();
    assert_eq!(logo.status(), 404);
}

/// Issue 17 item 8: a logo file is served by the server itself (sniffed type, nosniff,
/// sandboxed), and pages allow exactly `img-src 'self'` for it.
#[tokio::test]
async fn the_logo_is_served_from_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let logo = tmp.path().join("logo.svg");
    std::fs::write(
        &logo,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"/>",
    )
    .unwrap();
    let config = format!(
        "[branding]\nname = \"Example Bank\"\nlogo_file = {:?}\n",
        logo.display().to_string()
    );
    let s = Server::start_configured(Some(&config), &[]).await;
    let r = s.http.get(format!("{}/branding/logo", s.issuer)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    let rp = Rp::register(&s).await;
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let r = s
        .http
        .get(Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert_eq!(
        csp,
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    let page = r.text().await.unwrap();
    assert!(
        page.contains("<img src=\"/branding/logo\" alt=\"Example Bank logo\">"),
        "{page}"
    );
}

/// Issue 17 item 8: a template of `branding.template_dir` replaces the built-in one, with
/// every value still escaped; one that does not compile stops `check` (exit 2).
#[tokio::test]
async fn template_overrides_are_used_and_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("templates");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("login.html"),
        "{% extends \"base.html\" %}{% block title %}Bank sign-in{% endblock %}{% block content %}\
         <h1 id=\"custom\">Welcome to {{ brand.name }}</h1><p>{{ client_name }}</p>\
         <form method=\"post\" action=\"{{ action }}\">\
         <input type=\"hidden\" name=\"interaction\" value=\"{{ interaction }}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{{ csrf_token }}\">\
         <label for=\"username\">User</label><input type=\"text\" id=\"username\" name=\"username\">\
         <label for=\"password\">PIN</label><input type=\"password\" id=\"password\" name=\"password\">\
         <button type=\"submit\">Go</button></form>{% endblock %}",
    )
    .unwrap();
    let config = format!(
        "[branding]\nname = \"Bank <b>&</b>\"\ntemplate_dir = {:?}\n",
        dir.display().to_string()
    );
    let s = Server::start_configured(Some(&config), &[]).await;
    let rp = Rp::register_with(
        &s,
        portcullis_jose::Algorithm::Es256,
        json!({"client_name": "<script>alert(1)</script>"}),
    )
    .await;
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let mut b = Browser::default();
    let (status, _, login) = b
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    assert_eq!(status, 200);
    assert!(
        login.contains("<h1 id=\"custom\">Welcome to Bank &lt;b&gt;&amp;&lt;/b&gt;</h1>"),
        "{login}"
    );
    assert!(login.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{login}");
    assert!(!login.contains("<script>"), "{login}");
    // the override's form still signs in (the built-in consent page follows)
    let consent = sign_in(&s, &mut b, &login, USER, PASSWORD).await;
    assert!(consent.contains("name=\"decision\""), "{consent}");

    std::fs::write(dir.join("consent.html"), "{% if %}").unwrap();
    let out = s.cli(&["check"], None);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("branding.template_dir") && err.contains("consent.html"),
        "{err}"
    );
}

/// Issue 17 item 8: the consent page names the user (the `name` claim), says how long access
/// lasts (the refresh token's lifetime when one comes, else the access token's), links the
/// client's registered policy and terms, and offers "Not you?".
#[tokio::test]
async fn consent_page_details() {
    let s = Server::start_with(&[("PORTCULLIS_TOKENS_REFRESH_TOKEN_LIFETIME", "2592000")]).await;
    let rp = Rp::register_with(
        &s,
        portcullis_jose::Algorithm::Es256,
        json!({"policy_uri": "https://client.example.org/privacy", "tos_uri": "https://client.example.org/terms"}),
    )
    .await;
    let (_, consent, _) = consent_for(&s, &rp, Par::new(&rp)).await;
    assert!(
        consent.contains("<strong id=\"display-name\">Alice Liddell</strong>"),
        "{consent}"
    );
    assert!(consent.contains("for up to 30 days"), "{consent}");
    assert_eq!(
        href_of(&consent, "policy").as_deref(),
        Some("https://client.example.org/privacy")
    );
    assert_eq!(
        href_of(&consent, "terms").as_deref(),
        Some("https://client.example.org/terms")
    );

    // no refresh token: the access token's lifetime; no documents registered: no links
    let plain = Rp::register_with(
        &s,
        portcullis_jose::Algorithm::Es256,
        json!({"grant_types": ["authorization_code"]}),
    )
    .await;
    let (_, consent, _) = consent_for(&s, &plain, Par::new(&plain)).await;
    assert!(consent.contains("This access lasts for up to 10 minutes."), "{consent}");
    assert!(!consent.contains("id=\"policy\"") && !consent.contains("id=\"terms\""));

    // "Not you?": its own CSRF token (bound to the interaction, like the consent form's); ends
    // the session, back to the login page of the same interaction (issue 17 item 7)
    let (mut b, consent, request_uri) = consent_for(&s, &rp, Par::new(&rp)).await;
    let i = consent.find("formaction=\"").unwrap() + 12;
    let switch = consent[i..i + consent[i..].find('"').unwrap()].to_owned();
    let fields = hidden_fields(&consent);
    let mut forged = fields.clone();
    forged.retain(|(k, _)| k != "switch_csrf_token");
    let consent_token = fields.iter().find(|(k, _)| k == "csrf_token").unwrap().1.clone();
    forged.push(("switch_csrf_token".into(), consent_token));
    let (status, _, page) = b.post(&s, &absolute(&s, &switch), &forged).await;
    assert_eq!(status, 403, "the consent form's token does not switch accounts: {page}");
    let (status, headers, _) = b.post(&s, &absolute(&s, &switch), &fields).await;
    assert_eq!(status, 303);
    assert!(
        b.set_cookie_lines
            .iter()
            .any(|l| l.starts_with("__Host-portcullis-session=;") && l.contains("Max-Age=0")),
        "the session cookie is cleared"
    );
    let next = absolute(&s, headers.get(LOCATION).unwrap().to_str().unwrap());
    let interaction = fields.iter().find(|(k, _)| k == "interaction").unwrap().1.clone();
    let to = url::Url::parse(&next).unwrap();
    assert_eq!(query(&to).get("interaction"), Some(&interaction), "{next}");
    assert!(
        !next.contains("request_uri"),
        "the request_uri is not in the URL: {next}"
    );
    let (status, _, page) = b.get(&s, &next).await;
    assert_eq!(status, 200);
    assert!(page.contains("name=\"password\""), "back on the login page: {page}");
    assert_eq!(
        hidden_fields(&page)
            .iter()
            .find(|(k, _)| k == "interaction")
            .map(|(_, v)| v),
        Some(&interaction),
        "the same interaction: {page}"
    );
    // signing in again (as someone else) continues it: the consent page, then the code
    let consent = sign_in(&s, &mut b, &page, USER, PASSWORD).await;
    let mut form = hidden_fields(&consent);
    form.push(("decision".into(), "allow".into()));
    let (status, headers, _) = b.post(&s, &absolute(&s, &form_action(&consent)), &form).await;
    assert_eq!(status, 303);
    let cb = url::Url::parse(headers.get(LOCATION).unwrap().to_str().unwrap()).unwrap();
    assert!(query(&cb).contains_key("code"), "{cb}");
    // the request_uri was consumed with that completion
    let (status, headers, _) = b
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    assert_eq!(status, 303);
    let refused = url::Url::parse(headers.get(LOCATION).unwrap().to_str().unwrap()).unwrap();
    assert_eq!(query(&refused)["error"], "invalid_request_uri");
}

/// Issue 17 item 8: error pages in plain words with the interaction id as a reference; a way
/// back to the application only to the redirect URI verified at PAR (with `access_denied`),
/// none when the request is not known.
#[tokio::test]
async fn error_pages_give_a_reference_and_a_safe_way_back() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;

    // an unknown request_uri: no verified redirect URI, so no way back
    let mut b = Browser::default();
    let url = Browser::authorization_url(&s, &rp.client_id, "urn:ietf:params:oauth:request_uri:nope");
    let (status, headers, page) = b
        .get(&s, &format!("{url}&redirect_uri=https%3A%2F%2Fevil.example%2F"))
        .await;
    assert_eq!(status, 400, "{page}");
    let id = headers["x-fapi-interaction-id"].to_str().unwrap();
    assert!(page.contains(&format!("<code id=\"reference\">{id}</code>")), "{page}");
    assert!(page.contains("The sign-in link is not valid or has expired."), "{page}");
    assert!(
        !page.contains("id=\"back\"") && !page.contains("evil.example"),
        "{page}"
    );

    // a consent form without a decision: the request is known, the way back is its redirect URI
    let par = Par::new(&rp);
    let state = par.state.clone();
    let (mut b, consent, _) = consent_for(&s, &rp, par).await;
    let (status, headers, page) = b
        .post(&s, &absolute(&s, &form_action(&consent)), &hidden_fields(&consent))
        .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("Please choose whether to allow or deny access."),
        "{page}"
    );
    let id = headers["x-fapi-interaction-id"].to_str().unwrap();
    assert!(page.contains(&format!("<code id=\"reference\">{id}</code>")), "{page}");
    let back = url::Url::parse(&href_of(&page, "back").expect("a way back")).unwrap();
    assert!(back.as_str().starts_with(REDIRECT_URI), "{back}");
    let q = query(&back);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], state);
    assert_eq!(q["iss"], s.issuer);

    // an expired form (CSRF check failed) of a known request: a way back too
    let mut form = hidden_fields(&consent);
    form.retain(|(k, _)| k != "csrf_token");
    form.push(("csrf_token".into(), "AAAA".into()));
    form.push(("decision".into(), "allow".into()));
    let (status, _, page) = b.post(&s, &absolute(&s, &form_action(&consent)), &form).await;
    assert_eq!(status, 403);
    assert!(page.contains("This page has expired"), "{page}");
    assert!(
        href_of(&page, "back").is_some_and(|h| h.starts_with(REDIRECT_URI)),
        "{page}"
    );
}

/// Issue 17 item 8: the pushed `ui_locales` choose the language, else `Accept-Language`,
/// else English; `<html lang>` says which.
#[tokio::test]
async fn languages_follow_ui_locales_then_accept_language() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let page = |par: Par, accept: Option<&'static str>| {
        let s = &s;
        let rp = &rp;
        async move {
            let request_uri = par.push(s, rp).await;
            let mut r = s.http.get(Browser::authorization_url(s, &rp.client_id, &request_uri));
            if let Some(a) = accept {
                r = r.header("accept-language", a);
            }
            r.send().await.unwrap().text().await.unwrap()
        }
    };
    let de = page(Par::new(&rp).set("ui_locales", "fr-CA de-CH en"), None).await;
    assert!(de.contains("<html lang=\"de\">"), "{de}");
    assert!(de.contains("<label for=\"password\">Passwort</label>"), "{de}");
    let de = page(Par::new(&rp), Some("fr, de;q=0.8, en;q=0.5")).await;
    assert!(de.contains("<html lang=\"de\">") && de.contains("Anmelden"), "{de}");
    let en = page(Par::new(&rp).set("ui_locales", "en"), Some("de")).await;
    assert!(en.contains("<html lang=\"en\">") && en.contains("Sign in"), "{en}");
    let en = page(Par::new(&rp).set("ui_locales", "x y!"), Some("fr")).await;
    assert!(en.contains("<html lang=\"en\">"), "{en}");
    // an error page before any request is known: the browser's language
    let r = s
        .http
        .get(Browser::authorization_url(&s, &rp.client_id, "urn:nope"))
        .header("accept-language", "de-DE")
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("Referenz für den Support"), "{body}");
}

/// Issue 17 items 7 and 8: a sign-in that cannot go on (completed elsewhere 409, already
/// completed 400, too many browsers 409) is an error page in the user's words, in their
/// language, with the reference; a way back only to the redirect URI verified at PAR, and only
/// for the browser whose interaction it is.
#[tokio::test]
async fn interaction_pages_speak_plainly_and_lead_back_safely() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp).set("ui_locales", "de");
    let state = par.state.clone();
    let request_uri = par.push(&s, &rp).await;
    let url = Browser::authorization_url(&s, &rp.client_id, &request_uri);
    let mut a = Browser::default();
    let (status, _, login) = a.get(&s, &url).await;
    assert_eq!(status, 200, "{login}");
    assert!(login.contains("<html lang=\"de\">"), "{login}");
    // another browser completes the sign-in first
    let mut other = Browser::default();
    let cb = other.run(&s, &rp.client_id, &request_uri, "allow").await;
    assert!(query(&cb).contains_key("code"));
    // the first browser's login: 409, in German, with a way back to the verified redirect URI
    let (status, headers, page) = a
        .post(
            &s,
            &absolute(&s, &form_action(&login)),
            &login_form(&login, USER, PASSWORD),
        )
        .await;
    assert_eq!(status, 409, "{page}");
    assert!(headers.get(LOCATION).is_none());
    assert!(page.contains("<html lang=\"de\">"), "{page}");
    assert!(
        page.contains("Diese Anmeldung wurde bereits anderswo abgeschlossen"),
        "{page}"
    );
    let id = headers["x-fapi-interaction-id"].to_str().unwrap();
    assert!(page.contains(&format!("<code id=\"reference\">{id}</code>")), "{page}");
    let back = url::Url::parse(&href_of(&page, "back").expect("a way back")).unwrap();
    assert!(back.as_str().starts_with(REDIRECT_URI), "{back}");
    let q = query(&back);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], state);
    // a third browser with the first one's form and CSRF cookie, but its own interaction
    // cookie: refused, and no way back
    let mut third = Browser::default();
    let (status, _, _) = third
        .get(
            &s,
            &Browser::authorization_url(&s, &rp.client_id, &Par::new(&rp).push(&s, &rp).await),
        )
        .await;
    assert_eq!(status, 200);
    let csrf = a.cookies["__Host-portcullis-csrf"].clone();
    third.cookies.insert("__Host-portcullis-csrf".into(), csrf);
    let (status, _, page) = third
        .post(
            &s,
            &absolute(&s, &form_action(&login)),
            &login_form(&login, USER, PASSWORD),
        )
        .await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("This sign-in was started in another browser."), "{page}");
    assert!(href_of(&page, "back").is_none(), "{page}");
    assert!(!page.contains(REDIRECT_URI), "{page}");

    // the winner's interaction again: already completed (400), in English this time
    let par = Par::new(&rp);
    let request_uri = par.push(&s, &rp).await;
    let mut b = Browser::default();
    let (_, _, login) = b
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    let consent = sign_in(&s, &mut b, &login, USER, PASSWORD).await;
    let mut form = hidden_fields(&consent);
    form.push(("decision".into(), "allow".into()));
    let (status, _, _) = b.post(&s, &absolute(&s, &form_action(&consent)), &form).await;
    assert_eq!(status, 303);
    let (status, _, page) = b.post(&s, &absolute(&s, &form_action(&consent)), &form).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("This sign-in has already been completed. Please go back to the application."),
        "{page}"
    );
    assert!(
        href_of(&page, "back").is_some_and(|h| h.starts_with(REDIRECT_URI)),
        "{page}"
    );

    // a link opened in too many browsers: 409, in plain words; that browser has no interaction
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let url = Browser::authorization_url(&s, &rp.client_id, &request_uri);
    for _ in 0..5 {
        assert_eq!(Browser::default().get(&s, &url).await.0, 200);
    }
    let (status, _, page) = Browser::default().get(&s, &url).await;
    assert_eq!(status, 409, "{page}");
    assert!(
        page.contains("This sign-in link has been opened in too many browsers."),
        "{page}"
    );
    assert!(href_of(&page, "back").is_none(), "{page}");
}
