//! TLS: the rustls configuration FAPI 2.0 allows
//! (TLS 1.2 and 1.3; on 1.2 only the four ECDHE AES-GCM suites, SP 5.2.2 / AS-SP-06), and the
//! accept loop that hands each request its peer certificate.

use std::net::SocketAddr;

use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CipherSuite, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme, SupportedCipherSuite,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::connections::{Activity, Gate, TimedIo, Timeouts};
pub use crate::dev_ca::{TlsFiles, ensure_dev_certificates};
use crate::server_cert::ServerCertificate;
use portcullis_cert::ClientCertificate;
use portcullis_core::request::Listener;

/// The client certificate presented on the connection (RFC 8705), parsed once per connection;
/// checked by the application, never at the handshake. `Err` when the peer presented one that
/// cannot be read (the requests that need it are refused, saying so).
#[derive(Clone, Debug, Default)]
pub struct PeerCertificate(pub Option<Result<Arc<ClientCertificate>, String>>);

impl PeerCertificate {
    fn of(chain: Option<&[CertificateDer<'_>]>) -> Self {
        Self(chain.filter(|c| !c.is_empty()).map(|c| {
            ClientCertificate::from_der_chain(c.iter().map(|d| d.as_ref().to_vec()).collect())
                .map(Arc::new)
                .map_err(|e| e.to_string())
        }))
    }
}

/// SP 5.2.2-1 (AS-SP-06): on TLS 1.2 only the BCP 195 recommended ECDHE AES-GCM suites.
pub fn fapi_provider() -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.retain(|s| match s {
        SupportedCipherSuite::Tls13(_) => true,
        SupportedCipherSuite::Tls12(_) => matches!(
            s.suite(),
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        ),
    });
    provider
}

/// The server certificate chain and its key, as `serve` uses them.
pub fn server_identity(files: &TlsFiles) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(files.server_cert())
        .map_err(|e| format!("{}: {e}", files.server_cert().display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", files.server_cert().display()))?;
    let key = PrivateKeyDer::from_pem_file(files.server_key())
        .map_err(|e| format!("{}: {e}", files.server_key().display()))?;
    Ok((certs, key))
}

/// A TLS configuration for a small local listener of a command (`portcullis demo`'s callback):
/// the server's development certificate when `files` is given, else a throw-away self-signed
/// one for 127.0.0.1 (which a browser will warn about).
pub fn loopback_config(files: Option<&TlsFiles>) -> Result<Arc<ServerConfig>, String> {
    let (certs, key) = match files {
        Some(files) => server_identity(files)?,
        None => {
            let key = KeyPair::generate().map_err(|e| e.to_string())?;
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, "127.0.0.1");
            params.subject_alt_names = vec![SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())];
            let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
            let der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?;
            (vec![cert.der().clone()], der)
        }
    };
    let config = ServerConfig::builder_with_provider(Arc::new(fapi_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

/// The two server configurations: plain, and one that requests client certificates; both
/// present the certificate `certificate` holds at the time of each handshake (issue 17 item 3).
pub fn server_configs(
    certificate: Arc<ServerCertificate>,
    provider: Arc<CryptoProvider>,
) -> Result<(Arc<ServerConfig>, Arc<ServerConfig>), String> {
    let versions: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
    let mut plain = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(certificate.clone());
    plain.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let verifier = Arc::new(AnyClientCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut mtls = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certificate);
    mtls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(plain), Arc::new(mtls)))
}

/// Requests a client certificate, accepts any at the handshake, but still checks the handshake
/// signature so that the client proves it holds the key (RFC 8705 §2; the trust decision is
/// the application's).
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The most bytes of request line and headers a connection buffers (hyper's default is about
/// 400 KB per connection; an OAuth request's head is a few KB).
const MAX_REQUEST_HEAD: usize = 32 * 1024;
/// Concurrent HTTP/2 streams per connection (issue 13 item 2 follow-up: with the windows
/// below, what one connection can make the server hold unread).
const MAX_STREAMS: u32 = 16;
/// HTTP/2 flow control (RFC 9113 §6.9): the most a client may send on one stream, and on the
/// whole connection, before the server reads it. hyper's defaults (1 MiB and more) let one
/// connection park megabytes; a request body is at most 64 KiB.
const H2_STREAM_WINDOW: u32 = 64 * 1024;
const H2_CONNECTION_WINDOW: u32 = 256 * 1024;
/// How long in-flight requests get after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);
/// The HTTP/2 connection preface a client sends first (RFC 9113 §3.4).
const H2_PREFACE_LEN: usize = 24;

/// Serves `app` on `listener` with TLS until `shutdown` flips, then drains.
///
/// Issue 13 item 2: no connection is held forever. `gate` (shared by both listeners) turns a
/// connection over `server.max_connections` or `server.max_connections_per_ip` away right
/// after `accept`, before the handshake; the handshake, the start of the request
/// ([`TimedIo`]) and the request headers each have a time-out (an idle HTTP/1.1 keep-alive
/// connection is closed by the header time-out too); the body's is in `http::router`. A write
/// the client does not take within `server.write_timeout` fails ([`TimedIo`]); a connection
/// with no request in flight for `server.idle_timeout` (an HTTP/2 client answers pings, so
/// nothing else would close it), or older than `server.max_connection_age`, is shut down
/// gracefully (HTTP/2: GOAWAY) and closed if it has not finished `server.idle_timeout` later.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: Router,
    listener_kind: Listener,
    gate: Arc<Gate>,
    timeouts: Timeouts,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(config);
    // every connection task holds a sender; the drain ends when the last one is dropped
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let ticket = match gate.admit(peer.ip()) {
            Ok(t) => t,
            Err(_) => {
                // closed at once: no handshake, no task, the descriptor freed now
                drop(tcp);
                gate.report_refusal();
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let open = open_tx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _ticket = ticket;
            let _open = open;
            let tls = match tokio::time::timeout(timeouts.handshake, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            serve_connection(tls, peer, app, listener_kind, timeouts, shutdown).await;
        });
    }
    drop(open_tx);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, open_rx.recv()).await;
}

