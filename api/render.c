/*
 * render.c — engine events → OpenAI response bytes: the non-streamed
 * text_completion / chat.completion bodies, the SSE chunks of a stream
 * (role chunk, content deltas, finish chunk, usage chunk, [DONE]), both
 * logprobs shapes (legacy completions and chat), usage, and /v1/models.
 *
 * The engine already holds back partial UTF-8 and partial stop strings, so
 * an event's text is rendered as given. Non-streamed requests accumulate
 * per choice (text and logprob entries) until api_request_end(); streamed
 * ones keep only a running text_offset per choice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

/* ---- models ----------------------------------------------------------------- */

static json_t *model_json(const api_model_info *m)
{
	json_t *o = json_object();
	MLLM_ASSERT(o);
	json_object_set_new(o, "id", api__json_text(m->id, strlen(m->id)));
	json_object_set_new(o, "object", json_string("model"));
	json_object_set_new(o, "created", json_integer(m->created));
	json_object_set_new(o, "owned_by", json_string(m->owned_by ? m->owned_by : "mobilellmd"));
	json_object_set_new(o, "max_model_len", json_integer(m->n_ctx));
	/* What constrained decoding offers (docs/api.md): schemas are
	 * enforced; a tool call is generated when forced (tool_choice
	 * required / named); "auto" parses calls in the syntax the model's
	 * chat template shows ("hermes", "llama3_json"), else it means plain
	 * text ("plain_text"); "parallel": whether one answer may hold
	 * several calls (llama3_json's syntax has no separator). */
	int syntax = api__tool_syntax(m->chat_template);
	json_object_set_new(o, "capabilities",
	                    json_pack("{s:[sss],s:{s:b,s:s,s:b}}", "response_format", "text",
	                              "json_object", "json_schema", "tool_calls", "forced", 1,
	                              "auto", api__tool_syntax_name(syntax), "parallel",
	                              api__tool_syntax_parallel(syntax)));
	return o;
}

int api_render_models(const api_model_info *const *models, int n_models, mllm_buf *out)
{
	json_t *o = json_object(), *data = json_array();
	int rc;
	MLLM_ASSERT(o && data);
	for (int i = 0; i < n_models; i++)
		json_array_append_new(data, model_json(models[i]));
	json_object_set_new(o, "object", json_string("list"));
	json_object_set_new(o, "data", data);
	rc = api__json_append(o, out);
	json_decref(o);
	return rc;
}

int api_render_model(const api_model_info *m, mllm_buf *out)
{
	json_t *o = model_json(m);
	int rc;
	/* Which chat format the model is prompted with: its own Jinja
	 * template (and where it came from) or a preset. */
	json_object_set_new(o, "chat_template",
	                    json_string(api_chat_template_source(m->chat_template)));
	json_object_set_new(o, "reasoning_format",
	                    json_string(api_chat_template_reasoning(m->chat_template)));
	rc = api__json_append(o, out);
	json_decref(o);
	return rc;
}

/* ---- logprob entries ---------------------------------------------------------- */

/* A sampled token that is one space and shows nothing: the space that
 * starts a BOS-only prompt's output, which the detokenizer drops (the only
 * way a lone space adds no text). Its entry drops it too, so the tokens
 * still concatenate to the text. */
static bool lone_space_dropped(const char *text, size_t len, const mllm_event *ev)
{
	return ev->kind == MLLM_EV_TOKEN && ev->token_out_len == 0 && len == 1 && text[0] == ' ';
}

/* Drops a leading space from e's token string and from its text. */
static void lp_drop_space(api__lp *e)
{
	if (e->text_len > 0 && e->text[0] == ' ') {
		memmove(e->text, e->text + 1, e->text_len); /* with the NUL */
		e->text_len--;
	}
	if (e->out_len > 0 && e->out[0] == ' ') {
		memmove(e->out, e->out + 1, e->out_len); /* with the NUL */
		e->out_len--;
	}
}

static int lp_push(api__lp_list *l, const mllm_event *ev)
{
	api__lp *e;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		api__lp *v = mllm_try_realloc(l->v, cap * sizeof *v);
		if (!v)
			return MLLM_ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	e = &l->v[l->n];
	memset(e, 0, sizeof *e);
	e->token = ev->token;
	e->has_logprob = ev->has_logprob;
	e->logprob = ev->logprob;
	{
		const char *o = ev->kind == MLLM_EV_TOKEN ? ev->token_out : ev->token_text;
		size_t on = ev->kind == MLLM_EV_TOKEN ? ev->token_out_len : ev->token_text_len;
		e->text = mllm_try_malloc(ev->token_text_len + 1);
		e->out = mllm_try_malloc(on + 1);
		if (!e->text || !e->out) {
			free(e->text);
			free(e->out);
			return MLLM_ENOMEM;
		}
		if (ev->token_text_len)
			memcpy(e->text, ev->token_text, ev->token_text_len);
		e->text[ev->token_text_len] = '\0';
		e->text_len = ev->token_text_len;
		if (on)
			memcpy(e->out, o, on);
		e->out[on] = '\0';
		e->out_len = on;
		if (lone_space_dropped(e->text, e->text_len, ev))
			lp_drop_space(e);
	}
	if (ev->has_logprob && ev->n_top > 0) {
		int32_t nt = ev->n_top > MLLM_MAX_TOP_LOGPROBS ? MLLM_MAX_TOP_LOGPROBS : ev->n_top;
		e->top = mllm_try_malloc((size_t)nt * sizeof *e->top);
		if (!e->top) {
			free(e->text);
			free(e->out);
			return MLLM_ENOMEM;
		}
		memcpy(e->top, ev->top, (size_t)nt * sizeof *e->top);
		e->n_top = nt;
	}
	l->n++;
	return 0;
}

