//! Piece lists: never panic; a body signed with the key reads back, and re-rendering
//! what was read and reading it again gives the same list (so the reader and the writer
//! agree on every byte they accept).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use starling_p2p::pieces::{hex, verify};
use starling_p2p::PieceSigner;

fuzz_target!(|data: &[u8]| {
    let seed = [7u8; 32];
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    let mut public = [0u8; 32];
    public.copy_from_slice(pair.public_key().as_ref());
    // As received: anything.
    let _ = verify(data, &public);
    // As if the origin had signed these bytes: the reader's body parser is reached.
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let mut doc = body.to_owned();
    if !doc.ends_with('\n') {
        doc.push('\n');
    }
    doc.push_str(&format!("sig {}\n", hex(pair.sign(doc.as_bytes()).as_ref())));
    if let Ok(list) = verify(doc.as_bytes(), &public) {
        let signer = PieceSigner::from_seed(&seed).unwrap();
        let again = verify(signer.render(&list).as_bytes(), &public).unwrap();
        assert_eq!(again, list);
    }
});
