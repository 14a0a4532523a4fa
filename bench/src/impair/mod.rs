//! A sans-IO model of a lossy, slow, jittery link, for the `udp-relay` test bed.
//!
//! The kernel here has no netem, so the impairment lives in userspace. This module is
//! the decision-maker only: it never touches a socket and never reads a clock. The
//! driver pushes each datagram in with the time it arrived ([`Impairment::push`]),
//! sleeps until [`Impairment::poll_timeout`], then drains [`Impairment::poll`] for the
//! datagrams due. Time is a [`Duration`] since some start the driver chooses, so the
//! tests run hours of traffic on simulated time in milliseconds, and the same seed and
//! the same arrivals always give the same decisions.
//!
//! What happens to a datagram, in this order (each step off by default):
//! 1. Gilbert–Elliott burst loss, then independent random loss.
//! 2. The pending limit: everything scheduled but not yet released is bounded in bytes.
//! 3. The rate cap: a FIFO link serialising at `rate_bps` with a queue of `queue_bytes`
//!    (a token bucket one datagram deep); a datagram that does not fit is dropped.
//! 4. One-way delay plus jitter, uniform in `[-jitter, +jitter]` and never below zero
//!    added delay. Unless `jitter_may_reorder`, release times are kept monotonic.
//! 5. Explicit reordering: with probability `reorder` a datagram is held back by
//!    `reorder_hold` and later ones overtake it.
//! 6. Duplication: with probability `duplicate` a copy is released with the original.
//!
//! Each datagram takes the same random draws whatever happens to it, so for a fixed
//! configuration and seed the k-th datagram's loss, jitter, hold and duplication depend
//! on k alone; only the rate cap and the limits look at arrival times. Draws happen only
//! for features that are on, so turning one on changes what the others draw.

mod rng;
#[cfg(test)]
mod tests;

use std::{
    cmp::{Ordering, Reverse},
    collections::{BinaryHeap, VecDeque},
    time::Duration,
};

use bytes::Bytes;
pub use rng::Rng;

/// The largest UDP payload; anything larger cannot have come from a socket.
pub const MAX_DATAGRAM: usize = 65_535;

/// Gilbert–Elliott two-state burst loss. Per datagram: decide loss in the current
/// state, then move. The chain stays bad for 1/r datagrams on average, and is bad
/// p / (p + r) of the time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving good → bad after a datagram.
    pub p: f64,
    /// Probability of moving bad → good after a datagram.
    pub r: f64,
    /// Loss probability in the bad state (1 for the classic Gilbert model).
    pub bad_loss: f64,
    /// Loss probability in the good state (0 for the classic Gilbert model).
    pub good_loss: f64,
}

/// One direction's impairment. `Default` is a perfect link.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Independent loss probability per datagram.
    pub loss: f64,
    pub gilbert_elliott: Option<GilbertElliott>,
    pub delay: Duration,
    pub jitter: Duration,
    /// Let jitter reorder datagrams (as netem does); off keeps release times monotonic.
    pub jitter_may_reorder: bool,
    /// Probability that a datagram is held back by `reorder_hold`.
    pub reorder: f64,
    pub reorder_hold: Duration,
    /// Probability that a datagram is sent twice.
    pub duplicate: f64,
    /// Output rate cap in bit/s; `None` is unlimited.
    pub rate_bps: Option<u64>,
    /// Bytes the rate-capped link may hold queued, including the one being sent.
    pub queue_bytes: usize,
    /// Bytes that may be scheduled and not yet released, so that a long delay at a
    /// high rate cannot take unbounded memory (drops counted as `lost_limit`).
    pub max_pending_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            loss: 0.0,
            gilbert_elliott: None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            jitter_may_reorder: false,
            reorder: 0.0,
            reorder_hold: Duration::from_millis(10),
            duplicate: 0.0,
            rate_bps: None,
            queue_bytes: 512 * 1024,
            max_pending_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A configuration the model refuses, with the value at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{name} is {value}, but a probability must be between 0 and 1")]
    Probability { name: &'static str, value: f64 },
    #[error("a rate cap of 0 bit/s would never send anything")]
    ZeroRate,
    #[error("{name} of 0 bytes would drop every datagram")]
    ZeroLimit { name: &'static str },
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut probs = vec![
            ("loss", self.loss),
            ("reorder", self.reorder),
            ("duplicate", self.duplicate),
        ];
        if let Some(ge) = self.gilbert_elliott {
            probs.extend([
                ("gilbert-elliott p", ge.p),
                ("gilbert-elliott r", ge.r),
                ("gilbert-elliott bad-state loss", ge.bad_loss),
                ("gilbert-elliott good-state loss", ge.good_loss),
            ]);
        }
        for (name, value) in probs {
            // NaN fails `contains` too, which is what we want.
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::Probability { name, value });
            }
        }
        if self.rate_bps == Some(0) {
            return Err(ConfigError::ZeroRate);
        }
        if self.queue_bytes == 0 {
            return Err(ConfigError::ZeroLimit {
                name: "queue limit",
            });
        }
        if self.max_pending_bytes == 0 {
            return Err(ConfigError::ZeroLimit {
                name: "pending limit",
            });
        }
        Ok(())
    }
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossCause {
    Random,
    Burst,
    QueueFull,
    /// Over `max_pending_bytes`, or larger than [`MAX_DATAGRAM`].
    Limit,
}

