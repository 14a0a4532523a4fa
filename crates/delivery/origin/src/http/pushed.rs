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

pub type PushedFuture<'a> = Pin<Box<dyn Future<Output = Option<PushedObject>> + Send + 'a>>;

/// An object as an external packager pushed it.
#[derive(Debug, Clone)]
pub struct PushedObject {
    pub body: Bytes,
    pub content_type: &'static str,
    pub cache_control: &'static str,
}

/// Where pushed objects are found.
pub trait PushedSource: Send + Sync + 'static {
    /// Whether anything was pushed to `channel`, from memory: a request for a channel
    /// nobody pushes to is served as if there were no pushed objects at all (no store
    /// read, no second admission).
    fn knows(&self, channel: &str) -> bool;
    /// The object at `path` (`file` or `dir/file`, already checked by the router's
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

/// The pushed object's response, or `None` when there is none.
pub(super) async fn lookup(
    pushed: &dyn PushedSource,
    channel: &str,
    path: &str,
) -> Option<Response> {
    let o = pushed.get(channel, path).await?;
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
