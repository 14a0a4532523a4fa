//! The demo picture: 8-bit 4:2:0 planes and the scene drawn into them.
//!
//! The scene is a static background (a title strip, 75% colour bars and a grey ramp), a
//! box bouncing around the picture, and a panel with a big wall-clock `HH:MM:SS.t` (UTC,
//! from the `now` handed in) and the frame number. Colours are BT.709 limited range, as
//! the SPS's VUI declares. Rendering is a pure function of the frame number and `now`;
//! this module reads no clock.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{
    font::{glyph, text_width, ADVANCE, GLYPH_H, GLYPH_W},
    h264_writer::PCM_MB_BYTES,
};

/// A colour as (Y, Cb, Cr), BT.709 limited range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Yuv(pub u8, pub u8, pub u8);

const BLACK: Yuv = Yuv(16, 128, 128);
const PANEL: Yuv = Yuv(40, 128, 128);
const WHITE_LUMA: u8 = 235;
/// Orange, RGB (255, 128, 0).
const BOX: Yuv = Yuv(141, 59, 189);
/// 75% colour bars, BT.709: white, yellow, cyan, green, magenta, red, blue.
const BARS: [Yuv; 7] = [
    Yuv(180, 128, 128),
    Yuv(168, 44, 136),
    Yuv(145, 147, 44),
    Yuv(133, 63, 52),
    Yuv(63, 193, 204),
    Yuv(51, 109, 212),
    Yuv(28, 212, 120),
];
const TITLE: &str = "STARLING DEMO";
/// The clock line has this many characters: `HH:MM:SS.t`.
const CLOCK_CHARS: usize = 10;

/// An 8-bit 4:2:0 picture whose size is a whole number of macroblocks.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Yuv420 {
    width: usize,
    height: usize,
    y: Vec<u8>,
    cb: Vec<u8>,
    cr: Vec<u8>,
}

impl std::fmt::Debug for Yuv420 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Yuv420({}x{})", self.width, self.height)
    }
}

impl Yuv420 {
    /// A black picture of `mb_width` × `mb_height` macroblocks.
    pub(crate) fn new(mb_width: usize, mb_height: usize) -> Self {
        let (width, height) = (mb_width * 16, mb_height * 16);
        Yuv420 {
            width,
            height,
            y: vec![BLACK.0; width * height],
            cb: vec![BLACK.1; width * height / 4],
            cr: vec![BLACK.2; width * height / 4],
        }
    }

    #[cfg(test)]
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    #[cfg(test)]
    pub(crate) fn luma(&self) -> &[u8] {
        &self.y
    }

    #[cfg(test)]
    pub(crate) fn cb(&self) -> &[u8] {
        &self.cb
    }

    #[cfg(test)]
    pub(crate) fn cr(&self) -> &[u8] {
        &self.cr
    }

    fn mb_width(&self) -> usize {
        self.width / 16
    }

    /// The samples of macroblock `addr` (raster order) in `pcm_sample_luma` then
    /// `pcm_sample_chroma` order: 16×16 Y, 8×8 Cb, 8×8 Cr, each row by row.
    pub(crate) fn mb_samples(&self, addr: usize, out: &mut [u8; PCM_MB_BYTES]) {
        let (mbx, mby) = (addr % self.mb_width(), addr / self.mb_width());
        let (luma, chroma) = out.split_at_mut(256);
        for (row, dst) in luma.chunks_exact_mut(16).enumerate() {
            let start = (mby * 16 + row) * self.width + mbx * 16;
            if let Some(src) = self.y.get(start..start + 16) {
                dst.copy_from_slice(src);
            }
        }
        let cw = self.width / 2;
        let (cb, cr) = chroma.split_at_mut(64);
        for (plane, out) in [(&self.cb, cb), (&self.cr, cr)] {
            for (row, dst) in out.chunks_exact_mut(8).enumerate() {
                let start = (mby * 8 + row) * cw + mbx * 8;
                if let Some(src) = plane.get(start..start + 8) {
                    dst.copy_from_slice(src);
                }
            }
        }
    }

    /// Whether macroblock `addr` has any sample that differs from `other`'s (same size).
    pub(crate) fn mb_differs(&self, other: &Yuv420, addr: usize) -> bool {
        let (mbx, mby) = (addr % self.mb_width(), addr / self.mb_width());
        let rows = |plane: &[u8], other: &[u8], n: usize, stride: usize| {
            (0..n).any(|row| {
                let start = (mby * n + row) * stride + mbx * n;
                plane.get(start..start + n) != other.get(start..start + n)
            })
        };
        rows(&self.y, &other.y, 16, self.width)
            || rows(&self.cb, &other.cb, 8, self.width / 2)
            || rows(&self.cr, &other.cr, 8, self.width / 2)
    }

