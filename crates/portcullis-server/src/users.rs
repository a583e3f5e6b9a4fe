//! Passwords: argon2id (the crate's default parameters, OWASP's minimum: m=19 MiB, t=2, p=1).

use std::sync::{Arc, Mutex};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use tokio::sync::{mpsc, oneshot};

pub fn hash_password(password: &str) -> Result<String, String> {
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| format!("cannot hash the password: {e}"))?;
    Ok(hash.to_string())
}

/// A fixed argon2id hash checked when the username is unknown, so that both cases cost the same.
static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn verify(stored: Option<&str>, password: &str) -> bool {
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (
            DUMMY
                .get_or_init(|| hash_password("portcullis-dummy").unwrap_or_default())
                .as_str(),
            false,
        ),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && real
}

type Job = (Option<String>, String, oneshot::Sender<bool>);

/// Password checks run on a fixed set of threads. Each argon2id check needs 19 MiB; with a
/// thread per concurrent login, memory grows with every blocking thread's allocator arena
/// (measured: 620 MB RSS after 500 flows at 8 concurrent logins). A fixed pool bounds it to one
/// buffer per worker, reused, and queues logins beyond that instead of overcommitting the CPU.
pub struct PasswordWorkers {
    jobs: mpsc::Sender<Job>,
}

/// Waiting logins beyond this are refused (a failed login), rather than queued without bound.
const QUEUE: usize = 256;

impl PasswordWorkers {
    pub fn new(workers: usize) -> Self {
        let (jobs, rx) = mpsc::channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || {
                    loop {
                        // one worker waits for the next job at a time; the others wait for the lock
                        let job = match rx.lock() {
                            Ok(mut guard) => guard.blocking_recv(),
                            Err(_) => None,
                        };
                        let Some((stored, password, reply)) = job else { break };
                        let _ = reply.send(verify(stored.as_deref(), &password));
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password worker");
            }
        }
        Self { jobs }
    }

    /// Verifies off the async threads (argon2 is deliberately slow).
    pub async fn verify(&self, stored: Option<String>, password: String) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.jobs.try_send((stored, password, tx)).is_err() {
            tracing::warn!("password check queue is full");
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn workers_verify() {
        let w = PasswordWorkers::new(2);
        let h = hash_password("secret").unwrap();
        assert!(w.verify(Some(h.clone()), "secret".into()).await);
        assert!(!w.verify(Some(h), "wrong".into()).await);
        assert!(
            !w.verify(None, "portcullis-dummy".into()).await,
            "unknown users never pass"
        );
        assert!(!w.verify(Some("not a hash".into()), "x".into()).await);
    }
}
