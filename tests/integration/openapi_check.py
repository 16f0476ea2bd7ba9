#!/usr/bin/env python3
"""openapi_check.py - validates a running mobilellmd against openapi.yaml.

Usage:
  openapi_check.py BASE_URL [--api-key KEY] [--model ID] [--spec openapi.yaml]
  openapi_check.py --validate SCHEMA [FILE] [SCHEMA FILE]...
                                              validate JSON documents (or JSON Lines)
  openapi_check.py --selftest                 check the parser and validator

It calls every endpoint the spec describes (successes and the documented
errors), checks that each status code and content type is one the spec lists
for the operation, and validates every JSON body, and every SSE event of a
stream, against the spec's schema (a small OpenAPI 3.0 schema validator of
its own: type, nullable, enum, properties, required, additionalProperties,
items, min/max, minItems/maxItems, pattern, allOf/oneOf/anyOf, $ref). It
also checks a few semantics the schema cannot say: streamed greedy text
equals the non-streamed text, usage adds up, choices are indexed
prompt-major, [DONE] ends every stream.

Only the Python standard library is needed; PyYAML is used when present,
else a parser for the YAML subset openapi.yaml is written in. Prints one
line per check and "openapi_check: N passed, M failed"; exits 1 on failure.
"""
import json
import os
import re
import sys
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SPEC = os.path.join(HERE, "..", "..", "openapi.yaml")

# ---- a YAML subset: block maps/sequences, flow sequences, quoted and folded
# scalars. Enough for openapi.yaml; --selftest compares it with PyYAML.


def _scalar(s):
    s = s.strip()
    if s == "" or s in ("~", "null"):
        return None
    if s[0] == "'" and s[-1] == "'":
        return s[1:-1].replace("''", "'")
    if s[0] == '"' and s[-1] == '"':
        return json.loads(s)
    if s[0] == "[" and s[-1] == "]":
        inner = s[1:-1].strip()
        return [_scalar(x) for x in inner.split(",")] if inner else []
    if s in ("true", "True"):
        return True
    if s in ("false", "False"):
        return False
    if re.fullmatch(r"[-+]?\d+", s):
        return int(s)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", s):
        return float(s)
    return s


def _split_key(content):
    """'key: rest' -> (key, rest); rest None when the line is 'key:'."""
    if content[0] in "'\"":
        q = content[0]
        end = content.index(q, 1)
        key = _scalar(content[: end + 1])
        tail = content[end + 1:]
    else:
        m = re.match(r"([^:]+?)\s*:(\s|$)", content)
        if not m:
            return None, None
        key = m.group(1)
        tail = content[m.end(1):]
    tail = tail.lstrip()
    if not tail.startswith(":"):
        return None, None
    rest = tail[1:].strip()
    return key, (rest if rest else None)


def yaml_subset_load(text):
    lines = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            lines.append(None)
            continue
        ind = len(raw) - len(raw.lstrip(" "))
        lines.append((ind, raw.strip()))

    def nxt(i):
        while i < len(lines) and lines[i] is None:
            i += 1
        return i

    def block_scalar(i, ind, style):
        parts = []
        i += 1
        while i < len(lines) and (lines[i] is None or lines[i][0] > ind):
            parts.append("" if lines[i] is None else lines[i][1])
            i += 1
        while parts and parts[-1] == "":
            parts.pop()
        if style.startswith(">"):
            out = " ".join(p for p in parts)
        else:
            out = "\n".join(parts)
        if not style.endswith("-"):
            out += "\n"
        return out, i

    def value_after_key(i, ind, rest):
        if rest is None:
            j = nxt(i + 1)
            if j < len(lines) and lines[j][0] > ind:
                return parse(j, lines[j][0])
            if j < len(lines) and lines[j][0] == ind and lines[j][1].startswith("-"):
                return parse(j, ind)
            return None, i + 1
        if rest in (">", ">-", "|", "|-"):
            return block_scalar(i, ind, rest)
        return _scalar(rest), i + 1

    def parse_map(i, ind, first=None):
        out = {}
        while True:
            i = nxt(i)
            if first is not None:
                content, first = first, None
            elif i < len(lines) and lines[i][0] == ind and not lines[i][1].startswith("- "):
                content = lines[i][1]
            else:
                return out, i
            key, rest = _split_key(content)
            if key is None:
                raise ValueError("yaml: cannot parse line %d: %r" % (i + 1, content))
            out[str(key)], i = value_after_key(i, ind, rest)

    def parse_seq(i, ind):
        out = []
        while True:
            i = nxt(i)
            if i >= len(lines) or lines[i][0] != ind or not lines[i][1].startswith("-"):
                return out, i
            content = lines[i][1][1:].strip()
            if not content:
                j = nxt(i + 1)
                v, i = parse(j, lines[j][0])
            elif _split_key(content)[0] is not None and content[0] not in "[{":
                v, i = parse_map(i, ind + 2, first=content)
            else:
                v, i = _scalar(content), i + 1
            out.append(v)

    def parse(i, ind):
        i = nxt(i)
        if lines[i][1].startswith("- ") or lines[i][1] == "-":
            return parse_seq(i, ind)
        return parse_map(i, ind)

    v, _ = parse(nxt(0), lines[nxt(0)][0])
    return v


