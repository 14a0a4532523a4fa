//! `webrtc-load`: how many WHEP viewers of one stream a `starling serve` holds, and the
//! CPU each costs; with `--whip`, how many WHIP publishers.
//!
//! For each step N it starts a fresh node ([`NODE_EXTRA`]: transcoding off, WHEP viewers
//! get the source) with one channel, one RTMP publisher replaying the clip (1280x720 at 30 fps, x264 +
//! AAC at `--kbps`) in real time, and N WHEP viewers in this process: the str0m client of
//! starling-webrtc-server, each a full ICE + DTLS + SRTP stack on its own UDP socket,
//! connected ten at a time. Once they play it counts, over a window of `--seconds`, the
//! video frames and bytes each viewer receives, and reads the node's CPU and memory from
//! /proc. A viewer keeps up when it got at least 95% of the clip's frames and 90% of its
//! video bytes in the window; a step holds when every viewer connected and kept up.
//!
//! The viewers run on the same cores as the node and decrypt every packet the node
//! encrypts, so their CPU (this process's, reported beside the node's) bounds what one
//! machine can show; the node's CPU per viewer is the figure to size a server from.
//!
//! `--whip`: for each step N, a fresh node with N channels and N str0m publishers, each
//! sending the clip's H.264 (as Annex B, the way a browser's encoder sends it) and 20 ms
//! Opus frames in real time over WHIP. It counts the frames the node's hub took against
//! those sent; a step holds when every publisher connected and the hub took at least
//! 95% of the frames. The node packages every channel for LL-HLS as usual (transcoding
//! and thumbnails off: [`NODE_EXTRA`]).

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use starling_bench::clip::Tag;
use starling_bench::{
    args::{default_starling, Flags},
    clip::{clip, publish, PublisherStats},
    counter,
    node::Node,
    proc_usage,
};
use starling_flv::FlvIngest;
use starling_media::{MediaEvent, TrackKind};
use starling_webrtc::{
    str0m::{format::Codec, media::Direction, Event},
    Outgoing,
};
use starling_webrtc_server::client::{http, write_frame, Client};

/// The node's extra config: no transcoding (WHEP viewers get the source; a ladder would
/// cost per channel, not per session) and no thumbnails (an ffmpeg run per channel every
/// few seconds, measured in docs/performance.md on its own): what is left is WebRTC
/// and the LL-HLS packaging every channel gets.
const NODE_EXTRA: &str = "[transcode]\nenabled = false\n[thumbnails]\nenabled = false\n";
const CHANNEL: &str = "load";
const KEY: &str = "load-key-00000";

