#!/usr/bin/env bash
# PUT-to-GET-ready latency of the HTTP PUT ingest (docs/performance.md, "HTTP PUT
# ingest: PUT to GET"): a fresh release `starling serve` per step with N channels (one
# stream key each), N simulated packagers that each PUT a real ~0.5 MB CMAF segment
# (made once here with ffmpeg: 720p x264 CBR 4 Mbit/s + AAC, 1 s) and the playlist
# naming it every second, and per channel a reader that GETs /live/CHANNEL/<segment>
# from the PUT's start, and one whose GET waits at the live edge for the next segment.
# See bench/src/bin/put-get.rs for what each figure is.
#
# Usage: bench/put-get.sh [seconds] [steps] [--aligned]       (defaults: 60 1,20)
# --aligned: every channel PUTs at the same instant (default: spread over the second).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
steps=${2:-1,20}
shift $(( $# > 2 ? 2 : $# ))
command -v ffmpeg >/dev/null || { echo "ffmpeg is needed"; exit 1; }
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p starling -p starling-bench --bin starling --bin put-get
dir=$(mktemp -d /tmp/starling-put-get.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/media"
ffmpeg -v error -nostdin -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 3 \
  -c:v libx264 -preset veryfast -b:v 4M -minrate 4M -maxrate 4M -bufsize 2M \
  -x264-params nal-hrd=cbr -g 30 -keyint_min 30 -sc_threshold 0 -pix_fmt yuv420p \
  -c:a aac -b:a 128k -f hls -hls_time 1 -hls_segment_type fmp4 -hls_playlist_type vod \
  -hls_segment_filename "$dir/media/seg%d.m4s" "$dir/media/index.m3u8"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
"$target/release/put-get" --starling "$target/release/starling" \
  --init "$dir/media/init.mp4" --segment "$dir/media/seg1.m4s" \
  --steps "$steps" --seconds "$secs" --out "$dir/runs" "$@"
