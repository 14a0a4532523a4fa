//! The media model to FLV tag bodies, for sending a stream to an RTMP player or writing
//! an FLV file.
//!
//! H.264 goes out with the legacy AVC header (every player knows it); H.265 with the
//! Enhanced RTMP `hvc1` header (the legacy CodecID 12 is not standard); AAC with the
//! legacy header; Opus with the Enhanced audio `Opus` header. Other codecs give `None`.
//!
//! Timing: tag timestamps are milliseconds, so `pts`/`dts` are converted from the
//! track's timescale, the decode time is wrapped to 32 bits as FLV does, and the
//! composition time offset is clamped to SI24.
//!
//! Payloads: the `*_tag_parts` functions return `(header, payload)` without copying the
//! payload (an RTMP chunk writer can send both in turn); the `*_tag` conveniences join
//! them into one `Bytes`, which copies the payload once into the new tag.
//!
//! This module must never do I/O.

use bytes::{Bytes, BytesMut};
use starling_media::{CodecConfig, Frame, Stream, Track};

use crate::{
    error::FourCc,
    ingest::build_opus_head,
    tag::{
        audio_header, clamp_si24, video_header, AudioCodec, FrameType, VideoCodec, VideoPacketKind,
    },
};

fn video_codec(track: &Track) -> Option<VideoCodec> {
    match track.config {
        CodecConfig::H264(_) => Some(VideoCodec::Avc),
        CodecConfig::H265(_) => Some(VideoCodec::Hevc),
        _ => None,
    }
}

fn audio_codec(track: &Track) -> Option<AudioCodec> {
    match track.config {
        CodecConfig::Aac(_) => Some(AudioCodec::Aac),
        CodecConfig::Opus(_) => Some(AudioCodec::Opus),
        _ => None,
    }
}

fn join(header: &[u8], payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(header.len() + payload.len());
    out.extend_from_slice(header);
    out.extend_from_slice(payload);
    out.freeze()
}

/// Converts a time in `timescale` ticks to milliseconds (rounding toward negative infinity).
pub fn to_ms(ticks: i64, timescale: u32) -> i64 {
    if timescale == 1000 || timescale == 0 {
        return ticks;
    }
    let ms = (i128::from(ticks) * 1000).div_euclid(i128::from(timescale));
    ms.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The FLV timestamp of a frame: its decode time in milliseconds, wrapped to 32 bits.
pub fn tag_timestamp(frame: &Frame, track: &Track) -> u32 {
    // Two's-complement truncation is FLV's own wrap-around (and the inverse of ingest).
    to_ms(frame.dts, track.timescale) as u32
}

/// The video sequence header tag body (avcC or Enhanced `hvc1` SequenceStart).
pub fn video_sequence_header(track: &Track) -> Option<Bytes> {
    let (codec, raw) = match &track.config {
        CodecConfig::H264(c) => (VideoCodec::Avc, &c.raw),
        CodecConfig::H265(c) => (VideoCodec::Hevc, &c.raw),
        _ => return None,
    };
    let header = video_header(codec, FrameType::Key, &VideoPacketKind::SequenceStart);
    Some(join(&header, raw))
}

/// The video end-of-sequence tag body.
pub fn video_end_of_sequence(track: &Track) -> Option<Bytes> {
    let codec = video_codec(track)?;
    Some(video_header(
        codec,
        FrameType::Key,
        &VideoPacketKind::SequenceEnd,
    ))
}

/// The audio sequence header tag body (AudioSpecificConfig or `OpusHead`).
pub fn audio_sequence_header(track: &Track) -> Option<Bytes> {
    let (codec, record) = match &track.config {
        CodecConfig::Aac(c) => (AudioCodec::Aac, c.raw.clone()),
        CodecConfig::Opus(c) => (AudioCodec::Opus, build_opus_head(c)?),
        _ => return None,
    };
    Some(join(&audio_header(codec, true), &record))
}

/// Header and payload of the video tag for `frame` (payload not copied).
pub fn video_tag_parts(frame: &Frame, track: &Track) -> Option<(Bytes, Bytes)> {
    let codec = video_codec(track)?;
    let cto = to_ms(frame.pts, track.timescale) - to_ms(frame.dts, track.timescale);
    let frame_type = if frame.keyframe {
        FrameType::Key
    } else {
        FrameType::Inter
    };
    let kind = VideoPacketKind::CodedFrames {
        composition_time: clamp_si24(cto),
    };
    Some((video_header(codec, frame_type, &kind), frame.data.clone()))
}

/// The video tag body for `frame` (header + payload in one buffer: one payload copy).
pub fn video_tag(frame: &Frame, track: &Track) -> Option<Bytes> {
    let (h, p) = video_tag_parts(frame, track)?;
    Some(join(&h, &p))
}

/// Header and payload of the audio tag for `frame` (payload not copied).
pub fn audio_tag_parts(frame: &Frame, track: &Track) -> Option<(Bytes, Bytes)> {
    let codec = audio_codec(track)?;
    Some((audio_header(codec, false), frame.data.clone()))
}

/// The audio tag body for `frame` (header + payload in one buffer: one payload copy).
pub fn audio_tag(frame: &Frame, track: &Track) -> Option<Bytes> {
    let (h, p) = audio_tag_parts(frame, track)?;
    Some(join(&h, &p))
}

/// A value of an onMetaData property.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    Number(f64),
    Bool(bool),
    String(String),
}

