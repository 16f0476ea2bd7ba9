/*
 * tools.c — tool calls: `tools`, `tool_choice` and `parallel_tool_calls`
 * (parse), tool messages in the conversation (rendered as plain text by
 * the presets), the tool-call syntax a chat template shows, the grammars
 * (forced calls; auto = free text until the syntax's opener, then calls),
 * and the cut of the output into content and tool_calls, streamed as
 * OpenAI streams them (docs/api.md, "Tool calls").
 *
 * A call is a JSON object {"name": N, "arguments": A} (Llama 3:
 * "parameters"), N one of the allowed names and A valid under that tool's
 * parameters schema, wrapped in the syntax's opener and closer (Hermes:
 * <tool_call>…</tool_call>). One incremental parser (tp_run) serves the
 * stream and the final message, so both cut the same text the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

#define API_MAX_TOOLS 128

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
			    !api__name_ok(json_string_value(name), json_string_length(name)))
				return api_error_set(
				    e, 400, param, "invalid_value",
				    "'%s' must be 1-64 characters of a-z, A-Z, 0-9, "
				    "'_' and '-'.",
				    param);
			if (tool_named(tools, json_string_value(name)) != t)
				return api_error_set(e, 400, param, "invalid_value",
				                     "Tool name '%s' is used twice.",
				                     json_string_value(name));
			p = json_object_get(f, "description");
			snprintf(param, sizeof param, "tools[%zu].function.description", i);
			if (p && !json_is_null(p) && !json_is_string(p))
				return api_error_set(e, 400, param, "invalid_type",
				                     "'%s' must be a string.", param);
			p = json_object_get(f, "strict");
			snprintf(param, sizeof param, "tools[%zu].function.strict", i);
			if (p && !json_is_null(p) && !json_is_boolean(p))
				return api_error_set(e, 400, param, "invalid_type",
				                     "'%s' must be a boolean.", param);
			p = json_object_get(f, "parameters");
			snprintf(param, sizeof param, "tools[%zu].function.parameters", i);
			if (p && !json_is_null(p) && !json_is_object(p))
				return api_error_set(e, 400, param, "invalid_type",
				                     "'%s' must be a JSON Schema object.", param);
			/* Arguments are a JSON object (the SDKs parse them so). */
			if (p && json_is_object(p) && json_object_get(p, "type") &&
			    !(json_is_string(json_object_get(p, "type")) &&
			      strcmp(json_string_value(json_object_get(p, "type")), "object") == 0))
				return api_error_set(
				    e, 400, param, "invalid_value",
				    "'%s' must describe an object (type 'object'): a "
				    "call's arguments are a JSON object.",
				    param);
		}
		if (json_array_size(tools) > 0)
			req->tools = json_incref(tools);
	}
	req->tool_choice = req->tools ? API__TC_AUTO : API__TC_NONE;
	req->parallel = !json_is_false(ptc);
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

bool api__text_parts(const json_t *c)
{
	size_t i;
	json_t *part;
	if (!json_is_array(c))
		return false;
	json_array_foreach(c, i, part)
	{
		json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
		if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0 ||
		    !json_is_string(text))
			return false;
	}
	return true;
}

int api__append_content(mllm_buf *b, const json_t *content)
{
	size_t k;
	json_t *part;
	int rc = 0;
	if (json_is_string(content))
		return mllm_buf_append(b, json_string_value(content), json_string_length(content));
	json_array_foreach(content, k, part)
	{
		json_t *text = json_object_get(part, "text");
		if (k > 0)
			rc = mllm_buf_append(b, "\n", 1);
		if (rc == 0)
			rc = mllm_buf_append(b, json_string_value(text), json_string_length(text));
		if (rc)
			return rc;
	}
	return 0;
}

/* Every call of the assistant message at index a has a tool message among
 * messages a+1 .. end-1 (the tool run after it); 400 naming the first
 * call without one. */
static int calls_answered(const json_t *msgs, size_t a, size_t end, api_error *e)
{
	const json_t *calls = json_object_get(json_array_get(msgs, a), "tool_calls");
	size_t k, j;
	json_t *call;
	json_array_foreach(calls, k, call)
	{
		const char *cid = json_string_value(json_object_get(call, "id"));
		bool found = false;
		char param[64];
		for (j = a + 1; j < end && !found && cid; j++) {
			const char *id = json_string_value(
			    json_object_get(json_array_get(msgs, j), "tool_call_id"));
			found = id && strcmp(id, cid) == 0;
		}
		if (found)
			continue;
		snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu]", a, k);
		return api_error_set(
		    e, 400, param, "invalid_value",
		    "The assistant message with 'tool_calls' must be followed by a "
		    "'tool' message answering each call; none answers '%.64s'.",
		    cid ? cid : "(no id)");
	}
	return 0;
}

