//! Signed piece lists: what lets a viewer trust bytes that came from another viewer.
//!
//! The origin lists the SHA-256 of every segment and part a rendition's playlist names
//! and signs the list with the cluster's Ed25519 key; peers fetch it from the edge (a
//! small text document beside the playlist, `pieces.txt`) and check every piece a peer
//! sent against it before the piece reaches the decoder or another peer. A peer can
//! waste a viewer's bandwidth, never change what they see.
//!
//! The document is text, one field per line, so that the watch page reads it with a
//! `split` and WebCrypto (Ed25519 and SHA-256 are both in the browser):
//!
//! ```text
//! STARLING-PIECES 1
//! channel demo
//! rendition video
//! issued 1733550000000
//! key 3f2a…(16 hex: the key's id)
//! piece 1733549990123456/12.m4s 1048576 9f86d0…(64 hex)
//! piece 1733549990123456/13.0.m4s 65536 2c26b4…
//! sig 5a1b…(128 hex: Ed25519 over every byte above, newline included)
//! ```
//!
//! A piece's URI is relative to the rendition's directory, as in the media playlist.
//! Everything read here is bounded before it is kept: the document's size, the number of
//! pieces, each URI's length and alphabet.

use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
pub use starling_sync::hex::{decode as unhex, encode as hex};

/// Largest document [`verify`] reads (a 2-hour DVR window of 2 s segments with their
/// parts stays far below it: only the live window's pieces are listed).
pub const MAX_DOCUMENT: usize = 512 * 1024;
/// Most pieces one document lists.
pub const MAX_PIECES: usize = 4096;
/// Longest piece URI.
pub const MAX_URI: usize = 128;
const MAGIC: &str = "STARLING-PIECES 1";

/// One segment or part and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Relative to the rendition's directory: `SESSION/MSN.m4s`, `SESSION/MSN.PART.m4s`.
    pub uri: String,
    pub len: u64,
    pub sha256: [u8; 32],
}

/// What a piece list says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceList {
    pub channel: String,
    pub rendition: String,
    /// When the origin made it (unix ms).
    pub issued_ms: u64,
    pub pieces: Vec<Piece>,
}

impl PieceList {
    /// The digest listed for `uri`, if any.
    pub fn digest(&self, uri: &str) -> Option<&Piece> {
        self.pieces.iter().find(|p| p.uri == uri)
    }
}

/// Why a piece list or a piece was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PieceError {
    #[error("piece list of {0} bytes is over the limit of {MAX_DOCUMENT}")]
    TooLarge(usize),
    #[error("piece list: {0}")]
    Malformed(&'static str),
    #[error("piece list signed with key {found}, expected {expected}")]
    WrongKey { found: String, expected: String },
    #[error("piece list: the signature does not verify")]
    BadSignature,
    #[error(
        "piece {uri}: {len} bytes with SHA-256 {got}, the list says {want_len} bytes with {want}"
    )]
    Mismatch {
        uri: String,
        len: u64,
        got: String,
        want_len: u64,
        want: String,
    },
    #[error("piece {0} is not in the list")]
    Unlisted(String),
    #[error("signing key: {0}")]
    Key(&'static str),
}

/// The SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A key's id: the first 8 bytes of the SHA-256 of its public key, in hex. Lets a
/// verifier say which key signed a list it cannot check (after a key rotation).
pub fn key_id(public_key: &[u8; 32]) -> String {
    hex(&sha256(public_key)[..8])
}

/// Signs piece lists (the origin's side).
pub struct PieceSigner {
    pair: Ed25519KeyPair,
    public: [u8; 32],
    id: String,
}

impl std::fmt::Debug for PieceSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PieceSigner({}, <key redacted>)", self.id)
    }
}

