//! What the origin writes into the store beside the media so that a node that restarts,
//! or was killed, finds its channels' last run again (sessions, renditions, init
//! sections and every stored segment with its duration, discontinuity and date), and a
//! player can play it back as VOD. Pure encoding and parsing here; the writer and the
//! restore live in `restore`.
//!
//! Two kinds of small text objects, so that no write grows with the length of a run:
//! - the **run file** `media/CHANNEL/run.txt`: the run's sessions and renditions,
//!   rewritten when a session begins or a rendition (or its init) appears; it names the
//!   channel's *last* run, which a restart reads back;
//! - the **run description** `media/CHANNEL/runs/RUN.txt`: the same text, written with
//!   the run file, but kept per run, so that every run still in the store can be listed
//!   and played as a recording (`recordings`). One directory of them, so that listing a
//!   channel's runs is one listing, not a read per session (a run spans several sessions
//!   when its encoder reconnected within the grace, and only its first names it);
//! - **segment index chunks** `media/CHANNEL/RUN/RENDITION/index-K.txt` (RUN is the run's
//!   first session): segment numbers `K × 64` to `K × 64 + 63` of that run, rewritten as
//!   each of them is stored (a line per segment, at most 64 lines).
//!
//! Text, one record a line, space-separated, `-` for "none": an operator can read it, and
//! the format carries its version on its first line. Objects are read from a store the
//! origin does not own alone (a bucket shared by nodes), so parsing bounds every count
//! and refuses what it does not understand.

use std::time::{Duration, SystemTime};

use starling_media::TrackKind;
use starling_packager::{Defects, RenditionInfo};

use crate::session::{parse_session, session_name};

/// Segments per index chunk.
pub(crate) const CHUNK: u64 = 64;
/// Largest history object read back.
pub(crate) const MAX_OBJECT_BYTES: usize = 1 << 20;
/// Sessions one run file may list (a run of reconnects every few seconds for days).
const MAX_SESSIONS: usize = 100_000;

const RUN_HEADER: &str = "starling-run 1";
/// Index chunks: version 2 adds each segment's media start time (DASH timelines),
/// version 3 the defects among the flags; older chunks are still read (version 2 is
/// version 3 without defects, version 1 has no media start).
const INDEX_HEADER: &str = "starling-segments 3";
const INDEX_HEADER_V2: &str = "starling-segments 2";
const INDEX_HEADER_V1: &str = "starling-segments 1";
/// Flag letters of an index line: discontinuity, new map, not independent, then the
/// defects (short, no IRAP, jump, hole).
const FLAGS: &[u8] = b"dmnskjh";

/// A history object that cannot be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HistoryError {
    #[error("history object larger than {MAX_OBJECT_BYTES} bytes")]
    TooLarge,
    #[error("history object is not UTF-8")]
    NotText,
    #[error("history object starts with {0:?}, not a known format")]
    UnknownFormat(String),
    #[error("history line {line}: {reason}")]
    Line { line: usize, reason: &'static str },
    #[error("history lists more than {MAX_SESSIONS} sessions")]
    TooManySessions,
}

/// One rendition of a run, as the run file lists it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RenditionRecord {
    pub info: RenditionInfo,
    /// The run's first segment number in this rendition (its first index chunk).
    pub first_msn: Option<u64>,
    /// The session each init version was made in (version = position).
    pub inits: Vec<u64>,
}

/// What the run file says.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct RunRecord {
    /// The run's sessions, oldest first; the first names the run.
    pub sessions: Vec<u64>,
    pub renditions: Vec<RenditionRecord>,
}

/// One stored segment, as an index chunk lists it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SegmentRecord {
    pub msn: u64,
    pub session: u64,
    pub duration: f64,
    /// Its discontinuity number (the sequence number its `EXT-X-DISCONTINUITY-SEQUENCE`
    /// would be if it were listed first, its own tag counted).
    pub discontinuity_number: u64,
    pub init: usize,
    /// Its size, for the playlists' BANDWIDTH.
    pub bytes: u64,
    pub program_date_time: Option<SystemTime>,
    pub discontinuity: bool,
    pub new_map: bool,
    /// Its first part does not start independently (cut without a keyframe).
    pub not_independent: bool,
    /// Media time of its first sample (its `tfdt`) in the rendition's timescale; `None`
    /// in chunks written before version 2.
    pub media_start: Option<u64>,
    /// What the packager found wrong with it (none in chunks before version 3).
    pub defects: Defects,
}

