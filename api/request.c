/*
 * request.c — parsing and validating POST /v1/completions and
 * /v1/chat/completions bodies, then binding them to a model (template,
 * tokenization, context checks) and handing out engine submissions.
 *
 * Fields are read one by one with json_object_get rather than
 * json_unpack_ex(JSON_STRICT): OpenAI ignores unknown fields (newer SDKs
 * send some we do not know), and a per-field read lets every error name its
 * parameter. Everything the request keeps is copied out of the JSON tree,
 * which is freed before parse returns.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"

/* ---- field readers: each returns 0 (ok or absent/null) or the status ---- */

static int type_error(api_error *e, const char *param, const char *what)
{
	return api_error_set(e, 400, param, "invalid_type", "'%s' must be %s.", param, what);
}

/* d as the shortest decimal that reads back as d: a message shows the
 * value sent (2.0000001, not %g's 2), without %.17g's noise. */
static const char *num_text(double d, char buf[32])
{
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(buf, 32, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	return buf;
}

/* An integer field. Integral reals (16.0) are accepted; null = absent. */
static int get_int(json_t *root, const char *key, long long lo, long long hi, long long *out,
                   bool *present, api_error *e)
{
	json_t *v = json_object_get(root, key);
	long long x;
	char nb[32];
	*present = false;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		x = json_integer_value(v);
	} else if (json_is_real(v)) {
		double d = json_real_value(v);
		/* [-2^63, 2^63) before the conversion (INT64_MAX as a double
		 * is 2^63 itself), then the bounds on the integer. */
		if (d != floor(d))
			return api_error_set(e, 400, key, "invalid_type",
			                     "Invalid type for '%s': expected an integer between "
			                     "%lld and %lld, but got a decimal number instead.",
			                     key, lo, hi);
		/* OpenAI's codes for the bounds, which clients may branch on */
		if (!(d >= -0x1p63) || (d < 0x1p63 && (long long)d < lo))
			return api_error_set(
			    e, 400, key, "integer_below_min_value",
			    "Invalid '%s': integer below minimum value. Expected a "
			    "value >= %lld, but got %s instead.",
			    key, lo, num_text(d, nb));
		if (!(d < 0x1p63) || (long long)d > hi)
			return api_error_set(
			    e, 400, key, "integer_above_max_value",
			    "Invalid '%s': integer above maximum value. Expected a "
			    "value <= %lld, but got %s instead.",
			    key, hi, num_text(d, nb));
		x = (long long)d;
	} else {
		return type_error(e, key, "an integer");
	}
	if (x < lo)
		return api_error_set(e, 400, key, "integer_below_min_value",
		                     "Invalid '%s': integer below minimum value. Expected a value "
		                     ">= %lld, but got %lld instead.",
		                     key, lo, x);
	if (x > hi)
		return api_error_set(e, 400, key, "integer_above_max_value",
		                     "Invalid '%s': integer above maximum value. Expected a value "
		                     "<= %lld, but got %lld instead.",
		                     key, hi, x);
	*out = x;
	*present = true;
	return 0;
}

/* A number in [lo, hi]. Every bound used is exact as a float, so a
 * double inside the range stays inside it as the float the engine samples
 * with. */
static int get_real(json_t *root, const char *key, double lo, double hi, float *out, api_error *e)
{
	char nb[32];
	json_t *v = json_object_get(root, key);
	double d;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return type_error(e, key, "a number");
	d = json_number_value(v);
	if (!(d >= lo))
		return api_error_set(e, 400, key, "decimal_below_min_value",
		                     "Invalid '%s': decimal below minimum value. Expected a value "
		                     ">= %g, but got %s instead.",
		                     key, lo, num_text(d, nb));
	if (!(d <= hi))
		return api_error_set(e, 400, key, "decimal_above_max_value",
		                     "Invalid '%s': decimal above maximum value. Expected a value "
		                     "<= %g, but got %s instead.",
		                     key, hi, num_text(d, nb));
	*out = (float)d;
	return 0;
}

/* top_p: 0 is in OpenAI's range, the smallest nucleus, the one best token
 * (the sampler keeps the best-first prefix that reaches top_p, which must
 * be > 0): the smallest positive float. So is a double that is 0 as a
 * float (1e-320). */
static int get_top_p(json_t *root, float *out, api_error *e)
{
	int rc = get_real(root, "top_p", 0.0, 1.0, out, e);
	if (rc == 0 && *out == 0.0f)
		*out = FLT_MIN;
	return rc;
}

