//! The pushed authorization request endpoint (RFC 9126), with the FAPI 2.0 rules applied to the
//! pushed parameters (SP 5.3.2.2, AS-SP-32..46). The checks run in the order of this table:
//!
//! | check                 | rule                                           | id        |
//! |-----------------------|------------------------------------------------|-----------|
//! | client authentication | private_key_jwt                                | AS-SP-33  |
//! | no `request_uri`      | RFC 9126 §2.1                                  | AS-SP-34  |
//! | `client_id`           | equals the authenticated client                | AS-SP-35  |
//! | `response_type`       | `code` only                                    | AS-SP-48  |
//! | `redirect_uri`        | required, exactly a registered one             | AS-SP-36/37 |
//! | PKCE                  | S256 with a well-formed challenge              | AS-SP-59  |
//! | `scope`               | known scopes                                   | RFC 6749 §3.3 |
//! | `state`, `nonce`      | kept byte-exact, bounded                       | AS-SP-56/57 |
//! | DPoP                  | proof and/or `dpop_jkt`, equal when both       | AS-SP-46  |

use crate::authorize::is_pkce_value;
use crate::client_auth::ClientAuthentication;
use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::model::{AuthorizationRequest, PushedRequest};
use crate::provider::Provider;
use crate::random::{credential, hash};

/// RFC 9126 §2.2: the request_uri prefix.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// Bounds on values we keep (SP 5.3.2.2 Note 4: state may be long; IA 2.7).
const MAX_STATE_LEN: usize = 4096;
const MAX_NONCE_LEN: usize = 512;

/// A successful PAR (RFC 9126 §2.2).
#[derive(Debug, Clone)]
pub struct PushedAuthorizationResponse {
    pub request_uri: String,
    pub expires_in: i64,
    /// A DPoP nonce to send along (RFC 9449 §8.2).
    pub dpop_nonce: Option<String>,
}

/// The HTTP request to the PAR endpoint, as the server parsed it.
pub struct PushedAuthorizationRequest<'a> {
    pub params: &'a [(String, String)],
    pub dpop: &'a [&'a str],
    pub authorization_header: bool,
}

