//! The FAPI 2.0 HTTP Signatures profile (HS draft -01): signing and verifying resource requests
//! (HS 5.3.1) and responses (HS 5.3.2).

use base64::Engine as _;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use portcullis_jose::{Algorithm, JoseError, PublicJwk, SigningKey};

use crate::alg::{registry_name, resolve};
use crate::components::{ComponentId, MessageView, RequestView, ResponseView};
use crate::params::{SignatureEntry, SignatureParams, parse_signatures};
use crate::structured::{combined_field, parse_dictionary};
use crate::{SigError, check_content_digest, content_digest};

/// HS 5.3.1.1-7: the `tag` of a FAPI resource request signature.
pub const TAG_REQUEST: &str = "fapi-2-request";
/// HS 5.3.2.1-6: the `tag` of a FAPI resource response signature.
pub const TAG_RESPONSE: &str = "fapi-2-response";
/// The label we sign under (HS examples use `sig1`).
pub const DEFAULT_LABEL: &str = "sig1";

/// How fresh a signature's `created` must be (HS 5.3.1.2-6, RS-MS-06; the same window is used by
/// clients for responses, CL-MS-08).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPolicy {
    /// Oldest accepted `created`, in seconds before now. HS 5.3.1.2-6 recommends 1 minute.
    pub max_age_secs: i64,
    /// Accepted clock skew: how far `created` may lie in the future, in seconds.
    pub max_future_secs: i64,
}

/// The same freshness rules, applied by a client to a response (CL-MS-08).
pub type ResponsePolicy = RequestPolicy;

impl Default for RequestPolicy {
    fn default() -> Self {
        Self {
            max_age_secs: 60,
            max_future_secs: 5,
        }
    }
}

/// Options for signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOptions {
    /// The signature label; `sig1` by default.
    pub label: String,
    /// Add the `alg` parameter when the key's algorithm has an RFC 9421 registry name
    /// (`ecdsa-p256-sha256`, `ed25519`), for libraries that need it. PS256 has no registry name,
    /// so `alg` stays absent for RSA keys. Off by default: the key determines the algorithm
    /// (RFC 9421 §3.3.7).
    pub include_alg: bool,
}

impl Default for SignOptions {
    fn default() -> Self {
        Self {
            label: DEFAULT_LABEL.to_owned(),
            include_alg: false,
        }
    }
}

/// A signature that verified: what an evidence log needs to re-verify it later
/// ([`crate::verify_with_base`]) and what a response needs for its `req` components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    label: String,
    keyid: String,
    algorithm: Algorithm,
    base: String,
    signature: Vec<u8>,
    signature_params: String,
    created: i64,
}

impl VerifiedSignature {
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// The JWS algorithm the signature verified under.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The signature base (RFC 9421 §2.5) exactly as verified.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The raw signature bytes.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The serialised signature parameters (the `Signature-Input` member value).
    pub fn signature_params(&self) -> &str {
        &self.signature_params
    }

    pub fn created(&self) -> i64 {
        self.created
    }
}

/// A signature we made, for evidence logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedMessage {
    pub label: String,
    pub keyid: String,
    pub algorithm: Algorithm,
    /// The signature base (RFC 9421 §2.5) that was signed.
    pub base: String,
    pub signature: Vec<u8>,
    /// The serialised signature parameters (the `Signature-Input` member value).
    pub signature_params: String,
}

/// Verifies the FAPI signature on a resource request (HS 5.3.1.2, RS-MS-02..08).
///
/// Exactly one signature must have `tag="fapi-2-request"` (HS 5.3.1.2-4). It must cover
/// `"@method"`, `"@target-uri"` and `"authorization"` (5.3.1.2-5), `"dpop"` when a DPoP header is
/// present (5.3.1.2-7) and `"content-digest"` when the body is non-empty (5.3.1.2-8); the
/// Content-Digest is then recomputed over `body` (RS-MS-08). `created` is required and must lie
/// within `policy` (5.3.1.2-6); `expires`, if present, must not have passed (RFC 9421 §3.2);
/// `keyid` must name a key that `keys` knows (5.3.1.2-1/-2). Any failure is an HTTP 401 (5.3.1.2-3).
pub fn verify_request(
    req: &RequestView<'_>,
    body: &[u8],
    now: i64,
    policy: &RequestPolicy,
    keys: &dyn Fn(&str) -> Option<PublicJwk>,
) -> Result<VerifiedSignature, SigError> {
    let entry = select(parse_signatures(req.headers)?, TAG_REQUEST)?;
    let mut required = vec![plain("@method")?, plain("@target-uri")?, plain("authorization")?];
    if req.headers.contains_key("dpop") {
        required.push(plain("dpop")?);
    }
    if !body.is_empty() {
        required.push(plain("content-digest")?);
    }
    require_covered(&entry.params, &required)?;
    check_body_digest(req.headers, body)?;
    verify_entry(entry, &MessageView::Request(*req), now, policy, keys)
}

