//! Exact timestamp arithmetic between timescales.
//!
//! Every conversion goes through `i128` with saturating operations and one rounding
//! (half away from zero), so no input timestamp can overflow or panic, and converting a
//! millisecond clock to 90 kHz is exact.

/// Nanoseconds per second: the unit of the nominal segment grid.
pub(crate) const NANOS: i128 = 1_000_000_000;

/// `n / d` rounded half away from zero; 0 for a non-positive `d`.
pub(crate) fn div_round(n: i128, d: i128) -> i128 {
    if d <= 0 {
        return 0;
    }
    let (q, r) = (n / d, n % d);
    if r.unsigned_abs().saturating_mul(2) >= d.unsigned_abs() {
        q.saturating_add(n.signum())
    } else {
        q
    }
}

/// Narrows to `i64`, saturating.
pub(crate) fn to_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// `ticks` at `timescale` in nanoseconds.
pub(crate) fn ticks_to_ns(ticks: i64, timescale: u32) -> i128 {
    div_round(
        i128::from(ticks).saturating_mul(NANOS),
        i128::from(timescale),
    )
}

/// `ns` nanoseconds in ticks of `timescale`.
pub(crate) fn ns_to_ticks(ns: i128, timescale: u32) -> i64 {
    to_i64(div_round(ns.saturating_mul(i128::from(timescale)), NANOS))
}

/// `a / a_ts >= b / b_ts`, exactly.
pub(crate) fn at_or_after(a: i64, a_ts: u32, b: i64, b_ts: u32) -> bool {
    i128::from(a).saturating_mul(i128::from(b_ts)) >= i128::from(b).saturating_mul(i128::from(a_ts))
}

/// `ticks / timescale >= ns / 10^9`, exactly.
pub(crate) fn at_or_after_ns(ticks: i64, timescale: u32, ns: i128) -> bool {
    i128::from(ticks).saturating_mul(NANOS) >= ns.saturating_mul(i128::from(timescale))
}

/// Where a publish's clock sits on the packager's media timeline: source time `ticks`
/// (at `timescale`) of the publish's first frame is media time `base_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    pub ticks: i64,
    pub timescale: u32,
    pub base_ns: i128,
}

impl Origin {
    /// Media time of source time `ticks` (of a track at `timescale`) in ticks of `out`.
    pub fn map(&self, ticks: i64, timescale: u32, out: u32) -> i64 {
        let (t, to) = (i128::from(timescale), i128::from(self.timescale));
        // (ticks/T - origin/To) seconds, as a fraction over T*To.
        let rel = i128::from(ticks)
            .saturating_mul(to)
            .saturating_sub(i128::from(self.ticks).saturating_mul(t));
        let rel = div_round(rel.saturating_mul(i128::from(out)), t.saturating_mul(to));
        to_i64(rel).saturating_add(ns_to_ticks(self.base_ns, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(-5, 2), -3);
        assert_eq!(div_round(4, 3), 1);
        assert_eq!(div_round(-4, 3), -1);
        assert_eq!(div_round(7, 0), 0);
    }

    #[test]
    fn ms_to_90khz_is_exact_and_relative_to_the_origin() {
        let o = Origin {
            ticks: 1000,
            timescale: 1000,
            base_ns: 0,
        };
        assert_eq!(o.map(1033, 1000, 90_000), 33 * 90);
        assert_eq!(o.map(999, 1000, 90_000), -90);
        // 57 ms at 44.1 kHz is 2513.7 samples
        let o = Origin {
            ticks: 0,
            timescale: 1000,
            base_ns: 0,
        };
        assert_eq!(o.map(57, 1000, 44_100), 2514);
    }

    #[test]
    fn base_offsets_a_later_publish() {
        let o = Origin {
            ticks: 0,
            timescale: 1000,
            base_ns: 2_000_000_000,
        };
        assert_eq!(o.map(40, 1000, 90_000), 183_600);
        // ticks -> ns -> ticks round-trips at 90 kHz
        assert_eq!(ns_to_ticks(ticks_to_ns(123_457, 90_000), 90_000), 123_457);
    }

    #[test]
    fn extremes_saturate() {
        let o = Origin {
            ticks: i64::MIN,
            timescale: 1,
            base_ns: i128::MAX,
        };
        assert_eq!(o.map(i64::MAX, u32::MAX, u32::MAX), i64::MAX);
        assert!(at_or_after(i64::MAX, 1, i64::MIN, u32::MAX));
        assert!(!at_or_after_ns(i64::MIN, u32::MAX, i128::MAX));
    }
}
