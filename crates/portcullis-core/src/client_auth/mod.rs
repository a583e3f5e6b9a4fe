//! Client authentication at the direct endpoints (SP 5.3.2.1-6, AS-SP-24): one method per
//! request (RFC 6749 §2.3), one module per method: `private_key_jwt`, `tls_client_auth`,
//! `self_signed` (the certificate methods share `certificate`).

mod certificate;
mod private_key_jwt;
mod self_signed;
mod tls_client_auth;

use std::sync::Arc;

pub use private_key_jwt::JWT_BEARER_ASSERTION_TYPE;
pub use tls_client_auth::SUBJECT_METADATA;

use crate::error::{Challenge, OAuthError, OAuthResult};
use crate::model::ClientAuthMethod;
use crate::provider::{ParsedClient, Provider};
use crate::request::DirectRequest;
use crate::types::ClientId;

/// The credentials a direct request carries: exactly one kind per request.
#[derive(Debug, Clone, Copy)]
pub enum ClientCredentials<'a> {
    /// RFC 7523 §2.2 `private_key_jwt`: a signed client assertion.
    Assertion {
        client_id: Option<ClientId<'a>>,
        assertion_type: Option<&'a str>,
        assertion: &'a str,
    },
    /// RFC 8705 §2: the TLS client certificate, with the `client_id` it claims to be.
    Certificate {
        client_id: ClientId<'a>,
        certificate: &'a portcullis_cert::ClientCertificate,
    },
    /// Nothing usable (the `client_id`, if one was named, for a helpful message).
    None { client_id: Option<ClientId<'a>> },
}

impl<'a> ClientCredentials<'a> {
    /// Which credentials the request carries. HTTP Basic (`client_secret_basic`) is refused
    /// here, with a `Basic` challenge (RFC 6749 §5.2), whether or not anything else was sent
    /// (RFC 6749 §2.3: one method per request).
    pub fn from_request(p: &Provider, req: &'a DirectRequest) -> OAuthResult<Self> {
        let params = req.params.view();
        // RFC 6749 §2.2: parsed once, here (bounded, visible ASCII)
        let client_id = params.get("client_id").map(ClientId::parse).transpose()?;
        let assertion = params.get("client_assertion");
        if !req.authorization.is_empty() {
            let d = if assertion.is_some() {
                "send either a client_assertion or an Authorization header, not both (RFC 6749 section 2.3)"
            } else {
                "client_secret_basic is not supported: authenticate with private_key_jwt (client_assertion) or a TLS client certificate"
            };
            return Err(OAuthError::invalid_client(d).with_challenge(Challenge::Basic {
                realm: p.settings.issuer.clone(),
            }));
        }
        Ok(match (assertion, client_id, req.certificate.as_deref()) {
            (Some(assertion), _, _) => Self::Assertion {
                client_id,
                assertion_type: params.get("client_assertion_type"),
                assertion,
            },
            (None, Some(client_id), Some(certificate)) => Self::Certificate { client_id, certificate },
            (None, client_id, _) => Self::None { client_id },
        })
    }
}

impl Provider {
    /// Authenticates the client of a direct request (PAR, token, introspection). Every failure
    /// is 401 `invalid_client` with a description of the rule that failed.
    pub async fn authenticate_client(&self, credentials: &ClientCredentials<'_>) -> OAuthResult<Arc<ParsedClient>> {
        match *credentials {
            ClientCredentials::Assertion {
                client_id,
                assertion_type,
                assertion,
            } => {
                self.authenticate_with_assertion(client_id, assertion_type, assertion)
                    .await
            }
            ClientCredentials::Certificate { client_id, certificate } => {
                self.authenticate_with_certificate(client_id, certificate).await
            }
            ClientCredentials::None { client_id } => Err(self.no_credentials(client_id).await?),
        }
    }

    /// Why a request without usable credentials failed, in the terms of the method the named
    /// client is registered for.
    async fn no_credentials(&self, client_id: Option<ClientId<'_>>) -> OAuthResult<OAuthError> {
        let registered = match client_id {
            Some(id) => self
                .client(id.as_str())
                .await?
                .map(|c| c.client.metadata.token_endpoint_auth_method),
            None => None,
        };
        Ok(OAuthError::invalid_client(match registered {
            Some(ClientAuthMethod::TlsClientAuth | ClientAuthMethod::SelfSignedTlsClientAuth) => {
                "no client certificate was presented: this client authenticates with its TLS certificate, \
                 at the mtls_endpoint_aliases endpoints"
            }
            Some(ClientAuthMethod::PrivateKeyJwt) => {
                "client authentication is required: send a private_key_jwt client_assertion"
            }
            None => {
                "client authentication is required: send a private_key_jwt client_assertion, or a client_id \
                 with a TLS client certificate (at the mtls_endpoint_aliases)"
            }
        }))
    }
}
