//! What changes between two analysis pictures: scene cuts (a new shot, where the camera
//! must jump rather than pan) and motion (frame differencing: where things move, and how
//! much). Both work on the luma plane reduced to a coarse grid of block means, which is
//! cheap (one pass over 320×180 bytes) and ignores noise and compression grain.

use crate::geometry::Rect;

/// The coarse grid: 32 × 18 blocks (10 px squares at 320×180).
const COLS: usize = 32;
const ROWS: usize = 18;
const BINS: usize = 32;

/// A picture's luma as the scene analysis sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sketch {
    blocks: Vec<f32>,
    histogram: [f32; BINS],
}

impl Sketch {
    /// From a luma plane of `width × height` bytes (`None` when too small to hold one
    /// byte per block).
    pub fn new(luma: &[u8], width: usize, height: usize) -> Option<Self> {
        if width < COLS || height < ROWS || luma.len() < width * height {
            return None;
        }
        let mut sums = vec![0u64; COLS * ROWS];
        let mut counts = vec![0u32; COLS * ROWS];
        let mut histogram = [0f32; BINS];
        for y in 0..height {
            let by = y * ROWS / height;
            let row = &luma[y * width..(y + 1) * width];
            for (x, &v) in row.iter().enumerate() {
                let b = by * COLS + x * COLS / width;
                sums[b] += u64::from(v);
                counts[b] += 1;
                histogram[usize::from(v) * BINS / 256] += 1.0;
            }
        }
        let total = (width * height) as f32;
        for h in &mut histogram {
            *h /= total;
        }
        let blocks = sums
            .iter()
            .zip(&counts)
            .map(|(&s, &c)| s as f32 / c.max(1) as f32)
            .collect();
        Some(Self { blocks, histogram })
    }

    /// How different two pictures' brightness distributions are, `0..1`.
    pub fn histogram_distance(&self, other: &Sketch) -> f32 {
        self.histogram
            .iter()
            .zip(&other.histogram)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / 2.0
    }

    /// Mean block difference, `0..1` of full scale.
    pub fn block_distance(&self, other: &Sketch) -> f32 {
        self.blocks
            .iter()
            .zip(&other.blocks)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / (self.blocks.len() as f32 * 255.0)
    }

