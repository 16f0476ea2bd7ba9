/*
 * test_responses.c — api/responses.c: input items translated into the chat
 * messages the template renders (instructions first, parts joined, calls
 * in a row merged into one assistant turn, tool outputs as tool results),
 * validation errors naming their param, the response object and the typed
 * event stream (order, sequence numbers, the forced call's events), records
 * and continuation (the next prompt starts with the stored ids verbatim and
 * encodes only the new text, exactly; another model or a changed prefix
 * falls back to a full encode), and input_items paging.
 */
/* White-box: the records and the request state are checked inside
 * (included first: the fixture's globals would shadow its parameters). */
#include "../../api/responses.c"

#include "api_fixture.h"

static void setup(void)
{
	api_fixture_setup(2048, 1700000000);
}

static api_request *parse_ok(const char *body)
{
	api_limits lim = API_LIMITS_DEFAULT;
	api_request *req = NULL;
	api_error e;
	memset(&e, 0, sizeof e);
	ck_assert_msg(api_request_parse(API_RESPONSES, body, strlen(body), &lim, &req, &e) == 0,
	              "%s", e.message);
	return req;
}

static api_request *prepared(const char *body, api_resp_record *prev)
{
	api_request *req = parse_ok(body);
	api_error e;
	memset(&e, 0, sizeof e);
	if (prev)
		api_request_set_previous(req, prev);
	ck_assert_msg(api_request_prepare(req, &model, &e) == 0, "%s", e.message);
	return req;
}

/* Decodes the prompt's ids (BOS renders as nothing). */
static char *prompt_text(const api_request *req)
{
	static char buf[1 << 16];
	size_t n = 0;
	ck_assert_int_eq(mllm_tokenizer_decode(tok, req->prompts[0].ids, req->prompts[0].n_ids, buf,
	                                       sizeof buf, &n),
	                 0);
	buf[n] = '\0';
	return buf;
}

START_TEST(test_items_to_messages)
{
	api_request *req = prepared(
	    "{\"model\":\"tiny\",\"instructions\":\"Be brief.\",\"input\":["
	    "{\"role\":\"developer\",\"content\":\"Dev.\"},"
	    "{\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":\"input_text\","
	    "\"text\":\"a\"},{\"type\":\"input_text\",\"text\":\"b\"}]},"
	    "{\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi.\"}]},"
	    "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":"
	    "\"{\\\"x\\\":1}\"},"
	    "{\"type\":\"function_call\",\"call_id\":\"c2\",\"name\":\"g\",\"arguments\":\"{}\"},"
	    "{\"type\":\"reasoning\",\"summary\":[]},"
	    "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"42\"},"
	    "{\"type\":\"function_call_output\",\"call_id\":\"c2\",\"output\":\"7\"}]}",
	    NULL);
	static const struct {
		api__role role;
		const char *content;
	} want[] = {
	    {API_ROLE_SYSTEM, "Be brief."},
	    {API_ROLE_SYSTEM, "Dev."},
	    {API_ROLE_USER, "a\nb"},
	    /* A message and the calls after it: one assistant turn, as a
	     * stored response's output is. */
	    {API_ROLE_ASSISTANT, "Hi.\n{\"name\":\"f\",\"arguments\":{\"x\":1}}\n{\"name\":\"g\","
	                         "\"arguments\":{}}"},
	    {API_ROLE_USER, "Tool result (c1): 42"},
	    {API_ROLE_USER, "Tool result (c2): 7"},
	};
	ck_assert_int_eq(req->n_msgs, 6);
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(req->msgs[i].role, want[i].role);
		ck_assert_str_eq(req->msgs[i].content, want[i].content);
	}
	/* The plain preset renders them, ending with the cue. */
	ck_assert_str_eq(
	    prompt_text(req),
	    "System: Be brief.\nSystem: Dev.\nUser: a\nb\nAssistant: Hi.\n"
	    "{\"name\":\"f\",\"arguments\":{\"x\":1}}\n{\"name\":\"g\","
	    "\"arguments\":{}}\nUser: Tool result (c1): 42\nUser: Tool result (c2): 7\n"
	    "Assistant:");
	api_request_free(req);

	/* A string is one user message; the id is resp_ + 40 hex digits. */
	req = prepared("{\"input\":\"Hello\"}", NULL);
	ck_assert_int_eq(req->n_msgs, 1);
	ck_assert_int_eq(req->msgs[0].role, API_ROLE_USER);
	ck_assert_str_eq(req->msgs[0].content, "Hello");
	ck_assert_uint_eq(strlen(api_request_id(req)), 45);
	ck_assert_int_eq(strncmp(api_request_id(req), "resp_", 5), 0);
	ck_assert_int_eq(strncmp(api_request_id(req) + 5, api_request_affinity(req), 16), 0);
	ck_assert(api_request_store(req));
	ck_assert_ptr_null(api_request_previous_id(req));
	api_request_free(req);
}
END_TEST

