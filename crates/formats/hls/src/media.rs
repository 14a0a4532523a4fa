//! The Media Playlist (RFC 8216bis 4.4.2 - 4.4.5) with the Low-Latency tags, and its Playlist
//! Delta Update (6.2.5.1).
//!
//! The model holds what the origin knows at one instant; rendering is a pure function of it.
//! This module never decides *when* a segment or part exists, never reads the clock and never
//! blocks: the origin does that, and asks [`MediaPlaylist::is_ready_for`] whether a blocking
//! request can be answered.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::format::{check_line, check_required_quoted, decimal_float, program_date_time};
use crate::{HlsError, SkipRequest};

/// Slack for comparisons between durations the origin computed from timestamps: a part of
/// 0.3333333 s against a PART-TARGET of 0.33334 s, segment sums that land at 11.999999999.
const EPSILON: f64 = 1e-6;

/// `EXT-X-PLAYLIST-TYPE` (4.4.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistType {
    /// Segments are only ever appended (a live event kept whole, DVR from the start).
    Event,
    /// The playlist never changes.
    Vod,
}

/// `EXT-X-MAP` (4.4.4.5): the Media Initialization Section (fMP4 `init.mp4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    pub uri: String,
}

/// `EXT-X-SERVER-CONTROL` (4.4.3.8): which Delivery Directives the origin supports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerControl {
    /// `CAN-BLOCK-RELOAD=YES`: the origin holds `_HLS_msn` / `_HLS_part` requests.
    pub can_block_reload: bool,
    /// `PART-HOLD-BACK`, seconds. REQUIRED with parts; MUST be >= 2 x PART-TARGET
    /// (the spec and Apple recommend >= 3 x).
    pub part_hold_back: Option<f64>,
    /// `HOLD-BACK`, seconds; MUST be >= 3 x target duration (absent means exactly that).
    pub hold_back: Option<f64>,
    /// `CAN-SKIP-UNTIL`, the Skip Boundary in seconds: the origin answers `_HLS_skip` with a
    /// delta update. MUST be >= 6 x target duration.
    pub can_skip_until: Option<f64>,
    /// `CAN-SKIP-DATERANGES=YES`. This model has no EXT-X-DATERANGE tags, so there is nothing
    /// to skip; setting it only makes `_HLS_skip=v2` answers carry an empty
    /// `RECENTLY-REMOVED-DATERANGES` and raises the version to 10.
    pub can_skip_dateranges: bool,
}

/// `EXT-X-PART` (4.4.4.9): a Partial Segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub uri: String,
    /// Seconds; MUST be <= PART-TARGET.
    pub duration: f64,
    /// `INDEPENDENT=YES`: the part starts with (or contains) an independent frame.
    pub independent: bool,
    /// `GAP=YES`: the part is not available.
    pub gap: bool,
}

/// A complete Media Segment: `EXTINF` and its URI line, with the tags that apply to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub uri: String,
    /// Seconds (EXTINF). Rounded to the nearest integer it MUST be <= the target duration.
    pub duration: f64,
    /// The EXTINF title; rarely used.
    pub title: Option<String>,
    /// `EXT-X-PROGRAM-DATE-TIME` of the segment's first sample.
    pub program_date_time: Option<SystemTime>,
    /// `EXT-X-DISCONTINUITY` before this segment.
    pub discontinuity: bool,
    /// `EXT-X-GAP`: the segment is not available.
    pub gap: bool,
    /// An `EXT-X-MAP` that applies from this segment on (a new initialization section
    /// after a codec change, written after its EXT-X-DISCONTINUITY).
    pub map: Option<Map>,
    /// The segment's Partial Segments, written before its EXTINF. Keep them only for the
    /// segments near the live edge: the spec says parts SHOULD be removed once they are more
    /// than three target durations from the end ([`MediaPlaylist::drop_old_parts`]).
    pub parts: Vec<Part>,
}

/// `EXT-X-PRELOAD-HINT:TYPE=PART` (4.4.5.3): the next part, requestable before it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreloadHint {
    pub uri: String,
}

