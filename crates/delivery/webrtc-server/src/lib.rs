//! WHIP ingest and WHEP playback: the driver of [`starling_webrtc`]'s sans-IO peers.
//!
//! - **HTTP** ([`router`]): `POST /whip/CHANNEL` (the stream key as Bearer) and
//!   `POST /whep/CHANNEL` (a playback token for private channels) take an SDP offer and
//!   answer `201 Created` with the SDP answer and the session's `Location`; `PATCH` on
//!   that URL trickles ICE candidates, `DELETE` ends the session (RFC 9725, and the WHEP
//!   draft that has the same shape).
//! - **UDP** (`udp`): every session's ICE, DTLS and SRTP on one port (8189 by default),
//!   routed to its session by the ICE ufrag of the client's first check, then by the
//!   client's address.
//! - **Sessions** (`session`): one task per peer. A WHIP session publishes into the hub
//!   like an RTMP or SRT publisher; a WHEP session plays the channel's frames from a
//!   per-channel fan-out (`fanout`) that prepares each frame once for every viewer.
//!   Keyframe requests of viewers reach the channel's WHIP publisher, at most one every
//!   500 ms.
//!
//! WHIP and WHEP live in one crate because they share the UDP port and the session
//! table that routes it. docs/webrtc.md has the whole picture.

pub mod client;
mod fanout;
mod http;
mod opus;
mod opus_child;
mod session;
mod tcp;
mod udp;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use starling_hub::Hub;
use starling_ingest_auth::Authorizer;
use starling_origin::PlaybackGate;
use starling_sync::lock;
use starling_webrtc::Role;
use tokio::{
    net::{TcpListener, UdpSocket},
    sync::mpsc,
};

pub use http::router;
pub use opus_child::OpusMetrics;

/// How the WebRTC side runs.
#[derive(Debug, Clone)]
pub struct WebRtcConfig {
    /// The UDP socket every session shares (`0.0.0.0:8189`).
    pub udp_bind: SocketAddr,
    /// Listen for ICE-TCP (RFC 6544) on the UDP port's number too, for clients whose
    /// network blocks UDP.
    pub tcp: bool,
    /// Offer UDP candidates. Off, clients can only connect over ICE-TCP (a network
    /// path that carries TCP only, such as a TCP load balancer; and tests of ICE-TCP).
    pub udp_candidates: bool,
    /// The addresses clients reach that socket at, for the host candidates. Empty: the
    /// bound address if it is specific, else this machine's address on its default route
    /// and loopback. Cloud hosts behind 1:1 NAT list their public address here.
    pub public_ips: Vec<IpAddr>,
    /// STUN/TURN servers handed to clients in `Link` headers (`stun:host:port`, or
    /// `turn:host:port?transport=udp` with credentials).
    pub ice_servers: Vec<IceServer>,
    /// A session whose ICE and DTLS are not up by then is closed (15 s).
    pub connect_timeout: Duration,
    /// Sessions at once, publishers and viewers (further offers get 503).
    pub max_sessions: usize,
    /// How often a WHIP publisher is asked for a keyframe (PLI): browsers' encoders send
    /// one only when asked, and every HLS/DASH segment must start with one. The node
    /// sets it to the origin's segment duration.
    pub keyframe_interval: Duration,
    /// The ffmpeg (with libopus) that turns a channel's AAC into Opus for its WHEP
    /// viewers, one child per watched channel ("ffmpeg": found on `PATH`). Without it,
    /// AAC sources play over WHEP without sound.
    pub ffmpeg: PathBuf,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        Self {
            udp_bind: SocketAddr::from(([0, 0, 0, 0], 8189)),
            tcp: true,
            udp_candidates: true,
            public_ips: Vec::new(),
            ice_servers: Vec::new(),
            connect_timeout: Duration::from_secs(15),
            max_sessions: 2000,
            keyframe_interval: Duration::from_secs(2),
            ffmpeg: PathBuf::from("ffmpeg"),
        }
    }
}

/// A STUN or TURN server for clients (RFC 9725 §4.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    pub url: String,
    pub username: Option<String>,
    pub credential: Option<String>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct WebRtcMetrics {
    pub whip_sessions_total: AtomicU64,
    pub whep_sessions_total: AtomicU64,
    pub refused_total: AtomicU64,
    pub connect_timeouts_total: AtomicU64,
    /// Datagrams from addresses no session knows (scans, floods, late packets).
    pub unrouted_datagrams_total: AtomicU64,
    /// Datagrams dropped because a session's queue was full.
    pub dropped_datagrams_total: AtomicU64,
    /// ICE-TCP connections that named a session.
    pub tcp_connections_total: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub tx: mpsc::Sender<session::Command>,
    pub channel: String,
    pub role: Role,
    pub ufrag: String,
}

