//! The FAPI 2.0 Security Profile flow (PAR, PKCE, private_key_jwt, DPoP, login and consent,
//! tokens, id_token, userinfo) and every refusal the checklist requires.

use portcullis_jose::{Algorithm, SigningKey, b64url};
use serde_json::{Value, json};

use crate::harness::*;

/// AS-SP-70: an error response is JSON with `error` and a printable `error_description`
/// (no `"` or `\`), with the expected status.
async fn expect_error(r: reqwest::Response, status: u16, errors: &[&str]) -> String {
    let got_status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = r.json().await.expect("error body is JSON");
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    assert_eq!(got_status, status, "status for {body}");
    let error = body["error"].as_str().expect("error member");
    assert!(errors.contains(&error), "error {error} not in {errors:?}: {body}");
    let d = body["error_description"].as_str().expect("error_description");
    assert!(
        !d.is_empty() && d.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
        "{d:?}"
    );
    d.to_owned()
}

async fn par_with(s: &Server, par: &Par, auth: Vec<(String, String)>, dpop: &[String]) -> reqwest::Response {
    let mut params = par.params.clone();
    params.extend(auth);
    s.post_form(&s.endpoint("pushed_authorization_request_endpoint"), &params, dpop)
        .await
}

fn id_token_claims(s: &Server, jwks: &Value, token: &str) -> (jsonwebtoken::Header, Value) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.clone().expect("id_token kid");
    let matching: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kid"] == kid.as_str())
        .collect();
    assert_eq!(matching.len(), 1, "exactly one published key matches the kid");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(matching[0].clone()).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&[&s.issuer]);
    v.validate_aud = false;
    let data = jsonwebtoken::decode::<Value>(token, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &v)
        .expect("id_token verifies with an independent JOSE library");
    (header, data.claims)
}

async fn jwks(s: &Server) -> Value {
    s.http
        .get(s.endpoint("jwks_uri"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

type ClaimsEdit = dyn Fn(&mut serde_json::Map<String, Value>);
type ParamsEdit = dyn Fn(&mut Vec<(String, String)>);

// ---------------------------------------------------------------------------------------------
// happy path

/// AS-SP-50/66/73/74/80/100/101: the whole flow; the id_token checked with jsonwebtoken.
#[tokio::test]
async fn full_flow_issues_dpop_bound_tokens_and_a_verifiable_id_token() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
    assert!(code.len() >= 43, "AS-SP-66: code entropy");
    let r = token_request(&s, &rp, &dpop, code_params(&code, &par.verifier)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store", "AS-SP-68");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "DPoP", "AS-SP-80");
    assert!(t["access_token"].as_str().unwrap().len() >= 43, "AS-SP-74");
    assert!(t["refresh_token"].as_str().unwrap().len() >= 43, "AS-SP-93");
    assert!(t["expires_in"].as_i64().unwrap() > 0);
    let jwks = jwks(&s).await;
    let (header, claims) = id_token_claims(&s, &jwks, t["id_token"].as_str().unwrap());
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(claims["aud"], rp.client_id.as_str());
    assert_eq!(claims["azp"], rp.client_id.as_str());
    assert_eq!(claims["nonce"], par.nonce.as_str());
    assert!(claims["auth_time"].as_i64().unwrap() <= now());
    assert!((claims["iat"].as_i64().unwrap() - now()).abs() < 30);
    assert!(claims["exp"].as_i64().unwrap() > now());
    assert!(
        claims.get("email").is_none(),
        "profile claims go to userinfo, not the id_token"
    );
    let access = t["access_token"].as_str().unwrap();
    let ui = userinfo(&s, &rp, &dpop, access).await;
    assert_eq!(ui.status(), 200);
    let info: Value = ui.json().await.unwrap();
    assert_eq!(info["sub"], claims["sub"]);
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["name"], "Alice Liddell");
    // RFC 7662: the client's own token, with its binding
    let mut params = rp.auth(&s);
    params.push(("token".into(), access.into()));
    let r = s.post_form(&s.endpoint("introspection_endpoint"), &params, &[]).await;
    let i: Value = r.json().await.unwrap();
    assert_eq!(i["active"], true);
    assert_eq!(i["cnf"]["jkt"], dpop.jkt().as_str());
    assert_eq!(i["client_id"], rp.client_id.as_str());
    // another client learns nothing
    let other = Rp::register(&s).await;
    let mut params = other.auth(&s);
    params.push(("token".into(), access.into()));
    let i: Value = s
        .post_form(&s.endpoint("introspection_endpoint"), &params, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(i, json!({"active": false}));
}

/// The id_token is signed with the client's registered algorithm (AS-SP-101, AS-SP-95).
#[tokio::test]
async fn id_token_uses_the_registered_algorithm() {
    let s = Server::start().await;
    for (alg, expect) in [
        ("PS256", jsonwebtoken::Algorithm::PS256),
        ("EdDSA", jsonwebtoken::Algorithm::EdDSA),
    ] {
        let rp = Rp::register_with(&s, Algorithm::Es256, json!({"id_token_signed_response_alg": alg})).await;
        let (t, _) = tokens(&s, &rp, &DpopKey::new()).await;
        let (header, _) = id_token_claims(&s, &jwks(&s).await, t["id_token"].as_str().unwrap());
        assert_eq!(header.alg, expect);
    }
}

/// Plain OAuth: no openid scope, no id_token (AS-SP-100); userinfo releases only `sub`.
#[tokio::test]
async fn without_openid_there_is_no_id_token() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let (code, par) = authorize(&s, &rp, Par::new(&rp).set("scope", "offline_access").remove("nonce")).await;
    let t: Value = token_request(&s, &rp, &dpop, code_params(&code, &par.verifier))
        .await
        .json()
        .await
        .unwrap();
    assert!(t.get("id_token").is_none(), "{t}");
    let r = userinfo(&s, &rp, &dpop, t["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert!(info["sub"].is_string() && info.get("email").is_none(), "{info}");
}

// ---------------------------------------------------------------------------------------------
// client authentication (AS-SP-24..28, AS-SP-33)

#[tokio::test]
async fn client_assertion_audience_must_be_the_issuer_string() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp);
    // AS-SP-25: token endpoint URL, PAR URL, an array (even with the issuer), another URL
    for aud in [
        json!(s.endpoint("token_endpoint")),
        json!(s.endpoint("pushed_authorization_request_endpoint")),
        json!([s.issuer.clone()]),
        json!([s.issuer.clone(), s.endpoint("token_endpoint")]),
        json!("https://fapidev-rs.authlete.net/api/userinfo"),
    ] {
        let auth = rp.auth_with(&s, |c| {
            c.insert("aud".into(), aud.clone());
        });
        let d = expect_error(par_with(&s, &par, auth, &[]).await, 401, &["invalid_client"]).await;
        assert!(d.contains("aud"), "{d}");
    }
}

#[tokio::test]
async fn client_assertion_claims_are_checked() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp);
    let t = now();
    let cases: Vec<(&str, Box<ClaimsEdit>)> = vec![
        // AS-SP-26, AS-MS-08
        (
            "sub",
            Box::new(|c| {
                c.remove("sub");
            }),
        ),
        (
            "iss and sub",
            Box::new(|c| {
                c.insert("sub".into(), json!("someone-else"));
            }),
        ),
        (
            "expired",
            Box::new(move |c| {
                c.insert("exp".into(), json!(t - 300));
            }),
        ),
        (
            "exp",
            Box::new(|c| {
                c.remove("exp");
            }),
        ),
        (
            "jti",
            Box::new(|c| {
                c.remove("jti");
            }),
        ),
        // AS-SP-28: more than 60 s in the future
        (
            "iat",
            Box::new(move |c| {
                c.insert("iat".into(), json!(t + 62));
                c.insert("nbf".into(), json!(t + 62));
                c.insert("exp".into(), json!(t + 122));
            }),
        ),
        (
            "nbf",
            Box::new(move |c| {
                c.insert("nbf".into(), json!(t + 62));
            }),
        ),
    ];
    for (what, edit) in cases {
        let auth = rp.auth_with(&s, |c| edit(c));
        let d = expect_error(par_with(&s, &par, auth, &[]).await, 401, &["invalid_client"]).await;
        assert!(d.contains(what), "{what}: {d}");
    }
    // AS-SP-28: 8 s in the future is accepted
    let auth = rp.auth_with(&s, |c| {
        c.insert("iat".into(), json!(t + 8));
        c.insert("nbf".into(), json!(t + 8));
    });
    assert_eq!(par_with(&s, &par, auth, &[]).await.status(), 201);
}

