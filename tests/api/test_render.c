/*
 * test_render.c — api/render.c: fake engine event sequences become the
 * right OpenAI bytes: SSE chunks (completions and chat, role/content/finish
 * and usage chunks, [DONE]), non-streamed bodies with prompt-major choice
 * indexes and usage, both logprobs shapes (token strings checked against the
 * fixture tokenizer's golden pieces), errors mid-stream, and /v1/models.
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
	api_fixture_setup(2048, 7);
}

static api_request *make(api_kind kind, const char *body)
{
	api_limits lim = API_LIMITS_DEFAULT;
	api_request *req;
	api_error e;
	int rc = api_request_parse(kind, body, strlen(body), &lim, &req, &e);
	ck_assert_msg(rc == 0, "%s: %s", body, e.message);
	rc = api_request_prepare(req, &model, &e);
	ck_assert_msg(rc == 0, "%s: %s", body, e.message);
	api_request_set_id(req, kind == API_CHAT ? "chatcmpl-t" : "cmpl-t", 123);
	return req;
}

static mllm_event ev_token(int choice, int32_t id, const char *text, const char *tt, float lp)
{
	mllm_event ev;
	memset(&ev, 0, sizeof ev);
	ev.kind = MLLM_EV_TOKEN;
	ev.choice = choice;
	ev.token = id;
	ev.text = text;
	ev.text_len = strlen(text);
	ev.token_text = tt;
	ev.token_text_len = strlen(tt);
	ev.token_out = ev.token_text;
	ev.token_out_len = ev.token_text_len;
	ev.has_logprob = true;
	ev.logprob = lp;
	return ev;
}

static mllm_event ev_done(int choice, mllm_finish f, int32_t n_prompt, int32_t n_cached,
                          int32_t n_completion)
{
	mllm_event ev;
	memset(&ev, 0, sizeof ev);
	ev.kind = MLLM_EV_DONE;
	ev.choice = choice;
	ev.text = "";
	ev.finish = f;
	ev.n_prompt_tokens = n_prompt;
	ev.n_cached_tokens = n_cached;
	ev.n_completion_tokens = n_completion;
	return ev;
}

static void feed(api_request *req, int32_t p, mllm_event ev, mllm_buf *out)
{
	ck_assert_int_eq(api_request_feed(req, p, &ev, out), 0);
}

/* The id of text that the fixture tokenizer encodes as one token (with
 * SentencePiece's leading space: "Once" is " Once"). */
static int32_t one_id(const char *text)
{
	int32_t ids[8];
	size_t n;
	ck_assert_int_eq(mllm_tokenizer_encode(tok, text, strlen(text), false, ids, 8, &n), 0);
	ck_assert_uint_eq(n, 1);
	return ids[0];
}

/* Splits SSE bytes into the JSON of each data event ([DONE] → NULL last). */
static int sse_split(const mllm_buf *b, json_t **evs, int cap, bool *saw_done)
{
	int n = 0;
	const char *p = b->data ? b->data : "";
	const char *end = p + b->len;
	*saw_done = false;
	while (p < end) {
		const char *sep = strstr(p, "\n\n");
		ck_assert_ptr_nonnull(sep);
		ck_assert(strncmp(p, "data: ", 6) == 0);
		ck_assert(!*saw_done); /* nothing after [DONE] */
		if (strncmp(p + 6, "[DONE]", 6) == 0 && sep == p + 12) {
			*saw_done = true;
		} else {
			json_error_t je;
			ck_assert_int_lt(n, cap);
			ck_assert_ptr_null(memchr(p, '\n', (size_t)(sep - p)));
			evs[n] = json_loadb(p + 6, (size_t)(sep - p - 6), 0, &je);
			ck_assert_msg(evs[n] != NULL, "bad chunk: %s", je.text);
			n++;
		}
		p = sep + 2;
	}
	return n;
}

