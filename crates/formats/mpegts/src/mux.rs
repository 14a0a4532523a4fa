//! The muxer: a [`Stream`] and its [`Frame`]s in, 188-byte transport packets out, for
//! SRT playback and for tests. Sans-IO: the caller sends the bytes.
//!
//! - PAT and PMT go out before the first frame, before every video keyframe (a receiver
//!   joining there can start decoding) and at least every 100 ms of DTS.
//! - The PCR rides the adaptation field of the first packet of each PES on the PCR_PID
//!   (the video PID, or the first track's without video), 100 ms behind that PES's DTS
//!   so a receiver's buffer model holds each frame before it is due.
//! - H.264/H.265 go out in Annex B with an access unit delimiter, parameter sets on
//!   keyframes that do not carry them, PES_packet_length 0; AAC as ADTS; Opus with an
//!   opus_control_header (registration_descriptor `Opus` and the DVB extension descriptor).
//! - Time stamps are the frames' own, converted to 90 kHz and taken modulo 2^33.

use bytes::Bytes;
use starling_media::{aac, CodecConfig, Frame, Stream, TrackId};

use crate::{
    codec,
    packet::{write_packet, PacketHeader, PACKET_SIZE, PAT_PID, SYNC_BYTE},
    pes::{self, TIMESTAMP_MODULUS},
    psi::{self, stream_type, Pmt, PmtStream},
    MpegTsError,
};

/// PID of the PMT (FFmpeg's choice; any free PID works).
pub const PMT_PID: u16 = 0x1000;
/// PID of the first elementary stream; the others follow.
pub const FIRST_ES_PID: u16 = 0x100;
/// PSI repeats at least this often (90 kHz ticks of DTS).
const PSI_INTERVAL: i64 = 9_000;
/// How far the PCR runs behind the DTS of the PES it rides on (90 kHz ticks).
const PCR_LEAD: i64 = 9_000;

#[derive(Debug)]
struct MuxTrack {
    id: TrackId,
    pid: u16,
    stream_id: u8,
    timescale: u32,
    config: CodecConfig,
    cc: u8,
}

/// The sans-IO MPEG-TS muxer (see the module docs).
#[derive(Debug)]
pub struct Muxer {
    tracks: Vec<MuxTrack>,
    pmt: Pmt,
    pat_cc: u8,
    pmt_cc: u8,
    last_psi: Option<i64>,
}

impl Muxer {
    /// A muxer for `stream`; fails on a codec TS cannot carry here.
    pub fn new(stream: &Stream) -> Result<Self, MpegTsError> {
        let mut m = Muxer {
            tracks: Vec::new(),
            pmt: Pmt {
                program_number: 1,
                version_number: 0,
                pcr_pid: FIRST_ES_PID,
                streams: Vec::new(),
            },
            pat_cc: 0,
            pmt_cc: 0,
            last_psi: None,
        };
        m.build(stream)?;
        Ok(m)
    }

    /// A new announcement of the stream: the PMT gets a new version_number and goes out
    /// with the next frame. Tracks keep their PIDs by position.
    pub fn set_stream(&mut self, stream: &Stream) -> Result<(), MpegTsError> {
        let version = (self.pmt.version_number + 1) & 0x1F;
        self.build(stream)?;
        self.pmt.version_number = version;
        self.last_psi = None;
        Ok(())
    }

    fn build(&mut self, stream: &Stream) -> Result<(), MpegTsError> {
        let mut tracks = Vec::new();
        let mut streams = Vec::new();
        let (mut video_n, mut audio_n) = (0u8, 0u8);
        for (i, t) in stream.tracks.iter().enumerate() {
            let pid = FIRST_ES_PID + i as u16;
            let (st, stream_id, descriptors) = match &t.config {
                CodecConfig::H264(_) | CodecConfig::H265(_) => {
                    let st = if matches!(t.config, CodecConfig::H264(_)) {
                        stream_type::H264
                    } else {
                        stream_type::H265
                    };
                    video_n += 1;
                    (st, pes::STREAM_ID_VIDEO + video_n - 1, Vec::new())
                }
                CodecConfig::Aac(_) => {
                    audio_n += 1;
                    (
                        stream_type::AAC_ADTS,
                        pes::STREAM_ID_AUDIO + audio_n - 1,
                        Vec::new(),
                    )
                }
                CodecConfig::Opus(o) => (
                    stream_type::PRIVATE_PES,
                    pes::STREAM_ID_PRIVATE_1,
                    vec![5, 4, b'O', b'p', b'u', b's', 0x7F, 2, 0x80, o.channels],
                ),
                other => return Err(MpegTsError::UnsupportedCodec(other.codec_string())),
            };
            let cc = self
                .tracks
                .iter()
                .find(|old| old.pid == pid)
                .map_or(0, |old| old.cc);
            tracks.push(MuxTrack {
                id: t.id,
                pid,
                stream_id,
                timescale: t.timescale.max(1),
                config: t.config.clone(),
                cc,
            });
            streams.push(PmtStream {
                stream_type: st,
                elementary_pid: pid,
                descriptors,
            });
        }
        self.pmt.pcr_pid = tracks
            .iter()
            .find(|t| matches!(t.config, CodecConfig::H264(_) | CodecConfig::H265(_)))
            .or(tracks.first())
            .map_or(FIRST_ES_PID, |t| t.pid);
        self.pmt.streams = streams;
        self.tracks = tracks;
        Ok(())
    }

