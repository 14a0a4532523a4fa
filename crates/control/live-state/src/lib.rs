//! Live state of scheduled events, and its fan-out to every connected device.
//!
//! Clients learn about an event in two phases:
//! 1. **Prefetch**, well before kickoff: `GET /api/v1/events/{id}/prefetch` returns
//!    everything the client needs (title, artwork, schedule, playback URLs, current state),
//!    long cacheable by CDNs ([`prefetch_cache_headers`]). Served by the control plane.
//! 2. **Triggers**, at kickoff: a Server-Sent Events stream (`GET /api/v1/live-state`,
//!    [`router`]) of small messages `{seq, event_id, state, at}`. At kickoff each device
//!    receives one of them and fetches nothing more.
//!
//! The parts:
//! - [`state`]: the event state machine (`Scheduled -> PreShow -> Live -> Ended`, with
//!   `Delayed` and `Cancelled`), driven by time and by the real stream. Pure: `now` in,
//!   [`StateChange`]s out; no clock, no I/O.
//! - [`bus`]: one node's ordered triggers in a bounded ring; each serialized once into the
//!   SSE frame all subscribers share; resumable with `Last-Event-ID`; `resync` when a
//!   client's position is gone.
//! - [`sse`]: the axum handler, which owns the timers (keep-alive, `retry:` jitter).
//!
//! Wiring, done by the node: on ingest start/end of a channel, call
//! [`EventMachine::stream_started`] / [`EventMachine::stream_ended`] for its events; tick
//! each machine at [`EventMachine::next_deadline`]; store each [`StateChange`] and
//! [`LiveStateBus::publish`] it (`StateTrigger::from(&change)`).
//!
//! This crate never touches the database and never blocks a publisher on a subscriber.

pub mod bus;
pub mod sse;
pub mod state;

pub use bus::{
    Audience, BusConfig, Delivery, EventSeq, LiveStateBus, StateTrigger, Subscription, Viewer,
};
pub use sse::{
    prefetch_cache_headers, router, router_with, router_with_viewers, PrefetchAudience, SseConfig,
    ViewerResolver, LIVE_STATE_ALIAS, LIVE_STATE_PATH,
};
pub use state::{
    EventId, EventMachine, EventSchedule, EventState, GoLiveWindow, Reason, ScheduleError,
    StateChange, StreamEnd,
};
