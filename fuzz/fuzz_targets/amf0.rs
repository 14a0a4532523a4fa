//! AMF0 decoder on arbitrary bytes: must never panic, and whatever decodes must
//! survive encode -> decode -> encode with identical bytes (compared as bytes so NaN
//! payloads count as equal).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use starling_rtmp::amf0;

fuzz_target!(|data: &[u8]| {
    let Ok(values) = amf0::decode_all(data) else {
        return;
    };
    let mut first = BytesMut::new();
    amf0::encode_all(&values, &mut first);
    let again = amf0::decode_all(&first).expect("re-decoding our own encoding");
    assert_eq!(again.len(), values.len());
    let mut second = BytesMut::new();
    amf0::encode_all(&again, &mut second);
    assert_eq!(first, second);
});
