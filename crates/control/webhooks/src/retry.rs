//! When to try a delivery again, and when to stop: pure, no clock, no randomness of
//! its own (the caller passes a random number for the jitter).
//!
//! - 2xx: delivered.
//! - 408 Request Timeout, 429 Too Many Requests, 5xx, 1xx, a timeout or a connection
//!   failure: try again after the next delay of the schedule (default 10 s, 30 s, 2 min,
//!   10 min, 1 h, 2 h, then every 4 h), each spread by ±20 % so that receivers
//!   recovering from an outage are not hit by every sender at once.
//! - 3xx (redirects are not followed) and every other 4xx: the receiver refused the
//!   request itself, and the same bytes will be refused again: give up at once.
//! - Give up as well after [`RetryPolicy::max_attempts`] attempts, or when the next
//!   attempt would come later than [`RetryPolicy::max_age`] after the event (24 h).

use std::time::Duration;

/// What one attempt produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The receiver answered with this status.
    Status(u16),
    /// No complete response within the request timeout.
    Timeout(Duration),
    /// Could not connect or the connection broke (DNS, refused, reset, …).
    Failed(String),
    /// The request cannot be sent at all (e.g. an `https://` URL in a build without TLS):
    /// retrying will not help.
    Unsendable(String),
}

impl Outcome {
    /// The status, if a response arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Status(s) => Some(*s),
            _ => None,
        }
    }

    /// A short description for the delivery log (never a secret).
    pub fn describe(&self) -> String {
        match self {
            Outcome::Status(s) => format!("HTTP {s}"),
            Outcome::Timeout(d) => format!("no response within {} ms", d.as_millis()),
            Outcome::Failed(e) => format!("request failed: {e}"),
            Outcome::Unsendable(e) => format!("cannot send: {e}"),
        }
    }
}

/// How an outcome counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Delivered.
    Success,
    /// Worth another attempt.
    Transient,
    /// Will fail the same way again.
    Permanent,
}

/// Classifies an attempt's outcome.
pub fn classify(outcome: &Outcome) -> Class {
    match outcome {
        Outcome::Status(s) => match s {
            200..=299 => Class::Success,
            408 | 429 => Class::Transient,
            300..=499 => Class::Permanent,
            _ => Class::Transient,
        },
        Outcome::Timeout(_) | Outcome::Failed(_) => Class::Transient,
        Outcome::Unsendable(_) => Class::Permanent,
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Done.
    Delivered,
    /// Try again this long after the attempt ended.
    RetryAfter(Duration),
    /// Stop; the reason is for the delivery log.
    GiveUp(String),
}

/// The retry schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before retry *n* (the first entry follows the first attempt); the last
    /// entry repeats. Must not be empty (an empty list means "never retry").
    pub delays: Vec<Duration>,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// No attempt is scheduled later than this after the event was enqueued.
    pub max_age: Duration,
    /// Spread of each delay, in thousandths either way (200 = ±20 %).
    pub jitter_permille: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        const MIN: u64 = 60;
        Self {
            delays: [10, 30, 2 * MIN, 10 * MIN, 60 * MIN, 120 * MIN, 240 * MIN]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            max_attempts: 12,
            max_age: Duration::from_secs(24 * 3600),
            jitter_permille: 200,
        }
    }
}

