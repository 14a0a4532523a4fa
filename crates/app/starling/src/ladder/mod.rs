//! The ladder runner: for every live channel, one ffmpeg child that encodes the rungs
//! below the source (`starling-transcode` plans them and builds the command), fed from
//! the origin's tap and packaged back into the channel as renditions (`child`).
//!
//! Supervision, per channel (docs/transcoding.md):
//! - the source rendition never waits on the ladder: the tap never blocks, and a child
//!   that cannot take its input is stopped;
//! - a child that exits or stalls (no output for two segments while fed) is restarted at
//!   the next segment start: at once the first time, then after 1, 2, 4 … 30 s while it
//!   keeps failing; its rungs list the segments they miss as gaps meanwhile, and their
//!   next segment is a discontinuity;
//! - a child whose output falls more than two segments behind its input is too slow for
//!   this machine: the most expensive rung is shed and the rest restart;
//! - ffmpeg missing, a configured encoder missing, or a source the ladder cannot serve:
//!   the source alone is offered, and `/api/v1/live` says why.

mod child;
mod status;
mod steering;

pub use status::{LadderStatus, Ladders, Steer};

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use starling_media::{Stream, Track};
use starling_origin::{Origin, TapEvent};
use starling_packager::{rendition_name, VERTICAL_RENDITION};
use starling_sync::lock;
use starling_transcode::{plan, Encoders, Rung, RungSpec, Source, VerticalSize, VideoEncoder};
use tokio::{sync::watch, time::Instant};
use tracing::{info, warn};

use child::{Child, FeedError, Spawn};

/// Where a channel's own choice of rungs is read (see [`choose`]): the config's
/// `[[channels]]` first, then the control plane.
pub struct Choices {
    pub config: Vec<crate::config::ChannelConfig>,
    pub db: starling_control::Db,
    /// `starling demo`'s channel: not transcoded unless the config's `[[channels]]`
    /// gives it a ladder, to spare the small machine a first try runs on.
    pub demo: Option<&'static str>,
    /// The vertical rendition reframed channels get; `None` when this node reframes
    /// nothing (no face model: reframing is off, docs/reframing.md).
    pub vertical: Option<VerticalTarget>,
}

/// The vertical rendition's configured picture and bitrate (`[reframe]`).
#[derive(Debug, Clone, Copy)]
pub struct VerticalTarget {
    pub size: (u32, u32),
    pub kbps: u32,
}

/// A channel's choices for its ladder this publish.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Choice {
    /// Its `ladder` setting.
    ladder: String,
    /// It is reframed: its ladder has the vertical rendition.
    vertical: bool,
}

impl Choices {
    /// The channel's `ladder` setting (`default` when it has none or the control plane
    /// cannot be read: the ladder is an improvement, never a reason to refuse a stream)
    /// and whether it is reframed.
    async fn of(&self, channel: &str) -> Choice {
        if let Some(c) = self.config.iter().find(|c| c.name == channel) {
            return Choice {
                ladder: c.ladder.clone().unwrap_or_else(|| "default".into()),
                vertical: c.reframe,
            };
        }
        if self.demo == Some(channel) {
            return Choice {
                ladder: "source".into(),
                vertical: false,
            };
        }
        match self.db.channel_by_name(channel).await {
            Ok(Some(c)) => Choice {
                ladder: c.ladder,
                vertical: c.reframing.reframe,
            },
            Ok(None) => Choice {
                ladder: "default".into(),
                vertical: false,
            },
            Err(e) => {
                warn!(%channel, error = %e, "ladder: the channel's ladder setting is unavailable; the default applies");
                Choice {
                    ladder: "default".into(),
                    vertical: false,
                }
            }
        }
    }
}

/// The rungs of `ladder` a channel's `ladder` setting asks for: `default` (or empty)
/// all, `source` none, else the named ones (`720p,360p`; `source` among them is the
/// source, always offered). A name the node's ladder has not is an error naming it.
fn choose(ladder: &[RungSpec], setting: &str) -> Result<Vec<RungSpec>, String> {
    let setting = setting.trim();
    if setting.is_empty() || setting == "default" {
        return Ok(ladder.to_vec());
    }
    let names: Vec<&str> = setting
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != "source")
        .collect();
    if names.is_empty() {
        return Err("the channel's ladder is `source`: the source alone is offered".into());
    }
    let mut chosen = Vec::new();
    for name in names {
        match ladder.iter().find(|r| format!("{}p", r.height) == name) {
            Some(r) => chosen.push(r.clone()),
            None => {
                let have: Vec<String> = ladder.iter().map(|r| format!("{}p", r.height)).collect();
                return Err(format!(
                    "the channel's ladder names {name}, which this node's ladder has not (it has {})",
                    have.join(", ")
                ));
            }
        }
    }
    Ok(chosen)
}

