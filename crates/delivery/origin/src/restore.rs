//! Keeping each channel's history in the store (`history` has the format) and reading
//! it back after a restart or a `kill -9`: the last run's playlists come back as they
//! were when the node stopped, closed with ENDLIST, so the run plays back as VOD and a
//! channel that does not record can still have its old window deleted by its next run.
//!
//! History writes go through one coalescing queue: the newest content per key wins and
//! one key is never written twice at once, so a slow store can delay history but never
//! reorder it; nothing on the live path waits for it. A graceful shutdown waits for the
//! queue like it waits for segment writes.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{atomic::Ordering, Arc, Mutex},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::{
    history::{
        chunk_key, description_key, run_key, RenditionRecord, RunRecord, SegmentRecord, CHUNK,
    },
    live::{
        init_key, lock, Channel, ChannelInner, ChannelSettings, Origin, PartEntry, PlaylistKind,
        Rendition, Segment,
    },
    wake::Wakes,
    write::WRITE_RETRIES,
};

/// Names remembered as restored (or as having no history); past this the set starts over
/// (a name then costs one more store read).
const MAX_REMEMBERED: usize = 100_000;
/// Segment index chunks read back per rendition (64 segments each: 2 s segments for
/// about two weeks).
pub(crate) const MAX_CHUNKS: u64 = 10_000;

/// The queue of history writes (`None` deletes the key).
#[derive(Default)]
pub(crate) struct HistoryQueue {
    pending: Mutex<HashMap<String, Option<Bytes>>>,
    wake: Notify,
    started: std::sync::atomic::AtomicBool,
    /// Names already looked up in the store.
    restored: Mutex<HashSet<String>>,
    /// Serialises restores, so that two requests do not both read one channel's history.
    restoring: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for HistoryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryQueue").finish_non_exhaustive()
    }
}

impl Origin {
    fn history_enqueue(self: &Arc<Self>, key: String, value: Option<Bytes>) {
        let q = &self.history;
        if lock(&q.pending).insert(key, value).is_none() {
            self.writes_in_flight.send_modify(|n| *n += 1);
        }
        q.wake.notify_one();
        if !q.started.swap(true, Ordering::AcqRel) {
            let origin = self.clone();
            tokio::spawn(async move { origin.history_writer().await });
        }
    }

    async fn history_writer(self: Arc<Self>) {
        loop {
            let batch = std::mem::take(&mut *lock(&self.history.pending));
            if batch.is_empty() {
                self.history.wake.notified().await;
                continue;
            }
            let mut tasks = tokio::task::JoinSet::new();
            for (key, value) in batch {
                let store = self.store.clone();
                let metrics = self.metrics.clone();
                tasks.spawn(async move {
                    // The same budget as segment writes: the run file is written rarely,
                    // and without it a restart finds nothing.
                    let mut retries = WRITE_RETRIES.iter();
                    loop {
                        let started = std::time::Instant::now();
                        let r = match &value {
                            Some(b) => store.put(&key, vec![b.clone()]).await,
                            None => store.delete(&key).await,
                        };
                        if value.is_some() {
                            metrics.store_write(started.elapsed(), r.is_ok());
                        }
                        match (r, retries.next()) {
                            (Ok(()), _) => break,
                            (Err(e), Some(pause)) => {
                                warn!(error = %e, "origin: history write failed; retrying");
                                tokio::time::sleep(*pause).await;
                            }
                            (Err(e), None) => {
                                warn!(error = %e, "origin: history write failed; a restart may not find this run's newest segments");
                                break;
                            }
                        }
                    }
                });
            }
            while tasks.join_next().await.is_some() {
                self.writes_in_flight.send_modify(|n| *n -= 1);
            }
        }
    }

    /// The run's sessions or renditions changed: rewrite its run file, and the run's
    /// own description beside the other runs' (the same text).
    pub(crate) fn history_run(self: &Arc<Self>, channel: &str, st: &ChannelInner) {
        let Some(&run) = st.run.first() else {
            return;
        };
        let record = RunRecord {
            sessions: st.run.clone(),
            renditions: st
                .renditions
                .iter()
                .map(|r| RenditionRecord {
                    info: r.info.clone(),
                    first_msn: r.history_from,
                    inits: r.inits.iter().map(|(s, _)| *s).collect(),
                })
                .collect(),
        };
        let text = Bytes::from(record.encode());
        self.history_enqueue(description_key(channel, run), Some(text.clone()));
        self.history_enqueue(run_key(channel), Some(text));
    }

