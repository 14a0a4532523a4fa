//! End to end with the real tools: `starling serve` as a process, ffmpeg publishing over
//! RTMP (libx264 + aac, B-frames on), ffmpeg playing it back over RTMP, ffprobe judging.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

#[test]
fn ffmpeg_publishes_and_plays_back_over_rtmp_losslessly() {
    if !require_ffmpeg() {
        return;
    }
    let mut server = Server::start("ffmpeg-rtmp", "");
    let dir = server.dir.clone();
    let src = dir.join("src.flv");
    let played = dir.join("played.flv");

    // The player connects first and waits for the channel to go live, so it must
    // receive every frame from the first one.
    let mut player = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(server.rtmp_url(CHANNEL))
        .args(["-c", "copy", "-f", "flv"])
        .arg(&played)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    server.wait_log("RTMP play started", Duration::from_secs(20));

    // One encode, two outputs: the file is what was sent, byte for byte.
    let publish = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
        ])
        .args([
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
        ])
        .args(["-t", "10", "-map", "0:v", "-map", "1:a"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-pix_fmt", "yuv420p",
        ])
        .args(["-b:v", "1500k", "-c:a", "aac", "-b:a", "96k", "-f", "tee"])
        .arg(format!(
            "[f=flv]{}|[f=flv:onfail=abort]{}",
            src.display(),
            server.rtmp_url(KEY)
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        publish.status.success(),
        "publisher failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&publish.stderr),
        server.log_text()
    );

    // The publisher went away: the player must be told (StreamEOF / UnpublishNotify) and end.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = player.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = player.kill();
            panic!(
                "the RTMP player did not end after the publisher left; log:\n{}",
                server.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut player_err = String::new();
    use std::io::Read;
    player
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut player_err)
        .unwrap();
    assert!(status.success(), "player failed: {player_err}");

    let sent = probe_packets(&src);
    let got = probe_packets(&played);
    for kind in ["video", "audio"] {
        let s: Vec<_> = sent.iter().filter(|p| p.stream == kind).collect();
        let g: Vec<_> = got.iter().filter(|p| p.stream == kind).collect();
        assert!(!s.is_empty());
        assert_eq!(
            s.len(),
            g.len(),
            "{kind}: sent {} packets, played back {}",
            s.len(),
            g.len()
        );
        let (s0, g0) = (s[0].dts_ms, g[0].dts_ms);
        for (i, (a, b)) in s.iter().zip(&g).enumerate() {
            if kind == "audio" {
                assert_eq!(a.size, b.size, "{kind} packet {i}: size");
            } else {
                // The tee'd flv muxer had no decoder configuration, so it sent the
                // encoder's Annex B output; Starling turns each 3-byte start code into a
                // 4-byte length. Nothing else may change.
                assert!(
                    (a.size..=a.size + 8).contains(&b.size),
                    "{kind} packet {i}: size {} became {}",
                    a.size,
                    b.size
                );
            }
            assert_eq!(a.key, b.key, "{kind} packet {i}: keyframe flag");
            assert_eq!(a.dts_ms - s0, b.dts_ms - g0, "{kind} packet {i}: dts");
            // Composition offsets (B-frames) survive the trip.
            assert_eq!(
                a.pts_ms - a.dts_ms,
                b.pts_ms - b.dts_ms,
                "{kind} packet {i}: cto"
            );
        }
        // Monotonic and gapless: every step is one frame duration (ms rounding aside).
        let steps: Vec<i64> = g.windows(2).map(|w| w[1].dts_ms - w[0].dts_ms).collect();
        let (lo, hi) = if kind == "video" { (33, 34) } else { (23, 24) };
        assert!(
            steps.iter().all(|d| (lo..=hi).contains(d)),
            "{kind}: dts steps outside {lo}..={hi}: {:?}",
            steps
                .iter()
                .filter(|d| !(lo..=hi).contains(*d))
                .take(10)
                .collect::<Vec<_>>()
        );
    }
    let video = got.iter().filter(|p| p.stream == "video").count();
    assert_eq!(video, 300, "10 s at 30 fps");
    assert!(
        got.iter().find(|p| p.stream == "video").unwrap().key,
        "playback starts on a keyframe"
    );
    assert!(
        sent.iter().any(|p| p.pts_ms != p.dts_ms),
        "the source should have B-frames"
    );

    let v = probe_stream(&played, "video");
    for want in [
        "codec_name=h264",
        "width=640",
        "height=360",
        "profile=High",
        "pix_fmt=yuv420p",
    ] {
        assert!(v.contains(want), "video stream lacks {want}:\n{v}");
    }
    let a = probe_stream(&played, "audio");
    for want in [
        "codec_name=aac",
        "sample_rate=44100",
        "channels=1",
        "profile=LC",
    ] {
        assert!(a.contains(want), "audio stream lacks {want}:\n{a}");
    }
    // Every frame decodes.
    let decode = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&played)
        .args(["-f", "null", "-"]));
    assert!(
        decode.stderr.is_empty(),
        "decode errors: {}",
        String::from_utf8_lossy(&decode.stderr)
    );

    assert!(server.metric("starling_ingest_to_hub_seconds_count") >= 300.0);
    let status = server.stop();
    assert!(
        status.success(),
        "starling exited with {status} after SIGTERM"
    );
    let log = server.log_text();
    for want in [
        "RTMP publish started",
        "RTMP publish ended",
        "channel=e2e",
        "bye",
    ] {
        assert!(log.contains(want), "log lacks {want:?}:\n{log}");
    }
    assert!(
        !log.contains(KEY),
        "the stream key leaked into the log:\n{log}"
    );
}

