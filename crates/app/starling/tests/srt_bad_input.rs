//! SRT bad input end to end: garbage datagrams and a killed sender; a TS damaged on
//! purpose (packets missing, a storm of packets on PIDs no PMT lists, PES length lies)
//! published with srt-live-transmit beside a clean publisher on another channel. Each
//! kind of damage is counted on the link's API view and in `/metrics` and logged with
//! its cause; the clean channel loses nothing.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    io::Write,
    net::UdpSocket,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{srt::*, *};

#[test]
fn a_killed_sender_ends_the_stream_and_garbage_hurts_nobody() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start_env(
        "srt-kill",
        "",
        &[("STARLING_SRT_PEER_IDLE_TIMEOUT_MS", "2000")],
    );
    let src = server.dir.join("src.ts");
    let url = server.srt_url(KEY, "");
    let mut publisher = publish_ts(&url, &src, 60).spawn().unwrap();
    wait_live(&server);
    // Garbage at the listener: random datagrams, a fake handshake header, empty ones.
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut x = 0x1234_5678u32;
    for i in 0..2000u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let len = (x % 1500) as usize;
        let mut d: Vec<u8> = (0..len)
            .map(|j| (x.rotate_left(j as u32 % 32) & 0xff) as u8)
            .collect();
        if i % 3 == 0 && d.len() >= 16 {
            d[0] = 0x80; // control packet
            d[1] = 0x00; // handshake
        }
        let _ = junk.send_to(&d, server.srt);
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        publisher.try_wait().unwrap().is_none(),
        "the publisher survived the garbage"
    );
    let live = wait_live(&server);
    let before = live["ingest"]["packets_received"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let after = wait_live(&server)["ingest"]["packets_received"]
        .as_u64()
        .unwrap();
    assert!(after > before, "media kept flowing: {before} -> {after}");
    // A second publisher of the live channel is refused in the handshake, and told why.
    let second = publish_ts(&url, &server.dir.join("second.ts"), 2)
        .output()
        .unwrap();
    assert!(!second.status.success(), "a second publisher got in");
    server.wait_log(
        "the channel already has a publisher",
        Duration::from_secs(5),
    );
    assert!(
        publisher.try_wait().unwrap().is_none(),
        "the first publisher is unaffected"
    );
    // kill -9: no goodbye; the link's idle timeout ends the stream.
    publisher.kill().unwrap();
    let killed = Instant::now();
    let _ = publisher.wait();
    server.wait_log("SRT publish ended", Duration::from_secs(10));
    assert!(
        killed.elapsed() < Duration::from_secs(6),
        "ended {:?} after the kill",
        killed.elapsed()
    );
}

/// What [`damage`] did to a clean TS.
#[derive(Debug, Default)]
struct Damage {
    /// Video packets left out (each one a continuity_counter gap).
    dropped: usize,
    /// Packets added on PIDs the PMT does not list.
    storm: usize,
    /// Audio PES whose PES_packet_length was made to lie.
    lies: usize,
}

/// A copy of the clean TS `ts` with damage of three kinds: every 400th video packet
/// left out; after every 4th packet one on a PID from 0x1100 up that no PMT lists;
/// every 3rd audio PES declaring 100 bytes more than it has.
fn damage(ts: &[u8]) -> (Vec<u8>, Damage) {
    assert_eq!(ts.len() % 188, 0, "a whole number of TS packets");
    let mut out = Vec::with_capacity(ts.len() * 3 / 2);
    let mut d = Damage::default();
    let (mut video_pid, mut audio_pid) = (None, None);
    let (mut video_packets, mut audio_pes) = (0usize, 0usize);
    let mut storm_cc = [0u8; 0x100];
    for (i, p) in ts.chunks_exact(188).enumerate() {
        let mut p = p.to_vec();
        let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
        let pusi = p[1] & 0x40 != 0;
        let payload = match (p[3] >> 4) & 3 {
            1 => 4,
            3 => 5 + usize::from(p[4]),
            _ => 188,
        };
        if pusi && payload + 9 <= 188 && p[payload..payload + 3] == [0, 0, 1] {
            match p[payload + 3] {
                0xe0..=0xef => video_pid = Some(pid),
                0xc0..=0xdf => audio_pid = Some(pid),
                _ => {}
            }
        }
        if Some(pid) == video_pid {
            video_packets += 1;
            if video_packets % 400 == 0 {
                d.dropped += 1;
                continue;
            }
        }
        if Some(pid) == audio_pid && pusi && p[payload..payload + 3] == [0, 0, 1] {
            audio_pes += 1;
            let len = u16::from_be_bytes([p[payload + 4], p[payload + 5]]);
            if audio_pes % 3 == 0 && len != 0 && len < 0xff00 {
                p[payload + 4..payload + 6].copy_from_slice(&(len + 100).to_be_bytes());
                d.lies += 1;
            }
        }
        out.extend_from_slice(&p);
        if i % 4 == 3 {
            let k = d.storm % 0x100;
            // Clear of ffmpeg's PIDs (PMT 0x1000, streams 0x100 and up).
            let storm_pid = 0x1100 + k as u16 * 7;
            let mut s = [0xa5u8; 188];
            s[0] = 0x47;
            s[1] = 0x40 | (storm_pid >> 8) as u8;
            s[2] = storm_pid as u8;
            s[3] = 0x10 | storm_cc[k];
            storm_cc[k] = (storm_cc[k] + 1) & 0x0f;
            out.extend_from_slice(&s);
            d.storm += 1;
        }
    }
    (out, d)
}