static int get_bool(json_t *root, const char *key, bool *out, api_error *e)
{
	json_t *v = json_object_get(root, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return type_error(e, key, "a boolean");
	*out = json_is_true(v);
	return 0;
}

/* The readers for responses.c, which parses its own fields. */
int api__get_int(json_t *root, const char *key, long long lo, long long hi, long long *out,
                 bool *present, api_error *e)
{
	return get_int(root, key, lo, hi, out, present, e);
}

int api__get_real(json_t *root, const char *key, double lo, double hi, float *out, api_error *e)
{
	return get_real(root, key, lo, hi, out, e);
}

int api__get_top_p(json_t *root, float *out, api_error *e)
{
	return get_top_p(root, out, e);
}

int api__get_bool(json_t *root, const char *key, bool *out, api_error *e)
{
	return get_bool(root, key, out, e);
}

/* ---- prompts and messages ----------------------------------------------- */

static int parse_ids(json_t *arr, const char *param, api__prompt *p, api_error *e)
{
	size_t n = json_array_size(arr);
	if (n == 0)
		return api_error_set(e, 400, param, "invalid_value", "'%s' must not be empty.",
		                     param);
	p->ids = mllm_try_calloc(n, sizeof *p->ids);
	if (!p->ids)
		return api_error_set(e, 503, NULL, "overloaded", "Out of memory for the prompt.");
	for (size_t i = 0; i < n; i++) {
		int64_t id;
		if (!api__json_id(json_array_get(arr, i), &id))
			return api_error_set(e, 400, param, "invalid_value",
			                     "'%s' must hold token ids (non-negative integers); "
			                     "element %zu is not one.",
			                     param, i);
		p->ids[i] = (int32_t)id;
	}
	p->n_ids = n;
	p->is_tokens = true;
	return 0;
}

static int parse_prompt(api_request *req, json_t *root, const api_limits *lim, api_error *e)
{
	json_t *v = json_object_get(root, "prompt");
	size_t n;
	json_t *first;
	if (!v || json_is_null(v))
		return api_error_set(e, 400, "prompt", "missing_required_parameter",
		                     "'prompt' is required.");
	if (json_is_string(v)) {
		req->prompts = xcalloc(1, sizeof *req->prompts);
		req->n_prompts = 1;
		req->prompts[0].text = xstrndup(json_string_value(v), json_string_length(v));
		req->prompts[0].text_len = json_string_length(v);
		return 0;
	}
	if (!json_is_array(v))
		return type_error(e, "prompt",
		                  "a string, an array of strings, an array of token ids or an "
		                  "array of token-id arrays");
	n = json_array_size(v);
	if (n == 0)
		return api_error_set(e, 400, "prompt", "invalid_value",
		                     "'prompt' must not be an empty array.");
	first = json_array_get(v, 0);
	if (json_is_number(first)) {
		req->prompts = xcalloc(1, sizeof *req->prompts);
		req->n_prompts = 1;
		return parse_ids(v, "prompt", &req->prompts[0], e);
	}
	if (n > (size_t)lim->max_prompts)
		return api_error_set(e, 400, "prompt", "invalid_value",
		                     "At most %d prompts per request, got %zu.",
		                     (int)lim->max_prompts, n);
	req->prompts = xcalloc(n, sizeof *req->prompts);
	req->n_prompts = (int32_t)n;
	for (size_t i = 0; i < n; i++) {
		json_t *p = json_array_get(v, i);
		if (json_is_string(first) && json_is_string(p)) {
			req->prompts[i].text =
			    xstrndup(json_string_value(p), json_string_length(p));
			req->prompts[i].text_len = json_string_length(p);
		} else if (json_is_array(first) && json_is_array(p)) {
			int rc = parse_ids(p, "prompt", &req->prompts[i], e);
			if (rc)
				return rc;
		} else {
			return type_error(e, "prompt",
			                  "a string, an array of strings, an array of token ids or "
			                  "an array of token-id arrays (not a mix)");
		}
	}
	return 0;
}

static int parse_role(const char *s, api__role *out)
{
	if (strcmp(s, "system") == 0 || strcmp(s, "developer") == 0)
		*out = API_ROLE_SYSTEM;
	else if (strcmp(s, "user") == 0)
		*out = API_ROLE_USER;
	else if (strcmp(s, "assistant") == 0)
		*out = API_ROLE_ASSISTANT;
	else
		return -1;
	return 0;
}

/* Content: a string, an array of {"type":"text","text":...} parts (joined
 * with "\n"), or null for an assistant turn. */
static int parse_content(json_t *c, int32_t i, api__message *m, api_error *e)
{
	char param[64];
	snprintf(param, sizeof param, "messages[%d].content", (int)i);
	if (json_is_string(c)) {
		m->content = xstrndup(json_string_value(c), json_string_length(c));
		m->len = json_string_length(c);
		return 0;
	}
	if ((!c || json_is_null(c)) && m->role == API_ROLE_ASSISTANT) {
		m->content = xstrdup("");
		return 0;
	}
	if (!c || json_is_null(c))
		return api_error_set(e, 400, param, "missing_required_parameter",
		                     "'%s' is required.", param);
	if (!json_is_array(c))
		return type_error(e, param, "a string or an array of text parts");
	/* as OpenAI: an empty list is a client's mistake, not an empty turn */
	if (json_array_size(c) == 0)
		return api_error_set(e, 400, param, "invalid_value",
		                     "'%s' must hold at least one part.", param);
	mllm_buf b;
	mllm_buf_init(&b, SIZE_MAX / 2);
	for (size_t j = 0; j < json_array_size(c); j++) {
		json_t *part = json_array_get(c, j);
		json_t *type = json_object_get(part, "type");
		json_t *text = json_object_get(part, "text");
		int rc = 0;
		if (!json_is_object(part) || !json_is_string(type) ||
		    strcmp(json_string_value(type), "text") != 0 || !json_is_string(text)) {
			mllm_buf_free(&b);
			snprintf(param, sizeof param, "messages[%d].content[%zu]", (int)i, j);
			return api_error_set(e, 400, param, "invalid_value",
			                     "'%s' must be {\"type\": \"text\", \"text\": string}; "
			                     "only text content is supported.",
			                     param);
		}
		if (j > 0)
			rc = mllm_buf_append(&b, "\n", 1);
		if (rc == 0)
			rc = mllm_buf_append(&b, json_string_value(text), json_string_length(text));
		if (rc != 0) {
			mllm_buf_free(&b);
			return api_error_set(e, 503, NULL, "overloaded", "Out of memory.");
		}
	}
	m->len = b.len;
	m->content = b.data ? mllm_buf_take(&b, NULL) : xstrdup("");
	mllm_buf_free(&b);
	return 0;
}

/* The other fields a message may carry: name a string; what this server
 * cannot render into a prompt (an earlier turn's legacy function_call,
 * its audio, its refusal) a 400 rather than a turn silently dropped. */
static int check_message_fields(json_t *m, size_t i, api_error *e)
{
	static const struct {
		const char *key, *why;
	} unsupported[] = {
	    {"function_call", "the deprecated function call form; send 'tool_calls'"},
	    {"audio", "audio turns (these are text models)"},
	    {"refusal", "refusals in earlier turns"},
	};
	char param[80];
	json_t *v = json_object_get(m, "name");
	if (v && !json_is_null(v) && !json_is_string(v)) {
		snprintf(param, sizeof param, "messages[%zu].name", i);
		return type_error(e, param, "a string");
	}
	for (size_t k = 0; k < sizeof unsupported / sizeof unsupported[0]; k++) {
		v = json_object_get(m, unsupported[k].key);
		if (!v || json_is_null(v))
			continue;
		snprintf(param, sizeof param, "messages[%zu].%s", i, unsupported[k].key);
		return api_error_set(e, 400, param, "unsupported_parameter",
		                     "'%s' is not supported: this server does not take %s.", param,
		                     unsupported[k].why);
	}
	return 0;
}

int api__parse_messages(api_request *req, json_t *root, const api_limits *lim, api_error *e)
{
	json_t *v = json_object_get(root, "messages");
	size_t n;
	if (!v || json_is_null(v))
		return api_error_set(e, 400, "messages", "missing_required_parameter",
		                     "'messages' is required.");
	if (!json_is_array(v))
		return type_error(e, "messages", "an array of messages");
	n = json_array_size(v);
	if (n == 0)
		return api_error_set(e, 400, "messages", "invalid_value",
		                     "'messages' must not be empty.");
	if (n > (size_t)lim->max_messages)
		return api_error_set(e, 400, "messages", "invalid_value",
		                     "At most %d messages per request, got %zu.",
		                     (int)lim->max_messages, n);
	req->msgs = xcalloc(n, sizeof *req->msgs);
	for (size_t i = 0; i < n; i++) {
		json_t *m = json_array_get(v, i);
		json_t *role = json_object_get(m, "role");
		char param[64];
		int rc;
		if (!json_is_object(m)) {
			snprintf(param, sizeof param, "messages[%zu]", i);
			return type_error(e, param, "an object with 'role' and 'content'");
		}
		rc = check_message_fields(m, i, e);
		if (rc == 0)
			rc = api__tool_message(m, i, &req->msgs[i], e);
		if (rc > 1)
			return rc;
		if (rc == 1) {
			req->n_msgs = (int32_t)i + 1;
			continue;
		}
		snprintf(param, sizeof param, "messages[%zu].role", i);
		if (!role || json_is_null(role))
			return api_error_set(e, 400, param, "missing_required_parameter",
			                     "Missing required parameter: '%s'.", param);
		if (!json_is_string(role))
			return type_error(
			    e, param, "one of 'system', 'developer', 'user', 'assistant', 'tool'");
		if (strcmp(json_string_value(role), "tool") == 0) {
			/* Checked against the model's template at prepare. */
			req->msgs[i].role = API_ROLE_USER;
			req->msgs[i].tool = true;
		} else if (parse_role(json_string_value(role), &req->msgs[i].role) != 0) {
			return api_error_set(e, 400, param, "invalid_value",
			                     "'%s' must be one of 'system', 'developer', 'user', "
			                     "'assistant', 'tool'; got '%s'.",
			                     param, json_string_value(role));
		}
		req->n_msgs = (int32_t)i + 1;
		rc = parse_content(json_object_get(m, "content"), (int32_t)i, &req->msgs[i], e);
		if (rc)
			return rc;
	}
	/* Jinja templates render the chat as sent (tool calls and all). */
	req->j_messages = json_incref(v);
	v = json_object_get(root, "tools");
	if (v && !json_is_null(v)) {
		if (!json_is_array(v))
			return type_error(e, "tools", "an array of tools");
		req->j_tools = json_incref(v);
	}
	v = json_object_get(root, "chat_template_kwargs");
	if (v && !json_is_null(v)) {
		if (!json_is_object(v))
			return type_error(e, "chat_template_kwargs", "an object");
		req->j_kwargs = json_incref(v);
	}
	return 0;
}

/* ---- sampling fields ------------------------------------------------------ */

static int parse_stop(api_request *req, json_t *root, const api_limits *lim, api_error *e)
{
	json_t *v = json_object_get(root, "stop");
	json_t *items[MLLM_MAX_STOP];
	size_t n = 0;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		items[n++] = v;
	} else if (json_is_array(v)) {
		/* Checked before anything is copied: thousands of stop
		 * strings cost one comparison. */
		if (json_array_size(v) > MLLM_MAX_STOP)
			return api_error_set(e, 400, "stop", "invalid_value",
			                     "'stop' holds at most %d sequences, got %zu.",
			                     MLLM_MAX_STOP, json_array_size(v));
		for (size_t i = 0; i < json_array_size(v); i++) {
			items[n] = json_array_get(v, i);
			if (!json_is_string(items[n]))
				return type_error(e, "stop", "a string or an array of strings");
			n++;
		}
	} else {
		return type_error(e, "stop", "a string or an array of strings");
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = json_string_length(items[i]);
		if (len > (size_t)lim->max_stop_len)
			return api_error_set(e, 400, "stop", "invalid_value",
			                     "Each stop sequence is at most %d bytes, got %zu.",
			                     (int)lim->max_stop_len, len);
		if (len == 0)
			continue; /* an empty stop would end every completion at once */
		req->stop[req->n_stop_client++] = xstrndup(json_string_value(items[i]), len);
	}
	return 0;
}

