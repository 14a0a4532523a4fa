//! `…/{rendition}/pieces.txt`: the signed SHA-256 of the rendition's newest pieces, for
//! P2P viewers to check what other viewers send them (format: `starling_p2p::pieces`).
//!
//! It lists the whole segments of the last [`SEGMENTS`] numbers (a viewer a few segments
//! behind live, or one that rewound a little, shares those) and the parts of the last
//! [`PART_SEGMENTS`] (parts travel between peers rarely: the live edge comes from the
//! edge). Digests are computed once, when a piece is made (`apply`); signing the list is
//! one Ed25519 signature per request, and edges cache it for a second.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse as _, Response},
};
use starling_p2p::pieces::{Piece, PieceList};

use super::{error, NOT_YET};
use crate::live::{lock, session_name, Channel, Origin};

/// Newest segments whose whole digest is listed.
pub(crate) const SEGMENTS: usize = 60;
/// Newest segments whose parts' digests are listed.
pub(crate) const PART_SEGMENTS: usize = 3;

pub(super) fn list(origin: &Origin, ch: &Channel, rendition: &str) -> Response {
    let Some(signer) = origin.piece_signer.get() else {
        return error(
            StatusCode::NOT_FOUND,
            "P2P is off on this node: no piece lists",
            "public, max-age=60",
        );
    };
    let pieces = {
        let st = lock(&ch.inner);
        let Some(r) = st.rendition(rendition) else {
            return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
        };
        let n = r.segments.len();
        let mut pieces = Vec::new();
        for (i, s) in r
            .segments
            .iter()
            .enumerate()
            .skip(n.saturating_sub(SEGMENTS))
        {
            let session = session_name(s.session);
            if let Some((sha256, len)) = s.sha256.filter(|_| s.complete && !s.gap) {
                pieces.push(Piece {
                    uri: format!("{session}/{}.m4s", s.msn),
                    len,
                    sha256,
                });
            }
            if i + PART_SEGMENTS >= n {
                for (k, p) in s.parts.iter().enumerate() {
                    if let Some(sha256) = p.sha256 {
                        pieces.push(Piece {
                            uri: format!("{session}/{}.{k}.m4s", s.msn),
                            len: p.len as u64,
                            sha256,
                        });
                    }
                }
            }
        }
        pieces
    };
    let issued_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let doc = signer.render(&PieceList {
        channel: ch.name.clone(),
        rendition: rendition.to_owned(),
        issued_ms,
        pieces,
    });
    let mut r = doc.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // New pieces arrive every part: a second is as stale as a P2P viewer tolerates
    // (it asks again for a piece it cannot find), and lets edges absorb the load.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=1"),
    );
    r
}
