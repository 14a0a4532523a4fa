//! `GET /api/v1/live/{channel}/reframe`: a reframed channel's status, its window's path
//! (from `?since_ms=`, media time) and its highlights, for apps that reframe the
//! landscape rendition themselves. Listed like `/api/v1/live`: a private channel is
//! found by its organisation's members only.

use axum::{
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;
use starling_api::ApiError;

use crate::http::AppState;

pub async fn path(
    State(st): State<AppState>,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut since_ms = i64::MIN;
    for pair in query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "since_ms" {
            continue;
        }
        match value.parse() {
            Ok(v) => since_ms = v,
            Err(_) => {
                return ApiError::validation(
                    "since_ms",
                    "since_ms must be an integer (ms of media time)",
                )
                .into_response()
            }
        }
    }
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "channel {channel:?} is not reframed on this node (it has not been live here, or it asks for neither reframe nor highlights)"
            ),
        )
        .into_response()
    };
    if let Some(gate) = &st.gate {
        let org = starling_api::extract::principal_of(&st.db, &headers, crate::auth::now_ms())
            .await
            .map(|p| p.org_id);
        if !gate.listed(&channel, org.as_deref()).await {
            return not_found();
        }
    }
    let (Some(status), Some((path, highlights, clips))) = (
        st.reframes.status(&channel),
        st.reframes.path(&channel, since_ms),
    ) else {
        return not_found();
    };
    let highlights: Vec<_> = highlights
        .iter()
        .map(|h| {
            json!({
                "peak_ms": h.peak / 90,
                "start_ms": h.start / 90,
                "end_ms": h.end / 90,
                "score": (h.score * 100.0).round() / 100.0,
                "cause": h.cause,
            })
        })
        .collect();
    (
        [(header::CACHE_CONTROL, "private, no-cache")],
        Json(json!({ "status": status, "path": path, "highlights": highlights, "clips": clips })),
    )
        .into_response()
}