struct Args {
    starling: PathBuf,
    steps: Vec<usize>,
    seconds: u64,
    kbps: u32,
    out_dir: PathBuf,
    whip: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        starling: default_starling(),
        steps: vec![50, 100, 200, 300],
        seconds: 20,
        kbps: 2000,
        out_dir: PathBuf::from("bench/results"),
        whip: false,
    };
    let mut flags = Flags::from_env();
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--starling" => a.starling = flags.value()?.into(),
            "--steps" => a.steps = flags.list()?,
            "--seconds" => a.seconds = flags.parsed()?,
            "--kbps" => a.kbps = flags.parsed()?,
            "--out" => a.out_dir = flags.value()?.into(),
            "--whip" => a.whip = true,
            "-h" | "--help" => {
                println!("webrtc-load [--whip] [--starling PATH] [--steps 50,100,200,300] [--seconds 20] [--kbps 2000] [--out DIR]");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// What one viewer saw (or one publisher sent).
#[derive(Debug, Default)]
struct ViewerStats {
    connected: AtomicBool,
    failed: AtomicBool,
    frames: AtomicU64,
    bytes: AtomicU64,
}

/// One WHEP viewer: offer, answer, then count H.264 frames until `stop`; then DELETE.
async fn view(node: SocketAddr, stats: Arc<ViewerStats>, stop: Arc<AtomicBool>) {
    let run = async {
        let mut client = Client::new().await.context("binding the viewer's socket")?;
        let (offer, _, _) = client
            .offer(Direction::RecvOnly)
            .context("str0m made no offer")?;
        let path = format!("/whep/{CHANNEL}");
        let a = http(
            node,
            "POST",
            &path,
            &[("Content-Type", "application/sdp")],
            offer.as_bytes(),
        )
        .await
        .context("POST /whep")?;
        if a.status != 201 {
            bail!("WHEP answered {}: {}", a.status, a.body.trim());
        }
        let location = a.header("location").map(str::to_owned);
        client.answer(&a.body).map_err(anyhow::Error::msg)?;
        client
            .run(Duration::from_secs(24 * 3600), |_, e| {
                match e {
                    Some(Event::Connected) => stats.connected.store(true, Ordering::Relaxed),
                    Some(Event::MediaData(d)) if d.params.spec().codec == Codec::H264 => {
                        stats.frames.fetch_add(1, Ordering::Relaxed);
                        stats
                            .bytes
                            .fetch_add(d.data.len() as u64, Ordering::Relaxed);
                    }
                    _ => {}
                }
                stop.load(Ordering::Relaxed)
            })
            .await
            .map_err(anyhow::Error::msg)?;
        if let Some(l) = location {
            http(node, "DELETE", &l, &[], b"").await.ok();
        }
        Ok::<_, anyhow::Error>(())
    };
    if let Err(e) = run.await {
        eprintln!("viewer: {e:#}");
        stats.failed.store(true, Ordering::Relaxed);
    }
}

/// Waits until every session connected or gave up (30 s at most), then 3 s more for
/// the node to settle before a window is measured.
fn settle(sessions: &[Arc<ViewerStats>]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && sessions
            .iter()
            .any(|v| !v.connected.load(Ordering::Relaxed) && !v.failed.load(Ordering::Relaxed))
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
}

/// The machine's UDP datagrams dropped for a full socket receive buffer so far
/// (`UdpRcvbufErrors` of /proc/net/snmp; every socket, this process's too).
fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// How many sessions connected.
fn connected(sessions: &[Arc<ViewerStats>]) -> usize {
    sessions
        .iter()
        .filter(|v| v.connected.load(Ordering::Relaxed))
        .count()
}

/// (frames, bytes) of every viewer now.
fn snapshot(viewers: &[Arc<ViewerStats>]) -> Vec<(u64, u64)> {
    viewers
        .iter()
        .map(|v| {
            (
                v.frames.load(Ordering::Relaxed),
                v.bytes.load(Ordering::Relaxed),
            )
        })
        .collect()
}

/// The clip's video as WebRTC sends it: (ms from the clip's start, the frame).
fn video_frames(headers: &[Tag], tags: &[Tag]) -> Result<Vec<(u32, Outgoing)>> {
    let mut ingest = FlvIngest::new();
    let mut stream = None;
    let mut out = Vec::new();
    for t in headers.iter().chain(tags).filter(|t| t.video) {
        for e in ingest.video(t.ms, t.body.clone(), std::time::SystemTime::now())? {
            match e {
                MediaEvent::Stream(s) => stream = Some(s),
                MediaEvent::Frame(f) => {
                    let s = stream.as_ref().context("a frame before its stream")?;
                    if let Some(o) = Outgoing::prepare(s, &f) {
                        out.push((t.ms, o));
                    }
                }
            }
        }
    }
    if out.is_empty() {
        bail!("the clip has no H.264 frames");
    }
    Ok(out)
}

/// One WHIP publisher on channel `i`: the clip's video and Opus silence in real time,
/// forever (until `stop`); `sent` counts the frames written.
async fn whip_publish(
    node: SocketAddr,
    i: usize,
    frames: Arc<Vec<(u32, Outgoing)>>,
    clip_ms: u32,
    stats: Arc<ViewerStats>,
    stop: Arc<AtomicBool>,
) {
    let run = async {
        let mut client = Client::new()
            .await
            .context("binding the publisher's socket")?;
        let (offer, video, audio) = client
            .offer(Direction::SendOnly)
            .context("str0m made no offer")?;
        let auth = format!("Bearer load-key-{i:05}");
        let a = http(
            node,
            "POST",
            &format!("/whip/load{i}"),
            &[
                ("Content-Type", "application/sdp"),
                ("Authorization", &auth),
            ],
            offer.as_bytes(),
        )
        .await
        .context("POST /whip")?;
        if a.status != 201 {
            bail!("WHIP answered {}: {}", a.status, a.body.trim());
        }
        client.answer(&a.body).map_err(anyhow::Error::msg)?;
        let mut start: Option<Instant> = None;
        let (mut next, mut loops, mut audio_sent) = (0usize, 0u64, 0u64);
        let mut failure = None;
        client
            .run(Duration::from_secs(24 * 3600), |rtc, e| {
                if matches!(e, Some(Event::Connected)) {
                    stats.connected.store(true, Ordering::Relaxed);
                    start = Some(Instant::now());
                }
                let Some(t0) = start else {
                    return stop.load(Ordering::Relaxed);
                };
                let now_ms = t0.elapsed().as_millis() as u64;
                loop {
                    let (ms, f) = &frames[next];
                    let due = loops * u64::from(clip_ms) + u64::from(*ms);
                    if due > now_ms {
                        break;
                    }
                    let frame = Outgoing {
                        rtp_time: f.rtp_time + (loops * u64::from(clip_ms) * 90) as i64,
                        ..f.clone()
                    };
                    if let Err(e) = write_frame(rtc, video, &frame) {
                        failure = Some(e);
                        return true;
                    }
                    stats.frames.fetch_add(1, Ordering::Relaxed);
                    stats
                        .bytes
                        .fetch_add(frame.payload.len() as u64, Ordering::Relaxed);
                    next += 1;
                    if next == frames.len() {
                        (next, loops) = (0, loops + 1);
                    }
                }
                while audio_sent < now_ms / 20 {
                    // 20 ms of Opus silence (CELT, fullband).
                    let silence = Outgoing {
                        kind: TrackKind::Audio,
                        keyframe: true,
                        rtp_time: (audio_sent * 960) as i64,
                        payload: Arc::from(&[0xF8u8, 0xFF, 0xFE][..]),
                    };
                    if let Err(e) = write_frame(rtc, audio, &silence) {
                        failure = Some(e);
                        return true;
                    }
                    stats.frames.fetch_add(1, Ordering::Relaxed);
                    audio_sent += 1;
                }
                stop.load(Ordering::Relaxed)
            })
            .await
            .map_err(anyhow::Error::msg)?;
        if let Some(e) = failure {
            bail!("writing a frame: {e}");
        }
        Ok::<_, anyhow::Error>(())
    };
    if let Err(e) = run.await {
        eprintln!("publisher {i}: {e:#}");
        stats.failed.store(true, Ordering::Relaxed);
    }
}

fn whip_steps(args: &Args, rt: &tokio::runtime::Runtime) -> Result<()> {
    let (headers, tags, clip_ms) = clip(&args.out_dir, args.kbps)?;
    let frames = Arc::new(video_frames(&headers, &tags)?);
    let video_bytes: usize = frames.iter().map(|(_, f)| f.payload.len()).sum();
    println!(
        "clip: {} video frames in {clip_ms} ms, video {:.0} kbit/s, and 50 Opus frames a second; {} s per step\n",
        frames.len(),
        video_bytes as f64 * 8.0 / f64::from(clip_ms),
        args.seconds
    );
    println!("| WHIP publishers | holds | connected | node CPU (% of 1 core) | CPU per publisher | publishers' CPU (this process) | node RSS | RSS per publisher | frames into the hub/s (sent) | datagrams dropped: kernel, node |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &n in &args.steps {
        let dir = args.out_dir.join(format!("whip-{n}"));
        let channels: Vec<(String, String)> = (0..n)
            .map(|i| (format!("load{i}"), format!("load-key-{i:05}")))
            .collect();
        let node = Node::start_with(&args.starling, &dir, &channels, false, NODE_EXTRA)?;
        let (_, rss_idle) = node.usage();
        let stop = Arc::new(AtomicBool::new(false));
        let publishers: Vec<Arc<ViewerStats>> =
            (0..n).map(|_| Arc::new(ViewerStats::default())).collect();
        let mut tasks = Vec::with_capacity(n);
        for (i, p) in publishers.iter().enumerate() {
            tasks.push(rt.spawn(whip_publish(
                node.http,
                i,
                frames.clone(),
                clip_ms,
                p.clone(),
                stop.clone(),
            )));
            if i % 10 == 9 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        settle(&publishers);

        let me = std::process::id();
        let kernel0 = udp_rcvbuf_errors();
        let sent = |ps: &[Arc<ViewerStats>]| -> u64 {
            ps.iter().map(|p| p.frames.load(Ordering::Relaxed)).sum()
        };
        let (m0, sent0, (cpu0, _), (own0, _)) = (
            node.metrics()?,
            sent(&publishers),
            node.usage(),
            proc_usage(me),
        );
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(args.seconds));
        let (m1, sent1, (cpu1, rss), (own1, _)) = (
            node.metrics()?,
            sent(&publishers),
            node.usage(),
            proc_usage(me),
        );
        let wall = t0.elapsed().as_secs_f64();
        let kernel = udp_rcvbuf_errors().saturating_sub(kernel0);
        let dropped = counter(&m1, "starling_webrtc_dropped_datagrams_total")
            - counter(&m0, "starling_webrtc_dropped_datagrams_total");
        stop.store(true, Ordering::Relaxed);
        rt.block_on(async {
            for t in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
            }
        });
        let connected = connected(&publishers);
        let hub = (counter(&m1, "starling_hub_frames_total")
            - counter(&m0, "starling_hub_frames_total")) as f64
            / wall;
        let sent = (sent1 - sent0) as f64 / wall;
        let cpu_pct = (cpu1 - cpu0) / wall * 100.0;
        let own_pct = (own1 - own0) / wall * 100.0;
        let holds = connected == n && hub >= 0.95 * sent;
        println!(
            "| {n} | {} | {connected} | {cpu_pct:.0}% | {:.2}% | {own_pct:.0}% | {:.0} MiB | {:.0} KiB | {hub:.0} ({sent:.0}) | {kernel}, {dropped} |",
            if holds { "yes" } else { "**no**" },
            cpu_pct / n as f64,
            rss as f64 / 1024.0,
            rss.saturating_sub(rss_idle) as f64 / n as f64,
        );
        drop(node);
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.whip {
        return whip_steps(&args, &rt);
    }
    let (headers, tags, clip_ms) = clip(&args.out_dir, args.kbps)?;
    let video_frames = tags.iter().filter(|t| t.video).count() as f64;
    // FLV's AVC tags carry 5 bytes of header before the NAL units WebRTC carries.
    let video_bytes: usize = tags
        .iter()
        .filter(|t| t.video)
        .map(|t| t.body.len().saturating_sub(5))
        .sum();
    let (fps, video_kbps) = (
        video_frames * 1000.0 / f64::from(clip_ms),
        video_bytes as f64 * 8.0 / f64::from(clip_ms),
    );
    let (headers, tags) = (Arc::new(headers), Arc::new(tags));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    println!(
        "clip: {fps:.0} fps, video {video_kbps:.0} kbit/s; {cores} cores; {} s per step\n",
        args.seconds
    );
    println!("| WHEP viewers | holds | connected | kept up | node CPU (% of 1 core) | CPU per viewer | viewers' CPU (this process) | node RSS | RSS per viewer | video out |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &n in &args.steps {
        let dir = args.out_dir.join(format!("webrtc-{n}"));
        let node = Node::start_with(
            &args.starling,
            &dir,
            &[(CHANNEL.to_owned(), KEY.to_owned())],
            false,
            NODE_EXTRA,
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let source = Arc::new(PublisherStats::default());
        let publisher = rt.spawn(publish(
            node.rtmp,
            KEY.to_owned(),
            headers.clone(),
            tags.clone(),
            clip_ms,
            source.clone(),
            stop.clone(),
        ));
        std::thread::sleep(Duration::from_secs(2));
        let (_, rss_idle) = node.usage();

        let viewers: Vec<Arc<ViewerStats>> =
            (0..n).map(|_| Arc::new(ViewerStats::default())).collect();
        let mut tasks = Vec::with_capacity(n);
        for batch in viewers.chunks(10) {
            for v in batch {
                tasks.push(rt.spawn(view(node.http, v.clone(), stop.clone())));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        settle(&viewers);

        let me = std::process::id();
        let (s0, (cpu0, _), (own0, _)) = (snapshot(&viewers), node.usage(), proc_usage(me));
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(args.seconds));
        let (s1, (cpu1, rss), (own1, _)) = (snapshot(&viewers), node.usage(), proc_usage(me));
        let wall = t0.elapsed().as_secs_f64();
        let sessions = counter(&node.metrics()?, "starling_webrtc_sessions{role=\"whep\"}");
        stop.store(true, Ordering::Relaxed);
        rt.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(5), publisher).await;
            for t in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
            }
        });

        let connected = connected(&viewers);
        let (want_frames, want_bytes) = (fps * wall, video_kbps * 1000.0 / 8.0 * wall);
        let kept_up = s0
            .iter()
            .zip(&s1)
            .filter(|((f0, b0), (f1, b1))| {
                (f1 - f0) as f64 >= 0.95 * want_frames && (b1 - b0) as f64 >= 0.9 * want_bytes
            })
            .count();
        let out_bytes: u64 = s0.iter().zip(&s1).map(|((_, b0), (_, b1))| b1 - b0).sum();
        let cpu_pct = (cpu1 - cpu0) / wall * 100.0;
        let own_pct = (own1 - own0) / wall * 100.0;
        let holds = connected == n && kept_up == n && !source.failed.load(Ordering::Relaxed);
        println!(
            "| {n} | {} | {connected} ({sessions} sessions) | {kept_up} | {cpu_pct:.0}% | {:.2}% | {own_pct:.0}% | {:.0} MiB | {:.0} KiB | {:.0} Mbit/s |",
            if holds { "yes" } else { "**no**" },
            cpu_pct / n as f64,
            rss as f64 / 1024.0,
            rss.saturating_sub(rss_idle) as f64 / n as f64,
            out_bytes as f64 * 8.0 / wall / 1e6,
        );
        drop(node);
    }
    Ok(())
}
