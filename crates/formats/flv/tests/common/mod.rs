//! Helpers shared by the FLV integration tests.
#![allow(dead_code, clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::{sync::Arc, time::SystemTime};

use bytes::Bytes;
use starling_flv::{egress, FlvIngest, FlvReader, FlvTag, FlvWriter, TagType};
use starling_media::{Frame, MediaEvent, Stream};

pub const T0: SystemTime = SystemTime::UNIX_EPOCH;

pub fn fixture(name: &str) -> Bytes {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// Reads every tag of an FLV file, feeding it in awkward 1000-byte pieces.
pub fn read_tags(file: &[u8]) -> Vec<FlvTag> {
    let mut r = FlvReader::new();
    let mut tags = Vec::new();
    for piece in file.chunks(1000) {
        r.push(piece);
        while let Some(t) = r.next_tag().unwrap() {
            tags.push(t);
        }
    }
    assert_eq!(r.previous_tag_size_mismatches(), 0);
    tags
}

/// What an ingest produced, split by kind.
#[derive(Debug, Default, PartialEq)]
pub struct Ingested {
    pub streams: Vec<Arc<Stream>>,
    pub video: Vec<Frame>,
    pub audio: Vec<Frame>,
}

impl Ingested {
    pub fn last_stream(&self) -> &Stream {
        self.streams.last().expect("a Stream event")
    }
}

pub fn ingest_tags(tags: &[FlvTag]) -> (Ingested, FlvIngest) {
    let mut ing = FlvIngest::new();
    let mut out = Ingested::default();
    for t in tags {
        let events = match t.tag_type {
            TagType::Video => ing.video(t.timestamp, t.body.clone(), T0).unwrap(),
            TagType::Audio => ing.audio(t.timestamp, t.body.clone(), T0).unwrap(),
            _ => continue,
        };
        for e in events {
            match e {
                MediaEvent::Stream(s) => out.streams.push(s),
                MediaEvent::Frame(f) if f.track == starling_flv::VIDEO_TRACK => out.video.push(f),
                MediaEvent::Frame(f) => out.audio.push(f),
            }
        }
    }
    (out, ing)
}

/// Model → FLV tags (sequence headers at the first frame's time, then every frame in
/// decode order, audio and video interleaved) → an FLV file.
pub fn egress_file(stream: &Stream, video: &[Frame], audio: &[Frame]) -> Bytes {
    let mut w = FlvWriter::new(stream.audio().is_some(), stream.video().is_some());
    if let Some(v) = stream.video() {
        let body = egress::video_sequence_header(v).unwrap();
        w.write_tag(TagType::Video, 0, &body).unwrap();
    }
    if let Some(a) = stream.audio() {
        let body = egress::audio_sequence_header(a).unwrap();
        w.write_tag(TagType::Audio, 0, &body).unwrap();
    }
    let (mut vi, mut ai) = (video.iter().peekable(), audio.iter().peekable());
    loop {
        let take_video = match (vi.peek(), ai.peek()) {
            (Some(v), Some(a)) => v.dts <= a.dts,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if take_video {
            let (f, t) = (vi.next().unwrap(), stream.video().unwrap());
            let body = egress::video_tag(f, t).unwrap();
            w.write_tag(TagType::Video, egress::tag_timestamp(f, t), &body)
                .unwrap();
        } else {
            let (f, t) = (ai.next().unwrap(), stream.audio().unwrap());
            let body = egress::audio_tag(f, t).unwrap();
            w.write_tag(TagType::Audio, egress::tag_timestamp(f, t), &body)
                .unwrap();
        }
    }
    w.take()
}

/// ingest → egress → ingest must give the same configs and frames.
pub fn assert_round_trip(first: &Ingested) {
    let file = egress_file(first.last_stream(), &first.video, &first.audio);
    let (second, ing) = ingest_tags(&read_tags(&file));
    assert_eq!(ing.dropped_before_config(), 0);
    assert_eq!(second.last_stream(), first.last_stream());
    assert_eq!(second.video, first.video);
    assert_eq!(second.audio, first.audio);
}
