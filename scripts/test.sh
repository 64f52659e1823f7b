#!/usr/bin/env bash
# The whole test suite, with its peers installed first (as root on Debian; skips what is there):
#   ffmpeg/ffprobe (RTMP pushes, segment checks), s3s-fs (a real S3-protocol server),
#   chromium, node/npm and tests/browser's npm modules (page tests), redis-server (the
#   cluster outage test runs its own), nginx (`nginx -t` on deploy/nginx.conf), PostgreSQL
#   (the database tests). PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are started
#   when they do not answer; user postgres is let in from 127.0.0.1 without a password and
#   database `test` is created when missing. Tests whose peer is still missing say so.
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
# Database tests: postgres://postgres@127.0.0.1:5432/test with trust auth, where each test
# creates a scratch database of its own (src/testutil.rs). BARRAGE_TEST_POSTGRES points them
# at another server; then the local one is left alone.
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pg_local=true
if [ -n "${BARRAGE_TEST_POSTGRES:-}" ]; then pg_local=false; fi
if $pg_local && ! answers 5432; then
  command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] || need_apt+=(postgresql)
fi
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
if $pg_local && ! answers 5432; then
  echo "PostgreSQL is not answering on 127.0.0.1:5432; starting it" >&2
  # Installing the package creates cluster <version>/main; make one if there is none.
  if [ -z "$(pg_lsclusters -h 2>/dev/null)" ] && [ "$(id -u)" = 0 ]; then
    pg_createcluster "$(ls /usr/lib/postgresql | sort -V | tail -1)" main >/dev/null || true
  fi
  pg_version='' pg_cluster=''
  read -r pg_version pg_cluster _ < <(pg_lsclusters -h 2>/dev/null | head -1) || true
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" "$pg_cluster" start || true
  for _ in $(seq 50); do answers 5432 && break; sleep 0.2; done
fi
if $pg_local && answers 5432; then
  pg() { psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -w -XqtA -c "$1"; }
  as_postgres() { (cd / && runuser -u postgres -- psql -XqtA -c "$1"); }
  if ! command -v psql >/dev/null 2>&1; then
    echo "psql is missing: cannot check database test (apt-get install postgresql-client)" >&2
  else
    # Debian's own setup asks for a password on TCP. The tests log in as postgres without one,
    # so put a trust line for exactly that first (a test machine only: any local user can then
    # act as the database superuser over 127.0.0.1).
    if ! pg 'SELECT 1' >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v runuser >/dev/null 2>&1; then
      hba=$(as_postgres 'SHOW hba_file' 2>/dev/null) || true
      if [ -n "$hba" ] && [ -f "$hba" ]; then
        log "letting user postgres in from 127.0.0.1 without a password (trust, top of $hba)"
        {
          echo "# Added by barrage's scripts/test.sh: the tests log in as postgres from 127.0.0.1."
          echo "host all postgres 127.0.0.1/32 trust"
          cat "$hba"
        } >"$hba.barrage-new"
        cat "$hba.barrage-new" >"$hba" # keeps the file's owner and mode
        rm -f "$hba.barrage-new"
        as_postgres 'SELECT pg_reload_conf()' >/dev/null || true
        for _ in $(seq 10); do pg 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
      fi
    fi
    if ! pg 'SELECT 1' >/dev/null 2>&1; then
      echo "PostgreSQL on 127.0.0.1:5432 does not let user postgres in without a password;" \
        "the database tests will fail (run this as root, or set BARRAGE_TEST_POSTGRES)" >&2
    elif [ "$(pg "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
      log "creating database test (PostgreSQL)"
      pg 'CREATE DATABASE test' || true
    fi
  fi
fi
if ! answers 6379; then
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