/// A resource server's response signature (HS 5.3.2.1-2) for a request that had a body
/// (`request_body_present`): the request's `"content-digest";req` is covered when the request
/// sent a `Content-Digest` that can be a component, and left out (rather than failing the
/// answer) when it sent none or a malformed one. `resp_headers` changes only on success.
#[allow(clippy::too_many_arguments)]
pub fn sign_response_binding_digest(
    resp_headers: &mut HeaderMap,
    status: u16,
    body: &[u8],
    request: &RequestView<'_>,
    request_body_present: bool,
    request_signature: Option<&VerifiedSignature>,
    key: &SigningKey,
    now: i64,
) -> Result<SignedMessage, SigError> {
    let with_digest = request_body_present && request.headers.contains_key("content-digest");
    let mut headers = resp_headers.clone();
    let signed = match sign_response(
        &mut headers,
        status,
        body,
        request,
        with_digest,
        request_signature,
        key,
        now,
    ) {
        Err(_) if with_digest => {
            headers = resp_headers.clone();
            sign_response(&mut headers, status, body, request, false, request_signature, key, now)
        }
        other => other,
    }?;
    *resp_headers = headers;
    Ok(signed)
}

/// Signs a resource response (HS 5.3.2.1, RS-MS-09..12) under label `sig1`.
///
/// Adds `Content-Digest` (sha-256) when `body` is non-empty, then `Signature-Input` and
/// `Signature` covering `"@status"`, `"content-digest"` (with a body), the request's
/// `"@method";req` and `"@target-uri";req`, `"content-digest";req` when the request had a body,
/// and, when the request was signed, `"signature";req;key="<label>"` and
/// `"signature-input";req;key="<label>"` (HS 5.3.2.1-2/-3). Parameters: `created`, `keyid` (the
/// key's kid) and `tag="fapi-2-response"`.
#[allow(clippy::too_many_arguments)]
pub fn sign_response(
    resp_headers: &mut HeaderMap,
    status: u16,
    body: &[u8],
    request: &RequestView<'_>,
    request_body_present: bool,
    request_signature: Option<&VerifiedSignature>,
    key: &SigningKey,
    now: i64,
) -> Result<SignedMessage, SigError> {
    sign_response_with(
        resp_headers,
        status,
        body,
        request,
        request_body_present,
        request_signature,
        key,
        now,
        &SignOptions::default(),
    )
}

/// [`sign_response`] with explicit [`SignOptions`].
#[allow(clippy::too_many_arguments)]
pub fn sign_response_with(
    resp_headers: &mut HeaderMap,
    status: u16,
    body: &[u8],
    request: &RequestView<'_>,
    request_body_present: bool,
    request_signature: Option<&VerifiedSignature>,
    key: &SigningKey,
    now: i64,
    options: &SignOptions,
) -> Result<SignedMessage, SigError> {
    if !body.is_empty() {
        // HS 5.3.2.1-7 / RS-MS-12.
        set_header(resp_headers, "content-digest", &content_digest(body))?;
    }
    let components = response_components(
        !body.is_empty(),
        request_body_present,
        request_signature.map(VerifiedSignature::label),
    )?;
    let params = profile_params(components, now, key, options, TAG_RESPONSE)?;
    let message = MessageView::Response {
        response: ResponseView {
            status,
            headers: resp_headers,
        },
        request: Some(*request),
    };
    let base = params.signature_base(&message)?;
    attach(resp_headers, base, params.serialize(), key, options)
}

/// Signs a resource request as a FAPI client (HS 5.3.1.1, CL-MS-07) under label `sig1`.
///
/// Adds `Content-Digest` when `body` is non-empty, then covers `"@method"`, `"@target-uri"`,
/// `"authorization"`, `"dpop"` (if that header is present) and `"content-digest"` (with a body),
/// with `created`, `keyid` and `tag="fapi-2-request"`.
pub fn sign_request(
    headers: &mut HeaderMap,
    method: &str,
    target_uri: &str,
    body: &[u8],
    key: &SigningKey,
    now: i64,
) -> Result<SignedMessage, SigError> {
    sign_request_with(headers, method, target_uri, body, key, now, &SignOptions::default())
}

