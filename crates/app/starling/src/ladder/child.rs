//! One ffmpeg child of a channel's ladder: the source's packaged samples go in on stdin
//! as MPEG-TS, every rung comes back on stdout as one MPEG-TS and goes through its own
//! follower packager into the channel (`starling_origin::RungFeed`).
//!
//! Times: the child is fed media times made small (`time − base + OFFSET`, so that
//! MPEG-TS's 33-bit clock never wraps within a child and a negative composition offset
//! stays positive), kept by `-copyts`, and mapped back on the way out. A rung frame thus
//! lands on exactly the time of the source frame it was made from.

use std::{
    collections::VecDeque,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use starling_media::TrackKind;
use starling_media::{Frame, Stream, Track, TrackId};
use starling_mpegts::{DemuxEvent, Demuxer, Muxer};
use starling_origin::{Origin, RungFeed};
use starling_packager::{rendition_name, Follow, Input, Sample};
use starling_sync::lock;
use starling_transcode::{
    AnalysisEvent, AnalysisOutputs, LiveCommand, Loudness, LoudnessParser, Picture, Rung,
    VerticalOutput, VerticalSize,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt},
    process::{Child as Process, ChildStdout},
    sync::mpsc,
    task::JoinHandle,
};
use tracing::{debug, warn};

/// Added to every time fed (10 s at 90 kHz).
const OFFSET: i64 = 900_000;
/// Samples remembered for mapping rung frames back to their source frame (10 s at
/// 30 fps; more than the child ever lags, or it is shed).
const REMEMBERED: usize = 600;
/// Writes queued for the child's stdin before it counts as behind (about 4 s at
/// 30 fps).
const STDIN_QUEUE: usize = 128;
/// Lines of the child's stderr kept for the error it dies with.
const STDERR_LINES: usize = 8;

/// A source sample the child was fed: where it is on the media timeline, the segment
/// it starts (if it does), when it arrived.
#[derive(Debug, Clone, Copy)]
struct Fed {
    time: i64,
    starts: Option<u64>,
    arrival: SystemTime,
}

/// What the feeder and the reader share.
#[derive(Debug)]
struct Shared {
    channel: String,
    base: i64,
    availability_start: SystemTime,
    /// The child restarts a rung (its first segment follows a gap).
    after_gap: bool,
    fed: Mutex<VecDeque<Fed>>,
    /// Newest media time out of the child (any rung); `i64::MIN` before the first.
    newest_out: AtomicI64,
}

/// Why a feed was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FeedError {
    /// The child does not take its input as fast as it comes.
    Behind,
    /// Its stdin is gone (it exited).
    Gone,
    /// The sample could not be muxed (a codec TS cannot carry).
    Mux(String),
}

/// A running ladder child.
pub(crate) struct Child {
    pub rungs: Vec<Rung>,
    /// The vertical rendition, encoded after the rungs (its track is the last).
    pub vertical: Option<Rung>,
    process: Process,
    stdin: Option<mpsc::Sender<Bytes>>,
    muxer: Muxer,
    track: TrackId,
    /// The input's audio track, when the tap measures loudness.
    audio_track: Option<TrackId>,
    shared: Arc<Shared>,
    reader: JoinHandle<()>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    pub started: tokio::time::Instant,
    /// Newest media time fed.
    pub newest_in: i64,
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("rungs", &self.rungs.len())
            .field("newest_in", &self.newest_in)
            .finish_non_exhaustive()
    }
}

/// The analysis tap's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Analysis {
    pub fps: u32,
    pub width: u32,
}

