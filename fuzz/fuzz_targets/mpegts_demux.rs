//! The MPEG-TS demuxer on arbitrary bytes: must never panic, never keep a PES past its
//! cap, and give the same events whether the input comes whole or in pieces. What it
//! demuxes is muxed again and demuxed again (no panic, no muxer error for frames of an
//! announced track).
//!
//! Input layout: byte 0 picks the piece size; the rest is the transport stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_mpegts::{DemuxConfig, DemuxEvent, Demuxer, Muxer};

const CAP: usize = 1 << 16;

fn run(input: &[u8], piece: usize) -> Vec<DemuxEvent> {
    let mut d = Demuxer::with_config(DemuxConfig {
        max_video_pes: CAP,
        max_audio_pes: CAP,
        max_elementary_streams: 4,
    });
    let mut events = Vec::new();
    for chunk in input.chunks(piece) {
        d.push(chunk);
        while let Some(e) = d.poll_event() {
            events.push(e);
        }
    }
    d.flush();
    while let Some(e) = d.poll_event() {
        events.push(e);
    }
    events
}

fn summary(events: &[DemuxEvent]) -> Vec<String> {
    events.iter().map(|e| format!("{e:?}")).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let whole = run(input, input.len().max(1));
    let pieces = run(input, usize::from(step).max(1));
    assert_eq!(summary(&whole), summary(&pieces));

    let mut muxer: Option<Muxer> = None;
    let mut again = Vec::new();
    for e in &whole {
        match e {
            DemuxEvent::Stream(s) => match &mut muxer {
                Some(m) => m
                    .set_stream(s)
                    .expect("the demuxer announces muxable tracks"),
                None => muxer = Some(Muxer::new(s).expect("the demuxer announces muxable tracks")),
            },
            DemuxEvent::Frame(f) => {
                assert!(f.data.len() <= CAP);
                let m = muxer.as_mut().expect("frames follow their stream");
                // A frame may still be refused (e.g. an AAC frame too long for ADTS).
                if let Ok(ts) = m.frame(f) {
                    again.extend_from_slice(&ts);
                }
            }
            _ => {}
        }
    }
    let _ = run(&again, 1316);
});
