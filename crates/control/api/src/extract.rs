//! Extractors: the caller's principal, the TCP peer, and JSON / path / query wrappers
//! whose rejections speak the API's error shape.
//!
//! Credentials are read from `Authorization: Bearer <api token>` or the
//! `starling_session` cookie and never logged. The peer address comes only from the
//! connection (`ConnectInfo`), never from a header a client can forge.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use starling_control::Principal;

use crate::error::ApiError;
use crate::ApiState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "starling_session";

/// The authenticated caller; rejects with 401.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

/// The value of the session cookie, if the request has one.
pub(crate) fn session_cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == SESSION_COOKIE && !v.is_empty()).then_some(v)
        })
}

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(v) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| ApiError::unauthenticated())?;
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::unauthenticated()),
    }
}

/// The signed-in principal behind `headers`, if any: a bearer API token, else the
/// session cookie. Missing, malformed, expired or revoked credentials all give `None`.
///
/// For the node's routes that serve everyone but show members more (the live list, the
/// live-state stream): they never refuse, so a bad credential is just anonymous.
pub async fn principal_of(
    db: &starling_control::Db,
    headers: &axum::http::HeaderMap,
    now: starling_control::UnixMs,
) -> Option<Principal> {
    let mut parts = axum::http::Request::new(()).into_parts().0;
    parts.headers = headers.clone();
    let result = match bearer(&parts) {
        Ok(Some(token)) => db.authenticate_api_token(token, now).await,
        Ok(None) => db.authenticate_session(session_cookie(&parts)?, now).await,
        Err(_) => return None,
    };
    result.ok()
}

impl FromRequestParts<ApiState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &ApiState) -> Result<Self, ApiError> {
        let now = (st.now)();
        // An explicit bearer token wins; a bad one is not rescued by a cookie.
        let result = if let Some(token) = bearer(parts)? {
            st.db.authenticate_api_token(token, now).await
        } else if let Some(secret) = session_cookie(parts) {
            st.db.authenticate_session(secret, now).await
        } else {
            return Err(ApiError::unauthenticated());
        };
        result.map(Auth).map_err(ApiError::from)
    }
}

/// The TCP peer's IP address as text, or `unknown` when the server was not started
/// with connect info.
#[derive(Debug, Clone)]
pub struct PeerAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
        Ok(PeerAddr(addr))
    }
}

/// `axum::Json` with API-shaped rejections.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, st: &S) -> Result<Self, ApiError> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, st).await?;
        Ok(Json(v))
    }
}

/// Longest id accepted in a path or body (ids are `{kind}_{24 hex digits}`).
pub const ID_MAX: usize = 64;

/// Whether `s` could be an id. Anything else cannot exist, and must not reach the
/// database (PostgreSQL refuses NUL in text: that would be a 500).
pub fn plausible_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= ID_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// An id from a body field: 400 naming the field if it cannot be an id.
pub fn body_id<'a>(field: &'static str, s: Option<&'a str>) -> Result<Option<&'a str>, ApiError> {
    match s {
        Some(v) if !plausible_id(v) => Err(ApiError::validation(
            field,
            format!("invalid `{field}`: not an id (1-{ID_MAX} of A-Z a-z 0-9 _ -)"),
        )),
        other => Ok(other),
    }
}

/// The `{id}` path segment; 404 if it cannot be an id.
#[derive(Debug, Clone)]
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, st).await?;
        if plausible_id(&id) {
            Ok(Id(id))
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "no resource has this id",
            ))
        }
    }
}

/// `axum::extract::Path` with API-shaped rejections.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(v) =
            axum::extract::Path::<T>::from_request_parts(parts, st).await?;
        Ok(Path(v))
    }
}

/// `?limit=&offset=` of a listing. Parsed by hand (axum's `Query` would pull in
/// another dependency): unknown parameters are ignored, a bad number is a 400 naming it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Page {
    /// `limit`, if given.
    pub limit: Option<i64>,
    /// `offset`, if given.
    pub offset: Option<i64>,
}

impl Page {
    /// `(limit, offset)` with the listing defaults filled in (the repositories check the
    /// bounds and name the field).
    pub fn limit_offset(self) -> (i64, i64) {
        (
            self.limit.unwrap_or(crate::handlers::PAGE_DEFAULT),
            self.offset.unwrap_or(0),
        )
    }

    /// The page object every listing answers: `{"items", "limit", "offset"}`.
    pub fn body(self, items: Vec<serde_json::Value>) -> serde_json::Value {
        let (limit, offset) = self.limit_offset();
        serde_json::json!({ "items": items, "limit": limit, "offset": offset })
    }

    /// Parses a query string (without `?`).
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let mut page = Page::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (field, slot) = match k {
                "limit" => ("limit", &mut page.limit),
                "offset" => ("offset", &mut page.offset),
                _ => continue,
            };
            let n = v.parse::<i64>().map_err(|_| {
                ApiError::validation(field, format!("invalid `{field}`: must be an integer"))
            })?;
            *slot = Some(n);
        }
        Ok(page)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Page::parse(parts.uri.query().unwrap_or(""))
    }
}

