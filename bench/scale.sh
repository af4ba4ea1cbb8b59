#!/usr/bin/env bash
# Scale benchmarks: wide runs, long backfill queues, status while a wide run executes,
# start-up on a big store, log files left. Writes one CSV row per figure.
#
#   bench/scale.sh [-s] [-o CSV] [-w WORKERS]
#
# -s: smoke sizes (seconds; what CI runs so the script keeps working).
# -o: where the CSV goes (default bench/results/scale.csv).
# Builds nothing: expects ./build/batchd and ./build/batchctl (or $BATCHD, $BATCHCTL).
# See bench/README.md.
set -euo pipefail

BATCHD=${BATCHD:-./build/batchd}
BATCHCTL=${BATCHCTL:-./build/batchctl}
OUT=bench/results/scale.csv
WORKERS=4
SMOKE=0
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while getopts "so:w:h" opt; do
  case $opt in
    s) SMOKE=1 ;;
    o) OUT=$OPTARG ;;
    w) WORKERS=$OPTARG ;;
    *) usage ;;
  esac
done
if [ "$SMOKE" = 1 ]; then
  FANIN=(200)
  BACKFILL=20
  STATUS=500
  DAG_FILES=20
  FIRES=0  # no waiting for minute boundaries
else
  FANIN=(1000 10000 100000)
  BACKFILL=10000
  STATUS=100000
  DAG_FILES=1000
  FIRES=2
