//! One task per WebRTC session: it owns the [`Peer`], feeds it datagrams and timeouts,
//! sends what it says, and moves media between it and the hub.

use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
    time::Instant,
};

use bytes::Bytes;
use starling_hub::Publisher;
use starling_ingest_auth::PublishGrant;
use starling_media::MediaEvent;
use starling_sync::lock;
use starling_webrtc::{Peer, PeerEvent, PeerOutput, Transport, WebRtcError};
use tokio::{
    sync::{broadcast, mpsc, oneshot},
    time::sleep_until,
};
use tracing::{info, warn};

use crate::{
    fanout::{Item, Viewer},
    WebRtcServer,
};

/// Datagrams and requests queued for one session.
pub(crate) const QUEUE: usize = 1024;

#[derive(Debug)]
pub(crate) enum Command {
    Datagram {
        at: Instant,
        transport: Transport,
        from: SocketAddr,
        data: Bytes,
    },
    /// Trickled candidates (a PATCH body); the answer is how many were taken.
    Candidates(String, oneshot::Sender<Result<usize, WebRtcError>>),
    /// A viewer of this publisher's channel lost a picture.
    Keyframe,
    /// The client's DELETE.
    Close,
    /// The node is stopping.
    Shutdown,
    /// A new WHIP offer for this publisher's channel: end this session if its client
    /// has gone quiet (a browser that crashed or lost its network and came back), and
    /// answer whether it ended.
    ReplaceIfSilent(oneshot::Sender<bool>),
}

/// A publisher that sent nothing for this long is gone: RTP flows every few tens of
/// milliseconds while a camera or screen is live, and ICE consent checks every few
/// seconds at the least (RFC 7675). It ends, and so does its hold on the channel.
pub(crate) const PUBLISHER_SILENCE: std::time::Duration = std::time::Duration::from_secs(3);
/// How quiet a publisher must be for a new offer on its channel to replace it.
pub(crate) const REPLACEABLE_SILENCE: std::time::Duration = std::time::Duration::from_millis(1500);

/// What the session does with media.
pub(crate) enum Media {
    /// WHIP: into the hub once connected (`grant` is handed back at the end).
    Publish {
        grant: PublishGrant,
        publisher: Option<Publisher>,
    },
    /// WHEP: the channel's fan-out.
    Play(Viewer),
}

enum Wake {
    Item(Option<Result<Item, broadcast::error::RecvError>>),
    Stopped,
}

pub(crate) struct Session {
    pub server: Arc<WebRtcServer>,
    pub id: String,
    pub channel: String,
    pub peer: Peer,
    pub rx: mpsc::Receiver<Command>,
    pub media: Media,
    /// When the client last sent anything.
    pub last_datagram: Instant,
    /// Publish: when to ask for the next keyframe.
    pub next_keyframe_request: Instant,
}

impl Session {
    pub async fn run(mut self) {
        let connect_by = tokio::time::Instant::now() + self.server.config.connect_timeout;
        let reason = loop {
            let deadline = match self.drain().await {
                Ok(d) => d,
                Err(reason) => break reason,
            };
            let connected = self.peer.is_connected();
            let publisher = self.is_publisher();
            let silent_at = self.last_datagram + PUBLISHER_SILENCE;
            let keyframe_at = self.next_keyframe_request;
            // One future for what the media side may bring: a frame for a viewer (once
            // connected), or the end of a publisher's right to the channel.
            let media = async {
                match &mut self.media {
                    Media::Play(v) if connected => match v.backlog.pop_front() {
                        Some(i) => Wake::Item(Some(Ok(i))),
                        None => Wake::Item(Some(v.rx.recv().await)),
                    },
                    Media::Publish {
                        publisher: Some(p), ..
                    } => {
                        p.stopped().await;
                        Wake::Stopped
                    }
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(c) => if let Some(reason) = self.command(c) { break reason },
                    None => break "server shutting down".to_owned(),
                },
                wake = media => match wake {
                    Wake::Item(item) => if let Some(reason) = self.play(item) { break reason },
                    Wake::Stopped => break "another publisher took the channel over, or the key was revoked".to_owned(),
                },
                _ = sleep_until(deadline.into()) => {
                    if let Err(e) = self.peer.timeout(Instant::now()) {
                        break e.to_string();
                    }
                }
                _ = sleep_until(keyframe_at.into()), if connected && publisher => {
                    // WebRTC encoders send a keyframe only when asked (or after loss):
                    // ask once per segment, so every segment starts with one and HLS
                    // and DASH players can join on any of them.
                    let now = Instant::now();
                    self.peer.request_keyframe(now);
                    self.next_keyframe_request = now + self.server.config.keyframe_interval;
                }
                _ = sleep_until(silent_at.into()), if connected && publisher => {
                    break format!("the publisher sent nothing for {} s", PUBLISHER_SILENCE.as_secs());
                }
                _ = sleep_until(connect_by), if !connected => {
                    self.server.metrics.connect_timeouts_total.fetch_add(1, Ordering::Relaxed);
                    break format!(
                        "ICE and DTLS did not connect within {} s",
                        self.server.config.connect_timeout.as_secs()
                    );
                }
            }
        };
        self.peer.close();
        // Send what closing produced (DTLS close_notify), best effort.
        let _ = self.drain().await;
        lock(&self.server.sessions).remove(&self.id);
        if let Media::Publish { grant, publisher } = self.media {
            if let Some(p) = publisher {
                p.finish();
            }
            self.server.auth.publish_ended(&grant);
        }
        info!(session = %self.id, channel = %self.channel, role = ?self.peer.role(), %reason, "webrtc: session ended");
    }

