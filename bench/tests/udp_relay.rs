//! The real `udp-relay` binary between two loopback sockets (and, when this ffmpeg has
//! libsrt, between two ffmpeg SRT endpoints).

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, UdpSocket},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind")
        .port()
}

/// Starts the relay towards `to` and waits until its socket is bound.
fn start_relay(to: SocketAddr, extra: &[&str]) -> (Child, SocketAddr) {
    let listen: SocketAddr = ([127, 0, 0, 1], free_udp_port()).into();
    let mut child = Command::new(env!("CARGO_BIN_EXE_udp-relay"))
        .args(["--listen", &listen.to_string(), "--to", &to.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start udp-relay");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read stderr");
    assert!(line.contains("listening on"), "relay said: {line}");
    // Keep reading, so that anything the relay says later reaches the test's output
    // instead of a closed pipe.
    thread::spawn(move || {
        for l in stderr.lines().map_while(Result::ok) {
            eprintln!("udp-relay: {l}");
        }
    });
    (child, listen)
}

/// Waits for the relay to stop by itself and returns its final (forward, reverse) lines.
fn final_stats(child: Child) -> (Value, Value) {
    let out = child.wait_with_output().expect("relay output");
    assert!(out.status.success(), "relay failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut finals = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .filter(|v| v["final"] == true);
    let (f, r) = (
        finals.next().expect("forward"),
        finals.next().expect("reverse"),
    );
    assert_eq!(
        (f["direction"].as_str(), r["direction"].as_str()),
        (Some("forward"), Some("reverse"))
    );
    (f, r)
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// A target that echoes everything back until told to stop; returns how many it echoed.
fn echo_target() -> (SocketAddr, Arc<AtomicBool>, thread::JoinHandle<u64>) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let addr = sock.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut echoed = 0;
        while !s.load(Ordering::Relaxed) {
            if let Ok((len, from)) = sock.recv_from(&mut buf) {
                sock.send_to(&buf[..len], from).expect("echo");
                echoed += 1;
            }
        }
        echoed
    });
    (addr, stop, h)
}

#[test]
fn relays_both_ways_with_delay_and_loss_and_reports_it() {
    let (target, stop, echo) = echo_target();
    let (relay, listen) = start_relay(
        target,
        &[
            "--delay-ms",
            "40",
            "--jitter-ms",
            "5",
            "--loss",
            "0.05",
            "--seed",
            "9",
            "--seconds",
            "3",
            "--stats-every",
            "1",
        ],
    );

    const N: u64 = 300;
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client.connect(listen).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let rx = client.try_clone().expect("clone");
    let epoch = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let got = received.clone();
    // Each echo carries its sequence number and send time (µs since `epoch`).
    let reader = thread::spawn(move || {
        let mut rtts = Vec::new();
        let mut buf = [0u8; 2048];
        let until = Instant::now() + Duration::from_millis(2_000);
        while Instant::now() < until {
            if let Ok(len) = rx.recv(&mut buf) {
                assert_eq!(len, 216);
                let sent = u64::from_be_bytes(buf[8..16].try_into().expect("8 bytes"));
                let now = epoch.elapsed().as_micros() as u64;
                rtts.push(Duration::from_micros(now - sent));
                got.fetch_add(1, Ordering::Relaxed);
            }
        }
        rtts
    });
    for seq in 0..N {
        let mut d = [0u8; 216];
        d[..8].copy_from_slice(&seq.to_be_bytes());
        d[8..16].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_be_bytes());
        client.send(&d).expect("send");
        thread::sleep(Duration::from_millis(3));
    }
    let mut rtts = reader.join().expect("reader");
    let (fwd, rev) = final_stats(relay);
    stop.store(true, Ordering::Relaxed);
    let echoed = echo.join().expect("echo");

    // Counts agree end to end: what the relay says it did is what the ends saw.
    assert_eq!(n(&fwd, "packets_in"), N);
    assert_eq!(n(&fwd, "packets_out") + n(&fwd, "lost_random"), N);
    assert_eq!(n(&fwd, "packets_out"), echoed);
    assert_eq!(n(&rev, "packets_in"), echoed);
    assert_eq!(n(&rev, "packets_out"), received.load(Ordering::Relaxed));
    assert_eq!(n(&fwd, "send_errors") + n(&rev, "send_errors"), 0);
    // 5% each way: about 271 of 300 come back.
    let back = rtts.len() as u64;
    assert!((230..=295).contains(&back), "{back} echoes; {fwd} {rev}");

    // RTT = 2 × (40 ms ± 5 ms), plus scheduling on a shared machine.
    rtts.sort();
    let (min, median) = (rtts[0], rtts[rtts.len() / 2]);
    assert!(min >= Duration::from_millis(70), "min RTT {min:?}");
    assert!(
        median >= Duration::from_millis(78) && median <= Duration::from_millis(150),
        "median RTT {median:?}"
    );
    let mean_ms = fwd["added_delay_mean_ms"].as_f64().expect("mean");
    assert!((37.0..=43.0).contains(&mean_ms), "{fwd}");
    assert!(
        fwd["added_delay_max_ms"].as_f64().expect("max") <= 45.0,
        "{fwd}"
    );
}

