#!/usr/bin/env python3
"""Raw video frames with the wall clock drawn in, written to stdout in real time.

The glass-to-glass latency benchmark (bench/latency.sh) pipes this into one ffmpeg
(`-f rawvideo -pix_fmt yuv420p`), which encodes and publishes the same stream to every
server under test. Each frame carries the time at which it was made (Unix time in ms,
read from the system's wall clock just before the frame is written) as a code of big
black and white blocks in a band at the top; bench/latency/reader.mjs reads it back from
the decoded <video> frame in Chromium on the same machine, so `now - stamp` is the
latency from the moment the frame existed to the moment it was on screen.

The code (CODE_ROWS x CODE_COLS blocks of BLOCK x BLOCK pixels, row by row, 1 = white):
  4 marker bits 1010 | 48 bits of the time in ms, most significant first |
  8 bits CRC-8 (polynomial 0x07) of those 6 bytes, big-endian | 4 marker bits 0101
The rest of the picture is a grey noise texture panning sideways, so the encoder has
detail and motion to code as well (motion search finds it; the bitrate stays moderate). Frames are paced by the monotonic clock at --fps; a frame that
is late is still sent (never skipped), so the stamp is always the true wall clock.
"""
import argparse
import os
import sys
import time

BLOCK = 40
CODE_COLS = 32
CODE_ROWS = 2
BLACK, WHITE, GREY = 16, 235, 96
PAN = 4  # pixels per frame


def crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def code_bits(ms: int) -> list:
    payload = ms.to_bytes(6, "big")
    word = (0b1010 << 60) | (ms << 12) | (crc8(payload) << 4) | 0b0101
    return [(word >> (63 - i)) & 1 for i in range(64)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=120.0)
    a = ap.parse_args()
    w, h = a.width, a.height
    if w < BLOCK * CODE_COLS or h < BLOCK * CODE_ROWS + 200 or w % 2 or h % 2:
        ap.error(f"the picture must be even and at least {BLOCK * CODE_COLS}x{BLOCK * CODE_ROWS + 200}")
    pad = bytes([GREY]) * (w - BLOCK * CODE_COLS)
    blocks = {0: bytes([BLACK]) * BLOCK, 1: bytes([WHITE]) * BLOCK}
    body_h = h - BLOCK * CODE_ROWS
    # Noise in 56..151, twice as wide as the picture, for the pan to wrap around.
    to_grey = bytes(56 + v * 3 // 8 for v in range(256))
    texture = [os.urandom(w).translate(to_grey) * 2 for _ in range(body_h)]
    chroma = bytes([128]) * (w // 2) * (h // 2) * 2
    out = sys.stdout.buffer
    start = time.monotonic()
    frames = int(a.seconds * a.fps)
    for i in range(frames):
        delay = start + i / a.fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        bits = code_bits(time.time_ns() // 1_000_000)
        band = b"".join(
            (b"".join(blocks[b] for b in bits[r * CODE_COLS:(r + 1) * CODE_COLS]) + pad) * BLOCK
            for r in range(CODE_ROWS)
        )
        x = (i * PAN) % w
        body = b"".join(row[x:x + w] for row in texture)
        try:
            out.write(band + body + chroma)
            out.flush()
        except BrokenPipeError:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
