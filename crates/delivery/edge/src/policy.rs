//! What the edge asks the origin for and how long it keeps the answer. Sans-IO.
//!
//! - The cache key is the path and the LL-HLS query parameters (`_HLS_msn`, `_HLS_part`,
//!   `_HLS_skip`), sorted. Everything else in the query is dropped: the token is checked
//!   at the edge (and the edge fills with its own), and any other parameter would let a
//!   client make every request a miss and hand the origin a fill per request.
//! - Freshness follows the origin's `Cache-Control` (`s-maxage`, else `max-age`;
//!   `no-store` and `no-cache` keep nothing); `private` is kept too, since the edge is
//!   the origin's own tier and checks each viewer's token itself. 200, 404 and 410 are
//!   kept (a segment not due yet for the second the origin says, one that will never
//!   exist for as long as it says); other statuses are passed on, never kept.
//! - Stale-if-error: a 200 may be served past its TTL while the origin fails, for the
//!   origin's `stale-if-error=N` or the configured default. Never for a blocking
//!   playlist request (`_HLS_msn`): an older playlist does not hold what it asks for.

use std::time::Duration;

use axum::http::StatusCode;

/// Query parameters that make a different object (the LL-HLS delivery directives).
const KEPT_PARAMS: [&str; 3] = ["_HLS_msn", "_HLS_part", "_HLS_skip"];
/// Longest path and query accepted (the origin's URLs are far shorter).
pub const MAX_TARGET: usize = 512;

/// Why a request never reaches the origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    #[error("request target longer than {MAX_TARGET} bytes")]
    TooLong,
    #[error("not a /live/CHANNEL/… path")]
    NotLive,
    #[error("malformed channel name")]
    Channel,
    #[error("malformed path")]
    Path,
    #[error("LL-HLS parameter {0} repeated")]
    Repeated(&'static str),
}

/// A request as the edge serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `/live/CHANNEL/…` plus the kept query: the cache key and what the edge asks for.
    pub key: String,
    pub channel: String,
    /// It asks for a blocking playlist reload (`_HLS_msn`).
    pub blocking: bool,
}

/// Checks a request's path and query and builds its cache key.
pub fn target(path: &str, query: Option<&str>) -> Result<Target, BadRequest> {
    if path.len() + query.map_or(0, str::len) > MAX_TARGET {
        return Err(BadRequest::TooLong);
    }
    let rest = path.strip_prefix("/live/").ok_or(BadRequest::NotLive)?;
    let channel = rest.split('/').next().unwrap_or("");
    if !starling_origin::http::valid_name(channel, 64) {
        return Err(BadRequest::Channel);
    }
    // The origin's names are a safe alphabet; anything else (`..`, escapes, empty
    // segments) is refused here rather than forwarded.
    let safe = rest.split('/').all(|s| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    });
    if !safe {
        return Err(BadRequest::Path);
    }
    let mut kept: Vec<(&'static str, &str)> = Vec::new();
    for pair in query.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if let Some(name) = KEPT_PARAMS.iter().find(|n| **n == k) {
            if kept.iter().any(|(n, _)| n == name) {
                return Err(BadRequest::Repeated(name));
            }
            if !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(BadRequest::Path);
            }
            kept.push((name, v));
        }
    }
    kept.sort_unstable();
    let mut key = path.to_owned();
    for (i, (k, v)) in kept.iter().enumerate() {
        key.push(if i == 0 { '?' } else { '&' });
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    Ok(Target {
        key,
        channel: channel.to_owned(),
        blocking: kept.iter().any(|(k, _)| *k == "_HLS_msn"),
    })
}

/// How long an answer is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    pub ttl: Duration,
    /// How long after the TTL it may stand in for an origin that fails.
    pub stale_if_error: Duration,
}

