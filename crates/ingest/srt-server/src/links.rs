//! The live SRT links by channel: what the stream's API view and `/metrics` show.

use std::{collections::HashMap, net::SocketAddr, sync::Mutex, time::SystemTime};

use starling_mpegts::DemuxStats;
use starling_srt::LinkStats;
use starling_sync::lock;

/// One publishing link (a caller that publishes, or a pull).
#[derive(Debug, Clone)]
pub struct LinkInfo {
    pub peer: SocketAddr,
    /// `publish` (the encoder called us) or `pull` (we called it).
    pub kind: &'static str,
    pub since: SystemTime,
    pub stats: LinkStats,
    pub demux: DemuxStats,
    /// Payload bytes received.
    pub bytes: u64,
}

impl LinkInfo {
    pub fn new(peer: SocketAddr, kind: &'static str, since: SystemTime) -> Self {
        Self {
            peer,
            kind,
            since,
            stats: LinkStats::default(),
            demux: DemuxStats::default(),
            bytes: 0,
        }
    }
}

#[derive(Debug, Default)]
pub struct Links {
    map: Mutex<HashMap<String, LinkInfo>>,
}

impl Links {
    pub(crate) fn set(&self, channel: &str, info: LinkInfo) {
        lock(&self.map).insert(channel.to_owned(), info);
    }

    pub(crate) fn update(&self, channel: &str, stats: LinkStats, demux: DemuxStats, bytes: u64) {
        if let Some(l) = lock(&self.map).get_mut(channel) {
            l.stats = stats;
            l.demux = demux;
            l.bytes = bytes;
        }
    }

    /// Forgets a channel's link, unless a newer one (a takeover) replaced it.
    pub(crate) fn remove(&self, channel: &str, since: SystemTime) {
        let mut map = lock(&self.map);
        if map.get(channel).is_some_and(|l| l.since == since) {
            map.remove(channel);
        }
    }

    pub fn get(&self, channel: &str) -> Option<LinkInfo> {
        lock(&self.map).get(channel).cloned()
    }

    pub fn all(&self) -> Vec<(String, LinkInfo)> {
        let mut v: Vec<_> = lock(&self.map)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Per-channel gauges and counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let links = self.all();
        type Field = fn(&LinkInfo) -> f64;
        let rows: [(&str, &str, &str, Field); 12] = [
            (
                "starling_srt_link_rtt_ms",
                "gauge",
                "Round-trip time of the channel's SRT link.",
                |l| l.stats.rtt_ms,
            ),
            (
                "starling_srt_link_receive_rate_mbps",
                "gauge",
                "Receive rate of the channel's SRT link.",
                |l| l.stats.recv_rate_mbps,
            ),
            (
                "starling_srt_link_receive_buffer_ms",
                "gauge",
                "Media held in the SRT receive buffer.",
                |l| l.stats.receive_buffer_ms as f64,
            ),
            (
                "starling_srt_link_latency_ms",
                "gauge",
                "The SRT link's negotiated latency.",
                |l| l.stats.latency_ms as f64,
            ),
            (
                "starling_srt_link_packets_received_total",
                "counter",
                "Packets received on the channel's SRT link.",
                |l| l.stats.packets_received as f64,
            ),
            (
                "starling_srt_link_packets_lost_total",
                "counter",
                "Packets lost on the channel's SRT link (before retransmission).",
                |l| l.stats.packets_lost as f64,
            ),
            (
                "starling_srt_link_packets_retransmitted_total",
                "counter",
                "Retransmitted packets received on the channel's SRT link.",
                |l| l.stats.packets_retransmitted_received as f64,
            ),
            (
                "starling_srt_link_packets_dropped_total",
                "counter",
                "Packets dropped as too late on the channel's SRT link.",
                |l| l.stats.packets_dropped as f64,
            ),
            (
                "starling_srt_link_ts_continuity_errors_total",
                "counter",
                "MPEG-TS continuity errors on the channel's SRT link.",
                |l| l.demux.continuity_errors as f64,
            ),
            (
                "starling_srt_link_ts_unknown_pid_packets_total",
                "counter",
                "MPEG-TS packets of unknown PIDs on the channel's SRT link.",
                |l| l.demux.unknown_pid_packets as f64,
            ),
            (
                "starling_srt_link_ts_pes_length_errors_total",
                "counter",
                "PES packets whose length did not match on the channel's SRT link.",
                |l| l.demux.pes_length_errors as f64,
            ),
            (
                "starling_srt_link_ts_pes_lost_total",
                "counter",
                "PES packets lost on the channel's SRT link.",
                |l| l.demux.pes_lost as f64,
            ),
        ];
        for (name, kind, help, f) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (channel, l) in &links {
                let label = channel
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = writeln!(out, "{name}{{channel=\"{label}\"}} {}", f(l));
            }
        }
    }
}
