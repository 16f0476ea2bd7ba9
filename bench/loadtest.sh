#!/bin/sh
# loadtest.sh — `make loadtest` / `make soak`: runs bench/loadtest against
# the daemon. Without URL it starts build/mobilellmd itself on a free
# loopback port (--port 0, the port read from its log) with the demo model
# (MODEL=path to override) and stops it with SIGTERM at the end (exit code
# checked). SOAK=seconds runs the soak checks instead of the two phases.
# LOADTEST_ARGS adds loadtest flags (see `build/bench/loadtest --help`).
# Everything is bounded: the daemon must be healthy within 60 s, each phase
# stops after its duration, and the daemon gets shutdown_timeout_ms to exit.
set -u
B=${BUILD:-build}
LT=$B/bench/loadtest
MODEL=${MODEL:-models/mobilellm-demo}
URL=${URL:-}
SOAK=${SOAK:-}
PID=""
TMP=$(mktemp -d)

cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -KILL "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

if [ -z "$URL" ]; then
	"$B/mobilellmd" serve --host 127.0.0.1 --port 0 --model "demo=$MODEL" \
		--set log_requests=false >"$TMP/log" 2>&1 &
	PID=$!
	i=0
	while [ $i -lt 1200 ]; do
		kill -0 "$PID" 2>/dev/null || { echo "loadtest: the daemon exited"; cat "$TMP/log"; exit 1; }
		port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$TMP/log" | head -n 1)
		if [ -n "$port" ]; then
			URL="http://127.0.0.1:$port"
			[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")" = 200 ] && break
		fi
		sleep 0.05
		i=$((i + 1))
	done
	[ $i -lt 1200 ] || { echo "loadtest: the daemon did not become healthy"; cat "$TMP/log"; exit 1; }
	echo "loadtest: started $B/mobilellmd (pid $PID) on $URL with $MODEL"
fi

if [ -n "$SOAK" ] && [ "$SOAK" != 0 ]; then
	if [ -z "$PID" ]; then
		PID_ARG=${SOAK_PID:-}
		[ -n "$PID_ARG" ] || { echo "loadtest: soak against URL needs SOAK_PID=<daemon pid>"; exit 2; }
	else
		PID_ARG=$PID
	fi
	# shellcheck disable=SC2086
	"$LT" --url "$URL" --soak "$SOAK" --pid "$PID_ARG" ${LOADTEST_ARGS:-}
	rc=$?
else
	# shellcheck disable=SC2086
	"$LT" --url "$URL" ${LOADTEST_ARGS:-}
	rc=$?
fi

if [ -n "$PID" ]; then
	kill -TERM "$PID"
	wait "$PID"
	drc=$?
	PID=""
	if [ "$drc" -ne 0 ]; then
		echo "loadtest: the daemon exited with $drc"
		tail -n 20 "$TMP/log"
		rc=1
	fi
	grep -E 'ERROR|error' "$TMP/log" | head -n 5
fi
exit "$rc"
