//! Packager output applied to a channel by hand: the playlist of a rendition that skipped
//! numbers, and the fixed target duration.

use std::sync::Arc;

use bytes::Bytes;
use starling_hls as hls;
use starling_media::TrackKind;
use starling_packager::{Output, RenditionInfo};

use super::*;
use crate::{
    http::{build_playlist, held_segment, Held, Listing},
    LocalDirStore,
};

fn info(name: &'static str, kind: TrackKind) -> RenditionInfo {
    RenditionInfo {
        name,
        kind,
        codec: "x".to_owned(),
        timescale: 1000,
        width: None,
        height: None,
        frame_rate: None,
        sample_rate: None,
        channels: None,
    }
}

/// One 0.3 s part, then its segment's end.
fn segment(rendition: &'static str, msn: u64, duration: f64) -> [Output; 2] {
    let now = SystemTime::now();
    [
        Output::Part {
            rendition,
            msn,
            index: 0,
            duration,
            independent: true,
            data: Bytes::from_static(b"part"),
            first_arrival: now,
        },
        Output::SegmentEnd {
            rendition,
            msn,
            duration,
            program_date_time: now,
            discontinuity: false,
        },
    ]
}

#[tokio::test]
async fn skipped_audio_numbers_are_listed_as_gaps() {
    let dir = std::env::temp_dir().join(format!("starling-gaps-{}", std::process::id()));
    let origin = Origin::new(OriginConfig::default(), Arc::new(LocalDirStore::new(&dir)));
    let ch = Arc::new(Channel::new(
        "gaps",
        crate::ChannelSettings::defaults(origin.config()),
    ));
    let mut outputs = vec![
        Output::Init {
            rendition: info("source", TrackKind::Video),
            init: Bytes::from_static(b"init"),
        },
        Output::Init {
            rendition: info("audio", TrackKind::Audio),
            init: Bytes::from_static(b"init"),
        },
    ];
    for msn in 0..6 {
        outputs.extend(segment("source", msn, 0.3));
        // The audio was silent for segments 2 and 3.
        if !(2..4).contains(&msn) {
            outputs.extend(segment("audio", msn, 0.3));
        }
    }
    origin.apply(&ch, outputs);
    let st = lock(&ch.inner);
    let audio = st.rendition("audio").unwrap();
    assert_eq!(audio.target_duration, 3, "fixed by the configuration");
    for msn in 0..6 {
        assert_eq!(audio.segment(msn).map(|s| s.msn), Some(msn));
    }
    assert!(matches!(
        held_segment(&st, "audio", st.session, 2),
        Held::Gap
    ));
    assert!(matches!(
        held_segment(&st, "audio", st.session, 4),
        Held::Complete(Some(_))
    ));
    let (_, listing) = Listing::capture(&st, "audio");
    let text = build_playlist(&listing.unwrap(), origin.config()).render();
    hls::lint::lint(&text).unwrap();
    assert_eq!(text.matches("#EXT-X-GAP").count(), 2, "{text}");
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0"), "{text}");
    let uris: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with(".m4s") && !l.starts_with('#'))
        .collect();
    assert_eq!(uris.len(), 6, "{text}");
    for (n, uri) in uris.iter().enumerate() {
        assert!(uri.ends_with(&format!("/{n}.m4s")), "{uri}");
    }
    drop(st);
    let _ = std::fs::remove_dir_all(&dir);
}
