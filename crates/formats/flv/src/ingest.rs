//! FLV tag bodies (as an RTMP publisher or an FLV file delivers them) to the media model.
//!
//! [`FlvIngest`] is fed one tag body at a time and **returns** the resulting events (no
//! out-queue to drain): `Ok(vec![])` is normal (a repeated sequence header, a frame
//! that arrived before its configuration), an `Err` is about that one tag and the
//! converter stays usable, so a caller may log it and go on.
//!
//! What it produces:
//! - `MediaEvent::Stream` whenever a track appears or a codec configuration changes:
//!   as soon as the video configuration is known (it never waits for audio), and again
//!   when the audio configuration arrives (or first audio, then video). Repeated identical
//!   sequence headers produce nothing. Metadata given with [`FlvIngest::metadata`] is
//!   carried in the next `Stream`; on its own it does not re-announce.
//! - `MediaEvent::Frame` per coded frame. Video is [`VIDEO_TRACK`], audio [`AUDIO_TRACK`];
//!   every track keeps FLV's millisecond clock (timescale 1000, AAC and Opus included:
//!   FLV gives no finer time, and resampling guesses would drift). Timestamps are
//!   extended from 32 bits to `i64` across wrap-around (one clock shared by both tracks,
//!   each step taken as the signed 32-bit difference from the last one). `dts` is the tag
//!   timestamp, `pts = dts + composition time` exactly as sent, even if negative: the
//!   converter does not invent timing. Video payloads are the length-prefixed NAL units of
//!   the tag, zero-copy; their framing is checked against the configuration's length size
//!   and the keyframe flag is the NAL truth, meaning "a segment may start here and be
//!   decoded on its own":
//!   - H.264: an IDR slice, or a recovery point SEI (intra-refresh sources send no IDR;
//!     decoding from the recovery point is what such sources intend);
//!   - H.265: IDR and BLA pictures; a CRA only when it is the stream's first picture or
//!     the stream has sent no RASL picture so far. A CRA's RASL pictures reference
//!     pictures before it, so a segment starting at the CRA of an open-GOP stream would
//!     not decode on its own (we keep the RASL pictures for viewers who play through
//!     rather than dropping them); once a RASL picture shows the encoder uses open GOPs,
//!     its CRAs are ordinary frames and the packager cuts such streams at its maximum
//!     segment duration.
//!
//!   The FLV frame type is only compared with it, and disagreements are counted
//!   ([`FlvIngest::keyframe_flag_mismatches`]).
//!
//! It must never do I/O or read a clock: arrival times are handed in.

use std::{sync::Arc, time::SystemTime};

use bytes::Bytes;
use starling_media::{
    aac::AudioSpecificConfig, h264, h264::AvcConfig, h265, h265::HevcConfig, nal, CodecConfig,
    Frame, MediaEvent, OpusConfig, Stream, Track, TrackId,
};

use crate::{
    tag::{parse_audio, parse_video, AudioCodec, AudioPacket, VideoCodec, VideoPacket, VideoTag},
    FlvError,
};

/// Track id of the video track of an FLV stream.
pub const VIDEO_TRACK: TrackId = TrackId(1);
/// Track id of the audio track of an FLV stream.
pub const AUDIO_TRACK: TrackId = TrackId(2);
/// Ticks per second of every FLV-derived track: FLV timestamps are milliseconds.
pub const TIMESCALE: u32 = 1000;

/// Extends 32-bit millisecond timestamps to a continuous 64-bit clock.
#[derive(Debug, Default, Clone)]
struct Clock {
    last: Option<(u32, i64)>,
}

impl Clock {
    fn extend(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            None => i64::from(ts),
            Some((raw, ext)) => ext + i64::from(ts.wrapping_sub(raw) as i32),
        };
        self.last = Some((ts, ext));
        ext
    }
}

/// Stateful converter from FLV tag bodies to [`MediaEvent`]s (see the module docs).
#[derive(Debug, Default)]
pub struct FlvIngest {
    video: Option<CodecConfig>,
    audio: Option<CodecConfig>,
    metadata: Vec<(String, String)>,
    clock: Clock,
    dropped_before_config: u64,
    keyframe_flag_mismatches: u64,
    annexb_frames: u64,
    /// Video frames emitted since the last video configuration.
    video_frames: u64,
    /// H.265: a RASL picture was seen, so CRAs lead open GOPs.
    open_gop: bool,
}

