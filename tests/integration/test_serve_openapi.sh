#!/bin/sh
# test_serve_openapi.sh — holds openapi.yaml and the daemon together: starts the
# real daemon and runs api/'s checker (openapi_check.py), which calls every
# documented endpoint and validates each status, content type, JSON body and
# SSE event against the spec.
. "$(dirname "$0")/serve_lib.sh"

[ -f "$HERE/openapi_check.py" ] || fail "tests/integration/openapi_check.py missing"
start_daemon --model st="$ST" --model tiny="$TINY" --api-key openapi-key
"$PY" "$HERE/openapi_check.py" "$URL" --api-key openapi-key --model st >"$TMP/check.out" 2>&1 ||
	{ tail -n 40 "$TMP/check.out"; fail "responses do not match openapi.yaml"; }
tail -n 1 "$TMP/check.out"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC"
ok "real responses match openapi.yaml"