    /// Fills the rectangle (clipped to the picture) with `c`. `x`, `y`, `w`, `h` should be
    /// even so chroma covers exactly the same area.
    fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, c: Yuv) {
        fill_plane(&mut self.y, self.width, self.height, (x, y, w, h), c.0);
        let (cw, ch) = (self.width / 2, self.height / 2);
        let r = (x / 2, y / 2, w.div_ceil(2), h.div_ceil(2));
        fill_plane(&mut self.cb, cw, ch, r, c.1);
        fill_plane(&mut self.cr, cw, ch, r, c.2);
    }

    /// Draws `text` in luma only (the panels under text are neutral grey, so chroma stays).
    fn text(&mut self, x: usize, y: usize, scale: usize, text: &str, luma: u8) {
        for (i, c) in text.chars().enumerate() {
            let Some(rows) = glyph(c) else { continue };
            let gx = x + i * ADVANCE * scale;
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits >> (GLYPH_W - 1 - col) & 1 == 1 {
                        let rect = (gx + col * scale, y + r * scale, scale, scale);
                        fill_plane(&mut self.y, self.width, self.height, rect, luma);
                    }
                }
            }
        }
    }
}

fn fill_plane(
    plane: &mut [u8],
    stride: usize,
    rows: usize,
    (x, y, w, h): (usize, usize, usize, usize),
    v: u8,
) {
    let x1 = x.saturating_add(w).min(stride);
    let y1 = y.saturating_add(h).min(rows);
    if x >= x1 {
        return;
    }
    for row in y..y1 {
        if let Some(line) = plane.get_mut(row * stride + x..row * stride + x1) {
            line.fill(v);
        }
    }
}

/// Where a line of text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TextPos {
    pub x: usize,
    pub y: usize,
    pub scale: usize,
}

/// The static parts of the picture, prepared once, and where the moving parts go.
#[derive(Debug)]
pub(crate) struct Scene {
    width: usize,
    height: usize,
    fps: u64,
    background: Yuv420,
    /// Clock panel rectangle (x, y, w, h).
    panel: (usize, usize, usize, usize),
    pub(crate) clock: TextPos,
    info: TextPos,
    box_size: usize,
    /// Top of the area the box bounces in (below the title strip).
    box_top: usize,
}

impl Scene {
    /// A scene for a visible `width` × `height` (even) in a picture of `mb_width` ×
    /// `mb_height` macroblocks.
    pub(crate) fn new(
        width: usize,
        height: usize,
        mb_width: usize,
        mb_height: usize,
        fps: u32,
    ) -> Self {
        let mut bg = Yuv420::new(mb_width, mb_height);
        let (cw, ch) = (bg.width, bg.height);

        let title_scale = (width / 320).max(1);
        let strip = even(GLYPH_H * title_scale + 4 * title_scale);
        let ramp_top = even(strip + (height.saturating_sub(strip)) * 2 / 3);
        for (i, c) in BARS.iter().enumerate() {
            let x0 = even(i * width / BARS.len());
            let x1 = if i + 1 == BARS.len() {
                cw
            } else {
                even((i + 1) * width / BARS.len())
            };
            bg.fill(x0, strip, x1 - x0, ramp_top.saturating_sub(strip), *c);
        }
        let span = width.saturating_sub(1).max(1);
        for x in 0..cw {
            let v = 16 + 219 * x.min(span) / span;
            fill_plane(&mut bg.y, cw, ch, (x, ramp_top, 1, ch), v as u8);
        }
        // The ramp and the strip are neutral: chroma stays at the initial 128.
        bg.text(
            2 * title_scale,
            2 * title_scale,
            title_scale,
            TITLE,
            WHITE_LUMA,
        );

        let clock_scale = (width * 3 / 5 / (CLOCK_CHARS * ADVANCE)).clamp(1, (height / 30).max(1));
        let info_scale = (clock_scale / 2).max(1);
        let clock_w = text_width("00:00:00.0") * clock_scale;
        let info_w = text_width(&info_text(0)) * info_scale;
        let pad = 2 * clock_scale;
        let panel_w = even(clock_w.max(info_w) + 2 * pad);
        let panel_h = even(GLYPH_H * clock_scale + pad + GLYPH_H * info_scale + 2 * pad);
        let panel_x = even(width.saturating_sub(panel_w) / 2);
        let panel_y = even(height.saturating_sub(panel_h) / 2);
        let clock = TextPos {
            x: panel_x + (panel_w - clock_w) / 2,
            y: panel_y + pad,
            scale: clock_scale,
        };
        let info = TextPos {
            x: panel_x + (panel_w - info_w) / 2,
            y: clock.y + GLYPH_H * clock_scale + pad,
            scale: info_scale,
        };
        Scene {
            width,
            height,
            fps: fps.max(1).into(),
            background: bg,
            panel: (panel_x, panel_y, panel_w, panel_h),
            clock,
            info,
            box_size: even((height / 7).max(8)),
            box_top: strip,
        }
    }

