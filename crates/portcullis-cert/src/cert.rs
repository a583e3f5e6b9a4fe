//! The presented client certificate and the registered subject it must carry.

use std::fmt;
use std::net::IpAddr;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519};
use x509_parser::prelude::FromDer;

use crate::{CertError, DistinguishedName};

/// The most certificates a presented chain may hold (end entity included).
pub const MAX_CHAIN_LEN: usize = 5;
/// The largest DER certificate accepted, in bytes.
pub const MAX_CERT_LEN: usize = 16 * 1024;

/// A client certificate as presented (in the TLS handshake, or in a trusted proxy's header):
/// the end-entity certificate, parsed once, plus any intermediates as sent.
///
/// Constructing one checks that every certificate is well-formed DER X.509 within the size
/// bounds; it says nothing about trust (see [`crate::TrustedCas::verify`] and
/// [`crate::matches_registered`]).
#[derive(Clone)]
pub struct ClientCertificate {
    der: Vec<u8>,
    intermediates: Vec<Vec<u8>>,
    thumbprint: String,
    subject: DistinguishedName,
    san: SubjectAltNames,
    not_before: i64,
    not_after: i64,
    key: KeyParams,
}

/// The subjectAltName entries RFC 8705 §2.1.2 can match on.
#[derive(Clone, Debug, Default)]
struct SubjectAltNames {
    dns: Vec<String>,
    uri: Vec<String>,
    ip: Vec<IpAddr>,
    email: Vec<String>,
}

/// A certificate's public key in the terms a JWK states it (RFC 7518 §6): big-endian
/// unsigned integers without leading zeros for RSA, affine coordinates for P-256, the raw key
/// for Ed25519.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyParams {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    P256 {
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
    /// Any other key type or curve: never equal to a JWK's key.
    Other,
}

impl ClientCertificate {
    /// Reads a presented chain: the first certificate is the end entity, the rest are
    /// intermediates in the order sent. An empty chain, more than [`MAX_CHAIN_LEN`]
    /// certificates, one larger than [`MAX_CERT_LEN`] bytes, or one that is not DER X.509
    /// is refused.
    pub fn from_der_chain(chain: Vec<Vec<u8>>) -> Result<Self, CertError> {
        if chain.len() > MAX_CHAIN_LEN {
            return Err(CertError::Malformed("the chain holds too many certificates"));
        }
        let mut chain = chain.into_iter();
        let der = chain
            .next()
            .ok_or(CertError::Malformed("no certificate was presented"))?;
        let intermediates: Vec<Vec<u8>> = chain.collect();
        for intermediate in &intermediates {
            parse_der(intermediate)
                .map_err(|_| CertError::Malformed("an intermediate is not a DER X.509 certificate"))?;
        }
        let cert = parse_der(&der)?;
        let subject = DistinguishedName::from_x509(cert.subject());
        let san = subject_alt_names(&cert)?;
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        let key = KeyParams::of(&cert);
        drop(cert);
        Ok(Self {
            // RFC 8705 §3.1: x5t#S256 is the base64url SHA-256 of the DER certificate.
            thumbprint: portcullis_jose::sha256_b64url(&der),
            der,
            intermediates,
            subject,
            san,
            not_before,
            not_after,
            key,
        })
    }

    /// The end-entity certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The intermediates as presented, DER.
    pub fn intermediates(&self) -> &[Vec<u8>] {
        &self.intermediates
    }

    /// RFC 8705 §3.1: the `x5t#S256` confirmation value, base64url (no padding) of SHA-256
    /// over the DER end-entity certificate.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The subject DN in RFC 4514 string form, bounded in length (for logs and messages).
    pub fn subject(&self) -> String {
        self.subject.to_rfc4514()
    }

    /// The subject DN, for comparison.
    pub fn subject_dn(&self) -> &DistinguishedName {
        &self.subject
    }

