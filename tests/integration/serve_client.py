#!/usr/bin/env python3
"""serve_client.py — HTTP scenarios for the integration tests (stdlib only).

Each subcommand talks to a running daemon and exits 0 on success, 1 with a
message on failure. Expected values always come from the daemon itself (one
answer compared with another) or from the issue's contract (status codes,
error shape), never hard-coded model output.
"""
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse

FAILS = []


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def conn_for(url, timeout=60):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)


def request(url, method, path, body=None, headers=None, timeout=60):
    """Returns (status, headers dict lower-case, body bytes)."""
    c = conn_for(url, timeout)
    h = {"Content-Type": "application/json"}
    if headers:
        h.update(headers)
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    hd = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hd, data


def post(url, path, obj, **kw):
    st, hd, data = request(url, "POST", path, obj, **kw)
    return st, hd, data


def error_shape_ok(data):
    try:
        j = json.loads(data)
    except ValueError:
        return False
    e = j.get("error") if isinstance(j, dict) else None
    if not isinstance(e, dict):
        return False
    if set(e.keys()) != {"message", "type", "param", "code"}:
        return False
    if not isinstance(e["message"], str) or not e["message"]:
        return False
    if not isinstance(e["type"], str):
        return False
    return all(e[k] is None or isinstance(e[k], str) for k in ("param", "code"))


def sse_events(resp):
    """Yields the data payload of each SSE event (str), until EOF."""
    buf = b""
    while True:
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            for line in ev.split(b"\n"):
                if line.startswith(b"data: "):
                    yield line[6:].decode("utf-8")
    if buf.strip():
        raise AssertionError("stream ended inside an event: %r" % buf[:200])


def stream(url, path, obj, headers=None):
    """Returns (status, list of decoded JSON chunks, saw_done, errors)."""
    c = conn_for(url)
    h = {"Content-Type": "application/json"}
    if headers:
        h.update(headers)
    c.request("POST", path, body=json.dumps(obj).encode(), headers=h)
    r = c.getresponse()
    if r.status != 200:
        data = r.read()
        c.close()
        return r.status, [json.loads(data)], False, []
    chunks, errors, done = [], [], False
    for d in sse_events(r):
        if done:
            raise AssertionError("event after [DONE]: %r" % d)
        if d == "[DONE]":
            done = True
            continue
        j = json.loads(d)
        if "error" in j:
            errors.append(j)
        else:
            chunks.append(j)
    c.close()
    return 200, chunks, done, errors


def completion_text(chunks, chat):
    texts = {}
    finish = {}
    for ch in chunks:
        for c in ch.get("choices", []):
            i = c["index"]
            if chat:
                t = c.get("delta", {}).get("content") or ""
            else:
                t = c.get("text") or ""
            texts[i] = texts.get(i, "") + t
            if c.get("finish_reason"):
                finish[i] = c["finish_reason"]
    return texts, finish


# ---- subcommands ------------------------------------------------------------


def cmd_check_error(path, status):
    with open(path, "rb") as f:
        data = f.read()
    if not error_shape_ok(data):
        fail("bad error body for %s: %r" % (status, data[:300]))


PROMPTS = ["Once upon a time", "The little dog", "Lily and Ben went to the park", "One day"]


