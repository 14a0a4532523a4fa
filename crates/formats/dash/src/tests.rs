#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn at(secs: u64, millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
}

fn seg(start: u64, duration: u64) -> TimelineSegment {
    TimelineSegment { start, duration }
}

fn video(timeline: Vec<TimelineSegment>) -> AdaptationSet {
    AdaptationSet {
        id: 0,
        content: ContentType::Video,
        lang: None,
        representations: vec![Representation {
            id: "source".into(),
            bandwidth: 2_200_000,
            codecs: "avc1.64001f".into(),
            width: Some(1280),
            height: Some(720),
            frame_rate: Some((30, 1)),
            audio_sampling_rate: None,
            audio_channels: None,
            template: SegmentTemplate {
                timescale: 90_000,
                initialization: "$RepresentationID$/1a2b/init-0.mp4".into(),
                media: "$RepresentationID$/1a2b/$Number$.m4s".into(),
                start_number: 7,
                presentation_time_offset: 0,
                timeline,
                availability_time_offset: None,
                availability_time_complete: None,
            },
        }],
    }
}

fn audio() -> AdaptationSet {
    AdaptationSet {
        id: 1,
        content: ContentType::Audio,
        lang: Some("en".into()),
        representations: vec![Representation {
            id: "audio".into(),
            bandwidth: 130_000,
            codecs: "mp4a.40.2".into(),
            width: None,
            height: None,
            frame_rate: None,
            audio_sampling_rate: Some(48_000),
            audio_channels: Some(2),
            template: SegmentTemplate {
                timescale: 48_000,
                initialization: "$RepresentationID$/1a2b/init-0.mp4".into(),
                media: "$RepresentationID$/1a2b/$Number$.m4s".into(),
                start_number: 7,
                presentation_time_offset: 0,
                timeline: vec![seg(0, 96_256), seg(96_256, 95_232)],
                availability_time_offset: None,
                availability_time_complete: None,
            },
        }],
    }
}

/// The template of an adaptation set's only representation.
fn template(set: &mut AdaptationSet) -> &mut SegmentTemplate {
    &mut set.representations[0].template
}

fn live(periods: Vec<Period>) -> Mpd {
    Mpd {
        presentation: Presentation::Dynamic {
            availability_start_time: at(1_795_308_000, 0),
            publish_time: at(1_795_308_012, 345),
            minimum_update_period: Duration::from_secs(2),
            time_shift_buffer_depth: Duration::from_secs(7200),
            suggested_presentation_delay: Duration::from_millis(3500),
        },
        min_buffer_time: Duration::from_secs(2),
        utc_timing: Some("/api/v1/time?format=iso&x=1".into()),
        target_latency: Some(Duration::from_millis(2500)),
        periods,
    }
}

fn period(id: &str, start: Duration, sets: Vec<AdaptationSet>) -> Period {
    Period {
        id: id.into(),
        start,
        adaptation_sets: sets,
    }
}

/// The written MPD, parsed back by an independent XML parser.
fn parse(xml: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}:\n{xml}"))
}

fn elements<'a>(doc: &'a roxmltree::Document<'a>, name: &str) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.tag_name().name() == name)
        .collect()
}

