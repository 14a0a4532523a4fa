//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::sync::Arc;

use starling_media::{Frame, Stream, TrackId};
use starling_mpegts::{DemuxEvent, DemuxStats, Demuxer};

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Everything a demuxer said about some input.
#[derive(Debug, Default)]
pub struct Demuxed {
    pub streams: Vec<Arc<Stream>>,
    pub frames: Vec<Frame>,
    pub pcrs: Vec<u64>,
    pub discontinuities: Vec<u16>,
    pub errors: Vec<String>,
    pub stats: DemuxStats,
}

impl Demuxed {
    pub fn track(&self, id: TrackId) -> Vec<&Frame> {
        self.frames.iter().filter(|f| f.track == id).collect()
    }

    pub fn last_stream(&self) -> &Stream {
        self.streams.last().expect("a stream was announced")
    }
}

pub fn drain(d: &mut Demuxer, out: &mut Demuxed) {
    while let Some(ev) = d.poll_event() {
        match ev {
            DemuxEvent::Stream(s) => out.streams.push(s),
            DemuxEvent::Frame(f) => out.frames.push(f),
            DemuxEvent::Pcr { pcr, .. } => out.pcrs.push(pcr),
            DemuxEvent::Discontinuity { pid } => out.discontinuities.push(pid),
            DemuxEvent::Error(e) => out.errors.push(e.to_string()),
            other => panic!("unexpected event {other:?}"),
        }
    }
}

/// Demuxes `data` pushed in pieces of `piece` bytes, then flushes.
pub fn demux(data: &[u8], piece: usize) -> Demuxed {
    demux_with(Demuxer::new(), data, piece)
}

pub fn demux_with(mut d: Demuxer, data: &[u8], piece: usize) -> Demuxed {
    let mut out = Demuxed::default();
    for chunk in data.chunks(piece.max(1)) {
        d.push(chunk);
        drain(&mut d, &mut out);
    }
    d.flush();
    drain(&mut d, &mut out);
    out.stats = d.stats().clone();
    out
}
