//! A pure CMAF writer (ISO/IEC 23000-19 on ISO/IEC 14496-12 fragmented MP4): one track
//! per file, track_ID 1, the same bytes for HLS, LL-HLS and DASH.
//!
//! - [`init_segment`] writes the CMAF header: `ftyp` + `moov` with the codec's sample
//!   entry (`avc1`+`avcC`, `hvc1`+`hvcC`, `mp4a`+`esds`, `Opus`+`dOps`) and empty
//!   sample tables.
//! - [`media_fragment`] writes one CMAF fragment or chunk: `styp`? + `prft`? + `moof` +
//!   `mdat`. A segment is the concatenation of its parts' fragments; only the first one
//!   carries `styp` (and usually `prft`), so an LL-HLS part and the segment that contains
//!   it are byte-identical slices of the same buffers.
//!
//! This crate does no I/O and reads no clock: the segmenter hands in timestamps (and, for
//! `prft`, the wall-clock time the frame arrived; [`ntp_from_system_time`] converts it).
//!
//! # Brands
//! `ftyp`: major `cmfc` (the CMAF track brand), compatible `cmfc`, `iso6`, `dash`.
//! `styp`: major `cmfs`, compatible `cmfs`, `cmff`, `iso6`, `msdh`.
//! `cmf2` is not claimed: it also requires default sample values repeated in every
//! `tfhd`. `cmfc` asks for `colr` and `pasp` in video sample entries; they are left out
//! until the media model carries the SPS VUI colour description and aspect ratio, because
//! writing guessed values would override correct ones in the bitstream.
//!
//! # Timestamps and B-frames
//! A sample's presentation time is its decode time plus its `cts_offset` (`trun` version
//! 1, signed). With B-frames the first keyframe's presentation time is later than its
//! decode time (by the reorder delay `D`, e.g. two frame durations). No edit list is
//! written; instead the segmenter should, per track, take `D = pts - dts` of the first
//! frame it packages (a keyframe) and keep it for the life of the track:
//!
//! - `base_media_decode_time` = `dts + D` of the fragment's first frame,
//! - `cts_offset` = `pts - dts - D` (negative for frames displayed before their decode
//!   position would suggest, zero for the keyframe),
//! - `duration` = next `dts` minus this `dts`.
//!
//! Presentation times then equal the source `pts` exactly (so audio and video stay in
//! sync with no edit list to interpret), each fragment's first keyframe has equal decode
//! and presentation times (what CMAF and the `cmf2` brand expect), and decode times stay
//! monotonic. Audio has `D = 0`. MSE-based players (hls.js, dash.js, Shaka) apply the
//! negative offsets as written; FFmpeg's mov demuxer instead adds the largest negative
//! offset it has seen to every pts (its `dts_shift`), so ffprobe shows pts later by that
//! constant, which the interop tests account for. All times must be non-negative after the shift: a
//! segmenter whose source starts at negative timestamps adds a constant first.
//!
//! # Dependencies
//! The boxes are written by hand over `bytes::BufMut`, one small function per box named
//! after the spec. The `mp4-atom` crate was evaluated: it has every box needed, but it
//! would add `num` (with its big-integer, complex and rational crates), `derive_more`,
//! `pastey` and a second `thiserror` major to the tree, and its `avcC`/`hvcC` types are
//! re-encoded from parsed fields rather than copied from the record we already hold.
//! The writer here is a few hundred lines and needs nothing beyond `bytes`.

mod bmff;
mod error;
mod fragment;
mod init;
mod sample_entry;

use std::time::{SystemTime, UNIX_EPOCH};

pub use error::CmafError;
pub use fragment::{media_fragment, FragmentOptions, ProducerReference, Sample};
pub use init::init_segment;

/// The one track of every CMAF file this crate writes.
pub const TRACK_ID: u32 = 1;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The 64-bit NTP timestamp (RFC 5905: 32 bits of seconds since 1900, 32 bits of
/// fraction) of `t`, as `prft` carries it. Seconds wrap modulo 2^32 as NTP's do (era 1
/// starts in 2036); times before 1970 map to the epoch.
pub fn ntp_from_system_time(t: SystemTime) -> u64 {
    let since_unix = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_unix.as_secs().wrapping_add(NTP_UNIX_OFFSET) & 0xFFFF_FFFF;
    // nanos < 10^9, so nanos << 32 fits in u64 and the quotient is < 2^32.
    let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ntp_of_unix_epoch_is_the_1970_offset() {
        assert_eq!(ntp_from_system_time(UNIX_EPOCH), NTP_UNIX_OFFSET << 32);
    }

    #[test]
    fn ntp_fraction_of_half_a_second() {
        // 2024-01-01T00:00:00.5Z: 1704067200 s after the Unix epoch.
        let t = UNIX_EPOCH + Duration::from_millis(1_704_067_200_500);
        assert_eq!(
            ntp_from_system_time(t),
            ((1_704_067_200 + NTP_UNIX_OFFSET) << 32) | 0x8000_0000
        );
    }

    #[test]
    fn ntp_seconds_wrap_into_era_1() {
        // 2036-02-07T06:28:16Z is NTP second 2^32, i.e. second 0 of era 1.
        let t = UNIX_EPOCH + Duration::from_secs((1 << 32) - NTP_UNIX_OFFSET + 5);
        assert_eq!(ntp_from_system_time(t), 5 << 32);
    }
}