impl FlvIngest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the body of a video tag (RTMP message type 9 / FLV tag type 9).
    pub fn video(
        &mut self,
        timestamp_ms: u32,
        body: Bytes,
        arrival: SystemTime,
    ) -> Result<Vec<MediaEvent>, FlvError> {
        let VideoTag::Media {
            frame_type,
            codec,
            packet,
            ..
        } = parse_video(&body)?
        else {
            return Ok(Vec::new());
        };
        match packet {
            // Some muxers (ffmpeg's flv behind its tee muxer, for one) send an empty
            // sequence header and carry the parameter sets in-band instead.
            VideoPacket::SequenceStart(record) if record.is_empty() => Ok(Vec::new()),
            VideoPacket::SequenceStart(record) => {
                let config = match codec {
                    VideoCodec::Avc => CodecConfig::H264(AvcConfig::parse(record)?),
                    VideoCodec::Hevc => CodecConfig::H265(HevcConfig::parse(record)?),
                };
                Ok(self.set_config(true, config))
            }
            VideoPacket::CodedFrames {
                composition_time,
                data,
            } => {
                let dts = self.clock.extend(timestamp_ms);
                let length_size = match &self.video {
                    Some(CodecConfig::H264(c)) => c.nal_length_size,
                    Some(CodecConfig::H265(c)) => c.nal_length_size,
                    _ => 4,
                };
                let data = self.normalize_nal_framing(data, length_size);
                let mut events = Vec::new();
                if self.video.is_none() {
                    if let Some(config) = in_band_config(codec, &data) {
                        events = self.set_config(true, config);
                    }
                }
                let Some(config) = &self.video else {
                    self.dropped_before_config += 1;
                    return Ok(Vec::new());
                };
                let (length_size, configured) = match config {
                    CodecConfig::H264(c) => (c.nal_length_size, VideoCodec::Avc),
                    CodecConfig::H265(c) => (c.nal_length_size, VideoCodec::Hevc),
                    _ => (4, codec),
                };
                if configured != codec {
                    return Err(FlvError::CodecMismatch {
                        track: "video",
                        configured: configured.name(),
                        got: codec.name(),
                    });
                }
                if data.is_empty() {
                    return Ok(Vec::new());
                }
                let (mut keyframe, mut cra) = (false, false);
                for unit in nal::iter_length_prefixed(&data, length_size) {
                    let unit = unit?;
                    let header = unit.first().copied().unwrap_or(0);
                    match codec {
                        VideoCodec::Avc => {
                            keyframe |= h264::nal_type(header) == h264::NAL_IDR
                                || h264::is_recovery_point_sei(&unit);
                        }
                        VideoCodec::Hevc => {
                            let t = h265::nal_type(header);
                            keyframe |= h265::is_irap(t) && t != h265::NAL_CRA;
                            cra |= t == h265::NAL_CRA;
                            self.open_gop |= h265::is_rasl(t);
                        }
                    }
                }
                let first = self.video_frames == 0;
                self.video_frames += 1;
                keyframe |= cra && (first || !self.open_gop);
                // An open-GOP CRA the muxer flags as key is not a disagreement.
                if keyframe != frame_type.is_key() && !(cra && frame_type.is_key()) {
                    self.keyframe_flag_mismatches += 1;
                }
                events.push(MediaEvent::Frame(Frame {
                    track: VIDEO_TRACK,
                    dts,
                    pts: dts + i64::from(composition_time),
                    keyframe,
                    data,
                    arrival,
                }));
                Ok(events)
            }
            VideoPacket::SequenceEnd | VideoPacket::Metadata(_) => Ok(Vec::new()),
        }
    }

    /// Feeds the body of an audio tag (RTMP message type 8 / FLV tag type 8).
    pub fn audio(
        &mut self,
        timestamp_ms: u32,
        body: Bytes,
        arrival: SystemTime,
    ) -> Result<Vec<MediaEvent>, FlvError> {
        let tag = parse_audio(&body)?;
        match tag.packet {
            AudioPacket::SequenceStart(record) => {
                let config = match tag.codec {
                    AudioCodec::Aac => CodecConfig::Aac(AudioSpecificConfig::parse(record)?),
                    AudioCodec::Opus => CodecConfig::Opus(parse_opus_head(&record)?),
                };
                Ok(self.set_config(false, config))
            }
            AudioPacket::CodedFrames(data) => {
                let dts = self.clock.extend(timestamp_ms);
                let Some(config) = &self.audio else {
                    self.dropped_before_config += 1;
                    return Ok(Vec::new());
                };
                let configured = match config {
                    CodecConfig::Opus(_) => AudioCodec::Opus,
                    _ => AudioCodec::Aac,
                };
                if configured != tag.codec {
                    return Err(FlvError::CodecMismatch {
                        track: "audio",
                        configured: configured.name(),
                        got: tag.codec.name(),
                    });
                }
                if data.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![MediaEvent::Frame(Frame {
                    track: AUDIO_TRACK,
                    dts,
                    pts: dts,
                    keyframe: true,
                    data,
                    arrival,
                })])
            }
            AudioPacket::SequenceEnd | AudioPacket::MultichannelConfig(_) => Ok(Vec::new()),
        }
    }

    /// Records the publisher's metadata (onMetaData / @setDataFrame, flattened to
    /// strings by the caller). It is carried in every following `Stream` announcement.
    pub fn metadata(&mut self, pairs: Vec<(String, String)>) {
        self.metadata = pairs;
    }

    /// The stream as currently known (tracks whose configuration has arrived).
    pub fn stream(&self) -> Stream {
        let mut tracks = Vec::new();
        if let Some(c) = &self.video {
            tracks.push(Track {
                id: VIDEO_TRACK,
                timescale: TIMESCALE,
                config: c.clone(),
            });
        }
        if let Some(c) = &self.audio {
            tracks.push(Track {
                id: AUDIO_TRACK,
                timescale: TIMESCALE,
                config: c.clone(),
            });
        }
        Stream {
            tracks,
            metadata: self.metadata.clone(),
            clock: Default::default(),
        }
    }

    /// Coded frames dropped because their sequence header had not arrived yet.
    pub fn dropped_before_config(&self) -> u64 {
        self.dropped_before_config
    }

    /// Video frames whose FLV FrameType disagreed with their NAL units about being a
    /// keyframe (the NAL units win).
    pub fn keyframe_flag_mismatches(&self) -> u64 {
        self.keyframe_flag_mismatches
    }

    /// Video frames that arrived in Annex B form (start codes) and were converted.
    pub fn annexb_frames(&self) -> u64 {
        self.annexb_frames
    }

    /// FLV carries length-prefixed NAL units, but a muxer given no decoder configuration
    /// (ffmpeg's flv behind its tee muxer, for one) passes the encoder's Annex B output
    /// through. Such a frame is converted (one copy, at ingest) so the model stays
    /// length-prefixed. A body that parses cleanly as length-prefixed is kept as it is,
    /// since `00 00 01 xx` is also a valid 4-byte length.
    fn normalize_nal_framing(&mut self, data: Bytes, length_size: u8) -> Bytes {
        if is_length_prefixed(&data, length_size)
            || !(data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1]))
        {
            return data;
        }
        match nal::annexb_to_length_prefixed(&data, length_size) {
            Ok(converted) => {
                self.annexb_frames += 1;
                converted
            }
            Err(_) => data,
        }
    }

    fn set_config(&mut self, video: bool, config: CodecConfig) -> Vec<MediaEvent> {
        let slot = if video {
            &mut self.video
        } else {
            &mut self.audio
        };
        if slot.as_ref() == Some(&config) {
            return Vec::new();
        }
        *slot = Some(config);
        if video {
            // The packager waits for a keyframe after a change: a CRA may be it again.
            self.video_frames = 0;
        }
        vec![MediaEvent::Stream(Arc::new(self.stream()))]
    }
}

