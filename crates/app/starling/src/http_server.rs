//! The HTTP server: our own accept loop around hyper, serving the axum `Router`.
//!
//! `axum::serve` has no connection caps and no timeouts, so a few hundred clients that
//! trickle half a request header (slowloris) or sit idle on a kept-alive connection
//! hold sockets and memory for ever. This loop adds, per connection:
//!
//! - a **header-read timeout**: from accept (or from the first byte of the next request
//!   on a kept-alive HTTP/1.1 connection) the whole request head must arrive within
//!   `header_read_timeout`, however slowly it trickles;
//! - an **idle timeout**: a connection with no request in progress is closed after
//!   `idle_timeout` (HTTP/1.1 keep-alive and HTTP/2 alike);
//! - neither applies while a request is in progress, until its response body has been
//!   sent completely: Server-Sent Events and blocking playlist reloads are never cut;
//! - a **global cap** and a **per-address cap** on open connections; an extra
//!   connection is closed at once and counted (`starling_http_connections_refused_total`).
//!
//! hyper's own `http1().header_read_timeout` is not used: it also starts when a
//! kept-alive connection goes idle, so it would close idle connections after the header
//! time rather than the idle time, and it knows nothing of HTTP/2.
//!
//! HTTP/1.1 and HTTP/2 (h2c, prior knowledge) are both served (`auto::Builder`), peer
//! addresses reach handlers as `ConnectInfo<SocketAddr>`, and on shutdown idle
//! connections close at once while requests in progress finish.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, extract::ConnectInfo, Router};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use starling_sync::{AddressSlot, AddressSlots};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{watch, Notify, OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
    time::Instant,
};
use tracing::{debug, info, warn};

/// Limits of the HTTP server (`[server]` in the config).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct HttpStats {
    connections: AtomicU64,
    open: AtomicU64,
    refused_global: AtomicU64,
    refused_per_address: AtomicU64,
    header_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
}

impl HttpStats {
    /// Connections open now (the load a node announces to the cluster).
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP starling_http_connections_total HTTP connections accepted.\n# TYPE starling_http_connections_total counter\nstarling_http_connections_total {}",
            get(&self.connections)
        );
        let _ = writeln!(
            out,
            "# HELP starling_http_connections_open HTTP connections open now.\n# TYPE starling_http_connections_open gauge\nstarling_http_connections_open {}",
            get(&self.open)
        );
        let _ = writeln!(
            out,
            "# HELP starling_http_connections_refused_total HTTP connections closed at once by a connection cap, by cap.\n# TYPE starling_http_connections_refused_total counter\n\
             starling_http_connections_refused_total{{reason=\"global_cap\"}} {}\n\
             starling_http_connections_refused_total{{reason=\"per_address_cap\"}} {}",
            get(&self.refused_global),
            get(&self.refused_per_address)
        );
        let _ = writeln!(
            out,
            "# HELP starling_http_timeouts_total HTTP connections closed by a timeout, by kind.\n# TYPE starling_http_timeouts_total counter\n\
             starling_http_timeouts_total{{kind=\"header_read\"}} {}\n\
             starling_http_timeouts_total{{kind=\"idle\"}} {}",
            get(&self.header_timeouts),
            get(&self.idle_timeouts)
        );
    }
}

