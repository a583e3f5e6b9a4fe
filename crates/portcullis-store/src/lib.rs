//! The SQLite implementation of `portcullis_core::Store` (the embedded default). Every
//! single-use operation is one atomic statement; the SQL is kept portable so that the
//! PostgreSQL engine can share it.
#![forbid(unsafe_code)]

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::StoreError;
use portcullis_core::audit::{AuditRecord, ChainHash, ChainPoint, Direction, Evidence, EvidenceKind, Proof};
use portcullis_core::model::{
    AuthorizationCode, Client, CodeRedemption, Grant, InitialAccessToken, Interaction, InteractionStart, PushedRequest,
    Session, StoredKey, TokenKind, TokenRecord, User,
};
use portcullis_core::store::{Store, StoreResult, TableSizes};
use portcullis_core::types::{JwkThumbprint, PkceChallenge};
use portcullis_jose::Algorithm;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};

const SCHEMA: &str = include_str!("schema.sql");
/// The version `schema.sql` describes.
const BASE_VERSION: i64 = 1;
/// Each later version's change, applied in order to a database at an older version.
const MIGRATIONS: [(i64, &[&str]); 7] = [
    // issue 13 item 14: registration access tokens expire; tokens issued before get the
    // default lifetime (30 days) from the upgrade on
    (
        2,
        &[
            "ALTER TABLE clients ADD COLUMN registration_token_expires_at BIGINT",
            "UPDATE clients SET registration_token_expires_at = CAST(strftime('%s', 'now') AS INTEGER) + 2592000 \
             WHERE registration_token_hash IS NOT NULL",
        ],
    ),
    // issue 13 item 6: a session remembers the request its login was made for
    (3, &["ALTER TABLE sessions ADD COLUMN login_request TEXT"]),
    // issue 15: resource indicators (RFC 8707) on grants and codes, audiences on tokens
    (
        4,
        &[
            "ALTER TABLE grants ADD COLUMN resources TEXT",
            "ALTER TABLE codes ADD COLUMN resources TEXT",
            "ALTER TABLE tokens ADD COLUMN audience TEXT",
        ],
    ),
    // issue 16 item 5: the non-repudiation evidence log, hash-chained (portcullis_core::audit).
    // Hashes are lowercase hex; signature and body are BLOB (BYTEA on PostgreSQL); the
    // anchor is one row (id 1): the last entry the retention purge removed.
    (
        5,
        &[
            "CREATE TABLE IF NOT EXISTS audit_log (
                seq BIGINT PRIMARY KEY,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL,
                at BIGINT NOT NULL,
                kind TEXT NOT NULL,
                direction TEXT NOT NULL,
                interaction_id TEXT NOT NULL,
                client_id TEXT NOT NULL,
                alg TEXT NOT NULL,
                jwk TEXT NOT NULL,
                proof TEXT NOT NULL,
                message TEXT NOT NULL,
                signature BLOB,
                body BLOB
            )",
            "CREATE INDEX IF NOT EXISTS audit_log_interaction ON audit_log (interaction_id, seq)",
            "CREATE TABLE IF NOT EXISTS audit_anchor (
                id INTEGER PRIMARY KEY,
                seq BIGINT NOT NULL,
                hash TEXT NOT NULL
            )",
        ],
    ),
    // issue 17: creation times for `user list` and `registration-token list` (unknown for
    // older rows); removing a user finds their sessions and grants by index
    (
        6,
        &[
            "ALTER TABLE users ADD COLUMN created_at BIGINT",
            "ALTER TABLE initial_access_tokens ADD COLUMN created_at BIGINT",
            "CREATE INDEX IF NOT EXISTS sessions_username ON sessions (username)",
            "CREATE INDEX IF NOT EXISTS grants_sub ON grants (sub)",
            "CREATE INDEX IF NOT EXISTS codes_sub ON codes (sub)",
        ],
    ),
    // issue 17 item 4 (keys: pre-publication): a key signs from activates_at, which `keys
    // rotate` sets after its creation so that clients see the kid in the JWKS first; older
    // keys signed from their creation. (The private keys are sealed in the `pkcs8` column by
    // the server at start: no schema change.)
    (
        7,
        &[
            "ALTER TABLE signing_keys ADD COLUMN activates_at BIGINT",
            "UPDATE signing_keys SET activates_at = created_at WHERE activates_at IS NULL",
        ],
    ),
    // issue 17 item 7: browser-bound interactions; one per browser and request_uri, each with
    // a copy of the request and its own clock (the first to complete consumes the request_uri)
    (
        8,
        &[
            "CREATE TABLE IF NOT EXISTS interactions (
                id TEXT PRIMARY KEY,
                browser_hash TEXT NOT NULL,
                request_uri_hash TEXT NOT NULL,
                client_id TEXT NOT NULL,
                request TEXT NOT NULL,
                pushed_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                completed INTEGER NOT NULL DEFAULT 0,
                UNIQUE (request_uri_hash, browser_hash)
            )",
            "CREATE INDEX IF NOT EXISTS interactions_expires_at ON interactions (expires_at)",
            "CREATE INDEX IF NOT EXISTS interactions_client ON interactions (client_id)",
        ],
    ),
];
/// The version this binary writes.
pub const SCHEMA_VERSION: i64 = 8;

pub struct SqliteStore {
    pool: SqlitePool,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// How long opening waits for a database another process holds locked (issue 13 item 17).
pub const OPEN_WAIT: Duration = Duration::from_secs(30);

/// Whether `e` is SQLite's "database is locked" (SQLITE_BUSY / SQLITE_LOCKED and their
/// extended codes): another connection holds a lock we need.
fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}

enum OpenError {
    Sql(sqlx::Error),
    Refused(String),
}

/// Rows deleted per statement by `purge_expired` (and per transaction by
/// `purge_audit_before`).
const PURGE_BATCH: i64 = 500;

/// `SELECT` of every column of an interaction (as `interaction_from_row` reads them).
macro_rules! select_interaction {
    () => {
        "SELECT id, browser_hash, request_uri_hash, request, pushed_at, expires_at, completed FROM interactions "
    };
}