START_TEST(test_stream_completion_bytes)
{
	api_request *req =
	    make(API_COMPLETION, "{\"prompt\":[1,2],\"stream\":true,\"max_tokens\":3}");
	mllm_buf out;
	mllm_buf_init(&out, 1 << 20);
	ck_assert(api_request_stream(req));
	ck_assert_int_eq(api_request_begin(req, &out), 0);
	ck_assert_uint_eq(out.len, 0);
	feed(req, 0, ev_token(0, 10, "Hel", "Hel", -0.5f), &out);
	ck_assert_str_eq(out.data,
	                 "data: {\"id\":\"cmpl-t\",\"object\":\"text_completion\","
	                 "\"created\":123,\"model\":\"tiny\",\"choices\":[{\"index\":0,"
	                 "\"text\":\"Hel\",\"logprobs\":null,\"finish_reason\":null}]}\n\n");
	mllm_buf_reset(&out);
	/* Held-back text without logprobs: no chunk. */
	feed(req, 0, ev_token(0, 11, "", "l", -0.5f), &out);
	ck_assert_uint_eq(out.len, 0);
	ck_assert(!api_request_done(req));
	{
		mllm_event d = ev_done(0, MLLM_FINISH_LENGTH, 2, 0, 3);
		d.text = "lo\"";
		d.text_len = 3;
		feed(req, 0, d, &out);
	}
	ck_assert_str_eq(out.data,
	                 "data: {\"id\":\"cmpl-t\",\"object\":\"text_completion\",\"created\":123,"
	                 "\"model\":\"tiny\",\"choices\":[{\"index\":0,\"text\":\"lo\\\"\","
	                 "\"logprobs\":null,\"finish_reason\":null}]}\n\n"
	                 "data: {\"id\":\"cmpl-t\",\"object\":\"text_completion\",\"created\":123,"
	                 "\"model\":\"tiny\",\"choices\":[{\"index\":0,\"text\":\"\","
	                 "\"logprobs\":null,\"finish_reason\":\"length\"}]}\n\n");
	ck_assert(api_request_done(req));
	mllm_buf_reset(&out);
	ck_assert_int_eq(end_status(req, &out), 200);
	ck_assert_str_eq(out.data, "data: [DONE]\n\n");
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

START_TEST(test_stream_chat)
{
	api_request *req = make(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
	                                  "\"n\":2,\"stream\":true,"
	                                  "\"stream_options\":{\"include_usage\":true}}");
	mllm_buf out;
	json_t *evs[32];
	bool done;
	int n;
	char content[2][64] = {"", ""};
	int n_role[2] = {0, 0}, n_finish[2] = {0, 0};
	mllm_submit s;
	api_request_submit(req, 0, &s);
	mllm_buf_init(&out, 1 << 20);
	ck_assert_int_eq(api_request_begin(req, &out), 0);
	ck_assert_str_eq(out.data,
	                 "data: {\"id\":\"chatcmpl-t\",\"object\":\"chat.completion.chunk\","
	                 "\"created\":123,\"model\":\"tiny\",\"choices\":[{\"index\":0,\"delta\":"
	                 "{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
	                 "\"finish_reason\":null}],\"usage\":null}\n\n"
	                 "data: {\"id\":\"chatcmpl-t\",\"object\":\"chat.completion.chunk\","
	                 "\"created\":123,\"model\":\"tiny\",\"choices\":[{\"index\":1,\"delta\":"
	                 "{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
	                 "\"finish_reason\":null}],\"usage\":null}\n\n");
	feed(req, 0, ev_token(1, 5, " Hel", " Hel", -1), &out);
	feed(req, 0, ev_token(0, 6, " Yes", " Yes", -1), &out);
	feed(req, 0, ev_token(1, 7, "", "\xe2\x80", -1), &out); /* held back */
	feed(req, 0, ev_token(1, 8, "\xe2\x80\x94lo", "\x94lo", -1), &out);
	feed(req, 0, ev_done(1, MLLM_FINISH_STOP, (int32_t)s.n_prompt, 2, 3), &out);
	feed(req, 0, ev_done(0, MLLM_FINISH_LENGTH, (int32_t)s.n_prompt, 2, 1), &out);
	ck_assert(api_request_done(req));
	ck_assert_int_eq(end_status(req, &out), 200);
	n = sse_split(&out, evs, 32, &done);
	ck_assert(done);
	ck_assert_int_eq(n, 2 + 3 + 2 + 1);
	for (int i = 0; i < n; i++) {
		json_t *ch = json_object_get(evs[i], "choices");
		ck_assert_str_eq(json_string_value(json_object_get(evs[i], "object")),
		                 "chat.completion.chunk");
		ck_assert_str_eq(json_string_value(json_object_get(evs[i], "id")), "chatcmpl-t");
		if (i == n - 1) {
			/* The usage chunk: no choices, totals. */
			json_t *u = json_object_get(evs[i], "usage");
			ck_assert_uint_eq(json_array_size(ch), 0);
			ck_assert_int_eq(json_integer_value(json_object_get(u, "prompt_tokens")),
			                 (json_int_t)s.n_prompt);
			ck_assert_int_eq(
			    json_integer_value(json_object_get(u, "completion_tokens")), 4);
			ck_assert_int_eq(json_integer_value(json_object_get(u, "total_tokens")),
			                 (json_int_t)s.n_prompt + 4);
			ck_assert_int_eq(
			    json_integer_value(json_object_get(
			        json_object_get(u, "prompt_tokens_details"), "cached_tokens")),
			    2);
			continue;
		}
		ck_assert(json_is_null(json_object_get(evs[i], "usage")));
		ck_assert_uint_eq(json_array_size(ch), 1);
		json_t *c = json_array_get(ch, 0);
		int idx = (int)json_integer_value(json_object_get(c, "index"));
		json_t *delta = json_object_get(c, "delta");
		json_t *fr = json_object_get(c, "finish_reason");
		ck_assert(idx == 0 || idx == 1);
		if (json_object_get(delta, "role"))
			n_role[idx]++;
		if (json_is_string(json_object_get(delta, "content")))
			strcat(content[idx], json_string_value(json_object_get(delta, "content")));
		if (!json_is_null(fr)) {
			ck_assert_uint_eq(json_object_size(delta), 0);
			ck_assert_str_eq(json_string_value(fr), idx ? "stop" : "length");
			n_finish[idx]++;
		}
	}
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(n_role[i], 1);
		ck_assert_int_eq(n_finish[i], 1);
	}
	/* The one space after the "Assistant:" cue is dropped. */
	ck_assert_str_eq(content[0], "Yes");
	ck_assert_str_eq(content[1], "Hel\xe2\x80\x94lo");
	for (int i = 0; i < n; i++)
		json_decref(evs[i]);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

START_TEST(test_nonstream_prompt_major)
{
	api_request *req = make(API_COMPLETION, "{\"prompt\":[[1,2],[1,3,4]],\"n\":2}");
	mllm_buf out;
	json_t *j, *choices, *u;
	api_usage usage;
	static const char *texts[4] = {"p0c0", "p0c1", "p1c0", "p1c1"};
	mllm_buf_init(&out, 1 << 20);
	ck_assert_int_eq(api_request_begin(req, &out), 0);
	/* Interleaved across prompts and choices. */
	feed(req, 1, ev_token(1, 9, "p1", "p1", -1), &out);
	feed(req, 0, ev_token(0, 9, "p0", "p0", -1), &out);
	feed(req, 1, ev_token(0, 9, "p1c0", "p1c0", -1), &out);
	feed(req, 0, ev_token(1, 9, "p0c1", "p0c1", -1), &out);
	feed(req, 1, ev_token(1, 9, "c1", "c1", -1), &out);
	feed(req, 0, ev_token(0, 9, "c0", "c0", -1), &out);
	ck_assert_uint_eq(out.len, 0);
	feed(req, 1, ev_done(1, MLLM_FINISH_STOP, 3, 1, 2), &out);
	feed(req, 0, ev_done(0, MLLM_FINISH_LENGTH, 2, 0, 2), &out);
	feed(req, 1, ev_done(0, MLLM_FINISH_LENGTH, 3, 1, 1), &out);
	ck_assert(!api_request_done(req));
	feed(req, 0, ev_done(1, MLLM_FINISH_STOP, 2, 0, 1), &out);
	ck_assert(api_request_done(req));
	/* A second DONE for a finished choice is a caller bug. */
	{
		mllm_event d = ev_done(1, MLLM_FINISH_STOP, 2, 0, 1);
		ck_assert_int_eq(api_request_feed(req, 0, &d, &out), MLLM_EINVAL);
		ck_assert_int_eq(api_request_feed(req, 2, &d, &out), MLLM_EINVAL);
		d.choice = 2;
		ck_assert_int_eq(api_request_feed(req, 0, &d, &out), MLLM_EINVAL);
	}
	api_request_usage(req, &usage);
	ck_assert_int_eq(usage.prompt_tokens, 5);
	ck_assert_int_eq(usage.completion_tokens, 6);
	ck_assert_int_eq(usage.cached_tokens, 1);
	ck_assert_int_eq(end_status(req, &out), 200);
	j = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "text_completion");
	ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "cmpl-t");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "created")), 123);
	ck_assert_str_eq(json_string_value(json_object_get(j, "model")), "tiny");
	choices = json_object_get(j, "choices");
	ck_assert_uint_eq(json_array_size(choices), 4);
	for (int i = 0; i < 4; i++) {
		json_t *c = json_array_get(choices, (size_t)i);
		ck_assert_int_eq(json_integer_value(json_object_get(c, "index")), i);
		ck_assert_str_eq(json_string_value(json_object_get(c, "text")), texts[i]);
		ck_assert(json_is_null(json_object_get(c, "logprobs")));
		ck_assert_str_eq(json_string_value(json_object_get(c, "finish_reason")),
		                 i == 0 || i == 2 ? "length" : "stop");
	}
	u = json_object_get(j, "usage");
	ck_assert_int_eq(json_integer_value(json_object_get(u, "prompt_tokens")), 5);
	ck_assert_int_eq(json_integer_value(json_object_get(u, "completion_tokens")), 6);
	ck_assert_int_eq(json_integer_value(json_object_get(u, "total_tokens")), 11);
	json_decref(j);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

/* Golden pieces: id → piece from the fixture cases (with U+2581). */
static int golden_piece(int32_t *id, char *piece, size_t cap, bool with_space)
{
	char line[1 << 16];
	FILE *f;
	f = api_fixture_cases();
	while (fgets(line, sizeof line, f)) {
		json_t *c = json_loads(line, 0, NULL);
		json_t *ids = json_object_get(c, "ids"), *pieces = json_object_get(c, "pieces");
		for (size_t i = 0; i < json_array_size(pieces); i++) {
			const char *p = json_string_value(json_array_get(pieces, i));
			bool sp = strncmp(p, "\xe2\x96\x81", 3) == 0;
			if (sp == with_space && strlen(p) > 3 && strlen(p) < cap && p[0] != '<' &&
			    !strpbrk(p + 3, "\xe2\"\\") && (unsigned char)p[strlen(p) - 1] < 0x80) {
				*id = (int32_t)json_integer_value(json_array_get(ids, i));
				snprintf(piece, cap, "%s%s", sp ? " " : "", p + (sp ? 3 : 0));
				json_decref(c);
				fclose(f);
				return 0;
			}
		}
		json_decref(c);
	}
	fclose(f);
	ck_abort_msg("no usable piece in cases.jsonl");
	return -1;
}

static size_t chars(const char *p, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)p[i] & 0xC0) != 0x80;
	return c;
}

