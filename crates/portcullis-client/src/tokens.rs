//! Token endpoint answers and the id_token checks (OpenID Connect Core §3.1.3.7, FAPI 2.0 SP
//! 5.4: only PS256, ES256 and EdDSA signatures, verified with the server's JWKS).

use portcullis_jose::{Algorithm, CompactJws, Jwks};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::IdTokenError;

/// A successful token response (RFC 6749 §5.1, RFC 9449 §5). Its `Debug` shows no token.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// `DPoP` for a DPoP-bound token (RFC 9449 §5).
    pub token_type: String,
    pub expires_in: Option<i64>,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "****"))
            .field("id_token", &self.id_token.as_ref().map(|_| "****"))
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// What an id_token must say to be accepted.
#[derive(Debug, Clone)]
pub struct IdTokenExpectations<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The `nonce` of the authorization request; `None` for id_tokens from a refresh, which
    /// need not carry one (OIDC Core §12.2).
    pub nonce: Option<&'a str>,
    /// UNIX seconds.
    pub now: i64,
}

/// How far the server's clock may run ahead of ours or behind it, in seconds.
pub const CLOCK_SKEW: i64 = 30;

/// An id_token that passed every check.
#[derive(Debug, Clone)]
pub struct IdToken {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub sub: String,
    pub exp: i64,
    /// Every claim, as signed.
    pub claims: Map<String, Value>,
}

/// Verifies the signature with the key of `jwks` the header designates, then the claims:
/// `iss`, `aud` (with `azp` when there are several audiences), `exp`, `iat`, `nonce`, `sub`.
pub fn validate_id_token(
    token: &str,
    jwks: &Jwks,
    expected: &IdTokenExpectations<'_>,
) -> Result<IdToken, IdTokenError> {
    // AS-SP-95/96: the parser knows only the FAPI algorithms; `none` and HS256 fail here
    let jws = CompactJws::parse(token).map_err(IdTokenError::Jws)?;
    jws.verify_with_set(jwks).map_err(IdTokenError::Signature)?;
    let claims: Map<String, Value> = jws.claims().map_err(IdTokenError::Jws)?;
    let text = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .ok_or(IdTokenError::Claim(name))
    };
    let number = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_i64)
            .ok_or(IdTokenError::Claim(name))
    };

    let iss = text("iss")?;
    if iss != expected.issuer {
        return Err(IdTokenError::Issuer {
            expected: expected.issuer.to_owned(),
            found: iss.to_owned(),
        });
    }
    check_audience(&claims, expected.client_id)?;
    let exp = number("exp")?;
    if exp + CLOCK_SKEW <= expected.now {
        return Err(IdTokenError::Expired { exp, now: expected.now });
    }
    let iat = number("iat")?;
    if iat > expected.now + CLOCK_SKEW {
        return Err(IdTokenError::IssuedInFuture { iat, now: expected.now });
    }
    if let Some(nonce) = expected.nonce
        && claims.get("nonce").and_then(Value::as_str) != Some(nonce)
    {
        return Err(IdTokenError::Nonce);
    }
    let sub = text("sub")?.to_owned();
    Ok(IdToken {
        alg: jws.header().alg,
        kid: jws.header().kid.clone(),
        sub,
        exp,
        claims,
    })
}

/// OIDC Core §3.1.3.7 (3)-(5): `aud` is the client or contains it; with several audiences
/// `azp` must be the client.
fn check_audience(claims: &Map<String, Value>, client_id: &str) -> Result<(), IdTokenError> {
    match claims.get("aud") {
        Some(Value::String(a)) if a == client_id => Ok(()),
        Some(Value::Array(list)) if list.iter().any(|a| a == client_id) => {
            if list.len() > 1 && claims.get("azp").and_then(Value::as_str) != Some(client_id) {
                return Err(IdTokenError::Audience(
                    "several audiences and azp is not this client".into(),
                ));
            }
            Ok(())
        }
        Some(other) => Err(IdTokenError::Audience(format!("aud is {other}"))),
        None => Err(IdTokenError::Claim("aud")),
    }
}

#[cfg(test)]
mod tests {
    use portcullis_jose::{SigningKey, b64url};
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn server() -> (SigningKey, Jwks) {
        let key = SigningKey::generate(Algorithm::Es256).unwrap();
        let jwks = Jwks::from_json(&json!({"keys": [key.public_jwk().to_json()]})).unwrap();
        (key, jwks)
    }

    fn claims() -> Value {
        json!({"iss": "https://as.example", "aud": "c1", "sub": "u1", "exp": NOW + 300, "iat": NOW, "nonce": "n1"})
    }

