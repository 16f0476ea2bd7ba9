/*
 * test_tokenize.c — api/tokenize.c: POST /tokenize and /detokenize bodies
 * against the fixture tokenizer's golden cases (ids and round-trip text),
 * the model lookup (404), and bad bodies (400/413).
 */
#include "harness.h"

#include <jansson.h>

#include "api_fixture.h"

static void setup(void)
{
	api_fixture_setup(2048, 1);
}

/* A second model with the Llama-3 byte-level BPE tokenizer (MobileLLM-R1). */
static api_model_info r1;

static const api_model_info *lookup(void *ud, const char *id)
{
	(void)ud;
	if (!id || strcmp(id, "tiny") == 0)
		return &model;
	if (r1.tok && strcmp(id, "r1") == 0)
		return &r1;
	return NULL;
}

static int call(bool detok, const char *body, size_t len, json_t **res, api_error *e)
{
	api_limits lim = API_LIMITS_DEFAULT;
	mllm_buf out;
	int st;
	mllm_buf_init(&out, 1 << 22);
	st = detok ? api_handle_detokenize(body, len, &lim, lookup, NULL, &out, e)
	           : api_handle_tokenize(body, len, &lim, lookup, NULL, &out, e);
	*res = NULL;
	if (st == 200) {
		*res = json_loadb(out.data, out.len, 0, NULL);
		ck_assert_ptr_nonnull(*res);
	} else {
		ck_assert_uint_eq(out.len, 0);
	}
	mllm_buf_free(&out);
	return st;
}

START_TEST(test_golden_cases)
{
	char line[1 << 16];
	FILE *f;
	int n = 0;
	f = api_fixture_cases();
	/* The first 200 cases: ids without BOS, and the decoded text. */
	while (n < 200 && fgets(line, sizeof line, f)) {
		json_t *c = json_loads(line, JSON_ALLOW_NUL, NULL), *req, *res;
		json_t *ids = json_object_get(c, "ids");
		api_error e;
		char *body;
		ck_assert_ptr_nonnull(c);
		n++;
		if (memchr(json_string_value(json_object_get(c, "text")), '\0',
		           json_string_length(json_object_get(c, "text")))) {
			/* A NUL cannot reach us: JSON bodies with \u0000 are refused. */
			json_decref(c);
			continue;
		}
		req = json_pack("{s:s,s:O,s:b}", "model", "tiny", "prompt",
		                json_object_get(c, "text"), "add_special_tokens", 0);
		body = json_dumps(req, JSON_COMPACT);
		ck_assert_int_eq(call(false, body, strlen(body), &res, &e), 200);
		ck_assert(json_equal(json_object_get(res, "tokens"), ids));
		ck_assert_int_eq(json_integer_value(json_object_get(res, "count")),
		                 (json_int_t)json_array_size(ids));
		ck_assert_int_eq(json_integer_value(json_object_get(res, "max_model_len")), 2048);
		json_decref(res);
		free(body);
		json_decref(req);

		req = json_pack("{s:O}", "tokens", ids);
		body = json_dumps(req, JSON_COMPACT);
		ck_assert_int_eq(call(true, body, strlen(body), &res, &e), 200);
		ck_assert_str_eq(json_string_value(json_object_get(res, "prompt")),
		                 json_string_value(json_object_get(c, "ids_roundtrip")));
		json_decref(res);
		free(body);
		json_decref(req);
		json_decref(c);
	}
	fclose(f);
	ck_assert_int_eq(n, 200);
}
END_TEST

START_TEST(test_bos_and_messages)
{
	json_t *res;
	api_error e;
	int32_t want[64];
	size_t n_want;
	const char *b = "{\"prompt\":\"Hello\"}";
	const char *text = "User: Hi\nAssistant:";
	/* Default: BOS as the tokenizer says; the default model when absent. */
	ck_assert_int_eq(call(false, b, strlen(b), &res, &e), 200);
	ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(res, "tokens"), 0)),
	                 mllm_tokenizer_bos(tok));
	json_decref(res);
	/* Messages go through the chat template. */
	b = "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}";
	ck_assert_int_eq(call(false, b, strlen(b), &res, &e), 200);
	ck_assert_int_eq(mllm_tokenizer_encode(tok, text, strlen(text), true, want, 64, &n_want),
	                 0);
	ck_assert_uint_eq(json_array_size(json_object_get(res, "tokens")), n_want);
	for (size_t i = 0; i < n_want; i++)
		ck_assert_int_eq(
		    json_integer_value(json_array_get(json_object_get(res, "tokens"), i)), want[i]);
	json_decref(res);
}
END_TEST

