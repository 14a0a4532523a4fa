//! Webhook endpoints: `GET/POST /api/v1/webhooks`, `DELETE /api/v1/webhooks/{id}`,
//! `GET /api/v1/webhooks/{id}/deliveries`, and their part of the OpenAPI document.
//!
//! Admins only (`Action::ManageWebhooks`); another organisation's webhook is 404. The
//! signing secret appears in the `POST` response and nowhere else.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use starling_control::{Delivery, Webhook};

use crate::error::ApiError;
use crate::extract::{Auth, Id, Json, Page};
use crate::ApiState;

type ApiResult = Result<Response, ApiError>;

fn webhook_view(w: &Webhook) -> Value {
    json!({
        "id": w.id, "org_id": w.org_id, "url": w.url,
        "events": w.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "active": !w.disabled, "created_at": w.created_at,
    })
}

fn delivery_view(d: &Delivery) -> Value {
    // The stored body is JSON we wrote; show it as JSON (null if it ever is not).
    let payload: Value = serde_json::from_str(&d.payload).unwrap_or(Value::Null);
    json!({
        "id": d.id, "webhook_id": d.webhook_id, "event": d.event.as_str(),
        "state": d.state().as_str(), "attempts": d.attempts, "created_at": d.created_at,
        "next_attempt_at": d.next_attempt_at, "last_attempt_at": d.last_attempt_at,
        "last_status": d.last_status, "last_error": d.last_error,
        "delivered_at": d.delivered_at, "failed_at": d.failed_at, "payload": payload,
    })
}

pub(crate) async fn list(State(st): State<ApiState>, Auth(p): Auth) -> ApiResult {
    let items: Vec<Value> = st
        .db
        .list_webhooks(&p)
        .await?
        .iter()
        .map(webhook_view)
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewWebhookBody {
    url: String,
    events: Vec<String>,
}

pub(crate) async fn create(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Json(b): Json<NewWebhookBody>,
) -> ApiResult {
    // Refused before anything is stored: a literal private address or a local name
    // (names are resolved and checked again at every delivery).
    if let Err(e) = st.webhook_targets.check_url(&b.url) {
        return Err(ApiError::validation("url", e.to_string()));
    }
    let (hook, secret) = st
        .db
        .create_webhook(&p, &b.url, &b.events, (st.now)())
        .await?;
    let mut v = webhook_view(&hook);
    v["secret"] = json!(secret.expose());
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

pub(crate) async fn delete(State(st): State<ApiState>, Auth(p): Auth, Id(id): Id) -> ApiResult {
    st.db.delete_webhook(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn deliveries(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Id(id): Id,
    q: Page,
) -> ApiResult {
    let (limit, offset) = q.limit_offset();
    let items: Vec<Value> = st
        .db
        .list_deliveries(&p, &id, limit, offset)
        .await?
        .iter()
        .map(delivery_view)
        .collect();
    Ok(axum::Json(q.body(items)).into_response())
}

// ---- OpenAPI ----

/// The webhook paths and schemas of the OpenAPI document.
pub(crate) fn openapi() -> crate::openapi::Section {
    use crate::openapi::{body, id_param, op, page_of, page_params, r, resp, with, with_secret};
    let ts = json!({ "type": "integer", "format": "int64", "description": "Unix time, ms." });
    let nts = json!({ "type": ["integer", "null"], "format": "int64" });
    let str_ = json!({ "type": "string" });
    let kind = json!({ "type": "string", "enum": ["stream.started", "stream.ended", "event.state_changed", "recording.ready", "clip.created"] });
    let webhook = json!({
        "type": "object", "additionalProperties": false,
        "required": ["id", "org_id", "url", "events", "active", "created_at"],
        "properties": {
            "id": str_, "org_id": str_,
            "url": { "type": "string", "description": "Deliveries are POSTed here." },
            "events": { "type": "array", "items": kind },
            "active": { "type": "boolean" },
            "created_at": ts
        }
    });
    let created = with_secret(
        &webhook,
        "The signing secret (`whsec_…`); shown only in this response.",
    );
    let schemas = vec![
        ("WebhookEventKind", kind.clone()),
        ("Webhook", webhook),
        ("WebhookCreated", created),
        ("WebhookList", crate::openapi::list_of("Webhook")),
        (
            "NewWebhook",
            json!({
                "type": "object", "additionalProperties": false, "required": ["url", "events"],
                "properties": {
                    "url": { "type": "string", "minLength": 8, "maxLength": 2048, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[!-~]+$",
                             "description": "http:// or https://, no credentials, no fragment. This build delivers over plain HTTP only." },
                    "events": { "type": "array", "minItems": 1, "maxItems": 16, "items": r("WebhookEventKind") }
                }
            }),
        ),
        (
            "WebhookDelivery",
            json!({
                "type": "object", "additionalProperties": false,
                "required": ["id", "webhook_id", "event", "state", "attempts", "created_at", "next_attempt_at", "last_attempt_at", "last_status", "last_error", "delivered_at", "failed_at", "payload"],
                "properties": {
                    "id": { "type": "string", "description": "Sent as `Starling-Delivery`; the same on every retry." },
                    "webhook_id": str_, "event": kind,
                    "state": { "type": "string", "enum": ["pending", "delivered", "failed"] },
                    "attempts": { "type": "integer", "minimum": 0 },
                    "created_at": ts, "next_attempt_at": nts, "last_attempt_at": nts,
                    "last_status": { "type": ["integer", "null"] },
                    "last_error": { "type": ["string", "null"] },
                    "delivered_at": nts, "failed_at": nts,
                    "payload": { "type": ["object", "null"], "description": "The body sent: {id, type, created_at, org_id, data}." }
                }
            }),
        ),
        ("WebhookDeliveryPage", page_of("WebhookDelivery")),
    ];
    let list = op(
        "The organisation's webhooks (no secrets).",
        ("200", resp("Webhooks.", r("WebhookList"))),
        &[],
    );
    let create = with(
        op(
            "Create a webhook; the signing secret is in this response only.",
            ("201", resp("Created.", r("WebhookCreated"))),
            &["413", "415"],
        ),
        "requestBody",
        body(r("NewWebhook")),
    );
    let delete = op(
        "Delete a webhook and its deliveries (pending ones are dropped).",
        ("204", json!({ "description": "Deleted." })),
        &["404"],
    );
    let deliveries = with(
        op(
            "A webhook's deliveries and their attempts.",
            (
                "200",
                resp("A page, newest first.", r("WebhookDeliveryPage")),
            ),
            &["404"],
        ),
        "parameters",
        page_params(),
    );
    let paths = vec![
        ("/api/v1/webhooks", json!({ "get": list, "post": create })),
        (
            "/api/v1/webhooks/{id}",
            json!({ "parameters": id_param("webhook"), "delete": delete }),
        ),
        (
            "/api/v1/webhooks/{id}/deliveries",
            json!({ "parameters": id_param("webhook"), "get": deliveries }),
        ),
    ];
    (paths, schemas)
}
