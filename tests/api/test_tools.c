/*
 * test_tools.c — tools, tool_choice and tool messages: validation errors
 * naming their param, the call grammar of a forced choice (only calls of
 * allowed tools with valid arguments), the tools turn in the prompt, tool
 * messages rendered as text, and the tool_calls response shape, non-streamed
 * and streamed (id/name first, argument fragments, the closing brace held
 * back, finish "tool_calls"; "length" mid-call keeps the text).
 */
#include "api_fixture.h"

#include "../../api/api_internal.h"

static void setup(void)
{
	api_fixture_setup(2048, 1700000000);
}

#define TOOLS                                                                                      \
	"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","                \
	"\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"     \
	"\"required\":[\"city\"],\"additionalProperties\":false}}},{\"type\":\"function\","        \
	"\"function\":{\"name\":\"noop\"}}]"

static int match(const mllm_grammar *g, const char *s)
{
	return mllm_grammar_match(g, s, strlen(s));
}

static api_request *parse_ok(const char *body)
{
	api_limits lim = API_LIMITS_DEFAULT;
	api_request *req = NULL;
	api_error e;
	memset(&e, 0, sizeof e);
	ck_assert_msg(api_request_parse(API_CHAT, body, strlen(body), &lim, &req, &e) == 0, "%s",
	              e.message);
	return req;
}

/* Call k's function field key ("name", "arguments") in a tool_calls list. */
static const char *call_fn(json_t *calls, size_t k, const char *key)
{
	return json_string_value(
	    json_object_get(json_object_get(json_array_get(calls, k), "function"), key));
}

START_TEST(test_validation)
{
	static const struct {
		const char *body, *param;
	} cases[] = {
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":{}}", "tools"},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"x\"}]}",
	     "tools[0]"},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
	     "\"function\",\"function\":{\"name\":\"a b\"}}]}",
	     "tools[0].function.name"},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]," TOOLS
	     ",\"tool_choice\":\"sometimes\"}",
	     "tool_choice"},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]," TOOLS
	     ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"missing\"}}}",
	     "tool_choice"},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"required\"}",
	     "tool_choice"},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]," TOOLS
	     ",\"tool_choice\":\"required\",\"response_format\":{\"type\":\"json_object\"}}",
	     "tool_choice"},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]," TOOLS
	     ",\"parallel_tool_calls\":1}",
	     "parallel_tool_calls"},
	    {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":"
	     "\"f\"}}]}]}",
	     "messages[0].tool_calls[0]"},
	    /* A call's arguments are an object. */
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
	     "\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"string\"}}}]}",
	     "tools[0].function.parameters"},
	    /* description and strict have their types, as OpenAI checks. */
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
	     "\"function\",\"function\":{\"name\":\"f\",\"description\":5}}]}",
	     "tools[0].function.description"},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
	     "\"function\",\"function\":{\"name\":\"f\",\"strict\":\"yes\"}}]}",
	     "tools[0].function.strict"},
	    /* The content beside an assistant turn's calls is checked as any
	     * assistant content (it was dropped from the prompt unchecked). */
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\","
	     "\"content\":123,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":"
	     "{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":"
	     "\"c1\",\"content\":\"ok\"}]}",
	     "messages[1].content"},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\","
	     "\"content\":[{\"type\":\"image_url\"}],\"tool_calls\":[{\"id\":\"c1\",\"type\":"
	     "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":"
	     "\"tool\",\"tool_call_id\":\"c1\",\"content\":\"ok\"}]}",
	     "messages[1].content"},
	};
	/* ...but an empty list beside the calls is no content (LangChain
	 * JS's legacy converter sends it). */
	api_request_free(
	    parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":"
	             "\"assistant\",\"content\":[],\"tool_calls\":[{\"id\":\"c1\",\"type\":"
	             "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":"
	             "\"tool\",\"tool_call_id\":\"c1\",\"content\":\"ok\"}]}"));
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		api_limits lim = API_LIMITS_DEFAULT;
		api_request *req = NULL;
		api_error e;
		memset(&e, 0, sizeof e);
		ck_assert_int_eq(api_request_parse(API_CHAT, cases[i].body, strlen(cases[i].body),
		                                   &lim, &req, &e),
		                 400);
		ck_assert_ptr_null(req);
		ck_assert_msg(strcmp(e.param, cases[i].param) == 0,
		              "case %zu: param '%s', want '%s'", i, e.param, cases[i].param);
	}
}
END_TEST

/* The $ref limit (256 targets) counts one tool's parameters, not every
 * tool's together (one compiler builds the call grammar of all of them). */
START_TEST(test_ref_limit_per_tool)
{
	static char body[1 << 16];
	size_t n = (size_t)snprintf(body, sizeof body,
	                            "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	                            "\"tool_choice\":\"required\",\"tools\":[");
	api_error e;
	api_request *req;
	for (int i = 0; i < 90; i++)
		n += (size_t)snprintf(
		    body + n, sizeof body - n,
		    "%s{\"type\":\"function\",\"function\":{\"name\":\"t%d\",\"parameters\":{"
		    "\"type\":\"object\",\"$defs\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":"
		    "\"integer\"},\"c\":{\"type\":\"boolean\"}},\"properties\":{\"x\":{\"$ref\":"
		    "\"#/$defs/a\"},\"y\":{\"$ref\":\"#/$defs/b\"},\"z\":{\"$ref\":\"#/$defs/"
		    "c\"}}}}}",
		    i ? "," : "", i);
	snprintf(body + n, sizeof body - n, "]}");
	req = parse_ok(body);
	memset(&e, 0, sizeof e);
	req->m = &model;
	ck_assert_msg(api__prepare_tools(req, &e) == 0, "%s", e.message);
	api_request_free(req);
}
END_TEST

