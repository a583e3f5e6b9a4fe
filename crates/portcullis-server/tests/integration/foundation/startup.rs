//! Start-up: a private data dir (issue 13 item 10) and servers started at the same moment on
//! one new data dir (issue 13 item 17).

use std::os::unix::fs::PermissionsExt;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// A `portcullis serve` on `dir` whose standard error is collected.
struct Serve {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Serve {
    fn spawn(dir: &Path) -> Serve {
        Self::spawn_with(dir, &[])
    }

    fn spawn_with(dir: &Path, env: &[(&str, &str)]) -> Serve {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir)
            .env("PORTCULLIS_SERVER_ISSUER", format!("https://localhost:{port}"))
            .env("PORTCULLIS_SERVER_LISTEN", format!("127.0.0.1:{port}"))
            .env("PORTCULLIS_SERVER_MTLS_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("PORTCULLIS_SERVER_MANAGEMENT_LISTEN", "127.0.0.1:0")
            .env("PORTCULLIS_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn portcullis");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Serve { child, port, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The JWK Set once the server answers; Err(stderr) if it exited first.
    async fn jwks(&mut self, dir: &Path) -> Result<Value, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}: {}", self.stderr()));
            }
            if let Ok(ca) = std::fs::read(dir.join("tls/ca.pem"))
                && let Ok(cert) = reqwest::Certificate::from_pem(&ca)
                && let Ok(http) = reqwest::Client::builder()
                    .tls_certs_only([cert])
                    .timeout(Duration::from_secs(10))
                    .build()
                && let Ok(r) = http.get(format!("https://localhost:{}/jwks", self.port)).send().await
                && r.status() == 200
            {
                return Ok(r.json().await.unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "portcullis serve did not come up: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 13 item 10: on a new data dir the server makes the data dir and tls/ 0700 and the
/// database with its -wal and -shm files 0600 (they held the signing keys and secrets
/// world-readable: 0644 files in a 0755 directory).
#[tokio::test]
async fn a_new_data_dir_is_private() {
    let s = Server::start().await;
    assert_eq!(mode(&s.dir), 0o700, "data dir");
    for f in ["portcullis.db", "portcullis.db-wal", "portcullis.db-shm"] {
        assert_eq!(mode(&s.dir.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&s.dir.join("tls")), 0o700, "tls/");
    for f in ["tls/ca-key.pem", "tls/server-key.pem"] {
        assert_eq!(mode(&s.dir.join(f)), 0o600, "{f}");
    }
}

/// Issue 13 item 10: a data dir left readable by others (0755, a 0644 database, WAL and TLS
/// key) is tightened at the next start, by `serve` and by every command that opens the store,
/// with a warning naming each file.
#[tokio::test]
async fn loose_permissions_are_tightened_with_a_warning() {
    let mut s = Server::start().await;
    s.stop().await;
    let db = s.dir.join("portcullis.db");
    let wal = s.dir.join("portcullis.db-wal");
    let loosen = || {
        set_mode(&s.dir, 0o755);
        set_mode(&db, 0o644);
        std::fs::write(&wal, b"").unwrap();
        set_mode(&wal, 0o644);
        set_mode(&s.dir.join("tls"), 0o755);
        set_mode(&s.dir.join("tls/server-key.pem"), 0o644);
    };

    // a command that opens the store
    loosen();
    let out = s.cli(&["client", "list"], None);
    assert!(out.status.success(), "client list: {}", stderr_of(&out));
    let err = stderr_of(&out);
    for p in [&s.dir, &db, &wal] {
        assert!(
            err.contains(&format!("{} was accessible to other users", p.display())),
            "no warning naming {}: {err}",
            p.display()
        );
    }
    assert_eq!(mode(&s.dir), 0o700);
    assert_eq!(mode(&db), 0o600);
    // (the WAL is gone again: a clean close checkpoints and removes it)

    // the server
    loosen();
    let mut serve = Serve::spawn(&s.dir);
    serve.jwks(&s.dir).await.expect("serve starts");
    let log = serve.stderr();
    for p in [&s.dir, &db, &wal, &s.dir.join("tls"), &s.dir.join("tls/server-key.pem")] {
        assert!(
            log.contains(&format!("{} was accessible to other users", p.display())),
            "no warning naming {}: {log}",
            p.display()
        );
    }
    assert_eq!(mode(&s.dir), 0o700);
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&s.dir.join("portcullis.db-wal")), 0o600);
    assert_eq!(mode(&s.dir.join("portcullis.db-shm")), 0o600);
    assert_eq!(mode(&s.dir.join("tls")), 0o700);
    assert_eq!(mode(&s.dir.join("tls/server-key.pem")), 0o600);
}

/// Issue 13 item 17: two servers started at the same instant on one new data dir (a process
/// supervisor, a rolling deploy) both come up, serve the same JWK Set, and the database holds
/// one active key per algorithm. Before, one could die with "database is locked" or a TLS
/// "KeyMismatch", and when both came up each had made its own keys.
#[tokio::test]
async fn two_servers_started_together_agree() {
    let mut trial = 0;
    while trial < 4 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut a = Serve::spawn(&dir);
        let mut b = Serve::spawn(&dir);
        let (ja, jb) = (a.jwks(&dir).await, b.jwks(&dir).await);
        let (ja, jb) = match (ja, jb) {
            (Ok(x), Ok(y)) => (x, y),
            // a port taken by a parallel test between free_port() and bind: try again
            (Err(e), _) | (_, Err(e)) if e.contains("cannot listen") => continue,
            (x, y) => panic!("trial {trial}: both must come up: {x:?} / {y:?}"),
        };
        assert_eq!(ja, jb, "trial {trial}: the two servers publish different keys");
        assert_eq!(kids(&ja).len(), 3, "trial {trial}: one key per algorithm: {ja}");
        drop((a, b));
        let out = run_bin(&dir, &["keys", "list"], &[]);
        assert!(out.status.success(), "keys list: {}", stderr_of(&out));
        let list = stdout_of(&out);
        let active = list.lines().filter(|l| l.contains("active")).count();
        assert_eq!(active, 3, "trial {trial}: one active key per algorithm: {list}");
        trial += 1;
    }
}

/// Issue 13 item 17: two servers on different machines (data dirs) sharing one database
/// elect one key per algorithm in the database itself, without the data dir's start-up lock.
/// They share the key-encryption key of the signing keys too (issue 17 item 4: configured, as
/// several nodes must).
#[tokio::test]
async fn two_servers_on_one_database_agree() {
    let mut trial = 0;
    while trial < 2 {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", tmp.path().join("shared.db").display());
        let env = [
            ("PORTCULLIS_STORAGE_DATABASE_URL", url.as_str()),
            (
                "PORTCULLIS_KEYS_ENCRYPTION_KEY",
                "c2hhcmVkIGJ5IHRoZSBub2RlcyBvZiBhbiBpc3N1ZXI=",
            ),
        ];
        let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
        let mut a = Serve::spawn_with(&da, &env);
        let mut b = Serve::spawn_with(&db, &env);
        let (ja, jb) = match (a.jwks(&da).await, b.jwks(&db).await) {
            (Ok(x), Ok(y)) => (x, y),
            (Err(e), _) | (_, Err(e)) if e.contains("cannot listen") => continue,
            (x, y) => panic!("trial {trial}: both must come up: {x:?} / {y:?}"),
        };
        assert_eq!(ja, jb, "trial {trial}: the two servers publish different keys");
        assert_eq!(kids(&ja).len(), 3, "trial {trial}: one key per algorithm: {ja}");
        assert_eq!(
            std::fs::metadata(tmp.path().join("shared.db"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600,
            "a database named by URL is private too"
        );
        trial += 1;
    }
}
