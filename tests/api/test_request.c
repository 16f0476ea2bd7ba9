/*
 * test_request.c — api/request.c and api/errors.c: systematic bad input
 * (malformed JSON, wrong types, huge and negative numbers, invalid UTF-8,
 * oversize bodies, thousands of stop strings) gets the right status and
 * param; good requests become the right engine submissions, tokenized with
 * the fixture LLaMA-2 tokenizer and checked against its golden ids.
 */
#include "harness.h"

#include <float.h>
#include <jansson.h>

#include "../../api/api_internal.h"
#include "api_fixture.h"

static void setup(void)
{
	api_fixture_setup(2048, 1);
}

/* The first fixture case whose text is plain (so it can go in a JSON body
 * as-is): its text and golden ids. */
static json_t *golden_case(void)
{
	FILE *f;
	char line[1 << 16];
	f = api_fixture_cases();
	while (fgets(line, sizeof line, f)) {
		json_t *c = json_loads(line, 0, NULL);
		const char *t = c ? json_string_value(json_object_get(c, "text")) : NULL;
		if (t && strlen(t) > 8 && strlen(t) < 200 && !strpbrk(t, "\"\\\n\t") &&
		    (unsigned char)t[0] >= 'A' && (unsigned char)t[0] <= 'z') {
			fclose(f);
			return c;
		}
		json_decref(c);
	}
	fclose(f);
	ck_abort_msg("no plain case in cases.jsonl");
	return NULL;
}

typedef struct {
	api_kind kind;
	const char *body;
	int status;
	const char *param; /* NULL = param must be null */
} bad_case;

static const bad_case bad_cases[] = {
    /* syntax, encoding, top level */
    {API_COMPLETION, "", 400, NULL},
    {API_COMPLETION, "{", 400, NULL},
    {API_COMPLETION, "[]", 400, NULL},
    {API_COMPLETION, "\"prompt\"", 400, NULL},
    {API_COMPLETION, "{\"prompt\":\"a\"} x", 400, NULL},
    {API_COMPLETION, "{\"prompt\":\"\xff\xfe\"}", 400, NULL},
    {API_COMPLETION, "{\"prompt\":\"\xc3\x28\"}", 400, NULL},
    {API_COMPLETION, "{\"prompt\":\"\xed\xa0\x80\"}", 400, NULL}, /* surrogate */
    {API_COMPLETION, "{\"prompt\":\"a\\u0000b\"}", 400, NULL},
    {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":123456789012345678901234567890}", 400, NULL},
    {API_COMPLETION, "{\"prompt\":\"a\",\"temperature\":1e999}", 400, NULL},
    /* prompt */
    {API_COMPLETION, "{}", 400, "prompt"},
    {API_COMPLETION, "{\"prompt\":null}", 400, "prompt"},
    {API_COMPLETION, "{\"prompt\":5}", 400, "prompt"},
    {API_COMPLETION, "{\"prompt\":{}}", 400, "prompt"},
    {API_COMPLETION, "{\"prompt\":[]}", 400, "prompt"},
    {API_COMPLETION, "{\"prompt\":[1,\"a\"]}", 400, "prompt"},
    {API_COMPLETION, "{\"prompt\":[1,-2]}", 400, "prompt"},
    {API_COMPLETION, "{\"prompt\":[1,2.5]}", 400, "prompt"},
    {API_COMPLETION, "{\"prompt\":[1,4294967296]}", 400, "prompt"},
    {API_COMPLETION, "{\"prompt\":[[1],[]]}", 400, "prompt"},
    {API_COMPLETION, "{\"prompt\":[\"a\",[1]]}", 400, "prompt"},
    {API_COMPLETION, "{\"prompt\":[[1],\"a\"]}", 400, "prompt"},
    {API_COMPLETION, "{\"prompt\":[null]}", 400, "prompt"},
    /* numbers: types, ranges, huge, negative */
    {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":\"16\"}", 400, "max_tokens"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":-1}", 400, "max_tokens"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":4097}", 400, "max_tokens"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":1e30}", 400, "max_tokens"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":9223372036854775807}", 400, "max_tokens"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":1.5}", 400, "max_tokens"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":true}", 400, "max_tokens"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"temperature\":2.5}", 400, "temperature"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"temperature\":-0.1}", 400, "temperature"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"temperature\":\"hot\"}", 400, "temperature"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"top_p\":-0.1}", 400, "top_p"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"modalities\":[\"text\",\"audio\"]}",
     400, "modalities"},
    {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"modalities\":\"text\"}",
     400, "modalities"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"audio\":{\"voice\":\"alloy\","
     "\"format\":\"wav\"}}",
     400, "audio"},
    /* 2^63 as a real: past INT64_MAX (whose double is 2^63 itself). */
    {API_COMPLETION, "{\"prompt\":\"a\",\"seed\":9223372036854775808.0}", 400, "seed"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"seed\":-9.3e18}", 400, "seed"},
    {API_COMPLETION, "{\"prompt\":[1,450.5]}", 400, "prompt"},
    {API_COMPLETION, "{\"prompt\":[1,2147483648.0]}", 400, "prompt"},
    {API_COMPLETION, "{\"prompt\":[[1],[2,-3.0]]}", 400, "prompt"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"functions\":[{\"name\":\"f\","
     "\"parameters\":{\"type\":\"object\"}}]}",
     400, "functions"},
    {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"function_call\":\"auto\"}",
     400, "function_call"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"top_p\":1.01}", 400, "top_p"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"top_p\":[1]}", 400, "top_p"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"n\":0}", 400, "n"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"n\":17}", 400, "n"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"n\":\"2\"}", 400, "n"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"n\":-9223372036854775807}", 400, "n"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"presence_penalty\":2.01}", 400, "presence_penalty"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"frequency_penalty\":-3}", 400, "frequency_penalty"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":6}", 400, "logprobs"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":-1}", 400, "logprobs"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":true}", 400, "logprobs"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"seed\":\"x\"}", 400, "seed"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"seed\":1.5}", 400, "seed"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"echo\":1}", 400, "echo"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"stream\":\"true\"}", 400, "stream"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"user\":5}", 400, "user"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"model\":5}", 400, "model"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"stream_options\":{\"include_usage\":true}}", 400,
     "stream_options"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"stream\":true,\"stream_options\":5}", 400,
     "stream_options"},
    {API_COMPLETION,
     "{\"prompt\":\"a\",\"stream\":true,\"stream_options\":{\"include_usage\":\"y\"}}", 400,
     "stream_options.include_usage"},
    /* stop, logit_bias */
    {API_COMPLETION, "{\"prompt\":\"a\",\"stop\":5}", 400, "stop"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"stop\":[\"a\",1]}", 400, "stop"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", 400, "stop"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":[]}", 400, "logit_bias"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":{\"abc\":1}}", 400, "logit_bias"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":{\"-5\":1}}", 400, "logit_bias"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":{\"99999999999\":1}}", 400, "logit_bias"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":{\"5\":101}}", 400, "logit_bias"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":{\"5\":\"x\"}}", 400, "logit_bias"},
    /* refused features */
    {API_COMPLETION, "{\"prompt\":\"a\",\"suffix\":\"b\"}", 400, "suffix"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"suffix\":5}", 400, "suffix"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"best_of\":2}", 400, "best_of"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"n\":3,\"best_of\":2}", 400, "best_of"},
    {API_COMPLETION, "{\"prompt\":\"a\",\"best_of\":\"2\"}", 400, "best_of"},
    {API_COMPLETION,
     "{\"prompt\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"],\"n\":16}", 400, "n"},
    /* chat */
    {API_CHAT, "{}", 400, "messages"},
    {API_CHAT, "{\"messages\":{}}", 400, "messages"},
    {API_CHAT, "{\"messages\":[]}", 400, "messages"},
    {API_CHAT, "{\"messages\":[5]}", 400, "messages[0]"},
    {API_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", 400, "messages[0].role"},
    {API_CHAT, "{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", 400, "messages[0].role"},
    {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":{}}", 400, "tools"},
    {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"chat_template_kwargs\":[]}",
     400, "chat_template_kwargs"},
    {API_CHAT, "{\"messages\":[{\"role\":\"tool\",\"content\":3}]}", 400, "messages[0].content"},
    /* message fields: name a string, an empty parts list, turns the prompt cannot hold */
    {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"name\":5}]}", 400,
     "messages[0].name"},
    {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[]}]}", 400, "messages[0].content"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\","
     "\"content\":null,\"function_call\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}",
     400, "messages[1].function_call"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\","
     "\"audio\":{\"id\":\"a\"}}]}",
     400, "messages[1].audio"},
    /* the same on turns with tool calls */
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\","
     "\"name\":5,\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":"
     "\"f\",\"arguments\":\"{}\"}}]}]}",
     400, "messages[1].name"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\","
     "\"audio\":{\"id\":\"a\"},\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":"
     "{\"name\":\"f\",\"arguments\":\"{}\"}}]}]}",
     400, "messages[1].audio"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\","
     "\"content\":null,\"refusal\":\"no\"}]}",
     400, "messages[1].refusal"},
    /* a tool message answers a call of the assistant message before it */
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\",\"content\":\"r\"}]}",
     400, "messages[1].tool_call_id"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\",\"tool_call_id\":7,"
     "\"content\":\"r\"}]}",
     400, "messages[1].tool_call_id"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\",\"tool_call_id\":"
     "\"c\","
     "\"content\":\"r\"}]}",
     400, "messages[1].role"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":"
     "\"hi\"},{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"r\"}]}",
     400, "messages[2].role"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":"
     "null,\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\","
     "\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"r\"},{"
     "\"role\":"
     "\"tool\",\"tool_call_id\":\"d\",\"content\":\"r\"}]}",
     400, "messages[3].tool_call_id"},
    /* ... and each call is answered before the next non-tool message */
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":"
     "null,\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\","
     "\"arguments\":\"{}\"}}]}]}",
     400, "messages[1].tool_calls[0]"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":"
     "null,\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\","
     "\"arguments\":\"{}\"}},{\"id\":\"d\",\"type\":\"function\",\"function\":{\"name\":"
     "\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":"
     "\"r\"},{\"role\":\"user\",\"content\":\"y\"}]}",
     400, "messages[1].tool_calls[1]"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":"
     "null,\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\","
     "\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"r\"},"
     "{\"role\":\"user\",\"content\":\"y\"},{\"role\":\"tool\",\"tool_call_id\":"
     "\"c\",\"content\":\"r\"}]}",
     400, "messages[4].role"},
    {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"user\"}]}", 400,
     "messages[1].content"},
    {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", 400, "messages[0].content"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}",
     400, "messages[0].content[0]"},
    {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_completion_tokens\":0}",
     400, "max_completion_tokens"},
    {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":-5}", 400,
     "max_tokens"},
    {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":3}", 400,
     "logprobs"},
    {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}", 400,
     "top_logprobs"},
    {API_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,\"top_logprobs\":21}",
     400, "top_logprobs"},
};

