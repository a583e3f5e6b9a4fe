//! Where a request's client certificate comes from (RFC 8705): the TLS connection, or, behind a
//! TLS-terminating proxy, the header the operator names (`tls.client_cert_header`), believed
//! only from `tls.trusted_proxies`.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use portcullis_cert::ClientCertificate;
use portcullis_core::OAuthError;

/// RFC 9440 §2.2: the intermediates, when the proxy sends them.
const CLIENT_CERT_CHAIN: &str = "client-cert-chain";

/// A proxy address or CIDR (`10.0.0.1`, `10.0.0.0/8`, `fd00::/8`).
pub fn parse_proxy(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is not an address or CIDR"))
}

/// The certificate policy of the HTTP layer.
#[derive(Clone, Debug, Default)]
pub struct CertificateSource {
    header: Option<HeaderName>,
    proxies: Vec<IpNet>,
}

impl CertificateSource {
    /// `tls.client_cert_header` (empty: none) and `tls.trusted_proxies`.
    pub fn new(header: &str, trusted_proxies: &[String]) -> Result<Self, String> {
        let header = if header.is_empty() {
            None
        } else {
            Some(
                HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes())
                    .map_err(|e| format!("tls.client_cert_header: {e}"))?,
            )
        };
        let proxies = trusted_proxies
            .iter()
            .map(|p| parse_proxy(p))
            .collect::<Result<_, _>>()?;
        Ok(Self { header, proxies })
    }

    fn trusts(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.proxies.iter().any(|n| n.contains(&peer))
    }

    /// The request's client certificate. One presented on the TLS connection always wins: a
    /// header never overrides it (a disagreeing header is logged). A header is read only from
    /// a trusted proxy; from anyone else it is ignored and logged. A certificate that cannot be
    /// read is 400 `invalid_request`, never silently dropped.
    pub fn certificate(
        &self,
        peer: IpAddr,
        tls: Option<&Arc<ClientCertificate>>,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<ClientCertificate>>, OAuthError> {
        let header = self
            .header
            .as_ref()
            .and_then(|name| headers.get(name).map(|v| (name, v)));
        if let Some(cert) = tls {
            if let Some((name, value)) = header {
                let same = value
                    .to_str()
                    .ok()
                    .and_then(|v| portcullis_cert::from_header_value(v).ok())
                    .is_some_and(|der| der == cert.der());
                if !same {
                    tracing::warn!(%peer, header = %name, "a client certificate header disagrees with the TLS client certificate; the TLS one is used");
                }
            }
            return Ok(Some(cert.clone()));
        }
        let Some((name, value)) = header else {
            return Ok(None);
        };
        if !self.trusts(peer) {
            tracing::warn!(%peer, header = %name, "a client certificate header from a peer not in tls.trusted_proxies is ignored");
            return Ok(None);
        }
        let unreadable =
            |e: String| OAuthError::invalid_request(format!("the forwarded client certificate could not be read: {e}"));
        let value = value.to_str().map_err(|_| unreadable("not ASCII".into()))?;
        let der = portcullis_cert::from_header_value(value).map_err(|e| unreadable(e.to_string()))?;
        let mut chain = vec![der];
        if let Some(v) = headers.get(CLIENT_CERT_CHAIN) {
            let v = v
                .to_str()
                .map_err(|_| unreadable("Client-Cert-Chain is not ASCII".into()))?;
            chain.extend(portcullis_cert::chain_from_header_value(v).map_err(|e| unreadable(e.to_string()))?);
        }
        let cert = ClientCertificate::from_der_chain(chain).map_err(|e| unreadable(e.to_string()))?;
        Ok(Some(Arc::new(cert)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_parse_as_addresses_or_cidrs() {
        assert!(parse_proxy("10.0.0.1").is_ok());
        assert!(parse_proxy("10.0.0.0/8").is_ok());
        assert!(parse_proxy("fd00::/8").is_ok());
        assert!(parse_proxy("proxy.example").is_err());
        let s = CertificateSource::new("X-Client-Cert", &["10.0.0.0/8".into()]).unwrap();
        assert!(s.trusts("10.1.2.3".parse().unwrap()));
        assert!(s.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!s.trusts("11.0.0.1".parse().unwrap()));
    }
}