def cmd_greedy(url, model):
    """Streamed text == non-streamed text (greedy), usage, logprobs, echo, chat."""
    for p in PROMPTS:
        req = {"model": model, "prompt": p, "max_tokens": 24, "temperature": 0}
        st, _, data = post(url, "/v1/completions", req)
        if st != 200:
            fail("completion %r: %d %s" % (p, st, data[:200]))
        j = json.loads(data)
        text = j["choices"][0]["text"]
        u = j["usage"]
        if u["completion_tokens"] <= 0 or u["total_tokens"] != u["prompt_tokens"] + u["completion_tokens"]:
            fail("bad usage %r" % u)
        req2 = dict(req, stream=True, stream_options={"include_usage": True})
        st, chunks, done, errs = stream(url, "/v1/completions", req2)
        if st != 200 or not done or errs:
            fail("stream %r: status %d done %s errors %r" % (p, st, done, errs))
        texts, finish = completion_text(chunks, False)
        if texts.get(0, "") != text:
            fail("streamed %r != non-streamed %r" % (texts.get(0), text))
        if finish.get(0) != j["choices"][0]["finish_reason"]:
            fail("finish_reason differs: %r vs %r" % (finish, j["choices"][0]["finish_reason"]))
        usage_chunks = [c for c in chunks if c.get("usage")]
        keys = ("prompt_tokens", "completion_tokens", "total_tokens")  # cached may differ
        if not usage_chunks or any(usage_chunks[-1]["usage"][k] != u[k] for k in keys):
            fail("stream usage %r != %r" % (usage_chunks[-1:] , u))
    # Greedy is deterministic across calls.
    req = {"model": model, "prompt": PROMPTS[0], "max_tokens": 16, "temperature": 0}
    a = json.loads(post(url, "/v1/completions", req)[2])["choices"][0]["text"]
    b = json.loads(post(url, "/v1/completions", req)[2])["choices"][0]["text"]
    if a != b:
        fail("greedy not deterministic: %r vs %r" % (a, b))
    # Legacy logprobs shape.
    st, _, data = post(url, "/v1/completions", dict(req, logprobs=3, max_tokens=5))
    lp = json.loads(data)["choices"][0]["logprobs"]
    for k in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
        if not isinstance(lp.get(k), list) or len(lp[k]) != 5:
            fail("logprobs.%s: %r" % (k, lp.get(k)))
    if any(x > 0 for x in lp["token_logprobs"]):
        fail("positive logprob %r" % lp["token_logprobs"])
    # Prompt given as token ids gives the same text as the string prompt.
    st, _, data = post(url, "/tokenize", {"model": model, "prompt": PROMPTS[0]})
    if st != 200:
        fail("tokenize: %d %s" % (st, data[:200]))
    toks = json.loads(data)["tokens"]
    st, _, data = post(url, "/v1/completions", dict(req, prompt=toks))
    if st != 200 or json.loads(data)["choices"][0]["text"] != a:
        fail("token prompt differs: %d %s vs %r" % (st, data[:200], a))
    st, _, data = post(url, "/detokenize", {"model": model, "tokens": toks})
    if st != 200 or PROMPTS[0] not in json.loads(data)["prompt"]:
        fail("detokenize: %d %s" % (st, data[:200]))
    # Chat, streamed and not.
    creq = {"model": model, "messages": [{"role": "user", "content": "Tell me a story."}],
            "max_tokens": 16, "temperature": 0}
    st, _, data = post(url, "/v1/chat/completions", creq)
    if st != 200:
        fail("chat: %d %s" % (st, data[:300]))
    j = json.loads(data)
    msg = j["choices"][0]["message"]
    if msg["role"] != "assistant" or not isinstance(msg["content"], str):
        fail("chat message %r" % msg)
    st, chunks, done, errs = stream(url, "/v1/chat/completions", dict(creq, stream=True))
    if st != 200 or not done or errs:
        fail("chat stream: %d %s %r" % (st, done, errs))
    texts, _ = completion_text(chunks, True)
    if texts.get(0, "") != msg["content"]:
        fail("chat streamed %r != %r" % (texts.get(0), msg["content"]))
    if chunks[0]["choices"][0]["delta"].get("role") != "assistant":
        fail("first chat chunk lacks the role: %r" % chunks[0])
    print("greedy: %d prompts, stream == non-stream, logprobs, token prompts, chat ok" % len(PROMPTS))