/* A tool's schema is checked whether or not the call is forced. */
START_TEST(test_schema_checked_unforced)
{
	/* What follows the tool f whose schema is wrong. */
	static const char *const choices[] = {
	    "]", "],\"tool_choice\":\"auto\"", "],\"tool_choice\":\"none\"",
	    /* named: another tool is called, f's schema still checked */
	    ",{\"type\":\"function\",\"function\":{\"name\":\"g\"}}],\"tool_choice\":{\"type\":"
	    "\"function\",\"function\":{\"name\":\"g\"}}"};
	for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
		char body[512];
		api_error e;
		api_request *req;
		snprintf(
		    body, sizeof body,
		    "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
		    "\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
		    "\"properties\":{\"a\":{\"type\":\"foo\"}}}}}%s}",
		    choices[i]);
		req = parse_ok(body);
		memset(&e, 0, sizeof e);
		ck_assert_int_eq(api_request_prepare(req, &model, &e), 400);
		ck_assert_str_eq(e.param, "tools[0].function.parameters");
		api_request_free(req);
	}
}
END_TEST

START_TEST(test_forced_grammar_and_prompt)
{
	api_error e;
	api_request *req = parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS
	                            ",\"tool_choice\":\"required\"}");
	mllm_grammar *g;
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	g = req->sp.grammar;
	ck_assert_ptr_nonnull(g);
	ck_assert_int_eq(
	    match(g, "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}"), 1);
	ck_assert_int_eq(match(g, "{\"name\":\"noop\",\"arguments\":{\"x\":[1]}}"), 1);
	ck_assert_int_eq(match(g, "{\"name\":\"get_weather\",\"arguments\":{}}"),
	                 -1); /* city is required */
	ck_assert_int_eq(match(g, "{\"name\":\"other\""), -1);
	/* The tools turn comes first in the prompt. */
	ck_assert_int_eq(req->msgs[0].role, API_ROLE_SYSTEM);
	ck_assert(strstr(req->msgs[0].content, "get_weather") != NULL);
	api_request_free(req);

	/* A named choice allows only that tool. */
	req =
	    parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS
	             ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"noop\"}}}");
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	ck_assert_int_eq(
	    match(req->sp.grammar, "{\"name\":\"get_weather\",\"arguments\":{\"city\":\"a\"}}"),
	    -1);
	ck_assert_int_eq(match(req->sp.grammar, "{\"name\":\"noop\",\"arguments\":{}}"), 1);
	api_request_free(req);

	/* auto: no grammar, no tools turn. */
	req = parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS "}");
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	ck_assert_ptr_null(req->sp.grammar);
	ck_assert_int_eq(req->n_msgs, 1);
	api_request_free(req);
}
END_TEST

START_TEST(test_tool_messages)
{
	api_request *req = parse_ok(
	    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\","
	    "\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":"
	    "{\"name\":\"noop\",\"arguments\":\"{\\\"a\\\": 1}\"}}]},{\"role\":\"tool\","
	    "\"tool_call_id\":\"c1\",\"content\":\"done\"}]}");
	ck_assert_int_eq(req->n_msgs, 3);
	ck_assert_int_eq(req->msgs[1].role, API_ROLE_ASSISTANT);
	ck_assert_str_eq(req->msgs[1].content, "{\"name\":\"noop\",\"arguments\":{\"a\":1}}");
	ck_assert_int_eq(req->msgs[2].role, API_ROLE_USER);
	ck_assert_str_eq(req->msgs[2].content, "Tool result (c1): done");
	api_request_free(req);
}
END_TEST

/* Feeds text pieces as TOKEN events then DONE; returns the output. */
static void run(api_request *req, const char *const *pieces, int n, mllm_finish finish,
                mllm_buf *out)
{
	mllm_event ev;
	int status;
	ck_assert_int_eq(api_request_begin(req, out), 0);
	for (int i = 0; i < n; i++) {
		memset(&ev, 0, sizeof ev);
		ev.kind = MLLM_EV_TOKEN;
		ev.text = pieces[i];
		ev.text_len = strlen(pieces[i]);
		ck_assert_int_eq(api_request_feed(req, 0, &ev, out), 0);
	}
	memset(&ev, 0, sizeof ev);
	ev.kind = MLLM_EV_DONE;
	ev.finish = finish;
	ev.n_completion_tokens = n;
	ck_assert_int_eq(api_request_feed(req, 0, &ev, out), 0);
	ck_assert_int_eq(api_request_end(req, out, &status), 0);
	ck_assert_int_eq(status, 200);
}

static const char *const call_pieces[] = {
    " {\"name\": \"get_", "weather\", \"arg", "uments\": {", "\"city\": \"Os", "lo\"}", " ", "}"};

START_TEST(test_response_shapes)
{
	api_error e;
	mllm_buf out;
	json_t *body, *call;
	api_request *req = parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS
	                            ",\"tool_choice\":\"required\"}");
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	mllm_buf_init(&out, 1 << 20);
	run(req, call_pieces, 7, MLLM_FINISH_STOP, &out);
	body = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq(json_string_value(json_object_get(
	                     json_array_get(json_object_get(body, "choices"), 0), "finish_reason")),
	                 "tool_calls");
	call = json_array_get(
	    json_object_get(
	        json_object_get(json_array_get(json_object_get(body, "choices"), 0), "message"),
	        "tool_calls"),
	    0);
	ck_assert_ptr_nonnull(call);
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(call, "function"), "name")),
	    "get_weather");
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(call, "function"), "arguments")),
	    "{\"city\": \"Oslo\"}");
	ck_assert(json_is_null(json_object_get(
	    json_object_get(json_array_get(json_object_get(body, "choices"), 0), "message"),
	    "content")));
	ck_assert(strncmp(json_string_value(json_object_get(call, "id")), "call_", 5) == 0);
	json_decref(body);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