/* A view of an event as an entry (no copies) for streamed chunks. */
static api__lp lp_view(const mllm_event *ev)
{
	api__lp e = {.token = ev->token,
	             .has_logprob = ev->has_logprob,
	             .logprob = ev->logprob,
	             .text = (char *)ev->token_text,
	             .text_len = ev->token_text_len,
	             .out = (char *)ev->token_out,
	             .out_len = ev->token_out_len,
	             .n_top = ev->has_logprob ? ev->n_top : 0,
	             .top = (mllm_top_logprob *)ev->top};
	if (e.n_top > MLLM_MAX_TOP_LOGPROBS)
		e.n_top = MLLM_MAX_TOP_LOGPROBS;
	if (lone_space_dropped(e.text, e.text_len, ev)) {
		e.text = (char *)"";
		e.text_len = 0;
	}
	return e;
}

/* ---- logprob entries in step with the text ---------------------------------- *
 *
 * The entries' token strings must concatenate to the text the response
 * carries (docs/api.md), but the text is not quite the tokens' bytes: a
 * text that starts the output (a BOS-only prompt) loses SentencePiece's
 * leading space, and a stop string — whose tokens were sampled and
 * logprob'd — is never released. So the first entry loses a space the
 * text does not have, and entries past the text's end are dropped (the
 * one that straddles it is cut to the part before it). Streams hold each
 * entry back until its text has been released, as the engine holds the
 * text back while it may still be part of a stop string. What an entry
 * accounts for is its `out`, the text the detokenizer gave for it (none
 * for a special token the text skips, U+FFFD for invalid bytes), not its
 * token's bytes. Choices whose text is cut up further (reasoning split,
 * tool calls) are left alone. */

static bool lp_aligned(const api_request *req, const api__choice *c)
{
	return req->logprobs >= 0 && c->rstate == API__R_OFF &&
	       !(api__chatlike(req) && req->tool_parse);
}

static void lp_entry_free(api__lp *e)
{
	free(e->text);
	free(e->out);
	free(e->top);
	e->text = NULL;
	e->out = NULL;
	e->top = NULL;
	e->text_len = 0;
	e->out_len = 0;
	e->n_top = 0;
}

/* The first entry of l->v[first..] that shows text, when the text starts
 * with first_byte: loses a leading space the text does not have. */
static void lp_fix_first(api__lp_list *l, size_t first, char first_byte)
{
	size_t i = first;
	while (i < l->n && l->v[i].out_len == 0)
		i++;
	/* The detokenizer may have dropped it already (a BOS-only prompt:
	 * out "Once" for the token " Once"); the token string still has it. */
	if (i < l->n && first_byte != ' ' &&
	    (l->v[i].out[0] == ' ' || (l->v[i].text_len > 0 && l->v[i].text[0] == ' ')))
		lp_drop_space(&l->v[i]);
}

/* Entries l->v[from..] show more text than the `room` bytes left for
 * them: keeps what fits (cutting the straddler: its text, and its token
 * string when that is the same bytes), drops the rest. */
static void lp_cut_tail(api__lp_list *l, size_t from, size_t room)
{
	size_t i = from, used = 0;
	for (; i < l->n && used + l->v[i].out_len <= room; i++)
		used += l->v[i].out_len;
	if (i < l->n && used < room) {
		api__lp *e = &l->v[i];
		size_t keep = room - used;
		if (e->text_len == e->out_len && memcmp(e->text, e->out, e->out_len) == 0) {
			e->text_len = keep;
			e->text[keep] = '\0';
		}
		e->out_len = keep;
		e->out[keep] = '\0';
		used = room;
		i++;
	}
	for (size_t k = i; k < l->n; k++)
		lp_entry_free(&l->v[k]);
	l->n = i;
}

/* Non-streamed: the entries of choice c against its final text, which
 * ended with a stop string when stop_string. */
static void lp_align(api__choice *c, bool stop_string)
{
	const char *t = c->text.data ? c->text.data + c->text0 : "";
	size_t n = c->text.len - c->text0, have = 0;
	if (c->lp.n == 0)
		return;
	if (n > 0)
		lp_fix_first(&c->lp, 0, t[0]);
	for (size_t i = 0; i < c->lp.n; i++)
		have += c->lp.v[i].out_len;
	if (stop_string && have > n)
		lp_cut_tail(&c->lp, 0, n);
}

/* Legacy completions shape: appends n entries to the four arrays. The
 * text_offset of entry i (in characters from the start of the prompt, as
 * OpenAI counts) is fixed[i] when given (prompt tokens), else *offset,
 * which advances. Like OpenAI, top_logprobs always holds the chosen token
 * too (so up to logprobs + 1 entries). */
static void legacy_add(const api_request *req, json_t *obj, const api__lp *v, size_t n,
                       const size_t *fixed, size_t n_fixed, size_t *offset)
{
	json_t *tokens = json_object_get(obj, "tokens");
	json_t *lps = json_object_get(obj, "token_logprobs");
	json_t *tops = json_object_get(obj, "top_logprobs");
	json_t *offs = json_object_get(obj, "text_offset");
	char buf[MLLM_DETOK_MAX];
	for (size_t i = 0; i < n; i++) {
		const api__lp *e = &v[i];
		json_array_append_new(tokens, api__json_token(e->text ? e->text : "", e->text_len));
		json_array_append_new(lps,
		                      e->has_logprob ? api__json_logprob(e->logprob) : json_null());
		if (e->has_logprob) {
			json_t *d = json_object();
			MLLM_ASSERT(d);
			for (int32_t k = 0; k < e->n_top; k++) {
				size_t bl = mllm_tokenizer_token_bytes(req->m->tok, e->top[k].id,
				                                       buf, sizeof buf);
				json_t *key = api__json_token(buf, bl);
				/* By length: a token may be a NUL byte. */
				json_object_setn_new(d, json_string_value(key),
				                     json_string_length(key),
				                     api__json_logprob(e->top[k].logprob));
				json_decref(key);
			}
			/* The chosen token, when it is not among the best: under its
			 * own bytes, as they are keyed (e->text may have lost its
			 * leading space or been cut at a stop string, and would then
			 * name another token, or repeat this one). */
			{
				size_t bl = mllm_tokenizer_token_bytes(req->m->tok, e->token, buf,
				                                       sizeof buf);
				json_t *key = api__json_token(buf, bl);
				if (!json_object_getn(d, json_string_value(key),
				                      json_string_length(key)))
					json_object_setn_new(d, json_string_value(key),
					                     json_string_length(key),
					                     api__json_logprob(e->logprob));
				json_decref(key);
			}
			json_array_append_new(tops, d);
		} else {
			json_array_append_new(tops, json_null());
		}
		if (fixed)
			json_array_append_new(
			    offs, json_integer((json_int_t)fixed[i < n_fixed ? i : n_fixed - 1]));
		else
			json_array_append_new(offs, json_integer((json_int_t)*offset));
		*offset += api__utf8_chars(e->out ? e->out : "", e->out_len);
	}
}

