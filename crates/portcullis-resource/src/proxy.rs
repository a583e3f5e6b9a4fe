//! Where a request's client certificate comes from (RFC 8705): the TLS connection, or, behind a
//! TLS-terminating proxy, the header the operator names (Portcullis: `tls.client_cert_header`),
//! believed only from the trusted proxies (`tls.trusted_proxies`). Shared by Portcullis and by
//! resource servers using this crate.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use portcullis_cert::ClientCertificate;

use crate::access::{ResourceError, ResourceErrorKind};

/// RFC 9440 §2.1: the client certificate header.
const CLIENT_CERT: &str = "client-cert";
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
#[derive(Debug, Default)]
pub struct CertificateSource {
    header: Option<HeaderName>,
    proxies: Vec<IpNet>,
    ignored: IgnoredHeaders,
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
        Ok(Self {
            header,
            proxies,
            ignored: IgnoredHeaders::default(),
        })
    }

    fn trusts(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.proxies.iter().any(|n| n.contains(&peer))
    }

    /// The request's client certificate.
    ///
    /// - A certificate on the TLS connection is never overridden by a header. From a trusted
    ///   proxy, a header that names a different certificate is refused (400): the proxy is
    ///   presenting its own certificate upstream, and binding tokens to it would let every
    ///   client behind it use the others' tokens.
    /// - A header is read only from a trusted proxy; from anyone else it is ignored (logged,
    ///   rate-limited).
    /// - A header sent more than once is refused (400): a proxy that appends rather than
    ///   replaces would otherwise let the client's own copy win.
    /// - RFC 9440 `Client-Cert-Chain` is read only when the configured header is `Client-Cert`;
    ///   a PEM header may carry the chain itself.
    /// - A certificate that cannot be read is 400 `invalid_request`, never silently dropped.
    pub fn certificate(
        &self,
        peer: IpAddr,
        tls: Option<&Arc<ClientCertificate>>,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<ClientCertificate>>, ResourceError> {
        let Some(name) = &self.header else {
            return Ok(tls.cloned());
        };
        let mut values = headers.get_all(name).iter();
        let Some(value) = values.next() else {
            return Ok(tls.cloned());
        };
        if !self.trusts(peer) {
            self.ignored.report(peer, name);
            return Ok(tls.cloned());
        }
        let unreadable = |e: String| ResourceError {
            kind: ResourceErrorKind::InvalidRequest,
            description: format!("the forwarded client certificate could not be read: {e}").into(),
            without_credentials: false,
        };
        if values.next().is_some() {
            return Err(unreadable(format!("the {name} header was sent more than once")));
        }
        let value = value.to_str().map_err(|_| unreadable("not ASCII".into()))?;
        let mut chain =
            portcullis_cert::certificates_from_header_value(value).map_err(|e| unreadable(e.to_string()))?;
        if name == CLIENT_CERT {
            let mut chain_values = headers.get_all(CLIENT_CERT_CHAIN).iter();
            if let Some(v) = chain_values.next() {
                if chain_values.next().is_some() {
                    return Err(unreadable(
                        "the Client-Cert-Chain header was sent more than once".into(),
                    ));
                }
                let v = v
                    .to_str()
                    .map_err(|_| unreadable("Client-Cert-Chain is not ASCII".into()))?;
                chain.extend(portcullis_cert::chain_from_header_value(v).map_err(|e| unreadable(e.to_string()))?);
            }
        }
        if let Some(cert) = tls {
            if chain.first().map(Vec::as_slice) != Some(cert.der()) {
                return Err(ResourceError {
                    kind: ResourceErrorKind::InvalidRequest,
                    description: "the TLS client certificate and the forwarded one differ: a proxy must not present \
                                  a certificate of its own to this listener"
                        .into(),
                    without_credentials: false,
                });
            }
            return Ok(Some(cert.clone()));
        }
        let cert = ClientCertificate::from_der_chain(chain).map_err(|e| unreadable(e.to_string()))?;
        Ok(Some(Arc::new(cert)))
    }
}

/// A warning logged at most once per [`REPORT_INTERVAL`], with how many it stands for (every
/// request can trigger it, and the requests are unauthenticated).
#[derive(Debug, Default)]
struct IgnoredHeaders {
    count: AtomicU64,
    last: Mutex<Option<Instant>>,
}

const REPORT_INTERVAL: Duration = Duration::from_secs(5);

impl IgnoredHeaders {
    fn report(&self, peer: IpAddr, header: &HeaderName) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| now.duration_since(t) < REPORT_INTERVAL) {
            return;
        }
        *last = Some(now);
        let n = self.count.swap(0, Ordering::Relaxed);
        tracing::warn!(%peer, %header, ignored = n, "client certificate headers from peers not in tls.trusted_proxies are ignored");
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
