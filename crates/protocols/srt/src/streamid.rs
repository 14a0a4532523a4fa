//! The SRT stream id: what a caller asks for, parsed. Pure functions, no I/O.
//!
//! Two forms are accepted:
//!
//! - the access-control syntax of the SRT documentation (`AccessControl.md`):
//!   `#!::` then comma-separated `key=value` pairs, e.g.
//!   `#!::r=news,m=publish,s=STREAM_KEY` or `#!::r=news,m=request,s=PLAYBACK_TOKEN`;
//!   keys `r` (resource: the channel), `m` (mode: `publish` or `request`), `s` (session:
//!   the stream key to publish, the playback token to play a private channel), `u`
//!   (user), `h` (host) and `t` (type, `stream` only). Other keys are ignored, as that
//!   document allows; the nested `#!:{...}` form is refused.
//! - a bare stream key (anything not starting with `#!:`), which publishes, as
//!   encoders with a single "stream key" box send it.
//!
//! The parser bounds everything: libsrt caps a stream id at 512 bytes and so does this.

/// Longest stream id libsrt carries (`SRTO_STREAMID`).
pub const MAX_STREAM_ID_LEN: usize = 512;

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Send a stream to the server (`m=publish`, the default for a bare key).
    Publish,
    /// Receive a channel from the server (`m=request`, the default of the syntax).
    Request,
}

/// A parsed stream id. Secrets are kept out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamId {
    pub mode: Mode,
    /// `r=`: the channel.
    pub resource: Option<String>,
    /// `s=` or the bare form: the stream key (publish) or playback token (request).
    pub secret: Option<String>,
    /// `u=`: a user name, informative only.
    pub user: Option<String>,
    /// `h=`: the host the caller addressed, informative only.
    pub host: Option<String>,
    /// `pipeline=backup`: a publish that stands by as the channel's backup encoder
    /// (`pipeline=primary`, or none, is the usual publish).
    pub backup: bool,
    /// `clock=epoch`: the publish's PTS carry wall-clock time since the Unix epoch
    /// (modulo 2^33), so its segments are numbered on the epoch grid and agree with
    /// another pipeline's (`clock=relative`, or none: an arbitrary start).
    pub epoch_clock: bool,
}

impl std::fmt::Debug for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamId")
            .field("mode", &self.mode)
            .field("resource", &self.resource)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("user", &self.user)
            .field("host", &self.host)
            .field("backup", &self.backup)
            .field("epoch_clock", &self.epoch_clock)
            .finish()
    }
}

/// Why a stream id was refused. The texts name the cause and echo nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamIdError {
    #[error(
        "no stream id: set streamid to #!::r=CHANNEL,m=publish,s=STREAM_KEY or the stream key"
    )]
    Empty,
    #[error("stream id longer than {MAX_STREAM_ID_LEN} bytes")]
    TooLong,
    #[error("stream id contains control or non-ASCII characters")]
    BadCharacters,
    #[error("the nested #!:{{...}} stream id syntax is not supported; use #!::key=value,...")]
    Nested,
    #[error("stream id item {0} is not key=value")]
    NotKeyValue(usize),
    #[error("stream id key {0:?} appears twice")]
    DuplicateKey(String),
    #[error("stream id key {0:?} has an empty value")]
    EmptyValue(String),
    #[error("stream id mode m={0:?} is not supported (publish or request)")]
    UnsupportedMode(String),
    #[error("stream id type t={0:?} is not supported (stream)")]
    UnsupportedType(String),
    #[error("m=request needs r=CHANNEL")]
    MissingResource,
    #[error("m=publish needs s=STREAM_KEY")]
    MissingKey,
    #[error("stream id clock={0:?} is not supported (epoch or relative)")]
    UnsupportedClock(String),
    #[error("stream id pipeline={0:?} is not supported (primary or backup)")]
    UnsupportedPipeline(String),
}