/// `EXT-X-RENDITION-REPORT` (4.4.5.4): where another rendition's live edge is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionReport {
    /// The other rendition's Media Playlist, relative to this playlist's URI.
    pub uri: String,
    /// `LAST-MSN`: the MSN of its last segment, or of its last part if it has parts.
    pub last_msn: u64,
    /// `LAST-PART`: the part index of its last part (REQUIRED if it has parts).
    pub last_part: Option<u64>,
}

/// A Media Playlist. The same text serves legacy and low-latency clients: clients ignore
/// tags they do not know (4.1), so old players see a plain live playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaPlaylist {
    /// Declared `EXT-X-VERSION`. The written version is the larger of this and
    /// [`min_version`](Self::min_version), so the output is never invalid; `validate()`
    /// reports a declared version that is too low.
    pub version: u8,
    /// `EXT-X-TARGETDURATION`, whole seconds; see [`target_duration_for`]. MUST NOT change
    /// during the life of the playlist.
    pub target_duration: u32,
    /// `EXT-X-MEDIA-SEQUENCE`: MSN of the first segment in `segments`.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`; written only when not 0 (absent means 0).
    pub discontinuity_sequence: u64,
    pub playlist_type: Option<PlaylistType>,
    /// `EXT-X-INDEPENDENT-SEGMENTS`: every segment starts with an independent frame.
    pub independent_segments: bool,
    pub map: Option<Map>,
    /// `EXT-X-PART-INF:PART-TARGET`, seconds. REQUIRED when there are parts.
    pub part_target: Option<f64>,
    pub server_control: Option<ServerControl>,
    /// Complete segments, oldest first.
    pub segments: Vec<Segment>,
    /// Parts of the segment still being written (MSN `media_sequence + segments.len()`).
    pub trailing_parts: Vec<Part>,
    /// Tags of the segment still being written, which must precede its first part:
    /// EXT-X-DISCONTINUITY, a new EXT-X-MAP, EXT-X-PROGRAM-DATE-TIME.
    pub trailing_discontinuity: bool,
    pub trailing_map: Option<Map>,
    pub trailing_program_date_time: Option<SystemTime>,
    pub preload_hint: Option<PreloadHint>,
    pub rendition_reports: Vec<RenditionReport>,
    /// `EXT-X-ENDLIST`: no more segments will be added.
    pub end_list: bool,
}

/// The target duration for a longest segment of `max_segment_duration` seconds: the smallest
/// value the spec allows (4.4.3.1: every EXTINF, rounded to the nearest integer, MUST be <=
/// it), and at least 1 (clients divide by it). NaN and negative values give 1.
pub fn target_duration_for(max_segment_duration: f64) -> u32 {
    // `as` saturates: NaN -> 0, huge -> u32::MAX.
    (max_segment_duration.round() as u32).max(1)
}

impl MediaPlaylist {
    /// The lowest EXT-X-VERSION this playlist needs (RFC 8216bis section 8):
    /// - 3: decimal-floating-point EXTINF durations (always: durations are written `2.0`);
    /// - 6: EXT-X-MAP in a Media Playlist without EXT-X-I-FRAMES-ONLY;
    /// - 9: EXT-X-SKIP. Declared whenever CAN-SKIP-UNTIL is advertised, in the full playlist
    ///   too, so the full playlist and its delta updates (which the client merges) agree;
    /// - 10: an EXT-X-SKIP that replaces EXT-X-DATERANGE tags, i.e. CAN-SKIP-DATERANGES.
    ///
    /// EXT-X-PART-INF, EXT-X-PART, EXT-X-SERVER-CONTROL, EXT-X-PRELOAD-HINT and
    /// EXT-X-RENDITION-REPORT themselves need no particular version.
    pub fn min_version(&self) -> u8 {
        self.min_version_reason().0
    }

