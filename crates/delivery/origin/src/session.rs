//! Session ids and the object keys built from them.
//!
//! Every publish gets a session id, unique across reconnects, restarts and nodes; media
//! objects live under it (URL `…/RENDITION/SESSION/N.m4s`, object key
//! `media/CHANNEL/SESSION/RENDITION/N.m4s`), so an immutable URL never names two
//! different bytes. Keys are built from validated names and numbers only.

use std::time::SystemTime;

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
