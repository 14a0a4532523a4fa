//! The contribution link at full size: a 20 Mbit/s 1080p30 H.264 + AAC feed over
//! SRT through 200 ms of RTT and 5 % random loss both ways, for 60 s, out of LL-HLS with
//! every frame. Alone in its own test binary: cargo runs test binaries one after
//! another, so nothing else competes with the link for the two cores of CI. RTMP
//! through the same link is `rtmp_long_haul.rs`; 40 Mbit/s is measured in bench/
//! (docs/performance.md).

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use common::{srt::*, *};

#[test]
fn a_20_mbit_1080p_feed_crosses_60_s_of_a_lossy_long_haul_link() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("srt-long-haul", "");
    // 10 s of constant-rate 1080p30 (a keyframe every 2 s) + AAC, sent six times over.
    let clip = server.dir.join("clip.ts");
    lossy_link_clip(&clip, "1920x1080", 10, 19_700);
    // 200 ms RTT, 5 % loss each way; latency 8 x RTT. At 6 x RTT (1.2 s) libsrt gave
    // up on one to three of the ~120,000 packets of a minute in two runs of three on
    // this machine while other work shared its two cores (docs/srt.md); the SRT
    // guidance is 6 x RTT at up to 7 % loss and 8 x at up to 10 %.
    let relay = long_haul_link(&server, 20);
    let url = format!(
        "srt://{}?streamid=#!::r={CHANNEL},m=publish,s={KEY}&latency=1600000&linger=5",
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
    let startup = first_part_startup(&server, &relay, Duration::from_millis(1600));
    let status = wait_exit(&mut publisher, Duration::from_secs(120)).expect("publisher ends");
    assert!(status.success(), "the sender failed");
    let hls = ended_playlist(&server);
    let (bytes_in, lost) = relay.finish();
    assert!(lost > 3_000, "the link did lose datagrams: {lost}");
    assert_eq!(video_packets(sent.to_str().unwrap()), 1800, "60 s sent");
    // Nothing went missing on the way: no TS packet lost, no PES dropped, no packet
    // libsrt gave up on (the link's totals at its end).
    let log = server.log_text();
    let totals = log
        .lines()
        .rfind(|l| l.contains("SRT link totals"))
        .unwrap_or_else(|| panic!("no totals: {log}"))
        .to_owned();
    for clean in [" dropped=0 ", " continuity_errors=0 ", " pes_lost=0"] {
        assert!(totals.contains(clean), "{clean}: {totals}");
    }
    // Every frame, but for the close: a sender that closes right after its last frame
    // can lose the last few packets over a lossy link (libsrt's live mode has no later
    // packet to reveal a lost tail; it arrived whole in 4 runs of 6, ~75 ms short in
    // the others). On a clean link the last frame arrives (srt.rs).
    let sent_video = video_packets(sent.to_str().unwrap());
    let out = probe_packets(std::path::Path::new(&hls));
    let video: Vec<&Packet> = out.iter().filter(|p| p.stream == "video").collect();
    assert!(
        video.len() <= sent_video && video.len() + 30 >= sent_video,
        "{} frames out of {sent_video}",
        video.len()
    );
    assert!(video.windows(2).all(|w| w[0].dts_ms < w[1].dts_ms));
    // Every frame decodes but for that lost tail: the last frame can arrive cut short
    // (its final packets lost with nothing after them to reveal the loss), so the last
    // two seconds are left out of the decode, as they are of the frame count.
    let span_s = (video.last().unwrap().dts_ms - video[0].dts_ms) / 1000;
    assert_decodes_first(&hls, Some(span_s.saturating_sub(2) as u64));
    let ts = std::fs::metadata(&sent).unwrap().len() as f64 * 1332.0 / 1316.0;
    eprintln!(
        "start-up {startup:?}; sender overhead {:.1} %; {lost} datagrams lost by the link; {} of {sent_video} frames; {totals}",
        (bytes_in as f64 / ts - 1.0) * 100.0,
        video.len()
    );
}