    fn min_version_reason(&self) -> (u8, &'static str) {
        let sc = self.server_control.as_ref();
        if sc.is_some_and(|sc| sc.can_skip_dateranges) {
            (
                10,
                "CAN-SKIP-DATERANGES (EXT-X-SKIP replacing EXT-X-DATERANGE)",
            )
        } else if sc.is_some_and(|sc| sc.can_skip_until.is_some()) {
            (9, "CAN-SKIP-UNTIL (EXT-X-SKIP in delta updates)")
        } else if self.map.is_some() {
            (6, "EXT-X-MAP")
        } else {
            (3, "decimal-floating-point EXTINF")
        }
    }

    /// The full playlist.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(256 + 64 * self.segments.len());
        self.write(&mut out, 0, false);
        out
    }

    /// A Playlist Delta Update for `_HLS_skip=YES`; see [`render_delta_for`](Self::render_delta_for).
    pub fn render_delta(&self) -> String {
        self.render_delta_for(SkipRequest::Yes)
    }

    /// The answer to a request carrying `skip`: a Playlist Delta Update (6.2.5.1) in which the
    /// segments older than the Skip Boundary ([`skippable_segments`](Self::skippable_segments))
    /// are replaced by `EXT-X-SKIP:SKIPPED-SEGMENTS=n`, placed where the first segment would
    /// be (after the header and EXT-X-MAP, which applies to the segments that remain). The
    /// media sequence and discontinuity sequence are unchanged (4.4.5.2).
    ///
    /// Falls back to [`render`](Self::render) when `skip` is `No`, when the playlist does not
    /// advertise CAN-SKIP-UNTIL or has EXT-X-ENDLIST (the server MUST then ignore `_HLS_skip`),
    /// or when nothing is old enough to skip.
    ///
    /// `V2` with CAN-SKIP-DATERANGES adds `RECENTLY-REMOVED-DATERANGES=""` (the model has no
    /// date ranges, so none were removed); `V2` without it is answered like `YES`.
    pub fn render_delta_for(&self, skip: SkipRequest) -> String {
        let n = match skip {
            SkipRequest::No => 0,
            SkipRequest::Yes | SkipRequest::V2 => self.skippable_segments(),
        };
        if n == 0 {
            return self.render();
        }
        let dateranges = skip == SkipRequest::V2
            && self
                .server_control
                .as_ref()
                .is_some_and(|sc| sc.can_skip_dateranges);
        let kept = self.segments.len().saturating_sub(n);
        let mut out = String::with_capacity(256 + 64 * kept);
        self.write(&mut out, n, dateranges);
        out
    }

    /// How many of the oldest segments a delta update replaces with EXT-X-SKIP: those lying
    /// wholly further than CAN-SKIP-UNTIL from the end of the last complete segment, i.e.
    /// whose own end is at least that far from it (6.2.5.1). Measuring from the last complete
    /// segment rather than the newest part skips slightly less, which is always safe for the
    /// client. 0 when the playlist has no CAN-SKIP-UNTIL or has EXT-X-ENDLIST.
    pub fn skippable_segments(&self) -> usize {
        let until = match self
            .server_control
            .as_ref()
            .and_then(|sc| sc.can_skip_until)
        {
            Some(until) if until > 0.0 && !self.end_list => until,
            _ => return 0,
        };
        let mut from_end = 0.0; // distance from the end of segment `i` to the end
        for (i, seg) in self.segments.iter().enumerate().rev() {
            if from_end + EPSILON >= until {
                return i + 1;
            }
            from_end += seg.duration.max(0.0);
        }
        0
    }

    /// MSN of the last complete segment, if there is one.
    pub fn last_complete_msn(&self) -> Option<u64> {
        let n = self.segments.len() as u64;
        (n > 0).then(|| self.media_sequence.saturating_add(n - 1))
    }

    /// The live edge as a Rendition Report states it (4.4.5.4), ready for another
    /// playlist's [`RenditionReport`] and comparable with `_HLS_msn` / `_HLS_part`:
    /// - parts of a segment in progress: (its MSN = last complete + 1, Some(last part index));
    /// - else, the last complete segment has parts: (its MSN, Some(its last part index));
    /// - else (no parts): (last complete MSN, None).
    ///
    /// An empty playlist gives (`media_sequence - 1` saturating, None), which names no
    /// segment: check [`last_complete_msn`](Self::last_complete_msn) if that case matters.
    pub fn last_msn_and_part(&self) -> (u64, Option<u64>) {
        let next = self.next_msn();
        if let Some(last) = self.trailing_parts.len().checked_sub(1) {
            return (next, Some(last as u64));
        }
        let last_msn = next.saturating_sub(1);
        let last_part = self
            .segments
            .last()
            .and_then(|s| s.parts.len().checked_sub(1))
            .map(|p| p as u64);
        (last_msn, last_part)
    }

    /// Whether a blocking request (`_HLS_msn=msn`, `_HLS_part=part`) can be answered now
    /// (6.2.5.2): without `part`, once a complete segment with MSN >= `msn` is listed; with
    /// `part`, once that part of that segment, or anything later, is listed. A part index
    /// past the last part of a complete segment means part 0 of the next segment.
    pub fn is_ready_for(&self, msn: u64, part: Option<u64>) -> bool {
        let next = self.next_msn();
        let Some(part) = part else {
            return !self.segments.is_empty() && msn < next;
        };
        if msn < next {
            let last = next - 1;
            if msn < last {
                return true;
            }
            let listed = self.segments.last().map_or(0, |s| s.parts.len());
            usize::try_from(part).is_ok_and(|p| p < listed) || !self.trailing_parts.is_empty()
        } else if msn == next {
            usize::try_from(part).is_ok_and(|p| p < self.trailing_parts.len())
        } else {
            false
        }
    }

    /// Removes the EXT-X-PART tags of complete segments that end more than three target
    /// durations before the end of the playlist (6.2.2: they SHOULD be removed). Oldest
    /// first, as the spec requires; the parts' resources must stay downloadable for three
    /// more target durations, which is the origin's business.
    pub fn drop_old_parts(&mut self) {
        let limit = 3.0 * f64::from(self.target_duration);
        let mut from_end: f64 = self
            .trailing_parts
            .iter()
            .map(|p| p.duration.max(0.0))
            .sum();
        let mut cut = None;
        for (i, seg) in self.segments.iter().enumerate().rev() {
            if from_end > limit + EPSILON {
                cut = Some(i);
                break;
            }
            from_end += seg.duration.max(0.0);
        }
        if let Some(cut) = cut {
            for seg in self.segments.iter_mut().take(cut + 1) {
                seg.parts.clear();
            }
        }
    }

    /// Checks the rules of the spec that this model can break; the origin calls it in debug
    /// builds and tests. Stops at the first problem.
    pub fn validate(&self) -> Result<(), HlsError> {
        let (required, reason) = self.min_version_reason();
        if self.version < required {
            return Err(HlsError::VersionTooLow {
                declared: self.version,
                required,
                reason,
            });
        }
        let target = f64::from(self.target_duration);
        if let Some(map) = &self.map {
            check_required_quoted("EXT-X-MAP URI", &map.uri)?;
        }
        let mut has_parts = !self.trailing_parts.is_empty();
        for (i, seg) in self.segments.iter().enumerate() {
            let msn = self.media_sequence.saturating_add(i as u64);
            check_duration(|| format!("segment {msn}"), seg.duration)?;
            if seg.duration.round() > target {
                return Err(HlsError::SegmentExceedsTargetDuration {
                    msn,
                    duration: seg.duration,
                    target: self.target_duration,
                });
            }
            check_uri_line("segment URI", &seg.uri)?;
            if let Some(title) = &seg.title {
                check_line("EXTINF title", title)?;
            }
            for (p, part) in seg.parts.iter().enumerate() {
                self.check_part(|| format!("part {p} of segment {msn}"), part)?;
            }
            has_parts |= !seg.parts.is_empty();
        }
        let next = self.next_msn();
        for (p, part) in self.trailing_parts.iter().enumerate() {
            self.check_part(|| format!("part {p} of segment {next}"), part)?;
        }
        if let Some(hint) = &self.preload_hint {
            check_required_quoted("EXT-X-PRELOAD-HINT URI", &hint.uri)?;
            if self.end_list {
                return Err(HlsError::PreloadHintAfterEndList);
            }
        }
        let sc = self.server_control.clone().unwrap_or_default();
        match self.part_target {
            Some(pt) => {
                check_duration(|| "PART-TARGET".to_owned(), pt)?;
                let phb = sc.part_hold_back.ok_or(HlsError::MissingPartHoldBack)?;
                check_duration(|| "PART-HOLD-BACK".to_owned(), phb)?;
                if phb + EPSILON < 2.0 * pt {
                    return Err(HlsError::PartHoldBackTooSmall {
                        part_hold_back: phb,
                        minimum: 2.0 * pt,
                    });
                }
            }
            None if has_parts || self.preload_hint.is_some() => {
                return Err(HlsError::MissingPartInf)
            }
            None => {}
        }
        if let Some(hb) = sc.hold_back {
            check_duration(|| "HOLD-BACK".to_owned(), hb)?;
            if hb + EPSILON < 3.0 * target {
                return Err(HlsError::HoldBackTooSmall {
                    hold_back: hb,
                    minimum: 3.0 * target,
                });
            }
        }
        if let Some(until) = sc.can_skip_until {
            check_duration(|| "CAN-SKIP-UNTIL".to_owned(), until)?;
            if until + EPSILON < 6.0 * target {
                return Err(HlsError::SkipBoundaryTooSmall {
                    can_skip_until: until,
                    minimum: 6.0 * target,
                });
            }
        } else if sc.can_skip_dateranges {
            return Err(HlsError::SkipDaterangesWithoutSkipUntil);
        }
        for report in &self.rendition_reports {
            check_required_quoted("EXT-X-RENDITION-REPORT URI", &report.uri)?;
        }
        Ok(())
    }

    fn check_part(&self, what: impl Fn() -> String, part: &Part) -> Result<(), HlsError> {
        check_duration(&what, part.duration)?;
        check_required_quoted("EXT-X-PART URI", &part.uri)?;
        match self.part_target {
            Some(pt) if part.duration > pt + EPSILON => Err(HlsError::PartExceedsPartTarget {
                what: what(),
                duration: part.duration,
                part_target: pt,
            }),
            _ => Ok(()),
        }
    }

    /// MSN of the segment after the last complete one (the one being written).
    fn next_msn(&self) -> u64 {
        self.media_sequence
            .saturating_add(self.segments.len() as u64)
    }

    /// Writes the playlist, replacing the first `skip` segments with EXT-X-SKIP when > 0.
    fn write(&self, out: &mut String, skip: usize, skip_dateranges: bool) {
        // Writing to a String cannot fail; the results of write! are ignored for that reason.
        out.push_str("#EXTM3U\n");
        let version = self.version.max(self.min_version());
        let _ = writeln!(out, "#EXT-X-VERSION:{version}");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        match self.playlist_type {
            Some(PlaylistType::Event) => out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
            Some(PlaylistType::Vod) => out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
            None => {}
        }
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        if let Some(sc) = &self.server_control {
            write_server_control(out, sc);
        }
        if let Some(pt) = self.part_target {
            let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", decimal_float(pt));
        }
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.discontinuity_sequence != 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        if let Some(map) = &self.map {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", map.uri);
        }
        if skip > 0 {
            let _ = write!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skip}");
            if skip_dateranges {
                out.push_str(",RECENTLY-REMOVED-DATERANGES=\"\"");
            }
            out.push('\n');
            // A MAP carried by a skipped segment still applies to the ones after it; the
            // header's MAP is the first segment's, so repeat the newest skipped one here.
            let skipped = &self.segments[..skip.min(self.segments.len())];
            if let Some(map) = skipped.iter().rev().find_map(|s| s.map.as_ref()) {
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", map.uri);
            }
        }
        for seg in self.segments.iter().skip(skip) {
            write_segment(out, seg);
        }
        if !self.trailing_parts.is_empty() {
            write_segment_tags(
                out,
                self.trailing_discontinuity,
                self.trailing_map.as_ref(),
                self.trailing_program_date_time,
            );
        }
        for part in &self.trailing_parts {
            write_part(out, part);
        }
        if let Some(hint) = &self.preload_hint {
            let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"", hint.uri);
        }
        for report in &self.rendition_reports {
            let _ = write!(
                out,
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={}",
                report.uri, report.last_msn
            );
            if let Some(part) = report.last_part {
                let _ = write!(out, ",LAST-PART={part}");
            }
            out.push('\n');
        }
        if self.end_list {
            out.push_str("#EXT-X-ENDLIST\n");
        }
    }
}