/// AS-SP-27: a client assertion is good once.
#[tokio::test]
async fn client_assertion_jti_is_single_use() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp);
    let auth = rp.auth(&s);
    assert_eq!(par_with(&s, &par, auth.clone(), &[]).await.status(), 201);
    let d = expect_error(par_with(&s, &par, auth, &[]).await, 401, &["invalid_client"]).await;
    assert!(d.contains("jti"), "{d}");
}

/// AS-SP-95/96: RS256 and none are refused; a wrong key fails; AS-SP-33: no auth at all fails.
#[tokio::test]
async fn client_assertion_algorithm_key_and_presence() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp);
    let claims = Value::Object(rp.claims(&s));
    for alg in ["RS256", "none", "HS256"] {
        let token = format!(
            "{}.{}.{}",
            b64url(json!({"alg": alg}).to_string()),
            b64url(claims.to_string()),
            b64url("x")
        );
        let auth = vec![
            ("client_assertion_type".into(), ASSERTION_TYPE.into()),
            ("client_assertion".into(), token),
        ];
        let d = expect_error(par_with(&s, &par, auth, &[]).await, 401, &["invalid_client"]).await;
        assert!(d.contains(alg), "{d}");
    }
    let stranger = SigningKey::generate(Algorithm::Es256).unwrap();
    let token = stranger.sign_jwt(Algorithm::Es256, None, &rp.claims(&s)).unwrap();
    let auth = vec![
        ("client_assertion_type".into(), ASSERTION_TYPE.into()),
        ("client_assertion".into(), token),
    ];
    expect_error(par_with(&s, &par, auth, &[]).await, 401, &["invalid_client"]).await;
    // no client authentication: 401 with a JSON body (AS-SP-33, AS-SP-45)
    expect_error(par_with(&s, &par, vec![], &[]).await, 401, &["invalid_client"]).await;
    // a wrong assertion type
    let mut auth = rp.auth(&s);
    auth[0].1 = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer".into();
    expect_error(par_with(&s, &par, auth, &[]).await, 401, &["invalid_client"]).await;
    // RFC 6749 §2.3: an assertion and an Authorization header together are refused
    let mut params = par.params.clone();
    params.extend(rp.auth(&s));
    let r = s
        .http
        .post(s.endpoint("pushed_authorization_request_endpoint"))
        .basic_auth(&rp.client_id, Some("secret"))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic "),
        "RFC 6749 §5.2"
    );
    expect_error(r, 401, &["invalid_client"]).await;
    // client_secret_basic is not a FAPI method (AS-SP-23)
    let r = s
        .http
        .post(s.endpoint("pushed_authorization_request_endpoint"))
        .basic_auth(&rp.client_id, Some("secret"))
        .form(&par.params)
        .send()
        .await
        .unwrap();
    expect_error(r, 401, &["invalid_client"]).await;
}

