//! Rejection codes a server sends a refused caller (`SRT_REJX_*` of libsrt's
//! `access_control.h`; HTTP's numbers plus 1000), and their texts.

pub const BAD_REQUEST: i32 = 1400;
pub const UNAUTHORIZED: i32 = 1401;
pub const OVERLOAD: i32 = 1402;
pub const FORBIDDEN: i32 = 1403;
pub const NOTFOUND: i32 = 1404;
pub const BAD_MODE: i32 = 1405;
pub const UNACCEPTABLE: i32 = 1406;
pub const CONFLICT: i32 = 1409;
pub const NOTSUP_MEDIA: i32 = 1415;
pub const ISE: i32 = 1500;
pub const UNAVAILABLE: i32 = 1503;

/// The text of a server rejection code, for logs and for a caller's error.
pub fn describe(code: i32) -> &'static str {
    match code {
        BAD_REQUEST => "bad stream id",
        UNAUTHORIZED => "unknown or revoked stream key, or bad token",
        OVERLOAD => "server full",
        FORBIDDEN => "forbidden",
        NOTFOUND => "no such channel",
        BAD_MODE => "unsupported mode",
        UNACCEPTABLE => "unacceptable parameters",
        CONFLICT => "channel already has a publisher",
        NOTSUP_MEDIA => "unsupported media type",
        ISE => "internal server error",
        UNAVAILABLE => "service unavailable, try again",
        1000..=1999 => "refused by the server",
        2000.. => "refused by the application",
        _ => "refused",
    }
}
