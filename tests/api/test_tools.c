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
	};
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

static Suite *make_suite(void)
{
	Suite *s = suite_create("tools");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_validation);
	tcase_add_test(tc, test_forced_grammar_and_prompt);
	tcase_add_test(tc, test_tool_messages);
	tcase_add_test(tc, test_response_shapes);
	tcase_add_test(tc, test_streamed_call);
	tcase_add_test(tc, test_length_mid_call);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
