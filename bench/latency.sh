#!/usr/bin/env bash
# Glass-to-glass latency: Starling's LL-HLS in Chromium with hls.js (the /watch page, as
# viewers get it) against nginx-rtmp's HLS (Debian's libnginx-mod-rtmp, hls.js with its
# defaults), fed by the same encode in the same run.
#
# bench/latency/stamp.py draws the wall clock (ms) into every frame as big black/white
# blocks and writes raw frames in real time to one ffmpeg (x264 -tune zerolatency, 1 s
# GOP, 1280x720 30 fps), whose tee muxer publishes the same stream over RTMP to Starling
# and to nginx. bench/latency/reader.mjs plays both in headless Chromium, reads the
# blocks back from the <video> frame on screen every 100 ms and records now - stamp.
# Prints a Markdown table (p50/p90/p99 over the measured window, after a warm-up).
#
# Usage: bench/latency.sh [seconds] [warm-up seconds]     (defaults 45 15)
# Starling's settings can be changed through its environment, e.g.
#   STARLING_ORIGIN_PART_DURATION_MS=200 bench/latency.sh
# and the players' live-sync target with STARLING_SYNC=1.0 (the /watch page's ?sync=) or
# NGINX_SYNC=2 (the plain page's liveSyncDuration); AUDIO=1 adds an AAC tone (ffmpeg's
# sine source, paced by -re) to the encode. INGEST=srt publishes to Starling over SRT
# instead (MPEG-TS, SRT_LATENCY_MS, default 200), through udp-relay when RTT_MS or LOSS
# is set (delay RTT/2 each way, random loss both ways, fixed seed); nginx-rtmp is still
# fed over RTMP on loopback, so the difference is what the SRT link adds. DASH=1 adds a
# third player on the same source: Starling's DASH MPD in dash.js (the /watch page's
# ?player=dash; low-latency DASH for this low-latency channel). LADDER=1 turns Starling's
# transcoding ladder on and adds a player on its 360p rung alone (the /watch page's
# ?rendition=360p): what a rung adds over the source. WHEP=1 adds the /watch page in real
# time (?realtime=1: WebRTC, frames straight from the hub). Loopback only; everything it starts
# it stops; bounded in time. Needs ffmpeg, nginx + libnginx-mod-rtmp, chromium, Node.js
# (installed from Debian's packages when missing), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-45}
warmup=${2:-15}
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v nginx >/dev/null || need+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || need+=(chromium)
command -v npm >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo -n)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The release build also runs `npm ci` in web/ (hls.js, playwright-core).
ingest=${INGEST:-rtmp}
case "$ingest" in rtmp | srt) ;; *) echo "INGEST must be rtmp or srt" >&2; exit 2 ;; esac
cargo build --release -q -p starling
[ "$ingest" = rtmp ] || cargo build --release -q -p starling-bench --bin udp-relay
bin=${CARGO_TARGET_DIR:-target}/release/starling
[ -f web/node_modules/playwright-core/package.json ] || npm ci --prefix web --no-audit --no-fund >/dev/null

