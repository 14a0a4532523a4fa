//! The trigger fan-out: one node's sequence of small state triggers, kept in a bounded
//! ring so a client that reconnects with `Last-Event-ID: N` gets everything after `N`.
//!
//! - Each trigger is serialized once, at publish, into the SSE frame every subscriber
//!   writes (`id: N\nevent: state\ndata: {…}\n\n`); subscribers share that `Bytes`.
//! - The publisher's work is O(1) in the number of subscribers: a ring push under a short
//!   write lock and one `watch` send. Subscribers pull from the ring at their own pace
//!   ([`Subscription::recv`]); the ring is the only buffer, so a subscriber never holds
//!   more than one batch and never blocks the bus.
//! - A subscriber whose position fell out of the ring (slow, or reconnecting after too
//!   long) gets [`Delivery::Resync`] and continues from the newest trigger: the client
//!   refetches the prefetch document, which holds the current state.
//!
//! Sequence numbers are per node and only grow. Seed [`BusConfig::initial_seq`] from the
//! wall clock at start-up (e.g. Unix time in microseconds) so that a restarted node never
//! reuses a number a client still holds: an old `Last-Event-ID` then falls before the
//! ring and gets a resync instead of the wrong triggers.
//!
//! - Each trigger has an [`Audience`]: everyone, or only the members of one organisation
//!   (events of private channels). A subscription reads as a [`Viewer`] and skips, without
//!   a gap or a resync, the triggers it may not see: the sequence numbers it is given
//!   still only grow, and resuming works the same.
//!
//! Never does I/O; the SSE driver ([`crate::sse`]) owns sockets and timers.

use std::{
    collections::VecDeque,
    io::Write as _,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, PoisonError, RwLock,
    },
    time::{Duration, SystemTime},
};

use bytes::{BufMut as _, Bytes, BytesMut};
use serde::Serialize;
use tokio::sync::watch;

use crate::state::{unix_ms, EventId, EventState, StateChange};

/// A trigger's sequence number on this node (the SSE `id:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventSeq(pub u64);

impl EventSeq {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for EventSeq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a publisher hands the bus; the bus adds the sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateTrigger {
    pub event_id: EventId,
    pub state: EventState,
    pub at: SystemTime,
}

impl From<&StateChange> for StateTrigger {
    fn from(c: &StateChange) -> Self {
        Self {
            event_id: c.event_id.clone(),
            state: c.to,
            at: c.at,
        }
    }
}

/// Who may receive a trigger.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Audience {
    /// Any subscriber, signed in or not (events of public and unlisted channels).
    #[default]
    Everyone,
    /// Only members of this organisation (events of its private channels).
    Org(Arc<str>),
}

/// Who is reading a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Viewer {
    /// Nobody signed in: [`Audience::Everyone`] only.
    #[default]
    Anonymous,
    /// A signed-in member of this organisation.
    Member(Arc<str>),
}

impl Viewer {
    /// Whether this viewer receives a trigger meant for `audience`.
    pub fn sees(&self, audience: &Audience) -> bool {
        match (audience, self) {
            (Audience::Everyone, _) => true,
            (Audience::Org(org), Viewer::Member(mine)) => org == mine,
            (Audience::Org(_), Viewer::Anonymous) => false,
        }
    }
}

/// The ring's bounds and the first sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusConfig {
    /// Most triggers kept for resuming clients.
    pub capacity: usize,
    /// Triggers older than this (by their `at`, against the newest trigger) are dropped.
    pub max_age: Duration,
    /// The current sequence number before anything is published; the first trigger gets
    /// `initial_seq + 1`. See the module docs for why to seed it from the clock.
    pub initial_seq: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_age: Duration::from_secs(60 * 60),
            initial_seq: 0,
        }
    }
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    at_ms: u64,
    frame: Bytes,
    audience: Audience,
}

#[derive(Debug)]
struct Ring {
    /// Contiguous sequence numbers, oldest first: entry `i` has `front.seq + i`.
    entries: VecDeque<Entry>,
    last_seq: u64,
    newest_at_ms: u64,
}

/// What [`LiveStateBus::read_after`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadOutcome {
    /// Frames were appended; the cursor is now at this sequence number.
    Read(u64),
    UpToDate,
    /// The cursor is not in the ring (too old, or from the future); continue from here.
    Resync(u64),
}

