//! The demo's sound without an audio encoder: a committed 8 s AAC-LC clip (a 1 kHz beep
//! at the start of every second; see `assets/README.md` for the FFmpeg command that made
//! it), split into raw access units once and looped with continuous timestamps.
//!
//! 8 s at 48 kHz is exactly 375 frames of 1024 samples, so the loop keeps the one-second
//! beat. The clip's first frame is the encoder's priming frame (1024 samples of encoder
//! delay): every beep sounds 21.3 ms after its second starts, and at the loop point the
//! decoder overlaps the last frame's tail with the priming frame; both sit in silence, so
//! at worst a faint click is heard every 8 s. This module reads no clock.

use bytes::Bytes;
use starling_media::{
    aac::{adts_to_raw, AudioSpecificConfig},
    MediaError,
};

static BEEP_ADTS: &[u8] = include_bytes!("../assets/beep.aac");

/// Sample rate of the clip, which is also the audio track's timescale.
pub(crate) const SAMPLE_RATE: u32 = 48_000;
/// Frames in the clip: 8 s × 48000 / 1024.
pub(crate) const CLIP_FRAMES: usize = 375;

/// The looping clip and the position in it.
pub(crate) struct AudioLoop {
    config: AudioSpecificConfig,
    frames: Vec<Bytes>,
    /// Index of the next frame to hand out, counted from the start (not wrapped).
    next: u64,
}

impl std::fmt::Debug for AudioLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioLoop")
            .field("config", &self.config)
            .field("frames", &self.frames.len())
            .field("next", &self.next)
            .finish()
    }
}

impl AudioLoop {
    pub(crate) fn new() -> Result<Self, MediaError> {
        let (config, frames) = adts_to_raw(&Bytes::from_static(BEEP_ADTS))?;
        // The committed clip is fixed; these hold unless someone replaces it wrongly.
        if config.sample_rate != SAMPLE_RATE
            || config.samples_per_frame() != 1024
            || frames.len() != CLIP_FRAMES
        {
            return Err(MediaError::Invalid {
                what: "demo audio clip",
                reason: "must be 375 AAC frames of 1024 samples at 48 kHz (exactly 8 s)",
            });
        }
        Ok(AudioLoop {
            config,
            frames,
            next: 0,
        })
    }

    pub(crate) fn config(&self) -> &AudioSpecificConfig {
        &self.config
    }

    /// Index (from the start) of the next frame [`AudioLoop::take`] returns.
    pub(crate) fn position(&self) -> u64 {
        self.next
    }

    /// The next frame and its presentation time in samples; the clip repeats forever.
    pub(crate) fn take(&mut self) -> (i64, Bytes) {
        let pts = i64::try_from(self.next.saturating_mul(1024)).unwrap_or(i64::MAX);
        let i = (self.next % CLIP_FRAMES as u64) as usize;
        let data = self.frames.get(i).cloned().unwrap_or_default();
        self.next = self.next.saturating_add(1);
        (pts, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_is_aac_lc_48k_mono_and_loops_with_continuous_timestamps() {
        let mut a = AudioLoop::new().unwrap();
        assert_eq!(a.config().codec_string(), "mp4a.40.2");
        assert_eq!(a.config().channels, 1);
        let first: Vec<_> = (0..CLIP_FRAMES).map(|_| a.take()).collect();
        let second: Vec<_> = (0..CLIP_FRAMES).map(|_| a.take()).collect();
        for (i, ((p1, d1), (p2, d2))) in first.iter().zip(&second).enumerate() {
            assert_eq!(*p1, i as i64 * 1024);
            assert_eq!(*p2, (i + CLIP_FRAMES) as i64 * 1024);
            assert_eq!(d1, d2);
            assert!(!d1.is_empty());
        }
        // The loop is 8 s long in the track timescale.
        assert_eq!(second[0].0, 8 * i64::from(SAMPLE_RATE));
        // Zero-copy: frames are slices of the static clip.
        assert_eq!(first[0].1.as_ptr(), a.frames[0].as_ptr());
    }
}
