//! AAC → Opus for WHEP viewers, the sans-IO half: the ffmpeg command line, whether an
//! ffmpeg has the encoder, the retry backoff, and the [`Timeline`] that puts the Opus
//! packets back on the channel's media timeline.
//!
//! One ffmpeg child per channel (`opus_child.rs`, the driver) is fed the channel's raw
//! AAC as ADTS and writes Opus in MPEG-TS, read back with the in-house demuxer. ffmpeg
//! numbers its output by samples from 0 and knows nothing of the source's timestamps;
//! the [`Timeline`] remembers where each AAC frame it was fed starts (in samples at
//! 48 kHz, counted the way ffmpeg counts them) and its presentation time, and places
//! every Opus packet at the presentation time of the AAC frame its first sample came
//! from, plus the offset into that frame. Drift between the source's clock and its
//! sample count is thus corrected at every AAC frame, never accumulated. Nothing here
//! does I/O or reads a clock: instants are handed in.

use std::{collections::VecDeque, ffi::OsString, time::Duration};

/// Opus's RTP clock (and libopus's only internal rate).
pub(crate) const OPUS_RATE: i64 = 48_000;

/// The encoder's look-ahead with `-application lowdelay` (2.5 ms, `OPUS_GET_LOOKAHEAD`):
/// the first sample of the input is sample 120 of the encoded stream. Decoders over
/// WebRTC are not told to skip it, so it is taken off the timestamps instead.
pub(crate) const PRE_SKIP: i64 = 120;

/// A step in the AAC timestamps larger than this (either way) restarts the child, so
/// that its sample count starts again from the new time.
pub(crate) const MAX_GAP: Duration = Duration::from_millis(500);

/// AAC frames the timeline remembers at most (about 20 s at 48 kHz). ffmpeg holds a few
/// dozen at a time; more means a stalled child, whose oldest frames are forgotten.
const MAX_PENDING: usize = 1024;

/// Opus bitrate: transparent for stereo speech and music at 48 kHz.
pub(crate) const BITRATE: &str = "96k";

/// The arguments of the child: raw AAC in ADTS on stdin, Opus in MPEG-TS on stdout.
///
/// - `-probesize 32 -analyzeduration 0`: the ADTS header says everything; without
///   these ffmpeg reads about a second of input before it encodes anything.
/// - `-application lowdelay -frame_duration 20`: 2.5 ms of look-ahead instead of
///   6.5 ms, and 20 ms packets (50 a second, what browsers send).
/// - `-muxdelay 0 -muxpreload 0 -pes_payload_size 0 -flush_packets 1`: every packet is
///   its own PES, written as soon as it is encoded (the TS muxer otherwise gathers audio
///   into PES of ~3 KB, and the output into 32 KB writes).
/// - `-ac 2` only for more than two channels: WebRTC's Opus is mono or stereo, and
///   libopus would write multistream packets for 5.1.
pub(crate) fn ffmpeg_args(channels: u8) -> Vec<OsString> {
    let mut args: Vec<&str> = vec![
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-probesize",
        "32",
        "-analyzeduration",
        "0",
        "-f",
        "aac",
        "-i",
        "pipe:0",
        "-vn",
        "-c:a",
        "libopus",
        "-b:a",
        BITRATE,
        "-application",
        "lowdelay",
        "-frame_duration",
        "20",
    ];
    if channels > 2 {
        args.extend(["-ac", "2"]);
    }
    args.extend([
        "-f",
        "mpegts",
        "-muxdelay",
        "0",
        "-muxpreload",
        "0",
        "-pes_payload_size",
        "0",
        "-flush_packets",
        "1",
        "pipe:1",
    ]);
    args.into_iter().map(OsString::from).collect()
}

/// The arguments that list an ffmpeg's encoders.
pub(crate) const ENCODERS_ARGS: [&str; 2] = ["-hide_banner", "-encoders"];

/// Whether `ffmpeg -encoders` output lists libopus (a line ` A....D libopus  ...`).
pub(crate) fn lists_libopus(encoders: &str) -> bool {
    encoders
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("libopus"))
}

/// How long to wait before the next start after `failures` failures in a row: 1 s,
/// doubling, at most 30 s.
pub(crate) fn backoff(failures: u32) -> Duration {
    let secs = 1u64 << failures.saturating_sub(1).min(5);
    Duration::from_secs(secs.min(30))
}

