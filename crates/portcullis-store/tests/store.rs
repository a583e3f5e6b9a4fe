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
