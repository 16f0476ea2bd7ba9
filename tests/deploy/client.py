#!/usr/bin/env python3
"""client.py — the deploy test's HTTP side (stdlib only), run against the
balancer that docker-compose.yml publishes.

  load URL STOPFILE OUT [CLIENTS]  steady non-streamed completions from
      CLIENTS threads (default 4) until STOPFILE exists (at most 300 s);
      writes one line per request to OUT and exits 1 on any failure or on a
      request slower than MAX_S (3 s).
  affinity URL METRICS_URLS...     8 chat sessions of 4 turns each with
      X-Session-Id: every turn of a session is served by one replica
      (X-Backend-Server), and the replicas' /metrics count prefix-cache hits
      for the later turns (cached_tokens in usage agrees).
  stream URL METRICS_URLS...       the first event of a streamed completion
      arrives while the replica is still generating it (not buffered).
  responses URL                    8 Responses API conversations of 4 turns
      linked by previous_response_id, without X-Session-Id: the balancer's
      stick table (X-Response-Affinity) keeps each on the replica that stores
      it, so no turn is refused (previous_response_not_found), and GET
      /v1/responses/{id} finds it too.
  spread URL N                     requests without a session id reach N
      distinct replicas (waits up to 60 s for new ones to become ready).
"""
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

MODEL = "mobilellm-demo"
MAX_S = 3.0


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def conn(url, timeout=30):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)


def post(url, path, body, headers=None, timeout=30):
    c = conn(url, timeout)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c.request("POST", path, body=json.dumps(body).encode(), headers=h)
    r = c.getresponse()
    data = r.read()
    hd = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hd, data


def get(url, timeout=10):
    u = urllib.parse.urlparse(url)
    c = conn(url, timeout)
    c.request("GET", u.path or "/")
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def cmd_load(url, stopfile, out, clients="4"):
    n = int(clients)
    lock = threading.Lock()
    rows = []
    deadline = time.time() + 300

    def run(i):
        k = 0
        while not os.path.exists(stopfile) and time.time() < deadline:
            k += 1
            body = {"model": MODEL, "prompt": "Client %d asks question %d:" % (i, k),
                    "max_tokens": 8, "temperature": 0}
            # Half the clients pin a session (hash routing), half do not.
            hd = {"X-Session-Id": "load-%d" % i} if i % 2 == 0 else {}
            t0 = time.time()
            try:
                st, h, data = post(url, "/v1/completions", body, hd, timeout=30)
                ok = st == 200 and json.loads(data)["choices"][0]["text"] is not None
                why = "" if ok else "%d %s" % (st, data[:120])
                srv = h.get("x-backend-server", "?")
            except Exception as ex:  # noqa: BLE001
                ok, why, srv = False, repr(ex), "?"
            dt = time.time() - t0
            with lock:
                rows.append((t0, dt, ok, srv, why))

    th = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    bad = [r for r in rows if not r[2]]
    slow = [r for r in rows if r[1] > MAX_S]
    with open(out, "w") as f:
        for t0, dt, ok, srv, why in rows:
            f.write("%.3f %.3f %s %s %s\n" % (t0, dt, "ok" if ok else "FAILED", srv, why))
    worst = max((r[1] for r in rows), default=0.0)
    print("load: %d requests from %d clients, %d failed, slowest %.2f s, replicas seen %s"
          % (len(rows), n, len(bad), worst, sorted({r[3] for r in rows})))
    if len(rows) < 20:
        fail("too few requests (%d) to say anything" % len(rows))
    if bad:
        fail("%d failed requests, e.g. %s" % (len(bad), bad[0][4]))
    if slow:
        fail("%d requests slower than %.0f s (slowest %.2f s)" % (len(slow), MAX_S, worst))


def metric_sum(urls, name):
    total = 0.0
    for u in urls:
        st, data = get(u)
        if st != 200:
            fail("%s: %d" % (u, st))
        for line in data.decode().splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.split()[-1])
    return total


