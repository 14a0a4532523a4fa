//! Rendition names. Every output names its rendition with a `&'static str` (they are
//! compared and copied on every part), so names that are not the two built-in ones
//! (the ladder's rungs: `720p`, `480p`, …) are interned once here.

use std::{collections::BTreeSet, sync::Mutex};

use crate::{AUDIO_RENDITION, VIDEO_RENDITION};

/// Distinct rung names a process interns at most: ladders are configuration, and a
/// name read from a store or a request that would pass this is refused, not leaked.
pub const MAX_RENDITION_NAMES: usize = 64;

/// Longest rendition name.
pub const MAX_RENDITION_NAME_LEN: usize = 16;

static INTERNED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// Whether `name` can name a rendition: 1 to 16 of `a-z`, `0-9`, `_`, `-`, starting with
/// a letter or digit (it is a path segment of URLs and object keys).
pub fn valid_rendition_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_RENDITION_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

/// The `'static` name for `name`: the built-in ones, or an interned rung name (`None`
/// for an invalid name, or once [`MAX_RENDITION_NAMES`] are interned).
pub fn rendition_name(name: &str) -> Option<&'static str> {
    if name == VIDEO_RENDITION {
        return Some(VIDEO_RENDITION);
    }
    if name == AUDIO_RENDITION {
        return Some(AUDIO_RENDITION);
    }
    if !valid_rendition_name(name) {
        return None;
    }
    let mut set = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = set.get(name) {
        return Some(n);
    }
    if set.len() >= MAX_RENDITION_NAMES {
        return None;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    set.insert(leaked);
    Some(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_names_and_interned_rungs() {
        assert_eq!(rendition_name("source"), Some(VIDEO_RENDITION));
        let a = rendition_name("720p").unwrap();
        let b = rendition_name(&String::from("720p")).unwrap();
        assert!(std::ptr::eq(a, b), "interned once");
        for bad in ["", "../x", "720P", "a b", "-x", "seventeen-chars-x"] {
            assert_eq!(rendition_name(bad), None, "{bad:?}");
        }
    }
}
