//! `self_signed_tls_client_auth` (RFC 8705 §2.2): no CA; the very certificate is registered
//! as the `x5c` of a key in the client's JWKS.

use portcullis_cert::ClientCertificate;

use super::certificate::fail;
use crate::error::OAuthResult;
use crate::jwks_cache::Refreshed;
use crate::provider::{ParsedClient, Provider};

impl Provider {
    /// RFC 8705 §2.2: a certificate within its validity, registered in the client's JWKS.
    pub(super) async fn self_signed_tls_client_auth(
        &self,
        client: &ParsedClient,
        certificate: &ClientCertificate,
        now: i64,
    ) -> OAuthResult<()> {
        if !certificate.is_valid_at(now) {
            return Err(fail("the client certificate is expired or not yet valid"));
        }
        if !self.certificate_is_registered(client, certificate).await? {
            return Err(fail(
                "the client certificate is not one registered in the client's jwks (x5c) for \
                 self_signed_tls_client_auth",
            ));
        }
        Ok(())
    }

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