    fn expect() -> IdTokenExpectations<'static> {
        IdTokenExpectations {
            issuer: "https://as.example",
            client_id: "c1",
            nonce: Some("n1"),
            now: NOW,
        }
    }

    fn signed(key: &SigningKey, edit: impl FnOnce(&mut Value)) -> String {
        let mut c = claims();
        edit(&mut c);
        key.sign_jwt(key.algorithm(), Some("JWT"), &c).unwrap()
    }

    #[test]
    fn a_good_id_token_passes() {
        let (key, jwks) = server();
        let t = validate_id_token(&signed(&key, |_| {}), &jwks, &expect()).unwrap();
        assert_eq!(t.sub, "u1");
        assert_eq!(t.alg, Algorithm::Es256);
        // an array naming only this client, and a refresh id_token without nonce
        let t = signed(&key, |c| {
            c["aud"] = json!(["c1"]);
            c.as_object_mut().unwrap().remove("nonce");
        });
        let mut e = expect();
        e.nonce = None;
        assert!(validate_id_token(&t, &jwks, &e).is_ok());
    }

    #[test]
    fn claim_negatives() {
        let (key, jwks) = server();
        let check = |edit: &dyn Fn(&mut Value)| validate_id_token(&signed(&key, edit), &jwks, &expect()).unwrap_err();
        assert!(matches!(
            check(&|c| c["iss"] = json!("https://evil.example")),
            IdTokenError::Issuer { .. }
        ));
        assert!(matches!(check(&|c| c["aud"] = json!("c2")), IdTokenError::Audience(_)));
        assert!(matches!(
            check(&|c| c["aud"] = json!(["c1", "c2"])),
            IdTokenError::Audience(_)
        ));
        assert!(matches!(
            check(&|c| c["exp"] = json!(NOW - CLOCK_SKEW - 1)),
            IdTokenError::Expired { .. }
        ));
        assert!(matches!(
            check(&|c| c["iat"] = json!(NOW + 3600)),
            IdTokenError::IssuedInFuture { .. }
        ));
        assert_eq!(check(&|c| c["nonce"] = json!("n2")), IdTokenError::Nonce);
        assert_eq!(
            check(&|c| {
                c.as_object_mut().unwrap().remove("nonce");
            }),
            IdTokenError::Nonce
        );
        assert_eq!(
            check(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
            IdTokenError::Claim("sub")
        );
        // several audiences are fine with azp = this client
        let t = signed(&key, |c| {
            c["aud"] = json!(["c1", "c2"]);
            c["azp"] = json!("c1");
        });
        assert!(validate_id_token(&t, &jwks, &expect()).is_ok());
    }

    #[test]
    fn signature_negatives() {
        let (key, jwks) = server();
        // signed by a key the server does not publish
        let (other, _) = server();
        let e = validate_id_token(&signed(&other, |_| {}), &jwks, &expect()).unwrap_err();
        assert!(matches!(e, IdTokenError::Signature(_)), "{e}");
        // a tampered payload
        let good = signed(&key, |_| {});
        let parts: Vec<&str> = good.split('.').collect();
        let mut c = claims();
        c["sub"] = json!("mallory");
        let forged = format!("{}.{}.{}", parts[0], b64url(c.to_string()), parts[2]);
        assert!(matches!(
            validate_id_token(&forged, &jwks, &expect()),
            Err(IdTokenError::Signature(_))
        ));
        // alg none and HS256 are not FAPI algorithms
        for alg in ["none", "HS256", "RS256"] {
            let header = b64url(json!({"alg": alg}).to_string());
            let t = format!("{header}.{}.c2ln", b64url(claims().to_string()));
            assert!(
                matches!(validate_id_token(&t, &jwks, &expect()), Err(IdTokenError::Jws(_))),
                "{alg}"
            );
        }
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    /// Logging a token response (or a pending authorization) never writes a secret.
    #[test]
    fn debug_shows_no_secret() {
        let t = TokenResponse {
            access_token: "at-secret".into(),
            token_type: "DPoP".into(),
            expires_in: Some(600),
            refresh_token: Some("rt-secret".into()),
            id_token: Some("idt-secret".into()),
            scope: Some("openid".into()),
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("secret") && shown.contains("DPoP"), "{shown}");
        let p = crate::authorization::PendingAuthorization {
            request_uri: "urn:x".into(),
            expires_in: 90,
            authorization_url: "https://as/authorize?x".into(),
            redirect_uri: "https://rp/cb".into(),
            state: "state-secret".into(),
            nonce: "nonce-secret".into(),
            code_verifier: "verifier-secret".into(),
            issuer: "https://as".into(),
            iss_required: true,
        };
        let shown = format!("{p:?}");
        assert!(!shown.contains("secret") && shown.contains("urn:x"), "{shown}");
    }
}
