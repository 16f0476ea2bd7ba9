/*
 * test_fuzz.c — mutation fuzzing of the whole api/ path: valid completion,
 * chat and tokenize bodies are mutated (byte flips, splices of JSON tokens,
 * huge numbers, truncation) and pushed through parse → prepare → submit →
 * fake events → end. Whatever comes in, the status is one of the documented
 * ones, every error renders as the OpenAI error object, and every response
 * is valid JSON or valid SSE. Ten thousand cases by default; MLLM_LONG=1
 * (make fuzz) runs a million.
 */
#include "harness.h"

#include <jansson.h>

#include "api_fixture.h"

/* api_request_end's status, or its error code: what the assertions below
 * were written against. */
static int end_status(api_request *req, mllm_buf *out)
{
	int status = 0;
	int rc = api_request_end(req, out, &status);
	return rc < 0 ? rc : status;
}

static void setup(void)
{
	/* A small context so length errors are reached too. */
	api_fixture_setup(96, 1);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return n ? (uint32_t)(rng % n) : 0;
}

static const char *const seeds[] = {
    "{\"model\":\"tiny\",\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"temperature\":0.7,"
    "\"top_p\":0.9,\"n\":2,\"stop\":[\"\\n\",\"END\"],\"logprobs\":2,\"echo\":true,"
    "\"logit_bias\":{\"13\":-100},\"seed\":4,\"stream\":true,"
    "\"stream_options\":{\"include_usage\":true}}",
    "{\"prompt\":[[1,2,3],[4,5]],\"max_tokens\":3,\"presence_penalty\":1,\"frequency_penalty\":-1}",
    "{\"prompt\":[\"a\",\"b\",\"c\"],\"best_of\":1,\"suffix\":null,\"user\":\"u\"}",
    "{\"model\":\"tiny\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]},"
    "{\"role\":\"assistant\",\"content\":null},{\"role\":\"user\",\"content\":\"More\"}],"
    "\"max_completion_tokens\":5,\"logprobs\":true,\"top_logprobs\":3,\"n\":2}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true,\"max_tokens\":4}",
};

static const char *const splices[] = {
    "null",
    "true",
    "-1",
    "1e308",
    "1e999",
    "99999999999999999999",
    "-0",
    "0.5",
    "\"\"",
    "[]",
    "{}",
    "[[]]",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\xff",
    "\xc3",
    "\"\xe2\x82\"",
    ",",
    ":",
    "{\"a\":",
    "]",
    "}",
    "\"prompt\"",
    "\"messages\"",
    "\"n\"",
    "\"stop\"",
    "[1,2,3]",
    "\"\\n\"",
    "32000",
    "2147483648",
    "-9223372036854775808",
};

static void mutate(mllm_buf *b)
{
	int n = 1 + (int)rnd(4);
	for (int k = 0; k < n && b->len > 0; k++) {
		size_t at = rnd((uint32_t)b->len);
		switch (rnd(5)) {
		case 0: /* flip a byte */
			b->data[at] = (char)(b->data[at] ^ (1 << rnd(8)));
			break;
		case 1: /* truncate */
			b->len = at;
			b->data[at] = '\0';
			break;
		case 2: { /* splice a token in */
			const char *sp = splices[rnd(sizeof splices / sizeof splices[0])];
			mllm_buf t;
			mllm_buf_init(&t, 1 << 20);
			ck_assert_int_eq(mllm_buf_append(&t, b->data, at), 0);
			ck_assert_int_eq(mllm_buf_append(&t, sp, strlen(sp)), 0);
			ck_assert_int_eq(mllm_buf_append(&t, b->data + at, b->len - at), 0);
			mllm_buf_free(b);
			*b = t;
			break;
		}
		case 3: /* delete a run */
		{
			size_t len = rnd(8) + 1;
			if (at + len > b->len)
				len = b->len - at;
			memmove(b->data + at, b->data + at + len, b->len - at - len);
			b->len -= len;
			b->data[b->len] = '\0';
			break;
		}
		default: /* duplicate a run */
		{
			size_t len = rnd(16) + 1;
			mllm_buf t;
			if (at + len > b->len)
				len = b->len - at;
			mllm_buf_init(&t, 1 << 20);
			ck_assert_int_eq(mllm_buf_append(&t, b->data, at + len), 0);
			ck_assert_int_eq(mllm_buf_append(&t, b->data + at, b->len - at), 0);
			mllm_buf_free(b);
			*b = t;
			break;
		}
		}
	}
}

