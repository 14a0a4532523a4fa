#!/usr/bin/env bash
# Connection flood: what 10,000 idle or slowloris connections (HTTP and RTMP, from
# several loopback addresses) cost one node, and whether a good publisher and viewers
# notice. One `starling serve` with its default limits; ffmpeg publishes a test picture
# over RTMP the whole time; during the flood an RTMP viewer (ffmpeg) counts the frames it
# gets and curl fetches the LL-HLS playlist once a second. Reports the node's RSS (from
# /proc) before, at the peak and after, the connections the node held and refused, and
# the good clients' figures, with the same viewer run before the flood for comparison.
#
# Usage: bench/flood.sh [seconds] [http-connections] [rtmp-connections] [addresses]
# (defaults 30 5000 5000 20). STARLING_BIN picks the binary (default: a release build).
# Needs ffmpeg, curl, python3. Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
nhttp=${2:-5000}
nrtmp=${3:-5000}
naddr=${4:-20}
bin=${STARLING_BIN:-target/release/starling}
[ -x "$bin" ] || cargo build --release -q -p starling
# Both ends of every connection live in processes started here.
ulimit -n 20000
dir=$(mktemp -d /tmp/starling-flood.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port); rtmp=$(port)
cat > "$dir/starling.toml" <<CONF
[server]
http_listen = "127.0.0.1:$http"
data_dir = "$dir/data"
[rtmp]
listen = "127.0.0.1:$rtmp"
[[channels]]
name = "bench"
stream_key = "bench-flood-key"
CONF
RUST_LOG=warn "$bin" serve --config "$dir/starling.toml" >/dev/null 2>"$dir/starling.log" &
spid=$!
pids=()
trap 'kill $spid ${pids[@]+"${pids[@]}"} 2>/dev/null; rm -rf "$dir"; true' EXIT
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$http/healthz" && break; sleep 0.1; done

ffmpeg -v error -re -f lavfi -i testsrc2=size=640x360:rate=25 -t $((secs + 40)) \
  -c:v libx264 -preset ultrafast -g 25 -f flv "rtmp://127.0.0.1:$rtmp/live/bench-flood-key" \
  </dev/null 2>"$dir/publisher.log" &
pub=$!; pids+=($pub)
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$http/live/bench/source/index.m3u8" && break; sleep 0.2
done

rss() { awk '/^VmRSS/ {print $2}' "/proc/$spid/status"; }
metric() { curl -s --max-time 5 "http://127.0.0.1:$http/metrics" | awk -v m="$1" 'index($0, m" ") == 1 {print $2}'; }
# An RTMP viewer for 10 s: frames decoded (25 fps published: ~250 expected).
viewer() {
  ffmpeg -nostats -v error -progress pipe:1 -i "rtmp://127.0.0.1:$rtmp/live/bench" -t 10 -f null - </dev/null 2>/dev/null \
    | awk -F= '/^frame=/ {f=$2} END {print f+0}'
}
# Playlist fetches once a second for `n` seconds: "ok/total max_ms".
playlist_probe() {
  local ok=0 total=0 max=0 t
  for _ in $(seq 1 "$1"); do
    total=$((total + 1))
    if t=$(curl -sf -o /dev/null --max-time 5 -w '%{time_total}' "http://127.0.0.1:$http/live/bench/source/index.m3u8"); then
      ok=$((ok + 1))
      t=$(awk -v t="$t" 'BEGIN {printf "%d", t * 1000}')
      [ "$t" -gt "$max" ] && max=$t
    fi
    sleep 1
  done
  echo "$ok/$total ${max}"
}

rss_before=$(rss)
frames_before=$(viewer)

python3 bench/flood.py --http-port "$http" --rtmp-port "$rtmp" --http "$nhttp" --rtmp "$nrtmp" \
  --addresses "$naddr" --seconds "$secs" >"$dir/flood.json" &
flood=$!; pids+=($flood)
# Sample RSS and the node's own count of open connections while the flood runs.
(
  peak=0; hpeak=0; rpeak=0
  while kill -0 $flood 2>/dev/null; do
    r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
    h=$(metric starling_http_connections_open); h=${h:-0}; [ "$h" -gt "$hpeak" ] && hpeak=$h
    g=$(metric starling_rtmp_connections_open); g=${g:-0}; [ "$g" -gt "$rpeak" ] && rpeak=$g
    echo "$peak $hpeak $rpeak" >"$dir/peak"
    sleep 0.5
  done
) &
sampler=$!; pids+=($sampler)
sleep $((secs / 3))
frames_during=$(viewer)
probe_during=$(playlist_probe $((secs / 3)))
wait $flood
wait $sampler || true
read -r rss_peak http_open_peak rtmp_open_peak <"$dir/peak"
sleep 3
rss_after=$(rss)
publisher_alive=yes; kill -0 $pub 2>/dev/null || publisher_alive=no

echo "flood: ${secs}s, $nhttp HTTP + $nrtmp RTMP slowloris connections from $naddr loopback addresses; machine: $(nproc) cores; binary: $bin"
echo "flood tallies: $(cat "$dir/flood.json")"
echo
echo "| figure | value |"
echo "|---|---|"
echo "| node RSS before / peak / 3 s after | $((rss_before / 1024)) MiB / $((rss_peak / 1024)) MiB / $((rss_after / 1024)) MiB |"
echo "| HTTP connections open at the node, peak | $http_open_peak |"
echo "| RTMP connections open at the node, peak | $rtmp_open_peak |"
echo "| HTTP refused (global cap / per-address cap) | $(metric 'starling_http_connections_refused_total{reason="global_cap"}') / $(metric 'starling_http_connections_refused_total{reason="per_address_cap"}') |"
echo "| HTTP cut by the header-read timeout | $(metric 'starling_http_timeouts_total{kind="header_read"}') |"
echo "| RTMP refused (all / per-address cap) | $(metric starling_rtmp_connections_refused_total) / $(metric starling_rtmp_connections_refused_per_address_total) |"
echo "| RTMP timeouts (handshake and idle) | $(metric starling_rtmp_timeouts_total) |"
echo "| RTMP viewer frames in 10 s, before / during the flood | $frames_before / $frames_during |"
echo "| LL-HLS playlist fetches during the flood (ok/total, slowest ms) | $probe_during |"
echo "| good publisher still connected after the flood | $publisher_alive |"
