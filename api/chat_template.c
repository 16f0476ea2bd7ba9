/*
 * chat_template.c — turning chat messages into prompt text for models that
 * ship no chat template (every base MobileLLM). A template is a handful of
 * plain strings with a "{content}" placeholder, not a Jinja interpreter:
 * small enough to document in one table, to set from a config line, and to
 * audit. The default is a "System:/User:/Assistant:" transcript with an
 * implicit "\nUser:" stop, which a base model continues naturally.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "jinja.h"

static const char *const role_keys[API_ROLE__COUNT] = {"system", "user", "assistant"};

typedef struct {
	const char *name;
	const char *role[API_ROLE__COUNT];
	const char *generation;
	const char *stop[API__TEMPLATE_MAX_STOP];
	int n_stop;
} preset;

static const preset presets[] = {
    {"plain",
     {"System: {content}\n", "User: {content}\n", "Assistant: {content}\n"},
     "Assistant:",
     {"\nUser:"},
     1},
    {"chatml",
     {"<|im_start|>system\n{content}<|im_end|>\n", "<|im_start|>user\n{content}<|im_end|>\n",
      "<|im_start|>assistant\n{content}<|im_end|>\n"},
     "<|im_start|>assistant\n",
     {"<|im_end|>"},
     1},
    /* Contents one after another, no cue, no stop: the client writes the
     * whole prompt itself. */
    {"raw", {"{content}", "{content}", "{content}"}, "", {NULL}, 0},
};

static void clear_jinja(api_chat_template *t)
{
	api_jinja_free(t->jinja);
	t->jinja = NULL;
	free(t->bos_text);
	free(t->eos_text);
	t->bos_text = t->eos_text = NULL;
}

static void clear(api_chat_template *t)
{
	clear_jinja(t);
	for (int r = 0; r < API_ROLE__COUNT; r++) {
		free(t->role[r]);
		t->role[r] = NULL;
	}
	free(t->generation);
	t->generation = NULL;
	for (int i = 0; i < t->n_stop; i++) {
		free(t->stop[i]);
		t->stop[i] = NULL;
	}
	t->n_stop = 0;
}

static void load_preset(api_chat_template *t, const preset *p)
{
	clear(t);
	for (int r = 0; r < API_ROLE__COUNT; r++)
		t->role[r] = xstrdup(p->role[r]);
	t->generation = xstrdup(p->generation);
	for (int i = 0; i < p->n_stop; i++)
		t->stop[i] = xstrdup(p->stop[i]);
	t->n_stop = p->n_stop;
	t->bos = -1;
	snprintf(t->source, sizeof t->source, "preset:%s", p->name);
}

api_chat_template *api_chat_template_create(void)
{
	api_chat_template *t = xcalloc(1, sizeof *t);
	load_preset(t, &presets[0]);
	return t;
}

void api_chat_template_free(api_chat_template *t)
{
	if (!t)
		return;
	clear(t);
	free(t);
}

const api_chat_template *api__chat_template_default(void)
{
	/* Built from the first preset; never freed, never changed. The
	 * struct is filled with string literals cast to char *: nothing
	 * frees or writes through them. */
	static const api_chat_template plain = {
	    .role = {(char *)"System: {content}\n", (char *)"User: {content}\n",
	             (char *)"Assistant: {content}\n"},
	    .generation = (char *)"Assistant:",
	    .stop = {(char *)"\nUser:"},
	    .n_stop = 1,
	    .bos = -1,
	    .source = "preset:plain",
	};
	return &plain;
}

/* Config values carry \n, \t and \\ escapes so a template fits on a line. */
static char *unescape(const char *v, char *err, size_t errlen)
{
	size_t n = strlen(v), o = 0;
	char *s = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		if (v[i] != '\\') {
			s[o++] = v[i];
			continue;
		}
		i++;
		if (v[i] == 'n') {
			s[o++] = '\n';
		} else if (v[i] == 't') {
			s[o++] = '\t';
		} else if (v[i] == '\\') {
			s[o++] = '\\';
		} else {
			free(s);
			mllm__seterr(err, errlen, MLLM_EINVAL,
			             "chat template: unknown escape '\\%c' (use \\n, \\t or \\\\)",
			             v[i] ? v[i] : ' ');
			return NULL;
		}
	}
	s[o] = '\0';
	return s;
}

