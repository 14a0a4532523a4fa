//! The life of one scheduled event: `Scheduled -> PreShow -> Live -> Ended`, plus `Delayed`
//! and `Cancelled`.
//!
//! Pure: no clock reads, no I/O, no tokio. Two kinds of input drive it — time
//! ([`EventMachine::tick`]) and the real stream ([`EventMachine::stream_started`],
//! [`EventMachine::stream_ended`]) — and every input returns at most one [`StateChange`].
//! The driver calls `tick` again at [`EventMachine::next_deadline`].
//!
//! Rules (all instants are from the [`EventSchedule`]):
//!
//! | from | input | to | reason |
//! |---|---|---|---|
//! | Scheduled | time reaches `start - preshow_lead` | PreShow | [`Reason::PreShowOpened`] |
//! | Scheduled, PreShow | time reaches `start`, no stream | Delayed | [`Reason::StartPassedWithoutStream`] |
//! | Scheduled, PreShow, Delayed | stream starts inside the go-live window | Live | [`Reason::StreamStarted`] |
//! | Scheduled, PreShow, Delayed | window opens while a stream is already up | Live | [`Reason::WindowOpenedWithStream`] |
//! | Scheduled, PreShow, Delayed | time reaches the window's close, no stream | Ended | [`Reason::WindowClosedWithoutStream`] |
//! | Live | stream ends cleanly (early or late) | Ended | [`Reason::StreamFinished`] |
//! | Live | stream drops (connection lost) | Ended | [`Reason::StreamDropped`] |
//! | Ended after a drop | stream starts again within `restart_grace` | Live | [`Reason::StreamRestarted`] |
//! | any but Ended, Cancelled | operator cancels | Cancelled | [`Reason::Cancelled`] |
//!
//! Why these rules:
//! - A delayed start never shows a dead link: `Delayed` tells clients to keep showing the
//!   pre-show (artwork, "starting soon") instead of a player pointed at nothing.
//! - Time never ends a live event: overruns are normal (extra time, encores). Only the
//!   stream ends it.
//! - A publish before the go-live window is a rehearsal and changes nothing; if that
//!   stream is still up when the window opens, the event goes live then.
//! - The restart grace (default [`DEFAULT_RESTART_GRACE`], 2 minutes) covers an encoder
//!   that lost its uplink and reconnects (OBS retries within seconds). Clients are told
//!   `Ended` at once — the player has nothing to play — and `Live` again if the stream
//!   returns in time. A clean end ([`StreamEnd::Finished`]) is final.
//! - Time only moves states forward: a `now` earlier than the last one (clock step) never
//!   takes an event back from `Delayed` to `PreShow`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How long a stream may be gone, after it dropped, and still bring the event back to
/// `Live`.
pub const DEFAULT_RESTART_GRACE: Duration = Duration::from_secs(2 * 60);
/// Default pre-show lead: clients show the pre-show 15 minutes before the start.
pub const DEFAULT_PRESHOW_LEAD: Duration = Duration::from_secs(15 * 60);

/// The state a client shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    Scheduled,
    PreShow,
    Live,
    /// The start passed and no stream is up yet: keep showing the pre-show.
    Delayed,
    Ended,
    Cancelled,
}

impl EventState {
    /// The name on the wire (`"pre_show"`, `"live"`, …), as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::PreShow => "pre_show",
            Self::Live => "live",
            Self::Delayed => "delayed",
            Self::Ended => "ended",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the wire name ([`as_str`](Self::as_str)).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "scheduled" => Self::Scheduled,
            "pre_show" => Self::PreShow,
            "live" => Self::Live,
            "delayed" => Self::Delayed,
            "ended" => Self::Ended,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    /// Waiting states, in the only order time may move through them.
    fn waiting_rank(self) -> Option<u8> {
        match self {
            Self::Scheduled => Some(0),
            Self::PreShow => Some(1),
            Self::Delayed => Some(2),
            _ => None,
        }
    }
}

impl std::fmt::Display for EventState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event's id as the control plane knows it (serialized as a JSON string).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for EventId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for EventId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// When a publish makes the event live: from `start - opens_before_start` to
/// `end + closes_after_end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoLiveWindow {
    pub opens_before_start: Duration,
    pub closes_after_end: Duration,
}

