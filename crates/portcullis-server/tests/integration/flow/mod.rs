//! The FAPI 2.0 Security Profile flow (PAR, PKCE, private_key_jwt, DPoP, login and consent,
//! tokens, id_token, userinfo) and every refusal the checklist requires.

mod audit;
mod audit_events;
mod authorize;
mod client_auth;
mod demo_api;
mod happy;
mod http_signatures;
mod jar;
mod jarm;
mod pages;
mod par;
mod resource;
mod resources;
mod revocation;
mod signed_introspection;
mod token;

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
