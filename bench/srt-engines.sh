#!/usr/bin/env bash
# SRT engines on an impaired link (issue 9; figures and decision in docs/srt.md): libsrt
# (Debian's 1.5) against the pure-Rust srt-tokio, each as the receiving end of an
# ingest, behind the same lossy link in the same run.
#
#   ffmpeg -re -i clip.ts -c copy -f mpegts srt://relay?mode=caller   (libsrt sender)
#     -> udp-relay (--delay-ms 100 each way = 200 ms RTT, --loss P, fixed --seed)
#     -> receiver, one of ENGINES:
#        libsrt      srt-live-transmit "srt://:PORT?mode=listener&latency=MS" file://con
#        libsrt-api  bench/srt-engines/libsrt-recv.py: libsrt's C API through ctypes,
#                    srt_recvmsg until it fails, then polled 2 s more (what a binding
#                    sees; SRT_TSBPD=0 turns TSBPD off on it)
#        srt-tokio   srt-tokio-recv (bench/srt-engines/, its own cargo workspace)
#
# The clip is 1080p30 x264 (ultrafast, nal-hrd=cbr, so constant rate with filler) + AAC,
# made once per rate and duration into $SRT_BENCH_DIR (default /tmp/srt-engines; not
# committed). Per run it reports:
#   overhead   what the sender pushed into the relay (bytes_in, forward) over the TS it
#              had to send (reference size x 1332/1316: a 16-byte SRT header per 1316
#              bytes), minus 1: retransmissions, plus control packets (about 0.1 %)
#   received   data packets that reached the receiver, all / unique (its own statistics;
#              the difference is copies the sender retransmitted needlessly)
#   dropped    packets the receiver gave up on (too late), its own statistics
#   kernel     UDP receive-buffer overflows: on the relay's two sockets (/proc/net/udp
#              drops), and on the whole machine during the run (/proc/net/snmp
#              RcvbufErrors); loss the relay's model did not decide
#   bytes      received file against the reference TS (ffmpeg -i clip -c copy -f mpegts,
#              the same bytes ffmpeg sends); "identical" if byte for byte (cmp), else the
#              missing byte count and whether the file is a prefix (only the tail lost)
#   frames     video frames decoded (ffprobe -count_frames) / the reference's, and the
#              decoder's error lines
#   CPU        receiver user+sys seconds (/usr/bin/time) over the stream's duration
#   close      whether the receiver noticed the caller's close by itself
#
# Usage: bench/srt-engines.sh [seconds]            (default 30)
# Environment: ROWS="20:0 20:0.05 40:0.05" (Mbit/s:loss), LATENCIES="800" (SRT latency,
#   ms; 4 x the 200 ms RTT), REPEAT=1 (runs of each lossy row), SEED=7,
#   ENGINES="libsrt srt-tokio" (or libsrt-api), LINGER= (ffmpeg's linger= for the caller, seconds;
#   unset = libsrt's default), KEEP=1 keeps the received files.
# Loopback only; bounded in time. Needs ffmpeg (with libsrt), srt-tools, python3.
# On a shared machine, run it under the benchmark lock.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
rows=${ROWS:-"20:0 20:0.05 40:0.05"}
latencies=${LATENCIES:-800}
repeat=${REPEAT:-1}
seed=${SEED:-7}
engines=${ENGINES:-"libsrt srt-tokio"}
work=${SRT_BENCH_DIR:-/tmp/srt-engines}
mkdir -p "$work"

target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p starling-bench --bin udp-relay
relay=$target/release/udp-relay
(cd bench/srt-engines && CARGO_TARGET_DIR=$target/srt-engines cargo build --release -q)
tokio_recv=$target/srt-engines/release/srt-tokio-recv

port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Drops counted on the sockets bound to a local port (/proc/net/udp's last column).
sock_drops() { awk -v p="$(printf ':%04X' "$1")" 'NR > 1 && substr($2, length($2) - 4) == p { n += $NF } END { print n + 0 }' /proc/net/udp; }
udp_rcvbuf_errors() { awk '/^Udp:/ { if (h) { print $6; exit } h = 1 }' /proc/net/snmp; }
json() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))" "$1" "$2"; }

