/*
 * jinja_eval.c — renders a parsed template (jinja_parse.c) with jansson
 * values, following jinja2's sandboxed semantics as transformers sets them
 * up: a missing key or index is Undefined (prints as nothing, is falsy,
 * iterates as empty) but using Undefined in arithmetic, attribute access or
 * a call raises; a set inside a loop body stays in that iteration; only
 * namespace() objects accept attribute assignment.
 *
 * Every value is a json_t * reference owned by whoever holds it; NULL is
 * Undefined. An error is recorded once in the context (c->rc) and every
 * step checks it and unwinds. Work, nesting depth and output size are
 * charged as the render goes, so no template or input can run unbounded.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"
#include "jinja_internal.h"

#define DEF_MAX_OUTPUT ((size_t)4 << 20)
#define DEF_MAX_WORK   50000000LL
#define DEF_MAX_DEPTH  400
#define MAX_ARGS       16

enum { CTL_NONE = 0, CTL_BREAK, CTL_CONTINUE };
enum { CALLABLE_MACRO = 1, CALLABLE_CALLER };

typedef struct {
	json_t *vars; /* owned object */
	int parent;   /* next frame to look in; -1: the globals */
} frame;

typedef struct {
	json_t *marker; /* owned: the value templates hold */
	int kind;
	const jnode *def; /* JN_MACRO, or the JN_CALLBLOCK for a caller */
	int parent;       /* caller: the frame its body sees */
} callable;

typedef struct {
	const api_jinja *t;
	json_t *globals;
	frame *frames;
	int n_frames, cap_frames;
	callable *calls;
	int n_calls, cap_calls;
	json_t **namespaces; /* owned refs: objects that accept attribute sets */
	int n_ns, cap_ns;
	mllm_buf *out;
	size_t max_output;
	long long work, max_work;
	int depth, max_depth;
	int ctl;
	int rc;
	char *err;
	size_t errlen;
} ctx;

typedef struct {
	json_t *v[MAX_ARGS];
	const char *kw[MAX_ARGS];
	int n;
} args;

static int fail(ctx *c, const jnode *n, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(ctx *c, const jnode *n, int code, const char *fmt, ...)
{
	char msg[384];
	va_list ap;
	if (c->rc)
		return c->rc;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n)
		c->rc = mllm__seterr(c->err, c->errlen, code, "line %d, column %d: %s", n->line,
		                     n->col, msg);
	else
		c->rc = mllm__seterr(c->err, c->errlen, code, "%s", msg);
	return c->rc;
}

static int charge(ctx *c, const jnode *n, long long units)
{
	c->work += units;
	if (c->work > c->max_work)
		return fail(c, n, MLLM_ERANGE, "template exceeds its work limit (%lld units)",
		            c->max_work);
	return 0;
}

static const char *type_name(const json_t *v)
{
	if (!v)
		return "Undefined";
	switch (json_typeof(v)) {
	case JSON_STRING:
		return "str";
	case JSON_INTEGER:
		return "int";
	case JSON_REAL:
		return "float";
	case JSON_TRUE:
	case JSON_FALSE:
		return "bool";
	case JSON_NULL:
		return "NoneType";
	case JSON_ARRAY:
		return "list";
	case JSON_OBJECT:
		return "dict";
	}
	return "?";
}

static const char *node_name(const jnode *n)
{
	if (n && (n->kind == JN_NAME || n->kind == JN_ATTR))
		return n->str;
	return "value";
}

static json_t *mkstr(ctx *c, const jnode *n, const char *s, size_t len)
{
	json_t *v;
	if (len > c->max_output) {
		fail(c, n, MLLM_ENOSPACE, "a string exceeds the %zu-byte output limit",
		     c->max_output);
		return NULL;
	}
	if (charge(c, n, 1 + (long long)(len / 32)) != 0)
		return NULL;
	v = json_stringn_nocheck(s, len);
	if (!v)
		fail(c, n, MLLM_ENOMEM, "out of memory");
	return v;
}

static json_t *buf_to_str(ctx *c, const jnode *n, mllm_buf *b)
{
	json_t *v = mkstr(c, n, b->data ? b->data : "", b->len);
	mllm_buf_free(b);
	return v;
}

/* jansson holds finite reals only; Python's inf and nan have no JSON
 * value, so an overflowing float is refused instead of printed. */
static json_t *mkreal(ctx *c, const jnode *n, double d)
{
	if (!isfinite(d)) {
		fail(c, n, MLLM_EINVAL, "float result out of range");
		return NULL;
	}
	return json_real(d);
}

static json_t *mkbool(bool b)
{
	return json_boolean(b);
}

static bool is_str(const json_t *v)
{
	return v && json_is_string(v);
}

static bool is_num(const json_t *v)
{
	return v && (json_is_number(v) || json_is_boolean(v));
}

static long long int_of(const json_t *v)
{
	if (json_is_integer(v))
		return (long long)json_integer_value(v);
	if (json_is_boolean(v))
		return json_is_true(v);
	double d = json_real_value(v);
	/* Clamped: a cast of an out-of-range double is undefined in C. */
	if (!(d > -9.2e18 && d < 9.2e18))
		return d < 0 ? -LLONG_MAX : LLONG_MAX;
	return (long long)d;
}

static double dbl_of(const json_t *v)
{
	if (json_is_real(v))
		return json_real_value(v);
	return (double)int_of(v);
}

static bool is_intlike(const json_t *v)
{
	return v && (json_is_integer(v) || json_is_boolean(v));
}

static void args_free(args *a)
{
	for (int i = 0; i < a->n; i++)
		json_decref(a->v[i]);
	a->n = 0;
}

/* Argument by position or keyword; *found says whether it was given. */
static json_t *arg(const args *a, int pos, const char *name, bool *found)
{
	int n_pos = 0;
	for (int i = 0; i < a->n; i++) {
		if (a->kw[i]) {
			if (name && strcmp(a->kw[i], name) == 0) {
				if (found)
					*found = true;
				return a->v[i];
			}
		} else if (n_pos++ == pos) {
			if (found)
				*found = true;
			return a->v[i];
		}
	}
	if (found)
		*found = false;
	return NULL;
}

static int n_positional(const args *a)
{
	int n = 0;
	for (int i = 0; i < a->n; i++)
		n += a->kw[i] == NULL;
	return n;
}

/* ---- scopes ------------------------------------------------------------- */

static void push_frame(ctx *c, int parent)
{
	if (c->n_frames == c->cap_frames) {
		c->cap_frames = c->cap_frames ? c->cap_frames * 2 : 16;
		c->frames = xrealloc(c->frames, (size_t)c->cap_frames * sizeof *c->frames);
	}
	c->frames[c->n_frames].vars = json_object();
	MLLM_ASSERT(c->frames[c->n_frames].vars);
	c->frames[c->n_frames].parent = parent;
	c->n_frames++;
}

static void pop_frame(ctx *c)
{
	json_decref(c->frames[--c->n_frames].vars);
}

static json_t *lookup(ctx *c, const char *name)
{
	int i = c->n_frames - 1;
	while (i >= 0) {
		json_t *v = json_object_get(c->frames[i].vars, name);
		if (v)
			return json_incref(v);
		i = c->frames[i].parent;
	}
	return json_incref(json_object_get(c->globals, name));
}

static void assign(ctx *c, const char *name, json_t *v)
{
	/* set_new steals v; a NULL (Undefined) value removes the name. */
	if (v)
		json_object_set_new_nocheck(c->frames[c->n_frames - 1].vars, name, v);
	else
		json_object_del(c->frames[c->n_frames - 1].vars, name);
}

static callable *find_callable(ctx *c, const json_t *v)
{
	if (!v || !json_is_object(v))
		return NULL;
	for (int i = 0; i < c->n_calls; i++) {
		if (c->calls[i].marker == v)
			return &c->calls[i];
	}
	return NULL;
}

static json_t *add_callable(ctx *c, int kind, const jnode *def, int parent)
{
	callable *k;
	if (c->n_calls == c->cap_calls) {
		c->cap_calls = c->cap_calls ? c->cap_calls * 2 : 8;
		c->calls = xrealloc(c->calls, (size_t)c->cap_calls * sizeof *c->calls);
	}
	k = &c->calls[c->n_calls++];
	k->marker = json_object();
	MLLM_ASSERT(k->marker);
	k->kind = kind;
	k->def = def;
	k->parent = parent;
	return json_incref(k->marker);
}

static bool is_namespace(ctx *c, const json_t *v)
{
	for (int i = 0; i < c->n_ns; i++) {
		if (c->namespaces[i] == v)
			return true;
	}
	return false;
}

/* ---- strings ------------------------------------------------------------ */

/* Byte offsets of each code point of s[0..n), plus n at the end:
 * returns the count of code points; *offs is owned by the caller. */
static size_t char_offsets(const char *s, size_t n, size_t **offs)
{
	size_t k = 0;
	size_t *o = xmallocarray(n + 1, sizeof *o);
	for (size_t i = 0; i < n;) {
		size_t l;
		o[k++] = i;
		(void)api__utf8_next(s + i, n - i, &l);
		i += l;
	}
	o[k] = n;
	*offs = o;
	return k;
}

static bool in_set(uint32_t cp, const char *set, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t l;
		if (api__utf8_next(set + i, n - i, &l) == cp)
			return true;
		i += l;
	}
	return false;
}

/* Python's str.strip/lstrip/rstrip: chars NULL = whitespace. */
static void py_strip(const char *s, size_t n, const char *chars, size_t n_chars, int left,
                     int right, size_t *from, size_t *to)
{
	size_t a = 0, b = n;
	while (left && a < b) {
		size_t l;
		uint32_t cp = api__utf8_next(s + a, b - a, &l);
		if (chars ? !in_set(cp, chars, n_chars) : !api__py_isspace(cp))
			break;
		a += l;
	}
	while (right && b > a) {
		size_t p = b - 1, l;
		uint32_t cp;
		while (p > a && ((unsigned char)s[p] & 0xC0) == 0x80)
			p--;
		cp = api__utf8_next(s + p, b - p, &l);
		if (p + l != b)
			p = b - 1, cp = (unsigned char)s[b - 1];
		if (chars ? !in_set(cp, chars, n_chars) : !api__py_isspace(cp))
			break;
		b = p;
	}
	*from = a;
	*to = b;
}

static json_t *str_strip(ctx *c, const jnode *n, const json_t *v, const json_t *chars, int left,
                         int right)
{
	size_t a, b;
	const char *s = json_string_value(v);
	if (chars && !json_is_null(chars) && !is_str(chars)) {
		fail(c, n, MLLM_EINVAL, "strip arg must be None or str");
		return NULL;
	}
	if (chars && json_is_null(chars))
		chars = NULL;
	py_strip(s, json_string_length(v), chars ? json_string_value(chars) : NULL,
	         chars ? json_string_length(chars) : 0, left, right, &a, &b);
	return mkstr(c, n, s + a, b - a);
}

