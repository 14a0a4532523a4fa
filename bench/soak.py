#!/usr/bin/env python3
"""Soak: one `starling serve` left running with publishers that come and go and viewers
that join and leave, as a busy node sees them for a season, compressed into minutes.

- Steady publishers stay on for the whole run; flapping publishers publish for a while,
  drop, and come back after a pause that is sometimes inside the reconnect grace (the
  playlist continues across a seam) and sometimes past it (the run ends, a new one
  starts). Every publisher is a real ffmpeg (`-re -stream_loop -1 -c copy` of a clip).
- Viewers are real ffmpeg players (`-c copy -f null`, no decoding, so the node and not
  the players use the CPU): LL-HLS playlists over HTTP and RTMP play, each for a random
  while, then the next one joins. Viewers of steady channels must never fail; viewers of
  flapping channels may find the channel between runs (counted, not failures).
- Every few seconds: the node's RSS, CPU, open file descriptors and threads (/proc), the
  bytes under its data directory, and counters from /metrics.

Failures: a publisher or steady viewer that exits with an error, an ERROR line in the
node's log, the node exiting, or a /metrics counter of dropped writes or refused
connections that moves. RSS and disk are judged after their windows have filled: RSS
within +-10 % of its mean; disk without a trend (the mean of the last quarter within
+-10 % of the first quarter's; the retention window is shortened for the run with
`--dvr`, so that it fills early).

Usage: bench/soak.py --starling BIN [--seconds 1800] [--steady 2] [--flapping 6]
       [--viewers 16] [--dvr 30] [--grace 5] [--out bench/results]
Prints a Markdown summary; the samples go to OUT/soak-<time>.csv. Loopback only.
"""

import argparse
import csv
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_clip(path):
    """A 10 s 720p x264 + AAC clip at about 2 Mbit/s with a 1 s GOP, made once."""
    if os.path.exists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "10",
         "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p",
         "-b:v", "1900k", "-maxrate", "1900k", "-bufsize", "3800k",
         "-c:a", "aac", "-b:a", "128k", "-f", "flv", path],
        check=True,
    )


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.failures = []

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def fail(self, what):
        with self.lock:
            self.failures.append(f"{time.strftime('%H:%M:%S')} {what}")
            self.counts["failures"] = self.counts.get("failures", 0) + 1


def tail(text, n=3):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:])


def publisher(name, key, rtmp, clip, steady, grace, stop, tally, rng):
    while not stop.is_set():
        on = None if steady else rng.uniform(8, 45)
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", clip,
               "-c", "copy"]
        if on is not None:
            cmd += ["-t", f"{on:.1f}"]
        cmd += ["-f", "flv", f"rtmp://127.0.0.1:{rtmp}/live/{key}"]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        tally.add("publishes")
        while p.poll() is None and not stop.is_set():
            time.sleep(0.2)
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
            break
        err = p.stderr.read()
        if p.returncode != 0:
            tally.fail(f"publisher {name} exited {p.returncode}: {tail(err)}")
        if steady:
            # A steady publisher that stopped is a failure already counted; carry on.
            time.sleep(1)
            continue
        # Off for a while: sometimes within the reconnect grace, sometimes past it.
        within = rng.random() < 0.5
        pause = rng.uniform(0.5, grace * 0.6) if within else rng.uniform(grace + 3, grace + 15)
        tally.add("reconnects_within_grace" if within else "restarts_after_grace")
        stop.wait(pause)


def viewer(i, http, rtmp, steady, flapping, stop, tally, rng):
    while not stop.is_set():
        on_steady = rng.random() < 0.7 or not flapping
        ch = rng.choice(steady if on_steady else flapping)
        secs = rng.uniform(5, 30)
        if rng.random() < 0.75:
            kind, url = "hls", f"http://127.0.0.1:{http}/live/{ch}/index.m3u8"
            args = ["-live_start_index", "-1"]
        else:
            kind, url = "rtmp", f"rtmp://127.0.0.1:{rtmp}/live/{ch}"
            args = []
        cmd = ["ffmpeg", "-nostdin", "-v", "error", *args, "-i", url, "-t", f"{secs:.1f}",
               "-c", "copy", "-f", "null", "-"]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        tally.add(f"views_{kind}")
        deadline = time.monotonic() + secs + 30
        while p.poll() is None and not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.2)
        if p.poll() is None:
            p.kill()
            p.wait()
            if not stop.is_set():
                if on_steady:
                    tally.fail(f"viewer {i} ({kind} {ch}) hung past its time")
                else:
                    tally.add("flapping_views_hung")
            break
        err = p.stderr.read()
        if p.returncode != 0 or "rror" in err:
            if on_steady:
                tally.fail(f"viewer {i} ({kind} {ch}) exited {p.returncode}: {tail(err)}")
            else:
                tally.add("flapping_views_not_live")
        stop.wait(rng.uniform(0, 2))


