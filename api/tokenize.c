/*
 * tokenize.c — POST /tokenize and POST /detokenize (vLLM-style shapes):
 * the same tokenizer, BOS rule and chat template a completion would use,
 * so a client can count tokens or check a prompt's length before sending
 * it. One call per request; nothing outlives it.
 */
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

/* Loads the body as a JSON object and resolves "model". */
static int load(const char *body, size_t len, const api_limits *lim, api_model_lookup lookup,
                void *ud, json_t **root, const api_model_info **m, api_error *e)
{
	json_error_t jerr;
	json_t *v;
	*root = NULL;
	if (len > lim->max_body_bytes)
		return api_error_set(e, 413, NULL, "request_too_large",
		                     "The request body is %zu bytes; the limit is %zu.", len,
		                     lim->max_body_bytes);
	*root = json_loadb(body ? body : "", len, 0, &jerr);
	if (!*root)
		return api_error_set(e, 400, NULL, "invalid_json",
		                     "The body is not valid JSON: %s (at byte %d).",
		                     api__json_error_text(&jerr), jerr.position);
	if (!json_is_object(*root))
		return api_error_set(e, 400, NULL, "invalid_json",
		                     "The body must be a JSON object.");
	v = json_object_get(*root, "model");
	if (v && !json_is_null(v) && !json_is_string(v))
		return api_error_set(e, 400, "model", "invalid_type", "'model' must be a string.");
	*m = lookup(ud, json_is_string(v) ? json_string_value(v) : NULL);
	if (!*m)
		return api_error_model_not_found(e, json_is_string(v) ? json_string_value(v) : "");
	if (!(*m)->tok)
		return api_error_set(e, 500, NULL, "internal_error",
		                     "The model '%s' has no tokenizer.", (*m)->id);
	return 0;
}

/* parse_special as in request.c: prompts yes, chat messages no. */
static int encode(const mllm_tokenizer *tok, const char *text, size_t len, bool bos,
                  bool parse_special, int32_t **ids, size_t *n, api_error *e)
{
	mllm_encode_opts o = {.add_bos = bos, .parse_special = parse_special};
	size_t cap = mllm_tokenizer_max_ids(tok, len), bytes;
	int rc;
	if (len > SIZE_MAX / 4 || mllm__mul_overflow(cap, sizeof **ids, &bytes))
		return api_error_set(e, 413, NULL, "request_too_large", "The text is too long.");
	*ids = mllm_try_malloc(bytes);
	if (!*ids)
		return api_error_set(e, 503, NULL, "overloaded", "Out of memory.");
	rc = mllm_tokenizer_encode_ex(tok, text, len, &o, *ids, cap, n);
	if (rc == MLLM_ENOMEM)
		return api_error_from_mllm(e, rc);
	if (rc != 0)
		return api_error_set(e, 500, NULL, "internal_error", "Tokenization failed: %s.",
		                     mllm_strerror(rc));
	return 0;
}