/* Every error renders as {"error":{"message","type","param","code"}}. */
static void check_error_body(const api_error *e, int status, const char *param)
{
	mllm_buf b;
	json_t *j, *inner;
	mllm_buf_init(&b, 1 << 16);
	ck_assert_int_eq(api_error_render(e, &b), 0);
	j = json_loadb(b.data, b.len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_uint_eq(json_object_size(j), 1);
	inner = json_object_get(j, "error");
	ck_assert(json_is_object(inner));
	ck_assert_uint_eq(json_object_size(inner), 4);
	ck_assert(json_string_length(json_object_get(inner, "message")) > 0);
	ck_assert_str_eq(json_string_value(json_object_get(inner, "type")),
	                 status == 401   ? "authentication_error"
	                 : status >= 500 ? "server_error"
	                 : status == 429 ? "rate_limit_error"
	                                 : "invalid_request_error");
	if (param)
		ck_assert_str_eq(json_string_value(json_object_get(inner, "param")), param);
	else
		ck_assert(json_is_null(json_object_get(inner, "param")));
	ck_assert(json_object_get(inner, "code") != NULL);
	json_decref(j);
	mllm_buf_free(&b);
}

START_TEST(test_url_decode)
{
	char out[16];
	ck_assert_int_eq(api_url_decode("demo%3Av1", 9, false, out, sizeof out), 7);
	ck_assert_str_eq(out, "demo:v1");
	ck_assert_int_eq(api_url_decode("a+b%2b%4", 8, true, out, sizeof out), 6);
	ck_assert_str_eq(out, "a b+%4"); /* a cut escape stays as it is */
	ck_assert_int_eq(api_url_decode("a+b%zz", 6, false, out, sizeof out), 6);
	ck_assert_str_eq(out, "a+b%zz");
	ck_assert_int_eq(api_url_decode("%41%6a", 6, false, out, sizeof out), 2);
	ck_assert_str_eq(out, "Aj");
	ck_assert_int_eq(api_url_decode("x%00", 4, false, out, sizeof out), -1);
	ck_assert_int_eq(api_url_decode("0123456789abcdef", 16, false, out, sizeof out), -1);
	ck_assert_int_eq(api_url_decode("", 0, false, out, sizeof out), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_bad_input)
{
	const bad_case *c = &bad_cases[_i];
	api_limits lim = API_LIMITS_DEFAULT;
	api_request *req = (api_request *)1;
	api_error e;
	int rc = api_request_parse(c->kind, c->body, strlen(c->body), &lim, &req, &e);
	ck_assert_msg(rc == c->status, "%s: status %d, want %d (%s)", c->body, rc, c->status,
	              e.message);
	ck_assert_ptr_null(req);
	ck_assert_int_eq(e.status, c->status);
	if (c->param)
		ck_assert_msg(strcmp(e.param, c->param) == 0, "%s: param '%s', want '%s'", c->body,
		              e.param, c->param);
	else
		ck_assert_msg(e.param[0] == '\0', "%s: param '%s', want none", c->body, e.param);
	check_error_body(&e, c->status, c->param);
}
END_TEST

/* A NUL in a string is said as such, not by jansson's option name. */
START_TEST(test_nul_message)
{
	static const char body[] = "{\"prompt\":\"a\\u0000b\"}";
	api_limits lim = API_LIMITS_DEFAULT;
	api_request *req = NULL;
	api_error e;
	ck_assert_int_eq(api_request_parse(API_COMPLETION, body, strlen(body), &lim, &req, &e),
	                 400);
	ck_assert_str_eq(e.code, "invalid_json");
	ck_assert_msg(strstr(e.message, "NUL") && !strstr(e.message, "JSON_ALLOW_NUL"), "%s",
	              e.message);
}
END_TEST

static int parse_ok(api_kind kind, const char *body, api_request **req)
{
	api_limits lim = API_LIMITS_DEFAULT;
	api_error e;
	int rc = api_request_parse(kind, body, strlen(body), &lim, req, &e);
	ck_assert_msg(rc == 0, "%s: %d %s", body, rc, e.message);
	return rc;
}

START_TEST(test_body_limits)
{
	api_limits lim = API_LIMITS_DEFAULT;
	api_request *req;
	api_error e;
	/* 10 MB body against the default 1 MiB limit: 413 before parsing. */
	size_t n = 10u << 20;
	char *big = malloc(n);
	ck_assert_ptr_nonnull(big);
	memset(big, ' ', n);
	memcpy(big, "{\"prompt\":\"", 11);
	big[n - 2] = '"';
	big[n - 1] = '}';
	ck_assert_int_eq(api_request_parse(API_COMPLETION, big, n, &lim, &req, &e), 413);
	ck_assert_ptr_null(req);
	check_error_body(&e, 413, NULL);
	/* The same body fits a larger limit. */
	lim.max_body_bytes = n;
	ck_assert_int_eq(api_request_parse(API_COMPLETION, big, n, &lim, &req, &e), 0);
	api_request_free(req);
	free(big);

	/* A smaller configured limit. */
	lim = API_LIMITS_DEFAULT;
	lim.max_body_bytes = 16;
	const char *b = "{\"prompt\":\"hello there\"}";
	ck_assert_int_eq(api_request_parse(API_COMPLETION, b, strlen(b), &lim, &req, &e), 413);
}
END_TEST

START_TEST(test_thousands_of_stops)
{
	api_limits lim = API_LIMITS_DEFAULT;
	api_request *req;
	api_error e;
	mllm_buf b;
	mllm_buf_init(&b, 1 << 22);
	ck_assert_int_eq(mllm_buf_appendf(&b, "{\"prompt\":\"a\",\"stop\":["), 0);
	for (int i = 0; i < 5000; i++)
		ck_assert_int_eq(mllm_buf_appendf(&b, "%s\"s%d\"", i ? "," : "", i), 0);
	ck_assert_int_eq(mllm_buf_appendf(&b, "]}"), 0);
	ck_assert_int_eq(api_request_parse(API_COMPLETION, b.data, b.len, &lim, &req, &e), 400);
	ck_assert_str_eq(e.param, "stop");
	mllm_buf_free(&b);

	/* One stop string longer than the limit. */
	mllm_buf_init(&b, 1 << 16);
	ck_assert_int_eq(mllm_buf_appendf(&b, "{\"prompt\":\"a\",\"stop\":\""), 0);
	for (int i = 0; i <= lim.max_stop_len; i++)
		ck_assert_int_eq(mllm_buf_append(&b, "x", 1), 0);
	ck_assert_int_eq(mllm_buf_appendf(&b, "\"}"), 0);
	ck_assert_int_eq(api_request_parse(API_COMPLETION, b.data, b.len, &lim, &req, &e), 400);
	ck_assert_str_eq(e.param, "stop");
	mllm_buf_free(&b);

	/* Thousands of logit_bias entries. */
	mllm_buf_init(&b, 1 << 22);
	ck_assert_int_eq(mllm_buf_appendf(&b, "{\"prompt\":\"a\",\"logit_bias\":{"), 0);
	for (int i = 0; i < 3000; i++)
		ck_assert_int_eq(mllm_buf_appendf(&b, "%s\"%d\":1", i ? "," : "", i), 0);
	ck_assert_int_eq(mllm_buf_appendf(&b, "}}"), 0);
	ck_assert_int_eq(api_request_parse(API_COMPLETION, b.data, b.len, &lim, &req, &e), 400);
	ck_assert_str_eq(e.param, "logit_bias");
	mllm_buf_free(&b);
}
END_TEST

START_TEST(test_deep_nesting)
{
	/* 100k nested arrays: jansson's depth limit, not a stack overflow. */
	api_limits lim = API_LIMITS_DEFAULT;
	api_request *req;
	api_error e;
	size_t n = 100000;
	char *s = malloc(2 * n + 16);
	size_t o = 0;
	o += (size_t)sprintf(s, "{\"prompt\":");
	for (size_t i = 0; i < n; i++)
		s[o++] = '[';
	for (size_t i = 0; i < n; i++)
		s[o++] = ']';
	s[o++] = '}';
	ck_assert_int_eq(api_request_parse(API_COMPLETION, s, o, &lim, &req, &e), 400);
	free(s);
}
END_TEST

START_TEST(test_unknown_fields_ignored)
{
	api_request *req;
	parse_ok(API_COMPLETION,
	         "{\"prompt\":\"hi\",\"foo\":{\"bar\":[1,2]},\"functions\":[],\"suffix\":null,"
	         "\"best_of\":1,\"user\":\"u1\",\"metadata\":{\"a\":\"b\"}}",
	         &req);
	ck_assert_ptr_null(api_request_model(req));
	ck_assert(!api_request_stream(req));
	ck_assert_int_eq(api_request_kind(req), API_COMPLETION);
	ck_assert(strncmp(api_request_id(req), "cmpl-", 5) == 0);
	api_request_free(req);
	parse_ok(
	    API_CHAT,
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\",\"name\":\"x\"}],"
	    "\"tools\":[],\"response_format\":{\"type\":\"text\"},\"parallel_tool_calls\":true}",
	    &req);
	ck_assert_str_eq(api_request_model(req), "m");
	ck_assert(strncmp(api_request_id(req), "chatcmpl-", 9) == 0);
	api_request_free(req);
}
END_TEST

START_TEST(test_ids_unique)
{
	api_request *a, *b;
	parse_ok(API_COMPLETION, "{\"prompt\":\"x\"}", &a);
	parse_ok(API_COMPLETION, "{\"prompt\":\"x\"}", &b);
	ck_assert_str_ne(api_request_id(a), api_request_id(b));
	api_request_set_id(a, "cmpl-fixed", 42);
	ck_assert_str_eq(api_request_id(a), "cmpl-fixed");
	api_request_free(a);
	api_request_free(b);
}
END_TEST

/* Integral reals are integers wherever an integer goes: token ids too. */
START_TEST(test_integral_reals)
{
	api_limits lim = API_LIMITS_DEFAULT;
	api_request *req;
	api_error e;
	mllm_submit sub;
	const char *b = "{\"prompt\":[1.0,450.0,7],\"seed\":-9223372036854775808.0}";
	ck_assert_int_eq(api_request_parse(API_COMPLETION, b, strlen(b), &lim, &req, &e), 0);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	ck_assert_int_eq(api_request_n_submits(req), 1);
	api_request_submit(req, 0, &sub);
	ck_assert_int_eq(sub.n_prompt, 3);
	ck_assert_int_eq(sub.prompt[0], 1);
	ck_assert_int_eq(sub.prompt[1], 450);
	ck_assert_int_eq(sub.prompt[2], 7);
	api_request_free(req);
	b = "{\"prompt\":[[1,2.0],[3.0]]}";
	ck_assert_int_eq(api_request_parse(API_COMPLETION, b, strlen(b), &lim, &req, &e), 0);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	ck_assert_int_eq(api_request_n_submits(req), 2);
	api_request_submit(req, 0, &sub);
	ck_assert_int_eq(sub.n_prompt, 2);
	ck_assert_int_eq(sub.prompt[1], 2);
	api_request_submit(req, 1, &sub);
	ck_assert_int_eq(sub.prompt[0], 3);
	api_request_free(req);
}
END_TEST

static void expect_ids(const mllm_submit *s, json_t *ids, bool bos)
{
	size_t off = bos ? 1 : 0;
	ck_assert_uint_eq(s->n_prompt, json_array_size(ids) + off);
	if (bos)
		ck_assert_int_eq(s->prompt[0], mllm_tokenizer_bos(tok));
	for (size_t i = 0; i < json_array_size(ids); i++)
		ck_assert_int_eq(s->prompt[i + off], json_integer_value(json_array_get(ids, i)));
}

START_TEST(test_completion_submission)
{
	json_t *c = golden_case();
	const char *text = json_string_value(json_object_get(c, "text"));
	api_request *req;
	api_error e;
	mllm_submit s;
	char body[1024];
	snprintf(body, sizeof body,
	         "{\"model\":\"tiny\",\"prompt\":\"%s\",\"max_tokens\":7,\"temperature\":0.5,"
	         "\"top_p\":0.25,\"n\":3,\"stop\":[\"\\n\\n\",\"END\",\"\"],\"seed\":-3,"
	         "\"presence_penalty\":1.5,\"frequency_penalty\":-0.5,\"logprobs\":2,\"echo\":true,"
	         "\"logit_bias\":{\"13\":-100,\"29871\":2.5},\"top_k\":40}",
	         text);
	parse_ok(API_COMPLETION, body, &req);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	ck_assert_int_eq(api_request_n_submits(req), 1);
	api_request_submit(req, 0, &s);
	ck_assert(mllm_tokenizer_add_bos(tok));
	expect_ids(&s, json_object_get(c, "ids"), true);
	ck_assert_int_eq(s.n_choices, 3);
	ck_assert_int_eq(s.sampling.max_tokens, 7);
	ck_assert(!s.sampling.stop_skip_lead_space); /* the text continues the prompt */
	ck_assert_float_eq(s.sampling.temperature, 0.5f);
	ck_assert_float_eq(s.sampling.top_p, 0.25f);
	ck_assert_float_eq(s.sampling.presence_penalty, 1.5f);
	ck_assert_float_eq(s.sampling.frequency_penalty, -0.5f);
	ck_assert_int_eq(s.sampling.top_k, 40);
	ck_assert(s.sampling.has_seed);
	ck_assert_uint_eq(s.sampling.seed, (uint64_t)-3);
	ck_assert_int_eq(s.sampling.logprobs, 2);
	ck_assert(s.sampling.echo_logprobs);
	ck_assert_int_eq(s.sampling.n_stop, 2); /* the empty one is dropped */
	ck_assert_str_eq(s.sampling.stop[0], "\n\n");
	ck_assert_str_eq(s.sampling.stop[1], "END");
	ck_assert_int_eq(s.sampling.n_logit_bias, 2);
	ck_assert_int_eq(s.sampling.logit_bias[0].id, 13);
	ck_assert_float_eq(s.sampling.logit_bias[0].bias, -100.0f);
	ck_assert_int_eq(s.sampling.logit_bias[1].id, 29871);
	ck_assert_float_eq(s.sampling.logit_bias[1].bias, 2.5f);
	ck_assert_ptr_null(s.session_id);
	api_request_free(req);
	json_decref(c);

	/* Defaults: max_tokens 16, temperature 1, no logprobs, no stop. */
	parse_ok(API_COMPLETION, "{\"prompt\":\"Hello\"}", &req);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	api_request_submit(req, 0, &s);
	ck_assert_int_eq(s.sampling.max_tokens, 16);
	ck_assert_float_eq(s.sampling.temperature, 1.0f);
	ck_assert_float_eq(s.sampling.top_p, 1.0f);
	ck_assert_int_eq(s.sampling.logprobs, -1);
	ck_assert(!s.sampling.echo_logprobs);
	ck_assert(!s.sampling.has_seed);
	ck_assert_int_eq(s.sampling.n_stop, 0);
	ck_assert_int_eq(s.n_choices, 1);
	api_request_free(req);
}
END_TEST

START_TEST(test_prompt_forms)
{
	json_t *c = golden_case();
	const char *text = json_string_value(json_object_get(c, "text"));
	api_request *req;
	api_error e;
	mllm_submit s;
	char body[1024];

	/* Array of strings: one submission per prompt, each with BOS. */
	snprintf(body, sizeof body, "{\"prompt\":[\"%s\",\"%s\"],\"n\":2}", text, text);
	parse_ok(API_COMPLETION, body, &req);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	ck_assert_int_eq(api_request_n_submits(req), 2);
	for (int i = 0; i < 2; i++) {
		api_request_submit(req, i, &s);
		expect_ids(&s, json_object_get(c, "ids"), true);
		ck_assert_int_eq(s.n_choices, 2);
	}
	api_request_free(req);

	/* Token arrays are used verbatim: no BOS added. */
	parse_ok(API_COMPLETION, "{\"prompt\":[5,6,7]}", &req);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	ck_assert_int_eq(api_request_n_submits(req), 1);
	api_request_submit(req, 0, &s);
	ck_assert_uint_eq(s.n_prompt, 3);
	ck_assert_int_eq(s.prompt[0], 5);
	ck_assert_int_eq(s.prompt[2], 7);
	api_request_free(req);

	parse_ok(API_COMPLETION, "{\"prompt\":[[1,2,3],[4,5]],\"max_tokens\":1.0}", &req);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	ck_assert_int_eq(api_request_n_submits(req), 2);
	api_request_submit(req, 1, &s);
	ck_assert_uint_eq(s.n_prompt, 2);
	ck_assert_int_eq(s.prompt[0], 4);
	ck_assert_int_eq(s.prompt[1], 5);
	ck_assert_int_eq(s.sampling.max_tokens, 1);
	api_request_free(req);

	/* Ids outside the vocabulary are refused at prepare. */
	parse_ok(API_COMPLETION, "{\"prompt\":[1,32000]}", &req);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 400);
	ck_assert_str_eq(e.param, "prompt");
	api_request_free(req);
	parse_ok(API_COMPLETION, "{\"prompt\":\"x\",\"logit_bias\":{\"32000\":1}}", &req);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 400);
	ck_assert_str_eq(e.param, "logit_bias");
	api_request_free(req);
	json_decref(c);
}
END_TEST

