#!/usr/bin/env bash
# Chain hop latency: the time from one task's end to the next one's start in a chain of N
# tasks, for `batchd run`, GNU make and ninja, beside the floor of the machine (the same
# process run N times by a plain fork/exec/wait loop). Each task runs bench/stamp.c, which
# appends the monotonic clock to a file; a hop is the difference of two consecutive stamps,
# so it includes the upstream's exit and the downstream's fork and exec.
#
#   bench/hops.sh [-n CHAIN] [-j JOBS] [-o CSV]
#
# -o: one row per hop, "tool,hop,us" (default bench/results/hops.csv).
# Builds nothing but the probe: expects ./build/batchd (or $BATCHD) and a C compiler.
set -euo pipefail

BATCHD=${BATCHD:-./build/batchd}
CHAIN=1000
JOBS=2
OUT=bench/results/hops.csv
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while getopts "n:j:o:h" opt; do
  case $opt in
    n) CHAIN=$OPTARG ;;
    j) JOBS=$OPTARG ;;
    o) OUT=$OPTARG ;;
    *) usage ;;
  esac
done
for tool in "$BATCHD" make ninja cc; do
  command -v "$tool" >/dev/null 2>&1 || { echo "hops.sh: '$tool' not found" >&2; exit 1; }
done
BATCHD=$(realpath "$BATCHD")
mkdir -p "$(dirname "$OUT")"
OUT=$(realpath "$OUT")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/batchd-hops-XXXXXX")
trap 'rm -rf "$WORK"' EXIT

STAMP=$WORK/stamp
cc -O2 -static "$(dirname "$0")/stamp.c" -o "$STAMP"

# The same chain for the three tools; every task appends to $WORK/<tool>.stamps.
gen_chain() {  # tool
  local file=$WORK/$1.stamps
  {
    printf 'dag: bench_hops\ntasks:\n'
    printf '  - id: t0\n    command: %s %s\n' "$STAMP" "$file"
    for ((i = 1; i < CHAIN; i++)); do
      printf '  - id: t%d\n    depends_on: [t%d]\n    command: %s %s\n' "$i" $((i - 1)) "$STAMP" "$file"
    done
  } >"$WORK/dag.yaml"
  {
    printf '.PHONY: all'
    for ((i = 0; i < CHAIN; i++)); do printf ' t%d' "$i"; done
    printf '\nall: t%d\nt0:\n\t@%s %s\n' $((CHAIN - 1)) "$STAMP" "$file"
    for ((i = 1; i < CHAIN; i++)); do printf 't%d: t%d\n\t@%s %s\n' "$i" $((i - 1)) "$STAMP" "$file"; done
  } >"$WORK/Makefile"
  {
    printf 'rule stamp\n  command = %s %s\n' "$STAMP" "$file"
    printf 'build t0: stamp\n'
    for ((i = 1; i < CHAIN; i++)); do printf 'build t%d: stamp t%d\n' "$i" $((i - 1)); done
    printf 'build all: phony t%d\ndefault all\n' $((CHAIN - 1))
  } >"$WORK/build.ninja"
}

cd "$WORK"
gen_chain batchd
"$BATCHD" run dag.yaml --data-dir "$WORK/data" --workers "$JOBS" --date 2026-01-01 >/dev/null
gen_chain make
make -s -j"$JOBS" -f Makefile all
gen_chain ninja
ninja -j"$JOBS" -f build.ninja all >/dev/null
"$STAMP" --floor "$CHAIN" "$WORK/floor.stamps"
cd - >/dev/null

echo "tool,hop,us" >"$OUT"
printf '%-7s %6s %9s %9s %9s %9s   (chain of %d, -j%d)\n' tool hops p50_us p90_us p99_us max_us "$CHAIN" "$JOBS"
for tool in batchd make ninja floor; do
  awk -v tool="$tool" 'NR > 1 { printf "%s,%d,%.1f\n", tool, NR - 1, ($1 - prev) / 1000 } { prev = $1 }' \
    "$WORK/$tool.stamps" >>"$OUT"
  grep "^$tool," "$OUT" | cut -d, -f3 | sort -n | awk -v tool="$tool" '{ v[NR] = $1 }
    function pct(p) { i = int(NR * p + 0.5); if (i < 1) i = 1; if (i > NR) i = NR; return v[i] }
    END { printf "%-7s %6d %9.1f %9.1f %9.1f %9.1f\n", tool, NR, pct(0.5), pct(0.9), pct(0.99), v[NR] }'
done
echo "wrote $OUT"
