//! The server's signing keys on disk and in the database (issue 17 item 4): the
//! key-encryption key (KEK) that seals them at rest, the ring loaded from the store (plaintext
//! keys of older stores sealed on the way), and `portcullis keys list | rotate`.
//!
//! The KEK comes from `keys.encryption_key` (`PORTCULLIS_KEYS_ENCRYPTION_KEY`), else
//! `keys.encryption_key_file`, else `<data_dir>/keys.key`, generated (0600) when the database
//! holds no sealed key yet. Key material is never logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use clap::Subcommand;
use portcullis_core::key_encryption::{KEK_LEN, KeyEncryptionError, KeyEncryptionKey, is_sealed};
use portcullis_core::keyring::{SERVER_ALGORITHMS, generate_stored_key};
use portcullis_core::model::StoredKey;
use portcullis_core::{KeyRing, Settings, Store};

use crate::config::Config;
use crate::datadir::{self, StartError};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List the signing keys: kid, algorithm, state (next, active, retired), when each was
    /// created, signs from, was retired and leaves the JWKS (RFC 3339 UTC)
    List,
    /// Make new keys: published in the JWKS at once, signing after keys.prepublication (the
    /// current keys sign until then, and stay published until what they signed has expired)
    Rotate {
        /// The pre-publication period instead of keys.prepublication (e.g. 0, 30m, 1h)
        #[arg(long, value_name = "DURATION", conflicts_with = "now")]
        prepublish: Option<String>,
        /// Sign with the new keys at once (an emergency rotation: clients that cached the
        /// JWKS refetch it when they meet the new kid)
        #[arg(long)]
        now: bool,
    },
}

/// The KEK and where it came from (for messages).
pub struct Custody {
    kek: KeyEncryptionKey,
    source: String,
}

/// The default KEK file in the data dir.
pub fn kek_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys.key")
}

impl Custody {
    /// Finds the KEK (see the module documentation); generates `<data_dir>/keys.key` only
    /// when nothing is configured and the store holds no sealed key (a sealed key with no
    /// KEK in sight is a forgotten setting, not a first start).
    pub async fn load(config: &Config, store: &dyn Store) -> Result<Self, StartError> {
        let keys = &config.keys;
        if !keys.encryption_key.is_empty() {
            let kek = parse_kek(&keys.encryption_key)
                .map_err(|e| StartError::Usage(format!("keys.encryption_key: {e} (e.g. `openssl rand -base64 32`)")))?;
            return Ok(Self {
                kek,
                source: "keys.encryption_key".into(),
            });
        }
        if !keys.encryption_key_file.is_empty() {
            let path = PathBuf::from(&keys.encryption_key_file);
            return Ok(Self {
                kek: read_kek_file(&path, "keys.encryption_key_file")?,
                source: format!("keys.encryption_key_file {}", path.display()),
            });
        }
        let path = kek_path(&config.server.data_dir);
        let source = format!("{}", path.display());
        if path.exists() {
            datadir::tighten(&path, "key-encryption key")?;
            return Ok(Self {
                kek: read_kek_file(&path, "the key-encryption key")?,
                source,
            });
        }
        let stored = store
            .list_signing_keys()
            .await
            .map_err(|e| StartError::Runtime(format!("cannot read the signing keys: {e}; check the database")))?;
        if stored.iter().any(|k| is_sealed(&k.private_key)) {
            return Err(StartError::Usage(format!(
                "the signing keys are encrypted but no key-encryption key is configured and {} does not exist: \
                 set keys.encryption_key (PORTCULLIS_KEYS_ENCRYPTION_KEY) or keys.encryption_key_file",
                path.display()
            )));
        }
        let bytes = KeyEncryptionKey::generate_bytes().map_err(|e| StartError::Runtime(e.to_string()))?;
        write_new_private(&path, &base64::engine::general_purpose::STANDARD.encode(bytes)).map_err(|e| {
            StartError::Usage(format!(
                "cannot create the key-encryption key {}: {e}; check the data dir's permissions",
                path.display()
            ))
        })?;
        tracing::info!(path = %path.display(), "generated the key-encryption key for the signing keys");
        Ok(Self {
            kek: KeyEncryptionKey::from_bytes(&bytes).map_err(|e| StartError::Runtime(e.to_string()))?,
            source,
        })
    }

    /// A stored key as it goes to the store: sealed.
    fn seal(&self, mut key: StoredKey) -> Result<StoredKey, String> {
        key.private_key = self.kek.seal(&key.kid, &key.private_key).map_err(|e| e.to_string())?;
        Ok(key)
    }

