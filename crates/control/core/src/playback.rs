//! Signed playback tokens for private channels.
//!
//! Format: `base64url(payload) "." base64url(HMAC-SHA256(secret, base64url(payload)))`,
//! payload = `"1\n{channel}\n{expires_at_ms}\n{viewer_id}"` (viewer id may be empty).
//! URL-safe, no padding, about 100 characters. The secret lives in the `settings` table
//! so every node verifies every other node's tokens.
//!
//! `sign` and `verify` are pure and synchronous (no I/O, no clock): the origin calls
//! `verify` on every playlist and media request. Signature check is constant-time
//! and happens before the payload is parsed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use sqlx::Row as _;

use crate::db::{Db, UnixMs};
use crate::error::{ControlError, Result, TokenError, ValidationError};
use crate::secret::random_bytes;
use crate::validate;

/// Longest token `verify` looks at.
pub const TOKEN_MAX: usize = 512;
const SETTINGS_KEY: &str = "playback_hmac_key";
const P2P_SEED_KEY: &str = "p2p_piece_seed";
const VERSION: &str = "1";

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Channel name.
    pub channel: String,
    /// Expiry, unix ms.
    pub expires_at: UnixMs,
    /// Optional viewer id (for entitlement and analytics).
    pub viewer_id: Option<String>,
}

/// Signs and verifies playback tokens with the cluster's shared secret.
#[derive(Clone)]
pub struct PlaybackSigner {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for PlaybackSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlaybackSigner(<key redacted>)")
    }
}

impl PlaybackSigner {
    /// A signer over `key` (at least 32 bytes).
    pub fn new(key: &[u8]) -> Result<Self> {
        if key.len() < 32 {
            return Err(ControlError::Config(format!(
                "playback key of {} bytes is below the minimum of 32",
                key.len()
            )));
        }
        let mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|e| ControlError::Config(format!("playback key: {e}")))?;
        Ok(Self { mac })
    }

    /// A token for `channel` valid until `expires_at`.
    pub fn sign(
        &self,
        channel: &str,
        expires_at: UnixMs,
        viewer_id: Option<&str>,
    ) -> Result<String, ValidationError> {
        validate::channel_name(channel)?;
        if let Some(v) = viewer_id {
            validate::viewer_id(v)?;
        }
        let payload = format!(
            "{VERSION}\n{channel}\n{expires_at}\n{}",
            viewer_id.unwrap_or("")
        );
        let body = URL_SAFE_NO_PAD.encode(payload.as_bytes());
        let mut mac = self.mac.clone();
        mac.update(body.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        Ok(format!("{body}.{sig}"))
    }

    /// Checks a token for `channel` at `now`.
    pub fn verify(&self, token: &str, channel: &str, now: UnixMs) -> Result<Claims, TokenError> {
        if token.len() > TOKEN_MAX {
            return Err(TokenError::Malformed("too long"));
        }
        let (body, sig) = token
            .split_once('.')
            .ok_or(TokenError::Malformed("no `.`"))?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
        let mut mac = self.mac.clone();
        mac.update(body.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        // Signed by us from here on: a parse failure means a format we no longer read.
        let payload = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
        let payload = std::str::from_utf8(&payload)
            .map_err(|_| TokenError::Malformed("payload is not UTF-8"))?;
        let mut parts = payload.split('\n');
        if parts.next() != Some(VERSION) {
            return Err(TokenError::Malformed("unknown version"));
        }
        let (Some(tok_channel), Some(exp), Some(viewer), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("wrong number of fields"));
        };
        let expires_at: i64 = exp
            .parse()
            .map_err(|_| TokenError::Malformed("bad expiry"))?;
        if tok_channel != channel {
            return Err(TokenError::WrongChannel {
                token_channel: tok_channel.to_owned(),
                requested: channel.to_owned(),
            });
        }
        if now >= expires_at {
            return Err(TokenError::Expired {
                expired_at_ms: expires_at,
                now_ms: now,
            });
        }
        Ok(Claims {
            channel: tok_channel.to_owned(),
            expires_at,
            viewer_id: (!viewer.is_empty()).then(|| viewer.to_owned()),
        })
    }
}