fn interaction_from_row(row: &SqliteRow) -> StoreResult<Interaction> {
    let request: String = row.try_get("request").map_err(err)?;
    let completed: i64 = row.try_get("completed").map_err(err)?;
    Ok(Interaction {
        id: row.try_get("id").map_err(err)?,
        browser_hash: row.try_get("browser_hash").map_err(err)?,
        request_uri_hash: row.try_get("request_uri_hash").map_err(err)?,
        request: serde_json::from_str(&request).map_err(err)?,
        pushed_at: row.try_get("pushed_at").map_err(err)?,
        expires_at: row.try_get("expires_at").map_err(err)?,
        completed: completed != 0,
    })
}

/// `SELECT` of every column of an audit entry (as `audit_from_row` reads them), then `$rest`.
macro_rules! select_audit {
    ($rest:literal) => {
        concat!(
            "SELECT seq, prev_hash, hash, at, kind, direction, interaction_id, client_id, alg, jwk, proof, \
             message, signature, body FROM audit_log ",
            $rest
        )
    };
}

/// The file a `sqlite:` URL names, if it names one (not an in-memory database).
pub fn sqlite_url_file(url: &str) -> Option<std::path::PathBuf> {
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let file = options.get_filename();
    let name = file.to_string_lossy();
    if name.is_empty() || name.starts_with(":memory:") || url.contains("mode=memory") {
        return None;
    }
    Some(file.to_path_buf())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies the schema, waiting up to
    /// [`OPEN_WAIT`] for another process that holds the database locked.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Self::open_waiting(path, OPEN_WAIT).await
    }

    /// [`Self::open`] with its own bound on waiting for a locked database.
    pub async fn open_waiting(path: &Path, wait: Duration) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        Self::with_options(options, wait).await
    }

    /// Opens a `sqlite:` URL.
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        Self::with_options(options, OPEN_WAIT).await
    }

    /// Connects and applies the schema. A busy or locked database (another process starting
    /// at the same moment: switching to WAL returns "database is locked" without waiting) is
    /// retried with backoff for up to `wait`, never fatal before that (issue 13 item 17).
    async fn with_options(options: SqliteConnectOptions, wait: Duration) -> StoreResult<Self> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(20);
        loop {
            match Self::try_open(options.clone()).await {
                Ok(store) => return Ok(store),
                Err(OpenError::Sql(e)) if is_busy(&e) => {
                    if tokio::time::Instant::now() + pause > deadline {
                        return Err(StoreError(format!(
                            "another process has held the database locked for more than {} s ({e})",
                            wait.as_secs()
                        )));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(OpenError::Sql(e)) => return Err(err(e)),
                Err(OpenError::Refused(e)) => return Err(StoreError(e)),
            }
        }
    }

    async fn try_open(options: SqliteConnectOptions) -> Result<Self, OpenError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(OpenError::Sql)?;
        match Self::apply_schema(&pool).await {
            Ok(()) => Ok(Self { pool }),
            Err(e) => {
                pool.close().await;
                Err(e)
            }
        }
    }

    async fn apply_schema(pool: &SqlitePool) -> Result<(), OpenError> {
        sqlx::raw_sql(SCHEMA).execute(pool).await.map_err(OpenError::Sql)?;
        // the schema version: recorded on first open, and a newer one is never opened by an
        // older binary (it would not know the columns)
        let version: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM schema_version")
            .fetch_one(pool)
            .await
            .and_then(|row| row.try_get("v"))
            .map_err(OpenError::Sql)?;
        match version {
            None => {
                sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
                    .bind(BASE_VERSION)
                    .execute(pool)
                    .await
                    .map_err(OpenError::Sql)?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(OpenError::Refused(format!(
                    "the database has schema version {v}, newer than this binary's {SCHEMA_VERSION}"
                )));
            }
            Some(_) => {}
        }
        migrate(pool, version.unwrap_or(BASE_VERSION))
            .await
            .map_err(OpenError::Sql)?;
        Ok(())
    }

    /// Runs a batched `DELETE ... WHERE key IN (SELECT key ... LIMIT ?)` until fewer than a
    /// batch went, yielding between batches so that hot-path writes get the lock in between.
    async fn delete_in_batches(&self, sql: &'static str, at: Option<i64>) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let mut q = sqlx::query(sql);
            if let Some(at) = at {
                q = q.bind(at);
            }
            let n = q
                .bind(PURGE_BATCH)
                .execute(&self.pool)
                .await
                .map_err(err)?
                .rows_affected();
            total += n;
            if n < PURGE_BATCH as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// One round trip (`SELECT 1`): the database answers (readiness, INTERFACE.md).
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(err)?;
        Ok(())
    }
}

/// Why a database file is not one this binary can use (`portcullis check`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatabaseProblem {
    /// The file cannot be opened or read at all.
    Unreadable(String),
    /// The file is not an SQLite database.
    NotADatabase,
    /// SQLite's integrity check failed: the first problems it reported.
    Corrupt(Vec<String>),
    /// An SQLite database, but not Portcullis's: these tables are missing.
    Foreign(Vec<String>),
    /// Portcullis's, at another schema version than this binary's.
    SchemaVersion { found: i64, expected: i64 },
}

impl std::fmt::Display for DatabaseProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreadable(e) => write!(f, "cannot be read: {e}"),
            Self::NotADatabase => f.write_str("is not an SQLite database"),
            Self::Corrupt(problems) => write!(f, "is corrupt: {}", problems.join("; ")),
            Self::Foreign(missing) => match missing.as_slice() {
                [one] => write!(f, "is not a Portcullis database (it has no {one})"),
                [first, rest @ ..] => write!(
                    f,
                    "is not a Portcullis database (it has no {first}, nor {} more of Portcullis's tables)",
                    rest.len()
                ),
                [] => f.write_str("is not a Portcullis database"),
            },
            Self::SchemaVersion { found, expected } if found < expected => write!(
                f,
                "has schema version {found}, older than this binary's {expected} (the next `portcullis serve` upgrades it)"
            ),
            Self::SchemaVersion { found, expected } => write!(
                f,
                "has schema version {found}, newer than this binary's {expected} (run the newer portcullis that wrote it)"
            ),
        }
    }
}

