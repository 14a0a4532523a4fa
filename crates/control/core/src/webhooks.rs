//! Webhooks: per-organisation HTTP endpoints told about stream, event and recording
//! changes, and the durable queue of deliveries to them.
//!
//! - A webhook's signing secret (`whsec_…`, 32 random bytes) is *stored as is*, unlike
//!   every other secret here: the server needs it to sign each delivery. It is returned
//!   once, by [`Db::create_webhook`], and otherwise only to the dispatcher inside a
//!   [`DueDelivery`] (whose `Debug` is redacted). Never log it.
//! - [`Db::enqueue_webhook_event`] fans one event out to every enabled webhook of the
//!   organisation that subscribed to its kind: one `webhook_deliveries` row each, holding
//!   the exact body that will be signed and sent, so a restart loses nothing and every
//!   retry sends the same bytes.
//! - [`Db::due_deliveries`] *claims* what is due (a lease of [`DELIVERY_LEASE_MS`]), so
//!   two dispatchers (nodes) never send the same attempt, and an attempt whose node died
//!   is retried once the lease runs out. [`Db::record_delivery_attempt`] stores the outcome; the
//!   retry policy itself (when, how often) belongs to the caller (`starling-webhooks`).
//!
//! This module never performs HTTP and never reads the clock.

use sqlx::any::AnyRow;
use sqlx::Row as _;

use crate::authz::{check, Action, Principal};
use crate::channels::text_enum;
use crate::db::{flag, Db, UnixMs};
use crate::error::{ControlError, Problem, Result, ValidationError};
use crate::secret::{new_id, new_secret, Secret};
use crate::validate;

/// Longest webhook URL, in bytes.
pub use crate::validate::URL_MAX;
/// Most webhooks one organisation may have (bounds the fan-out of every event).
pub const WEBHOOKS_PER_ORG_MAX: i64 = 25;
/// Largest event payload (the `data` object), in bytes.
pub const PAYLOAD_MAX: usize = 64 * 1024;
/// How long a claimed delivery stays invisible to other dispatchers. Longer than any
/// attempt may take (the dispatcher's request timeout is 10 s).
pub const DELIVERY_LEASE_MS: i64 = 60_000;
/// Longest stored error text of an attempt.
pub const ERROR_MAX: usize = 500;

/// What a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WebhookEvent {
    /// A channel went live.
    StreamStarted,
    /// A channel's stream ended.
    StreamEnded,
    /// A scheduled event changed state.
    EventStateChanged,
    /// A recording finished and can be fetched.
    RecordingReady,
    /// A highlight clip was cut from a channel's recording.
    ClipCreated,
}
text_enum!(
    WebhookEvent,
    "events",
    "stream.started, stream.ended, event.state_changed, recording.ready, clip.created",
    StreamStarted = "stream.started",
    StreamEnded = "stream.ended",
    EventStateChanged = "event.state_changed",
    RecordingReady = "recording.ready",
    ClipCreated = "clip.created"
);

impl WebhookEvent {
    /// Every kind, in API order.
    pub const ALL: [WebhookEvent; 5] = [
        WebhookEvent::StreamStarted,
        WebhookEvent::StreamEnded,
        WebhookEvent::EventStateChanged,
        WebhookEvent::RecordingReady,
        WebhookEvent::ClipCreated,
    ];
}

impl std::fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A webhook, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `wh_…`.
    pub id: String,
    /// Owning organisation.
    pub org_id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Subscribed kinds, sorted, no duplicates.
    pub events: Vec<WebhookEvent>,
    /// Creation time.
    pub created_at: UnixMs,
    /// A disabled webhook gets no new deliveries and its pending ones wait.
    pub disabled: bool,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Waiting for its next attempt (or in flight).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up (permanent refusal, too many attempts, or too old).
    Failed,
}