    /// Top-left corner of the bouncing box in frame `n`: it crosses the picture at
    /// width × 3/16 pixels per second across and height / 4 down, reflecting at the edges.
    pub(crate) fn box_position(&self, n: u64) -> (usize, usize) {
        let x_range = self.width.saturating_sub(self.box_size);
        let y_range = self.height.saturating_sub(self.box_size + self.box_top);
        let travelled = |speed: usize| n.saturating_mul(speed as u64) / self.fps;
        let x = bounce(travelled(self.width * 3 / 16), x_range);
        let y = self.box_top + bounce(travelled(self.height / 4), y_range);
        (x & !1, y & !1)
    }

    #[cfg(test)]
    pub(crate) fn box_size(&self) -> usize {
        self.box_size
    }

    /// Draws frame `n` at wall-clock `now` into `out` (a picture of the scene's size).
    pub(crate) fn render(&self, n: u64, now: SystemTime, out: &mut Yuv420) {
        out.clone_from(&self.background);
        let (px, py, pw, ph) = self.panel;
        out.fill(px, py, pw, ph, PANEL);
        let c = self.clock;
        out.text(c.x, c.y, c.scale, &clock_text(now), WHITE_LUMA);
        let i = self.info;
        out.text(i.x, i.y, i.scale, &info_text(n), WHITE_LUMA);
        let (bx, by) = self.box_position(n);
        out.fill(bx, by, self.box_size, self.box_size, BOX);
    }
}

fn even(v: usize) -> usize {
    v & !1
}

/// Position after travelling `distance` back and forth over `0..=range`.
fn bounce(distance: u64, range: usize) -> usize {
    let range = range as u64;
    if range == 0 {
        return 0;
    }
    let p = distance % (2 * range);
    (if p > range { 2 * range - p } else { p }) as usize
}

/// `HH:MM:SS.t` of `now` in UTC (times before 1970 show as midnight).
pub(crate) fn clock_text(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let s = since.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        since.subsec_millis() / 100
    )
}

fn info_text(n: u64) -> String {
    format!("UTC  FRAME {:06}", n % 1_000_000)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn clock_text_is_utc_with_tenths() {
        // 2024-03-01T13:04:05.678Z
        let t = UNIX_EPOCH + Duration::from_millis(1_709_298_245_678);
        assert_eq!(clock_text(t), "13:04:05.6");
        assert_eq!(
            clock_text(UNIX_EPOCH - Duration::from_secs(5)),
            "00:00:00.0"
        );
        assert_eq!(clock_text(t).len(), CLOCK_CHARS);
    }

    #[test]
    fn bounce_reflects_at_both_edges() {
        let seq: Vec<_> = (0..9).map(|d| bounce(d, 3)).collect();
        assert_eq!(seq, [0, 1, 2, 3, 2, 1, 0, 1, 2]);
        assert_eq!(bounce(u64::MAX, 0), 0);
    }

    #[test]
    fn scene_fits_the_picture_and_changes_only_where_expected() {
        let scene = Scene::new(640, 360, 40, 23, 30);
        assert_eq!(scene.clock.scale, 6);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut a = Yuv420::new(40, 23);
        let mut b = Yuv420::new(40, 23);
        scene.render(0, t0, &mut a);
        // Same frame number and tenth: identical pictures.
        scene.render(0, t0 + Duration::from_millis(50), &mut b);
        assert_eq!(a, b);
        // Next frame: the box, the frame number and maybe the tenths change; most of
        // the picture does not.
        scene.render(1, t0 + Duration::from_millis(33), &mut b);
        let changed = (0..40 * 23).filter(|&m| a.mb_differs(&b, m)).count();
        assert!((1..=60).contains(&changed), "{changed} macroblocks changed");
        // The box is drawn in its colour and moves.
        let (bx, by) = scene.box_position(30);
        assert_ne!((bx, by), scene.box_position(60));
        scene.render(30, t0, &mut b);
        let s = scene.box_size() / 2;
        assert_eq!(b.luma()[(by + s) * 640 + bx + s], BOX.0);
        assert_eq!(b.cb()[(by + s) / 2 * 320 + (bx + s) / 2], BOX.1);
        // Whole box inside the visible area for a long run of frames.
        for n in 0..10_000 {
            let (x, y) = scene.box_position(n);
            assert!(
                x + scene.box_size() <= 640 && y + scene.box_size() <= 360,
                "{n}"
            );
        }
    }

    #[test]
    fn tiny_pictures_render_without_panicking() {
        for (w, h) in [(16usize, 16usize), (2, 2), (18, 34), (100, 20)] {
            let (mw, mh) = (w.div_ceil(16), h.div_ceil(16));
            let scene = Scene::new(w, h, mw, mh, 1);
            let mut p = Yuv420::new(mw, mh);
            for n in 0..50 {
                scene.render(n, UNIX_EPOCH, &mut p);
            }
            let mut mb = [0; PCM_MB_BYTES];
            p.mb_samples(mw * mh - 1, &mut mb);
        }
    }
}
