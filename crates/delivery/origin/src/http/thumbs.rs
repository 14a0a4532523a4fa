//! `/live/{channel}/thumb.jpg` and `…/thumb-small.jpg`: the channel's newest pictures,
//! behind the same gate as its media (a private channel's poster needs a token).

use super::objects::media_response;
use super::*;

/// A poster changes every few seconds: caches may keep it that long.
const THUMB_CACHE: &str = "public, max-age=5";

pub(super) async fn poster(
    State(served): State<Served>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    thumbnail(served, name, query, headers, false).await
}

pub(super) async fn small(
    State(served): State<Served>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    thumbnail(served, name, query, headers, true).await
}

async fn thumbnail(
    served: Served,
    name: String,
    query: Option<String>,
    headers: HeaderMap,
    small: bool,
) -> Response {
    let admitted = match admit_channel(&served, &name, query.as_deref(), &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let origin = &served.origin;
    let r = if let Some(reason) = origin.thumbnails_off_reason() {
        error(
            StatusCode::NOT_FOUND,
            &format!("this node makes no thumbnails: {reason}"),
            "public, max-age=60",
        )
    } else {
        match origin.channel(&name) {
            None => error(
                StatusCode::NOT_FOUND,
                "unknown channel",
                "public, max-age=5",
            ),
            Some(ch) => match lock(&ch.thumbnails).clone() {
                None => error(StatusCode::NOT_FOUND, "no thumbnail yet", NOT_YET),
                Some(t) => {
                    let (data, kind) = if small {
                        (t.small, "s")
                    } else {
                        (t.poster, "p")
                    };
                    let etag = format!("\"{}-{}-{kind}\"", session_name(t.session), t.msn);
                    media_response(data, &etag, "image/jpeg", THUMB_CACHE, &headers)
                }
            },
        }
    };
    admitted.finish(r)
}
