//! Issue 13 item 2, "Connections held forever": the limits that keep a client from holding
//! connections (and so file descriptors) without end. A global cap and a per-address cap are
//! checked right after `accept`, before any TLS work; a connection must start its request soon
//! after the handshake, and a write that makes no progress fails ([`TimedIo`]); a connection
//! with no request in flight ([`Activity`]) or past its maximum age is closed by `tls::serve`;
//! the header and body time-outs live in `tls::serve` and `http::router`. At start the
//! open-file limit is raised to its hard limit and the global cap is kept below it
//! ([`effective_max_connections`]).
//!
//! Issue 13 item 2 follow-up, memory before authentication: request bodies are buffered
//! against one shared [`BodyBudget`], global and per client address.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
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
    /// No request in flight for this long: the connection is closed (HTTP/2: GOAWAY).
    pub idle: Duration,
    /// A write that stays pending this long fails, and the connection with it.
    pub write: Duration,
    /// A connection this old is asked to close (gracefully) whatever it is doing.
    pub max_age: Duration,
}

impl Default for Timeouts {
    /// The `[server]` defaults.
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            first_byte: Duration::from_secs(10),
            header: Duration::from_secs(15),
            idle: Duration::from_secs(60),
            write: Duration::from_secs(30),
            max_age: Duration::from_secs(3600),
        }
    }
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

/// The requests in flight on one connection, counted by the service wrapper in `tls::serve`
/// ([`Activity::start`] when hyper hands a request over, the guard dropped when its response
/// future completes or is dropped). The connection task watches the count to tell an idle
/// connection (nothing in flight) from a busy one.
#[derive(Clone)]
pub struct Activity(Arc<watch::Sender<usize>>);

/// One request in flight; dropping it ends it.
pub struct InFlight(Arc<watch::Sender<usize>>);

impl Activity {
    /// A new counter at zero, and the receiver the connection task watches.
    pub fn new() -> (Self, watch::Receiver<usize>) {
        let (tx, rx) = watch::channel(0);
        (Self(Arc::new(tx)), rx)
    }

    /// Counts a request as started until the returned guard is dropped.
    pub fn start(&self) -> InFlight {
        self.0.send_modify(|n| *n += 1);
        InFlight(Arc::clone(&self.0))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Issue 13 item 2 follow-up: the request-body bytes the server buffers, bounded in total and
/// per client address (the same key as [`Gate`]), so that unauthenticated clients cannot make
/// it hold `connections x streams x 64 KiB` for up to `server.body_timeout`. A request takes
/// its share only as its body bytes arrive (second review: never its declared
/// `Content-Length`, which costs nothing to send) and gives it back when it is answered or
/// cut; a request whose next bytes do not fit is answered 503 at once.
pub struct BodyBudget {
    max: usize,
    max_per_address: usize,
    used: Mutex<(usize, HashMap<IpAddr, usize>)>,
    refused: AtomicU64,
    last_report: Mutex<Option<Instant>>,
}

/// The bytes one request holds of a [`BodyBudget`]; dropping it gives them back.
pub struct BodyReservation {
    budget: Arc<BodyBudget>,
    address: IpAddr,
    held: usize,
}

impl BodyBudget {
    pub fn new(max: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            max_per_address,
            used: Mutex::new((0, HashMap::new())),
            refused: AtomicU64::new(0),
            last_report: Mutex::new(None),
        })
    }

    /// An empty reservation for a request from `ip`.
    pub fn reservation(self: &Arc<Self>, ip: IpAddr) -> BodyReservation {
        BodyReservation {
            budget: Arc::clone(self),
            address: address_key(ip),
            held: 0,
        }
    }

    /// Bytes held now, in total and for `ip`'s address.
    #[cfg(test)]
    fn used(&self, ip: IpAddr) -> (usize, usize) {
        let used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        (used.0, used.1.get(&address_key(ip)).copied().unwrap_or(0))
    }

    /// Logs, rate-limited like the connection gate, that bodies are being refused.
    pub fn report_refusal(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut last = self.last_report.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| now.duration_since(t) < REPORT_INTERVAL) {
            return;
        }
        *last = Some(now);
        let refused = self.refused.swap(0, Ordering::Relaxed);
        tracing::warn!(
            refused,
            max_buffered_body_bytes = self.max,
            max_buffered_body_bytes_per_ip = self.max_per_address,
            "request-body budget exhausted: answered {refused} request(s) 503 since the last report"
        );
    }
}

impl BodyReservation {
    /// Grows the reservation to `total` bytes (no-op if it holds that much already); `false`,
    /// and nothing taken, if the global or the address's budget cannot cover it.
    pub fn grow_to(&mut self, total: usize) -> bool {
        let Some(more) = total.checked_sub(self.held).filter(|m| *m > 0) else {
            return true;
        };
        let mut used = self.budget.used.lock().unwrap_or_else(PoisonError::into_inner);
        let (global, per_address) = &mut *used;
        let mine = per_address.get(&self.address).copied().unwrap_or(0);
        if global.saturating_add(more) > self.budget.max || mine.saturating_add(more) > self.budget.max_per_address {
            return false;
        }
        *global += more;
        per_address.insert(self.address, mine + more);
        self.held = total;
        true
    }
}