/// What [`Impairment::push`] decided for one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Scheduled { release: Duration, duplicated: bool },
    Lost(LossCause),
}

/// What the model did, counted as it did it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub lost_random: u64,
    pub lost_burst: u64,
    pub lost_queue: u64,
    pub lost_limit: u64,
    pub duplicated: u64,
    /// Datagrams released after one that arrived later.
    pub reordered: u64,
    /// Sum and maximum of (release − arrival) over released datagrams.
    pub added_delay_total: Duration,
    pub added_delay_max: Duration,
}

impl Stats {
    pub fn lost(&self) -> u64 {
        self.lost_random + self.lost_burst + self.lost_queue + self.lost_limit
    }

    pub fn added_delay_mean(&self) -> Duration {
        match self.packets_out {
            0 => Duration::ZERO,
            n => Duration::from_nanos((self.added_delay_total.as_nanos() / n as u128) as u64),
        }
    }
}

#[derive(Debug)]
struct Pending {
    release: Duration,
    /// Tie-breaker so that equal release times leave in push order.
    order: u64,
    /// Arrival index of the original datagram (shared by a duplicate), to count
    /// reordering on the way out.
    index: u64,
    arrival: Duration,
    data: Bytes,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.release, self.order).cmp(&(other.release, other.order))
    }
}

/// One direction of an impaired link.
#[derive(Debug)]
pub struct Impairment {
    cfg: Config,
    rng: Rng,
    ge_bad: bool,
    /// Departure time and size of each datagram still in the rate-capped link.
    link: VecDeque<(Duration, usize)>,
    link_bytes: usize,
    link_free_at: Duration,
    /// Floor for release times while jitter may not reorder.
    last_release: Duration,
    pending: BinaryHeap<Reverse<Pending>>,
    pending_bytes: usize,
    next_order: u64,
    next_index: u64,
    highest_index_out: Option<u64>,
    stats: Stats,
}

