//! The X.509 side of RFC 8705, OAuth 2.0 Mutual-TLS Client Authentication and
//! Certificate-Bound Access Tokens: pure functions over certificates, with no HTTP, storage,
//! clock or async.
//!
//! - [`ClientCertificate`]: the presented certificate (from the TLS handshake, or from a trusted
//!   proxy's header via [`from_header_value`] / [`chain_from_header_value`]), parsed once,
//!   with its `x5t#S256` thumbprint (§3.1).
//! - `tls_client_auth` (§2.1): [`TrustedCas::verify`] validates the chain to the operator's
//!   CAs, and [`ClientCertificate::matches`] checks the client's registered [`TlsSubject`]
//!   (§2.1.2), a subject [`DistinguishedName`] being compared as a DN.
//! - `self_signed_tls_client_auth` (§2.2): [`matches_registered`] finds the certificate in the
//!   client's JWK Set, and [`check_jwk_x5c`] checks such a JWK Set at registration.
//!
//! X.509 and ASN.1 are read by `x509-parser`; path validation is `rustls-webpki`'s; hashing is
//! aws-lc-rs' (through `portcullis-jose`). Every error is a [`CertError`] whose message may be
//! sent as an OAuth `error_description`.
#![forbid(unsafe_code)]

mod cert;
mod dn;
mod error;
mod header;
mod jwk;
mod trust;

pub use cert::{
    ClientCertificate, MAX_CERT_LEN, MAX_CHAIN_LEN, SAN_DNS, SAN_EMAIL, SAN_IP, SAN_URI, SUBJECT_DN, TlsSubject,
};
pub use dn::DistinguishedName;
pub use error::{CertError, ChainError};
pub use header::{MAX_HEADER_LEN, certificates_from_header_value, chain_from_header_value, from_header_value};
pub use jwk::{check_jwk_x5c, matches_registered};
pub use trust::TrustedCas;
