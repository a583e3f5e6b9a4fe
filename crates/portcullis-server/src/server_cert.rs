//! The server certificate both listeners present, and its reload (issue 17 item 3).
//!
//! The certificate and key come from `tls.cert_file` / `tls.key_file` (a PEM chain, leaf first,
//! and its PEM key), or from the development CA when neither is set. Both listeners' rustls
//! configurations resolve the certificate through one [`ServerCertificate`], which holds the
//! current pair behind a lock: a reload swaps it for new handshakes; connections already open
//! keep theirs. A reload happens on SIGHUP and, for configured files, when either file's contents
//! change (checked every `tls.reload_interval` seconds); a new pair that does not load (no
//! certificate, no key, a key that does not match, an expired certificate) is refused with an
//! error in the log and the current one is kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::dev_ca::{self, TlsFiles};

/// Where the certificate comes from.
pub enum Source {
    /// `tls.cert_file` and `tls.key_file`.
    Files { cert: PathBuf, key: PathBuf },
    /// The development CA in `<data_dir>/tls`, for these host names.
    Dev { files: TlsFiles, hosts: Vec<String> },
}

impl Source {
    fn paths(&self) -> (PathBuf, PathBuf) {
        match self {
            Source::Files { cert, key } => (cert.clone(), key.clone()),
            Source::Dev { files, .. } => (files.server_cert(), files.server_key()),
        }
    }

    /// Names for messages: the settings, or the development files.
    fn names(&self) -> (&'static str, &'static str) {
        match self {
            Source::Files { .. } => ("tls.cert_file", "tls.key_file"),
            Source::Dev { .. } => ("the development certificate", "its key"),
        }
    }
}

/// The current certificate, shared by both listeners.
#[derive(Debug)]
pub struct ServerCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCertificate {
    pub fn new(first: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(first),
        })
    }

    fn get(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, new: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut c) => *c = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The two files' contents, to notice a change.
type Contents = (Vec<u8>, Vec<u8>);

/// Loads the pair `source` names: each failure names its file (one line).
pub fn load(source: &Source, provider: &CryptoProvider, now: i64) -> Result<Arc<CertifiedKey>, String> {
    let (cert, key) = source.paths();
    let contents = read(&cert, &key, source)?;
    parse(source, &contents, provider, now)
}

fn read(cert: &Path, key: &Path, source: &Source) -> Result<Contents, String> {
    let (cert_name, key_name) = source.names();
    let c = std::fs::read(cert).map_err(|e| format!("{cert_name} {}: {e}", cert.display()))?;
    let k = std::fs::read(key).map_err(|e| format!("{key_name} {}: {e}", key.display()))?;
    Ok((c, k))
}

fn parse(
    source: &Source,
    (cert_pem, key_pem): &Contents,
    provider: &CryptoProvider,
    now: i64,
) -> Result<Arc<CertifiedKey>, String> {
    let (cert, key) = source.paths();
    let (cert_name, key_name) = source.names();
    let about_cert = |what: String| format!("{cert_name} {}: {what}", cert.display());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| about_cert(format!("not a PEM certificate chain ({e})")))?;
    let Some(leaf) = chain.first() else {
        return Err(about_cert(
            "no certificate in it (expected PEM CERTIFICATE blocks, the server's first)".into(),
        ));
    };
    let (_, parsed) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| about_cert(format!("the first certificate does not parse ({e})")))?;
    let not_after = parsed.validity().not_after.timestamp();
    if not_after < now {
        return Err(about_cert(format!(
            "the certificate expired at {}",
            crate::time::utc(not_after)
        )));
    }
    let private = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("{key_name} {}: no usable PEM private key ({e})", key.display()))?;
    CertifiedKey::from_der(chain, private, provider)
        .map(Arc::new)
        .map_err(|e| {
            format!(
                "{key_name} {} does not go with the certificate in {cert_name} {}: {e}",
                key.display(),
                cert.display()
            )
        })
}

/// Watches for a new certificate: SIGHUP, or (configured files, `interval` non-zero) a change
/// of either file; the development certificate is also renewed at SIGHUP and daily when it
/// nears its expiry. Runs until the process ends.
pub fn spawn_reloader(
    source: Source,
    current: Arc<ServerCertificate>,
    provider: Arc<CryptoProvider>,
    interval: Duration,
    now: fn() -> i64,
) {
    #[cfg(unix)]
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; the certificate is reloaded only when its files change");
            None
        }
    };
    #[cfg(not(unix))]
    let mut hangup: Option<()> = None;
    tokio::spawn(async move {
        let (cert, key) = source.paths();
        let mut seen = read(&cert, &key, &source).ok();
        let poll = match source {
            Source::Files { .. } => interval,
            // the development certificate changes only when we renew it: once a day
            Source::Dev { .. } => Duration::from_secs(86_400),
        };
        loop {
            let forced = tokio::select! {
                _ = hangup_recv(&mut hangup) => true,
                _ = tokio::time::sleep(poll), if !poll.is_zero() => false,
            };
            if let Source::Dev { files, hosts } = &source
                && let Err(e) = dev_ca::ensure_dev_certificates(files, hosts, now())
            {
                tracing::error!(error = %e, "cannot renew the development certificate");
            }
            let contents = match read(&cert, &key, &source) {
                Ok(c) => c,
                Err(e) => {
                    if forced || seen.is_some() {
                        tracing::error!(error = %e, "cannot read the new TLS certificate; keeping the current one");
                    }
                    seen = None;
                    continue;
                }
            };
            if !forced && seen.as_ref() == Some(&contents) {
                continue;
            }
            match parse(&source, &contents, &provider, now()) {
                Ok(new) => {
                    current.set(new);
                    tracing::info!(certificate = %cert.display(), "loaded the new TLS certificate for new connections");
                }
                Err(e) => {
                    tracing::error!(error = %e, "refused the new TLS certificate; keeping the current one");
                }
            }
            seen = Some(contents);
        }
    });
}

#[cfg(unix)]
async fn hangup_recv(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(not(unix))]
async fn hangup_recv(_signal: &mut Option<()>) {
    std::future::pending::<()>().await
}
