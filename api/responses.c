/*
 * responses.c — POST /v1/responses on top of the chat machinery: input
 * items (messages, function calls and their outputs) become chat messages,
 * tools and text.format become the chat's tools and response_format, and
 * the request then runs as a chat of one choice. What is new here is the
 * output (the response object, and the typed event stream with
 * sequence_number) and the conversation state: a finished response becomes
 * an api_resp_record holding the conversation as chat messages and as the
 * token ids the engine saw, so the next turn (previous_response_id) sends
 * the kept ids verbatim and only encodes the new text. The prompt then
 * starts with exactly the blocks the prefix cache holds.
 *
 * The stream is built from what the chat renderer accumulates (content,
 * reasoning): after every engine event the new bytes become deltas, and
 * items are opened and closed around them in output order.
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "api_internal.h"

#define RESP_MAX_METADATA     16
#define RESP_MAX_METADATA_KEY 64
#define RESP_MAX_METADATA_VAL 512
#define RESP_MAX_ID           96 /* longer previous_response_id: never ours */
#define ITEMS_LIMIT_DEFAULT   20
#define ITEMS_LIMIT_MAX       100

/* An immutable record of a finished response (api.h). */
struct api_resp_record {
	atomic_int refs;
	char id[64];
	char *model;
	char *body; /* the response object, compact JSON */
	size_t body_len;
	char *items; /* JSON array of its input items (with ids) */
	size_t items_len;
	char *messages; /* JSON array: the conversation as chat messages,
	                 * this response's output included, instructions not */
	size_t messages_len;
	int32_t *ids; /* the conversation's tokens as the engine saw them */
	size_t n_ids;
	char *text; /* the text those ids encode (after a template's BOS text) */
	size_t text_len;
};

enum { ITEM_NONE = 0, ITEM_OPEN, ITEM_DONE };

typedef struct api__resp {
	bool stream, store, trunc_auto;
	bool summary; /* reasoning.summary asked: the reasoning as its summary */
	char affinity[API_RESP_AFFINITY_LEN + 1];
	char *prev_id;
	api_resp_record *prev;
	json_t *pending_input; /* input holding item references, until resolved */
	int32_t max_items;     /* the input's item limit (max_messages) */
	json_t *instructions;  /* string or NULL */
	json_t *input_msgs;    /* chat messages translated from input */
	json_t *msg_items;     /* per input_msgs entry, the input item index */
	json_t *input_items;   /* the input as items with ids (input_items) */
	json_t *chat_tools;    /* tools in the chat shape, or NULL */
	json_t *echo;          /* request fields the response object repeats */
	json_t *history;       /* conversation used (no instructions), after truncation */
	int32_t n_drop;        /* oldest messages dropped (truncation auto) */
	char *prompt_text;     /* the rendered prompt, for the record */
	size_t prompt_len;
	int64_t reused; /* ids taken from the previous response */
	/* Tokens generated (TOKEN events) and their bytes. */
	int32_t *gen;
	size_t n_gen, cap_gen;
	mllm_buf gen_text;
	/* Stream state. */
	int64_t seq;
	char msg_id[64], rs_id[64], fc_id[64];
	int n_out; /* output items opened so far */
	int rs_state, msg_state;
	int rs_index, msg_index;
	size_t sent_text, sent_reason;
	size_t lp_sent, lp_bytes; /* logprob entries on deltas, and their bytes */
	bool lp_fixed;            /* the first entry's leading space settled */
	json_t *final;            /* the finished response object */
} api__resp;

/* ---- helpers ------------------------------------------------------------------ */

static int bad(api_error *e, const char *param, const char *code, const char *what)
{
	return api_error_set(e, 400, param, code, "'%s' %s", param, what);
}

/* The reasoning efforts OpenAI's Reasoning object names. */
static bool effort_ok(const char *t)
{
	static const char *const efforts[] = {"none", "minimal", "low", "medium",
	                                      "high", "xhigh",   "max"};
	for (size_t i = 0; i < sizeof efforts / sizeof *efforts; i++)
		if (strcmp(t, efforts[i]) == 0)
			return true;
	return false;
}

/* obj[key] as sent (a new reference), or null when absent. */
static json_t *echo_or_null(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return v ? json_incref(v) : json_null();
}

static json_t *jtext(const char *p, size_t n)
{
	return api__json_text(p ? p : "", n);
}

/* As the live answers are written (api__json_append's precision): a
 * retrieve gives back the numbers the response had. */
static char *dump(const json_t *j, size_t *len)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
	MLLM_ASSERT(s);
	*len = strlen(s);
	return s;
}

/* Text of a content list: input_text / output_text parts joined with "\n"
 * (as chat joins its text parts); NULL with e filled otherwise. */
static json_t *content_text(json_t *c, const char *param, api_error *e)
{
	mllm_buf b;
	char p[64];
	if (json_is_string(c))
		return json_incref(c);
	if (!json_is_array(c)) {
		bad(e, param, "invalid_type", "must be a string or an array of content parts.");
		return NULL;
	}
	mllm_buf_init(&b, SIZE_MAX / 2);
	for (size_t j = 0; j < json_array_size(c); j++) {
		json_t *part = json_array_get(c, j);
		const char *type = json_string_value(json_object_get(part, "type"));
		json_t *text = json_object_get(part, "text");
		snprintf(p, sizeof p, "%s[%zu]", param, j);
		if (!type || !(strcmp(type, "input_text") == 0 ||
		               strcmp(type, "output_text") == 0 || strcmp(type, "text") == 0)) {
			mllm_buf_free(&b);
			if (type &&
			    (strncmp(type, "input_", 6) == 0 || strcmp(type, "refusal") == 0))
				api_error_set(e, 400, p, "unsupported_parameter",
				              "'%s' is '%s'; only text content (input_text, "
				              "output_text) is supported.",
				              p, type);
			else
				bad(e, p, "invalid_value",
				    "must be {\"type\": \"input_text\", \"text\": string}.");
			return NULL;
		}
		if (!json_is_string(text)) {
			mllm_buf_free(&b);
			snprintf(p, sizeof p, "%s[%zu].text", param, j);
			bad(e, p, "invalid_type", "must be a string.");
			return NULL;
		}
		if ((j > 0 && mllm_buf_append(&b, "\n", 1) != 0) ||
		    mllm_buf_append(&b, json_string_value(text), json_string_length(text)) != 0) {
			mllm_buf_free(&b);
			api_error_set(e, 503, NULL, "overloaded", "Out of memory.");
			return NULL;
		}
	}
	{
		json_t *s = jtext(b.data, b.len);
		mllm_buf_free(&b);
		return s;
	}
}

static json_t *text_parts(const char *type, json_t *text)
{
	json_t *part = json_pack("{s:s,s:O}", "type", type, "text", text);
	MLLM_ASSERT(part);
	if (strcmp(type, "output_text") == 0)
		json_object_set_new(part, "annotations", json_array());
	return json_pack("[o]", part);
}

static void item_id(json_t *item, const char *prefix)
{
	json_t *id = json_object_get(item, "id");
	char buf[64];
	if (json_is_string(id))
		return;
	api__make_id(buf, sizeof buf, prefix);
	json_object_set_new(item, "id", json_string(buf));
}

/* ---- input items → chat messages --------------------------------------------- */

static int input_message(api__resp *r, json_t *it, size_t i, api_error *e)
{
	const char *role = json_string_value(json_object_get(it, "role"));
	char p[64];
	json_t *text, *item;
	bool assistant;
	snprintf(p, sizeof p, "input[%zu].role", i);
	if (!role || !(strcmp(role, "user") == 0 || strcmp(role, "system") == 0 ||
	               strcmp(role, "developer") == 0 || strcmp(role, "assistant") == 0))
		return bad(e, p, "invalid_value",
		           "must be one of 'user', 'system', 'developer', 'assistant'.");
	snprintf(p, sizeof p, "input[%zu].content", i);
	text = content_text(json_object_get(it, "content"), p, e);
	if (!text)
		return e->status;
	assistant = strcmp(role, "assistant") == 0;
	json_array_append_new(r->input_msgs, json_pack("{s:s,s:O}", "role", role, "content", text));
	json_array_append_new(r->msg_items, json_integer((json_int_t)i));
	item = json_pack("{s:s,s:s,s:o,s:s}", "type", "message", "role", role, "content",
	                 text_parts(assistant ? "output_text" : "input_text", text), "status",
	                 "completed");
	if (json_is_string(json_object_get(it, "id")))
		json_object_set(item, "id", json_object_get(it, "id"));
	item_id(item, "msg_");
	json_array_append_new(r->input_items, item);
	json_decref(text);
	return 0;
}

static int input_call(api__resp *r, json_t *it, size_t i, api_error *e)
{
	json_t *call_id = json_object_get(it, "call_id"), *name = json_object_get(it, "name");
	json_t *args = json_object_get(it, "arguments"), *last, *call, *item;
	char p[64];
	snprintf(p, sizeof p, "input[%zu].call_id", i);
	if (!json_is_string(call_id))
		return bad(e, p, "invalid_type", "must be a string.");
	snprintf(p, sizeof p, "input[%zu].name", i);
	if (!json_is_string(name))
		return bad(e, p, "invalid_type", "must be a string.");
	snprintf(p, sizeof p, "input[%zu].arguments", i);
	if (!json_is_string(args))
		return bad(e, p, "invalid_type", "must be a string (JSON text).");
	call = json_pack("{s:O,s:s,s:{s:O,s:O}}", "id", call_id, "type", "function", "function",
	                 "name", name, "arguments", args);
	/* Calls in a row are one assistant turn (parallel calls), and so is
	 * an assistant message followed by calls (one response's output, as
	 * previous_response_id stores it). */
	last = json_array_get(r->input_msgs, json_array_size(r->input_msgs) - 1);
	if (last && json_is_array(json_object_get(last, "tool_calls"))) {
		json_array_append_new(json_object_get(last, "tool_calls"), call);
	} else if (last &&
	           strcmp(json_string_value(json_object_get(last, "role")), "assistant") == 0) {
		json_object_set_new(last, "tool_calls", json_pack("[o]", call));
	} else {
		json_array_append_new(r->input_msgs,
		                      json_pack("{s:s,s:s,s:[o]}", "role", "assistant", "content",
		                                "", "tool_calls", call));
		json_array_append_new(r->msg_items, json_integer((json_int_t)i));
	}
	item = json_pack("{s:s,s:O,s:O,s:O,s:s}", "type", "function_call", "call_id", call_id,
	                 "name", name, "arguments", args, "status", "completed");
	if (json_is_string(json_object_get(it, "id")))
		json_object_set(item, "id", json_object_get(it, "id"));
	item_id(item, "fc_");
	json_array_append_new(r->input_items, item);
	return 0;
}

