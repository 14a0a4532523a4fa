//! What a channel packaged here looks like from outside, for code that copies it
//! elsewhere (the pusher of `starling-push`, which PUTs it to a remote origin).
//!
//! Two things, both read-only: [`Outbound::changed`] waits until a segment completes in
//! any rendition (or the run ends), on the renditions' feeds (`wake`), so it costs the
//! ingest path nothing and never takes the channel's lock while it waits;
//! [`Outbound::snapshot`] copies, under one short lock, what a pusher needs: every
//! rendition's init sections and complete segments still in memory (`Bytes`, shared,
//! never copied), and the media and multivariant playlists as this origin serves them.
//! The playlists are built after the lock is released, as for viewers.
//!
//! Must never: wait on anything while holding the channel's lock, or change the
//! channel's state (a slow pusher must not be able to touch the live path).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::Poll,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use starling_hls as hls;
use tokio::sync::watch;

use crate::{
    http::{build_playlist, multivariant_of, Listing},
    live::{lock, session_name, Channel, Origin, OriginConfig},
    wake::Edge,
};

/// An object (an init section) and its URI relative to its rendition's directory.
#[derive(Debug, Clone)]
pub struct OutboundObject {
    /// `SESSION/init-V.mp4`, as the media playlist names it.
    pub uri: String,
    pub body: Bytes,
}

/// A complete segment still in memory.
#[derive(Debug, Clone)]
pub struct OutboundSegment {
    /// `SESSION/N.m4s`, as the media playlist names it.
    pub uri: String,
    pub msn: u64,
    pub body: Bytes,
    pub completed_at: Option<SystemTime>,
}

/// One rendition as this origin serves it.
#[derive(Debug, Clone)]
pub struct OutboundRendition {
    pub name: &'static str,
    pub inits: Vec<OutboundObject>,
    /// Complete segments whose bytes are in memory, oldest first.
    pub segments: Vec<OutboundSegment>,
    /// The media playlist as served to viewers (with LL-HLS parts when the channel has
    /// them); `None` until the rendition has a part.
    pub playlist: Option<hls::MediaPlaylist>,
}

/// A channel's renditions and playlists at one moment.
#[derive(Debug, Clone, Default)]
pub struct OutboundSnapshot {
    pub live: bool,
    /// The run ended: the playlists carry ENDLIST.
    pub ended: bool,
    pub renditions: Vec<OutboundRendition>,
    /// `index.m3u8` as served; `None` until a segment is complete.
    pub multivariant: Option<hls::MultivariantPlaylist>,
}

/// A follower of one channel's complete segments; see the module docs.
#[derive(Debug)]
pub struct Outbound {
    ch: Arc<Channel>,
    config: OriginConfig,
    /// Each rendition's edge as last seen.
    seen: Vec<Watched>,
}

#[derive(Debug)]
struct Watched {
    name: &'static str,
    rx: watch::Receiver<Edge>,
    /// The newest complete number and whether the run ended, as last seen.
    last: (Option<u64>, bool),
}

impl Origin {
    /// A follower of `channel`'s segments, if the channel is known here.
    pub fn outbound(&self, channel: &str) -> Option<Outbound> {
        Some(Outbound {
            ch: self.channel(channel)?,
            config: self.config.clone(),
            seen: Vec::new(),
        })
    }
}

impl Outbound {
    pub fn channel(&self) -> &str {
        &self.ch.name
    }

    /// Waits until a segment completed in some rendition since the last call, a
    /// rendition appeared, or the run ended; or `limit` passed. True when something
    /// changed. Parts alone do not end the wait.
    pub async fn changed(&mut self, limit: Duration) -> bool {
        let names: Vec<&'static str> = lock(&self.ch.inner)
            .renditions
            .iter()
            .map(|r| r.info.name)
            .collect();
        let mut appeared = false;
        for name in names {
            if self.seen.iter().any(|w| w.name == name) {
                continue;
            }
            if let Some(feed) = self.ch.feed(name) {
                self.seen.push(Watched {
                    name,
                    rx: feed.subscribe(),
                    last: (None, false),
                });
                appeared = true;
            }
        }
        let moved = |seen: &mut [Watched]| {
            let mut any = false;
            for w in seen.iter_mut() {
                let e = *w.rx.borrow_and_update();
                let k = (e.complete_msn, e.ended);
                if k != w.last {
                    w.last = k;
                    any = true;
                }
            }
            any
        };
        if moved(&mut self.seen) || appeared {
            return true;
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Any feed's change wakes this; a closed feed (its rendition is gone) is
            // left to the next call, which re-lists the renditions.
            let woke = {
                let mut waits: Vec<Pin<Box<dyn Future<Output = bool> + Send + '_>>> = self
                    .seen
                    .iter_mut()
                    .map(|w| {
                        Box::pin(async move { w.rx.changed().await.is_ok() })
                            as Pin<Box<dyn Future<Output = bool> + Send + '_>>
                    })
                    .collect();
                let any = std::future::poll_fn(|cx| {
                    let mut open = false;
                    for w in waits.iter_mut() {
                        match w.as_mut().poll(cx) {
                            Poll::Ready(true) => return Poll::Ready(true),
                            Poll::Ready(false) => {}
                            Poll::Pending => open = true,
                        }
                    }
                    if open {
                        Poll::Pending
                    } else {
                        Poll::Ready(false)
                    }
                });
                tokio::time::timeout_at(deadline, any).await
            };
            match woke {
                Ok(true) if moved(&mut self.seen) => return true,
                Ok(true) => {}
                // Every feed closed, or none yet: wait out the limit for new ones.
                Ok(false) => {
                    tokio::time::sleep_until(deadline).await;
                    return false;
                }
                Err(_) => return false,
            }
        }
    }

