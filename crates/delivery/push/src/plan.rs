//! The push of one channel as a state machine: what to send next, and what an answer
//! changes.
//!
//! Sans-IO: no socket, no clock (`now` is passed in), no logging (what happened comes
//! out as [`Event`]s), so the queue, retry, supersede and deadline rules run on made-up
//! time in tests. The driver (`driver`) feeds it snapshots of the channel
//! ([`Plan::observe`]), asks what to send ([`Plan::poll`]) and reports each answer
//! ([`Plan::done`]). One request is in flight at a time, which is what makes the order
//! guarantee simple:
//!
//! - an object is always sent before the playlist naming it: playlists are rendered at
//!   the moment they are sent, from what was delivered by then ([`rewrite`]);
//! - a segment leaves the remote (DELETE) only after a delivered playlist stopped
//!   naming it;
//! - a newer playlist replaces a queued older one of the same path (the old one would
//!   only be overwritten);
//! - a segment not delivered within its budget (the time it stays in the pushed
//!   window) is dropped and counted, so an outage never turns into a backlog that keeps
//!   the remote behind the live edge once it is back;
//! - a refusal (401/403: the key; 400/413/422: the object) is not retried blindly: a
//!   key refusal pauses the channel's push, an object refusal drops that object.
//!
//! Must never: hold more than `max_queue` jobs, or name in a playlist an object the
//! remote did not confirm.
//!
//! [`rewrite`]: crate::rewrite

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use starling_hls as hls;
use starling_origin::OutboundSnapshot;

use crate::rewrite::{self, remote_path};

/// Most distinct refusal causes remembered (each is reported once).
const MAX_CAUSES: usize = 32;
/// How often a multivariant playlist whose bandwidth figures alone changed is sent.
const MULTIVARIANT_REFRESH: Duration = Duration::from_secs(30);

/// How one channel is pushed.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// Segments a pushed media playlist lists at most.
    pub window_segments: usize,
    /// How long a segment may wait to be delivered (the time it would stay in the
    /// pushed window); then it is dropped.
    pub segment_budget: Duration,
    /// The first wait before a retry, doubled after each failure up to `retry_max`.
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// How long the push of a channel waits after the remote refused its key.
    pub refusal_pause: Duration,
    /// Jobs queued at most; past it the oldest segment is dropped.
    pub max_queue: usize,
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self {
            window_segments: 10,
            segment_budget: Duration::from_secs(20),
            retry_first: Duration::from_millis(250),
            retry_max: Duration::from_secs(4),
            refusal_pause: Duration::from_secs(10),
            max_queue: 256,
        }
    }
}

/// What a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Init,
    Segment,
    Playlist,
    Multivariant,
    Delete,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Init => "init",
            Kind::Segment => "segment",
            Kind::Playlist => "playlist",
            Kind::Multivariant => "multivariant",
            Kind::Delete => "delete",
        }
    }
}

/// One request to make: `PUT` with `body`, or `DELETE` when it is `None`, of `path`
/// below the remote's `/ingest/CHANNEL/`.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: Kind,
    pub path: String,
    pub body: Option<Bytes>,
    pub content_type: &'static str,
}

/// The remote's answer to the request in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A status and the first line of the body (the remote's reason for a refusal).
    Status(u16, String),
    /// No answer: connecting failed, the connection broke, or the request timed out.
    Failed(String),
}

/// What the driver should do next.
#[derive(Debug)]
pub enum Next {
    Send(Request),
    /// Nothing to send before this moment (a retry's backoff, a refusal's pause).
    Wait(Instant),
    /// Nothing to send until the next snapshot or answer.
    Idle,
}

/// What happened, for logs and metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Delivered {
        kind: Kind,
        path: String,
        /// When the segment was complete here (for the push latency).
        completed_at: Option<SystemTime>,
    },
    /// A segment given up on: not delivered within its budget, or the queue was full.
    Dropped { path: String, why: &'static str },
    /// The remote refused (4xx). `first`: the first time this cause (status and reason)
    /// was seen on this channel; `pause`: the push waits that long (a key refusal).
    Refused {
        kind: Kind,
        path: String,
        status: u16,
        reason: String,
        first: bool,
        pause: Option<Duration>,
    },
    /// No answer, or a temporary one (5xx, 408, 429): sent again after `after`.
    Retry {
        path: String,
        reason: String,
        after: Duration,
    },
    /// A queued playlist replaced by a newer one of the same path.
    Superseded { path: String },
}

