//! [`PushIngest`]: the pushed objects of every channel, a bounded window of them in
//! memory, all of them written through to the object store.
//!
//! Reads ([`PushIngest::get`]) are served from memory first: the live edge must not wait
//! on a store. Objects evicted from memory stay readable from the store. The window is
//! bounded per channel in bytes and in channels, and every limit has a default in
//! [`PushConfig`].

use std::{
    collections::{hash_map::Entry, BTreeMap, HashMap, HashSet, VecDeque},
    fmt::Write as _,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use starling_store::{ObjectStore, StoreError};
use starling_sync::lock;
use tokio::sync::Notify;

use crate::{
    check::{
        check_channel, check_media, playlist_references, Kind, PushPath, PutError, PUSHED_PREFIX,
    },
    edge::{self, Ahead, Edge, Series},
    event::LiveEvent,
    retention::Ages,
    writer::{Op, Writer},
};

/// Channels with pushed objects learned from the store at start-up, at most.
const MAX_DISCOVERED: usize = 100_000;

/// A channel with a PUT this recent is live ([`PushIngest::live_channels`]).
pub const LIVE_WINDOW: Duration = Duration::from_secs(10);
/// Names of uploaded objects remembered per channel beyond the memory window, so that
/// a long (EVENT) playlist's old segments need no store listing on every update.
const KNOWN_NAMES: usize = 65_536;

/// `Cache-Control` of pushed media. Not `immutable` with a long max-age as for
/// Starling's own segments (whose names are per session and never reused): a packager
/// may upload the same name again (a restarted ffmpeg without epoch numbering starts at
/// 0 again, a DELETE then a PUT), and a cache holding the old bytes for a day would
/// serve a different stream's segment under the new playlist. A minute still takes
/// nearly all segment requests off the origin during their life in a live window.
pub const MEDIA_CACHE_CONTROL: &str = "public, max-age=60";
/// `Cache-Control` of pushed playlists: they change at every segment, and a second lets
/// a CDN collapse a second's worth of player reloads into one origin request.
pub const PLAYLIST_CACHE_CONTROL: &str = "public, max-age=1";

/// Limits of the push ingest. Defaults in [`PushConfig::default`].
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Largest segment, part or init section (64 MiB).
    pub max_media_bytes: usize,
    /// Largest playlist (1 MiB).
    pub max_playlist_bytes: usize,
    /// Bytes kept in memory per channel (256 MiB); past it the oldest media objects
    /// leave memory first, then the oldest playlists.
    pub max_channel_bytes: usize,
    /// Channels kept in memory (1024); a new one pushes out the one whose last PUT is
    /// oldest.
    pub max_channels: usize,
    /// Tries per store write or delete (5).
    pub store_attempts: u32,
    /// Wait before the first retry (250 ms), doubled after each.
    pub store_backoff: Duration,
    /// How long a positive authorisation is reused for one channel and key (2 s, at
    /// most 2 s): also how long a revoked key can go on pushing.
    pub auth_cache_ttl: Duration,
    /// How long a playlist naming objects not uploaded yet waits for them before it is
    /// refused (2 s). Packagers close a segment's upload and open the playlist's on
    /// another connection without waiting for the answer (ffmpeg does), so the playlist
    /// can arrive, or be read first, a moment before its newest segment is complete.
    pub reference_wait: Duration,
    /// Longest hold of a request for the next segment at the live edge (6 s). A request
    /// for the object a media playlist will name next is held until it is uploaded, for
    /// 1.5 × the playlist's EXT-X-TARGETDURATION but never longer than this; zero
    /// answers such requests at once.
    pub next_segment_wait: Duration,
    /// How long pushed objects stay in the store (and memory) after their PUT (7 days);
    /// `None` keeps them until the packager deletes them. Objects a playlist in memory
    /// names are never swept (crate::retention).
    pub retention: Option<Duration>,
    /// Live events by channel: the legitimate range of segment numbers, answered
    /// without a store read outside it ([`PushIngest::answer`], crate::event).
    pub events: HashMap<String, LiveEvent>,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            max_media_bytes: 64 << 20,
            max_playlist_bytes: 1 << 20,
            max_channel_bytes: 256 << 20,
            max_channels: 1024,
            store_attempts: 5,
            store_backoff: Duration::from_millis(250),
            auth_cache_ttl: Duration::from_secs(2),
            reference_wait: Duration::from_secs(2),
            next_segment_wait: Duration::from_secs(6),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            events: HashMap::new(),
        }
    }
}