/// The node's live-state bus. Share it as `Arc<LiveStateBus>`.
#[derive(Debug)]
pub struct LiveStateBus {
    config: BusConfig,
    ring: RwLock<Ring>,
    /// Carries the last sequence number; a send wakes every waiting subscriber.
    seq_tx: watch::Sender<u64>,
    closed: AtomicBool,
    subscribers: AtomicUsize,
}

impl LiveStateBus {
    pub fn new(config: BusConfig) -> Arc<Self> {
        let capacity = config.capacity.max(1);
        Arc::new(Self {
            config: BusConfig { capacity, ..config },
            ring: RwLock::new(Ring {
                entries: VecDeque::with_capacity(capacity.min(1 << 16)),
                last_seq: config.initial_seq,
                newest_at_ms: 0,
            }),
            seq_tx: watch::Sender::new(config.initial_seq),
            closed: AtomicBool::new(false),
            subscribers: AtomicUsize::new(0),
        })
    }

    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// The sequence number of the newest trigger (or `initial_seq`).
    pub fn current_seq(&self) -> EventSeq {
        EventSeq(*self.seq_tx.borrow())
    }

    /// Subscriptions alive now (one per connected SSE client).
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// [`LiveStateBus::publish_for`] everyone.
    pub fn publish(&self, trigger: StateTrigger) -> EventSeq {
        self.publish_for(trigger, Audience::Everyone)
    }

    /// Serializes the trigger once, keeps it in the ring and wakes the subscribers; only
    /// those whose [`Viewer`] sees `audience` receive it.
    pub fn publish_for(&self, trigger: StateTrigger, audience: Audience) -> EventSeq {
        let at_ms = unix_ms(trigger.at);
        let seq = {
            let mut ring = self.ring.write().unwrap_or_else(PoisonError::into_inner);
            let seq = ring.last_seq.saturating_add(1);
            let frame = state_frame(seq, &trigger, at_ms);
            ring.entries.push_back(Entry {
                seq,
                at_ms,
                frame,
                audience,
            });
            ring.last_seq = seq;
            ring.newest_at_ms = ring.newest_at_ms.max(at_ms);
            let oldest_ms = ring
                .newest_at_ms
                .saturating_sub(u64::try_from(self.config.max_age.as_millis()).unwrap_or(u64::MAX));
            while ring.entries.len() > self.config.capacity
                || ring
                    .entries
                    .front()
                    .is_some_and(|e| e.at_ms < oldest_ms && e.seq != seq)
            {
                ring.entries.pop_front();
            }
            seq
        };
        self.seq_tx.send_replace(seq);
        tracing::debug!(seq, event = %trigger.event_id, state = %trigger.state, "live-state trigger");
        EventSeq(seq)
    }

