//! Token revocation (RFC 7009) for a client's own tokens, with the same client authentication as
//! every direct endpoint (AS-SP-24, AS-OPT-18..20).

use crate::client_auth::ClientCredentials;
use crate::error::OAuthResult;
use crate::model::TokenKind;
use crate::provider::Provider;
use crate::random::hash;
use crate::request::DirectRequest;

impl Provider {
    /// RFC 7009 §2.1: revokes `token` if it was issued to the authenticated client. A refresh
    /// token takes its whole grant with it (every access token issued from it, AS-OPT-20); an
    /// access token goes alone. §2.2: the answer is the same (200) whether the token was
    /// revoked, unknown, expired, already revoked or another client's, so that revocation is no
    /// oracle for other clients' tokens.
    pub async fn revoke(&self, req: &DirectRequest) -> OAuthResult<Revocation> {
        let client = self
            .authenticate_client(&ClientCredentials::from_request(self, req)?)
            .await?;
        let params = req.params.view();
        let token = params.require("token")?;
        // §2.1: the hint is only a hint; an unknown value is not an error (§2.2.1's
        // unsupported_token_type is for types the server cannot revoke, and it revokes both)
        let kinds = match params.get("token_type_hint") {
            Some("refresh_token") => [TokenKind::Refresh, TokenKind::Access],
            _ => [TokenKind::Access, TokenKind::Refresh],
        };
        let h = hash(token);
        let now = self.now();
        for kind in kinds {
            let Some((_, grant)) = self.store.get_token(&h, kind, now).await? else {
                continue;
            };
            if grant.client_id != client.client.client_id {
                // AS-OPT-18: another client's token is left alone (and not revealed)
                break;
            }
            match kind {
                TokenKind::Refresh => self.store.revoke_grant(&grant.grant_id).await?,
                TokenKind::Access => {
                    self.store.delete_token(&h).await?;
                }
            }
            return Ok(Revocation {
                client_id: client.client.client_id.clone(),
                revoked: Some(kind),
            });
        }
        Ok(Revocation {
            client_id: client.client.client_id.clone(),
            revoked: None,
        })
    }
}

/// What a revocation did (for the audit log; the answer is 200 either way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The authenticated client.
    pub client_id: String,
    /// The kind of token revoked; `None` when nothing of the client's matched.
    pub revoked: Option<TokenKind>,
}