START_TEST(test_streamed_call)
{
	api_error e;
	mllm_buf out;
	char args[256] = "", name[64] = "";
	int n_head = 0;
	bool finish_tc = false;
	api_request *req = parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS
	                            ",\"tool_choice\":\"required\",\"stream\":true}");
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	mllm_buf_init(&out, 1 << 20);
	run(req, call_pieces, 7, MLLM_FINISH_STOP, &out);
	/* Walk the SSE events. */
	for (char *p = out.data; p && (p = strstr(p, "data: ")) != NULL;) {
		char *end = strstr(p, "\n\n");
		json_t *j, *ch, *tc;
		p += 6;
		if (strncmp(p, "[DONE]", 6) == 0)
			break;
		j = json_loadb(p, (size_t)(end - p), 0, NULL);
		ck_assert_ptr_nonnull(j);
		ch = json_array_get(json_object_get(j, "choices"), 0);
		ck_assert(json_object_get(json_object_get(ch, "delta"), "content") == NULL ||
		          json_string_length(
		              json_object_get(json_object_get(ch, "delta"), "content")) == 0);
		tc = json_array_get(json_object_get(json_object_get(ch, "delta"), "tool_calls"), 0);
		if (tc) {
			json_t *f = json_object_get(tc, "function");
			ck_assert_int_eq(json_integer_value(json_object_get(tc, "index")), 0);
			if (json_object_get(tc, "id")) {
				n_head++;
				snprintf(name, sizeof name, "%s",
				         json_string_value(json_object_get(f, "name")));
			}
			strncat(args, json_string_value(json_object_get(f, "arguments")),
			        sizeof args - strlen(args) - 1);
		}
		if (json_is_string(json_object_get(ch, "finish_reason")))
			finish_tc = strcmp(json_string_value(json_object_get(ch, "finish_reason")),
			                   "tool_calls") == 0;
		json_decref(j);
		p = end;
	}
	ck_assert_int_eq(n_head, 1);
	ck_assert_str_eq(name, "get_weather");
	ck_assert_str_eq(args, "{\"city\": \"Oslo\"}");
	ck_assert(finish_tc);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

START_TEST(test_length_mid_call)
{
	api_error e;
	mllm_buf out;
	json_t *body, *msg;
	api_request *req = parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS
	                            ",\"tool_choice\":\"required\"}");
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	mllm_buf_init(&out, 1 << 20);
	run(req, call_pieces, 4, MLLM_FINISH_LENGTH, &out);
	body = json_loadb(out.data, out.len, 0, NULL);
	msg = json_object_get(json_array_get(json_object_get(body, "choices"), 0), "message");
	/* The only call was cut: the output stays text. */
	ck_assert_ptr_null(json_object_get(msg, "tool_calls"));
	ck_assert_str_eq(json_string_value(json_object_get(msg, "content")),
	                 "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Os");
	ck_assert_str_eq(json_string_value(json_object_get(
	                     json_array_get(json_object_get(body, "choices"), 0), "finish_reason")),
	                 "length");
	json_decref(body);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

/* Cut by max_tokens in the blanks after a forced single call: nothing else
 * could have followed, so the call is the finished answer ("tool_calls"),
 * streamed and not. With several calls allowed another might have. */
START_TEST(test_length_after_forced_call)
{
	static const char *const pieces[] = {" {\"name\": \"get_",
	                                     "weather\", \"arg",
	                                     "uments\": {",
	                                     "\"city\": \"Os",
	                                     "lo\"}",
	                                     " ",
	                                     "}",
	                                     "\n  "};
	for (int v = 0; v < 3; v++) {
		api_error e;
		mllm_buf out;
		bool stream = v == 1, several = v == 2;
		char body_s[512];
		const char *want = several ? "length" : "tool_calls", *got = NULL;
		snprintf(body_s, sizeof body_s,
		         "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS
		         ",\"tool_choice\":\"required\",\"parallel_tool_calls\":%s%s}",
		         several ? "true" : "false", stream ? ",\"stream\":true" : "");
		api_request *req = parse_ok(body_s);
		memset(&e, 0, sizeof e);
		ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
		mllm_buf_init(&out, 1 << 20);
		run(req, pieces, 8, MLLM_FINISH_LENGTH, &out);
		for (char *p = out.data; p && (p = strstr(p, stream ? "data: {" : "{")) != NULL;) {
			char *end = stream ? strstr(p, "\n\n") : out.data + out.len;
			json_t *j, *ch;
			p += stream ? 6 : 0;
			j = json_loadb(p, (size_t)(end - p), 0, NULL);
			ck_assert_ptr_nonnull(j);
			ch = json_array_get(json_object_get(j, "choices"), 0);
			if (json_is_string(json_object_get(ch, "finish_reason")))
				got =
				    strcmp(json_string_value(json_object_get(ch, "finish_reason")),
				           want) == 0
				        ? want
				        : "other";
			json_decref(j);
			p = end;
		}
		ck_assert_ptr_nonnull(got);
		ck_assert_str_eq(got, want);
		mllm_buf_free(&out);
		api_request_free(req);
	}
}
END_TEST

/* ---- tool_choice auto with a template's own syntax ---- */