/// The sessions and the routes to them.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    pub by_id: HashMap<String, Entry>,
    pub by_ufrag: HashMap<String, String>,
    pub by_addr: HashMap<SocketAddr, String>,
    /// The WHIP session publishing each channel (for viewers' keyframe requests).
    pub publishers: HashMap<String, String>,
}

impl Sessions {
    pub fn remove(&mut self, id: &str) {
        if let Some(e) = self.by_id.remove(id) {
            self.by_ufrag.remove(&e.ufrag);
            if self.publishers.get(&e.channel).is_some_and(|p| p == id) {
                self.publishers.remove(&e.channel);
            }
        }
        self.by_addr.retain(|_, s| s != id);
    }
}

/// The running WebRTC side of a node.
pub struct WebRtcServer {
    pub(crate) config: WebRtcConfig,
    pub(crate) hub: Arc<Hub>,
    pub(crate) auth: Arc<dyn Authorizer>,
    pub(crate) gate: Option<Arc<dyn PlaybackGate>>,
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) local: SocketAddr,
    pub(crate) candidates: Vec<SocketAddr>,
    /// ICE-TCP candidates (empty: no ICE-TCP).
    pub(crate) tcp_candidates: Vec<SocketAddr>,
    pub(crate) tcp: tcp::Connections,
    pub(crate) sessions: Mutex<Sessions>,
    pub(crate) fanouts: Arc<fanout::Fanouts>,
    pub metrics: WebRtcMetrics,
    /// Set by [`WebRtcServer::shutdown`]: new offers are refused (503).
    pub(crate) closing: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for WebRtcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcServer")
            .field("local", &self.local)
            .field("candidates", &self.candidates)
            .finish_non_exhaustive()
    }
}

impl WebRtcServer {
    /// Binds the UDP port and starts routing it. `gate`: who may watch (None: everyone).
    pub async fn start(
        config: WebRtcConfig,
        hub: Arc<Hub>,
        auth: Arc<dyn Authorizer>,
        gate: Option<Arc<dyn PlaybackGate>>,
    ) -> std::io::Result<Arc<Self>> {
        let (socket, listener) = bind(&config).await?;
        let socket = Arc::new(socket);
        let local = socket.local_addr()?;
        let candidates = udp::candidates(local, &config.public_ips);
        let tcp_candidates = match &listener {
            Some(_) => candidates.clone(),
            None => Vec::new(),
        };
        let opus = Arc::new(opus_child::OpusShared::new(config.ffmpeg.clone()));
        let server = Arc::new(WebRtcServer {
            config,
            hub,
            auth,
            gate,
            socket,
            local,
            candidates,
            tcp_candidates,
            tcp: tcp::Connections::default(),
            sessions: Mutex::new(Sessions::default()),
            fanouts: Arc::new(fanout::Fanouts::new(opus)),
            metrics: WebRtcMetrics::default(),
            closing: std::sync::atomic::AtomicBool::new(false),
        });
        tokio::spawn(udp::receive_loop(
            Arc::downgrade(&server),
            server.socket.clone(),
        ));
        if let Some(l) = listener {
            tokio::spawn(tcp::accept_loop(Arc::downgrade(&server), l));
        }
        Ok(server)
    }

    /// The address a datagram from `source` was sent to, as the sessions' ICE knows it:
    /// one of the host candidates. A socket bound to a specific address is that address;
    /// one bound to 0.0.0.0 does not say which of its addresses a datagram came to, so a
    /// loopback source is taken to have reached the loopback candidate, and any other the
    /// first candidate that is not loopback (the public or default-route address).
    /// Planned: IP_PKTINFO for hosts with several routable addresses.
    pub(crate) fn destination(&self, source: SocketAddr) -> SocketAddr {
        if !self.local.ip().is_unspecified() {
            return self.local;
        }
        let loopback = source.ip().is_loopback();
        self.candidates
            .iter()
            .find(|c| c.ip().is_loopback() == loopback && c.is_ipv4() == source.is_ipv4())
            .or_else(|| self.candidates.first())
            .copied()
            .unwrap_or(self.local)
    }

    /// The UDP address sessions are served on.
    pub fn udp_addr(&self) -> SocketAddr {
        self.local
    }

