//! Users and organisations: admins manage their organisation's users; the system
//! organisation's admins create organisations and manage users anywhere.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use starling_control::{Org, Role, User};

use crate::error::ApiError;
use crate::extract::{body_id, de, plausible_id, Auth, Id, Json, Page};
use crate::ApiState;

type ApiResult = Result<Response, ApiError>;

pub(crate) fn user_view(u: &User) -> Value {
    json!({
        "id": u.id, "org_id": u.org_id, "email": u.email, "role": u.role.as_str(),
        "disabled": u.disabled, "created_at": u.created_at,
    })
}

pub(crate) fn org_view(o: &Org) -> Value {
    json!({ "id": o.id, "name": o.name, "is_system": o.system, "created_at": o.created_at })
}

fn role(s: &str) -> Result<Role, ApiError> {
    Role::parse(s).ok_or_else(|| {
        ApiError::validation(
            "role",
            "invalid `role`: must be one of: admin, broadcaster, viewer",
        )
    })
}

/// `?org_id=` of the user listing (the caller's organisation when absent).
fn org_param(query: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(v) = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("org_id="))
    else {
        return Ok(None);
    };
    if !plausible_id(v) {
        return Err(ApiError::validation(
            "org_id",
            "invalid `org_id`: not an id (1-64 of A-Z a-z 0-9 _ -)",
        ));
    }
    Ok(Some(v.to_owned()))
}