/* Errors found when the request is prepared (the conversation rendered)
 * name the Responses item, not the chat message it became. */
START_TEST(test_prepare_errors)
{
	static const struct {
		const char *body, *param;
	} cases[] = {
	    {"{\"input\":[{\"role\":\"user\",\"content\":\"x\"},"
	     "{\"type\":\"function_call_output\",\"call_id\":\"nope\",\"output\":\"1\"}]}",
	     "input[1].call_id"},
	    {"{\"instructions\":\"Be brief.\",\"input\":[{\"role\":\"user\",\"content\":\"x\"},"
	     "{\"type\":\"reasoning\",\"summary\":[]},"
	     "{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":\"{}\"},"
	     "{\"type\":\"function_call_output\",\"call_id\":\"c2\",\"output\":\"1\"}]}",
	     "input[3].call_id"},
	    /* every call has its output, as OpenAI requires */
	    {"{\"input\":[{\"role\":\"user\",\"content\":\"x\"},"
	     "{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":\"{}\"}]}",
	     "input[1]"},
	    {"{\"input\":[{\"role\":\"user\",\"content\":\"x\"},"
	     "{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":\"{}\"},"
	     "{\"type\":\"function_call\",\"call_id\":\"d\",\"name\":\"f\",\"arguments\":\"{}\"},"
	     "{\"type\":\"function_call_output\",\"call_id\":\"d\",\"output\":\"1\"}]}",
	     "input[1]"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		api_request *req = parse_ok(cases[i].body);
		api_error e;
		memset(&e, 0, sizeof e);
		ck_assert_int_eq(api_request_prepare(req, &model, &e), 400);
		ck_assert_msg(strcmp(e.param, cases[i].param) == 0, "%s: param '%s', want '%s'",
		              cases[i].body, e.param, cases[i].param);
		api_request_free(req);
	}
	/* A call answered in the same input is fine. */
	api_request_free(prepared(
	    "{\"input\":[{\"role\":\"user\",\"content\":\"x\"},"
	    "{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":"
	    "\"{}\"},{\"type\":\"function_call_output\",\"call_id\":\"c\",\"output\":\"1\"}]}",
	    NULL));
}
END_TEST

START_TEST(test_validation)
{
	static const struct {
		const char *body, *param;
		int status;
	} cases[] = {
	    {"{}", "input", 400},
	    {"{\"input\":[]}", "input", 400},
	    {"{\"input\":42}", "input", 400},
	    {"{\"input\":[7]}", "input[0]", 400},
	    {"{\"input\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "input[0].role", 400},
	    {"{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\"}]}]}",
	     "input[0].content[0]", 400},
	    {"{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\"}]}]}",
	     "input[0].content[0].text", 400},
	    {"{\"input\":[{\"type\":\"web_search_call\"}]}", "input[0].type", 400},
	    {"{\"input\":[{\"type\":\"function_call\",\"name\":\"f\",\"arguments\":\"{}\"}]}",
	     "input[0].call_id", 400},
	    {"{\"input\":[{\"type\":\"function_call_output\",\"call_id\":\"c\"}]}",
	     "input[0].output", 400},
	    {"{\"input\":\"x\",\"tools\":[{\"type\":\"file_search\"}]}", "tools[0].type", 400},
	    {"{\"input\":\"x\",\"tool_choice\":{\"type\":\"web_search_preview\"}}", "tool_choice",
	     400},
	    {"{\"input\":\"x\",\"text\":{\"format\":{\"type\":\"yaml\"}}}", "text.format.type",
	     400},
	    {"{\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\",\"schema\":{}}}}",
	     "text.format.name", 400},
	    {"{\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"a b\","
	     "\"schema\":{}}}}",
	     "text.format.name", 400},
	    {"{\"input\":\"x\",\"truncation\":\"sometimes\"}", "truncation", 400},
	    /* an id with other fields and no type is not a reference */
	    {"{\"input\":[{\"id\":\"fco_1\",\"call_id\":\"c\",\"output\":\"o\"}]}", "input[0].type",
	     400},
	    {"{\"input\":\"x\",\"max_output_tokens\":0}", "max_output_tokens", 400},
	    {"{\"input\":\"x\",\"temperature\":3}", "temperature", 400},
	    {"{\"input\":\"x\",\"previous_response_id\":5}", "previous_response_id", 400},
	    {"{\"input\":\"x\",\"background\":true}", "background", 400},
	    {"{\"input\":\"x\",\"conversation\":\"conv_1\"}", "conversation", 400},
	    {"{\"input\":\"x\",\"metadata\":{\"k\":1}}", "metadata", 400},
	    {"{\"input\":\"x\",\"store\":\"yes\"}", "store", 400},
	    /* Item ids are unique (input_items' after= cursor names one). */
	    {"{\"input\":[{\"role\":\"user\",\"id\":\"m\",\"content\":\"x\"},"
	     "{\"role\":\"user\",\"id\":\"m\",\"content\":\"y\"}]}",
	     "input[1].id", 400},
	    /* OpenAI's reasoning efforts only; max_tool_calls a positive integer. */
	    {"{\"input\":\"x\",\"reasoning\":{\"effort\":\"bogus\"}}", "reasoning.effort", 400},
	    {"{\"input\":\"x\",\"reasoning\":{\"effort\":3}}", "reasoning.effort", 400},
	    {"{\"input\":\"x\",\"max_tool_calls\":0}", "max_tool_calls", 400},
	    /* strict is checked as chat's (it was echoed as sent) */
	    {"{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"strict\":"
	     "\"yes\"}]}",
	     "tools[0].strict", 400},
	    {"{\"input\":\"x\",\"max_tool_calls\":\"2\"}", "max_tool_calls", 400},
	    {"{\"input\":\"x\",\"max_tool_calls\":2.5}", "max_tool_calls", 400},
	    /* Errors of the shared chat code name Responses fields. */
	    {"{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"a b\"}]}",
	     "tools[0].name", 400},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		api_limits lim = API_LIMITS_DEFAULT;
		api_request *req = NULL;
		api_error e;
		memset(&e, 0, sizeof e);
		ck_assert_int_eq(api_request_parse(API_RESPONSES, cases[i].body,
		                                   strlen(cases[i].body), &lim, &req, &e),
		                 cases[i].status);
		ck_assert_ptr_null(req);
		ck_assert_msg(strcmp(e.param, cases[i].param) == 0, "%s: param '%s', want '%s'",
		              cases[i].body, e.param, cases[i].param);
	}
	/* metadata's limits count characters (64 for keys, 512 for values),
	 * not bytes: 64 / 512 two-byte characters pass, one more does not. */
	for (int v = 0; v < 4; v++) {
		api_limits lim = API_LIMITS_DEFAULT;
		api_request *req = NULL;
		api_error e;
		mllm_buf b;
		int nk = v == 1 ? 65 : 64, nv = v == 3 ? 513 : 512;
		mllm_buf_init(&b, 1 << 16);
		const char *head = "{\"input\":\"x\",\"metadata\":{\"";
		ck_assert_int_eq(mllm_buf_append(&b, head, strlen(head)), 0);
		for (int i = 0; i < nk; i++)
			ck_assert_int_eq(mllm_buf_append(&b, "\xc3\xa9", 2), 0);
		ck_assert_int_eq(mllm_buf_append(&b, "\":\"", 3), 0);
		for (int i = 0; i < nv; i++)
			ck_assert_int_eq(
			    mllm_buf_append(&b, v == 2 ? "a" : "\xc3\xa9", v == 2 ? 1 : 2), 0);
		ck_assert_int_eq(mllm_buf_append(&b, "\"}}", 3), 0);
		ck_assert_int_eq(api_request_parse(API_RESPONSES, b.data, b.len, &lim, &req, &e),
		                 (v == 1 || v == 3) ? 400 : 0);
		api_request_free(req);
		mllm_buf_free(&b);
	}
}
END_TEST

/* Feeds the tokens of text (encoded as a continuation) as TOKEN events,
 * each with its own bytes as text, then DONE. */
static void generate(api_request *req, const char *text, mllm_finish finish, mllm_buf *out)
{
	mllm_encode_opts o = {.continuation = true};
	int32_t ids[256];
	size_t n = 0;
	char piece[64];
	mllm_event ev;
	int status;
	ck_assert_int_eq(mllm_tokenizer_encode_ex(tok, text, strlen(text), &o, ids, 256, &n), 0);
	ck_assert_int_eq(api_request_begin(req, out), 0);
	for (size_t i = 0; i < n; i++) {
		size_t len = mllm_tokenizer_token_bytes(tok, ids[i], piece, sizeof piece);
		memset(&ev, 0, sizeof ev);
		ev.kind = MLLM_EV_TOKEN;
		ev.token = ids[i];
		ev.text = piece;
		ev.text_len = len;
		ev.token_text = piece;
		ev.token_text_len = len;
		ev.token_out = ev.token_text;
		ev.token_out_len = ev.token_text_len;
		ck_assert_int_eq(api_request_feed(req, 0, &ev, out), 0);
	}
	memset(&ev, 0, sizeof ev);
	ev.kind = MLLM_EV_DONE;
	ev.finish = finish;
	ev.n_completion_tokens = (int32_t)n;
	ck_assert_int_eq(api_request_feed(req, 0, &ev, out), 0);
	ck_assert(api_request_done(req));
	ck_assert_int_eq(api_request_end(req, out, &status), 0);
	ck_assert_int_eq(status, 200);
}

START_TEST(test_continuation_reuses_ids)
{
	mllm_buf out;
	api_request *r1, *r2;
	api_resp_record *rec = NULL, *rec2 = NULL;
	json_t *body;
	size_t n1;
	int32_t *ids1;

	mllm_buf_init(&out, 1 << 20);
	r1 = prepared("{\"model\":\"tiny\",\"instructions\":\"Be kind.\",\"input\":\"Hi there\"}",
	              NULL);
	generate(r1, " Hello, friend!", MLLM_FINISH_STOP, &out);
	body = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq(json_string_value(json_object_get(body, "output_text")), "Hello, friend!");
	ck_assert_str_eq(json_string_value(json_object_get(body, "status")), "completed");
	json_decref(body);
	ck_assert_int_eq(api_request_record(r1, &rec), 0);
	ck_assert_ptr_nonnull(rec);
	ck_assert_str_eq(api_resp_record_id(rec), api_request_id(r1));
	ck_assert_uint_gt(api_resp_record_bytes(rec), out.len);
	n1 = r1->prompts[0].n_ids;
	ids1 = xmallocarray(n1 + 64, sizeof *ids1);
	memcpy(ids1, r1->prompts[0].ids, n1 * sizeof *ids1);

	/* The next turn: the stored ids (prompt + generated) come first,
	 * as they are; the whole decodes to the full transcript. */
	r2 = prepared("{\"model\":\"tiny\",\"instructions\":\"Be kind.\",\"input\":\"And then?\"}",
	              rec);
	ck_assert_int_eq(strncmp(api_request_id(r2) + 5, api_request_id(r1) + 5, 16), 0);
	ck_assert_str_ne(api_request_id(r2), api_request_id(r1));
	ck_assert_int_eq(r2->resp->reused, (int64_t)(n1 + r1->resp->n_gen));
	ck_assert_int_eq(memcmp(r2->prompts[0].ids, ids1, n1 * sizeof *ids1), 0);
	ck_assert_int_eq(
	    memcmp(r2->prompts[0].ids + n1, r1->resp->gen, r1->resp->n_gen * sizeof *ids1), 0);
	ck_assert_str_eq(prompt_text(r2), "System: Be kind.\nUser: Hi there\nAssistant: Hello, "
	                                  "friend!\nUser: And then?\nAssistant:");
	mllm_buf_reset(&out);
	generate(r2, " Then more.", MLLM_FINISH_LENGTH, &out);
	body = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(body, "status")), "incomplete");
	ck_assert_str_eq(json_string_value(json_object_get(
	                     json_object_get(body, "incomplete_details"), "reason")),
	                 "max_output_tokens");
	ck_assert_str_eq(json_string_value(json_object_get(body, "previous_response_id")),
	                 api_request_id(r1));
	json_decref(body);
	ck_assert_int_eq(api_request_record(r2, &rec2), 0);

	/* Other instructions change the prefix: a full encode of the same
	 * conversation (the history is kept, not the instructions). */
	api_request_free(r2);
	r2 = prepared("{\"model\":\"tiny\",\"instructions\":\"Be terse.\",\"input\":\"And then?\"}",
	              rec);
	ck_assert_int_eq(r2->resp->reused, 0);
	ck_assert_str_eq(prompt_text(r2), "System: Be terse.\nUser: Hi there\nAssistant: Hello, "
	                                  "friend!\nUser: And then?\nAssistant:");
	api_request_free(r2);
	/* Another model (another tokenizer, maybe): never its ids. */
	{
		api_model_info other = model;
		api_error e;
		other.id = "other";
		r2 = parse_ok("{\"instructions\":\"Be kind.\",\"input\":\"And then?\"}");
		api_request_set_previous(r2, rec);
		ck_assert_int_eq(api_request_prepare(r2, &other, &e), 0);
		ck_assert_int_eq(r2->resp->reused, 0);
		api_request_free(r2);
	}
	/* truncation auto drops the oldest messages until it fits. */
	{
		api_model_info small = model;
		api_error e;
		small.n_ctx = 40;
		r2 = parse_ok("{\"input\":\"And then?\",\"max_output_tokens\":8}");
		api_request_set_previous(r2, rec2);
		ck_assert_int_eq(api_request_prepare(r2, &small, &e), 400);
		ck_assert_str_eq(e.code, "context_length_exceeded");
		ck_assert_str_eq(e.param, "max_output_tokens");
		api_request_free(r2);
		r2 = parse_ok(
		    "{\"input\":\"And then?\",\"max_output_tokens\":8,\"truncation\":\"auto\"}");
		api_request_set_previous(r2, rec2);
		ck_assert_int_eq(api_request_prepare(r2, &small, &e), 0);
		ck_assert_uint_le(r2->prompts[0].n_ids + 8, 40);
		ck_assert_int_gt(r2->resp->n_drop, 0);
		ck_assert_str_eq(r2->msgs[r2->n_msgs - 1].content, "And then?");
		api_request_free(r2);
	}
	/* ... and until it fits the KV pool, where that is smaller than the
	 * context: 2 blocks of 16 tokens, with and without max_output_tokens. */
	for (int with_mt = 0; with_mt < 2; with_mt++) {
		api_model_info small = model;
		api_error e;
		small.kv_block_size = 16;
		small.kv_blocks = 2;
		r2 = parse_ok(with_mt ? "{\"input\":\"And then?\",\"max_output_tokens\":8}"
		                      : "{\"input\":\"And then?\"}");
		api_request_set_previous(r2, rec2);
		ck_assert_int_eq(api_request_prepare(r2, &small, &e), 400);
		ck_assert_str_eq(e.code, "kv_pool_exceeded");
		api_request_free(r2);
		r2 = parse_ok(with_mt ? "{\"input\":\"And then?\",\"max_output_tokens\":8,"
		                        "\"truncation\":\"auto\"}"
		                      : "{\"input\":\"And then?\",\"truncation\":\"auto\"}");
		api_request_set_previous(r2, rec2);
		ck_assert_int_eq(api_request_prepare(r2, &small, &e), 0);
		ck_assert_uint_le(r2->prompts[0].n_ids + (size_t)r2->max_tokens, 32);
		ck_assert_int_eq(r2->max_tokens, with_mt ? 8 : 32 - (int32_t)r2->prompts[0].n_ids);
		ck_assert_int_gt(r2->resp->n_drop, 0);
		ck_assert_str_eq(r2->msgs[r2->n_msgs - 1].content, "And then?");
		api_request_free(r2);
	}
	api_resp_record_unref(rec2);
	api_resp_record_unref(rec);
	api_request_free(r1);
	free(ids1);
	mllm_buf_free(&out);
}
END_TEST