impl Default for GoLiveWindow {
    /// 30 minutes before the start until the scheduled end.
    fn default() -> Self {
        Self {
            opens_before_start: Duration::from_secs(30 * 60),
            closes_after_end: Duration::ZERO,
        }
    }
}

/// A scheduled event, as stored by the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSchedule {
    pub id: EventId,
    pub channel: String,
    pub title: String,
    pub artwork_url: Option<String>,
    pub scheduled_start: SystemTime,
    pub scheduled_end: SystemTime,
    /// How long before the start clients show the pre-show. Zero skips `PreShow`.
    pub preshow_lead: Duration,
    pub go_live_window: GoLiveWindow,
    /// See [`DEFAULT_RESTART_GRACE`].
    pub restart_grace: Duration,
}

/// Why a schedule cannot drive a state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    #[error(
        "event {id}: scheduled end ({end_ms} ms since the Unix epoch) is not after the scheduled start ({start_ms} ms)"
    )]
    EndNotAfterStart {
        id: EventId,
        start_ms: u64,
        end_ms: u64,
    },
    #[error("event {id}: the {what} falls outside the range of representable times")]
    OutOfRange { id: EventId, what: &'static str },
}

/// Why a transition happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    PreShowOpened,
    StartPassedWithoutStream,
    StreamStarted,
    WindowOpenedWithStream,
    WindowClosedWithoutStream,
    StreamFinished,
    StreamDropped,
    StreamRestarted,
    Cancelled,
}

/// One transition: what the bus publishes and webhooks (`event.state_changed`) report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub event_id: EventId,
    pub from: EventState,
    pub to: EventState,
    pub at: SystemTime,
    pub reason: Reason,
}

/// How a stream ended, as far as ingest can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The broadcaster stopped publishing (RTMP `deleteStream` / `FCUnpublish`, WHIP
    /// `DELETE`). Final.
    Finished,
    /// The connection was lost or timed out; a restart within the grace revives the event.
    /// When ingest cannot tell, it should say `Dropped`.
    Dropped,
}

/// The instants the rules compare `now` with, computed once and checked for overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Points {
    preshow_at: SystemTime,
    start: SystemTime,
    window_opens: SystemTime,
    window_closes: SystemTime,
}

impl Points {
    fn of(s: &EventSchedule) -> Result<Self, ScheduleError> {
        if s.scheduled_end <= s.scheduled_start {
            return Err(ScheduleError::EndNotAfterStart {
                id: s.id.clone(),
                start_ms: unix_ms(s.scheduled_start),
                end_ms: unix_ms(s.scheduled_end),
            });
        }
        let out_of_range = |what| ScheduleError::OutOfRange {
            id: s.id.clone(),
            what,
        };
        // restart deadlines are computed later from `now`; check the grace fits at all here.
        s.scheduled_end
            .checked_add(s.restart_grace)
            .ok_or_else(|| out_of_range("restart grace"))?;
        Ok(Self {
            preshow_at: s
                .scheduled_start
                .checked_sub(s.preshow_lead)
                .ok_or_else(|| out_of_range("pre-show opening"))?,
            start: s.scheduled_start,
            window_opens: s
                .scheduled_start
                .checked_sub(s.go_live_window.opens_before_start)
                .ok_or_else(|| out_of_range("go-live window opening"))?,
            window_closes: s
                .scheduled_end
                .checked_add(s.go_live_window.closes_after_end)
                .ok_or_else(|| out_of_range("go-live window closing"))?,
        })
    }
}

/// The state machine of one event. See the module docs for the rules.
#[derive(Debug, Clone)]
pub struct EventMachine {
    schedule: EventSchedule,
    points: Points,
    state: EventState,
    stream_up: bool,
    /// Set after a drop: until when a restart revives the event.
    revive_until: Option<SystemTime>,
}

impl EventMachine {
    /// A machine in `Scheduled`. Call [`tick`](Self::tick) with the current time next: an
    /// event created after its pre-show opened moves on at once.
    pub fn new(schedule: EventSchedule) -> Result<Self, ScheduleError> {
        Self::restore(schedule, EventState::Scheduled, false)
    }

