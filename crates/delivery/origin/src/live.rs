//! The live state of every channel: renditions, their init sections, parts and segments.
//!
//! One task per channel follows the hub, runs the packager and applies its output here.
//!
//! **Sessions and runs.** Every publish gets a session id, unique across reconnects,
//! restarts and nodes (the wall clock in ms and 20 random bits). Media objects live under
//! it (`…/RENDITION/SESSION/N.m4s`, object key `media/CHANNEL/SESSION/RENDITION/N.m4s`), so
//! an immutable URL never names two different bytes. A *run* is what one live playlist
//! shows: a publish, and every republish that comes back within the reconnect grace
//! (takeovers included). Numbering continues across a run's sessions and
//! `EXT-X-DISCONTINUITY` marks each seam; only when the grace expires does the run end
//! (`EXT-X-ENDLIST`). A publish after that starts a new run: a fresh playlist at the same
//! stable URL, while the old run's objects stay readable from the store.
//! Parts and recent segments are served from memory; every complete segment is written
//! through to the object store in the background, and only once it is stored may it
//! leave memory. HTTP handlers read this state under a short lock; blocking requests wait
//! on their rendition's feed (`wake`), woken after the lock is released; nothing here
//! waits on storage.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use starling_hub::{Hub, HubEvent};
use starling_media::TrackKind;
use starling_packager::{Input, Output, Packager, PackagerConfig, RenditionInfo};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::periods::Periods;
pub(crate) use crate::session::{init_key, new_session, segment_key};
pub use crate::session::{parse_session, session_name};
use crate::window::release;
use crate::{
    history::SegmentRecord,
    metrics::OriginMetrics,
    restore::HistoryQueue,
    store::ObjectStore,
    wake::{Feed, FeedState, Wakes},
};

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
    /// read back from the store). Whatever the window, the segments whose parts a
    /// playlist may still list stay in memory, and so does every segment not yet stored
    /// (see [`Origin::evict`]). Default: [`OriginConfig::live_edge_window`].
    pub memory_window: Duration,
    pub playlist: PlaylistKind,
    /// A republish within this time after a publish ended continues the same playlist
    /// (an encoder's reconnect is not an ending); after it, the playlist gets ENDLIST.
    pub reconnect_grace: Duration,
    /// Channels without settings of their own keep their segments in the store after
    /// they leave the DVR window (see [`ChannelSettings::record`]).
    pub record: bool,
    /// How long recorded sessions stay in the store, from their start; `None` keeps
    /// them for ever (see `sweep`).
    pub recording_retention: Option<Duration>,
    /// Store reads (DVR, VOD, earlier sessions) under way at once on this node; a read
    /// over it is shed with a 503 (see `shed`). 0: no cap.
    pub max_store_reads: usize,
    /// Store reads one client address may have under way at once (0: no cap). Behind a
    /// CDN or proxy every viewer shares its address: raise it or turn it off there.
    pub max_store_reads_per_client: usize,
}

impl OriginConfig {
    /// The default memory window for `segment_duration`: two segments, the least the
    /// configuration accepts. With the segment being built that is where LL-HLS players
    /// are (PART-HOLD-BACK is three parts, about 1 s), so they never wait on the store.
    /// Older segments, and the parts a playlist still lists of them, are read back from
    /// the store, which the page cache mostly holds: only a player that fell behind asks
    /// for them. Each segment more costs ~0.5 MiB per 2 Mbit/s channel; a 60 s window
    /// cost about 15 MiB.
    pub fn live_edge_window(segment_duration: Duration) -> Duration {
        segment_duration * 2
    }

    /// The packager's configuration, which also fixes the playlists' TARGETDURATION.
    pub fn packager(&self) -> PackagerConfig {
        PackagerConfig {
            segment_duration: self.segment_duration,
            part_duration: self.part_duration,
        }
    }
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            segment_duration: Duration::from_secs(2),
            part_duration: Duration::from_millis(334),
            dvr_window: Duration::from_secs(2 * 3600),
            memory_window: Self::live_edge_window(Duration::from_secs(2)),
            playlist: PlaylistKind::Sliding,
            reconnect_grace: Duration::from_secs(15),
            record: false,
            recording_retention: None,
            max_store_reads: 256,
            max_store_reads_per_client: 16,
        }
    }
}

