//! The audio rendition: timing AAC by counting samples (resynced to the source both
//! ways), and holding frames back until the video has decided where its segment ends.

use starling_media::{Frame, TrackKind};

use crate::{
    time::{at_or_after, at_or_after_ns, ns_to_ticks, ticks_to_ns},
    Output, Packager, Sample, Tail, MAX_HELD_AUDIO_FRAMES, VIDEO_TIMESCALE,
};

/// What to do with the oldest held audio frame.
enum AudioDecision {
    /// Keep holding: the video has not decided the boundary.
    Hold,
    /// The frame is past the current segment's end: close it (and look again).
    Cut,
    /// The frame belongs to the current segment.
    Release,
}

impl Packager {
    pub(crate) fn audio_frame(&mut self, frame: Frame, out: &mut Vec<Output>) {
        let Some(source) = self.audio.source else {
            return;
        };
        let origin = self.origin(&frame, source.timescale);
        let ts = self.audio.timescale;
        let mapped = origin.map(frame.dts, source.timescale, ts);
        let waiting_for_video = self.video.source.is_some() && self.video.last_time.is_none();
        if self.lock_floor_ns.is_some_and(|floor| {
            ticks_to_ns(mapped, ts) < floor.audio_ns
                || (floor.audio_waits_for_video && waiting_for_video)
        }) {
            // A locked publish's audio for a segment closed before it began, or before
            // the video's first keyframe of a publish that continues another.
            self.dropped += 1;
            return;
        }
        let placed = self
            .timeline
            .place(mapped, ts, self.audio.offset_ns, self.audio.expected);
        self.audio.offset_ns = placed.offset_ns;
        if placed.jumped {
            self.mark_jump();
        }
        let converted = placed.time;
        let r = &mut self.audio;
        let mut time = match (r.samples_per_frame, r.counted_next) {
            (Some(spf), Some(expected)) => {
                let tolerance = spf.saturating_mul(3) / 2;
                let drift = converted.saturating_sub(expected);
                if drift > tolerance {
                    converted // a gap in the source: resync
                } else if drift < -tolerance {
                    // The source sent more audio than its clock covers: drop a frame so
                    // the count comes back to the clock (the other way of resyncing).
                    self.dropped += 1;
                    self.resynced += 1;
                    return;
                } else {
                    expected
                }
            }
            _ => converted,
        };
        let floor = r.floor();
        if time < floor {
            self.clamped += 1;
            time = floor;
        }
        match r.samples_per_frame {
            Some(spf) => r.counted_next = Some(time.saturating_add(spf)),
            None => {
                if let Some(previous) = r.last_dts {
                    r.interval = time.saturating_sub(previous).max(1);
                }
            }
        }
        r.last_dts = Some(time);
        r.expected = Some(r.counted_next.unwrap_or(time.saturating_add(r.interval)));
        // As for video: a locked publish's wall clock is its media time.
        let arrival = if self.locked {
            crate::lock::wall_clock(time, ts)
        } else {
            frame.arrival
        };
        if self.tap {
            out.push(Output::Sample(Sample {
                kind: TrackKind::Audio,
                time: ns_to_ticks(ticks_to_ns(time, ts), VIDEO_TIMESCALE),
                cts_offset: 0,
                keyframe: true,
                msn: r.msn,
                starts_segment: false,
                data: frame.data.clone(),
                arrival,
            }));
        }
        r.held.push_back(Tail {
            time,
            cts_offset: 0,
            keyframe: true,
            data: frame.data,
            arrival,
        });
        self.drain_audio(false, out);
    }

    /// Moves held audio frames into segments as far as the cuts are decided. `last`:
    /// nothing more will come in this publish, release everything.
    pub(crate) fn drain_audio(&mut self, last: bool, out: &mut Vec<Output>) {
        while let Some(time) = self.audio.held.front().map(|h| h.time) {
            match self.audio_decision(time, last) {
                AudioDecision::Hold => break,
                AudioDecision::Cut => {
                    let r = &mut self.audio;
                    r.seg.commit_tail(time, out);
                    let closed = r.seg.close_segment(false, out);
                    r.msn = r.msn.saturating_add(1);
                    if let Some(msn) = closed {
                        self.closed(msn);
                    }
                }
                AudioDecision::Release => {
                    let r = &mut self.audio;
                    let Some(frame) = r.held.pop_front() else {
                        break;
                    };
                    r.seg.commit_tail(frame.time, out);
                    if !r.seg.is_open() {
                        let discontinuity = r.take_discontinuity();
                        r.seg.open(r.msn, frame.time, frame.arrival, discontinuity);
                        r.ever_opened = true;
                    }
                    let estimate = r.interval;
                    r.seg.add(frame, estimate, out);
                }
            }
        }
    }

    fn audio_decision(&mut self, a: i64, last: bool) -> AudioDecision {
        let n = self.audio.msn;
        while self.cuts.front().is_some_and(|&(m, _)| m < n) {
            self.cuts.pop_front();
        }
        let ts = self.audio.timescale;
        // Compare the frame's start plus half a frame: the boundary nearest the cut.
        let a_mid = a.saturating_add(self.audio.eps());
        if let Some(&(m, cut)) = self.cuts.front() {
            if m == n {
                return if at_or_after(a_mid, ts, cut, VIDEO_TIMESCALE) {
                    AudioDecision::Cut
                } else {
                    AudioDecision::Release
                };
            }
        }
        if last {
            return AudioDecision::Release;
        }
        let nominal = self.nominal_end(n);
        if self.video.source.is_some() && !self.audio.stalled {
            if self.video.msn > n {
                // The video is past this boundary and its cut was forgotten.
                return AudioDecision::Cut;
            }
            // The video cuts at a keyframe at or after `nominal − ε` and after its newest
            // frame: anything before either is in this segment.
            let eps_v = ticks_to_ns(self.video.eps(), VIDEO_TIMESCALE);
            if !at_or_after_ns(a_mid, ts, nominal.saturating_sub(eps_v)) {
                return AudioDecision::Release;
            }
            if let Some(v) = self.video.last_time {
                if at_or_after(v, VIDEO_TIMESCALE, a_mid, ts) {
                    return AudioDecision::Release;
                }
            }
            let newest = self.audio.held.back().map_or(a, |h| h.time);
            if newest.saturating_sub(a) <= ns_to_ticks(self.segment_ns, ts)
                && self.audio.held.len() <= MAX_HELD_AUDIO_FRAMES
            {
                return AudioDecision::Hold;
            }
            self.audio.stalled = true;
        }
        // Audio alone: the nominal grid, with segments at least one part long.
        let min_len = ns_to_ticks(self.part_ns, ts);
        let max_len = ns_to_ticks(self.max_segment_ns, ts);
        let next_end = a.saturating_add(self.audio.interval);
        match self.audio.seg.segment_start() {
            Some(start)
                if at_or_after_ns(a_mid, ts, nominal) && a.saturating_sub(start) >= min_len
                    || next_end.saturating_sub(start) > max_len =>
            {
                AudioDecision::Cut
            }
            _ => AudioDecision::Release,
        }
    }
}
