use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};
use portcullis_httpsig::{ComponentId, MessageView, RequestView, SigError, SignatureParams};
use portcullis_jose::{Algorithm, PublicJwk, SigningKey};

pub const NOW: i64 = 1_700_000_000;
pub const URI: &str = "https://rs.example.com/accounts/123?fields=balance";
pub const BODY: &[u8] = br#"{"amount":"10.00"}"#;

/// Generated once per algorithm (RSA generation is slow).
pub fn key(alg: Algorithm) -> &'static SigningKey {
    static ES: OnceLock<SigningKey> = OnceLock::new();
    static PS: OnceLock<SigningKey> = OnceLock::new();
    static ED: OnceLock<SigningKey> = OnceLock::new();
    let cell = match alg {
        Algorithm::Es256 => &ES,
        Algorithm::Ps256 => &PS,
        Algorithm::EdDsa | Algorithm::Ed25519 => &ED,
    };
    cell.get_or_init(|| SigningKey::generate(alg).expect("key generation"))
}

/// A second key of each kind, for the resource server.
pub fn server_key(alg: Algorithm) -> &'static SigningKey {
    static ES: OnceLock<SigningKey> = OnceLock::new();
    static PS: OnceLock<SigningKey> = OnceLock::new();
    static ED: OnceLock<SigningKey> = OnceLock::new();
    let cell = match alg {
        Algorithm::Es256 => &ES,
        Algorithm::Ps256 => &PS,
        Algorithm::EdDsa | Algorithm::Ed25519 => &ED,
    };
    cell.get_or_init(|| SigningKey::generate(alg).expect("key generation"))
}

/// A key resolver knowing exactly the given keys, by kid.
pub fn keys_of(known: &[&'static SigningKey]) -> impl Fn(&str) -> Option<PublicJwk> + use<> {
    let known: Vec<(String, PublicJwk)> = known
        .iter()
        .map(|k| (k.kid().to_owned(), k.public_jwk().clone()))
        .collect();
    move |kid: &str| known.iter().find(|(k, _)| k == kid).map(|(_, j)| j.clone())
}

/// The headers of a DPoP-bound resource request (no signature yet).
pub fn request_headers(dpop: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static("DPoP at-opaque-123"));
    if dpop {
        h.insert("dpop", HeaderValue::from_static("eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.sig"));
    }
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h
}

pub fn request<'a>(method: &'a str, headers: &'a HeaderMap) -> RequestView<'a> {
    RequestView {
        method,
        target_uri: URI,
        headers,
    }
}

pub fn ids(names: &[&str]) -> Vec<ComponentId> {
    names
        .iter()
        .map(|n| ComponentId::new(n).expect("valid component"))
        .collect()
}

/// Signs a request by hand with arbitrary parameters, bypassing the profile's own signer, and
/// appends the result under `label`.
pub fn craft(
    headers: &mut HeaderMap,
    method: &str,
    components: Vec<ComponentId>,
    build: impl FnOnce(SignatureParams) -> Result<SignatureParams, SigError>,
    key: &SigningKey,
    label: &str,
) {
    let params = build(SignatureParams::new(components).expect("params")).expect("params");
    let base = params
        .signature_base(&MessageView::Request(request(method, headers)))
        .expect("base");
    let sig = key.sign_raw(base.as_bytes()).expect("sign");
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(sig);
    headers.append(
        "signature-input",
        HeaderValue::from_str(&format!("{label}={}", params.serialize())).expect("header"),
    );
    headers.append(
        "signature",
        HeaderValue::from_str(&format!("{label}=:{b64}:")).expect("header"),
    );
}

/// The components and parameters a correct FAPI request signature has.
pub fn fapi_components(dpop: bool, body: bool) -> Vec<ComponentId> {
    let mut names = vec!["@method", "@target-uri", "authorization"];
    if dpop {
        names.push("dpop");
    }
    if body {
        names.push("content-digest");
    }
    ids(&names)
}

pub fn fapi_params(key: &SigningKey) -> impl FnOnce(SignatureParams) -> Result<SignatureParams, SigError> + '_ {
    move |p| p.with_created(NOW)?.with_keyid(key.kid())?.with_tag("fapi-2-request")
}
