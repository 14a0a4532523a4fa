//! Live event configuration for a pushed channel: the range of segment numbers that can
//! legitimately exist at a given instant, so that requests outside it are answered at
//! once, with no store read (docs/put-ingest.md, "Live events").
//!
//! Sans-IO and clock-free: every question takes `now` (Unix milliseconds) from the
//! caller. Numbering: segment `n` of the event covers
//! `[AST + (n − first) × D, AST + (n − first + 1) × D)` and is due (complete, so
//! uploadable) at its end, `AST + (n − first + 1) × D`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest `max-age` of a 404 for a segment not due yet: a request for a number due
/// in a day is not worth a day in a cache (a reconfigured event would be hidden by it).
pub const MAX_NOT_YET_SECS: u32 = 3600;
/// `max-age` of a 410 for a number the event never has (below `first_segment`, past
/// `end`): a fact of the configuration, which only an operator changes.
pub const GONE_SECS: u32 = 3600;
/// `max-age` of a 410 for a number past its retry deadline and in neither memory nor the
/// store: a packager that is very late can still upload it, so not long.
pub const LATE_GONE_SECS: u32 = 60;
/// A segment not uploaded this many segment durations after it was due is past its retry
/// deadline: a miss is then final (410) rather than "maybe soon" (404).
pub const RETRY_DEADLINE_SEGMENTS: u64 = 3;

/// Why an event cannot be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("segment_duration_ms must be between 1 and 3600000, not {0}")]
    Duration(u64),
    #[error("availability_start {0:?} is not an RFC 3339 timestamp (e.g. 2026-05-01T18:00:00Z)")]
    Timestamp(String),
    #[error("availability_start is before 1970")]
    BeforeEpoch,
    #[error("end ({end_ms} ms) is not after availability_start ({start_ms} ms)")]
    EndBeforeStart { start_ms: u64, end_ms: u64 },
}

/// One live event of a pushed channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveEvent {
    /// Availability start, Unix milliseconds.
    availability_start_ms: u64,
    segment_duration_ms: u64,
    first_segment: u64,
    /// Unix milliseconds; `None`: open-ended.
    end_ms: Option<u64>,
}

/// Where a requested number stands in the event's range at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// Below `first_segment`: never produced (410).
    BeforeFirst,
    /// Starts at or after `end`: never produced (410).
    PastEnd,
    /// Not due for this long yet (404, cacheable until then).
    NotYet { wait: Duration },
    /// Due, within its retry deadline: it may be late; look it up.
    Due,
    /// Past its retry deadline: look it up (it may be old DVR); a miss is final.
    Late,
}

impl LiveEvent {
    /// `first_segment` defaults to the grid slot of the availability start,
    /// `floor(AST_ms / D)`: the number an epoch-numbered packager (Starling's own with
    /// `clock=epoch`) gives the segment starting at AST.
    pub fn new(
        availability_start_ms: u64,
        segment_duration_ms: u64,
        first_segment: Option<u64>,
        end_ms: Option<u64>,
    ) -> Result<Self, EventError> {
        if !(1..=3_600_000).contains(&segment_duration_ms) {
            return Err(EventError::Duration(segment_duration_ms));
        }
        if let Some(end_ms) = end_ms.filter(|e| *e <= availability_start_ms) {
            return Err(EventError::EndBeforeStart {
                start_ms: availability_start_ms,
                end_ms,
            });
        }
        Ok(Self {
            availability_start_ms,
            segment_duration_ms,
            first_segment: first_segment.unwrap_or(availability_start_ms / segment_duration_ms),
            end_ms,
        })
    }

    pub fn first_segment(&self) -> u64 {
        self.first_segment
    }

    /// When segment `n` is due (Unix ms): `AST + (n − first + 1) × D`; `None` below the
    /// first number or past what a `u64` of milliseconds holds.
    pub fn due_ms(&self, n: u64) -> Option<u64> {
        let k = n.checked_sub(self.first_segment)?.checked_add(1)?;
        k.checked_mul(self.segment_duration_ms)?
            .checked_add(self.availability_start_ms)
    }

