//! `tls_client_auth` (RFC 8705 §2.1): a certificate from a CA the operator trusts
//! (`tls.client_ca_file`), carrying the client's one registered subject.

use portcullis_cert::{ClientCertificate, TlsSubject};

use super::certificate::fail;
use crate::error::{OAuthError, OAuthResult};
use crate::provider::{ParsedClient, Provider};

/// RFC 8705 §2.1.2: the client metadata that names the subject of a `tls_client_auth` client.
pub const SUBJECT_METADATA: [&str; 5] = [
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
];

impl Provider {
    /// RFC 8705 §2.1: PKI path validation to a trusted CA, then the registered subject.
    pub(super) fn tls_client_auth(
        &self,
        client: &ParsedClient,
        certificate: &ClientCertificate,
        now: i64,
    ) -> OAuthResult<()> {
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
        let subject = registered_subject(client)?;
        if !certificate.matches(&subject) {
            return Err(fail(format!(
                "the client certificate does not carry the registered subject ({})",
                subject_name(client)
            )));
        }
        Ok(())
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
