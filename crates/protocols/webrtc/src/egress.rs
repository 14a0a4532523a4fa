//! The hub's frames as RTP payloads for WHEP viewers.
//!
//! A frame is prepared once ([`Outgoing::prepare`]) and the same bytes go to every
//! viewer of the channel: str0m's writer takes an `Arc<[u8]>`, so a thousand viewers
//! share one allocation until each one's packetizer cuts its RTP packets.
//!
//! - **H.264**: the model's length-prefixed access unit becomes Annex B (the form the
//!   RTP packetizer splits, RFC 6184 packetization-mode 1), with the track's SPS and PPS
//!   before every keyframe that does not carry its own, so a viewer can start on any
//!   keyframe. The RTP time is the presentation time at 90 kHz. RTP carries no decode
//!   time, so a source with B-frames reaches the browser in decode order with
//!   presentation timestamps, which WebRTC decoders accept (docs/webrtc.md).
//! - **Opus**: the packet as it is, at 48 kHz.
//! - **Anything else** (AAC, H.265) is not prepared here: browsers take neither over
//!   WebRTC. The WHEP server turns a channel's AAC into Opus once for all its viewers
//!   (an ffmpeg child per channel) and hands them the packets as audio [`Outgoing`]s
//!   (docs/webrtc.md).

use std::sync::Arc;

use starling_media::{annexb::video_to_annexb, CodecConfig, Frame, Stream, TrackKind};

use crate::{OPUS_CLOCK, VIDEO_CLOCK};

/// One frame ready for every viewer.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub kind: TrackKind,
    pub keyframe: bool,
    /// Presentation time in the RTP clock of its kind (90 kHz video, 48 kHz Opus), on
    /// the channel's media timeline (may be negative right after a rebase; each viewer
    /// offsets it).
    pub rtp_time: i64,
    pub payload: Arc<[u8]>,
}

impl Outgoing {
    /// The frame as RTP wants it, or `None` for a track WebRTC viewers cannot take.
    pub fn prepare(stream: &Stream, frame: &Frame) -> Option<Outgoing> {
        let track = stream.track(frame.track)?;
        let (clock, payload): (u32, Arc<[u8]>) = match &track.config {
            c @ CodecConfig::H264(_) => (
                VIDEO_CLOCK,
                video_to_annexb(c, &frame.data, frame.keyframe).ok()?.into(),
            ),
            CodecConfig::Opus(_) => (OPUS_CLOCK, Arc::from(&frame.data[..])),
            _ => return None,
        };
        let rtp_time = rescale(frame.pts, track.timescale, clock);
        Some(Outgoing {
            kind: track.kind(),
            keyframe: frame.keyframe,
            rtp_time,
            payload,
        })
    }

    /// Whether a stream has anything a WebRTC viewer can play.
    pub fn playable(stream: &Stream) -> (bool, bool) {
        let video = stream
            .video()
            .is_some_and(|t| matches!(t.config, CodecConfig::H264(_)));
        let audio = stream
            .audio()
            .is_some_and(|t| matches!(t.config, CodecConfig::Opus(_)));
        (video, audio)
    }
}

/// `ticks` at `from` Hz in `to` Hz, rounded down.
fn rescale(ticks: i64, from: u32, to: u32) -> i64 {
    if from == to || from == 0 {
        return ticks;
    }
    let v = i128::from(ticks) * i128::from(to) / i128::from(from);
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use starling_media::{
        aac::AudioSpecificConfig, h264::AvcConfig, nal, OpusConfig, Track, TrackId,
    };

    use super::*;

    fn stream() -> Stream {
        let sps = Bytes::from_static(&[
            0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
            0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
        ]);
        let pps = Bytes::from_static(&[0x68, 0xcb, 0x83, 0xcb, 0x20]);
        Stream {
            tracks: vec![
                Track {
                    id: TrackId(1),
                    timescale: 1000,
                    config: CodecConfig::H264(
                        AvcConfig::from_parameter_sets(&[sps], &[pps]).unwrap(),
                    ),
                },
                Track {
                    id: TrackId(2),
                    timescale: 44_100,
                    config: CodecConfig::Aac(
                        AudioSpecificConfig::parse(Bytes::from_static(&[0x12, 0x10])).unwrap(),
                    ),
                },
                Track {
                    id: TrackId(3),
                    timescale: 48_000,
                    config: CodecConfig::Opus(OpusConfig {
                        channels: 2,
                        pre_skip: 0,
                        input_sample_rate: 48_000,
                        output_gain: 0,
                    }),
                },
            ],
            ..Stream::default()
        }
    }

    fn frame(track: u32, pts: i64, keyframe: bool, data: &'static [u8]) -> Frame {
        Frame {
            track: TrackId(track),
            pts,
            dts: pts,
            keyframe,
            data: Bytes::from_static(data),
            arrival: std::time::UNIX_EPOCH,
        }
    }

    #[test]
    fn keyframes_carry_parameter_sets_in_annex_b_at_90_khz() {
        let s = stream();
        let k = Outgoing::prepare(&s, &frame(1, 40, true, &[0, 0, 0, 2, 0x65, 0x88])).unwrap();
        assert_eq!(k.rtp_time, 3_600);
        let types: Vec<u8> = nal::split_annexb(&Bytes::copy_from_slice(&k.payload))
            .map(|u| u[0] & 0x1f)
            .collect();
        assert_eq!(types, [9, 7, 8, 5]);
        let p = Outgoing::prepare(&s, &frame(1, 80, false, &[0, 0, 0, 2, 0x41, 0x9a])).unwrap();
        assert_eq!(p.payload.len(), 6 + 6);
    }

    #[test]
    fn aac_is_not_sent_and_opus_is_as_it_came() {
        let s = stream();
        assert!(Outgoing::prepare(&s, &frame(2, 0, true, &[1, 2])).is_none());
        let o = Outgoing::prepare(&s, &frame(3, 960, true, &[0xfc, 7])).unwrap();
        assert_eq!((o.rtp_time, &o.payload[..]), (960, &[0xfc, 7][..]));
        assert!(Outgoing::prepare(&s, &frame(9, 0, true, &[1])).is_none());
        assert_eq!(Outgoing::playable(&s), (true, false));
    }
}