int api_handle_tokenize(const char *body, size_t len, const api_limits *lim,
                        api_model_lookup lookup, void *ud, mllm_buf *out, api_error *err)
{
	json_t *root = NULL, *v, *res = NULL, *arr;
	const api_model_info *m = NULL;
	api_request *tmp = NULL;
	int32_t *ids = NULL;
	size_t n = 0;
	bool special = true;
	int rc = load(body, len, lim, lookup, ud, &root, &m, err);
	if (rc)
		goto done;
	v = json_object_get(root, "add_special_tokens");
	if (v && !json_is_null(v)) {
		if (!json_is_boolean(v)) {
			rc = api_error_set(err, 400, "add_special_tokens", "invalid_type",
			                   "'add_special_tokens' must be a boolean.");
			goto done;
		}
		special = json_is_true(v);
	}
	v = json_object_get(root, "prompt");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v)) {
			rc = api_error_set(err, 400, "prompt", "invalid_type",
			                   "'prompt' must be a string.");
			goto done;
		}
		rc = encode(m->tok, json_string_value(v), json_string_length(v),
		            special && mllm_tokenizer_add_bos(m->tok), true, &ids, &n, err);
	} else if (json_object_get(root, "messages")) {
		const api_chat_template *t =
		    m->chat_template ? m->chat_template : api__chat_template_default();
		bool bos = false;
		size_t skip = 0;
		mllm_buf b;
		tmp = xcalloc(1, sizeof *tmp);
		tmp->kind = API_CHAT;
		rc = api__parse_messages(tmp, root, lim, err);
		if (rc)
			goto done;
		mllm_buf_init(&b, SIZE_MAX / 2);
		rc = api__check_message_specials(t, m->tok, tmp, err);
		if (rc == 0)
			rc = api__chat_render(t, tmp, m->tok, &b, &skip, &bos, err);
		if (rc == 0)
			rc = encode(m->tok, b.data ? b.data + skip : "", b.len - skip,
			            special && bos, t->jinja, &ids, &n, err);
		mllm_buf_free(&b);
	} else {
		rc = api_error_set(err, 400, "prompt", "missing_required_parameter",
		                   "Either 'prompt' or 'messages' is required.");
	}
	if (rc)
		goto done;
	res = json_object();
	arr = json_array();
	MLLM_ASSERT(res && arr);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_integer(ids[i]));
	json_object_set_new(res, "tokens", arr);
	json_object_set_new(res, "count", json_integer((json_int_t)n));
	json_object_set_new(res, "max_model_len", json_integer(m->n_ctx));
	rc = api__json_append(res, out);
	if (rc == 0)
		rc = 200;
done:
	json_decref(res);
	json_decref(root);
	free(ids);
	api_request_free(tmp);
	return rc;
}

int api_handle_detokenize(const char *body, size_t len, const api_limits *lim,
                          api_model_lookup lookup, void *ud, mllm_buf *out, api_error *err)
{
	json_t *root = NULL, *v, *res = NULL;
	const api_model_info *m = NULL;
	int32_t *ids = NULL, n_vocab;
	char *text = NULL;
	size_t n, cap, n_text = 0;
	int rc = load(body, len, lim, lookup, ud, &root, &m, err);
	if (rc)
		goto done;
	v = json_object_get(root, "tokens");
	if (!json_is_array(v)) {
		rc = api_error_set(err, 400, "tokens",
		                   v ? "invalid_type" : "missing_required_parameter",
		                   "'tokens' must be an array of token ids.");
		goto done;
	}
	n = json_array_size(v);
	n_vocab = mllm_tokenizer_n_vocab(m->tok);
	ids = mllm_try_calloc(n ? n : 1, sizeof *ids);
	if (!ids) {
		rc = api_error_set(err, 503, NULL, "overloaded", "Out of memory.");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		int64_t id;
		if (!api__json_id(json_array_get(v, i), &id) || id >= n_vocab) {
			rc = api_error_set(err, 400, "tokens", "invalid_value",
			                   "'tokens' element %zu is not a token id in [0, %d).", i,
			                   (int)n_vocab);
			goto done;
		}
		ids[i] = (int32_t)id;
	}
	cap = n * 16 + 16;
	for (int tries = 0; tries < 2; tries++) {
		text = mllm_try_malloc(cap + 1);
		if (!text) {
			rc = api_error_set(err, 503, NULL, "overloaded", "Out of memory.");
			goto done;
		}
		rc = mllm_tokenizer_decode(m->tok, ids, n, text, cap + 1, &n_text);
		if (rc != MLLM_ENOSPACE)
			break;
		free(text);
		text = NULL;
		cap = n_text;
	}
	if (rc != 0) {
		rc = api_error_set(err, 400, "tokens", "invalid_value", "Decoding failed: %s.",
		                   mllm_strerror(rc));
		goto done;
	}
	res = json_object();
	MLLM_ASSERT(res);
	json_object_set_new(res, "prompt", api__json_text(text, n_text));
	rc = api__json_append(res, out);
	if (rc == 0)
		rc = 200;
done:
	json_decref(res);
	json_decref(root);
	free(ids);
	free(text);
	return rc;
}
