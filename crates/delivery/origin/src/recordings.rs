//! Recordings: every run a channel left in the store, listed, played back as VOD and
//! deleted, read from the store alone. Memory is consulted for one thing only, whether
//! a run is live here, so a node that just restarted, or another node sharing the
//! bucket, lists and plays the same recordings.
//!
//! A run is found by its description (`media/CHANNEL/runs/RUN.txt`, see `history`); its
//! duration and size come from its index chunks (the store's listing gives no sizes),
//! plus its init sections. A run spans all the sessions its description lists
//! (reconnects within the grace); deleting it deletes every one of them, and the
//! retention sweep takes it whole too (see `sweep`). The run file of the channel's last
//! run (`media/CHANNEL/run.txt`) is read too, so that a last run written before
//! descriptions existed is still listed.
//!
//! Everything read is bounded: runs listed per call, descriptions looked at, index
//! chunks and init sections read per rendition. Objects come from a bucket other nodes
//! write to: one that does not parse is that run's error, never the listing's.

use std::sync::Arc;

use tracing::info;

use crate::{
    history::{
        chunk_key, description_key, run_key, HistoryError, RunRecord, SegmentRecord, CHUNK,
        RUNS_DIR,
    },
    live::{init_key, lock, session_name, Origin, Recording},
    restore::MAX_CHUNKS,
    session::{parse_session, session_start},
    store::StoreError,
};

/// Runs listed per call, at most.
pub const MAX_LISTED: usize = 100;
/// Run descriptions looked at per listing (the newest `MAX_LISTED` of them are read).
const MAX_DESCRIPTIONS: usize = 10_000;
/// Init sections read per rendition for a run's size (a codec change adds one).
const MAX_INITS: usize = 64;

