//! Publish/play authorisation from the config file's `[[channels]]`, until the control
//! plane takes this over behind the same [`Authorizer`] interface.

use std::net::SocketAddr;

use starling_rtmp_server::{AuthError, Authorizer, BoxFuture, PlayGrant, PublishGrant};

use crate::config::ChannelConfig;

/// The RTMP application every URL uses: `rtmp://host/live/...`.
pub const RTMP_APP: &str = "live";

#[derive(Debug)]
pub struct ConfigAuthorizer {
    channels: Vec<ChannelConfig>,
}

impl ConfigAuthorizer {
    pub fn new(channels: Vec<ChannelConfig>) -> Self {
        Self { channels }
    }

    fn publish(&self, app: &str, key: &str) -> Result<PublishGrant, AuthError> {
        check_app(app)?;
        // Compare against every key in constant time each, so response timing tells an
        // attacker nothing about how close a guess was.
        let mut found = None;
        for ch in &self.channels {
            if constant_time_eq(ch.stream_key.as_bytes(), key.as_bytes()) {
                found = Some(ch);
            }
        }
        let ch = found.ok_or(AuthError::UnknownKey)?;
        Ok(PublishGrant {
            channel: ch.name.clone(),
            takeover: ch.takeover,
        })
    }

    fn play(&self, app: &str, name: &str) -> Result<PlayGrant, AuthError> {
        check_app(app)?;
        self.channels
            .iter()
            .find(|c| c.name == name)
            .map(|c| PlayGrant {
                channel: c.name.clone(),
            })
            .ok_or_else(|| AuthError::UnknownChannel(name.chars().take(64).collect()))
    }
}

fn check_app(app: &str) -> Result<(), AuthError> {
    if app == RTMP_APP {
        Ok(())
    } else {
        Err(AuthError::Forbidden(format!(
            "unknown application {:?}; use rtmp://HOST/{RTMP_APP}/...",
            app.chars().take(64).collect::<String>()
        )))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authorizer for ConfigAuthorizer {
    fn authorize_publish<'a>(
        &'a self,
        app: &'a str,
        key: &'a str,
        _peer: SocketAddr,
    ) -> BoxFuture<'a, Result<PublishGrant, AuthError>> {
        Box::pin(async move { self.publish(app, key) })
    }

    fn authorize_play<'a>(
        &'a self,
        app: &'a str,
        name: &'a str,
        _query: Option<&'a str>,
        _peer: SocketAddr,
    ) -> BoxFuture<'a, Result<PlayGrant, AuthError>> {
        Box::pin(async move { self.play(app, name) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> ConfigAuthorizer {
        ConfigAuthorizer::new(vec![
            ChannelConfig {
                name: "news".into(),
                stream_key: "key-news-1".into(),
                takeover: false,
            },
            ChannelConfig {
                name: "sport".into(),
                stream_key: "key-sport-1".into(),
                takeover: true,
            },
        ])
    }

    #[test]
    fn keys_map_to_their_channel() {
        let a = auth();
        assert_eq!(a.publish("live", "key-news-1").unwrap().channel, "news");
        let g = a.publish("live", "key-sport-1").unwrap();
        assert_eq!((g.channel.as_str(), g.takeover), ("sport", true));
        assert_eq!(a.publish("live", "key-news-2"), Err(AuthError::UnknownKey));
        // A channel name is not a key.
        assert_eq!(a.publish("live", "news"), Err(AuthError::UnknownKey));
        assert!(matches!(
            a.publish("other", "key-news-1"),
            Err(AuthError::Forbidden(_))
        ));
    }

    #[test]
    fn play_needs_a_known_channel() {
        let a = auth();
        assert_eq!(a.play("live", "news").unwrap().channel, "news");
        assert!(matches!(
            a.play("live", "nope"),
            Err(AuthError::UnknownChannel(_))
        ));
        // Playing by key would leak which keys exist.
        assert!(a.play("live", "key-news-1").is_err());
    }
}
