//! FLV audio and video tag bodies: parsing and building, legacy and Enhanced RTMP.
//!
//! Legacy video (FLV 10.1 spec, E.4.3): `FrameType:4 CodecID:4`, then for AVC (7) and the
//! widespread HEVC extension (12) `AVCPacketType:8 CompositionTime:SI24`.
//! Enhanced video (veovera Enhanced RTMP v1/v2): `IsExHeader:1 FrameType:3 PacketType:4`
//! and a FourCC; we handle `hvc1` and `avc1`, other FourCCs are a typed
//! [`FlvError::UnsupportedFourCc`]. Audio: SoundFormat 10 (AAC) and the Enhanced audio
//! header (SoundFormat 9) with FourCC `mp4a` or `Opus`.
//!
//! Parsing never copies: payloads are slices of the tag body. No input panics.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{error::FourCc, FlvError};

/// Legacy video CodecID of H.264.
pub const CODEC_ID_AVC: u8 = 7;
/// Legacy video CodecID of H.265 used by many servers and encoders before Enhanced RTMP.
pub const CODEC_ID_HEVC: u8 = 12;
/// SoundFormat of AAC.
pub const SOUND_FORMAT_AAC: u8 = 10;
/// SoundFormat signalling the Enhanced RTMP audio header.
pub const SOUND_FORMAT_EX_HEADER: u8 = 9;

/// The video FrameType of a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// 1: a keyframe (seekable).
    Key,
    /// 2: an inter frame.
    Inter,
    /// 3: a disposable inter frame (H.263 only).
    DisposableInter,
    /// 4: a generated keyframe (server use only).
    GeneratedKey,
    /// 5: video info / command frame.
    Command,
}

impl FrameType {
    fn from_u8(v: u8) -> Result<Self, FlvError> {
        Ok(match v {
            1 => FrameType::Key,
            2 => FrameType::Inter,
            3 => FrameType::DisposableInter,
            4 => FrameType::GeneratedKey,
            5 => FrameType::Command,
            n => return Err(FlvError::InvalidFrameType(n)),
        })
    }

    /// The 1..=5 value of the header.
    pub fn to_u8(self) -> u8 {
        match self {
            FrameType::Key => 1,
            FrameType::Inter => 2,
            FrameType::DisposableInter => 3,
            FrameType::GeneratedKey => 4,
            FrameType::Command => 5,
        }
    }

    /// Whether the sender marked this frame as a random access point.
    pub fn is_key(self) -> bool {
        matches!(self, FrameType::Key | FrameType::GeneratedKey)
    }
}

/// The video codecs this crate converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Avc,
    Hevc,
}

impl VideoCodec {
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Avc => "H.264",
            VideoCodec::Hevc => "H.265",
        }
    }
}

/// The content of a video tag after its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoPacket {
    /// The decoder configuration record (avcC / hvcC).
    SequenceStart(Bytes),
    /// One access unit of length-prefixed NAL units, with its composition time offset
    /// (pts - dts) in milliseconds.
    CodedFrames { composition_time: i32, data: Bytes },
    /// End of sequence.
    SequenceEnd,
    /// Enhanced RTMP `PacketTypeMetadata`: an AMF-encoded body (e.g. `colorInfo`).
    Metadata(Bytes),
}

/// A parsed video tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    /// FrameType 5 without media: a seek marker or Enhanced RTMP `VideoCommand`.
    Command { command: u8 },
    /// Media of one codec.
    Media {
        frame_type: FrameType,
        codec: VideoCodec,
        /// Whether the Enhanced RTMP header was used.
        enhanced: bool,
        packet: VideoPacket,
    },
}

/// The audio codecs this crate converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    Aac,
    Opus,
}

impl AudioCodec {
    pub fn name(self) -> &'static str {
        match self {
            AudioCodec::Aac => "AAC",
            AudioCodec::Opus => "Opus",
        }
    }
}

/// The content of an audio tag after its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioPacket {
    /// AudioSpecificConfig (AAC) or `OpusHead` (Opus).
    SequenceStart(Bytes),
    /// One raw access unit.
    CodedFrames(Bytes),
    /// End of sequence (Enhanced audio only).
    SequenceEnd,
    /// Enhanced audio `MultichannelConfig`: a channel layout, carried along unparsed.
    MultichannelConfig(Bytes),
}

/// A parsed audio tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTag {
    pub codec: AudioCodec,
    /// Whether the Enhanced RTMP audio header was used.
    pub enhanced: bool,
    pub packet: AudioPacket,
}

