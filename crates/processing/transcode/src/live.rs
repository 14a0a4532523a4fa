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
    vertical::{branch, VerticalOutput},
    Rung,
};

/// A live ladder's ffmpeg command: MPEG-TS with a video track (and, for the analysis
/// tap, an audio track) on stdin (times on the channel's media timeline, kept as they
/// are: `-copyts`), one MPEG-TS on stdout with a video track per rung, in the order of
/// `rungs`.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveCommand {
    pub rungs: Vec<Rung>,
    /// The longest segment the packager cuts: a source that sends no keyframe for this
    /// long (intra refresh) gets one from the encoder's own GOP, at twice it.
    pub max_segment: Duration,
    pub analysis: Option<AnalysisOutputs>,
    /// The vertical rendition: one more video track on stdout, after the rungs'.
    pub vertical: Option<VerticalOutput>,
}

/// The analysis tap's outputs: decoded pictures, and the audio's loudness.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisOutputs {
    /// Raw I420 (`yuv420p`) pictures of `width` x `height` at `fps`, one after the
    /// other, to this ffmpeg URL (`unix:/path`).
    pub pictures: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// EBU R128 loudness every 100 ms (ffmpeg's `ebur128` metadata, printed by
    /// `ametadata` as `frame:N pts:P pts_time:T` then `lavfi.r128.M=-23.0`, unbuffered:
    /// `direct=1`), to this URL;
    /// `None` when the source has no audio.
    pub loudness: Option<String>,
}

impl AnalysisOutputs {
    /// The picture size for a source of `width` x `height`: `target_width` wide (never
    /// wider than the source), the height in proportion, both even.
    pub fn size(source: (u32, u32), target_width: u32) -> (u32, u32) {
        let (sw, sh) = (source.0.max(2), source.1.max(2));
        let w = target_width.min(sw) & !1;
        let h = ((u64::from(w) * u64::from(sh) + u64::from(sw) / 2) / u64::from(sw)) as u32;
        (w.max(2), (h & !1).max(2))
    }
}

