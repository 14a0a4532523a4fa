//! A publishing connection: SRT messages → MPEG-TS demuxer → the hub. Also used by
//! pulls, which are publishers that Starling called.

use std::{
    net::SocketAddr,
    sync::atomic::Ordering,
    time::{Duration, Instant, SystemTime},
};

use starling_hub::Publisher;
use starling_ingest_auth::PublishGrant;
use starling_media::{MediaEvent, SourceClock};
use starling_mpegts::{DemuxEvent, Demuxer};
use starling_srt::{LinkStats, Read, Reader, Socket};
use tracing::{info, warn};

use crate::{links::LinkInfo, server::Shared};

/// How a publish ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The sender closed the connection (after its last message, which was delivered).
    Closed,
    /// Taken over by another publisher, or stopped (key revoked).
    Stopped,
    /// The server is shutting down.
    Shutdown,
    /// The socket failed.
    Failed,
}

impl End {
    fn describe(self) -> &'static str {
        match self {
            End::Closed => "closed by the sender",
            End::Stopped => "taken over or stopped",
            End::Shutdown => "server shutting down",
            End::Failed => "link failed",
        }
    }
}

/// How a granted publish goes on the hub, from its stream id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublishMode {
    /// `pipeline=backup`: it stands by as the channel's backup encoder.
    pub backup: bool,
    /// `clock=epoch`: its PTS carry wall-clock time (the packager's epoch lock).
    pub clock: SourceClock,
}

pub(crate) fn run_publish(
    shared: &Shared,
    socket: Socket,
    peer: SocketAddr,
    grant: PublishGrant,
    mode: PublishMode,
) {
    let PublishMode { backup, clock } = mode;
    shared.publishers.fetch_add(1, Ordering::Relaxed);
    let published = if backup {
        shared.hub.publish_backup(&grant.channel)
    } else {
        shared.hub.publish(&grant.channel, grant.takeover)
    };
    let publisher = match published {
        Ok(p) => p,
        Err(e) => {
            warn!(%peer, channel = %grant.channel, reason = %e, "SRT publish refused");
            shared
                .stats
                .publishes_refused
                .fetch_add(1, Ordering::Relaxed);
            shared.publish_ended(&grant);
            shared.publishers.fetch_sub(1, Ordering::Relaxed);
            return;
        }
    };
    shared.stats.publishes.fetch_add(1, Ordering::Relaxed);
    let latency = socket.recv_latency().unwrap_or_default();
    info!(%peer, channel = %grant.channel, latency_ms = latency.as_millis() as u64, backup, epoch_clock = clock.is_epoch(), "SRT publish started");
    let end = receive(shared, socket, peer, publisher, "publish", clock);
    info!(%peer, channel = %grant.channel, why = end.describe(), "SRT publish ended");
    shared.publish_ended(&grant);
    shared.publishers.fetch_sub(1, Ordering::Relaxed);
}

/// Moves a connection's media into the hub until it ends; registers the link's
/// statistics meanwhile. `clock`: what its PTS count from (stamped on its streams).
pub(crate) fn receive(
    shared: &Shared,
    socket: Socket,
    peer: SocketAddr,
    publisher: Publisher,
    kind: &'static str,
    clock: SourceClock,
) -> End {
    let channel = publisher.channel().to_owned();
    let mut reader = match Reader::new(socket) {
        Ok(r) => r,
        Err(e) => {
            warn!(%peer, %channel, error = %e, "SRT connection unusable");
            return End::Failed;
        }
    };
    let started = SystemTime::now();
    let mut demux = Demuxer::new();
    let mut buf = [0u8; 1500];
    let mut last_stats = Instant::now();
    let mut logged = LinkStats::default();
    let mut errors = ErrorLog::default();
    // The figures of the last second: a closed socket's statistics read as zeros.
    let mut last_link = LinkStats::default();
    let mut bytes = 0u64;
    shared
        .links
        .set(&channel, LinkInfo::new(peer, kind, started));
    let end = loop {
        if publisher.is_stopped() {
            break End::Stopped;
        }
        if shared.shutting_down() {
            break End::Shutdown;
        }
        match reader.read(&mut buf, Duration::from_millis(250)) {
            Ok(Read::Data(n)) => {
                bytes += n as u64;
                demux.set_arrival(SystemTime::now());
                demux.push(&buf[..n]);
                drain(&mut demux, &publisher, clock, shared, &peer, &mut errors);
            }
            Ok(Read::Idle) => {}
            Ok(Read::End) => break End::Closed,
            Err(e) => {
                warn!(%peer, %channel, error = %e, "SRT receive failed");
                break End::Failed;
            }
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            if let Ok(s) = reader.socket().stats() {
                last_link = s;
                if marked_change(&logged, &s) {
                    info!(%peer, %channel, rtt_ms = s.rtt_ms, recv_mbps = s.recv_rate_mbps, lost = s.packets_lost, retransmitted = s.packets_retransmitted_received, dropped = s.packets_dropped, buffer_ms = s.receive_buffer_ms, "SRT link");
                    logged = s;
                }
                shared
                    .links
                    .update(&channel, s, demux.stats().clone(), bytes);
            }
        }
    };
    if end == End::Closed {
        // The tail: whatever the demuxer still holds is complete up to the last packet.
        demux.flush();
        drain(&mut demux, &publisher, clock, shared, &peer, &mut errors);
        publisher.finish();
    }
    // The link's totals, once: what the sender delivered and what of it was unusable.
    let link = reader
        .socket()
        .stats()
        .ok()
        .filter(|s| s.packets_received >= last_link.packets_received)
        .unwrap_or(last_link);
    let d = demux.stats();
    info!(%peer, %channel, bytes, lost = link.packets_lost, retransmitted = link.packets_retransmitted_received, dropped = link.packets_dropped, ts_packets = d.packets, frames = d.frames, continuity_errors = d.continuity_errors, bytes_skipped = d.bytes_skipped, unknown_pid_packets = d.unknown_pid_packets, pes_length_errors = d.pes_length_errors, pes_lost = d.pes_lost, "SRT link totals");
    shared.links.remove(&channel, started);
    end
}

