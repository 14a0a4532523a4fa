//! What a pushed request may name and carry, decided from bytes alone.
//!
//! Sans-IO: no tokio, no clock, no store. Everything here takes the request's path or
//! body and says yes, or says exactly what is wrong, so that the fuzz target
//! (`fuzz/fuzz_targets/put_check.rs`) can drive it with arbitrary input and a packager's
//! operator can act on the answer.
//!
//! Nothing here may ever let a name through that could leave `pushed/CHANNEL/` once it
//! is turned into an object key: every accepted path is one or two plain segments of
//! `[A-Za-z0-9_.-]`, none starting with `.`.

mod media;
mod playlist;

pub use media::{check_fmp4, check_ts, Fmp4Kind};
pub use playlist::playlist_references;

/// Longest channel name, as everywhere else in Starling's public URLs.
pub const MAX_CHANNEL_LEN: usize = 64;
/// Longest segment of a pushed path (`dir` or `file`).
pub const MAX_SEGMENT_LEN: usize = 128;
/// Longest pushed path (`dir/file`).
pub const MAX_PATH_LEN: usize = 256;

/// Why a push was refused. The display text is the whole answer the packager gets; it
/// names the cause and, where there is one, the offending name or offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PutError {
    /// The channel part of the URL. Carries no input: a stream key put where the channel
    /// goes must not end up in a log line that prints this error.
    #[error("channel name {0}")]
    Channel(&'static str),
    /// The part of the URL after the channel.
    #[error("path {0}")]
    Path(String),
    #[error("segment body is not CMAF: {0}")]
    NotCmaf(String),
    #[error("segment body is not MPEG-TS: {0}")]
    NotTs(String),
    /// The playlist itself (encoding, header, a reference that is not allowed).
    #[error("playlist {0}")]
    Playlist(String),
    /// A playlist names an object that is in neither the memory window nor the store.
    #[error("playlist references '{0}', which was never uploaded")]
    MissingReference(String),
    /// `size` is `None` when the body was cut off while reading (no Content-Length).
    #[error("body{} is over the limit of {limit} bytes for {what}", size.map(|s| format!(" of {s} bytes")).unwrap_or_default())]
    TooLarge {
        what: &'static str,
        size: Option<u64>,
        limit: usize,
    },
}

/// What a pushed object is, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `.m3u8`
    Playlist,
    /// `.mp4`, `.m4s`, `.cmfv`, `.cmfa`, `.m4v`, `.m4a`: an init section or a
    /// segment/part in fragmented MP4 (CMAF).
    Fmp4,
    /// `.ts`
    MpegTs,
}

/// Where pushed objects live in the store: `pushed/CHANNEL/PATH`.
pub(crate) const PUSHED_PREFIX: &str = "pushed";

/// A checked path below `/ingest/CHANNEL/`: `file` or `dir/file`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PushPath {
    path: String,
    kind: Kind,
    audio: bool,
}

