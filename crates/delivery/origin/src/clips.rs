//! Clips: a stretch of a recorded run, as whole segments. A clip is no copy and no
//! re-encode: its playlists (`/vod/{channel}/{run}/clip-{first}-{last}.m3u8`, see
//! `http::vod`) list the run's own stored segments from `first` to `last`, every
//! rendition's, so it starts on a keyframe (every segment does, in every rung) and
//! plays wherever the recording does.
//!
//! [`Channel::clip_span`] finds the segments that hold a stretch of media time, for
//! the highlight detector of the app.

use crate::live::{lock, session_name, Channel};
use starling_packager::VIDEO_RENDITION;

/// The most segments one clip may span (a playlist of them is written per request).
pub const MAX_CLIP_SEGMENTS: u64 = 300;

/// The segments of the current run that hold a stretch of media time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipSpan {
    /// The run (its first session), as in `/vod/{channel}/{run}/`.
    pub run: String,
    pub first: u64,
    pub last: u64,
    /// Media time (90 kHz) where the first segment starts and the last ends.
    pub start: i64,
    pub end: i64,
    /// The renditions with segments in it (`source`, the rungs, `portrait`, `audio`).
    pub renditions: Vec<&'static str>,
}

/// Why no span can be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    #[error("the stretch is not all packaged yet")]
    NotYet,
    #[error("the stretch has left the channel's window (or was never in this run)")]
    Gone,
    #[error("the channel has no video to clip")]
    NoVideo,
    #[error("the channel does not record: a clip would outlive its segments")]
    NotRecorded,
    #[error("the stretch is empty or spans more than {MAX_CLIP_SEGMENTS} segments")]
    TooLong,
}

impl Channel {
    /// The complete segments of the source rendition of the current run that hold media
    /// time `from..to` (90 kHz, the channel's timeline): from the one `from` falls in to
    /// the one `to` falls in, so that a clip begins at a keyframe at or before `from`.
    /// `NotYet` while a segment of it is not complete and stored.
    pub fn clip_span(&self, from: i64, to: i64) -> Result<ClipSpan, SpanError> {
        if to <= from {
            return Err(SpanError::TooLong);
        }
        let st = lock(&self.inner);
        if !st.settings.record {
            return Err(SpanError::NotRecorded);
        }
        let Some(&first_session) = st.run.first() else {
            return Err(SpanError::Gone);
        };
        let source = st
            .renditions
            .iter()
            .find(|r| r.info.name == VIDEO_RENDITION)
            .ok_or(SpanError::NoVideo)?;
        // Segments of this run with a known start, in order.
        let timed: Vec<(u64, i64, i64, bool)> = source
            .segments
            .iter()
            .filter(|s| st.run.contains(&s.session) && !s.gap)
            .filter_map(|s| {
                let start = i64::try_from(s.media_start?).ok()?;
                let end = start + (s.duration * 90_000.0).round() as i64;
                // Ready once in the store (and its index): a clip plays from there.
                Some((s.msn, start, end, s.complete && s.stored))
            })
            .collect();
        let Some(oldest) = timed.first() else {
            return Err(SpanError::NotYet);
        };
        if to <= oldest.1 {
            return Err(SpanError::Gone);
        }
        // The last: the first segment that ends at or after `to`, once complete and stored.
        let last = timed
            .iter()
            .find(|s| s.2 >= to)
            .filter(|s| s.3)
            .ok_or(SpanError::NotYet)?;
        // The first: the one `from` falls in, or the oldest still listed (the stretch
        // began before the run did, or has partly left the window: a shorter clip).
        let first = timed.iter().rev().find(|s| s.1 <= from).unwrap_or(oldest);
        if last.0 < first.0 || last.0 - first.0 >= MAX_CLIP_SEGMENTS {
            return Err(SpanError::TooLong);
        }
        // Every segment between is complete (a segment in progress cannot be listed).
        if timed
            .iter()
            .any(|s| s.0 >= first.0 && s.0 <= last.0 && !s.3)
        {
            return Err(SpanError::NotYet);
        }
        let (a, b) = (first.0, last.0);
        let renditions = st
            .renditions
            .iter()
            .filter(|r| {
                r.segments.iter().any(|s| {
                    st.run.contains(&s.session) && s.complete && !s.gap && (a..=b).contains(&s.msn)
                })
            })
            .map(|r| r.info.name)
            .collect();
        Ok(ClipSpan {
            renditions,
            run: session_name(first_session),
            first: first.0,
            last: last.0,
            start: first.1,
            end: last.2,
        })
    }
}