int api_chat_template_set(api_chat_template *t, const char *key, const char *value, char *err,
                          size_t errlen)
{
	char *v;
	if (strcmp(key, "preset") == 0) {
		for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
			if (strcmp(value, presets[i].name) == 0) {
				load_preset(t, &presets[i]);
				return 0;
			}
		}
		return mllm__seterr(err, errlen, MLLM_EINVAL,
		                    "chat template: unknown preset '%s' (plain, chatml, raw)",
		                    value);
	}
	if (strcmp(key, "bos") == 0) {
		if (strcmp(value, "auto") == 0)
			t->bos = -1;
		else if (strcmp(value, "true") == 0)
			t->bos = 1;
		else if (strcmp(value, "false") == 0)
			t->bos = 0;
		else
			return mllm__seterr(
			    err, errlen, MLLM_EINVAL,
			    "chat template: bos must be auto, true or false, not '%s'", value);
		return 0;
	}
	if (strcmp(key, "special_in_messages") == 0) {
		if (strcmp(value, "true") == 0)
			t->special_in_messages = true;
		else if (strcmp(value, "false") == 0)
			t->special_in_messages = false;
		else
			return mllm__seterr(
			    err, errlen, MLLM_EINVAL,
			    "chat_special_in_messages must be true or false, not '%s'", value);
		return 0;
	}
	if (strcmp(key, "reasoning_format") == 0) {
		if (strcmp(value, "auto") == 0)
			t->reasoning = 0;
		else if (strcmp(value, "none") == 0)
			t->reasoning = 1;
		else if (strcmp(value, "split") == 0)
			t->reasoning = 2;
		else
			return mllm__seterr(
			    err, errlen, MLLM_EINVAL,
			    "reasoning_format must be auto, none or split, not '%s'", value);
		return 0;
	}
	v = unescape(value, err, errlen);
	if (!v)
		return MLLM_EINVAL;
	for (int r = 0; r < API_ROLE__COUNT; r++) {
		if (strcmp(key, role_keys[r]) != 0)
			continue;
		if (!strstr(v, "{content}")) {
			free(v);
			return mllm__seterr(err, errlen, MLLM_EINVAL,
			                    "chat template: '%s' must contain {content}", key);
		}
		free(t->role[r]);
		t->role[r] = v;
		return 0;
	}
	if (strcmp(key, "generation") == 0) {
		free(t->generation);
		t->generation = v;
		return 0;
	}
	if (strcmp(key, "stop") == 0) {
		char *parts[API__TEMPLATE_MAX_STOP];
		int n = 0;
		char *p = v;
		while (*p) {
			char *sep = strstr(p, "||");
			size_t len = sep ? (size_t)(sep - p) : strlen(p);
			if (len > 0) {
				if (n == API__TEMPLATE_MAX_STOP) {
					for (int i = 0; i < n; i++)
						free(parts[i]);
					free(v);
					return mllm__seterr(
					    err, errlen, MLLM_EINVAL,
					    "chat template: at most %d stop strings",
					    API__TEMPLATE_MAX_STOP);
				}
				parts[n++] = xstrndup(p, len);
			}
			p += len;
			if (sep)
				p += 2;
		}
		free(v);
		for (int i = 0; i < t->n_stop; i++)
			free(t->stop[i]);
		for (int i = 0; i < n; i++)
			t->stop[i] = parts[i];
		t->n_stop = n;
		return 0;
	}
	free(v);
	return mllm__seterr(err, errlen, MLLM_EINVAL,
	                    "chat template: unknown key '%s' (preset, system, user, assistant, "
	                    "generation, stop, bos, reasoning_format)",
	                    key);
}

static int append_escaped(mllm_buf *out, const char *s)
{
	int rc = 0;
	for (; *s && rc == 0; s++) {
		if (*s == '\n')
			rc = mllm_buf_append(out, "\\n", 2);
		else if (*s == '\t')
			rc = mllm_buf_append(out, "\\t", 2);
		else if (*s == '\\')
			rc = mllm_buf_append(out, "\\\\", 2);
		else
			rc = mllm_buf_append(out, s, 1);
	}
	return rc;
}