/// `deserialize_with` helpers for request bodies, so that what the handlers accept is
/// what the OpenAPI document says (a schema-driven client sends exactly that):
///
/// - an optional field that is not `nullable` in the document refuses an explicit
///   `null` (serde's `Option` would take it as "absent");
/// - an `integer` accepts any JSON number with no fractional part (`5.0` is an integer
///   in JSON Schema; serde's `i64` refuses it).
pub(crate) mod de {
    use serde::de::{Deserialize, Deserializer, Error, Visitor};
    use std::fmt;

    /// An optional field that may be absent (with `#[serde(default)]`) but not `null`.
    pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        T::deserialize(d).map(Some)
    }

    /// An integer (see [`Int`]).
    pub(crate) fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        Int::deserialize(d).map(|Int(v)| v)
    }

    /// An optional integer that may be absent but not `null`.
    pub(crate) fn present_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        int(d).map(Some)
    }

    /// An optional integer where `null` is a value of its own (`Some(None)`: "unset
    /// it"), for PATCH fields; absent is `None` (with `#[serde(default)]`).
    pub(crate) fn present_nullable_int<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<i64>>, D::Error> {
        Option::<Int>::deserialize(d).map(|o| Some(o.map(|Int(v)| v)))
    }

    /// An optional integer where `null` means absent.
    pub(crate) fn nullable_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<Int>::deserialize(d).map(|o| o.map(|Int(v)| v))
    }

    /// A JSON Schema `integer` that fits in an `i64`: `7`, `7.0` and `7e3` are integers,
    /// `7.5` is not.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Int(pub i64);

    impl<'de> Deserialize<'de> for Int {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(IntVisitor)
        }
    }

    struct IntVisitor;

    /// 2^63 as an `f64`: every integral `f64` in `[-2^63, 2^63)` converts exactly.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;

    impl Visitor<'_> for IntVisitor {
        type Value = Int;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer")
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<Int, E> {
            Ok(Int(v))
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<Int, E> {
            i64::try_from(v).map(Int).map_err(|_| {
                E::custom(format!(
                    "integer {v} is out of range (at most {})",
                    i64::MAX
                ))
            })
        }

        fn visit_f64<E: Error>(self, v: f64) -> Result<Int, E> {
            if v.fract() != 0.0 || !v.is_finite() {
                return Err(E::invalid_type(serde::de::Unexpected::Float(v), &self));
            }
            if !(-TWO_63..TWO_63).contains(&v) {
                return Err(E::custom(format!("integer {v} is out of range")));
            }
            #[allow(clippy::cast_possible_truncation)] // integral and in range: exact
            Ok(Int(v as i64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::de;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "de::present_int")]
        a: Option<i64>,
        #[serde(default, deserialize_with = "de::nullable_int")]
        b: Option<i64>,
        #[serde(default, deserialize_with = "de::present")]
        c: Option<String>,
    }

    type Fields = (Option<i64>, Option<i64>, Option<String>);

    fn parse(s: &str) -> Result<Fields, String> {
        serde_json::from_str::<T>(s)
            .map(|t| (t.a, t.b, t.c))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn integers_as_json_schema_counts_them() {
        assert_eq!(parse(r#"{"a": 7}"#).unwrap().0, Some(7));
        assert_eq!(parse(r#"{"a": 7.0}"#).unwrap().0, Some(7));
        assert_eq!(parse(r#"{"a": 7e3}"#).unwrap().0, Some(7000));
        assert_eq!(parse(r#"{"a": -0.0}"#).unwrap().0, Some(0));
        assert_eq!(
            parse(r#"{"a": -9223372036854775808.0}"#).unwrap().0,
            Some(i64::MIN)
        );
        assert_eq!(
            parse(r#"{"a": 9223372036854775807}"#).unwrap().0,
            Some(i64::MAX)
        );
        for bad in [
            "7.5",
            "\"7\"",
            "9223372036854775808",
            "9.3e18",
            "1e400",
            "true",
        ] {
            assert!(parse(&format!(r#"{{"a": {bad}}}"#)).is_err(), "{bad}");
        }
    }

    #[test]
    fn null_only_where_nullable() {
        assert_eq!(parse("{}").unwrap(), (None, None, None));
        assert!(parse(r#"{"a": null}"#).unwrap_err().contains("null"));
        assert!(parse(r#"{"c": null}"#).unwrap_err().contains("null"));
        assert_eq!(parse(r#"{"b": null}"#).unwrap().1, None);
        assert_eq!(
            parse(r#"{"b": 3.0, "c": "x"}"#).unwrap(),
            (None, Some(3), Some("x".into()))
        );
    }
}
