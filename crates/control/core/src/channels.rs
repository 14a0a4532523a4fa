//! Channels: what a broadcaster publishes to and viewers watch (`/live/{name}`).
//!
//! Every read and write is scoped to the caller's organisation; another tenant's channel
//! is `NotFound`, whether asked for by id or by listing.

use sqlx::any::AnyRow;
use sqlx::Row as _;

use crate::authz::{check, Action, Principal};
use crate::db::{conflict, flag, Db, UnixMs};
use crate::error::{ControlError, Problem, Result, ValidationError};
use crate::secret::{new_id, Secret};
use crate::validate;

/// Who may watch a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Anyone; listed; cacheable by any CDN.
    Public,
    /// Anyone with the link; not listed.
    Unlisted,
    /// Only with a signed playback token.
    Private,
}

/// Latency target of a channel: how its viewers are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatencyMode {
    /// Regular HLS segments.
    Standard,
    /// LL-HLS partial segments.
    Low,
    /// WebRTC (WHEP) for viewers that can, at conversation speed; LL-HLS for the rest
    /// (the watch page falls back to it by itself).
    RealTime,
    /// Viewers a few segments behind live share whole segments with each other over
    /// WebRTC data channels, the edge backing every one up (docs/p2p.md); LL-HLS for
    /// viewers that cannot take part.
    P2p,
}

impl LatencyMode {
    /// The columns a mode is stored in: `latency_mode` (whose CHECK constraint of
    /// schema 1 knows `standard` and `low` only, and SQLite cannot change a CHECK
    /// without rebuilding the table), `realtime` (schema 6) and `p2p` (schema 7). Real
    /// time and P2P keep LL-HLS for the packager, so `latency_mode` stays true for every
    /// reader of that column.
    fn columns(self) -> (&'static str, i64, i64) {
        match self {
            Self::RealTime => (Self::Low.as_str(), 1, 0),
            Self::P2p => (Self::Low.as_str(), 0, 1),
            other => (other.as_str(), 0, 0),
        }
    }

    fn from_columns(
        latency_mode: &str,
        realtime: bool,
        p2p: bool,
    ) -> Result<Self, ValidationError> {
        let stored = Self::parse(latency_mode)?;
        Ok(if realtime {
            Self::RealTime
        } else if p2p {
            Self::P2p
        } else {
            stored
        })
    }
}

