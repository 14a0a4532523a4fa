//! Media playlists: LL-HLS with blocking reload, delta updates, preload hints and
//! rendition reports, rendered once per state version and shared by every viewer.

use super::*;

pub(super) async fn media_playlist(
    origin: &Origin,
    ch: &Channel,
    rendition: &str,
    query: Option<&str>,
    token: Option<&str>,
) -> Response {
    // `token` (and any other parameter) is ignored here: only _HLS_* are read.
    let req = match hls::parse_blocking_query(query) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string(), "no-store"),
    };
    let limit = {
        let st = lock(&ch.inner);
        if let Some(msn) = req.msn {
            let Some(r) = st.rendition(rendition) else {
                return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
            };
            let (lm, lp) = last_msn_and_part(r).unwrap_or((0, None));
            let lp = lp.map_or(-1, |p| p as i64);
            let too_far = match req.part {
                None => msn > lm + 2,
                Some(p) => {
                    msn > lm + 1 || (msn == lm + 1 && p > 3) || (msn == lm && p as i64 > lp + 3)
                }
            };
            if too_far && !st.ended {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("_HLS_msn={msn} / _HLS_part={:?} is too far past the live edge ({lm}, {lp})", req.part),
                    "no-store",
                );
            }
        }
        block_limit(&st, rendition)
    };
    if let Some(msn) = req.msn {
        let ok = wait_until(ch, &origin.metrics, limit, |st| {
            st.rendition(rendition)
                .is_some_and(|r| ready_for(r, msn, req.part))
        })
        .await;
        // A run that ended while the request waited: the final playlist is the answer
        // (it says ENDLIST, so the player stops asking).
        if !ok && !lock(&ch.inner).ended {
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
    let mut st = lock(&ch.inner);
    let config = &origin.config;
    let ended = st.ended;
    // The next part is hinted while a publisher is live, and in the reconnect grace (in
    // the session a republish will get); not once the run has ended.
    let hint_session = hint_session(&st);
    let low_latency = st.settings.low_latency;
    let reports: Vec<hls::RenditionReport> = st
        .renditions
        .iter()
        .filter(|o| o.info.name != rendition && !ended)
        .filter_map(|o| {
            let (m, p) = last_msn_and_part(o)?;
            Some(hls::RenditionReport {
                uri: format!("../{}/index.m3u8", o.info.name),
                last_msn: m,
                last_part: p,
            })
        })
        .collect();
    let Some(r) = st.renditions.iter_mut().find(|r| r.info.name == rendition) else {
        return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
    };
    // Until a first segment is complete, a playlist would hold parts only: valid LL-HLS,
    // but players (hls.js) take an empty segment list for an error. Say "not yet".
    if !r.segments.iter().any(|s| s.complete) {
        return error(StatusCode::NOT_FOUND, "no complete segment yet", NOT_YET);
    }
    let version = *ch.version.borrow();
    let fresh = matches!(&r.cache, Some((v, _, _)) if *v == version);
    if !fresh {
        r.cache = Some((version, Bytes::new(), None));
    }
    let want_delta = req.skip != hls::SkipRequest::No;
    let cached = r.cache.as_ref().and_then(|(_, full, delta)| {
        if want_delta {
            delta.clone()
        } else {
            (!full.is_empty()).then(|| full.clone())
        }
    });
    let body = match cached {
        Some(b) => b,
        None => {
            let pl = build_playlist(r, reports, ended, hint_session, low_latency, config);
            let text = if want_delta {
                pl.render_delta_for(req.skip)
            } else {
                pl.render()
            };
            debug_lint(&text);
            let text = Bytes::from(text);
            if let Some((_, full, delta)) = r.cache.as_mut() {
                if want_delta {
                    *delta = Some(text.clone());
                } else {
                    *full = text.clone();
                }
            }
            text
        }
    };
    let target = r.target_duration;
    drop(st);
    // The cached text is the same for every viewer; each token is added per response.
    let body = match (token, std::str::from_utf8(&body)) {
        (Some(t), Ok(text)) => Bytes::from(gate::add_token(text, t)),
        _ => body,
    };
    let cache = if ended {
        "public, max-age=5".to_owned()
    } else if req.msn.is_some() {
        // A blocking response's URL names the moment it describes: CDNs may keep it.
        format!("public, max-age={}", 6 * target)
    } else {
        "public, max-age=1".to_owned()
    };
    playlist_response(body, &cache)
}

pub(crate) fn build_playlist(
    r: &Rendition,
    reports: Vec<hls::RenditionReport>,
    ended: bool,
    hint_session: Option<u64>,
    low_latency: bool,
    config: &crate::OriginConfig,
) -> hls::MediaPlaylist {
    // Standard latency: whole segments only, as any HLS player expects; no parts.
    let hint_session = hint_session.filter(|_| low_latency);
    let list_parts = low_latency && !ended;
    let part_target = config.part_duration.as_secs_f64();
    let target = r.target_duration;
    let part = |session: u64, msn: u64, i: usize, p: &crate::live::PartEntry| hls::Part {
        uri: format!("{}/{msn}.{i}.m4s", session_name(session)),
        duration: p.duration,
        independent: p.independent,
        gap: false,
    };
    let map_uri = |v: usize| {
        let session = r.inits.get(v).map_or(0, |(s, _)| *s);
        format!("{}/init-{v}.mp4", session_name(session))
    };
    let first = r.segments.front();
    let first_init = first.map_or(0, |s| s.init);
    let mut pl = hls::MediaPlaylist {
        version: 9,
        target_duration: target,
        media_sequence: first.map_or(0, |s| s.msn),
        // The first segment's DISCONTINUITY tag is not written (nothing listed precedes
        // it), so its discontinuity is counted here instead: every segment keeps its
        // discontinuity number as the window slides.
        discontinuity_sequence: r.discontinuity_sequence
            + u64::from(first.is_some_and(|s| s.discontinuity)),
        playlist_type: (config.playlist == PlaylistKind::Event).then_some(hls::PlaylistType::Event),
        // Segments cut at the maximum duration without a keyframe (long GOPs, intra
        // refresh) do not start independently: then the playlist must not say so.
        independent_segments: r
            .segments
            .iter()
            .all(|s| s.parts.first().is_none_or(|p| p.independent)),
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
        rendition_reports: reports,
        end_list: ended,
        ..Default::default()
    };
    for (i, s) in r.segments.iter().enumerate() {
        let map = (s.new_map && i > 0).then(|| hls::Map {
            uri: map_uri(s.init),
        });
        // A finished run lists whole segments only: its parts leave memory once stored.
        let parts = || {
            s.parts
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
                title: None,
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
        let next = match r.segments.back() {
            Some(s) if !s.complete && s.session == session => {
                format!("{}.{}.m4s", s.msn, s.parts.len())
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
