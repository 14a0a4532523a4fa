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
    /// `running` (pictures arrive) or `waiting` (none yet, or none lately: `reason`).
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
    /// Mean time of one detection over the last ones (ms).
    pub detect_ms: Option<f64>,
    pub highlights_found: usize,
}

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

    /// The window's path from `since_ms` (media time) on, and the highlights found.
    pub fn path(&self, channel: &str, since_ms: i64) -> Option<(Vec<PathPoint>, Vec<Highlight>)> {
        let channels = lock(&self.channels);
        let c = channels.get(channel)?;
        Some((
            c.path
                .iter()
                .filter(|p| p.t_ms >= since_ms)
                .copied()
                .collect(),
            c.highlights.clone(),
        ))
    }

    pub(super) fn begin(&self, channel: &str, reframe: bool, highlights: bool, keep: usize) {
        lock(&self.channels).insert(
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
                ..Default::default()
            },
        );
    }

    pub(super) fn remove(&self, channel: &str) {
        lock(&self.channels).remove(channel);
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
