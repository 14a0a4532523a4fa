//! The API's view of recordings ([`starling_api::RecordingStore`]) over this node's
//! origin, which reads them from the object store: the API crate knows neither.

use std::sync::Arc;

use starling_api::{
    recordings::RecordingsFuture, RecordingItem, RecordingPage, RecordingStore, RecordingSummary,
    RecordingsError,
};
use starling_origin::{parse_session, Origin, Recording, RecordingError};

/// The origin's recordings, for the API.
#[derive(Debug)]
pub struct OriginRecordings(pub Arc<Origin>);

impl RecordingStore for OriginRecordings {
    fn list<'a>(
        &'a self,
        channel: &'a str,
        offset: usize,
        limit: usize,
    ) -> RecordingsFuture<'a, RecordingPage> {
        Box::pin(async move {
            let list = self
                .0
                .recordings(channel, offset, limit)
                .await
                .map_err(refusal)?;
            let items = list
                .recordings
                .into_iter()
                .map(|r| match r {
                    Ok(r) => RecordingItem::Recording(summary(channel, r)),
                    Err(e) => RecordingItem::Unreadable {
                        run: e.run().unwrap_or_default().to_owned(),
                        error: e.to_string(),
                    },
                })
                .collect();
            Ok(RecordingPage {
                items,
                more: list.truncated,
            })
        })
    }

    fn delete<'a>(&'a self, channel: &'a str, run: &'a str) -> RecordingsFuture<'a, ()> {
        Box::pin(async move {
            let run = parse_session(run).ok_or(RecordingsError::NotFound)?;
            self.0.delete_recording(channel, run).await.map_err(refusal)
        })
    }
}

fn summary(channel: &str, r: Recording) -> RecordingSummary {
    RecordingSummary {
        playback_url: format!("/vod/{channel}/{}/index.m3u8", r.session),
        started_at: starling_live_state::state::unix_ms(r.started_at) as i64,
        duration_secs: r.duration_secs,
        bytes: r.bytes,
        segments: r.segments as u64,
        renditions: r.renditions,
        sessions: r.sessions,
        live: r.live,
        run: r.session,
    }
}

fn refusal(e: RecordingError) -> RecordingsError {
    match e {
        RecordingError::NotFound { .. } => RecordingsError::NotFound,
        RecordingError::Live { .. } | RecordingError::StillWriting { .. } => {
            RecordingsError::Conflict(e.to_string())
        }
        e => RecordingsError::Unavailable(e.to_string()),
    }
}
