//! DPoP (RFC 9449): the client's proof-of-possession key, the proofs it signs, the server
//! nonces it remembers per server, and the one retry a `use_dpop_nonce` answer asks for.

use std::collections::HashMap;
use std::sync::Mutex;

use portcullis_httpsig::http::Method;
use portcullis_jose::{Algorithm, JoseError, SigningKey, b64url, sha256_b64url};
use serde_json::{Value, json};

use crate::transport::{HttpRequest, HttpResponse, Transport};
use crate::{ClientError, random};

/// A DPoP key pair. Tokens issued to proofs of this key are bound to its thumbprint (`jkt`).
#[derive(Debug)]
pub struct DpopKey {
    key: SigningKey,
    /// The public JWK as embedded in proofs: key members only (RFC 9449 §4.2).
    jwk: Value,
}

impl DpopKey {
    /// A new key for `alg` (ES256 is what most servers accept and the cheapest to sign with).
    pub fn generate(alg: Algorithm) -> Result<Self, JoseError> {
        Ok(Self::new(SigningKey::generate(alg)?))
    }

    pub fn new(key: SigningKey) -> Self {
        let mut jwk = key.public_jwk().to_json();
        if let Value::Object(m) = &mut jwk {
            for member in ["kid", "alg", "use"] {
                m.remove(member);
            }
        }
        Self { key, jwk }
    }

    /// The JWK SHA-256 thumbprint (RFC 7638) that bound tokens carry as `cnf.jkt`.
    pub fn jkt(&self) -> &str {
        self.key.public_jwk().thumbprint()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }

    /// A proof for one request (RFC 9449 §4.2): `htm`, `htu` without query and fragment, a
    /// fresh `jti`, `iat`, the server's `nonce` when it gave one, and `ath` when presenting
    /// `access_token`.
    pub fn proof(
        &self,
        htm: &Method,
        htu: &str,
        nonce: Option<&str>,
        access_token: Option<&str>,
        now: i64,
    ) -> Result<String, ClientError> {
        let header = json!({"typ": "dpop+jwt", "alg": self.key.algorithm().as_str(), "jwk": self.jwk});
        let mut claims = json!({
            "jti": random::token(),
            "htm": htm.as_str(),
            "htu": target_uri(htu)?,
            "iat": now,
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        if let Some(t) = access_token {
            // RFC 9449 §4.2: ath = base64url(SHA-256(ASCII(access token)))
            claims["ath"] = json!(sha256_b64url(t));
        }
        let input = format!("{}.{}", b64url(header.to_string()), b64url(claims.to_string()));
        let signature = self.key.sign_raw(input.as_bytes())?;
        Ok(format!("{input}.{}", b64url(signature)))
    }
}

/// The last DPoP nonce each server gave, keyed by origin (RFC 9449 §8: the authorization
/// server's, §9: a resource server's).
#[derive(Debug, Default)]
pub struct DpopNonces {
    by_origin: Mutex<HashMap<String, String>>,
}

impl DpopNonces {
    pub fn get(&self, url: &str) -> Option<String> {
        let origin = origin(url)?;
        self.by_origin.lock().ok()?.get(&origin).cloned()
    }

    pub fn remember(&self, url: &str, nonce: &str) {
        if let (Some(origin), Ok(mut map)) = (origin(url), self.by_origin.lock()) {
            map.insert(origin, nonce.to_owned());
        }
    }
}

/// What a DPoP exchange went through, for callers that report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DpopExchange {
    /// The server refused the first proof with `use_dpop_nonce`, and the retry carried its nonce.
    pub nonce_required: bool,
    /// The nonce the last proof carried.
    pub nonce: Option<String>,
}

/// What a proof is made for: the request's method and URL, and the access token it presents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProofTarget<'a> {
    pub method: &'a Method,
    pub url: &'a str,
    pub access_token: Option<&'a str>,
}

