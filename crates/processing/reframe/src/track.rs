//! The subject tracker: faces found picture by picture become tracks that keep their
//! identity while they move, survive a missed detection for about a second, and one of
//! them is the main subject, kept until another is clearly more prominent for a while
//! (so the crop does not flip between two people of about the same size).

use crate::{face::Face, geometry::Rect};

/// Which face leads when they do not all fit in the crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preference {
    /// The largest (closest) face.
    #[default]
    Largest,
    /// The face nearest the picture's centre (where a director puts the speaker).
    Central,
}

impl Preference {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "largest" => Some(Self::Largest),
            "central" => Some(Self::Central),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Largest => "largest",
            Self::Central => "central",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    /// How long (90 kHz) a track outlives its last detection.
    pub max_age: i64,
    /// Detections a track needs before it counts (one stray false face is ignored).
    pub min_hits: u32,
    /// Largest centre distance, in box sizes, at which a face continues a track.
    pub max_distance: f32,
    /// How much more prominent (×) a challenger must be to take over the main subject.
    pub switch_margin: f32,
    /// For how long (90 kHz) it must stay so.
    pub switch_hold: i64,
    pub preference: Preference,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            max_age: 90_000,
            min_hits: 2,
            max_distance: 1.5,
            switch_margin: 1.5,
            switch_hold: 90_000,
            preference: Preference::Largest,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub id: u64,
    pub rect: Rect,
    pub score: f32,
    pub hits: u32,
    pub last_seen: i64,
}

impl Track {
    pub fn confirmed(&self, config: &TrackerConfig) -> bool {
        self.hits >= config.min_hits
    }
}

