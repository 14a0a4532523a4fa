//! The hub: fans one producer's media out to many consumers per channel.
//!
//! - A channel has at most one [`Publisher`] at a time; a second is refused unless it asks
//!   to take over, in which case the first is told to stop ([`Publisher::taken_over`]).
//! - Every [`Subscriber`] starts with the current stream announcement and the cached GOP,
//!   so it can start decoding at once on a keyframe.
//! - The producer never waits: events go into a bounded ring (tokio's broadcast channel).
//!   A consumer that falls behind by more than the ring loses its place; it is then
//!   re-announced the stream and skips ahead to the next keyframe. It never slows the
//!   producer or the other consumers.
//! - Payloads are `Bytes`: a frame given to a thousand consumers is one allocation.
//!
//! The hub never touches sockets or storage; drivers own those.

mod failover;
mod metrics;

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime},
};

use starling_media::{Frame, MediaEvent, Stream, TrackId, TrackKind};
use starling_sync::lock;
use tokio::sync::{broadcast, watch};

pub use metrics::{Histogram, HubMetrics};

/// What a consumer receives.
#[derive(Debug, Clone)]
pub enum HubEvent {
    /// The stream's tracks (first thing after a publish starts, and again whenever they
    /// change or the consumer had to skip ahead).
    Stream(Arc<Stream>),
    Frame(Frame),
    /// The publisher went away. The channel may go live again later on the same subscription.
    Ended,
}

/// A channel's publish starting or ending, for whoever reacts to streams as a whole
/// (scheduled events, webhooks). Media consumers use [`Subscriber`] instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    /// A publisher took the channel. `takeover`: it replaced a live one (a reconnecting
    /// encoder), so the channel never stopped being live.
    Started {
        channel: String,
        at: SystemTime,
        takeover: bool,
    },
    /// The channel's publisher went away. `finished`: it said so itself
    /// ([`Publisher::finish`]); otherwise the connection dropped or it was stopped.
    Ended {
        channel: String,
        at: SystemTime,
        finished: bool,
    },
}

/// Limits of the hub. The defaults hold ~8 s of a 30 fps A/V stream per consumer.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Events a consumer may fall behind before it skips ahead.
    pub queue_len: usize,
    /// The GOP cache stops growing past this many bytes (a pathological keyframe interval
    /// would otherwise hold unbounded memory); the next keyframe starts it again.
    pub gop_cache_max_bytes: usize,
    pub gop_cache_max_frames: usize,
    /// A backup publisher takes over when no frame of the primary arrived for this long
    /// while the backup's frames keep coming (see [`Hub::publish_backup`]).
    pub failover_after: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            queue_len: 512,
            gop_cache_max_bytes: 64 << 20,
            gop_cache_max_frames: 4096,
            failover_after: Duration::from_millis(1500),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error("channel {channel:?} already has a live publisher")]
    AlreadyLive { channel: String },
}

/// The registry of channels.
#[derive(Debug, Default)]
pub struct Hub {
    config: HubConfig,
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    next_publisher_id: AtomicU64,
    metrics: Arc<HubMetrics>,
    lifecycle: LifecycleTx,
}

/// Lifecycle notices are rare (one per publish start/end) and small: a lagging listener
/// loses old ones rather than slowing publishers.
#[derive(Debug)]
struct LifecycleTx(broadcast::Sender<Lifecycle>);

impl Default for LifecycleTx {
    fn default() -> Self {
        Self(broadcast::channel(1024).0)
    }
}

#[derive(Debug)]
struct Channel {
    name: String,
    lifecycle: broadcast::Sender<Lifecycle>,
    tx: broadcast::Sender<HubEvent>,
    /// The standby backup's events as it sends them (see [`Hub::subscribe_standby`]).
    standby_tx: broadcast::Sender<HubEvent>,
    state: Mutex<ChannelState>,
}

#[derive(Debug, Default)]
struct ChannelState {
    stream: Option<Arc<Stream>>,
    /// Frames since the last video keyframe (the last one, the key, included).
    gop: Vec<Frame>,
    gop_bytes: usize,
    /// Caching paused until the next keyframe because the GOP outgrew its caps.
    gop_overflow: bool,
    publisher: Option<PublisherSlot>,
    /// When the current publish started.
    since: Option<SystemTime>,
    /// Arrival of the live publisher's newest frame.
    last_arrival: Option<SystemTime>,
    /// A backup publisher standing by (see `failover`).
    standby: Option<Box<failover::Standby>>,
}