START_TEST(test_offsets_without_echo)
{
	/* No echo: the first completion token's offset is the prompt's
	 * length in characters; then each token's characters. */
	api_request *req =
	    make(API_COMPLETION, "{\"prompt\":\"Caf\u00e9 au lait\",\"logprobs\":0}");
	const char *prompt = "Caf\xc3\xa9 au lait";
	mllm_buf out;
	json_t *j, *offs;
	mllm_buf_init(&out, 1 << 16);
	feed(req, 0, ev_token(0, 5, " \xc3\xa9t\xc3\xa9", " \xc3\xa9t\xc3\xa9", -1), &out);
	feed(req, 0, ev_token(0, 6, "!", "!", -1), &out);
	feed(req, 0, ev_done(0, MLLM_FINISH_STOP, 5, 0, 2), &out);
	ck_assert_int_eq(end_status(req, &out), 200);
	j = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	offs = json_object_get(
	    json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs"),
	    "text_offset");
	ck_assert_uint_eq(json_array_size(offs), 2);
	ck_assert_int_eq(json_integer_value(json_array_get(offs, 0)),
	                 (json_int_t)chars(prompt, strlen(prompt)));
	ck_assert_int_eq(json_integer_value(json_array_get(offs, 1)),
	                 (json_int_t)chars(prompt, strlen(prompt)) + 4);
	json_decref(j);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

START_TEST(test_legacy_logprobs_echo)
{
	int32_t a, b;
	char pa[64], pb[64], body[256], ptext[256];
	size_t n_ptext;
	api_request *req;
	mllm_buf out;
	json_t *j, *c, *lp, *tokens, *tlp, *tops, *offs;
	mllm_event ev;
	golden_piece(&a, pa, sizeof pa, true);
	golden_piece(&b, pb, sizeof pb, false);
	snprintf(body, sizeof body,
	         "{\"prompt\":[1,%d],\"echo\":true,\"logprobs\":2,\"max_tokens\":1}", (int)a);
	req = make(API_COMPLETION, body);
	{
		int32_t ids[2] = {1, a};
		ck_assert_int_eq(mllm_tokenizer_decode(tok, ids, 2, ptext, sizeof ptext, &n_ptext),
		                 0);
	}
	mllm_buf_init(&out, 1 << 20);
	/* Prompt logprobs: the first has none. */
	memset(&ev, 0, sizeof ev);
	ev.kind = MLLM_EV_PROMPT;
	ev.token = 1;
	ev.token_text = "";
	feed(req, 0, ev, &out);
	ev.token = a;
	ev.token_text = pa;
	ev.token_text_len = strlen(pa);
	ev.token_out = ev.token_text;
	ev.token_out_len = ev.token_text_len;
	ev.has_logprob = true;
	ev.logprob = -2.5f;
	ev.n_top = 2;
	ev.top[0] = (mllm_top_logprob){a, -2.5f};
	ev.top[1] = (mllm_top_logprob){b, -3.0f};
	feed(req, 0, ev, &out);
	ev = ev_token(0, b, pb, pb, -0.25f);
	ev.n_top = 1;
	ev.top[0] = (mllm_top_logprob){b, -0.25f};
	feed(req, 0, ev, &out);
	feed(req, 0, ev_done(0, MLLM_FINISH_LENGTH, 2, 0, 1), &out);
	ck_assert_int_eq(end_status(req, &out), 200);
	j = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	c = json_array_get(json_object_get(j, "choices"), 0);
	{
		char want[400];
		snprintf(want, sizeof want, "%s%s", ptext, pb);
		ck_assert_str_eq(json_string_value(json_object_get(c, "text")), want);
	}
	lp = json_object_get(c, "logprobs");
	tokens = json_object_get(lp, "tokens");
	tlp = json_object_get(lp, "token_logprobs");
	tops = json_object_get(lp, "top_logprobs");
	offs = json_object_get(lp, "text_offset");
	ck_assert_uint_eq(json_array_size(tokens), 3);
	ck_assert_uint_eq(json_array_size(tlp), 3);
	ck_assert_uint_eq(json_array_size(tops), 3);
	ck_assert_uint_eq(json_array_size(offs), 3);
	ck_assert_str_eq(json_string_value(json_array_get(tokens, 0)), "");
	ck_assert_str_eq(json_string_value(json_array_get(tokens, 1)), pa);
	ck_assert_str_eq(json_string_value(json_array_get(tokens, 2)), pb);
	ck_assert(json_is_null(json_array_get(tlp, 0)));
	ck_assert(json_is_null(json_array_get(tops, 0)));
	ck_assert_double_eq_tol(json_real_value(json_array_get(tlp, 1)), -2.5, 1e-6);
	ck_assert_double_eq_tol(json_real_value(json_array_get(tlp, 2)), -0.25, 1e-6);
	/* Alternatives are keyed by their token text, from the tokenizer. */
	ck_assert_uint_eq(json_object_size(json_array_get(tops, 1)), 2);
	ck_assert_double_eq_tol(json_real_value(json_object_get(json_array_get(tops, 1), pa)), -2.5,
	                        1e-6);
	ck_assert_double_eq_tol(json_real_value(json_object_get(json_array_get(tops, 1), pb)), -3.0,
	                        1e-6);
	ck_assert_double_eq_tol(json_real_value(json_object_get(json_array_get(tops, 2), pb)),
	                        -0.25, 1e-6);
	ck_assert_int_eq(json_integer_value(json_array_get(offs, 0)), 0);
	ck_assert_int_eq(json_integer_value(json_array_get(offs, 1)), 0);
	/* Offsets count characters from the start of the prompt. */
	ck_assert_int_eq(json_integer_value(json_array_get(offs, 2)),
	                 (json_int_t)chars(ptext, n_ptext));
	json_decref(j);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

START_TEST(test_echo_logprobs_every_choice)
{
	/* The engine sends prompt logprobs once (as choice 0); both choices
	 * render them, and echo their prompt text. */
	api_request *req = make(API_COMPLETION, "{\"prompt\":[1,2],\"echo\":true,\"logprobs\":1,"
	                                        "\"n\":2,\"max_tokens\":1}");
	mllm_buf out;
	mllm_event ev;
	json_t *j;
	char ptext[64];
	size_t n_ptext;
	int32_t ids[2] = {1, 2};
	ck_assert_int_eq(mllm_tokenizer_decode(tok, ids, 2, ptext, sizeof ptext, &n_ptext), 0);
	mllm_buf_init(&out, 1 << 16);
	memset(&ev, 0, sizeof ev);
	ev.kind = MLLM_EV_PROMPT;
	ev.token = 1;
	ev.token_text = "";
	feed(req, 0, ev, &out);
	ev.token = 2;
	ev.has_logprob = true;
	ev.logprob = -4.0f;
	feed(req, 0, ev, &out);
	feed(req, 0, ev_token(1, 5, "x", "x", -1), &out);
	feed(req, 0, ev_token(0, 6, "y", "y", -1), &out);
	feed(req, 0, ev_done(0, MLLM_FINISH_LENGTH, 2, 0, 1), &out);
	feed(req, 0, ev_done(1, MLLM_FINISH_LENGTH, 2, 0, 1), &out);
	ck_assert_int_eq(end_status(req, &out), 200);
	j = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	for (int i = 0; i < 2; i++) {
		json_t *c = json_array_get(json_object_get(j, "choices"), (size_t)i);
		json_t *lp = json_object_get(c, "logprobs");
		char want[80];
		snprintf(want, sizeof want, "%s%s", ptext, i ? "x" : "y");
		ck_assert_str_eq(json_string_value(json_object_get(c, "text")), want);
		ck_assert_uint_eq(json_array_size(json_object_get(lp, "tokens")), 3);
		ck_assert(json_is_null(json_array_get(json_object_get(lp, "token_logprobs"), 0)));
		ck_assert_double_eq_tol(
		    json_real_value(json_array_get(json_object_get(lp, "token_logprobs"), 1)), -4.0,
		    1e-6);
		ck_assert_int_eq(
		    json_integer_value(json_array_get(json_object_get(lp, "text_offset"), 2)),
		    (json_int_t)n_ptext);
	}
	json_decref(j);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

START_TEST(test_stream_echo_logprobs)
{
	api_request *req = make(API_COMPLETION, "{\"prompt\":[1,2],\"echo\":true,\"logprobs\":0,"
	                                        "\"stream\":true,\"max_tokens\":1}");
	mllm_buf out;
	json_t *evs[8], *c, *lp;
	bool done;
	mllm_event ev;
	int n;
	mllm_buf_init(&out, 1 << 20);
	memset(&ev, 0, sizeof ev);
	ev.kind = MLLM_EV_PROMPT;
	ev.token = 1;
	ev.token_text = "";
	feed(req, 0, ev, &out);
	ck_assert_uint_eq(out.len, 0); /* held until the first token */
	feed(req, 0, ev_token(0, one_id("ab"), " ab", " ab", -1.0f), &out);
	feed(req, 0, ev_done(0, MLLM_FINISH_LENGTH, 2, 0, 1), &out);
	ck_assert_int_eq(end_status(req, &out), 200);
	n = sse_split(&out, evs, 8, &done);
	ck_assert(done);
	ck_assert_int_eq(n, 3); /* echo, token, finish */
	c = json_array_get(json_object_get(evs[0], "choices"), 0);
	lp = json_object_get(c, "logprobs");
	ck_assert_uint_eq(json_array_size(json_object_get(lp, "tokens")), 1);
	ck_assert(json_is_null(json_array_get(json_object_get(lp, "token_logprobs"), 0)));
	c = json_array_get(json_object_get(evs[1], "choices"), 0);
	lp = json_object_get(c, "logprobs");
	ck_assert_str_eq(json_string_value(json_object_get(c, "text")), " ab");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(lp, "tokens"), 0)),
	                 " ab");
	/* logprobs 0: no alternatives, but (as OpenAI) the chosen token. */
	ck_assert_uint_eq(json_object_size(json_array_get(json_object_get(lp, "top_logprobs"), 0)),
	                  1);
	ck_assert_double_eq_tol(json_real_value(json_object_get(
	                            json_array_get(json_object_get(lp, "top_logprobs"), 0), " ab")),
	                        -1.0, 1e-6);
	for (int i = 0; i < n; i++)
		json_decref(evs[i]);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

START_TEST(test_chat_logprobs_bytes)
{
	int32_t b;
	char pb[64];
	api_request *req = make(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	                                  "\"logprobs\":true,\"top_logprobs\":1}");
	mllm_buf out;
	json_t *j, *c, *content, *item, *bytes, *top;
	mllm_event ev;
	golden_piece(&b, pb, sizeof pb, true);
	mllm_buf_init(&out, 1 << 20);
	/* A token that is a partial UTF-8 character. */
	ev = ev_token(0, 226, "", "\xe2\x80", -1.5f);
	ev.n_top = 1;
	ev.top[0] = (mllm_top_logprob){b, -0.5f};
	feed(req, 0, ev, &out);
	ev = ev_token(0, b, pb, pb, -0.5f);
	feed(req, 0, ev, &out);
	feed(req, 0, ev_done(0, MLLM_FINISH_STOP, 4, 0, 2), &out);
	ck_assert_int_eq(end_status(req, &out), 200);
	j = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "chat.completion");
	c = json_array_get(json_object_get(j, "choices"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "message"), "role")),
	                 "assistant");
	ck_assert(pb[0] == ' ');
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(c, "message"), "content")), pb + 1);
	content = json_object_get(json_object_get(c, "logprobs"), "content");
	ck_assert_uint_eq(json_array_size(content), 2);
	item = json_array_get(content, 0);
	ck_assert_str_eq(json_string_value(json_object_get(item, "token")), "bytes:\\xe2\\x80");
	bytes = json_object_get(item, "bytes");
	ck_assert_uint_eq(json_array_size(bytes), 2);
	ck_assert_int_eq(json_integer_value(json_array_get(bytes, 0)), 0xe2);
	ck_assert_int_eq(json_integer_value(json_array_get(bytes, 1)), 0x80);
	top = json_array_get(json_object_get(item, "top_logprobs"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(top, "token")), pb);
	ck_assert_uint_eq(json_array_size(json_object_get(top, "bytes")), strlen(pb));
	ck_assert_double_eq_tol(json_real_value(json_object_get(top, "logprob")), -0.5, 1e-6);
	item = json_array_get(content, 1);
	ck_assert_str_eq(json_string_value(json_object_get(item, "token")), pb);
	ck_assert_uint_eq(json_array_size(json_object_get(item, "top_logprobs")), 0);
	json_decref(j);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