static int input_call_output(api__resp *r, json_t *it, size_t i, api_error *e)
{
	json_t *call_id = json_object_get(it, "call_id"), *out, *item;
	char p[64];
	snprintf(p, sizeof p, "input[%zu].call_id", i);
	if (!json_is_string(call_id))
		return bad(e, p, "invalid_type", "must be a string.");
	snprintf(p, sizeof p, "input[%zu].output", i);
	out = content_text(json_object_get(it, "output"), p, e);
	if (!out)
		return e->status;
	json_array_append_new(r->input_msgs, json_pack("{s:s,s:O,s:O}", "role", "tool",
	                                               "tool_call_id", call_id, "content", out));
	json_array_append_new(r->msg_items, json_integer((json_int_t)i));
	item = json_pack("{s:s,s:O,s:O,s:s}", "type", "function_call_output", "call_id", call_id,
	                 "output", out, "status", "completed");
	if (json_is_string(json_object_get(it, "id")))
		json_object_set(item, "id", json_object_get(it, "id"));
	item_id(item, "fco_");
	json_array_append_new(r->input_items, item);
	json_decref(out);
	return 0;
}

/* A reasoning item: kept in input_items as sent (with an id); earlier
 * reasoning is not shown to the model again. */
static int input_reasoning(api__resp *r, json_t *it)
{
	json_t *item = json_deep_copy(it);
	if (!json_is_array(json_object_get(item, "summary")))
		json_object_set_new(item, "summary", json_array());
	item_id(item, "rs_");
	json_array_append_new(r->input_items, item);
	return 0;
}

/* An input item's type: as given; without one, a message when it has a
 * role, else an item reference when it has an id (the SDKs' ItemReference
 * makes type optional). NULL when none applies. */
static const char *item_type(const json_t *it)
{
	const char *type = json_string_value(json_object_get(it, "type"));
	if (type || !json_is_object(it))
		return type;
	if (json_object_get(it, "role"))
		return "message";
	/* an id alone: other fields (call_id, output) are an item of
	 * another type that lacks its type */
	if (json_object_get(it, "id") &&
	    json_object_size(it) == (json_object_get(it, "type") ? 2u : 1u))
		return "item_reference";
	return NULL;
}

/* Whether the input holds item references (their ids checked), which wait
 * for api_request_resolve_items. */
static int has_refs(json_t *in, bool *refs, api_error *e)
{
	size_t i;
	json_t *it;
	*refs = false;
	json_array_foreach(in, i, it)
	{
		const char *type = item_type(it);
		char p[64];
		if (!type || strcmp(type, "item_reference") != 0)
			continue;
		snprintf(p, sizeof p, "input[%zu].id", i);
		if (!json_is_string(json_object_get(it, "id")))
			return bad(e, p,
			           json_object_get(it, "id") ? "invalid_type"
			                                     : "missing_required_parameter",
			           "must be the id of a stored response's output item.");
		*refs = true;
	}
	return 0;
}

static int parse_input(api__resp *r, json_t *root, api_error *e)
{
	json_t *in = json_object_get(root, "input"), *it;
	size_t i;
	bool refs;
	int rc;
	if (!r->input_msgs) {
		r->input_msgs = json_array();
		r->msg_items = json_array();
		r->input_items = json_array();
	}
	if (!in || json_is_null(in))
		return api_error_set(e, 400, "input", "missing_required_parameter",
		                     "'input' is required.");
	if (json_is_string(in)) {
		json_t *one = json_pack("{s:s,s:O}", "role", "user", "content", in);
		rc = input_message(r, one, 0, e);
		json_decref(one);
		return rc;
	}
	if (!json_is_array(in))
		return bad(e, "input", "invalid_type", "must be a string or an array of items.");
	if (json_array_size(in) == 0)
		return bad(e, "input", "invalid_value", "must not be empty.");
	if (json_array_size(in) > (size_t)r->max_items)
		return api_error_set(e, 400, "input", "invalid_value",
		                     "At most %d input items per request, got %zu.",
		                     (int)r->max_items, json_array_size(in));
	rc = has_refs(in, &refs, e);
	if (rc)
		return rc;
	if (refs) {
		r->pending_input = json_incref(in);
		return 0;
	}
	json_array_foreach(in, i, it)
	{
		const char *type = item_type(it);
		char p[64];
		snprintf(p, sizeof p, "input[%zu]", i);
		if (!json_is_object(it))
			return bad(e, p, "invalid_type", "must be an input item object.");
		/* Item ids name items (input_items' after= cursor): unique. */
		if (json_is_string(json_object_get(it, "id"))) {
			const char *id = json_string_value(json_object_get(it, "id"));
			size_t k;
			json_t *prev;
			json_array_foreach(in, k, prev)
			{
				if (k >= i)
					break;
				if (json_is_object(prev) && json_equal(json_object_get(prev, "id"),
				                                       json_object_get(it, "id"))) {
					snprintf(p, sizeof p, "input[%zu].id", i);
					return api_error_set(e, 400, p, "invalid_value",
					                     "Duplicate item found with id '%.64s' "
					                     "(input[%zu] has it too).",
					                     id, k);
				}
			}
		}
		snprintf(p, sizeof p, "input[%zu].type", i);
		if (!type)
			return bad(e, p, "missing_required_parameter", "is required.");
		if (strcmp(type, "message") == 0)
			rc = input_message(r, it, i, e);
		else if (strcmp(type, "function_call") == 0)
			rc = input_call(r, it, i, e);
		else if (strcmp(type, "function_call_output") == 0)
			rc = input_call_output(r, it, i, e);
		else if (strcmp(type, "reasoning") == 0)
			rc = input_reasoning(r, it); /* listed, not shown to the model */
		else
			rc = api_error_set(e, 400, p, "unsupported_parameter",
			                   "Input items of type '%.40s' are not supported; use "
			                   "'message', 'function_call', 'function_call_output', "
			                   "'reasoning' or 'item_reference'.",
			                   type);
		if (rc)
			return rc;
	}
	if (json_array_size(r->input_msgs) == 0)
		return bad(e, "input", "invalid_value", "holds no message or function call.");
	return 0;
}

/* ---- tools, tool_choice, text.format → the chat shapes ----------------------- */

static int parse_tools(api__resp *r, json_t *root, json_t *synth, api_error *e)
{
	json_t *tools = json_object_get(root, "tools"), *tc = json_object_get(root, "tool_choice");
	json_t *t;
	size_t i;
	char p[64];
	if (tools && !json_is_null(tools)) {
		if (!json_is_array(tools))
			return bad(e, "tools", "invalid_type",
			           "must be an array of function tools.");
		r->chat_tools = json_array();
		json_array_foreach(tools, i, t)
		{
			const char *type = json_string_value(json_object_get(t, "type"));
			json_t *f;
			snprintf(p, sizeof p, "tools[%zu].type", i);
			if (!json_is_object(t) || !type)
				return bad(e, p, "invalid_value", "must be 'function'.");
			if (strcmp(type, "function") != 0)
				return api_error_set(
				    e, 400, p, "unsupported_parameter",
				    "Built-in tools ('%.40s') are not supported; only "
				    "function tools are.",
				    type);
			f = json_object();
			json_object_set(f, "name", json_object_get(t, "name"));
			if (json_object_get(t, "description"))
				json_object_set(f, "description",
				                json_object_get(t, "description"));
			if (json_object_get(t, "parameters"))
				json_object_set(f, "parameters", json_object_get(t, "parameters"));
			if (json_object_get(t, "strict")) /* checked there as chat's */
				json_object_set(f, "strict", json_object_get(t, "strict"));
			json_array_append_new(r->chat_tools, json_pack("{s:s,s:o}", "type",
			                                               "function", "function", f));
		}
		json_object_set(synth, "tools", r->chat_tools);
	}
	if (json_is_object(tc)) {
		const char *type = json_string_value(json_object_get(tc, "type"));
		json_t *name = json_object_get(tc, "name");
		if (!type || strcmp(type, "function") != 0 || !json_is_string(name))
			return api_error_set(e, 400, "tool_choice", "unsupported_parameter",
			                     "'tool_choice' must be 'none', 'auto', 'required' or "
			                     "{\"type\": \"function\", \"name\": ...}.");
		json_object_set_new(
		    synth, "tool_choice",
		    json_pack("{s:s,s:{s:O}}", "type", "function", "function", "name", name));
	} else if (tc) {
		json_object_set(synth, "tool_choice", tc);
	}
	if (json_object_get(root, "parallel_tool_calls"))
		json_object_set(synth, "parallel_tool_calls",
		                json_object_get(root, "parallel_tool_calls"));
	return 0;
}