fn drain(
    demux: &mut Demuxer,
    publisher: &Publisher,
    clock: SourceClock,
    shared: &Shared,
    peer: &SocketAddr,
    errors: &mut ErrorLog,
) {
    while let Some(ev) = demux.poll_event() {
        match ev {
            DemuxEvent::Stream(mut s) => {
                // The demuxer cannot know what the PTS count from; the stream id said.
                if s.clock != clock {
                    std::sync::Arc::make_mut(&mut s).clock = clock;
                }
                publisher.send(MediaEvent::Stream(s));
            }
            DemuxEvent::Frame(f) => {
                publisher.send(MediaEvent::Frame(f));
            }
            DemuxEvent::Error(e) => {
                let n = shared.stats.media_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(count) = errors.should_log(&e) {
                    warn!(%peer, channel = %publisher.channel(), error = %e, count, total = n, "SRT media dropped");
                }
            }
            _ => {}
        }
    }
}

/// Which of a link's demuxer errors reach the log. A damaged feed errs on every packet:
/// the first few, the first of each kind (so every cause is named once), then every
/// 1000th; the counters have them all.
#[derive(Debug, Default)]
struct ErrorLog {
    count: u64,
    kinds: Vec<std::mem::Discriminant<starling_mpegts::MpegTsError>>,
}

impl ErrorLog {
    /// Counts `e`; `Some(count so far)` when it should be logged.
    fn should_log(&mut self, e: &starling_mpegts::MpegTsError) -> Option<u64> {
        self.count += 1;
        let kind = std::mem::discriminant(e);
        let new_kind = !self.kinds.contains(&kind);
        if new_kind {
            self.kinds.push(kind);
        }
        (self.count <= 5 || new_kind || self.count.is_multiple_of(1000)).then_some(self.count)
    }
}

/// Whether the link changed enough to be worth a log line: new losses beyond 1 % of
/// what arrived since the last line, any drop (media given up on), or the RTT moving
/// by a quarter.
fn marked_change(before: &LinkStats, now: &LinkStats) -> bool {
    if before.packets_received == 0 {
        return now.packets_received > 0;
    }
    let got = now
        .packets_received
        .saturating_sub(before.packets_received)
        .max(1);
    let lost = now.packets_lost.saturating_sub(before.packets_lost);
    let rtt_moved = (now.rtt_ms - before.rtt_ms).abs() > before.rtt_ms.max(4.0) / 4.0;
    lost * 100 > got || now.packets_dropped > before.packets_dropped || rtt_moved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_changes() {
        let a = LinkStats {
            packets_received: 1000,
            rtt_ms: 40.0,
            ..Default::default()
        };
        let mut b = a;
        b.packets_received = 2000;
        b.packets_lost = 5;
        assert!(!marked_change(&a, &b), "0.5 % loss is not news");
        b.packets_lost = 20;
        assert!(marked_change(&a, &b));
        let mut c = a;
        c.packets_dropped = 1;
        assert!(marked_change(&a, &c));
        let mut d = a;
        d.rtt_ms = 60.0;
        assert!(marked_change(&a, &d));
        assert!(
            marked_change(&LinkStats::default(), &a),
            "the first figures"
        );
    }

    #[test]
    fn each_kind_of_demuxer_error_is_named_once_then_every_thousandth() {
        use starling_mpegts::MpegTsError;
        let cc = MpegTsError::Continuity {
            pid: 256,
            expected: 1,
            got: 3,
        };
        let lie = MpegTsError::PesLength {
            pid: 257,
            declared: 300,
            actual: 200,
        };
        let mut log = ErrorLog::default();
        let logged: Vec<u64> = (0..2000)
            .filter_map(|i| log.should_log(if i == 1500 { &lie } else { &cc }))
            .collect();
        assert_eq!(logged, [1, 2, 3, 4, 5, 1000, 1501, 2000]);
    }
}