int api__check_tool_links(const json_t *msgs, api_error *e)
{
	const json_t *calls = NULL; /* the tool_calls the tool turns answer */
	size_t i, a = 0;            /* a: the index of the message with them */
	json_t *m;
	json_array_foreach(msgs, i, m)
	{
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *id = json_object_get(m, "tool_call_id");
		char param[64];
		bool found = false;
		size_t k;
		json_t *call;
		if (!role || strcmp(role, "tool") != 0) {
			int rc = json_array_size(calls) > 0 ? calls_answered(msgs, a, i, e) : 0;
			if (rc)
				return rc;
			calls = role && strcmp(role, "assistant") == 0
			            ? json_object_get(m, "tool_calls")
			            : NULL;
			a = i;
			continue;
		}
		snprintf(param, sizeof param, "messages[%zu].tool_call_id", i);
		if (!id || json_is_null(id))
			return api_error_set(e, 400, param, "missing_required_parameter",
			                     "Missing required parameter: '%s'.", param);
		if (!json_is_string(id))
			return api_error_set(e, 400, param, "invalid_type",
			                     "'%s' must be a string.", param);
		if (!json_is_array(calls) || json_array_size(calls) == 0) {
			snprintf(param, sizeof param, "messages[%zu].role", i);
			return api_error_set(e, 400, param, "invalid_value",
			                     "A message with role 'tool' must answer a call of the "
			                     "assistant message with 'tool_calls' before it.");
		}
		json_array_foreach(calls, k, call)
		{
			const char *cid = json_string_value(json_object_get(call, "id"));
			found = found || (cid && strcmp(cid, json_string_value(id)) == 0);
		}
		if (!found)
			return api_error_set(
			    e, 400, param, "invalid_value",
			    "'%s' is '%.64s', which no call in the 'tool_calls' of "
			    "the assistant message before it has.",
			    param, json_string_value(id));
	}
	if (json_array_size(calls) > 0)
		return calls_answered(msgs, a, json_array_size(msgs), e);
	return 0;
}

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
		/* The tool's result: a string, or text parts (joined with "\n"). */
		if (!json_is_string(content) && !api__text_parts(content))
			return api_error_set(e, 400, param, "invalid_type",
			                     "'%s' must be a string or an array of text parts (the "
			                     "tool's result).",
			                     param);
		/* Rendered as a user turn: "Tool result (id): content". */
		mllm_buf_init(&b, SIZE_MAX / 2);
		rc = mllm_buf_appendf(&b, "Tool result (%s): ", id ? id : "call");
		if (rc == 0)
			rc = api__append_content(&b, content);
		out->role = API_ROLE_USER;
		goto done;
	}
	if (strcmp(role, "assistant") != 0 || !calls || json_is_null(calls))
		return 0;
	/* The content beside the calls: none, a string, or text parts — an
	 * empty list too here (LangChain JS's legacy converter sends [] for
	 * a turn that only calls tools). */
	snprintf(param, sizeof param, "messages[%zu].content", i);
	if (content && !json_is_null(content) && !json_is_string(content) &&
	    !api__text_parts(content))
		return api_error_set(e, 400, param, "invalid_type",
		                     "'%s' must be a string or an array of text parts.", param);
	snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
	if (!json_is_array(calls))
		return api_error_set(e, 400, param, "invalid_type", "'%s' must be an array.",
		                     param);
	/* Rendered as the assistant's text: its content (if any), then each
	 * call as the JSON object a forced call generates, one per line. */
	mllm_buf_init(&b, SIZE_MAX / 2);
	if (api__text_parts(content) || json_is_string(content))
		rc = api__append_content(&b, content);
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

/* The blanks a call's grammar allows around it. */
static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r';
}

/* ---- syntaxes ----------------------------------------------------------------- */

/* How each syntax writes a call: an opener before each call's JSON object
 * ("" = the object's own "{"), a closer after it, the key of the
 * arguments, and whether one answer may hold several calls. */
typedef struct {
	const char *opener, *closer, *key;
	bool parallel_ok;
} tc_syntax;

static const tc_syntax SYNTAX[] = {
    [API__TS_NONE] = {"", "", "arguments", true},
    [API__TS_HERMES] = {"<tool_call>", "</tool_call>", "arguments", true},
    [API__TS_LLAMA3] = {"", "", "parameters", false},
};