#[test]
fn a_live_mpd_has_what_a_player_needs_to_find_the_live_edge() {
    let timeline = vec![seg(0, 180_000), seg(180_000, 180_000)];
    let xml = live(vec![period(
        "p0",
        Duration::ZERO,
        vec![video(timeline), audio()],
    )])
    .render()
    .unwrap();
    let doc = parse(&xml);
    let mpd = doc.root_element();
    assert_eq!(mpd.tag_name().name(), "MPD");
    assert_eq!(
        mpd.tag_name().namespace(),
        Some("urn:mpeg:dash:schema:mpd:2011")
    );
    assert_eq!(mpd.attribute("type"), Some("dynamic"));
    assert_eq!(
        mpd.attribute("profiles"),
        Some("urn:mpeg:dash:profile:isoff-live:2011")
    );
    assert_eq!(
        mpd.attribute("availabilityStartTime"),
        Some("2026-11-22T00:40:00.000Z")
    );
    assert_eq!(
        mpd.attribute("publishTime"),
        Some("2026-11-22T00:40:12.345Z")
    );
    assert_eq!(mpd.attribute("minimumUpdatePeriod"), Some("PT2S"));
    assert_eq!(mpd.attribute("timeShiftBufferDepth"), Some("PT7200S"));
    assert_eq!(mpd.attribute("suggestedPresentationDelay"), Some("PT3.5S"));
    assert_eq!(mpd.attribute("mediaPresentationDuration"), None);
    let latency = elements(&doc, "Latency");
    assert_eq!(latency[0].attribute("target"), Some("2500"));
    let utc = elements(&doc, "UTCTiming");
    assert_eq!(
        utc[0].attribute("schemeIdUri"),
        Some("urn:mpeg:dash:utc:http-iso:2014")
    );
    // Escaped in the XML, whole again once parsed.
    assert!(xml.contains("format=iso&amp;x=1"), "{xml}");
    assert_eq!(
        utc[0].attribute("value"),
        Some("/api/v1/time?format=iso&x=1")
    );

    let sets = elements(&doc, "AdaptationSet");
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0].attribute("contentType"), Some("video"));
    assert_eq!(sets[0].attribute("mimeType"), Some("video/mp4"));
    assert_eq!(sets[1].attribute("lang"), Some("en"));
    let reps = elements(&doc, "Representation");
    assert_eq!(reps[0].attribute("codecs"), Some("avc1.64001f"));
    assert_eq!(reps[0].attribute("frameRate"), Some("30"));
    assert_eq!(reps[0].attribute("width"), Some("1280"));
    assert_eq!(reps[1].attribute("audioSamplingRate"), Some("48000"));
    let channels = elements(&doc, "AudioChannelConfiguration");
    assert_eq!(channels[0].attribute("value"), Some("2"));
    let templates = elements(&doc, "SegmentTemplate");
    assert_eq!(templates[0].attribute("timescale"), Some("90000"));
    assert_eq!(templates[0].attribute("startNumber"), Some("7"));
    assert_eq!(
        templates[0].attribute("media"),
        Some("$RepresentationID$/1a2b/$Number$.m4s")
    );
    assert_eq!(templates[1].attribute("timescale"), Some("48000"));
}

#[test]
fn an_ended_event_is_static_with_its_duration() {
    let mut mpd = live(vec![period(
        "p0",
        Duration::ZERO,
        vec![video(vec![seg(0, 180_000)])],
    )]);
    mpd.presentation = Presentation::Static {
        duration: Duration::from_millis(62_334),
    };
    mpd.utc_timing = None;
    mpd.target_latency = None;
    let xml = mpd.render().unwrap();
    let doc = parse(&xml);
    let root = doc.root_element();
    assert_eq!(root.attribute("type"), Some("static"));
    assert_eq!(
        root.attribute("mediaPresentationDuration"),
        Some("PT62.334S")
    );
    for live_only in [
        "availabilityStartTime",
        "minimumUpdatePeriod",
        "timeShiftBufferDepth",
        "suggestedPresentationDelay",
    ] {
        assert_eq!(root.attribute(live_only), None, "{live_only}");
    }
    assert!(elements(&doc, "UTCTiming").is_empty());
    assert!(elements(&doc, "ServiceDescription").is_empty());
}

/// Equal durations that follow each other become one `S` with `r`; a new duration or a
/// gap starts a new one, the gap with its own `t`. Expanding the runs gives back the
/// segments, start and duration each.
#[test]
fn the_timeline_is_run_length_coded_and_expands_to_the_segments() {
    let segments = vec![
        seg(1_000, 180_000),
        seg(181_000, 180_000),
        seg(361_000, 180_000),
        seg(541_000, 171_000),
        // 1 s missing (a gap in the source), then on.
        seg(802_000, 180_000),
        seg(982_000, 180_000),
    ];
    let xml = live(vec![period(
        "p0",
        Duration::ZERO,
        vec![video(segments.clone())],
    )])
    .render()
    .unwrap();
    let doc = parse(&xml);
    let s: Vec<(Option<u64>, u64, u64)> = elements(&doc, "S")
        .iter()
        .map(|n| {
            let num = |a| n.attribute(a).map(|v: &str| v.parse::<u64>().unwrap());
            (num("t"), num("d").unwrap(), num("r").unwrap_or(0))
        })
        .collect();
    assert_eq!(
        s,
        vec![
            (Some(1_000), 180_000, 2),
            (None, 171_000, 0),
            (Some(802_000), 180_000, 1)
        ]
    );
    // As a player reads it.
    let mut expanded = Vec::new();
    let mut next = 0;
    for (t, d, r) in s {
        next = t.unwrap_or(next);
        for _ in 0..=r {
            expanded.push(seg(next, d));
            next += d;
        }
    }
    assert_eq!(expanded, segments);
}

