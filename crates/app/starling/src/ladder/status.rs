//! Every channel's ladder as others see it: its status (for `/api/v1/live`), and the
//! analysis tap's subscribers and newest values.

use std::{collections::HashMap, sync::Mutex};

use serde::Serialize;
use starling_sync::lock;
use starling_transcode::{AnalysisEvent, Loudness, Picture};
use tokio::sync::broadcast;

/// What `/api/v1/live` shows of a channel's ladder.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LadderStatus {
    /// `running`, `starting` (waiting for the next segment start), `restarting`
    /// (after a failure, with backoff), `source only` (no ladder for this source or
    /// node: `reason` says why).
    pub state: &'static str,
    /// The rungs being encoded (besides the source).
    pub rungs: Vec<String>,
    /// Rungs shed because this machine could not encode them in real time.
    pub shed: Vec<String>,
    pub reason: Option<String>,
    /// Children started again after a failure, this publish.
    pub restarts: u64,
}

/// Every channel's ladder: its status, the node's reason for having none, and the
/// analysis tap's subscribers (the in-process API of docs/transcoding.md).
#[derive(Debug, Default)]
pub struct Ladders {
    channels: Mutex<HashMap<String, LadderStatus>>,
    pub(super) off: Mutex<Option<String>>,
    analysis: Mutex<HashMap<String, broadcast::Sender<AnalysisEvent>>>,
    pictures: Mutex<HashMap<String, Picture>>,
    loudness: Mutex<HashMap<String, Loudness>>,
    /// The vertical rendition's window, per channel whose ladder has one: the
    /// reframer sets it, the ladder child's steering task follows it.
    steering: Mutex<HashMap<String, tokio::sync::watch::Sender<Option<Steer>>>>,
}

/// Where the reframer wants the vertical rendition's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Steer {
    /// The window's centre across the picture, 0 (left edge) to 1.
    pub centre_x: f64,
    /// A scene cut: jump there at once rather than glide.
    pub cut: bool,
}

/// Analysis events a subscriber may fall behind by before it misses some (it is told,
/// `RecvError::Lagged`): 17 s of pictures and loudness.
#[cfg_attr(not(test), allow(dead_code))]
const ANALYSIS_CAPACITY: usize = 256;

impl Ladders {
    pub fn get(&self, channel: &str) -> Option<LadderStatus> {
        if let Some(reason) = lock(&self.off).clone() {
            return Some(LadderStatus {
                state: "source only",
                reason: Some(reason),
                ..Default::default()
            });
        }
        lock(&self.channels).get(channel).cloned()
    }

    pub(super) fn set(&self, channel: &str, status: LadderStatus) {
        lock(&self.channels).insert(channel.to_owned(), status);
    }

    /// Moves `channel`'s vertical window, if its ladder has one (else nothing).
    pub fn steer(&self, channel: &str, steer: Steer) {
        if let Some(tx) = lock(&self.steering).get(channel) {
            tx.send_replace(Some(steer));
        }
    }

    /// The window `channel`'s ladder child follows, from now on (replacing the one of
    /// an earlier child).
    pub(super) fn steering(&self, channel: &str) -> tokio::sync::watch::Receiver<Option<Steer>> {
        let (tx, rx) = tokio::sync::watch::channel(None);
        lock(&self.steering).insert(channel.to_owned(), tx);
        rx
    }

    pub(super) fn remove(&self, channel: &str) {
        lock(&self.steering).remove(channel);
        lock(&self.channels).remove(channel);
        lock(&self.pictures).remove(channel);
        lock(&self.loudness).remove(channel);
    }

    /// The analysis tap of `channel`: decoded pictures (5 a second, 320 px wide by
    /// default) and the audio's loudness (every 100 ms), while its ladder runs. A slow
    /// subscriber misses events rather than slowing anything down. (The API the
    /// planned reframing and highlight features build on; the thumbnailer and
    /// `/api/v1/live` read the newest values instead.)
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn subscribe(&self, channel: &str) -> broadcast::Receiver<AnalysisEvent> {
        lock(&self.analysis)
            .entry(channel.to_owned())
            .or_insert_with(|| broadcast::channel(ANALYSIS_CAPACITY).0)
            .subscribe()
    }

    /// The newest picture of `channel`'s tap, if its ladder runs.
    pub fn latest_picture(&self, channel: &str) -> Option<Picture> {
        lock(&self.pictures).get(channel).cloned()
    }

    /// What `/api/v1/live` shows of `channel`'s tap: the newest loudness and picture.
    pub fn analysis_json(&self, channel: &str) -> Option<serde_json::Value> {
        let loudness = lock(&self.loudness).get(channel).copied();
        let picture = lock(&self.pictures)
            .get(channel)
            .map(|p| (p.width, p.height, p.time));
        if loudness.is_none() && picture.is_none() {
            return None;
        }
        Some(serde_json::json!({
            "loudness_lufs": loudness.map(|l| (l.momentary_lufs * 10.0).round() / 10.0),
            "picture": picture.map(|(w, h, t)| serde_json::json!({
                "width": w, "height": h, "media_time_ms": t / 90,
            })),
        }))
    }

    pub(crate) fn publish(&self, channel: &str, event: AnalysisEvent) {
        match &event {
            AnalysisEvent::Picture(p) => {
                lock(&self.pictures).insert(channel.to_owned(), p.clone());
            }
            AnalysisEvent::Loudness(l) => {
                lock(&self.loudness).insert(channel.to_owned(), *l);
            }
        }
        let mut subscribers = lock(&self.analysis);
        if let Some(tx) = subscribers.get(channel) {
            if tx.send(event).is_err() {
                // Nobody listens any more.
                subscribers.remove(channel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tap_reaches_subscribers_and_keeps_the_newest_values() {
        let ladders = Ladders::default();
        assert!(ladders.analysis_json("c").is_none());
        let mut rx = ladders.subscribe("c");
        let picture = Picture {
            time: 90_000,
            width: 2,
            height: 2,
            i420: bytes::Bytes::from_static(&[0; 6]),
        };
        ladders.publish("c", AnalysisEvent::Picture(picture.clone()));
        ladders.publish(
            "c",
            AnalysisEvent::Loudness(Loudness {
                time: 99_000,
                momentary_lufs: -23.04,
            }),
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            AnalysisEvent::Picture(picture.clone())
        );
        assert!(matches!(rx.try_recv().unwrap(), AnalysisEvent::Loudness(_)));
        assert_eq!(ladders.latest_picture("c"), Some(picture));
        let v = ladders.analysis_json("c").unwrap();
        assert_eq!(v["loudness_lufs"], -23.0);
        assert_eq!(v["picture"]["media_time_ms"], 1000);
        // A subscriber that falls behind misses events and is told so.
        for _ in 0..ANALYSIS_CAPACITY + 1 {
            ladders.publish(
                "c",
                AnalysisEvent::Loudness(Loudness {
                    time: 0,
                    momentary_lufs: -1.0,
                }),
            );
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
        // Once nobody listens, publishing forgets the channel's sender.
        drop(rx);
        ladders.publish(
            "c",
            AnalysisEvent::Loudness(Loudness {
                time: 0,
                momentary_lufs: -1.0,
            }),
        );
        assert!(lock(&ladders.analysis).is_empty());
    }
}