def load_spec(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        import yaml  # type: ignore

        return yaml.safe_load(text)
    except ImportError:
        return yaml_subset_load(text)


# ---- the schema validator ----------------------------------------------------


class Validator:
    def __init__(self, spec):
        self.spec = spec

    def resolve(self, s):
        seen = 0
        while isinstance(s, dict) and "$ref" in s:
            ref = s["$ref"]
            if not ref.startswith("#/"):
                raise ValueError("only local $ref: " + ref)
            node = self.spec
            for part in ref[2:].split("/"):
                node = node[part]
            s = node
            seen += 1
            if seen > 50:
                raise ValueError("$ref loop")
        return s

    def schema(self, name):
        return self.spec["components"]["schemas"][name]

    def errors(self, schema, v, path="$"):
        errs = []
        self._check(schema, v, path, errs)
        return errs

    def _check(self, s, v, path, errs):
        s = self.resolve(s)
        if v is None:
            if s.get("nullable") or s.get("type") == "null":
                return
            if "type" in s or any(k in s for k in ("allOf", "oneOf", "anyOf", "properties", "enum")):
                errs.append("%s: null is not allowed" % path)
            return
        for sub in s.get("allOf", []):
            self._check(sub, v, path, errs)
        if "oneOf" in s:
            ok = [sub for sub in s["oneOf"] if not self.errors(sub, v, path)]
            if len(ok) != 1:
                detail = ""
                if not ok:
                    detail = "; ".join(self.errors(s["oneOf"][0], v, path)[:3])
                errs.append("%s: matches %d of oneOf (want 1) %s" % (path, len(ok), detail))
        if "anyOf" in s:
            if not any(not self.errors(sub, v, path) for sub in s["anyOf"]):
                errs.append("%s: matches none of anyOf" % path)
        t = s.get("type")
        if t is not None and not self._type_ok(t, v):
            errs.append("%s: %s is not of type %s" % (path, json.dumps(v)[:60], t))
            return
        if "enum" in s and v not in s["enum"]:
            errs.append("%s: %r not in %r" % (path, v, s["enum"]))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if "minimum" in s:
                if s.get("exclusiveMinimum") is True and not v > s["minimum"]:
                    errs.append("%s: %r <= %r" % (path, v, s["minimum"]))
                elif v < s["minimum"]:
                    errs.append("%s: %r < %r" % (path, v, s["minimum"]))
            if "maximum" in s and v > s["maximum"]:
                errs.append("%s: %r > %r" % (path, v, s["maximum"]))
        if isinstance(v, str) and "pattern" in s and not re.search(s["pattern"], v):
            errs.append("%s: %r does not match %s" % (path, v, s["pattern"]))
        if isinstance(v, list):
            if "minItems" in s and len(v) < s["minItems"]:
                errs.append("%s: fewer than %d items" % (path, s["minItems"]))
            if "maxItems" in s and len(v) > s["maxItems"]:
                errs.append("%s: more than %d items" % (path, s["maxItems"]))
            if "items" in s:
                for i, item in enumerate(v):
                    self._check(s["items"], item, "%s[%d]" % (path, i), errs)
        if isinstance(v, dict):
            props = s.get("properties", {})
            for r in s.get("required", []):
                if r not in v:
                    errs.append("%s: missing required '%s'" % (path, r))
            for k, item in v.items():
                if k in props:
                    self._check(props[k], item, "%s.%s" % (path, k), errs)
                else:
                    ap = s.get("additionalProperties", True)
                    if ap is False:
                        errs.append("%s: unexpected property '%s'" % (path, k))
                    elif isinstance(ap, dict):
                        self._check(ap, item, "%s.%s" % (path, k), errs)

    @staticmethod
    def _type_ok(t, v):
        if t == "integer":
            return isinstance(v, int) and not isinstance(v, bool)
        if t == "number":
            return isinstance(v, (int, float)) and not isinstance(v, bool)
        if t == "string":
            return isinstance(v, str)
        if t == "boolean":
            return isinstance(v, bool)
        if t == "array":
            return isinstance(v, list)
        if t == "object":
            return isinstance(v, dict)
        if t == "null":
            return v is None
        return False


# ---- talking to the daemon ------------------------------------------------------


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def ctype(self):
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def sse(self, names=None):
        """The data payloads of an SSE body, in order ('[DONE]' kept). An
        event is one data line, optionally after one event line (the
        Responses API names its events); names, when a list, gets each
        event's name (None without one)."""
        text = self.body.decode("utf-8")
        if not text.endswith("\n\n"):
            raise ValueError("stream does not end with a blank line")
        out = []
        for ev in text.split("\n\n")[:-1]:
            lines = [ln for ln in ev.split("\n") if ln and not ln.startswith(":")]
            data = [ln[5:].lstrip(" ") for ln in lines if ln.startswith("data:")]
            event = [ln[6:].lstrip(" ") for ln in lines if ln.startswith("event:")]
            if len(data) != 1 or len(event) > 1 or len(lines) != 1 + len(event):
                raise ValueError("event is not one data line: %r" % ev[:80])
            out.append(data[0])
            if names is not None:
                names.append(event[0] if event else None)
        return out


def http(base, method, path, body=None, headers=None, timeout=120):
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


class Checker:
    def __init__(self, spec, base, key, model):
        self.v = Validator(spec)
        self.spec = spec
        self.base = base
        self.key = key
        self.model = model
        self.passed = 0
        self.failed = 0

    def report(self, name, errs):
        if errs:
            self.failed += 1
            print("FAIL %s" % name)
            for e in errs[:8]:
                print("     %s" % e)
        else:
            self.passed += 1
            print("ok   %s" % name)

    def auth(self):
        return {"Authorization": "Bearer " + self.key} if self.key else {}

    def operation(self, method, tpath):
        return self.spec["paths"][tpath][method.lower()]

    def call(self, name, method, tpath, path=None, body=None, want=200, headers=None,
             auth=True, check=None, request_schema=True, spec_method=None):
        """One request; validates it against the operation (method
        spec_method, when a wrong method is sent on purpose). Returns the
        response (or None when the request itself failed)."""
        errs = []
        hdrs = dict(self.auth() if auth else {})
        hdrs.update(headers or {})
        op = self.operation(spec_method or method, tpath)
        if request_schema and isinstance(body, dict) and "requestBody" in op:
            rs = op["requestBody"]["content"]["application/json"]["schema"]
            errs += ["request " + e for e in self.v.errors(rs, body)]
        try:
            r = http(self.base, method, path or tpath, body, hdrs)
        except Exception as e:  # connection refused, timeout
            self.report(name, ["request failed: %s" % e])
            return None
        errs += self.validate_response(op, r, want)
        if check and not errs:
            try:
                errs += check(r) or []
            except Exception as e:
                errs.append("check raised %r" % e)
        self.report(name, errs)
        return r

    def validate_response(self, op, r, want):
        errs = []
        if r.status != want:
            errs.append("status %d, want %d: %s" % (r.status, want, r.body[:200]))
        resp = op["responses"].get(str(r.status))
        if resp is None:
            return errs + ["status %d is not documented for this operation" % r.status]
        resp = self.v.resolve(resp)
        if r.status in (429, 503) and "Retry-After" in resp.get("headers", {}):
            if not r.headers.get("Retry-After"):
                errs.append("no Retry-After header")
        if r.status == 405 and not r.headers.get("Allow"):
            errs.append("no Allow header")
        content = resp.get("content", {})
        if r.ctype not in content:
            return errs + ["content type %r not in %r" % (r.ctype, sorted(content))]
        media = content[r.ctype]
        if r.ctype == "application/json":
            try:
                doc = r.json()
            except ValueError as e:
                return errs + ["body is not JSON: %s" % e]
            errs += self.v.errors(media["schema"], doc)
        elif r.ctype == "text/event-stream":
            names = []
            try:
                events = r.sse(names)
            except (ValueError, UnicodeDecodeError) as e:
                return errs + [str(e)]
            if media.get("x-sse-done", True):
                if not events or events[-1] != "[DONE]":
                    errs.append("stream does not end with data: [DONE]")
                events = events[:-1]
            if "[DONE]" in events:
                errs.append("[DONE] where none belongs")
            for i, ev in enumerate(events):
                try:
                    doc = json.loads(ev)
                except ValueError:
                    errs.append("event %d is not JSON" % i)
                    continue
                errs += self.v.errors(media["x-sse-event"], doc, "$event[%d]" % i)
                if names[i] is not None and names[i] != doc.get("type"):
                    errs.append("event %d: named %r, type %r" % (i, names[i], doc.get("type")))
        return errs

    # ---- the checks ------------------------------------------------------------

    def run(self):
        C, CH = "/v1/completions", "/v1/chat/completions"
        self.call("GET /health", "GET", "/health", auth=False)
        self.call("GET /readyz", "GET", "/readyz", auth=False)
        self.call("GET /livez", "GET", "/livez", auth=False)
        self.call("GET /metrics", "GET", "/metrics", auth=False,
                  check=lambda r: [] if b"# TYPE" in r.body else ["no # TYPE lines"])
        r = self.call("GET /v1/models", "GET", "/v1/models")
        if self.model is None and r is not None and r.status == 200:
            data = r.json().get("data") or []
            self.model = data[0]["id"] if data else None
        if self.model is None:
            self.report("a model to test with", ["no model listed"])
            return
        m = self.model
        self.call("GET /v1/models/{model}", "GET", "/v1/models/{model}",
                  "/v1/models/" + m, check=lambda r: [] if r.json()["id"] == m else ["wrong id"])
        self.call("GET /v1/models/{unknown} -> 404", "GET", "/v1/models/{model}",
                  "/v1/models/no-such-model", want=404)

        # Completions: greedy, streamed vs not, logprobs and echo, prompt forms.
        base = {"model": m, "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}
        r1 = self.call("completion", "POST", C, body=base, check=self.usage_adds_up)
        r2 = self.call("completion stream + include_usage", "POST", C,
                       body=dict(base, stream=True, stream_options={"include_usage": True}),
                       check=lambda r: self.stream_matches(r, r1, "text"))
        self.call("completion logprobs + echo", "POST", C,
                  body=dict(base, logprobs=3, echo=True), check=self.legacy_logprobs)
        self.call("completion stream logprobs", "POST", C,
                  body=dict(base, logprobs=2, stream=True))
        tok = self.call("POST /tokenize prompt", "POST", "/tokenize",
                        body={"model": m, "prompt": "Once upon a time"},
                        check=lambda r: [] if r.json()["count"] == len(r.json()["tokens"])
                        else ["count != len(tokens)"])
        ids = tok.json()["tokens"] if tok is not None and tok.status == 200 else [1]
        self.call("completion prompts x n (prompt-major)", "POST", C,
                  body=dict(base, prompt=[ids, ids[:2]], n=2, temperature=0.8, seed=7,
                            max_tokens=3),
                  check=lambda r: [] if [c["index"] for c in r.json()["choices"]] == [0, 1, 2, 3]
                  else ["choice indexes not 0..3"])
        self.call("completion string prompts + stop", "POST", C,
                  body=dict(base, prompt=["a", "b"], stop=["\n\n", "zz"], max_tokens=2))
        self.call("POST /detokenize", "POST", "/detokenize", body={"model": m, "tokens": ids})
        self.call("POST /tokenize messages", "POST", "/tokenize",
                  body={"model": m, "messages": [{"role": "user", "content": "Hi"}]})

        # Chat.
        chat = {"model": m, "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Tell me a story."}],
                "max_tokens": 8, "temperature": 0}
        c1 = self.call("chat", "POST", CH, body=chat, check=self.usage_adds_up)
        self.call("chat stream + include_usage", "POST", CH,
                  body=dict(chat, stream=True, stream_options={"include_usage": True}),
                  check=lambda r: self.stream_matches(r, c1, "content"))
        self.call("chat logprobs + top_logprobs", "POST", CH,
                  body=dict(chat, logprobs=True, top_logprobs=2, max_completion_tokens=4))
        self.call("chat stream logprobs, n=2", "POST", CH,
                  body=dict(chat, logprobs=True, top_logprobs=1, n=2, stream=True))

        # Structured outputs and a forced tool call (shapes only; the SDK
        # tests validate the content).
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}},
                  "required": ["ok"], "additionalProperties": False}
        self.call("completion response_format json_schema", "POST", C,
                  body=dict(base, prompt="x", max_tokens=40, temperature=0,
                            response_format={"type": "json_schema",
                                             "json_schema": {"name": "t", "schema": schema}}))
        tool_chat = {"model": m, "messages": [{"role": "user", "content": "Hi"}],
                     "tools": [{"type": "function",
                                "function": {"name": "f", "parameters": schema}}],
                     "tool_choice": "required", "max_tokens": 120, "temperature": 0}
        self.call("chat forced tool call", "POST", CH, body=tool_chat)
        self.call("chat forced tool call, streamed", "POST", CH, body=dict(tool_chat, stream=True))

        # The Responses API: create (items, instructions, text.format,
        # a forced function call), stream, a continuation, retrieve,
        # input_items, delete, and its 404s.
        R = "/v1/responses"
        rbase = {"model": m, "input": "Tell me a story.", "instructions": "Be brief.",
                 "max_output_tokens": 8, "temperature": 0}
        rr = self.call("responses", "POST", R, body=rbase, check=self.response_usage)
        if rr is not None and rr.status == 200:
            billed = rr.json()["usage"]["input_tokens"]
            self.call("responses input_tokens", "POST", R + "/input_tokens", body=rbase,
                      check=lambda r: [] if r.json()["input_tokens"] == billed
                      else ["count %d, billed %d" % (r.json()["input_tokens"], billed)])
        self.call("responses stream", "POST", R, body=dict(rbase, stream=True),
                  check=lambda r: self.response_stream_matches(r, rr))
        self.call("responses items + json_schema", "POST", R,
                  body={"model": m, "max_output_tokens": 40, "temperature": 0,
                        "input": [{"role": "developer", "content": "JSON."},
                                  {"type": "message", "role": "user",
                                   "content": [{"type": "input_text", "text": "Hi"}]}],
                        "text": {"format": {"type": "json_schema", "name": "t",
                                            "schema": schema}}},
                  check=lambda r: [] if json.loads(r.json()["output_text"]).get("ok") in
                  (True, False) else ["output_text is not the schema's JSON"])
        rtools = {"model": m, "input": "Hi", "tool_choice": "required", "max_output_tokens": 120,
                  "temperature": 0,
                  "tools": [{"type": "function", "name": "f", "parameters": schema}]}
        rc = self.call("responses forced function call", "POST", R, body=rtools,
                       check=lambda r: [] if r.json()["output"][0]["type"] == "function_call"
                       else ["no function_call item"])
        self.call("responses forced function call, streamed", "POST", R,
                  body=dict(rtools, stream=True))
        if rr is not None and rr.status == 200:
            rid = rr.json()["id"]
            self.call("responses previous_response_id", "POST", R,
                      body=dict(rbase, input="And then?", previous_response_id=rid),
                      check=lambda r: [] if r.json()["usage"]["input_tokens_details"][
                          "cached_tokens"] > 0 else ["nothing reused from the cache"])
            self.call("GET /v1/responses/{id}", "GET", R + "/{response_id}", R + "/" + rid,
                      check=lambda r: [] if r.json() == rr.json() else ["differs from create"])
            self.call("GET /v1/responses/{id}/input_items", "GET",
                      R + "/{response_id}/input_items",
                      R + "/" + rid + "/input_items?order=asc&limit=5")
            self.call("input_items bad limit -> 400", "GET", R + "/{response_id}/input_items",
                      R + "/" + rid + "/input_items?limit=0", want=400,
                      check=self.error_param("limit"))
            self.call("cancel a finished response -> 400", "POST", R + "/{response_id}/cancel",
                      R + "/" + rid + "/cancel", want=400)
            self.call("DELETE /v1/responses/{id}", "DELETE", R + "/{response_id}", R + "/" + rid)
            self.call("GET deleted -> 404", "GET", R + "/{response_id}", R + "/" + rid, want=404)
            self.call("previous_response_id deleted -> 400", "POST", R,
                      body=dict(rbase, previous_response_id=rid), want=400,
                      check=self.error_param("previous_response_id"))
        if rc is not None and rc.status == 200:
            self.call("DELETE unknown -> 404", "DELETE", R + "/{response_id}",
                      R + "/resp_unknown", want=404)

        # Errors.
        bad = [
            ("responses image input", R,
             {"model": m, "input": [{"role": "user", "content": [{"type": "input_image"}]}]},
             400, "input[0].content[0]"),
            ("responses input_tokens without input", R + "/input_tokens", {"model": m}, 400,
             "input"),
            ("responses built-in tool", R,
             {"model": m, "input": "x", "tools": [{"type": "web_search"}]}, 400, "tools[0].type"),
            ("bad JSON", C, b"{\"prompt\":", 400, None),
            ("invalid UTF-8", C, b"{\"prompt\":\"\xff\"}", 400, None),
            ("wrong type", C, {"model": m, "prompt": "x", "max_tokens": "8"}, 400, "max_tokens"),
            ("out of range", C, {"model": m, "prompt": "x", "temperature": 3}, 400, "temperature"),
            ("huge number", C, {"model": m, "prompt": "x", "max_tokens": 10**30}, 400, None),
            ("suffix refused", C, {"model": m, "prompt": "x", "suffix": "y"}, 400, "suffix"),
            ("best_of > n", C, {"model": m, "prompt": "x", "best_of": 3}, 400, "best_of"),
            ("5 stop strings", C, {"model": m, "prompt": "x", "stop": list("abcde")}, 400, "stop"),
            ("unknown model", C, {"model": "no-such-model", "prompt": "x"}, 404, "model"),
            ("unsupported schema keyword", C,
             {"model": m, "prompt": "x", "response_format": {
                 "type": "json_schema",
                 "json_schema": {"name": "t", "schema": {"type": "array", "uniqueItems": True}}}},
             400, "response_format"),
            ("chat bad role", CH, {"model": m, "messages": [{"role": "robot", "content": "x"}]},
             400, "messages[0].role"),
            ("context exceeded", C, {"model": m, "prompt": "x", "max_tokens": 4096}, 400, None),
            ("detokenize bad id", "/detokenize", {"model": m, "tokens": [-1]}, 400, "tokens"),
        ]
        for name, path, body, want, param in bad:
            self.call("error: " + name, "POST", path, body=body, want=want,
                      request_schema=False, check=self.error_param(param))
        self.call("error: unknown route", "GET", "/v1/models/{model}", "/v1/nothing-here",
                  want=404)
        self.call("error: wrong method", "GET", C, want=405, spec_method="POST")
        self.call("error: wrong content type", "POST", C, body=b"prompt=x",
                  headers={"Content-Type": "text/plain"}, want=415)
        if self.key:
            self.call("error: missing API key", "POST", C, body=base, auth=False, want=401)
            self.call("error: wrong API key", "POST", C, body=base, auth=False,
                      headers={"Authorization": "Bearer wrong-" + self.key}, want=401)

    # ---- semantic checks ------------------------------------------------------------

    @staticmethod
    def usage_adds_up(r):
        u = r.json()["usage"]
        if u["total_tokens"] != u["prompt_tokens"] + u["completion_tokens"]:
            return ["usage does not add up: %r" % u]
        return []

    @staticmethod
    def response_usage(r):
        u = r.json()["usage"]
        if u["total_tokens"] != u["input_tokens"] + u["output_tokens"]:
            return ["usage does not add up: %r" % u]
        return []

    @staticmethod
    def response_stream_matches(r, plain):
        """Greedy: the deltas join to the non-streamed text; sequence numbers
        count from 0; the last event carries the final response."""
        if plain is None or plain.status != 200:
            return ["no non-streamed response to compare with"]
        events = [json.loads(e) for e in r.sse()]
        errs = []
        if [e["sequence_number"] for e in events] != list(range(len(events))):
            errs.append("sequence numbers are not 0, 1, 2, ...")
        text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        if text != plain.json()["output_text"]:
            errs.append("stream %r != %r" % (text, plain.json()["output_text"]))
        last = events[-1] if events else {}
        if last.get("type") not in ("response.completed", "response.incomplete"):
            errs.append("last event %r" % last.get("type"))
        elif last["response"]["output_text"] != text:
            errs.append("final response text differs from the deltas")
        return errs

    @staticmethod
    def error_param(param):
        def check(r):
            got = r.json()["error"]["param"]
            return [] if param is None or got == param else ["param %r, want %r" % (got, param)]
        return check

    @staticmethod
    def legacy_logprobs(r):
        errs = []
        for c in r.json()["choices"]:
            lp = c["logprobs"]
            n = len(lp["tokens"])
            if not (len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(lp["text_offset"]) == n):
                errs.append("logprobs arrays differ in length")
            if n and lp["token_logprobs"][0] is not None:
                errs.append("echo: the first prompt token's logprob is not null")
        return errs

    @staticmethod
    def stream_matches(r, plain, field):
        """Greedy: the reassembled stream equals the non-streamed response."""
        if plain is None or plain.status != 200:
            return ["no non-streamed response to compare with"]
        events = [json.loads(e) for e in r.sse()[:-1]]
        text, finish, usage = {}, {}, None
        for ev in events:
            if "error" in ev:
                return ["error event: %r" % ev["error"]]
            if ev.get("usage"):
                usage = ev["usage"]
            for c in ev["choices"]:
                piece = c["text"] if field == "text" else c["delta"].get("content", "")
                text[c["index"]] = text.get(c["index"], "") + (piece or "")
                if c["finish_reason"]:
                    finish[c["index"]] = c["finish_reason"]
        errs = []
        body = plain.json()
        for c in body["choices"]:
            want = c["text"] if field == "text" else c["message"]["content"]
            if text.get(c["index"]) != want:
                errs.append("choice %d: stream %r != %r" % (c["index"], text.get(c["index"]), want))
            if finish.get(c["index"]) != c["finish_reason"]:
                errs.append("choice %d: finish %r != %r" % (c["index"], finish.get(c["index"]),
                                                            c["finish_reason"]))
        if usage is None:
            errs.append("include_usage: no usage chunk")
        elif usage["completion_tokens"] != body["usage"]["completion_tokens"]:
            errs.append("usage differs: %r vs %r" % (usage, body["usage"]))
        if events and events[-1]["choices"] != []:
            errs.append("the usage chunk is not last or has choices")
        return errs


