//! The model on simulated time: no sockets, no sleeps, 100k datagrams in milliseconds.

use super::*;

const MS: Duration = Duration::from_millis(1);

fn payload(i: u64, len: usize) -> Bytes {
    let mut v = vec![0u8; len.max(8)];
    v[..8].copy_from_slice(&i.to_be_bytes());
    Bytes::from(v)
}

fn index_of(b: &Bytes) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Pushes `n` datagrams of `len` bytes every `gap`, releasing whatever is due before
/// each arrival and everything at the end, as a driver would. Returns the verdicts and
/// (release time, arrival index) of every datagram out, in order.
fn run(
    m: &mut Impairment,
    n: u64,
    gap: Duration,
    len: usize,
) -> (Vec<Verdict>, Vec<(Duration, u64)>) {
    let mut verdicts = Vec::new();
    let mut out = Vec::new();
    let drain = |m: &mut Impairment, until: Duration, out: &mut Vec<(Duration, u64)>| {
        while let Some(t) = m.poll_timeout().filter(|t| *t <= until) {
            let d = m.poll(t).expect("due");
            out.push((t, index_of(&d)));
        }
    };
    for i in 0..n {
        let now = gap * i as u32;
        drain(m, now, &mut out);
        verdicts.push(m.push(now, payload(i, len)));
    }
    drain(m, Duration::MAX, &mut out);
    (verdicts, out)
}

fn everything_on() -> Config {
    Config {
        loss: 0.02,
        gilbert_elliott: Some(GilbertElliott {
            p: 0.01,
            r: 0.3,
            bad_loss: 0.8,
            good_loss: 0.001,
        }),
        delay: 40 * MS,
        jitter: 5 * MS,
        jitter_may_reorder: true,
        reorder: 0.01,
        reorder_hold: 15 * MS,
        duplicate: 0.01,
        rate_bps: Some(20_000_000),
        queue_bytes: 64 * 1024,
        ..Config::default()
    }
}

#[test]
fn same_seed_same_decisions_other_seed_others() {
    let go = |seed| {
        let mut m = Impairment::new(everything_on(), seed).expect("valid");
        let r = run(&mut m, 20_000, MS / 4, 1316);
        (r, m.stats().clone())
    };
    let a = go(1);
    assert_eq!(a, go(1));
    assert_ne!(a.0 .0, go(2).0 .0);
    // Every feature did something, so the comparison above covered them all.
    let s = &a.1;
    assert!(s.lost_random > 0 && s.lost_burst > 0 && s.lost_queue > 0);
    assert!(s.duplicated > 0 && s.reordered > 0);
    assert_eq!(s.packets_in, 20_000);
    assert_eq!(s.packets_out, s.packets_in - s.lost() + s.duplicated);
}

#[test]
fn default_is_a_perfect_link() {
    let mut m = Impairment::new(Config::default(), 1).expect("valid");
    let (_, out) = run(&mut m, 1000, MS, 100);
    assert_eq!(out.len(), 1000);
    assert!(out
        .iter()
        .enumerate()
        .all(|(i, &(t, idx))| idx == i as u64 && t == MS * i as u32));
    assert_eq!(m.stats().added_delay_max, Duration::ZERO);
}

#[test]
fn random_loss_rate_within_bounds() {
    let cfg = Config {
        loss: 0.05,
        ..Config::default()
    };
    let mut m = Impairment::new(cfg, 42).expect("valid");
    run(&mut m, 100_000, MS, 188);
    // Expected 5000, standard deviation about 69.
    let lost = m.stats().lost_random;
    assert!((4_600..=5_400).contains(&lost), "lost {lost}");
    assert_eq!(m.stats().packets_out, 100_000 - lost);
}

/// Lengths of runs of consecutive lost datagrams.
fn loss_bursts(verdicts: &[Verdict]) -> Vec<u64> {
    let mut bursts = Vec::new();
    let mut cur = 0;
    for v in verdicts {
        if matches!(v, Verdict::Lost(_)) {
            cur += 1;
        } else if cur > 0 {
            bursts.push(cur);
            cur = 0;
        }
    }
    bursts
}

