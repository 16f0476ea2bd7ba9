/*
 * fuzz_json.c — engine/json.c, the engine's own JSON reader (config.json,
 * tokenizer_config.json, safetensors headers): any bytes either parse into a
 * tree whose bookkeeping holds together (child counts, NUL-terminated
 * decoded strings and keys, offsets inside the input, first-match lookup) or
 * fail with a message. Run twice, once with tight limits, so the node and
 * depth limits are exercised as well.
 */
#include "fuzz.h"

#include "json.h"

static size_t walk(const mllm__json *v, size_t len, int depth)
{
	size_t nodes = 1, n = 0;
	FUZZ_CHECK(v->type >= MLLM_JSON_NULL && v->type <= MLLM_JSON_OBJECT);
	FUZZ_CHECK(v->offset < len);
	FUZZ_CHECK(depth <= 64);
	if (v->type == MLLM_JSON_STRING)
		FUZZ_CHECK(v->str && v->str[v->len] == '\0');
	for (const mllm__json *c = v->child; c; c = c->next) {
		n++;
		if (v->type == MLLM_JSON_OBJECT) {
			const mllm__json *first;
			FUZZ_CHECK(c->key && c->key[c->key_len] == '\0');
			/* Lookup by name finds a member with that name (keys with an
			 * embedded NUL are looked up by their prefix: skip those). */
			if (strlen(c->key) == c->key_len) {
				first = mllm__json_get(v, c->key);
				FUZZ_CHECK(first && strcmp(first->key, c->key) == 0);
			}
		} else {
			FUZZ_CHECK(c->key == NULL);
		}
		nodes += walk(c, len, depth + 1);
	}
	FUZZ_CHECK(n == v->n);
	if (v->type == MLLM_JSON_ARRAY && n > 0)
		FUZZ_CHECK(mllm__json_at(v, n - 1) != NULL && mllm__json_at(v, n) == NULL);
	if (v->type != MLLM_JSON_ARRAY && v->type != MLLM_JSON_OBJECT)
		FUZZ_CHECK(n == 0);
	return nodes;
}

static void one(const uint8_t *data, size_t size, const mllm__json_limits *lim)
{
	mllm__json_doc *doc = NULL;
	char err[256];
	int rc;
	err[0] = '\0';
	rc = mllm__json_parse((const char *)data, size, lim, &doc, err, sizeof err);
	if (rc != 0) {
		FUZZ_CHECK(doc == NULL);
		FUZZ_CHECK(err[0] != '\0');
		return;
	}
	FUZZ_CHECK(doc != NULL);
	{
		size_t nodes = walk(mllm__json_root(doc), size, 0);
		if (lim && lim->max_nodes)
			FUZZ_CHECK(nodes <= lim->max_nodes);
	}
	mllm__json_free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mllm__json_limits tight = {.max_nodes = 16, .max_depth = 4};
	/* Exact-size copy: the parser must not read past len (ASan sees it). */
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	one(copy, size, NULL);
	one(copy, size, &tight);
	free(copy);
	return 0;
}
