//! The MPEG-DASH media presentation description (MPD, ISO/IEC 23009-1) of a live channel,
//! as a model and a writer: pure, no I/O, no clock (every instant is handed in).
//!
//! What it writes is the subset live CMAF needs, in the shape the DASH-IF interoperability
//! guidelines recommend for live: the ISO BMFF live profile, one `SegmentTemplate` per
//! representation with `$Number$` addressing (so segment numbers match the HLS media
//! sequence numbers of the same CMAF files) and a `SegmentTimeline` with the segments'
//! exact start times and durations (segments follow the source's keyframes, so their
//! durations vary; a timeline never makes a player guess). The template sits in each
//! `Representation` (ISO/IEC 23009-1 5.3.9.2 allows it at any of the three levels), not
//! once per adaptation set: the rungs of a ladder share numbers and times, but a rung
//! that joined late or restarted lists fewer segments, so each needs its own
//! `startNumber` and timeline. A dynamic MPD carries what a
//! live player needs to find the live edge (`availabilityStartTime`, `publishTime`,
//! `minimumUpdatePeriod`, `timeShiftBufferDepth`, `suggestedPresentationDelay`,
//! `UTCTiming`) and, for low latency, `availabilityTimeOffset` and a `ServiceDescription`
//! latency target; a static one, after the event, carries its duration.
//!
//! Written by hand: the MPD is a few elements of XML, and the crates that model all of
//! DASH bring a serialisation framework, a date library and a regex engine with them
//! (docs/architecture.md). The tests parse everything written with an XML parser.

use std::{fmt::Write as _, time::Duration, time::SystemTime};

/// Why an MPD could not be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DashError {
    #[error("{field} {value:?} {problem}")]
    Invalid {
        field: &'static str,
        value: String,
        problem: &'static str,
    },
    #[error("the timeline of {representation:?} goes back in time: a segment starts at {start}, before the previous one ends at {previous_end}")]
    TimelineOverlap {
        representation: String,
        start: u64,
        previous_end: u64,
    },
}

/// Static (an event that is over: every segment is there) or dynamic (live).
#[derive(Debug, Clone, PartialEq)]
pub enum Presentation {
    Dynamic {
        /// The wall-clock instant that media time 0 of the first period maps to.
        availability_start_time: SystemTime,
        /// When this MPD was made (players compare it between updates).
        publish_time: SystemTime,
        /// How often players should fetch the MPD again.
        minimum_update_period: Duration,
        /// How far back from the live edge segments stay available (the DVR window).
        time_shift_buffer_depth: Duration,
        /// How far behind the live edge players should play.
        suggested_presentation_delay: Duration,
    },
    Static {
        /// The whole presentation's duration.
        duration: Duration,
    },
}

/// A whole MPD.
#[derive(Debug, Clone, PartialEq)]
pub struct Mpd {
    pub presentation: Presentation,
    /// The least a player should buffer before it starts.
    pub min_buffer_time: Duration,
    /// Where players read the server's clock (`urn:mpeg:dash:utc:http-iso:2014`: an URL
    /// answering with an ISO 8601 instant), so that a player with a wrong clock still
    /// finds the live edge.
    pub utc_timing: Option<String>,
    /// A low-latency target for players that honour `ServiceDescription` (dash.js).
    pub target_latency: Option<Duration>,
    pub periods: Vec<Period>,
}

/// One period: a stretch of media with one timeline per representation. A new one starts
/// where the media's timeline or its codec configuration changes (a publish session, a
/// discontinuity).
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    pub id: String,
    /// Its start, from the availability start time (dynamic) or the start (static).
    pub start: Duration,
    pub adaptation_sets: Vec<AdaptationSet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Video,
    Audio,
}

impl ContentType {
    fn name(self) -> &'static str {
        match self {
            ContentType::Video => "video",
            ContentType::Audio => "audio",
        }
    }
}

