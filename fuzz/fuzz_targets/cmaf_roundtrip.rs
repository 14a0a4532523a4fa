//! CMAF fragment writer on arbitrary samples and options: must never panic, and what it
//! writes must read back (with a minimal box reader here) to the same samples: sizes,
//! durations, flags, composition offsets, payload bytes, and a data_offset that points at
//! the first payload byte.
//!
//! Needs in fuzz/Cargo.toml: `starling-cmaf = { path = "../crates/formats/cmaf" }` and a
//! `[[bin]] name = "cmaf_roundtrip"` entry.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starling_cmaf::{media_fragment, FragmentOptions, ProducerReference, Sample};
use starling_media::{aac::AudioSpecificConfig, h264::AvcConfig, CodecConfig, Track, TrackId};

/// libx264 320x240 baseline parameter sets, so the track is a real one.
const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
];
const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

fn take<const N: usize>(data: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = data.split_first_chunk::<N>()?;
    *data = rest;
    Some(*head)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// (type, body) of each box in `data`; panics on framing the writer should never produce.
fn boxes(data: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let size = be32(data, pos) as usize;
        assert!(size >= 8 && pos + size <= data.len(), "bad box size {size} at {pos}");
        out.push((&data[pos + 4..pos + 8], &data[pos + 8..pos + size]));
        pos += size;
    }
    out
}

fn child<'a>(parent: &'a [u8], kind: &[u8]) -> &'a [u8] {
    boxes(parent).into_iter().find(|(k, _)| *k == kind).expect("missing box").1
}

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let Some([kind, styp, prft]) = take::<3>(&mut data) else {
        return;
    };
    let Some(seq) = take::<4>(&mut data) else { return };
    let Some(base) = take::<8>(&mut data) else { return };
    let video = kind & 1 == 1;
    let config = if video {
        CodecConfig::H264(
            AvcConfig::from_parameter_sets(&[Bytes::from_static(SPS)], &[Bytes::from_static(PPS)])
                .unwrap(),
        )
    } else {
        CodecConfig::Aac(AudioSpecificConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap())
    };
    let track = Track { id: TrackId(1), timescale: 90000, config };
    let mut samples = Vec::new();
    while let Some(head) = take::<11>(&mut data) {
        let len = usize::from(u16::from_be_bytes([head[9], head[10]])).min(data.len());
        let (payload, rest) = data.split_at(len);
        data = rest;
        samples.push(Sample {
            duration: u32::from_be_bytes(head[0..4].try_into().unwrap()),
            cts_offset: i32::from_be_bytes(head[4..8].try_into().unwrap()),
            keyframe: head[8] & 1 == 1,
            data: Bytes::copy_from_slice(payload),
        });
    }
    let opts = FragmentOptions {
        sequence_number: u32::from_be_bytes(seq),
        base_media_decode_time: u64::from_be_bytes(base),
        styp: styp & 1 == 1,
        prft: (prft & 1 == 1).then_some(ProducerReference { ntp_timestamp: 7, media_time: 9 }),
    };
    let Ok(frag) = media_fragment(&track, &samples, &opts) else {
        assert!(samples.is_empty(), "only an empty fragment may be refused here");
        return;
    };

    let top = boxes(&frag);
    let kinds: Vec<&[u8]> = top.iter().map(|(k, _)| *k).collect();
    let mut want: Vec<&[u8]> = Vec::new();
    if opts.styp {
        want.push(b"styp");
    }
    if opts.prft.is_some() {
        want.push(b"prft");
    }
    want.extend([b"moof".as_slice(), b"mdat".as_slice()]);
    assert_eq!(kinds, want);
    let moof = top[top.len() - 2].1;
    let mdat = top[top.len() - 1].1;
    assert_eq!(be32(child(moof, b"mfhd"), 4), opts.sequence_number);
    let traf = child(moof, b"traf");
    let tfdt = child(traf, b"tfdt");
    assert_eq!(u64::from_be_bytes(tfdt[4..12].try_into().unwrap()), opts.base_media_decode_time);
    let trun = child(traf, b"trun");
    let flags = be32(trun, 0) & 0xFF_FFFF;
    assert_eq!(trun[0], 1, "trun version");
    assert_eq!(be32(trun, 4) as usize, samples.len());
    let data_offset = be32(trun, 8) as usize;
    assert_eq!(data_offset, moof.len() + 8 + 8, "data_offset must point past the mdat header");
    let cts = flags & 0x800 != 0;
    let entry = if cts { 16 } else { 12 };
    let mut payload = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let e = 12 + i * entry;
        assert_eq!(be32(trun, e), s.duration);
        assert_eq!(be32(trun, e + 4) as usize, s.data.len());
        let sync = s.keyframe || !video;
        assert_eq!(be32(trun, e + 8), if sync { 0x0200_0000 } else { 0x0101_0000 });
        let offset = if cts { be32(trun, e + 12) as i32 } else { 0 };
        assert_eq!(offset, s.cts_offset);
        payload.extend_from_slice(&s.data);
    }
    assert_eq!(mdat, &payload[..]);
});