/// Escapes a value for an option inside a filter graph (`:` and `\` and `'` and the
/// graph's own separators).
fn filter_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        if matches!(c, ':' | '\\' | '\'' | ',' | ';' | '[' | ']' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    // A second level: the graph parser unescapes once, the filter's option parser again.
    out.replace('\\', "\\\\")
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
        // The source's picture goes to the rungs' cascade, and to the tap's and the
        // vertical rendition's branches when there are: one decode, split.
        let mut branches: Vec<&str> = Vec::new();
        if !self.rungs.is_empty() {
            branches.push("src");
        }
        if self.analysis.is_some() {
            branches.push("tapsrc");
        }
        if self.vertical.is_some() {
            branches.push("vsrc");
        }
        let input = |name: &str| -> String {
            if branches.len() == 1 {
                "0:v".into()
            } else {
                name.into()
            }
        };
        let mut chains: Vec<String> = Vec::new();
        if branches.len() > 1 {
            let outs: String = branches.iter().map(|b| format!("[{b}]")).collect();
            chains.push(format!("[0:v]split={}{outs}", branches.len()));
        }
        if !self.rungs.is_empty() {
            chains.push(cascade(&self.rungs).replacen("[0:v]", &format!("[{}]", input("src")), 1));
        }
        if let Some(t) = &self.analysis {
            // Decimated first, so that scaling it costs little.
            chains.push(format!(
                "[{}]fps={},scale={}:{}:flags=bilinear,format=yuv420p[tap]",
                input("tapsrc"),
                t.fps,
                t.width,
                t.height
            ));
        }
        if let Some(v) = &self.vertical {
            chains.push(branch(v, &input("vsrc"), "vert", filter_value));
        }
        if let Some(url) = self.analysis.as_ref().and_then(|t| t.loudness.as_ref()) {
            // The audio's loudness, measured and then dropped.
            chains.push(format!(
                "[0:a]ebur128=metadata=1,ametadata=mode=print:key=lavfi.r128.M:direct=1:file={},anullsink",
                filter_value(url)
            ));
        }
        let graph = chains.join(";");
        a.push("-filter_complex".into());
        a.push(graph);
        let max = self.max_segment.as_secs_f64() * 2.0;
        for (i, r) in self.rungs.iter().enumerate() {
            let gop = (r.frame_rate * max).round().max(1.0) as u32;
            a.extend(["-map".into(), format!("[v{i}]")]);
            a.extend(encode_args(r, &format!("v:{i}"), gop, "source".into()));
        }
        if let Some(v) = &self.vertical {
            let gop = (v.rung.frame_rate * max).round().max(1.0) as u32;
            let stream = format!("v:{}", self.rungs.len());
            a.extend(["-map".into(), "[vert]".into()]);
            a.extend(encode_args(&v.rung, &stream, gop, "source".into()));
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
        if let Some(t) = &self.analysis {
            a.extend(["-map", "[tap]", "-f", "rawvideo", "-pix_fmt", "yuv420p"].map(String::from));
            a.push(t.pictures.clone());
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{default_ladder, plan, Source};

    /// The default ladder's rungs for a 720p30 source: 480p and 360p.
    fn rungs_below_720p30() -> Vec<Rung> {
        plan(
            &default_ladder(),
            Source {
                video: Some((1280, 720)),
                frame_rate: Some(30.0),
            },
        )
        .unwrap()
    }

    #[test]
    fn one_input_one_output_keyframes_from_the_source() {
        let rungs = rungs_below_720p30();
        let c = LiveCommand {
            rungs,
            max_segment: Duration::from_secs(3),
            analysis: None,
            vertical: None,
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

    #[test]
    fn the_analysis_tap_is_a_decimated_branch_and_a_loudness_meter() {
        let rungs = rungs_below_720p30();
        let c = LiveCommand {
            rungs,
            max_segment: Duration::from_secs(3),
            analysis: Some(AnalysisOutputs {
                pictures: "unix:/tmp/p.sock".into(),
                width: 320,
                height: 180,
                fps: 5,
                loudness: Some("unix:/tmp/l.sock".into()),
            }),
            vertical: None,
        };
        let text = c.args().join(" ");
        assert!(
            text.contains("[0:v]split=2[src][tapsrc];[src]scale=854:480"),
            "{text}"
        );
        assert!(
            text.contains("[tapsrc]fps=5,scale=320:180:flags=bilinear,format=yuv420p[tap]"),
            "{text}"
        );
        assert!(
            text.contains("direct=1:file=unix\\\\:/tmp/l.sock,anullsink"),
            "{text}"
        );
        assert!(
            text.ends_with("-map [tap] -f rawvideo -pix_fmt yuv420p unix:/tmp/p.sock"),
            "{text}"
        );
        assert_eq!(AnalysisOutputs::size((1280, 720), 320), (320, 180));
        assert_eq!(AnalysisOutputs::size((1278, 719), 320), (320, 180));
        assert_eq!(AnalysisOutputs::size((1080, 1920), 320), (320, 568));
        assert_eq!(AnalysisOutputs::size((240, 136), 320), (240, 136));
    }

    #[test]
    fn the_vertical_rendition_is_a_steerable_branch_and_one_more_track() {
        use crate::{VerticalOutput, VerticalSize};
        let mut rungs = rungs_below_720p30();
        let size = VerticalSize::plan((1280, 720), (720, 1280)).unwrap();
        let rung = Rung {
            name: "portrait".into(),
            width: size.out.0,
            height: size.out.1,
            bitrate_kbps: 800,
            ..rungs[0].clone()
        };
        let vertical = Some(VerticalOutput {
            rung,
            size,
            control: "ipc:///tmp/v.sock".into(),
        });
        let with = |rungs: Vec<Rung>, analysis| LiveCommand {
            rungs,
            max_segment: Duration::from_secs(3),
            analysis,
            vertical: vertical.clone(),
        };
        let text = with(rungs.clone(), None).args().join(" ");
        assert!(
            text.contains("[0:v]split=2[src][vsrc];[src]scale=854:480"),
            "{text}"
        );
        assert!(
            text.contains("[vsrc]zmq=bind_address=ipc\\\\:///tmp/v.sock,crop@reframe=w=406:h=720:x=(iw-ow)/2:y=(ih-oh)/2,scale=406:720:flags=bicubic,format=yuv420p[vert]"),
            "{text}"
        );
        // The third video track of the one output, its options its own.
        assert!(
            text.contains("-map [vert] -c:v:2 libx264") && text.contains("-b:v:2 800k"),
            "{text}"
        );
        assert!(text.ends_with("-f mpegts pipe:1"), "{text}");
        // With the tap: a three-way split.
        let tap = AnalysisOutputs {
            pictures: "unix:/tmp/p.sock".into(),
            width: 320,
            height: 180,
            fps: 5,
            loudness: None,
        };
        let text = with(rungs.clone(), Some(tap)).args().join(" ");
        assert!(text.contains("[0:v]split=3[src][tapsrc][vsrc];"), "{text}");
        // No rungs below the source: the vertical branch alone, from the input.
        rungs.clear();
        let text = with(rungs, None).args().join(" ");
        assert!(!text.contains("split"), "{text}");
        assert!(text.contains("-filter_complex [0:v]zmq="), "{text}");
        assert!(text.contains("-map [vert] -c:v:0 libx264"), "{text}");
    }
}
