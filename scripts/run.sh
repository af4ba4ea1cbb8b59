#!/usr/bin/env bash
# The run command: installs what is missing, builds, and serves batchd on its embedded
# default (state in ./.batchd, the example DAGs in ./dags, control socket
# ./.batchd/batchd.sock, metrics and the web UI on 127.0.0.1:9464). Ctrl-C stops it (drains first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
./build/batchctl validate dags/*.yaml
cat <<'MSG'

batchd is starting. In another terminal:
  ./build/batchctl dags
  ./build/batchctl trigger nightly_billing --date 2026-01-05 --wait
  ./build/batchctl runs
  curl -s 127.0.0.1:9464/metrics | grep batchd_
The web UI: http://127.0.0.1:9464/ui/

MSG
exec ./build/batchd serve "$@"