fn need(body: &[u8], n: usize, what: &'static str) -> Result<(), FlvError> {
    if body.len() < n {
        return Err(FlvError::Truncated {
            what,
            need: n,
            have: body.len(),
        });
    }
    Ok(())
}

/// Reads a signed 24-bit big-endian integer.
fn si24(b: [u8; 3]) -> i32 {
    // Place the 24 bits at the top of an i32 and shift back down to sign-extend.
    i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8
}

fn fourcc_at(body: &[u8], at: usize) -> FourCc {
    let mut f = [0u8; 4];
    if let Some(s) = body.get(at..at + 4) {
        f.copy_from_slice(s);
    }
    FourCc(f)
}

/// Parses a video tag body (legacy or Enhanced RTMP).
pub fn parse_video(body: &Bytes) -> Result<VideoTag, FlvError> {
    need(body, 1, "video tag")?;
    let b0 = body[0];
    if b0 & 0x80 != 0 {
        return parse_video_enhanced(body);
    }
    let frame_type = FrameType::from_u8(b0 >> 4)?;
    if frame_type == FrameType::Command {
        need(body, 2, "video command frame")?;
        return Ok(VideoTag::Command { command: body[1] });
    }
    let codec = match b0 & 0x0F {
        CODEC_ID_AVC => VideoCodec::Avc,
        CODEC_ID_HEVC => VideoCodec::Hevc,
        n => return Err(FlvError::UnsupportedVideoCodecId(n)),
    };
    need(body, 5, "AVC video tag")?;
    let composition_time = si24([body[2], body[3], body[4]]);
    let packet = match body[1] {
        0 => {
            if composition_time != 0 {
                return Err(FlvError::CompositionTimeOnSequenceHeader(composition_time));
            }
            VideoPacket::SequenceStart(body.slice(5..))
        }
        1 => VideoPacket::CodedFrames {
            composition_time,
            data: body.slice(5..),
        },
        2 => VideoPacket::SequenceEnd,
        n => {
            return Err(FlvError::UnsupportedPacketType {
                what: "AVC video",
                packet_type: n,
            })
        }
    };
    Ok(VideoTag::Media {
        frame_type,
        codec,
        enhanced: false,
        packet,
    })
}

fn parse_video_enhanced(body: &Bytes) -> Result<VideoTag, FlvError> {
    let b0 = body[0];
    let packet_type = b0 & 0x0F;
    const METADATA: u8 = 4;
    // Metadata packets carry no picture, and senders disagree on their frame type.
    let frame_type = match FrameType::from_u8((b0 >> 4) & 0x07) {
        Err(_) if packet_type == METADATA => FrameType::Command,
        other => other?,
    };
    if frame_type == FrameType::Command && packet_type != METADATA {
        need(body, 2, "enhanced video command")?;
        return Ok(VideoTag::Command { command: body[1] });
    }
    if !matches!(packet_type, 0..=4) {
        // 5 MPEG2TSSequenceStart (AV1 only), 6 Multitrack, 7 ModEx, others reserved.
        return Err(FlvError::UnsupportedPacketType {
            what: "enhanced video",
            packet_type,
        });
    }
    need(body, 5, "enhanced video tag")?;
    let codec = match fourcc_at(body, 1) {
        FourCc::HVC1 => VideoCodec::Hevc,
        FourCc::AVC1 => VideoCodec::Avc,
        fourcc => {
            return Err(FlvError::UnsupportedFourCc {
                kind: "video",
                fourcc,
            })
        }
    };
    let packet = match packet_type {
        0 => VideoPacket::SequenceStart(body.slice(5..)),
        1 => {
            need(body, 8, "enhanced video CodedFrames")?;
            VideoPacket::CodedFrames {
                composition_time: si24([body[5], body[6], body[7]]),
                data: body.slice(8..),
            }
        }
        2 => VideoPacket::SequenceEnd,
        3 => VideoPacket::CodedFrames {
            composition_time: 0,
            data: body.slice(5..),
        },
        _ => VideoPacket::Metadata(body.slice(5..)),
    };
    Ok(VideoTag::Media {
        frame_type,
        codec,
        enhanced: true,
        packet,
    })
}

