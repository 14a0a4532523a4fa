//! The ladder's command for a live channel: frames in on stdin, every rung out on
//! stdout, keyframes where the source has them.
//!
//! Why keyframes from the source, not on a time grid: the channel's packager cuts the
//! source rendition at its keyframes (the first at or past each segment's nominal end).
//! A rung whose keyframes are exactly the source's, at exactly the source's times, is
//! cut by the same rule into the same segments, whatever the source's GOP; a time grid
//! only agrees with the source when the source's GOP is the segment duration.

use std::time::Duration;

use crate::{
    command::{cascade, encode_args},
    Rung,
};

/// A live ladder's ffmpeg command: MPEG-TS with one video track on stdin (times on the
/// channel's media timeline, kept as they are: `-copyts`), one MPEG-TS on stdout with a
/// video track per rung, in the order of `rungs`.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveCommand {
    pub rungs: Vec<Rung>,
    /// The longest segment the packager cuts: a source that sends no keyframe for this
    /// long (intra refresh) gets one from the encoder's own GOP, at twice it.
    pub max_segment: Duration,
}

impl LiveCommand {
    /// ffmpeg's arguments (without the program name).
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            // Start on the first packets: the input begins with a keyframe and carries
            // its parameter sets, so there is little to probe for. (Not `-fflags
            // nobuffer`: it drops the packets probed, the first keyframe among them.)
            "-probesize",
            "32",
            "-analyzeduration",
            "0",
            "-f",
            "mpegts",
            "-i",
            "pipe:0",
            // Times out as they came in: rung segment n starts where the source's does.
            "-copyts",
        ]
        .map(String::from)
        .to_vec();
        a.push("-filter_complex".into());
        a.push(cascade(&self.rungs));
        let max = self.max_segment.as_secs_f64() * 2.0;
        for (i, r) in self.rungs.iter().enumerate() {
            let gop = (r.frame_rate * max).round().max(1.0) as u32;
            a.extend(["-map".into(), format!("[v{i}]")]);
            a.extend(encode_args(r, &format!("v:{i}"), gop, "source".into()));
        }
        a.extend(
            [
                "-muxdelay",
                "0",
                "-muxpreload",
                "0",
                // Every packet to the pipe as it is muxed: the packager is waiting.
                "-flush_packets",
                "1",
                // PES lengths on video too (up to 64 KiB), so that the demuxer can hand
                // on a frame when its last byte arrives rather than when the next
                // frame begins.
                "-omit_video_pes_length",
                "0",
                "-f",
                "mpegts",
                "pipe:1",
            ]
            .map(String::from),
        );
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{default_ladder, plan, Source};

    #[test]
    fn one_input_one_output_keyframes_from_the_source() {
        let rungs = plan(
            &default_ladder(),
            Source {
                video: Some((1280, 720)),
                frame_rate: Some(30.0),
            },
        )
        .unwrap();
        let c = LiveCommand {
            rungs,
            max_segment: Duration::from_secs(3),
        };
        let a = c.args();
        let text = a.join(" ");
        assert_eq!(a.iter().filter(|x| *x == "-i").count(), 1);
        assert!(text.contains("-f mpegts -i pipe:0 -copyts"), "{text}");
        assert_eq!(a.iter().filter(|x| *x == "source").count(), 2, "{text}");
        assert!(text.contains("-force_key_frames:v:1 source"), "{text}");
        assert!(text.contains("-g:v:0 180 -keyint_min:v:0 180"), "{text}");
        // Every rung's options for its own stream: one output holds them all.
        assert!(
            text.contains("-b:v:0 1200k") && text.contains("-b:v:1 600k"),
            "{text}"
        );
        assert!(text.ends_with("-f mpegts pipe:1"), "{text}");
        assert!(text.contains("[v0]") && text.contains("[v1]"), "{text}");
    }
}
