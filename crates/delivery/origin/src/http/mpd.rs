//! The DASH MPD of a channel, `/live/{channel}/manifest.mpd`: the same CMAF objects the
//! HLS playlists list (same URLs, same segment numbers), described for DASH players;
//! never a second copy of the media.
//!
//! - Dynamic while the run is live or in its reconnect grace, static (every segment,
//!   `mediaPresentationDuration`) once it ended.
//! - One period per stretch that shares a session, an init section and an unbroken
//!   timeline in the renditions a channel always has (`source` and `audio`): a
//!   republish, a codec change, a timestamp jump or a missing segment number starts a
//!   new one. Periods are placed by anchors fixed when they begin (see
//!   `crate::periods`), so they do not move as the window slides.
//! - The video renditions (the source and the transcoded rungs) are one adaptation set,
//!   the ladder, highest bandwidth first; each audio rendition is its own. A rung's own
//!   break (it joined late, or restarted) never starts a period: it lists its segments
//!   from that break on (see `last_run`).
//! - Each representation has its own `SegmentTemplate` with `$Number$` (the HLS media
//!   sequence numbers) and a `SegmentTimeline` of the segments' own `tfdt` and durations.
//! - Low latency (channels with LL-HLS on): the segment being written is listed too, with
//!   its nominal end on the segment grid, `availabilityTimeOffset` says it can be fetched
//!   once its first part exists, and the origin sends it with chunked transfer as its
//!   parts are cut (see `objects::segment`). A `ServiceDescription` gives the latency
//!   target.
//! - `UTCTiming` points at `/live/time` on the node that served the MPD, so a player with
//!   a wrong clock still finds the live edge.

use std::{cmp::Reverse, collections::BTreeSet, time::SystemTime};

use starling_dash as dash;
use starling_packager::{RenditionInfo, VERTICAL_RENDITION, VIDEO_RENDITION};

use super::*;
use crate::periods::{Anchor, Periods};

const MPD_TYPE: &str = "application/dash+xml";

/// `GET /live/{channel}/manifest.mpd`.
pub(super) async fn manifest(
    State(served): State<Served>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    admitted_manifest(&served, &name, query.as_deref(), &headers, false).await
}

/// `GET /live/{channel}/vertical/manifest.mpd`: the vertical rendition and the audio
/// (as `vertical/index.m3u8` offers them).
pub(super) async fn vertical_manifest(
    State(served): State<Served>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    admitted_manifest(&served, &name, query.as_deref(), &headers, true).await
}

async fn admitted_manifest(
    served: &Served,
    name: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    vertical: bool,
) -> Response {
    let admitted = match admit_channel(served, name, query, headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let r = manifest_response(&served.origin, name, headers, admitted.token(), vertical).await;
    admitted.finish(r)
}

async fn manifest_response(
    origin: &Arc<Origin>,
    name: &str,
    headers: &HeaderMap,
    token: Option<&str>,
    vertical: bool,
) -> Response {
    origin
        .metrics
        .playlist_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ch = match channel(origin, name).await {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let utc_timing = utc_timing_url(headers);
    // The rendered MPD of the channel's current state is shared by every viewer (public
    // channels; a token makes each viewer's URLs their own): only the versions of the
    // renditions are read under the lock then, not the whole window.
    let (snapshot, key) = {
        let st = lock(&ch.inner);
        let key = MpdKey {
            versions: st.renditions.iter().map(|r| r.feed.version()).collect(),
            ended: st.ended,
            utc_timing: utc_timing.clone(),
        };
        // (One shared MPD per channel: the ladder's. The vertical one is rendered per
        // request; few ask for it.)
        let shared = token.is_none() && !vertical;
        if shared {
            if let Some((k, body)) = lock(&ch.mpd).as_ref() {
                if *k == key {
                    return mpd_response(body.clone(), key.ended);
                }
            }
        }
        let snapshot = if vertical {
            match Snapshot::vertical(&st) {
                Ok(s) => s,
                Err(why) => return error(StatusCode::NOT_FOUND, why, NOT_YET),
            }
        } else {
            match Snapshot::capture(&st) {
                Some(s) => s,
                None => return error(StatusCode::NOT_FOUND, "channel is not live yet", NOT_YET),
            }
        };
        (snapshot, key)
    };
    let mpd = build(
        &snapshot,
        &origin.config,
        SystemTime::now(),
        utc_timing,
        token,
    );
    match mpd.render() {
        Ok(text) => {
            let body = Bytes::from(text);
            if token.is_none() && !vertical {
                *lock(&ch.mpd) = Some((key.clone(), body.clone()));
            }
            mpd_response(body, key.ended)
        }
        Err(e) => {
            // The snapshot comes from the packager's own output: a bug, said loudly.
            tracing::error!(channel = %name, error = %e, "origin: could not write the MPD");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("could not write the MPD: {e}"),
                "no-store",
            )
        }
    }
}

/// What a rendered MPD was made from: the renditions' versions (bumped by every change),
/// whether the run ended, and the clock URL (it names the host the client used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MpdKey {
    versions: Vec<u64>,
    ended: bool,
    utc_timing: Option<String>,
}

