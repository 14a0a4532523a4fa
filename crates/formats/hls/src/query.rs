//! Delivery Directives (RFC 8216bis 6.2.5): the `_HLS_msn`, `_HLS_part` and `_HLS_skip`
//! query parameters a client puts on a Media Playlist request. Parsing only; deciding when
//! the playlist is ready belongs to [`MediaPlaylist::is_ready_for`](crate::MediaPlaylist::is_ready_for)
//! and the origin's timers.

use crate::HlsError;

/// What the client asked for with `_HLS_skip` (6.2.5.1, 6.3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SkipRequest {
    /// No `_HLS_skip`: the full playlist.
    #[default]
    No,
    /// `_HLS_skip=YES`: a Playlist Delta Update skipping old Media Segments.
    Yes,
    /// `_HLS_skip=v2`: also skip old EXT-X-DATERANGE tags.
    V2,
}

/// The Delivery Directives of one Media Playlist request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockingRequest {
    /// `_HLS_msn`: block until the playlist has this Media Sequence Number (or later).
    pub msn: Option<u64>,
    /// `_HLS_part`: with `msn`, block until the playlist has this Part Index of it.
    pub part: Option<u64>,
    pub skip: SkipRequest,
}

impl BlockingRequest {
    /// Whether the client asked to block (`_HLS_msn` present).
    pub fn is_blocking(&self) -> bool {
        self.msn.is_some()
    }
}

/// Parses the query string of a Media Playlist request (without or with the leading `?`).
///
/// Rules: `_HLS_part` without `_HLS_msn` is an error (6.2.5.2 says the server MUST answer
/// Bad Request); values of `_HLS_msn` / `_HLS_part` must be decimal-integers (digits only,
/// fitting in 64 bits); `_HLS_skip` must be `YES` or `v2` (case-sensitive, as the spec
/// spells them); a directive given twice is an error; every other parameter is ignored
/// (cache busters, tokens). Values are compared raw: none of the valid ones needs
/// percent-decoding, so an encoded one is simply invalid.
pub fn parse_blocking_query(query: Option<&str>) -> Result<BlockingRequest, HlsError> {
    let mut req = BlockingRequest::default();
    let mut seen_skip = false;
    let Some(query) = query else {
        return Ok(req);
    };
    let query = query.strip_prefix('?').unwrap_or(query);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "_HLS_msn" => set_once(
                &mut req.msn,
                "_HLS_msn",
                decimal_integer("_HLS_msn", value)?,
            )?,
            "_HLS_part" => set_once(
                &mut req.part,
                "_HLS_part",
                decimal_integer("_HLS_part", value)?,
            )?,
            "_HLS_skip" => {
                if seen_skip {
                    return Err(HlsError::DuplicateParam { param: "_HLS_skip" });
                }
                seen_skip = true;
                req.skip = match value {
                    "YES" => SkipRequest::Yes,
                    "v2" => SkipRequest::V2,
                    _ => {
                        return Err(HlsError::InvalidSkip {
                            value: value.to_owned(),
                        })
                    }
                };
            }
            _ => {}
        }
    }
    if let (None, Some(part)) = (req.msn, req.part) {
        return Err(HlsError::PartWithoutMsn { part });
    }
    Ok(req)
}

fn set_once(slot: &mut Option<u64>, param: &'static str, value: u64) -> Result<(), HlsError> {
    if slot.is_some() {
        return Err(HlsError::DuplicateParam { param });
    }
    *slot = Some(value);
    Ok(())
}

/// 4.2 decimal-integer: `[0-9]+`, at most 2^64-1. `u64::from_str` would also take a `+`.
fn decimal_integer(param: &'static str, value: &str) -> Result<u64, HlsError> {
    let err = || HlsError::InvalidNumber {
        param,
        value: value.to_owned(),
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    value.parse().map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(q: Option<&str>) -> BlockingRequest {
        parse_blocking_query(q).unwrap()
    }

    #[test]
    fn no_query_or_no_directives() {
        assert_eq!(ok(None), BlockingRequest::default());
        assert_eq!(ok(Some("")), BlockingRequest::default());
        assert_eq!(ok(Some("?token=abc&x")), BlockingRequest::default());
        assert!(!ok(None).is_blocking());
    }

    #[test]
    fn msn_only() {
        let r = ok(Some("_HLS_msn=273"));
        assert_eq!(r.msn, Some(273));
        assert_eq!(r.part, None);
        assert_eq!(r.skip, SkipRequest::No);
        assert!(r.is_blocking());
    }

    #[test]
    fn msn_and_part_in_any_order_with_other_params() {
        let want = BlockingRequest {
            msn: Some(273),
            part: Some(2),
            skip: SkipRequest::No,
        };
        assert_eq!(ok(Some("?_HLS_msn=273&_HLS_part=2")), want);
        assert_eq!(ok(Some("cb=1&_HLS_part=2&&_HLS_msn=273")), want);
        assert_eq!(
            ok(Some("_HLS_msn=18446744073709551615&_HLS_part=0")).msn,
            Some(u64::MAX)
        );
    }

    #[test]
    fn part_without_msn_is_bad_request() {
        assert_eq!(
            parse_blocking_query(Some("_HLS_part=2")),
            Err(HlsError::PartWithoutMsn { part: 2 })
        );
        assert_eq!(
            parse_blocking_query(Some("_HLS_part=2&_HLS_skip=YES")),
            Err(HlsError::PartWithoutMsn { part: 2 })
        );
    }

    #[test]
    fn junk_values_are_errors() {
        for q in [
            "_HLS_msn=abc",
            "_HLS_msn=",
            "_HLS_msn",
            "_HLS_msn=-1",
            "_HLS_msn=+1",
            "_HLS_msn=1.5",
            "_HLS_msn=18446744073709551616",
            "_HLS_msn=1&_HLS_part=x",
            "_HLS_msn=%31",
        ] {
            assert!(
                matches!(
                    parse_blocking_query(Some(q)),
                    Err(HlsError::InvalidNumber { .. })
                ),
                "{q}"
            );
        }
        for q in [
            "_HLS_skip=yes",
            "_HLS_skip=NO",
            "_HLS_skip=",
            "_HLS_skip=v3",
        ] {
            assert!(
                matches!(
                    parse_blocking_query(Some(q)),
                    Err(HlsError::InvalidSkip { .. })
                ),
                "{q}"
            );
        }
        assert_eq!(
            parse_blocking_query(Some("_HLS_msn=1&_HLS_msn=2")),
            Err(HlsError::DuplicateParam { param: "_HLS_msn" })
        );
        assert_eq!(
            parse_blocking_query(Some("_HLS_skip=YES&_HLS_skip=YES")),
            Err(HlsError::DuplicateParam { param: "_HLS_skip" })
        );
    }

    #[test]
    fn error_messages_carry_the_value() {
        let e = parse_blocking_query(Some("_HLS_msn=12x")).unwrap_err();
        assert_eq!(e.to_string(), "_HLS_msn=\"12x\" is not a decimal-integer");
    }

    #[test]
    fn skip_yes_and_v2() {
        assert_eq!(ok(Some("_HLS_skip=YES")).skip, SkipRequest::Yes);
        assert_eq!(ok(Some("_HLS_skip=v2")).skip, SkipRequest::V2);
        let r = ok(Some("_HLS_msn=10&_HLS_part=0&_HLS_skip=YES"));
        assert_eq!(
            (r.msn, r.part, r.skip),
            (Some(10), Some(0), SkipRequest::Yes)
        );
    }
}
