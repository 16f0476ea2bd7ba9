#!/usr/bin/env python3
"""harden_client.py — attacker-style scenarios for test_serve_harden.sh (stdlib
only, loopback only, every wait bounded).

Each subcommand exits 0 on success, 1 with a message on failure. Time bounds
are derived from the daemon's configured timeouts (passed in) plus generous
slack, so they separate "bounded by the timeout" from "held indefinitely"
(the findings of issue 17) without measuring anything finely; the one
relative comparison (abandoned preparation) compares two figures measured
here, in the same run.
"""
import json
import re
import select
import socket
import struct
import sys
import threading
import time
import urllib.parse

# Slack on top of a configured timeout: scheduling noise on a loaded 2-core
# machine, never a measurement.
SLACK_S = 4.0


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def hostport(url):
    u = urllib.parse.urlparse(url)
    return u.hostname, u.port


def connect(url, src=None, timeout=10.0):
    """A TCP connection to the daemon, from source address src if given."""
    host, port = hostport(url)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    s.connect((host, port))
    return s


def read_response(s, limit_s):
    """Reads until the peer closes or a full response (by Content-Length)
    arrived, for at most limit_s. Returns (status or None, bytes, closed)."""
    s.settimeout(0.2)
    end = time.monotonic() + limit_s
    data = bytearray()
    closed = False
    want = None  # total bytes once the head and its Content-Length are in
    while time.monotonic() < end:
        try:
            c = s.recv(1 << 20)
        except socket.timeout:
            c = None
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
        if c == b"":
            closed = True
            break
        if c:
            data += c
            if want is None:
                i = data.find(b"\r\n\r\n")
                if i >= 0:
                    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", bytes(data[:i]))
                    want = i + 4 + int(m.group(1)) if m else -1
            if want is not None and want >= 0 and len(data) >= want:
                break
    data = bytes(data)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(m.group(1)) if m else None), data, closed


def http(url, method, path, body=None, headers=None, src=None, limit_s=30.0):
    """One request on a fresh connection. Returns (status, headers, body)."""
    s = connect(url, src)
    try:
        h = {"Host": "localhost", "Connection": "close"}
        if body is not None:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            if isinstance(body, str):
                body = body.encode()
            h["Content-Type"] = "application/json"
            h["Content-Length"] = str(len(body))
        if headers:
            h.update(headers)
        req = "%s %s HTTP/1.1\r\n" % (method, path)
        req += "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        s.sendall(req.encode("latin-1") + (body or b""))
        st, data, _ = read_response(s, limit_s)
        head, _, rest = data.partition(b"\r\n\r\n")
        return st, head.decode("latin-1"), rest
    finally:
        s.close()


def error_of(body):
    try:
        return json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return None


# ---- framing and routing ---------------------------------------------------

BODY = b'{"prompt":"Once","max_tokens":2}'


