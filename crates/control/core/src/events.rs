//! Scheduled events: a show on a channel with a title, artwork and a schedule, whose live
//! state (`scheduled -> pre_show -> live -> ended`, or `delayed`, `cancelled`) every
//! client learns through the live-state stream.
//!
//! Storage only: the rules that move the state live in `starling-live-state`'s
//! `EventMachine`, run by the node's event driver. The driver writes each transition with
//! [`Db::transition_event`], a compare-and-set on the previous state, so when several
//! nodes tick the same event only one applies (and announces) a transition. Every change
//! bumps `revision` and `updated_at`, so other nodes find it with
//! [`Db::events_changed_since`] and the prefetch document's ETag changes.

use std::time::{Duration, SystemTime};

use sqlx::any::AnyRow;
use sqlx::Row as _;
use starling_live_state::{EventId, EventSchedule, EventState, GoLiveWindow};
use tokio::sync::broadcast;

use crate::authz::{check, Action, Principal};
use crate::channels::Visibility;
use crate::db::{Db, UnixMs};
use crate::error::{ControlError, Problem, Result, ValidationError};
use crate::secret::new_id;
use crate::validate;

/// Default pre-show lead: 15 minutes.
pub const PRESHOW_LEAD_DEFAULT_SECS: i64 = 15 * 60;
/// Longest pre-show lead: one day.
pub const PRESHOW_LEAD_MAX_SECS: i64 = 24 * 3600;
/// Longest event: 31 days.
pub const EVENT_DURATION_MAX_MS: i64 = 31 * 24 * 3600 * 1000;
/// Latest representable schedule time (the end of year 9999), so every stored time
/// converts to a `SystemTime` and back.
pub const TIME_MAX_MS: i64 = 253_402_300_799_999;

/// A scheduled event, with its channel's name and visibility (what clients need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `ev_…`.
    pub id: String,
    /// Owning organisation.
    pub org_id: String,
    /// The channel it is shown on.
    pub channel_id: String,
    /// That channel's URL name.
    pub channel: String,
    /// That channel's visibility (decides who may fetch the prefetch document).
    pub visibility: Visibility,
    /// Display title.
    pub title: String,
    /// Artwork shown before and around the show.
    pub artwork_url: Option<String>,
    /// Scheduled start, unix ms.
    pub scheduled_start: UnixMs,
    /// Scheduled end, unix ms.
    pub scheduled_end: UnixMs,
    /// How long before the start the pre-show opens (0: none).
    pub preshow_lead_secs: i64,
    /// Current state.
    pub state: EventState,
    /// When the state last changed.
    pub state_changed_at: UnixMs,
    /// Grows with every change.
    pub revision: i64,
    /// Creation time.
    pub created_at: UnixMs,
    /// Last change (edit or transition).
    pub updated_at: UnixMs,
}

impl Event {
    /// The schedule the state machine runs on.
    pub fn schedule(&self) -> EventSchedule {
        EventSchedule {
            id: EventId::new(self.id.clone()),
            channel: self.channel.clone(),
            title: self.title.clone(),
            artwork_url: self.artwork_url.clone(),
            scheduled_start: system_time(self.scheduled_start),
            scheduled_end: system_time(self.scheduled_end),
            preshow_lead: Duration::from_secs(self.preshow_lead_secs.max(0).unsigned_abs()),
            go_live_window: GoLiveWindow::default(),
            restart_grace: starling_live_state::state::DEFAULT_RESTART_GRACE,
        }
    }
}

/// Unix ms to `SystemTime` (stored times are validated to be in range).
pub fn system_time(ms: UnixMs) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0).unsigned_abs())
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// A channel of the caller's organisation.
    pub channel_id: String,
    /// Title.
    pub title: String,
    /// Artwork URL.
    pub artwork_url: Option<String>,
    /// Start, unix ms.
    pub scheduled_start: UnixMs,
    /// End, unix ms.
    pub scheduled_end: UnixMs,
    /// Pre-show lead (default 15 minutes).
    pub preshow_lead_secs: Option<i64>,
}

/// Fields to change; `None` leaves a field as it is. `artwork_url: Some(None)` removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventUpdate {
    /// New title.
    pub title: Option<String>,
    /// New artwork.
    pub artwork_url: Option<Option<String>>,
    /// New start.
    pub scheduled_start: Option<UnixMs>,
    /// New end.
    pub scheduled_end: Option<UnixMs>,
    /// New pre-show lead.
    pub preshow_lead_secs: Option<i64>,
}

fn check_schedule(start: UnixMs, end: UnixMs, lead: i64) -> Result<(), ValidationError> {
    validate::range("scheduled_start", start, 0, TIME_MAX_MS)?;
    validate::range("scheduled_end", end, 0, TIME_MAX_MS)?;
    validate::range("preshow_lead_secs", lead, 0, PRESHOW_LEAD_MAX_SECS)?;
    if end <= start {
        return Err(ValidationError::new(
            "scheduled_end",
            Problem::Format("must be after scheduled_start"),
        ));
    }
    if end - start > EVENT_DURATION_MAX_MS {
        return Err(ValidationError::new(
            "scheduled_end",
            Problem::Format("an event lasts at most 31 days"),
        ));
    }
    Ok(())
}

