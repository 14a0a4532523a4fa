//! Bad input: garbage, lost and duplicated packets, PES length lies, PID storms, PMT
//! changes, the 33-bit wrap, caps. The demuxer reports, counts, drops and goes on.

// Test-only helpers below unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::SystemTime;

use bytes::Bytes;
use common::{demux, demux_with, fixture};
use starling_media::{Frame, TrackId};
use starling_mpegts::{
    psi::{self, stream_type, Pmt, PmtStream},
    DemuxConfig, Demuxer, Muxer,
};

fn pid(packet: &[u8]) -> u16 {
    (u16::from(packet[1] & 0x1F) << 8) | u16::from(packet[2])
}

fn packets(data: &[u8]) -> Vec<Vec<u8>> {
    data.chunks(188).map(<[u8]>::to_vec).collect()
}

/// A deterministic byte generator (no dependency for a handful of random bytes).
fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u8
        })
        .collect()
}

#[test]
fn garbage_is_skipped_and_counted() {
    let mut junk = noise(100_000, 7);
    // Sprinkle sync bytes so that false candidates are tried.
    for i in (0..junk.len()).step_by(97) {
        junk[i] = 0x47;
    }
    let d = demux(&junk, 1000);
    assert!(d.frames.is_empty() && d.streams.is_empty());
    assert!(d.stats.bytes_skipped > 90_000, "{:?}", d.stats);

    // Garbage before and in the middle of a real file: every frame of the file but the
    // ones the garbage cut still comes out, and the skips are reported.
    let file = fixture("avc_aac.ts");
    let clean = demux(&file, 1316);
    let mut dirty = noise(1000, 3);
    dirty.extend_from_slice(&file[..188 * 100]);
    dirty.extend_from_slice(&noise(77, 5));
    dirty.extend_from_slice(&file[188 * 100..]);
    let d = demux(&dirty, 1316);
    assert_eq!(d.stats.bytes_skipped, 1077);
    assert!(d.errors.iter().any(|e| e.contains("lost packet sync")));
    assert!(
        d.frames.len() >= clean.frames.len() - 2,
        "{}",
        d.frames.len()
    );
    // The same, one byte at a time.
    let bytewise = demux(&dirty, 1);
    assert_eq!(
        (&bytewise.frames, &bytewise.errors, &bytewise.stats),
        (&d.frames, &d.errors, &d.stats)
    );
}

#[test]
fn a_lost_packet_drops_its_pes_and_is_reported() {
    let file = fixture("avc_aac.ts");
    let clean = demux(&file, 1316);
    let mut pk = packets(&file);
    // Remove the 40th video packet that is not a PES start.
    let idx = pk
        .iter()
        .enumerate()
        .filter(|(_, p)| pid(p) == 0x100 && p[1] & 0x40 == 0)
        .nth(40)
        .unwrap()
        .0;
    pk.remove(idx);
    let d = demux(&pk.concat(), 1316);
    assert_eq!(d.stats.continuity_errors, 1);
    assert_eq!(d.stats.pes_lost, 1);
    assert!(d.errors.iter().any(|e| e.contains("continuity_counter")));
    assert_eq!(d.frames.len(), clean.frames.len() - 1);
}

#[test]
fn a_duplicate_packet_is_dropped_silently() {
    let file = fixture("avc_aac.ts");
    let clean = demux(&file, 1316);
    let mut pk = packets(&file);
    let idx = pk
        .iter()
        .position(|p| pid(p) == 0x100 && p[1] & 0x40 == 0)
        .unwrap();
    pk.insert(idx, pk[idx].clone());
    let d = demux(&pk.concat(), 1316);
    assert_eq!(d.stats.duplicate_packets, 1);
    assert_eq!(d.stats.continuity_errors, 0);
    assert_eq!(d.frames, clean.frames);
}

#[test]
fn a_discontinuity_indicator_excuses_a_counter_jump() {
    let file = fixture("avc_aac.ts");
    let mut pk = packets(&file);
    // The audio PES starts carry an adaptation field? Make one: take a video PES start
    // with a PCR (adaptation field present), set the indicator and jump the counter.
    let idx = pk
        .iter()
        .position(|p| pid(p) == 0x100 && p[3] & 0x20 != 0 && p[4] > 0)
        .unwrap();
    let p = &mut pk[idx];
    p[5] |= 0x80;
    p[3] = (p[3] & 0xF0) | ((p[3] + 5) & 0x0F);
    // Renumber the following video packets from there.
    let mut cc = pk[idx][3] & 0x0F;
    for p in pk.iter_mut().skip(idx + 1).filter(|p| pid(p) == 0x100) {
        cc = (cc + 1) & 0x0F;
        p[3] = (p[3] & 0xF0) | cc;
    }
    let d = demux(&pk.concat(), 1316);
    assert_eq!(d.discontinuities, [0x100]);
    assert_eq!(d.stats.continuity_errors, 0);
    assert_eq!(d.frames.len(), 145);
}