    /// RFC 8705 §2.1.2: whether this certificate carries the client's registered subject: the
    /// subject DN compared as a DN, or one subjectAltName entry of the registered type.
    pub fn matches(&self, subject: &TlsSubject) -> bool {
        match subject {
            TlsSubject::SubjectDn(dn) => self.subject == *dn,
            // DNS names are case-insensitive (RFC 4343); the registered value is matched
            // literally, never expanded as a wildcard.
            TlsSubject::SanDns(name) => self.san.dns.iter().any(|d| d.eq_ignore_ascii_case(name)),
            TlsSubject::SanUri(uri) => self.san.uri.iter().any(|u| u == uri),
            TlsSubject::SanIp(ip) => self.san.ip.contains(ip),
            TlsSubject::SanEmail(email) => self.san.email.iter().any(|e| same_mailbox(e, email)),
        }
    }

    /// RFC 5280 §4.1.2.5: whether `now` (unix seconds) lies within notBefore..=notAfter.
    pub fn is_valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    pub(crate) fn key(&self) -> &KeyParams {
        &self.key
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("subject", &self.subject())
            .field("thumbprint", &self.thumbprint)
            .field("intermediates", &self.intermediates.len())
            .finish()
    }
}

/// RFC 8705 §2.1.2: the one registered subject of a `tls_client_auth` client. Exactly one of
/// the five metadata values is registered, and the certificate must carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSubject {
    /// `tls_client_auth_subject_dn`: the subject DN, compared as a DN.
    SubjectDn(DistinguishedName),
    /// `tls_client_auth_san_dns`: a dNSName SAN entry, compared case-insensitively.
    SanDns(String),
    /// `tls_client_auth_san_uri`: a uniformResourceIdentifier SAN entry, compared exactly.
    SanUri(String),
    /// `tls_client_auth_san_ip`: an iPAddress SAN entry, compared as an address.
    SanIp(IpAddr),
    /// `tls_client_auth_san_email`: an rfc822Name SAN entry, compared case-insensitively.
    SanEmail(String),
}

pub const SUBJECT_DN: &str = "tls_client_auth_subject_dn";
pub const SAN_DNS: &str = "tls_client_auth_san_dns";
pub const SAN_URI: &str = "tls_client_auth_san_uri";
pub const SAN_IP: &str = "tls_client_auth_san_ip";
pub const SAN_EMAIL: &str = "tls_client_auth_san_email";

/// The longest SAN value accepted in metadata.
const MAX_SAN_LEN: usize = 2048;

impl TlsSubject {
    /// Reads one RFC 8705 §2.1.2 client metadata value. `name` is one of
    /// `tls_client_auth_subject_dn`, `tls_client_auth_san_dns`, `tls_client_auth_san_uri`,
    /// `tls_client_auth_san_ip` or `tls_client_auth_san_email`. Strict: a DN that is not
    /// RFC 4514, an IP value that is not an address, a URI without a scheme, an e-mail address
    /// without `@`, or any value with spaces or control characters is refused, with a message
    /// for `invalid_client_metadata`.
    pub fn from_metadata(name: &str, value: &str) -> Result<Self, CertError> {
        let invalid = |name, reason| CertError::InvalidSubject { name, reason };
        match name {
            SUBJECT_DN => DistinguishedName::parse_rfc4514(value).map(Self::SubjectDn),
            SAN_DNS => {
                check_san_text(value).map_err(|reason| invalid(SAN_DNS, reason))?;
                if value.len() > 253 || !value.is_ascii() {
                    return Err(invalid(
                        SAN_DNS,
                        "it is not an ASCII DNS name of at most 253 characters",
                    ));
                }
                Ok(Self::SanDns(value.to_owned()))
            }
            SAN_URI => {
                check_san_text(value).map_err(|reason| invalid(SAN_URI, reason))?;
                if !has_uri_scheme(value) {
                    return Err(invalid(SAN_URI, "it is not an absolute URI"));
                }
                Ok(Self::SanUri(value.to_owned()))
            }
            SAN_IP => value
                .parse::<IpAddr>()
                .map(Self::SanIp)
                .map_err(|_| invalid(SAN_IP, "it is not an IPv4 or IPv6 address")),
            SAN_EMAIL => {
                check_san_text(value).map_err(|reason| invalid(SAN_EMAIL, reason))?;
                match value.split_once('@') {
                    Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => {
                        Ok(Self::SanEmail(value.to_owned()))
                    }
                    _ => Err(invalid(SAN_EMAIL, "it is not an e-mail address")),
                }
            }
            _ => Err(invalid("client metadata", "not a tls_client_auth subject parameter")),
        }
    }

