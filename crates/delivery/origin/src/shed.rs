//! Priority under overload: reads that go to the store (DVR, VOD, an earlier session)
//! are capped, globally and per client, and a read over a cap is shed at once with a
//! 503 that a player retries in a second. Live-edge requests are served from memory
//! and never take a slot, so however many viewers scrub back through the DVR window,
//! the ones at the live edge are not queued behind them.
//!
//! Shedding rather than queueing: a queued DVR read holds its connection and its memory
//! while it waits, and the player that sent it times out anyway; a quick 503 with
//! `max-age=1` costs nothing and tells a CDN in front not to ask again this second.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
};

use crate::live::lock;

/// Why a store read was shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shed {
    /// The node has `max_store_reads` under way.
    Global,
    /// This client has `max_store_reads_per_client` under way.
    Client,
}

impl Shed {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Client => "client",
        }
    }
}

/// The caps and what is under way.
#[derive(Debug)]
pub(crate) struct ReadLimits {
    max: usize,
    per_client: usize,
    in_flight: AtomicUsize,
    /// In-flight reads per client address with any under way (entries leave at zero, so
    /// the map is bounded by `max`).
    clients: Mutex<HashMap<IpAddr, usize>>,
}

/// A slot; released when dropped (the response body is in memory by then).
#[derive(Debug)]
pub(crate) struct ReadSlot<'a> {
    limits: &'a ReadLimits,
    client: Option<IpAddr>,
}

impl ReadLimits {
    /// `0` turns a cap off.
    pub(crate) fn new(max: usize, per_client: usize) -> Self {
        Self {
            max: if max == 0 { usize::MAX } else { max },
            per_client: if per_client == 0 {
                usize::MAX
            } else {
                per_client
            },
            in_flight: AtomicUsize::new(0),
            clients: Mutex::default(),
        }
    }

    /// A slot for one store read by `client` (`None`: an address unknown here, counted
    /// against the global cap only), or why not.
    pub(crate) fn try_acquire(&self, client: Option<IpAddr>) -> Result<ReadSlot<'_>, Shed> {
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(Shed::Global);
        }
        if let Some(ip) = client {
            let mut clients = lock(&self.clients);
            let n = clients.entry(ip).or_insert(0);
            if *n >= self.per_client {
                if *n == 0 {
                    clients.remove(&ip);
                }
                drop(clients);
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                return Err(Shed::Client);
            }
            *n += 1;
        }
        Ok(ReadSlot {
            limits: self,
            client,
        })
    }

    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

impl Drop for ReadSlot<'_> {
    fn drop(&mut self) {
        if let Some(ip) = self.client {
            let mut clients = lock(&self.limits.clients);
            if let Some(n) = clients.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    clients.remove(&ip);
                }
            }
        }
        self.limits.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn caps_per_client_and_in_all_and_slots_come_back() {
        let l = ReadLimits::new(3, 2);
        let a1 = l.try_acquire(ip(1)).unwrap();
        let a2 = l.try_acquire(ip(1)).unwrap();
        assert_eq!(l.try_acquire(ip(1)).unwrap_err(), Shed::Client);
        let b1 = l.try_acquire(ip(2)).unwrap();
        assert_eq!(l.try_acquire(ip(3)).unwrap_err(), Shed::Global);
        assert_eq!(l.try_acquire(None).unwrap_err(), Shed::Global);
        assert_eq!(l.in_flight(), 3);
        drop(a1);
        let _a3 = l.try_acquire(ip(1)).unwrap();
        drop((a2, b1));
        assert_eq!(l.in_flight(), 1);
        assert_eq!(lock(&l.clients).len(), 1, "idle clients leave the map");
    }

    #[test]
    fn zero_turns_a_cap_off() {
        let l = ReadLimits::new(0, 0);
        let slots: Vec<_> = (0..1000).map(|_| l.try_acquire(ip(1)).unwrap()).collect();
        assert_eq!(l.in_flight(), 1000);
        drop(slots);
        assert_eq!(l.in_flight(), 0);
    }
}
