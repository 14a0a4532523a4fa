//! The SRT stream-id parser on arbitrary input: it never panics, refuses anything
//! libsrt could not have sent (over 512 bytes, control characters), and what it accepts
//! is consistent: a publish always has a key, a request always has a channel, and a
//! secret never shows in the debug form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_srt::{streamid, Mode};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match streamid::parse(text) {
        Ok(id) => {
            assert!(text.len() <= streamid::MAX_STREAM_ID_LEN);
            match id.mode {
                Mode::Publish => assert!(id.secret.as_deref().is_some_and(|s| !s.is_empty())),
                Mode::Request => assert!(id.resource.as_deref().is_some_and(|r| !r.is_empty())),
            }
            if id.secret.is_some() {
                assert!(format!("{id:?}").contains("secret: Some(\"<redacted>\")"));
            }
        }
        Err(e) => {
            let code = e.reject_code();
            assert!((1400..1500).contains(&code), "{code}");
        }
    }
});
