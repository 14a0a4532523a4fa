//! The origin with a playback gate, in-process: the demo source live on a private
//! channel and on a public one; each decision of a (scripted) gate must turn into the
//! right status code, caching headers and playlist URIs.

#![allow(clippy::unwrap_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use axum::{
    body::Body,
    http::{header, HeaderMap, Request, StatusCode},
    middleware, Router,
};
use bytes::Bytes;
use starling_demo_source::{DemoConfig, DemoSource};
use starling_hub::Hub;
use starling_media::MediaEvent;
use starling_origin::{
    http, Access, GateFuture, LocalDirStore, Origin, OriginConfig, PlaybackGate, Refusal,
};
use tower::ServiceExt;

const GOOD: &str = "R29vZA.c2ln";

/// `secret` is private; every other channel public. Tokens are scripted by value.
#[derive(Debug)]
struct ScriptedGate;

impl PlaybackGate for ScriptedGate {
    fn check<'a>(&'a self, channel: &'a str, token: Option<&'a str>) -> GateFuture<'a> {
        Box::pin(async move {
            if channel != "secret" {
                return Access::Public;
            }
            match token {
                None => Access::Refused(Refusal::NoToken),
                Some(GOOD) => Access::Allowed,
                Some("T-expired") => Access::Refused(Refusal::Expired {
                    expired_at_ms: 1_000,
                }),
                Some("T-other") => Access::Refused(Refusal::WrongChannel {
                    token_channel: "open".into(),
                }),
                Some("T-down") => Access::Refused(Refusal::Unavailable),
                Some(_) => Access::Refused(Refusal::BadSignature),
            }
        })
    }
}

fn publish(hub: &Arc<Hub>, name: &str) -> tokio::task::JoinHandle<()> {
    let publisher = hub.publish(name, false).unwrap();
    tokio::spawn(async move {
        let mut src = DemoSource::new(DemoConfig {
            width: 320,
            height: 180,
            fps: 30,
            gop_frames: 30,
        })
        .unwrap();
        publisher.send(MediaEvent::Stream(src.stream()));
        let start = tokio::time::Instant::now();
        for n in 0..8 * 30 {
            tokio::time::sleep_until(start + Duration::from_nanos(n * 1_000_000_000 / 30)).await;
            for f in src.next(SystemTime::now()) {
                publisher.send(MediaEvent::Frame(f));
            }
        }
    })
}