dir=$(mktemp -d /tmp/starling-latency.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
uport() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port); rtmp=$(port); nhttp=$(port); nrtmp=$(port); srt=$(uport); relay=$(uport); rtc=$(uport)
pids=()
cleanup() {
  # Publisher first, so neither server sees more than an ended stream.
  for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

cat > "$dir/starling.toml" <<CONF
[server]
http_listen = "127.0.0.1:$http"
data_dir = "$dir/data"
[rtmp]
listen = "127.0.0.1:$rtmp"
[srt]
listen = "127.0.0.1:$srt"
[webrtc]
udp_listen = "127.0.0.1:$rtc"
[transcode]
enabled = $([ "${LADDER:-0}" = 0 ] && echo false || echo true)
[[channels]]
name = "bench"
stream_key = "bench-latency-key"
CONF
RUST_LOG=warn "$bin" serve --config "$dir/starling.toml" >/dev/null 2>"$dir/starling.log" &
spid=$!

# nginx-rtmp as a child in the foreground (daemon off), its own prefix, loopback only.
# Workers may run as nobody: let them write the HLS directory and read the page.
mkdir -p "$dir/hls" "$dir/www" "$dir/tmp"
cp bench/latency/player.html web/node_modules/hls.js/dist/hls.min.js "$dir/www/"
chmod 755 "$dir" "$dir/www"; chmod 777 "$dir/hls" "$dir/tmp"; chmod 644 "$dir/www/"*
cat > "$dir/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx.error.log warn;
events { worker_connections 1024; }
rtmp {
  server {
    listen 127.0.0.1:$nrtmp;
    application live {
      live on;
      hls on;
      hls_path $dir/hls;
      hls_fragment 1s;
      hls_playlist_length 4s;
    }
  }
}
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  types {
    text/html html;
    application/javascript js;
    application/vnd.apple.mpegurl m3u8;
    video/mp2t ts;
  }
  server {
    listen 127.0.0.1:$nhttp;
    location /hls/ { alias $dir/hls/; add_header Cache-Control no-cache; }
    location / { root $dir/www; }
  }
}
CONF
nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2>>"$dir/nginx.error.log" &
npid=$!
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$http/healthz" && break; sleep 0.1; done
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$nhttp/player.html" && break; sleep 0.1; done

# Starling's input: RTMP, or SRT (through the impaired link when one is asked for).
starling_out="[f=flv:onfail=ignore]rtmp://127.0.0.1:$rtmp/live/bench-latency-key"
link="RTMP on loopback"
relay_pid=()
if [ "$ingest" = srt ]; then
  lat=${SRT_LATENCY_MS:-200}
  to=$srt
  link="SRT, latency $lat ms, loopback"
  if [ -n "${RTT_MS:-}${LOSS:-}" ]; then
    "${bin%/starling}/udp-relay" --listen "127.0.0.1:$relay" --to "127.0.0.1:$srt" \
      --delay-ms $((${RTT_MS:-0} / 2)) --loss "${LOSS:-0}" --seed 7 2>"$dir/relay.log" >"$dir/relay.json" &
    relay_pid=($!)
    to=$relay
    link="SRT, latency $lat ms, through udp-relay: RTT ${RTT_MS:-0} ms, loss ${LOSS:-0} each way"
    sleep 0.5
  fi
  starling_out="[f=mpegts:onfail=ignore]srt://127.0.0.1:$to?streamid=#!::r=bench,m=publish,s=bench-latency-key&latency=$((lat * 1000))"
fi

# One encode, both servers. The frames come through a FIFO so that both ends have a pid.
mkfifo "$dir/frames"
total=$((warmup + secs + 90))
python3 bench/latency/stamp.py --width 1280 --height 720 --fps 30 --seconds "$total" >"$dir/frames" &
gen=$!
audio=()
[ "${AUDIO:-0}" = 0 ] || audio=(-re -f lavfi -i sine=frequency=440:sample_rate=48000 -map 1:a -c:a aac -b:a 128k)
ffmpeg -nostdin -v error -f rawvideo -pix_fmt yuv420p -s 1280x720 -framerate 30 -i "$dir/frames" \
  ${audio[@]+"${audio[@]}"} -map 0:v -c:v libx264 -preset veryfast -tune zerolatency -g 30 -keyint_min 30 -sc_threshold 0 \
  -b:v 2500k -maxrate 2500k -bufsize 1250k -flags +global_header \
  -f tee "$starling_out|[f=flv:onfail=ignore]rtmp://127.0.0.1:$nrtmp/live/bench" \
  2>"$dir/ffmpeg.log" &
pub=$!
pids=("$pub" "$gen" ${relay_pid[@]+"${relay_pid[@]}"} "$npid" "$spid")