#[derive(Debug)]
enum Payload {
    Bytes(Bytes),
    Media(Box<hls::MediaPlaylist>, &'static str),
    Multivariant(Box<hls::MultivariantPlaylist>),
    Delete,
}

#[derive(Debug)]
struct Job {
    kind: Kind,
    /// The rendition it belongs to ("" for the multivariant playlist).
    rendition: &'static str,
    path: String,
    payload: Payload,
    /// Dropped when not delivered by then.
    deadline: Option<Instant>,
    completed_at: Option<SystemTime>,
    attempts: u32,
    not_before: Option<Instant>,
}

#[derive(Debug)]
struct InFlight {
    job: Job,
    /// The playlist text sent, and the segments it listed.
    text: Option<String>,
    listed: Vec<String>,
}

/// The push state of one channel; see the module docs.
#[derive(Debug)]
pub struct Plan {
    cfg: PlanConfig,
    queue: VecDeque<Job>,
    in_flight: Option<InFlight>,
    /// Remote paths of init sections and segments the remote confirmed.
    delivered: HashSet<String>,
    /// Delivered segments per rendition, oldest first (what to DELETE as the window
    /// slides).
    up: HashMap<&'static str, VecDeque<String>>,
    /// Segments queued once already (each is sent at most once from the queue).
    seen: HashSet<String>,
    /// The last playlist text delivered per path: the same text is not sent again.
    sent: HashMap<String, String>,
    paused_until: Option<Instant>,
    causes: Vec<(u16, String)>,
    events: VecDeque<Event>,
    /// The multivariant playlist last queued, without its figures, and when.
    multivariant_sent: Option<(String, Instant)>,
}

impl Plan {
    pub fn new(cfg: PlanConfig) -> Self {
        Self {
            cfg,
            queue: VecDeque::new(),
            in_flight: None,
            delivered: HashSet::new(),
            up: HashMap::new(),
            seen: HashSet::new(),
            sent: HashMap::new(),
            paused_until: None,
            causes: Vec::new(),
            events: VecDeque::new(),
            multivariant_sent: None,
        }
    }

    /// Nothing queued and nothing in flight.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_none()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The next thing that happened, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Queues what `snap` has that the remote lacks: new init sections and segments,
    /// then the media playlists, then the multivariant playlist.
    pub fn observe(&mut self, now: Instant, snap: &OutboundSnapshot) {
        let deadline = Some(now + self.cfg.segment_budget);
        let mut present = HashSet::new();
        for r in &snap.renditions {
            for init in &r.inits {
                let path = remote_path(r.name, &init.uri);
                if !self.delivered.contains(&path) && !self.has(&path) {
                    self.push(Job {
                        kind: Kind::Init,
                        rendition: r.name,
                        path,
                        payload: Payload::Bytes(init.body.clone()),
                        deadline,
                        completed_at: None,
                        attempts: 0,
                        not_before: None,
                    });
                }
            }
            for s in &r.segments {
                let path = remote_path(r.name, &s.uri);
                present.insert(path.clone());
                if self.seen.insert(path.clone()) {
                    self.push(Job {
                        kind: Kind::Segment,
                        rendition: r.name,
                        path,
                        payload: Payload::Bytes(s.body.clone()),
                        deadline,
                        completed_at: s.completed_at,
                        attempts: 0,
                        not_before: None,
                    });
                }
            }
        }
        // A segment leaves the snapshot once it leaves memory and never comes back.
        self.seen.retain(|p| present.contains(p));
        for r in &snap.renditions {
            if let Some(pl) = &r.playlist {
                let path = format!("{}/index.m3u8", r.name);
                self.supersede(
                    path,
                    Kind::Playlist,
                    r.name,
                    Payload::Media(Box::new(pl.clone()), r.name),
                );
            }
        }
        if let Some(m) = &snap.multivariant {
            // Its BANDWIDTH figures move with every segment; players only need them
            // roughly, so a change of those alone is sent at most every
            // `MULTIVARIANT_REFRESH`. Anything else (renditions, codecs) goes at once.
            let shape = multivariant_shape(m);
            let due = match &self.multivariant_sent {
                None => true,
                Some((s, at)) => *s != shape || now >= *at + MULTIVARIANT_REFRESH,
            };
            if due {
                self.multivariant_sent = Some((shape, now));
                self.supersede(
                    "index.m3u8".into(),
                    Kind::Multivariant,
                    "",
                    Payload::Multivariant(Box::new(m.clone())),
                );
            }
        }
    }

