//! Pushed playlists: what they may say, and which objects they name.
//!
//! The objects named are returned resolved against the playlist's own directory, so
//! that the caller can check each one was uploaded before the playlist goes live: a
//! player must never be sent a playlist that names a segment it cannot fetch.

use std::collections::HashSet;

use super::{clip, PushPath, PutError};

/// Tags whose `URI` attribute names an object that must already exist. Not here on
/// purpose: `EXT-X-PRELOAD-HINT` and `EXT-X-RENDITION-REPORT` (LL-HLS: they name what
/// will exist soon, or another rendition's playlist, by design), and `EXT-X-KEY`,
/// `EXT-X-SESSION-KEY`, `EXT-X-SESSION-DATA` (key servers and data that are not pushed
/// here).
const URI_TAGS: [&str; 4] = [
    "EXT-X-MAP",
    "EXT-X-PART",
    "EXT-X-MEDIA",
    "EXT-X-I-FRAME-STREAM-INF",
];

/// Checks a playlist body pushed to `playlist` and returns every object it references
/// (URI lines and the `URI` attributes of [`URI_TAGS`]), resolved relative to the
/// playlist's directory, each once, in order of first mention.
///
/// Refused: more than `max_bytes`, not UTF-8, no `#EXTM3U` first line, and any reference
/// that is an absolute URL or path, has a query, climbs with `..`, or is not a path
/// [`PushPath::parse`] takes once resolved.
pub fn playlist_references(
    body: &[u8],
    playlist: &PushPath,
    max_bytes: usize,
) -> Result<Vec<PushPath>, PutError> {
    if body.len() > max_bytes {
        return Err(PutError::TooLarge {
            what: "a playlist",
            size: Some(body.len() as u64),
            limit: max_bytes,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        PutError::Playlist(format!(
            "is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let mut lines = text.split('\n').map(|l| l.trim());
    if !text.starts_with("#EXTM3U") || lines.next() != Some("#EXTM3U") {
        return Err(PutError::Playlist(
            "does not start with an '#EXTM3U' line".into(),
        ));
    }
    let dir = playlist.dir();
    let mut seen = HashSet::new();
    let mut refs = Vec::new();
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let uri = if let Some(tag) = line.strip_prefix('#') {
            let Some((name, attrs)) = tag.split_once(':') else {
                continue;
            };
            if !URI_TAGS.contains(&name) {
                continue;
            }
            match uri_attribute(attrs) {
                Ok(Some(uri)) => uri,
                Ok(None) => continue,
                Err(why) => {
                    return Err(PutError::Playlist(format!(
                        "line {n}: the attribute list of {name} is malformed: {why}"
                    )))
                }
            }
        } else if line.is_empty() {
            continue;
        } else {
            line
        };
        let resolved = resolve(uri, dir).map_err(|why| {
            PutError::Playlist(format!("line {n}: reference '{}' {why}", clip(uri)))
        })?;
        if seen.insert(resolved.as_str().to_owned()) {
            refs.push(resolved);
        }
    }
    Ok(refs)
}

fn resolve(uri: &str, dir: Option<&str>) -> Result<PushPath, String> {
    let only = "only paths relative to the playlist are taken";
    if uri.starts_with('/') {
        return Err(format!("is an absolute path; {only}"));
    }
    if let Some(colon) = uri.find(':') {
        if uri.find('/').is_none_or(|slash| colon < slash) {
            return Err(format!("is an absolute URL; {only}"));
        }
    }
    if uri.contains('?') {
        return Err("has a query; push ingest stores objects by path alone".into());
    }
    if uri.split('/').any(|s| s == "..") {
        return Err("climbs out of the playlist's directory with '..'".into());
    }
    let joined = match dir {
        Some(d) => format!("{d}/{uri}"),
        None => uri.to_owned(),
    };
    PushPath::parse(&joined).map_err(|e| match dir {
        Some(d) => format!("(as '{}' from directory '{d}'): {e}", clip(&joined)),
        None => format!("is not pushable: {e}"),
    })
}

/// The `URI` value of an attribute list (RFC 8216 section 4.2), `None` when it has
/// none. Walked properly so that `URI="` inside another quoted value is not taken.
fn uri_attribute(list: &str) -> Result<Option<&str>, &'static str> {
    let mut rest = list;
    loop {
        let (name, after) = rest.split_once('=').ok_or("an attribute without '='")?;
        let (value, after) = match after.strip_prefix('"') {
            Some(q) => {
                let end = q.find('"').ok_or("an unterminated quoted string")?;
                (&q[..end], &q[end + 1..])
            }
            None => after.split_at(after.find(',').unwrap_or(after.len())),
        };
        if name.trim() == "URI" {
            return Ok(Some(value));
        }
        let after = after.trim_start();
        if after.is_empty() {
            return Ok(None);
        }
        rest = after
            .strip_prefix(',')
            .ok_or("text after a quoted value where ',' should be")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(playlist: &str, body: &str) -> Vec<String> {
        let p = PushPath::parse(playlist).unwrap();
        playlist_references(body.as_bytes(), &p, 1 << 20)
            .unwrap()
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect()
    }

    fn refused(playlist: &str, body: &str) -> String {
        let p = PushPath::parse(playlist).unwrap();
        playlist_references(body.as_bytes(), &p, 1 << 20)
            .unwrap_err()
            .to_string()
    }

    /// As ffmpeg 5.1's hls muxer writes it with `-hls_segment_type fmp4`.
    const FFMPEG_FMP4: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n\
        #EXT-X-MEDIA-SEQUENCE:1700000003\n#EXT-X-MAP:URI=\"init.mp4\"\n\
        #EXTINF:1.000000,\nindex1700000003.m4s\n#EXTINF:1.000000,\nindex1700000004.m4s\n\
        #EXT-X-ENDLIST\n";

    #[test]
    fn media_playlists() {
        assert_eq!(
            refs("index.m3u8", FFMPEG_FMP4),
            ["init.mp4", "index1700000003.m4s", "index1700000004.m4s"]
        );
        assert_eq!(
            refs("v0/index.m3u8", &FFMPEG_FMP4.replace('\n', "\r\n")),
            [
                "v0/init.mp4",
                "v0/index1700000003.m4s",
                "v0/index1700000004.m4s"
            ]
        );
    }

    #[test]
    fn ll_hls_parts_count_but_hints_and_reports_do_not() {
        let body = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.5\n\
            #EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"800@0\"\n\
            #EXT-X-PART:DURATION=0.5,URI=\"7.0.m4s\",INDEPENDENT=YES\n\
            #EXTINF:2.0,\n7.m4s\n\
            #EXT-X-PART:DURATION=0.5,URI=\"8.0.m4s\"\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"8.1.m4s\"\n\
            #EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=8\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example/k\"\n";
        assert_eq!(
            refs("video/index.m3u8", body),
            [
                "video/init.mp4",
                "video/7.0.m4s",
                "video/7.m4s",
                "video/8.0.m4s"
            ]
        );
    }

    #[test]
    fn multivariant_playlists() {
        let body = "#EXTM3U\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x, URI=no.m3u8\",URI=\"audio/index.m3u8\"\n\
            #EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"cc\",NAME=\"en\",INSTREAM-ID=\"CC1\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"a\"\n\
            video/index.m3u8\n\
            #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"video/iframes.m3u8\"\n\
            \n# a comment\nvideo/index.m3u8\n";
        assert_eq!(
            refs("index.m3u8", body),
            ["audio/index.m3u8", "video/index.m3u8", "video/iframes.m3u8"]
        );
    }

    #[test]
    fn references_that_leave_the_channel_are_refused() {
        let pl = |line: &str| format!("#EXTM3U\n#EXTINF:1,\n{line}\n");
        assert_eq!(
            refused("index.m3u8", &pl("https://cdn.example/seg1.ts")),
            "playlist line 3: reference 'https://cdn.example/seg1.ts' is an absolute URL; only paths relative to the playlist are taken"
        );
        assert!(refused("index.m3u8", &pl("//cdn.example/seg1.ts")).contains("absolute path"));
        assert!(refused("index.m3u8", &pl("/live/news/seg1.ts")).contains("absolute path"));
        assert!(refused("index.m3u8", &pl("data:text/plain,x")).contains("absolute URL"));
        assert!(refused("v/index.m3u8", &pl("../other/seg1.ts")).contains("'..'"));
        assert!(refused("index.m3u8", &pl("a/../../seg1.ts")).contains("'..'"));
        assert!(refused("index.m3u8", &pl("seg1.ts?token=x")).contains("query"));
        assert!(refused("v/index.m3u8", &pl("a/seg1.ts")).contains("from directory 'v'"));
        assert!(refused("index.m3u8", &pl("seg1.txt")).contains("'.txt'"));
        assert!(refused("index.m3u8", &pl("./seg1.ts")).contains("starts with '.'"));
        let map = "#EXTM3U\n#EXT-X-MAP:URI=\"http://x/init.mp4\"\n";
        assert!(refused("index.m3u8", map)
            .starts_with("playlist line 2: reference 'http://x/init.mp4'"));
        let empty = "#EXTM3U\n#EXT-X-MAP:URI=\"\"\n";
        assert!(refused("index.m3u8", empty).contains("is empty"));
    }

    #[test]
    fn bodies_that_are_not_playlists() {
        let p = PushPath::parse("index.m3u8").unwrap();
        assert_eq!(
            playlist_references(b"#EXTM3U\n\xff\n", &p, 100)
                .unwrap_err()
                .to_string(),
            "playlist is not UTF-8 (invalid byte at offset 8)"
        );
        assert!(playlist_references(b"<html>", &p, 100)
            .unwrap_err()
            .to_string()
            .contains("'#EXTM3U'"));
        assert!(playlist_references(b"#EXTM3U-ish\n", &p, 100).is_err());
        assert!(playlist_references(b" #EXTM3U\n", &p, 100).is_err());
        assert!(playlist_references(b"#EXTM3U \r\n", &p, 100).is_ok());
        assert!(playlist_references(b"", &p, 100).is_err());
        assert!(matches!(
            playlist_references(&[b'#'; 101], &p, 100),
            Err(PutError::TooLarge {
                size: Some(101),
                limit: 100,
                ..
            })
        ));
        assert!(playlist_references(b"\xef\xbb\xbf#EXTM3U\n", &p, 100).is_err());
        assert_eq!(playlist_references(b"#EXTM3U", &p, 100), Ok(vec![]));
    }

    #[test]
    fn malformed_attribute_lists() {
        for (attrs, why) in [
            ("URI", "without '='"),
            ("TYPE=AUDIO,URI=\"a.m3u8", "unterminated"),
            ("NAME=\"a\"x,URI=\"a.m3u8\"", "where ',' should be"),
            ("", "without '='"),
        ] {
            let body = format!("#EXTM3U\n#EXT-X-MEDIA:{attrs}\n");
            let e = refused("index.m3u8", &body);
            assert!(
                e.contains("line 2: the attribute list of EXT-X-MEDIA is malformed")
                    && e.contains(why),
                "{e}"
            );
        }
        // Unquoted and spaced values are read leniently.
        assert_eq!(
            refs("index.m3u8", "#EXTM3U\n#EXT-X-MAP: URI=init.mp4\n"),
            ["init.mp4"]
        );
    }
}
