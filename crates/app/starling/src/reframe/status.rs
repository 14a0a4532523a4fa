//! Every reframed channel as others see it: its status, its window's recent path and
//! its highlights (for `/api/v1/live` and `/api/v1/live/{channel}/reframe`).

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use serde::Serialize;
use starling_reframe::{CropSample, Highlight};
use starling_sync::lock;
use tracing::info;

/// What `/api/v1/live` shows of a channel's reframing.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReframeStatus {
    /// `running` (pictures arrive), `waiting` (none yet, or none lately: `reason`) or
    /// `ended` (the channel's last run: its highlights and clips stay listed).
    pub state: &'static str,
    /// The vertical window is asked for (`reframe`), highlights are (`highlights`).
    pub reframe: bool,
    pub highlights: bool,
    /// `faces` (CenterFace) or `motion` (no face detector: `detector_reason`).
    pub detector: &'static str,
    pub detector_reason: Option<String>,
    pub reason: Option<String>,
    /// What the window follows now (`faces`, `subject`, `motion`, `hold`, `centre`,
    /// `passthrough`).
    pub follow: Option<&'static str>,
    pub faces: usize,
    /// The window now: its left edge and width, shares of the picture's width.
    pub window_x: Option<f32>,
    pub window_width: Option<f32>,
    pub pictures: u64,
    /// Pictures the tap dropped because detection fell behind.
    pub pictures_skipped: u64,
    /// Pictures framed without a detection because it fell behind the live edge.
    pub detections_skipped: u64,
    /// Mean time of one detection over the last ones (ms).
    pub detect_ms: Option<f64>,
    pub highlights_found: usize,
    /// Why the newest highlight got no clip, if it did not.
    pub clips_reason: Option<String>,
}

/// A highlight's clip: whole segments of the channel's recording (no re-encode), in
/// the ladder and, for a reframed channel, upright.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Clip {
    /// `{run}-{first}-{last}`: unique per channel.
    pub id: String,
    pub run: String,
    pub first_segment: u64,
    pub last_segment: u64,
    /// Media times (ms, the channel's timeline): the clip's (whole segments) and the
    /// highlight's peak.
    pub start_ms: i64,
    pub end_ms: i64,
    pub peak_ms: i64,
    pub duration_secs: f64,
    pub cause: &'static str,
    pub score: f64,
    /// `/vod/{channel}/{run}/clip-{first}-{last}.m3u8`.
    pub playlist: String,
    /// `…/clip-{first}-{last}-vertical.m3u8`, when the vertical rendition was encoded.
    pub vertical_playlist: Option<String>,
    /// Unix ms.
    pub created_at: i64,
}

/// Clips kept per channel (of its recent runs, on this node).
const MAX_CLIPS: usize = 200;

/// Highlights kept per channel.
const MAX_HIGHLIGHTS: usize = 1440;

/// One point of the window's path.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct PathPoint {
    /// Media time of the picture (ms, the channel's timeline: that of its segments).
    pub t_ms: i64,
    /// The window's left edge and width, shares of the picture's width (it is full
    /// height).
    pub x: f32,
    pub width: f32,
    /// A new shot begins here: the window jumped.
    pub cut: bool,
    pub follow: &'static str,
    pub faces: usize,
}

#[derive(Debug, Default)]
struct Channel {
    status: ReframeStatus,
    path: VecDeque<PathPoint>,
    keep: usize,
    highlights: Vec<Highlight>,
    clips: VecDeque<Clip>,
    /// Recent detection times (ms), for the mean.
    detect: VecDeque<f64>,
}

/// Every reframed channel on this node.
#[derive(Debug, Default)]
pub struct Reframes {
    channels: Mutex<HashMap<String, Channel>>,
}

impl Reframes {
    pub fn status(&self, channel: &str) -> Option<ReframeStatus> {
        lock(&self.channels).get(channel).map(|c| c.status.clone())
    }

    /// The window's path from `since_ms` (media time) on, the highlights found and
    /// their clips.
    pub fn path(
        &self,
        channel: &str,
        since_ms: i64,
    ) -> Option<(Vec<PathPoint>, Vec<Highlight>, Vec<Clip>)> {
        let channels = lock(&self.channels);
        let c = channels.get(channel)?;
        Some((
            c.path
                .iter()
                .filter(|p| p.t_ms >= since_ms)
                .copied()
                .collect(),
            c.highlights.clone(),
            c.clips.iter().cloned().collect(),
        ))
    }