/// How a child is started.
pub(crate) struct Spawn<'a> {
    pub ffmpeg: &'a Path,
    pub origin: &'a Arc<Origin>,
    pub channel: &'a str,
    pub rungs: Vec<Rung>,
    pub max_segment: Duration,
    /// The source's video track (its config goes into the child's input).
    pub video: &'a Track,
    /// Its audio track: fed to the child for the tap's loudness.
    pub audio: Option<&'a Track>,
    pub analysis: Option<Analysis>,
    pub ladders: &'a Arc<super::Ladders>,
    /// The first sample fed: a segment's start.
    pub first: &'a Sample,
    pub availability_start: SystemTime,
    pub after_gap: bool,
    /// The vertical rendition and its window's sizes (steered through the tap's
    /// directory; only with the tap).
    pub vertical: Option<(Rung, VerticalSize)>,
}

impl Child {
    pub(crate) fn spawn(s: Spawn<'_>) -> std::io::Result<Self> {
        // The tap's sockets, in a directory of this child's own (removed with it).
        let tap = match (s.analysis, s.video.config.dimensions()) {
            (Some(a), Some(dims)) => Some(TapSockets::bind(a, dims, s.audio.is_some())?),
            _ => None,
        };
        let vertical = match (&tap, s.vertical) {
            (Some(tap), Some((rung, size))) => Some(VerticalOutput {
                rung,
                size,
                control: format!("ipc://{}", tap.dir.join("v").display()),
            }),
            _ => None,
        };
        let args = LiveCommand {
            rungs: s.rungs.clone(),
            max_segment: s.max_segment,
            analysis: tap.as_ref().map(TapSockets::outputs),
            vertical: vertical.clone(),
        }
        .args();
        let mut process = tokio::process::Command::new(s.ffmpeg)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            return Err(std::io::Error::other("ffmpeg's pipes were not set up"));
        };
        // The input's one track, on the 90 kHz clock the samples are on.
        let track = Track {
            id: s.video.id,
            timescale: 90_000,
            config: s.video.config.clone(),
        };
        let mut tracks = vec![track];
        let audio = s
            .audio
            .filter(|_| tap.as_ref().is_some_and(|t| t.loudness.is_some()));
        if let Some(a) = audio {
            tracks.push(Track {
                id: a.id,
                timescale: 90_000,
                config: a.config.clone(),
            });
        }
        let stream = Stream {
            tracks,
            metadata: Vec::new(),
            clock: Default::default(),
        };
        let mut muxer = Muxer::new(&stream).map_err(|e| std::io::Error::other(e.to_string()))?;
        let (tx, mut rx) = mpsc::channel::<Bytes>(STDIN_QUEUE);
        let _ = tx.try_send(muxer.psi());
        tokio::spawn(async move {
            let mut stdin = stdin;
            while let Some(b) = rx.recv().await {
                if stdin.write_all(&b).await.is_err() {
                    break;
                }
            }
            // Dropping stdin is the child's end of input: it flushes and exits.
        });
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = stderr_tail.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut t = lock(&tail);
                if t.len() == STDERR_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        let shared = Arc::new(Shared {
            channel: s.channel.to_owned(),
            base: s.first.time,
            availability_start: s.availability_start,
            after_gap: s.after_gap,
            fed: Mutex::new(VecDeque::with_capacity(REMEMBERED)),
            newest_out: AtomicI64::new(i64::MIN),
        });
        if let Some(tap) = tap {
            if let (Some(v), Some(source)) = (&vertical, s.video.config.dimensions()) {
                tokio::spawn(super::steering::run(super::steering::Steering {
                    channel: s.channel.to_owned(),
                    socket: tap.dir.join("v"),
                    source_width: source.0,
                    window_width: v.size.crop.0,
                    glide_secs: 1.0 / f64::from(tap.analysis.fps.max(1)),
                    wanted: s.ladders.steering(s.channel),
                }));
            }
            tap.start(s.ladders.clone(), shared.clone());
        }
        let reader = tokio::spawn(read_rungs(
            stdout,
            s.origin.clone(),
            shared.clone(),
            s.rungs
                .iter()
                .chain(vertical.as_ref().map(|v| &v.rung))
                .map(|r| r.name.clone())
                .collect(),
        ));
        Ok(Self {
            vertical: vertical.map(|v| v.rung),
            rungs: s.rungs,
            process,
            stdin: Some(tx),
            muxer,
            track: s.video.id,
            audio_track: audio.map(|a| a.id),
            shared,
            reader,
            stderr: stderr_tail,
            started: tokio::time::Instant::now(),
            newest_in: s.first.time,
        })
    }

    /// Hands one source sample to the child, without waiting.
    pub(crate) fn feed(&mut self, sample: &Sample) -> Result<(), FeedError> {
        let Some(stdin) = &self.stdin else {
            return Err(FeedError::Gone);
        };
        let track = match sample.kind {
            TrackKind::Video => self.track,
            TrackKind::Audio => match self.audio_track {
                Some(t) => t,
                None => return Ok(()),
            },
        };
        let dts = sample.time - self.shared.base + OFFSET;
        let frame = Frame {
            track,
            pts: dts + i64::from(sample.cts_offset),
            dts,
            keyframe: sample.keyframe,
            data: sample.data.clone(),
            arrival: sample.arrival,
        };
        let packets = self
            .muxer
            .frame(&frame)
            .map_err(|e| FeedError::Mux(e.to_string()))?;
        if sample.kind == TrackKind::Video {
            let mut fed = lock(&self.shared.fed);
            if fed.len() == REMEMBERED {
                fed.pop_front();
            }
            fed.push_back(Fed {
                time: sample.time,
                starts: sample.starts_segment.then_some(sample.msn),
                arrival: sample.arrival,
            });
        }
        if sample.kind == TrackKind::Video {
            self.newest_in = sample.time;
        }
        stdin.try_send(packets).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => FeedError::Behind,
            mpsc::error::TrySendError::Closed(_) => FeedError::Gone,
        })
    }

    /// Newest media time the child put out, if any.
    pub(crate) fn newest_out(&self) -> Option<i64> {
        Some(self.shared.newest_out.load(Ordering::Relaxed)).filter(|t| *t != i64::MIN)
    }

    /// The child exited (or its output ended): its status, if it exited.
    pub(crate) fn exited(&mut self) -> Option<String> {
        match self.process.try_wait() {
            Ok(Some(status)) => Some(self.describe_exit(status)),
            Ok(None) if self.reader.is_finished() => Some("its output ended".to_owned()),
            Ok(None) => None,
            Err(e) => Some(format!("could not be waited on: {e}")),
        }
    }

    fn describe_exit(&self, status: std::process::ExitStatus) -> String {
        let tail = lock(&self.stderr);
        match tail.back() {
            Some(line) => format!("ffmpeg exited ({status}): {line}"),
            None => format!("ffmpeg exited ({status})"),
        }
    }

    /// The end of the publish: the child's input ends, it flushes its last frames and
    /// exits; the rungs' last segments are packaged. Killed after `limit`.
    pub(crate) async fn finish(mut self, limit: Duration) {
        self.stdin = None;
        if tokio::time::timeout(limit, &mut self.reader).await.is_err() {
            warn!(channel = %self.shared.channel, "ladder: ffmpeg did not finish in time; killed");
            let _ = self.process.kill().await;
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.process.wait()).await;
    }

    /// Stops the child at once (its rungs' open segments are flushed as they are).
    pub(crate) async fn kill(mut self) {
        self.stdin = None;
        let _ = self.process.kill().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.reader).await;
    }
}

