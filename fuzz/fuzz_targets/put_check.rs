//! The HTTP PUT ingest's checks (`starling_http_put::check`) on arbitrary bytes: the
//! pushed path, the fMP4 and MPEG-TS body checks, and a playlist's references. Must never
//! panic, and whatever they accept must stay inside the channel: every accepted path
//! (given, or resolved from a playlist) is one or two plain segments that make a safe
//! object key, and a playlist in a directory only names objects in that directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_http_put::check::{check_fmp4, check_ts, playlist_references, PushPath};

fn assert_contained(p: &PushPath) {
    let key = p.store_key("c");
    assert!(p.as_str().split('/').count() <= 2, "{p}");
    assert!(
        key.split('/').all(|s| !s.is_empty() && !s.starts_with('.')),
        "{key}"
    );
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b)),
        "{key}"
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(p) = PushPath::parse(text) {
            assert_eq!(p.as_str(), text);
            assert_contained(&p);
        }
    }

    let _ = check_fmp4(data);
    if check_ts(data).is_ok() {
        assert!(!data.is_empty() && data.len() % 188 == 0);
    }

    for playlist in ["index.m3u8", "v0/index.m3u8"] {
        let playlist = PushPath::parse(playlist).expect("a valid playlist path");
        if let Ok(refs) = playlist_references(data, &playlist, 1 << 20) {
            assert!(data.starts_with(b"#EXTM3U"));
            for r in &refs {
                assert_contained(r);
                assert_eq!(PushPath::parse(r.as_str()).as_ref(), Ok(r));
                if let Some(dir) = playlist.dir() {
                    assert_eq!(r.dir(), Some(dir), "{r} escaped {dir}/");
                }
            }
        }
    }
});
