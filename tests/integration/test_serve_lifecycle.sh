#!/bin/sh
# test_serve_lifecycle.sh — what balancers and orchestrators rely on:
# /livez and /readyz (/health = readiness), the lame-duck phase after
# SIGTERM (readiness 503 while requests and new connections are still
# served), then a closed listening socket (a late connect is refused at
# once, not parked in the backlog) while an in-flight stream finishes,
# exit 0; `mobilellmd health` exit codes; --check-config on dangling
# symlinks and unreadable files; a misspelt MLLMD_* variable is warned.
. "$(dirname "$0")/serve_lib.sh"

# While a configured model loads, /v1/models/{id} says 503 "loading" with
# Retry-After, as generation does, never 404 (an SDK does not retry a 404).
# The loop runs from the moment the port is bound until the model is up.
: >"$TMP/log"
"$BIN" serve --host 127.0.0.1 --port 0 --model st="$ST" \
	--model r1="$FIX/models/tiny-mobilellm-r1-bf16" >>"$TMP/log" 2>&1 &
PID=$!
port="" i=0
while [ -z "$port" ] && [ $i -lt 1000 ]; do
	kill -0 "$PID" 2>/dev/null || fail "daemon exited during startup"
	port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$TMP/log" | head -n 1)
	i=$((i + 1))
done
[ -n "$port" ] || fail "no port in the log"
URL="http://127.0.0.1:$port"
loading=0 i=0
while [ $i -lt 2000 ]; do
	code=$(curl -s -D "$TMP/hdr" -o "$TMP/body" -w '%{http_code}' "$URL/v1/models/r1" || true)
	case $code in
	200) break ;;
	503)
		grep -q '"loading"' "$TMP/body" && grep -qi '^Retry-After:' "$TMP/hdr" ||
			fail "503 while loading: $(cat "$TMP/hdr" "$TMP/body")"
		loading=$((loading + 1))
		# Loading is per model: an unknown one is a 404 meanwhile, and
		# the one loading answers generation with 503 loading too.
		c2=$(curl -s -o "$TMP/b2" -w '%{http_code}' "$URL/v1/completions" \
			-H 'Content-Type: application/json' -d '{"model":"nope","prompt":"a"}' || true)
		[ "$c2" = 404 ] || [ "$c2" = 000 ] || fail "unknown model while another loads: $c2 $(cat "$TMP/b2")"
		c2=$(curl -s -o "$TMP/b2" -w '%{http_code}' "$URL/v1/completions" \
			-H 'Content-Type: application/json' -d '{"model":"r1","prompt":"a","max_tokens":1}' || true)
		case $c2 in
		200) ;; # r1 came up in between
		503) grep -q '"loading"' "$TMP/b2" || fail "generation while r1 loads: $(cat "$TMP/b2")" ;;
		*) fail "generation while r1 loads: $c2 $(cat "$TMP/b2")" ;;
		esac
		;;
	*) fail "GET /v1/models/r1 while loading: $code $(cat "$TMP/body")" ;;
	esac
	i=$((i + 1))
done
[ "$code" = 200 ] || fail "r1 not listed after $i tries"
stop_daemon TERM
ok "/v1/models/{id} while loading: 503 loading with Retry-After ($loading), then 200"

# /tokenize and /detokenize are per model too: while another model's
# load is held (its config.json a FIFO nobody writes yet), a loaded model
# tokenizes and the held one is 503 loading, not 404.
mkdir "$TMP/held"
for f in model.safetensors tokenizer.model tokenizer_config.json; do
	ln -s "$ST/$f" "$TMP/held/$f"
done
mkfifo "$TMP/held/config.json"
: >"$TMP/log"
"$BIN" serve --host 127.0.0.1 --port 0 --model st="$ST" --model held="$TMP/held" >>"$TMP/log" 2>&1 &
PID=$!
code="" i=0
while [ "$code" != 200 ] && [ $i -lt 400 ]; do
	kill -0 "$PID" 2>/dev/null || fail "daemon exited during startup"
	port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$TMP/log" | head -n 1)
	[ -n "$port" ] && code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/models/st" || true)
	sleep 0.05
	i=$((i + 1))