/// What every channel's runner needs.
struct Ctx {
    ffmpeg: PathBuf,
    analysis: Option<child::Analysis>,
    ladder: Vec<RungSpec>,
    choices: Choices,
    origin: Arc<Origin>,
    statuses: Arc<Ladders>,
    segment: Duration,
    max_segment: Duration,
}

/// Starts the ladder for every channel that goes live, or records why there is none.
pub async fn start(
    config: &crate::transcode_config::TranscodeSection,
    choices: Choices,
    origin: Arc<Origin>,
    statuses: Arc<Ladders>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let off = |reason: String| {
        *lock(&statuses.off) = Some(reason);
        None
    };
    if !config.enabled {
        return off("the ladder is turned off ([transcode] enabled = false)".into());
    }
    let ladder = match config.ladder() {
        Ok(l) if l.is_empty() => return off("the ladder has no rungs ([transcode] rungs)".into()),
        Ok(l) => l,
        Err(e) => return off(e.to_string()),
    };
    if let Err(reason) = check_encoders(&config.ffmpeg, &ladder).await {
        warn!("transcoding is off: {reason}");
        return off(reason);
    }
    let packager = origin.config().packager();
    let ctx = Arc::new(Ctx {
        ffmpeg: config.ffmpeg.clone(),
        analysis: config.analysis.then_some(child::Analysis {
            fps: config.analysis_fps,
            width: config.analysis_width,
        }),
        ladder,
        choices,
        origin,
        statuses,
        segment: packager.segment_duration,
        max_segment: packager.max_segment_duration(),
    });
    info!(rungs = ctx.ladder.len(), "transcoding: on");
    Some(tokio::spawn(async move {
        let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
            running.retain(|_, h| !h.is_finished());
            for channel in ctx.origin.live_channels() {
                if running.contains_key(&channel) {
                    continue;
                }
                let Some(tap) = ctx.origin.tap(&channel) else {
                    continue;
                };
                let task = tokio::spawn(run_channel(ctx.clone(), channel.clone(), tap));
                running.insert(channel, task);
            }
        }
        for (_, h) in running {
            h.abort();
        }
    }))
}

/// ffmpeg runs and has every configured encoder (a hardware one also passes a trial
/// encode); else the reason, naming the cause.
async fn check_encoders(ffmpeg: &std::path::Path, ladder: &[RungSpec]) -> Result<(), String> {
    let listing = tokio::process::Command::new(ffmpeg)
        .args(["-hide_banner", "-encoders"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| {
            format!(
                "ffmpeg ({}) was not found or does not run ({e}); install ffmpeg or set [transcode] ffmpeg",
                ffmpeg.display()
            )
        })?;
    let encoders = Encoders::parse(&String::from_utf8_lossy(&listing.stdout));
    let mut tried = Vec::new();
    for r in ladder {
        encoders.check(r.encoder).map_err(|e| e.to_string())?;
        if r.encoder == VideoEncoder::X264 || tried.contains(&r.encoder) {
            continue;
        }
        tried.push(r.encoder);
        let trial = tokio::process::Command::new(ffmpeg)
            .args(Encoders::trial_args(r.encoder))
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| e.to_string())?;
        if !trial.status.success() {
            return Err(
                Encoders::trial_failed(r.encoder, &String::from_utf8_lossy(&trial.stderr))
                    .to_string(),
            );
        }
    }
    Ok(())
}

/// After how many quick failures in a row the next start waits how long.
fn backoff(failures: u32) -> Duration {
    match failures {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 2).min(5)).min(Duration::from_secs(30)),
    }
}

/// The rungs for `video` (without the shed ones), or why there are none.
fn rungs_for(ladder: &[RungSpec], video: Option<&Track>, shed: usize) -> Result<Vec<Rung>, String> {
    let dims = video.and_then(|t| t.config.dimensions());
    let fps = video.and_then(|t| match &t.config {
        starling_media::CodecConfig::H264(c) => c.fps,
        _ => None,
    });
    let mut rungs = plan(
        ladder,
        Source {
            video: dims,
            frame_rate: fps,
        },
    )
    .map_err(|e| e.to_string())?;
    if video.is_some() && dims.is_none() {
        return Err("the source's picture size is not known".into());
    }
    rungs.retain(|r| rendition_name(&r.name).is_some());
    Ok(rungs.split_off(shed.min(rungs.len())))
}