# ---- self-test ---------------------------------------------------------------------


def selftest(spec_path):
    with open(spec_path, encoding="utf-8") as f:
        text = f.read()
    mine = yaml_subset_load(text)
    fails = 0
    try:
        import yaml  # type: ignore

        if yaml.safe_load(text) != mine:
            print("FAIL yaml subset parser differs from PyYAML")
            fails += 1
        else:
            print("ok   yaml subset parser == PyYAML")
    except ImportError:
        print("skip PyYAML not installed")
    v = Validator(mine)
    good_err = {"error": {"message": "m", "type": "invalid_request_error", "param": None, "code": None}}
    cases = [
        ("Error", good_err, True),
        ("Error", {"error": {"message": "m", "type": "nope", "param": None, "code": None}}, False),
        ("Error", {"error": {"message": "m", "type": "server_error", "param": None}}, False),
        ("Usage", {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3,
                   "prompt_tokens_details": {"cached_tokens": 0}}, True),
        ("Usage", {"prompt_tokens": -1, "completion_tokens": 2, "total_tokens": 3,
                   "prompt_tokens_details": {"cached_tokens": 0}}, False),
        ("CompletionRequest", {"prompt": [[1, 2], [3]]}, True),
        ("CompletionRequest", {"prompt": []}, False),
        ("CompletionRequest", {"prompt": "x", "top_p": -0.5}, False),
        ("CompletionRequest", {"prompt": "x", "top_p": 0}, True),
        ("CompletionRequest", {"prompt": "x", "stop": ["a"] * 5}, False),
        ("ChatCompletionChunk", {"id": "chatcmpl-1", "object": "chat.completion.chunk",
                                 "created": 1, "model": "m", "choices": [
                                     {"index": 0, "delta": {}, "logprobs": None,
                                      "finish_reason": "stop"}]}, True),
        ("ChatCompletionChunk", {"id": "cmpl-1", "object": "chat.completion.chunk",
                                 "created": 1, "model": "m", "choices": []}, False),
    ]
    for name, doc, ok in cases:
        errs = v.errors(v.schema(name), doc)
        if bool(errs) == ok:
            print("FAIL validator %s %r: %s" % (name, doc, errs))
            fails += 1
    print("selftest: %d failures" % fails)
    return 1 if fails else 0