/* A stored response whose output is a call, continued without its output:
 * a 400 that names the call (its id read before the stored conversation,
 * which holds it, is freed). */
/* Input longer than the context: OpenAI's words, naming the input. */
START_TEST(test_input_too_long)
{
	api_model_info small = model;
	api_request *req = parse_ok("{\"input\":\"one two three four five six seven eight nine "
	                            "ten eleven twelve\",\"max_output_tokens\":16}");
	api_error e;
	small.n_ctx = 8;
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(api_request_prepare(req, &small, &e), 400);
	ck_assert_str_eq(e.code, "context_length_exceeded");
	ck_assert_str_eq(e.param, "input");
	ck_assert_msg(strstr(e.message, "maximum context length is 8 tokens. However, your input "
	                                "resulted in") != NULL,
	              "%s", e.message);
	api_request_free(req);
}
END_TEST

START_TEST(test_stored_call_needs_output)
{
	mllm_buf out;
	api_resp_record *rec = NULL;
	api_request *r1, *r2;
	api_error e;
	const char *ok_body = "{\"input\":[{\"type\":\"function_call_output\",\"call_id\":"
	                      "\"%s\",\"output\":\"7\"}]}";
	char b[256], cid[96];
	json_t *j;
	mllm_buf_init(&out, 1 << 20);
	r1 = prepared("{\"input\":\"Hi\",\"tool_choice\":\"required\",\"tools\":[{\"type\":"
	              "\"function\",\"name\":\"f\",\"parameters\":{\"type\":\"object\","
	              "\"properties\":{\"x\":{\"type\":\"integer\"}},\"required\":[\"x\"]}}]}",
	              NULL);
	generate(r1, " {\"name\": \"f\", \"arguments\": {\"x\": 1}}", MLLM_FINISH_STOP, &out);
	j = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	snprintf(cid, sizeof cid, "%s",
	         json_string_value(
	             json_object_get(json_array_get(json_object_get(j, "output"), 0), "call_id")));
	json_decref(j);
	ck_assert_int_eq(api_request_record(r1, &rec), 0);
	r2 = parse_ok("{\"input\":\"and now?\"}");
	api_request_set_previous(r2, rec);
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(api_request_prepare(r2, &model, &e), 400);
	ck_assert_str_eq(e.param, "input");
	ck_assert_msg(strstr(e.message, cid) != NULL, "%s lacks %s", e.message, cid);
	api_request_free(r2);
	/* with it, fine */
	snprintf(b, sizeof b, ok_body, cid);
	r2 = parse_ok(b);
	api_request_set_previous(r2, rec);
	ck_assert_int_eq(api_request_prepare(r2, &model, &e), 0);
	api_request_free(r2);
	api_resp_record_unref(rec);
	api_request_free(r1);
	mllm_buf_free(&out);
}
END_TEST