fn ffmpeg_has_srt() -> bool {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-protocols"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == "srt")
        })
        .unwrap_or(false)
}

/// Waits up to `limit` for a child, then kills it; true if it exited by itself.
fn wait_or_kill(child: &mut Child, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// The source and its encoding (single-threaded, so every run makes the same bytes):
/// 4 s of 25 fps, 100 frames.
const ENCODE: [&str; 11] = [
    "testsrc2=size=320x240:rate=25",
    "-t",
    "4",
    "-c:v",
    "mpeg2video",
    "-b:v",
    "1M",
    "-threads",
    "1",
    "-g",
    "25",
];

/// (size, CRC) of each frame in an ffmpeg `framecrc` file; timestamps are left out,
/// as their time base depends on the container.
fn frames(path: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            Some((f.get(4)?.to_string(), f.get(5)?.to_string()))
        })
        .collect()
}

#[test]
fn srt_from_ffmpeg_survives_the_relay() {
    if !ffmpeg_has_srt() {
        eprintln!("skipped: this ffmpeg has no srt protocol (libsrt)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("udp-relay-srt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let crc = dir.join("received.crc");
    let reference_crc = dir.join("reference.crc");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .args(ENCODE)
        .args(["-f", "framecrc"])
        .arg(&reference_crc)
        .status()
        .expect("ffmpeg reference");
    assert!(status.success());
    let reference = frames(&reference_crc);
    assert_eq!(reference.len(), 100);
    let target: SocketAddr = ([127, 0, 0, 1], free_udp_port()).into();
    // SRT's latency (µs here) must cover the link's RTT for retransmissions to land.
    let mut receiver = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(format!("srt://{target}?mode=listener&latency=300000"))
        // Every line on disk as it comes: a receiver killed below (its caller's
        // shutdown packet lost on the link, it would wait out SRT's 5 s peer timeout)
        // must not take the frames it got with it.
        .args(["-c", "copy", "-flush_packets", "1", "-f", "framecrc"])
        .arg(&crc)
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg receiver");
    let (relay, listen) = start_relay(
        target,
        &[
            "--delay-ms",
            "20",
            "--loss",
            "0.02",
            "--seed",
            "3",
            "--seconds",
            "9",
        ],
    );
    thread::sleep(Duration::from_millis(300));
    let mut sender = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-f", "lavfi", "-i"])
        .args(ENCODE)
        .args(["-f", "mpegts"])
        .arg(format!("srt://{listen}?mode=caller&latency=300000"))
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg sender");
    assert!(
        wait_or_kill(&mut sender, Duration::from_secs(8)),
        "sender hung"
    );
    wait_or_kill(&mut receiver, Duration::from_secs(7));
    let (fwd, rev) = final_stats(relay);

    let got = frames(&crc);
    let _ = std::fs::remove_dir_all(&dir);
    // 100 frames sent. The last ones can still be in the receiver's latency window
    // (300 ms) when the caller closes, so the tail may be cut; everything before it
    // must be what the encoder made, bit for bit, in spite of the losses.
    assert!(got.len() >= 85, "{} frames arrived; {fwd} {rev}", got.len());
    assert_eq!(got[..], reference[..got.len()], "{fwd} {rev}");
    assert!(n(&fwd, "lost_random") > 0, "{fwd}");
    // ACKs and NAKs came back through the relay.
    assert!(n(&rev, "packets_out") > 10, "{rev}");
}
