//! Issue 17 item 3: TLS with real certificates (`tls.cert_file` / `tls.key_file`, reloaded when
//! the files change and on SIGHUP, a broken replacement refused), and a development CA that is
//! short-lived and name-constrained.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use super::*;

/// A test CA: its PEM and what signs with it.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn test_ca(name: &str) -> TestCa {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let key = KeyPair::generate().unwrap();
    let pem = p.self_signed(&key).unwrap().pem();
    TestCa {
        pem,
        issuer: Issuer::new(p, key),
    }
}

/// A server certificate for localhost from `ca`, valid `days` from now (negative: expired);
/// (chain PEM, key PEM).
fn leaf(ca: &TestCa, days: i64) -> (String, String) {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    p.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into().unwrap()),
        SanType::IpAddress("127.0.0.1".parse().unwrap()),
    ];
    let t = |secs: i64| time::OffsetDateTime::from_unix_timestamp(now() + secs).unwrap();
    p.not_before = t(-86_400 * 2 + days.min(0) * 86_400);
    p.not_after = t(days * 86_400);
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    (format!("{}{}", cert.pem(), ca.pem), key.serialize_pem())
}

/// Whether a fresh connection to `port` that trusts only `ca_pem` gets discovery.
async fn trusted_by(port: u16, ca_pem: &str) -> bool {
    let client = client_trusting(ca_pem.as_bytes());
    client
        .get(format!("https://localhost:{port}/.well-known/openid-configuration"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// Waits up to `within` for both listeners to present a certificate from `ca_pem`.
async fn both_listeners_serve(s: &Server, ca_pem: &str, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if trusted_by(s.port, ca_pem).await && trusted_by(s.mtls_port, ca_pem).await {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Files {
    _tmp: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl Files {
    fn new(ca: &TestCa, pair: &(String, String)) -> Files {
        let tmp = tempfile::tempdir().unwrap();
        let f = Files {
            cert: tmp.path().join("fullchain.pem"),
            key: tmp.path().join("privkey.pem"),
            ca: tmp.path().join("ca.pem"),
            _tmp: tmp,
        };
        std::fs::write(&f.ca, &ca.pem).unwrap();
        f.write(pair);
        f
    }

    fn write(&self, (cert, key): &(String, String)) {
        std::fs::write(&self.key, key).unwrap();
        std::fs::write(&self.cert, cert).unwrap();
    }

    fn env(&self, reload_interval: &str) -> Vec<(String, String)> {
        vec![
            ("PORTCULLIS_TLS_CERT_FILE".into(), self.cert.to_str().unwrap().into()),
            ("PORTCULLIS_TLS_KEY_FILE".into(), self.key.to_str().unwrap().into()),
            ("PORTCULLIS_TLS_RELOAD_INTERVAL".into(), reload_interval.into()),
        ]
    }
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// A configured certificate is served on both listeners (no development CA made); new files
/// are picked up for new connections; a broken, mismatched or expired replacement is refused
/// and the current certificate kept.
#[tokio::test]
async fn configured_certificate_is_served_and_reloaded_when_its_files_change() {
    let (ca1, ca2) = (test_ca("Test CA one"), test_ca("Test CA two"));
    let files = Files::new(&ca1, &leaf(&ca1, 30));
    let env = files.env("1");
    let s = Server::start_trusting(&as_refs(&env), Some(files.ca.clone())).await;
    assert!(!s.dir.join("tls").exists(), "no development CA with tls.cert_file");
    assert!(s.stdout.contains("certificate: "), "{}", s.stdout);
    assert!(both_listeners_serve(&s, &ca1.pem, Duration::ZERO).await);
    assert!(!trusted_by(s.port, &ca2.pem).await);

    // a renewed certificate from another CA: picked up within a few seconds
    files.write(&leaf(&ca2, 30));
    assert!(
        both_listeners_serve(&s, &ca2.pem, Duration::from_secs(10)).await,
        "the new certificate is not served: {}",
        s.log()
    );
    assert!(!trusted_by(s.port, &ca1.pem).await, "the old one is gone");

    // broken replacements: not PEM, a key of another certificate, an expired certificate
    let (good_cert, _) = leaf(&ca1, 30);
    let (_, other_key) = leaf(&ca1, 30);
    for (what, pair) in [
        ("garbage", ("not a certificate".to_owned(), "nor a key".to_owned())),
        ("mismatched key", (good_cert, other_key)),
        ("expired", leaf(&ca1, -1)),
    ] {
        files.write(&pair);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            trusted_by(s.port, &ca2.pem).await,
            "{what}: the current certificate was not kept"
        );
        assert!(trusted_by(s.mtls_port, &ca2.pem).await, "{what}: mTLS listener");
    }
    let log = s.log();
    assert!(log.contains("refused the new TLS certificate"), "{log}");
    assert!(log.contains("expired"), "{log}");
    assert!(log.contains("does not go with the certificate"), "{log}");
}

/// With `tls.reload_interval = 0` only SIGHUP reloads the certificate.
#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let (ca1, ca2) = (test_ca("Test CA one"), test_ca("Test CA two"));
    let files = Files::new(&ca1, &leaf(&ca1, 30));
    let env = files.env("0");
    let s = Server::start_trusting(&as_refs(&env), Some(files.ca.clone())).await;
    files.write(&leaf(&ca2, 30));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(trusted_by(s.port, &ca1.pem).await, "reloaded without SIGHUP");
    let pid = s.pid().unwrap().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    assert!(
        both_listeners_serve(&s, &ca2.pem, Duration::from_secs(10)).await,
        "SIGHUP did not reload: {}",
        s.log()
    );
    // still serving (SIGHUP does not end the process), and a broken pair on SIGHUP is refused
    std::fs::write(&files.cert, "garbage").unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(trusted_by(s.port, &ca2.pem).await);
}

/// Bad certificate settings stop the start with exit 2 and one line naming the file; nothing
/// is written to the data dir's tls/.
#[tokio::test]
async fn configured_certificate_problems_at_start() {
    let ca = test_ca("Test CA");
    let files = Files::new(&ca, &leaf(&ca, 30));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (cert, key) = (files.cert.to_str().unwrap(), files.key.to_str().unwrap());
    let out = run_bin(&dir, &["serve"], &[("PORTCULLIS_TLS_CERT_FILE", cert)]);
    let err = assert_usage_error(&out, "cert_file without key_file");
    assert!(err.contains("tls.cert_file and tls.key_file"), "{err}");
    let missing = tmp.path().join("nope.pem");
    let out = run_bin(
        &dir,
        &["serve"],
        &[
            ("PORTCULLIS_TLS_CERT_FILE", missing.to_str().unwrap()),
            ("PORTCULLIS_TLS_KEY_FILE", key),
        ],
    );
    let err = assert_usage_error(&out, "a missing certificate file");
    assert!(err.contains("tls.cert_file") && err.contains("nope.pem"), "{err}");
    let (_, other_key) = leaf(&ca, 30);
    let other = tmp.path().join("other-key.pem");
    std::fs::write(&other, other_key).unwrap();
    let out = run_bin(
        &dir,
        &["serve"],
        &[
            ("PORTCULLIS_TLS_CERT_FILE", cert),
            ("PORTCULLIS_TLS_KEY_FILE", other.to_str().unwrap()),
        ],
    );
    let err = assert_usage_error(&out, "a key that does not match");
    assert!(
        err.contains("other-key.pem") && err.contains("does not go with"),
        "{err}"
    );
    std::fs::write(
        &files.cert,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let out = run_bin(
        &dir,
        &["serve"],
        &[("PORTCULLIS_TLS_CERT_FILE", cert), ("PORTCULLIS_TLS_KEY_FILE", key)],
    );
    assert_usage_error(&out, "a certificate that does not parse");
    assert!(!dir.join("tls").exists(), "no development CA was made");
}

fn parse_pem(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    pem.contents
}

/// Validity in days of a certificate.
fn validity_days(cert: &X509Certificate<'_>) -> i64 {
    (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400
}

/// The development CA: a year, path length 0, names constrained to localhost and loopback;
/// the server certificate: 90 days, from that CA; the CA key 0600.
#[tokio::test]
async fn dev_ca_is_short_lived_and_name_constrained() {
    let s = Server::start().await;
    let tls = s.dir.join("tls");
    let ca_der = parse_pem(&tls.join("ca.pem"));
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    assert!(
        (365..=366).contains(&validity_days(&ca)),
        "CA validity {} days",
        validity_days(&ca)
    );
    let bc = ca.basic_constraints().unwrap().expect("basic constraints").value;
    assert!(bc.ca && bc.path_len_constraint == Some(0));
    let nc = ca.name_constraints().unwrap().expect("name constraints");
    assert!(nc.critical, "name constraints are critical");
    let permitted = nc.value.permitted_subtrees.as_ref().expect("permitted subtrees");
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for subtree in permitted {
        match &subtree.base {
            GeneralName::DNSName(d) => dns.push(d.to_string()),
            GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
            other => panic!("unexpected permitted subtree {other:?}"),
        }
    }
    assert_eq!(dns, ["localhost"]);
    let mut loopback6 = std::net::Ipv6Addr::LOCALHOST.octets().to_vec();
    loopback6.extend([0xff; 16]);
    assert!(ips.contains(&vec![127, 0, 0, 0, 255, 0, 0, 0]), "127.0.0.0/8: {ips:?}");
    assert!(ips.contains(&loopback6), "::1/128: {ips:?}");
    assert_eq!(ips.len(), 2, "{ips:?}");
    assert!(nc.value.excluded_subtrees.is_none() || nc.value.excluded_subtrees.as_ref().unwrap().is_empty());

    let server_der = parse_pem(&tls.join("server.pem"));
    let (_, server) = X509Certificate::from_der(&server_der).unwrap();
    assert!(
        (90..=91).contains(&validity_days(&server)),
        "server validity {}",
        validity_days(&server)
    );
    assert_eq!(server.issuer(), ca.subject());
    // (signed by it, within its name constraints: the harness's client, webpki, trusts only
    // ca.pem and got discovery)
    let sans = server
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => Some(san.general_names.len()),
            _ => None,
        })
        .unwrap();
    assert_eq!(sans, 3, "localhost, 127.0.0.1, ::1");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tls.join("ca-key.pem")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

/// A data dir from an older release (a development CA and certificate valid until 4096,
/// without name constraints) gets new ones at start; a server certificate near its expiry is
/// re-issued from the same CA.
#[tokio::test]
async fn old_or_expiring_dev_certificates_are_replaced_at_start() {
    let mut s = Server::start().await;
    s.stop().await;
    let tls = s.dir.join("tls");
    // what older releases made: rcgen's default validity (1975 to 4096), no constraints
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "Portcullis development CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let old_key = KeyPair::generate().unwrap();
    let old_ca = p.self_signed(&old_key).unwrap().pem();
    std::fs::write(tls.join("ca.pem"), &old_ca).unwrap();
    std::fs::write(tls.join("ca-key.pem"), old_key.serialize_pem()).unwrap();
    s.restart().await;
    let ca_pem = std::fs::read_to_string(tls.join("ca.pem")).unwrap();
    assert_ne!(ca_pem, old_ca, "the long-lived CA was not replaced");
    let der = parse_pem(&tls.join("ca.pem"));
    let (_, ca) = X509Certificate::from_der(&der).unwrap();
    assert!(validity_days(&ca) <= 366 && ca.name_constraints().unwrap().is_some());
    assert!(s.log().contains("replaced the development CA"), "{}", s.log());
    s.stop().await;

    // a server certificate 10 days from expiry, from the current CA: re-issued, CA kept
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(tls.join("ca-key.pem")).unwrap()).unwrap();
    let mut cap = CertificateParams::default();
    cap.distinguished_name
        .push(DnType::CommonName, "Portcullis development CA");
    cap.distinguished_name.push(DnType::OrganizationName, "Portcullis");
    let issuer = Issuer::new(cap, ca_key);
    let mut lp = CertificateParams::default();
    lp.subject_alt_names = vec![SanType::DnsName("localhost".try_into().unwrap())];
    lp.not_after = time::OffsetDateTime::from_unix_timestamp(now() + 10 * 86_400).unwrap();
    let key = KeyPair::generate().unwrap();
    let expiring = lp.signed_by(&key, &issuer).unwrap().pem();
    std::fs::write(tls.join("server.pem"), &expiring).unwrap();
    std::fs::write(tls.join("server-key.pem"), key.serialize_pem()).unwrap();
    s.restart().await;
    assert_eq!(
        std::fs::read_to_string(tls.join("ca.pem")).unwrap(),
        ca_pem,
        "the CA is kept"
    );
    let server_pem = std::fs::read_to_string(tls.join("server.pem")).unwrap();
    assert_ne!(server_pem, expiring, "the expiring certificate was not re-issued");
    let der = parse_pem(&tls.join("server.pem"));
    let (_, server) = X509Certificate::from_der(&der).unwrap();
    assert!(server.validity().not_after.timestamp() > now() + 80 * 86_400);
}