static int parse_logit_bias(api_request *req, json_t *root, const api_limits *lim, api_error *e)
{
	json_t *v = json_object_get(root, "logit_bias");
	const char *key;
	json_t *val;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return type_error(e, "logit_bias", "an object mapping token ids to numbers");
	if (json_object_size(v) > (size_t)lim->max_logit_bias)
		return api_error_set(e, 400, "logit_bias", "invalid_value",
		                     "'logit_bias' holds at most %d entries, got %zu.",
		                     (int)lim->max_logit_bias, json_object_size(v));
	if (json_object_size(v) == 0)
		return 0;
	req->bias = xcalloc(json_object_size(v), sizeof *req->bias);
	json_object_foreach(v, key, val)
	{
		size_t len = strlen(key);
		long long id = 0;
		double b;
		if (len == 0 || len > 10 || strspn(key, "0123456789") != len)
			return api_error_set(e, 400, "logit_bias", "invalid_value",
			                     "'logit_bias' keys must be token ids (decimal "
			                     "integers); got '%.32s'.",
			                     key);
		for (size_t i = 0; i < len; i++)
			id = id * 10 + (key[i] - '0');
		if (id > INT32_MAX)
			return api_error_set(e, 400, "logit_bias", "invalid_value",
			                     "'logit_bias' key %s is not a token id.", key);
		if (!json_is_number(val))
			return type_error(e, "logit_bias",
			                  "an object mapping token ids to numbers");
		b = json_number_value(val);
		if (!(b >= -100.0 && b <= 100.0)) {
			char nb[32];
			return api_error_set(e, 400, "logit_bias", "invalid_value",
			                     "'logit_bias' values must be in [-100, 100]; "
			                     "token %s has %s.",
			                     key, num_text(b, nb));
		}
		req->bias[req->n_bias].id = (int32_t)id;
		req->bias[req->n_bias].bias = (float)b;
		req->n_bias++;
	}
	return 0;
}

static int parse_common(api_request *req, json_t *root, const api_limits *lim, api_error *e)
{
	mllm_sampling *sp = &req->sp;
	long long x;
	bool has;
	int rc;
	json_t *v;

	v = json_object_get(root, "model");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v))
			return type_error(e, "model", "a string");
		req->model = xstrndup(json_string_value(v), json_string_length(v));
	}
	v = json_object_get(root, "user");
	if (v && !json_is_null(v) && !json_is_string(v))
		return type_error(e, "user", "a string");

	rc = get_real(root, "temperature", 0.0, 2.0, &sp->temperature, e);
	if (rc == 0)
		rc = get_top_p(root, &sp->top_p, e);
	if (rc == 0)
		rc = get_real(root, "presence_penalty", -2.0, 2.0, &sp->presence_penalty, e);
	if (rc == 0)
		rc = get_real(root, "frequency_penalty", -2.0, 2.0, &sp->frequency_penalty, e);
	if (rc == 0)
		rc = get_real(root, "min_p", 0.0, 1.0, &sp->min_p, e);
	if (rc)
		return rc;
	rc = get_int(root, "top_k", -1, INT32_MAX, &x, &has, e);
	if (rc)
		return rc;
	if (has)
		sp->top_k = x < 0 ? 0 : (int32_t)x; /* vLLM's -1 = off */
	rc = get_bool(root, "ignore_eos", &sp->ignore_eos, e);
	if (rc)
		return rc;

	rc = get_int(root, "n", 1, lim->max_n, &x, &has, e);
	if (rc)
		return rc;
	req->n = has ? (int32_t)x : 1;

	rc = get_int(root, "seed", LLONG_MIN, LLONG_MAX, &x, &has, e);
	if (rc)
		return rc;
	sp->has_seed = has;
	sp->seed = has ? (uint64_t)x : 0;

	rc = get_bool(root, "stream", &req->stream, e);
	if (rc)
		return rc;
	v = json_object_get(root, "stream_options");
	if (v && !json_is_null(v)) {
		if (!json_is_object(v))
			return type_error(e, "stream_options", "an object");
		if (!req->stream)
			return api_error_set(
			    e, 400, "stream_options", "invalid_value",
			    "'stream_options' is only allowed when 'stream' is true.");
		v = json_object_get(v, "include_usage");
		if (v && !json_is_null(v)) {
			if (!json_is_boolean(v))
				return type_error(e, "stream_options.include_usage", "a boolean");
			req->include_usage = json_is_true(v);
		}
	}
	rc = parse_stop(req, root, lim, e);
	if (rc == 0)
		rc = parse_logit_bias(req, root, lim, e);
	if (rc == 0)
		rc = api__parse_structured(req, root, e);
	return rc;
}

