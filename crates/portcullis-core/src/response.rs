//! The authorization response (RFC 6749 §4.1.2, RFC 9207 §2) as a typed value, rendered by the
//! response mode the request asked for (OAuth 2.0 Multiple Response Type Encoding Practices §2):
//! `query`, or JARM's `query.jwt` / `jwt` (FAPI 2.0 Message Signing, AS-MS-11..15), where the
//! only parameter is a `response` JWT the server signs.

/// How the authorization response reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    /// Parameters in the redirect URI's query (the default of the code flow).
    #[default]
    Query,
    /// JARM §2.3.1: a signed `response` JWT in the query.
    #[serde(rename = "query.jwt")]
    QueryJwt,
    /// JARM §2.3.4: `jwt`, which for the code flow means `query.jwt`.
    Jwt,
}

impl ResponseMode {
    /// Every mode this server implements, in discovery order (`response_modes_supported`).
    pub const SUPPORTED: [ResponseMode; 3] = [ResponseMode::Query, ResponseMode::QueryJwt, ResponseMode::Jwt];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::QueryJwt => "query.jwt",
            Self::Jwt => "jwt",
        }
    }

    /// The mode named `name`, if this server renders it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|m| m.as_str() == name)
    }

    pub fn supported_names() -> Vec<&'static str> {
        Self::SUPPORTED.iter().map(|m| m.as_str()).collect()
    }
}

/// Where an authorization response goes: a redirect URI already verified against the client's
/// registration (AS-SP-36/37), the request's `state`, and the response mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseTarget {
    /// The client the response is for (JARM `aud`).
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub mode: ResponseMode,
    /// The interaction (PAR's `x-fapi-interaction-id`) the evidence log files a signed
    /// response under; empty when unknown.
    pub interaction_id: String,
}

/// What the authorization endpoint answers the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationResponse {
    /// RFC 6749 §4.1.2: the authorization code.
    Code { target: ResponseTarget, code: String },
    /// RFC 6749 §4.1.2.1: an error the client may see.
    Error {
        target: ResponseTarget,
        error: &'static str,
        description: String,
    },
}

impl AuthorizationResponse {
    pub fn target(&self) -> &ResponseTarget {
        match self {
            Self::Code { target, .. } | Self::Error { target, .. } => target,
        }
    }

    /// Whether the response goes as a signed JWT (JARM).
    pub fn is_signed(&self) -> bool {
        matches!(self.target().mode, ResponseMode::QueryJwt | ResponseMode::Jwt)
    }

    /// JARM §2.1 (AS-MS-11): the claims of the `response` JWT: `iss`, `aud` (the client),
    /// `exp`, and every response parameter (`code` and `state`, or `error`,
    /// `error_description` and `state`).
    pub fn jwt_claims(&self, issuer: &str, exp: i64) -> serde_json::Map<String, serde_json::Value> {
        let target = self.target();
        let mut c = serde_json::Map::new();
        c.insert("iss".into(), issuer.into());
        c.insert("aud".into(), target.client_id.as_str().into());
        c.insert("exp".into(), exp.into());
        match self {
            Self::Code { code, .. } => {
                c.insert("code".into(), code.as_str().into());
            }
            Self::Error { error, description, .. } => {
                c.insert("error".into(), (*error).into());
                c.insert("error_description".into(), description.as_str().into());
            }
        }
        if let Some(s) = &target.state {
            c.insert("state".into(), s.as_str().into());
        }
        c
    }

    /// JARM §2.3.1 (AS-MS-12): the redirect with nothing but `response` beside the redirect
    /// URI's own query (`iss` is inside the JWT).
    pub fn signed_redirect_url(&self, response_jwt: &str) -> String {
        append_query(&self.target().redirect_uri, &[("response", response_jwt)])
    }

    /// The URL the browser is sent to in the `query` mode, with `iss` (RFC 9207 §2) and
    /// `state` when the request had one.
    pub fn redirect_url(&self, issuer: &str) -> String {
        let target = self.target();
        let mut params: Vec<(&str, &str)> = Vec::with_capacity(4);
        match self {
            Self::Code { code, .. } => params.push(("code", code)),
            Self::Error { error, description, .. } => {
                params.push(("error", error));
                params.push(("error_description", description));
            }
        }
        if let Some(s) = &target.state {
            params.push(("state", s));
        }
        params.push(("iss", issuer));
        append_query(&target.redirect_uri, &params)
    }
}

/// Appends parameters to a registered redirect URI, keeping its own query (RFC 6749 §3.1.2).
pub fn append_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    let encoded = ser.finish();
    let sep = if !uri.contains('?') {
        "?"
    } else if uri.ends_with('?') || uri.ends_with('&') {
        ""
    } else {
        "&"
    };
    format!("{uri}{sep}{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_query_is_kept() {
        assert_eq!(
            append_query(
                "https://c.example/cb?dummy1=lorem&dummy2=ipsum",
                &[("code", "x"), ("state", "a b")]
            ),
            "https://c.example/cb?dummy1=lorem&dummy2=ipsum&code=x&state=a+b"
        );
        assert_eq!(
            append_query("https://c.example/cb", &[("code", "x")]),
            "https://c.example/cb?code=x"
        );
    }

    /// RFC 9207 §2: `iss` in every response, success or error; `state` echoed.
    #[test]
    fn responses_carry_iss_and_state() {
        let target = ResponseTarget {
            client_id: "c1".into(),
            redirect_uri: "https://c.example/cb".into(),
            state: Some("s1".into()),
            mode: ResponseMode::Query,
            interaction_id: String::new(),
        };
        let ok = AuthorizationResponse::Code {
            target: target.clone(),
            code: "c".into(),
        };
        assert_eq!(
            ok.redirect_url("https://as.example"),
            "https://c.example/cb?code=c&state=s1&iss=https%3A%2F%2Fas.example"
        );
        let e = AuthorizationResponse::Error {
            target,
            error: "invalid_request",
            description: "bad".into(),
        };
        assert_eq!(
            e.redirect_url("https://as.example"),
            "https://c.example/cb?error=invalid_request&error_description=bad&state=s1&iss=https%3A%2F%2Fas.example"
        );
    }

    #[test]
    fn response_modes() {
        assert_eq!(ResponseMode::from_name("query"), Some(ResponseMode::Query));
        assert_eq!(ResponseMode::from_name("fragment"), None);
        assert_eq!(ResponseMode::from_name("jwt"), Some(ResponseMode::Jwt));
        assert_eq!(ResponseMode::from_name("query.jwt"), Some(ResponseMode::QueryJwt));
        assert_eq!(ResponseMode::from_name("form_post.jwt"), None);
    }
}
