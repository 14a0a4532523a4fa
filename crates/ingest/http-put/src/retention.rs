//! Retention of `pushed/`: a sweep, off the live path, that deletes pushed objects older
//! than `PushConfig::retention` from the store and from memory, the way the origin's
//! sweep (`starling_origin::Origin::sweep`) keeps `media/`: over what the store holds
//! (a listing of `pushed/CHANNEL/` and its directories), not only over what this process
//! remembers, soon after start-up and then every [`SWEEP_EVERY`].
//!
//! - **Age.** The [`ObjectStore`](starling_store::ObjectStore) trait has no last-modified
//!   time, so an object's age is counted from its PUT as this process recorded it
//!   ([`Ages`]). An object this process did not take (pushed before a restart) is
//!   counted from when this process started: after a restart, old objects stay one more
//!   retention at most, never less. This assumes one node takes the pushes of a channel
//!   into its store prefix.
//! - **Never swept:** an object a playlist in memory names, and those playlists
//!   themselves while the channel is live (a PUT in the last
//!   [`LIVE_WINDOW`](crate::LIVE_WINDOW)). A long stream's `init.mp4`, uploaded once, stays.
//! - **Only `pushed/CHANNEL/`:** every key is built from a [`PushPath`] the checks took.
//! - A delete the store refuses is counted (`starling_put_retention_failures_total`) and
//!   tried again by the next sweep; nothing is retried in between.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{atomic::Ordering, Arc},
    time::{Duration, SystemTime},
};

use starling_store::StoreError;
use starling_sync::lock;
use tokio::task::JoinHandle;

use crate::{
    check::{playlist_references, Kind, PushPath, PUSHED_PREFIX},
    edge::{numbered, Series},
    ingest::PushIngest,
    writer::{Done, Op},
    LIVE_WINDOW,
};

/// How often the sweep runs (and once right after start-up's `discover`).
pub const SWEEP_EVERY: Duration = Duration::from_secs(300);
/// Names listed per directory and sweep, at most (sorted: for numbered names the oldest
/// come first; the rest wait for the next sweep).
const MAX_LISTED: usize = 100_000;
/// A run of a series' PUT times spans at most this long: an object's recorded age is
/// at most this much younger than its true age (it then goes at most this much late).
const RUN_SPAN: Duration = Duration::from_secs(60);
/// Runs kept per series, names of no series kept per channel, series per channel: past
/// them the oldest records are forgotten, and what they covered is counted as if it
/// had been pushed at the newest forgotten time (later, never earlier, than true).
const MAX_RUNS: usize = 16_384;
const MAX_NAMED: usize = 65_536;
const MAX_SERIES: usize = 4_096;

/// Numbers `first..=last` of a series, all pushed at or before `until`.
#[derive(Debug, Clone, Copy)]
struct Run {
    first: u64,
    last: u64,
    since: SystemTime,
    until: SystemTime,
}

/// When each object of one channel was pushed, in memory bounded by time rather than by
/// objects: a numbered series (`index1765000123.m4s`) is kept as runs of rising numbers
/// of at most [`RUN_SPAN`] each (a week of one-second segments is some ten thousand
/// runs, not six hundred thousand names); other names one by one.
#[derive(Debug)]
pub(crate) struct Ages {
    series: HashMap<Series, VecDeque<Run>>,
    named: HashMap<String, SystemTime>,
    /// Insertion order of `named`, with stale entries skipped (and compacted).
    named_order: VecDeque<(SystemTime, String)>,
    /// The age of an object with no record: the process start, or later when records
    /// were forgotten.
    unrecorded_since: SystemTime,
    /// The newest PUT: the channel is live while it is recent.
    pub(crate) last_put: Option<SystemTime>,
}

impl Ages {
    pub(crate) fn new(started: SystemTime) -> Self {
        Self {
            series: HashMap::new(),
            named: HashMap::new(),
            named_order: VecDeque::new(),
            unrecorded_since: started,
            last_put: None,
        }
    }

    fn forget(&mut self, at: SystemTime) {
        self.unrecorded_since = self.unrecorded_since.max(at);
    }

