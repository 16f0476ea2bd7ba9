/*
 * tools.c — tool calls without a model-specific syntax: `tools`,
 * `tool_choice` and `parallel_tool_calls` (parse), tool messages in the
 * conversation (rendered as plain text until templates render them), the
 * grammar that forces a call for tool_choice "required" or a named
 * function, and the tool_calls shape of the response, streamed as OpenAI
 * streams it (docs/api.md, "Tool calls").
 *
 * A forced call is generated as one JSON object, {"name": N, "arguments":
 * A}, N one of the allowed names and A valid under that tool's parameters
 * schema; the renderer cuts the text into the id/name delta and the
 * arguments fragments. "auto" has no known tool-call syntax for these
 * models: it generates plain text (/v1/models says so in capabilities).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

#define API_MAX_TOOLS 128

static bool name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

static json_t *tool_named(json_t *tools, const char *name)
{
	size_t i;
	json_t *t;
	json_array_foreach(tools, i, t)
	{
		const char *n =
		    json_string_value(json_object_get(json_object_get(t, "function"), "name"));
		if (n && strcmp(n, name) == 0)
			return t;
	}
	return NULL;
}

int api__parse_tools(api_request *req, json_t *root, api_error *e)
{
	json_t *tools = json_object_get(root, "tools"), *tc = json_object_get(root, "tool_choice");
	json_t *ptc = json_object_get(root, "parallel_tool_calls"), *t;
	size_t i;
	char param[64];
	if (ptc && !json_is_null(ptc) && !json_is_boolean(ptc))
		return api_error_set(e, 400, "parallel_tool_calls", "invalid_type",
		                     "'parallel_tool_calls' must be a boolean.");
	if (tools && !json_is_null(tools)) {
		if (!json_is_array(tools))
			return api_error_set(e, 400, "tools", "invalid_type",
			                     "'tools' must be an array of function tools.");
		if (json_array_size(tools) > API_MAX_TOOLS)
			return api_error_set(e, 400, "tools", "invalid_value",
			                     "At most %d tools per request, got %zu.",
			                     API_MAX_TOOLS, json_array_size(tools));
		json_array_foreach(tools, i, t)
		{
			json_t *f = json_object_get(t, "function"), *p;
			const char *type = json_string_value(json_object_get(t, "type"));
			json_t *name = json_object_get(f, "name");
			snprintf(param, sizeof param, "tools[%zu]", i);
			if (!json_is_object(t) || !type || strcmp(type, "function") != 0 ||
			    !json_is_object(f))
				return api_error_set(e, 400, param, "invalid_value",
				                     "'%s' must be {\"type\": \"function\", "
				                     "\"function\": {...}}.",
				                     param);
			snprintf(param, sizeof param, "tools[%zu].function.name", i);
			if (!json_is_string(name) ||
			    !name_ok(json_string_value(name), json_string_length(name)))
				return api_error_set(
				    e, 400, param, "invalid_value",
				    "'%s' must be 1-64 characters of a-z, A-Z, 0-9, "
				    "'_' and '-'.",
				    param);
			if (tool_named(tools, json_string_value(name)) != t)
				return api_error_set(e, 400, param, "invalid_value",
				                     "Tool name '%s' is used twice.",
				                     json_string_value(name));
			p = json_object_get(f, "parameters");
			snprintf(param, sizeof param, "tools[%zu].function.parameters", i);
			if (p && !json_is_null(p) && !json_is_object(p))
				return api_error_set(e, 400, param, "invalid_type",
				                     "'%s' must be a JSON Schema object.", param);
		}
		if (json_array_size(tools) > 0)
			req->tools = json_incref(tools);
	}
	req->tool_choice = req->tools ? API__TC_AUTO : API__TC_NONE;
	if (!tc || json_is_null(tc))
		return 0;
	if (json_is_string(tc)) {
		const char *s = json_string_value(tc);
		if (strcmp(s, "none") == 0)
			req->tool_choice = API__TC_NONE;
		else if (strcmp(s, "auto") == 0)
			req->tool_choice = req->tools ? API__TC_AUTO : API__TC_NONE;
		else if (strcmp(s, "required") == 0)
			req->tool_choice = API__TC_REQUIRED;
		else
			return api_error_set(
			    e, 400, "tool_choice", "invalid_value",
			    "'tool_choice' must be 'none', 'auto', 'required' or "
			    "{\"type\": \"function\", \"function\": {\"name\": ...}}.");
	} else if (json_is_object(tc)) {
		const char *name =
		    json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
		const char *type = json_string_value(json_object_get(tc, "type"));
		if (!type || strcmp(type, "function") != 0 || !name)
			return api_error_set(e, 400, "tool_choice", "invalid_value",
			                     "'tool_choice' must be {\"type\": \"function\", "
			                     "\"function\": {\"name\": ...}}.");
		if (!req->tools || !tool_named(req->tools, name))
			return api_error_set(e, 400, "tool_choice", "invalid_value",
			                     "'tool_choice' names '%s', which is not in 'tools'.",
			                     name);
		req->tool_choice = API__TC_NAMED;
		req->tool_name = xstrdup(name);
	} else {
		return api_error_set(e, 400, "tool_choice", "invalid_type",
		                     "'tool_choice' must be a string or an object.");
	}
	if (req->tool_choice == API__TC_REQUIRED && !req->tools)
		return api_error_set(e, 400, "tool_choice", "invalid_value",
		                     "'tool_choice' is 'required' but 'tools' is empty.");
	if (api__tool_forced(req) && req->rf_kind != API__RF_NONE)
		return api_error_set(e, 400, "tool_choice", "invalid_value",
		                     "A forced 'tool_choice' cannot be combined with a JSON "
		                     "'response_format'.");
	return 0;
}

bool api__tool_forced(const api_request *req)
{
	return req->tool_choice == API__TC_REQUIRED || req->tool_choice == API__TC_NAMED;
}

/* ---- messages ----------------------------------------------------------------- */

