//! The tracker's signalling messages: JSON text frames over the WebSocket at
//! `/p2p/{channel}`, one object per frame, tagged by `t`.
//!
//! A viewer joins one swarm (its channel and rendition), gets a list of peers picked for
//! it, and exchanges WebRTC offers, answers and ICE candidates with them through the
//! tracker (`signal`: the tracker stamps the sender, so no peer can speak for another).
//! The newcomer makes the offers, so nobody is told of every arrival: a join costs one
//! answer, however large the swarm.

use serde::{Deserialize, Serialize};

/// Longest frame the tracker reads (an SDP offer with a few candidates is 2-5 KiB).
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Longest rendition or region name.
pub const MAX_NAME: usize = 32;
/// Longest peer id.
pub const MAX_PEER_ID: usize = 32;

/// What a viewer sends.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Enter the swarm of `rendition` (first message; once per connection).
    Join {
        rendition: String,
        /// The Usher's region label, if the viewer has one.
        #[serde(default)]
        region: Option<String>,
        /// What the viewer offers to upload, kbit/s (0: leech only).
        #[serde(default)]
        upload_kbps: u32,
        /// The media sequence number the player is at.
        #[serde(default)]
        position: u64,
    },
    /// Relay `data` (an SDP or ICE candidate, opaque here) to peer `to`.
    Signal { to: String, data: serde_json::Value },
    /// The player moved (peers near its position are picked for it).
    Position { position: u64 },
    /// More peers, please (some did not connect).
    Peers,
    /// A peer sent a piece that did not verify: the tracker counts reports against it.
    Report { peer: String, reason: String },
}

/// What the tracker sends.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The join was accepted: the viewer's id, its first peers, and the key piece lists
    /// are signed with (hex Ed25519 public key).
    Welcome {
        id: String,
        peers: Vec<PeerInfo>,
        key: String,
        /// STUN/TURN servers for the peers' connections (the node's WebRTC ones).
        ice: Vec<IceServer>,
    },
    /// More peers (answer to `peers`).
    Peers { peers: Vec<PeerInfo> },
    /// A message relayed from peer `from`.
    Signal {
        from: String,
        data: serde_json::Value,
    },
    /// Peer `id` was banned from the swarm (reported for bad pieces): drop it.
    Banned { id: String },
    /// A request was refused; `fatal` ones close the connection after this frame.
    Error {
        code: ErrorCode,
        message: String,
        fatal: bool,
    },
}

/// A peer as the tracker introduces it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PeerInfo {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub position: u64,
}

/// A STUN or TURN server, as `RTCPeerConnection` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct IceServer {
    pub urls: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Why the tracker refused something, for programs; the message says it for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Malformed,
    TooLarge,
    RateLimited,
    NotJoined,
    AlreadyJoined,
    SwarmFull,
    UnknownPeer,
    Banned,
}

impl ErrorCode {
    /// Its name on the wire (and in metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::RateLimited => "rate_limited",
            Self::NotJoined => "not_joined",
            Self::AlreadyJoined => "already_joined",
            Self::SwarmFull => "swarm_full",
            Self::UnknownPeer => "unknown_peer",
            Self::Banned => "banned",
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    #[error("message of {0} bytes is over the limit of {MAX_MESSAGE}")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("{field} must be 1-{max} characters of [A-Za-z0-9_-]")]
    BadName { field: &'static str, max: usize },
}

/// Reads one client frame, bounded and validated.
pub fn parse_client(text: &str) -> Result<ClientMsg, SignalError> {
    if text.len() > MAX_MESSAGE {
        return Err(SignalError::TooLarge(text.len()));
    }
    let msg: ClientMsg = serde_json::from_str(text).map_err(|e| {
        // serde's message names the field or the position, never echoes the input.
        SignalError::Malformed(e.to_string())
    })?;
    match &msg {
        ClientMsg::Join {
            rendition, region, ..
        } => {
            name("rendition", rendition, MAX_NAME)?;
            if let Some(r) = region {
                name("region", r, MAX_NAME)?;
            }
        }
        ClientMsg::Signal { to, .. } => name("to", to, MAX_PEER_ID)?,
        ClientMsg::Report { peer, reason } => {
            name("peer", peer, MAX_PEER_ID)?;
            if reason.len() > 200 {
                return Err(SignalError::Malformed("reason over 200 bytes".into()));
            }
        }
        ClientMsg::Position { .. } | ClientMsg::Peers => {}
    }
    Ok(msg)
}

fn name(field: &'static str, s: &str, max: usize) -> Result<(), SignalError> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SignalError::BadName { field, max })
    }
}

impl ServerMsg {
    /// The frame's text.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail (string keys, no maps of other keys).
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"t":"error","code":"malformed","message":"internal","fatal":true}"#.to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_message() {
        assert_eq!(
            parse_client(
                r#"{"t":"join","rendition":"video","region":"eu-west","upload_kbps":4000,"position":12}"#
            ),
            Ok(ClientMsg::Join {
                rendition: "video".into(),
                region: Some("eu-west".into()),
                upload_kbps: 4000,
                position: 12
            })
        );
        assert_eq!(
            parse_client(r#"{"t":"join","rendition":"720p"}"#),
            Ok(ClientMsg::Join {
                rendition: "720p".into(),
                region: None,
                upload_kbps: 0,
                position: 0
            })
        );
        assert!(matches!(
            parse_client(r#"{"t":"signal","to":"ab12","data":{"sdp":"v=0"}}"#),
            Ok(ClientMsg::Signal { .. })
        ));
        assert_eq!(parse_client(r#"{"t":"peers"}"#), Ok(ClientMsg::Peers));
        assert_eq!(
            parse_client(r#"{"t":"position","position":7}"#),
            Ok(ClientMsg::Position { position: 7 })
        );
    }

    #[test]
    fn refuses_bad_frames_with_the_cause() {
        let e = |s: &str| parse_client(s).unwrap_err().to_string();
        assert!(e("{").contains("malformed"), "{}", e("{"));
        assert!(
            e(r#"{"t":"fly"}"#).contains("unknown variant"),
            "{}",
            e(r#"{"t":"fly"}"#)
        );
        assert!(e(r#"{"t":"join"}"#).contains("rendition"));
        assert!(e(r#"{"t":"join","rendition":"v","evil":1}"#).contains("evil"));
        assert!(e(r#"{"t":"join","rendition":"../x"}"#).contains("rendition"));
        assert!(e(r#"{"t":"join","rendition":"v","position":-1}"#).contains("invalid value"));
        assert!(e(r#"{"t":"signal","to":"","data":1}"#).contains("to must be"));
        let big = format!(
            r#"{{"t":"signal","to":"a","data":"{}"}}"#,
            "x".repeat(MAX_MESSAGE)
        );
        assert_eq!(parse_client(&big), Err(SignalError::TooLarge(big.len())));
        // Nesting past serde_json's recursion limit is an error, not a stack overflow.
        let deep = format!(
            r#"{{"t":"signal","to":"a","data":{}1{}}}"#,
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert!(parse_client(&deep).is_err());
    }

    #[test]
    fn server_messages_are_tagged() {
        let m = ServerMsg::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            fatal: false,
        };
        assert_eq!(
            m.to_json(),
            r#"{"t":"error","code":"rate_limited","message":"slow down","fatal":false}"#
        );
    }
}
