//! The live state of every channel: renditions, their init sections, parts and segments.
//!
//! One task per channel follows the hub, runs the packager and applies its output here.
//! Parts and recent segments are served from memory; every complete segment is written
//! through to the object store in the background, and only once it is stored may it
//! leave memory. HTTP handlers read this state under a short lock and wait on a version
//! counter for blocking requests; nothing here waits on storage.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime},
};

use bytes::{Bytes, BytesMut};
use starling_hls as hls;
use starling_hub::{Hub, HubEvent};
use starling_media::TrackKind;
use starling_packager::{Input, Output, Packager, PackagerConfig, RenditionInfo};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::{metrics::OriginMetrics, store::ObjectStore};

/// How playlists keep history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistKind {
    /// The last `dvr_window` of segments (viewers can seek back that far).
    Sliding,
    /// Every segment since the publish began (`EXT-X-PLAYLIST-TYPE:EVENT`).
    Event,
}

#[derive(Debug, Clone)]
pub struct OriginConfig {
    pub segment_duration: Duration,
    pub part_duration: Duration,
    /// How far back a sliding playlist reaches (and what the store keeps addressable).
    pub dvr_window: Duration,
    /// Complete segments younger than this stay in memory (older ones, once stored, are
    /// read back from the store).
    pub memory_window: Duration,
    pub playlist: PlaylistKind,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            segment_duration: Duration::from_secs(2),
            part_duration: Duration::from_millis(333),
            dvr_window: Duration::from_secs(2 * 3600),
            memory_window: Duration::from_secs(60),
            playlist: PlaylistKind::Sliding,
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Everything the origin knows about one channel.
#[derive(Debug)]
pub struct Channel {
    pub name: String,
    pub(crate) inner: Mutex<ChannelInner>,
    /// Bumped after every change; blocking requests wait on it.
    pub(crate) version: watch::Sender<u64>,
    /// When the last change was published (for the hand-off latency metric).
    pub(crate) changed_at: Mutex<Option<std::time::Instant>>,
}

#[derive(Debug, Default)]
pub(crate) struct ChannelInner {
    /// Identifies this run of the channel in object keys and ETags (unix ms of its first frame).
    pub session: u64,
    pub renditions: Vec<Rendition>,
    /// A publisher is live now.
    pub live: bool,
    /// The publish ended: playlists carry ENDLIST.
    pub ended: bool,
}

#[derive(Debug)]
pub(crate) struct Rendition {
    pub info: RenditionInfo,
    /// Init sections by version; a codec change adds one.
    pub inits: Vec<Bytes>,
    pub segments: VecDeque<Segment>,
    /// MSN of the first segment ever listed that fell out of the window, if any: older
    /// MSNs are gone for good (410).
    pub evicted_below: u64,
    pub discontinuity_sequence: u64,
    pub target_duration: u32,
    pub next_discontinuity: bool,
    /// Bytes and seconds of complete segments, for BANDWIDTH.
    pub peak_bps: f64,
    pub total_bytes: u64,
    pub total_secs: f64,
    /// Rendered playlists for the current version: (version, full, delta).
    pub cache: Option<(u64, Bytes, Option<Bytes>)>,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub msn: u64,
    pub init: usize,
    pub discontinuity: bool,
    pub new_map: bool,
    pub program_date_time: Option<SystemTime>,
    pub parts: Vec<PartEntry>,
    pub complete: bool,
    pub duration: f64,
    /// The whole segment once complete (parts become slices of it); `None` once it left
    /// memory (then it is read from the store).
    pub data: Option<Bytes>,
    pub stored: bool,
    pub completed_at: Option<SystemTime>,
}

#[derive(Debug, Clone)]
pub(crate) struct PartEntry {
    pub duration: f64,
    pub independent: bool,
    pub data: Bytes,
}

impl Channel {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            inner: Mutex::new(ChannelInner::default()),
            version: watch::channel(0).0,
            changed_at: Mutex::new(None),
        }
    }

    pub(crate) fn bump(&self) {
        *lock(&self.changed_at) = Some(std::time::Instant::now());
        self.version.send_modify(|v| *v += 1);
    }

    pub fn is_live(&self) -> bool {
        lock(&self.inner).live
    }

    /// What the last publish left in the object store, once it has ended and every
    /// complete segment still listed is written; `None` while live or still writing.
    pub fn finished_recording(&self) -> Option<Recording> {
        let st = lock(&self.inner);
        if !st.ended || st.session == 0 {
            return None;
        }
        let mut rec = Recording {
            session: st.session,
            prefix: format!("media/{}/{}/", self.name, st.session),
            segments: 0,
            duration_secs: 0.0,
            bytes: 0,
        };
        for r in &st.renditions {
            for s in r.segments.iter().filter(|s| s.complete) {
                if !s.stored {
                    return None;
                }
                rec.segments += 1;
            }
            rec.duration_secs = rec.duration_secs.max(r.total_secs);
            rec.bytes += r.total_bytes;
        }
        Some(rec)
    }
}

