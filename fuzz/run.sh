#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30) with the seed corpus.
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
# Needs a nightly toolchain and cargo-fuzz (installed into fuzz/.tools if missing).
set -euo pipefail
cd "$(dirname "$0")"
SECS="${1:-30}"; shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(load_yaml request_json evaluate canonical_json audit_file grant_token ffi oracle)
export PATH="$PWD/.tools/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked --root .tools
fi
[ -d corpus ] || python3 seed.py
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
# Build every target first: a build failure must fail the run, not look clean.
cargo +nightly fuzz build
status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t ($SECS s)"
  # regressions/$t: inputs that once crashed (each also a unit test in aegis-core);
  # read as a second corpus, so every run replays them first.
  extra=(); [ -d "regressions/$t" ] && extra=("regressions/$t")
  cargo +nightly fuzz run "$t" "corpus/$t" "${extra[@]}" -- \
      -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
      -artifact_prefix="artifacts/$t/" -dict="$PWD/dict/hosts_numbers.dict" -print_final_stats=1 2>&1 | tee "artifacts/$t.log" | \
      grep -E "^(#[0-9]+ *DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY|panicked)" || true
  if ls "artifacts/$t"/crash-* "artifacts/$t"/oom-* "artifacts/$t"/timeout-* >/dev/null 2>&1; then
    echo "!! $t: findings in fuzz/artifacts/$t"; status=1
  elif ! grep -q "stat::number_of_executed_units" "artifacts/$t.log"; then
    echo "!! $t: the fuzzer did not run to completion (see fuzz/artifacts/$t.log)"; status=1
  fi
done
exit $status