int api__tool_syntax(const api_chat_template *t)
{
	if (api_chat_template_mentions(t, "<tool_call>"))
		return API__TS_HERMES;
	/* Meta's Llama 3.1/3.2 templates ask for {"name": ..., "parameters":
	 * ...} and name <|python_tag|> for built-in tools. */
	if (api_chat_template_mentions(t, "<|python_tag|>") ||
	    (api_chat_template_mentions(t, "<|start_header_id|>") &&
	     api_chat_template_mentions(t, "\"parameters\"") &&
	     api_chat_template_mentions(t, "tools")))
		return API__TS_LLAMA3;
	return API__TS_NONE;
}

bool api__tool_syntax_parallel(int syntax)
{
	return SYNTAX[syntax].parallel_ok;
}

const char *api__tool_syntax_name(int syntax)
{
	return syntax == API__TS_HERMES   ? "hermes"
	       : syntax == API__TS_LLAMA3 ? "llama3_json"
	                                  : "plain_text";
}

/* ---- grammars ----------------------------------------------------------------- */

static void lit_ws(mllm_gbuild *b, int32_t rule, const char *s, int32_t ws)
{
	mllm_gbuild_lit(b, rule, s, strlen(s));
	mllm_gbuild_ref(b, rule, ws);
}

/* {ws "name" ws : ws "N" ws , ws "KEY" ws : ws A ws }, one alternative per
 * allowed tool. -1 with e filled when a parameters schema does not compile. */
/* open: with the call object's own "{" (false: a prefill wrote it). */
static int32_t call_rule(api__sc *c, const api_request *req, const char *key, bool open,
                         api_error *e)
{
	mllm_gbuild *b = api__sc_builder(c);
	int32_t ws = api__sc_ws(c), call = mllm_gbuild_rule(b);
	char qkey[32];
	size_t i;
	json_t *t;
	json_t *keep = json_array();
	snprintf(qkey, sizeof qkey, "\"%s\"", key);
	json_array_foreach(req->tools, i, t)
	{
		json_t *f = json_object_get(t, "function"), *p = json_object_get(f, "parameters");
		const char *name = json_string_value(json_object_get(f, "name"));
		char param[64];
		int32_t args;
		if (req->tool_name && strcmp(name, req->tool_name) != 0)
			continue;
		snprintf(param, sizeof param, "tools[%zu].function.parameters", i);
		/* No parameters, or {}: any object; a schema without a type is
		 * an object's (a call's arguments are one). */
		if (p && json_is_object(p) && json_object_size(p) > 0 &&
		    !json_object_get(p, "type")) {
			/* Kept until the loop ends: the compiler tells documents
			 * apart by address, which a freed copy could hand on. */
			json_t *q = json_deep_copy(p);
			json_object_set_new(q, "type", json_string("object"));
			json_array_append_new(keep, q);
			args = api__sc_schema(c, q, q, param, e);
		} else {
			args = p && json_is_object(p) && json_object_size(p) > 0
			           ? api__sc_schema(c, p, p, param, e)
			           : api__sc_any_object(c);
		}
		if (args < 0) {
			json_decref(keep);
			return -1;
		}
		mllm_gbuild_alt(b, call);
		if (open)
			lit_ws(b, call, "{", ws);
		else
			mllm_gbuild_ref(b, call, ws);
		lit_ws(b, call, "\"name\"", ws);
		lit_ws(b, call, ":", ws);
		mllm_gbuild_lit(b, call, "\"", 1);
		mllm_gbuild_lit(b, call, name, strlen(name));
		lit_ws(b, call, "\"", ws);
		lit_ws(b, call, ",", ws);
		lit_ws(b, call, qkey, ws);
		lit_ws(b, call, ":", ws);
		mllm_gbuild_ref(b, call, args);
		mllm_gbuild_ref(b, call, ws);
		mllm_gbuild_lit(b, call, "}", 1);
	}
	json_decref(keep);
	return call;
}

/* What follows an opener: ws FIRST ws closer, then the end (ws) or, when
 * several calls are allowed, ws opener and the next call (ws CALL ws
 * closer ...). FIRST is CALL unless a prefill wrote the first call's "{". */