/// How long to keep the origin's answer to a request (None: not at all).
pub fn keep(
    status: StatusCode,
    cache_control: Option<&str>,
    blocking: bool,
    default_stale: Duration,
) -> Option<Keep> {
    if !matches!(
        status,
        StatusCode::OK | StatusCode::NOT_FOUND | StatusCode::GONE
    ) {
        return None;
    }
    let mut max_age = None;
    let mut s_maxage = None;
    let mut stale = None;
    for d in cache_control?.split(',') {
        let d = d.trim();
        let (name, value) = match d.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (d, None),
        };
        let secs = || value.and_then(|v| v.parse::<u64>().ok());
        match name.to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" => return None,
            "max-age" => max_age = secs(),
            "s-maxage" => s_maxage = secs(),
            "stale-if-error" => stale = secs(),
            _ => {}
        }
    }
    let ttl = Duration::from_secs(s_maxage.or(max_age)?);
    if ttl.is_zero() {
        return None;
    }
    let stale_if_error = if status != StatusCode::OK || blocking {
        Duration::ZERO
    } else {
        stale.map_or(default_stale, Duration::from_secs)
    };
    Some(Keep {
        ttl,
        stale_if_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_the_ll_hls_directives_sorted_and_nothing_else() {
        let t = target(
            "/live/ch/video/index.m3u8",
            Some("_HLS_part=2&token=abc&x=1&_HLS_msn=17"),
        )
        .unwrap();
        assert_eq!(t.key, "/live/ch/video/index.m3u8?_HLS_msn=17&_HLS_part=2");
        assert_eq!(t.channel, "ch");
        assert!(t.blocking);
        let t = target("/live/ch/index.m3u8", Some("token=abc")).unwrap();
        assert_eq!(t.key, "/live/ch/index.m3u8");
        assert!(!t.blocking);
        assert_eq!(
            target("/live/ch/thumb.jpg", None).unwrap().key,
            "/live/ch/thumb.jpg"
        );
        // A single name under /live/ too: the origin's clock for DASH players.
        assert_eq!(target("/live/time", None).unwrap().key, "/live/time");
    }

    #[test]
    fn bad_targets_are_refused_with_their_cause() {
        assert_eq!(target("/vod/ch/x", None), Err(BadRequest::NotLive));
        assert_eq!(target("/live/c h/x", None), Err(BadRequest::Channel));
        assert_eq!(target("/live//x", None), Err(BadRequest::Channel));
        assert_eq!(target("/live/ch/../x", None), Err(BadRequest::Path));
        assert_eq!(target("/live/ch/a%2f", None), Err(BadRequest::Path));
        assert_eq!(target("/live/ch/a//b", None), Err(BadRequest::Path));
        assert_eq!(
            target("/live/ch/i.m3u8", Some("_HLS_msn=1&_HLS_msn=2")),
            Err(BadRequest::Repeated("_HLS_msn"))
        );
        assert_eq!(
            target("/live/ch/i.m3u8", Some("_HLS_msn=1%00")),
            Err(BadRequest::Path)
        );
        let long = format!("/live/ch/{}", "a".repeat(600));
        assert_eq!(target(&long, None), Err(BadRequest::TooLong));
    }

    #[test]
    fn freshness_follows_the_origin() {
        let d = Duration::from_secs(30);
        let ok = StatusCode::OK;
        let k = keep(ok, Some("public, max-age=31536000, immutable"), false, d).unwrap();
        assert_eq!(k.ttl, Duration::from_secs(31_536_000));
        assert_eq!(k.stale_if_error, d);
        let k = keep(ok, Some("private, max-age=1"), false, d).unwrap();
        assert_eq!(k.ttl, Duration::from_secs(1));
        let k = keep(
            ok,
            Some("max-age=10, s-maxage=2, stale-if-error=5"),
            false,
            d,
        )
        .unwrap();
        assert_eq!(
            (k.ttl, k.stale_if_error),
            (Duration::from_secs(2), Duration::from_secs(5))
        );
        // A blocking playlist is never served stale.
        let k = keep(ok, Some("public, max-age=12"), true, d).unwrap();
        assert_eq!(k.stale_if_error, Duration::ZERO);
        // Not yet due: kept for its second, never stale.
        let k = keep(StatusCode::NOT_FOUND, Some("public, max-age=1"), false, d).unwrap();
        assert_eq!(
            (k.ttl, k.stale_if_error),
            (Duration::from_secs(1), Duration::ZERO)
        );
        assert_eq!(keep(ok, Some("no-store"), false, d), None);
        assert_eq!(keep(ok, Some("max-age=0"), false, d), None);
        assert_eq!(keep(ok, None, false, d), None);
        assert_eq!(
            keep(StatusCode::SERVICE_UNAVAILABLE, Some("max-age=5"), false, d),
            None
        );
        assert_eq!(
            keep(StatusCode::UNAUTHORIZED, Some("max-age=5"), false, d),
            None
        );
    }
}
