//! What a rendition keeps, and for how long: the memory window (segment bytes held for
//! the live edge) and the DVR window (segments listed at all), applied as each segment
//! completes.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::live::{segment_key, ChannelSettings, Origin, PlaylistKind, Rendition, Segment};

impl Origin {
    /// Drop what the windows no longer hold: bytes of stored segments older than the
    /// memory window, and (sliding playlists) segments older than the DVR window, whose
    /// object keys are returned for deletion when the channel does not record.
    ///
    /// Bytes stay in memory whatever their age while the segment is not settled in the
    /// store (a write under way or being retried: the store cannot serve it yet). A
    /// playlist lists parts for three target durations (9 s for 2 s segments), but
    /// players at the live edge ask for the last PART-HOLD-BACK (about 1 s) of them: the
    /// memory window (two segments unless set) covers those, and the listed parts of a
    /// released segment, which only a player that fell behind asks for, are read from
    /// the stored segment (the page cache, in practice), as nginx-rtmp serves everything.
    pub(crate) fn evict(
        &self,
        channel: &str,
        settings: ChannelSettings,
        r: &mut Rendition,
        now: SystemTime,
    ) -> Vec<String> {
        let older_than = |s: &Segment, d: Duration| {
            s.completed_at
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > d)
        };
        let parts_span = 3.0 * f64::from(r.target_duration) + 1e-3;
        let mut from_end = 0.0;
        for s in r.segments.iter_mut().rev() {
            if s.complete {
                from_end += s.duration.max(0.0);
            }
            let settled = s.stored || s.write_failed;
            if s.data.is_some() && settled && older_than(s, self.config.memory_window) {
                release(s);
            }
            // Three target durations after a playlist stopped listing a segment's parts
            // nobody may ask for them (RFC 8216bis 6.2.2); until then a part of a released
            // segment is served from the store, which needs its length. Past that, the
            // entries would only add up (about 1 KiB per channel every segment, for as
            // long as the DVR window: hours). The first stays: whether the segment starts
            // independently decides the playlist's INDEPENDENT-SEGMENTS.
            if s.data.is_none() && from_end > 2.0 * parts_span && s.parts.len() > 1 {
                s.parts.truncate(1);
                s.parts.shrink_to_fit();
            }
        }
        let mut deletes = Vec::new();
        if self.config.playlist == PlaylistKind::Sliding {
            // A live playlist keeps at least six segments (three target durations of
            // hold-back, and room for delta updates), whatever the DVR setting says.
            let window = settings.dvr_window.max(self.config.segment_duration * 6);
            while r.segments.front().is_some_and(|s| older_than(s, window)) {
                if let Some(s) = r.segments.pop_front() {
                    if s.discontinuity {
                        r.discontinuity_sequence += 1;
                    }
                    r.evicted_below = s.msn + 1;
                    if !settings.record && !s.gap {
                        deletes.push(segment_key(channel, s.session, r.info.name, s.msn));
                    }
                }
            }
        }
        deletes
    }
}

/// A stored segment's bytes leave memory; reads go to the store from now on.
pub(crate) fn release(s: &mut Segment) {
    s.data = None;
    for p in &mut s.parts {
        p.data = Bytes::new();
    }
}
