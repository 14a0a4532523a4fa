//! The one ffmpeg command of a channel's ladder: decode once, `split`, scale per rung,
//! encode per rung with keyframes forced on the segment grid, and the audio once.

use std::time::Duration;

use crate::{Rung, VideoEncoder};

/// Where each rung (and the audio) goes: ffmpeg output URLs, MPEG-TS each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// A rung's name (`720p`) or `audio`.
    pub name: String,
    pub url: String,
}

/// A ladder's ffmpeg command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The input's ffmpeg format (`flv`, `mpegts`) and URL (`pipe:0`, a file).
    pub input_format: String,
    pub input: String,
    /// Read the input at its own pace (`-re`): for a file standing in for a live feed
    /// (benchmarks); a live pipe is paced by its writer.
    pub paced: bool,
    /// `D`: a keyframe is forced at every multiple of it (the packager's segment grid),
    /// and scene-cut keyframes are off, so that every rung cuts where the source does.
    pub segment_duration: Duration,
    pub rungs: Vec<Rung>,
    /// AAC bitrate of the audio, encoded once for every rung; `None`: no audio output.
    pub audio_kbps: Option<u32>,
}

impl Command {
    /// ffmpeg's arguments (without the program name). `outputs` names a URL for every
    /// rung and for `audio`; a missing one is an error in the caller, said here.
    pub fn args(&self, outputs: &[Output]) -> Result<Vec<String>, String> {
        let url = |name: &str| {
            outputs
                .iter()
                .find(|o| o.name == name)
                .map(|o| o.url.clone())
                .ok_or_else(|| format!("no output URL for {name}"))
        };
        let mut a: Vec<String> = vec![
            "-hide_banner".into(),
            "-loglevel".into(),
            "error".into(),
            "-nostdin".into(),
        ];
        if self.paced {
            a.push("-re".into());
        }
        a.extend([
            "-f".into(),
            self.input_format.clone(),
            "-i".into(),
            self.input.clone(),
        ]);
        if !self.rungs.is_empty() {
            a.push("-filter_complex".into());
            a.push(self.filter());
        }
        let d = self.segment_duration.as_secs_f64();
        for (i, r) in self.rungs.iter().enumerate() {
            let gop = (r.frame_rate * d).round().max(1.0) as u32;
            a.extend(["-map".into(), format!("[v{i}]")]);
            // On the grid of media time, whatever the GOP count says.
            a.extend(encode_args(
                r,
                "v",
                gop,
                format!("expr:gte(t,n_forced*{d})"),
            ));
            a.extend(self.ts_output(url(&r.name)?));
        }
        if let Some(kbps) = self.audio_kbps {
            // `?`: a source without audio has no audio output, and that is no error.
            a.extend([
                "-map".into(),
                "0:a:0?".into(),
                "-c:a".into(),
                "aac".into(),
                "-b:a".into(),
                format!("{kbps}k"),
                "-ac".into(),
                "2".into(),
            ]);
            a.extend(self.ts_output(url("audio")?));
        }
        Ok(a)
    }

    /// The cascade of scales (see [`cascade`]).
    fn filter(&self) -> String {
        cascade(&self.rungs)
    }

    fn ts_output(&self, url: String) -> [String; 7] {
        [
            "-muxdelay".into(),
            "0".into(),
            "-muxpreload".into(),
            "0".into(),
            "-f".into(),
            "mpegts".into(),
            url,
        ]
    }
}

/// A cascade, largest rung first: the source is scaled to the first rung, and each
/// rung is scaled down from the one before it rather than from the source, so the
/// full-size picture is scaled once (`[0:v]scale=1280:720,…,split=2[v0][c0];
/// [c0]scale=854:480,split=2[v1][c1];[c1]scale=640:360[v2]`). Measured in
/// docs/performance.md against scaling every rung from the source.
///
/// Rung `i` comes out as `[v{i}]`.
pub(crate) fn cascade(rungs: &[Rung]) -> String {
    let n = rungs.len();
    let mut f = String::from("[0:v]");
    for (i, r) in rungs.iter().enumerate() {
        if i > 0 {
            f.push_str(&format!(";[c{}]", i - 1));
        }
        f.push_str(&format!("scale={}:{}:flags=bicubic", r.width, r.height));
        if r.reduce_frame_rate {
            f.push_str(&format!(",fps={}", r.frame_rate));
        }
        if i == 0 {
            f.push_str(",format=yuv420p");
        }
        if i + 1 < n {
            f.push_str(&format!(",split=2[v{i}][c{i}]"));
        } else {
            f.push_str(&format!("[v{i}]"));
        }
    }
    f
}

