#!/usr/bin/env bash
# Write-through throughput to an S3-compatible bucket (docs/performance.md, "Object
# storage over S3"): s3s-fs on loopback (the release scripts/test installs; built here
# when missing) takes the puts of N channels x 4 renditions (6, 3, 1.2, 0.6 Mbit/s; a
# segment each every 2 s) through Starling's S3Store, at real time and then faster to
# find where puts start to queue.
#
# Usage: bench/store.sh [channels] [seconds] [speeds...]     (defaults 20 60 1 4 8)
set -euo pipefail
cd "$(dirname "$0")/.."
channels=${1:-20}
secs=${2:-60}
shift $(( $# > 2 ? 2 : $# ))
speeds=("$@")
[ ${#speeds[@]} -gt 0 ] || speeds=(1 4 8)
target=${CARGO_TARGET_DIR:-target}
version=0.14.1
bin="$target/tools/s3s-fs-$version/bin/s3s-fs"
[ -x "$bin" ] || cargo install s3s-fs --version "$version" --locked --features binary \
  --root "$target/tools/s3s-fs-$version" --quiet
cargo build --release -q -p starling-bench --bin store-write
dir=$(mktemp -d /tmp/starling-store-bench.XXXXXX)
mkdir -p "$dir/bench"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export AWS_ACCESS_KEY_ID=bench-key AWS_SECRET_ACCESS_KEY=bench-secret-key
"$bin" --host 127.0.0.1 --port "$port" --access-key "$AWS_ACCESS_KEY_ID" \
  --secret-key "$AWS_SECRET_ACCESS_KEY" "$dir" >/dev/null 2>&1 &
s3=$!
trap 'kill $s3 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); s3s-fs $version on loopback, objects on $(df -P "$dir" | awk 'NR==2{print $1}')"
for speed in "${speeds[@]}"; do
  "$target/release/store-write" --endpoint "http://127.0.0.1:$port" --bucket bench \
    --channels "$channels" --seconds "$secs" --speed "$speed"
  rm -rf "${dir:?}/bench/bench"
done
