//! What the load harnesses share: reading a node's CPU and memory from /proc and its
//! Prometheus histograms from /metrics, and finding free ports; [`impair`], the
//! lossy-link model behind `udp-relay` and `ip-link`, and [`netns`], the namespaces and
//! TUN devices `ip-link` joins with it ([`tun_relay`]); [`node`], a `starling serve` started by a harness;
//! [`http1`], the minimal HTTP/1.1 client of `hls-load` and `put-get`; [`clip`], the
//! clip and RTMP publisher of `rtmp-load` and `webrtc-load`; [`args`], the
//! flags of the load harnesses.

use std::{
    net::{TcpListener, UdpSocket},
    time::Duration,
};

pub mod args;
pub mod clip;
pub mod http1;
pub mod impair;
pub mod ll_hls;
pub mod netns;
pub mod node;
pub mod p2p_peers;
pub mod tun_relay;

/// One direction's statistics as the JSON line `udp-relay` and `ip-link` print (the
/// bench scripts read `bytes_in` of the final forward line). `send_errors` counts what
/// the driver could not deliver, which the model cannot see.
pub fn stats_line(
    direction: &str,
    done: bool,
    elapsed: Duration,
    model: &impair::Impairment,
    send_errors: u64,
) -> serde_json::Value {
    let s = model.stats();
    serde_json::json!({
        "direction": direction,
        "final": done,
        "elapsed_s": elapsed.as_secs_f64(),
        "packets_in": s.packets_in,
        "bytes_in": s.bytes_in,
        "packets_out": s.packets_out,
        "bytes_out": s.bytes_out,
        "lost_random": s.lost_random,
        "lost_burst": s.lost_burst,
        "lost_queue": s.lost_queue,
        "lost_limit": s.lost_limit,
        "duplicated": s.duplicated,
        "reordered": s.reordered,
        "added_delay_mean_ms": s.added_delay_mean().as_secs_f64() * 1000.0,
        "added_delay_max_ms": s.added_delay_max.as_secs_f64() * 1000.0,
        "pending": model.pending(),
        "send_errors": send_errors,
    })
}

/// A free TCP port on loopback (bound and released; good enough for a harness).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A free UDP port on loopback (bound and released).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// (user + system CPU seconds, resident KiB) of a process, from /proc.
pub fn proc_usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on.
    (ticks / 100.0, rss)
}

/// Cumulative buckets (le seconds, count) of histogram `name` in Prometheus text.
pub fn histogram(text: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| {
            let (le, count) = l.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// A counter's value in Prometheus text (0 when absent).
pub fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The sum of every series of metric `name` in Prometheus text (all label sets; 0 when
/// absent), e.g. a per-channel counter over all channels.
pub fn sum_series(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| match rest.strip_prefix('{') {
            Some(labelled) => labelled.split_once("} ").map(|(_, v)| v),
            None => rest.strip_prefix(' '),
        })
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

/// Upper bound (seconds) of the bucket holding quantile `q` of what was observed between
/// two snapshots of one histogram.
pub fn quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> Option<f64> {
    let diff: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, c)| {
            (
                *le,
                c - before.iter().find(|(l, _)| l == le).map_or(0, |(_, b)| *b),
            )
        })
        .collect();
    let total = diff.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = (total as f64 * q).ceil() as u64;
    diff.iter().find(|(_, c)| *c >= rank).map(|(le, _)| *le)
}

/// A bucket bound for a table cell.
pub fn fmt_bound(q: Option<f64>) -> String {
    match q {
        Some(s) if s.is_finite() && s < 1e-3 => format!("≤ {:.0} µs", s * 1e6),
        Some(s) if s.is_finite() => format!("≤ {} ms", (s * 1e6).round() / 1e3),
        Some(_) => "beyond the last bucket".into(),
        None => "n/a".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_two_snapshots() {
        let text0 =
            "x_bucket{le=\"0.001\"} 10\nx_bucket{le=\"0.01\"} 10\nx_bucket{le=\"+Inf\"} 10\n";
        let text1 =
            "x_bucket{le=\"0.001\"} 100\nx_bucket{le=\"0.01\"} 109\nx_bucket{le=\"+Inf\"} 110\n";
        let (a, b) = (histogram(text0, "x"), histogram(text1, "x"));
        assert_eq!(quantile(&a, &b, 0.5), Some(0.001));
        assert_eq!(quantile(&a, &b, 0.99), Some(0.01));
        assert_eq!(quantile(&a, &b, 1.0), Some(f64::INFINITY));
        assert_eq!(counter("a_total 7\nb 1\n", "a_total"), 7);
        let text = "a_total{channel=\"x\"} 2\na_total{channel=\"y\"} 3.5\na_totals 9\n";
        assert_eq!(sum_series(text, "a_total"), 5.5);
        assert_eq!(sum_series("a 4\n", "a"), 4.0);
        assert_eq!(fmt_bound(Some(0.00025)), "≤ 250 µs");
        assert_eq!(fmt_bound(Some(0.0025)), "≤ 2.5 ms");
        assert_eq!(fmt_bound(Some(0.02)), "≤ 20 ms");
    }
}