static json_t *legacy_new(void)
{
	json_t *o = json_object();
	MLLM_ASSERT(o);
	json_object_set_new(o, "tokens", json_array());
	json_object_set_new(o, "token_logprobs", json_array());
	json_object_set_new(o, "top_logprobs", json_array());
	json_object_set_new(o, "text_offset", json_array());
	return o;
}

static json_t *bytes_array(const char *p, size_t n)
{
	json_t *a = json_array();
	MLLM_ASSERT(a);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer((unsigned char)p[i]));
	return a;
}

static json_t *chat_logprobs(const api_request *req, const api__lp *v, size_t n);

json_t *api__logprob_entries(const api_request *req, const api__choice *c, size_t from, size_t to)
{
	json_t *o = chat_logprobs(req, c->lp.v + from, to - from);
	json_t *a = json_incref(json_object_get(o, "content"));
	json_decref(o);
	return a;
}

size_t api__logprob_release(const api_request *req, api__choice *c, size_t from, size_t *bytes,
                            bool *fixed)
{
	size_t to = from;
	if (!lp_aligned(req, c))
		return from;
	if (!*fixed && c->text.len > c->text0 && c->lp.n > 0) {
		lp_fix_first(&c->lp, 0, c->text.data[c->text0]);
		*fixed = true;
	}
	while (to < c->lp.n && *bytes + c->lp.v[to].out_len <= c->text.len - c->text0)
		*bytes += c->lp.v[to++].out_len;
	return to;
}

/* Chat shape: {"content":[{"token","logprob","bytes","top_logprobs"}],
 * "refusal":null}. */
static json_t *chat_logprobs(const api_request *req, const api__lp *v, size_t n)
{
	json_t *o = json_object(), *content = json_array();
	char buf[MLLM_DETOK_MAX];
	MLLM_ASSERT(o && content);
	for (size_t i = 0; i < n; i++) {
		const api__lp *e = &v[i];
		json_t *item = json_object(), *tops = json_array();
		MLLM_ASSERT(item && tops);
		json_object_set_new(item, "token",
		                    api__json_token(e->text ? e->text : "", e->text_len));
		json_object_set_new(item, "logprob", api__json_logprob(e->logprob));
		/* A control token the text does not show (Llama-3's reserved
		 * ones, an EOS under ignore_eos) keeps its name as token but
		 * has no bytes, so that the bytes still join to the content;
		 * as an alternative the same. */
		bool blank = e->out_len == 0 && mllm_tokenizer_is_control(req->m->tok, e->token);
		json_object_set_new(item, "bytes",
		                    bytes_array(e->text ? e->text : "", blank ? 0 : e->text_len));
		for (int32_t k = 0; k < e->n_top; k++) {
			size_t bl =
			    mllm_tokenizer_token_bytes(req->m->tok, e->top[k].id, buf, sizeof buf);
			json_t *t = json_object();
			MLLM_ASSERT(t);
			json_object_set_new(t, "token", api__json_token(buf, bl));
			json_object_set_new(t, "logprob", api__json_logprob(e->top[k].logprob));
			json_object_set_new(
			    t, "bytes",
			    bytes_array(buf, mllm_tokenizer_is_control(req->m->tok, e->top[k].id)
			                         ? 0
			                         : bl));
			json_array_append_new(tops, t);
		}
		json_object_set_new(item, "top_logprobs", tops);
		json_array_append_new(content, item);
	}
	json_object_set_new(o, "content", content);
	/* Required (nullable) in OpenAI's schema: these models never refuse. */
	json_object_set_new(o, "refusal", json_null());
	return o;
}

/* ---- shared pieces -------------------------------------------------------------- */

static const char *finish_name(mllm_finish f)
{
	return f == MLLM_FINISH_LENGTH ? "length" : "stop";
}

/* A streamed choice whose output ended on its own after complete tool
 * calls ends with "tool_calls". */
static const char *choice_finish(const api_request *req, int32_t idx, mllm_finish f)
{
	if (req->kind == API_CHAT && req->tool_parse && f == MLLM_FINISH_STOP &&
	    api__tool_calls_done(req, idx))
		return "tool_calls";
	return finish_name(f);
}

static json_t *usage_json(const api_request *req)
{
	api_usage u;
	json_t *o = json_object(), *d = json_object();
	MLLM_ASSERT(o && d);
	api_request_usage(req, &u);
	json_object_set_new(o, "prompt_tokens", json_integer(u.prompt_tokens));
	json_object_set_new(o, "completion_tokens", json_integer(u.completion_tokens));
	json_object_set_new(o, "total_tokens", json_integer(u.prompt_tokens + u.completion_tokens));
	json_object_set_new(d, "cached_tokens", json_integer(u.cached_tokens));
	json_object_set_new(o, "prompt_tokens_details", d);
	if (req->split) {
		int64_t n = 0;
		for (int32_t i = 0; i < req->n_prompts * req->n; i++)
			n += req->choices[i].n_reasoning;
		json_object_set_new(o, "completion_tokens_details",
		                    json_pack("{sI}", "reasoning_tokens", (json_int_t)n));
	}
	return o;
}