START_TEST(test_errors_mid_request)
{
	mllm_buf out;
	mllm_event ev;
	json_t *j;
	api_request *req = make(API_COMPLETION, "{\"prompt\":[[1],[2]]}");
	mllm_buf_init(&out, 1 << 20);
	feed(req, 1, ev_token(0, 5, "a", "a", -1), &out);
	memset(&ev, 0, sizeof ev);
	ev.kind = MLLM_EV_ERROR;
	ev.err = MLLM_EOVERLOADED;
	feed(req, 0, ev, &out);
	ck_assert(api_request_done(req));
	ck_assert_ptr_nonnull(api_request_error(req));
	ck_assert_int_eq(api_request_error(req)->retry_after_s, 0); /* the server's */
	/* Later events change nothing. */
	feed(req, 1, ev_done(0, MLLM_FINISH_STOP, 1, 0, 1), &out);
	ck_assert_uint_eq(out.len, 0);
	ck_assert_int_eq(end_status(req, &out), 503);
	j = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
	                 "overloaded");
	json_decref(j);
	api_request_free(req);

	/* Streaming: the error is an event, then [DONE]. */
	mllm_buf_reset(&out);
	req = make(API_CHAT,
	           "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}");
	ck_assert_int_eq(api_request_begin(req, &out), 0);
	mllm_buf_reset(&out);
	feed(req, 0, ev_done(0, MLLM_FINISH_CANCELLED, 1, 0, 0), &out);
	ck_assert(strncmp(out.data, "data: {\"error\":{", 16) == 0);
	ck_assert(api_request_done(req));
	mllm_buf_reset(&out);
	ck_assert_int_eq(end_status(req, &out), 200);
	ck_assert_str_eq(out.data, "data: [DONE]\n\n");
	api_request_free(req);

	/* abort(): shutdown timeout ends the stream with a clear error. */
	mllm_buf_reset(&out);
	req = make(API_COMPLETION, "{\"prompt\":[1],\"stream\":true}");
	feed(req, 0, ev_token(0, 5, "a", "a", -1), &out);
	mllm_buf_reset(&out);
	{
		api_error e;
		bool done;
		json_t *evs[4];
		api_error_from_mllm(&e, MLLM_ESHUTDOWN);
		ck_assert_int_eq(api_request_abort(req, &e, &out), 0);
		ck_assert(api_request_done(req));
		ck_assert_int_eq(sse_split(&out, evs, 4, &done), 1);
		ck_assert(done);
		ck_assert_str_eq(
		    json_string_value(json_object_get(json_object_get(evs[0], "error"), "code")),
		    "shutting_down");
		json_decref(evs[0]);
		mllm_buf_reset(&out);
		ck_assert_int_eq(end_status(req, &out), 200);
		ck_assert_uint_eq(out.len, 0); /* already ended */
	}
	api_request_free(req);
	mllm_buf_free(&out);
}
END_TEST

START_TEST(test_models)
{
	api_model_info a = {.id = "m1", .n_ctx = 2048, .created = 100};
	api_model_info b = {.id = "m2", .n_ctx = 512, .created = 200, .owned_by = "me"};
	const api_model_info *list[2] = {&a, &b};
	mllm_buf out;
	json_t *j, *d;
	mllm_buf_init(&out, 1 << 16);
	ck_assert_int_eq(api_render_models(list, 2, &out), 0);
	j = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "list");
	d = json_object_get(j, "data");
	ck_assert_uint_eq(json_array_size(d), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(d, 1), "id")), "m2");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(d, 1), "owned_by")),
	                 "me");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(d, 0), "owned_by")),
	                 "mobilellmd");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(d, 0), "object")),
	                 "model");
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(d, 0), "created")), 100);
	json_decref(j);
	mllm_buf_reset(&out);
	ck_assert_int_eq(api_render_model(&b, &out), 0);
	j = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "m2");
	json_decref(j);
	mllm_buf_free(&out);
}
END_TEST

START_TEST(test_invalid_utf8_text_repaired)
{
	/* The engine promises whole UTF-8; if it ever slips, the body stays
	 * valid JSON (U+FFFD) instead of failing. */
	api_request *req = make(API_COMPLETION, "{\"prompt\":[1]}");
	mllm_buf out;
	json_t *j;
	mllm_buf_init(&out, 1 << 16);
	feed(req, 0, ev_token(0, 5, "a\xff", "a\xff", -1), &out);
	feed(req, 0, ev_done(0, MLLM_FINISH_STOP, 1, 0, 1), &out);
	ck_assert_int_eq(end_status(req, &out), 200);
	j = json_loadb(out.data, out.len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(
	                     json_array_get(json_object_get(j, "choices"), 0), "text")),
	                 "a\xef\xbf\xbd");
	json_decref(j);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

/* ---- openapi.yaml holds what we render --------------------------------- */

/* Appends a body, or every data event of an SSE stream, as JSON Lines to
 * the file for its schema (error events to the Error file). */
static void jsonl_add(FILE *f, FILE *ferr, const mllm_buf *b, bool sse)
{
	if (!sse) {
		fprintf(f, "%.*s\n", (int)b->len, b->data);
		return;
	}
	for (const char *p = b->data; p && *p;) {
		const char *sep = strstr(p, "\n\n");
		ck_assert_ptr_nonnull(sep);
		if (strncmp(p + 6, "[DONE]", 6) != 0)
			fprintf(strncmp(p + 6, "{\"error\"", 8) == 0 ? ferr : f, "%.*s\n",
			        (int)(sep - p - 6), p + 6);
		p = sep + 2;
	}
}