/// AS-SP-71: a client_id parameter naming another client is refused at the token endpoint.
#[tokio::test]
async fn client_id_must_match_the_assertion() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let other = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
    let mut params = code_params(&code, &par.verifier);
    params.push(("client_id".into(), other.client_id.clone()));
    let r = token_request(&s, &rp, &dpop, params).await;
    expect_error(r, 401, &["invalid_client"]).await;
}

// ---------------------------------------------------------------------------------------------
// PAR (AS-SP-32..46)

/// AS-SP-39/40/41: 201, a request_uri with at least 32 random bytes, expires_in under 600 s.
#[tokio::test]
async fn par_response_shape() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let r = Par::new(&rp).send(&s, &rp, None).await;
    assert_eq!(r.status(), 201);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let b: Value = r.json().await.unwrap();
    let uri = b["request_uri"].as_str().unwrap();
    let random = uri
        .strip_prefix("urn:ietf:params:oauth:request_uri:")
        .expect("RFC 9126 prefix");
    assert!(random.len() >= 43, "{uri}");
    let e = b["expires_in"].as_i64().unwrap();
    assert!((30..600).contains(&e), "{e}");
}

#[tokio::test]
async fn par_refusals_are_400_json_with_the_right_error() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let base = || Par::new(&rp);
    let cases: Vec<(&str, Par, &[&str])> = vec![
        // AS-SP-34
        (
            "request_uri",
            base().set("request_uri", "urn:ietf:params:oauth:request_uri:abc"),
            &["invalid_request"],
        ),
        // AS-SP-48
        ("response_type", base().remove("response_type"), &["invalid_request"]),
        (
            "response_type",
            base().set("response_type", "code id_token"),
            &["unsupported_response_type"],
        ),
        (
            "response_type",
            base().set("response_type", "token"),
            &["unsupported_response_type"],
        ),
        // AS-SP-36/37
        ("redirect_uri", base().remove("redirect_uri"), &["invalid_request"]),
        (
            "redirect_uri",
            base().set("redirect_uri", "https://client.example.org/cb/other"),
            &["invalid_request"],
        ),
        (
            "redirect_uri",
            base().set("redirect_uri", "https://attacker.example/cb"),
            &["invalid_request"],
        ),
        // AS-SP-59
        ("code_challenge", base().remove("code_challenge"), &["invalid_request"]),
        (
            "code_challenge_method",
            base().remove("code_challenge_method"),
            &["invalid_request"],
        ),
        (
            "plain",
            base().set("code_challenge_method", "plain"),
            &["invalid_request"],
        ),
        (
            "code_challenge",
            base().set("code_challenge", "short"),
            &["invalid_request"],
        ),
        // RFC 6749 §3.3
        ("scope", base().set("scope", "openid admin"), &["invalid_scope"]),
        (
            "response_mode",
            base().set("response_mode", "fragment"),
            &["invalid_request"],
        ),
    ];
    for (what, par, errors) in cases {
        let d = expect_error(par.send(&s, &rp, None).await, 400, errors).await;
        assert!(d.contains(what), "{what}: {d}");
    }
    // RFC 6749 §3.1: a parameter sent twice
    let mut par = base();
    par.params.push(("scope".into(), "openid".into()));
    let d = expect_error(par.send(&s, &rp, None).await, 400, &["invalid_request"]).await;
    assert!(d.contains("more than once"), "{d}");
    // AS-SP-32: other methods
    let r = s
        .http
        .get(s.endpoint("pushed_authorization_request_endpoint"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = s
        .http
        .put(s.endpoint("pushed_authorization_request_endpoint"))
        .form(&base().params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // not form-encoded
    let r = s
        .http
        .post(s.endpoint("pushed_authorization_request_endpoint"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, &["invalid_request"]).await;
}

/// AS-SP-82/83: a DPoP proof at PAR without the server nonce gets use_dpop_nonce with exactly
/// one DPoP-Nonce header; the proof with the nonce is accepted.
#[tokio::test]
async fn par_dpop_nonce_challenge() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let par_ep = s.endpoint("pushed_authorization_request_endpoint");
    let r = Par::new(&rp)
        .send(&s, &rp, Some(dpop.proof("POST", &par_ep, None, None)))
        .await;
    let nonces: Vec<_> = r
        .headers()
        .get_all("dpop-nonce")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(nonces.len(), 1);
    assert!(nonces[0].bytes().all(|b| b.is_ascii_graphic() && b != b'"'), "NQCHAR");
    expect_error(r, 400, &["use_dpop_nonce"]).await;
    let r = Par::new(&rp)
        .send(&s, &rp, Some(dpop.proof("POST", &par_ep, Some(&nonces[0]), None)))
        .await;
    assert_eq!(r.status(), 201);
    // a made-up nonce is refused the same way
    let r = Par::new(&rp)
        .send(&s, &rp, Some(dpop.proof("POST", &par_ep, Some("made-up"), None)))
        .await;
    expect_error(r, 400, &["use_dpop_nonce"]).await;
}

/// AS-SP-46: dpop_jkt and the PAR proof must name the same key.
#[tokio::test]
async fn par_dpop_jkt_mismatch_is_refused() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let nonce = dpop_nonce(&s, &rp).await;
    let par_ep = s.endpoint("pushed_authorization_request_endpoint");
    let wrong: Vec<u8> = portcullis_jose::b64url_decode(&dpop.jkt())
        .unwrap()
        .iter()
        .map(|b| b ^ 0x5a)
        .collect();
    let par = Par::new(&rp).set("dpop_jkt", &b64url(wrong));
    let r = par
        .send(&s, &rp, Some(dpop.proof("POST", &par_ep, Some(&nonce), None)))
        .await;
    expect_error(r, 400, &["invalid_request", "invalid_dpop_proof"]).await;
}

/// AS-SP-67 (catalogue rows 16-19): the code is bound to the PAR key or dpop_jkt.
#[tokio::test]
async fn code_is_bound_to_the_dpop_key_named_at_par() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par_ep = s.endpoint("pushed_authorization_request_endpoint");
    // proof at PAR with key A, token with key B: refused
    let a = DpopKey::new();
    let nonce = dpop_nonce(&s, &rp).await;
    let par = Par::new(&rp);
    let r = par
        .send(&s, &rp, Some(a.proof("POST", &par_ep, Some(&nonce), None)))
        .await;
    assert_eq!(r.status(), 201);
    let request_uri = r.json::<Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let cb = Browser::default().run(&s, &rp.client_id, &request_uri, "allow").await;
    let code = query(&cb)["code"].clone();
    let r = token_request(&s, &rp, &DpopKey::new(), code_params(&code, &par.verifier)).await;
    expect_error(r, 400, &["invalid_grant"]).await;
    // dpop_jkt of key A, token with key B: refused; with key A: accepted
    for (use_a, ok) in [(false, false), (true, true)] {
        let a = DpopKey::new();
        let (code, par) = authorize(&s, &rp, Par::new(&rp).set("dpop_jkt", &a.jkt())).await;
        let key = if use_a { a } else { DpopKey::new() };
        let r = token_request(&s, &rp, &key, code_params(&code, &par.verifier)).await;
        if ok {
            assert_eq!(r.status(), 200);
        } else {
            expect_error(r, 400, &["invalid_grant"]).await;
        }
    }
    // proof at PAR and dpop_jkt, both key A, token with A: accepted (row 19)
    let a = DpopKey::new();
    let nonce = dpop_nonce(&s, &rp).await;
    let par = Par::new(&rp).set("dpop_jkt", &a.jkt());
    let r = par
        .send(&s, &rp, Some(a.proof("POST", &par_ep, Some(&nonce), None)))
        .await;
    let request_uri = r.json::<Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let cb = Browser::default().run(&s, &rp.client_id, &request_uri, "allow").await;
    let r = token_request(&s, &rp, &a, code_params(&query(&cb)["code"], &par.verifier)).await;
    assert_eq!(r.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// authorization endpoint (AS-SP-42..57)

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

/// AS-SP-43/44: usable again until the authorization completes, then refused.
#[tokio::test]
async fn request_uri_single_use_after_completion() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp);
    let request_uri = par.push(&s, &rp).await;
    let url = Browser::authorization_url(&s, &rp.client_id, &request_uri);
    // a first visit without logging in (a link pre-fetcher) does not burn it
    let mut first = Browser::default();
    assert_eq!(first.get(&s, &url).await.0, 200);
    assert_eq!(first.get(&s, &url).await.0, 200);
    let mut b = Browser::default();
    let cb = b.run(&s, &rp.client_id, &request_uri, "allow").await;
    assert!(query(&cb).contains_key("code"));
    // once completed: invalid_request_uri, by redirect with state and iss
    let (status, headers, _) = b.get(&s, &url).await;
    assert_eq!(status, 303);
    let q = query(&url::Url::parse(headers["location"].to_str().unwrap()).unwrap());
    assert_eq!(q["error"], "invalid_request_uri");
    assert_eq!(q["state"], par.state);
    assert_eq!(q["iss"], s.issuer);
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

// ---------------------------------------------------------------------------------------------
// login and consent

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
    assert!(headers["location"].to_str().unwrap().contains("request_uri="));
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

// ---------------------------------------------------------------------------------------------
// authorization code and token endpoint (AS-SP-60..72)

/// AS-SP-64: a replayed code fails with invalid_grant and revokes what the first use issued.
#[tokio::test]
async fn code_replay_revokes_the_grant() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
    let t: Value = token_request(&s, &rp, &dpop, code_params(&code, &par.verifier))
        .await
        .json()
        .await
        .unwrap();
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&s, &rp, &dpop, access).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let r = token_request(&s, &rp, &dpop, code_params(&code, &par.verifier)).await;
    expect_error(r, 400, &["invalid_grant"]).await;
    assert_eq!(
        userinfo(&s, &rp, &dpop, access).await.status(),
        401,
        "access token revoked"
    );
    let mut params = vec![("grant_type".to_owned(), "refresh_token".to_owned())];
    params.push(("refresh_token".into(), t["refresh_token"].as_str().unwrap().into()));
    expect_error(token_request(&s, &rp, &dpop, params).await, 400, &["invalid_grant"]).await;
}

