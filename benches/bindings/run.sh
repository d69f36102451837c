#!/usr/bin/env bash
# Per-call evaluate benchmarks of every binding on the agent-tools workload
# (bundle(1000), 4,096 requests). Run from anywhere; builds what it needs.
#   benches/bindings/run.sh [py|node|go|c ...]     (default: all four)
# Env: SKIP_BUILD=1 uses the bindings as built; ROUNDS (default 7); GO_BENCHTIME
# (default 3s); WORKLOAD (default target/bench-bindings/workload).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
OUT="$ROOT/target/bench-bindings"
WORKLOAD="${WORKLOAD:-$OUT/workload}"
ROUNDS="${ROUNDS:-7}"
mkdir -p "$OUT"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(py node go c)

python3 benches/bindings/gen.py "$WORKLOAD" --agents 1000 --count 4096 --seed 42

for t in "${targets[@]}"; do
  case "$t" in
    py)
      [ -n "${SKIP_BUILD:-}" ] || make -f aegis-py/py.mk py-build
      .venv/bin/python -m pip install -q -r benches/bindings/requirements.txt
      echo "== python"
      .venv/bin/python benches/bindings/bench_py.py "$WORKLOAD" --rounds "$ROUNDS"
      ;;
    node)
      [ -n "${SKIP_BUILD:-}" ] || make -f aegis-node/node.mk node-build
      echo "== node"
      node benches/bindings/bench_node.js "$WORKLOAD" "$ROUNDS"
      ;;
    go)
      [ -n "${SKIP_BUILD:-}" ] || make -f aegis-ffi/ffi.mk ffi-build
      echo "== go"
      (cd aegis-ffi/go && AEGIS_BENCH_WORKLOAD="$WORKLOAD" go test -run '^$' -bench . \
        -benchtime "${GO_BENCHTIME:-3s}" -count 1 .)
      ;;
    c)
      [ -n "${SKIP_BUILD:-}" ] || make -f aegis-ffi/ffi.mk ffi-build
      echo "== c"
      cc -std=c11 -O2 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -I aegis-ffi/include \
        benches/bindings/bench_c.c target/release/libaegis.a -lpthread -ldl -lm -o "$OUT/bench_c"
      "$OUT/bench_c" "$WORKLOAD" "$ROUNDS"
      ;;
    *) echo "unknown target $t (py|node|go|c)" >&2; exit 2 ;;
  esac
done
