//! SRT encryption of a control-plane channel, end to end with ffmpeg (libsrt): a channel
//! made over the API with its own passphrase refuses its device key without it (or with
//! a wrong one), publishes with it, and plays only with it; a changed passphrase applies
//! to the next connection.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    process::{Command, Output, Stdio},
    time::Duration,
};

use common::{srt::publish_ts, *};
use serde_json::json;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_control_plane_channel_passphrase_guards_publish_and_play() {
    if !require_ffmpeg() {
        return;
    }
    const PASS: &str = "channel-passphrase-e2e";
    const NEW_PASS: &str = "changed-passphrase-e2e";
    let server = Server::start("srt-cp-passphrase", "");
    server.secret(PASS);
    server.secret(NEW_PASS);
    let email = "owner@example.com";
    let password = "correct horse battery";
    server.create_admin(email, password);
    let cookie = server.login(email, password);
    let call = |method: &str, path: &str, body: serde_json::Value| -> serde_json::Value {
        let r = server.http_request(
            method,
            path,
            &[("Cookie", &cookie)],
            Some(&body.to_string()),
        );
        assert!(
            r.status == 200 || r.status == 201,
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
        serde_json::from_str(&r.body).unwrap()
    };
    let ch = call(
        "POST",
        "/api/v1/channels",
        json!({ "name": "sealed", "srt_passphrase": PASS, "srt_pbkeylen": 24 }),
    );
    assert_eq!(ch["srt_encrypted"], true, "{ch}");
    let ch_id = ch["id"].as_str().unwrap().to_owned();
    let dev = call(
        "POST",
        "/api/v1/devices",
        json!({ "name": "venue", "channel_id": ch_id }),
    );
    let key = call(
        "POST",
        &format!("/api/v1/devices/{}/keys", dev["id"].as_str().unwrap()),
        json!({}),
    );
    let key = server.secret(key["secret"].as_str().unwrap());
    let publish_id = format!("#!::r=sealed,m=publish,s={key}");

    // The device key without the passphrase, or with a wrong one: refused.
    let sent = server.dir.join("sent.ts");
    let out = publish_ts(&server.srt_url(&publish_id, ""), &sent, 2)
        .output()
        .unwrap();
    assert!(!out.status.success(), "published without the passphrase");
    let out = publish_ts(
        &server.srt_url(&publish_id, "&passphrase=not-the-passphrase&pbkeylen=24"),
        &sent,
        2,
    )
    .output()
    .unwrap();
    assert!(!out.status.success(), "published with a wrong passphrase");

    // With it: publishes.
    let mut publisher = publish_ts(
        &server.srt_url(&publish_id, &format!("&passphrase={PASS}&pbkeylen=24")),
        &sent,
        40,
    )
    .spawn()
    .unwrap();
    server.wait_log("SRT publish started", Duration::from_secs(10));
    let play = |pass: Option<&str>| {
        let extra = pass
            .map(|p| format!("&passphrase={p}&pbkeylen=24"))
            .unwrap_or_default();
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(server.srt_url("#!::r=sealed,m=request", &extra))
            .args(["-t", "2", "-f", "null", "-"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Players need it too.
    assert!(
        !play(None).status.success(),
        "played without the passphrase"
    );
    let ok = play(Some(PASS));
    assert!(
        ok.status.success(),
        "played with the passphrase: {}\n{}",
        stderr(&ok),
        server.log_text()
    );

    // Changed: the next connections need the new one (within the channel cache's two
    // seconds); the live publish keeps its own.
    call(
        "PATCH",
        &format!("/api/v1/channels/{ch_id}"),
        json!({ "srt_passphrase": NEW_PASS }),
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !play(Some(PASS)).status.success(),
        "played with the old passphrase"
    );
    let ok = play(Some(NEW_PASS));
    assert!(
        ok.status.success(),
        "played with the new passphrase: {}\n{}",
        stderr(&ok),
        server.log_text()
    );
    assert!(
        publisher.try_wait().unwrap().is_none(),
        "the live publish was cut by the change"
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
    server.assert_no_secret_in_log();
}
