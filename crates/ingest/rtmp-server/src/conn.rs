//! One RTMP connection: the read loop, publish and play.
//!
//! The task owns the socket. Bytes read go into the sans-IO session; its events are
//! acted on here (authorise, publish into the hub, subscribe to the hub); its output is
//! written back before the next read. A player's writes are awaited before the next hub
//! event is taken, so a slow player falls behind in the hub (and skips ahead there)
//! instead of growing a queue here.

use std::{
    future::pending,
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use starling_flv::{egress, FlvIngest};
use starling_hub::{Hub, HubEvent, Publisher, Subscriber};
use starling_media::{Frame, SourceClock, Stream, TrackKind};
use starling_rtmp::{amf0, PublishRejection, ServerConfig, ServerEvent, ServerSession};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufWriter},
    net::{tcp::OwnedWriteHalf, TcpStream},
    sync::watch,
};
use tracing::{debug, info, warn};

use crate::{check_key_shape, AuthError, Authorizer, RtmpServerConfig, ServerStats};

const READ_BUF_MIN: usize = 4 * 1024;
const READ_BUF_MAX: usize = 64 * 1024;

pub(crate) struct Context {
    pub config: Arc<RtmpServerConfig>,
    pub hub: Arc<Hub>,
    pub roles: Arc<crate::server::RoleSlots>,
    pub auth: Arc<dyn Authorizer>,
    pub stats: Arc<ServerStats>,
    pub shutdown: watch::Receiver<bool>,
}