/// A channel's own settings (from the control plane); they take effect when the channel's
/// next publish begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelSettings {
    /// How far back viewers can seek; at least six segments are always listed.
    pub dvr_window: Duration,
    /// Keep segments in the store once they leave the DVR window (the publish is a
    /// recording, and later a VOD asset), or delete them (disk stays flat).
    pub record: bool,
    /// LL-HLS (parts, preload hints, blocking part requests) or plain HLS segments.
    pub low_latency: bool,
    /// Viewers that can should play over WebRTC (WHEP): the multivariant playlist's
    /// response says so in [`crate::LATENCY_MODE_HEADER`], which the watch page reads.
    pub realtime: bool,
    /// Viewers should share whole segments with each other (the P2P latency mode): the
    /// multivariant playlist's response says `p2p` in [`crate::LATENCY_MODE_HEADER`].
    pub p2p: bool,
}

impl ChannelSettings {
    /// The node-wide defaults of `config`.
    pub fn defaults(config: &OriginConfig) -> Self {
        Self {
            dvr_window: config.dvr_window,
            record: config.record,
            low_latency: true,
            realtime: false,
            p2p: false,
        }
    }
}

pub(crate) use starling_sync::lock;

/// Everything the origin knows about one channel.
#[derive(Debug)]
pub struct Channel {
    pub name: String,
    pub(crate) inner: Mutex<ChannelInner>,
    /// Each rendition's feed (wake-ups, rendered playlist), found without `inner`'s lock.
    feeds: RwLock<Vec<Arc<Feed>>>,
    /// Settings for the next publish (see [`Origin::configure`]).
    pub(crate) pending: Mutex<Option<ChannelSettings>>,
    /// A task follows the channel in the hub.
    followed: std::sync::atomic::AtomicBool,
    /// The newest poster images (see `thumbs`).
    pub(crate) thumbnails: Mutex<Option<crate::Thumbnails>>,
    /// The newest rendered MPD (see `http::mpd`) and what it was made from.
    pub(crate) mpd: Mutex<Option<(crate::http::MpdKey, bytes::Bytes)>>,
    /// The transcoder's view of the source (see `tap`).
    pub(crate) tap: crate::tap::TapSlot,
}

#[derive(Debug)]
pub(crate) struct ChannelInner {
    /// The newest publish's session (0 before the first): new media goes under it.
    pub session: u64,
    /// Sessions of the current run, oldest first.
    pub run: Vec<u64>,
    /// In the reconnect grace: the session a republish will get, so that the playlist's
    /// preload hint can already name the next part's URL (players such as hls.js expect
    /// a live LL-HLS playlist to always have one). 0 otherwise.
    pub next_session: u64,
    pub renditions: Vec<Rendition>,
    /// The settings in force (applied when a publish begins).
    pub settings: ChannelSettings,
    /// A publisher is live now.
    pub live: bool,
    /// The run ended (the reconnect grace expired): playlists carry ENDLIST. Neither
    /// `live` nor `ended` while in the grace.
    pub ended: bool,
    /// Where the run's DASH periods sit on the wall clock (see `periods`).
    pub periods: Periods,
    /// Rungs whose transcoder is down: the source's new numbers are listed in them as
    /// gaps, so their players skip to another rendition instead of stalling (see `tap`).
    pub down_rungs: Vec<&'static str>,
    /// The newest publish said its clock is epoch time (the packager's epoch lock): a
    /// locked publish after it continues the same timeline, with no seam to mark.
    pub epoch_clock: bool,
}

#[derive(Debug)]
pub(crate) struct Rendition {
    pub info: RenditionInfo,
    /// Init sections by version, each with the session it was made in (its URL and key
    /// are under that session); a codec change adds one.
    pub inits: Vec<(u64, Bytes)>,
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
    /// Its version, wake-ups and rendered playlist: `feed.touch()` after every change.
    pub feed: FeedState,
    /// Where this run's segment index starts in the store (see `history`): the run's
    /// first segment, then the first chunk still kept as the window slides.
    pub history_from: Option<u64>,
    /// Index records of the newest stored segments (the chunks still being written).
    pub history: BTreeMap<u64, SegmentRecord>,
}