/// AS-SP-60/65: code bound to client, redirect_uri and PKCE verifier.
#[tokio::test]
async fn code_binding_and_pkce() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let other = Rp::register(&s).await;
    let dpop = DpopKey::new();
    // another client
    let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
    expect_error(
        token_request(&s, &other, &dpop, code_params(&code, &par.verifier)).await,
        400,
        &["invalid_grant"],
    )
    .await;
    // and the rightful client can still redeem it
    assert_eq!(
        token_request(&s, &rp, &dpop, code_params(&code, &par.verifier))
            .await
            .status(),
        200
    );
    // missing verifier, wrong verifier, malformed verifier, wrong redirect_uri
    let (wrong, _) = pkce();
    let cases: Vec<Box<ParamsEdit>> = vec![
        Box::new(|p| p.retain(|(k, _)| k != "code_verifier")),
        Box::new(move |p| p[3].1 = wrong.clone()),
        Box::new(|p| p[3].1 = "short".into()),
        Box::new(|p| p[2].1 = REDIRECT_URI_2.into()),
    ];
    for edit in cases {
        let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
        let mut params = code_params(&code, &par.verifier);
        edit(&mut params);
        expect_error(token_request(&s, &rp, &dpop, params).await, 400, &["invalid_grant"]).await;
    }
    // a 128-character verifier from the whole RFC 7636 alphabet works
    let verifier: String =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".repeat(2)[..128].to_owned();
    let challenge = portcullis_jose::sha256_b64url(&verifier);
    let par = Par::new(&rp).set("code_challenge", &challenge);
    let (code, _) = authorize(&s, &rp, par).await;
    assert_eq!(
        token_request(&s, &rp, &dpop, code_params(&code, &verifier))
            .await
            .status(),
        200
    );
}