/// Renditions a player may switch between (the rungs of a ladder, or the one audio).
/// Their segments are aligned (segment `n` starts at the same media time in each) and
/// each begins with a keyframe, as `segmentAlignment` and `startWithSAP` say.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptationSet {
    pub id: u32,
    pub content: ContentType,
    /// ISO 639 language, when known.
    pub lang: Option<String>,
    /// In the order players should read them (the ladder from the top).
    pub representations: Vec<Representation>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Representation {
    /// Substituted for `$RepresentationID$` in the template.
    pub id: String,
    /// Peak bits per second.
    pub bandwidth: u64,
    /// RFC 6381 codecs, e.g. `avc1.64001f` or `mp4a.40.2`.
    pub codecs: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Frames per second as a fraction (`30/1`, `30000/1001`).
    pub frame_rate: Option<(u32, u32)>,
    pub audio_sampling_rate: Option<u32>,
    pub audio_channels: Option<u32>,
    /// Its own segments: a rung may list fewer than its neighbours.
    pub template: SegmentTemplate,
}

/// Where the segments are and when: `media` and `initialization` are URL templates
/// (relative to the MPD) with `$RepresentationID$` and, in `media`, `$Number$`.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentTemplate {
    /// Units per second of the timeline (the track's timescale, so that the timeline's
    /// times are the segments' own `tfdt`).
    pub timescale: u32,
    pub initialization: String,
    pub media: String,
    /// The number of the timeline's first segment.
    pub start_number: u64,
    /// The media time (in `timescale` units) at the period's start.
    pub presentation_time_offset: u64,
    /// The segments, in order: start (media time, `timescale` units) and duration.
    pub timeline: Vec<TimelineSegment>,
    /// Low latency: seconds before a segment's end that its first chunks are available
    /// (chunked transfer of the segment being written).
    pub availability_time_offset: Option<f64>,
    /// With `availability_time_offset`: false when segments are sent as they are made.
    pub availability_time_complete: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineSegment {
    pub start: u64,
    pub duration: u64,
}

impl Mpd {
    /// The MPD as XML, or why it cannot be written.
    pub fn render(&self) -> Result<String, DashError> {
        let mut out = String::with_capacity(2048);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str("<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\"");
        match &self.presentation {
            Presentation::Dynamic {
                availability_start_time,
                publish_time,
                minimum_update_period,
                time_shift_buffer_depth,
                suggested_presentation_delay,
            } => {
                attr(&mut out, "type", "dynamic");
                attr(
                    &mut out,
                    "availabilityStartTime",
                    &date_time(*availability_start_time),
                );
                attr(&mut out, "publishTime", &date_time(*publish_time));
                attr(
                    &mut out,
                    "minimumUpdatePeriod",
                    &duration(*minimum_update_period),
                );
                attr(
                    &mut out,
                    "timeShiftBufferDepth",
                    &duration(*time_shift_buffer_depth),
                );
                attr(
                    &mut out,
                    "suggestedPresentationDelay",
                    &duration(*suggested_presentation_delay),
                );
            }
            Presentation::Static { duration: d } => {
                attr(&mut out, "type", "static");
                attr(&mut out, "mediaPresentationDuration", &duration(*d));
            }
        }
        attr(&mut out, "minBufferTime", &duration(self.min_buffer_time));
        out.push_str(">\n");
        if let Some(target) = self.target_latency {
            let ms = target.as_millis().to_string();
            out.push_str("  <ServiceDescription id=\"0\">\n    <Latency");
            attr(&mut out, "target", &ms);
            out.push_str("/>\n  </ServiceDescription>\n");
        }
        for period in &self.periods {
            write_period(&mut out, period)?;
        }
        if let Some(url) = &self.utc_timing {
            check_text("UTCTiming value", url)?;
            out.push_str("  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\"");
            attr(&mut out, "value", url);
            out.push_str("/>\n");
        }
        out.push_str("</MPD>\n");
        Ok(out)
    }
}

