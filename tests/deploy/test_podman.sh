#!/bin/sh
# test_podman.sh — the same docker-compose.yml under podman-compose (Debian
# 12: podman 4.3, podman-compose 1.0.3, CNI with the dnsname plugin so that
# HAProxy finds the replicas by name): 3 replicas (deploy.replicas) behind
# HAProxy, the README's examples and X-Session-Id affinity through the
# balancer, then `down` leaves no container. The images are copied from
# Docker (run.sh builds them), not rebuilt.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-python3}
P=mllmpodtest
TMP=$(mktemp -d)
export LB_PORT=${PODMAN_LB_PORT:-18081}
export MLLMD_IMAGE HAPROXY_IMAGE
LB="http://127.0.0.1:$LB_PORT"
unset MLLMD_API_KEY MLLMD_MODELS MODELS_DIR LB_ADDR

# Podman raises the containers' nofile/nproc limits to its own defaults,
# which needs CAP_SYS_RESOURCE; where root lacks it (CI sandboxes), give
# the containers what this shell has.
nofile=$(awk '/^Max open files/ {print $5}' /proc/self/limits)
nproc=$(awk '/^Max processes/ {print $4}' /proc/self/limits)
[ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ] && nofile=65536
[ "$nproc" = unlimited ] || [ "$nproc" -gt 16384 ] && nproc=16384
printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' \
	"$nofile" "$nofile" "$nproc" "$nproc" >"$TMP/containers.conf"
export CONTAINERS_CONF=$TMP/containers.conf

pc() {
	(cd "$ROOT" && podman-compose -p "$P" -f docker-compose.yml "$@")
}
cleanup() {
	pc down >/dev/null 2>&1 || true
	podman network rm -f "${P}_default" >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	for c in $(podman ps -aq --filter "label=io.podman.compose.project=$P"); do
		podman logs --tail 10 "$c" 2>&1 | tail -n 10
	done
	exit 1
}
ok() { echo "ok   $*"; }

echo "deploy: $(podman --version), $(podman-compose --version 2>/dev/null | grep -i 'podman-compose' | head -n 1)"
docker save "$MLLMD_IMAGE" "$HAPROXY_IMAGE" | podman load >/dev/null 2>&1 || fail "podman load"
pc up -d >"$TMP/up.log" 2>&1 || { cat "$TMP/up.log"; fail "podman-compose up"; }
grep -q "exit code: 12[5-7]" "$TMP/up.log" && { cat "$TMP/up.log"; fail "a container did not start"; }
n=$(podman ps -q --filter "label=io.podman.compose.project=$P" \
	--filter "label=com.docker.compose.service=mobilellmd" | wc -l)
[ "$n" = 3 ] || fail "want 3 replicas, have $n"
# Podman runs no HEALTHCHECK timers without systemd: wait on the balancer.
"$PY" "$HERE/client.py" spread "$LB" 3 || fail "3 replicas behind the balancer"
ok "podman-compose: 3 replicas behind HAProxy on 127.0.0.1:$LB_PORT"

sh "$HERE/readme_curl.sh" "$LB" || fail "the README's examples"
urls=""
for c in $(podman ps -q --filter "label=io.podman.compose.project=$P" \
	--filter "label=com.docker.compose.service=mobilellmd"); do
	ip=$(podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$c" | cut -d' ' -f1)
	urls="$urls http://$ip:8080/metrics"
done
# shellcheck disable=SC2086
"$PY" "$HERE/client.py" affinity "$LB" $urls || fail "affinity"
ok "podman-compose: the README's examples and X-Session-Id affinity through the balancer"

pc down >"$TMP/down.log" 2>&1 || { cat "$TMP/down.log"; fail "podman-compose down"; }
left=$(podman ps -aq --filter "label=io.podman.compose.project=$P" | wc -l)
[ "$left" = 0 ] || fail "down left $left container(s)"
# podman-compose 1.0.3's down keeps the project network (docs/deploy.md).
podman network rm -f "${P}_default" >/dev/null 2>&1 || true
ok "podman-compose down leaves no container"