def cmd_affinity(url, *metrics_urls):
    hits0 = metric_sum(metrics_urls, "mllm_prefix_cache_hits_total")
    sessions, turns = 8, 4
    cached_later, prompt_later = 0, 0
    for s in range(sessions):
        sid = "affinity-%d-%d" % (os.getpid(), s)
        msgs = [{"role": "system", "content": "You are session %d, a patient storyteller." % s}]
        servers = set()
        for t in range(turns):
            msgs.append({"role": "user", "content": "Tell me part %d of the story about ship %d."
                         % (t, s)})
            st, hd, data = post(url, "/v1/chat/completions",
                                {"model": MODEL, "messages": msgs, "max_tokens": 16,
                                 "temperature": 0}, {"X-Session-Id": sid})
            if st != 200:
                fail("session %d turn %d: %d %s" % (s, t, st, data[:200]))
            j = json.loads(data)
            msgs.append({"role": "assistant", "content": j["choices"][0]["message"]["content"]})
            servers.add(hd.get("x-backend-server", "?"))
            if t > 0:
                u = j["usage"]
                prompt_later += u["prompt_tokens"]
                cached_later += (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        if len(servers) != 1 or "?" in servers:
            fail("session %d served by %s, want one replica" % (s, sorted(servers)))
    hits1 = metric_sum(metrics_urls, "mllm_prefix_cache_hits_total")
    share = cached_later / prompt_later if prompt_later else 0.0
    print("affinity: %d/%d sessions sticky; later turns: %d of %d prompt tokens from the "
          "prefix cache (%.0f%%); prefix-cache hits in /metrics +%d"
          % (sessions, sessions, cached_later, prompt_later, 100 * share, hits1 - hits0))
    if hits1 - hits0 < sessions * (turns - 1):
        fail("replicas' /metrics count %d prefix-cache hits, want >= %d"
             % (hits1 - hits0, sessions * (turns - 1)))
    if share < 0.5:
        fail("only %.0f%% of later-turn prompt tokens came from the cache" % (100 * share))


def cmd_responses(url):
    convs, turns = 8, 4
    for c in range(convs):
        prev, servers = None, set()
        for t in range(turns):
            body = {"model": MODEL, "input": "Part %d of story %d, please." % (t, c),
                    "max_output_tokens": 8, "temperature": 0}
            if prev:
                body["previous_response_id"] = prev
            st, hd, data = post(url, "/v1/responses", body)
            if st != 200:
                fail("conversation %d turn %d: %d %s" % (c, t, st, data[:200]))
            prev = json.loads(data)["id"]
            if hd.get("x-response-affinity") != prev[5:21]:
                fail("X-Response-Affinity %r for %s" % (hd.get("x-response-affinity"), prev))
            servers.add(hd.get("x-backend-server", "?"))
        if len(servers) != 1 or "?" in servers:
            fail("conversation %d served by %s, want one replica" % (c, sorted(servers)))
        st, _ = get(url.rstrip("/") + "/v1/responses/" + prev)
        if st != 200:
            fail("GET /v1/responses/%s through the balancer: %d" % (prev, st))
    print("responses: %d conversations of %d turns, each on one replica" % (convs, turns))


def cmd_stream(url, *metrics_urls):
    """Causal, not timed: the first event must reach the client through the
    balancer while the replica is still generating (its /metrics shows the
    sequence running). A proxy that buffers the response delivers nothing
    before the generation is over."""
    c = conn(url, 120)
    body = {"model": MODEL, "prompt": "The old ship", "max_tokens": 400, "ignore_eos": True,
            "stream": True, "temperature": 0}
    c.request("POST", "/v1/completions", body=json.dumps(body).encode(),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        fail("stream: %d" % r.status)
    buf = b""
    while b"data: " not in buf:
        piece = r.read1(65536)
        if not piece:
            fail("stream ended before its first event")
        buf += piece
    running = metric_sum(metrics_urls, "mllm_running_sequences")
    while True:
        piece = r.read1(65536)
        if not piece:
            break
        buf += piece
    c.close()
    events = buf.count(b"data: ")
    print("stream: first event received while %d sequence(s) ran on the replicas; %d events"
          % (running, events))
    if not buf.rstrip().endswith(b"data: [DONE]"):
        fail("stream did not end with [DONE]")
    if running < 1:
        fail("the first event arrived after the generation ended: buffered by the balancer?")


def cmd_spread(url, n):
    want = int(n)
    seen = set()
    deadline = time.time() + 60
    while time.time() < deadline:
        for _ in range(4 * want):
            st, hd, _ = post(url, "/v1/completions",
                             {"model": MODEL, "prompt": "Hi", "max_tokens": 1})
            if st == 200:
                seen.add(hd.get("x-backend-server", "?"))
        if len(seen) >= want:
            print("spread: requests reached %d replicas %s" % (len(seen), sorted(seen)))
            return
        time.sleep(1)
    fail("requests reached %d replicas %s, want %d" % (len(seen), sorted(seen), want))


if __name__ == "__main__":
    cmds = {"load": cmd_load, "affinity": cmd_affinity, "stream": cmd_stream,
            "spread": cmd_spread, "responses": cmd_responses}
    if len(sys.argv) < 3 or sys.argv[1] not in cmds:
        print(__doc__)
        sys.exit(2)
    cmds[sys.argv[1]](*sys.argv[2:])