static int parse_text(json_t *root, json_t *synth, api_error *e)
{
	json_t *text = json_object_get(root, "text"), *f, *schema, *strict;
	const char *type;
	if (!text || json_is_null(text))
		return 0;
	if (!json_is_object(text))
		return bad(e, "text", "invalid_type", "must be an object.");
	f = json_object_get(text, "format");
	if (!f || json_is_null(f))
		return 0;
	if (!json_is_object(f))
		return bad(e, "text.format", "invalid_type", "must be an object.");
	type = json_string_value(json_object_get(f, "type"));
	if (!type || !(strcmp(type, "text") == 0 || strcmp(type, "json_object") == 0 ||
	               strcmp(type, "json_schema") == 0))
		return bad(e, "text.format.type", "invalid_value",
		           "must be 'text', 'json_object' or 'json_schema'.");
	if (strcmp(type, "json_schema") != 0) {
		json_object_set_new(synth, "response_format", json_pack("{s:s}", "type", type));
		return 0;
	}
	if (!json_is_string(json_object_get(f, "name")))
		return bad(e, "text.format.name", "invalid_type", "must be a string.");
	schema = json_object_get(f, "schema");
	if (!json_is_object(schema))
		return bad(e, "text.format.schema", "invalid_type",
		           "must be a JSON Schema object.");
	strict = json_object_get(f, "strict");
	if (strict && !json_is_null(strict) && !json_is_boolean(strict))
		return bad(e, "text.format.strict", "invalid_type", "must be a boolean.");
	json_object_set_new(synth, "response_format",
	                    json_pack("{s:s,s:{s:O,s:O}}", "type", "json_schema", "json_schema",
	                              "name", json_object_get(f, "name"), "schema", schema));
	return 0;
}

/* Fields with no equivalent here: a 400 naming them rather than a silent
 * difference. */
static int refuse_unsupported(json_t *root, api_error *e)
{
	static const char *const fields[] = {"conversation", "prompt", "background"};
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		json_t *v = json_object_get(root, fields[i]);
		if (!v || json_is_null(v) || json_is_false(v))
			continue;
		return api_error_set(e, 400, fields[i], "unsupported_parameter",
		                     "'%s' is not supported by this server.", fields[i]);
	}
	return 0;
}

static int parse_metadata(json_t *root, api_error *e)
{
	json_t *md = json_object_get(root, "metadata"), *v;
	const char *k;
	if (!md || json_is_null(md))
		return 0;
	if (!json_is_object(md))
		return bad(e, "metadata", "invalid_type", "must be an object of strings.");
	if (json_object_size(md) > RESP_MAX_METADATA)
		return api_error_set(e, 400, "metadata", "invalid_value",
		                     "'metadata' holds at most %d keys.", RESP_MAX_METADATA);
	json_object_foreach(md, k, v)
	{
		/* Characters, as OpenAI counts them, not bytes. */
		if (api__utf8_chars(k, strlen(k)) > RESP_MAX_METADATA_KEY || !json_is_string(v) ||
		    api__utf8_chars(json_string_value(v), json_string_length(v)) >
		        RESP_MAX_METADATA_VAL)
			return api_error_set(e, 400, "metadata", "invalid_value",
			                     "'metadata' maps keys of at most %d characters to "
			                     "strings of at most %d.",
			                     RESP_MAX_METADATA_KEY, RESP_MAX_METADATA_VAL);
	}
	return 0;
}

/* 24 hex digits from the kernel's generator: a stored response is read by
 * whoever knows its id, so ids must not be guessable from the clock and a
 * counter (api__make_id's labels, which it falls back to). */
static void random_hex(char *out, size_t n_hex)
{
	unsigned char b[32];
	size_t n = (n_hex + 1) / 2;
	if (n > sizeof b || getrandom(b, n, 0) != (ssize_t)n) {
		char u[64];
		api__make_id(u, sizeof u, ""); /* 24 hex digits */
		memcpy(out, u, n_hex < 24 ? n_hex : 24);
		out[n_hex < 24 ? n_hex : 24] = '\0';
		return;
	}
	for (size_t i = 0; i < n_hex; i++)
		out[i] = "0123456789abcdef"[(b[i / 2] >> (i % 2 ? 0 : 4)) & 15];
	out[n_hex] = '\0';
}

/* The response id, and its output items' ids: the same 40 hex digits
 * after their own prefix, so that an item reference finds its response in
 * the store (api_request_resolve_items). */
static void make_id(api_request *req)
{
	api__resp *r = req->resp;
	char u[32];
	random_hex(u, 24);
	snprintf(req->id, sizeof req->id, "resp_%.16s%.24s", r->affinity, u);
	snprintf(r->msg_id, sizeof r->msg_id, "msg_%s", req->id + 5);
	snprintf(r->rs_id, sizeof r->rs_id, "rs_%s", req->id + 5);
	snprintf(r->fc_id, sizeof r->fc_id, "fc_%s", req->id + 5);
}

/* A sampling number as the response repeats it: as sent, else the value in
 * use (a float) at its shortest, 0.7 rather than 0.699999988. */
static json_t *echo_number(const json_t *sent, float used)
{
	char b[32];
	if (json_is_number(sent))
		return json_real(json_number_value(sent));
	snprintf(b, sizeof b, "%.7g", (double)used);
	return json_real(strtod(b, NULL));
}

static int parse_responses(api_request *req, json_t *root, const api_limits *lim, api_error *e)
{
	api__resp *r = xcalloc(1, sizeof *r);
	json_t *v, *synth;
	long long x;
	bool has;
	int rc;
	char aff[64];

	req->resp = r;
	r->store = true;
	mllm_buf_init(&r->gen_text, SIZE_MAX / 2);
	random_hex(aff, API_RESP_AFFINITY_LEN);
	memcpy(r->affinity, aff, API_RESP_AFFINITY_LEN);
	make_id(req);

	rc = refuse_unsupported(root, e);
	if (rc)
		return rc;
	v = json_object_get(root, "model");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v))
			return bad(e, "model", "invalid_type", "must be a string.");
		req->model = xstrndup(json_string_value(v), json_string_length(v));
	}
	v = json_object_get(root, "user");
	if (v && !json_is_null(v) && !json_is_string(v))
		return bad(e, "user", "invalid_type", "must be a string.");
	rc = parse_metadata(root, e);
	if (rc == 0)
		rc = api__get_real(root, "temperature", 0.0, 2.0, &req->sp.temperature, e);
	if (rc == 0)
		rc = api__get_top_p(root, &req->sp.top_p, e);
	if (rc == 0)
		rc = api__get_bool(root, "stream", &r->stream, e);
	if (rc == 0)
		rc = api__get_bool(root, "store", &r->store, e);
	if (rc)
		return rc;
	rc = api__get_int(root, "max_output_tokens", 1, lim->max_tokens, &x, &has, e);
	if (rc)
		return rc;
	req->has_max_tokens = has;
	req->max_tokens = has ? (int32_t)x : 0;
	v = json_object_get(root, "instructions");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v))
			return bad(e, "instructions", "invalid_type", "must be a string.");
		if (json_string_length(v) > 0)
			r->instructions = json_incref(v);
	}
	v = json_object_get(root, "previous_response_id");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v))
			return bad(e, "previous_response_id", "invalid_type", "must be a string.");
		r->prev_id = xstrndup(json_string_value(v), json_string_length(v));
	}
	v = json_object_get(root, "truncation");
	if (v && !json_is_null(v)) {
		const char *t = json_string_value(v);
		if (!t || !(strcmp(t, "auto") == 0 || strcmp(t, "disabled") == 0))
			return bad(e, "truncation", "invalid_value",
			           "must be 'auto' or 'disabled'.");
		r->trunc_auto = strcmp(t, "auto") == 0;
	}
	v = json_object_get(root, "reasoning");
	if (v && !json_is_null(v) && !json_is_object(v))
		return bad(e, "reasoning", "invalid_type", "must be an object.");
	{
		json_t *sm = json_object_get(v, "summary");
		const char *t = json_string_value(sm);
		if (sm && !json_is_null(sm) &&
		    !(t && (strcmp(t, "auto") == 0 || strcmp(t, "concise") == 0 ||
		            strcmp(t, "detailed") == 0)))
			return bad(e, "reasoning.summary", "invalid_value",
			           "must be 'auto', 'concise' or 'detailed'.");
		r->summary = t != NULL;
		sm = json_object_get(v, "effort");
		t = json_string_value(sm);
		if (sm && !json_is_null(sm) && !t)
			return bad(e, "reasoning.effort", "invalid_type", "must be a string.");
		if (sm && !json_is_null(sm) && !effort_ok(t))
			return bad(e, "reasoning.effort", "invalid_value",
			           "must be 'none', 'minimal', 'low', 'medium', 'high', 'xhigh' "
			           "or 'max'.");
	}
	v = json_object_get(root, "include");
	if (v && !json_is_null(v) && !json_is_array(v))
		return bad(e, "include", "invalid_type", "must be an array of strings.");
	bool has_tl;
	long long tl;
	{
		size_t i;
		json_t *it;
		bool lp = false;
		json_array_foreach(v, i, it)
		{
			if (!json_is_string(it))
				return bad(e, "include", "invalid_type",
				           "must be an array of strings.");
			lp = lp ||
			     strcmp(json_string_value(it), "message.output_text.logprobs") == 0;
		}
		/* its own variables: `has` still says whether max_output_tokens
		 * was sent (the response echoes it below) */
		rc = api__get_int(root, "top_logprobs", 0, MLLM_MAX_TOP_LOGPROBS, &tl, &has_tl, e);
		if (rc)
			return rc;
		req->logprobs = lp ? (has_tl ? (int32_t)tl : 0) : -1;
	}

	synth = json_object();
	rc = parse_text(root, synth, e);
	if (rc == 0)
		rc = parse_tools(r, root, synth, e);
	if (rc == 0)
		rc = api__parse_structured(req, synth, e);
	if (rc == 0)
		rc = api__parse_tools(req, synth, e);
	json_decref(synth);
	if (rc)
		return rc;
	r->max_items = lim->max_messages;
	rc = parse_input(r, root, e);
	if (rc)
		return rc;

	/* What the response object repeats back. */
	r->echo = json_object();
	json_object_set_new(r->echo, "instructions",
	                    r->instructions ? json_incref(r->instructions) : json_null());
	json_object_set_new(r->echo, "max_output_tokens",
	                    has ? json_integer(req->max_tokens) : json_null());
	/* OpenAI's cap on built-in tool calls (none run here): checked and
	 * echoed; function calls follow parallel_tool_calls. */
	{
		long long mtc;
		bool has_mtc;
		rc = api__get_int(root, "max_tool_calls", 1, INT32_MAX, &mtc, &has_mtc, e);
		if (rc)
			return rc;
		json_object_set_new(r->echo, "max_tool_calls",
		                    has_mtc ? json_integer(mtc) : json_null());
	}
	v = json_object_get(root, "parallel_tool_calls");
	json_object_set_new(r->echo, "parallel_tool_calls",
	                    json_is_boolean(v) ? json_incref(v) : json_true());
	/* The Reasoning object's two fields, as sent (both checked above). */
	v = json_object_get(root, "reasoning");
	json_object_set_new(r->echo, "reasoning",
	                    json_pack("{s:o,s:o}", "effort", echo_or_null(v, "effort"), "summary",
	                              echo_or_null(v, "summary")));
	json_object_set_new(r->echo, "store", json_boolean(r->store));
	json_object_set_new(r->echo, "temperature",
	                    echo_number(json_object_get(root, "temperature"), req->sp.temperature));
	v = json_object_get(root, "text");
	json_object_set_new(r->echo, "text",
	                    json_is_object(v) && json_is_object(json_object_get(v, "format"))
	                        ? json_pack("{s:O}", "format", json_object_get(v, "format"))
	                        : json_pack("{s:{s:s}}", "format", "type", "text"));
	v = json_object_get(root, "tool_choice");
	json_object_set_new(r->echo, "tool_choice",
	                    v && !json_is_null(v) ? json_deep_copy(v) : json_string("auto"));
	v = json_object_get(root, "tools");
	json_object_set_new(r->echo, "tools", json_is_array(v) ? json_deep_copy(v) : json_array());
	{
		/* OpenAI's FunctionTool has description, parameters and strict
		 * always: as sent, else null (strict: true, the Responses API's
		 * default; the arguments of a call follow the schema here either
		 * way). */
		static const char *const keys[] = {"description", "parameters"};
		size_t i;
		json_t *t;
		json_array_foreach(json_object_get(r->echo, "tools"), i, t)
		{
			for (size_t k = 0; json_is_object(t) && k < 2; k++)
				if (!json_object_get(t, keys[k]))
					json_object_set_new(t, keys[k], json_null());
			if (json_is_object(t) && !json_object_get(t, "strict"))
				json_object_set_new(t, "strict", json_true());
		}
	}
	/* as sent, whether or not include asks for the logprobs */
	json_object_set_new(r->echo, "top_logprobs", json_integer(has_tl ? tl : 0));
	json_object_set_new(r->echo, "top_p",
	                    echo_number(json_object_get(root, "top_p"), req->sp.top_p));
	json_object_set_new(r->echo, "truncation",
	                    json_string(r->trunc_auto ? "auto" : "disabled"));
	v = json_object_get(root, "user");
	json_object_set_new(r->echo, "user", json_is_string(v) ? json_incref(v) : json_null());
	v = json_object_get(root, "metadata");
	json_object_set_new(r->echo, "metadata",
	                    json_is_object(v) ? json_deep_copy(v) : json_object());
	return 0;
}