impl StreamIdError {
    /// The SRT rejection code (`SRT_REJX_*`, `access_control.h`) to send the caller.
    pub fn reject_code(&self) -> i32 {
        match self {
            StreamIdError::UnsupportedMode(_) => crate::reject::BAD_MODE,
            StreamIdError::UnsupportedType(_) => crate::reject::NOTSUP_MEDIA,
            StreamIdError::MissingKey => crate::reject::UNAUTHORIZED,
            _ => crate::reject::BAD_REQUEST,
        }
    }
}

/// Parses a stream id as a caller sent it.
pub fn parse(raw: &str) -> Result<StreamId, StreamIdError> {
    if raw.is_empty() {
        return Err(StreamIdError::Empty);
    }
    if raw.len() > MAX_STREAM_ID_LEN {
        return Err(StreamIdError::TooLong);
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(StreamIdError::BadCharacters);
    }
    let Some(rest) = raw.strip_prefix("#!:") else {
        // The bare form: the whole id is the stream key.
        return Ok(StreamId {
            mode: Mode::Publish,
            resource: None,
            secret: Some(raw.to_owned()),
            user: None,
            host: None,
            backup: false,
            epoch_clock: false,
        });
    };
    let Some(body) = rest.strip_prefix(':') else {
        return Err(StreamIdError::Nested);
    };
    let mut id = StreamId {
        mode: Mode::Request,
        resource: None,
        secret: None,
        user: None,
        host: None,
        backup: false,
        epoch_clock: false,
    };
    let mut mode = None::<&str>;
    let mut kind = None::<&str>;
    let mut seen: Vec<&str> = Vec::new();
    for (i, item) in body.split(',').enumerate() {
        let Some((key, value)) = item.split_once('=') else {
            return Err(StreamIdError::NotKeyValue(i + 1));
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(StreamIdError::NotKeyValue(i + 1));
        }
        if seen.contains(&key) {
            return Err(StreamIdError::DuplicateKey(truncated(key)));
        }
        seen.push(key);
        let value = value.trim();
        let known = matches!(
            key,
            "r" | "s" | "m" | "t" | "u" | "h" | "pipeline" | "clock"
        );
        if known && value.is_empty() {
            return Err(StreamIdError::EmptyValue(key.to_owned()));
        }
        match key {
            "r" => id.resource = Some(value.to_owned()),
            "s" => id.secret = Some(value.to_owned()),
            "u" => id.user = Some(value.to_owned()),
            "h" => id.host = Some(value.to_owned()),
            "m" => mode = Some(value),
            "t" => kind = Some(value),
            "pipeline" => {
                id.backup = match value {
                    "primary" => false,
                    "backup" => true,
                    other => return Err(StreamIdError::UnsupportedPipeline(truncated(other))),
                }
            }
            "clock" => {
                id.epoch_clock = match value {
                    "relative" => false,
                    "epoch" => true,
                    other => return Err(StreamIdError::UnsupportedClock(truncated(other))),
                }
            }
            _ => {}
        }
    }
    if let Some(t) = kind {
        if t != "stream" {
            return Err(StreamIdError::UnsupportedType(truncated(t)));
        }
    }
    id.mode = match mode {
        None | Some("request") => Mode::Request,
        Some("publish") => Mode::Publish,
        Some(other) => return Err(StreamIdError::UnsupportedMode(truncated(other))),
    };
    match id.mode {
        Mode::Publish if id.secret.is_none() => Err(StreamIdError::MissingKey),
        Mode::Request if id.resource.is_none() => Err(StreamIdError::MissingResource),
        _ => Ok(id),
    }
}