static int32_t after_opener(api__sc *c, const tc_syntax *sx, int32_t first, int32_t call,
                            bool several)
{
	mllm_gbuild *b = api__sc_builder(c);
	int32_t ws = api__sc_ws(c), after = mllm_gbuild_rule(b), more = mllm_gbuild_rule(b);
	int32_t head = first == call ? after : mllm_gbuild_rule(b);
	mllm_gbuild_ref(b, after, ws);
	mllm_gbuild_ref(b, after, call);
	mllm_gbuild_ref(b, after, ws);
	mllm_gbuild_lit(b, after, sx->closer, strlen(sx->closer));
	mllm_gbuild_ref(b, after, more);
	if (head != after) {
		mllm_gbuild_ref(b, head, ws);
		mllm_gbuild_ref(b, head, first);
		mllm_gbuild_ref(b, head, ws);
		mllm_gbuild_lit(b, head, sx->closer, strlen(sx->closer));
		mllm_gbuild_ref(b, head, more);
	}
	mllm_gbuild_ref(b, more, ws);
	if (several) {
		mllm_gbuild_alt(b, more);
		mllm_gbuild_ref(b, more, ws);
		mllm_gbuild_lit(b, more, sx->opener, strlen(sx->opener));
		mllm_gbuild_ref(b, more, after);
	}
	return head;
}

/* Free text that never contains opener o, then (optionally) o and the
 * rule then: one rule per matched prefix of o, as a KMP automaton over
 * bytes (f[k]: the text so far ends with o[0..k) and holds no o). The
 * matcher's state in free text is one of these few rules, so masks there
 * come from its cache after the first steps. */
static int32_t free_text(api__sc *c, const char *o, int32_t then)
{
	mllm_gbuild *b = api__sc_builder(c);
	size_t len = strlen(o);
	int32_t f[32];
	MLLM_ASSERT(len > 0 && len < 32);
	for (size_t k = 0; k < len; k++)
		f[k] = mllm_gbuild_rule(b);
	for (size_t k = 0; k < len; k++) {
		uint8_t sets[33][32];
		memset(sets, 0, sizeof sets);
		for (int ch = 0; ch < 256; ch++) {
			/* The longest suffix of o[0..k) + ch that is a prefix of o. */
			size_t j = k + 1;
			for (; j > 0; j--) {
				size_t from = k + 1 - j; /* in o[0..k) + ch */
				bool ok = true;
				for (size_t x = 0; x < j && ok; x++) {
					size_t at = from + x;
					char have = at < k ? o[at] : (char)ch;
					ok = have == o[x];
				}
				if (ok)
					break;
			}
			sets[j][ch / 8] |= (uint8_t)(1u << (ch % 8));
		}
		mllm_gbuild_alt(b, f[k]); /* the text may end here */
		for (size_t j = 0; j <= len; j++) {
			bool any = false;
			for (int x = 0; x < 32 && !any; x++)
				any = sets[j][x] != 0;
			if (!any)
				continue;
			mllm_gbuild_alt(b, f[k]);
			mllm_gbuild_set(b, f[k], sets[j]);
			mllm_gbuild_ref(b, f[k], j == len ? then : f[j]);
		}
	}
	return f[0];
}

/* Llama-3 JSON: the answer is a call when it starts (after blanks) with
 * "{", else free text. */
static int32_t text_or_call(api__sc *c, int32_t after)
{
	mllm_gbuild *b = api__sc_builder(c);
	int32_t root = mllm_gbuild_rule(b), any = mllm_gbuild_rule(b);
	uint8_t blank[32] = {0}, other[32], all[32];
	memset(all, 0xff, sizeof all);
	blank[' ' / 8] |= 1u << (' ' % 8);
	blank['\n' / 8] |= 1u << ('\n' % 8);
	blank['\t' / 8] |= 1u << ('\t' % 8);
	blank['\r' / 8] |= 1u << ('\r' % 8);
	for (int i = 0; i < 32; i++)
		other[i] = (uint8_t)~blank[i];
	other['{' / 8] &= (uint8_t) ~(1u << ('{' % 8));
	mllm_gbuild_alt(b, any);
	mllm_gbuild_alt(b, any);
	mllm_gbuild_set(b, any, all);
	mllm_gbuild_ref(b, any, any);
	mllm_gbuild_alt(b, root);
	mllm_gbuild_alt(b, root);
	mllm_gbuild_set(b, root, blank);
	mllm_gbuild_ref(b, root, root);
	mllm_gbuild_alt(b, root);
	mllm_gbuild_set(b, root, other);
	mllm_gbuild_ref(b, root, any);
	mllm_gbuild_alt(b, root);
	mllm_gbuild_ref(b, root, after);
	return root;
}

/* Runs in prepare, before the template is applied. Forced (required /
 * named): the preamble and a grammar of calls only. auto with a template
 * whose syntax is known: free text, and from the opener on, calls. */