fn mpd_response(body: Bytes, ended: bool) -> Response {
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MPD_TYPE));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if ended {
            "public, max-age=5"
        } else {
            "public, max-age=1"
        }),
    );
    r
}

/// `GET /live/time`: the node's clock as an ISO 8601 instant (the MPD's `UTCTiming`,
/// scheme `urn:mpeg:dash:utc:http-iso:2014`).
pub(super) async fn time() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        starling_media::wallclock::utc_millis(SystemTime::now()),
    )
        .into_response()
}

/// The absolute URL of `/live/time` as the client reached this node; `None` without a
/// usable `Host`.
fn utc_timing_url(headers: &HeaderMap) -> Option<String> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let base = starling_sync::base_url(header(header::HOST.as_str()), header("x-forwarded-proto"))?;
    Some(format!("{base}/live/time"))
}

/// What an MPD lists, copied out of the channel's state under its lock: numbers only.
#[derive(Debug)]
pub(crate) struct Snapshot {
    ended: bool,
    low_latency: bool,
    dvr_window: Duration,
    periods: Periods,
    renditions: Vec<SnapRendition>,
    /// What the renditions' URLs start with: `../` from `vertical/manifest.mpd`.
    base: &'static str,
}

#[derive(Debug)]
struct SnapRendition {
    info: RenditionInfo,
    /// The session of each init section, by version.
    inits: Vec<u64>,
    bandwidth: u64,
    segments: Vec<SnapSegment>,
}

#[derive(Debug, Clone, Copy)]
struct SnapSegment {
    session: u64,
    msn: u64,
    init: usize,
    /// A discontinuity or a new init section starts here.
    boundary: bool,
    program_date_time: Option<SystemTime>,
    media_start: Option<u64>,
    /// Seconds: the segment's, or (in progress) its parts' so far.
    duration: f64,
    complete: bool,
}

impl Snapshot {
    /// `None` until some rendition has a complete segment (a player given an MPD without
    /// segments gives up, as it does on an empty HLS playlist).
    /// The ladder's: every rendition but the vertical one.
    pub(crate) fn capture(st: &ChannelInner) -> Option<Self> {
        Self::of(st, |r| r.info.name != VERTICAL_RENDITION, "")
    }

    /// The vertical rendition and the audio; a portrait source's own ladder (as
    /// `vertical/index.m3u8` offers them, [`super::vertical_multivariant_of`]).
    pub(crate) fn vertical(st: &ChannelInner) -> Result<Self, &'static str> {
        let has_vertical = st
            .rendition(VERTICAL_RENDITION)
            .is_some_and(|r| r.segments.iter().any(|s| s.complete && !s.gap));
        if has_vertical {
            let s = Self::of(
                st,
                |r| r.info.name == VERTICAL_RENDITION || r.kind() == TrackKind::Audio,
                "../",
            );
            return s.ok_or("channel is not live yet");
        }
        // The same test as the playlist's: a portrait source is its own vertical.
        super::vertical_multivariant_of(st)?;
        Self::of(st, |r| r.info.name != VERTICAL_RENDITION, "../").ok_or("channel is not live yet")
    }

    fn of(
        st: &ChannelInner,
        shows: impl Fn(&Rendition) -> bool,
        base: &'static str,
    ) -> Option<Self> {
        if !st
            .renditions
            .iter()
            .filter(|r| shows(r))
            .any(|r| r.segments.iter().any(|s| s.complete && !s.gap))
        {
            return None;
        }
        let renditions = st
            .renditions
            .iter()
            .filter(|r| shows(r))
            .map(|r| SnapRendition {
                info: r.info.clone(),
                inits: r.inits.iter().map(|(s, _)| *s).collect(),
                // Peak of whole segments with headroom, as the multivariant playlist says.
                bandwidth: (bandwidth(r).0 * 1.1).max(64_000.0) as u64,
                segments: r
                    .segments
                    .iter()
                    .filter(|s| !s.gap && (s.complete || !s.parts.is_empty()))
                    .map(|s| SnapSegment {
                        session: s.session,
                        msn: s.msn,
                        init: s.init,
                        boundary: s.discontinuity || s.new_map,
                        program_date_time: s.program_date_time,
                        media_start: s.media_start,
                        duration: if s.complete {
                            s.duration
                        } else {
                            s.parts.iter().map(|p| p.duration).sum()
                        },
                        complete: s.complete,
                    })
                    .collect(),
            })
            .collect();
        Some(Self {
            ended: st.ended,
            low_latency: st.settings.low_latency,
            dvr_window: st.settings.dvr_window,
            periods: st.periods.clone(),
            renditions,
            base,
        })
    }
}