/// Parses an audio tag body (legacy AAC or Enhanced RTMP audio).
pub fn parse_audio(body: &Bytes) -> Result<AudioTag, FlvError> {
    need(body, 1, "audio tag")?;
    let format = body[0] >> 4;
    match format {
        SOUND_FORMAT_AAC => {
            need(body, 2, "AAC audio tag")?;
            let packet = match body[1] {
                0 => AudioPacket::SequenceStart(body.slice(2..)),
                1 => AudioPacket::CodedFrames(body.slice(2..)),
                n => {
                    return Err(FlvError::UnsupportedPacketType {
                        what: "AAC audio",
                        packet_type: n,
                    })
                }
            };
            Ok(AudioTag {
                codec: AudioCodec::Aac,
                enhanced: false,
                packet,
            })
        }
        SOUND_FORMAT_EX_HEADER => {
            let packet_type = body[0] & 0x0F;
            if !matches!(packet_type, 0 | 1 | 2 | 4) {
                // 5 Multitrack, 7 ModEx, others reserved
                return Err(FlvError::UnsupportedPacketType {
                    what: "enhanced audio",
                    packet_type,
                });
            }
            need(body, 5, "enhanced audio tag")?;
            let codec = match fourcc_at(body, 1) {
                FourCc::MP4A => AudioCodec::Aac,
                FourCc::OPUS => AudioCodec::Opus,
                fourcc => {
                    return Err(FlvError::UnsupportedFourCc {
                        kind: "audio",
                        fourcc,
                    })
                }
            };
            let data = body.slice(5..);
            let packet = match packet_type {
                0 => AudioPacket::SequenceStart(data),
                1 => AudioPacket::CodedFrames(data),
                2 => AudioPacket::SequenceEnd,
                _ => AudioPacket::MultichannelConfig(data),
            };
            Ok(AudioTag {
                codec,
                enhanced: true,
                packet,
            })
        }
        n => Err(FlvError::UnsupportedSoundFormat(n)),
    }
}

/// Clamps a composition time offset into the SI24 range the headers can carry.
pub fn clamp_si24(v: i64) -> i32 {
    v.clamp(-(1 << 23), (1 << 23) - 1) as i32
}

fn put_si24(out: &mut BytesMut, v: i32) {
    let b = clamp_si24(v.into()).to_be_bytes();
    out.put_slice(&b[1..]);
}

/// Builds the header bytes of a video tag (everything before the payload).
///
/// H.264 uses the legacy header (understood by every player); H.265 uses the Enhanced
/// RTMP `hvc1` header, with `CodedFramesX` when the composition time offset is zero.
pub fn video_header(codec: VideoCodec, frame_type: FrameType, packet: &VideoPacketKind) -> Bytes {
    let mut out = BytesMut::with_capacity(8);
    let ft = frame_type.to_u8();
    match codec {
        VideoCodec::Avc => {
            let (pt, cto) = match *packet {
                VideoPacketKind::SequenceStart => (0, 0),
                VideoPacketKind::CodedFrames { composition_time } => (1, composition_time),
                VideoPacketKind::SequenceEnd => (2, 0),
            };
            out.put_u8((ft << 4) | CODEC_ID_AVC);
            out.put_u8(pt);
            put_si24(&mut out, cto);
        }
        VideoCodec::Hevc => {
            let (pt, cto) = match *packet {
                VideoPacketKind::SequenceStart => (0, None),
                VideoPacketKind::CodedFrames {
                    composition_time: 0,
                } => (3, None),
                VideoPacketKind::CodedFrames { composition_time } => (1, Some(composition_time)),
                VideoPacketKind::SequenceEnd => (2, None),
            };
            out.put_u8(0x80 | (ft << 4) | pt);
            out.put_slice(&FourCc::HVC1.0);
            if let Some(cto) = cto {
                put_si24(&mut out, cto);
            }
        }
    }
    out.freeze()
}

/// Which video header [`video_header`] should build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPacketKind {
    SequenceStart,
    CodedFrames { composition_time: i32 },
    SequenceEnd,
}

