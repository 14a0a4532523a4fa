//! The watch page in a real browser: Debian's Chromium, driven headless through
//! playwright-core, plays `starling demo` with hls.js in low-latency mode.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::process::Command;

use common::*;

/// Runs the harness; returns its JSON line.
fn watch(args: &[&str]) -> serde_json::Value {
    let out = Command::new("node")
        .arg(web_dir().join("tests/watch.mjs"))
        .args(args)
        .output()
        .unwrap();
    let v = last_json_line(&out, "watch.mjs");
    assert!(
        out.status.success() && v["ok"] == true,
        "browser check failed: {v}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

#[test]
fn the_watch_page_plays_the_demo_with_low_latency_in_chromium() {
    if !require_browser() {
        return;
    }
    let server = Server::start_demo("browser", "");
    let shot = server.dir.join("watch.png");
    let v = watch(&[
        &server.http_url("/watch/demo"),
        "--seconds",
        "5",
        "--max-latency",
        "3",
        "--screenshot",
        shot.to_str().unwrap(),
    ]);
    let latency = v["latency_median"].as_f64().unwrap();
    assert!(latency < 3.0, "latency {latency} s");
    assert!(v["advanced"].as_f64().unwrap() >= 5.0);
    eprintln!("browser: {v}");
    // The index lists the live channel.
    watch(&[&server.http_url("/"), "--expect-text", "demo"]);
}