impl PieceSigner {
    /// The key pair of a 32-byte Ed25519 seed (kept in the control plane's settings, so
    /// every node of a cluster signs with the same key).
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, PieceError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| PieceError::Key("not an Ed25519 seed"))?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(Self {
            id: key_id(&public),
            pair,
            public,
        })
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The signed document of `list`. URIs outside the accepted alphabet are skipped
    /// (the origin never makes one; a verifier would refuse the whole list).
    pub fn render(&self, list: &PieceList) -> String {
        let mut doc = String::with_capacity(128 + list.pieces.len() * 120);
        doc.push_str(MAGIC);
        doc.push('\n');
        push_field(&mut doc, "channel", &list.channel);
        push_field(&mut doc, "rendition", &list.rendition);
        push_field(&mut doc, "issued", &list.issued_ms.to_string());
        push_field(&mut doc, "key", &self.id);
        for p in list
            .pieces
            .iter()
            .filter(|p| valid_uri(&p.uri))
            .take(MAX_PIECES)
        {
            doc.push_str("piece ");
            doc.push_str(&p.uri);
            doc.push(' ');
            doc.push_str(&p.len.to_string());
            doc.push(' ');
            doc.push_str(&hex(&p.sha256));
            doc.push('\n');
        }
        let sig = self.pair.sign(doc.as_bytes());
        push_field(&mut doc, "sig", &hex(sig.as_ref()));
        doc
    }
}

fn push_field(doc: &mut String, name: &str, value: &str) {
    doc.push_str(name);
    doc.push(' ');
    doc.push_str(value);
    doc.push('\n');
}

/// Checks `doc`'s signature with `public_key`, then reads it.
pub fn verify(doc: &[u8], public_key: &[u8; 32]) -> Result<PieceList, PieceError> {
    if doc.len() > MAX_DOCUMENT {
        return Err(PieceError::TooLarge(doc.len()));
    }
    let text = std::str::from_utf8(doc).map_err(|_| PieceError::Malformed("not UTF-8"))?;
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or(PieceError::Malformed("no signature line"))?;
    let (body, sig_line) = text.split_at(body_end);
    let sig = sig_line
        .trim_end_matches('\n')
        .strip_prefix("sig ")
        .ok_or(PieceError::Malformed("the last line is not `sig`"))?;
    let sig = unhex::<64>(sig).ok_or(PieceError::Malformed("signature is not 128 hex digits"))?;
    // The key line is read before the signature is checked only to name the key in the
    // error; nothing else of an unverified body is trusted.
    let expected = key_id(public_key);
    if let Some(found) = body
        .lines()
        .find_map(|l| l.strip_prefix("key "))
        .filter(|k| *k != expected)
    {
        return Err(PieceError::WrongKey {
            found: found.chars().take(32).collect(),
            expected,
        });
    }
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(body.as_bytes(), &sig)
        .map_err(|_| PieceError::BadSignature)?;
    parse_body(body)
}

fn parse_body(body: &str) -> Result<PieceList, PieceError> {
    let mut lines = body.lines();
    if lines.next() != Some(MAGIC) {
        return Err(PieceError::Malformed("not a STARLING-PIECES 1 document"));
    }
    let mut field = |name: &'static str| {
        lines
            .next()
            .and_then(|l| l.strip_prefix(name))
            .and_then(|l| l.strip_prefix(' '))
            .ok_or(PieceError::Malformed(name))
    };
    let channel = field("channel")?.to_owned();
    let rendition = field("rendition")?.to_owned();
    let issued_ms = field("issued")?
        .parse()
        .map_err(|_| PieceError::Malformed("issued is not a number"))?;
    field("key")?;
    let mut pieces = Vec::new();
    for line in lines {
        if pieces.len() == MAX_PIECES {
            return Err(PieceError::Malformed("too many pieces"));
        }
        let mut f = line
            .strip_prefix("piece ")
            .ok_or(PieceError::Malformed("a line that is not a piece"))?
            .split(' ');
        let (Some(uri), Some(len), Some(digest), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(PieceError::Malformed(
                "a piece line without URI, length and digest",
            ));
        };
        if !valid_uri(uri) {
            return Err(PieceError::Malformed("a piece URI outside the alphabet"));
        }
        pieces.push(Piece {
            uri: uri.to_owned(),
            len: len
                .parse()
                .map_err(|_| PieceError::Malformed("a piece length is not a number"))?,
            sha256: unhex::<32>(digest)
                .ok_or(PieceError::Malformed("a digest is not 64 hex digits"))?,
        });
    }
    Ok(PieceList {
        channel,
        rendition,
        issued_ms,
        pieces,
    })
}

