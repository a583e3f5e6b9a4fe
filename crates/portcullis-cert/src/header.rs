//! Client certificates forwarded by a TLS-terminating proxy in an HTTP header.
//!
//! Such a header is only evidence when it comes from a proxy the operator trusts and that
//! proxy strips the header from client requests; deciding that is the caller's job.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::CertError;
use crate::cert::{MAX_CERT_LEN, MAX_CHAIN_LEN, parse_der};

/// The longest header value read: a full chain of the largest certificates, PEM armoured and
/// URL-encoded, fits.
pub const MAX_HEADER_LEN: usize = 64 * 1024;

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

/// RFC 8941 §4.2.7: a byte sequence is base64 (RFC 4648 §4); parsers should not insist on
/// `=` padding.
const SF_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The end-entity certificate (DER) forwarded by a proxy, in either form load balancers send:
/// an RFC 9440 `Client-Cert` value (a structured-field byte sequence, `:base64:`), or a PEM
/// certificate, URL-encoded (nginx `$ssl_client_escaped_cert`, AWS ALB
/// `X-Amzn-Mtls-Clientcert`) or not (line breaks may be spaces). When a PEM value holds a
/// chain, the first certificate is returned (see [`certificates_from_header_value`]).
///
/// Strict and bounded: an empty value, one longer than [`MAX_HEADER_LEN`], text around the
/// certificate, structured-field parameters, or a payload that is not one DER X.509
/// certificate is refused.
pub fn from_header_value(value: &str) -> Result<Vec<u8>, CertError> {
    certificates_from_header_value(value)?
        .into_iter()
        .next()
        .ok_or(CertError::Header("it holds no certificate"))
}

/// Every certificate (DER) of a forwarded header value, end entity first: one for the RFC 9440
/// form, all the PEM blocks (at most [`MAX_CHAIN_LEN`]) for the PEM forms, as AWS ALB sends
/// the whole chain in passthrough mode.
pub fn certificates_from_header_value(value: &str) -> Result<Vec<Vec<u8>>, CertError> {
    check_len(value)?;
    let value = trim_ows(value);
    if value.is_empty() {
        return Err(CertError::Header("it is empty"));
    }
    if value.starts_with(':') {
        return byte_sequence(value).map(|der| vec![der]);
    }
    if value.starts_with(PEM_BEGIN) {
        return pem_certificates(value);
    }
    if value.contains('%') {
        let decoded = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| CertError::Header("its URL-encoding does not decode to text"))?;
        let decoded = decoded.trim();
        if decoded.starts_with(PEM_BEGIN) {
            return pem_certificates(decoded);
        }
    }
    Err(CertError::Header(
        "it is neither an RFC 9440 byte sequence nor a (URL-encoded) PEM certificate",
    ))
}

/// RFC 9440 §2.3 `Client-Cert-Chain`: a structured-field list of byte sequences, the
/// intermediates (DER) in the order sent. A proxy that sends the field on several lines must
/// have them joined with commas (RFC 9110 §5.3). An empty value is an empty list.
pub fn chain_from_header_value(value: &str) -> Result<Vec<Vec<u8>>, CertError> {
    check_len(value)?;
    let value = trim_ows(value);
    if value.is_empty() {
        return Ok(Vec::new());
    }
    // Base64 has no commas, so the list members are exactly the comma-separated parts
    // (RFC 8941 §4.2.1).
    let members: Vec<&str> = value.split(',').map(trim_ows).collect();
    if members.len() > MAX_CHAIN_LEN {
        return Err(CertError::Header("the chain holds too many certificates"));
    }
    members.into_iter().map(byte_sequence).collect()
}

fn check_len(value: &str) -> Result<(), CertError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(CertError::Header("it is too long"));
    }
    Ok(())
}

/// RFC 9110 §5.5: optional whitespace is spaces and horizontal tabs.
fn trim_ows(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// RFC 8941 §4.2.7: `:` base64 `:`, here without parameters (RFC 9440 defines none), holding
/// one DER certificate.
fn byte_sequence(member: &str) -> Result<Vec<u8>, CertError> {
    let inner = member
        .strip_prefix(':')
        .and_then(|rest| rest.strip_suffix(':'))
        .ok_or(CertError::Header(
            "it is not a structured-field byte sequence (:base64:)",
        ))?;
    if inner.len() > MAX_CERT_LEN.div_ceil(3) * 4 {
        return Err(CertError::Header("a certificate is too large"));
    }
    let der = SF_BASE64
        .decode(inner)
        .map_err(|_| CertError::Header("its byte sequence is not base64"))?;
    check_certificate(der)
}

/// PEM `CERTIFICATE` blocks (RFC 7468 §5) separated by whitespace only; inside a block the
/// line breaks may have become spaces. Base64 with padding, strictly.
fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, CertError> {
    let mut rest = text;
    let mut certificates = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(certificates);
        }
        if certificates.len() == MAX_CHAIN_LEN {
            return Err(CertError::Header("the chain holds too many certificates"));
        }
        let body = rest.strip_prefix(PEM_BEGIN).ok_or(CertError::Header(
            "text other than PEM certificates surrounds the certificate",
        ))?;
        let (body, after) = body
            .split_once(PEM_END)
            .ok_or(CertError::Header("a PEM certificate has no END line"))?;
        let base64: String = body.split_ascii_whitespace().collect();
        if base64.len() > MAX_CERT_LEN.div_ceil(3) * 4 {
            return Err(CertError::Header("a certificate is too large"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(base64)
            .map_err(|_| CertError::Header("a PEM certificate is not base64"))?;
        certificates.push(check_certificate(der)?);
        rest = after;
    }
}

fn check_certificate(der: Vec<u8>) -> Result<Vec<u8>, CertError> {
    match parse_der(&der) {
        Ok(_) => Ok(der),
        Err(_) => Err(CertError::Header("it does not hold a DER X.509 certificate")),
    }
}