/// Sends a request with a DPoP proof and retries once when the server asks for a nonce (RFC
/// 9449 §8.2 at the authorization server: 400 `use_dpop_nonce`; §9 at a resource server: 401
/// with `WWW-Authenticate: DPoP error="use_dpop_nonce"`). `build` makes the request for a given
/// proof, afresh for the retry (a client assertion is single use, so it must be new too).
pub(crate) async fn send_with_dpop(
    transport: &dyn Transport,
    key: &DpopKey,
    nonces: &DpopNonces,
    now: i64,
    target: ProofTarget<'_>,
    mut build: impl FnMut(String) -> Result<HttpRequest, ClientError>,
) -> Result<(HttpResponse, DpopExchange), ClientError> {
    let ProofTarget {
        method,
        url,
        access_token,
    } = target;
    let mut exchange = DpopExchange::default();
    let mut nonce = nonces.get(url);
    loop {
        let proof = key.proof(method, url, nonce.as_deref(), access_token, now)?;
        let response = transport.send(build(proof)?).await?;
        exchange.nonce = nonce.clone();
        let offered = response.header("dpop-nonce").map(str::to_owned);
        if let Some(n) = &offered {
            nonces.remember(url, n);
        }
        // one retry only: a server that asks again with the nonce it was given is broken
        match offered {
            Some(n) if asks_for_nonce(&response) && !exchange.nonce_required => {
                exchange.nonce_required = true;
                nonce = Some(n);
            }
            _ => return Ok((response, exchange)),
        }
    }
}

/// RFC 9449 §8 (400 with `"error": "use_dpop_nonce"`) or §9 (401 with a `DPoP` challenge
/// carrying `error="use_dpop_nonce"`).
pub(crate) fn asks_for_nonce(response: &HttpResponse) -> bool {
    match response.status {
        400 => response.json().is_some_and(|b| b["error"] == "use_dpop_nonce"),
        401 => response.headers.get_all("www-authenticate").iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.trim_start().starts_with("DPoP") && v.contains("error=\"use_dpop_nonce\""))
        }),
        _ => false,
    }
}

/// RFC 9449 §4.2: `htu` is the target URI without query and fragment.
fn target_uri(url: &str) -> Result<String, ClientError> {
    let mut u = url::Url::parse(url).map_err(|e| ClientError::Usage(format!("{url} is not a URL: {e}")))?;
    u.set_query(None);
    u.set_fragment(None);
    Ok(u.to_string())
}

