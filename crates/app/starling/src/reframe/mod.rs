//! Vertical reframing and highlights for the channels that ask for them
//! (`[[channels]] reframe`, `highlights`; docs/reframing.md): each such channel's
//! analysis tap (the ladder's small pictures and loudness) goes through
//! `starling-reframe`, faces found by CenterFace on a blocking thread. The window's
//! path and the highlights are kept for the API (`/api/v1/live/{channel}/reframe`) and
//! the live list.
//!
//! One task per live channel that asks; detection runs one picture at a time, so a
//! machine too slow for 5 pictures a second skips pictures (the tap drops them for a
//! slow subscriber) rather than falling behind.

mod clips;
pub mod http;
mod status;

pub use status::Reframes;

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use starling_origin::Origin;
use starling_reframe::{
    FaceDetector, HighlightConfig, HighlightDetector, Preference, ReframeConfig, Reframer,
    TrackerConfig, I420,
};
use starling_transcode::AnalysisEvent;
use tokio::sync::{broadcast::error::RecvError, watch};
use tracing::{info, warn};

use crate::{
    config::ChannelConfig,
    ladder::{Ladders, Steer},
    reframe_config::ReframeSection,
};

/// What one channel asked for.
#[derive(Debug, Clone)]
struct Plan {
    reframe: bool,
    highlights: Option<HighlightConfig>,
    preference: Preference,
}

/// The pictures' silence after which the status says the tap is missing.
const QUIET: Duration = Duration::from_secs(5);
/// Analysis events queued (pictures 5 a second, loudness 10: about half a second)
/// past which a picture is framed without detection.
const BEHIND: usize = 8;
/// How long a channel's task may go on after its run ended, working through what its
/// tap had queued (a machine short of CPU falls behind the live edge).
const DRAIN: Duration = Duration::from_secs(60);

/// A channel's task.
struct Running {
    task: tokio::task::JoinHandle<()>,
    /// Set when the run ended: the task stops once its tap has nothing queued.
    ending: Arc<std::sync::atomic::AtomicBool>,
    ended_at: Option<tokio::time::Instant>,
}

/// Where a channel's choice is read: its `[[channels]]` entry first, then the control
/// plane (read when a publish begins, as the ladder's choice is).
pub struct Plans {
    config: HashMap<String, Plan>,
    db: starling_control::Db,
    section: ReframeSection,
}

impl Plans {
    pub fn new(
        section: &ReframeSection,
        channels: &[ChannelConfig],
        db: starling_control::Db,
    ) -> Self {
        let config = channels
            .iter()
            .map(|c| {
                let plan = Plan {
                    reframe: c.reframe,
                    highlights: c
                        .highlights
                        .then(|| section.highlight_config(c.highlight_sensitivity)),
                    preference: c
                        .reframe_subject
                        .as_deref()
                        .and_then(Preference::parse)
                        .unwrap_or_default(),
                };
                (c.name.clone(), plan)
            })
            .collect();
        Self {
            config,
            db,
            section: section.clone(),
        }
    }

    /// What `channel` asks for; `None`: neither reframing nor highlights.
    async fn of(&self, channel: &str) -> Option<Plan> {
        let plan = match self.config.get(channel) {
            Some(p) => p.clone(),
            None => match self.db.channel_by_name(channel).await {
                Ok(Some(c)) => {
                    let r = c.reframing;
                    Plan {
                        reframe: r.reframe,
                        highlights: r
                            .highlights
                            .then(|| self.section.highlight_config(Some(r.sensitivity))),
                        preference: Preference::parse(&r.subject).unwrap_or_default(),
                    }
                }
                Ok(None) => return None,
                Err(e) => {
                    warn!(%channel, error = %e, "reframing: the channel's settings are unavailable; it is not reframed this publish");
                    return None;
                }
            },
        };
        (plan.reframe || plan.highlights.is_some()).then_some(plan)
    }
}

