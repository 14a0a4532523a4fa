//! Objects an external packager pushed over HTTP PUT (`starling-http-put`), served under
//! the channel's stable prefix, `/live/{channel}/{path}`, so that the playlist it
//! uploaded resolves its relative URIs there. The origin only knows them through
//! [`PushedSource`]; the gate applies as to everything else under `/live/{channel}/`.
//!
//! Precedence: a channel live in this origin (RTMP, SRT) is served from its own state;
//! the pushed objects of a channel are consulted only when it is not live here, and
//! only paths the origin's own layout does not name otherwise (`manifest.mpd`, the
//! posters) are left to the origin in every case.

use std::{future::Future, pin::Pin};

use axum::{
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use bytes::Bytes;

use super::{admit_channel, error, Served};

pub type PushedFuture<'a> = Pin<Box<dyn Future<Output = PushedReply> + Send + 'a>>;

/// An object as an external packager pushed it.
#[derive(Debug, Clone)]
pub struct PushedObject {
    pub body: Bytes,
    pub content_type: &'static str,
    pub cache_control: &'static str,
}

/// How a request for a pushed path is answered.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PushedReply {
    /// 200 with the object.
    Object(PushedObject),
    /// Nothing pushed under that name: answered as if there were no pushed objects.
    Missing,
    /// A segment of a live event not due yet: 404, cacheable for `max_age` seconds
    /// (until it is due), with no store read behind it.
    NotYet { max_age: u32 },
    /// A number the event never has, or one past its retry deadline and not stored:
    /// 410, cacheable for `max_age` seconds.
    Gone { max_age: u32 },
}

/// Where pushed objects are found.
pub trait PushedSource: Send + Sync + 'static {
    /// Whether anything was pushed to `channel`, from memory: a request for a channel
    /// nobody pushes to is served as if there were no pushed objects at all (no store
    /// read, no second admission).
    fn knows(&self, channel: &str) -> bool;
    /// The answer for `path` (`file` or `dir/file`, already checked by the router's
    /// syntax rules) of a channel it [`knows`](Self::knows).
    fn get<'a>(&'a self, channel: &'a str, path: &'a str) -> PushedFuture<'a>;
}

/// Whether the pushed objects may answer for `channel`: something was pushed to it,
/// and it is not live here.
pub(super) fn consult<'a>(served: &'a Served, channel: &str) -> Option<&'a dyn PushedSource> {
    let pushed = served.pushed.as_deref().filter(|p| p.knows(channel))?;
    let live_here = served.origin.channel(channel).is_some_and(|c| c.is_live());
    (!live_here).then_some(pushed)
}

/// The pushed object's response (or the event's 404 or 410), or `None` when there is
/// none.
pub(super) async fn lookup(
    pushed: &dyn PushedSource,
    channel: &str,
    path: &str,
) -> Option<Response> {
    let o = match pushed.get(channel, path).await {
        PushedReply::Object(o) => o,
        PushedReply::Missing => return None,
        PushedReply::NotYet { max_age } => {
            return Some(ranged(StatusCode::NOT_FOUND, "not yet published", max_age))
        }
        PushedReply::Gone { max_age } => {
            return Some(ranged(
                StatusCode::GONE,
                "outside the live event's segments",
                max_age,
            ))
        }
    };
    let mut r = o.body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(o.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(o.cache_control),
    );
    Some(r)
}

/// An answer from a live event's range: `max_age` is computed (the time until the segment
/// is due), so not one of the static `Cache-Control` values of [`error`].
fn ranged(status: StatusCode, msg: &str, max_age: u32) -> Response {
    let mut r = error(status, msg, "no-store");
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    r
}

/// `/live/{channel}/{file}`: only pushed objects live at this depth.
pub(super) async fn file(
    State(served): State<Served>,
    Path((name, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let admitted = match admit_channel(&served, &name, query.as_deref(), &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let found = match consult(&served, &name) {
        Some(p) => lookup(p, &name, &file).await,
        None => None,
    };
    let r = found.unwrap_or_else(|| error(StatusCode::NOT_FOUND, "no such object", NOT_FOUND));
    admitted.finish(r)
}

/// How long a 404 for a pushed path may be cached: briefly, a packager may upload it
/// next.
pub(super) const NOT_FOUND: &str = "public, max-age=1";

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(PushedReply);

    impl PushedSource for Fixed {
        fn knows(&self, _: &str) -> bool {
            true
        }
        fn get<'a>(&'a self, _: &'a str, _: &'a str) -> PushedFuture<'a> {
            let r = self.0.clone();
            Box::pin(async move { r })
        }
    }

    async fn answer(reply: PushedReply) -> Option<(StatusCode, String)> {
        let r = lookup(&Fixed(reply), "news", "index5.m4s").await?;
        let cc = r.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .to_owned();
        Some((r.status(), cc))
    }

    #[tokio::test]
    async fn an_events_range_answers_with_its_status_and_max_age() {
        assert_eq!(
            answer(PushedReply::NotYet { max_age: 17 }).await,
            Some((StatusCode::NOT_FOUND, "public, max-age=17".into()))
        );
        assert_eq!(
            answer(PushedReply::Gone { max_age: 3600 }).await,
            Some((StatusCode::GONE, "public, max-age=3600".into()))
        );
        assert_eq!(answer(PushedReply::Missing).await, None);
        let found = answer(PushedReply::Object(PushedObject {
            body: Bytes::from_static(b"x"),
            content_type: "video/mp4",
            cache_control: "public, max-age=60",
        }))
        .await;
        assert_eq!(found, Some((StatusCode::OK, "public, max-age=60".into())));
    }
}
