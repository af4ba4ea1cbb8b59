#!/usr/bin/env bash
# The test command: installs what is missing, then runs every suite (docs/testing.md):
#   asan+ubsan  every unit and end-to-end test, ASan+UBSan build in ./build-asan
#   tsan        the engine, executor and api tests, TSan build in ./build-tsan
#   fuzz        each libFuzzer target for 30 s, two at a time, clang build in ./build-fuzz
# Every suite runs even when an earlier one failed; the exit status says whether all
# passed. The last lines are each suite's wall time and the ctest summaries.
set -euo pipefail
cd "$(dirname "$0")/.."

summary=()
failed=()
ctest_lines=()
run_suite() {
  local name=$1 log
  shift
  log=$(mktemp)
  local start=$SECONDS status=0
  echo "=== suite $name: $*"
  "$@" 2>&1 | tee "$log" || status=$?
  local took=$((SECONDS - start))
  if [ $status -eq 0 ]; then
    summary+=("suite $name: $took s")
  else
    summary+=("suite $name: $took s, FAILED (exit $status)")
    failed+=("$name")
  fi
  if grep -q '^Total Test time' "$log"; then
    ctest_lines+=("--- $name")
    while IFS= read -r line; do ctest_lines+=("$line"); done \
      < <(grep -E '^[0-9]+% tests passed|^Total Test time' "$log")
  fi
  rm -f "$log"
}

total_start=$SECONDS
run_suite deps bash scripts/deps.sh
run_suite "fuzz (5 targets x ${FUZZ_SECONDS:-30} s)" bash scripts/fuzz.sh
run_suite "tsan (engine+executor+api)" bash scripts/sanitize.sh thread
run_suite "asan+ubsan (unit+e2e)" bash scripts/sanitize.sh address,undefined

echo
echo "=== timings"
printf '%s\n' "${summary[@]}"
echo "total: $((SECONDS - total_start)) s"
echo "=== ctest"
printf '%s\n' "${ctest_lines[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED suites: ${failed[*]}"
  exit 1
fi