for _ in $(seq 1 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$http/live/bench/index.m3u8" \
    && curl -sf -o /dev/null "http://127.0.0.1:$nhttp/hls/bench.m3u8" && break
  sleep 0.2
done
curl -sf -o /dev/null "http://127.0.0.1:$nhttp/hls/bench.m3u8" || {
  echo "nginx did not produce a playlist:"; cat "$dir/nginx.error.log" "$dir/ffmpeg.log"; exit 1; }
curl -sf -o /dev/null "http://127.0.0.1:$http/live/bench/index.m3u8" || {
  echo "Starling did not produce a playlist:"; tail -20 "$dir/starling.log" "$dir/ffmpeg.log"; exit 1; }

squery=""; [ -z "${STARLING_SYNC:-}" ] || squery="?sync=$STARLING_SYNC"
nquery=""; [ -z "${NGINX_SYNC:-}" ] || nquery="&sync=$NGINX_SYNC"
dash_page=()
[ "${DASH:-0}" = 0 ] || dash_page=(--page "starling-dash.js=http://127.0.0.1:$http/watch/bench?player=dash${STARLING_SYNC:+&sync=$STARLING_SYNC}")
whep_page=()
[ "${WHEP:-0}" = 0 ] || whep_page=(--page "starling-whep=http://127.0.0.1:$http/watch/bench?realtime=1")
rung_page=()
if [ "${LADDER:-0}" != 0 ]; then
  for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$http/live/bench/360p/index.m3u8" && break; sleep 0.2; done
  rung_page=(--page "starling-360p-rung=http://127.0.0.1:$http/watch/bench?rendition=360p${STARLING_SYNC:+&sync=$STARLING_SYNC}")
fi
out=$(timeout $((warmup + secs + 150)) node bench/latency/reader.mjs \
  --page "starling=http://127.0.0.1:$http/watch/bench$squery" \
  ${whep_page[@]+"${whep_page[@]}"} \
  ${dash_page[@]+"${dash_page[@]}"} \
  ${rung_page[@]+"${rung_page[@]}"} \
  --page "nginx-rtmp=http://127.0.0.1:$nhttp/player.html?src=/hls/bench.m3u8$nquery" \
  --warmup "$warmup" --seconds "$secs" --timeout 60 | tail -1) || true
[ -n "$out" ] || out='{"ok":false,"reason":"the reader printed nothing"}'

part=$(curl -sf "http://127.0.0.1:$http/live/bench/source/index.m3u8" | grep -m1 -o 'PART-TARGET=[0-9.]*' | cut -d= -f2 || true)
ntarget=$(curl -sf "http://127.0.0.1:$nhttp/hls/bench.m3u8" | grep -m1 -o 'TARGETDURATION:[0-9]*' | cut -d: -f2 || true)
echo "glass to glass, ${secs} s after a ${warmup} s warm-up; 1280x720 30 fps x264 zerolatency, 1 s GOP$([ ${#audio[@]} -eq 0 ] || echo ', AAC audio'); machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "starling: $link; PART-TARGET ${part:-?} s, /watch page${squery:+ $squery}; nginx-rtmp: hls_fragment 1s, TARGETDURATION ${ntarget:-?}, hls.js defaults${nquery:+ ?${nquery#&}}"
echo
printf '%s' "$out" | node -e '
let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
  const r = JSON.parse(s);
  if (!r.ok) { console.log(`reader failed: ${r.reason}`); process.exit(1); }
  const f = (x) => (x === null ? "–" : `${x.toFixed(2)} s`);
  console.log("| server | p50 | p90 | p99 | samples | undecodable | buffered ahead p50 | hls.js latency / target p50 | stalls (before) |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const x of r.results) {
    console.log(`| ${x.name} | ${f(x.p50)} | ${f(x.p90)} | ${f(x.p99)} | ${x.samples} | ${x.undecodable} | ${f(x.buffer_p50)} | ${f(x.hlsjs_latency_p50)} / ${f(x.hlsjs_target_p50)} | ${x.stalls} (${x.stalls_before}) |`);
  }
  for (const x of r.results) {
    if (x.hlsjs_errors.length) console.log(`\n${x.name}: hls.js error events: ${x.hlsjs_errors.join(", ")}`);
  }
  for (const x of r.results) {
    if (x.trace) console.log(`\n${x.name}: start-up trace (DIAG=1)\n  ${x.trace.join("\n  ")}`);
  }
});'