static int dump_line(mllm_buf *out, const char *prefix, const char *key, const char *value)
{
	int rc = mllm_buf_appendf(out, "%s%s = ", prefix, key);
	if (rc == 0)
		rc = append_escaped(out, value);
	if (rc == 0)
		rc = mllm_buf_append(out, "\n", 1);
	return rc;
}

int api_chat_template_dump(const api_chat_template *t, const char *prefix, mllm_buf *out)
{
	int rc = 0;
	if (!t)
		t = api__chat_template_default();
	if (!prefix)
		prefix = "";
	for (int r = 0; r < API_ROLE__COUNT && rc == 0; r++)
		rc = dump_line(out, prefix, role_keys[r], t->role[r]);
	if (rc == 0)
		rc = dump_line(out, prefix, "generation", t->generation);
	if (rc == 0)
		rc = mllm_buf_appendf(out, "%sstop = ", prefix);
	for (int i = 0; i < t->n_stop && rc == 0; i++) {
		if (i > 0)
			rc = mllm_buf_append(out, "||", 2);
		if (rc == 0)
			rc = append_escaped(out, t->stop[i]);
	}
	if (rc == 0)
		rc = mllm_buf_appendf(out, "\n%sbos = %s\n", prefix,
		                      t->bos < 0 ? "auto"
		                      : t->bos   ? "true"
		                                 : "false");
	return rc;
}

/* Appends role text with every "{content}" replaced by the content. */
static int apply_one(const char *fmt, const api__message *m, mllm_buf *out)
{
	static const char ph[] = "{content}";
	const size_t phlen = sizeof ph - 1;
	int rc = 0;
	while (rc == 0) {
		const char *hit = strstr(fmt, ph);
		if (!hit)
			return mllm_buf_append(out, fmt, strlen(fmt));
		rc = mllm_buf_append(out, fmt, (size_t)(hit - fmt));
		if (rc == 0)
			rc = mllm_buf_append(out, m->content, m->len);
		fmt = hit + phlen;
	}
	return rc;
}

int api__chat_apply(const api_chat_template *t, const api__message *msgs, int32_t n_msgs,
                    mllm_buf *out)
{
	int rc = 0;
	if (!t)
		t = api__chat_template_default();
	for (int32_t i = 0; i < n_msgs && rc == 0; i++)
		rc = apply_one(t->role[msgs[i].role], &msgs[i], out);
	if (rc == 0)
		rc = mllm_buf_append(out, t->generation, strlen(t->generation));
	return rc;
}

int api_chat_template_set_jinja(api_chat_template *t, const char *src, size_t len,
                                const char *bos_text, const char *eos_text, const char *source,
                                char *err, size_t errlen)
{
	api_jinja *j = NULL;
	int rc = api_jinja_parse(src, len, &j, err, errlen);
	if (rc != 0)
		return rc;
	clear_jinja(t);
	t->jinja = j;
	t->bos_text = bos_text ? xstrdup(bos_text) : NULL;
	t->eos_text = eos_text ? xstrdup(eos_text) : NULL;
	snprintf(t->source, sizeof t->source, "%s", source ? source : "jinja");
	return 0;
}

const char *api_chat_template_source(const api_chat_template *t)
{
	if (!t)
		t = api__chat_template_default();
	return t->source;
}

int api_chat_template_mentions(const api_chat_template *t, const char *s)
{
	return t && t->jinja && api_jinja_mentions(t->jinja, s);
}

/* Output bound of one chat render: the prompt may not exceed the model
 * context anyway; 16 MiB of text is far past any context this daemon
 * serves, and a template cannot loop longer than its work bound. */
#define CHAT_RENDER_MAX ((size_t)16 << 20)

/* Content as a template can use it: an array of text parts joined with
 * "\n" (as the presets see it; text-only templates do string operations
 * on content), null or absent (an assistant turn with tool_calls, as the
 * SDKs send back the message they got) as "" (Qwen3's template fails on
 * None; Llama 3's would print "None"), but as null where the template
 * tests content against none: DeepSeek-V3's renders an assistant turn's
 * tool_calls only when its content is none. (Told by the template's text:
 * a test on a variable set from content, not on content itself, is not
 * seen.) NULL: leave it as is. */