/* Compiles every tool's parameters once, for their errors only. */
static int validate_tools(const api_request *req, api_error *e)
{
	api__sc *c;
	size_t i;
	json_t *t;
	json_array_foreach(req->tools, i, t)
	{
		json_t *p = json_object_get(json_object_get(t, "function"), "parameters");
		char param[64];
		if (!p || !json_is_object(p) || json_object_size(p) == 0)
			continue;
		c = api__sc_create();
		if (!c)
			return api_error_set(e, 503, NULL, "overloaded",
			                     "Out of memory for the grammar.");
		snprintf(param, sizeof param, "tools[%zu].function.parameters", i);
		if (api__sc_schema(c, p, p, param, e) < 0) {
			api__sc_free(c);
			return e->status;
		}
		api__sc_free(c);
	}
	return 0;
}

int api__prepare_tools(api_request *req, api_error *e)
{
	const api_chat_template *t = req->m ? req->m->chat_template : NULL;
	const tc_syntax *sx;
	api__sc *c;
	int32_t call, first, after, root;
	bool several;
	int rc;
	req->tool_syntax = api__tool_syntax(t);
	sx = &SYNTAX[req->tool_syntax];
	if (api__tool_forced(req)) {
		/* A named choice builds the grammar of that tool only: the
		 * others' schemas are checked here. */
		rc = req->tool_choice == API__TC_NAMED ? validate_tools(req, e) : 0;
		if (rc == 0)
			rc = tools_preamble(req, e);
		if (rc)
			return rc;
	} else if (!(req->tool_choice == API__TC_AUTO && req->tool_syntax != API__TS_NONE &&
	             req->rf_kind == API__RF_NONE)) {
		/* Plain text (or the response_format's grammar): no call grammar,
		 * but the tools' schemas are still checked, as they would be
		 * had the call been forced. */
		return validate_tools(req, e);
	}
	req->tool_parse = true;
	/* continue_final_message with a prefill that ends with the opener:
	 * the output starts inside a call. Without an opener of its own (the
	 * call's "{" as the answer's first non-blank byte), a prefill of that
	 * "{" alone. */
	if (req->cont_final) {
		const api__message *m = &req->msgs[req->n_msgs - 1];
		size_t n = m->len, i = 0, olen = strlen(sx->opener);
		while (n > 0 && is_blank(m->content[n - 1]))
			n--;
		while (i < n && is_blank(m->content[i]))
			i++;
		req->tool_in_call =
		    olen ? n >= olen && memcmp(m->content + n - olen, sx->opener, olen) == 0
		         : n == i + 1 && m->content[i] == '{';
	}
	several = req->parallel && sx->parallel_ok && req->tool_choice != API__TC_NAMED;
	c = api__sc_create();
	if (!c)
		return api_error_set(e, 503, NULL, "overloaded", "Out of memory for the grammar.");
	/* A prefill that wrote the call's own "{" (no opener of its own):
	 * the first call without it, the next ones whole. */
	call = call_rule(c, req, sx->key, true, e);
	first = call >= 0 && req->tool_in_call && !sx->opener[0]
	            ? call_rule(c, req, sx->key, false, e)
	            : call;
	if (call < 0 || first < 0) {
		api__sc_free(c);
		return e->status;
	}
	after = after_opener(c, sx, first, call, several);
	if (req->tool_in_call) {
		root = after; /* the prefill opened the call */
	} else if (api__tool_forced(req)) {
		root = mllm_gbuild_rule(api__sc_builder(c));
		mllm_gbuild_lit(api__sc_builder(c), root, sx->opener, strlen(sx->opener));
		mllm_gbuild_ref(api__sc_builder(c), root, after);
	} else if (sx->opener[0]) {
		root = free_text(c, sx->opener, after);
	} else {
		root = text_or_call(c, after);
	}
	rc = api__sc_finish(c, root, "tools", &req->grammar, e);
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
	while (i < n && is_blank(s[i]))
		i++;
	return i;
}

/* Length of the longest proper suffix of s[0..n) that begins marker. */
static size_t partial_suffix(const char *s, size_t n, const char *marker)
{
	size_t m = strlen(marker);
	for (size_t k = m - 1 < n ? m - 1 : n; k > 0; k--)
		if (memcmp(s + n - k, marker, k) == 0)
			return k;
	return 0;
}

/* In a call's object s[0..n): the name (copied out) and where the
 * arguments value starts (after "KEY" ws : ws); false while not all of
 * that has arrived. The grammar put the name first and allows no quote
 * inside it. */
static bool call_head(const char *s, size_t n, const char *key, char *name, size_t cap,
                      size_t *args)
{
	char qkey[32];
	const char *k, *nm;
	size_t i, j, end;
	snprintf(qkey, sizeof qkey, "\"%s\"", key);
	k = find(s, n, qkey, strlen(qkey));
	if (!k)
		return false;
	i = skip_ws(s, (size_t)(k - s) + strlen(qkey), n);
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
	for (end = j; end < n && s[end] != '"'; end++)
		;
	snprintf(name, cap, "%.*s", (int)(end - j), s + j);
	*args = i;
	return true;
}