impl Drop for BodyReservation {
    fn drop(&mut self) {
        if self.held == 0 {
            return;
        }
        let mut used = self.budget.used.lock().unwrap_or_else(PoisonError::into_inner);
        let (global, per_address) = &mut *used;
        *global = global.saturating_sub(self.held);
        if let Some(n) = per_address.get_mut(&self.address) {
            *n = n.saturating_sub(self.held);
            if *n == 0 {
                per_address.remove(&self.address);
            }
        }
    }
}

/// A connection's stream with two deadlines:
/// - reads fail with `TimedOut` unless the client sends its first `needed` bytes within the
///   first-byte time-out (it bounds the wait between the TLS handshake and the start of the
///   request, which hyper's HTTP/2 preface read does not);
/// - a write (or flush, or shutdown) that stays pending for the write time-out fails with
///   `TimedOut`: a client that stops reading (say, after pipelining hundreds of requests)
///   leaves hyper blocked on a write, where no read time-out ever runs (issue 13 item 2
///   follow-up).
pub struct TimedIo<S> {
    inner: S,
    needed: usize,
    deadline: Option<Pin<Box<Sleep>>>,
    write_timeout: Duration,
    write_stall: Pin<Box<Sleep>>,
    write_pending: bool,
}

impl<S> TimedIo<S> {
    pub fn new(inner: S, needed: usize, first_byte: Duration, write: Duration) -> Self {
        Self {
            inner,
            needed,
            deadline: (needed > 0).then(|| Box::pin(tokio::time::sleep(first_byte))),
            write_timeout: write,
            write_stall: Box::pin(tokio::time::sleep(write)),
            write_pending: false,
        }
    }

    /// Passes a write-side result on, failing it once the write has been pending too long.
    fn write_progress<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if !polled.is_pending() {
            self.write_pending = false;
            return polled;
        }
        if !self.write_pending {
            self.write_pending = true;
            let at = tokio::time::Instant::now() + self.write_timeout;
            self.write_stall.as_mut().reset(at);
        }
        match self.write_stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read the response in time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
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

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.write_progress(cx, polled)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.write_progress(cx, polled)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.write_progress(cx, polled)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.write_progress(cx, polled)
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
        let mut s = TimedIo::new(server, 3, t, Duration::from_secs(60));
        let mut buf = [0u8; 8];
        let e = s.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(client);

        let (mut client, server) = tokio::io::duplex(64);
        let mut s = TimedIo::new(server, 3, t, Duration::from_secs(60));
        client.write_all(b"PR").await.unwrap();
        assert_eq!(s.read(&mut buf).await.unwrap(), 2);
        // two of three bytes: the deadline still runs
        let e = s.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);

        let (mut client, server) = tokio::io::duplex(64);
        let mut s = TimedIo::new(server, 3, t, Duration::from_secs(60));
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

    /// Issue 13 item 2 follow-up: a write the peer never takes fails with `TimedOut` after
    /// the write time-out; a write that progresses is never cut.
    #[tokio::test]
    async fn stalled_writes_time_out() {
        let t = Duration::from_millis(50);
        let (mut client, server) = tokio::io::duplex(16);
        let mut s = TimedIo::new(server, 0, t, t);
        // the peer reads nothing: the 16-byte pipe fills and the write stays pending
        let e = s.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);

        // a peer that reads slowly, but keeps reading, is served in full
        let (mut client2, server) = tokio::io::duplex(16);
        let mut s = TimedIo::new(server, 0, t, t);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 8];
            while got.len() < 256 {
                tokio::time::sleep(t / 5).await;
                let n = client2.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got.len()
        });
        s.write_all(&[1u8; 256]).await.unwrap();
        assert_eq!(reader.await.unwrap(), 256);
        let mut buf = [0u8; 64];
        let _ = client.read(&mut buf).await;
    }

    /// Issue 13 item 2 follow-up: the in-flight count goes up with each request and back down
    /// when its guard is dropped; the watcher sees both.
    #[tokio::test]
    async fn activity_counts_requests_in_flight() {
        let (activity, mut rx) = Activity::new();
        assert_eq!(*rx.borrow_and_update(), 0);
        let a = activity.start();
        let b = activity.start();
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), 2);
        drop(a);
        drop(b);
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), 0);
    }

    /// Issue 13 item 2 follow-up: the body budget refuses growth past the per-address share
    /// and the global total, takes nothing on refusal, and gives everything back on drop.
    #[test]
    fn body_budget_global_and_per_address() {
        let b = BodyBudget::new(250, 100);
        let a1 = ip("10.0.0.1");
        let mut r1 = b.reservation(a1);
        assert!(r1.grow_to(60));
        assert!(r1.grow_to(40), "shrinking is a no-op");
        let mut r2 = b.reservation(ip("::ffff:10.0.0.1"));
        assert!(
            !r2.grow_to(41),
            "the same address as IPv4-mapped IPv6 shares the allowance"
        );
        assert!(r2.grow_to(40));
        assert_eq!(b.used(a1), (100, 100));
        let mut others: Vec<_> = (2..=4).map(|i| b.reservation(ip(&format!("10.0.0.{i}")))).collect();
        assert!(others[0].grow_to(100));
        assert!(others[1].grow_to(50));
        assert!(!others[2].grow_to(1), "the global total is reached");
        assert!(!others[1].grow_to(51));
        drop(r1);
        assert!(others[2].grow_to(60));
        assert_eq!(b.used(a1), (250, 40));
        drop((r2, others));
        assert_eq!(b.used(a1), (0, 0));
        assert!(b.used.lock().unwrap().1.is_empty(), "no address entry is left behind");
    }
}
