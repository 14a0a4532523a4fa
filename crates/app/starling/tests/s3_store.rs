//! `[store] kind = "s3"` end to end: the real binary writes every segment to a bucket
//! of a real S3-compatible server (s3s-fs on loopback, installed by scripts/test), and
//! serves a segment that has left the memory window from that bucket, also after a
//! restart; wrong credentials stop the start with a message naming the cause.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

// The store crate's s3s-fs launcher, shared rather than copied (its `super::temp_dir`
// is this file's, from `common`).
#[path = "../../../delivery/store/tests/common/s3s.rs"]
#[allow(dead_code)]
mod s3s;

use s3s::{S3sFs, ACCESS_KEY, BUCKET, SECRET_KEY};

const PL: &str = "/live/e2e/source/index.m3u8";

/// s3s-fs with a bucket, and the `[store]` section that points a node at it.
struct Bucket(S3sFs);

impl Bucket {
    /// `None` (the test is skipped) only outside CI, when s3s-fs is not installed.
    fn start(name: &str) -> Option<Self> {
        S3sFs::start(name).map(Self)
    }

    fn config(&self) -> String {
        format!(
            "[store]\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"{BUCKET}\"\nprefix = \"node-1\"\n",
            self.0.endpoint()
        )
    }

    /// The bucket's directory in s3s-fs's root.
    fn dir(&self) -> PathBuf {
        self.0.root.join(BUCKET)
    }

    /// Stored segments (`.m4s` files under the bucket's directory), relative paths.
    fn segments(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else if p.extension().is_some_and(|x| x == "m4s") {
                    out.push(p.strip_prefix(base).unwrap().to_owned());
                }
            }
        }
        let base = self.dir();
        let mut out = Vec::new();
        walk(&base, &base, &mut out);
        out
    }
}

