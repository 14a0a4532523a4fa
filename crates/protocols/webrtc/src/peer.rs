//! One WebRTC session: a str0m [`Rtc`] that publishes into the hub (WHIP) or plays from
//! it (WHEP), driven sans-IO.
//!
//! The driver's loop per session: hand in datagrams ([`Peer::receive`]) and timeouts
//! ([`Peer::timeout`]), then [`Peer::poll`] until it returns [`PeerOutput::Timeout`],
//! sending every [`Transmit`] and acting on every [`PeerEvent`]. A viewer's frames go in
//! with [`Peer::send`].
//!
//! The server is ICE-lite (RFC 8445 §2.5): it has public (or configured) addresses, so it
//! never checks pairs itself; the client's checks reach it on the one UDP port and the
//! driver routes them here by the session's ufrag ([`crate::demux`]).

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use starling_media::{MediaEvent, TrackKind};
use str0m::{
    change::SdpOffer,
    format::Codec,
    media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt},
    net::{Protocol, Receive, TcpType},
    Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig,
};

use crate::{
    egress::Outgoing,
    ingest::{Codec as InCodec, Incoming, Ingest},
    WebRtcError,
};

/// Which way media flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// WHIP: the client sends, the server receives into the hub.
    Publish,
    /// WHEP: the server sends the hub's frames, the client receives.
    Play,
}

/// What a session is made with.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub role: Role,
    /// The addresses clients reach the shared UDP port at (host candidates).
    pub candidates: Vec<SocketAddr>,
    /// The addresses of the ICE-TCP port (passive host candidates, RFC 6544), for
    /// clients whose network blocks UDP. Empty: UDP only.
    pub tcp_candidates: Vec<SocketAddr>,
}

/// How a datagram travels: on the UDP port, or framed on an ICE-TCP connection
/// (RFC 4571: a 16-bit length before each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A datagram to send.
#[derive(Debug)]
pub struct Transmit {
    pub transport: Transport,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub data: Vec<u8>,
}

/// What the driver must do next.
#[derive(Debug)]
pub enum PeerOutput {
    Transmit(Transmit),
    /// Nothing more until this instant (or the next datagram).
    Timeout(Instant),
    Event(PeerEvent),
}

/// What happened in a session.
#[derive(Debug)]
pub enum PeerEvent {
    /// ICE and DTLS are up: media flows from now on.
    Connected,
    /// Publish: the stream or a frame, for the hub.
    Media(MediaEvent),
    /// Play: the viewer lost a picture and asks for a keyframe (PLI/FIR).
    KeyframeRequest,
    /// The session is over (the peer closed, ICE failed, or DTLS did).
    Closed(String),
}

/// How often a publisher is asked for a keyframe at most.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// One session.
#[derive(Debug)]
pub struct Peer {
    rtc: Rtc,
    role: Role,
    ufrag: String,
    start: Instant,
    video: Option<(Mid, Option<Pt>)>,
    audio: Option<(Mid, Option<Pt>)>,
    events: VecDeque<PeerEvent>,
    connected: bool,
    closed: bool,
    ingest: Option<Ingest>,
    last_keyframe_request: Option<Instant>,
    /// Play: video waits for a keyframe.
    video_started: bool,
    /// Play: the instant that media time `anchor.1` (seconds) is sent at.
    anchor: Option<(Instant, f64)>,
}

