//! The load harnesses' source: a 10 s clip (x264 + AAC at a chosen bitrate) made once
//! with ffmpeg, and an RTMP publisher that replays it in real time with continuous
//! timestamps, forever, noting how far behind schedule it fell. Shared by `rtmp-load`
//! (N publishers) and `webrtc-load` (the one source its WHEP viewers watch).

use std::{
    net::SocketAddr,
    path::Path,
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use starling_flv::{FlvReader, TagType};
use starling_rtmp_server::client::RtmpClient;

/// One tag of the clip, with its time from the clip's start.
#[derive(Debug, Clone)]
pub struct Tag {
    pub ms: u32,
    pub video: bool,
    pub body: Bytes,
}

/// A 10 s clip at `kbps` (1280x720 at 30 fps, a keyframe every 2 s), made once with
/// ffmpeg and kept in `dir`: its sequence headers, its other tags, its length in ms.
pub fn clip(dir: &Path, kbps: u32) -> Result<(Vec<Tag>, Vec<Tag>, u32)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("clip-{kbps}k.flv"));
    if !path.exists() {
        eprintln!("making {} with ffmpeg", path.display());
        let v = kbps.saturating_sub(128).max(100);
        let status = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=30",
            ])
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "10",
            ])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-pix_fmt", "yuv420p",
            ])
            .args([
                "-b:v",
                &format!("{v}k"),
                "-maxrate",
                &format!("{v}k"),
                "-bufsize",
                &format!("{}k", v * 2),
            ])
            .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv"])
            .arg(&path)
            .status()
            .context("running ffmpeg (apt-get install ffmpeg)")?;
        if !status.success() {
            bail!("ffmpeg failed making the clip");
        }
    }
    let mut r = FlvReader::new();
    r.push(&std::fs::read(&path)?);
    let (mut headers, mut tags) = (Vec::new(), Vec::new());
    while let Some(t) = r.next_tag()? {
        let video = match t.tag_type {
            TagType::Video => true,
            TagType::Audio => false,
            _ => continue,
        };
        let tag = Tag {
            ms: t.timestamp,
            video,
            body: t.body,
        };
        // Sequence headers: byte 1 is 0 for both AVC and AAC.
        if tag.body.get(1) == Some(&0) {
            headers.push(tag);
        } else {
            tags.push(tag);
        }
    }
    let duration = tags.last().map(|t| t.ms + 33).unwrap_or(10_000);
    Ok((headers, tags, duration))
}

#[derive(Debug, Default)]
pub struct PublisherStats {
    pub behind_ms_max: AtomicU64,
    pub failed: AtomicBool,
}

/// Replays the clip in real time, forever (until `stop`), with continuous timestamps.
pub async fn publish(
    addr: SocketAddr,
    key: String,
    headers: Arc<Vec<Tag>>,
    tags: Arc<Vec<Tag>>,
    clip_ms: u32,
    stats: Arc<PublisherStats>,
    stop: Arc<AtomicBool>,
) {
    let run = async {
        let mut c = RtmpClient::connect(addr, "live").await?;
        c.publish(&key).await?;
        for h in headers.iter() {
            if h.video {
                c.queue_video(0, h.body.clone());
            } else {
                c.queue_audio(0, h.body.clone());
            }
        }
        let start = tokio::time::Instant::now();
        let mut loop_base = 0u32;
        while !stop.load(Ordering::Relaxed) {
            for t in tags.iter() {
                let ts = loop_base + t.ms;
                let due = start + Duration::from_millis(u64::from(ts));
                let now = tokio::time::Instant::now();
                if due > now {
                    c.flush().await?;
                    tokio::time::sleep_until(due).await;
                } else {
                    let behind = (now - due).as_millis() as u64;
                    stats.behind_ms_max.fetch_max(behind, Ordering::Relaxed);
                }
                if t.video {
                    c.queue_video(ts, t.body.clone());
                } else {
                    c.queue_audio(ts, t.body.clone());
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            c.drain_input().await?;
            loop_base += clip_ms;
        }
        c.close().await?;
        Ok::<_, anyhow::Error>(())
    };
    if let Err(e) = run.await {
        eprintln!("publisher {key}: {e:#}");
        stats.failed.store(true, Ordering::Relaxed);
    }
}