static void validate(const char *dir, const char *const *names, int n)
{
	char cmd[2048];
	size_t o;
	int rc;
	o = (size_t)snprintf(
	    cmd, sizeof cmd,
	    "python3 tests/integration/openapi_check.py --spec openapi.yaml --validate");
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(cmd + o, sizeof cmd - o, " %s %s/%s.jsonl", names[i], dir,
		                      names[i]);
	ck_assert_uint_lt(o, sizeof cmd);
	rc = system(cmd);
	ck_assert_msg(rc == 0, "rendered JSON does not match openapi.yaml (see above)");
}

static void run_completion(const char *body, FILE *f, FILE *ferr, bool sse)
{
	api_request *req = make(API_COMPLETION, body);
	mllm_buf out;
	mllm_event ev;
	int32_t n = api_request_n_submits(req);
	mllm_submit s;
	mllm_buf_init(&out, 1 << 20);
	ck_assert_int_eq(api_request_begin(req, &out), 0);
	for (int32_t p = 0; p < n; p++) {
		api_request_submit(req, p, &s);
		memset(&ev, 0, sizeof ev);
		ev.kind = MLLM_EV_PROMPT;
		for (size_t k = 0; k < s.n_prompt; k++) {
			ev.token = s.prompt[k];
			ev.token_text = k ? " x" : "";
			ev.token_text_len = k ? 2 : 0;
			ev.token_out = ev.token_text;
			ev.token_out_len = ev.token_text_len;
			ev.has_logprob = k > 0;
			ev.logprob = -1.0f;
			ev.n_top = k ? 2 : 0;
			ev.top[0] = (mllm_top_logprob){5, -1.0f};
			ev.top[1] = (mllm_top_logprob){6, -2.0f};
			feed(req, p, ev, &out);
		}
		for (int c = 0; c < s.n_choices; c++) {
			ev = ev_token(c, 7, " A", " A", -0.5f);
			ev.n_top = 1;
			ev.top[0] = (mllm_top_logprob){7, -0.5f};
			feed(req, p, ev, &out);
			feed(req, p, ev_token(c, 8, "", "\xe2\x80", -0.5f), &out);
			feed(req, p,
			     ev_done(c, c ? MLLM_FINISH_STOP : MLLM_FINISH_LENGTH,
			             (int32_t)s.n_prompt, 1, 2),
			     &out);
		}
	}
	ck_assert_int_eq(end_status(req, &out), 200);
	jsonl_add(f, ferr, &out, sse);
	mllm_buf_free(&out);
	api_request_free(req);
}

START_TEST(test_schema_conformance)
{
	char dir[] = "/tmp/mllm-api-schema-XXXXXX";
	char path[512];
	FILE *f[8], *ferr;
	static const char *const names[] = {
	    "Completion", "CompletionChunk", "ChatCompletion", "ChatCompletionChunk",
	    "ModelList",  "Model",           "Error"};
	MLLM_REQUIRE_FIXTURE("openapi.yaml"); /* run from the repository root */
	MLLM_REQUIRE_FIXTURE("tests/integration/openapi_check.py");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	for (int i = 0; i < 6; i++) {
		snprintf(path, sizeof path, "%s/%s.jsonl", dir, names[i]);
		f[i] = fopen(path, "w");
		ck_assert_ptr_nonnull(f[i]);
	}
	snprintf(path, sizeof path, "%s/Error.jsonl", dir);
	ferr = fopen(path, "w");
	ck_assert_ptr_nonnull(ferr);

	run_completion("{\"prompt\":[[1,2],[1,3,4]],\"n\":2,\"logprobs\":2,\"echo\":true}", f[0],
	               ferr, false);
	run_completion("{\"prompt\":[1,2],\"logprobs\":0}", f[0], ferr, false);
	run_completion("{\"prompt\":[1,2]}", f[0], ferr, false);
	run_completion("{\"prompt\":[[1,2],[3]],\"n\":2,\"logprobs\":1,\"echo\":true,"
	               "\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
	               f[1], ferr, true);
	run_completion("{\"prompt\":[1,2],\"stream\":true}", f[1], ferr, true);
	{
		/* Chat, streamed and not, with and without logprobs. */
		static const char *bodies[] = {
		    "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2,"
		    "\"logprobs\":true,\"top_logprobs\":2}",
		    "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
		    "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2,"
		    "\"logprobs\":true,\"top_logprobs\":1,\"stream\":true,"
		    "\"stream_options\":{\"include_usage\":true}}",
		    "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}",
		};
		for (int i = 0; i < 4; i++) {
			api_request *req = make(API_CHAT, bodies[i]);
			mllm_buf out;
			mllm_event ev;
			bool sse = api_request_stream(req);
			mllm_buf_init(&out, 1 << 20);
			ck_assert_int_eq(api_request_begin(req, &out), 0);
			for (int c = 0; c < (i == 0 || i == 2 ? 2 : 1); c++) {
				ev = ev_token(c, 7, " Hi", " Hi", -0.5f);
				ev.n_top = 2;
				ev.top[0] = (mllm_top_logprob){7, -0.5f};
				ev.top[1] = (mllm_top_logprob){8, -1.5f};
				feed(req, 0, ev, &out);
				feed(req, 0, ev_token(c, 8, "", "\xe2\x80", -0.5f), &out);
				feed(req, 0, ev_done(c, MLLM_FINISH_STOP, 4, 0, 2), &out);
			}
			ck_assert_int_eq(end_status(req, &out), 200);
			jsonl_add(sse ? f[3] : f[2], ferr, &out, sse);
			mllm_buf_free(&out);
			api_request_free(req);
		}
	}
	{
		/* A stream that fails after it started. */
		api_request *req = make(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":"
		                                  "\"x\"}],\"stream\":true}");
		mllm_buf out;
		mllm_event ev;
		mllm_buf_init(&out, 1 << 20);
		ck_assert_int_eq(api_request_begin(req, &out), 0);
		memset(&ev, 0, sizeof ev);
		ev.kind = MLLM_EV_ERROR;
		ev.err = MLLM_EINTERNAL;
		feed(req, 0, ev, &out);
		ck_assert_int_eq(end_status(req, &out), 200);
		jsonl_add(f[3], ferr, &out, true);
		mllm_buf_free(&out);
		api_request_free(req);
	}
	{
		const api_model_info *list[1] = {&model};
		mllm_buf out;
		mllm_buf_init(&out, 1 << 16);
		ck_assert_int_eq(api_render_models(list, 1, &out), 0);
		jsonl_add(f[4], ferr, &out, false);
		mllm_buf_reset(&out);
		ck_assert_int_eq(api_render_model(&model, &out), 0);
		jsonl_add(f[5], ferr, &out, false);
		mllm_buf_free(&out);
	}
	for (int i = 0; i < 6; i++)
		fclose(f[i]);
	fclose(ferr);
	validate(dir, names, 7);
	/* The checker's own YAML reader and validator (used without PyYAML). */
	ck_assert_int_eq(system("python3 tests/integration/openapi_check.py --spec openapi.yaml "
	                        "--selftest"),
	                 0);
	snprintf(path, sizeof path, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(path), 0);
}
END_TEST

