// WHIP and WHEP clients for the studio and the watch page (docs/webrtc.md), as
// `window.StarlingRTC`:
//
//   const s = await StarlingRTC.play('/whep/CHANNEL', videoElement, { token });
//   const s = await StarlingRTC.publish('/whip/CHANNEL', streamKey, mediaStream, { maxBitrate });
//   await StarlingRTC.stats(s.pc, previous)  // bitrate, fps, RTT, loss, picture size
//   s.close()                                // DELETE the session, close the connection
//
// The server is ICE-lite with host candidates in its answer, so the offer goes out at
// once, without waiting for this side's candidates: the browser's connectivity checks
// reach the server's one UDP port, which learns the browser's address from them.
// Refusals throw an Error whose `status` is the HTTP status and whose message is the
// server's one-line cause.
'use strict';

(() => {
  const CONNECT_TIMEOUT_MS = 8000;

  // H.264 with packetization-mode 1 first (what the server takes and passes on), the
  // browser's other codecs after it.
  function preferH264(transceiver) {
    if (!transceiver.setCodecPreferences || !window.RTCRtpReceiver || !RTCRtpReceiver.getCapabilities) return;
    const caps = RTCRtpReceiver.getCapabilities('video');
    if (!caps) return;
    const isH264 = (c) => c.mimeType.toLowerCase() === 'video/h264';
    const h264 = caps.codecs.filter((c) => isH264(c) && /packetization-mode=1/.test(c.sdpFmtpLine || ''));
    if (h264.length === 0) return;
    const rest = caps.codecs.filter((c) => !isH264(c));
    try {
      transceiver.setCodecPreferences([...h264, ...rest]);
    } catch {
      // Some browsers refuse preferences mixing directions: the server picks H.264 anyway.
    }
  }

  async function negotiate(pc, url, headers) {
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', ...headers },
      body: pc.localDescription.sdp,
    });
    const text = await res.text();
    if (res.status !== 201) {
      const err = new Error(text.trim() || `HTTP ${res.status}`);
      err.status = res.status;
      throw err;
    }
    // The session's URL (for DELETE), relative to the resource's.
    const base = new URL(url, window.location.href);
    const resource = new URL(res.headers.get('Location') || url, base).toString();
    await pc.setRemoteDescription({ type: 'answer', sdp: text });
    return resource;
  }

  // Resolves when ICE and DTLS are up; rejects when they fail or take too long.
  function connected(pc) {
    return new Promise((resolve, reject) => {
      if (pc.connectionState === 'connected') {
        resolve();
        return;
      }
      const timer = setTimeout(() => reject(new Error('WebRTC did not connect (UDP blocked?)')), CONNECT_TIMEOUT_MS);
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'connected') {
          clearTimeout(timer);
          resolve();
        } else if (pc.connectionState === 'failed' || pc.connectionState === 'closed') {
          clearTimeout(timer);
          reject(new Error(`WebRTC connection ${pc.connectionState}`));
        }
      });
    });
  }

  function session(pc, resource) {
    let closed = false;
    return {
      pc,
      resource,
      connected: connected(pc),
      close() {
        if (closed) return;
        closed = true;
        pc.close();
        fetch(resource, { method: 'DELETE', keepalive: true }).catch(() => {});
      },
    };
  }

  async function play(url, video, { token } = {}) {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    preferH264(pc.addTransceiver('video', { direction: 'recvonly' }));
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const stream = new MediaStream();
    pc.addEventListener('track', (e) => {
      // Play as soon as frames arrive: no extra playout delay beyond what smoothness needs.
      if ('jitterBufferTarget' in e.receiver) e.receiver.jitterBufferTarget = 0;
      stream.addTrack(e.track);
      if (video.srcObject !== stream) video.srcObject = stream;
    });
    try {
      const resource = await negotiate(pc, url, token ? { Authorization: `Bearer ${token}` } : {});
      return session(pc, resource);
    } catch (err) {
      pc.close();
      throw err;
    }
  }

  async function publish(url, key, media, { maxBitrate } = {}) {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    for (const track of media.getTracks()) {
      const init = { direction: 'sendonly', streams: [media] };
      if (track.kind === 'video' && maxBitrate) init.sendEncodings = [{ maxBitrate }];
      const t = pc.addTransceiver(track, init);
      if (track.kind === 'video') preferH264(t);
    }
    try {
      const resource = await negotiate(pc, url, { Authorization: `Bearer ${key}` });
      return session(pc, resource);
    } catch (err) {
      pc.close();
      throw err;
    }
  }

  // Bitrate (bit/s, since `prev`), frames per second, RTT (s), packets lost and the
  // picture size of the connection's video, sent or received.
  async function stats(pc, prev) {
    const report = await pc.getStats();
    const now = performance.now();
    const out = { at: now, bytes: 0, bitrate: null, fps: null, rtt: null, lost: 0, width: null, height: null };
    report.forEach((s) => {
      if ((s.type === 'outbound-rtp' || s.type === 'inbound-rtp') && !s.isRemote) {
        out.bytes += s.bytesSent || s.bytesReceived || 0;
        if (s.kind === 'video') {
          out.fps = s.framesPerSecond ?? out.fps;
          out.width = s.frameWidth ?? out.width;
          out.height = s.frameHeight ?? out.height;
        }
        out.lost += s.packetsLost || 0;
      }
      if (s.type === 'remote-inbound-rtp') out.lost += s.packetsLost || 0;
      if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime !== undefined) {
        out.rtt = s.currentRoundTripTime;
      }
    });
    if (prev && now > prev.at) out.bitrate = ((out.bytes - prev.bytes) * 8 * 1000) / (now - prev.at);
    return out;
  }

  window.StarlingRTC = { play, publish, stats };
})();
