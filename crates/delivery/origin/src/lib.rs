//! The origin: the live window in memory, write-through to object storage, and HTTP.
//!
//! - [`live`]: one task per channel follows the hub, runs the packager and keeps parts,
//!   segments and init sections per rendition; complete segments are written through to
//!   the [`store`] in the background.
//! - [`http`]: serves the multivariant and media playlists (LL-HLS with blocking reload,
//!   delta updates, preload hints, rendition reports), init sections, segments and parts,
//!   with the caching headers a CDN needs.
//! - `wake`: per-rendition wake-ups for blocking requests (a watch of each rendition's
//!   live edge, sent after the channel's lock is released) and the playlist rendered once
//!   per rendition version, off that lock.
//! - `session`: session ids (one per publish) and the object keys built from them, so
//!   that an immutable URL never names two different bytes.
//! - `write`: write-through with retries, retention deletes, and draining both at a
//!   graceful shutdown.
//! - `history` and `restore`: each channel's last run described in the store (sessions,
//!   renditions, an index of stored segments), and read back after a restart or a
//!   `kill -9`, so the run plays back as VOD and retention still applies to it.
//! - [`recordings`]: every run a channel left in the store, listed (duration, size),
//!   deleted, and played back as VOD (`http`'s `/vod/`), from the store alone.
//! - `sweep`: retention by session over what the store holds (what a previous process
//!   left behind, recordings past their retention).
//! - `select`: a locked backup packaged beside the primary, whose segment replaces the
//!   one the primary stopped in.
//! - `tap`: the transcoder's feed of the source video as packaged, and its rungs coming
//!   back as renditions of the channel.
//! - [`Outbound`]: a channel seen from outside, for the pusher that copies it to a
//!   remote origin (`starling-push`): wait for complete segments, then snapshot them
//!   with the playlists as served here.
//! - [`gate`]: the hook that decides who may watch a channel (public, allowed with a
//!   token, refused), and the playlist rewriting that carries a viewer's token.
//!
//! The live edge never waits on the store: a request for a part or a recent segment is
//! answered from memory; only DVR reads of old segments go to the store.

mod apply;
pub mod clips;
mod gaps;
pub mod gate;
mod history;
pub mod http;
pub mod live;
pub mod metrics;
mod outbound;
mod periods;
pub mod recordings;
mod restore;
mod select;
mod session;
mod shed;
pub mod store;
mod sweep;
mod tap;
mod thumbs;
mod wake;
mod window;
mod write;

pub use clips::{ClipSpan, SpanError, MAX_CLIP_SEGMENTS};
pub use gate::{Access, GateFuture, PlaybackGate, Refusal};
pub use history::HistoryError;
pub use live::{
    parse_session, session_name, Channel, ChannelSettings, Origin, OriginConfig, PlaylistKind,
    Recording,
};
pub use metrics::OriginMetrics;
pub use outbound::{
    Outbound, OutboundObject, OutboundRendition, OutboundSegment, OutboundSnapshot,
};
pub use recordings::{RecordingError, RecordingList};
pub use store::{CacheStats, CachedStore, LocalDirStore, ObjectStore, StoreError};
pub use tap::{RungFeed, TapEvent, TAP_CAPACITY};
pub use thumbs::{KeyframeSegment, Thumbnails};

/// The response header of the multivariant playlist of a channel with a latency mode
/// the watch page must know before it picks a player: `realtime` (viewers that can play
/// it over WebRTC, WHEP at `/whep/{channel}`) or `p2p` (viewers share whole segments,
/// docs/p2p.md).
pub const LATENCY_MODE_HEADER: &str = "starling-latency-mode";

/// The store's history parsers, for the fuzz targets in `fuzz/` (not an API). History
/// objects come from a store that other nodes write to (a shared bucket), so they are
/// input like any network bytes.
#[doc(hidden)]
pub mod fuzzing {
    use crate::history::{RunRecord, SegmentRecord};

    /// Parses `bytes` as a run file and as an index chunk. Whatever parses must encode
    /// and parse back to the same records.
    pub fn history_round_trip(bytes: &[u8]) {
        if let Ok(run) = RunRecord::parse(bytes) {
            let again = RunRecord::parse(run.encode().as_bytes());
            assert_eq!(again.as_ref(), Ok(&run), "run file round trip");
        }
        if let Ok(chunk) = SegmentRecord::parse_chunk(bytes) {
            let again = SegmentRecord::parse_chunk(SegmentRecord::encode_chunk(&chunk).as_bytes());
            assert_eq!(again.as_ref(), Ok(&chunk), "index chunk round trip");
        }
    }
}
