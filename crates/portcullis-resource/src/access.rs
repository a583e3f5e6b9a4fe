//! Admitting a request to a protected resource (SP 5.3.4, RS-SP-01..15): the presented token,
//! its proof of possession, its binding, its scopes.
//!
//! The order matters (issue 13 item 4): every check that needs no storage runs first
//! ([`precheck`]); then the caller looks the token up; then [`binding_holds`] and
//! [`require_scopes`]; only then may a DPoP proof's `jti` be recorded as used.

use std::borrow::Cow;

use portcullis_cert::ClientCertificate;

use crate::binding::SenderConstraint;
use crate::dpop::{DpopRequest, NonceSource, ProofError, VerifiedProof, check_proof};
use crate::secure_eq;

/// The scheme an access token was presented with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// RFC 9449 §7.1: a DPoP-bound token, with a proof.
    Dpop,
    /// RFC 6750 §2.1: used for certificate-bound tokens (RFC 8705 §3).
    Bearer,
}

/// The access token of a request and the scheme it came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented<'a> {
    pub scheme: Scheme,
    pub token: &'a str,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceErrorKind {
    /// RFC 6750 §3.1 `invalid_request` (400).
    InvalidRequest,
    /// RFC 6750 §3.1 `invalid_token` (401).
    InvalidToken,
    /// RFC 6750 §3.1 `insufficient_scope` (403).
    InsufficientScope,
    /// RFC 9449 §7.1 `invalid_dpop_proof` (401).
    InvalidDpopProof,
    /// RFC 9449 §9 `use_dpop_nonce` (401) with the nonce to use.
    UseDpopNonce(String),
    /// FAPI 2.0 HTTP Signatures 5.3.1.2-3 (RS-MS-03): a missing or invalid HTTP message
    /// signature, 401 `invalid_signature` (an extension error code, RFC 6750 §6.2).
    InvalidSignature,
}

/// A refusal at a protected resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceError {
    pub kind: ResourceErrorKind,
    pub description: Cow<'static, str>,
    /// RFC 6750 §3.1: a request without any credentials gets a challenge without an error.
    pub without_credentials: bool,
}

impl ResourceError {
    fn new(kind: ResourceErrorKind, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            description: description.into(),
            without_credentials: false,
        }
    }

    pub fn invalid_token(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ResourceErrorKind::InvalidToken, d)
    }

    /// One answer whether a token is unknown, expired, revoked or bound to another key or
    /// certificate: a leaked token without its key does not even tell whether it is live.
    pub fn rejected_token() -> Self {
        Self::invalid_token("the access token is unknown, expired or revoked, or bound to another key or certificate")
    }

    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self.kind {
            ResourceErrorKind::InvalidRequest => "invalid_request",
            ResourceErrorKind::InvalidToken => "invalid_token",
            ResourceErrorKind::InsufficientScope => "insufficient_scope",
            ResourceErrorKind::InvalidDpopProof => "invalid_dpop_proof",
            ResourceErrorKind::UseDpopNonce(_) => "use_dpop_nonce",
            ResourceErrorKind::InvalidSignature => "invalid_signature",
        }
    }

    /// RFC 6750 §3.1, RFC 9449 §7.1 and §9.
    pub fn status(&self) -> u16 {
        match self.kind {
            ResourceErrorKind::InvalidRequest => 400,
            ResourceErrorKind::InsufficientScope => 403,
            _ => 401,
        }
    }
}

impl From<ProofError> for ResourceError {
    fn from(e: ProofError) -> Self {
        match e {
            ProofError::Invalid(d) => Self::new(ResourceErrorKind::InvalidDpopProof, d),
            ProofError::UseNonce(n) => Self::new(
                ResourceErrorKind::UseDpopNonce(n),
                "the DPoP proof must carry the nonce this server provides in the DPoP-Nonce header",
            ),
        }
    }
}

