//! The `[reframe]` section: vertical reframing and highlight detection on this node
//! (docs/reframing.md). Channels opt in (`[[channels]] reframe`, `highlights`).

use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::Deserialize;
use starling_reframe::{HighlightConfig, Preference};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReframeSection {
    /// CenterFace (`centerface.onnx`, installed by `scripts/face-model --install`);
    /// unset: `DATA_DIR/models/centerface.onnx`. Without it, reframing follows motion.
    pub model: Option<PathBuf>,
    /// How much of each channel's window path the API keeps (seconds).
    pub path_secs: u64,
    /// No two highlights of a channel closer than this (seconds).
    pub highlight_min_spacing_secs: u64,
    /// The vertical rendition's picture (`portrait`, a rung of the ladder of every
    /// reframed channel): width and height, 9:16 by default. A source shorter than it
    /// gives a smaller picture (never scaled up).
    pub vertical_width: u32,
    pub vertical_height: u32,
    /// Its bitrate at that size (kb/s); a smaller picture gets less, by area.
    pub vertical_kbps: u32,
}

impl Default for ReframeSection {
    fn default() -> Self {
        Self {
            model: None,
            path_secs: 600,
            highlight_min_spacing_secs: 60,
            vertical_width: 720,
            vertical_height: 1280,
            vertical_kbps: 2500,
        }
    }
}

impl ReframeSection {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(10..=86_400).contains(&self.path_secs) {
            bail!("reframe.path_secs must be between 10 and 86400");
        }
        if !(1..=86_400).contains(&self.highlight_min_spacing_secs) {
            bail!("reframe.highlight_min_spacing_secs must be between 1 and 86400");
        }
        let (w, h) = (self.vertical_width, self.vertical_height);
        if !(64..=4096).contains(&w) || !(64..=4096).contains(&h) || w % 2 == 1 || h % 2 == 1 {
            bail!(
                "reframe.vertical_width and vertical_height must be even, 64 to 4096 (not {w}x{h})"
            );
        }
        if w >= h {
            bail!("reframe.vertical_width ({w}) must be less than vertical_height ({h}): the rendition is for upright screens");
        }
        if !(100..=50_000).contains(&self.vertical_kbps) {
            bail!("reframe.vertical_kbps must be between 100 and 50000");
        }
        Ok(())
    }

    pub fn model_path(&self, data_dir: &Path) -> PathBuf {
        self.model
            .clone()
            .unwrap_or_else(|| data_dir.join("models/centerface.onnx"))
    }

    pub fn highlight_config(&self, sensitivity: Option<f64>) -> HighlightConfig {
        HighlightConfig {
            min_spacing: self.highlight_min_spacing_secs as i64 * 90_000,
            ..Default::default()
        }
        .with_sensitivity(sensitivity.unwrap_or(1.0))
    }
}

/// Checks a `[[channels]]` entry's reframing keys.
pub fn validate_channel(
    i: usize,
    name: &str,
    subject: Option<&str>,
    sensitivity: Option<f64>,
) -> anyhow::Result<()> {
    if let Some(s) = subject {
        if Preference::parse(s).is_none() {
            bail!(
                "channels[{i}] ({name}): reframe_subject must be `largest` or `central`, not {s:?}"
            );
        }
    }
    if let Some(s) = sensitivity {
        if !(s.is_finite() && (0.1..=10.0).contains(&s)) {
            bail!("channels[{i}] ({name}): highlight_sensitivity must be between 0.1 and 10");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vertical_picture_must_be_upright_even_and_sane() {
        assert!(ReframeSection::default().validate().is_ok());
        let with = |w, h, kbps| ReframeSection {
            vertical_width: w,
            vertical_height: h,
            vertical_kbps: kbps,
            ..Default::default()
        };
        assert!(with(1080, 1920, 6000).validate().is_ok());
        for (w, h, kbps, needle) in [
            (1280, 720, 2500, "less than"),
            (720, 720, 2500, "less than"),
            (721, 1280, 2500, "even"),
            (32, 1280, 2500, "64 to 4096"),
            (720, 1280, 50, "vertical_kbps"),
        ] {
            let e = with(w, h, kbps).validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{w}x{h} {kbps}: {e}");
        }
    }
}