/// Echoed values are cut short so that an error line stays one line.
fn truncated(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_control_syntax() {
        let id = parse("#!::r=news,m=publish,s=sk_live_123").unwrap();
        assert_eq!(id.mode, Mode::Publish);
        assert_eq!(id.resource.as_deref(), Some("news"));
        assert_eq!(id.secret.as_deref(), Some("sk_live_123"));

        let id = parse("#!::r=news,m=request").unwrap();
        assert_eq!((id.mode, id.secret), (Mode::Request, None));
        // m defaults to request, as the SRT document says.
        assert_eq!(parse("#!::r=news").unwrap().mode, Mode::Request);
        let id = parse("#!::u=alice,r=news,h=live.example.org,t=stream,m=request,s=tok").unwrap();
        assert_eq!(id.user.as_deref(), Some("alice"));
        assert_eq!(id.host.as_deref(), Some("live.example.org"));
        assert_eq!(id.secret.as_deref(), Some("tok"));
        // Unknown keys are ignored.
        assert!(parse("#!::r=news,x_vendor=1,m=request").is_ok());
        // An epoch-stamped source says so; anything but epoch or relative is refused.
        assert!(
            parse("#!::s=key12345,m=publish,clock=epoch")
                .unwrap()
                .epoch_clock
        );
        assert!(!parse("#!::s=key12345,m=publish").unwrap().epoch_clock);
        assert_eq!(
            parse("#!::s=key12345,m=publish,clock=gps").unwrap_err(),
            StreamIdError::UnsupportedClock("gps".into())
        );
        // A backup encoder says so; anything but primary or backup is refused.
        assert!(
            parse("#!::s=key12345,m=publish,pipeline=backup")
                .unwrap()
                .backup
        );
        assert!(
            !parse("#!::s=key12345,m=publish,pipeline=primary")
                .unwrap()
                .backup
        );
        assert!(!parse("#!::s=key12345,m=publish").unwrap().backup);
        assert_eq!(
            parse("#!::s=key12345,m=publish,pipeline=b").unwrap_err(),
            StreamIdError::UnsupportedPipeline("b".into())
        );
    }

    #[test]
    fn bare_key_publishes() {
        let id = parse("sk_live_123").unwrap();
        assert_eq!(id.mode, Mode::Publish);
        assert_eq!(id.secret.as_deref(), Some("sk_live_123"));
        assert_eq!(id.resource, None);
    }

    #[test]
    fn refusals_name_the_cause() {
        assert_eq!(parse(""), Err(StreamIdError::Empty));
        assert_eq!(parse(&"k".repeat(513)), Err(StreamIdError::TooLong));
        assert_eq!(parse("ab\u{1}c"), Err(StreamIdError::BadCharacters));
        assert_eq!(parse("#!:{r=a}"), Err(StreamIdError::Nested));
        assert_eq!(parse("#!::r=a,oops"), Err(StreamIdError::NotKeyValue(2)));
        assert_eq!(
            parse("#!::r=a,r=b"),
            Err(StreamIdError::DuplicateKey("r".into()))
        );
        assert_eq!(
            parse("#!::r=,m=request"),
            Err(StreamIdError::EmptyValue("r".into()))
        );
        assert_eq!(
            parse("#!::r=a,m=bidirectional"),
            Err(StreamIdError::UnsupportedMode("bidirectional".into()))
        );
        assert_eq!(
            parse("#!::r=a,t=file"),
            Err(StreamIdError::UnsupportedType("file".into()))
        );
        assert_eq!(parse("#!::r=a,m=publish"), Err(StreamIdError::MissingKey));
        assert_eq!(parse("#!::m=request"), Err(StreamIdError::MissingResource));
        assert_eq!(parse("#!::m=publish").unwrap_err().reject_code(), 1401);
        assert_eq!(parse("#!::r=a,m=x").unwrap_err().reject_code(), 1405);
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let id = parse("#!::r=news,m=publish,s=very-secret").unwrap();
        assert!(!format!("{id:?}").contains("very-secret"));
        let e = parse("#!::s=very-secret,s=very-secret,m=publish").unwrap_err();
        assert!(!e.to_string().contains("very-secret"));
    }
}
