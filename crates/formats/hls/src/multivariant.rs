//! The Multivariant Playlist (RFC 8216bis 4.4.6): renditions (EXT-X-MEDIA) and variant
//! streams (EXT-X-STREAM-INF). A pure model and writer; it never fetches or measures the
//! media it describes (bandwidths and codecs come from the caller).

use std::fmt::Write as _;

use crate::format::{check_line, check_quoted, check_required_quoted};
use crate::HlsError;

/// `EXT-X-MEDIA` `TYPE` (CLOSED-CAPTIONS is not modelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
    Subtitles,
}

impl MediaKind {
    fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "AUDIO",
            MediaKind::Video => "VIDEO",
            MediaKind::Subtitles => "SUBTITLES",
        }
    }
}

/// `EXT-X-MEDIA` (4.4.6.1): one rendition in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    pub kind: MediaKind,
    pub group_id: String,
    pub name: String,
    /// RFC 5646 tag, e.g. `en`.
    pub language: Option<String>,
    pub default: bool,
    /// MUST be true when `default` is.
    pub autoselect: bool,
    /// Audio only, e.g. `"2"` or `"6"`.
    pub channels: Option<String>,
    /// The rendition's Media Playlist. `None`: its media is in the variant's own stream.
    /// REQUIRED for subtitles.
    pub uri: Option<String>,
}

/// `EXT-X-STREAM-INF` (4.4.6.2) and its URI line.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub uri: String,
    /// Peak bits per second (`BANDWIDTH`).
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    /// RFC 6381 list, e.g. `avc1.64001f,mp4a.40.2`. Empty: the attribute is left out
    /// (it SHOULD be present).
    pub codecs: String,
    /// (width, height) in pixels.
    pub resolution: Option<(u32, u32)>,
    /// Frames per second, written with three decimals as the spec asks (`30.000`).
    pub frame_rate: Option<f64>,
    /// `AUDIO`: GROUP-ID of an `AUDIO` rendition group.
    pub audio_group: Option<String>,
}

/// A Multivariant (formerly "master") Playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MultivariantPlaylist {
    /// `EXT-X-INDEPENDENT-SEGMENTS`: applies to every Media Playlist it lists.
    pub independent_segments: bool,
    /// `EXT-X-VERSION`. Nothing this model writes needs more than 1; 0 is written as 1.
    pub version: u8,
    pub media: Vec<Rendition>,
    pub variants: Vec<Variant>,
}