impl Db {
    /// The cluster's playback signer: the secret is created on first use and shared
    /// through the `settings` table (the first node to insert it wins).
    pub async fn playback_signer(&self) -> Result<PlaybackSigner> {
        PlaybackSigner::new(&self.shared_key(SETTINGS_KEY).await?)
    }

    /// The seed of the cluster's Ed25519 key that signs the P2P grid's piece lists,
    /// shared like the playback key: every node signs with it, so a viewer checks a list
    /// from any origin or edge with the one public key.
    pub async fn p2p_piece_seed(&self) -> Result<[u8; 32]> {
        let key = self.shared_key(P2P_SEED_KEY).await?;
        key.try_into()
            .map_err(|_| ControlError::corrupt("settings", "P2P piece key is not 32 bytes"))
    }

    /// 32 random bytes kept under `name` in `settings`, made by the first node that asks.
    async fn shared_key(&self, name: &str) -> Result<Vec<u8>> {
        let fresh = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(name)
        .bind(&fresh)
        .execute(self.pool())
        .await?;
        let stored: String = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(name)
            .fetch_one(self.pool())
            .await?
            .try_get("value")?;
        URL_SAFE_NO_PAD
            .decode(stored.as_bytes())
            .map_err(|_| ControlError::corrupt("settings", "a shared key is not base64url"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> PlaybackSigner {
        PlaybackSigner::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn valid_token_round_trips() {
        let s = signer();
        let t = s.sign("news", 2_000, Some("viewer-42")).unwrap();
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{t}"
        );
        let c = s.verify(&t, "news", 1_999).unwrap();
        assert_eq!(c.channel, "news");
        assert_eq!(c.expires_at, 2_000);
        assert_eq!(c.viewer_id.as_deref(), Some("viewer-42"));
        let anon = s.sign("news", 2_000, None).unwrap();
        assert_eq!(s.verify(&anon, "news", 0).unwrap().viewer_id, None);
    }

    #[test]
    fn expired_tampered_other_channel_are_distinct() {
        let s = signer();
        let t = s.sign("news", 2_000, None).unwrap();
        assert_eq!(
            s.verify(&t, "news", 2_000),
            Err(TokenError::Expired {
                expired_at_ms: 2_000,
                now_ms: 2_000
            })
        );
        assert!(matches!(
            s.verify(&t, "sport", 0),
            Err(TokenError::WrongChannel { .. })
        ));
        // Re-sign the payload for another channel without the key: signature fails.
        let (_, sig) = t.split_once('.').unwrap();
        let forged_body = URL_SAFE_NO_PAD.encode("1\nsport\n2000\n");
        assert_eq!(
            s.verify(&format!("{forged_body}.{sig}"), "sport", 0),
            Err(TokenError::BadSignature)
        );
        // Flip one character of the signature.
        let mut bad = t.clone().into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            s.verify(std::str::from_utf8(&bad).unwrap(), "news", 0),
            Err(TokenError::BadSignature)
        );
        // Another key.
        let other = PlaybackSigner::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify(&t, "news", 0), Err(TokenError::BadSignature));
        assert!(matches!(
            s.verify("nodot", "news", 0),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            s.verify(&"a".repeat(10_000), "news", 0),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            s.verify("a.!!", "news", 0),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn sign_validates_inputs_and_debug_hides_key() {
        let s = signer();
        assert_eq!(s.sign("../x", 1, None).unwrap_err().field, "name");
        assert_eq!(s.sign("x", 1, Some("a\nb")).unwrap_err().field, "viewer_id");
        assert_eq!(format!("{s:?}"), "PlaybackSigner(<key redacted>)");
        assert!(PlaybackSigner::new(&[1u8; 16]).is_err());
    }
}
