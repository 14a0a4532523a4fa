//! The thumbnailer: every few seconds, each live channel's newest keyframe segment
//! becomes its poster and small picture (ffmpeg, `starling-thumbnail`), handed to the
//! origin, which serves them.
//!
//! One picture at a time for the whole node: with many channels the round takes longer
//! rather than taking more cores (a render is a short ffmpeg; docs/performance.md).
//! A channel whose newest segment did not change since its last pictures is skipped.
//!
//! A channel whose ladder runs has the analysis tap's pictures: its small picture is
//! the tap's newest, made a JPEG here, and ffmpeg renders the poster alone.

use std::{collections::HashMap, sync::Arc, time::Duration, time::SystemTime};

use starling_origin::{Origin, Thumbnails};
use starling_thumbnail::{ffmpeg_runs, Render};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{config::ThumbnailsSection, ladder::Ladders};

/// Starts the thumbnailer, or tells the origin why there is none.
pub async fn start(
    config: &ThumbnailsSection,
    origin: Arc<Origin>,
    ladders: Arc<Ladders>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !config.enabled {
        origin.thumbnails_unavailable("they are turned off ([thumbnails] enabled = false)".into());
        return None;
    }
    if !ffmpeg_runs(&config.ffmpeg).await {
        let reason = format!(
            "ffmpeg ({}) was not found or does not run; install ffmpeg or set [thumbnails] ffmpeg",
            config.ffmpeg.display()
        );
        warn!("thumbnails are off: {reason}");
        origin.thumbnails_unavailable(reason);
        return None;
    }
    let render = Render {
        ffmpeg: config.ffmpeg.clone(),
        timeout: Duration::from_secs(10),
    };
    let widths = [Some(config.poster_width), Some(config.small_width)];
    let small_width = config.small_width;
    let every = Duration::from_secs(config.interval_secs);
    info!(interval_s = config.interval_secs, "thumbnails: on");
    Some(tokio::spawn(async move {
        // The segment each channel's pictures were made from, and its last error.
        let mut made: HashMap<String, (u64, u64)> = HashMap::new();
        let mut failing: HashMap<String, String> = HashMap::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let live = origin.live_channels();
            made.retain(|c, _| live.contains(c));
            failing.retain(|c, _| live.contains(c));
            for channel in live {
                let Some(k) = origin.keyframe_segment(&channel) else {
                    continue;
                };
                if made.get(&channel) == Some(&(k.session, k.msn)) {
                    continue;
                }
                let media = [k.init.clone(), k.segment.clone()];
                let from_tap = ladders
                    .latest_picture(&channel)
                    .filter(|p| p.width <= small_width)
                    .and_then(|p| small_jpeg(&p));
                // One picture per width asked, in order.
                let pictures = match from_tap {
                    Some(small) => render
                        .jpegs(&media, &widths[..1])
                        .await
                        .map(|j| (j.into_iter().next(), Some(small))),
                    None => render.jpegs(&media, &widths).await.map(|j| {
                        let mut j = j.into_iter();
                        (j.next(), j.next())
                    }),
                };
                match pictures {
                    Ok((Some(p), Some(s))) => {
                        if failing.remove(&channel).is_some() {
                            info!(%channel, "thumbnails: working again");
                        }
                        origin.set_thumbnails(
                            &channel,
                            Thumbnails {
                                session: k.session,
                                msn: k.msn,
                                poster: p,
                                small: s,
                                made: SystemTime::now(),
                            },
                        );
                        made.insert(channel, (k.session, k.msn));
                    }
                    result => {
                        // Said once per cause, not every round.
                        let text = match result {
                            Err(e) => e.to_string(),
                            Ok(_) => "ffmpeg gave fewer pictures than asked".to_owned(),
                        };
                        if failing.get(&channel) != Some(&text) {
                            warn!(%channel, error = %text, "thumbnails: no picture");
                            failing.insert(channel.clone(), text);
                        }
                        made.insert(channel, (k.session, k.msn));
                    }
                }
            }
        }
    }))
}

/// A JPEG of a tap picture (quality 80, as ffmpeg's `-q:v 5` about).
fn small_jpeg(p: &starling_transcode::Picture) -> Option<bytes::Bytes> {
    let (w, h) = (u16::try_from(p.width).ok()?, u16::try_from(p.height).ok()?);
    let ycbcr = p.ycbcr();
    if ycbcr.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 80)
        .encode(&ycbcr, w, h, jpeg_encoder::ColorType::Ycbcr)
        .ok()?;
    Some(out.into())
}
