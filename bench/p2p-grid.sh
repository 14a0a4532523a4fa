#!/usr/bin/env bash
# The P2P grid under load (docs/p2p.md, figures in docs/performance.md): one node, one
# channel published by ffmpeg (854x480 x264 at 1.2 Mbit/s, 2 s GOP), then steps of
# headless P2P viewers (target/release/p2p-peers: str0m data channels, the watch page's
# strategy, a virtual player that counts stalls), each joining at 5 a second:
#   - 10, 50 and 100 peers for STEP seconds each: offload ratio (bytes from peers / all
#     bytes) against the 1 - 1/N ceiling, rebuffering, startup;
#   - 100 peers plus 2 Chromium viewers (web/tests/p2p.mjs) for LONG seconds (default
#     300: the five-minute run);
#   - the same 100 viewers without P2P (edge only), for the rebuffering baseline;
#   - the tracker's capacity on one core (target/release/tracker-load, sans-IO).
# Usage: bench/p2p-grid.sh [STEP_SECONDS=60] [LONG_SECONDS=300]
set -euo pipefail
cd "$(dirname "$0")/.."
step=${1:-60}
long=${2:-300}
cargo build --release -q -p starling -p starling-bench --bin starling --bin p2p-peers --bin tracker-load
dir=$(mktemp -d /tmp/starling-p2pgrid.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port); rtmp=$(port)
cat > "$dir/starling.toml" <<EOF
[server]
http_listen = "127.0.0.1:$http"
data_dir = "$dir/data"
# Every viewer here comes from 127.0.0.1.
max_connections_per_address = 4096
[rtmp]
listen = "127.0.0.1:$rtmp"
[srt]
enabled = false
[transcode]
enabled = false
[thumbnails]
enabled = false
[p2p]
max_per_address = 1000
[[channels]]
name = "grid"
stream_key = "grid-key-000"
latency_mode = "p2p"
EOF
RUST_LOG=warn target/release/starling serve --config "$dir/starling.toml" >/dev/null 2>"$dir/node.log" &
npid=$!
sleep 2
total=$((step * 3 + long + step * 2 + 200))
ffmpeg -v error -re -f lavfi -i testsrc2=size=854x480:rate=30 -t "$total" -c:v libx264 -preset ultrafast \
  -b:v 1200k -maxrate 1200k -bufsize 2400k -g 60 -f flv "rtmp://127.0.0.1:$rtmp/live/grid-key-000" \
  >/dev/null 2>"$dir/ffmpeg.log" &
fpid=$!
trap 'kill $npid $fpid 2>/dev/null; rm -rf "$dir"; true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$http/live/grid/source/index.m3u8" | grep -q EXTINF && break
  sleep 0.3
done
peers() { target/release/p2p-peers --http "127.0.0.1:$http" --channel grid --join-every-ms 200 "$@"; }
row() {
  python3 -c '
import json, sys
r = json.loads(sys.argv[2])
print("| %s | %d | %.1f %% | %.1f %% | %.3f %% | %s ms | %s ms | %d | %d |" % (sys.argv[1], r["peers"], 100 * r["offload"], 100 * r["ceiling"],
      100 * r["rebuffer_ratio"], r["startup_ms_median"], r["startup_ms_p95"], r["bad_pieces"], r["boosted"]))' "$1" "$2"
}
echo "machine: $(nproc) cores; stream 854x480 1.2 Mbit/s, 2 s segments; viewers 8 s behind live"
echo
echo "| run | peers | offload | ceiling | rebuffering | startup p50 | p95 | bad pieces | boosts |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in 10 50 100; do
  out=$(peers --peers "$n" --seconds "$step")
  row "P2P, ${step} s" "$out"
done
# The five-minute run: 100 headless peers and two browsers in one swarm.
(cd web && node tests/p2p.mjs "http://127.0.0.1:$http/watch/grid" --viewers 2 --seconds $((long - 60)) --timeout $((long + 60)) > "$dir/browsers.json" 2>/dev/null) &
bpid=$!
out=$(peers --peers 100 --seconds "$long")
row "P2P + 2 browsers, ${long} s" "$out"
wait $bpid || true
base=$(peers --peers 100 --seconds "$((step * 2))" --no-p2p)
row "edge only, $((step * 2)) s" "$base"
echo
echo "browsers: $(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("; ".join("viewer %d: %.0f %% from peers, %d peers, stalled %d ms, startup %s ms, latency %s s (wall clock %s s)" % (v["index"], 100 * v["peer_bytes"] / max(1, v["peer_bytes"] + v["edge_bytes"]), v["peers"], v["rebuffer_ms"], v["startup_ms"], v.get("latency"), v.get("wall_latency")) for v in r.get("viewers", [])) or r.get("reason"))' "$dir/browsers.json")"
echo "node: $(ps -o rss=,time= -p $npid | awk '{printf "%.0f MiB RSS, CPU time %s", $1/1024, $2}')"
echo
echo "tracker (sans-IO, one core): $(target/release/tracker-load --peers 100000 --swarms 10)"
