use std::{fmt, sync::Arc, time::SystemTime};

use bytes::Bytes;

use crate::{aac::AudioSpecificConfig, h264::AvcConfig, h265::HevcConfig};

/// Identifies a track within one stream. Small and stable for the stream's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u32);

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Whether a track carries pictures or sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

/// The decoder configuration of a track, in the form the codec's ISO-BMFF sample entry
/// carries it (avcC, hvcC, AudioSpecificConfig, OpusHead), parsed once on arrival.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CodecConfig {
    H264(AvcConfig),
    H265(HevcConfig),
    Aac(AudioSpecificConfig),
    Opus(OpusConfig),
}

impl CodecConfig {
    pub fn kind(&self) -> TrackKind {
        match self {
            CodecConfig::H264(_) | CodecConfig::H265(_) => TrackKind::Video,
            CodecConfig::Aac(_) | CodecConfig::Opus(_) => TrackKind::Audio,
        }
    }

    /// The RFC 6381 `codecs` parameter (`avc1.64001f`, `hvc1.1.6.L93.B0`, `mp4a.40.2`, `opus`).
    pub fn codec_string(&self) -> String {
        match self {
            CodecConfig::H264(c) => c.codec_string(),
            CodecConfig::H265(c) => c.codec_string(),
            CodecConfig::Aac(c) => c.codec_string(),
            CodecConfig::Opus(_) => "opus".to_owned(),
        }
    }

    /// Picture size for video tracks, when the parameter sets told us.
    pub fn dimensions(&self) -> Option<(u32, u32)> {
        match self {
            CodecConfig::H264(c) => Some((c.width, c.height)),
            CodecConfig::H265(c) => Some((c.width, c.height)),
            _ => None,
        }
    }
}

/// Opus decoder configuration (the fields of an `OpusHead`, RFC 7845 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusConfig {
    pub channels: u8,
    pub pre_skip: u16,
    pub input_sample_rate: u32,
    pub output_gain: i16,
}

/// One elementary stream within a [`Stream`].
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub id: TrackId,
    /// Ticks per second of `pts`/`dts` of this track's frames.
    pub timescale: u32,
    pub config: CodecConfig,
}

impl Track {
    pub fn kind(&self) -> TrackKind {
        self.config.kind()
    }
}

/// What a publisher announced: its tracks and free-form metadata (onMetaData and the like).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stream {
    pub tracks: Vec<Track>,
    /// Key/value metadata as the source sent it (encoder name, bitrate hints, ...).
    pub metadata: Vec<(String, String)>,
    /// What the frames' timestamps count from (the publish said so; the formats cannot).
    pub clock: SourceClock,
}

/// What a publish's timestamps mean. Only the publisher can say: nothing in RTMP or
/// MPEG-TS tells a wall-clock timecode from a counter started at power-on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SourceClock {
    /// A counter with an arbitrary start: only differences between frames mean something.
    #[default]
    Relative,
    /// Time since the Unix epoch, modulo `wrap_ticks` (in each track's own timescale):
    /// the source stamps wall-clock time into the stream, so two pipelines fed from one
    /// encoder (or from encoders locked to one clock) carry the same timestamp for the
    /// same picture. The instant is the one nearest the frame's arrival (see the
    /// packager's epoch lock): RTMP keeps 2^31 ms (ffmpeg's FLV muxer drops the 32nd
    /// bit), MPEG-TS 2^33 ticks of 90 kHz.
    Epoch { wrap_ticks: u64 },
}

impl SourceClock {
    /// RTMP timestamps agreed to carry epoch milliseconds (`?clock=epoch`).
    pub const RTMP_EPOCH: SourceClock = SourceClock::Epoch {
        wrap_ticks: 1 << 31,
    };
    /// MPEG-TS PTS/DTS carrying epoch time at 90 kHz (`clock=epoch` in an SRT stream id).
    pub const MPEGTS_EPOCH: SourceClock = SourceClock::Epoch {
        wrap_ticks: 1 << 33,
    };

    /// Parses a publish's `clock=` value: `epoch`, or `relative` (the default).
    pub fn parse(value: &str, epoch: SourceClock) -> Option<SourceClock> {
        match value {
            "epoch" => Some(epoch),
            "relative" => Some(SourceClock::Relative),
            _ => None,
        }
    }

    pub fn is_epoch(&self) -> bool {
        matches!(self, SourceClock::Epoch { .. })
    }
}

impl Stream {
    pub fn track(&self, id: TrackId) -> Option<&Track> {
        self.tracks.iter().find(|t| t.id == id)
    }

    pub fn video(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind() == TrackKind::Video)
    }

    pub fn audio(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind() == TrackKind::Audio)
    }
}

/// One access unit of one track.
///
/// Cloning a frame never copies the payload: `data` is reference counted, so the hub
/// hands the same bytes to every consumer.
#[derive(Clone, PartialEq)]
pub struct Frame {
    pub track: TrackId,
    /// Presentation time, in the track's timescale.
    pub pts: i64,
    /// Decode time, in the track's timescale (`dts <= pts`).
    pub dts: i64,
    /// A random access point: decoding can start here (IDR/IRAP for video; every audio frame).
    pub keyframe: bool,
    /// Canonical payload (see the crate docs).
    pub data: Bytes,
    /// Wall-clock time the frame's last byte arrived at ingest, handed in by the driver.
    pub arrival: SystemTime,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("track", &self.track)
            .field("pts", &self.pts)
            .field("dts", &self.dts)
            .field("keyframe", &self.keyframe)
            .field("len", &self.data.len())
            .finish()
    }
}

/// What flows from a producer to consumers: a (re)announcement of the stream's tracks,
/// or a frame of one of them. A new `Stream` replaces the previous one (e.g. a
/// resolution change brought a new sequence header).
#[derive(Debug, Clone)]
pub enum MediaEvent {
    Stream(Arc<Stream>),
    Frame(Frame),
}
