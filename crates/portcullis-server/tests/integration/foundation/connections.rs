//! Issue 13 item 2, "Connections held forever": time-outs for the start of a request, its
//! headers and its whole body, and caps on open connections (global and per address), on both
//! listeners. Raw TLS clients (tokio-rustls) play the slow or silent client.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::*;

/// How long any one wait may take before the test gives up: far beyond every time-out the
/// tests set, so that it only trips when the server holds the connection.
const BOUND: Duration = Duration::from_secs(30);

const H2: &[u8] = b"h2";
const H1: &[u8] = b"http/1.1";

fn connector(s: &Server, alpn: &[u8]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(s.ca_path()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to 127.0.0.1:`port` from `from` (any loopback address), handshake done;
/// `Err` if the server closed it instead.
async fn connect(s: &Server, port: u16, alpn: &[u8], from: IpAddr) -> Result<TlsStream<TcpStream>, String> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let tcp = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from("localhost").unwrap();
    match tokio::time::timeout(BOUND, connector(s, alpn).connect(name, tcp)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(format!("handshake: {e}")),
        Err(_) => panic!("the TLS handshake with port {port} neither finished nor failed"),
    }
}

fn localhost() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// Reads until the server closes the connection (EOF or an error) and returns what it sent;
/// panics if it is still open after [`BOUND`].
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin), what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + BOUND;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("{what}: the server still holds the connection after {BOUND:?}"),
        }
    }
}

/// Splits an HTTP/1.1 response into its status line and its body.
fn status_and_body(response: &[u8]) -> (String, Vec<u8>) {
    let text = String::from_utf8_lossy(response);
    let status = text.lines().next().unwrap_or("").to_owned();
    let body = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| response[i + 4..].to_vec())
        .unwrap_or_default();
    (status, body)
}

fn discovery_request(connection: &str) -> String {
    format!("GET /.well-known/openid-configuration HTTP/1.1\r\nHost: localhost\r\nConnection: {connection}\r\n\r\n")
}

/// Issue 13 item 2: a client that completes the TLS handshake and then sends nothing (or only
/// part of an HTTP/2 preface or of its headers, or goes quiet on a keep-alive connection) is
/// disconnected by the server, on both listeners, over HTTP/2 and HTTP/1.1.
#[tokio::test]
async fn silent_and_idle_connections_are_closed() {
    let s = Server::start_with(&[
        ("PORTCULLIS_SERVER_FIRST_BYTE_TIMEOUT", "1"),
        ("PORTCULLIS_SERVER_HEADER_TIMEOUT", "2"),
    ])
    .await;
    let s = Arc::new(s);
    let mut cases = Vec::new();
    for port in [s.port, s.mtls_port] {
        for (alpn, send, label) in [
            (H2, &b""[..], "HTTP/2, nothing sent"),
            (H1, &b""[..], "HTTP/1.1, nothing sent"),
            (H2, &b"PRI * HTTP/2.0\r\n"[..], "HTTP/2, part of the preface"),
            (
                H1,
                &b"GET / HTTP/1.1\r\nHost: localhost\r\n"[..],
                "HTTP/1.1, part of the headers",
            ),
        ] {
            let s = s.clone();
            let what = format!("port {port}: {label}");
            cases.push(tokio::spawn(async move {
                let mut tls = connect(&s, port, alpn, localhost()).await.expect(&what);
                tls.write_all(send).await.unwrap();
                tls.flush().await.unwrap();
                read_until_closed(&mut tls, &what).await;
            }));
        }
        // an idle keep-alive connection after a complete exchange
        let s = s.clone();
        cases.push(tokio::spawn(async move {
            let what = format!("port {port}: HTTP/1.1 keep-alive, idle after one request");
            let mut tls = connect(&s, port, H1, localhost()).await.expect(&what);
            tls.write_all(discovery_request("keep-alive").as_bytes()).await.unwrap();
            let (status, _) = status_and_body(&read_until_closed(&mut tls, &what).await);
            assert!(status.starts_with("HTTP/1.1 200"), "{what}: {status}");
        }));
    }
    for c in cases {
        c.await.unwrap();
    }
}

/// Issue 13 item 2: a POST whose body never arrives in full (Content-Length 60000, 3 bytes
/// sent; or a byte trickled now and then, which a per-read time-out would never cut) is
/// answered 408 `invalid_request` and the connection closed.
#[tokio::test]
async fn slow_bodies_are_answered_408_and_closed() {
    let s = Arc::new(Server::start_with(&[("PORTCULLIS_SERVER_BODY_TIMEOUT", "1")]).await);
    let head = "POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\n";
    let mut cases = Vec::new();
    for port in [s.port, s.mtls_port] {
        for trickle in [false, true] {
            let s = s.clone();
            cases.push(tokio::spawn(async move {
                let what = format!("port {port}, trickle {trickle}");
                let tls = connect(&s, port, H1, localhost()).await.expect(&what);
                let (mut rd, mut wr) = tokio::io::split(tls);
                wr.write_all(head.as_bytes()).await.unwrap();
                wr.write_all(b"gra").await.unwrap();
                wr.flush().await.unwrap();
                let writer = tokio::spawn(async move {
                    // bounded: 150 bytes at most, stopping when the server has hung up
                    for _ in 0..150 {
                        if !trickle {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if wr.write_all(b"a").await.is_err() || wr.flush().await.is_err() {
                            break;
                        }
                    }
                    wr
                });
                let response = read_until_closed(&mut rd, &what).await;
                let (status, body) = status_and_body(&response);
                assert!(status.starts_with("HTTP/1.1 408"), "{what}: {status}");
                let body: Value = serde_json::from_slice(&body)
                    .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(&body)));
                assert_eq!(body["error"], "invalid_request", "{what}: {body}");
                assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()));
                drop(writer.await);
            }));
        }
    }
    for c in cases {
        c.await.unwrap();
    }
    // a body that arrives in time is still served
    let r = s
        .http
        .post(s.endpoint("token_endpoint"))
        .form(&[("grant_type", "authorization_code")])
        .send()
        .await
        .unwrap();
    // refused for its missing client authentication: the body was read and handed on
    assert_eq!(r.status(), 401, "a prompt body reaches the endpoint");
    let (_, body) = json_error(r, "a prompt body").await;
    assert_eq!(body["error"], "invalid_client", "{body}");
}