/* A template from the fixtures' chat_templates/ (NULL when absent). */
static api_chat_template *fixture_template(const char *name)
{
	char rel[128], path[512], err[256];
	api_chat_template *t;
	FILE *f;
	char *src;
	long n;
	snprintf(rel, sizeof rel, "chat_templates/%s.jinja", name);
	mllm_test_path(path, sizeof path, rel);
	MLLM_REQUIRE_FIXTURE(path);
	f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	src = malloc((size_t)n + 1);
	ck_assert_uint_eq(fread(src, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	t = api_chat_template_create();
	ck_assert_int_eq(
	    api_chat_template_set_jinja(t, src, (size_t)n, "<s>", "</s>", name, err, sizeof err),
	    0);
	free(src);
	return t;
}

/* The tool part of Meta's Llama 3.1 template, in its words. */
static const char llama31_src[] =
    "{{ bos_token }}{% if tools %}<|start_header_id|>user<|end_header_id|>\n\nRespond in the "
    "format {\"name\": function name, \"parameters\": dictionary of argument name and its "
    "value}.{% for t in tools %}{{ t | tojson }}{% endfor %}<|eot_id|>{% endif %}"
    "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
    "{{ m.content }}<|eot_id|>{% endfor %}<|start_header_id|>assistant<|end_header_id|>\n\n";

/* /v1/models/{id}'s capabilities.tool_calls.parallel with template t. */
static bool model_parallel_calls(api_chat_template *t)
{
	mllm_buf out;
	json_t *j, *v;
	bool par;
	model.chat_template = t;
	mllm_buf_init(&out, 1 << 16);
	ck_assert_int_eq(api_render_model(&model, &out), 0);
	j = json_loadb(out.data, out.len, 0, NULL);
	v = json_object_get(json_object_get(json_object_get(j, "capabilities"), "tool_calls"),
	                    "parallel");
	ck_assert(json_is_boolean(v));
	par = json_is_true(v);
	json_decref(j);
	mllm_buf_free(&out);
	model.chat_template = NULL;
	return par;
}

START_TEST(test_syntax_detection)
{
	static const struct {
		const char *name;
		int syntax;
	} cases[] = {{"qwen3", API__TS_HERMES},
	             {"llama3", API__TS_NONE},
	             {"llama3_1", API__TS_NONE},
	             {"gemma3", API__TS_NONE},
	             {"deepseek_v3", API__TS_NONE}};
	char err[256];
	mllm_buf out;
	json_t *j;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		api_chat_template *t = fixture_template(cases[i].name);
		ck_assert_msg(api__tool_syntax(t) == cases[i].syntax, "%s", cases[i].name);
		/* /v1/models/{id} says what auto does. */
		model.chat_template = t;
		mllm_buf_init(&out, 1 << 16);
		ck_assert_int_eq(api_render_model(&model, &out), 0);
		j = json_loadb(out.data, out.len, 0, NULL);
		ck_assert_str_eq(
		    json_string_value(json_object_get(
		        json_object_get(json_object_get(j, "capabilities"), "tool_calls"), "auto")),
		    api__tool_syntax_name(cases[i].syntax));
		ck_assert(model_parallel_calls(t));
		json_decref(j);
		mllm_buf_free(&out);
		model.chat_template = NULL;
		api_chat_template_free(t);
	}
	{
		api_chat_template *t = api_chat_template_create();
		ck_assert_int_eq(api__tool_syntax(t), API__TS_NONE); /* a preset */
		ck_assert_int_eq(api_chat_template_set_jinja(t, llama31_src, strlen(llama31_src),
		                                             "<s>", "</s>", "llama31", err,
		                                             sizeof err),
		                 0);
		ck_assert_int_eq(api__tool_syntax(t), API__TS_LLAMA3);
		/* one call an answer: /v1/models/{id} says so */
		ck_assert(!model_parallel_calls(t));
		api_chat_template_free(t);
	}
	ck_assert_int_eq(api__tool_syntax(NULL), API__TS_NONE);
	ck_assert_str_eq(api__tool_syntax_name(API__TS_HERMES), "hermes");
	ck_assert_str_eq(api__tool_syntax_name(API__TS_LLAMA3), "llama3_json");
	ck_assert_str_eq(api__tool_syntax_name(API__TS_NONE), "plain_text");
}
END_TEST

#define CALL_W(city)                                                                               \
	"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"" city               \
	"\"}}\n</tool_call>"

/* Prepares body against the fixture template name. */
static api_request *prepare_with(const char *name, const char *body, api_chat_template **t)
{
	api_error e;
	api_request *req = parse_ok(body);
	memset(&e, 0, sizeof e);
	*t = fixture_template(name);
	model.chat_template = *t;
	ck_assert_msg(api_request_prepare(req, &model, &e) == 0, "%s", e.message);
	return req;
}

static void done_with(api_request *req, api_chat_template *t)
{
	api_request_free(req);
	model.chat_template = NULL;
	api_chat_template_free(t);
}

START_TEST(test_auto_hermes_grammar)
{
	api_chat_template *t;
	api_request *req = prepare_with(
	    "qwen3", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS "}", &t);
	const mllm_grammar *g = req->sp.grammar;
	ck_assert_ptr_nonnull(g);
	ck_assert(req->tool_parse);
	/* Free text, with or without a call after it. */
	ck_assert_int_eq(match(g, ""), 1);
	ck_assert_int_eq(match(g, "Hello there, <b>friend</b> <tool_cal"), 1);
	ck_assert_int_eq(match(g, "Let me look. " CALL_W("Oslo")), 1);
	ck_assert_int_eq(match(g, CALL_W("Oslo") "\n" CALL_W("Rome")), 1);
	ck_assert_int_eq(match(g, "<<tool_call>{\"name\":\"noop\",\"arguments\":{}}</tool_call>"),
	                 1);
	/* Once the opener is out, only calls: a known name, valid arguments,
	 * the closer; no text after the calls. */
	ck_assert_int_eq(match(g, "x <tool_call>{\"name\": \"other\""), -1);
	ck_assert_int_eq(match(g, "x <tool_call>hello"), -1);
	ck_assert_int_eq(
	    match(g, "<tool_call>{\"name\":\"get_weather\",\"arguments\":{}}</tool_call>"), -1);
	ck_assert_int_eq(match(g, CALL_W("Oslo") " and more text"), -1);
	ck_assert_int_eq(match(g, "x <tool_call>{\"name\": \"get_weather\""), 0);
	ck_assert_int_eq(match(g, "x <tool_call>"), 0);
	done_with(req, t);

	/* parallel_tool_calls false: one call at most. */
	req = prepare_with("qwen3",
	                   "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS
	                   ",\"parallel_tool_calls\":false}",
	                   &t);
	ck_assert_int_eq(match(req->sp.grammar, CALL_W("Oslo")), 1);
	ck_assert_int_eq(match(req->sp.grammar, CALL_W("Oslo") "\n" CALL_W("Rome")), -1);
	done_with(req, t);

	/* required with the template's syntax: calls from the first byte. */
	req = prepare_with("qwen3",
	                   "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS
	                   ",\"tool_choice\":\"required\"}",
	                   &t);
	ck_assert_int_eq(match(req->sp.grammar, CALL_W("Oslo") "\n" CALL_W("Rome")), 1);
	ck_assert_int_eq(match(req->sp.grammar, "Sure. " CALL_W("Oslo")), -1);
	ck_assert_int_eq(match(req->sp.grammar, ""), 0);
	done_with(req, t);

	/* A template without a known syntax: auto stays plain text. */
	req = prepare_with("llama3",
	                   "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS "}", &t);
	ck_assert_ptr_null(req->sp.grammar);
	ck_assert(!req->tool_parse);
	done_with(req, t);

	/* response_format wins over auto: its grammar, no call parsing. */
	req = prepare_with("qwen3",
	                   "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS
	                   ",\"response_format\":{\"type\":\"json_object\"}}",
	                   &t);
	ck_assert(!req->tool_parse);
	ck_assert_int_eq(match(req->sp.grammar, "{}"), 1);
	done_with(req, t);
}
END_TEST

START_TEST(test_auto_llama3_grammar)
{
	char err[256];
	api_error e;
	api_chat_template *t = api_chat_template_create();
	api_request *req =
	    parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS "}");
	mllm_buf out;
	json_t *body, *msg, *calls;
	static const char *const pieces[] = {" {\"name\": \"get_weather\", ",
	                                     "\"parameters\": {\"city\": \"Oslo\"}}"};
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(api_chat_template_set_jinja(t, llama31_src, strlen(llama31_src), "<s>",
	                                             "</s>", "llama31", err, sizeof err),
	                 0);
	model.chat_template = t;
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	ck_assert_int_eq(match(req->sp.grammar, "It is sunny. {\"a\": 1}"), 1);
	ck_assert_int_eq(match(req->sp.grammar,
	                       " {\"name\": \"get_weather\", \"parameters\": {\"city\": \"x\"}}"),
	                 1);
	ck_assert_int_eq(match(req->sp.grammar, "{\"name\": \"get_weather\", \"arguments\""), -1);
	ck_assert_int_eq(match(req->sp.grammar, "{\"foo\""), -1);
	/* One call only: the syntax has no separator. */
	ck_assert_int_eq(match(req->sp.grammar, "{\"name\":\"noop\",\"parameters\":{}} "
	                                        "{\"name\":\"noop\",\"parameters\":{}}"),
	                 -1);
	mllm_buf_init(&out, 1 << 20);
	run(req, pieces, 2, MLLM_FINISH_STOP, &out);
	body = json_loadb(out.data, out.len, 0, NULL);
	msg = json_object_get(json_array_get(json_object_get(body, "choices"), 0), "message");
	calls = json_object_get(msg, "tool_calls");
	ck_assert_uint_eq(json_array_size(calls), 1);
	ck_assert_str_eq(call_fn(calls, 0, "arguments"), "{\"city\": \"Oslo\"}");
	ck_assert(json_is_null(json_object_get(msg, "content")));
	json_decref(body);
	mllm_buf_free(&out);
	api_request_free(req);
	model.chat_template = NULL;
	api_chat_template_free(t);
}
END_TEST

