//! The segmenter: one channel's hub events in, CMAF init segments, LL-HLS parts and
//! segments out, for each rendition. Sans-IO: no tokio, no clock reads; wall-clock time
//! only ever comes from frames' `arrival`.
//!
//! ```
//! use starling_packager::{Input, Output, Packager, PackagerConfig};
//! let mut packager = Packager::new(PackagerConfig::default());
//! // for each starling_hub::HubEvent: Stream(s) → Input::Stream(s), Frame(f) →
//! // Input::Frame(f), Ended → Input::End
//! for output in packager.push(Input::End) {
//!     match output {
//!         Output::Init { .. } | Output::Part { .. } | Output::SegmentEnd { .. } => { /* to the store */ }
//!         Output::Ended => { /* the publish is over; the packager may be fed a new one */ }
//!         Output::Sample(_) => { /* only with `set_tap`: the transcoder's feed */ }
//!     }
//! }
//! ```
//!
//! # Renditions
//! One CMAF track per rendition: the stream's video track is rendition `"source"`
//! (90 kHz), its audio track rendition `"audio"` (AAC: the sample rate; Opus: 48 kHz).
//!
//! # The ladder: the tap and followers
//! With [`Packager::set_tap`], every video sample packaged is also given out as an
//! [`Output::Sample`]: its media time, composition offset, keyframe flag and segment.
//! A transcoder encodes rungs from those, with keyframes exactly where the source has
//! them, and packages each rung with a [`Packager::follower`]: its frames' times are
//! media times already (no origin of its own, the followed `availability_start`), its
//! first segment gets the number of the followed segment starting at its first
//! keyframe, and it cuts by the same rule. Same times and same keyframes give the same
//! segments as the source, whatever the source's GOP. Rung names other than the two
//! built-in ones are interned ([`rendition_name`]).
//!
//! # Timing
//! Media time 0 is the decode time of the first frame packaged; it maps to the wall clock
//! through [`Packager::availability_start`], the arrival of that frame.
//! - Video times are converted exactly (rounding half away from zero) and follow the
//!   `starling_cmaf` rule for B-frames: `D = pts − dts` of the first keyframe packaged is
//!   kept for the rendition's life; decode time = `dts + D`, `cts_offset = pts − dts − D`
//!   (signed: negative composition offsets are kept, never clamped, so B-frames of a
//!   source with negative CTS keep their presentation order). Media time 0 is the
//!   first frame's *presentation* when it presents before it decodes.
//! - AAC sample times are counted (`samples_per_frame` from the AudioSpecificConfig) from
//!   the first frame's converted time, so millisecond timestamps do not jitter the
//!   durations. When a frame's converted time is more than 1.5 frame durations *later*
//!   than the count (a gap in the source), the count resyncs to it; the gap is a hole in
//!   the timeline (the frame before it keeps its 1024 samples, the next fragment's
//!   `tfdt` is later). A frame more than 1.5 frames *earlier* than the count (the
//!   source sends more audio than its clock covers) is dropped, which brings the count
//!   back ([`Packager::audio_resyncs`]): drift is corrected both ways.
//! - Opus times are the converted timestamps at 48 kHz.
//! - Clock jumps (see the `timeline` module): a decode time more than 500 ms earlier
//!   than the track expected, or more than the maximum segment duration past the newest
//!   time of any track, rebases the track so the frame continues the timeline, and the
//!   next segment of both renditions (the same number) is a discontinuity
//!   ([`Packager::timestamp_jumps`]). The other track follows the new offset with its
//!   next frame, so the two stay aligned. A track silent for a while that comes back in
//!   step with the other is a gap, not a jump.
//! - A decode time not after the previous one (jitter under the jump tolerance) is
//!   clamped to previous + 1 and counted ([`Packager::clamped_timestamps`]); durations
//!   are never negative.
//!
//! # Segments: the epoch rule
//! Segment `n` nominally spans `[n × D, (n + 1) × D)` of media time. The video rendition
//! ends segment `n` at the first keyframe whose time is ≥ `(n + 1) × D − ε` (ε = half
//! the last frame interval, to absorb millisecond rounding). With keyframes every `D` (or
//! a divisor of `D`) every segment starts exactly on the grid, so two pipelines given the
//! same source cut the same segments.
//!
//! When GOPs are longer than `D`, a segment stretches to the next keyframe at or past its
//! nominal end and numbering stays consecutive, but never past the maximum segment
//! duration ([`PackagerConfig::max_segment_duration`], `1.5 × D` in whole seconds, the
//! playlists' fixed TARGETDURATION): there the segment is cut without a keyframe (its
//! first part is not independent). Intra-refresh sources, which never send a keyframe,
//! are started after one maximum of waiting and then cut the same way.
//!
//! The audio rendition follows the video's cuts so both carry the same numbers with
//! near-equal durations: it ends segment `n` at the audio frame boundary *nearest* the
//! video's cut (the first frame starting at or after `cut − half an audio frame`), which
//! keeps the two within half an audio frame per boundary (cutting at the first frame
//! at or after the cut would allow a whole frame). Audio frames that may belong past the
//! cut are held back until the video has decided it; frames not later than the video's
//! newest frame cannot be past its next cut and are released at once, so the hold-back
//! is only the interleaving skew. If the video stalls (held audio spans more than `D`),
//! the audio cuts on the nominal grid by itself until video frames flow again. If audio
//! is missing for a whole video segment, the audio rendition has no segment of that
//! number (numbers stay aligned with the video rather than consecutive).
//!
//! Audio-only streams cut at the first frame at or past the nominal boundary (minus
//! half a frame), with a segment at least one part long. Video-only streams need nothing
//! special.
//!
//! # Parts
//! A part closes before the sample that would make it longer than the part target (so
//! every part is ≤ the target, as LL-HLS requires; a sample's duration is capped at the
//! target, so a timestamp gap becomes a hole in the timeline), and always at a segment
//! boundary. The first part of a segment
//! carries `styp` and `prft` (NTP time of its first sample's arrival, media time its
//! decode time). A part is emitted as soon as it is decidable: normally when the frame
//! after its last sample arrives (that frame's arrival tells the last sample's duration
//! and, with the last frame interval as an estimate of its own duration, that it does not
//! fit). So a frame waits at most one part target plus one frame interval.
//!
//! # Stream changes and republishing
//! A `Stream` whose codec config for a rendition differs closes that rendition's part and
//! segment, emits a new [`Output::Init`] and marks its next segment `discontinuity`. The
//! same config is ignored. [`Input::End`] flushes everything (the last sample lasts one
//! frame interval), then [`Output::Ended`]. A later publish continues the numbering
//! (its first segments are discontinuities) and its media time starts where the grid
//! expects its first segment, `next_msn × D` (or at the end of the previous publish if
//! stretched segments went past that), so its segments sit on the grid again; the media
//! time between the previous end and that boundary is a gap at the discontinuity. An
//! `Init` is emitted again only if the config changed. Program date
//! times are the arrival of each segment's first frame, never derived from media time, so
//! they stay true across republishes.
//!
//! # The epoch lock
//! A publish whose [`Stream::clock`] is epoch time is mapped by that clock instead (the
//! `lock` module): media time is time since 1970, numbers are the grid's, program date
//! times are media time, and a locked publish after another continues its timeline
//! (seamless when it starts where that one ended, one discontinuity otherwise).
//!
//! # Memory
//! Per rendition: one part's samples, the newest sample, and (audio) the hold-back.
//! Payloads stay `Bytes` until the CMAF writer copies them once into the fragment.
//!
//! This crate must never do I/O, spawn tasks or read a clock.

