//! Poster images of live channels: the first picture of a CMAF segment (an init section
//! and a segment that starts with a keyframe, as the packager cuts them) decoded and
//! scaled by an ffmpeg child and encoded as JPEG.
//!
//! Why a child process: decoding one keyframe every few seconds is what ffmpeg does best,
//! and in-process libav would bind the whole binary to Debian's libav* versions for a
//! poster. Each render is one short-lived `ffmpeg` with the bytes on stdin, one decode,
//! and a JPEG per size asked (the first on stdout, the others in temporary files: ffmpeg
//! writes one stream per pipe), bounded in time and output size; its failure is a typed
//! error with the end of ffmpeg's own message.
//!
//! Cost, measured in docs/performance.md ("Thumbnails"): one render of a 1080p H.264
//! keyframe into both sizes is about 0.15 s of one core, mostly ffmpeg's start-up.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest JPEG accepted back (a 4K poster at high quality is well under this).
pub const MAX_JPEG_BYTES: usize = 4 << 20;
/// The most of ffmpeg's stderr kept for an error message.
const MAX_STDERR: usize = 4096;

/// Why a thumbnail could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThumbError {
    #[error("ffmpeg was not found at {0:?} (install ffmpeg, or set [thumbnails] ffmpeg)")]
    FfmpegMissing(PathBuf),
    #[error("could not run ffmpeg: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("ffmpeg took longer than {0:?}")]
    Timeout(Duration),
    #[error("ffmpeg made no picture (exit {status}): {stderr}")]
    Failed { status: String, stderr: String },
    #[error("ffmpeg's picture is larger than {MAX_JPEG_BYTES} bytes")]
    TooLarge,
    #[error("ffmpeg's output is not a JPEG")]
    NotJpeg,
}

/// How to render: the ffmpeg binary and a time limit.
#[derive(Debug, Clone)]
pub struct Render {
    pub ffmpeg: PathBuf,
    pub timeout: Duration,
}

/// Names for the extra pictures of one render (ffmpeg writes one stream per pipe, so
/// all but the first go to files), removed when dropped whatever happened.
struct TempFiles(Vec<PathBuf>);