fn write_period(out: &mut String, p: &Period) -> Result<(), DashError> {
    check_id("Period id", &p.id)?;
    out.push_str("  <Period");
    attr(out, "id", &p.id);
    attr(out, "start", &duration(p.start));
    out.push_str(">\n");
    for set in &p.adaptation_sets {
        write_adaptation_set(out, set)?;
    }
    out.push_str("  </Period>\n");
    Ok(())
}

fn write_adaptation_set(out: &mut String, a: &AdaptationSet) -> Result<(), DashError> {
    out.push_str("    <AdaptationSet");
    attr(out, "id", &a.id.to_string());
    attr(out, "contentType", a.content.name());
    attr(out, "mimeType", &format!("{}/mp4", a.content.name()));
    attr(out, "segmentAlignment", "true");
    attr(out, "startWithSAP", "1");
    if let Some(lang) = &a.lang {
        check_id("lang", lang)?;
        attr(out, "lang", lang);
    }
    if a.representations.len() > 1 {
        write_maxima(out, &a.representations);
    }
    out.push_str(">\n");
    for r in &a.representations {
        check_id("Representation id", &r.id)?;
        check_text("codecs", &r.codecs)?;
        out.push_str("      <Representation");
        attr(out, "id", &r.id);
        attr(out, "bandwidth", &r.bandwidth.to_string());
        attr(out, "codecs", &r.codecs);
        if let Some(w) = r.width {
            attr(out, "width", &w.to_string());
        }
        if let Some(h) = r.height {
            attr(out, "height", &h.to_string());
        }
        if let Some(rate) = r.frame_rate {
            attr(out, "frameRate", &frame_rate(rate));
        }
        if let Some(rate) = r.audio_sampling_rate {
            attr(out, "audioSamplingRate", &rate.to_string());
        }
        out.push_str(">\n");
        if let Some(ch) = r.audio_channels {
            out.push_str("        <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\"");
            attr(out, "value", &ch.to_string());
            out.push_str("/>\n");
        }
        write_template(out, r)?;
        out.push_str("      </Representation>\n");
    }
    out.push_str("    </AdaptationSet>\n");
    Ok(())
}

/// `maxWidth`, `maxHeight` and `maxFrameRate` of a ladder: what a player may prepare its
/// decoder and buffers for before it reads each representation.
fn write_maxima(out: &mut String, reps: &[Representation]) {
    if let Some(w) = reps.iter().filter_map(|r| r.width).max() {
        attr(out, "maxWidth", &w.to_string());
    }
    if let Some(h) = reps.iter().filter_map(|r| r.height).max() {
        attr(out, "maxHeight", &h.to_string());
    }
    // Compared as fractions (a/b > c/d where a·d > c·b); a zero denominator is no rate.
    let fastest = reps
        .iter()
        .filter_map(|r| r.frame_rate)
        .filter(|&(_, d)| d > 0)
        .max_by(|&(a, b), &(c, d)| {
            (u64::from(a) * u64::from(d)).cmp(&(u64::from(c) * u64::from(b)))
        });
    if let Some(rate) = fastest {
        attr(out, "maxFrameRate", &frame_rate(rate));
    }
}

fn frame_rate((n, d): (u32, u32)) -> String {
    if d == 1 {
        n.to_string()
    } else {
        format!("{n}/{d}")
    }
}