fi
# Other sizes: FANIN_SIZES="1000 10000", BACKFILL_RUNS=2000, STATUS_PARTITIONS=20000,
# DAG_FILE_COUNT=100, MINUTE_FIRES=1 (0 skips the per-minute fires).
[ -n "${FANIN_SIZES:-}" ] && read -r -a FANIN <<<"$FANIN_SIZES"
BACKFILL=${BACKFILL_RUNS:-$BACKFILL}
STATUS=${STATUS_PARTITIONS:-$STATUS}
DAG_FILES=${DAG_FILE_COUNT:-$DAG_FILES}
FIRES=${MINUTE_FIRES:-$FIRES}
for tool in "$BATCHD" "$BATCHCTL" sqlite3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "scale.sh: '$tool' not found" >&2; exit 1; }
done
BATCHD=$(realpath "$BATCHD")
BATCHCTL=$(realpath "$BATCHCTL")
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/batchd-scale-XXXXXX")
DAEMON_PID=""
cleanup() {
  [ -n "$DAEMON_PID" ] && kill -9 "$DAEMON_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "workload,size,metric,value,unit" >"$OUT"
row() { echo "$1,$2,$3,$4,$5" >>"$OUT"; printf '%-10s %8s  %-28s %12s %s\n' "$1" "$2" "$3" "$4" "$5"; }
now() { date +%s.%N; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

# --- fan-in: N no-op partitions into one task, through `batchd run` ------------------------
for n in "${FANIN[@]}"; do
  dir=$WORK/fanin-$n
  mkdir -p "$dir"
  cat >"$dir/dag.yaml" <<EOF
dag: fanin
max_active_tasks: 100000
tasks:
  - id: wide
    partitions: {range: [0, $n]}
    command: "true"
  - id: join
    depends_on: [wide]
    command: "true"
EOF
  t0=$(now)
  /usr/bin/time -f '%M' -o "$dir/rss" "$BATCHD" run "$dir/dag.yaml" --data-dir "$dir/data" --workers "$WORKERS" \
    --date 2026-01-01 >"$dir/out" 2>&1 || { cat "$dir/out" >&2; exit 1; }
  wall_ms=$(ms_since "$t0")
  row fanin "$n" wall "$wall_ms" ms
  row fanin "$n" tasks_per_second "$(awk -v n="$n" -v ms="$wall_ms" 'BEGIN { printf "%.0f", (n + 1) / ms * 1000 }')" 1/s
  row fanin "$n" peak_rss "$(awk '{ printf "%.1f", $1 / 1024 }' "$dir/rss")" MiB
  row fanin "$n" log_files_left "$(find "$dir/data/logs" -type f | wc -l)" files
  # Start-up on the store this left: `batchd run` of one task, after a clean close.
  cat >"$dir/one.yaml" <<'EOF'
dag: one
tasks:
  - id: t
    command: "true"
EOF
  t0=$(now)
  "$BATCHD" run "$dir/one.yaml" --data-dir "$dir/data" --date 2026-01-01 >/dev/null 2>&1
  row startup "$n" one_task_run_clean_store "$(ms_since "$t0")" ms
  echo "4242" >"$dir/data/batchd.lock"  # as a killed process leaves it
  t0=$(now)
  "$BATCHD" run "$dir/one.yaml" --data-dir "$dir/data" --date 2026-01-02 >/dev/null 2>&1
  row startup "$n" one_task_run_after_kill "$(ms_since "$t0")" ms
  row startup "$n" store_size "$(du -sm "$dir/data/batchd.db" | cut -f1)" MiB
  rm -rf "$dir"
done

# --- through the daemon ------------------------------------------------------------------
DATA=$WORK/daemon-data
DAGS=$WORK/dags
SOCK=$WORK/s
mkdir -p "$DATA" "$DAGS"
start_daemon() {
  "$BATCHD" serve --data-dir "$DATA" --dags-dir "$DAGS" --socket "$SOCK" --http "" --workers "$WORKERS" \
    --log-level warn >>"$WORK/daemon.log" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 1 200); do
    "$BATCHCTL" --socket "$SOCK" health >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "scale.sh: the daemon did not come up" >&2
  cat "$WORK/daemon.log" >&2
  exit 1
}
ctl() { "$BATCHCTL" --socket "$SOCK" "$@"; }
start_daemon

# A backfill of BACKFILL daily runs, four at a time.
to=$(date -u -d "2000-01-01 + $((BACKFILL - 1)) days" +%F)
cat >"$WORK/daily.yaml" <<EOF
dag: daily
schedule: "0 0 * * *"
start_date: 2000-01-01
end_date: $to
max_active_runs: 4
tasks:
  - id: t
    command: "true"
EOF
ctl submit "$WORK/daily.yaml" >/dev/null
t0=$(now)
ctl backfill daily --from 2000-01-01 --to "$to" --yes --json >/dev/null
row backfill "$BACKFILL" creation "$(ms_since "$t0")" ms
t0=$(now)
while [ "$(sqlite3 "$DATA/batchd.db" "SELECT COUNT(*) FROM runs WHERE dag = 'daily' AND state IN ('queued', 'running')")" != 0 ]; do
  sleep 0.2
done
row backfill "$BACKFILL" drain "$(ms_since "$t0")" ms
# Dispatch per run, first tenth against last tenth: the time from one run's start to the
# fifth next one's (four at a time), averaged.
tenth=$((BACKFILL / 10 > 0 ? BACKFILL / 10 : 1))
per_run() {
  sqlite3 "$DATA/batchd.db" "WITH r AS (SELECT started_at, ROW_NUMBER() OVER (ORDER BY logical_date) AS k
      FROM runs WHERE dag = 'daily') SELECT printf('%.2f', (MAX(started_at) - MIN(started_at)) * 1.0 / (COUNT(*) - 1))
      FROM r WHERE k BETWEEN $1 AND $2"
}
row backfill "$BACKFILL" ms_per_run_first_tenth "$(per_run 1 "$tenth")" ms
row backfill "$BACKFILL" ms_per_run_last_tenth "$(per_run $((BACKFILL - tenth + 1)) "$BACKFILL")" ms

# One run of STATUS no-op partitions; status, runs, health and a trigger of another DAG
# timed while it executes.
cat >"$WORK/wide.yaml" <<EOF
dag: wide
max_active_tasks: 100000
tasks:
  - id: w
    partitions: {range: [0, $STATUS]}
    command: "true"
EOF
ctl submit "$WORK/wide.yaml" >/dev/null
printf 'dag: other\ntasks:\n  - id: t\n    command: "true"\n' >"$WORK/other.yaml"
ctl submit "$WORK/other.yaml" >/dev/null
t0=$(now)
run_id=$(ctl trigger wide --json | sed -n 's/.*"run_id": *"\([0-9a-f]*\)".*/\1/p')
: >"$WORK/status.ms"
: >"$WORK/runs.ms"
: >"$WORK/health.ms"
: >"$WORK/trigger.ms"
while true; do  # at least once, however fast the run
  s=$(now); ctl status "$run_id" >/dev/null; ms_since "$s" >>"$WORK/status.ms"; echo >>"$WORK/status.ms"
  s=$(now); ctl runs >/dev/null; ms_since "$s" >>"$WORK/runs.ms"; echo >>"$WORK/runs.ms"
  s=$(now); ctl health >/dev/null; ms_since "$s" >>"$WORK/health.ms"; echo >>"$WORK/health.ms"
  s=$(now); ctl trigger other >/dev/null; ms_since "$s" >>"$WORK/trigger.ms"; echo >>"$WORK/trigger.ms"
  [ "$(sqlite3 "$DATA/batchd.db" "SELECT state FROM runs WHERE run_id = '$run_id'")" != success ] || break
  sleep 0.5