static void prompt_text(const api_request *req, char *buf, size_t cap);

/* A forced call on a Jinja template that never prints tools: the tools
 * preamble goes into the client's system message, else a system turn of
 * its own, else (a template that refuses system turns, as Gemma's) the
 * first user turn. */
START_TEST(test_preamble_without_tools_in_template)
{
	static const char plain_src[] =
	    "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant]";
	static const char nosys_src[] =
	    "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not "
	    "supported') }}{% endif %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant]";
	static const struct {
		const char *src, *body, *want_start;
	} cases[] = {
	    {plain_src, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]",
	     "[system] You can call these tools:"},
	    {plain_src,
	     "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":"
	     "\"user\",\"content\":\"hi\"}]",
	     "[system] You can call these tools:"},
	    {nosys_src, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]",
	     "[user] You can call these tools:"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		static char text[1 << 16];
		char err[256], body[1024];
		api_error e;
		api_chat_template *t = api_chat_template_create();
		api_request *req;
		snprintf(body, sizeof body, "%s," TOOLS ",\"tool_choice\":\"required\"}",
		         cases[i].body);
		req = parse_ok(body);
		ck_assert_int_eq(api_chat_template_set_jinja(t, cases[i].src, strlen(cases[i].src),
		                                             "<s>", "</s>", "t", err, sizeof err),
		                 0);
		model.chat_template = t;
		memset(&e, 0, sizeof e);
		ck_assert_msg(api_request_prepare(req, &model, &e) == 0, "case %zu: %s", i,
		              e.message);
		prompt_text(req, text, sizeof text);
		ck_assert_msg(strstr(text, cases[i].want_start) != NULL, "case %zu: %s", i, text);
		ck_assert_msg(strstr(text, "get_weather") != NULL, "case %zu: %s", i, text);
		/* One system turn at most: a client's own takes the preamble. */
		ck_assert_msg(strstr(strstr(text, "[system]") ? strstr(text, "[system]") + 1 : text,
		                     "[system]") == NULL,
		              "case %zu: %s", i, text);
		if (i == 1)
			ck_assert_ptr_nonnull(strstr(text, "Be brief."));
		api_request_free(req);
		model.chat_template = NULL;
		api_chat_template_free(t);
	}
}
END_TEST

/* An assistant turn of tool calls whose content is null (as the SDKs send
 * back the message they got): DeepSeek-V3's template renders the calls
 * only when content is none, as transformers passes it (the fixture's
 * golden); Llama 3's would print "None" and Qwen3's fails on None, so
 * they see "". */
START_TEST(test_null_content_with_tool_calls)
{
	static const char body[] =
	    "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},{\"role\":"
	    "\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":"
	    "\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
	    "\"{\\\"city\\\": \\\"Paris\\\"}\"}}]},{\"role\":\"tool\",\"content\":\"21 C, "
	    "clear\",\"tool_call_id\":\"call_1\"}]}";
	static const struct {
		const char *name, *want, *unwanted;
	} cases[] = {
	    /* (U+2581 in the special tokens decodes as a space here) */
	    {"deepseek_v3",
	     "<\xef\xbd\x9c"
	     "Assistant\xef\xbd\x9c><\xef\xbd\x9ctool calls begin\xef\xbd\x9c>"
	     "<\xef\xbd\x9ctool call begin\xef\xbd\x9c>function<\xef\xbd\x9ctool "
	     "sep\xef\xbd\x9c>get_weather\n```json\n{\"city\": \"Paris\"}\n```",
	     "None"},
	    {"llama3", "assistant<|end_header_id|>\n\n<|eot_id|>", "None"},
	    {"qwen3",
	     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}",
	     "None"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		static char text[1 << 16];
		api_error e;
		api_chat_template *t = fixture_template(cases[i].name);
		api_request *req = parse_ok(body);
		model.chat_template = t;
		memset(&e, 0, sizeof e);
		ck_assert_msg(api_request_prepare(req, &model, &e) == 0, "%s: %s", cases[i].name,
		              e.message);
		prompt_text(req, text, sizeof text);
		ck_assert_msg(strstr(text, cases[i].want) != NULL, "%s: %s", cases[i].name, text);
		ck_assert_msg(strstr(text, cases[i].unwanted) == NULL, "%s: %s", cases[i].name,
		              text);
		api_request_free(req);
		model.chat_template = NULL;
		api_chat_template_free(t);
	}
}
END_TEST

