//! Malformed and pseudo-random input: typed errors, never a panic, never a hang.

// Test-only helpers below unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use starling_flv::{
    tag::{parse_audio, parse_video},
    FlvError, FlvIngest, FlvReader, TagType,
};
use starling_media::MediaError;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut v = body.to_vec();
    match rng.below(5) {
        0 => v.truncate(rng.below(v.len() + 1)),
        1 => {
            for _ in 0..=rng.below(4) {
                if !v.is_empty() {
                    let i = rng.below(v.len());
                    v[i] = rng.next() as u8;
                }
            }
        }
        2 => {
            // flip a bit in the first bytes, where the headers are
            let i = rng.below(v.len().min(48));
            if let Some(b) = v.get_mut(i) {
                *b ^= 1 << rng.below(8);
            }
        }
        3 => {
            let at = rng.below(v.len() + 1);
            let extra: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
            v.splice(at..at, extra);
        }
        _ => v = (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
    }
    v
}

#[test]
fn chaos_over_tag_bodies_ingest_and_reader() {
    let mut seeds = read_tags(&fixture("avc_aac.flv"));
    seeds.extend(read_tags(&fixture("hevc_enhanced.flv")));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut errors = 0usize;
    for round in 0..20_000 {
        let seed = &seeds[rng.below(seeds.len())];
        let body = Bytes::from(mutate(&mut rng, &seed.body));
        let _ = parse_video(&body);
        let _ = parse_audio(&body);
        // An ingest that has its configs (so frame checks run), fed the mutant as both kinds.
        let mut ing = FlvIngest::new();
        for t in seeds
            .iter()
            .filter(|t| t.tag_type != TagType::Script)
            .take(3)
        {
            let _ = match t.tag_type {
                TagType::Video => ing.video(t.timestamp, t.body.clone(), T0),
                _ => ing.audio(t.timestamp, t.body.clone(), T0),
            };
        }
        let ts = rng.next() as u32;
        errors += ing.video(ts, body.clone(), T0).is_err() as usize;
        errors += ing.audio(ts, body, T0).is_err() as usize;
        if round % 50 == 0 {
            // a mutated file through the reader
            let file = fixture(if round % 100 == 0 {
                "avc_aac.flv"
            } else {
                "hevc_enhanced.flv"
            });
            let bad = mutate(&mut rng, &file[..file.len().min(4096)]);
            let mut r = FlvReader::with_max_tag_size(1 << 20);
            r.push(&bad);
            for _ in 0..1000 {
                match r.next_tag() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }
    // the mutations must actually reach the error paths
    assert!(errors > 1000, "only {errors} errors");
}

#[test]
fn malformed_bodies_are_typed_errors() {
    let mut ing = FlvIngest::new();
    // avcC announcing 31 SPS of 65535 bytes in a 10-byte record
    let mut lie = vec![0x17, 0, 0, 0, 0];
    lie.extend_from_slice(&[1, 0x64, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0x67, 0]);
    assert!(matches!(
        ing.video(0, Bytes::from(lie), T0),
        Err(FlvError::Media(MediaError::Truncated { what: "avcC", .. }))
    ));
    // composition time on a sequence header
    assert!(matches!(
        ing.video(0, Bytes::from_static(&[0x17, 0, 0, 0, 1, 1]), T0),
        Err(FlvError::CompositionTimeOnSequenceHeader(1))
    ));
    // every truncation of every real tag is an error or a clean result
    for t in read_tags(&fixture("hevc_enhanced.flv")).iter().take(6) {
        for n in 0..t.body.len().min(64) {
            let body = t.body.slice(..n);
            let _ = FlvIngest::new().video(0, body.clone(), T0);
            let _ = FlvIngest::new().audio(0, body, T0);
        }
    }
    // a bad ASC and a bad hvcC
    assert!(matches!(
        ing.audio(0, Bytes::from_static(&[0xAF, 0, 0x12]), T0),
        Err(FlvError::Media(MediaError::Truncated { .. }))
    ));
    let mut hvcc = vec![0x90];
    hvcc.extend_from_slice(b"hvc1");
    hvcc.extend_from_slice(&[1; 10]);
    assert!(matches!(
        ing.video(0, Bytes::from(hvcc), T0),
        Err(FlvError::Media(MediaError::Truncated { what: "hvcC", .. }))
    ));
    assert_eq!(ing.dropped_before_config(), 0);
}
