//! Source clocks that jump: where a frame goes on the media timeline.
//!
//! A publish maps its source clock onto media time once (`time::Origin`). Sources break
//! that clock: an encoder restarts its counter, a mixer switches inputs, a relay rebases
//! after a hiccup. A step far outside what the track's own cadence allows is a *jump*:
//! the packager rebases the track by an offset so the frame lands where the track
//! expected its next one, and marks a discontinuity, rather than writing a sample of
//! minutes (forward) or clamping every following frame to 1 tick (backward).
//!
//! Offsets are shared by the tracks of a publish, because a clock jump hits every track
//! (FLV has one clock): the first track to see it makes a new offset, the other track's
//! next frame finds that offset fits it and takes it too, so audio and video stay
//! aligned. A track keeps the offset it has while its frames fit, so frames already in
//! flight with the old clock are not mistaken for a second jump, and a single stray
//! timestamp followed by the old cadence goes back to the old offset.
//!
//! An epoch-locked publish (see `lock`) has a clock that is right by definition: a
//! frame that does not fit goes back *home*, to offset 0 (its own epoch time), when
//! that is within [`Timeline::set_home`]'s distance of where the track expected it, so a
//! glitch of a few hundred milliseconds costs one discontinuity rather than moving the
//! pipeline off the grid that its twin keeps.
//!
//! What is *not* a jump: a step back of less than [`BACKWARD_TOLERANCE`] (jitter: clamped
//! as before) and a step forward that stays within [`Timeline::forward_threshold`] of the
//! newest time of *any* track. So a track that was silent (a 10 s audio gap) and comes
//! back in step with the other track resumes at its true time: that is a gap, not a jump.
//!
//! Sans-IO, like the rest of the crate.

use crate::time::{ns_to_ticks, ticks_to_ns};

/// A decode time this much earlier than the track expected is a backward jump (500 ms:
/// far beyond millisecond rounding and reordering of interleaved tracks, far below
/// any real clock reset).
pub(crate) const BACKWARD_TOLERANCE_NS: i128 = 500_000_000;
/// Offsets remembered per publish: the current one and a few older ones that frames in
/// flight may still need.
const MAX_OFFSETS: usize = 4;

/// The offsets of the current publish and the newest media time placed.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    /// Offsets in ns added to the origin's mapping, oldest first; always holds 0 first.
    offsets: Vec<i128>,
    /// Newest decode time placed in this publish, any track (ns).
    newest_ns: Option<i128>,
    /// Forward steps beyond this past the newest time are jumps (ns).
    forward_ns: i128,
    /// Jumps rebased since the packager started.
    pub jumps: u64,
    /// An epoch-locked publish: how far from where a track expected it a frame that
    /// does not fit may be and still go back to offset 0 (ns).
    home_ns: Option<i128>,
}

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    /// Decode time on the output timescale.
    pub time: i64,
    /// The offset (ns) the track uses from now on.
    pub offset_ns: i128,
    /// This frame made a new offset: the timeline is discontinuous here.
    pub jumped: bool,
}

impl Timeline {
    pub fn new(forward_ns: i128) -> Self {
        Self {
            offsets: vec![0],
            newest_ns: None,
            forward_ns,
            jumps: 0,
            home_ns: None,
        }
    }

    /// The publish is epoch-locked: frames that do not fit go back to offset 0 when it
    /// places them within `home_ns` of where they were expected (`None`: not locked).
    pub fn set_home(&mut self, home_ns: Option<i128>) {
        self.home_ns = home_ns;
    }

    /// Forgets the publish's offsets (a new publish maps its clock afresh).
    pub fn reset(&mut self) {
        self.offsets = vec![0];
        self.newest_ns = None;
        self.home_ns = None;
    }

