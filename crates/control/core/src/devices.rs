//! Devices (a broadcaster's encoders) and their stream keys; publish authorisation.
//!
//! A stream key belongs to one device and one channel. Its secret is returned exactly
//! once, at creation or rotation; the database keeps its SHA-256 and a display prefix.
//! Revoking a key (or its device) is announced on a broadcast channel so the ingest
//! driver on this node can stop a live publish at once; other nodes poll
//! [`Db::revoked_keys_since`] or check [`Db::is_key_active`].
//!
//! Nothing here logs a key or returns one except the `Secret` from create/rotate.

use sqlx::any::AnyRow;
use sqlx::Row as _;
use tokio::sync::broadcast;

use crate::accounts::PRESENTED_SECRET_MAX;
use crate::authz::{check, Action, Principal};
use crate::channels::text_enum;
use crate::db::{Db, UnixMs};
use crate::error::{AuthError, ControlError, Problem, Result, ValidationError};
use crate::secret::{hash_secret, new_id, new_secret, Secret};
use crate::validate;

/// What kind of device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// A hardware or software encoder (OBS, ffmpeg, …).
    Encoder,
    /// A phone app.
    Phone,
    /// A studio system.
    Studio,
    /// Anything else.
    Other,
}
text_enum!(
    DeviceKind,
    "kind",
    "encoder, phone, studio, other",
    Encoder = "encoder",
    Phone = "phone",
    Studio = "studio",
    Other = "other"
);

/// A device's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// Publishing now.
    Live,
    /// Seen recently, not publishing.
    Idle,
    /// Never seen, or not for [`OFFLINE_AFTER_MS`].
    Offline,
}
text_enum!(
    DeviceState,
    "state",
    "live, idle, offline",
    Live = "live",
    Idle = "idle",
    Offline = "offline"
);

/// An idle device not seen for this long reads as offline.
pub const OFFLINE_AFTER_MS: i64 = 5 * 60 * 1000;

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// `dev_…`.
    pub id: String,
    /// Owning organisation.
    pub org_id: String,
    /// The channel its new keys publish to by default.
    pub channel_id: Option<String>,
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: DeviceKind,
    /// State at the time of the read.
    pub state: DeviceState,
    /// Last publish attempt with one of its keys.
    pub last_seen_at: Option<UnixMs>,
    /// Creation time.
    pub created_at: UnixMs,
    /// When revoked (its keys are revoked with it).
    pub revoked_at: Option<UnixMs>,
}

/// A stream key's metadata: never its secret or hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamKeyInfo {
    /// `key_…`.
    pub id: String,
    /// Owning organisation.
    pub org_id: String,
    /// Its device.
    pub device_id: String,
    /// The channel it publishes to.
    pub channel_id: String,
    /// First characters, for display (`sk_3f9aB2c1`).
    pub prefix: String,
    /// Creation time.
    pub created_at: UnixMs,
    /// When revoked.
    pub revoked_at: Option<UnixMs>,
    /// Last successful publish authorisation.
    pub last_used_at: Option<UnixMs>,
    /// Peer address of that publish.
    pub last_used_addr: Option<String>,
}

/// What ingest gets back for a good key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishGrant {
    /// Channel name (the `/live/{name}` the publish feeds).
    pub channel: String,
    /// Channel id.
    pub channel_id: String,
    /// Owning organisation.
    pub org_id: String,
    /// The key used (watch revocations for it).
    pub key_id: String,
    /// The device it belongs to.
    pub device_id: String,
    /// The device was already live: this is a reconnect of the same encoder and should
    /// replace the old publish rather than be refused. Policy for a *different* device
    /// publishing to a live channel is the caller's.
    pub takeover: bool,
    /// The channel's own SRT passphrase, read with the key (one query, so it is the
    /// passphrase in force when this publish was authorised).
    pub srt_passphrase: Option<crate::channels::SrtPassphrase>,
}

/// A key stopped working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The key.
    pub key_id: String,
    /// Its device.
    pub device_id: String,
    /// Name of the channel it published to.
    pub channel: String,
    /// When.
    pub revoked_at: UnixMs,
}

macro_rules! device_cols {
    () => {
        "id, org_id, channel_id, name, kind, state, last_seen_at, created_at, revoked_at"
    };
}
macro_rules! key_cols {
    () => {
        "id, org_id, device_id, channel_id, prefix, created_at, revoked_at, last_used_at, \
         last_used_addr"
    };
}

