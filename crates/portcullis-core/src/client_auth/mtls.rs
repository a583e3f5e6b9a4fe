//! Client authentication by TLS certificate (RFC 8705 §2): `tls_client_auth` (a certificate
//! from a CA the operator trusts, with the registered subject) and
//! `self_signed_tls_client_auth` (a certificate registered in the client's JWKS).

use std::sync::Arc;

use portcullis_cert::{ClientCertificate, TlsSubject};

use crate::error::{OAuthError, OAuthResult};
use crate::jwks_cache::Refreshed;
use crate::model::ClientAuthMethod;
use crate::provider::{ParsedClient, Provider};
use crate::types::ClientId;

/// RFC 8705 §2.1.2: the client metadata that names the subject of a `tls_client_auth` client.
pub const SUBJECT_METADATA: [&str; 5] = [
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
];

impl Provider {
    /// RFC 8705 §2: the request names its client with `client_id` (AS-SP-29) and proves it with
    /// the TLS certificate. Every failure is 401 `invalid_client` and says which check failed.
    pub(crate) async fn authenticate_with_certificate(
        &self,
        client_id: &str,
        certificate: &ClientCertificate,
    ) -> OAuthResult<Arc<ParsedClient>> {
        fn fail(d: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
            OAuthError::invalid_client(d)
        }
        let client_id = ClientId::parse(client_id)?;
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
            // RFC 8705 §2.1: PKI path validation to a trusted CA, then the registered subject
            ClientAuthMethod::TlsClientAuth => {
                let Some(cas) = &self.settings.client_cas else {
                    return Err(fail(
                        "this server trusts no CA for tls_client_auth (tls.client_ca_file is not configured)",
                    ));
                };
                cas.verify(certificate, now).map_err(|e| {
                    fail(format!(
                        "the client certificate is not accepted for tls_client_auth: {e}"
                    ))
                })?;
                let subject = registered_subject(&client)?;
                if !certificate.matches(&subject) {
                    return Err(fail(format!(
                        "the client certificate does not carry the registered subject ({})",
                        subject_name(&client)
                    )));
                }
            }
            // RFC 8705 §2.2: no chain; the very certificate is registered in the client's JWKS
            ClientAuthMethod::SelfSignedTlsClientAuth => {
                if !certificate.is_valid_at(now) {
                    return Err(fail("the client certificate is expired or not yet valid"));
                }
                if !self.certificate_is_registered(&client, certificate).await? {
                    return Err(fail(
                        "the client certificate is not one registered in the client's jwks (x5c) for \
                         self_signed_tls_client_auth",
                    ));
                }
            }
        }
        Ok(client)
    }
}

impl Provider {
    /// RFC 8705 §2.2: is `certificate` one of the client's registered (`x5c`) certificates? A
    /// `jwks_uri` is refetched for an unknown certificate under the same limits as an unknown
    /// `kid` (issue 13 item 3).
    async fn certificate_is_registered(
        &self,
        client: &ParsedClient,
        certificate: &ClientCertificate,
    ) -> OAuthResult<bool> {
        if let Some(jwks) = &client.inline_jwks {
            return Ok(portcullis_cert::matches_registered(certificate, jwks.document()));
        }
        let Some(uri) = client.client.metadata.jwks_uri.as_deref() else {
            return Ok(false);
        };
        let now = self.now();
        let jwks = self.remote_jwks.get(uri, now, self.fetcher.as_ref()).await?;
        if portcullis_cert::matches_registered(certificate, jwks.document()) {
            return Ok(true);
        }
        let miss = format!("x5t:{}", certificate.thumbprint());
        let refreshed = self
            .remote_jwks
            .refresh(
                uri,
                &jwks,
                &miss,
                now,
                self.settings.jwks_refresh_interval,
                self.fetcher.as_ref(),
            )
            .await?;
        let Refreshed::Newer(fresh) = refreshed else {
            return Ok(false);
        };
        let found = portcullis_cert::matches_registered(certificate, fresh.document());
        if !found {
            self.remote_jwks.remember_miss(uri, &miss, now).await;
        }
        Ok(found)
    }
}

/// The one registered subject of a `tls_client_auth` client (registration guarantees one).
fn registered_subject(client: &ParsedClient) -> OAuthResult<TlsSubject> {
    let extra = &client.client.metadata.extra;
    let mut found = SUBJECT_METADATA
        .iter()
        .filter_map(|name| extra.get(*name).and_then(|v| v.as_str()).map(|v| (*name, v)));
    match (found.next(), found.next()) {
        (Some((name, value)), None) => TlsSubject::from_metadata(name, value)
            .map_err(|e| OAuthError::server_error(format!("stored {name} unusable: {e}"))),
        _ => Err(OAuthError::server_error(
            "a tls_client_auth client without exactly one registered subject",
        )),
    }
}

fn subject_name(client: &ParsedClient) -> &'static str {
    SUBJECT_METADATA
        .iter()
        .find(|n| client.client.metadata.extra.contains_key(**n))
        .copied()
        .unwrap_or("tls_client_auth_subject_dn")
}
