//! `/metrics` restricted by config: a bearer token (`[server] metrics_token`) and a
//! listener of its own (`[server] metrics_listen`), with the real binary. The token is a
//! secret like any other: the harness checks it never reaches the log.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::net::SocketAddr;

use common::*;

const TOKEN: &str = "metrics-token-0123456789";

#[test]
fn metrics_need_the_token_and_move_to_their_own_listener() {
    let mut server = Server::start_env(
        "metrics-access",
        "",
        &[
            ("STARLING_SERVER_METRICS_TOKEN", TOKEN),
            ("STARLING_SERVER_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    );
    server.secret(TOKEN);
    let log = server.wait_log("metrics listening", std::time::Duration::from_secs(10));
    let addr: SocketAddr = log
        .lines()
        .find(|l| l.contains("metrics listening"))
        .and_then(|l| l.split("addr=").nth(1))
        .and_then(|a| a.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    // Not on the public port at all, with or without the token.
    let auth = format!("Bearer {TOKEN}");
    let main = server.http_request("GET", "/metrics", &[("Authorization", &auth)], None);
    assert_eq!(main.status, 404, "{}", main.head);
    assert_eq!(
        server
            .http_get("/healthz")
            .as_deref()
            .map(|t| t.ends_with("ok\n")),
        Some(true)
    );

    // On its own listener: 401 without or with a wrong token, 200 with it.
    let own = |headers: &[(&str, &str)]| http_request_at(addr, "GET", "/metrics", headers, None);
    let r = own(&[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"metrics\"")
    );
    let r = own(&[("Authorization", "Bearer not-the-token-0000000")]);
    assert_eq!(r.status, 401);
    let r = own(&[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.body.contains("starling_live_channels 0"), "{}", r.body);
    assert!(server.stop().success());
}