/// Why a connection ended; logged once.
#[derive(Debug)]
enum Close {
    PeerClosed,
    Shutdown,
    Io(std::io::Error),
    Protocol(starling_rtmp::RtmpError),
    HandshakeTimeout,
    Idle(Duration),
    WriteTimeout,
    Stopped(&'static str),
    /// A role cap (publishers or players) is full.
    Full(&'static str),
    /// A player had nothing to play for this long.
    PlayWait(Duration),
}

/// A protocol error with the peer it came from, as it is logged.
#[derive(Debug, thiserror::Error)]
#[error("{source} from {peer}")]
pub struct PeerError {
    pub peer: SocketAddr,
    #[source]
    pub source: starling_rtmp::RtmpError,
}

struct Publishing {
    stream_id: u32,
    grant: crate::PublishGrant,
    publisher: Publisher,
    ingest: FlvIngest,
    started: Instant,
    frames: u64,
    media_errors: u64,
    /// What its timestamps count from (`?clock=epoch`), stamped on its streams.
    clock: SourceClock,
}

struct Playing {
    stream_id: u32,
    sub: Subscriber,
    stream: Option<Arc<Stream>>,
    /// Player timeline: the first frame of each publish maps to `offset_ms`, so a
    /// republish never sends timestamps backwards.
    base_ms: Option<i64>,
    offset_ms: i64,
    last_ms: i64,
    /// Since when the player has had nothing to play (not live yet, or the publisher
    /// left); `None` while a stream plays.
    waiting_since: Option<Instant>,
}

struct Conn {
    peer: SocketAddr,
    ctx: Context,
    session: ServerSession,
    app: Option<String>,
    publishing: Option<Publishing>,
    playing: Option<Playing>,
    /// The publisher or player slot this connection holds.
    _role_slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

pub(crate) async fn run(socket: TcpStream, peer: SocketAddr, ctx: Context) {
    ctx.stats.connections_open.fetch_add(1, Ordering::Relaxed);
    let stats = ctx.stats.clone();
    let (mut rd, wr) = socket.into_split();
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let session = ServerSession::new(ServerConfig {
        max_message_len: ctx.config.max_message_len,
        max_chunk_size: ctx.config.max_chunk_size,
        out_chunk_size: ctx.config.out_chunk_size,
        max_partial_bytes: ctx.config.max_partial_message_len,
        max_amf_values: ctx.config.max_amf_values,
        // Only needs to differ between connections, not to be secret.
        handshake_seed: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(peer.port()),
        ..ServerConfig::default()
    });
    let handshake_deadline = Instant::now() + ctx.config.handshake_timeout;
    let mut shutdown = ctx.shutdown.clone();
    let mut conn = Conn {
        peer,
        ctx,
        session,
        app: None,
        publishing: None,
        playing: None,
        _role_slot: None,
    };
    // Small until the peer fills it: thousands of idle or handshaking connections then
    // cost a page each, not 64 KiB; a publisher's first full read grows it.
    let mut buf = vec![0u8; READ_BUF_MIN];

    let close = loop {
        if let Err(close) = conn.flush(&mut wr).await {
            break close;
        }
        // Until `connect`, the handshake deadline; then the idle timeout, except for a
        // player, which legitimately sends nothing while it waits for a stream.
        let read_timeout = if conn.app.is_none() {
            handshake_deadline.saturating_duration_since(Instant::now())
        } else if conn.playing.is_some() {
            Duration::MAX
        } else {
            conn.ctx.config.idle_timeout
        };
        let play_wait = conn.ctx.config.play_wait_timeout;
        let wait_deadline = conn
            .playing
            .as_ref()
            .and_then(|p| p.waiting_since)
            .map(|since| since + play_wait);
        let pub_slot = conn.publishing.as_mut().map(|p| &mut p.publisher);
        let sub_slot = conn.playing.as_mut().map(|p| &mut p.sub);
        tokio::select! {
            _ = crate::server::shutdown_requested(&mut shutdown) => break Close::Shutdown,
            _ = sleep_until(wait_deadline) => {
                let id = conn.playing.as_ref().map_or(0, |p| p.stream_id);
                conn.session.end_play(id, "nothing to play: the channel is not live");
                let _ = conn.flush(&mut wr).await;
                break Close::PlayWait(play_wait);
            }
            _ = stopped(pub_slot) => {
                let id = conn.publishing.as_ref().map_or(0, |p| p.stream_id);
                conn.session.end_publish(id, "publishing stopped by the server");
                let _ = conn.flush(&mut wr).await;
                break Close::Stopped("the publish was taken over or revoked");
            }
            ev = recv(sub_slot) => {
                match ev {
                    Some(ev) => conn.on_hub_event(ev),
                    None => break Close::Stopped("the hub went away"),
                }
            }
            read = tokio::time::timeout(read_timeout, rd.read(&mut buf)) => {
                match read {
                    Err(_) if conn.app.is_none() => break Close::HandshakeTimeout,
                    Err(_) => break Close::Idle(read_timeout),
                    Ok(Ok(0)) => break Close::PeerClosed,
                    Ok(Ok(n)) => {
                        if let Err(close) = conn.on_input(&buf[..n]).await {
                            break close;
                        }
                        if n == buf.len() && buf.len() < READ_BUF_MAX {
                            buf.resize(READ_BUF_MAX, 0);
                        }
                    }
                    Ok(Err(e)) => break Close::Io(e),
                }
            }
        }
    };
    conn.finish(close);
    stats.connections_open.fetch_sub(1, Ordering::Relaxed);
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => pending().await,
    }
}

async fn stopped(p: Option<&mut Publisher>) {
    match p {
        Some(p) => p.stopped().await,
        None => pending().await,
    }
}

async fn recv(s: Option<&mut Subscriber>) -> Option<HubEvent> {
    match s {
        Some(s) => s.recv().await,
        None => pending().await,
    }
}

impl Conn {
    async fn flush(&mut self, wr: &mut BufWriter<OwnedWriteHalf>) -> Result<(), Close> {
        let mut wrote = false;
        let write = async {
            while let Some(bytes) = self.session.poll_transmit() {
                wr.write_all(&bytes).await?;
                wrote = true;
            }
            if wrote {
                wr.flush().await?;
            }
            Ok::<_, std::io::Error>(())
        };
        match tokio::time::timeout(self.ctx.config.idle_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Close::Io(e)),
            Err(_) => Err(Close::WriteTimeout),
        }
    }

    async fn on_input(&mut self, data: &[u8]) -> Result<(), Close> {
        // Everything completed by this read arrived now: that is the frames' arrival time.
        let arrival = SystemTime::now();
        self.session.handle_input(data).map_err(Close::Protocol)?;
        while let Some(event) = self.session.poll_event() {
            self.on_event(event, arrival).await?;
        }
        Ok(())
    }

    async fn on_event(&mut self, event: ServerEvent, arrival: SystemTime) -> Result<(), Close> {
        match event {
            ServerEvent::Connect { app, .. } => {
                // Neither the app nor tcUrl is logged: encoders configured with the key in
                // the server URL (`rtmp://HOST/live?key=…`, `rtmp://HOST/KEY`) send it there.
                debug!(peer = %self.peer, app_len = app.len(), "RTMP connect");
                self.app = Some(strip_query(&app).0.to_owned());
            }
            ServerEvent::PublishRequest {
                stream_id, name, ..
            } => {
                self.on_publish(stream_id, &name).await?;
            }
            ServerEvent::PlayRequest { stream_id, name } => {
                self.on_play(stream_id, &name).await?;
            }
            ServerEvent::Metadata { stream_id, value } => {
                if let Some(p) = self
                    .publishing
                    .as_mut()
                    .filter(|p| p.stream_id == stream_id)
                {
                    let pairs = metadata_pairs(&value);
                    // Kept for the next stream announcement; metadata alone announces nothing.
                    p.ingest.metadata(pairs);
                }
            }
            ServerEvent::Video {
                stream_id,
                timestamp,
                data,
            } => {
                self.on_media(stream_id, timestamp, data, arrival, TrackKind::Video);
            }
            ServerEvent::Audio {
                stream_id,
                timestamp,
                data,
            } => {
                self.on_media(stream_id, timestamp, data, arrival, TrackKind::Audio);
            }
            ServerEvent::Unpublish { stream_id } => {
                if self
                    .publishing
                    .as_ref()
                    .is_some_and(|p| p.stream_id == stream_id)
                {
                    self.end_publishing("unpublished by the client", true);
                }
            }
            ServerEvent::StopPlay { stream_id } => {
                if self
                    .playing
                    .as_ref()
                    .is_some_and(|p| p.stream_id == stream_id)
                {
                    self.playing = None;
                    info!(peer = %self.peer, "RTMP play stopped by the client");
                }
            }
            #[allow(unreachable_patterns)]
            // Only the variant's name: its fields may hold names that are keys.
            other => debug!(peer = %self.peer, event = event_kind(&other), "RTMP event ignored"),
        }
        Ok(())
    }

    async fn on_publish(&mut self, stream_id: u32, name: &str) -> Result<(), Close> {
        let stats = &self.ctx.stats;
        let refuse = |this: &mut Self, reason: PublishRejection, why: &str| {
            this.ctx
                .stats
                .publishes_refused
                .fetch_add(1, Ordering::Relaxed);
            this.session.reject_publish(stream_id, reason, why);
        };
        if self.publishing.is_some() || self.playing.is_some() {
            warn!(peer = %self.peer, "RTMP publish refused: this connection already publishes or plays");
            refuse(
                self,
                PublishRejection::BadName,
                "one publish or play per connection",
            );
            return Ok(());
        }
        // Before the key check: a full server answers without asking the control plane.
        let Ok(slot) = self.ctx.roles.publishers.clone().try_acquire_owned() else {
            let limit = self.ctx.config.max_publishers;
            warn!(peer = %self.peer, limit, "RTMP publish refused: too many publishers");
            refuse(
                self,
                PublishRejection::Unauthorized,
                "server full: too many publishers",
            );
            return Err(Close::Full("too many publishers"));
        };
        let (key, query) = strip_query(name);
        let backup = is_backup(query);
        let clock = match publish_clock(query) {
            Ok(c) => c,
            Err(value) => {
                warn!(peer = %self.peer, "RTMP publish refused: unsupported clock= value");
                let why = format!(
                    "clock={:?} is not supported (epoch or relative)",
                    value.chars().take(32).collect::<String>()
                );
                refuse(self, PublishRejection::BadName, &why);
                return Ok(());
            }
        };
        let app = self.app.clone().unwrap_or_default();
        let grant = match check_key_shape(key) {
            Ok(()) => self.ctx.auth.authorize_publish(&app, key, self.peer).await,
            Err(e) => Err(e),
        };
        let grant = match grant {
            Ok(g) => g,
            Err(e) => {
                // The key itself is never logged; its length helps tell typos from garbage.
                warn!(peer = %self.peer, app_len = app.len(), key_len = key.len(), reason = %e.log_reason(), "RTMP publish refused");
                let rejection = match e {
                    AuthError::MissingKey | AuthError::MalformedKey(_) => PublishRejection::BadName,
                    _ => PublishRejection::Unauthorized,
                };
                refuse(self, rejection, &e.to_string());
                return Ok(());
            }
        };
        // A backup encoder (`KEY?pipeline=backup`) stands by beside the live one and
        // takes over when it stops (the hub's failover).
        let published = if backup {
            self.ctx.hub.publish_backup(&grant.channel)
        } else {
            self.ctx.hub.publish(&grant.channel, grant.takeover)
        };
        let publisher = match published {
            Ok(p) => p,
            Err(e) => {
                warn!(peer = %self.peer, channel = %grant.channel, reason = %e, "RTMP publish refused");
                self.ctx.auth.publish_ended(&grant);
                refuse(self, PublishRejection::AlreadyPublishing, &e.to_string());
                return Ok(());
            }
        };
        self._role_slot = Some(slot);
        stats.publishes.fetch_add(1, Ordering::Relaxed);
        info!(peer = %self.peer, channel = %grant.channel, backup, epoch_clock = clock.is_epoch(), "RTMP publish started");
        self.session.accept_publish(stream_id);
        self.publishing = Some(Publishing {
            stream_id,
            grant,
            publisher,
            ingest: FlvIngest::new(),
            started: Instant::now(),
            frames: 0,
            media_errors: 0,
            clock,
        });
        Ok(())
    }

    async fn on_play(&mut self, stream_id: u32, name: &str) -> Result<(), Close> {
        if self.publishing.is_some() || self.playing.is_some() {
            warn!(peer = %self.peer, "RTMP play refused: this connection already publishes or plays");
            self.session
                .reject_play(stream_id, "one publish or play per connection");
            return Ok(());
        }
        let Ok(slot) = self.ctx.roles.players.clone().try_acquire_owned() else {
            let n = self.ctx.stats.plays_refused.fetch_add(1, Ordering::Relaxed) + 1;
            // A flood of players must not become a flood of log lines: every 64th.
            if n % 64 == 1 {
                warn!(peer = %self.peer, limit = self.ctx.config.max_players, refused = n, "RTMP play refused: too many players");
            }
            self.session
                .reject_play(stream_id, "server full: too many players");
            return Err(Close::Full("too many players"));
        };
        let (channel, query) = strip_query(name);
        let app = self.app.clone().unwrap_or_default();
        match self
            .ctx
            .auth
            .authorize_play(&app, channel, query, self.peer)
            .await
        {
            Ok(grant) => {
                self.ctx.stats.plays.fetch_add(1, Ordering::Relaxed);
                let live = self.ctx.hub.is_live(&grant.channel);
                info!(peer = %self.peer, channel = %grant.channel, live, "RTMP play started");
                self.session.accept_play(stream_id);
                self._role_slot = Some(slot);
                self.playing = Some(Playing {
                    stream_id,
                    sub: self.ctx.hub.subscribe(&grant.channel),
                    stream: None,
                    base_ms: None,
                    offset_ms: 0,
                    last_ms: 0,
                    waiting_since: (!live).then(Instant::now),
                });
            }
            Err(e) => {
                // The requested name is not logged: a player that confuses its URL with
                // the publisher's plays `live/STREAM_KEY`.
                warn!(peer = %self.peer, app_len = app.len(), name_len = channel.len(), reason = %e.log_reason(), "RTMP play refused");
                self.session.reject_play(stream_id, &e.to_string());
            }
        }
        Ok(())
    }

    fn on_media(
        &mut self,
        stream_id: u32,
        timestamp: u32,
        data: Bytes,
        arrival: SystemTime,
        kind: TrackKind,
    ) {
        let Some(p) = self
            .publishing
            .as_mut()
            .filter(|p| p.stream_id == stream_id)
        else {
            // Media on a stream that is not publishing (e.g. sent before publish was
            // accepted): nothing to do with it.
            return;
        };
        let result = match kind {
            TrackKind::Video => p.ingest.video(timestamp, data, arrival),
            TrackKind::Audio => p.ingest.audio(timestamp, data, arrival),
        };
        match result {
            Ok(events) => {
                for mut ev in events {
                    match &mut ev {
                        starling_media::MediaEvent::Frame(_) => p.frames += 1,
                        // FLV cannot say what its timestamps count from; the publish did.
                        starling_media::MediaEvent::Stream(s) if s.clock != p.clock => {
                            Arc::make_mut(s).clock = p.clock;
                        }
                        _ => {}
                    }
                    p.publisher.send(ev);
                }
            }
            Err(e) => {
                // One bad tag is not worth a broadcaster's stream: drop it, say so (once
                // in a while, not per frame), count it.
                p.media_errors += 1;
                self.ctx.stats.media_errors.fetch_add(1, Ordering::Relaxed);
                if p.media_errors.is_power_of_two() {
                    warn!(peer = %self.peer, channel = %p.publisher.channel(), error = %e, count = p.media_errors, "RTMP media tag dropped");
                }
            }
        }
    }

    fn on_hub_event(&mut self, ev: HubEvent) {
        let Some(play) = self.playing.as_mut() else {
            return;
        };
        let id = play.stream_id;
        match ev {
            HubEvent::Stream(stream) => {
                if play.stream.as_deref() == Some(&*stream) {
                    return;
                }
                let meta = amf0_metadata(&stream);
                self.session.send_metadata(id, &meta);
                for track in &stream.tracks {
                    let ts = play.last_ms.max(0) as u32;
                    match track.kind() {
                        TrackKind::Video => {
                            if let Some(h) = egress::video_sequence_header(track) {
                                self.session.send_video(id, ts, h);
                            }
                        }
                        TrackKind::Audio => {
                            if let Some(h) = egress::audio_sequence_header(track) {
                                self.session.send_audio(id, ts, h);
                            }
                        }
                    }
                }
                play.stream = Some(stream);
                play.waiting_since = None;
            }
            HubEvent::Frame(frame) => {
                let Some(stream) = play.stream.clone() else {
                    return;
                };
                let Some(track) = stream.track(frame.track) else {
                    return;
                };
                let ts = play.timestamp(&frame, track.timescale);
                match track.kind() {
                    // The payload goes out as slices of the hub's bytes: never copied per player.
                    TrackKind::Video => {
                        if let Some((header, payload)) = egress::video_tag_parts(&frame, track) {
                            self.session.send_video_parts(id, ts, header, payload);
                        }
                    }
                    TrackKind::Audio => {
                        if let Some((header, payload)) = egress::audio_tag_parts(&frame, track) {
                            self.session.send_audio_parts(id, ts, header, payload);
                        }
                    }
                }
            }
            HubEvent::Ended => {
                self.session.send_stream_eof(id);
                play.stream = None;
                play.base_ms = None;
                // Leave a frame's worth of room before the next publish's first frame.
                play.offset_ms = play.last_ms + 40;
                play.waiting_since = Some(Instant::now());
            }
        }
    }

    /// `finished`: the client said it is done (not a lost connection or a stop).
    fn end_publishing(&mut self, why: &str, finished: bool) {
        if let Some(p) = self.publishing.take() {
            self.ctx.auth.publish_ended(&p.grant);
            info!(
                peer = %self.peer,
                channel = %p.publisher.channel(),
                frames = p.frames,
                seconds = p.started.elapsed().as_secs(),
                dropped_before_config = p.ingest.dropped_before_config(),
                why,
                "RTMP publish ended"
            );
            if finished {
                p.publisher.finish();
            }
        }
    }

    fn finish(&mut self, close: Close) {
        let stats = &self.ctx.stats;
        match &close {
            Close::PeerClosed | Close::Shutdown | Close::Stopped(_) => {
                debug!(peer = %self.peer, reason = ?close, "RTMP connection closed")
            }
            Close::Io(e) => info!(peer = %self.peer, error = %e, "RTMP connection lost"),
            Close::Protocol(e) => {
                stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                let e = PeerError {
                    peer: self.peer,
                    source: e.clone(),
                };
                warn!(peer = %self.peer, error = %e, "RTMP protocol error, connection closed")
            }
            Close::Full(what) => {
                debug!(peer = %self.peer, why = what, "RTMP connection closed: server full")
            }
            Close::PlayWait(d) => {
                stats.play_wait_timeouts.fetch_add(1, Ordering::Relaxed);
                info!(peer = %self.peer, after = ?d, "RTMP player had nothing to play (channel not live), connection closed")
            }
            Close::HandshakeTimeout => {
                stats.timeouts.fetch_add(1, Ordering::Relaxed);
                warn!(peer = %self.peer, after = ?self.ctx.config.handshake_timeout, "RTMP handshake not finished in time, connection closed")
            }
            Close::Idle(d) => {
                stats.timeouts.fetch_add(1, Ordering::Relaxed);
                warn!(peer = %self.peer, after = ?d, "RTMP peer sent nothing, connection closed")
            }
            Close::WriteTimeout => {
                stats.timeouts.fetch_add(1, Ordering::Relaxed);
                warn!(peer = %self.peer, "RTMP peer stopped reading, connection closed")
            }
        }
        let why = match close {
            Close::PeerClosed => "connection closed by the client",
            Close::Shutdown => "server shutting down",
            Close::Stopped(why) => why,
            _ => "connection failed",
        };
        self.end_publishing(why, false);
    }
}

impl Playing {
    fn timestamp(&mut self, frame: &Frame, timescale: u32) -> u32 {
        let ms = if timescale == 1000 {
            frame.dts
        } else {
            frame.dts.saturating_mul(1000) / i64::from(timescale.max(1))
        };
        let base = *self.base_ms.get_or_insert(ms);
        let t = (self.offset_ms + ms - base).max(0);
        self.last_ms = self.last_ms.max(t);
        // RTMP timestamps are 32-bit milliseconds and wrap after ~49.7 days.
        t as u32
    }
}

/// `name?query` → (`name`, `Some(query)`).
fn event_kind(event: &ServerEvent) -> &'static str {
    match event {
        ServerEvent::Connect { .. } => "connect",
        ServerEvent::PublishRequest { .. } => "publish",
        ServerEvent::PlayRequest { .. } => "play",
        ServerEvent::Metadata { .. } => "metadata",
        ServerEvent::Video { .. } => "video",
        ServerEvent::Audio { .. } => "audio",
        ServerEvent::Unpublish { .. } => "unpublish",
        ServerEvent::StopPlay { .. } => "stop_play",
        _ => "other",
    }
}