impl PushConfig {
    /// The body limit for an object of `kind`.
    pub fn limit(&self, kind: Kind) -> usize {
        match kind {
            Kind::Playlist => self.max_playlist_bytes,
            Kind::Fmp4 | Kind::MpegTs => self.max_media_bytes,
        }
    }
}

/// A pushed object as the origin serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedObject {
    pub body: Bytes,
    pub content_type: &'static str,
    pub cache_control: &'static str,
}

/// How a PUT was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The name was not in the memory window (201 Created).
    New,
    /// It replaced an object of the same name in the memory window (204).
    Replaced,
}

/// Results counted in `starling_put_requests_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Stored,
    RefusedAuth,
    RefusedBody,
    RefusedPath,
    TooLarge,
    MissingReference,
    Deleted,
}

const OUTCOMES: [(Outcome, &str); 7] = [
    (Outcome::Stored, "stored"),
    (Outcome::RefusedAuth, "refused_auth"),
    (Outcome::RefusedBody, "refused_body"),
    (Outcome::RefusedPath, "refused_path"),
    (Outcome::TooLarge, "too_large"),
    (Outcome::MissingReference, "missing_reference"),
    (Outcome::Deleted, "deleted"),
];

impl Outcome {
    pub(crate) fn of(e: &PutError) -> Outcome {
        match e {
            PutError::Channel(_) | PutError::Path(_) => Outcome::RefusedPath,
            PutError::MissingReference(_) => Outcome::MissingReference,
            PutError::TooLarge { .. } => Outcome::TooLarge,
            _ => Outcome::RefusedBody,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) body: Bytes,
    pub(crate) content_type: &'static str,
    pub(crate) kind: Kind,
    seq: u64,
}

/// One channel's memory window.
#[derive(Debug)]
pub(crate) struct Window {
    pub(crate) objects: HashMap<String, Held>,
    /// Insertion order (replacement counts as insertion), media and playlists apart so
    /// that media leaves first.
    media: BTreeMap<u64, String>,
    playlists: BTreeMap<u64, String>,
    bytes: usize,
    /// Names uploaded and not deleted, newest last, bounded by [`KNOWN_NAMES`].
    known: HashMap<String, u64>,
    known_order: VecDeque<(u64, String)>,
    /// The live edge of each numbered series a media playlist in memory names.
    edges: HashMap<Series, Edge>,
    /// Woken at every object taken for this channel, for requests held at the edge.
    pub(crate) published: Arc<Notify>,
    last_put: Instant,
    /// When this run of pushes began (the first PUT after [`LIVE_WINDOW`] without one).
    since: SystemTime,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            since: SystemTime::now(),
            objects: HashMap::new(),
            media: BTreeMap::new(),
            playlists: BTreeMap::new(),
            bytes: 0,
            known: HashMap::new(),
            known_order: VecDeque::new(),
            edges: HashMap::new(),
            published: Arc::new(Notify::new()),
            last_put: now,
        }
    }

    fn remove(&mut self, path: &str) -> Option<Held> {
        let held = self.objects.remove(path)?;
        self.bytes -= held.body.len();
        match held.kind {
            Kind::Playlist => self.playlists.remove(&held.seq),
            _ => self.media.remove(&held.seq),
        };
        Some(held)
    }

    fn insert(&mut self, path: &PushPath, body: Bytes, seq: u64, limit: usize) -> Stored {
        let replaced = self.remove(path.as_str()).is_some();
        self.bytes += body.len();
        let order = match path.kind() {
            Kind::Playlist => &mut self.playlists,
            _ => &mut self.media,
        };
        order.insert(seq, path.as_str().to_owned());
        self.objects.insert(
            path.as_str().to_owned(),
            Held {
                body,
                content_type: path.content_type(),
                kind: path.kind(),
                seq,
            },
        );
        self.remember(path.as_str(), seq);
        // Oldest media first, then oldest playlists; never the object just taken, even
        // when it alone is over the limit (the limit then holds as soon as a newer one
        // comes).
        while self.bytes > limit {
            let oldest = |m: &BTreeMap<u64, String>| {
                m.iter()
                    .next()
                    .filter(|(s, _)| **s != seq)
                    .map(|(_, p)| p.clone())
            };
            let Some(victim) = oldest(&self.media).or_else(|| oldest(&self.playlists)) else {
                break;
            };
            self.remove(&victim);
        }
        if replaced {
            Stored::Replaced
        } else {
            Stored::New
        }
    }

    fn remember(&mut self, path: &str, seq: u64) {
        self.known.insert(path.to_owned(), seq);
        self.known_order.push_back((seq, path.to_owned()));
        while self.known_order.len() > KNOWN_NAMES {
            if let Some((s, p)) = self.known_order.pop_front() {
                if self.known.get(&p) == Some(&s) {
                    self.known.remove(&p);
                }
            }
        }
    }

    /// `path` leaves memory, its name is no longer known as uploaded, and the edges its
    /// playlist set (if it is one) go.
    pub(crate) fn forget(&mut self, path: &str) {
        self.remove(path);
        self.known.remove(path);
        self.edges.retain(|_, e| e.playlist != path);
    }

    fn has(&self, path: &str) -> bool {
        self.objects.contains_key(path) || self.known.contains_key(path)
    }

    /// Moves the live edges after `path` was taken: a media playlist sets the edge of
    /// its series (dropping those of playlists no longer in memory, and its own old
    /// ones), a numbered media object moves its series' edge forward.
    fn advance(&mut self, path: &PushPath, edge: Option<(Series, Edge)>) {
        if path.kind() == Kind::Playlist {
            let objects = &self.objects;
            self.edges
                .retain(|_, e| e.playlist != path.as_str() && objects.contains_key(&e.playlist));
            if let Some((series, e)) = edge {
                self.edges.insert(series, e);
            }
        } else if let Some(n) = edge::numbered(path) {
            if let Some(e) = self.edges.get_mut(&n.series) {
                e.uploaded(&n);
            }
        }
    }

    /// How a request for `path`, which is not in memory, stands against the edge of its
    /// series; [`Ahead::Behind`] when it has none.
    pub(crate) fn ahead(&self, path: &PushPath) -> Ahead {
        edge::numbered(path)
            .and_then(|n| self.edges.get(&n.series).map(|e| e.ahead(&n)))
            .unwrap_or(Ahead::Behind)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Channels {
    pub(crate) windows: HashMap<String, Window>,
    next_seq: u64,
    /// When each channel's objects were pushed, for retention; kept apart from the
    /// windows, which leave memory long before their objects leave the store.
    pub(crate) ages: HashMap<String, Ages>,
}

/// A channel being pushed to ([`PushIngest::live_channels`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePush {
    pub channel: String,
    /// When its current run of pushes began.
    pub since: SystemTime,
}

