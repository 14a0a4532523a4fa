//! Boxes in normalised picture coordinates: `0..1` across and down the source picture,
//! whatever its resolution, so that what the detector saw at 320 px applies to the
//! 1280 px source unchanged.

/// An axis-aligned box, normalised (`x`, `y` the top-left corner).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl Rect {
    pub fn new(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self { x, y, w, h }
    }

    pub fn cx(&self) -> f32 {
        self.x + self.w / 2.0
    }

    pub fn cy(&self) -> f32 {
        self.y + self.h / 2.0
    }

    pub fn right(&self) -> f32 {
        self.x + self.w
    }

    pub fn bottom(&self) -> f32 {
        self.y + self.h
    }

    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Intersection over union, `0` for disjoint boxes.
    pub fn iou(&self, other: &Rect) -> f32 {
        let w = (self.right().min(other.right()) - self.x.max(other.x)).max(0.0);
        let h = (self.bottom().min(other.bottom()) - self.y.max(other.y)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// The smallest box holding both.
    pub fn union(&self, other: &Rect) -> Rect {
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        Rect::new(
            x,
            y,
            self.right().max(other.right()) - x,
            self.bottom().max(other.bottom()) - y,
        )
    }

    /// Whether `other` lies wholly inside this box (to within `slack`).
    pub fn contains(&self, other: &Rect, slack: f32) -> bool {
        other.x >= self.x - slack
            && other.y >= self.y - slack
            && other.right() <= self.right() + slack
            && other.bottom() <= self.bottom() + slack
    }

    /// Moves `self` a fraction `t` of the way to `other`, edge by edge.
    pub fn lerp(&self, other: &Rect, t: f32) -> Rect {
        let l = |a: f32, b: f32| a + (b - a) * t;
        Rect::new(
            l(self.x, other.x),
            l(self.y, other.y),
            l(self.w, other.w),
            l(self.h, other.h),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_union_contains() {
        let a = Rect::new(0.0, 0.0, 0.2, 0.2);
        let b = Rect::new(0.1, 0.1, 0.2, 0.2);
        let iou = a.iou(&b);
        assert!((iou - 0.01 / 0.07).abs() < 1e-5, "{iou}");
        assert_eq!(a.iou(&Rect::new(0.5, 0.5, 0.1, 0.1)), 0.0);
        let u = a.union(&b);
        assert!((u.w - 0.3).abs() < 1e-6 && (u.h - 0.3).abs() < 1e-6);
        assert!(u.contains(&a, 0.0) && u.contains(&b, 0.0));
        assert!(!a.contains(&b, 0.0));
        assert_eq!(Rect::default().iou(&Rect::default()), 0.0);
    }
}
