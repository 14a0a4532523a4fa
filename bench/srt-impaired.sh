#!/usr/bin/env bash
# SRT contribution over an impaired link, end to end: ffmpeg (libsrt) sends a 1080p30
# H.264 + AAC clip in real time through udp-relay (delay each way = RTT/2, random loss
# both ways, fixed seed) to `starling serve`; the LL-HLS output is then read back with
# ffprobe/ffmpeg and judged: video frames out against frames sent, DTS order, decoder
# errors; plus the start-up delay (ffmpeg's start to the first LL-HLS part listed), the
# sender's retransmission overhead (what it pushed into the relay against the TS it had
# to send), and the link's own figures from /api/v1/live.
#
# Usage: bench/srt-impaired.sh [SECONDS=60] [MBPS=20] [RTT_MS=200] [LOSS=0.05]
#   LATENCY_MS= (default 4 x RTT, the SRT guidance; see docs/srt.md)
# Prints one Markdown row (docs/performance.md has the table and its header).
# Loopback only; needs ffmpeg with libsrt. Run it under /work/bench-run or on an idle
# machine: a 2-core machine also encodes nothing meanwhile (the clip is made first).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
mbps=${2:-20}
rtt=${3:-200}
loss=${4:-0.05}
latency=${LATENCY_MS:-$((rtt * 4))}
work=${WORK:-/tmp/srt-impaired}
mkdir -p "$work"

cargo build --release -q -p starling -p starling-bench --bin starling --bin udp-relay
bin=${CARGO_TARGET_DIR:-target}/release

. bench/impaired-lib.sh
clip=$(make_clip "$work" "$secs" "$mbps")
sent_frames=$(video_frames "$clip")
ts_bytes=$(stat -c %s "$clip")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(free_port)
srt=$(free_port)
relay=$(free_port)
key=bench-srt-key-1
run=$work/run-$$
rm -rf "$run"
mkdir -p "$run"
cat >"$run/starling.toml" <<EOF
[server]
http_listen = "127.0.0.1:$http"
data_dir = "$run/data"
[srt]
listen = "127.0.0.1:$srt"
[rtmp]
enabled = false
[[channels]]
name = "srt"
stream_key = "$key"
EOF

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$bin/starling" serve --config "$run/starling.toml" >"$run/starling.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "SRT listening" "$run/starling.log" && break; sleep 0.1; done
"$bin/udp-relay" --listen "127.0.0.1:$relay" --to "127.0.0.1:$srt" --delay-ms $((rtt / 2)) \
  --loss "$loss" --seed 7 >"$run/relay.json" 2>"$run/relay.err" &
relay_pid=$!
pids+=($relay_pid)
for _ in $(seq 100); do [ -s "$run/relay.err" ] && break; sleep 0.1; done

base=http://127.0.0.1:$http
t0=$(date +%s.%N)
ffmpeg -nostdin -v error -re -i "$clip" -c copy -f mpegts \
  "srt://127.0.0.1:$relay?streamid=#!::r=srt,m=publish,s=$key&latency=$((latency * 1000))&linger=5" \
  2>"$run/ffmpeg.err" &
ff=$!
pids+=($ff)
first_part=
while kill -0 "$ff" 2>/dev/null; do
  if [ -z "$first_part" ] && curl -sf "$base/live/srt/source/index.m3u8" 2>/dev/null | grep -q '#EXT-X-PART:'; then
    first_part=$(date +%s.%N)
  fi
  curl -sf "$base/api/v1/live" >"$run/live.json.tmp" 2>/dev/null && grep -q '"ingest":{' "$run/live.json.tmp" &&
    mv "$run/live.json.tmp" "$run/live.json"
  if [ -n "$first_part" ]; then sleep 1; else sleep 0.02; fi
done
wait "$ff" || { echo "ffmpeg failed: $(cat "$run/ffmpeg.err")" >&2; exit 1; }
for _ in $(seq 300); do
  curl -sf "$base/live/srt/source/index.m3u8" | grep -q ENDLIST && break
  sleep 0.1
done
kill -INT "$relay_pid"
wait "$relay_pid" 2>/dev/null || true

hls=$base/live/srt/source/index.m3u8
judge_hls "$hls" "$run"
startup=n/a
[ -n "$first_part" ] && startup=$(python3 -c "print(f'{$first_part - $t0:.2f}')")
fwd_bytes=$(python3 -c "
import json
for line in open('$run/relay.json'):
    d = json.loads(line)
    if d.get('direction') == 'forward' and d.get('final'):
        print(d['bytes_in']); break
")
overhead=$(python3 -c "print(f'{($fwd_bytes / ($ts_bytes * 1332 / 1316) - 1) * 100:.1f}')")
link=$(python3 -c "
import json
d = json.load(open('$run/live.json'))
i = [c for c in d['channels'] if c['name'] == 'srt'][0]['ingest']
print(f\"{i['packets_lost']} / {i['packets_retransmitted']} / {i['packets_dropped']} (RTT {i['rtt_ms']:.0f} ms, latency {i['latency_ms']} ms)\")
")
echo "| $mbps | $rtt | $(python3 -c "print(f'{$loss * 100:g}')") % | $secs s | $sent_frames | $out_frames | $((sent_frames - out_frames)) | $monotonic | $decode_errors | $overhead % | $startup s | $link |"
