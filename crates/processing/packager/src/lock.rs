//! The epoch lock: numbering segments on a grid every pipeline of an event shares.
//!
//! A publish whose timestamps count from the Unix epoch ([`SourceClock::Epoch`]) is not
//! mapped from its own first frame: its media time is its source time since the epoch,
//! so segment `n` covers `[n × D, (n + 1) × D)` after 1970-01-01T00:00:00Z whichever
//! pipeline packaged it and whenever that pipeline started. Two pipelines fed from one
//! encoder (or from encoders locked to one clock) then cut the same segments under the
//! same numbers, which is what lets an origin pick either's segment `n` (docs/hls.md,
//! "Epoch locking").
//!
//! Source clocks wrap (RTMP keeps 2^31 ms, MPEG-TS 2^33 ticks of 90 kHz): the wrapped
//! value is unwrapped to the instant congruent to it that lies nearest the frame's
//! arrival. A source whose unwrapped clock is further than [`MAX_SKEW_NS`] from the
//! arrival (a wrong clock, or a source that does not stamp epoch time at all) is not
//! locked: it is packaged as a relative publish and counted.
//!
//! Sans-IO like the rest of the crate: the arrival comes with the frame.

use std::time::{SystemTime, UNIX_EPOCH};

use starling_media::{Frame, SourceClock};

use crate::{
    time::{div_round, ticks_to_ns, Origin, NANOS},
    Packager, VIDEO_TIMESCALE,
};

/// How far an epoch-stamped source's clock may be from the frame's arrival (60 s:
/// encoder and contribution latency are seconds; a clock off by more is wrong, and
/// numbering by it would jump the playlist by minutes).
pub(crate) const MAX_SKEW_NS: i128 = 60 * NANOS;

/// A decode time within this of a segment boundary counts as on it (millisecond
/// timestamps round; keyframes are at least a frame, ≥ 8 ms at 120 fps, apart).
pub(crate) const ON_GRID_NS: i128 = 4_000_000;

/// Where a locked publish may start, per track (see [`Packager::lock`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LockFloor {
    pub video_ns: i128,
    pub audio_ns: i128,
    /// Audio is dropped until the video's first keyframe of the publish.
    pub audio_waits_for_video: bool,
}

