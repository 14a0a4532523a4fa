//! Media objects: init sections, segments and parts of a session, from memory or (for
//! sessions no longer held) the store; immutable responses with ETags and byte ranges.

use super::*;

/// `init.mp4`: the newest init section (mutable: it follows codec changes).
pub(super) fn latest_init(ch: &Channel, rendition: &str, headers: &HeaderMap) -> Response {
    let st = lock(&ch.inner);
    let Some(r) = st.rendition(rendition) else {
        return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
    };
    let v = r.inits.len().saturating_sub(1);
    let Some((session, data)) = r.inits.get(v).cloned() else {
        return error(StatusCode::NOT_FOUND, "no init section yet", NOT_YET);
    };
    drop(st);
    let etag = format!("\"{}-{rendition}-i{v}\"", session_name(session));
    media_response(data, &etag, "video/mp4", "public, max-age=2", headers)
}

/// An init section of a session: from memory, else (an earlier run or process) the store.
pub(super) async fn init(
    origin: &Origin,
    ch: Option<&Channel>,
    at: Addressed<'_>,
    version: usize,
    headers: &HeaderMap,
) -> Response {
    let Addressed {
        channel,
        rendition,
        session,
        ..
    } = at;
    let held = ch.and_then(|ch| {
        lock(&ch.inner)
            .rendition(rendition)
            .and_then(|r| r.inits.get(version))
            .filter(|(s, _)| *s == session)
            .map(|(_, data)| data.clone())
    });
    let data = match held {
        Some(d) => d,
        None => match from_store(
            origin,
            &init_key(channel, session, rendition, version),
            at.client,
        )
        .await
        {
            Ok(d) => d,
            Err(r) => return r,
        },
    };
    let etag = format!("\"{}-{rendition}-i{version}\"", session_name(session));
    media_response(data, &etag, "video/mp4", IMMUTABLE, headers)
}

/// An object that is not (or no longer) in memory. Absent: 404 with a short TTL, since
/// a session's object that the store does not have may still be on its way there.
pub(super) async fn from_store(
    origin: &Origin,
    key: &str,
    client: Option<std::net::IpAddr>,
) -> Result<Bytes, Response> {
    // Live-edge objects never get here (they are in memory): only these reads are
    // capped, so a crowd scrubbing the DVR window cannot queue the live edge.
    let _slot = origin
        .reads
        .try_acquire(client)
        .map_err(|why| shed(origin, why))?;
    match origin.store.get(key).await {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(error(StatusCode::NOT_FOUND, "no such object", NOT_YET)),
        Err(e) => {
            tracing::warn!(error = %e, "origin: store read failed");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable",
                "no-store",
            ))
        }
    }
}

/// The 503 that sheds a store read over a cap (see `shed`).
pub(super) fn shed(origin: &Origin, why: crate::shed::Shed) -> Response {
    origin.metrics.store_read_shed(why);
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many recordings being read: retry in a second",
        "public, max-age=1",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// A segment of the live session that is not due yet: 404, cacheable until about when
/// it can exist, so that a client or CDN asking far ahead of the live edge is answered
/// once and does not ask again before then (and never reaches the store).
fn not_yet(origin: &Origin, ch: Option<&Arc<Channel>>, at: Addressed<'_>, msn: u64) -> Response {
    let newest = ch.and_then(|ch| {
        lock(&ch.inner)
            .rendition(at.rendition)
            .and_then(|r| r.segments.back().map(|s| s.msn))
    });
    let ahead = newest.map_or(1, |n| msn.saturating_sub(n));
    let mut r = error(StatusCode::NOT_FOUND, "segment not available yet", NOT_YET);
    if ahead > 1 {
        super::count_rejected(origin);
        // The segment after next is at least one segment duration away.
        let secs = (origin.config.segment_duration.as_secs_f64() * (ahead - 1) as f64)
            .clamp(1.0, 3600.0) as u64;
        if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={secs}")) {
            r.headers_mut().insert(header::CACHE_CONTROL, v);
        }
    }
    r
}

/// Where a segment of `session` stands in memory.
pub(crate) enum Held {
    /// Complete: its bytes (None once they left memory; then the store has them).
    Complete(Option<Bytes>),
    /// Still being written.
    InProgress,
    /// Fell out of the DVR window: gone for good.
    Gone,
    /// Not due yet (the live edge of the current session has not reached it).
    NotYet,
    /// Not a segment of the run in memory: an earlier run, or a previous process.
    Elsewhere,
    /// Listed as `EXT-X-GAP`: the rendition has no media for that number.
    Gap,
}

