//! A synthetic live channel for `starling demo`: a moving picture with a wall clock, and a
//! beep every second, made without ffmpeg or any encoder library.
//!
//! # Why no encoder
//!
//! The picture is synthetic, so a tiny purpose-built H.264 *bitstream writer* (the
//! private `h264_writer` module) is enough, where an encoder (openh264, x264 bindings)
//! would be a heavy dependency. IDR pictures are made entirely of **I_PCM** macroblocks
//! (raw samples); in **P** pictures a macroblock that did not change since the previous
//! picture is **P_Skip** and one that did is sent again as intra I_PCM (`mb_type` 30 in a
//! P slice, CAVLC). Deblocking is disabled in every slice, so decoders reproduce the
//! rendered picture bit for bit. The stream is Constrained Baseline (`avc1.42C0xx`),
//! POC type 2 and `max_num_reorder_frames = 0`: decoders show each picture as it arrives.
//!
//! The price is size: an IDR picture is raw (355 KB at 640×360), so keyframes come
//! every 2 s by default, and P pictures carry only the macroblocks of the moving box,
//! the clock digits and the frame counter (about 8 KB). At the defaults that is about
//! 3.3 Mbit/s: fine on localhost, not for a real channel. (I_PCM pictures also exceed
//! the level's MinCR compression ratio; decoders do not check it.) The sound is a committed 8 s AAC-LC clip looped with continuous
//! timestamps (see the `audio` module and `assets/README.md`).
//!
//! # Driving it
//!
//! The source is sans-IO: it reads no clock and owns no timer. A driver calls
//! [`DemoSource::next`] once per [`DemoSource::frame_interval`] with the current time
//! and forwards what it returns:
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use starling_demo_source::{DemoConfig, DemoSource};
//!
//! let mut source = DemoSource::new(DemoConfig::default())?;
//! let stream = source.stream(); // announce the tracks first
//! assert_eq!(stream.tracks.len(), 2);
//! let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! for i in 0..3u32 {
//!     // a real driver would tick a timer and pass `SystemTime::now()`
//!     let now = start + source.frame_interval() * i;
//!     for frame in source.next(now) {
//!         assert_eq!(frame.arrival, now);
//!     }
//! }
//! # Ok::<(), starling_demo_source::DemoError>(())
//! ```
//!
//! Each call returns the next video frame (`pts = dts = n × 90000 / fps`, an IDR every
//! `gop_frames`) and every audio frame that starts before the end of that video frame, in
//! presentation order, all stamped `arrival = now`. The picture's clock shows `now`
//! (UTC, tenths of a second); everything else depends only on the frame number, so the
//! same sequence of `now` gives the same bytes.

mod audio;
mod font;
mod h264_writer;
mod picture;

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use starling_media::{h264::AvcConfig, CodecConfig, Frame, MediaError, Stream, Track, TrackId};

use crate::{
    audio::{AudioLoop, SAMPLE_RATE},
    h264_writer::{Layout, SliceWriter},
    picture::{Scene, Yuv420},
};

/// The video track's id.
pub const VIDEO_TRACK: TrackId = TrackId(1);
/// The audio track's id.
pub const AUDIO_TRACK: TrackId = TrackId(2);
/// Timescale of the video track (ticks per second).
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Timescale of the audio track: its sample rate.
pub const AUDIO_TIMESCALE: u32 = SAMPLE_RATE;

/// Largest width or height accepted.
pub const MAX_SIDE: u32 = 4096;
/// Highest frame rate accepted.
pub const MAX_FPS: u32 = 120;

/// What the demo channel looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoConfig {
    /// Visible width in pixels: even, 2..=4096. Coded in whole macroblocks and cropped.
    pub width: u32,
    /// Visible height in pixels: even, 2..=4096.
    pub height: u32,
    /// Frames per second, 1..=120.
    pub fps: u32,
    /// Keyframe interval in frames (≥ 1).
    pub gop_frames: u32,
}

impl Default for DemoConfig {
    /// 640×360 at 30 fps, a keyframe every 2 s.
    fn default() -> Self {
        DemoConfig {
            width: 640,
            height: 360,
            fps: 30,
            gop_frames: 60,
        }
    }
}

/// Why a [`DemoConfig`] cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    #[error("demo picture size {width}x{height}: width and height must be even and between 2 and {MAX_SIDE}")]
    Size { width: u32, height: u32 },
    #[error("demo frame rate {0} fps: must be between 1 and {MAX_FPS}")]
    FrameRate(u32),
    #[error("demo keyframe interval of 0 frames: must be at least 1")]
    KeyframeInterval,
    #[error("no H.264 level allows a {width}x{height} picture at {fps} fps")]
    NoLevel { width: u32, height: u32, fps: u32 },
    /// Building a track configuration failed: a bug in this crate or a damaged audio clip.
    #[error("demo track configuration: {0}")]
    Media(#[from] MediaError),
}

