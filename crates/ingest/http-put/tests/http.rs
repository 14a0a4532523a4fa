//! The routes over a real socket with a raw HTTP/1.1 client: what is refused is refused
//! with a status and a text that say why, and leaves nothing in memory or in the store.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{bearer, files, fmp4_segment, request, start, ts_segment, Server};
use starling_http_put::PushConfig;
use tokio::io::AsyncWriteExt;

fn config() -> PushConfig {
    PushConfig {
        max_media_bytes: 64 << 10,
        max_playlist_bytes: 4 << 10,
        reference_wait: Duration::from_millis(200),
        ..PushConfig::default()
    }
}

/// Nothing in the store directory and nothing served for `paths`.
async fn nothing_kept(server: &Server, paths: &[&str]) {
    server.ingest.flushed().await;
    assert!(
        files(&server.dir).is_empty(),
        "stored: {:?}",
        files(&server.dir)
    );
    for p in paths {
        assert!(server.ingest.get("news", p).await.is_none(), "{p}");
    }
}

#[tokio::test]
async fn paths_that_could_leave_the_channel_are_refused() {
    let s = start("http-paths", config()).await;
    let key = bearer("k-news");
    for (target, why) in [
        ("/ingest/news/../x.ts", "segment '..' starts with '.'"),
        ("/ingest/news/a/../../x.ts", "segment '..' starts with '.'"),
        ("/ingest/news/%2e%2e/x.ts", "contains '%'"),
        ("/ingest/news/..%2fx.ts", "contains '%'"),
        ("/ingest/news//etc/x.ts", "absolute"),
        ("/ingest/news/.hidden.ts", "starts with '.'"),
        ("/ingest/news/a/b/c.ts", "3 segments"),
        ("/ingest/news/x.exe", "'.exe' is not a pushable kind"),
        ("/ingest/news/x", "no extension"),
        ("/ingest/ne.ws/x.ts", "channel name"),
    ] {
        let a = request(s.addr, "PUT", target, &key, &ts_segment()).await;
        assert_eq!(a.status, 400, "{target}: {a:?}");
        assert!(a.body.contains(why), "{target}: {:?} lacks {why:?}", a.body);
    }
    nothing_kept(&s, &["x.ts", "etc/x.ts"]).await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_before_and_while_reading() {
    let s = start("http-size", config()).await;
    let key = bearer("k-news");
    // Declared too large: refused before a byte of the body is read.
    let head = format!("{key}Content-Length: {}\r\n", 100 << 20);
    let a = request(s.addr, "PUT", "/ingest/news/1.ts", &head, b"").await;
    assert_eq!(a.status, 413, "{a:?}");
    assert_eq!(
        a.body,
        "body of 104857600 bytes is over the limit of 65536 bytes for a media object\n"
    );
    // Chunked, as ffmpeg sends: refused once past the limit.
    let head = format!("{key}Transfer-Encoding: chunked\r\n");
    let mut body = Vec::new();
    for _ in 0..8 {
        body.extend_from_slice(format!("{:x}\r\n", 1000).as_bytes());
        body.extend_from_slice(&[b'#'; 1000]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let a = request(s.addr, "PUT", "/ingest/news/index.m3u8", &head, &body).await;
    assert_eq!(a.status, 413, "{a:?}");
    assert_eq!(
        a.body,
        "body is over the limit of 4096 bytes for a playlist\n"
    );
    nothing_kept(&s, &["1.ts", "index.m3u8"]).await;
    let mut m = String::new();
    s.ingest.render_metrics(&mut m);
    assert!(m.contains("result=\"too_large\"} 2\n"), "{m}");
}

#[tokio::test]
async fn bodies_that_are_not_what_their_name_says_are_refused() {
    let s = start("http-bodies", config()).await;
    let key = bearer("k-news");
    let a = request(
        s.addr,
        "PUT",
        "/ingest/news/1.m4s",
        &key,
        b"\0\0\0\x10abcd01234567",
    )
    .await;
    assert_eq!(a.status, 422, "{a:?}");
    assert_eq!(
        a.body,
        "segment body is not CMAF: box 'abcd' at offset 0 is not a top-level fMP4 box (expected one of ftyp, styp, sidx, prft, emsg, moof, moov)\n"
    );
    let a = request(s.addr, "PUT", "/ingest/news/1.ts", &key, &fmp4_segment()).await;
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.body.starts_with("segment body is not MPEG-TS: "), "{a:?}");
    let a = request(s.addr, "PUT", "/ingest/news/index.m3u8", &key, b"<html>").await;
    assert_eq!(a.status, 422, "{a:?}");
    assert_eq!(a.body, "playlist does not start with an '#EXTM3U' line\n");
    let pl = b"#EXTM3U\n#EXTINF:1,\nhttps://elsewhere.example/1.ts\n";
    let a = request(s.addr, "PUT", "/ingest/news/index.m3u8", &key, pl).await;
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.body.contains("is an absolute URL"), "{a:?}");
    let pl = b"#EXTM3U\n#EXTINF:1,\n../sports/1.ts\n";
    let a = request(s.addr, "PUT", "/ingest/news/index.m3u8", &key, pl).await;
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.body.contains("'..'"), "{a:?}");
    nothing_kept(&s, &["1.m4s", "1.ts", "index.m3u8"]).await;
}