/// One period as planned: its segment numbers, where it starts, its media time offset.
struct Plan {
    id: String,
    first: u64,
    /// Exclusive; `u64::MAX` for the last.
    end: u64,
    anchor: Option<Anchor>,
}

pub(crate) fn build(
    s: &Snapshot,
    config: &crate::OriginConfig,
    now: SystemTime,
    utc_timing: Option<String>,
    token: Option<&str>,
) -> dash::Mpd {
    let low_latency = s.low_latency && !s.ended;
    let plans = plan_periods(s);
    let d = config.segment_duration;
    let part = config.part_duration;

    let mut periods = Vec::with_capacity(plans.len());
    // The previous period's start and media extent (seconds), for the next one's start.
    let mut previous: Option<(f64, f64)> = None;
    let mut first_wall: Option<SystemTime> = None;
    // Adaptation set ids stay put whatever a period holds: the ladder is 0, the audio
    // renditions 1, 2, … in the channel's order.
    let mut audio_ids = Vec::with_capacity(s.renditions.len());
    let mut next_audio = 1u32;
    for r in &s.renditions {
        audio_ids.push(next_audio);
        if r.info.kind == TrackKind::Audio {
            next_audio += 1;
        }
    }
    for plan in &plans {
        let mut ladder: Vec<dash::Representation> = Vec::new();
        let mut audio: Vec<dash::AdaptationSet> = Vec::new();
        let mut extent = 0.0f64;
        for (r, &audio_id) in s.renditions.iter().zip(&audio_ids) {
            let ts = r.info.timescale.max(1);
            let in_period: Vec<&SnapSegment> = r
                .segments
                .iter()
                .filter(|x| x.msn >= plan.first && x.msn < plan.end)
                .filter(|x| x.complete || (low_latency && is_last(r, x)))
                .collect();
            let in_period = last_run(&in_period);
            let Some(first) = in_period.first() else {
                continue;
            };
            let offset = plan
                .anchor
                .map_or_else(|| first.media_start.unwrap_or(0), |a| a.offset(ts));
            let timeline = timeline(in_period, offset, ts, d, part);
            let Some(last) = timeline.last() else {
                continue;
            };
            let end = last.start + last.duration;
            extent = extent.max(end.saturating_sub(offset) as f64 / f64::from(ts));
            let session = first.session;
            let init_session = r.inits.get(first.init).copied().unwrap_or(session);
            let name = r.info.name;
            let url = |u: String| match token {
                Some(t) => gate::with_token(&u, t),
                None => u,
            };
            let representation = dash::Representation {
                id: name.to_owned(),
                bandwidth: r.bandwidth,
                codecs: r.info.codec.clone(),
                width: r.info.width,
                height: r.info.height,
                frame_rate: r.info.frame_rate.and_then(frame_rate),
                audio_sampling_rate: r.info.sample_rate,
                audio_channels: r.info.channels.map(u32::from),
                template: dash::SegmentTemplate {
                    timescale: ts,
                    initialization: url(format!(
                        "{}{name}/{}/init-{}.mp4",
                        s.base,
                        session_name(init_session),
                        first.init
                    )),
                    media: url(format!(
                        "{}{name}/{}/$Number$.m4s",
                        s.base,
                        session_name(session)
                    )),
                    start_number: first.msn,
                    presentation_time_offset: offset,
                    timeline,
                    availability_time_offset: low_latency
                        .then(|| d.saturating_sub(part).as_secs_f64()),
                    availability_time_complete: low_latency.then_some(false),
                },
            };
            match r.info.kind {
                TrackKind::Video => ladder.push(representation),
                TrackKind::Audio => audio.push(dash::AdaptationSet {
                    id: audio_id,
                    content: dash::ContentType::Audio,
                    lang: None,
                    representations: vec![representation],
                }),
            }
        }
        // The ladder from the top (players read the first as the default); the source
        // before a rung of the same bandwidth.
        ladder.sort_by_key(|r| (Reverse(r.bandwidth), r.id != VIDEO_RENDITION));
        let mut sets = Vec::with_capacity(1 + audio.len());
        if !ladder.is_empty() {
            sets.push(dash::AdaptationSet {
                id: 0,
                content: dash::ContentType::Video,
                lang: None,
                representations: ladder,
            });
        }
        sets.extend(audio);
        if sets.is_empty() {
            continue;
        }
        // Dynamic: where the anchor's first frame arrived; never overlapping the previous
        // period (a source clock faster than the wall clock). Static: back to back.
        let wall = plan.anchor.map(|a| a.wall);
        let after_previous = previous.map_or(0.0, |(start, extent)| start + extent);
        let start = if s.ended {
            after_previous
        } else {
            let ast = s.periods.availability_start.or(first_wall).or(wall);
            let at = match (wall, ast) {
                (Some(w), Some(a)) => w.duration_since(a).map_or(0.0, |d| d.as_secs_f64()),
                _ => after_previous,
            };
            at.max(after_previous)
        };
        // Milliseconds, as written: the next period's bound uses what players read.
        let start = (start * 1000.0).floor() / 1000.0;
        first_wall = first_wall.or(wall);
        previous = Some((start, extent));
        periods.push(dash::Period {
            id: plan.id.clone(),
            start: Duration::from_secs_f64(start),
            adaptation_sets: sets,
        });
    }

    let presentation = if s.ended {
        dash::Presentation::Static {
            duration: Duration::from_secs_f64(previous.map_or(0.0, |(s, e)| s + e)),
        }
    } else {
        let ast = s
            .periods
            .availability_start
            .or(first_wall)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        dash::Presentation::Dynamic {
            availability_start_time: ast,
            publish_time: now,
            minimum_update_period: d,
            time_shift_buffer_depth: s.dvr_window,
            // LL-HLS's PART-HOLD-BACK (three parts) or HOLD-BACK (three segments).
            suggested_presentation_delay: if low_latency { part * 3 } else { d * 3 },
        }
    };
    dash::Mpd {
        presentation,
        min_buffer_time: if low_latency { part * 3 } else { d },
        utc_timing: utc_timing.filter(|_| !s.ended),
        target_latency: low_latency.then_some(d),
        periods,
    }
}

