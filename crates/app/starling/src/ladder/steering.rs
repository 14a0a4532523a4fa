//! Steering the vertical rendition: a ladder child's window follows what the reframer
//! wants (`Ladders::steer`), sent to ffmpeg's `zmq` filter as `crop` commands over the
//! child's private Unix socket (ZMTP, `starling-zmtp`).
//!
//! One request at a time (a REQ socket); the wanted window is a `watch`, so a newer
//! wish replaces one not yet sent rather than queueing behind it. A refused command is
//! logged and the next one tried: the rendition keeps its last window meanwhile.

use std::{path::PathBuf, time::Duration};

use starling_transcode::steer_command;
use starling_zmtp::{Event, ReqSocket};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
    sync::watch,
};
use tracing::{debug, warn};

use super::Steer;

/// How long ffmpeg may take to bind its socket (it sets its graph up after probing
/// the input).
const BIND_WAIT: Duration = Duration::from_secs(30);

pub(super) struct Steering {
    pub channel: String,
    /// Where the child's `zmq` filter listens.
    pub socket: PathBuf,
    pub source_width: u32,
    /// The window's width in source pixels.
    pub window_width: u32,
    /// A move glides over this much media time (one analysis interval).
    pub glide_secs: f64,
    pub wanted: watch::Receiver<Option<Steer>>,
}

impl Steering {
    /// The window's left edge for `steer`, in source pixels (even, inside the picture).
    fn left(&self, steer: &Steer) -> u32 {
        let room = f64::from(self.source_width.saturating_sub(self.window_width));
        let centre = steer.centre_x.clamp(0.0, 1.0) * f64::from(self.source_width);
        let left = (centre - f64::from(self.window_width) / 2.0).clamp(0.0, room);
        (left.round() as u32) & !1
    }
}

/// Runs until the child's socket closes or the child is replaced.
pub(super) async fn run(mut s: Steering) {
    let started = tokio::time::Instant::now();
    let mut stream = loop {
        if s.wanted.has_changed().is_err() {
            return;
        }
        match UnixStream::connect(&s.socket).await {
            Ok(stream) => break stream,
            Err(e) if started.elapsed() > BIND_WAIT => {
                warn!(channel = %s.channel, error = %e, "reframing: ffmpeg's steering socket never appeared; the vertical rendition stays centred");
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let mut zmtp = ReqSocket::new();
    // The branch starts centred.
    let mut current = (s.source_width.saturating_sub(s.window_width) / 2) & !1;
    let mut buf = [0u8; 1024];
    let mut refused = 0u64;
    loop {
        if zmtp.can_request() {
            let steer = *s.wanted.borrow_and_update();
            if let Some(steer) = steer {
                let to = s.left(&steer);
                // Two pixels is the chroma grid: less is no move.
                if to.abs_diff(current) >= 2 {
                    let glide = if steer.cut { 0.0 } else { s.glide_secs };
                    let command = steer_command(current, to, glide);
                    if zmtp.request(&[command.as_bytes()]).is_ok() {
                        current = to;
                    }
                }
            }
        }
        let out = zmtp.take_output();
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return;
        }
        tokio::select! {
            read = stream.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return, // the child is gone
                    Ok(n) => n,
                };
                if let Err(e) = zmtp.receive(&buf[..n]) {
                    warn!(channel = %s.channel, error = %e, "reframing: ffmpeg's steering socket misbehaved; the vertical rendition keeps its window");
                    return;
                }
                while let Some(event) = zmtp.poll_event() {
                    if let Event::Reply(parts) = event {
                        let answer = parts.first().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
                        if !answer.starts_with("0 ") {
                            refused += 1;
                            if refused.is_power_of_two() {
                                warn!(channel = %s.channel, %answer, refused, "reframing: ffmpeg refused a window move");
                            }
                        } else {
                            debug!(channel = %s.channel, left = current, "reframing: window moved");
                        }
                    }
                }
            }
            changed = s.wanted.changed(), if zmtp.can_request() => {
                if changed.is_err() {
                    return; // a new child, or the channel's ladder is gone
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_stays_inside_the_picture_on_the_chroma_grid() {
        let (_tx, rx) = watch::channel(None);
        let s = Steering {
            channel: "c".into(),
            socket: PathBuf::new(),
            source_width: 1280,
            window_width: 406,
            glide_secs: 0.2,
            wanted: rx,
        };
        let at = |x: f64| {
            s.left(&Steer {
                centre_x: x,
                cut: false,
            })
        };
        assert_eq!(at(0.5), 436);
        assert_eq!(at(0.0), 0);
        assert_eq!(at(0.1), 0);
        assert_eq!(at(1.0), 874);
        assert_eq!(at(7.0), 874);
        assert_eq!(at(0.3), 180);
    }
}
