//! PostgreSQL going away under a live node: a private PostgreSQL (scripts/pg-test-env,
//! stopped with `pg_ctl -m immediate` halfway), a node on it, ffmpeg publishing with a
//! control-plane key. Live streams must go on (packaging never waits on the database), a
//! new publish whose key only the database knows must be refused naming the cause, and
//! the config file's channels keep publishing.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use common::*;
use serde_json::{json, Value};

/// A PostgreSQL of this test's own (the suite's shared one must stay up).
struct Postgres {
    url: String,
    dir: PathBuf,
    stopped: bool,
}

impl Postgres {
    fn start() -> Option<Postgres> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../scripts/pg-test-env");
        let out = Command::new(&script).output().unwrap();
        if !out.status.success() {
            assert!(
                std::env::var_os("STARLING_SKIP_POSTGRES_TESTS").is_some(),
                "scripts/pg-test-env failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let var = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap()
                .to_owned()
        };
        Some(Postgres {
            url: var("STARLING_TEST_DATABASE_URL"),
            dir: PathBuf::from(var("STARLING_TEST_PG_DATA")),
            stopped: false,
        })
    }

    /// Stops the server at once (no checkpoint, connections cut) and deletes it.
    fn kill(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../scripts/pg-test-env");
        let _ = Command::new(script).arg("stop").arg(&self.dir).output();
        self.stopped = true;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if !self.stopped {
            self.kill();
        }
    }
}

fn preload_hint(server: &Server, channel: &str) -> String {
    server
        .http_get(&format!("/live/{channel}/source/index.m3u8"))
        .and_then(|p| {
            p.lines()
                .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

#[test]
fn with_postgresql_down_live_streams_go_on_and_new_publishes_are_refused_with_the_cause() {
    if !require_ffmpeg() {
        return;
    }
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    let server = Server::start(
        "pg-down",
        &format!("\n[control]\ndatabase_url = \"{}\"\n", pg.url),
    );
    let password = "correct horse battery";
    server.create_admin("owner@example.com", password);
    let cookie = server.login("owner@example.com", password);
    let post = |path: &str, body: Value| server.api_created(&cookie, path, body);
    let key_for = |channel: &str| {
        let ch = post("/api/v1/channels", json!({ "name": channel }));
        let dev = post(
            "/api/v1/devices",
            json!({ "name": channel, "channel_id": ch["id"] }),
        );
        let key = post(
            &format!("/api/v1/devices/{}/keys", dev["id"].as_str().unwrap()),
            json!({}),
        );
        server.secret(key["secret"].as_str().unwrap())
    };
    let live_key = key_for("on-air");
    let later_key = key_for("later");
    let mut on_air = ffmpeg_test_publish(&server.rtmp_url(&live_key), 60)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while preload_hint(&server, "on-air").is_empty() {
        assert!(
            Instant::now() < deadline,
            "never packaged; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    pg.kill();
    // The live publish goes on: its live edge moves, its encoder is still connected.
    let before = preload_hint(&server, "on-air");
    std::thread::sleep(Duration::from_secs(3));
    let after = preload_hint(&server, "on-air");
    assert!(
        !after.is_empty() && after != before,
        "packaging stopped: {before:?} {after:?}"
    );
    assert!(running(&mut on_air), "the live publish was ended");

    // A new publish with a key only the database knows: refused, naming the cause.
    let mut later = ffmpeg_test_publish(&server.rtmp_url(&later_key), 20)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while running(&mut later) {
        assert!(
            Instant::now() < deadline,
            "a publish was accepted with the database down"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.wait_log("RTMP publish refused", Duration::from_secs(5));
    assert!(
        log.contains("authorisation service unavailable: control plane"),
        "the refusal names the database:\n{log}"
    );
    // The config file's channels need no database: they still publish.
    let from_file = ffmpeg_test_publish(&server.rtmp_url(KEY), 20)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while preload_hint(&server, CHANNEL).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the config channel did not go live"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(running(&mut on_air));
    for mut c in [on_air, from_file, later] {
        let _ = c.kill();
        let _ = c.wait();
    }
}
