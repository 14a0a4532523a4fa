//! The edge's counters, in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of one edge since it started.
#[derive(Debug, Default)]
pub struct EdgeMetrics {
    /// Requests answered from the cache without asking the origin.
    pub hits: AtomicU64,
    /// Requests that started a fill from the origin.
    pub fills: AtomicU64,
    /// Requests that waited on a fill another request had started (collapsed).
    pub collapsed: AtomicU64,
    /// Stale copies served because the origin failed.
    pub stale_served: AtomicU64,
    /// Fills that failed (no answer, a timeout, a body too large).
    pub fill_errors: AtomicU64,
    /// Fills answered by the origin with 5xx.
    pub origin_5xx: AtomicU64,
    /// Requests refused at the edge (a playback token missing or wrong, a bad path).
    pub refused: AtomicU64,
    /// Requests shed because too many fills were under way.
    pub shed: AtomicU64,
    /// Body bytes received from the origin.
    pub bytes_filled: AtomicU64,
    /// Body bytes sent to viewers.
    pub bytes_served: AtomicU64,
}

/// The cache's gauges at the moment of a scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheGauges {
    pub bytes: usize,
    pub budget: usize,
    pub objects: usize,
    pub evictions: u64,
    pub fills_in_flight: usize,
}

impl EdgeMetrics {
    /// Appends the edge's metrics to `out`.
    pub fn render(&self, cache: CacheGauges, out: &mut String) {
        let counters: [(&str, &str, &AtomicU64); 10] = [
            (
                "starling_edge_hits_total",
                "Requests answered from the edge cache.",
                &self.hits,
            ),
            (
                "starling_edge_fills_total",
                "Requests that fetched from the origin (one per object however many wait).",
                &self.fills,
            ),
            (
                "starling_edge_collapsed_total",
                "Requests that waited on a fill already under way instead of asking the origin.",
                &self.collapsed,
            ),
            (
                "starling_edge_stale_served_total",
                "Stale copies served while the origin failed.",
                &self.stale_served,
            ),
            (
                "starling_edge_fill_errors_total",
                "Fills that got no usable answer from the origin.",
                &self.fill_errors,
            ),
            (
                "starling_edge_origin_5xx_total",
                "Fills the origin answered with a server error.",
                &self.origin_5xx,
            ),
            (
                "starling_edge_refused_total",
                "Requests refused at the edge (token, malformed path).",
                &self.refused,
            ),
            (
                "starling_edge_shed_total",
                "Requests shed because too many fills were under way.",
                &self.shed,
            ),
            (
                "starling_edge_filled_bytes_total",
                "Body bytes received from the origin.",
                &self.bytes_filled,
            ),
            (
                "starling_edge_served_bytes_total",
                "Body bytes sent to viewers.",
                &self.bytes_served,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
        let gauges: [(&str, &str, u64); 4] = [
            (
                "starling_edge_cache_bytes",
                "Bytes the edge cache holds.",
                cache.bytes as u64,
            ),
            (
                "starling_edge_cache_budget_bytes",
                "The edge cache's byte budget.",
                cache.budget as u64,
            ),
            (
                "starling_edge_cache_objects",
                "Objects the edge cache holds.",
                cache.objects as u64,
            ),
            (
                "starling_edge_fills_in_flight",
                "Fills under way.",
                cache.fills_in_flight as u64,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP starling_edge_evictions_total Objects pushed out of the edge cache by newer ones.\n# TYPE starling_edge_evictions_total counter\nstarling_edge_evictions_total {}",
            cache.evictions
        );
    }
}