static int parse_completion(api_request *req, json_t *root, const api_limits *lim, api_error *e)
{
	long long x;
	bool has;
	json_t *v;
	int rc = parse_prompt(req, root, lim, e);
	if (rc)
		return rc;
	v = json_object_get(root, "suffix");
	if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
		return api_error_set(e, 400, "suffix", "unsupported_parameter",
		                     "'suffix' is not supported: MobileLLM models have no "
		                     "fill-in-the-middle mode.");
	rc = get_int(root, "max_tokens", 0, lim->max_tokens, &x, &has, e);
	if (rc)
		return rc;
	req->has_max_tokens = true;
	req->max_tokens = has ? (int32_t)x : 16;
	rc = get_bool(root, "echo", &req->echo, e);
	if (rc)
		return rc;
	rc = get_int(root, "logprobs", 0, 5, &x, &has, e);
	if (rc)
		return rc;
	req->logprobs = has ? (int32_t)x : -1;
	/* best_of: equal to n is harmless; anything else is refused. */
	rc = get_int(root, "best_of", 1, INT32_MAX, &x, &has, e);
	if (rc)
		return rc;
	if (has && x > req->n)
		return api_error_set(e, 400, "best_of", "unsupported_parameter",
		                     "'best_of' > n is not supported (best_of %lld, n %d).", x,
		                     (int)req->n);
	if (has && x < req->n)
		return api_error_set(e, 400, "best_of", "invalid_value",
		                     "'best_of' must be at least n (best_of %lld, n %d).", x,
		                     (int)req->n);
	return 0;
}

static int parse_chat(api_request *req, json_t *root, const api_limits *lim, api_error *e)
{
	long long x;
	bool has, lp = false;
	int rc = api__parse_messages(req, root, lim, e);
	json_t *v;
	if (rc == 0)
		rc = api__check_tool_links(req->j_messages, e);
	if (rc)
		return rc;
	/* Audio output: these are text models. Said, rather than answering
	 * an "audio" request with text only. */
	v = json_object_get(root, "modalities");
	if (v && !json_is_null(v)) {
		size_t i;
		json_t *m;
		if (!json_is_array(v))
			return type_error(e, "modalities", "an array of strings");
		json_array_foreach(v, i, m)
		{
			if (!json_is_string(m))
				return type_error(e, "modalities", "an array of strings");
			if (strcmp(json_string_value(m), "text") != 0)
				return api_error_set(
				    e, 400, "modalities", "unsupported_value",
				    "Only the 'text' modality is supported, not '%.32s'.",
				    json_string_value(m));
		}
	}
	v = json_object_get(root, "audio");
	if (v && !json_is_null(v))
		return api_error_set(e, 400, "audio", "unsupported_parameter",
		                     "'audio' output is not supported: these are text models.");
	/* The deprecated function calling: said, rather than a reply that
	 * silently never calls. */
	for (int i = 0; i < 2; i++) {
		const char *k = i ? "function_call" : "functions";
		v = json_object_get(root, k);
		if (v && !json_is_null(v))
			return api_error_set(e, 400, k, "unsupported_parameter",
			                     "'%s' (deprecated) is not supported; use 'tools' "
			                     "and 'tool_choice'.",
			                     k);
	}
	/* max_completion_tokens supersedes the deprecated max_tokens. */
	rc = get_int(root, "max_completion_tokens", 1, lim->max_tokens, &x, &has, e);
	if (rc)
		return rc;
	if (has)
		req->max_tokens_param = "max_completion_tokens";
	if (!has) {
		rc = get_int(root, "max_tokens", 1, lim->max_tokens, &x, &has, e);
		if (rc)
			return rc;
	}
	req->has_max_tokens = has;
	req->max_tokens = has ? (int32_t)x : 0;
	rc = get_bool(root, "logprobs", &lp, e);
	if (rc)
		return rc;
	rc = get_int(root, "top_logprobs", 0, MLLM_MAX_TOP_LOGPROBS, &x, &has, e);
	if (rc)
		return rc;
	if (has && !lp)
		return api_error_set(e, 400, "top_logprobs", "invalid_value",
		                     "'top_logprobs' requires 'logprobs' to be true.");
	req->logprobs = lp ? (has ? (int32_t)x : 0) : -1;
	rc = get_bool(root, "continue_final_message", &req->cont_final, e);
	if (rc)
		return rc;
	if (req->cont_final) {
		/* vLLM's prefill: the last message is the start of the answer. */
		const api__message *last = &req->msgs[req->n_msgs - 1];
		char param[64];
		snprintf(param, sizeof param, "messages[%d]", (int)req->n_msgs - 1);
		if (last->role != API_ROLE_ASSISTANT || last->tool ||
		    json_object_get(json_array_get(req->j_messages, (size_t)req->n_msgs - 1),
		                    "tool_calls"))
			return api_error_set(e, 400, "continue_final_message", "invalid_value",
			                     "'continue_final_message' needs an assistant message "
			                     "without tool_calls last; %s is not one.",
			                     param);
		if (last->len == 0)
			return api_error_set(e, 400, "continue_final_message", "invalid_value",
			                     "'continue_final_message' needs text in %s.content.",
			                     param);
	}
	return api__parse_tools(req, root, e);
}

int api_request_parse(api_kind kind, const char *body, size_t len, const api_limits *lim,
                      api_request **out, api_error *err)
{
	api_request *req;
	json_t *root;
	json_error_t jerr;
	int rc;
	*out = NULL;
	if (len > lim->max_body_bytes)
		return api_error_set(err, 413, NULL, "request_too_large",
		                     "The request body is %zu bytes; the limit is %zu.", len,
		                     lim->max_body_bytes);
	/* jansson rejects invalid UTF-8, NUL in strings, integers that do
	 * not fit in 64 bits, real overflow and trailing garbage. */
	root = json_loadb(body ? body : "", len, 0, &jerr);
	if (!root)
		return api_error_set(err, 400, NULL, "invalid_json",
		                     "The body is not valid JSON: %s (at byte %d).",
		                     api__json_error_text(&jerr), jerr.position);
	if (!json_is_object(root)) {
		json_decref(root);
		return api_error_set(err, 400, NULL, "invalid_json",
		                     "The body must be a JSON object.");
	}
	req = xcalloc(1, sizeof *req);
	req->kind = kind;
	req->created = (int64_t)time(NULL);
	api__make_id(req->id, sizeof req->id, kind == API_CHAT ? "chatcmpl-" : "cmpl-");
	req->sp = MLLM_SAMPLING_DEFAULT;
	req->lim = *lim;
	req->logprobs = -1;
	if (kind == API_RESPONSES) {
		/* Its own fields (responses.c); n is always 1. */
		req->n = 1;
		rc = api__parse_responses(req, root, lim, err);
	} else {
		rc = parse_common(req, root, lim, err);
		if (rc == 0)
			rc = kind == API_CHAT ? parse_chat(req, root, lim, err)
			                      : parse_completion(req, root, lim, err);
	}
	if (rc == 0 &&
	    (int64_t)req->n * (api__chatlike(req) ? 1 : req->n_prompts) > lim->max_choices)
		rc = api_error_set(err, 400, "n", "invalid_value",
		                   "prompts x n is %lld; at most %d choices per request.",
		                   (long long)req->n * req->n_prompts, (int)lim->max_choices);
	json_decref(root);
	if (rc) {
		api_request_free(req);
		return rc;
	}
	if (api__chatlike(req))
		req->n_prompts = 1;
	*out = req;
	return 0;
}

