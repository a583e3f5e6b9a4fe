//! One typed direct request (RFC 6749 §3.2, RFC 9126 §2.1, RFC 7662 §2.1): what PAR, token,
//! userinfo and introspection are given, filled by the server's one extractor.

use std::sync::Arc;

use portcullis_cert::ClientCertificate;

use crate::error::OAuthResult;
use crate::provider::Params;

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
        }
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
