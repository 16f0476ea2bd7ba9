/*
 * test_render_reasoning.c — api/render.c's reasoning split, driven by a
 * scripted token stream (a test double for the engine's events): with a
 * model whose Jinja template shows <think>, an answer "<think>R</think>A"
 * becomes message.reasoning_content / message.reasoning = R and content =
 * A, streamed as reasoning deltas then content deltas with no chunk ever
 * carrying part of a marker, whatever the token boundaries (markers split
 * across tokens, a random split fuzz); a prompt that ends inside <think>
 * starts in the reasoning; a budget that ends inside the reasoning leaves
 * content empty with finish_reason length; usage counts reasoning tokens;
 * reasoning_format none and templates without markers change nothing.
 */
#include "harness.h"

#include <jansson.h>

#include "api_fixture.h"

/* api_request_end's status, or its error code. */
static int end_status(api_request *req, mllm_buf *out)
{
	int status = 0;
	int rc = api_request_end(req, out, &status);
	return rc < 0 ? rc : status;
}

static api_chat_template *tmpl;

/* A ChatML-like template with a thinking switch, like Qwen3's: the
 * generation prompt opens the think block itself when think_open is set. */
static const char *const think_src =
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "<|im_start|>assistant\n{% if think_open %}<think>\n{% endif %}";

static void setup(void)
{
	char err[256];
	api_fixture_setup(2048, 7);
	tmpl = api_chat_template_create();
	ck_assert_int_eq(api_chat_template_set_jinja(tmpl, think_src, strlen(think_src), "<s>",
	                                             "<|im_end|>", "test", err, sizeof err),
	                 0);
	model.chat_template = tmpl;
}

static void teardown_all(void)
{
	api_chat_template_free(tmpl);
	tmpl = NULL;
	teardown();
}

static api_request *make(const char *body)
{
	api_limits lim = API_LIMITS_DEFAULT;
	api_request *req;
	api_error e;
	int rc = api_request_parse(API_CHAT, body, strlen(body), &lim, &req, &e);
	ck_assert_msg(rc == 0, "%s: %s", body, e.message);
	rc = api_request_prepare(req, &model, &e);
	ck_assert_msg(rc == 0, "%s: %s", body, e.message);
	api_request_set_id(req, "chatcmpl-t", 123);
	return req;
}

static void feed_token(api_request *req, const char *text, mllm_buf *out)
{
	mllm_event ev;
	memset(&ev, 0, sizeof ev);
	ev.kind = MLLM_EV_TOKEN;
	ev.token = 42;
	ev.text = text;
	ev.text_len = strlen(text);
	ev.token_text = text;
	ev.token_text_len = strlen(text);
	ev.token_out = ev.token_text;
	ev.token_out_len = ev.token_text_len;
	ck_assert_int_eq(api_request_feed(req, 0, &ev, out), 0);
}

static void feed_done(api_request *req, mllm_finish f, int32_t n_completion, mllm_buf *out)
{
	mllm_event ev;
	memset(&ev, 0, sizeof ev);
	ev.kind = MLLM_EV_DONE;
	ev.text = "";
	ev.finish = f;
	ev.n_completion_tokens = n_completion;
	ck_assert_int_eq(api_request_feed(req, 0, &ev, out), 0);
}

static json_t *body_of(api_request *req)
{
	mllm_buf out;
	json_error_t je;
	json_t *o;
	mllm_buf_init(&out, 1 << 20);
	ck_assert_int_eq(end_status(req, &out), 200);
	o = json_loadb(out.data, out.len, 0, &je);
	ck_assert_msg(o != NULL, "%s", je.text);
	mllm_buf_free(&out);
	return o;
}

static const char *msg_field(json_t *body, const char *key)
{
	json_t *m = json_object_get(json_array_get(json_object_get(body, "choices"), 0), "message");
	json_t *v = json_object_get(m, key);
	return v ? json_string_value(v) : NULL;
}

static json_int_t reasoning_tokens(json_t *usage)
{
	json_t *d = json_object_get(usage, "completion_tokens_details");
	ck_assert_ptr_nonnull(d);
	return json_integer_value(json_object_get(d, "reasoning_tokens"));
}

START_TEST(test_split_non_streamed)
{
	static const char *const toks[] = {"<th",      "ink>",   "Let me", " think.</th",
	                                   "ink>\n\n", "Answer", "."};
	api_request *req = make("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
	mllm_buf out;
	json_t *body;
	mllm_buf_init(&out, 1 << 16);
	for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++)
		feed_token(req, toks[i], &out);
	feed_done(req, MLLM_FINISH_STOP, 7, &out);
	ck_assert_uint_eq(out.len, 0);
	body = body_of(req);
	ck_assert_str_eq(msg_field(body, "content"), "Answer.");
	ck_assert_str_eq(msg_field(body, "reasoning_content"), "Let me think.");
	ck_assert_str_eq(msg_field(body, "reasoning"), "Let me think.");
	/* Five tokens touched the think block (its markers included). */
	ck_assert_int_eq(reasoning_tokens(json_object_get(body, "usage")), 5);
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(json_object_get(body, "usage"), "completion_tokens")),
	                 7);
	json_decref(body);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