fn body_of(raw: &str) -> &str {
    raw.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn segments_go_to_the_bucket_and_come_back_from_it() {
    if !require_ffmpeg() {
        return;
    }
    let Some(bucket) = Bucket::start("s3-bucket") else {
        return;
    };
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let mut server = Server::start_env("s3-store", &bucket.config(), &env);
    server.secret(SECRET_KEY);
    let mut publisher = ffmpeg_test_publish(&server.rtmp_url(KEY), 14)
        .spawn()
        .unwrap();
    // Six segments of 2 s: the first ones are well outside the default memory window
    // (two segments).
    let deadline = Instant::now() + Duration::from_secs(30);
    let playlist = loop {
        let pl = server
            .http_get(PL)
            .map(|r| body_of(&r).to_owned())
            .unwrap_or_default();
        if pl.matches("#EXTINF").count() >= 6 {
            break pl;
        }
        assert!(Instant::now() < deadline, "never six segments:\n{pl}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let first = playlist
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m4s"))
        .unwrap()
        .to_owned();
    // Written through to the bucket, under the configured prefix.
    let stored = bucket.segments();
    assert!(stored.len() >= 5, "{stored:?}");
    assert!(
        stored.iter().all(|p| p.starts_with("node-1/media/e2e")),
        "{stored:?}"
    );
    let file = first.rsplit('/').next().unwrap();
    let in_bucket = stored
        .iter()
        .find(|p| p.ends_with(Path::new("source").join(file)))
        .unwrap_or_else(|| panic!("{first} not in the bucket: {stored:?}"));
    let bytes = std::fs::read(bucket.dir().join(in_bucket)).unwrap();

    // Out of the memory window: read from the bucket, then from the read cache.
    let path = format!("/live/{CHANNEL}/source/{first}");
    let reads = server.metric("starling_store_backend_reads_total");
    let (status, body) = server.http_bytes(&path).unwrap();
    assert_eq!(status, 200, "{path}");
    assert!(body == bytes, "{path} differs from the bucket's object");
    assert!(server.metric("starling_store_backend_reads_total") > reads);
    let hits = server.metric("starling_store_cache_hits_total");
    assert_eq!(server.http_bytes(&path).unwrap().1, bytes);
    assert!(server.metric("starling_store_cache_hits_total") > hits);
    let _ = publisher.wait();

    // After a restart the node has nothing in memory: the same URL, the same bytes.
    assert!(server.stop().success());
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = server.http_bytes(&path).unwrap();
        if status == 200 {
            assert!(body == bytes, "{path} changed across the restart");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: {status} after the restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(server.stop().success());
}

/// A recording channel's node is killed (-9) mid-stream and started again over the
/// same bucket: every segment listed a second before the kill is in the recording, byte
/// for byte, and ffmpeg plays the whole recording back.
#[test]
fn a_killed_node_loses_no_recorded_segment_in_the_bucket() {
    if !require_ffmpeg() {
        return;
    }
    let Some(bucket) = Bucket::start("s3-kill9") else {
        return;
    };
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let mut server =
        Server::start_channel_env("s3-kill9", &bucket.config(), "recording = true", &env);
    server.secret(SECRET_KEY);
    let mut publisher = ffmpeg_test_publish(&server.rtmp_url(KEY), 30)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let pl = server
            .http_get(PL)
            .map(|r| body_of(&r).to_owned())
            .unwrap_or_default();
        if pl.matches("#EXTINF").count() >= 5 {
            break pl;
        }
        assert!(Instant::now() < deadline, "never five segments:\n{pl}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let uris: Vec<String> = listed
        .lines()
        .filter(|l| !l.starts_with('#') && l.ends_with(".m4s"))
        .map(str::to_owned)
        .collect();
    let before: Vec<Vec<u8>> = uris
        .iter()
        .map(|u| {
            let (status, body) = server
                .http_bytes(&format!("/live/{CHANNEL}/source/{u}"))
                .unwrap();
            assert_eq!(status, 200, "{u}");
            body
        })
        .collect();
    // A second for the write-through of the newest, then no shutdown path at all.
    std::thread::sleep(Duration::from_secs(1));
    server.kill9();
    let _ = publisher.kill();
    let _ = publisher.wait();

    server.restart();
    // The run ends after the grace; the recording is a VOD playlist with every segment.
    let deadline = Instant::now() + Duration::from_secs(20);
    let vod = loop {
        let pl = server
            .http_get(PL)
            .map(|r| body_of(&r).to_owned())
            .unwrap_or_default();
        if pl.contains("#EXT-X-ENDLIST") {
            break pl;
        }
        assert!(Instant::now() < deadline, "never a VOD playlist:\n{pl}");
        std::thread::sleep(Duration::from_millis(200));
    };
    for (u, bytes) in uris.iter().zip(&before) {
        assert!(
            vod.contains(u.as_str()),
            "{u} lost from the recording:\n{vod}"
        );
        let (status, body) = server
            .http_bytes(&format!("/live/{CHANNEL}/source/{u}"))
            .unwrap();
        assert_eq!(status, 200, "{u}");
        assert!(&body == bytes, "{u} changed across the kill");
    }
    let out = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(server.http_url(PL))
        .args(["-f", "null", "-"]));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And hls.js in Chromium plays the recording from its start.
    if require_browser() {
        let v = watch(&[
            &server.http_url(&format!("/watch/{CHANNEL}?replay=1")),
            "--vod",
            "--seconds",
            "5",
        ]);
        assert!(v["advanced"].as_f64().unwrap() >= 5.0, "{v}");
    }
    assert!(server.stop().success());
}

#[test]
fn wrong_credentials_stop_the_start_naming_the_cause() {
    let Some(bucket) = Bucket::start("s3-bad-creds") else {
        return;
    };
    let dir = temp_dir("s3-bad-creds-node");
    let config = dir.join("starling.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhttp_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[rtmp]\nlisten = \"127.0.0.1:0\"\n[srt]\nlisten = \"127.0.0.1:0\"\n[webrtc]\nudp_listen = \"127.0.0.1:0\"\n{}",
            dir.join("data").display(),
            bucket.config()
        ),
    )
    .unwrap();
    let run = |secret: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_starling"));
        cmd.args(["serve", "--config"])
            .arg(&config)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env("STARLING_TRANSCODE_ENABLED", "false")
            .stdin(Stdio::null());
        if let Some(s) = secret {
            cmd.env("AWS_SECRET_ACCESS_KEY", s);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(Some("not-the-secret-at-all"));
    assert!(err.contains("403"), "{err}");
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");
    assert!(err.contains(BUCKET), "{err}");
    assert!(!err.contains("not-the-secret-at-all"), "{err}");
    let err = run(None);
    assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
}
