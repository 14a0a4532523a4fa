//! The packager's vocabulary: its configuration, what it consumes and what it produces.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use starling_media::{CodecConfig, Frame, Stream, Track, TrackKind};

use crate::OPUS_TIMESCALE;

/// Segment and part targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackagerConfig {
    /// `D`: the nominal segment duration and the grid segments are locked to.
    pub segment_duration: Duration,
    /// The LL-HLS part target: no part is longer (a longer sample's duration is cut to
    /// it, leaving a hole in the timeline).
    pub part_duration: Duration,
}

impl PackagerConfig {
    /// The longest segment the packager cuts: `1.5 × D` rounded up to whole seconds (at
    /// least 1 s). Keyframe intervals up to that still start every segment on a
    /// keyframe; longer GOPs (and intra-refresh sources without keyframes) are cut at it
    /// without one. Being whole seconds, it is the playlists' `EXT-X-TARGETDURATION`
    /// as it is, and every `EXTINF` rounds to at most it.
    pub fn max_segment_duration(&self) -> Duration {
        let ms = self.segment_duration.as_millis().saturating_mul(3) / 2;
        let secs = ms.div_ceil(1000).max(1);
        Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX))
    }

    /// `EXT-X-TARGETDURATION` for every playlist of a run: fixed by the configuration,
    /// never raised by a long segment (none is longer than
    /// [`Self::max_segment_duration`]).
    pub fn target_duration(&self) -> u32 {
        u32::try_from(self.max_segment_duration().as_secs()).unwrap_or(u32::MAX)
    }
}

impl Default for PackagerConfig {
    fn default() -> Self {
        Self {
            segment_duration: Duration::from_secs(2),
            part_duration: Duration::from_millis(334),
        }
    }
}

/// What the packager consumes; mirrors `starling_hub::HubEvent`.
#[derive(Debug, Clone)]
pub enum Input {
    Stream(Arc<Stream>),
    Frame(Frame),
    /// The publish ended.
    End,
}

/// What a consumer needs to announce a rendition (HLS `EXT-X-STREAM-INF`, DASH
/// `Representation`).
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionInfo {
    /// [`VIDEO_RENDITION`] or [`AUDIO_RENDITION`].
    pub name: &'static str,
    pub kind: TrackKind,
    /// RFC 6381 codec string.
    pub codec: String,
    pub timescale: u32,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
}

/// What the packager produces.
#[derive(Clone, PartialEq)]
pub enum Output {
    /// A rendition starts (first Stream) or its codec config changed (new init; the next
    /// segment is a discontinuity).
    Init {
        rendition: RenditionInfo,
        init: Bytes,
    },
    /// A finished part: a CMAF fragment (`styp` + `prft` on the first part of a segment
    /// only, then `moof` + `mdat`).
    Part {
        rendition: &'static str,
        msn: u64,
        /// Restarts at 0 in each segment.
        index: u32,
        /// Seconds.
        duration: f64,
        /// The part starts with a keyframe (always true for audio).
        independent: bool,
        /// Media time of its first sample (its `tfdt`), in the rendition's timescale:
        /// the first part's is the segment's start on a DASH `SegmentTimeline`.
        start: u64,
        data: Bytes,
        /// Arrival of the part's first sample.
        first_arrival: SystemTime,
        /// Its segment begins with a discontinuity (the same on every part of it, and
        /// again on its `SegmentEnd`): a playlist can tag the segment before listing
        /// its first part, never after.
        discontinuity: bool,
    },
    /// All parts of segment `msn` of this rendition were emitted; the segment's bytes are
    /// the concatenation of its parts.
    SegmentEnd {
        rendition: &'static str,
        msn: u64,
        /// Seconds: the sum of the parts' durations.
        duration: f64,
        /// Arrival of the segment's first frame.
        program_date_time: SystemTime,
        discontinuity: bool,
        /// What is wrong with it, found as it was cut: an origin with more than one
        /// pipeline serves another pipeline's clean copy instead.
        defects: Defects,
    },
    /// The publish ended; everything pending was flushed before this.
    Ended,
    /// A sample as packaged, on the media timeline (only with
    /// [`crate::Packager::set_tap`]): what a transcoder needs to encode rungs whose
    /// segment `n` starts at the same media time as this rendition's, and the audio it
    /// analyses.
    Sample(Sample),
}