/// [`sign_request`] with explicit [`SignOptions`].
pub fn sign_request_with(
    headers: &mut HeaderMap,
    method: &str,
    target_uri: &str,
    body: &[u8],
    key: &SigningKey,
    now: i64,
    options: &SignOptions,
) -> Result<SignedMessage, SigError> {
    if !body.is_empty() {
        // HS 5.3.1.1-5.
        set_header(headers, "content-digest", &content_digest(body))?;
    }
    let mut components = vec![plain("@method")?, plain("@target-uri")?, plain("authorization")?];
    if headers.contains_key("dpop") {
        components.push(plain("dpop")?);
    }
    if !body.is_empty() {
        components.push(plain("content-digest")?);
    }
    let params = profile_params(components, now, key, options, TAG_REQUEST)?;
    let message = MessageView::Request(RequestView {
        method,
        target_uri,
        headers,
    });
    let base = params.signature_base(&message)?;
    attach(headers, base, params.serialize(), key, options)
}

/// Verifies the FAPI signature on a resource response as a client (HS 5.3.2.2, CL-MS-08).
///
/// Exactly one signature must have `tag="fapi-2-response"`; it must cover `"@status"`,
/// `"content-digest"` when the body is non-empty (recomputed over `body`), `"@method";req`,
/// `"@target-uri";req`, `"content-digest";req` when the request had a body, and, when the request
/// was signed under `request_was_signed_with`, `"signature";req;key=…` and
/// `"signature-input";req;key=…`. `created` must lie within `policy`; `keyid` must be known.
/// `request` must be the request as sent, including its `Signature`/`Signature-Input`.
#[allow(clippy::too_many_arguments)]
pub fn verify_response(
    resp: &ResponseView<'_>,
    body: &[u8],
    request: &RequestView<'_>,
    request_body_present: bool,
    request_was_signed_with: Option<&str>,
    now: i64,
    policy: &ResponsePolicy,
    keys: &dyn Fn(&str) -> Option<PublicJwk>,
) -> Result<VerifiedSignature, SigError> {
    let entry = select(parse_signatures(resp.headers)?, TAG_RESPONSE)?;
    let required = response_components(!body.is_empty(), request_body_present, request_was_signed_with)?;
    require_covered(&entry.params, &required)?;
    check_body_digest(resp.headers, body)?;
    let message = MessageView::Response {
        response: *resp,
        request: Some(*request),
    };
    verify_entry(entry, &message, now, policy, keys)
}

/// Re-verifies a stored signature base (evidence logs): `signature` over `base` with `key`
/// under `alg`.
pub fn verify_with_base(alg: Algorithm, key: &PublicJwk, base: &str, signature: &[u8]) -> Result<(), SigError> {
    key.verify(alg, base.as_bytes(), signature).map_err(|e| match e {
        JoseError::BadSignature => SigError::BadSignature,
        _ => SigError::AlgorithmKeyMismatch {
            alg: alg.to_string(),
            key: "supplied",
        },
    })
}

/// HS 5.3.1.2-4 / 5.3.2.2: the one signature with the profile tag.
fn select(entries: Vec<SignatureEntry>, tag: &'static str) -> Result<SignatureEntry, SigError> {
    let mut tagged: Vec<SignatureEntry> = entries.into_iter().filter(|e| e.params.tag() == Some(tag)).collect();
    match tagged.len() {
        0 => Err(SigError::NoTaggedSignature(tag)),
        1 => Ok(tagged.remove(0)),
        count => Err(SigError::AmbiguousTag { tag, count }),
    }
}

fn require_covered(params: &SignatureParams, required: &[ComponentId]) -> Result<(), SigError> {
    match required.iter().find(|c| !params.covers(&c.to_string())) {
        Some(missing) => Err(SigError::NotCovered(missing.to_string())),
        None => Ok(()),
    }
}

/// RS-MS-08 / CL-MS-08: a present Content-Digest must match the body, and a body needs one.
fn check_body_digest(headers: &HeaderMap, body: &[u8]) -> Result<(), SigError> {
    let value = combined_field(headers, "content-digest").map_err(|e| SigError::malformed("Content-Digest", e))?;
    match value {
        Some(v) => check_content_digest(&v, body),
        None if body.is_empty() => Ok(()),
        None => Err(SigError::MissingField("Content-Digest")),
    }
}

