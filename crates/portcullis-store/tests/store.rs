//! The SQLite engine against the shared Store contract (portcullis_core::contract).

use std::sync::Arc;

use portcullis_core::store::Store;
use portcullis_store::SqliteStore;

async fn sqlite() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    (dir, Arc::new(store))
}

portcullis_core::store_contract_tests!(sqlite().await);

/// A database written by a newer binary is refused rather than misread.
#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    SqliteStore::open(&path).await.unwrap().close().await;
    // reopening the same version is fine
    SqliteStore::open(&path).await.unwrap().close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("INSERT INTO schema_version (version) VALUES (99)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let e = SqliteStore::open(&path).await.err().expect("a newer schema is refused");
    assert!(e.0.contains("schema version 99"), "{e}");
}

/// Issue 13 item 14: a version 1 database (registration access tokens without expiry) is
/// migrated on open: its tokens keep working for the default lifetime, then expire.
#[tokio::test]
async fn version_1_databases_are_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(include_str!("../src/schema.sql"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO schema_version (version) VALUES (1); \
         INSERT INTO clients (client_id, issued_at, metadata, registration_token_hash) VALUES ('c1', 1, \
         '{\"redirect_uris\":[\"https://c.example/cb\"],\"token_endpoint_auth_method\":\"private_key_jwt\",\
         \"grant_types\":[\"authorization_code\"],\"response_types\":[\"code\"],\"id_token_signed_response_alg\":\"ES256\",\
         \"dpop_bound_access_tokens\":true,\"tls_client_certificate_bound_access_tokens\":false}', 'rat');",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let store = SqliteStore::open(&path).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        store
            .get_client_by_registration_token("c1", "rat", now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_client_by_registration_token("c1", "rat", now + 31 * 86_400)
            .await
            .unwrap()
            .is_none()
    );
    // issue 16 item 5: the evidence log arrives with the upgrade, empty
    assert_eq!(store.table_sizes().await.unwrap().audit, 0);
    assert_eq!(
        store.audit_head().await.unwrap(),
        portcullis_core::audit::ChainPoint::GENESIS
    );
    // issue 17 item 7: the interactions table arrives with migration 8, empty
    assert_eq!(store.table_sizes().await.unwrap().interactions, 0);
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(version, 8);
    assert_eq!(portcullis_store::SCHEMA_VERSION, 8);
    pool.close().await;
    // opening again changes nothing
    SqliteStore::open(&path).await.unwrap().close().await;
}

/// Issue 17: a version 7 database (signing keys with activates_at, issue 17 item 4) gets the
/// interactions table of version 8 (issue 17 item 7) on open, keeping its keys' activation.
#[tokio::test]
async fn version_7_databases_are_migrated_to_8() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    SqliteStore::open(&path).await.unwrap().close().await;
    // back to version 7: no interactions table
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(
        "DROP TABLE interactions; \
         DELETE FROM schema_version WHERE version = 8;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('signing_keys')")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(columns.iter().any(|c| c == "activates_at"), "{columns:?}");
    pool.close().await;
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.table_sizes().await.unwrap().interactions, 0);
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_version ORDER BY version")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(versions.last(), Some(&8), "{versions:?}");
    pool.close().await;
}

/// Issue 15: grants and tokens written before resource indicators (RFC 8707) read back with no
/// resources and no audience after the upgrade.
#[tokio::test]
async fn rows_from_before_resource_indicators_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(include_str!("../src/schema.sql"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO schema_version (version) VALUES (1); \
         INSERT INTO grants (grant_id, client_id, sub, scope, auth_time, created_at, revoked) \
         VALUES ('g1', 'c1', 'u1', 'openid', 1, 1, 0); \
         INSERT INTO tokens (token_hash, kind, grant_id, sender_constraint, scope, issued_at, expires_at) \
         VALUES ('h1', 'access', 'g1', NULL, 'openid', 1, 4000000000);",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let store = SqliteStore::open(&path).await.unwrap();
    let (token, grant) = store
        .get_token("h1", portcullis_core::model::TokenKind::Access, 2)
        .await
        .unwrap()
        .expect("the old token");
    assert!(token.audience.is_empty());
    assert!(grant.resources.is_empty());
    assert_eq!(grant.scope, vec!["openid".to_owned()]);
    store.close().await;
}

/// Another process holding a new database: a connection in the middle of a read on a database
/// still in rollback-journal mode (as a second server creating it at the same moment is).
async fn hold_database(path: &std::path::Path) -> sqlx::pool::PoolConnection<sqlx::Sqlite> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS t (x INTEGER); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
        .execute(&mut *conn)
        .await
        .unwrap();
    conn
}