START_TEST(test_errors)
{
	static const struct {
		bool detok;
		const char *body;
		int status;
		const char *param;
	} cases[] = {
	    {false, "{\"model\":\"nope\",\"prompt\":\"x\"}", 404, "model"},
	    {true, "{\"model\":\"nope\",\"tokens\":[1]}", 404, "model"},
	    {false, "{\"model\":5,\"prompt\":\"x\"}", 400, "model"},
	    {false, "{}", 400, "prompt"},
	    {false, "{\"prompt\":5}", 400, "prompt"},
	    {false, "{\"prompt\":\"x\",\"add_special_tokens\":1}", 400, "add_special_tokens"},
	    {false, "{\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}", 400,
	     "messages[0].role"},
	    {false, "not json", 400, ""},
	    {false, "{\"prompt\":\"\xff\"}", 400, ""},
	    {true, "{}", 400, "tokens"},
	    {true, "{\"tokens\":\"1 2\"}", 400, "tokens"},
	    {true, "{\"tokens\":[1,-1]}", 400, "tokens"},
	    {true, "{\"tokens\":[1,32000]}", 400, "tokens"},
	    {true, "{\"tokens\":[1,1.5]}", 400, "tokens"},
	    {true, "{\"tokens\":[1,32000.0]}", 400, "tokens"},
	    {true, "{\"tokens\":[1,450.0]}", 200, ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *res;
		api_error e;
		int st = call(cases[i].detok, cases[i].body, strlen(cases[i].body), &res, &e);
		ck_assert_msg(st == cases[i].status, "%s: %d", cases[i].body, st);
		if (st == 200)
			json_decref(res);
		else
			ck_assert_str_eq(e.param, cases[i].param);
	}
	{
		/* Body limit. */
		api_limits lim = API_LIMITS_DEFAULT;
		mllm_buf out;
		api_error e;
		const char *b = "{\"prompt\":\"0123456789\"}";
		lim.max_body_bytes = 10;
		mllm_buf_init(&out, 1024);
		ck_assert_int_eq(api_handle_tokenize(b, strlen(b), &lim, lookup, NULL, &out, &e),
		                 413);
		mllm_buf_free(&out);
	}
}
END_TEST

static bool has_id(const json_t *arr, json_int_t id)
{
	for (size_t i = 0; i < json_array_size(arr); i++)
		if (json_integer_value(json_array_get(arr, i)) == id)
			return true;
	return false;
}

/* Special-token text is the special token in a prompt, plain text in chat
 * messages (a user cannot forge a turn boundary). */
START_TEST(test_special_text)
{
	char path[512], err[256];
	mllm_tokenizer *t = NULL;
	json_t *res, *want;
	api_error e;
	const char *prompt = "{\"model\":\"r1\",\"prompt\":\"Hi<|eot_id|>\"}";
	const char *chat = "{\"model\":\"r1\",\"messages\":[{\"role\":\"user\","
	                   "\"content\":\"Hi<|eot_id|>\"}]}";

	mllm_test_path(path, sizeof path, "tokenizer/llama3/tokenizer.json");
	MLLM_REQUIRE_FIXTURE(path);
	ck_assert_int_eq(mllm_tokenizer_load(path, &t, err, sizeof err), 0);
	r1 = (api_model_info){.id = "r1", .tok = t, .n_ctx = 2048, .created = 1};
	ck_assert_int_eq(call(false, prompt, strlen(prompt), &res, &e), 200);
	want = json_pack("[i,i,i]", 128000, 13347, 128009);
	ck_assert(json_equal(json_object_get(res, "tokens"), want));
	json_decref(want);
	json_decref(res);
	ck_assert_int_eq(call(false, chat, strlen(chat), &res, &e), 200);
	ck_assert(!has_id(json_object_get(res, "tokens"), 128009));
	/* "<|eot_id|>" as text is several pieces. */
	ck_assert_uint_gt(json_array_size(json_object_get(res, "tokens")), 6);
	json_decref(res);
	r1.tok = NULL;
	mllm_tokenizer_free(t);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("api_tokenize");
	TCase *tc = tcase_create("tokenize");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_golden_cases);
	tcase_add_test(tc, test_bos_and_messages);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_special_text);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