/* {"id","object","created","model","choices":[choice]} (+ "usage": null). */
static json_t *envelope(const api_request *req, bool chunk, json_t *choices)
{
	json_t *o = json_object();
	MLLM_ASSERT(o);
	json_object_set_new(o, "id", api__json_text(req->id, strlen(req->id)));
	json_object_set_new(o, "object",
	                    json_string(req->kind == API_CHAT
	                                    ? (chunk ? "chat.completion.chunk" : "chat.completion")
	                                    : "text_completion"));
	json_object_set_new(o, "created", json_integer(req->created));
	json_object_set_new(o, "model", api__json_text(req->m->id, strlen(req->m->id)));
	if (choices)
		json_object_set_new(o, "choices", choices);
	return o;
}

static int emit_chunk(const api_request *req, json_t *choice, mllm_buf *out)
{
	json_t *choices = json_array();
	json_t *o;
	int rc;
	MLLM_ASSERT(choices);
	json_array_append_new(choices, choice);
	o = envelope(req, true, choices);
	if (req->include_usage)
		json_object_set_new(o, "usage", json_null());
	rc = api__sse_append(o, out);
	json_decref(o);
	return rc;
}

int api__emit_chunk(const api_request *req, json_t *choice, mllm_buf *out)
{
	return emit_chunk(req, choice, out);
}

/* Completions chunk: text, legacy logprobs (or null), finish_reason. */
static int emit_text_chunk(const api_request *req, int32_t index, const char *text, size_t len,
                           json_t *logprobs, const char *finish, mllm_buf *out)
{
	json_t *c = json_object();
	MLLM_ASSERT(c);
	json_object_set_new(c, "index", json_integer(index));
	json_object_set_new(c, "text", api__json_text(text, len));
	json_object_set_new(c, "logprobs", logprobs ? logprobs : json_null());
	json_object_set_new(c, "finish_reason", finish ? json_string(finish) : json_null());
	return emit_chunk(req, c, out);
}

/* Chat chunk: delta (role and/or content, or empty), logprobs, finish. */
static int emit_delta_chunk(const api_request *req, int32_t index, bool role, const char *text,
                            size_t len, json_t *logprobs, const char *finish, mllm_buf *out)
{
	json_t *c = json_object(), *delta = json_object();
	MLLM_ASSERT(c && delta);
	if (role)
		json_object_set_new(delta, "role", json_string("assistant"));
	if (text)
		json_object_set_new(delta, "content", api__json_text(text, len));
	else if (role)
		json_object_set_new(delta, "content", json_null());
	json_object_set_new(c, "index", json_integer(index));
	json_object_set_new(c, "delta", delta);
	json_object_set_new(c, "logprobs", logprobs ? logprobs : json_null());
	json_object_set_new(c, "finish_reason", finish ? json_string(finish) : json_null());
	return emit_chunk(req, c, out);
}

/* ---- reasoning split ------------------------------------------------------------
 * A model that thinks first writes "<think>", its reasoning, "</think>", then
 * the answer. The markers are matched as text (they may span several
 * tokens), so bytes that could be the start of a marker are held back until
 * the next token says; a chunk never carries part of a marker. */

#define THINK_OPEN  "<think>"
#define THINK_CLOSE "</think>"

int api__reasoning_start(const api_chat_template *t, const char *prompt, size_t len)
{
	const char *last = NULL;
	if (!api__chat_template_splits(t))
		return API__R_OFF;
	/* The generation prompt opened the block itself ("...<think>\n"):
	 * the output starts inside the reasoning. */
	for (const char *p = prompt;
	     (p = memmem(p, len - (size_t)(p - prompt), THINK_OPEN, strlen(THINK_OPEN))); p++)
		last = p;
	if (last) {
		const char *q = last + strlen(THINK_OPEN);
		while (q < prompt + len && (*q == '\n' || *q == ' ' || *q == '\r' || *q == '\t'))
			q++;
		if (q == prompt + len)
			return API__R_REASON;
	}
	return API__R_START;
}

typedef struct {
	bool reasoning;
	const char *p;
	size_t n;
} seg;

/* Length of the longest proper suffix of p[0..n) that begins marker. */
static size_t partial_suffix(const char *p, size_t n, const char *marker)
{
	size_t m = strlen(marker);
	for (size_t k = m - 1 < n ? m - 1 : n; k > 0; k--) {
		if (memcmp(p + n - k, marker, k) == 0)
			return k;
	}
	return 0;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t';
}

/* Cuts work[0..n) (held bytes + new text) into reasoning and answer
 * segments (at most 3), advancing c->rstate and holding back a possible
 * partial marker unless flush. Sets *reasoned when any of it was inside
 * the reasoning block. */