static json_t *str_split(ctx *c, const jnode *n, const json_t *v, const json_t *sep,
                         long long maxsplit)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	json_t *out = json_array();
	MLLM_ASSERT(out);
	if (sep && !json_is_null(sep)) {
		const char *p = json_string_value(sep);
		size_t pl = json_string_length(sep), at = 0;
		if (pl == 0) {
			json_decref(out);
			fail(c, n, MLLM_EINVAL, "empty separator");
			return NULL;
		}
		for (;;) {
			const char *hit = maxsplit == 0 ? NULL : memmem(s + at, len - at, p, pl);
			size_t end = hit ? (size_t)(hit - s) : len;
			json_t *part = mkstr(c, n, s + at, end - at);
			if (!part) {
				json_decref(out);
				return NULL;
			}
			json_array_append_new(out, part);
			if (!hit)
				break;
			at = end + pl;
			if (maxsplit > 0)
				maxsplit--;
		}
		return out;
	}
	/* No separator: runs of whitespace, none at the ends. */
	for (size_t i = 0; i < len;) {
		size_t l, start;
		uint32_t cp = api__utf8_next(s + i, len - i, &l);
		if (api__py_isspace(cp)) {
			i += l;
			continue;
		}
		start = i;
		if (maxsplit == 0) {
			size_t a, b;
			py_strip(s + start, len - start, NULL, 0, 0, 1, &a, &b);
			i = start + b;
		} else {
			while (i < len) {
				cp = api__utf8_next(s + i, len - i, &l);
				if (api__py_isspace(cp))
					break;
				i += l;
			}
		}
		json_t *part = mkstr(c, n, s + start, i - start);
		if (!part) {
			json_decref(out);
			return NULL;
		}
		json_array_append_new(out, part);
		if (maxsplit > 0)
			maxsplit--;
		if (maxsplit == 0 && i < len) {
			while (i < len) {
				cp = api__utf8_next(s + i, len - i, &l);
				if (!api__py_isspace(cp))
					break;
				i += l;
			}
			if (i < len) {
				size_t a, b;
				py_strip(s + i, len - i, NULL, 0, 0, 1, &a, &b);
				part = mkstr(c, n, s + i, b);
				if (!part) {
					json_decref(out);
					return NULL;
				}
				json_array_append_new(out, part);
			}
			break;
		}
	}
	return out;
}

static json_t *str_replace(ctx *c, const jnode *n, const json_t *v, const json_t *from,
                           const json_t *to, long long count)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	const char *f = json_string_value(from);
	size_t fl = json_string_length(from);
	mllm_buf b;
	size_t at = 0;
	mllm_buf_init(&b, c->max_output);
	if (fl == 0) {
		/* Python inserts the replacement around every character. */
		size_t *offs;
		size_t nc = char_offsets(s, len, &offs);
		for (size_t i = 0; i <= nc; i++) {
			if (count < 0 || (long long)i < count) {
				if (mllm_buf_append(&b, json_string_value(to),
				                    json_string_length(to)))
					goto toobig;
			}
			if (i < nc && mllm_buf_append(&b, s + offs[i], offs[i + 1] - offs[i]))
				goto toobig;
		}
		free(offs);
		return buf_to_str(c, n, &b);
	toobig:
		free(offs);
		mllm_buf_free(&b);
		fail(c, n, MLLM_ENOSPACE, "a string exceeds the output limit");
		return NULL;
	}
	for (;;) {
		const char *hit = count == 0 ? NULL : memmem(s + at, len - at, f, fl);
		size_t end = hit ? (size_t)(hit - s) : len;
		if (mllm_buf_append(&b, s + at, end - at) != 0 ||
		    (hit &&
		     mllm_buf_append(&b, json_string_value(to), json_string_length(to)) != 0)) {
			mllm_buf_free(&b);
			fail(c, n, MLLM_ENOSPACE, "a string exceeds the output limit");
			return NULL;
		}
		if (!hit)
			break;
		at = end + fl;
		if (count > 0)
			count--;
	}
	return buf_to_str(c, n, &b);
}

/* ASCII case mapping: templates change the case of role names and
 * keywords; the rest of Unicode passes unchanged. */
static json_t *str_case(ctx *c, const jnode *n, const json_t *v, int mode)
{
	size_t len = json_string_length(v);
	char *s = xstrndup(json_string_value(v), len);
	int word_start = 1;
	json_t *r;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		int alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
		int up;
		if (mode == 'u')
			up = 1;
		else if (mode == 'l')
			up = 0;
		else if (mode == 'c')
			up = i == 0;
		else
			up = word_start;
		if (up && ch >= 'a' && ch <= 'z')
			s[i] = (char)(ch - 32);
		else if (!up && ch >= 'A' && ch <= 'Z')
			s[i] = (char)(ch + 32);
		word_start = !alpha;
	}
	r = mkstr(c, n, s, len);
	free(s);
	return r;
}

static json_t *to_str(ctx *c, const jnode *n, const json_t *v)
{
	mllm_buf b;
	mllm_buf_init(&b, c->max_output);
	if (api__py_str(v, &b) != 0) {
		mllm_buf_free(&b);
		fail(c, n, MLLM_ENOSPACE, "a string exceeds the output limit");
		return NULL;
	}
	return buf_to_str(c, n, &b);
}

/* A sequence as a list: lists as they are, dict keys, string characters,
 * Undefined as empty. NULL (with an error) for what does not iterate. */
static json_t *as_list(ctx *c, const jnode *n, json_t *v)
{
	json_t *out;
	if (!v)
		return json_array();
	if (json_is_array(v))
		return json_incref(v);
	out = json_array();
	MLLM_ASSERT(out);
	if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x)
		{
			json_array_append_new(out, json_string_nocheck(k));
		}
		if (charge(c, n, 1 + (long long)json_object_size(v) / 32) != 0) {
			json_decref(out);
			return NULL;
		}
		return out;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);
		for (size_t i = 0; i < len;) {
			size_t l;
			(void)api__utf8_next(s + i, len - i, &l);
			json_array_append_new(out, json_stringn_nocheck(s + i, l));
			i += l;
		}
		if (charge(c, n, 1 + (long long)len / 8) != 0) {
			json_decref(out);
			return NULL;
		}
		return out;
	}
	json_decref(out);
	fail(c, n, MLLM_EINVAL, "'%s' object is not iterable", type_name(v));
	return NULL;
}

static long long py_len(const json_t *v)
{
	if (!v)
		return 0;
	if (json_is_string(v))
		return (long long)api__utf8_chars(json_string_value(v), json_string_length(v));
	if (json_is_array(v))
		return (long long)json_array_size(v);
	if (json_is_object(v))
		return (long long)json_object_size(v);
	return -1;
}

/* ---- item access -------------------------------------------------------- */

static json_t *get_attr(const json_t *obj, const char *name)
{
	if (obj && json_is_object(obj))
		return json_incref(json_object_get(obj, name));
	return NULL;
}

static json_t *get_item(ctx *c, const jnode *n, const json_t *obj, const json_t *key)
{
	if (json_is_object(obj)) {
		if (is_str(key))
			return json_incref(json_object_get(obj, json_string_value(key)));
		return NULL;
	}
	if (!is_intlike(key))
		return NULL;
	long long i = int_of(key);
	if (json_is_array(obj)) {
		long long len = (long long)json_array_size(obj);
		if (i < 0)
			i += len;
		if (i < 0 || i >= len)
			return NULL;
		return json_incref(json_array_get(obj, (size_t)i));
	}
	if (json_is_string(obj)) {
		size_t *offs;
		const char *s = json_string_value(obj);
		long long len = (long long)char_offsets(s, json_string_length(obj), &offs);
		json_t *r = NULL;
		if (i < 0)
			i += len;
		if (i >= 0 && i < len)
			r = mkstr(c, n, s + offs[i], offs[i + 1] - offs[i]);
		free(offs);
		return r;
	}
	return NULL;
}

/* Python slice bounds for a sequence of len items. */
static void slice_bounds(long long len, const json_t *start, const json_t *stop, long long step,
                         long long *from, long long *to)
{
	long long a, b;
	if (step > 0) {
		a = start ? int_of(start) : 0;
		b = stop ? int_of(stop) : len;
	} else {
		a = start ? int_of(start) : len - 1;
		b = stop ? int_of(stop) : -len - 1;
	}
	if (a < 0)
		a += len;
	if (b < 0)
		b += len;
	if (step > 0) {
		a = a < 0 ? 0 : a > len ? len : a;
		b = b < 0 ? 0 : b > len ? len : b;
	} else {
		a = a < -1 ? -1 : a > len - 1 ? len - 1 : a;
		b = b < -1 ? -1 : b > len - 1 ? len - 1 : b;
	}
	*from = a;
	*to = b;
}

static json_t *do_slice(ctx *c, const jnode *n, const json_t *obj, const json_t *start,
                        const json_t *stop, const json_t *stepv)
{
	long long step = 1, a, b, len;
	size_t *offs = NULL;
	if (start && json_is_null(start))
		start = NULL;
	if (stop && json_is_null(stop))
		stop = NULL;
	if (stepv && json_is_null(stepv))
		stepv = NULL;
	if ((start && !is_intlike(start)) || (stop && !is_intlike(stop)) ||
	    (stepv && !is_intlike(stepv))) {
		fail(c, n, MLLM_EINVAL, "slice indices must be integers or None");
		return NULL;
	}
	if (stepv)
		step = int_of(stepv);
	if (step == 0) {
		fail(c, n, MLLM_EINVAL, "slice step cannot be zero");
		return NULL;
	}
	if (json_is_array(obj))
		len = (long long)json_array_size(obj);
	else if (json_is_string(obj))
		len =
		    (long long)char_offsets(json_string_value(obj), json_string_length(obj), &offs);
	else
		return NULL;
	slice_bounds(len, start, stop, step, &a, &b);
	if (json_is_array(obj)) {
		json_t *out = json_array();
		MLLM_ASSERT(out);
		for (long long i = a; step > 0 ? i < b : i > b; i += step)
			json_array_append(out, json_array_get(obj, (size_t)i));
		if (charge(c, n, 1 + (long long)json_array_size(out) / 32) != 0) {
			json_decref(out);
			return NULL;
		}
		return out;
	}
	mllm_buf sb;
	const char *s = json_string_value(obj);
	mllm_buf_init(&sb, c->max_output);
	for (long long i = a; step > 0 ? i < b : i > b; i += step) {
		if (mllm_buf_append(&sb, s + offs[i], offs[i + 1] - offs[i]) != 0)
			break;
	}
	free(offs);
	return buf_to_str(c, n, &sb);
}

/* ---- evaluation ------------------------------------------------------- */

static json_t *ev(ctx *c, const jnode *n);
static void ex(ctx *c, const jnode *n);
static bool run_test(ctx *c, const jnode *n, const char *name, const json_t *v, const args *a);
static json_t *apply_filter(ctx *c, const jnode *n, const char *name, json_t *v, const args *a);