/// The state of one channel's runner.
struct Runner {
    ctx: Arc<Ctx>,
    channel: String,
    /// The channel's rungs this publish (its `ladder` setting, read when it began).
    ladder: Result<Vec<RungSpec>, String>,
    /// It is reframed this publish (and this node reframes).
    vertical: bool,
    stream: Option<Arc<Stream>>,
    child: Option<Child>,
    /// Rungs shed from the top, this publish.
    shed: usize,
    shed_names: Vec<String>,
    failures: u32,
    restarts: u64,
    /// No child before this (backoff).
    not_before: Option<Instant>,
    /// A child ran before in this publish: the next one's rungs follow a gap.
    had_child: bool,
    reason: Option<String>,
    /// Ticks in a row the child's output was more than two segments behind its input.
    behind_ticks: u32,
    /// When output last moved forward.
    last_progress: Option<(i64, Instant)>,
}

async fn run_channel(
    ctx: Arc<Ctx>,
    channel: String,
    mut tap: tokio::sync::mpsc::Receiver<TapEvent>,
) {
    let mut r = Runner {
        ladder: Ok(Vec::new()),
        vertical: false,
        ctx,
        channel,
        stream: None,
        child: None,
        shed: 0,
        shed_names: Vec::new(),
        failures: 0,
        restarts: 0,
        not_before: None,
        had_child: false,
        reason: None,
        behind_ticks: 0,
        last_progress: None,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            event = tap.recv() => match event {
                Some(e) => r.on_event(e).await,
                None => {
                    // Cut off by the origin (this runner fell behind) or the channel
                    // is gone: stop the child; the manager starts a runner again while
                    // the channel is live.
                    r.stop("the tap ended", true).await;
                    break;
                }
            },
            _ = tick.tick() => r.on_tick().await,
        }
        if r.stream.is_none()
            && r.child.is_none()
            && !r.ctx.origin.live_channels().contains(&r.channel)
        {
            break;
        }
    }
    r.ctx.statuses.remove(&r.channel);
}

impl Runner {
    fn video(&self) -> Option<&Track> {
        self.stream.as_ref().and_then(|s| s.video())
    }

    /// The rungs for the current source, without the `shed` most expensive.
    fn rungs(&self, shed: usize) -> Result<Vec<Rung>, String> {
        let ladder = self.ladder.as_ref().map_err(Clone::clone)?;
        rungs_for(ladder, self.video(), shed)
    }

    fn publish_status(&self) {
        let (state, rungs) = match &self.child {
            Some(c) => (
                "running",
                c.rungs
                    .iter()
                    .chain(&c.vertical)
                    .map(|r| r.name.clone())
                    .collect(),
            ),
            None if self.reason.is_some() && self.not_before.is_none() => {
                ("source only", Vec::new())
            }
            None if self.not_before.is_some() => ("restarting", Vec::new()),
            None => ("starting", Vec::new()),
        };
        self.ctx.statuses.set(
            &self.channel,
            LadderStatus {
                state,
                rungs,
                shed: self.shed_names.clone(),
                reason: self.reason.clone(),
                restarts: self.restarts,
            },
        );
    }

