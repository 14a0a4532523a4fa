//! A backup publisher: a second encoder (its own clock, not locked to the first) stands
//! by on a live channel and takes over when the primary stops, so the channel stays
//! live. The primary stops when its connection drops, or when no frame of it has
//! arrived for [`HubConfig::failover_after`] while the backup's frames keep coming.
//!
//! The backup's stream and newest GOP are kept as it sends, so the switch starts on its
//! keyframe at once. Consumers see the switch as a takeover: `Ended`, then the backup's
//! `Stream` and GOP; the origin treats that as a reconnect within its grace (numbering
//! goes on, a discontinuity marks the seam). The switch is driven by the backup's own
//! frames (their arrival times against the primary's last), so the hub reads no clock.

use std::{sync::atomic::Ordering, time::SystemTime};

use starling_media::{MediaEvent, TrackKind};
use tokio::sync::watch;

use super::{
    Channel, ChannelState, Hub, HubEvent, Lifecycle, PublishError, Publisher, PublisherSlot,
};
use starling_sync::lock;

/// The standby publisher of a channel and what it sent so far.
#[derive(Debug)]
pub(crate) struct Standby {
    pub(crate) slot: PublisherSlot,
    /// Its stream and its frames since its last keyframe, as [`ChannelState`] keeps
    /// the live publisher's.
    state: ChannelState,
}

impl Standby {
    /// What a new standby subscriber starts with: its stream and newest GOP.
    pub(crate) fn backlog(&self) -> impl Iterator<Item = HubEvent> + '_ {
        self.state
            .stream
            .iter()
            .map(|s| HubEvent::Stream(s.clone()))
            .chain(self.state.gop.iter().cloned().map(HubEvent::Frame))
    }
}

impl Hub {
    /// Starts a backup publisher on `channel`. With no live publisher it is simply the
    /// publisher; otherwise it stands by (replacing an earlier backup, as a
    /// reconnecting backup encoder would) until the primary stops.
    pub fn publish_backup(&self, channel: &str) -> Result<Publisher, PublishError> {
        let ch = self.channel(channel);
        {
            let mut st = lock(&ch.state);
            if st.publisher.is_some() {
                let id = self.next_publisher_id.fetch_add(1, Ordering::Relaxed);
                let (stop_tx, stop_rx) = watch::channel(false);
                if let Some(old) = st.standby.take() {
                    let _ = old.slot.stop.send(true);
                }
                st.standby = Some(Box::new(Standby {
                    slot: PublisherSlot { id, stop: stop_tx },
                    state: ChannelState::default(),
                }));
                self.metrics.publishes.fetch_add(1, Ordering::Relaxed);
                return Ok(Publisher {
                    channel: ch.clone(),
                    id,
                    stop: stop_rx,
                    config: self.config.clone(),
                    metrics: self.metrics.clone(),
                    finished: false,
                });
            }
        }
        self.publish(channel, false)
    }

    /// Whether `channel` has a backup standing by.
    pub fn has_backup(&self, channel: &str) -> bool {
        let channels = lock(&self.channels);
        channels
            .get(channel)
            .is_some_and(|ch| lock(&ch.state).standby.is_some())
    }
}

impl Publisher {
    /// `send` for the standby: keep its stream and GOP; take over when the primary has
    /// been silent for too long. Returns `false` when it is no longer the standby.
    pub(crate) fn send_standby(&self, st: &mut ChannelState, event: MediaEvent) -> bool {
        let failover_after = self.config.failover_after;
        let Some(standby) = st.standby.as_mut().filter(|s| s.slot.id == self.id) else {
            return false;
        };
        let arrival = match event {
            MediaEvent::Stream(stream) => {
                if standby.state.stream.as_deref() != Some(&*stream) {
                    standby.state.gop.clear();
                    standby.state.gop_bytes = 0;
                    standby.state.stream = Some(stream.clone());
                    let _ = self.channel.standby_tx.send(HubEvent::Stream(stream));
                }
                return true;
            }
            MediaEvent::Frame(frame) => {
                let Some(track) = standby
                    .state
                    .stream
                    .as_ref()
                    .and_then(|s| s.track(frame.track))
                else {
                    return true;
                };
                let is_video = track.kind() == TrackKind::Video;
                let arrival = frame.arrival;
                standby.state.cache(&frame, is_video, &self.config);
                // Err only means nobody packages the standby.
                let _ = self.channel.standby_tx.send(HubEvent::Frame(frame));
                arrival
            }
        };
        // Silent since its last frame, or since it began if it sent none yet.
        let silent = st.last_arrival.or(st.since).is_none_or(|last| {
            arrival
                .duration_since(last)
                .is_ok_and(|d| d >= failover_after)
        });
        if silent {
            promote(
                &self.channel,
                st,
                &self.metrics,
                "the primary stopped sending",
            );
        }
        true
    }
}

/// The standby takes the channel, if it can start at once (its stream known and a
/// keyframe cached); the primary, if still connected, is told to stop. Consumers see a
/// takeover. Returns whether it happened.
pub(crate) fn promote(
    ch: &Channel,
    st: &mut ChannelState,
    metrics: &crate::HubMetrics,
    why: &'static str,
) -> bool {
    let ready = st
        .standby
        .as_ref()
        .is_some_and(|s| s.state.stream.is_some() && !s.state.gop.is_empty());
    if !ready {
        return false;
    }
    let Some(standby) = st.standby.take() else {
        return false;
    };
    let Standby { slot, state } = *standby;
    // The standby feed ends here: from now on its frames are the channel's.
    let _ = ch.standby_tx.send(HubEvent::Ended);
    let takeover = st.publisher.is_some();
    if let Some(old) = st.publisher.take() {
        let _ = old.stop.send(true);
        // (Without a live publisher, consumers were told of the end already.)
        let _ = ch.tx.send(HubEvent::Ended);
    }
    st.reset();
    st.publisher = Some(slot);
    st.since = Some(SystemTime::now());
    st.last_arrival = state.gop.last().map(|f| f.arrival);
    if let Some(stream) = &state.stream {
        let _ = ch.tx.send(HubEvent::Stream(stream.clone()));
    }
    for f in &state.gop {
        let _ = ch.tx.send(HubEvent::Frame(f.clone()));
    }
    st.stream = state.stream;
    st.gop = state.gop;
    st.gop_bytes = state.gop_bytes;
    metrics.failovers.fetch_add(1, Ordering::Relaxed);
    tracing::info!(channel = %ch.name, reason = why, "hub: the backup publisher took over");
    let _ = ch.lifecycle.send(Lifecycle::Started {
        channel: ch.name.clone(),
        at: SystemTime::now(),
        takeover,
    });
    true
}