impl PushPath {
    /// Checks the path after `/ingest/CHANNEL/`. The refusal names the first thing wrong.
    pub fn parse(path: &str) -> Result<PushPath, PutError> {
        if path.is_empty() {
            return Err(PutError::Path(
                "is empty: name a file, e.g. 'index.m3u8'".into(),
            ));
        }
        if path.len() > MAX_PATH_LEN {
            return Err(PutError::Path(format!(
                "is {} bytes long; the limit is {MAX_PATH_LEN}",
                path.len()
            )));
        }
        if path.starts_with('/') {
            return Err(PutError::Path(format!(
                "'{}' is absolute; name a file relative to the channel",
                clip(path)
            )));
        }
        let segments: Vec<&str> = path.split('/').collect();
        for seg in &segments {
            check_segment(seg)?;
        }
        if segments.len() > 2 {
            return Err(PutError::Path(format!(
                "'{}' has {} segments; at most two ('dir/file') are allowed",
                clip(path),
                segments.len()
            )));
        }
        let file = segments[segments.len() - 1];
        let ext = match file.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => ext,
            _ => {
                return Err(PutError::Path(format!(
                    "'{}' has no extension; use .m3u8, .ts, .mp4, .m4s, .cmfv, .cmfa, .m4v or .m4a",
                    clip(file)
                )))
            }
        };
        let (kind, audio) = match ext {
            "m3u8" => (Kind::Playlist, false),
            "ts" => (Kind::MpegTs, false),
            "mp4" | "m4s" | "cmfv" | "m4v" => (Kind::Fmp4, false),
            "cmfa" | "m4a" => (Kind::Fmp4, true),
            other => {
                return Err(PutError::Path(format!(
                    "extension '.{}' is not a pushable kind; use .m3u8, .ts, .mp4, .m4s, .cmfv, .cmfa, .m4v or .m4a",
                    clip(other)
                )))
            }
        };
        Ok(PushPath {
            path: path.to_owned(),
            kind,
            audio,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.path
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The directory part (`dir` of `dir/file`), if any.
    pub fn dir(&self) -> Option<&str> {
        self.path.rsplit_once('/').map(|(d, _)| d)
    }

    /// The `Content-Type` the object is served with.
    pub fn content_type(&self) -> &'static str {
        match (self.kind, self.audio) {
            (Kind::Playlist, _) => "application/vnd.apple.mpegurl",
            (Kind::MpegTs, _) => "video/mp2t",
            (Kind::Fmp4, true) => "audio/mp4",
            (Kind::Fmp4, false) => "video/mp4",
        }
    }

    /// The object store key of this path in `channel` (a name [`check_channel`]
    /// accepted): `pushed/CHANNEL/PATH`.
    pub fn store_key(&self, channel: &str) -> String {
        format!("{PUSHED_PREFIX}/{channel}/{}", self.path)
    }
}

impl std::fmt::Display for PushPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)
    }
}

fn check_segment(seg: &str) -> Result<(), PutError> {
    if seg.is_empty() {
        return Err(PutError::Path(
            "has an empty segment ('//' or a trailing '/')".into(),
        ));
    }
    if seg.len() > MAX_SEGMENT_LEN {
        return Err(PutError::Path(format!(
            "segment of {} bytes; the limit is {MAX_SEGMENT_LEN}",
            seg.len()
        )));
    }
    if seg.starts_with('.') {
        // Covers `.`, `..` and hidden files alike.
        return Err(PutError::Path(format!(
            "segment '{}' starts with '.'",
            clip(seg)
        )));
    }
    if let Some(c) = seg
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(PutError::Path(format!(
            "segment '{}' contains {}; only A-Z a-z 0-9 _ . - are allowed",
            clip(seg),
            describe_char(c)
        )));
    }
    Ok(())
}

/// Checks a channel name: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn check_channel(channel: &str) -> Result<(), PutError> {
    if channel.is_empty() {
        return Err(PutError::Channel("is empty"));
    }
    if channel.len() > MAX_CHANNEL_LEN {
        return Err(PutError::Channel("is longer than 64 bytes"));
    }
    if !channel
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(PutError::Channel(
            "may only contain A-Z a-z 0-9 _ - (1 to 64 of them)",
        ));
    }
    Ok(())
}

/// Checks a body against what its path says it is. Playlists are checked by
/// [`playlist_references`], which needs the playlist's own path.
pub fn check_media(kind: Kind, body: &[u8]) -> Result<(), PutError> {
    match kind {
        Kind::Fmp4 => check_fmp4(body).map(|_| ()),
        Kind::MpegTs => check_ts(body),
        Kind::Playlist => Ok(()),
    }
}

/// At most 80 characters of `s`, for error texts: enough to recognise, bounded in size.
pub(crate) fn clip(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(77).collect();
        out.push_str("...");
        out
    }
}