/// Whether `data` is a sequence of length-prefixed NAL units that ends exactly at the
/// end of the buffer, each with a clear forbidden_zero_bit.
fn is_length_prefixed(data: &Bytes, length_size: u8) -> bool {
    let mut any = false;
    for unit in nal::iter_length_prefixed(data, length_size) {
        match unit {
            Ok(u) if u.first().is_some_and(|h| h & 0x80 == 0) => any = true,
            _ => return false,
        }
    }
    any
}

/// A decoder configuration built from parameter sets carried inside a frame (4-byte
/// NAL lengths, as every FLV muxer writes them), for streams without a usable sequence
/// header. `None` until a frame carries all of them.
fn in_band_config(codec: VideoCodec, data: &Bytes) -> Option<CodecConfig> {
    let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
    for unit in nal::iter_length_prefixed(data, 4) {
        let unit = unit.ok()?;
        let header = unit.first().copied().unwrap_or(0);
        match codec {
            VideoCodec::Avc => match h264::nal_type(header) {
                h264::NAL_SPS => sps.push(unit),
                h264::NAL_PPS => pps.push(unit),
                _ => {}
            },
            VideoCodec::Hevc => match h265::nal_type(header) {
                h265::NAL_VPS => vps.push(unit),
                h265::NAL_SPS => sps.push(unit),
                h265::NAL_PPS => pps.push(unit),
                _ => {}
            },
        }
    }
    if sps.is_empty() || pps.is_empty() {
        return None;
    }
    match codec {
        VideoCodec::Avc => AvcConfig::from_parameter_sets(&sps, &pps)
            .ok()
            .map(CodecConfig::H264),
        VideoCodec::Hevc if !vps.is_empty() => HevcConfig::from_parameter_sets(&vps, &sps, &pps)
            .ok()
            .map(CodecConfig::H265),
        VideoCodec::Hevc => None,
    }
}

