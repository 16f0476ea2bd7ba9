#!/bin/sh
# test_systemd.sh — systemd/mobilellmd.service as Debian 12's systemd reads
# it: `systemd-analyze verify` prints nothing (the unit is checked with
# ExecStart pointing at the freshly built binary, since verify insists that
# the command exists), and `systemd-analyze security --offline=yes` scores
# the sandbox at 2.0 or less. Both must fail on a broken unit, so a unit
# with a misspelt directive and one without sandboxing are checked too.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$ROOT/${BUILD:-build}/mobilellmd
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() {
	echo "FAIL: $*"
	exit 1
}
ok() { echo "ok   $*"; }

[ -x "$BIN" ] || fail "$BIN not built"
U=$TMP/mobilellmd.service
sed "s#/usr/local/bin/mobilellmd#$BIN#g" "$ROOT/systemd/mobilellmd.service" >"$U"
grep -q '^LogsDirectory=mobilellmd$' "$U" || fail "no LogsDirectory="

systemd-analyze verify "$U" >"$TMP/verify" 2>&1 || { cat "$TMP/verify"; fail "verify exit $?"; }
[ ! -s "$TMP/verify" ] || { cat "$TMP/verify"; fail "systemd-analyze verify is not clean"; }
mkdir -p "$TMP/bad"
sed 's/^NoNewPrivileges=/NoNewPrivilege=/' "$U" >"$TMP/bad/mobilellmd.service"
systemd-analyze verify "$TMP/bad/mobilellmd.service" >"$TMP/verify" 2>&1 || true
grep -q "NoNewPrivilege" "$TMP/verify" || fail "verify does not notice a misspelt directive"
ok "systemd-analyze verify: clean (and it flags a misspelt directive)"

score() {
	systemd-analyze security --offline=yes "$1" 2>&1 |
		sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}
s=$(score "$U")
[ -n "$s" ] || fail "no exposure score"
awk -v s="$s" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $s > 2.0"
mkdir -p "$TMP/plain"
grep -v -E '^(Protect|Private|Restrict|SystemCall|Capability|Ambient|Lock|Memory|RemoveIPC|KeyringMode|DevicePolicy|ProcSubset|NoNewPrivileges|DynamicUser|UMask)' \
	"$U" >"$TMP/plain/mobilellmd.service"
p=$(score "$TMP/plain/mobilellmd.service")
awk -v p="$p" 'BEGIN { exit !(p > 2.0) }' || fail "unsandboxed unit scored $p: the check proves nothing"
ok "systemd-analyze security --offline=yes: $s (the same unit unsandboxed: $p)"