impl DeliveryState {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

/// One event for one webhook, and how its delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `dlv_…`, sent as `Starling-Delivery`.
    pub id: String,
    /// The webhook.
    pub webhook_id: String,
    /// Owning organisation.
    pub org_id: String,
    /// The kind, sent as `Starling-Event`.
    pub event: WebhookEvent,
    /// The exact JSON body sent (an envelope around the event's data).
    pub payload: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the event was enqueued.
    pub created_at: UnixMs,
    /// When the next attempt is due (or its lease ends); `None` once finished.
    pub next_attempt_at: Option<UnixMs>,
    /// When the last attempt ended.
    pub last_attempt_at: Option<UnixMs>,
    /// HTTP status of the last attempt, if there was a response.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (no response, or the status's meaning).
    pub last_error: Option<String>,
    /// When a 2xx arrived.
    pub delivered_at: Option<UnixMs>,
    /// When it was given up.
    pub failed_at: Option<UnixMs>,
}

impl Delivery {
    /// Pending, delivered or failed.
    pub fn state(&self) -> DeliveryState {
        if self.delivered_at.is_some() {
            DeliveryState::Delivered
        } else if self.failed_at.is_some() {
            DeliveryState::Failed
        } else {
            DeliveryState::Pending
        }
    }
}

/// A claimed delivery with what the dispatcher needs to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// The delivery (its `attempts` counts attempts *before* this one).
    pub delivery: Delivery,
    /// The webhook's URL.
    pub url: String,
    /// The webhook's signing secret (`Debug` redacted).
    pub secret: Secret,
}

/// The outcome of one attempt, as decided by the caller's retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptResult {
    /// The receiver answered 2xx.
    Delivered {
        /// The status.
        status: u16,
    },
    /// Failed; try again at `next_attempt_at`.
    Retry {
        /// The status, if a response arrived.
        status: Option<u16>,
        /// What went wrong (never a secret).
        error: String,
        /// When to try again.
        next_attempt_at: UnixMs,
    },
    /// Failed for good.
    GaveUp {
        /// The status, if a response arrived.
        status: Option<u16>,
        /// What went wrong and why there is no retry.
        error: String,
    },
}

/// Checks a webhook URL: `http://` or `https://`, a host, at most [`URL_MAX`] bytes of
/// printable ASCII, no credentials (`user:pass@`), no fragment.
pub fn validate_url(url: &str) -> std::result::Result<(), ValidationError> {
    validate::http_url("url", url)?;
    if url.contains('#') {
        return Err(ValidationError::new(
            "url",
            Problem::Format("must not have a fragment (`#…`)"),
        ));
    }
    Ok(())
}