/// Checks one piece a peer sent against the list: only a piece whose length and digest
/// match may be played or forwarded.
pub fn check_piece(list: &PieceList, uri: &str, data: &[u8]) -> Result<(), PieceError> {
    let want = list
        .digest(uri)
        .ok_or_else(|| PieceError::Unlisted(uri.chars().take(MAX_URI).collect()))?;
    let got = sha256(data);
    if want.len != data.len() as u64 || want.sha256 != got {
        return Err(PieceError::Mismatch {
            uri: uri.to_owned(),
            len: data.len() as u64,
            got: hex(&got),
            want_len: want.len,
            want: hex(&want.sha256),
        });
    }
    Ok(())
}

/// A piece URI: `[A-Za-z0-9._/-]`, at most [`MAX_URI`] bytes, no empty or dot segment.
pub fn valid_uri(uri: &str) -> bool {
    !uri.is_empty()
        && uri.len() <= MAX_URI
        && uri
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
        && uri
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> PieceList {
        PieceList {
            channel: "demo".into(),
            rendition: "video".into(),
            issued_ms: 1_733_550_000_000,
            pieces: vec![
                Piece {
                    uri: "1733549990123456/12.m4s".into(),
                    len: 5,
                    sha256: sha256(b"hello"),
                },
                Piece {
                    uri: "1733549990123456/13.0.m4s".into(),
                    len: 3,
                    sha256: sha256(b"abc"),
                },
            ],
        }
    }

    #[test]
    fn signed_lists_round_trip_and_check_pieces() {
        let s = PieceSigner::from_seed(&[7; 32]).unwrap();
        let doc = s.render(&list());
        assert!(
            doc.starts_with("STARLING-PIECES 1\nchannel demo\n"),
            "{doc}"
        );
        let read = verify(doc.as_bytes(), &s.public_key()).unwrap();
        assert_eq!(read, list());
        check_piece(&read, "1733549990123456/12.m4s", b"hello").unwrap();
        // The SHA-256 of "abc" is the FIPS 180-2 example.
        assert!(doc.contains("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
        assert!(matches!(
            check_piece(&read, "1733549990123456/12.m4s", b"hellp"),
            Err(PieceError::Mismatch { .. })
        ));
        assert!(matches!(
            check_piece(&read, "1733549990123456/12.m4s", b"hello!"),
            Err(PieceError::Mismatch { .. })
        ));
        assert!(matches!(
            check_piece(&read, "1/1.m4s", b"x"),
            Err(PieceError::Unlisted(_))
        ));
    }

    #[test]
    fn tampering_and_other_keys_are_refused() {
        let s = PieceSigner::from_seed(&[7; 32]).unwrap();
        let doc = s.render(&list());
        // A peer swaps one digest for the digest of its own bytes.
        let forged = doc.replace(&hex(&sha256(b"hello")), &hex(&sha256(b"evil!")));
        assert_eq!(
            verify(forged.as_bytes(), &s.public_key()),
            Err(PieceError::BadSignature)
        );
        // A whole list signed by another key.
        let other = PieceSigner::from_seed(&[8; 32]).unwrap();
        assert!(matches!(
            verify(other.render(&list()).as_bytes(), &s.public_key()),
            Err(PieceError::WrongKey { .. })
        ));
        // Another key that claims our key's id.
        let claimed = other.render(&list()).replace(other.key_id(), s.key_id());
        assert_eq!(
            verify(claimed.as_bytes(), &s.public_key()),
            Err(PieceError::BadSignature)
        );
        assert!(matches!(
            verify(&vec![b'a'; MAX_DOCUMENT + 1], &s.public_key()),
            Err(PieceError::TooLarge(_))
        ));
        for bad in ["", "\n", "sig 00\n", "STARLING-PIECES 1\nsig zz\n"] {
            assert!(
                matches!(
                    verify(bad.as_bytes(), &s.public_key()),
                    Err(PieceError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn uris_stay_in_their_directory() {
        for ok in ["1/2.m4s", "17335/12.3.m4s", "a-b_c/d"] {
            assert!(valid_uri(ok), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "a//b",
            "/a",
            "a/",
            "a b",
            "a\nb",
            "./a",
            &"a".repeat(129),
        ] {
            assert!(!valid_uri(bad), "{bad:?}");
        }
    }
}
