//! Nodes of one cluster over a real nats-server: two `starling serve` processes that share
//! NATS (and, where keys are involved, one control database), published to by ffmpeg.
//!
//! - The same channel published to both nodes at once: exactly one wins cluster-wide.
//! - A key revoked through one node's API ends its publish on the other within a second
//!   (NATS; the database poll is ten seconds in a cluster).
//! - The holder killed with `kill -9`: the encoder, reconnecting to the other node, is
//!   refused while the dead node's lease runs, then accepted within the lease time.
//! - NATS killed: live publishes go on and a new one is accepted (unverified); when NATS
//!   returns, one node keeps the channel and the other ends its publish.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    process::Child,
    time::{Duration, Instant},
};

use common::{nats::Nats, *};

fn cluster_toml(nats: &Nats, node: &str, extra: &str) -> String {
    format!(
        "\n[cluster]\nnats_url = \"{}\"\nnode_id = \"{node}\"\nlease_secs = 2\n{extra}\n",
        nats.url()
    )
}

fn live(server: &Server) -> bool {
    server.metric("starling_live_channels") > 0.0
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

fn both_connected(a: &Server, b: &Server) {
    wait_until(
        "both nodes connected to NATS",
        Duration::from_secs(10),
        || {
            a.metric("starling_cluster_connected") == 1.0
                && b.metric("starling_cluster_connected") == 1.0
        },
    );
}

/// An encoder publishing to `node` again and again (as through a load balancer after its
/// node died) until it is accepted, within 15 s of `since`: the publish and the refusals.
fn publish_until_accepted(node: &Server, since: Instant) -> (Child, u32) {
    let mut refusals = 0;
    loop {
        let mut p = ffmpeg_test_publish(&node.rtmp_url(KEY), 60)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        if running(&mut p) && live(node) {
            return (p, refusals);
        }
        stop(p);
        refusals += 1;
        assert!(
            since.elapsed() < Duration::from_secs(15),
            "the node never took the channel; its log:\n{}",
            node.log_text()
        );
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_same_channel_published_to_two_nodes_at_once_goes_live_on_exactly_one() {
    if !require_ffmpeg() {
        return;
    }
    let Some(nats) = Nats::start() else { return };
    let a = Server::start("cluster-both-a", &cluster_toml(&nats, "node-a", ""));
    let b = Server::start("cluster-both-b", &cluster_toml(&nats, "node-b", ""));
    both_connected(&a, &b);
    let mut to_a = ffmpeg_test_publish(&a.rtmp_url(KEY), 30).spawn().unwrap();
    let mut to_b = ffmpeg_test_publish(&b.rtmp_url(KEY), 30).spawn().unwrap();
    // The loser's ffmpeg is refused and exits; the winner's goes on publishing.
    wait_until("one publisher refused", Duration::from_secs(15), || {
        !running(&mut to_a) || !running(&mut to_b)
    });
    std::thread::sleep(Duration::from_secs(2));
    let (a_on, b_on) = (running(&mut to_a), running(&mut to_b));
    assert!(a_on ^ b_on, "exactly one publish runs: a {a_on}, b {b_on}");
    let (winner, loser) = if a_on { (&a, &b) } else { (&b, &a) };
    assert!(live(winner) && !live(loser));
    assert_eq!(loser.metric("starling_cluster_claims_refused_total"), 1.0);
    assert_eq!(winner.metric("starling_cluster_leases_held"), 1.0);
    let metrics = loser.http_request("GET", "/metrics", &[], None).body;
    promtool_check("a node of a cluster", &metrics);
    assert_dashboard_metrics_exist(&["starling_cluster_"], &[&metrics]);
    let log = loser.log_text();
    assert!(
        log.contains("is live on node"),
        "the refusal names where the channel is live:\n{log}"
    );
    stop(to_a);
    stop(to_b);
}

#[test]
fn a_key_revoked_on_one_node_ends_its_publish_on_another_within_a_second() {
    if !require_ffmpeg() {
        return;
    }
    let Some(nats) = Nats::start() else { return };
    let shared = temp_dir("cluster-db").join("control.db");
    let db = format!(
        "\n[control]\ndatabase_url = \"sqlite:{}\"\n",
        shared.display()
    );
    let a = Server::start("cluster-revoke-a", &cluster_toml(&nats, "node-a", &db));
    let b = Server::start("cluster-revoke-b", &cluster_toml(&nats, "node-b", &db));
    let password = "correct horse battery";
    a.create_admin("owner@example.com", password);
    let cookie = a.login("owner@example.com", password);
    let post = |path: &str, body: serde_json::Value| a.api_created(&cookie, path, body);
    let ch = post("/api/v1/channels", serde_json::json!({ "name": "shared" }));
    let dev = post(
        "/api/v1/devices",
        serde_json::json!({ "name": "encoder", "channel_id": ch["id"] }),
    );
    let key = post(
        &format!("/api/v1/devices/{}/keys", dev["id"].as_str().unwrap()),
        serde_json::json!({}),
    );
    let key_id = key["id"].as_str().unwrap().to_owned();
    let secret = a.secret(key["secret"].as_str().unwrap());
    b.secret(&secret);
    both_connected(&a, &b);
    let mut publisher = ffmpeg_test_publish(&b.rtmp_url(&secret), 60)
        .spawn()
        .unwrap();
    wait_until("live on node B", Duration::from_secs(15), || live(&b));
    // Revoked through node A's API: node B hears it over NATS.
    let r = a.http_request(
        "DELETE",
        &format!("/api/v1/keys/{key_id}"),
        &[("Cookie", &cookie)],
        None,
    );
    assert!(
        r.status == 204 || r.status == 200,
        "{} {}",
        r.status,
        r.body
    );
    let took = wait_until(
        "the publish on node B ended",
        Duration::from_secs(5),
        || !running(&mut publisher),
    );
    eprintln!("publish on node B ended {took:?} after the revocation on node A");
    assert!(
        took < Duration::from_secs(1),
        "{took:?}: NATS, not the 10 s poll"
    );
    assert!(b.metric("starling_cluster_revocations_received_total") >= 1.0);
    stop(publisher);
}

#[test]
fn after_a_kill_9_of_the_holder_the_other_node_takes_the_channel_within_the_lease() {
    if !require_ffmpeg() {
        return;
    }
    let Some(nats) = Nats::start() else { return };
    let mut a = Server::start("cluster-kill-a", &cluster_toml(&nats, "node-a", ""));
    let b = Server::start("cluster-kill-b", &cluster_toml(&nats, "node-b", ""));
    both_connected(&a, &b);
    let first = ffmpeg_test_publish(&a.rtmp_url(KEY), 60).spawn().unwrap();
    wait_until("live on node A", Duration::from_secs(15), || live(&a));
    a.kill9();
    let killed = Instant::now();
    stop(first);
    // The encoder reconnects to node B (as through a load balancer), again and again.
    let (publisher, refusals) = publish_until_accepted(&b, killed);
    let took = killed.elapsed();
    eprintln!("node B took the channel {took:?} after node A's kill -9 ({refusals} refusals)");
    assert!(
        refusals >= 1,
        "the dead node's lease was honoured for a while"
    );
    assert!(took < Duration::from_secs(8), "{took:?} for a 2 s lease");
    stop(publisher);
}

#[test]
fn with_nats_down_publishes_go_on_and_one_node_keeps_the_channel_when_it_returns() {
    if !require_ffmpeg() {
        return;
    }
    let Some(mut nats) = Nats::start() else {
        return;
    };
    let a = Server::start("cluster-down-a", &cluster_toml(&nats, "node-a", ""));
    let b = Server::start("cluster-down-b", &cluster_toml(&nats, "node-b", ""));
    both_connected(&a, &b);
    let mut to_a = ffmpeg_test_publish(&a.rtmp_url(KEY), 60).spawn().unwrap();
    // The playlist's live edge (its preload hint), to see that packaging goes on.
    let edge = |s: &Server| {
        s.http_get(&format!("/live/{CHANNEL}/source/index.m3u8"))
            .and_then(|p| {
                p.lines()
                    .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    };
    wait_until("node A's playlist", Duration::from_secs(15), || {
        !edge(&a).is_empty()
    });
    nats.kill();
    wait_until("node A sees NATS gone", Duration::from_secs(10), || {
        a.metric("starling_cluster_connected") == 0.0
    });
    // The live publish goes on: the live edge moves.
    let before = edge(&a);
    std::thread::sleep(Duration::from_secs(2));
    let after = edge(&a);
    assert!(
        !after.is_empty() && after != before,
        "node A kept packaging with NATS down: {before:?} then {after:?}"
    );
    assert!(running(&mut to_a));
    // A publish of the same channel to node B is accepted too, unverified.
    let mut to_b = ffmpeg_test_publish(&b.rtmp_url(KEY), 60).spawn().unwrap();
    wait_until(
        "live on node B, unverified",
        Duration::from_secs(15),
        || live(&b),
    );
    assert_eq!(b.metric("starling_cluster_claims_unverified_total"), 1.0);
    // NATS back: one node keeps the channel, the other ends its publish.
    nats.restart();
    let took = wait_until(
        "one of the two publishes ended",
        Duration::from_secs(20),
        || !running(&mut to_a) || !running(&mut to_b),
    );
    eprintln!("one node gave the channel up {took:?} after NATS returned");
    std::thread::sleep(Duration::from_secs(1));
    let (a_on, b_on) = (running(&mut to_a), running(&mut to_b));
    assert!(a_on ^ b_on, "exactly one publish runs: a {a_on}, b {b_on}");
    let loser = if a_on { &b } else { &a };
    assert_eq!(loser.metric("starling_cluster_leases_lost_total"), 1.0);
    stop(to_a);
    stop(to_b);
}

#[test]
fn the_usher_sends_viewers_to_edges_and_spreads_a_hot_channel() {
    if !require_ffmpeg() {
        return;
    }
    let Some(nats) = Nats::start() else { return };
    let origin = Server::start(
        "usher-origin",
        &cluster_toml(&nats, "node-a", "viewers_per_edge = 5"),
    );
    let edge_cluster = |id: &str, region: &str| {
        format!(
            "\n[cluster]\nnats_url = \"{}\"\nnode_id = \"{id}\"\nregion = \"{region}\"\n",
            nats.url()
        )
    };
    let origin_url = format!("http://{}", origin.http);
    let eu = Server::start_edge(
        "usher-edge-eu",
        &origin_url,
        &origin.data_dir(),
        &edge_cluster("edge-eu", "eu"),
    );
    let us = Server::start_edge(
        "usher-edge-us",
        &origin_url,
        &origin.data_dir(),
        &edge_cluster("edge-us", "us"),
    );
    let play = |query: &str| -> serde_json::Value {
        let r = origin.http_request("GET", &format!("/usher/play/{CHANNEL}{query}"), &[], None);
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    };
    // Both edges announced (each second) and heard.
    wait_until(
        "the Usher knows both edges",
        Duration::from_secs(10),
        || play("?region=eu")["node"] == "edge-eu" && play("?region=us")["node"] == "edge-us",
    );
    let eu_url = format!("http://{}/live/{CHANNEL}/index.m3u8", eu.http);
    let answer = play("?region=eu");
    assert_eq!(answer["url"], eu_url.as_str());
    assert_eq!(answer["local"], false, "an edge, not the node itself");

    // Without a region a channel's first 5 viewers (the threshold) go to one edge; the
    // next ones are spread over a second edge at once.
    let other = "hot";
    let sent: Vec<String> = (0..10)
        .map(|_| {
            let r = origin.http_request("GET", &format!("/usher/play/{other}"), &[], None);
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            v["node"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(sent[..5].iter().all(|n| *n == sent[0]), "{sent:?}");
    assert!(
        sent[5..].iter().any(|n| *n != sent[0]),
        "a second edge took viewers: {sent:?}"
    );
    let edges: std::collections::HashSet<&String> = sent.iter().collect();
    assert_eq!(edges.len(), 2, "{sent:?}");

    // Players that cannot ask an API follow a redirect, with their token along.
    let r = origin.http_request(
        "GET",
        &format!("/usher/live/{CHANNEL}/index.m3u8?region=us&token=abc"),
        &[],
        None,
    );
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(
        r.header("location"),
        Some(format!("http://{}/live/{CHANNEL}/index.m3u8?token=abc", us.http).as_str())
    );
    // Broadcasters are sent to the ingest node.
    let r = origin.http_request("GET", "/usher/publish", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["rtmp"], format!("rtmp://{}/live", origin.rtmp).as_str());
    assert_eq!(v["node"], "node-a");

    // A real player through the Usher's redirect and the edge.
    let publisher = ffmpeg_test_publish(&origin.rtmp_url(KEY), 60)
        .spawn()
        .unwrap();
    wait_until("live on the origin", Duration::from_secs(15), || {
        live(&origin)
    });
    let url = origin.http_url(&format!("/usher/live/{CHANNEL}/index.m3u8?region=eu"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The first tries may come before the first segment (404).
        let probed = probe_video(&url, 3);
        let frames = probed.as_ref().map_or(0, |(_, f)| *f);
        if frames >= 25 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ffprobe through the Usher and edge-eu: {probed:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        eu.metric("starling_edge_fills_total") > 0.0,
        "played through edge-eu"
    );
    // The watch page, served by the origin, asks the Usher and plays from the edge.
    if require_browser() {
        let before = us.metric("starling_edge_served_bytes_total");
        let v = watch(&[
            &origin.http_url(&format!("/watch/{CHANNEL}?region=us")),
            "--seconds",
            "4",
        ]);
        assert!(v["advanced"].as_f64().unwrap_or(0.0) >= 3.0, "{v}");
        let served = us.metric("starling_edge_served_bytes_total") - before;
        assert!(
            served > 100_000.0,
            "edge-us served the page's media: {served} bytes"
        );
    }
    promtool_check(
        "an edge in a cluster",
        &eu.http_request("GET", "/metrics", &[], None).body,
    );
    stop(publisher);
}

#[test]
fn an_edge_in_a_cluster_fills_from_whichever_node_ingests_the_channel() {
    if !require_ffmpeg() {
        return;
    }
    let Some(nats) = Nats::start() else { return };
    let mut a = Server::start("dir-a", &cluster_toml(&nats, "node-a", ""));
    let b = Server::start("dir-b", &cluster_toml(&nats, "node-b", ""));
    // No `[edge] origin`: the directory says where each channel is packaged.
    let edge = Server::start_edge(
        "dir-edge",
        "",
        &a.data_dir(),
        &format!(
            "\n[cluster]\nnats_url = \"{}\"\nnode_id = \"edge-1\"\n",
            nats.url()
        ),
    );
    let media = format!("/live/{CHANNEL}/source/index.m3u8");
    let r = edge.http_request("GET", &media, &[], None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("not live in the cluster"), "{}", r.body);
    // Live on node A: the edge fills from A.
    let first = ffmpeg_test_publish(&a.rtmp_url(KEY), 60).spawn().unwrap();
    wait_until(
        "the edge plays the channel from node A",
        Duration::from_secs(20),
        || {
            let r = edge.http_request("GET", &media, &[], None);
            r.status == 200 && r.body.contains("#EXTINF")
        },
    );
    // Node A dies; the encoder moves to node B once A's lease ran out: the edge follows.
    a.kill9();
    stop(first);
    let (publisher, _) = publish_until_accepted(&b, Instant::now());
    let took = wait_until(
        "the edge plays the channel from node B",
        Duration::from_secs(20),
        || {
            let r = edge.http_request("GET", &media, &[], None);
            r.status == 200 && {
                // The run on B is a new session: its media URLs name it.
                let b_pl = b.http_get(&media).unwrap_or_default();
                let session = b_pl
                    .lines()
                    .find(|l| l.ends_with(".m4s") && !l.starts_with('#'))
                    .and_then(|l| l.split('/').next())
                    .map(str::to_owned);
                session.is_some_and(|s| r.body.contains(&s))
            }
        },
    );
    eprintln!("the edge served node B's run {took:?} after the encoder moved there");
    stop(publisher);
}