    async fn on_event(&mut self, event: TapEvent) {
        match event {
            TapEvent::Stream(s) => {
                // The first stream of a publish, or a new picture size or codec.
                let first = self.stream.is_none();
                let changed =
                    first || self.video().map(|t| &t.config) != s.video().map(|t| &t.config);
                self.stream = Some(s);
                if first {
                    let choice = self.ctx.choices.of(&self.channel).await;
                    self.ladder = choose(&self.ctx.ladder, &choice.ladder);
                    self.vertical = choice.vertical;
                }
                if changed {
                    // A new picture size or codec: a new plan, from the next segment.
                    self.stop("the source changed", false).await;
                    self.shed = 0;
                    self.shed_names.clear();
                    self.reason = None;
                    self.not_before = None;
                    if let Err(reason) = self.rungs(0) {
                        info!(channel = %self.channel, %reason, "ladder: the source alone is offered");
                        self.reason = Some(reason);
                    }
                }
                self.publish_status();
            }
            TapEvent::Sample {
                sample,
                availability_start,
            } => {
                if self.child.is_none() && sample.starts_segment && self.may_start() {
                    self.start(&sample, availability_start);
                }
                let Some(child) = self.child.as_mut() else {
                    return;
                };
                match child.feed(&sample) {
                    Ok(()) => {}
                    Err(FeedError::Behind) => {
                        self.shed_one("ffmpeg does not take its input in real time")
                            .await
                    }
                    Err(FeedError::Gone) => self.failed("ffmpeg's input closed".into()).await,
                    Err(FeedError::Mux(e)) => {
                        self.failed(format!("the source could not be handed to ffmpeg: {e}"))
                            .await
                    }
                }
            }
            TapEvent::End => {
                if let Some(child) = self.child.take() {
                    child
                        .finish(self.ctx.segment * 2 + Duration::from_secs(3))
                        .await;
                }
                self.stream = None;
                self.shed = 0;
                self.shed_names.clear();
                self.failures = 0;
                self.restarts = 0;
                self.had_child = false;
                self.not_before = None;
                self.reason = None;
                self.publish_status();
            }
        }
    }

    fn may_start(&self) -> bool {
        self.reason.is_none() && self.not_before.is_none_or(|t| Instant::now() >= t)
    }

    fn start(
        &mut self,
        first: &starling_packager::Sample,
        availability_start: std::time::SystemTime,
    ) {
        let Some(video) = self.video().cloned() else {
            return;
        };
        let audio = self.stream.as_ref().and_then(|s| s.audio()).cloned();
        let rungs = match self.rungs(self.shed) {
            Ok(r) if r.is_empty() => {
                self.reason = Some(
                    "every rung was shed: this machine cannot encode the ladder in real time"
                        .into(),
                );
                self.publish_status();
                return;
            }
            Ok(r) => r,
            Err(reason) => {
                self.reason = Some(reason);
                self.publish_status();
                return;
            }
        };
        let vertical = self.vertical_rung(&video, &rungs);
        let spawned = Child::spawn(Spawn {
            vertical,
            ffmpeg: &self.ctx.ffmpeg,
            origin: &self.ctx.origin,
            channel: &self.channel,
            rungs,
            max_segment: self.ctx.max_segment,
            video: &video,
            audio: audio.as_ref(),
            analysis: self.ctx.analysis,
            ladders: &self.ctx.statuses,
            first,
            availability_start,
            after_gap: self.had_child,
        });
        match spawned {
            Ok(child) => {
                info!(channel = %self.channel, rungs = ?child.rungs.iter().map(|r| &r.name).collect::<Vec<_>>(), msn = first.msn, "ladder: started");
                self.child = Some(child);
                self.had_child = true;
                self.not_before = None;
                self.behind_ticks = 0;
                self.last_progress = None;
            }
            Err(e) => {
                self.reason = Some(format!(
                    "ffmpeg ({}) could not be started: {e}",
                    self.ctx.ffmpeg.display()
                ));
                warn!(channel = %self.channel, error = %e, "ladder: ffmpeg could not be started");
            }
        }
        self.publish_status();
    }

    /// The vertical rendition for this source, when the channel is reframed: encoded
    /// as the ladder's top rung is (or x264 at `veryfast` with no rung), at the frame
    /// rate the rungs have (the source's, at most 60). `None` for a portrait source (its own ladder is
    /// the vertical one) and while the tap that steers it is off.
    fn vertical_rung(&self, video: &Track, rungs: &[Rung]) -> Option<(Rung, VerticalSize)> {
        let target = self.ctx.choices.vertical.filter(|_| self.vertical)?;
        self.ctx.analysis?;
        let size = VerticalSize::plan(video.config.dimensions()?, target.size)?;
        let (encoder, preset, frame_rate, reduce) = match rungs.first() {
            Some(r) => (
                r.encoder,
                r.preset.clone(),
                r.frame_rate,
                r.reduce_frame_rate,
            ),
            None => {
                let fps = match &video.config {
                    starling_media::CodecConfig::H264(c) => c.fps,
                    _ => None,
                }
                .filter(|f| f.is_finite() && *f > 0.0);
                let capped = fps.map_or(30.0, |f| f.min(60.0));
                let reduce = fps.is_some_and(|f| f > 60.0);
                (VideoEncoder::X264, "veryfast".to_owned(), capped, reduce)
            }
        };
        let rung = Rung {
            name: VERTICAL_RENDITION.into(),
            width: size.out.0,
            height: size.out.1,
            bitrate_kbps: size.bitrate(target.size, target.kbps),
            encoder,
            preset,
            frame_rate,
            reduce_frame_rate: reduce,
        };
        Some((rung, size))
    }