static json_t *template_content(const json_t *c, bool keep_null)
{
	mllm_buf b;
	json_t *out = NULL;
	if (!c || json_is_null(c))
		return keep_null ? json_null() : json_string("");
	if (!api__text_parts(c))
		return NULL; /* a string, or (not for chat: validated) other parts */
	mllm_buf_init(&b, SIZE_MAX / 2);
	if (api__append_content(&b, c) == 0)
		out = json_stringn(b.data ? b.data : "", b.len);
	mllm_buf_free(&b);
	return out;
}

/* The messages as the template sees them: OpenAI's "developer" role is
 * the system prompt of older models (Jinja templates know only "system"),
 * and content is a string (template_content). */
static json_t *template_messages(const api_jinja *t, const json_t *msgs)
{
	bool keep_null = api_jinja_mentions(t, "content'] is none") ||
	                 api_jinja_mentions(t, "content\"] is none") ||
	                 api_jinja_mentions(t, ".content is none");
	json_t *copy = json_array();
	size_t i;
	json_t *m;
	MLLM_ASSERT(copy);
	json_array_foreach(msgs, i, m)
	{
		json_t *role = json_object_get(m, "role");
		bool dev =
		    json_is_string(role) && strcmp(json_string_value(role), "developer") == 0;
		json_t *content = json_is_object(m)
		                      ? template_content(json_object_get(m, "content"), keep_null)
		                      : NULL;
		if (dev || content) {
			json_t *c = json_copy(m);
			MLLM_ASSERT(c);
			if (dev)
				json_object_set_new(c, "role", json_string("system"));
			if (content)
				json_object_set_new(c, "content", content);
			json_array_append_new(copy, c);
		} else {
			json_array_append(copy, m);
		}
	}
	return copy;
}

enum { PRE_NONE = 0, PRE_MERGE, PRE_SYSTEM, PRE_USER };

/* Puts the tools preamble p into the template's messages tm: PRE_MERGE in
 * front of a first system message's text, PRE_SYSTEM as a system message
 * of its own first, PRE_USER in front of the first user message's text.
 * false when tm has no such message (nothing changed). */
static bool with_preamble(json_t *tm, const api__message *p, int how)
{
	size_t i;
	json_t *m;
	if (how == PRE_SYSTEM) {
		json_array_insert_new(
		    tm, 0,
		    json_pack("{s:s,s:s%}", "role", "system", "content", p->content, p->len));
		return true;
	}
	json_array_foreach(tm, i, m)
	{
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *c = json_object_get(m, "content"), *nm;
		mllm_buf b;
		if (!role || strcmp(role, how == PRE_MERGE ? "system" : "user") != 0) {
			if (how == PRE_MERGE)
				return false; /* only a first system message takes it */
			continue;
		}
		if (!json_is_string(c))
			return false;
		mllm_buf_init(&b, SIZE_MAX / 2);
		if (mllm_buf_append(&b, p->content, p->len) || mllm_buf_append(&b, "\n\n", 2) ||
		    mllm_buf_append(&b, json_string_value(c), json_string_length(c))) {
			mllm_buf_free(&b);
			return false;
		}
		nm = json_copy(m); /* tm may share m with the request */
		json_object_set_new(nm, "content", json_stringn(b.data, b.len));
		mllm_buf_free(&b);
		json_array_set_new(tm, i, nm);
		return true;
	}
	return false;
}

