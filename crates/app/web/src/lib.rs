//! Starling's web UI, embedded in the binary: the viewer pages and the admin console.
//!
//! [`router`] serves
//! - `/`: the live channel list (the page polls `GET /api/v1/live` every 5 s),
//! - `/watch/{channel}`: the player page (hls.js in low-latency mode, or native HLS),
//!   for channel names of 1 to 64 `[A-Za-z0-9_-]`; any other name is a 404,
//! - `/admin`: the admin console, a single page over the management API (`/api/v1`);
//!   the page itself is public, everything it shows needs a session,
//! - `/studio`: go live from the browser over WHIP (camera, microphone or screen; the
//!   stream key is typed in),
//! - `/assets/{file}`: the pages' JS, CSS and icon, and hls.js.
//!
//! The pages and assets come from `web/` (plain HTML/CSS/JS and hls.js), which
//! `build.rs` builds with npm and embeds. Asset names carry a content hash
//! (`watch.0123456789.js`), so they are served `immutable` for a year; the pages are
//! served `no-cache` with an ETag, so a new build shows up on the next load and an
//! unchanged page costs a 304. Without npm the crate still builds, and every page is a
//! short notice saying how to build the UI (see [`ui_built`]).
//!
//! This crate serves static bytes only: it never reads the disk at run time and never
//! turns a request path into a file path.

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

mod assets;

use assets::Asset;

/// `Cache-Control` for HTML pages: always revalidate (cheap, thanks to the ETag).
const PAGE_CACHE: &str = "no-cache";
/// `Cache-Control` for content-hashed assets.
const IMMUTABLE_CACHE: &str = "public, max-age=31536000, immutable";

/// Other hosts the watch page may fetch playlists and media from (`scheme://host:port`):
/// a cluster's edges, which the Usher sends viewers to. Asked per page.
pub type PlaybackHosts = std::sync::Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// The routes of the viewer UI, to merge into the server's router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    router_with(None)
}

/// [`router`], with the watch page's Content Security Policy opened to `hosts` (the
/// page plays from an edge in a cluster; `connect-src 'self'` alone would block it).
pub fn router_with<S: Clone + Send + Sync + 'static>(hosts: Option<PlaybackHosts>) -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route(
            "/watch/{channel}",
            get(
                move |channel: Result<Path<String>, PathRejection>, headers: HeaderMap| {
                    let hosts = hosts.as_ref().map(|h| h()).unwrap_or_default();
                    async move { watch(channel, headers, &hosts) }
                },
            ),
        )
        .route("/admin", get(admin))
        .route("/studio", get(studio))
        .route("/assets/{file}", get(asset))
}

/// Whether the real UI is embedded; `false` means npm was missing or its build failed
/// when this crate was compiled, and every page is the "not built" notice.
pub fn ui_built() -> bool {
    assets::BUILT
}

/// A channel name that the UI accepts: 1 to 64 ASCII letters, digits, `_` or `-`.
pub fn is_valid_channel_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

async fn index(headers: HeaderMap) -> Response {
    serve(assets::page("index.html"), &headers)
}

async fn admin(headers: HeaderMap) -> Response {
    serve(assets::page("admin.html"), &headers)
}

async fn studio(headers: HeaderMap) -> Response {
    serve(assets::page("studio.html"), &headers)
}

fn watch(
    channel: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    hosts: &[String],
) -> Response {
    match channel {
        Ok(Path(name)) if is_valid_channel_name(&name) => watch_page(&name, &headers, hosts),
        _ => not_found(),
    }
}

/// `hosts` that are plain `http(s)://host[:port]` origins, joined for a CSP source list;
/// anything else is left out (it would go into the page's HTML).
fn csp_sources(hosts: &[String]) -> String {
    hosts
        .iter()
        .filter(|h| {
            (h.starts_with("http://") || h.starts_with("https://"))
                && h.len() <= 200
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".:/-[]".contains(&b))
        })
        .map(|h| format!(" {h}"))
        .collect()
}

/// The player page with its link preview filled in for `channel` (Open Graph: title and
/// the channel's poster, an absolute URL as crawlers need, on the host the request
/// named). The name is 1-64 of `[A-Za-z0-9_-]`, so it goes into the HTML as it is.
fn watch_page(channel: &str, request: &HeaderMap, hosts: &[String]) -> Response {
    let Some(page) = assets::page("watch.html") else {
        return not_found();
    };
    let header = |name: &str| request.get(name).and_then(|v| v.to_str().ok());
    let base =
        starling_sync::base_url(header("host"), header("x-forwarded-proto")).unwrap_or_default();
    let sources = csp_sources(hosts);
    let mut text = String::from_utf8_lossy(page.bytes)
        .replace("{{og:title}}", channel)
        .replace("{{og:image}}", &format!("{base}/live/{channel}/thumb.jpg"));
    if !sources.is_empty() {
        text = text
            .replace(
                "connect-src 'self'",
                &format!("connect-src 'self'{sources}"),
            )
            .replace("media-src 'self'", &format!("media-src 'self'{sources}"));
    }
    // The page's own validator, plus what was filled in.
    let etag = format!(
        "\"{}-{:016x}\"",
        page.etag.trim_matches('"'),
        fnv1a(format!("{channel} {base}{sources}").as_bytes())
    );
    let mut headers = HeaderMap::new();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(PAGE_CACHE));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, v);
    }
    if etag_matches(request, &etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(page.content_type));
    (StatusCode::OK, headers, text).into_response()
}