    /// Ends every subscription (their streams finish), e.g. before a graceful shutdown,
    /// which would otherwise wait on endless SSE responses.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.seq_tx.send_modify(|_| {});
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A subscription from `after` (a client's `Last-Event-ID`), or from now, that sees
    /// every trigger (for in-process consumers; SSE clients use [`Self::subscribe_as`]).
    pub fn subscribe(self: &Arc<Self>, after: Option<EventSeq>) -> Subscription {
        let mut sub = self.subscribe_as(after, Viewer::Anonymous);
        sub.all = true;
        sub
    }

    /// A subscription that receives only the triggers `viewer` sees.
    pub fn subscribe_as(self: &Arc<Self>, after: Option<EventSeq>, viewer: Viewer) -> Subscription {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        let rx = self.seq_tx.subscribe();
        let cursor = after.map_or_else(|| *rx.borrow(), EventSeq::get);
        Subscription {
            bus: Arc::clone(self),
            cursor,
            rx,
            pending: VecDeque::new(),
            max_batch: 64,
            viewer,
            all: false,
        }
    }

    /// Appends the frames `viewer` sees among up to `max` entries after `cursor` to `out`
    /// (`viewer` None: all of them).
    fn read_after(
        &self,
        cursor: u64,
        max: usize,
        out: &mut VecDeque<Bytes>,
        viewer: Option<&Viewer>,
    ) -> ReadOutcome {
        let ring = self.ring.read().unwrap_or_else(PoisonError::into_inner);
        if cursor == ring.last_seq {
            return ReadOutcome::UpToDate;
        }
        let Some(first) = ring.entries.front().map(|e| e.seq) else {
            return ReadOutcome::Resync(ring.last_seq);
        };
        if cursor > ring.last_seq || cursor < first.saturating_sub(1) {
            return ReadOutcome::Resync(ring.last_seq);
        }
        // cursor + 1 >= first here, and the difference is below the ring's length.
        let start =
            usize::try_from(cursor.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        let mut last = cursor;
        for e in ring.entries.range(start..).take(max.max(1)) {
            if viewer.is_none_or(|v| v.sees(&e.audience)) {
                out.push_back(e.frame.clone());
            }
            last = e.seq;
        }
        ReadOutcome::Read(last)
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A trigger's SSE frame, shared with every other subscriber.
    Trigger(Bytes),
    /// Triggers were lost to this subscriber; it continues after `seq`. The client must
    /// refetch its prefetch documents.
    Resync { seq: EventSeq },
}

/// One subscriber's position in the bus.
#[derive(Debug)]
pub struct Subscription {
    bus: Arc<LiveStateBus>,
    cursor: u64,
    rx: watch::Receiver<u64>,
    /// At most one batch: the per-subscriber buffer.
    pending: VecDeque<Bytes>,
    max_batch: usize,
    viewer: Viewer,
    /// Sees every trigger whatever its audience (in-process consumers).
    all: bool,
}

impl Subscription {
    /// The sequence number of the last trigger taken from the ring (or the start point).
    pub fn cursor(&self) -> EventSeq {
        EventSeq(self.cursor)
    }

    /// The next delivery, waiting for one; `None` once the bus is closed.
    ///
    /// Cancel-safe: dropping the future loses nothing (for `tokio::select!`).
    pub async fn recv(&mut self) -> Option<Delivery> {
        loop {
            if let Some(d) = self.try_recv() {
                return d;
            }
            if self.rx.changed().await.is_err() {
                return None;
            }
        }
    }

    /// `Some(delivery)` if one is ready, `Some(None)` if the bus is closed, `None` if
    /// nothing is ready now.
    #[allow(clippy::option_option)]
    pub fn try_recv(&mut self) -> Option<Option<Delivery>> {
        if self.bus.is_closed() {
            return Some(None);
        }
        if let Some(frame) = self.pending.pop_front() {
            return Some(Some(Delivery::Trigger(frame)));
        }
        // Mark the current value seen before reading the ring, so a publish that lands
        // after the read still wakes `changed()`.
        self.rx.borrow_and_update();
        let viewer = (!self.all).then_some(&self.viewer);
        // A batch may hold only triggers this viewer does not see: read on until one it
        // sees or the newest (the watch value is already marked seen, so stopping early
        // would wait for the next publish with triggers still unread).
        let read = loop {
            match self
                .bus
                .read_after(self.cursor, self.max_batch, &mut self.pending, viewer)
            {
                ReadOutcome::Read(last) => {
                    self.cursor = last;
                    if !self.pending.is_empty() {
                        break ReadOutcome::Read(last);
                    }
                }
                other => break other,
            }
        };
        match read {
            ReadOutcome::Read(_) => self
                .pending
                .pop_front()
                .map(|frame| Some(Delivery::Trigger(frame))),
            ReadOutcome::UpToDate => None,
            ReadOutcome::Resync(seq) => {
                tracing::debug!(
                    from = self.cursor,
                    to = seq,
                    "live-state subscriber resynced"
                );
                self.cursor = seq;
                Some(Some(Delivery::Resync { seq: EventSeq(seq) }))
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.bus.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Serialize)]
struct WireTrigger<'a> {
    seq: u64,
    event_id: &'a EventId,
    state: EventState,
    /// Milliseconds since the Unix epoch.
    at: u64,
}

/// The SSE frame of one trigger. JSON never contains a raw newline, so `data:` is one line.
fn state_frame(seq: u64, t: &StateTrigger, at_ms: u64) -> Bytes {
    let mut w = BytesMut::with_capacity(128 + t.event_id.as_str().len()).writer();
    let wire = WireTrigger {
        seq,
        event_id: &t.event_id,
        state: t.state,
        at: at_ms,
    };
    let ok = write!(w, "id: {seq}\nevent: state\ndata: ").is_ok()
        && serde_json::to_writer(&mut w, &wire).is_ok()
        && w.write_all(b"\n\n").is_ok();
    if ok {
        return w.into_inner().freeze();
    }
    // Unreachable for this plain struct; degrade to a resync rather than a broken frame.
    tracing::error!(
        seq,
        "could not serialize a live-state trigger; sending resync"
    );
    resync_frame(EventSeq(seq))
}

/// `event: resync`: the client lost triggers and must refetch its prefetch documents.
pub(crate) fn resync_frame(seq: EventSeq) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_slice(format!("id: {seq}\nevent: resync\ndata: {{\"seq\":{seq}}}\n\n").as_bytes());
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn trigger(n: u64) -> StateTrigger {
        StateTrigger {
            event_id: EventId::new(format!("ev-{n}")),
            state: EventState::Live,
            at: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + n),
        }
    }

    fn frame_of(d: Option<Delivery>) -> String {
        match d {
            Some(Delivery::Trigger(b)) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("expected a trigger, got {other:?}"),
        }
    }

    #[test]
    fn frame_is_one_sse_event() {
        let bus = LiveStateBus::new(BusConfig::default());
        let mut sub = bus.subscribe(None);
        assert_eq!(bus.publish(trigger(1)), EventSeq(1));
        let f = frame_of(sub.try_recv().unwrap());
        assert_eq!(
            f,
            "id: 1\nevent: state\ndata: {\"seq\":1,\"event_id\":\"ev-1\",\"state\":\"live\",\"at\":1700000001000}\n\n"
        );
    }

    #[test]
    fn event_ids_with_newlines_cannot_break_the_frame() {
        let bus = LiveStateBus::new(BusConfig::default());
        let mut sub = bus.subscribe(None);
        bus.publish(StateTrigger {
            event_id: EventId::new("a\n\ndata: evil\r"),
            ..trigger(1)
        });
        let f = frame_of(sub.try_recv().unwrap());
        assert_eq!(f.matches('\n').count(), 4, "{f:?}");
        assert!(!f.contains('\r'));
    }

    #[test]
    fn serialized_once_and_shared() {
        let bus = LiveStateBus::new(BusConfig::default());
        let mut a = bus.subscribe(None);
        let mut b = bus.subscribe(None);
        bus.publish(trigger(1));
        let (Some(Some(Delivery::Trigger(fa))), Some(Some(Delivery::Trigger(fb)))) =
            (a.try_recv(), b.try_recv())
        else {
            panic!("both get the trigger");
        };
        assert_eq!(
            fa.as_ptr(),
            fb.as_ptr(),
            "one allocation for all subscribers"
        );
        assert_eq!(fa.len(), fb.len());
    }

    #[test]
    fn resume_gets_exactly_what_was_missed_in_order() {
        let bus = LiveStateBus::new(BusConfig::default());
        let mut sub = bus.subscribe(None);
        bus.publish(trigger(1));
        bus.publish(trigger(2));
        assert!(frame_of(sub.try_recv().unwrap()).starts_with("id: 1\n"));
        assert!(frame_of(sub.try_recv().unwrap()).starts_with("id: 2\n"));
        let last_seen = sub.cursor();
        drop(sub);
        for n in 3..=7 {
            bus.publish(trigger(n));
        }
        let mut again = bus.subscribe(Some(last_seen));
        for n in 3..=7 {
            assert!(frame_of(again.try_recv().unwrap()).starts_with(&format!("id: {n}\n")));
        }
        assert_eq!(again.try_recv(), None, "nothing more");
        assert_eq!(again.cursor(), EventSeq(7));
    }

    #[test]
    fn resume_older_than_the_ring_resyncs_and_continues() {
        let bus = LiveStateBus::new(BusConfig {
            capacity: 4,
            ..BusConfig::default()
        });
        for n in 1..=10 {
            bus.publish(trigger(n));
        }
        // The ring holds 7..=10: resuming after 6 is still complete, after 5 is not.
        let mut ok = bus.subscribe(Some(EventSeq(6)));
        assert!(frame_of(ok.try_recv().unwrap()).starts_with("id: 7\n"));
        let mut late = bus.subscribe(Some(EventSeq(5)));
        assert_eq!(
            late.try_recv(),
            Some(Some(Delivery::Resync { seq: EventSeq(10) }))
        );
        assert_eq!(late.try_recv(), None);
        bus.publish(trigger(11));
        assert!(frame_of(late.try_recv().unwrap()).starts_with("id: 11\n"));
    }

    #[test]
    fn slow_subscriber_overrun_resyncs_without_blocking_the_publisher() {
        let bus = LiveStateBus::new(BusConfig {
            capacity: 8,
            ..BusConfig::default()
        });
        let mut slow = bus.subscribe(None);
        for n in 1..=1000 {
            bus.publish(trigger(n));
        }
        assert_eq!(
            slow.try_recv(),
            Some(Some(Delivery::Resync {
                seq: EventSeq(1000)
            }))
        );
        assert_eq!(slow.try_recv(), None);
    }

    #[test]
    fn id_from_the_future_or_a_restarted_node_resyncs() {
        let bus = LiveStateBus::new(BusConfig {
            initial_seq: 1_000_000,
            ..BusConfig::default()
        });
        let mut future = bus.subscribe(Some(EventSeq(2_000_000)));
        assert_eq!(
            future.try_recv(),
            Some(Some(Delivery::Resync {
                seq: EventSeq(1_000_000)
            }))
        );
        // An id from before this node started: nothing of it is in the (empty) ring.
        let mut old = bus.subscribe(Some(EventSeq(5)));
        assert_eq!(
            old.try_recv(),
            Some(Some(Delivery::Resync {
                seq: EventSeq(1_000_000)
            }))
        );
        assert_eq!(bus.publish(trigger(1)), EventSeq(1_000_001));
    }

    #[test]
    fn triggers_older_than_max_age_leave_the_ring() {
        let bus = LiveStateBus::new(BusConfig {
            max_age: Duration::from_secs(60),
            ..BusConfig::default()
        });
        let t = |secs| StateTrigger {
            at: UNIX_EPOCH + Duration::from_secs(secs),
            ..trigger(0)
        };
        bus.publish(t(1000));
        bus.publish(t(1030));
        bus.publish(t(1061)); // drops the first
        let mut from_start = bus.subscribe(Some(EventSeq(0)));
        assert!(matches!(
            from_start.try_recv(),
            Some(Some(Delivery::Resync { .. }))
        ));
        let mut from_1 = bus.subscribe(Some(EventSeq(1)));
        assert!(frame_of(from_1.try_recv().unwrap()).starts_with("id: 2\n"));
    }

    #[test]
    fn large_backlog_is_read_in_bounded_batches() {
        let bus = LiveStateBus::new(BusConfig::default());
        let mut sub = bus.subscribe(None);
        for n in 1..=500 {
            bus.publish(trigger(n));
        }
        assert!(frame_of(sub.try_recv().unwrap()).starts_with("id: 1\n"));
        assert!(sub.pending.len() < 64);
        for n in 2..=500 {
            assert!(frame_of(sub.try_recv().unwrap()).starts_with(&format!("id: {n}\n")));
        }
        assert_eq!(sub.try_recv(), None);
    }

    #[test]
    fn private_triggers_reach_only_members_of_their_organisation() {
        let bus = LiveStateBus::new(BusConfig::default());
        let org: Arc<str> = "org_a".into();
        let mut anon = bus.subscribe_as(None, Viewer::Anonymous);
        let mut member = bus.subscribe_as(None, Viewer::Member(org.clone()));
        let mut other = bus.subscribe_as(None, Viewer::Member("org_b".into()));
        let mut all = bus.subscribe(None);
        // More hidden triggers than one batch, then a public one: nobody stalls on them.
        for n in 1..=200 {
            bus.publish_for(trigger(n), Audience::Org(org.clone()));
        }
        bus.publish(trigger(201));
        for sub in [&mut anon, &mut other] {
            assert!(frame_of(sub.try_recv().unwrap()).starts_with("id: 201\n"));
            assert_eq!(sub.try_recv(), None);
        }
        for sub in [&mut member, &mut all] {
            for n in 1..=201 {
                assert!(frame_of(sub.try_recv().unwrap()).starts_with(&format!("id: {n}\n")));
            }
            assert_eq!(sub.try_recv(), None);
        }
        // Only hidden ones: nothing, and the cursor has moved past them.
        bus.publish_for(trigger(202), Audience::Org(org));
        assert_eq!(anon.try_recv(), None);
        assert_eq!(anon.cursor(), EventSeq(202));
    }

    #[test]
    fn subscriber_count_and_close() {
        let bus = LiveStateBus::new(BusConfig::default());
        let a = bus.subscribe(None);
        let mut b = bus.subscribe(None);
        assert_eq!(bus.subscriber_count(), 2);
        drop(a);
        assert_eq!(bus.subscriber_count(), 1);
        bus.close();
        assert_eq!(b.try_recv(), Some(None));
    }

    #[tokio::test]
    async fn recv_wakes_on_publish_and_ends_on_close() {
        let bus = LiveStateBus::new(BusConfig::default());
        let mut sub = bus.subscribe(None);
        let waiter = tokio::spawn(async move {
            let first = sub.recv().await;
            let end = sub.recv().await;
            (first, end)
        });
        tokio::task::yield_now().await;
        bus.publish(trigger(1));
        tokio::task::yield_now().await;
        bus.close();
        let (first, end) = waiter.await.unwrap();
        assert!(frame_of(first).starts_with("id: 1\n"));
        assert_eq!(end, None);
    }
}
