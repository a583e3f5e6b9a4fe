//! What the protocol needs from storage. Single use is a property of the store: every
//! `consume_*` / `remember_once` is one atomic statement whose result says whether this caller
//! won, so two nodes on one database can never both win.

use async_trait::async_trait;

use crate::audit::{AuditRecord, ChainPoint};
use crate::error::StoreError;
use crate::model::{
    AuthorizationCode, Client, CodeRedemption, Grant, InitialAccessToken, Interaction, InteractionStart, PushedRequest,
    Session, StoredKey, TokenKind, TokenRecord, User,
};

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // clients (RFC 7591 / 7592)
    /// Stores a client, with the hash and expiry of its registration access token (RFC 7592)
    /// when it registered itself.
    async fn insert_client(&self, client: &Client, registration_token: Option<(&str, i64)>) -> StoreResult<()>;
    async fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>>;
    /// The client, if `token_hash` is its unexpired registration access token.
    async fn get_client_by_registration_token(
        &self,
        client_id: &str,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<Client>>;
    async fn update_client(&self, client: &Client) -> StoreResult<bool>;
    /// RFC 7592 §2.2, §3: replaces the metadata and rotates the registration access token in one
    /// statement, only while `old_token_hash` is still the client's token (so of two updates
    /// with one token exactly one wins); false otherwise.
    async fn update_client_registration(
        &self,
        client: &Client,
        old_token_hash: &str,
        new_token: (&str, i64),
    ) -> StoreResult<bool>;
    /// Deletes the client and everything issued to it.
    async fn delete_client(&self, client_id: &str) -> StoreResult<bool>;
    async fn list_clients(&self) -> StoreResult<Vec<Client>>;

    // initial access tokens for registration
    async fn insert_initial_access_token(&self, token: &InitialAccessToken) -> StoreResult<()>;
    /// Whether the token exists, is unexpired and has uses left (spends nothing).
    async fn initial_access_token_valid(&self, token_hash: &str, now: i64) -> StoreResult<bool>;
    /// Atomically spends one use of an unexpired token.
    async fn use_initial_access_token(&self, token_hash: &str, now: i64) -> StoreResult<bool>;
    /// Every stored initial access token (expired and used-up ones too, until the purge), oldest
    /// first.
    async fn list_initial_access_tokens(&self) -> StoreResult<Vec<InitialAccessToken>>;
    /// Deletes one: it allows no further registration. False if there was none.
    async fn delete_initial_access_token(&self, token_hash: &str) -> StoreResult<bool>;

    // users
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn get_user(&self, username: &str) -> StoreResult<Option<User>>;
    async fn get_user_by_sub(&self, sub: &str) -> StoreResult<Option<User>>;
    /// Every user, by username.
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Replaces the user's password hash and ends every session of theirs, in one step (a
    /// browser signed in with the old password stays signed in no longer). False if there is no
    /// such user.
    async fn set_user_password(&self, username: &str, password_hash: &str) -> StoreResult<bool>;
    /// Deletes the user and, in the same step, everything that acts for them: their sessions,
    /// and every grant made by them with its codes, access and refresh tokens (no token issued
    /// to them works afterwards). False if there is no such user.
    async fn delete_user(&self, username: &str) -> StoreResult<bool>;

    // pushed authorization requests (RFC 9126)
    async fn insert_pushed_request(&self, request: &PushedRequest) -> StoreResult<()>;
    async fn get_pushed_request(&self, request_uri_hash: &str) -> StoreResult<Option<PushedRequest>>;
    // browser-bound interactions (issue 17 item 7)
    /// Stores `interaction` for its browser on the request_uri `interaction.request_uri_hash`,
    /// in one atomic step, if the request_uri is known, unconsumed and unexpired, this browser
    /// has no interaction on it yet, and fewer than `max_live` live (uncompleted, unexpired)
    /// interactions are on it. The request_uri is not consumed (AS-SP-44).
    async fn start_interaction(
        &self,
        interaction: &Interaction,
        now: i64,
        max_live: u32,
    ) -> StoreResult<InteractionStart>;
    /// The interaction `id` in whatever state (expired and completed ones too, until purged).
    async fn get_interaction(&self, id: &str) -> StoreResult<Option<Interaction>>;
    /// The interaction the browser `browser_hash` has on a request_uri, if any.
    async fn get_browser_interaction(
        &self,
        request_uri_hash: &str,
        browser_hash: &str,
    ) -> StoreResult<Option<Interaction>>;
    /// Completes the interaction `id` and consumes its request_uri, in one atomic step: only if
    /// the interaction is unexpired and uncompleted and its pushed request still there and
    /// unconsumed (whatever the request_uri's own expiry). True if this caller won: of all the
    /// interactions on one request_uri, one completes, once.
    async fn complete_interaction(&self, id: &str, now: i64) -> StoreResult<bool>;

    // authorization codes, grants and tokens
    /// Stores the grant and its code together.
    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()>;
    /// Atomically redeems a code for `client_id` (AS-SP-64/65).
    async fn redeem_code(&self, code_hash: &str, client_id: &str, now: i64) -> StoreResult<CodeRedemption>;
    async fn insert_tokens(&self, tokens: &[TokenRecord]) -> StoreResult<()>;
    /// A live token of `kind` with its grant.
    async fn get_token(&self, token_hash: &str, kind: TokenKind, now: i64)
    -> StoreResult<Option<(TokenRecord, Grant)>>;
    /// Revokes every token of a grant (code replay, RFC 6749 §4.1.2).
    async fn revoke_grant(&self, grant_id: &str) -> StoreResult<()>;
    /// RFC 7009: deletes one token (an access token revoked on its own); false if none was
    /// there.
    async fn delete_token(&self, token_hash: &str) -> StoreResult<bool>;

    // replay protection for DPoP and client assertion `jti`s
    /// Records `key` until `expires_at`; true if it had not been seen (RFC 9449 §11.1).
    async fn remember_once(&self, key: &str, expires_at: i64, now: i64) -> StoreResult<bool>;

    // browser sessions
    async fn insert_session(&self, id_hash: &str, session: &Session) -> StoreResult<()>;
    async fn get_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<Session>>;
    /// Ends a session (logout, or a new login in the same browser).
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;

    // server secrets and signing keys
    /// Returns the stored secret `name`, storing `candidate` first if there is none (first
    /// writer wins, so every node ends up with the same secret).
    async fn get_or_create_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>>;
    /// The stored secret `name`, if any.
    async fn get_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;
    async fn delete_secret(&self, name: &str) -> StoreResult<()>;
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredKey>>;
    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()>;
    /// Marks every current key retired at `now`.
    async fn retire_signing_keys(&self, now: i64) -> StoreResult<u64>;
    async fn delete_signing_keys_retired_before(&self, before: i64) -> StoreResult<u64>;

    /// Deletes what can no longer be used (issue 13 item 5): expired replay records, sessions
    /// and tokens; pushed requests, interactions and codes an hour past expiry (late use still
    /// gets a precise answer, a replayed code is still detected); initial access tokens expired or used up;
    /// grants with no token and no code left (revoked ones included). Engines delete in
    /// bounded batches so that no write lock is held for long.
    async fn purge_expired(&self, now: i64) -> StoreResult<()>;

    /// Stores `key` only if no active (unretired) key for its algorithm exists, in one atomic
    /// step; true if this caller's key was stored. Two servers starting together on a new
    /// database thus end up with one key per algorithm (issue 13 item 17).
    async fn insert_signing_key_if_missing(&self, key: &StoredKey) -> StoreResult<bool>;
    /// Stores `keys` (which sign from their `activates_at`) and retires at `retire_at` every
    /// key not retired by then, atomically: a server starting meanwhile sees either the old
    /// keys or the new ones, never none (issue 13 item 17). With `retire_at` in the future
    /// the new keys are pre-published (issue 17 item 4): the old ones sign until then; a
    /// second rotation before that moment also cuts short the keys the first one scheduled.
    async fn rotate_signing_keys(&self, keys: &[StoredKey], retire_at: i64) -> StoreResult<()>;
    /// Replaces the stored private key of `kid` with `private_key`, only while it is still
    /// `expected` (compare and swap: of several servers sealing a plaintext key at once, one
    /// writes, issue 17 item 4). True if this caller's write happened.
    async fn replace_signing_key_material(&self, kid: &str, expected: &[u8], private_key: &[u8]) -> StoreResult<bool>;
    /// How many rows each table holds (issue 13 item 5: growth is visible, and the purge is
    /// checked against every table).
    async fn table_sizes(&self) -> StoreResult<TableSizes>;

    // the non-repudiation evidence log (issue 16 item 5, `crate::audit`)
    /// Appends entries the caller has already chained (consecutive `seq`, each `prev_hash` the
    /// previous entry's hash), all or none, and only if the first one follows the stored head
    /// (the last entry, or the anchor when there is none). False, with nothing written, when
    /// the head has moved (another writer, on another node, appended first): the caller
    /// re-reads the head and chains again. So the chain never forks.
    async fn append_audit(&self, records: &[AuditRecord]) -> StoreResult<bool>;
    /// The last entry's position, else the anchor (a fresh log: `ChainPoint::GENESIS`).
    async fn audit_head(&self) -> StoreResult<ChainPoint>;
    /// Where verification starts: the last entry the retention purge removed, else genesis.
    async fn audit_anchor(&self) -> StoreResult<ChainPoint>;
    /// The entries of one interaction, in `seq` order.
    async fn audit_by_interaction(&self, interaction_id: &str) -> StoreResult<Vec<AuditRecord>>;
    /// Up to `limit` entries with `seq > after_seq`, in `seq` order (verification streams the
    /// log with this).
    async fn audit_range(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRecord>>;
    /// Retention: removes the oldest entries, up to (not including) the first with
    /// `at >= before`, so that what stays is one unbroken chain; the last removed entry becomes
    /// the anchor. In bounded batches. Returns how many went.
    async fn purge_audit_before(&self, before: i64) -> StoreResult<u64>;
}

/// Row counts per table, see [`Store::table_sizes`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableSizes {
    pub clients: u64,
    pub initial_access_tokens: u64,
    pub users: u64,
    pub pushed_requests: u64,
    pub interactions: u64,
    pub grants: u64,
    pub codes: u64,
    pub tokens: u64,
    pub replay: u64,
    pub sessions: u64,
    pub signing_keys: u64,
    pub audit: u64,
}