    /// A machine picked up again from storage (node restart): the stored state and whether
    /// a stream is up now. A restart grace in progress is not restored (it is short).
    pub fn restore(
        schedule: EventSchedule,
        state: EventState,
        stream_up: bool,
    ) -> Result<Self, ScheduleError> {
        let points = Points::of(&schedule)?;
        Ok(Self {
            schedule,
            points,
            state,
            stream_up,
            revive_until: None,
        })
    }

    pub fn state(&self) -> EventState {
        self.state
    }

    pub fn schedule(&self) -> &EventSchedule {
        &self.schedule
    }

    /// Whether ingest reported a stream up (it may be before the window).
    pub fn stream_up(&self) -> bool {
        self.stream_up
    }

    /// When to call [`tick`](Self::tick) next; `None` when only a stream input or a
    /// cancel can change the state. May be in the past: then tick at once.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        let p = &self.points;
        let window = self.stream_up.then_some(p.window_opens);
        match self.state {
            EventState::Scheduled => Some(min_opt(p.preshow_at, window)),
            EventState::PreShow => Some(min_opt(p.start, window)),
            EventState::Delayed => Some(p.window_closes),
            EventState::Ended => self.revive_until,
            EventState::Live | EventState::Cancelled => None,
        }
    }

    /// Time passed. Idempotent; a `now` earlier than before never moves a state back.
    pub fn tick(&mut self, now: SystemTime) -> Option<StateChange> {
        if self.revive_until.is_some_and(|until| now > until) {
            self.revive_until = None;
        }
        let (to, reason) = self.time_target(now)?;
        self.go(to, now, reason)
    }

    /// Ingest reports a publish on the event's channel.
    pub fn stream_started(&mut self, now: SystemTime) -> Option<StateChange> {
        self.stream_up = true;
        match self.state {
            EventState::Scheduled | EventState::PreShow | EventState::Delayed => {
                let p = &self.points;
                if now >= p.window_opens && now < p.window_closes {
                    self.go(EventState::Live, now, Reason::StreamStarted)
                } else {
                    // A rehearsal before the window, or too late: only time moves things.
                    self.tick(now)
                }
            }
            EventState::Ended => match self.revive_until.take() {
                Some(until) if now <= until => {
                    self.go(EventState::Live, now, Reason::StreamRestarted)
                }
                _ => None,
            },
            EventState::Live | EventState::Cancelled => None,
        }
    }

    /// Ingest reports the publish on the event's channel ended.
    pub fn stream_ended(&mut self, now: SystemTime, how: StreamEnd) -> Option<StateChange> {
        self.stream_up = false;
        match self.state {
            EventState::Live => {
                let reason = match how {
                    StreamEnd::Finished => Reason::StreamFinished,
                    StreamEnd::Dropped => {
                        self.revive_until = now.checked_add(self.schedule.restart_grace);
                        Reason::StreamDropped
                    }
                };
                self.go(EventState::Ended, now, reason)
            }
            EventState::Scheduled | EventState::PreShow | EventState::Delayed => self.tick(now),
            EventState::Ended | EventState::Cancelled => None,
        }
    }

    /// The operator cancels the event. Does nothing once it has ended.
    pub fn cancel(&mut self, now: SystemTime) -> Option<StateChange> {
        match self.state {
            EventState::Ended | EventState::Cancelled => None,
            _ => {
                self.revive_until = None;
                self.go(EventState::Cancelled, now, Reason::Cancelled)
            }
        }
    }

    /// Where time alone takes a waiting event at `now`, if anywhere new.
    fn time_target(&self, now: SystemTime) -> Option<(EventState, Reason)> {
        let rank = self.state.waiting_rank()?;
        let p = &self.points;
        let target = if now >= p.window_closes {
            (EventState::Ended, Reason::WindowClosedWithoutStream)
        } else if self.stream_up && now >= p.window_opens {
            (EventState::Live, Reason::WindowOpenedWithStream)
        } else if now >= p.start {
            (EventState::Delayed, Reason::StartPassedWithoutStream)
        } else if now >= p.preshow_at {
            (EventState::PreShow, Reason::PreShowOpened)
        } else {
            return None;
        };
        match target.0.waiting_rank() {
            Some(to_rank) if to_rank <= rank => None,
            _ => Some(target),
        }
    }

    fn go(&mut self, to: EventState, at: SystemTime, reason: Reason) -> Option<StateChange> {
        if to == self.state {
            return None;
        }
        let from = std::mem::replace(&mut self.state, to);
        tracing::debug!(event = %self.schedule.id, %from, %to, ?reason, "event state changed");
        Some(StateChange {
            event_id: self.schedule.id.clone(),
            from,
            to,
            at,
            reason,
        })
    }
}

