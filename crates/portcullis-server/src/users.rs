//! Passwords: argon2id (the crate's default parameters, OWASP's minimum: m=19 MiB, t=2, p=1).

use std::sync::{Arc, Mutex};

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version};
use portcullis_core::random::secure_eq;
use tokio::sync::{mpsc, oneshot};

pub fn hash_password(password: &str) -> Result<String, String> {
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| format!("cannot hash the password: {e}"))?;
    Ok(hash.to_string())
}

/// A fixed argon2id hash checked when the username is unknown, so that both cases cost the same.
static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Checks passwords with one argon2 memory buffer, allocated once and reused: allocating 19 MiB
/// per check lets the allocator keep up to eight of them per thread (measured with argon2 0.6
/// on glibc: 157 MB resident after ten checks on one thread).
struct Verifier {
    blocks: Vec<Block>,
}

/// No stored hash may make a check allocate more than this (a hash from another system with a
/// huge memory cost would otherwise be an easy way to exhaust memory).
const MAX_BLOCKS: usize = 256 * 1024;

impl Verifier {
    fn new() -> Self {
        Self { blocks: Vec::new() }
    }

    fn verify(&mut self, stored: Option<&str>, password: &str) -> bool {
        let (hash, real) = match stored {
            Some(h) => (h, true),
            None => (
                DUMMY
                    .get_or_init(|| hash_password("portcullis-dummy").unwrap_or_default())
                    .as_str(),
                false,
            ),
        };
        self.check(hash, password.as_bytes()) && real
    }

    /// The PHC string's algorithm, version, parameters and salt, recomputed into our buffer and
    /// compared in constant time.
    fn check(&mut self, hash: &str, password: &[u8]) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from).transpose() {
            Ok(v) => v.unwrap_or_default(),
            Err(_) => return false,
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let need = params.block_count();
        if need > MAX_BLOCKS {
            return false;
        }
        if self.blocks.len() < need {
            self.blocks.resize(need, Block::new());
        }
        let mut out = [0u8; 64];
        let Some(out) = out.get_mut(..expected.len()) else {
            return false;
        };
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, salt, out, &mut self.blocks[..need])
            .is_ok()
            && secure_eq(out, expected.as_bytes())
    }
}

type Job = (Option<String>, String, oneshot::Sender<bool>);

/// Password checks run on a fixed set of threads, each with one reused argon2id buffer (19 MiB):
/// memory stays bounded (measured before: 620 MB RSS after 500 flows at 8 concurrent logins),
/// and logins beyond that queue instead of overcommitting the CPU.
pub struct PasswordWorkers {
    jobs: mpsc::Sender<Job>,
    /// Busy answers not yet reported: a task reports them every [`BUSY_REPORT_INTERVAL`] (one
    /// warning with the count, so a flood neither floods the log nor goes under-reported).
    busy: Arc<std::sync::atomic::AtomicU64>,
}

/// Waiting logins beyond this are answered "busy, try again shortly", rather than queued
/// without bound.
const QUEUE: usize = 256;

/// How often a full password queue is reported.
const BUSY_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The outcome of a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match,
    NoMatch,
    /// Every worker is busy and the queue is full: no check was made.
    Busy,
}

impl PasswordWorkers {
    pub fn new(workers: usize) -> Self {
        Self::with_queue(workers, QUEUE)
    }

    fn with_queue(workers: usize, queue: usize) -> Self {
        let (jobs, rx) = mpsc::channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || {
                    let mut verifier = Verifier::new();
                    loop {
                        // one worker waits for the next job at a time; the others wait for the lock
                        let job = match rx.lock() {
                            Ok(mut guard) => guard.blocking_recv(),
                            Err(_) => None,
                        };
                        let Some((stored, password, reply)) = job else { break };
                        // the client went away while waiting: no check for nobody
                        if reply.is_closed() {
                            continue;
                        }
                        let _ = reply.send(verifier.verify(stored.as_deref(), &password));
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password worker");
            }
        }
        let busy = Arc::new(std::sync::atomic::AtomicU64::new(0));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let pending = Arc::downgrade(&busy);
            rt.spawn(async move {
                let mut tick = tokio::time::interval(BUSY_REPORT_INTERVAL);
                loop {
                    tick.tick().await;
                    let Some(pending) = pending.upgrade() else { break };
                    let n = pending.swap(0, std::sync::atomic::Ordering::Relaxed);
                    if n > 0 {
                        tracing::warn!(refused = n, "password check queue is full: sign-ins answered busy");
                    }
                }
            });
        }
        Self { jobs, busy }
    }

    /// Password checks waiting for a worker now (the metrics' queue depth).
    pub fn queued(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    fn report_full(&self) {
        self.busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Verifies off the async threads (argon2 is deliberately slow). A full queue is
    /// [`Verdict::Busy`], never a wrong password (issue 13 item 7: a flood must not make a real
    /// user's correct password fail).
    pub async fn verify(&self, stored: Option<String>, password: String) -> Verdict {
        let (tx, rx) = oneshot::channel();
        if self.jobs.try_send((stored, password, tx)).is_err() {
            self.report_full();
            return Verdict::Busy;
        }
        match rx.await {
            Ok(true) => Verdict::Match,
            Ok(false) => Verdict::NoMatch,
            Err(_) => Verdict::Busy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn workers_verify() {
        let w = PasswordWorkers::new(2);
        let h = hash_password("secret").unwrap();
        assert_eq!(w.verify(Some(h.clone()), "secret".into()).await, Verdict::Match);
        assert_eq!(w.verify(Some(h), "wrong".into()).await, Verdict::NoMatch);
        assert_eq!(
            w.verify(None, "portcullis-dummy".into()).await,
            Verdict::NoMatch,
            "unknown users never pass"
        );
        assert_eq!(w.verify(Some("not a hash".into()), "x".into()).await, Verdict::NoMatch);
    }

    /// Issue 13 item 7: when the queue is full, a correct password is answered Busy (no
    /// failure), never "not correct".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_is_busy_not_wrong() {
        let w = Arc::new(PasswordWorkers::with_queue(1, 2));
        let h = hash_password("secret").unwrap();
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let (w, h) = (w.clone(), h.clone());
            tasks.push(tokio::spawn(async move { w.verify(Some(h), "secret".into()).await }));
        }
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Verdict::Match => {}
                Verdict::Busy => busy += 1,
                Verdict::NoMatch => panic!("a correct password was answered as wrong"),
            }
        }
        assert!(busy > 0, "the queue never filled");
    }

    /// Our reused-buffer check agrees with the argon2 crate's own verifier, whatever algorithm
    /// variant and parameters a stored hash names.
    #[test]
    fn reused_buffer_matches_the_crate() {
        use argon2::PasswordVerifier;
        let mut v = Verifier::new();
        for (alg, m, t) in [
            (Algorithm::Argon2id, 19_456, 2),
            (Algorithm::Argon2id, 8_192, 3),
            (Algorithm::Argon2i, 4_096, 2),
        ] {
            let argon = Argon2::new(alg, Version::V0x13, Params::new(m, t, 1, None).unwrap());
            let h: PasswordHash = argon.hash_password(b"pw").unwrap();
            let s = h.to_string();
            assert!(Argon2::default().verify_password(b"pw", &h).is_ok());
            assert!(v.check(&s, b"pw"), "{s}");
            assert!(!v.check(&s, b"px"), "{s}");
        }
    }
}