static const char *const hermes_pieces[] = {
    "Día de ", "sol. <tool", "_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Os",
    "lo \\\"Ø\\\"\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"noop\", ",
    "\"arguments\": {\"k\": [1, {\"x\": \"}\"}]}}\n</tool_call>"};

START_TEST(test_auto_hermes_response)
{
	api_chat_template *t;
	api_request *req = prepare_with(
	    "qwen3", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS "}", &t);
	mllm_buf out;
	json_t *body, *ch, *msg, *calls;
	const char *id0, *id1;
	/* The pieces are what the grammar allows. */
	{
		char all[512] = "";
		for (int i = 0; i < 5; i++)
			strcat(all, hermes_pieces[i]);
		ck_assert_int_eq(match(req->sp.grammar, all), 1);
	}
	mllm_buf_init(&out, 1 << 20);
	run(req, hermes_pieces, 5, MLLM_FINISH_STOP, &out);
	body = json_loadb(out.data, out.len, 0, NULL);
	ch = json_array_get(json_object_get(body, "choices"), 0);
	msg = json_object_get(ch, "message");
	ck_assert_str_eq(json_string_value(json_object_get(ch, "finish_reason")), "tool_calls");
	ck_assert_str_eq(json_string_value(json_object_get(msg, "content")), "Día de sol. ");
	calls = json_object_get(msg, "tool_calls");
	ck_assert_uint_eq(json_array_size(calls), 2);
	ck_assert_str_eq(call_fn(calls, 0, "arguments"), "{\"city\": \"Oslo \\\"Ø\\\"\"}");
	ck_assert_str_eq(json_string_value(json_object_get(
	                     json_object_get(json_array_get(calls, 1), "function"), "name")),
	                 "noop");
	ck_assert_str_eq(json_string_value(json_object_get(
	                     json_object_get(json_array_get(calls, 1), "function"), "arguments")),
	                 "{\"k\": [1, {\"x\": \"}\"}]}");
	id0 = json_string_value(json_object_get(json_array_get(calls, 0), "id"));
	id1 = json_string_value(json_object_get(json_array_get(calls, 1), "id"));
	ck_assert(strncmp(id0, "call_", 5) == 0 && strcmp(id0, id1) != 0);
	json_decref(body);
	mllm_buf_free(&out);
	done_with(req, t);

	/* Cut short inside the second call's head: the first call, complete,
	 * is still a call (finish_reason "length"); the cut head is dropped. */
	req = prepare_with("qwen3",
	                   "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS "}", &t);
	mllm_buf_init(&out, 1 << 20);
	run(req, hermes_pieces, 4, MLLM_FINISH_LENGTH, &out);
	body = json_loadb(out.data, out.len, 0, NULL);
	ch = json_array_get(json_object_get(body, "choices"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(ch, "finish_reason")), "length");
	calls = json_object_get(json_object_get(ch, "message"), "tool_calls");
	ck_assert_uint_eq(json_array_size(calls), 1);
	ck_assert_str_eq(call_fn(calls, 0, "name"), "get_weather");
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(ch, "message"), "content")),
	    "Día de sol. ");
	json_decref(body);
	mllm_buf_free(&out);
	done_with(req, t);

	/* Cut inside the second call's arguments: the first call only. */
	{
		static const char *const cut_args[] = {
		    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
		    "\"Oslo\"}}\n"
		    "</tool_call>\n<tool_call>\n{\"name\": \"noop\", \"arguments\": {\"k\": [1"};
		req = prepare_with(
		    "qwen3", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS "}",
		    &t);
		mllm_buf_init(&out, 1 << 20);
		run(req, cut_args, 1, MLLM_FINISH_LENGTH, &out);
		body = json_loadb(out.data, out.len, 0, NULL);
		ch = json_array_get(json_object_get(body, "choices"), 0);
		ck_assert_str_eq(json_string_value(json_object_get(ch, "finish_reason")), "length");
		calls = json_object_get(json_object_get(ch, "message"), "tool_calls");
		ck_assert_uint_eq(json_array_size(calls), 1);
		ck_assert_str_eq(call_fn(calls, 0, "arguments"), "{\"city\": \"Oslo\"}");
		json_decref(body);
		mllm_buf_free(&out);
		done_with(req, t);
	}

	/* Cut before any call's head: the output stays text. */
	req = prepare_with("qwen3",
	                   "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS "}", &t);
	mllm_buf_init(&out, 1 << 20);
	run(req, hermes_pieces, 2, MLLM_FINISH_LENGTH, &out);
	body = json_loadb(out.data, out.len, 0, NULL);
	ch = json_array_get(json_object_get(body, "choices"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(ch, "finish_reason")), "length");
	ck_assert_ptr_null(json_object_get(json_object_get(ch, "message"), "tool_calls"));
	json_decref(body);
	mllm_buf_free(&out);
	done_with(req, t);
}
END_TEST

