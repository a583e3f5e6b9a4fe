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
