//! Request handlers: parse, call one `Db` method with the caller's principal, render.
//!
//! Handlers never build SQL and never log a request body. One-time secrets (API
//! tokens, stream keys) are put only in the response of the call that created them.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use starling_control::validate;
use starling_control::{
    ApiTokenInfo, Channel, ChannelUpdate, Device, DeviceKind, LatencyMode, NewChannel, Principal,
    Secret, StreamKeyInfo, Visibility,
};

use crate::error::ApiError;
use crate::extract::{body_id, de, session_cookie, Auth, Id, Json, Page, PeerAddr, SESSION_COOKIE};
use crate::ApiState;

/// Session lifetime: 7 days.
pub const SESSION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// Default and maximum page size of listings.
pub const PAGE_DEFAULT: i64 = 50;
/// Longest playback token lifetime: one day.
pub const PLAYBACK_TTL_MAX_SECS: i64 = 24 * 3600;

type ApiResult = Result<Response, ApiError>;

fn created(v: Value) -> ApiResult {
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

fn ok(v: Value) -> ApiResult {
    Ok(axum::Json(v).into_response())
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- views (the only shapes that leave the API) ----

pub(crate) fn principal_view(p: &Principal) -> Value {
    json!({"user_id": p.user_id, "org_id": p.org_id, "role": p.role.as_str(), "system": p.system})
}

fn token_view(t: &ApiTokenInfo) -> Value {
    json!({
        "id": t.id, "user_id": t.user_id, "name": t.name, "prefix": t.prefix,
        "created_at": t.created_at, "expires_at": t.expires_at,
        "last_used_at": t.last_used_at, "revoked_at": t.revoked_at,
    })
}

fn channel_view(c: &Channel) -> Value {
    json!({
        "id": c.id, "org_id": c.org_id, "name": c.name, "title": c.title,
        "visibility": c.visibility.as_str(), "latency_mode": c.latency_mode.as_str(),
        "ladder": c.ladder, "recording": c.recording, "dvr_window_secs": c.dvr_window_secs,
        // The passphrase is a secret: never returned, only whether there is one.
        "srt_encrypted": c.srt_passphrase.is_some(),
        "srt_pbkeylen": c.srt_passphrase.as_ref().and_then(|s| s.pbkeylen),
        "reframe": c.reframing.reframe, "reframe_subject": c.reframing.subject,
        "highlights": c.reframing.highlights,
        "highlight_sensitivity": c.reframing.sensitivity,
        "created_at": c.created_at, "updated_at": c.updated_at,
    })
}

fn device_view(d: &Device) -> Value {
    json!({
        "id": d.id, "org_id": d.org_id, "channel_id": d.channel_id, "name": d.name,
        "kind": d.kind.as_str(), "state": d.state.as_str(), "last_seen_at": d.last_seen_at,
        "created_at": d.created_at, "revoked_at": d.revoked_at,
    })
}

fn key_view(k: &StreamKeyInfo) -> Value {
    json!({
        "id": k.id, "org_id": k.org_id, "device_id": k.device_id, "channel_id": k.channel_id,
        "prefix": k.prefix, "created_at": k.created_at, "revoked_at": k.revoked_at,
        "last_used_at": k.last_used_at, "last_used_addr": k.last_used_addr,
    })
}

/// A view plus the one-time secret.
fn with_secret(mut v: Value, secret: &Secret) -> Value {
    v["secret"] = json!(secret.expose());
    v
}

// ---- auth ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    email: String,
    password: String,
}

fn session_cookie_header(value: &str, max_age_secs: i64) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}"
    ))
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    })
}

pub(crate) async fn login(
    State(st): State<ApiState>,
    PeerAddr(addr): PeerAddr,
    Json(b): Json<LoginBody>,
) -> ApiResult {
    let now = (st.now)();
    let p = st.db.login(&b.email, &b.password, &addr, now).await?;
    let (_, secret) = st.db.create_session(&p, SESSION_TTL_MS, now).await?;
    let cookie = session_cookie_header(secret.expose(), SESSION_TTL_MS / 1000)?;
    let mut resp = axum::Json(principal_view(&p)).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(resp)
}

pub(crate) async fn logout(State(st): State<ApiState>, req: axum::extract::Request) -> ApiResult {
    let (parts, _) = req.into_parts();
    if let Some(secret) = session_cookie(&parts) {
        st.db.logout(secret, (st.now)()).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie_header("", 0)?);
    Ok(resp)
}

