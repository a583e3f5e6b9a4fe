//! FAPI 2.0 HTTP Signatures at the demo API (RS-MS-02..12): client-signed requests verified
//! with the client's registered keys, required of clients registered to sign, refused with 401
//! `invalid_signature`; every response signed with the server's key from its JWKS and bound to
//! the request; the signed messages kept in the evidence log.

use portcullis_httpsig::http::{HeaderMap, HeaderName, HeaderValue};
use portcullis_httpsig::{RequestPolicy, RequestView, ResponseView, sign_request, verify_response};
use portcullis_jose::{Jwks, PublicJwk};

use super::*;

const PAYMENT: &str =
    r#"{"amount":"12.30","currency":"EUR","creditor_name":"Bob","creditor_iban":"DE02100100109307118603"}"#;

/// A signing client with a token for the demo API's scopes.
struct Signer {
    rp: Rp,
    dpop: DpopKey,
    token: String,
}

async fn signer(s: &Server, alg: Algorithm, required: bool) -> Signer {
    let rp = Rp::register_with(s, alg, json!({"require_signed_resource_requests": required})).await;
    assert_eq!(rp.registration["require_signed_resource_requests"], json!(required));
    let dpop = DpopKey::new();
    let (code, par) = authorize(s, &rp, Par::new(&rp).set("scope", "openid accounts payments")).await;
    let r = token_request(s, &rp, &dpop, code_params(&code, &par.verifier)).await;
    let t: Value = r.json().await.unwrap();
    Signer {
        rp,
        dpop,
        token: t["access_token"].as_str().unwrap().to_owned(),
    }
}

fn demo(s: &Server, name: &str) -> String {
    s.meta["portcullis_demo_api"][name].as_str().unwrap().to_owned()
}

/// The headers of a demo API call: token, DPoP proof with the current nonce, and (for a body)
/// the content type.
async fn base_headers(s: &Server, c: &Signer, method: &str, url: &str, body: bool) -> HeaderMap {
    let nonce = dpop_nonce(s, &c.rp).await;
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("DPoP {}", c.token)).unwrap(),
    );
    h.insert(
        "dpop",
        HeaderValue::from_str(&c.dpop.proof(method, url, Some(&nonce), Some(&c.token))).unwrap(),
    );
    if body {
        h.insert("content-type", HeaderValue::from_static("application/json"));
    }
    h
}

async fn send(s: &Server, method: &str, url: &str, headers: HeaderMap, body: &str) -> reqwest::Response {
    let mut req = if method == "GET" {
        s.http.get(url)
    } else {
        s.http.post(url)
    };
    for (k, v) in &headers {
        req = req.header(k.as_str(), v.to_str().unwrap());
    }
    if !body.is_empty() {
        req = req.body(body.to_owned());
    }
    req.send().await.unwrap()
}