impl TempFiles {
    fn new(n: usize) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir();
        Self(
            (0..n)
                .map(|i| {
                    dir.join(format!(
                        "starling-thumb-{}-{id}-{i}.jpg",
                        std::process::id()
                    ))
                })
                .collect(),
        )
    }
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Render {
    /// The JPEG of the first picture of `media` (an init section followed by a segment)
    /// at `width` (`None`: the source's size).
    pub async fn jpeg(&self, media: &[Bytes], width: Option<u32>) -> Result<Bytes, ThumbError> {
        let mut all = self.jpegs(media, &[width]).await?;
        all.pop().ok_or(ThumbError::NotJpeg)
    }

    /// The first picture of `media` as one JPEG per width (the height keeps the aspect
    /// ratio; never upscaled), from one ffmpeg run and one decode.
    pub async fn jpegs(
        &self,
        media: &[Bytes],
        widths: &[Option<u32>],
    ) -> Result<Vec<Bytes>, ThumbError> {
        let n = widths.len().max(1);
        let files = TempFiles::new(n - 1);
        let mut graph = format!("[0:v]split={n}");
        for i in 0..n {
            graph.push_str(&format!("[s{i}]"));
        }
        for (i, w) in widths.iter().enumerate() {
            // Even height for 4:2:0.
            let scale = w.map_or_else(|| "null".to_owned(), |w| format!("scale='min({w},iw)':-2"));
            graph.push_str(&format!(";[s{i}]{scale}[o{i}]"));
        }
        let mut cmd = tokio::process::Command::new(&self.ffmpeg);
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "mp4", "-i", "pipe:0", "-filter_complex", &graph]);
        for i in 0..n {
            cmd.args([
                "-map",
                &format!("[o{i}]"),
                "-frames:v",
                "1",
                "-q:v",
                "4",
                "-f",
                "mjpeg",
            ]);
            match i {
                0 => cmd.arg("pipe:1"),
                _ => cmd.arg(&files.0[i - 1]),
            };
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ThumbError::FfmpegMissing(self.ffmpeg.clone()),
            _ => ThumbError::Spawn(e),
        })?;
        let mut stdin = child.stdin.take().ok_or_else(|| spawn_error("no stdin"))?;
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| spawn_error("no stdout"))?;
        let mut stderr = child
            .stderr
            .take()
            .ok_or_else(|| spawn_error("no stderr"))?;
        let media: Vec<Bytes> = media.to_vec();
        let work = async move {
            // Written while the output is read: a large segment must not fill both pipes.
            let write = async move {
                for b in &media {
                    // ffmpeg may stop reading once it has its picture: not an error.
                    if stdin.write_all(b).await.is_err() {
                        break;
                    }
                }
                drop(stdin);
            };
            let read = async {
                let mut out = Vec::new();
                (&mut stdout)
                    .take(MAX_JPEG_BYTES as u64 + 1)
                    .read_to_end(&mut out)
                    .await
                    .map(|_| out)
            };
            let read_err = async {
                let mut err = Vec::new();
                let _ = (&mut stderr)
                    .take(MAX_STDERR as u64)
                    .read_to_end(&mut err)
                    .await;
                err
            };
            let ((), out, err) = tokio::join!(write, read, read_err);
            let status = child.wait().await;
            (out, err, status)
        };
        let (out, err, status) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ThumbError::Timeout(self.timeout))?;
        let out = out.map_err(ThumbError::Spawn)?;
        let status = status.map_err(ThumbError::Spawn)?;
        if !status.success() || out.is_empty() {
            let stderr = String::from_utf8_lossy(&err);
            let stderr = stderr.trim();
            return Err(ThumbError::Failed {
                status: status.to_string(),
                stderr: if stderr.is_empty() {
                    "no output".to_owned()
                } else {
                    stderr.lines().last().unwrap_or_default().to_owned()
                },
            });
        }
        let mut all = vec![checked(out)?];
        for f in &files.0 {
            // Written by ffmpeg, which has exited: a short blocking read.
            let len = std::fs::metadata(f).map_err(ThumbError::Spawn)?.len();
            if len > MAX_JPEG_BYTES as u64 {
                return Err(ThumbError::TooLarge);
            }
            all.push(checked(std::fs::read(f).map_err(ThumbError::Spawn)?)?);
        }
        Ok(all)
    }
}

/// `out` as a JPEG, or why not.
fn checked(out: Vec<u8>) -> Result<Bytes, ThumbError> {
    if out.len() > MAX_JPEG_BYTES {
        return Err(ThumbError::TooLarge);
    }
    if jpeg_size(&out).is_none() {
        return Err(ThumbError::NotJpeg);
    }
    Ok(Bytes::from(out))
}

fn spawn_error(what: &str) -> ThumbError {
    ThumbError::Spawn(std::io::Error::other(what.to_owned()))
}

/// Whether `path` names an ffmpeg that runs (`ffmpeg -version`).
pub async fn ffmpeg_runs(path: &Path) -> bool {
    tokio::process::Command::new(path)
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Width and height from a JPEG's start-of-frame marker; `None` if it is not a JPEG
/// (SOI, then segments up to a SOFn, all within the bytes).
pub fn jpeg_size(jpeg: &[u8]) -> Option<(u32, u32)> {
    if jpeg.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    loop {
        let marker = *jpeg.get(at + 1)?;
        if *jpeg.get(at)? != 0xFF {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([*jpeg.get(at + 2)?, *jpeg.get(at + 3)?]));
        // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let h = u16::from_be_bytes([*jpeg.get(at + 5)?, *jpeg.get(at + 6)?]);
            let w = u16::from_be_bytes([*jpeg.get(at + 7)?, *jpeg.get(at + 8)?]);
            return Some((u32::from(w), u32::from(h)));
        }
        if len < 2 {
            return None;
        }
        at += 2 + len;
    }
}

#[cfg(test)]
mod tests;
