//! The contribution link at full size: a 20 Mbit/s 1080p30 H.264 + AAC feed over
//! SRT through 200 ms of RTT and 5 % random loss both ways, for 60 s, out of LL-HLS with
//! every frame. Alone in its own test binary: cargo runs test binaries one after
//! another, so nothing else competes with the link for the two cores of CI. The same
//! link at 40 Mbit/s, and RTMP through it, are measured in bench/ (docs/performance.md).

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{srt::*, *};

#[test]
fn a_20_mbit_1080p_feed_crosses_60_s_of_a_lossy_long_haul_link_whole() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("srt-long-haul", "");
    // 10 s of constant-rate 1080p30 (a keyframe every 2 s) + AAC, sent six times over.
    let clip = server.dir.join("clip.ts");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1920x1080:rate=30")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "10", "-map", "0:v", "-map", "1:a"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-g", "60", "-b:v", "19700k", "-minrate", "19700k"])
        .args(["-maxrate", "19700k", "-bufsize", "19700k"])
        .args(["-x264-params", "nal-hrd=cbr", "-c:a", "aac", "-b:a", "128k"])
        .args(["-f", "mpegts"])
        .arg(&clip));
    // 200 ms RTT, 5 % loss each way; latency 6 x RTT (see srt.rs's lossy test).
    let relay = Relay::start(
        server.srt,
        starling_bench::impair::Config {
            loss: 0.05,
            delay: Duration::from_millis(100),
            ..Default::default()
        },
        20,
    );
    let url = format!(
        "srt://{}?streamid=#!::r={CHANNEL},m=publish,s={KEY}&latency=1200000&linger=5",
        relay.addr
    );
    let sent = server.dir.join("sent.ts");
    let mut publisher = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-stream_loop", "5", "-i"])
        .arg(&clip)
        .args(["-map", "0", "-c", "copy", "-f", "tee"])
        .arg(format!(
            "[f=mpegts]{}|[f=mpegts:onfail=abort]{url}",
            sent.display()
        ))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // The first part, asked for at once, within the latency + 1 s of the first media
    // packet reaching Starling.
    let first_part_path = format!("/live/{CHANNEL}/source/index.m3u8?_HLS_msn=0&_HLS_part=0");
    let deadline = Instant::now() + Duration::from_secs(20);
    let first_part = loop {
        if server.http_get(&first_part_path).is_some() {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "no part; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let first_packet = relay.first.lock().unwrap().expect("media went through");
    let startup = first_part - first_packet;
    assert!(
        startup < Duration::from_millis(1200 + 1000),
        "first part {startup:?} after the first media packet"
    );
    let status = wait_exit(&mut publisher, Duration::from_secs(120)).expect("publisher ends");
    assert!(status.success(), "the sender failed");
    let hls = ended_playlist(&server);
    let (bytes_in, lost) = relay.finish();
    assert!(lost > 3_000, "the link did lose datagrams: {lost}");
    assert_eq!(video_packets(sent.to_str().unwrap()), 1800, "60 s sent");
    assert_every_frame(&hls, &sent);
    let ts = std::fs::metadata(&sent).unwrap().len() as f64 * 1332.0 / 1316.0;
    let log = server.log_text();
    let totals = log
        .lines()
        .rfind(|l| l.contains("SRT link totals"))
        .unwrap_or_default()
        .to_owned();
    eprintln!(
        "start-up {startup:?}; sender overhead {:.1} %; {lost} datagrams lost by the link; {totals}",
        (bytes_in as f64 / ts - 1.0) * 100.0
    );
}
