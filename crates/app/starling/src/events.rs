//! The event driver: runs the state machine of every scheduled event, from the clock and
//! from the hub's publish starts and ends, and tells clients (live-state triggers) and
//! webhooks (`event.state_changed`) about every transition.
//!
//! The database holds each event's state. A transition is written with a compare-and-set
//! on the previous state, so when several nodes drive the same event, one applies it; every
//! node publishes each change it observes (its own, an operator's edit or cancel, another
//! node's transition found by polling) to its own SSE subscribers. A change is announced
//! when the stored state differs from the state this node last knew, which makes the
//! announcement idempotent however the node learned of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use starling_control::{Db, Event, EventState};
use starling_hub::{Hub, Lifecycle};
use starling_live_state::{EventMachine, LiveStateBus, StateChange, StateTrigger, StreamEnd};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use crate::auth::now_ms;

/// Called for each transition this node applied (exactly once cluster-wide): webhooks.
pub type OnChange = Arc<dyn Fn(&Event, &StateChange) + Send + Sync>;

/// How often other nodes' changes are polled, at most how long a deadline waits.
const POLL: Duration = Duration::from_secs(1);
/// How often the whole set is reloaded (picks up deletions).
const FULL_RELOAD: Duration = Duration::from_secs(30);

struct Entry {
    machine: EventMachine,
    /// The stored state this node last knew (announced to its subscribers).
    known: EventState,
    revision: i64,
    event: Event,
}

pub struct EventDriver {
    db: Db,
    bus: Arc<LiveStateBus>,
    hub: Arc<Hub>,
    on_change: Option<OnChange>,
    entries: HashMap<String, Entry>,
    /// Events whose transition lost a compare-and-set: reload them from storage.
    stale: Vec<String>,
}

impl EventDriver {
    pub fn new(db: Db, bus: Arc<LiveStateBus>, hub: Arc<Hub>, on_change: Option<OnChange>) -> Self {
        Self {
            db,
            bus,
            hub,
            on_change,
            entries: HashMap::new(),
            stale: Vec::new(),
        }
    }

