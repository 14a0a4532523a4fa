//! Small synchronisation pieces every server of the workspace shares, kept in one place
//! so that there is one way to take a lock and one way to cap connections per address.
//!
//! - [`lock`]: takes a `std::sync::Mutex` and keeps serving after a panic elsewhere.
//! - [`AddressSlots`]: open connections per client IP, each given back on drop.
//! - [`base_url`]: the `scheme://host` a client reached the node by, for the absolute
//!   URLs the node writes (the MPD's clock, a page's `og:image`).
//! - [`hex`]: hex text of digests, keys and ids, both ways.

pub mod hex;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard},
};

/// Locks `m`, ignoring poisoning.
///
/// Everything these locks guard is plain data that stays consistent between statements
/// (caches, counters, windows of media); a panic in one request must not turn every
/// later request on the same channel into a second panic, so the guard is taken back.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Open connections per client address, for a per-address cap. An address has an entry
/// only while it has connections, so the map's size follows the live connections, not
/// every address ever seen.
#[derive(Debug, Default)]
pub struct AddressSlots {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's share of its address's cap, given back when dropped.
#[derive(Debug)]
pub struct AddressSlot {
    slots: Arc<AddressSlots>,
    ip: IpAddr,
}

impl AddressSlots {
    /// Takes a slot for `ip` if it holds fewer than `limit`; `None` when it is full.
    pub fn try_take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<AddressSlot> {
        let mut counts = lock(&self.counts);
        let n = counts.entry(ip).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                // A zero limit must not leave an empty entry behind.
                counts.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            slots: self.clone(),
            ip,
        })
    }

    /// Connections `ip` holds now.
    pub fn held(&self, ip: IpAddr) -> usize {
        lock(&self.counts).get(&ip).copied().unwrap_or(0)
    }

    /// Addresses with at least one connection.
    pub fn addresses(&self) -> usize {
        lock(&self.counts).len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.slots.counts);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// `scheme://host` as the client reached this node: its `Host` header, and `https` when
/// a TLS-terminating proxy says so (`X-Forwarded-Proto: https`). `None` for a missing or
/// odd host (anything but letters, digits and `-.:[]`), so that no header value can
/// smuggle text into a URL the node writes.
pub fn base_url(host: Option<&str>, forwarded_proto: Option<&str>) -> Option<String> {
    let host = host?;
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if !ok {
        return None;
    }
    let https = forwarded_proto.is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    Some(format!("{}://{host}", if https { "https" } else { "http" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_follow_the_request_and_refuse_odd_hosts() {
        assert_eq!(base_url(None, None), None);
        assert_eq!(
            base_url(Some("cdn.example:8443"), None).as_deref(),
            Some("http://cdn.example:8443")
        );
        assert_eq!(
            base_url(Some("[::1]:80"), Some("HTTPS")).as_deref(),
            Some("https://[::1]:80")
        );
        assert_eq!(
            base_url(Some("h"), Some("http")).as_deref(),
            Some("http://h")
        );
        for odd in ["", "a\"b", "a/b", "a b", "a@b", "é"] {
            assert_eq!(base_url(Some(odd), None), None, "{odd:?}");
        }
    }

    #[test]
    fn slots_cap_per_address_and_come_back_on_drop() {
        let slots = Arc::new(AddressSlots::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = slots.try_take(a, 2).unwrap();
        let second = slots.try_take(a, 2).unwrap();
        assert!(
            slots.try_take(a, 2).is_none(),
            "third connection over a cap of 2"
        );
        let other = slots
            .try_take(b, 2)
            .expect("another address has its own cap");
        assert_eq!((slots.held(a), slots.held(b)), (2, 1));
        drop(first);
        let again = slots.try_take(a, 2).expect("a freed slot is reusable");
        drop((second, again, other));
        assert_eq!(slots.addresses(), 0, "no entry outlives its connections");
    }

    #[test]
    fn zero_limit_refuses_without_leaving_an_entry() {
        let slots = Arc::new(AddressSlots::default());
        assert!(slots.try_take("::1".parse().unwrap(), 0).is_none());
        assert_eq!(slots.addresses(), 0);
    }

    #[test]
    fn a_poisoned_lock_still_serves() {
        let m = Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