#[derive(Debug)]
struct PublisherSlot {
    id: u64,
    stop: watch::Sender<bool>,
}

/// A summary of one live channel.
#[derive(Debug, Clone)]
pub struct LiveChannel {
    pub name: String,
    pub stream: Option<Arc<Stream>>,
    pub since: Option<SystemTime>,
    pub subscribers: usize,
}

impl Hub {
    pub fn new(config: HubConfig) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }

    pub fn metrics(&self) -> &Arc<HubMetrics> {
        &self.metrics
    }

    /// Publish starts and ends on every channel, from now on.
    pub fn lifecycle(&self) -> broadcast::Receiver<Lifecycle> {
        self.lifecycle.0.subscribe()
    }

    fn channel(&self, name: &str) -> Arc<Channel> {
        let mut channels = lock(&self.channels);
        channels
            .entry(name.to_owned())
            .or_insert_with(|| {
                let (tx, _) = broadcast::channel(self.config.queue_len.max(16));
                let (standby_tx, _) = broadcast::channel(self.config.queue_len.max(16));
                Arc::new(Channel {
                    name: name.to_owned(),
                    lifecycle: self.lifecycle.0.clone(),
                    tx,
                    standby_tx,
                    state: Mutex::default(),
                })
            })
            .clone()
    }

    /// Start publishing to `channel`. With `takeover`, a live publisher is told to stop
    /// and this one replaces it; without, a live channel refuses.
    pub fn publish(&self, channel: &str, takeover: bool) -> Result<Publisher, PublishError> {
        let ch = self.channel(channel);
        let id = self.next_publisher_id.fetch_add(1, Ordering::Relaxed);
        let (stop_tx, stop_rx) = watch::channel(false);
        let replaced;
        {
            let mut st = lock(&ch.state);
            replaced = st.publisher.is_some();
            if let Some(old) = &st.publisher {
                if !takeover {
                    return Err(PublishError::AlreadyLive {
                        channel: channel.to_owned(),
                    });
                }
                let _ = old.stop.send(true);
                // The old publisher's stream ends here for consumers; the new one announces its own.
                st.reset();
                let _ = ch.tx.send(HubEvent::Ended);
            }
            st.publisher = Some(PublisherSlot { id, stop: stop_tx });
            st.since = Some(SystemTime::now());
            // Sent under the lock, so a listener sees starts and ends in their real order.
            let _ = ch.lifecycle.send(Lifecycle::Started {
                channel: channel.to_owned(),
                at: SystemTime::now(),
                takeover: replaced,
            });
        }
        self.metrics.publishes.fetch_add(1, Ordering::Relaxed);
        Ok(Publisher {
            channel: ch,
            id,
            stop: stop_rx,
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            finished: false,
        })
    }

    /// Tell the live publisher of `channel`, if any, to stop (its key was revoked, an
    /// operator ended the stream). Returns whether there was one.
    pub fn stop_publisher(&self, channel: &str) -> bool {
        let channels = lock(&self.channels);
        let Some(ch) = channels.get(channel) else {
            return false;
        };
        let st = lock(&ch.state);
        // A stopped channel (a revoked key, an operator's end) stops its backup too.
        if let Some(s) = &st.standby {
            let _ = s.slot.stop.send(true);
        }
        match &st.publisher {
            Some(p) => {
                let _ = p.stop.send(true);
                true
            }
            None => false,
        }
    }

    /// Follow `channel`, live now or later. The subscription outlives publishers: it sees
    /// `Ended`, then a new `Stream` when the channel goes live again.
    pub fn subscribe(&self, channel: &str) -> Subscriber {
        let ch = self.channel(channel);
        let st = lock(&ch.state);
        // Subscribing under the state lock makes the snapshot and the live queue meet
        // exactly: the producer also sends under this lock.
        let rx = ch.tx.subscribe();
        let mut backlog = VecDeque::with_capacity(st.gop.len() + 1);
        if let Some(stream) = &st.stream {
            backlog.push_back(HubEvent::Stream(stream.clone()));
            backlog.extend(st.gop.iter().cloned().map(HubEvent::Frame));
        }
        drop(st);
        Subscriber::new(ch, rx, backlog, self.metrics.clone())
    }

    /// The standby backup of `channel` as it sends, whichever backup that is: its
    /// stream and frames (from its newest keyframe on when it is already standing by),
    /// and `Ended` when it leaves or takes over. Its frames are not the channel's (the
    /// primary's are, on [`Self::subscribe`]): this is for packaging a locked backup
    /// beside the primary, so that the origin can choose between their segments.
    pub fn subscribe_standby(&self, channel: &str) -> Subscriber {
        let ch = self.channel(channel);
        let st = lock(&ch.state);
        let rx = ch.standby_tx.subscribe();
        let mut backlog = VecDeque::new();
        if let Some(standby) = &st.standby {
            backlog.extend(standby.backlog());
        }
        drop(st);
        Subscriber::new(ch, rx, backlog, self.metrics.clone())
    }

    /// Channels with a publisher right now.
    pub fn live(&self) -> Vec<LiveChannel> {
        let channels = lock(&self.channels);
        let mut out: Vec<LiveChannel> = channels
            .values()
            .filter_map(|ch| {
                let st = lock(&ch.state);
                st.publisher.as_ref().map(|_| LiveChannel {
                    name: ch.name.clone(),
                    stream: st.stream.clone(),
                    since: st.since,
                    subscribers: ch.tx.receiver_count(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn is_live(&self, channel: &str) -> bool {
        let channels = lock(&self.channels);
        channels
            .get(channel)
            .is_some_and(|ch| lock(&ch.state).publisher.is_some())
    }
}

impl ChannelState {
    fn reset(&mut self) {
        self.stream = None;
        self.gop.clear();
        self.gop_bytes = 0;
        self.gop_overflow = false;
        self.since = None;
        self.last_arrival = None;
    }

    fn has_video(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.video().is_some())
    }

    fn cache(&mut self, frame: &Frame, is_video: bool, limits: &HubConfig) {
        let starts_gop = if self.has_video() {
            is_video && frame.keyframe
        } else {
            true
        };
        if starts_gop {
            // Audio-only streams: every frame is a random access point, so the "GOP" is the
            // last frame alone and a new consumer starts at once.
            self.gop.clear();
            self.gop_bytes = 0;
            self.gop_overflow = false;
        } else if self.gop.is_empty() || self.gop_overflow {
            return;
        }
        if self.gop.len() >= limits.gop_cache_max_frames
            || self.gop_bytes + frame.data.len() > limits.gop_cache_max_bytes
        {
            self.gop.clear();
            self.gop_bytes = 0;
            self.gop_overflow = true;
            return;
        }
        self.gop_bytes += frame.data.len();
        self.gop.push(frame.clone());
    }
}

/// The producing end of a channel. Dropping it ends the stream for consumers.
#[derive(Debug)]
pub struct Publisher {
    channel: Arc<Channel>,
    id: u64,
    stop: watch::Receiver<bool>,
    config: HubConfig,
    metrics: Arc<HubMetrics>,
    finished: bool,
}

impl Publisher {
    /// Ends the publish because the publisher said it is done (RTMP `FCUnpublish` /
    /// `deleteStream`, WHIP `DELETE`), as opposed to dropping it, which reports a lost
    /// connection ([`Lifecycle::Ended`] `finished: false`).
    pub fn finish(mut self) {
        self.finished = true;
    }

    pub fn channel(&self) -> &str {
        &self.channel.name
    }

    /// Hand an event to every consumer. Never waits. Returns `false` once this publisher
    /// has been replaced or stopped (the event is then discarded).
    pub fn send(&self, event: MediaEvent) -> bool {
        let mut st = lock(&self.channel.state);
        if st.publisher.as_ref().map(|p| p.id) != Some(self.id) {
            return self.send_standby(&mut st, event);
        }
        let out = match event {
            MediaEvent::Stream(stream) => {
                if st.stream.as_deref() == Some(&*stream) {
                    return true;
                }
                // New codec configuration: cached frames belong to the old one.
                st.gop.clear();
                st.gop_bytes = 0;
                st.stream = Some(stream.clone());
                HubEvent::Stream(stream)
            }
            MediaEvent::Frame(frame) => {
                let Some(track) = st.stream.as_ref().and_then(|s| s.track(frame.track)) else {
                    // A frame of a track nobody announced cannot be decoded by anyone.
                    self.metrics
                        .frames_unannounced
                        .fetch_add(1, Ordering::Relaxed);
                    return true;
                };
                let is_video = track.kind() == TrackKind::Video;
                st.cache(&frame, is_video, &self.config);
                st.last_arrival = Some(frame.arrival);
                self.metrics.observe_ingest(&frame);
                HubEvent::Frame(frame)
            }
        };
        // Err only means nobody is subscribed right now.
        let _ = self.channel.tx.send(out);
        true
    }

    /// Resolves when this publisher should stop: another took over the channel, or it was
    /// stopped through [`Hub::stop_publisher`].
    pub async fn stopped(&mut self) {
        // Err: the sender is gone, which only happens once the slot was replaced.
        let _ = self.stop.wait_for(|stop| *stop).await;
    }

    pub fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let mut st = lock(&self.channel.state);
        if st.standby.as_ref().is_some_and(|s| s.slot.id == self.id) {
            st.standby = None;
            let _ = self.channel.standby_tx.send(HubEvent::Ended);
            return;
        }
        if st.publisher.as_ref().map(|p| p.id) == Some(self.id) {
            // A primary whose connection dropped: its backup, if ready, takes over at once.
            if failover::promote(
                &self.channel,
                &mut st,
                &self.metrics,
                "the primary disconnected",
            ) {
                return;
            }
            st.publisher = None;
            st.reset();
            let _ = self.channel.tx.send(HubEvent::Ended);
            let _ = self.channel.lifecycle.send(Lifecycle::Ended {
                channel: self.channel.name.clone(),
                at: SystemTime::now(),
                finished: self.finished,
            });
        }
    }
}

/// The consuming end of a channel.
#[derive(Debug)]
pub struct Subscriber {
    channel: Arc<Channel>,
    rx: broadcast::Receiver<HubEvent>,
    backlog: VecDeque<HubEvent>,
    skip_to_keyframe: bool,
    video_track: Option<TrackId>,
    lagged: u64,
    metrics: Arc<HubMetrics>,
}

impl Subscriber {
    fn new(
        channel: Arc<Channel>,
        rx: broadcast::Receiver<HubEvent>,
        backlog: VecDeque<HubEvent>,
        metrics: Arc<HubMetrics>,
    ) -> Self {
        Self {
            channel,
            rx,
            backlog,
            skip_to_keyframe: false,
            video_track: None,
            lagged: 0,
            metrics,
        }
    }

    /// The next event; `None` only if the hub itself is gone.
    pub async fn recv(&mut self) -> Option<HubEvent> {
        loop {
            let event = match self.backlog.pop_front() {
                Some(ev) => ev,
                None => match self.rx.recv().await {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        self.on_lag(n);
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            match &event {
                HubEvent::Stream(s) => {
                    self.video_track = s.video().map(|t| t.id);
                }
                HubEvent::Ended => {
                    self.skip_to_keyframe = false;
                }
                HubEvent::Frame(f) if self.skip_to_keyframe => {
                    let is_video_key = f.keyframe && Some(f.track) == self.video_track;
                    if is_video_key || self.video_track.is_none() {
                        self.skip_to_keyframe = false;
                    } else {
                        continue;
                    }
                }
                HubEvent::Frame(_) => {}
            }
            return Some(event);
        }
    }

    fn on_lag(&mut self, missed: u64) {
        self.lagged += missed;
        self.metrics
            .consumer_lag_events
            .fetch_add(missed, Ordering::Relaxed);
        // A Stream event may have been among the missed ones: announce the current one again.
        let st = lock(&self.channel.state);
        if let Some(s) = &st.stream {
            self.backlog.push_back(HubEvent::Stream(s.clone()));
        }
        self.skip_to_keyframe = true;
    }

    /// Events this consumer lost by falling behind.
    pub fn lagged(&self) -> u64 {
        self.lagged
    }

    pub fn channel(&self) -> &str {
        &self.channel.name
    }
}

#[cfg(test)]
mod tests;