    /// What the channel holds now; see [`OutboundSnapshot`].
    pub fn snapshot(&self) -> OutboundSnapshot {
        let (live, ended, multivariant, captured) = {
            let st = lock(&self.ch.inner);
            let captured: Vec<_> = st
                .renditions
                .iter()
                .map(|r| {
                    let inits = r
                        .inits
                        .iter()
                        .enumerate()
                        .map(|(v, (session, body))| OutboundObject {
                            uri: format!("{}/init-{v}.mp4", session_name(*session)),
                            body: body.clone(),
                        })
                        .collect();
                    let segments = r
                        .segments
                        .iter()
                        .filter(|s| s.complete && !s.gap)
                        .filter_map(|s| {
                            Some(OutboundSegment {
                                uri: format!("{}/{}.m4s", session_name(s.session), s.msn),
                                msn: s.msn,
                                body: s.data.clone()?,
                                completed_at: s.completed_at,
                            })
                        })
                        .collect();
                    (
                        r.info.name,
                        inits,
                        segments,
                        Listing::capture(&st, r.info.name).1,
                    )
                })
                .collect();
            (st.live, st.ended, multivariant_of(&st), captured)
        };
        let renditions = captured
            .into_iter()
            .map(|(name, inits, segments, listing)| OutboundRendition {
                name,
                inits,
                segments,
                playlist: listing.map(|l| build_playlist(&l, &self.config)),
            })
            .collect();
        OutboundSnapshot {
            live,
            ended,
            renditions,
            multivariant,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use bytes::Bytes;
    use starling_media::TrackKind;
    use starling_packager::{Output, RenditionInfo};

    use super::*;
    use crate::{ChannelSettings, LocalDirStore};

    fn part(msn: u64) -> Output {
        Output::Part {
            rendition: "source",
            msn,
            index: 0,
            duration: 0.3,
            independent: true,
            start: msn * 300,
            data: Bytes::from(format!("part{msn}")),
            first_arrival: SystemTime::now(),
            discontinuity: false,
        }
    }

    fn end(msn: u64) -> Output {
        Output::SegmentEnd {
            rendition: "source",
            msn,
            duration: 0.3,
            program_date_time: SystemTime::now(),
            discontinuity: false,
            defects: Default::default(),
        }
    }

    /// A follower wakes for complete segments (not for parts alone) and its snapshot
    /// holds the segment's bytes and the playlists as served.
    #[tokio::test]
    async fn complete_segments_wake_the_follower_and_are_in_the_snapshot() {
        let dir = std::env::temp_dir().join(format!("starling-outbound-{}", std::process::id()));
        let origin = Origin::new(OriginConfig::default(), Arc::new(LocalDirStore::new(&dir)));
        let ch = Arc::new(Channel::new(
            "out",
            ChannelSettings::defaults(origin.config()),
        ));
        lock(&origin.channels).insert("out".into(), ch.clone());
        assert!(origin.outbound("nope").is_none());
        let mut out = origin.outbound("out").unwrap();
        // Nothing yet: the wait runs out.
        assert!(!out.changed(Duration::from_millis(20)).await);
        let info = RenditionInfo {
            name: "source",
            kind: TrackKind::Video,
            codec: "avc1.64001f".to_owned(),
            timescale: 1000,
            width: Some(320),
            height: Some(240),
            frame_rate: None,
            sample_rate: None,
            channels: None,
        };
        origin.apply(
            &ch,
            vec![Output::Init {
                rendition: info,
                init: Bytes::from_static(b"init"),
            }],
        );
        // A new rendition counts as a change.
        assert!(out.changed(Duration::from_millis(20)).await);
        // A part alone does not.
        origin.apply(&ch, vec![part(0)]);
        assert!(!out.changed(Duration::from_millis(50)).await);
        let waiter = tokio::spawn(async move {
            let woke = out.changed(Duration::from_secs(5)).await;
            (woke, out)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        origin.apply(&ch, vec![end(0)]);
        let (woke, out) = waiter.await.unwrap();
        assert!(woke);
        let snap = out.snapshot();
        let r = &snap.renditions[0];
        assert_eq!(r.name, "source");
        assert!(
            r.inits[0].uri.ends_with("/init-0.mp4"),
            "{}",
            r.inits[0].uri
        );
        assert_eq!(r.segments.len(), 1);
        assert!(r.segments[0].uri.ends_with("/0.m4s"));
        assert_eq!(&r.segments[0].body[..], b"part0");
        let pl = r.playlist.as_ref().unwrap();
        assert_eq!(pl.segments.len(), 1);
        assert_eq!(pl.segments[0].uri, r.segments[0].uri);
        let mv = snap.multivariant.unwrap();
        assert_eq!(mv.variants[0].uri, "source/index.m3u8");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