enum { API__TP_TEXT = 0, API__TP_PLAIN, API__TP_HEAD, API__TP_ARGS, API__TP_CLOSE, API__TP_AFTER };

/* Where the output goes as it is cut: content, a call's head, argument
 * fragments. Streams turn them into chunks, the final message collects. */
typedef struct {
	int (*content)(void *ctx, const char *p, size_t n);
	int (*head)(void *ctx, int32_t call, const char *name);
	int (*args)(void *ctx, int32_t call, const char *p, size_t n);
	void *ctx;
} tp_sink;

/* The arguments value from st->pos on: advances the scan; the end of the
 * value (exclusive) when it is complete, else 0. */
static size_t args_scan(api__tparse *st, const char *s, size_t n)
{
	for (size_t i = st->pos; i < n; i++) {
		char ch = s[i];
		if (i == st->args_at) {
			st->depth = ch == '{' || ch == '[' ? 1 : 0;
			st->in_str = ch == '"';
			st->esc = false;
			continue;
		}
		if (st->in_str) {
			if (st->esc)
				st->esc = false;
			else if (ch == '\\')
				st->esc = true;
			else if (ch == '"') {
				st->in_str = false;
				if (st->depth == 0)
					return i + 1; /* a string value */
			}
			continue;
		}
		if (st->depth == 0) {
			/* A number, true, false or null: ends before a delimiter. */
			if (ch == ',' || ch == '}' || ch == ' ' || ch == '\n' || ch == '\t' ||
			    ch == '\r')
				return i;
			continue;
		}
		if (ch == '"')
			st->in_str = true;
		else if (ch == '{' || ch == '[')
			st->depth++;
		else if ((ch == '}' || ch == ']') && --st->depth == 0)
			return i + 1;
	}
	st->pos = n;
	return 0;
}

/* Cuts s[st->pos..n) under syntax sx. final: the output is over (nothing
 * is held back for a partial opener). */
static int tp_run(const tc_syntax *sx, bool several, api__tparse *st, const char *s, size_t n,
                  bool final, const tp_sink *k)
{
	size_t olen = strlen(sx->opener);
	int rc = 0;
	for (;;) {
		switch (st->phase) {
		case API__TP_TEXT: {
			if (olen == 0) {
				/* The call's "{" starts the answer, after blanks. */
				size_t i = skip_ws(s, st->pos, n);
				if (i == n) {
					if (final && n > st->pos)
						rc = k->content(k->ctx, s + st->pos, n - st->pos);
					if (final)
						st->pos = n;
					return rc;
				}
				if (s[i] != '{') {
					st->phase = API__TP_PLAIN;
					continue;
				}
				st->call_at = st->pos = i;
				st->phase = API__TP_HEAD;
				continue;
			}
			const char *hit = find(s + st->pos, n - st->pos, sx->opener, olen);
			size_t end = hit ? (size_t)(hit - s)
			                 : n - (final ? 0
			                              : partial_suffix(s + st->pos, n - st->pos,
			                                               sx->opener));
			if (end > st->pos)
				rc = k->content(k->ctx, s + st->pos, end - st->pos);
			if (rc)
				return rc;
			st->pos = end;
			if (!hit)
				return 0;
			st->pos += olen;
			st->call_at = st->pos;
			st->phase = API__TP_HEAD;
			continue;
		}
		case API__TP_PLAIN:
			if (n > st->pos)
				rc = k->content(k->ctx, s + st->pos, n - st->pos);
			st->pos = n;
			return rc;
		case API__TP_HEAD: {
			char name[80];
			size_t args;
			if (!call_head(s + st->call_at, n - st->call_at, sx->key, name, sizeof name,
			               &args))
				return 0;
			st->args_at = st->args_sent = st->pos = st->call_at + args;
			rc = k->head(k->ctx, st->n_calls++, name);
			if (rc)
				return rc;
			st->phase = API__TP_ARGS;
			continue;
		}
		case API__TP_ARGS: {
			size_t end = args_scan(st, s, n);
			if (end == 0 && final)
				end = n;
			{
				size_t upto = end ? end : n;
				if (upto > st->args_sent)
					rc = k->args(k->ctx, st->n_calls - 1, s + st->args_sent,
					             upto - st->args_sent);
				st->args_sent = upto;
			}
			if (rc || end == 0)
				return rc;
			st->pos = end;
			st->phase = API__TP_CLOSE;
			continue;
		}
		case API__TP_CLOSE: {
			/* The call object's "}" (only blanks before it). */
			const char *b = find(s + st->pos, n - st->pos, "}", 1);
			if (!b)
				return 0;
			st->pos = (size_t)(b - s) + 1;
			st->phase = API__TP_AFTER;
			continue;
		}
		case API__TP_AFTER: {
			/* The closer and blanks, then the next call's opener. */
			const char *o = olen ? sx->opener : "{";
			const char *hit;
			if (!several)
				return 0;
			hit = find(s + st->pos, n - st->pos, o, strlen(o));
			if (!hit)
				return 0;
			st->pos = (size_t)(hit - s) + (olen ? olen : 0);
			st->call_at = st->pos;
			st->phase = API__TP_HEAD;
			continue;
		}
		default:
			return MLLM_EINVAL;
		}
	}
}

