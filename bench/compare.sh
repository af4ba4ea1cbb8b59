#!/usr/bin/env bash
# Compares the per-task overhead of `batchd run` with GNU make and ninja on DAGs of no-op
# tasks (`true`), so that what is measured is scheduling + spawning + bookkeeping, not work.
#
#   bench/compare.sh [-j "2 4"] [-n RUNS] [-f "FANOUT..."] [-c "CHAIN..."] [-o CSV] [-d DATA_BASE] [-k]
#
# -f/-c: the sizes of the fan-out and chain cases (several sizes: -f "2000 20000"; "" skips).
# -o: also write one CSV row per case, tool and job count (bench/all.sh reads it).
# -d: where batchd's data directories go (default: the scratch dir under $TMPDIR); e.g.
#     -d /dev/shm takes fsync cost out of the comparison. -k keeps the scratch dir.
# Builds nothing: expects ./build/batchd (or $BATCHD). See bench/README.md.
set -euo pipefail

BATCHD=${BATCHD:-./build/batchd}
JOBS="2 4"
RUNS=3
FANOUT=2000
CHAIN=200
KEEP=0
DATA_BASE=""
CSV=""

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while getopts "j:n:f:c:o:d:kh" opt; do
  case $opt in
    j) JOBS=$OPTARG ;;
    n) RUNS=$OPTARG ;;
    f) FANOUT=$OPTARG ;;
    c) CHAIN=$OPTARG ;;
    o) CSV=$OPTARG ;;
    d) DATA_BASE=$OPTARG ;;
    k) KEEP=1 ;;
    *) usage ;;
  esac
done

for tool in "$BATCHD" make ninja; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "compare.sh: '$tool' not found (build batchd first: cmake --build build --target batchd)" >&2
    exit 1
  fi
done
BATCHD=$(realpath "$BATCHD")
if [ -n "$CSV" ]; then  # absolute: the cases run in their own directories
  mkdir -p "$(dirname "$CSV")"
  CSV=$(realpath "$CSV")
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/batchd-bench-XXXXXX")
if [ -n "$DATA_BASE" ]; then
  DATA_BASE=$(mktemp -d "$DATA_BASE/batchd-bench-data-XXXXXX")
else
  DATA_BASE=$WORK
fi
if [ "$KEEP" = 1 ]; then
  echo "keeping $WORK $DATA_BASE" >&2
else
  trap 'rm -rf "$WORK" "$DATA_BASE"' EXIT
fi

# --- Generators ----------------------------------------------------------------------
# Each case gets a directory with dag.yaml, Makefile and build.ninja describing the same
# graph. make and ninja targets are phony / never created, so every run does all the work.

gen_fanout() {  # N independent no-op partitions
  local dir=$1 n=$2
  mkdir -p "$dir"
  cat >"$dir/dag.yaml" <<EOF
dag: bench_fanout
max_active_tasks: 100000
tasks:
  - id: noop
    partitions: {range: [0, $n]}
    command: "true"
EOF
  {
    printf '.PHONY: all'
    for ((i = 0; i < n; i++)); do printf ' t%d' "$i"; done
    printf '\nall:'
    for ((i = 0; i < n; i++)); do printf ' t%d' "$i"; done
    printf '\n'
    for ((i = 0; i < n; i++)); do printf 't%d:\n\t@true\n' "$i"; done
  } >"$dir/Makefile"
  {
    printf 'rule noop\n  command = true\n'
    for ((i = 0; i < n; i++)); do printf 'build t%d: noop\n' "$i"; done
    printf 'build all: phony'
    for ((i = 0; i < n; i++)); do printf ' t%d' "$i"; done
    printf '\ndefault all\n'
  } >"$dir/build.ninja"
}

gen_chain() {  # N no-op tasks, each depending on the previous one
  local dir=$1 n=$2
  mkdir -p "$dir"
  {
    printf 'dag: bench_chain\ntasks:\n'
    printf '  - id: t0\n    command: "true"\n'
    for ((i = 1; i < n; i++)); do
      printf '  - id: t%d\n    depends_on: [t%d]\n    command: "true"\n' "$i" $((i - 1))
    done
  } >"$dir/dag.yaml"
  {
    printf '.PHONY: all'
    for ((i = 0; i < n; i++)); do printf ' t%d' "$i"; done
    printf '\nall: t%d\n' $((n - 1))
    printf 't0:\n\t@true\n'
    for ((i = 1; i < n; i++)); do printf 't%d: t%d\n\t@true\n' "$i" $((i - 1)); done
  } >"$dir/Makefile"
  {
    printf 'rule noop\n  command = true\n'
    printf 'build t0: noop\n'
    for ((i = 1; i < n; i++)); do printf 'build t%d: noop t%d\n' "$i" $((i - 1)); done
    printf 'build all: phony t%d\ndefault all\n' $((n - 1))
  } >"$dir/build.ninja"
}

# --- Timing --------------------------------------------------------------------------

now() { date +%s.%N; }

# timed CMD...: runs CMD once and prints "WALL CPU": its wall time, and the user+sys CPU
# time of the command and its children (from /usr/bin/time; less sensitive than wall time
# to a busy machine).
timed() {
  local t0 t1
  t0=$(now)
  if ! /usr/bin/time -f '%U %S' -o "$WORK/time.out" "$@" >"$WORK/last.out" 2>&1; then
    echo "compare.sh: failed: $*" >&2
    tail -20 "$WORK/last.out" >&2
    exit 1
  fi
  t1=$(now)
  awk -v a="$t0" -v b="$t1" '{ printf "%.6f %.2f\n", b - a, $1 + $2 }' "$WORK/time.out"
}

