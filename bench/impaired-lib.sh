# Shared by the impaired-link benches (srt-impaired.sh, contribution-impaired.sh), sourced
# from the repository's root: the clip every run sends, and judging what came out.

# make_clip WORK SECS MBPS: a 1080p30 H.264 CBR + AAC MPEG-TS clip of SECS seconds whose
# total rate is MBPS Mbit/s (made once per rate and length, kept in WORK); prints its path.
make_clip() {
  local work=$1 secs=$2 mbps=$3
  local clip=$work/clip-${mbps}M-${secs}s.ts
  if [ ! -s "$clip" ]; then
    local v=$((mbps * 1000 - 300))k
    echo "making $clip" >&2
    ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
      -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$secs" -map 0:v -map 1:a \
      -c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 60 \
      -b:v "$v" -minrate "$v" -maxrate "$v" -bufsize "$v" -x264-params nal-hrd=cbr \
      -c:a aac -b:a 128k -f mpegts "$clip.tmp"
    mv "$clip.tmp" "$clip"
  fi
  echo "$clip"
}

# video_frames INPUT [COMMAND PREFIX...]: video packets in a file or an (ended) playlist,
# read by ffprobe run under the prefix (e.g. `ip netns exec NS`).
video_frames() {
  local input=$1 n
  shift
  n=$("$@" ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets \
    -of csv=p=0 "$input" 2>/dev/null | grep -m1 .) || true
  echo "${n:-0}"
}

# judge_hls URL DIR [COMMAND PREFIX...]: reads an ended LL-HLS playlist back and sets
# out_frames (video packets), monotonic (yes/no: video DTS strictly increasing) and
# decode_errors (lines of decoder errors over the whole stream).
judge_hls() {
  local url=$1 dir=$2
  shift 2
  "$@" ffprobe -v error -select_streams v:0 -show_entries packet=dts_time -of csv=p=0 "$url" \
    >"$dir/dts.txt" || true
  out_frames=$(grep -c . "$dir/dts.txt" || true)
  monotonic=$(awk 'NR > 1 && $1 <= prev { bad++ } { prev = $1 } END { print (bad ? "no" : "yes") }' "$dir/dts.txt")
  decode_errors=$("$@" ffmpeg -nostdin -v error -i "$url" -f null - 2>&1 | grep -c . || true)
}