#[derive(Debug)]
pub(crate) struct Segment {
    /// The publish it belongs to: its URL and object key are under this session.
    pub session: u64,
    pub msn: u64,
    pub init: usize,
    pub discontinuity: bool,
    pub new_map: bool,
    pub program_date_time: Option<SystemTime>,
    /// Media time of its first sample in the rendition's timescale (the DASH timeline's
    /// `t`); `None` for gaps and segments restored from a version-1 history.
    pub media_start: Option<u64>,
    pub parts: Vec<PartEntry>,
    pub complete: bool,
    pub duration: f64,
    /// The whole segment once complete (parts become slices of it); `None` once it left
    /// memory (then it is read from the store).
    pub data: Option<Bytes>,
    pub stored: bool,
    /// Every write attempt failed: not in the store, and no longer held for it.
    pub write_failed: bool,
    pub completed_at: Option<SystemTime>,
    /// What the packager found wrong with it (all false for a clean segment).
    pub defects: starling_packager::Defects,
    /// A number this rendition skipped (audio missing for a whole video segment): listed
    /// as `EXT-X-GAP` so numbers stay consecutive and aligned with the other rendition;
    /// it has no parts and no bytes.
    pub gap: bool,
    /// SHA-256 and length of the whole segment (see [`PartEntry::sha256`]), once it is
    /// complete; kept after its bytes leave memory.
    pub sha256: Option<([u8; 32], u64)>,
}