#[test]
fn a_damaged_ts_is_counted_and_named_and_the_clean_channel_loses_nothing() {
    if !require_ffmpeg() {
        return;
    }
    const OTHER: &str = "clean";
    const OTHER_KEY: &str = "clean-channel-key-2";
    let server = Server::start(
        "srt-damaged",
        &format!("\n[[channels]]\nname = \"{OTHER}\"\nstream_key = \"{OTHER_KEY}\"\n"),
    );
    server.secret(OTHER_KEY);
    // The clean publisher, in real time for 14 s, keeping a copy of what it sent.
    let clean_copy = server.dir.join("clean.ts");
    // Lingering on close, so that ffmpeg's tail is sent (see srt.rs).
    let mut clean = publish_ts(&server.srt_url(OTHER_KEY, "&linger=5"), &clean_copy, 14)
        .spawn()
        .unwrap();
    wait_live_channel(&server, OTHER);

    // The damaged feed: 8 s of 640x360 H.264 + AAC, damaged, paced to real time into
    // srt-live-transmit's standard input (it sends what it reads at once).
    let src = server.dir.join("damaged-src.ts");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=30")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "8", "-map", "0:v", "-map", "1:a"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"])
        .args(["-b:v", "1M", "-c:a", "aac", "-f", "mpegts"])
        .arg(&src));
    let (bad, done) = damage(&std::fs::read(&src).unwrap());
    assert!(
        done.dropped > 5 && done.storm > 1000 && done.lies > 5,
        "{done:?}"
    );
    let mut slt = Command::new("srt-live-transmit")
        .arg("file://con")
        .arg(server.srt_url(KEY, ""))
        .args(["-q", "-a:no", "-t:12"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = slt.stdin.take().unwrap();
    let chunks: Vec<&[u8]> = bad.chunks(1316).collect();
    let start = Instant::now();
    for (i, c) in chunks.iter().enumerate() {
        let due = Duration::from_secs(8) * i as u32 / chunks.len() as u32;
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        stdin.write_all(c).unwrap();
    }
    drop(stdin);
    // Counted while the link is up: the API view of the link and /metrics.
    let deadline = Instant::now() + Duration::from_secs(5);
    let ingest = loop {
        let ingest = wait_live(&server)["ingest"].clone();
        let n = |k: &str| {
            ingest[k]
                .as_u64()
                .unwrap_or_else(|| panic!("{k}: {ingest}"))
        };
        if n("ts_unknown_pid_packets") >= done.storm as u64
            && n("ts_continuity_errors") >= done.dropped as u64 / 2
            && n("ts_pes_length_errors") >= 1
            && n("ts_pes_lost") >= 1
        {
            break ingest;
        }
        assert!(
            Instant::now() < deadline,
            "damage not counted: {ingest}, sent {done:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(ingest["ts_packets"].as_u64() > Some(done.storm as u64));
    let metric = |name: &str| server.metric(&format!("{name}{{channel=\"{CHANNEL}\"}}"));
    assert!(metric("starling_srt_link_ts_unknown_pid_packets_total") >= done.storm as f64);
    assert!(metric("starling_srt_link_ts_continuity_errors_total") >= 1.0);
    assert!(metric("starling_srt_link_ts_pes_length_errors_total") >= 1.0);
    assert!(server.metric("starling_srt_media_errors_total") >= done.dropped as f64 / 2.0);
    assert!(
        wait_exit(&mut slt, Duration::from_secs(30)).is_some(),
        "srt-live-transmit did not end"
    );
    // Named in the log: the first errors with their cause, the totals at the end.
    let log = server.wait_log("SRT link totals", Duration::from_secs(15));
    assert!(log.contains("SRT media dropped"), "{log}");
    assert!(log.contains("continuity_counter"), "{log}");
    assert!(log.contains("PES_packet_length says"), "{log}");
    let end = log
        .lines()
        .find(|l| l.contains("SRT link totals") && l.contains(&format!("channel={CHANNEL}")))
        .unwrap_or_else(|| panic!("{log}"))
        .to_owned();
    let count = |field: &str| -> u64 {
        end.split(&format!(" {field}="))
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{field} in {end}"))
    };
    assert!(
        count("continuity_errors") >= done.dropped as u64 / 2,
        "{end}: {done:?}"
    );
    assert!(count("unknown_pid_packets") >= done.storm as u64, "{end}");
    assert!(count("pes_length_errors") >= 1, "{end}");

    // The clean channel, live all along beside it, has every frame it was sent.
    let clean_live = wait_live_channel(&server, OTHER);
    for k in [
        "ts_continuity_errors",
        "ts_pes_length_errors",
        "ts_pes_lost",
    ] {
        assert_eq!(clean_live["ingest"][k], 0, "{k}: {clean_live}");
    }
    // ffmpeg's SDT (PID 0x11) is on no PMT: a few, not a storm.
    assert!(
        clean_live["ingest"]["ts_unknown_pid_packets"].as_u64() < Some(done.storm as u64 / 10),
        "{clean_live}"
    );
    assert!(wait_exit(&mut clean, Duration::from_secs(40)).is_some_and(|s| s.success()));
    let path = format!("/live/{OTHER}/source/index.m3u8");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server
        .http_get(&path)
        .is_some_and(|t| t.contains("#EXT-X-ENDLIST"))
    {
        assert!(Instant::now() < deadline, "{OTHER} never ended");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_every_frame(&server.http_url(&path), &clean_copy);
    // And the damaged channel still made a playable stream of what was whole.
    let hls = ended_playlist(&server);
    assert!(
        video_packets(&hls) > 100,
        "the damaged channel's whole frames are out"
    );
    server.assert_no_secret_in_log();
}
