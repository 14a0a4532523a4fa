use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::lint::lint;

/// 2026-11-22T00:40:12Z (`date -u -d 2026-11-22T00:40:12Z +%s`).
const T0: u64 = 1_795_308_012;

fn seg(msn: u64, duration: f64) -> Segment {
    Segment {
        uri: format!("seg{msn}.m4s"),
        duration,
        title: None,
        program_date_time: None,
        discontinuity: false,
        gap: false,
        map: None,
        parts: Vec::new(),
    }
}

fn part(msn: u64, i: usize) -> Part {
    Part {
        uri: format!("part{msn}.{i}.m4s"),
        duration: 0.5,
        independent: i == 0,
        gap: false,
    }
}

fn parts(msn: u64, n: usize) -> Vec<Part> {
    (0..n).map(|i| part(msn, i)).collect()
}

fn m3u8_media(text: &str) -> m3u8_rs::MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(pl)) => pl,
        other => panic!("not parsed as a media playlist: {other:?}\n{text}"),
    }
}

/// A classic live playlist, MPEG-TS style: no map, no LL tags.
fn plain() -> MediaPlaylist {
    let mut segments = vec![seg(7, 1.96), seg(8, 2.0), seg(9, 2.04)];
    segments[0].program_date_time = Some(UNIX_EPOCH + Duration::new(T0, 345_000_000));
    segments[2].discontinuity = true;
    segments[2].title = Some("after the break".into());
    for s in &mut segments {
        s.uri = s.uri.replace(".m4s", ".ts");
    }
    MediaPlaylist {
        version: 3,
        target_duration: target_duration_for(2.04),
        media_sequence: 7,
        discontinuity_sequence: 1,
        segments,
        ..Default::default()
    }
}

const PLAIN: &str = "\
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXT-X-PROGRAM-DATE-TIME:2026-11-22T00:40:12.345Z
#EXTINF:1.96,
seg7.ts
#EXTINF:2.0,
seg8.ts
#EXT-X-DISCONTINUITY
#EXTINF:2.04,after the break
seg9.ts
";

#[test]
fn golden_plain_live() {
    let pl = plain();
    pl.validate().unwrap();
    assert_eq!(pl.render(), PLAIN);
    // Nothing advertises delta updates: every skip request gets the full playlist.
    assert_eq!(pl.render_delta(), PLAIN);
    assert_eq!(pl.render_delta_for(SkipRequest::V2), PLAIN);
    assert_eq!(pl.last_msn_and_part(), (9, None));

    let s = lint(PLAIN).unwrap();
    assert_eq!((s.segments, s.parts, s.skipped), (3, 0, None));

    let parsed = m3u8_media(PLAIN);
    assert_eq!(parsed.version, Some(3));
    assert_eq!(parsed.target_duration, 2);
    assert_eq!(parsed.media_sequence, 7);
    assert_eq!(parsed.discontinuity_sequence, 1);
    assert_eq!(parsed.segments.len(), 3);
    let durations: Vec<f32> = parsed.segments.iter().map(|s| s.duration).collect();
    assert_eq!(durations, [1.96, 2.0, 2.04]);
    assert!(parsed.segments[2].discontinuity);
    assert_eq!(parsed.segments[2].title.as_deref(), Some("after the break"));
    let pdt = parsed.segments[0].program_date_time.unwrap();
    assert_eq!(pdt.timestamp_millis(), (T0 * 1000 + 345) as i64);
}

/// An LL-HLS playlist: msn 100..=108 complete (2 s each), 500 ms parts listed for the last
/// two, two parts of msn 109 written so far, the third hinted.
fn low_latency() -> MediaPlaylist {
    let mut segments: Vec<Segment> = (100..=108).map(|msn| seg(msn, 2.0)).collect();
    segments[0].program_date_time = Some(UNIX_EPOCH + Duration::from_secs(T0));
    segments[7].parts = parts(107, 4);
    segments[8].parts = parts(108, 4);
    MediaPlaylist {
        version: 9,
        target_duration: 2,
        media_sequence: 100,
        independent_segments: true,
        map: Some(Map {
            uri: "init.mp4".into(),
        }),
        part_target: Some(0.5),
        server_control: Some(ServerControl {
            can_block_reload: true,
            part_hold_back: Some(1.5),
            hold_back: None,
            can_skip_until: Some(12.0),
            can_skip_dateranges: false,
        }),
        segments,
        trailing_parts: parts(109, 2),
        preload_hint: Some(PreloadHint {
            uri: "part109.2.m4s".into(),
        }),
        rendition_reports: vec![RenditionReport {
            uri: "../audio/index.m3u8".into(),
            last_msn: 109,
            last_part: Some(1),
        }],
        ..Default::default()
    }
}