    /// Stored keys opened for the ring. Plaintext ones are taken only from a store that holds
    /// no sealed key yet (one from before encryption at rest, sealed at start): once any key is
    /// sealed, a plaintext row is what someone with write access to the database planted to
    /// have it sign, and is ignored, loudly (review round 2, M1).
    fn open(&self, stored: Vec<StoredKey>) -> Result<Vec<StoredKey>, KeyEncryptionError> {
        let any_sealed = stored.iter().any(|k| is_sealed(&k.private_key));
        stored
            .into_iter()
            .filter_map(|mut k| {
                if is_sealed(&k.private_key) {
                    Some(self.kek.open(&k.kid, &k.private_key).map(|p| {
                        k.private_key = p;
                        k
                    }))
                } else if any_sealed {
                    tracing::error!(
                        kid = %k.kid,
                        "a signing key in the database is not sealed although the others are: it is ignored \
                         (neither published nor used); someone with write access to the database may have put it \
                         there: remove it and check the database"
                    );
                    None
                } else {
                    Some(Ok(k))
                }
            })
            .collect()
    }

    /// Seals the plaintext keys of an older store in place (compare and swap: a server doing
    /// the same at once is harmless). Returns how many this call sealed.
    async fn seal_plaintext(&self, store: &dyn Store, stored: &[StoredKey]) -> Result<usize, String> {
        let mut sealed = 0;
        // only the keys of a store from before encryption at rest: a plaintext key beside sealed
        // ones is never adopted ([`Custody::open`])
        if stored.iter().any(|k| is_sealed(&k.private_key)) {
            return Ok(0);
        }
        for k in stored.iter().filter(|k| !is_sealed(&k.private_key)) {
            let blob = self.kek.seal(&k.kid, &k.private_key).map_err(|e| e.to_string())?;
            if store
                .replace_signing_key_material(&k.kid, &k.private_key, &blob)
                .await
                .map_err(|e| e.to_string())?
            {
                sealed += 1;
            }
        }
        Ok(sealed)
    }
}

/// The KEK's 32 bytes from base64 (standard or URL-safe, padded or not). The value is never
/// repeated in an error.
fn parse_kek(text: &str) -> Result<KeyEncryptionKey, String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| format!("not base64 (expected the base64 of {KEK_LEN} random bytes)"))?;
    KeyEncryptionKey::from_bytes(&bytes).map_err(|e| e.to_string())
}

fn read_kek_file(path: &Path, what: &str) -> Result<KeyEncryptionKey, StartError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| StartError::Usage(format!("{what} {}: {e}", path.display())))?;
    parse_kek(&text).map_err(|e| StartError::Usage(format!("{what} {}: {e}", path.display())))
}

/// Creates `path` 0600 with `contents`; never overwrites.
fn write_new_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Loads the ring at start (`serve`, `keys`): seals plaintext keys of an older store, creates
/// any missing key (first start; several processes doing this at once on one database end up
/// with the same keys: each algorithm's key is stored only if none is active, and everyone
/// reads back what won, issue 13 item 17), opens the keys and builds the ring. A KEK that does
/// not open them is the operator's to fix (exit 2).
pub async fn load(store: &dyn Store, settings: &Settings, custody: &Custody, now: i64) -> Result<KeyRing, StartError> {
    let rt = |e: String| {
        StartError::Runtime(format!(
            "cannot load the signing keys: {e}; check the database (`portcullis keys list`)"
        ))
    };
    let stored = store.list_signing_keys().await.map_err(|e| rt(e.to_string()))?;
    let sealed = custody.seal_plaintext(store, &stored).await.map_err(rt)?;
    if sealed > 0 {
        tracing::info!(keys = sealed, "encrypted the stored signing keys at rest");
    }
    let mut ring = build(store, settings, custody, now).await?;
    let missing = ring.missing();
    if !missing.is_empty() {
        for alg in SERVER_ALGORITHMS.iter().filter(|a| missing.contains(a)) {
            let key = generate_stored_key(*alg, now).map_err(|e| rt(e.to_string()))?;
            let key = custody.seal(key).map_err(rt)?;
            if !store
                .insert_signing_key_if_missing(&key)
                .await
                .map_err(|e| rt(e.to_string()))?
            {
                tracing::info!(%alg, "another process created this signing key first; using it");
            }
        }
        ring = build(store, settings, custody, now).await?;
        if let Some(alg) = ring.missing().first() {
            return Err(rt(format!("no active {alg} signing key after creating one")));
        }
    }
    if !ring.ignored().is_empty() {
        datadir::warn(&format!(
            "the database holds more than one active signing key for an algorithm; the oldest signs, \
             these are only published: {} (`portcullis keys rotate` leaves one per algorithm)",
            ring.ignored().join(", ")
        ));
    }
    Ok(ring)
}

