//! The names and playlists a remote origin gets, from what this origin serves.
//!
//! The remote takes `PUT /ingest/CHANNEL/PATH` with PATH `file` or `dir/file` only
//! (`starling_http_put::PushPath`), and serves it back at `/live/CHANNEL/PATH`. This
//! origin's media objects are one level deeper (`RENDITION/SESSION/N.m4s`), so the
//! session becomes part of the file name: `RENDITION/SESSION-N.m4s`. That keeps names
//! unique per publish (a cache never holds two bodies under one name) and keeps the
//! number last, where the remote reads a segment's place in its series.
//!
//! A pushed media playlist lists whole segments only (the parts are not pushed), and
//! only segments that were delivered, as the newest run of consecutive ones: the remote
//! refuses a playlist naming an object it does not have, and a player must not be sent
//! into a hole. Pure functions; no I/O.

use starling_hls as hls;

/// A rendition-relative URI of this origin (`SESSION/N.m4s`) as a file name of the
/// rendition's directory on the remote (`SESSION-N.m4s`).
pub fn remote_name(uri: &str) -> String {
    uri.replace('/', "-")
}

/// The remote path (below `/ingest/CHANNEL/`) of `uri` in `rendition`'s playlist.
pub fn remote_path(rendition: &str, uri: &str) -> String {
    format!("{rendition}/{}", remote_name(uri))
}

/// A media playlist as pushed: its text and the remote paths of the segments it lists.
#[derive(Debug, Clone, PartialEq)]
pub struct PushedPlaylist {
    pub text: String,
    /// Remote paths of the listed segments, oldest first.
    pub segments: Vec<String>,
}

/// `pl` (this origin's playlist of `rendition`) as the remote gets it: URIs renamed,
/// LL-HLS tags and blocking-reload directives removed (the remote serves pushed
/// playlists as plain HLS), and only the newest `window` segments that were all
/// `delivered` (by remote path), each with its init section delivered. `None` when not
/// one segment qualifies.
pub fn media_playlist(
    pl: &hls::MediaPlaylist,
    rendition: &str,
    delivered: impl Fn(&str) -> bool,
    window: usize,
) -> Option<PushedPlaylist> {
    let path = |uri: &str| remote_path(rendition, uri);
    // The init section each segment is decoded with: the newest EXT-X-MAP at or before it.
    let mut map = pl.map.as_ref();
    let maps: Vec<Option<&hls::Map>> = pl
        .segments
        .iter()
        .map(|s| {
            if s.map.is_some() {
                map = s.map.as_ref();
            }
            map
        })
        .collect();
    let ok = |i: usize| {
        let s = &pl.segments[i];
        !s.gap && delivered(&path(&s.uri)) && maps[i].is_none_or(|m| delivered(&path(&m.uri)))
    };
    let end = pl.segments.len();
    let mut start = end;
    while start > 0 && end - start < window && ok(start - 1) {
        start -= 1;
    }
    if start == end {
        return None;
    }
    let mut out = hls::MediaPlaylist {
        // Written as the least the content needs.
        version: 0,
        target_duration: pl.target_duration,
        media_sequence: pl.media_sequence + start as u64,
        // Seams of the segments left out, and of the first one listed (its tag is not
        // written: nothing listed precedes it).
        discontinuity_sequence: pl.discontinuity_sequence
            + pl.segments
                .get(1..=start)
                .map_or(0, |s| s.iter().filter(|s| s.discontinuity).count()) as u64,
        playlist_type: pl.playlist_type,
        independent_segments: pl.independent_segments,
        map: maps[start].map(|m| hls::Map {
            uri: remote_name(&m.uri),
        }),
        end_list: pl.end_list,
        ..Default::default()
    };
    let mut listed = Vec::with_capacity(end - start);
    for (i, s) in pl.segments.iter().enumerate().skip(start) {
        listed.push(path(&s.uri));
        out.segments.push(hls::Segment {
            uri: remote_name(&s.uri),
            duration: s.duration,
            title: None,
            program_date_time: s.program_date_time,
            // The first listed segment's seam is counted in the sequence above.
            discontinuity: s.discontinuity && i > start,
            gap: false,
            map: s.map.as_ref().filter(|_| i > start).map(|m| hls::Map {
                uri: remote_name(&m.uri),
            }),
            parts: Vec::new(),
        });
    }
    Some(PushedPlaylist {
        text: out.render(),
        segments: listed,
    })
}

