#!/bin/sh
# run.sh — the client conformance tests. Installs the pinned packages with
# npm when node_modules does not match package.json, starts three daemons on
# free loopback ports (A: four fixture models behind an API key, one with a
# thinking chat template, one with Qwen3's tool-calling template; B: one
# model with room for one running and one queued request, to provoke 503 +
# Retry-After; C: one model with a tiny /v1/responses store), runs the
# OpenAI SDK tests (sdk.test.mjs), the structured output and tool call
# tests (structured.test.mjs), the Vercel AI SDK / LangChain tests
# (clients.test.mjs), tool_choice auto / parallel calls (tools.test.mjs) and
# the Responses API tests (responses.test.mjs) with `node --test`, then
# checks the daemons exit 0 on
# SIGTERM. SDK_TESTS="structured.test.mjs ..." runs only those files.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${BIN:-build/mobilellmd}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
FIX=${MLLM_FIXTURES:-$ROOT/../shared/fixtures}
case $FIX in /*) ;; *) FIX=$ROOT/$FIX ;; esac
TMP=$(mktemp -d)
PIDS=""

cleanup() {
	for p in $PIDS; do
		kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }
for m in stories260K tiny-mobilellm-f16 tiny-mobilellm-r1-bf16; do
	[ -d "$FIX/models/$m" ] || { echo "FAIL: fixture $FIX/models/$m missing"; exit 1; }
done
command -v node >/dev/null || { echo "FAIL: node not installed"; exit 1; }

# npm ls fails when a pinned package is missing or at another version (a
# checkout that had an older pin installed), so the pins are always what runs.
if ! (cd "$HERE" && npm ls --depth=0 >/dev/null 2>&1); then
	echo "installing the pinned client packages with npm..."
	(cd "$HERE" && npm install --no-audit --no-fund --loglevel=error) ||
		{ echo "FAIL: npm install"; exit 1; }
fi

# wait_url NAME — prints the daemon's base URL once /health is 200.
wait_url() {
	i=0
	while [ $i -lt 200 ]; do
		port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$TMP/$1.log" | head -n 1)
		if [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ]; then
			echo "http://127.0.0.1:$port"
			return 0
		fi
		sleep 0.05
		i=$((i + 1))
	done
	echo "FAIL: daemon $1 did not become healthy" >&2
	cat "$TMP/$1.log" >&2
	return 1
}

# "think": the tiny model with a template whose generation prompt opens a
# <think> block, so its answers are all reasoning until "</think>".
printf '%s' '{% for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}<|im_start|>assistant
<think>
' >"$TMP/think.jinja"
"$BIN" serve --host 127.0.0.1 --port 0 --model st="$FIX/models/stories260K" \
	--model tiny="$FIX/models/tiny-mobilellm-f16" --model think="$FIX/models/tiny-mobilellm-f16" \
	--set model.think.chat_template="$TMP/think.jinja" --set model.think.kv_bytes=8m \
	--model hermes="$FIX/models/tiny-mobilellm-r1-bf16" \
	--set model.hermes.chat_template="$FIX/chat_templates/qwen3.jinja" --set model.hermes.kv_bytes=16m \
	--api-key sdk-test-key >"$TMP/a.log" 2>&1 &
PID_A=$!
PIDS="$PID_A"
"$BIN" serve --host 127.0.0.1 --port 0 --model tiny="$FIX/models/tiny-mobilellm-f16" \
	--api-key sdk-test-key --set model.tiny.max_running=1 --set model.tiny.max_queue=1 \
	--set retry_after_s=2 >"$TMP/b.log" 2>&1 &
PID_B=$!
PIDS="$PIDS $PID_B"
# C: a /v1/responses store small enough to fill (3 responses, 16 KiB).
"$BIN" serve --host 127.0.0.1 --port 0 --model tiny="$FIX/models/tiny-mobilellm-f16" \
	--api-key sdk-test-key --set responses_store_max=3 --set responses_store_bytes=16k \
	>"$TMP/c.log" 2>&1 &
PID_C=$!
PIDS="$PIDS $PID_C"
URL_A=$(wait_url a)
URL_B=$(wait_url b)
URL_C=$(wait_url c)

rc=0
(cd "$HERE" && MLLMD_URL_A="$URL_A" MLLMD_URL_B="$URL_B" MLLMD_URL_C="$URL_C" \
	MLLMD_KEY=sdk-test-key node --test --test-reporter=spec \
	${SDK_TESTS:-sdk.test.mjs structured.test.mjs clients.test.mjs tools.test.mjs responses.test.mjs}) ||
	rc=$?

for name in a b c; do
	case $name in a) pid=$PID_A ;; b) pid=$PID_B ;; c) pid=$PID_C ;; esac
	kill -TERM "$pid"
	code=0
	wait "$pid" || code=$?
	if [ "$code" != 0 ]; then
		echo "FAIL: daemon $name exited $code after SIGTERM"
		tail -n 20 "$TMP/$name.log"
		rc=1
	fi
done
PIDS=""
if [ "$rc" != 0 ]; then
	echo "--- daemon a log (tail) ---"
	tail -n 20 "$TMP/a.log"
fi
exit $rc