/// FNV-1a, 64 bits: a validator for a filled-in page, not a security measure.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

async fn asset(file: Result<Path<String>, PathRejection>, headers: HeaderMap) -> Response {
    match file {
        Ok(Path(name)) => serve(assets::asset(&name), &headers),
        Err(_) => not_found(),
    }
}

fn serve(asset: Option<&'static Asset>, request: &HeaderMap) -> Response {
    let Some(asset) = asset else {
        return not_found();
    };
    let cache = if asset.immutable {
        IMMUTABLE_CACHE
    } else {
        PAGE_CACHE
    };
    let mut headers = HeaderMap::new();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(ETAG, HeaderValue::from_static(asset.etag));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if etag_matches(request, asset.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    (StatusCode::OK, headers, asset.bytes).into_response()
}

/// `If-None-Match` lists `etag` (or is `*`); weak comparison, as RFC 9110 asks for GET.
fn etag_matches(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (CACHE_CONTROL, "no-cache"),
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "not found\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(uri: &str) -> Response {
        get_with(uri, &[]).await
    }

    async fn get_with(uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::builder().uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        router::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header<'a>(res: &'a Response, name: &str) -> &'a str {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    async fn body(res: Response) -> Vec<u8> {
        to_bytes(res.into_body(), 16 << 20).await.unwrap().to_vec()
    }

    /// The `/assets/...` URL that a page refers to for `stem` (e.g. `hls.min.`).
    fn asset_url(page: &str, stem: &str) -> String {
        let at = page
            .find(&format!("/assets/{stem}"))
            .unwrap_or_else(|| panic!("no /assets/{stem} in the page"));
        let rest = &page[at..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    #[tokio::test]
    async fn pages_are_html_and_revalidated() {
        for uri in [
            "/",
            "/admin",
            "/studio",
            "/watch/demo",
            "/watch/Cam_2-b",
            &format!("/watch/{}", "a".repeat(64)),
        ] {
            let res = get(uri).await;
            assert_eq!(res.status(), StatusCode::OK, "{uri}");
            assert_eq!(
                header(&res, "content-type"),
                "text/html; charset=utf-8",
                "{uri}"
            );
            assert_eq!(header(&res, "cache-control"), "no-cache", "{uri}");
            assert!(header(&res, "etag").starts_with('"'), "{uri}");
            let html = String::from_utf8(body(res).await).unwrap();
            assert!(html.starts_with("<!doctype html>"), "{uri}");
        }
    }

    #[tokio::test]
    async fn invalid_channel_names_are_not_found() {
        let long = format!("/watch/{}", "a".repeat(65));
        let hundred = format!("/watch/{}", "b".repeat(100));
        for uri in [
            "/watch/..%2f",
            "/watch/..",
            "/watch/a%2Fb",
            "/watch/caf%C3%A9",
            "/watch/%FF",
            "/watch/a.b",
            "/watch/a%20b",
            long.as_str(),
            hundred.as_str(),
            "/watch/",
            "/watch/demo/extra",
            "/admin/",
            "/admin/users",
        ] {
            let res = get(uri).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{uri}");
        }
    }

    #[tokio::test]
    async fn unchanged_page_is_304() {
        let etag = header(&get("/").await, "etag").to_owned();
        let res = get_with("/", &[("if-none-match", &etag)]).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&res, "etag"), etag);
        assert!(body(res).await.is_empty());
        let res = get_with("/", &[("if-none-match", "\"something-else\"")]).await;
        assert_eq!(res.status(), StatusCode::OK);
        // A watch page's validator covers what was filled in for it.
        let a = header(&get_with("/watch/a", &[("host", "h")]).await, "etag").to_owned();
        let b = header(&get_with("/watch/b", &[("host", "h")]).await, "etag").to_owned();
        assert_ne!(a, b);
        let res = get_with("/watch/a", &[("host", "h"), ("if-none-match", &a)]).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn missing_asset_is_not_found() {
        for uri in [
            "/assets/nope.js",
            "/assets/..%2findex.html",
            "/assets/index.html",
            "/assets/",
        ] {
            assert_eq!(get(uri).await.status(), StatusCode::NOT_FOUND, "{uri}");
        }
    }

    #[test]
    fn playback_hosts_join_the_policy_only_as_plain_origins() {
        let hosts = [
            "http://10.0.0.5:8091".to_owned(),
            "https://edge-eu.example".to_owned(),
            "http://x\"><script>".to_owned(),
            "javascript:alert(1)".to_owned(),
            "http://a b".to_owned(),
        ];
        assert_eq!(
            csp_sources(&hosts),
            " http://10.0.0.5:8091 https://edge-eu.example"
        );
        assert_eq!(csp_sources(&[]), "");
    }

    #[test]
    fn channel_names() {
        assert!(is_valid_channel_name("demo"));
        assert!(is_valid_channel_name("A-z_09"));
        assert!(is_valid_channel_name(&"x".repeat(64)));
        assert!(!is_valid_channel_name(""));
        assert!(!is_valid_channel_name(&"x".repeat(65)));
        assert!(!is_valid_channel_name("../x"));
        assert!(!is_valid_channel_name("é"));
    }

    /// With npm on the build machine, the real UI must be embedded, hls.js included.
    #[tokio::test]
    async fn built_ui_embeds_assets_with_long_cache() {
        if !assets::NPM_FOUND {
            // Without npm the fallback notice is the page: check that instead.
            assert!(!ui_built());
            let html = String::from_utf8(body(get("/").await).await).unwrap();
            assert!(html.contains("The web UI was not built: install Node.js and npm (apt-get install nodejs npm) and rebuild."));
            return;
        }
        assert!(
            ui_built(),
            "npm was found but the web UI build failed: see the cargo warning"
        );
        let watch = String::from_utf8(body(get("/watch/demo").await).await).unwrap();

        let hls = asset_url(&watch, "hls.min.");
        let res = get(&hls).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header(&res, "content-type"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            header(&res, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        let bytes = body(res).await;
        assert!(
            bytes.len() > 100 * 1024,
            "hls.min.js is only {} bytes",
            bytes.len()
        );

        let css = get(&asset_url(&watch, "style.")).await;
        assert_eq!(css.status(), StatusCode::OK);
        assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");
        assert_eq!(
            header(&css, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header(&css, "x-content-type-options"), "nosniff");

        let svg = get(&asset_url(&watch, "favicon.")).await;
        assert_eq!(header(&svg, "content-type"), "image/svg+xml");

        // Link previews: the channel's name and its poster, absolute, on the host asked;
        // an odd Host header is not echoed.
        let res = get_with(
            "/watch/cam_2",
            &[("host", "tv.example:8443"), ("x-forwarded-proto", "https")],
        )
        .await;
        let page = String::from_utf8(body(res).await).unwrap();
        assert!(page.contains(r#"<meta property="og:title" content="cam_2 · Starling">"#));
        assert!(page.contains(
            r#"<meta property="og:image" content="https://tv.example:8443/live/cam_2/thumb.jpg">"#
        ));
        let res = get_with("/watch/cam", &[("host", "x\"><script>")]).await;
        let page = String::from_utf8(body(res).await).unwrap();
        assert!(page.contains(r#"<meta property="og:image" content="/live/cam/thumb.jpg">"#));
        assert!(!page.contains("<script>\""));
        // dash.js is embedded too, for `?player=dash`.
        assert!(
            watch.contains("data-dashjs=\"/assets/dash.mediaplayer."),
            "{watch}"
        );

        // The admin console: its stylesheet and script are embedded; the script speaks
        // the API and never logs or stores anything in sessionStorage.
        let admin = String::from_utf8(body(get("/admin").await).await).unwrap();
        assert!(admin.contains("<title>Admin · Starling</title>"));
        let urls: Vec<&str> = admin
            .split('"')
            .filter(|s| s.starts_with("/assets/admin."))
            .collect();
        let css = urls.iter().find(|u| u.ends_with(".css")).unwrap();
        let js = urls.iter().find(|u| u.ends_with(".js")).unwrap();
        let css = get(css).await;
        assert_eq!(css.status(), StatusCode::OK);
        assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");
        let script = get(js).await;
        assert_eq!(script.status(), StatusCode::OK);
        let script = String::from_utf8(body(script).await).unwrap();
        assert!(script.contains("/api/v1/login"));
        assert!(!script.contains("console."));
        assert!(!script.contains("sessionStorage.setItem"));

        let index = String::from_utf8(body(get("/").await).await).unwrap();
        let live = get(&asset_url(&index, "live.")).await;
        assert_eq!(live.status(), StatusCode::OK);
        assert!(String::from_utf8(body(live).await)
            .unwrap()
            .contains("/api/v1/live"));
    }
}
