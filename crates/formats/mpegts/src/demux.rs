//! The push demuxer: transport stream bytes of any size in, [`DemuxEvent`]s out.
//!
//! Driving loop (the SRT driver owns the socket and the clock):
//!
//! ```
//! use starling_mpegts::{DemuxEvent, Demuxer};
//! let mut demux = Demuxer::new();
//! # let datagram = [0u8; 0];
//! demux.set_arrival(std::time::SystemTime::now());
//! demux.push(&datagram);
//! while let Some(event) = demux.poll_event() {
//!     match event {
//!         DemuxEvent::Stream(stream) => { /* announce to the hub */ }
//!         DemuxEvent::Frame(frame) => { /* hand to the hub */ }
//!         DemuxEvent::Pcr { .. } | DemuxEvent::Discontinuity { .. } => {}
//!         DemuxEvent::Error(e) => { /* log; counters are in demux.stats() */ }
//!         _ => {}
//!     }
//! }
//! ```
//!
//! What it does with what arrives:
//! - Sync: packets are 188 bytes from 0x47. Out of sync (at the start, after garbage) a
//!   candidate 0x47 is taken only when another follows 188 bytes later, so a stray 0x47
//!   in garbage does not pass for a packet; skipped bytes are reported once per run.
//! - PSI: the first program of the PAT; its PMT. A PMT whose content changes (a version
//!   change, new PIDs or codecs) rebuilds the PID table; tracks whose PID and codec stay
//!   keep their id and configuration. State is kept only for PIDs a PMT lists, at most
//!   [`DemuxConfig::max_elementary_streams`]; packets of any other PID are counted and
//!   dropped, so a PID storm costs no memory.
//! - continuity_counter per PID: one duplicate packet is dropped silently (§2.4.3.3
//!   allows it); a gap is an error and the PES in progress is dropped (its frame would be
//!   corrupt); with discontinuity_indicator set a jump is expected and reported as
//!   [`DemuxEvent::Discontinuity`].
//! - PES: reassembled until the next payload_unit_start_indicator, or until
//!   PES_packet_length is reached (then the frame goes out at once, without waiting for
//!   the next PES: audio latency). A PES longer or shorter than it declared, or larger
//!   than the configured cap, is dropped with an error.
//! - Time: PTS/DTS (33 bits, 90 kHz) are unwrapped to one monotonic 64-bit timeline
//!   shared by every track; every track's timescale is 90 000 (TS gives nothing finer,
//!   as FLV keeps its milliseconds). Values are kept as sent, not rebased to zero.
//! - Tracks: `TrackId`s are 1, 2, ... in PMT order; a track is announced (in a new
//!   [`DemuxEvent::Stream`]) once its configuration is known: H.264/H.265 from in-band
//!   parameter sets, AAC from the ADTS header, Opus from the PMT. A changed configuration
//!   announces again. Frames before their track's configuration are dropped and counted.
//!   Keyframes follow the FLV ingest's rule (IDR or recovery point SEI; H.265 IRAP, CRA
//!   only while the stream shows no RASL picture).
//!
//! It must never do I/O or read a clock: arrival times are handed in with
//! [`Demuxer::set_arrival`].

use std::{collections::VecDeque, sync::Arc, time::SystemTime};

use bytes::{Bytes, BytesMut};
use starling_media::{CodecConfig, Frame, OpusConfig, Stream, Track, TrackId};

use crate::{
    codec::{self, VideoCodec},
    packet::{Packet, NULL_PID, PACKET_SIZE, PAT_PID, SYNC_BYTE},
    pes::{self, Unwrapper},
    psi::{self, stream_type, Pmt, PmtStream, SectionAssembler},
    MpegTsError,
};

/// Limits of one demuxer; the defaults suit a contribution feed.
#[derive(Debug, Clone)]
pub struct DemuxConfig {
    /// Largest video PES kept (default 16 MiB: a 4K intra frame fits).
    pub max_video_pes: usize,
    /// Largest audio PES kept (default 1 MiB).
    pub max_audio_pes: usize,
    /// Elementary streams tracked per PMT (default 16); further entries are ignored.
    pub max_elementary_streams: usize,
}

