//! The P2P grid, sans-IO: viewers share segments with each other, the edge boosts, the
//! origin signs.
//!
//! - [`tracker`]: swarms per channel and rendition, peer selection, the signalling relay,
//!   limits, reports and bans (the WebSocket driver is the app's `p2p` module);
//! - [`signal`]: the tracker's JSON messages;
//! - [`wire`]: the peers' binary protocol on a WebRTC data channel;
//! - [`pieces`]: the origin-signed list of every piece's SHA-256 that a viewer checks
//!   each piece from a peer against before it plays or forwards it.
//!
//! No sockets, no clocks: callers pass `now` in. Every reader of network bytes here is
//! bounded and fuzzed (`fuzz/fuzz_targets/p2p_*.rs`).

pub mod pieces;
pub mod signal;
pub mod tracker;
pub mod wire;

pub use pieces::{PieceError, PieceList, PieceSigner};
pub use tracker::{Tracker, TrackerConfig};