/// Serves `app` on `listener` until `shutdown` turns true; then stops accepting, closes
/// idle connections, lets requests in progress finish (for up to 10 s) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    stats: Arc<HttpStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(AddressSlots::default());
    let limits = Arc::new(limits);
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown_requested(&mut shutdown) => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!(error = %e, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                stats.connections.fetch_add(1, Ordering::Relaxed);
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    let n = stats.refused_global.fetch_add(1, Ordering::Relaxed) + 1;
                    // A flood must not become a flood of log lines: the first and every 1024th.
                    if n % 1024 == 1 {
                        warn!(%peer, limit = limits.max_connections, refused = n, "HTTP connection refused: too many connections");
                    }
                    continue;
                };
                let ip = peer.ip().to_canonical();
                let Some(address_slot) = per_address.try_take(ip, limits.max_connections_per_address) else {
                    let n = stats.refused_per_address.fetch_add(1, Ordering::Relaxed) + 1;
                    if n % 1024 == 1 {
                        warn!(%peer, limit = limits.max_connections_per_address, refused = n, "HTTP connection refused: too many connections from this address");
                    }
                    continue;
                };
                let conn = Connection {
                    peer,
                    app: app.clone(),
                    limits: limits.clone(),
                    stats: stats.clone(),
                    shutdown: shutdown.clone(),
                    _slots: (permit, address_slot),
                };
                tasks.spawn(conn.run(socket));
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    // Requests in progress get a moment to finish; a long-lived stream (SSE) that its
    // owner did not close by then is cut rather than holding the process.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        info!(
            left = tasks.len(),
            "HTTP connections still open after 10 s of shutdown, closing them"
        );
        tasks.abort_all();
    }
}

struct Connection {
    peer: SocketAddr,
    app: Router,
    limits: Arc<HttpLimits>,
    stats: Arc<HttpStats>,
    shutdown: watch::Receiver<bool>,
    _slots: (OwnedSemaphorePermit, AddressSlot),
}

impl Connection {
    async fn run(mut self, socket: TcpStream) {
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(self.limits.header_read_timeout));
        let io = TokioIo::new(Watched {
            inner: socket,
            activity: activity.clone(),
        });
        let (app, peer, act) = (self.app.clone(), self.peer, activity.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            // The API throttles logins per address.
            req.extensions_mut().insert(ConnectInfo(peer));
            let busy = Busy::start(act.clone());
            let call = tower::ServiceExt::oneshot(app.clone(), req);
            async move {
                let response = match call.await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                // The request stays in progress until its body is sent (or dropped).
                Ok::<_, Infallible>(response.map(|body| Body::new(Tracked { body, _busy: busy })))
            }
        });
        let builder = auto::Builder::new(TokioExecutor::new());
        let conn = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        // One timer per connection, moved when the deadline changes: a request on a
        // kept-alive connection costs no timer and no wake-up of this loop (see `arm`).
        let timer = tokio::time::sleep_until(Instant::now() + self.limits.header_read_timeout);
        tokio::pin!(timer);
        let mut closing = false;
        let end = loop {
            let deadline = activity.arm(&self.limits);
            if let Some(d) = deadline.filter(|d| *d != timer.deadline()) {
                timer.as_mut().reset(d);
            }
            let woken = activity.notify.notified();
            tokio::select! {
                result = conn.as_mut() => break result.err().map(|e| e.to_string()),
                _ = woken => {}
                _ = timer.as_mut(), if deadline.is_some() => {
                    // Re-checked: a request may have begun just as the timer fired.
                    match activity.expired(&self.limits) {
                        Some(Expired::HeaderRead) => {
                            self.stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                            break Some("request head not received in time".to_owned());
                        }
                        Some(Expired::Idle) => {
                            self.stats.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                            break None;
                        }
                        None => {}
                    }
                }
                _ = shutdown_requested(&mut self.shutdown), if !closing => {
                    closing = true;
                    if !activity.busy() {
                        break None;
                    }
                    conn.as_mut().graceful_shutdown();
                }
            }
        };
        if let Some(why) = end {
            debug!(peer = %self.peer, why, "HTTP connection closed");
        }
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves once shutdown is requested (or the sender is gone, which means the same).
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    // The borrow guard `wait_for` returns is not `Send`: drop it here, not in a select arm.
    let _ = rx.wait_for(|s| *s).await;
}

/// Where a connection is between requests; decides which timeout runs.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for (the rest of) a request head since this instant.
    Head(Instant),
    /// Requests in progress: no timeout.
    Busy(usize),
    /// No request in progress since this instant.
    Idle(Instant),
}

enum Expired {
    HeaderRead,
    Idle,
}

