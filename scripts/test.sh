#!/usr/bin/env bash
# The whole test suite, with its peers installed first (as root on Debian; skips what is there):
#   ffmpeg/ffprobe (RTMP pushes, segment checks), s3s-fs (a real S3-protocol server),
#   chromium, node/npm and tests/browser's npm modules (page tests), redis-server (the
#   cluster outage test runs its own), nginx (`nginx -t` on deploy/nginx.conf). PostgreSQL
#   (127.0.0.1:5432) and Redis (127.0.0.1:6379) are started when they do not answer; tests
#   that need them say so if not.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

need_apt=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
# Page tests: Debian's chromium driven by playwright-core (tests/browser), CJK fonts for danmaku.
[ -x /usr/bin/chromium ] || need_apt+=(chromium fonts-noto-cjk)
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
# Build: openssl-sys (reqwest's native-tls, pulled in by the rtmp crate) needs headers + pkg-config.
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
[ -f /usr/include/openssl/ssl.h ] || need_apt+=(libssl-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing: ${need_apt[*]}; run as root or: sudo apt-get install -y ${need_apt[*]}" >&2
    exit 1
  fi
  log "installing ${need_apt[*]} (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/ws ]; then
  log "installing the browser test runner (npm ci in tests/browser; no browser download)"
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi

export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v s3s-fs >/dev/null 2>&1; then
  log "installing s3s-fs 0.14.1 (S3-protocol test server; ~4 min once)"
  cargo install s3s-fs@0.14.1 --locked --features binary --quiet
fi

log "checking services"
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  echo "PostgreSQL is not answering on 127.0.0.1:5432; starting it" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "Redis is not answering on 127.0.0.1:6379; starting it" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi

# A link that dies with SIGBUS is almost always a full disk; say so before cargo does.
avail_kb=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${avail_kb:-0}" -lt 4000000 ]; then
  echo "warning: only $((avail_kb / 1024)) MiB free here; a full build and test run needs about 4 GiB" >&2
fi

log "format and lints"
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings

log "tests"
cargo test --all-targets "$@"