/// A finished publish as stored: see [`Channel::finished_recording`].
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The session id in its object keys.
    pub session: u64,
    /// Object key prefix of its media (`media/{channel}/{session}/`).
    pub prefix: String,
    /// Complete segments listed (all renditions).
    pub segments: usize,
    /// Longest rendition's duration.
    pub duration_secs: f64,
    /// Bytes of media, all renditions.
    pub bytes: u64,
}

impl ChannelInner {
    pub fn rendition(&self, name: &str) -> Option<&Rendition> {
        self.renditions.iter().find(|r| r.info.name == name)
    }

    fn rendition_mut(&mut self, name: &str) -> Option<&mut Rendition> {
        self.renditions.iter_mut().find(|r| r.info.name == name)
    }
}

impl Rendition {
    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        let seg = self
            .segments
            .get(usize::try_from(msn.checked_sub(first)?).ok()?)?;
        (seg.msn == msn).then_some(seg)
    }
}

/// Object key of a segment: derived from validated names and numbers only.
pub(crate) fn segment_key(channel: &str, session: u64, rendition: &str, msn: u64) -> String {
    format!("media/{channel}/{session}/{rendition}/{msn}.m4s")
}

pub(crate) fn init_key(channel: &str, session: u64, rendition: &str, version: usize) -> String {
    format!("media/{channel}/{session}/{rendition}/init-{version}.mp4")
}

