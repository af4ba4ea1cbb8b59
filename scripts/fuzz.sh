#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang into ./build-fuzz and runs each
# for FUZZ_SECONDS (default 30), FUZZ_PARALLEL (default 2) at a time (docs/testing.md).
# Fails when a target crashes, leaks, hangs or hits UB, and prints the reproducer.
#   bash scripts/fuzz.sh                  every target
#   bash scripts/fuzz.sh cron template    only these
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
SECONDS_EACH=${FUZZ_SECONDS:-30}
PARALLEL=${FUZZ_PARALLEL:-2}
ALL=(dag_loader cron template config control_api)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")

CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBATCHD_FUZZ=ON \
  -DBATCHD_BUILD_TESTS=OFF "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS" $(printf -- '--target fuzz_%s ' "${targets[@]}")

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
[ -x /usr/lib/llvm-14/bin/llvm-symbolizer ] && export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer

# Seeds: the committed ones, plus the example DAGs and the YAML the loader tests use
# (for the loader) and the example config (for the config loader).
seeds() {
  local t=$1 dir=$BUILD_DIR/seeds/$1
  rm -rf "$dir" && mkdir -p "$dir"
  [ -d tests/fuzz/corpus/$t ] && cp tests/fuzz/corpus/$t/* "$dir"/
  case $t in
    dag_loader)
      cp dags/*.yaml "$dir"/
      python3 - "$dir" tests/dag/*_test.cc <<'PY'
import re, sys
out, files = sys.argv[1], sys.argv[2:]
n = 0
for f in files:
    for m in re.finditer(r'R"yaml\((.*?)\)yaml"', open(f, encoding="utf-8").read(), re.S):
        open(f"{out}/test{n:03d}.yaml", "w").write(m.group(1))
        n += 1
PY
      ;;
    config) cp config/batchd.yaml "$dir"/ ;;
  esac
  echo "$dir"
}

# -timeout=25: one input may be a backfill of decades, thousands of runs created in one
# request (seconds under ASan); a hang still fails.
run_one() {
  local t=$1 work=$BUILD_DIR/corpus/$1 art=$BUILD_DIR/artifacts/$1/ log=$BUILD_DIR/logs/$1.log
  mkdir -p "$work" "$art" "$(dirname "$log")"
  rm -f "$art"/*
  local seed_dir
  seed_dir=$(seeds "$t")
  if "$BUILD_DIR/tests/fuzz/fuzz_$t" -max_total_time="$SECONDS_EACH" -timeout=25 -rss_limit_mb=4096 \
       -print_final_stats=1 -artifact_prefix="$art" "$work" "$seed_dir" >"$log" 2>&1; then
    echo "fuzz_$t: ok, $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs in ${SECONDS_EACH} s, corpus $(ls "$work" | wc -l) inputs"
    return 0
  fi
  echo "fuzz_$t: FAILED; the end of its log ($log):"
  tail -n 60 "$log"
  for f in "$art"*; do
    [ -f "$f" ] || continue
    echo "--- reproducer $f ($(stat -c %s "$f") bytes); run it with: $BUILD_DIR/tests/fuzz/fuzz_$t $f"
    head -c 2048 "$f" | od -A d -c | head -n 40
  done
  return 1
}

failed=0
pids=()
names=()
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n || true; done
  run_one "$t" > "$BUILD_DIR/logs.$t.summary" 2>&1 &
  pids+=($!)
  names+=("$t")
done
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then failed=1; fi
  cat "$BUILD_DIR/logs.${names[$i]}.summary"
done
exit $failed
