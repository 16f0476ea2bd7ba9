/*
 * json.c — the engine's strict JSON reader (see json.h for the contract).
 *
 * Recursive descent with an explicit depth limit. Nodes live in one array
 * that grows (checked, up to the node limit) while parsing; links are kept as
 * indices until the end and turned into pointers once the array stops
 * moving. Decoded strings go into one buffer of len + 1 bytes: a JSON string
 * never decodes to more bytes than its quoted source, so that bound is exact.
 */
#include "json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE_IX UINT32_MAX
#define NUM_MAX 1024 /* longest number literal we hand to strtod */

struct mllm__json_doc {
	mllm__json *nodes;
	size_t n_nodes;
	char *strs;
};

typedef struct {
	const char *src;
	size_t len, pos;
	mllm__json *nodes;
	size_t n_nodes, cap_nodes, max_nodes;
	int depth, max_depth;
	char *strs;
	size_t n_strs;
	char *err;
	size_t errlen;
	int rc;
	locale_t c_locale; /* strtod must not follow the process locale */
} parser;

static int perr(parser *p, size_t at, const char *what)
{
	size_t line = 1, col = 1;

	if (p->rc)
		return p->rc;
	if (at > p->len)
		at = p->len;
	for (size_t i = 0; i < at; i++) {
		if (p->src[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	p->rc = MLLM_EFORMAT;
	mllm__seterr(p->err, p->errlen, MLLM_EFORMAT, "%s at line %zu column %zu (offset %zu)",
	             what, line, col, at);
	return p->rc;
}

static void skip_ws(parser *p)
{
	while (p->pos < p->len) {
		char c = p->src[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

/* Returns the index of a fresh node, or NONE_IX with p->rc set. */
static uint32_t new_node(parser *p, mllm__json_type t)
{
	mllm__json *n;

	if (p->n_nodes >= p->max_nodes) {
		perr(p, p->pos, "too many values");
		return NONE_IX;
	}
	if (p->n_nodes == p->cap_nodes) {
		size_t cap = p->cap_nodes ? p->cap_nodes * 2 : 64;
		size_t bytes;
		if (cap > p->max_nodes)
			cap = p->max_nodes;
		if (mllm__mul_overflow(cap, sizeof *n, &bytes)) {
			perr(p, p->pos, "too many values");
			return NONE_IX;
		}
		n = mllm_try_realloc(p->nodes, bytes);
		if (!n) {
			p->rc = mllm__seterr(p->err, p->errlen, MLLM_ENOMEM,
			                     "out of memory for %zu JSON values", cap);
			return NONE_IX;
		}
		p->nodes = n;
		p->cap_nodes = cap;
	}
	n = &p->nodes[p->n_nodes];
	memset(n, 0, sizeof *n);
	n->type = t;
	n->offset = p->pos;
	n->child_ix = NONE_IX;
	n->next_ix = NONE_IX;
	return (uint32_t)p->n_nodes++;
}

/* Parses a string at p->pos (on the opening quote) into the string buffer. */
static int parse_string(parser *p, const char **out, size_t *out_len)
{
	char *o = p->strs + p->n_strs;
	size_t start = p->n_strs;

	p->pos++; /* opening quote */
	for (;;) {
		unsigned char c;
		if (p->pos >= p->len)
			return perr(p, p->pos, "unterminated string");
		c = (unsigned char)p->src[p->pos];
		if (c == '"') {
			p->pos++;
			break;
		}
		if (c < 0x20)
			return perr(p, p->pos, "control character in string");
		if (c == '\\') {
			uint32_t cp;
			char e;
			if (p->pos + 1 >= p->len)
				return perr(p, p->pos, "unterminated string");
			e = p->src[p->pos + 1];
			p->pos += 2;
			switch (e) {
			case '"':
				*o++ = '"';
				continue;
			case '\\':
				*o++ = '\\';
				continue;
			case '/':
				*o++ = '/';
				continue;
			case 'b':
				*o++ = '\b';
				continue;
			case 'f':
				*o++ = '\f';
				continue;
			case 'n':
				*o++ = '\n';
				continue;
			case 'r':
				*o++ = '\r';
				continue;
			case 't':
				*o++ = '\t';
				continue;
			case 'u':
				break;
			default:
				return perr(p, p->pos - 2, "invalid escape in string");
			}
			if (p->len - p->pos < 4 || mllm_hex_decode(p->src + p->pos, 4, &cp))
				return perr(p, p->pos - 2, "invalid \\u escape");
			p->pos += 4;
			if (cp >= 0xDC00 && cp <= 0xDFFF)
				return perr(p, p->pos - 6, "unpaired surrogate in string");
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				uint32_t lo;
				if (p->len - p->pos < 6 || p->src[p->pos] != '\\' ||
				    p->src[p->pos + 1] != 'u' ||
				    mllm_hex_decode(p->src + p->pos + 2, 4, &lo) || lo < 0xDC00 ||
				    lo > 0xDFFF)
					return perr(p, p->pos - 6, "unpaired surrogate in string");
				p->pos += 6;
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			}
			o += mllm_utf8_put(o, cp);
			continue;
		}
		{
			size_t k =
			    mllm_utf8_len((const unsigned char *)p->src + p->pos, p->len - p->pos);
			if (k == 0)
				return perr(p, p->pos, "invalid UTF-8 in string");
			memcpy(o, p->src + p->pos, k);
			o += k;
			p->pos += k;
		}
	}
	*o++ = '\0';
	p->n_strs = (size_t)(o - p->strs);
	*out = p->strs + start;
	*out_len = p->n_strs - start - 1;
	return 0;
}

static int parse_number(parser *p, mllm__json *n)
{
	size_t s = p->pos, i = p->pos;
	bool neg = false, integral = true;
	char buf[NUM_MAX + 1];
	char *end;

	if (i < p->len && p->src[i] == '-') {
		neg = true;
		i++;
	}
	if (i >= p->len || p->src[i] < '0' || p->src[i] > '9')
		return perr(p, s, "invalid number");
	if (p->src[i] == '0') {
		i++;
		if (i < p->len && p->src[i] >= '0' && p->src[i] <= '9')
			return perr(p, s, "leading zero in number");
	} else {
		while (i < p->len && p->src[i] >= '0' && p->src[i] <= '9')
			i++;
	}
	if (i < p->len && p->src[i] == '.') {
		integral = false;
		i++;
		if (i >= p->len || p->src[i] < '0' || p->src[i] > '9')
			return perr(p, s, "invalid number");
		while (i < p->len && p->src[i] >= '0' && p->src[i] <= '9')
			i++;
	}
	if (i < p->len && (p->src[i] == 'e' || p->src[i] == 'E')) {
		integral = false;
		i++;
		if (i < p->len && (p->src[i] == '+' || p->src[i] == '-'))
			i++;
		if (i >= p->len || p->src[i] < '0' || p->src[i] > '9')
			return perr(p, s, "invalid number");
		while (i < p->len && p->src[i] >= '0' && p->src[i] <= '9')
			i++;
	}
	if (i - s > NUM_MAX)
		return perr(p, s, "number too long");
	memcpy(buf, p->src + s, i - s);
	buf[i - s] = '\0';
	if (!p->c_locale) {
		p->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
		if (!p->c_locale) {
			p->rc = mllm__seterr(p->err, p->errlen, MLLM_ENOMEM, "out of memory");
			return p->rc;
		}
	}
	errno = 0;
	n->num = strtod_l(buf, &end, p->c_locale);
	if (end != buf + (i - s) || isinf(n->num))
		return perr(p, s, "number out of range");
	if (integral) {
		/* Exact int64, accumulated negatively so INT64_MIN fits. */
		int64_t v = 0;
		bool ok = true;
		for (size_t k = (neg ? 1 : 0); k < i - s && ok; k++) {
			int d = buf[k] - '0';
			if (v < (INT64_MIN + d) / 10)
				ok = false;
			else
				v = v * 10 - d;
		}
		if (ok && !neg && v == INT64_MIN)
			ok = false;
		if (ok) {
			n->i = neg ? v : -v;
			n->is_int = true;
		}
	}
	p->pos = i;
	return 0;
}

static uint32_t parse_value(parser *p);

static int cmp_member(const void *a, const void *b)
{
	const mllm__json *x = *(const mllm__json *const *)a, *y = *(const mllm__json *const *)b;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	return memcmp(x->key, y->key, x->key_len);
}

/* Duplicate member names make lookups ambiguous (we would take the first,
 * jansson the last): refuse them. Small objects compare pairwise; large ones
 * (safetensors headers) sort a scratch array, so a hostile header stays
 * O(n log n). Runs right after the object closes, while no node moves. */
static int check_unique_keys(parser *p, uint32_t obj)
{
	const mllm__json *dup = NULL;
	size_t n = p->nodes[obj].n;
	const mllm__json **v;
	uint32_t c;
	size_t k = 0;

	if (n < 2)
		return 0;
	if (n <= 8) {
		for (uint32_t a = p->nodes[obj].child_ix; a != NONE_IX && !dup;
		     a = p->nodes[a].next_ix)
			for (uint32_t b = p->nodes[a].next_ix; b != NONE_IX;
			     b = p->nodes[b].next_ix)
				if (p->nodes[a].key_len == p->nodes[b].key_len &&
				    memcmp(p->nodes[a].key, p->nodes[b].key, p->nodes[a].key_len) ==
				        0) {
					dup = &p->nodes[b];
					break;
				}
	} else {
		v = mllm_try_malloc(n * sizeof *v);
		if (!v) {
			p->rc = mllm__seterr(p->err, p->errlen, MLLM_ENOMEM, "out of memory");
			return p->rc;
		}
		for (c = p->nodes[obj].child_ix; c != NONE_IX; c = p->nodes[c].next_ix)
			v[k++] = &p->nodes[c];
		qsort(v, k, sizeof *v, cmp_member);
		for (size_t i = 1; i < k && !dup; i++)
			if (cmp_member(&v[i - 1], &v[i]) == 0)
				dup = v[i]->offset > v[i - 1]->offset ? v[i] : v[i - 1];
		free(v);
	}
	if (dup) {
		char what[128];
		snprintf(what, sizeof what, "duplicate member name \"%.60s\"", dup->key);
		return perr(p, dup->offset, what);
	}
	return 0;
}

static int expect_lit(parser *p, const char *lit)
{
	size_t n = strlen(lit);
	if (p->len - p->pos < n || memcmp(p->src + p->pos, lit, n) != 0)
		return perr(p, p->pos, "invalid literal");
	p->pos += n;
	return 0;
}

static uint32_t parse_container(parser *p, bool is_obj)
{
	uint32_t ix = new_node(p, is_obj ? MLLM_JSON_OBJECT : MLLM_JSON_ARRAY);
	uint32_t last = NONE_IX;
	char close = is_obj ? '}' : ']';

	if (ix == NONE_IX)
		return NONE_IX;
	if (++p->depth > p->max_depth) {
		perr(p, p->pos, "nesting too deep");
		return NONE_IX;
	}
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->src[p->pos] == close) {
		p->pos++;
		p->depth--;
		return ix;
	}
	for (;;) {
		const char *key = NULL;
		size_t key_len = 0;
		uint32_t v;

		skip_ws(p);
		if (is_obj) {
			if (p->pos >= p->len || p->src[p->pos] != '"') {
				perr(p, p->pos, "expected a member name");
				return NONE_IX;
			}
			if (parse_string(p, &key, &key_len))
				return NONE_IX;
			skip_ws(p);
			if (p->pos >= p->len || p->src[p->pos] != ':') {
				perr(p, p->pos, "expected ':'");
				return NONE_IX;
			}
			p->pos++;
			skip_ws(p);
		}
		v = parse_value(p);
		if (v == NONE_IX)
			return NONE_IX;
		p->nodes[v].key = key;
		p->nodes[v].key_len = key_len;
		if (last == NONE_IX)
			p->nodes[ix].child_ix = v;
		else
			p->nodes[last].next_ix = v;
		last = v;
		if (p->nodes[ix].n == UINT32_MAX) {
			perr(p, p->pos, "too many values");
			return NONE_IX;
		}
		p->nodes[ix].n++;
		skip_ws(p);
		if (p->pos < p->len && p->src[p->pos] == ',') {
			p->pos++;
			skip_ws(p);
			if (p->pos < p->len && p->src[p->pos] == close) {
				perr(p, p->pos, "trailing comma");
				return NONE_IX;
			}
			continue;
		}
		if (p->pos < p->len && p->src[p->pos] == close) {
			p->pos++;
			break;
		}
		perr(p, p->pos, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
		return NONE_IX;
	}
	p->depth--;
	if (is_obj && check_unique_keys(p, ix))
		return NONE_IX;
	return ix;
}

static uint32_t parse_value(parser *p)
{
	uint32_t ix;

	skip_ws(p);
	if (p->pos >= p->len) {
		perr(p, p->pos, "unexpected end of input");
		return NONE_IX;
	}
	switch (p->src[p->pos]) {
	case '{':
		return parse_container(p, true);
	case '[':
		return parse_container(p, false);
	case '"':
		ix = new_node(p, MLLM_JSON_STRING);
		if (ix == NONE_IX)
			return NONE_IX;
		if (parse_string(p, &p->nodes[ix].str, &p->nodes[ix].len))
			return NONE_IX;
		return ix;
	case 't':
		ix = new_node(p, MLLM_JSON_TRUE);
		return ix == NONE_IX || expect_lit(p, "true") ? NONE_IX : ix;
	case 'f':
		ix = new_node(p, MLLM_JSON_FALSE);
		return ix == NONE_IX || expect_lit(p, "false") ? NONE_IX : ix;
	case 'n':
		ix = new_node(p, MLLM_JSON_NULL);
		return ix == NONE_IX || expect_lit(p, "null") ? NONE_IX : ix;
	default:
		ix = new_node(p, MLLM_JSON_NUMBER);
		if (ix == NONE_IX)
			return NONE_IX;
		if (parse_number(p, &p->nodes[ix]))
			return NONE_IX;
		return ix;
	}
}

int mllm__json_parse(const char *src, size_t len, const mllm__json_limits *limits,
                     mllm__json_doc **out, char *err, size_t errlen)
{
	parser p = {0};
	mllm__json_doc *doc;
	size_t strs_size;

	*out = NULL;
	p.src = src;
	p.len = len;
	p.err = err;
	p.errlen = errlen;
	p.max_nodes = limits && limits->max_nodes ? limits->max_nodes : len / 2 + 16;
	if (p.max_nodes > UINT32_MAX - 1)
		p.max_nodes = UINT32_MAX - 1;
	p.max_depth = limits && limits->max_depth > 0 ? limits->max_depth : 64;
	if (mllm__add_overflow(len, 1, &strs_size))
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "input too large");
	p.strs = mllm_try_malloc(strs_size);
	if (!p.strs)
		return mllm__seterr(err, errlen, MLLM_ENOMEM,
		                    "out of memory for %zu bytes of JSON strings", len);
	if (parse_value(&p) == NONE_IX)
		goto fail;
	skip_ws(&p);
	if (p.pos != p.len) {
		perr(&p, p.pos, "trailing characters after the JSON value");
		goto fail;
	}
	/* The node array no longer moves: turn indices into pointers. */
	for (size_t i = 0; i < p.n_nodes; i++) {
		mllm__json *n = &p.nodes[i];
		n->child = n->child_ix == NONE_IX ? NULL : &p.nodes[n->child_ix];
		n->next = n->next_ix == NONE_IX ? NULL : &p.nodes[n->next_ix];
	}
	if (p.c_locale)
		freelocale(p.c_locale);
	p.c_locale = (locale_t)0;
	doc = mllm_try_malloc(sizeof *doc);
	if (!doc) {
		p.rc = mllm__seterr(err, errlen, MLLM_ENOMEM, "out of memory");
		goto fail;
	}
	doc->nodes = p.nodes;
	doc->n_nodes = p.n_nodes;
	doc->strs = p.strs;
	*out = doc;
	return 0;
fail:
	if (p.c_locale)
		freelocale(p.c_locale);
	free(p.nodes);
	free(p.strs);
	return p.rc ? p.rc : MLLM_EFORMAT;
}

void mllm__json_free(mllm__json_doc *doc)
{
	if (!doc)
		return;
	free(doc->nodes);
	free(doc->strs);
	free(doc);
}

const mllm__json *mllm__json_root(const mllm__json_doc *doc)
{
	return doc && doc->n_nodes ? &doc->nodes[0] : NULL;
}

const mllm__json *mllm__json_get(const mllm__json *obj, const char *key)
{
	size_t kl;

	if (!obj || obj->type != MLLM_JSON_OBJECT)
		return NULL;
	kl = strlen(key);
	for (const mllm__json *c = obj->child; c; c = c->next)
		if (c->key_len == kl && memcmp(c->key, key, kl) == 0)
			return c;
	return NULL;
}

const mllm__json *mllm__json_at(const mllm__json *arr, size_t i)
{
	const mllm__json *c;

	if (!arr || arr->type != MLLM_JSON_ARRAY)
		return NULL;
	for (c = arr->child; c && i > 0; c = c->next)
		i--;
	return c;
}

const char *mllm__json_type_name(mllm__json_type t)
{
	switch (t) {
	case MLLM_JSON_NULL:
		return "null";
	case MLLM_JSON_FALSE:
	case MLLM_JSON_TRUE:
		return "boolean";
	case MLLM_JSON_NUMBER:
		return "number";
	case MLLM_JSON_STRING:
		return "string";
	case MLLM_JSON_ARRAY:
		return "array";
	case MLLM_JSON_OBJECT:
		return "object";
	}
	return "?";
}
