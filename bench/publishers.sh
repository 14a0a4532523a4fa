#!/usr/bin/env bash
# N real ffmpeg publishers into nginx-rtmp (one worker, `hls on`) and into Starling
# (`starling serve`, LL-HLS), one server after the other in one run, measured from /proc.
#
# Each publisher is `ffmpeg -re -stream_loop -1 -i clip.flv -c copy -f flv rtmp://…`, the
# 2 Mbit/s 720p x264+AAC clip that rtmp-load makes (bench/results/clip-2000k.flv; made
# here with the same settings when missing). For every step N and each server: start a
# fresh server, note its idle RSS, start N ffmpeg, wait the warm-up (longer than the
# memory window, so memory is at steady state), then measure the server's CPU
# (utime+stime of every process of it: nginx's master and worker, Starling's one
# process) and the ffmpegs' CPU over the window; RSS and PSS at the end of it. Then stop
# everything and go on. Prints one Markdown table.
#
# Usage: bench/publishers.sh [--steps 10,50,100] [--warmup 40] [--window 20]
#                            [--fragment 2] [--servers nginx,starling] [--keep]
# STARLING_BIN picks the binary (default: the release build under CARGO_TARGET_DIR or
# target/). PERF_DIR=DIR records a perf profile of each server over the window (into
# DIR/SERVER-N.data; the figures then include perf's cost). Run it alone (on the
# project's machine: through /work/bench-run). Loopback only; everything it starts it
# stops. Needs ffmpeg, nginx + libnginx-mod-rtmp, python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=10,50,100
warmup=40
window=20
fragment=2
servers=nginx,starling
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --fragment) fragment=$2; shift 2 ;;
    --servers) servers=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
bin=${STARLING_BIN:-${CARGO_TARGET_DIR:-target}/release/starling}
[ -x "$bin" ] || { echo "no $bin: cargo build --release -p starling" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "needs ffmpeg" >&2; exit 1; }
command -v nginx >/dev/null && [ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] ||
  { echo "needs nginx and libnginx-mod-rtmp" >&2; exit 1; }

clip=bench/results/clip-2000k.flv
if [ ! -f "$clip" ]; then
  # The same clip as rtmp-load's: 10 s, x264 veryfast 1280x720 30 fps, 2 s GOP, 1872
  # kbit/s video + 128 kbit/s AAC.
  mkdir -p bench/results
  ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -t 10 \
    -c:v libx264 -preset veryfast -g 60 -pix_fmt yuv420p \
    -b:v 1872k -maxrate 1872k -bufsize 3744k -c:a aac -b:a 128k -f flv "$clip"
fi

dir=$(mktemp -d /tmp/starling-publishers.XXXXXX)
# nginx's worker may run as nobody: it must reach its HLS directory.
chmod 755 "$dir"
tck=$(getconf CLK_TCK)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()       # ffmpeg publishers of the current step
server=()     # the server's processes (nginx: master first)
cleanup() {
  for p in ${pids[@]+"${pids[@]}"} ${server[@]+"${server[@]}"}; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$keep" = 1 ] || rm -rf "$dir"
}
trap cleanup EXIT

