//! The SQLite implementation of `portcullis_core::Store` (the embedded default). Every
//! single-use operation is one atomic statement; the SQL is kept portable so that the
//! PostgreSQL engine can share it.
#![forbid(unsafe_code)]

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::StoreError;
use portcullis_core::model::{
    AuthorizationCode, Client, CodeRedemption, Grant, PushedRequest, Session, StoredKey, TokenKind, TokenRecord, User,
};
use portcullis_core::store::{Store, StoreResult};
use portcullis_jose::Algorithm;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};

const SCHEMA: &str = include_str!("schema.sql");
/// The version `schema.sql` describes.
const BASE_VERSION: i64 = 1;
/// Each later version's change, applied in order to a database at an older version.
const MIGRATIONS: [(i64, &str); 1] = [
    // issue 13 item 14: registration access tokens expire
    (2, "ALTER TABLE clients ADD COLUMN registration_token_expires_at BIGINT"),
];
/// The version this binary writes.
const SCHEMA_VERSION: i64 = 2;

pub struct SqliteStore {
    pool: SqlitePool,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies the schema.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        Self::with_options(options).await
    }

    /// Opens a `sqlite:` URL.
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        Self::with_options(options).await
    }

    async fn with_options(options: SqliteConnectOptions) -> StoreResult<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(err)?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await.map_err(err)?;
        // the schema version: recorded on first open, and a newer one is never opened by an
        // older binary (it would not know the columns)
        let version: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM schema_version")
            .fetch_one(&pool)
            .await
            .and_then(|row| row.try_get("v"))
            .map_err(err)?;
        match version {
            None => {
                sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
                    .bind(BASE_VERSION)
                    .execute(&pool)
                    .await
                    .map_err(err)?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError(format!(
                    "the database has schema version {v}, newer than this binary's {SCHEMA_VERSION}"
                )));
            }
            Some(_) => {}
        }
        migrate(&pool, version.unwrap_or(BASE_VERSION)).await?;
        Ok(Self { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Applies every migration newer than `from`, each with its version row in one transaction (a
/// second process racing this one finds the version already written and skips it).
async fn migrate(pool: &SqlitePool, from: i64) -> StoreResult<()> {
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        let mut conn = pool.acquire().await.map_err(err)?;
        // IMMEDIATE: the write lock up front, so two processes migrating at once queue on the
        // busy timeout instead of failing on a lock upgrade
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(err)?;
        let applied = async {
            let done: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM schema_version")
                .fetch_one(&mut *conn)
                .await
                .and_then(|row| row.try_get("v"))?;
            if done.is_some_and(|d| d >= version) {
                return Ok(());
            }
            sqlx::raw_sql(sql).execute(&mut *conn).await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
                .bind(version)
                .execute(&mut *conn)
                .await?;
            Ok::<(), sqlx::Error>(())
        }
        .await;
        let end = if applied.is_ok() { "COMMIT" } else { "ROLLBACK" };
        sqlx::raw_sql(end).execute(&mut *conn).await.map_err(err)?;
        applied.map_err(err)?;
    }
    Ok(())
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
    })
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

    async fn insert_initial_access_token(
        &self,
        token_hash: &str,
        expires_at: i64,
        uses: Option<i64>,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO initial_access_tokens (token_hash, expires_at, uses_left) VALUES (?, ?, ?)")
            .bind(token_hash)
            .bind(expires_at)
            .bind(uses)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
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
        sqlx::query("INSERT INTO users (username, sub, password_hash, claims) VALUES (?, ?, ?, ?)")
            .bind(&user.username)
            .bind(&user.sub)
            .bind(&user.password_hash)
            .bind(serde_json::to_string(&user.claims).map_err(err)?)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn get_user(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT username, sub, password_hash, claims FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn get_user_by_sub(&self, sub: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT username, sub, password_hash, claims FROM users WHERE sub = ?")
            .bind(sub)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(user_from_row).transpose()
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

    async fn consume_pushed_request(&self, request_uri_hash: &str, now: i64) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE pushed_requests SET consumed = 1 WHERE request_uri_hash = ? AND consumed = 0 AND expires_at > ?",
        )
        .bind(request_uri_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()> {
        let g = &code.grant;
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query(
            "INSERT INTO grants (grant_id, client_id, sub, scope, auth_time, created_at, revoked) VALUES (?, ?, ?, ?, ?, ?, 0)",
        )
        .bind(&g.grant_id)
        .bind(&g.client_id)
        .bind(&g.sub)
        .bind(g.scope.join(" "))
        .bind(g.auth_time)
        .bind(g.created_at)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        sqlx::query(
            "INSERT INTO codes (code_hash, grant_id, client_id, sub, scope, auth_time, created_at, redirect_uri, \
             code_challenge, dpop_jkt, nonce, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&code.code_hash)
        .bind(&g.grant_id)
        .bind(&g.client_id)
        .bind(&g.sub)
        .bind(g.scope.join(" "))
        .bind(g.auth_time)
        .bind(g.created_at)
        .bind(&code.redirect_uri)
        .bind(&code.code_challenge)
        .bind(&code.dpop_jkt)
        .bind(&code.nonce)
        .bind(code.expires_at)
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
             dpop_jkt, nonce, expires_at",
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
                },
                redirect_uri: row.try_get("redirect_uri").map_err(err)?,
                code_challenge: row.try_get("code_challenge").map_err(err)?,
                dpop_jkt: row.try_get("dpop_jkt").map_err(err)?,
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
        const ONE: &str = "INSERT INTO tokens (token_hash, kind, grant_id, sender_constraint, scope, issued_at, expires_at) \
                           VALUES (?, ?, ?, ?, ?, ?, ?)";
        const TWO: &str = "INSERT INTO tokens (token_hash, kind, grant_id, sender_constraint, scope, issued_at, expires_at) \
                           VALUES (?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?)";
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
                    .bind(t.expires_at);
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
            "SELECT t.grant_id, t.sender_constraint, t.scope AS token_scope, t.issued_at, t.expires_at, \
                    g.client_id, g.sub, g.scope AS grant_scope, g.auth_time, g.created_at \
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
        sqlx::query("INSERT INTO sessions (id_hash, username, auth_time, expires_at) VALUES (?, ?, ?, ?)")
            .bind(id_hash)
            .bind(&session.username)
            .bind(session.auth_time)
            .bind(session.expires_at)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn get_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<Session>> {
        let row =
            sqlx::query("SELECT username, auth_time, expires_at FROM sessions WHERE id_hash = ? AND expires_at > ?")
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
        let rows = sqlx::query("SELECT kid, alg, pkcs8, created_at, retired_at FROM signing_keys ORDER BY created_at")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter()
            .map(|row| {
                let alg: String = row.try_get("alg").map_err(err)?;
                Ok(StoredKey {
                    kid: row.try_get("kid").map_err(err)?,
                    alg: Algorithm::parse(&alg).map_err(err)?,
                    pkcs8: row.try_get("pkcs8").map_err(err)?,
                    created_at: row.try_get("created_at").map_err(err)?,
                    retired_at: row.try_get("retired_at").map_err(err)?,
                })
            })
            .collect()
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        sqlx::query("INSERT INTO signing_keys (kid, alg, pkcs8, created_at, retired_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&key.kid)
            .bind(key.alg.as_str())
            .bind(&key.pkcs8)
            .bind(key.created_at)
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
        // pushed requests are kept an hour past expiry so that late use can still be answered
        // with a precise invalid_request_uri redirect
        let grace = now - 3600;
        for (sql, at) in [
            ("DELETE FROM replay WHERE expires_at <= ?", now),
            ("DELETE FROM sessions WHERE expires_at <= ?", now),
            ("DELETE FROM pushed_requests WHERE expires_at <= ?", grace),
            ("DELETE FROM codes WHERE expires_at <= ?", grace),
            ("DELETE FROM tokens WHERE expires_at <= ?", now),
            ("DELETE FROM initial_access_tokens WHERE expires_at <= ?", now),
        ] {
            sqlx::query(sql).bind(at).execute(&self.pool).await.map_err(err)?;
        }
        Ok(())
    }
}
