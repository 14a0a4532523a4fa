//! The error type of the FLV crate.

use std::fmt;

use starling_media::MediaError;

/// A four-character code as carried by Enhanced RTMP headers (`hvc1`, `av01`, `Opus`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    pub const AVC1: FourCc = FourCc(*b"avc1");
    pub const HVC1: FourCc = FourCc(*b"hvc1");
    pub const OPUS: FourCc = FourCc(*b"Opus");
    pub const MP4A: FourCc = FourCc(*b"mp4a");

    /// The big-endian number onMetaData uses for enhanced codec ids.
    pub fn as_u32(self) -> u32 {
        u32::from_be_bytes(self.0)
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc(\"{self}\")")
    }
}

/// Why an FLV tag, tag body or file could not be used.
///
/// Errors about one tag body (everything but the file-level ones) leave the parser and
/// [`crate::FlvIngest`] usable: a caller may log them and go on with the next tag.
/// [`FlvError::is_unsupported`] tells valid-but-unhandled content from malformed bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlvError {
    /// A body or header shorter than the fields it must have.
    #[error("{what} truncated: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A legacy video CodecID other than 7 (AVC) or 12 (HEVC).
    #[error("unsupported video codec id {0}")]
    UnsupportedVideoCodecId(u8),
    /// A legacy SoundFormat other than 10 (AAC) or 9 (Enhanced audio).
    #[error("unsupported sound format {0}")]
    UnsupportedSoundFormat(u8),
    /// An Enhanced RTMP FourCC we do not convert (e.g. `av01`, `vp09`, `.mp3`).
    #[error("unsupported {kind} FourCC \"{fourcc}\"")]
    UnsupportedFourCc { kind: &'static str, fourcc: FourCc },
    /// A packet type this crate does not handle (multitrack, ModEx, ...).
    #[error("unsupported {what} packet type {packet_type}")]
    UnsupportedPacketType { what: &'static str, packet_type: u8 },
    /// A legacy video FrameType outside 1..=5.
    #[error("invalid video frame type {0}")]
    InvalidFrameType(u8),
    /// A sequence header with a non-zero composition time offset.
    #[error("composition time offset {0} on a sequence header (must be 0)")]
    CompositionTimeOnSequenceHeader(i32),
    /// A coded frame whose codec differs from the track's configured codec.
    #[error("{track} frame is {got} but the sequence header was {configured}")]
    CodecMismatch {
        track: &'static str,
        configured: &'static str,
        got: &'static str,
    },
    /// A codec configuration or payload the media helpers rejected.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// An `OpusHead` that is not one.
    #[error("OpusHead: {0}")]
    OpusHead(&'static str),
    /// The file does not start with `FLV`.
    #[error("not an FLV file: signature {0:02x?}")]
    BadSignature([u8; 3]),
    /// An FLV header with a version other than 1.
    #[error("unsupported FLV version {0}")]
    UnsupportedVersion(u8),
    /// An FLV header whose DataOffset is below 9 or absurdly large.
    #[error("FLV header size {size} outside 9..={limit}")]
    HeaderSize { size: u32, limit: u32 },
    /// A tag larger than the reader's configured cap.
    #[error("FLV tag size {size} exceeds the limit of {limit}")]
    TagTooLarge { size: usize, limit: usize },
    /// A tag with the Filter bit set (encrypted content).
    #[error("encrypted FLV tag (filter bit set) is not supported")]
    Encrypted,
}

impl FlvError {
    /// True for content that is valid but not handled here (a codec, a FourCC, a packet
    /// type), as opposed to malformed bytes. Either way the stream may go on.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            FlvError::UnsupportedVideoCodecId(_)
                | FlvError::UnsupportedSoundFormat(_)
                | FlvError::UnsupportedFourCc { .. }
                | FlvError::UnsupportedPacketType { .. }
                | FlvError::Encrypted
                | FlvError::Media(MediaError::Unsupported { .. })
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_display_escapes() {
        assert_eq!(FourCc(*b"av01").to_string(), "av01");
        assert_eq!(FourCc([b'a', 0, 0xff, b'1']).to_string(), "a\\x00\\xff1");
        let e = FlvError::UnsupportedFourCc {
            kind: "video",
            fourcc: FourCc(*b"vp09"),
        };
        assert_eq!(e.to_string(), "unsupported video FourCC \"vp09\"");
        assert!(e.is_unsupported());
        assert_eq!(FourCc::HVC1.as_u32(), 0x6876_6331);
    }
}