pub(crate) fn run_key(channel: &str) -> String {
    format!("media/{channel}/run.txt")
}

/// Key of `run`'s own description (see the module docs).
pub(crate) fn description_key(channel: &str, run: u64) -> String {
    format!("media/{channel}/{RUNS_DIR}/{}.txt", session_name(run))
}

/// Directory of the run descriptions under `media/CHANNEL`: not a session name (those
/// are 16 hex digits), so the sweep's walk over sessions passes it by.
pub(crate) const RUNS_DIR: &str = "runs";

pub(crate) fn chunk_key(channel: &str, run: u64, rendition: &str, chunk: u64) -> String {
    format!(
        "media/{channel}/{}/{rendition}/index-{chunk}.txt",
        session_name(run)
    )
}

/// The `&'static` rendition name the packager uses for `name`, if it can be one (the
/// ladder's rungs are interned, within a bound).
fn rendition_name(name: &str) -> Option<&'static str> {
    starling_packager::rendition_name(name)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

impl RunRecord {
    pub fn encode(&self) -> String {
        let mut out = format!("{RUN_HEADER}\n");
        for s in &self.sessions {
            out += &format!("session {}\n", session_name(*s));
        }
        for r in &self.renditions {
            let i = &r.info;
            let kind = match i.kind {
                TrackKind::Video => "video",
                TrackKind::Audio => "audio",
            };
            // The codec string goes last: RFC 6381 strings have no spaces, but the rest
            // of the line is taken whole all the same.
            out += &format!(
                "rendition {} {kind} {} {} {} {} {} {} {} {}\n",
                i.name,
                i.timescale,
                opt(i.width),
                opt(i.height),
                opt(i.frame_rate.filter(|r| r.is_finite())),
                opt(i.sample_rate),
                opt(i.channels),
                opt(r.first_msn),
                i.codec,
            );
            for (v, s) in r.inits.iter().enumerate() {
                out += &format!("init {} {v} {}\n", i.name, session_name(*s));
            }
        }
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, HistoryError> {
        let mut run = RunRecord::default();
        for (n, line) in body(bytes, RUN_HEADER)? {
            let bad = |reason| HistoryError::Line { line: n, reason };
            let mut f = line.split(' ');
            match f.next() {
                Some("session") => {
                    let s = f.next().and_then(parse_session).ok_or(bad("bad session"))?;
                    if run.sessions.len() >= MAX_SESSIONS {
                        return Err(HistoryError::TooManySessions);
                    }
                    run.sessions.push(s);
                }
                Some("rendition") => {
                    let name = f
                        .next()
                        .and_then(rendition_name)
                        .ok_or(bad("unknown rendition"))?;
                    if run.renditions.iter().any(|r| r.info.name == name) {
                        return Err(bad("rendition listed twice"));
                    }
                    let kind = match f.next() {
                        Some("video") => TrackKind::Video,
                        Some("audio") => TrackKind::Audio,
                        _ => return Err(bad("bad kind")),
                    };
                    let mut field = || f.next().ok_or(bad("missing field"));
                    let timescale = num(field()?).ok_or(bad("bad timescale"))?;
                    let width = opt_num(field()?).ok_or(bad("bad width"))?;
                    let height = opt_num(field()?).ok_or(bad("bad height"))?;
                    let frame_rate = opt_num(field()?).ok_or(bad("bad frame rate"))?;
                    let sample_rate = opt_num(field()?).ok_or(bad("bad sample rate"))?;
                    let channels = opt_num(field()?).ok_or(bad("bad channels"))?;
                    let first_msn = opt_num(field()?).ok_or(bad("bad first segment"))?;
                    let codec: Vec<&str> = f.collect();
                    let codec = codec.join(" ");
                    // Printable ASCII only: it goes into playlists' CODECS and the MPD as
                    // it is, and a carriage return would not survive the round trip.
                    if codec.is_empty()
                        || codec.len() > 256
                        || !codec.bytes().all(|b| (0x20..0x7f).contains(&b))
                    {
                        return Err(bad("bad codec"));
                    }
                    run.renditions.push(RenditionRecord {
                        info: RenditionInfo {
                            name,
                            kind,
                            codec,
                            timescale,
                            width,
                            height,
                            frame_rate: frame_rate.filter(|r: &f64| r.is_finite()),
                            sample_rate,
                            channels,
                        },
                        first_msn,
                        inits: Vec::new(),
                    });
                }
                Some("init") => {
                    let name = f.next().ok_or(bad("missing rendition"))?;
                    let version: usize = f.next().and_then(num).ok_or(bad("bad version"))?;
                    let session = f.next().and_then(parse_session).ok_or(bad("bad session"))?;
                    let r = run
                        .renditions
                        .iter_mut()
                        .find(|r| r.info.name == name)
                        .ok_or(bad("init of an unlisted rendition"))?;
                    // Versions are listed in order, each once.
                    if version != r.inits.len() {
                        return Err(bad("init versions out of order"));
                    }
                    r.inits.push(session);
                }
                _ => return Err(bad("unknown record")),
            }
        }
        Ok(run)
    }
}

impl SegmentRecord {
    pub fn encode_chunk<'a>(segments: impl IntoIterator<Item = &'a SegmentRecord>) -> String {
        let mut out = format!("{INDEX_HEADER}\n");
        for s in segments {
            let pdt = s
                .program_date_time
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .and_then(|d| u64::try_from(d.as_nanos()).ok());
            let mut flags = String::new();
            if s.discontinuity {
                flags.push('d');
            }
            if s.new_map {
                flags.push('m');
            }
            if s.not_independent {
                flags.push('n');
            }
            for (on, c) in [
                (s.defects.short, 's'),
                (s.defects.no_irap, 'k'),
                (s.defects.jump, 'j'),
                (s.defects.hole, 'h'),
            ] {
                if on {
                    flags.push(c);
                }
            }
            if flags.is_empty() {
                flags.push('-');
            }
            out += &format!(
                "{} {} {} {} {} {} {} {flags} {}\n",
                s.msn,
                session_name(s.session),
                (s.duration * 1e6).round() as u64,
                s.discontinuity_number,
                s.init,
                s.bytes,
                opt(pdt),
                opt(s.media_start),
            );
        }
        out
    }

