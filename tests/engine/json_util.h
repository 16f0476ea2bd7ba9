/*
 * json_util.h — the engine's own strict JSON reader (engine/json.h) as the
 * engine runners use it, so that they link without jansson: load a file into
 * a document, typed accessors that ck_assert on a missing value or a type
 * mismatch (a golden file that changed shape fails loudly instead of reading
 * as 0), and a compact writer for the runners that rewrite a fixture's JSON
 * (config.json edits, safetensors headers, shard indexes). The writer
 * escapes every string, so test inputs built from fixture names stay valid
 * JSON. All static inline, so a runner may use any subset.
 */
#ifndef MLLM_TESTS_JSON_UTIL_H
#define MLLM_TESTS_JSON_UTIL_H

#include "file_util.h"

#include <inttypes.h>

#include "json.h"

/* ---- reading ---------------------------------------------------------- */

/* Parses len bytes of src (named `what` in the failure message); the
 * document does not keep src. Free with mllm__json_free(). */
static inline mllm__json_doc *ju_parse(const char *what, const char *src, size_t len)
{
	char err[512] = "";
	mllm__json_doc *doc = NULL;
	int rc = mllm__json_parse(src, len, NULL, &doc, err, sizeof err);
	ck_assert_msg(rc == 0, "%s: %s", what, err);
	ck_assert_ptr_nonnull(doc);
	return doc;
}

/* The whole file at path, parsed. Free with mllm__json_free(). */
static inline mllm__json_doc *ju_load(const char *path)
{
	size_t n;
	char *b = slurp(path, &n);
	mllm__json_doc *doc = ju_parse(path, b, n);
	free(b);
	return doc;
}

/* The JSON header of a safetensors file whose bytes are b[0..n): its
 * length (the little-endian u64 that starts the file) goes to *hl, and the
 * data section starts at b + 8 + *hl. */
static inline mllm__json_doc *ju_parse_st_header(const unsigned char *b, size_t n, uint64_t *hl)
{
	uint64_t len = 0;
	ck_assert_uint_ge(n, 8);
	for (int i = 7; i >= 0; i--)
		len = len << 8 | b[i];
	ck_assert_uint_le(len, n - 8);
	*hl = len;
	return ju_parse("safetensors header", (const char *)b + 8, (size_t)len);
}

/* Member `key` of object o; it must exist. (mllm__json_get() is the
 * optional form.) */
static inline const mllm__json *ju_get(const mllm__json *o, const char *key)
{
	const mllm__json *v;
	ck_assert_ptr_nonnull(o);
	ck_assert_msg(o->type == MLLM_JSON_OBJECT, "looking up \"%s\" in a %s", key,
	              mllm__json_type_name(o->type));
	v = mllm__json_get(o, key);
	ck_assert_msg(v != NULL, "no member \"%s\"", key);
	return v;
}

/* Elements of array a. */
static inline size_t ju_len(const mllm__json *a)
{
	ck_assert_ptr_nonnull(a);
	ck_assert_msg(a->type == MLLM_JSON_ARRAY, "a %s is not an array",
	              mllm__json_type_name(a->type));
	return a->n;
}

/* Element i of array a; it must exist. */
static inline const mllm__json *ju_at(const mllm__json *a, size_t i)
{
	ck_assert_uint_lt(i, ju_len(a));
	return mllm__json_at(a, i);
}

/* An integer literal that fits in int64. */
static inline int64_t ju_int(const mllm__json *v)
{
	ck_assert_ptr_nonnull(v);
	ck_assert_msg(v->type == MLLM_JSON_NUMBER && v->is_int, "a %s is not an integer",
	              mllm__json_type_name(v->type));
	return v->i;
}

/* Any number, integer or not. */
static inline double ju_num(const mllm__json *v)
{
	ck_assert_ptr_nonnull(v);
	ck_assert_msg(v->type == MLLM_JSON_NUMBER, "a %s is not a number",
	              mllm__json_type_name(v->type));
	return v->num;
}

static inline const char *ju_str(const mllm__json *v)
{
	ck_assert_ptr_nonnull(v);
	ck_assert_msg(v->type == MLLM_JSON_STRING, "a %s is not a string",
	              mllm__json_type_name(v->type));
	return v->str;
}

/* The numbers of array a in a fresh array (*n gets the count); walks the
 * list once, where indexing with ju_at() would be quadratic. free(). */
static inline double *ju_nums(const mllm__json *a, size_t *n)
{
	double *x;
	size_t i = 0;
	*n = ju_len(a);
	x = malloc((*n + 1) * sizeof *x);
	ck_assert_ptr_nonnull(x);
	for (const mllm__json *v = a->child; v; v = v->next)
		x[i++] = ju_num(v);
	ck_assert_uint_eq(i, *n);
	return x;
}

/* True for `true` only: false, another type or a missing (NULL) value read
 * as false, the way an optional flag in a config does. */
static inline bool ju_is_true(const mllm__json *v)
{
	return v != NULL && v->type == MLLM_JSON_TRUE;
}

/* ---- writing (test inputs only) ---------------------------------------- */

static inline void ju_put_raw(wbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* s[0..len) as a JSON string: quotes, backslashes and control bytes
 * escaped; other bytes (UTF-8 the reader already validated) as they are. */
static inline void ju_put_str(wbuf *b, const char *s, size_t len)
{
	put(b, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof esc, "\\u%04x", c);
			put(b, esc, 6);
		} else {
			put(b, &s[i], 1);
		}
	}
	put(b, "\"", 1);
}

static inline void ju_put_int(wbuf *b, int64_t v)
{
	char num[32];
	int k = snprintf(num, sizeof num, "%" PRId64, v);
	ck_assert(k > 0 && (size_t)k < sizeof num);
	put(b, num, (size_t)k);
}

/* v, compactly. Numbers keep their kind: an integer literal is written as
 * one, and a non-integer that prints without a fraction gets ".0" so that
 * it reads back as a non-integer; %.17g reads back as the same double. */
static inline void ju_put_value(wbuf *b, const mllm__json *v)
{
	char num[40];
	int k;
	switch (v->type) {
	case MLLM_JSON_NULL:
		ju_put_raw(b, "null");
		break;
	case MLLM_JSON_FALSE:
		ju_put_raw(b, "false");
		break;
	case MLLM_JSON_TRUE:
		ju_put_raw(b, "true");
		break;
	case MLLM_JSON_NUMBER:
		if (v->is_int) {
			ju_put_int(b, v->i);
			break;
		}
		k = snprintf(num, sizeof num, "%.17g", v->num);
		ck_assert(k > 0 && (size_t)k < sizeof num - 2);
		put(b, num, (size_t)k);
		if (!strpbrk(num, ".eE"))
			ju_put_raw(b, ".0");
		break;
	case MLLM_JSON_STRING:
		ju_put_str(b, v->str, v->len);
		break;
	case MLLM_JSON_ARRAY:
	case MLLM_JSON_OBJECT:
		put(b, v->type == MLLM_JSON_ARRAY ? "[" : "{", 1);
		for (const mllm__json *c = v->child; c; c = c->next) {
			if (c != v->child)
				put(b, ",", 1);
			if (v->type == MLLM_JSON_OBJECT) {
				ju_put_str(b, c->key, c->key_len);
				put(b, ":", 1);
			}
			ju_put_value(b, c);
		}
		put(b, v->type == MLLM_JSON_ARRAY ? "]" : "}", 1);
		break;
	}
}

#endif
