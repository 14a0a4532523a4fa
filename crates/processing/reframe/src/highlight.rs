//! Highlight detection: a handful of signals sampled ten times a second (loudness,
//! motion, the rate of cuts, faces), each normalised against the channel's own last
//! minutes, combined into one score; a clip where the score peaks.
//!
//! Normalising per channel is what makes it work for any content: a loud concert and
//! a quiet lecture each have their own "usual", and a highlight is what stands out
//! from it.

use std::collections::VecDeque;

/// Ten samples a second (90 kHz).
pub const SAMPLE: i64 = 9_000;

#[derive(Debug, Clone, PartialEq)]
pub struct HighlightConfig {
    /// The score a peak must reach. Scores are in standard deviations of the usual.
    pub threshold: f64,
    /// No two clips closer than this (90 kHz).
    pub min_spacing: i64,
    /// The "usual" is measured over this much history (90 kHz).
    pub window: i64,
    /// No clip before this much history (90 kHz): a fresh stream has no "usual".
    pub warm_up: i64,
    /// A clip runs from `peak - before` to `peak + after` (90 kHz).
    pub before: i64,
    pub after: i64,
    /// How much each signal counts: loudness, motion, cuts, faces.
    pub weights: [f64; 4],
}

impl Default for HighlightConfig {
    fn default() -> Self {
        Self {
            threshold: 6.0,
            min_spacing: 60 * 90_000,
            window: 180 * 90_000,
            warm_up: 20 * 90_000,
            before: 10 * 90_000,
            after: 5 * 90_000,
            weights: [1.0, 1.0, 0.5, 0.5],
        }
    }
}

impl HighlightConfig {
    /// Sensitivity `1` is the default threshold; `2` halves it (more clips), `0.5`
    /// doubles it.
    pub fn with_sensitivity(mut self, sensitivity: f64) -> Self {
        if sensitivity.is_finite() && sensitivity > 0.0 {
            self.threshold /= sensitivity;
        }
        self
    }
}

/// A moment worth a clip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Highlight {
    /// Media time (90 kHz) of the score's peak.
    pub peak: i64,
    /// The clip's bounds before snapping to keyframes (90 kHz).
    pub start: i64,
    pub end: i64,
    pub score: f64,
    /// The signal that stood out most: `loudness`, `motion`, `cuts` or `faces`.
    pub cause: &'static str,
}

const NAMES: [&str; 4] = ["loudness", "motion", "cuts", "faces"];
/// The smallest spread each signal's normalisation assumes, so that a perfectly
/// steady source (digital silence, a still picture) does not make every tiny change a
/// highlight: 3 LU, 2 % of the picture moving, one cut every 10 s, one face.
const FLOORS: [f64; 4] = [3.0, 0.02, 0.1, 1.0];

/// Running mean and spread of one signal over a sliding window.
#[derive(Debug, Default, Clone)]
struct Stats {
    values: VecDeque<f64>,
    sum: f64,
    squares: f64,
}

impl Stats {
    fn push(&mut self, v: f64, cap: usize) {
        self.values.push_back(v);
        self.sum += v;
        self.squares += v * v;
        while self.values.len() > cap {
            if let Some(old) = self.values.pop_front() {
                self.sum -= old;
                self.squares -= old * old;
            }
        }
    }

    fn z(&self, v: f64, floor: f64) -> f64 {
        let n = self.values.len().max(1) as f64;
        let mean = self.sum / n;
        let var = (self.squares / n - mean * mean).max(0.0);
        (v - mean) / var.sqrt().max(floor)
    }
}

#[derive(Debug)]
pub struct HighlightDetector {
    config: HighlightConfig,
    /// The newest value of each signal; `None` until first given.
    latest: [Option<f64>; 4],
    stats: [Stats; 4],
    /// Times of recent cuts (for their rate).
    cuts: VecDeque<i64>,
    /// The next sample's time.
    next: Option<i64>,
    first: Option<i64>,
    /// The burst being watched: its peak so far, and when the score fell under the
    /// threshold (a burst ends half a second after that).
    burst: Option<(Highlight, Option<i64>)>,
    last_clip: Option<i64>,
}

