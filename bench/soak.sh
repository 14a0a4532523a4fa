#!/usr/bin/env bash
# Soak: a node left running with publishers that come and go and viewers that join and
# leave (bench/soak.py says what it does and what counts as a failure).
#
# Usage: bench/soak.sh [seconds] [soak.py flags...]   (default 1800 s)
# STARLING_BIN picks the binary (default: a release build). Needs ffmpeg and python3
# (installed from Debian's packages when missing). Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-1800}
shift || true
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo -n)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
bin=${STARLING_BIN:-${CARGO_TARGET_DIR:-target}/release/starling}
[ -n "${STARLING_BIN:-}" ] || cargo build --release -q -p starling
ulimit -n 8192
exec python3 bench/soak.py --starling "$bin" --seconds "$secs" "$@"