/// Starts reframing for the live channels that ask for it, with CenterFace from
/// `model`; highlights' clips are announced through `emitter`.
pub fn start(
    plans: Plans,
    model: PathBuf,
    origin: Arc<Origin>,
    ladders: Arc<Ladders>,
    reframes: Arc<Reframes>,
    emitter: crate::webhooks::Emitter,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let cutter = Arc::new(clips::Cutter {
        origin: origin.clone(),
        reframes: reframes.clone(),
        db: plans.db.clone(),
        emitter,
    });
    if model.is_file() {
        info!(model = %model.display(), "reframing: the face model is ready");
    } else {
        // Not a warning: most nodes reframe nothing.
        info!(
            model = %model.display(),
            "reframing: the face model is absent (scripts/face-model --install); channels that ask for reframing follow motion only"
        );
    }
    let keep = (plans.section.path_secs * 5) as usize;
    tokio::spawn(async move {
        let mut running: HashMap<String, Running> = HashMap::new();
        // Live channels that asked for nothing this publish.
        let mut passed: std::collections::HashSet<String> = Default::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
            let live = origin.live_channels();
            let now = tokio::time::Instant::now();
            running.retain(|name, r| {
                let is_live = live.contains(name);
                // A run that ended goes on until its tap's backlog is worked through
                // (the highlights at its very end among it), for at most `DRAIN`.
                if !is_live && r.ended_at.is_none() {
                    r.ended_at = Some(now);
                    r.ending.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                let done =
                    r.task.is_finished() || r.ended_at.is_some_and(|t| is_live || now - t > DRAIN);
                if done {
                    r.task.abort();
                    reframes.end(name);
                }
                !done
            });
            passed.retain(|name| live.contains(name));
            for name in live {
                if running.contains_key(&name) || passed.contains(&name) {
                    continue;
                }
                let Some(plan) = plans.of(&name).await else {
                    passed.insert(name);
                    continue;
                };
                info!(channel = %name, reframe = plan.reframe, highlights = plan.highlights.is_some(), "reframing: on");
                reframes.begin(&name, plan.reframe, plan.highlights.is_some(), keep);
                let ending = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let task = tokio::spawn(run_channel(
                    name.clone(),
                    plan,
                    model.clone(),
                    ladders.clone(),
                    reframes.clone(),
                    cutter.clone(),
                    ending.clone(),
                ));
                let task = Running {
                    task,
                    ending,
                    ended_at: None,
                };
                running.insert(name, task);
            }
        }
        for r in running.values() {
            r.task.abort();
        }
    })
}