fn min_opt(a: SystemTime, b: Option<SystemTime>) -> SystemTime {
    b.map_or(a, |b| a.min(b))
}

/// Milliseconds since the Unix epoch; 0 before it, saturating far after it.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    /// Start at T+60 min, end at T+180 min, pre-show from T+45, window T+30 .. T+180.
    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn at(minutes: u64) -> SystemTime {
        t0() + MIN * u32::try_from(minutes).unwrap()
    }

    fn schedule() -> EventSchedule {
        EventSchedule {
            id: EventId::from("final-2025"),
            channel: "sports".into(),
            title: "The final".into(),
            artwork_url: Some("https://example.com/final.jpg".into()),
            scheduled_start: at(60),
            scheduled_end: at(180),
            preshow_lead: DEFAULT_PRESHOW_LEAD,
            go_live_window: GoLiveWindow::default(),
            restart_grace: DEFAULT_RESTART_GRACE,
        }
    }

    fn machine() -> EventMachine {
        EventMachine::new(schedule()).unwrap()
    }

    fn machine_in(state: EventState) -> EventMachine {
        EventMachine::restore(schedule(), state, false).unwrap()
    }

    #[track_caller]
    fn change(c: Option<StateChange>, from: EventState, to: EventState, reason: Reason) {
        let c = c.expect("a state change");
        assert_eq!((c.from, c.to, c.reason), (from, to, reason));
        assert_eq!(c.event_id.as_str(), "final-2025");
    }

    use EventState::*;

    #[test]
    fn happy_path_scheduled_preshow_live_ended() {
        let mut m = machine();
        assert_eq!(m.tick(at(0)), None);
        assert_eq!(m.tick(at(44)), None);
        assert_eq!(m.next_deadline(), Some(at(45)));
        change(m.tick(at(45)), Scheduled, PreShow, Reason::PreShowOpened);
        assert_eq!(m.tick(at(50)), None, "tick is idempotent");
        let c = m.stream_started(at(58)).unwrap();
        assert_eq!((c.from, c.to, c.at), (PreShow, Live, at(58)));
        assert_eq!(m.next_deadline(), None, "time never ends a live event");
        assert_eq!(
            m.tick(at(500)),
            None,
            "overrun past the scheduled end stays live"
        );
        change(
            m.stream_ended(at(501), StreamEnd::Finished),
            Live,
            Ended,
            Reason::StreamFinished,
        );
        assert_eq!(m.stream_started(at(502)), None, "a clean end is final");
        assert_eq!(m.state(), Ended);
    }

    #[test]
    fn publish_before_the_window_is_a_rehearsal() {
        let mut m = machine();
        assert_eq!(m.stream_started(at(10)), None);
        assert_eq!(m.state(), Scheduled);
        assert!(m.stream_up());
        assert_eq!(
            m.next_deadline(),
            Some(at(30)),
            "window opening now matters"
        );
        change(
            m.tick(at(30)),
            Scheduled,
            Live,
            Reason::WindowOpenedWithStream,
        );
    }

    #[test]
    fn rehearsal_that_stops_before_the_window_changes_nothing() {
        let mut m = machine();
        assert_eq!(m.stream_started(at(10)), None);
        assert_eq!(m.stream_ended(at(20), StreamEnd::Finished), None);
        assert_eq!(m.tick(at(31)), None);
        assert_eq!(m.state(), Scheduled);
        change(m.tick(at(45)), Scheduled, PreShow, Reason::PreShowOpened);
    }

    #[test]
    fn publish_at_window_opening_goes_live_from_scheduled() {
        let mut m = machine();
        change(
            m.stream_started(at(30)),
            Scheduled,
            Live,
            Reason::StreamStarted,
        );
    }

    #[test]
    fn start_without_stream_is_delayed_then_live() {
        let mut m = machine();
        change(m.tick(at(45)), Scheduled, PreShow, Reason::PreShowOpened);
        assert_eq!(m.next_deadline(), Some(at(60)));
        change(
            m.tick(at(60)),
            PreShow,
            Delayed,
            Reason::StartPassedWithoutStream,
        );
        assert_eq!(m.next_deadline(), Some(at(180)));
        change(
            m.stream_started(at(75)),
            Delayed,
            Live,
            Reason::StreamStarted,
        );
    }

    #[test]
    fn late_first_tick_jumps_in_one_change() {
        let mut m = machine();
        change(
            m.tick(at(70)),
            Scheduled,
            Delayed,
            Reason::StartPassedWithoutStream,
        );
        let mut m = machine();
        change(
            m.tick(at(180)),
            Scheduled,
            Ended,
            Reason::WindowClosedWithoutStream,
        );
        let mut m = machine();
        change(
            m.stream_started(at(70)),
            Scheduled,
            Live,
            Reason::StreamStarted,
        );
    }

    #[test]
    fn no_stream_by_window_close_ends_and_later_publish_is_ignored() {
        let mut m = machine_in(Delayed);
        assert_eq!(m.tick(at(179)), None);
        change(
            m.tick(at(180)),
            Delayed,
            Ended,
            Reason::WindowClosedWithoutStream,
        );
        assert_eq!(m.stream_started(at(181)), None);
        assert_eq!(m.state(), Ended);
    }

    #[test]
    fn publish_after_window_close_ends_instead_of_going_live() {
        let mut m = machine_in(Delayed);
        change(
            m.stream_started(at(200)),
            Delayed,
            Ended,
            Reason::WindowClosedWithoutStream,
        );
    }

    #[test]
    fn window_close_extension_keeps_accepting_a_late_start() {
        let mut s = schedule();
        s.go_live_window.closes_after_end = 30 * MIN;
        let mut m = EventMachine::restore(s, Delayed, false).unwrap();
        assert_eq!(m.tick(at(200)), None);
        change(
            m.stream_started(at(200)),
            Delayed,
            Live,
            Reason::StreamStarted,
        );
    }

    #[test]
    fn early_end_ends_the_event() {
        let mut m = machine();
        m.stream_started(at(60)).unwrap();
        let c = m.stream_ended(at(90), StreamEnd::Finished).unwrap();
        assert_eq!(
            (c.from, c.to, c.reason, c.at),
            (Live, Ended, Reason::StreamFinished, at(90))
        );
        assert_eq!(m.tick(at(120)), None);
    }

    #[test]
    fn restart_within_grace_returns_to_live() {
        let mut m = machine();
        m.stream_started(at(60)).unwrap();
        change(
            m.stream_ended(at(90), StreamEnd::Dropped),
            Live,
            Ended,
            Reason::StreamDropped,
        );
        assert_eq!(m.next_deadline(), Some(at(92)));
        assert_eq!(m.tick(at(91)), None);
        change(
            m.stream_started(at(92)),
            Ended,
            Live,
            Reason::StreamRestarted,
        );
        // The grace is per drop: a second drop opens a new one.
        change(
            m.stream_ended(at(100), StreamEnd::Dropped),
            Live,
            Ended,
            Reason::StreamDropped,
        );
        change(
            m.stream_started(at(101)),
            Ended,
            Live,
            Reason::StreamRestarted,
        );
    }

    #[test]
    fn restart_after_grace_stays_ended() {
        let mut m = machine();
        m.stream_started(at(60)).unwrap();
        m.stream_ended(at(90), StreamEnd::Dropped).unwrap();
        assert_eq!(m.stream_started(at(93)), None);
        assert_eq!(m.state(), Ended);

        // Also when a tick past the grace came first.
        let mut m = machine();
        m.stream_started(at(60)).unwrap();
        m.stream_ended(at(90), StreamEnd::Dropped).unwrap();
        assert_eq!(m.tick(at(93)), None);
        assert_eq!(m.next_deadline(), None);
        assert_eq!(m.stream_started(at(93)), None);
    }

    #[test]
    fn cancel_from_every_open_state_and_never_after_the_end() {
        for from in [Scheduled, PreShow, Delayed, Live] {
            let mut m = machine_in(from);
            change(m.cancel(at(50)), from, Cancelled, Reason::Cancelled);
            assert_eq!(m.tick(at(500)), None);
            assert_eq!(m.stream_started(at(70)), None);
            assert_eq!(m.stream_ended(at(71), StreamEnd::Dropped), None);
            assert_eq!(m.cancel(at(72)), None);
            assert_eq!(m.next_deadline(), None);
        }
        let mut m = machine_in(Ended);
        assert_eq!(m.cancel(at(50)), None);
    }

    #[test]
    fn cancelled_after_a_drop_cannot_be_revived() {
        let mut m = machine();
        m.stream_started(at(60)).unwrap();
        m.stream_ended(at(90), StreamEnd::Dropped).unwrap();
        assert_eq!(m.cancel(at(91)), None, "already ended");
        assert_eq!(m.state(), Ended);
    }

    #[test]
    fn time_never_moves_a_state_back() {
        let mut m = machine_in(Delayed);
        assert_eq!(m.tick(at(50)), None);
        assert_eq!(m.tick(at(0)), None);
        assert_eq!(m.state(), Delayed);
        let mut m = machine_in(PreShow);
        assert_eq!(m.tick(at(0)), None);
        assert_eq!(m.state(), PreShow);
    }

    #[test]
    fn duplicate_stream_inputs_are_no_ops() {
        let mut m = machine_in(Live);
        assert_eq!(m.stream_started(at(70)), None);
        m.stream_ended(at(80), StreamEnd::Finished).unwrap();
        assert_eq!(m.stream_ended(at(81), StreamEnd::Finished), None);
        let mut m = machine_in(PreShow);
        assert_eq!(m.stream_ended(at(50), StreamEnd::Dropped), None);
        assert_eq!(m.state(), PreShow);
    }

    #[test]
    fn stream_end_while_waiting_still_applies_time() {
        let mut m = machine_in(PreShow);
        change(
            m.stream_ended(at(61), StreamEnd::Dropped),
            PreShow,
            Delayed,
            Reason::StartPassedWithoutStream,
        );
    }

    #[test]
    fn zero_preshow_lead_skips_preshow() {
        let mut s = schedule();
        s.preshow_lead = Duration::ZERO;
        let mut m = EventMachine::new(s).unwrap();
        assert_eq!(m.tick(at(59)), None);
        change(
            m.tick(at(60)),
            Scheduled,
            Delayed,
            Reason::StartPassedWithoutStream,
        );
    }

    #[test]
    fn preshow_opening_before_the_window() {
        let mut s = schedule();
        s.preshow_lead = 45 * MIN; // pre-show at T+15, window at T+30
        let mut m = EventMachine::new(s).unwrap();
        change(m.tick(at(15)), Scheduled, PreShow, Reason::PreShowOpened);
        assert_eq!(m.stream_started(at(20)), None);
        assert_eq!(m.next_deadline(), Some(at(30)));
        change(
            m.tick(at(30)),
            PreShow,
            Live,
            Reason::WindowOpenedWithStream,
        );
    }

    #[test]
    fn invalid_schedules_are_refused_with_context() {
        let mut s = schedule();
        s.scheduled_end = s.scheduled_start;
        let e = EventMachine::new(s).unwrap_err();
        assert!(matches!(e, ScheduleError::EndNotAfterStart { .. }));
        assert!(e.to_string().contains("final-2025"), "{e}");

        let mut s = schedule();
        s.preshow_lead = Duration::from_secs(u64::MAX);
        let e = EventMachine::new(s).unwrap_err();
        assert!(
            matches!(
                e,
                ScheduleError::OutOfRange {
                    what: "pre-show opening",
                    ..
                }
            ),
            "{e}"
        );

        let mut s = schedule();
        s.restart_grace = Duration::from_secs(u64::MAX);
        assert!(EventMachine::new(s).is_err());
    }

    #[test]
    fn state_names_on_the_wire() {
        for s in [Scheduled, PreShow, Live, Delayed, Ended, Cancelled] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(EventState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::from_str::<EventState>(&json).unwrap(), s);
        }
    }

    #[test]
    fn unix_ms_saturates() {
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(unix_ms(t0()), 1_700_000_000_000);
    }
}
