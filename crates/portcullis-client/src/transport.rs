//! The HTTP exchange under every client operation, as a trait so that protocol logic (the DPoP
//! nonce retry, error mapping) can be tested with a scripted server, and a load driver can bring
//! its own connection handling.

use std::time::Duration;

use async_trait::async_trait;
use portcullis_httpsig::http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::ClientError;

/// One HTTP request, fully built.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// One HTTP response, read whole.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            url: url.into(),
            headers: HeaderMap::new(),
            body: Vec::new(),
        }
    }

    /// A POST of `application/x-www-form-urlencoded` parameters.
    pub fn form(url: impl Into<String>, params: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish()
            .into_bytes();
        let mut headers = HeaderMap::new();
        headers.insert(
            portcullis_httpsig::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        Self {
            method: Method::POST,
            url: url.into(),
            headers,
            body,
        }
    }

    /// A POST of a JSON document.
    pub fn json(url: impl Into<String>, value: &serde_json::Value) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            portcullis_httpsig::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Self {
            method: Method::POST,
            url: url.into(),
            headers,
            body: value.to_string().into_bytes(),
        }
    }

    /// Sets a header; a value that is not a valid header value is a usage error.
    pub fn header(mut self, name: &'static str, value: &str) -> Result<Self, ClientError> {
        let v = HeaderValue::from_str(value)
            .map_err(|_| ClientError::Usage(format!("{name}: not a valid header value")))?;
        self.headers.insert(HeaderName::from_static(name), v);
        Ok(self)
    }
}

impl HttpResponse {
    /// A header's value as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends one request and reads the whole response. Redirects are never followed.
#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, ClientError>;
}

/// Which certificate authorities a [`ReqwestTransport`] trusts.
#[derive(Debug, Clone, Default)]
pub enum TlsTrust {
    /// The platform's roots (as bundled with reqwest's rustls configuration).
    #[default]
    System,
    /// Only the CA certificates in this PEM text (a development CA such as Portcullis'
    /// `tls/ca.pem`).
    Only(Vec<u8>),
}

/// The largest response body read (metadata, JWKS, tokens and API answers are far smaller).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A [`Transport`] on reqwest with rustls, https only, no redirects, no proxies from the
/// environment.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    pub fn new(trust: &TlsTrust) -> Result<Self, ClientError> {
        let builder = builder(trust)?;
        let client = builder
            .build()
            .map_err(|e| ClientError::Usage(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client })
    }
}

/// The reqwest configuration every HTTP client of this crate starts from.
pub(crate) fn builder(trust: &TlsTrust) -> Result<reqwest::ClientBuilder, ClientError> {
    let mut builder = reqwest::Client::builder()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30));
    if let TlsTrust::Only(pem) = trust {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| ClientError::Usage(format!("the CA file is not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(ClientError::Usage("the CA file holds no certificate".into()));
        }
        builder = builder.tls_certs_only(certs);
    }
    Ok(builder)
}

#[async_trait]
impl Transport for ReqwestTransport {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, ClientError> {
        let url = request.url.clone();
        let response = self
            .client
            .request(request.method, &request.url)
            .headers(request.headers)
            .body(request.body)
            .send()
            .await
            .map_err(|e| ClientError::Transport {
                url: url.clone(),
                detail: error_chain(&e.without_url()),
            })?;
        read_response(response, &url).await
    }
}

/// Reads a reqwest response whole, within [`MAX_RESPONSE_BYTES`].
pub(crate) async fn read_response(mut response: reqwest::Response, url: &str) -> Result<HttpResponse, ClientError> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| ClientError::Transport {
        url: url.to_owned(),
        detail: error_chain(&e.without_url()),
    })? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ClientError::Transport {
                url: url.to_owned(),
                detail: format!("the response is larger than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse { status, headers, body })
}

/// An error with its causes, so that "error sending request" says which (TLS, refused, ...).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