/// Index of the first packet of the `n`th PES on `pid`.
fn nth_pes_start(pk: &[Vec<u8>], on: u16, n: usize) -> usize {
    pk.iter()
        .enumerate()
        .filter(|(_, p)| pid(p) == on && p[1] & 0x40 != 0)
        .nth(n)
        .unwrap()
        .0
}

fn pes_length_offset(p: &[u8]) -> usize {
    let payload = if p[3] & 0x20 != 0 {
        5 + usize::from(p[4])
    } else {
        4
    };
    assert_eq!(&p[payload..payload + 3], &[0, 0, 1]);
    payload + 4
}

#[test]
fn pes_length_lies_are_errors() {
    let file = fixture("avc_aac.ts");
    let clean = demux(&file, 1316);
    for delta in [-40i32, 40] {
        let mut pk = packets(&file);
        let idx = nth_pes_start(&pk, 0x101, 3);
        let at = pes_length_offset(&pk[idx]);
        let len = i32::from(u16::from_be_bytes([pk[idx][at], pk[idx][at + 1]]));
        assert!(len > 0, "audio PES declare their length");
        let lie = ((len + delta) as u16).to_be_bytes();
        pk[idx][at..at + 2].copy_from_slice(&lie);
        let d = demux(&pk.concat(), 1316);
        assert_eq!(d.stats.pes_length_errors, 1, "delta {delta}");
        assert!(d.errors.iter().any(|e| e.contains("PES_packet_length")));
        // That PES's frames are gone, nothing else. FFmpeg packs AAC frames into PES of
        // up to 2930 bytes (its pes_payload_size), ~17 frames of this 32 kbit/s audio.
        let (a, b) = (d.track(TrackId(2)).len(), clean.track(TrackId(2)).len());
        assert!(a < b && a + 32 > b, "{a} of {b} audio frames");
        assert_eq!(d.track(TrackId(1)).len(), 50);
    }
}

#[test]
fn a_pes_over_the_cap_is_dropped() {
    let file = fixture("avc_aac.ts");
    let config = DemuxConfig {
        max_video_pes: 1000,
        ..DemuxConfig::default()
    };
    let d = demux_with(Demuxer::with_config(config), &file, 1316);
    assert!(d.stats.pes_too_large > 0);
    let v = d.track(TrackId(1));
    assert!(v.iter().all(|f| f.data.len() <= 1000));
    assert_eq!(d.track(TrackId(2)).len(), 95);
}

#[test]
fn a_pid_storm_costs_no_state() {
    let file = fixture("avc_aac.ts");
    let clean = demux(&file, 1316);
    // Thousands of PIDs, each with a PES start, between every packet of the file.
    let mut stormy = Vec::new();
    let mut n = 0u32;
    for p in packets(&file) {
        for _ in 0..3 {
            // Thousands of PIDs, none of the program's own (0x100, 0x101, 0x1000).
            let pid = 0x1100 + (n % 3000) as u16;
            n += 1;
            let mut q = vec![0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10];
            q.extend_from_slice(&[0, 0, 1, 0xE0, 0xFF, 0xFF, 0x80, 0x80, 5]);
            q.resize(188, 0xAB);
            stormy.extend_from_slice(&q);
        }
        stormy.extend_from_slice(&p);
    }
    let d = demux(&stormy, 1316);
    assert_eq!(d.frames, clean.frames);
    assert!(d.stats.unknown_pid_packets >= u64::from(n) - 3);

    // A PMT listing 200 streams tracks only max_elementary_streams of them.
    let pmt = Pmt {
        program_number: 1,
        version_number: 0,
        pcr_pid: 0x100,
        streams: (0..200)
            .map(|i| PmtStream {
                stream_type: stream_type::H264,
                elementary_pid: 0x100 + i,
                descriptors: Vec::new(),
            })
            .collect(),
    };
    let section = psi::build_pmt(&pmt);
    let mut ts = Vec::new();
    let mut pat = vec![0x47, 0x40, 0, 0x10];
    pat.extend_from_slice(&psi::build_pat(1, 1, 0x1000));
    pat.resize(188, 0xFF);
    ts.extend_from_slice(&pat);
    for (i, chunk) in section.chunks(184).enumerate() {
        let mut q = vec![0x47, if i == 0 { 0x50 } else { 0x10 }, 0, 0x10 | i as u8];
        q.extend_from_slice(chunk);
        q.resize(188, 0xFF);
        ts.extend_from_slice(&q);
    }
    let d = demux(&ts, 188);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.stats.ignored_streams, 184);
}