static int eval_args(ctx *c, const jnode *n, args *a)
{
	a->n = 0;
	if (n->n_kids > MAX_ARGS)
		return fail(c, n, MLLM_EINVAL, "more than %d arguments", MAX_ARGS);
	for (int i = 0; i < n->n_kids; i++) {
		a->v[i] = ev(c, n->kids[i]);
		a->kw[i] = n->kw ? n->kw[i] : NULL;
		a->n = i + 1;
		if (c->rc) {
			args_free(a);
			return c->rc;
		}
	}
	return 0;
}

static json_t *arith(ctx *c, const jnode *n, int op, json_t *a, json_t *b)
{
	if (op == JOP_CONCAT) {
		mllm_buf s;
		mllm_buf_init(&s, c->max_output);
		if (api__py_str(a, &s) != 0 || api__py_str(b, &s) != 0) {
			mllm_buf_free(&s);
			fail(c, n, MLLM_ENOSPACE, "a string exceeds the output limit");
			return NULL;
		}
		return buf_to_str(c, n, &s);
	}
	if (!a || !b) {
		fail(c, n, MLLM_EINVAL, "'%s' is undefined", node_name(!a ? n->a : n->b));
		return NULL;
	}
	if (op == JOP_ADD && is_str(a) && is_str(b)) {
		mllm_buf s;
		mllm_buf_init(&s, c->max_output);
		if (mllm_buf_append(&s, json_string_value(a), json_string_length(a)) != 0 ||
		    mllm_buf_append(&s, json_string_value(b), json_string_length(b)) != 0) {
			mllm_buf_free(&s);
			fail(c, n, MLLM_ENOSPACE, "a string exceeds the output limit");
			return NULL;
		}
		return buf_to_str(c, n, &s);
	}
	if (op == JOP_ADD && json_is_array(a) && json_is_array(b)) {
		json_t *r = json_array();
		MLLM_ASSERT(r);
		json_array_extend(r, a);
		json_array_extend(r, b);
		if (charge(c, n, 1 + (long long)json_array_size(r) / 32) != 0) {
			json_decref(r);
			return NULL;
		}
		return r;
	}
	if (op == JOP_MUL && ((is_str(a) && is_intlike(b)) || (is_intlike(a) && is_str(b)))) {
		const json_t *s = is_str(a) ? a : b;
		long long k = int_of(is_str(a) ? b : a);
		mllm_buf r;
		mllm_buf_init(&r, c->max_output);
		for (long long i = 0; i < k; i++) {
			if (mllm_buf_append(&r, json_string_value(s), json_string_length(s)) != 0) {
				mllm_buf_free(&r);
				fail(c, n, MLLM_ENOSPACE, "a string exceeds the output limit");
				return NULL;
			}
		}
		return buf_to_str(c, n, &r);
	}
	if (op == JOP_MUL &&
	    ((json_is_array(a) && is_intlike(b)) || (is_intlike(a) && json_is_array(b)))) {
		const json_t *l = json_is_array(a) ? a : b;
		long long k = int_of(json_is_array(a) ? b : a);
		json_t *r = json_array();
		MLLM_ASSERT(r);
		for (long long i = 0; i < k && !c->rc; i++) {
			if (charge(c, n, 1 + (long long)json_array_size(l) / 32) == 0)
				json_array_extend(r, (json_t *)l);
		}
		if (c->rc) {
			json_decref(r);
			return NULL;
		}
		return r;
	}
	if (!is_num(a) || !is_num(b)) {
		static const char *const sym[] = {"", "+", "-", "*", "/", "//", "%", "**"};
		fail(c, n, MLLM_EINVAL, "unsupported operand type(s) for %s: '%s' and '%s'",
		     op <= JOP_POW ? sym[op] : "?", type_name(a), type_name(b));
		return NULL;
	}
	if (is_intlike(a) && is_intlike(b) && op != JOP_DIV) {
		long long x = int_of(a), y = int_of(b), r = 0;
		bool ovf = false;
		switch (op) {
		case JOP_ADD:
			ovf = __builtin_add_overflow(x, y, &r);
			break;
		case JOP_SUB:
			ovf = __builtin_sub_overflow(x, y, &r);
			break;
		case JOP_MUL:
			ovf = __builtin_mul_overflow(x, y, &r);
			break;
		case JOP_FLOORDIV:
		case JOP_MOD:
			if (y == 0) {
				fail(c, n, MLLM_EINVAL, "integer division or modulo by zero");
				return NULL;
			}
			if (x == LLONG_MIN && y == -1) {
				ovf = true;
				break;
			}
			r = op == JOP_FLOORDIV ? x / y : x % y;
			if (op == JOP_FLOORDIV && (x % y != 0) && ((x < 0) != (y < 0)))
				r--;
			if (op == JOP_MOD && r != 0 && ((r < 0) != (y < 0)))
				r += y;
			break;
		case JOP_POW:
			if (y < 0)
				return mkreal(c, n, pow((double)x, (double)y));
			r = 1;
			for (long long i = 0; i < y && !ovf; i++)
				ovf = __builtin_mul_overflow(r, x, &r);
			if (y > 64 && (x == 0 || x == 1 || x == -1))
				ovf = false, r = x == 0 ? 0 : (x == 1 || y % 2 == 0) ? 1 : -1;
			break;
		}
		if (ovf) {
			fail(c, n, MLLM_EINVAL, "integer overflow");
			return NULL;
		}
		return json_integer(r);
	}
	double x = dbl_of(a), y = dbl_of(b), r = 0;
	switch (op) {
	case JOP_ADD:
		r = x + y;
		break;
	case JOP_SUB:
		r = x - y;
		break;
	case JOP_MUL:
		r = x * y;
		break;
	case JOP_DIV:
	case JOP_FLOORDIV:
	case JOP_MOD:
		if (y == 0) {
			fail(c, n, MLLM_EINVAL, "division by zero");
			return NULL;
		}
		r = op == JOP_DIV ? x / y : op == JOP_FLOORDIV ? floor(x / y) : fmod(x, y);
		if (op == JOP_MOD && r != 0 && ((r < 0) != (y < 0)))
			r += y;
		break;
	case JOP_POW:
		r = pow(x, y);
		break;
	}
	return mkreal(c, n, r);
}

static json_t *contains(ctx *c, const jnode *n, json_t *item, json_t *seq)
{
	if (!seq)
		return mkbool(false);
	if (json_is_string(seq)) {
		if (!is_str(item)) {
			fail(c, n, MLLM_EINVAL,
			     "'in <string>' requires string as left operand, not %s",
			     type_name(item));
			return NULL;
		}
		return mkbool(memmem(json_string_value(seq), json_string_length(seq),
		                     json_string_value(item), json_string_length(item)) != NULL ||
		              json_string_length(item) == 0);
	}
	if (json_is_array(seq)) {
		size_t i;
		json_t *x;
		json_array_foreach(seq, i, x)
		{
			if (api__py_equal(item, x))
				return mkbool(true);
		}
		return mkbool(false);
	}
	if (json_is_object(seq))
		return mkbool(is_str(item) && json_object_get(seq, json_string_value(item)));
	fail(c, n, MLLM_EINVAL, "argument of type '%s' is not iterable", type_name(seq));
	return NULL;
}

static json_t *binop(ctx *c, const jnode *n)
{
	json_t *a = ev(c, n->a), *b = NULL, *r = NULL;
	int cmp;
	if (c->rc)
		return NULL;
	b = ev(c, n->b);
	if (c->rc)
		goto out;
	switch (n->op) {
	case JOP_EQ:
	case JOP_NE:
		r = mkbool(api__py_equal(a, b) == (n->op == JOP_EQ));
		break;
	case JOP_LT:
	case JOP_LE:
	case JOP_GT:
	case JOP_GE:
		if (!a || !b) {
			fail(c, n, MLLM_EINVAL, "'%s' is undefined", node_name(!a ? n->a : n->b));
			break;
		}
		if (api__py_compare(a, b, &cmp) != 0) {
			fail(c, n, MLLM_EINVAL, "'<' not supported between '%s' and '%s'",
			     type_name(a), type_name(b));
			break;
		}
		r = mkbool(n->op == JOP_LT   ? cmp < 0
		           : n->op == JOP_LE ? cmp <= 0
		           : n->op == JOP_GT ? cmp > 0
		                             : cmp >= 0);
		break;
	case JOP_IN:
	case JOP_NOTIN:
		r = contains(c, n, a, b);
		if (r && n->op == JOP_NOTIN) {
			json_t *x = mkbool(!json_is_true(r));
			json_decref(r);
			r = x;
		}
		break;
	default:
		r = arith(c, n, n->op, a, b);
		break;
	}
out:
	json_decref(a);
	json_decref(b);
	return r;
}

static json_t *call_macro(ctx *c, const jnode *n, callable *k, const args *a, const jnode *caller);

static json_t *call_builtin(ctx *c, const jnode *n, const char *name, const args *a)
{
	if (!strcmp(name, "raise_exception")) {
		json_t *m = arg(a, 0, "message", NULL);
		mllm_buf b;
		mllm_buf_init(&b, 1024);
		if (api__py_str(m, &b) != 0)
			b.len = 0;
		if (c->rc == 0)
			c->rc = mllm__seterr(c->err, c->errlen, MLLM_EINVAL, "%s",
			                     b.data ? b.data : "");
		mllm_buf_free(&b);
		return NULL;
	}
	if (!strcmp(name, "strftime_now")) {
		json_t *f = arg(a, 0, "format", NULL);
		char out[512];
		struct tm tm;
		time_t now = time(NULL);
		size_t len;
		if (!is_str(f)) {
			fail(c, n, MLLM_EINVAL, "strftime_now() needs a format string");
			return NULL;
		}
		localtime_r(&now, &tm);
		len = strftime(out, sizeof out, json_string_value(f), &tm);
		return mkstr(c, n, out, len);
	}
	if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
		json_t *o = json_object();
		MLLM_ASSERT(o);
		for (int i = 0; i < a->n; i++) {
			if (a->kw[i]) {
				json_object_set(o, a->kw[i], a->v[i] ? a->v[i] : json_null());
			} else if (a->v[i] && json_is_object(a->v[i])) {
				json_object_update(o, a->v[i]);
			} else {
				json_decref(o);
				fail(c, n, MLLM_EINVAL, "%s() takes keyword arguments or a mapping",
				     name);
				return NULL;
			}
		}
		if (name[0] == 'n') {
			if (c->n_ns == c->cap_ns) {
				c->cap_ns = c->cap_ns ? c->cap_ns * 2 : 8;
				c->namespaces = xrealloc(c->namespaces,
				                         (size_t)c->cap_ns * sizeof *c->namespaces);
			}
			c->namespaces[c->n_ns++] = json_incref(o);
		}
		return o;
	}
	if (!strcmp(name, "range")) {
		long long start = 0, stop, step = 1;
		int np = n_positional(a);
		json_t *r;
		for (int i = 0; i < a->n; i++) {
			if (!is_intlike(a->v[i]) || a->kw[i]) {
				fail(c, n, MLLM_EINVAL, "range() takes integers");
				return NULL;
			}
		}
		if (np == 1) {
			stop = int_of(a->v[0]);
		} else if (np == 2 || np == 3) {
			start = int_of(a->v[0]);
			stop = int_of(a->v[1]);
			if (np == 3)
				step = int_of(a->v[2]);
		} else {
			fail(c, n, MLLM_EINVAL, "range() takes 1 to 3 arguments");
			return NULL;
		}
		if (step == 0) {
			fail(c, n, MLLM_EINVAL, "range() arg 3 must not be zero");
			return NULL;
		}
		r = json_array();
		MLLM_ASSERT(r);
		for (long long i = start; step > 0 ? i < stop : i > stop; i += step) {
			if (charge(c, n, 1) != 0) {
				json_decref(r);
				return NULL;
			}
			json_array_append_new(r, json_integer(i));
		}
		return r;
	}
	return NULL;
}

