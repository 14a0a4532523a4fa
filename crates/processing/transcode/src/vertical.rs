//! The vertical (9:16) rendition's branch of a live ladder: the source's picture cropped
//! to a window that `starling-reframe` moves, scaled and encoded with the other rungs.
//!
//! The window moves while ffmpeg runs: its `zmq` filter takes commands for the named
//! `crop` ([`CROP_FILTER`]) from the ladder runner (`starling-zmtp`). Each command is an
//! expression of the frame time `t` that glides the window from where it was to where
//! the reframer wants it over one analysis interval, so the picture moves on every
//! frame rather than in steps at the analysis rate; the glide starts at the first frame
//! the command reaches (latched in the expression's own variables), so no clock needs to
//! be shared with ffmpeg.

use crate::Rung;

/// The instance name of the vertical branch's `crop` (the target of its commands).
pub const CROP_FILTER: &str = "crop@reframe";

/// What the vertical branch crops and puts out for a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerticalSize {
    /// The window, in source pixels (the source's full height).
    pub crop: (u32, u32),
    /// The encoded picture: the configured size, or smaller where the source is (the
    /// window is never scaled up past the configured size, nor up at all when the
    /// source is shorter than it).
    pub out: (u32, u32),
}

impl VerticalSize {
    /// The sizes for `source` and the configured `target` (720x1280); `None` when the
    /// source is already as tall for its width as the target (a portrait source needs
    /// no reframing: its own ladder is the vertical one).
    pub fn plan(source: (u32, u32), target: (u32, u32)) -> Option<Self> {
        let (sw, sh) = (u64::from(source.0), u64::from(source.1));
        let (tw, th) = (u64::from(target.0.max(2)), u64::from(target.1.max(2)));
        if sw == 0 || sh == 0 || sw * th <= sh * tw {
            return None;
        }
        let even = |v: u64| ((v + 1) & !1).max(2) as u32;
        let crop_h = sh & !1;
        let crop = (even(crop_h * tw / th).min(sw as u32 & !1), crop_h as u32);
        let out_h = th.min(crop_h) & !1;
        let out = (even(out_h * tw / th), out_h as u32);
        Some(Self { crop, out })
    }

    /// The bitrate for the encoded size, from `kbps` at `target`'s size (by area; at
    /// least 300 kb/s).
    pub fn bitrate(&self, target: (u32, u32), kbps: u32) -> u32 {
        let area = |s: (u32, u32)| f64::from(s.0) * f64::from(s.1);
        let scaled = f64::from(kbps) * area(self.out) / area(target).max(1.0);
        (scaled.round() as u32).clamp(300, kbps.max(300))
    }
}

/// The vertical branch of a live ladder's command.
#[derive(Debug, Clone, PartialEq)]
pub struct VerticalOutput {
    /// Its encoding (`name` is the packager's `VERTICAL_RENDITION`; `width` and
    /// `height` the encoded size).
    pub rung: Rung,
    pub size: VerticalSize,
    /// Where the `zmq` filter listens for the window's moves (`ipc:///path`).
    pub control: String,
}

/// The command that moves the window's left edge from `from` to `to` (source pixels)
/// over `over_secs` of media time, starting at the first frame it reaches; at once when
/// `over_secs` is 0 (a cut). The request's text for the `zmq` filter.
///
/// Variables of the expression: 1 the time of the first frame, 2 set once it is
/// latched, 3 whether `t` is unknown (crop evaluates the expression once, when the
/// command arrives, without a frame: the target then, so nothing odd is kept).
pub fn steer_command(from: u32, to: u32, over_secs: f64) -> String {
    if over_secs <= 0.0 || from == to || !over_secs.is_finite() {
        return format!("{CROP_FILTER} x {to}");
    }
    // Numbers only, never text from outside: ffmpeg 5.1's crop crashes on the next
    // frame after a command whose expression does not parse.
    let d = over_secs.clamp(0.001, 60.0);
    let delta = i64::from(to) - i64::from(from);
    format!(
        "{CROP_FILTER} x st(3,isnan(t));if(ld(3)+ld(2),0,st(1,t)+st(2,1));if(ld(3),{to},{from}+({delta})*clip((t-ld(1))/{d:.3},0,1))"
    )
}

/// The branch of the filter graph, from the split's `[input]` to `[output]`. The
/// window starts centred.
pub(crate) fn branch(
    v: &VerticalOutput,
    input: &str,
    output: &str,
    escape: fn(&str) -> String,
) -> String {
    let (cw, ch) = v.size.crop;
    let mut f = format!(
        "[{input}]zmq=bind_address={},{CROP_FILTER}=w={cw}:h={ch}:x=(iw-ow)/2:y=(ih-oh)/2,scale={}:{}:flags=bicubic",
        escape(&v.control),
        v.size.out.0,
        v.size.out.1
    );
    if v.rung.reduce_frame_rate {
        f.push_str(&format!(",fps={}", v.rung.frame_rate));
    }
    f.push_str(&format!(",format=yuv420p[{output}]"));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_full_height_at_nine_by_sixteen() {
        let p = VerticalSize::plan((1280, 720), (720, 1280)).unwrap();
        assert_eq!(p.crop, (406, 720));
        // Never scaled up: a 720p source gives a 720-line picture.
        assert_eq!(p.out, (406, 720));
        let p = VerticalSize::plan((1920, 1080), (720, 1280)).unwrap();
        assert_eq!(p.crop, (608, 1080));
        assert_eq!(p.out, (608, 1080));
        let p = VerticalSize::plan((3840, 2160), (720, 1280)).unwrap();
        assert_eq!((p.crop, p.out), ((1216, 2160), (720, 1280)));
        // Odd sizes come out even.
        let p = VerticalSize::plan((1279, 719), (720, 1280)).unwrap();
        assert_eq!((p.crop, p.out), ((404, 718), (404, 718)));
        // Portrait and square-ish-but-narrower sources need no window.
        assert_eq!(VerticalSize::plan((720, 1280), (720, 1280)), None);
        assert_eq!(VerticalSize::plan((1080, 1920), (720, 1280)), None);
        assert_eq!(VerticalSize::plan((0, 720), (720, 1280)), None);
        assert!(VerticalSize::plan((1000, 1000), (720, 1280)).is_some());
    }

    #[test]
    fn the_bitrate_follows_the_area() {
        let target = (720, 1280);
        let full = VerticalSize::plan((3840, 2160), target).unwrap();
        assert_eq!(full.bitrate(target, 2500), 2500);
        let small = VerticalSize::plan((1280, 720), target).unwrap();
        assert_eq!(small.bitrate(target, 2500), 793);
        let tiny = VerticalSize::plan((320, 180), target).unwrap();
        assert_eq!(tiny.bitrate(target, 2500), 300);
    }

    #[test]
    fn commands_glide_or_jump() {
        assert_eq!(steer_command(100, 300, 0.0), "crop@reframe x 300");
        assert_eq!(steer_command(300, 300, 0.2), "crop@reframe x 300");
        let glide = steer_command(300, 100, 0.2);
        assert_eq!(
            glide,
            "crop@reframe x st(3,isnan(t));if(ld(3)+ld(2),0,st(1,t)+st(2,1));if(ld(3),100,300+(-200)*clip((t-ld(1))/0.200,0,1))"
        );
    }
}
