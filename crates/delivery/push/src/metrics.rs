//! What the pusher counts, rendered with the rest of `/metrics` (Prometheus text).

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
};

use starling_hub::Histogram;

use crate::plan::Kind;

const KINDS: [Kind; 5] = [
    Kind::Init,
    Kind::Segment,
    Kind::Playlist,
    Kind::Multivariant,
    Kind::Delete,
];

#[derive(Debug, Default)]
pub struct PushMetrics {
    /// Requests the remote answered with 2xx, by [`Kind`] (in `KINDS` order).
    pub pushed: [AtomicU64; 5],
    /// Bytes of the bodies the remote took.
    pub bytes: AtomicU64,
    /// Attempts without an answer, or answered 5xx/408/429 (each retried).
    pub failures: AtomicU64,
    /// Requests the remote refused (4xx: the key, or the object).
    pub refused: AtomicU64,
    /// Segments given up on (not delivered within their budget, or the queue was full).
    pub dropped: AtomicU64,
    /// Queued playlists replaced by a newer one before they were sent.
    pub superseded: AtomicU64,
    /// Channels packaged here with no key for the remote (not pushed).
    pub channels_without_key: AtomicU64,
    /// Channels being pushed now.
    pub channels: AtomicU64,
    /// From a segment complete here to the remote's 2xx for it.
    pub latency: Histogram,
}

impl PushMetrics {
    pub(crate) fn pushed(&self, kind: Kind, bytes: usize) {
        if let Some(i) = KINDS.iter().position(|k| *k == kind) {
            self.pushed[i].fetch_add(1, Ordering::Relaxed);
        }
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP starling_push_objects_total Objects the remote origin took, by kind.\n# TYPE starling_push_objects_total counter"
        );
        for (k, n) in KINDS.iter().zip(&self.pushed) {
            let _ = writeln!(
                out,
                "starling_push_objects_total{{kind=\"{}\"}} {}",
                k.as_str(),
                n.load(Ordering::Relaxed)
            );
        }
        let rows: [(&str, &str, &str, &AtomicU64); 7] = [
            (
                "starling_push_bytes_total",
                "counter",
                "Bytes the remote origin took.",
                &self.bytes,
            ),
            (
                "starling_push_failures_total",
                "counter",
                "Push attempts without an answer or answered 5xx/408/429 (retried).",
                &self.failures,
            ),
            (
                "starling_push_refused_total",
                "counter",
                "Push requests the remote refused (4xx), not retried blindly.",
                &self.refused,
            ),
            (
                "starling_push_dropped_total",
                "counter",
                "Segments not delivered before they left the pushed window.",
                &self.dropped,
            ),
            (
                "starling_push_superseded_total",
                "counter",
                "Queued playlists replaced by a newer one before they were sent.",
                &self.superseded,
            ),
            (
                "starling_push_channels_without_key",
                "gauge",
                "Channels packaged here that have no key for the remote (not pushed).",
                &self.channels_without_key,
            ),
            (
                "starling_push_channels",
                "gauge",
                "Channels being pushed to the remote origin.",
                &self.channels,
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        self.latency.render(
            "starling_push_latency_seconds",
            "From a segment complete here to the remote origin's 2xx for it.",
            out,
        );
    }
}
