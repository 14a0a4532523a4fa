//! The transcoder's way in and out: the source video as packaged ([`Origin::tap`]), and
//! rungs coming back as renditions of the same channel ([`Origin::rung_feed`]).
//!
//! The tap hands out samples on the packager's media timeline, after its clock-jump
//! rebasing and clamping, so the transcoder never sees the source's timestamp faults
//! and its rungs land on the same times as the source. The tap never blocks the live
//! path: a transcoder that lets [`TAP_CAPACITY`] events pile up is cut off (its
//! receiver ends), and its supervisor starts it again.

use std::{
    sync::{Arc, Mutex},
    time::SystemTime,
};

use starling_media::Stream;
use starling_packager::{Follow, Input, Output, Packager, Sample};
use tokio::sync::mpsc;
use tracing::warn;

use crate::live::{lock, Channel, Origin};

/// Events a tap holds before its reader counts as fallen behind (about 10 s of 30 fps
/// video with 48 kHz AAC: 77 samples a second).
pub const TAP_CAPACITY: usize = 768;

/// What a tap receives.
#[derive(Debug, Clone)]
pub enum TapEvent {
    /// The source's tracks (first, or changed); the samples that follow use its video
    /// track's configuration.
    Stream(Arc<Stream>),
    /// A sample as packaged (video or audio), and where media time 0 is on the wall
    /// clock.
    Sample {
        sample: Sample,
        availability_start: SystemTime,
    },
    /// The publish ended (the packager flushed everything before).
    End,
}

/// A channel's tap: the newest stream (for a reader that arrives mid-publish) and the
/// reader, if there is one.
#[derive(Debug, Default)]
pub(crate) struct Tap {
    stream: Option<Arc<Stream>>,
    /// The samples of the segment in progress, for a reader that arrives mid-segment
    /// (it starts at once rather than at the next segment); emptied when it grows past
    /// [`REPLAY_MAX`] (a long GOP: the reader then waits for the next segment).
    segment: Vec<TapEvent>,
    tx: Option<mpsc::Sender<TapEvent>>,
}

/// Samples of the segment in progress kept for a new reader, at most.
const REPLAY_MAX: usize = TAP_CAPACITY / 2;

impl Tap {
    fn send(&mut self, channel: &str, event: TapEvent) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!(%channel, capacity = TAP_CAPACITY, "origin: the transcoder fell behind its tap; cutting it off");
                self.tx = None;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.tx = None,
        }
    }
}

impl Channel {
    /// The follow loop: a hub `Stream` (every one, changed or not).
    pub(crate) fn tap_stream(&self, stream: &Arc<Stream>) {
        let mut tap = lock(&self.tap);
        tap.stream = Some(stream.clone());
        // A change applies from the next segment: what was kept is of the old one.
        tap.segment.clear();
        tap.send(&self.name, TapEvent::Stream(stream.clone()));
    }

    /// The follow loop: takes the samples out of a packager's outputs (to the tap, if
    /// any) and tells the tap when the publish ended.
    pub(crate) fn tap_outputs(&self, outputs: &mut Vec<Output>, packager: &Packager) {
        let mut tap = lock(&self.tap);
        let start = packager.availability_start();
        outputs.retain_mut(|o| match o {
            Output::Sample(sample) => {
                if let Some(availability_start) = start {
                    let event = TapEvent::Sample {
                        sample: sample.clone(),
                        availability_start,
                    };
                    if sample.starts_segment || tap.segment.len() >= REPLAY_MAX {
                        // (Only video samples start segments; the audio between them
                        // is kept with them.)
                        tap.segment.clear();
                    }
                    if sample.starts_segment || !tap.segment.is_empty() {
                        tap.segment.push(event.clone());
                    }
                    tap.send(&self.name, event);
                }
                false
            }
            Output::Ended => {
                tap.stream = None;
                tap.segment.clear();
                tap.send(&self.name, TapEvent::End);
                true
            }
            _ => true,
        });
    }
}

/// Where one rung's packager output goes: the rung's own packager (a
/// [`Packager::follower`]) in front of the channel it belongs to. Output is dropped once
/// the publish it was made for is over (a new session began or the run ended), so a
/// slow transcoder never writes into a playlist that moved on.
pub struct RungFeed {
    origin: Arc<Origin>,
    ch: Arc<Channel>,
    session: u64,
    packager: Packager,
}

impl std::fmt::Debug for RungFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RungFeed")
            .field("channel", &self.ch.name)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl RungFeed {
    /// Packages one event of the rung (its `Stream`, frames on the media timeline, its
    /// end) into the channel.
    pub fn push(&mut self, input: Input) {
        let mut outputs = self.packager.push(input);
        // A rung's end is not the publish's, and a rung has no tap.
        outputs.retain(|o| !matches!(o, Output::Ended | Output::Sample(_)));
        if outputs.is_empty() {
            return;
        }
        {
            let st = lock(&self.ch.inner);
            if st.session != self.session || st.ended {
                return;
            }
        }
        self.origin.apply(&self.ch, outputs);
    }

    /// Frames its packager dropped (before a keyframe, of an unknown track).
    pub fn dropped_frames(&self) -> u64 {
        self.packager.dropped_frames()
    }
}

impl Origin {
    /// Subscribes to `channel`'s source video as packaged (replacing any earlier
    /// subscriber): first the current stream and the samples of the segment in
    /// progress, if a publish is under way, then every stream change, sample and end. The receiver ends when the subscriber falls
    /// [`TAP_CAPACITY`] events behind or the channel is gone.
    pub fn tap(&self, channel: &str) -> Option<mpsc::Receiver<TapEvent>> {
        let ch = self.channel(channel)?;
        let (tx, rx) = mpsc::channel(TAP_CAPACITY);
        let mut tap = lock(&ch.tap);
        if let Some(s) = &tap.stream {
            let _ = tx.try_send(TapEvent::Stream(s.clone()));
            for e in &tap.segment {
                let _ = tx.try_send(e.clone());
            }
        }
        tap.tx = Some(tx);
        Some(rx)
    }

    /// A feed for rung `name` of `channel`'s current publish (`None` when the channel is
    /// unknown or not live). `name` must be a rendition name (see
    /// `starling_packager::rendition_name`).
    pub fn rung_feed(
        self: &Arc<Self>,
        channel: &str,
        name: &'static str,
        follow: Follow,
    ) -> Option<RungFeed> {
        let ch = self.channel(channel)?;
        let session = {
            let st = lock(&ch.inner);
            if !st.live {
                return None;
            }
            st.session
        };
        lock(&ch.inner).down_rungs.retain(|r| *r != name);
        Some(RungFeed {
            origin: self.clone(),
            packager: Packager::follower(self.config.packager(), name, follow),
            ch,
            session,
        })
    }
}

impl Origin {
    /// Rung `name` of `channel` is down (its transcoder died, stalled or was shed): from
    /// now on until [`Self::rung_feed`] gives it a feed again, each new source segment
    /// is listed in it as a gap (`EXT-X-GAP`), so that its players move to another
    /// rendition rather than wait on a playlist that stopped.
    pub fn rung_down(&self, channel: &str, name: &'static str) {
        let Some(ch) = self.channel(channel) else {
            return;
        };
        let mut st = lock(&ch.inner);
        if !st.down_rungs.contains(&name) {
            st.down_rungs.push(name);
        }
    }
}

/// For `Channel`'s field.
pub(crate) type TapSlot = Mutex<Tap>;
