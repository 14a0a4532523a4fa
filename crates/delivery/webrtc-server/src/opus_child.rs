//! AAC → Opus for WHEP viewers, the driver: one ffmpeg child per watched channel whose
//! stream has AAC audio, shared by every viewer of the channel (docs/webrtc.md).
//!
//! The fan-out task owns an [`AacToOpus`] and hands it the hub's events; it must never
//! wait on the child. So the AAC frames go into a bounded queue (dropped and counted
//! when full) that a task writes to the child's stdin; another part of that task reads
//! the child's stdout (Opus in MPEG-TS), places each packet on the media timeline
//! (`opus::Timeline`) and gives it to the channel's viewers through an [`OpusSink`].
//!
//! A child is started at the first AAC frame, and again (anchored anew) after a new
//! stream, the end of one, or a jump in the AAC timestamps. A child that dies is logged
//! once with its stderr's tail and started again with backoff. Without ffmpeg, or with
//! an ffmpeg without libopus, viewers get video only, and that is logged once.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use starling_media::{
    aac::{raw_to_adts, AudioSpecificConfig},
    CodecConfig, Frame, Stream, TrackId, TrackKind,
};
use starling_mpegts::{codec::opus_duration_90k, DemuxEvent, Demuxer};
use starling_sync::lock;
use starling_webrtc::Outgoing;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    process::Command,
    sync::{mpsc, OnceCell},
};
use tracing::{debug, info, warn};

use crate::opus::{self, Feed, Timeline};

/// AAC frames queued for a child (about 5 s at 48 kHz): past that they are dropped. A
/// new child is handed the hub's cached GOP's audio at once, before it has started.
const QUEUE: usize = 256;

/// A child that ran this long before it failed starts its backoff from the beginning.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// Bytes of a child's stderr kept for the log line of its failure.
const STDERR_TAIL: usize = 1024;

/// Counters of the AAC → Opus children, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct OpusMetrics {
    /// Children running now.
    pub children: AtomicU64,
    /// Children started.
    pub children_total: AtomicU64,
    /// Children replaced to anchor anew: a new stream, or a jump in the AAC timestamps.
    pub restarts_total: AtomicU64,
    /// Children that could not start or died.
    pub failures_total: AtomicU64,
    /// AAC frames dropped because a child's queue was full.
    pub dropped_frames_total: AtomicU64,
    /// Opus packets sent to viewers.
    pub packets_total: AtomicU64,
    /// Sum, in microseconds, of each packet's delay from its last AAC frame's arrival at
    /// the fan-out to its hand-over to viewers (the delay the transcode adds).
    pub delay_us_sum: AtomicU64,
}

/// What every channel's transcoder shares: the ffmpeg to run and whether it can.
#[derive(Debug)]
pub(crate) struct OpusShared {
    ffmpeg: PathBuf,
    usable: OnceCell<bool>,
    pub metrics: OpusMetrics,
}

impl OpusShared {
    pub fn new(ffmpeg: PathBuf) -> Self {
        OpusShared {
            ffmpeg,
            usable: OnceCell::new(),
            metrics: OpusMetrics::default(),
        }
    }

    /// Whether the ffmpeg runs and has libopus: asked once, the answer logged once.
    async fn usable(&self) -> bool {
        *self
            .usable
            .get_or_init(|| async {
                let out = Command::new(&self.ffmpeg)
                    .args(opus::ENCODERS_ARGS)
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .output()
                    .await;
                let ffmpeg = self.ffmpeg.display();
                match out {
                    Ok(o) if opus::lists_libopus(&String::from_utf8_lossy(&o.stdout)) => {
                        info!(%ffmpeg, "webrtc: AAC sources are transcoded to Opus for WHEP viewers");
                        true
                    }
                    Ok(_) => {
                        warn!(%ffmpeg, "webrtc: this ffmpeg has no libopus encoder: WHEP viewers of AAC sources get no sound");
                        false
                    }
                    Err(e) => {
                        warn!(%ffmpeg, error = %e, "webrtc: ffmpeg cannot be run: WHEP viewers of AAC sources get no sound");
                        false
                    }
                }
            })
            .await
    }
}

/// Where a channel's Opus packets go: its viewers.
pub(crate) trait OpusSink: Send + Sync + 'static {
    /// Sends `out` to the viewers if `current()` (asked under the same lock that orders
    /// the channel's items, so a packet of a replaced child never follows the new
    /// stream's start).
    fn send_opus(&self, out: Outgoing, current: &dyn Fn() -> bool);
}