/// Splits the listed segment numbers into periods: a new one where the session, init
/// section or timeline of a rendition the channel always has (`source`, `audio`)
/// changes, or a number is missing in one (`$Number$` counts the timeline's entries, so
/// it cannot skip one). A channel without `source` takes every rendition's breaks.
///
/// The transcoded rungs do not cut periods: a rung joins after the source and restarts
/// on its own after a crash, and a period for each of those would put a seam (new
/// templates, init sections re-read) into every player's playback for a rendition most
/// of them do not play. Within a period a rung lists only its last unbroken run instead
/// (`last_run`). A rendition whose oldest listed segment is newer than another's (the
/// window slides per rendition, a rung joins late) just starts its timeline later in
/// the same period: its own `startNumber` says where.
fn plan_periods(s: &Snapshot) -> Vec<Plan> {
    let Some(first) = s
        .renditions
        .iter()
        .filter_map(|r| r.segments.first().map(|x| x.msn))
        .min()
    else {
        return Vec::new();
    };
    let has_source = s.renditions.iter().any(|r| r.info.name == VIDEO_RENDITION);
    let defining: Vec<&SnapRendition> = s
        .renditions
        .iter()
        .filter(|r| crate::periods::sets_periods(r.info.name, has_source))
        .collect();
    let mut starts = BTreeSet::from([first]);
    for r in &defining {
        for w in r.segments.windows(2) {
            if breaks(&w[0], &w[1]) {
                starts.insert(w[1].msn);
            }
        }
    }
    let starts: Vec<u64> = starts.into_iter().collect();
    starts
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let end = starts.get(i + 1).copied().unwrap_or(u64::MAX);
            // The anchor noted where this period began; for the oldest listed one the
            // anchor in force (its first segments may have left the window); else one
            // made from its first segment (a run read back after a restart).
            let noted = s
                .periods
                .at(b)
                .copied()
                .filter(|a| a.msn == b || (i == 0 && a.msn < b));
            // (The earliest of the renditions' segments at `b`, as `Periods::note` keeps;
            // from the renditions that define periods if they have one there: a rung's
            // segment arrives later by the time it took to encode.)
            let earliest = |of: &mut dyn Iterator<Item = &SnapRendition>| {
                of.filter_map(|r| {
                    let x = r.segments.iter().find(|x| x.msn == b)?;
                    Anchor::of(b, x.program_date_time, x.media_start, r.info.timescale)
                })
                .min_by_key(|a| a.media_ns)
            };
            let made = || {
                earliest(&mut defining.iter().copied())
                    .or_else(|| earliest(&mut s.renditions.iter()))
            };
            let anchor = noted.or_else(made);
            Plan {
                id: format!("p{}", anchor.map_or(b, |a| a.msn)),
                first: b,
                end,
                anchor,
            }
        })
        .collect()
}