/* top_p 0 is in OpenAI's range: the one best token (the engine takes the
 * smallest positive float; a double that is 0 as a float too). */
START_TEST(test_top_p_zero)
{
	static const char *const bodies[] = {"{\"prompt\":\"a\",\"top_p\":0}",
	                                     "{\"prompt\":\"a\",\"top_p\":1e-320}"};
	for (size_t i = 0; i < 2; i++) {
		api_limits lim = API_LIMITS_DEFAULT;
		api_request *req = NULL;
		api_error e;
		ck_assert_int_eq(
		    api_request_parse(API_COMPLETION, bodies[i], strlen(bodies[i]), &lim, &req, &e),
		    0);
		ck_assert(req->sp.top_p > 0.0f && req->sp.top_p <= FLT_MIN);
		api_request_free(req);
	}
}
END_TEST

/* Out-of-range numbers carry OpenAI's codes, which clients may branch on. */
START_TEST(test_range_codes)
{
	static const struct {
		api_kind kind;
		const char *body, *param, *code;
	} cases[] = {
	    {API_COMPLETION, "{\"prompt\":\"x\",\"temperature\":2.0001}", "temperature",
	     "decimal_above_max_value"},
	    {API_COMPLETION, "{\"prompt\":\"x\",\"presence_penalty\":-2.5}", "presence_penalty",
	     "decimal_below_min_value"},
	    {API_COMPLETION, "{\"prompt\":\"x\",\"n\":0}", "n", "integer_below_min_value"},
	    {API_COMPLETION, "{\"prompt\":\"x\",\"logprobs\":6}", "logprobs",
	     "integer_above_max_value"},
	    {API_COMPLETION, "{\"prompt\":\"x\",\"max_tokens\":1e30}", "max_tokens",
	     "integer_above_max_value"},
	    {API_COMPLETION, "{\"prompt\":\"x\",\"seed\":1.5}", "seed", "invalid_type"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		api_limits lim = API_LIMITS_DEFAULT;
		api_request *req = NULL;
		api_error e;
		memset(&e, 0, sizeof e);
		ck_assert_int_eq(api_request_parse(cases[i].kind, cases[i].body,
		                                   strlen(cases[i].body), &lim, &req, &e),
		                 400);
		ck_assert_str_eq(e.param, cases[i].param);
		ck_assert_msg(strcmp(e.code, cases[i].code) == 0, "%s: code %s, want %s",
		              cases[i].body, e.code, cases[i].code);
	}
}
END_TEST

START_TEST(test_context_limits)
{
	api_model_info small = model;
	api_request *req;
	api_error e;
	small.n_ctx = 16;
	/* 10 prompt tokens + 10 > 16. */
	parse_ok(API_COMPLETION, "{\"prompt\":[1,2,3,4,5,6,7,8,9,10],\"max_tokens\":10}", &req);
	ck_assert_int_eq(api_request_prepare(req, &small, &e), 400);
	ck_assert_str_eq(e.code, "context_length_exceeded");
	ck_assert_str_eq(e.param, "max_tokens");
	check_error_body(&e, 400, "max_tokens");
	api_request_free(req);
	/* The error names the parameter the client sent. */
	parse_ok(API_CHAT,
	         "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
	         "\"max_completion_tokens\":15}",
	         &req);
	ck_assert_int_eq(api_request_prepare(req, &small, &e), 400);
	ck_assert_str_eq(e.code, "context_length_exceeded");
	ck_assert_str_eq(e.param, "max_completion_tokens");
	ck_assert_ptr_nonnull(strstr(e.message, "lower max_completion_tokens"));
	api_request_free(req);
	/* Exactly the context is fine. */
	parse_ok(API_COMPLETION, "{\"prompt\":[1,2,3,4,5,6,7,8,9,10],\"max_tokens\":6}", &req);
	ck_assert_int_eq(api_request_prepare(req, &small, &e), 0);
	api_request_free(req);
	/* The prompt alone is too long. */
	parse_ok(API_COMPLETION, "{\"prompt\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}", &req);
	ck_assert_int_eq(api_request_prepare(req, &small, &e), 400);
	ck_assert_str_eq(e.param, "prompt");
	ck_assert_str_eq(e.code, "context_length_exceeded");
	/* in OpenAI's words, which clients (litellm) match on */
	ck_assert_str_eq(e.message, "This model's maximum context length is 16 tokens. However, "
	                            "your prompt resulted in 17 tokens. Please reduce the length "
	                            "of the prompt.");
	api_request_free(req);
	/* Of several prompts, the message names the one too long. */
	parse_ok(
	    API_COMPLETION,
	    "{\"prompt\":[[1,2],[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]],\"max_tokens\":1}",
	    &req);
	ck_assert_int_eq(api_request_prepare(req, &small, &e), 400);
	ck_assert_str_eq(e.code, "context_length_exceeded");
	ck_assert_msg(strstr(e.message, "This model's maximum context length is 16 tokens. "
	                                "However, prompt 1 (counting from 0) resulted in 17 "
	                                "tokens.") != NULL,
	              "%s", e.message);
	api_request_free(req);
	/* max_prompt_tokens from the limits. */
	{
		api_limits lim = API_LIMITS_DEFAULT;
		const char *b = "{\"prompt\":[1,2,3,4,5]}";
		lim.max_prompt_tokens = 4;
		ck_assert_int_eq(api_request_parse(API_COMPLETION, b, strlen(b), &lim, &req, &e),
		                 0);
		ck_assert_int_eq(api_request_prepare(req, &model, &e), 400);
		ck_assert_str_eq(e.param, "prompt");
		api_request_free(req);
	}
	/* Chat: the default max_tokens is what the context leaves. */
	parse_ok(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", &req);
	ck_assert_int_eq(api_request_prepare(req, &small, &e), 0);
	{
		mllm_submit s;
		api_request_submit(req, 0, &s);
		ck_assert_int_eq(s.sampling.max_tokens, 16 - (int)s.n_prompt);
	}
	api_request_free(req);
	/* A chat prompt that fills the context names only the prompt: the
	 * client set no max_tokens to lower. */
	{
		api_model_info tiny = model;
		mllm_submit s;
		parse_ok(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", &req);
		ck_assert_int_eq(api_request_prepare(req, &tiny, &e), 0);
		api_request_submit(req, 0, &s);
		api_request_free(req);
		tiny.n_ctx = (int32_t)s.n_prompt;
		parse_ok(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", &req);
		ck_assert_int_eq(api_request_prepare(req, &tiny, &e), 400);
		ck_assert_str_eq(e.code, "context_length_exceeded");
		ck_assert_str_eq(e.param, "messages");
		ck_assert_ptr_null(strstr(e.message, "max_tokens"));
		api_request_free(req);
	}
	/* Empty prompt without BOS: nothing to run. */
	{
		api_model_info nobos = model;
		mllm_tokenizer_set_add_bos(tok, false);
		parse_ok(API_COMPLETION, "{\"prompt\":\"\"}", &req);
		ck_assert_int_eq(api_request_prepare(req, &nobos, &e), 400);
		ck_assert_str_eq(e.param, "prompt");
		mllm_tokenizer_set_add_bos(tok, true);
		api_request_free(req);
	}
}
END_TEST

/* Requests no retry can ever admit are a 400 naming their param: more
 * choices than max_running, more prompts than max_queue, and a prompt with
 * its choices larger than the whole KV pool (not a "context length" error:
 * the context allows it). */
START_TEST(test_admission_limits)
{
	api_model_info m = model;
	api_request *req;
	api_error e;

	m.max_running = 2;
	m.max_queue = 3;
	parse_ok(API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":1,\"n\":3}", &req);
	ck_assert_int_eq(api_request_prepare(req, &m, &e), 400);
	ck_assert_str_eq(e.param, "n");
	ck_assert_str_eq(e.code, "invalid_value");
	ck_assert_ptr_nonnull(strstr(e.message, "max_running"));
	check_error_body(&e, 400, "n");
	api_request_free(req);
	parse_ok(API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":1,\"n\":2}", &req);
	ck_assert_int_eq(api_request_prepare(req, &m, &e), 0);
	api_request_free(req);

	parse_ok(API_COMPLETION, "{\"prompt\":[\"a\",\"b\",\"c\",\"d\"],\"max_tokens\":1}", &req);
	ck_assert_int_eq(api_request_prepare(req, &m, &e), 400);
	ck_assert_str_eq(e.param, "prompt");
	ck_assert_ptr_nonnull(strstr(e.message, "max_queue"));
	check_error_body(&e, 400, "prompt");
	api_request_free(req);
	parse_ok(API_COMPLETION, "{\"prompt\":[\"a\",\"b\",\"c\"],\"max_tokens\":1}", &req);
	ck_assert_int_eq(api_request_prepare(req, &m, &e), 0);
	api_request_free(req);

	/* A pool of 4 blocks of 16 tokens: 10 prompt + 54 = 64 tokens fit,
	 * one more does not; with n = 2 the second choice needs its own
	 * blocks past the shared prefix. */
	m.kv_blocks = 4;
	m.kv_block_size = 16;
	parse_ok(API_COMPLETION, "{\"prompt\":[1,2,3,4,5,6,7,8,9,10],\"max_tokens\":54}", &req);
	ck_assert_int_eq(api_request_prepare(req, &m, &e), 0);
	api_request_free(req);
	parse_ok(API_COMPLETION, "{\"prompt\":[1,2,3,4,5,6,7,8,9,10],\"max_tokens\":55}", &req);
	ck_assert_int_eq(api_request_prepare(req, &m, &e), 400);
	ck_assert_str_eq(e.param, "max_tokens");
	ck_assert_str_eq(e.code, "kv_pool_exceeded");
	ck_assert_ptr_nonnull(strstr(e.message, "KV pool"));
	ck_assert_ptr_null(strstr(e.message, "context length"));
	check_error_body(&e, 400, "max_tokens");
	api_request_free(req);
	{
		/* 32 prompt tokens = 2 full blocks shared by both choices:
		 * 32 + 16 tokens take 3 blocks, + 1 for the second choice. */
		char body[512];
		int n = snprintf(body, sizeof body, "{\"n\":2,\"prompt\":[");
		for (int i = 1; i <= 32; i++)
			n += snprintf(body + n, sizeof body - (size_t)n, "%s%d", i > 1 ? "," : "",
			              i);
		snprintf(body + n, sizeof body - (size_t)n, "],\"max_tokens\":16}");
		parse_ok(API_COMPLETION, body, &req);
		ck_assert_int_eq(api_request_prepare(req, &m, &e), 0);
		api_request_free(req);
		snprintf(body + n, sizeof body - (size_t)n, "],\"max_tokens\":17}");
		parse_ok(API_COMPLETION, body, &req);
		ck_assert_int_eq(api_request_prepare(req, &m, &e), 400);
		ck_assert_str_eq(e.code, "kv_pool_exceeded");
		api_request_free(req);
	}
	/* Chat without max_tokens: the default (what the context leaves) is
	 * lowered to what the pool leaves instead of refused for a parameter
	 * the client never sent; n choices share it. */
	{
		mllm_submit s;
		m.n_ctx = 4096;
		parse_ok(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", &req);
		ck_assert_int_eq(api_request_prepare(req, &m, &e), 0);
		api_request_submit(req, 0, &s);
		ck_assert_int_eq(s.sampling.max_tokens, 4 * 16 - (int)s.n_prompt);
		api_request_free(req);
		parse_ok(API_CHAT,
		         "{\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", &req);
		ck_assert_int_eq(api_request_prepare(req, &m, &e), 0);
		api_request_submit(req, 0, &s);
		/* Fewer than 16 prompt tokens: no shared full block, 2 each. */
		ck_assert_int_lt(s.n_prompt, 16);
		ck_assert_int_eq(s.sampling.max_tokens, 2 * 16 - (int)s.n_prompt);
		api_request_free(req);
		/* A pool too small for the prompt and one token: named by n. */
		m.kv_blocks = 1;
		parse_ok(API_CHAT,
		         "{\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", &req);
		ck_assert_int_eq(api_request_prepare(req, &m, &e), 400);
		ck_assert_str_eq(e.code, "kv_pool_exceeded");
		ck_assert_str_eq(e.param, "n");
		ck_assert_ptr_null(strstr(e.message, "max_tokens"));
		api_request_free(req);
		/* An explicit max_tokens is never lowered. */
		m.kv_blocks = 4;
		parse_ok(
		    API_CHAT,
		    "{\"max_tokens\":100,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}",
		    &req);
		ck_assert_int_eq(api_request_prepare(req, &m, &e), 400);
		ck_assert_str_eq(e.param, "max_tokens");
		api_request_free(req);
	}
}
END_TEST

START_TEST(test_chat_submission)
{
	api_request *req;
	api_error e;
	mllm_submit s;
	int32_t want[256];
	size_t n_want;
	/* The documented default template. */
	const char *text = "System: Be brief.\nUser: Hi there\nAssistant: Hello!\nUser: Part one\n"
	                   "part two\nAssistant:";
	parse_ok(API_CHAT,
	         "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
	         "{\"role\":\"user\",\"content\":\"Hi there\"},"
	         "{\"role\":\"assistant\",\"content\":\"Hello!\"},"
	         "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Part one\"},"
	         "{\"type\":\"text\",\"text\":\"part two\"}]}],"
	         "\"max_tokens\":5,\"max_completion_tokens\":9,\"stop\":\"xyz\","
	         "\"logprobs\":true,\"top_logprobs\":3,\"stream\":true,"
	         "\"stream_options\":{\"include_usage\":true}}",
	         &req);
	ck_assert(api_request_stream(req));
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	ck_assert_int_eq(api_request_n_submits(req), 1);
	api_request_submit(req, 0, &s);
	ck_assert_int_eq(mllm_tokenizer_encode(tok, text, strlen(text), true, want, 256, &n_want),
	                 0);
	ck_assert_uint_eq(s.n_prompt, n_want);
	for (size_t i = 0; i < n_want; i++)
		ck_assert_int_eq(s.prompt[i], want[i]);
	ck_assert_int_eq(s.sampling.max_tokens, 9);
	ck_assert_int_eq(s.sampling.logprobs, 3);
	ck_assert(!s.sampling.echo_logprobs);
	ck_assert_int_eq(s.sampling.n_stop, 2);
	ck_assert_str_eq(s.sampling.stop[0], "xyz");
	ck_assert_str_eq(s.sampling.stop[1], "\nUser:"); /* implicit */
	/* The preset's cue invites a space the content drops: no stop
	 * string is matched against it. */
	ck_assert(s.sampling.stop_skip_lead_space);
	api_request_free(req);

	/* Four client stops leave no room for the implicit one. */
	parse_ok(API_CHAT,
	         "{\"messages\":[{\"role\":\"developer\",\"content\":\"x\"}],"
	         "\"stop\":[\"a\",\"b\",\"c\",\"d\"],\"logprobs\":false}",
	         &req);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	api_request_submit(req, 0, &s);
	ck_assert_int_eq(s.sampling.n_stop, 4);
	ck_assert_str_eq(s.sampling.stop[3], "d");
	ck_assert_int_eq(s.sampling.logprobs, -1);
	api_request_free(req);
}
END_TEST

START_TEST(test_chat_custom_template)
{
	api_chat_template *t = api_chat_template_create();
	api_model_info m = model;
	api_request *req;
	api_error e;
	mllm_submit s;
	int32_t want[256];
	size_t n_want;
	char err[128];
	const char *text = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
	ck_assert_int_eq(api_chat_template_set(t, "preset", "chatml", err, sizeof err), 0);
	ck_assert_int_eq(api_chat_template_set(t, "bos", "false", err, sizeof err), 0);
	m.chat_template = t;
	parse_ok(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", &req);
	ck_assert_int_eq(api_request_prepare(req, &m, &e), 0);
	api_request_submit(req, 0, &s);
	ck_assert_int_eq(mllm_tokenizer_encode(tok, text, strlen(text), false, want, 256, &n_want),
	                 0);
	ck_assert_uint_eq(s.n_prompt, n_want);
	for (size_t i = 0; i < n_want; i++)
		ck_assert_int_eq(s.prompt[i], want[i]);
	ck_assert_int_eq(s.sampling.n_stop, 1);
	ck_assert_str_eq(s.sampling.stop[0], "<|im_end|>");
	api_request_free(req);
	api_chat_template_free(t);

	/* The plain preset drops the answer's leading space, so no stop string
	 * may see it; with the reasoning split on, the answer keeps it, and
	 * then every stop string must. */
	for (int split = 0; split < 2; split++) {
		t = api_chat_template_create();
		ck_assert_int_eq(api_chat_template_set(t, "preset", "plain", err, sizeof err), 0);
		if (split)
			ck_assert_int_eq(
			    api_chat_template_set(t, "reasoning_format", "split", err, sizeof err),
			    0);
		m.chat_template = t;
		parse_ok(API_CHAT,
		         "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stop\":\" A\"}",
		         &req);
		ck_assert_int_eq(api_request_prepare(req, &m, &e), 0);
		api_request_submit(req, 0, &s);
		ck_assert_int_eq(s.sampling.stop_skip_lead_space, !split);
		api_request_free(req);
		api_chat_template_free(t);
	}
}
END_TEST

/* A model's own Jinja template: tool messages and tool calls reach it as
 * sent (content as a string), the text after its bos_token's text is the prompt (one BOS), its
 * eos_token is the implicit stop; a preset refuses tool messages. */
START_TEST(test_chat_jinja_template)
{
	static const char src[] =
	    "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}"
	    "{% for c in m.tool_calls %}<call {{ c.function.name }} {{ c.function.arguments }}>"
	    "{% endfor %}{% endfor %}{% if tools %}(tools: {{ tools | "
	    "map(attribute='function.name')"
	    " | join(',') }}){% endif %}[assistant]";
	const char *body =
	    "{\"messages\":[{\"role\":\"developer\",\"content\":\"Be kind.\"},"
	    "{\"role\":\"user\",\"content\":\"Weather?\"},"
	    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":"
	    "\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"{}\"}}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"sunny\"}],"
	    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get\"}}]}";
	/* null content reaches the template as "" (as llama-server and vLLM
	 * hand it: templates do string operations on content), not None */
	const char *text = "[system]Be kind.[user]Weather?[assistant]<call get {}>[tool]sunny"
	                   "(tools: get)[assistant]";
	api_chat_template *t = api_chat_template_create();
	api_model_info m = model;
	api_request *req;
	api_error e;
	mllm_submit s;
	int32_t want[256];
	size_t n_want;
	char err[256];
	ck_assert_int_eq(api_chat_template_set_jinja(t, src, strlen(src), "<s>", "</s>", "test",
	                                             err, sizeof err),
	                 0);
	m.chat_template = t;
	parse_ok(API_CHAT, body, &req);
	ck_assert_int_eq(api_request_prepare(req, &m, &e), 0);
	api_request_submit(req, 0, &s);
	ck_assert_int_eq(mllm_tokenizer_encode(tok, text, strlen(text), true, want, 256, &n_want),
	                 0);
	ck_assert_uint_eq(s.n_prompt, n_want);
	for (size_t i = 0; i < n_want; i++)
		ck_assert_int_eq(s.prompt[i], want[i]);
	ck_assert_int_eq(s.sampling.n_stop, 1);
	ck_assert_str_eq(s.sampling.stop[0], "</s>");
	ck_assert(!s.sampling.stop_skip_lead_space); /* a model's template keeps it */
	api_request_free(req);
	/* The same chat against a preset: no template to hand the tool
	 * message to, so it becomes a plain user turn (tools.c). */
	parse_ok(API_CHAT, body, &req);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	api_request_free(req);
	api_chat_template_free(t);
}
END_TEST

START_TEST(test_errors_from_engine)
{
	static const struct {
		int err, status, retry;
		const char *code;
	} map[] = {
	    {MLLM_EINVAL, 400, 0, NULL},
	    {MLLM_ETOOLONG, 400, 0, "context_length_exceeded"},
	    {MLLM_EOVERLOADED, 503, 0, "overloaded"}, /* 0: the server's retry_after_s */
	    {MLLM_ENOMEM, 503, 0, "overloaded"},
	    {MLLM_ESHUTDOWN, 503, 0, "shutting_down"},
	    {MLLM_ENOTFOUND, 404, 0, "not_found"},
	    {MLLM_EINTERNAL, 500, 0, "internal_error"},
	    {MLLM_EIO, 500, 0, "internal_error"},
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
		api_error e;
		ck_assert_int_eq(api_error_from_mllm(&e, map[i].err), map[i].status);
		ck_assert_int_eq(e.status, map[i].status);
		ck_assert_int_eq(e.retry_after_s, map[i].retry);
		if (map[i].code)
			ck_assert_str_eq(e.code, map[i].code);
		check_error_body(&e, map[i].status, NULL);
	}
	{
		api_error e;
		ck_assert_int_eq(api_error_model_not_found(&e, "nope"), 404);
		ck_assert_str_eq(e.code, "model_not_found");
		check_error_body(&e, 404, "model");
		ck_assert_int_eq(api_error_set(&e, 401, NULL, "invalid_api_key", "Bad key %d.", 7),
		                 401);
		ck_assert_str_eq(e.message, "Bad key 7.");
		check_error_body(&e, 401, NULL);
		ck_assert_int_eq(api_error_set(&e, 429, NULL, NULL, "Slow down."), 429);
		check_error_body(&e, 429, NULL);
	}
}
END_TEST

START_TEST(test_error_escaping)
{
	/* Quotes, control bytes and invalid UTF-8 in a message still give
	 * valid JSON; the SSE form is one event. */
	api_error e;
	mllm_buf b;
	json_t *j;
	api_error_set(&e, 400, "a\"b", NULL, "bad \"x\"\n\x01 \xff end");
	mllm_buf_init(&b, 4096);
	ck_assert_int_eq(api_error_render(&e, &b), 0);
	j = json_loadb(b.data, b.len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "param")),
	                 "a\"b");
	json_decref(j);
	mllm_buf_reset(&b);
	ck_assert_int_eq(api_error_render_sse(&e, &b), 0);
	ck_assert(strncmp(b.data, "data: {\"error\":", 15) == 0);
	ck_assert(strcmp(b.data + b.len - 2, "\n\n") == 0);
	ck_assert_ptr_null(memchr(b.data, '\n', b.len - 2));
	mllm_buf_free(&b);

	/* An output buffer that is too small is left untouched. */
	mllm_buf_init(&b, 20);
	ck_assert_int_eq(mllm_buf_append(&b, "abc", 3), 0);
	ck_assert_int_eq(api_error_render(&e, &b), MLLM_ENOSPACE);
	ck_assert_uint_eq(b.len, 3);
	ck_assert_str_eq(b.data, "abc");
	mllm_buf_free(&b);
}
END_TEST

START_TEST(test_alloc_failures)
{
	/* Every fallible allocation of parse + prepare, failed in turn: the
	 * answer is a 503 (never a crash), and without injection it works. */
	static const struct {
		api_kind kind;
		const char *body;
	} bodies[] = {
	    {API_COMPLETION, "{\"prompt\":[[1,2,3],[4,5]],\"echo\":true,\"logprobs\":1}"},
	    {API_COMPLETION, "{\"prompt\":[\"Hello there\",\"General Kenobi\"]}"},
	    {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
	               "\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}]}"},
	};
	for (size_t b = 0; b < sizeof bodies / sizeof bodies[0]; b++) {
		int n_fail = 0;
		for (long k = 0; k < 200; k++) {
			api_limits lim = API_LIMITS_DEFAULT;
			api_request *req;
			api_error e;
			int st;
			mllm__alloc_fail_after(k);
			st = api_request_parse(bodies[b].kind, bodies[b].body,
			                       strlen(bodies[b].body), &lim, &req, &e);
			if (st == 0)
				st = api_request_prepare(req, &model, &e);
			mllm__alloc_fail_after(-1);
			if (st == 0) {
				api_request_free(req);
				break;
			}
			ck_assert_msg(st == 503, "countdown %ld: status %d (%s)", k, st, e.message);
			check_error_body(&e, 503, NULL);
			api_request_free(req);
			n_fail++;
		}
		ck_assert_int_gt(n_fail, 0); /* the injection reached us */
	}
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("api_request");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, test_url_decode);
	tcase_add_test(tc, test_nul_message);
	tcase_add_loop_test(tc, test_bad_input, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
	tcase_add_test(tc, test_body_limits);
	tcase_add_test(tc, test_thousands_of_stops);
	tcase_add_test(tc, test_deep_nesting);
	tcase_add_test(tc, test_unknown_fields_ignored);
	tcase_add_test(tc, test_ids_unique);
	tcase_add_test(tc, test_errors_from_engine);
	tcase_add_test(tc, test_error_escaping);
	suite_add_tcase(s, tc);
	tc = tcase_create("prepare");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_completion_submission);
	tcase_add_test(tc, test_prompt_forms);
	tcase_add_test(tc, test_integral_reals);
	tcase_add_test(tc, test_top_p_zero);
	tcase_add_test(tc, test_range_codes);
	tcase_add_test(tc, test_context_limits);
	tcase_add_test(tc, test_admission_limits);
	tcase_add_test(tc, test_chat_submission);
	tcase_add_test(tc, test_chat_custom_template);
	tcase_add_test(tc, test_chat_jinja_template);
	tcase_add_test(tc, test_alloc_failures);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