START_TEST(test_alloc_failures)
{
	/* Logprob entries and output growth fail in turn: feed/end report
	 * MLLM_ENOMEM (the server answers 500) and nothing crashes or leaks. */
	int n_fail = 0;
	for (long k = 0; k < 100; k++) {
		api_request *req =
		    make(API_COMPLETION, "{\"prompt\":[[1,2],[3]],\"n\":2,\"logprobs\":2,"
		                         "\"echo\":true}");
		mllm_buf out;
		mllm_event ev;
		int rc = 0, fails = 0;
		mllm_buf_init(&out, 1 << 20);
		mllm__alloc_fail_after(k);
		for (int32_t p = 0; p < 2; p++) {
			memset(&ev, 0, sizeof ev);
			ev.kind = MLLM_EV_PROMPT;
			ev.token_text = "";
			rc = api_request_feed(req, p, &ev, &out);
			fails += rc != 0;
			for (int c = 0; c < 2; c++) {
				ev = ev_token(c, 5, "abc", "abc", -1.0f);
				ev.n_top = 2;
				rc = api_request_feed(req, p, &ev, &out);
				ck_assert(rc == 0 || rc == MLLM_ENOMEM);
				fails += rc != 0;
				ev = ev_done(c, MLLM_FINISH_STOP, 2, 0, 1);
				rc = api_request_feed(req, p, &ev, &out);
				ck_assert(rc == 0 || rc == MLLM_ENOMEM);
				fails += rc != 0;
			}
		}
		rc = end_status(req, &out);
		mllm__alloc_fail_after(-1);
		ck_assert(rc == 200 || rc == MLLM_ENOMEM);
		fails += rc != 200;
		n_fail += fails > 0;
		mllm_buf_free(&out);
		api_request_free(req);
		if (fails == 0)
			break;
	}
	ck_assert_int_gt(n_fail, 0);
}
END_TEST

START_TEST(test_nul_token)
{
	/* The <0x00> piece: text keeps the byte (as \u0000), token strings
	 * and top_logprobs keys use the "bytes:" form. */
	api_request *req = make(API_COMPLETION, "{\"prompt\":[1],\"logprobs\":1}");
	mllm_buf out;
	mllm_event ev;
	json_t *j, *lp;
	mllm_buf_init(&out, 1 << 16);
	ev = ev_token(0, 3, "", "", -1);
	ev.text = "a\0";
	ev.text_len = 2;
	ev.token_text = "\0";
	ev.token_text_len = 1;
	ev.token_out = ev.token_text;
	ev.token_out_len = ev.token_text_len;
	ev.n_top = 1;
	ev.top[0] = (mllm_top_logprob){3, -1.0f}; /* id 3 is <0x00> */
	feed(req, 0, ev, &out);
	feed(req, 0, ev_done(0, MLLM_FINISH_STOP, 1, 0, 1), &out);
	ck_assert_int_eq(end_status(req, &out), 200);
	j = json_loadb(out.data, out.len, JSON_ALLOW_NUL, NULL);
	ck_assert_ptr_nonnull(j);
	lp = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(lp, "tokens"), 0)),
	                 "bytes:\\x00");
	ck_assert_ptr_nonnull(
	    json_object_get(json_array_get(json_object_get(lp, "top_logprobs"), 0), "bytes:\\x00"));
	ck_assert_uint_eq(json_string_length(json_object_get(
	                      json_array_get(json_object_get(j, "choices"), 0), "text")),
	                  2);
	json_decref(j);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

/* Appends JSON string s (NULL or not a string: nothing) to b. */
static void append_str(mllm_buf *b, const json_t *s)
{
	if (json_is_string(s))
		ck_assert_int_eq(mllm_buf_append(b, json_string_value(s), json_string_length(s)),
		                 0);
}

/* Chat logprobs: the tokens concatenate to exactly message.content, the
 * first one without the space after the "Assistant:" cue that the content
 * drops (OpenAI's contract), streamed and not. */
START_TEST(test_chat_logprobs_concatenate_to_content)
{
	for (int stream = 0; stream < 2; stream++) {
		api_request *req =
		    make(API_CHAT, stream ? "{\"messages\":[{\"role\":\"user\","
		                            "\"content\":\"hi\"}],\"logprobs\":true,"
		                            "\"stream\":true}"
		                          : "{\"messages\":[{\"role\":\"user\","
		                            "\"content\":\"hi\"}],\"logprobs\":true}");
		mllm_buf out, text, toks;
		int status;
		mllm_buf_init(&out, 1 << 20);
		mllm_buf_init(&text, 1 << 16);
		mllm_buf_init(&toks, 1 << 16);
		ck_assert_int_eq(api_request_begin(req, &out), 0);
		feed(req, 0, ev_token(0, 10, " Hello", " Hello", -0.5f), &out);
		feed(req, 0, ev_token(0, 11, " wor", " wor", -0.25f), &out);
		feed(req, 0, ev_token(0, 12, "ld", "ld", -0.125f), &out);
		feed(req, 0, ev_done(0, MLLM_FINISH_LENGTH, 3, 0, 3), &out);
		ck_assert_int_eq(api_request_end(req, &out, &status), 0);
		if (stream) {
			json_t *evs[32];
			bool done = false;
			int n = sse_split(&out, evs, 32, &done);
			for (int i = 0; i < n; i++) {
				json_t *c = json_array_get(json_object_get(evs[i], "choices"), 0);
				json_t *content =
				    json_object_get(json_object_get(c, "delta"), "content");
				json_t *lp =
				    json_object_get(json_object_get(c, "logprobs"), "content");
				size_t k;
				json_t *t;
				append_str(&text, content);
				json_array_foreach(lp, k, t)
				{
					json_t *tok_s = json_object_get(t, "token");
					append_str(&toks, tok_s);
				}
				json_decref(evs[i]);
			}
		} else {
			json_t *j = json_loadb(out.data, out.len, 0, NULL);
			json_t *c = json_array_get(json_object_get(j, "choices"), 0);
			json_t *content = json_object_get(json_object_get(c, "message"), "content");
			json_t *lp = json_object_get(json_object_get(c, "logprobs"), "content");
			size_t k;
			json_t *t;
			append_str(&text, content);
			json_array_foreach(lp, k, t)
			{
				json_t *tok_s = json_object_get(t, "token");
				append_str(&toks, tok_s);
			}
			/* The bytes follow the token. */
			ck_assert_int_eq(
			    json_array_size(json_object_get(json_array_get(lp, 0), "bytes")), 5);
			json_decref(j);
		}
		ck_assert_int_eq(mllm_buf_append(&text, "", 1), 0);
		ck_assert_int_eq(mllm_buf_append(&toks, "", 1), 0);
		ck_assert_str_eq(text.data, "Hello world");
		ck_assert_str_eq(toks.data, text.data);
		mllm_buf_free(&out);
		mllm_buf_free(&text);
		mllm_buf_free(&toks);
		api_request_free(req);
	}
}
END_TEST

/* A stop string's tokens are sampled (and logprob'd) before the match, but
 * their text never goes out: the entries end where the text does (the
 * straddling token cut to its part before the stop string), streamed or
 * not; a text that starts the output drops SentencePiece's leading space
 * from its first token too; and text_offset indexes the returned text. */
START_TEST(test_logprobs_end_with_the_text)
{
	for (int stream = 0; stream < 2; stream++) {
		api_request *req = make(
		    API_COMPLETION, stream ? "{\"prompt\":\"\",\"logprobs\":0,\"stop\":\" sat\","
		                             "\"stream\":true}"
		                           : "{\"prompt\":\"\",\"logprobs\":0,\"stop\":\" sat\"}");
		mllm_buf out, text, toks;
		json_t *offs = json_array();
		int status;
		mllm_event done;
		mllm_buf_init(&out, 1 << 20);
		mllm_buf_init(&text, 1 << 16);
		mllm_buf_init(&toks, 1 << 16);
		ck_assert_int_eq(api_request_begin(req, &out), 0);
		feed(req, 0, ev_token(0, 10, "The", " The", -0.5f), &out);
		feed(req, 0, ev_token(0, 11, " ca", " ca", -0.5f), &out);
		feed(req, 0, ev_token(0, 12, "t", "t s", -0.5f), &out); /* " s" held */
		feed(req, 0, ev_token(0, 13, "", "at!", -0.5f), &out);  /* " sat" matched */
		done = ev_done(0, MLLM_FINISH_STOP, 1, 0, 4);
		done.stop_string = true;
		feed(req, 0, done, &out);
		ck_assert_int_eq(api_request_end(req, &out, &status), 0);
		if (stream) {
			json_t *evs[32];
			bool saw_done = false;
			int n = sse_split(&out, evs, 32, &saw_done);
			for (int i = 0; i < n; i++) {
				json_t *c = json_array_get(json_object_get(evs[i], "choices"), 0);
				json_t *t = json_object_get(c, "text"),
				       *lp = json_object_get(c, "logprobs");
				size_t k;
				json_t *x;
				append_str(&text, t);
				json_array_foreach(json_object_get(lp, "tokens"), k, x)
				    append_str(&toks, x);
				json_array_extend(offs, json_object_get(lp, "text_offset"));
				json_decref(evs[i]);
			}
			ck_assert(saw_done);
		} else {
			json_t *j = json_loadb(out.data, out.len, 0, NULL);
			json_t *c = json_array_get(json_object_get(j, "choices"), 0);
			json_t *lp = json_object_get(c, "logprobs"), *x;
			size_t k;
			append_str(&text, json_object_get(c, "text"));
			json_array_foreach(json_object_get(lp, "tokens"), k, x)
			    append_str(&toks, x);
			ck_assert_uint_eq(json_array_size(json_object_get(lp, "token_logprobs")),
			                  3);
			json_array_extend(offs, json_object_get(lp, "text_offset"));
			json_decref(j);
		}
		ck_assert_int_eq(mllm_buf_append(&text, "", 1), 0);
		ck_assert_int_eq(mllm_buf_append(&toks, "", 1), 0);
		ck_assert_str_eq(text.data, "The cat");
		ck_assert_str_eq(toks.data, "The cat");
		ck_assert_uint_eq(json_array_size(offs), 3);
		ck_assert_int_eq(json_integer_value(json_array_get(offs, 0)), 0);
		ck_assert_int_eq(json_integer_value(json_array_get(offs, 1)), 3);
		ck_assert_int_eq(json_integer_value(json_array_get(offs, 2)), 6);
		json_decref(offs);
		mllm_buf_free(&out);
		mllm_buf_free(&text);
		mllm_buf_free(&toks);
		api_request_free(req);
	}
}
END_TEST