    /// Where and how much the picture moved since `before`.
    pub fn motion(&self, before: &Sketch) -> Motion {
        // A block moved when its mean changed by more than noise does (~3 % of range).
        const MOVED: f32 = 8.0;
        let mut weight = 0.0f32;
        let (mut sx, mut sy) = (0.0f32, 0.0f32);
        let mut moved = 0usize;
        let (mut x0, mut y0, mut x1, mut y1) = (COLS, ROWS, 0, 0);
        for (i, (a, b)) in self.blocks.iter().zip(&before.blocks).enumerate() {
            let d = (a - b).abs();
            if d > MOVED {
                let (x, y) = (i % COLS, i / COLS);
                moved += 1;
                weight += d;
                sx += d * (x as f32 + 0.5);
                sy += d * (y as f32 + 0.5);
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
        let energy = moved as f32 / self.blocks.len() as f32;
        if moved == 0 {
            return Motion {
                energy,
                centre: None,
                area: None,
            };
        }
        Motion {
            energy,
            centre: Some((sx / weight / COLS as f32, sy / weight / ROWS as f32)),
            area: Some(Rect::new(
                x0 as f32 / COLS as f32,
                y0 as f32 / ROWS as f32,
                (x1 - x0) as f32 / COLS as f32,
                (y1 - y0) as f32 / ROWS as f32,
            )),
        }
    }
}

/// Frame differencing between two analysis pictures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Motion {
    /// The share of the picture that moved, `0..1`.
    pub energy: f32,
    /// The motion's centre of mass (normalised), weighted by how much each block changed.
    pub centre: Option<(f32, f32)>,
    /// The box around every block that moved.
    pub area: Option<Rect>,
}

/// Decides, picture by picture, whether a new shot began.
#[derive(Debug, Clone, PartialEq)]
pub struct CutDetector {
    /// Brightness-distribution change that alone makes a cut.
    pub histogram_cut: f32,
    /// A smaller distribution change that makes a cut when the layout changed too.
    pub histogram_with_layout: f32,
    /// The layout (block) change that goes with it.
    pub layout_cut: f32,
}

impl Default for CutDetector {
    fn default() -> Self {
        // Tuned so that a pan or a person crossing the frame (layout changes, the
        // brightness distribution barely does) is not a cut, and a change of shot
        // (both change) is.
        Self {
            histogram_cut: 0.5,
            histogram_with_layout: 0.2,
            layout_cut: 0.1,
        }
    }
}

impl CutDetector {
    pub fn is_cut(&self, before: &Sketch, now: &Sketch) -> bool {
        let hist = now.histogram_distance(before);
        hist >= self.histogram_cut
            || (hist >= self.histogram_with_layout && now.block_distance(before) >= self.layout_cut)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `w × h` luma plane: a `level` background with a bright square at `(x, y)`.
    pub(crate) fn scene(
        w: usize,
        h: usize,
        level: u8,
        square: Option<(usize, usize, usize)>,
    ) -> Vec<u8> {
        let mut p = vec![level; w * h];
        if let Some((x, y, s)) = square {
            for row in y..(y + s).min(h) {
                for col in x..(x + s).min(w) {
                    p[row * w + col] = 235;
                }
            }
        }
        p
    }

    #[test]
    fn motion_is_located_and_measured() {
        let a = Sketch::new(&scene(320, 180, 60, Some((40, 60, 40))), 320, 180).unwrap();
        let b = Sketch::new(&scene(320, 180, 60, Some((60, 60, 40))), 320, 180).unwrap();
        let m = b.motion(&a);
        assert!(m.energy > 0.0 && m.energy < 0.1, "{m:?}");
        let (cx, cy) = m.centre.unwrap();
        // The square moved from x 40..80 to 60..100: the change sits around 40..100.
        assert!(cx > 40.0 / 320.0 && cx < 100.0 / 320.0, "{cx}");
        assert!((cy - 80.0 / 180.0).abs() < 0.08, "{cy}");
        let still = a.motion(&a);
        assert_eq!((still.energy, still.centre), (0.0, None));
    }

    #[test]
    fn cuts_are_told_from_motion() {
        let d = CutDetector::default();
        let a = Sketch::new(&scene(320, 180, 60, Some((40, 60, 40))), 320, 180).unwrap();
        let moved = Sketch::new(&scene(320, 180, 60, Some((200, 60, 40))), 320, 180).unwrap();
        assert!(!d.is_cut(&a, &moved), "an object crossing is not a cut");
        let other = Sketch::new(&scene(320, 180, 180, None), 320, 180).unwrap();
        assert!(d.is_cut(&a, &other));
        // Same brightness distribution, different layout (a pan): not a cut.
        let mut half = scene(320, 180, 30, None);
        for row in 0..180 {
            for col in 0..160 {
                half[row * 320 + col] = 200;
            }
        }
        let mut flipped = scene(320, 180, 200, None);
        for row in 0..180 {
            for col in 0..160 {
                flipped[row * 320 + col] = 30;
            }
        }
        let (h1, h2) = (
            Sketch::new(&half, 320, 180).unwrap(),
            Sketch::new(&flipped, 320, 180).unwrap(),
        );
        assert!(!d.is_cut(&h1, &h2));
    }

    #[test]
    fn tiny_or_short_pictures_have_no_sketch() {
        assert!(Sketch::new(&[0; 100], 10, 10).is_none());
        assert!(Sketch::new(&[0; 100], 320, 180).is_none());
        // An odd size works.
        assert!(Sketch::new(&vec![0; 321 * 181], 321, 181).is_some());
    }
}
