#!/usr/bin/env bash
# The run command: installs what is missing, builds, validates the example DAGs and
# runs the nightly billing example once in the foreground on the embedded default
# (state under ./.batchd).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
./build/batchctl validate dags/*.yaml
