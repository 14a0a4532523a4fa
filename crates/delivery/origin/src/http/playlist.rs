//! Media playlists: LL-HLS with blocking reload, delta updates, preload hints and
//! rendition reports, rendered once per rendition version (off the channel's lock) and
//! shared by every viewer; see `crate::wake`.

use super::*;
use crate::wake::Feed;

pub(super) async fn media_playlist(
    origin: &Origin,
    ch: &Channel,
    feed: &Feed,
    query: Option<&str>,
    token: Option<&str>,
) -> Response {
    // `token` (and any other parameter) is ignored here: only _HLS_* are read.
    let req = match hls::parse_blocking_query(query) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string(), "no-store"),
    };
    if let Some(msn) = req.msn {
        // Decided on the rendition's edge, without the channel's lock.
        let edge = feed.edge();
        let (lm, lp) = edge.last_msn_and_part().unwrap_or((0, None));
        let lp = lp.map_or(-1, |p| p as i64);
        let too_far = match req.part {
            None => msn > lm + 2,
            Some(p) => msn > lm + 1 || (msn == lm + 1 && p > 3) || (msn == lm && p as i64 > lp + 3),
        };
        if too_far && !edge.ended {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "_HLS_msn={msn} / _HLS_part={:?} is too far past the live edge ({lm}, {lp})",
                    req.part
                ),
                "no-store",
            );
        }
        let ok = feed
            .wait_until(&origin.metrics, block_limit(edge.target_duration), |e| {
                e.has(msn, req.part)
            })
            .await;
        // A run that ended while the request waited: the final playlist is the answer
        // (it says ENDLIST, so the player stops asking).
        if !ok && !feed.edge().ended {
            origin
                .metrics
                .blocking_timeouts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the live edge did not reach the requested part in time",
                NOT_YET,
            );
        }
    }
    let want_delta = req.skip != hls::SkipRequest::No;
    let config = &origin.config;
    let rendered = feed
        .playlist(
            want_delta,
            || Listing::capture(&lock(&ch.inner), feed.name),
            |listing, delta| {
                let pl = build_playlist(listing, config);
                let text = if delta {
                    pl.render_delta_for(req.skip)
                } else {
                    pl.render()
                };
                debug_lint(&text);
                Bytes::from(text)
            },
        )
        .await;
    let Some((body, rendered)) = rendered else {
        return error(StatusCode::NOT_FOUND, "no part yet", NOT_YET);
    };
    let Some(listing) = rendered.listing.as_ref() else {
        return error(StatusCode::NOT_FOUND, "no part yet", NOT_YET);
    };
    // Until a first segment is complete the playlist holds parts only: valid LL-HLS, and
    // what a blocking request for the first parts asks for (it names a part, so it
    // knows parts), which lets an LL-HLS client start a part after the ingest latency
    // instead of a whole segment. A plain request may come from a player that takes an
    // empty segment list for an error (hls.js: LEVEL_EMPTY_ERROR), so it waits for the
    // first segment, as the multivariant playlist does.
    if req.msn.is_none() && !listing.has_complete_segment() {
        return error(
            StatusCode::NOT_FOUND,
            "no complete segment yet (a blocking request, _HLS_msn=0&_HLS_part=0, gets the first parts)",
            NOT_YET,
        );
    }
    // The cached text is the same for every viewer; each token is added per response.
    let body = match (token, std::str::from_utf8(&body)) {
        (Some(t), Ok(text)) => Bytes::from(gate::add_token(text, t)),
        _ => body,
    };
    let cache = if listing.ended {
        HeaderValue::from_static("public, max-age=5")
    } else if req.msn.is_some() {
        // A blocking response's URL names the moment it describes: CDNs may keep it.
        listing.blocking_cache.clone()
    } else {
        HeaderValue::from_static("public, max-age=1")
    };
    playlist_response(body, cache)
}

