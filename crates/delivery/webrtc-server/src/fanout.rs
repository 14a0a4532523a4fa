//! One hub subscription per channel watched over WHEP, its frames prepared once
//! ([`Outgoing::prepare`]) and handed to every viewer as the same `Arc`.
//!
//! Like the hub, a fan-out keeps the current GOP (from the newest video keyframe), so a
//! viewer that joins starts decoding at once; and like the hub's subscribers, a viewer
//! that falls more than [`CAPACITY`] items behind skips to the next keyframe instead of
//! slowing anyone. The fan-out task ends when its last viewer has gone.
//!
//! A channel with AAC audio gets one AAC → Opus child for all its viewers
//! (`opus_child`): its Opus packets join the items here like the channel's own frames.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Instant,
};

use starling_hub::{Hub, HubEvent};
use starling_sync::lock;
use starling_webrtc::Outgoing;
use tokio::sync::broadcast;

use crate::opus_child::{AacToOpus, OpusShared, OpusSink};

/// Items a viewer may fall behind before it skips ahead (about 10 s of 30 fps video
/// with audio).
pub(crate) const CAPACITY: usize = 1024;

/// What viewers receive.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// The channel's stream (re)started or changed: video restarts at a keyframe.
    Stream,
    Frame(Arc<Outgoing>),
    Ended,
}

#[derive(Debug, Default)]
struct State {
    /// The channel has a stream now.
    live: bool,
    gop: Vec<Item>,
}

#[derive(Debug)]
struct Channel {
    tx: broadcast::Sender<Item>,
    state: Mutex<State>,
}

/// Every channel being fanned out.
#[derive(Debug)]
pub(crate) struct Fanouts {
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    pub opus: Arc<OpusShared>,
}

/// A viewer's end: the backlog to start with, then the live items.
#[derive(Debug)]
pub(crate) struct Viewer {
    pub backlog: VecDeque<Item>,
    pub rx: broadcast::Receiver<Item>,
}

impl Fanouts {
    pub fn new(opus: Arc<OpusShared>) -> Self {
        Fanouts {
            channels: Mutex::default(),
            opus,
        }
    }

    /// Joins `channel`'s fan-out, starting it (one hub subscription) if it is not running.
    pub fn join(self: &Arc<Self>, hub: &Arc<Hub>, channel: &str) -> Viewer {
        let mut channels = lock(&self.channels);
        if let Some(ch) = channels.get(channel) {
            return ch.viewer();
        }
        let (tx, _) = broadcast::channel(CAPACITY);
        let ch = Arc::new(Channel {
            tx,
            state: Mutex::new(State::default()),
        });
        channels.insert(channel.to_owned(), ch.clone());
        let viewer = ch.viewer();
        drop(channels);
        let mut sub = hub.subscribe(channel);
        let fanouts = self.clone();
        let name = channel.to_owned();
        let mut opus = AacToOpus::new(self.opus.clone(), ch.clone(), channel);
        tokio::spawn(async move {
            let mut stream = None;
            while let Some(ev) = sub.recv().await {
                // Before the item goes out: a replaced child's packets must not follow
                // the new stream's start.
                match &ev {
                    HubEvent::Stream(s) => opus.on_stream(s),
                    HubEvent::Frame(f) => opus.on_frame(f, Instant::now()),
                    HubEvent::Ended => opus.on_ended(),
                }
                ch.on_event(&mut stream, ev);
                // Viewers left: the common case, decided without the map's lock (this
                // runs per frame).
                if ch.tx.receiver_count() > 0 {
                    continue;
                }
                // The last viewer gone: stop (checked again under the map's lock, so a
                // viewer joining now either found this channel with a receiver, or
                // starts a new one).
                let mut channels = lock(&fanouts.channels);
                if ch.tx.receiver_count() == 0 {
                    if channels.get(&name).is_some_and(|c| Arc::ptr_eq(c, &ch)) {
                        channels.remove(&name);
                    }
                    break;
                }
            }
        });
        viewer
    }

    /// Whether `channel` is fanned out now.
    pub fn has(&self, channel: &str) -> bool {
        lock(&self.channels).contains_key(channel)
    }

    /// Channels fanned out right now.
    pub fn len(&self) -> usize {
        lock(&self.channels).len()
    }
}

impl Channel {
    fn viewer(&self) -> Viewer {
        let st = lock(&self.state);
        let rx = self.tx.subscribe();
        let mut backlog = VecDeque::with_capacity(st.gop.len() + 1);
        if st.live {
            backlog.push_back(Item::Stream);
            backlog.extend(st.gop.iter().cloned());
        }
        Viewer { backlog, rx }
    }

    /// Keeps the state and sends the item under one lock, so that a joining viewer's
    /// backlog and its receiver meet exactly.
    fn on_event(&self, stream: &mut Option<Arc<starling_media::Stream>>, ev: HubEvent) {
        let mut st = lock(&self.state);
        let item = match ev {
            HubEvent::Stream(s) => {
                *stream = Some(s);
                st.live = true;
                st.gop.clear();
                Item::Stream
            }
            HubEvent::Frame(f) => {
                let Some(out) = stream.as_ref().and_then(|s| Outgoing::prepare(s, &f)) else {
                    return;
                };
                let video_key = out.keyframe && out.kind == starling_media::TrackKind::Video;
                let item = Item::Frame(Arc::new(out));
                if video_key {
                    st.gop.clear();
                }
                // Audio-only channels keep no GOP: any packet is a start.
                if video_key || !st.gop.is_empty() {
                    st.gop.push(item.clone());
                }
                item
            }
            HubEvent::Ended => {
                *stream = None;
                st.live = false;
                st.gop.clear();
                Item::Ended
            }
        };
        let _ = self.tx.send(item);
    }
}

impl OpusSink for Channel {
    fn send_opus(&self, out: Outgoing, current: &dyn Fn() -> bool) {
        let mut st = lock(&self.state);
        if !current() || !st.live {
            return;
        }
        let item = Item::Frame(Arc::new(out));
        if !st.gop.is_empty() {
            st.gop.push(item.clone());
        }
        let _ = self.tx.send(item);
    }
}