fn describe_char(c: char) -> String {
    if c.is_ascii_graphic() {
        format!("'{c}'")
    } else {
        format!("{:?} (U+{:04X})", c, c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(p: &str) -> String {
        match PushPath::parse(p) {
            Err(e) => e.to_string(),
            Ok(ok) => panic!("{p:?} was accepted as {ok:?}"),
        }
    }

    #[test]
    fn paths_and_kinds() {
        let p = PushPath::parse("index.m3u8").unwrap();
        assert_eq!(
            (p.kind(), p.dir(), p.content_type()),
            (Kind::Playlist, None, "application/vnd.apple.mpegurl")
        );
        let p = PushPath::parse("v0/seg_1700000000.m4s").unwrap();
        assert_eq!((p.kind(), p.dir()), (Kind::Fmp4, Some("v0")));
        assert_eq!(p.content_type(), "video/mp4");
        assert_eq!(p.store_key("news"), "pushed/news/v0/seg_1700000000.m4s");
        assert_eq!(
            PushPath::parse("a.cmfa").unwrap().content_type(),
            "audio/mp4"
        );
        assert_eq!(
            PushPath::parse("a.m4a").unwrap().content_type(),
            "audio/mp4"
        );
        assert_eq!(
            PushPath::parse("a.cmfv").unwrap().content_type(),
            "video/mp4"
        );
        assert_eq!(PushPath::parse("init.mp4").unwrap().kind(), Kind::Fmp4);
        assert_eq!(
            PushPath::parse("x-1.ts").unwrap().content_type(),
            "video/mp2t"
        );
        assert!(PushPath::parse(&format!("{}.ts", "a".repeat(125))).is_ok());
    }

    #[test]
    fn paths_that_could_escape_or_confuse_are_refused() {
        assert!(refused("").contains("empty"));
        assert!(refused("../x.ts").contains("starts with '.'"));
        assert!(refused("a/../x.ts").contains("segment '..' starts with '.'"));
        assert!(refused("./x.ts").contains("starts with '.'"));
        assert!(refused(".hidden.ts").contains("starts with '.'"));
        assert!(refused("/etc/x.ts").contains("absolute"));
        assert!(refused("a//x.ts").contains("empty segment"));
        assert!(refused("a/").contains("empty segment"));
        assert!(refused("a/b/c.ts").contains("3 segments"));
        assert!(refused("%2e%2e/x.ts").contains("'%'"));
        assert!(refused("a\\b.ts").contains("'\\'"));
        assert!(refused("seg 1.ts").contains("' '"));
        assert!(refused("seg\u{0}.ts").contains("U+0000"));
        assert!(refused("sé.ts").contains("U+00E9"));
        assert!(refused("x.ts?v=1").contains("'?'"));
        assert!(refused(&format!("{}.ts", "a".repeat(126))).contains("limit is 128"));
        let long = format!("{}/{}.ts", "a".repeat(128), "b".repeat(126));
        assert!(refused(&long).contains("limit is 256"));
    }

    #[test]
    fn kinds_come_from_known_extensions_only() {
        assert!(refused("seg").contains("no extension"));
        assert!(refused("x.").contains("extension '.'"));
        assert!(refused("dir.m4s/").contains("empty segment"));
        assert!(refused("a.html").contains("'.html'"));
        assert!(refused("a.M3U8").contains("'.M3U8'"));
        assert!(refused("mp4").contains("no extension"));
    }

    #[test]
    fn channels() {
        assert!(check_channel("news_1-a").is_ok());
        assert!(check_channel(&"c".repeat(64)).is_ok());
        for bad in ["", "a.b", "a/b", "..", "a b", "é"] {
            assert!(check_channel(bad).is_err(), "{bad:?}");
        }
        assert!(check_channel(&"c".repeat(65)).is_err());
        // The text never echoes the name (it may be a stream key in the wrong place).
        let e = check_channel("sk_live.secret").unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn too_large_texts() {
        let e = PutError::TooLarge {
            what: "a playlist",
            size: Some(2_000_000),
            limit: 1 << 20,
        };
        assert_eq!(
            e.to_string(),
            "body of 2000000 bytes is over the limit of 1048576 bytes for a playlist"
        );
        let e = PutError::TooLarge {
            what: "a media object",
            size: None,
            limit: 10,
        };
        assert_eq!(
            e.to_string(),
            "body is over the limit of 10 bytes for a media object"
        );
    }
}