/// RFC 6750 §2.1 / RFC 9449 §7.1 (RS-SP-02, RS-SP-03): the token comes in exactly one
/// `Authorization` header, with the `DPoP` or `Bearer` scheme in any letter case. A token
/// anywhere else (a query, a form) is not a credential.
pub fn presented<'a>(authorization: &[&'a str]) -> Result<Presented<'a>, ResourceError> {
    let header = match authorization {
        [] => {
            return Err(ResourceError {
                without_credentials: true,
                ..ResourceError::invalid_token("an access token is required")
            });
        }
        [one] => *one,
        _ => {
            return Err(ResourceError::new(
                ResourceErrorKind::InvalidRequest,
                "more than one Authorization header was sent",
            ));
        }
    };
    let malformed = || ResourceError::invalid_token("malformed Authorization header");
    let (scheme, token) = header.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if token.is_empty() {
        return Err(malformed());
    }
    let scheme = if scheme.eq_ignore_ascii_case("DPoP") {
        Scheme::Dpop
    } else if scheme.eq_ignore_ascii_case("Bearer") {
        Scheme::Bearer
    } else {
        return Err(ResourceError::invalid_token(
            "the Authorization scheme must be DPoP or Bearer",
        ));
    };
    Ok(Presented { scheme, token })
}

/// A request to a protected resource, as received.
#[derive(Debug, Clone, Copy)]
pub struct ResourceRequest<'a> {
    pub method: &'a str,
    /// The resource's public URL (configured, never taken from `Host`), for `htu`.
    pub url: &'a str,
    /// Every `Authorization` header value.
    pub authorization: &'a [&'a str],
    /// Every `DPoP` header value.
    pub dpop: &'a [&'a str],
    /// The client certificate of the connection (or forwarded by a trusted proxy).
    pub certificate: Option<&'a ClientCertificate>,
}

/// What a request proved before its token was looked up.
#[derive(Debug, Clone)]
pub struct Prechecked<'a> {
    pub presented: Presented<'a>,
    /// The DPoP proof (every check but replay) when the scheme is DPoP.
    pub proof: Option<VerifiedProof>,
}

/// Everything that needs no token lookup (RS-SP-06..15): with the DPoP scheme, a proof for
/// this method and URL whose `ath` is the token's hash, with a current nonce when nonces are
/// required (RFC 9449 §7.1, §9); with the Bearer scheme, a client certificate, since every
/// Bearer token of a FAPI 2.0 server is certificate-bound (RFC 8705 §3).
pub fn precheck<'a>(
    req: &ResourceRequest<'a>,
    now: i64,
    nonces: &dyn NonceSource,
    nonce_required: bool,
) -> Result<Prechecked<'a>, ResourceError> {
    let presented = presented(req.authorization)?;
    let proof = match presented.scheme {
        Scheme::Dpop => {
            if req.dpop.is_empty() {
                return Err(ResourceError::new(
                    ResourceErrorKind::InvalidDpopProof,
                    "a DPoP proof is required with a DPoP-bound access token",
                ));
            }
            Some(check_proof(
                &DpopRequest {
                    headers: req.dpop,
                    method: req.method,
                    url: req.url,
                    access_token: Some(presented.token),
                },
                now,
                nonces,
                nonce_required,
            )?)
        }
        Scheme::Bearer if req.certificate.is_none() => {
            return Err(ResourceError::invalid_token(
                "no client certificate was presented: a Bearer access token here is certificate-bound \
                 (RFC 8705), and a DPoP-bound one needs the DPoP scheme",
            ));
        }
        Scheme::Bearer => None,
    };
    Ok(Prechecked { presented, proof })
}

/// RFC 9449 §7.2 / RFC 8705 §3 (RS-SP-09, RS-SP-15): the token's binding is what the request
/// proved: a DPoP-bound token with the DPoP scheme and a proof by its key; a certificate-bound
/// one with the Bearer scheme over its very certificate. Anything else (no binding, the other
/// scheme, another key or certificate) does not hold.
pub fn binding_holds(
    constraint: Option<&SenderConstraint>,
    pre: &Prechecked<'_>,
    certificate: Option<&ClientCertificate>,
) -> bool {
    match (constraint, pre.presented.scheme, &pre.proof, certificate) {
        (Some(SenderConstraint::Dpop { jkt }), Scheme::Dpop, Some(proof), _) => jkt.matches(&proof.jkt),
        (Some(SenderConstraint::Mtls { x5t_s256 }), Scheme::Bearer, None, Some(cert)) => {
            secure_eq(x5t_s256.as_str().as_bytes(), cert.thumbprint().as_bytes())
        }
        _ => false,
    }
}