async fn run_channel(
    name: String,
    plan: Plan,
    model: PathBuf,
    ladders: Arc<Ladders>,
    reframes: Arc<Reframes>,
    cutter: Arc<clips::Cutter>,
    ending: Arc<std::sync::atomic::AtomicBool>,
) {
    let found = |h: starling_reframe::Highlight| {
        reframes.highlight(&name, h);
        // Its clip, once its end is packaged (a task of its own: it outlives the run
        // when the highlight is at its end).
        tokio::spawn(cutter.clone().cut(name.clone(), h));
    };
    // Subscribed first: pictures that arrive while the model loads wait in the tap.
    let mut tap = ladders.subscribe(&name);
    let loaded = tokio::task::spawn_blocking(move || FaceDetector::load(&model)).await;
    let mut detector = match loaded {
        Ok(Ok(d)) => Some(d),
        Ok(Err(e)) => {
            warn!(channel = %name, error = %e, "reframing without faces");
            reframes.detector_off(&name, e.to_string());
            None
        }
        Err(e) => {
            reframes.detector_off(&name, format!("the face model's loader failed: {e}"));
            None
        }
    };
    let mut reframer = Reframer::new(ReframeConfig {
        tracker: TrackerConfig {
            preference: plan.preference,
            ..Default::default()
        },
        ..Default::default()
    });
    let mut highlights = plan.highlights.map(HighlightDetector::new);
    let mut quiet = Duration::ZERO;
    loop {
        let event = match tokio::time::timeout(Duration::from_secs(1), tap.recv()).await {
            Err(_) => {
                // Nothing queued: a run that ended is done.
                if ending.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                quiet += Duration::from_secs(1);
                if quiet >= QUIET {
                    reframes.waiting(
                        &name,
                        "no analysis pictures: the channel's ladder is not running (see its `ladder` in /api/v1/live)",
                    );
                }
                continue;
            }
            Ok(Err(RecvError::Lagged(n))) => {
                reframes.skipped(&name, n);
                continue;
            }
            Ok(Err(RecvError::Closed)) => return,
            Ok(Ok(event)) => {
                quiet = Duration::ZERO;
                event
            }
        };
        match event {
            AnalysisEvent::Loudness(l) => {
                if let Some(h) = highlights
                    .as_mut()
                    .and_then(|h| h.loudness(l.time, l.momentary_lufs))
                {
                    found(h);
                }
            }
            AnalysisEvent::Picture(p) => {
                // Behind the live edge (detection slower than the pictures come, on a
                // busy machine): this picture is framed without a new detection (the
                // tracks carry on), so that the window catches up rather than trail
                // further and further behind.
                let behind = tap.len() > BEHIND;
                if behind && detector.is_some() {
                    reframes.detection_skipped(&name);
                }
                let faces = match if behind { None } else { detector.take() } {
                    Some(mut d) => {
                        let picture = p.clone();
                        let job = tokio::task::spawn_blocking(move || {
                            let started = std::time::Instant::now();
                            let found = I420::new(picture.width, picture.height, &picture.i420)
                                .and_then(|pic| d.detect(&pic));
                            (d, found, started.elapsed())
                        })
                        .await;
                        match job {
                            Ok((d, found, took)) => {
                                detector = Some(d);
                                match found {
                                    Ok(faces) => {
                                        reframes.detected(&name, took);
                                        Some(faces)
                                    }
                                    Err(e) => {
                                        reframes.detect_failed(&name, e.to_string());
                                        None
                                    }
                                }
                            }
                            Err(e) => {
                                reframes
                                    .detector_off(&name, format!("the face detector failed: {e}"));
                                None
                            }
                        }
                    }
                    None => None,
                };
                let picture = match I420::new(p.width, p.height, &p.i420) {
                    Ok(pic) => pic,
                    Err(e) => {
                        reframes.waiting(&name, &e.to_string());
                        continue;
                    }
                };
                let sample = reframer.push(p.time, &picture, faces.as_deref());
                if plan.reframe {
                    // The vertical rendition follows (when the ladder has one: this
                    // node has the model, the source is landscape).
                    ladders.steer(
                        &name,
                        Steer {
                            centre_x: f64::from(sample.window.cx()),
                            cut: sample.cut,
                        },
                    );
                }
                if let Some(h) = highlights.as_mut().and_then(|h| {
                    h.picture(
                        p.time,
                        sample.motion,
                        sample.cut,
                        sample.faces,
                        sample.largest_face,
                    )
                }) {
                    found(h);
                }
                reframes.sample(&name, sample);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_control::{Db, DbConfig, NewChannel};

    /// A channel's choice comes from its `[[channels]]` entry first, then from the
    /// control plane; a channel asking for neither is not reframed.
    #[tokio::test]
    async fn plans_come_from_the_config_then_the_control_plane() {
        let dir = std::env::temp_dir().join(format!(
            "starling-reframe-plans-{}-{}",
            std::process::id(),
            crate::auth::now_ms()
        ));
        let db = Db::connect(&DbConfig::new(&dir)).await.unwrap();
        let now = crate::auth::now_ms();
        db.bootstrap_admin("a@example.com", "correct horse battery", "system", now)
            .await
            .unwrap();
        let admin = db
            .login("a@example.com", "correct horse battery", "127.0.0.1", now)
            .await
            .unwrap();
        let mut new = NewChannel::named("db-rf");
        new.reframing.highlights = true;
        new.reframing.subject = "central".into();
        new.reframing.sensitivity = 2.0;
        db.create_channel(&admin, &new, now).await.unwrap();
        db.create_channel(&admin, &NewChannel::named("db-plain"), now)
            .await
            .unwrap();
        let config: ChannelConfig = toml::from_str(
            "name = \"cfg\"\nstream_key = \"k-123456789\"\nreframe = true\nreframe_subject = \"central\"",
        )
        .unwrap();
        let section = ReframeSection::default();
        let plans = Plans::new(&section, &[config], db);

        let cfg = plans.of("cfg").await.unwrap();
        assert!(cfg.reframe && cfg.highlights.is_none());
        assert_eq!(cfg.preference, Preference::Central);
        let from_db = plans.of("db-rf").await.unwrap();
        assert!(!from_db.reframe);
        assert_eq!(from_db.preference, Preference::Central);
        let h = from_db.highlights.unwrap();
        assert_eq!(h.threshold, HighlightConfig::default().threshold / 2.0);
        assert_eq!(h.min_spacing, 60 * 90_000);
        assert!(plans.of("db-plain").await.is_none());
        assert!(plans.of("nobody").await.is_none());
        std::fs::remove_dir_all(&dir).ok();
    }
}