impl Default for DemuxConfig {
    fn default() -> Self {
        Self {
            max_video_pes: 16 << 20,
            max_audio_pes: 1 << 20,
            max_elementary_streams: 16,
        }
    }
}

/// What the demuxer found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DemuxEvent {
    /// The stream's tracks (first time, or changed): replaces any previous one.
    Stream(Arc<Stream>),
    Frame(Frame),
    /// A program_clock_reference on the PMT's PCR_PID, in 27 MHz units (42 bits, as sent).
    Pcr {
        pid: u16,
        pcr: u64,
    },
    /// A discontinuity_indicator on a PID of the program.
    Discontinuity {
        pid: u16,
    },
    /// Something was wrong and was dropped; the demuxer goes on.
    Error(MpegTsError),
}

/// Counters, for metrics and tests. Every dropped byte or packet shows up in one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemuxStats {
    pub packets: u64,
    /// Bytes skipped while looking for sync.
    pub bytes_skipped: u64,
    pub transport_errors: u64,
    pub scrambled_packets: u64,
    pub continuity_errors: u64,
    pub duplicate_packets: u64,
    pub discontinuity_indicators: u64,
    pub adaptation_field_errors: u64,
    pub section_errors: u64,
    /// PMT changes after the first PMT.
    pub pmt_changes: u64,
    /// Packets on PIDs the PMT does not list (or before any PMT).
    pub unknown_pid_packets: u64,
    /// PMT entries with a stream_type this crate does not decode (once per distinct PMT).
    pub unsupported_streams: u64,
    /// PMT entries past `max_elementary_streams` (once per distinct PMT).
    pub ignored_streams: u64,
    pub pes_header_errors: u64,
    pub pes_length_errors: u64,
    pub pes_too_large: u64,
    pub pes_without_pts: u64,
    /// PES dropped because packets of it were lost.
    pub pes_lost: u64,
    pub codec_errors: u64,
    pub frames_before_config: u64,
    pub frames: u64,
    pub streams_announced: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EsKind {
    Video(VideoCodec),
    Aac,
    Opus,
}

