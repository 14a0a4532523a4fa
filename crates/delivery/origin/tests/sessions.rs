//! Sessions, runs and the reconnect grace, in-process: the demo source publishes into a
//! hub in real time, stops, publishes again; requests go through the router. Every
//! playlist the origin renders here is also run through the linter (debug builds).

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{http::StatusCode, Router};
use bytes::Bytes;
use common::{app, get, media_uris, playlist_until, publish_demo, temp_dir};
use starling_hub::Hub;
use starling_origin::{LocalDirStore, Origin, OriginConfig};

/// Sessions of the listed segments (not of the init section, which a republish with the
/// same settings keeps using from an earlier session).
fn segment_sessions(pl: &str) -> Vec<String> {
    let mut v: Vec<String> = pl
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|u| u.split_once('/').map(|(s, _)| s.to_owned()))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The preload hint's URI, if any.
fn hint_uri(pl: &str) -> Option<&str> {
    tag_value(pl, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"").map(|h| h.trim_end_matches('"'))
}

/// The session the preload hint points into.
fn hint_session(pl: &str) -> Option<String> {
    Some(hint_uri(pl)?.split_once('/')?.0.to_owned())
}

fn tag_value<'a>(pl: &'a str, tag: &str) -> Option<&'a str> {
    pl.lines().find_map(|l| l.strip_prefix(tag))
}

/// Each listed segment's discontinuity number (DISCONTINUITY-SEQUENCE plus the
/// DISCONTINUITY tags before it), by segment URI; a segment still in progress (parts
/// only) is listed under the URI it will have.
fn discontinuity_numbers(pl: &str) -> Vec<(String, u64)> {
    let mut n: u64 =
        tag_value(pl, "#EXT-X-DISCONTINUITY-SEQUENCE:").map_or(0, |v| v.parse().unwrap());
    let mut out: Vec<(String, u64)> = Vec::new();
    for line in pl.lines() {
        if line == "#EXT-X-DISCONTINUITY" {
            n += 1;
        } else if let Some(uri) = line
            .strip_prefix("#EXT-X-PART:")
            .and_then(|l| l.split("URI=\"").nth(1))
            .and_then(|u| u.split('"').next())
        {
            // `S/M.P.m4s` belongs to segment `S/M.m4s`.
            let (stem, _) = uri.trim_end_matches(".m4s").rsplit_once('.').unwrap();
            let seg = format!("{stem}.m4s");
            if out.last().is_none_or(|(u, _)| *u != seg) {
                out.push((seg, n));
            }
        } else if !line.starts_with('#') && out.last().is_none_or(|(u, _)| u != line) {
            out.push((line.to_owned(), n));
        }
    }
    out
}

