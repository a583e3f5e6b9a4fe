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
