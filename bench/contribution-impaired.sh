#!/usr/bin/env bash
# Contribution over an impaired link, SRT against RTMP, with libsrt's own receiver beside
# Starling's (issue 9). ip-link joins two network namespaces, A (sender, 10.77.0.1) and
# B (receiver, 10.77.0.2), through one impairment per direction (RTT/2 each way, random
# loss both ways, seed 7); TCP and UDP cross the very same link. For each row and
# receiver, a fresh link and receiver, then ffmpeg -re -c copy sends the same 1080p30
# H.264 CBR + AAC clip from A:
#   starling-srt       `starling serve` in B, SRT caller (libsrt) with linger=5
#   srt-live-transmit  `srt-live-transmit srt://:PORT?mode=listener&latency=… file://con`
#                      in B, the same caller; the libsrt anchor
#   starling-rtmp      `starling serve` in B, ffmpeg's RTMP (TCP, the kernel's default
#                      congestion control), cut at SECONDS + RTMP_GRACE if it falls behind
# Judged: video frames out against frames sent (Starling: the ended LL-HLS playlist;
# srt-live-transmit: the TS it wrote), the overhead (SRT: IP bytes the sender pushed into
# the link over the TS's bytes in 1316-byte payloads with SRT, UDP and IP headers, minus
# 1; RTMP: TCP segments retransmitted over segments sent, from A's /proc/net/snmp),
# start-up (sender start to the first LL-HLS part listed), end-to-end latency (per part:
# first listed minus when the real-time sender had read its media, counted from the first
# media packet into the link; median and maximum; see bench/hls-watch.py), the longest
# gap between parts listed (a stall), and the sender's wall time against the clip's
# length.
#
# Usage (root): bench/contribution-impaired.sh [SECONDS=30]
#   ROWS="MBPS:RTT_MS:LOSS …" (default: the 3 × 2 × 4 grid, 20 Mbit/s first)
#   RECEIVERS="starling-srt srt-live-transmit starling-rtmp"   SEED=7   RTMP_GRACE=15
#   SLT_OPTS="&fc=…&rcvbuf=…"   (more URI options for srt-live-transmit's listener)
#   SRT_TOML="latency_ms = 400"   (more keys for Starling's [srt] section)
#   LATENCY_MS= fixes the SRT latency; by default docs/srt.md's guidance: 4 × RTT up to
#   2 % loss, 6 × RTT at 5 %, 8 × RTT above, never below 120 ms.
# Prints Markdown rows (docs/performance.md has the table and its header); runs are
# kept in WORK (default /tmp/contribution-impaired). Bounded in time; a 2-core machine
# should run nothing else meanwhile (the clips are made first).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-30}
seed=${SEED:-7}
grace=${RTMP_GRACE:-15}
receivers=${RECEIVERS:-starling-srt srt-live-transmit starling-rtmp}
default_rows=""
for r in 20:50 20:200 40:200 10:50 10:200 40:50; do
  for l in 0 0.02 0.05 0.10; do default_rows+=" $r:$l"; done
done
rows=${ROWS:-$default_rows}
work=${WORK:-/tmp/contribution-impaired}
ns_a=${NS_A:-stl-a}
ns_b=${NS_B:-stl-b}
mkdir -p "$work"
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }

cargo build --release -q -p starling -p starling-bench --bin starling --bin ip-link
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release")
. bench/impaired-lib.sh

for row in $rows; do make_clip "$work" "$secs" "${row%%:*}" >/dev/null; done

in_a=(ip netns exec "$ns_a")
in_b=(ip netns exec "$ns_b")
key=bench-contribution-key-1
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

latency_for() { # rtt loss -> ms
  [ -n "${LATENCY_MS:-}" ] && { echo "$LATENCY_MS"; return; }
  python3 -c "
rtt, loss = $1, $2
k = 4 if loss <= 0.02 else 6 if loss <= 0.05 else 8
print(max(120, round(k * rtt)))"
}

tcp_counters() { # prints 'OutSegs RetransSegs' of namespace A
  "${in_a[@]}" awk '$1 == "Tcp:" && $2 ~ /^[0-9]+$/ { print $12, $13 }' /proc/net/snmp
}

wait_for() { # seconds command...: polls the command every 0.1 s until it succeeds
  local n=$(($1 * 10))
  shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
  return 1
}

