//! Applying the packagers' output (the source's and the ladder's rungs') to a channel's
//! live state: renditions, parts, segments, gaps, DASH period anchors, and the store
//! writes and retention deletes that follow. Under the channel's lock; I/O is spawned.

use std::{sync::Arc, time::SystemTime};

use bytes::BytesMut;
use starling_hls as hls;
use starling_packager::Output;
use tracing::{debug, info, warn};

use crate::live::{
    init_key, lock, new_session, segment_key, Channel, Origin, PartEntry, Rendition, Segment,
};
use crate::periods::Anchor;
use crate::wake::Wakes;

impl Origin {
    /// Apply packager output to a channel's state, then wake waiting requests.
    pub(crate) fn apply(self: &Arc<Self>, ch: &Arc<Channel>, outputs: Vec<Output>) {
        self.apply_selected(ch, outputs, None);
    }

    /// [`Self::apply`], with the whole of one segment chosen from another pipeline
    /// (`select`): its `SegmentEnd` stores and serves `selected`'s bytes, duration and
    /// defects instead of the concatenation of the parts listed.
    pub(crate) fn apply_selected(
        self: &Arc<Self>,
        ch: &Arc<Channel>,
        outputs: Vec<Output>,
        selected: Option<crate::select::Selected>,
    ) {
        let now = SystemTime::now();
        // Digests for the piece list, computed before the lock (a part is ~100 KB); only
        // a node that signs piece lists (P2P on) spends the CPU on them.
        let hashing = self.piece_signer.get().is_some();
        let mut part_digests: std::collections::VecDeque<[u8; 32]> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Part { data, .. } if hashing => Some(starling_p2p::pieces::sha256(data)),
                _ => None,
            })
            .collect();
        let mut writes = Vec::new();
        let mut deletes = Vec::new();
        let wakes = {
            let mut st = lock(&ch.inner);
            let settings = st.settings;
            let mut all = false;
            // History to write once the outputs are applied (see `restore`).
            let mut run_changed = false;
            let mut evicted: Vec<&'static str> = Vec::new();
            for out in outputs {
                match out {
                    Output::Init { rendition, init } => {
                        let target = self.config.packager().target_duration();
                        let session = st.session;
                        let name = rendition.name;
                        match st.rendition_mut(name) {
                            Some(r) => {
                                r.inits.push((session, init.clone()));
                                r.next_discontinuity = true;
                                r.info = rendition;
                                r.feed.touch();
                            }
                            None => {
                                st.renditions.push(Rendition::new(
                                    rendition,
                                    vec![(session, init.clone())],
                                    target,
                                ));
                                ch.register_feeds(&st);
                            }
                        }
                        run_changed = true;
                        let version = st.rendition(name).map_or(0, |r| r.inits.len() - 1);
                        writes.push((init_key(&ch.name, session, name, version), vec![init], None));
                    }
                    Output::Part {
                        rendition,
                        msn,
                        index,
                        duration,
                        independent,
                        start,
                        data,
                        first_arrival,
                        discontinuity: seam,
                    } => {
                        let digest = part_digests.pop_front();
                        let session = st.session;
                        crate::gaps::fill_gaps(&mut st, rendition, msn, &self.config, now);
                        let has_source = st.rendition(starling_packager::VIDEO_RENDITION).is_some();
                        let sets_periods = crate::periods::sets_periods(rendition, has_source);
                        let Some(r) = st.rendition_mut(rendition) else {
                            continue;
                        };
                        if r.segments.back().is_some_and(|s| s.msn > msn) {
                            // A rung's part for a number already listed as a gap while
                            // its transcoder was down: too late to list.
                            debug!(channel = %ch.name, rendition, msn, "origin: part older than the rendition's newest segment dropped");
                            continue;
                        }
                        let mut opens_period = None;
                        if r.segments.back().is_none_or(|s| s.complete || s.msn != msn) {
                            if r.history_from.is_none() {
                                r.history_from = Some(msn);
                                run_changed = true;
                            }
                            let init = r.inits.len().saturating_sub(1);
                            let new_map = r.segments.back().is_some_and(|s| s.init != init);
                            // A seam the origin saw (a new session), or one the packager
                            // declared on the segment's parts (a clock jump, a locked
                            // takeover with a hole): tagged before the first part is listed.
                            let discontinuity = std::mem::take(&mut r.next_discontinuity) || seam;
                            // A DASH period begins where the timeline or the init
                            // section may change (see `periods`).
                            if sets_periods
                                && (discontinuity
                                    || new_map
                                    || r.segments.back().is_none_or(|s| s.session != session))
                            {
                                opens_period = Anchor::of(
                                    msn,
                                    Some(first_arrival),
                                    Some(start),
                                    r.info.timescale,
                                );
                            }
                            r.segments.push_back(Segment {
                                discontinuity,
                                new_map,
                                program_date_time: Some(first_arrival),
                                media_start: Some(start),
                                ..Segment::new(session, msn, init)
                            });
                        }
                        if let Some(seg) = r.segments.back_mut() {
                            if seg.parts.len() as u32 != index {
                                warn!(channel = %ch.name, rendition, msn, index, have = seg.parts.len(), "origin: part out of order");
                            }
                            seg.parts.push(PartEntry {
                                duration,
                                independent,
                                len: data.len(),
                                data,
                                sha256: digest,
                            });
                        }
                        r.feed.touch();
                        if let Some(a) = opens_period {
                            st.periods.note(a);
                        }
                        self.metrics.observe_part(first_arrival, duration, now);
                    }
                    Output::SegmentEnd {
                        rendition,
                        msn,
                        duration,
                        program_date_time,
                        discontinuity,
                        defects,
                    } => {
                        let has_source = st.rendition(starling_packager::VIDEO_RENDITION).is_some();
                        let sets_periods = crate::periods::sets_periods(rendition, has_source);
                        let chosen = selected
                            .as_ref()
                            .filter(|c| c.rendition == rendition && c.msn == msn);
                        if let Some(c) = chosen.filter(|c| c.fills) {
                            // A number the primary skipped, filled from another pipeline.
                            crate::gaps::fill_gaps(&mut st, rendition, msn, &self.config, now);
                            let session = st.session;
                            if let Some(r) = st.rendition_mut(rendition) {
                                if r.segments.back().is_none_or(|s| s.msn < msn) {
                                    let seg = crate::gaps::filled(r, session, c);
                                    r.segments.push_back(seg);
                                }
                            }
                        }
                        let Some(r) = st.rendition_mut(rendition) else {
                            continue;
                        };
                        let Some(seg) = r.segments.back_mut().filter(|s| s.msn == msn) else {
                            warn!(channel = %ch.name, rendition, msn, "origin: end of a segment that has no parts");
                            continue;
                        };
                        let (whole, duration, defects) = match chosen {
                            // Another pipeline's whole segment; the parts listed stay
                            // what they were (see `select`).
                            Some(c) => (c.data.clone(), c.duration, c.defects),
                            None => {
                                // One copy per segment (never per viewer): the parts
                                // become slices of the whole, so memory holds each
                                // byte once.
                                let len = seg.parts.iter().map(|p| p.data.len()).sum();
                                let mut whole = BytesMut::with_capacity(len);
                                for p in &seg.parts {
                                    whole.extend_from_slice(&p.data);
                                }
                                let whole = whole.freeze();
                                let mut off = 0;
                                for p in &mut seg.parts {
                                    let n = p.data.len();
                                    p.data = whole.slice(off..off + n);
                                    off += n;
                                }
                                (whole, duration, defects)
                            }
                        };
                        let len = whole.len();
                        seg.complete = true;
                        seg.duration = duration;
                        seg.defects = defects;
                        if !defects.is_clean() {
                            self.metrics.segment_defects(defects);
                            let list = defects.names().collect::<Vec<_>>().join(",");
                            info!(channel = %ch.name, rendition, msn, defects = %list, "origin: segment cut with defects");
                        }
                        // The copy served says when its media is, and where it starts.
                        let program_date_time =
                            chosen.map_or(program_date_time, |c| c.program_date_time);
                        if let Some(c) = chosen {
                            seg.media_start = Some(c.start);
                        }
                        seg.program_date_time = Some(program_date_time);
                        // A timestamp jump is only known now; the packager rebased the
                        // timeline, but the period anchored before it drifts from here.
                        let jump = (sets_periods && discontinuity && !seg.discontinuity)
                            .then(|| {
                                Anchor::of(
                                    msn,
                                    Some(program_date_time),
                                    seg.media_start,
                                    r.info.timescale,
                                )
                            })
                            .flatten();
                        seg.discontinuity |= discontinuity;
                        seg.data = Some(whole.clone());
                        seg.completed_at = Some(now);
                        // TARGETDURATION never changes within a run (the packager cuts
                        // at it); a longer segment is a packager bug, said loudly.
                        if hls::target_duration_for(duration) > r.target_duration {
                            warn!(channel = %ch.name, rendition, duration, target = r.target_duration, "origin: segment longer than the target duration");
                        }
                        if duration > 0.0 {
                            r.peak_bps = r.peak_bps.max(len as f64 * 8.0 / duration);
                        }
                        r.total_bytes += len as u64;
                        r.total_secs += duration;
                        r.feed.touch();
                        let session = seg.session;
                        writes.push((
                            segment_key(&ch.name, session, rendition, msn),
                            vec![whole],
                            Some((rendition, session, msn)),
                        ));
                        let below = r.evicted_below;
                        deletes.extend(self.evict(&ch.name, settings, r, now));
                        if !settings.record && r.evicted_below > below {
                            evicted.push(rendition);
                        }
                        if let Some(a) = jump {
                            st.periods.note(a);
                        }
                        if rendition == starling_packager::VIDEO_RENDITION {
                            for rung in st.down_rungs.clone() {
                                crate::gaps::fill_gaps(
                                    &mut st,
                                    rung,
                                    msn.saturating_add(1),
                                    &self.config,
                                    now,
                                );
                            }
                        }
                        if let Some(first) = st
                            .renditions
                            .iter()
                            .filter_map(|r| r.segments.front().map(|s| s.msn))
                            .min()
                        {
                            st.periods.prune(first);
                        }
                    }
                    // Taken out for the tap before (see `tap`).
                    Output::Sample(_) => {}
                    Output::Ended => {
                        // Not the end of the run yet: the reconnect grace decides that.
                        st.live = false;
                        st.next_session = new_session(now);
                        all = true;
                        info!(channel = %ch.name, grace_ms = self.config.reconnect_grace.as_millis() as u64, "origin: publish ended; waiting for a reconnect");
                    }
                }
            }
            for rendition in evicted {
                self.history_evicted(&ch.name, &mut st, rendition);
            }
            if run_changed {
                self.history_run(&ch.name, &st);
            }
            Wakes::collect(&mut st, all)
        };
        wakes.send();
        // Whole segments' digests, outside the lock (a segment is megabytes), stored
        // back before the piece list can name them.
        for (_, data, segment) in writes.iter().filter(|_| hashing) {
            if let (Some((rendition, session, msn)), [whole]) = (segment, &data[..]) {
                let digest = starling_p2p::pieces::sha256(whole);
                let mut st = lock(&ch.inner);
                if let Some(seg) = st.rendition_mut(rendition).and_then(|r| {
                    r.segments
                        .iter_mut()
                        .rev()
                        .find(|s| s.msn == *msn && s.session == *session)
                }) {
                    seg.sha256 = Some((digest, whole.len() as u64));
                }
            }
        }
        for (key, data, segment) in writes {
            self.write_through(ch.clone(), key, data, segment);
        }
        self.delete_objects(deletes);
    }
}