START_TEST(test_truncation_message_count)
{
	api_limits lim = API_LIMITS_DEFAULT;
	mllm_buf out;
	api_request *r1 = prepared("{\"input\":\"one\"}", NULL), *r2;
	api_resp_record *rec = NULL;
	api_error e;
	const char *body = "{\"input\":[{\"role\":\"user\",\"content\":\"two\"},{\"role\":"
	                   "\"user\",\"content\":\"three\"}]%s}";
	char b[256];
	mllm_buf_init(&out, 1 << 20);
	generate(r1, " ok", MLLM_FINISH_STOP, &out);
	ck_assert_int_eq(api_request_record(r1, &rec), 0);
	/* 2 stored + 2 new messages, 3 allowed. */
	lim.max_messages = 3;
	for (int autotrunc = 0; autotrunc < 2; autotrunc++) {
		snprintf(b, sizeof b, body, autotrunc ? ",\"truncation\":\"auto\"" : "");
		ck_assert_int_eq(api_request_parse(API_RESPONSES, b, strlen(b), &lim, &r2, &e), 0);
		api_request_set_previous(r2, rec);
		if (!autotrunc) {
			ck_assert_int_eq(api_request_prepare(r2, &model, &e), 400);
			ck_assert_str_eq(e.param, "input");
		} else {
			ck_assert_int_eq(api_request_prepare(r2, &model, &e), 0);
			ck_assert_int_eq(r2->n_msgs, 3);
			ck_assert_str_eq(r2->msgs[0].content, "ok");
		}
		api_request_free(r2);
	}
	api_resp_record_unref(rec);
	api_request_free(r1);
	mllm_buf_free(&out);
}
END_TEST

