//! The evidence log's writer (issue 16 item 5): handlers hand signed messages to a cheap
//! [`AuditLog`] handle and go on; one writer task chains them and appends them in batches, so
//! the chain never forks and no request waits on it.
//!
//! Serialisation: the writer is the only one in this process that chains entries. It reads the
//! head once, links each batch after it (`portcullis_core::audit::link_all`) and appends the
//! batch in one transaction with `Store::append_audit`, which writes only if the batch still
//! follows the stored head. If it does not (another node appended first), the writer re-reads
//! the head and links the batch again; so several nodes on one database share one chain.
//!
//! On a crash, entries still queued (at most [`QUEUE`]) are lost; written ones are in the
//! chain. A graceful shutdown writes the queue out first ([`AuditWriter::finish`]).

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::Store;
use portcullis_core::audit::{ChainPoint, Evidence, link_all};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Entries waiting for the writer; a handler waits only when this many are queued (the
/// database is that far behind).
pub const QUEUE: usize = 4096;
/// Entries appended per transaction at most.
const BATCH: usize = 256;
/// Attempts at writing one batch before its entries are given up (and logged as lost).
const ATTEMPTS: u32 = 8;

/// A clone-able handle that queues evidence for the writer.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Evidence>,
}

/// The writer task, to be finished on shutdown.
pub struct AuditWriter {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl AuditLog {
    /// Starts the writer on `store`.
    pub fn start(store: Arc<dyn Store>) -> (Self, AuditWriter) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(write_loop(store, rx, stopped));
        (Self { tx }, AuditWriter { stop, task })
    }

    /// Queues `evidence` (of a request that succeeded). Returns at once unless [`QUEUE`]
    /// entries are already waiting.
    pub async fn record(&self, evidence: Evidence) {
        if let Err(e) = self.tx.send(evidence).await {
            let e = e.0;
            tracing::error!(interaction_id = %e.interaction_id, kind = %e.kind, "audit log writer stopped; evidence lost");
        }
    }
}

impl AuditWriter {
    /// Takes no more entries, writes what is queued, and waits (at most `wait`) for it.
    pub async fn finish(self, wait: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(wait, self.task).await.is_err() {
            tracing::error!("audit log: queued entries not written before shutdown");
        }
    }
}

async fn write_loop(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Evidence>, mut stop: watch::Receiver<bool>) {
    let mut head: Option<ChainPoint> = None;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                write_batch(store.as_ref(), &mut head, std::mem::take(&mut batch)).await;
            }
            _ = stop.changed() => {
                rx.close();
                while rx.recv_many(&mut batch, BATCH).await > 0 {
                    write_batch(store.as_ref(), &mut head, std::mem::take(&mut batch)).await;
                }
                return;
            }
        }
    }
}

/// Links `evidence` after the head and appends it; re-reads the head when another writer got
/// there first or the store failed.
async fn write_batch(store: &dyn Store, head: &mut Option<ChainPoint>, evidence: Vec<Evidence>) {
    for attempt in 1..=ATTEMPTS {
        let from = match *head {
            Some(h) => h,
            None => match store.audit_head().await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "audit log: cannot read the chain head");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    continue;
                }
            },
        };
        let (records, next) = link_all(from, evidence.iter().cloned());
        match store.append_audit(&records).await {
            Ok(true) => {
                *head = Some(next);
                return;
            }
            // another node appended first: link again after the new head
            Ok(false) => *head = None,
            Err(e) => {
                *head = None;
                tracing::warn!(error = %e, attempt, "audit log: append failed");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
        }
    }
    for e in &evidence {
        tracing::error!(interaction_id = %e.interaction_id, kind = %e.kind, client_id = %e.client_id, "audit log: evidence could not be written and is lost");
    }
}

#[cfg(test)]
mod tests {
    use portcullis_core::audit::{ChainVerifier, Direction, EvidenceKind};
    use portcullis_core::memory::MemoryStore;
    use portcullis_jose::{Algorithm, SigningKey};

    use super::*;

    fn evidence(key: &SigningKey, n: i64) -> Evidence {
        let jwt = key
            .sign_jwt(key.algorithm(), None, &serde_json::json!({ "n": n }))
            .unwrap();
        Evidence::jws(
            EvidenceKind::IntrospectionResponse,
            Direction::Sent,
            &format!("i-{}", n % 3),
            "c1",
            n,
            key.public_jwk(),
            &jwt,
        )
    }

    /// Many handlers at once, and two writers (two nodes) on one store: one unbroken chain
    /// holding every entry, written out on finish.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_records_make_one_chain() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let key = SigningKey::generate(Algorithm::Es256).unwrap();
        let (a, writer_a) = AuditLog::start(store.clone());
        let (b, writer_b) = AuditLog::start(store.clone());
        let mut tasks = Vec::new();
        for n in 0..200 {
            let log = if n % 2 == 0 { a.clone() } else { b.clone() };
            let e = evidence(&key, n);
            tasks.push(tokio::spawn(async move { log.record(e).await }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        writer_a.finish(Duration::from_secs(10)).await;
        writer_b.finish(Duration::from_secs(10)).await;
        let records = store.audit_range(0, 1000).await.unwrap();
        assert_eq!(records.len(), 200);
        let mut v = ChainVerifier::new(ChainPoint::GENESIS);
        for r in &records {
            v.check(r).unwrap();
        }
    }
}