int api__tool_message(json_t *m, size_t i, api__message *out, api_error *e)
{
	const char *role = json_string_value(json_object_get(m, "role"));
	json_t *calls = json_object_get(m, "tool_calls"), *content = json_object_get(m, "content");
	char param[64];
	mllm_buf b;
	int rc = 0;
	if (!role)
		return 0;
	if (strcmp(role, "tool") == 0) {
		const char *id = json_string_value(json_object_get(m, "tool_call_id"));
		snprintf(param, sizeof param, "messages[%zu].content", i);
		if (!json_is_string(content))
			return api_error_set(e, 400, param, "invalid_type",
			                     "'%s' must be a string (the tool's result).", param);
		/* Rendered as a user turn: "Tool result (id): content". */
		mllm_buf_init(&b, SIZE_MAX / 2);
		rc = mllm_buf_appendf(&b, "Tool result (%s): ", id ? id : "call");
		if (rc == 0)
			rc = mllm_buf_append(&b, json_string_value(content),
			                     json_string_length(content));
		out->role = API_ROLE_USER;
		goto done;
	}
	if (strcmp(role, "assistant") != 0 || !calls || json_is_null(calls))
		return 0;
	snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
	if (!json_is_array(calls))
		return api_error_set(e, 400, param, "invalid_type", "'%s' must be an array.",
		                     param);
	/* Rendered as the assistant's text: its content (if any), then each
	 * call as the JSON object a forced call generates, one per line. */
	mllm_buf_init(&b, SIZE_MAX / 2);
	if (json_is_string(content))
		rc = mllm_buf_append(&b, json_string_value(content), json_string_length(content));
	for (size_t k = 0; k < json_array_size(calls) && rc == 0; k++) {
		json_t *f = json_object_get(json_array_get(calls, k), "function");
		json_t *name = json_object_get(f, "name"), *args = json_object_get(f, "arguments");
		json_t *call;
		char *s;
		/* arguments: a JSON string as OpenAI sends it, or an object
		 * (what Hugging Face chat templates and vLLM also accept). */
		if (!json_is_string(name) || !(json_is_string(args) || json_is_object(args))) {
			mllm_buf_free(&b);
			snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu]", i, k);
			return api_error_set(e, 400, param, "invalid_value",
			                     "'%s' must have function.name and function.arguments "
			                     "(a JSON string or an object).",
			                     param);
		}
		call = json_object();
		json_object_set(call, "name", name);
		{
			json_t *parsed = json_is_object(args)
			                     ? json_incref(args)
			                     : json_loads(json_string_value(args), 0, NULL);
			json_object_set_new(call, "arguments", parsed ? parsed : json_copy(args));
		}
		s = json_dumps(call, JSON_COMPACT);
		json_decref(call);
		if (b.len > 0)
			rc = mllm_buf_append(&b, "\n", 1);
		if (rc == 0 && s)
			rc = mllm_buf_append(&b, s, strlen(s));
		free(s);
	}
	out->role = API_ROLE_ASSISTANT;
done:
	if (rc) {
		mllm_buf_free(&b);
		return api_error_set(e, 503, NULL, "overloaded", "Out of memory.");
	}
	out->len = b.len;
	out->content = b.data ? mllm_buf_take(&b, NULL) : xstrdup("");
	mllm_buf_free(&b);
	return 1;
}

/* The tool list a forced call is prompted with: a system turn prepended
 * to the conversation. */