/// What to do with an AAC frame about to be fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feed {
    /// It follows the previous one: feed it to the running child.
    Continue,
    /// Its time jumped by more than [`MAX_GAP`]: restart the child (a new timeline)
    /// and feed it there.
    Jump,
}

/// An AAC frame given to the child.
#[derive(Debug, Clone, Copy)]
struct Fed<T> {
    /// Its first sample's position in the child's input, at 48 kHz.
    pos: i64,
    /// Its presentation time at 48 kHz.
    pts: i64,
    /// When it was fed (for the added delay).
    at: T,
}

/// An Opus packet placed on the media timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed<T> {
    /// Presentation time at 48 kHz.
    pub rtp_time: i64,
    /// When the AAC frame holding the packet's last sample was fed.
    pub fed_at: T,
}

/// One child's mapping from its output samples back to the AAC frames' times. `T` is
/// the instant type of the driver (so tests need no clock).
#[derive(Debug)]
pub(crate) struct Timeline<T> {
    /// The AAC track's sample rate and timescale.
    rate: i64,
    timescale: u32,
    /// Input samples fed so far, at the AAC rate (counted, not summed in 48 kHz, so
    /// 44.1 kHz does not drift by rounding).
    input_samples: i64,
    /// Where the next frame is expected, in the timescale.
    next_pts: Option<i64>,
    frames: VecDeque<Fed<T>>,
    /// Output samples read so far (at 48 kHz, pre-skip included).
    output_samples: i64,
}

impl<T: Copy> Timeline<T> {
    /// A timeline for an AAC track of `sample_rate` Hz whose timestamps tick at
    /// `timescale` Hz.
    pub fn new(sample_rate: u32, timescale: u32) -> Self {
        Timeline {
            rate: i64::from(sample_rate.max(1)),
            timescale: timescale.max(1),
            input_samples: 0,
            next_pts: None,
            frames: VecDeque::new(),
            output_samples: 0,
        }
    }

    /// Whether a frame at `pts` (timescale ticks) follows the frames fed so far.
    pub fn check(&self, pts: i64) -> Feed {
        let Some(expected) = self.next_pts else {
            return Feed::Continue;
        };
        let max = i128::from(self.timescale) * MAX_GAP.as_millis() as i128 / 1000;
        if (i128::from(pts) - i128::from(expected)).abs() > max {
            Feed::Jump
        } else {
            Feed::Continue
        }
    }

    /// Records a frame of `samples` samples (at the AAC rate) at `pts`, fed at `at`.
    /// Call it only for frames the child was actually given: a frame dropped before
    /// the child must not move the sample count.
    pub fn fed(&mut self, pts: i64, samples: u32, at: T) {
        let pos = self.input_samples * OPUS_RATE / self.rate;
        self.frames.push_back(Fed {
            pos,
            pts: rescale(pts, self.timescale, OPUS_RATE as u32),
            at,
        });
        if self.frames.len() > MAX_PENDING {
            self.frames.pop_front();
        }
        self.input_samples += i64::from(samples);
        self.next_pts = Some(pts + i64::from(samples) * i64::from(self.timescale) / self.rate);
    }

    /// Places the next Opus packet, of `duration` samples at 48 kHz. `None` if nothing
    /// was fed (output without input: ignored).
    pub fn place(&mut self, duration: i64) -> Option<Placed<T>> {
        let first = self.output_samples - PRE_SKIP;
        self.output_samples += duration;
        let last = first + duration.max(1) - 1;
        // Frames wholly before this packet are done with (keep the one holding `first`).
        while self.frames.len() > 1 && self.frames.get(1).is_some_and(|f| f.pos <= first) {
            self.frames.pop_front();
        }
        let start = self.frames.front()?;
        let end = self
            .frames
            .iter()
            .take_while(|f| f.pos <= last)
            .last()
            .unwrap_or(start);
        Some(Placed {
            rtp_time: start.pts + (first - start.pos),
            fed_at: end.at,
        })
    }
}

