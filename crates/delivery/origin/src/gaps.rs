//! Audio gaps: numbers a rendition skipped (audio missing for a whole video segment) are
//! listed as `EXT-X-GAP` segments, so numbers stay consecutive and aligned between
//! renditions; and numbers the primary pipeline skipped that another pipeline's copy
//! fills (`select`). Applied under the channel's lock by `live`; no I/O.

use std::time::SystemTime;

use crate::live::{ChannelInner, OriginConfig, Rendition, Segment};
use crate::select::Selected;

/// Gap segments listed at most in one go: a rendition silent for longer is a broken
/// source; its numbers then jump (players resync on the media sequence).
const MAX_GAP_SEGMENTS: u64 = 256;

/// Lists the numbers `rendition` skipped before `msn` as gap segments, so a playlist's
/// numbers stay consecutive (HLS) and the same as the other rendition's, and lookups by
/// number keep working. A gap lasts what the other rendition's segment of that number
/// lasted (or the nominal duration), within the target.
pub(crate) fn fill_gaps(
    st: &mut ChannelInner,
    rendition: &str,
    msn: u64,
    config: &OriginConfig,
    now: SystemTime,
) {
    let Some(last) = st.rendition(rendition).and_then(|r| r.segments.back()) else {
        return;
    };
    let (from, session) = (last.msn.saturating_add(1), last.session);
    if msn <= from || msn - from > MAX_GAP_SEGMENTS {
        return;
    }
    let nominal = config.segment_duration.as_secs_f64();
    let gaps: Vec<(u64, f64)> = (from..msn)
        .map(|n| {
            let other = st
                .renditions
                .iter()
                .filter(|r| r.info.name != rendition)
                .find_map(|r| r.segment(n).filter(|s| s.complete && !s.gap))
                .map_or(nominal, |s| s.duration);
            (n, other)
        })
        .collect();
    let Some(r) = st.rendition_mut(rendition) else {
        return;
    };
    let init = r.inits.len().saturating_sub(1);
    let target = f64::from(r.target_duration);
    for (n, duration) in gaps {
        r.segments.push_back(Segment {
            complete: true,
            duration: duration.min(target),
            // Nothing to write: it may leave memory with its neighbours.
            stored: true,
            completed_at: Some(now),
            gap: true,
            ..Segment::new(session, n, init)
        });
    }
    r.feed.touch();
}

/// The entry of a segment the primary never produced, listed whole from another
/// pipeline's copy `c` (complete with no parts: it was never at the live edge as parts;
/// its bytes and duration are set by the `SegmentEnd` applied with it).
pub(crate) fn filled(r: &mut Rendition, session: u64, c: &Selected) -> Segment {
    let init = r.inits.len().saturating_sub(1);
    Segment {
        discontinuity: std::mem::take(&mut r.next_discontinuity),
        new_map: r.segments.back().is_some_and(|s| s.init != init),
        program_date_time: Some(c.program_date_time),
        media_start: Some(c.start),
        ..Segment::new(session, c.msn, init)
    }
}