/// One rung's encoder arguments: target bitrate with a capped VBV, a GOP of `gop`
/// frames, scene cuts off, and keyframes forced by `force` (ffmpeg's
/// `-force_key_frames` value). `stream` is the stream specifier every option is given
/// for (`v` for an output of its own; `v:1` for the second video stream of an output
/// shared by several rungs, where an option without it would apply to all of them and
/// the last rung's would win).
pub(crate) fn encode_args(r: &Rung, stream: &str, gop: u32, force: String) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut opt = |name: &str, value: String| {
        a.push(format!("-{name}:{stream}"));
        a.push(value);
    };
    opt("c", r.encoder.ffmpeg_name().into());
    opt("preset", r.preset.clone());
    opt("b", format!("{}k", r.bitrate_kbps));
    opt("maxrate", format!("{}k", r.bitrate_kbps * 11 / 10));
    opt("bufsize", format!("{}k", r.bitrate_kbps * 2));
    opt("g", gop.to_string());
    opt("keyint_min", gop.to_string());
    opt("sc_threshold", "0".into());
    opt("force_key_frames", force);
    if r.encoder == VideoEncoder::X264 {
        // No lookahead or B-frame delay: the ladder must add little latency.
        opt("tune", "zerolatency".into());
        // The frame rate for rate control and the level, said rather than guessed:
        // a live input is probed for a few bytes only, and a rate the demuxer could not
        // estimate falls back to the time base (90000 "fps", starving every frame).
        let (num, den) = fps_fraction(r.frame_rate);
        opt("x264-params", format!("scenecut=0:fps={num}/{den}"));
    }
    a
}

/// `fps` as a fraction x264 takes: whole rates as they are, NTSC-like rates over 1001.
fn fps_fraction(fps: f64) -> (u64, u64) {
    let fps = if fps.is_finite() && fps > 0.0 {
        fps
    } else {
        30.0
    };
    let ntsc = fps * 1001.0 / 1000.0;
    if (fps - fps.round()).abs() > 0.001 && (ntsc - ntsc.round()).abs() < 0.01 {
        (ntsc.round() as u64 * 1000, 1001)
    } else {
        ((fps * 1000.0).round() as u64, 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{default_ladder, plan, Source};

    fn command() -> Command {
        let rungs = plan(
            &default_ladder(),
            Source {
                video: Some((1920, 1080)),
                frame_rate: Some(30.0),
            },
        )
        .unwrap();
        Command {
            input_format: "flv".into(),
            input: "pipe:0".into(),
            paced: false,
            segment_duration: Duration::from_secs(2),
            rungs,
            audio_kbps: Some(128),
        }
    }

    fn outputs(c: &Command) -> Vec<Output> {
        c.rungs
            .iter()
            .map(|r| r.name.clone())
            .chain(["audio".to_owned()])
            .map(|name| Output {
                url: format!("/tmp/{name}.ts"),
                name,
            })
            .collect()
    }

    #[test]
    fn one_decode_a_split_and_an_encode_per_rung_on_the_segment_grid() {
        let c = command();
        let a = c.args(&outputs(&c)).unwrap();
        let text = a.join(" ");
        assert_eq!(
            a.iter().filter(|x| *x == "-i").count(),
            1,
            "one input, one decode"
        );
        assert!(
            text.contains("[0:v]scale=1280:720:flags=bicubic,format=yuv420p,split=2[v0][c0];[c0]scale=854:480:flags=bicubic,split=2[v1][c1];[c1]scale=640:360:flags=bicubic[v2]"),
            "{text}"
        );
        assert_eq!(a.iter().filter(|x| *x == "libx264").count(), 3);
        assert_eq!(
            a.iter()
                .filter(|x| x.as_str() == "expr:gte(t,n_forced*2)")
                .count(),
            3
        );
        assert!(
            text.contains(
                "-b:v 3000k -maxrate:v 3300k -bufsize:v 6000k -g:v 60 -keyint_min:v 60 -sc_threshold:v 0"
            ),
            "{text}"
        );
        assert!(
            text.contains("-map 0:a:0? -c:a aac -b:a 128k -ac 2"),
            "{text}"
        );
        assert!(text.ends_with("-f mpegts /tmp/audio.ts"), "{text}");
    }

    #[test]
    fn frame_rates_as_fractions() {
        assert_eq!(fps_fraction(30.0), (30_000, 1000));
        assert_eq!(fps_fraction(29.97), (30_000, 1001));
        assert_eq!(fps_fraction(59.94), (60_000, 1001));
        assert_eq!(fps_fraction(12.5), (12_500, 1000));
        assert_eq!(fps_fraction(f64::NAN), (30_000, 1000));
    }

    #[test]
    fn a_missing_output_is_named_and_no_rungs_means_audio_only() {
        let c = command();
        let err = c.args(&outputs(&c)[1..]).unwrap_err();
        assert_eq!(err, "no output URL for 720p");
        let audio_only = Command {
            rungs: Vec::new(),
            ..command()
        };
        let a = audio_only
            .args(&[Output {
                name: "audio".into(),
                url: "x.ts".into(),
            }])
            .unwrap();
        assert!(!a.contains(&"-filter_complex".to_owned()));
    }
}
