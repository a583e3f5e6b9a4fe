//! The development CA and server certificate of the zero-configuration start (issue 17 item 3),
//! made only when no `tls.cert_file` is configured.
//!
//! The CA is valid for a year and name-constrained (RFC 5280 §4.2.1.10) to `localhost`, the
//! issuer's host, 127.0.0.0/8 and ::1, so that trusting it in a browser trusts nothing else; the
//! server certificate is valid for 90 days. At each start (and on SIGHUP), the server
//! certificate is re-issued when it expires within 30 days, from the same CA while that stays
//! valid; the CA is replaced when it expires within 30 days, when the host list changes, or when
//! it is an old long-lived one without name constraints (each logged: the new `ca.pem` must be
//! trusted again). The CA key stays in `<data_dir>/tls/` (0600).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, NameConstraints, SanType,
};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The CA's validity: a year.
pub const CA_VALIDITY: i64 = 365 * DAY;
/// The server certificate's validity: 90 days.
pub const SERVER_VALIDITY: i64 = 90 * DAY;
/// A certificate that expires within this is replaced at start.
pub const RENEW_BEFORE: i64 = 30 * DAY;
/// Older releases made certificates valid until 4096: anything valid longer than this is one.
const LONG_LIVED: i64 = 400 * DAY;
const DAY: i64 = 86_400;

/// Paths of the TLS material under the data dir.
pub struct TlsFiles {
    pub dir: PathBuf,
}

impl TlsFiles {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("tls"),
        }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca-key.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server-key.pem")
    }
    fn hosts(&self) -> PathBuf {
        self.dir.join("server.hosts")
    }
}

/// What [`ensure_dev_certificates`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Issued {
    pub new_ca: bool,
    pub new_server_certificate: bool,
}

/// Makes sure a valid development CA and server certificate for `hosts` exist (see the module
/// documentation); `now` is Unix seconds. Logs each replacement and why.
pub fn ensure_dev_certificates(files: &TlsFiles, hosts: &[String], now: i64) -> Result<Issued, String> {
    std::fs::create_dir_all(&files.dir).map_err(|e| format!("cannot create {}: {e}", files.dir.display()))?;
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let wanted_hosts = hosts.join("\n");
    let hosts_changed = std::fs::read_to_string(files.hosts()).unwrap_or_default() != wanted_hosts;
    let mut issued = Issued::default();

    let ca_problem = if !files.ca_cert().exists() || !files.ca_key().exists() {
        Some("none yet")
    } else {
        match read_validity(&files.ca_cert()) {
            None => Some("unreadable"),
            Some(v) if !v.constrained => Some("an old one without name constraints"),
            Some(v) if v.not_after - v.not_before > LONG_LIVED => Some("an old long-lived one"),
            Some(v) if v.not_after - now < RENEW_BEFORE => Some("expiring"),
            Some(_) if hosts_changed => Some("made for other host names"),
            Some(_) => None,
        }
    };
    if let Some(why) = ca_problem {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = ca_params(hosts, now)?.self_signed(&key).map_err(|e| e.to_string())?;
        write_private(&files.ca_key(), &key.serialize_pem()).map_err(|e| io(&files.ca_key(), e))?;
        write_public(&files.ca_cert(), &cert.pem()).map_err(|e| io(&files.ca_cert(), e))?;
        if why != "none yet" {
            tracing::warn!(
                ca = %files.ca_cert().display(),
                reason = why,
                "replaced the development CA (valid for a year, name-constrained): trust the new ca.pem"
            );
        }
        issued.new_ca = true;
    }
    let ca_not_after = read_validity(&files.ca_cert())
        .map(|v| v.not_after)
        .ok_or_else(|| format!("{}: not a certificate", files.ca_cert().display()))?;

    let server_problem = if issued.new_ca {
        Some("a new CA")
    } else if !files.server_cert().exists() || !files.server_key().exists() {
        Some("none yet")
    } else if hosts_changed {
        Some("made for other host names")
    } else {
        match read_validity(&files.server_cert()) {
            None => Some("unreadable"),
            Some(v) if v.not_after - v.not_before > LONG_LIVED => Some("an old long-lived one"),
            Some(v) if v.not_after - now < RENEW_BEFORE => Some("expiring"),
            Some(_) => None,
        }
    };
    let Some(why) = server_problem else {
        return Ok(issued);
    };
    let ca_key_pem = std::fs::read_to_string(files.ca_key()).map_err(|e| io(&files.ca_key(), e))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| format!("{}: {e}", files.ca_key().display()))?;
    let issuer = Issuer::new(ca_params(hosts, now)?, ca_key);
    let mut params = CertificateParams::default();
    params.distinguished_name.push(
        DnType::CommonName,
        hosts.first().cloned().unwrap_or_else(|| "localhost".into()),
    );
    params.subject_alt_names = hosts
        .iter()
        .map(|h| match h.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => h
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e: rcgen::Error| e.to_string()),
        })
        .collect::<Result<_, _>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = time_of(now - 3600)?;
    // never beyond the CA
    params.not_after = time_of((now + SERVER_VALIDITY).min(ca_not_after))?;
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
    write_private(&files.server_key(), &key.serialize_pem()).map_err(|e| io(&files.server_key(), e))?;
    write_public(&files.server_cert(), &cert.pem()).map_err(|e| io(&files.server_cert(), e))?;
    std::fs::write(files.hosts(), wanted_hosts).map_err(|e| io(&files.hosts(), e))?;
    if why != "none yet" && why != "a new CA" {
        tracing::info!(
            certificate = %files.server_cert().display(),
            reason = why,
            "re-issued the development server certificate (valid for 90 days)"
        );
    }
    issued.new_server_certificate = true;
    Ok(issued)
}