static int render_jinja(const api_chat_template *t, const api_request *req,
                        const mllm_tokenizer *tok, mllm_buf *out, size_t *skip, bool *bos,
                        api_error *e)
{
	api_jinja_limits lim = {.max_output = CHAT_RENDER_MAX};
	json_t *vars;
	char err[512];
	int rc;
	if (!req->j_messages)
		return api_error_set(e, 500, NULL, "internal_error", "The chat has no messages.");
	/* A forced call on a template that never prints the tools: the model
	 * would be made to call tools it was never shown, so the tools
	 * preamble (prepare put it first in msgs) goes into the chat: into
	 * the client's system message, else as a system turn of its own, else
	 * (a template that refuses system turns) into the first user turn. */
	bool pre = api__tool_forced(req) && req->n_msgs > 0 &&
	           req->msgs[0].role == API_ROLE_SYSTEM && !api_jinja_mentions(t->jinja, "tools");
	size_t out0 = out->len;
	for (int step = pre ? PRE_MERGE : PRE_NONE;; step++) {
		/* Past PRE_USER (no user message either): without it. */
		int how = step > PRE_USER ? PRE_NONE : step;
		json_t *tm = template_messages(t->jinja, req->j_messages);
		if (how != PRE_NONE && !with_preamble(tm, &req->msgs[0], how)) {
			json_decref(tm);
			continue; /* not this way (no system, or no user message) */
		}
		vars = json_object();
		MLLM_ASSERT(vars);
		/* chat_template_kwargs first, so the request's own fields win. */
		if (req->j_kwargs)
			json_object_update(vars, req->j_kwargs);
		json_object_set_new(vars, "messages", tm);
		json_object_set(vars, "tools", req->j_tools ? req->j_tools : json_null());
		json_object_set(vars, "documents", json_null());
		json_object_set_new(vars, "add_generation_prompt", json_boolean(!req->cont_final));
		json_object_set_new(vars, "bos_token",
		                    t->bos_text ? json_string(t->bos_text) : json_null());
		json_object_set_new(vars, "eos_token",
		                    t->eos_text ? json_string(t->eos_text) : json_null());
		out->len = out0;
		rc = api_jinja_render(t->jinja, vars, &lim, out, err, sizeof err);
		json_decref(vars);
		if (rc != MLLM_EINVAL || how == PRE_NONE || how == PRE_USER)
			break; /* rendered, or no other way left to try */
	}
	if (rc == MLLM_EINVAL)
		return api_error_set(e, 400, "messages", "invalid_chat",
		                     "The chat template says: %s", err);
	if (rc != 0)
		return api_error_set(e, 400, "messages", "invalid_chat",
		                     "The chat template could not render this chat: %s", err);
	/* The template's text decides BOS: when it prints bos_token itself,
	 * that text becomes the one BOS id (never a second one); otherwise
	 * none is added, as transformers tokenizes with add_special_tokens
	 * off. chat_bos = true/false overrides. */
	*skip = 0;
	*bos = false;
	if (t->bos_text && t->bos_text[0] && out->len >= strlen(t->bos_text) &&
	    memcmp(out->data, t->bos_text, strlen(t->bos_text)) == 0 &&
	    mllm_tokenizer_bos(tok) >= 0) {
		*skip = strlen(t->bos_text);
		*bos = true;
	}
	if (t->bos >= 0)
		*bos = t->bos == 1;
	return 0;
}