fn origin(url: &str) -> Option<String> {
    url::Url::parse(url).ok().map(|u| u.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use portcullis_httpsig::http::{HeaderMap, HeaderValue};
    use portcullis_jose::CompactJws;

    use super::*;

    /// A server that answers from a script and records the proofs it got.
    struct Scripted {
        answers: Mutex<Vec<HttpResponse>>,
        proofs: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(mut answers: Vec<HttpResponse>) -> Self {
            answers.reverse();
            Self {
                answers: Mutex::new(answers),
                proofs: Mutex::new(Vec::new()),
            }
        }

        fn nonces_sent(&self) -> Vec<Option<String>> {
            self.proofs
                .lock()
                .unwrap()
                .iter()
                .map(|p| {
                    let jws = CompactJws::parse(p).unwrap();
                    let claims: Value = jws.claims().unwrap();
                    claims["nonce"].as_str().map(str::to_owned)
                })
                .collect()
        }
    }

    #[async_trait]
    impl Transport for Scripted {
        async fn send(&self, request: HttpRequest) -> Result<HttpResponse, ClientError> {
            let proof = request.headers["dpop"].to_str().unwrap().to_owned();
            self.proofs.lock().unwrap().push(proof);
            Ok(self.answers.lock().unwrap().pop().expect("no more scripted answers"))
        }
    }

    fn answer(status: u16, headers: &[(&'static str, &str)], body: Value) -> HttpResponse {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        HttpResponse {
            status,
            headers: h,
            body: body.to_string().into_bytes(),
        }
    }

    fn use_nonce(n: &str) -> HttpResponse {
        answer(400, &[("dpop-nonce", n)], json!({"error": "use_dpop_nonce"}))
    }

    async fn exchange(t: &Scripted, nonces: &DpopNonces, url: &str) -> (HttpResponse, DpopExchange) {
        let key = DpopKey::generate(Algorithm::Es256).unwrap();
        let target = ProofTarget {
            method: &Method::POST,
            url,
            access_token: None,
        };
        send_with_dpop(t, &key, nonces, 1_700_000_000, target, |proof| {
            HttpRequest::form(url, &[]).header("dpop", &proof)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn use_dpop_nonce_is_retried_once_with_the_nonce() {
        let t = Scripted::new(vec![use_nonce("n1"), answer(200, &[], json!({}))]);
        let nonces = DpopNonces::default();
        let (r, x) = exchange(&t, &nonces, "https://as.example/token").await;
        assert_eq!(r.status, 200);
        assert!(x.nonce_required);
        assert_eq!(t.nonces_sent(), vec![None, Some("n1".to_owned())]);
        // remembered for the next request to the same server, not for another
        assert_eq!(nonces.get("https://as.example/par").as_deref(), Some("n1"));
        assert_eq!(nonces.get("https://rs.example/api"), None);
    }

    #[tokio::test]
    async fn a_second_use_dpop_nonce_is_returned_not_retried() {
        let t = Scripted::new(vec![use_nonce("n1"), use_nonce("n2")]);
        let nonces = DpopNonces::default();
        let (r, x) = exchange(&t, &nonces, "https://as.example/token").await;
        assert_eq!(r.status, 400);
        assert!(x.nonce_required);
        assert_eq!(t.nonces_sent().len(), 2);
        // the newest nonce is kept for later
        assert_eq!(nonces.get("https://as.example/token").as_deref(), Some("n2"));
    }

    #[tokio::test]
    async fn a_remembered_nonce_is_sent_at_once_and_rotated_nonces_are_kept() {
        let nonces = DpopNonces::default();
        nonces.remember("https://as.example/par", "n0");
        let t = Scripted::new(vec![answer(200, &[("dpop-nonce", "n1")], json!({}))]);
        let (_, x) = exchange(&t, &nonces, "https://as.example/token").await;
        assert!(!x.nonce_required);
        assert_eq!(t.nonces_sent(), vec![Some("n0".to_owned())]);
        assert_eq!(nonces.get("https://as.example/x").as_deref(), Some("n1"));
    }

    #[tokio::test]
    async fn a_resource_server_challenge_is_retried() {
        let challenge = answer(
            401,
            &[
                ("www-authenticate", "DPoP error=\"use_dpop_nonce\", algs=\"ES256\""),
                ("dpop-nonce", "r1"),
            ],
            json!({}),
        );
        let t = Scripted::new(vec![challenge, answer(200, &[], json!({}))]);
        let (r, x) = exchange(&t, &DpopNonces::default(), "https://rs.example/api").await;
        assert_eq!(r.status, 200);
        assert!(x.nonce_required);
    }

    #[tokio::test]
    async fn other_errors_and_nonce_less_refusals_are_not_retried() {
        let t = Scripted::new(vec![answer(400, &[], json!({"error": "use_dpop_nonce"}))]);
        let (r, x) = exchange(&t, &DpopNonces::default(), "https://as.example/token").await;
        assert_eq!((r.status, x.nonce_required), (400, false));
        let t = Scripted::new(vec![answer(
            400,
            &[("dpop-nonce", "n")],
            json!({"error": "invalid_dpop_proof"}),
        )]);
        let (r, x) = exchange(&t, &DpopNonces::default(), "https://as.example/token").await;
        assert_eq!((r.status, x.nonce_required), (400, false));
    }

    #[test]
    fn proofs_carry_the_rfc_9449_claims() {
        let key = DpopKey::generate(Algorithm::Es256).unwrap();
        let p = key
            .proof(&Method::GET, "https://rs.example/api?x=1#f", Some("n"), Some("tok"), 5)
            .unwrap();
        let jws = CompactJws::parse(&p).unwrap();
        assert_eq!(jws.header().typ.as_deref(), Some("dpop+jwt"));
        let jwk = portcullis_jose::PublicJwk::from_json(jws.header().jwk.as_ref().unwrap()).unwrap();
        jws.verify(&jwk).unwrap();
        assert_eq!(jwk.thumbprint(), key.jkt());
        assert!(jwk.kid().is_none());
        let c: Value = jws.claims().unwrap();
        assert_eq!(c["htu"], "https://rs.example/api");
        assert_eq!(c["htm"], "GET");
        assert_eq!(c["nonce"], "n");
        assert_eq!(c["ath"], sha256_b64url("tok"));
        assert_eq!(c["iat"], 5);
    }
}