START_TEST(test_auto_hermes_streamed)
{
	api_chat_template *t;
	api_request *req = prepare_with(
	    "qwen3",
	    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS ",\"stream\":true}",
	    &t);
	mllm_buf out;
	char content[256] = "", args[2][256] = {"", ""}, names[2][64] = {"", ""}, ids[2][64];
	int n_head = 0;
	const char *finish = NULL;
	mllm_buf_init(&out, 1 << 20);
	run(req, hermes_pieces, 5, MLLM_FINISH_STOP, &out);
	for (char *p = out.data; p && (p = strstr(p, "data: ")) != NULL;) {
		char *end = strstr(p, "\n\n");
		json_t *j, *ch, *d, *tcs, *tc;
		size_t k;
		p += 6;
		if (strncmp(p, "[DONE]", 6) == 0)
			break;
		j = json_loadb(p, (size_t)(end - p), 0, NULL);
		ck_assert_ptr_nonnull(j);
		ch = json_array_get(json_object_get(j, "choices"), 0);
		d = json_object_get(ch, "delta");
		/* the role chunk: content null (the output may be calls only) */
		if (json_object_get(d, "role"))
			ck_assert(json_is_null(json_object_get(d, "content")));
		if (json_is_string(json_object_get(d, "content"))) {
			const char *s = json_string_value(json_object_get(d, "content"));
			/* No markup in content, no chunk cut inside a character. */
			ck_assert(strchr(s, '<') == NULL);
			ck_assert(strstr(s, "\xef\xbf\xbd") == NULL);
			strcat(content, s);
		}
		tcs = json_object_get(d, "tool_calls");
		json_array_foreach(tcs, k, tc)
		{
			json_int_t i = json_integer_value(json_object_get(tc, "index"));
			json_t *f = json_object_get(tc, "function");
			ck_assert(i == 0 || i == 1);
			if (json_object_get(tc, "id")) {
				ck_assert_int_eq(n_head, (int)i); /* heads in order */
				n_head++;
				snprintf(names[i], sizeof names[i], "%s",
				         json_string_value(json_object_get(f, "name")));
				snprintf(ids[i], sizeof ids[i], "%s",
				         json_string_value(json_object_get(tc, "id")));
			} else {
				ck_assert_ptr_null(json_object_get(f, "name"));
			}
			strcat(args[i], json_string_value(json_object_get(f, "arguments")));
		}
		if (json_is_string(json_object_get(ch, "finish_reason")))
			finish = strcmp(json_string_value(json_object_get(ch, "finish_reason")),
			                "tool_calls") == 0
			             ? "tool_calls"
			             : "other";
		json_decref(j);
		p = end;
	}
	ck_assert_str_eq(content, "Día de sol. ");
	ck_assert_int_eq(n_head, 2);
	ck_assert_str_eq(names[0], "get_weather");
	ck_assert_str_eq(names[1], "noop");
	ck_assert_str_ne(ids[0], ids[1]);
	ck_assert_str_eq(args[0], "{\"city\": \"Oslo \\\"Ø\\\"\"}");
	ck_assert_str_eq(args[1], "{\"k\": [1, {\"x\": \"}\"}]}");
	ck_assert_ptr_nonnull(finish);
	ck_assert_str_eq(finish, "tool_calls");
	mllm_buf_free(&out);
	done_with(req, t);
}
END_TEST