static int reasoning_cut(api__choice *c, char *work, size_t n, bool flush, seg *segs,
                         bool *reasoned)
{
	int k = 0;
	char *p = work;
	size_t rem = n;
	c->n_hold = 0;
	while (rem > 0 || c->rstate == API__R_START) {
		if (c->rstate == API__R_START) {
			size_t i = 0, ol = strlen(THINK_OPEN);
			while (i < rem && is_blank(p[i]))
				i++;
			if (rem - i >= ol && memcmp(p + i, THINK_OPEN, ol) == 0) {
				c->rstate = API__R_REASON;
				c->saw_reasoning = true;
				*reasoned = true;
				p += i + ol;
				rem -= i + ol;
				continue;
			}
			if (!flush && rem - i < ol && rem < sizeof c->hold &&
			    memcmp(p + i, THINK_OPEN, rem - i) == 0) {
				/* Blanks, or the start of "<think>": wait. */
				memcpy(c->hold, p, rem);
				c->n_hold = rem;
				return k;
			}
			c->rstate = API__R_ANSWER;
			continue;
		}
		if (c->rstate == API__R_REASON) {
			const char *hit = memmem(p, rem, THINK_CLOSE, strlen(THINK_CLOSE));
			size_t keep;
			*reasoned = true;
			if (hit) {
				size_t before = (size_t)(hit - p);
				if (before > 0)
					segs[k++] = (seg){true, p, before};
				p += before + strlen(THINK_CLOSE);
				rem -= before + strlen(THINK_CLOSE);
				c->rstate = API__R_ANSWER_LSTRIP;
				continue;
			}
			keep = flush ? 0 : partial_suffix(p, rem, THINK_CLOSE);
			if (rem > keep)
				segs[k++] = (seg){true, p, rem - keep};
			memcpy(c->hold, p + rem - keep, keep);
			c->n_hold = keep;
			return k;
		}
		if (c->rstate == API__R_ANSWER_LSTRIP) {
			/* The answer starts after the blank line that follows
			 * "</think>". */
			while (rem > 0 && is_blank(*p)) {
				p++;
				rem--;
			}
			if (rem == 0)
				return k;
			c->rstate = API__R_ANSWER;
		}
		segs[k++] = (seg){false, p, rem};
		return k;
	}
	return k;
}

/* Chat chunk with reasoning: delta {"reasoning_content", "reasoning"}
 * (llama-server and DeepSeek read the first, vLLM and Ollama the second). */
static int emit_reasoning_chunk(const api_request *req, int32_t index, const char *text, size_t len,
                                json_t *logprobs, mllm_buf *out)
{
	json_t *c = json_object(), *delta = json_object();
	MLLM_ASSERT(c && delta);
	json_object_set_new(delta, "reasoning_content", api__json_text(text, len));
	json_object_set_new(delta, "reasoning", api__json_text(text, len));
	json_object_set_new(c, "index", json_integer(index));
	json_object_set_new(c, "delta", delta);
	json_object_set_new(c, "logprobs", logprobs ? logprobs : json_null());
	json_object_set_new(c, "finish_reason", json_null());
	return emit_chunk(req, c, out);
}

/* on_text for a choice that splits reasoning. */
static int on_text_split(api_request *req, int32_t idx, const mllm_event *ev, const char *text,
                         size_t len, bool with_lp, bool flush, mllm_buf *out)
{
	api__choice *c = &req->choices[idx];
	seg segs[4];
	bool reasoned = false;
	size_t n = c->n_hold + len;
	char *work = mllm_try_malloc(n + 1);
	int k, rc = 0;
	if (!work)
		return MLLM_ENOMEM;
	memcpy(work, c->hold, c->n_hold);
	memcpy(work + c->n_hold, text, len);
	k = reasoning_cut(c, work, n, flush, segs, &reasoned);
	/* Tokens held while "<think>" might be starting count once the
	 * output turns out to reason (they were the marker), else not. */
	if (ev->kind == MLLM_EV_TOKEN && c->rstate == API__R_START) {
		c->n_pending++;
	} else if (reasoned) {
		c->n_reasoning += c->n_pending + (ev->kind == MLLM_EV_TOKEN);
		c->n_pending = 0;
	} else {
		c->n_pending = 0;
	}
	if (!req->stream) {
		for (int i = 0; i < k && rc == 0; i++)
			rc = mllm_buf_append(segs[i].reasoning ? &c->reasoning : &c->text,
			                     segs[i].p, segs[i].n);
		if (rc == 0 && with_lp)
			rc = lp_push(&c->lp, ev);
		free(work);
		return rc;
	}
	if (req->tool_parse) {
		/* The answer is cut into content and calls by tools.c; the
		 * reasoning goes out as it comes. Logprobs are not streamed
		 * in this mode (as without reasoning). */
		for (int i = 0; i < k && rc == 0; i++)
			rc = segs[i].reasoning
			         ? emit_reasoning_chunk(req, idx, segs[i].p, segs[i].n, NULL, out)
			         : mllm_buf_append(&c->text, segs[i].p, segs[i].n);
		if (rc == 0)
			rc = api__tool_stream(req, idx, out, false);
		free(work);
		return rc;
	}
	for (int i = 0; i < k && rc == 0; i++) {
		json_t *lp = NULL;
		/* The token's logprobs ride on its last chunk. */
		if (with_lp && i == k - 1) {
			api__lp v = lp_view(ev);
			lp = chat_logprobs(req, &v, 1);
		}
		rc = segs[i].reasoning
		         ? emit_reasoning_chunk(req, idx, segs[i].p, segs[i].n, lp, out)
		         : emit_delta_chunk(req, idx, false, segs[i].p, segs[i].n, lp, NULL, out);
	}
	if (rc == 0 && k == 0 && with_lp) {
		api__lp v = lp_view(ev);
		rc = emit_delta_chunk(req, idx, false, NULL, 0, chat_logprobs(req, &v, 1), NULL,
		                      out);
	}
	free(work);
	return rc;
}

/* ---- the request's life -------------------------------------------------------- */

int api_request_begin(api_request *req, mllm_buf *out)
{
	int rc = 0;
	MLLM_ASSERT(req->m && req->choices);
	if (req->kind == API_RESPONSES)
		return api__resp_begin(req, out);
	if (!req->stream || req->kind != API_CHAT)
		return 0;
	/* The role opens each choice with content "" — or null where the
	 * output may be tool calls (forced, or auto with a call syntax), as
	 * the message's content is when it holds only calls: a client that
	 * accumulates the deltas then gets what the non-streamed response
	 * says (null, or the text its content deltas add), and shows no empty
	 * text part. */
	for (int32_t i = 0; i < req->n_prompts * req->n && rc == 0; i++)
		rc =
		    emit_delta_chunk(req, i, true, req->tool_parse ? NULL : "", 0, NULL, NULL, out);
	return rc;
}

