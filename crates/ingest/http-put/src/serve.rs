//! Reads of pushed objects, as the origin serves them: memory first, the live edge held,
//! a live event's range answered without a store read, then the store.

use std::time::SystemTime;

use starling_sync::lock;

use crate::{
    check::{check_channel, Kind, PushPath},
    edge::{self, Ahead},
    event::{self, Range},
    ingest::{PushIngest, PushedObject, MEDIA_CACHE_CONTROL, PLAYLIST_CACHE_CONTROL},
};

/// How a request for a pushed object is answered ([`PushIngest::answer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// 200 with the object.
    Found(PushedObject),
    /// No such object, nothing more known: the origin answers as it would without it.
    NotFound,
    /// A segment of the channel's live event that is not due yet: 404, cacheable for
    /// `max_age` seconds (until it is due, 1 to [`event::MAX_NOT_YET_SECS`]).
    NotYet { max_age: u32 },
    /// A number the event never has (below its first, past its end), or one past its
    /// retry deadline that neither memory nor the store holds: 410, cacheable for
    /// `max_age` seconds.
    Gone { max_age: u32 },
}

impl Answer {
    /// The object, when there is one.
    pub fn object(self) -> Option<PushedObject> {
        match self {
            Answer::Found(o) => Some(o),
            _ => None,
        }
    }
}

impl PushIngest {
    /// The object pushed to `channel` at `path` (both as a request names them; anything
    /// that could not have been pushed is `None`): from memory, else from the store.
    /// A store error is logged and answered `None`. [`PushIngest::answer`] tells the
    /// kinds of absence apart.
    pub async fn get(&self, channel: &str, path: &str) -> Option<PushedObject> {
        self.answer(channel, path).await.object()
    }

    /// How to answer a request for `path` of `channel` (docs/put-ingest.md, "The live
    /// edge" and "Live events"), in this order:
    /// - an object in memory is [`Answer::Found`];
    /// - with a live event for the channel, a numbered media name below its first
    ///   number or past its end is [`Answer::Gone`], with no store read;
    /// - the next segment a media playlist of the channel will name, not uploaded yet, is
    ///   waited for: found when it is uploaded, or `NotFound` after 1.5 × the playlist's
    ///   target duration (at most [`PushConfig::next_segment_wait`](crate::PushConfig));
    /// - a number the event has not made due yet is [`Answer::NotYet`], and a number past
    ///   the next one of a playlist's edge `NotFound`, both with no store read;
    /// - anything else is read from the store; a miss there of an event's number past
    ///   its retry deadline is `Gone`.
    pub async fn answer(&self, channel: &str, path: &str) -> Answer {
        let (Ok(()), Ok(path)) = (check_channel(channel), PushPath::parse(path)) else {
            return Answer::NotFound;
        };
        let cache_control = match path.kind() {
            Kind::Playlist => PLAYLIST_CACHE_CONTROL,
            Kind::Fmp4 | Kind::MpegTs => MEDIA_CACHE_CONTROL,
        };
        // Where the number stands in the channel's live event, if it has one.
        let range = self.config().events.get(channel).and_then(|e| {
            let n = edge::numbered(&path)?;
            Some(e.range(n.number, event::unix_ms(SystemTime::now())))
        });
        let mut deadline = None;
        loop {
            let published;
            let woken;
            {
                let chs = lock(&self.channels);
                let w = chs.windows.get(channel);
                if let Some(held) = w.and_then(|w| w.objects.get(path.as_str())) {
                    return Answer::Found(PushedObject {
                        body: held.body.clone(),
                        content_type: held.content_type,
                        cache_control,
                    });
                }
                if let Some(Range::BeforeFirst | Range::PastEnd) = range {
                    return Answer::Gone {
                        max_age: event::GONE_SECS,
                    };
                }
                let Some(w) = w else {
                    break;
                };
                match w.ahead(&path) {
                    Ahead::Behind => break,
                    Ahead::Beyond => return not_yet(range).unwrap_or(Answer::NotFound),
                    Ahead::Next(hold) => {
                        let deadline =
                            *deadline.get_or_insert_with(|| tokio::time::Instant::now() + hold);
                        // Made under the lock, before any PUT that could bring the
                        // object: `notify_waiters` wakes every `Notified` made before
                        // it, polled or not.
                        published = w.published.clone();
                        woken = tokio::time::timeout_at(deadline, published.notified());
                    }
                }
            }
            if woken.await.is_err() {
                return Answer::NotFound;
            }
        }
        if let Some(a) = not_yet(range) {
            return a;
        }
        let key = path.store_key(channel);
        if self.writer.deleting(&key) {
            return Answer::NotFound;
        }
        match self.writer.store().get(&key).await {
            Ok(Some(body)) => Answer::Found(PushedObject {
                body,
                content_type: path.content_type(),
                cache_control,
            }),
            Ok(None) if range == Some(Range::Late) => Answer::Gone {
                max_age: event::LATE_GONE_SECS,
            },
            Ok(None) => Answer::NotFound,
            Err(e) => {
                tracing::warn!(key, error = %e, "pushed object: store read failed");
                Answer::NotFound
            }
        }
    }
}

fn not_yet(range: Option<Range>) -> Option<Answer> {
    match range {
        Some(Range::NotYet { wait }) => Some(Answer::NotYet {
            max_age: event::not_yet_max_age(wait),
        }),
        _ => None,
    }
}