/// The CA: one year, path length 0, names constrained to `hosts` (DNS names) and loopback
/// (plus any address literal among `hosts`).
fn ca_params(hosts: &[String], now: i64) -> Result<CertificateParams, String> {
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "Portcullis development CA");
    p.distinguished_name.push(DnType::OrganizationName, "Portcullis");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = time_of(now - 3600)?;
    p.not_after = time_of(now + CA_VALIDITY)?;
    let mut permitted = vec![
        GeneralSubtree::IpAddress(CidrSubnet::V4([127, 0, 0, 0], [255, 0, 0, 0])),
        GeneralSubtree::IpAddress(CidrSubnet::V6(std::net::Ipv6Addr::LOCALHOST.octets(), [0xff; 16])),
    ];
    for h in hosts {
        match h.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => {}
            Ok(IpAddr::V4(v4)) => permitted.push(GeneralSubtree::IpAddress(CidrSubnet::V4(v4.octets(), [0xff; 4]))),
            Ok(IpAddr::V6(v6)) => permitted.push(GeneralSubtree::IpAddress(CidrSubnet::V6(v6.octets(), [0xff; 16]))),
            Err(_) => permitted.push(GeneralSubtree::DnsName(h.clone())),
        }
    }
    p.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    });
    Ok(p)
}

fn time_of(t: i64) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::from_unix_timestamp(t).map_err(|e| e.to_string())
}

/// Validity (Unix seconds) and whether the certificate carries name constraints.
struct Validity {
    not_before: i64,
    not_after: i64,
    constrained: bool,
}

fn read_validity(path: &Path) -> Option<Validity> {
    let pem = std::fs::read(path).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let (_, cert) = X509Certificate::from_der(&pem.contents).ok()?;
    Some(Validity {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        constrained: cert.name_constraints().ok().flatten().is_some(),
    })
}

/// Writes a private key file, 0600 from the start, whole or not at all: a temporary file in the
/// same directory, synced, then renamed over the old one (a crash or a reader never sees half
/// a key, and an existing file's loose mode is not kept).
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    write_atomically(path, contents, 0o600)
}

/// Writes a public file (a certificate) whole or not at all, 0644.
pub fn write_public(path: &Path, contents: &str) -> std::io::Result<()> {
    write_atomically(path, contents, 0o644)
}

fn write_atomically(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(contents.as_bytes())?;
        f.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