/// What a media playlist lists, copied out of the channel's state under its lock:
/// numbers and flags, no strings and no media bytes, and the parts only of the segments
/// near the end (older ones are not listed, see `drop_old_parts`). Building and rendering
/// the text from it happens after the lock is released, so the ingest path never waits
/// for a render.
#[derive(Debug)]
pub(crate) struct Listing {
    segments: Vec<Listed>,
    parts: Vec<ListedPart>,
    /// The session of each init section, by version.
    inits: Vec<u64>,
    discontinuity_sequence: u64,
    target_duration: u32,
    independent_segments: bool,
    reports: Vec<hls::RenditionReport>,
    ended: bool,
    hint_session: Option<u64>,
    low_latency: bool,
    /// `Cache-Control` of a blocking response (six target durations).
    blocking_cache: HeaderValue,
}

#[derive(Debug)]
struct Listed {
    session: u64,
    msn: u64,
    init: usize,
    discontinuity: bool,
    new_map: bool,
    program_date_time: Option<std::time::SystemTime>,
    complete: bool,
    duration: f64,
    gap: bool,
    /// What is wrong with the copy served (no pipeline had a clean one).
    defects: starling_packager::Defects,
    /// Its parts in [`Listing::parts`] (none for segments too old to list them).
    parts: std::ops::Range<usize>,
    /// How many parts it has (the preload hint names the next one).
    part_count: usize,
}

#[derive(Debug, Clone, Copy)]
struct ListedPart {
    duration: f64,
    independent: bool,
}

impl Listing {
    /// Under the channel's lock: rendition `name`'s version and listing (`None` until
    /// the rendition has a part). Cheap: a few numbers per segment.
    pub(crate) fn capture(st: &ChannelInner, name: &str) -> (u64, Option<Self>) {
        let Some(r) = st.rendition(name) else {
            return (0, None);
        };
        let version = r.feed.version();
        if !r.segments.iter().any(|s| s.complete || !s.parts.is_empty()) {
            return (version, None);
        }
        let ended = st.ended;
        let reports = st
            .renditions
            .iter()
            .filter(|o| o.info.name != name && !ended)
            .filter_map(|o| {
                let (m, p) = last_msn_and_part(o)?;
                Some(hls::RenditionReport {
                    uri: format!("../{}/index.m3u8", o.info.name),
                    last_msn: m,
                    last_part: p,
                })
            })
            .collect();
        // Parts are listed within three target durations of the end only: copy those
        // (with a second of slack; `drop_old_parts` still decides exactly).
        let limit = 3.0 * f64::from(r.target_duration) + 1.0;
        let mut keep_parts_from = r.segments.len();
        let mut from_end = 0.0;
        for (i, s) in r.segments.iter().enumerate().rev() {
            if from_end > limit {
                break;
            }
            keep_parts_from = i;
            from_end += if s.complete {
                s.duration.max(0.0)
            } else {
                s.parts.iter().map(|p| p.duration.max(0.0)).sum()
            };
        }
        let mut parts = Vec::new();
        let segments = r
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let start = parts.len();
                if i >= keep_parts_from {
                    parts.extend(s.parts.iter().map(|p| ListedPart {
                        duration: p.duration,
                        independent: p.independent,
                    }));
                }
                Listed {
                    session: s.session,
                    msn: s.msn,
                    init: s.init,
                    discontinuity: s.discontinuity,
                    new_map: s.new_map,
                    program_date_time: s.program_date_time,
                    complete: s.complete,
                    duration: s.duration,
                    gap: s.gap,
                    defects: s.defects,
                    parts: start..parts.len(),
                    part_count: s.parts.len(),
                }
            })
            .collect();
        let blocking_cache =
            HeaderValue::from_str(&format!("public, max-age={}", 6 * r.target_duration))
                .unwrap_or(HeaderValue::from_static("public, max-age=1"));
        let listing = Self {
            segments,
            parts,
            inits: r.inits.iter().map(|(s, _)| *s).collect(),
            discontinuity_sequence: r.discontinuity_sequence,
            target_duration: r.target_duration,
            // Segments cut at the maximum duration without a keyframe (long GOPs, intra
            // refresh) do not start independently: then the playlist must not say so.
            independent_segments: r
                .segments
                .iter()
                .all(|s| s.parts.first().is_none_or(|p| p.independent)),
            reports,
            ended,
            hint_session: hint_session(st),
            low_latency: st.settings.low_latency,
            blocking_cache,
        };
        (version, Some(listing))
    }

    /// Whether a segment is complete: a playlist of parts alone is served to blocking
    /// requests only (see `media_playlist`).
    pub(crate) fn has_complete_segment(&self) -> bool {
        self.segments.iter().any(|s| s.complete)
    }
}