const LL_HEADER: &str = "\
#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.5
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-MAP:URI=\"init.mp4\"
";

const LL_OLD_SEGMENTS: &str = "\
#EXT-X-PROGRAM-DATE-TIME:2026-11-22T00:40:12.000Z
#EXTINF:2.0,
seg100.m4s
#EXTINF:2.0,
seg101.m4s
#EXTINF:2.0,
seg102.m4s
";

const LL_RECENT: &str = "\
#EXTINF:2.0,
seg103.m4s
#EXTINF:2.0,
seg104.m4s
#EXTINF:2.0,
seg105.m4s
#EXTINF:2.0,
seg106.m4s
#EXT-X-PART:DURATION=0.5,URI=\"part107.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI=\"part107.1.m4s\"
#EXT-X-PART:DURATION=0.5,URI=\"part107.2.m4s\"
#EXT-X-PART:DURATION=0.5,URI=\"part107.3.m4s\"
#EXTINF:2.0,
seg107.m4s
#EXT-X-PART:DURATION=0.5,URI=\"part108.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI=\"part108.1.m4s\"
#EXT-X-PART:DURATION=0.5,URI=\"part108.2.m4s\"
#EXT-X-PART:DURATION=0.5,URI=\"part108.3.m4s\"
#EXTINF:2.0,
seg108.m4s
#EXT-X-PART:DURATION=0.5,URI=\"part109.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI=\"part109.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part109.2.m4s\"
#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=109,LAST-PART=1
";

#[test]
fn golden_low_latency() {
    let pl = low_latency();
    pl.validate().unwrap();
    let text = pl.render();
    assert_eq!(text, format!("{LL_HEADER}{LL_OLD_SEGMENTS}{LL_RECENT}"));

    let s = lint(&text).unwrap();
    assert_eq!((s.segments, s.parts, s.skipped), (9, 10, None));

    let parsed = m3u8_media(&text);
    assert_eq!(parsed.version, Some(9));
    assert_eq!(parsed.target_duration, 2);
    assert_eq!(parsed.media_sequence, 100);
    assert!(parsed.independent_segments);
    assert!(!parsed.end_list);
    assert_eq!(parsed.segments.len(), 9);
    assert!(parsed.segments.iter().all(|s| s.duration == 2.0));
    assert_eq!(parsed.segments[8].uri, "seg108.m4s");
    assert_eq!(parsed.segments[0].map.as_ref().unwrap().uri, "init.mp4");
    // m3u8-rs does not know EXT-X-PART: it keeps the tags, attached to their segment.
    let part_tags: Vec<_> = parsed.segments[7]
        .unknown_tags
        .iter()
        .filter(|t| t.tag == "X-PART")
        .collect();
    assert_eq!(part_tags.len(), 4, "{:?}", parsed.segments[7].unknown_tags);
    assert_eq!(
        parsed.segments[0].program_date_time.unwrap().timestamp(),
        T0 as i64
    );
}

#[test]
fn golden_delta_update() {
    let pl = low_latency();
    assert_eq!(pl.skippable_segments(), 3);
    let text = pl.render_delta();
    assert_eq!(
        text,
        format!("{LL_HEADER}#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n{LL_RECENT}")
    );
    assert_eq!(pl.render_delta_for(SkipRequest::Yes), text);
    // The server does not advertise CAN-SKIP-DATERANGES, so v2 is answered like YES.
    assert_eq!(pl.render_delta_for(SkipRequest::V2), text);
    assert_eq!(pl.render_delta_for(SkipRequest::No), pl.render());

    let s = lint(&text).unwrap();
    assert_eq!((s.segments, s.skipped), (6, Some(3)));
    // EXT-X-SKIP comes right after the header tags, where the first segment would be.
    let lines: Vec<&str> = text.lines().collect();
    let skip_at = lines
        .iter()
        .position(|l| l.starts_with("#EXT-X-SKIP"))
        .unwrap();
    assert_eq!(lines[skip_at - 1], "#EXT-X-MAP:URI=\"init.mp4\"");
    assert_eq!(lines[skip_at + 2], "seg103.m4s");

    let parsed = m3u8_media(&text);
    assert_eq!(
        parsed.media_sequence, 100,
        "skipping does not move the media sequence"
    );
    assert_eq!(parsed.segments.len(), 6);
    // The skipped segments plus the listed ones are the full playlist.
    assert_eq!(s.skipped.unwrap() as usize + s.segments, pl.segments.len());
}