static bool several_calls(const api_request *req)
{
	return req->parallel && SYNTAX[req->tool_syntax].parallel_ok &&
	       req->tool_choice != API__TC_NAMED;
}

/* "call_" + 24 hex digits of the request id + the choice and the call:
 * unique within the response, as OpenAI's ids are. */
static void call_id(const api_request *req, int32_t idx, int32_t call, char *id, size_t cap)
{
	const char *dash = strchr(req->id, '-');
	snprintf(id, cap, "call_%.24s_%d_%d", dash ? dash + 1 : req->id, (int)idx, (int)call);
}

/* ---- streamed ---- */

typedef struct {
	api_request *req;
	int32_t idx;
	mllm_buf *out;
} stream_ctx;

/* One chunk of choice idx whose delta is d (taken). */
static int emit_delta(const api_request *req, int32_t idx, json_t *d, mllm_buf *out)
{
	json_t *ch = json_object();
	json_object_set_new(ch, "index", json_integer(idx));
	json_object_set_new(ch, "delta", d);
	json_object_set_new(ch, "logprobs", json_null());
	json_object_set_new(ch, "finish_reason", json_null());
	return api__emit_chunk(req, ch, out);
}

static int st_content(void *ctx, const char *p, size_t n)
{
	stream_ctx *x = ctx;
	bool blank = true;
	/* A forced answer is calls only: the blanks the grammar allows
	 * before the first one are not content. */
	for (size_t i = 0; i < n && blank; i++)
		blank = p[i] == ' ' || p[i] == '\n' || p[i] == '\t' || p[i] == '\r';
	if (blank && api__tool_forced(x->req))
		return 0;
	return emit_delta(x->req, x->idx, json_pack("{s:o}", "content", api__json_text(p, n)),
	                  x->out);
}

/* A delta {"tool_calls": [{"index": call, ...fields}]}. */
static int st_call(stream_ctx *x, int32_t call, json_t *fields)
{
	json_t *tc = json_pack("{s:i}", "index", (int)call);
	json_object_update(tc, fields);
	json_decref(fields);
	return emit_delta(x->req, x->idx, json_pack("{s:[o]}", "tool_calls", tc), x->out);
}

static int st_head(void *ctx, int32_t call, const char *name)
{
	stream_ctx *x = ctx;
	char id[64];
	call_id(x->req, x->idx, call, id, sizeof id);
	return st_call(x, call,
	               json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id, "type", "function", "function",
	                         "name", name, "arguments", ""));
}

static int st_args(void *ctx, int32_t call, const char *p, size_t n)
{
	stream_ctx *x = ctx;
	return st_call(x, call,
	               json_pack("{s:{s:o}}", "function", "arguments", api__json_text(p, n)));
}

int api__tool_stream(api_request *req, int32_t idx, mllm_buf *out, bool final)
{
	api__choice *c = &req->choices[idx];
	stream_ctx x = {.req = req, .idx = idx, .out = out};
	tp_sink k = {.content = st_content, .head = st_head, .args = st_args, .ctx = &x};
	return tp_run(&SYNTAX[req->tool_syntax], several_calls(req), &c->tp,
	              c->text.data ? c->text.data : "", c->text.len, final, &k);
}

void api__tool_choice_init(const api_request *req, api__tparse *tp)
{
	memset(tp, 0, sizeof *tp);
	if (req->tool_in_call)
		tp->phase = API__TP_HEAD;
}

static int nop_text(void *ctx, const char *p, size_t n)
{
	(void)ctx, (void)p, (void)n;
	return 0;
}

static int nop_head(void *ctx, int32_t call, const char *name)
{
	(void)ctx, (void)call, (void)name;
	return 0;
}

