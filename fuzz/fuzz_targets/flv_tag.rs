//! FLV tag bodies, the FLV ingest and the FLV file reader on arbitrary bytes: must never
//! panic; a coded video frame that parses must survive rebuild -> re-parse unchanged.
//!
//! Input layout: byte 0 picks the piece size for the file reader; the rest is read as
//! records `[kind:1][len:1][body:len]` fed to one FlvIngest (kind bit 0: video/audio),
//! and also as an FLV file.
#![no_main]

use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use starling_flv::{
    tag::{
        parse_audio, parse_video, video_header, FrameType, VideoPacket, VideoPacketKind, VideoTag,
    },
    FlvIngest, FlvReader,
};

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let input = Bytes::copy_from_slice(input);

    let mut ingest = FlvIngest::new();
    let mut rest = input.clone();
    let mut ts = 0u32;
    while rest.len() >= 2 {
        let (kind, len) = (rest[0], usize::from(rest[1]));
        let end = (2 + len).min(rest.len());
        let body = rest.slice(2..end);
        rest = rest.slice(end..);
        ts = ts.wrapping_add(u32::from(kind) << 20);
        let _ = if kind & 1 == 0 {
            ingest.video(ts, body.clone(), SystemTime::UNIX_EPOCH)
        } else {
            ingest.audio(ts, body.clone(), SystemTime::UNIX_EPOCH)
        };
        let _ = parse_audio(&body);
        if let Ok(VideoTag::Media {
            frame_type: frame_type @ (FrameType::Key | FrameType::Inter),
            codec,
            packet:
                VideoPacket::CodedFrames {
                    composition_time,
                    data,
                },
            ..
        }) = parse_video(&body)
        {
            let kind = VideoPacketKind::CodedFrames { composition_time };
            let mut again = BytesMut::from(&video_header(codec, frame_type, &kind)[..]);
            again.extend_from_slice(&data);
            let reparsed = parse_video(&again.freeze()).expect("re-parsing our own header");
            let VideoTag::Media {
                packet,
                codec: c2,
                frame_type: f2,
                ..
            } = reparsed
            else {
                panic!("rebuilt frame is not media");
            };
            assert_eq!((c2, f2), (codec, frame_type));
            assert_eq!(
                packet,
                VideoPacket::CodedFrames {
                    composition_time,
                    data
                }
            );
        }
    }

    let mut reader = FlvReader::with_max_tag_size(1 << 16);
    for piece in input.chunks(usize::from(step).max(1)) {
        reader.push(piece);
        loop {
            match reader.next_tag() {
                Ok(Some(tag)) => assert!(tag.body.len() <= 1 << 16),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
