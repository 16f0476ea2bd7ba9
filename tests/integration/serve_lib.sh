# serve_lib.sh — sourced by tests/integration/test_*.sh: start the real daemon on a
# free loopback port (--port 0; the bound port is read from the log), wait
# for /health, small curl assertions, and cleanup on exit. Each script
# exits non-zero on the first failure, printing the daemon's log tail.
set -eu

BIN=${BIN:-build/mobilellmd}
FIX=${MLLM_FIXTURES:-../shared/fixtures}
ST=$FIX/models/stories260K
TINY=$FIX/models/tiny-mobilellm-f16
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
TMP=$(mktemp -d)
PID=""
URL=""
# No lame-duck phase on SIGTERM unless a test asks for one (the scripts
# stop many daemons; test_serve_lifecycle.sh covers the drain).
export MLLMD_DRAIN_DELAY_MS="${MLLMD_DRAIN_DELAY_MS:-0}"

[ -x "$BIN" ] || { echo "FAIL: daemon binary '$BIN' not built"; exit 1; }
[ -d "$ST" ] || { echo "FAIL: fixture $ST missing (set MLLM_FIXTURES)"; exit 1; }
[ -d "$TINY" ] || { echo "FAIL: fixture $TINY missing (set MLLM_FIXTURES)"; exit 1; }

cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -KILL "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	if [ -f "$TMP/log" ]; then
		echo "--- daemon log (tail) ---"
		tail -n 30 "$TMP/log"
	fi
	exit 1
}

ok() {
	echo "ok   $*"
}

# start_daemon ARGS... — serve with ARGS on 127.0.0.1:<free port>, wait for
# /health = 200. Sets PID and URL.
start_daemon() {
	: >"$TMP/log"
	"$BIN" serve --host 127.0.0.1 --port 0 "$@" >>"$TMP/log" 2>&1 &
	PID=$!
	i=0
	port=""
	while [ $i -lt 200 ]; do
		kill -0 "$PID" 2>/dev/null || fail "daemon exited during startup"
		port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
			"${DLOG:-$TMP/log}" 2>/dev/null | head -n 1)
		if [ -n "$port" ]; then
			URL="http://127.0.0.1:$port"
			code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/health" || true)
			[ "$code" = 200 ] && return 0
		fi
		sleep 0.05
		i=$((i + 1))
	done
	fail "daemon not healthy after 10 s"
}

# stop_daemon [SIGNAL] — signals the daemon and waits; sets RC.
stop_daemon() {
	kill -"${1:-TERM}" "$PID"
	RC=0
	wait "$PID" || RC=$?
	PID=""
	# Shutdown must close every libuv handle (uv_loop_close != UV_EBUSY).
	if grep -q "uv_loop_close" "${DLOG:-$TMP/log}" 2>/dev/null; then
		fail "shutdown left libuv handles open"
	fi
}

# status METHOD PATH [curl args...] — prints the HTTP status code.
status() {
	m=$1
	p=$2
	shift 2
	curl -s -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}' -X "$m" "$URL$p" "$@" || echo 000
}

# expect CODE METHOD PATH [curl args...] — asserts the status; the body is
# in $TMP/body and must be a JSON error object for 4xx/5xx.
expect() {
	want=$1
	shift
	got=$(status "$@")
	[ "$got" = "$want" ] || fail "$1 $2: expected $want, got $got: $(head -c 300 "$TMP/body")"
	case "$want" in
	4* | 5*)
		"$PY" "$HERE/serve_client.py" check-error "$TMP/body" "$want" ||
			fail "$1 $2: error body is not {error:{message,type,param,code}}"
		;;
	esac
}

header_has() {
	grep -qi "^$1" "$TMP/headers"
}

JSON='Content-Type: application/json'