/// Whether a publish's query (`KEY?pipeline=backup`) makes it the channel's backup.
fn is_backup(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv == "pipeline=backup"))
}

/// A publish's `clock=` (`KEY?clock=epoch`: its timestamps are epoch milliseconds);
/// the unsupported value as the error.
fn publish_clock(query: Option<&str>) -> Result<SourceClock, &str> {
    let value = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("clock="));
    match value {
        None => Ok(SourceClock::Relative),
        Some(v) => SourceClock::parse(v, SourceClock::RTMP_EPOCH).ok_or(v),
    }
}

fn strip_query(name: &str) -> (&str, Option<&str>) {
    match name.split_once('?') {
        Some((n, q)) => (n, Some(q)),
        None => (name, None),
    }
}

/// onMetaData as the list of pairs the FLV adapter keeps (strings and numbers only).
fn metadata_pairs(value: &amf0::Value) -> Vec<(String, String)> {
    let props = match value {
        amf0::Value::Object(p) | amf0::Value::EcmaArray(p) => p,
        _ => return Vec::new(),
    };
    props
        .iter()
        .take(64)
        .filter_map(|(k, v)| {
            let v = match v {
                amf0::Value::Number(n) => n.to_string(),
                amf0::Value::Boolean(b) => b.to_string(),
                amf0::Value::String(s) | amf0::Value::LongString(s) => s.clone(),
                _ => return None,
            };
            Some((k.chars().take(64).collect(), v.chars().take(256).collect()))
        })
        .collect()
}

fn amf0_metadata(stream: &Stream) -> amf0::Value {
    let props = egress::metadata_pairs(stream)
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                egress::MetaValue::Number(n) => amf0::Value::Number(n),
                egress::MetaValue::String(s) => amf0::Value::String(s),
                egress::MetaValue::Bool(b) => amf0::Value::Boolean(b),
            };
            (k, v)
        })
        .collect();
    amf0::Value::EcmaArray(props)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_queries() {
        assert_eq!(publish_clock(None), Ok(SourceClock::Relative));
        assert_eq!(
            publish_clock(Some("pipeline=backup&clock=epoch")),
            Ok(SourceClock::RTMP_EPOCH)
        );
        assert_eq!(
            publish_clock(Some("clock=relative")),
            Ok(SourceClock::Relative)
        );
        assert_eq!(publish_clock(Some("clock=gps")), Err("gps"));
        assert!(is_backup(Some("clock=epoch&pipeline=backup")));
        assert!(!is_backup(Some("clock=epoch")));
    }
}