pub(crate) async fn list_users(
    State(st): State<ApiState>,
    Auth(p): Auth,
    q: Page,
    uri: axum::http::Uri,
) -> ApiResult {
    let org = org_param(uri.query())?.unwrap_or_else(|| p.org_id.clone());
    let (limit, offset) = q.limit_offset();
    let items: Vec<Value> = st
        .db
        .list_users(&p, &org, limit, offset)
        .await?
        .iter()
        .map(user_view)
        .collect();
    Ok(axum::Json(q.body(items)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserBody {
    email: String,
    password: String,
    role: String,
    #[serde(default, deserialize_with = "de::present")]
    org_id: Option<String>,
}

pub(crate) async fn create_user(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Json(b): Json<NewUserBody>,
) -> ApiResult {
    let role = role(&b.role)?;
    let org = body_id("org_id", b.org_id.as_deref())?.unwrap_or(&p.org_id);
    let user = st
        .db
        .create_user(&p, org, &b.email, &b.password, role, (st.now)())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(user_view(&user))).into_response())
}

pub(crate) async fn get_user(State(st): State<ApiState>, Auth(p): Auth, Id(id): Id) -> ApiResult {
    Ok(axum::Json(user_view(&st.db.get_user(&p, &id).await?)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatch {
    #[serde(default, deserialize_with = "de::present")]
    disabled: Option<bool>,
}

pub(crate) async fn update_user(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Id(id): Id,
    Json(b): Json<UserPatch>,
) -> ApiResult {
    if let Some(disabled) = b.disabled {
        if disabled && id == p.user_id {
            // Locking oneself out is never what an admin means.
            return Err(ApiError::validation(
                "disabled",
                "you cannot disable your own account",
            ));
        }
        st.db
            .set_user_disabled(&p, &id, disabled, (st.now)())
            .await?;
    }
    Ok(axum::Json(user_view(&st.db.get_user(&p, &id).await?)).into_response())
}

pub(crate) async fn list_orgs(State(st): State<ApiState>, Auth(p): Auth, q: Page) -> ApiResult {
    let (limit, offset) = q.limit_offset();
    let items: Vec<Value> = st
        .db
        .list_orgs(&p, limit, offset)
        .await?
        .iter()
        .map(org_view)
        .collect();
    Ok(axum::Json(q.body(items)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOrgBody {
    name: String,
}

pub(crate) async fn create_org(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Json(b): Json<NewOrgBody>,
) -> ApiResult {
    let org = st.db.create_org(&p, &b.name, (st.now)()).await?;
    Ok((StatusCode::CREATED, axum::Json(org_view(&org))).into_response())
}

/// This module's OpenAPI paths and schemas.
pub(crate) fn openapi() -> crate::openapi::Section {
    use crate::openapi::{body, id_links, id_param, op, page_of, page_params, r, resp, with};
    let ts = json!({ "type": "integer", "format": "int64", "description": "Unix time, ms." });
    let id_schema =
        json!({ "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$" });
    let role = json!({ "type": "string", "enum": ["admin", "broadcaster", "viewer"] });
    let body_errors = ["404", "409", "413", "415"];
    let mut list_params = page_params();
    if let Some(a) = list_params.as_array_mut() {
        a.push(json!({
            "name": "org_id", "in": "query", "required": false,
            "description": "Another organisation (system admins only); default: the caller's.",
            "schema": id_schema
        }));
    }
    let paths = vec![
        (
            "/api/v1/users",
            json!({
                "get": with(op("Users of an organisation (admins).", ("200", resp("A page.", r("UserPage"))), &["404"]),
                    "parameters", list_params),
                "post": with(op("Create a user (admins; system admins in any organisation).",
                    ("201", id_links(resp("Created.", r("User")), &[
                    ("GetUser", "/api/v1/users/{id}", "get"), ("PatchUser", "/api/v1/users/{id}", "patch")])), &body_errors), "requestBody", body(r("NewUser")))
            }),
        ),
        (
            "/api/v1/users/{id}",
            json!({
                "parameters": id_param("user"),
                "get": op("A user.", ("200", resp("The user.", r("User"))), &["404"]),
                "patch": with(op("Disable or re-enable a user (disabling revokes its sessions and tokens).",
                    ("200", resp("The user.", r("User"))), &body_errors), "requestBody", body(r("UserPatch")))
            }),
        ),
        (
            "/api/v1/orgs",
            json!({
                "get": with(op("Organisations: all for system admins, else the caller's.", ("200", resp("A page.", r("OrgPage"))), &[]),
                    "parameters", page_params()),
                "post": with(op("Create an organisation (system admins).", ("201", resp("Created.", r("Org"))), &body_errors),
                    "requestBody", body(r("NewOrg")))
            }),
        ),
    ];
    let schemas = vec![
        (
            "User",
            json!({
                "type": "object", "additionalProperties": false,
                "required": ["id", "org_id", "email", "role", "disabled", "created_at"],
                "properties": {
                    "id": { "type": "string" }, "org_id": { "type": "string" },
                    "email": { "type": "string" }, "role": role, "disabled": { "type": "boolean" },
                    "created_at": ts
                }
            }),
        ),
        ("UserPage", page_of("User")),
        (
            "NewUser",
            json!({
                "type": "object", "additionalProperties": false, "required": ["email", "password", "role"],
                "properties": {
                    "email": { "type": "string", "minLength": 3, "maxLength": 254, "pattern": "^[^@\\s]+@[^@\\s]+$" },
                    "password": { "type": "string", "minLength": 8, "maxLength": 1024 },
                    "role": role,
                    "org_id": id_schema
                }
            }),
        ),
        (
            "UserPatch",
            json!({
                "type": "object", "additionalProperties": false,
                "properties": { "disabled": { "type": "boolean" } }
            }),
        ),
        (
            "Org",
            json!({
                "type": "object", "additionalProperties": false,
                "required": ["id", "name", "is_system", "created_at"],
                "properties": {
                    "id": { "type": "string" }, "name": { "type": "string" },
                    "is_system": { "type": "boolean" }, "created_at": ts
                }
            }),
        ),
        ("OrgPage", page_of("Org")),
        (
            "NewOrg",
            json!({
                "type": "object", "additionalProperties": false, "required": ["name"],
                "properties": {
                    "name": crate::openapi::text(100)
                }
            }),
        ),
    ];
    (paths, schemas)
}