static int tools_preamble(api_request *req, api_error *e)
{
	mllm_buf b;
	size_t i;
	json_t *t;
	int rc;
	api__message *msgs;
	mllm_buf_init(&b, SIZE_MAX / 2);
	rc = mllm_buf_appendf(&b, "You can call these tools:\n");
	json_array_foreach(req->tools, i, t)
	{
		json_t *f = json_object_get(t, "function");
		const char *name = json_string_value(json_object_get(f, "name"));
		json_t *o;
		char *s;
		if (req->tool_name && strcmp(name, req->tool_name) != 0)
			continue;
		o = json_pack("{s:s}", "name", name);
		if (json_object_get(f, "description"))
			json_object_set(o, "description", json_object_get(f, "description"));
		if (json_object_get(f, "parameters"))
			json_object_set(o, "parameters", json_object_get(f, "parameters"));
		s = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		if (rc == 0 && s)
			rc = mllm_buf_appendf(&b, "%s\n", s);
		free(s);
	}
	if (rc == 0)
		rc = mllm_buf_appendf(&b, "Reply with one JSON object {\"name\": <tool name>, "
		                          "\"arguments\": <arguments object>}.");
	if (rc) {
		mllm_buf_free(&b);
		return api_error_set(e, 503, NULL, "overloaded", "Out of memory.");
	}
	msgs = xcalloc((size_t)req->n_msgs + 1, sizeof *msgs);
	msgs[0].role = API_ROLE_SYSTEM;
	msgs[0].len = b.len;
	msgs[0].content = mllm_buf_take(&b, NULL);
	mllm_buf_free(&b);
	memcpy(msgs + 1, req->msgs, (size_t)req->n_msgs * sizeof *msgs);
	free(req->msgs);
	req->msgs = msgs;
	req->n_msgs++;
	return 0;
}

static void lit_ws(mllm_gbuild *b, int32_t rule, const char *s, int32_t ws)
{
	mllm_gbuild_lit(b, rule, s, strlen(s));
	mllm_gbuild_ref(b, rule, ws);
}

/* Runs in prepare, before the template is applied: the preamble and the
 * grammar {"name": N, "arguments": A} over the allowed tools. */
int api__prepare_tools(api_request *req, api_error *e)
{
	api__sc *c;
	mllm_gbuild *b;
	int32_t call, ws;
	size_t i;
	json_t *t;
	int rc;
	if (!api__tool_forced(req))
		return 0;
	rc = tools_preamble(req, e);
	if (rc)
		return rc;
	c = api__sc_create();
	if (!c)
		return api_error_set(e, 503, NULL, "overloaded", "Out of memory for the grammar.");
	b = api__sc_builder(c);
	ws = api__sc_ws(c);
	call = mllm_gbuild_rule(b);
	json_array_foreach(req->tools, i, t)
	{
		json_t *f = json_object_get(t, "function"), *p = json_object_get(f, "parameters");
		const char *name = json_string_value(json_object_get(f, "name"));
		char param[64];
		int32_t args;
		if (req->tool_name && strcmp(name, req->tool_name) != 0)
			continue;
		snprintf(param, sizeof param, "tools[%zu].function.parameters", i);
		args = p && !json_is_null(p) ? api__sc_schema(c, p, p, param, e)
		                             : api__sc_any_object(c);
		if (args < 0) {
			api__sc_free(c);
			return e->status;
		}
		/* {ws "name" ws : ws "N" ws , ws "arguments" ws : ws A ws } */
		mllm_gbuild_alt(b, call);
		lit_ws(b, call, "{", ws);
		lit_ws(b, call, "\"name\"", ws);
		lit_ws(b, call, ":", ws);
		mllm_gbuild_lit(b, call, "\"", 1);
		mllm_gbuild_lit(b, call, name, strlen(name));
		lit_ws(b, call, "\"", ws);
		lit_ws(b, call, ",", ws);
		lit_ws(b, call, "\"arguments\"", ws);
		lit_ws(b, call, ":", ws);
		mllm_gbuild_ref(b, call, args);
		mllm_gbuild_ref(b, call, ws);
		mllm_gbuild_lit(b, call, "}", 1);
	}
	rc = api__sc_finish(c, call, "tools", &req->grammar, e);
	api__sc_free(c);
	if (rc)
		return rc;
	req->sp.grammar = req->grammar;
	return 0;
}

/* ---- the response -------------------------------------------------------------- */

/* memmem without _GNU_SOURCE. */
static const char *find(const char *s, size_t n, const char *pat, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(s + i, pat, m) == 0)
			return s + i;
	return NULL;
}

static size_t skip_ws(const char *s, size_t i, size_t n)
{
	while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'))
		i++;
	return i;
}

