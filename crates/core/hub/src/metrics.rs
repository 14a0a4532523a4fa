//! Counters and a latency histogram, rendered by the binary in Prometheus text format.
//! Lock-free: observed on the live path for every frame.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    time::SystemTime,
};

use starling_media::Frame;

/// Bucket upper bounds in microseconds (Prometheus `le`), roughly ×2.5 apart, from 10 µs
/// (hand-offs inside the node) to 5 s (part readiness includes the part's duration), plus
/// 20 ms: the LL-HLS hand-off target (p99 ≤ 20 ms) must be readable off the buckets.
const BOUNDS_US: [u64; 19] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 20_000, 25_000, 50_000, 100_000,
    250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
];

/// A fixed-bucket histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe_us(&self, us: u64) {
        let i = BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The upper bound (µs) of the bucket holding quantile `q` (0..=1); `None` when empty.
    /// Coarse by design: good enough to tell 100 µs from 10 ms.
    pub fn quantile_upper_bound_us(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(BOUNDS_US.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }

    /// Prometheus text exposition of this histogram (seconds).
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            match BOUNDS_US.get(i) {
                Some(le) => {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{le=\"{}\"}} {cumulative}",
                        *le as f64 / 1e6
                    );
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {}", self.count());
    }
}

/// What the hub counts.
#[derive(Debug, Default)]
pub struct HubMetrics {
    pub publishes: AtomicU64,
    /// Backup publishers that took a channel over (see `Hub::publish_backup`).
    pub failovers: AtomicU64,
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    pub frames_unannounced: AtomicU64,
    pub consumer_lag_events: AtomicU64,
    /// From a frame's last byte arriving at ingest to the frame entering the hub.
    pub ingest_to_hub: Histogram,
}

impl HubMetrics {
    pub(crate) fn observe_ingest(&self, frame: &Frame) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes
            .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
        if let Ok(d) = SystemTime::now().duration_since(frame.arrival) {
            self.ingest_to_hub
                .observe_us(d.as_micros().min(u128::from(u64::MAX)) as u64);
        }
    }

    pub fn render(&self, out: &mut String) {
        let counters = [
            (
                "starling_hub_publishes_total",
                "Publishes accepted by the hub.",
                &self.publishes,
            ),
            (
                "starling_hub_failovers_total",
                "Backup publishers that took over a channel whose primary stopped.",
                &self.failovers,
            ),
            (
                "starling_hub_frames_total",
                "Frames that entered the hub.",
                &self.frames,
            ),
            (
                "starling_hub_bytes_total",
                "Payload bytes that entered the hub.",
                &self.bytes,
            ),
            (
                "starling_hub_frames_unannounced_total",
                "Frames dropped because their track was never announced.",
                &self.frames_unannounced,
            ),
            (
                "starling_hub_consumer_lag_events_total",
                "Events consumers lost by falling behind (they skipped to a keyframe).",
                &self.consumer_lag_events,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        self.ingest_to_hub.render(
            "starling_ingest_to_hub_seconds",
            "Time from a frame's arrival at ingest to its entry into the hub.",
            out,
        );
    }
}