macro_rules! text_enum {
    ($t:ty, $field:literal, $expected:literal, $($v:ident = $s:literal),+) => {
        impl $t {
            /// Stored / API spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
            /// Parses the stored / API spelling.
            pub fn parse(s: &str) -> Result<Self, ValidationError> {
                match s {
                    $($s => Ok(Self::$v),)+
                    _ => Err(ValidationError::new($field, Problem::NotOneOf { expected: $expected })),
                }
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(
    Visibility,
    "visibility",
    "public, unlisted, private",
    Public = "public",
    Unlisted = "unlisted",
    Private = "private"
);
text_enum!(
    LatencyMode,
    "latency_mode",
    "standard, low, realtime, p2p",
    Standard = "standard",
    Low = "low",
    RealTime = "realtime",
    P2p = "p2p"
);

/// A channel's own SRT encryption: the AES passphrase every SRT caller of the channel
/// (publisher or player) must use. Stored as given (libsrt needs the passphrase itself);
/// never returned by the API, and `Debug` does not print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtPassphrase {
    /// 10 to 79 printable ASCII characters ([`validate::srt_passphrase`]).
    pub passphrase: Secret,
    /// AES key length in bytes (16, 24 or 32); `None`: the node's `srt.pbkeylen`.
    pub pbkeylen: Option<u8>,
}

/// A channel's vertical reframing and highlight detection (docs/reframing.md); read
/// when a publish begins.
#[derive(Debug, Clone, PartialEq)]
pub struct Reframing {
    /// A 9:16 window that follows the subject.
    pub reframe: bool,
    /// Which face leads when they do not all fit: `largest` or `central`.
    pub subject: String,
    /// Highlight detection.
    pub highlights: bool,
    /// 1 by default; higher finds more highlights (0.1 to 10).
    pub sensitivity: f64,
}

// The sensitivity is checked finite before it is stored, so equality is total.
impl Eq for Reframing {}

impl Default for Reframing {
    fn default() -> Self {
        Self {
            reframe: false,
            subject: "largest".into(),
            highlights: false,
            sensitivity: 1.0,
        }
    }
}

/// The subjects [`Reframing::subject`] may name.
pub const REFRAME_SUBJECTS: [&str; 2] = ["largest", "central"];

fn reframing(r: &Reframing) -> Result<(), ValidationError> {
    if !REFRAME_SUBJECTS.contains(&r.subject.as_str()) {
        return Err(ValidationError::new(
            "reframe_subject",
            Problem::NotOneOf {
                expected: "largest, central",
            },
        ));
    }
    if !(r.sensitivity.is_finite() && (0.1..=10.0).contains(&r.sensitivity)) {
        return Err(ValidationError::new(
            "highlight_sensitivity",
            Problem::Format("must be a number from 0.1 to 10"),
        ));
    }
    Ok(())
}

/// A channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// `ch_…`.
    pub id: String,
    /// Owning organisation.
    pub org_id: String,
    /// URL name, unique platform-wide.
    pub name: String,
    /// Display title.
    pub title: String,
    /// Who may watch.
    pub visibility: Visibility,
    /// Latency target.
    pub latency_mode: LatencyMode,
    /// Which renditions the channel gets: `default` (the node's `[transcode]` ladder),
    /// `source` (the source alone, no transcoding), or a list of the node's rung names
    /// (`720p,360p`; `source` in it is allowed and changes nothing, the source is always
    /// offered).
    pub ladder: String,
    /// Whether publishes are recorded.
    pub recording: bool,
    /// DVR window in seconds (0: live edge only).
    pub dvr_window_secs: i64,
    /// The channel's own SRT passphrase; `None`: the node's (`srt.passphrase`), if any.
    pub srt_passphrase: Option<SrtPassphrase>,
    /// Vertical reframing and highlight detection.
    pub reframing: Reframing,
    /// Creation time.
    pub created_at: UnixMs,
    /// Last change.
    pub updated_at: UnixMs,
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChannel {
    /// URL name.
    pub name: String,
    /// Title (defaults to the name when empty).
    pub title: String,
    /// Who may watch.
    pub visibility: Visibility,
    /// Latency target.
    pub latency_mode: LatencyMode,
    /// Ladder name.
    pub ladder: String,
    /// Record?
    pub recording: bool,
    /// DVR window.
    pub dvr_window_secs: i64,
    /// The channel's own SRT passphrase (none: the node's).
    pub srt_passphrase: Option<Secret>,
    /// Its AES key length (16, 24 or 32; none: the node's). Needs `srt_passphrase`.
    pub srt_pbkeylen: Option<i64>,
    /// Reframing and highlights (off by default).
    pub reframing: Reframing,
}

impl NewChannel {
    /// A public, low-latency (LL-HLS, which plain HLS players read too), unrecorded
    /// channel with the node's `default` ladder.
    pub fn named(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            title: name.clone(),
            name,
            visibility: Visibility::Public,
            latency_mode: LatencyMode::Low,
            ladder: "default".into(),
            recording: false,
            dvr_window_secs: 0,
            srt_passphrase: None,
            srt_pbkeylen: None,
            reframing: Reframing::default(),
        }
    }
}

/// Fields to change; `None` leaves a field as it is. The name cannot change (it is in
/// every URL and player already out there).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelUpdate {
    /// New title.
    pub title: Option<String>,
    /// New visibility.
    pub visibility: Option<Visibility>,
    /// New latency target.
    pub latency_mode: Option<LatencyMode>,
    /// New ladder.
    pub ladder: Option<String>,
    /// Recording on/off.
    pub recording: Option<bool>,
    /// New DVR window.
    pub dvr_window_secs: Option<i64>,
    /// `Some(Some(_))` sets the SRT passphrase, `Some(None)` removes it (and its key
    /// length: the node's apply again).
    pub srt_passphrase: Option<Option<Secret>>,
    /// `Some(Some(_))` sets the key length (the channel must have a passphrase, or get
    /// one in the same update), `Some(None)` returns to the node's.
    pub srt_pbkeylen: Option<Option<i64>>,
    /// Reframing on/off.
    pub reframe: Option<bool>,
    /// Which face leads.
    pub reframe_subject: Option<String>,
    /// Highlights on/off.
    pub highlights: Option<bool>,
    /// Highlight sensitivity.
    pub highlight_sensitivity: Option<f64>,
}

/// Longest DVR window: one week.
pub const DVR_WINDOW_MAX_SECS: i64 = 7 * 24 * 3600;

fn ladder(s: &str) -> Result<(), ValidationError> {
    // Same alphabet as channel names, plus `,` for lists of renditions.
    validate::display_text("ladder", s, 64)?;
    match s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ',')))
    {
        Some((at, ch)) => Err(ValidationError::new(
            "ladder",
            Problem::InvalidCharacter {
                ch,
                at,
                allowed: "A-Z a-z 0-9 _ - ,",
            },
        )),
        None => Ok(()),
    }
}

