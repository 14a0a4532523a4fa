//! The edge's reading of a request target (path and query, straight off the wire) and of
//! the origin's `Cache-Control`: must never panic; an accepted target stays under
//! `/live/CHANNEL`, holds no `..`, keeps only the LL-HLS directives, and its key is
//! stable (reading the key again gives the same key).
#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_edge::policy::{keep, target};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text, None),
    };
    if let Ok(t) = target(path, query) {
        // `/live/CHANNEL/…`, or `/live/NAME` alone (the origin's `/live/time`).
        let rest = t.key.strip_prefix(&format!("/live/{}", t.channel));
        assert!(
            rest.is_some_and(|r| r.is_empty() || r.starts_with(['/', '?'])),
            "{text:?}: {t:?}"
        );
        assert!(!t.key.split(['/', '?']).any(|s| s == ".."), "{text:?}: {t:?}");
        let (p, q) = match t.key.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (t.key.as_str(), None),
        };
        if let Some(q) = q {
            assert!(q.split('&').all(|kv| kv.starts_with("_HLS_")), "{t:?}");
        }
        assert_eq!(target(p, q).map(|again| again.key).as_deref(), Ok(t.key.as_str()));
    }
    for status in [200u16, 404, 410, 503] {
        let status = axum_status(status);
        let _ = keep(status, Some(text), false, std::time::Duration::from_secs(30));
    }
});

fn axum_status(code: u16) -> starling_edge::Status {
    starling_edge::Status::from_u16(code).unwrap_or(starling_edge::Status::OK)
}