void api_request_free(api_request *req)
{
	if (!req)
		return;
	free(req->model);
	api__structured_free(req);
	api__tools_free(req);
	api__resp_free(req);
	for (int i = 0; i < MLLM_MAX_STOP; i++)
		free(req->stop[i]);
	free(req->bias);
	if (req->prompts) {
		int32_t np = api__chatlike(req) ? 1 : req->n_prompts;
		for (int32_t i = 0; i < np; i++) {
			api__prompt *p = &req->prompts[i];
			free(p->text);
			free(p->ids);
			free(p->offsets);
			for (size_t k = 0; k < p->plp.n; k++) {
				free(p->plp.v[k].text);
				free(p->plp.v[k].out);
				free(p->plp.v[k].top);
			}
			free(p->plp.v);
		}
		free(req->prompts);
	}
	for (int32_t i = 0; i < req->n_msgs; i++)
		free(req->msgs[i].content);
	free(req->msgs);
	json_decref(req->j_messages);
	json_decref(req->j_tools);
	json_decref(req->j_kwargs);
	if (req->choices) {
		for (int32_t i = 0; i < req->n_prompts * req->n; i++) {
			api__choice *c = &req->choices[i];
			mllm_buf_free(&c->text);
			mllm_buf_free(&c->reasoning);
			for (size_t k = 0; k < c->lp.n; k++) {
				free(c->lp.v[k].text);
				free(c->lp.v[k].out);
				free(c->lp.v[k].top);
			}
			free(c->lp.v);
		}
		free(req->choices);
	}
	free(req);
}

const char *api_request_model(const api_request *req)
{
	return req->model;
}

bool api_request_stream(const api_request *req)
{
	if (req->kind == API_RESPONSES)
		return api__resp_streaming(req);
	return req->stream;
}

api_kind api_request_kind(const api_request *req)
{
	return req->kind;
}

const char *api_request_id(const api_request *req)
{
	return req->id;
}

void api_request_set_id(api_request *req, const char *id, int64_t created)
{
	snprintf(req->id, sizeof req->id, "%s", id);
	req->created = created;
}

/* ---- prepare: model binding ---------------------------------------------- */

/* parse_special: special-token text (<|eot_id|> ...) becomes the special
 * token, as in completions prompts; chat message text never does, so that a
 * user cannot forge a turn boundary (byte-level BPE vocabularies only). */
/* The first control token that text[0..len) encodes to with special-token
 * text parsed, in *bad (-1: none). */
static int find_control(const mllm_tokenizer *tok, const char *text, size_t len, int32_t *bad,
                        api_error *e)
{
	mllm_encode_opts o = {.add_bos = false, .parse_special = true};
	size_t cap, n = 0, bytes;
	int32_t *ids;
	int rc;
	*bad = -1;
	if (len == 0 || memchr(text, '<', len) == NULL)
		return 0; /* every special token's text starts with '<' */
	cap = mllm_tokenizer_max_ids(tok, len);
	if (mllm__mul_overflow(cap, sizeof(int32_t), &bytes))
		return api_error_set(e, 413, NULL, "request_too_large", "The message is too long.");
	ids = mllm_try_malloc(bytes);
	if (!ids)
		return api_error_set(e, 503, NULL, "overloaded", "Out of memory.");
	rc = mllm_tokenizer_encode_ex(tok, text, len, &o, ids, cap, &n);
	for (size_t k = 0; rc == 0 && k < n && *bad < 0; k++)
		if (mllm_tokenizer_is_control(tok, ids[k]))
			*bad = ids[k];
	free(ids);
	if (rc == MLLM_ENOMEM || rc == MLLM_ECANCELLED)
		return api_error_from_mllm(e, rc);
	return 0;
}

static int special_error(const mllm_tokenizer *tok, int32_t bad, const char *param,
                         const char *what, api_error *e)
{
	size_t pl = 0;
	const char *piece = mllm_tokenizer_piece(tok, bad, &pl);
	return api_error_set(e, 400, param, "invalid_value",
	                     "%s contains the special-token text '%.*s'; this model does not "
	                     "accept special tokens inside messages or tools "
	                     "(chat_special_in_messages = false).",
	                     what, (int)(pl < 64 ? pl : 64), piece ? piece : "");
}

/* A string the template may print: refused when it encodes to a control
 * token. */
static int specials_string(const mllm_tokenizer *tok, const char *str, size_t n, const char *path,
                           api_error *e)
{
	int32_t bad;
	int rc = find_control(tok, str, n, &bad, e);
	if (rc == 0 && bad >= 0)
		rc = special_error(tok, bad, path, path, e);
	return rc;
}

/* Every string under v (a value the template may print), depth first;
 * path holds v's JSON path, extended in place (cut at cap: errors then
 * name an ancestor). A call's arguments (an "arguments" string under a
 * "function", when args) are JSON text templates print parsed: what their
 * escapes spell counts too, walked once (args off inside), the error
 * naming the arguments. */
static int specials_walk(const mllm_tokenizer *tok, const json_t *v, char *path, size_t pl,
                         size_t cap, bool args, api_error *e)
{
	int rc = 0;
	if (json_is_string(v)) {
		rc = specials_string(tok, json_string_value(v), json_string_length(v), path, e);
	} else if (json_is_object(v)) {
		const char *k;
		const json_t *x;
		bool fn = pl >= 9 && strcmp(path + pl - 9, ".function") == 0;
		json_object_foreach((json_t *)v, k, x)
		{
			snprintf(path + pl, cap - pl, ".%s", k);
			/* Keys too: tojson prints them (a property name). */
			rc = specials_string(tok, k, strlen(k), path, e);
			if (rc == 0)
				rc = specials_walk(tok, x, path, strlen(path), cap, args, e);
			if (rc == 0 && args && fn && json_is_string(x) &&
			    strcmp(k, "arguments") == 0) {
				json_t *parsed =
				    json_loadb(json_string_value(x), json_string_length(x),
				               JSON_DECODE_ANY, NULL);
				if (parsed) {
					size_t at = strlen(path);
					rc = specials_walk(tok, parsed, path, at, cap, false, e);
					path[at] = '\0';
					if (rc && e->status == 400) /* name the arguments */
						snprintf(e->param, sizeof e->param, "%s", path);
					json_decref(parsed);
				}
			}
			if (rc)
				break;
		}
	} else if (json_is_array(v)) {
		size_t i;
		const json_t *x;
		json_array_foreach(v, i, x)
		{
			snprintf(path + pl, cap - pl, "[%zu]", i);
			rc = specials_walk(tok, x, path, strlen(path), cap, args, e);
			if (rc)
				break;
		}
	}
	path[pl] = '\0';
	return rc;
}

/* A model's own (Jinja) template writes its turn markers as special-token
 * text, so its output is encoded with special tokens parsed; nothing the
 * client sends into the template may hold such text itself, or a user
 * could forge a turn boundary. Refuses the first message whose content
 * encodes to a control token when parsed (400 naming it), then any other
 * string the template sees (reasoning_content, tool calls, tool
 * definitions and their descriptions, chat_template_kwargs), unless the
 * model allows it (chat_special_in_messages). */
