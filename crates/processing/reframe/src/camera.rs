//! The virtual camera: where the 9:16 window sits across the 16:9 picture, moved the
//! way a camera operator would. Still while the subject barely moves (a dead-band
//! against detector jitter), a smooth pan with bounded speed and acceleration
//! otherwise, and an instant jump on a scene cut, never a pan across one.

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraConfig {
    /// Top speed, picture widths per second.
    pub max_speed: f32,
    /// Top acceleration (and braking), picture widths per second².
    pub max_accel: f32,
    /// How far (picture widths) the target may wander before the still camera moves.
    pub dead_band: f32,
    /// How close (picture widths) a moving camera gets before it stops.
    pub settle: f32,
    /// Speed toward the target per unit of distance (1/s): how briskly it follows.
    pub gain: f32,
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            max_speed: 0.5,
            max_accel: 1.5,
            dead_band: 0.04,
            settle: 0.005,
            gain: 3.0,
        }
    }
}

/// The camera's state along the picture's width (the window is full height).
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    config: CameraConfig,
    /// The window's centre, normalised.
    x: f32,
    /// Picture widths per second.
    v: f32,
    moving: bool,
    last: Option<i64>,
}

impl Camera {
    pub fn new(config: CameraConfig) -> Self {
        Self {
            config,
            x: 0.5,
            v: 0.0,
            moving: false,
            last: None,
        }
    }

    pub fn centre(&self) -> f32 {
        self.x
    }

    /// Speed, picture widths per second (signed).
    pub fn velocity(&self) -> f32 {
        self.v
    }

    /// Whether it is panning (rather than holding still).
    pub fn moving(&self) -> bool {
        self.moving
    }

    /// Moves toward `target` (a centre, normalised) up to media time `now` (90 kHz);
    /// `cut` jumps there instead. `speed` scales the top speed (a slow drift back to
    /// the centre when nothing is followed). Returns the new centre.
    pub fn step(&mut self, now: i64, target: f32, cut: bool, speed: f32) -> f32 {
        let c = self.config;
        let target = if target.is_finite() { target } else { self.x };
        let first = self.last.is_none();
        // A backwards or stalled clock moves nothing; a long gap counts as 1 s so that
        // a resumed stream does not fly across the picture.
        let dt = self
            .last
            .map_or(0.0, |last| ((now - last) as f32 / 90_000.0).clamp(0.0, 1.0));
        self.last = Some(now);
        if cut || first {
            self.x = target;
            self.v = 0.0;
            self.moving = false;
            return self.x;
        }
        let error = target - self.x;
        if !self.moving && error.abs() < c.dead_band {
            // Still: coast to rest.
            self.v = approach(self.v, 0.0, c.max_accel * dt);
        } else {
            self.moving = true;
            let top = c.max_speed * speed.clamp(0.05, 1.0);
            // The fastest speed from which it can still brake before the target.
            let braking = (2.0 * c.max_accel * error.abs()).sqrt();
            let wanted = (error * c.gain).clamp(-top, top);
            let wanted = wanted.clamp(-braking, braking);
            // Nor faster than reaches the target within this step (no overshoot).
            let wanted = if dt > 0.0 {
                let reach = error.abs() / dt;
                wanted.clamp(-reach, reach)
            } else {
                wanted
            };
            self.v = approach(self.v, wanted, c.max_accel * dt);
            if error.abs() < c.settle && self.v.abs() < c.max_accel * 0.1 {
                self.moving = false;
                self.v = 0.0;
            }
        }
        self.x += self.v * dt;
        self.x
    }
}

/// `from` moved toward `to` by at most `step`.
fn approach(from: f32, to: f32, step: f32) -> f32 {
    if (to - from).abs() <= step {
        to
    } else {
        from + step.copysign(to - from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: i64 = 18_000;

    #[test]
    fn still_within_the_dead_band_smooth_outside_it() {
        let c = CameraConfig::default();
        let mut cam = Camera::new(c);
        assert_eq!(cam.step(0, 0.5, false, 1.0), 0.5);
        // Jitter of ±0.03 around the centre: the camera does not move.
        for i in 1..20 {
            let jitter = if i % 2 == 0 { 0.03 } else { -0.03 };
            assert_eq!(cam.step(i * TICK, 0.5 + jitter, false, 1.0), 0.5);
        }
        // The subject walks to 0.8: the camera follows within its limits and settles.
        let (mut x, mut v) = (cam.centre(), 0.0f32);
        for i in 20..80 {
            let nx = cam.step(i * TICK, 0.8, false, 1.0);
            let nv = (nx - x) / 0.2;
            assert!(nv.abs() <= c.max_speed + 1e-4, "speed {nv}");
            assert!(
                (nv - v).abs() / 0.2 <= c.max_accel + 1e-3,
                "acceleration at {i}"
            );
            assert!(nx <= 0.8 + 1e-4, "no overshoot: {nx}");
            (x, v) = (nx, nv);
        }
        assert!((x - 0.8).abs() < 0.01, "{x}");
        assert!(!cam.moving());
    }

    #[test]
    fn a_cut_jumps_and_the_clock_is_distrusted() {
        let mut cam = Camera::new(CameraConfig::default());
        cam.step(0, 0.3, false, 1.0);
        assert_eq!(cam.step(TICK, 0.9, true, 1.0), 0.9);
        assert_eq!(cam.velocity(), 0.0);
        // A clock that goes back, or a NaN target, moves nothing.
        assert_eq!(cam.step(0, 0.1, false, 1.0), 0.9);
        assert_eq!(cam.step(TICK, f32::NAN, false, 1.0), 0.9);
        // A ten-minute gap counts as one second.
        let x = cam.step(TICK + 600 * 90_000, 0.1, false, 1.0);
        assert!(x > 0.1 && 0.9 - x <= 1.5 + 1e-4, "{x}");
    }

    #[test]
    fn a_slow_drift_is_slow() {
        let mut cam = Camera::new(CameraConfig::default());
        cam.step(0, 0.2, true, 1.0);
        for i in 1..=10 {
            cam.step(i * TICK, 0.5, false, 0.2);
            assert!(cam.velocity().abs() <= 0.1 + 1e-4);
        }
    }
}
