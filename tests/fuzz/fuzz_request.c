/*
 * fuzz_request.c — the whole api/ path of a request body: parse and
 * validate (api/request.c), bind to a model (chat template, tokenization,
 * context checks), then render fake engine events through the streaming
 * (SSE) and non-streaming renderers (api/render.c) to the end; and the same
 * bytes as /tokenize and /detokenize bodies, and as /v1/responses bodies
 * (alone, and continued: the stored record of a successful response, its
 * GET renderings, then the same body again with that record as its
 * previous_response_id). Input: byte 0 picks the endpoint, byte 1 seeds
 * the fake events (how many tokens, which texts: slices of the body itself,
 * so token text is as arbitrary as the body), the rest is the body. Checks:
 * statuses are documented ones, every error renders as the 4-field OpenAI
 * error object, every response is valid JSON, well-formed SSE ending in
 * exactly one [DONE], or (Responses) a typed event stream whose
 * sequence_numbers count from 0 and whose last event ends the response.
 */
#include "fuzz.h"

#include <jansson.h>

#include "api.h"

static mllm_tokenizer *tok;
static api_model_info model;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[1024], err[256];
	(void)argc;
	(void)argv;
	fuzz_fixture(path, sizeof path, "tokenizer/llama2/tokenizer.model");
	FUZZ_REQUIRE(mllm_tokenizer_load(path, &tok, err, sizeof err) == 0, path);
	/* A small context so the length errors are reachable too. */
	model = (api_model_info){.id = "tiny", .tok = tok, .n_ctx = 128, .created = 1};
	return 0;
}

static const api_model_info *lookup(void *ud, const char *id)
{
	(void)ud;
	return !id || strcmp(id, "tiny") == 0 ? &model : NULL;
}

static uint32_t rng;
static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return n ? rng % n : 0;
}

static void check_error(const api_error *e)
{
	mllm_buf b;
	json_t *j;
	FUZZ_CHECK(e->status == 400 || e->status == 404 || e->status == 413 || e->status == 503);
	mllm_buf_init(&b, 1 << 16);
	FUZZ_CHECK(api_error_render(e, &b) == 0);
	j = json_loadb(b.data, b.len, 0, NULL);
	FUZZ_CHECK(j != NULL);
	FUZZ_CHECK(json_object_size(json_object_get(j, "error")) == 4);
	json_decref(j);
	mllm_buf_free(&b);
}

static void check_sse(const mllm_buf *b)
{
	const char *p = b->data ? b->data : "", *end = p + b->len;
	int done = 0;
	while (p < end) {
		const char *sep = memmem(p, (size_t)(end - p), "\n\n", 2);
		FUZZ_CHECK(sep != NULL);
		FUZZ_CHECK(strncmp(p, "data: ", 6) == 0);
		if (strncmp(p + 6, "[DONE]", 6) == 0) {
			done++;
		} else {
			json_t *j = json_loadb(p + 6, (size_t)(sep - p - 6), JSON_ALLOW_NUL, NULL);
			FUZZ_CHECK(j != NULL);
			json_decref(j);
		}
		p = sep + 2;
	}
	FUZZ_CHECK(done == 1);
}

/* The Responses event stream: "event: T\ndata: {...}\n\n" blocks, the
 * data's type equal to T, sequence_number 0, 1, 2, ..., no [DONE], and
 * the last event one of the three that end a response. */
static void check_events(const mllm_buf *b)
{
	const char *p = b->data ? b->data : "", *end = p + b->len;
	json_int_t seq = 0;
	char last[64] = "";
	while (p < end) {
		const char *sep = memmem(p, (size_t)(end - p), "\n\n", 2), *nl, *data;
		json_t *j;
		FUZZ_CHECK(sep != NULL);
		FUZZ_CHECK(strncmp(p, "event: ", 7) == 0);
		nl = memchr(p, '\n', (size_t)(sep - p));
		FUZZ_CHECK(nl != NULL && (size_t)(nl - p - 7) < sizeof last);
		memcpy(last, p + 7, (size_t)(nl - p - 7));
		last[nl - p - 7] = '\0';
		data = nl + 1;
		FUZZ_CHECK(strncmp(data, "data: ", 6) == 0);
		j = json_loadb(data + 6, (size_t)(sep - data - 6), JSON_ALLOW_NUL, NULL);
		FUZZ_CHECK(j != NULL);
		FUZZ_CHECK(json_is_string(json_object_get(j, "type")) &&
		           strcmp(json_string_value(json_object_get(j, "type")), last) == 0);
		FUZZ_CHECK(json_integer_value(json_object_get(j, "sequence_number")) == seq);
		seq++;
		json_decref(j);
		p = sep + 2;
	}
	FUZZ_CHECK(strcmp(last, "response.completed") == 0 ||
	           strcmp(last, "response.incomplete") == 0 ||
	           strcmp(last, "response.failed") == 0);
}

