#!/bin/sh
# test_serve_cli.sh — `mobilellmd serve` command line: what is missing without a
# model, --check-config (also n_ctx against the trained context), --dump-config
# (parses back), environment overrides, bad flags and values, and /health =
# 503 until the models are loaded.
. "$(dirname "$0")/serve_lib.sh"

rc=0
"$BIN" serve >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "no model: exit $rc, want 2"
grep -q -- "--model" "$TMP/out" || fail "no model: message lacks --model"
grep -q "models/mobilellm-demo" "$TMP/out" || fail "no model: message lacks the demo model"
ok "no model says what is missing"

"$BIN" serve --model st="$ST" --check-config >"$TMP/out" 2>&1 || fail "check-config: $(cat "$TMP/out")"
rc=0
"$BIN" serve --model st=/does/not/exist --check-config >"$TMP/out" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "check-config accepted a missing path"
grep -q "/does/not/exist" "$TMP/out" || fail "check-config message lacks the path"
rc=0
"$BIN" serve --model st="$ST" --set max_n=0 --check-config >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "out-of-range max_n accepted ($rc)"
grep -q "max_n" "$TMP/out" || fail "range error lacks the key"
rc=0
"$BIN" serve --model st="$ST" --bogus >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "unknown flag: exit $rc"
rc=0
"$BIN" serve --model st="$ST" --set model.st.chat_template=nonesuch --check-config >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "unknown chat template accepted ($rc)"
rc=0
"$BIN" serve --model st="$ST" --set noeq --check-config >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "key=value" "$TMP/out" || fail "--set without '=': exit $rc, $(cat "$TMP/out")"
: >"$TMP/empty.jinja"
rc=0
"$BIN" serve --model st="$ST" --set model.st.chat_template="$TMP/empty.jinja" --check-config >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "is empty" "$TMP/out" || fail "empty template file: exit $rc, $(cat "$TMP/out")"
ok "check-config catches bad paths, values, flags and templates"

# n_ctx past the model's trained context (stories260K: 512), which serve
# refuses only once it loads the model: --check-config has the engine check
# the files (mllm_model_check: headers and tensors, weights not read).
for path in "$ST" "$ST/model.safetensors" "$ST/stories260K-f32.gguf"; do
	rc=0
	"$BIN" serve --model st="$path" --set model.st.n_ctx=513 --check-config >"$TMP/out" 2>&1 ||
		rc=$?
	[ "$rc" = 2 ] || fail "n_ctx 513 ($path): exit $rc: $(cat "$TMP/out")"
	grep -q "model st: n_ctx 513 is more than the model's trained context (512)" "$TMP/out" ||
		fail "n_ctx 513 ($path): $(cat "$TMP/out")"
	"$BIN" serve --model st="$path" --set model.st.n_ctx=512 --check-config >"$TMP/out" 2>&1 ||
		fail "n_ctx 512 ($path) refused: $(cat "$TMP/out")"
done
ok "check-config catches n_ctx past the trained context"

# Files serve would refuse once it loads them (exit 1 after listening), and
# an address it cannot listen on: --check-config refuses them first.
mkdir -p "$TMP/badcfg"
for f in model.safetensors tokenizer.model; do ln -s "$(cd "$ST" && pwd)/$f" "$TMP/badcfg/$f"; done
printf 'not json' >"$TMP/badcfg/config.json"
: >"$TMP/empty.gguf"
mkdir -p "$TMP/notok"
for f in model.safetensors config.json tokenizer_config.json; do
	ln -s "$(cd "$ST" && pwd)/$f" "$TMP/notok/$f"