/// Why a recording could not be listed, played or deleted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// No description of that run (never recorded, deleted, or swept), or a malformed
    /// channel name.
    #[error("channel {channel} has no recording {run}")]
    NotFound { channel: String, run: String },
    /// The run is live, or in its reconnect grace, on this node.
    #[error("recording {run} of channel {channel} is live (or waiting for its encoder to reconnect); it can be deleted once it has ended")]
    Live { channel: String, run: String },
    /// The run ended but some of its segments are still on their way to the store.
    #[error("recording {run} of channel {channel} is still being written to the store; try again in a few seconds")]
    StillWriting { channel: String, run: String },
    /// Its description or an index chunk is in the store but cannot be read back.
    #[error("recording {run}: {key} cannot be read: {source}")]
    Unreadable {
        run: String,
        key: String,
        #[source]
        source: HistoryError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RecordingError {
    /// The run it is about, when it is about one.
    pub fn run(&self) -> Option<&str> {
        match self {
            Self::NotFound { run, .. }
            | Self::Live { run, .. }
            | Self::StillWriting { run, .. }
            | Self::Unreadable { run, .. } => Some(run),
            Self::Store(_) => None,
        }
    }
}

/// A channel's recordings, newest first: each one, or why it could not be read.
#[derive(Debug)]
pub struct RecordingList {
    pub recordings: Vec<Result<Recording, RecordingError>>,
    /// More (older) runs are in the store than were listed.
    pub truncated: bool,
}

/// A run read back for its VOD playlists: its description and, for each of its
/// renditions (same order), the index of its stored segments.
#[derive(Debug)]
pub(crate) struct StoredRun {
    pub record: RunRecord,
    pub segments: Vec<Vec<SegmentRecord>>,
}

impl Origin {
    /// `channel`'s recordings in the store, newest first: `limit` of them (at most
    /// [`MAX_LISTED`]) after the `offset` newest. A run whose history cannot be read is
    /// listed as its error.
    pub async fn recordings(
        self: &Arc<Self>,
        channel: &str,
        offset: usize,
        limit: usize,
    ) -> Result<RecordingList, RecordingError> {
        if !crate::http::valid_name(channel, 64) {
            return Ok(RecordingList {
                recordings: Vec::new(),
                truncated: false,
            });
        }
        let mut runs: Vec<u64> = self
            .store
            .children(&format!("media/{channel}/{RUNS_DIR}"), MAX_DESCRIPTIONS)
            .await?
            .iter()
            .filter_map(|n| n.strip_suffix(".txt").and_then(parse_session))
            .collect();
        // The last run from before run descriptions existed.
        if let Some(last) = self.last_run(channel).await {
            if !runs.contains(&last) {
                runs.push(last);
            }
        }
        runs.sort_unstable_by(|a, b| b.cmp(a));
        let limit = limit.clamp(1, MAX_LISTED);
        let truncated = runs.len() > offset.saturating_add(limit);
        let mut recordings = Vec::new();
        for run in runs.into_iter().skip(offset).take(limit) {
            recordings.push(self.summarise(channel, run).await);
        }
        Ok(RecordingList {
            recordings,
            truncated,
        })
    }

    async fn summarise(&self, channel: &str, run: u64) -> Result<Recording, RecordingError> {
        let record = self.description(channel, run).await?;
        let mut rec = Recording {
            session: session_name(run),
            sessions: record.sessions.iter().map(|s| session_name(*s)).collect(),
            prefix: format!("media/{channel}/{}/", session_name(run)),
            segments: 0,
            duration_secs: 0.0,
            bytes: 0,
            started_at: session_start(run),
            renditions: Vec::new(),
            live: self.is_live_run(channel, run),
        };
        for r in &record.renditions {
            let name = r.info.name;
            let (mut count, mut secs) = (0, 0.0);
            let mut chunks = IndexChunks::new(channel, run, name, r.first_msn);
            while let Some(segments) = chunks.next(self).await? {
                count += segments.len();
                secs += segments.iter().map(|s| s.duration).sum::<f64>();
                rec.bytes += segments.iter().map(|s| s.bytes).sum::<u64>();
            }
            // Init versions of earlier runs stay listed (numbering goes on); they are
            // theirs, not this run's.
            let inits = r.inits.iter().enumerate().take(MAX_INITS);
            for (v, session) in inits.filter(|(_, s)| record.sessions.contains(s)) {
                if let Some(init) = self
                    .store
                    .get(&init_key(channel, *session, name, v))
                    .await?
                {
                    rec.bytes += init.len() as u64;
                }
            }
            if count > 0 {
                rec.renditions.push(name.to_owned());
            }
            rec.segments += count;
            rec.duration_secs = rec.duration_secs.max(secs);
        }
        Ok(rec)
    }

    /// A run's description and whole index, for its VOD playlists.
    pub(crate) async fn stored_run(
        &self,
        channel: &str,
        run: u64,
    ) -> Result<StoredRun, RecordingError> {
        let record = self.description(channel, run).await?;
        let mut segments = Vec::new();
        for r in &record.renditions {
            let mut all = Vec::new();
            let mut chunks = IndexChunks::new(channel, run, r.info.name, r.first_msn);
            while let Some(mut some) = chunks.next(self).await? {
                // Numbers only go up across chunks, as within one.
                let last = all.last().map(|s: &SegmentRecord| s.msn);
                if last.is_some_and(|l| some.first().is_some_and(|n| n.msn <= l)) {
                    return Err(RecordingError::Unreadable {
                        run: session_name(run),
                        key: chunks.last_key.clone(),
                        source: HistoryError::Line {
                            line: 2,
                            reason: "segment numbers out of order",
                        },
                    });
                }
                all.append(&mut some);
            }
            segments.push(all);
        }
        Ok(StoredRun { record, segments })
    }

    /// Deletes recording `run` of `channel`: every session it lists (segments, init
    /// sections, its index) and its description; the channel's run file too when it
    /// names this run, so that a restart does not bring it back. Refused while the run
    /// is live or in its grace here. A run this node holds in memory (ended) is
    /// forgotten first, so its playlists stop listing it.
    pub async fn delete_recording(
        self: &Arc<Self>,
        channel: &str,
        run: u64,
    ) -> Result<(), RecordingError> {
        let not_found = || RecordingError::NotFound {
            channel: channel.to_owned(),
            run: session_name(run),
        };
        // A description that does not parse still names its first session: that much
        // goes (the key is what proves the run exists).
        let sessions = match self.description(channel, run).await {
            Ok(record) => record.sessions,
            Err(RecordingError::Unreadable { .. }) => vec![run],
            Err(e) => return Err(e),
        };
        if !sessions.contains(&run) {
            return Err(not_found());
        }
        let in_memory = self.forget_run(channel, run)?;
        let mut deleted = 0;
        for session in sessions.iter().filter(|s| !in_memory.contains(s)) {
            self.store
                .delete_prefix(&format!("media/{channel}/{}", session_name(*session)))
                .await?;
            deleted += 1;
        }
        self.store.delete(&description_key(channel, run)).await?;
        if self.last_run(channel).await == Some(run) {
            self.store.delete(&run_key(channel)).await?;
        }
        self.metrics
            .store_deletes
            .fetch_add(deleted, std::sync::atomic::Ordering::Relaxed);
        info!(channel, run = %session_name(run), sessions = deleted, "origin: recording deleted");
        Ok(())
    }

    /// Whether `run` is the channel's run in memory here, live or in its grace.
    pub(crate) fn is_live_run(&self, channel: &str, run: u64) -> bool {
        self.channel(channel).is_some_and(|ch| {
            let st = lock(&ch.inner);
            st.run.first() == Some(&run) && !st.ended
        })
    }

    /// Before `run` is deleted: refuses a live run (or one still being written), and
    /// drops an ended one from this node's memory, as a new run would (its playlists
    /// then list nothing). Returns the sessions of the run in memory now, which a
    /// deletion must never touch (a description from the bucket could name them).
    fn forget_run(&self, channel: &str, run: u64) -> Result<Vec<u64>, RecordingError> {
        let Some(ch) = self.channel(channel) else {
            return Ok(Vec::new());
        };
        let wakes = {
            let mut st = lock(&ch.inner);
            if st.run.first() != Some(&run) {
                return Ok(st.run.clone());
            }
            let names = || (channel.to_owned(), session_name(run));
            if !st.ended {
                let (channel, run) = names();
                return Err(RecordingError::Live { channel, run });
            }
            let unstored = st.renditions.iter().any(|r| {
                r.segments
                    .iter()
                    .any(|s| s.complete && !s.gap && !s.stored && !s.write_failed)
            });
            if unstored {
                let (channel, run) = names();
                return Err(RecordingError::StillWriting { channel, run });
            }
            st.run.clear();
            st.periods.reset();
            for r in &mut st.renditions {
                if let Some(last) = r.segments.back() {
                    r.evicted_below = last.msn + 1;
                }
                r.segments.clear();
                r.history_from = None;
                r.history.clear();
                r.discontinuity_sequence = 0;
                r.total_bytes = 0;
                r.total_secs = 0.0;
                r.peak_bps = 0.0;
                r.feed.touch();
            }
            crate::wake::Wakes::collect(&mut st, true)
        };
        wakes.send();
        Ok(Vec::new())
    }

    /// The run the channel's run file names, if it has a readable one.
    async fn last_run(&self, channel: &str) -> Option<u64> {
        let bytes = self.store.get(&run_key(channel)).await.ok()??;
        RunRecord::parse(&bytes).ok()?.sessions.first().copied()
    }

    /// `run`'s description: its own, else the run file when that names it (a run
    /// recorded before descriptions existed).
    async fn description(&self, channel: &str, run: u64) -> Result<RunRecord, RecordingError> {
        let not_found = || RecordingError::NotFound {
            channel: channel.to_owned(),
            run: session_name(run),
        };
        if !crate::http::valid_name(channel, 64) {
            return Err(not_found());
        }
        let key = description_key(channel, run);
        let (key, bytes) = match self.store.get(&key).await? {
            Some(b) => (key, b),
            None => {
                let key = run_key(channel);
                match self.store.get(&key).await? {
                    Some(b) => (key, b),
                    None => return Err(not_found()),
                }
            }
        };
        let record = RunRecord::parse(&bytes).map_err(|source| RecordingError::Unreadable {
            run: session_name(run),
            key: key.clone(),
            source,
        })?;
        match record.sessions.first() {
            Some(first) if *first == run => Ok(record),
            // The run file names another run; a description that names another run
            // was written by something else than this origin.
            _ if key == run_key(channel) => Err(not_found()),
            _ => Err(RecordingError::Unreadable {
                run: session_name(run),
                key,
                source: HistoryError::Line {
                    line: 2,
                    reason: "describes another run",
                },
            }),
        }
    }
}

/// A rendition's index chunks in order, read one at a time until one is missing (or
/// [`MAX_CHUNKS`] were read).
struct IndexChunks<'a> {
    channel: &'a str,
    run: u64,
    rendition: &'a str,
    next: u64,
    end: u64,
    last_key: String,
}

impl<'a> IndexChunks<'a> {
    fn new(channel: &'a str, run: u64, rendition: &'a str, first_msn: Option<u64>) -> Self {
        let next = first_msn.map_or(0, |m| m / CHUNK);
        Self {
            channel,
            run,
            rendition,
            next,
            // No index at all without a first segment.
            end: if first_msn.is_some() {
                next.saturating_add(MAX_CHUNKS)
            } else {
                next
            },
            last_key: String::new(),
        }
    }

    async fn next(
        &mut self,
        origin: &Origin,
    ) -> Result<Option<Vec<SegmentRecord>>, RecordingError> {
        if self.next >= self.end {
            return Ok(None);
        }
        let key = chunk_key(self.channel, self.run, self.rendition, self.next);
        self.next += 1;
        let Some(bytes) = origin.store.get(&key).await? else {
            self.end = self.next;
            return Ok(None);
        };
        let parsed = SegmentRecord::parse_chunk(&bytes);
        self.last_key = key;
        parsed
            .map(Some)
            .map_err(|source| RecordingError::Unreadable {
                run: session_name(self.run),
                key: self.last_key.clone(),
                source,
            })
    }
}
