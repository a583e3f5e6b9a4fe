//! The token endpoint (RFC 6749 §3.2, §4.1.3, §6) with DPoP-bound access tokens (RFC 9449 §5)
//! and OpenID Connect id_tokens (OIDC Core §3.1.3).

use serde::Serialize;
use serde_json::{Map, Value};

use crate::authorize::is_code_verifier;
use crate::client_auth::ClientAuthentication;
use crate::dpop::VerifiedProof;
use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::model::{CodeRedemption, Grant, SenderConstraint, TokenKind, TokenRecord};
use crate::provider::{Params, ParsedClient, Provider};
use crate::random::{credential, hash, secure_eq};

/// The HTTP request to the token endpoint, as the server parsed it.
pub struct TokenRequest<'a> {
    pub params: &'a [(String, String)],
    pub dpop: &'a [&'a str],
    pub authorization_header: bool,
}

/// RFC 6749 §5.1 (+ RFC 9449 §5, OIDC Core §3.1.3.3).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
    /// Sent as the `DPoP-Nonce` header, not in the body.
    #[serde(skip)]
    pub dpop_nonce: Option<String>,
}

impl Provider {
    pub async fn token(&self, req: &TokenRequest<'_>) -> OAuthResult<TokenResponse> {
        let params = self.params(req.params)?;
        let grant_type = params.require("grant_type")?;
        if !matches!(grant_type, "authorization_code" | "refresh_token") {
            // SP 5.3.2.1-2 (AS-SP-69): no password grant, nor anything else
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                400,
                format!("grant_type {grant_type} is not supported: use authorization_code or refresh_token"),
            ));
        }
        let proof = self.precheck_dpop(req.dpop, &self.settings.endpoints.token)?;
        let client = self
            .authenticate_client(&ClientAuthentication::from_params(&params, req.authorization_header))
            .await?;
        if !client.client.metadata.allows_grant(grant_type) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                400,
                format!("the client is not registered for the {grant_type} grant"),
            ));
        }
        // SP 5.3.2.1-4/-5 (AS-SP-72/79): only sender-constrained tokens; no proof, no token
        let Some(proof) = proof else {
            return Err(OAuthError::invalid_dpop_proof(
                "a DPoP proof is required: this server issues only DPoP-bound access tokens",
            ));
        };
        // the proof's jti is recorded by the grant, once everything else has held (issue 13
        // item 4: no replay record for a request that fails anyway)
        let mut response = match grant_type {
            "authorization_code" => self.code_grant(&client, &params, &proof).await?,
            _ => self.refresh_grant(&client, &params, &proof).await?,
        };
        response.dpop_nonce = proof.fresh_nonce;
        Ok(response)
    }

    async fn code_grant(
        &self,
        client: &ParsedClient,
        params: &Params<'_>,
        proof: &VerifiedProof,
    ) -> OAuthResult<TokenResponse> {
        let jkt = proof.jkt.as_str();
        let code = params.require("code")?;
        let redirect_uri = params.require("redirect_uri")?;
        let client_id = &client.client.client_id;
        let now = self.now();
        // SP 5.3.2.2-9 (AS-SP-64/65): one atomic redemption; a replay revokes what the code issued
        let record = match self.store.redeem_code(&hash(code), client_id, now).await? {
            CodeRedemption::Redeemed(r) => r,
            CodeRedemption::Replayed { grant_id } => {
                self.store.revoke_grant(&grant_id).await?;
                return Err(OAuthError::invalid_grant(
                    "the authorization code has already been used; the tokens issued with it are revoked",
                ));
            }
            CodeRedemption::OtherClient => {
                return Err(OAuthError::invalid_grant(
                    "the authorization code was issued to another client",
                ));
            }
            CodeRedemption::Expired => return Err(OAuthError::invalid_grant("the authorization code has expired")),
            CodeRedemption::Unknown => return Err(OAuthError::invalid_grant("the authorization code is unknown")),
        };
        // RFC 6749 §4.1.3: the same redirect_uri as in the request
        if record.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri does not match the one of the authorization request",
            ));
        }
        // RFC 7636 §4.6 (AS-SP-60/61)
        let verifier = params
            .get("code_verifier")
            .ok_or_else(|| OAuthError::invalid_grant("code_verifier is required (PKCE)"))?;
        if !is_code_verifier(verifier) {
            return Err(OAuthError::invalid_grant(
                "code_verifier must be 43 to 128 unreserved characters (RFC 7636)",
            ));
        }
        if !secure_eq(
            portcullis_jose::sha256_b64url(verifier).as_bytes(),
            record.code_challenge.as_bytes(),
        ) {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        // RFC 9449 §10 (AS-SP-67): the code is bound to the key named at PAR
        if let Some(bound) = &record.dpop_jkt
            && bound != jkt
        {
            return Err(OAuthError::invalid_grant(
                "the DPoP proof key does not match the key the authorization code is bound to (dpop_jkt)",
            ));
        }
        self.record_dpop(proof).await?;
        self.issue(
            client,
            &record.grant,
            &record.grant.scope,
            jkt,
            record.nonce.as_deref(),
            true,
        )
        .await
    }

    async fn refresh_grant(
        &self,
        client: &ParsedClient,
        params: &Params<'_>,
        proof: &VerifiedProof,
    ) -> OAuthResult<TokenResponse> {
        let token = params.require("refresh_token")?;
        let now = self.now();
        let Some((_, grant)) = self.store.get_token(&hash(token), TokenKind::Refresh, now).await? else {
            return Err(OAuthError::invalid_grant(
                "the refresh token is unknown, expired or revoked",
            ));
        };
        // RFC 6749 §6 (AS-SP-90): bound to its client
        if grant.client_id != client.client.client_id {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        // RFC 6749 §6 (AS-SP-92): no widening
        let scope = match params.get("scope") {
            None => grant.scope.clone(),
            Some(s) => {
                let asked: Vec<String> = s.split(' ').filter(|x| !x.is_empty()).map(String::from).collect();
                if let Some(extra) = asked.iter().find(|a| !grant.scope.contains(a)) {
                    return Err(OAuthError::invalid_scope(format!(
                        "scope {extra} was not part of the original grant"
                    )));
                }
                asked
            }
        };
        // RFC 9449 §5 (AS-SP-85): the new access token is bound to this proof's key;
        // SP 5.3.2.1-9 (AS-SP-89): the refresh token is not rotated
        self.record_dpop(proof).await?;
        self.issue(client, &grant, &scope, &proof.jkt, None, false).await
    }

    async fn issue(
        &self,
        client: &ParsedClient,
        grant: &Grant,
        scope: &[String],
        jkt: &str,
        nonce: Option<&str>,
        with_refresh: bool,
    ) -> OAuthResult<TokenResponse> {
        let now = self.now();
        let access_token = credential();
        let mut records = vec![TokenRecord {
            token_hash: hash(&access_token),
            kind: TokenKind::Access,
            grant_id: grant.grant_id.clone(),
            constraint: Some(SenderConstraint::Dpop { jkt: jkt.to_owned() }),
            scope: scope.to_vec(),
            issued_at: now,
            expires_at: now + self.settings.access_token_lifetime,
        }];
        // INTERFACE.md: every client with the refresh_token grant gets one from the code grant
        let refresh_token = if with_refresh && client.client.metadata.allows_grant("refresh_token") {
            let rt = credential();
            records.push(TokenRecord {
                token_hash: hash(&rt),
                kind: TokenKind::Refresh,
                grant_id: grant.grant_id.clone(),
                constraint: None,
                scope: grant.scope.clone(),
                issued_at: now,
                expires_at: now + self.settings.refresh_token_lifetime,
            });
            Some(rt)
        } else {
            None
        };
        let id_token = if scope.iter().any(|s| s == "openid") {
            Some(self.id_token(client, grant, nonce, now)?)
        } else {
            None
        };
        self.store.insert_tokens(&records).await?;
        Ok(TokenResponse {
            access_token,
            token_type: "DPoP",
            expires_in: self.settings.access_token_lifetime,
            refresh_token,
            id_token,
            scope: scope.join(" "),
            dpop_nonce: None,
        })
    }

    /// OIDC Core §2 (AS-SP-101): iss, sub, aud, azp, exp, iat, auth_time and nonce, signed with
    /// the client's registered algorithm (never a default of RS256), `kid` in the header.
    fn id_token(&self, client: &ParsedClient, grant: &Grant, nonce: Option<&str>, now: i64) -> OAuthResult<String> {
        let alg = client.client.metadata.id_token_signed_response_alg;
        let keys = self.keys();
        let key = keys
            .active(alg)
            .ok_or_else(|| OAuthError::server_error(format!("no active signing key for {alg}")))?;
        let mut claims = Map::new();
        claims.insert("iss".into(), Value::from(self.settings.issuer.as_str()));
        claims.insert("sub".into(), Value::from(grant.sub.as_str()));
        claims.insert("aud".into(), Value::from(grant.client_id.as_str()));
        claims.insert("azp".into(), Value::from(grant.client_id.as_str()));
        claims.insert("iat".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(now + self.settings.id_token_lifetime));
        claims.insert("auth_time".into(), Value::from(grant.auth_time));
        if let Some(n) = nonce {
            claims.insert("nonce".into(), Value::from(n));
        }
        key.sign_jwt(alg, Some("JWT"), &claims)
            .map_err(|e| OAuthError::server_error(format!("id_token signing failed: {e}")))
    }
}