run_one() { # receiver mbps rtt loss
  local recv=$1 mbps=$2 rtt=$3 loss=$4
  local clip lat d sent_frames ts_bytes
  clip=$(make_clip "$work" "$secs" "$mbps")
  lat=$(latency_for "$rtt" "$loss")
  d=$work/$recv-${mbps}M-${rtt}ms-$loss
  rm -rf "$d"
  mkdir -p "$d"
  sent_frames=$(video_frames "$clip")
  ts_bytes=$(stat -c %s "$clip")

  "$bin/ip-link" --ns "$ns_a,$ns_b" --rtt-ms "$rtt" --loss "$loss" --seed "$seed" \
    --stats-every 5 >"$d/link.json" 2>"$d/link.err" &
  local link=$!
  pids=("$link")
  wait_for 10 grep -q "up:" "$d/link.err" || { echo "ip-link: $(cat "$d/link.err")" >&2; return 1; }

  local recv_pid="" watch_pid=""
  start_slt() {
    # -s:1000 -pf:json: its link statistics every second into slt-stats.json (pktRcvDrop: what
    # libsrt gave up on, which a frame count of out.ts cannot show).
    "${in_b[@]}" srt-live-transmit -a:no -q -s:1000 -pf:json -statsout:"$d/slt-stats.json" "srt://:9710?mode=listener&latency=$lat${SLT_OPTS:-}" file://con \
      >"$d/out.ts" 2>>"$d/recv.log" &
    recv_pid=$!
    pids+=("$recv_pid")
    wait_for 10 sh -c "ip netns exec $ns_b ss -Hlun | grep -q ':9710 '"
  }
  if [ "$recv" = srt-live-transmit ]; then
    start_slt
  else
    cat >"$d/starling.toml" <<EOF
[server]
http_listen = "127.0.0.1:8080"
data_dir = "$d/data"
[srt]
listen = "0.0.0.0:9710"
${SRT_TOML:-}
[rtmp]
listen = "0.0.0.0:1935"
[[channels]]
name = "ch"
stream_key = "$key"
EOF
    "${in_b[@]}" "$bin/starling" serve --config "$d/starling.toml" >"$d/starling.log" 2>&1 &
    recv_pid=$!
    wait_for 20 grep -q "RTMP listening" "$d/starling.log"
    wait_for 20 grep -q "SRT listening" "$d/starling.log"
    "${in_b[@]}" python3 bench/hls-watch.py watch \
      "http://127.0.0.1:8080/live/ch/source/index.m3u8" "$d/parts.json" &
    watch_pid=$!
    pids+=("$recv_pid" "$watch_pid")
  fi
  [ -n "$tcp_cc" ] || tcp_cc=$("${in_a[@]}" sysctl -n net.ipv4.tcp_congestion_control)

  local url cap=$((secs + grace)) t0 t1 rc attempt=1
  if [ "$recv" = starling-rtmp ]; then
    url=(-f flv "rtmp://$netns_addr_b:1935/live/$key")
  else
    url=(-f mpegts "srt://$netns_addr_b:9710?streamid=#!::r=ch,m=publish,s=$key&latency=$((lat * 1000))&linger=5")
  fi
  t0=$(date +%s.%N)
  while :; do
    rc=0
    "${in_a[@]}" timeout -k 5 -s INT "$cap" ffmpeg -nostdin -v error -re -i "$clip" -c copy \
      "${url[@]}" 2>"$d/ffmpeg.err" || rc=$?
    # A lost handshake packet can leave libsrt's caller confused ("PACKET NOT
    # HANDSHAKE") and fail the connection; a real sender would call again, and so do we
    # (the link's draws move on, so the next handshake meets other losses).
    [ "$rc" != 0 ] && [ "$attempt" -lt 4 ] && grep -q "Connection to .* failed" "$d/ffmpeg.err" || break
    echo "$recv ${mbps}M ${rtt}ms $loss: connection failed, calling again" >&2
    attempt=$((attempt + 1))
    sleep 1
    if [ "$recv" = srt-live-transmit ] && ! kill -0 "$recv_pid" 2>/dev/null; then start_slt; fi
  done
  t1=$(date +%s.%N)
  local wall note=""
  wall=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  [ "$attempt" = 1 ] || note+=" ($attempt calls)"
  [ "$rc" = 0 ] || note+=" (cut, ffmpeg rc $rc)"
  [ "$rc" = 0 ] || echo "$recv ${mbps}M ${rtt}ms $loss: ffmpeg rc $rc: $(tail -3 "$d/ffmpeg.err")" >&2

  local out_frames overhead startup="—" lat_col="—" gap="—" tcp
  if [ "$recv" = srt-live-transmit ]; then
    # It stops by itself once the caller has closed (-a:no); the latency bounds the wait.
    wait_for $((lat / 1000 + 10)) sh -c "! kill -0 $recv_pid 2>/dev/null" || kill "$recv_pid" 2>/dev/null || true
    out_frames=$(video_frames "$d/out.ts")
    # A frame with a packet missing still counts as a frame in out.ts: what libsrt gave
    # up on and what does not decode are noted beside the count.
    local dropped decode_errors
    # Its statistics are per interval (cleared at each print): the sum is the run's.
    dropped=$(grep -o '"packetsDropped":[0-9]*' "$d/slt-stats.json" 2>/dev/null | cut -d: -f2 | awk '{n += $1} END {print n + 0}')
    decode_errors=$(ffmpeg -v error -i "$d/out.ts" -f null - 2>&1 | grep -c "error while decoding" || true)
    note+=" (libsrt dropped ${dropped:-?} packets; ${decode_errors} macroblock decode errors)"
  else
    # The poller stops at EXT-X-ENDLIST, which the origin writes once the publish ended.
    wait_for 40 sh -c "! kill -0 $watch_pid 2>/dev/null" || kill -TERM "$watch_pid" 2>/dev/null || true
    wait "$watch_pid" 2>/dev/null || true
    judge_hls "http://127.0.0.1:8080/live/ch/source/index.m3u8" "$d" "${in_b[@]}"
    # Starling drops a frame with a packet missing (and the frames that depend on it):
    # what libsrt gave up on, from the link's totals.
    if [ "$recv" = starling-srt ]; then
      local dropped
      dropped=$(grep -o "SRT link totals.* dropped=[0-9]*" "$d/starling.log" | grep -o "dropped=[0-9]*" | tail -1 | cut -d= -f2)
      note+=" (libsrt dropped ${dropped:-?} packets)"
    fi
    # shellcheck disable=SC2154 # set by judge_hls
    out_frames=$out_frames
    kill "$recv_pid" 2>/dev/null || true
  fi
  tcp=$(tcp_counters)
  # UDP datagrams the receiver's kernel dropped (its socket buffer full), for the notes.
  "${in_b[@]}" awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ { print "udp_in", $2, "rcvbuf_errors", $6 }' /proc/net/snmp >"$d/udp-b.txt"
  kill -INT "$link"
  wait "$link" 2>/dev/null || true
  wait "$recv_pid" 2>/dev/null || true

  if [ "$recv" != srt-live-transmit ]; then
    # The media clock: when the first media packet (>= 1000 bytes) entered the link.
    local t_media
    t_media=$(python3 -c "
import json
for line in open('$d/link.json'):
    d = json.loads(line)
    if d['direction'] == 'forward' and d['final']:
        print(d['first_large_packet_unix_s'] or $t0)
")
    python3 bench/hls-watch.py summary "$d/parts.json" "$t0" "$t_media" >"$d/summary.json"
    read -r startup lat_col gap < <(python3 -c "
import json
s = json.load(open('$d/summary.json'))
if s['startup_s'] is None:
    print('— — —')
else:
    print(f\"{s['startup_s']:.2f}s {s['latency_p50_s']:.2f}/{s['latency_max_s']:.2f}s {s['longest_gap_s']:.2f}s\")
")
  fi

  if [ "$recv" = starling-rtmp ]; then
    overhead=$(python3 -c "o, r = map(int, '$tcp'.split()); print(f'{r / o * 100:.1f} % TCP resent' if o else 'n/a')")
  else
    overhead=$(python3 -c "
import json
for line in open('$d/link.json'):
    d = json.loads(line)
    if d['direction'] == 'forward' and d['final']:
        # 1316-byte payloads, each with 16 bytes of SRT, 8 of UDP and 20 of IP header.
        print(f\"{(d['bytes_in'] / ($ts_bytes * 1360 / 1316) - 1) * 100:.1f} %\")
")
  fi
  local lossp
  lossp=$(python3 -c "print(f'{$loss * 100:g}')")
  echo "| $mbps | $rtt | $lossp % | $lat ms | $recv | $((sent_frames - out_frames)) of $sent_frames | $overhead | ${startup/s/ s} | ${lat_col/s/ s} | ${gap/s/ s} | $wall s$note |"
}

netns_addr_b=10.77.0.2
tcp_cc=""
echo "contribution-impaired: ${secs} s clips, seed $seed, receivers: $receivers; ffmpeg $(ffmpeg -version | head -1 | cut -d' ' -f3), $(srt-live-transmit -version 2>&1 | grep -o 'SRT Library version: [0-9.]*' | head -1 || true); $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for row in $rows; do
  IFS=: read -r mbps rtt loss <<<"$row"
  for recv in $receivers; do
    run_one "$recv" "$mbps" "$rtt" "$loss"
  done
done
echo "TCP congestion control in the sender's namespace: $tcp_cc; load at the end $(cut -d' ' -f1-3 /proc/loadavg)" >&2