/* The SSE events of out, in order: "type" strings and sequence numbers. */
static int events(const mllm_buf *out, char types[][64], int max)
{
	int n = 0;
	const char *p = out->data, *end = out->data + out->len;
	while (p && p < end && n < max) {
		const char *d = strstr(p, "data: ");
		const char *nl;
		json_t *j;
		if (!d)
			break;
		nl = strstr(d, "\n\n");
		ck_assert_ptr_nonnull(nl);
		j = json_loadb(d + 6, (size_t)(nl - d - 6), 0, NULL);
		ck_assert_ptr_nonnull(j);
		ck_assert_int_eq(json_integer_value(json_object_get(j, "sequence_number")), n);
		snprintf(types[n++], 64, "%s", json_string_value(json_object_get(j, "type")));
		json_decref(j);
		p = nl + 2;
	}
	return n;
}

START_TEST(test_stream_events)
{
	mllm_buf out;
	char t[64][64];
	int n;
	api_request *req = prepared("{\"input\":\"Hi\",\"stream\":true}", NULL);
	static const char *const want[] = {
	    "response.created",           "response.in_progress",
	    "response.output_item.added", "response.content_part.added",
	    "response.output_text.delta", "response.output_text.delta",
	};
	mllm_buf_init(&out, 1 << 20);
	ck_assert(api_request_stream(req));
	generate(req, " One two", MLLM_FINISH_STOP, &out);
	n = events(&out, t, 64);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		ck_assert_str_eq(t[i], want[i]);
	ck_assert_str_eq(t[n - 5], "response.output_text.delta");
	ck_assert_str_eq(t[n - 4], "response.output_text.done");
	ck_assert_str_eq(t[n - 3], "response.content_part.done");
	ck_assert_str_eq(t[n - 2], "response.output_item.done");
	ck_assert_str_eq(t[n - 1], "response.completed");
	/* The deltas concatenate to the text (the cue's space dropped). */
	ck_assert_ptr_nonnull(strstr(out.data, "\"text\":\"One two\""));
	ck_assert_ptr_null(strstr(out.data, "[DONE]"));
	api_request_free(req);

	/* A forced call streams as a function_call item. */
	mllm_buf_reset(&out);
	req = prepared("{\"input\":\"Hi\",\"stream\":true,\"tool_choice\":\"required\",\"tools\":["
	               "{\"type\":\"function\",\"name\":\"f\",\"parameters\":{\"type\":\"object\","
	               "\"properties\":{\"x\":{\"type\":\"integer\"}},\"required\":[\"x\"]}}]}",
	               NULL);
	generate(req, " {\"name\": \"f\", \"arguments\": {\"x\": 1}}", MLLM_FINISH_STOP, &out);
	n = events(&out, t, 64);
	ck_assert_str_eq(t[2], "response.output_item.added");
	ck_assert_str_eq(t[3], "response.function_call_arguments.delta");
	ck_assert_str_eq(t[4], "response.function_call_arguments.done");
	ck_assert_str_eq(t[5], "response.output_item.done");
	ck_assert_str_eq(t[6], "response.completed");
	ck_assert_int_eq(n, 7);
	ck_assert_ptr_nonnull(strstr(out.data, "\"arguments\":\"{\\\"x\\\": 1}\""));
	api_request_free(req);

	/* An engine error ends the stream with response.failed. */
	mllm_buf_reset(&out);
	req = prepared("{\"input\":\"Hi\",\"stream\":true}", NULL);
	{
		mllm_event ev = {.kind = MLLM_EV_ERROR, .err = MLLM_ENOMEM};
		int status;
		ck_assert_int_eq(api_request_begin(req, &out), 0);
		ck_assert_int_eq(api_request_feed(req, 0, &ev, &out), 0);
		ck_assert(api_request_done(req));
		ck_assert_int_eq(api_request_end(req, &out, &status), 0);
		ck_assert_int_eq(status, 200);
		n = events(&out, t, 64);
		ck_assert_str_eq(t[n - 1], "response.failed");
	}
	api_request_free(req);

	/* Cut mid-stream (the shutdown's abort): response.failed holds the
	 * message begun, incomplete, with what was streamed (the SDKs drop
	 * what they got for an empty output). */
	mllm_buf_reset(&out);
	req = prepared("{\"input\":\"Hi\",\"stream\":true}", NULL);
	{
		mllm_event ev;
		api_error e;
		const char *last;
		json_t *j, *outp;
		ck_assert_int_eq(api_request_begin(req, &out), 0);
		memset(&ev, 0, sizeof ev);
		ev.kind = MLLM_EV_TOKEN;
		ev.text = ev.token_text = ev.token_out = " Half";
		ev.text_len = ev.token_text_len = ev.token_out_len = 5;
		ck_assert_int_eq(api_request_feed(req, 0, &ev, &out), 0);
		api_error_set(&e, 503, NULL, "shutting_down", "The server is shutting down");
		ck_assert_int_eq(api_request_abort(req, &e, &out), 0);
		n = events(&out, t, 64);
		ck_assert_str_eq(t[n - 1], "response.failed");
		last = strrchr(out.data, '\n');
		while (last > out.data && strncmp(last, "\ndata: ", 7) != 0)
			last--;
		j = json_loads(last + 7, JSON_DISABLE_EOF_CHECK, NULL);
		ck_assert_ptr_nonnull(j);
		outp = json_object_get(json_object_get(j, "response"), "output");
		ck_assert_uint_eq(json_array_size(outp), 1);
		ck_assert_str_eq(
		    json_string_value(json_object_get(json_array_get(outp, 0), "status")),
		    "incomplete");
		ck_assert_str_eq(
		    json_string_value(json_object_get(
		        json_array_get(json_object_get(json_array_get(outp, 0), "content"), 0),
		        "text")),
		    "Half");
		json_decref(j);
	}
	api_request_free(req);
	mllm_buf_free(&out);
}
END_TEST