/// The synthetic channel: call [`DemoSource::next`] once per frame interval.
#[derive(Debug)]
pub struct DemoSource {
    config: DemoConfig,
    stream: Arc<Stream>,
    scene: Scene,
    writer: SliceWriter,
    /// The picture of the frame being made and of the one before (the decoder's reference).
    current: Yuv420,
    previous: Yuv420,
    /// Number of the next video frame.
    frame: u64,
    audio: AudioLoop,
}

impl DemoSource {
    pub fn new(config: DemoConfig) -> Result<Self, DemoError> {
        let DemoConfig {
            width,
            height,
            fps,
            gop_frames,
        } = config;
        let side_ok = |v: u32| (2..=MAX_SIDE).contains(&v) && v & 1 == 0;
        if !side_ok(width) || !side_ok(height) {
            return Err(DemoError::Size { width, height });
        }
        if !(1..=MAX_FPS).contains(&fps) {
            return Err(DemoError::FrameRate(fps));
        }
        if gop_frames == 0 {
            return Err(DemoError::KeyframeInterval);
        }
        let layout =
            Layout::new(width, height, fps).ok_or(DemoError::NoLevel { width, height, fps })?;
        let avc = AvcConfig::from_parameter_sets(
            &[Bytes::from(h264_writer::sps(&layout))],
            &[Bytes::from(h264_writer::pps())],
        )?;
        let audio = AudioLoop::new()?;
        let stream = Stream {
            tracks: vec![
                Track {
                    id: VIDEO_TRACK,
                    timescale: VIDEO_TIMESCALE,
                    config: CodecConfig::H264(avc),
                },
                Track {
                    id: AUDIO_TRACK,
                    timescale: AUDIO_TIMESCALE,
                    config: CodecConfig::Aac(audio.config().clone()),
                },
            ],
            metadata: vec![(
                "encoder".to_owned(),
                "starling-demo-source (I_PCM/P_Skip H.264, looped AAC clip)".to_owned(),
            )],
            clock: Default::default(),
        };
        let (mbw, mbh) = (layout.mb_width as usize, layout.mb_height as usize);
        Ok(DemoSource {
            config,
            stream: Arc::new(stream),
            scene: Scene::new(width as usize, height as usize, mbw, mbh, fps),
            writer: SliceWriter::new(layout),
            current: Yuv420::new(mbw, mbh),
            previous: Yuv420::new(mbw, mbh),
            frame: 0,
            audio,
        })
    }

    /// The tracks: H.264 video ([`VIDEO_TRACK`], 90 kHz) and AAC-LC 48 kHz mono audio
    /// ([`AUDIO_TRACK`]). The same for the source's whole life.
    pub fn stream(&self) -> Arc<Stream> {
        Arc::clone(&self.stream)
    }

    pub fn config(&self) -> &DemoConfig {
        &self.config
    }

    /// How often the driver should call [`DemoSource::next`]: one video frame's duration.
    pub fn frame_interval(&self) -> Duration {
        Duration::from_secs(1) / self.config.fps
    }

    /// How many video frames have been made so far (the number of the next one).
    pub fn frames_made(&self) -> u64 {
        self.frame
    }

    /// Makes the next video frame, showing the clock at `now`, and the audio frames that
    /// start before it ends; all carry `arrival = now`. See the crate docs.
    pub fn next(&mut self, now: SystemTime) -> Vec<Frame> {
        let n = self.frame;
        self.frame = self.frame.saturating_add(1);
        let fps = u128::from(self.config.fps);

        std::mem::swap(&mut self.current, &mut self.previous);
        self.scene.render(n, now, &mut self.current);
        // (`checked_rem` rather than `is_multiple_of`, which is newer than the workspace MSRV)
        let keyframe = n.checked_rem(u64::from(self.config.gop_frames)) == Some(0);
        let data = if keyframe {
            self.writer.idr(&self.current)
        } else {
            let (current, previous) = (&self.current, &self.previous);
            self.writer
                .p(current, |mb| current.mb_differs(previous, mb))
        };
        let pts = ticks(u128::from(n) * u128::from(VIDEO_TIMESCALE) / fps);
        let video = Frame {
            track: VIDEO_TRACK,
            pts,
            dts: pts,
            keyframe,
            data,
            arrival: now,
        };

        // Audio frame k covers [k × 1024, (k + 1) × 1024) samples; video frame n covers
        // [n, n + 1) / fps seconds. Compare both in units of 1 / (48000 × fps) s.
        let video_start = u128::from(n) * u128::from(SAMPLE_RATE);
        let video_end = video_start + u128::from(SAMPLE_RATE);
        let audio_start = |k: u64| u128::from(k) * 1024 * fps;
        let mut out = Vec::with_capacity(4);
        let mut video = Some(video);
        while audio_start(self.audio.position()) < video_end {
            if audio_start(self.audio.position()) >= video_start {
                out.extend(video.take());
            }
            let (pts, data) = self.audio.take();
            out.push(Frame {
                track: AUDIO_TRACK,
                pts,
                dts: pts,
                keyframe: true,
                data,
                arrival: now,
            });
        }
        out.extend(video);
        out
    }
}

fn ticks(v: u128) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
