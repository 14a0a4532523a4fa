//! Where each DASH period of a run sits on the wall clock, fixed when it begins.
//!
//! A DASH player finds segments by time: the MPD maps media time to the wall clock
//! through `availabilityStartTime`, each `Period@start` and the period's
//! `presentationTimeOffset`. Those must not move between two fetches of the MPD, but the
//! segments they could be derived from leave the window as it slides. So each boundary
//! (the run's first segment, a republish, a new init section, a timestamp jump) is
//! noted once, from the segment that opens it: the wall-clock arrival of its first frame
//! and its media time. The packager keeps one media timeline for a run (in nanoseconds,
//! the same for every rendition), so one anchor serves every rendition's timescale.

use std::time::{Duration, SystemTime};

/// Anchors kept per run: a run of reconnects every few seconds for days must not grow
/// without end; anchors of periods that left the window are pruned first.
const MAX_ANCHORS: usize = 4096;

/// One period's start: segment `msn` opens it; its first frame arrived at `wall` and
/// has media time `media_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Anchor {
    pub msn: u64,
    pub wall: SystemTime,
    pub media_ns: u128,
}

impl Anchor {
    /// The anchor a segment would give: `None` without a date or a media time.
    pub fn of(
        msn: u64,
        wall: Option<SystemTime>,
        media_start: Option<u64>,
        timescale: u32,
    ) -> Option<Self> {
        Some(Self {
            msn,
            wall: wall?,
            media_ns: ticks_to_ns(media_start?, timescale)?,
        })
    }

    /// The period's `presentationTimeOffset` at `timescale` (rounded to the nearest tick).
    pub fn offset(&self, timescale: u32) -> u64 {
        let t = self.media_ns.saturating_mul(u128::from(timescale));
        u64::try_from((t + 500_000_000) / 1_000_000_000).unwrap_or(u64::MAX)
    }
}

/// A run's anchors, oldest first, and its availability start time.
#[derive(Debug, Clone, Default)]
pub(crate) struct Periods {
    /// The run's `availabilityStartTime`: its first anchor's instant, to the millisecond
    /// (the MPD writes milliseconds), so that every `Period@start` is exact and positive.
    pub availability_start: Option<SystemTime>,
    pub anchors: Vec<Anchor>,
}

impl Periods {
    /// A new run: nothing carries over.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Notes that segment `a.msn` opens a period. Each rendition notes its own first
    /// segment there; the earliest in media time is kept (audio usually starts a few
    /// milliseconds before the video's keyframe), so that no rendition's first segment
    /// starts before the period (players mishandle a negative start). Both arrive within
    /// a part of each other, long before an MPD can list the period.
    pub fn note(&mut self, a: Anchor) {
        if let Some(x) = self.anchors.iter_mut().rev().find(|x| x.msn == a.msn) {
            if a.media_ns < x.media_ns {
                *x = a;
            }
            return;
        }
        if self.availability_start.is_none() {
            let ms = a
                .wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            self.availability_start = Some(
                SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
            );
        }
        if self.anchors.len() >= MAX_ANCHORS {
            self.anchors.remove(0);
        }
        // Kept in number order whatever the order of arrival.
        let at = self.anchors.partition_point(|x| x.msn < a.msn);
        self.anchors.insert(at, a);
    }

    /// Drops anchors of periods wholly older than segment `first` (the oldest still
    /// listed): the newest anchor at or before it stays, it places that period.
    pub fn prune(&mut self, first: u64) {
        let keep_from = self.anchors.partition_point(|x| x.msn <= first);
        if keep_from > 1 {
            self.anchors.drain(..keep_from - 1);
        }
    }

    /// The anchor in force at segment `msn`.
    pub fn at(&self, msn: u64) -> Option<&Anchor> {
        let i = self.anchors.partition_point(|x| x.msn <= msn);
        i.checked_sub(1).map(|i| &self.anchors[i])
    }
}

fn ticks_to_ns(ticks: u64, timescale: u32) -> Option<u128> {
    (timescale > 0).then(|| u128::from(ticks) * 1_000_000_000 / u128::from(timescale))
}

/// Whether rendition `name` decides where periods begin: the source and its audio do,
/// the ladder's rungs do not (they join late and restart on their own; their breaks
/// are handled within a period). A channel without a `source` rendition has only the
/// renditions it has.
pub(crate) fn sets_periods(name: &str, has_source: bool) -> bool {
    !has_source
        || name == starling_packager::VIDEO_RENDITION
        || name == starling_packager::AUDIO_RENDITION
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(secs * 1000 + 123)
    }

    #[test]
    fn anchors_are_noted_once_and_pruned_behind_the_window() {
        let mut p = Periods::default();
        p.note(Anchor::of(0, Some(at(100)), Some(90), 90_000).unwrap());
        // The audio rendition's first segment: the same period, from the audio's first
        // frame, which is earlier.
        p.note(Anchor::of(0, Some(at(100)), Some(5), 48_000).unwrap());
        assert_eq!(p.anchors[0].offset(48_000), 5);
        p.note(Anchor::of(0, Some(at(100)), Some(90), 48_000).unwrap());
        assert_eq!(p.anchors[0].offset(48_000), 5);
        p.note(Anchor::of(10, Some(at(150)), Some(1_800_000), 90_000).unwrap());
        p.note(Anchor::of(20, Some(at(190)), Some(3_600_000), 90_000).unwrap());
        assert_eq!(p.anchors.len(), 3);
        assert_eq!(
            p.availability_start,
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(100_123))
        );
        assert_eq!(p.at(15).map(|a| a.msn), Some(10));
        assert_eq!(p.at(10).map(|a| a.msn), Some(10));
        p.prune(15);
        assert_eq!(
            p.anchors.iter().map(|a| a.msn).collect::<Vec<_>>(),
            [10, 20]
        );
        // The availability start stays with the run.
        assert_eq!(
            p.availability_start,
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(100_123))
        );
        p.reset();
        assert!(p.anchors.is_empty() && p.availability_start.is_none());
    }

    #[test]
    fn offsets_convert_between_timescales() {
        // 20 s of media at 90 kHz is 20 s at 48 kHz.
        let a = Anchor::of(10, Some(at(0)), Some(1_800_000), 90_000).unwrap();
        assert_eq!(a.offset(90_000), 1_800_000);
        assert_eq!(a.offset(48_000), 960_000);
        assert_eq!(a.offset(44_100), 882_000);
        assert!(Anchor::of(0, None, Some(0), 90_000).is_none());
        assert!(Anchor::of(0, Some(at(0)), Some(0), 0).is_none());
    }
}