    fn is_publisher(&self) -> bool {
        matches!(self.media, Media::Publish { .. })
    }

    /// Runs the peer until it waits: sends its datagrams, handles its events. Returns
    /// when it wants to be woken, or why the session is over.
    async fn drain(&mut self) -> Result<Instant, String> {
        loop {
            match self.peer.poll() {
                PeerOutput::Transmit(t) => match t.transport {
                    // UDP sends do not block for long; a failure is a lost packet, which
                    // RTP and ICE are made to survive.
                    Transport::Udp => {
                        let _ = self.server.socket.send_to(&t.data, t.destination).await;
                    }
                    // Queued to the connection's writer; a full queue drops, like UDP.
                    Transport::Tcp => {
                        let _ = self.server.tcp.send(t.destination, &t.data);
                    }
                },
                PeerOutput::Timeout(t) => return Ok(t),
                PeerOutput::Event(e) => self.event(e)?,
            }
        }
    }

    fn event(&mut self, e: PeerEvent) -> Result<(), String> {
        match e {
            PeerEvent::Connected => {
                info!(session = %self.id, channel = %self.channel, role = ?self.peer.role(), "webrtc: connected");
                if let Media::Publish { grant, publisher } = &mut self.media {
                    match self.server.hub.publish(&self.channel, grant.takeover) {
                        Ok(p) => *publisher = Some(p),
                        Err(e) => return Err(format!("publish refused: {e}")),
                    }
                    self.peer.request_keyframe(Instant::now());
                }
            }
            PeerEvent::Media(ev) => {
                if let Media::Publish {
                    publisher: Some(p), ..
                } = &self.media
                {
                    let is_stream = matches!(ev, MediaEvent::Stream(_));
                    if !p.send(ev) && is_stream {
                        warn!(session = %self.id, channel = %self.channel, "webrtc: the hub refused the stream");
                    }
                }
            }
            PeerEvent::KeyframeRequest => {
                let publisher = {
                    let s = lock(&self.server.sessions);
                    s.publishers
                        .get(&self.channel)
                        .and_then(|id| s.by_id.get(id))
                        .map(|e| e.tx.clone())
                };
                if let Some(tx) = publisher {
                    let _ = tx.try_send(Command::Keyframe);
                }
            }
            PeerEvent::Closed(reason) => return Err(reason),
        }
        Ok(())
    }

    fn command(&mut self, c: Command) -> Option<String> {
        match c {
            Command::Datagram {
                at,
                transport,
                from,
                data,
            } => {
                self.last_datagram = at;
                // ICE-TCP candidates are the UDP ones with another transport, so one
                // rule gives the address for both.
                let local = self.server.destination(from);
                if let Err(e) = self.peer.receive(at, transport, from, local, &data) {
                    return Some(e.to_string());
                }
            }
            Command::Candidates(frag, reply) => {
                let _ = reply.send(self.peer.add_remote_candidates(&frag));
            }
            Command::Keyframe => self.peer.request_keyframe(Instant::now()),
            Command::Close => return Some("the client ended the session".to_owned()),
            Command::Shutdown => return Some("the node is stopping".to_owned()),
            Command::ReplaceIfSilent(reply) => {
                let silent = self.last_datagram.elapsed() >= REPLACEABLE_SILENCE;
                let _ = reply.send(silent);
                if silent {
                    return Some("replaced by a new offer from the same channel's key".to_owned());
                }
            }
        }
        None
    }

    fn play(&mut self, item: Option<Result<Item, broadcast::error::RecvError>>) -> Option<String> {
        let item = match item {
            Some(Ok(i)) => i,
            Some(Err(broadcast::error::RecvError::Lagged(_))) => {
                // Fell behind: wait for the next keyframe rather than send a broken GOP.
                self.peer.restart_video();
                return None;
            }
            Some(Err(broadcast::error::RecvError::Closed)) | None => {
                return Some("the channel's fan-out ended".to_owned())
            }
        };
        match item {
            Item::Frame(f) => {
                if let Err(e) = self.peer.send(Instant::now(), &f) {
                    return Some(e.to_string());
                }
            }
            Item::Stream | Item::Ended => self.peer.restart_video(),
        }
        None
    }
}