#[test]
fn delta_update_repeats_a_map_from_the_skipped_segments() {
    // A codec change (new init) inside the skipped range: the segments after the skip
    // must still be read with the new init, not the header's.
    let mut pl = low_latency();
    pl.segments[1].discontinuity = true;
    pl.segments[1].map = Some(Map {
        uri: "init-1.mp4".into(),
    });
    assert_eq!(pl.skippable_segments(), 3);
    let text = pl.render_delta();
    let lines: Vec<&str> = text.lines().collect();
    let skip_at = lines
        .iter()
        .position(|l| l.starts_with("#EXT-X-SKIP"))
        .unwrap();
    assert_eq!(lines[skip_at - 1], "#EXT-X-MAP:URI=\"init.mp4\"");
    assert_eq!(lines[skip_at + 1], "#EXT-X-MAP:URI=\"init-1.mp4\"");
    lint(&text).unwrap();
    // Without a map in the skipped range nothing is repeated.
    let plain = low_latency().render_delta();
    assert_eq!(plain.matches("#EXT-X-MAP").count(), 1);
}

#[test]
fn delta_v2_with_skip_dateranges() {
    let mut pl = low_latency();
    pl.server_control.as_mut().unwrap().can_skip_dateranges = true;
    pl.version = 10;
    pl.validate().unwrap();
    let text = pl.render_delta_for(SkipRequest::V2);
    assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:10\n"), "{text}");
    assert!(text.contains(
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,CAN-SKIP-DATERANGES=YES,PART-HOLD-BACK=1.5\n"
    ));
    assert!(text.contains(
        "#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3,RECENTLY-REMOVED-DATERANGES=\"\"\n#EXTINF:2.0,\nseg103.m4s\n"
    ));
    lint(&text).unwrap();
    // A YES request does not get the date-range attribute.
    assert!(pl
        .render_delta()
        .contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n"));
}

#[test]
fn skip_boundary_rule() {
    // 2 s segments, boundary 12 s: a segment is skipped once its end is >= 12 s from the end
    // of the last segment. With n segments, the first n - 6 qualify.
    for (n, want) in [(1, 0), (6, 0), (7, 1), (9, 3), (20, 14)] {
        let mut pl = low_latency();
        pl.segments = (0..n).map(|i| seg(100 + i, 2.0)).collect();
        assert_eq!(pl.skippable_segments(), want as usize, "{n} segments");
        if want == 0 {
            assert_eq!(pl.render_delta(), pl.render());
        }
    }
    // Durations computed from timestamps: sums that land a hair under the boundary.
    let mut pl = low_latency();
    pl.segments = (0..7).map(|i| seg(100 + i, 1.999_999_9)).collect();
    assert_eq!(pl.skippable_segments(), 1);
    // Uneven segments: ends at 14.4, 11.5, 9, 6.5, 4, 1, 0 s from the end.
    let mut pl = low_latency();
    pl.segments = [2.0, 2.9, 2.5, 2.5, 2.5, 3.0, 1.0]
        .iter()
        .enumerate()
        .map(|(i, d)| seg(100 + i as u64, *d))
        .collect();
    assert_eq!(pl.skippable_segments(), 1);
}

#[test]
fn delta_is_refused_with_endlist_or_without_can_skip_until() {
    let mut pl = low_latency();
    pl.preload_hint = None;
    pl.end_list = true;
    assert_eq!(pl.skippable_segments(), 0);
    assert_eq!(pl.render_delta(), pl.render());
    assert!(pl.render().ends_with("#EXT-X-ENDLIST\n"));

    let mut pl = low_latency();
    pl.server_control.as_mut().unwrap().can_skip_until = None;
    assert_eq!(pl.render_delta(), pl.render());
}

const EVENT: &str = "\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:4
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:4.0,
seg0.m4s
#EXTINF:4.0,
seg1.m4s
#EXT-X-GAP
#EXTINF:3.20003,
seg2.m4s
#EXT-X-ENDLIST
";

#[test]
fn golden_event_with_endlist() {
    let mut segments = vec![seg(0, 4.0), seg(1, 4.0), seg(2, 3.200_033)];
    segments[2].gap = true;
    let pl = MediaPlaylist {
        version: 6,
        target_duration: 4,
        playlist_type: Some(PlaylistType::Event),
        map: Some(Map {
            uri: "init.mp4".into(),
        }),
        segments,
        end_list: true,
        ..Default::default()
    };
    pl.validate().unwrap();
    assert_eq!(pl.render(), EVENT);
    lint(EVENT).unwrap();
    let parsed = m3u8_media(EVENT);
    assert!(parsed.end_list);
    assert_eq!(
        parsed.playlist_type,
        Some(m3u8_rs::MediaPlaylistType::Event)
    );
    assert_eq!(parsed.segments.len(), 3);
    assert_eq!(parsed.segments[2].duration, 3.20003);
}

#[test]
fn written_version_is_never_below_what_the_tags_need() {
    let mut pl = low_latency();
    pl.version = 3;
    assert!(pl.render().starts_with("#EXTM3U\n#EXT-X-VERSION:9\n"));
    assert_eq!(
        pl.validate(),
        Err(HlsError::VersionTooLow {
            declared: 3,
            required: 9,
            reason: "CAN-SKIP-UNTIL (EXT-X-SKIP in delta updates)"
        })
    );
    pl.server_control = None;
    assert_eq!(pl.min_version(), 6);
    pl.map = None;
    assert_eq!(pl.min_version(), 3);
    pl.version = 0;
    assert!(pl.render().starts_with("#EXTM3U\n#EXT-X-VERSION:3\n"));
    // A higher declared version is kept.
    pl.version = 12;
    assert!(pl.render().starts_with("#EXTM3U\n#EXT-X-VERSION:12\n"));
}

#[test]
fn target_duration_rounds_to_nearest() {
    for (max, want) in [
        (2.0, 2),
        (2.04, 2),
        (2.49, 2),
        (2.5, 3),
        (1.96, 2),
        (6.006, 6),
        (0.3, 1),
        (0.0, 1),
        (-3.0, 1),
        (f64::NAN, 1),
        (1e12, u32::MAX),
    ] {
        assert_eq!(target_duration_for(max), want, "{max}");
    }
}

#[test]
fn last_msn_and_part() {
    let pl = low_latency();
    assert_eq!(pl.last_msn_and_part(), (109, Some(1)));
    assert_eq!(pl.last_complete_msn(), Some(108));

    let mut pl = low_latency();
    pl.trailing_parts.clear();
    assert_eq!(pl.last_msn_and_part(), (108, Some(3)));

    let mut pl = low_latency();
    pl.segments.clear();
    assert_eq!(pl.last_msn_and_part(), (100, Some(1)));
    pl.trailing_parts.clear();
    assert_eq!(pl.last_msn_and_part(), (99, None));
    assert_eq!(pl.last_complete_msn(), None);
}

#[test]
fn blocking_readiness() {
    let pl = low_latency(); // complete ..=108 (108 has parts 0..=3), 109 has parts 0..=1
                            // _HLS_msn alone waits for a complete segment.
    assert!(pl.is_ready_for(108, None));
    assert!(pl.is_ready_for(50, None));
    assert!(!pl.is_ready_for(109, None));
    // With _HLS_part.
    assert!(pl.is_ready_for(109, Some(0)));
    assert!(pl.is_ready_for(109, Some(1)));
    assert!(!pl.is_ready_for(109, Some(2)));
    assert!(!pl.is_ready_for(110, Some(0)));
    assert!(pl.is_ready_for(108, Some(3)));
    // Past the last part of a complete segment means part 0 of the next one: present.
    assert!(pl.is_ready_for(108, Some(4)));
    assert!(pl.is_ready_for(108, Some(u64::MAX)));
    assert!(pl.is_ready_for(100, Some(9)));

    let mut pl = low_latency();
    pl.trailing_parts.clear();
    assert!(pl.is_ready_for(108, Some(3)));
    assert!(
        !pl.is_ready_for(108, Some(4)),
        "that is 109.0, not there yet"
    );
    assert!(!pl.is_ready_for(109, Some(0)));

    let empty = MediaPlaylist::default();
    assert!(!empty.is_ready_for(0, None));
    assert!(!empty.is_ready_for(0, Some(0)));
}

#[test]
fn drop_old_parts_keeps_three_target_durations() {
    let mut pl = low_latency();
    for (i, s) in pl.segments.iter_mut().enumerate() {
        s.parts = parts(100 + i as u64, 4);
    }
    // Trailing parts: 1 s. Segment ends from the end: 108 -> 1, 107 -> 3, 106 -> 5,
    // 105 -> 7 s; target 2 s, so parts go once a segment ends more than 6 s back.
    pl.drop_old_parts();
    let with_parts: Vec<u64> = pl
        .segments
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.parts.is_empty())
        .map(|(i, _)| 100 + i as u64)
        .collect();
    assert_eq!(with_parts, [106, 107, 108]);
    assert_eq!(pl.trailing_parts.len(), 2);
    pl.validate().unwrap();
}

