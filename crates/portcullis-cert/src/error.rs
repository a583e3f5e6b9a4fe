/// Why a certificate, a header, a registered subject or a CA file was refused.
///
/// Every message is a short sentence that may be sent as an OAuth `error_description`: it names
/// the rule that failed, never a certificate's content or a secret, and is bounded in length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The presented certificate or chain could not be read.
    #[error("the client certificate is not usable: {0}")]
    Malformed(&'static str),
    /// A forwarded certificate header (RFC 9440 or URL-encoded PEM) could not be read.
    #[error("the forwarded client certificate header is not usable: {0}")]
    Header(&'static str),
    /// PKI path validation of the presented chain failed (RFC 8705 §2.1).
    #[error("{0}")]
    Untrusted(ChainError),
    /// A `tls_client_auth_subject_dn` that is not an RFC 4514 distinguished name.
    #[error("the subject DN is not a valid RFC 4514 distinguished name: {0}")]
    InvalidDn(&'static str),
    /// Client metadata describing the expected certificate subject is not usable.
    #[error("invalid {name}: {reason}")]
    InvalidSubject { name: &'static str, reason: &'static str },
    /// A JWK's `x5c` does not hold usable certificates for that key (RFC 7517 §4.7).
    #[error("invalid JWK x5c: {0}")]
    InvalidX5c(&'static str),
    /// The operator's trusted CA file (`tls.client_ca_file`) is not usable.
    #[error("the trusted CA file is not usable: {0}")]
    CaFile(&'static str),
    /// One certificate of the trusted CA file is not a usable CA certificate; `index` counts
    /// the file's CERTIFICATE blocks from 1.
    #[error("certificate #{index} of the trusted CA file is not a usable CA certificate: {reason}")]
    CaCertificate { index: usize, reason: &'static str },
}

/// Why a presented chain did not validate to a trusted CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    #[error("the client certificate has expired")]
    Expired,
    #[error("the client certificate is not valid yet")]
    NotYetValid,
    #[error("the client certificate is not issued by a trusted CA")]
    UnknownIssuer,
    #[error("the client certificate is not valid for TLS client authentication")]
    WrongUsage,
    #[error("the client certificate is a CA certificate, not an end-entity certificate")]
    CaUsedAsEndEntity,
    #[error("a signature in the client certificate chain is not valid")]
    BadSignature,
    #[error("the client certificate chain uses an unsupported algorithm")]
    UnsupportedAlgorithm,
    #[error("the client certificate chain is not valid")]
    Invalid,
}
