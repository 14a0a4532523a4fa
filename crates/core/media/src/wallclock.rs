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

    #[test]
    fn known_instants() {
        assert_eq!(utc_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::new(1_795_308_012, 345_600_000);
        // Rounded to the nearest millisecond.
        assert_eq!(utc_millis(t), "2026-11-22T00:40:12.346Z");
        // A leap day, and the day after a century that is not a leap year.
        assert_eq!(
            utc_millis(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            utc_millis(UNIX_EPOCH + Duration::from_secs(4_107_542_400)),
            "2100-03-01T00:00:00.000Z"
        );
        assert_eq!(
            utc_millis(UNIX_EPOCH - Duration::from_millis(1)),
            "1969-12-31T23:59:59.999Z"
        );
    }
}
