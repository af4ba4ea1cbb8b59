#!/usr/bin/env bash
# Packaging test (docs/packaging.md): usage packaging_test.sh BUILD_DIR
#   1. `cmake --install --strip` into a DESTDIR: binaries stripped, the config where the
#      unit reads it, the unit, sysusers.d and tmpfiles.d files; a reinstall keeps the config
#   2. `systemd-analyze verify` of the installed unit, and its offline security exposure
#      at most 2.0
#   3. `cpack -G DEB`: contents, control fields, conffiles and maintainer scripts
#   4. as root with CI=true (or BATCHD_PACKAGING_ROUNDTRIP=1): install the package with apt,
#      run batchd as the batchd user under a fake notify socket (READY=1, WATCHDOG=1,
#      RELOADING=1, STOPPING=1), trigger a DAG with batchctl, then purge the package
# It packages whatever BUILD_DIR holds (ctest passes the tree under test); releases are
# built from a Release tree, as the README shows.
set -euo pipefail
BUILD=$(cd "${1:?usage: packaging_test.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
# systemd-analyze security --threshold counts tenths: 20 is an exposure of 2.0.
MAX_EXPOSURE_TENTHS=20
WORK=$(mktemp -d /tmp/batchd-packaging.XXXXXX)
chmod 0755 "$WORK"
DAEMON_PID="" LISTENER_PID=""
cleanup() {
  [ -n "$DAEMON_PID" ] && kill -KILL "$DAEMON_PID" 2>/dev/null || true
  [ -n "$LISTENER_PID" ] && kill "$LISTENER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $* (${SECONDS}s)"; }
expect_file() { [ -f "$1" ] || fail "missing $1"; }
expect_same() { cmp -s "$1" "$2" || fail "$1 differs from $2"; }
expect_stripped() {
  local info
  info=$(file -L "$1")
  [[ "$info" == *", stripped"* ]] || fail "not stripped: $info"
}
# The path after --config on the unit's ExecStart= line.
unit_config_path() { sed -n 's/^ExecStart=.* --config \([^ ]*\).*/\1/p' "$1"; }

step "cmake --install --strip into a DESTDIR"
ROOT=$WORK/root
DESTDIR=$ROOT cmake --install "$BUILD" --prefix /usr --strip >/dev/null
UNIT=$ROOT/usr/lib/systemd/system/batchd.service
for f in usr/bin/batchd usr/bin/batchctl etc/batchd/batchd.yaml usr/lib/systemd/system/batchd.service \
         usr/lib/sysusers.d/batchd.conf usr/lib/tmpfiles.d/batchd.conf; do
  expect_file "$ROOT/$f"
done
expect_stripped "$ROOT/usr/bin/batchd"
expect_stripped "$ROOT/usr/bin/batchctl"
expect_same "$ROOT/etc/batchd/batchd.yaml" "$SRC/config/batchd.yaml"
expect_same "$ROOT/usr/lib/sysusers.d/batchd.conf" "$SRC/config/batchd.sysusers"
expect_same "$ROOT/usr/lib/tmpfiles.d/batchd.conf" "$SRC/config/batchd.tmpfiles"
[ "$(stat -c %a "$ROOT/etc/batchd/batchd.yaml")" = 640 ] || fail "batchd.yaml is not 0640"
grep -qx 'ExecStart=/usr/bin/batchd serve --config /etc/batchd/batchd.yaml' "$UNIT" \
  || fail "unexpected ExecStart: $(grep ^ExecStart= "$UNIT")"
CONFIG=$(unit_config_path "$UNIT")
expect_file "$ROOT$CONFIG"
# The tmpfiles.d entries and the config's dags_dir name the directory the unit reads.
grep -q "^z $CONFIG " "$ROOT/usr/lib/tmpfiles.d/batchd.conf" || fail "tmpfiles.d does not own $CONFIG"
grep -q "^dags_dir: $(dirname "$CONFIG")/dags$" "$ROOT$CONFIG" || fail "dags_dir is not under $(dirname "$CONFIG")"
grep -q '^Type=notify$' "$UNIT" || fail "the unit is not Type=notify"
grep -q '^WatchdogSec=' "$UNIT" || fail "the unit has no WatchdogSec="
# A reinstall keeps the operator's config.
echo "# edited" >>"$ROOT/etc/batchd/batchd.yaml"
DESTDIR=$ROOT cmake --install "$BUILD" --prefix /usr >/dev/null
tail -n1 "$ROOT/etc/batchd/batchd.yaml" | grep -qx '# edited' || fail "a reinstall replaced the edited batchd.yaml"

step "systemd-analyze verify"
# verify wants ExecStart's binary to exist; the copy names the one in the DESTDIR.
mkdir -p "$WORK/verify"
sed "s|^ExecStart=/usr/bin/batchd |ExecStart=$ROOT/usr/bin/batchd |" "$UNIT" >"$WORK/verify/batchd.service"
if ! out=$(cd "$WORK/verify" && systemd-analyze verify --man=no ./batchd.service 2>&1) || [ -n "$out" ]; then
  fail "systemd-analyze verify: $out"
fi

step "systemd-analyze security"
out=$(systemd-analyze security --offline=yes --threshold=$MAX_EXPOSURE_TENTHS "$UNIT" 2>&1) \
  || fail "exposure above $MAX_EXPOSURE_TENTHS tenths: $(grep 'Overall exposure' <<<"$out")"
exposure=$(sed -n 's/.*Overall exposure level for batchd.service: \([0-9.]*\).*/\1/p' <<<"$out")
[ -n "$exposure" ] || fail "no exposure level in: $out"
echo "exposure $exposure (at most $MAX_EXPOSURE_TENTHS tenths)"

step "cpack -G DEB"
(cd "$BUILD" && cpack -G DEB -B "$WORK/pkg" >"$WORK/cpack.log" 2>&1) || { cat "$WORK/cpack.log"; fail "cpack"; }
DEB=$(ls "$WORK"/pkg/batchd_*.deb)
dpkg-deb -c "$DEB" | awk '{print $6}' >"$WORK/contents"
for f in ./usr/bin/batchd ./usr/bin/batchctl ./usr/lib/systemd/system/batchd.service ./etc/batchd/batchd.yaml \
         ./usr/lib/sysusers.d/batchd.conf ./usr/lib/tmpfiles.d/batchd.conf ./usr/share/doc/batchd/packaging.md; do
  grep -qx "$f" "$WORK/contents" || fail "$f is not in $(basename "$DEB")"
done
[ "$(dpkg-deb -f "$DEB" Package)" = batchd ] || fail "package name"
[ "$(dpkg-deb -f "$DEB" Architecture)" = "$(dpkg --print-architecture)" ] || fail "architecture"
depends=$(dpkg-deb -f "$DEB" Depends)
# Package names alone, one a line (versions dropped).
depends_names=$(tr ',' '\n' <<<"$depends" | sed 's/^ *//; s/ .*//')
for d in libc6 libstdc++6 libsystemd0 libsqlite3-0 libyaml-cpp0.7 systemd; do
  grep -qxF "$d" <<<"$depends_names" || fail "Depends lacks $d: $depends"
done
mkdir -p "$WORK/control" "$WORK/data"
dpkg-deb -e "$DEB" "$WORK/control"
dpkg-deb -x "$DEB" "$WORK/data"
[ "$(cat "$WORK/control/conffiles")" = /etc/batchd/batchd.yaml ] || fail "conffiles: $(cat "$WORK/control/conffiles")"
for s in postinst prerm postrm; do
  expect_same "$WORK/control/$s" "$SRC/config/debian/$s"
  [ -x "$WORK/control/$s" ] || fail "$s is not executable"
  sh -n "$WORK/control/$s" || fail "$s: syntax error"
done
grep -q 'systemd-sysusers batchd.conf' "$WORK/control/postinst" || fail "postinst does not run systemd-sysusers"
grep -q 'systemd-tmpfiles --create batchd.conf' "$WORK/control/postinst" || fail "postinst does not run systemd-tmpfiles"
grep -q 'rm -rf /var/lib/batchd' "$WORK/control/postrm" || fail "postrm does not purge /var/lib/batchd"
grep -qx 'ExecStart=/usr/bin/batchd serve --config /etc/batchd/batchd.yaml' \
  "$WORK/data/usr/lib/systemd/system/batchd.service" || fail "the packaged unit's ExecStart"
expect_stripped "$WORK/data/usr/bin/batchd"
expect_stripped "$WORK/data/usr/bin/batchctl"

if [ "$(id -u)" != 0 ] || { [ "${CI:-}" != true ] && [ "${BATCHD_PACKAGING_ROUNDTRIP:-}" != 1 ]; }; then
  echo "not installing the package (needs root, and CI=true or BATCHD_PACKAGING_ROUNDTRIP=1)"
  echo "packaging test passed in ${SECONDS}s"
  exit 0
fi

step "apt-get install ./$(basename "$DEB")"
if dpkg-query -W -f='${Status}' batchd 2>/dev/null | grep -q "install ok installed"; then
  fail "batchd is already installed on this machine; the round trip would purge it"
fi
# dpkg's conffile prompt must not wait for a terminal.
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "$DEB" >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log"; fail "apt-get install"; }
[ "$(dpkg-query -W -f='${Status}' batchd)" = "install ok installed" ] || fail "batchd is not installed"
dpkg-query -W -f='${Conffiles}\n' batchd | grep -q '^ /etc/batchd/batchd.yaml ' || fail "batchd.yaml is not a conffile"
IFS=: read -r _ _ _ _ _ home shell < <(getent passwd batchd) || fail "no batchd user"
[ "$home" = /var/lib/batchd ] && [ "$shell" = /usr/sbin/nologin ] || fail "batchd user: home $home, shell $shell"
getent group batchd >/dev/null || fail "no batchd group"
[ "$(stat -c '%U:%G %a' /etc/batchd)" = "root:batchd 750" ] || fail "/etc/batchd: $(stat -c '%U:%G %a' /etc/batchd)"
[ "$(stat -c '%U:%G %a' /etc/batchd/dags)" = "root:batchd 750" ] || fail "/etc/batchd/dags"
[ "$(stat -c '%U:%G %a' /etc/batchd/batchd.yaml)" = "root:batchd 640" ] || fail "/etc/batchd/batchd.yaml"
[ "$(stat -c '%U:%G %a' /var/lib/batchd)" = "batchd:batchd 750" ] || fail "/var/lib/batchd"

step "batchd as the batchd user, under a notify socket"
# What systemd would provide: the runtime directory, the notify socket, a watchdog.
install -d -o batchd -g batchd -m 0750 /run/batchd
cat >/etc/batchd/dags/packaging_hello.yaml <<'EOF'
dag: packaging_hello
tasks:
  - id: hello
    command: echo "hello from $(id -un)"
EOF
/usr/bin/python3 "$SRC/tests/packaging/notify_listener.py" "$WORK/notify.sock" "$WORK/notify.log" &
LISTENER_PID=$!
for _ in $(seq 100); do [ -S "$WORK/notify.sock" ] && break; sleep 0.1; done
[ -S "$WORK/notify.sock" ] || fail "the notify listener did not start"
: >"$WORK/notify.log"
setpriv --reuid=batchd --regid=batchd --init-groups \
  env NOTIFY_SOCKET="$WORK/notify.sock" WATCHDOG_USEC=1000000 \
  /usr/bin/batchd serve --config /etc/batchd/batchd.yaml --http '' >"$WORK/batchd.log" 2>&1 &
DAEMON_PID=$!
# Waits until the notify log holds line $1 at least $2 times (default 1).
wait_notify() {
  for _ in $(seq 300); do
    [ "$(grep -cx "$1" "$WORK/notify.log")" -ge "${2:-1}" ] && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/batchd.log"; fail "batchd exited while waiting for $1"; }
    sleep 0.1
  done
  cat "$WORK/batchd.log" "$WORK/notify.log"
  fail "no $1 from batchd"
}
wait_notify READY=1
grep -q '^STATUS=serving: ' "$WORK/notify.log" || fail "no serving STATUS="
wait_notify WATCHDOG=1 2
out=$(/usr/bin/batchctl --socket /run/batchd/batchd.sock trigger packaging_hello --wait 2>&1) \
  || { cat "$WORK/batchd.log"; fail "batchctl trigger: $out"; }
grep -rqs "hello from batchd" /var/lib/batchd/logs || fail "the task did not run as batchd"
kill -HUP "$DAEMON_PID"
wait_notify RELOADING=1
wait_notify READY=1 2
kill -TERM "$DAEMON_PID"
status=0
wait "$DAEMON_PID" || status=$?
DAEMON_PID=""
[ $status -eq 0 ] || { cat "$WORK/batchd.log"; fail "batchd exited with $status after SIGTERM"; }
grep -qx STOPPING=1 "$WORK/notify.log" || fail "no STOPPING=1"
rm -f /etc/batchd/dags/packaging_hello.yaml

step "apt-get remove --purge batchd"
apt-get remove --purge -y -q batchd >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log"; fail "apt-get remove --purge"; }
dpkg-query -W -f='${Status}' batchd 2>/dev/null | grep -q "install ok installed" && fail "batchd still installed"
for p in /usr/bin/batchd /usr/bin/batchctl /etc/batchd /var/lib/batchd /run/batchd \
         /usr/lib/systemd/system/batchd.service; do
  [ ! -e "$p" ] || fail "$p is left after purge"
done
echo "packaging test passed in ${SECONDS}s"