pub(crate) fn held_segment(st: &ChannelInner, rendition: &str, session: u64, msn: u64) -> Held {
    let Some(r) = st.rendition(rendition) else {
        return Held::Elsewhere;
    };
    if let Some(s) = r.segment(msn).filter(|s| s.session == session) {
        return if s.gap {
            Held::Gap
        } else if s.complete {
            Held::Complete(s.data.clone())
        } else {
            Held::InProgress
        };
    }
    if !st.run.contains(&session) {
        return Held::Elsewhere;
    }
    let first = r.segments.front().map_or(r.evicted_below, |s| s.msn);
    let newest = r.segments.back().map(|s| s.msn);
    if msn < first || msn < r.evicted_below {
        // Out of the window, but a recording keeps it in the store (its VOD playlist
        // lists it).
        if st.settings.record {
            Held::Elsewhere
        } else {
            Held::Gone
        }
    } else if session == st.session && newest.is_none_or(|n| msn > n) {
        Held::NotYet
    } else {
        // (The live session asked for a number the rendition has already passed: an
        // earlier session of the run has it, or none.)
        // A session of this run that never had that number (another session has it,
        // or an audio gap): it never will.
        Held::Gone
    }
}

pub(super) async fn segment(
    origin: &Arc<Origin>,
    ch: Option<&Arc<Channel>>,
    at: Addressed<'_>,
    msn: u64,
    headers: &HeaderMap,
) -> Response {
    let Addressed {
        channel,
        rendition,
        session,
        ..
    } = at;
    let mut held = ch.map_or(Held::Elsewhere, |ch| {
        held_segment(&lock(&ch.inner), rendition, session, msn)
    });
    // The next segment of the live session, asked for a little before its first part
    // (an LL-DASH player's clock): held until that part exists.
    if let (Held::NotYet, Some(ch), Some(feed)) = (&held, ch, ch.and_then(|c| c.feed(rendition))) {
        let next = {
            let st = lock(&ch.inner);
            st.session == session
                && st
                    .rendition(rendition)
                    .and_then(|r| r.segments.back())
                    .is_some_and(|s| s.msn + 1 == msn)
        };
        if next {
            let limit = block_limit(feed.edge().target_duration);
            feed.wait_until(&origin.metrics, limit, |e| e.settles_part(msn, 0))
                .await;
            held = held_segment(&lock(&ch.inner), rendition, session, msn);
        }
    }
    // A segment still being written is sent as it is cut (chunked), unless a byte range
    // was asked for: that one is answered when the segment is complete (bounded wait),
    // so a client or CDN that asks a little early is not sent away.
    if let (Held::InProgress, Some(ch), None) = (&held, ch, headers.get(header::RANGE)) {
        if let Some(r) =
            super::chunked::in_progress(origin.clone(), ch.clone(), rendition, session, msn)
        {
            return r;
        }
    }
    if let (Held::InProgress, Some(ch), Some(feed)) =
        (&held, ch, ch.and_then(|c| c.feed(rendition)))
    {
        let limit = block_limit(feed.edge().target_duration);
        // Woken by changes to this rendition only; then the state is checked exactly.
        feed.wait_until(&origin.metrics, limit, |_| {
            !matches!(
                held_segment(&lock(&ch.inner), rendition, session, msn),
                Held::InProgress
            )
        })
        .await;
        held = held_segment(&lock(&ch.inner), rendition, session, msn);
    }
    let data = match held {
        Held::Complete(Some(d)) => d,
        Held::Complete(None) | Held::Elsewhere => {
            match from_store(
                origin,
                &segment_key(channel, session, rendition, msn),
                at.client,
            )
            .await
            {
                Ok(d) => d,
                Err(r) => return r,
            }
        }
        Held::Gap => {
            return error(
                StatusCode::NOT_FOUND,
                "segment is a gap (EXT-X-GAP)",
                "public, max-age=60",
            )
        }
        Held::Gone => {
            return error(
                StatusCode::GONE,
                "segment left the DVR window",
                "public, max-age=60",
            )
        }
        Held::NotYet => return not_yet(origin, ch, at, msn),
        Held::InProgress => {
            return error(StatusCode::NOT_FOUND, "segment not available yet", NOT_YET)
        }
    };
    let etag = format!("\"{}-{rendition}-{msn}\"", session_name(session));
    media_response(data, &etag, "video/iso.segment", IMMUTABLE, headers)
}

