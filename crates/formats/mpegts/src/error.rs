//! The error type of the MPEG-TS crate.
//!
//! Demuxer errors are reported as events and counted; none of them stops the demuxer:
//! a contribution link loses packets, and the next PES or section starts afresh.

use starling_media::MediaError;

/// Why part of a transport stream could not be used, or a frame could not be muxed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MpegTsError {
    /// Bytes between packets that do not start with the sync byte 0x47.
    #[error("lost packet sync: skipped {skipped} bytes looking for 0x47")]
    Resync { skipped: usize },
    /// A packet whose adaptation_field_length runs past the packet.
    #[error("PID {pid:#06x}: adaptation_field_length {length} exceeds the packet")]
    AdaptationField { pid: u16, length: u8 },
    /// A continuity_counter that skipped: packets were lost (the PES in progress is dropped).
    #[error("PID {pid:#06x}: continuity_counter {got}, expected {expected}")]
    Continuity { pid: u16, expected: u8, got: u8 },
    /// A PAT or PMT section that is malformed (bad length, CRC, table_id).
    #[error("PID {pid:#06x}: bad {table} section: {reason}")]
    Section {
        pid: u16,
        table: &'static str,
        reason: &'static str,
    },
    /// A PES header that is malformed.
    #[error("PID {pid:#06x}: bad PES header: {reason}")]
    PesHeader { pid: u16, reason: &'static str },
    /// A PES whose PES_packet_length disagrees with the bytes that arrived before the
    /// next payload_unit_start_indicator.
    #[error("PID {pid:#06x}: PES_packet_length says {declared} bytes, {actual} arrived")]
    PesLength {
        pid: u16,
        declared: usize,
        actual: usize,
    },
    /// A PES larger than the configured cap; it is dropped.
    #[error("PID {pid:#06x}: PES of more than {limit} bytes dropped")]
    PesTooLarge { pid: u16, limit: usize },
    /// A PES with no PTS: there is no time to give its frames.
    #[error("PID {pid:#06x}: PES without PTS dropped")]
    MissingPts { pid: u16 },
    /// An elementary stream payload the codec helpers rejected.
    #[error("PID {pid:#06x}: {source}")]
    Codec {
        pid: u16,
        #[source]
        source: MediaError,
    },
    /// Opus access unit framing (opus_control_header) that is not one.
    #[error("PID {pid:#06x}: bad Opus access unit: {reason}")]
    Opus { pid: u16, reason: &'static str },
    /// The muxer was given a codec it cannot put in a TS.
    #[error("cannot mux {0} into MPEG-TS")]
    UnsupportedCodec(String),
    /// The muxer was given a frame of a track its stream does not have.
    #[error("frame of unknown track {0}")]
    UnknownTrack(u32),
    /// The muxer was given a payload the codec helpers rejected.
    #[error(transparent)]
    Media(#[from] MediaError),
}
