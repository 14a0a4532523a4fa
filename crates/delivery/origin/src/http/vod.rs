//! Recordings as VOD: static playlists for any run the store holds (see
//! `crate::recordings`), `/vod/{channel}/{run}/index.m3u8` (multivariant) and
//! `/vod/{channel}/{run}/{rendition}.m3u8` (`EXT-X-PLAYLIST-TYPE:VOD`, `EXT-X-ENDLIST`),
//! written from the run's description and index alone, so they play on any node and
//! after any restart. `vertical.m3u8` offers the vertical rendition instead; a clip
//! (`crate::clips`) is `clip-{first}-{last}.m3u8` (and `-vertical`), whose media
//! playlists `{rendition}.{first}-{last}.m3u8` list those segments alone; a clip plays
//! while its run is still live, once its last segment is indexed.
//!
//! Their segment and init URIs are the session-scoped object URLs under `/live/`
//! (relative, so a prefix in front of the origin still works): the very bytes the live
//! playlists listed, served by `objects` from memory or the store, with their caching
//! and read caps. Nothing is served under a second name. The gate admits `/vod/` exactly
//! as it admits the channel's `/live/` documents.

use super::*;
use crate::history::{RenditionRecord, SegmentRecord};
use crate::recordings::{RecordingError, StoredRun};

/// VOD playlists change only when a recording is deleted.
const VOD_CACHE: &str = "public, max-age=60";

pub(super) async fn playlist(
    State(served): State<Served>,
    Path((name, run, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    peer: Option<axum::Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let admitted = match admit_channel(&served, &name, query.as_deref(), &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let r = vod_playlist(
        &served.origin,
        &name,
        &run,
        &file,
        peer.map(|p| p.0 .0.ip()),
    )
    .await;
    let r = match (admitted.token(), r) {
        (Some(t), Ok(text)) => Ok(gate::add_token(&text, t)),
        (_, r) => r,
    };
    admitted.finish(match r {
        Ok(text) => playlist_response(Bytes::from(text), HeaderValue::from_static(VOD_CACHE)),
        Err(r) => r,
    })
}

async fn vod_playlist(
    origin: &Arc<Origin>,
    name: &str,
    run: &str,
    file: &str,
    client: Option<std::net::IpAddr>,
) -> Result<String, Response> {
    let Some(run) = parse_session(run) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "malformed recording id",
            "no-store",
        ));
    };
    let Some(wanted) = file.strip_suffix(".m3u8").and_then(Wanted::parse) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "malformed file name",
            "no-store",
        ));
    };
    origin
        .metrics
        .playlist_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A live run plays at /live/; a clip of it plays here once its last segment is in
    // the store's index (checked below).
    let live = origin.is_live_run(name, run);
    let clip = match wanted {
        Wanted::Multivariant { clip, .. } | Wanted::Media { clip, .. } => clip,
    };
    if live && clip.is_none() {
        return Err(error(
            StatusCode::CONFLICT,
            &format!("this recording is live: watch it at /live/{name}/index.m3u8"),
            NOT_YET,
        ));
    }
    // One slot for the whole playlist: its description and index chunks are store reads
    // like any DVR read.
    let stored = {
        let _slot = origin
            .reads
            .try_acquire(client)
            .map_err(|why| objects::shed(origin, why))?;
        origin.stored_run(name, run).await.map_err(refusal)?
    };
    if let (true, Some((_, last))) = (live, clip) {
        let indexed = stored.segments.iter().flatten().any(|s| s.msn >= last);
        if !indexed {
            return Err(error(
                StatusCode::CONFLICT,
                "this clip of a live recording is still being written; try again in a few seconds",
                NOT_YET,
            ));
        }
    }
    let text = match wanted {
        Wanted::Multivariant { vertical, clip } => multivariant(&stored, vertical, clip),
        Wanted::Media { rendition, clip } => media(&stored, name, rendition, clip, &origin.config),
    }
    .map_err(IntoResponse::into_response)?;
    debug_lint(&text);
    Ok(text)
}

fn refusal(e: RecordingError) -> Response {
    match e {
        RecordingError::NotFound { .. } => error(
            StatusCode::NOT_FOUND,
            "no such recording",
            "public, max-age=5",
        ),
        RecordingError::Live { .. } | RecordingError::StillWriting { .. } => {
            error(StatusCode::CONFLICT, &e.to_string(), NOT_YET)
        }
        RecordingError::Store(e) => {
            tracing::warn!(error = %e, "origin: store read failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable",
                "no-store",
            )
        }
        e => {
            tracing::warn!(error = %e, "origin: a recording's history cannot be read");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this recording's history in the store cannot be read",
                "no-store",
            )
        }
    }
}

/// Which playlist of a run a file name asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted<'a> {
    /// `index` (the ladder), `vertical`; `clip-F-L`, `clip-F-L-vertical`.
    Multivariant {
        vertical: bool,
        clip: Option<(u64, u64)>,
    },
    /// `RENDITION`; `RENDITION.F-L` (a clip's).
    Media {
        rendition: &'a str,
        clip: Option<(u64, u64)>,
    },
}