/// Parses and normalises a subscription list: not empty, known kinds, sorted, unique.
pub fn parse_events<S: AsRef<str>>(
    events: &[S],
) -> std::result::Result<Vec<WebhookEvent>, ValidationError> {
    if events.is_empty() {
        return Err(ValidationError::new("events", Problem::Empty));
    }
    // Bounded before parsing: there are only five kinds.
    if events.len() > 16 {
        return Err(ValidationError::new(
            "events",
            Problem::Format("lists more than 16 entries"),
        ));
    }
    let mut out = events
        .iter()
        .map(|e| WebhookEvent::parse(e.as_ref()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn events_text(events: &[WebhookEvent]) -> String {
    events
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn events_from_text(s: &str) -> Result<Vec<WebhookEvent>> {
    s.split(',')
        .map(|e| {
            WebhookEvent::parse(e)
                .map_err(|_| ControlError::corrupt("webhooks", format!("event kind {e:?}")))
        })
        .collect()
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Cuts `s` to at most [`ERROR_MAX`] bytes on a character boundary.
fn clip_error(s: &str) -> &str {
    if s.len() <= ERROR_MAX {
        return s;
    }
    let mut end = ERROR_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

macro_rules! webhook_cols {
    () => {
        "id, org_id, url, events, created_at, disabled"
    };
}
macro_rules! delivery_cols {
    () => {
        "d.id, d.webhook_id, d.org_id, d.event, d.payload, d.attempts, d.created_at, \
         d.next_attempt_at, d.last_attempt_at, d.last_status, d.last_error, d.delivered_at, \
         d.failed_at"
    };
}

fn webhook_from_row(r: &AnyRow) -> Result<Webhook> {
    Ok(Webhook {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        url: r.try_get("url")?,
        events: events_from_text(&r.try_get::<String, _>("events")?)?,
        created_at: r.try_get("created_at")?,
        disabled: flag("webhooks", r.try_get("disabled")?)?,
    })
}

fn delivery_from_row(r: &AnyRow) -> Result<Delivery> {
    let bad = |what: String| ControlError::corrupt("webhook_deliveries", what);
    let event: String = r.try_get("event")?;
    let attempts: i64 = r.try_get("attempts")?;
    let status: Option<i64> = r.try_get("last_status")?;
    Ok(Delivery {
        id: r.try_get("id")?,
        webhook_id: r.try_get("webhook_id")?,
        org_id: r.try_get("org_id")?,
        event: WebhookEvent::parse(&event).map_err(|_| bad(format!("event {event:?}")))?,
        payload: r.try_get("payload")?,
        attempts: u32::try_from(attempts).map_err(|_| bad(format!("attempts {attempts}")))?,
        created_at: r.try_get("created_at")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_attempt_at: r.try_get("last_attempt_at")?,
        last_status: status
            .map(|s| u16::try_from(s).map_err(|_| bad(format!("status {s}"))))
            .transpose()?,
        last_error: r.try_get("last_error")?,
        delivered_at: r.try_get("delivered_at")?,
        failed_at: r.try_get("failed_at")?,
    })
}

impl Db {
    /// Creates a webhook in the caller's organisation (admins only). The returned
    /// `Secret` is the only time its signing secret is visible.
    pub async fn create_webhook<S: AsRef<str>>(
        &self,
        p: &Principal,
        url: &str,
        events: &[S],
        now: UnixMs,
    ) -> Result<(Webhook, Secret)> {
        check(p, Action::ManageWebhooks, &p.org_id, "webhook")?;
        validate_url(url)?;
        let events = parse_events(events)?;
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM webhooks WHERE org_id = $1")
            .bind(&p.org_id)
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        if count >= WEBHOOKS_PER_ORG_MAX {
            return Err(ValidationError::new(
                "url",
                Problem::OutOfRange {
                    value: count.saturating_add(1),
                    min: 1,
                    max: WEBHOOKS_PER_ORG_MAX,
                },
            )
            .into());
        }
        let (secret, _) = new_secret("whsec")?;
        let hook = Webhook {
            id: new_id("wh")?,
            org_id: p.org_id.clone(),
            url: url.to_owned(),
            events,
            created_at: now,
            disabled: false,
        };
        sqlx::query(
            "INSERT INTO webhooks (id, org_id, url, events, secret, created_at, disabled) \
             VALUES ($1, $2, $3, $4, $5, $6, 0)",
        )
        .bind(&hook.id)
        .bind(&hook.org_id)
        .bind(&hook.url)
        .bind(events_text(&hook.events))
        .bind(secret.expose())
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok((hook, secret))
    }

    /// A webhook of the caller's organisation.
    pub async fn get_webhook(&self, p: &Principal, id: &str) -> Result<Webhook> {
        let row = sqlx::query(concat!(
            "SELECT ",
            webhook_cols!(),
            " FROM webhooks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| ControlError::not_found("webhook"))?;
        let hook = webhook_from_row(&row)?;
        check(p, Action::ManageWebhooks, &hook.org_id, "webhook")?;
        Ok(hook)
    }

    /// The caller's organisation's webhooks, oldest first.
    pub async fn list_webhooks(&self, p: &Principal) -> Result<Vec<Webhook>> {
        check(p, Action::ManageWebhooks, &p.org_id, "webhook")?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            webhook_cols!(),
            " FROM webhooks WHERE org_id = $1 ORDER BY created_at, id"
        ))
        .bind(&p.org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    /// Deletes a webhook and its deliveries (pending ones are dropped).
    pub async fn delete_webhook(&self, p: &Principal, id: &str) -> Result<()> {
        let hook = self.get_webhook(p, id).await?;
        let mut tx = self.pool().begin().await?;
        // Explicit rather than relying on ON DELETE CASCADE being enforced.
        sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
            .bind(&hook.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(&hook.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Disables or re-enables a webhook. A disabled webhook gets no new deliveries;
    /// its pending ones wait until it is enabled again.
    pub async fn set_webhook_disabled(
        &self,
        p: &Principal,
        id: &str,
        disabled: bool,
    ) -> Result<Webhook> {
        let mut hook = self.get_webhook(p, id).await?;
        sqlx::query("UPDATE webhooks SET disabled = $1 WHERE id = $2")
            .bind(i64::from(disabled))
            .bind(&hook.id)
            .execute(self.pool())
            .await?;
        hook.disabled = disabled;
        Ok(hook)
    }

    /// A webhook's deliveries, newest first, `limit` from `offset`.
    pub async fn list_deliveries(
        &self,
        p: &Principal,
        webhook_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Delivery>> {
        let hook = self.get_webhook(p, webhook_id).await?;
        validate::range("limit", limit, 1, 1000)?;
        validate::range("offset", offset, 0, i64::MAX)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            delivery_cols!(),
            " FROM webhook_deliveries d WHERE d.webhook_id = $1 \
             ORDER BY d.created_at DESC, d.id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(&hook.id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// Queues `kind` for every enabled webhook of `org_id` subscribed to it; returns the
    /// new deliveries' ids (none if nobody listens).
    ///
    /// `data` is the event's JSON object (at most [`PAYLOAD_MAX`] bytes), written as is
    /// into the body every receiver gets:
    /// `{"id":"evt_…","type":"<kind>","created_at":<now>,"org_id":"…","data":<data>}`.
    /// The caller serialises it (so it is valid JSON); this only checks it is an object.
    pub async fn enqueue_webhook_event(
        &self,
        org_id: &str,
        kind: WebhookEvent,
        data: &str,
        now: UnixMs,
    ) -> Result<Vec<String>> {
        if data.len() > PAYLOAD_MAX {
            return Err(ValidationError::new(
                "payload",
                Problem::TooLong {
                    len: data.len(),
                    max: PAYLOAD_MAX,
                },
            )
            .into());
        }
        let trimmed = data.trim();
        if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
            return Err(
                ValidationError::new("payload", Problem::Format("must be a JSON object")).into(),
            );
        }
        let rows =
            sqlx::query("SELECT id, events FROM webhooks WHERE org_id = $1 AND disabled = 0")
                .bind(org_id)
                .fetch_all(self.pool())
                .await?;
        let mut targets = Vec::new();
        for r in &rows {
            if events_from_text(&r.try_get::<String, _>("events")?)?.contains(&kind) {
                targets.push(r.try_get::<String, _>("id")?);
            }
        }
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let body = format!(
            "{{\"id\":{},\"type\":{},\"created_at\":{now},\"org_id\":{},\"data\":{trimmed}}}",
            json_string(&new_id("evt")?),
            json_string(kind.as_str()),
            json_string(org_id),
        );
        let mut ids = Vec::with_capacity(targets.len());
        let mut tx = self.pool().begin().await?;
        for webhook_id in &targets {
            let id = new_id("dlv")?;
            sqlx::query(
                "INSERT INTO webhook_deliveries \
                 (id, webhook_id, org_id, event, payload, attempts, created_at, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $6)",
            )
            .bind(&id)
            .bind(webhook_id)
            .bind(org_id)
            .bind(kind.as_str())
            .bind(&body)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Claims up to `limit` deliveries due at `now` (oldest due first) for
    /// [`DELIVERY_LEASE_MS`]: until the caller records an attempt or the lease runs out,
    /// no other call returns them. Deliveries of disabled webhooks wait.
    pub async fn due_deliveries(&self, now: UnixMs, limit: i64) -> Result<Vec<DueDelivery>> {
        validate::range("limit", limit, 1, 1000)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            delivery_cols!(),
            ", w.url, w.secret FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= $1 AND w.disabled = 0 \
             ORDER BY d.next_attempt_at, d.id LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let lease_until = now.saturating_add(DELIVERY_LEASE_MS);
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut delivery = delivery_from_row(r)?;
            // Compare-and-set on the due time: if another dispatcher claimed (or an
            // attempt was recorded) in between, it no longer matches and we skip it.
            let claimed = sqlx::query(
                "UPDATE webhook_deliveries SET next_attempt_at = $1 \
                 WHERE id = $2 AND next_attempt_at = $3",
            )
            .bind(lease_until)
            .bind(&delivery.id)
            .bind(delivery.next_attempt_at)
            .execute(self.pool())
            .await?;
            if claimed.rows_affected() == 1 {
                delivery.next_attempt_at = Some(lease_until);
                out.push(DueDelivery {
                    delivery,
                    url: r.try_get("url")?,
                    secret: Secret::from_client(r.try_get::<String, _>("secret")?),
                });
            }
        }
        Ok(out)
    }

    /// The earliest time a pending delivery of an enabled webhook is due (or its lease
    /// ends), if any: lets a dispatcher sleep exactly until then.
    pub async fn next_delivery_due(&self) -> Result<Option<UnixMs>> {
        let row = sqlx::query(
            "SELECT MIN(d.next_attempt_at) AS t FROM webhook_deliveries d \
             JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.next_attempt_at IS NOT NULL AND w.disabled = 0",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("t")?)
    }

    /// Records one attempt at a delivery. A delivery already finished (or deleted with
    /// its webhook) is left alone.
    pub async fn record_delivery_attempt(
        &self,
        delivery_id: &str,
        result: &AttemptResult,
        now: UnixMs,
    ) -> Result<()> {
        let (status, error, next, delivered, failed) = match result {
            AttemptResult::Delivered { status } => (Some(*status), None, None, Some(now), None),
            AttemptResult::Retry {
                status,
                error,
                next_attempt_at,
            } => (
                *status,
                Some(clip_error(error)),
                Some(*next_attempt_at),
                None,
                None,
            ),
            AttemptResult::GaveUp { status, error } => {
                (*status, Some(clip_error(error)), None, None, Some(now))
            }
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_attempt_at = $1, \
             last_status = $2, last_error = $3, next_attempt_at = $4, delivered_at = $5, \
             failed_at = $6 WHERE id = $7 AND delivered_at IS NULL AND failed_at IS NULL",
        )
        .bind(now)
        .bind(status.map(i64::from))
        .bind(error)
        .bind(next)
        .bind(delivered)
        .bind(failed)
        .bind(delivery_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes finished deliveries (delivered or failed) that ended before `before`;
    /// returns how many. Pending ones are kept whatever their age.
    pub async fn prune_deliveries(&self, before: UnixMs) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE next_attempt_at IS NULL \
             AND ((delivered_at IS NOT NULL AND delivered_at < $1) \
               OR (failed_at IS NOT NULL AND failed_at < $1))",
        )
        .bind(before)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for ok in [
            "http://127.0.0.1:8080/hook",
            "https://example.org",
            "HTTPS://example.org/a?b=c",
            "http://[::1]:9000/x",
            &format!("https://example.org/{}", "a".repeat(URL_MAX - 20)),
        ] {
            assert_eq!(validate_url(ok), Ok(()), "{ok}");
        }
        let long = format!("https://example.org/{}", "a".repeat(URL_MAX));
        for (bad, want) in [
            ("", "must not be empty"),
            ("ftp://example.org/", "http:// or https://"),
            ("example.org/hook", "http:// or https://"),
            ("javascript:alert(1)", "http:// or https://"),
            ("https://user:pw@example.org/", "credentials"),
            ("https://token@example.org/", "credentials"),
            ("https:///path", "must name a host"),
            ("https://:80/", "must name a host"),
            ("https://example.org:99999/", "port"),
            ("https://example.org:0/", "port"),
            ("https://example.org/a b", "not allowed"),
            ("https://example.org/\n", "not allowed"),
            ("https://exämple.org/", "not allowed"),
            ("https://example.org/#frag", "fragment"),
            ("http://[::1/", "IPv6"),
            (long.as_str(), "exceeds the limit of 2048"),
        ] {
            let e = validate_url(bad).unwrap_err();
            assert_eq!(e.field, "url");
            assert!(e.to_string().contains(want), "{bad:?}: {e}");
        }
    }

    #[test]
    fn event_lists() {
        assert_eq!(
            parse_events(&["stream.ended", "stream.started", "stream.ended"]).unwrap(),
            vec![WebhookEvent::StreamStarted, WebhookEvent::StreamEnded]
        );
        assert_eq!(
            parse_events::<&str>(&[]).unwrap_err().problem,
            Problem::Empty
        );
        let e = parse_events(&["stream.started", "stream.exploded"]).unwrap_err();
        assert_eq!(e.field, "events");
        assert!(matches!(e.problem, Problem::NotOneOf { .. }));
        for k in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::parse(k.as_str()), Ok(k));
        }
        let all = WebhookEvent::ALL.to_vec();
        assert_eq!(events_from_text(&events_text(&all)).unwrap(), all);
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
        assert_eq!(clip_error(&"é".repeat(400)).len(), ERROR_MAX);
    }
}
