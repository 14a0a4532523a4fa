//! Scheduled events driven by the clock and by a real publish, end to end: an event whose
//! start passes with no stream goes pre-show, then delayed; ffmpeg publishing makes it
//! live; ffmpeg finishing ends it. A real SSE client (curl) receives every trigger, a
//! reconnect with Last-Event-ID receives what it missed, and the prefetch document
//! follows the state. A webhook receiver gets every transition, the stream's start and
//! end and the recording, each signed.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use common::*;
use starling_control::{Db, DbConfig, DeviceKind, NewChannel, NewEvent};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One SSE message: `id`, `event`, `data`.
#[derive(Debug, Clone)]
struct Msg {
    id: String,
    event: String,
    data: serde_json::Value,
}

/// `curl -N` on the live-state stream; messages arrive on the channel.
fn subscribe(
    server: &Server,
    path: &str,
    last_event_id: Option<&str>,
) -> (Child, mpsc::Receiver<Msg>) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sN", "--max-time", "60"]);
    if let Some(id) = last_event_id {
        cmd.args(["-H", &format!("Last-Event-ID: {id}")]);
    }
    let mut child = cmd
        .arg(server.http_url(path))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut id, mut event) = (String::new(), String::new());
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.to_owned();
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                let data = serde_json::from_str(v).unwrap();
                if tx
                    .send(Msg {
                        id: id.clone(),
                        event: event.clone(),
                        data,
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    (child, rx)
}

/// One webhook delivery as received: `Starling-*` headers and the raw body.
#[derive(Debug)]
struct Hook {
    event: String,
    signature: String,
    body: Vec<u8>,
}

/// A plain HTTP/1.1 receiver on loopback that answers 204 to every POST.
fn receiver() -> (std::net::SocketAddr, mpsc::Receiver<Hook>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                let Ok(n) = conn.read(&mut chunk) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default()
            };
            let len: usize = header("content-length").parse().unwrap_or(0);
            while buf.len() < head_end + len {
                let Ok(n) = conn.read(&mut chunk) else { break };
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            let hook = Hook {
                event: header("starling-event"),
                signature: header("starling-signature"),
                body: buf[head_end..(head_end + len).min(buf.len())].to_vec(),
            };
            if tx.send(hook).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

/// The next `state` trigger for `event_id`, within `within`.
fn next_state(rx: &mpsc::Receiver<Msg>, event_id: &str, within: Duration) -> Msg {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no trigger for {event_id} within {within:?}"));
        if m.event == "state" && m.data["event_id"] == event_id {
            return m;
        }
    }
}

#[test]
fn an_event_follows_the_clock_and_the_stream() {
    if !require_ffmpeg() || !have("curl") {
        return;
    }
    // The receiver is on loopback: allowed by config, as an operator would for an
    // internal receiver.
    let server = Server::start("events", "[webhooks]\nallow_private_targets = true\n");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt
        .block_on(Db::connect(&DbConfig::new(server.dir.join("data"))))
        .unwrap();
    rt.block_on(db.bootstrap_admin(
        "ops@example.com",
        "correct horse battery",
        "system",
        now_ms(),
    ))
    .unwrap();
    let admin = rt
        .block_on(db.login(
            "ops@example.com",
            "correct horse battery",
            "127.0.0.1",
            now_ms(),
        ))
        .unwrap();
    let mut new_channel = NewChannel::named("final");
    new_channel.recording = true;
    let ch = rt
        .block_on(db.create_channel(&admin, &new_channel, now_ms()))
        .unwrap();
    let (hook_addr, hooks) = receiver();
    let (_, hook_secret) = rt
        .block_on(db.create_webhook(
            &admin,
            &format!("http://{hook_addr}/hooks"),
            &[
                "stream.started",
                "stream.ended",
                "event.state_changed",
                "recording.ready",
            ],
            now_ms(),
        ))
        .unwrap();
    let dev = rt
        .block_on(db.create_device(&admin, "truck", DeviceKind::Encoder, Some(&ch.id), now_ms()))
        .unwrap();
    let (_, key) = rt
        .block_on(db.create_stream_key(&admin, &dev.id, None, now_ms()))
        .unwrap();
    server.secret(key.expose());
    server.secret(hook_secret.expose());

    let (mut sse, rx) = subscribe(&server, "/api/v1/live-state", None);
    // Pre-show one second from now, start two seconds later: nobody publishes in time.
    let t0 = now_ms();
    let ev = rt
        .block_on(db.create_event(
            &admin,
            &NewEvent {
                channel_id: ch.id.clone(),
                title: "Cup final".into(),
                artwork_url: None,
                scheduled_start: t0 + 3_000,
                scheduled_end: t0 + 120_000,
                preshow_lead_secs: Some(2),
            },
            t0,
        ))
        .unwrap();
    // The event was written by another process: this node finds it by polling (≤ 1 s).
    let pre = next_state(&rx, &ev.id, Duration::from_secs(10));
    assert_eq!(pre.data["state"], "pre_show", "{pre:?}");
    let delayed = next_state(&rx, &ev.id, Duration::from_secs(10));
    assert_eq!(delayed.data["state"], "delayed");
    let at = delayed.data["at"].as_i64().unwrap();
    assert!(
        (t0 + 3_000..t0 + 4_500).contains(&at),
        "delayed at +{} ms, scheduled start +3000",
        at - t0
    );
    let (_, prefetch) = server
        .http_raw(&format!("/api/v1/events/{}/prefetch", ev.id))
        .unwrap();
    assert!(prefetch.contains("\"state\":\"delayed\""), "{prefetch}");
    assert!(prefetch.contains("public, max-age=300"), "{prefetch}");

    // The broadcaster finally publishes: live at once.
    let started = Instant::now();
    let status = ffmpeg_test_publish(&server.rtmp_url(key.expose()), 4)
        .spawn()
        .unwrap();
    let live = next_state(&rx, &ev.id, Duration::from_secs(15));
    assert_eq!(live.data["state"], "live");
    let to_live = started.elapsed();
    // ffmpeg ends its publish cleanly (FCUnpublish / deleteStream): the event ends.
    let mut status = status;
    assert!(status.wait().unwrap().success());
    let ended = next_state(&rx, &ev.id, Duration::from_secs(10));
    assert_eq!(ended.data["state"], "ended");
    let log = server.wait_log("reason=StreamFinished", Duration::from_secs(5));
    assert!(log.contains("event state changed"), "{log}");
    eprintln!(
        "publish start -> live trigger at the SSE client: {to_live:?} (includes ffmpeg start-up)"
    );

    // A client that saw only the pre-show reconnects with its Last-Event-ID and receives
    // exactly what it missed, in order.
    // (At the unversioned alias of the stream, `/api/live-state`.)
    let (mut again, rx2) = subscribe(&server, "/api/live-state", Some(&pre.id));
    for want in [&delayed, &live, &ended] {
        let got = next_state(&rx2, &ev.id, Duration::from_secs(5));
        assert_eq!(got.id, want.id);
        assert_eq!(got.data, want.data);
    }
    let (_, prefetch) = server
        .http_raw(&format!("/api/events/{}/prefetch", ev.id))
        .unwrap();
    assert!(prefetch.contains("\"state\":\"ended\""), "{prefetch}");
    let stored = rt.block_on(db.get_event(&admin, &ev.id)).unwrap();
    assert_eq!(stored.state.as_str(), "ended");

    // Webhooks: every transition once, the stream's start and end, the recording; each
    // signed with the webhook's secret over the exact body.
    let mut seen: Vec<(String, serde_json::Value)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|(k, _)| k == "recording.ready") {
        let left = deadline.saturating_duration_since(Instant::now());
        let h = hooks
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("webhooks so far: {seen:?}"));
        let now_s = now_ms() / 1000;
        starling_webhooks::verify(
            hook_secret.expose().as_bytes(),
            &h.signature,
            &h.body,
            now_s,
            300,
        )
        .unwrap_or_else(|e| panic!("{} signature: {e}", h.event));
        let v: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(v["type"], h.event.as_str());
        seen.push((h.event, v["data"].clone()));
    }
    let transitions: Vec<String> = seen
        .iter()
        .filter(|(k, _)| k == "event.state_changed")
        .map(|(_, d)| {
            format!(
                "{}->{}",
                d["from"].as_str().unwrap(),
                d["to"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        transitions,
        [
            "scheduled->pre_show",
            "pre_show->delayed",
            "delayed->live",
            "live->ended"
        ],
        "{seen:?}"
    );
    let find = |kind: &str| &seen.iter().find(|(k, _)| k == kind).unwrap().1;
    assert_eq!(find("stream.started")["channel"], "final");
    assert_eq!(find("stream.started")["reason"], "publish");
    assert_eq!(find("stream.ended")["reason"], "finished");
    let rec = find("recording.ready");
    assert_eq!(rec["playlist"], "/live/final/index.m3u8");
    assert!(rec["duration_secs"].as_f64().unwrap() > 2.0, "{rec}");
    let prefix = rec["object_prefix"].as_str().unwrap();
    assert!(
        server.dir.join("data/objects").join(prefix).is_dir(),
        "{prefix} not in the store"
    );
    // The live-state ended reason: ffmpeg finished on its own.
    let ended_change = seen
        .iter()
        .find(|(k, d)| k == "event.state_changed" && d["to"] == "ended")
        .unwrap();
    assert_eq!(ended_change.1["reason"], "stream_finished");
    assert!(
        !server.log_text().contains(hook_secret.expose()),
        "secret in the log"
    );

    let _ = sse.kill();
    let _ = again.kill();
    let _ = sse.wait();
    let _ = again.wait();
}
