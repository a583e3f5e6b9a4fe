//! The in-memory engine against the shared Store contract.

use std::sync::Arc;

use portcullis_core::memory::MemoryStore;
use portcullis_core::store::Store;

portcullis_core::store_contract_tests!(((), Arc::new(MemoryStore::new()) as Arc<dyn Store>));