impl EsKind {
    fn of(s: &PmtStream) -> Option<EsKind> {
        match s.stream_type {
            stream_type::H264 => Some(EsKind::Video(VideoCodec::H264)),
            stream_type::H265 => Some(EsKind::Video(VideoCodec::H265)),
            stream_type::AAC_ADTS => Some(EsKind::Aac),
            stream_type::PRIVATE_PES if s.registration() == Some(*b"Opus") => Some(EsKind::Opus),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct PesBuf {
    data: BytesMut,
}

#[derive(Debug)]
struct Es {
    pid: u16,
    track: TrackId,
    kind: EsKind,
    cc: Option<u8>,
    pes: Option<PesBuf>,
    config: Option<CodecConfig>,
    video_frames: u64,
    open_gop: bool,
}

#[derive(Debug, Default)]
struct PsiPid {
    cc: Option<u8>,
    sections: SectionAssembler,
}

enum Continuity {
    Ok,
    Duplicate,
    Lost { expected: u8 },
}

/// Checks a packet's continuity_counter against the last one of its PID.
fn continuity(last: &mut Option<u8>, p: &Packet<'_>, stats: &mut DemuxStats) -> Continuity {
    let got = p.continuity_counter;
    let discontinuity = p
        .adaptation_field
        .is_some_and(|a| a.discontinuity_indicator);
    let prev = *last;
    if !p.has_payload() {
        // The counter does not advance without payload (and must repeat the last one).
        return Continuity::Ok;
    }
    *last = Some(got);
    match prev {
        _ if discontinuity => Continuity::Ok,
        None => Continuity::Ok,
        Some(prev) if prev == got => {
            stats.duplicate_packets += 1;
            Continuity::Duplicate
        }
        Some(prev) if (prev + 1) & 0x0F == got => Continuity::Ok,
        Some(prev) => {
            stats.continuity_errors += 1;
            Continuity::Lost {
                expected: (prev + 1) & 0x0F,
            }
        }
    }
}

/// The sans-IO MPEG-TS demuxer (see the module docs).
#[derive(Debug)]
pub struct Demuxer {
    config: DemuxConfig,
    /// Bytes not yet consumed (less than two packets' worth once `push` returns).
    buf: Vec<u8>,
    synced: bool,
    skipping: usize,
    pat: PsiPid,
    pmt_pid: Option<u16>,
    pmt_psi: PsiPid,
    pmt: Option<Pmt>,
    es: Vec<Es>,
    next_track: u32,
    clock: Unwrapper,
    announced: Option<Arc<Stream>>,
    arrival: SystemTime,
    events: VecDeque<DemuxEvent>,
    stats: DemuxStats,
}

impl Default for Demuxer {
    fn default() -> Self {
        Self::with_config(DemuxConfig::default())
    }
}

impl Demuxer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_config(config: DemuxConfig) -> Self {
        Self {
            config,
            buf: Vec::new(),
            synced: false,
            skipping: 0,
            pat: PsiPid::default(),
            pmt_pid: None,
            pmt_psi: PsiPid::default(),
            pmt: None,
            es: Vec::new(),
            next_track: 1,
            clock: Unwrapper::default(),
            announced: None,
            arrival: SystemTime::UNIX_EPOCH,
            events: VecDeque::new(),
            stats: DemuxStats::default(),
        }
    }

    /// The wall-clock time stamped on frames completed by the following pushes.
    pub fn set_arrival(&mut self, arrival: SystemTime) {
        self.arrival = arrival;
    }

    pub fn stats(&self) -> &DemuxStats {
        &self.stats
    }

    /// The last announced stream, if any.
    pub fn stream(&self) -> Option<&Arc<Stream>> {
        self.announced.as_ref()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<DemuxEvent> {
        self.events.pop_front()
    }

    /// Feeds bytes of any size: a datagram, a file chunk, one byte.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.buf.is_empty() {
            // The usual case (whole packets per datagram): parse in place, keep the tail.
            let used = self.consume(bytes);
            self.buf.extend_from_slice(&bytes[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(bytes);
            let used = self.consume(&buf);
            buf.drain(..used);
            self.buf = buf;
        }
    }

    /// Parses the packets of `data`; returns how many bytes were used (the rest is less
    /// than a packet, or a candidate packet waiting for its confirming successor).
    fn consume(&mut self, data: &[u8]) -> usize {
        let mut pos = 0;
        while let Some(packet) = data.get(pos..pos + PACKET_SIZE) {
            if packet[0] != SYNC_BYTE {
                self.synced = false;
                pos += 1;
                self.skipping += 1;
                continue;
            }
            if !self.synced {
                // Confirm with the next packet's sync byte, or wait for it.
                match data.get(pos + PACKET_SIZE) {
                    None => break,
                    Some(&SYNC_BYTE) => {}
                    Some(_) => {
                        pos += 1;
                        self.skipping += 1;
                        continue;
                    }
                }
            }
            self.synced = true;
            self.report_skipped();
            if let Ok(packet) = packet.try_into() {
                self.packet(packet);
            }
            pos += PACKET_SIZE;
        }
        pos
    }

    /// End of input: a trailing packet that could not be confirmed is taken as it is, and
    /// the PES in progress on each PID is completed (the last video frame waits for a
    /// next payload_unit_start_indicator that will not come).
    pub fn flush(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut rest = &buf[..];
        if let Some(packet) = buf.get(..PACKET_SIZE).filter(|p| p[0] == SYNC_BYTE) {
            self.synced = true;
            self.report_skipped();
            if let Ok(packet) = packet.try_into() {
                self.packet(packet);
            }
            rest = &buf[PACKET_SIZE..];
        }
        self.skipping += rest.len();
        self.report_skipped();
        for i in 0..self.es.len() {
            if let Some(pes) = self.es[i].pes.take() {
                self.end_pes(i, pes);
            }
        }
    }

    fn report_skipped(&mut self) {
        if self.skipping > 0 {
            self.stats.bytes_skipped += self.skipping as u64;
            let skipped = std::mem::take(&mut self.skipping);
            self.error(MpegTsError::Resync { skipped });
        }
    }

    fn error(&mut self, e: MpegTsError) {
        self.events.push_back(DemuxEvent::Error(e));
    }

    fn packet(&mut self, data: &[u8; PACKET_SIZE]) {
        self.stats.packets += 1;
        let p = match Packet::parse(data) {
            Ok(p) => p,
            Err(e) => {
                self.stats.adaptation_field_errors += 1;
                return self.error(e);
            }
        };
        if p.transport_error_indicator {
            // The link layer says the bytes are damaged: using them would be worse.
            self.stats.transport_errors += 1;
            return;
        }
        if p.pid == NULL_PID {
            return;
        }
        let es_index = self.es.iter().position(|e| e.pid == p.pid);
        // The PCR_PID may be a PID of its own that carries nothing but PCRs.
        let pcr_pid = self.pmt.as_ref().map(|pmt| pmt.pcr_pid);
        let known = p.pid == PAT_PID
            || Some(p.pid) == self.pmt_pid
            || Some(p.pid) == pcr_pid
            || es_index.is_some();
        if !known {
            self.stats.unknown_pid_packets += 1;
            return;
        }
        if p.transport_scrambling_control != 0 {
            self.stats.scrambled_packets += 1;
            return;
        }
        if let Some(af) = p.adaptation_field {
            if af.discontinuity_indicator {
                self.stats.discontinuity_indicators += 1;
                self.events
                    .push_back(DemuxEvent::Discontinuity { pid: p.pid });
            }
            if let (Some(pcr), Some(pmt)) = (af.pcr, &self.pmt) {
                if pmt.pcr_pid == p.pid {
                    self.events.push_back(DemuxEvent::Pcr { pid: p.pid, pcr });
                }
            }
        }
        if p.pid == PAT_PID {
            self.psi_packet(true, &p);
        } else if Some(p.pid) == self.pmt_pid {
            self.psi_packet(false, &p);
        }
        if let Some(i) = es_index {
            self.es_packet(i, &p);
        }
    }

    fn psi_packet(&mut self, is_pat: bool, p: &Packet<'_>) {
        let state = if is_pat {
            &mut self.pat
        } else {
            &mut self.pmt_psi
        };
        match continuity(&mut state.cc, p, &mut self.stats) {
            Continuity::Duplicate => return,
            Continuity::Lost { expected } => {
                state.sections.reset();
                let e = MpegTsError::Continuity {
                    pid: p.pid,
                    expected,
                    got: p.continuity_counter,
                };
                self.error(e);
            }
            Continuity::Ok => {}
        }
        let Some(payload) = p.payload else { return };
        let state = if is_pat {
            &mut self.pat
        } else {
            &mut self.pmt_psi
        };
        let mut sections = Vec::new();
        let result = state
            .sections
            .push(payload, p.payload_unit_start_indicator, &mut sections);
        if let Err(reason) = result {
            self.stats.section_errors += 1;
            let table = if is_pat { "PAT" } else { "PMT" };
            self.error(MpegTsError::Section {
                pid: p.pid,
                table,
                reason,
            });
        }
        for s in sections {
            let r = if is_pat {
                psi::parse_pat(&s).map(|pat| {
                    if let Some(pat) = pat {
                        self.set_pmt_pid(pat.program_map_pid)
                    }
                })
            } else {
                psi::parse_pmt(p.pid, &s).map(|pmt| {
                    if let Some(pmt) = pmt {
                        self.set_pmt(pmt)
                    }
                })
            };
            if let Err(e) = r {
                self.stats.section_errors += 1;
                self.error(e);
            }
        }
    }

    fn set_pmt_pid(&mut self, pid: u16) {
        if self.pmt_pid != Some(pid) {
            self.pmt_pid = Some(pid);
            self.pmt_psi = PsiPid::default();
        }
    }

    fn set_pmt(&mut self, pmt: Pmt) {
        if self.pmt.as_ref() == Some(&pmt) {
            return;
        }
        if self.pmt.is_some() {
            self.stats.pmt_changes += 1;
        }
        let mut old = std::mem::take(&mut self.es);
        for s in &pmt.streams {
            let Some(kind) = EsKind::of(s) else {
                self.stats.unsupported_streams += 1;
                continue;
            };
            if self.es.len() >= self.config.max_elementary_streams
                || self.es.iter().any(|e| e.pid == s.elementary_pid)
            {
                self.stats.ignored_streams += 1;
                continue;
            }
            // A PID that keeps its codec keeps its track (id, configuration, PES).
            if let Some(i) = old
                .iter()
                .position(|e| e.pid == s.elementary_pid && e.kind == kind)
            {
                self.es.push(old.swap_remove(i));
                continue;
            }
            let config = (kind == EsKind::Opus).then(|| {
                let channels = s
                    .opus_channel_config()
                    .filter(|c| (1..=8).contains(c))
                    .unwrap_or(2);
                // The TS carries no OpusHead: pre-skip is unknown here (0), the rate is
                // Opus's own 48 kHz.
                CodecConfig::Opus(OpusConfig {
                    channels,
                    pre_skip: 0,
                    input_sample_rate: 48_000,
                    output_gain: 0,
                })
            });
            let track = TrackId(self.next_track);
            self.next_track += 1;
            self.es.push(Es {
                pid: s.elementary_pid,
                track,
                kind,
                cc: None,
                pes: None,
                config,
                video_frames: 0,
                open_gop: false,
            });
        }
        self.pmt = Some(pmt);
        self.announce();
    }

    /// Announces the tracks whose configuration is known, if that differs from the last
    /// announcement.
    fn announce(&mut self) {
        let tracks: Vec<Track> = self
            .es
            .iter()
            .filter_map(|e| {
                Some(Track {
                    id: e.track,
                    timescale: pes::TIMESCALE,
                    config: e.config.clone()?,
                })
            })
            .collect();
        if tracks.is_empty() || self.announced.as_ref().is_some_and(|s| s.tracks == tracks) {
            return;
        }
        let stream = Arc::new(Stream {
            tracks,
            metadata: Vec::new(),
            clock: Default::default(),
        });
        self.stats.streams_announced += 1;
        self.announced = Some(stream.clone());
        self.events.push_back(DemuxEvent::Stream(stream));
    }

    fn es_packet(&mut self, i: usize, p: &Packet<'_>) {
        match continuity(&mut self.es[i].cc, p, &mut self.stats) {
            Continuity::Duplicate => return,
            Continuity::Lost { expected } => {
                if self.es[i].pes.take().is_some() {
                    self.stats.pes_lost += 1;
                }
                self.error(MpegTsError::Continuity {
                    pid: p.pid,
                    expected,
                    got: p.continuity_counter,
                });
            }
            Continuity::Ok => {}
        }
        let Some(payload) = p.payload else { return };
        let limit = match self.es[i].kind {
            EsKind::Video(_) => self.config.max_video_pes,
            EsKind::Aac | EsKind::Opus => self.config.max_audio_pes,
        };
        if p.payload_unit_start_indicator {
            if let Some(pes) = self.es[i].pes.take() {
                self.end_pes(i, pes);
            }
            self.es[i].pes = Some(PesBuf {
                data: BytesMut::new(),
            });
        }
        let Some(pes) = self.es[i].pes.as_mut() else {
            return; // waiting for the start of a PES
        };
        if pes.data.len() + payload.len() > limit {
            self.es[i].pes = None;
            self.stats.pes_too_large += 1;
            return self.error(MpegTsError::PesTooLarge { pid: p.pid, limit });
        }
        pes.data.extend_from_slice(payload);
        let declared = (pes.data.len() >= 6)
            .then(|| u16::from_be_bytes([pes.data[4], pes.data[5]]))
            .filter(|&n| n != 0)
            .map(|n| 6 + usize::from(n));
        match declared {
            Some(d) if pes.data.len() == d => {
                if let Some(pes) = self.es[i].pes.take() {
                    self.end_pes(i, pes);
                }
            }
            Some(d) if pes.data.len() > d => {
                let actual = pes.data.len();
                self.es[i].pes = None;
                self.stats.pes_length_errors += 1;
                self.error(MpegTsError::PesLength {
                    pid: p.pid,
                    declared: d,
                    actual,
                });
            }
            _ => {}
        }
    }

    /// A PES is complete (or cut short by the next start): check it and emit its frames.
    fn end_pes(&mut self, i: usize, pes: PesBuf) {
        let pid = self.es[i].pid;
        let data = pes.data.freeze();
        let header = match pes::parse_header(&data) {
            Ok(h) => h,
            Err(reason) => {
                self.stats.pes_header_errors += 1;
                return self.error(MpegTsError::PesHeader { pid, reason });
            }
        };
        if let Some(declared) = header.declared_size() {
            if declared != data.len() {
                self.stats.pes_length_errors += 1;
                return self.error(MpegTsError::PesLength {
                    pid,
                    declared,
                    actual: data.len(),
                });
            }
        }
        let Some(pts) = header.pts else {
            self.stats.pes_without_pts += 1;
            return self.error(MpegTsError::MissingPts { pid });
        };
        let dts = self.clock.extend(header.dts.unwrap_or(pts));
        let pts = self.clock.extend(pts);
        let payload = data.slice(header.payload_offset..);
        match self.es[i].kind {
            EsKind::Video(c) => self.video(i, c, pts, dts, &payload),
            EsKind::Aac => {
                let (frames, err) = codec::aac_from_adts(&payload);
                for f in frames {
                    if self.es[i].config.as_ref() != Some(&CodecConfig::Aac(f.config.clone())) {
                        self.es[i].config = Some(CodecConfig::Aac(f.config));
                        self.announce();
                    }
                    self.frame(i, pts + f.offset_90k, pts + f.offset_90k, true, f.data);
                }
                if let Some(source) = err {
                    self.stats.codec_errors += 1;
                    self.error(MpegTsError::Codec { pid, source });
                }
            }
            EsKind::Opus => match codec::opus_from_pes(&payload) {
                Ok(frames) => {
                    for f in frames {
                        self.frame(i, pts + f.offset_90k, pts + f.offset_90k, true, f.data);
                    }
                }
                Err(reason) => {
                    self.stats.codec_errors += 1;
                    self.error(MpegTsError::Opus { pid, reason });
                }
            },
        }
    }

    fn video(&mut self, i: usize, codec: VideoCodec, pts: i64, dts: i64, payload: &Bytes) {
        let pid = self.es[i].pid;
        let au = match codec::video_from_annexb(codec, payload) {
            Ok(au) => au,
            Err(source) => {
                self.stats.codec_errors += 1;
                return self.error(MpegTsError::Codec { pid, source });
            }
        };
        if let Some(sets) = &au.parameter_sets {
            // Parsed only when they change (encoders repeat them on every keyframe).
            if !self.es[i].config.as_ref().is_some_and(|c| sets.same_as(c)) {
                match sets.to_config(codec) {
                    Ok(config) => {
                        self.es[i].config = Some(config);
                        self.es[i].video_frames = 0;
                        self.announce();
                    }
                    // Parameter sets we cannot read: report them, and keep decoding with
                    // the configuration we have (if none, the frame waits for one).
                    Err(source) => {
                        self.stats.codec_errors += 1;
                        self.error(MpegTsError::Codec { pid, source });
                    }
                }
            }
        }
        if au.data.is_empty() {
            return;
        }
        let es = &mut self.es[i];
        es.open_gop |= au.rasl;
        let first = es.video_frames == 0;
        let keyframe = au.keyframe || (au.cra && (first || !es.open_gop));
        self.frame(i, pts, dts, keyframe, au.data);
    }

    fn frame(&mut self, i: usize, pts: i64, dts: i64, keyframe: bool, data: Bytes) {
        let es = &mut self.es[i];
        if es.config.is_none() {
            self.stats.frames_before_config += 1;
            return;
        }
        if matches!(es.kind, EsKind::Video(_)) {
            es.video_frames += 1;
        }
        self.stats.frames += 1;
        self.events.push_back(DemuxEvent::Frame(Frame {
            track: es.track,
            pts,
            dts,
            keyframe,
            data,
            arrival: self.arrival,
        }));
    }
}
