/*
 * json.h — a small, strict, allocation-bounded JSON reader (engine-internal).
 * Owned by json.c.
 *
 * The engine may not link jansson, yet it must read config.json,
 * tokenizer_config.json, safetensors headers and shard indexes, all of which
 * come from files we do not trust. mllm__json_parse() accepts exactly RFC 8259
 * (no comments, trailing commas, NaN or bare control characters; strings must
 * be valid UTF-8, \u escapes are decoded and surrogates must pair, member
 * names must be unique within an object) and builds an immutable tree whose
 * memory is bounded by the input length and the caller's limits (one node
 * array, one string buffer of len + 1 bytes). The document owns every node and
 * string; nodes and strings stay valid until mllm__json_free().
 */
#ifndef MLLM_JSON_H
#define MLLM_JSON_H

#include "base.h"

typedef enum {
	MLLM_JSON_NULL = 0,
	MLLM_JSON_FALSE,
	MLLM_JSON_TRUE,
	MLLM_JSON_NUMBER,
	MLLM_JSON_STRING,
	MLLM_JSON_ARRAY,
	MLLM_JSON_OBJECT,
} mllm__json_type;

typedef struct mllm__json mllm__json;

/* One value. Children of arrays/objects form a singly linked list (`child`,
 * then `next`); object members carry their name in key/key_len. */
struct mllm__json {
	mllm__json_type type;
	uint32_t n;              /* children of an array/object */
	const mllm__json *child; /* first element / member value, or NULL */
	const mllm__json *next;  /* next sibling, or NULL */
	const char *key;         /* member name (NUL-terminated), else NULL */
	size_t key_len;
	const char *str;            /* string value (NUL-terminated, decoded) */
	size_t len;                 /* bytes in str (may contain NUL via \u0000) */
	double num;                 /* every number */
	int64_t i;                  /* the exact value when is_int */
	bool is_int;                /* integer literal that fits in int64 */
	size_t offset;              /* byte offset of the value in the input */
	uint32_t child_ix, next_ix; /* json.c's own bookkeeping */
};

typedef struct {
	size_t max_nodes; /* values in the document; 0 = len / 2 + 16 */
	int max_depth;    /* nesting of arrays/objects; 0 = 64 */
} mllm__json_limits;

typedef struct mllm__json_doc mllm__json_doc;

/* Parses len bytes (need not be NUL-terminated). On error returns
 * MLLM_EFORMAT (syntax, limits) or MLLM_ENOMEM and writes "<what> at line L
 * column C (offset N)" to err; the caller prefixes the file name. `limits`
 * may be NULL. */
int mllm__json_parse(const char *src, size_t len, const mllm__json_limits *limits,
                     mllm__json_doc **out, char *err, size_t errlen) MLLM_WUR;
void mllm__json_free(mllm__json_doc *doc);
const mllm__json *mllm__json_root(const mllm__json_doc *doc);

/* Object member by name (first match), or NULL (also when v is not an
 * object). */
const mllm__json *mllm__json_get(const mllm__json *obj, const char *key);
/* Array element i, or NULL. O(i). */
const mllm__json *mllm__json_at(const mllm__json *arr, size_t i);

const char *mllm__json_type_name(mllm__json_type t);

#endif