/* A completion's legacy logprobs, streamed (SSE chunks merged in order)
 * or whole: appends the text to *text and the tokens, text_offset and
 * top_logprobs arrays to those of lp. With paired, a streamed chunk that
 * carries text must carry entries too (an entry rides on the chunk that
 * releases its text; a text-less entry may ride with its neighbours). */
static json_t *legacy_arrays(void)
{
	json_t *o = json_pack("{s:[],s:[],s:[]}", "tokens", "text_offset", "top_logprobs");
	ck_assert_ptr_nonnull(o);
	return o;
}

static void collect_legacy(const mllm_buf *out, bool stream, bool paired, mllm_buf *text,
                           json_t *lp)
{
	static const char *const arrays[] = {"tokens", "text_offset", "top_logprobs"};
	json_t *evs[32], *whole = NULL;
	bool saw_done = false;
	int n = 1;
	if (stream) {
		n = sse_split(out, evs, 32, &saw_done);
	} else {
		whole = json_loadb(out->data, out->len, 0, NULL);
		ck_assert_ptr_nonnull(whole);
		evs[0] = whole;
	}
	for (int i = 0; i < n; i++) {
		json_t *c = json_array_get(json_object_get(evs[i], "choices"), 0);
		json_t *l = json_object_get(c, "logprobs"), *t = json_object_get(c, "text");
		append_str(text, t);
		if (stream && paired && json_string_length(t) > 0)
			ck_assert_msg(json_array_size(json_object_get(l, "tokens")) > 0,
			              "chunk %d: text without its entry", i);
		for (size_t a = 0; a < 3; a++)
			json_array_extend(json_object_get(lp, arrays[a]),
			                  json_object_get(l, arrays[a]));
		json_decref(evs[i]);
	}
}

/* Legacy top_logprobs hold the chosen token once, under its own bytes:
 * an entry whose text was edited (a BOS-only prompt drops the first
 * token's leading space; a stop string cuts a token) used to add that
 * edited text as an extra key — another vocabulary token, with this
 * one's logprob. */
START_TEST(test_legacy_top_logprobs_chosen_once)
{
	for (int stream = 0; stream < 2; stream++) {
		int32_t once = one_id("Once"), one = one_id("One");
		api_request *req = make(
		    API_COMPLETION, stream ? "{\"prompt\":\"\",\"logprobs\":2,\"stop\":\"nce\","
		                             "\"stream\":true}"
		                           : "{\"prompt\":\"\",\"logprobs\":2,\"stop\":\"nce\"}");
		mllm_buf out, text;
		mllm_event ev, done;
		json_t *lp = legacy_arrays(), *tops = json_object_get(lp, "top_logprobs");
		char po[64], pn[64];
		size_t lo = mllm_tokenizer_token_bytes(tok, once, po, sizeof po);
		size_t ln = mllm_tokenizer_token_bytes(tok, one, pn, sizeof pn);
		po[lo] = pn[ln] = '\0';
		ck_assert_str_eq(po, " Once");
		mllm_buf_init(&out, 1 << 20);
		mllm_buf_init(&text, 1 << 16);
		ck_assert_int_eq(api_request_begin(req, &out), 0);
		/* " One", the first token: printed as "One". */
		ev = ev_token(0, one, "One", pn, -0.5f);
		ev.n_top = 2;
		ev.top[0] = (mllm_top_logprob){one, -0.5f};
		ev.top[1] = (mllm_top_logprob){once, -1.0f};
		feed(req, 0, ev, &out);
		/* " Once", cut by the stop string "nce" to " O". */
		ev = ev_token(0, once, "", po, -0.25f);
		ev.n_top = 2;
		ev.top[0] = (mllm_top_logprob){once, -0.25f};
		ev.top[1] = (mllm_top_logprob){one, -2.0f};
		feed(req, 0, ev, &out);
		done = ev_done(0, MLLM_FINISH_STOP, 1, 0, 2);
		done.text = " O";
		done.text_len = 2;
		done.stop_string = true;
		feed(req, 0, done, &out);
		ck_assert_int_eq(api_request_end(req, &out, &(int){0}), 0);
		collect_legacy(&out, stream, false, &text, lp);
		if (!stream) {
			ck_assert_int_eq(mllm_buf_append(&text, "", 1), 0);
			ck_assert_str_eq(text.data, "One O");
		}
		ck_assert_uint_eq(json_array_size(tops), 2);
		for (size_t i = 0; i < 2; i++) {
			json_t *d = json_array_get(tops, i);
			ck_assert_msg(json_object_size(d) == 2, "entry %zu: %zu keys", i,
			              json_object_size(d));
			ck_assert_ptr_nonnull(json_object_get(d, po));
			ck_assert_ptr_nonnull(json_object_get(d, pn));
		}
		ck_assert_double_eq_tol(
		    json_real_value(json_object_get(json_array_get(tops, 0), pn)), -0.5, 1e-6);
		ck_assert_double_eq_tol(
		    json_real_value(json_object_get(json_array_get(tops, 1), po)), -0.25, 1e-6);
		json_decref(lp);
		mllm_buf_free(&out);
		mllm_buf_free(&text);
		api_request_free(req);
	}
}
END_TEST

/* Entries are lined up with the text by what the text shows for each
 * token (mllm_event.token_out), not by the token's bytes: a special token
 * the text skips shows nothing, an invalid byte shows U+FFFD (3 bytes).
 * Counting token bytes, a special token before a stop string cut the
 * next entries away, and an invalid byte let the stop string's own token
 * in; streamed, entries drifted onto later chunks. */
typedef struct {
	int32_t id;
	const char *tok, *out, *text; /* text: what the engine releases */
} lp_step;

/* bos_only: the prompt is "" (the text starts the output), else "x". */
static void check_lp_steps(const lp_step *st, int n, bool bos_only, const char *want_text,
                           const char *want_tokens, int want_entries, const int *want_offsets)
{
	for (int stream = 0; stream < 2; stream++) {
		char body[128];
		snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"logprobs\":0,\"stop\":\"!\"%s}",
		         bos_only ? "" : "x", stream ? ",\"stream\":true" : "");
		api_request *req = make(API_COMPLETION, body);
		mllm_buf out, text, toks;
		json_t *lp = legacy_arrays(), *offs = json_object_get(lp, "text_offset");
		mllm_event done;
		int entries;
		mllm_buf_init(&out, 1 << 20);
		mllm_buf_init(&text, 1 << 16);
		mllm_buf_init(&toks, 1 << 16);
		ck_assert_int_eq(api_request_begin(req, &out), 0);
		for (int i = 0; i < n; i++) {
			mllm_event ev = ev_token(0, st[i].id, st[i].text, st[i].tok, -0.5f);
			ev.token_out = st[i].out;
			ev.token_out_len = strlen(st[i].out);
			feed(req, 0, ev, &out);
		}
		done = ev_done(0, MLLM_FINISH_STOP, 2, 0, n);
		done.stop_string = true;
		feed(req, 0, done, &out);
		ck_assert_int_eq(api_request_end(req, &out, &(int){0}), 0);
		collect_legacy(&out, stream, true, &text, lp);
		entries = (int)json_array_size(json_object_get(lp, "tokens"));
		{
			size_t q;
			json_t *x;
			json_array_foreach(json_object_get(lp, "tokens"), q, x)
			    append_str(&toks, x);
		}
		ck_assert_int_eq(mllm_buf_append(&text, "", 1), 0);
		ck_assert_int_eq(mllm_buf_append(&toks, "", 1), 0);
		ck_assert_str_eq(text.data, want_text);
		ck_assert_msg(strcmp(toks.data, want_tokens) == 0, "%s: tokens '%s'",
		              stream ? "streamed" : "whole", toks.data);
		ck_assert_int_eq(entries, want_entries);
		ck_assert_uint_eq(json_array_size(offs), (size_t)want_entries);
		for (int i = 0; i < want_entries; i++)
			ck_assert_int_eq(json_integer_value(json_array_get(offs, (size_t)i)),
			                 want_offsets[i]);
		json_decref(lp);
		mllm_buf_free(&out);
		mllm_buf_free(&text);
		mllm_buf_free(&toks);
		api_request_free(req);
	}
}

