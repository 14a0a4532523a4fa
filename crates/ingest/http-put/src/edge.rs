//! The live edge of pushed media playlists: which object a playlist will name next, so
//! that a request for it can be held until it is uploaded, and a request for a number
//! past it is answered at once (it cannot exist yet) without a store read.
//!
//! Sans-IO. Packagers number their segments: ffmpeg writes `index1765000123.m4s`
//! (`-hls_start_number_source epoch`), `seg_000123.ts` (`-hls_segment_filename
//! seg_%06d.ts`). A name is read as `PREFIX DIGITS . EXT`; its *series* is the directory,
//! the prefix and the extension, and the digits are its number. A media playlist's newest
//! segment is its last URI line; the next one is the same series, the number one higher,
//! written with the same zero-padding.

use std::time::Duration;

use crate::check::{Kind, PushPath};

/// The series of a numbered name: `(directory, prefix, extension)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Series {
    dir: Option<String>,
    prefix: String,
    ext: String,
}

/// A numbered media name split into its series and number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Numbered<'a> {
    pub(crate) series: Series,
    /// The digits as written (zero-padding included).
    pub(crate) digits: &'a str,
    /// `None` when the digits are past `u64`.
    pub(crate) number: Option<u64>,
}

/// `PREFIX DIGITS . EXT` of a media path; `None` for playlists and names whose stem does
/// not end in a digit (`init.mp4`).
pub(crate) fn numbered(path: &PushPath) -> Option<Numbered<'_>> {
    if path.kind() == Kind::Playlist {
        return None;
    }
    let s = path.as_str();
    let (dir, file) = match s.rsplit_once('/') {
        Some((d, f)) => (Some(d), f),
        None => (None, s),
    };
    let (stem, ext) = file.rsplit_once('.')?;
    let prefix = stem.trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = &stem[prefix.len()..];
    if digits.is_empty() {
        return None;
    }
    Some(Numbered {
        series: Series {
            dir: dir.map(str::to_owned),
            prefix: prefix.to_owned(),
            ext: ext.to_owned(),
        },
        digits,
        number: digits.parse().ok(),
    })
}

/// Where a media playlist's series stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Edge {
    /// The newest number: the playlist's last segment, or a newer one of the series
    /// uploaded since ([`Edge::uploaded`]).
    pub(crate) newest: u64,
    /// Zero-padding width of the series' names (0: not padded).
    pub(crate) width: usize,
    /// How long a request for the next name is held: 1.5 × EXT-X-TARGETDURATION, at most
    /// the configured cap; zero for a playlist that has ended (`EXT-X-ENDLIST`).
    pub(crate) hold: Duration,
    /// The playlist that set it.
    pub(crate) playlist: String,
}

/// What a request for a name of a known series is, against its edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ahead {
    /// The next name: hold the request for this long at most.
    Next(Duration),
    /// A number past the next one (or the next one of an ended playlist): it cannot
    /// exist yet.
    Beyond,
    /// Anything else (an older number, another spelling): look it up as usual.
    Behind,
}

fn width_of(digits: &str) -> usize {
    if digits.starts_with('0') {
        digits.len()
    } else {
        0
    }
}

impl Edge {
    /// How a request for `name` (of this edge's series) stands.
    pub(crate) fn ahead(&self, name: &Numbered<'_>) -> Ahead {
        let Some(n) = name.number else {
            return Ahead::Beyond;
        };
        let next = self.newest.saturating_add(1);
        if n > next {
            return Ahead::Beyond;
        }
        if n < next || name.digits != format!("{next:0w$}", w = self.width) {
            return Ahead::Behind;
        }
        if self.hold.is_zero() {
            Ahead::Beyond
        } else {
            Ahead::Next(self.hold)
        }
    }

    /// A media object of the series was uploaded: it is the newest when its number is
    /// past the playlist's (the packager uploads a segment before the playlist naming
    /// it). Playlists alone move the edge back (a restarted packager).
    pub(crate) fn uploaded(&mut self, name: &Numbered<'_>) {
        if let Some(n) = name.number {
            if n > self.newest {
                self.newest = n;
            }
        }
    }
}