fn write_template(out: &mut String, r: &Representation) -> Result<(), DashError> {
    let t = &r.template;
    if t.timescale == 0 {
        return Err(invalid("timescale", "0", "must be positive"));
    }
    check_text("initialization", &t.initialization)?;
    check_text("media", &t.media)?;
    if !t.media.contains("$Number$") {
        return Err(invalid(
            "media",
            &t.media,
            "has no $Number$ (segments are addressed by number)",
        ));
    }
    out.push_str("        <SegmentTemplate");
    attr(out, "timescale", &t.timescale.to_string());
    attr(out, "initialization", &t.initialization);
    attr(out, "media", &t.media);
    attr(out, "startNumber", &t.start_number.to_string());
    attr(
        out,
        "presentationTimeOffset",
        &t.presentation_time_offset.to_string(),
    );
    if let Some(ato) = t.availability_time_offset {
        if !(ato.is_finite() && ato >= 0.0) {
            return Err(invalid(
                "availabilityTimeOffset",
                &ato.to_string(),
                "must be a non-negative number",
            ));
        }
        attr(out, "availabilityTimeOffset", &seconds(ato));
    }
    if let Some(complete) = t.availability_time_complete {
        attr(
            out,
            "availabilityTimeComplete",
            if complete { "true" } else { "false" },
        );
    }
    out.push_str(">\n          <SegmentTimeline>\n");
    for run in runs(&t.timeline, &r.id)? {
        out.push_str("            <S");
        if let Some(start) = run.start {
            attr(out, "t", &start.to_string());
        }
        attr(out, "d", &run.duration.to_string());
        if run.repeat > 0 {
            attr(out, "r", &run.repeat.to_string());
        }
        out.push_str("/>\n");
    }
    out.push_str("          </SegmentTimeline>\n        </SegmentTemplate>\n");
    Ok(())
}

/// One `S` element: `repeat` more segments of the same duration follow the first, each
/// starting where the previous ends; `start` is written only where the timeline does not
/// simply continue (the first segment, and after a gap).
#[derive(Debug, PartialEq, Eq)]
struct Run {
    start: Option<u64>,
    duration: u64,
    repeat: u64,
}

fn runs(timeline: &[TimelineSegment], owner: &str) -> Result<Vec<Run>, DashError> {
    let mut out: Vec<Run> = Vec::new();
    let mut end: Option<u64> = None;
    for s in timeline {
        if s.duration == 0 {
            return Err(invalid(
                "segment duration",
                "0",
                "must be positive (a segment holds at least one sample)",
            ));
        }
        let continues = match end {
            Some(e) if s.start < e => {
                return Err(DashError::TimelineOverlap {
                    representation: owner.to_owned(),
                    start: s.start,
                    previous_end: e,
                })
            }
            Some(e) => s.start == e,
            None => false,
        };
        match out.last_mut() {
            Some(last) if continues && last.duration == s.duration => last.repeat += 1,
            _ => out.push(Run {
                start: (!continues).then_some(s.start),
                duration: s.duration,
                repeat: 0,
            }),
        }
        end = Some(s.start.saturating_add(s.duration));
    }
    Ok(out)
}

/// Appends ` name="value"` with the value escaped for an XML attribute.
fn attr(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, " {name}=\"");
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// xs:dateTime in UTC with milliseconds.
fn date_time(t: SystemTime) -> String {
    starling_media::wallclock::utc_millis(t)
}

/// xs:duration in seconds with at most three decimals (`PT2S`, `PT0.334S`, `PT7200S`):
/// players read seconds beyond 59 as they are.
fn duration(d: Duration) -> String {
    format!("PT{}S", seconds(d.as_secs_f64()))
}

fn seconds(s: f64) -> String {
    let mut v = format!("{s:.3}");
    while v.ends_with('0') {
        v.pop();
    }
    if v.ends_with('.') {
        v.pop();
    }
    v
}

/// Text that goes into an attribute: XML 1.0 cannot carry most control characters,
/// escaped or not.
fn check_text(field: &'static str, value: &str) -> Result<(), DashError> {
    if value.chars().any(char::is_control) {
        return Err(invalid(field, value, "contains a control character"));
    }
    Ok(())
}

/// Identifiers (period and representation ids, languages) also stand in URL templates
/// and players' logs: letters, digits and `-_.` only, not empty.
fn check_id(field: &'static str, value: &str) -> Result<(), DashError> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(invalid(
            field,
            value,
            "must be letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(())
}

fn invalid(field: &'static str, value: &str, problem: &'static str) -> DashError {
    DashError::Invalid {
        field,
        value: value.to_owned(),
        problem,
    }
}

#[cfg(test)]
mod tests;
