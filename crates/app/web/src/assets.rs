//! The files embedded at build time: the HTML pages and the `/assets/` files that
//! `build.rs` produced from `web/` (or the fallback page when npm was unavailable).
//! The table is generated; this module only describes its rows and looks them up.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asset {
    /// The file name: `index.html`, or `watch.0123456789.js` under `/assets/`.
    pub(crate) name: &'static str,
    pub(crate) content_type: &'static str,
    /// A strong validator (quoted), derived from the bytes.
    pub(crate) etag: &'static str,
    /// The name carries a content hash, so it may be cached forever.
    pub(crate) immutable: bool,
    pub(crate) bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The HTML page `name` (`index.html`, `watch.html`).
pub(crate) fn page(name: &str) -> Option<&'static Asset> {
    PAGES.iter().find(|a| a.name == name)
}

/// The file served at `/assets/{name}`.
pub(crate) fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}
