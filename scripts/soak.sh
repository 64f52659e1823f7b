#!/usr/bin/env bash
# Soak: a push, viewers and danmaku for a while against one `barrage serve`, sampling the
# server every 10 s (RSS, open fds, CPU seconds, segments stored) beside what the viewers got.
# Not part of CI. Usage: scripts/soak.sh [minutes] [viewers] [messages/s] [barrage binary]
# Needs ffmpeg, node with tests/browser's modules (npm ci --prefix tests/browser).
set -euo pipefail
minutes=${1:-5}; viewers=${2:-500}; rate=${3:-20}; bin=${4:-target/debug/barrage}
seconds=$((minutes * 60))
dir=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
port_http=$((20000 + RANDOM % 10000)); port_rtmp=$((port_http + 1))
BARRAGE_DATA_DIR="$dir/data" BARRAGE_HTTP__LISTEN=127.0.0.1:$port_http \
  BARRAGE_RTMP__LISTEN=127.0.0.1:$port_rtmp BARRAGE_HTTP__MAX_CONNECTIONS_PER_IP=100000 \
  "$bin" serve >"$dir/serve.log" 2>&1 &
pid=$!
until [ -s "$dir/data/secrets.toml" ] && curl -sf "http://127.0.0.1:$port_http/healthz" >/dev/null; do sleep 0.2; done
key=$(awk -F'"' '/^\[/{sec=$0} sec=="[stream_keys]" && /^demo =/{print $2}' "$dir/data/secrets.toml")
admin=$(sed -n 's/^admin_key = "\(.*\)"/\1/p' "$dir/data/secrets.toml")
ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc=size=640x360:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t "$seconds" -c:v libx264 -preset veryfast \
  -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p -b:v 800k -c:a aac -b:a 64k \
  -f flv "rtmp://127.0.0.1:$port_rtmp/live/$key" &
BASE=http://127.0.0.1:$port_http ADMIN_KEY=$admin VIEWERS=$viewers RATE=$rate SECONDS=$seconds \
  node scripts/soak_load.mjs >"$dir/load.log" &
load=$!
hz=$(getconf CLK_TCK)
printf '%6s %9s %6s %8s %9s %s\n' t_s rss_kib fds cpu_s segments viewers
for ((t = 10; t <= seconds; t += 10)); do
  sleep 10
  rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
  fds=$(ls /proc/$pid/fd | wc -l)
  cpu=$(awk -v hz="$hz" '{printf "%.1f", ($14 + $15) / hz}' /proc/$pid/stat)
  segs=$(find "$dir/data/hls" -name '*.m4s' 2>/dev/null | wc -l)
  printf '%6s %9s %6s %8s %9s %s\n' "$t" "$rss" "$fds" "$cpu" "$segs" "$(tail -1 "$dir/load.log" 2>/dev/null)"
done
wait $load || true
grep -c ' ERROR ' "$dir/serve.log" | sed 's/^/error lines in the server log: /'
