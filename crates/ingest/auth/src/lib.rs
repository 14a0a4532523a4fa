//! What the ingest servers (RTMP, SRT) need from the control plane, and nothing more.

use std::{future::Future, net::SocketAddr, pin::Pin};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Permission to publish, granted for one stream key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishGrant {
    /// The channel the key belongs to.
    pub channel: String,
    /// Whether this publish may replace a live publisher of the same channel.
    pub takeover: bool,
    /// The stream key's id in the control plane, when it has one (to stop the publish
    /// when the key is revoked).
    pub key_id: Option<String>,
    /// The SRT passphrase the authorizer found with the key (a control-plane channel's
    /// own); `None`: the SRT server asks its `Passphrases` (config file, node default).
    /// RTMP ignores it.
    pub srt_passphrase: Option<SrtPassphrase>,
}

/// Permission to play a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayGrant {
    pub channel: String,
    /// As [`PublishGrant::srt_passphrase`], found with the channel.
    pub srt_passphrase: Option<SrtPassphrase>,
}

/// An SRT passphrase as a socket takes it. Authorisation hands it over with its grant so
/// that the SRT handshake hook, which must not wait, needs no lookup of its own.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtPassphrase {
    /// 10 to 79 characters (checked where it was set).
    pub passphrase: String,
    /// AES key length in bytes: 16, 24 or 32 (0: the caller's choice).
    pub key_len: u8,
}

impl std::fmt::Debug for SrtPassphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtPassphrase")
            .field("passphrase", &"<redacted>")
            .field("key_len", &self.key_len)
            .finish()
    }
}

/// Why a publish or play was refused. The display text goes to the client (who sent
/// what it echoes); the log gets [`AuthError::log_reason`], which echoes nothing the
/// client sent: a player that puts a stream key where a channel name goes
/// (`rtmp://HOST/live/STREAM_KEY` played) would otherwise write the key to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("no stream key was given")]
    MissingKey,
    #[error("malformed stream key: {0}")]
    MalformedKey(&'static str),
    #[error("unknown or revoked stream key")]
    UnknownKey,
    #[error("unknown channel {0:?}")]
    UnknownChannel(String),
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("authorisation service unavailable: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// The reason for the log: the display text without anything the client sent
    /// (`UnknownChannel` carries the requested name, which may be a key). `Forbidden` and
    /// `Unavailable` texts are made by the authorizer, which must not put input in them.
    pub fn log_reason(&self) -> std::borrow::Cow<'_, str> {
        match self {
            AuthError::UnknownChannel(_) => "unknown channel".into(),
            other => other.to_string().into(),
        }
    }
}

/// Decides who may publish and play. The control plane implements it; until then the
/// binary implements it from the config file.
pub trait Authorizer: Send + Sync + 'static {
    /// `key` is the publishing name without its query string; `app` the RTMP application.
    fn authorize_publish<'a>(
        &'a self,
        app: &'a str,
        key: &'a str,
        peer: SocketAddr,
    ) -> BoxFuture<'a, Result<PublishGrant, AuthError>>;

    /// A publish this authorizer granted has ended (the connection closed, the client
    /// unpublished, or it was stopped). Must not block.
    fn publish_ended(&self, _grant: &PublishGrant) {}

    /// `name` is the play name without its query string; `query` what followed `?`.
    fn authorize_play<'a>(
        &'a self,
        app: &'a str,
        name: &'a str,
        query: Option<&'a str>,
        peer: SocketAddr,
    ) -> BoxFuture<'a, Result<PlayGrant, AuthError>>;
}

/// Checks that a stream key could be one before anyone looks it up. Keys never become
/// paths, but refusing `../`, control characters and absurd lengths here keeps them out
/// of every later layer (and their logs).
pub fn check_key_shape(key: &str) -> Result<(), AuthError> {
    if key.is_empty() {
        return Err(AuthError::MissingKey);
    }
    if key.len() > 256 {
        return Err(AuthError::MalformedKey("longer than 256 bytes"));
    }
    if key.contains("..") || key.contains('/') || key.contains('\\') {
        return Err(AuthError::MalformedKey("contains a path separator or '..'"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::MalformedKey(
            "contains whitespace, control or non-ASCII characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_reasons_echo_nothing_the_client_sent() {
        let name = "a-stream-key-played-as-a-channel";
        let e = AuthError::UnknownChannel(name.into());
        assert!(
            e.to_string().contains(name),
            "the client is told what it asked for"
        );
        assert_eq!(e.log_reason(), "unknown channel");
        assert_eq!(
            AuthError::UnknownKey.log_reason(),
            AuthError::UnknownKey.to_string()
        );
    }

    #[test]
    fn srt_passphrases_are_redacted() {
        let p = SrtPassphrase {
            passphrase: "a-secret-passphrase".into(),
            key_len: 24,
        };
        let grant = PlayGrant {
            channel: "news".into(),
            srt_passphrase: Some(p),
        };
        let shown = format!("{grant:?}");
        assert!(!shown.contains("a-secret-passphrase"), "{shown}");
        assert!(shown.contains("key_len: 24"), "{shown}");
    }

    #[test]
    fn key_shapes() {
        assert_eq!(check_key_shape(""), Err(AuthError::MissingKey));
        assert!(matches!(
            check_key_shape("../etc/passwd"),
            Err(AuthError::MalformedKey(_))
        ));
        assert!(matches!(
            check_key_shape("a..b"),
            Err(AuthError::MalformedKey(_))
        ));
        assert!(matches!(
            check_key_shape("a\0b"),
            Err(AuthError::MalformedKey(_))
        ));
        assert!(matches!(
            check_key_shape(&"k".repeat(300)),
            Err(AuthError::MalformedKey(_))
        ));
        assert!(check_key_shape("sk_live_3f9a-XY_z").is_ok());
    }
}
