//! Leases and events against a real nats-server (Debian's package, started here with
//! JetStream on a free port): one holder per channel, release and expiry, takeover,
//! revocations, and NATS going away and coming back.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::nats::Nats;

use starling_cluster::{Claim, ClaimError, Cluster, ClusterConfig, ClusterEvent};

async fn node(nats: &Nats, id: &str, ttl: Duration) -> Arc<Cluster> {
    Cluster::start(ClusterConfig {
        nats_url: nats.url(),
        node_id: id.to_owned(),
        lease_ttl: ttl,
    })
    .await
    .unwrap()
}

async fn wait_connected(c: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.connected() {
        assert!(Instant::now() < deadline, "not connected to NATS");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn next_event(
    rx: &mut tokio::sync::broadcast::Receiver<ClusterEvent>,
    within: Duration,
) -> ClusterEvent {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("an event in time")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_per_channel_and_the_lease_passes_on_when_released() {
    let Some(nats) = Nats::start() else { return };
    let a = node(&nats, "node-a", Duration::from_secs(6)).await;
    let b = node(&nats, "node-b", Duration::from_secs(6)).await;
    wait_connected(&a).await;
    wait_connected(&b).await;
    assert_eq!(a.claim("ch", false).await, Ok(Claim::Held));
    // A second publish on the same node (an encoder reconnecting) shares the lease.
    assert_eq!(a.claim("ch", false).await, Ok(Claim::Held));
    assert_eq!(
        b.claim("ch", false).await,
        Err(ClaimError::HeldBy {
            channel: "ch".into(),
            node: "node-a".into()
        })
    );
    // Other channels are independent.
    assert_eq!(b.claim("other", false).await, Ok(Claim::Held));
    a.release("ch");
    assert!(
        b.claim("ch", false).await.is_err(),
        "still held by the first publish"
    );
    a.release("ch");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match b.claim("ch", false).await {
            Ok(c) => {
                assert_eq!(c, Claim::Held);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        b.metrics.refused.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_dies_frees_its_channels_within_a_lease_time() {
    let Some(nats) = Nats::start() else { return };
    let ttl = Duration::from_secs(2);
    let b = node(&nats, "node-b", ttl).await;
    wait_connected(&b).await;
    // A node that claimed and then vanished (no renewals, no release): its key, written
    // straight into the bucket, is what a kill -9 leaves.
    let dead = node(&nats, "node-dead", ttl).await;
    wait_connected(&dead).await;
    assert_eq!(dead.claim("ch", false).await, Ok(Claim::Held));
    let raw = async_nats::connect(nats.url()).await.unwrap();
    let kv = async_nats::jetstream::new(raw)
        .get_key_value(starling_cluster::LEASE_BUCKET)
        .await
        .unwrap();
    kv.put("ghost", "node-gone".into()).await.unwrap();
    assert!(matches!(
        b.claim("ghost", false).await,
        Err(ClaimError::HeldBy { node, .. }) if node == "node-gone"
    ));
    let started = Instant::now();
    loop {
        if b.claim("ghost", false).await == Ok(Claim::Held) {
            break;
        }
        assert!(
            started.elapsed() < ttl * 3,
            "the dead node's lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A live holder keeps its lease well past the lease time (it renews).
    tokio::time::sleep(ttl * 2).await;
    assert!(
        b.claim("ch", false).await.is_err(),
        "the renewing holder kept ch"
    );
    drop(dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_asks_the_holder_and_takes_the_lease_when_it_lets_go() {
    let Some(nats) = Nats::start() else { return };
    let a = node(&nats, "node-a", Duration::from_secs(6)).await;
    let b = node(&nats, "node-b", Duration::from_secs(6)).await;
    wait_connected(&a).await;
    wait_connected(&b).await;
    let mut a_events = a.events();
    assert_eq!(a.claim("ch", false).await, Ok(Claim::Held));
    // Give the subscription a moment to reach the server.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let releaser = {
        let a = a.clone();
        tokio::spawn(async move {
            let ev = next_event(&mut a_events, Duration::from_secs(3)).await;
            assert_eq!(
                ev,
                ClusterEvent::Takeover {
                    channel: "ch".into(),
                    by: "node-b".into()
                }
            );
            // What the node does on this event: end the publish, which releases.
            a.release("ch");
        })
    };
    let started = Instant::now();
    assert_eq!(b.claim("ch", true).await, Ok(Claim::Held));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    releaser.await.unwrap();
    assert!(a.claim("ch", false).await.is_err(), "node-b holds it now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_every_other_node_at_once() {
    let Some(nats) = Nats::start() else { return };
    let a = node(&nats, "node-a", Duration::from_secs(6)).await;
    let b = node(&nats, "node-b", Duration::from_secs(6)).await;
    wait_connected(&a).await;
    wait_connected(&b).await;
    let mut b_events = b.events();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = Instant::now();
    a.revoke("key-123").await;
    let ev = next_event(&mut b_events, Duration::from_secs(1)).await;
    assert_eq!(
        ev,
        ClusterEvent::Revoked {
            key_id: "key-123".into()
        }
    );
    assert!(sent.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_down_publishes_go_on_unverified_and_one_keeps_the_channel_when_it_returns() {
    let Some(mut nats) = Nats::start() else {
        return;
    };
    let ttl = Duration::from_secs(3);
    let a = node(&nats, "node-a", ttl).await;
    let b = node(&nats, "node-b", ttl).await;
    wait_connected(&a).await;
    wait_connected(&b).await;
    // The bucket exists (made by a first claim) before NATS goes away.
    assert_eq!(a.claim("warm", false).await, Ok(Claim::Held));
    nats.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!a.connected());
    let mut a_events = a.events();
    let mut b_events = b.events();
    // Both accept a publish of the same channel: each is unverified, not refused.
    let started = Instant::now();
    assert_eq!(a.claim("ch", false).await, Ok(Claim::Unverified));
    assert!(started.elapsed() <= starling_cluster::CLAIM_TIMEOUT + Duration::from_millis(500));
    assert_eq!(b.claim("ch", false).await, Ok(Claim::Unverified));
    nats.restart();
    wait_connected(&a).await;
    wait_connected(&b).await;
    // Within a couple of renewal rounds one node holds it and the other lost it.
    let lost = tokio::time::timeout(ttl * 4, async {
        tokio::select! {
            e = a_events.recv() => ("node-a", e.unwrap()),
            e = b_events.recv() => ("node-b", e.unwrap()),
        }
    })
    .await
    .expect("one of the two lost the channel");
    let (loser, ev) = lost;
    let winner = if loser == "node-a" {
        "node-b"
    } else {
        "node-a"
    };
    assert_eq!(
        ev,
        ClusterEvent::LeaseLost {
            channel: "ch".into(),
            holder: winner.into()
        }
    );
    let raw = async_nats::connect(nats.url()).await.unwrap();
    let kv = async_nats::jetstream::new(raw)
        .get_key_value(starling_cluster::LEASE_BUCKET)
        .await
        .unwrap();
    let entry = kv.get("ch").await.unwrap().unwrap();
    assert_eq!(&entry[..], winner.as_bytes());
}
