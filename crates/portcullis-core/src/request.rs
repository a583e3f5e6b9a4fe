//! One typed direct request (RFC 6749 §3.2, RFC 9126 §2.1, RFC 7662 §2.1): what PAR, token,
//! userinfo and introspection are given, filled by the server's one extractor.

use std::sync::Arc;

use portcullis_cert::ClientCertificate;

use std::collections::HashSet;

use crate::error::{OAuthError, OAuthResult};

/// The listener a request came in on: the main one, or the one that asks for client
/// certificates and serves the `mtls_endpoint_aliases` (RFC 8705 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Listener {
    #[default]
    Main,
    Mtls,
}

/// A back-channel endpoint of this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    PushedAuthorization,
    Token,
    Userinfo,
    Introspection,
    Revocation,
    /// The demo protected API (a resource, not an authorization-server endpoint).
    Accounts,
    /// The demo API's payment initiation (a request with a body, for signed requests).
    Payments,
}

/// The methods the back-channel endpoints accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// Form parameters whose count and uniqueness were checked once (RFC 6749 §3.1, §3.2; issue 13
/// item 1).
#[derive(Debug, Clone, Default)]
pub struct FormParams(Vec<(String, String)>);

impl FormParams {
    pub fn parse(pairs: Vec<(String, String)>, max: usize) -> OAuthResult<Self> {
        Params::new(&pairs, max)?;
        Ok(Self(pairs))
    }

    pub fn view(&self) -> Params<'_> {
        Params::trusted(&self.0)
    }
}

/// A request to a back-channel endpoint, as received.
#[derive(Debug, Clone)]
pub struct DirectRequest {
    /// Which listener it came in on: the URL called is that listener's public URL of the
    /// endpoint (configured, never taken from `Host`), for DPoP `htu` (RFC 9449 §4.3).
    pub listener: Listener,
    pub method: Method,
    pub params: FormParams,
    /// Every `DPoP` header value (RFC 9449 §4.3 needs to see duplicates).
    pub dpop: Vec<String>,
    /// Every `Authorization` header value.
    pub authorization: Vec<String>,
    /// The client certificate of the TLS connection, or forwarded by a trusted proxy (RFC 8705).
    pub certificate: Option<Arc<ClientCertificate>>,
    /// The request's `x-fapi-interaction-id` (IA-02; minted by the server when the client sent
    /// none): what the evidence log files the request's signed messages under. Empty when
    /// unknown.
    pub interaction_id: String,
}

impl DirectRequest {
    /// A POST of `params` on the main listener, with nothing else.
    pub fn post(params: FormParams) -> Self {
        Self {
            listener: Listener::Main,
            method: Method::Post,
            params,
            dpop: Vec::new(),
            authorization: Vec::new(),
            certificate: None,
            interaction_id: String::new(),
        }
    }

    pub fn with_interaction_id(mut self, id: &str) -> Self {
        self.interaction_id = id.to_owned();
        self
    }

    pub fn with_dpop(mut self, dpop: Vec<String>) -> Self {
        self.dpop = dpop;
        self
    }

    pub fn with_authorization(mut self, authorization: Vec<String>) -> Self {
        self.authorization = authorization;
        self
    }

    pub fn with_certificate(mut self, certificate: Option<Arc<ClientCertificate>>) -> Self {
        self.certificate = certificate;
        self
    }

    pub fn on(mut self, listener: Listener) -> Self {
        self.listener = listener;
        self
    }

    pub fn with_method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
}

/// The parameters that may be sent more than once: RFC 8707 §2 `resource` (one per resource).
const REPEATABLE: [&str; 1] = ["resource"];

/// Form parameters as received; a parameter sent twice is an error (RFC 6749 §3.1, §3.2).
pub struct Params<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Params<'a> {
    /// Checks the parameter count (at most `max`: an OAuth request needs a few dozen) and
    /// refuses duplicates, in time linear in the number of parameters (issue 13 item 1: this
    /// runs before client authentication).
    pub fn new(pairs: &'a [(String, String)], max: usize) -> OAuthResult<Self> {
        if pairs.len() > max {
            return Err(too_many_params(max));
        }
        let mut seen = HashSet::with_capacity(pairs.len());
        for (k, _) in pairs {
            if !seen.insert(k.as_str()) && !REPEATABLE.contains(&k.as_str()) {
                return Err(OAuthError::invalid_request(format!(
                    "the parameter {} was sent more than once",
                    printable(k)
                )));
            }
        }
        Ok(Self { pairs })
    }

    /// A view of pairs already checked (see [`crate::request::FormParams`]).
    pub(crate) fn trusted(pairs: &'a [(String, String)]) -> Self {
        Self { pairs }
    }

    /// A parameter's value; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// Every non-empty value of a parameter that may repeat (RFC 8707 `resource`).
    pub fn get_all(&self, name: &str) -> Vec<&'a str> {
        self.pairs
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn require(&self, name: &str) -> OAuthResult<&'a str> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("the {name} parameter is required")))
    }
}

/// 400 `invalid_request` for a request with more parameters than `max`.
pub fn too_many_params(max: usize) -> OAuthError {
    OAuthError::invalid_request(format!("the request has more than {max} parameters"))
}

/// A parameter name as it may appear in an error description: bounded, printable ASCII only.
fn printable(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if name.len() > out.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(keys: impl IntoIterator<Item = String>) -> Vec<(String, String)> {
        keys.into_iter().map(|k| (k, "v".to_owned())).collect()
    }

    /// Issue 13 item 1: more parameters than the limit are refused with 400 invalid_request.
    #[test]
    fn parameter_count_is_capped() {
        let ok = pairs((0..64).map(|i| format!("k{i}")));
        assert!(Params::new(&ok, 64).is_ok());
        let many = pairs((0..18_000).map(|i| format!("k{i}")));
        let e = Params::new(&many, 64).err().expect("refused");
        assert_eq!((e.code.as_str(), e.status.code()), ("invalid_request", 400));
        assert!(e.description.contains("more than 64"), "{}", e.description);
    }

    /// RFC 6749 §3.1: a repeated parameter is refused, wherever it repeats; the name in the
    /// description is bounded and printable.
    #[test]
    fn duplicates_are_refused() {
        let mut p = pairs((0..60).map(|i| format!("k{i}")));
        p.push(("k59".into(), "x".into()));
        let e = Params::new(&p, 64).err().expect("refused");
        assert!(
            e.description.contains("k59 was sent more than once"),
            "{}",
            e.description
        );
        let long = "\u{202e}".to_owned() + &"a".repeat(5000);
        let p = pairs([long.clone(), long]);
        let e = Params::new(&p, 64).err().expect("refused");
        assert!(e.description.len() < 200, "{}", e.description);
        assert!(e.description.is_ascii());
    }
}