/// Parses an `OpusHead` identification header (RFC 7845 §5.1).
pub fn parse_opus_head(data: &[u8]) -> Result<OpusConfig, FlvError> {
    if data.len() < 19 {
        return Err(FlvError::Truncated {
            what: "OpusHead",
            need: 19,
            have: data.len(),
        });
    }
    if &data[..8] != b"OpusHead" {
        return Err(FlvError::OpusHead("missing \"OpusHead\" magic"));
    }
    if data[8] >> 4 != 0 {
        return Err(FlvError::OpusHead("unsupported major version"));
    }
    if data[9] == 0 {
        return Err(FlvError::OpusHead("zero channels"));
    }
    Ok(OpusConfig {
        channels: data[9],
        pre_skip: u16::from_le_bytes([data[10], data[11]]),
        input_sample_rate: u32::from_le_bytes([data[12], data[13], data[14], data[15]]),
        output_gain: i16::from_le_bytes([data[16], data[17]]),
    })
}

/// Builds an `OpusHead` for mono/stereo (channel mapping family 0). Layouts with more
/// channels need a mapping table that [`OpusConfig`] does not keep, so they give `None`.
pub fn build_opus_head(c: &OpusConfig) -> Option<Bytes> {
    if !(1..=2).contains(&c.channels) {
        return None;
    }
    let mut v = Vec::with_capacity(19);
    v.extend_from_slice(b"OpusHead");
    v.push(1);
    v.push(c.channels);
    v.extend_from_slice(&c.pre_skip.to_le_bytes());
    v.extend_from_slice(&c.input_sample_rate.to_le_bytes());
    v.extend_from_slice(&c.output_gain.to_le_bytes());
    v.push(0);
    Some(Bytes::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tag::VideoPacketKind;

    const AVCC_720P: [u8; 47] = [
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40,
        0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0,
        0xf1, 0x83, 0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8,
        0xf8, 0x00,
    ];

    fn seq_header() -> Bytes {
        let mut v = vec![0x17, 0, 0, 0, 0];
        v.extend_from_slice(&AVCC_720P);
        Bytes::from(v)
    }

    fn frame(key: bool, cto: i32, nal_type: u8) -> Bytes {
        let c = cto.to_be_bytes();
        Bytes::from(vec![
            if key { 0x17 } else { 0x27 },
            1,
            c[1],
            c[2],
            c[3],
            0,
            0,
            0,
            2,
            nal_type,
            0x80,
        ])
    }

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn annex_b_frames_are_converted_to_length_prefixed() {
        let sps: &[u8] = &[
            0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
            0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
        ];
        let pps: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
        let mut ing = FlvIngest::new();
        let now = SystemTime::UNIX_EPOCH;
        let mut body = vec![0x17, 1, 0, 0, 0];
        for (i, nal) in [sps, pps, &[0x65, 0x88, 0x84][..]].iter().enumerate() {
            body.extend_from_slice(if i == 0 {
                &[0, 0, 0, 1][..]
            } else {
                &[0, 0, 1][..]
            });
            body.extend_from_slice(nal);
        }
        let events = ing.video(0, Bytes::from(body), now).unwrap();
        let MediaEvent::Frame(f) = &events[1] else {
            panic!("{events:?}")
        };
        assert!(f.keyframe);
        let units: Vec<Bytes> = nal::iter_length_prefixed(&f.data, 4)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(units.len(), 3);
        assert_eq!(&units[2][..], &[0x65, 0x88, 0x84]);
        assert_eq!(ing.annexb_frames(), 1);
        // A length-prefixed body whose first length looks like a start code stays as is.
        let mut nal = vec![0x41];
        nal.resize(0x1AB, 0x5A);
        let mut body = vec![0x27, 1, 0, 0, 0, 0, 0, 1, 0xAB];
        body.extend_from_slice(&nal);
        let events = ing.video(40, Bytes::from(body), now).unwrap();
        let MediaEvent::Frame(f) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(f.data.len(), 4 + 0x1AB);
        assert_eq!(ing.annexb_frames(), 1);
    }

    #[test]
    fn in_band_parameter_sets_stand_in_for_an_empty_sequence_header() {
        // SPS/PPS of libx264 320x240 baseline (`ffmpeg -f lavfi -i testsrc2=size=320x240
        // -frames:v 1 -c:v libx264 -profile:v baseline -f h264 -`).
        let sps: &[u8] = &[
            0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
            0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
        ];
        let pps: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
        let mut ing = FlvIngest::new();
        let now = SystemTime::UNIX_EPOCH;
        assert!(ing
            .video(0, Bytes::from_static(&[0x17, 0, 0, 0, 0]), now)
            .unwrap()
            .is_empty());
        let mut body = vec![0x17, 1, 0, 0, 0];
        for nal in [sps, pps, &[0x65, 0x88, 0x84][..]] {
            body.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            body.extend_from_slice(nal);
        }
        let events = ing.video(0, Bytes::from(body), now).unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        let MediaEvent::Stream(stream) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(
            stream.video().unwrap().config.dimensions(),
            Some((320, 240))
        );
        assert!(matches!(&events[1], MediaEvent::Frame(f) if f.keyframe));
        assert_eq!(ing.dropped_before_config(), 0);
        // A frame without parameter sets before any config is still dropped.
        let mut ing = FlvIngest::new();
        let p = Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a]);
        assert!(ing.video(0, p, now).unwrap().is_empty());
        assert_eq!(ing.dropped_before_config(), 1);
    }

    #[test]
    fn frames_before_config_are_dropped_and_counted() {
        let mut ing = FlvIngest::new();
        assert!(ing.video(0, frame(true, 0, 0x65), T0).unwrap().is_empty());
        assert!(ing
            .audio(0, Bytes::from_static(&[0xAF, 1, 0x21]), T0)
            .unwrap()
            .is_empty());
        assert_eq!(ing.dropped_before_config(), 2);
        let ev = ing.video(0, seq_header(), T0).unwrap();
        let [MediaEvent::Stream(s)] = &ev[..] else {
            panic!("{ev:?}")
        };
        assert_eq!(s.tracks.len(), 1);
        assert_eq!(s.video().unwrap().config.codec_string(), "avc1.64001f");
        // the same header again: nothing
        assert!(ing.video(40, seq_header(), T0).unwrap().is_empty());
        // audio config: a second announcement with both tracks
        ing.metadata(vec![("encoder".into(), "test".into())]);
        let ev = ing
            .audio(0, Bytes::from_static(&[0xAF, 0, 0x11, 0x90]), T0)
            .unwrap();
        let [MediaEvent::Stream(s)] = &ev[..] else {
            panic!("{ev:?}")
        };
        assert_eq!(s.tracks.len(), 2);
        assert_eq!(s.audio().unwrap().id, AUDIO_TRACK);
        assert_eq!(s.metadata[0].1, "test");
    }

    #[test]
    fn frames_carry_pts_dts_and_nal_keyframes() {
        let mut ing = FlvIngest::new();
        ing.video(0, seq_header(), T0).unwrap();
        let ev = ing.video(100, frame(true, 80, 0x65), T0).unwrap();
        let [MediaEvent::Frame(f)] = &ev[..] else {
            panic!()
        };
        assert_eq!(
            (f.dts, f.pts, f.keyframe, f.track),
            (100, 180, true, VIDEO_TRACK)
        );
        assert_eq!(&f.data[..], &[0, 0, 0, 2, 0x65, 0x80]);
        // negative cto is kept as given
        let ev = ing.video(140, frame(false, -40, 0x41), T0).unwrap();
        let [MediaEvent::Frame(f)] = &ev[..] else {
            panic!()
        };
        assert_eq!((f.dts, f.pts, f.keyframe), (140, 100, false));
        // flagged key but no IDR: not a keyframe, counted
        let ev = ing.video(180, frame(true, 0, 0x41), T0).unwrap();
        let [MediaEvent::Frame(f)] = &ev[..] else {
            panic!()
        };
        assert!(!f.keyframe);
        assert_eq!(ing.keyframe_flag_mismatches(), 1);
        // broken NAL framing is a typed error, and the converter goes on
        let mut bad = frame(false, 0, 0x41).to_vec();
        bad[8] = 200;
        assert!(matches!(
            ing.video(220, Bytes::from(bad), T0),
            Err(FlvError::Media(_))
        ));
        assert_eq!(ing.video(260, frame(false, 0, 0x41), T0).unwrap().len(), 1);
        // an HEVC frame on an AVC track
        let mut hevc = vec![0xA3];
        hevc.extend_from_slice(b"hvc1");
        hevc.extend_from_slice(&[0, 0, 0, 1, 0x26]);
        assert!(matches!(
            ing.video(300, Bytes::from(hevc), T0),
            Err(FlvError::CodecMismatch { .. })
        ));
    }

    /// hvcC of `ffmpeg -c:v libx265 -tag:v hvc1` (testsrc2, 1280x720; as in starling-media).
    const HVCC_720P: &str = "0101600000009000000000005df000fcfdf8f800000f03a00001001840010c01ff\
        ff01600000030090000003000003005d959809a10001002b42010101600000030090000003000003005da002\
        80802d165959a4932bc05a020000030002000003003c10a2000100074401c172b46240";

    fn hevc_tag(key: bool, packet: VideoPacketKind, payload: &[u8]) -> Bytes {
        use crate::tag::{video_header, FrameType};
        let ft = if key {
            FrameType::Key
        } else {
            FrameType::Inter
        };
        let mut v = video_header(VideoCodec::Hevc, ft, &packet).to_vec();
        v.extend_from_slice(payload);
        Bytes::from(v)
    }

    /// One length-prefixed HEVC NAL unit of type `t`.
    fn hevc_nal(t: u8) -> Vec<u8> {
        vec![0, 0, 0, 3, t << 1, 1, 0xAF]
    }

    fn keyframes(
        ing: &mut FlvIngest,
        codec_tag: impl Fn(bool, &[u8]) -> Bytes,
        aus: &[(bool, Vec<u8>)],
    ) -> Vec<bool> {
        let mut out = Vec::new();
        for (i, (flag, au)) in aus.iter().enumerate() {
            for ev in ing.video(40 * i as u32, codec_tag(*flag, au), T0).unwrap() {
                if let MediaEvent::Frame(f) = ev {
                    out.push(f.keyframe);
                }
            }
        }
        out
    }

    #[test]
    fn hevc_cra_is_a_keyframe_only_first_or_without_rasl() {
        let record: Vec<u8> = (0..HVCC_720P.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&HVCC_720P[i..i + 2], 16).unwrap())
            .collect();
        let mut ing = FlvIngest::new();
        ing.video(
            0,
            hevc_tag(true, VideoPacketKind::SequenceStart, &record),
            T0,
        )
        .unwrap();
        let tag = |key: bool, au: &[u8]| {
            hevc_tag(
                key,
                VideoPacketKind::CodedFrames {
                    composition_time: 0,
                },
                au,
            )
        };
        // CRA (first), TRAIL, CRA (no RASL seen yet: closed), RASL, TRAIL, CRA (open GOP
        // now), IDR, BLA.
        let aus = [
            (true, hevc_nal(21)),
            (false, hevc_nal(1)),
            (true, hevc_nal(21)),
            (false, hevc_nal(8)),
            (false, hevc_nal(1)),
            (true, hevc_nal(21)),
            (true, hevc_nal(19)),
            (true, hevc_nal(16)),
        ];
        assert_eq!(
            keyframes(&mut ing, tag, &aus),
            [true, false, true, false, false, false, true, true]
        );
        assert_eq!(ing.keyframe_flag_mismatches(), 0);
    }

    #[test]
    fn h264_recovery_point_sei_is_a_keyframe() {
        let mut ing = FlvIngest::new();
        ing.video(0, seq_header(), T0).unwrap();
        let tag = |key: bool, au: &[u8]| {
            let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
            v.extend_from_slice(au);
            Bytes::from(v)
        };
        // intra refresh: SEI(recovery point) + non-IDR slice, then plain non-IDR slices
        let sei_slice = [
            &[0, 0, 0, 5, 0x06, 0x06, 0x01, 0xC4, 0x80][..],
            &[0, 0, 0, 2, 0x41, 0x80],
        ]
        .concat();
        let aus = [
            (true, sei_slice.clone()),
            (false, vec![0, 0, 0, 2, 0x41, 0x80]),
            (false, sei_slice),
        ];
        assert_eq!(keyframes(&mut ing, tag, &aus), [true, false, true]);
    }

    #[test]
    fn timestamps_extend_across_wrap_around() {
        let mut c = Clock::default();
        assert_eq!(c.extend(u32::MAX - 10), i64::from(u32::MAX) - 10);
        assert_eq!(c.extend(5), i64::from(u32::MAX) + 6);
        assert_eq!(c.extend(3), i64::from(u32::MAX) + 4); // slight step back
        assert_eq!(c.extend(u32::MAX - 1), i64::from(u32::MAX) - 1); // back across the wrap
        let mut ing = FlvIngest::new();
        ing.video(0, seq_header(), T0).unwrap();
        let mut dts = Vec::new();
        for ts in [u32::MAX - 40, u32::MAX, 39, 79] {
            for ev in ing.video(ts, frame(false, 0, 0x41), T0).unwrap() {
                if let MediaEvent::Frame(f) = ev {
                    dts.push(f.dts);
                }
            }
        }
        let base = i64::from(u32::MAX) - 40;
        assert_eq!(dts, vec![base, base + 40, base + 80, base + 120]);
    }

    #[test]
    fn opus_head() {
        let head = hex_opus();
        let c = parse_opus_head(&head).unwrap();
        assert_eq!(
            (c.channels, c.pre_skip, c.input_sample_rate),
            (2, 312, 48000)
        );
        assert_eq!(build_opus_head(&c).unwrap(), head);
        assert!(parse_opus_head(&head[..10]).is_err());
        let mut bad = head.to_vec();
        bad[0] = b'X';
        assert!(parse_opus_head(&bad).is_err());
        let mut ing = FlvIngest::new();
        let mut seq = vec![0x90];
        seq.extend_from_slice(b"Opus");
        seq.extend_from_slice(&head);
        let ev = ing.audio(0, Bytes::from(seq), T0).unwrap();
        assert!(
            matches!(&ev[..], [MediaEvent::Stream(s)] if s.audio().unwrap().config.codec_string() == "opus")
        );
    }

    fn hex_opus() -> Bytes {
        // OpusHead as libopus/FFmpeg write it for 48 kHz stereo (pre-skip 312).
        let mut v = b"OpusHead".to_vec();
        v.extend_from_slice(&[1, 2, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0]);
        Bytes::from(v)
    }
}