    /// The last number, for an event with an end: the one whose span holds the end's
    /// last millisecond (a segment straddling `end` is legitimate).
    pub fn last_segment(&self) -> Option<u64> {
        let end = self.end_ms?;
        let span = end - self.availability_start_ms; // > 0 (checked in `new`)
        Some(self.first_segment + span.div_ceil(self.segment_duration_ms) - 1)
    }

    /// Where number `n` (`None`: digits past `u64`) stands at `now_ms`.
    pub fn range(&self, n: Option<u64>, now_ms: u64) -> Range {
        let Some(n) = n else {
            return match self.end_ms {
                Some(_) => Range::PastEnd,
                None => Range::NotYet {
                    wait: Duration::from_secs(u64::from(MAX_NOT_YET_SECS)),
                },
            };
        };
        if n < self.first_segment {
            return Range::BeforeFirst;
        }
        if self.last_segment().is_some_and(|last| n > last) {
            return Range::PastEnd;
        }
        let Some(due) = self.due_ms(n) else {
            return Range::NotYet {
                wait: Duration::from_millis(u64::MAX),
            };
        };
        if now_ms < due {
            return Range::NotYet {
                wait: Duration::from_millis(due - now_ms),
            };
        }
        let deadline = self
            .segment_duration_ms
            .saturating_mul(RETRY_DEADLINE_SEGMENTS);
        if now_ms - due > deadline {
            Range::Late
        } else {
            Range::Due
        }
    }
}

/// `max-age` of a 404 for a segment due in `wait`: the whole seconds until it is due,
/// rounded up, at least 1 and at most [`MAX_NOT_YET_SECS`].
pub fn not_yet_max_age(wait: Duration) -> u32 {
    let secs = wait.as_millis().div_ceil(1000);
    u32::try_from(secs)
        .unwrap_or(u32::MAX)
        .clamp(1, MAX_NOT_YET_SECS)
}