mod audio;
mod error;
mod lock;
mod model;
mod names;
mod segmenter;
mod time;
mod timeline;

use std::{
    collections::VecDeque,
    time::{Duration, SystemTime},
};

use starling_cmaf::init_segment;
use starling_media::{CodecConfig, Frame, SourceClock, Stream, Track, TrackId, TrackKind};

pub use error::PackagerError;
use lock::LockFloor;
use model::rendition_info;
pub use model::{Defects, Input, Output, PackagerConfig, RenditionInfo, Sample};
pub use names::{
    rendition_name, valid_rendition_name, MAX_RENDITION_NAMES, MAX_RENDITION_NAME_LEN,
};
use segmenter::{Limits, Segmenter, Tail};
use time::{at_or_after_ns, ns_to_ticks, ticks_to_ns, Origin};
use timeline::Timeline;

/// Name of the rendition carrying the stream's video track.
pub const VIDEO_RENDITION: &str = "source";
/// Name of the rendition carrying the stream's audio track.
pub const AUDIO_RENDITION: &str = "audio";
/// Name of the vertical (9:16) rendition a reframed channel's ladder adds: not a rung
/// of the ladder players switch among, but the video of its own multivariant playlist
/// and MPD (`/live/{channel}/vertical/`).
pub const VERTICAL_RENDITION: &str = "portrait";
/// Timescale of every video rendition.
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Timescale of Opus renditions (Opus always decodes at 48 kHz).
pub const OPUS_TIMESCALE: u32 = 48_000;

