//! Choosing among pipelines. A backup that stands by with an epoch-locked clock is
//! packaged beside the primary (its candidates: complete segments, by number), so that
//! when the locked primary stops in the middle of a segment, that segment is served
//! whole from the backup instead of cut short where the primary's frames stopped.
//!
//! - The primary's last segments (one per rendition) are held back when its publish
//!   ends: listed in progress, not complete. The backup's candidate of the same number
//!   settles each one: if it is clean and was made with the same init section, its
//!   bytes, duration and defects are what the origin stores and serves under that
//!   segment; otherwise the primary's own. A held segment never waits past the first
//!   part of a later segment of its rendition (then the primary's is kept).
//! - After the takeover the backup's frames come on the channel's own feed; the
//!   candidate packager keeps following them (skipping what the standby feed gave it
//!   already) until the held segments are settled.
//! - The LL-HLS parts already listed for the held segment stay the primary's: parts of
//!   two encoders do not mix within a segment. A player that plays parts has the
//!   primary's hole; one that loads whole segments, and the recording, have none.
//!
//! - While both run, a segment the primary cut with a defect (short, no keyframe at
//!   its start, a time jump, a hole) is held the same way and settled by the backup's
//!   candidate of that number. The less damaged one (`Defects::severity`) is served,
//!   the primary's on a tie; a segment served with defects is flagged in the playlist.
//! - While both run, numbers the primary skipped (it lost frames for a whole segment:
//!   its packager keeps the grid's numbers, see the packager's `lock`) are filled with
//!   the backup's candidates of those numbers. The primary's output from the skip on
//!   waits for them, at most until the next part of the segment after the hole; a
//!   number no candidate fills in time is listed as a gap (`gaps`).
//!
//! Choices are counted (`starling_segment_selections_total{pipeline}`) and logged.
//! No I/O and no clock here: the channel's task feeds it, `live` applies what it says.

use std::{
    collections::{HashMap, VecDeque},
    time::SystemTime,
};

use bytes::{Bytes, BytesMut};
use starling_hub::HubEvent;
use starling_media::{Frame, Stream, TrackId};
use starling_packager::{Defects, Input, Output, Packager, PackagerConfig};

/// Candidates kept per rendition: the takeover needs the one of the segment the
/// primary stopped in, a segment or two back at most.
const KEEP: usize = 4;
/// Numbers skipped at once that candidates may fill: a longer hole is a pipeline that
/// stalled for longer than the candidates kept, listed as gaps.
const MAX_FILL: u64 = KEEP as u64;

/// A whole segment chosen from another pipeline.
#[derive(Debug, Clone)]
pub(crate) struct Selected {
    pub rendition: &'static str,
    pub msn: u64,
    pub data: Bytes,
    pub duration: f64,
    pub defects: Defects,
    /// Its first sample's decode time (the rendition's timescale) and wall clock: a
    /// segment the primary never produced is listed with them.
    pub start: u64,
    pub program_date_time: SystemTime,
    /// It fills a number the primary skipped (rather than replacing a segment the
    /// primary listed).
    pub fills: bool,
}

