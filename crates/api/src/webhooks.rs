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

/// Default page size of the deliveries listing.
const PAGE_DEFAULT: i64 = 50;

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
    let limit = q.limit.unwrap_or(PAGE_DEFAULT);
    let offset = q.offset.unwrap_or(0);
    let items: Vec<Value> = st
        .db
        .list_deliveries(&p, &id, limit, offset)
        .await?
        .iter()
        .map(delivery_view)
        .collect();
    Ok(axum::Json(json!({ "items": items, "limit": limit, "offset": offset })).into_response())
}

// ---- OpenAPI ----

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn op(summary: &str, ok: (&str, Value), errors: &[&str]) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(ok.0.to_owned(), ok.1);
    for code in ["400", "401", "403"].iter().chain(errors) {
        let desc = match *code {
            "400" => "Invalid input (the field is named).",
            "401" => "Not authenticated.",
            "403" => "The caller's role may not do this (admins only).",
            "404" => "Not found (or another organisation's).",
            "413" => "Body over 1 MiB.",
            "415" => "Body is not JSON.",
            _ => "Error.",
        };
        responses.insert(
            (*code).to_owned(),
            json!({ "description": desc, "content": content(r("Error")) }),
        );
    }
    json!({
        "summary": summary,
        "security": [{ "bearer": [] }, { "session": [] }],
        "responses": responses,
    })
}

fn ok(status: &'static str, desc: &str, schema: Value) -> (&'static str, Value) {
    (
        status,
        json!({ "description": desc, "content": content(schema) }),
    )
}

fn id_param() -> Value {
    json!([{
        "name": "id", "in": "path", "required": true, "description": "The webhook's id.",
        "schema": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$" }
    }])
}

/// Adds the webhook paths and schemas to the OpenAPI document.
pub(crate) fn add_to_openapi(doc: &mut Value) {
    let ts = json!({ "type": "integer", "format": "int64", "description": "Unix time, ms." });
    let nts = json!({ "type": ["integer", "null"], "format": "int64" });
    let str_ = json!({ "type": "string" });
    let kind = json!({ "type": "string", "enum": ["stream.started", "stream.ended", "event.state_changed", "recording.ready"] });
    let webhook_props = json!({
        "id": str_, "org_id": str_,
        "url": { "type": "string", "description": "Deliveries are POSTed here." },
        "events": { "type": "array", "items": kind },
        "active": { "type": "boolean" },
        "created_at": ts
    });
    let webhook_required = json!(["id", "org_id", "url", "events", "active", "created_at"]);
    let mut created_props = webhook_props.clone();
    created_props["secret"] = json!({ "type": "string", "description": "The signing secret (`whsec_…`); shown only in this response." });
    let mut created_required = webhook_required.clone();
    if let Some(a) = created_required.as_array_mut() {
        a.push(json!("secret"));
    }
    let schemas = json!({
        "WebhookEventKind": kind,
        "Webhook": {
            "type": "object", "additionalProperties": false,
            "required": webhook_required, "properties": webhook_props
        },
        "WebhookCreated": {
            "type": "object", "additionalProperties": false,
            "required": created_required, "properties": created_props
        },
        "WebhookList": {
            "type": "object", "additionalProperties": false, "required": ["items"],
            "properties": { "items": { "type": "array", "items": r("Webhook") } }
        },
        "NewWebhook": {
            "type": "object", "additionalProperties": false, "required": ["url", "events"],
            "properties": {
                "url": { "type": "string", "minLength": 8, "maxLength": 2048, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[!-~]+$",
                         "description": "http:// or https://, no credentials, no fragment. This build delivers over plain HTTP only." },
                "events": { "type": "array", "minItems": 1, "maxItems": 16, "items": r("WebhookEventKind") }
            }
        },
        "WebhookDelivery": {
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
        },
        "WebhookDeliveryPage": {
            "type": "object", "additionalProperties": false, "required": ["items", "limit", "offset"],
            "properties": {
                "items": { "type": "array", "items": r("WebhookDelivery") },
                "limit": { "type": "integer" }, "offset": { "type": "integer" }
            }
        }
    });
    let page_params = json!([
        { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 50 } },
        { "name": "offset", "in": "query", "required": false, "schema": { "type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX, "default": 0 } }
    ]);
    let list = op(
        "The organisation's webhooks (no secrets).",
        ok("200", "Webhooks.", r("WebhookList")),
        &[],
    );
    let mut create = op(
        "Create a webhook; the signing secret is in this response only.",
        ok("201", "Created.", r("WebhookCreated")),
        &["413", "415"],
    );
    create["requestBody"] = json!({ "required": true, "content": content(r("NewWebhook")) });
    let delete = op(
        "Delete a webhook and its deliveries (pending ones are dropped).",
        ("204", json!({ "description": "Deleted." })),
        &["404"],
    );
    let mut deliveries = op(
        "A webhook's deliveries and their attempts.",
        ok("200", "A page, newest first.", r("WebhookDeliveryPage")),
        &["404"],
    );
    deliveries["parameters"] = page_params;
    let paths = json!({
        "/api/v1/webhooks": { "get": list, "post": create },
        "/api/v1/webhooks/{id}": { "parameters": id_param(), "delete": delete },
        "/api/v1/webhooks/{id}/deliveries": { "parameters": id_param(), "get": deliveries }
    });
    for (section, add) in [("paths", paths), ("components/schemas", schemas)] {
        let target = section.split('/').fold(&mut *doc, |v, k| &mut v[k]);
        if let (Some(t), Value::Object(add)) = (target.as_object_mut(), add) {
            t.extend(add);
        }
    }
}
