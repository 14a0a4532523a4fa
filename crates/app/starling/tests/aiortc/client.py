"""A WHIP publisher and a WHEP viewer on aiortc: a WebRTC stack independent of the
server's (str0m), for tests/webrtc.rs. Prints one JSON line saying what happened; exits 0
even when the session failed (the test reads the line and says why).

  client.py whip URL KEY SECONDS   publish aiortc's test picture (640x480 at 30 fps, H.264)
                                   and its audio (Opus) for SECONDS once connected
  client.py whep URL SECONDS       play for SECONDS; count decoded video and audio frames

Both end their session with DELETE on the Location the server answered (RFC 9725).
Run through scripts/aiortc, which provides the pinned aiortc in a venv.
"""
import asyncio
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from aiortc import (AudioStreamTrack, RTCPeerConnection, RTCSessionDescription,
                    VideoStreamTrack)
from aiortc.rtcrtpsender import RTCRtpSender

CONNECT_TIMEOUT = 10.0


def prefer_h264(transceiver):
    """H.264 first: the server forwards H.264 (its VP8 pass-through is planned)."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    h264 = [c for c in codecs if c.mimeType.lower() == "video/h264"]
    rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx"]
    transceiver.setCodecPreferences(h264 + rtx)


def request(method, url, body=None, key=None):
    headers = {"Content-Type": "application/sdp"} if body is not None else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = body.encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.headers.get("Location"), res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, None, e.read().decode(errors="replace")


async def negotiate(pc, url, key=None):
    """Offer, POST, answer. Returns (status, absolute Location or None, error body)."""
    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    status, location, body = await loop.run_in_executor(
        None, request, "POST", url, pc.localDescription.sdp, key)
    if status != 201:
        return status, None, body
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return status, urllib.parse.urljoin(url, location) if location else None, None


async def wait_connected(pc):
    t0 = time.monotonic()
    while pc.connectionState != "connected" and time.monotonic() - t0 < CONNECT_TIMEOUT:
        if pc.connectionState == "failed":
            break
        await asyncio.sleep(0.02)
    return pc.connectionState == "connected", round((time.monotonic() - t0) * 1000)


async def delete(location, key=None):
    if not location:
        return None
    loop = asyncio.get_running_loop()
    status, _, _ = await loop.run_in_executor(None, request, "DELETE", location, None, key)
    return status


async def session(pc, url, key, seconds):
    """Negotiates, stays SECONDS once connected, ends with DELETE; what happened."""
    status, location, error = await negotiate(pc, url, key)
    out = {"status": status, "location": location}
    if error is not None:
        await pc.close()
        return {**out, "connected": False, "error": error}
    connected, connect_ms = await wait_connected(pc)
    if connected:
        await asyncio.sleep(seconds)
    out.update(connected=connected, connect_ms=connect_ms,
               delete_status=await delete(location, key))
    await pc.close()
    return out


async def whip(url, key, seconds):
    pc = RTCPeerConnection()
    prefer_h264(pc.addTransceiver(VideoStreamTrack(), direction="sendonly"))
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    return await session(pc, url, key, seconds)


async def whep(url, seconds):
    pc = RTCPeerConnection()
    prefer_h264(pc.addTransceiver("video", direction="recvonly"))
    pc.addTransceiver("audio", direction="recvonly")
    got = {"video_frames": 0, "audio_frames": 0, "width": None, "height": None,
           "first_video_ms": None}
    t0 = time.monotonic()

    async def consume(track):
        while True:
            try:
                frame = await track.recv()
            except Exception:  # the track ended: MediaStreamError at close
                return
            got[f"{track.kind}_frames"] += 1
            if track.kind == "video":
                got["width"], got["height"] = frame.width, frame.height
                if got["first_video_ms"] is None:
                    got["first_video_ms"] = round((time.monotonic() - t0) * 1000)

    pc.on("track", lambda track: asyncio.ensure_future(consume(track)))
    return {**await session(pc, url, None, seconds), **got}


async def main(argv):
    if len(argv) == 5 and argv[1] == "whip":
        result = await whip(argv[2], argv[3], float(argv[4]))
    elif len(argv) == 4 and argv[1] == "whep":
        result = await whep(argv[2], float(argv[3]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv)))