typedef struct {
	char reasoning[512], content[512];
	int n_reasoning_chunks, n_content_chunks;
	bool content_before_reasoning; /* a reasoning chunk after a content one */
	bool marker_piece;             /* '<' or '>' in any chunk */
	const char *finish;
} streamed;

/* Splits the SSE bytes and gathers what the chunks say. */
static void read_stream(const mllm_buf *b, streamed *s)
{
	const char *p = b->data ? b->data : "";
	const char *end = p + b->len;
	memset(s, 0, sizeof *s);
	while (p < end) {
		const char *sep = strstr(p, "\n\n");
		json_error_t je;
		json_t *o, *ch, *delta, *r, *c, *rr;
		ck_assert_ptr_nonnull(sep);
		if (strncmp(p, "data: [DONE]", 12) == 0)
			break;
		o = json_loadb(p + 6, (size_t)(sep - p - 6), 0, &je);
		ck_assert_msg(o != NULL, "%s", je.text);
		ch = json_array_get(json_object_get(o, "choices"), 0);
		delta = json_object_get(ch, "delta");
		r = json_object_get(delta, "reasoning_content");
		rr = json_object_get(delta, "reasoning");
		c = json_object_get(delta, "content");
		if (r) {
			ck_assert_ptr_nonnull(rr);
			ck_assert_str_eq(json_string_value(r), json_string_value(rr));
			ck_assert_ptr_null(c);
			ck_assert_uint_gt(json_string_length(r), 0);
			strcat(s->reasoning, json_string_value(r));
			s->n_reasoning_chunks++;
			if (s->n_content_chunks)
				s->content_before_reasoning = true;
			if (strpbrk(json_string_value(r), "<>"))
				s->marker_piece = true;
		} else if (c && json_string_length(c) > 0) {
			strcat(s->content, json_string_value(c));
			s->n_content_chunks++;
			if (strpbrk(json_string_value(c), "<>"))
				s->marker_piece = true;
		}
		if (json_is_string(json_object_get(ch, "finish_reason")))
			s->finish =
			    json_string_value(json_object_get(ch, "finish_reason")) == NULL
			        ? NULL
			        : (strcmp(json_string_value(json_object_get(ch, "finish_reason")),
			                  "length") == 0
			               ? "length"
			               : "stop");
		json_decref(o);
		p = sep + 2;
	}
}

START_TEST(test_split_streamed)
{
	static const char *const toks[] = {"<",  "think", ">", "Let me",     " think.",
	                                   "</", "think", ">", "\n\nAnswer", "."};
	api_request *req =
	    make("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":true,"
	         "\"stream_options\":{\"include_usage\":true}}");
	mllm_buf out;
	streamed s;
	mllm_buf_init(&out, 1 << 16);
	ck_assert_int_eq(api_request_begin(req, &out), 0);
	for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++)
		feed_token(req, toks[i], &out);
	feed_done(req, MLLM_FINISH_STOP, 10, &out);
	ck_assert_int_eq(end_status(req, &out), 200);
	read_stream(&out, &s);
	ck_assert_str_eq(s.reasoning, "Let me think.");
	ck_assert_str_eq(s.content, "Answer.");
	ck_assert_int_eq(s.n_reasoning_chunks, 2);
	ck_assert(!s.content_before_reasoning);
	ck_assert(!s.marker_piece);
	ck_assert_str_eq(s.finish, "stop");
	/* The usage chunk counts the reasoning tokens: "<" .. ">" of the
	 * closing marker, 8 tokens. */
	ck_assert_ptr_nonnull(
	    strstr(out.data, "\"completion_tokens_details\":{\"reasoning_tokens\":8}"));
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