    /// A segment is in the store: list it in its index chunk.
    pub(crate) fn history_segment(
        self: &Arc<Self>,
        channel: &str,
        st: &mut ChannelInner,
        rendition: &str,
        msn: u64,
    ) {
        let Some(&run) = st.run.first() else { return };
        let Some(r) = st.rendition_mut(rendition) else {
            return;
        };
        // Its discontinuity number: the discontinuities already out of the window, plus
        // those listed up to it.
        let mut dnum = r.discontinuity_sequence;
        let mut found = None;
        for s in &r.segments {
            dnum += u64::from(s.discontinuity);
            if s.msn == msn && !s.gap {
                found = Some(SegmentRecord {
                    msn,
                    session: s.session,
                    duration: s.duration,
                    discontinuity_number: dnum,
                    init: s.init,
                    bytes: s
                        .parts
                        .iter()
                        .map(|p| p.data.len() as u64)
                        .sum::<u64>()
                        .max(s.data.as_ref().map_or(0, |d| d.len() as u64)),
                    program_date_time: s.program_date_time,
                    discontinuity: s.discontinuity,
                    new_map: s.new_map,
                    not_independent: s.parts.first().is_some_and(|p| !p.independent),
                    media_start: s.media_start,
                    defects: s.defects,
                });
                break;
            }
        }
        let Some(record) = found else { return };
        let chunk = msn / CHUNK;
        r.history.insert(msn, record);
        // Keep the current chunk and the one before (a late write may still finish there).
        let keep_from = chunk.saturating_sub(1) * CHUNK;
        r.history = r.history.split_off(&keep_from);
        let text = SegmentRecord::encode_chunk(
            r.history
                .range(chunk * CHUNK..(chunk + 1) * CHUNK)
                .map(|(_, s)| s),
        );
        let key = chunk_key(channel, run, r.info.name, chunk);
        self.history_enqueue(key, Some(Bytes::from(text)));
    }

    /// Segments below `below` left the window of a channel that does not record: the
    /// index chunks wholly below it go too, and the run file says where the index starts
    /// now (a restore reads chunks from there until one is missing).
    pub(crate) fn history_evicted(
        self: &Arc<Self>,
        channel: &str,
        st: &mut ChannelInner,
        rendition: &str,
    ) {
        let Some(&run) = st.run.first() else { return };
        let Some(r) = st.rendition_mut(rendition) else {
            return;
        };
        let Some(from) = r.history_from else { return };
        let below = r.evicted_below / CHUNK * CHUNK;
        if below <= from {
            return;
        }
        for chunk in from / CHUNK..below / CHUNK {
            self.history_enqueue(chunk_key(channel, run, rendition, chunk), None);
        }
        r.history_from = Some(below);
        self.history_run(channel, st);
    }

    /// A new run replaces the last one of a channel that does not record: its
    /// description goes (its index and segments go at the same time).
    pub(crate) fn history_drop_description(self: &Arc<Self>, channel: &str, run: u64) {
        self.history_enqueue(description_key(channel, run), None);
    }

    /// A new run replaces the last one: its index goes when it does not record (its
    /// segments are deleted at the same time).
    pub(crate) fn history_drop_run(self: &Arc<Self>, channel: &str, run: u64, r: &Rendition) {
        let (Some(first), Some(last)) = (
            r.history_from.or(r.segments.front().map(|s| s.msn)),
            r.segments.back().map(|s| s.msn),
        ) else {
            return;
        };
        for chunk in first / CHUNK..=last / CHUNK {
            self.history_enqueue(chunk_key(channel, run, r.info.name, chunk), None);
        }
    }

    /// Reads `name`'s last run back from the store, once per process, unless the channel
    /// has published here already. Returns the channel if it is known now.
    pub async fn restore(self: &Arc<Self>, name: &str) -> Option<Arc<Channel>> {
        if lock(&self.history.restored).contains(name) {
            return self.channel(name);
        }
        let _one_at_a_time = self.history.restoring.lock().await;
        {
            let mut seen = lock(&self.history.restored);
            if !seen.insert(name.to_owned()) {
                return self.channel(name);
            }
            if seen.len() > MAX_REMEMBERED {
                seen.clear();
            }
        }
        match self.read_history(name).await {
            Ok(Some(renditions)) => self.install(name, renditions),
            Ok(None) => {}
            Err(e) => {
                warn!(channel = %name, error = %e, "origin: the channel's history could not be read back; its last run is not listed")
            }
        }
        self.channel(name)
    }

    async fn read_history(
        &self,
        name: &str,
    ) -> Result<Option<(RunRecord, Vec<Rendition>)>, String> {
        let Some(bytes) = self
            .store
            .get(&run_key(name))
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let run = RunRecord::parse(&bytes).map_err(|e| e.to_string())?;
        let Some(&run_id) = run.sessions.first() else {
            return Ok(None);
        };
        let settings = self
            .channel(name)
            .map(|c| lock(&c.pending).unwrap_or(lock(&c.inner).settings))
            .unwrap_or_else(|| ChannelSettings::defaults(&self.config));
        let mut renditions = Vec::new();
        for rec in &run.renditions {
            let mut inits = Vec::new();
            for (v, session) in rec.inits.iter().enumerate() {
                let key = init_key(name, *session, rec.info.name, v);
                let init = self.store.get(&key).await.map_err(|e| e.to_string())?;
                inits.push((*session, init.unwrap_or_default()));
            }
            let mut records = Vec::new();
            if let Some(first) = rec.first_msn {
                for chunk in first / CHUNK..first / CHUNK + MAX_CHUNKS {
                    let key = chunk_key(name, run_id, rec.info.name, chunk);
                    match self.store.get(&key).await.map_err(|e| e.to_string())? {
                        Some(b) => records.extend(
                            SegmentRecord::parse_chunk(&b).map_err(|e| format!("{key}: {e}"))?,
                        ),
                        None => break,
                    }
                }
            }
            renditions.push(self.rebuild(rec, inits, records, settings));
        }
        Ok(Some((run, renditions)))
    }