done
[ "$code" = 200 ] || fail "st not up beside a held load: $code"
URL="http://127.0.0.1:$port"
code=$(curl -s -o "$TMP/b" -w '%{http_code}' "$URL/tokenize" -H "$JSON" -d '{"model":"st","prompt":"hi"}')
[ "$code" = 200 ] && grep -q '"tokens"' "$TMP/b" || fail "tokenize on a loaded model while another loads: $code $(cat "$TMP/b")"
code=$(curl -s -o "$TMP/b" -w '%{http_code}' "$URL/detokenize" -H "$JSON" -d '{"model":"st","tokens":[1,2]}')
[ "$code" = 200 ] || fail "detokenize on a loaded model while another loads: $code $(cat "$TMP/b")"
code=$(curl -s -D "$TMP/hdr" -o "$TMP/b" -w '%{http_code}' "$URL/tokenize" -H "$JSON" -d '{"model":"held","prompt":"hi"}')
[ "$code" = 503 ] && grep -q '"loading"' "$TMP/b" && grep -qi '^Retry-After:' "$TMP/hdr" ||
	fail "tokenize on the model loading: $code $(cat "$TMP/b")"
code=$(curl -s -o "$TMP/b" -w '%{http_code}' "$URL/tokenize" -H "$JSON" -d '{"model":"nope","prompt":"hi"}')
[ "$code" = 404 ] || fail "tokenize on an unknown model while one loads: $code $(cat "$TMP/b")"
# The loader is blocked in open() on the FIFO: nothing but KILL ends it.
stop_daemon KILL
ok "/tokenize, /detokenize per model: a loaded one answers while another loads (503 loading there)"

start_daemon --model st="$ST" --model r1="$FIX/models/tiny-mobilellm-r1-bf16" --set drain_delay_ms=2000 \
	--set shutdown_timeout_ms=120000