static bool is_builtin(const char *name)
{
	return !strcmp(name, "raise_exception") || !strcmp(name, "strftime_now") ||
	       !strcmp(name, "namespace") || !strcmp(name, "dict") || !strcmp(name, "range");
}

/* obj.name(args) for str, dict and loop methods. *handled = false when
 * the object has no such method (the call then fails as a call of
 * Undefined). */
static json_t *call_method(ctx *c, const jnode *n, json_t *obj, const char *name, const args *a,
                           bool *handled)
{
	json_t *a0 = arg(a, 0, NULL, NULL), *a1 = arg(a, 1, NULL, NULL);
	*handled = true;
	if (is_str(obj)) {
		const char *s = json_string_value(obj);
		size_t len = json_string_length(obj);
		if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
			bool start = name[0] == 's';
			json_t *pre = a0;
			size_t np = 1;
			if (pre && json_is_array(pre))
				np = json_array_size(pre);
			for (size_t i = 0; i < np; i++) {
				json_t *p = json_is_array(pre) ? json_array_get(pre, i) : pre;
				size_t pl;
				if (!is_str(p)) {
					fail(c, n, MLLM_EINVAL, "%s arg must be str", name);
					return NULL;
				}
				pl = json_string_length(p);
				if (pl <= len &&
				    memcmp(start ? s : s + len - pl, json_string_value(p), pl) == 0)
					return mkbool(true);
			}
			return mkbool(false);
		}
		if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip"))
			return str_strip(c, n, obj, a0, name[0] != 'r', name[0] != 'l');
		if (!strcmp(name, "split")) {
			json_t *sep = arg(a, 0, "sep", NULL), *mx = arg(a, 1, "maxsplit", NULL);
			if (sep && !json_is_null(sep) && !is_str(sep)) {
				fail(c, n, MLLM_EINVAL, "must be str or None");
				return NULL;
			}
			return str_split(c, n, obj, sep, mx && is_intlike(mx) ? int_of(mx) : -1);
		}
		if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") ||
		    !strcmp(name, "capitalize"))
			return str_case(c, n, obj,
			                name[0] == 'u'   ? 'u'
			                : name[0] == 'l' ? 'l'
			                : name[0] == 't' ? 't'
			                                 : 'c');
		if (!strcmp(name, "replace")) {
			json_t *cnt = arg(a, 2, "count", NULL);
			if (!is_str(a0) || !is_str(a1)) {
				fail(c, n, MLLM_EINVAL, "replace() arguments must be str");
				return NULL;
			}
			return str_replace(c, n, obj, a0, a1,
			                   cnt && is_intlike(cnt) ? int_of(cnt) : -1);
		}
		if (!strcmp(name, "find") || !strcmp(name, "count") || !strcmp(name, "rfind")) {
			const char *hit;
			long long k = 0;
			if (!is_str(a0)) {
				fail(c, n, MLLM_EINVAL, "%s() argument must be str", name);
				return NULL;
			}
			if (name[0] == 'c') {
				size_t pl = json_string_length(a0), at = 0;
				if (pl == 0)
					return json_integer(py_len(obj) + 1);
				while (
				    (hit = memmem(s + at, len - at, json_string_value(a0), pl))) {
					k++;
					at = (size_t)(hit - s) + pl;
				}
				return json_integer(k);
			}
			hit = NULL;
			for (const char *p = s;;) {
				const char *h =
				    memmem(p, len - (size_t)(p - s), json_string_value(a0),
				           json_string_length(a0));
				if (!h)
					break;
				hit = h;
				if (name[0] == 'f' || h == s + len)
					break;
				p = h + 1;
			}
			if (!hit)
				return json_integer(-1);
			return json_integer((long long)api__utf8_chars(s, (size_t)(hit - s)));
		}
		if (!strcmp(name, "removeprefix") || !strcmp(name, "removesuffix")) {
			size_t pl;
			if (!is_str(a0)) {
				fail(c, n, MLLM_EINVAL, "%s() argument must be str", name);
				return NULL;
			}
			pl = json_string_length(a0);
			if (pl <= len && name[6] == 'p' &&
			    memcmp(s, json_string_value(a0), pl) == 0)
				return mkstr(c, n, s + pl, len - pl);
			if (pl <= len && name[6] == 's' &&
			    memcmp(s + len - pl, json_string_value(a0), pl) == 0)
				return mkstr(c, n, s, len - pl);
			return json_incref(obj);
		}
		if (!strcmp(name, "join")) {
			json_t *items = as_list(c, n, a0);
			mllm_buf b;
			size_t i;
			json_t *x;
			if (!items)
				return NULL;
			mllm_buf_init(&b, c->max_output);
			json_array_foreach(items, i, x)
			{
				if ((i > 0 && mllm_buf_append(&b, s, len) != 0) ||
				    api__py_str(x, &b) != 0) {
					json_decref(items);
					mllm_buf_free(&b);
					fail(c, n, MLLM_ENOSPACE,
					     "a string exceeds the output limit");
					return NULL;
				}
			}
			json_decref(items);
			return buf_to_str(c, n, &b);
		}
		if (!strcmp(name, "isspace") || !strcmp(name, "isdigit") ||
		    !strcmp(name, "isalpha")) {
			if (len == 0)
				return mkbool(false);
			for (size_t i = 0; i < len;) {
				size_t l;
				uint32_t cp = api__utf8_next(s + i, len - i, &l);
				bool ok = name[2] == 's'   ? api__py_isspace(cp)
				          : name[2] == 'd' ? (cp >= '0' && cp <= '9')
				                           : ((cp | 32) >= 'a' && (cp | 32) <= 'z');
				if (!ok)
					return mkbool(false);
				i += l;
			}
			return mkbool(true);
		}
	} else if (obj && json_is_object(obj) && !is_namespace(c, obj)) {
		if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values")) {
			json_t *r = json_array();
			const char *k;
			json_t *x;
			MLLM_ASSERT(r);
			json_object_foreach(obj, k, x)
			{
				if (name[0] == 'k')
					json_array_append_new(r, json_string_nocheck(k));
				else if (name[0] == 'v')
					json_array_append(r, x);
				else
					json_array_append_new(r, json_pack("[sO]", k, x));
			}
			if (charge(c, n, 1 + (long long)json_object_size(obj) / 8) != 0) {
				json_decref(r);
				return NULL;
			}
			return r;
		}
		if (!strcmp(name, "get")) {
			json_t *v = is_str(a0) ? json_object_get(obj, json_string_value(a0)) : NULL;
			if (v)
				return json_incref(v);
			return a1 ? json_incref(a1) : json_null();
		}
		if (!strcmp(name, "cycle") && json_object_get(obj, "index0") &&
		    json_object_get(obj, "revindex")) {
			long long i = int_of(json_object_get(obj, "index0"));
			if (a->n == 0) {
				fail(c, n, MLLM_EINVAL, "no items for cycling given");
				return NULL;
			}
			return json_incref(a->v[i % a->n]);
		}
	} else if (obj && json_is_array(obj)) {
		if (!strcmp(name, "append") || !strcmp(name, "pop") || !strcmp(name, "insert") ||
		    !strcmp(name, "extend") || !strcmp(name, "remove") || !strcmp(name, "sort")) {
			fail(c, n, MLLM_EINVAL, "access to '%s' of a list is unsafe (sandbox)",
			     name);
			return NULL;
		}
	}
	*handled = false;
	return NULL;
}

static json_t *eval_call(ctx *c, const jnode *n, const jnode *caller)
{
	args a;
	json_t *r = NULL;
	const jnode *f = n->a;
	if (eval_args(c, n, &a) != 0)
		return NULL;
	if (f->kind == JN_ATTR) {
		json_t *obj = ev(c, f->a);
		bool handled = false;
		if (!c->rc && !obj) {
			fail(c, f, MLLM_EINVAL, "'%s' is undefined", node_name(f->a));
		} else if (!c->rc) {
			json_t *member = get_attr(obj, f->str);
			callable *k = find_callable(c, member);
			if (k) {
				r = call_macro(c, n, k, &a, caller);
				handled = true;
			} else {
				r = call_method(c, n, obj, f->str, &a, &handled);
			}
			json_decref(member);
			if (!handled && !c->rc)
				fail(c, n, MLLM_EINVAL,
				     "'%s' object has no callable attribute '%s'", type_name(obj),
				     f->str);
		}
		json_decref(obj);
		args_free(&a);
		return r;
	}
	json_t *callee = ev(c, f);
	if (!c->rc) {
		callable *k = find_callable(c, callee);
		if (k)
			r = call_macro(c, n, k, &a, caller);
		else if (!callee && f->kind == JN_NAME && is_builtin(f->str))
			r = call_builtin(c, n, f->str, &a);
		else if (!callee)
			fail(c, n, MLLM_EINVAL, "'%s' is undefined", node_name(f));
		else
			fail(c, n, MLLM_EINVAL, "'%s' object is not callable", type_name(callee));
	}
	json_decref(callee);
	args_free(&a);
	return r;
}