static void slice(const uint8_t *body, size_t len, const char **t, size_t *tl)
{
	size_t at = rnd((uint32_t)len + 1), n = rnd(12);
	if (at + n > len)
		n = len - at;
	*t = (const char *)body + at;
	*tl = n;
}

static void run(api_request *req, const uint8_t *body, size_t len)
{
	mllm_buf out;
	int32_t np = api_request_n_submits(req);
	int rc;
	mllm_buf_init(&out, 64u << 20);
	FUZZ_CHECK(api_request_begin(req, &out) == 0);
	for (int32_t p = 0; p < np && !api_request_done(req); p++) {
		mllm_submit s;
		mllm_event ev;
		api_request_submit(req, p, &s);
		FUZZ_CHECK(s.n_prompt > 0);
		FUZZ_CHECK(s.n_prompt + (size_t)s.sampling.max_tokens <= (size_t)model.n_ctx);
		int32_t n_echo = (int32_t)rnd(3);
		for (int32_t k = 0; k < n_echo; k++) {
			memset(&ev, 0, sizeof ev);
			ev.kind = MLLM_EV_PROMPT;
			ev.token = (int32_t)rnd(32000);
			slice(body, len, &ev.token_text, &ev.token_text_len);
			ev.has_logprob = k > 0;
			ev.logprob = -1.5f;
			FUZZ_CHECK(api_request_feed(req, p, &ev, &out) == 0);
		}
		for (int32_t c = 0; c < s.n_choices; c++) {
			int n = (int)rnd(5);
			for (int t = 0; t < n; t++) {
				memset(&ev, 0, sizeof ev);
				ev.kind = MLLM_EV_TOKEN;
				ev.choice = c;
				ev.token = (int32_t)rnd(32000);
				slice(body, len, &ev.text, &ev.text_len);
				slice(body, len, &ev.token_text, &ev.token_text_len);
				ev.has_logprob = true;
				ev.logprob = -(float)rnd(100) / 10.0f;
				ev.n_top = (int32_t)rnd(4);
				for (int k = 0; k < ev.n_top; k++)
					ev.top[k] = (mllm_top_logprob){(int32_t)rnd(32000), -1.0f};
				FUZZ_CHECK(api_request_feed(req, p, &ev, &out) == 0);
			}
			memset(&ev, 0, sizeof ev);
			ev.kind = rnd(16) == 0 ? MLLM_EV_ERROR : MLLM_EV_DONE;
			ev.err = MLLM_EOVERLOADED;
			ev.choice = c;
			ev.finish = (mllm_finish)(1 + rnd(4));
			slice(body, len, &ev.text, &ev.text_len);
			ev.n_prompt_tokens = (int32_t)s.n_prompt;
			ev.n_completion_tokens = n;
			FUZZ_CHECK(api_request_feed(req, p, &ev, &out) == 0);
		}
	}
	{
		int status = 0;
		rc = api_request_end(req, &out, &status);
		FUZZ_CHECK(rc == 0);
		rc = status;
	}
	if (api_request_stream(req)) {
		FUZZ_CHECK(rc == 200);
		if (api_request_kind(req) == API_RESPONSES)
			check_events(&out);
		else
			check_sse(&out);
	} else {
		/* Token strings may hold "\u0000". */
		json_t *j = json_loadb(out.data, out.len, JSON_ALLOW_NUL, NULL);
		const char *ok = api_request_kind(req) == API_RESPONSES ? "output" : "choices";
		FUZZ_CHECK(rc == 200 || rc == 499 || (rc >= 500 && rc <= 503));
		FUZZ_CHECK(j != NULL);
		FUZZ_CHECK(json_object_get(j, rc == 200 ? ok : "error") != NULL);
		json_decref(j);
	}
	mllm_buf_free(&out);
}

/* A stored response's record: its renderings are JSON (input_items with a
 * query cut from the body: 200 or a 400 error), and it is returned for a
 * continuation (NULL when nothing is stored). */