fn device_from_row(r: &AnyRow, now: UnixMs) -> Result<Device> {
    let bad = |what: &str| ControlError::corrupt("devices", what.to_owned());
    let mut state =
        DeviceState::parse(&r.try_get::<String, _>("state")?).map_err(|_| bad("state"))?;
    let last_seen_at: Option<i64> = r.try_get("last_seen_at")?;
    let revoked_at: Option<i64> = r.try_get("revoked_at")?;
    let stale = last_seen_at.is_none_or(|t| now.saturating_sub(t) > OFFLINE_AFTER_MS);
    if revoked_at.is_some() || (state == DeviceState::Idle && stale) {
        state = DeviceState::Offline;
    }
    Ok(Device {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        channel_id: r.try_get("channel_id")?,
        name: r.try_get("name")?,
        kind: DeviceKind::parse(&r.try_get::<String, _>("kind")?).map_err(|_| bad("kind"))?,
        state,
        last_seen_at,
        created_at: r.try_get("created_at")?,
        revoked_at,
    })
}

fn key_from_row(r: &AnyRow) -> Result<StreamKeyInfo> {
    Ok(StreamKeyInfo {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        device_id: r.try_get("device_id")?,
        channel_id: r.try_get("channel_id")?,
        prefix: r.try_get("prefix")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        last_used_at: r.try_get("last_used_at")?,
        last_used_addr: r.try_get("last_used_addr")?,
    })
}