int api__parse_responses(api_request *req, json_t *root, const api_limits *lim, api_error *e)
{
	int rc = parse_responses(req, root, lim, e);
	if (rc)
		api__resp_fix_error(req, e);
	return rc;
}

/* Replaces the first `from` in e's message by `to`, then sets the param. */
static void set_param(api_error *e, const char *to)
{
	char *at = strstr(e->message, e->param);
	if (e->param[0] && at) {
		char msg[sizeof e->message];
		size_t fl = strlen(e->param);
		snprintf(msg, sizeof msg, "%.*s%s%s", (int)(at - e->message), e->message, to,
		         at + fl);
		snprintf(e->message, sizeof e->message, "%s", msg);
	}
	snprintf(e->param, sizeof e->param, "%s", to);
}

void api__resp_fix_error(const api_request *req, api_error *e)
{
	const api__resp *r = req->resp;
	const char *p = e->param;
	char to[64];
	if (!r || !p[0])
		return;
	if (strncmp(p, "tools[", 6) == 0 && strstr(p, "].function")) {
		/* Responses tools are flat: tools[i].name, not .function.name. */
		const char *f = strstr(p, "].function");
		snprintf(to, sizeof to, "%.*s]%s", (int)(f - p), p, f + 10);
		set_param(e, to);
	} else if (strncmp(p, "response_format", 15) == 0) {
		const char *rest = p + 15;
		if (strncmp(rest, ".json_schema.", 13) == 0) /* .schema, .name, .strict */
			snprintf(to, sizeof to, "text.format.%s", rest + 13);
		else if (!*rest && req->rf_schema)
			snprintf(to, sizeof to, "text.format.schema"); /* it compiled badly */
		else
			snprintf(to, sizeof to, "text.format");
		set_param(e, to);
	} else if (strncmp(p, "messages", 8) == 0) {
		/* The chat messages are [instructions] + the kept history (the
		 * previous conversation, then this input's messages). */
		long k = -1;
		const char *rest = p + 8;
		int instr = r->instructions ? 1 : 0;
		if (*rest == '[') {
			char *end;
			k = strtol(rest + 1, &end, 10);
			rest = *end == ']' ? end + 1 : "";
		}
		if (k < 0) {
			snprintf(to, sizeof to, "input");
		} else if (instr && k == 0) {
			snprintf(to, sizeof to, "instructions");
		} else {
			long n_in = (long)json_array_size(r->input_msgs);
			long n_hist = r->history ? (long)json_array_size(r->history) : n_in;
			long mi = n_in - n_hist + (k - instr);
			json_t *item = json_array_get(r->msg_items, (size_t)(mi < 0 ? 0 : mi));
			json_t *msg = json_array_get(r->input_msgs, (size_t)(mi < 0 ? 0 : mi));
			const char *role = json_string_value(json_object_get(msg, "role"));
			bool out = role && strcmp(role, "tool") == 0; /* function_call_output */
			if (mi < 0 || !item)
				snprintf(to, sizeof to, "previous_response_id");
			else if (strncmp(rest, ".content", 8) == 0)
				snprintf(to, sizeof to, "input[%lld]%s%s",
				         (long long)json_integer_value(item),
				         out ? ".output" : ".content", rest + 8);
			else
				snprintf(to, sizeof to, "input[%lld]",
				         (long long)json_integer_value(item));
		}
		set_param(e, to);
	}
}

/* ---- accessors --------------------------------------------------------------------- */

const char *api_request_previous_id(const api_request *req)
{
	return req->resp ? req->resp->prev_id : NULL;
}

bool api_request_store(const api_request *req)
{
	return req->resp && req->resp->store;
}

const char *api_request_affinity(const api_request *req)
{
	return req->resp ? req->resp->affinity : "";
}

bool api__resp_streaming(const api_request *req)
{
	return req->resp && req->resp->stream;
}

bool api__resp_truncation_auto(const api_request *req)
{
	return req->resp && req->resp->trunc_auto;
}

void api_request_set_previous(api_request *req, api_resp_record *prev)
{
	api__resp *r = req->resp;
	if (!r || !prev)
		return;
	api_resp_record_unref(r->prev);
	r->prev = api_resp_record_ref(prev);
	if (!r->prev_id)
		r->prev_id = xstrdup(prev->id);
	/* A continuation that names no model stays on the conversation's. */
	if (!req->model && prev->model)
		req->model = xstrdup(prev->model);
	/* "resp_" + affinity: the conversation keeps its key. */
	if (strlen(prev->id) >= 5 + API_RESP_AFFINITY_LEN) {
		memcpy(r->affinity, prev->id + 5, API_RESP_AFFINITY_LEN);
		make_id(req);
	}
}

int api_error_response_not_found(api_error *e, const char *param, const char *id)
{
	return api_error_set(e, 404, param, "not_found",
	                     "Response with id '%.100s' not found (never stored, deleted, "
	                     "expired or evicted from this server's store).",
	                     id);
}

/* ---- prepare --------------------------------------------------------------------- */

static void msgs_clear(api_request *req)
{
	for (int32_t i = 0; i < req->n_msgs; i++)
		free(req->msgs[i].content);
	free(req->msgs);
	req->msgs = NULL;
	req->n_msgs = 0;
	json_decref(req->j_messages);
	json_decref(req->j_tools);
	json_decref(req->j_kwargs);
	req->j_messages = req->j_tools = req->j_kwargs = NULL;
}

/* The output item `id` of the stored response rec, as an input item (a new
 * reference), or NULL. */
static json_t *record_item(const api_resp_record *rec, const char *id)
{
	json_error_t je;
	json_t *body = json_loadb(rec->body, rec->body_len, 0, &je), *it, *found = NULL;
	size_t i;
	json_array_foreach(json_object_get(body, "output"), i, it)
	{
		const char *iid = json_string_value(json_object_get(it, "id"));
		if (iid && strcmp(iid, id) == 0) {
			found = json_deep_copy(it);
			break;
		}
	}
	json_decref(body);
	return found;
}

/* Each function_call_output of this input answers a call made before it
 * (in this input or the conversation it continues), and each call of hist
 * has its output after it, as OpenAI requires; hist is the conversation
 * continued followed by this input's messages. 0, or the 400. */
/* "input[N]" + suffix: the input item that message k of this input came
 * from (r->msg_items). */
static void input_param(const api__resp *r, size_t k, const char *suffix, char p[64])
{
	snprintf(p, 64, "input[%lld]%s",
	         (long long)json_integer_value(json_array_get(r->msg_items, k)), suffix);
}