START_TEST(test_logprobs_follow_the_text_not_the_bytes)
{
	/* A special token, then the stop string's token. */
	static const lp_step special[] = {
	    {10, " A", " A", " A"}, {11, "<|reserved|>", "", ""}, {12, " B", " B", " B"},
	    {13, " C", " C", " C"}, {14, "!", "!", ""},
	};
	static const int special_offs[] = {1, 3, 3, 5};
	/* An invalid byte (U+FFFD in the text), then the stop string's token. */
	static const lp_step invalid[] = {
	    {10, " a", " a", " a"},
	    {11, "\xff", "\xef\xbf\xbd", "\xef\xbf\xbd"},
	    {12, " b", " b", " b"},
	    {13, "!", "!", ""},
	};
	static const int invalid_offs[] = {1, 3, 4};
	/* A BOS-only prompt: the detokenizer drops the first piece's space
	 * (out "Hi" for " Hi"), after a special token that shows nothing. */
	static const lp_step bos[] = {{11, "<s>", "", ""},
	                              {12, " Hi", "Hi", "Hi"},
	                              {13, " you", " you", " you"},
	                              {14, "!", "!", ""}};
	static const int bos_offs[] = {0, 0, 2};
	/* A BOS-only prompt whose output starts with a lone space token: the
	 * detokenizer drops it whole (out ""), so does its entry. */
	static const lp_step lone[] = {
	    {20, " ", "", ""}, {21, "3", "3", "3"}, {22, ".", ".", "."}, {14, "!", "!", ""}};
	static const int lone_offs[] = {0, 0, 1};
	check_lp_steps(lone, 4, true, "3.", "3.", 3, lone_offs);
	check_lp_steps(special, 5, false, " A B C", " A<|reserved|> B C", 4, special_offs);
	check_lp_steps(invalid, 4, false, " a\xef\xbf\xbd b", " abytes:\\xff b", 3, invalid_offs);
	check_lp_steps(bos, 4, true, "Hi you", "<s>Hi you", 3, bos_offs);
}
END_TEST

/* Entry k of test_logprobs_kept_without_stop: "Hi", </s>, " you"; the
 * special token keeps its name but no bytes (the bytes join to the
 * content), as an alternative too. */
static void check_entry_bytes(json_t *en, int k)
{
	static const char *const want[] = {"Hi", "</s>", " you"};
	json_t *b = json_object_get(en, "bytes");
	ck_assert_str_eq(json_string_value(json_object_get(en, "token")), want[k]);
	ck_assert(json_is_array(b));
	ck_assert_int_eq(json_array_size(b), (k == 1 ? 0 : strlen(want[k])));
	if (k == 1) {
		json_t *tops = json_object_get(en, "top_logprobs");
		ck_assert_int_eq(json_array_size(tops), 2);
		ck_assert_str_eq(
		    json_string_value(json_object_get(json_array_get(tops, 0), "token")), "</s>");
		ck_assert_int_eq(json_array_size(json_object_get(json_array_get(tops, 0), "bytes")),
		                 0);
		ck_assert_int_eq(json_array_size(json_object_get(json_array_get(tops, 1), "bytes")),
		                 mllm_tokenizer_token_bytes(tok, 10, (char[64]){0}, 64));
	}
}

/* Without a stop string nothing is cut: a token whose bytes the text does
 * not show (a special token) keeps its entry, streamed or not. */
START_TEST(test_logprobs_kept_without_stop)
{
	for (int stream = 0; stream < 2; stream++) {
		api_request *req = make(
		    API_CHAT, stream ? "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
		                       "\"logprobs\":true,\"stream\":true}"
		                     : "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
		                       "\"logprobs\":true}");
		mllm_buf out;
		int status, n_entries = 0;
		mllm_buf_init(&out, 1 << 20);
		ck_assert_int_eq(api_request_begin(req, &out), 0);
		feed(req, 0, ev_token(0, 10, "Hi", "Hi", -0.5f), &out);
		{
			/* a special token (</s>, id 2, under ignore_eos): the text
			 * skips it; an alternative </s> too */
			mllm_event sp = ev_token(0, 2, "", "</s>", -0.5f);
			sp.token_out_len = 0;
			sp.n_top = 2;
			sp.top[0] = (mllm_top_logprob){2, -0.5f};
			sp.top[1] = (mllm_top_logprob){10, -1.5f};
			feed(req, 0, sp, &out);
		}
		feed(req, 0, ev_token(0, 12, " you", " you", -0.5f), &out);
		feed(req, 0, ev_done(0, MLLM_FINISH_STOP, 3, 0, 3), &out);
		ck_assert_int_eq(api_request_end(req, &out, &status), 0);
		if (stream) {
			json_t *evs[32];
			bool saw_done = false;
			int n = sse_split(&out, evs, 32, &saw_done);
			for (int i = 0; i < n; i++) {
				json_t *c = json_array_get(json_object_get(evs[i], "choices"), 0);
				json_t *lc =
				    json_object_get(json_object_get(c, "logprobs"), "content");
				for (size_t k = 0; k < json_array_size(lc); k++)
					check_entry_bytes(json_array_get(lc, k),
					                  n_entries + (int)k);
				n_entries += (int)json_array_size(lc);
				json_decref(evs[i]);
			}
		} else {
			json_t *j = json_loadb(out.data, out.len, 0, NULL);
			json_t *c = json_array_get(json_object_get(j, "choices"), 0);
			json_t *lc = json_object_get(json_object_get(c, "logprobs"), "content");
			n_entries = (int)json_array_size(lc);
			for (int k = 0; k < n_entries; k++)
				check_entry_bytes(json_array_get(lc, (size_t)k), k);
			json_decref(j);
		}
		ck_assert_int_eq(n_entries, 3);
		mllm_buf_free(&out);
		api_request_free(req);
	}
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("api_render");
	TCase *tc = tcase_create("render");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_stream_completion_bytes);
	tcase_add_test(tc, test_stream_chat);
	tcase_add_test(tc, test_nonstream_prompt_major);
	tcase_add_test(tc, test_legacy_logprobs_echo);
	tcase_add_test(tc, test_offsets_without_echo);
	tcase_add_test(tc, test_stream_echo_logprobs);
	tcase_add_test(tc, test_echo_logprobs_every_choice);
	tcase_add_test(tc, test_chat_logprobs_bytes);
	tcase_add_test(tc, test_errors_mid_request);
	tcase_add_test(tc, test_invalid_utf8_text_repaired);
	tcase_add_test(tc, test_models);
	tcase_add_test(tc, test_nul_token);
	tcase_add_test(tc, test_alloc_failures);
	tcase_add_test(tc, test_schema_conformance);
	tcase_add_test(tc, test_chat_logprobs_concatenate_to_content);
	tcase_add_test(tc, test_logprobs_end_with_the_text);
	tcase_add_test(tc, test_logprobs_kept_without_stop);
	tcase_add_test(tc, test_legacy_top_logprobs_chosen_once);
	tcase_add_test(tc, test_logprobs_follow_the_text_not_the_bytes);
	tcase_set_timeout(tc, 60); /* one python3 run validates every document */
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