/* The prepared chat prompt, decoded. */
static void prompt_text(const api_request *req, char *buf, size_t cap)
{
	size_t n = 0;
	ck_assert_int_eq(
	    mllm_tokenizer_decode(tok, req->prompts[0].ids, req->prompts[0].n_ids, buf, cap, &n),
	    0);
	ck_assert_uint_lt(n, cap);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

START_TEST(test_continue_final_message)
{
	static const struct {
		const char *body;
	} bad[] = {
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"continue_final_message\":"
	     "true}"},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\","
	     "\"content\":\"\"}],\"continue_final_message\":true}"},
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\","
	     "\"content\":\"a\"}],\"continue_final_message\":1}"},
	};
	char text[4096];
	api_chat_template *t;
	api_request *req;
	api_error e;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		api_limits lim = API_LIMITS_DEFAULT;
		memset(&e, 0, sizeof e);
		req = NULL;
		ck_assert_int_eq(
		    api_request_parse(API_CHAT, bad[i].body, strlen(bad[i].body), &lim, &req, &e),
		    400);
		ck_assert_str_eq(e.param, "continue_final_message");
	}

	/* The preset: the prompt ends with the prefill, no cue after it. */
	req = parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"Tell a story\"},"
	               "{\"role\":\"assistant\",\"content\":\"Once upon\"}],"
	               "\"continue_final_message\":true}");
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	prompt_text(req, text, sizeof text);
	ck_assert_msg(ends_with(text, "Once upon"), "%s", text);
	ck_assert(!req->choices[0].lstrip);
	api_request_free(req);

	/* Qwen3's template: the turn is left open after the prefill; one that
	 * ends with the opener starts the output inside a call. */
	req = prepare_with("qwen3",
	                   "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":"
	                   "\"assistant\",\"content\":\"Let me check.\\n<tool_call>\\n\"}],"
	                   "\"continue_final_message\":true," TOOLS "}",
	                   &t);
	prompt_text(req, text, sizeof text);
	ck_assert_msg(ends_with(text, "Let me check.\n<tool_call>\n"), "%s", text);
	ck_assert(req->tool_in_call);
	ck_assert_int_eq(
	    match(req->sp.grammar, "{\"name\": \"noop\", \"arguments\": {}}\n</tool_call>"), 1);
	ck_assert_int_eq(match(req->sp.grammar, "Sure"), -1);
	{
		static const char *const pieces[] = {"{\"name\": \"noop\", \"arguments\": {}}",
		                                     "\n</tool_call>"};
		mllm_buf out;
		json_t *body, *msg;
		mllm_buf_init(&out, 1 << 20);
		run(req, pieces, 2, MLLM_FINISH_STOP, &out);
		body = json_loadb(out.data, out.len, 0, NULL);
		msg =
		    json_object_get(json_array_get(json_object_get(body, "choices"), 0), "message");
		ck_assert(json_is_null(json_object_get(msg, "content")));
		ck_assert_uint_eq(json_array_size(json_object_get(msg, "tool_calls")), 1);
		json_decref(body);
		mllm_buf_free(&out);
	}
	done_with(req, t);

	/* A prefill that also occurs in the markup after it (the end of turn,
	 * the next header) is cut where the message has it, not at its last
	 * occurrence. */
	{
		static const struct {
			const char *tmpl, *prefill, *tail;
		} cuts[] = {
		    {"llama3", "a", "<|start_header_id|>assistant<|end_header_id|>\n\na"},
		    {"llama3", "assistant", "<|end_header_id|>\n\nassistant"},
		    {"llama3", "eot", "<|end_header_id|>\n\neot"},
		    {"qwen3", "im_end", "</think>\n\nim_end"},
		};
		for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
			char body[512];
			snprintf(body, sizeof body,
			         "{\"messages\":[{\"role\":\"user\",\"content\":\"Pick a, b or "
			         "c.\"},{\"role\":\"assistant\",\"content\":\"%s\"}],"
			         "\"continue_final_message\":true}",
			         cuts[i].prefill);
			req = prepare_with(cuts[i].tmpl, body, &t);
			prompt_text(req, text, sizeof text);
			ck_assert_msg(ends_with(text, cuts[i].tail), "%s / %s: %s", cuts[i].tmpl,
			              cuts[i].prefill, text);
			done_with(req, t);
		}
	}

	/* Llama 3.1's syntax has no opener but the call's own "{": a prefill
	 * of that "{" alone (blanks around it) starts the output inside the
	 * call, which the response completes. */
	{
		char err[256];
		static const char *const pieces[] = {"\"name\": \"get_weather\", ",
		                                     "\"parameters\": {\"city\": \"Oslo\"}}"};
		mllm_buf out;
		json_t *body, *msg, *calls;
		t = api_chat_template_create();
		ck_assert_int_eq(api_chat_template_set_jinja(t, llama31_src, strlen(llama31_src),
		                                             "<s>", "</s>", "llama31", err,
		                                             sizeof err),
		                 0);
		model.chat_template = t;
		req = parse_ok(
		    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":"
		    "\"assistant\",\"content\":\" {\"}],\"continue_final_message\":true," TOOLS
		    "}");
		memset(&e, 0, sizeof e);
		ck_assert_msg(api_request_prepare(req, &model, &e) == 0, "%s", e.message);
		prompt_text(req, text, sizeof text);
		ck_assert_msg(ends_with(text, "{"), "%s", text);
		ck_assert(req->tool_in_call);
		ck_assert_int_eq(match(req->sp.grammar, "\"name\": \"noop\", \"parameters\": {}}"),
		                 1);
		ck_assert_int_eq(match(req->sp.grammar, "{\"name\": \"noop\""), -1);
		ck_assert_int_eq(match(req->sp.grammar, "Sure"), -1);
		mllm_buf_init(&out, 1 << 20);
		run(req, pieces, 2, MLLM_FINISH_STOP, &out);
		body = json_loadb(out.data, out.len, 0, NULL);
		msg =
		    json_object_get(json_array_get(json_object_get(body, "choices"), 0), "message");
		calls = json_object_get(msg, "tool_calls");
		ck_assert_uint_eq(json_array_size(calls), 1);
		ck_assert_str_eq(call_fn(calls, 0, "name"), "get_weather");
		ck_assert_str_eq(call_fn(calls, 0, "arguments"), "{\"city\": \"Oslo\"}");
		json_decref(body);
		mllm_buf_free(&out);
		api_request_free(req);
		/* more than the "{": the answer has begun as text */
		req = parse_ok(
		    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":"
		    "\"assistant\",\"content\":\"{a\"}],\"continue_final_message\":true," TOOLS
		    "}");
		ck_assert_msg(api_request_prepare(req, &model, &e) == 0, "%s", e.message);
		ck_assert(!req->tool_in_call);
		api_request_free(req);
		model.chat_template = NULL;
		api_chat_template_free(t);
	}

	/* The preset's forced calls start with their own "{" too, and may be
	 * several: the first continues the prefill, the next ones are whole. */
	{
		static const char *const pieces[] = {"\"name\": \"noop\", \"arguments\": {}}\n",
		                                     "{\"name\": \"get_weather\", \"arguments\": "
		                                     "{\"city\": \"Oslo\"}}"};
		mllm_buf out;
		json_t *body, *calls;
		req = parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":"
		               "\"assistant\",\"content\":\"{\"}],\"continue_final_message\":true,"
		               "\"tool_choice\":\"required\"," TOOLS "}");
		memset(&e, 0, sizeof e);
		ck_assert_msg(api_request_prepare(req, &model, &e) == 0, "%s", e.message);
		ck_assert(req->tool_in_call);
		ck_assert_int_eq(match(req->sp.grammar, "\"name\": \"noop\", \"arguments\": {}}\n"
		                                        "{\"name\": \"noop\", \"arguments\": {}}"),
		                 1);
		ck_assert_int_eq(match(req->sp.grammar, "\"name\": \"noop\", \"arguments\": {}}\n"
		                                        "\"name\": \"noop\", \"arguments\": {}}"),
		                 -1);
		mllm_buf_init(&out, 1 << 20);
		run(req, pieces, 2, MLLM_FINISH_STOP, &out);
		body = json_loadb(out.data, out.len, 0, NULL);
		calls = json_object_get(
		    json_object_get(json_array_get(json_object_get(body, "choices"), 0), "message"),
		    "tool_calls");
		ck_assert_uint_eq(json_array_size(calls), 2);
		ck_assert_str_eq(call_fn(calls, 0, "name"), "noop");
		ck_assert_str_eq(call_fn(calls, 1, "name"), "get_weather");
		json_decref(body);
		mllm_buf_free(&out);
		api_request_free(req);
	}

	/* A prefill with text only continues as free text. */
	req = prepare_with(
	    "qwen3",
	    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":"
	    "\"assistant\",\"content\":\"Well\"}],\"continue_final_message\":true," TOOLS "}",
	    &t);
	ck_assert(!req->tool_in_call);
	ck_assert_int_eq(match(req->sp.grammar, ", hello"), 1);
	done_with(req, t);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("tools");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_validation);
	tcase_add_test(tc, test_forced_grammar_and_prompt);
	tcase_add_test(tc, test_schema_checked_unforced);
	tcase_add_test(tc, test_ref_limit_per_tool);
	tcase_add_test(tc, test_preamble_without_tools_in_template);
	tcase_add_test(tc, test_null_content_with_tool_calls);
	tcase_add_test(tc, test_tool_messages);
	tcase_add_test(tc, test_response_shapes);
	tcase_add_test(tc, test_streamed_call);
	tcase_add_test(tc, test_length_mid_call);
	tcase_add_test(tc, test_length_after_forced_call);
	tcase_add_test(tc, test_syntax_detection);
	tcase_add_test(tc, test_auto_hermes_grammar);
	tcase_add_test(tc, test_auto_llama3_grammar);
	tcase_add_test(tc, test_auto_hermes_response);
	tcase_add_test(tc, test_auto_hermes_streamed);
	tcase_add_test(tc, test_continue_final_message);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