impl HighlightDetector {
    pub fn new(config: HighlightConfig) -> Self {
        Self {
            config,
            latest: [None; 4],
            stats: Default::default(),
            cuts: VecDeque::new(),
            next: None,
            first: None,
            burst: None,
            last_clip: None,
        }
    }

    /// The audio's momentary loudness (LUFS) at `time` (90 kHz).
    pub fn loudness(&mut self, time: i64, lufs: f64) -> Option<Highlight> {
        // Digital silence reads as -inf or -120: both are "very quiet".
        self.latest[0] = Some(if lufs.is_finite() {
            lufs.max(-70.0)
        } else {
            -70.0
        });
        self.advance(time)
    }

    /// A picture's analysis at `time` (90 kHz): motion share, whether it began a new
    /// shot, faces tracked and the largest one's area.
    pub fn picture(
        &mut self,
        time: i64,
        motion: f32,
        cut: bool,
        faces: usize,
        largest: f32,
    ) -> Option<Highlight> {
        // A broken measurement counts as nothing rather than poisoning the sums.
        let finite = |v: f32| if v.is_finite() { f64::from(v) } else { 0.0 };
        self.latest[1] = Some(finite(motion));
        if cut {
            self.cuts.push_back(time);
        }
        while self.cuts.front().is_some_and(|&t| time - t > 5 * 90_000) {
            self.cuts.pop_front();
        }
        self.latest[2] = Some(self.cuts.len() as f64 / 5.0);
        self.latest[3] = Some(faces as f64 + 10.0 * finite(largest));
        self.advance(time)
    }

    /// Samples the signals on the 10 Hz grid up to `time`.
    fn advance(&mut self, time: i64) -> Option<Highlight> {
        let next = *self.next.get_or_insert(time);
        self.first.get_or_insert(time);
        if time < next {
            return None;
        }
        // Samples missed in a gap are not made up: the newest values stand for now.
        self.next = Some(time - (time - next) % SAMPLE + SAMPLE);
        self.sample(time)
    }

