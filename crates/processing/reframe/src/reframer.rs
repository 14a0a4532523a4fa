//! One channel's reframing: pictures (and the faces found in them) in, the 9:16
//! window's path out.

use crate::{
    camera::{Camera, CameraConfig},
    face::{Face, I420},
    geometry::Rect,
    scene::{CutDetector, Sketch},
    track::{Tracker, TrackerConfig},
};

#[derive(Debug, Clone, PartialEq)]
pub struct ReframeConfig {
    /// The output's aspect, width : height.
    pub aspect: (u32, u32),
    pub tracker: TrackerConfig,
    pub camera: CameraConfig,
    pub cuts: CutDetector,
    /// Motion (share of the picture) below which there is nothing to follow.
    pub min_motion: f32,
    /// With nothing to follow for this long (90 kHz), the camera drifts to the centre.
    pub idle_after: i64,
    /// The drift's speed, as a share of the camera's top speed.
    pub drift_speed: f32,
}

impl Default for ReframeConfig {
    fn default() -> Self {
        Self {
            aspect: (9, 16),
            tracker: TrackerConfig::default(),
            camera: CameraConfig::default(),
            cuts: CutDetector::default(),
            min_motion: 0.01,
            idle_after: 2 * 90_000,
            drift_speed: 0.3,
        }
    }
}

/// What the window follows at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Every face (they fit in the window together).
    Faces,
    /// The main subject (the faces do not all fit).
    Subject,
    /// Motion (no face).
    Motion,
    /// Holding where it was, for a moment, after losing what it followed.
    Hold,
    /// Nothing for a while: drifting back to the centre.
    Centre,
    /// The source is already as narrow as the output: the whole picture.
    Passthrough,
}

impl Follow {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Faces => "faces",
            Self::Subject => "subject",
            Self::Motion => "motion",
            Self::Hold => "hold",
            Self::Centre => "centre",
            Self::Passthrough => "passthrough",
        }
    }
}

/// The window at one picture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropSample {
    /// Media time (90 kHz) of the picture.
    pub time: i64,
    /// The window, normalised to the source picture (full height).
    pub window: Rect,
    /// A new shot begins here: the window jumped rather than panned.
    pub cut: bool,
    pub follow: Follow,
    /// Faces being tracked.
    pub faces: usize,
    /// The largest tracked face's area (normalised, `0..1`).
    pub largest_face: f32,
    /// Share of the picture that moved since the last one.
    pub motion: f32,
}

#[derive(Debug)]
pub struct Reframer {
    config: ReframeConfig,
    tracker: Tracker,
    camera: Camera,
    last: Option<Sketch>,
    /// When something was last followed.
    followed_at: Option<i64>,
}

impl Reframer {
    pub fn new(config: ReframeConfig) -> Self {
        Self {
            tracker: Tracker::new(config.tracker),
            camera: Camera::new(config.camera),
            config,
            last: None,
            followed_at: None,
        }
    }

    /// The window's width (normalised) for a `width × height` source; `1` when the
    /// source is no wider than the output (to within 2 %: a 9:16 source scaled to an
    /// even-sized analysis picture is not quite 9:16 any more).
    pub fn window_width(&self, width: u32, height: u32) -> f32 {
        let (aw, ah) = self.config.aspect;
        if width == 0 || ah == 0 {
            return 1.0;
        }
        let w = height as f32 * aw as f32 / ah as f32 / width as f32;
        if w >= 0.98 {
            1.0
        } else {
            w
        }
    }