def cmd_concurrent(url, model, n):
    n = int(n)
    reqs = [{"model": model, "prompt": PROMPTS[i % len(PROMPTS)] + " " * (i // len(PROMPTS)),
             "max_tokens": 20, "temperature": 0} for i in range(n)]
    seq = []
    for r in reqs:
        st, _, data = post(url, "/v1/completions", r)
        if st != 200:
            fail("sequential: %d %s" % (st, data[:200]))
        seq.append(json.loads(data)["choices"][0]["text"])
    par = [None] * n
    errs = []

    def run(i):
        try:
            if i % 2:
                st, chunks, done, e = stream(url, "/v1/completions", dict(reqs[i], stream=True))
                if st != 200 or not done or e:
                    errs.append("stream %d: %d %s %r" % (i, st, done, e))
                par[i] = completion_text(chunks, False)[0].get(0, "")
            else:
                st, _, data = post(url, "/v1/completions", reqs[i])
                if st != 200:
                    errs.append("req %d: %d %s" % (i, st, data[:200]))
                    return
                par[i] = json.loads(data)["choices"][0]["text"]
        except Exception as ex:  # noqa: BLE001 - any failure fails the test
            errs.append("req %d: %r" % (i, ex))

    th = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    if errs:
        fail("; ".join(errs))
    for i in range(n):
        if par[i] != seq[i]:
            fail("client %d: concurrent %r != sequential %r" % (i, par[i], seq[i]))
    print("concurrent: %d clients match their sequential completions" % n)


def metric(url, name):
    st, _, data = request(url, "GET", "/metrics")
    if st != 200:
        fail("/metrics: %d" % st)
    total = 0.0
    found = False
    for line in data.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    if not found:
        fail("metric %s missing" % name)
    return total


def cmd_disconnect(url, model):
    """A client that hangs up mid-stream (and one that waits on a
    non-streamed answer) leaves no KV blocks and no running sequence."""
    base = metric(url, "mllm_kv_blocks_used")
    if base != 0:
        fail("KV blocks in use before the test: %s (run with prefix_cache = false)" % base)
    for streaming in (True, False):
        u = urllib.parse.urlparse(url)
        s = socket.create_connection((u.hostname, u.port))
        body = json.dumps({"model": model, "prompt": "Once upon a time", "max_tokens": 400,
                           "temperature": 0, "stream": streaming,
                           "ignore_eos": True}).encode()
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        if streaming:
            got = b""
            while got.count(b"data: ") < 3:
                d = s.recv(4096)
                if not d:
                    fail("stream ended early")
                got += d
        else:
            deadline = time.time() + 5
            while metric(url, "mllm_running_sequences") < 1 and time.time() < deadline:
                time.sleep(0.01)
        s.close()
        deadline = time.time() + 5
        while time.time() < deadline:
            used = metric(url, "mllm_kv_blocks_used")
            running = metric(url, "mllm_running_sequences")
            if used == 0 and running == 0:
                break
            time.sleep(0.02)
        else:
            fail("after disconnect (stream=%s): kv_blocks_used %s, running %s" % (streaming, used, running))
    if metric(url, "mllm_requests_cancelled_total") < 2:
        fail("cancellations not counted")
    # Non-streamed requests abandoned before their answer: each is a 499
    # in mllm_requests_total, whichever side notices the hang-up first.
    def n499():
        st, _, data = request(url, "GET", "/metrics")
        for line in data.decode().splitlines():
            if line.startswith('mllm_requests_total{status="499"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0
    before, n = n499(), 8
    for _ in range(n):
        u = urllib.parse.urlparse(url)
        s = socket.create_connection((u.hostname, u.port))
        # Long enough (~1500 tokens) that no answer is ready when the
        # client hangs up.
        body = json.dumps({"model": model, "prompt": "Once upon a time", "max_tokens": 1500,
                           "ignore_eos": True}).encode()
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        time.sleep(0.05)
        s.close()
    deadline = time.time() + 10
    while n499() < before + n and time.time() < deadline:
        time.sleep(0.05)
    if n499() != before + n:
        fail("%d abandoned non-streamed requests counted as %d 499s" % (n, n499() - before))
    st, _, _ = request(url, "GET", "/health")
    if st != 200:
        fail("health after disconnects: %d" % st)
    print("disconnect: KV blocks freed after stream and non-stream hangups")


def bad_cases(model):
    big = "x" * (10 * 1024 * 1024 + 10)
    ok = {"model": model, "prompt": "Hi", "max_tokens": 2}
    C = []

    def add(name, body, want, ctype="application/json", path="/v1/completions"):
        C.append((name, body, want, ctype, path))

    add("malformed JSON", b'{"model": ', 400)
    add("trailing garbage", b'{"model":"%s","prompt":"a"} xx' % model.encode(), 400)
    add("not an object", b"[1,2,3]", 400)
    add("empty body", b"", 400)
    add("invalid UTF-8 in string", b'{"model":"%s","prompt":"\xff\xfe"}' % model.encode(), 400)
    add("NUL in body", b'{"model":"%s","prompt":"a\x00b"}' % model.encode(), 400)
    add("prompt wrong type", dict(ok, prompt=5), 400)
    add("prompt object", dict(ok, prompt={"a": 1}), 400)
    add("max_tokens string", dict(ok, max_tokens="10"), 400)
    add("max_tokens negative", dict(ok, max_tokens=-1), 400)
    add("max_tokens huge", dict(ok, max_tokens=10 ** 30), 400)
    add("max_tokens float", dict(ok, max_tokens=1.5), 400)
    add("temperature negative", dict(ok, temperature=-1), 400)
    add("temperature huge", dict(ok, temperature=1e300), 400)
    add("top_p negative", dict(ok, top_p=-0.1), 400)
    add("top_p > 1", dict(ok, top_p=1.5), 400)
    add("n zero", dict(ok, n=0), 400)
    add("n huge", dict(ok, n=100000), 400)
    add("logprobs 6", dict(ok, logprobs=6), 400)
    add("logprobs negative", dict(ok, logprobs=-1), 400)
    add("presence_penalty 3", dict(ok, presence_penalty=3), 400)
    add("frequency_penalty -3", dict(ok, frequency_penalty=-3), 400)
    add("logit_bias bad id", dict(ok, logit_bias={"999999999": 1}), 400)
    add("logit_bias bad value", dict(ok, logit_bias={"1": 1000}), 400)
    add("stop thousands", dict(ok, stop=["s%d" % i for i in range(5000)]), 400)
    add("stop wrong type", dict(ok, stop=5), 400)
    add("suffix", dict(ok, suffix="x"), 400)
    add("best_of > n", dict(ok, best_of=3), 400)
    add("token id out of range", dict(ok, prompt=[1, 99999999]), 400)
    add("token id negative", dict(ok, prompt=[-5]), 400)
    add("empty prompt array", dict(ok, prompt=[]), 400)
    add("prompt too long", dict(ok, prompt="hello " * 5000), 400)
    add("max_tokens past context", dict(ok, max_tokens=4096), 400)
    add("unknown model", dict(ok, model="no-such-model"), 404)
    add("stream wrong type", dict(ok, stream="yes"), 400)
    add("seed string", dict(ok, seed="x"), 400)
    add("deeply nested", b"[" * 100000 + b"]" * 100000, 400)
    add("10 MB body", big.encode(), 413)
    add("form content type", b"prompt=hi", 415, ctype="application/x-www-form-urlencoded")
    add("no content type", json.dumps(ok).encode(), 415, ctype=None)
    add("chat no messages", {"model": model}, 400, path="/v1/chat/completions")
    add("chat bad role", {"model": model, "messages": [{"role": "wizard", "content": "x"}]}, 400,
        path="/v1/chat/completions")
    add("chat content number", {"model": model, "messages": [{"role": "user", "content": 5}]}, 400,
        path="/v1/chat/completions")
    add("chat messages not list", {"model": model, "messages": "hi"}, 400, path="/v1/chat/completions")
    add("tokenize bad", {"model": model, "prompt": 5}, 400, path="/tokenize")
    add("detokenize bad id", {"model": model, "tokens": [-1]}, 400, path="/detokenize")
    return C


def cmd_badinput(url, model):
    n = 0
    for name, body, want, ctype, path in bad_cases(model):
        c = conn_for(url)
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        h = {"Content-Length": str(len(body))}
        if ctype:
            h["Content-Type"] = ctype
        try:
            c.request("POST", path, body=body, headers=h)
            r = c.getresponse()
            st, data = r.status, r.read()
        except (BrokenPipeError, ConnectionResetError) as ex:
            fail("%s: connection error %r" % (name, ex))
        c.close()
        if st != want:
            fail("%s: expected %d, got %d %s" % (name, want, st, data[:200]))
        if not error_shape_ok(data):
            fail("%s: bad error body %r" % (name, data[:200]))
        st2, _, _ = request(url, "GET", "/health")
        if st2 != 200:
            fail("%s: daemon unhealthy afterwards (%d)" % (name, st2))
        n += 1
    # Unknown fields are ignored, as OpenAI does.
    st, _, data = post(url, "/v1/completions", {"model": model, "prompt": "Hi", "max_tokens": 2,
                                                "temperature": 0, "frobnicate": {"x": [1]}})
    if st != 200:
        fail("unknown field refused: %d %s" % (st, data[:200]))
    print("badinput: %d bad requests answered with the right 4xx; daemon healthy" % n)


def cmd_sigterm(url, model, pid, mode):
    """Starts streams, sends SIGTERM once they are flowing, then checks how
    each ends. mode 'finish': every stream ends normally with [DONE].
    mode 'abort': streams end with an error event and [DONE]."""
    pid = int(pid)
    n = 3
    results = [None] * n
    started = threading.Barrier(n + 1)
    max_tokens = 40 if mode == "finish" else 1800

    def run(i):
        c = conn_for(url)
        body = {"model": model, "prompt": PROMPTS[i], "max_tokens": max_tokens, "temperature": 0,
                "stream": True, "ignore_eos": True}
        c.request("POST", "/v1/completions", body=json.dumps(body).encode(),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        chunks, errors, done, first = [], [], False, True
        try:
            for d in sse_events(r):
                if first:
                    first = False
                    started.wait()
                if d == "[DONE]":
                    done = True
                    continue
                j = json.loads(d)
                (errors if "error" in j else chunks).append(j)
        except Exception as ex:  # noqa: BLE001
            errors.append({"exception": repr(ex)})
        results[i] = (r.status, chunks, done, errors)

    th = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in th:
        t.start()
    started.wait()
    os.kill(pid, signal.SIGTERM)
    # New connections are refused once the daemon has quiesced.
    time.sleep(0.2)
    try:
        st, _, _ = request(url, "GET", "/health", timeout=2)
        refused = st == 503
    except OSError:
        refused = True
    for t in th:
        t.join()
    if not refused:
        fail("daemon still accepted and answered 200 after SIGTERM")
    for i, (st, chunks, done, errors) in enumerate(results):
        if st != 200 or not done:
            fail("stream %d: status %d, [DONE] %s, errors %r" % (i, st, done, errors))
        _, finish = completion_text(chunks, False)
        if mode == "finish":
            if errors or finish.get(0) not in ("length", "stop"):
                fail("stream %d did not finish cleanly: %r %r" % (i, finish, errors))
        else:
            if not errors or not error_shape_ok(json.dumps(errors[0]).encode()):
                fail("stream %d: expected an error event, got %r finish %r" % (i, errors, finish))
    print("sigterm(%s): %d streams ended as expected" % (mode, n))


def cmd_soak(url, seconds, threads):
    """Mixed load for `make soak`: completions, streams, chat, clients that
    hang up mid-stream and bad requests, from many threads. Fails on any
    5xx other than 503 (overload) and on a broken stream; prints figures."""
    seconds, threads = float(seconds), int(threads)
    stop_at = time.time() + seconds
    lock = threading.Lock()
    stats = {"ok": 0, "overloaded": 0, "bad": 0, "hangups": 0, "tokens": 0}
    errs = []

    def bump(k, n=1):
        with lock:
            stats[k] += n

    def worker(w):
        i = 0
        while time.time() < stop_at and not errs:
            i += 1
            kind = (w + i) % 5
            model = "st" if (w + i) % 2 else "tiny"
            try:
                if kind == 0:
                    st, _, data = post(url, "/v1/completions", {"model": model, "prompt": PROMPTS[i % 4],
                                                              "max_tokens": 32})
                    if st == 200:
                        bump("ok")
                        bump("tokens", json.loads(data)["usage"]["completion_tokens"])
                    elif st == 503:
                        bump("overloaded")
                    else:
                        errs.append("completion %d %s" % (st, data[:200]))
                elif kind == 1:
                    st, chunks, done, e = stream(url, "/v1/completions", {"model": model, "prompt": PROMPTS[i % 4],
                                                                         "max_tokens": 48, "stream": True})
                    if st == 200 and (not done or e):
                        errs.append("stream broken: done %s errors %r" % (done, e))
                    bump("ok" if st == 200 else "overloaded")
                elif kind == 2:
                    st, _, data = post(url, "/v1/chat/completions", {"model": model, "max_tokens": 24,
                                                                   "messages": [{"role": "user", "content": "Hi %d" % i}]})
                    if st not in (200, 503):
                        errs.append("chat %d %s" % (st, data[:200]))
                    bump("ok" if st == 200 else "overloaded")
                elif kind == 3:
                    u = urllib.parse.urlparse(url)
                    s = socket.create_connection((u.hostname, u.port))
                    body = json.dumps({"model": model, "prompt": "Once", "max_tokens": 200, "stream": True}).encode()
                    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                    s.recv(4096)
                    s.close()
                    bump("hangups")
                else:
                    st, _, data = post(url, "/v1/completions", {"model": model, "prompt": 5})
                    if st != 400:
                        errs.append("bad request got %d" % st)
                    bump("bad")
            except Exception as ex:  # noqa: BLE001
                errs.append("worker %d: %r" % (w, ex))

    t0 = time.time()
    th = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    dt = time.time() - t0
    if errs:
        fail("; ".join(errs[:5]))
    deadline = time.time() + 10
    while time.time() < deadline and (metric(url, "mllm_kv_blocks_used") or metric(url, "mllm_running_sequences")):
        time.sleep(0.05)
    used = metric(url, "mllm_kv_blocks_used")
    if used:
        fail("%s KV blocks still in use after the load" % used)
    print("soak: %.0f s, %d threads: %d ok (%.1f req/s), %d non-stream tokens, %d overloaded, %d hangups, %d bad"
          % (dt, threads, stats["ok"], stats["ok"] / dt, stats["tokens"], stats["overloaded"],
             stats["hangups"], stats["bad"]))


# ---- Preparation off the loop (test_serve_prep.sh) -------------------------

def big_body(model, path):
    """A body just under the default 1 MiB max_body_bytes whose prompt is
    ~500k tokens: it parses and tokenizes in full before the prompt-length
    check refuses it (400 context_length_exceeded), or, for /tokenize, is
    answered with every id."""
    prompt = "hello world " * 87000
    if path == "/tokenize":
        return json.dumps({"model": model, "prompt": prompt}).encode()
    return json.dumps({"model": model, "prompt": prompt, "max_tokens": 1}).encode()


def big_ok(path, st, data):
    if path == "/tokenize":
        return st == 200 and json.loads(data)["count"] > 100000
    return st == 400 and json.loads(data)["error"]["code"] == "context_length_exceeded"


def cmd_prep_offloop(url, model):
    """Big bodies (each parsed and tokenized for tens of ms) queue on the
    prep thread while one client keeps asking GET /health and GET /metrics
    on a keep-alive connection. The loop must answer those while a prep job
    is outstanding: some /metrics answer has to show mllm_prep_requests >= 1
    (the loop rendered it while a request was being prepared off-thread; a
    loop that tokenized itself could never report that). No clock is read:
    the assertion is about what was observed, and a round where every job
    happened to finish between two scrapes is simply repeated."""
    n_big = 8
    for attempt in range(5):
        results = [None] * n_big
        paths = ["/tokenize" if i % 4 == 3 else "/v1/completions" for i in range(n_big)]

        def run(i):
            try:
                c = conn_for(url, timeout=300)
                c.request("POST", paths[i], body=big_body(model, paths[i]),
                          headers={"Content-Type": "application/json"})
                r = c.getresponse()
                results[i] = (r.status, r.read())
                c.close()
            except Exception as ex:  # noqa: BLE001
                results[i] = (0, repr(ex).encode())

        th = [threading.Thread(target=run, args=(i,)) for i in range(n_big)]
        for t in th:
            t.start()
        c = conn_for(url, timeout=300)
        seen, health = 0, 0
        while any(t.is_alive() for t in th):
            c.request("GET", "/health")
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                fail("/health during preparation: %d %r" % (r.status, body))
            health += 1
            c.request("GET", "/metrics")
            r = c.getresponse()
            for line in r.read().decode().splitlines():
                if line.startswith("mllm_prep_requests "):
                    seen = max(seen, int(float(line.split()[1])))
        c.close()
        for t in th:
            t.join()
        for i, (st, data) in enumerate(results):
            if not big_ok(paths[i], st, data):
                fail("big request %d (%s): %d %r" % (i, paths[i], st, data[:200]))
        if seen >= 1:
            if metric(url, "mllm_prep_requests") != 0:
                fail("mllm_prep_requests not back to 0")
            print("prep: %d big requests prepared off the loop; %d /health answered meanwhile, "
                  "up to %d seen in preparation (round %d)" % (n_big, health, seen, attempt + 1))
            return
    fail("no /metrics answer ever saw a request in preparation")


def cmd_prep_hangup(url, model):
    """Clients that send a big body and hang up at once: their jobs come
    back to a request that is gone (or going). The daemon must survive it
    (sanitizer builds catch a use-after-free) and stay consistent."""
    u = urllib.parse.urlparse(url)
    for i in range(6):
        path = "/tokenize" if i % 2 else "/v1/completions"
        body = big_body(model, path)
        s = socket.create_connection((u.hostname, u.port))
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n" % (path, len(body))).encode() + body)
        if i % 3 == 0:
            s.shutdown(socket.SHUT_WR)
        s.close()
    # Every job drains: the gauge returns to 0 and the daemon still answers.
    for _ in range(600):
        if metric(url, "mllm_prep_requests") == 0:
            break
        time.sleep(0.05)
    else:
        fail("mllm_prep_requests never returned to 0 after hangups")
    st, _, data = post(url, "/v1/completions", {"model": model, "prompt": "Hi", "max_tokens": 2,
                                                "temperature": 0})
    if st != 200:
        fail("completion after hangups: %d %r" % (st, data[:200]))
    print("prep: 6 clients hung up during preparation; daemon healthy")


def cmd_prep_sigterm(url, model, pid):
    """SIGTERM while big requests wait for the prep thread: each client still
    gets an answer, either its normal one (400 context_length_exceeded) or
    the shutdown answer (503 shutting_down with Retry-After), never a
    dropped connection; the daemon exits 0 (checked by the script)."""
    pid = int(pid)
    n_big = 8
    results = [None] * n_big
    sent = threading.Barrier(n_big + 1)

    def run(i):
        try:
            c = conn_for(url, timeout=300)
            c.request("POST", "/v1/completions", body=big_body(model, "/v1/completions"),
                      headers={"Content-Type": "application/json"})
            sent.wait()
            r = c.getresponse()
            results[i] = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        except Exception as ex:  # noqa: BLE001
            results[i] = (0, {}, repr(ex).encode())

    th = [threading.Thread(target=run, args=(i,)) for i in range(n_big)]
    for t in th:
        t.start()
    sent.wait()
    # Signal once the loop reports a request in preparation (or all done).
    c = conn_for(url, timeout=60)
    while any(t.is_alive() for t in th):
        c.request("GET", "/metrics")
        r = c.getresponse()
        if any(l.startswith("mllm_prep_requests ") and float(l.split()[1]) >= 1
               for l in r.read().decode().splitlines()):
            break
    c.close()
    os.kill(pid, signal.SIGTERM)
    for t in th:
        t.join()
    n503 = 0
    for i, (st, hd, data) in enumerate(results):
        if st == 503:
            n503 += 1
            if json.loads(data)["error"]["code"] != "shutting_down" or "retry-after" not in hd:
                fail("request %d: 503 without shutting_down/Retry-After: %r" % (i, data[:200]))
        elif not big_ok("/v1/completions", st, data):
            fail("request %d after SIGTERM: %d %r" % (i, st, data[:200]))
    print("prep: SIGTERM with requests in preparation: %d answered 503 shutting_down, %d 400"
          % (n503, n_big - n503))


def cmd_sigterm_slow_answer(url, pid):
    """SIGTERM while a large /tokenize answer is still being read: the
    answer arrives whole before the daemon exits (only generations and
    requests in prep used to count as in flight, so it was cut)."""
    pid = int(pid)
    u = urllib.parse.urlparse(url)
    body = json.dumps({"prompt": "word " * 200000}).encode()
    s = socket.socket()
    # before connect, or the window is already set: the answer must not
    # fit in the kernel's buffers
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.connect((u.hostname, u.port))
    s.sendall(b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    s.settimeout(30)
    s.recv(1, socket.MSG_PEEK)  # the answer has begun
    time.sleep(0.5)  # and filled the kernel's buffers both ways
    os.kill(pid, signal.SIGTERM)
    out = b""
    while True:
        time.sleep(0.02)  # a slow reader: ~800 KB at 16 KB per 20 ms
        d = s.recv(16384)
        if not d:
            break
        out += d
    s.close()
    head, _, got = out.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        fail("tokenize: %r" % head[:200])
    want = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    if len(got) != want or not got.rstrip().endswith(b"}"):
        fail("SIGTERM cut the /tokenize answer: %d of %d bytes" % (len(got), want))
    print("sigterm: a %d-byte answer read slowly arrived whole" % want)


def main():
    if len(sys.argv) < 2:
        fail("usage: serve_client.py CMD ARGS")
    cmd, args = sys.argv[1], sys.argv[2:]
    try:
        {
            "check-error": cmd_check_error,
            "greedy": cmd_greedy,
            "concurrent": cmd_concurrent,
            "disconnect": cmd_disconnect,
            "badinput": cmd_badinput,
            "sigterm": cmd_sigterm,
            "sigterm-slow-answer": cmd_sigterm_slow_answer,
            "soak": cmd_soak,
            "prep-offloop": cmd_prep_offloop,
            "prep-hangup": cmd_prep_hangup,
            "prep-sigterm": cmd_prep_sigterm,
        }[cmd](*args)
    except AssertionError as ex:
        fail(str(ex))


if __name__ == "__main__":
    main()
