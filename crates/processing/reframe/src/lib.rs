//! Vertical reframing and highlights, sans-IO: the analysis tap's pictures and loudness
//! in, the 9:16 window's path and highlight moments out. See docs/reframing.md.
//!
//! - `face`: CenterFace on tract (CPU, pure Rust), the model fetched at install time.
//! - `track`: faces become tracks with identities; one is the main subject.
//! - `scene`: scene cuts and motion, by frame differencing on a coarse grid.
//! - `camera`: the virtual camera, with a dead-band, speed and acceleration limits.
//! - `reframer`: one channel's pipeline of the above.
//! - `highlight`: signals normalised against the channel's own usual, scored, peaks.

pub mod camera;
pub mod face;
pub mod geometry;
pub mod highlight;
pub mod reframer;
pub mod scene;
pub mod track;

pub use camera::{Camera, CameraConfig};
pub use face::{DetectError, Face, FaceDetector, I420};
pub use geometry::Rect;
pub use highlight::{Highlight, HighlightConfig, HighlightDetector};
pub use reframer::{CropSample, Follow, ReframeConfig, Reframer};
pub use track::{Preference, Tracker, TrackerConfig};