static int check_call_links(const api__resp *r, json_t *hist, api_error *e)
{
	size_t i, n_prev = json_array_size(hist) - json_array_size(r->input_msgs);
	json_t *m;
	json_array_foreach(hist, i, m)
	{
		const char *id = json_string_value(json_object_get(m, "tool_call_id"));
		bool found = false;
		size_t k;
		json_t *a;
		if (i < n_prev || !id)
			continue;
		json_array_foreach(hist, k, a)
		{
			size_t c;
			json_t *call;
			if (k >= i || found)
				break;
			json_array_foreach(json_object_get(a, "tool_calls"), c, call)
			{
				const char *cid = json_string_value(json_object_get(call, "id"));
				found = found || (cid && strcmp(cid, id) == 0);
			}
		}
		if (!found) {
			char p[64];
			input_param(r, i - n_prev, ".call_id", p);
			return api_error_set(e, 400, p, "invalid_value",
			                     "No tool call found for function call output "
			                     "with call_id '%.64s'.",
			                     id);
		}
	}
	/* ... and each call made has its output after it, in this input
	 * or (for calls of this input) later in it. */
	json_array_foreach(hist, i, m)
	{
		size_t c, k;
		json_t *call;
		json_array_foreach(json_object_get(m, "tool_calls"), c, call)
		{
			const char *cid = json_string_value(json_object_get(call, "id"));
			bool found = false;
			char p[64];
			for (k = i + 1; k < json_array_size(hist) && !found && cid; k++) {
				const char *id = json_string_value(
				    json_object_get(json_array_get(hist, k), "tool_call_id"));
				found = id && strcmp(id, cid) == 0;
			}
			if (found)
				continue;
			if (i < n_prev)
				snprintf(p, sizeof p, "input");
			else
				input_param(r, i - n_prev, "", p);
			/* cid may live in hist (a stored call), which the
			 * caller frees after this */
			return api_error_set(e, 400, p, "invalid_value",
			                     "No function_call_output item answers the "
			                     "function call with call_id '%.64s'.",
			                     cid ? cid : "");
		}
	}
	return 0;
}

/* "msg_" / "rs_" / "fc_" + the 40 hex digits of its response id (+ "_k" for
 * a call): that response id into out (64 bytes), or false. */
static bool item_response_id(const char *id, char *out)
{
	const char *h = strchr(id, '_');
	if (!h)
		return false;
	h++;
	enum { HEX = API_RESP_AFFINITY_LEN + 24 }; /* make_id's digits */
	for (int k = 0; k < HEX; k++)
		if (!isxdigit((unsigned char)h[k]))
			return false;
	if (h[HEX] != '\0' && h[HEX] != '_')
		return false;
	snprintf(out, 64, "resp_%.*s", (int)HEX, h);
	return true;
}

int api_request_resolve_items(api_request *req, api_resp_lookup_fn lookup, void *ud, api_error *e)
{
	api__resp *r = req->resp;
	json_t *in, *all, *root, *it;
	size_t i;
	int rc = 0;
	if (!r || !r->pending_input)
		return 0;
	in = r->pending_input;
	r->pending_input = NULL;
	all = json_array();
	json_array_foreach(in, i, it)
	{
		const char *type = item_type(it);
		const char *id = json_string_value(json_object_get(it, "id"));
		json_t *item = NULL;
		char rid[64];
		if (!type || strcmp(type, "item_reference") != 0) {
			json_array_append(all, it);
			continue;
		}
		if (item_response_id(id, rid)) {
			api_resp_record *rec = lookup(ud, rid);
			if (rec) {
				item = record_item(rec, id);
				api_resp_record_unref(rec);
			}
		}
		if (!item) {
			char p[64];
			snprintf(p, sizeof p, "input[%zu].id", i);
			rc = api_error_set(e, 404, p, "not_found",
			                   "Item with id '%.100s' not found: item references name "
			                   "output items of responses stored on this server "
			                   "(store not false, not deleted, expired or evicted).",
			                   id);
			break;
		}
		json_array_append_new(all, item);
	}
	json_decref(in);
	if (rc == 0) {
		root = json_pack("{s:o}", "input", all);
		rc = parse_input(r, root, e);
		json_decref(root);
		if (rc)
			api__resp_fix_error(req, e);
	} else {
		json_decref(all);
	}
	return rc;
}

int api__resp_messages(api_request *req, api_error *e)
{
	api__resp *r = req->resp;
	json_t *all, *hist = NULL, *root;
	size_t i;
	json_t *m;
	int rc;
	if (r->pending_input)
		return api_error_set(e, 400, "input", "unsupported_parameter",
		                     "Item references need the server's response store.");
	all = json_array();
	if (r->prev) {
		json_error_t je;
		hist = json_loadb(r->prev->messages, r->prev->messages_len, 0, &je);
		if (!json_is_array(hist)) {
			json_decref(hist);
			json_decref(all);
			return api_error_set(e, 500, NULL, "internal_error",
			                     "The stored conversation could not be read.");
		}
	} else {
		hist = json_array();
	}
	json_array_extend(hist, r->input_msgs);
	/* Calls and their outputs pair up (check_call_links). */
	rc = check_call_links(r, hist, e);
	if (rc) {
		json_decref(hist);
		json_decref(all);
		return rc;
	}
	/* truncation auto: a conversation longer than max_messages loses its
	 * oldest messages first too. */
	if (r->trunc_auto) {
		int64_t over = (int64_t)json_array_size(hist) + (r->instructions ? 1 : 0) -
		               req->lim.max_messages;
		if (over > r->n_drop)
			r->n_drop = (int32_t)over;
	}
	/* truncation auto: the oldest messages go (at least one stays). */
	json_decref(r->history);
	r->history = json_array();
	json_array_foreach(hist, i, m)
	{
		if ((int32_t)i >= r->n_drop)
			json_array_append(r->history, m);
	}
	json_decref(hist);
	if (r->instructions)
		json_array_append_new(
		    all, json_pack("{s:s,s:O}", "role", "system", "content", r->instructions));
	json_array_extend(all, r->history);
	root = json_pack("{s:o}", "messages", all);
	if (r->chat_tools)
		json_object_set(root, "tools", r->chat_tools);
	msgs_clear(req);
	rc = api__parse_messages(req, root, &req->lim, e);
	json_decref(root);
	return rc; /* a "messages..." param is mapped by api__resp_fix_error */
}

bool api__resp_truncate(api_request *req)
{
	api__resp *r = req->resp;
	api__message pre = {0};
	api_error e;
	bool forced = api__tool_forced(req);
	if (!r || r->n_drop + 1 >= (int32_t)(json_array_size(r->history) + (size_t)r->n_drop))
		return false;
	if (forced && req->n_msgs > 0) {
		/* Keep the tools preamble prepare put first. */
		pre = req->msgs[0];
		req->msgs[0].content = NULL;
	}
	r->n_drop++;
	if (api__resp_messages(req, &e) != 0) {
		free(pre.content);
		return false;
	}
	if (forced) {
		api__message *msgs = xcalloc((size_t)req->n_msgs + 1, sizeof *msgs);
		msgs[0] = pre;
		memcpy(msgs + 1, req->msgs, (size_t)req->n_msgs * sizeof *msgs);
		free(req->msgs);
		req->msgs = msgs;
		req->n_msgs++;
	}
	return true;
}

static int encode(const mllm_tokenizer *tok, const char *text, size_t len,
                  const mllm_encode_opts *o, int32_t **ids, size_t *n, api_error *e)
{
	size_t cap = mllm_tokenizer_max_ids(tok, len), bytes;
	int rc;
	*ids = NULL;
	*n = 0;
	if (len > SIZE_MAX / 4 || mllm__mul_overflow(cap + 1, sizeof(int32_t), &bytes))
		return api_error_set(e, 413, NULL, "request_too_large", "The prompt is too long.");
	*ids = mllm_try_malloc(bytes);
	if (!*ids)
		return api_error_set(e, 503, NULL, "overloaded", "Out of memory for the prompt.");
	rc = mllm_tokenizer_encode_ex(tok, text, len, o, *ids, cap, n);
	if (rc == MLLM_ENOMEM || rc == MLLM_ECANCELLED)
		return api_error_from_mllm(e, rc);
	if (rc != 0)
		return api_error_set(e, 500, NULL, "internal_error", "Tokenization failed: %s.",
		                     mllm_strerror(rc));
	return 0;
}

int api__resp_tokenize(api_request *req, const mllm_tokenizer *tok, const char *text, size_t len,
                       bool bos, bool parse_special, api__prompt *p, api_error *e)
{
	api__resp *r = req->resp;
	const api_resp_record *pr = r->prev;
	mllm_encode_opts o = {.add_bos = bos, .parse_special = parse_special};
	int32_t *ids;
	size_t n;
	int rc;
	free(r->prompt_text);
	r->prompt_text = xstrndup(text, len);
	r->prompt_len = len;
	r->reused = 0;
	/* The previous turn's text is where this prompt starts: its ids are
	 * the prompt's first ids, as they are (the KV cache holds exactly
	 * those), and only the rest is encoded, as a continuation. */
	if (pr && pr->n_ids > 0 && pr->model && strcmp(pr->model, req->m->id) == 0 &&
	    pr->text_len <= len && memcmp(pr->text, text, pr->text_len) == 0) {
		o.add_bos = false;
		o.continuation = true;
		rc = encode(tok, text + pr->text_len, len - pr->text_len, &o, &ids, &n, e);
		if (rc) {
			free(ids);
			return rc;
		}
		p->ids = mllm_try_malloc((pr->n_ids + n + 1) * sizeof *p->ids);
		if (!p->ids) {
			free(ids);
			return api_error_set(e, 503, NULL, "overloaded", "Out of memory.");
		}
		memcpy(p->ids, pr->ids, pr->n_ids * sizeof *p->ids);
		memcpy(p->ids + pr->n_ids, ids, n * sizeof *ids);
		p->n_ids = pr->n_ids + n;
		r->reused = (int64_t)pr->n_ids;
		free(ids);
		return 0;
	}
	rc = encode(tok, text, len, &o, &ids, &n, e);
	if (rc) {
		free(ids);
		return rc;
	}
	p->ids = ids;
	p->n_ids = n;
	return 0;
}

/* ---- the response object ------------------------------------------------------------ */

