//! Recordings as VOD assets, end to end: a control-plane channel that records, ffmpeg
//! publishing it twice (two runs), both runs listed by the API with their duration and
//! size, the older one's VOD playlist read by ffprobe, then deleted through the API
//! (and the node restarted: the other still lists and plays).

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use common::*;
use serde_json::Value;
use starling_control::{Db, DbConfig, DeviceKind, NewChannel};

const PASSWORD: &str = "correct horse battery";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The API's listing of the channel's recordings (status, body).
fn recordings(server: &Server, cookie: &str, channel_id: &str) -> (u16, Value) {
    let r = server.http_request(
        "GET",
        &format!("/api/v1/channels/{channel_id}/recordings"),
        &[("Cookie", cookie)],
        None,
    );
    let body = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, body)
}

/// Waits until the listing has `n` recordings, none of them live.
fn ended_recordings(server: &Server, cookie: &str, channel_id: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, page) = recordings(server, cookie, channel_id);
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap().clone();
        if items.len() == n && items.iter().all(|r| r["live"] == false) {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "never {n} ended recordings: {page}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// ffprobe's count of the video frames it decodes through `path` (its first program).
fn frames_read(server: &Server, path: &str) -> u64 {
    video_frames_read(server, path)
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("nb_read_frames="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn two_runs_are_listed_played_by_ffprobe_and_deleted_through_the_api() {
    if !require_ffmpeg() {
        return;
    }
    let mut server = Server::start("recordings", "");
    let email = "rec-admin@example.com";
    server.create_admin(email, PASSWORD);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt
        .block_on(Db::connect(&DbConfig::new(server.dir.join("data"))))
        .unwrap();
    let admin = rt
        .block_on(db.login(email, PASSWORD, "127.0.0.1", now_ms()))
        .unwrap();
    let mut new = NewChannel::named("recorded");
    new.recording = true;
    let ch = rt
        .block_on(db.create_channel(&admin, &new, now_ms()))
        .unwrap();
    let device = rt
        .block_on(db.create_device(&admin, "enc", DeviceKind::Encoder, Some(&ch.id), now_ms()))
        .unwrap();
    let (_, key) = rt
        .block_on(db.create_stream_key(&admin, &device.id, None, now_ms()))
        .unwrap();
    let key = server.secret(key.expose());
    let cookie = server.login(email, PASSWORD);

    // Two runs of three seconds (the reconnect grace is 1 s in tests, so the second
    // publish, after the first run's listing says it ended, is a run of its own).
    let publish = || {
        let out = ffmpeg_test_publish(&server.rtmp_url(&key), 3)
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    publish();
    let first = ended_recordings(&server, &cookie, &ch.id, 1);
    publish();
    let both = ended_recordings(&server, &cookie, &ch.id, 2);
    let (newer, older) = (&both[0], &both[1]);
    assert_eq!(older["run"], first[0]["run"]);
    for r in [newer, older] {
        let secs = r["duration_secs"].as_f64().unwrap();
        assert!((2.0..=4.5).contains(&secs), "{r}");
        assert!(r["bytes"].as_u64().unwrap() > 10_000, "{r}");
        let run = r["run"].as_str().unwrap();
        assert_eq!(r["playback_url"], format!("/vod/recorded/{run}/index.m3u8"));
    }

    // The older recording plays as VOD: ffprobe decodes its three seconds.
    let url = older["playback_url"].as_str().unwrap().to_owned();
    let frames = frames_read(&server, &url);
    assert!((60..=80).contains(&frames), "{frames} frames through {url}");

    // Deleted through the API: gone from the listing and from /vod/; the other stays,
    // also after a restart.
    let run = older["run"].as_str().unwrap();
    let r = server.http_request(
        "DELETE",
        &format!("/api/v1/channels/{}/recordings/{run}", ch.id),
        &[("Cookie", &cookie)],
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(server.http_raw(&url).map(|(s, _)| s), Some(404));
    assert!(server.stop().success());
    server.restart();
    let cookie = server.login(email, PASSWORD);
    let left = ended_recordings(&server, &cookie, &ch.id, 1);
    assert_eq!(left[0]["run"], newer["run"]);
    let frames = frames_read(&server, left[0]["playback_url"].as_str().unwrap());
    assert!(frames >= 60, "{frames} frames");
    server.stop();
}
