#!/usr/bin/env bash
# The whole benchmark suite in one command: builds batchd and batchctl, then runs
# compare.sh (batchd run against GNU make and ninja on fan-outs and a chain), hops.sh (chain
# hop latency) and scale.sh (wide runs, backfills, status under load, start-up, many DAGs),
# and draws the plots. Writes bench/results/{compare,hops,scale}.csv and *.png.
#
#   bench/all.sh [-s] [-o DIR]
#
# -s: smoke sizes (seconds; what CI runs so the scripts keep working).
# -o: where the CSV files and plots go (default bench/results).
# $BATCHD and $BATCHCTL: use these binaries instead of building ./build. Other sizes: the
# variables of scale.sh, and FANOUT_SIZES, CHAIN_SIZES, HOP_CHAIN, JOBS, RUNS.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=bench/results
SMOKE=0
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while getopts "so:h" opt; do
  case $opt in
    s) SMOKE=1 ;;
    o) OUT=$OPTARG ;;
    *) usage ;;
  esac
done
if [ "$SMOKE" = 1 ]; then
  FANOUT_SIZES=${FANOUT_SIZES:-"50 200"}
  CHAIN_SIZES=${CHAIN_SIZES:-20}
  HOP_CHAIN=${HOP_CHAIN:-20}
  JOBS=${JOBS:-2}
  RUNS=${RUNS:-1}
else
  FANOUT_SIZES=${FANOUT_SIZES:-"1000 5000 20000"}
  CHAIN_SIZES=${CHAIN_SIZES:-1000}
  HOP_CHAIN=${HOP_CHAIN:-1000}
  JOBS=${JOBS:-"2 4"}
  RUNS=${RUNS:-3}
fi

if [ -z "${BATCHD:-}" ] || [ -z "${BATCHCTL:-}" ]; then
  [ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build --target batchd batchctl
  export BATCHD=./build/batchd BATCHCTL=./build/batchctl
fi
export BATCHD BATCHCTL
mkdir -p "$OUT"
smoke_flag=()
[ "$SMOKE" = 1 ] && smoke_flag=(-s)

echo "== compare: batchd run, make, ninja"
bash bench/compare.sh -j "$JOBS" -n "$RUNS" -f "$FANOUT_SIZES" -c "$CHAIN_SIZES" -o "$OUT/compare.csv"
echo "== hops: chain hop latency"
bash bench/hops.sh -n "$HOP_CHAIN" -j 2 -o "$OUT/hops.csv"
echo "== scale"
bash bench/scale.sh "${smoke_flag[@]}" -o "$OUT/scale.csv"
echo "== plots"
/usr/bin/python3 bench/plot.py "$OUT"
