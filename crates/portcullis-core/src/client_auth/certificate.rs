//! Client authentication by TLS certificate (RFC 8705 §2): the request names its client with
//! `client_id` and proves it with the certificate; `tls_client_auth.rs` and `self_signed.rs`
//! hold the two methods' rules.

use std::sync::Arc;

use portcullis_cert::ClientCertificate;

use crate::error::{OAuthError, OAuthResult};
use crate::model::ClientAuthMethod;
use crate::provider::{ParsedClient, Provider};
use crate::types::ClientId;

/// A 401 `invalid_client` that says which check failed.
pub(super) fn fail(d: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::invalid_client(d)
}

impl Provider {
    /// RFC 8705 §2: the request names its client with `client_id` (AS-SP-29) and proves it with
    /// the TLS certificate. Every failure is 401 `invalid_client` and says which check failed.
    pub(crate) async fn authenticate_with_certificate(
        &self,
        client_id: ClientId<'_>,
        certificate: &ClientCertificate,
    ) -> OAuthResult<Arc<ParsedClient>> {
        let client = self
            .client(client_id.as_str())
            .await?
            .ok_or_else(|| fail("unknown client (client_id)"))?;
        let now = self.now();
        match client.client.metadata.token_endpoint_auth_method {
            ClientAuthMethod::PrivateKeyJwt => {
                return Err(fail(
                    "this client is registered for private_key_jwt: send a client_assertion (a TLS certificate \
                     does not authenticate it)",
                ));
            }
            ClientAuthMethod::TlsClientAuth => self.tls_client_auth(&client, certificate, now)?,
            ClientAuthMethod::SelfSignedTlsClientAuth => {
                self.self_signed_tls_client_auth(&client, certificate, now).await?
            }
        }
        Ok(client)
    }
}