/* Where the arguments start in text (after "arguments" ws : ws), with the
 * name copied out; false while not all of that has arrived. */
static bool call_head(const char *s, size_t n, char *name, size_t cap, size_t *args)
{
	const char *k = find(s, n, "\"arguments\"", 11), *nm;
	size_t i, j;
	if (!k)
		return false;
	i = skip_ws(s, (size_t)(k - s) + 11, n);
	if (i >= n || s[i] != ':')
		return false;
	i = skip_ws(s, i + 1, n);
	if (i >= n)
		return false;
	nm = find(s, (size_t)(k - s), "\"name\"", 6);
	if (!nm)
		return false;
	j = skip_ws(s, (size_t)(nm - s) + 6, n);
	j = skip_ws(s, j + 1, n) + 1; /* past ':' and the opening quote */
	{
		size_t e = j;
		while (e < n && s[e] != '"')
			e++;
		snprintf(name, cap, "%.*s", (int)(e - j), s + j);
	}
	*args = i;
	return true;
}

/* The end of the arguments released so far: everything but a trailing
 * "ws } ws", which may be the call's closing brace. */
static size_t args_end(const char *s, size_t from, size_t n)
{
	size_t e = n;
	while (e > from && (s[e - 1] == ' ' || s[e - 1] == '\n'))
		e--;
	if (e > from && s[e - 1] == '}')
		e--;
	while (e > from && (s[e - 1] == ' ' || s[e - 1] == '\n'))
		e--;
	return e;
}

static json_t *call_json(const api_request *req, int32_t idx, const char *name, bool head)
{
	json_t *call = json_object(), *f = json_object();
	char id[48];
	snprintf(id, sizeof id, "call_%.24s%d", req->id + (req->id[0] == 'c' ? 9 : 0), (int)idx);
	json_object_set_new(call, "index", json_integer(0));
	if (head) {
		json_object_set_new(call, "id", json_string(id));
		json_object_set_new(call, "type", json_string("function"));
		json_object_set_new(f, "name", json_string(name));
	}
	json_object_set_new(call, "function", f);
	return call;
}

/* One chunk whose delta is tool_calls: [call] (call is taken). */
static int emit_call_delta(const api_request *req, int32_t idx, json_t *call, mllm_buf *out)
{
	json_t *ch = json_object(), *delta = json_object(), *calls = json_array();
	json_array_append_new(calls, call);
	json_object_set_new(delta, "tool_calls", calls);
	json_object_set_new(ch, "index", json_integer(idx));
	json_object_set_new(ch, "delta", delta);
	json_object_set_new(ch, "logprobs", json_null());
	json_object_set_new(ch, "finish_reason", json_null());
	return api__emit_chunk(req, ch, out);
}

int api__tool_stream(api_request *req, int32_t idx, mllm_buf *out, bool final)
{
	api__choice *c = &req->choices[idx];
	const char *s = c->text.data ? c->text.data : "";
	size_t n = c->text.len, end;
	char name[80];
	json_t *call;
	int rc;
	if (!c->tool_head) {
		size_t args;
		if (!call_head(s, n, name, sizeof name, &args))
			return 0;
		c->tool_head = true;
		c->tool_sent = args;
		call = call_json(req, idx, name, true);
		json_object_set_new(json_object_get(call, "function"), "arguments",
		                    json_string(""));
		rc = emit_call_delta(req, idx, call, out);
		if (rc)
			return rc;
	}
	(void) final;
	end = args_end(s, c->tool_sent, n);
	if (end <= c->tool_sent)
		return 0;
	call = call_json(req, idx, NULL, false);
	json_object_set_new(json_object_get(call, "function"), "arguments",
	                    api__json_text(s + c->tool_sent, end - c->tool_sent));
	c->tool_sent = end;
	return emit_call_delta(req, idx, call, out);
}

bool api__tool_message_json(const api_request *req, int32_t idx, json_t *msg)
{
	const api__choice *c = &req->choices[idx];
	const char *s = c->text.data ? c->text.data : "";
	size_t n = c->text.len, args, end;
	char name[80];
	json_t *calls, *call;
	if (!c->done || c->finish != MLLM_FINISH_STOP || !call_head(s, n, name, sizeof name, &args))
		return false;
	end = args_end(s, args, n);
	calls = json_array();
	call = call_json(req, idx, name, true);
	json_object_del(call, "index");
	json_object_set_new(json_object_get(call, "function"), "arguments",
	                    api__json_text(s + args, end - args));
	json_array_append_new(calls, call);
	json_object_set_new(msg, "content", json_null());
	json_object_set_new(msg, "tool_calls", calls);
	return true;
}

void api__tools_free(api_request *req)
{
	json_decref(req->tools);
	free(req->tool_name);
}
