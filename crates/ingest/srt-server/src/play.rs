//! A playing connection (`m=request`): the hub → MPEG-TS muxer → SRT messages.

use std::{
    net::SocketAddr,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use starling_hub::HubEvent;
use starling_ingest_auth::PlayGrant;
use starling_mpegts::Muxer;
use starling_srt::{Socket, SocketState};
use tracing::{info, warn};

use crate::server::Shared;

/// Live-mode message size: seven TS packets, what every SRT receiver expects.
const MESSAGE: usize = 7 * 188;

pub(crate) fn run_play(shared: &Shared, socket: Socket, peer: SocketAddr, grant: PlayGrant) {
    shared.players.fetch_add(1, Ordering::Relaxed);
    shared.stats.plays.fetch_add(1, Ordering::Relaxed);
    let channel = grant.channel;
    info!(%peer, %channel, "SRT play started");
    let why = play(shared, &socket, &channel);
    info!(%peer, %channel, why, "SRT play ended");
    shared.players.fetch_sub(1, Ordering::Relaxed);
}

fn play(shared: &Shared, socket: &Socket, channel: &str) -> &'static str {
    // A player that cannot take the stream's rate is cut rather than buffered for.
    if let Err(e) = socket.set_send_timeout(Duration::from_secs(2)) {
        warn!(%channel, error = %e, "SRT play: no send timeout; a stalled player ends at the link's idle timeout");
    }
    // Lingering lets the last frames reach the player when the stream ends.
    let _ = socket.set_linger(Some(Duration::from_secs(2)));
    let mut sub = shared.hub.subscribe(channel);
    let mut muxer: Option<Muxer> = None;
    let mut waiting_since = Some(Instant::now());
    loop {
        if shared.shutting_down() {
            return "server shutting down";
        }
        if socket.state() == SocketState::Gone {
            return "closed by the player";
        }
        if let Some(at) = waiting_since {
            if at.elapsed() >= shared.config.play_wait_timeout {
                shared
                    .stats
                    .play_wait_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                return "nothing to play";
            }
        }
        let ev = shared
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_millis(250), sub.recv()).await });
        let ev = match ev {
            Err(_) => continue,
            Ok(None) => return "server shutting down",
            Ok(Some(ev)) => ev,
        };
        let out = match ev {
            HubEvent::Stream(s) => {
                waiting_since = None;
                let made = match muxer.as_mut() {
                    Some(m) => m.set_stream(&s).map(|()| None),
                    None => Muxer::new(&s).map(Some),
                };
                match made {
                    Ok(Some(m)) => {
                        let m = muxer.insert(m);
                        m.psi()
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        warn!(%channel, error = %e, "SRT play: the stream cannot be carried in MPEG-TS");
                        return "stream not carriable in MPEG-TS";
                    }
                }
            }
            HubEvent::Frame(f) => {
                let Some(m) = muxer.as_mut() else { continue };
                match m.frame(&f) {
                    Ok(b) => b,
                    Err(e) => {
                        shared.stats.media_errors.fetch_add(1, Ordering::Relaxed);
                        warn!(%channel, error = %e, "SRT play: frame dropped");
                        continue;
                    }
                }
            }
            HubEvent::Ended => {
                // The next publish starts a new program (counters, PMT) for the player.
                muxer = None;
                waiting_since = Some(Instant::now());
                continue;
            }
        };
        for chunk in out.chunks(MESSAGE) {
            if let Err(e) = socket.send(chunk) {
                return if e.is_timeout() {
                    "player too slow"
                } else {
                    "closed by the player"
                };
            }
        }
    }
}
