#!/bin/sh
# side_by_side.sh — the batched and end-to-end halves of `make bench`'s
# llamacpp section: our engine and daemon beside a llama.cpp that the person
# running the bench built (nothing of llama.cpp is in this repository), on
# the same GGUF file and the same cores, alternating, two rounds.
#
#   sh bench/side_by_side.sh batch LLAMA_CPP_DIR FILE.gguf
#     bench_forward --batch B (decode steps of B sequences at 128 tokens of
#     context, 32 steps) beside llama-batched-bench -npp 128 -ntg 32 -npl B
#     (its generation speed, S_TG); LLAMACPP_BATCH=1,4,16 by default.
#   sh bench/side_by_side.sh e2e LLAMA_CPP_DIR FILE.gguf
#     build/mobilellmd serve and llama-server (-t 2 -np N -c N*1024), each
#     under bench/loadtest (closed loop, N clients, every request streamed,
#     no chat, the default prompt mix) for LLAMACPP_E2E_SECONDS (30) at
#     each N of LLAMACPP_E2E_CLIENTS ("16 64").
#
# Prints per round both figures and the ratio. Never pass/fail on speed;
# exits non-zero only when a server cannot be started or a tool fails.
set -u
B=${BUILD:-build}
MODE=$1
LCPP=$2
GGUF=$3
PIN=""
command -v taskset >/dev/null 2>&1 && PIN="taskset -c 0,1"
TMP=$(mktemp -d)
SRV=""

cleanup() {
	if [ -n "$SRV" ] && kill -0 "$SRV" 2>/dev/null; then
		kill -TERM "$SRV" 2>/dev/null
		wait "$SRV" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# A free loopback port: bind to 0 and read what the kernel chose.
free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (at most 120 s) for URL/health to answer 200 while pid $SRV lives.
wait_healthy() {
	i=0
	while [ $i -lt 1200 ]; do
		kill -0 "$SRV" 2>/dev/null || return 1
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$1/health")" = 200 ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

stop_server() {
	kill -TERM "$SRV" 2>/dev/null
	wait "$SRV" 2>/dev/null
	SRV=""
}

# One loadtest run against $1 with $2 clients; prints "tok/s req/s ttft_p50_ms".
load() {
	"$B/bench/loadtest" --url "$1" --model m --phases closed --clients "$2" \
		--duration "${LLAMACPP_E2E_SECONDS:-30}" --stream 1 --cancel 0 --chat 0 \
		--timeout 300 >"$TMP/lt" 2>&1 || { cat "$TMP/lt"; return 1; }
	awk '/^  throughput/ { rq = $2; tk = $4 }
	     /^  TTFT/ { for (i = 1; i < NF; i++) if ($i == "p50") p = $(i + 1) }
	     END { if (tk == "") exit 1; printf "%s %s %s\n", tk, rq, (p == "" ? "-" : p) }' "$TMP/lt"
}

# Starts server $1 (a name) from the command line that follows (listening on
# $PORT), runs one load with $N clients against it and stops it; writes
# load's line to $TMP/$1.res. Not in a subshell, so that the EXIT trap
# knows $SRV.
serve_load() {
	name=$1
	shift
	$PIN "$@" >"$TMP/$name.log" 2>&1 &
	SRV=$!
	wait_healthy "http://127.0.0.1:$PORT" ||
		{ echo "e2e: $name did not start"; tail -20 "$TMP/$name.log"; return 1; }
	load "http://127.0.0.1:$PORT" "$N" >"$TMP/$name.res" || { cat "$TMP/$name.res"; return 1; }
	stop_server
}

e2e() {
	for N in ${LLAMACPP_E2E_CLIENTS:-16 64}; do
		for round in 1 2; do
			PORT=$(free_port)
			serve_load mobilellmd "$B/mobilellmd" serve --host 127.0.0.1 --port "$PORT" \
				--model "m=$GGUF" --set log_requests=false || exit 1
			PORT=$(free_port)
			serve_load llama-server "$LCPP/build/bin/llama-server" -m "$GGUF" -t 2 -tb 2 \
				-np "$N" -c $((N * 1024)) --host 127.0.0.1 --port "$PORT" || exit 1
			cat "$TMP/mobilellmd.res" "$TMP/llama-server.res" | tr '\n' ' ' |
				awk -v g="$(basename "$GGUF")" -v n="$N" -v r="$round" '{
				printf "%s e2e %d clients round %s: %.1f vs %.1f output tok/s (%.2fx), %s vs %s req/s, TTFT p50 %s vs %s ms\n",
				    g, n, r, $1, $4, ($4 > 0 ? $1 / $4 : 0), $2, $5, $3, $6 }'
		done
	done
}

batch() {
	bl=${LLAMACPP_BATCH:-1,4,16}
	for round in 1 2; do
		ours=$($PIN "$B/bench/bench_forward" "$GGUF" --threads 2 --prefill 16 --decode 4 \
			--repeats 3 --kv-f16 --batch "$bl" --batch-ctx 128 --batch-steps 32 2>/dev/null) || exit 1
		theirs=$($PIN "$LCPP/build/bin/llama-batched-bench" -m "$GGUF" -t 2 -tb 2 -c 8192 \
			-b 2048 -ub 512 -npp 128 -ntg 32 -npl "$bl" --output-format jsonl 2>/dev/null) || exit 1
		for b in $(echo "$bl" | tr ',' ' '); do
			o=$(echo "$ours" | sed -n "s/^threads 2: batch *$b at ctx 128: .*= *\\([0-9.]*\\) tokens\\/s.*/\\1/p")
			t=$(echo "$theirs" | /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        r = json.loads(line)
        if r.get("pl") == int(sys.argv[1]):
            print(r["speed_tg"])' "$b")
			awk -v g="$(basename "$GGUF")" -v b="$b" -v r="$round" -v o="$o" -v t="$t" 'BEGIN {
				if (o > 0 && t > 0)
					printf "%s batch %s round %s: %.1f vs %.1f tok/s (%.2fx)\n", g, b, r, o, t, o / t
				else
					printf "%s batch %s round %s: no figures (ours: \"%s\"; llama.cpp: \"%s\")\n", g, b, r, o, t
			}'
		done
	done
}

case "$MODE" in
batch) batch ;;
e2e) e2e ;;
*)
	echo "usage: side_by_side.sh batch|e2e LLAMA_CPP_DIR FILE.gguf" >&2
	exit 2
	;;
esac