/// The onMetaData properties describing `stream`: `width`, `height`, `framerate` (when
/// the SPS says), `videocodecid` (7 for H.264; for H.265 the FourCC `hvc1` as a number,
/// as Enhanced RTMP specifies), `audiocodecid` (10 for AAC, FourCC `Opus` for Opus),
/// `audiosamplerate`, `audiochannels`, `stereo`. The publisher's own metadata is not
/// repeated: the caller may append what it wants from `stream.metadata`.
pub fn metadata_pairs(stream: &Stream) -> Vec<(String, MetaValue)> {
    let mut out = Vec::new();
    let mut put = |k: &str, v: MetaValue| out.push((k.to_owned(), v));
    if let Some(v) = stream.video() {
        if let Some((w, h)) = v.config.dimensions() {
            put("width", MetaValue::Number(w.into()));
            put("height", MetaValue::Number(h.into()));
        }
        match &v.config {
            CodecConfig::H264(c) => {
                if let Some(fps) = c.fps {
                    put("framerate", MetaValue::Number(fps));
                }
                put("videocodecid", MetaValue::Number(7.0));
            }
            CodecConfig::H265(_) => put(
                "videocodecid",
                MetaValue::Number(FourCc::HVC1.as_u32().into()),
            ),
            _ => {}
        }
    }
    if let Some(a) = stream.audio() {
        let (id, rate, channels) = match &a.config {
            CodecConfig::Aac(c) => (10.0, c.sample_rate, c.channels),
            CodecConfig::Opus(c) => (FourCc::OPUS.as_u32().into(), 48_000, c.channels),
            _ => return out,
        };
        put("audiocodecid", MetaValue::Number(id));
        put("audiosamplerate", MetaValue::Number(rate.into()));
        put("audiochannels", MetaValue::Number(channels.into()));
        put("stereo", MetaValue::Bool(channels == 2));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use starling_media::{aac::AudioSpecificConfig, TrackId};

    use super::*;

    fn aac_track() -> Track {
        Track {
            id: TrackId(2),
            timescale: 1000,
            config: CodecConfig::Aac(
                AudioSpecificConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap(),
            ),
        }
    }

    #[test]
    fn aac_tags() {
        let t = aac_track();
        assert_eq!(
            &audio_sequence_header(&t).unwrap()[..],
            &[0xAF, 0, 0x11, 0x90]
        );
        let f = Frame {
            track: TrackId(2),
            pts: 5,
            dts: 5,
            keyframe: true,
            data: Bytes::from_static(&[0x21, 0x10]),
            arrival: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(&audio_tag(&f, &t).unwrap()[..], &[0xAF, 1, 0x21, 0x10]);
        let (_, payload) = audio_tag_parts(&f, &t).unwrap();
        assert_eq!(payload.as_ptr(), f.data.as_ptr());
        assert!(video_tag(&f, &t).is_none());
        assert!(video_sequence_header(&t).is_none());
        let m = metadata_pairs(&Stream {
            tracks: vec![t],
            metadata: vec![],
            clock: Default::default(),
        });
        assert_eq!(
            m,
            vec![
                ("audiocodecid".into(), MetaValue::Number(10.0)),
                ("audiosamplerate".into(), MetaValue::Number(48000.0)),
                ("audiochannels".into(), MetaValue::Number(2.0)),
                ("stereo".into(), MetaValue::Bool(true)),
            ]
        );
    }

    #[test]
    fn timescale_conversion() {
        assert_eq!(to_ms(90_000, 90_000), 1000);
        assert_eq!(to_ms(-1, 90_000), -1);
        assert_eq!(to_ms(1234, 1000), 1234);
        let t = Track {
            id: TrackId(2),
            timescale: 48_000,
            ..aac_track()
        };
        let f = Frame {
            track: TrackId(2),
            pts: 48_000 * 5_000_000,
            dts: 48_000 * 5_000_000,
            keyframe: true,
            data: Bytes::new(),
            arrival: SystemTime::UNIX_EPOCH,
        };
        // 5e9 ms wraps to 5e9 - 2^32
        assert_eq!(tag_timestamp(&f, &t), (5_000_000_000u64 - (1 << 32)) as u32);
    }
}