pub(super) async fn part_request(
    origin: &Origin,
    ch: &Channel,
    at: Addressed<'_>,
    msn: u64,
    part: u32,
    headers: &HeaderMap,
) -> Response {
    let Addressed {
        rendition, session, ..
    } = at;
    let p = u64::from(part);
    let etag = || format!("\"{}-{rendition}-{msn}.{part}\"", session_name(session));
    let fast = {
        let st = lock(&ch.inner);
        let Some(r) = st.rendition(rendition) else {
            return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
        };
        let (lm, lp) = last_msn_and_part(r).unwrap_or((0, None));
        let lp = lp.map_or(-1, |x| x as i64);
        let exists = r.segment(msn).is_some_and(|s| s.parts.len() as u64 > p);
        // A preload-hinted part (the next one, or within the advance limit) of the live
        // session is held until it exists; that is how LL-HLS players get parts the
        // moment they are cut.
        let near = (msn == lm && (p as i64) <= lp + 3) || (msn == lm + 1 && p <= 3);
        let hinted = hint_session(&st) == Some(session);
        if exists || !(near && hinted) {
            // The usual case (a player asks for a part its playlist lists): one lock.
            Ok(part_bytes(&st, rendition, session, msn, part))
        } else {
            Err(block_limit(r.target_duration))
        }
    };
    let held = match fast {
        Ok(held) => held,
        Err(limit) => {
            if let Some(feed) = ch.feed(rendition) {
                feed.wait_until(&origin.metrics, limit, |e| e.settles_part(msn, p))
                    .await;
            }
            let st = lock(&ch.inner);
            part_bytes(&st, rendition, session, msn, part)
        }
    };
    let data = match held {
        Ok(PartHeld::Memory(d)) => d,
        Ok(PartHeld::Stored(range)) => {
            let key = segment_key(&ch.name, session, rendition, msn);
            match from_store(origin, &key, at.client).await {
                Ok(d) if d.len() >= range.end => d.slice(range),
                Ok(_) => {
                    tracing::warn!(key, "origin: stored segment shorter than its parts");
                    return error(StatusCode::NOT_FOUND, "no such object", NOT_YET);
                }
                Err(r) => return r,
            }
        }
        Err(r) => return r.into_response(),
    };
    media_response(data, &etag(), "video/iso.segment", IMMUTABLE, headers)
}

/// Where a part's bytes are.
enum PartHeld {
    Memory(Bytes),
    /// Its segment left memory (which it only does once stored): the part is this range
    /// of the stored segment. A player may still ask for a part that a playlist listed a
    /// moment ago.
    Stored(std::ops::Range<usize>),
}

/// Part `part` of segment `msn` of `session`, or the response that says why not.
fn part_bytes(
    st: &ChannelInner,
    rendition: &str,
    session: u64,
    msn: u64,
    part: u32,
) -> Result<PartHeld, Reject> {
    let Some(r) = st.rendition(rendition) else {
        return Err(Reject(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET));
    };
    let first = r.segments.front().map_or(r.evicted_below, |s| s.msn);
    if msn < first && st.run.contains(&session) {
        return Err(Reject(
            StatusCode::GONE,
            "part left the window",
            "public, max-age=60",
        ));
    }
    // Parts are listed by the session that made them, from memory.
    let Some(seg) = r.segment(msn).filter(|s| s.session == session) else {
        return Err(Reject(StatusCode::NOT_FOUND, "part not available", NOT_YET));
    };
    let Some(entry) = seg.parts.get(part as usize) else {
        return Err(if seg.complete {
            Reject(
                StatusCode::GONE,
                "that segment ended before this part",
                "public, max-age=60",
            )
        } else {
            Reject(StatusCode::NOT_FOUND, "part not available yet", NOT_YET)
        });
    };
    if !entry.data.is_empty() {
        Ok(PartHeld::Memory(entry.data.clone()))
    } else if seg.stored && entry.len > 0 {
        let offset: usize = seg.parts[..part as usize].iter().map(|p| p.len).sum();
        Ok(PartHeld::Stored(offset..offset + entry.len))
    } else {
        Err(Reject(
            StatusCode::GONE,
            "part left memory; fetch the whole segment",
            "public, max-age=60",
        ))
    }
}

/// 200/206/304 for an immutable media object, with ETag and single-range support.
pub(super) fn media_response(
    data: Bytes,
    etag: &str,
    content_type: &'static str,
    cache: &'static str,
    headers: &HeaderMap,
) -> Response {
    let etag_value = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"x\""));
    let base = |status: StatusCode, body: Body| {
        let mut r = Response::new(body);
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        h.insert(header::ETAG, etag_value.clone());
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        r
    };
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return base(StatusCode::NOT_MODIFIED, Body::empty());
    }
    let len = data.len() as u64;
    if let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        match parse_range(range, len) {
            Some(Ok((a, b))) => {
                let mut r = base(
                    StatusCode::PARTIAL_CONTENT,
                    Body::from(data.slice(a as usize..=b as usize)),
                );
                if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{len}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return r;
            }
            Some(Err(())) => {
                let mut r = base(StatusCode::RANGE_NOT_SATISFIABLE, Body::empty());
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return r;
            }
            // Multiple or malformed ranges: ignore the header, as RFC 9110 allows.
            None => {}
        }
    }
    base(StatusCode::OK, Body::from(data))
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` → inclusive (a, b); `Some(Err)` when unsatisfiable,
/// `None` when not a single byte range.
fn parse_range(v: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let a: u64 = a.parse().ok()?;
        let b: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().ok()?.min(len.saturating_sub(1))
        };
        if a >= len || a > b {
            return Some(Err(()));
        }
        (a, b)
    };
    Some(Ok(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