/// Why a connection is being shut down.
#[derive(Clone, Copy, Debug)]
enum Closing {
    Shutdown,
    Idle,
    MaxAge,
}

/// Serves one TLS connection until it ends, the client leaves it idle, it reaches its maximum
/// age, or the server shuts down (issue 13 item 2 and its follow-up).
async fn serve_connection(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: SocketAddr,
    app: Router,
    listener: Listener,
    timeouts: Timeouts,
    mut shutdown: watch::Receiver<bool>,
) {
    let cert = PeerCertificate::of(tls.get_ref().1.peer_certificates());
    // HTTP/2 over TLS is chosen by ALPN (RFC 9113 §3.2), so the protocol is known here and
    // hyper's own detection read (which has no time-out) is skipped
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let (activity, mut in_flight) = Activity::new();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(cert.clone());
        req.extensions_mut().insert(listener);
        req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        let started = activity.start();
        let response = app.clone().oneshot(req);
        async move {
            let r = response.await;
            drop(started);
            r
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // a client that never finishes its request headers is dropped (slowloris); the same
    // deadline closes an idle keep-alive connection
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .max_buf_size(MAX_REQUEST_HEAD);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_header_list_size(MAX_REQUEST_HEAD as u32)
        .max_concurrent_streams(MAX_STREAMS)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW);
    let (builder, first) = if h2 {
        (builder.http2_only(), H2_PREFACE_LEN)
    } else {
        (builder.http1_only(), 1)
    };
    let io = TimedIo::new(tls, first, timeouts.first_byte, timeouts.write);
    let conn = builder.serve_connection(TokioIo::new(io), service).into_owned();
    tokio::pin!(conn);

    let now = Instant::now();
    let max_age = now + timeouts.max_age;
    // `Some` while nothing is in flight: when the connection counts as idle
    let mut idle_at = Some(now + timeouts.idle);
    let mut watching = true;
    // `Some` once shutting down: the reason, and when the connection is dropped regardless
    let mut closing: Option<(Closing, Instant)> = None;
    if *shutdown.borrow() {
        conn.as_mut().graceful_shutdown();
        closing = Some((Closing::Shutdown, now + DRAIN_TIMEOUT));
    }
    // select! builds every branch's future, enabled or not: far in the future stands for never
    let never = now + Duration::from_secs(10 * 365 * 24 * 3600);
    loop {
        let deadline = closing.map_or(never, |(_, at)| at);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            r = in_flight.changed(), if watching => match r {
                Ok(()) => {
                    let n = *in_flight.borrow_and_update();
                    idle_at = (n == 0).then(|| Instant::now() + timeouts.idle);
                }
                Err(_) => watching = false,
            },
            r = shutdown.changed(), if closing.is_none() => {
                // a dropped sender also means the server is going away
                let _ = r;
                conn.as_mut().graceful_shutdown();
                closing = Some((Closing::Shutdown, Instant::now() + DRAIN_TIMEOUT));
            }
            _ = tokio::time::sleep_until(idle_at.unwrap_or(never)), if closing.is_none() && idle_at.is_some() => {
                conn.as_mut().graceful_shutdown();
                closing = Some((Closing::Idle, Instant::now() + timeouts.idle));
            }
            _ = tokio::time::sleep_until(max_age), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some((Closing::MaxAge, Instant::now() + timeouts.idle));
            }
            _ = tokio::time::sleep_until(deadline), if closing.is_some() => {
                tracing::debug!(%peer, reason = ?closing.map(|(r, _)| r), "connection did not finish after it was asked to close");
                return;
            }
        }
    }
}

/// Binds a listener, with a one-line reason on failure.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}
