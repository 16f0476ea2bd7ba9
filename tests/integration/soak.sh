#!/bin/sh
# soak.sh — `make soak`: the daemon under SOAK_SECONDS (default 60) of mixed
# load from SOAK_THREADS (default 32) clients: completions, streams, chat,
# clients hanging up mid-stream, bad requests. Passes when no request fails
# unexpectedly, every KV block comes back, the daemon stays healthy and
# exits 0 on SIGTERM. Prints throughput and the daemon's memory before and
# after (figures, not assertions).
. "$(dirname "$0")/serve_lib.sh"

start_daemon --model st="$ST" --model tiny="$TINY" --set model.st.prefix_cache=false \
	--set model.tiny.prefix_cache=false --set log_requests=false
rss() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
before=$(rss)
"$PY" "$HERE/serve_client.py" soak "$URL" "${SOAK_SECONDS:-60}" "${SOAK_THREADS:-32}" || fail "soak"
expect 200 GET /health
echo "daemon RSS: ${before} kB before, $(rss) kB after"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC"
ok "soak"
