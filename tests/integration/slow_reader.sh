#!/bin/sh
# slow_reader.sh — `make slow-reader` (about 2–3 minutes, so not in make test):
# a client that reads a long stream steadily but slowly (4 KiB every 0.1 s
# through a 4 KiB receive buffer) gets all of it, through [DONE], with
# connection_timeout_s far shorter than the transfer. With the kernel's
# autotuned send buffer (up to 4 MiB) such a socket stayed unwritable for
# longer than the timeout while the client was still reading, and MHD
# closed it as idle mid-stream (server/conn.c bounds SO_SNDBUF).
. "$(dirname "$0")/serve_lib.sh"

start_daemon --model demo=models/mobilellm-demo --set connection_timeout_s=5
port=${URL##*:}
"$PY" - "$port" >"$TMP/client" 2>&1 <<'PYEOF' || fail "client: $(cat "$TMP/client")"
import json, socket, sys, time
port = int(sys.argv[1])
body = json.dumps({"model": "demo", "prompt": ["Once"] * 6, "n": 8, "max_tokens": 300,
                   "ignore_eos": True, "logprobs": 5, "stream": True}).encode()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", port))
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % len(body) + body)
s.settimeout(60)
data, t0 = bytearray(), time.time()
while not data.endswith(b"0\r\n\r\n"):
    b = s.recv(4096)
    if not b:
        break
    data += b
    time.sleep(0.1)  # ~40 KB/s, steadily
dt = time.time() - t0
print("%d bytes in %.1f s (%.0f KB/s)" % (len(data), dt, len(data) / dt / 1e3))
assert data.count(b"data: [DONE]") == 1, "stream cut short: no [DONE]"
assert len(data) > 4 << 20, "stream smaller than the kernel's autotuned buffer: no test"
assert dt > 15, "read faster than the timeout matters"
PYEOF
cat "$TMP/client"
if grep -q "connection_timeout_s reached" "$TMP/log"; then fail "closed as idle while read"; fi
stop_daemon TERM
ok "a slow but steady reader gets the whole stream"