/// The edge a media playlist sets: the series of its last URI line, and the hold from
/// its target duration (`cap` when it has none). `None` for a multivariant playlist, an
/// empty one, or a last segment whose name carries no number. `body` is a playlist
/// `playlist_references` took.
pub(crate) fn of_playlist(
    body: &[u8],
    playlist: &PushPath,
    cap: Duration,
) -> Option<(Series, Edge)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut last = None;
    let mut ended = false;
    for line in text.lines().rev().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            ended |= line == "#EXT-X-ENDLIST";
            continue;
        }
        last = Some(line);
        break;
    }
    let uri = last?;
    let joined = match playlist.dir() {
        Some(d) => format!("{d}/{uri}"),
        None => uri.to_owned(),
    };
    let path = PushPath::parse(&joined).ok()?;
    let name = numbered(&path)?;
    let newest = name.number?;
    // The header comes before the first segment.
    let target = text
        .lines()
        .map(str::trim)
        .take_while(|l| l.is_empty() || (l.starts_with('#') && !l.starts_with("#EXTINF")))
        .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0);
    let hold = if ended {
        Duration::ZERO
    } else {
        match target {
            Some(t) => Duration::from_secs_f64((t * 1.5).min(cap.as_secs_f64())),
            None => cap,
        }
    };
    let width = width_of(name.digits);
    Some((
        name.series,
        Edge {
            newest,
            width,
            hold,
            playlist: playlist.as_str().to_owned(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(6);

    fn p(s: &str) -> PushPath {
        PushPath::parse(s).unwrap()
    }

    fn edge(playlist: &str, body: &str) -> Option<(Series, Edge)> {
        of_playlist(body.as_bytes(), &p(playlist), CAP)
    }

    /// `name`'s standing against the edge `body` sets, `None` when `name` is of another
    /// series.
    fn ahead(playlist: &str, body: &str, name: &str) -> Option<Ahead> {
        let (series, e) = edge(playlist, body).unwrap();
        let path = p(name);
        let n = numbered(&path)?;
        (n.series == series).then(|| e.ahead(&n))
    }

    const FFMPEG: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-MEDIA-SEQUENCE:1765000122\n#EXT-X-MAP:URI=\"init.mp4\"\n\
        #EXTINF:2.000000,\nindex1765000122.m4s\n#EXTINF:2.000000,\nindex1765000123.m4s\n";

    #[test]
    fn names_split_into_series_and_number() {
        let path = p("v0/seg_000123.ts");
        let n = numbered(&path).unwrap();
        assert_eq!((n.digits, n.number), ("000123", Some(123)));
        assert_eq!(
            n.series,
            Series {
                dir: Some("v0".into()),
                prefix: "seg_".into(),
                ext: "ts".into()
            }
        );
        assert_eq!(numbered(&p("7.m4s")).unwrap().number, Some(7));
        for none in ["init.mp4", "index.m3u8", "7.0x.m4s"] {
            assert!(numbered(&p(none)).is_none(), "{none}");
        }
        let huge = p("a99999999999999999999999.ts");
        assert_eq!(numbered(&huge).unwrap().number, None);
    }

    #[test]
    fn the_next_name_is_held_and_past_it_cannot_exist() {
        let (_, e) = edge("index.m3u8", FFMPEG).unwrap();
        assert_eq!(
            (e.newest, e.width, e.hold),
            (1765000123, 0, Duration::from_secs(3))
        );
        let at = |name| ahead("index.m3u8", FFMPEG, name);
        assert_eq!(
            at("index1765000124.m4s"),
            Some(Ahead::Next(Duration::from_secs(3)))
        );
        assert_eq!(at("index1765000125.m4s"), Some(Ahead::Beyond));
        assert_eq!(at("index99999999999999999999999.m4s"), Some(Ahead::Beyond));
        assert_eq!(at("index1765000123.m4s"), Some(Ahead::Behind));
        assert_eq!(at("index1765000100.m4s"), Some(Ahead::Behind));
        assert_eq!(
            at("index01765000124.m4s"),
            Some(Ahead::Behind),
            "another spelling"
        );
        // Other series: another stem, extension or directory.
        assert_eq!(at("other1765000124.m4s"), None);
        assert_eq!(at("index1765000124.ts"), None);
        assert_eq!(at("v0/index1765000124.m4s"), None);
        assert_eq!(at("init.mp4"), None);
    }

    #[test]
    fn padding_directories_and_the_hold() {
        let body = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nseg_000099.ts\n";
        let (series, e) = edge("v1/index.m3u8", body).unwrap();
        assert_eq!(series.dir.as_deref(), Some("v1"));
        assert_eq!((e.newest, e.width, e.hold), (99, 6, CAP), "capped");
        let at = |name| ahead("v1/index.m3u8", body, name);
        assert_eq!(at("v1/seg_000100.ts"), Some(Ahead::Next(CAP)));
        assert_eq!(at("v1/seg_100.ts"), Some(Ahead::Behind));
        // No target duration: the cap.
        let (_, e) = edge("index.m3u8", "#EXTM3U\n#EXTINF:1,\n5.ts\n").unwrap();
        assert_eq!(e.hold, CAP);
        // An ended playlist holds nothing: what follows it is not coming.
        let ended = format!("{FFMPEG}#EXT-X-ENDLIST\n");
        assert_eq!(
            ahead("index.m3u8", &ended, "index1765000124.m4s"),
            Some(Ahead::Beyond)
        );
    }

    #[test]
    fn playlists_without_a_numbered_last_segment_set_no_edge() {
        assert!(edge(
            "index.m3u8",
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv0/index.m3u8\n"
        )
        .is_none());
        assert!(edge("index.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:1\n").is_none());
        assert!(edge("index.m3u8", "#EXTM3U\n#EXTINF:1,\nlast.ts\n").is_none());
    }

    #[test]
    fn uploads_move_the_edge_forward_only() {
        let (_, mut e) = edge("index.m3u8", FFMPEG).unwrap();
        let next = p("index1765000124.m4s");
        e.uploaded(&numbered(&next).unwrap());
        assert_eq!(e.newest, 1765000124);
        let old = p("index5.m4s");
        e.uploaded(&numbered(&old).unwrap());
        assert_eq!(e.newest, 1765000124);
        let n = p("index1765000125.m4s");
        assert_eq!(
            e.ahead(&numbered(&n).unwrap()),
            Ahead::Next(Duration::from_secs(3))
        );
    }
}