macro_rules! select_events {
    ($where:literal) => {
        concat!(
            "SELECT e.id, e.org_id, e.channel_id, c.name AS channel, c.visibility, e.title, \
             e.artwork_url, e.scheduled_start, e.scheduled_end, e.preshow_lead_secs, e.state, \
             e.state_changed_at, e.revision, e.created_at, e.updated_at \
             FROM events e JOIN channels c ON c.id = e.channel_id ",
            $where
        )
    };
}

fn from_row(r: &AnyRow) -> Result<Event> {
    let bad = |what: &str| ControlError::corrupt("events", what.to_owned());
    Ok(Event {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        channel_id: r.try_get("channel_id")?,
        channel: r.try_get("channel")?,
        visibility: Visibility::parse(&r.try_get::<String, _>("visibility")?)
            .map_err(|_| bad("visibility"))?,
        title: r.try_get("title")?,
        artwork_url: r.try_get("artwork_url")?,
        scheduled_start: r.try_get("scheduled_start")?,
        scheduled_end: r.try_get("scheduled_end")?,
        preshow_lead_secs: r.try_get("preshow_lead_secs")?,
        state: EventState::parse(&r.try_get::<String, _>("state")?).ok_or_else(|| bad("state"))?,
        state_changed_at: r.try_get("state_changed_at")?,
        revision: r.try_get("revision")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn not_editable(ev: &Event) -> Result<()> {
    if matches!(ev.state, EventState::Ended | EventState::Cancelled) {
        return Err(ControlError::Validation(ValidationError::new(
            "state",
            Problem::Format("the event has ended or was cancelled and can no longer change"),
        )));
    }
    Ok(())
}

impl Db {
    fn event_changed(&self, id: &str) {
        // Err only means no driver listens on this node.
        let _ = self.inner.event_changes.send(id.to_owned());
    }

    /// Ids of events changed through this `Db` from now on.
    pub fn subscribe_event_changes(&self) -> broadcast::Receiver<String> {
        self.inner.event_changes.subscribe()
    }

    /// Schedules an event on a channel of the caller's organisation.
    pub async fn create_event(&self, p: &Principal, new: &NewEvent, now: UnixMs) -> Result<Event> {
        check(p, Action::ManageEvents, &p.org_id, "event")?;
        // Another organisation's channel is not found, as everywhere.
        let channel = self.get_channel(p, &new.channel_id).await?;
        validate::display_text("title", &new.title, validate::TITLE_MAX)?;
        if let Some(u) = &new.artwork_url {
            validate::http_url("artwork_url", u)?;
        }
        let lead = new.preshow_lead_secs.unwrap_or(PRESHOW_LEAD_DEFAULT_SECS);
        check_schedule(new.scheduled_start, new.scheduled_end, lead)?;
        let ev = Event {
            id: new_id("ev")?,
            org_id: p.org_id.clone(),
            channel_id: channel.id,
            channel: channel.name,
            visibility: channel.visibility,
            title: new.title.clone(),
            artwork_url: new.artwork_url.clone(),
            scheduled_start: new.scheduled_start,
            scheduled_end: new.scheduled_end,
            preshow_lead_secs: lead,
            state: EventState::Scheduled,
            state_changed_at: now,
            revision: 1,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO events (id, org_id, channel_id, title, artwork_url, scheduled_start, \
             scheduled_end, preshow_lead_secs, state, state_changed_at, revision, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&ev.id)
        .bind(&ev.org_id)
        .bind(&ev.channel_id)
        .bind(&ev.title)
        .bind(ev.artwork_url.as_deref())
        .bind(ev.scheduled_start)
        .bind(ev.scheduled_end)
        .bind(ev.preshow_lead_secs)
        .bind(ev.state.as_str())
        .bind(now)
        .bind(ev.revision)
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await?;
        self.event_changed(&ev.id);
        Ok(ev)
    }

    /// An event by id, whoever owns it (for the driver and the prefetch document, which
    /// decide about visibility themselves). Malformed ids are simply not found.
    pub async fn event_by_id(&self, id: &str) -> Result<Option<Event>> {
        if id.len() > 64 {
            return Ok(None);
        }
        let row = sqlx::query(select_events!("WHERE e.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// An event of the caller's organisation.
    pub async fn get_event(&self, p: &Principal, id: &str) -> Result<Event> {
        let ev = self
            .event_by_id(id)
            .await?
            .ok_or_else(|| ControlError::not_found("event"))?;
        check(p, Action::ReadChannels, &ev.org_id, "event")?;
        Ok(ev)
    }

    /// The caller's organisation's events, by scheduled start (latest first).
    pub async fn list_events(&self, p: &Principal, limit: i64, offset: i64) -> Result<Vec<Event>> {
        check(p, Action::ReadChannels, &p.org_id, "event")?;
        validate::range("limit", limit, 1, 1000)?;
        validate::range("offset", offset, 0, i64::MAX)?;
        let rows = sqlx::query(select_events!(
            "WHERE e.org_id = $1 ORDER BY e.scheduled_start DESC, e.id LIMIT $2 OFFSET $3"
        ))
        .bind(&p.org_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Edits an event that has not ended. Moving the schedule of a waiting event is
    /// how an operator announces a delayed start; the driver re-evaluates it at once.
    pub async fn update_event(
        &self,
        p: &Principal,
        id: &str,
        update: &EventUpdate,
        now: UnixMs,
    ) -> Result<Event> {
        let mut ev = self.get_event(p, id).await?;
        check(p, Action::ManageEvents, &ev.org_id, "event")?;
        not_editable(&ev)?;
        if let Some(t) = &update.title {
            validate::display_text("title", t, validate::TITLE_MAX)?;
            ev.title = t.clone();
        }
        if let Some(a) = &update.artwork_url {
            if let Some(u) = a {
                validate::http_url("artwork_url", u)?;
            }
            ev.artwork_url = a.clone();
        }
        ev.scheduled_start = update.scheduled_start.unwrap_or(ev.scheduled_start);
        ev.scheduled_end = update.scheduled_end.unwrap_or(ev.scheduled_end);
        ev.preshow_lead_secs = update.preshow_lead_secs.unwrap_or(ev.preshow_lead_secs);
        check_schedule(ev.scheduled_start, ev.scheduled_end, ev.preshow_lead_secs)?;
        let done = sqlx::query(
            "UPDATE events SET title = $1, artwork_url = $2, scheduled_start = $3, \
             scheduled_end = $4, preshow_lead_secs = $5, revision = revision + 1, updated_at = $6 \
             WHERE id = $7 AND org_id = $8 AND state = $9",
        )
        .bind(&ev.title)
        .bind(ev.artwork_url.as_deref())
        .bind(ev.scheduled_start)
        .bind(ev.scheduled_end)
        .bind(ev.preshow_lead_secs)
        .bind(now)
        .bind(&ev.id)
        .bind(&ev.org_id)
        .bind(ev.state.as_str())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            // The state moved underneath (a transition won the race): say so, change nothing.
            return Err(ControlError::Conflict { field: "state" });
        }
        self.event_changed(&ev.id);
        self.get_event(p, id).await
    }

    /// Cancels an event that has not ended; clients are told at once.
    pub async fn cancel_event(&self, p: &Principal, id: &str, now: UnixMs) -> Result<Event> {
        let ev = self.get_event(p, id).await?;
        check(p, Action::ManageEvents, &ev.org_id, "event")?;
        not_editable(&ev)?;
        if !self
            .transition_event(&ev.id, ev.state, EventState::Cancelled, now)
            .await?
        {
            return Err(ControlError::Conflict { field: "state" });
        }
        self.get_event(p, id).await
    }

    /// Deletes an event (clients holding its prefetch document get 404 on the next fetch).
    pub async fn delete_event(&self, p: &Principal, id: &str) -> Result<()> {
        let ev = self.get_event(p, id).await?;
        check(p, Action::ManageEvents, &ev.org_id, "event")?;
        sqlx::query("DELETE FROM events WHERE id = $1 AND org_id = $2")
            .bind(&ev.id)
            .bind(&ev.org_id)
            .execute(self.pool())
            .await?;
        self.event_changed(&ev.id);
        Ok(())
    }

    /// Applies a transition if the event is still in `from` (compare-and-set). `false`:
    /// another node or an operator moved it first; reload it.
    pub async fn transition_event(
        &self,
        id: &str,
        from: EventState,
        to: EventState,
        at: UnixMs,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE events SET state = $1, state_changed_at = $2, updated_at = $2, \
             revision = revision + 1 WHERE id = $3 AND state = $4",
        )
        .bind(to.as_str())
        .bind(at)
        .bind(id)
        .bind(from.as_str())
        .execute(self.pool())
        .await?;
        let applied = done.rows_affected() == 1;
        if applied {
            self.event_changed(id);
        }
        Ok(applied)
    }

    /// Events a driver must run: those not ended or cancelled, and those that ended
    /// after `ended_after` (a dropped stream may still revive them).
    pub async fn events_to_drive(&self, ended_after: UnixMs) -> Result<Vec<Event>> {
        let rows = sqlx::query(select_events!(
            "WHERE e.state NOT IN ('ended', 'cancelled') \
             OR (e.state = 'ended' AND e.state_changed_at > $1)"
        ))
        .bind(ended_after)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Events changed (edited or moved) at or after `since`, by any node.
    pub async fn events_changed_since(&self, since: UnixMs) -> Result<Vec<Event>> {
        let rows = sqlx::query(select_events!(
            "WHERE e.updated_at >= $1 ORDER BY e.updated_at"
        ))
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }
}
