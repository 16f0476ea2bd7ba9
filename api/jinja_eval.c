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

int api__j_fail(jctx *c, const jnode *n, int code, const char *fmt, ...)
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

int api__j_charge(jctx *c, const jnode *n, long long units)
{
	c->work += units;
	if (c->work > c->max_work)
		return api__j_fail(c, n, MLLM_ERANGE,
		                   "template exceeds its work limit (%lld units)", c->max_work);
	return 0;
}

const char *api__j_type_name(const json_t *v)
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

json_t *api__j_str(jctx *c, const jnode *n, const char *s, size_t len)
{
	json_t *v;
	if (len > c->max_output) {
		api__j_fail(c, n, MLLM_ENOSPACE, "a string exceeds the %zu-byte output limit",
		            c->max_output);
		return NULL;
	}
	if (api__j_charge(c, n, 1 + (long long)(len / 32)) != 0)
		return NULL;
	v = json_stringn_nocheck(s, len);
	if (!v)
		api__j_fail(c, n, MLLM_ENOMEM, "out of memory");
	return v;
}

json_t *api__j_buf_str(jctx *c, const jnode *n, mllm_buf *b)
{
	json_t *v = api__j_str(c, n, b->data ? b->data : "", b->len);
	mllm_buf_free(b);
	return v;
}

/* jansson holds finite reals only; Python's inf and nan have no JSON
 * value, so an overflowing float is refused instead of printed. */
json_t *api__j_real(jctx *c, const jnode *n, double d)
{
	if (!isfinite(d)) {
		api__j_fail(c, n, MLLM_EINVAL, "float result out of range");
		return NULL;
	}
	return json_real(d);
}

static void args_free(jargs *a)
{
	for (int i = 0; i < a->n; i++)
		json_decref(a->v[i]);
	a->n = 0;
}

/* Argument by position or keyword; *found says whether it was given. */
json_t *api__j_arg(const jargs *a, int pos, const char *name, bool *found)
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

int api__j_n_positional(const jargs *a)
{
	int n = 0;
	for (int i = 0; i < a->n; i++)
		n += a->kw[i] == NULL;
	return n;
}

/* ---- scopes ------------------------------------------------------------- */

static void push_frame(jctx *c, int parent)
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

static void pop_frame(jctx *c)
{
	json_decref(c->frames[--c->n_frames].vars);
}

static json_t *lookup(jctx *c, const char *name)
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

static void assign(jctx *c, const char *name, json_t *v)
{
	/* set_new steals v; a NULL (Undefined) value removes the name. */
	if (v)
		json_object_set_new_nocheck(c->frames[c->n_frames - 1].vars, name, v);
	else
		json_object_del(c->frames[c->n_frames - 1].vars, name);
}

callable *api__j_find_callable(jctx *c, const json_t *v)
{
	if (!v || !json_is_object(v))
		return NULL;
	for (int i = 0; i < c->n_calls; i++) {
		if (c->calls[i].marker == v)
			return &c->calls[i];
	}
	return NULL;
}

static json_t *add_callable(jctx *c, int kind, const jnode *def, int parent)
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

bool api__j_is_namespace(jctx *c, const json_t *v)
{
	for (int i = 0; i < c->n_ns; i++) {
		if (c->namespaces[i] == v)
			return true;
	}
	return false;
}
/* ---- item access -------------------------------------------------------- */

json_t *api__j_get_attr(const json_t *obj, const char *name)
{
	if (obj && json_is_object(obj))
		return json_incref(json_object_get(obj, name));
	return NULL;
}

json_t *api__j_get_item(jctx *c, const jnode *n, const json_t *obj, const json_t *key)
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
		long long len = (long long)api__j_char_offsets(s, json_string_length(obj), &offs);
		json_t *r = NULL;
		if (i < 0)
			i += len;
		if (i >= 0 && i < len)
			r = api__j_str(c, n, s + offs[i], offs[i + 1] - offs[i]);
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