static json_t *call_macro(ctx *c, const jnode *n, callable *k, const args *a, const jnode *caller)
{
	const jnode *def = k->def;
	mllm_buf b;
	mllm_buf *saved = c->out;
	int np = n_positional(a), pos = 0, base = c->n_frames;
	if (k->kind == CALLABLE_CALLER) {
		/* caller(): the call block's body, seeing the call site. */
		push_frame(c, k->parent);
	} else {
		push_frame(c, c->n_frames > 0 ? 0 : -1);
	}
	if (np > def->n_names) {
		fail(c, n, MLLM_EINVAL, "macro '%s' takes at most %d arguments",
		     def->str ? def->str : "caller", def->n_names);
		goto out;
	}
	for (int i = 0; i < a->n; i++) {
		if (a->kw[i]) {
			int hit = 0;
			for (int p = 0; p < def->n_names; p++)
				hit |= !strcmp(def->names[p], a->kw[i]);
			if (!hit) {
				fail(c, n, MLLM_EINVAL, "macro '%s' has no parameter '%s'",
				     def->str ? def->str : "caller", a->kw[i]);
				goto out;
			}
		}
	}
	for (int p = 0; p < def->n_names; p++) {
		bool found = false;
		json_t *v = NULL;
		for (int i = 0; i < a->n; i++) {
			if (a->kw[i] && !strcmp(a->kw[i], def->names[p])) {
				v = json_incref(a->v[i]);
				found = true;
			}
		}
		if (!found && pos < np) {
			v = json_incref(arg(a, pos, NULL, NULL));
			found = true;
			pos++;
		}
		if (!found && def->kids[p]) {
			v = ev(c, def->kids[p]);
			if (c->rc)
				goto out;
		}
		assign(c, def->names[p], v);
	}
	if (caller)
		assign(c, "caller", add_callable(c, CALLABLE_CALLER, caller, base - 1));
	mllm_buf_init(&b, c->max_output);
	c->out = &b;
	ex(c, def->b);
	c->out = saved;
	c->ctl = CTL_NONE;
	pop_frame(c);
	if (c->rc) {
		mllm_buf_free(&b);
		return NULL;
	}
	return buf_to_str(c, n, &b);
out:
	pop_frame(c);
	return NULL;
}

static json_t *ev_inner(ctx *c, const jnode *n)
{
	json_t *a, *b, *r = NULL;
	switch (n->kind) {
	case JN_STR:
		return mkstr(c, n, n->str, n->len);
	case JN_INT:
		return json_integer(n->ival);
	case JN_FLOAT:
		return mkreal(c, n, n->fval);
	case JN_BOOL:
		return mkbool(n->ival != 0);
	case JN_NONE:
		return json_null();
	case JN_NAME:
		return lookup(c, n->str);
	case JN_ATTR:
		a = ev(c, n->a);
		if (c->rc)
			return NULL;
		if (!a) {
			fail(c, n, MLLM_EINVAL, "'%s' is undefined", node_name(n->a));
			return NULL;
		}
		r = get_attr(a, n->str);
		json_decref(a);
		return r;
	case JN_INDEX:
		a = ev(c, n->a);
		if (c->rc)
			return NULL;
		if (!a) {
			fail(c, n, MLLM_EINVAL, "'%s' is undefined", node_name(n->a));
			return NULL;
		}
		b = ev(c, n->b);
		if (!c->rc)
			r = get_item(c, n, a, b);
		json_decref(a);
		json_decref(b);
		return r;
	case JN_SLICE: {
		json_t *s[3] = {NULL, NULL, NULL};
		const jnode *k[3] = {n->b, n->c, n->d};
		a = ev(c, n->a);
		if (c->rc)
			return NULL;
		if (!a) {
			fail(c, n, MLLM_EINVAL, "'%s' is undefined", node_name(n->a));
			return NULL;
		}
		for (int i = 0; i < 3 && !c->rc; i++)
			s[i] = k[i] ? ev(c, k[i]) : NULL;
		if (!c->rc)
			r = do_slice(c, n, a, s[0], s[1], s[2]);
		for (int i = 0; i < 3; i++)
			json_decref(s[i]);
		json_decref(a);
		return r;
	}
	case JN_CALL:
		return eval_call(c, n, NULL);
	case JN_FILTER: {
		args fa;
		a = ev(c, n->a);
		if (c->rc)
			return NULL;
		if (eval_args(c, n, &fa) != 0) {
			json_decref(a);
			return NULL;
		}
		r = apply_filter(c, n, n->str, a, &fa);
		args_free(&fa);
		json_decref(a);
		return r;
	}
	case JN_TEST: {
		args ta;
		bool res;
		a = ev(c, n->a);
		if (c->rc)
			return NULL;
		if (eval_args(c, n, &ta) != 0) {
			json_decref(a);
			return NULL;
		}
		res = run_test(c, n, n->str, a, &ta);
		args_free(&ta);
		json_decref(a);
		return c->rc ? NULL : mkbool(res != (n->op == 1));
	}
	case JN_LIST:
	case JN_TUPLE:
		r = json_array();
		MLLM_ASSERT(r);
		for (int i = 0; i < n->n_kids; i++) {
			a = ev(c, n->kids[i]);
			if (c->rc) {
				json_decref(r);
				return NULL;
			}
			/* An Undefined item has no JSON form; None stands in. */
			json_array_append_new(r, a ? a : json_null());
		}
		return r;
	case JN_DICT:
		r = json_object();
		MLLM_ASSERT(r);
		for (int i = 0; i + 1 < n->n_kids; i += 2) {
			a = ev(c, n->kids[i]);
			b = c->rc ? NULL : ev(c, n->kids[i + 1]);
			if (!c->rc && !is_str(a))
				fail(c, n, MLLM_EINVAL, "dict keys must be strings here");
			if (c->rc) {
				json_decref(a);
				json_decref(b);
				json_decref(r);
				return NULL;
			}
			json_object_setn_new_nocheck(r, json_string_value(a), json_string_length(a),
			                             b ? b : json_null());
			json_decref(a);
		}
		return r;
	case JN_UNARY:
		a = ev(c, n->a);
		if (c->rc)
			return NULL;
		if (n->op == '!') {
			r = mkbool(!api__py_truthy(a));
		} else if (!is_num(a)) {
			fail(c, n, MLLM_EINVAL, "bad operand type for unary %c: '%s'", n->op,
			     type_name(a));
		} else if (n->op == '+') {
			r = is_intlike(a) ? json_integer(int_of(a)) : json_incref(a);
		} else if (is_intlike(a)) {
			long long v = int_of(a);
			if (v == LLONG_MIN)
				fail(c, n, MLLM_EINVAL, "integer overflow");
			else
				r = json_integer(-v);
		} else {
			r = json_real(-json_real_value(a));
		}
		json_decref(a);
		return r;
	case JN_BINARY:
		return binop(c, n);
	case JN_AND:
	case JN_OR:
		a = ev(c, n->a);
		if (c->rc)
			return NULL;
		if (api__py_truthy(a) == (n->kind == JN_OR))
			return a;
		json_decref(a);
		return ev(c, n->b);
	case JN_COND: {
		const jnode *pick;
		a = ev(c, n->b);
		if (c->rc)
			return NULL;
		pick = api__py_truthy(a) ? n->a : n->c;
		json_decref(a);
		return pick ? ev(c, pick) : NULL;
	}
	default:
		fail(c, n, MLLM_EINTERNAL, "statement used as an expression");
		return NULL;
	}
}

static json_t *ev(ctx *c, const jnode *n)
{
	json_t *r;
	if (c->rc)
		return NULL;
	if (++c->depth > c->max_depth) {
		fail(c, n, MLLM_ERANGE, "template nests deeper than %d levels", c->max_depth);
		c->depth--;
		return NULL;
	}
	if (charge(c, n, 1) != 0) {
		c->depth--;
		return NULL;
	}
	r = ev_inner(c, n);
	c->depth--;
	if (c->rc) {
		json_decref(r);
		return NULL;
	}
	return r;
}

/* ---- tests -------------------------------------------------------------- */

static const char *const test_names[] = {
    "defined", "undefined", "none",        "string",  "number",   "integer",  "float",
    "boolean", "true",      "false",       "mapping", "iterable", "sequence", "callable",
    "sameas",  "eq",        "equalto",     "ne",      "lt",       "le",       "gt",
    "ge",      "lessthan",  "greaterthan", "in",      "odd",      "even",     "divisibleby",
    "lower",   "upper",     "filter",      "test",    NULL};

int api__jinja_test_known(const char *name)
{
	for (int i = 0; test_names[i]; i++) {
		if (!strcmp(test_names[i], name))
			return 1;
	}
	return 0;
}

static bool run_test(ctx *c, const jnode *n, const char *name, const json_t *v, const args *a)
{
	json_t *a0 = arg(a, 0, NULL, NULL);
	if (!strcmp(name, "defined"))
		return v != NULL;
	if (!strcmp(name, "undefined"))
		return v == NULL;
	if (!strcmp(name, "none"))
		return v && json_is_null(v);
	if (!strcmp(name, "string"))
		return is_str(v);
	if (!strcmp(name, "number"))
		return is_num(v);
	if (!strcmp(name, "integer"))
		return v && json_is_integer(v);
	if (!strcmp(name, "float"))
		return v && json_is_real(v);
	if (!strcmp(name, "boolean"))
		return v && json_is_boolean(v);
	if (!strcmp(name, "true"))
		return v && json_is_true(v);
	if (!strcmp(name, "false"))
		return v && json_is_false(v);
	if (!strcmp(name, "mapping"))
		return v && json_is_object(v);
	if (!strcmp(name, "iterable"))
		return !v || json_is_string(v) || json_is_array(v) || json_is_object(v);
	if (!strcmp(name, "sequence"))
		return v && (json_is_string(v) || json_is_array(v) || json_is_object(v));
	if (!strcmp(name, "callable"))
		return find_callable(c, v) != NULL;
	if (!strcmp(name, "sameas")) {
		if (v && a0 && (json_is_array(v) || json_is_object(v)))
			return v == a0;
		return v && a0 && json_typeof(v) == json_typeof(a0) && api__py_equal(v, a0);
	}
	if (!strcmp(name, "eq") || !strcmp(name, "equalto"))
		return api__py_equal(v, a0);
	if (!strcmp(name, "ne"))
		return !api__py_equal(v, a0);
	if (!strcmp(name, "lt") || !strcmp(name, "le") || !strcmp(name, "gt") ||
	    !strcmp(name, "ge") || !strcmp(name, "lessthan") || !strcmp(name, "greaterthan")) {
		int cmp;
		if (api__py_compare(v, a0, &cmp) != 0) {
			fail(c, n, MLLM_EINVAL, "'%s' not supported between '%s' and '%s'", name,
			     type_name(v), type_name(a0));
			return false;
		}
		if (name[0] == 'l')
			return name[1] == 'e' && name[2] == '\0' ? cmp <= 0 : cmp < 0;
		return name[1] == 'e' && name[2] == '\0' ? cmp >= 0 : cmp > 0;
	}
	if (!strcmp(name, "in")) {
		json_t *r = contains(c, n, (json_t *)v, a0);
		bool res = r && json_is_true(r);
		json_decref(r);
		return res;
	}
	if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby")) {
		long long x, d = name[0] == 'd' ? (a0 && is_intlike(a0) ? int_of(a0) : 0) : 2;
		if (!is_intlike(v) || d == 0) {
			fail(c, n, MLLM_EINVAL, "'%s' needs integers", name);
			return false;
		}
		x = int_of(v);
		if (name[0] == 'o')
			return x % 2 != 0;
		return x % d == 0;
	}
	if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
		if (!is_str(v))
			return false;
		const char *s = json_string_value(v);
		for (size_t i = 0; i < json_string_length(v); i++) {
			if (name[0] == 'l' && s[i] >= 'A' && s[i] <= 'Z')
				return false;
			if (name[0] == 'u' && s[i] >= 'a' && s[i] <= 'z')
				return false;
		}
		return true;
	}
	if (!strcmp(name, "filter") || !strcmp(name, "test")) {
		return is_str(v) && (name[0] == 'f' ? api__jinja_filter_known(json_string_value(v))
		                                    : api__jinja_test_known(json_string_value(v)));
	}
	fail(c, n, MLLM_EUNSUPPORTED, "unsupported test '%s'", name);
	return false;
}