pub(crate) fn build_playlist(l: &Listing, config: &crate::OriginConfig) -> hls::MediaPlaylist {
    let (ended, low_latency) = (l.ended, l.low_latency);
    // Standard latency: whole segments only, as any HLS player expects; no parts.
    let hint_session = l.hint_session.filter(|_| low_latency);
    let list_parts = low_latency && !ended;
    let part_target = config.part_duration.as_secs_f64();
    let target = l.target_duration;
    let part = |session: u64, msn: u64, i: usize, p: &ListedPart| hls::Part {
        uri: format!("{}/{msn}.{i}.m4s", session_name(session)),
        duration: p.duration,
        independent: p.independent,
        gap: false,
    };
    let map_uri = |v: usize| {
        let session = l.inits.get(v).copied().unwrap_or(0);
        format!("{}/init-{v}.mp4", session_name(session))
    };
    let first = l.segments.first();
    let first_init = first.map_or(0, |s| s.init);
    let mut pl = hls::MediaPlaylist {
        version: 9,
        target_duration: target,
        media_sequence: first.map_or(0, |s| s.msn),
        // The first segment's DISCONTINUITY tag is not written (nothing listed precedes
        // it), so its discontinuity is counted here instead: every segment keeps its
        // discontinuity number as the window slides.
        discontinuity_sequence: l.discontinuity_sequence
            + u64::from(first.is_some_and(|s| s.discontinuity)),
        playlist_type: (config.playlist == PlaylistKind::Event).then_some(hls::PlaylistType::Event),
        independent_segments: l.independent_segments,
        map: Some(hls::Map {
            uri: map_uri(first_init),
        }),
        part_target: low_latency.then_some(part_target),
        server_control: Some(hls::ServerControl {
            can_block_reload: true,
            part_hold_back: low_latency.then_some(3.0 * part_target),
            hold_back: Some(3.0 * f64::from(target)),
            can_skip_until: Some(6.0 * f64::from(target)),
            can_skip_dateranges: false,
        }),
        rendition_reports: l.reports.clone(),
        end_list: ended,
        ..Default::default()
    };
    for (i, s) in l.segments.iter().enumerate() {
        let map = (s.new_map && i > 0).then(|| hls::Map {
            uri: map_uri(s.init),
        });
        // A finished run lists whole segments only: its parts leave memory once stored.
        let parts = || {
            l.parts[s.parts.clone()]
                .iter()
                .take(if list_parts { usize::MAX } else { 0 })
                .enumerate()
                .map(|(i, p)| part(s.session, s.msn, i, p))
                .collect()
        };
        if s.complete {
            pl.segments.push(hls::Segment {
                uri: format!("{}/{}.m4s", session_name(s.session), s.msn),
                duration: s.duration,
                title: defects_title(s.defects),
                program_date_time: s.program_date_time,
                discontinuity: s.discontinuity && i > 0,
                gap: s.gap,
                map,
                parts: parts(),
            });
        } else {
            pl.trailing_parts = parts();
            pl.trailing_discontinuity = s.discontinuity && i > 0;
            pl.trailing_map = map;
            pl.trailing_program_date_time = s.program_date_time;
        }
    }
    pl.drop_old_parts();
    if let (false, Some(session)) = (ended, hint_session) {
        let next = match l.segments.last() {
            Some(s) if !s.complete && s.session == session => {
                format!("{}.{}.m4s", s.msn, s.part_count)
            }
            Some(s) => format!("{}.0.m4s", s.msn + 1),
            None => "0.0.m4s".to_owned(),
        };
        pl.preload_hint = Some(hls::PreloadHint {
            uri: format!("{}/{next}", session_name(session)),
        });
    }
    pl
}

/// The flag of a segment served with defects (the least bad copy of every pipeline's):
/// the `EXTINF` title, which players show or ignore and tools can read,
/// `defects=short,jump`.
fn defects_title(defects: starling_packager::Defects) -> Option<String> {
    (!defects.is_clean())
        .then(|| format!("defects={}", defects.names().collect::<Vec<_>>().join(",")))
}
