#!/usr/bin/env python3
"""Connection flood against one Starling node (driven by bench/flood.sh).

Opens up to --http idle/slowloris HTTP connections and --rtmp idle/slowloris RTMP
connections, spread over the loopback addresses 127.0.0.2 .. 127.0.0.<addresses + 1> (127.0.0.1 is
left to the good clients, which the per-address caps would otherwise lump in), and
keeps them as long as the server lets them live: every few seconds each sends one more
byte of a request head (HTTP) or of a handshake (RTMP) that it never finishes. A
connection the server closes is counted and reopened, until --seconds have passed; then
everything is closed and the tallies are printed as one JSON line.

Only loopback addresses are used; the run is bounded in connections and time.
"""

import argparse
import asyncio
import json
import random
import time


class Tally:
    def __init__(self):
        self.opened = 0
        self.refused = 0  # closed by the server within a second of opening
        self.cut = 0  # closed by the server later (timeouts)
        self.connect_errors = 0
        self.open_now = 0
        self.peak_open = 0
        self.lifetimes = []


async def one(kind, host, port, src, stop_at, tally, trickle):
    """One connection slot: open, trickle, and reopen when the server hangs up."""
    first = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " if kind == "http" else b"\x03"
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=(src, 0)), 5
            )
        except (OSError, asyncio.TimeoutError):
            tally.connect_errors += 1
            await asyncio.sleep(1)
            continue
        tally.opened += 1
        tally.open_now += 1
        tally.peak_open = max(tally.peak_open, tally.open_now)
        opened = time.monotonic()
        try:
            writer.write(first)
            await writer.drain()
            while time.monotonic() < stop_at:
                try:
                    data = await asyncio.wait_for(reader.read(4096), trickle)
                except asyncio.TimeoutError:
                    writer.write(b"a" if kind == "http" else b"\x00")
                    await writer.drain()
                    continue
                if not data:
                    break
                # RTMP: S0/S1/S2 arrive; we never send C1's rest, so keep waiting.
        except OSError:
            pass
        finally:
            tally.open_now -= 1
            alive = time.monotonic() - opened
            if time.monotonic() < stop_at:
                if alive < 1.0:
                    tally.refused += 1
                    # Refused at once: do not hammer the accept loop.
                    await asyncio.sleep(1 + random.random())
                else:
                    tally.cut += 1
                    tally.lifetimes.append(alive)
            writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--rtmp-port", type=int, required=True)
    ap.add_argument("--http", type=int, default=5000)
    ap.add_argument("--rtmp", type=int, default=5000)
    ap.add_argument("--addresses", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--trickle", type=float, default=2.0)
    a = ap.parse_args()
    assert 1 <= a.addresses <= 250, "only 127.0.0.2 .. 127.0.0.251"
    assert a.http + a.rtmp <= 20000, "bounded: at most 20000 connections"
    assert a.seconds <= 600, "bounded: at most 600 s"
    stop_at = time.monotonic() + a.seconds
    tallies = {"http": Tally(), "rtmp": Tally()}
    tasks = []
    for kind, n, port in (("http", a.http, a.http_port), ("rtmp", a.rtmp, a.rtmp_port)):
        for i in range(n):
            src = f"127.0.0.{2 + i % a.addresses}"
            tasks.append(one(kind, "127.0.0.1", port, src, stop_at, tallies[kind], a.trickle))
    # Ramp up over the first seconds rather than in one burst of SYNs.
    async def staggered(i, t):
        await asyncio.sleep(i * 0.0003)
        await t
    await asyncio.gather(*(staggered(i, t) for i, t in enumerate(tasks)))
    out = {}
    for kind, t in tallies.items():
        life = sorted(t.lifetimes)
        out[kind] = {
            "opened": t.opened,
            "refused_at_once": t.refused,
            "cut_later": t.cut,
            "connect_errors": t.connect_errors,
            "peak_open": t.peak_open,
            "median_lifetime_s": round(life[len(life) // 2], 1) if life else None,
        }
    print(json.dumps(out))


asyncio.run(main())
