//! HTTP Message Signatures (RFC 9421) and Content-Digest (RFC 9530) for Portcullis, profiled for
//! the FAPI 2.0 HTTP Signatures draft (HS -01).
//!
//! * [`content_digest`] / [`check_content_digest`]: RFC 9530 `Content-Digest`.
//! * [`ComponentId`], [`SignatureParams`], [`signature_base`], [`parse_signatures`]: the RFC 9421
//!   building blocks (components §2, signature parameters §2.3, signature base §2.5, the
//!   `Signature-Input` and `Signature` fields §4).
//! * [`verify_request`] / [`sign_response`] for the resource server (RS-MS-02..12) and
//!   [`sign_request`] / [`verify_response`] for the client (CL-MS-07/08).
//!
//! Only FAPI algorithms exist (SP 5.4.1): ES256 (`ecdsa-p256-sha256`), EdDSA (`ed25519`) and PS256
//! (when the key decides, RFC 9421 §3.3.7). All cryptography is `portcullis-jose`'s. Nothing here
//! reads a clock: callers pass `now` in UNIX seconds.
#![forbid(unsafe_code)]

mod alg;
mod components;
mod digest;
mod error;
mod fapi;
mod params;
mod structured;

pub use alg::{ALG_ECDSA_P256_SHA256, ALG_ED25519, REFUSED_REGISTERED};
pub use components::{ComponentId, MessageView, RequestView, ResponseView};
pub use digest::{check_content_digest, content_digest};
pub use error::SigError;
pub use fapi::{
    DEFAULT_LABEL, RequestPolicy, ResponsePolicy, SignOptions, SignedMessage, TAG_REQUEST, TAG_RESPONSE,
    VerifiedSignature, sign_request, sign_request_with, sign_response, sign_response_binding_digest,
    sign_response_with, verify_request, verify_response, verify_with_base,
};
/// The `http` crate whose types the views borrow.
pub use http;
pub use params::{SignatureEntry, SignatureParams, parse_signatures};

/// The `@target-uri` (RFC 9421 §2.2.2) of a request received for `url` (the resource's public
/// URL, from configuration) with the raw query `query`: bytes outside ASCII and controls in the
/// query are percent-encoded, as a client builds the URI it signs, so that a request whose
/// query HTTP parsers let through unencoded still has a well-formed target.
pub fn target_uri(url: &str, query: Option<&str>) -> String {
    match query {
        Some(q) => format!(
            "{url}?{}",
            percent_encoding::utf8_percent_encode(q, percent_encoding::CONTROLS)
        ),
        None => url.to_owned(),
    }
}

/// The signature base (RFC 9421 §2.5) of `message` for `params`: one line per covered component
/// (`"<identifier>": <value>`), then `"@signature-params": <serialised params>`, exactly as in
/// `Signature-Input`. Public for tests and evidence logs.
pub fn signature_base(message: &MessageView<'_>, params: &SignatureParams) -> Result<String, SigError> {
    params.signature_base(message)
}