/// The HTTP PUT ingest's state: share it (`Arc`) between the router
/// ([`crate::router`]) and the origin's reads ([`PushIngest::get`]).
pub struct PushIngest {
    config: PushConfig,
    pub(crate) channels: Mutex<Channels>,
    pub(crate) writer: Arc<Writer>,
    /// Woken at every object taken, for playlists waiting on a reference.
    uploaded: Notify,
    results: [AtomicU64; OUTCOMES.len()],
    bytes: AtomicU64,
    /// Channels with pushed objects in the store from before this process started
    /// ([`PushIngest::discover`]).
    stored: Mutex<HashSet<String>>,
    /// When this process started: the age of pushed objects it did not take.
    pub(crate) started: SystemTime,
    pub(crate) retention_deleted: AtomicU64,
    pub(crate) retention_failures: AtomicU64,
}

impl std::fmt::Debug for PushIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushIngest")
            .field("config", &self.config)
            .field("channels", &lock(&self.channels).windows.len())
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

impl PushIngest {
    pub fn new(config: PushConfig, store: Arc<dyn ObjectStore>) -> Arc<Self> {
        let writer = Arc::new(Writer::new(
            store,
            config.store_attempts,
            config.store_backoff,
        ));
        Arc::new(Self {
            config,
            channels: Mutex::new(Channels::default()),
            writer,
            uploaded: Notify::new(),
            results: Default::default(),
            bytes: AtomicU64::new(0),
            stored: Mutex::new(HashSet::new()),
            started: SystemTime::now(),
            retention_deleted: AtomicU64::new(0),
            retention_failures: AtomicU64::new(0),
        })
    }

