//! An in-memory `Store`: every operation holds one lock, so single use is as atomic as in the
//! database engines. For protocol tests and for embedding; it keeps nothing across restarts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::audit::{AuditRecord, ChainPoint};
use crate::model::{
    AuthorizationCode, Client, CodeRedemption, Grant, InitialAccessToken, Interaction, InteractionStart, PushedRequest,
    Session, StoredKey, TokenKind, TokenRecord, User,
};
use crate::store::{Store, StoreResult, TableSizes};
use crate::sync::lock;

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    clients: HashMap<String, (Client, Option<(String, i64)>)>,
    initial_tokens: HashMap<String, InitialAccessToken>,
    users: HashMap<String, User>,
    pushed: HashMap<String, PushedRequest>,
    interactions: HashMap<String, Interaction>,
    codes: HashMap<String, (AuthorizationCode, Option<i64>)>,
    grants: HashMap<String, (Grant, bool)>,
    tokens: HashMap<String, TokenRecord>,
    replay: HashMap<String, i64>,
    sessions: HashMap<String, Session>,
    secrets: HashMap<String, Vec<u8>>,
    keys: Vec<StoredKey>,
    audit: BTreeMap<i64, AuditRecord>,
    audit_anchor: ChainPoint,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many replay records (DPoP and client assertion `jti`s) are kept: what a request
    /// wrote, for tests.
    pub fn replay_records(&self) -> usize {
        lock(&self.inner).replay.len()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn insert_client(&self, client: &Client, registration_token: Option<(&str, i64)>) -> StoreResult<()> {
        lock(&self.inner).clients.insert(
            client.client_id.clone(),
            (client.clone(), registration_token.map(|(h, e)| (h.to_owned(), e))),
        );
        Ok(())
    }

    async fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        Ok(lock(&self.inner).clients.get(client_id).map(|(c, _)| c.clone()))
    }

    async fn get_client_by_registration_token(
        &self,
        client_id: &str,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<Client>> {
        Ok(lock(&self.inner)
            .clients
            .get(client_id)
            .filter(|(_, t)| t.as_ref().is_some_and(|(h, e)| h == token_hash && *e > now))
            .map(|(c, _)| c.clone()))
    }

    async fn update_client_registration(
        &self,
        client: &Client,
        old_token_hash: &str,
        new_token: (&str, i64),
    ) -> StoreResult<bool> {
        let mut g = lock(&self.inner);
        match g.clients.get_mut(&client.client_id) {
            Some((c, Some(t))) if t.0 == old_token_hash => {
                *c = client.clone();
                *t = (new_token.0.to_owned(), new_token.1);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn update_client(&self, client: &Client) -> StoreResult<bool> {
        let mut g = lock(&self.inner);
        match g.clients.get_mut(&client.client_id) {
            Some((c, _)) => {
                *c = client.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        let mut g = lock(&self.inner);
        let grants: Vec<String> = g
            .grants
            .iter()
            .filter(|(_, (gr, _))| gr.client_id == client_id)
            .map(|(k, _)| k.clone())
            .collect();
        g.tokens.retain(|_, t| !grants.contains(&t.grant_id));
        g.grants.retain(|k, _| !grants.contains(k));
        g.codes.retain(|_, (c, _)| c.grant.client_id != client_id);
        g.pushed.retain(|_, p| p.request.client_id != client_id);
        g.interactions.retain(|_, i| i.request.client_id != client_id);
        Ok(g.clients.remove(client_id).is_some())
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let mut v: Vec<Client> = lock(&self.inner).clients.values().map(|(c, _)| c.clone()).collect();
        v.sort_by(|a, b| (a.issued_at, &a.client_id).cmp(&(b.issued_at, &b.client_id)));
        Ok(v)
    }

    async fn insert_initial_access_token(&self, token: &InitialAccessToken) -> StoreResult<()> {
        lock(&self.inner)
            .initial_tokens
            .insert(token.token_hash.clone(), token.clone());
        Ok(())
    }

    async fn initial_access_token_valid(&self, token_hash: &str, now: i64) -> StoreResult<bool> {
        Ok(lock(&self.inner)
            .initial_tokens
            .get(token_hash)
            .is_some_and(|t| t.expires_at > now && t.uses_left.is_none_or(|u| u > 0)))
    }

    async fn use_initial_access_token(&self, token_hash: &str, now: i64) -> StoreResult<bool> {
        let mut g = lock(&self.inner);
        match g.initial_tokens.get_mut(token_hash) {
            Some(t) if t.expires_at > now && t.uses_left.is_none_or(|u| u > 0) => {
                if let Some(u) = &mut t.uses_left {
                    *u -= 1;
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list_initial_access_tokens(&self) -> StoreResult<Vec<InitialAccessToken>> {
        let mut v: Vec<InitialAccessToken> = lock(&self.inner).initial_tokens.values().cloned().collect();
        v.sort_by(|a, b| (a.created_at, &a.token_hash).cmp(&(b.created_at, &b.token_hash)));
        Ok(v)
    }

    async fn delete_initial_access_token(&self, token_hash: &str) -> StoreResult<bool> {
        Ok(lock(&self.inner).initial_tokens.remove(token_hash).is_some())
    }

    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        lock(&self.inner).users.insert(user.username.clone(), user.clone());
        Ok(())
    }

    async fn get_user(&self, username: &str) -> StoreResult<Option<User>> {
        Ok(lock(&self.inner).users.get(username).cloned())
    }

    async fn get_user_by_sub(&self, sub: &str) -> StoreResult<Option<User>> {
        Ok(lock(&self.inner).users.values().find(|u| u.sub == sub).cloned())
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let mut v: Vec<User> = lock(&self.inner).users.values().cloned().collect();
        v.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(v)
    }

    async fn set_user_password(&self, username: &str, password_hash: &str) -> StoreResult<bool> {
        let mut g = lock(&self.inner);
        let Some(user) = g.users.get_mut(username) else {
            return Ok(false);
        };
        user.password_hash = password_hash.to_owned();
        g.sessions.retain(|_, s| s.username != username);
        Ok(true)
    }

    async fn delete_user(&self, username: &str) -> StoreResult<bool> {
        let mut g = lock(&self.inner);
        let Some(user) = g.users.remove(username) else {
            return Ok(false);
        };
        let grants: HashSet<String> = g
            .grants
            .iter()
            .filter(|(_, (gr, _))| gr.sub == user.sub)
            .map(|(k, _)| k.clone())
            .collect();
        g.tokens.retain(|_, t| !grants.contains(&t.grant_id));
        g.codes.retain(|_, (c, _)| c.grant.sub != user.sub);
        g.grants.retain(|k, _| !grants.contains(k));
        g.sessions.retain(|_, s| s.username != username);
        Ok(true)
    }

    async fn insert_pushed_request(&self, request: &PushedRequest) -> StoreResult<()> {
        lock(&self.inner)
            .pushed
            .insert(request.request_uri_hash.clone(), request.clone());
        Ok(())
    }

    async fn get_pushed_request(&self, request_uri_hash: &str) -> StoreResult<Option<PushedRequest>> {
        Ok(lock(&self.inner).pushed.get(request_uri_hash).cloned())
    }

    async fn start_interaction(
        &self,
        interaction: &Interaction,
        now: i64,
        max_live: u32,
    ) -> StoreResult<InteractionStart> {
        let mut g = lock(&self.inner);
        match g.pushed.get(&interaction.request_uri_hash) {
            Some(p) if !p.consumed && p.expires_at > now => {}
            _ => return Ok(InteractionStart::Unavailable),
        }
        let on_request = || {
            g.interactions
                .values()
                .filter(|i| i.request_uri_hash == interaction.request_uri_hash)
        };
        if let Some(existing) = on_request().find(|i| i.browser_hash == interaction.browser_hash) {
            return Ok(InteractionStart::Existing(Box::new(existing.clone())));
        }
        let live = on_request().filter(|i| !i.completed && i.expires_at > now).count();
        if live >= usize::try_from(max_live).unwrap_or(usize::MAX) {
            return Ok(InteractionStart::TooMany);
        }
        g.interactions.insert(interaction.id.clone(), interaction.clone());
        Ok(InteractionStart::Started)
    }

    async fn get_interaction(&self, id: &str) -> StoreResult<Option<Interaction>> {
        Ok(lock(&self.inner).interactions.get(id).cloned())
    }

    async fn get_browser_interaction(
        &self,
        request_uri_hash: &str,
        browser_hash: &str,
    ) -> StoreResult<Option<Interaction>> {
        Ok(lock(&self.inner)
            .interactions
            .values()
            .find(|i| i.request_uri_hash == request_uri_hash && i.browser_hash == browser_hash)
            .cloned())
    }

    async fn complete_interaction(&self, id: &str, now: i64) -> StoreResult<bool> {
        let mut g = lock(&self.inner);
        let Some(request_uri_hash) = g
            .interactions
            .get(id)
            .filter(|i| !i.completed && i.expires_at > now)
            .map(|i| i.request_uri_hash.clone())
        else {
            return Ok(false);
        };
        match g.pushed.get_mut(&request_uri_hash) {
            Some(p) if !p.consumed => p.consumed = true,
            _ => return Ok(false),
        }
        if let Some(i) = g.interactions.get_mut(id) {
            i.completed = true;
        }
        Ok(true)
    }

    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()> {
        let mut g = lock(&self.inner);
        g.grants
            .insert(code.grant.grant_id.clone(), (code.grant.clone(), false));
        g.codes.insert(code.code_hash.clone(), (code.clone(), None));
        Ok(())
    }

    async fn redeem_code(&self, code_hash: &str, client_id: &str, now: i64) -> StoreResult<CodeRedemption> {
        let mut g = lock(&self.inner);
        let Some((code, consumed_at)) = g.codes.get_mut(code_hash) else {
            return Ok(CodeRedemption::Unknown);
        };
        // the owner first: only the client a code was issued to can replay it (issue 13 item 8)
        Ok(if code.grant.client_id != client_id {
            CodeRedemption::OtherClient
        } else if consumed_at.is_some() {
            CodeRedemption::Replayed {
                grant_id: code.grant.grant_id.clone(),
            }
        } else if code.expires_at <= now {
            CodeRedemption::Expired
        } else {
            *consumed_at = Some(now);
            CodeRedemption::Redeemed(Box::new(code.clone()))
        })
    }

    async fn insert_tokens(&self, tokens: &[TokenRecord]) -> StoreResult<()> {
        let mut g = lock(&self.inner);
        for t in tokens {
            g.tokens.insert(t.token_hash.clone(), t.clone());
        }
        Ok(())
    }

    async fn get_token(
        &self,
        token_hash: &str,
        kind: TokenKind,
        now: i64,
    ) -> StoreResult<Option<(TokenRecord, Grant)>> {
        let g = lock(&self.inner);
        let Some(t) = g
            .tokens
            .get(token_hash)
            .filter(|t| t.kind == kind && t.expires_at > now)
        else {
            return Ok(None);
        };
        Ok(g.grants
            .get(&t.grant_id)
            .filter(|(_, revoked)| !revoked)
            .map(|(gr, _)| (t.clone(), gr.clone())))
    }

    async fn revoke_grant(&self, grant_id: &str) -> StoreResult<()> {
        let mut g = lock(&self.inner);
        if let Some((_, revoked)) = g.grants.get_mut(grant_id) {
            *revoked = true;
        }
        g.tokens.retain(|_, t| t.grant_id != grant_id);
        Ok(())
    }

    async fn delete_token(&self, token_hash: &str) -> StoreResult<bool> {
        Ok(lock(&self.inner).tokens.remove(token_hash).is_some())
    }

    async fn remember_once(&self, key: &str, expires_at: i64, now: i64) -> StoreResult<bool> {
        let mut g = lock(&self.inner);
        match g.replay.get(key) {
            Some(exp) if *exp > now => Ok(false),
            _ => {
                g.replay.insert(key.to_owned(), expires_at);
                Ok(true)
            }
        }
    }

    async fn insert_session(&self, id_hash: &str, session: &Session) -> StoreResult<()> {
        lock(&self.inner).sessions.insert(id_hash.to_owned(), session.clone());
        Ok(())
    }

    async fn get_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<Session>> {
        Ok(lock(&self.inner)
            .sessions
            .get(id_hash)
            .filter(|s| s.expires_at > now)
            .cloned())
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        lock(&self.inner).sessions.remove(id_hash);
        Ok(())
    }

    async fn get_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(lock(&self.inner).secrets.get(name).cloned())
    }

    async fn delete_secret(&self, name: &str) -> StoreResult<()> {
        lock(&self.inner).secrets.remove(name);
        Ok(())
    }

    async fn get_or_create_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        Ok(lock(&self.inner)
            .secrets
            .entry(name.to_owned())
            .or_insert_with(|| candidate.to_vec())
            .clone())
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        let mut keys = lock(&self.inner).keys.clone();
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        lock(&self.inner).keys.push(key.clone());
        Ok(())
    }

    async fn retire_signing_keys(&self, now: i64) -> StoreResult<u64> {
        let mut n = 0;
        for k in lock(&self.inner).keys.iter_mut().filter(|k| k.retired_at.is_none()) {
            k.retired_at = Some(now);
            n += 1;
        }
        Ok(n)
    }

    async fn delete_signing_keys_retired_before(&self, before: i64) -> StoreResult<u64> {
        let mut g = lock(&self.inner);
        let n = g.keys.len();
        g.keys.retain(|k| k.retired_at.is_none_or(|r| r >= before));
        Ok((n - g.keys.len()) as u64)
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<()> {
        let grace = now - 3600;
        let mut g = lock(&self.inner);
        g.replay.retain(|_, exp| *exp > now);
        g.sessions.retain(|_, s| s.expires_at > now);
        g.pushed.retain(|_, p| p.expires_at > grace);
        g.interactions.retain(|_, i| i.expires_at > grace);
        g.codes.retain(|_, (c, _)| c.expires_at > grace);
        g.tokens.retain(|_, t| t.expires_at > now);
        g.initial_tokens
            .retain(|_, t| t.expires_at > now && t.uses_left.is_none_or(|u| u > 0));
        // a grant lives while a token or a code refers to it
        let live: HashSet<String> = g
            .tokens
            .values()
            .map(|t| t.grant_id.clone())
            .chain(g.codes.values().map(|(c, _)| c.grant.grant_id.clone()))
            .collect();
        g.grants.retain(|id, _| live.contains(id));
        Ok(())
    }

    async fn insert_signing_key_if_missing(&self, key: &StoredKey) -> StoreResult<bool> {
        let mut g = lock(&self.inner);
        if g.keys.iter().any(|k| k.alg == key.alg && k.retired_at.is_none()) {
            return Ok(false);
        }
        g.keys.push(key.clone());
        Ok(true)
    }

    async fn rotate_signing_keys(&self, keys: &[StoredKey], retire_at: i64) -> StoreResult<()> {
        let mut g = lock(&self.inner);
        for k in g.keys.iter_mut().filter(|k| k.retired_at.is_none_or(|r| r > retire_at)) {
            k.retired_at = Some(retire_at);
        }
        g.keys.extend(keys.iter().cloned());
        Ok(())
    }

    async fn replace_signing_key_material(&self, kid: &str, expected: &[u8], private_key: &[u8]) -> StoreResult<bool> {
        let mut g = lock(&self.inner);
        match g.keys.iter_mut().find(|k| k.kid == kid && k.private_key == expected) {
            Some(k) => {
                k.private_key = private_key.to_vec();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn table_sizes(&self) -> StoreResult<TableSizes> {
        let g = lock(&self.inner);
        let n = |len: usize| len as u64;
        Ok(TableSizes {
            clients: n(g.clients.len()),
            initial_access_tokens: n(g.initial_tokens.len()),
            users: n(g.users.len()),
            pushed_requests: n(g.pushed.len()),
            interactions: n(g.interactions.len()),
            grants: n(g.grants.len()),
            codes: n(g.codes.len()),
            tokens: n(g.tokens.len()),
            replay: n(g.replay.len()),
            sessions: n(g.sessions.len()),
            signing_keys: n(g.keys.len()),
            audit: n(g.audit.len()),
        })
    }

    async fn append_audit(&self, records: &[AuditRecord]) -> StoreResult<bool> {
        let mut g = lock(&self.inner);
        let Some(first) = records.first() else {
            return Ok(true);
        };
        let head = g.audit.values().next_back().map_or(g.audit_anchor, AuditRecord::point);
        if first.seq != head.seq + 1 || first.prev_hash != head.hash {
            return Ok(false);
        }
        for r in records {
            g.audit.insert(r.seq, r.clone());
        }
        Ok(true)
    }

    async fn audit_head(&self) -> StoreResult<ChainPoint> {
        let g = lock(&self.inner);
        Ok(g.audit.values().next_back().map_or(g.audit_anchor, AuditRecord::point))
    }

    async fn audit_anchor(&self) -> StoreResult<ChainPoint> {
        Ok(lock(&self.inner).audit_anchor)
    }

    async fn audit_by_interaction(&self, interaction_id: &str) -> StoreResult<Vec<AuditRecord>> {
        Ok(lock(&self.inner)
            .audit
            .values()
            .filter(|r| r.evidence.interaction_id == interaction_id)
            .cloned()
            .collect())
    }

    async fn audit_range(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        Ok(lock(&self.inner)
            .audit
            .range(after_seq.saturating_add(1)..)
            .take(limit as usize)
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn purge_audit_before(&self, before: i64) -> StoreResult<u64> {
        let mut g = lock(&self.inner);
        let mut removed = 0;
        while let Some(entry) = g.audit.first_entry() {
            if entry.get().evidence.at >= before {
                break;
            }
            let r = entry.remove();
            g.audit_anchor = r.point();
            removed += 1;
        }
        Ok(removed)
    }
}