/// The last complete segment's number.
fn last_msn(pl: &str) -> u64 {
    let first: u64 = tag_value(pl, "#EXT-X-MEDIA-SEQUENCE:")
        .unwrap()
        .parse()
        .unwrap();
    first + pl.matches("#EXTINF").count() as u64 - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_within_the_grace_continues_the_live_playlist() {
    let dir = temp_dir("sessions");
    let hub = Arc::new(Hub::default());
    let origin = Origin::new(
        OriginConfig {
            reconnect_grace: Duration::from_secs(3),
            // Short, so that the window slides past the seam while the test watches.
            dvr_window: Duration::from_secs(6),
            ..OriginConfig::default()
        },
        Arc::new(LocalDirStore::new(&dir)),
    );
    origin.follow(&hub, "demo");
    let app = app(&origin);
    const PL: &str = "/live/demo/source/index.m3u8";

    // Watches every playlist (10 per second) for segments whose discontinuity number
    // changes, from their first part on: a player would lose its place.
    let watcher = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut seen: HashMap<String, u64> = HashMap::new();
            let mut polls = 0;
            loop {
                let (status, body) = get(&app, PL).await;
                if status == StatusCode::OK {
                    let pl = String::from_utf8(body.to_vec()).unwrap();
                    for (uri, n) in discontinuity_numbers(&pl) {
                        let was = *seen.entry(uri.clone()).or_insert(n);
                        assert_eq!(was, n, "{uri} changed its discontinuity number:\n{pl}");
                    }
                    if pl.contains("#EXT-X-ENDLIST") {
                        return (seen.len(), polls);
                    }
                    polls += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    publish_demo(&hub, 5).await.unwrap();
    // The encoder is gone, but within the grace: still a live playlist, no ENDLIST, and a
    // preload hint into the session a republish will get.
    let gap = playlist_until(&app, PL, "in the grace", |pl| {
        hint_session(pl).is_some_and(|h| !segment_sessions(pl).contains(&h))
    })
    .await;
    assert!(!gap.contains("#EXT-X-ENDLIST"), "{gap}");
    let promised = hint_session(&gap).unwrap();
    let before = last_msn(&gap);
    let first_session = segment_sessions(&gap);
    assert_eq!(first_session.len(), 1, "{gap}");

    // Players blocked across the seam (on the next segment, and on the hinted part) are
    // answered by the new session.
    let blocked = {
        let app = app.clone();
        tokio::spawn(async move { get(&app, &format!("{PL}?_HLS_msn={}", before + 1)).await })
    };
    let hinted_part = {
        let app = app.clone();
        let uri = format!("/live/demo/source/{}", hint_uri(&gap).unwrap());
        tokio::spawn(async move { get(&app, &uri).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = publish_demo(&hub, 8);
    let (status, body) = blocked.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let seam = String::from_utf8(body.to_vec()).unwrap();
    assert!(last_msn(&seam) > before, "{seam}");
    let (status, part) = hinted_part.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&part[4..8], b"styp", "the first part of a segment");

    // Live again: a preload hint into the new session, a discontinuity at the seam,
    // numbering continues, and every listed object of both sessions is served.
    let live = playlist_until(&app, PL, "live again", |pl| segment_sessions(pl).len() == 2).await;
    assert!(!live.contains("#EXT-X-ENDLIST"), "{live}");
    assert!(live.contains("#EXT-X-DISCONTINUITY\n"), "{live}");
    let new_session = segment_sessions(&live)
        .into_iter()
        .find(|s| !first_session.contains(s))
        .unwrap();
    assert_eq!(new_session, promised);
    let hint = tag_value(&live, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"").unwrap();
    assert!(
        hint.starts_with(&new_session),
        "{hint} not in {new_session}"
    );
    for uri in media_uris(&live) {
        if uri == hint.trim_end_matches('"') {
            continue;
        }
        let (status, _) = get(&app, &format!("/live/demo/source/{uri}")).await;
        assert_eq!(status, StatusCode::OK, "{uri}\n{live}");
    }
    let nums: Vec<u64> = discontinuity_numbers(&live)
        .iter()
        .map(|(u, _)| {
            let file = u.rsplit('/').next().unwrap();
            file.trim_end_matches(".m4s").parse().unwrap()
        })
        .collect();
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");

    // When the grace runs out after the last publish, the run ends: ENDLIST, no hint.
    second.await.unwrap();
    let ended = playlist_until(&app, PL, "ENDLIST", |pl| pl.contains("#EXT-X-ENDLIST")).await;
    assert!(!ended.contains("PRELOAD-HINT"), "{ended}");
    // Meanwhile the DVR window slid past the seam; no segment changed its number.
    let (segments, polls) = watcher.await.unwrap();
    assert!(
        segments > 6 && polls > 50,
        "{segments} segments, {polls} polls"
    );
    // The recording of the run covers both sessions once everything is stored.
    let deadline = Instant::now() + Duration::from_secs(10);
    let rec = loop {
        if let Some(r) = origin.channel("demo").unwrap().finished_recording() {
            break r;
        }
        assert!(Instant::now() < deadline, "recording never complete");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rec.sessions.len(), 2, "{rec:?}");
    assert_eq!(rec.session, rec.sessions[0]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_blocked_when_the_run_ends_gets_the_final_playlist() {
    let dir = temp_dir("sessions");
    let hub = Arc::new(Hub::default());
    let origin = Origin::new(
        OriginConfig {
            reconnect_grace: Duration::from_secs(1),
            ..OriginConfig::default()
        },
        Arc::new(LocalDirStore::new(&dir)),
    );
    origin.follow(&hub, "demo");
    let app = app(&origin);
    publish_demo(&hub, 3).await.unwrap();
    // Once the packager has flushed the publish (the hint names the next session).
    let pl = playlist_until(&app, "/live/demo/source/index.m3u8", "flushed", |pl| {
        hint_session(pl).is_some_and(|h| !segment_sessions(pl).contains(&h))
    })
    .await;
    let next = last_msn(&pl) + 1;
    let asked = Instant::now();
    let (status, body) = get(
        &app,
        &format!("/live/demo/source/index.m3u8?_HLS_msn={next}"),
    )
    .await;
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    // Answered when the grace ran out, not at the 3-target-duration limit (6 s).
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "{:?}",
        asked.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fetches every media object a playlist lists (and the playlist's own session dir
/// objects), returning URL -> body.
async fn bodies(app: &Router, base: &str, pl: &str) -> HashMap<String, Bytes> {
    let mut out = HashMap::new();
    let hint = tag_value(pl, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"")
        .map(|h| h.trim_end_matches('"').to_owned());
    for uri in media_uris(pl) {
        if Some(&uri) == hint.as_ref() {
            continue;
        }
        let url = format!("{base}/{uri}");
        let (status, body) = get(app, &url).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        out.insert(url, body);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_url_names_two_different_bytes_across_runs_and_restarts() {
    let dir = temp_dir("sessions");
    let config = OriginConfig {
        reconnect_grace: Duration::from_millis(300),
        // Recorded: the first run's objects stay in the store after the second run
        // begins (without recording they are deleted then: 404, never other bytes).
        record: true,
        ..OriginConfig::default()
    };
    let mut all: HashMap<String, Bytes> = HashMap::new();
    let ended = |pl: &str| pl.contains("#EXT-X-ENDLIST");

    // First process: two runs (the second after the first ended).
    let hub = Arc::new(Hub::default());
    let origin = Origin::new(config.clone(), Arc::new(LocalDirStore::new(&dir)));
    origin.follow(&hub, "demo");
    let a = app(&origin);
    let mut first_run = HashMap::new();
    let mut old_sessions: Vec<String> = Vec::new();
    for run in 0..2 {
        let mut new_sessions = Vec::new();
        publish_demo(&hub, 4).await.unwrap();
        for r in ["source", "audio"] {
            // The end of this run (not the previous run's ENDLIST, still served until
            // the new publish's first frames arrive).
            let pl = playlist_until(&a, &format!("/live/demo/{r}/index.m3u8"), "ENDLIST", |pl| {
                ended(pl)
                    && segment_sessions(pl)
                        .iter()
                        .all(|s| !old_sessions.contains(s))
            })
            .await;
            if r == "source" {
                new_sessions.extend(segment_sessions(&pl));
            }
            let got = bodies(&a, &format!("/live/demo/{r}"), &pl).await;
            if run == 0 {
                first_run.extend(got.clone());
            } else {
                // A new run is a fresh playlist: no segment of the old one is listed (the
                // init section may be the old session's, when the encoder's settings are
                // the same: same URL, same bytes, which `check` verifies).
                assert!(
                    got.keys()
                        .filter(|u| u.ends_with(".m4s"))
                        .all(|u| !first_run.contains_key(u)),
                    "{pl}"
                );
            }
            check(&mut all, got);
        }
        old_sessions.extend(new_sessions);
    }
    // The first run's objects are still served (from the store), byte for byte.
    check(&mut all, refetch(&a, &first_run).await);
    // Wait for the write-through before the "restart".
    assert!(origin.drain(Duration::from_secs(5)).await);
    drop(a);
    drop(origin);
    drop(hub);

    // "Restart": a new origin over the same store; same URLs give the same bytes, and
    // the new publish's URLs are new.
    let hub = Arc::new(Hub::default());
    let origin = Origin::new(config, Arc::new(LocalDirStore::new(&dir)));
    origin.follow(&hub, "demo");
    let b = app(&origin);
    let before: HashMap<String, Bytes> = all.clone();
    check(&mut all, refetch(&b, &before).await);
    publish_demo(&hub, 4).await.unwrap();
    let pl = playlist_until(&b, "/live/demo/source/index.m3u8", "ENDLIST", ended).await;
    let got = bodies(&b, "/live/demo/source", &pl).await;
    // A new process makes its own init section too: every URL is new.
    assert!(got.keys().all(|u| !before.contains_key(u)), "{pl}");
    check(&mut all, got);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Records each URL's body, failing if a URL seen before comes back with other bytes.
fn check(all: &mut HashMap<String, Bytes>, got: HashMap<String, Bytes>) {
    for (url, body) in got {
        if let Some(was) = all.get(&url) {
            assert_eq!(was, &body, "{url} served two different bodies");
        }
        all.insert(url, body);
    }
}

async fn refetch(app: &Router, urls: &HashMap<String, Bytes>) -> HashMap<String, Bytes> {
    let mut out = HashMap::new();
    for url in urls.keys() {
        // Parts live in memory only: after their run they are gone (never other bytes).
        let (status, body) = get(app, url).await;
        if url.matches('.').count() == 2 {
            assert!(
                status == StatusCode::OK
                    || status == StatusCode::NOT_FOUND
                    || status == StatusCode::GONE,
                "{url}: {status}"
            );
            if status != StatusCode::OK {
                continue;
            }
        } else {
            assert_eq!(status, StatusCode::OK, "{url}");
        }
        out.insert(url.clone(), body);
    }
    out
}
