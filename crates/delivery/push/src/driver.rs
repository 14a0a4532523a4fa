//! The tokio side: one task finds the channels packaged here, and one task per pushed
//! channel follows it ([`starling_origin::Outbound`]), drives its [`Plan`] and owns its
//! connection to the remote.
//!
//! Nothing here is on the live path: a channel's task waits on the origin's feeds and
//! copies `Bytes` handles out under one short lock per complete segment; a slow or dead
//! remote only makes that task's queue drop segments past their budget.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant, SystemTime},
};

use starling_origin::Origin;
use tokio::{sync::watch, task::JoinHandle};
use tracing::{debug, info, warn};

use crate::{
    client::{Client, Conn},
    metrics::PushMetrics,
    plan::{Answer, Event, Kind, Next, Plan, PlanConfig},
    PushError,
};

/// Everything the pusher needs to know.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// The remote origin: `http://HOST:PORT`.
    pub url: String,
    /// The remote's stream key of each channel to push; other channels are not pushed.
    pub keys: HashMap<String, String>,
    pub plan: PlanConfig,
    pub connect_timeout: Duration,
    /// One whole request, from sending to the answer's last byte.
    pub request_timeout: Duration,
    /// How often the channels packaged here are listed (a new publish is pushed within
    /// this time).
    pub scan_interval: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            keys: HashMap::new(),
            plan: PlanConfig::default(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            scan_interval: Duration::from_millis(250),
        }
    }
}