/// Unix milliseconds of an instant (0 before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Parses an RFC 3339 timestamp (`2026-05-01T18:00:00Z`, `2026-05-01T20:00:00.250+02:00`;
/// `t`/`z` and a space for `T` are accepted, leap seconds are not) into Unix milliseconds.
/// Fractions past milliseconds are truncated.
pub fn parse_rfc3339(s: &str) -> Result<u64, EventError> {
    let bad = || EventError::Timestamp(s.chars().take(64).collect());
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<i64, EventError> {
        let d = b.get(r).ok_or_else(bad)?;
        if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(d.iter().fold(0i64, |a, c| a * 10 + i64::from(c - b'0')))
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > days_in[(mo - 1) as usize] {
        return Err(bad());
    }
    if h > 23 || mi > 59 || sec > 59 {
        return Err(bad());
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        for (k, c) in b[start..i].iter().take(3).enumerate() {
            millis += i64::from(c - b'0') * [100, 10, 1][k];
        }
    }
    let offset_min = match b.get(i..).ok_or_else(bad)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let m = oh * 60 + om;
            if *sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return Err(bad()),
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    let ms = secs * 1000 + millis;
    u64::try_from(ms).map_err(|_| EventError::BeforeEpoch)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm; the
/// inverse of `starling_media::wallclock`'s civil_from_days).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: u64 = 2000;
    /// 2026-05-01T18:00:00Z, on the 2-s grid.
    const AST: u64 = 1_777_658_400_000;

    fn ev(first: Option<u64>, end: Option<u64>) -> LiveEvent {
        LiveEvent::new(AST, D, first, end).unwrap()
    }

    #[test]
    fn timestamps_parse() {
        assert_eq!(parse_rfc3339("2026-05-01T18:00:00Z"), Ok(AST));
        assert_eq!(parse_rfc3339("2026-05-01T20:00:00+02:00"), Ok(AST));
        assert_eq!(parse_rfc3339("2026-05-01t17:30:00.25-00:30"), Ok(AST + 250));
        assert_eq!(parse_rfc3339("2026-05-01 18:00:00.123456z"), Ok(AST + 123));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
        assert_eq!(
            parse_rfc3339("1969-12-31T23:59:59Z"),
            Err(EventError::BeforeEpoch)
        );
        for bad in [
            "",
            "2026-05-01",
            "2026-05-01T18:00:00",
            "2026-05-01T18:00:00+0200",
            "2026-13-01T18:00:00Z",
            "2025-02-29T18:00:00Z",
            "2026-05-01T24:00:00Z",
            "2026-05-01T18:00:60Z",
            "2026-05-01T18:00:00.Z",
            "2026-05-01T18:00:00Zjunk",
            "２026-05-01T18:00:00Z",
            "+026-05-01T18:00:00Z",
        ] {
            assert!(
                matches!(parse_rfc3339(bad), Err(EventError::Timestamp(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_first_number_defaults_to_the_grid_slot_of_the_start() {
        assert_eq!(ev(None, None).first_segment(), AST / D);
        assert_eq!(ev(Some(7), None).first_segment(), 7);
        assert_eq!(
            LiveEvent::new(AST, 0, None, None),
            Err(EventError::Duration(0))
        );
        assert!(matches!(
            LiveEvent::new(AST, D, None, Some(AST)),
            Err(EventError::EndBeforeStart { .. })
        ));
    }

    #[test]
    fn numbers_are_due_one_duration_after_they_start() {
        let e = ev(Some(100), None);
        assert_eq!(e.due_ms(100), Some(AST + D));
        assert_eq!(e.due_ms(104), Some(AST + 5 * D));
        assert_eq!(e.due_ms(99), None);
        assert_eq!(e.due_ms(u64::MAX), None);
        // Before it is due: the wait to it.
        assert_eq!(
            e.range(Some(100), AST),
            Range::NotYet {
                wait: Duration::from_millis(D)
            }
        );
        assert_eq!(
            e.range(Some(110), AST + 10 * D + 1),
            Range::NotYet {
                wait: Duration::from_millis(D - 1)
            }
        );
        // Due, then within its retry deadline, then past it.
        assert_eq!(e.range(Some(100), AST + D), Range::Due);
        assert_eq!(e.range(Some(100), AST + 4 * D), Range::Due);
        assert_eq!(e.range(Some(100), AST + 4 * D + 1), Range::Late);
        assert_eq!(e.range(Some(99), AST + 100 * D), Range::BeforeFirst);
        assert_eq!(e.range(Some(0), 0), Range::BeforeFirst);
        assert!(matches!(
            e.range(None, AST),
            Range::NotYet { wait } if wait.as_secs() == 3600
        ));
        assert!(matches!(e.range(Some(u64::MAX), AST), Range::NotYet { .. }));
    }

    #[test]
    fn an_end_bounds_the_numbers() {
        // 10 s: five segments, 100..=104; 11 s: a sixth straddles the end.
        let e = ev(Some(100), Some(AST + 10_000));
        assert_eq!(e.last_segment(), Some(104));
        assert_eq!(e.range(Some(104), AST + 5 * D), Range::Due);
        assert_eq!(e.range(Some(105), AST), Range::PastEnd);
        assert_eq!(e.range(None, AST), Range::PastEnd);
        let e = ev(Some(100), Some(AST + 11_000));
        assert_eq!(e.last_segment(), Some(105));
        assert_eq!(e.range(Some(106), AST), Range::PastEnd);
    }

    #[test]
    fn max_age_rounds_up_and_is_bounded() {
        assert_eq!(not_yet_max_age(Duration::ZERO), 1);
        assert_eq!(not_yet_max_age(Duration::from_millis(1)), 1);
        assert_eq!(not_yet_max_age(Duration::from_millis(1001)), 2);
        assert_eq!(not_yet_max_age(Duration::from_secs(90)), 90);
        assert_eq!(not_yet_max_age(Duration::from_secs(86_400)), 3600);
        assert_eq!(not_yet_max_age(Duration::MAX), 3600);
    }
}
