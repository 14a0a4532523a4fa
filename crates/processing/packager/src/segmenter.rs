//! One rendition's open segment and part: samples in (timed on the rendition's output
//! timescale), CMAF parts and segment ends out.
//!
//! A sample's duration is only known when the next one arrives, so the newest sample is
//! held as the *tail*. Where a sample goes is decided as early as possible:
//! - when a sample arrives, the part is closed *before* it if the part plus an estimate
//!   of its duration (the last frame interval) would exceed the part target, so the part
//!   comes out one frame after its last sample arrived;
//! - when its real duration is known and turns out to overflow the part after all, the
//!   part is closed before it then (the part is still open, so this is a revision, not
//!   a rewrite).
//!
//! A sample's duration is capped (at the part target, or less, see
//! [`Segmenter::set_track`]) and so is a segment's (the room left before the maximum
//! segment duration): a timestamp gap then becomes a hole in the media timeline (the
//! next fragment's `tfdt` is later than the previous one's end) instead of a part
//! longer than PART-TARGET or a segment longer than TARGETDURATION. So every part is at
//! most the target and every segment at most its maximum. This module decides nothing
//! about segment boundaries (the packager does) and never reads a clock.

use std::time::SystemTime;

use bytes::Bytes;
use starling_cmaf::{
    media_fragment, ntp_from_system_time, CmafError, FragmentOptions, ProducerReference, Sample,
};
use starling_media::{Track, TrackKind};

use crate::{Defects, Output};

/// Samples in one part, at most: only timestamps clamped 1 tick apart (a broken source)
/// get near it, and the part must stay bounded in memory and in its `trun`.
const MAX_PART_SAMPLES: usize = 4096;

/// A track's bounds, on its output timescale (see [`Segmenter::set_track`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub part_target: i64,
    pub max_sample: i64,
    pub max_segment: i64,
    pub short_below: i64,
}

/// The newest sample, waiting for the next one to know its duration.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    /// Decode time on the output timescale (`base_media_decode_time` domain).
    pub time: i64,
    pub cts_offset: i32,
    pub keyframe: bool,
    pub data: Bytes,
    pub arrival: SystemTime,
}

#[derive(Debug, Clone)]
struct OpenSegment {
    msn: u64,
    start: i64,
    arrival: SystemTime,
    discontinuity: bool,
    /// Parts emitted so far (the index of the next one).
    parts: u32,
    /// Sum of the emitted parts' durations.
    ticks: i64,
    /// A sample was added (the first one decides `no_irap`).
    has_sample: bool,
    defects: Defects,
}

#[derive(Debug)]
pub(crate) struct Segmenter {
    name: &'static str,
    /// The output track (timescale, codec config) fragments are written for.
    track: Option<Track>,
    /// Part target on the output timescale.
    target: i64,
    /// The longest duration a sample gets (output timescale).
    max_sample: i64,
    /// The longest a segment gets (output timescale).
    max_segment: i64,
    /// A segment cut shorter than this is `short` (output timescale).
    short_below: i64,
    /// End of the last committed sample (its time plus the duration it was given).
    last_end: Option<i64>,
    /// The last committed sample left a hole before the next one.
    hole_pending: bool,
    /// `mfhd` sequence number of the last fragment written; never reset.
    seq: u32,
    seg: Option<OpenSegment>,
    part: Vec<Sample>,
    part_ticks: i64,
    part_start: i64,
    part_arrival: SystemTime,
    tail: Option<Tail>,
    pub(crate) last_error: Option<CmafError>,
}