/// One rung's way into the channel, once its first keyframe found its segment.
struct RungOut {
    name: &'static str,
    feed: Option<RungFeed>,
}

/// Reads the child's stdout: demuxes the rungs (track `i + 1` is rung `i`, in the
/// order of the command's outputs), maps their times back to the media timeline and
/// packages each through its own follower packager.
async fn read_rungs(
    mut stdout: ChildStdout,
    origin: Arc<Origin>,
    shared: Arc<Shared>,
    names: Vec<String>,
) {
    let mut outs: Vec<RungOut> = names
        .iter()
        .filter_map(|n| rendition_name(n))
        .map(|name| RungOut { name, feed: None })
        .collect();
    let mut demux = Demuxer::new();
    let mut streams: Vec<Option<Arc<Stream>>> = (0..outs.len()).map(|_| None).collect();
    let mut buf = vec![0u8; 64 * 1024];
    let mut open = true;
    while open {
        match stdout.read(&mut buf).await {
            Ok(0) | Err(_) => {
                // The last frame of each rung is complete only now (its PES has no
                // length; the next one would have ended it).
                demux.flush();
                open = false;
            }
            Ok(n) => {
                demux.set_arrival(SystemTime::now());
                demux.push(&buf[..n]);
            }
        }
        while let Some(event) = demux.poll_event() {
            match event {
                DemuxEvent::Stream(s) => {
                    for (i, slot) in streams.iter_mut().enumerate() {
                        let id = TrackId(u32::try_from(i + 1).unwrap_or(u32::MAX));
                        let Some(t) = s.track(id) else { continue };
                        let one = Arc::new(Stream {
                            tracks: vec![t.clone()],
                            metadata: Vec::new(),
                            clock: Default::default(),
                        });
                        if let Some(feed) = outs.get_mut(i).and_then(|o| o.feed.as_mut()) {
                            feed.push(Input::Stream(one.clone()));
                        }
                        *slot = Some(one);
                    }
                }
                DemuxEvent::Frame(f) => {
                    let Some(i) = usize::try_from(f.track.0)
                        .ok()
                        .and_then(|t| t.checked_sub(1))
                    else {
                        continue;
                    };
                    let (Some(out), Some(Some(stream))) = (outs.get_mut(i), streams.get(i)) else {
                        continue;
                    };
                    on_rung_frame(&origin, &shared, out, stream, f);
                }
                DemuxEvent::Error(e) => {
                    debug!(channel = %shared.channel, error = %e, "ladder: ffmpeg's output had an error");
                }
                _ => {}
            }
        }
    }
    for out in &mut outs {
        if let Some(feed) = out.feed.as_mut() {
            feed.push(Input::End);
        }
    }
}