/// Builds the header bytes of an audio tag: `AF 00`/`AF 01` for AAC, the Enhanced
/// `Opus` header for Opus.
pub fn audio_header(codec: AudioCodec, sequence_start: bool) -> Bytes {
    match codec {
        // SoundRate/Size/Type are fixed at 44 kHz/16-bit/stereo for AAC (decoders use the ASC).
        AudioCodec::Aac => Bytes::from_static(if sequence_start {
            &[0xAF, 0x00]
        } else {
            &[0xAF, 0x01]
        }),
        AudioCodec::Opus => {
            let mut out = BytesMut::with_capacity(5);
            out.put_u8((SOUND_FORMAT_EX_HEADER << 4) | u8::from(!sequence_start));
            out.put_slice(&FourCc::OPUS.0);
            out.freeze()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: &[u8]) -> Bytes {
        Bytes::copy_from_slice(v)
    }

    #[test]
    fn legacy_avc() {
        let t = parse_video(&b(&[0x17, 0, 0, 0, 0, 1, 0x64])).unwrap();
        assert_eq!(
            t,
            VideoTag::Media {
                frame_type: FrameType::Key,
                codec: VideoCodec::Avc,
                enhanced: false,
                packet: VideoPacket::SequenceStart(b(&[1, 0x64])),
            }
        );
        // negative composition time (-40)
        let t = parse_video(&b(&[0x27, 1, 0xFF, 0xFF, 0xD8, 0, 0, 0, 1, 0x41])).unwrap();
        let VideoTag::Media {
            packet, frame_type, ..
        } = t
        else {
            panic!()
        };
        assert_eq!(frame_type, FrameType::Inter);
        assert_eq!(
            packet,
            VideoPacket::CodedFrames {
                composition_time: -40,
                data: b(&[0, 0, 0, 1, 0x41])
            }
        );
        let t = parse_video(&b(&[0x17, 2, 0, 0, 0])).unwrap();
        assert!(matches!(
            t,
            VideoTag::Media {
                packet: VideoPacket::SequenceEnd,
                ..
            }
        ));
        // legacy HEVC (codec id 12)
        let t = parse_video(&b(&[0x1C, 1, 0, 0, 0x50, 9])).unwrap();
        assert!(matches!(
            t,
            VideoTag::Media {
                codec: VideoCodec::Hevc,
                enhanced: false,
                packet: VideoPacket::CodedFrames {
                    composition_time: 80,
                    ..
                },
                ..
            }
        ));
        assert_eq!(
            parse_video(&b(&[0x57, 1])).unwrap(),
            VideoTag::Command { command: 1 }
        );
    }

    #[test]
    fn enhanced_hevc() {
        let mut seq = vec![0x90];
        seq.extend_from_slice(b"hvc1");
        seq.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            parse_video(&b(&seq)).unwrap(),
            VideoTag::Media {
                frame_type: FrameType::Key,
                codec: VideoCodec::Hevc,
                enhanced: true,
                packet: VideoPacket::SequenceStart(b(&[1, 2, 3])),
            }
        );
        let mut coded = vec![0xA1];
        coded.extend_from_slice(b"hvc1");
        coded.extend_from_slice(&[0, 0, 0x28, 0xEE]);
        let VideoTag::Media { packet, .. } = parse_video(&b(&coded)).unwrap() else {
            panic!()
        };
        assert_eq!(
            packet,
            VideoPacket::CodedFrames {
                composition_time: 40,
                data: b(&[0xEE])
            }
        );
        let mut x = vec![0xA3];
        x.extend_from_slice(b"avc1");
        x.push(0xEE);
        let VideoTag::Media { packet, codec, .. } = parse_video(&b(&x)).unwrap() else {
            panic!()
        };
        assert_eq!(codec, VideoCodec::Avc);
        assert_eq!(
            packet,
            VideoPacket::CodedFrames {
                composition_time: 0,
                data: b(&[0xEE])
            }
        );
        for first in [0x84, 0xD4] {
            let mut meta = vec![first];
            meta.extend_from_slice(b"hvc1");
            assert!(matches!(
                parse_video(&b(&meta)).unwrap(),
                VideoTag::Media {
                    packet: VideoPacket::Metadata(_),
                    ..
                }
            ));
        }
        // command frame (FrameType 5, not metadata): VideoCommand byte, no FourCC
        assert_eq!(
            parse_video(&b(&[0xD0, 1])).unwrap(),
            VideoTag::Command { command: 1 }
        );
    }

    #[test]
    fn unsupported_and_malformed_video() {
        let mut av1 = vec![0x90];
        av1.extend_from_slice(b"av01");
        let e = parse_video(&b(&av1)).unwrap_err();
        assert_eq!(e.to_string(), "unsupported video FourCC \"av01\"");
        assert!(e.is_unsupported());
        assert_eq!(
            parse_video(&b(&[0x96, 0])).unwrap_err(),
            FlvError::UnsupportedPacketType {
                what: "enhanced video",
                packet_type: 6
            }
        );
        assert_eq!(
            parse_video(&b(&[0x12, 0])).unwrap_err(),
            FlvError::UnsupportedVideoCodecId(2)
        );
        assert_eq!(
            parse_video(&b(&[0x17, 0, 0, 0, 40, 1])).unwrap_err(),
            FlvError::CompositionTimeOnSequenceHeader(40)
        );
        assert_eq!(
            parse_video(&b(&[0x17, 1, 0])).unwrap_err().to_string(),
            "AVC video tag truncated: need 5 bytes, have 3"
        );
        assert!(parse_video(&b(&[])).is_err());
        assert!(parse_video(&b(&[0x07, 1, 0, 0, 0])).is_err()); // frame type 0
        assert!(parse_video(&b(&[0x91, b'h', b'v', b'c', b'1', 0])).is_err()); // short cto
        assert!(parse_video(&b(&[0x90, b'h', b'v'])).is_err());
        assert!(parse_video(&b(&[0x17, 3, 0, 0, 0])).is_err());
    }

    #[test]
    fn audio() {
        assert_eq!(
            parse_audio(&b(&[0xAF, 0, 0x12, 0x10])).unwrap(),
            AudioTag {
                codec: AudioCodec::Aac,
                enhanced: false,
                packet: AudioPacket::SequenceStart(b(&[0x12, 0x10]))
            }
        );
        assert_eq!(
            parse_audio(&b(&[0xAF, 1, 0x21])).unwrap().packet,
            AudioPacket::CodedFrames(b(&[0x21]))
        );
        let mut opus = vec![0x91];
        opus.extend_from_slice(b"Opus");
        opus.push(0xFC);
        assert_eq!(
            parse_audio(&b(&opus)).unwrap(),
            AudioTag {
                codec: AudioCodec::Opus,
                enhanced: true,
                packet: AudioPacket::CodedFrames(b(&[0xFC]))
            }
        );
        assert_eq!(
            parse_audio(&b(&[0x2F, 0xFF])).unwrap_err(),
            FlvError::UnsupportedSoundFormat(2)
        );
        let mut flac = vec![0x90];
        flac.extend_from_slice(b"fLaC");
        assert!(parse_audio(&b(&flac)).unwrap_err().is_unsupported());
        assert!(parse_audio(&b(&[0xAF])).is_err());
        assert!(parse_audio(&b(&[0xAF, 2])).is_err());
        assert!(parse_audio(&b(&[0x95, b'O'])).is_err());
        assert!(parse_audio(&b(&[0x90, b'O'])).is_err());
    }

    #[test]
    fn headers_round_trip_through_the_parser() {
        for (codec, kind) in [
            (
                VideoCodec::Avc,
                VideoPacketKind::CodedFrames {
                    composition_time: -80,
                },
            ),
            (VideoCodec::Avc, VideoPacketKind::SequenceStart),
            (
                VideoCodec::Hevc,
                VideoPacketKind::CodedFrames {
                    composition_time: 0,
                },
            ),
            (
                VideoCodec::Hevc,
                VideoPacketKind::CodedFrames {
                    composition_time: 120,
                },
            ),
            (VideoCodec::Hevc, VideoPacketKind::SequenceStart),
            (VideoCodec::Hevc, VideoPacketKind::SequenceEnd),
        ] {
            let mut body = BytesMut::from(&video_header(codec, FrameType::Key, &kind)[..]);
            body.extend_from_slice(&[0xAB]);
            let VideoTag::Media {
                codec: c, packet, ..
            } = parse_video(&body.freeze()).unwrap()
            else {
                panic!()
            };
            assert_eq!(c, codec);
            match (kind, packet) {
                (
                    VideoPacketKind::CodedFrames { composition_time },
                    VideoPacket::CodedFrames {
                        composition_time: got,
                        data,
                    },
                ) => {
                    assert_eq!(composition_time, got);
                    assert_eq!(&data[..], &[0xAB]);
                }
                (VideoPacketKind::SequenceStart, VideoPacket::SequenceStart(d)) => {
                    assert_eq!(&d[..], &[0xAB])
                }
                (VideoPacketKind::SequenceEnd, VideoPacket::SequenceEnd) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(clamp_si24(1 << 30), (1 << 23) - 1);
        assert_eq!(clamp_si24(-(1 << 30)), -(1 << 23));
        assert_eq!(si24([0x80, 0, 0]), -(1 << 23));
    }
}