/// AS-SP-63: codes live at most the configured lifetime.
#[tokio::test]
async fn expired_code_is_refused() {
    let s = Server::start_with(&[("PORTCULLIS_TOKENS_CODE_LIFETIME", "1")]).await;
    let rp = Rp::register(&s).await;
    let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let d = expect_error(
        token_request(&s, &rp, &DpopKey::new(), code_params(&code, &par.verifier)).await,
        400,
        &["invalid_grant"],
    )
    .await;
    assert!(d.contains("expired"), "{d}");
}

/// AS-SP-24/68/69/72/79: the token endpoint's refusals.
#[tokio::test]
async fn token_endpoint_refusals() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let te = s.endpoint("token_endpoint");
    let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
    // no DPoP proof: no bearer fallback
    let mut params = code_params(&code, &par.verifier);
    params.extend(rp.auth(&s));
    let r = s.post_form(&te, &params, &[]).await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    expect_error(r, 400, &["invalid_dpop_proof", "invalid_request"]).await;
    // no client authentication: 401 with JSON
    let key = DpopKey::new();
    let nonce = dpop_nonce(&s, &rp).await;
    let r = s
        .post_form(
            &te,
            &code_params(&code, &par.verifier),
            &[key.proof("POST", &te, Some(&nonce), None)],
        )
        .await;
    expect_error(r, 401, &["invalid_client"]).await;
    // the password grant and unknown grants
    for g in ["password", "client_credentials", "implicit"] {
        let r = token_request(&s, &rp, &key, vec![("grant_type".into(), g.into())]).await;
        expect_error(r, 400, &["unsupported_grant_type"]).await;
    }
    let r = token_request(&s, &rp, &key, vec![]).await;
    expect_error(r, 400, &["invalid_request"]).await;
    // the token endpoint nonce challenge carries exactly one DPoP-Nonce
    let mut params = code_params(&code, &par.verifier);
    params.extend(rp.auth(&s));
    let r = s.post_form(&te, &params, &[key.proof("POST", &te, None, None)]).await;
    assert_eq!(r.headers().get_all("dpop-nonce").iter().count(), 1);
    expect_error(r, 400, &["use_dpop_nonce"]).await;
    // and the code still works after all of that
    assert_eq!(
        token_request(&s, &rp, &key, code_params(&code, &par.verifier))
            .await
            .status(),
        200
    );
}

