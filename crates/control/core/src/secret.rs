//! Random secrets and identifiers, and how secrets are stored (SHA-256, never the value).
//!
//! Stream keys, session cookies and API tokens are 32 random bytes from the OS, so a
//! plain SHA-256 is the right storage hash: there is nothing to brute-force, and the
//! lookup stays one indexed equality. Passwords are different (see `accounts`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
pub(crate) use starling_sync::hex::encode as hex;

use crate::error::{ControlError, Result};

/// Bytes of entropy in every secret.
pub const SECRET_BYTES: usize = 32;
/// Characters of a secret kept (after its kind prefix) for display, e.g. `sk_3f9aB2c1`.
pub const DISPLAY_PREFIX_CHARS: usize = 8;

/// A secret shown to its owner exactly once. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself: give it to the user once, never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Wraps a secret received from a client (so it cannot be logged by accident).
    pub fn from_client(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| ControlError::Random(e.to_string()))?;
    Ok(buf)
}

/// A new secret `"{kind}_{base64url(32 random bytes)}"` and its display prefix.
pub(crate) fn new_secret(kind: &str) -> Result<(Secret, String)> {
    let body = URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>()?);
    let prefix = format!("{kind}_{}", &body[..DISPLAY_PREFIX_CHARS]);
    Ok((Secret(format!("{kind}_{body}")), prefix))
}

/// A new row id `"{kind}_{24 hex digits}"`: ids are not secrets, only unguessable enough
/// that enumerating them is pointless.
pub(crate) fn new_id(kind: &str) -> Result<String> {
    Ok(format!("{kind}_{}", hex(&random_bytes::<12>()?)))
}

/// What the database stores for a secret: lowercase hex SHA-256 of its UTF-8 bytes.
pub(crate) fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_prefixed_and_redacted() {
        let (a, pa) = new_secret("sk").unwrap();
        let (b, _) = new_secret("sk").unwrap();
        assert_ne!(a, b);
        assert!(a.expose().starts_with(&pa));
        assert_eq!(a.expose().len(), 3 + 43);
        assert_eq!(pa.len(), 3 + DISPLAY_PREFIX_CHARS);
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn sha256_vector() {
        // FIPS 180-2 test vector.
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