pub(crate) async fn me(Auth(p): Auth) -> ApiResult {
    ok(principal_view(&p))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTokenBody {
    name: String,
    #[serde(default, deserialize_with = "de::nullable_int")]
    expires_at: Option<i64>,
}

pub(crate) async fn create_token(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Json(b): Json<NewTokenBody>,
) -> ApiResult {
    let (info, secret) = st
        .db
        .create_api_token(&p, &b.name, b.expires_at, (st.now)())
        .await?;
    created(with_secret(token_view(&info), &secret))
}

pub(crate) async fn list_tokens(State(st): State<ApiState>, Auth(p): Auth) -> ApiResult {
    let items: Vec<Value> = st
        .db
        .list_api_tokens(&p)
        .await?
        .iter()
        .map(token_view)
        .collect();
    ok(json!({ "items": items }))
}

pub(crate) async fn revoke_token(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Id(id): Id,
) -> ApiResult {
    st.db.revoke_api_token(&p, &id, (st.now)()).await?;
    no_content()
}

// ---- channels ----

pub(crate) async fn list_channels(State(st): State<ApiState>, Auth(p): Auth, q: Page) -> ApiResult {
    let (limit, offset) = q.limit_offset();
    let items: Vec<Value> = st
        .db
        .list_channels(&p, limit, offset)
        .await?
        .iter()
        .map(channel_view)
        .collect();
    ok(q.body(items))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewChannelBody {
    name: String,
    #[serde(default, deserialize_with = "de::present")]
    title: Option<String>,
    #[serde(default, deserialize_with = "de::present")]
    visibility: Option<String>,
    #[serde(default, deserialize_with = "de::present")]
    latency_mode: Option<String>,
    #[serde(default, deserialize_with = "de::present")]
    ladder: Option<String>,
    #[serde(default, deserialize_with = "de::present")]
    recording: Option<bool>,
    #[serde(default, deserialize_with = "de::present_int")]
    dvr_window_secs: Option<i64>,
    #[serde(default, deserialize_with = "de::present")]
    srt_passphrase: Option<String>,
    #[serde(default, deserialize_with = "de::present_int")]
    srt_pbkeylen: Option<i64>,
    #[serde(default, deserialize_with = "de::present")]
    reframe: Option<bool>,
    #[serde(default, deserialize_with = "de::present")]
    reframe_subject: Option<String>,
    #[serde(default, deserialize_with = "de::present")]
    highlights: Option<bool>,
    #[serde(default, deserialize_with = "de::present")]
    highlight_sensitivity: Option<f64>,
}

pub(crate) async fn create_channel(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Json(b): Json<NewChannelBody>,
) -> ApiResult {
    let mut new = NewChannel::named(b.name);
    if let Some(t) = b.title {
        new.title = t;
    }
    if let Some(v) = b.visibility {
        new.visibility = Visibility::parse(&v).map_err(starling_control::ControlError::from)?;
    }
    if let Some(l) = b.latency_mode {
        new.latency_mode = LatencyMode::parse(&l).map_err(starling_control::ControlError::from)?;
    }
    if let Some(l) = b.ladder {
        new.ladder = l;
    }
    new.recording = b.recording.unwrap_or(new.recording);
    new.dvr_window_secs = b.dvr_window_secs.unwrap_or(new.dvr_window_secs);
    new.srt_passphrase = b.srt_passphrase.map(Secret::from_client);
    new.srt_pbkeylen = b.srt_pbkeylen;
    let r = &mut new.reframing;
    r.reframe = b.reframe.unwrap_or(r.reframe);
    r.highlights = b.highlights.unwrap_or(r.highlights);
    if let Some(s) = b.reframe_subject {
        r.subject = s;
    }
    r.sensitivity = b.highlight_sensitivity.unwrap_or(r.sensitivity);
    let ch = st.db.create_channel(&p, &new, (st.now)()).await?;
    created(channel_view(&ch))
}

pub(crate) async fn get_channel(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Id(id): Id,
) -> ApiResult {
    ok(channel_view(&st.db.get_channel(&p, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChannelPatch {
    #[serde(default, deserialize_with = "de::present")]
    title: Option<String>,
    #[serde(default, deserialize_with = "de::present")]
    visibility: Option<String>,
    #[serde(default, deserialize_with = "de::present")]
    latency_mode: Option<String>,
    #[serde(default, deserialize_with = "de::present")]
    ladder: Option<String>,
    #[serde(default, deserialize_with = "de::present")]
    recording: Option<bool>,
    #[serde(default, deserialize_with = "de::present_int")]
    dvr_window_secs: Option<i64>,
    /// `null` removes the passphrase; absent leaves it.
    #[serde(default, deserialize_with = "de::present")]
    srt_passphrase: Option<Option<String>>,
    /// `null` returns to the node's key length; absent leaves it.
    #[serde(default, deserialize_with = "de::present_nullable_int")]
    srt_pbkeylen: Option<Option<i64>>,
    #[serde(default, deserialize_with = "de::present")]
    reframe: Option<bool>,
    #[serde(default, deserialize_with = "de::present")]
    reframe_subject: Option<String>,
    #[serde(default, deserialize_with = "de::present")]
    highlights: Option<bool>,
    #[serde(default, deserialize_with = "de::present")]
    highlight_sensitivity: Option<f64>,
}

pub(crate) async fn update_channel(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Id(id): Id,
    Json(b): Json<ChannelPatch>,
) -> ApiResult {
    let parse = |e: starling_control::ValidationError| starling_control::ControlError::from(e);
    let update = ChannelUpdate {
        title: b.title,
        visibility: b
            .visibility
            .as_deref()
            .map(Visibility::parse)
            .transpose()
            .map_err(parse)?,
        latency_mode: b
            .latency_mode
            .as_deref()
            .map(LatencyMode::parse)
            .transpose()
            .map_err(parse)?,
        ladder: b.ladder,
        recording: b.recording,
        dvr_window_secs: b.dvr_window_secs,
        srt_passphrase: b.srt_passphrase.map(|p| p.map(Secret::from_client)),
        srt_pbkeylen: b.srt_pbkeylen,
        reframe: b.reframe,
        reframe_subject: b.reframe_subject,
        highlights: b.highlights,
        highlight_sensitivity: b.highlight_sensitivity,
    };
    let ch = st.db.update_channel(&p, &id, &update, (st.now)()).await?;
    ok(channel_view(&ch))
}

pub(crate) async fn delete_channel(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Id(id): Id,
) -> ApiResult {
    st.db.delete_channel(&p, &id).await?;
    no_content()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlaybackBody {
    #[serde(deserialize_with = "de::int")]
    ttl_secs: i64,
    #[serde(default, deserialize_with = "de::present")]
    viewer_id: Option<String>,
}

pub(crate) async fn create_playback_token(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Id(id): Id,
    Json(b): Json<PlaybackBody>,
) -> ApiResult {
    validate::range("ttl_secs", b.ttl_secs, 1, PLAYBACK_TTL_MAX_SECS)
        .map_err(starling_control::ControlError::from)?;
    // Viewers may watch what they may not manage.
    let ch = st.db.channel_for_watch(&p, &id).await?;
    let expires_at = (st.now)().saturating_add(b.ttl_secs.saturating_mul(1000));
    let signer = st.db.playback_signer().await?;
    let token = signer
        .sign(&ch.name, expires_at, b.viewer_id.as_deref())
        .map_err(starling_control::ControlError::from)?;
    created(json!({ "token": token, "expires_at": expires_at, "channel_id": ch.id }))
}

// ---- devices and keys ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewDeviceBody {
    name: String,
    #[serde(default, deserialize_with = "de::present")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "de::present")]
    channel_id: Option<String>,
}

pub(crate) async fn list_devices(State(st): State<ApiState>, Auth(p): Auth) -> ApiResult {
    let items: Vec<Value> = st
        .db
        .list_devices(&p, (st.now)())
        .await?
        .iter()
        .map(device_view)
        .collect();
    ok(json!({ "items": items }))
}

pub(crate) async fn create_device(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Json(b): Json<NewDeviceBody>,
) -> ApiResult {
    let kind = match b.kind.as_deref() {
        Some(k) => DeviceKind::parse(k).map_err(starling_control::ControlError::from)?,
        None => DeviceKind::Encoder,
    };
    let dev = st
        .db
        .create_device(
            &p,
            &b.name,
            kind,
            body_id("channel_id", b.channel_id.as_deref())?,
            (st.now)(),
        )
        .await?;
    created(device_view(&dev))
}

pub(crate) async fn get_device(State(st): State<ApiState>, Auth(p): Auth, Id(id): Id) -> ApiResult {
    ok(device_view(&st.db.get_device(&p, &id, (st.now)()).await?))
}

pub(crate) async fn revoke_device(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Id(id): Id,
) -> ApiResult {
    st.db.revoke_device(&p, &id, (st.now)()).await?;
    no_content()
}

pub(crate) async fn list_keys(State(st): State<ApiState>, Auth(p): Auth, Id(id): Id) -> ApiResult {
    let items: Vec<Value> = st
        .db
        .list_stream_keys(&p, &id)
        .await?
        .iter()
        .map(key_view)
        .collect();
    ok(json!({ "items": items }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKeyBody {
    #[serde(default, deserialize_with = "de::present")]
    channel_id: Option<String>,
}

pub(crate) async fn create_key(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Id(id): Id,
    Json(b): Json<NewKeyBody>,
) -> ApiResult {
    let (info, secret) = st
        .db
        .create_stream_key(
            &p,
            &id,
            body_id("channel_id", b.channel_id.as_deref())?,
            (st.now)(),
        )
        .await?;
    created(with_secret(key_view(&info), &secret))
}

pub(crate) async fn rotate_key(State(st): State<ApiState>, Auth(p): Auth, Id(id): Id) -> ApiResult {
    let (info, secret) = st.db.rotate_stream_key(&p, &id, (st.now)()).await?;
    created(with_secret(key_view(&info), &secret))
}

pub(crate) async fn revoke_key(State(st): State<ApiState>, Auth(p): Auth, Id(id): Id) -> ApiResult {
    st.db.revoke_stream_key(&p, &id, (st.now)()).await?;
    no_content()
}

// ---- misc ----

pub(crate) async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}

pub(crate) async fn no_route() -> ApiError {
    ApiError::no_route()
}

/// Gives axum's bare 405 (and any other non-JSON error from a layer) the API's shape.
pub(crate) async fn shape_bare_errors(resp: Response) -> Response {
    crate::error::reshape(resp).await
}