static json_t *usage_json(const api_request *req)
{
	api_usage u;
	int64_t nr = req->choices ? req->choices[0].n_reasoning : 0;
	api_request_usage(req, &u);
	return json_pack("{sI,s:{sI},sI,s:{sI},sI}", "input_tokens", (json_int_t)u.prompt_tokens,
	                 "input_tokens_details", "cached_tokens", (json_int_t)u.cached_tokens,
	                 "output_tokens", (json_int_t)u.completion_tokens, "output_tokens_details",
	                 "reasoning_tokens", (json_int_t)nr, "total_tokens",
	                 (json_int_t)(u.prompt_tokens + u.completion_tokens));
}

static json_t *reasoning_part(const api_request *req, bool empty)
{
	const api__choice *c = &req->choices[0];
	return json_pack("{s:s,s:o}", "type", "reasoning_text", "text",
	                 empty ? json_string("") : jtext(c->reasoning.data, c->reasoning.len));
}

/* With reasoning.summary asked: the reasoning itself stands as its summary
 * (there is no separate summarizer), so that clients that read only the
 * summary (@ai-sdk/openai) get it. */
static json_t *summary_part(const api_request *req, bool empty)
{
	const api__choice *c = &req->choices[0];
	return json_pack("{s:s,s:o}", "type", "summary_text", "text",
	                 empty ? json_string("") : jtext(c->reasoning.data, c->reasoning.len));
}

/* The reasoning item; while it streams ("in_progress") without content:
 * its part comes with content_part.added and fills through the deltas. */
static json_t *reasoning_item(const api_request *req, const char *status)
{
	bool open = strcmp(status, "in_progress") == 0;
	return json_pack(
	    "{s:s,s:s,s:o,s:o,s:s}", "id", req->resp->rs_id, "type", "reasoning", "summary",
	    open || !req->resp->summary ? json_array() : json_pack("[o]", summary_part(req, false)),
	    "content", open ? json_array() : json_pack("[o]", reasoning_part(req, false)), "status",
	    status);
}

/* The output_text part's logprobs: the choice's entries when include
 * asked for them (a finished choice; [] while it streams), else []. */
static json_t *text_logprobs(const api_request *req, bool final)
{
	if (req->logprobs < 0 || !final)
		return json_array();
	return api__logprob_entries(req, &req->choices[0], 0, req->choices[0].lp.n);
}

static json_t *text_part(const api_request *req, const char *p, size_t n, bool final)
{
	return json_pack("{s:s,s:o,s:[],s:o}", "type", "output_text", "text", jtext(p, n),
	                 "annotations", "logprobs", text_logprobs(req, final));
}

/* A message item whose text is p[0..n) (no part when p is NULL). */
static json_t *message_item(const api_request *req, const char *status, const char *p, size_t n)
{
	json_t *content = json_array();
	if (p)
		json_array_append_new(content,
		                      text_part(req, p, n, strcmp(status, "in_progress") != 0));
	return json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", req->resp->msg_id, "type", "message",
	                 "status", status, "role", "assistant", "content", content);
}

/* The chat view of the output: {"role":"assistant","content",
 * "tool_calls"?}. With tools (forced, or auto with a template's call
 * syntax) tools.c cuts complete calls out of the text; their ids are made
 * from this response's own unique digits (the chat ids come from the id's
 * head, which a conversation shares). *calls: whether there are calls. */
static json_t *output_message(const api_request *req, bool *calls)
{
	const api__choice *c = &req->choices[0];
	json_t *msg = json_object(), *call;
	size_t i;
	json_object_set_new(msg, "role", json_string("assistant"));
	json_object_set_new(msg, "content", jtext(c->text.data, c->text.len));
	*calls = req->tool_parse && api__tool_message_json(req, 0, msg);
	if (!*calls)
		return msg;
	json_array_foreach(json_object_get(msg, "tool_calls"), i, call)
	{
		char id[64];
		snprintf(id, sizeof id, "call_%.24s_%zu", req->id + 5 + API_RESP_AFFINITY_LEN, i);
		json_object_set_new(call, "id", json_string(id));
		json_object_del(call, "index");
	}
	return msg;
}

/* Function-call item k of the chat call (arguments "" unless with_args). */
static json_t *call_item(const api_request *req, json_t *call, size_t k, const char *status,
                         bool with_args)
{
	json_t *f = json_object_get(call, "function");
	char id[80];
	snprintf(id, sizeof id, "%s_%zu", req->resp->fc_id, k);
	return json_pack(
	    "{s:s,s:s,s:s,s:O,s:O,s:o}", "id", id, "type", "function_call", "status", status,
	    "call_id", json_object_get(call, "id"), "name", json_object_get(f, "name"), "arguments",
	    with_args ? json_incref(json_object_get(f, "arguments")) : json_string(""));
}

/* max_output_tokens ended the output inside the reasoning block: the
 * reasoning is incomplete and no answer began. (An end of text there is
 * the model's own end: the reasoning is complete, the answer empty.) */
static bool cut_in_reasoning(const api__choice *c)
{
	return c->saw_reasoning && c->rstate == API__R_REASON && c->finish == MLLM_FINISH_LENGTH;
}

static json_t *output_json(const api_request *req)
{
	const api__choice *c = &req->choices[0];
	json_t *out = json_array(), *msg, *call, *content;
	const char *st = c->finish == MLLM_FINISH_LENGTH ? "incomplete" : "completed";
	bool calls;
	size_t k;
	if (c->saw_reasoning)
		json_array_append_new(
		    out, reasoning_item(req, cut_in_reasoning(c) ? "incomplete" : "completed"));
	if (cut_in_reasoning(c) && c->text.len == 0)
		return out; /* no answer item: none began */
	msg = output_message(req, &calls);
	content = json_object_get(msg, "content");
	if (!calls)
		json_array_append_new(
		    out, message_item(req, st, c->text.data ? c->text.data : "", c->text.len));
	else if (json_is_string(content))
		json_array_append_new(out, message_item(req, st, json_string_value(content),
		                                        json_string_length(content)));
	json_array_foreach(calls ? json_object_get(msg, "tool_calls") : NULL, k, call)
	    json_array_append_new(out, call_item(req, call, k, "completed", true));
	json_decref(msg);
	return out;
}

/* A failed response (a stream cut by an error or the shutdown): the items
 * it had begun, incomplete, so that a client keeps what was streamed (the
 * SDKs drop it for an empty output). Calls are not cut out of a text that
 * did not finish. */
static json_t *partial_output(const api_request *req)
{
	const api__choice *c;
	json_t *out = json_array();
	if (!req->choices)
		return out;
	c = &req->choices[0];
	if (c->saw_reasoning)
		json_array_append_new(out, reasoning_item(req, "incomplete"));
	if (c->text.len > 0)
		json_array_append_new(out,
		                      message_item(req, "incomplete", c->text.data, c->text.len));
	return out;
}

/* status: "in_progress" (no output yet), or the final one. */
static json_t *response_json(const api_request *req, const char *status)
{
	const api__resp *r = req->resp;
	json_t *o = json_object(), *out;
	bool fin = strcmp(status, "in_progress") != 0;
	json_object_set_new(o, "id", json_string(req->id));
	json_object_set_new(o, "object", json_string("response"));
	json_object_set_new(o, "created_at", json_integer(req->created));
	json_object_set_new(o, "status", json_string(status));
	json_object_set_new(o, "background", json_false());
	if (req->failed)
		json_object_set_new(o, "error",
		                    json_pack("{s:s,s:s}", "code",
		                              req->err.code ? req->err.code : "server_error",
		                              "message", req->err.message));
	else
		json_object_set_new(o, "error", json_null());
	json_object_set_new(o, "incomplete_details",
	                    strcmp(status, "incomplete") == 0
	                        ? json_pack("{s:s}", "reason", "max_output_tokens")
	                        : json_null());
	json_object_set_new(o, "model", json_string(req->m ? req->m->id : req->model));
	out = !fin ? json_array() : req->failed ? partial_output(req) : output_json(req);
	json_object_set_new(o, "output", out);
	json_object_set_new(o, "previous_response_id",
	                    r->prev_id ? json_string(r->prev_id) : json_null());
	json_object_set_new(o, "service_tier", json_string("default"));
	json_object_update(o, r->echo);
	json_object_set_new(o, "usage", fin ? usage_json(req) : json_null());
	/* The SDKs' convenience (the output_text parts of the message items,
	 * joined), also sent so that plain clients have it. */
	{
		mllm_buf b;
		size_t i, j;
		json_t *it, *part;
		mllm_buf_init(&b, SIZE_MAX / 2);
		json_array_foreach(out, i, it)
		{
			if (strcmp(json_string_value(json_object_get(it, "type")), "message") != 0)
				continue;
			json_array_foreach(json_object_get(it, "content"), j, part)
			{
				json_t *t = json_object_get(part, "text");
				if (mllm_buf_append(&b, json_string_value(t),
				                    json_string_length(t)))
					break;
			}
		}
		json_object_set_new(o, "output_text", jtext(b.data, b.len));
		mllm_buf_free(&b);
	}
	return o;
}

/* ---- the event stream ---------------------------------------------------------------- */

/* Appends `event: <type>` + `data: {"type", ..., "sequence_number"}` (o
 * is taken). */
static int emit(api_request *req, const char *type, json_t *o, mllm_buf *out)
{
	json_t *ev = json_pack("{s:s}", "type", type);
	int rc;
	json_object_update(ev, o);
	json_decref(o);
	json_object_set_new(ev, "sequence_number", json_integer(req->resp->seq++));
	rc = mllm_buf_appendf(out, "event: %s\n", type);
	if (rc == 0)
		rc = api__sse_append(ev, out);
	json_decref(ev);
	return rc;
}

static int emit_response(api_request *req, const char *type, const char *status, mllm_buf *out)
{
	json_t *o = response_json(req, status);
	if (strcmp(status, "in_progress") != 0) {
		json_decref(req->resp->final);
		req->resp->final = json_incref(o);
	}
	return emit(req, type, json_pack("{s:o}", "response", o), out);
}

static int item_added(api_request *req, int idx, json_t *item, mllm_buf *out)
{
	return emit(req, "response.output_item.added",
	            json_pack("{s:i,s:o}", "output_index", idx, "item", item), out);
}