int api__check_message_specials(const api_chat_template *t, const mllm_tokenizer *tok,
                                const api_request *req, api_error *e)
{
	char path[256];
	int rc;
	static const struct {
		size_t off;
		const char *name;
	} roots[] = {{offsetof(api_request, j_messages), "messages"},
	             {offsetof(api_request, j_tools), "tools"},
	             {offsetof(api_request, j_kwargs), "chat_template_kwargs"}};
	if (!t->jinja || t->special_in_messages)
		return 0;
	/* What the client sent, by its JSON path; then the message texts
	 * derived from it (text parts joined, a tools preamble). */
	for (size_t r = 0; r < sizeof roots / sizeof roots[0]; r++) {
		const json_t *v = *(json_t *const *)((const char *)req + roots[r].off);
		if (!v)
			continue;
		snprintf(path, sizeof path, "%s", roots[r].name);
		rc = specials_walk(tok, v, path, strlen(path), sizeof path, r == 0, e);
		if (rc)
			return rc;
	}
	for (int32_t i = 0; i < req->n_msgs; i++) {
		const api__message *msg = &req->msgs[i];
		int32_t bad;
		char what[32];
		rc = find_control(tok, msg->content, msg->len, &bad, e);
		if (rc)
			return rc;
		if (bad >= 0) {
			snprintf(path, sizeof path, "messages[%d].content", (int)i);
			snprintf(what, sizeof what, "Message %d", (int)i);
			return special_error(tok, bad, path, what, e);
		}
	}
	return 0;
}

static int tokenize(const mllm_tokenizer *tok, const char *text, size_t len, bool add_bos,
                    bool parse_special, api__prompt *p, api_error *e)
{
	mllm_encode_opts o = {.add_bos = add_bos, .parse_special = parse_special};
	size_t cap = mllm_tokenizer_max_ids(tok, len), n = 0, bytes;
	int rc;
	if (len > SIZE_MAX / 4 || mllm__mul_overflow(cap, sizeof(int32_t), &bytes))
		return api_error_set(e, 413, NULL, "request_too_large", "The prompt is too long.");
	p->ids = mllm_try_malloc(bytes);
	if (!p->ids)
		return api_error_set(e, 503, NULL, "overloaded", "Out of memory for the prompt.");
	rc = mllm_tokenizer_encode_ex(tok, text, len, &o, p->ids, cap, &n);
	if (rc == MLLM_ENOMEM || rc == MLLM_ECANCELLED)
		return api_error_from_mllm(e, rc);
	if (rc != 0)
		return api_error_set(e, 500, NULL, "internal_error", "Tokenization failed: %s.",
		                     mllm_strerror(rc));
	p->n_ids = n;
	return 0;
}

/* Text of token ids for echo: the decoder's output (BOS renders as ""). */
static int decode_ids(const mllm_tokenizer *tok, api__prompt *p, api_error *e)
{
	size_t cap = p->n_ids * 16 + 16, n = 0;
	for (int tries = 0; tries < 2; tries++) {
		char *s = mllm_try_malloc(cap + 1);
		int rc;
		if (!s)
			return api_error_set(e, 503, NULL, "overloaded", "Out of memory.");
		rc = mllm_tokenizer_decode(tok, p->ids, p->n_ids, s, cap + 1, &n);
		if (rc == 0) {
			p->text = s;
			p->text_len = n;
			return 0;
		}
		free(s);
		if (rc != MLLM_ENOSPACE)
			return api_error_set(e, 400, "prompt", "invalid_value",
			                     "The prompt's token ids cannot be decoded: %s.",
			                     mllm_strerror(rc));
		cap = n;
	}
	return api_error_set(e, 500, NULL, "internal_error", "Decoding the prompt failed.");
}

/* Where each prompt token starts in the echoed text, in characters: what
 * the detokenizer has released before it (control tokens and the first
 * piece's dummy-prefix space take no room, as in the text itself). */
static int prompt_offsets(const mllm_tokenizer *tok, api__prompt *p, api_error *e)
{
	mllm_detok d;
	char buf[MLLM_DETOK_MAX];
	size_t at = 0, at_b = 0; /* characters; bytes of p->text */
	p->offsets = mllm_try_calloc(p->n_ids ? p->n_ids : 1, sizeof *p->offsets);
	if (!p->offsets)
		return api_error_set(e, 503, NULL, "overloaded", "Out of memory.");
	mllm_detok_init(&d, tok);
	for (size_t k = 0; k < p->n_ids; k++) {
		int n = mllm_detok_push(&d, p->ids[k], buf, sizeof buf);
		p->offsets[k] = at;
		/* A string prompt is echoed as sent: a special token written
		 * in it (byte-level BPE matches their text) takes its text's
		 * room, which the detokenizer renders as nothing. The BOS the
		 * tokenizer adds is not in the text: it adds none where the
		 * text starts with its own, so a first BOS is the text's own
		 * exactly when the text starts with it. */
		if (!p->is_tokens && p->text && mllm_tokenizer_matches_special(tok) &&
		    mllm_tokenizer_is_control(tok, p->ids[k])) {
			size_t sl = mllm_tokenizer_token_bytes(tok, p->ids[k], buf, sizeof buf);
			if (sl > 0 && at_b + sl <= p->text_len &&
			    memcmp(p->text + at_b, buf, sl) == 0) {
				at_b += sl;
				at += api__utf8_chars(buf, sl);
			}
			continue;
		}
		if (n > 0) {
			at_b += (size_t)n;
			at += api__utf8_chars(buf, (size_t)n);
		}
	}
	return 0;
}

/* The name of the output-length parameter as the client sent it. */
static const char *mt_param(const api_request *req)
{
	if (req->kind == API_RESPONSES)
		return "max_output_tokens";
	return req->max_tokens_param ? req->max_tokens_param : "max_tokens";
}

/* mt_name NULL: the client set no limit on the completion, so only the
 * prompt can be shortened. */
static int context_error(api_error *e, const char *param, const char *mt_name, int32_t n_ctx,
                         size_t n_prompt, int32_t max_tokens)
{
	if (!mt_name)
		return api_error_set(
		    e, 400, param, "context_length_exceeded",
		    "This model's maximum context length is %d tokens; the prompt "
		    "has %zu, which leaves no room for the completion. Shorten the "
		    "prompt.",
		    (int)n_ctx, n_prompt);
	return api_error_set(e, 400, param, "context_length_exceeded",
	                     "This model's maximum context length is %d tokens; the request "
	                     "needs %zu (%zu in the prompt, %d for the completion). Shorten the "
	                     "prompt or lower %s.",
	                     (int)n_ctx, n_prompt + (size_t)max_tokens, n_prompt, (int)max_tokens,
	                     mt_name);
}

/* Limits of the engine that no retry can get past: more choices than run at
 * once, more prompts than the queue holds (each prompt is one engine
 * request; they are submitted together). */
static int check_admission(const api_request *req, const api_model_info *m, api_error *e)
{
	if (m->max_running > 0 && req->n > m->max_running)
		return api_error_set(e, 400, "n", "invalid_value",
		                     "'n' is %d but the model '%s' decodes at most %d sequences at "
		                     "once (max_running).",
		                     (int)req->n, m->id, (int)m->max_running);
	if (m->max_queue > 0 && req->n_prompts > m->max_queue)
		return api_error_set(e, 400, "prompt", "invalid_value",
		                     "The request has %d prompts but the model '%s' queues at most "
		                     "%d requests (max_queue); send fewer prompts per request.",
		                     (int)req->n_prompts, m->id, (int)m->max_queue);
	return 0;
}

/* KV blocks a prompt of np tokens with mt completion tokens and n choices
 * takes from the pool, as the engine admits it: the blocks of prompt +
 * completion once, plus each extra choice's blocks past the shared full
 * prompt blocks. */