/// Video cuts the audio has not reached yet; past this the oldest are forgotten (only an
/// audio track that sends nothing for this many segments gets there).
const MAX_PENDING_CUTS: usize = 1024;
/// Audio frames held back for a video cut, at most; past this the video counts as
/// stalled (the time span check alone would let clamped, 1-tick-apart frames pile up).
const MAX_HELD_AUDIO_FRAMES: usize = 1024;
/// Frame interval assumed for video before two frames have been seen (30 fps).
const DEFAULT_VIDEO_INTERVAL: i64 = 3000;
/// Opus packet duration assumed before two packets have been seen (20 ms at 48 kHz).
const DEFAULT_OPUS_INTERVAL: i64 = 960;

/// The source track feeding a rendition in the current publish.
#[derive(Debug, Clone, Copy)]
struct Source {
    id: TrackId,
    timescale: u32,
}

/// One rendition, for the packager's whole life (its numbering, `mfhd` sequence and
/// timestamp clamp survive republishes); `source` is set while a track feeds it.
#[derive(Debug)]
struct Rendition {
    name: &'static str,
    seg: Segmenter,
    source: Option<Source>,
    /// Output timescale of the current config.
    timescale: u32,
    /// Config of the last Init emitted.
    last_config: Option<CodecConfig>,
    /// Number of the open segment, or of the next one to open.
    msn: u64,
    /// The next segment to open is a discontinuity.
    discontinuity: bool,
    /// A segment was ever opened (so a restart is a discontinuity).
    ever_opened: bool,
    /// Video: frames are dropped until a keyframe.
    waiting_keyframe: bool,
    /// Video: `pts − dts` of the first keyframe packaged, kept for the rendition's life.
    shift: Option<i64>,
    /// Last decode time (video: before the shift), for the monotonic clamp.
    last_dts: Option<i64>,
    /// Last frame interval: the duration estimate of the newest sample.
    interval: i64,
    /// Video: time of the newest sample packaged in this publish.
    last_time: Option<i64>,
    /// AAC: samples per frame (the count that derives sample times).
    samples_per_frame: Option<i64>,
    /// AAC: counted start of the next frame.
    counted_next: Option<i64>,
    /// Audio: timed frames waiting for the video to decide a cut.
    held: VecDeque<Tail>,
    /// Audio: the video has not kept up; cut on the nominal grid alone.
    stalled: bool,
    /// End of the last sample flushed (output timescale).
    end: Option<i64>,
    /// Offset (ns) of the source clock after jumps (see [`timeline`]).
    offset_ns: i128,
    /// Where the next frame's decode time (before the shift) is expected, in this
    /// publish; `None` before its first frame.
    expected: Option<i64>,
    /// Segments numbered from this one on start with a discontinuity (a clock jump).
    discontinuity_from: Option<u64>,
    /// Video: source decode time of the first frame dropped while waiting for a
    /// keyframe (an intra-refresh source may never send one).
    waiting_since: Option<i64>,
}

impl Rendition {
    fn new(name: &'static str, kind: TrackKind) -> Self {
        Self {
            name,
            seg: Segmenter::new(name),
            source: None,
            timescale: if kind == TrackKind::Video {
                VIDEO_TIMESCALE
            } else {
                OPUS_TIMESCALE
            },
            last_config: None,
            msn: 0,
            discontinuity: false,
            ever_opened: false,
            waiting_keyframe: true,
            shift: None,
            last_dts: None,
            interval: DEFAULT_VIDEO_INTERVAL,
            last_time: None,
            samples_per_frame: None,
            counted_next: None,
            held: VecDeque::new(),
            stalled: false,
            end: None,
            offset_ns: 0,
            expected: None,
            discontinuity_from: None,
            waiting_since: None,
        }
    }

    /// Whether the segment about to open (number `self.msn`) is a discontinuity.
    fn take_discontinuity(&mut self) -> bool {
        let jumped = self.discontinuity_from.is_some_and(|d| self.msn >= d);
        if jumped {
            self.discontinuity_from = None;
        }
        std::mem::take(&mut self.discontinuity) || jumped
    }

    fn eps(&self) -> i64 {
        self.interval / 2
    }

    /// The smallest decode time (before the shift) the next sample may have.
    fn floor(&self) -> i64 {
        self.last_dts.map_or(0, |l| l.saturating_add(1)).max(0)
    }
}