/// Nanoseconds since the Unix epoch of `t` (negative before it).
pub(crate) fn unix_ns(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

/// The wall-clock instant of media time `ticks` (at `timescale`) of a locked publish,
/// whose media time 0 is the Unix epoch.
pub(crate) fn wall_clock(ticks: i64, timescale: u32) -> SystemTime {
    let ns = ticks_to_ns(ticks, timescale).max(0);
    UNIX_EPOCH + std::time::Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// The instant, in ns since the epoch, that source time `ticks` (at `timescale`,
/// counting from the epoch modulo `wrap_ticks`) stands for: the one nearest `arrival_ns`.
/// `None` when that is further than [`MAX_SKEW_NS`] from the arrival.
pub(crate) fn unwrap_epoch(
    ticks: i64,
    timescale: u32,
    wrap_ticks: u64,
    arrival_ns: i128,
) -> Option<i128> {
    if timescale == 0 || wrap_ticks == 0 {
        return None;
    }
    let ts = i128::from(timescale);
    let wrap = i128::from(wrap_ticks);
    let t = i128::from(ticks).rem_euclid(wrap);
    let arrival_ticks = div_round(arrival_ns.saturating_mul(ts), NANOS);
    let k = div_round(arrival_ticks.saturating_sub(t), wrap);
    let full = t.saturating_add(k.saturating_mul(wrap));
    let ns = div_round(full.saturating_mul(NANOS), ts);
    (ns.saturating_sub(arrival_ns).abs() <= MAX_SKEW_NS).then_some(ns)
}

/// The number of the segment that media time `ns` opens on a grid of `segment_ns`:
/// the one it falls in, or the next when it is within [`ON_GRID_NS`] of that one's
/// start (so a keyframe stamped a millisecond early still opens its own segment).
pub(crate) fn grid_msn(ns: i128, segment_ns: i128) -> u64 {
    if segment_ns <= 0 || ns < 0 {
        return 0;
    }
    let n = ns.saturating_add(ON_GRID_NS) / segment_ns;
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Packager {
    /// Maps an epoch-stamped publish onto the epoch grid (see the `lock` module):
    /// media time is source time since the Unix epoch, and the renditions' numbers jump
    /// to the grid's. `None` for any other publish, or one whose clock is not believable.
    pub(crate) fn lock(&mut self, frame: &Frame, first: i64, timescale: u32) -> Option<Origin> {
        let SourceClock::Epoch { wrap_ticks } = self.clock else {
            return None;
        };
        let arrival = unix_ns(frame.arrival);
        let Some(epoch_ns) = unwrap_epoch(first, timescale, wrap_ticks, arrival) else {
            self.lock_refused += 1;
            return None;
        };
        // Media time 0 is the epoch itself, for every locked publish of every pipeline.
        // A run that began relative switches here (its numbers jump to the grid's).
        self.availability_start = Some(UNIX_EPOCH);
        self.locked = true;
        self.timeline.set_home(Some(self.segment_ns));
        // Numbers below `next_msn` are taken: video that would open one of them is
        // dropped (the previous publish's last sample may end a little past the grid:
        // its duration is an estimate). Audio goes on where the previous publish's
        // audio ended, less half a frame, so the two do not overlap; after a locked
        // publish it also waits for the video's first keyframe, so that both
        // renditions start this publish at the same time.
        let grid = i128::from(self.next_msn).saturating_mul(self.segment_ns);
        let audio_end = self.audio.end.map_or(grid, |e| {
            ticks_to_ns(e, self.audio.timescale)
                .saturating_sub(ticks_to_ns(self.audio.interval / 2, self.audio.timescale))
        });
        self.lock_floor_ns = Some(LockFloor {
            video_ns: grid.saturating_sub(ON_GRID_NS),
            audio_ns: audio_end.max(grid.saturating_sub(ON_GRID_NS)),
            audio_waits_for_video: self.last_locked && self.video.source.is_some(),
        });
        let msn = grid_msn(epoch_ns, self.segment_ns).max(self.next_msn);
        let continues = self.last_locked;
        for r in [&mut self.video, &mut self.audio] {
            if r.source.is_some() {
                r.msn = r.msn.max(msn);
                // The same clock goes on: no seam (a new init section still makes one).
                if continues {
                    r.discontinuity = false;
                }
            }
        }
        Some(Origin {
            ticks: first,
            timescale,
            base_ns: epoch_ns,
        })
    }

    /// Whether a locked publish's time `ticks` (90 kHz) falls in a segment closed before
    /// this publish.
    pub(crate) fn below_lock_floor(&self, ticks: i64) -> bool {
        self.lock_floor_ns
            .is_some_and(|floor| ticks_to_ns(ticks, VIDEO_TIMESCALE) < floor.video_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = NANOS;
    /// 2026-12-06T12:00:00Z.
    const NOON: i128 = 1_796_558_400 * S;

    #[test]
    fn rtmp_milliseconds_unwrap_to_the_instant_nearest_the_arrival() {
        let epoch_ms = NOON / 1_000_000 + 123;
        // ffmpeg's FLV muxer keeps 31 bits; a spec-following one 32: both unwrap.
        for wrap in [1u64 << 31, 1 << 32] {
            let sent = i64::try_from(epoch_ms % i128::from(wrap)).unwrap();
            let got = unwrap_epoch(sent, 1000, 1 << 31, NOON + 2 * S).unwrap();
            assert_eq!(got, NOON + 123_000_000, "wrap {wrap}");
        }
        // The ingest's extended counter may be past the wrap already.
        let sent = i64::try_from(epoch_ms % (1 << 31)).unwrap() + (1 << 31);
        assert_eq!(
            unwrap_epoch(sent, 1000, 1 << 31, NOON - S),
            Some(NOON + 123_000_000)
        );
    }

    #[test]
    fn mpegts_pts_unwrap_and_a_clock_off_by_minutes_is_not_locked() {
        let pts = i64::try_from((NOON / S * 90_000 + 45_000) % (1 << 33)).unwrap();
        assert_eq!(
            unwrap_epoch(pts, 90_000, 1 << 33, NOON + 3 * S),
            Some(NOON + S / 2)
        );
        // A relative source (PTS from power-on) lands nowhere near the arrival.
        assert_eq!(unwrap_epoch(900_000, 90_000, 1 << 33, NOON), None);
        assert_eq!(unwrap_epoch(1, 0, 1 << 33, NOON), None);
    }

    #[test]
    fn grid_numbers_absorb_rounding_before_a_boundary() {
        let d = 2 * S;
        assert_eq!(grid_msn(10 * S, d), 5);
        assert_eq!(grid_msn(10 * S - 1_000_000, d), 5);
        assert_eq!(grid_msn(10 * S - 10_000_000, d), 4);
        assert_eq!(grid_msn(11 * S, d), 5);
        assert_eq!(grid_msn(-1, d), 0);
    }

    #[test]
    fn instants_before_the_epoch_are_negative() {
        assert_eq!(unix_ns(UNIX_EPOCH), 0);
        assert_eq!(unix_ns(UNIX_EPOCH - std::time::Duration::from_secs(1)), -S);
    }
}