    /// `path` was pushed at `at`.
    pub(crate) fn record(&mut self, path: &PushPath, at: SystemTime) {
        self.last_put = Some(self.last_put.map_or(at, |t| t.max(at)));
        if let Some((series, n)) = numbered(path).and_then(|n| Some((n.series, n.number?))) {
            if self.series.len() < MAX_SERIES || self.series.contains_key(&series) {
                let runs = self.series.entry(series).or_default();
                match runs.back_mut() {
                    Some(r)
                        if n > r.last
                            && at >= r.until
                            && at.duration_since(r.since).unwrap_or_default() < RUN_SPAN =>
                    {
                        r.last = n;
                        r.until = at;
                    }
                    _ => runs.push_back(Run {
                        first: n,
                        last: n,
                        since: at,
                        until: at,
                    }),
                }
                if runs.len() > MAX_RUNS {
                    if let Some(r) = runs.pop_front() {
                        self.forget(r.until);
                    }
                }
                return;
            }
        }
        self.named.insert(path.as_str().to_owned(), at);
        self.named_order.push_back((at, path.as_str().to_owned()));
        while self.named.len() > MAX_NAMED {
            let Some((t, name)) = self.named_order.pop_front() else {
                break;
            };
            if self.named.get(&name) == Some(&t) {
                self.named.remove(&name);
                self.forget(t);
            }
        }
        // Replaced playlists leave stale entries behind; keep the queue near the map.
        if self.named_order.len() > 2 * self.named.len() + 1024 {
            let named = &self.named;
            self.named_order.retain(|(t, n)| named.get(n) == Some(t));
        }
    }

    /// When `path` was pushed, as far as is known: never earlier than true.
    pub(crate) fn pushed_at(&self, path: &PushPath) -> SystemTime {
        if let Some(t) = self.named.get(path.as_str()) {
            return *t;
        }
        let numbered_at = numbered(path).and_then(|n| {
            let number = n.number?;
            self.series
                .get(&n.series)?
                .iter()
                .filter(|r| (r.first..=r.last).contains(&number))
                .map(|r| r.until)
                .max()
        });
        numbered_at.unwrap_or(self.unrecorded_since)
    }

    /// The record of a name deleted by the sweep at the time it had, if unchanged (a PUT
    /// of the same name since is kept).
    fn deleted(&mut self, path: &PushPath, at: SystemTime) {
        if self.named.get(path.as_str()) == Some(&at) {
            self.named.remove(path.as_str());
        }
    }

    /// Drops the runs whose every object is older than `cutoff` (they were just swept).
    fn prune(&mut self, cutoff: SystemTime) {
        for runs in self.series.values_mut() {
            while runs.front().is_some_and(|r| r.until < cutoff) {
                runs.pop_front();
            }
        }
        self.series.retain(|_, runs| !runs.is_empty());
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Channels looked at.
    pub channels: usize,
    /// Objects deleted from the store (and memory).
    pub deleted: u64,
    /// Deletes or listings the store refused; tried again by the next sweep.
    pub failed: u64,
    /// Objects past retention kept because a playlist in memory names them (or they are
    /// the playlists of a live channel).
    pub kept_named: u64,
}

impl PushIngest {
    /// Deletes, from the store and from memory, the pushed objects of every channel
    /// older than [`PushConfig::retention`](crate::PushConfig::retention) at `now`, but
    /// none that a playlist in memory names (see the module docs). Does nothing when
    /// retention is off. Logs one line and counts in `starling_put_retention_*`.
    pub async fn sweep(&self, now: SystemTime) -> SweepReport {
        let mut report = SweepReport::default();
        let Some(retention) = self.config().retention else {
            return report;
        };
        let cutoff = now.checked_sub(retention).unwrap_or(SystemTime::UNIX_EPOCH);
        let started = tokio::time::Instant::now();
        for channel in self.sweepable_channels() {
            report.channels += 1;
            match self.sweep_channel(&channel, now, cutoff).await {
                Ok((deleted, failed, kept)) => {
                    report.deleted += deleted;
                    report.failed += failed;
                    report.kept_named += kept;
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(channel, error = %e, "put retention: the store could not be listed; the next sweep tries again");
                }
            }
        }
        self.retention_deleted
            .fetch_add(report.deleted, Ordering::Relaxed);
        self.retention_failures
            .fetch_add(report.failed, Ordering::Relaxed);
        tracing::info!(
            channels = report.channels,
            deleted = report.deleted,
            failed = report.failed,
            kept_named = report.kept_named,
            retention_hours = retention.as_secs() / 3600,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "put retention: swept pushed/"
        );
        report
    }

