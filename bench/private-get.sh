#!/usr/bin/env bash
# What the playback-token check costs on the origin path: GETs per second of the same
# objects (a small init section, where per-request costs dominate, and a segment) from
#   - a public channel of the config file (no database, no token),
#   - a public channel of the control plane (the gate's cached visibility lookup),
#   - a private channel with a valid token (visibility lookup + HMAC-SHA256 check),
# on one node, with the same load generator (wrk), one after the other.
# The streams are published (ffmpeg, identical settings, so identical bytes) and have
# ended before the measurement starts: no encoder competes for the CPU.
# Usage: bench/private-get.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}
conns=${2:-64}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)"; exit 1; }
command -v ffmpeg >/dev/null || { echo "ffmpeg is needed"; exit 1; }
command -v jq >/dev/null || { echo "jq is needed"; exit 1; }
cargo build --release -q -p starling
bin=${CARGO_TARGET_DIR:-target}/release/starling
dir=$(mktemp -d /tmp/starling-privget.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port); rtmp=$(port)
cat > "$dir/starling.toml" <<CONF
[server]
http_listen = "127.0.0.1:$http"
data_dir = "$dir/data"
[rtmp]
listen = "127.0.0.1:$rtmp"
[[channels]]
name = "open"
stream_key = "bench-open-key-1"
CONF
RUST_LOG=warn "$bin" serve --config "$dir/starling.toml" >/dev/null 2>"$dir/starling.log" &
spid=$!
trap 'kill $spid 2>/dev/null; rm -rf "$dir"; true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$http/healthz" >/dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$http"

STARLING_ADMIN_PASSWORD="bench password 1" "$bin" admin create-user --config "$dir/starling.toml" \
  --email bench@example.com >/dev/null
jar="$dir/cookies"
curl -sf -c "$jar" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.com","password":"bench password 1"}' "$base/api/v1/login" >/dev/null
api() { curl -sf -b "$jar" -H 'Content-Type: application/json' -X "$1" -d "$3" "$base$2"; }
key_for() { # channel name, visibility -> stream key (also prints nothing else)
  local ch dev
  ch=$(api POST /api/v1/channels "{\"name\":\"$1\",\"visibility\":\"$2\"}" | jq -r .id)
  dev=$(api POST /api/v1/devices "{\"name\":\"enc-$1\",\"channel_id\":\"$ch\"}" | jq -r .id)
  api POST "/api/v1/devices/$dev/keys" '{}' | jq -r .secret
  echo "$ch" > "$dir/$1.id"
}
shown_key=$(key_for shown public)
vip_key=$(key_for vip private)
token=$(api POST "/api/v1/channels/$(cat "$dir/vip.id")/playback-tokens" '{"ttl_secs":3600}' | jq -r .token)

publish() {
  ffmpeg -v error -re -f lavfi -i testsrc2=size=320x240:rate=25 -t 6 \
    -c:v libx264 -preset ultrafast -g 25 -f flv "rtmp://127.0.0.1:$rtmp/live/$1" </dev/null
}
publish bench-open-key-1 & p1=$!
publish "$shown_key" & p2=$!
publish "$vip_key" & p3=$!
wait $p1 $p2 $p3

echo "wrk -t2 -c$conns -d${secs}s; machine: $(nproc) cores"
echo
echo "| channel | object | requests/s | latency p50 | p99 |"
echo "|---|---|---|---|---|"
for target in "open(public,config) /live/open/source" "shown(public,db) /live/shown/source" \
  "vip(private,token) /live/vip/source"; do
  set -- $target
  q=""; [ "$1" = "vip(private,token)" ] && q="?token=$token"
  # Media objects are under the publish's session (the playlist names it).
  sess=$(curl -sf "$base$2/index.m3u8$q" | grep -v '^#' | grep -m1 'm4s' | cut -d/ -f1)
  [ -n "$sess" ] || { echo "$1: no segment listed"; exit 1; }
  for obj in init-0.mp4 2.m4s; do
    url="$base$2/$sess/$obj$q"
    size=$(curl -sf -o /dev/null -w '%{size_download}' "$url") || { echo "$1: $obj not served"; exit 1; }
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$url")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    [ -z "$non2xx" ] || { echo "$1 $obj: $non2xx non-2xx responses"; exit 1; }
    echo "| $1 | $obj ($size B) | $rps | $p50 | $p99 |"
  done
done
# The token must not have reached the log.
if grep -qF "$token" "$dir/starling.log"; then echo "the token reached the log"; exit 1; fi