#[tokio::test]
async fn a_playlist_naming_a_missing_object_is_refused() {
    let s = start("http-missing", config()).await;
    let key = bearer("k-news");
    assert_eq!(
        request(
            s.addr,
            "PUT",
            "/ingest/news/seg6.m4s",
            &key,
            &fmp4_segment()
        )
        .await
        .status,
        201
    );
    let pl = b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nseg6.m4s\n#EXTINF:1,\nseg7.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg8.m4s\"\n";
    let a = request(s.addr, "PUT", "/ingest/news/index.m3u8", &key, pl).await;
    assert_eq!(a.status, 409, "{a:?}");
    assert_eq!(
        a.body,
        "playlist references 'seg7.m4s', which was never uploaded\n"
    );
    assert!(s.ingest.get("news", "index.m3u8").await.is_none());
    s.ingest.flushed().await;
    assert_eq!(files(&s.dir), ["pushed/news/seg6.m4s"]);

    // Uploaded now: the same playlist is taken (the preload hint may name the future).
    assert_eq!(
        request(
            s.addr,
            "PUT",
            "/ingest/news/seg7.m4s",
            &key,
            &fmp4_segment()
        )
        .await
        .status,
        201
    );
    assert_eq!(
        request(s.addr, "PUT", "/ingest/news/index.m3u8", &key, pl)
            .await
            .status,
        201
    );
    assert_eq!(
        request(s.addr, "PUT", "/ingest/news/index.m3u8", &key, pl)
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn keys_are_required_checked_against_the_channel_and_never_echoed() {
    let s = start("http-auth", config()).await;
    let a = request(s.addr, "PUT", "/ingest/news/1.ts", "", &ts_segment()).await;
    assert_eq!(a.status, 401, "{a:?}");
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    let a = request(
        s.addr,
        "PUT",
        "/ingest/news/1.ts",
        "Authorization: Basic azpr\r\n",
        &ts_segment(),
    )
    .await;
    assert_eq!(a.status, 401, "{a:?}");
    let a = request(
        s.addr,
        "PUT",
        "/ingest/news/1.ts",
        &bearer("k-wrong-secret"),
        &ts_segment(),
    )
    .await;
    assert_eq!(a.status, 403, "{a:?}");
    assert!(!a.body.contains("secret"), "{a:?}");
    let a = request(
        s.addr,
        "PUT",
        "/ingest/news/1.ts",
        &bearer("k-sports"),
        &ts_segment(),
    )
    .await;
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(a.body, "this stream key does not publish to this channel\n");
    assert!(!a.body.contains("k-sports"));
    let a = request(
        s.addr,
        "DELETE",
        "/ingest/news/1.ts",
        &bearer("k-sports"),
        b"",
    )
    .await;
    assert_eq!(a.status, 403, "{a:?}");
    nothing_kept(&s, &["1.ts"]).await;

    // The right key on the other channel works there.
    let a = request(
        s.addr,
        "PUT",
        "/ingest/sports/1.ts",
        &bearer("k-sports"),
        &ts_segment(),
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");
    let mut m = String::new();
    s.ingest.render_metrics(&mut m);
    assert!(m.contains("result=\"refused_auth\"} 5\n"), "{m}");
}

#[tokio::test]
async fn objects_are_replaced_and_deleted() {
    let s = start("http-delete", config()).await;
    let key = bearer("k-news");
    assert_eq!(
        request(s.addr, "PUT", "/ingest/news/v/1.ts", &key, &ts_segment())
            .await
            .status,
        201
    );
    assert_eq!(
        request(s.addr, "PUT", "/ingest/news/v/1.ts", &key, &ts_segment())
            .await
            .status,
        204
    );
    s.ingest.flushed().await;
    assert_eq!(files(&s.dir), ["pushed/news/v/1.ts"]);
    let got = s.ingest.get("news", "v/1.ts").await.unwrap();
    assert_eq!((got.body.len(), got.content_type), (376, "video/mp2t"));

    let a = request(s.addr, "DELETE", "/ingest/news/v/1.ts", &key, b"").await;
    assert_eq!(a.status, 204, "{a:?}");
    assert!(s.ingest.get("news", "v/1.ts").await.is_none());
    s.ingest.flushed().await;
    assert!(files(&s.dir).is_empty(), "{:?}", files(&s.dir));
    // Deleting what is not there is not an error.
    assert_eq!(
        request(s.addr, "DELETE", "/ingest/news/v/1.ts", &key, b"")
            .await
            .status,
        204
    );
}

/// ffmpeg closes an upload right after its last byte, without reading the answer; the
/// upload must be taken all the same.
#[tokio::test]
async fn an_upload_is_taken_when_the_client_closes_without_waiting() {
    let s = start("http-close", config()).await;
    let body = fmp4_segment();
    for n in 0..20 {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let head = format!(
            "PUT /ingest/news/{n}.m4s HTTP/1.1\r\nHost: t\r\n{}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            bearer("k-news"),
            body.len()
        );
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(&body).await.unwrap();
        c.write_all(b"\r\n0\r\n\r\n").await.unwrap();
        drop(c);
    }
    let mut pl = "#EXTM3U\n".to_owned();
    for n in 0..20 {
        pl.push_str(&format!("#EXTINF:1,\n{n}.m4s\n"));
    }
    let a = request(
        s.addr,
        "PUT",
        "/ingest/news/index.m3u8",
        &bearer("k-news"),
        pl.as_bytes(),
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");
    s.ingest.flushed().await;
    assert_eq!(files(&s.dir).len(), 21);
}