static int item_done(api_request *req, int idx, json_t *item, mllm_buf *out)
{
	return emit(req, "response.output_item.done",
	            json_pack("{s:i,s:o}", "output_index", idx, "item", item), out);
}

/* A reasoning text event (the content's or, with reasoning.summary, the
 * summary's: index_key): key holds the reasoning from byte `from` on. */
static int reasoning_event(api_request *req, const char *type, const char *index_key,
                           const char *key, size_t from, mllm_buf *out)
{
	const api__resp *r = req->resp;
	const api__choice *c = &req->choices[0];
	return emit(req, type,
	            json_pack("{s:s,s:i,s:i,s:o}", "item_id", r->rs_id, "output_index", r->rs_index,
	                      index_key, 0, key,
	                      jtext(c->reasoning.data + from, c->reasoning.len - from)),
	            out);
}

static int reasoning_close(api_request *req, mllm_buf *out)
{
	api__resp *r = req->resp;
	const api__choice *c = &req->choices[0];
	int rc;
	if (r->rs_state != ITEM_OPEN)
		return 0;
	r->rs_state = ITEM_DONE;
	rc = reasoning_event(req, "response.reasoning_text.done", "content_index", "text", 0, out);
	if (rc == 0)
		rc = emit(req, "response.content_part.done",
		          json_pack("{s:s,s:i,s:i,s:o}", "item_id", r->rs_id, "output_index",
		                    r->rs_index, "content_index", 0, "part",
		                    reasoning_part(req, false)),
		          out);
	if (rc == 0 && r->summary)
		rc = reasoning_event(req, "response.reasoning_summary_text.done", "summary_index",
		                     "text", 0, out);
	if (rc == 0 && r->summary)
		rc = emit(req, "response.reasoning_summary_part.done",
		          json_pack("{s:s,s:i,s:i,s:o}", "item_id", r->rs_id, "output_index",
		                    r->rs_index, "summary_index", 0, "part",
		                    summary_part(req, false)),
		          out);
	if (rc == 0)
		rc = item_done(
		    req, r->rs_index,
		    reasoning_item(req, cut_in_reasoning(c) ? "incomplete" : "completed"), out);
	return rc;
}

static int message_open(api_request *req, mllm_buf *out)
{
	api__resp *r = req->resp;
	int rc;
	if (r->msg_state != ITEM_NONE)
		return 0;
	rc = reasoning_close(req, out);
	if (rc)
		return rc;
	r->msg_state = ITEM_OPEN;
	r->msg_index = r->n_out++;
	rc = item_added(req, r->msg_index, message_item(req, "in_progress", NULL, 0), out);
	if (rc == 0)
		rc = emit(req, "response.content_part.added",
		          json_pack("{s:s,s:i,s:i,s:o}", "item_id", r->msg_id, "output_index",
		                    r->msg_index, "content_index", 0, "part",
		                    text_part(req, "", 0, false)),
		          out);
	return rc;
}

/* A text delta, with the logprob entries whose bytes the text released so
 * far now holds (include message.output_text.logprobs). */
static int text_delta(api_request *req, const char *p, size_t n, mllm_buf *out)
{
	api__resp *r = req->resp;
	api__choice *c = &req->choices[0];
	json_t *lp;
	if (req->logprobs >= 0) {
		size_t to = api__logprob_release(req, c, r->lp_sent, &r->lp_bytes, &r->lp_fixed);
		lp = api__logprob_entries(req, c, r->lp_sent, to);
		r->lp_sent = to;
	} else {
		lp = json_array();
	}
	return emit(req, "response.output_text.delta",
	            json_pack("{s:s,s:i,s:i,s:o,s:o}", "item_id", r->msg_id, "output_index",
	                      r->msg_index, "content_index", 0, "delta", jtext(p, n), "logprobs",
	                      lp),
	            out);
}

/* Closes the message item whose whole text is p[0..n). */
static int message_close(api_request *req, const char *p, size_t n, mllm_buf *out)
{
	api__resp *r = req->resp;
	const api__choice *c = &req->choices[0];
	const char *st = c->finish == MLLM_FINISH_LENGTH ? "incomplete" : "completed";
	int rc = message_open(req, out);
	if (rc || r->msg_state != ITEM_OPEN)
		return rc;
	r->msg_state = ITEM_DONE;
	rc = emit(req, "response.output_text.done",
	          json_pack("{s:s,s:i,s:i,s:o,s:o}", "item_id", r->msg_id, "output_index",
	                    r->msg_index, "content_index", 0, "text", jtext(p, n), "logprobs",
	                    text_logprobs(req, true)),
	          out);
	if (rc == 0)
		rc = emit(req, "response.content_part.done",
		          json_pack("{s:s,s:i,s:i,s:o}", "item_id", r->msg_id, "output_index",
		                    r->msg_index, "content_index", 0, "part",
		                    text_part(req, p, n, true)),
		          out);
	if (rc == 0)
		rc = item_done(req, r->msg_index, message_item(req, st, p, n), out);
	return rc;
}

/* A call, as a whole once generated: added, its arguments in one delta,
 * done. */
static int call_emit(api_request *req, json_t *call, size_t k, mllm_buf *out)
{
	api__resp *r = req->resp;
	json_t *item = call_item(req, call, k, "completed", true);
	json_t *id = json_object_get(item, "id"), *args = json_object_get(item, "arguments");
	int idx = 0, rc;
	rc = reasoning_close(req, out);
	if (rc == 0) {
		idx = r->n_out++;
		rc = item_added(req, idx, call_item(req, call, k, "in_progress", false), out);
	}
	if (rc == 0)
		rc = emit(
		    req, "response.function_call_arguments.delta",
		    json_pack("{s:O,s:i,s:O}", "item_id", id, "output_index", idx, "delta", args),
		    out);
	if (rc == 0)
		rc = emit(req, "response.function_call_arguments.done",
		          json_pack("{s:O,s:i,s:O,s:O}", "item_id", id, "output_index", idx, "name",
		                    json_object_get(item, "name"), "arguments", args),
		          out);
	if (rc == 0)
		rc = item_done(req, idx, json_incref(item), out);
	json_decref(item);
	return rc;
}

int api__resp_begin(api_request *req, mllm_buf *out)
{
	int rc;
	if (!req->resp->stream)
		return 0;
	rc = emit_response(req, "response.created", "in_progress", out);
	if (rc == 0)
		rc = emit_response(req, "response.in_progress", "in_progress", out);
	return rc;
}

static int gen_push(api__resp *r, const mllm_event *ev)
{
	if (r->n_gen == r->cap_gen) {
		size_t cap = r->cap_gen ? r->cap_gen * 2 : 64;
		int32_t *v = mllm_try_realloc(r->gen, cap * sizeof *v);
		if (!v)
			return MLLM_ENOMEM;
		r->gen = v;
		r->cap_gen = cap;
	}
	r->gen[r->n_gen++] = ev->token;
	return mllm_buf_append(&r->gen_text, ev->token_text ? ev->token_text : "",
	                       ev->token_text_len);
}

int api__resp_event(api_request *req, const mllm_event *ev, mllm_buf *out)
{
	api__resp *r = req->resp;
	const api__choice *c = &req->choices[0];
	int rc = 0;
	if (ev && ev->kind == MLLM_EV_TOKEN) {
		rc = gen_push(r, ev);
		if (rc)
			return rc;
	}
	if (!r->stream || req->failed)
		return 0;
	if (c->reasoning.len > r->sent_reason && r->rs_state != ITEM_DONE) {
		if (r->rs_state == ITEM_NONE) {
			r->rs_state = ITEM_OPEN;
			r->rs_index = r->n_out++;
			rc = item_added(req, r->rs_index, reasoning_item(req, "in_progress"), out);
			if (rc == 0)
				rc = emit(req, "response.content_part.added",
				          json_pack("{s:s,s:i,s:i,s:o}", "item_id", r->rs_id,
				                    "output_index", r->rs_index, "content_index", 0,
				                    "part", reasoning_part(req, true)),
				          out);
			if (rc == 0 && r->summary)
				rc = emit(req, "response.reasoning_summary_part.added",
				          json_pack("{s:s,s:i,s:i,s:o}", "item_id", r->rs_id,
				                    "output_index", r->rs_index, "summary_index", 0,
				                    "part", summary_part(req, true)),
				          out);
		}
		if (rc == 0)
			rc = reasoning_event(req, "response.reasoning_text.delta", "content_index",
			                     "delta", r->sent_reason, out);
		if (rc == 0 && r->summary)
			rc = reasoning_event(req, "response.reasoning_summary_text.delta",
			                     "summary_index", "delta", r->sent_reason, out);
		r->sent_reason = c->reasoning.len;
	}
	/* With tools the text may hold calls (tools.c cuts them out at the
	 * end): it goes out then, as a message and function_call items. */
	if (rc == 0 && !req->tool_parse && c->text.len > r->sent_text) {
		rc = message_open(req, out);
		if (rc == 0)
			rc = text_delta(req, c->text.data + r->sent_text,
			                c->text.len - r->sent_text, out);
		r->sent_text = c->text.len;
	}
	return rc;
}

static const char *final_status(const api_request *req)
{
	if (req->failed)
		return "failed";
	return req->choices[0].finish == MLLM_FINISH_LENGTH ? "incomplete" : "completed";
}