def main(argv):
    spec_path = DEFAULT_SPEC
    args = list(argv[1:])
    if "--spec" in args:
        i = args.index("--spec")
        spec_path = args[i + 1]
        del args[i:i + 2]
    if args[:1] == ["--selftest"]:
        return selftest(spec_path)
    spec = load_spec(spec_path)
    if args[:1] == ["--validate"]:
        # SCHEMA [FILE] [SCHEMA FILE]...: each file one JSON document or
        # JSON Lines (one document per line); stdin when FILE is absent.
        v = Validator(spec)
        pairs = args[1:]
        if len(pairs) == 1:
            pairs.append(None)
        bad = 0
        for name, path in zip(pairs[0::2], pairs[1::2]):
            text = (open(path, encoding="utf-8") if path else sys.stdin).read()
            try:
                docs = [json.loads(text)]
            except ValueError:
                docs = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
            errs = []
            for i, doc in enumerate(docs):
                errs += v.errors(v.schema(name), doc, "$doc[%d]" % i)
            for e in errs:
                print(e)
            print("validate %s: %d documents, %d errors" % (name, len(docs), len(errs)))
            bad += 1 if errs or not docs else 0
        return 1 if bad else 0
    if not args or args[0].startswith("-"):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    base = args[0]
    key = os.environ.get("MLLMD_API_KEY")
    model = None
    i = 1
    while i < len(args):
        if args[i] == "--api-key":
            key = args[i + 1]
            i += 2
        elif args[i] == "--model":
            model = args[i + 1]
            i += 2
        else:
            print("openapi_check: unknown argument %r" % args[i], file=sys.stderr)
            return 2
    c = Checker(spec, base, key, model)
    c.run()
    print("openapi_check: %d passed, %d failed" % (c.passed, c.failed))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