#[test]
fn gilbert_elliott_makes_bursts_of_mean_one_over_r() {
    let cfg = Config {
        gilbert_elliott: Some(GilbertElliott {
            p: 0.01,
            r: 0.25,
            bad_loss: 1.0,
            good_loss: 0.0,
        }),
        ..Config::default()
    };
    let mut m = Impairment::new(cfg, 7).expect("valid");
    let (verdicts, _) = run(&mut m, 100_000, MS, 188);
    let bursts = loss_bursts(&verdicts);
    let mean = bursts.iter().sum::<u64>() as f64 / bursts.len() as f64;
    assert!((3.5..=4.5).contains(&mean), "mean burst {mean}");
    // Stationary share of the bad state: p / (p + r) = 3.85%.
    let rate = m.stats().lost_burst as f64 / 100_000.0;
    assert!((0.030..=0.047).contains(&rate), "loss rate {rate}");

    // The same average loss, independent: bursts barely longer than one.
    let cfg = Config {
        loss: rate,
        ..Config::default()
    };
    let mut m = Impairment::new(cfg, 7).expect("valid");
    let (verdicts, _) = run(&mut m, 100_000, MS, 188);
    let bursts = loss_bursts(&verdicts);
    let mean = bursts.iter().sum::<u64>() as f64 / bursts.len() as f64;
    assert!(mean < 1.2, "independent mean burst {mean}");
}

#[test]
fn delay_and_jitter_stay_in_bounds_and_may_reorder_when_allowed() {
    let cfg = Config {
        delay: 100 * MS,
        jitter: 10 * MS,
        jitter_may_reorder: true,
        ..Config::default()
    };
    let mut m = Impairment::new(cfg, 3).expect("valid");
    let (verdicts, _) = run(&mut m, 10_000, MS, 188);
    let mut sum = Duration::ZERO;
    for (i, v) in verdicts.iter().enumerate() {
        let Verdict::Scheduled { release, .. } = *v else {
            panic!("lost {v:?}")
        };
        let added = release - MS * i as u32;
        assert!(added >= 90 * MS && added <= 110 * MS, "added {added:?}");
        sum += added;
    }
    let mean = sum / 10_000;
    assert!(mean > 99 * MS && mean < 101 * MS, "mean {mean:?}");
    assert!(m.stats().reordered > 1000, "{:?}", m.stats());
    assert!(m.stats().added_delay_max <= 110 * MS);
}

#[test]
fn no_reordering_when_disallowed() {
    let cfg = Config {
        delay: 100 * MS,
        jitter: 10 * MS,
        ..Config::default()
    };
    let mut m = Impairment::new(cfg, 3).expect("valid");
    let (_, out) = run(&mut m, 10_000, MS, 188);
    assert_eq!(out.len(), 10_000);
    assert!(out.windows(2).all(|w| w[0].1 < w[1].1 && w[0].0 <= w[1].0));
    let s = m.stats();
    assert_eq!(s.reordered, 0);
    // The monotonic floor only raises a release to an earlier arrival's, itself in
    // bounds, so the bounds still hold.
    assert!(s.added_delay_max <= 110 * MS, "{s:?}");
    assert!(s.added_delay_mean() > 100 * MS, "{s:?}");
}

#[test]
fn explicit_reordering_holds_back_the_chosen_share() {
    let cfg = Config {
        reorder: 0.05,
        reorder_hold: 20 * MS,
        ..Config::default()
    };
    let mut m = Impairment::new(cfg, 11).expect("valid");
    let (_, out) = run(&mut m, 20_000, MS, 188);
    assert_eq!(out.len(), 20_000);
    // Each held datagram is overtaken by the next 19, so it is the one counted late.
    let r = m.stats().reordered;
    assert!((800..=1_200).contains(&r), "reordered {r}");
    assert_eq!(m.stats().added_delay_max, 20 * MS);
}

#[test]
fn duplicates_are_counted_and_delivered() {
    let cfg = Config {
        duplicate: 0.1,
        ..Config::default()
    };
    let mut m = Impairment::new(cfg, 5).expect("valid");
    let (_, out) = run(&mut m, 10_000, MS, 188);
    let d = m.stats().duplicated;
    assert!((800..=1_200).contains(&d), "duplicated {d}");
    assert_eq!(out.len() as u64, 10_000 + d);
    // A copy leaves with its original: not reordering.
    assert_eq!(m.stats().reordered, 0);
}