fn on_rung_frame(
    origin: &Arc<Origin>,
    shared: &Shared,
    out: &mut RungOut,
    stream: &Arc<Stream>,
    mut f: Frame,
) {
    let back = |t: i64| t - OFFSET + shared.base;
    f.pts = back(f.pts);
    f.dts = back(f.dts);
    shared.newest_out.fetch_max(f.dts, Ordering::Relaxed);
    // The source frame it was made from: its arrival (so that the rung's program date
    // times are the source's) and, for the first keyframe, the segment it starts. A
    // frame rate reduced by the ladder moves times by up to half a frame.
    let source = {
        let fed = lock(&shared.fed);
        let i = fed.partition_point(|x| x.time < f.pts - 1500);
        fed.range(i..)
            .take_while(|x| x.time <= f.pts + 1500)
            .min_by_key(|x| (x.time - f.pts).abs())
            .copied()
    };
    if let Some(s) = source {
        f.arrival = s.arrival;
    }
    if out.feed.is_none() {
        let Some(msn) = source.and_then(|s| s.starts).filter(|_| f.keyframe) else {
            // Not yet at a segment's start: a rung begins where the source's segment does.
            debug!(channel = %shared.channel, rung = out.name, time = f.pts, keyframe = f.keyframe, matched = source.is_some(), "ladder: rung frame before its first segment start");
            return;
        };
        let follow = Follow {
            availability_start: shared.availability_start,
            first_msn: msn,
            discontinuity: shared.after_gap,
        };
        debug!(channel = %shared.channel, rung = out.name, msn, time = f.pts, "ladder: rung begins");
        let Some(mut feed) = origin.rung_feed(&shared.channel, out.name, follow) else {
            return;
        };
        feed.push(Input::Stream(stream.clone()));
        out.feed = Some(feed);
    }
    if let Some(feed) = out.feed.as_mut() {
        feed.push(Input::Frame(f));
    }
}