/* First TOKEN/DONE of a choice: the echoed prompt goes first. */
static int start_choice(api_request *req, int32_t prompt_i, int32_t idx, mllm_buf *out)
{
	api__choice *c = &req->choices[idx];
	const api__prompt *p = &req->prompts[prompt_i];
	int rc = 0;
	if (c->started)
		return 0;
	if (req->kind == API_COMPLETION && req->echo) {
		if (req->stream) {
			json_t *lp = NULL;
			if (req->logprobs >= 0) {
				size_t off = 0;
				lp = legacy_new();
				legacy_add(req, lp, p->plp.v, p->plp.n, p->offsets, p->n_ids, &off);
			}
			rc = emit_text_chunk(req, idx, p->text ? p->text : "", p->text_len, lp,
			                     NULL, out);
		} else {
			rc = mllm_buf_append(&c->text, p->text ? p->text : "", p->text_len);
		}
	}
	c->offset = p->text_chars; /* the completion starts after the prompt */
	c->text0 = c->text.len;
	if (rc == 0)
		c->started = true;
	return rc;
}

static void fail(api_request *req, const api_error *e)
{
	if (req->failed)
		return;
	req->failed = true;
	req->err = *e;
}

/* A streamed chunk of choice idx: text and the entries lp[from, to) (none
 * when from == to), which are freed once rendered. */
static int stream_chunk(api_request *req, int32_t idx, const char *text, size_t len, size_t from,
                        size_t to, mllm_buf *out)
{
	api__choice *c = &req->choices[idx];
	json_t *lp = NULL;
	int rc;
	if (len == 0 && from == to)
		return 0;
	if (from < to) {
		if (req->kind == API_CHAT) {
			lp = chat_logprobs(req, c->lp.v + from, to - from);
		} else {
			lp = legacy_new();
			legacy_add(req, lp, c->lp.v + from, to - from, NULL, 0, &c->offset);
		}
	}
	if (req->kind == API_CHAT)
		rc = emit_delta_chunk(req, idx, false, text, len, lp, NULL, out);
	else
		rc = emit_text_chunk(req, idx, text, len, lp, NULL, out);
	for (size_t i = from; i < to; i++)
		lp_entry_free(&c->lp.v[i]);
	return rc;
}

/* Streamed, logprobs in step with the text (see lp_aligned): the event's
 * entry waits in c->lp until the text has caught up with it. At the end
 * (final), entries the text never reached are cut off. */
static int stream_aligned(api_request *req, int32_t idx, const mllm_event *ev, const char *text,
                          size_t len, bool with_lp, bool trim, bool final, mllm_buf *out)
{
	api__choice *c = &req->choices[idx];
	size_t from = c->lp_head;
	if (with_lp) {
		int rc = lp_push(&c->lp, ev);
		if (rc)
			return rc;
		if (trim)
			lp_drop_space(&c->lp.v[c->lp.n - 1]);
	}
	/* Entries that show no text may have gone out already (lp_head > 0,
	 * freed: out_len 0), and lp_fix_first passes over them. */
	if (len > 0 && c->released == 0 && c->lp_sent_bytes == 0)
		lp_fix_first(&c->lp, 0, text[0]);
	c->released += len;
	while (c->lp_head < c->lp.n &&
	       c->lp_sent_bytes + c->lp.v[c->lp_head].out_len <= c->released) {
		c->lp_sent_bytes += c->lp.v[c->lp_head].out_len;
		c->lp_head++;
	}
	if (final && c->lp_head < c->lp.n) {
		/* A stop string's tokens go; anything else (a token whose
		 * bytes the text renders differently) goes out now. */
		if (ev->stop_string)
			lp_cut_tail(&c->lp, c->lp_head, c->released - c->lp_sent_bytes);
		for (; c->lp_head < c->lp.n; c->lp_head++)
			c->lp_sent_bytes += c->lp.v[c->lp_head].out_len;
	}
	return stream_chunk(req, idx, text, len, from, c->lp_head, out);
}

static int on_text(api_request *req, int32_t idx, const mllm_event *ev, bool with_lp, mllm_buf *out)
{
	api__choice *c = &req->choices[idx];
	const char *text = ev->text ? ev->text : "";
	size_t len = ev->text_len;
	bool trim = false;
	int rc;
	with_lp = with_lp && req->logprobs >= 0;
	if (api__chatlike(req) && c->rstate != API__R_OFF)
		return on_text_split(req, idx, ev, text, len, with_lp, ev->kind == MLLM_EV_DONE,
		                     out);
	/* Chat: the space a model writes after the "Assistant:" cue is not
	 * part of the answer. Dropped the same way streamed or not. */
	if (c->lstrip && len > 0) {
		c->lstrip = false;
		if (text[0] == ' ') {
			text++;
			len--;
			/* The logprobs' tokens concatenate to the content
			 * (OpenAI's contract): the first token, whose text
			 * the dropped space began, loses it too. */
			trim = with_lp && ev->kind == MLLM_EV_TOKEN && c->n_completion == 0 &&
			       ev->token_text_len > 0 && ev->token_text[0] == ' ';
		}
	}
	if (!req->stream || (req->kind == API_CHAT && req->tool_parse)) {
		rc = mllm_buf_append(&c->text, text, len);
		if (rc == 0 && with_lp)
			rc = lp_push(&c->lp, ev);
		if (rc == 0 && trim)
			lp_drop_space(&c->lp.v[c->lp.n - 1]);
		if (rc == 0 && req->stream)
			rc = api__tool_stream(req, idx, out, false);
		return rc;
	}
	if (lp_aligned(req, c))
		return stream_aligned(req, idx, ev, text, len, with_lp, trim,
		                      ev->kind == MLLM_EV_DONE, out);
	if (len == 0 && !with_lp)
		return 0; /* nothing to say yet (text held back) */
	if (req->kind == API_CHAT) {
		json_t *lp = NULL;
		if (with_lp) {
			api__lp v = lp_view(ev);
			if (trim) {
				v.text++;
				v.text_len--;
				if (v.out_len > 0 && v.out[0] == ' ') {
					v.out++;
					v.out_len--;
				}
			}
			lp = chat_logprobs(req, &v, 1);
		}
		return emit_delta_chunk(req, idx, false, text, len, lp, NULL, out);
	} else {
		json_t *lp = NULL;
		if (with_lp) {
			api__lp v = lp_view(ev);
			lp = legacy_new();
			legacy_add(req, lp, &v, 1, NULL, 0, &c->offset);
		}
		return emit_text_chunk(req, idx, text, len, lp, NULL, out);
	}
}

