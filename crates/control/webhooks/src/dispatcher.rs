//! The tokio driver: takes events from the node, queues them durably in the control
//! plane, and delivers them.
//!
//! - [`WebhookSender::emit`] never waits: it puts the event on a bounded in-memory
//!   channel (dropping it, with a warning, if the channel is full) and returns. A
//!   publisher's path never touches the database or the network because of a webhook.
//! - One task writes emitted events to the queue ([`Db::enqueue_webhook_event`]) and
//!   wakes the poller. The poller claims due deliveries ([`Db::due_deliveries`]), at most
//!   [`DispatcherConfig::concurrency`] in flight, and sleeps until the next one is due,
//!   [`DispatcherConfig::poll_interval`] at most (other nodes enqueue too), or until woken.
//! - Each attempt is one `POST` of the stored body with a [`DispatcherConfig::timeout`]
//!   (10 s) for the whole exchange; the outcome goes through [`RetryPolicy::decide`] and
//!   is recorded with [`Db::record_delivery_attempt`].
//! - HTTP/1.1, plain or over TLS (rustls), one connection per attempt to an address
//!   that passed [`crate::target`]'s rules after resolving ([`crate::client`]): no
//!   loopback, private or metadata targets unless the operator allows private ones.
//!   Redirects are not followed.
//!
//! Logs name the webhook and delivery ids, never the secret, the URL (its query may
//! hold a receiver's token) or the body.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};
use rustls::pki_types::CertificateDer;
use starling_control::{AttemptResult, Db, DueDelivery, UnixMs, WebhookEvent};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::client::{TlsError, WireClient};
use crate::retry::{Decision, Outcome, RetryPolicy};
use crate::signature::delivery_headers;
use crate::target::TargetPolicy;

/// The dispatcher's knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatcherConfig {
    /// When to retry and when to give up.
    pub retry: RetryPolicy,
    /// Whole-request timeout of one attempt (connect, send, response head). Keep it well
    /// under the queue's lease ([`starling_control::webhooks::DELIVERY_LEASE_MS`]).
    pub timeout: Duration,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// Longest sleep between two looks at the queue.
    pub poll_interval: Duration,
    /// Events [`WebhookSender::emit`] buffers before it starts dropping them.
    pub emit_buffer: usize,
    /// Finished deliveries are deleted this long after they finished.
    pub retention: Duration,
    /// Which target addresses are allowed (default: public ones only).
    pub targets: TargetPolicy,
    /// CA certificates trusted for `https://` targets besides Mozilla's roots (a private
    /// CA; see [`crate::parse_ca_pem`]).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(10),
            concurrency: 16,
            poll_interval: Duration::from_secs(5),
            emit_buffer: 1024,
            retention: Duration::from_secs(30 * 24 * 3600),
            targets: TargetPolicy::default(),
            extra_roots: Vec::new(),
        }
    }
}

struct Emitted {
    org_id: String,
    kind: WebhookEvent,
    data: String,
}

/// Hands events to the dispatcher. Cheap to clone; never blocks.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    tx: mpsc::Sender<Emitted>,
}

impl std::fmt::Debug for Emitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitted")
            .field("org_id", &self.org_id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl WebhookSender {
    /// Queues `kind` with `data` (a JSON object's text) for every webhook of `org_id`
    /// subscribed to it. Returns `false` if the event was dropped (buffer full, or the
    /// dispatcher stopped); it never waits.
    pub fn emit(&self, org_id: &str, kind: WebhookEvent, data: String) -> bool {
        let ev = Emitted {
            org_id: org_id.to_owned(),
            kind,
            data,
        };
        match self.tx.try_send(ev) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(ev)) => {
                warn!(org_id = %ev.org_id, event = %ev.kind, "webhook buffer full: event dropped");
                false
            }
            Err(mpsc::error::TrySendError::Closed(ev)) => {
                debug!(org_id = %ev.org_id, event = %ev.kind, "webhook dispatcher stopped: event dropped");
                false
            }
        }
    }
}

