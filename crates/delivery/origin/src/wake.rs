//! Per-rendition wake-ups for blocking requests, and the playlist rendered once per
//! rendition version and shared by every viewer.
//!
//! Every rendition has a [`Feed`]: a watch of its live edge ([`Edge`]), sent by the
//! channel's task after each change to *that* rendition, so a video part wakes only the
//! requests blocked on video and an audio part only those on audio. Changes to the
//! channel as a whole (a publish beginning or ending, the end of a run) are sent to every
//! rendition's feed, so a run that ends releases every blocked request.
//!
//! Requests find a feed without the channel's lock ([`Channel::feed`]) and decide whether
//! they are ready from the edge alone (a read of the watch); a thousand viewers woken by
//! one part do not queue on the channel's `Mutex`, which the ingest path takes for every
//! packager output. The first of them to find the rendered playlist stale renders it
//! (copying what it needs under the channel's lock, rendering after releasing it); the
//! others wait on that render, not on the channel, and share its `Bytes`.
//!
//! Must never: send a wake-up while the channel's lock is held (waking N tasks is O(N)
//! work), or render a playlist under it (the ingest path would wait for the render).
//!
//! [`Channel::feed`]: crate::Channel::feed

use std::{
    sync::{atomic::Ordering, Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::sync::watch;

use crate::{
    http::Listing,
    live::{lock, ChannelInner, Rendition},
    metrics::OriginMetrics,
};

/// A rendition's live edge as blocking requests need it, sent after every change.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Edge {
    /// The rendition's version: one more after every change that can alter its playlist.
    pub version: u64,
    /// When this version was sent (for the hand-off latency metric).
    pub at: Option<Instant>,
    /// The newest segment: (msn, parts so far, complete).
    pub last: Option<(u64, u64, bool)>,
    /// The newest complete segment's number.
    pub complete_msn: Option<u64>,
    /// The run ended: playlists carry ENDLIST, nothing more will come.
    pub ended: bool,
    /// The rendition's TARGETDURATION (a blocked request waits three of them at most).
    pub target_duration: u32,
}

impl Edge {
    /// LAST-MSN / LAST-PART as a playlist rendered now would state them.
    pub fn last_msn_and_part(&self) -> Option<(u64, Option<u64>)> {
        self.last.map(|(m, parts, _)| (m, parts.checked_sub(1)))
    }

    /// A playlist rendered now holds segment `msn` complete (`part` None), or its part
    /// `part`, or something later (6.2.5.2: what a blocking request waits for).
    pub fn has(&self, msn: u64, part: Option<u64>) -> bool {
        let Some((last, parts, _)) = self.last else {
            return false;
        };
        match part {
            None => self.complete_msn.is_some_and(|c| c >= msn),
            Some(p) => last > msn || (last == msn && parts > p),
        }
    }

    /// Part `part` of segment `msn` exists, or that segment ended before it, or the edge
    /// moved past it (what a preload-hinted part request waits for).
    pub fn settles_part(&self, msn: u64, part: u64) -> bool {
        match self.last {
            Some((last, parts, complete)) => {
                last > msn || (last == msn && (parts > part || complete))
            }
            None => false,
        }
    }
}

/// A media playlist of one rendition version: what it lists, and its text once rendered.
#[derive(Debug)]
pub(crate) struct Rendered {
    pub version: u64,
    /// `None`: no segment is complete yet (players take a parts-only playlist for an
    /// error, so the answer is "not yet").
    pub listing: Option<Listing>,
    pub full: OnceLock<Bytes>,
    pub delta: OnceLock<Bytes>,
}

/// One rendition's wake-ups and rendered playlist, shared by its requests.
#[derive(Debug)]
pub(crate) struct Feed {
    pub name: &'static str,
    edge: watch::Sender<Edge>,
    rendered: Mutex<Option<Arc<Rendered>>>,
    /// One render at a time per rendition; the others wait here, not on the channel.
    render: tokio::sync::Mutex<()>,
}

impl Feed {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            edge: watch::channel(Edge::default()).0,
            rendered: Mutex::new(None),
            render: tokio::sync::Mutex::new(()),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Edge> {
        self.edge.subscribe()
    }

    pub fn edge(&self) -> Edge {
        *self.edge.borrow()
    }

    /// Waits until `ready` holds for the edge, the run ends, or `limit` passes; true when
    /// ready. Only changes to this rendition (and to the channel as a whole) wake it.
    /// Records the hand-off time (the satisfying change sent → this request woken).
    pub async fn wait_until(
        &self,
        metrics: &OriginMetrics,
        limit: Duration,
        mut ready: impl FnMut(&Edge) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut rx = self.subscribe();
        let mut waited = false;
        loop {
            let edge = *rx.borrow_and_update();
            if ready(&edge) {
                if let (true, Some(at)) = (waited, edge.at) {
                    metrics
                        .blocked_wake
                        .observe_us(at.elapsed().as_micros() as u64);
                }
                return true;
            }
            if edge.ended {
                return false;
            }
            if waited {
                metrics.blocked_rewaits.fetch_add(1, Ordering::Relaxed);
            }
            waited = true;
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {
                    metrics.blocked_wakeups.fetch_add(1, Ordering::Relaxed);
                }
                // The channel is gone (never while the origin holds it) or time is up.
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }

    /// The playlist text (`delta` or full) of the newest version, with what it was
    /// rendered from: the cached text, or rendered now by the first request to need it.
    /// `capture` copies the listing under the channel's lock; `render` builds the text
    /// after that lock is released. `None`: the rendition has no part yet.
    pub async fn playlist(
        &self,
        delta: bool,
        capture: impl FnOnce() -> (u64, Option<Listing>),
        render: impl FnOnce(&Listing, bool) -> Bytes,
    ) -> Option<(Bytes, Arc<Rendered>)> {
        let fresh = |feed: &Self| {
            let version = feed.edge.borrow().version;
            lock(&feed.rendered)
                .as_ref()
                .filter(|r| r.version >= version)
                .cloned()
        };
        let text = |r: &Rendered| if delta { r.delta.get() } else { r.full.get() }.cloned();
        let cached = fresh(self);
        if cached.as_ref().is_some_and(|r| r.listing.is_none()) {
            return None;
        }
        if let Some((t, r)) = cached.and_then(|r| Some((text(&r)?, r))) {
            return Some((t, r));
        }
        let _one = self.render.lock().await;
        let r = match fresh(self) {
            Some(r) => r,
            None => {
                let (version, listing) = capture();
                let r = Arc::new(Rendered {
                    version,
                    listing,
                    full: OnceLock::new(),
                    delta: OnceLock::new(),
                });
                *lock(&self.rendered) = Some(r.clone());
                r
            }
        };
        let listing = r.listing.as_ref()?;
        let slot = if delta { &r.delta } else { &r.full };
        // Set only here, under `render`: readers never block on it.
        let t = slot.get_or_init(|| render(listing, delta)).clone();
        Some((t, r))
    }
}

/// A rendition's side of its feed, kept under the channel's lock with the rendition.
#[derive(Debug)]
pub(crate) struct FeedState {
    version: u64,
    dirty: bool,
    pub shared: Arc<Feed>,
}

impl FeedState {
    pub fn new(name: &'static str) -> Self {
        Self {
            version: 0,
            dirty: true,
            shared: Arc::new(Feed::new(name)),
        }
    }

    /// The rendition changed: its playlist must be rendered again, its waiters woken.
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    pub fn version(&self) -> u64 {
        self.version
    }
}

/// Wake-ups to send once the channel's lock is released ([`Wakes::send`]).
#[derive(Debug, Default)]
#[must_use = "send the wake-ups after releasing the channel's lock"]
pub(crate) struct Wakes(Vec<(Arc<Feed>, Edge)>);

impl Wakes {
    /// Under the channel's lock: the new edge of every rendition that changed since the
    /// last call (every rendition when `all`: a change to the channel as a whole).
    pub fn collect(st: &mut ChannelInner, all: bool) -> Self {
        let ended = st.ended;
        let mut out = Vec::new();
        for r in &mut st.renditions {
            if !(all || r.feed.dirty) {
                continue;
            }
            r.feed.dirty = false;
            r.feed.version += 1;
            out.push((r.feed.shared.clone(), edge_of(r, ended)));
        }
        Self(out)
    }

    /// After the channel's lock is released: wake the waiters of each changed rendition.
    pub fn send(self) {
        let now = Instant::now();
        for (feed, mut edge) in self.0 {
            edge.at = Some(now);
            feed.edge.send_replace(edge);
        }
    }
}

fn edge_of(r: &Rendition, ended: bool) -> Edge {
    Edge {
        version: r.feed.version,
        at: None,
        last: r
            .segments
            .back()
            .map(|s| (s.msn, s.parts.len() as u64, s.complete)),
        complete_msn: r
            .segments
            .iter()
            .rev()
            .take(2)
            .find(|s| s.complete)
            .map(|s| s.msn),
        ended,
        target_duration: r.target_duration,
    }
}