impl Segmenter {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            track: None,
            target: 1,
            max_sample: 1,
            max_segment: i64::MAX,
            short_below: 0,
            last_end: None,
            hole_pending: false,
            seq: 0,
            seg: None,
            part: Vec::new(),
            part_ticks: 0,
            part_start: 0,
            part_arrival: SystemTime::UNIX_EPOCH,
            tail: None,
            last_error: None,
        }
    }

    /// Switches to a new output track. Call only with no segment open. No sample lasts
    /// longer than `max_sample` (capped at the part target), no segment longer than
    /// `max_segment`; a segment cut before `short_below` is flagged short.
    pub fn set_track(&mut self, track: Track, limits: Limits) {
        self.track = Some(track);
        self.target = limits.part_target.max(1);
        self.max_sample = limits.max_sample.clamp(1, self.target);
        self.max_segment = limits.max_segment.max(1);
        self.short_below = limits.short_below;
    }

    /// Duration of the open segment so far, the held tail excluded.
    pub fn segment_ticks(&self) -> i64 {
        self.seg
            .as_ref()
            .map_or(0, |s| s.ticks.saturating_add(self.part_ticks))
    }

    pub fn is_open(&self) -> bool {
        self.seg.is_some()
    }

    /// Decode time of the held-back newest sample.
    pub fn tail_time(&self) -> Option<i64> {
        self.tail.as_ref().map(|t| t.time)
    }

    /// Decode time of the first sample of the open segment.
    pub fn segment_start(&self) -> Option<i64> {
        self.seg.as_ref().map(|s| s.start)
    }

    /// Opens segment `msn` at decode time `start`; its program date time is `arrival`
    /// (of its first sample).
    pub fn open(&mut self, msn: u64, start: i64, arrival: SystemTime, discontinuity: bool) {
        // Where the previous segment's media ended is where this one's must begin,
        // unless the packager declared a discontinuity.
        let jump = !discontinuity && self.last_end.is_some_and(|end| end != start);
        self.hole_pending = false;
        self.seg = Some(OpenSegment {
            msn,
            start,
            arrival,
            discontinuity,
            parts: 0,
            ticks: 0,
            has_sample: false,
            defects: Defects {
                jump,
                ..Defects::default()
            },
        });
    }

    /// The next sample starts at `next_time`: the tail now has its duration and joins
    /// the part (closing the part first if it would overflow).
    pub fn commit_tail(&mut self, next_time: i64, out: &mut Vec<Output>) {
        let Some(t) = self.tail.take() else {
            return;
        };
        let room = self.max_segment.saturating_sub(self.segment_ticks());
        let gap = next_time.saturating_sub(t.time);
        let duration = gap.min(self.max_sample).min(room).max(1);
        if !self.part.is_empty() && self.part_ticks.saturating_add(duration) > self.target
            || self.part.len() >= MAX_PART_SAMPLES
        {
            self.emit_part(out);
        }
        if self.part.is_empty() {
            self.part_start = t.time;
            self.part_arrival = t.arrival;
        }
        self.part.push(Sample {
            duration: u32::try_from(duration).unwrap_or(u32::MAX),
            cts_offset: t.cts_offset,
            keyframe: t.keyframe,
            data: t.data,
        });
        self.part_ticks = self.part_ticks.saturating_add(duration);
        self.last_end = Some(t.time.saturating_add(duration));
        self.hole_pending = gap != duration;
        if gap > duration {
            // A hole follows: the next sample must start a fragment of its own, whose
            // `tfdt` says where it really is (samples of one `trun` are contiguous).
            self.emit_part(out);
        }
    }

    /// Adds `tail` as the newest sample (after [`Self::commit_tail`] with its time).
    /// `estimate` is its expected duration: if the part cannot take it, the part is
    /// closed now rather than one frame later.
    pub fn add(&mut self, tail: Tail, estimate: i64, out: &mut Vec<Output>) {
        let video = self
            .track
            .as_ref()
            .is_some_and(|t| t.kind() == TrackKind::Video);
        if let Some(seg) = &mut self.seg {
            // A hole (or an overlap) between two samples of this segment.
            seg.defects.hole |= std::mem::take(&mut self.hole_pending);
            if !seg.has_sample {
                seg.has_sample = true;
                // A decoder cannot start this segment on its own.
                seg.defects.no_irap = video && !tail.keyframe;
            }
        }
        if !self.part.is_empty() && self.part_ticks.saturating_add(estimate.max(1)) > self.target {
            self.emit_part(out);
        }
        self.tail = Some(tail);
    }

    /// Closes the open segment (after [`Self::commit_tail`]): the last part, then
    /// `SegmentEnd`. Returns the segment's number. `last`: it ends the rendition's
    /// media (an end, a change of track), so being short is no defect.
    pub fn close_segment(&mut self, last: bool, out: &mut Vec<Output>) -> Option<u64> {
        self.emit_part(out);
        let mut seg = self.seg.take()?;
        if seg.parts > 0 {
            seg.defects.short = !last && seg.ticks < self.short_below;
            out.push(Output::SegmentEnd {
                rendition: self.name,
                msn: seg.msn,
                duration: self.seconds(seg.ticks),
                program_date_time: seg.arrival,
                discontinuity: seg.discontinuity,
                defects: seg.defects,
            });
        }
        Some(seg.msn)
    }

    /// Ends everything open: the tail gets `estimate` as its duration. Returns the closed
    /// segment's number and the end time of its last sample.
    pub fn flush(&mut self, estimate: i64, out: &mut Vec<Output>) -> Option<(u64, i64)> {
        let end = self
            .tail_time()
            .map(|t| t.saturating_add(estimate.max(1)))
            .unwrap_or(self.part_start.saturating_add(self.part_ticks));
        self.commit_tail(end, out);
        let msn = self.close_segment(true, out)?;
        Some((msn, end))
    }

    fn seconds(&self, ticks: i64) -> f64 {
        let ts = self.track.as_ref().map_or(1, |t| t.timescale.max(1));
        ticks as f64 / f64::from(ts)
    }

    fn emit_part(&mut self, out: &mut Vec<Output>) {
        if self.part.is_empty() {
            return;
        }
        let samples = std::mem::take(&mut self.part);
        let ticks = std::mem::replace(&mut self.part_ticks, 0);
        let duration = self.seconds(ticks);
        let (Some(track), Some(seg)) = (&self.track, &mut self.seg) else {
            return;
        };
        let first = seg.parts == 0;
        let start = u64::try_from(self.part_start).unwrap_or(0);
        self.seq = self.seq.checked_add(1).unwrap_or(1);
        let opts = FragmentOptions {
            sequence_number: self.seq,
            base_media_decode_time: start,
            styp: first,
            prft: first.then(|| ProducerReference {
                ntp_timestamp: ntp_from_system_time(self.part_arrival),
                media_time: start,
            }),
        };
        let independent =
            track.kind() == TrackKind::Audio || samples.first().is_some_and(|s| s.keyframe);
        match media_fragment(track, &samples, &opts) {
            Ok(data) => {
                out.push(Output::Part {
                    rendition: self.name,
                    msn: seg.msn,
                    index: seg.parts,
                    duration,
                    independent,
                    start,
                    data,
                    first_arrival: self.part_arrival,
                    discontinuity: seg.discontinuity,
                });
                seg.parts += 1;
                seg.ticks = seg.ticks.saturating_add(ticks);
            }
            Err(e) => self.last_error = Some(e),
        }
    }
}
