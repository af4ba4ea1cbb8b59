#!/usr/bin/env bash
# Installs the Debian 12 packages batchd needs to build, test and run.
# Skips apt entirely when everything is already present.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  prometheus-cpp-dev libsqlite3-dev sqlite3 libgtest-dev libgmock-dev
  libhowardhinnant-date-dev tzdata libcli11-dev
  nettle-dev python3-croniter make curl
  time                       # /usr/bin/time in bench/ (peak RSS), run at smoke sizes by the tests
  python3-matplotlib         # bench/all.sh draws its plots (PNG), run at smoke sizes by the tests
  libsystemd-dev systemd     # sd_notify readiness and watchdog; systemd-analyze checks the unit
  dpkg-dev file              # cpack -G DEB (dpkg-shlibdeps); the packaging test checks stripping
  prometheus                 # promtool and prometheus for the observability tests
  clang libclang-rt-14-dev   # the libFuzzer targets (scripts/fuzz.sh)
  libgraphviz-dev            # the web UI lays out DAG graphs with Graphviz (SVG)
  chromium chromium-driver python3-selenium  # the web UI's browser tests
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "Installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