/// Checks an existing database file without changing it (opened read-only, nothing created or
/// migrated): SQLite's `PRAGMA integrity_check`, Portcullis's tables, and a schema version equal
/// to this binary's. Returns that version.
pub async fn check_database(path: &Path) -> Result<i64, DatabaseProblem> {
    use sqlx::ConnectOptions;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = options.connect().await.map_err(problem)?;
    let outcome = check_connection(&mut conn).await;
    let _ = sqlx::Connection::close(conn).await;
    outcome
}

async fn check_connection(conn: &mut sqlx::SqliteConnection) -> Result<i64, DatabaseProblem> {
    // the first five problems SQLite finds are enough to say what is wrong
    let rows = sqlx::query("PRAGMA integrity_check(5)")
        .fetch_all(&mut *conn)
        .await
        .map_err(problem)?;
    // one problem a line (a row may hold several), without SQLite's "*** in database main ***"
    let findings: Vec<String> = rows
        .iter()
        .filter_map(|r| r.try_get::<String, _>(0).ok())
        .flat_map(|m| m.lines().map(str::trim).map(String::from).collect::<Vec<_>>())
        .filter(|m| !m.is_empty() && m != "ok" && !m.starts_with("***"))
        .collect();
    if !findings.is_empty() {
        return Err(DatabaseProblem::Corrupt(findings));
    }
    let tables: Vec<String> = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&mut *conn)
        .await
        .map_err(problem)?
        .iter()
        .filter_map(|r| r.try_get::<String, _>("name").ok())
        .collect();
    let missing: Vec<String> = schema_tables()
        .filter(|t| !tables.iter().any(|have| have == t))
        .map(|t| format!("{t} table"))
        .collect();
    if !missing.is_empty() {
        return Err(DatabaseProblem::Foreign(missing));
    }
    let found: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM schema_version")
        .fetch_one(&mut *conn)
        .await
        .and_then(|row| row.try_get("v"))
        .map_err(problem)?;
    match found {
        Some(v) if v == SCHEMA_VERSION => Ok(v),
        Some(v) => Err(DatabaseProblem::SchemaVersion {
            found: v,
            expected: SCHEMA_VERSION,
        }),
        None => Err(DatabaseProblem::Foreign(vec!["schema_version row".into()])),
    }
}

/// The tables `schema.sql` creates.
fn schema_tables() -> impl Iterator<Item = &'static str> {
    SCHEMA.lines().filter_map(|l| {
        l.trim()
            .strip_prefix("CREATE TABLE IF NOT EXISTS ")
            .and_then(|rest| rest.split([' ', '(']).next())
    })
}

/// SQLite's result codes for "not a database" (26) and "malformed" (11), and their extended
/// forms, as what they mean here.
fn problem(e: sqlx::Error) -> DatabaseProblem {
    if let sqlx::Error::Database(d) = &e {
        match d.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff) {
            Some(26) => return DatabaseProblem::NotADatabase,
            Some(11) => return DatabaseProblem::Corrupt(vec![d.message().to_owned()]),
            _ => {}
        }
    }
    DatabaseProblem::Unreadable(e.to_string())
}

/// Applies every migration newer than `from`, each with its version row in one transaction (a
/// second process racing this one finds the version already written and skips it).
async fn migrate(pool: &SqlitePool, from: i64) -> Result<(), sqlx::Error> {
    for &(version, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        let mut conn = pool.acquire().await?;
        // IMMEDIATE: the write lock up front, so two processes migrating at once queue on the
        // busy timeout instead of failing on a lock upgrade
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        let applied = async {
            let done: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM schema_version")
                .fetch_one(&mut *conn)
                .await
                .and_then(|row| row.try_get("v"))?;
            if done.is_some_and(|d| d >= version) {
                return Ok(());
            }
            for &sql in statements {
                sqlx::raw_sql(sql).execute(&mut *conn).await?;
            }
            sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
                .bind(version)
                .execute(&mut *conn)
                .await?;
            Ok::<(), sqlx::Error>(())
        }
        .await;
        let end = if applied.is_ok() { "COMMIT" } else { "ROLLBACK" };
        sqlx::raw_sql(end).execute(&mut *conn).await?;
        applied?;
    }
    Ok(())
}

/// An audit entry as stored. A value no entry could have (an unknown kind, a hash that is not
/// hex) is an error naming the entry: `audit verify` reports it as the broken link.
fn audit_from_row(row: &SqliteRow) -> StoreResult<AuditRecord> {
    let seq: i64 = row.try_get("seq").map_err(err)?;
    let bad = |what: &str| StoreError(format!("audit entry {seq}: {what}"));
    let hash = |name: &str| -> StoreResult<ChainHash> {
        let v: String = row.try_get(name).map_err(err)?;
        ChainHash::from_hex(&v).ok_or_else(|| bad(&format!("{name} is not a SHA-256 hash")))
    };
    let kind: String = row.try_get("kind").map_err(err)?;
    let direction: String = row.try_get("direction").map_err(err)?;
    let proof: String = row.try_get("proof").map_err(err)?;
    let message: String = row.try_get("message").map_err(err)?;
    let proof = match proof.as_str() {
        "jws" => Proof::Jws { compact: message },
        "http_signature" => Proof::HttpSignature {
            base: message,
            signature: row
                .try_get::<Option<Vec<u8>>, _>("signature")
                .map_err(err)?
                .ok_or_else(|| bad("an HTTP signature entry without a signature"))?,
            body: row.try_get("body").map_err(err)?,
        },
        other => return Err(bad(&format!("unknown proof type {other:?}"))),
    };
    Ok(AuditRecord {
        seq,
        prev_hash: hash("prev_hash")?,
        hash: hash("hash")?,
        evidence: Evidence {
            kind: EvidenceKind::parse(&kind).ok_or_else(|| bad(&format!("unknown kind {kind:?}")))?,
            direction: Direction::parse(&direction).ok_or_else(|| bad(&format!("unknown direction {direction:?}")))?,
            interaction_id: row.try_get("interaction_id").map_err(err)?,
            client_id: row.try_get("client_id").map_err(err)?,
            at: row.try_get("at").map_err(err)?,
            alg: row.try_get("alg").map_err(err)?,
            key: row.try_get("jwk").map_err(err)?,
            proof,
        },
    })
}