/* ---- filters ------------------------------------------------------------ */

static const char *const filter_names[] = {
    "trim",       "tojson",     "length", "count",      "default", "d",        "first",     "last",
    "join",       "upper",      "lower",  "capitalize", "title",   "replace",  "items",     "list",
    "selectattr", "rejectattr", "select", "reject",     "map",     "string",   "int",       "float",
    "abs",        "round",      "unique", "sort",       "reverse", "dictsort", "min",       "max",
    "sum",        "indent",     "safe",   "e",          "escape",  "attr",     "wordcount", "batch",
    "center",     "striptags",  NULL};

int api__jinja_filter_known(const char *name)
{
	for (int i = 0; filter_names[i]; i++) {
		if (!strcmp(filter_names[i], name))
			return 1;
	}
	return 0;
}

/* Attribute lookup as filters do it: "a.b" walks, integers index lists. */
static json_t *attr_path(ctx *c, const jnode *n, json_t *item, const json_t *path)
{
	json_t *cur = json_incref(item);
	if (is_intlike(path)) {
		json_t *r = get_item(c, n, cur, path);
		json_decref(cur);
		return r;
	}
	if (!is_str(path)) {
		json_decref(cur);
		return NULL;
	}
	const char *p = json_string_value(path);
	while (cur) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		char key[256];
		json_t *nx;
		if (l >= sizeof key) {
			json_decref(cur);
			return NULL;
		}
		memcpy(key, p, l);
		key[l] = '\0';
		if (json_is_array(cur) && l > 0 && key[0] >= '0' && key[0] <= '9') {
			nx = json_incref(json_array_get(cur, (size_t)atol(key)));
		} else {
			nx = get_attr(cur, key);
		}
		json_decref(cur);
		cur = nx;
		if (!dot)
			break;
		p = dot + 1;
	}
	return cur;
}

/* selectattr/rejectattr/select/reject: items kept when the test (or
 * truthiness) says so. */
static json_t *filter_select(ctx *c, const jnode *n, const char *name, json_t *v, const args *a)
{
	bool by_attr = strstr(name, "attr") != NULL, keep = name[0] == 's';
	json_t *items = as_list(c, n, v), *out;
	int first_test_arg = by_attr ? 1 : 0;
	json_t *tname = arg(a, first_test_arg, NULL, NULL);
	args ta = {.n = 0};
	size_t i;
	json_t *x;
	if (!items)
		return NULL;
	if (tname && (!is_str(tname) || !api__jinja_test_known(json_string_value(tname)))) {
		json_decref(items);
		fail(c, n, MLLM_EUNSUPPORTED, "%s: unknown test", name);
		return NULL;
	}
	for (int k = 0, pos = 0; k < a->n; k++) {
		if (a->kw[k])
			continue;
		if (pos++ > first_test_arg && ta.n < MAX_ARGS) {
			ta.v[ta.n] = a->v[k];
			ta.kw[ta.n++] = NULL;
		}
	}
	out = json_array();
	MLLM_ASSERT(out);
	json_array_foreach(items, i, x)
	{
		json_t *subj = by_attr ? attr_path(c, n, x, arg(a, 0, NULL, NULL)) : json_incref(x);
		bool ok = tname ? run_test(c, n, json_string_value(tname), subj, &ta)
		                : api__py_truthy(subj);
		json_decref(subj);
		if (c->rc || charge(c, n, 1) != 0)
			break;
		if (ok == keep)
			json_array_append(out, x);
	}
	json_decref(items);
	if (c->rc) {
		json_decref(out);
		return NULL;
	}
	return out;
}

static int cmp_for_sort(ctx *c, const jnode *n, json_t *x, json_t *y, const json_t *attr)
{
	json_t *a = attr ? attr_path(c, n, x, attr) : json_incref(x);
	json_t *b = attr ? attr_path(c, n, y, attr) : json_incref(y);
	int cmp = 0;
	if (a && b && is_str(a) && is_str(b)) {
		/* jinja sorts case-insensitively by default */
		const char *s = json_string_value(a), *t = json_string_value(b);
		size_t la = json_string_length(a), lb = json_string_length(b), k;
		for (k = 0; k < la && k < lb; k++) {
			int p = s[k] >= 'A' && s[k] <= 'Z' ? s[k] + 32 : (unsigned char)s[k];
			int q = t[k] >= 'A' && t[k] <= 'Z' ? t[k] + 32 : (unsigned char)t[k];
			if (p != q) {
				cmp = p < q ? -1 : 1;
				break;
			}
		}
		if (cmp == 0)
			cmp = la < lb ? -1 : la > lb;
	} else if (api__py_compare(a, b, &cmp) != 0) {
		fail(c, n, MLLM_EINVAL, "cannot compare '%s' and '%s'", type_name(a), type_name(b));
	}
	json_decref(a);
	json_decref(b);
	return cmp;
}

/* Insertion sort: stable, no callback context needed, and the work is
 * charged per comparison so a long list cannot run unbounded. */
