//! The data dir holds the signing private keys, the HMAC secrets and the TLS keys: it is kept
//! private (issue 13 item 10), and first-start initialisation in it has one winner (issue 13
//! item 17).
//!
//! Permissions: the data dir and `tls/` are created 0700, the database (and the `-wal` /
//! `-shm` files SQLite gives the database file's mode) 0600. An existing one that group or
//! others may access is tightened at every start with a loud warning naming it, or refused
//! (exit 2) when it cannot be (e.g. another user owns it).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

/// A start-up error: a `Usage` one is the operator's to fix (exit 2), a `Runtime` one is not.
#[derive(Debug)]
pub enum StartError {
    Usage(String),
    Runtime(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Usage(m) | StartError::Runtime(m) => f.write_str(m),
        }
    }
}

/// A warning printed where the operator sees it: the log once tracing is set up (`serve`),
/// standard error otherwise (the CLI commands).
pub fn warn(message: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::warn!("{message}");
    } else {
        eprintln!("portcullis: WARNING: {message}");
    }
}

#[cfg(unix)]
mod imp {
    use std::fs::{DirBuilder, OpenOptions, Permissions};
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    use std::path::Path;

    use super::{StartError, warn};

    /// Creates `dir` (and missing parents) with mode 0700, or tightens an existing one.
    pub fn private_dir(dir: &Path, what: &str) -> Result<(), StartError> {
        if !dir.exists() {
            DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| {
                StartError::Usage(format!(
                    "cannot create the {what} {}: {e}; create it or choose another --data-dir",
                    dir.display()
                ))
            })?;
        }
        tighten(dir, what)
    }

    /// Creates the empty file `path` with mode 0600 if it does not exist (so that SQLite, and
    /// the `-wal` / `-shm` files it derives from it, never start out readable by others).
    pub fn private_file(path: &Path, what: &str) -> Result<(), StartError> {
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => tighten(path, what),
            Err(e) => Err(StartError::Usage(format!(
                "cannot create the {what} {}: {e}; check the permissions of its directory",
                path.display()
            ))),
        }
    }

    /// Removes group and other access from `path` if it has any; a missing file is fine.
    pub fn tighten(path: &Path, what: &str) -> Result<(), StartError> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(StartError::Usage(format!(
                    "cannot check the permissions of the {what} {}: {e}",
                    path.display()
                )));
            }
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            return Ok(());
        }
        let wanted = mode & 0o700;
        std::fs::set_permissions(path, Permissions::from_mode(wanted)).map_err(|e| {
            StartError::Usage(format!(
                "the {what} {} is accessible to other users (mode {mode:04o}) and cannot be made private: {e}; \
                 run portcullis as its owner or chmod go= it",
                path.display()
            ))
        })?;
        warn(&format!(
            "the {what} {} was accessible to other users (mode {mode:04o}); changed to {wanted:04o}: \
             it holds the signing keys and secrets, check who may have read it",
            path.display()
        ));
        Ok(())
    }
}

#[cfg(not(unix))]
mod imp {
    use std::path::Path;

    use super::StartError;

    pub fn private_dir(dir: &Path, what: &str) -> Result<(), StartError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StartError::Usage(format!("cannot create the {what} {}: {e}", dir.display())))
    }

    pub fn private_file(path: &Path, what: &str) -> Result<(), StartError> {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map(|_| ())
            .map_err(|e| StartError::Usage(format!("cannot create the {what} {}: {e}", path.display())))
    }

    pub fn tighten(_path: &Path, _what: &str) -> Result<(), StartError> {
        Ok(())
    }
}

pub use imp::{private_dir, tighten};

/// The SQLite database file's companions, which hold its recent writes and must be as
/// private as it is.
const DATABASE_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Before SQLite opens `db`: creates it 0600 if new, tightens it and its `-wal` / `-shm` /
/// `-journal` files if others may read them.
pub fn prepare_database(db: &Path) -> Result<(), StartError> {
    imp::private_file(db, "database")?;
    check_database(db)
}

/// Tightens the database and its companion files if others may read them.
pub fn check_database(db: &Path) -> Result<(), StartError> {
    tighten(db, "database")?;
    for suffix in DATABASE_SUFFIXES {
        tighten(&with_suffix(db, suffix), "database file")?;
    }
    Ok(())
}

/// The `tls/` directory and the private keys in it.
pub fn check_tls(dir: &Path) -> Result<(), StartError> {
    private_dir(dir, "TLS directory")?;
    for key in ["ca-key.pem", "server-key.pem"] {
        tighten(&dir.join(key), "TLS private key")?;
    }
    Ok(())
}

/// How long a start waits for another process's first-start initialisation.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// An exclusive lock on `<data_dir>/portcullis.lock`, held while a process creates what must
/// exist once (the database, the signing keys, the development CA and server certificate):
/// two processes starting at the same moment on one data dir take turns, and the second
/// adopts what the first made (issue 13 item 17). Released when dropped (or when the process
/// dies: the operating system drops the lock with the file descriptor).
pub struct StartupLock {
    _file: File,
}

impl StartupLock {
    pub async fn acquire(data_dir: &Path) -> Result<Self, StartError> {
        private_dir(data_dir, "data dir")?;
        let path = data_dir.join("portcullis.lock");
        let file = open_lock_file(&path)?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StartError::Runtime(format!(
                        "another portcullis process has held {} for more than {} s while starting; \
                         stop it or use another --data-dir",
                        path.display(),
                        LOCK_WAIT.as_secs()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    // a file system without locks: the database still elects one key per
                    // algorithm, only the TLS files are unguarded
                    warn(&format!(
                        "cannot lock {} ({e}); do not start two servers on this data dir at once",
                        path.display()
                    ));
                    return Ok(Self { _file: file });
                }
            }
        }
    }
}

fn open_lock_file(path: &Path) -> Result<File, StartError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|e| {
        StartError::Usage(format!(
            "cannot open the lock file {}: {e}; check the permissions of the data dir",
            path.display()
        ))
    })
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// Issue 13 item 10: a new data dir and database are private; loose ones are tightened.
    #[test]
    fn new_files_are_private_and_loose_ones_are_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/data");
        private_dir(&dir, "data dir").unwrap();
        assert_eq!(mode(&dir), 0o700);
        let db = dir.join("portcullis.db");
        prepare_database(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(with_suffix(&db, "-wal"), b"").unwrap();
        std::fs::set_permissions(with_suffix(&db, "-wal"), std::fs::Permissions::from_mode(0o664)).unwrap();
        private_dir(&dir, "data dir").unwrap();
        prepare_database(&db).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&with_suffix(&db, "-wal")), 0o600);
    }

    /// Issue 13 item 17: the start-up lock has one holder at a time.
    #[tokio::test]
    async fn the_startup_lock_is_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let first = StartupLock::acquire(tmp.path()).await.unwrap();
        let file = open_lock_file(&tmp.path().join("portcullis.lock")).unwrap();
        assert!(matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
        drop(first);
        assert!(file.try_lock().is_ok());
    }
}
