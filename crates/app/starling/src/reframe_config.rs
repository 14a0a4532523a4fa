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
}

impl Default for ReframeSection {
    fn default() -> Self {
        Self {
            model: None,
            path_secs: 600,
            highlight_min_spacing_secs: 60,
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