done
for case in "/dev/zero:neither a snapshot directory nor a GGUF file" \
	"$TMP/empty.gguf:bad magic" "$TMP/badcfg:config.json: bad JSON" \
	"$TMP/notok:the checkpoint has no tokenizer"; do
	path=${case%%:*}
	want=${case#*:}
	rc=0
	"$BIN" serve --model st="$path" --check-config >"$TMP/out" 2>&1 || rc=$?
	[ "$rc" = 2 ] || fail "check-config accepted $path ($rc): $(cat "$TMP/out")"
	grep -q "model st: .*$want" "$TMP/out" || fail "check-config on $path: $(cat "$TMP/out")"
done
rc=0
"$BIN" serve --model st="$ST" --host 999.1.1.1 --check-config >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "check-config accepted host 999.1.1.1 ($rc)"
grep -q "host '999.1.1.1'" "$TMP/out" || fail "check-config on a bad host: $(cat "$TMP/out")"
# An address of no interface here (TEST-NET-1) resolves but cannot be bound.
rc=0
"$BIN" serve --model st="$ST" --host 192.0.2.1 --check-config >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "host '192.0.2.1': Cannot assign requested address" "$TMP/out" ||
	fail "check-config on a non-local host: $rc $(cat "$TMP/out")"
# log_file: tried as serve opens it (root passes access() in /proc too);
# a new one is created and removed again.
for lf in /proc/mllm-check.log /nonexistent-dir/x.log; do
	rc=0
	"$BIN" serve --model st="$ST" --set log_file="$lf" --check-config >"$TMP/out" 2>&1 || rc=$?
	[ "$rc" = 2 ] && grep -q "log_file '$lf'" "$TMP/out" ||
		fail "check-config accepted log_file $lf ($rc): $(cat "$TMP/out")"
done
"$BIN" serve --model st="$ST" --set log_file="$TMP/new.log" --check-config >"$TMP/out" 2>&1 ||
	fail "check-config refused a creatable log_file: $(cat "$TMP/out")"
[ ! -e "$TMP/new.log" ] || fail "check-config left the log file it tried behind"
ok "check-config catches files that are not models and a host it cannot listen on"

# A KV pool larger than the machine's memory is refused here, not by serve
# after listening; a relative path names the directory it was resolved in.
for kv in "kv_bytes=1024g" "kv_blocks=1073741824"; do
	rc=0
	"$BIN" serve --model st="$ST" --set "model.st.$kv" --check-config >"$TMP/out" 2>&1 || rc=$?
	[ "$rc" = 2 ] || fail "check-config accepted $kv ($rc)"
	grep -q "larger than this machine's memory (.*); lower ${kv%%=*}" "$TMP/out" ||
		fail "check-config on $kv: $(cat "$TMP/out")"
done
rc=0
abs_bin=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
(cd "$TMP" && "$abs_bin" serve --model st=no/such/model --check-config) >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "relative to the working directory $TMP" "$TMP/out" ||
	fail "relative path message: $(cat "$TMP/out")"
# One source declaring an id twice is refused; --port errors name --port.
rc=0
"$BIN" serve --model st="$ST" --model st="$ST" --check-config >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "model id 'st' is declared twice" "$TMP/out" ||
	fail "duplicate --model: $(cat "$TMP/out")"
rc=0
"$BIN" serve --model st="$ST" --port 70000 --check-config >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "^mobilellmd serve: --port: port = 70000" "$TMP/out" ||
	fail "--port error: $(cat "$TMP/out")"
# Flags whose misuse was silent or misnamed: a second --config (it replaced
# the first), an --api-key list or blank key, a directory as --config.
rc=0
"$BIN" serve --model st="$ST" --api-key " " --check-config >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q -- "--api-key is blank" "$TMP/out" || fail "blank key: $rc $(cat "$TMP/out")"
for case in "--config $TMP/x1.conf --config $TMP/x1.conf:--config is given twice" \
	"--api-key a,b:--api-key takes one key" "--config $TMP:is a directory"; do
	args=${case%%:*}
	want=${case#*:}
	: >"$TMP/x1.conf"
	rc=0
	# shellcheck disable=SC2086
	"$BIN" serve --model st="$ST" $args --check-config >"$TMP/out" 2>&1 || rc=$?
	[ "$rc" = 2 ] && grep -q -- "$want" "$TMP/out" || fail "$args: $rc $(cat "$TMP/out")"
done
ok "check-config refuses a KV pool past memory, duplicate ids; messages name their source"

MLLMD_PORT=4242 MLLMD_API_KEY=envkey "$BIN" serve --model st="$ST" --set max_n=3 \
	--dump-config >"$TMP/dump.conf" 2>&1 || fail "dump-config"
grep -q '^port = 4242' "$TMP/dump.conf" || fail "env MLLMD_PORT not applied"
grep -q '^max_n = 3' "$TMP/dump.conf" || fail "--set not applied"
grep -q 'envkey' "$TMP/dump.conf" && fail "dump-config shows the API key"
MLLMD_API_KEY=envkey "$BIN" serve --config "$TMP/dump.conf" --check-config >"$TMP/out" 2>&1 ||
	fail "dumped config does not load: $(cat "$TMP/out")"
# Without the key again, the "<redacted>" placeholder is refused, not served
# as the key.
rc=0
"$BIN" serve --config "$TMP/dump.conf" --check-config >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "placeholder" "$TMP/out" || fail "placeholder key accepted: $(cat "$TMP/out")"
MLLMD_PORT=4242 "$BIN" serve --model st="$ST" --port 4343 --dump-config | grep -q '^port = 4343' ||
	fail "--port does not beat MLLMD_PORT"
ok "dump-config round-trips; precedence file < env < flags"

# A configuration serve would refuse is refused by --dump-config too, not
# printed with exit 0.
for args in "--set log_format=xml" "--set model.st.chat_system=x" ""; do
	rc=0
	if [ -n "$args" ]; then
		# shellcheck disable=SC2086
		"$BIN" serve --model st="$ST" $args --dump-config >"$TMP/out" 2>&1 || rc=$?
	else
		"$BIN" serve --dump-config >"$TMP/out" 2>&1 || rc=$?
	fi
	[ "$rc" = 2 ] && ! grep -q '^\[server\]' "$TMP/out" ||
		fail "dump-config of an invalid configuration ($args): $rc $(cat "$TMP/out")"
done
"$BIN" serve --model st="$ST" --dump-config | grep -q '(default )' && fail "empty default printed"
ok "dump-config refuses what serve refuses"

printf 'port = 1\n[model.x]\npath = %s\nn_ctx = 128\n' "$ST" >"$TMP/x.conf"
"$BIN" serve --config "$TMP/x.conf" --port 0 --dump-config | grep -q '^n_ctx = 128' ||
	fail "config file model section"
printf 'port = 99999\n' >"$TMP/bad.conf"
rc=0
"$BIN" serve --config "$TMP/bad.conf" --check-config >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "bad.conf:1" "$TMP/out" || fail "bad config: exit $rc: $(cat "$TMP/out")"
ok "config file errors name file and line"

# A model path that fails to load: the daemon reports it and exits 1.
mkdir -p "$TMP/empty"
rc=0
"$BIN" serve --model e="$TMP/empty" --port 0 >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "unloadable model: exit $rc, want 1"
ok "load failure exits 1"

# The engine decides the context. More than the model was trained for is
# refused at start, naming both numbers; a smaller n_ctx is what /tokenize
# reports and what admission enforces (stories260K was trained at 512).
rc=0
"$BIN" serve --model st="$ST" --set model.st.n_ctx=1024 --port 0 >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "n_ctx above the trained context: exit $rc, want 1"
grep -q "1024" "$TMP/out" && grep -q "512" "$TMP/out" || fail "n_ctx refusal: $(cat "$TMP/out")"
for n in 0 128; do
	start_daemon --model st="$ST" --set model.st.n_ctx=$n
	ctx=$n
	[ "$n" = 0 ] && ctx=512
	expect 200 POST /tokenize -H "$JSON" -d '{"model":"st","prompt":"Once"}'
	grep -q "\"max_model_len\": *$ctx" "$TMP/body" || fail "n_ctx=$n: /tokenize says $(cat "$TMP/body")"
	# A chat request without max_tokens gets what the context leaves.
	expect 200 POST /v1/chat/completions -H "$JSON" \
		-d '{"model":"st","messages":[{"role":"user","content":"Hi"}],"temperature":0}'
	# One token over the context is refused, exactly at it is admitted.
	expect 400 POST /v1/completions -H "$JSON" \
		-d "{\"model\":\"st\",\"prompt\":[1,2,3],\"max_tokens\":$((ctx - 2))}"
	grep -q "$ctx" "$TMP/body" || fail "n_ctx=$n: 400 does not name the context: $(cat "$TMP/body")"
	expect 200 POST /v1/completions -H "$JSON" \
		-d "{\"model\":\"st\",\"prompt\":[1,2,3],\"max_tokens\":$((ctx - 3)),\"temperature\":0}"
	stop_daemon TERM
done
ok "n_ctx: above the trained context refused; /tokenize and admission agree"

# The chat template is configurable per model: /tokenize renders messages
# through it (chatml's markers appear; the default "plain" has none).
start_daemon --model st="$ST" --model t2="$TINY" --set model.t2.chat_template=chatml
for m in st t2; do
	expect 200 POST /tokenize -H "$JSON" \
		-d "{\"model\":\"$m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}"
	toks=$("$PY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["tokens"]))' "$TMP/body")
	expect 200 POST /detokenize -H "$JSON" -d "{\"model\":\"$m\",\"tokens\":$toks}"
	cp "$TMP/body" "$TMP/chat_$m.json"
done
grep -q 'im_start' "$TMP/chat_t2.json" || fail "chatml template not applied: $(cat "$TMP/chat_t2.json")"
grep -q 'im_start' "$TMP/chat_st.json" && fail "plain template has chatml markers"
grep -q 'User: Hi' "$TMP/chat_st.json" || fail "plain template: $(cat "$TMP/chat_st.json")"
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC"
ok "chat template per model"

# SIGHUP reopens the log file and the daemon keeps serving.
DLOG="$TMP/daemon.log"
start_daemon --model st="$ST" --set log_file="$TMP/daemon.log"
kill -HUP "$PID"
kill -USR1 "$PID"
kill -USR2 "$PID"
sleep 0.2
kill -0 "$PID" 2>/dev/null || fail "SIGUSR1/SIGUSR2 ended the daemon"
# A second daemon on the same port fails to listen and exits 1.
port=${URL##*:}
rc=0
"$BIN" serve --model st="$ST" --port "$port" >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "cannot listen" "$TMP/out" || fail "port in use: exit $rc: $(cat "$TMP/out")"
ok "port in use exits 1"
expect 200 GET /health
grep -q "log reopened" "$TMP/daemon.log" || fail "SIGHUP not logged"
stop_daemon INT
[ "$RC" = 0 ] || fail "SIGINT exit code $RC"
ok "SIGHUP reopens the log; SIGUSR1/2 are ignored; SIGINT exits 0"

# systemd readiness: READY=1 once listening and loaded, STOPPING=1 on SIGTERM,
# as datagrams to $NOTIFY_SOCKET.
"$PY" - "$TMP/notify.sock" >"$TMP/notify.out" <<'PYEOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
while True:
    try:
        d = s.recv(4096).decode()
    except socket.timeout:
        break
    print(d, flush=True)
    if d.startswith("STOPPING"):
        break
PYEOF
NPID=$!
i=0
while [ ! -S "$TMP/notify.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
export NOTIFY_SOCKET="$TMP/notify.sock"
DLOG=""
start_daemon --model st="$ST"
unset NOTIFY_SOCKET
stop_daemon TERM
[ "$RC" = 0 ] || fail "exit code $RC"
wait "$NPID" || true
grep -qx "READY=1" "$TMP/notify.out" || fail "no READY=1: $(cat "$TMP/notify.out")"
grep -qx "STOPPING=1" "$TMP/notify.out" || fail "no STOPPING=1"
ok "sd_notify READY=1 / STOPPING=1"

# log_file: --check-config finds what serve could not open (exit 2 both).
rc=0
"$BIN" serve --model st="$ST" --set log_file="$TMP/no/such/dir/x.log" --check-config \
	>"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "--check-config with an unwritable log_file: exit $rc, want 2"
grep -q "log_file" "$TMP/out" || fail "--check-config log_file message: $(cat "$TMP/out")"
[ ! -e "$TMP/no" ] || fail "--check-config created something"
rc=0
"$BIN" serve --model st="$ST" --port 0 --set log_file="$TMP/no/such/dir/x.log" \
	>"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "serve with an unwritable log_file: exit $rc, want 2"
"$BIN" serve --model st="$ST" --set log_file="$TMP/new.log" --check-config >/dev/null 2>&1 ||
	fail "--check-config refused a creatable log_file"
[ ! -e "$TMP/new.log" ] || fail "--check-config created the log file"
ok "log_file checked by --check-config; serve exits 2 when it cannot open it"

# host "::": one dual-stack socket, IPv4 clients included (where the
# kernel has IPv6 at all; the IPv4 half is what is checked).
if python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
	: >"$TMP/log6"
	"$BIN" serve --model st="$ST" --host :: --port 0 >"$TMP/log6" 2>&1 &
	P6=$!
	i=0
	port=""
	while [ $i -lt 200 ] && [ -z "$port" ]; do
		port=$(sed -n 's/.*listening on http:\/\/\[::\]:\([0-9][0-9]*\).*/\1/p' "$TMP/log6" | head -n 1)
		sleep 0.05
		i=$((i + 1))
	done
	[ -n "$port" ] || fail "host ::: no listening line: $(cat "$TMP/log6")"
	curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/livez" >"$TMP/c4" || true
	curl -sg -o /dev/null -w '%{http_code}' "http://[::1]:$port/livez" >"$TMP/c6" || true
	kill -TERM "$P6"
	wait "$P6" || true
	[ "$(cat "$TMP/c4")" = 200 ] || fail "host ::: IPv4 client got $(cat "$TMP/c4")"
	[ "$(cat "$TMP/c6")" = 200 ] || fail "host ::: IPv6 client got $(cat "$TMP/c6")"
	ok "host :: serves IPv4 and IPv6 clients"
else
	echo "note: no IPv6 on this host; host :: not exercised"
fi
