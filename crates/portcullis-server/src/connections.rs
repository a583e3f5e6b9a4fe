//! Issue 13 item 2, "Connections held forever": the limits that keep a client from holding
//! connections (and so file descriptors) without end. A global cap and a per-address cap are
//! checked right after `accept`, before any TLS work; a connection must start its request soon
//! after the handshake ([`FirstBytes`]); the header and body time-outs live in `tls::serve` and
//! `http::router`. At start the open-file limit is raised to its hard limit and the global cap
//! is kept below it ([`effective_max_connections`]).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Descriptors kept back from connections: listeners, the database pool and its WAL files,
/// the runtime's own, logs, outgoing `jwks_uri` fetches.
pub const DESCRIPTOR_RESERVE: u64 = 128;
/// At most one "limit reached" log line per this interval; the line counts the refusals.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// The per-connection time-outs (`[server]` settings).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub handshake: Duration,
    pub first_byte: Duration,
    pub header: Duration,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit where the system allows it, and returns
/// the limit now in force (`None` where there is no such limit or it cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) if n != rlimit::INFINITY => Some(n),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot raise the open-file limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
                    .filter(|n| *n != rlimit::INFINITY)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The global cap actually used: the setting, lowered so that connections leave
/// [`DESCRIPTOR_RESERVE`] descriptors (or half of a very small limit) for everything else.
/// Each connection holds one descriptor.
pub fn effective_max_connections(setting: u64, open_file_limit: Option<u64>) -> u64 {
    let Some(limit) = open_file_limit else {
        return setting.max(1);
    };
    let room = if limit > 2 * DESCRIPTOR_RESERVE {
        limit - DESCRIPTOR_RESERVE
    } else {
        limit / 2
    };
    setting.min(room).max(1)
}

/// Why a connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `server.max_connections` are open.
    Full,
    /// `server.max_connections_per_ip` are open from this address.
    PerAddress,
}

/// The admission check done right after `accept`, shared by both listeners.
pub struct Gate {
    slots: Arc<Semaphore>,
    max: usize,
    max_per_address: usize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    refused_full: AtomicU64,
    refused_per_address: AtomicU64,
    last_report: Mutex<Option<Instant>>,
}

/// Holds a connection's slot; dropping it frees the slot (and the address entry at zero).
pub struct Ticket {
    gate: Arc<Gate>,
    address: IpAddr,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut map = self.gate.per_address.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.address);
            }
        }
    }
}

/// The key a connection counts against: the address itself, IPv4-mapped IPv6 as IPv4, and
/// IPv6 by its /64, since one host is commonly handed a whole /64.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

impl Gate {
    pub fn new(max: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            max_per_address,
            per_address: Mutex::new(HashMap::new()),
            refused_full: AtomicU64::new(0),
            refused_per_address: AtomicU64::new(0),
            last_report: Mutex::new(None),
        })
    }

    /// Takes a slot for a connection from `ip`, or says why not (and counts the refusal).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let address = address_key(ip);
        let mut map = self.per_address.lock().unwrap_or_else(PoisonError::into_inner);
        let count = map.get(&address).copied().unwrap_or(0);
        if count >= self.max_per_address {
            self.refused_per_address.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::PerAddress);
        }
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            self.refused_full.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Full);
        };
        map.insert(address, count + 1);
        Ok(Ticket {
            gate: Arc::clone(self),
            address,
            _slot: slot,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// Addresses with at least one connection open.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.per_address.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The refusals since the last report, if a report is due at `now` (at most one per
    /// [`REPORT_INTERVAL`], so that a flood does not flood the log too).
    fn take_report(&self, now: Instant) -> Option<(u64, u64)> {
        let mut last = self.last_report.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| now.duration_since(t) < REPORT_INTERVAL) {
            return None;
        }
        *last = Some(now);
        Some((
            self.refused_full.swap(0, Ordering::Relaxed),
            self.refused_per_address.swap(0, Ordering::Relaxed),
        ))
    }

    /// Logs, rate-limited, that connections are being refused.
    pub fn report_refusal(&self) {
        if let Some((full, per_address)) = self.take_report(Instant::now()) {
            tracing::warn!(
                refused_over_max_connections = full,
                refused_over_max_connections_per_ip = per_address,
                open = self.open(),
                max_connections = self.max,
                max_connections_per_ip = self.max_per_address,
                "connection limit reached: refused {} new connection(s) since the last report",
                full + per_address
            );
        }
    }
}