    /// Takes the picture at `time` (90 kHz) and the faces found in it (`None`: no face
    /// detector, so motion only).
    pub fn push(&mut self, time: i64, picture: &I420<'_>, faces: Option<&[Face]>) -> CropSample {
        let (w, h) = (picture.width, picture.height);
        let window_w = self.window_width(w, h);
        let sketch = Sketch::new(picture.luma(), w as usize, h as usize);
        let (cut, motion) = match (&self.last, &sketch) {
            (Some(before), Some(now)) => {
                let cut = self.config.cuts.is_cut(before, now);
                // Across a cut everything differs: that is no motion to follow.
                (cut, (!cut).then(|| now.motion(before)))
            }
            _ => (false, None),
        };
        if sketch.is_some() {
            self.last = sketch;
        }
        if cut {
            // The people of the last shot are gone.
            self.tracker.reset();
        }
        if let Some(faces) = faces {
            self.tracker.update(time, faces);
        }
        let tracks: Vec<Rect> = if cut {
            // Right after a cut no track is confirmed yet; the jump goes to what this
            // picture shows rather than panning to it a picture later.
            faces.unwrap_or(&[]).iter().map(|f| f.rect).collect()
        } else {
            self.tracker.tracks().map(|t| t.rect).collect()
        };
        let largest_face = tracks.iter().map(Rect::area).fold(0.0, f32::max);
        let energy = motion.map_or(0.0, |m| m.energy);

        let (target, follow, speed) = if window_w >= 1.0 {
            (0.5, Follow::Passthrough, 1.0)
        } else if let Some(all) = tracks.iter().copied().reduce(|a, b| a.union(&b)) {
            self.followed_at = Some(time);
            // A margin on each side, so that faces at the edge are not cut in half.
            if all.w <= window_w * 0.85 {
                (all.cx(), Follow::Faces, 1.0)
            } else {
                let main = self
                    .tracker
                    .main()
                    .map(|t| t.rect)
                    .or_else(|| {
                        tracks
                            .iter()
                            .copied()
                            .max_by(|a, b| a.area().total_cmp(&b.area()))
                    })
                    .unwrap_or(all);
                (main.cx(), Follow::Subject, 1.0)
            }
        } else if let Some((cx, _)) = motion
            .filter(|m| m.energy >= self.config.min_motion)
            .and_then(|m| m.centre)
        {
            self.followed_at = Some(time);
            (cx, Follow::Motion, 1.0)
        } else if self
            .followed_at
            .is_some_and(|at| time - at < self.config.idle_after)
        {
            (self.camera.centre(), Follow::Hold, 1.0)
        } else {
            (0.5, Follow::Centre, self.config.drift_speed)
        };
        let half = window_w / 2.0;
        let target = target.clamp(half, 1.0 - half);
        let x = self
            .camera
            .step(time, target, cut, speed)
            .clamp(half, 1.0 - half);
        CropSample {
            time,
            window: Rect::new(x - half, 0.0, window_w, 1.0),
            cut,
            follow,
            faces: tracks.len(),
            largest_face,
            motion: energy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::tests::scene;

    const TICK: i64 = 18_000;

    fn i420(luma: &[u8], w: usize, h: usize) -> Vec<u8> {
        let mut data = luma.to_vec();
        data.resize(w * h + 2 * (w.div_ceil(2) * h.div_ceil(2)), 128);
        data
    }

    fn face_at(cx: f32) -> Face {
        Face {
            rect: Rect::new(cx - 0.03, 0.3, 0.06, 0.1),
            score: 0.9,
        }
    }

    #[test]
    fn follows_a_face_and_jumps_on_a_cut() {
        let mut r = Reframer::new(ReframeConfig::default());
        let bg = i420(&scene(320, 180, 60, None), 320, 180);
        let pic = I420::new(320, 180, &bg).unwrap();
        assert!((r.window_width(1280, 720) - 0.31640625).abs() < 1e-6);
        let mut last = None;
        for i in 0..50 {
            let cx = 0.2 + 0.01 * i as f32;
            let s = r.push(i * TICK, &pic, Some(&[face_at(cx)]));
            assert_eq!(s.window.w, r.window_width(320, 180));
            if i > 10 {
                assert_eq!(s.follow, Follow::Faces);
                assert!(
                    s.window.x <= cx - 0.03 && s.window.right() >= cx + 0.03,
                    "face at {cx} outside {:?} at {i}",
                    s.window
                );
            }
            last = Some(s);
        }
        let before = last.unwrap().window.cx();
        // A new shot (another brightness), the face now far left: one jump.
        let other = i420(&scene(320, 180, 200, Some((0, 0, 60))), 320, 180);
        let pic = I420::new(320, 180, &other).unwrap();
        let s = r.push(50 * TICK, &pic, Some(&[face_at(0.25)]));
        assert!(s.cut);
        assert!(
            (s.window.cx() - 0.25).abs() < 1e-4,
            "{} (was {before})",
            s.window.cx()
        );
    }

    #[test]
    fn without_faces_follows_motion_then_drifts_home() {
        let mut r = Reframer::new(ReframeConfig::default());
        let mut t = 0;
        for i in 0..30 {
            let x = 200 + (i % 2) * 20;
            let p = i420(&scene(320, 180, 60, Some((x, 60, 40))), 320, 180);
            let s = r.push(t, &I420::new(320, 180, &p).unwrap(), None);
            if i > 1 {
                assert_eq!(s.follow, Follow::Motion);
            }
            t += TICK;
        }
        let p = i420(&scene(320, 180, 60, Some((200, 60, 40))), 320, 180);
        let pic = I420::new(320, 180, &p).unwrap();
        let followed = r.push(t, &pic, None);
        assert!(followed.window.cx() > 0.6, "{followed:?}");
        // Stillness: hold for two seconds, then drift back.
        let mut follows = Vec::new();
        for _ in 0..60 {
            t += TICK;
            follows.push(r.push(t, &pic, None));
        }
        assert_eq!(follows[3].follow, Follow::Hold);
        assert_eq!(follows.last().unwrap().follow, Follow::Centre);
        assert!((follows.last().unwrap().window.cx() - 0.5).abs() < 0.02);
    }

    #[test]
    fn faces_that_do_not_fit_frame_the_main_subject_and_portrait_passes_through() {
        let mut r = Reframer::new(ReframeConfig::default());
        let bg = i420(&scene(320, 180, 60, None), 320, 180);
        let pic = I420::new(320, 180, &bg).unwrap();
        let big = Face {
            rect: Rect::new(0.7, 0.2, 0.1, 0.2),
            score: 0.9,
        };
        let mut s = None;
        for i in 0..20 {
            s = Some(r.push(i * TICK, &pic, Some(&[face_at(0.1), big])));
        }
        let s = s.unwrap();
        assert_eq!(s.follow, Follow::Subject);
        assert!(s.window.contains(&big.rect, 1e-4), "{s:?}");
        assert_eq!(s.faces, 2);

        let mut r = Reframer::new(ReframeConfig::default());
        // 720×1280 as the tap scales it: 320×568.
        assert_eq!(r.window_width(320, 568), 1.0);
        let portrait = i420(&scene(180, 320, 60, None), 180, 320);
        let pic = I420::new(180, 320, &portrait).unwrap();
        let s = r.push(0, &pic, Some(&[face_at(0.1)]));
        assert_eq!(s.follow, Follow::Passthrough);
        assert_eq!(s.window, Rect::new(0.0, 0.0, 1.0, 1.0));
    }
}