/// Starts pushing every channel `origin` packages that has a key in `config`, until
/// `shutdown` turns true. The metrics are the caller's to render.
pub fn start(
    origin: Arc<Origin>,
    config: PushConfig,
    metrics: Arc<PushMetrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, PushError> {
    let client = Arc::new(Client::new(
        &config.url,
        config.connect_timeout,
        config.request_timeout,
    )?);
    info!(remote = %config.url, channels = config.keys.len(), "push: pushing to a remote origin");
    Ok(tokio::spawn(async move {
        let mut tasks: HashMap<String, JoinHandle<()>> = HashMap::new();
        let mut unkeyed = HashSet::new();
        loop {
            for name in origin.live_channels() {
                if tasks.get(&name).is_some_and(|t| !t.is_finished()) {
                    continue;
                }
                let Some(key) = config.keys.get(&name) else {
                    if unkeyed.insert(name.clone()) {
                        metrics.channels_without_key.fetch_add(1, Ordering::Relaxed);
                        warn!(channel = %name, "push: channel has no key for the remote origin ([push.keys]); it is not pushed");
                    }
                    continue;
                };
                let task = ChannelTask {
                    origin: origin.clone(),
                    client: client.clone(),
                    channel: name.clone(),
                    key: key.clone(),
                    plan: config.plan.clone(),
                    metrics: metrics.clone(),
                    shutdown: shutdown.clone(),
                };
                tasks.insert(name, tokio::spawn(task.run()));
            }
            tasks.retain(|_, t| !t.is_finished());
            tokio::select! {
                _ = tokio::time::sleep(config.scan_interval) => {}
                _ = shutdown.changed() => break,
            }
        }
        for (_, t) in tasks {
            let _ = t.await;
        }
    }))
}

type InFlight = Pin<Box<dyn Future<Output = (Answer, Option<Conn>, usize)> + Send>>;

struct ChannelTask {
    origin: Arc<Origin>,
    client: Arc<Client>,
    channel: String,
    key: String,
    plan: PlanConfig,
    metrics: Arc<PushMetrics>,
    shutdown: watch::Receiver<bool>,
}

enum Wake {
    Changed,
    Answer(Answer, Option<Conn>, usize),
    Timer,
    Stop,
}

impl ChannelTask {
    async fn run(mut self) {
        let Some(mut out) = self.origin.outbound(&self.channel) else {
            return;
        };
        self.metrics.channels.fetch_add(1, Ordering::Relaxed);
        info!(channel = %self.channel, to = %self.client.url(&self.channel, ""), "push: channel started");
        let mut plan = Plan::new(self.plan.clone());
        let mut log = LogState::default();
        let mut conn: Option<Conn> = None;
        let mut in_flight: Option<InFlight> = None;
        let mut wait: Option<Instant> = None;
        let mut ended = false;
        // The first snapshot: what is in memory already goes out at once.
        plan.observe(Instant::now(), &out.snapshot());
        loop {
            while let Some(e) = plan.poll_event() {
                log.report(&self.channel, &self.metrics, e);
            }
            // (A task started as shutdown began never sees the change itself.)
            if *self.shutdown.borrow() {
                break;
            }
            if in_flight.is_none() {
                wait = None;
                match plan.poll(Instant::now()) {
                    Next::Send(req) => {
                        let (client, channel, key) =
                            (self.client.clone(), self.channel.clone(), self.key.clone());
                        let mut c = conn.take();
                        let len = req.body.as_ref().map_or(0, |b| b.len());
                        in_flight = Some(Box::pin(async move {
                            let a = client.send(&mut c, &channel, &key, &req).await;
                            (a, c, len)
                        }));
                    }
                    Next::Wait(t) => wait = Some(t),
                    Next::Idle if ended => break,
                    Next::Idle => {}
                }
            }
            let wake = {
                let answer = async {
                    match in_flight.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                };
                let timer = async {
                    match wait {
                        Some(t) => tokio::time::sleep_until(t.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    (a, c, len) = answer => Wake::Answer(a, c, len),
                    // A quiet second is a tick: the deadlines are looked at again.
                    c = out.changed(Duration::from_secs(1)) => if c { Wake::Changed } else { Wake::Timer },
                    () = timer => Wake::Timer,
                    _ = self.shutdown.changed() => Wake::Stop,
                }
            };
            match wake {
                Wake::Answer(a, c, len) => {
                    in_flight = None;
                    conn = c;
                    if let Answer::Status(200..=299, _) = a {
                        log.bytes = len;
                    }
                    plan.done(Instant::now(), a);
                }
                Wake::Changed => {
                    let snap = out.snapshot();
                    ended = snap.ended;
                    plan.observe(Instant::now(), &snap);
                }
                Wake::Timer => {}
                Wake::Stop => break,
            }
        }
        while let Some(e) = plan.poll_event() {
            log.report(&self.channel, &self.metrics, e);
        }
        self.metrics.channels.fetch_sub(1, Ordering::Relaxed);
        info!(channel = %self.channel, left = plan.queued(), "push: channel stopped");
    }
}

/// What was logged already: a remote that is down, or segments being dropped, is logged
/// when it starts and when it ends, not per request.
#[derive(Debug, Default)]
struct LogState {
    failing: bool,
    dropped: u64,
    /// Body length of the answer being reported.
    bytes: usize,
}

impl LogState {
    fn report(&mut self, channel: &str, m: &PushMetrics, e: Event) {
        match e {
            Event::Delivered {
                kind,
                path,
                completed_at,
            } => {
                m.pushed(kind, std::mem::take(&mut self.bytes));
                if self.failing || self.dropped > 0 {
                    info!(
                        channel,
                        dropped = self.dropped,
                        "push: the remote origin takes objects again"
                    );
                    self.failing = false;
                    self.dropped = 0;
                }
                let latency = completed_at.and_then(|t| SystemTime::now().duration_since(t).ok());
                if let (Kind::Segment, Some(l)) = (kind, latency) {
                    m.latency.observe_us(l.as_micros() as u64);
                    debug!(
                        channel,
                        path,
                        latency_ms = l.as_secs_f64() * 1e3,
                        "push: segment delivered"
                    );
                } else {
                    debug!(channel, path, kind = kind.as_str(), "push: delivered");
                }
            }
            Event::Dropped { path, why } => {
                m.dropped.fetch_add(1, Ordering::Relaxed);
                if self.dropped == 0 {
                    warn!(
                        channel,
                        path,
                        why,
                        "push: dropping segments (counted in starling_push_dropped_total)"
                    );
                } else {
                    debug!(channel, path, why, "push: segment dropped");
                }
                self.dropped += 1;
            }
            Event::Refused {
                kind,
                path,
                status,
                reason,
                first,
                pause,
            } => {
                m.refused.fetch_add(1, Ordering::Relaxed);
                let pause_s = pause.map(|p| p.as_secs_f64());
                if first {
                    warn!(
                        channel,
                        status,
                        reason,
                        path,
                        kind = kind.as_str(),
                        pause_s,
                        "push: the remote origin refused"
                    );
                } else {
                    debug!(channel, status, reason, path, "push: refused again");
                }
            }
            Event::Retry {
                path,
                reason,
                after,
            } => {
                m.failures.fetch_add(1, Ordering::Relaxed);
                if !self.failing {
                    warn!(
                        channel,
                        path,
                        reason,
                        retry_in_ms = after.as_millis() as u64,
                        "push: the remote origin did not take an object; retrying with backoff"
                    );
                    self.failing = true;
                } else {
                    debug!(channel, path, reason, "push: retrying");
                }
            }
            Event::Superseded { .. } => {
                m.superseded.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