impl Provider {
    pub async fn push_authorization_request(
        &self,
        req: &PushedAuthorizationRequest<'_>,
    ) -> OAuthResult<PushedAuthorizationResponse> {
        let params = self.params(req.params)?;
        let proof = self.precheck_dpop(req.dpop, &self.settings.endpoints.par)?;
        let client = self
            .authenticate_client(&ClientAuthentication::from_params(&params, req.authorization_header))
            .await?;
        let client_id = client.client.client_id.clone();
        let meta = &client.client.metadata;

        // RFC 9126 §2.1: request_uri must not be pushed
        if params.has("request_uri") {
            return Err(OAuthError::invalid_request(
                "request_uri must not be sent to the pushed authorization request endpoint",
            ));
        }
        if params.has("request") {
            return Err(OAuthError::invalid_request(
                "request objects (request) are not supported yet: push the parameters as form fields",
            ));
        }
        if let Some(cid) = params.get("client_id")
            && cid != client_id
        {
            return Err(OAuthError::invalid_request(
                "client_id does not match the authenticated client",
            ));
        }
        // SP 5.3.2.2-1: code flow only
        match params.get("response_type") {
            Some("code") => {}
            Some(other) => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    400,
                    format!("response_type {other} is not supported: only code"),
                ));
            }
            None => {
                return Err(OAuthError::invalid_request(
                    "the response_type parameter is required (code)",
                ));
            }
        }
        if let Some(mode) = params.get("response_mode")
            && mode != "query"
        {
            return Err(OAuthError::invalid_request(format!(
                "response_mode {mode} is not supported: only query"
            )));
        }
        // SP 5.3.2.2-6: redirect_uri required; RFC 9126 §2.4 lets us refuse unregistered ones
        let redirect_uri = params
            .get("redirect_uri")
            .ok_or_else(|| OAuthError::invalid_request("the redirect_uri parameter is required"))?;
        if !meta.redirect_uris.iter().any(|r| r == redirect_uri) {
            return Err(OAuthError::invalid_request(
                "redirect_uri is not one of the client's registered redirect URIs",
            ));
        }
        // SP 5.3.2.2-5 (AS-SP-59), RFC 7636 §4.3: PKCE with S256 only; an absent method would
        // mean plain
        let code_challenge = params.get("code_challenge").ok_or_else(|| {
            OAuthError::invalid_request("PKCE is required: send code_challenge with code_challenge_method=S256")
        })?;
        match params.get("code_challenge_method") {
            Some("S256") => {}
            Some(m) => {
                return Err(OAuthError::invalid_request(format!(
                    "code_challenge_method {m} is not allowed: use S256"
                )));
            }
            None => {
                return Err(OAuthError::invalid_request(
                    "code_challenge_method S256 is required (an absent method means plain, which is not allowed)",
                ));
            }
        }
        if code_challenge.len() != 43 || !is_pkce_value(code_challenge) {
            return Err(OAuthError::invalid_request(
                "code_challenge must be the 43-character base64url SHA-256 of the verifier",
            ));
        }
        // RFC 6749 §3.3: an unordered set of known scopes
        let mut scope: Vec<String> = Vec::new();
        for s in params.get("scope").unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
            if !self.settings.scopes_supported.iter().any(|k| k == s) {
                return Err(OAuthError::invalid_scope(format!("unknown scope {s}")));
            }
            if let Some(allowed) = &meta.scope
                && !allowed.split(' ').any(|a| a == s)
            {
                return Err(OAuthError::invalid_scope(format!(
                    "the client is not registered for scope {s}"
                )));
            }
            if !scope.iter().any(|x| x == s) {
                scope.push(s.to_owned());
            }
        }
        let state = params.get("state").map(str::to_owned);
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_LEN) {
            return Err(OAuthError::invalid_request(
                "state is too long (at most 4096 characters)",
            ));
        }
        let nonce = params.get("nonce").map(str::to_owned);
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_LEN) {
            return Err(OAuthError::invalid_request(
                "nonce is too long (at most 512 characters)",
            ));
        }
        let max_age = match params.get("max_age") {
            None => None,
            Some(v) => Some(
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| OAuthError::invalid_request("max_age must be a non-negative integer"))?,
            ),
        };
        let prompt: Vec<String> = params
            .get("prompt")
            .unwrap_or("")
            .split(' ')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        if let Some(p) = prompt
            .iter()
            .find(|p| !matches!(p.as_str(), "none" | "login" | "consent"))
        {
            return Err(OAuthError::invalid_request(format!(
                "prompt value {p} is not supported"
            )));
        }
        if params.has("authorization_details") {
            return Err(OAuthError::invalid_request(
                "authorization_details is not supported yet",
            ));
        }
        // RFC 9449 §10 (AS-SP-46): dpop_jkt and/or a proof bind the code to a key
        let dpop_jkt_param = params.get("dpop_jkt");
        if let Some(j) = dpop_jkt_param
            && (j.len() != 43 || !is_pkce_value(j))
        {
            return Err(OAuthError::invalid_request(
                "dpop_jkt must be a base64url SHA-256 JWK thumbprint",
            ));
        }
        let mut dpop_nonce = None;
        let proof_jkt = match proof {
            None => None,
            Some(proof) => {
                self.record_dpop(&proof).await?;
                dpop_nonce = proof.fresh_nonce;
                Some(proof.jkt)
            }
        };
        let dpop_jkt = match (dpop_jkt_param, proof_jkt) {
            (Some(p), Some(k)) if p != k => {
                return Err(OAuthError::invalid_request(
                    "dpop_jkt does not match the key of the DPoP proof",
                ));
            }
            (Some(p), _) => Some(p.to_owned()),
            (None, k) => k,
        };

        let request_uri = format!("{REQUEST_URI_PREFIX}{}", credential());
        let now = self.now();
        let record = PushedRequest {
            request_uri_hash: hash(&request_uri),
            request: AuthorizationRequest {
                client_id,
                redirect_uri: redirect_uri.to_owned(),
                scope,
                state,
                nonce,
                code_challenge: code_challenge.to_owned(),
                dpop_jkt,
                max_age,
                prompt,
            },
            expires_at: now + self.settings.request_uri_lifetime,
            consumed: false,
        };
        self.store.insert_pushed_request(&record).await?;
        Ok(PushedAuthorizationResponse {
            request_uri,
            expires_in: self.settings.request_uri_lifetime,
            dpop_nonce,
        })
    }
}