#[test]
fn validate_reports_each_rule() {
    let check = |f: &dyn Fn(&mut MediaPlaylist)| {
        let mut pl = low_latency();
        f(&mut pl);
        pl.validate().unwrap_err()
    };
    assert!(matches!(
        check(&|pl| pl.segments[3].duration = 2.6),
        HlsError::SegmentExceedsTargetDuration {
            msn: 103,
            target: 2,
            ..
        }
    ));
    assert!(matches!(
        check(&|pl| pl.segments[3].duration = f64::NAN),
        HlsError::InvalidDuration { .. }
    ));
    assert!(matches!(
        check(&|pl| pl.trailing_parts[1].duration = 0.6),
        HlsError::PartExceedsPartTarget { .. }
    ));
    assert!(matches!(
        check(&|pl| pl.part_target = None),
        HlsError::MissingPartInf
    ));
    assert!(matches!(
        check(&|pl| pl.server_control.as_mut().unwrap().part_hold_back = None),
        HlsError::MissingPartHoldBack
    ));
    assert!(matches!(
        check(&|pl| pl.server_control.as_mut().unwrap().part_hold_back = Some(0.9)),
        HlsError::PartHoldBackTooSmall { .. }
    ));
    assert!(matches!(
        check(&|pl| pl.server_control.as_mut().unwrap().hold_back = Some(5.9)),
        HlsError::HoldBackTooSmall { .. }
    ));
    assert!(matches!(
        check(&|pl| pl.server_control.as_mut().unwrap().can_skip_until = Some(11.0)),
        HlsError::SkipBoundaryTooSmall { .. }
    ));
    assert!(matches!(
        check(&|pl| {
            let sc = pl.server_control.as_mut().unwrap();
            sc.can_skip_until = None;
            sc.can_skip_dateranges = true;
            pl.version = 10;
        }),
        HlsError::SkipDaterangesWithoutSkipUntil
    ));
    assert!(matches!(
        check(&|pl| pl.end_list = true),
        HlsError::PreloadHintAfterEndList
    ));
    assert!(matches!(
        check(&|pl| pl.segments[0].uri = "a\nb".into()),
        HlsError::InvalidText { .. }
    ));
    assert!(matches!(
        check(&|pl| pl.segments[0].uri = "#EXT-X-ENDLIST".into()),
        HlsError::InvalidText { .. }
    ));
    assert!(matches!(
        check(&|pl| pl.trailing_parts[0].uri = "x\"y".into()),
        HlsError::InvalidText { .. }
    ));
    assert!(matches!(
        check(&|pl| pl.segments[1].title = Some("a\r\n#EXT-X-ENDLIST".into())),
        HlsError::InvalidText { .. }
    ));
    // Allowed: HOLD-BACK exactly 3 x target, PART-HOLD-BACK exactly 2 x part target.
    let mut pl = low_latency();
    let sc = pl.server_control.as_mut().unwrap();
    sc.hold_back = Some(6.0);
    sc.part_hold_back = Some(1.0);
    pl.validate().unwrap();
    // Messages carry the numbers.
    let e = check(&|pl| pl.server_control.as_mut().unwrap().hold_back = Some(5.9));
    assert_eq!(
        e.to_string(),
        "HOLD-BACK=5.9 is less than 3 x EXT-X-TARGETDURATION (6)"
    );
}