/// AS-SP-28/81 (catalogue rows 12-14): proofs with iat -10 s / +8 s and extra nbf/exp claims.
#[tokio::test]
async fn token_endpoint_dpop_clock_skew_and_extra_claims() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let te = s.endpoint("token_endpoint");
    for (shift, extra) in [(-10i64, false), (8, false), (0, true)] {
        let (code, par) = authorize(&s, &rp, Par::new(&rp)).await;
        let key = DpopKey::new();
        let nonce = dpop_nonce(&s, &rp).await;
        let mut claims = key.claims("POST", &te, Some(&nonce), None);
        claims["iat"] = json!(now() + shift);
        if extra {
            claims["nbf"] = json!(now());
            claims["exp"] = json!(now() + 300);
        }
        let mut params = code_params(&code, &par.verifier);
        params.extend(rp.auth(&s));
        let r = s.post_form(&te, &params, &[key.sign(&key.header(), &claims)]).await;
        assert_eq!(
            r.status(),
            200,
            "iat shift {shift}, extra {extra}: {}",
            r.text().await.unwrap()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// refresh (AS-SP-85..92)

#[tokio::test]
async fn refresh_with_a_new_dpop_key_binds_the_new_token_to_it() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let first = DpopKey::new();
    let (t, _) = tokens(&s, &rp, &first).await;
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let (_, first_claims) = id_token_claims(&s, &jwks(&s).await, t["id_token"].as_str().unwrap());
    let second = DpopKey::new();
    let refresh_params = || {
        vec![
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("refresh_token".to_owned(), rt.clone()),
        ]
    };
    let r = token_request(&s, &rp, &second, refresh_params()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t2: Value = r.json().await.unwrap();
    assert_eq!(t2["token_type"], "DPoP");
    // AS-SP-89: not rotated
    assert!(t2.get("refresh_token").is_none_or(|v| v == rt.as_str()));
    let access2 = t2["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&s, &rp, &second, access2).await.status(), 200);
    assert_eq!(
        userinfo(&s, &rp, &first, access2).await.status(),
        401,
        "bound to the new key"
    );
    // the id_token from a refresh keeps iss, sub, aud, auth_time, azp (AS-SP-101)
    let (_, c2) = id_token_claims(&s, &jwks(&s).await, t2["id_token"].as_str().unwrap());
    for k in ["iss", "sub", "aud", "auth_time", "azp"] {
        assert_eq!(c2[k], first_claims[k], "{k}");
    }
    // the same refresh token keeps working
    assert_eq!(
        token_request(&s, &rp, &DpopKey::new(), refresh_params()).await.status(),
        200
    );
}

#[tokio::test]
async fn refresh_refusals() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let other = Rp::register(&s).await;
    let key = DpopKey::new();
    let (t, _) = tokens(&s, &rp, &key).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let te = s.endpoint("token_endpoint");
    let base = vec![
        ("grant_type".to_owned(), "refresh_token".to_owned()),
        ("refresh_token".to_owned(), rt.to_owned()),
    ];
    // AS-SP-90: without client authentication
    let nonce = dpop_nonce(&s, &rp).await;
    let r = s
        .post_form(&te, &base, &[key.proof("POST", &te, Some(&nonce), None)])
        .await;
    expect_error(r, 401, &["invalid_client"]).await;
    // AS-SP-91: without a proof
    let mut params = base.clone();
    params.extend(rp.auth(&s));
    expect_error(
        s.post_form(&te, &params, &[]).await,
        400,
        &["invalid_dpop_proof", "invalid_request"],
    )
    .await;
    // another client's refresh token
    expect_error(
        token_request(&s, &other, &key, base.clone()).await,
        400,
        &["invalid_grant"],
    )
    .await;
    // AS-SP-92: no widening
    let mut params = base.clone();
    params.push(("scope".into(), "openid offline_access".into()));
    expect_error(token_request(&s, &rp, &key, params).await, 400, &["invalid_scope"]).await;
    // a narrower scope is fine
    let mut params = base.clone();
    params.push(("scope".into(), "openid".into()));
    let r = token_request(&s, &rp, &key, params).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["scope"], "openid");
    // unknown refresh token
    let params = vec![
        ("grant_type".to_owned(), "refresh_token".to_owned()),
        ("refresh_token".to_owned(), "nope".to_owned()),
    ];
    expect_error(token_request(&s, &rp, &key, params).await, 400, &["invalid_grant"]).await;
}

// ---------------------------------------------------------------------------------------------
// userinfo as a protected resource (AS-SP-103, RS-SP-02..13; catalogue dpop-negative-tests)

async fn resource_call(s: &Server, scheme: &str, token: &str, proofs: &[String]) -> reqwest::Response {
    let mut req = s
        .http
        .get(s.endpoint("userinfo_endpoint"))
        .header("authorization", format!("{scheme} {token}"));
    for p in proofs {
        req = req.header("dpop", p);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn userinfo_challenges() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let key = DpopKey::new();
    let (t, _) = tokens(&s, &rp, &key).await;
    let token = t["access_token"].as_str().unwrap();
    let ui = s.endpoint("userinfo_endpoint");
    // no credentials: 401, DPoP challenge with algs and no error (RFC 6750 §3.1)
    let r = s.http.get(&ui).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let w = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        w.starts_with("DPoP ") && w.contains("algs=") && !w.contains("error="),
        "{w}"
    );
    // RS-SP-09: a DPoP-bound token as Bearer, or without a proof
    for (scheme, proofs) in [
        ("Bearer", vec![]),
        ("bearer", vec![key.proof("GET", &ui, None, Some(token))]),
        ("DPoP", vec![]),
    ] {
        let r = resource_call(&s, scheme, token, &proofs).await;
        assert_eq!(r.status(), 401, "{scheme}");
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("DPoP "));
    }
    // RS-SP-13: a proof without the nonce: 401 use_dpop_nonce with one DPoP-Nonce
    let r = resource_call(&s, "DPoP", token, &[key.proof("GET", &ui, None, Some(token))]).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"use_dpop_nonce\"")
    );
    let nonces: Vec<_> = r
        .headers()
        .get_all("dpop-nonce")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(nonces.len(), 1);
    // RS-SP-02: the scheme in any letter case
    for scheme in ["DPoP", "dpop", "dPoP", "DPOP"] {
        let r = resource_call(
            &s,
            scheme,
            token,
            &[key.proof("GET", &ui, Some(&nonces[0]), Some(token))],
        )
        .await;
        assert_eq!(r.status(), 200, "{scheme}");
    }
    // POST works too (OIDC Core §5.3.1)
    let r = s
        .http
        .post(&ui)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", key.proof("POST", &ui, Some(&nonces[0]), Some(token)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // RS-SP-03: a token in the query is not a credential
    let r = s.http.get(format!("{ui}?access_token={token}")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // an unknown token
    let r = resource_call(
        &s,
        "DPoP",
        "unknown",
        &[key.proof("GET", &ui, Some(&nonces[0]), Some("unknown"))],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

/// The conformance suite's dpop-negative-tests list, against userinfo (RS-SP-07/08/10/12).
#[tokio::test]
async fn userinfo_dpop_negative_tests() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let key = DpopKey::new();
    let (t, _) = tokens(&s, &rp, &key).await;
    let token = t["access_token"].as_str().unwrap().to_owned();
    let ui = s.endpoint("userinfo_endpoint");
    let nonce = dpop_nonce(&s, &rp).await;
    let good = || key.claims("GET", &ui, Some(&nonce), Some(&token));
    let header = || key.header();
    let other = DpopKey::new();
    let mut with_private = key.header();
    with_private["jwk"]["d"] = json!(b64url([1u8; 32]));
    let signed = |h: Value, c: Value| key.sign(&h, &c);
    let edit_claims = |f: &dyn Fn(&mut Value)| {
        let mut c = good();
        f(&mut c);
        signed(header(), c)
    };
    let edit_header = |f: &dyn Fn(&mut Value)| {
        let mut h = header();
        f(&mut h);
        signed(h, good())
    };
    let valid = signed(header(), good());
    let (head, _) = valid.rsplit_once('.').unwrap();
    let must_fail: Vec<(&str, Vec<String>)> = vec![
        (
            "two DPoP headers",
            vec![signed(header(), good()), signed(header(), good())],
        ),
        ("no signature", vec![format!("{head}.")]),
        ("corrupted signature", vec![format!("{head}.{}", b64url([9u8; 64]))]),
        (
            "typ missing",
            vec![edit_header(&|h| drop(h.as_object_mut().unwrap().remove("typ")))],
        ),
        (
            "alg missing",
            vec![edit_header(&|h| drop(h.as_object_mut().unwrap().remove("alg")))],
        ),
        (
            "jwk missing",
            vec![edit_header(&|h| drop(h.as_object_mut().unwrap().remove("jwk")))],
        ),
        (
            "wrong typ",
            vec![edit_header(&|h| h["typ"] = json!("dpop+jwt+wrongyousee"))],
        ),
        ("alg none", vec![edit_header(&|h| h["alg"] = json!("none"))]),
        ("alg RS256", vec![edit_header(&|h| h["alg"] = json!("RS256"))]),
        ("private key in jwk", vec![signed(with_private.clone(), good())]),
        (
            "jti missing",
            vec![edit_claims(&|c| drop(c.as_object_mut().unwrap().remove("jti")))],
        ),
        (
            "htm missing",
            vec![edit_claims(&|c| drop(c.as_object_mut().unwrap().remove("htm")))],
        ),
        (
            "htu missing",
            vec![edit_claims(&|c| drop(c.as_object_mut().unwrap().remove("htu")))],
        ),
        (
            "iat missing",
            vec![edit_claims(&|c| drop(c.as_object_mut().unwrap().remove("iat")))],
        ),
        (
            "ath missing",
            vec![edit_claims(&|c| drop(c.as_object_mut().unwrap().remove("ath")))],
        ),
        ("htm PUT", vec![edit_claims(&|c| c["htm"] = json!("PUT"))]),
        (
            "htu elsewhere",
            vec![edit_claims(&|c| c["htu"] = json!(s.endpoint("token_endpoint")))],
        ),
        (
            "wrong ath",
            vec![edit_claims(&|c| {
                c["ath"] = json!(portcullis_jose::sha256_b64url("other"))
            })],
        ),
        (
            "iat an hour ahead",
            vec![edit_claims(&|c| c["iat"] = json!(now() + 3600))],
        ),
        (
            "iat an hour ago",
            vec![edit_claims(&|c| c["iat"] = json!(now() - 3600))],
        ),
        (
            "other key",
            vec![other.sign(&other.header(), &other.claims("GET", &ui, Some(&nonce), Some(&token)))],
        ),
    ];
    for (what, proofs) in must_fail {
        let r = resource_call(&s, "DPoP", &token, &proofs).await;
        assert!(matches!(r.status().as_u16(), 400 | 401), "{what}: {}", r.status());
    }
    let must_succeed: Vec<(&str, String)> = vec![
        (
            "htu with query and fragment",
            edit_claims(&|c| c["htu"] = json!(format!("{ui}?a=b#frag"))),
        ),
        (
            "upper-case scheme and host",
            edit_claims(&|c| c["htu"] = json!(ui.replace("https://localhost", "HTTPS://LOCALHOST"))),
        ),
        ("extra header and claim", {
            let mut h = header();
            h["x-extra"] = json!("yes");
            let mut c = good();
            c["x-extra"] = json!(1);
            signed(h, c)
        }),
    ];
    for (what, proof) in must_succeed {
        let r = resource_call(&s, "DPoP", &token, std::slice::from_ref(&proof)).await;
        assert_eq!(r.status(), 200, "{what}");
        // RS-SP-12 / AS-SP-84: the same jti again is refused
        if what == "extra header and claim" {
            let r = resource_call(&s, "DPoP", &token, &[proof]).await;
            assert_eq!(r.status(), 401, "jti replay");
        }
    }
}

/// Issue 10: server nonces stay valid across a restart (they derive from a stored secret).
#[tokio::test]
async fn dpop_nonce_survives_a_restart() {
    let mut s = Server::start().await;
    let rp = Rp::register(&s).await;
    let nonce = dpop_nonce(&s, &rp).await;
    s.restart().await;
    let key = DpopKey::new();
    let par_ep = s.endpoint("pushed_authorization_request_endpoint");
    let r = Par::new(&rp)
        .send(&s, &rp, Some(key.proof("POST", &par_ep, Some(&nonce), None)))
        .await;
    assert_eq!(r.status(), 201);
}

/// RFC 9126 §2.3: an oversized PAR is 413, and still a JSON object (AS-SP-45).
#[tokio::test]
async fn oversized_par_is_413_json() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let par = Par::new(&rp).set("state", &"x".repeat(70_000));
    let r = par.send(&s, &rp, None).await;
    expect_error(r, 413, &["invalid_request"]).await;
}