/// Issue 13 item 17: a database another process holds while both start is waited for (with a
/// bound), not a fatal "database is locked": switching to WAL answers busy at once, without
/// SQLite's busy handler.
#[tokio::test]
async fn open_waits_for_a_database_another_process_holds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mut held = hold_database(&path).await;
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        sqlx::raw_sql("COMMIT").execute(&mut *held).await.unwrap();
        held.close().await.unwrap();
    });
    let store = SqliteStore::open(&path).await.expect("waited for the other process");
    release.await.unwrap();
    assert!(store.list_signing_keys().await.unwrap().is_empty());
    store.close().await;

    // held for longer than the bound: refused, saying why
    let other = dir.path().join("u.db");
    let _held = hold_database(&other).await;
    let e = SqliteStore::open_waiting(&other, std::time::Duration::from_millis(300))
        .await
        .err()
        .expect("the bound is kept");
    assert!(e.0.contains("held the database locked"), "{e}");
}

/// Issue 17: `portcullis check` on a good database, a corrupt one, a file that is no database,
/// another program's database and one at an older schema version; the check changes nothing.
#[tokio::test]
async fn check_database_tells_what_is_wrong() {
    use portcullis_store::{DatabaseProblem, SCHEMA_VERSION, check_database};
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.db");
    let store = SqliteStore::open(&good).await.unwrap();
    // enough rows for several pages, so that the middle of the file is table data
    for i in 0..300 {
        store
            .insert_user(&portcullis_core::model::User {
                username: format!("user{i}"),
                sub: format!("sub{i}"),
                password_hash: "x".repeat(200),
                claims: serde_json::Map::new(),
                created_at: Some(i),
            })
            .await
            .unwrap();
    }
    store.close().await;
    assert_eq!(check_database(&good).await, Ok(SCHEMA_VERSION));

    let corrupt = dir.path().join("corrupt.db");
    let mut bytes = std::fs::read(&good).unwrap();
    let (from, to) = (bytes.len() / 4, bytes.len() * 3 / 4);
    bytes[from..to].fill(0x5a);
    std::fs::write(&corrupt, &bytes).unwrap();
    let e = check_database(&corrupt).await.unwrap_err();
    assert!(matches!(e, DatabaseProblem::Corrupt(_)), "{e:?}");
    assert!(e.to_string().starts_with("is corrupt: "), "{e}");

    let text = dir.path().join("text.db");
    std::fs::write(
        &text,
        "not a database, only text, but more than a header's worth of it".repeat(20),
    )
    .unwrap();
    assert_eq!(check_database(&text).await, Err(DatabaseProblem::NotADatabase));

    let foreign = dir.path().join("foreign.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", foreign.display()))
        .await
        .unwrap();
    sqlx::raw_sql("CREATE TABLE notes (x TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let e = check_database(&foreign).await.unwrap_err();
    assert!(matches!(&e, DatabaseProblem::Foreign(m) if m.len() > 1), "{e:?}");
    assert!(e.to_string().contains("not a Portcullis database"), "{e}");
    // nothing was created in it
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", foreign.display()))
        .await
        .unwrap();
    let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tables, 1, "check changed the database");
    pool.close().await;

    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", good.display()))
        .await
        .unwrap();
    sqlx::query("DELETE FROM schema_version WHERE version = ?")
        .bind(SCHEMA_VERSION)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let e = check_database(&good).await.unwrap_err();
    assert_eq!(
        e,
        DatabaseProblem::SchemaVersion {
            found: SCHEMA_VERSION - 1,
            expected: SCHEMA_VERSION
        }
    );
    assert!(e.to_string().contains("older"), "{e}");

    let missing = dir.path().join("missing.db");
    assert!(matches!(
        check_database(&missing).await,
        Err(DatabaseProblem::Unreadable(_))
    ));
    assert!(!missing.exists(), "check created a database");
}