    /// Runs until `shutdown` turns true.
    pub fn spawn(mut self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let mut lifecycle = self.hub.lifecycle();
        let mut local = self.db.subscribe_event_changes();
        tokio::spawn(async move {
            self.full_reload().await;
            let mut since = now_ms();
            let mut last_full = tokio::time::Instant::now();
            let stop = async move {
                // The guard `wait_for` returns must not live across an await of the loop.
                let _ = shutdown.wait_for(|s| *s).await;
            };
            tokio::pin!(stop);
            loop {
                let wait = self.next_wait();
                tokio::select! {
                    () = &mut stop => return,
                    l = lifecycle.recv() => match l {
                        Ok(l) => self.on_lifecycle(l).await,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            warn!(missed = n, "event driver missed publish notices; reloading");
                            self.full_reload().await;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    id = local.recv() => match id {
                        Ok(id) => self.reload(&id).await,
                        Err(broadcast::error::RecvError::Lagged(_)) => self.full_reload().await,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = tokio::time::sleep(wait) => {
                        if last_full.elapsed() >= FULL_RELOAD {
                            last_full = tokio::time::Instant::now();
                            self.full_reload().await;
                        } else {
                            // Other nodes' edits and transitions; a second of overlap so a
                            // change written during the previous poll is not missed.
                            let now = now_ms();
                            match self.db.events_changed_since(since.saturating_sub(1000)).await {
                                Ok(list) => {
                                    since = now;
                                    for ev in list {
                                        self.adopt(ev).await;
                                    }
                                }
                                Err(e) => warn!(error = %e, "polling events failed"),
                            }
                        }
                        self.tick_all().await;
                    }
                }
                // Bounded: each round needs another node to win another race.
                for _ in 0..8 {
                    let stale = std::mem::take(&mut self.stale);
                    if stale.is_empty() {
                        break;
                    }
                    for id in stale {
                        self.reload(&id).await;
                    }
                }
            }
        })
    }

    fn next_wait(&self) -> Duration {
        let now = SystemTime::now();
        self.entries
            .values()
            .filter_map(|e| e.machine.next_deadline())
            .map(|d| d.duration_since(now).unwrap_or(Duration::ZERO))
            .fold(POLL, Duration::min)
    }

    async fn full_reload(&mut self) {
        let grace_ms = starling_live_state::state::DEFAULT_RESTART_GRACE.as_millis() as i64;
        match self.db.events_to_drive(now_ms() - grace_ms).await {
            Ok(list) => {
                let ids: std::collections::HashSet<String> =
                    list.iter().map(|e| e.id.clone()).collect();
                self.entries.retain(|id, _| ids.contains(id));
                for ev in list {
                    self.adopt(ev).await;
                }
                self.tick_all().await;
            }
            Err(e) => warn!(error = %e, "loading events failed; retrying on the next poll"),
        }
    }

    async fn reload(&mut self, id: &str) {
        match self.db.event_by_id(id).await {
            Ok(Some(ev)) => self.adopt(ev).await,
            Ok(None) => {
                self.entries.remove(id);
            }
            Err(e) => warn!(error = %e, event = id, "reloading an event failed"),
        }
    }

    /// Takes a stored event as the truth: announces a state this node did not know yet,
    /// rebuilds the machine on a new schedule, and lets time move it at once.
    async fn adopt(&mut self, ev: Event) {
        if let Some(e) = self.entries.get(&ev.id) {
            if e.revision >= ev.revision {
                return;
            }
        }
        let prev = self.entries.remove(&ev.id);
        let known = prev.as_ref().map(|p| p.known);
        if known.is_some_and(|k| k != ev.state) {
            // Someone else moved it (an operator's cancel, another node): tell our clients.
            self.announce(
                &ev,
                ev.state,
                starling_control::events::system_time(ev.state_changed_at),
            );
        }
        let stream_up = prev
            .as_ref()
            .map_or_else(|| self.hub.is_live(&ev.channel), |p| p.machine.stream_up());
        let machine = match EventMachine::restore(ev.schedule(), ev.state, stream_up) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "event cannot be driven");
                return;
            }
        };
        let id = ev.id.clone();
        self.entries.insert(
            id.clone(),
            Entry {
                machine,
                known: ev.state,
                revision: ev.revision,
                event: ev,
            },
        );
        self.step(&id, |m| m.tick(SystemTime::now())).await;
    }

    async fn tick_all(&mut self) {
        let ids: Vec<String> = self.entries.keys().cloned().collect();
        for id in ids {
            self.step(&id, |m| m.tick(SystemTime::now())).await;
        }
        // Cancelled, and ended past the restart grace: nothing can move them any more.
        self.entries.retain(|_, e| {
            e.machine.next_deadline().is_some()
                || !matches!(e.known, EventState::Ended | EventState::Cancelled)
        });
    }

    async fn on_lifecycle(&mut self, l: Lifecycle) {
        let (channel, at, ended) = match l {
            Lifecycle::Started { channel, at, .. } => (channel, at, None),
            Lifecycle::Ended {
                channel,
                at,
                finished,
            } => {
                let how = if finished {
                    StreamEnd::Finished
                } else {
                    StreamEnd::Dropped
                };
                (channel, at, Some(how))
            }
        };
        let ids: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.event.channel == channel)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.step(&id, |m| match ended {
                None => m.stream_started(at),
                Some(how) => m.stream_ended(at, how),
            })
            .await;
        }
    }

    /// Feeds one input to an event's machine and applies the transition it makes.
    async fn step(
        &mut self,
        id: &str,
        input: impl FnOnce(&mut EventMachine) -> Option<StateChange>,
    ) {
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        let Some(change) = input(&mut entry.machine) else {
            return;
        };
        let at = starling_live_state::state::unix_ms(change.at) as i64;
        match self
            .db
            .transition_event(id, change.from, change.to, at)
            .await
        {
            Ok(true) => {
                let ev = {
                    let Some(entry) = self.entries.get_mut(id) else {
                        return;
                    };
                    entry.known = change.to;
                    entry.revision += 1;
                    entry.event.state = change.to;
                    entry.event.state_changed_at = at;
                    entry.event.clone()
                };
                info!(event = id, channel = %ev.channel, from = %change.from, to = %change.to, reason = ?change.reason, "event state changed");
                self.announce(&ev, change.to, change.at);
                if let Some(hook) = &self.on_change {
                    hook(&ev, &change);
                }
            }
            Ok(false) => {
                debug!(event = id, "event moved elsewhere first; reloading");
                if let Some(entry) = self.entries.get_mut(id) {
                    // Stale: the reload announces the stored state if it differs from `known`.
                    entry.revision = 0;
                }
                self.stale.push(id.to_owned());
            }
            Err(e) => {
                // Keep the stored state as the truth: rebuild from it on the next poll.
                warn!(error = %e, event = id, "writing an event transition failed");
                if let Some(entry) = self.entries.get_mut(id) {
                    entry.revision = 0;
                }
            }
        }
    }

    fn announce(&self, ev: &Event, state: EventState, at: SystemTime) {
        // A private channel's events are its organisation's business: anonymous SSE
        // clients do not learn that they exist or when they go live.
        let audience = if ev.visibility == starling_control::Visibility::Private {
            starling_live_state::Audience::Org(ev.org_id.as_str().into())
        } else {
            starling_live_state::Audience::Everyone
        };
        let seq = self.bus.publish_for(
            StateTrigger {
                event_id: starling_live_state::EventId::new(ev.id.clone()),
                state,
                at,
            },
            audience,
        );
        debug!(event = %ev.id, %state, %seq, "live-state trigger published");
    }
}
