//! What the origin counts, rendered with the rest of `/metrics`.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime},
};

use starling_hub::Histogram;
use starling_packager::Defects;

#[derive(Debug, Default)]
pub struct OriginMetrics {
    /// From the arrival at ingest of a part's first frame to the part being fetchable.
    /// Includes the part's own duration: a part cannot exist before its last frame does.
    pub part_ready: Histogram,
    /// The same, minus the part's duration: what packaging and publishing add.
    pub part_overhead: Histogram,
    /// From a part being published to a blocked request for it being answered.
    pub blocked_wake: Histogram,
    /// Times a blocked request was woken by a change to its rendition (or channel).
    pub blocked_wakeups: AtomicU64,
    /// Wake-ups after which the request was still not ready and waited again.
    pub blocked_rewaits: AtomicU64,
    pub store_writes: AtomicU64,
    pub store_write_errors: AtomicU64,
    /// Segments given up on after every retry failed (they are not in the store).
    pub store_writes_dropped: AtomicU64,
    /// Objects deleted by retention (outside the DVR window of a channel that does not
    /// record, or of a finished run that is replaced).
    pub store_deletes: AtomicU64,
    pub store_write_time: Histogram,
    pub playlist_requests: AtomicU64,
    pub media_requests: AtomicU64,
    /// Requests for objects that cannot exist (a session in the future or past its
    /// retention, a segment far past the live edge), answered without a store read.
    pub rejected_requests: AtomicU64,
    pub blocking_timeouts: AtomicU64,
    /// Requests that brought a playback token to the gate.
    pub token_checks: AtomicU64,
    /// Requests the gate refused (no token, bad token, undecidable).
    pub playback_refused: AtomicU64,
    /// Segments cut with a defect, by defect (in [`Defects::names`] order: short,
    /// no-irap, jump, hole); a segment with two counts in both.
    pub segment_defects: [AtomicU64; 4],
    /// Store reads shed by the node-wide cap, and by the per-client cap (see `shed`).
    pub store_reads_shed: [AtomicU64; 2],
    /// The primary's last segment before a locked takeover, by what was served: the
    /// backup's complete candidate, or the primary's own (no clean candidate in time).
    /// See `select`.
    pub segment_selections: [AtomicU64; 2],
}

impl OriginMetrics {
    pub(crate) fn observe_part(&self, first_arrival: SystemTime, duration: f64, now: SystemTime) {
        if let Ok(d) = now.duration_since(first_arrival) {
            let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
            self.part_ready.observe_us(us);
            self.part_overhead
                .observe_us(us.saturating_sub((duration * 1e6) as u64));
        }
    }

    pub(crate) fn segment_defects(&self, d: Defects) {
        for (on, n) in [d.short, d.no_irap, d.jump, d.hole]
            .into_iter()
            .zip(&self.segment_defects)
        {
            if on {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn store_read_shed(&self, why: crate::shed::Shed) {
        let i = match why {
            crate::shed::Shed::Global => 0,
            crate::shed::Shed::Client => 1,
        };
        self.store_reads_shed[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn store_write(&self, took: Duration, ok: bool) {
        self.store_writes.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.store_write_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.store_write_time
            .observe_us(took.as_micros().min(u128::from(u64::MAX)) as u64);
    }

    pub fn render(&self, out: &mut String) {
        self.part_ready.render(
            "starling_part_ready_seconds",
            "From a part's first frame arriving at ingest to the part being fetchable.",
            out,
        );
        self.part_overhead.render(
            "starling_part_overhead_seconds",
            "Part readiness minus the part's duration: packaging and publishing time.",
            out,
        );
        self.blocked_wake.render(
            "starling_blocked_request_wake_seconds",
            "From a part being published to a blocked playlist or part request answering.",
            out,
        );
        self.store_write_time.render(
            "starling_store_write_seconds",
            "Write-through of one object to the store.",
            out,
        );
        for (name, help, v) in [
            (
                "starling_store_writes_total",
                "Objects written through to the store.",
                &self.store_writes,
            ),
            (
                "starling_store_write_errors_total",
                "Store writes that failed (retried within a budget).",
                &self.store_write_errors,
            ),
            (
                "starling_store_writes_dropped_total",
                "Store writes given up after their retries.",
                &self.store_writes_dropped,
            ),
            (
                "starling_store_deletes_total",
                "Objects deleted from the store (retention).",
                &self.store_deletes,
            ),
            (
                "starling_playlist_requests_total",
                "Playlist requests served.",
                &self.playlist_requests,
            ),
            (
                "starling_media_requests_total",
                "Media requests served (init sections, parts, segments).",
                &self.media_requests,
            ),
            (
                "starling_origin_rejected_requests_total",
                "Requests answered without a lookup: malformed, or for what cannot exist.",
                &self.rejected_requests,
            ),
            (
                "starling_blocking_timeouts_total",
                "Blocking playlist requests the live edge did not reach in time (503).",
                &self.blocking_timeouts,
            ),
            (
                "starling_blocked_request_wakeups_total",
                "Blocked requests woken by a new part.",
                &self.blocked_wakeups,
            ),
            (
                "starling_blocked_request_rewaits_total",
                "Blocked requests woken before what they wait for existed, waiting again.",
                &self.blocked_rewaits,
            ),
            (
                "starling_playback_token_checks_total",
                "Playback tokens checked.",
                &self.token_checks,
            ),
            (
                "starling_playback_refused_total",
                "Playback requests refused by the gate (token missing or invalid).",
                &self.playback_refused,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let name = "starling_store_reads_shed_total";
        let _ = writeln!(
            out,
            "# HELP {name} Store reads (DVR, VOD) answered 503 because a cap was reached, by cap.\n# TYPE {name} counter"
        );
        for (why, v) in [crate::shed::Shed::Global, crate::shed::Shed::Client]
            .into_iter()
            .zip(&self.store_reads_shed)
        {
            let _ = writeln!(
                out,
                "{name}{{cap=\"{}\"}} {}",
                why.label(),
                v.load(Ordering::Relaxed)
            );
        }
        let name = "starling_segment_selections_total";
        let _ = writeln!(
            out,
            "# HELP {name} Segments of a locked primary's takeover chosen among pipelines, by the pipeline served.\n# TYPE {name} counter"
        );
        for (pipeline, v) in ["backup", "primary"]
            .into_iter()
            .zip(&self.segment_selections)
        {
            let _ = writeln!(
                out,
                "{name}{{pipeline=\"{pipeline}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let name = "starling_segment_defects_total";
        let _ = writeln!(
            out,
            "# HELP {name} Segments cut with a defect (short, no keyframe at the start, a media time jump, a hole), by defect.\n# TYPE {name} counter"
        );
        for (defect, v) in ["short", "no-irap", "jump", "hole"]
            .into_iter()
            .zip(&self.segment_defects)
        {
            let _ = writeln!(
                out,
                "{name}{{defect=\"{defect}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}
