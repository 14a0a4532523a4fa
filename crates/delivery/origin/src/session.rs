//! Session ids and the object keys built from them.
//!
//! Every publish gets a session id, unique across reconnects, restarts and nodes; media
//! objects live under it (URL `…/RENDITION/SESSION/N.m4s`, object key
//! `media/CHANNEL/SESSION/RENDITION/N.m4s`), so an immutable URL never names two
//! different bytes. Keys are built from validated names and numbers only.

use std::time::{Duration, SystemTime};

use axum::{http::StatusCode, response::Response};

use crate::OriginConfig;

/// How far ahead of this node's clock another node's may be: a session that began later
/// than this cannot have been made by any node yet.
const CLOCK_TOLERANCE: Duration = Duration::from_secs(300);

/// When a session began, from its id (unix ms in the high 44 bits).
pub(crate) fn session_start(session: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(session >> 20)
}

/// A response for a request naming `session` when no object of it can exist, decided
/// from the id (no store read): a session that begins in the future (404, cacheable for
/// a minute), or one older than the recording retention whose objects the sweep
/// deleted (410), if `swept_here` says so (the channel is followed on this node and the
/// session is not of its run in memory, which the sweep keeps; asked only then).
/// `None`: it may exist; look.
pub(crate) fn cannot_exist(
    session: u64,
    swept_here: impl FnOnce() -> bool,
    config: &OriginConfig,
    now: SystemTime,
) -> Option<Response> {
    let start = session_start(session);
    if start > now + CLOCK_TOLERANCE {
        return Some(crate::http::error(
            StatusCode::NOT_FOUND,
            "no such session",
            "public, max-age=60",
        ));
    }
    let expired = config
        .recording_retention
        .is_some_and(|keep| now.duration_since(start).is_ok_and(|age| age > keep))
        && swept_here();
    expired.then(|| {
        crate::http::error(
            StatusCode::GONE,
            "session older than the recording retention",
            "public, max-age=3600",
        )
    })
}

/// A session id as it appears in URLs and object keys: 16 lowercase hex digits.
pub fn session_name(session: u64) -> String {
    format!("{session:016x}")
}

/// The inverse of [`session_name`]; `None` for anything else.
pub fn parse_session(s: &str) -> Option<u64> {
    (s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

/// A new session id: unix ms in the high 44 bits, 20 random bits below, so that ids are
/// ordered by start time and two nodes (or a node whose clock went back) do not collide.
pub(crate) fn new_session(now: SystemTime) -> u64 {
    let ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut r = [0u8; 4];
    // Without entropy the clock alone still separates sessions of one node.
    let _ = getrandom::fill(&mut r);
    let random = u64::from(u32::from_le_bytes(r)) & 0xF_FFFF;
    ((ms & 0xFFF_FFFF_FFFF) << 20 | random).max(1)
}

/// Object key of a segment: derived from validated names and numbers only.
pub(crate) fn segment_key(channel: &str, session: u64, rendition: &str, msn: u64) -> String {
    format!(
        "media/{channel}/{}/{rendition}/{msn}.m4s",
        session_name(session)
    )
}

pub(crate) fn init_key(channel: &str, session: u64, rendition: &str, version: usize) -> String {
    format!(
        "media/{channel}/{}/{rendition}/init-{version}.mp4",
        session_name(session)
    )
}