    /// A new run of `channel`: a fresh status, path and highlights; the clips of its
    /// earlier runs stay listed.
    pub(super) fn begin(&self, channel: &str, reframe: bool, highlights: bool, keep: usize) {
        let mut channels = lock(&self.channels);
        let clips = channels
            .remove(channel)
            .map(|c| c.clips)
            .unwrap_or_default();
        channels.insert(
            channel.to_owned(),
            Channel {
                status: ReframeStatus {
                    state: "waiting",
                    reframe,
                    highlights,
                    detector: "faces",
                    reason: Some("waiting for the channel's analysis tap".into()),
                    ..Default::default()
                },
                keep,
                clips,
                ..Default::default()
            },
        );
    }

    /// The run ended: its path, highlights and clips stay until the next run.
    pub(super) fn end(&self, channel: &str) {
        self.with(channel, |c| {
            c.status.state = "ended";
            c.status.reason = None;
        });
    }

    pub(super) fn clip(&self, channel: &str, clip: Clip) {
        info!(%channel, clip = %clip.id, playlist = %clip.playlist, "clip cut");
        self.with(channel, |c| {
            if c.clips.len() >= MAX_CLIPS {
                c.clips.pop_front();
            }
            c.clips.push_back(clip);
            c.status.clips_reason = None;
        });
    }

    pub(super) fn clip_failed(&self, channel: &str, why: String) {
        info!(%channel, reason = %why, "no clip for a highlight");
        self.with(channel, |c| c.status.clips_reason = Some(why));
    }

    fn with(&self, channel: &str, f: impl FnOnce(&mut Channel)) {
        if let Some(c) = lock(&self.channels).get_mut(channel) {
            f(c);
        }
    }

    pub(super) fn detector_off(&self, channel: &str, why: String) {
        self.with(channel, |c| {
            c.status.detector = "motion";
            c.status.detector_reason = Some(why);
        });
    }

    pub(super) fn detect_failed(&self, channel: &str, why: String) {
        self.with(channel, |c| c.status.detector_reason = Some(why));
    }

    pub(super) fn detected(&self, channel: &str, took: Duration) {
        self.with(channel, |c| {
            c.detect.push_back(took.as_secs_f64() * 1000.0);
            if c.detect.len() > 50 {
                c.detect.pop_front();
            }
            let mean = c.detect.iter().sum::<f64>() / c.detect.len() as f64;
            c.status.detect_ms = Some((mean * 10.0).round() / 10.0);
        });
    }

    pub(super) fn waiting(&self, channel: &str, why: &str) {
        self.with(channel, |c| {
            c.status.state = "waiting";
            c.status.reason = Some(why.to_owned());
        });
    }

    pub(super) fn detection_skipped(&self, channel: &str) {
        self.with(channel, |c| c.status.detections_skipped += 1);
    }

    pub(super) fn skipped(&self, channel: &str, n: u64) {
        self.with(channel, |c| c.status.pictures_skipped += n);
    }

    pub(super) fn highlight(&self, channel: &str, h: Highlight) {
        info!(%channel, peak_ms = h.peak / 90, score = h.score, cause = h.cause, "highlight");
        self.with(channel, |c| {
            // A day of one a minute; the oldest go first.
            if c.highlights.len() >= MAX_HIGHLIGHTS {
                c.highlights.remove(0);
            }
            c.highlights.push(h);
            c.status.highlights_found = c.highlights.len();
        });
    }

    pub(super) fn sample(&self, channel: &str, s: CropSample) {
        self.with(channel, |c| {
            c.status.state = "running";
            c.status.reason = None;
            c.status.pictures += 1;
            c.status.follow = Some(s.follow.as_str());
            c.status.faces = s.faces;
            c.status.window_x = Some(s.window.x);
            c.status.window_width = Some(s.window.w);
            c.path.push_back(PathPoint {
                t_ms: s.time / 90,
                x: s.window.x,
                width: s.window.w,
                cut: s.cut,
                follow: s.follow.as_str(),
                faces: s.faces,
            });
            while c.path.len() > c.keep {
                c.path.pop_front();
            }
        });
    }
}