#[test]
fn low_latency_attributes_are_written_when_set() {
    let mut set = video(vec![seg(0, 180_000)]);
    template(&mut set).availability_time_offset = Some(1.666);
    template(&mut set).availability_time_complete = Some(false);
    let xml = live(vec![period("p0", Duration::ZERO, vec![set])])
        .render()
        .unwrap();
    let doc = parse(&xml);
    let t = &elements(&doc, "SegmentTemplate")[0];
    assert_eq!(t.attribute("availabilityTimeOffset"), Some("1.666"));
    assert_eq!(t.attribute("availabilityTimeComplete"), Some("false"));
}

/// A publish session or a discontinuity starts a new period, with its own start and
/// presentation time offset, and the numbers go on.
#[test]
fn periods_follow_each_other() {
    let first = video(vec![seg(0, 180_000), seg(180_000, 180_000)]);
    let mut second = video(vec![seg(5_400_000, 180_000)]);
    template(&mut second).start_number = 9;
    template(&mut second).presentation_time_offset = 5_400_000;
    template(&mut second).media = "$RepresentationID$/3c4d/$Number$.m4s".into();
    let xml = live(vec![
        period("s1", Duration::ZERO, vec![first]),
        period("s2", Duration::from_millis(4_250), vec![second]),
    ])
    .render()
    .unwrap();
    let doc = parse(&xml);
    let periods = elements(&doc, "Period");
    assert_eq!(periods.len(), 2);
    assert_eq!(periods[1].attribute("id"), Some("s2"));
    assert_eq!(periods[1].attribute("start"), Some("PT4.25S"));
    let t = &elements(&doc, "SegmentTemplate")[1];
    assert_eq!(t.attribute("startNumber"), Some("9"));
    assert_eq!(t.attribute("presentationTimeOffset"), Some("5400000"));
}

#[test]
fn what_cannot_be_written_is_refused_with_the_reason() {
    let ok = || {
        live(vec![period(
            "p0",
            Duration::ZERO,
            vec![video(vec![seg(0, 90)])],
        )])
    };

    let mut m = ok();
    template(&mut m.periods[0].adaptation_sets[0]).media = "segment.m4s".into();
    assert!(matches!(
        m.render(),
        Err(DashError::Invalid { field: "media", .. })
    ));

    let mut m = ok();
    m.periods[0].adaptation_sets[0].representations[0].id = "a b".into();
    let err = m.render().unwrap_err();
    assert!(
        err.to_string().contains("Representation id \"a b\""),
        "{err}"
    );

    let mut m = ok();
    m.periods[0].id = String::new();
    assert!(m.render().is_err());

    let mut m = ok();
    template(&mut m.periods[0].adaptation_sets[0]).timeline = vec![seg(0, 100), seg(50, 100)];
    assert_eq!(
        m.render(),
        Err(DashError::TimelineOverlap {
            representation: "source".into(),
            start: 50,
            previous_end: 100
        })
    );

    let mut m = ok();
    template(&mut m.periods[0].adaptation_sets[0]).timeline = vec![seg(0, 0)];
    assert!(m.render().is_err());

    let mut m = ok();
    template(&mut m.periods[0].adaptation_sets[0]).timescale = 0;
    assert!(m.render().is_err());

    let mut m = ok();
    template(&mut m.periods[0].adaptation_sets[0]).initialization = "init\u{1}.mp4".into();
    assert!(m.render().is_err());

    let mut m = ok();
    template(&mut m.periods[0].adaptation_sets[0]).availability_time_offset = Some(f64::NAN);
    assert!(m.render().is_err());
}

#[test]
fn markup_in_values_stays_text() {
    let mut m = live(vec![period(
        "p0",
        Duration::ZERO,
        vec![video(vec![seg(0, 9)])],
    )]);
    m.utc_timing = Some("/time?a=<b>&c=\"d\"&e='f'".into());
    let xml = m.render().unwrap();
    let doc = parse(&xml);
    assert_eq!(
        elements(&doc, "UTCTiming")[0].attribute("value"),
        Some("/time?a=<b>&c=\"d\"&e='f'")
    );
}