    /// The PAT and PMT as two packets.
    pub fn psi(&mut self) -> Bytes {
        let mut out = Vec::with_capacity(2 * PACKET_SIZE);
        self.write_psi(&mut out);
        Bytes::from(out)
    }

    fn write_psi(&mut self, out: &mut Vec<u8>) {
        let pat = psi::build_pat(1, self.pmt.program_number, PMT_PID);
        let pmt = psi::build_pmt(&self.pmt);
        for (pid, section, cc) in [
            (PAT_PID, pat, &mut self.pat_cc),
            (PMT_PID, pmt, &mut self.pmt_cc),
        ] {
            // Sections are padded with 0xFF (stuffing after the last section), as is usual
            // for PSI, rather than with an adaptation field.
            let mut payload = section;
            payload.resize(PACKET_SIZE - 4, 0xFF);
            out.push(SYNC_BYTE);
            out.push(0x40 | (pid >> 8) as u8);
            out.push(pid as u8);
            out.push(0x10 | *cc);
            out.extend_from_slice(&payload[..PACKET_SIZE - 4]);
            *cc = (*cc + 1) & 0x0F;
        }
    }

    /// Packets for one frame (preceded by PAT/PMT when due).
    pub fn frame(&mut self, frame: &Frame) -> Result<Bytes, MpegTsError> {
        let i = self
            .tracks
            .iter()
            .position(|t| t.id == frame.track)
            .ok_or(MpegTsError::UnknownTrack(frame.track.0))?;
        let t = &self.tracks[i];
        let to_90k = |v: i64| (i128::from(v) * 90_000 / i128::from(t.timescale)) as i64;
        let (pts, dts) = (to_90k(frame.pts), to_90k(frame.dts));
        let is_video = matches!(t.config, CodecConfig::H264(_) | CodecConfig::H265(_));
        let es: Vec<u8> = match &t.config {
            CodecConfig::H264(_) | CodecConfig::H265(_) => {
                codec::video_to_annexb(&t.config, &frame.data, frame.keyframe)?
            }
            CodecConfig::Aac(c) => aac::raw_to_adts(c, &frame.data)?.to_vec(),
            CodecConfig::Opus(_) => codec::opus_to_pes(&frame.data),
            other => return Err(MpegTsError::UnsupportedCodec(other.codec_string())),
        };
        let mut out = Vec::with_capacity((es.len() / 184 + 4) * PACKET_SIZE);
        let psi_due = self
            .last_psi
            .is_none_or(|last| dts - last >= PSI_INTERVAL || dts < last)
            || (is_video && frame.keyframe);
        if psi_due {
            self.write_psi(&mut out);
            self.last_psi = Some(dts);
        }
        let t = &mut self.tracks[i];
        let wrap = |v: i64| v.rem_euclid(TIMESTAMP_MODULUS) as u64;
        let mut pes = Vec::with_capacity(es.len() + 19);
        pes::write_header(
            &mut pes,
            t.stream_id,
            wrap(pts),
            Some(wrap(dts)),
            (!is_video).then_some(es.len()),
        );
        pes.extend_from_slice(&es);
        let mut rest = &pes[..];
        let mut first = true;
        while !rest.is_empty() {
            let h = PacketHeader {
                pid: t.pid,
                payload_unit_start_indicator: first,
                continuity_counter: t.cc,
                random_access_indicator: first && frame.keyframe,
                pcr: (first && t.pid == self.pmt.pcr_pid).then(|| wrap(dts - PCR_LEAD) * 300),
            };
            let took = write_packet(&mut out, &h, rest);
            rest = &rest[took..];
            t.cc = (t.cc + 1) & 0x0F;
            first = false;
        }
        Ok(Bytes::from(out))
    }
}