/// The SRT passphrase of a new or changed channel, checked: a key length needs a
/// passphrase (alone it would mean nothing to a caller, and silently re-keying the node's
/// passphrase per channel would be a surprise).
fn srt_setting(
    current: Option<&SrtPassphrase>,
    passphrase: Option<Option<&Secret>>,
    pbkeylen: Option<Option<i64>>,
) -> Result<Option<SrtPassphrase>, ValidationError> {
    let pbkeylen = pbkeylen
        .map(|n| {
            n.map(|n| validate::srt_pbkeylen("srt_pbkeylen", n))
                .transpose()
        })
        .transpose()?;
    let passphrase = match passphrase {
        Some(Some(p)) => {
            validate::srt_passphrase("srt_passphrase", p.expose())?;
            Some(p.clone())
        }
        Some(None) => None,
        None => current.map(|c| c.passphrase.clone()),
    };
    match passphrase {
        Some(passphrase) => Ok(Some(SrtPassphrase {
            passphrase,
            // A new passphrase keeps the key length unless the update names one.
            pbkeylen: pbkeylen.unwrap_or_else(|| current.and_then(|c| c.pbkeylen)),
        })),
        None if matches!(pbkeylen, Some(Some(_))) => Err(ValidationError::new(
            "srt_pbkeylen",
            Problem::Format("a key length needs srt_passphrase to be set"),
        )),
        None => Ok(None),
    }
}

/// Reads the SRT passphrase columns of a channel row (`srt_passphrase`, `srt_pbkeylen`).
pub(crate) fn srt_from_row(table: &'static str, r: &AnyRow) -> Result<Option<SrtPassphrase>> {
    let passphrase: Option<String> = r.try_get("srt_passphrase")?;
    let pbkeylen: Option<i64> = r.try_get("srt_pbkeylen")?;
    let pbkeylen = pbkeylen
        .map(|n| {
            validate::srt_pbkeylen("srt_pbkeylen", n)
                .map_err(|_| ControlError::corrupt(table, format!("srt_pbkeylen {n}")))
        })
        .transpose()?;
    Ok(passphrase.map(|p| SrtPassphrase {
        passphrase: Secret::from_client(p),
        pbkeylen,
    }))
}

// A macro, not a const, so queries stay `&'static str` built by `concat!`.
macro_rules! cols {
    () => {
        "id, org_id, name, title, visibility, latency_mode, realtime, p2p, ladder, recording, \
         dvr_window_secs, srt_passphrase, srt_pbkeylen, created_at, updated_at, reframe, \
         reframe_subject, highlights, highlight_sensitivity"
    };
}

fn srt_passphrase_column(ch: &Channel) -> Option<String> {
    ch.srt_passphrase
        .as_ref()
        .map(|s| s.passphrase.expose().to_owned())
}

fn srt_pbkeylen_column(ch: &Channel) -> Option<i64> {
    ch.srt_passphrase
        .as_ref()
        .and_then(|s| s.pbkeylen)
        .map(i64::from)
}