done
row daemon_run "$STATUS" wall "$(ms_since "$t0")" ms
stats() {  # file -> "median max"
  { grep -v '^$' "$1" || true; } | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "- -"; exit }
    printf "%s %s\n", v[int((NR + 1) / 2)], v[NR] }'
}
for what in status runs health trigger; do
  read -r median worst < <(stats "$WORK/$what.ms")
  row daemon_run "$STATUS" "${what}_median" "$median" ms
  row daemon_run "$STATUS" "${what}_max" "$worst" ms
done
row daemon_run "$STATUS" daemon_peak_rss "$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$DAEMON_PID/status")" MiB
row daemon_run "$STATUS" log_files_left "$(find "$DATA/logs" -type f | wc -l)" files
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || true
DAEMON_PID=""
# Start-up of the daemon on the store all this left, after a clean stop.
t0=$(now)
start_daemon
row startup_daemon "$STATUS" clean_store_to_healthy "$(ms_since "$t0")" ms
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
t0=$(now)
start_daemon
row startup_daemon "$STATUS" after_kill_to_healthy "$(ms_since "$t0")" ms
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || true
DAEMON_PID=""
# --- many DAG files, each on a per-minute schedule ------------------------------------------
DATA=$WORK/many-data
DAGS=$WORK/many-dags
SOCK=$WORK/many.sock
mkdir -p "$DATA" "$DAGS"
for i in $(seq 1 "$DAG_FILES"); do
  printf 'dag: every_minute_%s\nschedule: "* * * * *"\ncatchup: false\ntasks:\n  - id: t\n    command: "true"\n' "$i" \
    >"$DAGS/d$i.yaml"
done
t0=$(now)
start_daemon
row many_dags "$DAG_FILES" start_to_healthy "$(ms_since "$t0")" ms
loaded=$(ctl dags --json | grep -c '^  *"dag": ')
[ "$loaded" = "$DAG_FILES" ] || { echo "scale.sh: $loaded of $DAG_FILES DAGs loaded" >&2; exit 1; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }
hz=$(getconf CLK_TCK)
cpu_percent() {  # seconds -> the daemon's CPU over that many seconds, in % of one core
  local before after
  before=$(cpu_ticks)
  sleep "$1"
  after=$(cpu_ticks)
  awk -v t="$((after - before))" -v hz="$hz" -v s="$1" 'BEGIN { printf "%.2f", t / hz / s * 100 }'
}
if [ "$FIRES" -gt 0 ]; then
  # Quiet part of a minute: from second 20 to 50, after the minute's runs are done.
  sleep $(( (80 - $(date +%-S)) % 60 ))
  row many_dags "$DAG_FILES" cpu_between_fires "$(cpu_percent 30)" "%core"
  # Whole minutes, fires included, then how late each run was created after its fire time.
  sleep $(( (60 - $(date +%-S)) % 60 ))
  row many_dags "$DAG_FILES" cpu_whole_minutes "$(cpu_percent $((60 * FIRES)))" "%core"
  lateness=$(sqlite3 "$DATA/batchd.db" "SELECT created_at - scheduled_for FROM runs WHERE scheduled_for IS NOT NULL
      ORDER BY 1")
  count=$(echo "$lateness" | grep -c . || true)
  row many_dags "$DAG_FILES" scheduled_runs "$count" runs
  row many_dags "$DAG_FILES" fire_to_created_median "$(echo "$lateness" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')" ms
  row many_dags "$DAG_FILES" fire_to_created_max "$(echo "$lateness" | tail -n 1)" ms
else
  row many_dags "$DAG_FILES" cpu_idle "$(cpu_percent 2)" "%core"
fi
row many_dags "$DAG_FILES" daemon_peak_rss "$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$DAEMON_PID/status")" MiB
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || true
DAEMON_PID=""
echo "wrote $OUT"