impl Peer {
    /// Answers a client's SDP offer. `now` and `wall_now` are the same moment.
    pub fn accept(
        offer: &str,
        config: &PeerConfig,
        now: Instant,
        wall_now: SystemTime,
    ) -> Result<(Peer, String), WebRtcError> {
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|e| WebRtcError::MalformedSdp(e.to_string()))?;
        let creds = IceCreds::new();
        let ufrag = creds.ufrag.clone();
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .set_local_ice_credentials(creds)
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .build(now);
        for addr in &config.candidates {
            let c = Candidate::host(*addr, "udp")
                .map_err(|e| WebRtcError::Unanswerable(format!("candidate {addr}: {e}")))?;
            rtc.add_local_candidate(c);
        }
        for addr in &config.tcp_candidates {
            let c = Candidate::builder()
                .tcp()
                .host(*addr)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| WebRtcError::Unanswerable(format!("TCP candidate {addr}: {e}")))?;
            rtc.add_local_candidate(c);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::Unanswerable(e.to_string()))?;
        let mut peer = Peer {
            rtc,
            role: config.role,
            ufrag,
            start: now,
            video: None,
            audio: None,
            events: VecDeque::new(),
            connected: false,
            closed: false,
            ingest: None,
            last_keyframe_request: None,
            video_started: false,
            anchor: None,
        };
        let answer = answer.to_sdp_string();
        peer.take_media(&answer)?;
        if peer.role == Role::Publish {
            peer.ingest = Some(Ingest::new(
                peer.video.is_some(),
                peer.audio.is_some(),
                wall_now,
            ));
        }
        Ok((peer, answer))
    }

    /// The media lines of the answer that this role can use, and their codecs. The
    /// answer is str0m's own text: its `m=` sections name each media's kind and mid.
    fn take_media(&mut self, answer: &str) -> Result<(), WebRtcError> {
        let mut offered = Vec::new();
        let mut kind = None;
        for line in answer.lines() {
            if let Some(m) = line.strip_prefix("m=") {
                kind = match m.split(' ').next() {
                    Some("video") => Some(MediaKind::Video),
                    Some("audio") => Some(MediaKind::Audio),
                    _ => None,
                };
            } else if let (Some(mid), Some(k)) = (line.strip_prefix("a=mid:"), kind) {
                offered.push((Mid::from(mid.trim()), k));
            }
        }
        for (mid, kind) in offered {
            let Some(media) = self.rtc.media(mid) else {
                continue;
            };
            let direction = media.direction();
            let usable = match self.role {
                Role::Publish => matches!(direction, Direction::RecvOnly | Direction::SendRecv),
                Role::Play => matches!(direction, Direction::SendOnly | Direction::SendRecv),
            };
            let negotiated = !media.disabled() && !media.remote_pts().is_empty();
            if !usable || !negotiated {
                continue;
            }
            let slot = match kind {
                MediaKind::Video => &mut self.video,
                MediaKind::Audio => &mut self.audio,
            };
            if slot.is_none() {
                *slot = Some((mid, None));
            }
        }
        if self.video.is_none() && self.audio.is_none() {
            let what = match self.role {
                Role::Publish => "nothing this server can receive: send H.264 video or Opus audio",
                Role::Play => {
                    "nothing this server can send: offer to receive H.264 video or Opus audio"
                }
            };
            return Err(WebRtcError::NoUsableMedia(what.into()));
        }
        if self.role == Role::Play {
            self.video = self
                .video
                .map(|(mid, _)| (mid, self.pick_pt(mid, Codec::H264)));
            self.audio = self
                .audio
                .map(|(mid, _)| (mid, self.pick_pt(mid, Codec::Opus)));
            if self.video.is_some_and(|(_, pt)| pt.is_none())
                && self.audio.is_some_and(|(_, pt)| pt.is_none())
            {
                return Err(WebRtcError::NoUsableMedia(
                    "the offer has neither H.264 (packetization-mode 1) nor Opus".into(),
                ));
            }
        }
        Ok(())
    }

    /// The payload type to send `codec` with on `mid`: H.264 with packetization-mode 1
    /// when offered (FU-A fragments; mode 0 would need one NAL unit per packet).
    fn pick_pt(&mut self, mid: Mid, codec: Codec) -> Option<Pt> {
        let writer = self.rtc.writer(mid)?;
        let mut best: Option<(Pt, bool)> = None;
        for p in writer.payload_params() {
            let spec = p.spec();
            if spec.codec != codec {
                continue;
            }
            let mode1 = spec.format.packetization_mode == Some(1);
            if best.is_none_or(|(_, m)| !m && mode1) {
                best = Some((p.pt(), mode1));
            }
        }
        best.map(|(pt, _)| pt)
    }

    /// The ICE username fragment the client's checks name this session by.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// What the session carries: (video, audio).
    pub fn media(&self) -> (bool, bool) {
        (self.video.is_some(), self.audio.is_some())
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether the session is over (its resources can go).
    pub fn is_closed(&self) -> bool {
        self.closed || !self.rtc.is_alive()
    }

    /// Frames a publisher sent that were dropped (before the first keyframe, after loss).
    pub fn dropped_frames(&self) -> u64 {
        self.ingest.as_ref().map_or(0, |i| i.dropped)
    }

    /// A datagram for this session arrived on `destination` (the shared port's address,
    /// or the ICE-TCP port's for [`Transport::Tcp`]).
    pub fn receive(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> Result<(), WebRtcError> {
        let Ok(contents) = data.try_into() else {
            // Not STUN, DTLS or RTP: nothing a session could use.
            return Ok(());
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: match transport {
                    Transport::Udp => Protocol::Udp,
                    Transport::Tcp => Protocol::Tcp,
                },
                source,
                destination,
                contents,
            },
        );
        self.input(input)
    }

    /// Time passed: the instant the last [`PeerOutput::Timeout`] named came.
    pub fn timeout(&mut self, now: Instant) -> Result<(), WebRtcError> {
        self.input(Input::Timeout(now))
    }

    fn input(&mut self, input: Input<'_>) -> Result<(), WebRtcError> {
        if self.is_closed() {
            return Ok(());
        }
        self.rtc.handle_input(input).map_err(|e| {
            self.close();
            WebRtcError::Session(e.to_string())
        })
    }

    /// Trickled candidates (an `application/trickle-ice-sdpfrag` body, RFC 8840): every
    /// `a=candidate:` line. Returns how many were taken.
    pub fn add_remote_candidates(&mut self, sdpfrag: &str) -> Result<usize, WebRtcError> {
        let mut n = 0;
        for line in sdpfrag.lines().map(str::trim) {
            let Some(c) = line.strip_prefix("a=") else {
                continue;
            };
            if !c.starts_with("candidate:") {
                continue;
            }
            let cand = Candidate::from_sdp_string(c)
                .map_err(|e| WebRtcError::MalformedCandidate(e.to_string()))?;
            self.rtc.add_remote_candidate(cand);
            n += 1;
        }
        Ok(n)
    }

    /// Ends the session (the client's DELETE, or the server's decision).
    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.rtc.disconnect();
        }
    }

    /// The next thing to do.
    pub fn poll(&mut self) -> PeerOutput {
        loop {
            if let Some(e) = self.events.pop_front() {
                return PeerOutput::Event(e);
            }
            if self.is_closed() {
                return PeerOutput::Timeout(self.start + Duration::from_secs(86_400 * 365));
            }
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    return PeerOutput::Transmit(Transmit {
                        transport: match t.proto {
                            Protocol::Udp => Transport::Udp,
                            _ => Transport::Tcp,
                        },
                        source: t.source,
                        destination: t.destination,
                        data: t.contents.into(),
                    })
                }
                Ok(Output::Timeout(t)) => return PeerOutput::Timeout(t),
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => {
                    self.close();
                    self.events.push_back(PeerEvent::Closed(e.to_string()));
                }
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => {
                self.connected = true;
                self.events.push_back(PeerEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.close();
                self.events
                    .push_back(PeerEvent::Closed("ICE disconnected".into()));
            }
            Event::Closed => {
                self.close();
                self.events
                    .push_back(PeerEvent::Closed("the peer closed the session".into()));
            }
            Event::MediaData(d) => {
                let codec = match d.params.spec().codec {
                    Codec::H264 => InCodec::H264,
                    Codec::Opus => InCodec::Opus,
                    _ => return,
                };
                let Some(ingest) = self.ingest.as_mut() else {
                    return;
                };
                let out = ingest.push(Incoming {
                    codec,
                    rtp_time: d.time.numer(),
                    since_start: d.network_time.saturating_duration_since(self.start),
                    contiguous: d.contiguous,
                    data: Bytes::from_owner(d.data),
                });
                self.events
                    .extend(out.events.into_iter().map(PeerEvent::Media));
                if out.want_keyframe {
                    self.request_keyframe(d.network_time);
                }
            }
            Event::KeyframeRequest(_) if self.role == Role::Play => {
                self.events.push_back(PeerEvent::KeyframeRequest);
            }
            _ => {}
        }
    }

    /// Publish: asks the client for a keyframe (PLI), at most every 500 ms.
    pub fn request_keyframe(&mut self, now: Instant) {
        if self.role != Role::Publish {
            return;
        }
        if self
            .last_keyframe_request
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        let Some((mid, _)) = self.video else {
            return;
        };
        if let Some(mut w) = self.rtc.writer(mid) {
            if w.request_keyframe(None, KeyframeRequestKind::Pli).is_ok() {
                self.last_keyframe_request = Some(now);
            }
        }
    }

    /// Play: the channel's stream changed, ended, or this viewer fell behind: video waits
    /// for the next keyframe, and the next frame anchors the timeline anew.
    pub fn restart_video(&mut self) {
        self.video_started = false;
        self.anchor = None;
    }

    /// Play: one prepared frame for this viewer. Dropped before the session is up, and
    /// video until its first keyframe. Returns whether it was written.
    pub fn send(&mut self, now: Instant, frame: &Outgoing) -> Result<bool, WebRtcError> {
        if self.role != Role::Play || !self.connected || self.is_closed() {
            return Ok(false);
        }
        let (slot, clock) = match frame.kind {
            TrackKind::Video => (self.video, crate::VIDEO_CLOCK),
            TrackKind::Audio => (self.audio, crate::OPUS_CLOCK),
        };
        let Some((mid, Some(pt))) = slot else {
            return Ok(false);
        };
        if frame.kind == TrackKind::Video && !self.video_started {
            if !frame.keyframe {
                return Ok(false);
            }
            self.video_started = true;
        }
        // One wall clock for both kinds (sender reports tie RTP time to it, and the
        // browser lines audio and video up by them): media time is sent at the pace it
        // was stamped, anchored at the first frame sent.
        let secs = frame.rtp_time as f64 / f64::from(clock);
        let (t0, s0) = *self.anchor.get_or_insert((now, secs));
        let wallclock = if secs >= s0 {
            t0 + Duration::from_secs_f64(secs - s0)
        } else {
            t0.checked_sub(Duration::from_secs_f64(s0 - secs))
                .unwrap_or(t0)
        };
        // RTP time is modulo 2^32 with a random start anyway: shifting it keeps it
        // positive whatever the channel's media time was.
        let numer = frame.rtp_time.wrapping_add(1 << 40) as u64;
        let time = str0m::media::MediaTime::new(
            numer,
            if clock == crate::VIDEO_CLOCK {
                str0m::media::Frequency::NINETY_KHZ
            } else {
                str0m::media::Frequency::FORTY_EIGHT_KHZ
            },
        );
        let Some(writer) = self.rtc.writer(mid) else {
            return Ok(false);
        };
        writer
            .write(pt, wallclock, time, frame.payload.clone())
            .map_err(|e| WebRtcError::Session(e.to_string()))?;
        Ok(true)
    }
}