/// The checks every profile signature goes through, then the signature itself.
fn verify_entry(
    entry: SignatureEntry,
    message: &MessageView<'_>,
    now: i64,
    policy: &RequestPolicy,
    keys: &dyn Fn(&str) -> Option<PublicJwk>,
) -> Result<VerifiedSignature, SigError> {
    let params = &entry.params;
    // HS 5.3.1.2-6: created required and fresh.
    let created = params.created().ok_or(SigError::CreatedMissing)?;
    let age = now.saturating_sub(created);
    if age > policy.max_age_secs {
        return Err(SigError::CreatedTooOld {
            age,
            max: policy.max_age_secs,
        });
    }
    if age < -policy.max_future_secs {
        return Err(SigError::CreatedInFuture {
            ahead: age.saturating_neg(),
            max: policy.max_future_secs,
        });
    }
    // RFC 9421 §2.3: expires is a hard limit.
    if let Some(expires) = params.expires()
        && now > expires
    {
        return Err(SigError::Expired(now.saturating_sub(expires)));
    }
    // HS 5.3.1.2-1/-2: the key comes from the keyid.
    let keyid = params.keyid().ok_or(SigError::KeyIdMissing)?;
    let key = keys(keyid).ok_or_else(|| SigError::UnknownKeyId(keyid.to_owned()))?;
    // RFC 9421 §3.2 step 6 under SP 5.4.1.
    let algorithm = resolve(params.alg(), &key)?;
    let base = params.signature_base(message)?;
    verify_with_base(algorithm, &key, &base, &entry.signature)?;
    Ok(VerifiedSignature {
        keyid: keyid.to_owned(),
        algorithm,
        base,
        signature_params: params.serialize(),
        created,
        label: entry.label,
        signature: entry.signature,
    })
}

/// HS 5.3.2.1-1/-2/-3/-7: the components of a FAPI response signature.
fn response_components(
    body: bool,
    request_body: bool,
    request_label: Option<&str>,
) -> Result<Vec<ComponentId>, SigError> {
    let mut out = vec![plain("@status")?];
    if body {
        out.push(plain("content-digest")?);
    }
    out.push(plain("@method")?.with_req()?);
    out.push(plain("@target-uri")?.with_req()?);
    if request_body {
        out.push(plain("content-digest")?.with_req()?);
    }
    if let Some(label) = request_label {
        out.push(plain("signature")?.with_req()?.with_key(label)?);
        out.push(plain("signature-input")?.with_req()?.with_key(label)?);
    }
    Ok(out)
}

fn profile_params(
    components: Vec<ComponentId>,
    now: i64,
    key: &SigningKey,
    options: &SignOptions,
    tag: &str,
) -> Result<SignatureParams, SigError> {
    let mut params = SignatureParams::new(components)?
        .with_created(now)?
        .with_keyid(key.kid())?;
    if options.include_alg
        && let Some(name) = registry_name(key.algorithm())
    {
        params = params.with_alg(name)?;
    }
    params.with_tag(tag)
}

/// Signs `base` and appends `Signature-Input` / `Signature` members under the label
/// (RFC 9421 §4.1, §4.2), refusing a label already in use.
fn attach(
    headers: &mut HeaderMap,
    base: String,
    signature_params: String,
    key: &SigningKey,
    options: &SignOptions,
) -> Result<SignedMessage, SigError> {
    let label = options.label.as_str();
    if sfv::KeyRef::from_str(label).is_err() {
        return Err(SigError::malformed(
            "Signature-Input",
            format!("{label:?} is not a valid label"),
        ));
    }
    for (field, name) in [("Signature-Input", "signature-input"), ("Signature", "signature")] {
        if let Some(existing) = combined_field(headers, name).map_err(|e| SigError::malformed(field, e))?
            && parse_dictionary(field, &existing)?.contains_key(label)
        {
            return Err(SigError::DuplicateLabel {
                field,
                label: label.to_owned(),
            });
        }
    }
    let signature = key.sign_raw(base.as_bytes()).map_err(SigError::Signing)?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&signature);
    append_header(headers, "signature-input", &format!("{label}={signature_params}"))?;
    append_header(headers, "signature", &format!("{label}=:{encoded}:"))?;
    Ok(SignedMessage {
        label: label.to_owned(),
        keyid: key.kid().to_owned(),
        algorithm: key.algorithm(),
        base,
        signature,
        signature_params,
    })
}

fn plain(name: &str) -> Result<ComponentId, SigError> {
    ComponentId::new(name)
}

fn set_header(headers: &mut HeaderMap, name: &'static str, value: &str) -> Result<(), SigError> {
    let value = HeaderValue::from_str(value).map_err(|_| SigError::malformed("header", format!("bad {name} value")))?;
    headers.insert(HeaderName::from_static(name), value);
    Ok(())
}

fn append_header(headers: &mut HeaderMap, name: &'static str, value: &str) -> Result<(), SigError> {
    let value = HeaderValue::from_str(value).map_err(|_| SigError::malformed("header", format!("bad {name} value")))?;
    headers.append(HeaderName::from_static(name), value);
    Ok(())
}