/// The AAC track being transcoded.
#[derive(Debug, Clone)]
struct AacTrack {
    id: TrackId,
    config: AudioSpecificConfig,
    timescale: u32,
}

/// What a child's task tells the fan-out.
#[derive(Debug, Default)]
struct ChildState {
    /// The task is over (the child died or never started).
    exited: AtomicBool,
    /// It is over because no usable ffmpeg exists.
    unusable: AtomicBool,
}

#[derive(Debug)]
struct ChildHandle {
    tx: mpsc::Sender<Bytes>,
    timeline: Arc<Mutex<Timeline<Instant>>>,
    state: Arc<ChildState>,
    started: Instant,
}

/// One channel's AAC → Opus: owned by the channel's fan-out task, never waits.
pub(crate) struct AacToOpus {
    shared: Arc<OpusShared>,
    sink: Arc<dyn OpusSink>,
    channel: String,
    track: Option<AacTrack>,
    child: Option<ChildHandle>,
    /// Bumped whenever a child is replaced or stopped; a child's packets are sent only
    /// while it is the one it was started with.
    generation: Arc<AtomicU64>,
    failures: u32,
    retry_at: Option<Instant>,
    /// No usable ffmpeg: nothing more is tried.
    off: bool,
}

impl AacToOpus {
    pub fn new(shared: Arc<OpusShared>, sink: Arc<dyn OpusSink>, channel: &str) -> Self {
        AacToOpus {
            shared,
            sink,
            channel: channel.to_owned(),
            track: None,
            child: None,
            generation: Arc::default(),
            failures: 0,
            retry_at: None,
            off: false,
        }
    }

    /// A new stream: the running child (if any) is replaced at its first AAC frame.
    pub fn on_stream(&mut self, stream: &Stream) {
        if self.stop() {
            self.shared
                .metrics
                .restarts_total
                .fetch_add(1, Ordering::Relaxed);
        }
        self.track = stream.audio().and_then(|t| match &t.config {
            CodecConfig::Aac(c) => Some(AacTrack {
                id: t.id,
                config: c.clone(),
                timescale: t.timescale,
            }),
            _ => None,
        });
    }

    /// The stream ended: the child goes.
    pub fn on_ended(&mut self) {
        self.stop();
        self.track = None;
    }