static int feed(api_request *req, int32_t prompt_i, const mllm_event *ev, mllm_buf *out);

int api_request_feed(api_request *req, int32_t prompt_i, const mllm_event *ev, mllm_buf *out)
{
	bool was = req->failed || req->ended;
	int rc = feed(req, prompt_i, ev, out);
	/* A Responses request turns what the chat machinery accumulated
	 * into its own events (responses.c). */
	if (rc == 0 && req->kind == API_RESPONSES && !was)
		rc = api__resp_event(req, ev, out);
	return rc;
}

static int feed(api_request *req, int32_t prompt_i, const mllm_event *ev, mllm_buf *out)
{
	api__choice *c;
	int32_t idx;
	int rc = 0;
	MLLM_ASSERT(req->m && req->choices);
	if (prompt_i < 0 || prompt_i >= req->n_prompts)
		return MLLM_EINVAL;
	if (req->failed || req->ended)
		return 0; /* the response is already decided */
	if (ev->kind == MLLM_EV_ERROR) {
		api_error e;
		api_error_from_mllm(&e, ev->err);
		fail(req, &e);
		return req->stream ? api_error_render_sse(&e, out) : 0;
	}
	if (ev->choice < 0 || ev->choice >= req->n)
		return MLLM_EINVAL;
	idx = prompt_i * req->n + ev->choice;
	c = &req->choices[idx];
	if (c->done)
		return MLLM_EINVAL;
	switch (ev->kind) {
	case MLLM_EV_PROMPT:
		/* Once per prompt (the engine sends them as choice 0). */
		if (!req->echo || req->logprobs < 0 || c->started)
			return 0;
		return lp_push(&req->prompts[prompt_i].plp, ev);
	case MLLM_EV_TOKEN:
		/* Known from the first token: a request cancelled before its
		 * finish still reports its cache hit. */
		if (ev->n_cached_tokens > req->prompts[prompt_i].n_cached)
			req->prompts[prompt_i].n_cached = ev->n_cached_tokens;
		rc = start_choice(req, prompt_i, idx, out);
		if (rc == 0)
			rc = on_text(req, idx, ev, true, out);
		if (rc == 0)
			c->n_completion++;
		return rc;
	case MLLM_EV_DONE:
		if (ev->finish == MLLM_FINISH_ERROR || ev->finish == MLLM_FINISH_CANCELLED) {
			api_error e;
			api_error_from_mllm(&e, ev->finish == MLLM_FINISH_CANCELLED
			                            ? MLLM_ECANCELLED
			                            : (ev->err ? ev->err : MLLM_EINTERNAL));
			fail(req, &e);
			return req->stream ? api_error_render_sse(&e, out) : 0;
		}
		rc = start_choice(req, prompt_i, idx, out);
		/* Text released at the end (held back until the finish), and
		 * a held-back partial reasoning marker, which is text after all. */
		if (rc == 0 && (ev->text_len > 0 || c->n_hold > 0))
			rc = on_text(req, idx, ev, false, out);
		/* Logprob entries the text never reached (a stop string's). */
		if (rc == 0 && lp_aligned(req, c)) {
			if (!req->stream)
				lp_align(c, ev->stop_string);
			else if (c->lp_head < c->lp.n)
				rc = stream_aligned(req, idx, ev, "", 0, false, false, true, out);
		}
		if (rc != 0)
			return rc;
		c->done = true;
		c->finish = ev->finish;
		/* Cut by max_tokens in the blanks the grammar allows after a
		 * forced call: the call is the whole answer. */
		if (c->finish == MLLM_FINISH_LENGTH && api__tool_calls_final(req, idx))
			c->finish = MLLM_FINISH_STOP;
		if (ev->n_completion_tokens > 0 || c->n_completion == 0)
			c->n_completion = ev->n_completion_tokens;
		if (ev->n_cached_tokens > req->prompts[prompt_i].n_cached)
			req->prompts[prompt_i].n_cached = ev->n_cached_tokens;
		req->n_choices_done++;
		if (!req->stream)
			return 0;
		if (req->kind == API_CHAT && req->tool_parse) {
			rc = api__tool_stream(req, idx, out, true);
			if (rc != 0)
				return rc;
		}
		if (req->kind == API_CHAT)
			return emit_delta_chunk(req, idx, false, NULL, 0, NULL,
			                        choice_finish(req, idx, c->finish), out);
		return emit_text_chunk(req, idx, "", 0, NULL, finish_name(ev->finish), out);
	default:
		return MLLM_EINVAL;
	}
}

bool api_request_done(const api_request *req)
{
	return req->failed || req->ended || req->n_choices_done >= req->n_prompts * req->n;
}

