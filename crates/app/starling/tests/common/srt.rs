//! Helpers of the SRT end-to-end tests: an ffmpeg publisher that keeps a copy of what it
//! sent, the checks on what comes out of LL-HLS, and a lossy link (udp-relay's model
//! driven by a thread).

use std::{
    net::UdpSocket,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::*;

/// `seconds` of 640x360 30 fps H.264 (a keyframe a second) + AAC, as MPEG-TS, in real
/// time: written to `copy` (what was sent) and sent to `url` in one encode.
pub fn publish_ts(url: &str, copy: &Path, seconds: u32) -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-re", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=30")
        .args([
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ])
        .args(["-t", &seconds.to_string(), "-map", "0:v", "-map", "1:a"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p",
        ])
        .args(["-b:v", "1500k", "-c:a", "aac", "-b:a", "96k", "-f", "tee"])
        .arg(format!(
            "[f=mpegts]{}|[f=mpegts:onfail=abort]{url}",
            copy.display()
        ))
        .stdin(Stdio::null());
    cmd
}

pub fn video_packets(url_or_file: &str) -> usize {
    probe_packets(Path::new(url_or_file))
        .iter()
        .filter(|p| p.stream == "video")
        .count()
}

/// Waits for the channel's playlist to carry ENDLIST (the publish ended and the grace
/// passed), then returns the media playlist's URL.
pub fn ended_playlist(server: &Server) -> String {
    let path = format!("/live/{CHANNEL}/source/index.m3u8");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if server
            .http_get(&path)
            .is_some_and(|t| t.contains("#EXT-X-ENDLIST"))
        {
            return server.http_url(&path);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no ENDLIST; log:\n{}", server.log_text());
}

/// Every video frame of the TS file `sent` comes out of the LL-HLS playlist `hls`, in
/// DTS order, and the whole playlist decodes without an error.
pub fn assert_every_frame(hls: &str, sent: &Path) {
    let got = probe_packets(Path::new(hls));
    let video: Vec<&Packet> = got.iter().filter(|p| p.stream == "video").collect();
    assert_eq!(
        video.len(),
        video_packets(sent.to_str().unwrap()),
        "video frames out of LL-HLS vs sent"
    );
    assert!(
        video.windows(2).all(|w| w[0].dts_ms < w[1].dts_ms),
        "monotonic DTS"
    );
    assert_decodes(hls);
}

/// The whole playlist `hls` decodes without an error.
pub fn assert_decodes(hls: &str) {
    assert_decodes_first(hls, None);
}

/// The playlist `hls` decodes without an error: all of it, or its first `seconds`
/// (a lossy link may cut the sender's last frame short: see srt_long_haul.rs).
pub fn assert_decodes_first(hls: &str, seconds: Option<u64>) {
    // Frames keep the stream's time base (90 kHz): by default ffmpeg re-times them to
    // 1/30 s for the null muxer, and a source with millisecond timestamps (RTMP) whose
    // phase drifts by a few ms at each seam of a looped clip then rounds two frames into
    // one slot, which the muxer reports as an error of ours. The order of what Starling
    // sent is checked on its own timestamps (ffprobe) by the callers.
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-i"]).arg(hls);
    if let Some(s) = seconds {
        cmd.args(["-t", &s.to_string()]);
    }
    let decode = run(cmd.args(["-enc_time_base", "-1", "-f", "null", "-"]));
    assert!(
        String::from_utf8_lossy(&decode.stderr).trim().is_empty(),
        "decode errors: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
}

/// The channel's entry of `/api/v1/live` once its SRT link has delivered packets.
pub fn wait_live(server: &Server) -> serde_json::Value {
    wait_live_channel(server, CHANNEL)
}

pub fn wait_live_channel(server: &Server, channel: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some((200, body)) = server.http_bytes("/api/v1/live") {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            if let Some(ch) = v["channels"]
                .as_array()
                .and_then(|a| a.iter().find(|c| c["name"] == channel))
            {
                if !ch["ingest"].is_null() && ch["ingest"]["packets_received"].as_u64() > Some(0) {
                    return ch.clone();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{channel} not live over SRT; log:\n{}", server.log_text());
}

pub fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// A lossy link in the test: udp-relay's model (`starling_bench::impair`) driven by a
/// thread. Datagrams from `to` go back to the last sender; everything else goes to `to`.
pub struct Relay {
    pub addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// When the first data packet (not the handshake) went out to Starling: the start
    /// of the stream at Starling's end of the link.
    pub first: std::sync::Arc<std::sync::Mutex<Option<Instant>>>,
    thread: Option<std::thread::JoinHandle<(u64, u64)>>,
}

impl Relay {
    pub fn start(
        to: std::net::SocketAddr,
        cfg: starling_bench::impair::Config,
        seed: u64,
    ) -> Relay {
        use starling_bench::impair::Impairment;
        use std::sync::{atomic::Ordering, Arc, Mutex};
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let first = Arc::new(Mutex::new(None));
        let (stop2, first2) = (stop.clone(), first.clone());
        let thread = std::thread::spawn(move || {
            let mut fwd = Impairment::new(cfg.clone(), seed).unwrap();
            let mut rev = Impairment::new(cfg, seed ^ 0x5eed).unwrap();
            let t0 = Instant::now();
            let mut sender = None;
            let mut buf = vec![0u8; 65536];
            while !stop2.load(Ordering::Relaxed) {
                let now = t0.elapsed();
                let next = starling_bench::impair::Impairment::next_release(&fwd, &rev)
                    .map_or(Duration::from_millis(5), |t| t.saturating_sub(now));
                sock.set_read_timeout(Some(
                    next.clamp(Duration::from_micros(200), Duration::from_millis(5)),
                ))
                .unwrap();
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let data = bytes::Bytes::copy_from_slice(&buf[..n]);
                    if from == to {
                        rev.push(t0.elapsed(), data);
                    } else {
                        sender = Some(from);
                        fwd.push(t0.elapsed(), data);
                    }
                }
                let now = t0.elapsed();
                while let Some(d) = fwd.poll(now) {
                    // SRT's F bit: 0 for a data packet, 1 for control (handshakes).
                    if d.first().is_some_and(|b| b & 0x80 == 0) {
                        first2.lock().unwrap().get_or_insert_with(Instant::now);
                    }
                    let _ = sock.send_to(&d, to);
                }
                while let Some(d) = rev.poll(now) {
                    if let Some(s) = sender {
                        let _ = sock.send_to(&d, s);
                    }
                }
            }
            (fwd.stats().bytes_in, fwd.stats().lost())
        });
        Relay {
            addr,
            stop,
            first,
            thread: Some(thread),
        }
    }

    /// Stops the relay: (bytes the sender pushed in, datagrams the link lost).
    pub fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// A `seconds`-long constant-rate clip for the lossy-link tests: `size` (e.g. 1280x720)
/// at 30 fps, x264 CBR at `video_kbps` with a keyframe every 2 s, and AAC, as MPEG-TS.
pub fn lossy_link_clip(path: &Path, size: &str, seconds: u32, video_kbps: u32) {
    let v = format!("{video_kbps}k");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=30"))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string(), "-map", "0:v", "-map", "1:a"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-g", "60", "-b:v", &v, "-minrate", &v, "-maxrate", &v])
        .args(["-bufsize", &v, "-x264-params", "nal-hrd=cbr"])
        .args(["-c:a", "aac", "-b:a", "128k", "-f", "mpegts"])
        .arg(path));
}

/// The long-haul link: 200 ms RTT, 5 % random loss each way.
pub fn long_haul_link(server: &Server, seed: u64) -> Relay {
    Relay::start(
        server.srt,
        starling_bench::impair::Config {
            loss: 0.05,
            delay: Duration::from_millis(100),
            ..Default::default()
        },
        seed,
    )
}

/// Start-up as an LL-HLS client sees it: it asks for the first part at once (a
/// blocking request for part 0 of segment 0) and gets it in a playlist of parts, before
/// the first segment is complete. Returns the time from the first media packet reaching
/// Starling through `relay` to that answer, after checking it against the bound:
/// within the SRT `latency` + 1 s.
pub fn first_part_startup(server: &Server, relay: &Relay, latency: Duration) -> Duration {
    let path = format!("/live/{CHANNEL}/source/index.m3u8?_HLS_msn=0&_HLS_part=0");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (answered, playlist) = loop {
        if let Some(pl) = server.http_get(&path) {
            break (Instant::now(), pl);
        }
        assert!(
            Instant::now() < deadline,
            "no part; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(playlist.contains("#EXT-X-PART:"), "{playlist}");
    let first_packet = relay
        .first
        .lock()
        .unwrap()
        .expect("the relay passed media on");
    let startup = answered - first_packet;
    assert!(
        startup < latency + Duration::from_secs(1),
        "first part {startup:?} after the first media packet; the bound is {latency:?} + 1 s"
    );
    startup
}
