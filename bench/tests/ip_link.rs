//! The real `ip-link` binary: TCP from one namespace to the other across a lossy link.
//! Needs root; skipped (with a note) only where `ip netns` is missing.

// kill has no wrapper in std.
#![allow(unsafe_code)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

fn netns_available() -> bool {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn netns_exists(name: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

/// Deterministic bytes that a reordering, duplicating or truncating bug would break.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn tcp_crosses_the_lossy_link_intact() {
    if !netns_available() {
        eprintln!("skipped: `ip netns` is not available here");
        return;
    }
    let id = std::process::id() % 100_000;
    let (a, b) = (format!("stlt{id}a"), format!("stlt{id}b"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ip-link"))
        .args(["--ns", &format!("{a},{b}")])
        .args(["--rtt-ms", "10", "--loss", "0.02", "--seed", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ip-link");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read stderr");
    if !line.contains("up:") {
        let _ = child.kill();
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        panic!("ip-link did not come up: {line}{rest}");
    }
    assert!(netns_exists(&a) && netns_exists(&b));

    let sent = payload(1 << 20);
    let expected = sent.clone();
    let b2 = b.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = thread::spawn(move || {
        starling_bench::netns::enter(&b2).expect("enter B");
        let l = TcpListener::bind("10.77.0.2:5000").expect("bind in B");
        ready_tx.send(()).expect("ready");
        let (mut s, peer) = l.accept().expect("accept");
        assert_eq!(peer.ip().to_string(), "10.77.0.1");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read");
        got
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("server up");
    let a2 = a.clone();
    let t0 = Instant::now();
    thread::spawn(move || {
        starling_bench::netns::enter(&a2).expect("enter A");
        let mut s = TcpStream::connect_timeout(
            &"10.77.0.2:5000".parse().expect("addr"),
            Duration::from_secs(5),
        )
        .expect("connect from A");
        s.set_write_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(&sent).expect("send");
    })
    .join()
    .expect("client");
    let got = server.join().expect("server");
    let took = t0.elapsed();
    assert!(
        got == expected,
        "{} bytes arrived, not the 1 MiB sent",
        got.len()
    );
    // 2 × 5 ms of delay: the handshake alone takes a round trip.
    assert!(took >= Duration::from_millis(10), "{took:?}");

    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().expect("ip-link output");
    assert!(out.status.success(), "ip-link failed: {out:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let fwd = lines
        .iter()
        .find(|v| v["direction"] == "forward" && v["final"] == true)
        .expect("forward line");
    let rev = lines
        .iter()
        .find(|v| v["direction"] == "reverse" && v["final"] == true)
        .expect("reverse line");
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    // At least the payload went forward (plus headers and resends), acknowledgements back.
    assert!(n(fwd, "bytes_in") > 1 << 20, "{fwd}");
    assert!(n(fwd, "lost_random") > 0, "no loss applied: {fwd}");
    assert!(n(rev, "packets_out") > 0, "{rev}");
    assert_eq!(n(fwd, "malformed"), 0, "{fwd}");
    assert!(
        fwd["added_delay_mean_ms"].as_f64().expect("delay") >= 5.0,
        "{fwd}"
    );
    assert!(
        !netns_exists(&a) && !netns_exists(&b),
        "namespaces left behind"
    );
}