/// Opens `n` idle TLS connections from `from` and checks that one more is refused at once.
/// The harness's own pooled connection may still be counted for a moment after it was
/// dropped, so a round where fewer than `n` got in is retried.
async fn hold_the_cap(s: &Server, n: usize, from: IpAddr) -> Vec<TlsStream<TcpStream>> {
    let deadline = Instant::now() + BOUND;
    loop {
        let mut held = Vec::new();
        for _ in 0..n {
            match connect(s, s.port, H1, from).await {
                Ok(c) => held.push(c),
                Err(_) => break,
            }
        }
        if held.len() == n {
            let extra = connect(s, s.port, H1, from).await;
            assert!(
                extra.is_err(),
                "connection {} from {from} was accepted with {n} held",
                n + 1
            );
            return held;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} connections were accepted",
            held.len()
        );
        drop(held);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each held connection is still served: a request on it is answered 200.
async fn still_served(held: Vec<TlsStream<TcpStream>>) {
    for (i, mut tls) in held.into_iter().enumerate() {
        tls.write_all(discovery_request("close").as_bytes()).await.unwrap();
        let what = format!("held connection {i}");
        let (status, _) = status_and_body(&read_until_closed(&mut tls, &what).await);
        assert!(status.starts_with("HTTP/1.1 200"), "{what}: {status}");
    }
}

/// After the held connections are gone, an ordinary client gets in again.
async fn served_again(s: &Server) {
    let url = format!("{}/.well-known/openid-configuration", s.issuer);
    let deadline = Instant::now() + BOUND;
    loop {
        let client = client_trusting(&std::fs::read(s.ca_path()).unwrap());
        match client.get(&url).send().await {
            Ok(r) if r.status() == 200 => return,
            other => {
                assert!(Instant::now() < deadline, "not served after the cap freed: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Issue 13 item 2: with `max_connections` = 3, a fourth concurrent connection is closed at
/// once (before the handshake, on either listener) while the three are held and still served;
/// once they close, clients are served again.
#[tokio::test]
async fn connections_over_max_connections_are_refused() {
    let mut s = Server::start_with(&[
        ("PORTCULLIS_SERVER_MAX_CONNECTIONS", "3"),
        ("PORTCULLIS_SERVER_FIRST_BYTE_TIMEOUT", "120"),
    ])
    .await;
    // drop the harness's pooled connection: it would take one of the three slots
    s.http = client_trusting(&std::fs::read(s.ca_path()).unwrap());
    let held = hold_the_cap(&s, 3, localhost()).await;
    // the cap is shared by the mTLS listener and holds for other addresses too
    let other = connect(&s, s.mtls_port, H1, IpAddr::from([127, 0, 0, 2])).await;
    assert!(other.is_err(), "the mTLS listener accepted a connection over the cap");
    still_served(held).await;
    served_again(&s).await;
}

/// Issue 13 item 2: with `max_connections_per_ip` = 2, a third connection from the same
/// address is closed at once, while another address still gets in.
#[tokio::test]
async fn connections_over_max_connections_per_ip_are_refused() {
    let mut s = Server::start_with(&[
        ("PORTCULLIS_SERVER_MAX_CONNECTIONS_PER_IP", "2"),
        ("PORTCULLIS_SERVER_FIRST_BYTE_TIMEOUT", "120"),
    ])
    .await;
    s.http = client_trusting(&std::fs::read(s.ca_path()).unwrap());
    let from = IpAddr::from([127, 0, 0, 3]);
    let held = hold_the_cap(&s, 2, from).await;
    let mtls = connect(&s, s.mtls_port, H1, from).await;
    assert!(
        mtls.is_err(),
        "the mTLS listener accepted a third connection from {from}"
    );
    let other = connect(&s, s.port, H1, IpAddr::from([127, 0, 0, 4])).await;
    assert!(other.is_ok(), "another address was refused: {:?}", other.err());
    drop(other);
    still_served(held).await;
    let again = connect(&s, s.port, H1, from).await;
    let deadline = Instant::now() + BOUND;
    let mut again = again;
    while again.is_err() {
        assert!(
            Instant::now() < deadline,
            "{from} was not let in again: {:?}",
            again.err()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        again = connect(&s, s.port, H1, from).await;
    }
    served_again(&s).await;
}
