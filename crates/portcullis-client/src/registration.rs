//! Dynamic client registration (RFC 7591) of a FAPI 2.0 client: `private_key_jwt` with the
//! public key inline, DPoP-bound tokens, the code and refresh grants.

use portcullis_jose::SigningKey;
use serde_json::{Map, Value, json};

use crate::transport::{HttpRequest, Transport};
use crate::{ClientError, DiscoveryError, ServerMetadata};

/// The metadata to register.
#[derive(Debug, Clone)]
pub struct RegistrationRequest {
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    /// Space-separated scopes the client may ask for; the server's default when absent.
    pub scope: Option<String>,
    /// More members, sent as given (e.g. `require_signed_resource_requests`).
    pub extra: Map<String, Value>,
}

/// What the server registered (its `Debug` shows the client_id only: the document holds the
/// registration access token).
#[derive(Clone)]
pub struct Registration {
    pub client_id: String,
    /// The server's answer (RFC 7591 §3.2.1): the metadata as registered.
    pub document: Value,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl RegistrationRequest {
    /// The registration body for a client authenticating with `key`.
    pub fn body(&self, key: &SigningKey) -> Value {
        let mut body = json!({
            "redirect_uris": self.redirect_uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": key.algorithm().as_str(),
            "jwks": {"keys": [key.public_jwk().to_json()]},
            "dpop_bound_access_tokens": true,
        });
        if let Some(n) = &self.client_name {
            body["client_name"] = json!(n);
        }
        if let Some(s) = &self.scope {
            body["scope"] = json!(s);
        }
        if let Value::Object(m) = &mut body {
            m.extend(self.extra.clone());
        }
        body
    }
}

/// Registers at the server's `registration_endpoint`, with an initial access token when the
/// server requires one (RFC 7591 §3).
pub async fn register(
    transport: &dyn Transport,
    metadata: &ServerMetadata,
    initial_access_token: Option<&str>,
    request: &RegistrationRequest,
    key: &SigningKey,
) -> Result<Registration, ClientError> {
    let url = metadata
        .registration_endpoint
        .as_deref()
        .ok_or(DiscoveryError::Missing("registration_endpoint"))?;
    let mut http = HttpRequest::json(url, &request.body(key));
    if let Some(token) = initial_access_token {
        http = http.header("authorization", &format!("Bearer {token}"))?;
    }
    let response = transport.send(http).await?;
    if response.status != 201 {
        return Err(crate::client::endpoint_error("registration endpoint", &response));
    }
    let document = response.json().unwrap_or(Value::Null);
    let client_id = document["client_id"]
        .as_str()
        .ok_or(ClientError::UnexpectedResponse {
            endpoint: "registration endpoint",
            status: 201,
            detail: "no client_id in the answer".into(),
        })?
        .to_owned();
    Ok(Registration { client_id, document })
}

impl Registration {
    /// RFC 7592 §2.3: deletes the client at its `registration_client_uri` with its
    /// `registration_access_token`; the server revokes what it issued to the client.
    pub async fn delete(&self, transport: &dyn Transport) -> Result<(), ClientError> {
        let (Some(uri), Some(token)) = (
            self.document["registration_client_uri"].as_str(),
            self.document["registration_access_token"].as_str(),
        ) else {
            return Err(ClientError::Usage(
                "the registration has no registration_client_uri and registration_access_token (RFC 7592)".into(),
            ));
        };
        let mut request = HttpRequest::get(uri).header("authorization", &format!("Bearer {token}"))?;
        request.method = crate::http::Method::DELETE;
        let response = transport.send(request).await?;
        if response.status != 204 {
            return Err(crate::client::endpoint_error(
                "client configuration endpoint",
                &response,
            ));
        }
        Ok(())
    }
}