static json_t *do_slice(jctx *c, const jnode *n, const json_t *obj, const json_t *start,
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
		api__j_fail(c, n, MLLM_EINVAL, "slice indices must be integers or None");
		return NULL;
	}
	if (stepv)
		step = int_of(stepv);
	if (step == 0) {
		api__j_fail(c, n, MLLM_EINVAL, "slice step cannot be zero");
		return NULL;
	}
	if (json_is_array(obj))
		len = (long long)json_array_size(obj);
	else if (json_is_string(obj))
		len = (long long)api__j_char_offsets(json_string_value(obj),
		                                     json_string_length(obj), &offs);
	else
		return NULL;
	slice_bounds(len, start, stop, step, &a, &b);
	if (json_is_array(obj)) {
		json_t *out = json_array();
		MLLM_ASSERT(out);
		for (long long i = a; step > 0 ? i < b : i > b; i += step)
			json_array_append(out, json_array_get(obj, (size_t)i));
		if (api__j_charge(c, n, 1 + (long long)json_array_size(out) / 32) != 0) {
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
	return api__j_buf_str(c, n, &sb);
}

/* ---- evaluation ------------------------------------------------------- */

static json_t *ev(jctx *c, const jnode *n);
static void ex(jctx *c, const jnode *n);

static int eval_args(jctx *c, const jnode *n, jargs *a)
{
	a->n = 0;
	if (n->n_kids > MAX_ARGS)
		return api__j_fail(c, n, MLLM_EINVAL, "more than %d arguments", MAX_ARGS);
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

json_t *api__j_arith(jctx *c, const jnode *n, int op, json_t *a, json_t *b)
{
	if (op == JOP_CONCAT) {
		mllm_buf s;
		mllm_buf_init(&s, c->max_output);
		if (api__py_str(a, &s) != 0 || api__py_str(b, &s) != 0) {
			mllm_buf_free(&s);
			api__j_fail(c, n, MLLM_ENOSPACE, "a string exceeds the output limit");
			return NULL;
		}
		return api__j_buf_str(c, n, &s);
	}
	if (!a || !b) {
		api__j_fail(c, n, MLLM_EINVAL, "'%s' is undefined", node_name(!a ? n->a : n->b));
		return NULL;
	}
	if (op == JOP_ADD && is_str(a) && is_str(b)) {
		mllm_buf s;
		mllm_buf_init(&s, c->max_output);
		if (mllm_buf_append(&s, json_string_value(a), json_string_length(a)) != 0 ||
		    mllm_buf_append(&s, json_string_value(b), json_string_length(b)) != 0) {
			mllm_buf_free(&s);
			api__j_fail(c, n, MLLM_ENOSPACE, "a string exceeds the output limit");
			return NULL;
		}
		return api__j_buf_str(c, n, &s);
	}
	if (op == JOP_ADD && json_is_array(a) && json_is_array(b)) {
		json_t *r = json_array();
		MLLM_ASSERT(r);
		json_array_extend(r, a);
		json_array_extend(r, b);
		if (api__j_charge(c, n, 1 + (long long)json_array_size(r) / 32) != 0) {
			json_decref(r);
			return NULL;
		}
		return r;
	}
	if (op == JOP_MUL && ((is_str(a) && is_intlike(b)) || (is_intlike(a) && is_str(b)))) {
		const json_t *s = is_str(a) ? a : b;
		long long k = int_of(is_str(a) ? b : a);
		size_t len = json_string_length(s);
		mllm_buf r;
		mllm_buf_init(&r, c->max_output);
		/* The output limit bounds the loop only for a non-empty string:
		 * '' * 10**10 is '' at once. */
		for (long long i = 0; i < k && len > 0; i++) {
			if (mllm_buf_append(&r, json_string_value(s), len) != 0) {
				mllm_buf_free(&r);
				api__j_fail(c, n, MLLM_ENOSPACE,
				            "a string exceeds the output limit");
				return NULL;
			}
		}
		return api__j_buf_str(c, n, &r);
	}
	if (op == JOP_MUL &&
	    ((json_is_array(a) && is_intlike(b)) || (is_intlike(a) && json_is_array(b)))) {
		const json_t *l = json_is_array(a) ? a : b;
		long long k = int_of(json_is_array(a) ? b : a);
		json_t *r = json_array();
		MLLM_ASSERT(r);
		for (long long i = 0; i < k && !c->rc && json_array_size(l) > 0; i++) {
			if (api__j_charge(c, n, 1 + (long long)json_array_size(l) / 32) == 0)
				json_array_extend(r, (json_t *)l);
		}
		if (c->rc) {
			json_decref(r);
			return NULL;
		}
		return r;
	}
	if (op == JOP_MOD && is_str(a))
		return api__j_percent(c, n, a, b);
	if (!is_num(a) || !is_num(b)) {
		static const char *const sym[] = {"", "+", "-", "*", "/", "//", "%", "**"};
		api__j_fail(c, n, MLLM_EINVAL, "unsupported operand type(s) for %s: '%s' and '%s'",
		            op <= JOP_POW ? sym[op] : "?", api__j_type_name(a),
		            api__j_type_name(b));
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
				api__j_fail(c, n, MLLM_EINVAL,
				            "integer division or modulo by zero");
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
				return api__j_real(c, n, pow((double)x, (double)y));
			/* By squaring: a loop of y steps would let a template
			 * spin for 0 ** 70000000001. Past |x| >= 2 a square
			 * that overflows means the result does too. */
			if (x == 0 || x == 1)
				r = y == 0 ? 1 : x;
			else if (x == -1)
				r = y % 2 == 0 ? 1 : -1;
			else {
				long long base = x;
				r = 1;
				for (long long e = y; e > 0 && !ovf; e >>= 1) {
					if (e & 1)
						ovf = __builtin_mul_overflow(r, base, &r);
					if (e > 1 && !ovf)
						ovf = __builtin_mul_overflow(base, base, &base);
				}
			}
			break;
		}
		if (ovf) {
			api__j_fail(c, n, MLLM_EINVAL, "integer overflow");
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
			api__j_fail(c, n, MLLM_EINVAL, "division by zero");
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
	return api__j_real(c, n, r);
}

json_t *api__j_contains(jctx *c, const jnode *n, json_t *item, json_t *seq)
{
	if (!seq)
		return mkbool(false);
	if (json_is_string(seq)) {
		if (!is_str(item)) {
			api__j_fail(c, n, MLLM_EINVAL,
			            "'in <string>' requires string as left operand, not %s",
			            api__j_type_name(item));
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
	api__j_fail(c, n, MLLM_EINVAL, "argument of type '%s' is not iterable",
	            api__j_type_name(seq));
	return NULL;
}

static json_t *binop(jctx *c, const jnode *n)
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
			api__j_fail(c, n, MLLM_EINVAL, "'%s' is undefined",
			            node_name(!a ? n->a : n->b));
			break;
		}
		if (api__py_compare(a, b, &cmp) != 0) {
			api__j_fail(c, n, MLLM_EINVAL, "'<' not supported between '%s' and '%s'",
			            api__j_type_name(a), api__j_type_name(b));
			break;
		}
		r = mkbool(n->op == JOP_LT   ? cmp < 0
		           : n->op == JOP_LE ? cmp <= 0
		           : n->op == JOP_GT ? cmp > 0
		                             : cmp >= 0);
		break;
	case JOP_IN:
	case JOP_NOTIN:
		r = api__j_contains(c, n, a, b);
		if (r && n->op == JOP_NOTIN) {
			json_t *x = mkbool(!json_is_true(r));
			json_decref(r);
			r = x;
		}
		break;
	default:
		r = api__j_arith(c, n, n->op, a, b);
		break;
	}
out:
	json_decref(a);
	json_decref(b);
	return r;
}

static json_t *call_macro(jctx *c, const jnode *n, callable *k, const jargs *a,
                          const jnode *caller);

static json_t *call_builtin(jctx *c, const jnode *n, const char *name, const jargs *a)
{
	if (!strcmp(name, "raise_exception")) {
		json_t *m = api__j_arg(a, 0, "message", NULL);
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
		json_t *f = api__j_arg(a, 0, "format", NULL);
		char out[512];
		struct tm tm;
		time_t now = time(NULL);
		size_t len;
		if (!is_str(f)) {
			api__j_fail(c, n, MLLM_EINVAL, "strftime_now() needs a format string");
			return NULL;
		}
		localtime_r(&now, &tm);
		len = strftime(out, sizeof out, json_string_value(f), &tm);
		return api__j_str(c, n, out, len);
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
				api__j_fail(c, n, MLLM_EINVAL,
				            "%s() takes keyword arguments or a mapping", name);
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
		int np = api__j_n_positional(a);
		json_t *r;
		for (int i = 0; i < a->n; i++) {
			if (!is_intlike(a->v[i]) || a->kw[i]) {
				api__j_fail(c, n, MLLM_EINVAL, "range() takes integers");
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
			api__j_fail(c, n, MLLM_EINVAL, "range() takes 1 to 3 arguments");
			return NULL;
		}
		if (step == 0) {
			api__j_fail(c, n, MLLM_EINVAL, "range() arg 3 must not be zero");
			return NULL;
		}
		r = json_array();
		MLLM_ASSERT(r);
		for (long long i = start; step > 0 ? i < stop : i > stop; i += step) {
			if (api__j_charge(c, n, 1) != 0) {
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

static json_t *eval_call(jctx *c, const jnode *n, const jnode *caller)
{
	jargs a;
	json_t *r = NULL;
	const jnode *f = n->a;
	if (eval_args(c, n, &a) != 0)
		return NULL;
	if (f->kind == JN_ATTR) {
		json_t *obj = ev(c, f->a);
		bool handled = false;
		if (!c->rc && !obj) {
			api__j_fail(c, f, MLLM_EINVAL, "'%s' is undefined", node_name(f->a));
		} else if (!c->rc) {
			json_t *member = api__j_get_attr(obj, f->str);
			callable *k = api__j_find_callable(c, member);
			if (k) {
				r = call_macro(c, n, k, &a, caller);
				handled = true;
			} else {
				r = api__j_call_method(c, n, obj, f->str, &a, &handled);
			}
			json_decref(member);
			if (!handled && !c->rc)
				api__j_fail(c, n, MLLM_EINVAL,
				            "'%s' object has no callable attribute '%s'",
				            api__j_type_name(obj), f->str);
		}
		json_decref(obj);
		args_free(&a);
		return r;
	}
	json_t *callee = ev(c, f);
	if (!c->rc) {
		callable *k = api__j_find_callable(c, callee);
		if (k)
			r = call_macro(c, n, k, &a, caller);
		else if (!callee && f->kind == JN_NAME && is_builtin(f->str))
			r = call_builtin(c, n, f->str, &a);
		else if (!callee)
			api__j_fail(c, n, MLLM_EINVAL, "'%s' is undefined", node_name(f));
		else
			api__j_fail(c, n, MLLM_EINVAL, "'%s' object is not callable",
			            api__j_type_name(callee));
	}
	json_decref(callee);
	args_free(&a);
	return r;
}

static json_t *call_macro(jctx *c, const jnode *n, callable *k, const jargs *a, const jnode *caller)
{
	const jnode *def = k->def;
	mllm_buf b;
	mllm_buf *saved = c->out;
	int np = api__j_n_positional(a), pos = 0, base = c->n_frames;
	if (k->kind == CALLABLE_CALLER) {
		/* caller(): the call block's body, seeing the call site. */
		push_frame(c, k->parent);
	} else {
		push_frame(c, c->n_frames > 0 ? 0 : -1);
	}
	if (np > def->n_names) {
		api__j_fail(c, n, MLLM_EINVAL, "macro '%s' takes at most %d arguments",
		            def->str ? def->str : "caller", def->n_names);
		goto out;
	}
	for (int i = 0; i < a->n; i++) {
		if (a->kw[i]) {
			int hit = 0;
			for (int p = 0; p < def->n_names; p++)
				hit |= !strcmp(def->names[p], a->kw[i]);
			if (!hit) {
				api__j_fail(c, n, MLLM_EINVAL, "macro '%s' has no parameter '%s'",
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
			v = json_incref(api__j_arg(a, pos, NULL, NULL));
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
	return api__j_buf_str(c, n, &b);
out:
	pop_frame(c);
	return NULL;
}

static json_t *ev_inner(jctx *c, const jnode *n)
{
	json_t *a, *b, *r = NULL;
	switch (n->kind) {
	case JN_STR:
		return api__j_str(c, n, n->str, n->len);
	case JN_INT:
		return json_integer(n->ival);
	case JN_FLOAT:
		return api__j_real(c, n, n->fval);
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
			api__j_fail(c, n, MLLM_EINVAL, "'%s' is undefined", node_name(n->a));
			return NULL;
		}
		r = api__j_get_attr(a, n->str);
		json_decref(a);
		return r;
	case JN_INDEX:
		a = ev(c, n->a);
		if (c->rc)
			return NULL;
		if (!a) {
			api__j_fail(c, n, MLLM_EINVAL, "'%s' is undefined", node_name(n->a));
			return NULL;
		}
		b = ev(c, n->b);
		if (!c->rc)
			r = api__j_get_item(c, n, a, b);
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
			api__j_fail(c, n, MLLM_EINVAL, "'%s' is undefined", node_name(n->a));
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
		jargs fa;
		a = ev(c, n->a);
		if (c->rc)
			return NULL;
		if (eval_args(c, n, &fa) != 0) {
			json_decref(a);
			return NULL;
		}
		r = api__j_apply_filter(c, n, n->str, a, &fa);
		args_free(&fa);
		json_decref(a);
		return r;
	}
	case JN_TEST: {
		jargs ta;
		bool res;
		a = ev(c, n->a);
		if (c->rc)
			return NULL;
		if (eval_args(c, n, &ta) != 0) {
			json_decref(a);
			return NULL;
		}
		res = api__j_run_test(c, n, n->str, a, &ta);
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
				api__j_fail(c, n, MLLM_EINVAL, "dict keys must be strings here");
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
			api__j_fail(c, n, MLLM_EINVAL, "bad operand type for unary %c: '%s'", n->op,
			            api__j_type_name(a));
		} else if (n->op == '+') {
			r = is_intlike(a) ? json_integer(int_of(a)) : json_incref(a);
		} else if (is_intlike(a)) {
			long long v = int_of(a);
			if (v == LLONG_MIN)
				api__j_fail(c, n, MLLM_EINVAL, "integer overflow");
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
		api__j_fail(c, n, MLLM_EINTERNAL, "statement used as an expression");
		return NULL;
	}
}

static json_t *ev(jctx *c, const jnode *n)
{
	json_t *r;
	if (c->rc)
		return NULL;
	if (++c->depth > c->max_depth) {
		api__j_fail(c, n, MLLM_ERANGE, "template nests deeper than %d levels",
		            c->max_depth);
		c->depth--;
		return NULL;
	}
	if (api__j_charge(c, n, 1) != 0) {
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

/* ---- statements --------------------------------------------------------- */

static void emit(jctx *c, const jnode *n, const char *s, size_t len)
{
	if (c->out->len + len > c->max_output || mllm_buf_append(c->out, s, len) != 0)
		api__j_fail(c, n, MLLM_ENOSPACE, "rendered text exceeds %zu bytes", c->max_output);
	else
		api__j_charge(c, n, (long long)(len / 64));
}

static void emit_value(jctx *c, const jnode *n, const json_t *v)
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
		api__j_fail(c, n, MLLM_ENOSPACE, "a value exceeds the output limit");
	else
		emit(c, n, b.data ? b.data : "", b.len);
	mllm_buf_free(&b);
}

/* Binds loop or set targets: one name takes the value, several unpack
 * a sequence of exactly that many items. */
static void bind(jctx *c, const jnode *n, json_t *v)
{
	if (n->n_names == 1) {
		assign(c, n->names[0], json_incref(v));
		return;
	}
	json_t *items = api__j_as_list(c, n, v);
	if (!items)
		return;
	if ((int)json_array_size(items) != n->n_names) {
		api__j_fail(c, n, MLLM_EINVAL, "cannot unpack %zu values into %d names",
		            json_array_size(items), n->n_names);
	} else {
		for (int i = 0; i < n->n_names; i++)
			assign(c, n->names[i], json_incref(json_array_get(items, (size_t)i)));
	}
	json_decref(items);
}

static void ex_for(jctx *c, const jnode *n)
{
	json_t *seq = ev(c, n->a), *items, *loop;
	size_t len;
	if (c->rc)
		return;
	items = api__j_as_list(c, n->a, seq);
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
		if (api__j_charge(c, n, 1) != 0)
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

static void ex(jctx *c, const jnode *n)
{
	json_t *v;
	if (c->rc || c->ctl)
		return;
	if (++c->depth > c->max_depth) {
		api__j_fail(c, n, MLLM_ERANGE, "template nests deeper than %d levels",
		            c->max_depth);
		c->depth--;
		return;
	}
	if (api__j_charge(c, n, 1) != 0) {
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
		if (!ns || !api__j_is_namespace(c, ns)) {
			api__j_fail(c, n, MLLM_EINVAL,
			            "cannot assign attribute on non-namespace object");
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
		v = c->rc ? NULL : api__j_buf_str(c, n, &b);
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
		v = c->rc ? NULL : api__j_buf_str(c, n, &b);
		if (c->rc) {
			mllm_buf_free(&b);
			break;
		}
		for (const jnode *f = n->a; f && depth < 64; f = f->a)
			chain[depth++] = f;
		while (depth > 0 && !c->rc) {
			const jnode *f = chain[--depth];
			jargs fa;
			json_t *r = NULL;
			if (eval_args(c, f, &fa) == 0) {
				r = api__j_apply_filter(c, f, f->str, v, &fa);
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
		api__j_fail(c, n, MLLM_EINTERNAL, "expression used as a statement");
		break;
	}
	c->depth--;
}

int api_jinja_render(const api_jinja *t, json_t *vars, const api_jinja_limits *lim, mllm_buf *out,
                     char *err, size_t errlen)
{
	jctx c = {.t = t, .globals = vars, .out = out, .err = err, .errlen = errlen};
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
