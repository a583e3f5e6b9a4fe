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
use std::sync::atomic::{AtomicUsize, Ordering};

use portcullis_core::audit::{ChainPoint, Evidence, EvidenceKind, Proof, link_all};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Entries waiting for the writer; a handler waits only when this many are queued (the
/// database is that far behind).
pub const QUEUE: usize = 4096;
/// Entries appended per transaction at most.
const BATCH: usize = 256;
/// Attempts at writing one batch before its entries are given up (and logged as lost).
const ATTEMPTS: u32 = 8;

/// Bytes of resource evidence (HTTP-signed requests and responses, with their bodies) that may
/// wait for the writer; beyond it such evidence is dropped (and counted) rather than holding up
/// requests: one client's flood of API calls must not stall everyone's sign-ins, whose
/// evidence ([`AuditLog::record`]) always waits its turn.
pub const MAX_OFFERED_BYTES: usize = 32 * 1024 * 1024;

/// Resource evidence dropped because the writer was behind.
pub const DROPPED: &str = "portcullis_audit_evidence_dropped_total";

/// A clone-able handle that queues evidence for the writer.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Evidence>,
    /// Bytes of offered evidence queued (see [`MAX_OFFERED_BYTES`]).
    offered: Arc<AtomicUsize>,
}

/// What an entry holds in memory, roughly.
fn size(e: &Evidence) -> usize {
    let proof = match &e.proof {
        Proof::Jws { compact } => compact.len(),
        Proof::HttpSignature { base, signature, body } => {
            base.len() + signature.len() + body.as_ref().map_or(0, Vec::len)
        }
    };
    proof + e.key.len() + e.interaction_id.len() + e.client_id.len() + 64
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
        let offered = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(write_loop(store, rx, stopped, offered.clone()));
        (Self { tx, offered }, AuditWriter { stop, task })
    }

    /// Queues resource evidence if the writer keeps up: never waits; false (and counted in
    /// [`DROPPED`]) when [`MAX_OFFERED_BYTES`] are already waiting or the queue is full.
    pub fn offer(&self, evidence: Evidence) -> bool {
        let n = size(&evidence);
        let before = self.offered.fetch_add(n, Ordering::AcqRel);
        let kept = before + n <= MAX_OFFERED_BYTES && self.tx.try_send(evidence).is_ok();
        if !kept {
            self.offered.fetch_sub(n, Ordering::AcqRel);
            metrics::counter!(DROPPED).increment(1);
            tracing::warn!(bytes = n, "audit log: the writer is behind; resource evidence dropped");
        }
        kept
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

async fn write_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Evidence>,
    mut stop: watch::Receiver<bool>,
    offered: Arc<AtomicUsize>,
) {
    let mut head: Option<ChainPoint> = None;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                let written = std::mem::take(&mut batch);
                release(&offered, &written);
                write_batch(store.as_ref(), &mut head, written).await;
            }
            _ = stop.changed() => {
                rx.close();
                while rx.recv_many(&mut batch, BATCH).await > 0 {
                    let written = std::mem::take(&mut batch);
                release(&offered, &written);
                write_batch(store.as_ref(), &mut head, written).await;
                }
                return;
            }
        }
    }
}

/// Gives back the offered bytes of entries taken off the queue (resource evidence only; the
/// count never goes below zero for flow evidence, which was never counted).
fn release(offered: &AtomicUsize, taken: &[Evidence]) {
    let n: usize = taken
        .iter()
        .filter(|e| matches!(e.kind, EvidenceKind::ResourceRequest | EvidenceKind::ResourceResponse))
        .map(size)
        .sum();
    let _ = offered.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(v.saturating_sub(n)));
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

    /// Review M3: resource evidence beyond the byte budget is dropped at once (never waits), and
    /// what was taken is given back when written.
    #[tokio::test]
    async fn offered_evidence_is_bounded_by_bytes() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let key = SigningKey::generate(Algorithm::Es256).unwrap();
        let (log, writer) = AuditLog::start(store.clone());
        let resource = |body: usize| {
            let mut e = evidence(&key, 1);
            e.kind = EvidenceKind::ResourceRequest;
            e.proof = Proof::HttpSignature {
                base: "\"@method\": GET".into(),
                signature: vec![0; 64],
                body: Some(vec![b'x'; body]),
            };
            e
        };
        assert!(!log.offer(resource(MAX_OFFERED_BYTES)), "larger than the budget");
        assert!(log.offer(resource(1000)));
        writer.finish(Duration::from_secs(10)).await;
        assert_eq!(store.audit_range(0, 10).await.unwrap().len(), 1);
        assert_eq!(log.offered.load(Ordering::Acquire), 0, "given back once written");
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