    fn sample(&mut self, time: i64) -> Option<Highlight> {
        let cap = (self.config.window / SAMPLE).max(1) as usize;
        let mut score = 0.0;
        let mut cause = (0.0, NAMES[0]);
        for i in 0..4 {
            let Some(v) = self.latest[i] else { continue };
            let z = if self.stats[i].values.len() >= 10 {
                self.stats[i].z(v, FLOORS[i])
            } else {
                0.0
            };
            self.stats[i].push(v, cap);
            let part = self.config.weights[i] * z.max(0.0);
            score += part * part;
            if part > cause.0 {
                cause = (part, NAMES[i]);
            }
        }
        let score = score.sqrt();
        let warm = self.first.is_some_and(|f| time - f >= self.config.warm_up);
        let c = &self.config;
        if score >= c.threshold && warm {
            let candidate = Highlight {
                peak: time,
                start: time - c.before,
                end: time + c.after,
                score,
                cause: cause.1,
            };
            match &mut self.burst {
                Some((best, below)) => {
                    *below = None;
                    if score > best.score {
                        *best = candidate;
                    }
                }
                None => self.burst = Some((candidate, None)),
            }
            return None;
        }
        let (best, below) = self.burst.as_mut()?;
        let since = *below.get_or_insert(time);
        if time - since < 90_000 / 2 {
            return None;
        }
        let best = *best;
        self.burst = None;
        if self
            .last_clip
            .is_some_and(|last| best.peak - last < self.config.min_spacing)
        {
            return None;
        }
        self.last_clip = Some(best.peak);
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `seconds` of a source: loudness every 100 ms, pictures every 200 ms.
    fn feed(
        d: &mut HighlightDetector,
        from: f64,
        seconds: f64,
        mut signals: impl FnMut(f64) -> (f64, f32, bool),
    ) -> Vec<Highlight> {
        let mut clips = Vec::new();
        let mut t = from;
        while t < from + seconds {
            let (lufs, motion, cut) = signals(t);
            let time = (t * 90_000.0) as i64;
            clips.extend(d.loudness(time, lufs));
            if ((t * 10.0).round() as i64) % 2 == 0 {
                clips.extend(d.picture(time, motion, cut, 1, 0.01));
            }
            t += 0.1;
        }
        clips
    }

    fn noise(t: f64) -> f64 {
        // Deterministic wobble of a few LU and a few % motion.
        ((t * 7.3).sin() + (t * 2.9).cos()) / 2.0
    }

    #[test]
    fn one_clip_per_burst_at_its_peak() {
        let mut d = HighlightDetector::new(HighlightConfig::default());
        let quiet = |t: f64| {
            (
                -30.0 + 2.0 * noise(t),
                (0.01 + 0.005 * noise(t)) as f32,
                false,
            )
        };
        assert!(
            feed(&mut d, 0.0, 60.0, quiet).is_empty(),
            "a quiet source has no highlight"
        );
        // A loudness burst at 60..62 s peaking at 61 s.
        let clips = feed(&mut d, 60.0, 30.0, |t| {
            let (l, m, c) = quiet(t);
            let burst = if (60.0..62.0).contains(&t) {
                25.0 - 10.0 * (t - 61.0).abs()
            } else {
                0.0
            };
            (l + burst, m, c)
        });
        assert_eq!(clips.len(), 1, "{clips:?}");
        let c = clips[0];
        assert!((c.peak as f64 / 90_000.0 - 61.0).abs() < 0.15, "{c:?}");
        assert_eq!(c.cause, "loudness");
        assert_eq!((c.start, c.end), (c.peak - 900_000, c.peak + 450_000));
        // A motion burst 60 s later.
        let clips = feed(&mut d, 90.0, 60.0, |t| {
            let (l, m, c) = quiet(t);
            let m = if (130.0..131.5).contains(&t) { 0.6 } else { m };
            (l, m, c)
        });
        assert_eq!(clips.len(), 1, "{clips:?}");
        assert_eq!(clips[0].cause, "motion");
        assert!((clips[0].peak as f64 / 90_000.0 - 130.0).abs() < 1.6);
    }

    #[test]
    fn spacing_warm_up_and_sensitivity() {
        let config = HighlightConfig::default();
        let mut d = HighlightDetector::new(config.clone());
        // A burst inside the warm-up is not a clip.
        let clips = feed(&mut d, 0.0, 30.0, |t| {
            (
                if (12.0..13.0).contains(&t) {
                    0.0
                } else {
                    -30.0 + noise(t)
                },
                0.01,
                false,
            )
        });
        assert!(clips.is_empty());
        // Two bursts 20 s apart: the second is too close to the first.
        let clips = feed(&mut d, 30.0, 60.0, |t| {
            let burst = (40.0..41.0).contains(&t) || (60.0..61.0).contains(&t);
            (if burst { 0.0 } else { -30.0 + noise(t) }, 0.01, false)
        });
        assert_eq!(clips.len(), 1, "{clips:?}");

        let gentle = HighlightConfig::default().with_sensitivity(0.25);
        assert_eq!(gentle.threshold, config.threshold * 4.0);
        let mut d = HighlightDetector::new(gentle);
        let clips = feed(&mut d, 0.0, 90.0, |t| {
            (
                if (60.0..61.0).contains(&t) {
                    -18.0
                } else {
                    -30.0 + noise(t)
                },
                0.01,
                false,
            )
        });
        assert!(
            clips.is_empty(),
            "a mild burst is not a highlight at low sensitivity"
        );
        // Nonsense values do not break it.
        let mut d = HighlightDetector::new(HighlightConfig::default());
        assert!(d.loudness(0, f64::NAN).is_none());
        assert!(d.loudness(-5, f64::NEG_INFINITY).is_none());
        assert!(d
            .picture(i64::MAX / 2, f32::NAN, true, 0, f32::NAN)
            .is_none());
    }
}
