//! Signed request objects pushed to PAR (RFC 9101 through RFC 9126 §3), with the FAPI 2.0
//! Message Signing rules (MS 5.3.1, AS-MS-01..09): once verified, the object's claims are the
//! authorization parameters, and they go through the very checks form parameters go through.

use portcullis_jose::{CompactJws, JoseError, PublicJwk};
use serde_json::Value;

use crate::error::{OAuthError, OAuthResult};
use crate::provider::{ParsedClient, Provider};
use crate::settings::MAX_FUTURE_SKEW;

/// MS 5.3.1-3/-4: `nbf` at most 60 minutes old, `exp` at most 60 minutes after `nbf`.
const MAX_REQUEST_OBJECT_LIFETIME: i64 = 3600;

fn bad(d: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::invalid_request_object(d)
}

fn number(claims: &serde_json::Map<String, Value>, name: &str) -> OAuthResult<Option<i64>> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| bad(format!("request object {name} is not a number"))),
    }
}

impl Provider {
    /// Verifies the request object `jwt` pushed by `client` and returns its claims as
    /// authorization parameters, with the client key that verified it (evidence). Every
    /// refusal is 400 `invalid_request_object` (AS-MS-09).
    pub(crate) async fn verify_request_object(
        &self,
        client: &ParsedClient,
        jwt: &str,
        max_params: usize,
    ) -> OAuthResult<(Vec<(String, String)>, PublicJwk)> {
        // SP 5.4.1 (AS-MS-06): FAPI algorithms only; `none` and RS256 do not parse
        let jws = CompactJws::parse(jwt).map_err(|e| match e {
            JoseError::UnsupportedAlgorithm(a) => bad(format!(
                "request object alg {a} is not allowed (PS256, ES256, EdDSA or Ed25519)"
            )),
            other => bad(format!("the request object is not a valid JWS: {other}")),
        })?;
        // RFC 9101 §4 (AS-MS-05): typ oauth-authz-req+jwt, in any letter case, or none
        if let Some(typ) = jws.header().typ.as_deref()
            && !typ.eq_ignore_ascii_case("oauth-authz-req+jwt")
        {
            return Err(bad(format!("request object typ {typ} is not oauth-authz-req+jwt")));
        }
        // OIDC Registration §2: a registered request_object_signing_alg is the only one
        // accepted (EdDSA and Ed25519 name one algorithm, RFC 9864)
        if let Some(registered) = client.client.metadata.request_object_signing_alg() {
            let alg = jws.header().alg;
            let same = alg == registered || (alg.key_type() == "OKP" && registered.key_type() == "OKP");
            if !same {
                return Err(bad(format!(
                    "request object alg {alg} is not the client's registered request_object_signing_alg {registered}"
                )));
            }
        }
        // AS-MS-06: signed by the authenticated client's key
        let key = self.verify_with_client_keys(client, &jws).await?.map_err(|e| match e {
            JoseError::NoMatchingKey => bad("no registered key of the client matches the request object (kid, alg)"),
            _ => bad("the request object signature does not verify with the client's registered keys"),
        })?;
        let claims: serde_json::Map<String, Value> = jws
            .claims()
            .map_err(|_| bad("the request object payload is not a JSON object"))?;
        let client_id = client.client.client_id.as_str();
        // RFC 9101 §4: iss is the client
        if claims.get("iss").and_then(Value::as_str) != Some(client_id) {
            return Err(bad("request object iss must be the client_id"));
        }
        // MS 5.3.1-2 (AS-MS-02): aud is the issuer, or an array containing it
        let issuer = self.settings.issuer.as_str();
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == issuer,
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(issuer)),
            _ => false,
        };
        if !aud_ok {
            return Err(bad(format!(
                "request object aud must be the issuer identifier {issuer} (or an array containing it)"
            )));
        }
        let now = self.now();
        // MS 5.3.1-3/-4 (AS-MS-03/04): exp and nbf required; nbf at most 60 minutes old;
        // exp at most 60 minutes after nbf; not expired; iat/nbf at most 60 s ahead
        let exp = number(&claims, "exp")?.ok_or_else(|| bad("request object has no exp"))?;
        let nbf = number(&claims, "nbf")?.ok_or_else(|| bad("request object has no nbf"))?;
        if exp <= now {
            return Err(bad("the request object has expired (exp)"));
        }
        if now - nbf > MAX_REQUEST_OBJECT_LIFETIME {
            return Err(bad("request object nbf is more than 60 minutes in the past"));
        }
        if exp - nbf > MAX_REQUEST_OBJECT_LIFETIME {
            return Err(bad("request object exp is more than 60 minutes after its nbf"));
        }
        if nbf > now + MAX_FUTURE_SKEW {
            return Err(bad("request object nbf is more than 60 seconds in the future"));
        }
        if number(&claims, "iat")?.is_some_and(|iat| iat > now + MAX_FUTURE_SKEW) {
            return Err(bad("request object iat is more than 60 seconds in the future"));
        }
        // AS-MS-07: client_id inside names the authenticated client
        if claims.get("client_id").and_then(Value::as_str) != Some(client_id) {
            return Err(bad("request object client_id must be the authenticated client"));
        }
        // AS-MS-08: no nesting, and nothing that could pass as a client assertion
        if claims.contains_key("request") || claims.contains_key("request_uri") {
            return Err(bad("a request object must not contain request or request_uri"));
        }
        if claims.get("sub").and_then(Value::as_str) == Some(client_id) {
            return Err(bad(
                "request object sub must not be the client_id (it could pass as a client assertion)",
            ));
        }
        // the claims as parameters (registered JWT claims are not parameters)
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(claims.len());
        for (k, v) in &claims {
            if matches!(k.as_str(), "iss" | "aud" | "exp" | "nbf" | "iat" | "jti" | "sub") {
                continue;
            }
            match v {
                Value::String(s) => pairs.push((k.clone(), s.clone())),
                Value::Number(n) => pairs.push((k.clone(), n.to_string())),
                Value::Bool(b) => pairs.push((k.clone(), b.to_string())),
                // RFC 8707: several resources as an array
                Value::Array(items) if k == "resource" => {
                    for item in items {
                        let s = item
                            .as_str()
                            .ok_or_else(|| bad("request object resource must be strings"))?;
                        pairs.push((k.clone(), s.to_owned()));
                    }
                }
                Value::Null => {}
                other => pairs.push((k.clone(), other.to_string())),
            }
            if pairs.len() > max_params {
                return Err(bad(format!("the request object has more than {max_params} parameters")));
            }
        }
        Ok((pairs, key))
    }
}