    /// The segments of one chunk, in number order, each number once.
    pub fn parse_chunk(bytes: &[u8]) -> Result<Vec<Self>, HistoryError> {
        let mut out: Vec<SegmentRecord> = Vec::new();
        let (lines, v1) = match body(bytes, INDEX_HEADER) {
            Ok(lines) => (lines, false),
            Err(HistoryError::UnknownFormat(_)) => match body(bytes, INDEX_HEADER_V2) {
                Ok(lines) => (lines, false),
                Err(HistoryError::UnknownFormat(_)) => (body(bytes, INDEX_HEADER_V1)?, true),
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        for (n, line) in lines {
            let bad = |reason| HistoryError::Line { line: n, reason };
            if out.len() as u64 >= CHUNK {
                return Err(bad("more segments than a chunk holds"));
            }
            let f: Vec<&str> = line.split(' ').collect();
            let (fields, media_start) = match (v1, f.len()) {
                (true, 8) => (&f[..], "-"),
                (false, 9) => (&f[..8], f[8]),
                (true, _) => return Err(bad("expected 8 fields")),
                (false, _) => return Err(bad("expected 9 fields")),
            };
            let [msn, session, duration_us, dnum, init, bytes, pdt, flags] = fields[..] else {
                return Err(bad("expected 8 fields"));
            };
            let msn: u64 = num(msn).ok_or(bad("bad segment number"))?;
            if out.last().is_some_and(|p| p.msn >= msn) {
                return Err(bad("segment numbers out of order"));
            }
            let duration_us: u64 = num(duration_us).ok_or(bad("bad duration"))?;
            // A segment longer than an hour is not one this origin cut.
            if duration_us > 3_600_000_000 {
                return Err(bad("bad duration"));
            }
            let pdt: Option<u64> = opt_num(pdt).ok_or(bad("bad date"))?;
            if flags != "-" && !flags.bytes().all(|b| FLAGS.contains(&b)) {
                return Err(bad("bad flags"));
            }
            out.push(SegmentRecord {
                msn,
                session: parse_session(session).ok_or(bad("bad session"))?,
                duration: duration_us as f64 / 1e6,
                discontinuity_number: num(dnum).ok_or(bad("bad discontinuity number"))?,
                init: num(init).ok_or(bad("bad init version"))?,
                bytes: num(bytes).ok_or(bad("bad size"))?,
                program_date_time: pdt
                    .and_then(|ns| SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(ns))),
                discontinuity: flags.contains('d'),
                new_map: flags.contains('m'),
                not_independent: flags.contains('n'),
                media_start: opt_num(media_start).ok_or(bad("bad media start"))?,
                defects: Defects {
                    short: flags.contains('s'),
                    no_irap: flags.contains('k'),
                    jump: flags.contains('j'),
                    hole: flags.contains('h'),
                },
            });
        }
        Ok(out)
    }
}

/// The numbered lines after the header, empty lines skipped.
fn body<'a>(
    bytes: &'a [u8],
    header: &str,
) -> Result<impl Iterator<Item = (usize, &'a str)>, HistoryError> {
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(HistoryError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| HistoryError::NotText)?;
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    if first != header {
        return Err(HistoryError::UnknownFormat(
            first.chars().take(40).collect(),
        ));
    }
    Ok(lines
        .enumerate()
        .map(|(i, l)| (i + 2, l))
        .filter(|(_, l)| !l.is_empty()))
}

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    // Digits only (no sign, no spaces), so one value has one spelling.
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    s.parse().ok()
}

