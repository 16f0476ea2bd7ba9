#!/bin/sh
# test_compose.sh — docker-compose.yml for real: 3 replicas + HAProxy on a
# project network of its own, the README's curl examples through the
# balancer, X-Session-Id affinity with prefix-cache hits, Responses API
# conversations kept on the replica that stores them, unbuffered SSE,
# one replica killed and another stopped under steady load with no failed
# or slow request, scale 3 -> 4, `down` leaves nothing behind. Then a single
# loaded container stops with exit 0 within Docker's default timeout.
# Needs: a Docker daemon, images $MLLMD_IMAGE and $HAPROXY_IMAGE (run.sh
# builds both). Prints "ok ..." per check; exits 1 on the first failure.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-python3}
P=mllmdeploytest
TMP=$(mktemp -d)
export MLLMD_IMAGE HAPROXY_IMAGE
export LB_PORT=${LB_PORT:-18080}
LB="http://127.0.0.1:$LB_PORT"
SINGLE=mllm-deploy-single
unset MLLMD_API_KEY MLLMD_MODELS MODELS_DIR LB_ADDR

if docker compose version >/dev/null 2>&1; then
	COMPOSE="docker compose"
else
	COMPOSE="docker-compose"
fi
dc() {
	# shellcheck disable=SC2086
	(cd "$ROOT" && $COMPOSE -p "$P" -f docker-compose.yml "$@")
}

cleanup() {
	[ -f "$TMP/stop" ] || touch "$TMP/stop"
	dc down -t 2 >/dev/null 2>&1 || true
	docker rm -f "$SINGLE" "$SINGLE-full" "$SINGLE-one" >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	echo "--- compose logs (tail) ---"
	dc logs --tail 15 2>/dev/null | tail -n 60 || true
	exit 1
}
ok() { echo "ok   $*"; }

replicas() {
	docker ps -q --filter "label=com.docker.compose.project=$P" \
		--filter "label=com.docker.compose.service=mobilellmd"
}
ip_of() {
	docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1" | cut -d' ' -f1
}
metrics_urls() {
	for c in $(replicas); do echo "http://$(ip_of "$c"):8080/metrics"; done
}

# Waits until N replicas are healthy (Docker runs `mobilellmd health`) and
# the balancer answers.
wait_ready() {
	want=$1
	i=0
	while [ $i -lt 120 ]; do
		n=0
		for c in $(replicas); do
			[ "$(docker inspect -f '{{.State.Health.Status}}' "$c")" = healthy ] && n=$((n + 1))
		done
		if [ "$n" -ge "$want" ] && curl -sf -o /dev/null "$LB/readyz"; then
			# And HAProxy has them all UP (DNS, then 2 good checks):
			# hashing onto a changing set would move sessions.
			"$PY" "$HERE/client.py" spread "$LB" "$want" || fail "HAProxy sees fewer replicas"
			return 0
		fi
		sleep 1
		i=$((i + 1))
	done
	fail "$want healthy replicas behind the balancer not reached in 120 s (have $n)"
}

echo "deploy: $($COMPOSE version 2>/dev/null | head -n 1)"
dc up -d --no-build --scale mobilellmd=3 >"$TMP/up.log" 2>&1 || {
	cat "$TMP/up.log"
	fail "compose up"
}
wait_ready 3
[ "$(replicas | wc -l)" = 3 ] || fail "want 3 replicas, have $(replicas | wc -l)"
docker port "${P}_lb_1" 8080 2>/dev/null | grep -q '^127.0.0.1:' ||
	docker port "${P}-lb-1" 8080 2>/dev/null | grep -q '^127.0.0.1:' ||
	fail "the balancer is not published on loopback only"
ok "compose: 3 replicas healthy (HEALTHCHECK = mobilellmd health), balancer on 127.0.0.1:$LB_PORT"

# The README's examples, verbatim but for the port.
sh "$HERE/readme_curl.sh" "$LB" || fail "the README's examples"
ok "the README's curl examples through the balancer (model mobilellm-demo)"

# shellcheck disable=SC2046
"$PY" "$HERE/client.py" affinity "$LB" $(metrics_urls) || fail "affinity"
ok "X-Session-Id affinity with prefix-cache hits in the replicas' /metrics"
"$PY" "$HERE/client.py" responses "$LB" || fail "responses affinity"
ok "Responses API conversations stick to the replica that stores them"
# shellcheck disable=SC2046
"$PY" "$HERE/client.py" stream "$LB" $(metrics_urls) || fail "streaming"
ok "SSE through HAProxy is not buffered"