int api__resp_end(api_request *req, mllm_buf *out, int *status)
{
	api__resp *r = req->resp;
	const char *st = final_status(req);
	int rc = 0;
	*status = req->failed && !r->stream ? req->err.status : 200;
	if (req->ended)
		return 0;
	if (!r->stream) {
		if (req->failed) {
			rc = api_error_render(&req->err, out);
		} else {
			json_t *o = response_json(req, st);
			json_decref(r->final);
			r->final = o;
			rc = api__json_append(o, out);
		}
	} else if (req->failed) {
		rc = emit_response(req, "response.failed", "failed", out);
	} else {
		const api__choice *c = &req->choices[0];
		bool calls;
		json_t *msg = output_message(req, &calls),
		       *content = json_object_get(msg, "content");
		json_t *call;
		size_t k;
		rc = reasoning_close(req, out);
		if (rc == 0 && !calls && req->tool_parse && c->text.len > 0) {
			/* Held back in case it was a call: the text after all. */
			rc = message_open(req, out);
			if (rc == 0)
				rc = text_delta(req, c->text.data, c->text.len, out);
		}
		if (rc == 0 && !calls && !(cut_in_reasoning(c) && c->text.len == 0))
			rc = message_close(req, c->text.data ? c->text.data : "", c->text.len, out);
		if (rc == 0 && calls && json_is_string(content)) {
			rc = message_open(req, out);
			if (rc == 0)
				rc = text_delta(req, json_string_value(content),
				                json_string_length(content), out);
			if (rc == 0)
				rc = message_close(req, json_string_value(content),
				                   json_string_length(content), out);
		}
		json_array_foreach(calls ? json_object_get(msg, "tool_calls") : NULL, k, call)
		{
			if (rc == 0)
				rc = call_emit(req, call, k, out);
		}
		json_decref(msg);
		if (rc == 0)
			rc = emit_response(req,
			                   strcmp(st, "incomplete") == 0 ? "response.incomplete"
			                                                 : "response.completed",
			                   st, out);
	}
	if (rc)
		return rc;
	req->ended = true;
	return 0;
}

int api__resp_abort(api_request *req, const api_error *e, mllm_buf *out)
{
	int rc;
	(void)e;
	if (!req->resp->stream)
		return 0; /* api_request_end renders the error body */
	rc = emit_response(req, "response.failed", "failed", out);
	if (rc)
		return rc;
	req->ended = true;
	return 0;
}

/* ---- records ------------------------------------------------------------------------------ */

/* The output as chat messages, for the next turn's template. */
static void output_messages(const api_request *req, json_t *msgs)
{
	bool calls;
	json_t *msg = output_message(req, &calls);
	/* Templates read the content of a turn with calls as a string
	 * (Qwen3's fails on null): the history keeps "" for none. */
	if (json_is_null(json_object_get(msg, "content")))
		json_object_set_new(msg, "content", json_string(""));
	json_array_append_new(msgs, msg);
}

int api_request_record(const api_request *req, api_resp_record **out)
{
	const api__resp *r = req->resp;
	api_resp_record *rec;
	json_t *msgs;
	*out = NULL;
	if (!r || !r->store || req->failed || !r->final || !req->m)
		return 0;
	rec = xcalloc(1, sizeof *rec);
	atomic_init(&rec->refs, 1);
	snprintf(rec->id, sizeof rec->id, "%s", req->id);
	rec->model = xstrdup(req->m->id);
	rec->body = dump(r->final, &rec->body_len);
	rec->items = dump(r->input_items, &rec->items_len);
	msgs = json_copy(r->history ? r->history : r->input_msgs);
	output_messages(req, msgs);
	rec->messages = dump(msgs, &rec->messages_len);
	json_decref(msgs);
	/* The conversation's tokens: this prompt, then what was generated. */
	if (req->prompts && r->prompt_text) {
		const api__prompt *p = &req->prompts[0];
		rec->n_ids = p->n_ids + r->n_gen;
		rec->ids = xmallocarray(rec->n_ids + 1, sizeof *rec->ids);
		memcpy(rec->ids, p->ids, p->n_ids * sizeof *rec->ids);
		if (r->n_gen)
			memcpy(rec->ids + p->n_ids, r->gen, r->n_gen * sizeof *rec->ids);
		rec->text_len = r->prompt_len + r->gen_text.len;
		rec->text = xmalloc(rec->text_len + 1);
		memcpy(rec->text, r->prompt_text, r->prompt_len);
		if (r->gen_text.len)
			memcpy(rec->text + r->prompt_len, r->gen_text.data, r->gen_text.len);
		rec->text[rec->text_len] = '\0';
	}
	*out = rec;
	return 0;
}

api_resp_record *api_resp_record_ref(api_resp_record *r)
{
	if (r)
		atomic_fetch_add(&r->refs, 1);
	return r;
}

void api_resp_record_unref(api_resp_record *r)
{
	if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	free(r->model);
	free(r->body);
	free(r->items);
	free(r->messages);
	free(r->ids);
	free(r->text);
	free(r);
}

const char *api_resp_record_id(const api_resp_record *r)
{
	return r->id;
}

size_t api_resp_record_bytes(const api_resp_record *r)
{
	return sizeof *r + strlen(r->model) + r->body_len + r->items_len + r->messages_len +
	       r->n_ids * sizeof *r->ids + r->text_len;
}

int api_resp_record_render(const api_resp_record *r, mllm_buf *out)
{
	return mllm_buf_append(out, r->body, r->body_len);
}

/* One query parameter's value, percent-decoded ('+' a space), or NULL.
 * A value that does not fit buf (or decodes to a NUL) reads as "%"
 * (invalid for every parameter here) rather than cut short. */
static const char *query_get(const char *q, const char *key, char *buf, size_t cap)
{
	size_t kl = strlen(key);
	while (q && *q) {
		const char *amp = strchr(q, '&');
		size_t n = amp ? (size_t)(amp - q) : strlen(q);
		if (n > kl && strncmp(q, key, kl) == 0 && q[kl] == '=') {
			if (api_url_decode(q + kl + 1, n - kl - 1, true, buf, cap) < 0)
				snprintf(buf, cap, "%%");
			return buf;
		}
		q = amp ? amp + 1 : NULL;
	}
	return NULL;
}

int api_resp_retrieve_query(const char *query, api_error *e)
{
	char buf[16];
	const char *v = query_get(query, "stream", buf, sizeof buf);
	if (!v || !*v || strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0)
		return 0;
	if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0)
		return api_error_set(e, 400, "stream", "unsupported_value",
		                     "Streaming a stored response again ('stream=%s') is not "
		                     "supported; retrieve it without 'stream'.",
		                     v);
	return api_error_set(e, 400, "stream", "invalid_value",
	                     "'stream' must be true or false, not '%.15s'.", v);
}

int api_resp_record_render_items(const api_resp_record *r, const char *query, mllm_buf *out,
                                 api_error *e)
{
	char buf[128];
	const char *v;
	long limit = ITEMS_LIMIT_DEFAULT;
	bool asc = false;
	json_t *items, *data, *o;
	size_t n, start = 0;
	int rc;
	v = query_get(query, "limit", buf, sizeof buf);
	if (v) {
		char *end;
		limit = strtol(v, &end, 10);
		if (*v == '\0' || *end != '\0' || limit < 1 || limit > ITEMS_LIMIT_MAX)
			return api_error_set(e, 400, "limit", "invalid_value",
			                     "'limit' must be an integer from 1 to %d.",
			                     ITEMS_LIMIT_MAX);
	}
	v = query_get(query, "order", buf, sizeof buf);
	if (v) {
		if (strcmp(v, "asc") != 0 && strcmp(v, "desc") != 0)
			return api_error_set(e, 400, "order", "invalid_value",
			                     "'order' must be 'asc' or 'desc'.");
		asc = strcmp(v, "asc") == 0;
	}
	items = json_loadb(r->items, r->items_len, 0, NULL);
	if (!json_is_array(items)) {
		json_decref(items);
		return api_error_set(e, 500, NULL, "internal_error",
		                     "The stored items are unreadable.");
	}
	n = json_array_size(items);
	/* An item id is the client's and of any length: the decoded cursor is
	 * never longer than the query that carries it. */
	size_t qn = query ? strlen(query) + 1 : 0;
	char *after = query ? malloc(qn) : NULL;
	if (query && !after) {
		json_decref(items);
		return api_error_set(e, 503, NULL, "overloaded", "Out of memory.");
	}
	v = after ? query_get(query, "after", after, qn) : NULL;
	if (v) {
		size_t k;
		for (k = 0; k < n; k++) {
			size_t at = asc ? k : n - 1 - k;
			const char *id =
			    json_string_value(json_object_get(json_array_get(items, at), "id"));
			if (id && strcmp(id, v) == 0)
				break;
		}
		if (k == n) {
			free(after);
			json_decref(items);
			return api_error_set(e, 400, "after", "invalid_value",
			                     "'after' names no item of this response.");
		}
		start = k + 1;
	}
	free(after);
	data = json_array();
	for (size_t k = start; k < n && (long)(k - start) < limit; k++)
		json_array_append(data, json_array_get(items, asc ? k : n - 1 - k));
	o = json_object();
	json_object_set_new(o, "object", json_string("list"));
	json_object_set_new(o, "data", data);
	json_object_set(o, "first_id",
	                json_array_size(data) ? json_object_get(json_array_get(data, 0), "id")
	                                      : json_null());
	json_object_set(o, "last_id",
	                json_array_size(data)
	                    ? json_object_get(json_array_get(data, json_array_size(data) - 1), "id")
	                    : json_null());
	json_object_set_new(o, "has_more", json_boolean(start + json_array_size(data) < n));
	rc = api__json_append(o, out);
	json_decref(o);
	json_decref(items);
	return rc < 0 ? rc : 200;
}

int api_resp_render_deleted(const char *id, mllm_buf *out)
{
	json_t *o = json_pack("{s:o,s:s,s:b}", "id", jtext(id, strlen(id)), "object", "response",
	                      "deleted", 1);
	int rc = api__json_append(o, out);
	json_decref(o);
	return rc;
}

void api__resp_free(api_request *req)
{
	api__resp *r = req->resp;
	if (!r)
		return;
	free(r->prev_id);
	api_resp_record_unref(r->prev);
	json_decref(r->instructions);
	json_decref(r->input_msgs);
	json_decref(r->msg_items);
	json_decref(r->input_items);
	json_decref(r->pending_input);
	json_decref(r->chat_tools);
	json_decref(r->echo);
	json_decref(r->history);
	json_decref(r->final);
	free(r->prompt_text);
	free(r->gen);
	mllm_buf_free(&r->gen_text);
	free(r);
	req->resp = NULL;
}