static bool blank_byte(char c)
{
	return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* The end of the last occurrence of p[0..n) in s[0..len), or 0. */
static size_t last_end(const char *s, size_t len, const char *p, size_t n)
{
	for (size_t i = len >= n ? len - n + 1 : 0; i-- > 0;)
		if (memcmp(s + i, p, n) == 0)
			return i + n;
	return 0;
}

/* continue_final_message: the prompt ends right after the last message's
 * text (its last occurrence in out, as given or with its blanks trimmed,
 * as templates that trim write it), dropping the end of turn the
 * template wrote after it. 400 when the template does not show the text. */
static int cut_after_final(const api_request *req, mllm_buf *out, api_error *e)
{
	const api__message *m = &req->msgs[req->n_msgs - 1];
	const char *p = m->content;
	size_t n = m->len, end;
	end = last_end(out->data ? out->data : "", out->len, p, n);
	if (end == 0) {
		while (n > 0 && blank_byte(*p)) {
			p++;
			n--;
		}
		while (n > 0 && blank_byte(p[n - 1]))
			n--;
		if (n > 0)
			end = last_end(out->data ? out->data : "", out->len, p, n);
	}
	if (end == 0)
		return api_error_set(e, 400, "continue_final_message", "invalid_value",
		                     "The chat template does not write the last message's text "
		                     "as given, so it cannot be continued.");
	out->len = end;
	return 0;
}

/* Where the template writes the last message's text in out (rendered from
 * out0): the conversation rendered again with a marker for that text puts
 * the marker there, after the same prefix. false when it does not (the
 * template's text before it depends on the content, or the marker shows
 * up other than once). Finds the start even where the text also occurs in
 * the markup after it (an end-of-turn token, the next header). */
static bool final_start(const api_chat_template *t, const api_request *req,
                        const mllm_tokenizer *tok, const mllm_buf *out, size_t out0, size_t *at)
{
	static const char mark[] = "mllmContinueFinalMessageMark7c1e";
	size_t nm = sizeof mark - 1, skip, n_msgs = json_array_size(req->j_messages), hits = 0;
	size_t pos = 0;
	bool bos, ok = false;
	api_request r2 = *req;
	json_t *msgs = json_copy(req->j_messages), *last;
	mllm_buf b;
	api_error e2;
	if (!msgs || n_msgs == 0) {
		json_decref(msgs);
		return false;
	}
	last = json_copy(json_array_get(msgs, n_msgs - 1));
	json_object_set_new(last, "content", json_string(mark));
	json_array_set_new(msgs, n_msgs - 1, last);
	r2.j_messages = msgs;
	mllm_buf_init(&b, SIZE_MAX / 2);
	if (render_jinja(t, &r2, tok, &b, &skip, &bos, &e2) == 0) {
		for (size_t i = 0; i + nm <= b.len; i++)
			if (memcmp(b.data + i, mark, nm) == 0) {
				hits++;
				pos = i;
			}
		ok = hits == 1 && out0 + pos <= out->len &&
		     (pos == 0 || memcmp(out->data + out0, b.data, pos) == 0);
	}
	mllm_buf_free(&b);
	json_decref(msgs);
	*at = out0 + pos;
	return ok;
}

/* continue_final_message on a Jinja template: the last message's text
 * where final_start says it begins (as given, or with its blanks trimmed),
 * else its last occurrence (cut_after_final). */
static int cut_jinja_final(const api_chat_template *t, const api_request *req,
                           const mllm_tokenizer *tok, mllm_buf *out, size_t out0, api_error *e)
{
	const api__message *m = &req->msgs[req->n_msgs - 1];
	const char *p = m->content;
	size_t n = m->len, at;
	if (final_start(t, req, tok, out, out0, &at)) {
		if (out->len - at >= n && memcmp(out->data + at, p, n) == 0) {
			out->len = at + n;
			return 0;
		}
		while (n > 0 && blank_byte(*p)) {
			p++;
			n--;
		}
		while (n > 0 && blank_byte(p[n - 1]))
			n--;
		if (n > 0 && out->len - at >= n && memcmp(out->data + at, p, n) == 0) {
			out->len = at + n;
			return 0;
		}
	}
	return cut_after_final(req, out, e);
}

int api__chat_render(const api_chat_template *t, const api_request *req, const mllm_tokenizer *tok,
                     mllm_buf *out, size_t *skip, bool *bos, api_error *e)
{
	if (!t)
		t = api__chat_template_default();
	if (t->jinja) {
		size_t out0 = out->len;
		int rc = render_jinja(t, req, tok, out, skip, bos, e);
		if (rc == 0 && req->cont_final)
			rc = cut_jinja_final(t, req, tok, out, out0, e);
		return rc;
	}
	*skip = 0;
	*bos = t->bos < 0 ? mllm_tokenizer_add_bos(tok) : t->bos == 1;
	for (int32_t i = 0; i < req->n_msgs; i++) {
		char param[64];
		if (!req->msgs[i].tool)
			continue;
		snprintf(param, sizeof param, "messages[%d].role", (int)i);
		return api_error_set(e, 400, param, "invalid_value",
		                     "'tool' messages need a model with its own chat template; "
		                     "this model uses %s.",
		                     t->source);
	}
	if (req->cont_final) {
		int rc = 0;
		for (int32_t i = 0; i < req->n_msgs && rc == 0; i++)
			rc = apply_one(t->role[req->msgs[i].role], &req->msgs[i], out);
		if (rc)
			return api_error_set(e, 503, NULL, "overloaded", "Out of memory.");
		return cut_after_final(req, out, e);
	}
	if (api__chat_apply(t, req->msgs, req->n_msgs, out) != 0)
		return api_error_set(e, 503, NULL, "overloaded", "Out of memory.");
	return 0;
}

bool api__chat_template_splits(const api_chat_template *t)
{
	if (!t)
		return false;
	if (t->reasoning == 2)
		return true;
	if (t->reasoning == 1)
		return false;
	return t->jinja && (api_jinja_mentions(t->jinja, "<think>") ||
	                    api_jinja_mentions(t->jinja, "</think>"));
}

const char *api_chat_template_reasoning(const api_chat_template *t)
{
	return api__chat_template_splits(t) ? "split" : "none";
}