def framing_cases():
    """(name, raw request, expected status, connection must close)."""
    cl = len(BODY)
    pipelined = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    post = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    return [
        # Two Content-Lengths: the second request must never be answered.
        ("conflicting Content-Length",
         post + b"Content-Length: %d\r\nContent-Length: 5\r\n\r\n" % cl + BODY + pipelined,
         400, True),
        # libmicrohttpd refuses these two itself, before the access handler
        # runs, and (up to 0.9.77) sends its response head twice; the
        # daemon answers first with one JSON error (http.c,
        # mhd_refused_length).
        ("invalid Content-Length", post + b"Content-Length: 5, 5\r\n\r\n" + BODY[:5], 400, True),
        ("Content-Length past 2^64",
         post + b"Content-Length: 99999999999999999999999\r\n\r\n" + BODY[:5], 413, True),
        ("Transfer-Encoding gzip, chunked",
         post + b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501, True),
        ("Transfer-Encoding identity", post + b"Transfer-Encoding: identity\r\n\r\n", 501, True),
        ("Transfer-Encoding and Content-Length",
         post + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400, True),
        ("500 KB chunk extension",
         post + b"Transfer-Encoding: chunked\r\n\r\n5;" + b"x" * 500000 + b"\r\nhello\r\n0\r\n\r\n",
         400, True),
        ("absolute-form target",
         b"POST http://localhost/v1/completions HTTP/1.1\r\nHost: localhost\r\n"
         b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
         % cl + BODY, 200, False),
        ("encoded slash", b"POST /v1%%2Fcompletions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % cl + BODY, 400, False),
        ("encoded slash, lower case", b"GET /v1%2fmodels HTTP/1.1\r\nHost: x\r\n"
         b"Connection: close\r\n\r\n", 400, False),
        ("encoded NUL", b"POST /v1/completions%%00garbage HTTP/1.1\r\nHost: x\r\n"
         b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
         % cl + BODY, 400, False),
        ("encoded NUL in the query", b"GET /health?a=%00 HTTP/1.1\r\nHost: x\r\n"
         b"Connection: close\r\n\r\n", 400, False),
        ("escaped route name", b"GET /%6detrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
         404, False),
        ("chunked body (sound)",
         post + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n" % cl + BODY
         + b"\r\n0\r\n\r\n", 200, False),
        # RFC 9112 5.1: MHD reads "Content-Length : N" as a field named
        # "Content-Length ", so the body would be parsed as a second
        # request (smuggled past a proxy that frames it): one 400, and
        # no second response (checked below for every case).
        ("whitespace before a header's colon",
         post + b"Content-Length : 54\r\n\r\n"
         b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400, True),
        ("whitespace before Transfer-Encoding's colon",
         post + b"Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", 400, True),
        # RFC 9112 3.2: exactly one Host in an HTTP/1.1 request.
        ("HTTP/1.1 without Host", b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
         400, True),
        ("two Host headers", b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n"
         b"Connection: close\r\n\r\n", 400, True),
        ("HTTP/1.0 without Host (allowed)", b"GET /health HTTP/1.0\r\n\r\n", 200, False),
        # Bodies are read as sent: a content coding is refused (415), not
        # parsed as broken JSON or taken on trust; identity is fine.
        ("Content-Encoding gzip",
         post + b"Content-Encoding: gzip\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
         % cl + BODY, 415, False),
        ("Content-Encoding identity",
         post + b"Content-Encoding: Identity \r\nContent-Length: %d\r\nConnection: close\r\n"
         b"\r\n" % cl + BODY, 200, False),
        # A client waiting for "100 Continue" before it uploads gets the
        # refusal instead (RFC 9110 10.1.1), and the connection ends.
        ("Expect: 100-continue to an unknown route",
         b"POST /v1/nope HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
         b"Content-Type: application/json\r\nContent-Length: 900000\r\n\r\n", 404, True),
        ("Expect: 100-continue with the wrong media type",
         b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
         b"Content-Type: text/plain\r\nContent-Length: 900000\r\n\r\n", 415, True),
        ("Expect: 100-continue, body over max_body_bytes",
         post + b"Expect: 100-continue\r\nContent-Length: 3145728\r\n\r\n", 413, True),
        # Past 256 MiB the body is not even read to be dropped.
        ("Content-Length of 300 MiB", post + b"Content-Length: 314572800\r\n\r\n", 413, True),
    ]


def cmd_framing(url, idle_s):
    """Every case is answered long before the daemon's idle timeout
    (connection_timeout_s = idle_s): 'at once', not 'eventually'."""
    limit = min(idle_s / 2.0, 10.0)
    for name, raw, want, must_close in framing_cases():
        s = connect(url)
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed while we were still sending
        st, data, closed = read_response(s, limit)
        if st != want:
            fail("%s: expected %d, got %s: %r" % (name, want, st, data[:300]))
        head, _, body = data.partition(b"\r\n\r\n")
        if want >= 400 and error_of(body) is None:
            fail("%s: the %d body is not an error object: %r" % (name, want, body[:200]))
        if body.count(b"HTTP/1.") or head.count(b"HTTP/1.") != 1:
            fail("%s: more than one response head: %r" % (name, data[:400]))
        # Every response carries X-Request-Id (docs/server.md), and Date
        # (RFC 9110 6.6.1), also those conn.c writes itself.
        for h in (b"x-request-id: ", b"date: "):
            if b"\r\n" + h not in head.lower():
                fail("%s: no %s header: %r" % (name, h.decode().strip(": "), head))
        if must_close:
            if not closed:
                _, more, closed = read_response(s, limit)
                if more:
                    fail("%s: a second response after the error: %r" % (name, more[:200]))
            if not closed:
                fail("%s: the connection stayed open after a framing error" % name)
            if b"\r\nconnection: close\r\n" not in head.lower() + b"\r\n":
                fail("%s: no Connection: close on the framing error" % name)
            if b"\r\nkeep-alive:" in head.lower():
                fail("%s: a Keep-Alive hint on a response that closes: %r" % (name, head))
        s.close()
        print("ok   %s -> %d" % (name, want))


# ---- slowloris ----------------------------------------------------------------


class Dripper(threading.Thread):
    """Sends a request head (or, with body=True, a head and then a body) one
    byte at a time every `every` seconds, until the daemon closes the
    connection or `stop` is set. Records when and how it ended."""

    def __init__(self, url, src, every, body, stop):
        super().__init__(daemon=True)
        self.url, self.src, self.every, self.body, self.stop = url, src, every, body, stop
        self.t0 = time.monotonic()
        self.closed_after = None  # seconds until the daemon closed it
        self.status = None  # a status line the daemon sent, if any
        self.refused = False  # closed before it could send anything

    def run(self):
        try:
            s = connect(self.url, self.src)
        except OSError:
            self.refused, self.closed_after = True, time.monotonic() - self.t0
            return
        if self.body:
            first = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
            rest = b"{" * 100000
        else:
            first = b"POST /v1/completions HTTP/1.1\r\n"
            rest = b"X-Drip: " + b"a" * 100000
        s.settimeout(0.05)
        try:
            s.sendall(first)
            for i in range(len(rest)):
                if self.stop.is_set():
                    break
                try:
                    c = s.recv(4096)
                    if c == b"":
                        break
                    m = re.match(rb"HTTP/1\.[01] (\d{3})", c)
                    if m:
                        self.status = int(m.group(1))
                        break
                except socket.timeout:
                    pass
                s.sendall(rest[i:i + 1])
                time.sleep(self.every)
            else:
                return
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        if not self.stop.is_set():
            self.closed_after = time.monotonic() - self.t0
        s.close()


def served_within(url, limit_s, src=None):
    """Sends a normal request, retrying while the daemon refuses the
    connection (closed at accept), until it is answered or limit_s passed.
    Returns (seconds, status)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        try:
            st, _, body = http(url, "POST", "/v1/completions", BODY, src=src, limit_s=limit_s)
            if st is not None:
                return time.monotonic() - t0, st
        except OSError:
            pass
        time.sleep(0.05)
    return time.monotonic() - t0, None


def metric(url, name):
    st, _, body = http(url, "GET", "/metrics")
    if st != 200:
        fail("/metrics: %s" % st)
    m = re.search(rb"(?m)^" + name.encode() + rb" (\d+)", body)
    if not m:
        fail("/metrics has no %s" % name)
    return int(m.group(1))


def cmd_slowloris(url, max_conn, header_ms, body_ms):
    """2x max_connections connections drip their headers (then, separately,
    their bodies): a normal request is still answered within the timeout,
    and every drip connection is closed by its deadline."""
    for body in (False, True):
        what = "body" if body else "header"
        t_out = (body_ms if body else header_ms) / 1000.0
        stop = threading.Event()
        drips = [Dripper(url, None, 0.2, body, stop) for _ in range(2 * max_conn)]
        for d in drips:
            d.start()
        time.sleep(0.3)  # every drip connection is open (or refused)
        took, st = served_within(url, t_out + 2 * SLACK_S)
        if st != 200:
            stop.set()
            fail("%s drip: a normal request got %s after %.1f s" % (what, st, took))
        # The bound: the normal request waited at most until the drip
        # connections' deadline passed (plus slack), not indefinitely.
        if took > t_out + SLACK_S:
            stop.set()
            fail("%s drip: a normal request waited %.1f s; the %s timeout is %.1f s"
                 % (what, took, what, t_out))
        for d in drips:
            d.join(t_out + SLACK_S)
        stop.set()
        alive = [d for d in drips if d.is_alive()]
        if alive:
            fail("%s drip: %d connection(s) still open after the %s timeout"
                 % (what, len(alive), what))
        if body and not any(d.status == 408 for d in drips):
            fail("body drip: no connection was answered 408")
        print("ok   %d %s-drip connections: normal request served after %.1f s (timeout %.1f s)"
              % (len(drips), what, took, t_out))


def cmd_body_timeout(url, body_ms):
    """A body that does not arrive within body_timeout_ms is answered 408
    with the JSON error shape, X-Request-Id and Date, and closed."""
    s = connect(url)
    try:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 50\r\n\r\nhello")
        st, data, closed = read_response(s, body_ms / 1000.0 + SLACK_S)
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if st != 408:
        fail("body timeout: expected 408, got %s: %r" % (st, data[:300]))
    e = error_of(body)
    if not e or e.get("code") != "request_timeout":
        fail("body timeout: not a request_timeout error: %r" % body[:300])
    for h in (b"x-request-id: req-", b"date: ", b"connection: close"):
        if b"\r\n" + h not in head.lower():
            fail("body timeout: no %r in %r" % (h, head))
    print("ok   body not complete within %d ms: 408 with X-Request-Id and Date" % body_ms)


def cmd_hangup(url, header_ms):
    """Clients that send part of a request (head or body) and close at once
    (the FIN with the data) free their slots within a second or so, far
    below header_timeout_ms: a burst of them must not fill the caps."""
    for what, data in (("head", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Ty"),
                       ("body", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                                b"{\"pro")):
        base = metric(url, "mllm_connections_open")
        for _ in range(20):
            s = connect(url)
            s.sendall(data)
            s.close()
        t0 = time.time()
        while metric(url, "mllm_connections_open") > base and time.time() - t0 < SLACK_S:
            time.sleep(0.05)
        left = metric(url, "mllm_connections_open") - base
        if left > 0:
            fail("partial %s then close: %d connection(s) still open after %.1f s "
                 "(header timeout %.0f s)" % (what, left, time.time() - t0, header_ms / 1e3))
        took, st = served_within(url, SLACK_S)
        if st != 200:
            fail("after the partial-%s hang-ups a normal request got %s" % (what, st))
        print("ok   20 partial-%s hang-ups freed in %.1f s (header timeout %.0f s)"
              % (what, time.time() - t0, header_ms / 1e3))


def cmd_caps(url, max_conn, per_client):
    """Past max_connections_per_client (one address) or max_connections
    (all), a connection is closed at once, and a client from another address
    is still served. Run with a header timeout far above the bounds here,
    so a close seen here is the refusal, not the timeout."""
    stop = threading.Event()
    held = [Dripper(url, "127.0.0.2", 0.5, False, stop) for _ in range(per_client)]
    for d in held:
        d.start()
    time.sleep(0.5)
    over = [Dripper(url, "127.0.0.2", 0.5, False, stop) for _ in range(per_client)]
    for d in over:
        d.start()
    for d in over:
        d.join(SLACK_S)
    if any(d.is_alive() or d.closed_after is None for d in over):
        stop.set()
        fail("connections over max_connections_per_client were not closed at once")
    took, st = served_within(url, SLACK_S, src="127.0.0.1")
    if st != 200:
        stop.set()
        fail("another address was not served while one address is capped: %s" % st)
    print("ok   %d connections over the per-client cap closed at once; other clients served"
          % len(over))
    # Fill max_connections from other addresses; one more is refused.
    rest = max_conn - per_client
    fill = [Dripper(url, "127.0.0.%d" % (10 + i), 0.5, False, stop) for i in range(rest)]
    for d in fill:
        d.start()
    time.sleep(0.5)
    extra = Dripper(url, "127.0.0.99", 0.5, False, stop)
    extra.start()
    extra.join(SLACK_S)
    stop.set()
    if extra.is_alive() or extra.closed_after is None:
        fail("a connection past max_connections was not closed at once")
    for d in held + fill:
        d.join(2.0)
    if metric(url, "mllm_connections_refused_total") < len(over) + 1:
        fail("mllm_connections_refused_total does not count the refusals")
    print("ok   a connection past max_connections is closed at once")


# ---- abandoned preparation ------------------------------------------------------


def big_body(model):
    """A ~1 MiB body of distinct pseudo-random words (fixed seed): repeated
    words would hit the tokenizer's one-piece cache and make preparation
    unrealistically cheap."""
    import random
    rnd = random.Random(17)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = []
    size = 0
    while size < 1040000:
        w = "".join(rnd.choice(letters) for _ in range(rnd.randint(6, 14)))
        words.append(w)
        size += len(w) + 1
    return json.dumps({"model": model, "prompt": " ".join(words)}).encode()


def post_raw(path, body):
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (path.encode(), len(body)) + body)


def answered(socks):
    """How many of the sockets have a response (or EOF) waiting, without
    waiting (a socket timeout would make recv wait for readability)."""
    readable, _, _ = select.select(socks, [], [], 0)
    return len(readable)


def cmd_abandon(url, model):
    """16 clients post a ~1 MiB /tokenize body and hang up while their
    requests wait for or are in preparation; their preparations must be
    cancelled and the next completion served."""
    big = big_body(model)
    # One body's preparation: the same body as a completion, which is
    # parsed and tokenized, then refused as longer than the context (a
    # small 400, so the figure is preparation, not a big reply's transfer).
    runs = []
    for _ in range(3):
        t0 = time.monotonic()
        st, _, body = http(url, "POST", "/v1/completions", big, limit_s=60)
        if st != 400 or (error_of(body) or {}).get("code") != "context_length_exceeded":
            fail("1 MiB completion: expected a 400 after tokenization, got %s %r"
                 % (st, body[:200]))
        runs.append(time.monotonic() - t0)
    prep = sorted(runs)[1]  # median of 3
    socks = []
    for _ in range(16):
        s = connect(url)
        s.sendall(post_raw("/tokenize", big))
        socks.append(s)
    # Hang up only once every request reached the prep threads (queued,
    # running or already answered): closing earlier lets libmicrohttpd drop
    # a half-read body itself, and then there is nothing to cancel.
    deadline = time.monotonic() + 60
    while answered(socks) + metric(url, "mllm_prep_requests") < 16:
        if time.monotonic() > deadline:
            fail("the 16 posts never all reached preparation")
        time.sleep(0.02)
    done_before = answered(socks)
    for s in socks:
        s.close()
    t0 = time.monotonic()
    st, _, body = http(url, "POST", "/v1/completions",
                       {"model": model, "prompt": "Once", "max_tokens": 1}, limit_s=120)
    delay = time.monotonic() - t0
    if st != 200:
        fail("completion after abandoned posts: %s %r" % (st, body[:200]))
    print("one 1 MiB preparation: %.3f s (median of %s); completion after 16 abandoned "
          "posts (%d answered before the hang-up): %.3f s"
          % (prep, ", ".join("%.3f" % r for r in runs), done_before, delay))
    # What was abandoned must be cancelled, not prepared for nobody: at
    # least half of the posts still unanswered at the hang-up (the one
    # being tokenized, and one more on a loaded machine, may finish before
    # the daemon sees the close). A daemon that prepares abandoned work
    # cancels none. (The delay above is printed, not asserted: timing on a
    # shared machine is not a test.)
    left = 16 - done_before
    cancelled = metric(url, "mllm_prep_cancelled_total")
    if cancelled * 2 < left:
        fail("only %d of the %d abandoned preparations were cancelled" % (cancelled, left))
    print("ok   abandoned preparations cancelled")


# ---- log injection -----------------------------------------------------------------


def cmd_inject(url, model):
    """Client-controlled text with newlines, control bytes and invalid UTF-8
    in the request target, a header and the model name."""
    raw = [
        b"GET /health\r\x1b[31m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /a\xff\xfe\xc3(FORGED HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /b%0a2026-01-01T00:00:00.000Z info  FORGED HTTP/1.1\r\nHost: x\r\n"
        b"Connection: close\r\n\r\n",
    ]
    for r in raw:
        s = connect(url)
        s.sendall(r)
        read_response(s, 5.0)
        s.close()
    for m in ["x\nFORGED line", "\xff\x00\x1b[2J", "a\\x0aFORGED"]:
        http(url, "POST", "/v1/completions", {"model": m, "prompt": "a", "max_tokens": 1})
    print("ok   injection attempts sent")


def _unread_stream(url, model, extra):
    """A streamed completions request of 128 long choices on a socket with
    a 4 KiB receive buffer, nothing read yet."""
    u = urllib.parse.urlparse(url)
    req = {"model": model, "prompt": ["Once"] * 16, "n": 8, "max_tokens": 500,
           "ignore_eos": True, "temperature": 1, "stream": True}
    req.update(extra)
    body = json.dumps(req).encode()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((u.hostname, u.port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    s.settimeout(60)
    return s


def _too_slow_then_rest(s, log_path):
    """Waits for the daemon's "client too slow" line, then reads the rest
    of the stream: (bytes unread at the cut, what was read now)."""
    t0 = time.time()
    while True:
        m = re.search(r"client too slow: (\d+) bytes unread", open(log_path).read())
        if m:
            break
        if time.time() - t0 > 120:
            fail("outbox never overflowed")
        time.sleep(0.2)
    out = bytearray()
    while not out.endswith(b"0\r\n\r\n"):
        d = s.recv(1 << 20)
        if not d:
            break
        out += d
    s.close()
    return int(m.group(1)), bytes(out)


def cmd_outbox_overflow(url, model, log_path):
    """A streaming client that reads nothing: once its 8 MiB outbox is full
    the stream ends, and what it reads then ends with the client_too_slow
    error event and [DONE] (the full outbox used to refuse those too, so
    the stream ended like a complete one)."""
    # Chunks of one short token, no logprobs: smaller than the error event,
    # so a full outbox has no room left for it by chance.
    s = _unread_stream(url, model, {})
    _, out = _too_slow_then_rest(s, log_path)
    tail = out[-2000:]
    if b'"client_too_slow"' not in tail or not tail.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n"):
        fail("overflowed stream ends without its error event and [DONE]: %r" % tail[-300:])
    print("outbox overflow: %d bytes, then client_too_slow and [DONE]" % len(out))


def cmd_outbox_read_front(url, model, log_path):
    """The outbox's limit is on bytes unread: a client that read 2.5 MB of
    a backlog and then stalls is cut at ~8 MiB unread, not at 8 MiB of
    read and unread together (read bytes left in front counted)."""
    s = _unread_stream(url, model, {"logprobs": 5})
    time.sleep(3)  # a backlog of several MB builds up
    got = 0
    while got < 2500000:  # then part of it is read at once
        got += len(s.recv(1 << 16))
    unread, out = _too_slow_then_rest(s, log_path)
    if unread < 8000000:
        fail("cut at %d bytes unread after %d read: read bytes counted against the limit"
             % (unread, got))
    if not out.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n"):
        fail("the cut stream does not end with [DONE]")
    print("outbox: %d bytes read, cut at %d unread" % (got, unread))


def cmd_cancel_cached(url, model, log_path):
    """A streamed request whose prompt came from the prefix cache, hung up
    after its first chunk: its log line (warn, "cancelled") still reports
    the cached tokens, as the same request run to the end does."""
    prompt = " ".join("word%d" % (i % 37) for i in range(25))
    st, _, body = http(url, "POST", "/v1/completions",
                       {"model": model, "prompt": prompt, "max_tokens": 1})
    if st != 200:
        fail("cancel-cached: the priming request got %s: %r" % (st, body[:200]))
    data = json.dumps({"model": model, "prompt": prompt, "max_tokens": 300, "stream": True,
                       "ignore_eos": True}).encode()
    s = connect(url)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(data) + data)
    got, t0 = b"", time.monotonic()
    while b"data: {" not in got and time.monotonic() - t0 < 30:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    m = re.search(rb"(?i)\r\nx-request-id: *([^\r]+)\r\n", got)
    if b"data: {" not in got or not m:
        fail("cancel-cached: no first chunk with a request id: %r" % got[:300])
    rid = m.group(1)
    s.close()
    t0 = time.monotonic()
    while time.monotonic() - t0 < SLACK_S * 5:
        for ln in open(log_path, "rb").read().split(b"\n"):
            if rid in ln and b" cancelled" in ln:
                c = re.search(rb" cached=(\d+)", ln)
                if not c or int(c.group(1)) < 16:
                    fail("cancel-cached: the cancelled request's line reports no cache hit: %r"
                         % ln)
                print("ok   a cancelled request's log line reports its cached prompt tokens (%s)"
                      % c.group(1).decode())
                return
        time.sleep(0.1)
    fail("cancel-cached: no cancelled log line for %r" % rid)


def check_log(path, fmt):
    data = open(path, "rb").read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    ts = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn |info |debug) ")
    for i, ln in enumerate(lines):
        try:
            text = ln.decode("utf-8")
        except UnicodeDecodeError:
            fail("log line %d is not valid UTF-8: %r" % (i + 1, ln[:200]))
        if any(ord(c) < 0x20 or ord(c) == 0x7f for c in text):
            fail("log line %d holds a control character: %r" % (i + 1, ln[:200]))
        if fmt == "json":
            try:
                o = json.loads(text)
            except ValueError:
                fail("log line %d is not one JSON object: %r" % (i + 1, ln[:200]))
            if not isinstance(o, dict) or not {"ts", "level", "msg"} <= set(o):
                fail("log line %d lacks ts/level/msg: %r" % (i + 1, ln[:200]))
            if "FORGED" in o["msg"] and not re.search(r"(\\x0a|\\\\x0a|%0a)", o["msg"]):
                # the forged text may appear, but only inside an escaped line
                pass
        elif not ts.match(ln):
            fail("log line %d does not start with a timestamp and level (forged?): %r"
                 % (i + 1, ln[:200]))
    if not any(b"FORGED" in ln for ln in lines):
        fail("the injection attempts were not logged at all (test is not exercising them)")
    print("ok   %d log lines, every one well-formed (%s)" % (len(lines), fmt))


# ---- error shapes --------------------------------------------------------------------


def expect_error(url, path, obj, status, param, code=None, contains=None, headers=None):
    st, head, body = http(url, "POST", path, obj, headers=headers)
    e = error_of(body)
    if st != status or e is None:
        fail("%s: expected %d, got %s %r" % (json.dumps(obj)[:80], status, st, body[:300]))
    if e.get("param") != param:
        fail("%s: param %r, expected %r" % (json.dumps(obj)[:80], e.get("param"), param))
    if code and e.get("code") != code:
        fail("%s: code %r, expected %r" % (json.dumps(obj)[:80], e.get("code"), code))
    if contains and contains not in e.get("message", ""):
        fail("%s: message %r lacks %r" % (json.dumps(obj)[:80], e.get("message"), contains))
    if "retry-after" in head.lower():
        fail("%s: a 400 must not carry Retry-After" % json.dumps(obj)[:80])


def cmd_shapes(url, model, max_running, max_queue):
    # 1e-320 is a double > 0 and 0 as a float; top_p 0 (in OpenAI's range)
    # keeps the one best token: the greedy answer, whatever the temperature.
    texts = []
    for extra in ('"temperature":0', '"temperature":1.5,"top_p":1e-320',
                  '"temperature":1.5,"top_p":0'):
        st, _, body = http(url, "POST", "/v1/completions",
                           '{"model":"%s","prompt":"a","max_tokens":4,%s}' % (model, extra))
        if st != 200:
            fail("top_p near 0 (%s): %s %r" % (extra, st, body[:300]))
        texts.append(json.loads(body)["choices"][0]["text"])
    if len(set(texts)) != 1:
        fail("top_p 0 is not the greedy answer: %r" % texts)
    expect_error(url, "/v1/completions", {"model": model, "prompt": "a", "top_p": -0.5},
                 400, "top_p", "decimal_below_min_value", "")
    expect_error(url, "/v1/completions",
                 {"model": model, "prompt": "a", "max_tokens": 1, "n": max_running + 1},
                 400, "n", "invalid_value", "max_running")
    expect_error(url, "/v1/completions",
                 {"model": model, "prompt": ["a"] * (max_queue + 1), "max_tokens": 1},
                 400, "prompt", "invalid_value", "max_queue")
    print("ok   top_p 0 is greedy; n > max_running, prompts > max_queue: 400 with param")


def cmd_kvpool(url, model):
    expect_error(url, "/v1/completions", {"model": model, "prompt": "Once", "max_tokens": 200},
                 400, "max_tokens", "kv_pool_exceeded", "KV pool")
    st, _, _ = http(url, "POST", "/v1/completions",
                    {"model": model, "prompt": "Once", "max_tokens": 8})
    if st != 200:
        fail("a request that fits the small KV pool: %s" % st)
    print("ok   a request larger than the KV pool: 400 naming the pool")


def cmd_metrics_auth(url, key, want_open):
    st, _, _ = http(url, "GET", "/metrics")
    if want_open and st != 200:
        fail("/metrics without a key: %s (metrics_auth = false)" % st)
    if not want_open:
        if st != 401:
            fail("/metrics without a key: %s (metrics_auth = true)" % st)
        st, _, _ = http(url, "GET", "/metrics", headers={"Authorization": "Bearer " + key})
        if st != 200:
            fail("/metrics with the key: %s" % st)
    st, _, _ = http(url, "GET", "/health")
    if st != 200:
        fail("/health must stay open: %s" % st)
    print("ok   metrics_auth = %s" % ("false" if want_open else "true"))


def cmd_keepalive(url, header_ms):
    """A kept-alive connection left unused is closed at header_timeout_ms
    after its answer, which told the client so (Keep-Alive: timeout, a
    second under it) and is counted as idle, not as timed out; a
    connection dripping a request head past it is counted as timed out."""
    idle0 = metric(url, "mllm_connections_idle_closed_total")
    late0 = metric(url, "mllm_connections_timed_out_total")
    s = connect(url)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    st, data, closed = read_response(s, 10)
    if st != 200 or closed:
        fail("keep-alive /health: %s closed=%s" % (st, closed))
    want = "timeout=%d" % (header_ms // 1000 - 1)
    m = re.search(rb"(?i)\r\nkeep-alive:\s*([^\r]*)", data)
    if not m or m.group(1).decode() != want:
        fail("keep-alive header %r, want %r" % (m and m.group(1), want))
    # HTTP/1.0 (closed after its answer): no keep-alive hint
    h = connect(url)
    h.sendall(b"GET /health HTTP/1.0\r\n\r\n")
    st10, data10, _ = read_response(h, 10)
    h.close()
    if st10 != 200 or re.search(rb"(?i)\r\nkeep-alive:", data10):
        fail("HTTP/1.0 answer: %s %r" % (st10, data10[:300]))
    idle0 = metric(url, "mllm_connections_idle_closed_total")
    d = connect(url)
    d.sendall(b"GET /health HTTP/1.1\r\nHo")
    # both closed by the deadline (plus the sweep's slack), no answer
    _, rest, closed = read_response(s, header_ms / 1000 + 5)
    if not closed or rest:
        fail("idle connection: closed=%s, got %r" % (closed, rest[:80]))
    _, rest, closed = read_response(d, 5)
    if not closed or rest:
        fail("dripping connection: closed=%s, got %r" % (closed, rest[:80]))
    s.close()
    d.close()
    idle, late = metric(url, "mllm_connections_idle_closed_total"), metric(
        url, "mllm_connections_timed_out_total")
    if idle - idle0 != 1 or late - late0 != 1:
        fail("idle closed +%d, timed out +%d; want +1 each" % (idle - idle0, late - late0))


def cmd_ids(url, model):
    """Request ids: 'req-' and 16 hex digits, all different; a client's own
    X-Request-Id is not echoed (ours is) but logged (check-ids); a client
    that hangs up mid-body is a 499 in the counts; a request that never got
    a token logs no time to first token."""
    seen = set()
    for _ in range(5):
        st, head, _ = http(url, "GET", "/health", headers={"X-Request-Id": "trace-abc-123"})
        m = re.search(r"(?i)\r\nx-request-id:\s*([^\r]*)", head)
        if st != 200 or not m or not re.fullmatch(r"req-[0-9a-f]{16}", m.group(1)):
            fail("/health: %s, X-Request-Id %r" % (st, m and m.group(1)))
        seen.add(m.group(1))
    if len(seen) != 5:
        fail("request ids repeat: %s" % sorted(seen))
    base = metric(url, 'mllm_requests_total{status="499"}') if b'status="499"' in http(
        url, "GET", "/metrics")[2] else 0
    # Three ways to hang up mid-body: a close after a pause, a close with
    # the data (the FIN in the same segment), a reset after a pause (a reset
    # with the data drops it unread: no request ever arrives).
    for k in (1, 2, 3):
        s = connect(url)
        if k == 3:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: mid-body-%d\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"pro" % k)
        if k != 2:
            time.sleep(0.3)
        s.close()
        time.sleep(0.3)
    t0 = time.time()
    while time.time() - t0 < SLACK_S:
        body = http(url, "GET", "/metrics")[2]
        if b'status="499"' in body and metric(url, 'mllm_requests_total{status="499"}') >= base + 3:
            break
        time.sleep(0.1)
    else:
        fail("hang-ups mid-body are not counted as 499 (%d of 3)" % (
            metric(url, 'mllm_requests_total{status="499"}') - base))
    st, _, _ = http(url, "POST", "/v1/completions",
                    {"model": model, "prompt": "x", "max_tokens": 4000},
                    headers={"X-Request-Id": "too-long-1"})
    if st != 400:
        fail("max_tokens past the context: %s" % st)
    print("ok   request ids unique; a mid-body hang-up counted as 499")


def cmd_check_ids(path):
    text = open(path, "rb").read().decode("utf-8", "replace")
    if "client_request_id=trace-abc-123" not in text:
        fail("the client's X-Request-Id is not in the log")
    for k in (1, 2, 3):
        ln = [l for l in text.splitlines() if "client_request_id=mid-body-%d" % k in l]
        if not ln or " 499 " not in ln[0]:
            fail("mid-body hang-up %d's log line: %r" % (k, ln))
    ln = [l for l in text.splitlines() if "client_request_id=too-long-1" in l]
    if not ln or "ttft_ms=-" not in ln[0]:
        fail("a request without a token logs a time to first token: %r" % ln)
    print("ok   the log has the client's ids, the 499, no ttft without a token")


def main():
    a = sys.argv[1:]
    if not a:
        fail("usage: harden_client.py CMD ARGS...")
    cmd = a[0]
    if cmd == "framing":
        cmd_framing(a[1], float(a[2]))
    elif cmd == "slowloris":
        cmd_slowloris(a[1], int(a[2]), int(a[3]), int(a[4]))
    elif cmd == "body-timeout":
        cmd_body_timeout(a[1], int(a[2]))
    elif cmd == "ids":
        cmd_ids(a[1], a[2])
    elif cmd == "check-ids":
        cmd_check_ids(a[1])
    elif cmd == "keepalive":
        cmd_keepalive(a[1], int(a[2]))
    elif cmd == "caps":
        cmd_caps(a[1], int(a[2]), int(a[3]))
    elif cmd == "hangup":
        cmd_hangup(a[1], int(a[2]))
    elif cmd == "abandon":
        cmd_abandon(a[1], a[2])
    elif cmd == "inject":
        cmd_inject(a[1], a[2])
    elif cmd == "outbox-overflow":
        cmd_outbox_overflow(a[1], a[2], a[3])
    elif cmd == "outbox-read-front":
        cmd_outbox_read_front(a[1], a[2], a[3])
    elif cmd == "cancel-cached":
        cmd_cancel_cached(a[1], a[2], a[3])
    elif cmd == "check-log":
        check_log(a[1], a[2])
    elif cmd == "shapes":
        cmd_shapes(a[1], a[2], int(a[3]), int(a[4]))
    elif cmd == "kvpool":
        cmd_kvpool(a[1], a[2])
    elif cmd == "metrics-auth":
        cmd_metrics_auth(a[1], a[2], a[3] == "open")
    else:
        fail("unknown command " + cmd)


if __name__ == "__main__":
    main()