#[derive(Debug)]
struct ActivityState {
    phase: Phase,
    /// Known after the first bytes: HTTP/2 reads between requests are frames (pings,
    /// window updates), not the start of a request head.
    h2: Option<bool>,
    /// When the connection task's timer fires (None: no timer, a request in progress).
    armed: Option<Instant>,
}

/// What the connection is doing, shared by the socket wrapper, the service and the
/// connection task (which sleeps until the current deadline or a change).
///
/// The task is woken only when its timer would fire too late for the new phase: the
/// next request's first byte after a long idle time, or the end of a request that ran
/// so long that the timer was disarmed. Otherwise the armed timer fires early, the phase
/// is checked again and the timer moved, so a busy keep-alive connection (an LL-HLS
/// player asks several times a second) wakes its task for nothing but its own requests.
#[derive(Debug)]
struct Activity {
    state: Mutex<ActivityState>,
    notify: Notify,
    header_read_timeout: Duration,
}

impl Activity {
    fn new(header_read_timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(ActivityState {
                phase: Phase::Head(now),
                h2: None,
                armed: Some(now + header_read_timeout),
            }),
            notify: Notify::new(),
            header_read_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        starling_sync::lock(&self.state)
    }

    /// The deadline of the current phase, which the connection task arms its timer for.
    fn arm(&self, limits: &HttpLimits) -> Option<Instant> {
        let mut st = self.lock();
        let deadline = match st.phase {
            Phase::Head(since) => Some(since + limits.header_read_timeout),
            Phase::Idle(since) => Some(since + limits.idle_timeout),
            Phase::Busy(_) => None,
        };
        st.armed = deadline;
        deadline
    }

    fn expired(&self, limits: &HttpLimits) -> Option<Expired> {
        let now = Instant::now();
        match self.lock().phase {
            Phase::Head(since) if now >= since + limits.header_read_timeout => {
                Some(Expired::HeaderRead)
            }
            Phase::Idle(since) if now >= since + limits.idle_timeout => Some(Expired::Idle),
            _ => None,
        }
    }

    fn busy(&self) -> bool {
        matches!(self.lock().phase, Phase::Busy(_))
    }

    /// Bytes arrived from the client.
    fn on_read(&self, bytes: &[u8]) {
        let mut st = self.lock();
        let h2 = *st.h2.get_or_insert_with(|| bytes.starts_with(b"PRI "));
        if let (Phase::Idle(_), false) = (st.phase, h2) {
            // The first byte of the next request on a kept-alive connection: from now
            // on its head has the header-read time to arrive. The task's timer needs
            // moving only if it would fire after that.
            let now = Instant::now();
            st.phase = Phase::Head(now);
            let late = st.armed.is_none_or(|a| a > now + self.header_read_timeout);
            drop(st);
            if late {
                self.notify.notify_one();
            }
        }
    }
}

/// One request in progress, from the service call until its response body is done.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: Arc<Activity>) -> Self {
        // No wake-up: a timer armed for the head or idle time fires, finds the
        // connection busy and is disarmed.
        {
            let mut st = activity.lock();
            st.phase = match st.phase {
                Phase::Busy(n) => Phase::Busy(n + 1),
                _ => Phase::Busy(1),
            };
        }
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let disarmed = {
            let mut st = self.0.lock();
            st.phase = match st.phase {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => Phase::Idle(Instant::now()),
            };
            // An armed timer fires before the idle time is up (it was set for an
            // earlier phase) and is moved then; a disarmed one must be armed now.
            matches!(st.phase, Phase::Idle(_)) && st.armed.is_none()
        };
        if disarmed {
            self.0.notify.notify_one();
        }
    }
}

/// A response body that keeps its request "in progress" until it is finished.
struct Tracked {
    body: Body,
    /// Held, not read: dropping the body ends the request.
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked").finish_non_exhaustive()
    }
}

/// The socket, telling [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                this.activity.on_read(new);
            }
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