/// The multivariant playlist as pushed, and the remote paths of the media playlists it
/// names (each must be on the remote before it). Its URIs (`RENDITION/index.m3u8`)
/// resolve the same under the remote's `/live/CHANNEL/`.
pub fn multivariant(pl: &hls::MultivariantPlaylist) -> (String, Vec<String>) {
    let named = pl
        .media
        .iter()
        .filter_map(|m| m.uri.clone())
        .chain(pl.variants.iter().map(|v| v.uri.clone()))
        .collect();
    (pl.render(), named)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(uri: &str, discontinuity: bool, map: Option<&str>) -> hls::Segment {
        hls::Segment {
            uri: uri.into(),
            duration: 2.0,
            title: None,
            program_date_time: None,
            discontinuity,
            gap: false,
            map: map.map(|m| hls::Map { uri: m.into() }),
            parts: vec![hls::Part {
                uri: format!("{uri}.0"),
                duration: 0.3,
                independent: true,
                gap: false,
            }],
        }
    }

    fn origin_playlist() -> hls::MediaPlaylist {
        hls::MediaPlaylist {
            version: 9,
            target_duration: 2,
            media_sequence: 10,
            discontinuity_sequence: 3,
            map: Some(hls::Map {
                uri: "aaaa/init-0.mp4".into(),
            }),
            part_target: Some(0.334),
            server_control: Some(hls::ServerControl {
                can_block_reload: true,
                ..Default::default()
            }),
            segments: vec![
                seg("aaaa/10.m4s", false, None),
                seg("aaaa/11.m4s", false, None),
                seg("bbbb/12.m4s", true, Some("bbbb/init-1.mp4")),
                seg("bbbb/13.m4s", false, None),
            ],
            preload_hint: Some(hls::PreloadHint {
                uri: "bbbb/14.0.m4s".into(),
            }),
            rendition_reports: vec![hls::RenditionReport {
                uri: "../audio/index.m3u8".into(),
                last_msn: 13,
                last_part: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn names_are_one_level_deep_and_keep_the_number_last() {
        assert_eq!(remote_path("source", "0123/42.m4s"), "source/0123-42.m4s");
        assert_eq!(remote_name("0123/init-0.mp4"), "0123-init-0.mp4");
    }

    #[test]
    fn only_delivered_segments_are_listed_without_parts_or_hints() {
        let pl = origin_playlist();
        let all = |_: &str| true;
        let p = media_playlist(&pl, "source", all, 10).unwrap();
        assert_eq!(
            p.segments,
            [
                "source/aaaa-10.m4s",
                "source/aaaa-11.m4s",
                "source/bbbb-12.m4s",
                "source/bbbb-13.m4s"
            ]
        );
        let t = &p.text;
        assert!(t.contains("#EXT-X-MAP:URI=\"aaaa-init-0.mp4\""), "{t}");
        assert!(t.contains("#EXT-X-MAP:URI=\"bbbb-init-1.mp4\""), "{t}");
        assert!(t.contains("#EXT-X-MEDIA-SEQUENCE:10"), "{t}");
        for absent in [
            "EXT-X-PART",
            "PRELOAD-HINT",
            "RENDITION-REPORT",
            "SERVER-CONTROL",
        ] {
            assert!(!t.contains(absent), "{absent} in {t}");
        }
        // A hole (segment 11 not delivered): the playlist starts after it, and the seam
        // of segment 12 moves into the discontinuity sequence with its map.
        let p = media_playlist(&pl, "source", |p: &str| !p.ends_with("-11.m4s"), 10).unwrap();
        assert_eq!(p.segments, ["source/bbbb-12.m4s", "source/bbbb-13.m4s"]);
        assert!(p.text.contains("#EXT-X-MEDIA-SEQUENCE:12"), "{}", p.text);
        assert!(
            p.text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:4"),
            "{}",
            p.text
        );
        assert!(!p.text.contains("#EXT-X-DISCONTINUITY\n"), "{}", p.text);
        assert!(p.text.contains("#EXT-X-MAP:URI=\"bbbb-init-1.mp4\""));
        // The window keeps the newest.
        let p = media_playlist(&pl, "source", all, 1).unwrap();
        assert_eq!(p.segments, ["source/bbbb-13.m4s"]);
        assert!(p.text.contains("#EXT-X-MEDIA-SEQUENCE:13"));
        // An init section not delivered: its segments cannot be listed.
        let p = media_playlist(&pl, "source", |p: &str| !p.contains("init-1"), 10);
        assert!(p.is_none());
        // Nothing delivered: nothing to push.
        assert!(media_playlist(&pl, "source", |_: &str| false, 10).is_none());
    }
}
