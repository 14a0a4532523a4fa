//! The one error shape of the API: `{"error": {"code", "message", "field"?}}`.
//!
//! Every refusal goes through [`ApiError`], including axum's own rejections (bad JSON,
//! wrong content type, oversized body, bad path or query). Messages never carry a
//! secret, token, password or hash; internal failures are logged here (their `Display`
//! holds no bound values) and answered with a generic 500.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use starling_control::{AuthError, ControlError};

/// Longest client-influenced text (e.g. serde's description of a bad body) put in a message.
const MESSAGE_MAX: usize = 300;

/// An API error: status, stable code, human message, optional offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`not_found`, `validation`, …).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// The request field at fault, for validation errors.
    pub field: Option<&'static str>,
    /// Seconds for `Retry-After` (throttling).
    pub retry_after_secs: Option<i64>,
}

impl ApiError {
    /// An error without field or retry hint.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: clip(message.into()),
            field: None,
            retry_after_secs: None,
        }
    }

    /// 401: no valid credentials.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "authentication required: a valid session cookie or `Authorization: Bearer` API token",
        )
    }

    /// 400 for a named field.
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(StatusCode::BAD_REQUEST, "validation", message)
        }
    }

    /// 404 for an unknown route.
    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
    }
}

fn clip(mut s: String) -> String {
    if s.len() > MESSAGE_MAX {
        let mut end = MESSAGE_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Validation(v) => ApiError::validation(v.field, v.to_string()),
            ControlError::Auth(AuthError::Throttled { retry_after_ms, .. }) => ApiError {
                // Ceiling to whole seconds, at least 1.
                retry_after_secs: Some(retry_after_ms.saturating_add(999).max(1000) / 1000),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "throttled", e.to_string())
            },
            // One generic answer: never reveal whether an account, token or session exists.
            ControlError::Auth(_) => ApiError::unauthenticated(),
            ControlError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            ControlError::Forbidden { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
            }
            ControlError::Conflict { field } => ApiError {
                field: Some(field),
                ..ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            },
            other => {
                tracing::error!(error = %other, "control plane failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "request body exceeds the limit of {} bytes",
                    crate::BODY_LIMIT
                ),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected `Content-Type: application/json`",
            ),
            _ => ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", r.body_text()),
        }
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(f) = self.field {
            body["field"] = json!(f);
        }
        let mut resp = (self.status, axum::Json(json!({ "error": body }))).into_response();
        if let Some(s) = self.retry_after_secs {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// Middleware for the whole server: responses to `/api/` paths that an outer layer or
/// the server's fallback produced (e.g. the path guard's plain-text 400) get the API's
/// error shape too, as the OpenAPI document promises. Other paths pass untouched.
pub async fn api_error_shape(req: Request, next: Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    if is_api {
        reshape(resp).await
    } else {
        resp
    }
}

/// Headers of a bare error response worth keeping when it is reshaped.
const KEPT_HEADERS: [header::HeaderName; 3] =
    [header::ALLOW, header::RETRY_AFTER, header::CACHE_CONTROL];

/// Gives a non-JSON error response the API's shape; anything else is returned as is.
/// A short plain-text body (a layer's own explanation, e.g. "malformed path") becomes
/// the message, except for 5xx, whose message stays generic.
pub(crate) async fn reshape(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_text = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    let (parts, body) = resp.into_parts();
    let (code, generic) = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "method not allowed on this route")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body too large"),
        StatusCode::NOT_FOUND => ("not_found", "not found"),
        StatusCode::UNAUTHORIZED => ("unauthenticated", "authentication required"),
        StatusCode::FORBIDDEN => ("forbidden", "forbidden"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "unsupported media type"),
        StatusCode::TOO_MANY_REQUESTS => ("throttled", "too many requests"),
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("bad_request", "bad request"),
    };
    let text = if is_text && !status.is_server_error() {
        // Bounded read: a longer body is not an explanation worth relaying.
        axum::body::to_bytes(body, MESSAGE_MAX)
            .await
            .ok()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty() && !t.chars().any(char::is_control))
    } else {
        None
    };
    let mut out =
        ApiError::new(status, code, text.unwrap_or_else(|| generic.to_owned())).into_response();
    for name in KEPT_HEADERS {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_char_boundaries() {
        let s = clip("é".repeat(400));
        assert!(s.len() <= MESSAGE_MAX + '…'.len_utf8());
        assert!(s.ends_with('…'));
        assert_eq!(clip("short".into()), "short");
    }

    #[test]
    fn throttle_rounds_up_to_seconds() {
        let e: ApiError = ControlError::Auth(AuthError::Throttled {
            scope: "account",
            retry_after_ms: 1_001,
        })
        .into();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after_secs, Some(2));
        let e: ApiError = ControlError::Auth(AuthError::Throttled {
            scope: "address",
            retry_after_ms: 1,
        })
        .into();
        assert_eq!(e.retry_after_secs, Some(1));
    }
}
