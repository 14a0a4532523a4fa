//! Poster images of a channel: the origin holds the newest ones it was given and serves
//! them at `/live/{channel}/thumb.jpg` (poster) and `/live/{channel}/thumb-small.jpg`
//! (the channel list's size). Who renders them (the binary's thumbnailer, from the
//! segment [`Origin::keyframe_segment`] hands out) is not the origin's business.

use std::{sync::OnceLock, time::SystemTime};

use bytes::Bytes;
use starling_media::TrackKind;

use crate::live::{lock, Origin};

/// A channel's newest pictures, made from segment `msn` of `session`.
#[derive(Debug, Clone)]
pub struct Thumbnails {
    pub session: u64,
    pub msn: u64,
    pub poster: Bytes,
    pub small: Bytes,
    pub made: SystemTime,
}

/// The newest complete video segment held in memory that starts with a keyframe, with
/// its init section: what a thumbnail is decoded from.
#[derive(Debug, Clone)]
pub struct KeyframeSegment {
    pub session: u64,
    pub msn: u64,
    pub init: Bytes,
    pub segment: Bytes,
}

/// Why a node has no thumbnails at all (e.g. no ffmpeg), said by every thumbnail URL.
#[derive(Debug, Default)]
pub(crate) struct ThumbnailsOff(OnceLock<String>);

impl Origin {
    /// See [`KeyframeSegment`]; `None` when the channel has no such segment in memory.
    pub fn keyframe_segment(&self, channel: &str) -> Option<KeyframeSegment> {
        let ch = self.channel(channel)?;
        let st = lock(&ch.inner);
        let r = st
            .renditions
            .iter()
            .find(|r| r.info.kind == TrackKind::Video)?;
        let seg = r.segments.iter().rev().find(|s| {
            s.complete
                && !s.gap
                && s.data.is_some()
                && s.parts.first().is_some_and(|p| p.independent)
        })?;
        let init = r.inits.get(seg.init)?.1.clone();
        Some(KeyframeSegment {
            session: seg.session,
            msn: seg.msn,
            init,
            segment: seg.data.clone()?,
        })
    }

    /// Replaces `channel`'s pictures (kept in memory, also after the run ends).
    pub fn set_thumbnails(&self, channel: &str, t: Thumbnails) {
        if let Some(ch) = self.channel(channel) {
            *lock(&ch.thumbnails) = Some(t);
        }
    }

    /// This node makes no thumbnails, for `reason` (said by every thumbnail request).
    pub fn thumbnails_unavailable(&self, reason: String) {
        let _ = self.thumbnails_off.0.set(reason);
    }

    pub(crate) fn thumbnails_off_reason(&self) -> Option<&str> {
        self.thumbnails_off.0.get().map(String::as_str)
    }
}
