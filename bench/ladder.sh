#!/usr/bin/env bash
# The ABR ladder's cost on this machine (docs/performance.md, "Transcoding ladder"):
# Starling's one-process ladder command against one ffmpeg per rung, and how many
# 3-rung ladders run in real time at once. The source is a 1080p30 H.264 + AAC FLV of a
# moving test picture with film grain (made here with ffmpeg, kept in target/).
#
# Usage: bench/ladder.sh [seconds] [max channels]     (defaults 30 4)
# Needs ffmpeg (installed from Debian's packages when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
max=${2:-4}
command -v ffmpeg >/dev/null || { sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo -n);
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq ffmpeg >/dev/null; }
cargo build --release -q -p starling-bench --bin ladder
target=${CARGO_TARGET_DIR:-target}
src="$target/ladder-source-${secs}s.flv"
if [ ! -f "$src" ]; then
  ffmpeg -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30,noise=alls=8:allf=t" \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -t "$secs" \
    -c:v libx264 -preset veryfast -g 60 -b:v 8M -maxrate 8M -bufsize 16M -c:a aac -b:a 128k \
    -f flv "$src"
fi
"$target/release/ladder" --source "$src" --seconds "$secs" --width 1920 --height 1080 --fps 30 --max-channels "$max"
