//! Attribute value formats of RFC 8216bis 4.2: decimal-floating-point, the ISO 8601 date of
//! EXT-X-PROGRAM-DATE-TIME, and checks that a string can be written as a quoted-string or a
//! URI line. Pure functions; never reads the clock.

use std::time::SystemTime;

use crate::HlsError;

/// Digits after the point for every decimal-floating-point we write (10 µs resolution).
///
/// One formatter for all durations keeps comparisons intact after rounding: a part no
/// longer than PART-TARGET is still no longer once both are written (rounding is monotonic).
const DECIMALS: usize = 5;

/// Writes `value` as a decimal-floating-point (4.2: digits and '.', non-negative, no
/// exponent): at most five decimals, trailing zeros trimmed but one kept (`2.0`, `0.33334`).
///
/// NaN, infinities and negative values cannot be written in this format; they come out as
/// `0.0` and `validate()` reports them.
pub fn decimal_float(value: f64) -> String {
    let value = if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    };
    let mut s = format!("{value:.DECIMALS$}");
    while s.ends_with('0') && !s.ends_with(".0") {
        s.pop();
    }
    s
}

/// Writes an instant as EXT-X-PROGRAM-DATE-TIME wants it: ISO 8601 / RFC 3339 in UTC with
/// milliseconds, e.g. `2026-11-22T00:40:12.345Z` (the formatter every writer of wall-clock
/// instants shares).
pub fn program_date_time(t: SystemTime) -> String {
    starling_media::wallclock::utc_millis(t)
}

/// Checks that `value` can be written inside a quoted-string (4.2: no `"`, CR or LF) and,
/// being a playlist line, carries no control character (4.1).
pub fn check_quoted(field: &'static str, value: &str) -> Result<(), HlsError> {
    if value.contains('"') {
        return Err(invalid(field, value, "contains a double quote"));
    }
    check_line(field, value)
}

/// Checks that `value` can stand on a playlist line of its own or as an EXTINF title:
/// no control characters (4.1 forbids U+0000..U+001F and U+007F..U+009F, so also no CR/LF).
pub fn check_line(field: &'static str, value: &str) -> Result<(), HlsError> {
    if value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            value,
            "contains a control character or line break",
        ));
    }
    Ok(())
}

/// Like [`check_quoted`], and the value must not be empty (URIs, GROUP-ID, NAME).
pub fn check_required_quoted(field: &'static str, value: &str) -> Result<(), HlsError> {
    if value.is_empty() {
        return Err(invalid(field, value, "is empty"));
    }
    check_quoted(field, value)
}

fn invalid(field: &'static str, value: &str, problem: &'static str) -> HlsError {
    HlsError::InvalidText {
        field,
        value: value.to_owned(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn decimal_float_trims_to_at_most_five_decimals() {
        assert_eq!(decimal_float(2.0), "2.0");
        assert_eq!(decimal_float(4.00008), "4.00008");
        assert_eq!(decimal_float(0.333_336), "0.33334");
        assert_eq!(decimal_float(1.5), "1.5");
        assert_eq!(decimal_float(0.0), "0.0");
        assert_eq!(decimal_float(10.0), "10.0");
        assert_eq!(decimal_float(1.999_999_9), "2.0");
        assert_eq!(decimal_float(12_345.678_9), "12345.6789");
    }

    #[test]
    fn decimal_float_never_writes_what_the_format_forbids() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, -0.0] {
            assert_eq!(decimal_float(v), "0.0", "{v}");
        }
        // Huge values stay in positional notation (no exponent).
        let s = decimal_float(1e22);
        assert!(s.chars().all(|c| c.is_ascii_digit() || c == '.'), "{s}");
    }

    #[test]
    fn pdt_is_the_shared_wall_clock_format() {
        // The formatter itself is tested in `starling_media::wallclock`.
        assert_eq!(
            program_date_time(at(1_795_308_012, 345_000_000)),
            "2026-11-22T00:40:12.345Z"
        );
    }

    #[test]
    fn text_checks() {
        assert!(check_quoted("URI", "seg/1.m4s?x=1").is_ok());
        assert!(check_quoted("URI", "a\"b").is_err());
        assert!(check_quoted("URI", "a\nb").is_err());
        assert!(check_line("title", "a\rb").is_err());
        assert!(check_line("title", "a\u{85}b").is_err());
        assert!(check_line("title", "Café, live").is_ok());
        assert!(check_required_quoted("URI", "").is_err());
    }
}
