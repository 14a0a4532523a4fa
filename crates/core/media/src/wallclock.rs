//! Wall-clock instants as text: the one formatter of the playlists' and manifests' dates
//! (HLS EXT-X-PROGRAM-DATE-TIME, DASH xs:dateTime). Pure; never reads the clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// ISO 8601 / RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T00:40:12.345Z`.
/// Rounded to the nearest millisecond.
///
/// Hand-written (civil-from-days) so that no crate needs a date library for this.
pub fn utc_millis(t: SystemTime) -> String {
    // Signed nanoseconds since the epoch, so instants before 1970 format too.
    let nanos: i128 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX / 2),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX / 2),
    };
    let millis = (nanos + 500_000).div_euclid(1_000_000);
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
/// i128 throughout: no input that `SystemTime` can hold overflows it.
fn civil_from_days(days: i128) -> (i128, i128, i128) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i128::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn pdt_epoch() {
        assert_eq!(utc_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn pdt_known_instants() {
        // `date -u -d 2026-11-22T00:40:12Z +%s` = 1795308012.
        assert_eq!(
            utc_millis(at(1_795_308_012, 345_000_000)),
            "2026-11-22T00:40:12.345Z"
        );
        // Leap day: `date -u -d 2024-02-29T23:59:59Z +%s` = 1709251199.
        assert_eq!(utc_millis(at(1_709_251_199, 0)), "2024-02-29T23:59:59.000Z");
        // 2000 is a leap year (divisible by 400): 951782400 is 2000-02-29.
        assert_eq!(utc_millis(at(951_782_400, 0)), "2000-02-29T00:00:00.000Z");
        // 2100 is not: 4107542400 is 2100-03-01.
        assert_eq!(utc_millis(at(4_107_542_400, 0)), "2100-03-01T00:00:00.000Z");
        // Last second of a year.
        assert_eq!(
            utc_millis(at(1_735_689_599, 999_000_000)),
            "2024-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn pdt_rounds_to_nearest_millisecond_with_carry() {
        assert_eq!(utc_millis(at(0, 1_499_999)), "1970-01-01T00:00:00.001Z");
        assert_eq!(utc_millis(at(0, 1_500_000)), "1970-01-01T00:00:00.002Z");
        assert_eq!(utc_millis(at(0, 499_999)), "1970-01-01T00:00:00.000Z");
        // 23:59:59.9996 rounds into the next day, month and year.
        assert_eq!(
            utc_millis(at(1_735_689_599, 999_600_000)),
            "2025-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn pdt_before_epoch() {
        assert_eq!(
            utc_millis(UNIX_EPOCH - Duration::from_millis(1)),
            "1969-12-31T23:59:59.999Z"
        );
        // -86400*365 s is 1969-01-01.
        assert_eq!(
            utc_millis(UNIX_EPOCH - Duration::from_secs(86_400 * 365)),
            "1969-01-01T00:00:00.000Z"
        );
    }
}