/// The stored head inside a transaction: the last entry, else the anchor, else genesis.
async fn audit_head_in(conn: &mut sqlx::SqliteConnection) -> StoreResult<ChainPoint> {
    let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(err)?;
    match row {
        Some(row) => point_from_row(&row),
        None => audit_anchor_in(conn).await,
    }
}

async fn audit_anchor_in(conn: &mut sqlx::SqliteConnection) -> StoreResult<ChainPoint> {
    let row = sqlx::query("SELECT seq, hash FROM audit_anchor WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(err)?;
    row.as_ref().map_or(Ok(ChainPoint::GENESIS), point_from_row)
}

fn point_from_row(row: &SqliteRow) -> StoreResult<ChainPoint> {
    let seq: i64 = row.try_get("seq").map_err(err)?;
    let hash: String = row.try_get("hash").map_err(err)?;
    let hash = ChainHash::from_hex(&hash).ok_or_else(|| StoreError(format!("audit entry {seq}: bad hash")))?;
    Ok(ChainPoint { seq, hash })
}

fn client_from_row(row: &SqliteRow) -> StoreResult<Client> {
    let metadata: String = row.try_get("metadata").map_err(err)?;
    Ok(Client {
        client_id: row.try_get("client_id").map_err(err)?,
        issued_at: row.try_get("issued_at").map_err(err)?,
        metadata: serde_json::from_str(&metadata).map_err(err)?,
    })
}

fn user_from_row(row: &SqliteRow) -> StoreResult<User> {
    let claims: String = row.try_get("claims").map_err(err)?;
    Ok(User {
        username: row.try_get("username").map_err(err)?,
        sub: row.try_get("sub").map_err(err)?,
        password_hash: row.try_get("password_hash").map_err(err)?,
        claims: serde_json::from_str(&claims).map_err(err)?,
        created_at: row.try_get("created_at").map_err(err)?,
    })
}

/// `SELECT` of every user column, with `$tail` (a `WHERE` or `ORDER BY` clause) after it.
macro_rules! select_users {
    ($tail:literal) => {
        concat!(
            "SELECT username, sub, password_hash, claims, created_at FROM users ",
            $tail
        )
    };
}

/// A space-separated list column (NULL in rows written before the column existed).
fn split_list(v: Option<String>) -> Vec<String> {
    v.as_deref().map(split_scope).unwrap_or_default()
}

fn split_scope(s: &str) -> Vec<String> {
    s.split(' ').filter(|x| !x.is_empty()).map(String::from).collect()
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_client(&self, client: &Client, registration_token: Option<(&str, i64)>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO clients (client_id, issued_at, metadata, registration_token_hash, \
             registration_token_expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&client.client_id)
        .bind(client.issued_at)
        .bind(serde_json::to_string(&client.metadata).map_err(err)?)
        .bind(registration_token.map(|t| t.0))
        .bind(registration_token.map(|t| t.1))
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        let row = sqlx::query("SELECT client_id, issued_at, metadata FROM clients WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn get_client_by_registration_token(
        &self,
        client_id: &str,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<Client>> {
        let row = sqlx::query(
            "SELECT client_id, issued_at, metadata FROM clients WHERE client_id = ? AND registration_token_hash = ? \
             AND registration_token_expires_at > ?",
        )
        .bind(client_id)
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn update_client(&self, client: &Client) -> StoreResult<bool> {
        let r = sqlx::query("UPDATE clients SET metadata = ? WHERE client_id = ?")
            .bind(serde_json::to_string(&client.metadata).map_err(err)?)
            .bind(&client.client_id)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn update_client_registration(
        &self,
        client: &Client,
        old_token_hash: &str,
        new_token: (&str, i64),
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE clients SET metadata = ?, registration_token_hash = ?, registration_token_expires_at = ? \
             WHERE client_id = ? AND registration_token_hash = ?",
        )
        .bind(serde_json::to_string(&client.metadata).map_err(err)?)
        .bind(new_token.0)
        .bind(new_token.1)
        .bind(&client.client_id)
        .bind(old_token_hash)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("DELETE FROM tokens WHERE grant_id IN (SELECT grant_id FROM grants WHERE client_id = ?)")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        for sql in [
            "DELETE FROM codes WHERE client_id = ?",
            "DELETE FROM grants WHERE client_id = ?",
            "DELETE FROM pushed_requests WHERE client_id = ?",
            "DELETE FROM interactions WHERE client_id = ?",
        ] {
            sqlx::query(sql).bind(client_id).execute(&mut *tx).await.map_err(err)?;
        }
        let r = sqlx::query("DELETE FROM clients WHERE client_id = ?")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let rows = sqlx::query("SELECT client_id, issued_at, metadata FROM clients ORDER BY issued_at, client_id")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(client_from_row).collect()
    }

    async fn insert_initial_access_token(&self, token: &InitialAccessToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO initial_access_tokens (token_hash, created_at, expires_at, uses_left) VALUES (?, ?, ?, ?)",
        )
        .bind(&token.token_hash)
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token.uses_left)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn list_initial_access_tokens(&self) -> StoreResult<Vec<InitialAccessToken>> {
        let rows = sqlx::query(
            "SELECT token_hash, created_at, expires_at, uses_left FROM initial_access_tokens \
             ORDER BY created_at, token_hash",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|row| {
                Ok(InitialAccessToken {
                    token_hash: row.try_get("token_hash").map_err(err)?,
                    created_at: row.try_get("created_at").map_err(err)?,
                    expires_at: row.try_get("expires_at").map_err(err)?,
                    uses_left: row.try_get("uses_left").map_err(err)?,
                })
            })
            .collect()
    }

    async fn delete_initial_access_token(&self, token_hash: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM initial_access_tokens WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn initial_access_token_valid(&self, token_hash: &str, now: i64) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT 1 AS ok FROM initial_access_tokens \
             WHERE token_hash = ? AND expires_at > ? AND (uses_left IS NULL OR uses_left > 0)",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        Ok(row.is_some())
    }

    async fn use_initial_access_token(&self, token_hash: &str, now: i64) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE initial_access_tokens SET uses_left = uses_left - 1 \
             WHERE token_hash = ? AND expires_at > ? AND (uses_left IS NULL OR uses_left > 0)",
        )
        .bind(token_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        sqlx::query("INSERT INTO users (username, sub, password_hash, claims, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&user.username)
            .bind(&user.sub)
            .bind(&user.password_hash)
            .bind(serde_json::to_string(&user.claims).map_err(err)?)
            .bind(user.created_at)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn get_user(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(select_users!("WHERE username = ?"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn get_user_by_sub(&self, sub: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(select_users!("WHERE sub = ?"))
            .bind(sub)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(select_users!("ORDER BY username"))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_user_password(&self, username: &str, password_hash: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let r = sqlx::query("UPDATE users SET password_hash = ? WHERE username = ?")
            .bind(password_hash)
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        if r.rows_affected() != 1 {
            tx.rollback().await.map_err(err)?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM sessions WHERE username = ?")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn delete_user(&self, username: &str) -> StoreResult<bool> {
        // IMMEDIATE: the write lock first, so that no code or token for the user is written
        // between reading their sub and deleting what hangs off it
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let sub: Option<String> = sqlx::query("DELETE FROM users WHERE username = ? RETURNING sub")
            .bind(username)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?
            .map(|row| row.try_get("sub"))
            .transpose()
            .map_err(err)?;
        let Some(sub) = sub else {
            tx.rollback().await.map_err(err)?;
            return Ok(false);
        };
        sqlx::query("DELETE FROM tokens WHERE grant_id IN (SELECT grant_id FROM grants WHERE sub = ?)")
            .bind(&sub)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        for sql in ["DELETE FROM codes WHERE sub = ?", "DELETE FROM grants WHERE sub = ?"] {
            sqlx::query(sql).bind(&sub).execute(&mut *tx).await.map_err(err)?;
        }
        sqlx::query("DELETE FROM sessions WHERE username = ?")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn insert_pushed_request(&self, request: &PushedRequest) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO pushed_requests (request_uri_hash, client_id, request, expires_at, consumed) VALUES (?, ?, ?, ?, 0)",
        )
        .bind(&request.request_uri_hash)
        .bind(&request.request.client_id)
        .bind(serde_json::to_string(&request.request).map_err(err)?)
        .bind(request.expires_at)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn get_pushed_request(&self, request_uri_hash: &str) -> StoreResult<Option<PushedRequest>> {
        let row = sqlx::query("SELECT request, expires_at, consumed FROM pushed_requests WHERE request_uri_hash = ?")
            .bind(request_uri_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        let Some(row) = row else { return Ok(None) };
        let request: String = row.try_get("request").map_err(err)?;
        let consumed: i64 = row.try_get("consumed").map_err(err)?;
        Ok(Some(PushedRequest {
            request_uri_hash: request_uri_hash.to_owned(),
            request: serde_json::from_str(&request).map_err(err)?,
            expires_at: row.try_get("expires_at").map_err(err)?,
            consumed: consumed != 0,
        }))
    }

    async fn start_interaction(
        &self,
        interaction: &Interaction,
        now: i64,
        max_live: u32,
    ) -> StoreResult<InteractionStart> {
        // the write lock first: the checks and the insert are one step (PostgreSQL: `SELECT ...
        // FOR UPDATE` of the pushed request serialises the interactions on one request_uri)
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let available =
            sqlx::query("SELECT 1 FROM pushed_requests WHERE request_uri_hash = ? AND consumed = 0 AND expires_at > ?")
                .bind(&interaction.request_uri_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?
                .is_some();
        if !available {
            tx.rollback().await.map_err(err)?;
            return Ok(InteractionStart::Unavailable);
        }
        let existing = sqlx::query(concat!(
            select_interaction!(),
            "WHERE request_uri_hash = ? AND browser_hash = ?"
        ))
        .bind(&interaction.request_uri_hash)
        .bind(&interaction.browser_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?;
        if let Some(row) = existing {
            tx.rollback().await.map_err(err)?;
            return Ok(InteractionStart::Existing(Box::new(interaction_from_row(&row)?)));
        }
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM interactions WHERE request_uri_hash = ? AND completed = 0 AND expires_at > ?",
        )
        .bind(&interaction.request_uri_hash)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        if live >= i64::from(max_live) {
            tx.rollback().await.map_err(err)?;
            return Ok(InteractionStart::TooMany);
        }
        sqlx::query(
            "INSERT INTO interactions (id, browser_hash, request_uri_hash, client_id, request, pushed_at, expires_at, \
             completed) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
        )
        .bind(&interaction.id)
        .bind(&interaction.browser_hash)
        .bind(&interaction.request_uri_hash)
        .bind(&interaction.request.client_id)
        .bind(serde_json::to_string(&interaction.request).map_err(err)?)
        .bind(interaction.pushed_at)
        .bind(interaction.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(InteractionStart::Started)
    }

    async fn get_interaction(&self, id: &str) -> StoreResult<Option<Interaction>> {
        let row = sqlx::query(concat!(select_interaction!(), "WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(interaction_from_row).transpose()
    }

    async fn get_browser_interaction(
        &self,
        request_uri_hash: &str,
        browser_hash: &str,
    ) -> StoreResult<Option<Interaction>> {
        let row = sqlx::query(concat!(
            select_interaction!(),
            "WHERE request_uri_hash = ? AND browser_hash = ?"
        ))
        .bind(request_uri_hash)
        .bind(browser_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(interaction_from_row).transpose()
    }

    async fn complete_interaction(&self, id: &str, now: i64) -> StoreResult<bool> {
        // one transaction under the write lock: the request_uri is consumed (whatever its own
        // expiry) and the interaction completed together, or neither; of the interactions on
        // one request_uri, the first to get here wins
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let consumed = sqlx::query(
            "UPDATE pushed_requests SET consumed = 1 WHERE consumed = 0 AND request_uri_hash = \
             (SELECT request_uri_hash FROM interactions WHERE id = ? AND completed = 0 AND expires_at > ?)",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        if consumed.rows_affected() != 1 {
            tx.rollback().await.map_err(err)?;
            return Ok(false);
        }
        let completed = sqlx::query("UPDATE interactions SET completed = 1 WHERE id = ? AND completed = 0")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        if completed.rows_affected() != 1 {
            tx.rollback().await.map_err(err)?;
            return Ok(false);
        }
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()> {
        let g = &code.grant;
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query(
            "INSERT INTO grants (grant_id, client_id, sub, scope, auth_time, created_at, revoked, resources) \
             VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
        )
        .bind(&g.grant_id)
        .bind(&g.client_id)
        .bind(&g.sub)
        .bind(g.scope.join(" "))
        .bind(g.auth_time)
        .bind(g.created_at)
        .bind(g.resources.join(" "))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        sqlx::query(
            "INSERT INTO codes (code_hash, grant_id, client_id, sub, scope, auth_time, created_at, redirect_uri, \
             code_challenge, dpop_jkt, nonce, expires_at, resources) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&code.code_hash)
        .bind(&g.grant_id)
        .bind(&g.client_id)
        .bind(&g.sub)
        .bind(g.scope.join(" "))
        .bind(g.auth_time)
        .bind(g.created_at)
        .bind(&code.redirect_uri)
        .bind(code.code_challenge.as_str())
        .bind(code.dpop_jkt.as_ref().map(JwkThumbprint::as_str))
        .bind(&code.nonce)
        .bind(code.expires_at)
        .bind(g.resources.join(" "))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(())
    }

    async fn redeem_code(&self, code_hash: &str, client_id: &str, now: i64) -> StoreResult<CodeRedemption> {
        // the single-use step: one UPDATE; only the caller that flips consumed_at gets the row,
        // which carries the grant too (one round trip)
        let won = sqlx::query(
            "UPDATE codes SET consumed_at = ? \
             WHERE code_hash = ? AND client_id = ? AND consumed_at IS NULL AND expires_at > ? \
             RETURNING grant_id, client_id, sub, scope, auth_time, created_at, redirect_uri, code_challenge, \
             dpop_jkt, nonce, expires_at, resources",
        )
        .bind(now)
        .bind(code_hash)
        .bind(client_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        if let Some(row) = won {
            let scope: String = row.try_get("scope").map_err(err)?;
            return Ok(CodeRedemption::Redeemed(Box::new(AuthorizationCode {
                code_hash: code_hash.to_owned(),
                grant: Grant {
                    grant_id: row.try_get("grant_id").map_err(err)?,
                    client_id: row.try_get("client_id").map_err(err)?,
                    sub: row.try_get("sub").map_err(err)?,
                    scope: split_scope(&scope),
                    auth_time: row.try_get("auth_time").map_err(err)?,
                    created_at: row.try_get("created_at").map_err(err)?,
                    resources: split_list(row.try_get("resources").map_err(err)?),
                },
                redirect_uri: row.try_get("redirect_uri").map_err(err)?,
                code_challenge: PkceChallenge::from_trusted(row.try_get("code_challenge").map_err(err)?),
                dpop_jkt: row
                    .try_get::<Option<String>, _>("dpop_jkt")
                    .map_err(err)?
                    .map(JwkThumbprint::from_trusted),
                nonce: row.try_get("nonce").map_err(err)?,
                expires_at: row.try_get("expires_at").map_err(err)?,
            })));
        }
        let row = sqlx::query("SELECT grant_id, client_id, expires_at, consumed_at FROM codes WHERE code_hash = ?")
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        let Some(row) = row else {
            return Ok(CodeRedemption::Unknown);
        };
        let consumed_at: Option<i64> = row.try_get("consumed_at").map_err(err)?;
        let owner: String = row.try_get("client_id").map_err(err)?;
        let expires_at: i64 = row.try_get("expires_at").map_err(err)?;
        // the owner first: only the client a code was issued to can replay it (issue 13 item 8)
        Ok(if owner != client_id {
            CodeRedemption::OtherClient
        } else if consumed_at.is_some() {
            CodeRedemption::Replayed {
                grant_id: row.try_get("grant_id").map_err(err)?,
            }
        } else if expires_at <= now {
            CodeRedemption::Expired
        } else {
            CodeRedemption::Unknown
        })
    }

    async fn insert_tokens(&self, tokens: &[TokenRecord]) -> StoreResult<()> {
        // one statement for the one or two tokens of a grant: atomic without a transaction, and
        // one round trip to the database thread instead of four
        const ONE: &str = "INSERT INTO tokens (token_hash, kind, grant_id, sender_constraint, scope, issued_at, \
                           expires_at, audience) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
        const TWO: &str = "INSERT INTO tokens (token_hash, kind, grant_id, sender_constraint, scope, issued_at, \
                           expires_at, audience) VALUES (?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?)";
        for chunk in tokens.chunks(2) {
            let mut q = sqlx::query(if chunk.len() == 2 { TWO } else { ONE });
            for t in chunk {
                let constraint = t
                    .constraint
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(err)?;
                q = q
                    .bind(&t.token_hash)
                    .bind(t.kind.as_str())
                    .bind(&t.grant_id)
                    .bind(constraint)
                    .bind(t.scope.join(" "))
                    .bind(t.issued_at)
                    .bind(t.expires_at)
                    .bind(t.audience.join(" "));
            }
            q.execute(&self.pool).await.map_err(err)?;
        }
        Ok(())
    }

    async fn get_token(
        &self,
        token_hash: &str,
        kind: TokenKind,
        now: i64,
    ) -> StoreResult<Option<(TokenRecord, Grant)>> {
        let row = sqlx::query(
            "SELECT t.grant_id, t.sender_constraint, t.scope AS token_scope, t.issued_at, t.expires_at, t.audience, \
                    g.client_id, g.sub, g.scope AS grant_scope, g.auth_time, g.created_at, g.resources \
             FROM tokens t JOIN grants g ON g.grant_id = t.grant_id \
             WHERE t.token_hash = ? AND t.kind = ? AND t.expires_at > ? AND g.revoked = 0",
        )
        .bind(token_hash)
        .bind(kind.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        let Some(row) = row else { return Ok(None) };
        let grant_id: String = row.try_get("grant_id").map_err(err)?;
        let constraint: Option<String> = row.try_get("sender_constraint").map_err(err)?;
        let token_scope: String = row.try_get("token_scope").map_err(err)?;
        let grant_scope: String = row.try_get("grant_scope").map_err(err)?;
        let record = TokenRecord {
            token_hash: token_hash.to_owned(),
            kind,
            grant_id: grant_id.clone(),
            constraint: constraint.map(|c| serde_json::from_str(&c)).transpose().map_err(err)?,
            scope: split_scope(&token_scope),
            audience: split_list(row.try_get("audience").map_err(err)?),
            issued_at: row.try_get("issued_at").map_err(err)?,
            expires_at: row.try_get("expires_at").map_err(err)?,
        };
        let grant = Grant {
            grant_id,
            client_id: row.try_get("client_id").map_err(err)?,
            sub: row.try_get("sub").map_err(err)?,
            scope: split_scope(&grant_scope),
            auth_time: row.try_get("auth_time").map_err(err)?,
            created_at: row.try_get("created_at").map_err(err)?,
            resources: split_list(row.try_get("resources").map_err(err)?),
        };
        Ok(Some((record, grant)))
    }

    async fn revoke_grant(&self, grant_id: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("UPDATE grants SET revoked = 1 WHERE grant_id = ?")
            .bind(grant_id)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        sqlx::query("DELETE FROM tokens WHERE grant_id = ?")
            .bind(grant_id)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(())
    }

    async fn delete_token(&self, token_hash: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM tokens WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(r.rows_affected() > 0)
    }

    async fn remember_once(&self, key: &str, expires_at: i64, now: i64) -> StoreResult<bool> {
        // a new key inserts; an expired record may be taken over; a live one makes this a no-op
        let r = sqlx::query(
            "INSERT INTO replay (replay_key, expires_at) VALUES (?, ?) \
             ON CONFLICT (replay_key) DO UPDATE SET expires_at = excluded.expires_at WHERE replay.expires_at <= ?",
        )
        .bind(key)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn insert_session(&self, id_hash: &str, session: &Session) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, username, auth_time, expires_at, login_request) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id_hash)
        .bind(&session.username)
        .bind(session.auth_time)
        .bind(session.expires_at)
        .bind(&session.login_request)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn get_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<Session>> {
        let row = sqlx::query(
            "SELECT username, auth_time, expires_at, login_request FROM sessions WHERE id_hash = ? AND expires_at > ?",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Session {
            username: row.try_get("username").map_err(err)?,
            auth_time: row.try_get("auth_time").map_err(err)?,
            expires_at: row.try_get("expires_at").map_err(err)?,
            login_request: row.try_get("login_request").map_err(err)?,
        }))
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn get_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT value FROM secrets WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(|r| r.try_get("value").map_err(err)).transpose()
    }

    async fn delete_secret(&self, name: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM secrets WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn get_or_create_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        sqlx::query("INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(candidate)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        let row = sqlx::query("SELECT value FROM secrets WHERE name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(err)?;
        row.try_get("value").map_err(err)
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        // keys from before schema version 7 signed from their creation
        let rows = sqlx::query(
            "SELECT kid, alg, pkcs8, created_at, COALESCE(activates_at, created_at) AS activates_at, retired_at \
             FROM signing_keys ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|row| {
                let alg: String = row.try_get("alg").map_err(err)?;
                Ok(StoredKey {
                    kid: row.try_get("kid").map_err(err)?,
                    alg: Algorithm::parse(&alg).map_err(err)?,
                    private_key: row.try_get("pkcs8").map_err(err)?,
                    created_at: row.try_get("created_at").map_err(err)?,
                    activates_at: row.try_get("activates_at").map_err(err)?,
                    retired_at: row.try_get("retired_at").map_err(err)?,
                })
            })
            .collect()
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, pkcs8, created_at, activates_at, retired_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.kid)
        .bind(key.alg.as_str())
        .bind(&key.private_key)
        .bind(key.created_at)
        .bind(key.activates_at)
        .bind(key.retired_at)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn retire_signing_keys(&self, now: i64) -> StoreResult<u64> {
        let r = sqlx::query("UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(r.rows_affected())
    }

    async fn delete_signing_keys_retired_before(&self, before: i64) -> StoreResult<u64> {
        let r = sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < ?")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(r.rows_affected())
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<()> {
        // pushed requests, interactions and codes are kept an hour past expiry: late use of a
        // request_uri still gets a precise invalid_request_uri redirect (and of an interaction a
        // precise page), and a replayed code is still
        // recognised (and revokes its grant). Each statement deletes one bounded batch by
        // primary key (portable to PostgreSQL, which has no DELETE ... LIMIT).
        let grace = now - 3600;
        for (sql, at) in [
            (
                "DELETE FROM replay WHERE replay_key IN \
                 (SELECT replay_key FROM replay WHERE expires_at <= ? LIMIT ?)",
                now,
            ),
            (
                "DELETE FROM sessions WHERE id_hash IN \
                 (SELECT id_hash FROM sessions WHERE expires_at <= ? LIMIT ?)",
                now,
            ),
            (
                "DELETE FROM pushed_requests WHERE request_uri_hash IN \
                 (SELECT request_uri_hash FROM pushed_requests WHERE expires_at <= ? LIMIT ?)",
                grace,
            ),
            (
                "DELETE FROM interactions WHERE id IN \
                 (SELECT id FROM interactions WHERE expires_at <= ? LIMIT ?)",
                grace,
            ),
            (
                "DELETE FROM codes WHERE code_hash IN (SELECT code_hash FROM codes WHERE expires_at <= ? LIMIT ?)",
                grace,
            ),
            (
                "DELETE FROM tokens WHERE token_hash IN (SELECT token_hash FROM tokens WHERE expires_at <= ? LIMIT ?)",
                now,
            ),
            (
                "DELETE FROM initial_access_tokens WHERE token_hash IN \
                 (SELECT token_hash FROM initial_access_tokens WHERE expires_at <= ? OR uses_left <= 0 LIMIT ?)",
                now,
            ),
        ] {
            self.delete_in_batches(sql, Some(at)).await?;
        }
        // after codes and tokens: a grant (revoked or not) goes with its last code and token
        self.delete_in_batches(
            "DELETE FROM grants WHERE grant_id IN (SELECT g.grant_id FROM grants g \
             WHERE NOT EXISTS (SELECT 1 FROM tokens t WHERE t.grant_id = g.grant_id) \
             AND NOT EXISTS (SELECT 1 FROM codes c WHERE c.grant_id = g.grant_id) LIMIT ?)",
            None,
        )
        .await?;
        Ok(())
    }

    async fn insert_signing_key_if_missing(&self, key: &StoredKey) -> StoreResult<bool> {
        // one statement decides; BEGIN IMMEDIATE takes SQLite's write lock first (waiting for
        // it), so the check cannot read a snapshot another writer has since changed
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let r = sqlx::query(
            "INSERT INTO signing_keys (kid, alg, pkcs8, created_at, activates_at, retired_at) \
             SELECT ?, ?, ?, ?, ?, NULL \
             WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE alg = ? AND retired_at IS NULL)",
        )
        .bind(&key.kid)
        .bind(key.alg.as_str())
        .bind(&key.private_key)
        .bind(key.created_at)
        .bind(key.activates_at)
        .bind(key.alg.as_str())
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn rotate_signing_keys(&self, keys: &[StoredKey], retire_at: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        sqlx::query("UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL OR retired_at > ?")
            .bind(retire_at)
            .bind(retire_at)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        for key in keys {
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, pkcs8, created_at, activates_at, retired_at) \
                 VALUES (?, ?, ?, ?, ?, NULL)",
            )
            .bind(&key.kid)
            .bind(key.alg.as_str())
            .bind(&key.private_key)
            .bind(key.created_at)
            .bind(key.activates_at)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(())
    }

    async fn replace_signing_key_material(&self, kid: &str, expected: &[u8], private_key: &[u8]) -> StoreResult<bool> {
        let r = sqlx::query("UPDATE signing_keys SET pkcs8 = ? WHERE kid = ? AND pkcs8 = ?")
            .bind(private_key)
            .bind(kid)
            .bind(expected)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn table_sizes(&self) -> StoreResult<TableSizes> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM clients) AS clients, \
                    (SELECT COUNT(*) FROM initial_access_tokens) AS initial_access_tokens, \
                    (SELECT COUNT(*) FROM users) AS users, \
                    (SELECT COUNT(*) FROM pushed_requests) AS pushed_requests, \
                    (SELECT COUNT(*) FROM interactions) AS interactions, \
                    (SELECT COUNT(*) FROM grants) AS grants, \
                    (SELECT COUNT(*) FROM codes) AS codes, \
                    (SELECT COUNT(*) FROM tokens) AS tokens, \
                    (SELECT COUNT(*) FROM replay) AS replay, \
                    (SELECT COUNT(*) FROM sessions) AS sessions, \
                    (SELECT COUNT(*) FROM signing_keys) AS signing_keys, \
                    (SELECT COUNT(*) FROM audit_log) AS audit",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        let n = |name: &str| -> StoreResult<u64> {
            let v: i64 = row.try_get(name).map_err(err)?;
            Ok(v.max(0) as u64)
        };
        Ok(TableSizes {
            clients: n("clients")?,
            initial_access_tokens: n("initial_access_tokens")?,
            users: n("users")?,
            pushed_requests: n("pushed_requests")?,
            interactions: n("interactions")?,
            grants: n("grants")?,
            codes: n("codes")?,
            tokens: n("tokens")?,
            replay: n("replay")?,
            sessions: n("sessions")?,
            signing_keys: n("signing_keys")?,
            audit: n("audit")?,
        })
    }

    async fn append_audit(&self, records: &[AuditRecord]) -> StoreResult<bool> {
        let Some(first) = records.first() else {
            return Ok(true);
        };
        // the write lock first, so that the head read is still the head at the insert
        // (PostgreSQL: the seq primary key refuses the loser of a race)
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let head = audit_head_in(&mut tx).await?;
        if first.seq != head.seq + 1 || first.prev_hash != head.hash {
            tx.rollback().await.map_err(err)?;
            return Ok(false);
        }
        for r in records {
            let e = &r.evidence;
            let (proof, message, signature, body) = match &e.proof {
                Proof::Jws { compact } => ("jws", compact.as_str(), None, None),
                Proof::HttpSignature { base, signature, body } => (
                    "http_signature",
                    base.as_str(),
                    Some(signature.as_slice()),
                    body.as_deref(),
                ),
            };
            sqlx::query(
                "INSERT INTO audit_log (seq, prev_hash, hash, at, kind, direction, interaction_id, client_id, alg, \
                 jwk, proof, message, signature, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(r.seq)
            .bind(r.prev_hash.to_hex())
            .bind(r.hash.to_hex())
            .bind(e.at)
            .bind(e.kind.as_str())
            .bind(e.direction.as_str())
            .bind(&e.interaction_id)
            .bind(&e.client_id)
            .bind(&e.alg)
            .bind(&e.key)
            .bind(proof)
            .bind(message)
            .bind(signature)
            .bind(body)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn audit_head(&self) -> StoreResult<ChainPoint> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        audit_head_in(&mut conn).await
    }

    async fn audit_anchor(&self) -> StoreResult<ChainPoint> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        audit_anchor_in(&mut conn).await
    }

    async fn audit_by_interaction(&self, interaction_id: &str) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query(select_audit!("WHERE interaction_id = ? ORDER BY seq"))
            .bind(interaction_id)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn audit_range(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query(select_audit!("WHERE seq > ? ORDER BY seq LIMIT ?"))
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn purge_audit_before(&self, before: i64) -> StoreResult<u64> {
        // one transaction per batch from the start of the chain, by primary key: the oldest
        // entries up to the first one to keep, and the last of them as the new anchor
        let mut total = 0;
        loop {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
            let rows = sqlx::query("SELECT seq, hash, at FROM audit_log ORDER BY seq LIMIT ?")
                .bind(PURGE_BATCH)
                .fetch_all(&mut *tx)
                .await
                .map_err(err)?;
            let mut last = None;
            for row in &rows {
                let at: i64 = row.try_get("at").map_err(err)?;
                if at >= before {
                    break;
                }
                last = Some(row);
            }
            let Some(last) = last else {
                tx.rollback().await.map_err(err)?;
                return Ok(total);
            };
            let anchor = point_from_row(last)?;
            let n = sqlx::query("DELETE FROM audit_log WHERE seq <= ?")
                .bind(anchor.seq)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            sqlx::query(
                "INSERT INTO audit_anchor (id, seq, hash) VALUES (1, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            )
            .bind(anchor.seq)
            .bind(anchor.hash.to_hex())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
            total += n;
            if n < PURGE_BATCH as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}