/// The analysis tap's sockets: ffmpeg connects to them as a client (its `unix:`
/// protocol) and writes raw pictures to one and loudness lines to the other. Unix
/// sockets in a directory only this process may enter, so no other local user can
/// connect first or read them.
struct TapSockets {
    dir: PathBuf,
    analysis: Analysis,
    size: (u32, u32),
    pictures: tokio::net::UnixListener,
    loudness: Option<tokio::net::UnixListener>,
}

/// Tap socket directories made by this process (their names must be unique).
static TAP_DIRS: AtomicU64 = AtomicU64::new(0);

impl TapSockets {
    fn bind(analysis: Analysis, source: (u32, u32), audio: bool) -> std::io::Result<Self> {
        let n = TAP_DIRS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("starling-tap-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let pictures = tokio::net::UnixListener::bind(dir.join("p"))?;
        let loudness = if audio {
            Some(tokio::net::UnixListener::bind(dir.join("l"))?)
        } else {
            None
        };
        Ok(Self {
            size: AnalysisOutputs::size(source, analysis.width),
            dir,
            analysis,
            pictures,
            loudness,
        })
    }

    fn outputs(&self) -> AnalysisOutputs {
        let url = |name: &str| format!("unix:{}", self.dir.join(name).display());
        AnalysisOutputs {
            pictures: url("p"),
            width: self.size.0,
            height: self.size.1,
            fps: self.analysis.fps,
            loudness: self.loudness.as_ref().map(|_| url("l")),
        }
    }

    /// Reads both sockets until the child is gone, publishing what comes.
    fn start(self, ladders: Arc<super::Ladders>, shared: Arc<Shared>) {
        let Self {
            dir,
            analysis,
            size,
            pictures,
            loudness,
        } = self;
        let guard = Arc::new(RemoveDir(dir));
        let (l2, s2, g2) = (ladders.clone(), shared.clone(), guard.clone());
        let interval = 90_000 / i64::from(analysis.fps.max(1));
        tokio::spawn(async move {
            let _guard = g2;
            let len = Picture::i420_len(size.0, size.1);
            // ffmpeg may connect more than once (it sets its filters up again when the
            // input's format becomes known): the newest connection is the one.
            while let Ok(Ok((mut conn, _))) =
                tokio::time::timeout(Duration::from_secs(30), pictures.accept()).await
            {
                let mut k: i64 = 0;
                let mut buf = vec![0u8; len];
                while conn.read_exact(&mut buf).await.is_ok() {
                    // The `fps` filter's pictures fall on a grid from the first frame.
                    let picture = Picture {
                        time: s2.base + k * interval,
                        width: size.0,
                        height: size.1,
                        i420: Bytes::copy_from_slice(&buf),
                    };
                    k += 1;
                    l2.publish(&s2.channel, AnalysisEvent::Picture(picture));
                }
            }
        });
        if let Some(loudness) = loudness {
            tokio::spawn(async move {
                let _guard = guard;
                while let Ok(Ok((mut conn, _))) =
                    tokio::time::timeout(Duration::from_secs(30), loudness.accept()).await
                {
                    let mut parser = LoudnessParser::new();
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = conn.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        for (t, m) in parser.push(&buf[..n]) {
                            let time = (t * 90_000.0).round() as i64 - OFFSET + shared.base;
                            ladders.publish(
                                &shared.channel,
                                AnalysisEvent::Loudness(Loudness {
                                    time,
                                    momentary_lufs: m,
                                }),
                            );
                        }
                    }
                }
            });
        }
    }
}

/// Removes the tap's socket directory when the last reader is done.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