impl<'a> Wanted<'a> {
    /// From a file name without `.m3u8`; `None` when malformed.
    fn parse(stem: &'a str) -> Option<Self> {
        // `F-L`: segment numbers, first no later than last, within a clip's bound.
        let range = |r: &str| -> Option<(u64, u64)> {
            let (f, l) = r.split_once('-')?;
            let (f, l) = (f.parse::<u64>().ok()?, l.parse::<u64>().ok()?);
            (f <= l && l - f < crate::MAX_CLIP_SEGMENTS).then_some((f, l))
        };
        match stem {
            "index" => Some(Self::Multivariant {
                vertical: false,
                clip: None,
            }),
            "vertical" => Some(Self::Multivariant {
                vertical: true,
                clip: None,
            }),
            _ => {
                if let Some(rest) = stem.strip_prefix("clip-") {
                    let (r, vertical) = match rest.strip_suffix("-vertical") {
                        Some(r) => (r, true),
                        None => (rest, false),
                    };
                    return Some(Self::Multivariant {
                        vertical,
                        clip: Some(range(r)?),
                    });
                }
                let (rendition, clip) = match stem.split_once('.') {
                    Some((n, r)) => (n, Some(range(r)?)),
                    None => (stem, None),
                };
                valid_name(rendition, 32).then_some(Self::Media { rendition, clip })
            }
        }
    }
}

/// The segments of `segments` (in number order) a clip of `first..=last` lists; all of
/// them without a clip.
fn clipped(segments: &[SegmentRecord], clip: Option<(u64, u64)>) -> &[SegmentRecord] {
    let Some((first, last)) = clip else {
        return segments;
    };
    let from = segments.partition_point(|s| s.msn < first);
    let to = segments.partition_point(|s| s.msn <= last);
    &segments[from..to.max(from)]
}

/// (peak, average) bits per second of a rendition's segments.
fn bandwidth(segments: &[SegmentRecord]) -> (f64, f64) {
    let (bytes, secs) = segments
        .iter()
        .fold((0u64, 0.0), |(b, d), s| (b + s.bytes, d + s.duration));
    let peak = segments
        .iter()
        .filter(|s| s.duration > 0.0)
        .map(|s| s.bytes as f64 * 8.0 / s.duration)
        .fold(0.0, f64::max);
    let average = if secs > 0.0 {
        bytes as f64 * 8.0 / secs
    } else {
        0.0
    };
    (peak, average)
}

fn offered<'a>(r: &'a RenditionRecord, segments: &[SegmentRecord]) -> Offered<'a> {
    Offered {
        info: &r.info,
        bandwidth: bandwidth(segments),
    }
}

/// The multivariant playlist: the renditions with segments, source video first, then
/// the ladder's rungs largest first, audio as a group beside them (as at `/live/`);
/// `vertical`: the vertical rendition instead (`vertical.m3u8`); `clip`: those of the
/// segments `first..=last` alone (`clip-F-L.m3u8`).
fn multivariant(
    run: &StoredRun,
    vertical: bool,
    clip: Option<(u64, u64)>,
) -> Result<String, Reject> {
    let recorded = || {
        run.record
            .renditions
            .iter()
            .zip(run.segments.iter().map(|s| clipped(s, clip)))
            .filter(|(_, s)| !s.is_empty())
    };
    let audio = recorded().find(|(r, _)| r.info.kind == TrackKind::Audio);
    let mut videos: Vec<_> = recorded()
        .filter(|(r, _)| {
            r.info.kind == TrackKind::Video && (r.info.name == VERTICAL_RENDITION) == vertical
        })
        .collect();
    if vertical && videos.is_empty() {
        return Err(Reject(
            StatusCode::NOT_FOUND,
            "this recording has no vertical rendition (its channel was not reframed)",
            "public, max-age=5",
        ));
    }
    videos.sort_by(|(a, _), (b, _)| {
        (b.info.name == VIDEO_RENDITION)
            .cmp(&(a.info.name == VIDEO_RENDITION))
            .then(b.info.height.cmp(&a.info.height))
    });
    if videos.is_empty() && audio.is_none() {
        return Err(Reject(
            StatusCode::NOT_FOUND,
            "this recording has no segments",
            "public, max-age=5",
        ));
    }
    let videos: Vec<Offered<'_>> = videos.into_iter().map(|(r, s)| offered(r, s)).collect();
    let audio = audio.map(|(r, s)| offered(r, s));
    let pl = variants_playlist(&videos, audio, |name| match clip {
        Some((f, l)) => format!("{name}.{f}-{l}.m3u8"),
        None => format!("{name}.m3u8"),
    });
    Ok(pl.render())
}