/// A stream whose reads fail with `TimedOut` unless the client sends its first `needed` bytes
/// within the time-out; after that it is the stream itself. It bounds the wait between the
/// TLS handshake and the start of the request, which hyper's HTTP/2 preface read does not.
pub struct FirstBytes<S> {
    inner: S,
    needed: usize,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> FirstBytes<S> {
    pub fn new(inner: S, needed: usize, timeout: Duration) -> Self {
        Self {
            inner,
            needed,
            deadline: (needed > 0).then(|| Box::pin(tokio::time::sleep(timeout))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstBytes<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.deadline.is_none() {
            return polled;
        }
        match polled {
            Poll::Ready(Ok(())) => {
                this.needed = this.needed.saturating_sub(buf.filled().len() - before);
                if this.needed == 0 {
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent no request after the TLS handshake",
                ))),
                _ => Poll::Pending,
            },
            err => err,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstBytes<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Issue 13 item 2: the global cap refuses the connection after `max`, and frees the slot
    /// when a connection ends.
    #[test]
    fn global_cap() {
        let g = Gate::new(2, 10);
        let a = g.admit(ip("10.0.0.1")).unwrap();
        let _b = g.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(g.admit(ip("10.0.0.3")).err(), Some(Refusal::Full));
        assert_eq!(g.open(), 2);
        drop(a);
        assert_eq!(g.open(), 1);
        assert!(g.admit(ip("10.0.0.3")).is_ok());
    }

    /// Issue 13 item 2: one address cannot take more than its share, others still get in, and
    /// the address's entry goes away when its last connection ends (the map does not grow).
    #[test]
    fn per_address_cap_and_cleanup() {
        let g = Gate::new(100, 2);
        let a = g.admit(ip("10.0.0.1")).unwrap();
        let b = g.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(g.admit(ip("10.0.0.1")).err(), Some(Refusal::PerAddress));
        // the same host as IPv4-mapped IPv6 counts as the same address
        assert_eq!(g.admit(ip("::ffff:10.0.0.1")).err(), Some(Refusal::PerAddress));
        let c = g.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(g.addresses(), 2);
        drop((a, b, c));
        assert_eq!(g.addresses(), 0);
        assert_eq!(g.open(), 0);
    }

    /// Issue 13 item 2: IPv6 clients count by /64, so that one host's many addresses share one
    /// allowance.
    #[test]
    fn ipv6_counts_by_prefix() {
        let g = Gate::new(100, 1);
        let _a = g.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(g.admit(ip("2001:db8:1:2::ffff")).err(), Some(Refusal::PerAddress));
        assert!(g.admit(ip("2001:db8:1:3::1")).is_ok());
    }

    /// Issue 13 item 2: the "limit reached" line is written at most once per interval and
    /// carries every refusal since the previous line.
    #[test]
    fn refusal_reports_are_rate_limited_and_counted() {
        let g = Gate::new(1, 1);
        let _a = g.admit(ip("10.0.0.1")).unwrap();
        let t0 = Instant::now();
        assert!(g.admit(ip("10.0.0.1")).is_err());
        assert_eq!(g.take_report(t0), Some((0, 1)));
        for _ in 0..5 {
            assert!(g.admit(ip("10.0.0.2")).is_err());
        }
        assert!(g.admit(ip("10.0.0.1")).is_err());
        assert_eq!(g.take_report(t0 + Duration::from_secs(1)), None);
        assert_eq!(g.take_report(t0 + REPORT_INTERVAL), Some((5, 1)));
        assert_eq!(g.take_report(t0 + REPORT_INTERVAL * 3), Some((0, 0)));
    }

    /// Issue 13 item 2: the cap leaves room for the server's own descriptors.
    #[test]
    fn cap_stays_below_the_open_file_limit() {
        assert_eq!(effective_max_connections(4096, Some(1024)), 1024 - DESCRIPTOR_RESERVE);
        assert_eq!(effective_max_connections(4096, Some(1_048_576)), 4096);
        assert_eq!(effective_max_connections(4096, None), 4096);
        assert_eq!(effective_max_connections(4096, Some(100)), 50);
        assert_eq!(effective_max_connections(4096, Some(1)), 1);
    }

    /// Issue 13 item 2: a client that sends nothing gets a `TimedOut` read; one that starts in
    /// time reads normally, and is not timed out later.
    #[tokio::test]
    async fn first_bytes_deadline() {
        let t = Duration::from_millis(50);
        let (client, server) = tokio::io::duplex(64);
        let mut s = FirstBytes::new(server, 3, t);
        let mut buf = [0u8; 8];
        let e = s.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(client);

        let (mut client, server) = tokio::io::duplex(64);
        let mut s = FirstBytes::new(server, 3, t);
        client.write_all(b"PR").await.unwrap();
        assert_eq!(s.read(&mut buf).await.unwrap(), 2);
        // two of three bytes: the deadline still runs
        let e = s.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);

        let (mut client, server) = tokio::io::duplex(64);
        let mut s = FirstBytes::new(server, 3, t);
        client.write_all(b"PRI").await.unwrap();
        assert_eq!(s.read(&mut buf).await.unwrap(), 3);
        let later = tokio::spawn(async move {
            tokio::time::sleep(t * 4).await;
            client.write_all(b"x").await.unwrap();
            client
        });
        assert_eq!(s.read(&mut buf).await.unwrap(), 1, "read after the deadline was cut");
        let _ = later.await;
    }
}
