//! The store as the server uses it: every call timed into the database latency histogram
//! (issue 17 item 1, [`DB_DURATION`]), by operation. A decorator, so the engines stay free of
//! metrics and every engine is measured the same way.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use portcullis_core::Store;
use portcullis_core::audit::{AuditRecord, ChainPoint};
use portcullis_core::model::{
    AuthorizationCode, Client, CodeRedemption, Grant, InitialAccessToken, Interaction, InteractionStart, PushedRequest,
    Session, StoredKey, TokenKind, TokenRecord, User,
};
use portcullis_core::store::{StoreResult, TableSizes};

/// Database call latency by operation (seconds, histogram).
pub const DB_DURATION: &str = "portcullis_db_query_duration_seconds";

/// Times every call of the store it wraps.
pub struct TimedStore(pub Arc<dyn Store>);

/// Times one call into its operation's histogram. The handle is looked up once per operation
/// and kept (a registry lookup per call costs more than the timing itself); the recorder is
/// installed before the first store call, at the start of `serve`.
macro_rules! timed {
    ($op:literal, $call:expr) => {{
        static HISTOGRAM: std::sync::OnceLock<metrics::Histogram> = std::sync::OnceLock::new();
        let started = Instant::now();
        let result = $call.await;
        HISTOGRAM
            .get_or_init(|| metrics::histogram!(DB_DURATION, "operation" => $op))
            .record(started.elapsed().as_secs_f64());
        result
    }};
}

#[async_trait]
impl Store for TimedStore {
    async fn insert_client(&self, client: &Client, registration_token: Option<(&str, i64)>) -> StoreResult<()> {
        timed!("insert_client", self.0.insert_client(client, registration_token))
    }