    /// The addresses given to clients as host candidates.
    pub fn candidates(&self) -> &[SocketAddr] {
        &self.candidates
    }

    /// The node is stopping: refuses new offers (503) and ends every session as its
    /// client's DELETE would (a publisher's stream ends cleanly in the hub, so the
    /// origin packages its last part at once instead of waiting for it to time out).
    /// Returns once every session has gone, or `within` has passed.
    pub async fn shutdown(&self, within: std::time::Duration) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + within;
        let senders: Vec<_> = lock(&self.sessions)
            .by_id
            .values()
            .map(|e| e.tx.clone())
            .collect();
        for tx in senders {
            // A full queue (a flood of datagrams) is waited on, within the bound.
            let _ = tokio::time::timeout_at(deadline, tx.send(session::Command::Shutdown)).await;
        }
        while !lock(&self.sessions).by_id.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Sessions open now: (publishers, viewers).
    pub fn session_counts(&self) -> (usize, usize) {
        let s = lock(&self.sessions);
        let publishers = s.by_id.values().filter(|e| e.role == Role::Publish).count();
        (publishers, s.by_id.len() - publishers)
    }

    /// Whether a WHIP session publishes `channel` (it may not be connected yet).
    pub fn publishing(&self, channel: &str) -> bool {
        lock(&self.sessions).publishers.contains_key(channel)
    }

    /// WHEP sessions of `channel`, and whether its fan-out (one hub subscriber, however
    /// many of them) runs.
    pub fn viewers(&self, channel: &str) -> (usize, bool) {
        let n = lock(&self.sessions)
            .by_id
            .values()
            .filter(|e| e.role == Role::Play && e.channel == channel)
            .count();
        (n, self.fanouts.has(channel))
    }

    /// Remote addresses routed to a session (one per connected client), and open
    /// ICE-TCP connections.
    pub fn routed_addresses(&self) -> usize {
        lock(&self.sessions).by_addr.len() + self.tcp.len()
    }

    /// Channels fanned out to WHEP viewers now.
    pub fn fanouts(&self) -> usize {
        self.fanouts.len()
    }

    /// The AAC → Opus children's counters.
    pub fn opus_metrics(&self) -> &OpusMetrics {
        &self.fanouts.opus.metrics
    }

    /// Prometheus text for `/metrics`.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let (p, v) = self.session_counts();
        let m = &self.metrics;
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = write!(
            out,
            "# HELP starling_webrtc_sessions WebRTC sessions now, by role (whip: publishers, whep: viewers).\n\
             # TYPE starling_webrtc_sessions gauge\n\
             starling_webrtc_sessions{{role=\"whip\"}} {p}\n\
             starling_webrtc_sessions{{role=\"whep\"}} {v}\n\
             # HELP starling_webrtc_sessions_total WebRTC sessions started, by role.\n\
             # TYPE starling_webrtc_sessions_total counter\n\
             starling_webrtc_sessions_total{{role=\"whip\"}} {}\n\
             starling_webrtc_sessions_total{{role=\"whep\"}} {}\n\
             # HELP starling_webrtc_refused_total WHIP and WHEP offers refused.\n\
             # TYPE starling_webrtc_refused_total counter\n\
             starling_webrtc_refused_total {}\n\
             # HELP starling_webrtc_connect_timeouts_total WebRTC sessions closed because ICE and DTLS were not up in time.\n\
             # TYPE starling_webrtc_connect_timeouts_total counter\n\
             starling_webrtc_connect_timeouts_total {}\n\
             # HELP starling_webrtc_unrouted_datagrams_total UDP datagrams that matched no session.\n\
             # TYPE starling_webrtc_unrouted_datagrams_total counter\n\
             starling_webrtc_unrouted_datagrams_total {}\n\
             # HELP starling_webrtc_dropped_datagrams_total UDP datagrams dropped because a session's queue was full.\n\
             # TYPE starling_webrtc_dropped_datagrams_total counter\n\
             starling_webrtc_dropped_datagrams_total {}\n\
             # HELP starling_webrtc_tcp_connections ICE-TCP connections open now.\n\
             # TYPE starling_webrtc_tcp_connections gauge\n\
             starling_webrtc_tcp_connections {}\n\
             # HELP starling_webrtc_tcp_connections_total ICE-TCP connections accepted.\n\
             # TYPE starling_webrtc_tcp_connections_total counter\n\
             starling_webrtc_tcp_connections_total {}\n",
            c(&m.whip_sessions_total),
            c(&m.whep_sessions_total),
            c(&m.refused_total),
            c(&m.connect_timeouts_total),
            c(&m.unrouted_datagrams_total),
            c(&m.dropped_datagrams_total),
            self.tcp.len(),
            c(&m.tcp_connections_total),
        );
        let o = self.opus_metrics();
        let _ = write!(
            out,
            "# HELP starling_webrtc_opus_children AAC to Opus ffmpeg children running now (one per watched channel).\n\
             # TYPE starling_webrtc_opus_children gauge\n\
             starling_webrtc_opus_children {}\n\
             # HELP starling_webrtc_opus_children_total AAC to Opus ffmpeg children started.\n\
             # TYPE starling_webrtc_opus_children_total counter\n\
             starling_webrtc_opus_children_total {}\n\
             # HELP starling_webrtc_opus_restarts_total AAC to Opus children restarted after they ended.\n\
             # TYPE starling_webrtc_opus_restarts_total counter\n\
             starling_webrtc_opus_restarts_total {}\n\
             # HELP starling_webrtc_opus_failures_total AAC to Opus children that failed.\n\
             # TYPE starling_webrtc_opus_failures_total counter\n\
             starling_webrtc_opus_failures_total {}\n\
             # HELP starling_webrtc_opus_dropped_frames_total Audio frames dropped on the way to an Opus child.\n\
             # TYPE starling_webrtc_opus_dropped_frames_total counter\n\
             starling_webrtc_opus_dropped_frames_total {}\n\
             # HELP starling_webrtc_opus_delay_seconds Delay an Opus child adds to the audio.\n\
             # TYPE starling_webrtc_opus_delay_seconds summary\n\
             starling_webrtc_opus_delay_seconds_sum {:.6}\n\
             starling_webrtc_opus_delay_seconds_count {}\n",
            c(&o.children),
            c(&o.children_total),
            c(&o.restarts_total),
            c(&o.failures_total),
            c(&o.dropped_frames_total),
            c(&o.delay_us_sum) as f64 / 1e6,
            c(&o.packets_total),
        );
    }
}