impl MultivariantPlaylist {
    /// The playlist text.
    pub fn render(&self) -> String {
        // Writing to a String cannot fail; the results of write! are ignored for that reason.
        let mut out = String::with_capacity(128 + 160 * (self.media.len() + self.variants.len()));
        out.push_str("#EXTM3U\n");
        let _ = writeln!(out, "#EXT-X-VERSION:{}", self.version.max(1));
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        for r in &self.media {
            let _ = write!(
                out,
                "#EXT-X-MEDIA:TYPE={},GROUP-ID=\"{}\",NAME=\"{}\"",
                r.kind.as_str(),
                r.group_id,
                r.name
            );
            if let Some(lang) = &r.language {
                let _ = write!(out, ",LANGUAGE=\"{lang}\"");
            }
            let _ = write!(
                out,
                ",DEFAULT={},AUTOSELECT={}",
                yes_no(r.default),
                yes_no(r.autoselect)
            );
            if let Some(ch) = &r.channels {
                let _ = write!(out, ",CHANNELS=\"{ch}\"");
            }
            if let Some(uri) = &r.uri {
                let _ = write!(out, ",URI=\"{uri}\"");
            }
            out.push('\n');
        }
        for v in &self.variants {
            let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth);
            if let Some(avg) = v.average_bandwidth {
                let _ = write!(out, ",AVERAGE-BANDWIDTH={avg}");
            }
            if !v.codecs.is_empty() {
                let _ = write!(out, ",CODECS=\"{}\"", v.codecs);
            }
            if let Some((w, h)) = v.resolution {
                let _ = write!(out, ",RESOLUTION={w}x{h}");
            }
            // decimal-floating-point: no NaN, no exponent, no sign; a bad value is left out
            // (and reported by validate()).
            if let Some(fr) = v.frame_rate.filter(|f| f.is_finite() && *f > 0.0) {
                let _ = write!(out, ",FRAME-RATE={fr:.3}");
            }
            if let Some(group) = &v.audio_group {
                let _ = write!(out, ",AUDIO=\"{group}\"");
            }
            out.push('\n');
            out.push_str(&v.uri);
            out.push('\n');
        }
        out
    }

    /// Checks the rules of 4.4.6 this model can break. Stops at the first problem.
    pub fn validate(&self) -> Result<(), HlsError> {
        let bad = |msg: String| Err(HlsError::InvalidMultivariant(msg));
        for (i, r) in self.media.iter().enumerate() {
            check_required_quoted("GROUP-ID", &r.group_id)?;
            check_required_quoted("NAME", &r.name)?;
            if let Some(v) = &r.language {
                check_required_quoted("LANGUAGE", v)?;
            }
            if let Some(v) = &r.channels {
                check_required_quoted("CHANNELS", v)?;
            }
            if let Some(v) = &r.uri {
                check_required_quoted("EXT-X-MEDIA URI", v)?;
            }
            if r.default && !r.autoselect {
                return bad(format!(
                    "rendition {:?} has DEFAULT=YES, so AUTOSELECT MUST be YES",
                    r.name
                ));
            }
            if r.kind == MediaKind::Subtitles && r.uri.is_none() {
                return bad(format!("subtitles rendition {:?} has no URI", r.name));
            }
            for other in &self.media[..i] {
                if other.kind != r.kind || other.group_id != r.group_id {
                    continue;
                }
                if other.name == r.name {
                    return bad(format!(
                        "group {:?} has two renditions named {:?}",
                        r.group_id, r.name
                    ));
                }
                if other.default && r.default {
                    return bad(format!(
                        "group {:?} has more than one DEFAULT=YES rendition",
                        r.group_id
                    ));
                }
            }
        }
        for v in &self.variants {
            check_required_quoted("variant URI", &v.uri)?;
            check_line("variant URI", &v.uri)?;
            check_quoted("CODECS", &v.codecs)?;
            if let Some(fr) = v.frame_rate {
                if !(fr.is_finite() && fr > 0.0) {
                    return bad(format!("variant {:?} has FRAME-RATE {fr}", v.uri));
                }
            }
            if let Some(group) = &v.audio_group {
                check_required_quoted("AUDIO", group)?;
                let found = self
                    .media
                    .iter()
                    .any(|r| r.kind == MediaKind::Audio && &r.group_id == group);
                if !found {
                    return bad(format!(
                        "variant {:?} names AUDIO group {group:?}, which has no EXT-X-MEDIA TYPE=AUDIO",
                        v.uri
                    ));
                }
            }
        }
        Ok(())
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "YES"
    } else {
        "NO"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MultivariantPlaylist {
        MultivariantPlaylist {
            independent_segments: true,
            version: 6,
            media: vec![Rendition {
                kind: MediaKind::Audio,
                group_id: "aac".into(),
                name: "English".into(),
                language: Some("en".into()),
                default: true,
                autoselect: true,
                channels: Some("2".into()),
                uri: Some("audio/index.m3u8".into()),
            }],
            variants: vec![
                Variant {
                    uri: "720p/index.m3u8".into(),
                    bandwidth: 3_200_000,
                    average_bandwidth: Some(2_800_000),
                    codecs: "avc1.64001f,mp4a.40.2".into(),
                    resolution: Some((1280, 720)),
                    frame_rate: Some(30.0),
                    audio_group: Some("aac".into()),
                },
                Variant {
                    uri: "360p/index.m3u8".into(),
                    bandwidth: 900_000,
                    average_bandwidth: None,
                    codecs: "avc1.64001e,mp4a.40.2".into(),
                    resolution: Some((640, 360)),
                    frame_rate: Some(30_000.0 / 1001.0),
                    audio_group: Some("aac".into()),
                },
            ],
        }
    }

    #[test]
    fn golden_multivariant() {
        let text = sample().render();
        assert_eq!(
            text,
            "#EXTM3U\n\
             #EXT-X-VERSION:6\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3200000,AVERAGE-BANDWIDTH=2800000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"aac\"\n\
             720p/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=29.970,AUDIO=\"aac\"\n\
             360p/index.m3u8\n"
        );
        sample().validate().unwrap();
        let s = crate::lint::lint(&text).unwrap();
        assert_eq!((s.variants, s.segments), (2, 0));
    }

    #[test]
    fn m3u8_rs_reads_it_as_a_multivariant_playlist() {
        let text = sample().render();
        let m3u8_rs::Playlist::MasterPlaylist(pl) =
            m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap()
        else {
            panic!("parsed as a media playlist:\n{text}");
        };
        assert!(pl.independent_segments);
        assert_eq!(pl.variants.len(), 2);
        let v = &pl.variants[0];
        assert_eq!(v.uri, "720p/index.m3u8");
        assert_eq!(v.bandwidth, 3_200_000);
        assert_eq!(v.average_bandwidth, Some(2_800_000));
        assert_eq!(v.codecs.as_deref(), Some("avc1.64001f,mp4a.40.2"));
        assert_eq!(v.frame_rate, Some(30.0));
        assert_eq!(v.audio.as_deref(), Some("aac"));
        let res = v.resolution.unwrap();
        assert_eq!((res.width, res.height), (1280, 720));
        assert_eq!(pl.alternatives.len(), 1);
        let a = &pl.alternatives[0];
        assert_eq!(a.media_type, m3u8_rs::AlternativeMediaType::Audio);
        assert_eq!((a.group_id.as_str(), a.name.as_str()), ("aac", "English"));
        assert!(a.default && a.autoselect);
        assert_eq!(a.channels.as_deref(), Some("2"));
        assert_eq!(a.uri.as_deref(), Some("audio/index.m3u8"));
    }

    #[test]
    fn optional_attributes_are_left_out() {
        let pl = MultivariantPlaylist {
            version: 0,
            variants: vec![Variant {
                uri: "v.m3u8".into(),
                bandwidth: 1,
                average_bandwidth: None,
                codecs: String::new(),
                resolution: None,
                frame_rate: Some(f64::NAN),
                audio_group: None,
            }],
            ..Default::default()
        };
        assert_eq!(
            pl.render(),
            "#EXTM3U\n#EXT-X-VERSION:1\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"
        );
        assert!(matches!(
            pl.validate(),
            Err(HlsError::InvalidMultivariant(_))
        ));
    }

    #[test]
    fn validate_catches_broken_groups() {
        let mut pl = sample();
        pl.variants[1].audio_group = Some("ac3".into());
        assert!(pl.validate().unwrap_err().to_string().contains("\"ac3\""));

        let mut pl = sample();
        pl.media[0].autoselect = false;
        assert!(pl.validate().is_err());

        let mut pl = sample();
        let mut second = pl.media[0].clone();
        second.name = "French".into();
        second.language = Some("fr".into());
        pl.media.push(second.clone());
        assert!(pl.validate().unwrap_err().to_string().contains("DEFAULT"));
        second.default = false;
        pl.media[1] = second.clone();
        pl.validate().unwrap();
        second.name = "English".into();
        pl.media[1] = second;
        assert!(pl.validate().is_err());

        let mut pl = sample();
        pl.media.push(Rendition {
            kind: MediaKind::Subtitles,
            group_id: "subs".into(),
            name: "English".into(),
            language: None,
            default: false,
            autoselect: false,
            channels: None,
            uri: None,
        });
        assert!(pl.validate().is_err());

        let mut pl = sample();
        pl.variants[0].codecs = "avc1\"".into();
        assert!(matches!(pl.validate(), Err(HlsError::InvalidText { .. })));
    }
}
