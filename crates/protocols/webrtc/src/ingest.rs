//! A WHIP publisher's RTP media as the media model: one [`Stream`] with an H.264 and/or
//! an Opus track, and their [`Frame`]s on one timeline.
//!
//! - **H.264**: str0m hands over whole access units in Annex B. The parameter sets come
//!   in-band (browsers and OBS send SPS and PPS before every IDR); the first complete set
//!   makes the track's config, and a different set later announces a new `Stream` (a
//!   resolution change). Video before the first keyframe, and after a gap in the RTP
//!   sequence (`contiguous == false`) until the next keyframe, is dropped and a keyframe
//!   is asked for: a decoder fed across a loss would show garbage in every copy.
//! - **Opus**: raw packets, as the model carries them.
//! - **Timing**: RTP timestamps start at a random value per track (RFC 3550 §5.1), so
//!   each track is placed on the session's timeline by the arrival of its first packet:
//!   media time 0 is the session's start, and a track's time advances by its RTP clock
//!   from there. The tracks therefore line up to within the difference of their first
//!   packets' network delays (milliseconds; RTCP sender reports would refine it, planned).
//!   WebRTC carries no decode time: `dts = pts`. Browsers and OBS's WHIP output send no
//!   B-frames; a stream with them would reach the packager with decode times out of
//!   order (docs/webrtc.md).

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use starling_media::{
    annexb::{video_from_annexb, ParameterSets, VideoCodec},
    CodecConfig, Frame, MediaEvent, OpusConfig, SourceClock, Stream, Track, TrackId,
};

use crate::{OPUS_CLOCK, VIDEO_CLOCK};

pub(crate) const VIDEO_TRACK: TrackId = TrackId(1);
pub(crate) const AUDIO_TRACK: TrackId = TrackId(2);

/// What kind of media a depacketized frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    H264,
    Opus,
}

/// One depacketized frame, in the terms this module needs.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub codec: Codec,
    /// Extended (unwrapped) RTP timestamp.
    pub rtp_time: u64,
    /// When its first packet arrived, since the session started.
    pub since_start: Duration,
    /// No RTP packet is missing between this frame and the previous one.
    pub contiguous: bool,
    pub data: Bytes,
}

/// What one frame brought.
#[derive(Debug, Default)]
pub(crate) struct Ingested {
    pub events: Vec<MediaEvent>,
    /// The publisher should send a keyframe (none yet, or video was lost).
    pub want_keyframe: bool,
}

/// A track's place on the session timeline.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    first_rtp: u64,
    offset_ticks: i64,
}

impl Anchor {
    fn new(rtp: u64, since_start: Duration, clock: u32) -> Self {
        let offset = since_start.as_micros() * u128::from(clock) / 1_000_000;
        Anchor {
            first_rtp: rtp,
            offset_ticks: i64::try_from(offset).unwrap_or(i64::MAX),
        }
    }

    fn ticks(&self, rtp: u64) -> i64 {
        // RTP time runs forwards; a packet reordered before the first one is at most a
        // few ticks early and lands just before the track's start.
        let delta = rtp.wrapping_sub(self.first_rtp) as i64;
        self.offset_ticks.saturating_add(delta)
    }
}

/// The publish side of a session.
#[derive(Debug)]
pub(crate) struct Ingest {
    /// Whether the session negotiated each kind (the `Stream` waits for the video's
    /// config when there is video).
    has_video: bool,
    has_audio: bool,
    video: Option<(Anchor, CodecConfig)>,
    video_anchor: Option<Anchor>,
    audio_anchor: Option<Anchor>,
    announced: Option<Arc<Stream>>,
    /// Video is being dropped until the next keyframe.
    awaiting_keyframe: bool,
    /// Wall clock of the session's start, for frame arrival times.
    wall_start: std::time::SystemTime,
    /// Frames dropped (before the first keyframe, after a loss).
    pub dropped: u64,
}

impl Ingest {
    pub fn new(has_video: bool, has_audio: bool, wall_start: std::time::SystemTime) -> Self {
        Ingest {
            has_video,
            has_audio,
            video: None,
            video_anchor: None,
            audio_anchor: None,
            announced: None,
            awaiting_keyframe: true,
            wall_start,
            dropped: 0,
        }
    }