START_TEST(test_input_items_paging)
{
	mllm_buf out;
	api_resp_record *rec = NULL;
	api_error e;
	json_t *j;
	api_request *req = prepared("{\"input\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":"
	                            "\"user\",\"content\":\"b\",\"id\":\"msg_b\"},{\"role\":"
	                            "\"user\",\"content\":\"c\"}],\"store\":true}",
	                            NULL);
	mllm_buf_init(&out, 1 << 20);
	generate(req, " ok", MLLM_FINISH_STOP, &out);
	ck_assert_int_eq(api_request_record(req, &rec), 0);
	mllm_buf_reset(&out);
	/* Default: newest first, 20 at most. */
	ck_assert_int_eq(api_resp_record_render_items(rec, NULL, &out, &e), 200);
	j = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 3);
	ck_assert_str_eq(
	    json_string_value(json_object_get(
	        json_array_get(
	            json_object_get(json_array_get(json_object_get(j, "data"), 0), "content"), 0),
	        "text")),
	    "c");
	ck_assert(json_is_false(json_object_get(j, "has_more")));
	json_decref(j);
	mllm_buf_reset(&out);
	ck_assert_int_eq(
	    api_resp_record_render_items(rec, "order=asc&after=msg_b&limit=5", &out, &e), 200);
	j = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 1);
	json_decref(j);
	mllm_buf_reset(&out);
	ck_assert_int_eq(api_resp_record_render_items(rec, "order=asc&limit=1", &out, &e), 200);
	j = json_loadb(out.data, out.len, 0, NULL);
	ck_assert(json_is_true(json_object_get(j, "has_more")));
	json_decref(j);
	ck_assert_int_eq(api_resp_record_render_items(rec, "limit=0", &out, &e), 400);
	ck_assert_str_eq(e.param, "limit");
	ck_assert_int_eq(api_resp_record_render_items(rec, "order=up", &out, &e), 400);
	ck_assert_int_eq(api_resp_record_render_items(rec, "after=msg_zz", &out, &e), 400);
	api_resp_record_unref(rec);
	api_request_free(req);
	{
		/* A client's item id of any length is a cursor (one of 300
		 * bytes went through a 128-byte buffer and named no item). */
		char body[1024], q[512], id[301];
		memset(id, 'x', 300);
		id[300] = '\0';
		snprintf(body, sizeof body,
		         "{\"input\":[{\"role\":\"user\",\"content\":\"a\",\"id\":\"%s\"},"
		         "{\"role\":\"user\",\"content\":\"b\",\"id\":\"m2\"}],\"store\":true}",
		         id);
		req = prepared(body, NULL);
		mllm_buf_reset(&out);
		generate(req, " ok", MLLM_FINISH_STOP, &out);
		rec = NULL;
		ck_assert_int_eq(api_request_record(req, &rec), 0);
		snprintf(q, sizeof q, "order=asc&after=%s", id);
		mllm_buf_reset(&out);
		ck_assert_int_eq(api_resp_record_render_items(rec, q, &out, &e), 200);
		j = json_loadb(out.data, out.len, 0, NULL);
		ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 1);
		ck_assert_str_eq(json_string_value(json_object_get(
		                     json_array_get(json_object_get(j, "data"), 0), "id")),
		                 "m2");
		json_decref(j);
	}
	/* store false: nothing to record. */
	api_resp_record_unref(rec);
	api_request_free(req);
	req = prepared("{\"input\":\"x\",\"store\":false}", NULL);
	mllm_buf_reset(&out);
	generate(req, " ok", MLLM_FINISH_STOP, &out);
	rec = NULL;
	ck_assert_int_eq(api_request_record(req, &rec), 0);
	ck_assert_ptr_null(rec);
	api_request_free(req);
	mllm_buf_free(&out);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("responses");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_items_to_messages);
	tcase_add_test(tc, test_validation);
	tcase_add_test(tc, test_prepare_errors);
	tcase_add_test(tc, test_continuation_reuses_ids);
	tcase_add_test(tc, test_input_too_long);
	tcase_add_test(tc, test_stored_call_needs_output);
	tcase_add_test(tc, test_truncation_message_count);
	tcase_add_test(tc, test_stream_events);
	tcase_add_test(tc, test_input_items_paging);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
