//! TLS versions and cipher suites (SP 5.2), and the listener that requests client certificates.

use super::*;

/// `openssl s_client` against 127.0.0.1:port; returns (handshake succeeded, combined output).
fn s_client(s: &Server, port: u16, extra: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-servername")
        .arg("localhost")
        .arg("-CAfile")
        .arg(s.ca_path())
        .arg("-verify_return_error")
        .arg("-brief")
        .args(extra);
    let out = run_with_timeout(cmd, b"Q\n", Duration::from_secs(15));
    let text = format!("{}{}", stdout_of(&out), stderr_of(&out));
    let ok = out.status.success() && text.contains("Protocol version");
    (ok, text)
}

fn negotiated_version(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("Protocol version: "))
        .map(str::trim)
}

// AS-SP-02, AS-SP-03, AS-SP-06
#[tokio::test]
async fn as_sp_02_06_tls_versions_and_suites() {
    let s = Server::start().await;
    // the client is allowed to offer old protocols (SECLEVEL=0) so that the refusal is the server's
    for v in ["-tls1", "-tls1_1"] {
        let (ok, text) = s_client(&s, s.port, &[v, "-cipher", "DEFAULT:@SECLEVEL=0"]);
        assert!(!ok, "{v} handshake succeeded (AS-SP-02):\n{text}");
    }
    let (ok, text) = s_client(&s, s.port, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
    assert!(ok, "TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256 failed:\n{text}");
    assert_eq!(negotiated_version(&text), Some("TLSv1.2"), "{text}");
    let (ok, text) = s_client(&s, s.port, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"]);
    assert!(ok, "TLS 1.2 with ECDHE-ECDSA-AES256-GCM-SHA384 failed:\n{text}");
    for suite in [
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA384",
        "ECDHE-ECDSA-AES128-SHA256",
    ] {
        let (ok, text) = s_client(&s, s.port, &["-tls1_2", "-cipher", suite]);
        assert!(!ok, "TLS 1.2 with only {suite} succeeded (AS-SP-06):\n{text}");
    }
    // AS-SP-02: TLS 1.3 preferred when the client offers it
    let (ok, text) = s_client(&s, s.port, &[]);
    assert!(ok, "default handshake failed:\n{text}");
    assert_eq!(negotiated_version(&text), Some("TLSv1.3"), "{text}");
}

// INTERFACE.md: the second listener requests client certificates and accepts any
#[tokio::test]
async fn mtls_listener_handshakes_with_and_without_client_cert() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("k.pem");
    let cert = tmp.path().join("c.pem");
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=test",
        "-days",
        "1",
    ])
    .arg("-keyout")
    .arg(&key)
    .arg("-out")
    .arg(&cert);
    let out = run_with_timeout(cmd, b"", Duration::from_secs(15));
    assert!(out.status.success(), "openssl req: {}", stderr_of(&out));

    let (ok, text) = s_client(&s, s.mtls_port, &[]);
    assert!(ok, "mTLS listener without a client certificate:\n{text}");
    assert!(
        text.contains("Requested Signature Algorithms"),
        "the mTLS listener did not request a client certificate:\n{text}"
    );
    let (ok, text) = s_client(
        &s,
        s.mtls_port,
        &["-cert", cert.to_str().unwrap(), "-key", key.to_str().unwrap()],
    );
    assert!(ok, "mTLS listener with a self-signed client certificate:\n{text}");
    // the main listener does not ask for one
    let (ok, text) = s_client(&s, s.port, &[]);
    assert!(ok, "{text}");
    assert!(
        !text.contains("Requested Signature Algorithms"),
        "the main listener requests client certificates:\n{text}"
    );
    // same TLS rules on the second listener
    let (ok, text) = s_client(&s, s.mtls_port, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    assert!(!ok, "TLS 1.1 on the mTLS listener:\n{text}");
    let (ok, text) = s_client(
        &s,
        s.mtls_port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"],
    );
    assert!(!ok, "ChaCha20 on TLS 1.2 on the mTLS listener:\n{text}");

    // discovery is served there too, with and without a certificate
    let url = format!("https://localhost:{}/.well-known/openid-configuration", s.mtls_port);
    let ca = std::fs::read(s.ca_path()).unwrap();
    let plain = client_trusting(&ca);
    let r = plain.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "discovery on the mTLS listener without a certificate");
    assert_eq!(r.json::<Value>().await.unwrap(), s.meta);
    let mut pem = std::fs::read(&cert).unwrap();
    pem.extend(std::fs::read(&key).unwrap());
    let with_cert = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let r = with_cert.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "discovery on the mTLS listener with a certificate");
    assert_eq!(r.json::<Value>().await.unwrap(), s.meta);
}