static json_t *sorted(ctx *c, const jnode *n, json_t *items, const json_t *attr, bool reverse)
{
	size_t len = json_array_size(items);
	json_t **v = xmallocarray(len ? len : 1, sizeof *v);
	json_t *out;
	for (size_t i = 0; i < len; i++)
		v[i] = json_array_get(items, i);
	for (size_t i = 1; i < len && !c->rc; i++) {
		json_t *x = v[i];
		size_t j = i;
		while (j > 0 && !c->rc) {
			int cmp = cmp_for_sort(c, n, v[j - 1], x, attr);
			if (charge(c, n, 1) != 0)
				break;
			if (reverse ? cmp >= 0 : cmp <= 0)
				break;
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
	out = json_array();
	MLLM_ASSERT(out);
	for (size_t i = 0; i < len; i++)
		json_array_append(out, v[i]);
	free(v);
	if (c->rc) {
		json_decref(out);
		return NULL;
	}
	return out;
}

static json_t *filter_tojson(ctx *c, const jnode *n, json_t *v, const args *a)
{
	/* transformers: tojson(x, ensure_ascii=False, indent=None,
	 * separators=None, sort_keys=False) */
	json_t *ea = arg(a, 0, "ensure_ascii", NULL), *ind = arg(a, 1, "indent", NULL);
	json_t *sep = arg(a, 2, "separators", NULL), *sk = arg(a, 3, "sort_keys", NULL);
	int indent = -1;
	const char *indent_str = NULL, *item_sep = NULL, *key_sep = NULL;
	mllm_buf b;
	if (!v) {
		fail(c, n, MLLM_EINVAL, "Object of type Undefined is not JSON serializable");
		return NULL;
	}
	if (ea && api__py_truthy(ea)) {
		fail(c, n, MLLM_EUNSUPPORTED, "tojson: ensure_ascii=True is not supported");
		return NULL;
	}
	if (ind && is_intlike(ind))
		indent = (int)(int_of(ind) < 0 ? 0 : int_of(ind) > 64 ? 64 : int_of(ind));
	else if (ind && is_str(ind))
		indent_str = json_string_value(ind);
	if (sep && json_is_array(sep) && json_array_size(sep) == 2 &&
	    is_str(json_array_get(sep, 0)) && is_str(json_array_get(sep, 1))) {
		item_sep = json_string_value(json_array_get(sep, 0));
		key_sep = json_string_value(json_array_get(sep, 1));
	}
	mllm_buf_init(&b, c->max_output);
	if (api__py_json(v, indent, indent_str, item_sep, key_sep, sk && api__py_truthy(sk), &b) !=
	    0) {
		mllm_buf_free(&b);
		fail(c, n, MLLM_ENOSPACE, "tojson: output exceeds the limit");
		return NULL;
	}
	return buf_to_str(c, n, &b);
}

static json_t *apply_filter(ctx *c, const jnode *n, const char *name, json_t *v, const args *a)
{
	json_t *a0 = arg(a, 0, NULL, NULL);
	if (!strcmp(name, "trim")) {
		json_t *s = to_str(c, n, v), *r;
		json_t *chars = arg(a, 0, "chars", NULL);
		if (!s)
			return NULL;
		r = str_strip(c, n, s, chars, 1, 1);
		json_decref(s);
		return r;
	}
	if (!strcmp(name, "tojson"))
		return filter_tojson(c, n, v, a);
	if (!strcmp(name, "length") || !strcmp(name, "count")) {
		long long l = py_len(v);
		if (l < 0) {
			fail(c, n, MLLM_EINVAL, "object of type '%s' has no len()", type_name(v));
			return NULL;
		}
		return json_integer(l);
	}
	if (!strcmp(name, "default") || !strcmp(name, "d")) {
		json_t *dv = arg(a, 0, "default_value", NULL), *bo = arg(a, 1, "boolean", NULL);
		if (!v || (bo && api__py_truthy(bo) && !api__py_truthy(v)))
			return dv ? json_incref(dv) : mkstr(c, n, "", 0);
		return json_incref(v);
	}
	if (!strcmp(name, "first") || !strcmp(name, "last")) {
		json_t *items = as_list(c, n, v), *r = NULL;
		if (!items)
			return NULL;
		if (json_array_size(items) > 0)
			r = json_incref(
			    json_array_get(items, name[0] == 'f' ? 0 : json_array_size(items) - 1));
		json_decref(items);
		return r;
	}
	if (!strcmp(name, "join")) {
		json_t *items = as_list(c, n, v), *sep = arg(a, 0, "d", NULL);
		json_t *attr = arg(a, 1, "attribute", NULL);
		mllm_buf b;
		size_t i;
		json_t *x;
		if (!items)
			return NULL;
		mllm_buf_init(&b, c->max_output);
		json_array_foreach(items, i, x)
		{
			json_t *y = attr ? attr_path(c, n, x, attr) : json_incref(x);
			int rc = i > 0 && sep ? api__py_str(sep, &b) : 0;
			if (rc == 0)
				rc = api__py_str(y, &b);
			json_decref(y);
			if (rc != 0) {
				json_decref(items);
				mllm_buf_free(&b);
				fail(c, n, MLLM_ENOSPACE, "join: output exceeds the limit");
				return NULL;
			}
		}
		json_decref(items);
		return buf_to_str(c, n, &b);
	}
	if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "capitalize") ||
	    !strcmp(name, "title")) {
		json_t *s = to_str(c, n, v), *r;
		if (!s)
			return NULL;
		r = str_case(c, n, s, name[0] == 'u' ? 'u' : name[0] == 'l' ? 'l' : name[0]);
		json_decref(s);
		return r;
	}
	if (!strcmp(name, "replace")) {
		json_t *s = to_str(c, n, v), *r = NULL;
		json_t *f = arg(a, 0, "old", NULL), *t = arg(a, 1, "new", NULL);
		json_t *cnt = arg(a, 2, "count", NULL);
		if (!s)
			return NULL;
		if (!is_str(f) || !is_str(t))
			fail(c, n, MLLM_EINVAL, "replace() arguments must be str");
		else
			r = str_replace(c, n, s, f, t, cnt && is_intlike(cnt) ? int_of(cnt) : -1);
		json_decref(s);
		return r;
	}
	if (!strcmp(name, "items")) {
		json_t *r;
		bool handled;
		if (!v)
			return json_array();
		if (!json_is_object(v)) {
			fail(c, n, MLLM_EINVAL, "items: '%s' is not a mapping", type_name(v));
			return NULL;
		}
		r = call_method(c, n, v, "items", a, &handled);
		return r;
	}
	if (!strcmp(name, "list"))
		return as_list(c, n, v);
	if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr") || !strcmp(name, "select") ||
	    !strcmp(name, "reject"))
		return filter_select(c, n, name, v, a);
	if (!strcmp(name, "map")) {
		json_t *items = as_list(c, n, v), *out, *x;
		json_t *attr = arg(a, -1, "attribute", NULL), *dflt = arg(a, -1, "default", NULL);
		size_t i;
		if (!items)
			return NULL;
		if (!attr && (!is_str(a0) || !api__jinja_filter_known(json_string_value(a0)))) {
			json_decref(items);
			fail(c, n, MLLM_EUNSUPPORTED, "map: needs attribute= or a filter name");
			return NULL;
		}
		out = json_array();
		MLLM_ASSERT(out);
		json_array_foreach(items, i, x)
		{
			json_t *y;
			if (attr) {
				y = attr_path(c, n, x, attr);
				if (!y && dflt)
					y = json_incref(dflt);
			} else {
				args rest = {.n = 0};
				for (int k = 1; k < a->n; k++) {
					rest.v[rest.n] = a->v[k];
					rest.kw[rest.n++] = a->kw[k];
				}
				y = apply_filter(c, n, json_string_value(a0), x, &rest);
			}
			if (c->rc || charge(c, n, 1) != 0) {
				json_decref(y);
				break;
			}
			json_array_append_new(out, y ? y : json_null());
		}
		json_decref(items);
		if (c->rc) {
			json_decref(out);
			return NULL;
		}
		return out;
	}
	if (!strcmp(name, "string") || !strcmp(name, "safe"))
		return is_str(v) ? json_incref(v) : to_str(c, n, v);
	if (!strcmp(name, "e") || !strcmp(name, "escape") || !strcmp(name, "striptags")) {
		json_t *s = to_str(c, n, v), *r;
		const char *p;
		mllm_buf b;
		if (!s)
			return NULL;
		p = json_string_value(s);
		mllm_buf_init(&b, c->max_output);
		for (size_t i = 0; i < json_string_length(s); i++) {
			const char *e = NULL;
			int rc;
			if (name[0] == 's') {
				if (p[i] == '<') {
					const char *gt = strchr(p + i, '>');
					if (gt) {
						i = (size_t)(gt - p);
						continue;
					}
				}
			} else if (p[i] == '&') {
				e = "&amp;";
			} else if (p[i] == '<') {
				e = "&lt;";
			} else if (p[i] == '>') {
				e = "&gt;";
			} else if (p[i] == '"') {
				e = "&#34;";
			} else if (p[i] == '\'') {
				e = "&#39;";
			}
			rc = e ? mllm_buf_append(&b, e, strlen(e)) : mllm_buf_append(&b, p + i, 1);
			if (rc != 0) {
				json_decref(s);
				mllm_buf_free(&b);
				fail(c, n, MLLM_ENOSPACE, "output exceeds the limit");
				return NULL;
			}
		}
		json_decref(s);
		r = buf_to_str(c, n, &b);
		return r;
	}
	if (!strcmp(name, "int") || !strcmp(name, "float")) {
		json_t *dflt = arg(a, 0, "default", NULL);
		bool want_int = name[0] == 'i';
		if (is_num(v))
			return want_int ? json_integer(int_of(v)) : mkreal(c, n, dbl_of(v));
		if (is_str(v)) {
			char *end;
			const char *s = json_string_value(v);
			double d = strtod(s, &end);
			if (end != s && *end == '\0')
				return want_int ? json_integer(
				                      d > -9.2e18 && d < 9.2e18 ? (long long)d : 0)
				                : mkreal(c, n, d);
		}
		if (dflt)
			return json_incref(dflt);
		return want_int ? json_integer(0) : json_real(0.0);
	}
	if (!strcmp(name, "abs")) {
		if (!is_num(v)) {
			fail(c, n, MLLM_EINVAL, "bad operand type for abs(): '%s'", type_name(v));
			return NULL;
		}
		if (is_intlike(v))
			return json_integer(llabs(int_of(v)));
		return json_real(fabs(json_real_value(v)));
	}
	if (!strcmp(name, "round")) {
		json_t *pr = arg(a, 0, "precision", NULL);
		double p = pr && is_intlike(pr) ? pow(10, (double)int_of(pr)) : 1;
		if (!is_num(v)) {
			fail(c, n, MLLM_EINVAL, "round: '%s' is not a number", type_name(v));
			return NULL;
		}
		return mkreal(c, n, round(dbl_of(v) * p) / p);
	}
	if (!strcmp(name, "unique") || !strcmp(name, "reverse")) {
		json_t *items = as_list(c, n, v), *out, *x;
		size_t i;
		if (!items)
			return NULL;
		if (is_str(v) && name[0] == 'r') {
			mllm_buf b;
			mllm_buf_init(&b, c->max_output);
			for (i = json_array_size(items); i > 0; i--) {
				json_t *ch = json_array_get(items, i - 1);
				if (mllm_buf_append(&b, json_string_value(ch),
				                    json_string_length(ch)))
					break;
			}
			json_decref(items);
			return buf_to_str(c, n, &b);
		}
		out = json_array();
		MLLM_ASSERT(out);
		json_array_foreach(items, i, x)
		{
			if (name[0] == 'r') {
				json_array_insert(out, 0, x);
				continue;
			}
			json_t *has = contains(c, n, x, out);
			if (has && !json_is_true(has))
				json_array_append(out, x);
			json_decref(has);
			if (charge(c, n, (long long)json_array_size(out) / 8 + 1) != 0)
				break;
		}
		json_decref(items);
		if (c->rc) {
			json_decref(out);
			return NULL;
		}
		return out;
	}
	if (!strcmp(name, "sort") || !strcmp(name, "dictsort") || !strcmp(name, "min") ||
	    !strcmp(name, "max")) {
		json_t *items, *r, *attr = arg(a, -1, "attribute", NULL);
		bool rev = false;
		if (!strcmp(name, "dictsort")) {
			bool handled;
			if (!v || !json_is_object(v)) {
				fail(c, n, MLLM_EINVAL, "dictsort: '%s' is not a mapping",
				     type_name(v));
				return NULL;
			}
			args none = {.n = 0};
			items = call_method(c, n, v, "items", &none, &handled);
			json_t *zero = json_integer(0);
			json_t *by = arg(a, 1, "by", NULL);
			if (by && is_str(by) && !strcmp(json_string_value(by), "value")) {
				json_decref(zero);
				zero = json_integer(1);
			}
			rev = api__py_truthy(arg(a, 2, "reverse", NULL));
			r = items ? sorted(c, n, items, zero, rev) : NULL;
			json_decref(zero);
			json_decref(items);
			return r;
		}
		items = as_list(c, n, v);
		if (!items)
			return NULL;
		if (name[0] == 's')
			rev = api__py_truthy(arg(a, 0, "reverse", NULL));
		r = sorted(c, n, items, attr, rev);
		json_decref(items);
		if (r && name[0] == 'm') {
			json_t *pick = json_array_size(r) == 0
			                   ? NULL
			                   : json_incref(json_array_get(
			                         r, name[1] == 'i' ? 0 : json_array_size(r) - 1));
			json_decref(r);
			return pick;
		}
		return r;
	}
	if (!strcmp(name, "sum")) {
		json_t *items = as_list(c, n, v), *attr = arg(a, -1, "attribute", NULL);
		json_t *acc = arg(a, 1, "start", NULL), *x;
		size_t i;
		if (!items)
			return NULL;
		acc = acc ? json_incref(acc) : json_integer(0);
		json_array_foreach(items, i, x)
		{
			json_t *y = attr ? attr_path(c, n, x, attr) : json_incref(x);
			json_t *s = arith(c, n, JOP_ADD, acc, y);
			json_decref(y);
			json_decref(acc);
			acc = s;
			if (c->rc)
				break;
		}
		json_decref(items);
		return acc;
	}
	if (!strcmp(name, "indent")) {
		json_t *s = to_str(c, n, v), *w = arg(a, 0, "width", NULL);
		bool first = api__py_truthy(arg(a, 1, "first", NULL));
		bool blank = api__py_truthy(arg(a, 2, "blank", NULL));
		mllm_buf pad, b;
		const char *p;
		size_t len, at = 0;
		int line = 0;
		if (!s)
			return NULL;
		mllm_buf_init(&pad, 4096);
		if (w && is_str(w)) {
			if (mllm_buf_append(&pad, json_string_value(w), json_string_length(w)))
				pad.len = 0;
		} else {
			long long k = w && is_intlike(w) ? int_of(w) : 4;
			for (long long i = 0; i < k && i < 1024; i++)
				if (mllm_buf_append(&pad, " ", 1))
					break;
		}
		p = json_string_value(s);
		len = json_string_length(s);
		mllm_buf_init(&b, c->max_output);
		while (at <= len) {
			const char *nl = memchr(p + at, '\n', len - at);
			size_t end = nl ? (size_t)(nl - p) : len;
			bool empty = end == at;
			int rc = 0;
			if ((line > 0 || first) && (!empty || blank) && pad.len)
				rc = mllm_buf_append(&b, pad.data, pad.len);
			if (rc == 0)
				rc = mllm_buf_append(&b, p + at, end - at);
			if (rc == 0 && nl)
				rc = mllm_buf_append(&b, "\n", 1);
			if (rc != 0) {
				mllm_buf_free(&b);
				mllm_buf_free(&pad);
				json_decref(s);
				fail(c, n, MLLM_ENOSPACE, "indent: output exceeds the limit");
				return NULL;
			}
			line++;
			if (!nl)
				break;
			at = end + 1;
		}
		mllm_buf_free(&pad);
		json_decref(s);
		return buf_to_str(c, n, &b);
	}
	if (!strcmp(name, "attr")) {
		if (!is_str(a0))
			return NULL;
		return get_attr(v, json_string_value(a0));
	}
	if (!strcmp(name, "wordcount")) {
		json_t *s = to_str(c, n, v), *parts;
		long long k;
		if (!s)
			return NULL;
		parts = str_split(c, n, s, NULL, -1);
		json_decref(s);
		if (!parts)
			return NULL;
		k = (long long)json_array_size(parts);
		json_decref(parts);
		return json_integer(k);
	}
	if (!strcmp(name, "center")) {
		json_t *s = to_str(c, n, v), *w = arg(a, 0, "width", NULL), *r;
		long long width = w && is_intlike(w) ? int_of(w) : 80, len, left, right;
		mllm_buf b;
		if (!s)
			return NULL;
		len = py_len(s);
		if (width > (long long)c->max_output)
			width = (long long)c->max_output;
		left = width > len ? (width - len) / 2 : 0;
		right = width > len ? width - len - left : 0;
		/* Python's center puts the odd space on the left when the
		 * padding is odd and the width is odd. */
		if (((width - len) & 1) && (width & 1)) {
			left++;
			right--;
		}
		mllm_buf_init(&b, c->max_output);
		for (long long i = 0; i < left; i++)
			if (mllm_buf_append(&b, " ", 1))
				break;
		if (mllm_buf_append(&b, json_string_value(s), json_string_length(s)) == 0)
			for (long long i = 0; i < right; i++)
				if (mllm_buf_append(&b, " ", 1))
					break;
		json_decref(s);
		r = buf_to_str(c, n, &b);
		return r;
	}
	if (!strcmp(name, "batch")) {
		json_t *items = as_list(c, n, v), *out, *row = NULL, *x;
		long long k = a0 && is_intlike(a0) ? int_of(a0) : 0;
		size_t i;
		if (!items)
			return NULL;
		if (k <= 0) {
			json_decref(items);
			fail(c, n, MLLM_EINVAL, "batch: size must be positive");
			return NULL;
		}
		out = json_array();
		MLLM_ASSERT(out);
		json_array_foreach(items, i, x)
		{
			if (!row)
				row = json_array();
			json_array_append(row, x);
			if ((long long)json_array_size(row) == k) {
				json_array_append_new(out, row);
				row = NULL;
			}
		}
		if (row)
			json_array_append_new(out, row);
		json_decref(items);
		return out;
	}
	fail(c, n, MLLM_EUNSUPPORTED, "unsupported filter '%s'", name);
	return NULL;
}

