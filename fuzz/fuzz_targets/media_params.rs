//! Codec configuration and framing parsers of starling-media on arbitrary bytes: must
//! never panic, and what parses must rebuild consistently (avcC/hvcC from their
//! parameter sets give the same picture; ADTS split -> rebuild -> split is stable;
//! Annex B -> length-prefixed keeps the NAL units).
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use starling_media::{
    aac::{adts_to_raw, raw_to_adts, AudioSpecificConfig},
    h264::AvcConfig,
    h265::{HevcConfig, HevcSps},
    nal,
};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let input = Bytes::copy_from_slice(rest);
    match which % 6 {
        0 => {
            if let Ok(c) = AvcConfig::parse(input) {
                let b = AvcConfig::from_parameter_sets(&c.sps, &c.pps).expect("rebuild avcC");
                assert_eq!(
                    (b.width, b.height, &b.sps, &b.pps),
                    (c.width, c.height, &c.sps, &c.pps)
                );
            }
        }
        1 => {
            if let Ok(c) = HevcConfig::parse(input) {
                if let Ok(b) = HevcConfig::from_parameter_sets(&c.vps, &c.sps, &c.pps) {
                    assert_eq!((b.width, b.height, &b.sps), (c.width, c.height, &c.sps));
                }
            }
        }
        2 => {
            if let Ok(c) = AudioSpecificConfig::parse(input) {
                let _ = c.codec_string();
                if let Ok(b) =
                    AudioSpecificConfig::from_params(c.object_type, c.sample_rate, c.channels)
                {
                    assert_eq!(AudioSpecificConfig::parse(b.raw.clone()).as_ref(), Ok(&b));
                }
            }
        }
        3 => {
            if let Ok((asc, frames)) = adts_to_raw(&input) {
                let mut again = BytesMut::new();
                for f in &frames {
                    again.extend_from_slice(&raw_to_adts(&asc, f).expect("rebuild ADTS"));
                }
                let (asc2, frames2) = adts_to_raw(&again.freeze()).expect("re-split ADTS");
                assert_eq!((asc2, frames2), (asc, frames));
            }
        }
        4 => {
            let units: Vec<Bytes> = nal::split_annexb(&input).collect();
            let lp = nal::annexb_to_length_prefixed(&input, 4).expect("4-byte lengths fit");
            let back: Vec<Bytes> = nal::iter_length_prefixed(&lp, 4)
                .map(|r| r.expect("our own framing"))
                .collect();
            assert_eq!(back, units);
            let _ = nal::length_prefixed_to_annexb(&input, which >> 6);
            let _ = starling_media::h264::is_keyframe(&input, 4);
            let _ = starling_media::h265::is_keyframe(&input, 2);
        }
        _ => {
            if let Ok(s) = HevcSps::parse(&input) {
                let _ = s.dimensions();
            }
        }
    }
});