    async fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        timed!("get_client", self.0.get_client(client_id))
    }

    async fn get_client_by_registration_token(
        &self,
        client_id: &str,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<Client>> {
        timed!(
            "get_client_by_registration_token",
            self.0.get_client_by_registration_token(client_id, token_hash, now)
        )
    }

    async fn update_client(&self, client: &Client) -> StoreResult<bool> {
        timed!("update_client", self.0.update_client(client))
    }

    async fn update_client_registration(
        &self,
        client: &Client,
        old_token_hash: &str,
        new_token: (&str, i64),
    ) -> StoreResult<bool> {
        timed!(
            "update_client_registration",
            self.0.update_client_registration(client, old_token_hash, new_token)
        )
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        timed!("delete_client", self.0.delete_client(client_id))
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        timed!("list_clients", self.0.list_clients())
    }

    async fn insert_initial_access_token(&self, token: &InitialAccessToken) -> StoreResult<()> {
        timed!("insert_initial_access_token", self.0.insert_initial_access_token(token))
    }

    async fn initial_access_token_valid(&self, token_hash: &str, now: i64) -> StoreResult<bool> {
        timed!(
            "initial_access_token_valid",
            self.0.initial_access_token_valid(token_hash, now)
        )
    }

    async fn use_initial_access_token(&self, token_hash: &str, now: i64) -> StoreResult<bool> {
        timed!(
            "use_initial_access_token",
            self.0.use_initial_access_token(token_hash, now)
        )
    }

    async fn list_initial_access_tokens(&self) -> StoreResult<Vec<InitialAccessToken>> {
        timed!("list_initial_access_tokens", self.0.list_initial_access_tokens())
    }

    async fn delete_initial_access_token(&self, token_hash: &str) -> StoreResult<bool> {
        timed!(
            "delete_initial_access_token",
            self.0.delete_initial_access_token(token_hash)
        )
    }

    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        timed!("insert_user", self.0.insert_user(user))
    }

    async fn get_user(&self, username: &str) -> StoreResult<Option<User>> {
        timed!("get_user", self.0.get_user(username))
    }

    async fn get_user_by_sub(&self, sub: &str) -> StoreResult<Option<User>> {
        timed!("get_user_by_sub", self.0.get_user_by_sub(sub))
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        timed!("list_users", self.0.list_users())
    }

    async fn set_user_password(&self, username: &str, password_hash: &str) -> StoreResult<bool> {
        timed!("set_user_password", self.0.set_user_password(username, password_hash))
    }

    async fn delete_user(&self, username: &str) -> StoreResult<bool> {
        timed!("delete_user", self.0.delete_user(username))
    }

    async fn insert_pushed_request(&self, request: &PushedRequest) -> StoreResult<()> {
        timed!("insert_pushed_request", self.0.insert_pushed_request(request))
    }

    async fn get_pushed_request(&self, request_uri_hash: &str) -> StoreResult<Option<PushedRequest>> {
        timed!("get_pushed_request", self.0.get_pushed_request(request_uri_hash))
    }

    async fn start_interaction(
        &self,
        interaction: &Interaction,
        now: i64,
        max_live: u32,
    ) -> StoreResult<InteractionStart> {
        timed!(
            "start_interaction",
            self.0.start_interaction(interaction, now, max_live)
        )
    }

    async fn get_interaction(&self, id: &str) -> StoreResult<Option<Interaction>> {
        timed!("get_interaction", self.0.get_interaction(id))
    }

    async fn get_browser_interaction(
        &self,
        request_uri_hash: &str,
        browser_hash: &str,
    ) -> StoreResult<Option<Interaction>> {
        timed!(
            "get_browser_interaction",
            self.0.get_browser_interaction(request_uri_hash, browser_hash)
        )
    }

    async fn complete_interaction(&self, id: &str, now: i64) -> StoreResult<bool> {
        timed!("complete_interaction", self.0.complete_interaction(id, now))
    }

    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()> {
        timed!("insert_code", self.0.insert_code(code))
    }

    async fn redeem_code(&self, code_hash: &str, client_id: &str, now: i64) -> StoreResult<CodeRedemption> {
        timed!("redeem_code", self.0.redeem_code(code_hash, client_id, now))
    }

    async fn insert_tokens(&self, tokens: &[TokenRecord]) -> StoreResult<()> {
        timed!("insert_tokens", self.0.insert_tokens(tokens))
    }

    async fn get_token(
        &self,
        token_hash: &str,
        kind: TokenKind,
        now: i64,
    ) -> StoreResult<Option<(TokenRecord, Grant)>> {
        timed!("get_token", self.0.get_token(token_hash, kind, now))
    }

    async fn revoke_grant(&self, grant_id: &str) -> StoreResult<()> {
        timed!("revoke_grant", self.0.revoke_grant(grant_id))
    }

    async fn delete_token(&self, token_hash: &str) -> StoreResult<bool> {
        timed!("delete_token", self.0.delete_token(token_hash))
    }

    async fn remember_once(&self, key: &str, expires_at: i64, now: i64) -> StoreResult<bool> {
        timed!("remember_once", self.0.remember_once(key, expires_at, now))
    }

    async fn insert_session(&self, id_hash: &str, session: &Session) -> StoreResult<()> {
        timed!("insert_session", self.0.insert_session(id_hash, session))
    }

    async fn get_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<Session>> {
        timed!("get_session", self.0.get_session(id_hash, now))
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        timed!("delete_session", self.0.delete_session(id_hash))
    }

    async fn get_or_create_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        timed!("get_or_create_secret", self.0.get_or_create_secret(name, candidate))
    }

    async fn get_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        timed!("get_secret", self.0.get_secret(name))
    }

    async fn delete_secret(&self, name: &str) -> StoreResult<()> {
        timed!("delete_secret", self.0.delete_secret(name))
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        timed!("list_signing_keys", self.0.list_signing_keys())
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        timed!("insert_signing_key", self.0.insert_signing_key(key))
    }

    async fn retire_signing_keys(&self, now: i64) -> StoreResult<u64> {
        timed!("retire_signing_keys", self.0.retire_signing_keys(now))
    }

    async fn delete_signing_keys_retired_before(&self, before: i64) -> StoreResult<u64> {
        timed!(
            "delete_signing_keys_retired_before",
            self.0.delete_signing_keys_retired_before(before)
        )
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<()> {
        timed!("purge_expired", self.0.purge_expired(now))
    }

    async fn insert_signing_key_if_missing(&self, key: &StoredKey) -> StoreResult<bool> {
        timed!(
            "insert_signing_key_if_missing",
            self.0.insert_signing_key_if_missing(key)
        )
    }

    async fn rotate_signing_keys(&self, keys: &[StoredKey], retire_at: i64) -> StoreResult<()> {
        timed!("rotate_signing_keys", self.0.rotate_signing_keys(keys, retire_at))
    }

    async fn replace_signing_key_material(&self, kid: &str, expected: &[u8], private_key: &[u8]) -> StoreResult<bool> {
        timed!(
            "replace_signing_key_material",
            self.0.replace_signing_key_material(kid, expected, private_key)
        )
    }

    async fn table_sizes(&self) -> StoreResult<TableSizes> {
        timed!("table_sizes", self.0.table_sizes())
    }

    async fn append_audit(&self, records: &[AuditRecord]) -> StoreResult<bool> {
        timed!("append_audit", self.0.append_audit(records))
    }

    async fn audit_head(&self) -> StoreResult<ChainPoint> {
        timed!("audit_head", self.0.audit_head())
    }

    async fn audit_anchor(&self) -> StoreResult<ChainPoint> {
        timed!("audit_anchor", self.0.audit_anchor())
    }

    async fn audit_by_interaction(&self, interaction_id: &str) -> StoreResult<Vec<AuditRecord>> {
        timed!("audit_by_interaction", self.0.audit_by_interaction(interaction_id))
    }

    async fn audit_range(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        timed!("audit_range", self.0.audit_range(after_seq, limit))
    }

    async fn purge_audit_before(&self, before: i64) -> StoreResult<u64> {
        timed!("purge_audit_before", self.0.purge_audit_before(before))
    }
}