/// The segmenter of one channel (see the crate docs).
#[derive(Debug)]
pub struct Packager {
    config: PackagerConfig,
    segment_ns: i128,
    part_ns: i128,
    video: Rendition,
    audio: Rendition,
    /// Source-to-media time mapping of the current publish, set by its first frame.
    origin: Option<Origin>,
    /// Media time (ns) at which the next publish starts.
    base_ns: i128,
    availability_start: Option<SystemTime>,
    /// One past the highest segment number closed.
    next_msn: u64,
    /// Video cuts (segment number, time at 90 kHz) the audio has not reached.
    cuts: VecDeque<(u64, i64)>,
    dropped: u64,
    clamped: u64,
    /// AAC frames dropped because the count ran ahead of the source clock.
    resynced: u64,
    last_error: Option<PackagerError>,
    /// Where frames go after source clock jumps.
    timeline: Timeline,
    /// The longest segment, in ns (see [`PackagerConfig::max_segment_duration`]).
    max_segment_ns: i128,
    /// Emit [`Output::Sample`] for every sample.
    tap: bool,
    /// A follower's frames are on the media timeline already (see [`Self::follower`]).
    pinned: bool,
    /// What the current publish's timestamps count from (its first `Stream` said).
    clock: SourceClock,
    /// The current publish is on the epoch grid (its clock was epoch and believable).
    locked: bool,
    /// The previous publish was on the epoch grid.
    last_locked: bool,
    /// Media times (ns) below which a locked publish's frames fall in segments already
    /// closed (a backup taking over sends from its last keyframe): dropped.
    lock_floor_ns: Option<LockFloor>,
    /// Publishes that said `epoch` but whose clock was too far from their arrival.
    lock_refused: u64,
}

/// Where a follower packager joins the timeline of the packager it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Follow {
    /// The followed packager's [`Packager::availability_start`].
    pub availability_start: SystemTime,
    /// The number of the first segment it will cut (the followed segment that starts at
    /// the time of its first keyframe).
    pub first_msn: u64,
    /// Its first segment is a discontinuity (it follows a gap in this rendition).
    pub discontinuity: bool,
}