fn write_server_control(out: &mut String, sc: &ServerControl) {
    let mut attrs: Vec<String> = Vec::with_capacity(5);
    if sc.can_block_reload {
        attrs.push("CAN-BLOCK-RELOAD=YES".to_owned());
    }
    if let Some(v) = sc.can_skip_until {
        attrs.push(format!("CAN-SKIP-UNTIL={}", decimal_float(v)));
    }
    if sc.can_skip_dateranges {
        attrs.push("CAN-SKIP-DATERANGES=YES".to_owned());
    }
    if let Some(v) = sc.hold_back {
        attrs.push(format!("HOLD-BACK={}", decimal_float(v)));
    }
    if let Some(v) = sc.part_hold_back {
        attrs.push(format!("PART-HOLD-BACK={}", decimal_float(v)));
    }
    // An empty attribute-list is not valid; an empty ServerControl means "nothing to say".
    if !attrs.is_empty() {
        let _ = writeln!(out, "#EXT-X-SERVER-CONTROL:{}", attrs.join(","));
    }
}

/// DISCONTINUITY, MAP and PROGRAM-DATE-TIME apply to the first part too, so they MUST
/// come before the first EXT-X-PART of the segment (4.4.4.9).
fn write_segment_tags(
    out: &mut String,
    discontinuity: bool,
    map: Option<&Map>,
    pdt: Option<SystemTime>,
) {
    if discontinuity {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if let Some(map) = map {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", map.uri);
    }
    if let Some(pdt) = pdt {
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", program_date_time(pdt));
    }
}

fn write_segment(out: &mut String, seg: &Segment) {
    write_segment_tags(
        out,
        seg.discontinuity,
        seg.map.as_ref(),
        seg.program_date_time,
    );
    for part in &seg.parts {
        write_part(out, part);
    }
    if seg.gap {
        out.push_str("#EXT-X-GAP\n");
    }
    let _ = writeln!(
        out,
        "#EXTINF:{},{}",
        decimal_float(seg.duration),
        seg.title.as_deref().unwrap_or("")
    );
    out.push_str(&seg.uri);
    out.push('\n');
}

fn write_part(out: &mut String, part: &Part) {
    let _ = write!(
        out,
        "#EXT-X-PART:DURATION={},URI=\"{}\"",
        decimal_float(part.duration),
        part.uri
    );
    if part.independent {
        out.push_str(",INDEPENDENT=YES");
    }
    if part.gap {
        out.push_str(",GAP=YES");
    }
    out.push('\n');
}

fn check_duration(what: impl Fn() -> String, value: f64) -> Result<(), HlsError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(HlsError::InvalidDuration {
            what: what(),
            value,
        })
    }
}

/// A URI line must not be empty and must not start with '#' (it would read as a tag).
fn check_uri_line(field: &'static str, uri: &str) -> Result<(), HlsError> {
    check_required_quoted(field, uri)?;
    if uri.starts_with('#') {
        return Err(HlsError::InvalidText {
            field,
            value: uri.to_owned(),
            problem: "starts with '#', so it would be read as a tag",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