#[test]
fn a_pmt_change_announces_a_new_stream() {
    let av = demux(&fixture("avc_aac.ts"), 1316);
    let stream = av.last_stream().clone();
    let mut video_only = stream.clone();
    video_only.tracks.retain(|t| t.id == TrackId(1));
    let mut m = Muxer::new(&video_only).unwrap();
    let mut ts = Vec::new();
    let v = av.track(TrackId(1));
    for f in &v[..25] {
        ts.extend_from_slice(&m.frame(f).unwrap());
    }
    m.set_stream(&stream).unwrap();
    for f in av.frames.iter().filter(|f| f.dts >= v[25].dts) {
        ts.extend_from_slice(&m.frame(f).unwrap());
    }
    let d = demux(&ts, 1316);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.stats.pmt_changes, 1);
    assert_eq!(d.streams.len(), 2);
    assert_eq!(d.streams[0].tracks.len(), 1);
    assert_eq!(d.streams[1].tracks.len(), 2);
    // The video track kept its id and frames flow on.
    assert_eq!(d.track(TrackId(1)).len(), 50);
    assert!(!d.track(TrackId(2)).is_empty());
}

#[test]
fn pts_wrap_at_33_bits_stays_monotonic() {
    let src = demux(&fixture("avc_aac.ts"), 1316);
    // Shift the frames so the 33-bit counter wraps a second in.
    let shift = (1i64 << 33) - 90_000 - src.frames[0].dts;
    let frames: Vec<Frame> = src
        .frames
        .iter()
        .map(|f| Frame {
            pts: f.pts + shift,
            dts: f.dts + shift,
            ..f.clone()
        })
        .collect();
    let mut m = Muxer::new(src.last_stream()).unwrap();
    let ts: Vec<u8> = frames
        .iter()
        .flat_map(|f| m.frame(f).unwrap().to_vec())
        .collect();
    let d = demux(&ts, 1316);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    for track in [TrackId(1), TrackId(2)] {
        let times =
            |fs: Vec<&Frame>| -> Vec<(i64, i64)> { fs.iter().map(|f| (f.pts, f.dts)).collect() };
        let want = times(frames.iter().filter(|f| f.track == track).collect());
        assert_eq!(times(d.track(track)), want, "track {track}");
        assert!(want.iter().any(|&(_, dts)| dts >= 1 << 33));
        assert!(want.windows(2).all(|w| w[1].1 > w[0].1), "dts monotonic");
    }
}

#[test]
fn frames_carry_the_arrival_handed_in() {
    let file = fixture("opus.ts");
    let mut d = Demuxer::new();
    let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(42);
    d.set_arrival(t);
    d.push(&file);
    let mut n = 0;
    while let Some(ev) = d.poll_event() {
        if let starling_mpegts::DemuxEvent::Frame(f) = ev {
            assert_eq!(f.arrival, t);
            assert!(!f.data.is_empty());
            n += 1;
        }
    }
    assert!(n > 90);
    let _ = Bytes::new();
}

#[test]
fn pcr_on_a_pid_of_its_own() {
    let pmt = Pmt {
        program_number: 1,
        version_number: 0,
        pcr_pid: 0x1FF0,
        streams: vec![PmtStream {
            stream_type: stream_type::H264,
            elementary_pid: 0x100,
            descriptors: Vec::new(),
        }],
    };
    let mut ts = Vec::new();
    for (pid, section) in [
        (0, psi::build_pat(1, 1, 0x1000)),
        (0x1000, psi::build_pmt(&pmt)),
    ] {
        let mut q = vec![0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10];
        q.extend_from_slice(&section);
        q.resize(188, 0xFF);
        ts.extend_from_slice(&q);
    }
    // Adaptation field only: PCR base 90 000 (1 s), extension 0.
    let base: u64 = 90_000;
    let mut q = vec![0x47, 0x1F, 0xF0, 0x20, 183, 0x10];
    q.extend_from_slice(&[
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        (((base & 1) as u8) << 7) | 0x7E,
        0,
    ]);
    q.resize(188, 0xFF);
    ts.extend_from_slice(&q);
    let d = demux(&ts, 188);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.pcrs, [27_000_000]);
    assert_eq!(d.stats.unknown_pid_packets, 0);
}