impl Segment {
    /// Segment `msn` of `session` under init section `init`, with nothing in it yet:
    /// the fields a caller does not set.
    pub(crate) fn new(session: u64, msn: u64, init: usize) -> Self {
        Self {
            session,
            msn,
            init,
            discontinuity: false,
            new_map: false,
            program_date_time: None,
            media_start: None,
            parts: Vec::new(),
            complete: false,
            duration: 0.0,
            data: None,
            stored: false,
            write_failed: false,
            completed_at: None,
            defects: Default::default(),
            gap: false,
            sha256: None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PartEntry {
    pub duration: f64,
    pub independent: bool,
    /// Empty once the segment left memory; then the part is this many bytes of the
    /// stored segment, after the parts before it.
    pub data: Bytes,
    pub len: usize,
    /// SHA-256 of its bytes, for the signed piece list (`http::pieces`); `None` where
    /// the bytes were never in memory (restored from the index).
    pub sha256: Option<[u8; 32]>,
}

impl Channel {
    pub(crate) fn new(name: &str, settings: ChannelSettings) -> Self {
        Self {
            name: name.to_owned(),
            inner: Mutex::new(ChannelInner {
                session: 0,
                run: Vec::new(),
                next_session: 0,
                renditions: Vec::new(),
                settings,
                live: false,
                ended: false,
                periods: Periods::default(),
                down_rungs: Vec::new(),
                epoch_clock: false,
            }),
            feeds: RwLock::default(),
            pending: Mutex::new(None),
            followed: std::sync::atomic::AtomicBool::new(false),
            thumbnails: Mutex::new(None),
            mpd: Mutex::new(None),
            tap: Default::default(),
        }
    }

    /// Makes the feeds of renditions added under `inner`'s lock (`st`) findable
    /// without it; call before releasing that lock.
    pub(crate) fn register_feeds(&self, st: &ChannelInner) {
        let mut feeds = self.feeds.write().unwrap_or_else(|e| e.into_inner());
        for r in &st.renditions {
            if !feeds.iter().any(|f| Arc::ptr_eq(f, &r.feed.shared)) {
                feeds.push(r.feed.shared.clone());
            }
        }
    }

    /// Rendition `name`'s feed, without taking the channel's lock.
    pub(crate) fn feed(&self, name: &str) -> Option<Arc<Feed>> {
        let feeds = self.feeds.read().unwrap_or_else(|e| e.into_inner());
        feeds.iter().find(|f| f.name == name).cloned()
    }

    pub fn is_live(&self) -> bool {
        lock(&self.inner).live
    }

    /// What the last publish left in the object store, once it has ended and every
    /// complete segment still listed is written; `None` while live or still writing.
    pub fn finished_recording(&self) -> Option<Recording> {
        let st = lock(&self.inner);
        let first = *st.run.first()?;
        if !st.ended {
            return None;
        }
        let mut rec = Recording {
            session: session_name(first),
            sessions: st.run.iter().map(|s| session_name(*s)).collect(),
            prefix: format!("media/{}/{}/", self.name, session_name(first)),
            segments: 0,
            duration_secs: 0.0,
            bytes: 0,
            started_at: crate::session::session_start(first),
            renditions: Vec::new(),
            live: false,
        };
        for r in &st.renditions {
            let before = rec.segments;
            for s in r.segments.iter().filter(|s| s.complete && !s.write_failed) {
                if !s.stored {
                    return None;
                }
                rec.segments += 1;
            }
            if rec.segments > before {
                rec.renditions.push(r.info.name.to_owned());
            }
            rec.duration_secs = rec.duration_secs.max(r.total_secs);
            // (Init versions of earlier runs stay listed in a rendition: not this run's.)
            let inits = r.inits.iter().filter(|(s, _)| st.run.contains(s));
            rec.bytes += r.total_bytes + inits.map(|(_, b)| b.len() as u64).sum::<u64>();
        }
        Some(rec)
    }
}

/// A run as stored: see [`Channel::finished_recording`] (the run this node just
/// finished) and [`Origin::recordings`] (every run the store holds).
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The run's first session (as in URLs and object keys), which names the run.
    pub session: String,
    /// Every session of the run (a reconnect within the grace adds one), oldest first.
    pub sessions: Vec<String>,
    /// Object key prefix of the first session's media (`media/{channel}/{session}/`).
    pub prefix: String,
    /// Complete segments listed (all renditions).
    pub segments: usize,
    /// Longest rendition's duration.
    pub duration_secs: f64,
    /// Bytes of media, all renditions: segments and init sections.
    pub bytes: u64,
    /// When the run began (its first session's id carries it).
    pub started_at: SystemTime,
    /// The renditions it has segments in, as in its playlists' URLs.
    pub renditions: Vec<String>,
    /// Live, or in its reconnect grace, on this node: still growing, not deletable.
    pub live: bool,
}

impl ChannelInner {
    pub fn rendition(&self, name: &str) -> Option<&Rendition> {
        self.renditions.iter().find(|r| r.info.name == name)
    }

    pub(crate) fn rendition_mut(&mut self, name: &str) -> Option<&mut Rendition> {
        self.renditions.iter_mut().find(|r| r.info.name == name)
    }
}

impl Rendition {
    /// The segment numbered `msn`, whichever session it belongs to.
    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        // Numbers are consecutive but for audio gaps, so the index is a good first guess.
        let guess = usize::try_from(msn.checked_sub(first)?).ok()?;
        match self.segments.get(guess) {
            Some(seg) if seg.msn == msn => Some(seg),
            _ => self
                .segments
                .binary_search_by_key(&msn, |s| s.msn)
                .ok()
                .and_then(|i| self.segments.get(i)),
        }
    }

    pub(crate) fn segment_mut(&mut self, session: u64, msn: u64) -> Option<&mut Segment> {
        let i = self.segments.binary_search_by_key(&msn, |s| s.msn).ok()?;
        self.segments.get_mut(i).filter(|s| s.session == session)
    }
}

/// The origin: all channels' live state, the store behind it, and the tasks that feed it.
pub struct Origin {
    pub(crate) config: OriginConfig,
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) channels: Mutex<HashMap<String, Arc<Channel>>>,
    pub(crate) metrics: Arc<OriginMetrics>,
    /// Store writes under way: a graceful shutdown waits for them.
    pub(crate) writes_in_flight: watch::Sender<usize>,
    /// The channels' history in the store (see `restore`).
    pub(crate) history: HistoryQueue,
    /// Set when this node makes no thumbnails (see `thumbs`).
    pub(crate) thumbnails_off: crate::thumbs::ThumbnailsOff,
    /// Caps on store reads (see `shed`).
    pub(crate) reads: crate::shed::ReadLimits,
    /// Signs the renditions' piece lists for P2P viewers (see `http::pieces`); unset,
    /// this node serves none.
    pub(crate) piece_signer: std::sync::OnceLock<Arc<starling_p2p::PieceSigner>>,
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
        let reads =
            crate::shed::ReadLimits::new(config.max_store_reads, config.max_store_reads_per_client);
        Arc::new(Self {
            config,
            store,
            channels: Mutex::default(),
            metrics: Arc::default(),
            writes_in_flight: watch::channel(0).0,
            history: HistoryQueue::default(),
            thumbnails_off: Default::default(),
            reads,
            piece_signer: std::sync::OnceLock::new(),
        })
    }

    /// Serve signed piece lists (`…/RENDITION/pieces.txt`) for the P2P grid, signed by
    /// `signer` (the cluster's key). Set once; a second call is ignored.
    pub fn set_piece_signer(&self, signer: Arc<starling_p2p::PieceSigner>) {
        let _ = self.piece_signer.set(signer);
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

    /// Sets `channel`'s own settings; they take effect when its next publish begins (a
    /// publish under way keeps the ones it started with). Call before [`follow`] or
    /// before the publish reaches the hub.
    ///
    /// [`follow`]: Self::follow
    pub fn configure(&self, channel: &str, settings: ChannelSettings) {
        let ch = lock(&self.channels)
            .entry(channel.to_owned())
            .or_insert_with(|| Arc::new(Channel::new(channel, settings)))
            .clone();
        *lock(&ch.pending) = Some(settings);
    }

    /// Start packaging `channel` from the hub, now and whenever it goes live again, unless
    /// it is followed already (then this does nothing). The task ends when the hub does.
    pub fn follow(self: &Arc<Self>, hub: &Hub, channel: &str) {
        let ch = lock(&self.channels)
            .entry(channel.to_owned())
            .or_insert_with(|| {
                Arc::new(Channel::new(
                    channel,
                    ChannelSettings::defaults(&self.config),
                ))
            })
            .clone();
        if ch.followed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let mut sub = hub.subscribe(channel);
        let mut standby = hub.subscribe_standby(channel);
        let origin = self.clone();
        // Weak: an origin that is dropped (a test's "restart") stops sweeping.
        let sweeper = Arc::downgrade(self);
        let name = channel.to_owned();
        tokio::spawn(async move {
            // Retention over what the store holds: soon after start-up, then hourly.
            let mut wait = Duration::from_secs(60);
            loop {
                tokio::time::sleep(wait).await;
                wait = crate::sweep::SWEEP_EVERY;
                let Some(origin) = sweeper.upgrade() else {
                    break;
                };
                if let Err(e) = origin.sweep(&name, SystemTime::now()).await {
                    warn!(channel = %name, error = %e, "origin: retention sweep failed; trying again later");
                }
            }
        });
        tokio::spawn(async move {
            // The last run from before a restart first, so that a new publish continues
            // from it (a channel that does not record then deletes its old window).
            origin.restore(&ch.name).await;
            let mut packager = Packager::new(origin.config.packager());
            packager.set_tap(true);
            // A locked backup standing by, packaged beside the primary (see `select`).
            let mut selector = crate::select::Selector::new(origin.config.packager());
            // A publish is under way (a `Stream` after this is a change, not a new publish).
            let mut publishing = false;
            // When the reconnect grace of the last publish runs out.
            let mut grace: Option<tokio::time::Instant> = None;
            loop {
                let event = tokio::select! {
                    e = sub.recv() => e,
                    Some(e) = standby.recv() => {
                        selector.on_standby(e);
                        origin.settle(&ch, &mut selector);
                        continue;
                    }
                    _ = sleep_until_some(grace) => {
                        grace = None;
                        origin.apply(&ch, selector.release());
                        origin.end_run(&ch);
                        continue;
                    }
                };
                let Some(event) = event else { break };
                let ends = matches!(event, HubEvent::Ended);
                let input = match event {
                    HubEvent::Stream(s) => {
                        ch.tap_stream(&s);
                        if !publishing {
                            publishing = true;
                            grace = None;
                            origin.begin_session(&ch, s.clock.is_epoch());
                            selector.on_main_publish(&s);
                        }
                        Input::Stream(s)
                    }
                    HubEvent::Frame(f) => {
                        // The backup's candidate first: it may settle a held segment
                        // before this frame opens the next one.
                        selector.on_main_frame(&f);
                        origin.settle(&ch, &mut selector);
                        Input::Frame(f)
                    }
                    HubEvent::Ended => {
                        publishing = false;
                        grace = Some(tokio::time::Instant::now() + origin.config.reconnect_grace);
                        Input::End
                    }
                };
                let locked = packager.epoch_locked();
                let mut outputs = packager.push(input);
                ch.tap_outputs(&mut outputs, &packager);
                if locked {
                    outputs = if ends {
                        selector.hold(outputs)
                    } else {
                        selector.hold_defective(outputs)
                    };
                    outputs = selector.hold_missing(outputs);
                }
                let overdue = selector.overdue(&outputs);
                if !overdue.is_empty() {
                    origin.settle_as_primary(&ch, overdue);
                }
                if !outputs.is_empty() {
                    origin.apply(&ch, outputs);
                }
                // After the outputs: a held segment's last parts may have come with its
                // end, and must be listed before it is settled.
                origin.settle(&ch, &mut selector);
            }
            // The hub is gone (shutdown): nobody can come back within the grace.
            origin.apply(&ch, selector.release());
            if grace.is_some() {
                origin.end_run(&ch);
            }
            debug!(channel = %ch.name, "origin stopped following");
        });
    }

    /// Applies the held segments a backup candidate decided (see `select`).
    fn settle(self: &Arc<Self>, ch: &Arc<Channel>, selector: &mut crate::select::Selector) {
        let init = |rendition: &str| {
            lock(&ch.inner)
                .rendition(rendition)
                .and_then(|r| r.inits.last().map(|(_, b)| b.clone()))
        };
        for s in selector.settle(init) {
            let Output::SegmentEnd { rendition, msn, .. } = &s.end else {
                continue;
            };
            let (rendition, msn) = (*rendition, *msn);
            let pipeline = if s.selected.is_some() {
                "backup"
            } else {
                "primary"
            };
            self.metrics.segment_selections[usize::from(s.selected.is_none())]
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            info!(channel = %ch.name, rendition, msn, pipeline, "origin: the locked primary's segment chosen");
            self.apply_selected(ch, vec![s.end], s.selected);
        }
        // The primary's output that waited for skipped numbers to be filled.
        let released = selector.released();
        if !released.is_empty() {
            let overdue = selector.overdue(&released);
            if !overdue.is_empty() {
                self.settle_as_primary(ch, overdue);
            }
            self.apply(ch, released);
        }
    }

    /// Applies held segments that could not wait for a candidate: the primary's own.
    fn settle_as_primary(self: &Arc<Self>, ch: &Arc<Channel>, ends: Vec<Output>) {
        for end in &ends {
            if let Output::SegmentEnd { rendition, msn, .. } = end {
                self.metrics.segment_selections[1]
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                info!(channel = %ch.name, rendition, msn, pipeline = "primary", "origin: the locked primary's last segment kept (no candidate in time)");
            }
        }
        self.apply(ch, ends);
    }

    /// A publish begins: a new session, in the current run if it is still in its grace
    /// (or live: a takeover), else in a new run with a fresh playlist. `epoch_clock`:
    /// its timestamps are epoch time, so the packager numbers it on the epoch grid.
    fn begin_session(self: &Arc<Self>, ch: &Arc<Channel>, epoch_clock: bool) {
        let mut deletes = Vec::new();
        let mut inits = Vec::new();
        let wakes = {
            let mut st = lock(&ch.inner);
            let session = match std::mem::take(&mut st.next_session) {
                0 => new_session(SystemTime::now()),
                promised => promised,
            };
            if st.ended {
                // The old run's playlist said ENDLIST and must not change: the new run
                // starts a fresh one (numbering goes on, so no URL is reused). The old
                // run's media stays in the store under its sessions if it was recorded;
                // else its DVR window goes now.
                st.ended = false;
                st.periods.reset();
                st.down_rungs.clear();
                let old_run = st.run.first().copied().unwrap_or(0);
                st.run.clear();
                let record = st.settings.record;
                if !record && old_run != 0 {
                    self.history_drop_description(&ch.name, old_run);
                }
                for r in &mut st.renditions {
                    if !record {
                        self.history_drop_run(&ch.name, old_run, r);
                    }
                    r.history_from = None;
                    r.history.clear();
                    if let Some(last) = r.segments.back() {
                        r.evicted_below = last.msn + 1;
                    }
                    if !record {
                        let name = r.info.name;
                        deletes.extend(
                            r.segments
                                .iter()
                                .filter(|s| s.complete && !s.gap)
                                .map(|s| segment_key(&ch.name, s.session, name, s.msn)),
                        );
                    }
                    r.segments.clear();
                    // The new run gets its own copy of the init section it starts with
                    // (the packager sends none when the codec did not change): all of
                    // a run's objects are under its own sessions, so deleting or
                    // sweeping an earlier run never takes one this run plays with.
                    if let Some((_, init)) = r.inits.last().cloned().filter(|(_, b)| !b.is_empty())
                    {
                        let key = init_key(&ch.name, session, r.info.name, r.inits.len());
                        r.inits.push((session, init.clone()));
                        inits.push((key, vec![init]));
                    }
                    r.discontinuity_sequence = 0;
                    r.target_duration = self.config.packager().target_duration();
                    r.total_bytes = 0;
                    r.total_secs = 0.0;
                    r.feed.touch();
                }
            }
            if let Some(settings) = lock(&ch.pending).take() {
                st.settings = settings;
            }
            let continues = !st.run.is_empty();
            // Two epoch-locked publishes in a row (a locked backup taking over) share
            // one timeline and numbering: no seam, unless the packager says so (a new
            // init section, a clock it could not believe).
            let same_clock = epoch_clock && std::mem::replace(&mut st.epoch_clock, epoch_clock);
            st.epoch_clock = epoch_clock;
            if continues && !same_clock {
                // The seam: the first segment of this session is a discontinuity from its
                // first part on (the packager would only say so when it completes, and a
                // playlist must not add the tag to a segment it already listed).
                for r in &mut st.renditions {
                    r.next_discontinuity = true;
                }
            }
            st.session = session;
            st.run.push(session);
            st.live = true;
            self.history_run(&ch.name, &st);
            info!(channel = %ch.name, session = %session_name(session), continues, "origin: publish began");
            Wakes::collect(&mut st, true)
        };
        wakes.send();
        self.delete_objects(deletes);
        for (key, init) in inits {
            self.write_through(ch.clone(), key, init, None);
        }
    }

    /// The reconnect grace ran out: the run is over. Playlists get ENDLIST (requests
    /// blocked on the live edge get the final playlist), and segments already stored
    /// leave memory (later reads of this run come from the store).
    fn end_run(&self, ch: &Channel) {
        let wakes = {
            let mut st = lock(&ch.inner);
            if st.live || st.ended || st.run.is_empty() {
                return;
            }
            st.ended = true;
            st.next_session = 0;
            for r in &mut st.renditions {
                r.feed.touch();
                for seg in r.segments.iter_mut().filter(|s| s.stored) {
                    release(seg);
                }
            }
            info!(channel = %ch.name, "origin: run ended; playlists closed with ENDLIST");
            // Every rendition: requests blocked on any of them get the final playlist.
            Wakes::collect(&mut st, true)
        };
        wakes.send();
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
    pub(crate) fn new(info: RenditionInfo, inits: Vec<(u64, Bytes)>, target_duration: u32) -> Self {
        let feed = FeedState::new(info.name);
        Self {
            info,
            inits,
            segments: VecDeque::new(),
            evicted_below: 0,
            discontinuity_sequence: 0,
            target_duration,
            next_discontinuity: false,
            peak_bps: 0.0,
            total_bytes: 0,
            total_secs: 0.0,
            feed,
            history_from: None,
            history: BTreeMap::new(),
        }
    }

    pub fn kind(&self) -> TrackKind {
        self.info.kind
    }
}

/// Sleeps until `at`, or forever when there is no deadline.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "live_tests.rs"]
mod tests;
