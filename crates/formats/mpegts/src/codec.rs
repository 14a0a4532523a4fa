//! Elementary stream glue between PES payloads and the media model's canonical payloads:
//! H.264/H.265 access units (Annex B in TS, length-prefixed in the model), AAC (ADTS in
//! TS, raw access units in the model) and Opus (opus_control_header framing in TS, raw
//! packets in the model). Both directions live here so they stay each other's inverse.

use bytes::Bytes;
use starling_media::{
    aac::{AdtsHeader, AudioSpecificConfig},
    MediaError,
};

// The video glue is shared with WebRTC (RTP carries Annex B too), so it lives in the
// media crate; TS names it from here as before.
pub use starling_media::annexb::{
    video_from_annexb, video_to_annexb, ParameterSets, VideoAccessUnit, VideoCodec,
};

/// One raw AAC access unit out of an ADTS PES, with its offset from the PES's PTS.
#[derive(Debug)]
pub struct AacFrame {
    pub config: AudioSpecificConfig,
    pub offset_90k: i64,
    pub data: Bytes,
}

/// Splits the ADTS frames of one PES payload (zero-copy). Frames after a malformed one
/// are lost with it; the ones before are returned with the error.
pub fn aac_from_adts(payload: &Bytes) -> (Vec<AacFrame>, Option<MediaError>) {
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut samples: i64 = 0;
    while pos < payload.len() {
        let rest = &payload[pos..];
        let h = match AdtsHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => return (frames, Some(e)),
        };
        let len = usize::from(h.frame_length);
        if len > rest.len() {
            let e = MediaError::Truncated {
                what: "ADTS frame",
                need: len,
                have: rest.len(),
            };
            return (frames, Some(e));
        }
        let config = match h.to_config() {
            Ok(c) => c,
            Err(e) => return (frames, Some(e)),
        };
        let rate = i64::from(h.sample_rate().max(1));
        // Offsets from the cumulative sample count, so 44.1 kHz does not drift by rounding.
        let offset_90k = samples * 90_000 / rate;
        samples += i64::from(config.samples_per_frame()) * i64::from(h.raw_data_blocks);
        frames.push(AacFrame {
            config,
            offset_90k,
            data: payload.slice(pos + h.header_len()..pos + len),
        });
        pos += len;
    }
    (frames, None)
}

/// One Opus packet out of a PES, with its offset from the PES's PTS.
#[derive(Debug)]
pub struct OpusFrame {
    pub offset_90k: i64,
    pub data: Bytes,
}

/// Splits the Opus access units of one PES payload (ETSI TS 102 366 style framing as
/// FFmpeg writes it: `opus_control_header` = 11-bit prefix 0x3FF, trim flags, then
/// au_size as a run of 0xFF bytes plus a last byte).
pub fn opus_from_pes(payload: &Bytes) -> Result<Vec<OpusFrame>, &'static str> {
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut offset = 0i64;
    while pos < payload.len() {
        let h = payload
            .get(pos..pos + 2)
            .ok_or("truncated control header")?;
        if h[0] != 0x7F || h[1] & 0xE0 != 0xE0 {
            return Err("no opus_control_header prefix");
        }
        let (start_trim, end_trim) = (h[1] & 0x10 != 0, h[1] & 0x08 != 0);
        let control_extension = h[1] & 0x04 != 0;
        pos += 2;
        let mut size = 0usize;
        loop {
            let b = *payload.get(pos).ok_or("truncated au_size")?;
            pos += 1;
            size += usize::from(b);
            if b != 0xFF {
                break;
            }
        }
        pos += 2 * usize::from(start_trim) + 2 * usize::from(end_trim);
        if control_extension {
            let len = *payload.get(pos).ok_or("truncated control extension")?;
            pos += 1 + usize::from(len);
        }
        let data = payload.get(pos..pos + size).ok_or("au_size past the PES")?;
        let duration = opus_duration_90k(data);
        frames.push(OpusFrame {
            offset_90k: offset,
            data: payload.slice(pos..pos + size),
        });
        offset += duration;
        pos += size;
    }
    Ok(frames)
}

/// Duration of an Opus packet in 90 kHz ticks, from its TOC byte (RFC 6716 §3.1).
pub fn opus_duration_90k(packet: &[u8]) -> i64 {
    let Some(&toc) = packet.first() else {
        return 0;
    };
    let config = toc >> 3;
    // frame sizes in 1/400 s (2.5 ms) units
    let frame_400ths: i64 = match config {
        0..=11 => [4, 8, 16, 24][usize::from(config % 4)],
        12..=15 => [4, 8][usize::from(config % 2)],
        _ => [1, 2, 4, 8][usize::from(config % 4)],
    };
    let count = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => i64::from(packet.get(1).map_or(0, |b| b & 0x3F)),
    };
    frame_400ths * count * 225
}

/// Frames one Opus packet for a PES (no trims).
pub fn opus_to_pes(packet: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(packet.len() + 2 + packet.len() / 255 + 1);
    out.extend_from_slice(&[0x7F, 0xE0]);
    let mut n = packet.len();
    while n >= 255 {
        out.push(0xFF);
        n -= 255;
    }
    out.push(n as u8);
    out.extend_from_slice(packet);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_framing_round_trip() {
        for len in [1usize, 254, 255, 256, 600] {
            let mut pkt = vec![0xFC; len]; // config 31 (CELT 20 ms), one frame
            pkt[0] = 0xF8;
            let pes = Bytes::from([opus_to_pes(&pkt), opus_to_pes(&pkt)].concat());
            let frames = opus_from_pes(&pes).unwrap();
            assert_eq!(frames.len(), 2);
            assert_eq!(&frames[0].data[..], &pkt[..]);
            assert_eq!(frames[1].offset_90k, 1800);
        }
        assert!(opus_from_pes(&Bytes::from_static(&[0x7F, 0xE0, 9, 1])).is_err());
        assert!(opus_from_pes(&Bytes::from_static(&[0x12, 0xE0])).is_err());
    }
}