#[derive(Debug, Default)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
    main: Option<u64>,
    /// A track more prominent than the main subject, and since when.
    challenger: Option<(u64, i64)>,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            next_id: 1,
            ..Default::default()
        }
    }

    /// Forgets every track (after a scene cut: the people of the last shot are gone).
    pub fn reset(&mut self) {
        self.tracks.clear();
        self.main = None;
        self.challenger = None;
    }

    /// Takes the faces found in the picture at `now` (90 kHz).
    pub fn update(&mut self, now: i64, faces: &[Face]) {
        // Greedy matching, nearest pairs first: few faces per picture.
        let mut pairs = Vec::new();
        for (ti, track) in self.tracks.iter().enumerate() {
            for (fi, face) in faces.iter().enumerate() {
                let d = distance(&track.rect, &face.rect);
                let ratio = track.rect.area().max(1e-9) / face.rect.area().max(1e-9);
                if d <= self.config.max_distance && (0.25..=4.0).contains(&ratio) {
                    pairs.push((d, ti, fi));
                }
            }
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut track_used = vec![false; self.tracks.len()];
        let mut face_used = vec![false; faces.len()];
        for (_, ti, fi) in pairs {
            if track_used[ti] || face_used[fi] {
                continue;
            }
            track_used[ti] = true;
            face_used[fi] = true;
            let track = &mut self.tracks[ti];
            // Light smoothing against detector jitter; the camera smooths the rest.
            track.rect = track.rect.lerp(&faces[fi].rect, 0.7);
            track.score = faces[fi].score;
            track.hits = track.hits.saturating_add(1);
            track.last_seen = now;
        }
        for (fi, face) in faces.iter().enumerate() {
            if !face_used[fi] {
                self.tracks.push(Track {
                    id: self.next_id,
                    rect: face.rect,
                    score: face.score,
                    hits: 1,
                    last_seen: now,
                });
                self.next_id += 1;
            }
        }
        let max_age = self.config.max_age;
        self.tracks.retain(|t| now - t.last_seen <= max_age);
        self.choose_main(now);
    }

    fn prominence(&self, track: &Track) -> f32 {
        let area = track.rect.area().sqrt();
        match self.config.preference {
            Preference::Largest => area,
            Preference::Central => {
                let off = (track.rect.cx() - 0.5).abs() + (track.rect.cy() - 0.5).abs();
                area / (0.1 + off)
            }
        }
    }

    fn choose_main(&mut self, now: i64) {
        let best = self
            .tracks
            .iter()
            .filter(|t| t.confirmed(&self.config))
            .map(|t| (t.id, self.prominence(t)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((best_id, best_p)) = best else {
            if !self.tracks.iter().any(|t| Some(t.id) == self.main) {
                self.main = None;
            }
            self.challenger = None;
            return;
        };
        let current = self
            .main
            .and_then(|id| self.tracks.iter().find(|t| t.id == id))
            .map(|t| self.prominence(t));
        match current {
            None => {
                self.main = Some(best_id);
                self.challenger = None;
            }
            Some(p)
                if best_id != self.main.unwrap_or(0) && best_p > p * self.config.switch_margin =>
            {
                match self.challenger {
                    Some((id, since)) if id == best_id => {
                        if now - since >= self.config.switch_hold {
                            self.main = Some(best_id);
                            self.challenger = None;
                        }
                    }
                    _ => self.challenger = Some((best_id, now)),
                }
            }
            Some(_) => self.challenger = None,
        }
    }

    /// Tracks that count (seen often enough), including those missed for under
    /// `max_age`.
    pub fn tracks(&self) -> impl Iterator<Item = &Track> {
        self.tracks.iter().filter(|t| t.confirmed(&self.config))
    }

    pub fn main(&self) -> Option<&Track> {
        self.main
            .and_then(|id| self.tracks.iter().find(|t| t.id == id))
    }
}

/// Centre distance in units of the boxes' mean size (per axis, so that normalised
/// coordinates of a wide picture do not skew it).
fn distance(a: &Rect, b: &Rect) -> f32 {
    let w = ((a.w + b.w) / 2.0).max(1e-6);
    let h = ((a.h + b.h) / 2.0).max(1e-6);
    let dx = (a.cx() - b.cx()) / w;
    let dy = (a.cy() - b.cy()) / h;
    (dx * dx + dy * dy).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, size: f32) -> Face {
        Face {
            rect: Rect::new(x, 0.3, size, size * 16.0 / 9.0),
            score: 0.9,
        }
    }

    const TICK: i64 = 18_000; // 5 pictures a second

    #[test]
    fn a_moving_face_keeps_its_track_and_survives_a_miss() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(0, &[face(0.1, 0.05)]);
        assert!(t.main().is_none(), "one sighting is not yet a subject");
        t.update(TICK, &[face(0.12, 0.05)]);
        let id = t.main().unwrap().id;
        for i in 2..10 {
            t.update(i * TICK, &[face(0.1 + 0.02 * i as f32, 0.05)]);
        }
        assert_eq!(t.main().unwrap().id, id);
        // Missed for 0.8 s: kept; for 1.2 s: gone.
        t.update(14 * TICK, &[]);
        assert_eq!(t.main().map(|m| m.id), Some(id));
        t.update(15 * TICK, &[]);
        assert!(t.main().is_none() && t.tracks().next().is_none());
    }

    #[test]
    fn the_main_subject_does_not_flip_between_similar_faces() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(0, &[face(0.2, 0.05), face(0.7, 0.048)]);
        t.update(TICK, &[face(0.2, 0.05), face(0.7, 0.048)]);
        let first = t.main().unwrap().id;
        // The other grows a little larger, then shrinks: no switch.
        for i in 2..21 {
            let other = if i % 2 == 0 { 0.055 } else { 0.045 };
            t.update(i * TICK, &[face(0.2, 0.05), face(0.7, other)]);
            assert_eq!(t.main().unwrap().id, first);
        }
        // Twice the size for over a second: it takes over, once.
        let mut switched_at = None;
        for i in 21..41 {
            t.update(i * TICK, &[face(0.2, 0.05), face(0.7, 0.1)]);
            if t.main().unwrap().id != first && switched_at.is_none() {
                switched_at = Some(i);
            }
        }
        assert_eq!(switched_at, Some(26), "after the one-second hold");
    }

    #[test]
    fn central_preference_and_reset() {
        let config = TrackerConfig {
            preference: Preference::Central,
            ..Default::default()
        };
        let mut t = Tracker::new(config);
        for i in 0..3 {
            t.update(i * TICK, &[face(0.05, 0.08), face(0.47, 0.06)]);
        }
        assert!((t.main().unwrap().rect.cx() - 0.5).abs() < 0.01);
        t.reset();
        assert!(t.main().is_none());
        assert_eq!(Preference::parse("central"), Some(Preference::Central));
        assert_eq!(Preference::parse("x"), None);
    }
}
