//! The admin console (`/admin`) end to end in a real browser: the real binary with a
//! fresh data directory, an admin bootstrapped with `starling admin create-user`, and
//! web/tests/admin.mjs driving Debian's Chromium through playwright-core. The script
//! signs in through the form, creates a channel, a device and a stream key, reads the key
//! once from its dialog (and checks it is gone from the page afterwards), publishes with
//! ffmpeg to the RTMP URL the page showed, and waits for the dashboard to show the
//! channel live with its resolution. The server's log must never contain the key.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::process::{Command, Stdio};

use common::*;

const EMAIL: &str = "console-admin@example.com";
const PASSWORD: &str = "correct horse battery staple";

#[test]
fn the_admin_console_makes_a_key_that_publishes_and_shows_the_stream_live() {
    if !require_browser() || !require_ffmpeg() {
        return;
    }
    let server = Server::start("admin-console", "");

    server.create_admin(EMAIL, PASSWORD);

    let shot = server.dir.join("admin.png");
    let out = Command::new("node")
        .arg(web_dir().join("tests/admin.mjs"))
        .arg(server.http_url(""))
        .args(["--email", EMAIL, "--channel", "console"])
        .arg("--rtmp")
        .arg(format!("rtmp://{}/live", server.rtmp))
        .args(["--publish-seconds", "20", "--timeout", "50", "--screenshot"])
        .arg(&shot)
        .env("STARLING_ADMIN_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut v = last_json_line(&out, "admin.mjs");
    let key = v["stream_key"].as_str().map(str::to_owned);
    // Never print the key, even when failing.
    v["stream_key"] = serde_json::Value::from("(redacted)");
    assert!(
        out.status.success() && v["ok"] == true,
        "the admin console check failed: {v}\nstderr: {}\nscreenshot: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        shot.display(),
        server.log_text()
    );
    eprintln!("admin console: {v}");

    let key = server.secret(&key.expect("admin.mjs reports the key it read"));
    let log = server.wait_log("RTMP publish started", std::time::Duration::from_secs(5));
    assert!(
        log.lines()
            .any(|l| l.contains("RTMP publish started") && l.contains("channel=console")),
        "no publish to the console's channel in the log"
    );
    assert!(!log.contains(&key), "the stream key reached the server log");
    assert!(
        !log.contains(&key[3..]),
        "the stream key's body reached the server log"
    );
    assert!(
        !log.contains(PASSWORD),
        "the password reached the server log"
    );
}