#[test]
fn rate_cap_holds_the_output_rate_and_drops_on_overflow() {
    // 8 Mbit/s is one 1000-byte datagram per millisecond; offer twice that for 2 s.
    let cfg = Config {
        rate_bps: Some(8_000_000),
        queue_bytes: 64_000,
        ..Config::default()
    };
    let mut m = Impairment::new(cfg, 1).expect("valid");
    let (_, out) = run(&mut m, 4_000, MS / 2, 1000);
    assert!(out.windows(2).all(|w| w[1].0 - w[0].0 >= MS));
    let span = out.last().expect("some").0 - out[0].0;
    let rate = (out.len() - 1) as f64 * 8000.0 / span.as_secs_f64();
    assert!((rate - 8e6).abs() < 8e4, "rate {rate}");
    let s = m.stats();
    // About 2000 leave in 2 s plus the 64 queued at the end; the rest overflow.
    assert!((2_000..=2_070).contains(&s.packets_out), "{s:?}");
    assert_eq!(s.lost_queue, 4_000 - s.packets_out);
    // The queue delay is bounded by the queue: 64 kB at 1 MB/s.
    assert!(s.added_delay_max <= 65 * MS, "{s:?}");

    // Under the cap nothing is dropped and nothing waits beyond its own send time.
    let mut m = Impairment::new(m.config().clone(), 1).expect("valid");
    run(&mut m, 1_000, 2 * MS, 1000);
    assert_eq!(m.stats().lost(), 0);
    assert_eq!(m.stats().added_delay_max, MS);
}

#[test]
fn pending_bytes_are_bounded() {
    let cfg = Config {
        delay: Duration::from_secs(10),
        max_pending_bytes: 10_000,
        ..Config::default()
    };
    let mut m = Impairment::new(cfg, 1).expect("valid");
    for i in 0..100 {
        m.push(MS * i, payload(i.into(), 1000));
    }
    assert_eq!(m.pending(), 10);
    assert_eq!(m.stats().lost_limit, 90);
}

#[test]
fn bad_configs_are_refused_with_the_value() {
    let bad = Config {
        loss: 1.5,
        ..Config::default()
    };
    assert_eq!(
        Impairment::new(bad, 1).err(),
        Some(ConfigError::Probability {
            name: "loss",
            value: 1.5
        })
    );
    let bad = Config {
        rate_bps: Some(0),
        ..Config::default()
    };
    assert_eq!(Impairment::new(bad, 1).err(), Some(ConfigError::ZeroRate));
    let bad = Config {
        gilbert_elliott: Some(GilbertElliott {
            p: f64::NAN,
            r: 0.5,
            bad_loss: 1.0,
            good_loss: 0.0,
        }),
        ..Config::default()
    };
    assert!(Impairment::new(bad, 1).is_err());
}

#[test]
fn queue_drops_do_not_shift_the_later_random_decisions() {
    // The same 5,000 datagrams, once under a cap that overflows and once without:
    // the random losses fall on the same datagrams.
    let lossy = Config {
        loss: 0.1,
        jitter: MS,
        duplicate: 0.05,
        ..Config::default()
    };
    let capped = Config {
        rate_bps: Some(1_000_000),
        queue_bytes: 4_000,
        ..lossy.clone()
    };
    let random_losses = |cfg: Config| {
        let mut m = Impairment::new(cfg, 21).expect("valid");
        let (verdicts, _) = run(&mut m, 5_000, MS / 2, 500);
        let lost: Vec<bool> = verdicts
            .iter()
            .map(|v| *v == Verdict::Lost(LossCause::Random))
            .collect();
        (lost, m.stats().lost_queue)
    };
    let (free, none) = random_losses(lossy);
    let (cap, overflowed) = random_losses(capped);
    assert_eq!(none, 0);
    assert!(overflowed > 1_000, "{overflowed}");
    assert_eq!(free, cap);
}