    pub fn push(&mut self, frame: Incoming) -> Ingested {
        let mut out = Ingested::default();
        let arrival = self.wall_start + frame.since_start;
        match frame.codec {
            Codec::H264 => self.video_frame(frame, arrival, &mut out),
            Codec::Opus => {
                let anchor = *self.audio_anchor.get_or_insert_with(|| {
                    Anchor::new(frame.rtp_time, frame.since_start, OPUS_CLOCK)
                });
                if self.announced.is_none() {
                    self.announce(&mut out);
                }
                if self.announced.is_some() {
                    let pts = anchor.ticks(frame.rtp_time);
                    out.events.push(MediaEvent::Frame(Frame {
                        track: AUDIO_TRACK,
                        pts,
                        dts: pts,
                        keyframe: true,
                        data: frame.data,
                        arrival,
                    }));
                } else {
                    self.dropped += 1;
                }
            }
        }
        out
    }

    fn video_frame(&mut self, frame: Incoming, arrival: std::time::SystemTime, out: &mut Ingested) {
        let au = match video_from_annexb(VideoCodec::H264, &frame.data) {
            Ok(au) if !au.data.is_empty() => au,
            _ => {
                self.dropped += 1;
                out.want_keyframe = true;
                self.awaiting_keyframe = true;
                return;
            }
        };
        if !frame.contiguous && !au.keyframe {
            self.awaiting_keyframe = true;
        }
        if let Some(sets) = &au.parameter_sets {
            self.parameter_sets(sets, frame.rtp_time, frame.since_start, out);
        }
        if self.awaiting_keyframe && !(au.keyframe && self.video.is_some()) {
            self.dropped += 1;
            out.want_keyframe = true;
            return;
        }
        self.awaiting_keyframe = false;
        let Some((anchor, _)) = self.video else {
            return;
        };
        if self.announced.is_none() {
            self.announce(out);
        }
        let pts = anchor.ticks(frame.rtp_time);
        out.events.push(MediaEvent::Frame(Frame {
            track: VIDEO_TRACK,
            pts,
            dts: pts,
            keyframe: au.keyframe,
            data: au.data,
            arrival,
        }));
    }

    fn parameter_sets(
        &mut self,
        sets: &ParameterSets,
        rtp: u64,
        since_start: Duration,
        out: &mut Ingested,
    ) {
        if self.video.as_ref().is_some_and(|(_, c)| sets.same_as(c)) {
            return;
        }
        let Ok(config) = sets.to_config(VideoCodec::H264) else {
            // Parameter sets we cannot read: keep the old config, ask again.
            out.want_keyframe = true;
            return;
        };
        let anchor = *self
            .video_anchor
            .get_or_insert_with(|| Anchor::new(rtp, since_start, VIDEO_CLOCK));
        let changed = self.video.is_some();
        self.video = Some((anchor, config));
        if changed || self.announced.is_some() {
            self.announced = None;
            self.announce(out);
        }
    }

    /// Announces the stream once every negotiated kind can be described.
    fn announce(&mut self, out: &mut Ingested) {
        let mut tracks = Vec::new();
        match (&self.video, self.has_video) {
            (Some((_, config)), _) => tracks.push(Track {
                id: VIDEO_TRACK,
                timescale: VIDEO_CLOCK,
                config: config.clone(),
            }),
            (None, true) => return,
            (None, false) => {}
        }
        if self.has_audio {
            tracks.push(Track {
                id: AUDIO_TRACK,
                timescale: OPUS_CLOCK,
                config: CodecConfig::Opus(OpusConfig {
                    channels: 2,
                    pre_skip: 0,
                    input_sample_rate: OPUS_CLOCK,
                    output_gain: 0,
                }),
            });
        }
        let stream = Arc::new(Stream {
            tracks,
            metadata: vec![("encoder".into(), "WebRTC (WHIP)".into())],
            clock: SourceClock::Relative,
        });
        self.announced = Some(stream.clone());
        out.events.push(MediaEvent::Stream(stream));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
    ];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

    fn annexb(units: &[&[u8]]) -> Bytes {
        let mut v = Vec::new();
        for u in units {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(u);
        }
        Bytes::from(v)
    }

