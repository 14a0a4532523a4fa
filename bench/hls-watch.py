#!/usr/bin/env python3
"""When each LL-HLS part of a live stream is first listed, for the impaired-link benches.

  hls-watch.py watch URL OUT.json   poll the media playlist URL every 50 ms until it
                                    ends (EXT-X-ENDLIST) or SIGTERM; write what was seen
  hls-watch.py summary OUT.json T0 TM  the figures: start-up from the sender's start
                                    T0, latency from its first media packet TM (epoch s)

A part's media end is where it ends on the stream's timeline: the EXTINF durations of
the segments before its own (every segment stays listed, the DVR window being hours)
plus the durations of its segment's parts up to it. The sender sends in real time
(`ffmpeg -re`, its clock starting as it sends the first media, once connected), so it
has read that media by TM + media end; the time from then to the
part's first listing is what the summary calls its end-to-end latency. Polling every
50 ms adds 0-50 ms to each time seen. The stream's last part, listed only when the
publish ends, is left out of the latency and the gaps.
"""

import json
import re
import signal
import statistics
import sys
import time
import urllib.request

PART = re.compile(r'#EXT-X-PART:.*?DURATION=([0-9.]+).*?URI="[^"]*/(\d+)\.(\d+)\.m4s"')
EXTINF = re.compile(r"#EXTINF:([0-9.]+)")
SEGMENT = re.compile(r"/(\d+)\.m4s$")


def parse(text):
    """(parts {(msn, i): duration}, segments {msn: duration}, ended)."""
    parts, segments, extinf = {}, {}, None
    for line in text.splitlines():
        m = PART.match(line)
        if m:
            parts[(int(m.group(2)), int(m.group(3)))] = float(m.group(1))
            continue
        m = EXTINF.match(line)
        if m:
            extinf = float(m.group(1))
            continue
        m = SEGMENT.search(line)
        if m and extinf is not None and not line.startswith("#"):
            segments[int(m.group(1))] = extinf
            extinf = None
    return parts, segments, "#EXT-X-ENDLIST" in text


def watch(url, out):
    seen, durations, segments, stop = {}, {}, {}, []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                text = r.read().decode()
        except (OSError, ValueError):
            time.sleep(0.05)
            continue
        now = time.time()
        parts, segs, ended = parse(text)
        for key, d in parts.items():
            seen.setdefault(key, now)
            durations[key] = d
        segments.update(segs)
        if ended:
            break
        time.sleep(0.05)
    with open(out, "w") as f:
        json.dump(
            {
                "parts": [[k[0], k[1], durations[k], seen[k]] for k in sorted(seen)],
                "segments": {str(k): v for k, v in segments.items()},
            },
            f,
        )


def summary(out, t0, tm):
    d = json.load(open(out))
    parts = d["parts"]
    if not parts:
        print(json.dumps({"startup_s": None}))
        return
    segments = {int(k): v for k, v in d["segments"].items()}
    first_msn = min(p[0] for p in parts)
    starts, acc = {}, 0.0
    for msn in range(first_msn, max(p[0] for p in parts) + 1):
        starts[msn] = acc
        # A segment whose EXTINF was never seen (the last, unfinished one) is last.
        acc += segments.get(msn, 0.0)
    within, latencies = {}, []
    for msn, i, dur, seen in parts:
        within[msn] = within.get(msn, 0.0) + dur
        latencies.append(seen - (tm + starts[msn] + within[msn]))
    # The last part is listed only once the publish has ended (its end is the stream's
    # end), which says how the sender closed, not how the link carried the stream.
    if len(parts) > 1:
        parts, latencies = parts[:-1], latencies[:-1]
    times = sorted(p[3] for p in parts)
    gaps = [b - a for a, b in zip(times, times[1:])]
    print(
        json.dumps(
            {
                "startup_s": times[0] - t0,
                "parts": len(parts),
                "latency_p50_s": statistics.median(latencies),
                "latency_max_s": max(latencies),
                "longest_gap_s": max(gaps, default=0.0),
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "watch":
        watch(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "summary":
        summary(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit(__doc__)