static api_resp_record *record_of(api_request *req, const uint8_t *body, size_t len)
{
	api_resp_record *rec = NULL;
	mllm_buf out;
	api_error e;
	char query[64];
	const char *q;
	size_t ql;
	json_t *j;
	int st;
	FUZZ_CHECK(api_request_record(req, &rec) == 0);
	if (!rec)
		return NULL;
	FUZZ_CHECK(strncmp(api_resp_record_id(rec), "resp_", 5) == 0);
	FUZZ_CHECK(api_resp_record_bytes(rec) > 0);
	mllm_buf_init(&out, 64u << 20);
	FUZZ_CHECK(api_resp_record_render(rec, &out) == 0);
	j = json_loadb(out.data, out.len, JSON_ALLOW_NUL, NULL);
	FUZZ_CHECK(j != NULL && json_object_get(j, "output") != NULL);
	json_decref(j);
	out.len = 0;
	slice(body, len, &q, &ql);
	memcpy(query, q, ql);
	query[ql] = '\0';
	memset(&e, 0, sizeof e);
	st = api_resp_record_render_items(rec, query, &out, &e);
	if (st == 200) {
		j = json_loadb(out.data, out.len, JSON_ALLOW_NUL, NULL);
		FUZZ_CHECK(j != NULL && json_is_array(json_object_get(j, "data")));
		json_decref(j);
	} else {
		FUZZ_CHECK(st == 400);
		check_error(&e);
	}
	mllm_buf_free(&out);
	return rec;
}

/* One request through parse, prepare and its events; prev (NULL: none)
 * is the record it continues. With want_record, the record of a stored
 * success is returned (the caller unrefs it). */
static api_resp_record *generate(api_kind kind, const uint8_t *body, size_t len,
                                 const api_limits *lim, api_resp_record *prev, bool want_record)
{
	api_request *req = NULL;
	api_resp_record *rec = NULL;
	api_error e;
	const api_model_info *mi;
	int st = api_request_parse(kind, (const char *)body, len, lim, &req, &e);
	if (st != 0) {
		FUZZ_CHECK(req == NULL && (st == 400 || st == 413));
		check_error(&e);
		return NULL;
	}
	if (prev)
		api_request_set_previous(req, prev);
	mi = lookup(NULL, api_request_model(req));
	if (!mi) {
		FUZZ_CHECK(api_error_model_not_found(&e, api_request_model(req)) == 404);
		check_error(&e);
	} else if (api_request_prepare(req, mi, &e) != 0) {
		check_error(&e);
	} else {
		run(req, body, len);
		if (want_record)
			rec = record_of(req, body, len);
	}
	api_request_free(req);
	return rec;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	api_limits lim = API_LIMITS_DEFAULT;
	const uint8_t *body;
	size_t len;
	mllm_buf out;
	api_error e;
	int st, mode;
	if (size < 2)
		return 0;
	mode = data[0] & 7;
	rng = 0x9e3779b9u ^ data[1];
	body = data + 2;
	len = size - 2;
	lim.max_body_bytes = 1u << 16;
	mllm_buf_init(&out, 1 << 20);
	switch (mode) {
	case 0:
		generate(API_COMPLETION, body, len, &lim, NULL, false);
		break;
	case 1:
		generate(API_CHAT, body, len, &lim, NULL, false);
		break;
	case 4:
	case 5:
		generate(API_RESPONSES, body, len, &lim, NULL, false);
		break;
	case 6:
	case 7: {
		/* A response, then the same body continuing it. */
		api_resp_record *rec = generate(API_RESPONSES, body, len, &lim, NULL, true);
		if (rec) {
			api_resp_record *next = generate(API_RESPONSES, body, len, &lim, rec, true);
			api_resp_record_unref(next);
			api_resp_record_unref(rec);
		}
		break;
	}
	case 2:
		st = api_handle_tokenize((const char *)body, len, &lim, lookup, NULL, &out, &e);
		if (st == 200) {
			json_t *j = json_loadb(out.data, out.len, 0, NULL);
			FUZZ_CHECK(j != NULL);
			json_decref(j);
		} else if (st > 0) {
			check_error(&e);
		}
		break;
	case 3:
		st = api_handle_detokenize((const char *)body, len, &lim, lookup, NULL, &out, &e);
		if (st == 200) {
			json_t *j = json_loadb(out.data, out.len, JSON_ALLOW_NUL, NULL);
			FUZZ_CHECK(j != NULL);
			json_decref(j);
		} else if (st > 0) {
			check_error(&e);
		}
		break;
	}
	mllm_buf_free(&out);
	return 0;
}
