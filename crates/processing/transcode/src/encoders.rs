//! Which encoders this ffmpeg has (`ffmpeg -encoders`), and whether a configured one can
//! be used: listed is not enough for hardware encoders (an ffmpeg built with NVENC lists
//! `h264_nvenc` on a machine without a GPU), so a configured encoder is also tried on
//! one small frame ([`Encoders::trial_args`]) and its error is reported as it is.

use std::collections::BTreeSet;

use crate::VideoEncoder;

/// The encoders `ffmpeg -encoders` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoders(BTreeSet<String>);

/// Why a configured encoder cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncoderError {
    #[error("encoder {name} is configured but this ffmpeg does not have it (`ffmpeg -encoders` does not list it)")]
    NotListed { name: String },
    #[error("encoder {name} is configured but does not work here: {reason}")]
    Unusable { name: String, reason: String },
}

impl Encoders {
    /// Reads `ffmpeg -hide_banner -encoders` output: after the `------` line, each line
    /// is six flag characters and a name.
    pub fn parse(text: &str) -> Self {
        let names = text
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("---"))
            .skip(1)
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let flags = f.next()?;
                let name = f.next()?;
                (flags.len() == 6).then(|| name.to_owned())
            })
            .collect();
        Self(names)
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    /// `encoder` is listed, or why not.
    pub fn check(&self, encoder: VideoEncoder) -> Result<(), EncoderError> {
        if self.has(encoder.ffmpeg_name()) {
            Ok(())
        } else {
            Err(EncoderError::NotListed {
                name: encoder.ffmpeg_name().to_owned(),
            })
        }
    }

    /// ffmpeg arguments that encode one small frame with `encoder` and throw it away:
    /// exit 0 if the encoder works on this machine.
    pub fn trial_args(encoder: VideoEncoder) -> Vec<String> {
        let mut a: Vec<String> = ["-hide_banner", "-loglevel", "error", "-nostdin"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        if encoder == VideoEncoder::Vaapi {
            a.extend(["-vaapi_device", "/dev/dri/renderD128"].map(String::from));
        }
        a.extend(["-f", "lavfi", "-i", "color=size=256x144:rate=1:duration=1"].map(String::from));
        if encoder == VideoEncoder::Vaapi {
            a.extend(["-vf", "format=nv12,hwupload"].map(String::from));
        }
        a.extend(
            [
                "-frames:v",
                "1",
                "-c:v",
                encoder.ffmpeg_name(),
                "-f",
                "null",
                "-",
            ]
            .map(String::from),
        );
        a
    }

    /// The error for a trial that failed with `stderr` (its last line is ffmpeg's reason).
    pub fn trial_failed(encoder: VideoEncoder, stderr: &str) -> EncoderError {
        EncoderError::Unusable {
            name: encoder.ffmpeg_name().to_owned(),
            reason: stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
                .to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "Encoders:
 V..... = Video
 A..... = Audio
 ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (codec h264)
 V....D h264_nvenc           NVIDIA NVENC H.264 encoder (codec h264)
 A....D aac                  AAC (Advanced Audio Coding)
 A....D libopus              libopus Opus (codec opus)
";

    #[test]
    fn the_listing_is_read_after_its_legend() {
        let e = Encoders::parse(LISTING);
        assert!(e.has("libx264") && e.has("aac") && e.has("libopus") && e.has("h264_nvenc"));
        // The legend's "V..... = Video" is not an encoder called "=".
        assert!(!e.has("="));
        assert_eq!(e.check(VideoEncoder::X264), Ok(()));
        let err = e.check(VideoEncoder::Qsv).unwrap_err();
        assert!(err
            .to_string()
            .contains("h264_qsv is configured but this ffmpeg does not have it"));
        assert_eq!(Encoders::parse(""), Encoders::default());
    }

    #[test]
    fn a_failed_trial_reports_ffmpeg_s_last_words() {
        let err = Encoders::trial_failed(
            VideoEncoder::Nvenc,
            "[h264_nvenc @ 0x1] Cannot load libcuda.so.1\nError while opening encoder\n\n",
        );
        assert_eq!(
            err.to_string(),
            "encoder h264_nvenc is configured but does not work here: Error while opening encoder"
        );
        let args = Encoders::trial_args(VideoEncoder::X264);
        assert!(args.windows(2).any(|w| w == ["-c:v", "libx264"]));
    }
}