# Sum of utime+stime (clock ticks) of the given pids; the command name may hold spaces.
ticks() {
  local t=0 p f
  for p in "$@"; do
    f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    f=${f##*) }
    set -- $f
    t=$((t + ${12} + ${13}))
    set --
  done
  echo "$t"
}
# Sum of a /proc/PID/status or smaps_rollup field (kB) over the given pids.
kb() {
  local file=$1 field=$2 t=0 p v
  shift 2
  for p in "$@"; do
    v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/$file" 2>/dev/null || true)
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }

start_nginx() {
  local d=$1 rtmp=$2
  mkdir -p "$d/hls" "$d/tmp"
  chmod 777 "$d/hls" "$d/tmp"
  cat > "$d/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_processes 1;
worker_rlimit_nofile 8192;
pid $d/nginx.pid;
error_log $d/nginx.error.log warn;
events { worker_connections 4096; }
rtmp {
  server {
    listen 127.0.0.1:$rtmp;
    application live {
      live on;
      hls on;
      hls_path $d/hls;
      hls_fragment ${fragment}s;
    }
  }
}
CONF
  nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off;' 2>>"$d/nginx.error.log" &
  server=($!)
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$rtmp") 2>/dev/null && break
    sleep 0.1
  done
  server+=($(pgrep -P "${server[0]}"))
}

start_starling() {
  local d=$1 rtmp=$2 n=$3 http i
  http=$(port)
  {
    printf '[server]\nhttp_listen = "127.0.0.1:%s"\ndata_dir = "%s/data"\nlog_level = "warn"\n' "$http" "$d"
    # Every publisher comes from 127.0.0.1: lift the per-address and publisher caps
    # (64 and 256 by default) above N, as nginx-rtmp has none.
    printf '[rtmp]\nlisten = "127.0.0.1:%s"\nmax_connections_per_address = %s\nmax_publishers = %s\nmax_connections = %s\n' \
      "$rtmp" "$((n + 16))" "$((n + 16))" "$((n + 4096))"
    printf '[origin]\nsegment_duration_ms = %s\n' "$((fragment * 1000))"
    for i in $(seq 0 $((n - 1))); do
      printf '[[channels]]\nname = "load%s"\nstream_key = "load-key-%05d"\n' "$i" "$i"
    done
  } > "$d/starling.toml"
  "$bin" serve --config "$d/starling.toml" >/dev/null 2>"$d/starling.log" &
  server=($!)
  for _ in $(seq 1 200); do
    curl -sf -o /dev/null "http://127.0.0.1:$http/healthz" && break
    sleep 0.1
  done
  starling_http=$http
}

# One server, one step: prints a table row.
measure() {
  local kind=$1 n=$2 d rtmp i idle t0 f0 t1 f1 s0 s1 wall rss pss alive cpu ff note
  d="$dir/$kind-$n"
  mkdir -p "$d"
  chmod 755 "$d"
  rtmp=$(port)
  if [ "$kind" = nginx ]; then start_nginx "$d" "$rtmp"; else start_starling "$d" "$rtmp" "$n"; fi
  sleep 2
  idle=$(kb status VmRSS "${server[@]}")
  pids=()
  for i in $(seq 0 $((n - 1))); do
    if [ "$kind" = nginx ]; then url="rtmp://127.0.0.1:$rtmp/live/load$i"; else
      url=$(printf 'rtmp://127.0.0.1:%s/live/load-key-%05d' "$rtmp" "$i"); fi
    ffmpeg -nostdin -v error -re -stream_loop -1 -i "$clip" -c copy -f flv "$url" \
      >/dev/null 2>>"$d/ffmpeg.log" &
    pids+=($!)
  done
  sleep "$warmup"
  [ "$kind" = nginx ] && server=("${server[0]}" $(pgrep -P "${server[0]}"))
  t0=$(ticks "${server[@]}"); f0=$(ticks "${pids[@]}"); s0=$(date +%s.%N)
  [ "$kind" = starling ] && m0=$(curl -s "http://127.0.0.1:$starling_http/metrics" | awk '$1 == "starling_hub_frames_total" { print $2 }')
  if [ -n "${PERF_DIR:-}" ]; then
    # Profiling only (the figures then include perf's own overhead).
    perf record -q ${PERF_ARGS:--F 499 -g} -o "$PERF_DIR/$kind-$n.data" -p "$(IFS=,; echo "${server[*]}")" \
      -- sleep "$window" >/dev/null 2>&1 || sleep "$window"
  else
    sleep "$window"
  fi
  t1=$(ticks "${server[@]}"); f1=$(ticks "${pids[@]}"); s1=$(date +%s.%N)
  rss=$(kb status VmRSS "${server[@]}")
  pss=$(kb smaps_rollup Pss "${server[@]}")
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
  if [ "$kind" = starling ]; then
    m1=$(curl -s "http://127.0.0.1:$starling_http/metrics" | awk '$1 == "starling_hub_frames_total" { print $2 }')
    note=$(awk -v a="${m0:-0}" -v b="${m1:-0}" -v w="$(awk -v a="$s0" -v b="$s1" 'BEGIN { print b - a }')" 'BEGIN { printf "%.0f frames/s into the hub", (b - a) / w }')
  else
    note="$(find "$d/hls" -name '*.m3u8' | wc -l) playlists"
  fi
  wall=$(awk -v a="$s0" -v b="$s1" 'BEGIN { print b - a }')
  cpu=$(awk -v t="$((t1 - t0))" -v k="$tck" -v w="$wall" 'BEGIN { printf "%.1f", t / k / w * 100 }')
  ff=$(awk -v t="$((f1 - f0))" -v k="$tck" -v w="$wall" 'BEGIN { printf "%.1f", t / k / w * 100 }')
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
  for p in "${server[@]}"; do kill "$p" 2>/dev/null || true; done
  wait "${server[0]}" 2>/dev/null || true
  server=()
  printf '| %s | %s | %s%% | %s%% | %s | %s | %s | %s | %s%% | %s/%s | %s |\n' \
    "$n" "$kind" "$cpu" "$(awk -v c="$cpu" -v n="$n" 'BEGIN { printf "%.3f", c / n }')" \
    "$(mib "$rss")" "$(mib "$pss")" "$(mib "$idle")" \
    "$(awk -v r="$rss" -v i="$idle" -v n="$n" 'BEGIN { printf "%.2f MiB", (r - i) / 1024 / n }')" \
    "$ff" "$alive" "$n" "$note"
  [ "$keep" = 1 ] || rm -rf "$d"
}

echo "clip: $clip; $(nproc) cores; warm-up ${warmup} s, window ${window} s; ${fragment} s fragments/segments"
echo
echo "| publishers | server | server CPU (% of 1 core) | per publisher | RSS | PSS | idle RSS | (RSS − idle) per publisher | ffmpeg CPU (all) | ffmpeg alive | check |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for n in ${steps//,/ }; do
  for s in ${servers//,/ }; do measure "$s" "$n"; done
done