    /// The client metadata parameter this subject is registered under.
    pub fn metadata_name(&self) -> &'static str {
        match self {
            Self::SubjectDn(_) => SUBJECT_DN,
            Self::SanDns(_) => SAN_DNS,
            Self::SanUri(_) => SAN_URI,
            Self::SanIp(_) => SAN_IP,
            Self::SanEmail(_) => SAN_EMAIL,
        }
    }
}

/// Parses one DER certificate within the size bound; trailing bytes are refused.
pub(crate) fn parse_der(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    if der.len() > MAX_CERT_LEN {
        return Err(CertError::Malformed("a certificate is too large"));
    }
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(CertError::Malformed("trailing data follows the certificate")),
        Err(_) => Err(CertError::Malformed("it is not a DER X.509 certificate")),
    }
}

fn subject_alt_names(cert: &X509Certificate<'_>) -> Result<SubjectAltNames, CertError> {
    let mut names = SubjectAltNames::default();
    let extension = cert
        .subject_alternative_name()
        .map_err(|_| CertError::Malformed("its subjectAltName extension is malformed"))?;
    let Some(extension) = extension else {
        return Ok(names);
    };
    for name in &extension.value.general_names {
        match name {
            GeneralName::DNSName(s) => names.dns.push((*s).to_owned()),
            GeneralName::URI(s) => names.uri.push((*s).to_owned()),
            GeneralName::RFC822Name(s) => names.email.push((*s).to_owned()),
            GeneralName::IPAddress(bytes) => {
                if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                    names.ip.push(IpAddr::from(v4));
                } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                    names.ip.push(IpAddr::from(v6));
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

impl KeyParams {
    pub(crate) fn of(cert: &X509Certificate<'_>) -> Self {
        let spki = cert.public_key();
        let algorithm = &spki.algorithm.algorithm;
        let raw = spki.subject_public_key.data.as_ref();
        if *algorithm == OID_PKCS1_RSAENCRYPTION {
            match spki.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => Self::Rsa {
                    n: strip_leading_zeros(rsa.modulus).to_vec(),
                    e: strip_leading_zeros(rsa.exponent).to_vec(),
                },
                _ => Self::Other,
            }
        } else if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let p256 = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|curve| curve == OID_EC_P256);
            // SEC 1 §2.3.3: an uncompressed point is 04 || x || y.
            match raw {
                [4, point @ ..] if p256 && point.len() == 64 => Self::P256 {
                    x: point[..32].to_vec(),
                    y: point[32..].to_vec(),
                },
                _ => Self::Other,
            }
        } else if *algorithm == OID_SIG_ED25519 && raw.len() == 32 {
            Self::Ed25519 { x: raw.to_vec() }
        } else {
            Self::Other
        }
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn check_san_text(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("it is empty");
    }
    if value.len() > MAX_SAN_LEN {
        return Err("it is too long");
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it holds spaces or control characters");
    }
    Ok(())
}

/// RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ":".
fn has_uri_scheme(value: &str) -> bool {
    let Some((scheme, _)) = value.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// RFC 5280 §7.5: the local part of an rfc822Name compares exactly, the domain
/// case-insensitively.
fn same_mailbox(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => a == b,
    }
}