#[test]
fn ffprobe_reads_a_live_ffmpeg_publish_over_rtmp() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("ffprobe-live", "");
    // The plain path: ffmpeg's flv muxer with a proper AVC sequence header.
    let mut publisher = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=854x480:rate=25",
        ])
        .args([
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:sample_rate=48000",
        ])
        .args([
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "25",
            "-profile:v",
            "main",
        ])
        .args(["-c:a", "aac", "-ac", "2", "-f", "flv"])
        .arg(server.rtmp_url(KEY))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    server.wait_log("RTMP publish started", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    // A late joiner: starts on the cached keyframe, learns the codecs from the sequence
    // headers and onMetaData that Starling sends.
    let probe = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "default=nw=1"])
        .arg(server.rtmp_url(CHANNEL)));
    let text = String::from_utf8_lossy(&probe.stdout);
    for want in [
        "codec_name=h264",
        "width=854",
        "height=480",
        "profile=Main",
        "codec_name=aac",
        "sample_rate=48000",
        "channels=2",
    ] {
        assert!(
            text.contains(want),
            "ffprobe of the live stream lacks {want}:\n{text}"
        );
    }
    let status = publisher.wait().unwrap();
    assert!(status.success(), "publisher failed");
}

#[test]
fn ffmpeg_with_a_wrong_key_is_refused_and_the_key_is_not_logged() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("ffmpeg-badkey", "");
    let wrong = server.secret("not-the-right-key-42");
    let wrong = wrong.as_str();
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=10",
            "-t",
            "2",
        ])
        .args(["-c:v", "libx264", "-f", "flv"])
        .arg(server.rtmp_url(wrong))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "ffmpeg published with a wrong key");
    let log = server.wait_log("RTMP publish refused", Duration::from_secs(10));
    assert!(log.contains("unknown or revoked stream key"), "{log}");
    assert!(
        log.contains("peer=127.0.0.1:"),
        "the refusal names the peer: {log}"
    );
    assert!(
        !log.contains(wrong),
        "the wrong key leaked into the log:\n{log}"
    );
}

/// A player that confuses its URL with the publisher's plays `live/STREAM_KEY` (and an
/// encoder set up with the key in the server URL sends it as the app or in tcUrl): the
/// play is refused and the key reaches no log line, whichever field carried it. The
/// harness checks the whole log for the key when the server stops.
#[test]
fn a_stream_key_used_as_a_play_path_or_app_is_not_logged() {
    if !require_ffmpeg() {
        return;
    }
    let mut server = Server::start("ffmpeg-keyplay", "");
    let rtmp = server.rtmp;
    for url in [
        format!("rtmp://{rtmp}/live/{KEY}"),
        format!("rtmp://{rtmp}/live/{KEY}?x=1"),
        format!("rtmp://{rtmp}/{KEY}/{CHANNEL}"),
        format!("rtmp://{rtmp}/live?key={KEY}/{CHANNEL}-nope"),
    ] {
        let out = Command::new("ffmpeg")
            .args(["-v", "quiet", "-rw_timeout", "5000000", "-i"])
            .arg(&url)
            .args(["-t", "1", "-f", "null", "-"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "a play of a key path was served");
    }
    server.wait_log("RTMP play refused", Duration::from_secs(10));
    assert!(server.stop().success());
}