/// The locked backup's candidates and the primary's held segments of one channel.
#[derive(Debug)]
pub(crate) struct Selector {
    config: PackagerConfig,
    /// The backup's packager, while a locked backup stands by (or has just taken over
    /// and its candidates are still needed).
    packager: Option<Packager>,
    /// The backup took over: its frames come on the channel's feed now.
    on_main: bool,
    /// Newest decode time fed per track, so frames the takeover sends again (the
    /// backup's GOP) are not packaged twice.
    last_dts: HashMap<TrackId, i64>,
    /// The backup's segment in progress per rendition: number, first sample's decode
    /// time, and bytes so far.
    open: HashMap<&'static str, (u64, u64, BytesMut)>,
    done: HashMap<&'static str, VecDeque<Selected>>,
    /// The backup's newest init section per rendition.
    inits: HashMap<&'static str, Bytes>,
    /// The primary's `SegmentEnd`s held back, each with whether it was cut short by the
    /// primary's end (damage the packager does not flag: it ended where frames did).
    held: Vec<Held>,
    /// The primary's newest part number per rendition.
    last_part: HashMap<&'static str, u64>,
    /// Numbers the primary skipped, waiting for the backup's candidates.
    missing: Vec<(&'static str, u64)>,
    /// The primary's output from the skip on, while `missing` waits.
    queued: Vec<Output>,
}

/// A held `SegmentEnd`, and whether the primary's end cut it short.
type Held = (Output, bool);

/// What settling a held segment decided.
#[derive(Debug)]
pub(crate) struct Settled {
    /// The primary's `SegmentEnd`, to apply.
    pub end: Output,
    /// The backup's whole segment to serve instead, if it was chosen.
    pub selected: Option<Selected>,
}

impl Selector {
    pub fn new(config: PackagerConfig) -> Self {
        Self {
            config,
            packager: None,
            on_main: false,
            last_dts: HashMap::new(),
            open: HashMap::new(),
            done: HashMap::new(),
            inits: HashMap::new(),
            held: Vec::new(),
            last_part: HashMap::new(),
            missing: Vec::new(),
            queued: Vec::new(),
        }
    }

    /// An event of the standby feed.
    pub fn on_standby(&mut self, event: HubEvent) {
        match event {
            HubEvent::Stream(s) => {
                if !s.clock.is_epoch() {
                    // An unlocked backup cannot stand in for a segment: its times are
                    // its own.
                    self.packager = None;
                    return;
                }
                if self.packager.is_none() || self.on_main {
                    self.reset();
                    self.packager = Some(Packager::new(self.config));
                }
                self.feed(Input::Stream(s));
            }
            HubEvent::Frame(f) => {
                if !self.on_main {
                    self.feed_frame(f);
                }
            }
            // It left, or took over: the candidates stay until the takeover (if any)
            // is settled.
            HubEvent::Ended => {}
        }
    }

    /// A publish begins on the channel's own feed. If it is the locked backup taking
    /// over a locked primary whose segments are held, follow its frames there.
    pub fn on_main_publish(&mut self, stream: &Stream) {
        self.on_main = self.packager.is_some() && stream.clock.is_epoch() && !self.held.is_empty();
    }

    /// A frame of the channel's own feed (the new primary's).
    pub fn on_main_frame(&mut self, frame: &Frame) {
        if self.on_main {
            self.feed_frame(frame.clone());
        }
    }

    /// The primary's publish ended (`outputs` are its packager's last ones), with a
    /// locked clock: its last segments are held for the backup's candidates when a
    /// locked backup is being packaged. Returns what to apply now.
    pub fn hold(&mut self, outputs: Vec<Output>) -> Vec<Output> {
        if self.packager.is_none() {
            return outputs;
        }
        let (held, rest): (Vec<Output>, Vec<Output>) = outputs
            .into_iter()
            .partition(|o| matches!(o, Output::SegmentEnd { .. }));
        self.held.extend(held.into_iter().map(|o| (o, true)));
        rest
    }

    /// While both run: the primary's segments cut with a defect (short, no keyframe at
    /// the start, a time jump, a hole) are held for the backup's candidate of the same
    /// number, when a locked backup is being packaged. Returns what to apply now.
    pub fn hold_defective(&mut self, outputs: Vec<Output>) -> Vec<Output> {
        if self.packager.is_none() || self.on_main {
            return outputs;
        }
        let (held, rest): (Vec<Output>, Vec<Output>) = outputs
            .into_iter()
            .partition(|o| matches!(o, Output::SegmentEnd { defects, .. } if !defects.is_clean()));
        self.held.extend(held.into_iter().map(|o| (o, false)));
        rest
    }

