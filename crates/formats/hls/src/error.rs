//! Errors: a malformed delivery-directive query (the origin answers 400), or a playlist
//! that breaks a rule of the spec (found by `validate()`).

/// Everything that can go wrong in this crate. Each variant names the rule that was broken
/// and the values involved, so the message alone says what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HlsError {
    // --- delivery directives (RFC 8216bis 6.2.5); the origin answers 400 Bad Request ---
    /// `_HLS_part` came without `_HLS_msn` (6.2.5.2: the server MUST return Bad Request).
    #[error("_HLS_part={part} was given without _HLS_msn")]
    PartWithoutMsn { part: u64 },
    /// A directive that must be a decimal-integer was not one (or does not fit in 64 bits).
    #[error("{param}={value:?} is not a decimal-integer")]
    InvalidNumber { param: &'static str, value: String },
    /// `_HLS_skip` has a value other than `YES` or `v2`.
    #[error("_HLS_skip={value:?} is neither YES nor v2")]
    InvalidSkip { value: String },
    /// A directive appeared more than once, so the request is ambiguous.
    #[error("{param} appears more than once in the query")]
    DuplicateParam { param: &'static str },

    // --- playlist rules (found by validate()) ---
    /// A duration is negative, NaN or infinite.
    #[error("{what} has duration {value}, which is not a finite non-negative number")]
    InvalidDuration { what: String, value: f64 },
    /// 4.4.3.1: each EXTINF duration, rounded to the nearest integer, MUST be <= the target.
    #[error("segment {msn} lasts {duration} s, which rounds above EXT-X-TARGETDURATION:{target}")]
    SegmentExceedsTargetDuration {
        msn: u64,
        duration: f64,
        target: u32,
    },
    /// 4.4.4.9: a Partial Segment's duration MUST be <= the Part Target Duration.
    #[error("{what} lasts {duration} s, more than PART-TARGET={part_target}")]
    PartExceedsPartTarget {
        what: String,
        duration: f64,
        part_target: f64,
    },
    /// 4.4.3.7: EXT-X-PART-INF is REQUIRED when there are EXT-X-PART tags (or a part hint).
    #[error(
        "the playlist has partial segments or a preload hint but no part_target (EXT-X-PART-INF)"
    )]
    MissingPartInf,
    /// 4.4.3.8: PART-HOLD-BACK is REQUIRED when EXT-X-PART-INF is present.
    #[error("EXT-X-PART-INF is present but EXT-X-SERVER-CONTROL has no PART-HOLD-BACK")]
    MissingPartHoldBack,
    /// 4.4.3.8: PART-HOLD-BACK MUST be at least twice the Part Target Duration.
    #[error("PART-HOLD-BACK={part_hold_back} is less than 2 x PART-TARGET ({minimum})")]
    PartHoldBackTooSmall { part_hold_back: f64, minimum: f64 },
    /// 4.4.3.8: HOLD-BACK MUST be at least three times the Target Duration.
    #[error("HOLD-BACK={hold_back} is less than 3 x EXT-X-TARGETDURATION ({minimum})")]
    HoldBackTooSmall { hold_back: f64, minimum: f64 },
    /// 4.4.3.8: the Skip Boundary MUST be at least six times the Target Duration.
    #[error("CAN-SKIP-UNTIL={can_skip_until} is less than 6 x EXT-X-TARGETDURATION ({minimum})")]
    SkipBoundaryTooSmall { can_skip_until: f64, minimum: f64 },
    /// 4.4.3.8: CAN-SKIP-DATERANGES requires CAN-SKIP-UNTIL.
    #[error("CAN-SKIP-DATERANGES=YES requires CAN-SKIP-UNTIL")]
    SkipDaterangesWithoutSkipUntil,
    /// 4.4.5.3: a Playlist with EXT-X-ENDLIST MUST NOT contain EXT-X-PRELOAD-HINT.
    #[error("the playlist has EXT-X-ENDLIST and an EXT-X-PRELOAD-HINT")]
    PreloadHintAfterEndList,
    /// Section 8: the declared EXT-X-VERSION is below what the playlist's tags need.
    #[error("EXT-X-VERSION:{declared} is too low: {reason} needs version {required}")]
    VersionTooLow {
        declared: u8,
        required: u8,
        reason: &'static str,
    },
    /// A URI, name or title that would break the playlist's syntax: empty where a value is
    /// required, or containing a line break, a control character or (in a quoted-string) `"`.
    #[error("{field} {value:?} cannot be written into a playlist: {problem}")]
    InvalidText {
        field: &'static str,
        value: String,
        problem: &'static str,
    },
    /// A multivariant rule: an EXT-X-MEDIA or EXT-X-STREAM-INF whose attributes contradict.
    #[error("{0}")]
    InvalidMultivariant(String),
}
