//! The CAs an operator trusts for `tls_client_auth`, and PKI path validation against them.

use std::fmt;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use crate::cert::parse_der;
use crate::{CertError, ChainError, ClientCertificate};

/// The most CA certificates a trusted CA file may hold.
const MAX_TRUSTED_CAS: usize = 1024;

/// The CAs the operator trusts for `tls_client_auth` (the `tls.client_ca_file` setting).
#[derive(Clone)]
pub struct TrustedCas {
    anchors: Vec<TrustAnchor<'static>>,
    subjects: Vec<String>,
}

impl TrustedCas {
    /// Reads one or more PEM `CERTIFICATE` blocks (other PEM sections are ignored). A file
    /// without a certificate is refused, and so is a certificate that is not a usable CA
    /// certificate (not DER X.509, or without basicConstraints `cA` true, RFC 5280 §4.2.1.9):
    /// the error names it by its position in the file, counting from 1.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertError> {
        let mut anchors = Vec::new();
        let mut subjects = Vec::new();
        for (i, block) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let index = i + 1;
            if index > MAX_TRUSTED_CAS {
                return Err(CertError::CaFile("it holds too many certificates"));
            }
            let der = block.map_err(|_| CertError::CaCertificate {
                index,
                reason: "its PEM block is malformed",
            })?;
            let cert = parse_der(&der).map_err(|_| CertError::CaCertificate {
                index,
                reason: "it is not a DER X.509 certificate",
            })?;
            let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
            if !is_ca {
                return Err(CertError::CaCertificate {
                    index,
                    reason: "it is not marked as a CA (basicConstraints cA)",
                });
            }
            subjects.push(crate::DistinguishedName::from_x509(cert.subject()).to_rfc4514());
            drop(cert);
            let anchor = webpki::anchor_from_trusted_cert(&der).map_err(|_| CertError::CaCertificate {
                index,
                reason: "it cannot serve as a trust anchor",
            })?;
            anchors.push(anchor.to_owned());
        }
        if anchors.is_empty() {
            return Err(CertError::CaFile("it holds no PEM CERTIFICATE block"));
        }
        Ok(Self { anchors, subjects })
    }

    /// How many CAs are trusted.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// The subject DNs of the trusted CAs, RFC 4514 form (for logs and the startup banner).
    pub fn subjects(&self) -> &[String] {
        &self.subjects
    }

    /// RFC 8705 §2.1: PKI path validation (RFC 5280 §6, by rustls-webpki) of the presented
    /// chain to one of these CAs at `now` (unix seconds): signatures, validity periods, basic
    /// constraints, name constraints, and the end entity's extended key usage for TLS client
    /// authentication. As RFC 5280 §4.2.1.12 allows, a certificate without an EKU extension is
    /// accepted for any purpose; one with EKUs must list `id-kp-clientAuth`.
    ///
    /// This does not match the subject (see [`ClientCertificate::matches`]) and does not
    /// check revocation.
    pub fn verify(&self, cert: &ClientCertificate, now: i64) -> Result<(), CertError> {
        let now = u64::try_from(now).map_err(|_| CertError::Untrusted(ChainError::Invalid))?;
        let end_entity_der = CertificateDer::from(cert.der());
        let end_entity = EndEntityCert::try_from(&end_entity_der).map_err(|e| CertError::Untrusted(chain_error(&e)))?;
        let intermediates: Vec<CertificateDer<'_>> = cert
            .intermediates()
            .iter()
            .map(|der| CertificateDer::from(der.as_slice()))
            .collect();
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &self.anchors,
                &intermediates,
                UnixTime::since_unix_epoch(Duration::from_secs(now)),
                KeyUsage::client_auth(),
                None,
                None,
            )
            .map(|_| ())
            .map_err(|e| CertError::Untrusted(chain_error(&e)))
    }
}

impl fmt::Debug for TrustedCas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedCas").field("subjects", &self.subjects).finish()
    }
}

#[allow(deprecated)] // the context-free variants are still what older paths return
fn chain_error(error: &webpki::Error) -> ChainError {
    use webpki::Error as E;
    match error {
        E::CertExpired { .. } => ChainError::Expired,
        E::CertNotValidYet { .. } => ChainError::NotYetValid,
        E::UnknownIssuer => ChainError::UnknownIssuer,
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => ChainError::WrongUsage,
        E::CaUsedAsEndEntity => ChainError::CaUsedAsEndEntity,
        E::InvalidSignatureForPublicKey => ChainError::BadSignature,
        E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKey
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => ChainError::UnsupportedAlgorithm,
        _ => ChainError::Invalid,
    }
}