    /// What to send now, if anything. Drops what is past its deadline first.
    pub fn poll(&mut self, now: Instant) -> Next {
        if self.in_flight.is_some() {
            return Next::Idle;
        }
        let events = &mut self.events;
        self.queue.retain(|j| {
            let late = j.deadline.is_some_and(|d| now >= d);
            if late && j.kind == Kind::Segment {
                events.push_back(Event::Dropped {
                    path: j.path.clone(),
                    why: "not delivered within its budget",
                });
            }
            !late
        });
        if let Some(p) = self.paused_until {
            if now < p {
                return Next::Wait(p);
            }
            self.paused_until = None;
        }
        loop {
            let Some(head) = self.queue.front() else {
                return Next::Idle;
            };
            if let Some(t) = head.not_before.filter(|t| *t > now) {
                return Next::Wait(t);
            }
            let Some(job) = self.queue.pop_front() else {
                return Next::Idle;
            };
            let (body, text, listed) = match &job.payload {
                Payload::Bytes(b) => (Some(b.clone()), None, Vec::new()),
                Payload::Delete => (None, None, Vec::new()),
                Payload::Media(pl, rendition) => {
                    let delivered = |p: &str| self.delivered.contains(p);
                    let window = self.cfg.window_segments;
                    let Some(p) = rewrite::media_playlist(pl, rendition, delivered, window) else {
                        continue;
                    };
                    if self.sent.get(&job.path) == Some(&p.text) {
                        continue;
                    }
                    (Some(Bytes::from(p.text.clone())), Some(p.text), p.segments)
                }
                Payload::Multivariant(m) => {
                    let (text, named) = rewrite::multivariant(m);
                    // Sent once every media playlist it names is there; a later
                    // snapshot queues it again until then.
                    let ready = named.iter().all(|p| self.sent.contains_key(p));
                    if !ready {
                        self.multivariant_sent = None;
                        continue;
                    }
                    if self.sent.get(&job.path) == Some(&text) {
                        continue;
                    }
                    (Some(Bytes::from(text.clone())), Some(text), Vec::new())
                }
            };
            let req = Request {
                kind: job.kind,
                path: job.path.clone(),
                body,
                content_type: match job.kind {
                    Kind::Playlist | Kind::Multivariant => "application/vnd.apple.mpegurl",
                    _ => "video/mp4",
                },
            };
            self.in_flight = Some(InFlight { job, text, listed });
            return Next::Send(req);
        }
    }

    /// The answer to the request in flight.
    pub fn done(&mut self, now: Instant, answer: Answer) {
        let Some(InFlight {
            mut job,
            text,
            listed,
        }) = self.in_flight.take()
        else {
            return;
        };
        let (status, reason) = match answer {
            Answer::Status(s, r) => (Some(s), r),
            Answer::Failed(r) => (None, r),
        };
        match status {
            Some(200..=299) => self.delivered(job, text, listed),
            // Deleting what is not there is done.
            Some(404) if job.kind == Kind::Delete => {}
            Some(s @ (401 | 403)) => {
                let pause = self.cfg.refusal_pause;
                self.paused_until = Some(now + pause);
                let first = self.first_time(s, &reason);
                self.events.push_back(Event::Refused {
                    kind: job.kind,
                    path: job.path.clone(),
                    status: s,
                    reason,
                    first,
                    pause: Some(pause),
                });
                // Tried again after the pause (the key may be fixed on the remote), if
                // still within its budget.
                self.queue.push_front(job);
            }
            // The object itself was refused (or a playlist named what the remote does
            // not have): sending it again cannot help. A newer playlist follows anyway.
            Some(s @ (400 | 409 | 410 | 413 | 415 | 422)) => {
                if job.kind == Kind::Multivariant {
                    // Queued again by the next snapshot.
                    self.multivariant_sent = None;
                }
                let first = self.first_time(s, &reason);
                self.events.push_back(Event::Refused {
                    kind: job.kind,
                    path: job.path,
                    status: s,
                    reason,
                    first,
                    pause: None,
                });
            }
            other => {
                let superseded = matches!(job.kind, Kind::Playlist | Kind::Multivariant)
                    && self.queue.iter().any(|j| j.path == job.path);
                if superseded {
                    return;
                }
                job.attempts += 1;
                let after = backoff(&self.cfg, job.attempts);
                job.not_before = Some(now + after);
                self.events.push_back(Event::Retry {
                    path: job.path.clone(),
                    reason: match other {
                        Some(s) => format!("status {s}: {reason}"),
                        None => reason,
                    },
                    after,
                });
                self.queue.push_front(job);
            }
        }
    }