/// The origin: all channels' live state, the store behind it, and the tasks that feed it.
pub struct Origin {
    pub(crate) config: OriginConfig,
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) channels: Mutex<HashMap<String, Arc<Channel>>>,
    pub(crate) metrics: Arc<OriginMetrics>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Origin {
    pub fn new(config: OriginConfig, store: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(Self {
            config,
            store,
            channels: Mutex::default(),
            metrics: Arc::default(),
        })
    }

    pub fn config(&self) -> &OriginConfig {
        &self.config
    }

    pub fn metrics(&self) -> &Arc<OriginMetrics> {
        &self.metrics
    }

    pub fn channel(&self, name: &str) -> Option<Arc<Channel>> {
        lock(&self.channels).get(name).cloned()
    }

    /// Start packaging `channel` from the hub, now and whenever it goes live again, unless
    /// it is followed already (then this does nothing). The task ends when the hub does.
    pub fn follow(self: &Arc<Self>, hub: &Hub, channel: &str) {
        let ch = {
            let mut channels = lock(&self.channels);
            if channels.contains_key(channel) {
                return;
            }
            let ch = Arc::new(Channel::new(channel));
            channels.insert(channel.to_owned(), ch.clone());
            ch
        };
        let mut sub = hub.subscribe(channel);
        let origin = self.clone();
        tokio::spawn(async move {
            let mut packager = Packager::new(PackagerConfig {
                segment_duration: origin.config.segment_duration,
                part_duration: origin.config.part_duration,
            });
            while let Some(event) = sub.recv().await {
                let input = match event {
                    HubEvent::Stream(s) => {
                        lock(&ch.inner).live = true;
                        Input::Stream(s)
                    }
                    HubEvent::Frame(f) => Input::Frame(f),
                    HubEvent::Ended => Input::End,
                };
                let outputs = packager.push(input);
                if !outputs.is_empty() {
                    origin.apply(&ch, outputs);
                }
            }
            debug!(channel = %ch.name, "origin stopped following");
        });
    }

    /// Apply packager output to a channel's state, then wake waiting requests.
    fn apply(self: &Arc<Self>, ch: &Arc<Channel>, outputs: Vec<Output>) {
        let now = SystemTime::now();
        let mut writes = Vec::new();
        {
            let mut st = lock(&ch.inner);
            for out in outputs {
                match out {
                    Output::Init { rendition, init } => {
                        if st.session == 0 || st.ended {
                            if st.session == 0 {
                                st.session = now
                                    .duration_since(SystemTime::UNIX_EPOCH)
                                    .map(|d| d.as_millis() as u64)
                                    .unwrap_or(0);
                                info!(channel = %ch.name, session = st.session, "origin: channel live");
                            }
                            st.ended = false;
                            st.live = true;
                        }
                        let target =
                            hls::target_duration_for(self.config.segment_duration.as_secs_f64());
                        let session = st.session;
                        let name = rendition.name;
                        match st.rendition_mut(name) {
                            Some(r) => {
                                r.inits.push(init.clone());
                                r.next_discontinuity = true;
                                r.info = rendition;
                            }
                            None => st.renditions.push(Rendition {
                                info: rendition,
                                inits: vec![init.clone()],
                                segments: VecDeque::new(),
                                evicted_below: 0,
                                discontinuity_sequence: 0,
                                target_duration: target,
                                next_discontinuity: false,
                                peak_bps: 0.0,
                                total_bytes: 0,
                                total_secs: 0.0,
                                cache: None,
                            }),
                        }
                        let version = st.rendition(name).map_or(0, |r| r.inits.len() - 1);
                        writes.push((init_key(&ch.name, session, name, version), vec![init], None));
                    }
                    Output::Part {
                        rendition,
                        msn,
                        index,
                        duration,
                        independent,
                        data,
                        first_arrival,
                    } => {
                        let Some(r) = st.rendition_mut(rendition) else {
                            continue;
                        };
                        if r.segments.back().is_none_or(|s| s.complete || s.msn != msn) {
                            let init = r.inits.len().saturating_sub(1);
                            let new_map = r.segments.back().is_some_and(|s| s.init != init);
                            let discontinuity = std::mem::take(&mut r.next_discontinuity);
                            r.segments.push_back(Segment {
                                msn,
                                init,
                                discontinuity,
                                new_map,
                                program_date_time: Some(first_arrival),
                                parts: Vec::new(),
                                complete: false,
                                duration: 0.0,
                                data: None,
                                stored: false,
                                completed_at: None,
                            });
                        }
                        if let Some(seg) = r.segments.back_mut() {
                            if seg.parts.len() as u32 != index {
                                warn!(channel = %ch.name, rendition, msn, index, have = seg.parts.len(), "origin: part out of order");
                            }
                            seg.parts.push(PartEntry {
                                duration,
                                independent,
                                data,
                            });
                        }
                        r.cache = None;
                        self.metrics.observe_part(first_arrival, duration, now);
                    }
                    Output::SegmentEnd {
                        rendition,
                        msn,
                        duration,
                        program_date_time,
                        discontinuity,
                    } => {
                        let session = st.session;
                        let Some(r) = st.rendition_mut(rendition) else {
                            continue;
                        };
                        let Some(seg) = r.segments.back_mut().filter(|s| s.msn == msn) else {
                            warn!(channel = %ch.name, rendition, msn, "origin: end of a segment that has no parts");
                            continue;
                        };
                        // One copy per segment (never per viewer): the parts become
                        // slices of the whole, so memory holds each byte once.
                        let len = seg.parts.iter().map(|p| p.data.len()).sum();
                        let mut whole = BytesMut::with_capacity(len);
                        for p in &seg.parts {
                            whole.extend_from_slice(&p.data);
                        }
                        let whole = whole.freeze();
                        let mut off = 0;
                        for p in &mut seg.parts {
                            let n = p.data.len();
                            p.data = whole.slice(off..off + n);
                            off += n;
                        }
                        seg.complete = true;
                        seg.duration = duration;
                        seg.program_date_time = Some(program_date_time);
                        seg.discontinuity |= discontinuity;
                        seg.data = Some(whole.clone());
                        seg.completed_at = Some(now);
                        let rounded = hls::target_duration_for(duration);
                        if rounded > r.target_duration {
                            // The source's keyframe interval is longer than the configured
                            // segment duration: the playlist must say so.
                            warn!(channel = %ch.name, rendition, duration, "origin: segment longer than the target duration; raising it");
                            r.target_duration = rounded;
                        }
                        if duration > 0.0 {
                            r.peak_bps = r.peak_bps.max(len as f64 * 8.0 / duration);
                        }
                        r.total_bytes += len as u64;
                        r.total_secs += duration;
                        r.cache = None;
                        writes.push((
                            segment_key(&ch.name, session, rendition, msn),
                            vec![whole],
                            Some((rendition, msn)),
                        ));
                        self.evict(r, now);
                    }
                    Output::Ended => {
                        st.ended = true;
                        st.live = false;
                        for r in &mut st.renditions {
                            r.cache = None;
                        }
                        info!(channel = %ch.name, "origin: publish ended; playlists closed with ENDLIST");
                    }
                }
            }
        }
        ch.bump();
        for (key, data, segment) in writes {
            self.write_through(ch.clone(), key, data, segment);
        }
    }

    /// Drop what the windows no longer hold: bytes of stored segments older than the
    /// memory window, and (sliding playlists) segments older than the DVR window.
    fn evict(&self, r: &mut Rendition, now: SystemTime) {
        let older_than = |s: &Segment, d: Duration| {
            s.completed_at
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > d)
        };
        for s in r.segments.iter_mut() {
            if s.data.is_some() && s.stored && older_than(s, self.config.memory_window) {
                s.data = None;
                for p in &mut s.parts {
                    p.data = Bytes::new();
                }
            }
        }
        if self.config.playlist == PlaylistKind::Sliding {
            while r
                .segments
                .front()
                .is_some_and(|s| older_than(s, self.config.dvr_window))
            {
                if let Some(s) = r.segments.pop_front() {
                    if s.discontinuity {
                        r.discontinuity_sequence += 1;
                    }
                    r.evicted_below = s.msn + 1;
                }
            }
        }
    }

    fn write_through(
        self: &Arc<Self>,
        ch: Arc<Channel>,
        key: String,
        data: Vec<Bytes>,
        segment: Option<(&'static str, u64)>,
    ) {
        let origin = self.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            match origin.store.put(&key, data).await {
                Ok(()) => {
                    origin.metrics.store_write(started.elapsed(), true);
                    if let Some((rendition, msn)) = segment {
                        let mut st = lock(&ch.inner);
                        if let Some(seg) = st
                            .rendition_mut(rendition)
                            .and_then(|r| r.segments.iter_mut().find(|s| s.msn == msn))
                        {
                            seg.stored = true;
                        }
                    }
                }
                Err(e) => {
                    // The segment stays in memory (it is never evicted unstored); the
                    // live edge carries on.
                    origin.metrics.store_write(started.elapsed(), false);
                    warn!(channel = %ch.name, error = %e, "origin: write-through failed");
                }
            }
        });
    }

    /// Names of channels with a live publisher, for listings.
    pub fn live_channels(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.channels)
            .values()
            .filter(|c| c.is_live())
            .map(|c| c.name.clone())
            .collect();
        v.sort();
        v
    }
}

impl Rendition {
    pub fn kind(&self) -> TrackKind {
        self.info.kind
    }
}