static void check_error(const api_error *e)
{
	mllm_buf b;
	json_t *j;
	mllm_buf_init(&b, 1 << 16);
	ck_assert(e->status == 400 || e->status == 404 || e->status == 413 || e->status == 503);
	ck_assert_int_eq(api_error_render(e, &b), 0);
	j = json_loadb(b.data, b.len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_uint_eq(json_object_size(json_object_get(j, "error")), 4);
	json_decref(j);
	mllm_buf_free(&b);
}

static void check_sse(const mllm_buf *b)
{
	const char *p = b->data ? b->data : "";
	int done = 0;
	while (*p) {
		const char *sep = strstr(p, "\n\n");
		ck_assert_ptr_nonnull(sep);
		ck_assert(strncmp(p, "data: ", 6) == 0);
		if (strncmp(p + 6, "[DONE]", 6) == 0) {
			done++;
		} else {
			json_error_t je;
			json_t *j = json_loadb(p + 6, (size_t)(sep - p - 6), JSON_ALLOW_NUL, &je);
			ck_assert_msg(j != NULL, "bad SSE event (%s): %.*s", je.text,
			              (int)(sep - p), p);
			json_decref(j);
		}
		p = sep + 2;
	}
	ck_assert_int_eq(done, 1);
}

/* Fake events with random texts (including broken UTF-8) for every choice. */
static void run(api_request *req)
{
	mllm_buf out;
	static const char *const texts[] = {"", "a", " b", "\xe2\x80", "\x94", "\"\\\n", "\xff"};
	int32_t np = api_request_n_submits(req);
	int rc;
	mllm_buf_init(&out, 64u << 20);
	ck_assert_int_eq(api_request_begin(req, &out), 0);
	for (int32_t p = 0; p < np && !api_request_done(req); p++) {
		mllm_submit s;
		mllm_event ev;
		api_request_submit(req, p, &s);
		ck_assert(s.n_prompt > 0);
		ck_assert(s.n_prompt + (size_t)s.sampling.max_tokens <= (size_t)model.n_ctx);
		for (int32_t c = 0; c < s.n_choices; c++) {
			int n = (int)rnd(4);
			for (int t = 0; t < n; t++) {
				const char *x = texts[rnd(sizeof texts / sizeof texts[0])];
				memset(&ev, 0, sizeof ev);
				ev.kind = MLLM_EV_TOKEN;
				ev.choice = c;
				ev.token = (int32_t)rnd(32000);
				ev.text = x;
				ev.text_len = strlen(x);
				ev.token_text = x;
				ev.token_text_len = strlen(x);
				ev.token_out = ev.token_text;
				ev.token_out_len = ev.token_text_len;
				ev.has_logprob = true;
				ev.logprob = -(float)rnd(100) / 10.0f;
				ev.n_top = (int32_t)rnd(3);
				for (int k = 0; k < ev.n_top; k++)
					ev.top[k] = (mllm_top_logprob){(int32_t)rnd(32000), -1.0f};
				ck_assert_int_eq(api_request_feed(req, p, &ev, &out), 0);
			}
			memset(&ev, 0, sizeof ev);
			ev.kind = rnd(50) == 0 ? MLLM_EV_ERROR : MLLM_EV_DONE;
			ev.err = MLLM_EOVERLOADED;
			ev.choice = c;
			ev.finish = rnd(2) ? MLLM_FINISH_STOP : MLLM_FINISH_LENGTH;
			ev.n_completion_tokens = n;
			ck_assert_int_eq(api_request_feed(req, p, &ev, &out), 0);
		}
	}
	ck_assert(api_request_done(req));
	rc = end_status(req, &out);
	if (api_request_stream(req)) {
		ck_assert_int_eq(rc, 200);
		check_sse(&out);
	} else {
		/* Token strings may hold "\u0000" (the <0x00> piece). */
		json_error_t je;
		json_t *j = json_loadb(out.data, out.len, JSON_ALLOW_NUL, &je);
		ck_assert(rc == 200 || rc == 503);
		ck_assert_msg(j != NULL, "bad body (%s): %s", je.text, out.data);
		ck_assert_ptr_nonnull(json_object_get(j, rc == 200 ? "choices" : "error"));
		json_decref(j);
	}
	mllm_buf_free(&out);
}

static const api_model_info *lookup(void *ud, const char *id)
{
	(void)ud;
	return !id || strcmp(id, "tiny") == 0 ? &model : NULL;
}

START_TEST(test_fuzz_requests)
{
	long iters = mllm_test_long() ? 1000000 : 10000;
	api_limits lim = API_LIMITS_DEFAULT;
	long n_ok = 0;
	lim.max_body_bytes = 4096;
	for (long it = 0; it < iters; it++) {
		size_t si = rnd(sizeof seeds / sizeof seeds[0]);
		api_kind kind = si >= 3 ? API_CHAT : API_COMPLETION;
		api_request *req = NULL;
		api_error e;
		mllm_buf b;
		int st;
		mllm_buf_init(&b, 1 << 20);
		ck_assert_int_eq(mllm_buf_append(&b, seeds[si], strlen(seeds[si])), 0);
		if (it % 10 != 0)
			mutate(&b);
		st = api_request_parse(kind, b.data, b.len, &lim, &req, &e);
		if (st != 0) {
			ck_assert_ptr_null(req);
			ck_assert(st == 400 || st == 413);
			check_error(&e);
		} else {
			const char *m = api_request_model(req);
			const api_model_info *mi = lookup(NULL, m);
			if (!mi) {
				ck_assert_int_eq(api_error_model_not_found(&e, m), 404);
				check_error(&e);
			} else {
				st = api_request_prepare(req, mi, &e);
				if (st != 0) {
					check_error(&e);
				} else {
					run(req);
					n_ok++;
				}
			}
			api_request_free(req);
		}
		/* The same bytes as /tokenize. */
		{
			mllm_buf out;
			mllm_buf_init(&out, 1 << 20);
			st = api_handle_tokenize(b.data, b.len, &lim, lookup, NULL, &out, &e);
			if (st != 200)
				check_error(&e);
			mllm_buf_free(&out);
		}
		mllm_buf_free(&b);
	}
	/* The unmutated seeds (every tenth case) always get through. */
	ck_assert_int_ge(n_ok, iters / 10);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("api_fuzz");
	TCase *tc = tcase_create("fuzz");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, mllm_test_long() ? 3600 : 60);
	tcase_add_test(tc, test_fuzz_requests);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
