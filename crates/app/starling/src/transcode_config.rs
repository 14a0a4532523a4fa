//! The `[transcode]` section of the config: the ABR ladder every channel gets unless it
//! asks for less (docs/transcoding.md).

use std::path::PathBuf;

use anyhow::bail;
use serde::Deserialize;
use starling_transcode::{RungSpec, VideoEncoder, DEFAULT_LADDER};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TranscodeSection {
    /// Run the ladder for live channels; without ffmpeg the node runs on with the
    /// source alone and `/api/v1/live` says why.
    pub enabled: bool,
    /// The ffmpeg binary (a name is looked up on PATH).
    pub ffmpeg: PathBuf,
    /// The rungs, highest first; a source gets those below its own height.
    pub rungs: Vec<RungConfig>,
    /// The analysis tap: small decoded pictures and the audio's loudness from the same
    /// ffmpeg child, for in-process subscribers (the channel list's small poster; next,
    /// vertical reframing and highlights). Its cost is in docs/performance.md.
    pub analysis: bool,
    /// Pictures a second (1 to 30) and their width (64 to 1280 px) of the tap.
    pub analysis_fps: u32,
    pub analysis_width: u32,
}

/// One rung: `{ height = 720, bitrate_kbps = 3000, encoder = "x264", preset = "veryfast" }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RungConfig {
    pub height: u32,
    pub bitrate_kbps: u32,
    /// `x264`, `nvenc`, `vaapi` or `qsv`.
    #[serde(default = "default_encoder")]
    pub encoder: String,
    #[serde(default = "default_preset")]
    pub preset: String,
}

fn default_encoder() -> String {
    "x264".to_owned()
}

fn default_preset() -> String {
    "veryfast".to_owned()
}

impl Default for TranscodeSection {
    fn default() -> Self {
        Self {
            enabled: true,
            ffmpeg: PathBuf::from("ffmpeg"),
            rungs: DEFAULT_LADDER
                .iter()
                .map(|&(height, bitrate_kbps)| RungConfig {
                    height,
                    bitrate_kbps,
                    encoder: default_encoder(),
                    preset: default_preset(),
                })
                .collect(),
            analysis: true,
            analysis_fps: 5,
            analysis_width: 320,
        }
    }
}

impl TranscodeSection {
    /// The rungs as the ladder planner takes them; an unknown encoder or a preset that
    /// is not a plain word is an error naming the rung.
    pub fn ladder(&self) -> anyhow::Result<Vec<RungSpec>> {
        self.rungs
            .iter()
            .map(|r| {
                let Some(encoder) = VideoEncoder::parse(&r.encoder) else {
                    bail!(
                        "transcode.rungs: the {}p rung's encoder {:?} is not one of x264, nvenc, vaapi, qsv",
                        r.height,
                        r.encoder
                    );
                };
                if r.preset.is_empty()
                    || r.preset.len() > 32
                    || !r.preset.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    bail!(
                        "transcode.rungs: the {}p rung's preset {:?} must be 1-32 letters and digits",
                        r.height,
                        r.preset
                    );
                }
                Ok(RungSpec {
                    height: r.height,
                    bitrate_kbps: r.bitrate_kbps,
                    encoder,
                    preset: r.preset.clone(),
                })
            })
            .collect()
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=30).contains(&self.analysis_fps) {
            bail!("transcode.analysis_fps must be between 1 and 30");
        }
        if !(64..=1280).contains(&self.analysis_width) {
            bail!("transcode.analysis_width must be between 64 and 1280 pixels");
        }
        let ladder = self.ladder()?;
        if ladder.len() > 8 {
            bail!("transcode.rungs: at most 8 rungs");
        }
        // The planner's own checks (duplicates, bitrates, sizes), on a source above
        // every rung, so that a bad ladder fails at start-up rather than per channel.
        let tallest = ladder.iter().map(|r| r.height).max().unwrap_or(0);
        if !ladder.is_empty() {
            if let Err(e) = starling_transcode::plan(
                &ladder,
                starling_transcode::Source {
                    video: Some((8192, (tallest + 2).min(8192))),
                    frame_rate: Some(30.0),
                },
            ) {
                bail!("transcode.rungs: {e}");
            }
            if ladder.iter().any(|r| r.height < 16 || r.height > 4320) {
                bail!("transcode.rungs: heights must be between 16 and 4320");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_ladder_and_named_refusals() {
        let t = TranscodeSection::default();
        t.validate().unwrap();
        assert_eq!(t.ladder().unwrap().len(), 4);
        let bad = |rungs: &str| {
            let text = format!("rungs = {rungs}");
            let t: TranscodeSection = toml::from_str(&text).unwrap();
            t.validate().unwrap_err().to_string()
        };
        assert!(
            bad(r#"[{ height = 720, bitrate_kbps = 3000, encoder = "h265" }]"#)
                .contains("encoder \"h265\"")
        );
        assert!(
            bad(r#"[{ height = 720, bitrate_kbps = 3000, preset = "a;b" }]"#).contains("preset")
        );
        assert!(bad(
            "[{ height = 720, bitrate_kbps = 3000 }, { height = 720, bitrate_kbps = 100 }]"
        )
        .contains("twice"));
        assert!(bad("[{ height = 720, bitrate_kbps = 1 }]").contains("bitrate"));
    }
}