static int nop_args(void *ctx, int32_t call, const char *p, size_t n)
{
	(void)ctx, (void)call, (void)p, (void)n;
	return 0;
}

bool api__tool_calls_final(const api_request *req, int32_t idx)
{
	const api__choice *c = &req->choices[idx];
	tp_sink k = {.content = nop_text, .head = nop_head, .args = nop_args};
	api__tparse st;
	if (!req->tool_parse || !api__tool_forced(req) || several_calls(req))
		return false;
	api__tool_choice_init(req, &st);
	return tp_run(&SYNTAX[req->tool_syntax], false, &st, c->text.data ? c->text.data : "",
	              c->text.len, true, &k) == 0 &&
	       st.n_calls > 0 && st.phase == API__TP_AFTER;
}

bool api__tool_calls_done(const api_request *req, int32_t idx)
{
	const api__tparse *tp = &req->choices[idx].tp;
	return tp->n_calls > 0 && tp->phase == API__TP_AFTER;
}

/* ---- non-streamed ---- */

typedef struct {
	const api_request *req;
	int32_t idx;
	mllm_buf content;
	json_t *calls;
	mllm_buf args; /* the last call's arguments so far */
} collect_ctx;

static void co_close_call(collect_ctx *x)
{
	json_t *last = json_array_get(x->calls, json_array_size(x->calls) - 1);
	if (!last)
		return;
	json_object_set_new(json_object_get(last, "function"), "arguments",
	                    api__json_text(x->args.data ? x->args.data : "", x->args.len));
	x->args.len = 0;
}

static int co_content(void *ctx, const char *p, size_t n)
{
	collect_ctx *x = ctx;
	return mllm_buf_append(&x->content, p, n);
}

static int co_head(void *ctx, int32_t call, const char *name)
{
	collect_ctx *x = ctx;
	char id[64];
	co_close_call(x);
	call_id(x->req, x->idx, call, id, sizeof id);
	json_array_append_new(x->calls,
	                      json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id, "type", "function",
	                                "function", "name", name, "arguments", ""));
	return 0;
}

static int co_args(void *ctx, int32_t call, const char *p, size_t n)
{
	collect_ctx *x = ctx;
	(void)call;
	return mllm_buf_append(&x->args, p, n);
}

bool api__tool_message_json(const api_request *req, int32_t idx, json_t *msg)
{
	const api__choice *c = &req->choices[idx];
	collect_ctx x = {.req = req, .idx = idx};
	tp_sink k = {.content = co_content, .head = co_head, .args = co_args, .ctx = &x};
	api__tparse st;
	bool ok, blank = true;
	if (!c->done)
		return false;
	api__tool_choice_init(req, &st);
	mllm_buf_init(&x.content, SIZE_MAX / 2);
	mllm_buf_init(&x.args, SIZE_MAX / 2);
	x.calls = json_array();
	ok = tp_run(&SYNTAX[req->tool_syntax], several_calls(req), &st,
	            c->text.data ? c->text.data : "", c->text.len, true, &k) == 0;
	co_close_call(&x);
	/* Only complete calls replace the text (their arguments always
	 * parse). When max_tokens cut a later call, the complete ones before
	 * it still come out as calls (finish_reason "length"), the cut one is
	 * dropped; cut inside the first call, or by a stop string, the output
	 * stays text for the client to judge. */
	if (ok && st.phase != API__TP_AFTER && c->finish == MLLM_FINISH_LENGTH &&
	    (st.phase == API__TP_ARGS || st.phase == API__TP_CLOSE) && st.n_calls > 0) {
		json_array_remove(x.calls, json_array_size(x.calls) - 1);
		st.n_calls--;
	}
	ok = ok && st.n_calls > 0 &&
	     (st.phase == API__TP_AFTER || (c->finish == MLLM_FINISH_LENGTH &&
	                                    st.phase != API__TP_TEXT && st.phase != API__TP_PLAIN));
	if (ok) {
		for (size_t i = 0; i < x.content.len && blank; i++)
			blank = x.content.data[i] == ' ' || x.content.data[i] == '\n' ||
			        x.content.data[i] == '\t' || x.content.data[i] == '\r';
		json_object_set_new(msg, "content",
		                    blank ? json_null()
		                          : api__json_text(x.content.data, x.content.len));
		json_object_set(msg, "tool_calls", x.calls);
	}
	json_decref(x.calls);
	mllm_buf_free(&x.content);
	mllm_buf_free(&x.args);
	return ok;
}

void api__tools_free(api_request *req)
{
	json_decref(req->tools);
	free(req->tool_name);
}