def proc_stats(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    return cpu, rss, fds, threads


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


WATCHED = {
    "writes_dropped": re.compile(r"^starling_store_writes_dropped_total (\d+)", re.M),
    "write_errors": re.compile(r"^starling_store_write_errors_total (\d+)", re.M),
    "http_refused": re.compile(r"^starling_http_connections_refused_total\{[^}]*\} (\d+)", re.M),
    "rtmp_refused": re.compile(
        r"^starling_rtmp_(?:connections_refused|connections_refused_per_address|publishes_refused)_total (\d+)",
        re.M),
    "rtmp_protocol_errors": re.compile(r"^starling_rtmp_protocol_errors_total (\d+)", re.M),
    # Not failures: a blocked request may time out when its channel drops mid-wait.
    "blocking_timeouts": re.compile(r"^starling_blocking_timeouts_total (\d+)", re.M),
}
FAIL_IF_MOVED = ["writes_dropped", "write_errors", "http_refused", "rtmp_refused", "rtmp_protocol_errors"]


def metrics(http):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    return {k: sum(int(x) for x in rx.findall(text)) for k, rx in WATCHED.items()}


def spread(xs):
    mean = sum(xs) / len(xs)
    return mean, (max(xs) / mean - 1) * 100, (1 - min(xs) / mean) * 100


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--starling", required=True)
    ap.add_argument("--seconds", type=int, default=1800)
    ap.add_argument("--steady", type=int, default=2)
    ap.add_argument("--flapping", type=int, default=6)
    ap.add_argument("--viewers", type=int, default=16)
    ap.add_argument("--dvr", type=int, default=30, help="DVR (retention) window, seconds")
    ap.add_argument("--grace", type=int, default=5, help="reconnect grace, seconds")
    ap.add_argument("--sample", type=float, default=5.0)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    clip = os.path.join(a.out, "soak-clip.flv")
    make_clip(clip)

    work = tempfile.mkdtemp(prefix="starling-soak.")
    http, rtmp = free_port(), free_port()
    steady = [f"steady{i}" for i in range(a.steady)]
    flapping = [f"flap{i}" for i in range(a.flapping)]
    conf = [
        "[server]", f'http_listen = "127.0.0.1:{http}"', f'data_dir = "{work}/data"',
        "[rtmp]", f'listen = "127.0.0.1:{rtmp}"',
        "[origin]", f"dvr_window_secs = {a.dvr}", f"reconnect_grace_ms = {a.grace * 1000}",
    ]
    for name in steady + flapping:
        conf += ["[[channels]]", f'name = "{name}"', f'stream_key = "soak-{name}-key"']
    with open(f"{work}/starling.toml", "w") as f:
        f.write("\n".join(conf) + "\n")
    log = open(f"{work}/starling.log", "w")
    node = subprocess.Popen([a.starling, "serve", "--config", f"{work}/starling.toml"],
                            stdout=subprocess.DEVNULL, stderr=log,
                            env={**os.environ, "RUST_LOG": "warn"})
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)

    tally = Tally()
    stop = threading.Event()
    threads = []
    for name in steady:
        threads.append(threading.Thread(target=publisher, daemon=True, args=(
            name, f"soak-{name}-key", rtmp, clip, True, a.grace, stop, tally, random.Random(rng.random()))))
    for name in flapping:
        threads.append(threading.Thread(target=publisher, daemon=True, args=(
            name, f"soak-{name}-key", rtmp, clip, False, a.grace, stop, tally, random.Random(rng.random()))))
    for t in threads:
        t.start()
    time.sleep(6)  # the steady channels' first segments, before any viewer
    for i in range(a.viewers):
        t = threading.Thread(target=viewer, daemon=True, args=(
            i, http, rtmp, steady, flapping, stop, tally, random.Random(rng.random())))
        t.start()
        threads.append(t)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    csv_path = os.path.join(a.out, f"soak-{stamp}.csv")
    rows = []
    start = time.monotonic()
    first_metrics = metrics(http)
    last_cpu, last_t = proc_stats(node.pid)[0], start
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "rss_mib", "cpu_pct", "fds", "threads", "disk_mib", *WATCHED])
        while time.monotonic() - start < a.seconds:
            time.sleep(a.sample)
            if node.poll() is not None:
                tally.fail(f"the node exited with {node.returncode}")
                break
            now = time.monotonic()
            cpu, rss, fds, nthreads = proc_stats(node.pid)
            m = metrics(http) or {}
            row = [round(now - start, 1), round(rss / 2**20, 1),
                   round((cpu - last_cpu) / (now - last_t) * 100, 1), fds, nthreads,
                   round(dir_bytes(f"{work}/data") / 2**20, 1), *[m.get(k, "") for k in WATCHED]]
            last_cpu, last_t = cpu, now
            w.writerow(row)
            f.flush()
            rows.append(row)
    final_metrics = metrics(http) or {}
    stop.set()
    for t in threads:
        t.join(15)
    node.send_signal(signal.SIGTERM)
    try:
        node.wait(30)
    except subprocess.TimeoutExpired:
        tally.fail("the node did not stop within 30 s of SIGTERM")
        node.kill()
    log.close()
    with open(f"{work}/starling.log") as f:
        log_lines = f.read().splitlines()
    errors = [line for line in log_lines if " ERROR " in line or '"level":"ERROR"' in line]
    warns = [line for line in log_lines if " WARN " in line or '"level":"WARN"' in line]
    for line in errors[:10]:
        tally.fail(f"node log: {line[:200]}")
    for k in FAIL_IF_MOVED:
        moved = final_metrics.get(k, 0) - (first_metrics or {}).get(k, 0)
        if moved:
            tally.fail(f"/metrics {k} moved by {moved}")

    # RSS and disk after their windows filled: the longest publish (45 s) plus the DVR
    # window plus the grace, then a minute to settle.
    settle = 45 + a.dvr + a.grace + 60
    late = [r for r in rows if r[0] >= settle]
    print(f"## Soak: {a.seconds} s, {a.steady} steady + {a.flapping} flapping publishers, "
          f"{a.viewers} viewers, DVR {a.dvr} s, grace {a.grace} s ({os.cpu_count()} cores)\n")
    c = tally.counts
    print(f"- publishes {c.get('publishes', 0)} (reconnects within the grace "
          f"{c.get('reconnects_within_grace', 0)}, new runs after it {c.get('restarts_after_grace', 0)}); "
          f"views: HLS {c.get('views_hls', 0)}, RTMP {c.get('views_rtmp', 0)}; "
          f"flapping-channel views that found it off air {c.get('flapping_views_not_live', 0)}")
    print(f"- node log: {len(errors)} ERROR, {len(warns)} WARN lines")
    if late:
        rss_mean, rss_up, rss_down = spread([r[1] for r in late])
        disk_mean, disk_up, disk_down = spread([r[5] for r in late])
        cpu_mean = sum(r[2] for r in late) / len(late)
        print(f"- after {settle} s ({len(late)} samples): RSS mean {rss_mean:.0f} MiB "
              f"(+{rss_up:.1f} % / -{rss_down:.1f} %), disk mean {disk_mean:.0f} MiB "
              f"(+{disk_up:.1f} % / -{disk_down:.1f} %), CPU mean {cpu_mean:.0f} % of a core, "
              f"fds {min(r[3] for r in late)}-{max(r[3] for r in late)}, "
              f"threads {min(r[4] for r in late)}-{max(r[4] for r in late)}")
        first, last = late[: max(1, len(late) // 4)], late[-max(1, len(late) // 4):]
        print(f"- RSS first quarter {sum(r[1] for r in first) / len(first):.0f} MiB, last quarter "
              f"{sum(r[1] for r in last) / len(last):.0f} MiB; disk first quarter "
              f"{sum(r[5] for r in first) / len(first):.0f} MiB, last quarter "
              f"{sum(r[5] for r in last) / len(last):.0f} MiB")
        if max(rss_up, rss_down) > 10:
            tally.fail(f"RSS not flat within 10 % after {settle} s")
        # Disk saw-tooths as flapping channels end runs (an ended run's window stays until
        # the channel's next run deletes it): flat means no trend, so the first and last
        # quarters are compared.
        disk_first = sum(r[5] for r in first) / len(first)
        disk_last = sum(r[5] for r in last) / len(last)
        if disk_first > 0 and abs(disk_last / disk_first - 1) > 0.10:
            tally.fail(f"disk grew or shrank by more than 10 % between the first and last quarters after {settle} s")
    else:
        print(f"- the run was shorter than the {settle} s the windows need: no flatness verdict")
    print(f"- samples: {csv_path}")
    print(f"- failures: {c.get('failures', 0)}")
    for line in tally.failures[:20]:
        print(f"  - {line}")
    if warns:
        print("- WARN lines (first 5):")
        for line in warns[:5]:
            print(f"  - {line[:200]}")
    subprocess.run(["rm", "-rf", work])
    sys.exit(1 if c.get("failures", 0) else 0)


if __name__ == "__main__":
    main()