impl RetryPolicy {
    /// The delay after attempt number `attempts` (1 = the first) failed, spread by
    /// `random` (any `u32`, uniformly drawn by the caller). `None` if `delays` is empty.
    pub fn delay(&self, attempts: u32, random: u32) -> Option<Duration> {
        let idx = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        let base = self.delays.get(idx).or(self.delays.last())?;
        let base_ms = u128::from(u64::try_from(base.as_millis()).unwrap_or(u64::MAX));
        let spread = base_ms * u128::from(self.jitter_permille.min(1000)) / 1000;
        // Uniform in [base - spread, base + spread].
        let offset = (u128::from(random) * (2 * spread + 1)) >> 32;
        let ms = (base_ms - spread + offset).min(u128::from(u64::MAX));
        Some(Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)))
    }

    /// Decides after attempt number `attempts` (1 = the first), which ended `age` after
    /// the event was enqueued.
    pub fn decide(&self, attempts: u32, age: Duration, outcome: &Outcome, random: u32) -> Decision {
        let what = outcome.describe();
        match classify(outcome) {
            Class::Success => Decision::Delivered,
            Class::Permanent => Decision::GiveUp(format!("{what}: not retried")),
            Class::Transient if attempts >= self.max_attempts => {
                Decision::GiveUp(format!("{what}: gave up after {attempts} attempts"))
            }
            Class::Transient => match self.delay(attempts, random) {
                None => Decision::GiveUp(format!("{what}: retries are disabled")),
                Some(d) if age.saturating_add(d) > self.max_age => Decision::GiveUp(format!(
                    "{what}: gave up after {attempts} attempts ({} s old)",
                    age.as_secs()
                )),
                Some(d) => Decision::RetryAfter(d),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn classification() {
        for (s, c) in [
            (200, Class::Success),
            (204, Class::Success),
            (299, Class::Success),
            (100, Class::Transient),
            (301, Class::Permanent),
            (400, Class::Permanent),
            (401, Class::Permanent),
            (404, Class::Permanent),
            (408, Class::Transient),
            (410, Class::Permanent),
            (429, Class::Transient),
            (500, Class::Transient),
            (503, Class::Transient),
            (599, Class::Transient),
        ] {
            assert_eq!(classify(&Outcome::Status(s)), c, "{s}");
        }
        assert_eq!(classify(&Outcome::Timeout(S(10))), Class::Transient);
        assert_eq!(
            classify(&Outcome::Failed("refused".into())),
            Class::Transient
        );
        assert_eq!(
            classify(&Outcome::Unsendable("https".into())),
            Class::Permanent
        );
    }

    #[test]
    fn default_schedule_without_and_with_jitter() {
        let p = RetryPolicy {
            jitter_permille: 0,
            ..RetryPolicy::default()
        };
        let delays: Vec<u64> = (1..=9)
            .map(|n| p.delay(n, 12345).unwrap().as_secs())
            .collect();
        assert_eq!(delays, [10, 30, 120, 600, 3600, 7200, 14400, 14400, 14400]);
        let j = RetryPolicy::default();
        // The extremes of the random draw give the edges of ±20 %.
        assert_eq!(j.delay(1, 0), Some(Duration::from_millis(8_000)));
        assert_eq!(j.delay(1, u32::MAX), Some(Duration::from_millis(12_000)));
        assert_eq!(j.delay(5, 1 << 31), Some(Duration::from_millis(3_600_000)));
        for r in [1, 999, 1 << 20, u32::MAX - 1] {
            let d = j.delay(2, r).unwrap();
            assert!(d >= S(24) && d <= S(36), "{d:?}");
        }
    }

    #[test]
    fn the_default_policy_spans_about_a_day() {
        let p = RetryPolicy::default();
        let fail = Outcome::Status(503);
        for random in [0, 1 << 31, u32::MAX] {
            let mut age = Duration::ZERO;
            let mut attempts = 0;
            loop {
                attempts += 1;
                match p.decide(attempts, age, &fail, random) {
                    Decision::RetryAfter(d) => age += d,
                    Decision::GiveUp(why) => {
                        assert!(why.starts_with("HTTP 503: gave up after"), "{why}");
                        break;
                    }
                    Decision::Delivered => unreachable!(),
                }
            }
            assert!((10..=12).contains(&attempts), "{attempts}");
            assert!(age > S(17 * 3600) && age <= S(24 * 3600), "{age:?}");
        }
    }

    #[test]
    fn decisions() {
        let p = RetryPolicy::default();
        let r = 1 << 31;
        assert_eq!(
            p.decide(1, S(0), &Outcome::Status(200), r),
            Decision::Delivered
        );
        assert_eq!(
            p.decide(1, S(0), &Outcome::Status(500), r),
            Decision::RetryAfter(S(10))
        );
        assert_eq!(
            p.decide(3, S(60), &Outcome::Timeout(S(10)), r),
            Decision::RetryAfter(S(120))
        );
        assert_eq!(
            p.decide(1, S(0), &Outcome::Status(404), r),
            Decision::GiveUp("HTTP 404: not retried".into())
        );
        assert!(matches!(
            p.decide(1, S(0), &Outcome::Status(429), r),
            Decision::RetryAfter(_)
        ));
        assert!(matches!(
            p.decide(12, S(0), &Outcome::Status(500), r),
            Decision::GiveUp(_)
        ));
        assert!(matches!(
            p.decide(5, S(23 * 3600 + 1), &Outcome::Status(500), r),
            Decision::GiveUp(_)
        ));
        let never = RetryPolicy {
            delays: vec![],
            ..RetryPolicy::default()
        };
        assert!(matches!(
            never.decide(1, S(0), &Outcome::Status(500), r),
            Decision::GiveUp(_)
        ));
        // Absurd values do not overflow.
        let huge = RetryPolicy {
            delays: vec![Duration::MAX],
            jitter_permille: u32::MAX,
            max_attempts: u32::MAX,
            max_age: Duration::MAX,
        };
        assert!(huge.delay(u32::MAX, u32::MAX).is_some());
    }
}