async fn build(store: &dyn Store, settings: &Settings, custody: &Custody, now: i64) -> Result<KeyRing, StartError> {
    let stored = store
        .list_signing_keys()
        .await
        .map_err(|e| StartError::Runtime(format!("cannot read the signing keys: {e}; check the database")))?;
    let opened = custody.open(stored).map_err(|e| match e {
        KeyEncryptionError::Undecryptable { kid } | KeyEncryptionError::Malformed { kid } => {
            StartError::Usage(format!(
                "cannot decrypt the signing keys: wrong keys.encryption_key? (key {kid} does not open with the \
             key-encryption key from {})",
                custody.source
            ))
        }
        other => StartError::Runtime(format!("cannot decrypt the signing keys: {other}")),
    })?;
    KeyRing::from_stored(&opened, now, settings.key_publication_grace())
        .map_err(|e| StartError::Runtime(format!("cannot load the signing keys: {e}; check the database")))
}

/// The periodic reload of a running server (after `keys rotate`, or another node's changes);
/// plaintext keys another process stored are sealed too.
pub async fn reload(store: &dyn Store, settings: &Settings, custody: &Custody, now: i64) -> Result<KeyRing, String> {
    let stored = store.list_signing_keys().await.map_err(|e| e.to_string())?;
    custody.seal_plaintext(store, &stored).await?;
    build(store, settings, custody, now).await.map_err(|e| e.to_string())
}

/// `portcullis keys list | rotate`.
pub async fn command(config: &Config, command: KeysCommand) -> Result<(), StartError> {
    // a rotation (or a first `keys list`, which creates the keys) waits for a starting server
    let _init = datadir::StartupLock::acquire(&config.server.data_dir).await?;
    let store = crate::setup::open_store(config).await?;
    let settings = crate::setup::settings(config).map_err(StartError::Usage)?;
    let custody = Custody::load(config, store.as_ref()).await?;
    let t = crate::now();
    let ring = load(store.as_ref(), &settings, &custody, t).await?;
    let rt = |e: String| StartError::Runtime(e);
    match command {
        KeysCommand::List => {
            let time = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), crate::time::utc);
            for k in ring.describe(t) {
                println!(
                    "{}\t{}\t{}\tcreated {}\tactivates {}\tretired {}\tremoved {}",
                    k.kid,
                    k.alg,
                    k.state.as_str(),
                    crate::time::utc(k.created_at),
                    crate::time::utc(k.activates_at),
                    time(k.retired_at),
                    time(k.removed_at),
                );
            }
        }
        KeysCommand::Rotate { prepublish, now } => {
            let wait = match (now, prepublish) {
                (true, _) => 0,
                (false, Some(p)) if p.trim() == "0" => 0,
                (false, Some(p)) => {
                    crate::parse_duration(&p).map_err(|e| StartError::Usage(format!("--prepublish: {e}")))?
                }
                (false, None) => config.keys.prepublication,
            };
            let activates_at = t + wait;
            let mut keys = Vec::with_capacity(SERVER_ALGORITHMS.len());
            for alg in SERVER_ALGORITHMS {
                let mut key = generate_stored_key(alg, t).map_err(|e| rt(e.to_string()))?;
                key.activates_at = activates_at;
                keys.push(custody.seal(key).map_err(rt)?);
            }
            // the new keys and the old keys' retirement in one step: a server starting
            // meanwhile never finds an algorithm without a key and makes its own (issue 13
            // item 17)
            store
                .rotate_signing_keys(&keys, activates_at)
                .await
                .map_err(|e| rt(e.to_string()))?;
            let when = crate::time::utc(activates_at);
            let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
            crate::audit_events::record_with(
                "keys_rotated",
                "success",
                None,
                None,
                &format!("new={} active_from={when}", kids.join(",")),
            );
            for key in &keys {
                if wait == 0 {
                    println!("{}\t{}\tactive from {when}", key.kid, key.alg);
                } else {
                    println!("{}\t{}\tnext, published now, active from {when}", key.kid, key.alg);
                }
            }
            // keys retired long enough ago that nothing they signed is still valid
            store
                .delete_signing_keys_retired_before(t - settings.key_publication_grace())
                .await
                .map_err(|e| rt(e.to_string()))?;
            build(store.as_ref(), &settings, &custody, t).await?;
        }
    }
    Ok(())
}

/// The custody shared with the running server's maintenance.
pub type SharedCustody = Arc<Custody>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kek_encodings() {
        let bytes = [0xfbu8; KEK_LEN];
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        assert!(parse_kek(&STANDARD.encode(bytes)).is_ok());
        assert!(parse_kek(&format!("  {}\n", URL_SAFE_NO_PAD.encode(bytes))).is_ok());
        let e = parse_kek(&STANDARD.encode([1u8; 16])).err().unwrap();
        assert!(e.contains("32 bytes"), "{e}");
        let e = parse_kek("not base64 at all!").err().unwrap();
        assert!(e.starts_with("not base64"), "{e}");
    }
}