impl Impairment {
    pub fn new(cfg: Config, seed: u64) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Impairment {
            cfg,
            rng: Rng::new(seed),
            ge_bad: false,
            link: VecDeque::new(),
            link_bytes: 0,
            link_free_at: Duration::ZERO,
            last_release: Duration::ZERO,
            pending: BinaryHeap::new(),
            pending_bytes: 0,
            next_order: 0,
            next_index: 0,
            highest_index_out: None,
            stats: Stats::default(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Datagrams scheduled and not yet released.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A datagram arrived at `now`. `now` must not go backwards between calls.
    pub fn push(&mut self, now: Duration, data: Bytes) -> Verdict {
        let len = data.len();
        self.stats.packets_in += 1;
        self.stats.bytes_in += len as u64;
        let index = self.next_index;
        self.next_index += 1;

        // Both loss processes draw on every datagram, whatever the other decided, so
        // that each keeps its own statistics.
        let burst_lost = match self.cfg.gilbert_elliott {
            Some(ge) => {
                let lost = self.rng.chance(if self.ge_bad {
                    ge.bad_loss
                } else {
                    ge.good_loss
                });
                let flip = self.rng.chance(if self.ge_bad { ge.r } else { ge.p });
                self.ge_bad ^= flip;
                lost
            }
            None => false,
        };
        let random_lost = self.rng.chance(self.cfg.loss);
        // Drawn before any drop, so every datagram takes the same draws whatever befell
        // it: the k-th datagram's loss, jitter, hold and copy then depend on the seed
        // and k alone, never on the queue state that real arrival times decide.
        let jitter_draw = (!self.cfg.jitter.is_zero()).then(|| self.rng.unit());
        let held = self.rng.chance(self.cfg.reorder);
        let copy = self.rng.chance(self.cfg.duplicate);
        if burst_lost {
            return self.lose(LossCause::Burst);
        }
        if random_lost {
            return self.lose(LossCause::Random);
        }
        if len > MAX_DATAGRAM || self.pending_bytes + len > self.cfg.max_pending_bytes {
            return self.lose(LossCause::Limit);
        }

        let depart = match self.cfg.rate_bps {
            None => now,
            Some(rate) => {
                while let Some(&(d, l)) = self.link.front() {
                    if d > now {
                        break;
                    }
                    self.link.pop_front();
                    self.link_bytes -= l;
                }
                if self.link_bytes + len > self.cfg.queue_bytes {
                    return self.lose(LossCause::QueueFull);
                }
                let start = now.max(self.link_free_at);
                let ns = (len as u128 * 8 * 1_000_000_000).div_ceil(rate as u128);
                let depart = start + Duration::from_nanos(ns as u64);
                self.link_free_at = depart;
                self.link.push_back((depart, len));
                self.link_bytes += len;
                depart
            }
        };

        let mut release = depart + self.cfg.delay;
        if let Some(u) = jitter_draw {
            let j = self.cfg.jitter.as_nanos() as f64 * (u * 2.0 - 1.0);
            release = if j >= 0.0 {
                release + Duration::from_nanos(j as u64)
            } else {
                release
                    .saturating_sub(Duration::from_nanos((-j) as u64))
                    .max(depart)
            };
        }
        if !self.cfg.jitter_may_reorder {
            release = release.max(self.last_release);
            self.last_release = release;
        }
        // A held datagram does not raise the floor: later ones are meant to pass it.
        if held {
            release += self.cfg.reorder_hold;
        }
        let duplicated = copy && self.pending_bytes + 2 * len <= self.cfg.max_pending_bytes;
        if duplicated {
            self.stats.duplicated += 1;
            self.schedule(release, index, now, data.clone());
        }
        self.schedule(release, index, now, data);
        Verdict::Scheduled {
            release,
            duplicated,
        }
    }

    /// When the next datagram is due, if any: the driver's next timer.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.pending.peek().map(|p| p.0.release)
    }

    /// The earlier of two models' next releases (a link's two directions): the one
    /// timer a driver of both needs.
    pub fn next_release(a: &Impairment, b: &Impairment) -> Option<Duration> {
        [a.poll_timeout(), b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next datagram due at or before `now`; call until `None`.
    pub fn poll(&mut self, now: Duration) -> Option<Bytes> {
        if self.pending.peek()?.0.release > now {
            return None;
        }
        let Reverse(p) = self.pending.pop()?;
        self.pending_bytes -= p.data.len();
        let s = &mut self.stats;
        s.packets_out += 1;
        s.bytes_out += p.data.len() as u64;
        let added = p.release - p.arrival;
        s.added_delay_total += added;
        s.added_delay_max = s.added_delay_max.max(added);
        match self.highest_index_out {
            Some(h) if p.index < h => s.reordered += 1,
            _ => self.highest_index_out = Some(p.index),
        }
        Some(p.data)
    }

    fn schedule(&mut self, release: Duration, index: u64, arrival: Duration, data: Bytes) {
        self.pending_bytes += data.len();
        self.pending.push(Reverse(Pending {
            release,
            order: self.next_order,
            index,
            arrival,
            data,
        }));
        self.next_order += 1;
    }

    fn lose(&mut self, cause: LossCause) -> Verdict {
        let s = &mut self.stats;
        match cause {
            LossCause::Random => s.lost_random += 1,
            LossCause::Burst => s.lost_burst += 1,
            LossCause::QueueFull => s.lost_queue += 1,
            LossCause::Limit => s.lost_limit += 1,
        }
        Verdict::Lost(cause)
    }
}
