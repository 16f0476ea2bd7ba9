#!/bin/sh
# test_systemd_pid1.sh — systemd/mobilellmd.service under a real systemd 252
# as PID 1 in a container with extra capabilities: `systemctl start` returns once the
# daemon sent READY=1 (Type=notify) and /readyz answers 200 with the whole
# sandbox applied; logging to /var/log/mobilellmd works (LogsDirectory=);
# `systemctl reload` reopens the log; `systemctl stop` drains and the
# service ends with Result=success and status 0. Needs Docker and the
# image from tests/deploy/systemd.Dockerfile ($SYSTEMD_IMAGE).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$ROOT/${BUILD:-build}/mobilellmd
C=mllm-deploy-systemd
TMP=$(mktemp -d)
cleanup() {
	docker rm -f "$C" >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	docker exec "$C" journalctl -u mobilellmd --no-pager -n 30 2>/dev/null || true
	exit 1
}
ok() { echo "ok   $*"; }
x() { docker exec "$C" "$@"; }

# Not --privileged: that asks for every capability, and CI sandboxes lack
# some (CAP_SYS_RESOURCE). systemd and the unit's sandboxing need these.
docker run -d --name "$C" --cgroupns=host --security-opt seccomp=unconfined \
	--security-opt apparmor=unconfined --cap-add SYS_ADMIN --cap-add NET_ADMIN \
	--cap-add SYS_PTRACE --cap-add IPC_LOCK --cap-add SYS_NICE --cap-add DAC_READ_SEARCH \
	--cap-add SYSLOG --cap-add LINUX_IMMUTABLE --cap-add AUDIT_CONTROL \
	-v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
	"$SYSTEMD_IMAGE" >/dev/null || fail "docker run"
i=0
until x systemctl is-system-running >/dev/null 2>&1 || [ $i -ge 60 ]; do
	state=$(x systemctl is-system-running 2>/dev/null || true)
	[ "$state" = degraded ] && break
	sleep 1
	i=$((i + 1))
done
cat >"$TMP/mobilellmd.conf" <<'CONF'
[server]
host = 127.0.0.1
port = 8080
log_file = /var/log/mobilellmd/mobilellmd.log

[model.mobilellm-demo]
path = /usr/share/mobilellmd/models/mobilellm-demo
CONF
x mkdir -p /etc/mobilellmd /usr/share/mobilellmd/models
docker cp "$BIN" "$C:/usr/local/bin/mobilellmd"
docker cp "$ROOT/models/mobilellm-demo" "$C:/usr/share/mobilellmd/models/"
x chmod -R a+rX /usr/share/mobilellmd
docker cp "$TMP/mobilellmd.conf" "$C:/etc/mobilellmd/mobilellmd.conf"
docker cp "$ROOT/systemd/mobilellmd.service" "$C:/etc/systemd/system/mobilellmd.service"
x systemctl daemon-reload
x timeout 120 systemctl start mobilellmd || fail "systemctl start"
[ "$(x systemctl is-active mobilellmd)" = active ] || fail "not active"
x mobilellmd health --config /etc/mobilellmd/mobilellmd.conf >/dev/null || fail "not ready"
x grep -q "ready: 1 model" /var/log/mobilellmd/mobilellmd.log || fail "nothing logged to /var/log/mobilellmd"
ok "systemd 252 as PID 1: start returns after READY=1 (Type=notify), sandboxed daemon ready, logs in LogsDirectory"

x systemctl reload mobilellmd || fail "systemctl reload"
sleep 1
x grep -q "SIGHUP: log reopened" /var/log/mobilellmd/mobilellmd.log || fail "reload did not reopen the log"
x timeout 60 systemctl stop mobilellmd || fail "systemctl stop"
res=$(x systemctl show -p Result --value mobilellmd)
st=$(x systemctl show -p ExecMainStatus --value mobilellmd)
[ "$res" = success ] && [ "$st" = 0 ] || fail "stop: Result=$res ExecMainStatus=$st"
x grep -q "drain" /var/log/mobilellmd/mobilellmd.log || fail "no drain logged on stop"
ok "systemctl reload reopens the log; systemctl stop drains, Result=success, status 0"