/// `ticks` at `from` Hz in `to` Hz, rounded down.
fn rescale(ticks: i64, from: u32, to: u32) -> i64 {
    if from == to {
        return ticks;
    }
    let v = i128::from(ticks) * i128::from(to) / i128::from(from.max(1));
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_command_reads_adts_and_writes_opus_in_ts_without_buffering() {
        let args: Vec<String> = ffmpeg_args(2)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let line = args.join(" ");
        assert!(line.contains("-f aac -i pipe:0"), "{line}");
        assert!(line.contains("-c:a libopus -b:a 96k -application lowdelay -frame_duration 20"));
        assert!(line.ends_with(
            "-f mpegts -muxdelay 0 -muxpreload 0 -pes_payload_size 0 -flush_packets 1 pipe:1"
        ));
        assert!(!line.contains("-ac"));
        let six: Vec<OsString> = ffmpeg_args(6);
        assert!(six.windows(2).any(|w| w[0] == "-ac" && w[1] == "2"));
    }

    #[test]
    fn libopus_is_found_in_the_encoder_list() {
        let list = "Encoders:\n V..... = Video\n ------\n A....D aac   AAC\n A..... libopus              libopus Opus (codec opus)\n";
        assert!(lists_libopus(list));
        assert!(!lists_libopus(" A..X.. opus  Opus\n A....D aac  AAC\n"));
        assert!(!lists_libopus(""));
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let s: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(s, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(0).as_secs(), 1);
    }

    #[test]
    fn packets_are_placed_at_the_aac_times_less_the_pre_skip() {
        // 48 kHz AAC, millisecond timestamps (RTMP) starting at 10 s.
        let mut t = Timeline::<u32>::new(48_000, 1000);
        for i in 0..10u32 {
            let pts = 10_000 + i64::from(i) * 1024 * 1000 / 48_000;
            assert_eq!(t.check(pts), Feed::Continue);
            t.fed(pts, 1024, i);
        }
        // The first packet starts 120 samples before the first input sample.
        let p = t.place(960).unwrap();
        assert_eq!(p.rtp_time, 480_000 - PRE_SKIP);
        assert_eq!(p.fed_at, 0);
        // The second: encoded samples 960..1920 = input 840..1800, within frames 0 and 1.
        let p = t.place(960).unwrap();
        assert_eq!(p.rtp_time, 480_000 + 840);
        assert_eq!(p.fed_at, 1);
        // The third: input 1800..2760 starts in frame 1 (pos 1024, pts 10_021 ms).
        let p = t.place(960).unwrap();
        assert_eq!(p.rtp_time, 10_021 * 48 + (1800 - 1024));
        assert_eq!(p.fed_at, 2);
    }

    #[test]
    fn the_aac_clock_wins_over_the_sample_count() {
        // 44.1 kHz frames stamped 1 ms late each (a source clock running fast): the
        // packets follow the stamps, not ffmpeg's count.
        let mut t = Timeline::<()>::new(44_100, 1000);
        for i in 0..200i64 {
            t.fed(i * 24, 1024, ());
        }
        // Skip to output sample 48_000 (one second in).
        for _ in 0..50 {
            t.place(960).unwrap();
        }
        let p = t.place(960).unwrap();
        // Input sample 48_000 - 120 (at 48 kHz) is in frame 42, which starts at
        // 42 × 1024 samples at 44.1 kHz = 46_811 at 48 kHz, and is stamped 42 × 24 ms.
        let pos = 42 * 1024 * 48_000 / 44_100;
        assert_eq!(pos, 46_811);
        assert_eq!(p.rtp_time, 42 * 24 * 48 + (48_000 - PRE_SKIP - pos));
    }

    #[test]
    fn a_step_over_half_a_second_is_a_jump() {
        let mut t = Timeline::<()>::new(48_000, 90_000);
        assert_eq!(t.check(123), Feed::Continue);
        t.fed(0, 1024, ());
        // Expected next: 1920 ticks.
        assert_eq!(t.check(1920), Feed::Continue);
        assert_eq!(t.check(1920 + 45_000), Feed::Continue);
        assert_eq!(t.check(1920 + 45_001), Feed::Jump);
        assert_eq!(t.check(1920 - 45_001), Feed::Jump);
    }

    #[test]
    fn output_without_input_is_not_placed_and_memory_is_bounded() {
        let mut t = Timeline::<()>::new(48_000, 48_000);
        assert!(t.place(960).is_none());
        for i in 0..(MAX_PENDING as i64 + 50) {
            t.fed(i * 1024, 1024, ());
        }
        assert_eq!(t.frames.len(), MAX_PENDING);
    }
}