const api_error *api_request_error(const api_request *req)
{
	return req->failed ? &req->err : NULL;
}

void api_request_usage(const api_request *req, api_usage *u)
{
	memset(u, 0, sizeof *u);
	if (!req->choices)
		return;
	for (int32_t i = 0; i < req->n_prompts; i++) {
		u->prompt_tokens += (int64_t)req->prompts[i].n_ids;
		u->cached_tokens += req->prompts[i].n_cached;
	}
	for (int32_t i = 0; i < req->n_prompts * req->n; i++)
		u->completion_tokens += req->choices[i].n_completion;
}

/* Choice i of the non-streamed body. */
static json_t *choice_json(const api_request *req, int32_t i)
{
	{
		const api__choice *c = &req->choices[i];
		json_t *ch = json_object(), *lp = json_null();
		bool calls = false;
		MLLM_ASSERT(ch);
		json_object_set_new(ch, "index", json_integer(i));
		if (req->kind == API_CHAT) {
			json_t *msg = json_object();
			MLLM_ASSERT(msg);
			json_object_set_new(msg, "role", json_string("assistant"));
			json_object_set_new(
			    msg, "content",
			    api__json_text(c->text.data ? c->text.data : "", c->text.len));
			/* OpenAI's field for a refusal (SDKs type it as always
			 * present); these models never refuse as a separate channel. */
			json_object_set_new(msg, "refusal", json_null());
			if (c->saw_reasoning) {
				json_t *r = api__json_text(
				    c->reasoning.data ? c->reasoning.data : "", c->reasoning.len);
				json_object_set(msg, "reasoning_content", r);
				json_object_set_new(msg, "reasoning", r);
			}
			calls = req->tool_parse && api__tool_message_json(req, i, msg);
			json_object_set_new(ch, "message", msg);
			if (req->logprobs >= 0) {
				json_decref(lp);
				lp = chat_logprobs(req, c->lp.v, c->lp.n);
			}
		} else {
			json_object_set_new(
			    ch, "text",
			    api__json_text(c->text.data ? c->text.data : "", c->text.len));
			if (req->logprobs >= 0) {
				const api__prompt *p = &req->prompts[i / req->n];
				size_t off = 0;
				json_decref(lp);
				lp = legacy_new();
				if (req->echo)
					legacy_add(req, lp, p->plp.v, p->plp.n, p->offsets,
					           p->n_ids, &off);
				off = p->text_chars;
				legacy_add(req, lp, c->lp.v, c->lp.n, NULL, 0, &off);
			}
		}
		json_object_set_new(ch, "logprobs", lp);
		json_object_set_new(ch, "finish_reason",
		                    c->done ? json_string(calls && c->finish == MLLM_FINISH_STOP
		                                              ? "tool_calls"
		                                              : finish_name(c->finish))
		                            : json_null());
		return ch;
	}
}

/* The non-streamed body, written a choice at a time: the envelope, each
 * choice's tree built, written and freed, then usage. A tree of logprob
 * entries costs several times its text (a 20 MB body took ~170 MB when
 * the whole response was one tree); now only the largest choice's. */
static int body_append(const api_request *req, mllm_buf *out)
{
	size_t saved = out->len;
	json_t *head = envelope(req, false, NULL), *u;
	int rc = api__json_append(head, out);
	json_decref(head);
	/* {"id":…,"model":"…"} → {"id":…,"model":"…","choices":[ */
	if (rc == 0) {
		out->len--; /* the closing brace (overwritten next) */
		rc = mllm_buf_append(out, ",\"choices\":[", 12);
	}
	for (int32_t i = 0; rc == 0 && i < req->n_prompts * req->n; i++) {
		json_t *ch = choice_json(req, i);
		if (i > 0)
			rc = mllm_buf_append(out, ",", 1);
		if (rc == 0)
			rc = api__json_append(ch, out);
		json_decref(ch);
	}
	if (rc == 0)
		rc = mllm_buf_append(out, "],\"usage\":", 10);
	if (rc == 0) {
		u = usage_json(req);
		rc = api__json_append(u, out);
		json_decref(u);
	}
	if (rc == 0)
		rc = mllm_buf_append(out, "}", 1);
	if (rc != 0 && out->data) {
		out->len = saved;
		out->data[saved] = '\0';
	}
	return rc;
}

int api_request_end(api_request *req, mllm_buf *out, int *status)
{
	int rc;
	MLLM_ASSERT(req->m && req->choices);
	if (req->kind == API_RESPONSES)
		return api__resp_end(req, out, status);
	*status = req->failed && !req->stream ? req->err.status : 200;
	if (req->ended)
		return 0;
	if (req->stream) {
		if (!req->failed && req->include_usage) {
			json_t *o = envelope(req, true, json_array());
			json_object_set_new(o, "usage", usage_json(req));
			rc = api__sse_append(o, out);
			json_decref(o);
			if (rc)
				return rc;
		}
		rc = mllm_buf_append(out, "data: [DONE]\n\n", 14);
	} else if (req->failed) {
		rc = api_error_render(&req->err, out);
	} else {
		rc = body_append(req, out);
	}
	if (rc)
		return rc;
	req->ended = true;
	return 0;
}

int api_request_abort(api_request *req, const api_error *e, mllm_buf *out)
{
	int rc;
	if (req->ended)
		return 0;
	if (req->kind == API_RESPONSES) {
		fail(req, e);
		return api__resp_abort(req, e, out);
	}
	if (!req->stream) {
		fail(req, e);
		return 0;
	}
	if (!req->failed) {
		fail(req, e);
		rc = api_error_render_sse(e, out);
		if (rc)
			return rc;
	}
	rc = mllm_buf_append(out, "data: [DONE]\n\n", 14);
	if (rc)
		return rc;
	req->ended = true;
	return 0;
}