# Steady load; one replica killed, another stopped gracefully.
"$PY" "$HERE/client.py" load "$LB" "$TMP/stop" "$TMP/load.txt" 4 >"$TMP/load.out" 2>&1 &
LOADPID=$!
sleep 3
# shellcheck disable=SC2046
set -- $(replicas)
KILLED=$1
STOPPED=$2
docker kill "$KILLED" >/dev/null || fail "docker kill"
sleep 4
T0=$(date +%s)
docker stop "$STOPPED" >/dev/null || fail "docker stop"
T1=$(date +%s)
sleep 4
touch "$TMP/stop"
RC=0
wait "$LOADPID" || RC=$?
cat "$TMP/load.out"
[ "$RC" = 0 ] || fail "load during kill/stop: see above"
code=$(docker inspect -f '{{.State.ExitCode}}' "$STOPPED")
[ "$code" = 0 ] || fail "docker stop of a replica: exit code $code"
ok "docker kill + docker stop ($((T1 - T0)) s, exit 0) under 4 clients: 0 failed, none slower than 3 s"

# Back to full strength and one more.
dc up -d --no-build --no-recreate --scale mobilellmd=4 >"$TMP/up.log" 2>&1 || {
	cat "$TMP/up.log"
	fail "compose up --scale mobilellmd=4"
}
wait_ready 4
ok "scale 3 -> 4: the balancer routes to 4 replicas"

dc down -t 15 >"$TMP/down.log" 2>&1 || {
	cat "$TMP/down.log"
	fail "compose down"
}
left=$(docker ps -aq --filter "label=com.docker.compose.project=$P" | wc -l)
nets=$(docker network ls -q --filter "name=${P}_default" | wc -l)
[ "$left" = 0 ] || fail "down left $left container(s)"
[ "$nets" = 0 ] || fail "down left the network ${P}_default"
ok "compose down leaves no container and no network"

# One loaded container, stopped with Docker's default timeout: exit 0.
docker run -d --name "$SINGLE" "$MLLMD_IMAGE" >/dev/null || fail "docker run"
i=0
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$SINGLE")" = healthy ] || [ $i -ge 90 ]; do
	sleep 1
	i=$((i + 1))
done
SURL="http://$(ip_of "$SINGLE"):8080"
rm -f "$TMP/stop"
"$PY" - "$SURL" >"$TMP/single.out" 2>&1 <<'EOF' &
import json, sys, threading, urllib.request
url = sys.argv[1] + "/v1/completions"
res = []
def run(i):
    body = json.dumps({"model": "mobilellm-demo", "prompt": "Story %d:" % i, "max_tokens": 120,
                       "ignore_eos": True}).encode()
    rq = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        res.append(urllib.request.urlopen(rq, timeout=60).status)
    except Exception as ex:
        res.append(getattr(ex, "code", repr(ex)))
th = [threading.Thread(target=run, args=(i,)) for i in range(4)]
[t.start() for t in th]
[t.join() for t in th]
print("single: answers", sorted(map(str, res)))
EOF
CPID=$!
sleep 1
T0=$(date +%s)
docker stop "$SINGLE" >/dev/null || fail "docker stop (single)"
T1=$(date +%s)
wait "$CPID" || true
cat "$TMP/single.out"
code=$(docker inspect -f '{{.State.ExitCode}}' "$SINGLE")
[ "$code" = 0 ] || fail "docker stop of a loaded container: exit code $code (137 = SIGKILL)"
ok "docker stop of a loaded container: exit 0 after $((T1 - T0)) s"

# threads = 0 follows the container's CPU quota: with --cpus 1 the daemon
# starts fewer threads than with the machine's cores (needs >= 2 cores).
if [ "$(nproc)" -ge 2 ]; then
	for q in full one; do
		lim=""
		[ "$q" = one ] && lim="--cpus 1"
		# shellcheck disable=SC2086
		docker run -d --name "$SINGLE-$q" $lim "$MLLMD_IMAGE" >/dev/null || fail "docker run $lim"
	done
	for q in full one; do
		i=0
		until [ "$(docker inspect -f '{{.State.Health.Status}}' "$SINGLE-$q")" = healthy ] ||
			[ $i -ge 90 ]; do
			sleep 1
			i=$((i + 1))
		done
	done
	t_full=$(docker exec "$SINGLE-full" sh -c "sed -n 's/^Threads:[[:space:]]*//p' /proc/1/status")
	t_one=$(docker exec "$SINGLE-one" sh -c "sed -n 's/^Threads:[[:space:]]*//p' /proc/1/status")
	docker rm -f "$SINGLE-full" "$SINGLE-one" >/dev/null
	[ "$t_one" -lt "$t_full" ] || fail "--cpus 1: $t_one threads, unlimited: $t_full"
	ok "threads follow the CPU quota: $t_full threads on $(nproc) cores, $t_one with --cpus 1"
fi