fn is_last(r: &SnapRendition, x: &SnapSegment) -> bool {
    r.segments.last().is_some_and(|l| l.msn == x.msn)
}

/// Whether `b`, listed after `a`, cannot continue `a`'s timeline: a new session or init
/// section, a discontinuity, or a number missing between them.
fn breaks(a: &SnapSegment, b: &SnapSegment) -> bool {
    b.boundary || b.session != a.session || b.init != a.init || b.msn != a.msn + 1
}

/// A rendition's segments in a period from its newest break on.
///
/// `$Number$` counts timeline entries, so one template cannot skip a number, and it has
/// one `media` (one session) and one `initialization`; `S@t` may restart the times but
/// not the numbers. Periods are cut at the breaks of `source` and `audio` only (see
/// `plan_periods`), so a rung's own break (a late join after a gap, a restart with a
/// discontinuity or a new init section) can fall inside a period: the rung then lists
/// only what follows it, with `startNumber` its first number. What it drops is behind
/// the live edge, and the source's and the other rungs' segments still cover it. For
/// `source` and `audio` the run is the whole period: their breaks are its bounds.
fn last_run<'a, 'b>(segments: &'b [&'a SnapSegment]) -> &'b [&'a SnapSegment] {
    let from = segments
        .windows(2)
        .rposition(|w| breaks(w[0], w[1]))
        .map_or(0, |i| i + 1);
    &segments[from..]
}

/// The timeline of one rendition's segments in a period, in its timescale `ts`: each
/// segment's own start (its `tfdt`) and duration. A segment in progress is given the
/// previous segment's duration (sources repeat their GOP), or before there is one its
/// nominal end on the grid (segment `n` ends at `(n + 1) × D` of media time); at least
/// one part more than it has (a GOP that runs long). A later MPD states the real one.
fn timeline(
    segments: &[&SnapSegment],
    offset: u64,
    ts: u32,
    d: Duration,
    part: Duration,
) -> Vec<dash::TimelineSegment> {
    let ticks = |secs: f64| (secs * f64::from(ts)).round().max(0.0) as u64;
    let mut out: Vec<dash::TimelineSegment> = Vec::with_capacity(segments.len());
    for x in segments {
        let previous_end = out.last().map(|p| p.start + p.duration);
        let mut start = x
            .media_start
            .unwrap_or_else(|| previous_end.unwrap_or(offset));
        let mut duration = if x.complete {
            ticks(x.duration)
        } else {
            let grid_end = u64::try_from(
                u128::from(x.msn + 1) * d.as_nanos() * u128::from(ts) / 1_000_000_000,
            )
            .unwrap_or(u64::MAX);
            let have = ticks(x.duration);
            let predicted = match out.last() {
                Some(p) => p.duration,
                None => grid_end.saturating_sub(start),
            };
            predicted.max(have + ticks(part.as_secs_f64()))
        };
        // Rounding or a clamped timestamp must not make two entries overlap, and no
        // entry may start before the period (players mishandle a negative time).
        let floor = previous_end.unwrap_or(offset);
        if start < floor {
            duration = duration.saturating_sub(floor - start);
            start = floor;
        }
        // Never dropped: `$Number$` counts the entries, so a missing one would give every
        // later segment its neighbour's number. A segment the clamp swallowed keeps one
        // tick (the next one starts a tick later, which is invisible).
        out.push(dash::TimelineSegment {
            start,
            duration: duration.max(1),
        });
    }
    out
}

/// A frame rate as DASH writes it: whole (`30`), NTSC (`30000/1001`) or to 1/1000.
fn frame_rate(fps: f64) -> Option<(u32, u32)> {
    if !(fps.is_finite() && fps > 0.0 && fps < 1000.0) {
        return None;
    }
    if (fps - fps.round()).abs() < 1e-3 {
        return Some((fps.round() as u32, 1));
    }
    let ntsc = fps * 1.001;
    if (ntsc - ntsc.round()).abs() < 1e-3 {
        return Some((ntsc.round() as u32 * 1000, 1001));
    }
    Some(((fps * 1000.0).round() as u32, 1000))
}

#[cfg(test)]
#[path = "mpd_tests.rs"]
mod tests;
