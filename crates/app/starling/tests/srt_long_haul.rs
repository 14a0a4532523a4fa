//! The contribution link at full size: a 20 Mbit/s 1080p30 H.264 + AAC feed over
//! SRT through 200 ms of RTT and 5 % random loss both ways, for 60 s, out of LL-HLS with
//! every frame. Alone in its own test binary: cargo runs test binaries one after
//! another, so nothing else competes with the link for the two cores of CI. The same
//! link at 40 Mbit/s, and RTMP through it, are measured in bench/ (docs/performance.md).

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    process::{Command, Stdio},
    time::Duration,
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
    lossy_link_clip(&clip, "1920x1080", 10, 19_700);
    // 200 ms RTT, 5 % loss each way; latency 6 x RTT (see srt.rs's lossy test).
    let relay = long_haul_link(&server, 20);
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
    let startup = first_part_startup(&server, &relay, Duration::from_millis(1200));
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
