//! A minimal WHIP/WHEP client over str0m (a full ICE agent) on its own UDP socket, and
//! the one HTTP/1.1 request it needs: for tests and benchmarks of this server (and of
//! the binary), where a browser is too heavy. Not for production clients.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use starling_webrtc::str0m::{
    change::{SdpAnswer, SdpPendingOffer},
    media::{Direction, MediaKind, Mid},
    net::{Protocol, Receive},
    Candidate, Event, Input, Output, Rtc,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
};

/// What a request got back.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a new connection.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpAnswer> {
    let mut s = TcpStream::connect(addr).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    s.write_all(body).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP/1.1 answer");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(HttpAnswer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// A str0m peer on its own UDP socket.
#[derive(Debug)]
pub struct Client {
    pub rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pending: Option<SdpPendingOffer>,
}

impl Client {
    /// A client on a loopback UDP port, offering H.264 and Opus.
    pub async fn new() -> std::io::Result<Client> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder()
            .set_crypto_provider(Arc::new(
                starling_webrtc::str0m::crypto::from_feature_flags(),
            ))
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .build(Instant::now());
        if let Ok(c) = Candidate::host(local, "udp") {
            rtc.add_local_candidate(c);
        }
        Ok(Client {
            rtc,
            socket,
            local,
            pending: None,
        })
    }

    /// An offer of one video and one audio m-line in `dir`; returns it and the mids.
    pub fn offer(&mut self, dir: Direction) -> Option<(String, Mid, Mid)> {
        let mut api = self.rtc.sdp_api();
        let video = api.add_media(MediaKind::Video, dir, None, None, None);
        let audio = api.add_media(MediaKind::Audio, dir, None, None, None);
        let (offer, pending) = api.apply()?;
        self.pending = Some(pending);
        Some((offer.to_sdp_string(), video, audio))
    }

    /// Takes the server's answer to the last offer.
    pub fn answer(&mut self, sdp: &str) -> Result<(), String> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
        let pending = self.pending.take().ok_or("no offer is pending")?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| e.to_string())
    }

    /// Runs until `until` says stop or `limit` passes. `until` sees every event, and is
    /// called with `None` at least every 10 ms (to write media at its pace).
    pub async fn run(
        &mut self,
        limit: Duration,
        mut until: impl FnMut(&mut Rtc, Option<Event>) -> bool,
    ) -> Result<(), String> {
        let end = Instant::now() + limit;
        let mut buf = vec![0u8; 2048];
        loop {
            let timeout = loop {
                match self.rtc.poll_output().map_err(|e| e.to_string())? {
                    Output::Transmit(t) => {
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                    Output::Timeout(t) => break t,
                    Output::Event(e) => {
                        if until(&mut self.rtc, Some(e)) {
                            return Ok(());
                        }
                    }
                }
            };
            if until(&mut self.rtc, None) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            let wait = timeout
                .min(end)
                .min(now + Duration::from_millis(10))
                .saturating_duration_since(now);
            let input = match tokio::time::timeout(wait, self.socket.recv_from(&mut buf)).await {
                Ok(Ok((n, from))) => match buf[..n].try_into() {
                    Ok(contents) => Input::Receive(
                        Instant::now(),
                        Receive {
                            proto: Protocol::Udp,
                            source: from,
                            destination: self.local,
                            contents,
                        },
                    ),
                    Err(_) => continue,
                },
                _ => Input::Timeout(Instant::now()),
            };
            self.rtc.handle_input(input).map_err(|e| e.to_string())?;
        }
    }
}

/// Writes one prepared frame on `mid`, with the payload type of its codec (H.264 for
/// video, Opus for audio).
pub fn write_frame(
    rtc: &mut Rtc,
    mid: Mid,
    frame: &starling_webrtc::Outgoing,
) -> Result<(), String> {
    use starling_webrtc::str0m::{
        format::Codec,
        media::{Frequency, MediaTime},
    };
    let (codec, clock) = match frame.kind {
        starling_media::TrackKind::Video => (Codec::H264, Frequency::NINETY_KHZ),
        starling_media::TrackKind::Audio => (Codec::Opus, Frequency::FORTY_EIGHT_KHZ),
    };
    let w = rtc.writer(mid).ok_or("no such media")?;
    let pt = w
        .payload_params()
        .find(|p| p.spec().codec == codec)
        .ok_or("the codec was not negotiated")?
        .pt();
    let time = MediaTime::new(frame.rtp_time.max(0) as u64, clock);
    w.write(pt, Instant::now(), time, frame.payload.clone())
        .map_err(|e| e.to_string())
}

/// The picture size an Annex B H.264 keyframe's SPS gives, if it carries one.
pub fn keyframe_size(annexb: &[u8]) -> Option<(u32, u32)> {
    use starling_media::annexb::{video_from_annexb, VideoCodec};
    let au = video_from_annexb(VideoCodec::H264, &bytes::Bytes::copy_from_slice(annexb)).ok()?;
    match au.parameter_sets?.to_config(VideoCodec::H264).ok()? {
        starling_media::CodecConfig::H264(c) => Some((c.width, c.height)),
        _ => None,
    }
}