/// The running dispatcher. [`Dispatcher::shutdown`] stops it; dropping it stops its
/// tasks too, without waiting for attempts in flight (they are retried after their lease).
#[derive(Debug)]
pub struct Dispatcher {
    sender: WebhookSender,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

struct Shared {
    db: Db,
    cfg: DispatcherConfig,
    client: WireClient,
    wake: Notify,
    slots: Arc<Semaphore>,
}

/// Wall clock, unix ms: the driver is the one place that reads it.
fn now_ms() -> UnixMs {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn random_u32() -> u32 {
    // A failed draw only removes the jitter.
    getrandom::u32().unwrap_or(1 << 31)
}

impl Dispatcher {
    /// Starts the dispatcher's tasks on the current tokio runtime. Fails only when an
    /// extra root certificate cannot be used.
    pub fn start(db: Db, cfg: DispatcherConfig) -> Result<Self, TlsError> {
        let client = WireClient::new(cfg.targets, &cfg.extra_roots)?;
        let (tx, rx) = mpsc::channel(cfg.emit_buffer.max(1));
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            db,
            slots: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
            cfg,
            client,
            wake: Notify::new(),
        });
        let tasks = vec![
            tokio::spawn(enqueue_loop(shared.clone(), rx, stop_rx.clone())),
            tokio::spawn(poll_loop(shared, stop_rx)),
        ];
        Ok(Self {
            sender: WebhookSender { tx },
            stop,
            tasks,
        })
    }

    /// A handle for emitting events.
    pub fn sender(&self) -> WebhookSender {
        self.sender.clone()
    }

    /// Stops polling, queues what was already emitted, and waits (at most one request
    /// timeout) for attempts in flight. An attempt cut short is retried after its lease.
    pub async fn shutdown(self) {
        let Self {
            sender,
            stop,
            tasks,
        } = self;
        drop(sender);
        let _ = stop.send(true);
        for t in tasks {
            let _ = t.await;
        }
    }
}

async fn enqueue_loop(
    sh: Arc<Shared>,
    mut rx: mpsc::Receiver<Emitted>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let ev = tokio::select! {
            biased;
            ev = rx.recv() => ev,
            // Emitters live on in other parts of the node: stop on the signal, not when
            // they are all dropped, and still queue what was emitted before it.
            _ = async { drop(stop.wait_for(|s| *s).await) } => {
                rx.close();
                while let Ok(ev) = rx.try_recv() {
                    enqueue(&sh, ev).await;
                }
                return;
            }
        };
        match ev {
            Some(ev) => enqueue(&sh, ev).await,
            None => return,
        }
    }
}

async fn enqueue(sh: &Shared, ev: Emitted) {
    match sh
        .db
        .enqueue_webhook_event(&ev.org_id, ev.kind, &ev.data, now_ms())
        .await
    {
        Ok(ids) if ids.is_empty() => {}
        Ok(ids) => {
            debug!(org_id = %ev.org_id, event = %ev.kind, deliveries = ids.len(), "webhook event queued");
            sh.wake.notify_one();
        }
        Err(e) => {
            warn!(org_id = %ev.org_id, event = %ev.kind, error = %e, "webhook event not queued")
        }
    }
}