    fn rebuild(
        &self,
        rec: &RenditionRecord,
        inits: Vec<(u64, Bytes)>,
        mut records: Vec<SegmentRecord>,
        settings: ChannelSettings,
    ) -> Rendition {
        // A channel that does not record keeps only its DVR window.
        if !settings.record && self.config.playlist == PlaylistKind::Sliding {
            let window = settings
                .dvr_window
                .max(self.config.segment_duration * 6)
                .as_secs_f64();
            let mut kept = 0.0;
            let mut start = records.len();
            while start > 0 && kept < window {
                start -= 1;
                kept += records[start].duration;
            }
            records.drain(..start);
        }
        let target = self.config.packager().target_duration();
        let first = records.first();
        let mut r = Rendition::new(rec.info.clone(), inits, target);
        r.history_from = rec.first_msn;
        r.discontinuity_sequence =
            first.map_or(0, |s| s.discontinuity_number - u64::from(s.discontinuity));
        r.evicted_below = first.map_or(0, |s| s.msn);
        let nominal = self.config.segment_duration.as_secs_f64();
        let mut segments: VecDeque<Segment> = VecDeque::new();
        for s in records {
            // Numbers a rendition skipped were gap segments (never stored): list them
            // again so that numbers stay consecutive.
            if let Some(prev) = segments.back() {
                let (from, session, init) = (prev.msn + 1, prev.session, prev.init);
                for msn in from..s.msn.min(from + 256) {
                    segments.push_back(Segment::restored_gap(
                        session,
                        msn,
                        init,
                        nominal.min(f64::from(target)),
                    ));
                }
            }
            r.total_bytes += s.bytes;
            r.total_secs += s.duration;
            if s.duration > 0.0 {
                r.peak_bps = r.peak_bps.max(s.bytes as f64 * 8.0 / s.duration);
            }
            segments.push_back(Segment::restored(&s));
        }
        r.segments = segments;
        r
    }

    fn install(self: &Arc<Self>, name: &str, (run, renditions): (RunRecord, Vec<Rendition>)) {
        let ch = lock(&self.channels)
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Channel::new(name, ChannelSettings::defaults(&self.config)))
            })
            .clone();
        let wakes = {
            let mut st = lock(&ch.inner);
            // A publish that began meanwhile has its own run: the old one stays in the store.
            if st.live || !st.run.is_empty() || !st.renditions.is_empty() {
                return;
            }
            let segments: usize = renditions.iter().map(|r| r.segments.len()).sum();
            st.session = *run.sessions.last().unwrap_or(&0);
            st.run = run.sessions;
            st.renditions = renditions;
            st.ended = true;
            info!(channel = %name, sessions = st.run.len(), segments, "origin: the channel's last run was read back from the store");
            ch.register_feeds(&st);
            Wakes::collect(&mut st, true)
        };
        wakes.send();
    }
}

impl Segment {
    fn restored(s: &SegmentRecord) -> Self {
        Segment {
            session: s.session,
            msn: s.msn,
            init: s.init,
            discontinuity: s.discontinuity,
            new_map: s.new_map,
            program_date_time: s.program_date_time,
            media_start: s.media_start,
            // Parts are not kept across a restart; one empty entry carries whether the
            // segment starts independently (INDEPENDENT-SEGMENTS) and answers a request
            // for a part with 410 (fetch the whole segment).
            parts: vec![PartEntry {
                duration: s.duration,
                independent: !s.not_independent,
                data: Bytes::new(),
                // Unknown: a request for the part is a 410 (fetch the whole segment).
                len: 0,
                sha256: None,
            }],
            complete: true,
            duration: s.duration,
            data: None,
            stored: true,
            write_failed: false,
            // Not in the index: a restored segment is not in the piece list (P2P
            // viewers fetch it from the edge).
            sha256: None,
            completed_at: s
                .program_date_time
                .map(|t| t + Duration::from_secs_f64(s.duration))
                .or(Some(SystemTime::UNIX_EPOCH)),
            defects: s.defects,
            gap: false,
        }
    }

    fn restored_gap(session: u64, msn: u64, init: usize, duration: f64) -> Self {
        Segment {
            complete: true,
            duration,
            stored: true,
            completed_at: Some(SystemTime::UNIX_EPOCH),
            gap: true,
            ..Segment::new(session, msn, init)
        }
    }
}