/// The UDP socket, and the ICE-TCP listener on the same address and port number. With
/// port 0 (tests), the port the system picks for UDP may be taken for TCP: then both are
/// picked again.
async fn bind(config: &WebRtcConfig) -> std::io::Result<(UdpSocket, Option<TcpListener>)> {
    let mut tries = 0;
    loop {
        let socket = udp_socket(config.udp_bind)?;
        if !config.tcp {
            return Ok((socket, None));
        }
        match TcpListener::bind(socket.local_addr()?).await {
            Ok(l) => return Ok((socket, Some(l))),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && config.udp_bind.port() == 0
                    && tries < 20 =>
            {
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The kernel buffers the UDP socket asks for, each way. Every session shares the one
/// socket: 100 WHIP publishers at 2 Mbit/s bring 25 MB/s, and Linux's default receive
/// buffer (208 KiB) holds 8 ms of that, so any pause of the receive loop longer than
/// that dropped datagrams in the kernel (`bench webrtc-load --whip`: 9% of the frames
/// at 100 publishers). Linux caps the request at `net.core.rmem_max` / `wmem_max`; the
/// size granted is logged at startup (docs/webrtc.md, "Capacity").
const UDP_BUFFER_BYTES: usize = 8 << 20;

/// The shared UDP socket, non-blocking, with [`UDP_BUFFER_BYTES`] asked for each way.
fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // A smaller buffer than asked is not an error: the socket works, the log says so.
    let _ = s.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = s.set_send_buffer_size(UDP_BUFFER_BYTES);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    let (recv, send) = (s.recv_buffer_size()?, s.send_buffer_size()?);
    // Linux reports twice what it grants (the other half is its bookkeeping).
    if recv < UDP_BUFFER_BYTES {
        tracing::warn!(
            granted_bytes = recv / 2,
            asked_bytes = UDP_BUFFER_BYTES,
            "webrtc: the UDP receive buffer is smaller than asked: under load datagrams \
             drop in the kernel (raise net.core.rmem_max)"
        );
    }
    tracing::debug!(recv, send, "webrtc: UDP socket buffers");
    UdpSocket::from_std(s.into())
}

/// A new session id: 128 random bits, hex (the session URL is its capability).
pub(crate) fn new_session_id() -> String {
    let mut b = [0u8; 16];
    // The OS generator failing is not something a server can go on without.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut b).expect("the OS random generator");
    b.iter().map(|x| format!("{x:02x}")).collect()
}