    /// Sweeps soon after start-up (call it once `discover` has run), then every
    /// [`SWEEP_EVERY`], until the ingest is dropped. `None` when retention is off. Must
    /// be called from a Tokio runtime.
    pub fn start_retention(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        self.config().retention?;
        // Weak: a dropped ingest (a test's "restart") stops sweeping.
        let me = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            loop {
                let Some(ingest) = me.upgrade() else {
                    break;
                };
                ingest.sweep(SystemTime::now()).await;
                drop(ingest);
                tokio::time::sleep(SWEEP_EVERY).await;
            }
        }))
    }

    /// Returns (deleted, failed, kept because named) for one channel.
    async fn sweep_channel(
        &self,
        channel: &str,
        now: SystemTime,
        cutoff: SystemTime,
    ) -> Result<(u64, u64, u64), StoreError> {
        let mut candidates = self.list_pushed(channel).await?;
        let limit = self.config().max_playlist_bytes;
        // Decided under the lock a PUT records its time under, so that a name pushed
        // again meanwhile is seen as new (and a PUT after the decision is ordered after
        // the delete by the writer, so it stays).
        let mut doomed = Vec::new();
        let mut kept = 0;
        {
            let mut chs = lock(&self.channels);
            let chs = &mut *chs;
            let ages = chs
                .ages
                .entry(channel.to_owned())
                .or_insert_with(|| Ages::new(self.started));
            let live = ages
                .last_put
                .is_some_and(|t| now.duration_since(t).unwrap_or_default() < LIVE_WINDOW);
            let expired = |p: &PushPath| ages.pushed_at(p) < cutoff;
            let mut protected = HashSet::new();
            if let Some(w) = chs.windows.get(channel) {
                for (name, held) in &w.objects {
                    let Ok(path) = PushPath::parse(name) else {
                        continue;
                    };
                    candidates.insert(path.clone());
                    if held.kind != Kind::Playlist || (!live && expired(&path)) {
                        continue;
                    }
                    if let Ok(refs) = playlist_references(&held.body, &path, limit) {
                        protected.extend(refs);
                    }
                    protected.insert(path);
                }
            }
            for path in candidates {
                if !expired(&path) {
                    continue;
                }
                if protected.contains(&path) {
                    kept += 1;
                    continue;
                }
                doomed.push((ages.pushed_at(&path), path));
            }
            if let Some(w) = chs.windows.get_mut(channel) {
                for (_, path) in &doomed {
                    w.forget(path.as_str());
                }
            }
        }
        // Scheduled after the lock: the writer orders them with any PUT of the same key.
        let handles: Vec<_> = doomed
            .into_iter()
            .map(|(at, path)| {
                let h = self.writer.schedule(path.store_key(channel), Op::Expire);
                (at, path, h)
            })
            .collect();
        let (mut deleted, mut failed) = (0, 0);
        let mut gone = Vec::new();
        for (at, path, h) in handles {
            match h.await {
                Ok(Done::Ok) => {
                    deleted += 1;
                    gone.push((at, path));
                }
                // Pushed again meanwhile: the new object stays.
                Ok(Done::Superseded) => {}
                Ok(Done::Failed) | Err(_) => failed += 1,
            }
        }
        let mut chs = lock(&self.channels);
        if let Some(ages) = chs.ages.get_mut(channel) {
            for (at, path) in gone {
                ages.deleted(&path, at);
            }
            // A run whose objects failed to go is kept, so the next sweep knows them.
            if failed == 0 {
                ages.prune(cutoff);
            }
        }
        Ok((deleted, failed, kept))
    }

    /// Every pushable object the store holds for `channel`: `pushed/CHANNEL/FILE` and
    /// `pushed/CHANNEL/DIR/FILE` (at most [`MAX_LISTED`] names per directory).
    async fn list_pushed(&self, channel: &str) -> Result<HashSet<PushPath>, StoreError> {
        let store = self.writer.store();
        let mut found = HashSet::new();
        for name in store
            .children(&format!("{PUSHED_PREFIX}/{channel}"), MAX_LISTED)
            .await?
        {
            if let Ok(path) = PushPath::parse(&name) {
                found.insert(path);
                continue;
            }
            // A name that could be a directory of pushed objects.
            if PushPath::parse(&format!("{name}/x.ts")).is_err() {
                continue;
            }
            for file in store
                .children(&format!("{PUSHED_PREFIX}/{channel}/{name}"), MAX_LISTED)
                .await?
            {
                if let Ok(path) = PushPath::parse(&format!("{name}/{file}")) {
                    found.insert(path);
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