/* ---- statements --------------------------------------------------------- */

static void emit(ctx *c, const jnode *n, const char *s, size_t len)
{
	if (c->out->len + len > c->max_output || mllm_buf_append(c->out, s, len) != 0)
		fail(c, n, MLLM_ENOSPACE, "rendered text exceeds %zu bytes", c->max_output);
	else
		charge(c, n, (long long)(len / 64));
}

static void emit_value(ctx *c, const jnode *n, const json_t *v)
{
	if (!v)
		return;
	if (json_is_string(v)) {
		emit(c, n, json_string_value(v), json_string_length(v));
		return;
	}
	mllm_buf b;
	mllm_buf_init(&b, c->max_output);
	if (api__py_str(v, &b) != 0)
		fail(c, n, MLLM_ENOSPACE, "a value exceeds the output limit");
	else
		emit(c, n, b.data ? b.data : "", b.len);
	mllm_buf_free(&b);
}

/* Binds loop or set targets: one name takes the value, several unpack
 * a sequence of exactly that many items. */
static void bind(ctx *c, const jnode *n, json_t *v)
{
	if (n->n_names == 1) {
		assign(c, n->names[0], json_incref(v));
		return;
	}
	json_t *items = as_list(c, n, v);
	if (!items)
		return;
	if ((int)json_array_size(items) != n->n_names) {
		fail(c, n, MLLM_EINVAL, "cannot unpack %zu values into %d names",
		     json_array_size(items), n->n_names);
	} else {
		for (int i = 0; i < n->n_names; i++)
			assign(c, n->names[i], json_incref(json_array_get(items, (size_t)i)));
	}
	json_decref(items);
}

static void ex_for(ctx *c, const jnode *n)
{
	json_t *seq = ev(c, n->a), *items, *loop;
	size_t len;
	if (c->rc)
		return;
	items = as_list(c, n->a, seq);
	json_decref(seq);
	if (!items)
		return;
	if (n->d) {
		/* "for x in xs if cond": filter first; loop.* counts what is kept. */
		json_t *kept = json_array();
		size_t i;
		json_t *x;
		MLLM_ASSERT(kept);
		json_array_foreach(items, i, x)
		{
			json_t *ok;
			push_frame(c, c->n_frames - 1);
			bind(c, n, x);
			ok = c->rc ? NULL : ev(c, n->d);
			pop_frame(c);
			if (c->rc) {
				json_decref(kept);
				json_decref(items);
				return;
			}
			if (api__py_truthy(ok))
				json_array_append(kept, x);
			json_decref(ok);
		}
		json_decref(items);
		items = kept;
	}
	len = json_array_size(items);
	if (len == 0) {
		if (n->c)
			ex(c, n->c);
		json_decref(items);
		return;
	}
	for (size_t i = 0; i < len && !c->rc; i++) {
		json_t *x = json_array_get(items, i);
		if (charge(c, n, 1) != 0)
			break;
		push_frame(c, c->n_frames - 1);
		loop = json_pack("{sIsIsIsIsbsbsIsIsI}", "index0", (json_int_t)i, "index",
		                 (json_int_t)i + 1, "revindex", (json_int_t)(len - i), "revindex0",
		                 (json_int_t)(len - i - 1), "first", i == 0, "last", i + 1 == len,
		                 "length", (json_int_t)len, "depth", (json_int_t)1, "depth0",
		                 (json_int_t)0);
		MLLM_ASSERT(loop);
		if (i > 0)
			json_object_set(loop, "previtem", json_array_get(items, i - 1));
		if (i + 1 < len)
			json_object_set(loop, "nextitem", json_array_get(items, i + 1));
		assign(c, "loop", loop);
		bind(c, n, x);
		if (!c->rc)
			ex(c, n->b);
		pop_frame(c);
		if (c->ctl == CTL_BREAK) {
			c->ctl = CTL_NONE;
			break;
		}
		c->ctl = CTL_NONE;
	}
	json_decref(items);
}

static void ex(ctx *c, const jnode *n)
{
	json_t *v;
	if (c->rc || c->ctl)
		return;
	if (++c->depth > c->max_depth) {
		fail(c, n, MLLM_ERANGE, "template nests deeper than %d levels", c->max_depth);
		c->depth--;
		return;
	}
	if (charge(c, n, 1) != 0) {
		c->depth--;
		return;
	}
	switch (n->kind) {
	case JN_BODY:
		for (int i = 0; i < n->n_kids && !c->rc && !c->ctl; i++)
			ex(c, n->kids[i]);
		break;
	case JN_TEXT:
		emit(c, n, n->str, n->len);
		break;
	case JN_OUTPUT:
		v = ev(c, n->a);
		if (!c->rc)
			emit_value(c, n, v);
		json_decref(v);
		break;
	case JN_IF:
		v = ev(c, n->a);
		if (!c->rc) {
			if (api__py_truthy(v))
				ex(c, n->b);
			else if (n->c)
				ex(c, n->c);
		}
		json_decref(v);
		break;
	case JN_FOR:
		ex_for(c, n);
		break;
	case JN_SET:
		v = ev(c, n->a);
		if (!c->rc)
			bind(c, n, v);
		json_decref(v);
		break;
	case JN_SET_ATTR: {
		json_t *ns = lookup(c, n->str);
		if (!ns || !is_namespace(c, ns)) {
			fail(c, n, MLLM_EINVAL, "cannot assign attribute on non-namespace object");
			json_decref(ns);
			break;
		}
		v = ev(c, n->a);
		if (!c->rc)
			json_object_set_new(ns, n->names[0], v ? v : json_null());
		json_decref(ns);
		break;
	}
	case JN_SET_BLOCK: {
		mllm_buf b, *saved = c->out;
		mllm_buf_init(&b, c->max_output);
		c->out = &b;
		ex(c, n->b);
		c->out = saved;
		v = c->rc ? NULL : buf_to_str(c, n, &b);
		if (c->rc) {
			mllm_buf_free(&b);
			break;
		}
		assign(c, n->str, v);
		break;
	}
	case JN_MACRO:
		assign(c, n->str, add_callable(c, CALLABLE_MACRO, n, 0));
		break;
	case JN_CALLBLOCK:
		v = eval_call(c, n->a, n);
		if (!c->rc)
			emit_value(c, n, v);
		json_decref(v);
		break;
	case JN_FILTERBLOCK: {
		mllm_buf b, *saved = c->out;
		const jnode *chain[64];
		int depth = 0;
		mllm_buf_init(&b, c->max_output);
		c->out = &b;
		ex(c, n->b);
		c->out = saved;
		v = c->rc ? NULL : buf_to_str(c, n, &b);
		if (c->rc) {
			mllm_buf_free(&b);
			break;
		}
		for (const jnode *f = n->a; f && depth < 64; f = f->a)
			chain[depth++] = f;
		while (depth > 0 && !c->rc) {
			const jnode *f = chain[--depth];
			args fa;
			json_t *r = NULL;
			if (eval_args(c, f, &fa) == 0) {
				r = apply_filter(c, f, f->str, v, &fa);
				args_free(&fa);
			}
			json_decref(v);
			v = r;
		}
		if (!c->rc)
			emit_value(c, n, v);
		json_decref(v);
		break;
	}
	case JN_BREAK:
		c->ctl = CTL_BREAK;
		break;
	case JN_CONTINUE:
		c->ctl = CTL_CONTINUE;
		break;
	default:
		fail(c, n, MLLM_EINTERNAL, "expression used as a statement");
		break;
	}
	c->depth--;
}

int api_jinja_render(const api_jinja *t, json_t *vars, const api_jinja_limits *lim, mllm_buf *out,
                     char *err, size_t errlen)
{
	ctx c = {.t = t, .globals = vars, .out = out, .err = err, .errlen = errlen};
	c.max_output = lim && lim->max_output ? lim->max_output : DEF_MAX_OUTPUT;
	c.max_work = lim && lim->max_work ? lim->max_work : DEF_MAX_WORK;
	c.max_depth = lim && lim->max_depth ? lim->max_depth : DEF_MAX_DEPTH;
	if (!vars || !json_is_object(vars))
		return mllm__seterr(err, errlen, MLLM_EINVAL,
		                    "template variables must be an object");
	/* The limit counts this render's text, not what out already held. */
	c.max_output += out->len;
	push_frame(&c, -1);
	ex(&c, t->root);
	while (c.n_frames > 0)
		pop_frame(&c);
	free(c.frames);
	for (int i = 0; i < c.n_calls; i++)
		json_decref(c.calls[i].marker);
	free(c.calls);
	/* Namespaces are the only mutable values, so every reference cycle
	 * (ns.a = [ns]) runs through one: emptying them frees it all. */
	for (int i = 0; i < c.n_ns; i++) {
		json_object_clear(c.namespaces[i]);
		json_decref(c.namespaces[i]);
	}
	free(c.namespaces);
	return c.rc;
}
