//! Retention by session, over what the store holds rather than what this process
//! remembers: a sweep lists a channel's sessions in the store and deletes those that
//! retention no longer keeps. It catches what the live path cannot: objects a previous
//! process left behind (a crash between a run's end and the next run's deletes, runs
//! older than the last one), and recordings past their retention.
//!
//! - A channel that does not record keeps nothing outside its current run: any other
//!   session is deleted once it is old enough that no write of it can still be under way.
//! - A channel that records keeps its sessions for `recording_retention` (none: for
//!   ever), counted from the session's start (its id carries the start time).
//! - Sessions of the run in memory (live, in the grace, or read back after a restart and
//!   listed in the playlists) are never swept.
//! - A run goes whole, counted from its start: when its first session is past
//!   retention, every session its description lists goes with it (a recording whose
//!   later sessions stayed would be listed nowhere and play nowhere), and the
//!   description goes too. A session deleted on its own takes the description it would
//!   name with it.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use tracing::{info, warn};

use crate::{
    history::{description_key, RunRecord, RUNS_DIR},
    live::{lock, Origin},
    session::{parse_session, session_name, session_start},
    store::StoreError,
};

/// Sessions listed per channel and sweep, at most (the rest wait for the next sweep).
const MAX_SESSIONS_PER_SWEEP: usize = 10_000;
/// A session of a channel that does not record is left alone this long after it began,
/// so that the last writes of a run that just ended are not raced.
const SETTLE: Duration = Duration::from_secs(600);
/// How often a followed channel is swept.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(3600);

impl Origin {
    /// Deletes `channel`'s sessions that retention no longer keeps (see the module
    /// docs); returns how many went. The channel's last run is read back first, so that
    /// a sweep right after a restart never deletes what the playlists list.
    pub async fn sweep(
        self: &Arc<Self>,
        channel: &str,
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        let ch = self.restore(channel).await;
        let (protected, record) = match &ch {
            Some(ch) => {
                let st = lock(&ch.inner);
                let mut p = st.run.clone();
                p.push(st.next_session);
                (p, st.settings.record)
            }
            None => (Vec::new(), self.config.record),
        };
        let keep_for = if record {
            match self.config.recording_retention {
                Some(d) => d,
                None => return Ok(0),
            }
        } else {
            SETTLE
        };
        let prefix = format!("media/{channel}");
        let expired = |session: u64| {
            !protected.contains(&session)
                && now
                    .duration_since(session_start(session))
                    .unwrap_or_default()
                    > keep_for
        };
        let mut swept = 0;
        // Whole runs first: each expired run's later sessions and its description (its
        // first session, expired as well, goes in the walk below).
        let runs = self
            .store
            .children(&format!("{prefix}/{RUNS_DIR}"), MAX_SESSIONS_PER_SWEEP)
            .await?;
        for run in runs
            .iter()
            .filter_map(|n| n.strip_suffix(".txt").and_then(parse_session))
            .filter(|r| expired(*r))
        {
            let later = match self.store.get(&description_key(channel, run)).await {
                Ok(Some(b)) => RunRecord::parse(&b).map(|r| r.sessions).unwrap_or_default(),
                _ => Vec::new(),
            };
            for session in later
                .into_iter()
                .filter(|s| *s > run && !protected.contains(s))
            {
                let key = format!("{prefix}/{}", session_name(session));
                match self.store.delete_prefix(&key).await {
                    Ok(()) => swept += 1,
                    Err(e) => {
                        warn!(channel, session = %session_name(session), error = %e, "origin: retention could not delete a session")
                    }
                }
            }
            if let Err(e) = self.store.delete(&description_key(channel, run)).await {
                warn!(channel, run = %session_name(run), error = %e, "origin: retention could not delete a run description");
            }
        }
        for name in self.store.children(&prefix, MAX_SESSIONS_PER_SWEEP).await? {
            // Other names (the run file) are not sessions.
            let Some(session) = parse_session(&name) else {
                continue;
            };
            if !expired(session) {
                continue;
            }
            let deleted = match self.store.delete_prefix(&format!("{prefix}/{name}")).await {
                Ok(()) => self.store.delete(&description_key(channel, session)).await,
                Err(e) => Err(e),
            };
            match deleted {
                Ok(()) => swept += 1,
                Err(e) => {
                    warn!(channel, session = %session_name(session), error = %e, "origin: retention could not delete a session")
                }
            }
        }
        if swept > 0 {
            info!(
                channel,
                sessions = swept,
                record,
                "origin: retention swept old sessions from the store"
            );
            self.metrics
                .store_deletes
                .fetch_add(swept as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::new_session;

    #[test]
    fn a_session_id_carries_its_start() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        assert_eq!(session_start(new_session(at)), at);
    }
}
