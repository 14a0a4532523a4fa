#!/usr/bin/env python3
"""libsrt-recv: Debian's libsrt 1.5 as a receiver through its C API (ctypes), for
bench/srt-engines.sh. What an application reading with srt_recvmsg() until it fails
gets, as opposed to srt-live-transmit, which stops at its own idea of a broken source.

Listens for one caller in live mode, writes every payload to --out, and once
srt_recvmsg() fails keeps calling it for --drain seconds to see whether libsrt still
hands out what it held for TSBPD. Prints one JSON line.

usage: libsrt-recv.py PORT OUT LATENCY_MS [DRAIN_S]
SRT_TSBPD=0 in the environment turns TSBPD off on the receiver (SRTO_TSBPDMODE): packets
are handed out as soon as they are in order, not held until their time to play.
"""
import os
import ctypes
import json
import socket
import struct
import sys
import time

SRTO_RCVSYN, SRTO_TSBPDMODE, SRTO_LATENCY = 2, 22, 23
STATES = {1: "init", 2: "opened", 3: "listening", 4: "connecting", 5: "connected",
          6: "broken", 7: "closing", 8: "closed", 9: "nonexist"}


def main():
    port, out, latency = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    drain = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0
    srt = ctypes.CDLL("libsrt.so.1.5")
    srt.srt_getlasterror_str.restype = ctypes.c_char_p
    srt.srt_startup()

    def setint(s, opt, v):
        x = ctypes.c_int(v)
        if srt.srt_setsockflag(s, opt, ctypes.byref(x), 4) != 0:
            raise SystemExit(f"setsockflag {opt}: {srt.srt_getlasterror_str().decode()}")

    ls = srt.srt_create_socket()
    setint(ls, SRTO_LATENCY, latency)
    tsbpd = os.environ.get("SRT_TSBPD", "1") != "0"
    if not tsbpd:
        setint(ls, SRTO_TSBPDMODE, 0)
    sa = struct.pack("<HH4s8x", socket.AF_INET, socket.htons(port), socket.inet_aton("0.0.0.0"))
    if srt.srt_bind(ls, sa, len(sa)) != 0 or srt.srt_listen(ls, 1) != 0:
        raise SystemExit(f"bind/listen: {srt.srt_getlasterror_str().decode()}")
    print(f"libsrt-recv: listening on :{port}", file=sys.stderr)
    s = srt.srt_accept(ls, None, None)
    if s < 0:
        raise SystemExit(f"accept: {srt.srt_getlasterror_str().decode()}")
    buf = ctypes.create_string_buffer(1500)
    nbytes = packets = after = 0
    err = state = None
    with open(out, "wb") as f:
        while True:
            n = srt.srt_recvmsg(s, buf, 1500)
            if n <= 0:
                err = srt.srt_getlasterror_str().decode()
                state = STATES.get(srt.srt_getsockstate(s), "?")
                break
            f.write(buf.raw[:n])
            nbytes += n
            packets += 1
        # Does anything still come out after the failure? (A broken socket refuses
        # options, so this polls the blocking call; it fails at once when broken.)
        try:
            setint(s, SRTO_RCVSYN, 0)
        except SystemExit:
            pass
        end = time.monotonic() + drain
        while time.monotonic() < end:
            n = srt.srt_recvmsg(s, buf, 1500)
            if n > 0:
                f.write(buf.raw[:n])
                after += n
            else:
                time.sleep(0.01)
    srt.srt_close(s)
    srt.srt_close(ls)
    print(json.dumps({"engine": "libsrt 1.5 (C API)", "tsbpd": tsbpd, "bytes": nbytes + after,
                      "packets": packets, "error": err, "state_at_error": state,
                      "bytes_after_error": after}))


main()