fn from_row(r: &AnyRow) -> Result<Channel> {
    let bad = |what: &str| ControlError::corrupt("channels", what.to_owned());
    Ok(Channel {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        title: r.try_get("title")?,
        visibility: Visibility::parse(&r.try_get::<String, _>("visibility")?)
            .map_err(|_| bad("visibility"))?,
        latency_mode: LatencyMode::from_columns(
            &r.try_get::<String, _>("latency_mode")?,
            flag("channels", r.try_get("realtime")?)?,
            flag("channels", r.try_get("p2p")?)?,
        )
        .map_err(|_| bad("latency_mode"))?,
        ladder: r.try_get("ladder")?,
        recording: flag("channels", r.try_get("recording")?)?,
        dvr_window_secs: r.try_get("dvr_window_secs")?,
        srt_passphrase: srt_from_row("channels", r)?,
        reframing: Reframing {
            reframe: flag("channels", r.try_get("reframe")?)?,
            subject: r.try_get("reframe_subject")?,
            highlights: flag("channels", r.try_get("highlights")?)?,
            sensitivity: r.try_get("highlight_sensitivity")?,
        },
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Db {
    /// Creates a channel in the caller's organisation.
    pub async fn create_channel(
        &self,
        p: &Principal,
        new: &NewChannel,
        now: UnixMs,
    ) -> Result<Channel> {
        check(p, Action::ManageChannels, &p.org_id, "channel")?;
        validate::channel_name(&new.name)?;
        let title = if new.title.is_empty() {
            &new.name
        } else {
            &new.title
        };
        validate::display_text("title", title, validate::TITLE_MAX)?;
        ladder(&new.ladder)?;
        reframing(&new.reframing)?;
        validate::range(
            "dvr_window_secs",
            new.dvr_window_secs,
            0,
            DVR_WINDOW_MAX_SECS,
        )?;
        let srt_passphrase = srt_setting(
            None,
            Some(new.srt_passphrase.as_ref()),
            Some(new.srt_pbkeylen),
        )?;
        let ch = Channel {
            id: new_id("ch")?,
            org_id: p.org_id.clone(),
            name: new.name.clone(),
            title: title.clone(),
            visibility: new.visibility,
            latency_mode: new.latency_mode,
            ladder: new.ladder.clone(),
            recording: new.recording,
            dvr_window_secs: new.dvr_window_secs,
            srt_passphrase,
            reframing: new.reframing.clone(),
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO channels (id, org_id, name, title, visibility, latency_mode, ladder, \
             recording, dvr_window_secs, srt_passphrase, srt_pbkeylen, created_at, updated_at, \
             realtime, p2p, reframe, reframe_subject, highlights, highlight_sensitivity) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19)",
        )
        .bind(&ch.id)
        .bind(&ch.org_id)
        .bind(&ch.name)
        .bind(&ch.title)
        .bind(ch.visibility.as_str())
        .bind(ch.latency_mode.columns().0)
        .bind(&ch.ladder)
        .bind(i64::from(ch.recording))
        .bind(ch.dvr_window_secs)
        .bind(srt_passphrase_column(&ch))
        .bind(srt_pbkeylen_column(&ch))
        .bind(now)
        .bind(now)
        .bind(ch.latency_mode.columns().1)
        .bind(ch.latency_mode.columns().2)
        .bind(i64::from(ch.reframing.reframe))
        .bind(&ch.reframing.subject)
        .bind(i64::from(ch.reframing.highlights))
        .bind(ch.reframing.sensitivity)
        .execute(self.pool())
        .await
        .map_err(conflict("name"))?;
        Ok(ch)
    }

    async fn channel_row(&self, id: &str) -> Result<Option<Channel>> {
        let sql = concat!("SELECT ", cols!(), " FROM channels WHERE id = $1");
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A channel of the caller's organisation by id.
    pub async fn get_channel(&self, p: &Principal, id: &str) -> Result<Channel> {
        let ch = self
            .channel_row(id)
            .await?
            .ok_or_else(|| ControlError::not_found("channel"))?;
        check(p, Action::ReadChannels, &ch.org_id, "channel")?;
        Ok(ch)
    }

    /// A channel the caller may watch (obtain playback tokens for): viewers, too, may
    /// use this where [`get_channel`](Self::get_channel) is for managers.
    pub async fn channel_for_watch(&self, p: &Principal, id: &str) -> Result<Channel> {
        let ch = self
            .channel_row(id)
            .await?
            .ok_or_else(|| ControlError::not_found("channel"))?;
        check(p, Action::Watch, &ch.org_id, "channel")?;
        Ok(ch)
    }

    /// The caller's organisation's channels, by name, `limit` from `offset`.
    pub async fn list_channels(
        &self,
        p: &Principal,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Channel>> {
        check(p, Action::ReadChannels, &p.org_id, "channel")?;
        validate::range("limit", limit, 1, 1000)?;
        validate::range("offset", offset, 0, i64::MAX)?;
        let sql = concat!(
            "SELECT ",
            cols!(),
            " FROM channels WHERE org_id = $1 ORDER BY name LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(sql)
            .bind(&p.org_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Changes a channel of the caller's organisation.
    pub async fn update_channel(
        &self,
        p: &Principal,
        id: &str,
        update: &ChannelUpdate,
        now: UnixMs,
    ) -> Result<Channel> {
        let mut ch = self.get_channel(p, id).await?;
        check(p, Action::ManageChannels, &ch.org_id, "channel")?;
        if let Some(t) = &update.title {
            validate::display_text("title", t, validate::TITLE_MAX)?;
            ch.title = t.clone();
        }
        if let Some(l) = &update.ladder {
            ladder(l)?;
            ch.ladder = l.clone();
        }
        if let Some(d) = update.dvr_window_secs {
            validate::range("dvr_window_secs", d, 0, DVR_WINDOW_MAX_SECS)?;
            ch.dvr_window_secs = d;
        }
        ch.srt_passphrase = srt_setting(
            ch.srt_passphrase.as_ref(),
            update.srt_passphrase.as_ref().map(Option::as_ref),
            update.srt_pbkeylen,
        )?;
        ch.visibility = update.visibility.unwrap_or(ch.visibility);
        ch.latency_mode = update.latency_mode.unwrap_or(ch.latency_mode);
        ch.recording = update.recording.unwrap_or(ch.recording);
        let r = &mut ch.reframing;
        r.reframe = update.reframe.unwrap_or(r.reframe);
        r.highlights = update.highlights.unwrap_or(r.highlights);
        if let Some(s) = &update.reframe_subject {
            r.subject = s.clone();
        }
        r.sensitivity = update.highlight_sensitivity.unwrap_or(r.sensitivity);
        reframing(r)?;
        ch.updated_at = now;
        sqlx::query(
            "UPDATE channels SET title = $1, visibility = $2, latency_mode = $3, ladder = $4, \
             recording = $5, dvr_window_secs = $6, srt_passphrase = $7, srt_pbkeylen = $8, \
             updated_at = $9, realtime = $12, p2p = $13, reframe = $14, reframe_subject = $15, \
             highlights = $16, highlight_sensitivity = $17 WHERE id = $10 AND org_id = $11",
        )
        .bind(&ch.title)
        .bind(ch.visibility.as_str())
        .bind(ch.latency_mode.columns().0)
        .bind(&ch.ladder)
        .bind(i64::from(ch.recording))
        .bind(ch.dvr_window_secs)
        .bind(srt_passphrase_column(&ch))
        .bind(srt_pbkeylen_column(&ch))
        .bind(now)
        .bind(&ch.id)
        .bind(&ch.org_id)
        .bind(ch.latency_mode.columns().1)
        .bind(ch.latency_mode.columns().2)
        .bind(i64::from(ch.reframing.reframe))
        .bind(&ch.reframing.subject)
        .bind(i64::from(ch.reframing.highlights))
        .bind(ch.reframing.sensitivity)
        .execute(self.pool())
        .await?;
        Ok(ch)
    }

    /// Deletes a channel and its stream keys (devices stay, unassigned).
    pub async fn delete_channel(&self, p: &Principal, id: &str) -> Result<()> {
        let ch = self.get_channel(p, id).await?;
        check(p, Action::ManageChannels, &ch.org_id, "channel")?;
        sqlx::query("DELETE FROM channels WHERE id = $1 AND org_id = $2")
            .bind(&ch.id)
            .bind(&ch.org_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A channel by URL name, for the origin and ingest (no principal: the caller decides
    /// what to do with `visibility`). Invalid names are simply not found.
    pub async fn channel_by_name(&self, name: &str) -> Result<Option<Channel>> {
        if validate::channel_name(name).is_err() {
            return Ok(None);
        }
        let sql = concat!("SELECT ", cols!(), " FROM channels WHERE name = $1");
        let row = sqlx::query(sql)
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }
}