async fn get(app: &Router, uri: &str, cookie: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::get(uri);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body: Bytes = axum::body::to_bytes(res.into_body(), 64 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

async fn wait_ok(app: &Router, uri: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, body) = get(app, uri, None).await;
        if status == StatusCode::OK {
            return body;
        }
        assert!(Instant::now() < deadline, "{uri}: last {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every URI of a playlist: URI lines and `URI="…"` attributes.
fn uris(playlist: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in playlist.lines() {
        if line.starts_with('#') {
            for piece in line.split("URI=\"").skip(1) {
                out.push(piece.split('"').next().unwrap().to_owned());
            }
        } else if !line.trim().is_empty() {
            out.push(line.to_owned());
        }
    }
    out
}

fn cache(h: &HeaderMap) -> &str {
    h[header::CACHE_CONTROL].to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_decides_status_caching_and_playlist_uris() {
    let dir = std::env::temp_dir().join(format!("starling-gate-{}", std::process::id()));
    let hub = Arc::new(Hub::default());
    let origin = Origin::new(OriginConfig::default(), Arc::new(LocalDirStore::new(&dir)));
    origin.follow(&hub, "secret");
    origin.follow(&hub, "open");
    let _a = publish(&hub, "secret");
    let _b = publish(&hub, "open");
    let app: Router = http::router_with_gate(origin.clone(), Arc::new(ScriptedGate))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn(http::guard));

    // The public channel, as without a gate; a stray token changes nothing.
    let open = wait_ok(&app, "/live/open/source/index.m3u8").await;
    assert!(!open.contains("token="), "{open}");
    let (s, h, body) = get(&app, "/live/open/source/index.m3u8?token=whatever", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(cache(&h).starts_with("public"), "{h:?}");
    assert!(!body.contains("token="));
    let (s, h, _) = get(&app, "/live/open/index.m3u8", None).await;
    assert_eq!((s, cache(&h)), (StatusCode::OK, "public, max-age=2"));

    // Refusals, before the channel is even looked up (also for one that does not exist).
    for (uri, cookie, status, code) in [
        ("/live/secret/index.m3u8", None, 401, "token_required"),
        ("/live/secret/source/0.m4s", None, 401, "token_required"),
        (
            "/live/secret/source/init.mp4?token=",
            None,
            401,
            "token_required",
        ),
        ("/live/secret/nope/index.m3u8", None, 401, "token_required"),
        // Recordings as VOD pass the same gate.
        (
            "/vod/secret/0000000000000001/index.m3u8",
            None,
            401,
            "token_required",
        ),
        (
            "/vod/secret/0000000000000001/source.m3u8?token=T-expired",
            None,
            403,
            "token_expired",
        ),
        (
            "/live/secret/index.m3u8?token=T-expired",
            None,
            403,
            "token_expired",
        ),
        (
            "/live/secret/index.m3u8?token=T-other",
            None,
            403,
            "token_wrong_channel",
        ),
        (
            "/live/secret/source/1.m4s?token=T-forged",
            None,
            403,
            "token_bad_signature",
        ),
        (
            "/live/secret/index.m3u8",
            Some("starling_playback=T-forged"),
            403,
            "token_bad_signature",
        ),
        (
            "/live/secret/index.m3u8?token=T-down",
            None,
            503,
            "access_check_unavailable",
        ),
    ] {
        let (s, h, body) = get(&app, uri, cookie).await;
        assert_eq!(s.as_u16(), status, "{uri}: {body}");
        assert!(
            body.contains(&format!("\"code\":\"{code}\"")),
            "{uri}: {body}"
        );
        assert_eq!(cache(&h), "no-store");
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "*",
            "CORS on refusals too"
        );
        assert!(!body.contains("T-"), "{uri} echoed the token: {body}");
    }
    // Syntax errors stay 400 (no gate call needed to say so).
    assert_eq!(get(&app, "/live/secret/source/x.m4s", None).await.0, 400);

    // A valid token: every URI the origin writes carries it; caching is private.
    let q = format!("token={GOOD}");
    let mv = wait_ok(&app, &format!("/live/secret/index.m3u8?{q}")).await;
    let (_, h, _) = get(&app, &format!("/live/secret/index.m3u8?{q}"), None).await;
    assert_eq!(cache(&h), "private, max-age=2");
    let mv_uris = uris(&mv);
    assert_eq!(mv_uris.len(), 2, "{mv}");
    assert!(mv_uris.iter().all(|u| u.ends_with(&q)), "{mv}");

    let media = wait_ok(&app, &format!("/live/secret/source/index.m3u8?{q}")).await;
    let media_uris = uris(&media);
    assert!(media_uris.len() > 5, "{media}");
    assert!(media_uris.iter().all(|u| u.ends_with(&q)), "{media}");
    for tag in [
        "#EXT-X-MAP:",
        "#EXT-X-PART:",
        "#EXT-X-PRELOAD-HINT:",
        "#EXT-X-RENDITION-REPORT:",
    ] {
        let line = media
            .lines()
            .find(|l| l.starts_with(tag))
            .unwrap_or_else(|| panic!("{tag} missing:\n{media}"));
        assert!(line.contains(&format!("?{q}\"")), "{line}");
    }
    // The same token through the cookie.
    let (s, h, by_cookie) = get(
        &app,
        "/live/secret/source/index.m3u8",
        Some(&format!("a=b; starling_playback={GOOD}")),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(cache(&h).starts_with("private"));
    assert!(uris(&by_cookie).iter().all(|u| u.ends_with(&q)));

    // Follow the URIs as a player would: init, a segment, a part, the audio playlist.
    let seg = media_uris
        .iter()
        .find(|u| u.ends_with(&format!(".m4s?{q}")) && u.split('.').count() == 3)
        .unwrap();
    let init = media_uris.iter().find(|u| u.contains("/init-")).unwrap();
    for file in [init, seg] {
        let (s, h, _) = get(&app, &format!("/live/secret/source/{file}"), None).await;
        assert_eq!(s, StatusCode::OK, "{file}");
        assert_eq!(cache(&h), "private, max-age=31536000, immutable", "{file}");
    }
    let audio = mv_uris.iter().find(|u| u.starts_with("audio/")).unwrap();
    // The audio rendition may list its first segment a moment after the video's.
    wait_ok(&app, &format!("/live/secret/{audio}")).await;
    let (s, h, audio_pl) = get(&app, &format!("/live/secret/{audio}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(cache(&h).starts_with("private, max-age="));
    assert!(uris(&audio_pl).iter().all(|u| u.ends_with(&q)));

    // Blocking reload with the token among the _HLS_ parameters still blocks and answers.
    let last = media
        .lines()
        .rfind(|l| l.starts_with("#EXT-X-PART:"))
        .and_then(|l| l.split("URI=\"").nth(1))
        .and_then(|u| u.split('?').next())
        .unwrap()
        .trim_end_matches(".m4s")
        .to_owned();
    let (session, last) = last.split_once('/').unwrap();
    let (msn, part) = last.split_once('.').unwrap();
    let next = format!(
        "/live/secret/source/index.m3u8?_HLS_msn={msn}&{q}&_HLS_part={}",
        part.parse::<u64>().unwrap() + 1
    );
    let (s, h, blocked) = get(&app, &next, None).await;
    assert_eq!(s, StatusCode::OK, "{blocked}");
    assert!(cache(&h).starts_with("private, max-age="), "{h:?}");
    assert!(uris(&blocked).iter().all(|u| u.ends_with(&q)));
    // Errors of an allowed request are private too (not-yet media).
    let (s, h, _) = get(
        &app,
        &format!("/live/secret/source/{session}/99999.m4s?{q}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(cache(&h).starts_with("private"), "{h:?}");

    let text = {
        let mut t = String::new();
        origin.metrics().render(&mut t);
        t
    };
    assert!(
        text.contains("starling_playback_refused_total 11"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
