#!/usr/bin/env bash
# Runs every fuzz target (cargo-fuzz / libFuzzer) for a fixed time each and prints totals.
# Not part of CI (CI replays the committed corpus in `cargo test`, see tests/fuzz_replay.rs).
#
#   scripts/fuzz.sh                      # every target, 10 minutes each
#   FUZZ_SECONDS=180 scripts/fuzz.sh     # 3 minutes each
#   scripts/fuzz.sh rtmp_session         # some targets only
#
# Stable Rust: cargo-fuzz needs `-Z` flags (sanitizer, coverage options), which a stable
# compiler accepts with RUSTC_BOOTSTRAP=1; see docs/RELIABILITY.md. Builds once into
# fuzz/target (instrumented, separate from the main target dir). New inputs the fuzzer finds go
# to fuzz/work/<target> (not committed); crashes to fuzz/artifacts/<target>; logs to
# fuzz/logs/<target>.log. A crash stops that target's run and is listed at the end: reproduce
# with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>`, fix it, and keep the input under
# fuzz/regressions/<target>/ so `cargo test` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-600}
all_targets=(rtmp_session amf0_message media_tags chat_frame api_body)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

# Largest input per target: a captured publish is 35 KiB, a nested-AMF0 session 64 KiB.
max_len() {
  case "$1" in
    rtmp_session|media_tags) echo 131072 ;;
    amf0_message) echo 70000 ;;
    *) echo 8192 ;;
  esac
}

export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz (once)"
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
# The instrumented build must not land in a shared target dir (it would rebuild everything there).
unset CARGO_TARGET_DIR

echo "==> building the fuzz targets (instrumented, once; reused when nothing changed)"
cargo fuzz build

mkdir -p fuzz/logs
declare -A execs cov ft crashed
for t in "${targets[@]}"; do
  mkdir -p "fuzz/work/$t" "fuzz/artifacts/$t"
  dirs=("fuzz/work/$t" "fuzz/corpus/$t")
  # Regression inputs are seeds too, when there are any.
  if compgen -G "fuzz/regressions/$t/*.bin" >/dev/null; then dirs+=("fuzz/regressions/$t"); fi
  echo "==> $t: ${seconds}s"
  set +e
  cargo fuzz run "$t" "${dirs[@]}" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
    >"fuzz/logs/$t.log" 2>&1
  status=$?
  set -e
  execs[$t]=$(grep -o 'stat::number_of_executed_units: [0-9]*' "fuzz/logs/$t.log" | tail -1 | awk '{print $2}')
  last=$(grep -E '^#[0-9]+' "fuzz/logs/$t.log" | grep -o 'cov: [0-9]* ft: [0-9]*' | tail -1)
  cov[$t]=$(echo "$last" | awk '{print $2}')
  ft[$t]=$(echo "$last" | awk '{print $4}')
  crashed[$t]=$([ $status -eq 0 ] && echo no || echo "yes (exit $status)")
  echo "    executions ${execs[$t]:-?}, coverage ${cov[$t]:-?} edges / ${ft[$t]:-?} features, crash: ${crashed[$t]}"
done

echo
printf '%-14s %12s %8s %9s  %s\n' target executions edges features crash
total=0
for t in "${targets[@]}"; do
  printf '%-14s %12s %8s %9s  %s\n' "$t" "${execs[$t]:-?}" "${cov[$t]:-?}" "${ft[$t]:-?}" "${crashed[$t]}"
  total=$((total + ${execs[$t]:-0}))
done
echo "total executions: $total (${seconds}s per target)"
if compgen -G "fuzz/artifacts/*/*" >/dev/null; then
  echo "artifacts (crashes, timeouts, out-of-memory):"
  ls -l fuzz/artifacts/*/*
fi