impl Packager {
    pub fn new(config: PackagerConfig) -> Self {
        let ns = |d: Duration| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX);
        Self {
            segment_ns: ns(config.segment_duration),
            part_ns: ns(config.part_duration),
            config,
            video: Rendition::new(VIDEO_RENDITION, TrackKind::Video),
            audio: Rendition::new(AUDIO_RENDITION, TrackKind::Audio),
            origin: None,
            base_ns: 0,
            availability_start: None,
            next_msn: 0,
            cuts: VecDeque::new(),
            dropped: 0,
            clamped: 0,
            resynced: 0,
            last_error: None,
            timeline: Timeline::new(ns(config.max_segment_duration())),
            max_segment_ns: ns(config.max_segment_duration()),
            tap: false,
            pinned: false,
            clock: SourceClock::Relative,
            locked: false,
            last_locked: false,
            lock_floor_ns: None,
            lock_refused: 0,
        }
    }

    /// A packager for one rung of a ladder: its video rendition is named `name` and its
    /// frames' times are already on the followed packager's media timeline (at the
    /// track's timescale; media time 0 is time 0), as the [`Output::Sample`]s it was
    /// encoded from were. It cuts by the same rule on the same times, so with keyframes
    /// where the followed rendition has them its segment `n` starts where that one's
    /// does. `name` is `'static` like every rendition name (intern it once per name).
    pub fn follower(config: PackagerConfig, name: &'static str, follow: Follow) -> Self {
        let mut p = Self::new(config);
        p.video = Rendition::new(name, TrackKind::Video);
        p.video.ever_opened = follow.discontinuity;
        p.availability_start = Some(follow.availability_start);
        p.next_msn = follow.first_msn;
        p.pinned = true;
        p
    }

    /// Emit an [`Output::Sample`] for every sample packaged (a transcoder's feed).
    pub fn set_tap(&mut self, on: bool) {
        self.tap = on;
    }

    pub fn config(&self) -> &PackagerConfig {
        &self.config
    }

    /// Feeds one event; returns what it completed, in order.
    pub fn push(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Stream(stream) => self.on_stream(&stream, &mut out),
            Input::Frame(frame) => self.on_frame(frame, &mut out),
            Input::End => self.on_end(&mut out),
        }
        for r in [&mut self.video, &mut self.audio] {
            if let Some(source) = r.seg.last_error.take() {
                self.last_error = Some(PackagerError::Cmaf {
                    rendition: r.name,
                    source,
                });
            }
        }
        out
    }

    /// Wall-clock time of media time 0: the arrival of the first frame packaged, or the
    /// Unix epoch once a publish was locked to it (see the `lock` module).
    pub fn availability_start(&self) -> Option<SystemTime> {
        self.availability_start
    }

    /// Whether the current publish is numbered on the epoch grid.
    pub fn epoch_locked(&self) -> bool {
        self.locked
    }

    /// Publishes that said their clock was epoch time but whose clock was further than a
    /// minute from their arrival: packaged as relative publishes instead.
    pub fn epoch_lock_refused(&self) -> u64 {
        self.lock_refused
    }

    /// Frames not packaged: video before its first keyframe (after a start or a config
    /// change), frames of unknown tracks or before any `Stream`.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped
    }

    /// Timestamps that went backwards (or overlapped) and were clamped.
    pub fn clamped_timestamps(&self) -> u64 {
        self.clamped
    }

    /// Source clock jumps rebased (each one a discontinuity).
    pub fn timestamp_jumps(&self) -> u64 {
        self.timeline.jumps
    }

    /// AAC frames dropped to bring the sample count back to the source clock (included
    /// in [`Self::dropped_frames`]).
    pub fn audio_resyncs(&self) -> u64 {
        self.resynced
    }

    /// The last problem met (a rendition the CMAF writer refused, a fragment it could not
    /// write). Packaging carries on regardless.
    pub fn last_error(&self) -> Option<&PackagerError> {
        self.last_error.as_ref()
    }

    fn rendition(&mut self, kind: TrackKind) -> &mut Rendition {
        match kind {
            TrackKind::Video => &mut self.video,
            TrackKind::Audio => &mut self.audio,
        }
    }

    fn nominal_end(&self, msn: u64) -> i128 {
        i128::from(msn)
            .saturating_add(1)
            .saturating_mul(self.segment_ns)
    }

    fn closed(&mut self, msn: u64) {
        self.next_msn = self.next_msn.max(msn.saturating_add(1));
    }

    fn on_stream(&mut self, stream: &Stream, out: &mut Vec<Output>) {
        if self.video.source.is_none() && self.audio.source.is_none() && self.origin.is_none() {
            // A new publish: its clock decides its mapping at its first frame.
            self.clock = stream.clock;
        }
        for kind in [TrackKind::Video, TrackKind::Audio] {
            let track = match kind {
                TrackKind::Video => stream.video(),
                TrackKind::Audio => stream.audio(),
            };
            let r = self.rendition(kind);
            match (r.source.is_some(), track) {
                (true, Some(t)) if r.last_config.as_ref() == Some(&t.config) => {
                    if t.timescale != 0 {
                        r.source = Some(Source {
                            id: t.id,
                            timescale: t.timescale,
                        });
                    }
                }
                (true, Some(t)) => {
                    self.stop(kind, true, out);
                    let msn = self.rendition(kind).msn;
                    self.start(kind, t, msn, out);
                }
                (true, None) => self.stop(kind, true, out),
                (false, Some(t)) => {
                    let other = match kind {
                        TrackKind::Video => &self.audio,
                        TrackKind::Audio => &self.video,
                    };
                    let msn = if other.source.is_some() {
                        other.msn
                    } else {
                        self.next_msn
                    };
                    self.start(kind, t, msn, out);
                }
                (false, None) => {}
            }
        }
    }

    /// Starts feeding rendition `kind` from `track`, at segment `msn`.
    fn start(&mut self, kind: TrackKind, track: &Track, msn: u64, out: &mut Vec<Output>) {
        let part_ns = self.part_ns;
        let max_segment_ns = self.max_segment_ns;
        let segment_ns = self.segment_ns;
        let offset_ns = self.timeline.latest();
        let r = self.rendition(kind);
        if track.timescale == 0 {
            self.last_error = Some(PackagerError::ZeroTimescale {
                rendition: r.name,
                track: track.id.0,
            });
            return;
        }
        let (timescale, samples_per_frame, interval) = match &track.config {
            CodecConfig::H264(_) | CodecConfig::H265(_) => {
                (VIDEO_TIMESCALE, None, DEFAULT_VIDEO_INTERVAL)
            }
            CodecConfig::Aac(c) => {
                let spf = i64::from(c.samples_per_frame());
                (c.sample_rate, Some(spf), spf)
            }
            CodecConfig::Opus(_) => (OPUS_TIMESCALE, None, DEFAULT_OPUS_INTERVAL),
            // A codec this packager does not know: let the writer name it.
            _ => (VIDEO_TIMESCALE, None, DEFAULT_VIDEO_INTERVAL),
        };
        let output_track = Track {
            id: TrackId(starling_cmaf::TRACK_ID),
            timescale,
            config: track.config.clone(),
        };
        let init = match init_segment(&output_track) {
            Ok(init) => init,
            Err(source) => {
                let rendition = r.name;
                self.last_error = Some(PackagerError::Cmaf { rendition, source });
                return;
            }
        };
        if r.timescale != timescale {
            // Keep the clamp and the end on the new timescale.
            let old = r.timescale;
            let rescale = |t: i64| ns_to_ticks(ticks_to_ns(t, old), timescale);
            r.last_dts = r.last_dts.map(rescale);
            r.expected = r.expected.map(rescale);
            r.end = r.end.map(rescale);
            r.timescale = timescale;
        }
        if r.last_config.as_ref() != Some(&track.config) {
            out.push(Output::Init {
                rendition: rendition_info(r.name, &output_track),
                init,
            });
            r.last_config = Some(track.config.clone());
        }
        let part_target = ns_to_ticks(part_ns, timescale).max(1);
        // No sample may make a part longer than its target: a timestamp gap is cut to
        // the target (AAC: to its frame, whose length is fixed) and shows as a hole in
        // the timeline. Audio segments may pass the video's maximum by one frame, as
        // they end at the frame boundary nearest the video's cut.
        let max_sample = samples_per_frame.map_or(part_target, |spf| spf.min(part_target));
        let max_segment = ns_to_ticks(max_segment_ns, timescale).saturating_add(match kind {
            TrackKind::Video => 0,
            TrackKind::Audio => interval,
        });
        r.seg.set_track(
            output_track,
            Limits {
                part_target,
                max_sample,
                max_segment,
                short_below: ns_to_ticks(segment_ns / 2, timescale),
            },
        );
        if r.expected.is_none() {
            r.offset_ns = offset_ns;
        }
        r.source = Some(Source {
            id: track.id,
            timescale: track.timescale,
        });
        r.msn = msn;
        r.discontinuity = r.ever_opened;
        r.waiting_keyframe = kind == TrackKind::Video;
        r.interval = match (&track.config, kind) {
            (CodecConfig::H264(c), _) => c
                .fps
                .filter(|f| f.is_finite() && *f >= 1.0)
                .map_or(interval, |f| {
                    (f64::from(VIDEO_TIMESCALE) / f).round() as i64
                }),
            _ => interval,
        };
        r.samples_per_frame = samples_per_frame;
        r.counted_next = None;
        r.last_time = None;
        r.held.clear();
        r.stalled = false;
    }

    /// Flushes rendition `kind` and detaches it from its source. `push_cut`: the audio
    /// should treat the video's end as a segment boundary (a mid-publish change).
    fn stop(&mut self, kind: TrackKind, push_cut: bool, out: &mut Vec<Output>) {
        if kind == TrackKind::Audio {
            self.drain_audio(true, out);
        }
        let audio_active = self.audio.source.is_some();
        let r = self.rendition(kind);
        let estimate = r.interval;
        let mut closed = None;
        if let Some((msn, end)) = r.seg.flush(estimate, out) {
            r.msn = r.msn.saturating_add(1);
            r.end = Some(end);
            // The next sample starts no earlier than this one ended.
            let shift = r.shift.unwrap_or(0);
            r.last_dts = Some(end.saturating_sub(shift).saturating_sub(1));
            closed = Some((msn, end));
        }
        r.source = None;
        r.held.clear();
        r.counted_next = None;
        r.stalled = false;
        r.last_time = None;
        r.waiting_keyframe = true;
        if let Some((msn, end)) = closed {
            self.closed(msn);
            if kind == TrackKind::Video && push_cut && audio_active {
                self.push_cut(msn, end);
            }
        }
    }

    fn push_cut(&mut self, msn: u64, time: i64) {
        if self.cuts.len() >= MAX_PENDING_CUTS {
            self.cuts.pop_front();
        }
        self.cuts.push_back((msn, time));
    }

    fn on_end(&mut self, out: &mut Vec<Output>) {
        // The audio takes whatever it holds into its open segment: the video has no
        // segment after its last one.
        self.stop(TrackKind::Video, false, out);
        self.stop(TrackKind::Audio, false, out);
        self.cuts.clear();
        for r in [&self.video, &self.audio] {
            if let Some(end) = r.end {
                self.base_ns = self.base_ns.max(ticks_to_ns(end, r.timescale));
            }
        }
        // The next publish starts segment `next_msn` on its nominal start, unless
        // stretched segments already went past it.
        let grid = i128::from(self.next_msn).saturating_mul(self.segment_ns);
        self.base_ns = self.base_ns.max(grid);
        self.origin = None;
        self.last_locked = std::mem::take(&mut self.locked);
        self.lock_floor_ns = None;
        self.clock = SourceClock::Relative;
        self.timeline.reset();
        for r in [&mut self.video, &mut self.audio] {
            r.expected = None;
            r.offset_ns = 0;
        }
        out.push(Output::Ended);
    }

    /// The current publish's time mapping, set by its first packaged frame.
    fn origin(&mut self, frame: &Frame, timescale: u32) -> Origin {
        if let Some(o) = self.origin {
            return o;
        }
        // A first frame with a negative composition offset presents before it decodes:
        // media time 0 is its presentation, so no time is negative.
        let first = frame.dts.min(frame.pts);
        let o = if self.pinned {
            self.availability_start.get_or_insert(frame.arrival);
            Origin {
                ticks: 0,
                timescale,
                base_ns: 0,
            }
        } else if let Some(o) = self.lock(frame, first, timescale) {
            o
        } else {
            self.availability_start.get_or_insert(frame.arrival);
            Origin {
                ticks: first,
                timescale,
                base_ns: self.base_ns,
            }
        };
        self.origin = Some(o);
        o
    }

    fn on_frame(&mut self, frame: Frame, out: &mut Vec<Output>) {
        let is = |r: &Rendition| r.source.is_some_and(|s| s.id == frame.track);
        if is(&self.video) {
            self.video_frame(frame, out);
        } else if is(&self.audio) {
            self.audio_frame(frame, out);
        } else {
            self.dropped += 1;
        }
    }

    fn video_frame(&mut self, frame: Frame, out: &mut Vec<Output>) {
        let Some(source) = self.video.source else {
            return;
        };
        if self.video.waiting_keyframe && !frame.keyframe {
            // An intra-refresh source may never send a keyframe: after waiting one
            // maximum segment duration, start on what there is.
            let since = *self.video.waiting_since.get_or_insert(frame.dts);
            let waited = ticks_to_ns(frame.dts.saturating_sub(since), source.timescale);
            if waited < self.max_segment_ns {
                self.dropped += 1;
                return;
            }
        }
        self.video.waiting_since = None;
        let origin = self.origin(&frame, source.timescale);
        let mapped = origin.map(frame.dts, source.timescale, VIDEO_TIMESCALE);
        // The composition offset as sent, negative included: shifting decode times (the
        // rendition's `shift`, signed `trun` offsets) keeps the presentation order.
        let composition = origin
            .map(frame.pts, source.timescale, VIDEO_TIMESCALE)
            .saturating_sub(mapped);
        if self.video.waiting_keyframe && self.below_lock_floor(mapped.saturating_add(composition))
        {
            // A locked publish starts in the first segment not closed yet.
            self.dropped += 1;
            return;
        }
        let placed = self.timeline.place(
            mapped,
            VIDEO_TIMESCALE,
            self.video.offset_ns,
            self.video.expected,
        );
        self.video.offset_ns = placed.offset_ns;
        if placed.jumped {
            self.mark_jump();
        }
        let mut dts = placed.time;
        let nominal = self.nominal_end(self.video.msn);
        // A locked clock back home (see `timeline`) at a keyframe that cuts: the segment
        // it opens is a declared discontinuity on the grid, and may begin before the
        // glitched one ended. Anywhere else, decode times never go back.
        let home = placed.jumped
            && self.locked
            && frame.keyframe
            && at_or_after_ns(
                dts.saturating_add(self.video.eps()),
                VIDEO_TIMESCALE,
                nominal,
            );
        let floor = self.video.floor();
        if dts < floor && !home {
            self.clamped += 1;
            dts = floor;
        }
        let pts = dts.saturating_add(composition);
        let max_segment = ns_to_ticks(self.max_segment_ns, VIDEO_TIMESCALE);
        let part_target = ns_to_ticks(self.part_ns, VIDEO_TIMESCALE).max(1);
        let audio_active = self.audio.source.is_some();
        let (locked, last_locked, segment_ns) = (self.locked, self.last_locked, self.segment_ns);
        let r = &mut self.video;
        let shift = *r.shift.get_or_insert(pts.saturating_sub(dts));
        let time = dts.saturating_add(shift);
        // A locked publish's wall clock is its media time (capture time since 1970):
        // its program date times are exact and the same in every pipeline.
        let arrival = if locked {
            lock::wall_clock(time, VIDEO_TIMESCALE)
        } else {
            frame.arrival
        };
        let cts_offset = pts.saturating_sub(dts).saturating_sub(shift);
        let cts_offset =
            i32::try_from(cts_offset).unwrap_or(if cts_offset < 0 { i32::MIN } else { i32::MAX });
        if let Some(previous) = r.seg.tail_time() {
            // A gap is not a frame rate: the estimate stays within a part.
            r.interval = time.saturating_sub(previous).clamp(1, part_target);
        }
        let on_grid = frame.keyframe
            && at_or_after_ns(time.saturating_add(r.eps()), VIDEO_TIMESCALE, nominal);
        // Cut without a keyframe rather than pass the maximum (long GOPs, intra refresh).
        let full = r.seg.segment_start().is_some_and(|start| {
            // (ε: millisecond rounding must not cut a frame early; the segmenter caps
            // the last sample so the segment never passes the maximum.)
            time.saturating_add(r.interval).saturating_sub(start)
                > max_segment.saturating_add(r.eps())
        });
        let cut = r.seg.is_open() && (on_grid || full);
        r.seg.commit_tail(time, out);
        let mut closed = None;
        if cut {
            closed = r.seg.close_segment(false, out);
            r.msn = r.msn.saturating_add(1);
        }
        let opens = !r.seg.is_open();
        let mut seam = false;
        if opens
            && locked
            && r.last_time
                .is_some_and(|t| time.saturating_sub(t) > part_target)
        {
            // Frames were lost across a boundary: the segment this keyframe opens keeps
            // its grid number, as in every other pipeline (the numbers in between are
            // missing here, not shifted: another pipeline's copy can fill them).
            let grid = lock::grid_msn(ticks_to_ns(time, VIDEO_TIMESCALE), segment_ns);
            r.msn = r.msn.max(grid);
        }
        if opens && locked && r.last_time.is_none() {
            // The publish's first segment: the number of the grid slot its keyframe
            // opens (audio before it may have moved the number a slot early).
            let grid = lock::grid_msn(ticks_to_ns(time, VIDEO_TIMESCALE), segment_ns);
            r.msn = r.msn.max(grid);
            // A locked publish that continues another is seamless only if it starts
            // where that one ended. A primary that died mid-segment leaves a hole up to
            // the backup's next keyframe: that is a seam (both renditions), until
            // segment selection can fill it from the backup (docs/hls.md).
            let tolerance = r.interval.saturating_add(r.interval / 2);
            if last_locked
                && r.end
                    .is_some_and(|end| time.saturating_sub(end) > tolerance)
            {
                r.discontinuity = true;
                seam = true;
            }
        }
        if opens {
            let discontinuity = r.take_discontinuity();
            r.seg.open(r.msn, time, arrival, discontinuity);
            r.ever_opened = true;
        }
        if self.tap {
            out.push(Output::Sample(Sample {
                kind: TrackKind::Video,
                time,
                cts_offset,
                keyframe: frame.keyframe,
                msn: r.msn,
                starts_segment: opens,
                data: frame.data.clone(),
                arrival,
            }));
        }
        let tail = Tail {
            time,
            cts_offset,
            keyframe: frame.keyframe,
            data: frame.data,
            arrival,
        };
        let estimate = r.interval;
        r.seg.add(tail, estimate, out);
        r.last_dts = Some(dts);
        r.expected = Some(dts.saturating_add(r.interval));
        r.last_time = Some(time);
        r.waiting_keyframe = false;
        if let Some(msn) = closed {
            self.closed(msn);
            if audio_active {
                self.push_cut(msn, time);
            }
        }
        if seam {
            // The audio waited for this keyframe (see `audio_frame`): its first segment
            // of this publish opens after it, with the same seam.
            self.audio.discontinuity = true;
        }
        self.audio.stalled = false;
        self.drain_audio(false, out);
    }

    /// A clock jump: both renditions' next segments (the same number) are
    /// discontinuities.
    fn mark_jump(&mut self) {
        let lead = if self.video.source.is_some() {
            &self.video
        } else {
            &self.audio
        };
        let n = lead.msn.saturating_add(u64::from(lead.seg.is_open()));
        self.video.discontinuity_from = Some(n);
        self.audio.discontinuity_from = Some(n);
    }
}

#[cfg(test)]
mod tests;