async fn server_keys(s: &Server) -> Jwks {
    let jwks: Value = s
        .http
        .get(s.endpoint("jwks_uri"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Jwks::from_json(&jwks).unwrap()
}

/// Verifies the server's signature on `r` as a client would (CL-MS-08), returning the status
/// and body.
async fn verified_response(
    s: &Server,
    r: reqwest::Response,
    method: &str,
    url: &str,
    request_headers: &HeaderMap,
    request_body: &str,
    signed_as: Option<&str>,
) -> (u16, Value) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap();
    let jwks = server_keys(s).await;
    let lookup = |kid: &str| -> Option<PublicJwk> { jwks.keys().iter().find(|k| k.kid() == Some(kid)).cloned() };
    let request = RequestView {
        method,
        target_uri: url,
        headers: request_headers,
    };
    let response = ResponseView {
        status,
        headers: &headers,
    };
    verify_response(
        &response,
        &body,
        &request,
        !request_body.is_empty(),
        signed_as,
        now(),
        &RequestPolicy::default(),
        &lookup,
    )
    .unwrap_or_else(|e| panic!("the server's response signature does not verify: {e}"));
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn rs_ms_signed_requests_and_signed_responses() {
    let s = Server::start().await;
    let sig = &s.meta["portcullis_demo_api"]["http_message_signatures"];
    assert_eq!(sig["request_tag"], "fapi-2-request");
    assert_eq!(sig["response_signing_jwks_uri"], s.meta["jwks_uri"]);
    let accounts = demo(&s, "accounts_endpoint");
    let payments = demo(&s, "payments_endpoint");
    for alg in [Algorithm::Es256, Algorithm::Ps256, Algorithm::EdDsa] {
        let c = signer(&s, alg, true).await;
        // a signed GET: 200, and the response is signed over the request's signature (RS-MS-11)
        let mut h = base_headers(&s, &c, "GET", &accounts, false).await;
        let signed = sign_request(&mut h, "GET", &accounts, b"", &c.rp.key, now()).unwrap();
        let r = send(&s, "GET", &accounts, h.clone(), "").await;
        let (status, body) = verified_response(&s, r, "GET", &accounts, &h, "", Some(&signed.label)).await;
        assert_eq!(status, 200, "{alg}: {body}");
        assert_eq!(body["accounts"].as_array().unwrap().len(), 2);

        // a signed POST with a body (Content-Digest, RS-MS-08): 201
        let mut h = base_headers(&s, &c, "POST", &payments, true).await;
        let signed = sign_request(&mut h, "POST", &payments, PAYMENT.as_bytes(), &c.rp.key, now()).unwrap();
        let r = send(&s, "POST", &payments, h.clone(), PAYMENT).await;
        let (status, body) = verified_response(&s, r, "POST", &payments, &h, PAYMENT, Some(&signed.label)).await;
        assert_eq!(status, 201, "{alg}: {body}");
        assert_eq!(body["status"], "accepted");
    }
}

async fn refused(r: reqwest::Response) -> String {
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (_, error, description) = error_of(r).await;
    assert_eq!((status, error.as_str()), (401, "invalid_signature"), "{description}");
    assert!(challenge.contains("invalid_signature"), "{challenge}");
    description
}

#[tokio::test]
async fn rs_ms_missing_or_bad_signatures_are_401() {
    let s = Server::start().await;
    let accounts = demo(&s, "accounts_endpoint");
    let payments = demo(&s, "payments_endpoint");
    let c = signer(&s, Algorithm::Es256, true).await;

    // RS-MS-03: a client registered to sign, unsigned
    let h = base_headers(&s, &c, "GET", &accounts, false).await;
    let d = refused(send(&s, "GET", &accounts, h, "").await).await;
    assert!(d.contains("must sign"), "{d}");

    // RS-MS-08: the body changed after signing
    let mut h = base_headers(&s, &c, "POST", &payments, true).await;
    sign_request(&mut h, "POST", &payments, PAYMENT.as_bytes(), &c.rp.key, now()).unwrap();
    let tampered = PAYMENT.replace("12.30", "99.30");
    let d = refused(send(&s, "POST", &payments, h, &tampered).await).await;
    assert!(d.contains("igest"), "{d}");

    // RS-MS-06: created too old
    let mut h = base_headers(&s, &c, "GET", &accounts, false).await;
    sign_request(&mut h, "GET", &accounts, b"", &c.rp.key, now() - 120).unwrap();
    let d = refused(send(&s, "GET", &accounts, h, "").await).await;
    assert!(d.contains("created"), "{d}");

    // RS-MS-02: signed with a key the client did not register
    let other = SigningKey::generate(Algorithm::Es256).unwrap();
    let mut h = base_headers(&s, &c, "GET", &accounts, false).await;
    sign_request(&mut h, "GET", &accounts, b"", &other, now()).unwrap();
    refused(send(&s, "GET", &accounts, h, "").await).await;

    // a covered header changed after signing (the signature no longer verifies)
    let mut h = base_headers(&s, &c, "GET", &accounts, false).await;
    sign_request(&mut h, "GET", &accounts, b"", &c.rp.key, now()).unwrap();
    let input = h["signature-input"]
        .to_str()
        .unwrap()
        .replace("fapi-2-request", "fapi-2-requesx");
    h.insert("signature-input", HeaderValue::from_str(&input).unwrap());
    refused(send(&s, "GET", &accounts, h, "").await).await;

    // signed for another URL (@target-uri)
    let mut h = base_headers(&s, &c, "GET", &accounts, false).await;
    sign_request(&mut h, "GET", &format!("{accounts}?x=1"), b"", &c.rp.key, now()).unwrap();
    refused(send(&s, "GET", &accounts, h, "").await).await;

    // RS-MS-05: not covering authorization (a signature made by hand without it)
    let mut h = base_headers(&s, &c, "GET", &accounts, false).await;
    sign_request(&mut h, "GET", &accounts, b"", &c.rp.key, now()).unwrap();
    let input = h["signature-input"].to_str().unwrap().replace(" \"authorization\"", "");
    h.insert(
        HeaderName::from_static("signature-input"),
        HeaderValue::from_str(&input).unwrap(),
    );
    let d = refused(send(&s, "GET", &accounts, h, "").await).await;
    assert!(d.contains("authorization"), "{d}");

    // a refusal is signed too, bound to the request
    let h = base_headers(&s, &c, "GET", &accounts, false).await;
    let r = send(&s, "GET", &accounts, h.clone(), "").await;
    let (status, _) = verified_response(&s, r, "GET", &accounts, &h, "", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn clients_not_registered_to_sign_may_sign_and_are_checked() {
    let s = Server::start().await;
    let accounts = demo(&s, "accounts_endpoint");
    let c = signer(&s, Algorithm::Es256, false).await;
    // unsigned: fine, and the response is still signed
    let h = base_headers(&s, &c, "GET", &accounts, false).await;
    let r = send(&s, "GET", &accounts, h.clone(), "").await;
    let (status, _) = verified_response(&s, r, "GET", &accounts, &h, "", None).await;
    assert_eq!(status, 200);
    // an unsigned body (no Content-Digest): 201, the response signed without the request's digest
    let payments = demo(&s, "payments_endpoint");
    let h = base_headers(&s, &c, "POST", &payments, true).await;
    let r = send(&s, "POST", &payments, h.clone(), PAYMENT).await;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let jwks = server_keys(&s).await;
    let lookup = |kid: &str| -> Option<PublicJwk> { jwks.keys().iter().find(|k| k.kid() == Some(kid)).cloned() };
    verify_response(
        &ResponseView {
            status,
            headers: &headers,
        },
        &body,
        &RequestView {
            method: "POST",
            target_uri: &payments,
            headers: &h,
        },
        false,
        None,
        now(),
        &RequestPolicy::default(),
        &lookup,
    )
    .unwrap();
    // signed badly: refused
    let other = SigningKey::generate(Algorithm::Es256).unwrap();
    let mut h = base_headers(&s, &c, "GET", &accounts, false).await;
    sign_request(&mut h, "GET", &accounts, b"", &other, now()).unwrap();
    refused(send(&s, "GET", &accounts, h, "").await).await;
}

#[tokio::test]
async fn every_client_must_sign_when_the_operator_says_so() {
    let s = Server::start_with(&[("PORTCULLIS_DEMO_API_REQUIRE_SIGNED_REQUESTS", "true")]).await;
    assert_eq!(
        s.meta["portcullis_demo_api"]["http_message_signatures"]["required_of_all_clients"],
        true
    );
    let accounts = demo(&s, "accounts_endpoint");
    let c = signer(&s, Algorithm::Es256, false).await;
    let h = base_headers(&s, &c, "GET", &accounts, false).await;
    refused(send(&s, "GET", &accounts, h, "").await).await;
}

#[tokio::test]
async fn signing_requires_registered_keys() {
    let s = Server::start().await;
    // a tls_client_auth-style registration without keys cannot promise to sign
    let r = s
        .http
        .post(s.endpoint("registration_endpoint"))
        .bearer_auth(s.initial_access_token())
        .json(&json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "require_signed_resource_requests": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (_, error, description) = error_of(r).await;
    assert_eq!(error, "invalid_client_metadata");
    assert!(
        description.contains("require_signed_resource_requests") || description.contains("jwks"),
        "{description}"
    );
}

/// Issue 16 item 5: the signed request and the signed response are kept, and re-verify.
#[tokio::test]
async fn signed_resource_messages_are_kept_as_evidence() {
    let mut s = Server::start().await;
    let accounts = demo(&s, "accounts_endpoint");
    let c = signer(&s, Algorithm::Es256, true).await;
    let mut h = base_headers(&s, &c, "GET", &accounts, false).await;
    h.insert("x-fapi-interaction-id", HeaderValue::from_static("httpsig-evidence-1"));
    sign_request(&mut h, "GET", &accounts, b"", &c.rp.key, now()).unwrap();
    assert_eq!(send(&s, "GET", &accounts, h, "").await.status(), 200);
    // unsigned junk writes nothing
    let r = s
        .http
        .get(&accounts)
        .header("x-fapi-interaction-id", "httpsig-junk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
    let out = s.cli(&["audit", "show", "httpsig-evidence-1"], None);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("resource_request") && text.contains("resource_response"),
        "{text}"
    );
    assert!(text.contains("\"@method\": GET"), "{text}");
    let junk = s.cli(&["audit", "show", "httpsig-junk"], None);
    assert!(!String::from_utf8_lossy(&junk.stdout).contains("resource_"));
    let verify = s.cli(&["audit", "verify"], None);
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// The operator's way to the same registration: `client add --require-signed-resource-requests`
/// (keys required), with an audit event naming the client.
#[tokio::test]
async fn cli_registers_signing_clients() {
    let s = Server::start().await;
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let jwks = s.dir.parent().unwrap().join("client-jwks.json");
    std::fs::write(&jwks, json!({"keys": [key.public_jwk().to_json()]}).to_string()).unwrap();
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "private_key_jwt",
            "--redirect-uri",
            REDIRECT_URI,
            "--jwks-file",
            jwks.to_str().unwrap(),
            "--require-signed-resource-requests",
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let client: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(client["require_signed_resource_requests"], true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("client_registered") && err.contains(client["client_id"].as_str().unwrap()),
        "{err}"
    );
    // without keys there is nothing to verify signatures with
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "self_signed_tls_client_auth",
            "--redirect-uri",
            REDIRECT_URI,
            "--require-signed-resource-requests",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jwks"), "{err}");
}
