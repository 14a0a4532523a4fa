//! Scheduled events: CRUD for broadcasters, and the public prefetch document.
//!
//! The prefetch document (`GET /api/v1/events/{id}/prefetch`, also at
//! `/api/events/{id}/prefetch`) is what a client fetches well before kickoff: title,
//! artwork, schedule, where to play, where to listen for state triggers. It is long
//! cacheable (see `starling_live_state::prefetch_cache_headers`) and carries a strong
//! ETag (the event's revision), so at kickoff a device needs nothing but one trigger.
//! Public and unlisted channels' events need no credentials; a private channel's need a
//! principal allowed to watch it, or a playback token for it (`?token=`), and are cached
//! by the browser only.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use starling_control::{can, Action, ControlError, Event, EventUpdate, NewEvent, Visibility};
use starling_live_state::{prefetch_cache_headers, PrefetchAudience, LIVE_STATE_PATH};

use crate::error::ApiError;
use crate::extract::{body_id, de, session_cookie, Auth, Id, Json, Page};
use crate::ApiState;

type ApiResult = Result<Response, ApiError>;

pub(crate) fn event_view(e: &Event) -> Value {
    json!({
        "id": e.id, "org_id": e.org_id, "channel_id": e.channel_id, "channel": e.channel,
        "title": e.title, "artwork_url": e.artwork_url,
        "scheduled_start": e.scheduled_start, "scheduled_end": e.scheduled_end,
        "preshow_lead_secs": e.preshow_lead_secs, "state": e.state.as_str(),
        "state_changed_at": e.state_changed_at, "revision": e.revision,
        "created_at": e.created_at, "updated_at": e.updated_at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewEventBody {
    channel_id: String,
    title: String,
    #[serde(default, deserialize_with = "de::present")]
    artwork_url: Option<String>,
    #[serde(deserialize_with = "de::int")]
    scheduled_start: i64,
    #[serde(deserialize_with = "de::int")]
    scheduled_end: i64,
    #[serde(default, deserialize_with = "de::present_int")]
    preshow_lead_secs: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventPatch {
    #[serde(default, deserialize_with = "de::present")]
    title: Option<String>,
    /// `null` removes the artwork; absent leaves it.
    #[serde(default, deserialize_with = "de::present")]
    artwork_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "de::present_int")]
    scheduled_start: Option<i64>,
    #[serde(default, deserialize_with = "de::present_int")]
    scheduled_end: Option<i64>,
    #[serde(default, deserialize_with = "de::present_int")]
    preshow_lead_secs: Option<i64>,
}

pub(crate) async fn list_events(State(st): State<ApiState>, Auth(p): Auth, q: Page) -> ApiResult {
    let (limit, offset) = q.limit_offset();
    let items: Vec<Value> = st
        .db
        .list_events(&p, limit, offset)
        .await?
        .iter()
        .map(event_view)
        .collect();
    Ok(axum::Json(q.body(items)).into_response())
}

pub(crate) async fn create_event(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Json(b): Json<NewEventBody>,
) -> ApiResult {
    let channel_id = body_id("channel_id", Some(&b.channel_id))?.unwrap_or_default();
    let new = NewEvent {
        channel_id: channel_id.to_owned(),
        title: b.title,
        artwork_url: b.artwork_url,
        scheduled_start: b.scheduled_start,
        scheduled_end: b.scheduled_end,
        preshow_lead_secs: b.preshow_lead_secs,
    };
    let ev = st.db.create_event(&p, &new, (st.now)()).await?;
    Ok((StatusCode::CREATED, axum::Json(event_view(&ev))).into_response())
}

pub(crate) async fn get_event(State(st): State<ApiState>, Auth(p): Auth, Id(id): Id) -> ApiResult {
    Ok(axum::Json(event_view(&st.db.get_event(&p, &id).await?)).into_response())
}

pub(crate) async fn update_event(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Id(id): Id,
    Json(b): Json<EventPatch>,
) -> ApiResult {
    let update = EventUpdate {
        title: b.title,
        artwork_url: b.artwork_url,
        scheduled_start: b.scheduled_start,
        scheduled_end: b.scheduled_end,
        preshow_lead_secs: b.preshow_lead_secs,
    };
    let ev = st.db.update_event(&p, &id, &update, (st.now)()).await?;
    Ok(axum::Json(event_view(&ev)).into_response())
}

pub(crate) async fn cancel_event(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Id(id): Id,
) -> ApiResult {
    let ev = st.db.cancel_event(&p, &id, (st.now)()).await?;
    Ok(axum::Json(event_view(&ev)).into_response())
}

pub(crate) async fn delete_event(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Id(id): Id,
) -> ApiResult {
    st.db.delete_event(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The `token` query parameter, if any (a playback token).
fn query_token(parts: &Parts) -> Option<&str> {
    parts
        .uri
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .filter(|t| !t.is_empty())
}

pub(crate) async fn prefetch(
    State(st): State<ApiState>,
    Id(id): Id,
    req: axum::extract::Request,
) -> ApiResult {
    let not_found = || ApiError::from(ControlError::NotFound { what: "event" });
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
    let ev = st.db.event_by_id(&id).await?.ok_or_else(not_found)?;
    let audience = match ev.visibility {
        Visibility::Public | Visibility::Unlisted => PrefetchAudience::Public,
        Visibility::Private => {
            let (mut parts, _) = req.into_parts();
            let allowed = if let Some(token) = query_token(&parts) {
                let signer = st.db.playback_signer().await?;
                signer.verify(token, &ev.channel, (st.now)()).is_ok()
            } else if parts.headers.contains_key(header::AUTHORIZATION)
                || session_cookie(&parts).is_some()
            {
                // Credentials that fail to authenticate are a 401 like anywhere else.
                let Auth(p) = Auth::from_request_parts(&mut parts, &st).await?;
                can(&p, Action::Watch, &ev.org_id)
            } else {
                false
            };
            if !allowed {
                // Same answer as a missing event: a private event's existence is not told.
                return Err(not_found());
            }
            PrefetchAudience::Private
        }
    };
    let mut headers: HeaderMap =
        prefetch_cache_headers(audience, &format!("{}-{}", ev.id, ev.revision));
    if audience == PrefetchAudience::Private {
        // The answer depends on the caller's credentials.
        headers.insert(
            header::VARY,
            header::HeaderValue::from_static("Accept-Encoding, Authorization, Cookie"),
        );
    }
    // A client revalidating what it already holds gets a 304 without a body.
    if let (Some(inm), Some(etag)) = (if_none_match, headers.get(header::ETAG)) {
        let matches = inm.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == etag)
        });
        if matches {
            return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
        }
    }
    Ok(prefetch_response(&ev, headers))
}

fn prefetch_response(ev: &Event, headers: HeaderMap) -> Response {
    let body = json!({
        "event": {
            "id": ev.id, "channel": ev.channel, "title": ev.title,
            "artwork_url": ev.artwork_url, "scheduled_start": ev.scheduled_start,
            "scheduled_end": ev.scheduled_end, "preshow_lead_secs": ev.preshow_lead_secs,
            "state": ev.state.as_str(), "state_changed_at": ev.state_changed_at,
            "revision": ev.revision,
        },
        "playback": {
            "hls": format!("/live/{}/index.m3u8", ev.channel),
            "watch": format!("/watch/{}", ev.channel),
            "token_required": ev.visibility == Visibility::Private,
        },
        "live_state": { "url": LIVE_STATE_PATH, "event_id": ev.id },
    });
    (headers, axum::Json(body)).into_response()
}

/// This module's OpenAPI paths and schemas.
pub(crate) fn openapi() -> crate::openapi::Section {
    use crate::openapi::{
        body, error_resp, id_links, id_param, json_content, op, page_of, page_params, r, resp, with,
    };
    let ts = json!({ "type": "integer", "format": "int64", "description": "Unix time, ms." });
    let when = json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": starling_control::events::TIME_MAX_MS, "description": "Unix time, ms." });
    let lead = json!({ "type": "integer", "minimum": 0, "maximum": starling_control::events::PRESHOW_LEAD_MAX_SECS });
    let title = crate::openapi::text(200);
    let url = json!({ "type": "string", "minLength": 8, "maxLength": 2048, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[!-~]+$", "description": "http(s), printable ASCII (percent-encoded), no credentials." });
    let state = json!({ "type": "string", "enum": ["scheduled", "pre_show", "live", "delayed", "ended", "cancelled"] });
    let body_errors = ["404", "409", "413", "415"];
    let prefetch = json!({
        "summary": "Everything a client needs about an event, fetched ahead of kickoff (long cacheable, ETag = revision). Public and unlisted channels' events need no credentials; private ones need a principal allowed to watch or `?token=` (a playback token).",
        "security": [{}, { "bearer": [] }, { "session": [] }],
        "parameters": [{ "name": "token", "in": "query", "required": false, "schema": { "type": "string", "maxLength": 512 } }],
        "responses": {
            "200": {
                "description": "The prefetch document.",
                "headers": {
                    "ETag": { "schema": { "type": "string" } },
                    "Cache-Control": { "schema": { "type": "string" } }
                },
                "content": json_content(r("Prefetch"))
            },
            "304": { "description": "Not modified (If-None-Match matched)." },
            "401": error_resp("Credentials given but not valid."),
            "404": error_resp("No such event (or a private one the caller may not watch).")
        }
    });
    let paths = vec![
        (
            "/api/v1/events",
            json!({
                "get": with(op("The organisation's events, latest start first.", ("200", resp("A page.", r("EventPage"))), &[]),
                    "parameters", page_params()),
                "post": with(op("Schedule an event on a channel.", ("201", id_links(resp("Created.", r("Event")), &[
                    ("GetEvent", "/api/v1/events/{id}", "get"), ("PatchEvent", "/api/v1/events/{id}", "patch"),
                    ("CancelEvent", "/api/v1/events/{id}/cancel", "post"), ("DeleteEvent", "/api/v1/events/{id}", "delete"),
                    ("Prefetch", "/api/v1/events/{id}/prefetch", "get"), ("PrefetchAlias", "/api/events/{id}/prefetch", "get")])), &body_errors),
                    "requestBody", body(r("NewEvent")))
            }),
        ),
        (
            "/api/v1/events/{id}",
            json!({
                "parameters": id_param("event"),
                "get": op("An event.", ("200", resp("The event.", r("Event"))), &["404"]),
                "patch": with(op("Change an event that has not ended (moving the start announces a delay).",
                    ("200", resp("The event.", r("Event"))), &body_errors), "requestBody", body(r("EventPatch"))),
                "delete": op("Delete an event.", ("204", json!({ "description": "Deleted." })), &["404"])
            }),
        ),
        (
            "/api/v1/events/{id}/cancel",
            json!({
                "parameters": id_param("event"),
                "post": op("Cancel an event; clients are told at once.", ("200", resp("The event.", r("Event"))), &["404", "409"])
            }),
        ),
        (
            "/api/v1/events/{id}/prefetch",
            json!({ "parameters": id_param("event"), "get": prefetch.clone() }),
        ),
        (
            "/api/events/{id}/prefetch",
            json!({ "parameters": id_param("event"), "get": prefetch }),
        ),
    ];
    let schemas = vec![
        ("EventState", state.clone()),
        (
            "Event",
            json!({
                "type": "object", "additionalProperties": false,
                "required": ["id", "org_id", "channel_id", "channel", "title", "artwork_url", "scheduled_start", "scheduled_end", "preshow_lead_secs", "state", "state_changed_at", "revision", "created_at", "updated_at"],
                "properties": {
                    "id": { "type": "string" }, "org_id": { "type": "string" },
                    "channel_id": { "type": "string" }, "channel": { "type": "string" },
                    "title": { "type": "string" }, "artwork_url": { "type": ["string", "null"] },
                    "scheduled_start": ts, "scheduled_end": ts,
                    "preshow_lead_secs": { "type": "integer" }, "state": r("EventState"),
                    "state_changed_at": ts, "revision": { "type": "integer" },
                    "created_at": ts, "updated_at": ts
                }
            }),
        ),
        ("EventPage", page_of("Event")),
        (
            "NewEvent",
            json!({
                "type": "object", "additionalProperties": false,
                "required": ["channel_id", "title", "scheduled_start", "scheduled_end"],
                "properties": {
                    "channel_id": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$" },
                    "title": title, "artwork_url": url,
                    "scheduled_start": when, "scheduled_end": when, "preshow_lead_secs": lead
                }
            }),
        ),
        (
            "EventPatch",
            json!({
                "type": "object", "additionalProperties": false,
                "properties": {
                    "title": title, "artwork_url": { "oneOf": [url, { "type": "null" }] },
                    "scheduled_start": when, "scheduled_end": when, "preshow_lead_secs": lead
                }
            }),
        ),
        (
            "Prefetch",
            json!({
                "type": "object", "additionalProperties": false, "required": ["event", "playback", "live_state"],
                "properties": {
                    "event": {
                        "type": "object", "additionalProperties": false,
                        "required": ["id", "channel", "title", "artwork_url", "scheduled_start", "scheduled_end", "preshow_lead_secs", "state", "state_changed_at", "revision"],
                        "properties": {
                            "id": { "type": "string" }, "channel": { "type": "string" },
                            "title": { "type": "string" }, "artwork_url": { "type": ["string", "null"] },
                            "scheduled_start": ts, "scheduled_end": ts,
                            "preshow_lead_secs": { "type": "integer" }, "state": r("EventState"),
                            "state_changed_at": ts, "revision": { "type": "integer" }
                        }
                    },
                    "playback": {
                        "type": "object", "additionalProperties": false, "required": ["hls", "watch", "token_required"],
                        "properties": { "hls": { "type": "string" }, "watch": { "type": "string" }, "token_required": { "type": "boolean" } }
                    },
                    "live_state": {
                        "type": "object", "additionalProperties": false, "required": ["url", "event_id"],
                        "properties": { "url": { "type": "string" }, "event_id": { "type": "string" } }
                    }
                }
            }),
        ),
    ];
    (paths, schemas)
}
