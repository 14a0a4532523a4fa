//! Which session a datagram on the shared UDP port belongs to.
//!
//! Every session's ICE runs over one port, so the driver needs the session of each
//! datagram before any `Rtc` sees it. The first datagram of a session from a new remote
//! address is always an ICE connectivity check (a STUN binding request, RFC 8445 §7.2):
//! its USERNAME is `LOCAL_UFRAG:REMOTE_UFRAG`, and the local ufrag is the session's own
//! (the server chose it, [`crate::Peer::ufrag`]). Once a check got through, the driver
//! knows the remote address and routes everything from it (DTLS, SRTP) by address.
//! Anything else from an unknown address is dropped without parsing further.

use str0m::ice::StunMessage;

/// What a datagram is, by its first byte (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stun,
    Dtls,
    Rtp,
    Other,
}

/// Classifies a datagram by its first byte.
pub fn kind(datagram: &[u8]) -> Kind {
    match datagram.first() {
        Some(0..=3) => Kind::Stun,
        Some(20..=63) => Kind::Dtls,
        Some(128..=191) => Kind::Rtp,
        _ => Kind::Other,
    }
}

/// The local ufrag a STUN binding request is addressed to, if the datagram is one.
/// Longest ufrag taken: 256 bytes (RFC 8839 §5.4 allows 4 to 256 characters).
pub fn ice_ufrag(datagram: &[u8]) -> Option<&str> {
    if kind(datagram) != Kind::Stun {
        return None;
    }
    let msg = StunMessage::parse(datagram).ok()?;
    if !msg.is_binding_request() {
        return None;
    }
    let local = msg.username()?.split(':').next()?;
    (!local.is_empty() && local.len() <= 256).then_some(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binding request as an ICE agent sends it: USERNAME, PRIORITY and a
    /// MESSAGE-INTEGRITY (its value is not checked here; the session checks it).
    fn binding_request(username: &[u8]) -> Vec<u8> {
        let pad = (4 - username.len() % 4) % 4;
        let mut attrs = vec![0x00, 0x06];
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username);
        attrs.extend(std::iter::repeat_n(0, pad));
        attrs.extend_from_slice(&[0x00, 0x24, 0, 4, 0x6e, 0, 0x1e, 0xff]);
        attrs.extend_from_slice(&[0x00, 0x08, 0, 20]);
        attrs.extend_from_slice(&[0xab; 20]);
        let mut v = vec![0x00, 0x01];
        v.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        v.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        v.extend_from_slice(&[7; 12]);
        v.extend_from_slice(&attrs);
        v
    }

    #[test]
    fn the_local_ufrag_of_a_binding_request() {
        assert_eq!(ice_ufrag(&binding_request(b"abcd:wxyz")), Some("abcd"));
        assert_eq!(ice_ufrag(&binding_request(b":wxyz")), None);
    }

    #[test]
    fn garbage_is_no_session() {
        assert_eq!(ice_ufrag(&[]), None);
        assert_eq!(ice_ufrag(&[0, 1, 0]), None);
        assert_eq!(ice_ufrag(&[0x16, 0xfe, 0xfd]), None);
        assert_eq!(ice_ufrag(&[0x80; 40]), None);
        let mut truncated = binding_request(b"abcd:wxyz");
        truncated.truncate(24);
        assert_eq!(ice_ufrag(&truncated), None);
        assert_eq!(kind(&[0x16]), Kind::Dtls);
        assert_eq!(kind(&[0x90]), Kind::Rtp);
        assert_eq!(kind(&[0xff]), Kind::Other);
    }
}
