//! Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0), fetched once and
//! checked before anything is sent to the endpoints it names.

use serde_json::Value;

use crate::transport::{HttpRequest, Transport};
use crate::{ClientError, DiscoveryError};

/// The endpoints and capabilities a FAPI 2.0 client uses, parsed from the metadata document.
#[derive(Debug, Clone)]
pub struct ServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub pushed_authorization_request_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: Option<String>,
    pub registration_endpoint: Option<String>,
    /// RFC 9207 §3: the server puts `iss` in every authorization response.
    pub authorization_response_iss_parameter_supported: bool,
    /// Portcullis' demo protected API (`portcullis_demo_api`), when the server runs it.
    pub demo_api: Option<DemoApi>,
    /// The document as received, for members this type does not name.
    pub document: Value,
}

/// The `portcullis_demo_api` member of Portcullis' metadata (INTERFACE.md).
#[derive(Debug, Clone)]
pub struct DemoApi {
    pub accounts_endpoint: String,
    /// The scope the accounts endpoint needs.
    pub scope: String,
    /// The response signing tag and key set, when the API signs its responses.
    pub response_signing_jwks_uri: Option<String>,
}

impl ServerMetadata {
    /// Fetches `<issuer>/.well-known/openid-configuration` and checks it (RFC 8414 §3.3: the
    /// `issuer` member must be exactly the issuer asked for).
    pub async fn discover(transport: &dyn Transport, issuer: &str) -> Result<Self, ClientError> {
        let issuer = issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let response = transport.send(HttpRequest::get(&url)).await?;
        if response.status != 200 {
            return Err(ClientError::UnexpectedResponse {
                endpoint: "discovery",
                status: response.status,
                detail: format!("GET {url} did not return the metadata"),
            });
        }
        let document = response.json().ok_or(DiscoveryError::NotJson)?;
        Ok(Self::from_document(issuer, document)?)
    }

    /// Checks a metadata document fetched for `expected_issuer`.
    pub fn from_document(expected_issuer: &str, document: Value) -> Result<Self, DiscoveryError> {
        if !document.is_object() {
            return Err(DiscoveryError::NotJson);
        }
        let issuer = string(&document, "issuer")?;
        if issuer != expected_issuer {
            return Err(DiscoveryError::IssuerMismatch {
                expected: expected_issuer.to_owned(),
                found: issuer,
            });
        }
        // FAPI 2.0 SP 5.3.1.2: the client needs PAR and S256
        let methods = document["code_challenge_methods_supported"].as_array();
        if !methods.is_some_and(|m| m.iter().any(|v| v == "S256")) {
            return Err(DiscoveryError::Unsupported(
                "code_challenge_methods_supported does not list S256".into(),
            ));
        }
        let demo_api = document.get("portcullis_demo_api").and_then(|d| {
            Some(DemoApi {
                accounts_endpoint: d.get("accounts_endpoint")?.as_str()?.to_owned(),
                scope: d.get("scope")?.as_str()?.to_owned(),
                response_signing_jwks_uri: d["http_message_signatures"]["response_signing_jwks_uri"]
                    .as_str()
                    .map(str::to_owned),
            })
        });
        if let Some(d) = &demo_api {
            https("portcullis_demo_api.accounts_endpoint", &d.accounts_endpoint)?;
        }
        Ok(Self {
            authorization_endpoint: endpoint(&document, "authorization_endpoint")?,
            token_endpoint: endpoint(&document, "token_endpoint")?,
            pushed_authorization_request_endpoint: endpoint(&document, "pushed_authorization_request_endpoint")?,
            jwks_uri: endpoint(&document, "jwks_uri")?,
            userinfo_endpoint: optional_endpoint(&document, "userinfo_endpoint")?,
            registration_endpoint: optional_endpoint(&document, "registration_endpoint")?,
            authorization_response_iss_parameter_supported: document["authorization_response_iss_parameter_supported"]
                == Value::Bool(true),
            demo_api,
            issuer,
            document,
        })
    }
}

fn string(document: &Value, member: &'static str) -> Result<String, DiscoveryError> {
    document[member]
        .as_str()
        .map(str::to_owned)
        .ok_or(DiscoveryError::Missing(member))
}

fn https(member: &'static str, value: &str) -> Result<(), DiscoveryError> {
    match url::Url::parse(value) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => Ok(()),
        _ => Err(DiscoveryError::NotHttps {
            member,
            value: value.to_owned(),
        }),
    }
}

fn endpoint(document: &Value, member: &'static str) -> Result<String, DiscoveryError> {
    let v = string(document, member)?;
    https(member, &v)?;
    Ok(v)
}

fn optional_endpoint(document: &Value, member: &'static str) -> Result<Option<String>, DiscoveryError> {
    match document.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => endpoint(document, member).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(issuer: &str) -> Value {
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "pushed_authorization_request_endpoint": format!("{issuer}/par"),
            "jwks_uri": format!("{issuer}/jwks"),
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
        })
    }

    #[test]
    fn issuer_must_equal_the_one_asked_for() {
        let m = ServerMetadata::from_document("https://as.example", doc("https://as.example")).unwrap();
        assert!(m.authorization_response_iss_parameter_supported);
        let e = ServerMetadata::from_document("https://as.example", doc("https://evil.example")).unwrap_err();
        assert!(matches!(e, DiscoveryError::IssuerMismatch { .. }), "{e}");
    }

    #[test]
    fn endpoints_must_be_https() {
        let mut d = doc("https://as.example");
        d["token_endpoint"] = json!("http://as.example/token");
        let e = ServerMetadata::from_document("https://as.example", d).unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::NotHttps {
                member: "token_endpoint",
                value: "http://as.example/token".into()
            }
        );
    }

    #[test]
    fn pkce_s256_is_required() {
        let mut d = doc("https://as.example");
        d["code_challenge_methods_supported"] = json!(["plain"]);
        assert!(ServerMetadata::from_document("https://as.example", d).is_err());
    }
}
