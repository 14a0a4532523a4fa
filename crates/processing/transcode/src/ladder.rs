//! Which rungs a source gets.

use std::fmt;

/// A video encoder by its ffmpeg name: software x264 or a hardware H.264 encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoEncoder {
    X264,
    Nvenc,
    Vaapi,
    Qsv,
}

impl VideoEncoder {
    /// ffmpeg's name for it.
    pub fn ffmpeg_name(self) -> &'static str {
        match self {
            Self::X264 => "libx264",
            Self::Nvenc => "h264_nvenc",
            Self::Vaapi => "h264_vaapi",
            Self::Qsv => "h264_qsv",
        }
    }

    /// The config spelling (`x264`, `nvenc`, `vaapi`, `qsv`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "x264" | "libx264" => Self::X264,
            "nvenc" | "h264_nvenc" => Self::Nvenc,
            "vaapi" | "h264_vaapi" => Self::Vaapi,
            "qsv" | "h264_qsv" => Self::Qsv,
            _ => return None,
        })
    }
}

impl fmt::Display for VideoEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ffmpeg_name())
    }
}

/// One rung as configured: a height, a target bitrate, an encoder and its preset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RungSpec {
    pub height: u32,
    pub bitrate_kbps: u32,
    pub encoder: VideoEncoder,
    /// The encoder's speed preset (`veryfast` for x264; `p4` for nvenc, …).
    pub preset: String,
}

impl RungSpec {
    fn x264(height: u32, bitrate_kbps: u32) -> Self {
        Self {
            height,
            bitrate_kbps,
            encoder: VideoEncoder::X264,
            preset: "veryfast".to_owned(),
        }
    }
}

/// The default ladder: 1080p 6 Mbit/s, 720p 3, 480p 1.2, 360p 0.6 (x264 `veryfast`).
pub const DEFAULT_LADDER: [(u32, u32); 4] = [(1080, 6000), (720, 3000), (480, 1200), (360, 600)];

/// The default ladder as specs.
pub fn default_ladder() -> Vec<RungSpec> {
    DEFAULT_LADDER
        .iter()
        .map(|&(h, b)| RungSpec::x264(h, b))
        .collect()
}

/// What the source is, as far as the ladder cares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Source {
    /// `None` for an audio-only source.
    pub video: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
}

/// One rung as it will be encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Rung {
    /// `720p`: the rendition's name, unique in a ladder.
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub bitrate_kbps: u32,
    pub encoder: VideoEncoder,
    pub preset: String,
    /// Frames per second: the source's, capped at 60.
    pub frame_rate: f64,
    /// The source is faster than `frame_rate`: frames are dropped to it.
    pub reduce_frame_rate: bool,
}

/// Why a source gets no ladder.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LadderError {
    #[error("the source has no video: it is offered as it is (audio only)")]
    NoVideo,
    #[error("the source's picture size {0}x{1} is not usable (0 or over 8192)")]
    BadSize(u32, u32),
    #[error(
        "every rung of the ladder is at or above the source's {0}p: the source is the only rung"
    )]
    NothingBelowSource(u32),
    #[error("rung {0}p is listed twice")]
    Duplicate(u32),
    #[error("rung {height}p has a bitrate of {bitrate_kbps} kbit/s (allowed: 64 to 100000)")]
    BadBitrate { height: u32, bitrate_kbps: u32 },
}

/// The rungs `ladder` gives `source`: the rungs below the source's height (the source
/// itself is always offered as it is, the pass-through rung), each as wide as the
/// source's aspect ratio says, both sizes even (4:2:0), at the source's frame rate
/// capped at 60. An odd source size (1278x719) is no problem: rungs are computed and
/// rounded, never copied from it.
pub fn plan(ladder: &[RungSpec], source: Source) -> Result<Vec<Rung>, LadderError> {
    let (sw, sh) = source.video.ok_or(LadderError::NoVideo)?;
    if sw == 0 || sh == 0 || sw > 8192 || sh > 8192 {
        return Err(LadderError::BadSize(sw, sh));
    }
    let mut seen = Vec::new();
    for r in ladder {
        if seen.contains(&r.height) {
            return Err(LadderError::Duplicate(r.height));
        }
        seen.push(r.height);
        if !(64..=100_000).contains(&r.bitrate_kbps) {
            return Err(LadderError::BadBitrate {
                height: r.height,
                bitrate_kbps: r.bitrate_kbps,
            });
        }
    }
    let source_fps = source
        .frame_rate
        .filter(|f| f.is_finite() && *f > 0.0)
        .unwrap_or(30.0);
    let fps = source_fps.min(60.0);
    let mut rungs: Vec<Rung> = ladder
        .iter()
        // Below the source only: the same size again would be the source re-encoded.
        .filter(|r| r.height < sh && r.height >= 2)
        .map(|r| {
            let height = r.height & !1;
            let width = even((u64::from(sw) * u64::from(height)) as f64 / f64::from(sh));
            Rung {
                name: format!("{}p", r.height),
                width,
                height,
                bitrate_kbps: r.bitrate_kbps,
                encoder: r.encoder,
                preset: r.preset.clone(),
                frame_rate: fps,
                reduce_frame_rate: fps < source_fps,
            }
        })
        .collect();
    if rungs.is_empty() && !ladder.is_empty() {
        return Err(LadderError::NothingBelowSource(sh));
    }
    rungs.sort_by_key(|r| std::cmp::Reverse(r.height));
    Ok(rungs)
}