    /// Stops the child (if any); `down`: its rungs list gaps until a child is back.
    async fn stop(&mut self, why: &str, down: bool) {
        let Some(child) = self.child.take() else {
            return;
        };
        info!(channel = %self.channel, why, "ladder: stopped");
        if down {
            self.mark_down(&child);
        }
        child.kill().await;
    }

    fn mark_down(&self, child: &Child) {
        for r in child.rungs.iter().chain(&child.vertical) {
            if let Some(name) = rendition_name(&r.name) {
                self.ctx.origin.rung_down(&self.channel, name);
            }
        }
    }

    /// The child failed: stop it, and start another after the backoff.
    async fn failed(&mut self, why: String) {
        warn!(channel = %self.channel, reason = %why, "ladder: ffmpeg failed; restarting");
        self.stop(&why, true).await;
        // A child that ran for a minute was healthy: its failure starts a new count.
        self.failures += 1;
        self.restarts += 1;
        self.not_before = Some(Instant::now() + backoff(self.failures));
        self.publish_status();
    }

    /// Sheds the most expensive rung and restarts with the others.
    async fn shed_one(&mut self, why: &str) {
        let Some(top) = self
            .child
            .as_ref()
            .and_then(|c| c.rungs.first())
            .map(|r| r.name.clone())
        else {
            return;
        };
        warn!(channel = %self.channel, rung = %top, why, "ladder: too slow for real time; shedding a rung");
        self.stop(why, true).await;
        self.shed += 1;
        self.shed_names.push(top);
        self.not_before = None;
        self.publish_status();
    }

    async fn on_tick(&mut self) {
        let segment = self.ctx.segment;
        let Some(child) = self.child.as_mut() else {
            if self.not_before.is_some_and(|t| Instant::now() >= t) {
                // The backoff is over; the next segment start begins a child.
                self.publish_status();
            }
            return;
        };
        if let Some(why) = child.exited() {
            self.failed(why).await;
            return;
        }
        if child.started.elapsed() > Duration::from_secs(60) {
            self.failures = 0;
        }
        let now = Instant::now();
        let ticks = |d: Duration| (d.as_secs_f64() * 90_000.0) as i64;
        let out = child.newest_out();
        match (out, self.last_progress) {
            (Some(t), Some((last, _))) if t > last => self.last_progress = Some((t, now)),
            (Some(t), None) => self.last_progress = Some((t, now)),
            _ => {}
        }
        // Stalled: fed, but nothing new out for two segments (counted from its start
        // while it has put out nothing yet, plus a second to start up).
        let quiet_since = self
            .last_progress
            .map_or(child.started + Duration::from_secs(1), |(_, at)| at);
        if child.newest_in > out.unwrap_or(i64::MIN)
            && now.duration_since(quiet_since) > segment * 2
        {
            self.failed(format!(
                "ffmpeg put out nothing for {} s",
                (segment * 2).as_secs()
            ))
            .await;
            return;
        }
        // Behind: output more than two segments of media time behind input, for a
        // second in a row (not a passing hiccup).
        if out.is_some_and(|o| child.newest_in - o > ticks(segment * 2)) {
            self.behind_ticks += 1;
            if self.behind_ticks >= 4 {
                self.shed_one("its output is more than two segments behind its input")
                    .await;
            }
        } else {
            self.behind_ticks = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_immediate_once_then_doubles_to_half_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn a_channel_chooses_among_the_nodes_rungs() {
        let ladder = starling_transcode::default_ladder();
        let heights = |r: Result<Vec<RungSpec>, String>| -> Vec<u32> {
            r.unwrap().iter().map(|r| r.height).collect()
        };
        assert_eq!(heights(choose(&ladder, "default")), [1080, 720, 480, 360]);
        assert_eq!(heights(choose(&ladder, "")), [1080, 720, 480, 360]);
        assert_eq!(heights(choose(&ladder, "source,720p,360p")), [720, 360]);
        assert!(choose(&ladder, "source")
            .unwrap_err()
            .contains("source alone"));
        let e = choose(&ladder, "source,540p").unwrap_err();
        assert!(
            e.contains("540p") && e.contains("1080p, 720p, 480p, 360p"),
            "{e}"
        );
    }
}