START_TEST(test_prompt_opens_think)
{
	api_request *req = make("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
	                        "\"chat_template_kwargs\":{\"think_open\":true}}");
	mllm_buf out;
	json_t *body;
	mllm_buf_init(&out, 1 << 16);
	feed_token(req, "reason", &out);
	feed_token(req, "ing</think>", &out);
	feed_token(req, "\n\nok", &out);
	feed_done(req, MLLM_FINISH_STOP, 3, &out);
	body = body_of(req);
	ck_assert_str_eq(msg_field(body, "reasoning_content"), "reasoning");
	ck_assert_str_eq(msg_field(body, "content"), "ok");
	json_decref(body);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

START_TEST(test_budget_ends_in_reasoning)
{
	api_request *req = make("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
	                        "\"max_tokens\":3}");
	mllm_buf out;
	json_t *body, *choice;
	mllm_buf_init(&out, 1 << 16);
	feed_token(req, "<think>", &out);
	feed_token(req, "still", &out);
	feed_token(req, " thinking</th", &out);
	feed_done(req, MLLM_FINISH_LENGTH, 3, &out);
	body = body_of(req);
	choice = json_array_get(json_object_get(body, "choices"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(choice, "finish_reason")), "length");
	/* Not the half-thought: the answer is empty. The held-back "</th"
	 * was not a marker after all, so it is reasoning text. */
	ck_assert_str_eq(msg_field(body, "content"), "");
	ck_assert_str_eq(msg_field(body, "reasoning_content"), "still thinking</th");
	ck_assert_int_eq(reasoning_tokens(json_object_get(body, "usage")), 3);
	json_decref(body);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

START_TEST(test_no_think_block)
{
	api_request *req = make("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
	mllm_buf out;
	json_t *body;
	mllm_buf_init(&out, 1 << 16);
	feed_token(req, "  <", &out);
	feed_token(req, "b>bold", &out);
	feed_token(req, " <think> later is text", &out);
	feed_done(req, MLLM_FINISH_STOP, 3, &out);
	body = body_of(req);
	ck_assert_str_eq(msg_field(body, "content"), "  <b>bold <think> later is text");
	ck_assert_ptr_null(msg_field(body, "reasoning_content"));
	ck_assert_ptr_null(msg_field(body, "reasoning"));
	ck_assert_int_eq(reasoning_tokens(json_object_get(body, "usage")), 0);
	json_decref(body);
	mllm_buf_free(&out);
	api_request_free(req);
}
END_TEST

START_TEST(test_reasoning_format_none)
{
	char err[256];
	api_request *req;
	mllm_buf out;
	json_t *body;
	ck_assert_str_eq(api_chat_template_reasoning(tmpl), "split");
	ck_assert_int_eq(api_chat_template_set(tmpl, "reasoning_format", "none", err, sizeof err),
	                 0);
	ck_assert_str_eq(api_chat_template_reasoning(tmpl), "none");
	ck_assert_int_eq(api_chat_template_set(tmpl, "reasoning_format", "maybe", err, sizeof err),
	                 MLLM_EINVAL);
	req = make("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
	mllm_buf_init(&out, 1 << 16);
	feed_token(req, "<think>x</think>y", &out);
	feed_done(req, MLLM_FINISH_STOP, 1, &out);
	body = body_of(req);
	ck_assert_str_eq(msg_field(body, "content"), "<think>x</think>y");
	ck_assert_ptr_null(msg_field(body, "reasoning_content"));
	ck_assert_ptr_null(
	    json_object_get(json_object_get(body, "usage"), "completion_tokens_details"));
	json_decref(body);
	mllm_buf_free(&out);
	api_request_free(req);
	/* Presets never split unless told to. */
	ck_assert_str_eq(api_chat_template_reasoning(NULL), "none");
}
END_TEST

START_TEST(test_random_token_boundaries)
{
	static const char full[] = "\n<think>\nStep one; then two.\n</think>\n\nThe answer is 4.";
	uint64_t st = 0x5eed;
	for (int iter = 0; iter < 500; iter++) {
		api_request *req =
		    make("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":true}");
		mllm_buf out;
		streamed s;
		size_t at = 0, n = strlen(full);
		mllm_buf_init(&out, 1 << 16);
		ck_assert_int_eq(api_request_begin(req, &out), 0);
		while (at < n) {
			char piece[16];
			size_t k;
			st = st * 6364136223846793005ull + 1442695040888963407ull;
			k = 1 + (size_t)((st >> 33) % 6);
			if (k > n - at)
				k = n - at;
			memcpy(piece, full + at, k);
			piece[k] = '\0';
			feed_token(req, piece, &out);
			at += k;
		}
		feed_done(req, MLLM_FINISH_STOP, 1, &out);
		ck_assert_int_eq(end_status(req, &out), 200);
		read_stream(&out, &s);
		ck_assert_str_eq(s.reasoning, "\nStep one; then two.\n");
		ck_assert_str_eq(s.content, "The answer is 4.");
		ck_assert(!s.content_before_reasoning);
		ck_assert(!s.marker_piece);
		mllm_buf_free(&out);
		api_request_free(req);
	}
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("render_reasoning");
	TCase *tc = tcase_create("split");
	tcase_add_checked_fixture(tc, setup, teardown_all);
	tcase_add_test(tc, test_split_non_streamed);
	tcase_add_test(tc, test_split_streamed);
	tcase_add_test(tc, test_prompt_opens_think);
	tcase_add_test(tc, test_budget_ends_in_reasoning);
	tcase_add_test(tc, test_no_think_block);
	tcase_add_test(tc, test_reasoning_format_none);
	tcase_add_test(tc, test_random_token_boundaries);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