# The clip for a rate, and the reference TS: what ffmpeg's mpegts muxer makes of it,
# byte for byte what it sends over SRT.
clip_for() {
  local mbps=$1 clip=$work/clip-${1}M-${secs}s.ts
  if [ ! -s "$clip" ]; then
    local v=$((mbps * 1000 - 300))k
    ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
      -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$secs" -map 0:v -map 1:a \
      -c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 60 \
      -b:v "$v" -minrate "$v" -maxrate "$v" -bufsize "$v" -x264-params nal-hrd=cbr \
      -c:a aac -b:a 128k -f mpegts "$clip.tmp" && mv "$clip.tmp" "$clip"
    ffmpeg -nostdin -v error -y -i "$clip" -c copy -f mpegts "$clip.ref"
    ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames \
      -of csv=p=0 "$clip.ref" | grep -m1 . >"$clip.frames"
  fi
  echo "$clip"
}

pids=()
cleanup() { for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

results=()
run() { # engine mbps loss latency_ms rep
  local engine=$1 mbps=$2 loss=$3 lat=$4 rep=$5
  local clip; clip=$(clip_for "$mbps")
  local ref=$clip.ref d=$work/run-$engine-${mbps}M-$loss-${lat}ms-$rep
  rm -rf "$d"; mkdir -p "$d"
  local rport rlisten; rport=$(port); rlisten=$(port)
  local timefmt='%e %U %S %M'
  if [ "$engine" = libsrt ]; then
    /usr/bin/time -f "$timefmt" -o "$d/time" srt-live-transmit -a:no -q -s:500 -pf:json -f \
      -statsout:"$d/stats" "srt://:$rport?mode=listener&latency=$lat" file://con \
      >"$d/out.ts" 2>"$d/recv.log" &
  elif [ "$engine" = libsrt-api ]; then
    /usr/bin/time -f "$timefmt" -o "$d/time" python3 bench/srt-engines/libsrt-recv.py "$rport" \
      "$d/out.ts" "$lat" >"$d/stats" 2>"$d/recv.log" &
  else
    /usr/bin/time -f "$timefmt" -o "$d/time" "$tokio_recv" --port "$rport" --out "$d/out.ts" \
      --latency-ms "$lat" --accept-timeout 20 >"$d/stats" 2>"$d/recv.log" &
  fi
  local rpid=$!
  local kdrop0; kdrop0=$(udp_rcvbuf_errors)
  "$relay" --listen "127.0.0.1:$rlisten" --to "127.0.0.1:$rport" --delay-ms 100 \
    --loss "$loss" --seed "$seed" --seconds $((secs + 120)) >"$d/relay" 2>"$d/relay.log" &
  local relpid=$!
  pids=("$rpid" "$relpid")
  sleep 0.5
  local linger=""; [ -z "${LINGER:-}" ] || linger="&linger=$LINGER"
  local t0; t0=$(date +%s.%N)
  ffmpeg -nostdin -v error -re -i "$clip" -c copy -f mpegts \
    "srt://127.0.0.1:$rlisten?mode=caller&latency=$((lat * 1000))&pkt_size=1316$linger" \
    2>"$d/ffmpeg.log" || echo "ffmpeg failed: $(tail -3 "$d/ffmpeg.log")" >&2
  local t1; t1=$(date +%s.%N)
  # Wait for the receiver to notice the close by itself (SRT's peer-idle timeout is 5 s).
  local close=yes
  for _ in $(seq 1 150); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$rpid" 2>/dev/null; then close=no; kill -INT "$rpid" 2>/dev/null || true; sleep 1; kill "$rpid" 2>/dev/null || true; fi
  local t2; t2=$(date +%s.%N)
  wait "$rpid" 2>/dev/null || true
  # The relay's own sockets: datagrams the kernel dropped before the relay saw them.
  local upport; upport=$(grep -o 'from 127.0.0.1:[0-9]*' "$d/relay.log" | grep -o '[0-9]*$' || echo 0)
  local reldrop=$(( $(sock_drops "$rlisten") + $(sock_drops "$upport") ))
  kill -INT "$relpid" 2>/dev/null || true
  wait "$relpid" 2>/dev/null || true
  pids=()

  local stream_s close_s; stream_s=$(python3 -c "print(round($t1-$t0,1))"); close_s=$(python3 -c "print(round($t2-$t1,1))")
  local fwd; fwd=$(grep '"forward"' "$d/relay" | grep '"final":true' | tail -1)
  local refsize recvsize; refsize=$(stat -c %s "$ref"); recvsize=$(stat -c %s "$d/out.ts" 2>/dev/null || echo 0)
  local overhead pkts; overhead=$(json "$fwd" "'%.1f %%' % (100*(d['bytes_in']/($refsize*1332/1316)-1))")
  pkts=$(json "$fwd" "'%d/%d' % (d['packets_in'], -(-$refsize//1316))")
  # Data packets that reached the receiver, all / unique (the difference: copies the
  # sender retransmitted that were not needed), and packets it gave up on.
  local rx drop last; last=$(grep '^{' "$d/stats" | tail -1 || true)
  if [ -z "$last" ]; then rx="?"; drop="?"
  elif [ "$engine" = libsrt-api ]; then
    rx="–"; drop="–"
  elif [ "$engine" = libsrt ]; then
    rx=$(json "$last" "'%d / %d' % (d['recv']['packets'], d['recv']['packetsUnique'])")
    drop=$(json "$last" "d['recv']['packetsDropped']")
  else
    rx=$(json "$last" "'%d / %d' % (d['stats']['rx_data'], d['stats']['rx_unique_data'])")
    drop=$(json "$last" "d['stats']['rx_dropped_data']")
  fi
  local kdrop=$(( $(udp_rcvbuf_errors) - kdrop0 ))
  local bytes
  if cmp -s "$ref" "$d/out.ts"; then bytes="identical"
  elif [ "$recvsize" -lt "$refsize" ] && cmp -s -n "$recvsize" "$ref" "$d/out.ts"; then
    bytes="prefix, last $((refsize - recvsize)) B missing"
  else bytes="differs, $((refsize - recvsize)) B short"; fi
  local frames errs reff; reff=$(cat "$clip.frames")
  frames=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames \
    -of csv=p=0 "$d/out.ts" 2>"$d/decode.err" | grep -m1 . || true)
  errs=$(grep -c . "$d/decode.err" || true)
  local cpu rss u s; read -r _ u s rss < <(grep -E '^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+$' "$d/time") || true
  cpu=$(python3 -c "print('%.2f s (%.1f %%)' % ($u+$s, 100*($u+$s)/$stream_s))")
  local row="| $engine | ${mbps} | $(python3 -c "print('%g %%' % (100*$loss))") | $lat | $rep | $overhead | $pkts | $rx | $drop | $reldrop / $kdrop | $bytes | ${frames:-0}/$reff | $errs | $cpu | $((rss / 1024)) MiB | $close (${close_s} s) |"
  echo "$row"
  results+=("$row")
  [ "${KEEP:-0}" = 1 ] || rm -f "$d/out.ts"
}

echo "SRT engines: ${secs} s clips, 1080p30 H.264 (x264 ultrafast, CBR) + AAC; udp-relay 100 ms each way (200 ms RTT), random loss both ways, seed $seed; sender ffmpeg $(ffmpeg -version | head -1 | cut -d' ' -f3) (libsrt $(srt-live-transmit -version 2>&1 | grep -o '[0-9]\+\.[0-9]\+\.[0-9]\+' | head -1)), linger ${LINGER:-default}; machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for lat in $latencies; do
  for r in $rows; do
    mbps=${r%%:*}; loss=${r#*:}
    n=1; [ "$loss" = 0 ] || n=$repeat
    for rep in $(seq 1 "$n"); do
      for e in $engines; do run "$e" "$mbps" "$loss" "$lat" "$rep" >&2; done
    done
  done
done
echo
echo "| receiver | Mbit/s | loss | latency ms | run | overhead (bytes) | datagrams in / TS packets | data pkts received / unique | dropped | kernel UDP drops: relay / machine | received TS | video frames | decode errors | receiver CPU | max RSS | noticed close (after ffmpeg exit) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
