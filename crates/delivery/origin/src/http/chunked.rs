//! A segment sent while it is being written: the response starts with the parts cut so
//! far and goes on, with chunked transfer, a part at a time as the packager cuts them,
//! until the segment is complete. This is how low-latency DASH players (and CDNs that
//! pass chunked responses through) get a segment from its first part on, from the same
//! URL and bytes as the whole segment.
//!
//! If the segment cannot be finished (its parts left memory, or no part came for three
//! target durations) the body ends with an error, so the client sees a truncated
//! response rather than a short segment.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use futures_core::Stream;
use tokio::sync::mpsc;

use super::*;

/// Parts queued ahead of a slow client (the rest wait in memory, where they are anyway).
const QUEUE: usize = 4;

/// The response for segment `msn` of `session` while it is in progress; `None` if the
/// rendition has no feed (it always has one once it has a part).
pub(super) fn in_progress(
    origin: Arc<Origin>,
    ch: Arc<Channel>,
    rendition: &str,
    session: u64,
    msn: u64,
) -> Option<Response> {
    let feed = ch.feed(rendition)?;
    let etag = format!("\"{}-{rendition}-{msn}\"", session_name(session));
    let rendition = rendition.to_owned();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUE);
    tokio::spawn(async move {
        let limit = block_limit(feed.edge().target_duration);
        let mut sent = 0usize;
        loop {
            let found = {
                let st = lock(&ch.inner);
                st.rendition(&rendition)
                    .and_then(|r| r.segment(msn))
                    .filter(|s| s.session == session)
                    .map(|s| {
                        (
                            s.parts
                                .get(sent..)
                                .unwrap_or_default()
                                .iter()
                                .map(|p| p.data.clone())
                                .collect::<Vec<_>>(),
                            s.complete,
                        )
                    })
            };
            let Some((parts, complete)) = found else {
                // It left the window (or the run) while being sent: waiting for its
                // parts would never end.
                let _ = tx
                    .send(Err(std::io::Error::other("the segment left memory")))
                    .await;
                return;
            };
            for data in parts {
                // A part whose bytes left memory cannot be sent: end with an error.
                let item = if data.is_empty() {
                    Err(std::io::Error::other("the segment's parts left memory"))
                } else {
                    Ok(data)
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
                sent += 1;
            }
            if complete {
                return;
            }
            let next = sent as u64;
            let moved = feed
                .wait_until(&origin.metrics, limit, |e| e.settles_part(msn, next))
                .await;
            if !moved {
                let _ = tx
                    .send(Err(std::io::Error::other(
                        "the segment stopped before it was complete",
                    )))
                    .await;
                return;
            }
        }
    });
    let mut r = Response::new(Body::from_stream(Parts(rx)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("video/iso.segment"),
    );
    // The bytes are the segment's, final as they come: cacheable like the whole one.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Some(r)
}

/// The queue as a body stream.
struct Parts(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl Stream for Parts {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