    /// While both run: numbers the primary skipped are waited for (see the module
    /// docs). Returns what to apply now; the rest comes back from [`Self::settle`]'s
    /// caller through [`Self::released`].
    pub fn hold_missing(&mut self, outputs: Vec<Output>) -> Vec<Output> {
        let waiting = self.packager.is_some() && !self.on_main;
        let mut now = Vec::new();
        for out in outputs {
            if let Output::Part {
                rendition,
                msn,
                index,
                ..
            } = &out
            {
                let last = self.last_part.insert(rendition, *msn);
                let skipped = last.map_or(0, |l| msn.saturating_sub(l.saturating_add(1)));
                if waiting && skipped > 0 && skipped <= MAX_FILL {
                    let from = msn - skipped;
                    self.missing.extend((from..*msn).map(|n| (*rendition, n)));
                } else if *index > 0
                    && self
                        .missing
                        .iter()
                        .any(|(r, n)| r == rendition && *n < *msn)
                {
                    // The next part after the hole: the candidates are too late.
                    self.missing.clear();
                }
            }
            if self.missing.is_empty() && self.queued.is_empty() {
                now.push(out);
            } else {
                self.queued.push(out);
            }
        }
        if self.missing.is_empty() {
            now.append(&mut self.queued);
        }
        now
    }

    /// The primary's output that waited for candidates, once nothing is missing any
    /// more (filled, or given up on).
    pub fn released(&mut self) -> Vec<Output> {
        if self.missing.is_empty() {
            std::mem::take(&mut self.queued)
        } else {
            Vec::new()
        }
    }

    /// The held segments that a candidate now decides. `init` is the init section the
    /// channel lists for a rendition now: a candidate made with another one cannot
    /// replace a segment listed under it.
    pub fn settle(&mut self, init: impl Fn(&str) -> Option<Bytes>) -> Vec<Settled> {
        if self.held.is_empty() && self.missing.is_empty() {
            // The common case, asked on every frame of the channel.
            return Vec::new();
        }
        let same_init = |inits: &HashMap<&'static str, Bytes>, rendition: &str| {
            inits
                .get(rendition)
                .is_some_and(|b| init(rendition).as_ref() == Some(b))
        };
        let mut settled = Vec::new();
        let mut keep = Vec::new();
        for (end, cut_short) in std::mem::take(&mut self.held) {
            let Output::SegmentEnd {
                rendition,
                msn,
                defects,
                ..
            } = &end
            else {
                continue;
            };
            let candidate = self
                .done
                .get(rendition)
                .and_then(|d| d.iter().find(|c| c.msn == *msn))
                .cloned();
            match candidate {
                Some(c) => {
                    let same_init = same_init(&self.inits, rendition);
                    // The less damaged one; the primary's on a tie, so that its parts
                    // and its segment agree.
                    // (Ranked by severity; cut short by its end is as bad as short.)
                    let primary = defects.severity() + u8::from(cut_short);
                    let selected = (same_init && c.defects.severity() < primary).then_some(c);
                    settled.push(Settled { end, selected });
                }
                None => keep.push((end, cut_short)),
            }
        }
        self.held = keep;
        // Skipped numbers, in order, each once no held segment before it waits (the
        // rendition's list must reach a number before the one after it is listed).
        let mut missing = std::mem::take(&mut self.missing);
        missing.sort_unstable();
        let mut waiting = Vec::new();
        for (rendition, msn) in missing {
            let blocked = self.held.iter().any(|(o, _)| {
                matches!(o, Output::SegmentEnd { rendition: r, msn: n, .. } if *r == rendition && *n < msn)
            }) || waiting.iter().any(|(r, _)| *r == rendition);
            let candidate = self
                .done
                .get(rendition)
                .and_then(|d| d.iter().find(|c| c.msn == msn));
            match candidate {
                Some(c) if !blocked => {
                    if same_init(&self.inits, rendition) {
                        settled.push(Settled {
                            end: Output::SegmentEnd {
                                rendition,
                                msn,
                                duration: c.duration,
                                program_date_time: c.program_date_time,
                                discontinuity: false,
                                defects: c.defects,
                            },
                            selected: Some(Selected {
                                fills: true,
                                ..c.clone()
                            }),
                        });
                    }
                    // (Under another init section it cannot be listed: a gap.)
                }
                // The backup is past that number without a segment of it: a gap.
                None if self.passed(rendition, msn) => {}
                _ => waiting.push((rendition, msn)),
            }
        }
        self.missing = waiting;
        self.finish_if_settled();
        settled
    }

