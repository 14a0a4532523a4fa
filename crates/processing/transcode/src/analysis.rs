//! The analysis tap's vocabulary: what the ladder's ffmpeg child gives the features that
//! look at a channel (the small poster today; vertical reframing and highlight
//! detection next), and the parser of its loudness lines. Sans-IO.

use bytes::Bytes;

/// One decoded picture of the source, small and infrequent (e.g. 320 px wide at 5 fps).
#[derive(Clone, PartialEq, Eq)]
pub struct Picture {
    /// Media time (the channel's timeline, 90 kHz) of the source frame it shows, to
    /// within one picture interval.
    pub time: i64,
    pub width: u32,
    pub height: u32,
    /// I420: the luma plane (`width × height`), then Cb and Cr (`width/2 × height/2`
    /// each).
    pub i420: Bytes,
}

impl std::fmt::Debug for Picture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Picture")
            .field("time", &self.time)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl Picture {
    /// Bytes of one I420 picture of this size.
    pub fn i420_len(width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        w * h + 2 * (w.div_ceil(2) * h.div_ceil(2))
    }

    /// The picture as interleaved Y, Cb, Cr bytes (chroma repeated over each 2×2 block),
    /// as JPEG encoders take YCbCr.
    pub fn ycbcr(&self) -> Vec<u8> {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let data = &self.i420[..];
        if data.len() < Self::i420_len(self.width, self.height) {
            return Vec::new();
        }
        let (y, rest) = data.split_at(w * h);
        let (cb, cr) = rest.split_at(cw * ch);
        let mut out = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            for col in 0..w {
                let c = (row / 2) * cw + col / 2;
                out.extend_from_slice(&[y[row * w + col], cb[c], cr[c]]);
            }
        }
        out
    }
}

/// The audio's loudness at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loudness {
    /// Media time (90 kHz) of the end of the 100 ms it was measured over.
    pub time: i64,
    /// EBU R128 momentary loudness (400 ms window), LUFS; -120 or so for silence.
    pub momentary_lufs: f64,
}

/// What the tap gives a subscriber.
#[derive(Debug, Clone, PartialEq)]
pub enum AnalysisEvent {
    Picture(Picture),
    Loudness(Loudness),
}

/// Longest line kept from ffmpeg's loudness output; a longer one is not ours and is
/// skipped.
const MAX_LINE: usize = 256;

/// Parses ffmpeg's `ametadata=mode=print` output of `ebur128` (`frame:N pts:P
/// pts_time:T` lines, each followed by `lavfi.r128.M=V`) into (seconds, LUFS) pairs.
/// Bytes in, values out; whatever does not parse is skipped.
#[derive(Debug, Default)]
pub struct LoudnessParser {
    line: Vec<u8>,
    /// Dropping the rest of an over-long line.
    skipping: bool,
    pts_time: Option<f64>,
}

impl LoudnessParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the (pts_time seconds, momentary LUFS) pairs completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                if !self.skipping {
                    let line = std::mem::take(&mut self.line);
                    if let Ok(text) = std::str::from_utf8(&line) {
                        self.line(text.trim(), &mut out);
                    }
                }
                self.line.clear();
                self.skipping = false;
            } else if self.line.len() >= MAX_LINE {
                self.skipping = true;
            } else if !self.skipping {
                self.line.push(b);
            }
        }
        out
    }

    fn line(&mut self, text: &str, out: &mut Vec<(f64, f64)>) {
        if text.starts_with("frame:") {
            self.pts_time = text
                .split_whitespace()
                .find_map(|f| f.strip_prefix("pts_time:"))
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite());
        } else if let Some(v) = text.strip_prefix("lavfi.r128.M=") {
            if let (Some(t), Ok(m)) = (self.pts_time.take(), v.parse::<f64>()) {
                if m.is_finite() {
                    out.push((t, m));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loudness_lines_in_any_chunks() {
        let text = b"frame:0    pts:0       pts_time:0\nlavfi.r128.M=-120.691\nframe:1    pts:4410    pts_time:0.1\nlavfi.r128.M=-23.5\ngarbage\nlavfi.r128.M=-1\n";
        let mut whole = LoudnessParser::new();
        let all = whole.push(text);
        assert_eq!(all, [(0.0, -120.691), (0.1, -23.5)]);
        let mut bytewise = LoudnessParser::new();
        let mut got = Vec::new();
        for b in text.chunks(1) {
            got.extend(bytewise.push(b));
        }
        assert_eq!(got, all);
        let mut long = LoudnessParser::new();
        let mut bad = vec![b'x'; 10_000];
        bad.push(b'\n');
        assert!(long.push(&bad).is_empty());
        assert_eq!(
            long.push(b"frame:2 pts_time:0.2\nlavfi.r128.M=-20\n"),
            [(0.2, -20.0)]
        );
    }

    #[test]
    fn i420_to_interleaved_ycbcr() {
        // 2x2: four lumas, one Cb, one Cr.
        let p = Picture {
            time: 0,
            width: 2,
            height: 2,
            i420: Bytes::from_static(&[1, 2, 3, 4, 100, 200]),
        };
        assert_eq!(Picture::i420_len(2, 2), 6);
        assert_eq!(
            p.ycbcr(),
            [1, 100, 200, 2, 100, 200, 3, 100, 200, 4, 100, 200]
        );
        let short = Picture {
            i420: Bytes::from_static(&[1]),
            ..p
        };
        assert!(short.ycbcr().is_empty());
    }
}