port=${URL##*:}
[ "$(status GET /livez)" = 200 ] || fail "/livez not 200"
grep -q '"alive"' "$TMP/body" || fail "/livez body: $(cat "$TMP/body")"
[ "$(status GET /readyz)" = 200 ] || fail "/readyz not 200 once loaded"
[ "$(status GET /livez -H 'Authorization: Bearer nope')" = 200 ] || fail "/livez needs no key"
"$BIN" health --port "$port" >/dev/null || fail "health: exit $? on a ready daemon"
MLLMD_PORT=$port "$BIN" health >/dev/null || fail "health ignores MLLMD_PORT"
ok "/livez, /readyz and 'mobilellmd health' on a ready daemon"

# A stream long enough to outlive the 2 s drain delay on an idle machine:
# the R1 fixture's 128k-token output layer makes each token cost ~3 ms, so
# 3000 tokens take ~8 s here (the tiny classic model needs only ~1 s for
# 1000, which an idle CI machine finishes before the delay ends). Under
# sanitizers (make asan / tsan export MLLM_SANITIZER) a token costs 15-25x
# more — TSan made only 1,700-2,600 of 3000 in the 120 s shutdown timeout —
# so 500 tokens there: still far past the drain delay.
ntok=3000
[ -z "${MLLM_SANITIZER:-}" ] || ntok=500
curl -s -N "$URL/v1/completions" -H "$JSON" \
	-d '{"model":"r1","prompt":"Once","max_tokens":'"$ntok"',"ignore_eos":true,"temperature":0,"stream":true}' \
	>"$TMP/stream" 2>/dev/null &
CPID=$!
i=0
while [ ! -s "$TMP/stream" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -s "$TMP/stream" ] || fail "stream did not start"
kill -TERM "$PID"
sleep 0.3
# Lame duck: not ready, still alive, still serving (new connections too).
[ "$(status GET /readyz)" = 503 ] || fail "/readyz not 503 while draining"
[ "$(status GET /health)" = 503 ] || fail "/health not 503 while draining"
[ "$(status GET /livez)" = 200 ] || fail "/livez not 200 while draining"
code=$(status POST /v1/completions -H "$JSON" -d '{"model":"st","prompt":"Hi","max_tokens":2}')
[ "$code" = 200 ] || fail "completion while draining: $code"
grep -qi '^connection: close' "$TMP/headers" || fail "no Connection: close while draining"
rc=0
"$BIN" health --port "$port" >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "health: exit $rc while draining, want 1"
ok "SIGTERM: lame duck answers readiness 503 and still serves"

# After the delay: the socket is closed (refused at once), the stream is
# still running and then ends normally, exit 0.
i=0
while ! grep -q "drain delay over" "$TMP/log" && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
grep -q "drain delay over" "$TMP/log" || fail "drain phase never ended"
rc=0
curl -s -o /dev/null --max-time 1 "$URL/livez" || rc=$?
[ "$rc" = 7 ] || fail "late connect: curl exit $rc, want 7 (refused at once)"
kill -0 "$PID" 2>/dev/null || fail "exited before the in-flight stream finished"
wait "$CPID" || true
grep -q '\[DONE\]' "$TMP/stream" || fail "in-flight stream did not finish"
grep -q '"error"' "$TMP/stream" && fail "in-flight stream ended with an error"
RC=0
wait "$PID" || RC=$?
PID=""
[ "$RC" = 0 ] || fail "exit code $RC after the drain"
ok "after the drain delay: late connects refused, in-flight stream finished, exit 0"

# Nothing listening: health says so (exit 1), bad usage is 2.
rc=0
"$BIN" health --port "$port" --timeout-ms 500 >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "health on a closed port: exit $rc, want 1"
rc=0
"$BIN" health --bogus >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "health --bogus: exit $rc, want 2"
# A missing value is said as such, for each command taking values.
for c in "health --port" "health --timeout-ms" "tokenize --model" "render-template --template"; do
	rc=0
	# shellcheck disable=SC2086
	"$BIN" $c >"$TMP/out" 2>&1 || rc=$?
	[ "$rc" = 2 ] && grep -q -- "${c#* } needs a value" "$TMP/out" ||
		fail "'$c' without a value: exit $rc: $(head -2 "$TMP/out")"
done
ok "'mobilellmd health' exits 1 when nothing answers, 2 on usage errors"

# --check-config follows symlinks into the snapshot: a dangling one (a
# cache snapshot without its blobs) is an error; so is an unreadable file
# (only when not root: root reads anything).
mkdir "$TMP/snap"
for f in "$ST"/*; do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$TMP/snap/"; done
"$BIN" serve --model s="$TMP/snap" --check-config >/dev/null 2>&1 || fail "symlinked snapshot refused"
ln -s "$TMP/gone" "$TMP/snap/model-00002-of-00002.safetensors"
rc=0
"$BIN" serve --model s="$TMP/snap" --check-config >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "dangling symlink: exit $rc, want 2"
grep -q "model-00002-of-00002.safetensors" "$TMP/out" || fail "error does not name the file"
rm "$TMP/snap/model-00002-of-00002.safetensors"
if [ "$(id -u)" != 0 ]; then
	cp "$ST/config.json" "$TMP/cfg.json"
	chmod 000 "$TMP/cfg.json"
	rm "$TMP/snap/config.json"
	ln -s "$TMP/cfg.json" "$TMP/snap/config.json"
	rc=0
	"$BIN" serve --model s="$TMP/snap" --check-config >"$TMP/out" 2>&1 || rc=$?
	[ "$rc" = 2 ] || fail "unreadable file: exit $rc, want 2"
fi
MLLMD_PROT=9 MLLMD_PORT=8080 "$BIN" serve --model s="$ST" --check-config >"$TMP/out" 2>&1 ||
	fail "unknown variable made --check-config fail"
grep -q "WARN.*MLLMD_PROT.*MLLMD_PORT" "$TMP/out" || fail "no warning naming MLLMD_PROT: $(cat "$TMP/out")"
grep -q "MLLMD_PORT ignored" "$TMP/out" && fail "a known variable was warned about"
ok "--check-config: dangling symlinks and unreadable files fail; MLLMD_PROT is a WARN"