#[test]
fn hold_back_written_when_set_and_empty_server_control_omitted() {
    let mut pl = plain();
    pl.server_control = Some(ServerControl {
        hold_back: Some(6.0),
        ..Default::default()
    });
    assert!(pl
        .render()
        .contains("#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:HOLD-BACK=6.0\n"));
    pl.server_control = Some(ServerControl::default());
    assert_eq!(pl.render(), PLAIN);
}

#[test]
fn a_new_map_and_the_tags_of_the_segment_in_progress_precede_its_parts() {
    let mut pl = MediaPlaylist {
        version: 9,
        target_duration: 2,
        map: Some(Map {
            uri: "init-0.mp4".into(),
        }),
        part_target: Some(0.5),
        ..Default::default()
    };
    let mut s = seg(0, 2.0);
    s.discontinuity = true;
    s.map = Some(Map {
        uri: "init-1.mp4".into(),
    });
    pl.segments.push(s);
    pl.trailing_parts.push(part(1, 0));
    pl.trailing_discontinuity = true;
    pl.trailing_map = Some(Map {
        uri: "init-2.mp4".into(),
    });
    pl.trailing_program_date_time = Some(std::time::UNIX_EPOCH);
    let text = pl.render();
    let want = "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXTINF:2.0,\nseg0.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-2.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:00.000Z\n#EXT-X-PART:DURATION=0.5,URI=\"part1.0.m4s\",INDEPENDENT=YES\n";
    assert!(text.contains(want), "{text}");
}