fn opt_num<T: std::str::FromStr>(s: &str) -> Option<Option<T>> {
    if s == "-" {
        Some(None)
    } else {
        num(s).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_packager::{AUDIO_RENDITION, VIDEO_RENDITION};

    fn video() -> RenditionInfo {
        RenditionInfo {
            name: VIDEO_RENDITION,
            kind: TrackKind::Video,
            codec: "avc1.64001f".into(),
            timescale: 90_000,
            width: Some(1280),
            height: Some(720),
            frame_rate: Some(29.97),
            sample_rate: None,
            channels: None,
        }
    }

    #[test]
    fn run_file_round_trips() {
        let run = RunRecord {
            sessions: vec![0x1234_5678_9abc_def0, 0x1234_5678_9abc_def1],
            renditions: vec![
                RenditionRecord {
                    info: video(),
                    first_msn: Some(12),
                    inits: vec![0x1234_5678_9abc_def0, 0x1234_5678_9abc_def1],
                },
                RenditionRecord {
                    info: RenditionInfo {
                        name: AUDIO_RENDITION,
                        kind: TrackKind::Audio,
                        codec: "mp4a.40.2".into(),
                        timescale: 48_000,
                        width: None,
                        height: None,
                        frame_rate: None,
                        sample_rate: Some(48_000),
                        channels: Some(2),
                    },
                    first_msn: None,
                    inits: vec![0x1234_5678_9abc_def0],
                },
            ],
        };
        let text = run.encode();
        assert_eq!(RunRecord::parse(text.as_bytes()).unwrap(), run, "{text}");
    }

    #[test]
    fn index_chunk_round_trips() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_764_000_000_123_456_789);
        let segs = vec![
            SegmentRecord {
                msn: 64,
                session: 7,
                duration: 2.002,
                discontinuity_number: 3,
                init: 0,
                bytes: 512_000,
                program_date_time: Some(at),
                discontinuity: true,
                new_map: false,
                not_independent: false,
                media_start: Some(180_000 * 64),
                defects: Defects::default(),
            },
            SegmentRecord {
                msn: 66,
                session: 8,
                duration: 1.5,
                discontinuity_number: 4,
                init: 1,
                bytes: 0,
                program_date_time: None,
                discontinuity: true,
                new_map: true,
                not_independent: true,
                media_start: None,
                defects: Defects {
                    short: true,
                    no_irap: false,
                    jump: true,
                    hole: true,
                },
            },
        ];
        let text = SegmentRecord::encode_chunk(&segs);
        assert!(text.contains(" dmnsjh "), "{text}");
        assert_eq!(SegmentRecord::parse_chunk(text.as_bytes()).unwrap(), segs);
        // A version 2 chunk (no defect letters) still reads.
        let v2 = text
            .replace("starling-segments 3", "starling-segments 2")
            .replace(" dmnsjh ", " dmn ");
        let read = SegmentRecord::parse_chunk(v2.as_bytes()).unwrap();
        assert!(read.iter().all(|s| s.defects.is_clean()), "{read:?}");
    }

    #[test]
    fn a_codec_with_a_control_character_is_refused() {
        // Found by the origin_history fuzz target: a lone CR at the end of the last line
        // stayed in the codec string, and came back without it after a round trip.
        let text = "starling-run 1\nsession 0000000000000002\nrendition audio audio 48000 - - 5 48000 2 0 mp4a\r";
        assert_eq!(
            RunRecord::parse(text.as_bytes()),
            Err(HistoryError::Line {
                line: 3,
                reason: "bad codec"
            })
        );
        crate::fuzzing::history_round_trip(text.as_bytes());
    }

    #[test]
    fn version_1_chunks_are_read_without_media_start() {
        let v1 = "starling-segments 1\n64 0000000000000001 2002000 3 0 512000 - d\n";
        let segs = SegmentRecord::parse_chunk(v1.as_bytes()).unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!((segs[0].msn, segs[0].media_start), (64, None));
        // A version-1 line in a version-2 chunk, and the other way round, are refused.
        let mixed = "starling-segments 2\n64 0000000000000001 2002000 3 0 512000 - d\n";
        assert!(SegmentRecord::parse_chunk(mixed.as_bytes()).is_err());
        let mixed = "starling-segments 1\n64 0000000000000001 2002000 3 0 512000 - d 5\n";
        assert!(SegmentRecord::parse_chunk(mixed.as_bytes()).is_err());
    }

    #[test]
    fn bad_objects_are_refused_with_the_line() {
        let cases: [(&[u8], &str); 8] = [
            (b"", "not a known format"),
            (b"starling-run 2\n", "not a known format"),
            (b"\xff\xfe", "not UTF-8"),
            (b"starling-run 1\nsession 12\n", "line 2: bad session"),
            (b"starling-run 1\nrendition Other video 1 - - - - - - c\n", "unknown rendition"),
            (b"starling-run 1\ninit source 0 0000000000000001\n", "unlisted rendition"),
            (
                b"starling-segments 1\n2 0000000000000001 1 0 0 9 - -\n1 0000000000000001 1 0 0 9 - -\n",
                "line 3: segment numbers out of order",
            ),
            (b"starling-segments 1\n1 0000000000000001 -5 0 0 9 - -\n", "bad duration"),
        ];
        for (bytes, want) in cases {
            let err = if bytes.starts_with(b"starling-segments") {
                SegmentRecord::parse_chunk(bytes).unwrap_err()
            } else {
                RunRecord::parse(bytes).unwrap_err()
            };
            assert!(err.to_string().contains(want), "{err} (wanted {want})");
        }
        let huge = vec![b'a'; MAX_OBJECT_BYTES + 1];
        assert_eq!(RunRecord::parse(&huge), Err(HistoryError::TooLarge));
        let mut many = String::from("starling-segments 1\n");
        for i in 0..=CHUNK {
            many += &format!("{i} 0000000000000001 1 0 0 9 - -\n");
        }
        assert!(SegmentRecord::parse_chunk(many.as_bytes()).is_err());
    }
}