static int64_t pool_need(const api_model_info *m, int64_t np, int64_t mt, int64_t n)
{
	int64_t bs = m->kv_block_size;
	int64_t nb = (np + mt + bs - 1) / bs;
	return nb + (n - 1) * (nb - np / bs);
}

/* Whether the pool can hold the prompt and mt completion tokens at all
 * (true where the model has no block pool to speak of). */
static bool pool_fits(const api_request *req, const api_model_info *m, size_t np, int64_t mt)
{
	if (m->kv_block_size <= 0 || m->kv_blocks <= 0)
		return true;
	return pool_need(m, (int64_t)np, mt, req->n) <= m->kv_blocks;
}

/* Each prompt with its n choices must fit the whole KV pool, as the engine
 * admits it (mllm_engine_submit): the prompt's blocks once, plus each extra
 * choice's blocks past the shared full prefix blocks. A request that fails
 * this could never run, whatever the context length allows. A default
 * max_tokens (the client set none: what the context leaves) is first
 * lowered to what the pool leaves, so such a request runs until the pool's
 * limit (finish_reason "length") rather than being refused for a parameter
 * it never sent. */
static int check_kv_pool(api_request *req, const api_model_info *m, const char *pparam,
                         api_error *e)
{
	int64_t bs = m->kv_block_size;

	if (bs <= 0 || m->kv_blocks <= 0)
		return 0;
	for (int32_t i = 0; i < req->n_prompts && !req->has_max_tokens; i++) {
		/* need = nb + (n - 1)(nb - fp) <= kv_blocks, nb the blocks of
		 * prompt + completion, fp the prompt's full blocks. */
		int64_t np = (int64_t)req->prompts[i].n_ids, n = req->n;
		int64_t nb_max = (m->kv_blocks + (n - 1) * (np / bs)) / n;
		int64_t mt_max = nb_max * bs - np;
		if (mt_max < 1)
			return api_error_set(
			    e, 400, n > 1 ? "n" : pparam, "kv_pool_exceeded",
			    "This request's prompt (%lld tokens) with n %d leaves no room for a "
			    "completion in the model '%s''s KV pool of %lld blocks of %lld tokens; "
			    "shorten the prompt%s, or raise the model's KV pool (kv_bytes, or "
			    "kv_blocks where set).",
			    (long long)np, (int)n, m->id, (long long)m->kv_blocks, (long long)bs,
			    n > 1 ? " or lower n" : "");
		if (mt_max < req->max_tokens)
			req->max_tokens = (int32_t)mt_max;
	}
	for (int32_t i = 0; i < req->n_prompts; i++) {
		int64_t np = (int64_t)req->prompts[i].n_ids;
		int64_t need = pool_need(m, np, req->max_tokens, req->n);
		if (need > m->kv_blocks)
			return api_error_set(
			    e, 400, mt_param(req), "kv_pool_exceeded",
			    "This request needs %lld KV blocks of %lld tokens "
			    "(%lld prompt tokens, %s %d, n %d) but the model "
			    "'%s' has a KV pool of %lld blocks; lower %s or "
			    "n, or raise the model's KV pool (kv_bytes, or kv_blocks "
			    "where set).",
			    (long long)need, (long long)bs, (long long)np, mt_param(req),
			    (int)req->max_tokens, (int)req->n, m->id, (long long)m->kv_blocks,
			    mt_param(req));
	}
	return 0;
}