    /// Whether the backup's packager is past segment `msn` of `rendition` without a
    /// candidate of it.
    fn passed(&self, rendition: &str, msn: u64) -> bool {
        let newest = self
            .done
            .get(rendition)
            .and_then(|d| d.back().map(|c| c.msn))
            .into_iter()
            .chain(self.open.get(rendition).map(|o| o.0))
            .max();
        newest.is_some_and(|n| n > msn)
    }

    /// Held segments that can wait no longer: `outputs` are about to list a later
    /// segment of their rendition. They keep the primary's bytes.
    pub fn overdue(&mut self, outputs: &[Output]) -> Vec<Output> {
        if self.held.is_empty() {
            return Vec::new();
        }
        let later = |r: &str, n: u64| {
            outputs.iter().any(
                |o| matches!(o, Output::Part { rendition, msn, .. } if *rendition == r && *msn > n),
            )
        };
        let (overdue, keep): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(o, _)| match o {
                Output::SegmentEnd { rendition, msn, .. } => later(rendition, *msn),
                _ => true,
            });
        self.held = keep;
        self.finish_if_settled();
        overdue.into_iter().map(|(o, _)| o).collect()
    }

    /// Everything still held (the run ends): the primary's own, skipped numbers as
    /// gaps.
    pub fn release(&mut self) -> Vec<Output> {
        let held = std::mem::take(&mut self.held);
        self.missing.clear();
        let queued = std::mem::take(&mut self.queued);
        self.last_part.clear();
        self.finish_if_settled();
        held.into_iter().map(|(o, _)| o).chain(queued).collect()
    }

    fn finish_if_settled(&mut self) {
        if self.held.is_empty() && self.missing.is_empty() && self.on_main {
            // The takeover is settled; the next standby brings its own packager.
            self.on_main = false;
            self.packager = None;
        }
    }

    fn reset(&mut self) {
        self.on_main = false;
        self.last_dts.clear();
        self.open.clear();
        self.done.clear();
        self.inits.clear();
    }

    fn feed_frame(&mut self, frame: Frame) {
        let last = self.last_dts.entry(frame.track).or_insert(i64::MIN);
        if frame.dts <= *last {
            return;
        }
        *last = frame.dts;
        self.feed(Input::Frame(frame));
    }

    fn feed(&mut self, input: Input) {
        let Some(p) = self.packager.as_mut() else {
            return;
        };
        for out in p.push(input) {
            match out {
                Output::Init { rendition, init } => {
                    self.inits.insert(rendition.name, init);
                }
                Output::Part {
                    rendition,
                    msn,
                    start,
                    data,
                    ..
                } => {
                    let open = self
                        .open
                        .entry(rendition)
                        .or_insert_with(|| (msn, start, BytesMut::new()));
                    if open.0 != msn {
                        *open = (msn, start, BytesMut::new());
                    }
                    open.2.extend_from_slice(&data);
                }
                Output::SegmentEnd {
                    rendition,
                    msn,
                    duration,
                    defects,
                    program_date_time,
                    ..
                } => {
                    let Some((n, start, bytes)) = self.open.remove(rendition) else {
                        continue;
                    };
                    if n != msn {
                        continue;
                    }
                    let done = self.done.entry(rendition).or_default();
                    if done.len() >= KEEP {
                        done.pop_front();
                    }
                    done.push_back(Selected {
                        rendition,
                        msn,
                        data: bytes.freeze(),
                        duration,
                        defects,
                        start,
                        program_date_time,
                        fills: false,
                    });
                }
                Output::Sample(_) | Output::Ended => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::Arc,
        time::{Duration, UNIX_EPOCH},
    };

    use starling_media::{h264::AvcConfig, CodecConfig, SourceClock, Track};

    use super::*;

    /// 2026-12-06T12:00:00.5Z in ms: a source started half a second past a boundary.
    const START_MS: i64 = 1_796_558_400_500;

    fn config() -> PackagerConfig {
        PackagerConfig {
            segment_duration: Duration::from_secs(2),
            part_duration: Duration::from_millis(500),
        }
    }

    fn hex(s: &str) -> Bytes {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<_>>()
            .into()
    }

    fn stream() -> Arc<Stream> {
        let avc = AvcConfig::from_parameter_sets(
            &[hex("6742c00dd90141fb011000000300100000030320f142a480")],
            &[hex("68cb83cb20")],
        )
        .unwrap();
        Arc::new(Stream {
            tracks: vec![Track {
                id: TrackId(1),
                timescale: 1000,
                config: CodecConfig::H264(avc),
            }],
            metadata: Vec::new(),
            clock: SourceClock::RTMP_EPOCH,
        })
    }

    /// Frame `i` of one 30 fps source with a keyframe every 2 s, epoch-stamped.
    fn frame(i: usize) -> Frame {
        let ms = START_MS + (i as f64 * 1000.0 / 30.0).round() as i64;
        let keyframe = i.checked_rem(60) == Some(0);
        let mut data = BytesMut::new();
        data.extend_from_slice(&[0, 0, 0, 5, if keyframe { 0x65 } else { 0x41 }]);
        data.extend_from_slice(&(i as u32).to_be_bytes());
        Frame {
            track: TrackId(1),
            pts: ms,
            dts: ms,
            keyframe,
            data: data.freeze(),
            arrival: UNIX_EPOCH + Duration::from_millis((ms + 300) as u64),
        }
    }

    /// The primary: frames `0..n`, then its end; its init and its last outputs.
    fn primary(n: usize) -> (Bytes, Vec<Output>) {
        let mut p = Packager::new(config());
        let mut init = Bytes::new();
        for o in p.push(Input::Stream(stream())) {
            if let Output::Init { init: i, .. } = o {
                init = i;
            }
        }
        for i in 0..n {
            p.push(Input::Frame(frame(i)));
        }
        (init, p.push(Input::End))
    }

    fn held_msn(outputs: &[Output]) -> u64 {
        outputs
            .iter()
            .find_map(|o| match o {
                Output::SegmentEnd { msn, .. } => Some(*msn),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn the_backups_clean_candidate_replaces_the_segment_the_primary_stopped_in() {
        let mut sel = Selector::new(config());
        sel.on_standby(HubEvent::Stream(stream()));
        // The primary dies 7.5 s in, a second into the segment its 6 s keyframe began.
        let (init, last) = primary(225);
        let n = held_msn(&last);
        let rest = sel.hold(last);
        assert!(rest.iter().all(|o| !matches!(o, Output::SegmentEnd { .. })));
        // No candidate yet: nothing settles.
        assert!(sel.settle(|_| Some(init.clone())).is_empty());
        // The backup's frames reach the next keyframe (8 s): its segment n is complete.
        for i in 0..=240 {
            sel.on_standby(HubEvent::Frame(frame(i)));
        }
        let settled = sel.settle(|_| Some(init.clone()));
        assert_eq!(settled.len(), 1);
        let chosen = settled[0].selected.as_ref().expect("the backup's segment");
        assert_eq!(chosen.msn, n);
        assert!((chosen.duration - 2.0).abs() < 0.01, "{}", chosen.duration);
        let Output::SegmentEnd { duration, .. } = &settled[0].end else {
            unreachable!()
        };
        assert!(*duration < 1.6, "the primary's was cut short: {duration}");
        assert!(sel.release().is_empty());
    }

    #[test]
    fn a_candidate_under_another_init_section_keeps_the_primarys_segment() {
        let mut sel = Selector::new(config());
        sel.on_standby(HubEvent::Stream(stream()));
        for i in 0..=240 {
            sel.on_standby(HubEvent::Frame(frame(i)));
        }
        let (_, last) = primary(225);
        sel.hold(last);
        let settled = sel.settle(|_| Some(Bytes::from_static(b"another init")));
        assert_eq!(settled.len(), 1);
        assert!(settled[0].selected.is_none());
    }

    #[test]
    fn a_held_segment_waits_no_later_than_the_next_segment_of_its_rendition() {
        let mut sel = Selector::new(config());
        sel.on_standby(HubEvent::Stream(stream()));
        let (_, last) = primary(225);
        let n = held_msn(&last);
        sel.hold(last);
        let next = Output::Part {
            rendition: starling_packager::VIDEO_RENDITION,
            msn: n + 1,
            index: 0,
            duration: 0.5,
            independent: true,
            start: 0,
            data: Bytes::new(),
            first_arrival: UNIX_EPOCH,
            discontinuity: false,
        };
        let overdue = sel.overdue(&[next]);
        assert_eq!(overdue.len(), 1);
        assert_eq!(held_msn(&overdue), n);
        assert!(sel.release().is_empty());
    }

    #[test]
    fn while_both_run_a_defective_segment_is_served_from_the_backup() {
        let mut sel = Selector::new(config());
        sel.on_standby(HubEvent::Stream(stream()));
        for i in 0..300 {
            sel.on_standby(HubEvent::Frame(frame(i)));
        }
        // The primary lost 0.7 s of frames in its third segment: a hole.
        let mut p = Packager::new(config());
        let mut applied = Vec::new();
        let mut settled = Vec::new();
        for input in std::iter::once(Input::Stream(stream())).chain(
            (0..300)
                .filter(|i| !(130..150).contains(i))
                .map(|i| Input::Frame(frame(i))),
        ) {
            let outputs = sel.hold_defective(p.push(input));
            settled.extend(sel.settle(|_| {
                applied.iter().find_map(|o| match o {
                    Output::Init { init, .. } => Some(Bytes::clone(init)),
                    _ => None,
                })
            }));
            assert!(
                sel.overdue(&outputs).is_empty(),
                "settled before the next part"
            );
            applied.extend(outputs);
        }
        assert_eq!(settled.len(), 1, "{settled:?}");
        let Output::SegmentEnd { defects, msn, .. } = &settled[0].end else {
            unreachable!()
        };
        assert!(defects.hole, "{defects:?}");
        let chosen = settled[0].selected.as_ref().expect("the backup's");
        assert_eq!(chosen.msn, *msn);
        assert!(chosen.defects.is_clean());
        // Clean segments were never held.
        let ends = applied
            .iter()
            .filter(|o| matches!(o, Output::SegmentEnd { .. }))
            .count();
        assert!(ends >= 3, "{ends}");
    }

    /// Runs the primary's inputs through the selector as the channel's task does,
    /// with the backup's frames `backup` fed on the standby feed just before the
    /// primary's frame of the same index; returns what was applied, in order, with the
    /// settled segments as `(end, chosen)`.
    fn run(primary: impl Fn(usize) -> bool, backup: impl Fn(usize) -> bool) -> Vec<Applied> {
        let mut sel = Selector::new(config());
        sel.on_standby(HubEvent::Stream(stream()));
        let mut p = Packager::new(config());
        let mut applied: Vec<Applied> = Vec::new();
        let init = |applied: &[Applied]| {
            applied.iter().find_map(|a| match a {
                Applied::Output(Output::Init { init, .. }) => Some(Bytes::clone(init)),
                _ => None,
            })
        };
        let settle = |sel: &mut Selector, applied: &mut Vec<Applied>| {
            let i = init(applied);
            for s in sel.settle(|_| i.clone()) {
                applied.push(Applied::Settled(s));
            }
            let released = sel.released();
            let overdue = sel.overdue(&released);
            applied.extend(overdue.into_iter().map(Applied::Output));
            applied.extend(released.into_iter().map(Applied::Output));
        };
        let inputs = std::iter::once((0, Input::Stream(stream()))).chain(
            (0..420)
                .filter(|i| primary(*i))
                .map(|i| (i, Input::Frame(frame(i)))),
        );
        let mut fed = 0;
        for (i, input) in inputs {
            while fed <= i {
                if backup(fed) {
                    sel.on_standby(HubEvent::Frame(frame(fed)));
                    settle(&mut sel, &mut applied);
                }
                fed += 1;
            }
            let outputs = sel.hold_defective(p.push(input));
            let outputs = sel.hold_missing(outputs);
            settle(&mut sel, &mut applied);
            let overdue = sel.overdue(&outputs);
            applied.extend(overdue.into_iter().map(Applied::Output));
            applied.extend(outputs.into_iter().map(Applied::Output));
        }
        applied.extend(sel.release().into_iter().map(Applied::Output));
        applied
    }

    #[derive(Debug)]
    enum Applied {
        Output(Output),
        Settled(Settled),
    }

    /// The video segments as applied: number, whether the backup's copy, its defects.
    fn video_segments(applied: &[Applied]) -> Vec<(u64, bool, Defects)> {
        applied
            .iter()
            .filter_map(|a| {
                let (end, chosen) = match a {
                    Applied::Output(o) => (o, None),
                    Applied::Settled(s) => (&s.end, s.selected.as_ref()),
                };
                match end {
                    Output::SegmentEnd {
                        rendition,
                        msn,
                        defects,
                        ..
                    } if *rendition == starling_packager::VIDEO_RENDITION => Some((
                        *msn,
                        chosen.is_some(),
                        chosen.map_or(*defects, |c| c.defects),
                    )),
                    _ => None,
                }
            })
            .collect()
    }

    #[test]
    fn a_segment_the_primary_never_produced_is_the_backups() {
        // The primary loses 2 s of frames (60..120): a whole segment of the grid.
        let applied = run(|i| !(60..120).contains(&i), |_| true);
        let segments = video_segments(&applied);
        let numbers: Vec<u64> = segments.iter().map(|s| s.0).collect();
        let first = numbers[0];
        assert_eq!(
            numbers,
            (first..first + numbers.len() as u64).collect::<Vec<_>>(),
            "consecutive, in order: {segments:?}"
        );
        // The missing number is the backup's; the segment after it, which the primary
        // opened with a time jump, too; everything is clean.
        assert!(segments[1].1 && segments[2].1, "{segments:?}");
        assert!(segments.iter().all(|s| s.2.is_clean()), "{segments:?}");
        // The primary's parts of the segment after the hole came after the fill.
        let fill = applied
            .iter()
            .position(|a| matches!(a, Applied::Settled(s) if s.selected.as_ref().is_some_and(|c| c.msn == first + 1)))
            .unwrap();
        let part = applied
            .iter()
            .position(
                |a| matches!(a, Applied::Output(Output::Part { msn, .. }) if *msn == first + 2),
            )
            .unwrap();
        assert!(fill < part);
    }

    #[test]
    fn a_missing_number_no_candidate_fills_in_time_is_left_to_the_gaps() {
        // The backup is down too while the primary loses its frames.
        let applied = run(|i| !(60..120).contains(&i), |i| !(50..130).contains(&i));
        let segments = video_segments(&applied);
        assert!(
            segments.iter().all(|s| !s.1 || s.0 > segments[0].0 + 2),
            "{segments:?}"
        );
        let numbers: Vec<u64> = segments.iter().map(|s| s.0).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
        assert!(
            numbers.windows(2).any(|w| w[1] == w[0] + 2),
            "a hole: {numbers:?}"
        );
    }

    #[test]
    fn with_both_copies_damaged_the_less_damaged_is_served() {
        // A hole in the primary's third segment (130..150), and the backup lost the
        // start of that segment's second half and more (135..165): the backup's copy
        // has a hole too, so the primary's is kept (the tie goes to the primary).
        let applied = run(|i| !(130..150).contains(&i), |i| !(135..165).contains(&i));
        let segments = video_segments(&applied);
        let third = segments
            .iter()
            .find(|s| !s.2.is_clean())
            .expect("a damaged one");
        assert!(!third.1, "{segments:?}");
        assert!(third.2.hole, "{segments:?}");
    }

    #[test]
    fn an_unlocked_backup_is_not_packaged_and_nothing_is_held() {
        let mut sel = Selector::new(config());
        let mut s = (*stream()).clone();
        s.clock = SourceClock::Relative;
        sel.on_standby(HubEvent::Stream(Arc::new(s)));
        let (_, last) = primary(225);
        let count = last.len();
        assert_eq!(sel.hold(last).len(), count);
    }
}
