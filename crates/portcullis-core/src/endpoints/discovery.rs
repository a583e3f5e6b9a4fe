//! Authorization server metadata (RFC 8414, OIDC Discovery §3), listing exactly what this server
//! implements (AS-SP-12..21) and nothing it does not.

use portcullis_jose::Algorithm;
use serde_json::{Value, json};

use crate::provider::Provider;
use crate::response::ResponseMode;

impl Provider {
    /// SP 5.3.2.1-6 (AS-SP-19): the client authentication methods, at the token, PAR and
    /// introspection endpoints alike; `tls_client_auth` only when a client CA is trusted.
    pub fn auth_methods_supported(&self) -> Vec<&'static str> {
        let mut m = vec!["private_key_jwt"];
        if self.settings.client_cas.is_some() {
            m.push("tls_client_auth");
        }
        m.push("self_signed_tls_client_auth");
        m
    }
}

impl Provider {
    /// The protocol's claims, then every claim a defined scope releases (issue 17 item 6).
    fn claims_supported(&self) -> Vec<&str> {
        let mut c = vec!["sub", "iss", "aud", "azp", "exp", "iat", "auth_time", "nonce"];
        for d in &self.settings.scopes {
            if !self.settings.scopes_supported.iter().any(|s| s == d.name.as_str()) {
                continue;
            }
            for claim in &d.claims {
                if !c.contains(&claim.as_str()) {
                    c.push(claim);
                }
            }
        }
        c
    }

    pub fn metadata(&self) -> Value {
        let s = &self.settings;
        let e = &s.endpoints;
        let m = &s.mtls_endpoints;
        let algs: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
        let mut m = json!({
            "issuer": s.issuer,
            "authorization_endpoint": e.authorization,
            "token_endpoint": e.token,
            "pushed_authorization_request_endpoint": e.par,
            "require_pushed_authorization_requests": true,
            "userinfo_endpoint": e.userinfo,
            "jwks_uri": e.jwks,
            "registration_endpoint": e.registration,
            "introspection_endpoint": e.introspection,
            "end_session_endpoint": e.end_session,
            "revocation_endpoint": e.revocation,
            "revocation_endpoint_auth_methods_supported": self.auth_methods_supported(),
            "revocation_endpoint_auth_signing_alg_values_supported": algs,
            "introspection_endpoint_auth_methods_supported": self.auth_methods_supported(),
            "introspection_endpoint_auth_signing_alg_values_supported": algs,
            // RFC 9701 §7 (AS-MS-16)
            "introspection_signing_alg_values_supported": algs,
            "scopes_supported": s.scopes_supported,
            "response_types_supported": ["code"],
            "response_modes_supported": ResponseMode::supported_names(),
            // JARM §4 (AS-MS-15)
            "authorization_signing_alg_values_supported": algs,
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "token_endpoint_auth_methods_supported": self.auth_methods_supported(),
            // RFC 8705 §3.3 (AS-SP-18), §5 (AS-SP-88): certificate-bound tokens, and where the
            // endpoints that read a client certificate live
            "tls_client_certificate_bound_access_tokens": true,
            "mtls_endpoint_aliases": {
                "token_endpoint": m.token,
                "pushed_authorization_request_endpoint": m.par,
                "userinfo_endpoint": m.userinfo,
                "introspection_endpoint": m.introspection,
                "revocation_endpoint": m.revocation,
            },
            "token_endpoint_auth_signing_alg_values_supported": algs,
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
            "dpop_signing_alg_values_supported": algs,
            "id_token_signing_alg_values_supported": algs,
            "prompt_values_supported": ["none", "login", "consent"],
            "claims_supported": self.claims_supported(),
            // OIDC Discovery §3: the languages of the login and consent pages (issue 17 item 8)
            "ui_locales_supported": s.ui_locales_supported,
            "claims_parameter_supported": false,
            // RFC 9101 through PAR (FAPI 2.0 Message Signing): request objects are verified
            "request_parameter_supported": true,
            "request_object_signing_alg_values_supported": algs,
            "require_signed_request_object": s.require_signed_request_object,
            // request_uri_parameter_supported defaults to true, which holds for PAR request_uris
            // (OIDC Discovery §3)
        });
        // where a client finds the demo protected API (INTERFACE.md), on both listeners
        if s.demo_api {
            m["portcullis_demo_api"] = json!({
                "accounts_endpoint": e.accounts,
                "mtls_accounts_endpoint": s.mtls_endpoints.accounts,
                "payments_endpoint": e.payments,
                "mtls_payments_endpoint": s.mtls_endpoints.payments,
                "scope": crate::settings::DEMO_API_SCOPE,
                "payments_scope": crate::settings::DEMO_API_PAYMENTS_SCOPE,
                "resource": s.demo_api_resource(),
                // FAPI 2.0 HTTP Signatures: signed requests are verified (required of clients
                // registered with require_signed_resource_requests, or of all), and every
                // response is signed with a key of jwks_uri
                "http_message_signatures": {
                    "request_tag": "fapi-2-request",
                    "response_tag": "fapi-2-response",
                    "required_of_all_clients": s.demo_api_require_signed_requests,
                    "response_signing_jwks_uri": e.jwks,
                },
            });
        }
        m
    }
}
