#!/usr/bin/env bash
# Segment GETs per second: Starling's origin (from memory) against nginx (Debian's
# package) serving the very same segment file from disk, side by side in one run, with
# the same load generator (wrk). Usage: bench/segment-get.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo -n)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release -q -p starling
dir=$(mktemp -d /tmp/starling-segget.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port); rtmp=$(port); nport=$(port)
RUST_LOG=warn target/release/starling demo --http-listen 127.0.0.1:$http --rtmp-listen 127.0.0.1:$rtmp \
  --data-dir "$dir/data" >/dev/null 2>"$dir/starling.log" &
spid=$!
trap 'kill $spid 2>/dev/null; [ -f "$dir/nginx.pid" ] && kill $(cat "$dir/nginx.pid") 2>/dev/null; rm -rf "$dir"; true' EXIT
# Wait for segment 1 to be complete and written through.
for _ in $(seq 1 100); do
  seg=$(find "$dir/data/objects" -path '*source/1.m4s' 2>/dev/null | head -1)
  [ -n "$seg" ] && break
  sleep 0.2
done
[ -n "$seg" ] || { echo "no segment was written"; exit 1; }
rel=${seg#"$dir/data/objects"}
# media/demo/SESSION/source/1.m4s is served as /live/demo/source/SESSION/1.m4s.
session=$(echo "$rel" | cut -d/ -f4)
# nginx workers run unprivileged: let them read the objects.
chmod -R a+rX "$dir"
cat > "$dir/nginx.conf" <<CONF
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/nginx.error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  types { video/iso.segment m4s; }
  server { listen 127.0.0.1:$nport; root $dir/data/objects; }
}
CONF
nginx -c "$dir/nginx.conf" -g 'daemon on;'
sleep 0.5
size=$(stat -c %s "$seg")
echo "segment: $size bytes; wrk -t2 -c$conns -d${secs}s; machine: $(nproc) cores"
echo
echo "| server | requests/s | transfer/s | latency p50 | p99 |"
echo "|---|---|---|---|---|"
for target in "starling http://127.0.0.1:$http/live/demo/source/$session/1.m4s" "nginx http://127.0.0.1:$nport$rel"; do
  set -- $target
  curl -sf -o /dev/null "$2" || { echo "$1: $2 not served"; exit 1; }
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$2")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  tps=$(echo "$out" | awk '/Transfer\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  echo "| $1 | $rps | $tps | $p50 | $p99 |"
done