/// AS-SP-95: every FAPI algorithm works for client assertions and DPoP proofs (the conformance
/// suite defaults to PS256 DPoP keys; oauth4webapi names Ed25519 keys `Ed25519`).
#[tokio::test]
async fn every_fapi_algorithm_for_assertions_and_proofs() {
    let s = Server::start().await;
    for (client_alg, dpop_alg) in [
        (Algorithm::Ps256, Algorithm::Ps256),
        (Algorithm::EdDsa, Algorithm::Ed25519),
        (Algorithm::Ed25519, Algorithm::EdDsa),
    ] {
        let rp = Rp::register_with(&s, client_alg, json!({})).await;
        let dpop = DpopKey::with(dpop_alg);
        let (t, _) = tokens(&s, &rp, &dpop).await;
        let access = t["access_token"].as_str().unwrap();
        assert_eq!(
            userinfo(&s, &rp, &dpop, access).await.status(),
            200,
            "{client_alg} / {dpop_alg}"
        );
    }
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

/// RFC 9449 §8: the nonce is checked before the client assertion is spent, so a client that
/// retries with the same assertion after use_dpop_nonce succeeds.
#[tokio::test]
async fn nonce_retry_may_reuse_the_client_assertion() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let key = DpopKey::new();
    let par_ep = s.endpoint("pushed_authorization_request_endpoint");
    let mut params = Par::new(&rp).params;
    params.extend(rp.auth(&s));
    let r = s
        .post_form(&par_ep, &params, &[key.proof("POST", &par_ep, None, None)])
        .await;
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    expect_error(r, 400, &["use_dpop_nonce"]).await;
    let r = s
        .post_form(&par_ep, &params, &[key.proof("POST", &par_ep, Some(&nonce), None)])
        .await;
    assert_eq!(r.status(), 201);
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

/// AS-OPT-14/15/16: introspection needs client authentication; unknown tokens are inactive;
/// refresh tokens introspect without a key binding (they are bound to the client).
#[tokio::test]
async fn introspection_rules() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let (t, _) = tokens(&s, &rp, &DpopKey::new()).await;
    let ep = s.endpoint("introspection_endpoint");
    let token = vec![("token".to_owned(), t["access_token"].as_str().unwrap().to_owned())];
    expect_error(s.post_form(&ep, &token, &[]).await, 401, &["invalid_client"]).await;
    let mut params = rp.auth(&s);
    params.push(("token".into(), "unknown".into()));
    let r = s.post_form(&ep, &params, &[]).await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"active": false}));
    let mut params = rp.auth(&s);
    params.push(("token".into(), t["refresh_token"].as_str().unwrap().into()));
    params.push(("token_type_hint".into(), "refresh_token".into()));
    let i: Value = s.post_form(&ep, &params, &[]).await.json().await.unwrap();
    assert_eq!(i["active"], true);
    assert!(i.get("cnf").is_none(), "{i}");
    let mut params = rp.auth(&s);
    params.push(("token".into(), t["access_token"].as_str().unwrap().into()));
    let i: Value = s.post_form(&ep, &params, &[]).await.json().await.unwrap();
    assert_eq!(i["token_type"], "DPoP");
    assert_eq!(i["iss"], s.issuer.as_str());
    assert!(i["exp"].as_i64().unwrap() > now());
}