static int prepare(api_request *req, const api_model_info *m, api_error *err)
{
	const char *pparam = req->kind == API_CHAT        ? "messages"
	                     : req->kind == API_RESPONSES ? "input"
	                                                  : "prompt";
	int32_t n_vocab, max_prompt;
	int rc, rstart = API__R_OFF;
	bool lstrip = api__chatlike(req);
	if (!m->tok)
		return api_error_set(err, 500, NULL, "internal_error",
		                     "The model '%s' has no tokenizer.", m->id);
	req->m = m;
	n_vocab = mllm_tokenizer_n_vocab(m->tok);
	max_prompt = m->n_ctx;
	if (req->lim.max_prompt_tokens > 0 && req->lim.max_prompt_tokens < max_prompt)
		max_prompt = req->lim.max_prompt_tokens;

	if (api__chatlike(req)) {
		const api_chat_template *t =
		    m->chat_template ? m->chat_template : api__chat_template_default();
		mllm_buf b;
		size_t skip = 0;
		bool bos = false;
		if (!req->prompts)
			req->prompts = xcalloc(1, sizeof *req->prompts);
		if (req->kind == API_RESPONSES) {
			rc = api__resp_messages(req, err);
			if (rc)
				return rc;
		}
		rc = api__prepare_tools(req, err);
		if (rc)
			return rc;
		for (;;) {
			api__prompt *p = &req->prompts[0];
			const char *text;
			size_t len, need;
			int32_t mt;
			mllm_buf_init(&b, SIZE_MAX / 2);
			rc = api__check_message_specials(t, m->tok, req, err);
			if (rc == 0)
				rc = api__chat_render(t, req, m->tok, &b, &skip, &bos, err);
			text = b.data ? b.data + skip : "";
			len = b.len - skip;
			if (rc == 0 && req->kind == API_RESPONSES)
				rc = api__resp_tokenize(req, m->tok, text, len, bos, t->jinja, p,
				                        err);
			else if (rc == 0)
				rc = tokenize(m->tok, text, len, bos, t->jinja, p, err);
			if (rc == 0)
				rstart = api__reasoning_start(t, b.data ? b.data : "", b.len);
			mllm_buf_free(&b);
			if (rc)
				return rc;
			/* truncation "auto": the oldest turns go until the prompt
			 * and the completion fit the context and the KV pool. */
			mt = req->has_max_tokens ? req->max_tokens : 1;
			need = p->n_ids + (size_t)mt;
			if (req->kind != API_RESPONSES || !api__resp_truncation_auto(req) ||
			    (p->n_ids <= (size_t)max_prompt && need <= (size_t)m->n_ctx &&
			     pool_fits(req, m, p->n_ids, mt)) ||
			    !api__resp_truncate(req))
				break;
			free(p->ids);
			p->ids = NULL;
			p->n_ids = 0;
		}
		/* The preset's "Assistant:" cue invites a leading space that is
		 * not part of the answer; a model's own template does not. */
		lstrip = !t->jinja && !req->cont_final;
		/* The template's stops come after the client's, while room
		 * remains: a Jinja template's eos_token, or the preset's. */
		for (int32_t i = 0; i < req->n_stop_client; i++)
			req->stop_ptrs[i] = req->stop[i];
		req->sp.n_stop = req->n_stop_client;
		if (t->jinja) {
			if (t->eos_text && t->eos_text[0] && req->sp.n_stop < MLLM_MAX_STOP)
				req->stop_ptrs[req->sp.n_stop++] = t->eos_text;
		} else {
			for (int i = 0; i < t->n_stop && req->sp.n_stop < MLLM_MAX_STOP; i++)
				req->stop_ptrs[req->sp.n_stop++] = t->stop[i];
		}
	} else {
		for (int32_t i = 0; i < req->n_prompts; i++) {
			api__prompt *p = &req->prompts[i];
			if (p->is_tokens) {
				for (size_t k = 0; k < p->n_ids; k++)
					if (p->ids[k] >= n_vocab)
						return api_error_set(
						    err, 400, "prompt", "invalid_value",
						    "Token id %d is outside the vocabulary "
						    "[0, %d).",
						    (int)p->ids[k], (int)n_vocab);
				/* Text for echo, and its length for text_offset. */
				if (req->echo || req->logprobs >= 0) {
					rc = decode_ids(m->tok, p, err);
					if (rc)
						return rc;
				}
			} else {
				rc = tokenize(m->tok, p->text, p->text_len,
				              mllm_tokenizer_add_bos(m->tok), true, p, err);
				if (rc)
					return rc;
			}
		}
		for (int32_t i = 0; i < req->n_stop_client; i++)
			req->stop_ptrs[i] = req->stop[i];
		req->sp.n_stop = req->n_stop_client;
	}
	/* Counting: the schemas and tools are still checked (a response to
	 * this body would refuse them), the lengths are not. */
	if (req->count_only)
		return api__prepare_structured(req, err);
	for (int32_t i = 0; i < req->n_bias; i++)
		if (req->bias[i].id >= n_vocab)
			return api_error_set(err, 400, "logit_bias", "invalid_value",
			                     "'logit_bias' token id %d is outside the vocabulary "
			                     "[0, %d).",
			                     (int)req->bias[i].id, (int)n_vocab);

	rc = check_admission(req, m, err);
	if (rc)
		return rc;

	/* Lengths: each prompt alone, then prompt + max_tokens. */
	for (int32_t i = 0; i < req->n_prompts; i++) {
		api__prompt *p = &req->prompts[i];
		int32_t mt = req->max_tokens;
		if (p->n_ids == 0)
			return api_error_set(err, 400, pparam, "invalid_value",
			                     "The prompt is empty (no tokens).");
		/* In OpenAI's words where the limit is the context (clients
		 * such as litellm recognise the error by them). */
		const char *what = req->kind == API_RESPONSES ? "input"
		                   : api__chatlike(req)       ? "messages"
		                                              : "prompt";
		if (p->n_ids > (size_t)max_prompt && max_prompt == m->n_ctx && req->n_prompts > 1)
			return api_error_set(
			    err, 400, pparam, "context_length_exceeded",
			    "This model's maximum context length is %d tokens. However, prompt %d "
			    "(counting from 0) resulted in %zu tokens. Please reduce the length of "
			    "the prompt.",
			    (int)max_prompt, (int)i, p->n_ids);
		if (p->n_ids > (size_t)max_prompt && max_prompt == m->n_ctx)
			return api_error_set(
			    err, 400, pparam, "context_length_exceeded",
			    "This model's maximum context length is %d tokens. However, your %s "
			    "resulted in %zu tokens. Please reduce the length of the %s.",
			    (int)max_prompt, what, p->n_ids, what);
		if (p->n_ids > (size_t)max_prompt && req->n_prompts > 1)
			return api_error_set(
			    err, 400, pparam, "context_length_exceeded",
			    "Prompt %d (counting from 0) has %zu tokens; the limit is "
			    "%d (max_prompt_tokens).",
			    (int)i, p->n_ids, (int)max_prompt);
		if (p->n_ids > (size_t)max_prompt)
			return api_error_set(err, 400, pparam, "context_length_exceeded",
			                     "The prompt has %zu tokens; the limit is %d "
			                     "(max_prompt_tokens).",
			                     p->n_ids, (int)max_prompt);
		if (!req->has_max_tokens) {
			/* Chat default: what the context leaves, capped. */
			mt = m->n_ctx - (int32_t)p->n_ids;
			if (mt > req->lim.max_tokens)
				mt = req->lim.max_tokens;
			if (mt < 1)
				return context_error(err, pparam, NULL, m->n_ctx, p->n_ids, 1);
			req->max_tokens = mt;
		}
		if (p->n_ids + (size_t)mt > (size_t)m->n_ctx)
			return context_error(err, mt_param(req), mt_param(req), m->n_ctx, p->n_ids,
			                     mt);
	}
	rc = check_kv_pool(req, m, pparam, err);
	if (rc)
		return rc;
	req->sp.max_tokens = req->max_tokens;
	req->sp.logprobs = req->logprobs;
	req->sp.echo_logprobs = req->echo && req->logprobs >= 0;
	req->sp.stop = req->stop_ptrs;
	req->sp.logit_bias = req->bias;
	req->sp.n_logit_bias = req->n_bias;
	rc = api__prepare_structured(req, err);
	if (rc)
		return rc;

	for (int32_t i = 0; i < req->n_prompts && req->kind == API_COMPLETION; i++) {
		api__prompt *p = &req->prompts[i];
		p->text_chars = api__utf8_chars(p->text ? p->text : "", p->text_len);
		if (req->sp.echo_logprobs) {
			rc = prompt_offsets(m->tok, p, err);
			if (rc)
				return rc;
		}
	}
	/* A grammar that shapes the output from its first token (a forced
	 * tool call, response_format) leaves no room for reasoning: even
	 * after a generation prompt that opened "<think>", the output is the
	 * call or the JSON, and it goes to content. */
	if (rstart == API__R_REASON && (api__tool_forced(req) || req->rf_kind != API__RF_NONE))
		rstart = API__R_ANSWER;
	/* The space the response drops is not the stop strings' either. */
	req->sp.stop_skip_lead_space = lstrip && rstart == API__R_OFF; /* split: kept */
	req->choices = xcalloc((size_t)req->n_prompts * (size_t)req->n, sizeof *req->choices);
	for (int32_t i = 0; i < req->n_prompts * req->n; i++) {
		mllm_buf_init(&req->choices[i].text, SIZE_MAX / 2);
		mllm_buf_init(&req->choices[i].reasoning, SIZE_MAX / 2);
		req->choices[i].lstrip = lstrip;
		req->choices[i].rstate = rstart;
		req->choices[i].saw_reasoning = rstart == API__R_REASON;
		api__tool_choice_init(req, &req->choices[i].tp);
	}
	req->split = rstart != API__R_OFF;
	return 0;
}

int api_request_prepare(api_request *req, const api_model_info *m, api_error *err)
{
	int rc = prepare(req, m, err);
	if (rc && req->kind == API_RESPONSES)
		api__resp_fix_error(req, err); /* the chat code names chat params */
	return rc;
}

void api_request_set_count_only(api_request *req)
{
	req->count_only = true;
}

int api_request_render_input_tokens(const api_request *req, mllm_buf *out)
{
	json_t *o;
	int rc;
	MLLM_ASSERT(req->count_only && req->n_prompts == 1);
	o = json_pack("{s:s,s:I}", "object", "response.input_tokens", "input_tokens",
	              (json_int_t)req->prompts[0].n_ids);
	if (!o)
		return -1;
	rc = api__json_append(o, out);
	json_decref(o);
	return rc < 0 ? -1 : 0;
}

int32_t api_request_n_submits(const api_request *req)
{
	return req->n_prompts;
}

void api_request_submit(const api_request *req, int32_t i, mllm_submit *s)
{
	MLLM_ASSERT(i >= 0 && i < req->n_prompts && req->m);
	memset(s, 0, sizeof *s);
	s->prompt = req->prompts[i].ids;
	s->n_prompt = req->prompts[i].n_ids;
	s->n_choices = req->n;
	s->sampling = req->sp;
	s->session_id = NULL;
	s->user = NULL;
}
