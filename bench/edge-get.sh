#!/usr/bin/env bash
# Cache hits per second: a Starling edge against nginx proxy_cache (Debian's package,
# docs/nginx-cdn.conf) in front of the same origin, serving the very same objects (a
# segment and a part) in one run, with the same load generator (wrk); the origin
# serving them directly for reference. Usage: bench/edge-get.sh [seconds] [connections]
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
dir=$(mktemp -d /tmp/starling-edgeget.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port); rtmp=$(port); edge=$(port); nport=$(port)
RUST_LOG=warn target/release/starling demo --http-listen 127.0.0.1:$http --rtmp-listen 127.0.0.1:$rtmp \
  --data-dir "$dir/data" >/dev/null 2>"$dir/origin.log" &
opid=$!
STARLING_EDGE_ORIGIN=http://127.0.0.1:$http RUST_LOG=warn target/release/starling serve --roles edge \
  --http-listen 127.0.0.1:$edge --data-dir "$dir/data" >/dev/null 2>"$dir/edge.log" &
epid=$!
trap 'kill $opid $epid 2>/dev/null; [ -f "$dir/nginx.pid" ] && kill $(cat "$dir/nginx.pid") 2>/dev/null; rm -rf "$dir"; true' EXIT
mkdir -p "$dir/cache"
chmod -R a+rwX "$dir"
{
  echo "worker_processes auto; pid $dir/nginx.pid; error_log $dir/nginx.error.log;"
  echo "events { worker_connections 4096; }"
  sed -e "s|ORIGIN|127.0.0.1:$http|; s|LISTEN|127.0.0.1:$nport|; s|CACHE_DIR|$dir/cache|" docs/nginx-cdn.conf
} > "$dir/nginx.conf"
nginx -c "$dir/nginx.conf" -g 'daemon on;'
# A complete segment and one of its parts, from the origin's playlist.
for _ in $(seq 1 100); do
  pl=$(curl -sf "http://127.0.0.1:$http/live/demo/source/index.m3u8" || true)
  seg=$(echo "$pl" | grep -v '^#' | grep '\.m4s' | head -1 || true)
  part=$(echo "$pl" | grep -o 'URI="[^"]*\.[0-9]*\.m4s"' | head -1 | cut -d'"' -f2 || true)
  [ -n "$seg" ] && [ -n "$part" ] && break
  sleep 0.2
done
[ -n "$seg" ] || { echo "no segment in the origin's playlist"; exit 1; }
echo "segment $seg ($(curl -sf "http://127.0.0.1:$http/live/demo/source/$seg" | wc -c) bytes), part $part ($(curl -sf "http://127.0.0.1:$http/live/demo/source/$part" | wc -c) bytes)"
echo "wrk -t2 -c$conns -d${secs}s; machine: $(nproc) cores"
echo
echo "| object | server | requests/s | transfer/s | latency p50 | p99 |"
echo "|---|---|---|---|---|---|"
for obj in "segment $seg" "part $part"; do
  set -- $obj
  name=$1 path=$2
  for target in "origin $http" "edge $edge" "nginx $nport"; do
    set -- $target
    url="http://127.0.0.1:$2/live/demo/source/$path"
    curl -sf -o /dev/null "$url" || { echo "$1: $url not served"; exit 1; }
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$url")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    tps=$(echo "$out" | awk '/Transfer\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    echo "| $name | $1 | $rps | $tps | $p50 | $p99 |"
  done
done
echo
echo "edge: $(curl -s "http://127.0.0.1:$edge/metrics" | grep -E '^starling_edge_(fills|hits)_total')"