    /// The offset a track joining now starts with.
    pub fn latest(&self) -> i128 {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// Places a frame. `mapped` is its decode time on timescale `ts` with no offset;
    /// `current` the track's offset; `expected` where the track expects its next frame
    /// (`None` for the first frame of the track in this publish: it is taken as is).
    pub fn place(
        &mut self,
        mapped: i64,
        ts: u32,
        current: i128,
        expected: Option<i64>,
    ) -> Placement {
        let at = |off: i128| mapped.saturating_add(ns_to_ticks(off, ts));
        let placement = match expected {
            None => Placement {
                time: at(current),
                offset_ns: current,
                jumped: false,
            },
            Some(expected) => {
                let lo = expected.saturating_sub(ns_to_ticks(BACKWARD_TOLERANCE_NS, ts));
                let newest = self.newest_ns.map_or(expected, |n| ns_to_ticks(n, ts));
                let hi = newest
                    .max(expected)
                    .saturating_add(ns_to_ticks(self.forward_ns, ts));
                let fits = std::iter::once(current)
                    .chain(self.offsets.iter().rev().copied())
                    .map(|off| (off, at(off)))
                    .filter(|&(_, t)| (lo..=hi).contains(&t))
                    .min_by_key(|&(_, t)| t.saturating_sub(expected).unsigned_abs());
                match fits {
                    Some((offset_ns, time)) => Placement {
                        time,
                        offset_ns,
                        jumped: false,
                    },
                    None => {
                        // Rebase: this frame continues the track where it expected, or,
                        // locked, goes home to the clock's own time when that is near.
                        let home = self.home_ns.is_some_and(|h| {
                            ticks_to_ns(at(0).saturating_sub(expected), ts).abs() <= h
                        });
                        let offset_ns = if home {
                            0
                        } else {
                            ticks_to_ns(expected.saturating_sub(mapped), ts)
                        };
                        if self.offsets.len() >= MAX_OFFSETS {
                            self.offsets.remove(1);
                        }
                        self.offsets.push(offset_ns);
                        self.jumps += 1;
                        Placement {
                            time: at(offset_ns),
                            offset_ns,
                            jumped: true,
                        }
                    }
                }
            }
        };
        let ns = ticks_to_ns(placement.time, ts);
        self.newest_ns = Some(self.newest_ns.map_or(ns, |n| n.max(ns)));
        placement
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = 1_000_000_000;

    #[test]
    fn a_locked_track_goes_home_after_a_glitch_and_rebases_after_a_reset() {
        let mut t = Timeline::new(3 * S);
        t.set_home(Some(2 * S));
        t.place(10_000, 1000, 0, None);
        // 600 ms late for a while (a forward step within the threshold: a gap)...
        let late = t.place(10_640, 1000, 0, Some(10_040));
        assert!(!late.jumped);
        // ...then on time again: back to its own time, a discontinuity.
        let back = t.place(10_080, 1000, 0, Some(10_680));
        assert!(back.jumped);
        assert_eq!((back.time, back.offset_ns), (10_080, 0));
        // A clock reset a minute back is no glitch: rebased where expected.
        let reset = t.place(50_000, 1000, 0, Some(10_120));
        assert!(reset.jumped);
        assert_eq!(reset.time, 10_120);
    }

    #[test]
    fn steady_frames_and_jitter_keep_the_offset() {
        let mut t = Timeline::new(3 * S);
        let p = t.place(0, 1000, 0, None);
        assert_eq!(p.time, 0);
        // 40 ms late and 100 ms early: jitter, not jumps.
        assert!(!t.place(80, 1000, 0, Some(40)).jumped);
        assert!(!t.place(20, 1000, 0, Some(120)).jumped);
        assert_eq!(t.jumps, 0);
    }

    #[test]
    fn a_backward_jump_rebases_and_the_other_track_follows() {
        let mut t = Timeline::new(3 * S);
        t.place(100_000, 1000, 0, None);
        t.place(100_010, 1000, 0, Some(100_000));
        // video jumps back 60 s
        let v = t.place(40_040, 1000, 0, Some(100_040));
        assert!(v.jumped);
        assert_eq!(v.time, 100_040);
        // an audio frame from before the jump still fits the old offset
        let a = t.place(100_031, 1000, 0, Some(100_031));
        assert_eq!((a.time, a.offset_ns, a.jumped), (100_031, 0, false));
        // the audio's first frame after the jump takes the video's new offset
        let a = t.place(40_052, 1000, 0, Some(100_052));
        assert_eq!(
            (a.time, a.offset_ns, a.jumped),
            (100_052, v.offset_ns, false)
        );
        assert_eq!(t.jumps, 1);
    }

    #[test]
    fn a_forward_jump_of_minutes_rebases() {
        let mut t = Timeline::new(3 * S);
        t.place(1000, 1000, 0, None);
        let p = t.place(301_000, 1000, 0, Some(1040));
        assert!(p.jumped);
        assert_eq!(p.time, 1040);
        assert_eq!(p.offset_ns, -300 * S + 40_000_000);
    }

    #[test]
    fn a_track_back_from_a_gap_in_step_with_the_other_is_not_a_jump() {
        let mut t = Timeline::new(3 * S);
        t.place(0, 1000, 0, None);
        // the other track ran on to 10 s
        t.place(10_000, 1000, 0, Some(9_960));
        // this track was silent since 21 ms: back at 10 s
        let p = t.place(10_005, 1000, 0, Some(21));
        assert!(!p.jumped);
        assert_eq!(p.time, 10_005);
    }

    #[test]
    fn one_stray_timestamp_goes_back_to_the_old_offset() {
        let mut t = Timeline::new(3 * S);
        t.place(240, 1000, 0, None);
        let stray = t.place(-5000, 1000, 0, Some(280));
        assert!(stray.jumped);
        let back = t.place(280, 1000, stray.offset_ns, Some(320));
        assert_eq!((back.time, back.offset_ns), (280, 0));
    }
}