    /// A frame of the channel: fed to the child if it is the AAC track's.
    pub fn on_frame(&mut self, frame: &Frame, now: Instant) {
        let Some(track) = self.track.as_ref().filter(|t| t.id == frame.track).cloned() else {
            return;
        };
        if self.off {
            return;
        }
        if let Some(c) = &self.child {
            if c.state.exited.load(Ordering::Acquire) {
                if c.state.unusable.load(Ordering::Acquire) {
                    self.off = true;
                    self.child = None;
                    return;
                }
                // Failed (and logged by its task): wait, then start another.
                let ran = now.saturating_duration_since(c.started);
                self.failures = if ran >= HEALTHY_RUN {
                    1
                } else {
                    self.failures + 1
                };
                self.retry_at = Some(now + opus::backoff(self.failures));
                self.child = None;
            } else if lock(&c.timeline).check(frame.pts) == Feed::Jump {
                debug!(channel = %self.channel, pts = frame.pts, "webrtc: AAC timestamps jumped; the Opus child starts anew");
                self.stop();
                self.shared
                    .metrics
                    .restarts_total
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        if self.retry_at.is_some_and(|t| now < t) {
            return;
        }
        let Ok(adts) = raw_to_adts(&track.config, &frame.data) else {
            return;
        };
        let samples = track.config.samples_per_frame();
        if self.child.is_none() {
            self.retry_at = None;
            self.child = Some(self.start(&track, now));
        }
        let Some(child) = &self.child else {
            return;
        };
        // Under the timeline's lock, so the reader cannot place output of this frame
        // before it is recorded.
        let mut timeline = lock(&child.timeline);
        match child.tx.try_send(adts) {
            Ok(()) => timeline.fed(frame.pts, samples, now),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared
                    .metrics
                    .dropped_frames_total
                    .fetch_add(1, Ordering::Relaxed);
            }
            // The task is over; the next frame sees why.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Stops the child if one runs; returns whether one did.
    fn stop(&mut self) -> bool {
        self.generation.fetch_add(1, Ordering::AcqRel);
        // Dropping the queue's sender ends the task, which kills the child.
        self.child.take().is_some()
    }

    fn start(&self, track: &AacTrack, now: Instant) -> ChildHandle {
        let (tx, rx) = mpsc::channel(QUEUE);
        let timeline = Arc::new(Mutex::new(Timeline::new(
            track.config.sample_rate,
            track.timescale,
        )));
        let state = Arc::new(ChildState::default());
        let mine = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let task = ChildTask {
            shared: self.shared.clone(),
            sink: self.sink.clone(),
            channel: self.channel.clone(),
            channels: track.config.channels,
            generation: self.generation.clone(),
            mine,
            timeline: timeline.clone(),
            state: state.clone(),
        };
        tokio::spawn(task.run(rx));
        ChildHandle {
            tx,
            timeline,
            state,
            started: now,
        }
    }
}

impl Drop for AacToOpus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The task of one child: starts it, writes its stdin, reads its stdout.
struct ChildTask {
    shared: Arc<OpusShared>,
    sink: Arc<dyn OpusSink>,
    channel: String,
    channels: u8,
    generation: Arc<AtomicU64>,
    mine: u64,
    timeline: Arc<Mutex<Timeline<Instant>>>,
    state: Arc<ChildState>,
}

/// Decrements the running-children gauge however the task ends.
struct Running<'a>(&'a AtomicU64);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ChildTask {
    async fn run(self, rx: mpsc::Receiver<Bytes>) {
        self.run_inner(rx).await;
        self.state.exited.store(true, Ordering::Release);
    }

    async fn run_inner(&self, mut rx: mpsc::Receiver<Bytes>) {
        if !self.shared.usable().await {
            self.state.unusable.store(true, Ordering::Release);
            return;
        }
        let m = &self.shared.metrics;
        let mut child = match Command::new(&self.shared.ffmpeg)
            .args(opus::ffmpeg_args(self.channels))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                m.failures_total.fetch_add(1, Ordering::Relaxed);
                warn!(channel = %self.channel, error = %e, "webrtc: the AAC → Opus ffmpeg did not start");
                return;
            }
        };
        m.children_total.fetch_add(1, Ordering::Relaxed);
        m.children.fetch_add(1, Ordering::Relaxed);
        let _running = Running(&m.children);
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            m.failures_total.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let stderr = tokio::spawn(tail(stderr));
        let write = async {
            while let Some(b) = rx.recv().await {
                if stdin.write_all(&b).await.is_err() {
                    return false;
                }
            }
            // The sender is gone: this child was stopped.
            true
        };
        let stopped = tokio::select! {
            stopped = write => stopped,
            () = self.read(stdout) => false,
        };
        if stopped {
            let _ = child.kill().await;
            stderr.abort();
            return;
        }
        // The child closed a pipe: it is dying. Say why, once.
        let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
        let _ = child.kill().await;
        let tail = tokio::time::timeout(Duration::from_secs(1), stderr)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        m.failures_total.fetch_add(1, Ordering::Relaxed);
        let status = match status {
            Ok(Ok(s)) => s.to_string(),
            _ => "still running".to_owned(),
        };
        warn!(channel = %self.channel, %status, stderr = %tail.trim(), "webrtc: the AAC → Opus ffmpeg failed; it is started again with backoff");
    }

    /// Reads Opus in MPEG-TS until the child closes its stdout.
    async fn read(&self, mut stdout: impl AsyncRead + Unpin) {
        let m = &self.shared.metrics;
        let mut demux = Demuxer::new();
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            demux.push(&buf[..n]);
            while let Some(ev) = demux.poll_event() {
                let DemuxEvent::Frame(f) = ev else {
                    continue;
                };
                // 90 kHz → 48 kHz is exact for Opus's 2.5 ms steps.
                let duration = match opus_duration_90k(&f.data) * 8 / 15 {
                    d if d > 0 => d,
                    _ => 960,
                };
                let Some(placed) = lock(&self.timeline).place(duration) else {
                    continue;
                };
                let delay = Instant::now().saturating_duration_since(placed.fed_at);
                m.delay_us_sum.fetch_add(
                    u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                m.packets_total.fetch_add(1, Ordering::Relaxed);
                let out = Outgoing {
                    kind: TrackKind::Audio,
                    keyframe: true,
                    rtp_time: placed.rtp_time,
                    payload: Arc::from(&f.data[..]),
                };
                let (generation, mine) = (&self.generation, self.mine);
                self.sink
                    .send_opus(out, &|| generation.load(Ordering::Acquire) == mine);
            }
        }
    }
}

/// The last [`STDERR_TAIL`] bytes a child wrote to stderr.
async fn tail(mut stderr: impl AsyncRead + Unpin) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n @ 1..) = stderr.read(&mut buf).await {
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > STDERR_TAIL {
            kept.drain(..kept.len() - STDERR_TAIL);
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}