/// Rendition `name`'s media playlist: every stored segment of the run, with the
/// discontinuities and init changes as recorded, and the numbers the rendition skipped
/// listed as gaps (as the live playlist listed them), so that renditions stay aligned.
fn media(
    run: &StoredRun,
    channel: &str,
    name: &str,
    clip: Option<(u64, u64)>,
    config: &crate::OriginConfig,
) -> Result<String, Reject> {
    let unknown = || {
        Reject(
            StatusCode::NOT_FOUND,
            "unknown rendition",
            "public, max-age=5",
        )
    };
    let Some(i) = run
        .record
        .renditions
        .iter()
        .position(|r| r.info.name == name)
    else {
        return Err(unknown());
    };
    let (rec, segments) = (&run.record.renditions[i], clipped(&run.segments[i], clip));
    let Some(first) = segments.first() else {
        return Err(unknown());
    };
    // From `/vod/{channel}/{run}/` to the objects' URLs under `/live/`.
    let base = format!("../../../live/{channel}/{name}");
    let map = |v: usize| {
        rec.inits.get(v).map(|s| hls::Map {
            uri: format!("{base}/{}/init-{v}.mp4", session_name(*s)),
        })
    };
    let unreadable = || {
        tracing::warn!(
            channel,
            rendition = name,
            "origin: a recorded segment names an init section its run does not list"
        );
        Reject(
            StatusCode::INTERNAL_SERVER_ERROR,
            "this recording's history in the store cannot be read",
            "no-store",
        )
    };
    let nominal = config.segment_duration.as_secs_f64();
    let longest = segments.iter().map(|s| s.duration).fold(nominal, f64::max);
    let target = config
        .packager()
        .target_duration()
        .max(hls::target_duration_for(longest));
    let mut pl = hls::MediaPlaylist {
        version: 1,
        target_duration: target,
        media_sequence: first.msn,
        // Every segment keeps its discontinuity number, the first's tag counted here.
        discontinuity_sequence: first.discontinuity_number,
        playlist_type: Some(hls::PlaylistType::Vod),
        independent_segments: segments.iter().all(|s| !s.not_independent),
        map: Some(map(first.init).ok_or_else(unreadable)?),
        end_list: true,
        ..Default::default()
    };
    let mut prev: Option<&SegmentRecord> = None;
    for s in segments {
        if let Some(p) = prev {
            // Bounded, as at a restore: a hole wider than this is not one the origin made.
            for msn in p.msn + 1..s.msn.min(p.msn + 257) {
                pl.segments.push(hls::Segment {
                    uri: format!("{base}/{}/{msn}.m4s", session_name(p.session)),
                    duration: nominal.min(f64::from(target)),
                    title: None,
                    program_date_time: None,
                    discontinuity: false,
                    gap: true,
                    map: None,
                    parts: Vec::new(),
                });
            }
        }
        let new_map = prev.is_some_and(|p| s.new_map || s.init != p.init);
        pl.segments.push(hls::Segment {
            uri: format!("{base}/{}/{}.m4s", session_name(s.session), s.msn),
            duration: s.duration,
            title: None,
            program_date_time: s.program_date_time,
            discontinuity: s.discontinuity && prev.is_some(),
            gap: false,
            map: if new_map {
                Some(map(s.init).ok_or_else(unreadable)?)
            } else {
                None
            },
            parts: Vec::new(),
        });
        prev = Some(s);
    }
    Ok(pl.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_ask_for_runs_clips_and_their_renditions() {
        let mv = |vertical, clip| Some(Wanted::Multivariant { vertical, clip });
        let media = |rendition, clip| Some(Wanted::Media { rendition, clip });
        assert_eq!(Wanted::parse("index"), mv(false, None));
        assert_eq!(Wanted::parse("vertical"), mv(true, None));
        assert_eq!(Wanted::parse("clip-10-17"), mv(false, Some((10, 17))));
        assert_eq!(
            Wanted::parse("clip-10-10-vertical"),
            mv(true, Some((10, 10)))
        );
        assert_eq!(Wanted::parse("720p"), media("720p", None));
        assert_eq!(
            Wanted::parse("portrait.10-17"),
            media("portrait", Some((10, 17)))
        );
        for bad in [
            "clip-17-10",
            "clip-10",
            "clip-x-y",
            "clip-0-300",
            "clip--1-2",
            "720p.1",
            "720p.2-1",
            "../x",
            "a b",
        ] {
            assert_eq!(Wanted::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_clip_lists_its_numbers_alone() {
        let seg = |msn| SegmentRecord {
            msn,
            session: 1,
            duration: 2.0,
            discontinuity_number: 0,
            init: 0,
            bytes: 1000,
            program_date_time: None,
            discontinuity: false,
            new_map: false,
            not_independent: false,
            media_start: None,
            defects: Default::default(),
        };
        let all: Vec<SegmentRecord> = [3, 4, 5, 7, 8].into_iter().map(seg).collect();
        let msns = |c| clipped(&all, c).iter().map(|s| s.msn).collect::<Vec<_>>();
        assert_eq!(msns(None), [3, 4, 5, 7, 8]);
        assert_eq!(msns(Some((4, 7))), [4, 5, 7]);
        assert_eq!(msns(Some((6, 6))), Vec::<u64>::new());
        assert_eq!(msns(Some((0, 100))), [3, 4, 5, 7, 8]);
        assert_eq!(msns(Some((9, 10))), Vec::<u64>::new());
    }
}
