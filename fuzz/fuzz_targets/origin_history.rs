//! The origin's history objects (the run file and segment index chunks, read back from a
//! store other nodes may write) on arbitrary bytes: must never panic, and whatever
//! parses must encode and parse back to the same records.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    starling_origin::fuzzing::history_round_trip(data);
});