/// RFC 6750 §3.1: every scope the route requires was granted, else 403 `insufficient_scope`.
pub fn require_scopes(granted: &[String], required: &[&str]) -> Result<(), ResourceError> {
    match required.iter().find(|r| !granted.iter().any(|g| g == *r)) {
        None => Ok(()),
        Some(missing) => Err(ResourceError::new(
            ResourceErrorKind::InsufficientScope,
            format!("the access token lacks the scope {missing}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::{CertificateThumbprint, JwkThumbprint};

    struct NoNonces;
    impl NonceSource for NoNonces {
        fn current(&self, _: i64) -> String {
            "n".into()
        }
        fn is_current(&self, n: &str, _: i64) -> bool {
            n == "n"
        }
        fn is_valid(&self, n: &str, _: i64) -> bool {
            n == "n"
        }
    }

    fn req<'a>(authorization: &'a [&'a str], dpop: &'a [&'a str]) -> ResourceRequest<'a> {
        ResourceRequest {
            method: "GET",
            url: "https://rs.example/api",
            authorization,
            dpop,
            certificate: None,
        }
    }

    /// RS-SP-02: the scheme in any letter case; one header; a token after it.
    #[test]
    fn presented_tokens() {
        for h in ["DPoP t", "dpop t", "DPOP t", "dPoP t"] {
            assert_eq!(presented(&[h]).unwrap().scheme, Scheme::Dpop, "{h}");
        }
        for h in ["Bearer t", "bearer t", "BEARER t"] {
            assert_eq!(presented(&[h]).unwrap().scheme, Scheme::Bearer, "{h}");
        }
        let e = presented(&[]).unwrap_err();
        assert!(e.without_credentials && e.status() == 401);
        assert_eq!(presented(&["DPoP a", "DPoP b"]).unwrap_err().status(), 400);
        for h in ["Basic x", "DPoP", "DPoP  ", "Token t"] {
            assert_eq!(presented(&[h]).unwrap_err().code(), "invalid_token", "{h}");
        }
    }

    /// RS-SP-09/15: without a proof, or without a certificate, nothing is looked up.
    #[test]
    fn prechecks() {
        let e = precheck(&req(&["DPoP t"], &[]), 0, &NoNonces, true).unwrap_err();
        assert_eq!(e.code(), "invalid_dpop_proof");
        let e = precheck(&req(&["Bearer t"], &[]), 0, &NoNonces, true).unwrap_err();
        assert_eq!(e.code(), "invalid_token");
        let e = precheck(&req(&["DPoP t"], &["not a jws"]), 0, &NoNonces, true).unwrap_err();
        assert_eq!((e.code(), e.status()), ("invalid_dpop_proof", 401));
    }

    /// RS-SP-09: a DPoP-bound token never holds with the Bearer scheme (and a
    /// certificate-bound one never with DPoP).
    #[test]
    fn bindings() {
        let jkt = JwkThumbprint::parse(&"a".repeat(43)).unwrap();
        let dpop = SenderConstraint::Dpop { jkt: jkt.clone() };
        let mtls = SenderConstraint::Mtls {
            x5t_s256: CertificateThumbprint::parse(&"b".repeat(43)).unwrap(),
        };
        let bearer = Prechecked {
            presented: Presented {
                scheme: Scheme::Bearer,
                token: "t",
            },
            proof: None,
        };
        let with_proof = Prechecked {
            presented: Presented {
                scheme: Scheme::Dpop,
                token: "t",
            },
            proof: Some(VerifiedProof {
                jkt,
                replay_key: String::new(),
                replay_until: 0,
                fresh_nonce: None,
            }),
        };
        assert!(binding_holds(Some(&dpop), &with_proof, None));
        assert!(!binding_holds(Some(&dpop), &bearer, None));
        assert!(!binding_holds(Some(&mtls), &with_proof, None));
        assert!(!binding_holds(Some(&mtls), &bearer, None), "no certificate");
        assert!(!binding_holds(None, &with_proof, None), "an unbound token never holds");
    }

    #[test]
    fn scopes() {
        let granted = vec!["openid".to_owned(), "accounts".to_owned()];
        assert!(require_scopes(&granted, &["accounts"]).is_ok());
        let e = require_scopes(&granted, &["payments"]).unwrap_err();
        assert_eq!((e.code(), e.status()), ("insufficient_scope", 403));
    }
}