# summary FILE: "BEST_WALL MEDIAN_WALL BEST_CPU" of the "WALL CPU" lines in FILE.
summary() {
  sort -n -k1,1 "$1" | awk '{ w[NR] = $1; if (NR == 1 || $2 < c) c = $2 }
    END { m = (NR % 2) ? w[(NR + 1) / 2] : (w[NR / 2] + w[NR / 2 + 1]) / 2; printf "%.6f %.6f %.2f", w[1], m, c }'
}

run_case() {  # shape size jobs
  local shape=$1 size=$2 j=$3 r
  local name="$shape $size x true" dir="$WORK/$shape-$size"
  cd "$dir"
  # The three tools take turns (batchd, make, ninja, batchd, ...), so that a machine that
  # gets slower or faster during the case affects them alike.
  #
  # batchd: a fresh data directory each time (so every instance really runs, and the
  # cost of creating the SQLite database is included, as for a first run). The previous
  # ones are kept until the end: ext4 skips inodes freed in the last minute when it
  # allocates new ones, so an `rm -rf` of the last run's 2,000 log files right before the
  # timed run makes each file creation scan past them (3 s instead of 1.5 s here). That
  # is the harness's doing, not batchd's, so it stays out of the measurement.
  # ninja: its log removed each time, so that it runs every edge.
  local data="$DATA_BASE/$(basename "$dir")-data"
  : >"$WORK/batchd.times"
  : >"$WORK/make.times"
  : >"$WORK/ninja.times"
  for ((r = 1; r <= RUNS; r++)); do
    mkdir -p "$data.$j.$r"
    timed "$BATCHD" run dag.yaml --data-dir "$data.$j.$r" --workers "$j" --date 2026-01-01 >>"$WORK/batchd.times"
    timed make -s -j"$j" -f Makefile all >>"$WORK/make.times"
    rm -f "$dir/.ninja_log" "$dir/.ninja_deps"
    timed ninja -j"$j" -f build.ninja all >>"$WORK/ninja.times"
  done
  local b m n
  b=($(summary "$WORK/batchd.times"))
  m=($(summary "$WORK/make.times"))
  n=($(summary "$WORK/ninja.times"))
  # Ratios against the faster of make and ninja: of the best runs, of the medians, of CPU.
  local ratio median_ratio cpu_ratio
  ratio=$(awk -v b="${b[0]}" -v m="${m[0]}" -v n="${n[0]}" 'BEGIN { printf "%.2f", b / (m < n ? m : n) }')
  median_ratio=$(awk -v b="${b[1]}" -v m="${m[1]}" -v n="${n[1]}" 'BEGIN { printf "%.2f", b / (m < n ? m : n) }')
  cpu_ratio=$(awk -v b="${b[2]}" -v m="${m[2]}" -v n="${n[2]}" 'BEGIN { x = (m < n ? m : n); printf "%.2f", (x > 0 ? b / x : 0) }')
  if [ -n "$CSV" ]; then
    echo "$shape,$size,$j,batchd,${b[0]},${b[1]},${b[2]}" >>"$CSV"
    echo "$shape,$size,$j,make,${m[0]},${m[1]},${m[2]}" >>"$CSV"
    echo "$shape,$size,$j,ninja,${n[0]},${n[1]},${n[2]}" >>"$CSV"
  fi
  printf '%-20s %2d | %8.3f %8.3f %8.3f %7sx | %7sx | %6s %6s %6s %7sx\n' "$name" "$j" "${b[0]}" "${m[0]}" "${n[0]}" \
    "$ratio" "$median_ratio" "${b[2]}" "${m[2]}" "${n[2]}" "$cpu_ratio"
  cd - >/dev/null
}

for n in $FANOUT; do gen_fanout "$WORK/fanout-$n" "$n"; done
for n in $CHAIN; do gen_chain "$WORK/chain-$n" "$n"; done
[ -n "$CSV" ] && echo "case,size,jobs,tool,best_wall_s,median_wall_s,best_cpu_s" >"$CSV"

echo "batchd: $BATCHD ($("$BATCHD" --version 2>/dev/null || echo '?'))"
echo "make:   $(make --version | head -1); ninja: $(ninja --version); $(nproc) CPUs; $RUNS runs of each, taking turns"
echo "batchd data dirs under $DATA_BASE ($(df -T "$DATA_BASE" | awk 'NR == 2 { print $2 }'))"
# An ext4 without a journal makes every file creation slow for minutes after deletions
# nearby (bench/README.md), and batchd creates a log file per attempt: say so.
data_dev=$(basename "$(df "$DATA_BASE" | awk 'NR == 2 { print $1 }')")
if [ "$(df -T "$DATA_BASE" | awk 'NR == 2 { print $2 }')" = ext4 ] && [ -d /proc/fs/jbd2 ] &&
   ! compgen -G "/proc/fs/jbd2/$data_dev-*" >/dev/null; then
  echo "warning: $data_dev is ext4 without a journal: batchd's figures depend on what was deleted there" \
    "in the last minutes; see bench/README.md (-d on a journaled file system)" >&2
fi
printf '%-20s %2s | %-35s | %8s | %-29s\n' "" "" "wall s, best run" "median" "cpu s, best run"
printf '%-20s %2s | %8s %8s %8s %8s | %8s | %6s %6s %6s %8s\n' CASE J BATCHD MAKE NINJA "B/min" "B/min" BATCHD MAKE NINJA "B/min"
for j in $JOBS; do
  for n in $FANOUT; do run_case fanout "$n" "$j"; done
  for n in $CHAIN; do run_case chain "$n" "$j"; done
done