    /// Learns which channels have pushed objects in the store (one listing of
    /// `pushed/`, at most [`MAX_DISCOVERED`] names), so that what was pushed before a
    /// restart is served again without waiting for a new push. Returns how many.
    pub async fn discover(&self) -> Result<usize, StoreError> {
        let names = self
            .writer
            .store()
            .children(PUSHED_PREFIX, MAX_DISCOVERED)
            .await?;
        let mut stored = lock(&self.stored);
        // (A name that is not a valid channel was not written by this crate.)
        stored.extend(names.into_iter().filter(|n| check_channel(n).is_ok()));
        Ok(stored.len())
    }

    pub fn config(&self) -> &PushConfig {
        &self.config
    }

    /// Checks and takes an object pushed to `channel` at `path`: the body against its
    /// kind and limit, a playlist's references against what was uploaded. Nothing is
    /// kept or written when it is refused. Accepted objects are in memory when this
    /// returns and on their way to the store. Must be called from a Tokio runtime.
    ///
    /// Authorisation is the caller's ([`crate::router`] does it).
    pub async fn put(
        &self,
        channel: &str,
        path: &PushPath,
        body: Bytes,
    ) -> Result<Stored, PutError> {
        let result = self.check_and_insert(channel, path, body).await;
        match &result {
            Ok(_) => self.count(Outcome::Stored),
            Err(e) => self.count(Outcome::of(e)),
        }
        result
    }

    async fn check_and_insert(
        &self,
        channel: &str,
        path: &PushPath,
        body: Bytes,
    ) -> Result<Stored, PutError> {
        check_channel(channel)?;
        let limit = self.config.limit(path.kind());
        if body.len() > limit {
            return Err(PutError::TooLarge {
                what: what(path.kind()),
                size: Some(body.len() as u64),
                limit,
            });
        }
        let mut edge = None;
        if path.kind() == Kind::Playlist {
            let refs = playlist_references(&body, path, limit)?;
            self.check_references(channel, &refs).await?;
            edge = edge::of_playlist(&body, path, self.config.next_segment_wait);
        } else {
            check_media(path.kind(), &body)?;
        }
        let len = body.len();
        let (stored, published) = {
            let mut chs = lock(&self.channels);
            let now = Instant::now();
            if !chs.windows.contains_key(channel) && chs.windows.len() >= self.config.max_channels {
                // The channel pushed to longest ago leaves memory; its objects stay in
                // the store.
                let stalest = chs
                    .windows
                    .iter()
                    .min_by_key(|(_, w)| w.last_put)
                    .map(|(c, _)| c.clone());
                if let Some(c) = stalest {
                    chs.windows.remove(&c);
                }
            }
            chs.next_seq += 1;
            let seq = chs.next_seq;
            let w = chs
                .windows
                .entry(channel.to_owned())
                .or_insert_with(|| Window::new(now));
            if now.duration_since(w.last_put) >= LIVE_WINDOW {
                w.since = SystemTime::now();
            }
            w.last_put = now;
            let stored = w.insert(path, body.clone(), seq, self.config.max_channel_bytes);
            w.advance(path, edge);
            let published = w.published.clone();
            if self.config.retention.is_some() {
                chs.ages
                    .entry(channel.to_owned())
                    .or_insert_with(|| Ages::new(self.started))
                    .record(path, SystemTime::now());
            }
            (stored, published)
        };
        self.uploaded.notify_waiters();
        published.notify_waiters();
        self.writer.schedule(path.store_key(channel), Op::Put(body));
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        Ok(stored)
    }

