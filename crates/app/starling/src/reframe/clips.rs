//! A highlight's clip: once its end is packaged, the segments of the channel's
//! recording that hold it (`Channel::clip_span`: from the keyframe at or before its
//! start to the end of the segment its end falls in) are its clip, played from the
//! recording at `/vod/{channel}/{run}/clip-{first}-{last}.m3u8` (and `-vertical`), and
//! announced (`clip.created`) to the channel's organisation's webhooks.

use std::{sync::Arc, time::Duration};

use serde_json::json;
use starling_control::{Db, WebhookEvent};
use starling_origin::{ClipSpan, Origin, SpanError};
use starling_packager::VERTICAL_RENDITION;
use starling_reframe::Highlight;
use tracing::warn;

use super::{status::Clip, Reframes};
use crate::webhooks::Emitter;

/// How long a highlight's end may take to be packaged (its segment completes a segment
/// after it at most; a stalled publish takes longer and gets no clip).
const CUT_WAIT: Duration = Duration::from_secs(60);

/// What cutting clips needs.
pub(super) struct Cutter {
    pub origin: Arc<Origin>,
    pub reframes: Arc<Reframes>,
    pub db: Db,
    pub emitter: Emitter,
}

impl Cutter {
    /// Cuts `h`'s clip once it is packaged (waiting at most [`CUT_WAIT`]).
    pub(super) async fn cut(self: Arc<Self>, channel: String, h: Highlight) {
        let deadline = tokio::time::Instant::now() + CUT_WAIT;
        let span = loop {
            let Some(ch) = self.origin.channel(&channel) else {
                return;
            };
            match ch.clip_span(h.start, h.end) {
                Ok(span) => break span,
                Err(SpanError::NotYet) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    self.reframes.clip_failed(&channel, e.to_string());
                    return;
                }
            }
        };
        let clip = clip_of(&channel, &span, &h, crate::auth::now_ms());
        self.reframes.clip(&channel, clip.clone());
        // Control-plane channels belong to an organisation; config-file ones send none.
        match self.db.channel_by_name(&channel).await {
            Ok(Some(ch)) => {
                self.emitter.emit(
                    &ch.org_id,
                    WebhookEvent::ClipCreated,
                    json!({ "channel": ch.name, "channel_id": ch.id, "clip": clip }),
                );
            }
            Ok(None) => {}
            Err(e) => {
                warn!(%channel, error = %e, "no clip.created webhook: the channel lookup failed")
            }
        }
    }
}

fn clip_of(channel: &str, span: &ClipSpan, h: &Highlight, now_ms: i64) -> Clip {
    let base = format!(
        "/vod/{channel}/{}/clip-{}-{}",
        span.run, span.first, span.last
    );
    Clip {
        id: format!("{}-{}-{}", span.run, span.first, span.last),
        run: span.run.clone(),
        first_segment: span.first,
        last_segment: span.last,
        start_ms: span.start / 90,
        end_ms: span.end / 90,
        peak_ms: h.peak / 90,
        duration_secs: ((span.end - span.start) as f64 / 90_000.0 * 1000.0).round() / 1000.0,
        cause: h.cause,
        score: (h.score * 100.0).round() / 100.0,
        playlist: format!("{base}.m3u8"),
        vertical_playlist: span
            .renditions
            .contains(&VERTICAL_RENDITION)
            .then(|| format!("{base}-vertical.m3u8")),
        created_at: now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clip_names_its_playlists_and_whole_segment_times() {
        let span = ClipSpan {
            run: "0000018c2f3a4b5c".into(),
            first: 8,
            last: 16,
            start: 16 * 90_000,
            end: 34 * 90_000,
            renditions: vec!["source", "360p", VERTICAL_RENDITION],
        };
        let h = Highlight {
            peak: 26 * 90_000 + 45,
            start: 16 * 90_000 + 45,
            end: 31 * 90_000 + 45,
            score: 8.614,
            cause: "motion",
        };
        let c = clip_of("ch", &span, &h, 7);
        assert_eq!(c.id, "0000018c2f3a4b5c-8-16");
        assert_eq!(c.playlist, "/vod/ch/0000018c2f3a4b5c/clip-8-16.m3u8");
        assert_eq!(
            c.vertical_playlist.as_deref(),
            Some("/vod/ch/0000018c2f3a4b5c/clip-8-16-vertical.m3u8")
        );
        assert_eq!((c.start_ms, c.end_ms, c.peak_ms), (16_000, 34_000, 26_000));
        assert_eq!((c.duration_secs, c.score), (18.0, 8.61));
        let landscape = ClipSpan {
            renditions: vec!["source"],
            ..span
        };
        assert_eq!(clip_of("ch", &landscape, &h, 7).vertical_playlist, None);
    }
}