    fn delivered(&mut self, job: Job, text: Option<String>, listed: Vec<String>) {
        match (&job.payload, job.kind) {
            (_, Kind::Init) => {
                self.delivered.insert(job.path.clone());
            }
            (Payload::Bytes(_), Kind::Segment) => {
                self.delivered.insert(job.path.clone());
                self.up
                    .entry(job.rendition)
                    .or_default()
                    .push_back(job.path.clone());
            }
            (Payload::Media(..), Kind::Playlist) => {
                let rendition = job.rendition;
                // Segments before the first one listed left the window: gone from the
                // remote now that no playlist there names them.
                let up = self.up.entry(rendition).or_default();
                let keep_from = listed.first().and_then(|f| up.iter().position(|p| p == f));
                let mut gone = up.len().saturating_sub(4 * self.cfg.window_segments);
                if let Some(i) = keep_from {
                    gone = gone.max(i);
                }
                let drained: Vec<String> = up.drain(..gone).collect();
                for path in drained {
                    self.delivered.remove(&path);
                    self.push(Job {
                        kind: Kind::Delete,
                        rendition,
                        path,
                        payload: Payload::Delete,
                        deadline: None,
                        completed_at: None,
                        attempts: 0,
                        not_before: None,
                    });
                }
            }
            _ => {}
        }
        if let Some(t) = text {
            self.sent.insert(job.path.clone(), t);
        }
        self.events.push_back(Event::Delivered {
            kind: job.kind,
            path: job.path,
            completed_at: job.completed_at,
        });
    }

    /// Queued or in flight under `path`.
    fn has(&self, path: &str) -> bool {
        self.in_flight.as_ref().is_some_and(|f| f.job.path == path)
            || self.queue.iter().any(|j| j.path == path)
    }

    fn push(&mut self, job: Job) {
        if self.queue.len() >= self.cfg.max_queue {
            if let Some(i) = self.queue.iter().position(|j| j.kind == Kind::Segment) {
                if let Some(old) = self.queue.remove(i) {
                    self.events.push_back(Event::Dropped {
                        path: old.path,
                        why: "the queue was full",
                    });
                }
            } else {
                // Only playlists and deletes: the newest job is the one to lose.
                return;
            }
        }
        self.queue.push_back(job);
    }

    /// Queues a playlist behind what it names, replacing a queued older one.
    fn supersede(&mut self, path: String, kind: Kind, rendition: &'static str, payload: Payload) {
        if let Some(i) = self.queue.iter().position(|j| j.path == path) {
            self.queue.remove(i);
            self.events
                .push_back(Event::Superseded { path: path.clone() });
        }
        self.push(Job {
            kind,
            rendition,
            path,
            payload,
            deadline: None,
            completed_at: None,
            attempts: 0,
            not_before: None,
        });
    }

    fn first_time(&mut self, status: u16, reason: &str) -> bool {
        if self.causes.iter().any(|(s, r)| *s == status && r == reason) {
            return false;
        }
        if self.causes.len() < MAX_CAUSES {
            self.causes.push((status, reason.to_owned()));
        }
        true
    }
}

/// `m` without the measured figures that change with every segment.
fn multivariant_shape(m: &hls::MultivariantPlaylist) -> String {
    let mut m = m.clone();
    for v in &mut m.variants {
        v.bandwidth = 0;
        v.average_bandwidth = None;
    }
    m.render()
}

/// The wait before attempt `attempts + 1`: `retry_first` doubled per failure, capped.
fn backoff(cfg: &PlanConfig, attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(16);
    cfg.retry_first.saturating_mul(factor).min(cfg.retry_max)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