    /// Fails with the first reference that is neither in memory, nor remembered as
    /// uploaded, nor in the store, once [`PushConfig::reference_wait`] has passed
    /// without it being uploaded.
    async fn check_references(&self, channel: &str, refs: &[PushPath]) -> Result<(), PutError> {
        let deadline = tokio::time::Instant::now() + self.config.reference_wait;
        let mut asked_store = false;
        loop {
            let uploaded = self.uploaded.notified();
            tokio::pin!(uploaded);
            uploaded.as_mut().enable();
            let missing: Vec<&PushPath> = {
                let chs = lock(&self.channels);
                let w = chs.windows.get(channel);
                refs.iter()
                    .filter(|r| !w.is_some_and(|w| w.has(r.as_str())))
                    .collect()
            };
            let Some(first) = missing.first() else {
                return Ok(());
            };
            if !asked_store {
                asked_store = true;
                if self.in_store(channel, &missing).await {
                    return Ok(());
                }
                continue;
            }
            if tokio::time::timeout_at(deadline, uploaded).await.is_err() {
                return Err(PutError::MissingReference(first.as_str().to_owned()));
            }
        }
    }

    /// Whether all of `paths` are in the store (uploaded before this process started,
    /// or remembered no longer); those found are remembered. One listing per directory
    /// rather than one read per object.
    async fn in_store(&self, channel: &str, paths: &[&PushPath]) -> bool {
        let mut listed: HashMap<Option<&str>, HashSet<String>> = HashMap::new();
        let mut found = Vec::new();
        let mut all = true;
        // Deletes asked for before the listing: one may finish while the store is
        // listed (its key then no longer says `deleting`) and the listing still show
        // the object. (Failed CI once: a playlist naming a deleted segment accepted.)
        let deleting_before: Vec<bool> = paths
            .iter()
            .map(|r| self.writer.deleting(&r.store_key(channel)))
            .collect();
        for (i, r) in paths.iter().enumerate() {
            let names = match listed.entry(r.dir()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let prefix = match r.dir() {
                        Some(d) => format!("{PUSHED_PREFIX}/{channel}/{d}"),
                        None => format!("{PUSHED_PREFIX}/{channel}"),
                    };
                    let names = match self.writer.store().children(&prefix, KNOWN_NAMES).await {
                        Ok(names) => names.into_iter().collect(),
                        Err(e) => {
                            tracing::warn!(channel, error = %e, "pushed playlist: the store could not be listed to find its references");
                            HashSet::new()
                        }
                    };
                    e.insert(names)
                }
            };
            let file = r.as_str().rsplit('/').next().unwrap_or_default();
            let stored = names.contains(file);
            if stored && !deleting_before[i] && !self.writer.deleting(&r.store_key(channel)) {
                found.push(*r);
            } else {
                all = false;
            }
        }
        let mut chs = lock(&self.channels);
        chs.next_seq += 1;
        let seq = chs.next_seq;
        if let Some(w) = chs.windows.get_mut(channel) {
            for r in found {
                w.remember(r.as_str(), seq);
            }
        }
        all
    }

    /// Removes `path` of `channel` from memory and, in the background, from the store.
    /// Removing what is not there is not an error. Must be called from a Tokio runtime.
    pub fn delete(&self, channel: &str, path: &PushPath) -> Result<(), PutError> {
        if let Err(e) = check_channel(channel) {
            self.count(Outcome::RefusedPath);
            return Err(e);
        }
        if let Some(w) = lock(&self.channels).windows.get_mut(channel) {
            w.forget(path.as_str());
        }
        self.writer.schedule(path.store_key(channel), Op::Delete);
        self.count(Outcome::Deleted);
        Ok(())
    }

    /// Whether `channel` was pushed to since this process started (its window is in
    /// memory): a request for a channel nobody pushes to is answered without a store
    /// read.
    pub fn knows(&self, channel: &str) -> bool {
        self.config.events.contains_key(channel)
            || lock(&self.channels).windows.contains_key(channel)
            || lock(&self.stored).contains(channel)
    }

    /// Channels the retention sweep looks at: pushed to since start-up, found in the
    /// store by `discover`, or with recorded ages.
    pub(crate) fn sweepable_channels(&self) -> Vec<String> {
        let mut all: HashSet<String> = lock(&self.stored).iter().cloned().collect();
        {
            let chs = lock(&self.channels);
            all.extend(chs.windows.keys().cloned());
            all.extend(chs.ages.keys().cloned());
        }
        let mut all: Vec<String> = all.into_iter().collect();
        all.sort();
        all
    }

    /// Channels with a PUT in the last [`LIVE_WINDOW`], sorted by name.
    pub fn live_channels(&self) -> Vec<LivePush> {
        let now = Instant::now();
        let mut live: Vec<LivePush> = lock(&self.channels)
            .windows
            .iter()
            .filter(|(_, w)| now.duration_since(w.last_put) < LIVE_WINDOW)
            .map(|(c, w)| LivePush {
                channel: c.clone(),
                since: w.since,
            })
            .collect();
        live.sort_by(|a, b| a.channel.cmp(&b.channel));
        live
    }

    /// Returns once every store write and delete asked for so far has finished
    /// (succeeded or given up): for shutdown, and for tests.
    pub async fn flushed(&self) {
        self.writer.flushed().await
    }

    /// Appends the push ingest's metrics in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP starling_put_requests_total HTTP PUT/DELETE ingest requests by result."
        );
        let _ = writeln!(out, "# TYPE starling_put_requests_total counter");
        for (i, (_, label)) in OUTCOMES.iter().enumerate() {
            let n = self.results[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "starling_put_requests_total{{result=\"{label}\"}} {n}");
        }
        let (channels, bytes) = {
            let chs = lock(&self.channels);
            (
                chs.windows.len(),
                chs.windows.values().map(|w| w.bytes).sum::<usize>(),
            )
        };
        let rows: [(&str, &str, &str, u64); 7] = [
            (
                "starling_put_bytes_total",
                "counter",
                "Bytes of pushed objects accepted.",
                self.bytes.load(Ordering::Relaxed),
            ),
            (
                "starling_put_store_failures_total",
                "counter",
                "Pushed objects (or deletes) the object store did not take after every attempt.",
                self.writer.failures(),
            ),
            (
                "starling_put_retention_deleted_total",
                "counter",
                "Pushed objects the retention sweep deleted from the store.",
                self.retention_deleted.load(Ordering::Relaxed),
            ),
            (
                "starling_put_retention_failures_total",
                "counter",
                "Retention deletes (or listings) the store refused; the next sweep tries again.",
                self.retention_failures.load(Ordering::Relaxed),
            ),
            (
                "starling_put_store_pending",
                "gauge",
                "Store writes and deletes of pushed objects not yet finished.",
                self.writer.pending() as u64,
            ),
            (
                "starling_put_memory_bytes",
                "gauge",
                "Bytes of pushed objects held in memory.",
                bytes as u64,
            ),
            (
                "starling_put_channels",
                "gauge",
                "Channels with pushed objects in memory.",
                channels as u64,
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }

    pub(crate) fn count(&self, outcome: Outcome) {
        if let Some(i) = OUTCOMES.iter().position(|(o, _)| *o == outcome) {
            self.results[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn what(kind: Kind) -> &'static str {
    match kind {
        Kind::Playlist => "a playlist",
        Kind::Fmp4 | Kind::MpegTs => "a media object",
    }
}

pub(crate) fn too_large(kind: Kind, size: Option<u64>, limit: usize) -> PutError {
    PutError::TooLarge {
        what: what(kind),
        size,
        limit,
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
