//! The LL-HLS blocking-reload query (`_HLS_msn`, `_HLS_part`, `_HLS_skip`, plus whatever
//! else a player or attacker appends) on arbitrary text: must never panic, and what it
//! accepts must be consistent (a part only with an msn).
#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_hls::parse_blocking_query;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(req) = parse_blocking_query(Some(query)) {
        assert!(req.part.is_none() || req.msn.is_some(), "{query:?}: {req:?}");
        assert_eq!(req.is_blocking(), req.msn.is_some());
    }
});