/// The nearest even number, at least 2.
fn even(x: f64) -> u32 {
    let n = (x / 2.0).round() as u32 * 2;
    n.max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(w: u32, h: u32, fps: f64) -> Source {
        Source {
            video: Some((w, h)),
            frame_rate: Some(fps),
        }
    }

    fn sizes(r: &[Rung]) -> Vec<(String, u32, u32)> {
        r.iter()
            .map(|r| (r.name.clone(), r.width, r.height))
            .collect()
    }

    #[test]
    fn a_1080p_source_gets_the_rungs_below_it() {
        let r = plan(&default_ladder(), src(1920, 1080, 30.0)).unwrap();
        assert_eq!(
            sizes(&r),
            [
                ("720p".into(), 1280, 720),
                ("480p".into(), 854, 480),
                ("360p".into(), 640, 360)
            ]
        );
        assert!(r
            .iter()
            .all(|r| r.frame_rate == 30.0 && r.encoder == VideoEncoder::X264));
        assert_eq!(r[0].bitrate_kbps, 3000);
    }

    #[test]
    fn odd_sizes_portrait_and_high_frame_rates_are_rounded_and_capped() {
        // 1278x719: rungs at even sizes of the same aspect.
        let r = plan(&default_ladder(), src(1278, 719, 59.94)).unwrap();
        assert_eq!(
            sizes(&r),
            [("480p".into(), 854, 480), ("360p".into(), 640, 360)]
        );
        assert_eq!(r[0].frame_rate, 59.94);
        assert!(!r[0].reduce_frame_rate);
        let r = plan(&default_ladder(), src(1920, 1080, 120.0)).unwrap();
        assert_eq!(r[0].frame_rate, 60.0);
        assert!(r[0].reduce_frame_rate);
        // A portrait 1080x1920 source: heights are the ladder's, widths follow.
        let r = plan(&default_ladder(), src(1080, 1920, 30.0)).unwrap();
        assert_eq!(r[0].name, "1080p");
        assert_eq!((r[0].width, r[0].height), (608, 1080));
        // No frame rate known: 30.
        let r = plan(
            &default_ladder(),
            Source {
                video: Some((640, 480)),
                frame_rate: None,
            },
        )
        .unwrap();
        assert_eq!(sizes(&r), [("360p".into(), 480, 360)]);
        assert_eq!(r[0].frame_rate, 30.0);
    }

    #[test]
    fn sources_the_ladder_cannot_serve_say_why() {
        let audio = Source {
            video: None,
            frame_rate: None,
        };
        assert_eq!(plan(&default_ladder(), audio), Err(LadderError::NoVideo));
        assert_eq!(
            plan(&default_ladder(), src(426, 240, 30.0)),
            Err(LadderError::NothingBelowSource(240))
        );
        assert_eq!(
            plan(&default_ladder(), src(0, 240, 30.0)),
            Err(LadderError::BadSize(0, 240))
        );
        let twice = vec![RungSpec::x264(720, 3000), RungSpec::x264(720, 2000)];
        assert_eq!(
            plan(&twice, src(1920, 1080, 30.0)),
            Err(LadderError::Duplicate(720))
        );
        let bad = vec![RungSpec::x264(720, 10)];
        assert!(matches!(
            plan(&bad, src(1920, 1080, 30.0)),
            Err(LadderError::BadBitrate { .. })
        ));
        // An empty ladder (turned off) is no rung and no error.
        assert_eq!(plan(&[], src(1920, 1080, 30.0)), Ok(Vec::new()));
        assert!(LadderError::NoVideo.to_string().contains("audio only"));
    }

    #[test]
    fn encoders_parse_from_config_spellings() {
        assert_eq!(VideoEncoder::parse("nvenc"), Some(VideoEncoder::Nvenc));
        assert_eq!(VideoEncoder::parse("h264_vaapi"), Some(VideoEncoder::Vaapi));
        assert_eq!(VideoEncoder::parse("x265"), None);
        assert_eq!(VideoEncoder::Qsv.to_string(), "h264_qsv");
    }
}