#[test]
fn durations_are_seconds_with_at_most_three_decimals() {
    assert_eq!(duration(Duration::ZERO), "PT0S");
    assert_eq!(duration(Duration::from_millis(334)), "PT0.334S");
    assert_eq!(duration(Duration::from_micros(333_333)), "PT0.333S");
    assert_eq!(duration(Duration::from_secs(90)), "PT90S");
    assert_eq!(duration(Duration::from_millis(2_500)), "PT2.5S");
}

#[test]
fn fractional_frame_rates_are_written_as_fractions() {
    let mut set = video(vec![seg(0, 3003)]);
    set.representations[0].frame_rate = Some((30_000, 1001));
    let xml = live(vec![period("p0", Duration::ZERO, vec![set])])
        .render()
        .unwrap();
    let doc = parse(&xml);
    assert_eq!(
        elements(&doc, "Representation")[0].attribute("frameRate"),
        Some("30000/1001")
    );
}

/// A ladder: one adaptation set, each rung with its own template (a rung that joined
/// later starts at a later number), and the set says the largest picture and rate.
#[test]
fn each_representation_of_a_ladder_has_its_own_template() {
    let mut set = video(vec![seg(0, 180_000), seg(180_000, 180_000)]);
    let mut rung = set.representations[0].clone();
    rung.id = "480p".into();
    rung.bandwidth = 1_000_000;
    rung.width = Some(854);
    rung.height = Some(480);
    rung.frame_rate = Some((30_000, 1001));
    rung.template.start_number = 8;
    rung.template.timeline = vec![seg(180_000, 180_000)];
    set.representations.push(rung);
    set.representations[0].frame_rate = Some((25, 1));
    let xml = live(vec![period("p0", Duration::ZERO, vec![set, audio()])])
        .render()
        .unwrap();
    let doc = parse(&xml);
    let sets = elements(&doc, "AdaptationSet");
    assert_eq!(sets[0].attribute("maxWidth"), Some("1280"));
    assert_eq!(sets[0].attribute("maxHeight"), Some("720"));
    assert_eq!(sets[0].attribute("maxFrameRate"), Some("30000/1001"));
    assert_eq!(sets[0].attribute("segmentAlignment"), Some("true"));
    assert_eq!(sets[0].attribute("startWithSAP"), Some("1"));
    // One representation: nothing to announce.
    assert_eq!(sets[1].attribute("maxWidth"), None);
    for set in &sets {
        assert!(
            !set.children().any(|n| n.has_tag_name("SegmentTemplate")),
            "{xml}"
        );
    }
    // (id, startNumber, first t, entries) of each representation's own template.
    let reps: Vec<(String, String, String, usize)> = elements(&doc, "Representation")
        .iter()
        .map(|r| {
            let t = r
                .children()
                .find(|n| n.has_tag_name("SegmentTemplate"))
                .unwrap_or_else(|| panic!("no template in {r:?}:\n{xml}"));
            let s: Vec<_> = t.descendants().filter(|n| n.has_tag_name("S")).collect();
            (
                r.attribute("id").unwrap().to_owned(),
                t.attribute("startNumber").unwrap().to_owned(),
                s[0].attribute("t").unwrap().to_owned(),
                s.len(),
            )
        })
        .collect();
    let row = |id: &str, n: &str, t: &str, len| (id.to_owned(), n.to_owned(), t.to_owned(), len);
    assert_eq!(
        reps,
        [
            row("source", "7", "0", 1),
            row("480p", "8", "180000", 1),
            row("audio", "7", "0", 2)
        ]
    );
    // The audio's channel configuration comes before its template, as the schema orders.
    let audio = &elements(&doc, "Representation")[2];
    let children: Vec<&str> = audio
        .children()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name())
        .collect();
    assert_eq!(children, ["AudioChannelConfiguration", "SegmentTemplate"]);
}

/// A timeline that goes back in time is reported with the representation it belongs to.
#[test]
fn an_overlap_names_its_representation() {
    let mut set = video(vec![seg(0, 180_000)]);
    let mut rung = set.representations[0].clone();
    rung.id = "720p".into();
    rung.template.timeline = vec![seg(0, 100), seg(50, 100)];
    set.representations.push(rung);
    let err = live(vec![period("p0", Duration::ZERO, vec![set])])
        .render()
        .unwrap_err();
    assert_eq!(
        err,
        DashError::TimelineOverlap {
            representation: "720p".into(),
            start: 50,
            previous_end: 100
        }
    );
}