/// A segment's defects, as the packager saw them while cutting it (all false: clean).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Defects {
    /// Shorter than half the nominal segment duration, yet not the last segment of its
    /// rendition's run (an encoder that stalled, or a keyframe far too early).
    pub short: bool,
    /// Video that does not begin with a keyframe: a player cannot start decoding at it
    /// (a source without keyframes for longer than the longest segment).
    pub no_irap: bool,
    /// Its first sample does not begin where the previous segment's media ended, and
    /// no discontinuity was declared (a `tfdt` jump).
    pub jump: bool,
    /// The media inside it has a hole or an overlap: samples missing between two of its
    /// samples (a frame gap longer than a part, clamped timestamps).
    pub hole: bool,
}

impl Defects {
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }

    /// The names of the defects present, in a fixed order (for logs, metrics and
    /// stored metadata).
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        [
            (self.short, "short"),
            (self.no_irap, "no-irap"),
            (self.jump, "jump"),
            (self.hole, "hole"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
    }

    /// Parses what [`Self::names`] wrote, joined by commas (empty: clean); `None` for
    /// an unknown name.
    pub fn parse(list: &str) -> Option<Self> {
        let mut d = Self::default();
        for name in list.split(',').filter(|n| !n.is_empty()) {
            match name {
                "short" => d.short = true,
                "no-irap" => d.no_irap = true,
                "jump" => d.jump = true,
                "hole" => d.hole = true,
                _ => return None,
            }
        }
        Some(d)
    }

    /// How bad it is, for choosing among defective copies: one that cannot be decoded
    /// is worse than one with a hole, worse than a jump, worse than a short one.
    pub fn severity(&self) -> u8 {
        u8::from(self.no_irap) * 8
            + u8::from(self.hole) * 4
            + u8::from(self.jump) * 2
            + u8::from(self.short)
    }
}

/// One packaged sample (see [`Output::Sample`]).
#[derive(Clone, PartialEq)]
pub struct Sample {
    pub kind: TrackKind,
    /// Decode time on the media timeline (as in `tfdt`), at 90 kHz (audio: converted
    /// from its sample count).
    pub time: i64,
    /// Presentation time minus decode time, at 90 kHz.
    pub cts_offset: i32,
    pub keyframe: bool,
    /// The segment it is in, and whether it is that segment's first sample (video;
    /// audio samples are taken before their segment is decided: `starts_segment` is
    /// false and `msn` the open one's).
    pub msn: u64,
    pub starts_segment: bool,
    pub data: Bytes,
    pub arrival: SystemTime,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Init { rendition, init } => f
                .debug_struct("Init")
                .field("rendition", rendition)
                .field("len", &init.len())
                .finish(),
            Output::Part {
                rendition,
                msn,
                index,
                duration,
                independent,
                start,
                data,
                first_arrival,
                discontinuity,
            } => f
                .debug_struct("Part")
                .field("rendition", rendition)
                .field("msn", msn)
                .field("index", index)
                .field("duration", duration)
                .field("independent", independent)
                .field("start", start)
                .field("len", &data.len())
                .field("first_arrival", first_arrival)
                .field("discontinuity", discontinuity)
                .finish(),
            Output::SegmentEnd {
                rendition,
                msn,
                duration,
                program_date_time,
                discontinuity,
                defects,
            } => f
                .debug_struct("SegmentEnd")
                .field("rendition", rendition)
                .field("msn", msn)
                .field("duration", duration)
                .field("program_date_time", program_date_time)
                .field("discontinuity", discontinuity)
                .field("defects", defects)
                .finish(),
            Output::Ended => f.write_str("Ended"),
            Output::Sample(s) => s.fmt(f),
        }
    }
}

impl fmt::Debug for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sample")
            .field("kind", &self.kind)
            .field("time", &self.time)
            .field("cts_offset", &self.cts_offset)
            .field("keyframe", &self.keyframe)
            .field("msn", &self.msn)
            .field("starts_segment", &self.starts_segment)
            .field("len", &self.data.len())
            .finish()
    }
}

pub(crate) fn rendition_info(name: &'static str, track: &Track) -> RenditionInfo {
    let dimensions = track.config.dimensions();
    let (frame_rate, sample_rate, channels) = match &track.config {
        CodecConfig::H264(c) => (c.fps, None, None),
        CodecConfig::Aac(c) => (None, Some(c.sample_rate), Some(c.channels)),
        CodecConfig::Opus(c) => (None, Some(OPUS_TIMESCALE), Some(c.channels)),
        _ => (None, None, None),
    };
    RenditionInfo {
        name,
        kind: track.kind(),
        codec: track.config.codec_string(),
        timescale: track.timescale,
        width: dimensions.map(|d| d.0),
        height: dimensions.map(|d| d.1),
        frame_rate,
        sample_rate,
        channels,
    }
}