async fn poll_loop(sh: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut next_prune = 0;
    while !*stop.borrow() {
        // Claim no more than can start now: a claimed delivery's lease is ticking.
        let free = sh.slots.available_permits();
        if free == 0 {
            tokio::select! {
                p = sh.slots.acquire() => drop(p),
                r = stop.changed() => if r.is_err() { break },
            }
            continue;
        }
        let now = now_ms();
        let want = i64::try_from(free.min(1000)).unwrap_or(1000);
        let mut sleep = sh.cfg.poll_interval;
        match sh.db.due_deliveries(now, want).await {
            Ok(due) => {
                let full = i64::try_from(due.len()).unwrap_or(0) >= want;
                for d in due {
                    let Ok(permit) = sh.slots.clone().try_acquire_owned() else {
                        break;
                    };
                    let sh = sh.clone();
                    tokio::spawn(async move {
                        attempt(&sh, d).await;
                        drop(permit);
                        sh.wake.notify_one();
                    });
                }
                if full {
                    continue;
                }
                if let Ok(Some(t)) = sh.db.next_delivery_due().await {
                    let until = u64::try_from(t.saturating_sub(now_ms())).unwrap_or(0);
                    sleep = sleep.min(Duration::from_millis(until));
                }
            }
            Err(e) => warn!(error = %e, "webhook queue unavailable"),
        }
        if now >= next_prune {
            next_prune = now.saturating_add(3_600_000);
            match sh
                .db
                .prune_deliveries(now.saturating_sub(millis(sh.cfg.retention)))
                .await
            {
                Ok(0) => {}
                Ok(n) => debug!(deleted = n, "old webhook deliveries pruned"),
                Err(e) => warn!(error = %e, "pruning webhook deliveries failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = sh.wake.notified() => {}
            // The `Dispatcher` was dropped without `shutdown`: stop too.
            r = stop.changed() => if r.is_err() { break },
        }
    }
    // Let attempts in flight finish, within one request timeout.
    let all = u32::try_from(sh.cfg.concurrency.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(sh.cfg.timeout, sh.slots.acquire_many(all)).await;
}

async fn send(sh: &Shared, d: &DueDelivery) -> Outcome {
    let uri = match d.url.parse::<hyper::Uri>() {
        Ok(u) => u,
        Err(e) => return Outcome::Unsendable(format!("invalid URL: {e}")),
    };
    let body = Bytes::from(d.delivery.payload.clone());
    let mut req = hyper::Request::post(uri)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(
            USER_AGENT,
            HeaderValue::from_static(concat!("Starling-Webhooks/", env!("CARGO_PKG_VERSION"))),
        );
    for (name, value) in delivery_headers(
        d.secret.expose().as_bytes(),
        d.delivery.event.as_str(),
        &d.delivery.id,
        now_ms() / 1000,
        &body,
    ) {
        req = req.header(name, value);
    }
    let req = match req.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => return Outcome::Unsendable(format!("cannot build the request: {e}")),
    };
    // One bound for the whole attempt: resolving, connecting, TLS, the response head.
    match tokio::time::timeout(sh.cfg.timeout, sh.client.post(req)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Timeout(sh.cfg.timeout),
    }
}

async fn attempt(sh: &Shared, d: DueDelivery) {
    let outcome = send(sh, &d).await;
    let end = now_ms();
    let attempts = d.delivery.attempts.saturating_add(1);
    let age = Duration::from_millis(
        u64::try_from(end.saturating_sub(d.delivery.created_at)).unwrap_or(0),
    );
    let status = outcome.status();
    let result = match sh.cfg.retry.decide(attempts, age, &outcome, random_u32()) {
        Decision::Delivered => {
            debug!(delivery = %d.delivery.id, webhook = %d.delivery.webhook_id, attempts, "webhook delivered");
            AttemptResult::Delivered {
                status: status.unwrap_or(200),
            }
        }
        Decision::RetryAfter(after) => {
            info!(delivery = %d.delivery.id, webhook = %d.delivery.webhook_id, attempts,
                outcome = %outcome.describe(), retry_in_ms = millis(after), "webhook attempt failed");
            AttemptResult::Retry {
                status,
                error: outcome.describe(),
                next_attempt_at: end.saturating_add(millis(after)),
            }
        }
        Decision::GiveUp(reason) => {
            warn!(delivery = %d.delivery.id, webhook = %d.delivery.webhook_id, attempts,
                reason = %reason, "webhook delivery given up");
            AttemptResult::GaveUp {
                status,
                error: reason,
            }
        }
    };
    if let Err(e) = sh
        .db
        .record_delivery_attempt(&d.delivery.id, &result, end)
        .await
    {
        // The lease runs out and the delivery is tried again: at least once, not at most.
        warn!(delivery = %d.delivery.id, error = %e, "webhook attempt not recorded");
    }
}
