//! HEVC over Enhanced RTMP (`hvc1`), end to end through the real `starling serve`.
//!
//! Debian's ffmpeg 5.1 cannot publish HEVC over RTMP, so our own RTMP client publishes
//! the committed fixture (see crates/formats/flv/tests/fixtures/README.md for how it was made)
//! and plays it back; ffmpeg then decodes what came back. Where a newer ffmpeg (6.1+,
//! which speaks Enhanced RTMP) is installed, it publishes too.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use starling_flv::{
    file::{FlvReader, TagType},
    FlvIngest,
};
use starling_media::{nal, CodecConfig, Frame, MediaEvent};
use starling_rtmp::ClientEvent;
use starling_rtmp_server::client::RtmpClient;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../formats/flv/tests/fixtures/hevc_enhanced.flv"
);

/// Every (timestamp, type, body) of an FLV file.
fn tags(path: &str) -> Vec<(u32, TagType, Bytes)> {
    let mut r = FlvReader::new();
    r.push(&std::fs::read(path).unwrap());
    let mut out = Vec::new();
    while let Some(tag) = r.next_tag().unwrap() {
        out.push((tag.timestamp, tag.tag_type, tag.body));
    }
    out
}

/// Frames and configs as the FLV adapter sees them.
fn ingest(
    tags: &[(u32, TagType, Bytes)],
) -> (Vec<Frame>, Option<CodecConfig>, Option<CodecConfig>) {
    let mut ing = FlvIngest::new();
    let mut frames = Vec::new();
    let now = std::time::SystemTime::UNIX_EPOCH;
    for (ts, kind, body) in tags {
        let events = match kind {
            TagType::Video => ing.video(*ts, body.clone(), now).unwrap(),
            TagType::Audio => ing.audio(*ts, body.clone(), now).unwrap(),
            _ => continue,
        };
        frames.extend(events.into_iter().filter_map(|e| match e {
            MediaEvent::Frame(f) => Some(f),
            _ => None,
        }));
    }
    let stream = ing.stream();
    (
        frames,
        stream.video().map(|t| t.config.clone()),
        stream.audio().map(|t| t.config.clone()),
    )
}

#[test]
fn hevc_over_enhanced_rtmp_round_trips_and_decodes() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("hevc", "");
    let sent = tags(FIXTURE);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let received = rt.block_on(async {
        let mut player = RtmpClient::connect(server.rtmp, "live").await.unwrap();
        player.play(CHANNEL).await.unwrap();
        let mut publisher = RtmpClient::connect(server.rtmp, "live").await.unwrap();
        publisher.publish(KEY).await.unwrap();
        for (ts, kind, body) in &sent {
            match kind {
                TagType::Video => publisher.queue_video(*ts, body.clone()),
                TagType::Audio => publisher.queue_audio(*ts, body.clone()),
                _ => {}
            }
            publisher.flush().await.unwrap();
        }
        publisher.close().await.unwrap();
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), player.next_event()).await {
                Ok(Ok(Some(ClientEvent::Video { timestamp, data }))) => {
                    got.push((timestamp, TagType::Video, data))
                }
                Ok(Ok(Some(ClientEvent::Audio { timestamp, data }))) => {
                    got.push((timestamp, TagType::Audio, data))
                }
                Ok(Ok(Some(ClientEvent::StreamEof))) => break,
                Ok(Ok(Some(_))) => {}
                other => panic!("player: {other:?}; log:\n{}", server.log_text()),
            }
        }
        got
    });

    let (sent_frames, sent_video, sent_audio) = ingest(&sent);
    let (got_frames, got_video, got_audio) = ingest(&received);
    let Some(CodecConfig::H265(hevc)) = &got_video else {
        panic!("no HEVC config came back: {got_video:?}")
    };
    assert_eq!((hevc.width, hevc.height), (320, 240));
    assert_eq!(got_video, sent_video, "hvcC changed on the way");
    assert_eq!(
        got_audio, sent_audio,
        "AudioSpecificConfig changed on the way"
    );
    assert_eq!(sent_frames.len(), got_frames.len());
    for (i, (a, b)) in sent_frames.iter().zip(&got_frames).enumerate() {
        assert_eq!(
            (a.track, a.pts, a.dts, a.keyframe),
            (b.track, b.pts, b.dts, b.keyframe),
            "frame {i}"
        );
        assert_eq!(a.data, b.data, "frame {i} payload");
    }
    assert_eq!(got_frames.iter().filter(|f| f.track.0 == 1).count(), 25);

    // What came back decodes: write it as an HEVC elementary stream and let ffmpeg judge.
    let mut es = BytesMut::new();
    for ps in hevc.vps.iter().chain(&hevc.sps).chain(&hevc.pps) {
        es.put_slice(&[0, 0, 0, 1]);
        es.put_slice(ps);
    }
    for f in got_frames.iter().filter(|f| f.track.0 == 1) {
        es.put_slice(&nal::length_prefixed_to_annexb(&f.data, hevc.nal_length_size).unwrap());
    }
    let path = server.dir.join("played.hevc");
    std::fs::write(&path, &es).unwrap();
    let decode = run(Command::new("ffmpeg")
        .args(["-v", "error", "-f", "hevc", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"]));
    assert!(
        decode.stderr.is_empty(),
        "decode errors: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
    let v = probe_stream(&path, "video");
    assert!(
        v.contains("codec_name=hevc") && v.contains("width=320"),
        "{v}"
    );
    assert!(server.log_text().contains("RTMP publish ended"));
}

/// ffmpeg 6.1 and later publish HEVC over Enhanced RTMP themselves.
#[test]
fn a_newer_ffmpeg_publishes_hevc_itself_when_present() {
    if !require_ffmpeg() {
        return;
    }
    let version = run(Command::new("ffmpeg").arg("-version"));
    let first = String::from_utf8_lossy(&version.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    let major: u32 = first
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if major < 7 {
        // 6.1 added Enhanced RTMP output; 7 is the first release line that has it throughout.
        eprintln!("{first}: cannot publish HEVC over RTMP; covered by the fixture test instead");
        return;
    }
    let server = Server::start("hevc-ffmpeg", "");
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-t",
            "3",
        ])
        .args(["-c:v", "libx265", "-f", "flv"])
        .arg(server.rtmp_url(KEY))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = server.wait_log("RTMP publish ended", Duration::from_secs(10));
    assert!(log.contains("frames=75"), "{log}");
}