    fn video(rtp: u64, ms: u64, contiguous: bool, units: &[&[u8]]) -> Incoming {
        Incoming {
            codec: Codec::H264,
            rtp_time: rtp,
            since_start: Duration::from_millis(ms),
            contiguous,
            data: annexb(units),
        }
    }

    fn audio(rtp: u64, ms: u64) -> Incoming {
        Incoming {
            codec: Codec::Opus,
            rtp_time: rtp,
            since_start: Duration::from_millis(ms),
            contiguous: true,
            data: Bytes::from_static(&[0xfc, 1, 2]),
        }
    }

    fn frames(out: &Ingested) -> Vec<(TrackId, i64, bool)> {
        out.events
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Frame(f) => Some((f.track, f.pts, f.keyframe)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn video_waits_for_a_keyframe_with_parameter_sets_then_both_tracks_share_a_timeline() {
        let mut ing = Ingest::new(true, true, std::time::UNIX_EPOCH);
        // Audio and a P-frame before the first keyframe: dropped, a keyframe asked for.
        assert!(ing.push(audio(1_000, 0)).events.is_empty());
        let p = ing.push(video(50_000, 5, true, &[&[0x41, 0x9a]]));
        assert!(p.events.is_empty() && p.want_keyframe);
        // The keyframe announces the stream (H.264 + Opus) and is the first frame.
        let k = ing.push(video(50_000 + 9_000, 105, true, &[SPS, PPS, &[0x65, 0x88]]));
        assert!(matches!(&k.events[0], MediaEvent::Stream(s) if s.tracks.len() == 2));
        // Video's time starts at its first packet's arrival (5 ms = 450 ticks), plus
        // the RTP delta since then.
        assert_eq!(frames(&k), [(VIDEO_TRACK, 450 + 9_000, true)]);
        // Audio anchored at 0 ms: 960 ticks later is 20 ms.
        assert_eq!(
            frames(&ing.push(audio(1_960, 20))),
            [(AUDIO_TRACK, 960, true)]
        );
        assert_eq!(ing.dropped, 2);
    }

    #[test]
    fn a_loss_drops_video_until_the_next_keyframe() {
        let mut ing = Ingest::new(true, false, std::time::UNIX_EPOCH);
        let k = ing.push(video(0, 0, true, &[SPS, PPS, &[0x65, 0x88]]));
        assert_eq!(frames(&k).len(), 1);
        assert_eq!(
            frames(&ing.push(video(3_000, 33, true, &[&[0x41, 1]]))).len(),
            1
        );
        let lost = ing.push(video(9_000, 100, false, &[&[0x41, 2]]));
        assert!(lost.events.is_empty() && lost.want_keyframe);
        assert!(ing
            .push(video(12_000, 133, true, &[&[0x41, 3]]))
            .events
            .is_empty());
        let back = ing.push(video(15_000, 166, true, &[&[0x65, 0x99]]));
        assert_eq!(frames(&back), [(VIDEO_TRACK, 15_000, true)]);
    }

    #[test]
    fn new_parameter_sets_announce_a_new_stream() {
        let mut ing = Ingest::new(true, false, std::time::UNIX_EPOCH);
        ing.push(video(0, 0, true, &[SPS, PPS, &[0x65, 0x88]]));
        let same = ing.push(video(3_000, 33, true, &[SPS, PPS, &[0x65, 0x88]]));
        assert!(!same
            .events
            .iter()
            .any(|e| matches!(e, MediaEvent::Stream(_))));
        let pps2: &[u8] = &[0x68, 0xce, 0x38, 0x80];
        let other = ing.push(video(6_000, 66, true, &[SPS, pps2, &[0x65, 0x88]]));
        assert!(matches!(&other.events[0], MediaEvent::Stream(_)));
    }

    #[test]
    fn audio_only_sessions_announce_at_once() {
        let mut ing = Ingest::new(false, true, std::time::UNIX_EPOCH);
        let out = ing.push(audio(77, 0));
        assert!(matches!(&out.events[0], MediaEvent::Stream(s) if s.tracks.len() == 1));
        assert_eq!(frames(&out), [(AUDIO_TRACK, 0, true)]);
    }
}