impl Db {
    /// Registers a device in the caller's organisation, optionally bound to a channel.
    pub async fn create_device(
        &self,
        p: &Principal,
        name: &str,
        kind: DeviceKind,
        channel_id: Option<&str>,
        now: UnixMs,
    ) -> Result<Device> {
        check(p, Action::ManageDevices, &p.org_id, "device")?;
        validate::display_text("name", name, validate::NAME_MAX)?;
        if let Some(ch) = channel_id {
            // Also proves the channel is in the caller's org (else NotFound).
            self.get_channel(p, ch).await?;
        }
        let dev = Device {
            id: new_id("dev")?,
            org_id: p.org_id.clone(),
            channel_id: channel_id.map(str::to_owned),
            name: name.to_owned(),
            kind,
            state: DeviceState::Offline,
            last_seen_at: None,
            created_at: now,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO devices (id, org_id, channel_id, name, kind, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&dev.id)
        .bind(&dev.org_id)
        .bind(&dev.channel_id)
        .bind(&dev.name)
        .bind(kind.as_str())
        .bind(dev.state.as_str())
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(dev)
    }

    /// A device of the caller's organisation, with its state as of `now`.
    pub async fn get_device(&self, p: &Principal, id: &str, now: UnixMs) -> Result<Device> {
        let row = sqlx::query(concat!(
            "SELECT ",
            device_cols!(),
            " FROM devices WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| ControlError::not_found("device"))?;
        let dev = device_from_row(&row, now)?;
        check(p, Action::ManageDevices, &dev.org_id, "device")?;
        Ok(dev)
    }

    /// The caller's organisation's devices.
    pub async fn list_devices(&self, p: &Principal, now: UnixMs) -> Result<Vec<Device>> {
        check(p, Action::ManageDevices, &p.org_id, "device")?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            device_cols!(),
            " FROM devices WHERE org_id = $1 ORDER BY created_at, id"
        ))
        .bind(&p.org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| device_from_row(r, now)).collect()
    }

    /// Revokes a device and every key it has; returns the keys revoked now.
    pub async fn revoke_device(
        &self,
        p: &Principal,
        id: &str,
        now: UnixMs,
    ) -> Result<Vec<Revocation>> {
        let dev = self.get_device(p, id, now).await?;
        let mut tx = self.pool().begin().await?;
        // A write first: on SQLite a transaction that reads first and writes later fails
        // at once with "database is locked" (a stale snapshot, no busy wait) when another
        // connection wrote in between; one that starts by writing waits for the lock.
        sqlx::query(
            "UPDATE devices SET revoked_at = $1, state = 'offline' WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&dev.id)
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT k.id, k.device_id, c.name FROM stream_keys k JOIN channels c ON c.id = k.channel_id \
             WHERE k.device_id = $1 AND k.revoked_at IS NULL",
        )
        .bind(&dev.id)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE stream_keys SET revoked_at = $1 WHERE device_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&dev.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let revoked = rows
            .iter()
            .map(|r| {
                Ok(Revocation {
                    key_id: r.try_get("id")?,
                    device_id: r.try_get("device_id")?,
                    channel: r.try_get("name")?,
                    revoked_at: now,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for r in &revoked {
            // No receiver is fine: nothing is live on this node.
            let _ = self.inner.revocations.send(r.clone());
        }
        Ok(revoked)
    }

    /// Creates a key for a device of the caller's organisation. `channel_id` defaults to
    /// the device's channel. The returned `Secret` is the only time the key is visible.
    pub async fn create_stream_key(
        &self,
        p: &Principal,
        device_id: &str,
        channel_id: Option<&str>,
        now: UnixMs,
    ) -> Result<(StreamKeyInfo, Secret)> {
        let dev = self.get_device(p, device_id, now).await?;
        if dev.revoked_at.is_some() {
            return Err(
                ValidationError::new("device_id", Problem::Format("device is revoked")).into(),
            );
        }
        let channel_id = match channel_id.or(dev.channel_id.as_deref()) {
            Some(c) => c.to_owned(),
            None => {
                return Err(ValidationError::new(
                    "channel_id",
                    Problem::Format("the device has no channel; name one"),
                )
                .into())
            }
        };
        let ch = self.get_channel(p, &channel_id).await?;
        let (secret, prefix) = new_secret("sk")?;
        let info = StreamKeyInfo {
            id: new_id("key")?,
            org_id: dev.org_id.clone(),
            device_id: dev.id.clone(),
            channel_id: ch.id.clone(),
            prefix,
            created_at: now,
            revoked_at: None,
            last_used_at: None,
            last_used_addr: None,
        };
        sqlx::query(
            "INSERT INTO stream_keys (id, org_id, device_id, channel_id, prefix, key_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&info.id)
        .bind(&info.org_id)
        .bind(&info.device_id)
        .bind(&info.channel_id)
        .bind(&info.prefix)
        .bind(hash_secret(secret.expose()))
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok((info, secret))
    }

    async fn key_row(&self, p: &Principal, key_id: &str) -> Result<StreamKeyInfo> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_cols!(),
            " FROM stream_keys WHERE id = $1"
        ))
        .bind(key_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| ControlError::not_found("stream key"))?;
        let key = key_from_row(&row)?;
        check(p, Action::ManageDevices, &key.org_id, "stream key")?;
        Ok(key)
    }

    /// A device's keys (metadata only).
    pub async fn list_stream_keys(
        &self,
        p: &Principal,
        device_id: &str,
    ) -> Result<Vec<StreamKeyInfo>> {
        let dev = self.get_device(p, device_id, 0).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            key_cols!(),
            " FROM stream_keys WHERE device_id = $1 ORDER BY created_at, id"
        ))
        .bind(&dev.id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Revokes one key.
    pub async fn revoke_stream_key(&self, p: &Principal, key_id: &str, now: UnixMs) -> Result<()> {
        let key = self.key_row(p, key_id).await?;
        self.revoke_keys(&[key], now).await
    }

    async fn revoke_keys(&self, keys: &[StreamKeyInfo], now: UnixMs) -> Result<()> {
        for key in keys {
            let r = sqlx::query(
                "UPDATE stream_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&key.id)
            .execute(self.pool())
            .await?;
            if r.rows_affected() > 0 {
                let channel = sqlx::query("SELECT name FROM channels WHERE id = $1")
                    .bind(&key.channel_id)
                    .fetch_one(self.pool())
                    .await?
                    .try_get("name")?;
                let _ = self.inner.revocations.send(Revocation {
                    key_id: key.id.clone(),
                    device_id: key.device_id.clone(),
                    channel,
                    revoked_at: now,
                });
            }
        }
        Ok(())
    }

    /// Replaces a key: a new key for the same device and channel, the old one revoked.
    pub async fn rotate_stream_key(
        &self,
        p: &Principal,
        key_id: &str,
        now: UnixMs,
    ) -> Result<(StreamKeyInfo, Secret)> {
        let old = self.key_row(p, key_id).await?;
        let new = self
            .create_stream_key(p, &old.device_id, Some(&old.channel_id), now)
            .await?;
        self.revoke_keys(&[old], now).await?;
        Ok(new)
    }

    /// Authorises a publish by stream key from `peer_addr`, for every ingest protocol.
    ///
    /// One indexed lookup by SHA-256, then records last use on the key and marks the
    /// device live. Unknown and revoked keys are refused; the key is never logged.
    pub async fn authorize_publish(
        &self,
        key: &str,
        peer_addr: &str,
        now: UnixMs,
    ) -> Result<PublishGrant> {
        const WHAT: &str = "stream key";
        if key.is_empty() || key.len() > PRESENTED_SECRET_MAX {
            return Err(AuthError::Unknown { what: WHAT }.into());
        }
        let row = sqlx::query(
            "SELECT k.id, k.device_id, k.channel_id, k.org_id, k.revoked_at, \
             d.revoked_at AS device_revoked_at, d.state, c.name, c.srt_passphrase, c.srt_pbkeylen \
             FROM stream_keys k JOIN devices d ON d.id = k.device_id \
             JOIN channels c ON c.id = k.channel_id WHERE k.key_hash = $1",
        )
        .bind(hash_secret(key))
        .fetch_optional(self.pool())
        .await?
        .ok_or(AuthError::Unknown { what: WHAT })?;
        let key_id: String = row.try_get("id")?;
        let revoked: Option<i64> = row.try_get("revoked_at")?;
        let device_revoked: Option<i64> = row.try_get("device_revoked_at")?;
        if revoked.is_some() || device_revoked.is_some() {
            tracing::info!(key_id = %key_id, peer = %peer_addr, "publish refused: stream key revoked");
            return Err(AuthError::Revoked {
                what: WHAT,
                id: key_id,
            }
            .into());
        }
        let device_id: String = row.try_get("device_id")?;
        let state: String = row.try_get("state")?;
        let addr = validate::clip_addr(peer_addr);
        sqlx::query("UPDATE stream_keys SET last_used_at = $1, last_used_addr = $2 WHERE id = $3")
            .bind(now)
            .bind(addr)
            .bind(&key_id)
            .execute(self.pool())
            .await?;
        sqlx::query("UPDATE devices SET last_seen_at = $1, state = 'live' WHERE id = $2")
            .bind(now)
            .bind(&device_id)
            .execute(self.pool())
            .await?;
        Ok(PublishGrant {
            channel: row.try_get("name")?,
            channel_id: row.try_get("channel_id")?,
            org_id: row.try_get("org_id")?,
            key_id,
            device_id,
            takeover: state == "live",
            srt_passphrase: crate::channels::srt_from_row("channels", &row)?,
        })
    }

    /// The publish authorised by `grant` ended: its device is idle again.
    pub async fn publish_ended(&self, grant: &PublishGrant, now: UnixMs) -> Result<()> {
        sqlx::query(
            "UPDATE devices SET last_seen_at = $1, state = 'idle' WHERE id = $2 AND state = 'live'",
        )
        .bind(now)
        .bind(&grant.device_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Whether a key (and its device) is still valid: for a periodic check of a live
    /// publish on nodes that did not see the revocation broadcast.
    pub async fn is_key_active(&self, key_id: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT k.revoked_at, d.revoked_at AS device_revoked_at FROM stream_keys k \
             JOIN devices d ON d.id = k.device_id WHERE k.id = $1",
        )
        .bind(key_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            None => false,
            Some(r) => {
                r.try_get::<Option<i64>, _>("revoked_at")?.is_none()
                    && r.try_get::<Option<i64>, _>("device_revoked_at")?.is_none()
            }
        })
    }

    /// Keys revoked after `since` (any node's revocations), oldest first.
    pub async fn revoked_keys_since(&self, since: UnixMs) -> Result<Vec<Revocation>> {
        let rows = sqlx::query(
            "SELECT k.id, k.device_id, c.name, k.revoked_at FROM stream_keys k \
             JOIN channels c ON c.id = k.channel_id \
             WHERE k.revoked_at IS NOT NULL AND k.revoked_at > $1 ORDER BY k.revoked_at, k.id",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Revocation {
                    key_id: r.try_get("id")?,
                    device_id: r.try_get("device_id")?,
                    channel: r.try_get("name")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    /// Revocations made through this `Db` (this node), as they happen.
    pub fn subscribe_revocations(&self) -> broadcast::Receiver<Revocation> {
        self.inner.revocations.subscribe()
    }
}
