/*
 * jinja_filter.c — the library a template calls into: jinja2's filters
 * and tests, and the Python methods of str and dict that chat templates
 * use (startswith, split, strip, items, get, ...), with Python's
 * semantics (code points, Unicode whitespace, negative indices). Split
 * from jinja_eval.c, which owns the render context and evaluation; every
 * string or list built here is charged to the render's work and size
 * bounds like any other.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "jinja_internal.h"

static json_t *str_format(jctx *c, const jnode *n, const json_t *fmt, const jargs *a);

/* ---- strings ------------------------------------------------------------ */

/* Byte offsets of each code point of s[0..n), plus n at the end:
 * returns the count of code points; *offs is owned by the caller. */
size_t api__j_char_offsets(const char *s, size_t n, size_t **offs)
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

static json_t *str_strip(jctx *c, const jnode *n, const json_t *v, const json_t *chars, int left,
                         int right)
{
	size_t a, b;
	const char *s = json_string_value(v);
	if (chars && !json_is_null(chars) && !is_str(chars)) {
		api__j_fail(c, n, MLLM_EINVAL, "strip arg must be None or str");
		return NULL;
	}
	if (chars && json_is_null(chars))
		chars = NULL;
	py_strip(s, json_string_length(v), chars ? json_string_value(chars) : NULL,
	         chars ? json_string_length(chars) : 0, left, right, &a, &b);
	return api__j_str(c, n, s + a, b - a);
}

static json_t *str_split(jctx *c, const jnode *n, const json_t *v, const json_t *sep,
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
			api__j_fail(c, n, MLLM_EINVAL, "empty separator");
			return NULL;
		}
		for (;;) {
			const char *hit = maxsplit == 0 ? NULL : memmem(s + at, len - at, p, pl);
			size_t end = hit ? (size_t)(hit - s) : len;
			json_t *part = api__j_str(c, n, s + at, end - at);
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
		json_t *part = api__j_str(c, n, s + start, i - start);
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
				part = api__j_str(c, n, s + i, b);
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

static json_t *str_replace(jctx *c, const jnode *n, const json_t *v, const json_t *from,
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
		size_t nc = api__j_char_offsets(s, len, &offs);
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
		return api__j_buf_str(c, n, &b);
	toobig:
		free(offs);
		mllm_buf_free(&b);
		api__j_fail(c, n, MLLM_ENOSPACE, "a string exceeds the output limit");
		return NULL;
	}
	for (;;) {
		const char *hit = count == 0 ? NULL : memmem(s + at, len - at, f, fl);
		size_t end = hit ? (size_t)(hit - s) : len;
		if (mllm_buf_append(&b, s + at, end - at) != 0 ||
		    (hit &&
		     mllm_buf_append(&b, json_string_value(to), json_string_length(to)) != 0)) {
			mllm_buf_free(&b);
			api__j_fail(c, n, MLLM_ENOSPACE, "a string exceeds the output limit");
			return NULL;
		}
		if (!hit)
			break;
		at = end + fl;
		if (count > 0)
			count--;
	}
	return api__j_buf_str(c, n, &b);
}

/* ASCII case mapping: templates change the case of role names and
 * keywords; the rest of Unicode passes unchanged. */
static json_t *str_case(jctx *c, const jnode *n, const json_t *v, int mode)
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
	r = api__j_str(c, n, s, len);
	free(s);
	return r;
}

json_t *api__j_to_str(jctx *c, const jnode *n, const json_t *v)
{
	mllm_buf b;
	mllm_buf_init(&b, c->max_output);
	if (api__py_str(v, &b) != 0) {
		mllm_buf_free(&b);
		api__j_fail(c, n, MLLM_ENOSPACE, "a string exceeds the output limit");
		return NULL;
	}
	return api__j_buf_str(c, n, &b);
}

/* A sequence as a list: lists as they are, dict keys, string characters,
 * Undefined as empty. NULL (with an error) for what does not iterate. */
json_t *api__j_as_list(jctx *c, const jnode *n, json_t *v)
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
		if (api__j_charge(c, n, 1 + (long long)json_object_size(v) / 32) != 0) {
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
		if (api__j_charge(c, n, 1 + (long long)len / 8) != 0) {
			json_decref(out);
			return NULL;
		}
		return out;
	}
	json_decref(out);
	api__j_fail(c, n, MLLM_EINVAL, "'%s' object is not iterable", api__j_type_name(v));
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

/* obj.name(args) for str, dict and loop methods. *handled = false when
 * the object has no such method (the call then fails as a call of
 * Undefined). */
json_t *api__j_call_method(jctx *c, const jnode *n, json_t *obj, const char *name, const jargs *a,
                           bool *handled)
{
	json_t *a0 = api__j_arg(a, 0, NULL, NULL), *a1 = api__j_arg(a, 1, NULL, NULL);
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
					api__j_fail(c, n, MLLM_EINVAL, "%s arg must be str", name);
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
			json_t *sep = api__j_arg(a, 0, "sep", NULL),
			       *mx = api__j_arg(a, 1, "maxsplit", NULL);
			if (sep && !json_is_null(sep) && !is_str(sep)) {
				api__j_fail(c, n, MLLM_EINVAL, "must be str or None");
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
			json_t *cnt = api__j_arg(a, 2, "count", NULL);
			if (!is_str(a0) || !is_str(a1)) {
				api__j_fail(c, n, MLLM_EINVAL, "replace() arguments must be str");
				return NULL;
			}
			return str_replace(c, n, obj, a0, a1,
			                   cnt && is_intlike(cnt) ? int_of(cnt) : -1);
		}
		if (!strcmp(name, "find") || !strcmp(name, "count") || !strcmp(name, "rfind")) {
			const char *hit;
			long long k = 0;
			if (!is_str(a0)) {
				api__j_fail(c, n, MLLM_EINVAL, "%s() argument must be str", name);
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
				api__j_fail(c, n, MLLM_EINVAL, "%s() argument must be str", name);
				return NULL;
			}
			pl = json_string_length(a0);
			if (pl <= len && name[6] == 'p' &&
			    memcmp(s, json_string_value(a0), pl) == 0)
				return api__j_str(c, n, s + pl, len - pl);
			if (pl <= len && name[6] == 's' &&
			    memcmp(s + len - pl, json_string_value(a0), pl) == 0)
				return api__j_str(c, n, s, len - pl);
			return json_incref(obj);
		}
		if (!strcmp(name, "join")) {
			json_t *items = api__j_as_list(c, n, a0);
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
					api__j_fail(c, n, MLLM_ENOSPACE,
					            "a string exceeds the output limit");
					return NULL;
				}
			}
			json_decref(items);
			return api__j_buf_str(c, n, &b);
		}
		if (!strcmp(name, "format"))
			return str_format(c, n, obj, a);
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
	} else if (obj && json_is_object(obj) && !api__j_is_namespace(c, obj)) {
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
			if (api__j_charge(c, n, 1 + (long long)json_object_size(obj) / 8) != 0) {
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
				api__j_fail(c, n, MLLM_EINVAL, "no items for cycling given");
				return NULL;
			}
			return json_incref(a->v[i % a->n]);
		}
	} else if (obj && json_is_array(obj)) {
		if (!strcmp(name, "append") || !strcmp(name, "pop") || !strcmp(name, "insert") ||
		    !strcmp(name, "extend") || !strcmp(name, "remove") || !strcmp(name, "sort")) {
			api__j_fail(c, n, MLLM_EINVAL,
			            "access to '%s' of a list is unsafe (sandbox)", name);
			return NULL;
		}
	}
	*handled = false;
	return NULL;
}

/* ---- formatting -------------------------------------------------------- */

json_t *api__j_percent(jctx *c, const jnode *n, const json_t *fmt, const json_t *args)
{
	const char *f = json_string_value(fmt);
	size_t len = json_string_length(fmt), next = 0;
	size_t n_args = json_is_array(args) ? json_array_size(args) : 1;
	mllm_buf b;
	mllm_buf_init(&b, c->max_output);
	for (size_t i = 0; i < len && !c->rc; i++) {
		char spec[32], conv, tmp[512];
		size_t k = 0;
		const json_t *v;
		int w;
		if (f[i] != '%') {
			if (mllm_buf_append(&b, f + i, 1) != 0)
				api__j_fail(c, n, MLLM_ENOSPACE,
				            "a string exceeds the output limit");
			continue;
		}
		spec[k++] = '%';
		i++;
		while (i < len && strchr("-+ 0#", f[i]) && k < 8) {
			/* Text takes only '-' (C leaves the others undefined for
			 * %s; Python ignores them there). */
			bool text = false;
			for (size_t q = i; q < len && !strchr("srdifeEgGxXo%", f[q]); q++)
				text = q + 1 < len && (f[q + 1] == 's' || f[q + 1] == 'r');
			if (!text || f[i] == '-')
				spec[k++] = f[i];
			i++;
		}
		/* Width and precision of at most 3 digits: C's snprintf
		 * would write (and take the time for) any padding asked. */
		for (int d = 0; i < len && f[i] >= '0' && f[i] <= '9'; d++, i++) {
			if (d == 3) {
				api__j_fail(c, n, MLLM_EUNSUPPORTED, "format width over 999");
				break;
			}
			spec[k++] = f[i];
		}
		if (!c->rc && i < len && f[i] == '.') {
			spec[k++] = f[i++];
			for (int d = 0; i < len && f[i] >= '0' && f[i] <= '9'; d++, i++) {
				if (d == 3) {
					api__j_fail(c, n, MLLM_EUNSUPPORTED,
					            "format precision over 999");
					break;
				}
				spec[k++] = f[i];
			}
		}
		if (c->rc)
			break;
		conv = i < len ? f[i] : '\0';
		if (conv == '%' && k == 1) {
			if (mllm_buf_append(&b, "%", 1) != 0)
				api__j_fail(c, n, MLLM_ENOSPACE,
				            "a string exceeds the output limit");
			continue;
		}
		if (!conv || !strchr("srdifeEgGxXo", conv)) {
			api__j_fail(c, n, MLLM_EINVAL, "unsupported format character '%c'",
			            conv ? conv : '?');
			break;
		}
		if (next >= n_args) {
			api__j_fail(c, n, MLLM_EINVAL, "not enough arguments for format string");
			break;
		}
		v = json_is_array(args) ? json_array_get(args, next) : args;
		next++;
		if (conv == 's' || conv == 'r') {
			/* Width and precision on the text, in bytes (ASCII in
			 * practice). */
			mllm_buf t;
			int rc;
			mllm_buf_init(&t, c->max_output);
			rc = conv == 's' ? api__py_str(v, &t) : api__py_repr(v, &t);
			spec[k++] = 's';
			spec[k] = '\0';
			w = rc == 0 ? snprintf(tmp, sizeof tmp, spec, t.data ? t.data : "") : -1;
			if (w >= 0 && (size_t)w < sizeof tmp)
				rc = mllm_buf_append(&b, tmp, (size_t)w);
			else if (rc == 0)
				rc = mllm_buf_append(&b, t.data ? t.data : "", t.len);
			mllm_buf_free(&t);
			if (rc != 0)
				api__j_fail(c, n, MLLM_ENOSPACE,
				            "a string exceeds the output limit");
			continue;
		}
		if (!is_num(v)) {
			api__j_fail(c, n, MLLM_EINVAL, "%%%c format: a number is required, not %s",
			            conv, api__j_type_name(v));
			break;
		}
		if (strchr("dixXo", conv)) {
			spec[k++] = 'l';
			spec[k++] = 'l';
			spec[k++] = conv == 'i' ? 'd' : conv;
			spec[k] = '\0';
			w = snprintf(tmp, sizeof tmp, spec, int_of(v));
		} else {
			spec[k++] = conv;
			spec[k] = '\0';
			w = snprintf(tmp, sizeof tmp, spec, dbl_of(v));
		}
		if (w < 0 || (size_t)w >= sizeof tmp || mllm_buf_append(&b, tmp, (size_t)w) != 0)
			api__j_fail(c, n, MLLM_ENOSPACE, "a formatted value is too long");
	}
	if (!c->rc && next < n_args && json_is_array(args))
		api__j_fail(c, n, MLLM_EINVAL,
		            "not all arguments converted during string formatting");
	if (c->rc) {
		mllm_buf_free(&b);
		return NULL;
	}
	return api__j_buf_str(c, n, &b);
}

/* str.format: "{}", "{0}", "{name}", "{{" and "}}"; no format specs. */
static json_t *str_format(jctx *c, const jnode *n, const json_t *fmt, const jargs *a)
{
	const char *f = json_string_value(fmt);
	size_t len = json_string_length(fmt);
	int auto_i = 0;
	mllm_buf b;
	mllm_buf_init(&b, c->max_output);
	for (size_t i = 0; i < len && !c->rc; i++) {
		int rc;
		if ((f[i] == '{' || f[i] == '}') && i + 1 < len && f[i + 1] == f[i]) {
			rc = mllm_buf_append(&b, f + i, 1);
			i++;
		} else if (f[i] == '{') {
			const char *close = memchr(f + i, '}', len - i);
			char key[64];
			size_t kl;
			const json_t *v;
			bool found = false;
			if (!close || (size_t)(close - f - i - 1) >= sizeof key) {
				api__j_fail(c, n, MLLM_EINVAL,
				            "bad replacement field in format string");
				break;
			}
			kl = (size_t)(close - f) - i - 1;
			memcpy(key, f + i + 1, kl);
			key[kl] = '\0';
			if (strchr(key, ':') || strchr(key, '!') || strchr(key, '.') ||
			    strchr(key, '[')) {
				api__j_fail(c, n, MLLM_EUNSUPPORTED,
				            "format spec '{%s}' is not supported", key);
				break;
			}
			if (kl == 0)
				v = api__j_arg(a, auto_i++, NULL, &found);
			else if (key[0] >= '0' && key[0] <= '9')
				v = api__j_arg(a, atoi(key), NULL, &found);
			else
				v = api__j_arg(a, -1, key, &found);
			if (!found) {
				api__j_fail(c, n, MLLM_EINVAL, "format: no argument for '{%s}'",
				            key);
				break;
			}
			rc = api__py_str(v, &b);
			i = (size_t)(close - f);
		} else {
			rc = mllm_buf_append(&b, f + i, 1);
		}
		if (rc != 0)
			api__j_fail(c, n, MLLM_ENOSPACE, "a string exceeds the output limit");
	}
	if (c->rc) {
		mllm_buf_free(&b);
		return NULL;
	}
	return api__j_buf_str(c, n, &b);
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

bool api__j_run_test(jctx *c, const jnode *n, const char *name, const json_t *v, const jargs *a)
{
	json_t *a0 = api__j_arg(a, 0, NULL, NULL);
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
		return api__j_find_callable(c, v) != NULL;
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
			api__j_fail(c, n, MLLM_EINVAL, "'%s' not supported between '%s' and '%s'",
			            name, api__j_type_name(v), api__j_type_name(a0));
			return false;
		}
		if (name[0] == 'l')
			return name[1] == 'e' && name[2] == '\0' ? cmp <= 0 : cmp < 0;
		return name[1] == 'e' && name[2] == '\0' ? cmp >= 0 : cmp > 0;
	}
	if (!strcmp(name, "in")) {
		json_t *r = api__j_contains(c, n, (json_t *)v, a0);
		bool res = r && json_is_true(r);
		json_decref(r);
		return res;
	}
	if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby")) {
		long long x, d = name[0] == 'd' ? (a0 && is_intlike(a0) ? int_of(a0) : 0) : 2;
		if (!is_intlike(v) || d == 0) {
			api__j_fail(c, n, MLLM_EINVAL, "'%s' needs integers", name);
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
	api__j_fail(c, n, MLLM_EUNSUPPORTED, "unsupported test '%s'", name);
	return false;
}

/* ---- filters ------------------------------------------------------------ */

static const char *const filter_names[] = {
    "trim",       "tojson",     "length", "count",      "default", "d",        "first",     "last",
    "join",       "upper",      "lower",  "capitalize", "title",   "replace",  "items",     "list",
    "selectattr", "rejectattr", "select", "reject",     "map",     "string",   "int",       "float",
    "abs",        "round",      "unique", "sort",       "reverse", "dictsort", "min",       "max",
    "sum",        "indent",     "safe",   "e",          "escape",  "attr",     "wordcount", "batch",
    "center",     "striptags",  "format", NULL};

int api__jinja_filter_known(const char *name)
{
	for (int i = 0; filter_names[i]; i++) {
		if (!strcmp(filter_names[i], name))
			return 1;
	}
	return 0;
}

/* Attribute lookup as filters do it: "a.b" walks, integers index lists. */
static json_t *attr_path(jctx *c, const jnode *n, json_t *item, const json_t *path)
{
	json_t *cur = json_incref(item);
	if (is_intlike(path)) {
		json_t *r = api__j_get_item(c, n, cur, path);
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
			nx = api__j_get_attr(cur, key);
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
static json_t *filter_select(jctx *c, const jnode *n, const char *name, json_t *v, const jargs *a)
{
	bool by_attr = strstr(name, "attr") != NULL, keep = name[0] == 's';
	json_t *items = api__j_as_list(c, n, v), *out;
	int first_test_arg = by_attr ? 1 : 0;
	json_t *tname = api__j_arg(a, first_test_arg, NULL, NULL);
	jargs ta = {.n = 0};
	size_t i;
	json_t *x;
	if (!items)
		return NULL;
	if (tname && (!is_str(tname) || !api__jinja_test_known(json_string_value(tname)))) {
		json_decref(items);
		api__j_fail(c, n, MLLM_EUNSUPPORTED, "%s: unknown test", name);
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
		json_t *subj =
		    by_attr ? attr_path(c, n, x, api__j_arg(a, 0, NULL, NULL)) : json_incref(x);
		bool ok = tname ? api__j_run_test(c, n, json_string_value(tname), subj, &ta)
		                : api__py_truthy(subj);
		json_decref(subj);
		if (c->rc || api__j_charge(c, n, 1) != 0)
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

static int cmp_for_sort(jctx *c, const jnode *n, json_t *x, json_t *y, const json_t *attr)
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
		api__j_fail(c, n, MLLM_EINVAL, "cannot compare '%s' and '%s'", api__j_type_name(a),
		            api__j_type_name(b));
	}
	json_decref(a);
	json_decref(b);
	return cmp;
}

/* Insertion sort: stable, no callback context needed, and the work is
 * charged per comparison so a long list cannot run unbounded. */
static json_t *sorted(jctx *c, const jnode *n, json_t *items, const json_t *attr, bool reverse)
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
			if (api__j_charge(c, n, 1) != 0)
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

static json_t *filter_tojson(jctx *c, const jnode *n, json_t *v, const jargs *a)
{
	/* transformers: tojson(x, ensure_ascii=False, indent=None,
	 * separators=None, sort_keys=False) */
	json_t *ea = api__j_arg(a, 0, "ensure_ascii", NULL),
	       *ind = api__j_arg(a, 1, "indent", NULL);
	json_t *sep = api__j_arg(a, 2, "separators", NULL),
	       *sk = api__j_arg(a, 3, "sort_keys", NULL);
	int indent = -1;
	const char *indent_str = NULL, *item_sep = NULL, *key_sep = NULL;
	mllm_buf b;
	if (!v) {
		api__j_fail(c, n, MLLM_EINVAL, "Object of type Undefined is not JSON serializable");
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
	if (api__py_json(v, indent, indent_str, item_sep, key_sep, sk && api__py_truthy(sk),
	                 ea && api__py_truthy(ea), &b) != 0) {
		mllm_buf_free(&b);
		api__j_fail(c, n, MLLM_ENOSPACE, "tojson: output exceeds the limit");
		return NULL;
	}
	return api__j_buf_str(c, n, &b);
}

json_t *api__j_apply_filter(jctx *c, const jnode *n, const char *name, json_t *v, const jargs *a)
{
	json_t *a0 = api__j_arg(a, 0, NULL, NULL);
	if (!strcmp(name, "trim")) {
		json_t *s = api__j_to_str(c, n, v), *r;
		json_t *chars = api__j_arg(a, 0, "chars", NULL);
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
			api__j_fail(c, n, MLLM_EINVAL, "object of type '%s' has no len()",
			            api__j_type_name(v));
			return NULL;
		}
		return json_integer(l);
	}
	if (!strcmp(name, "default") || !strcmp(name, "d")) {
		json_t *dv = api__j_arg(a, 0, "default_value", NULL),
		       *bo = api__j_arg(a, 1, "boolean", NULL);
		if (!v || (bo && api__py_truthy(bo) && !api__py_truthy(v)))
			return dv ? json_incref(dv) : api__j_str(c, n, "", 0);
		return json_incref(v);
	}
	if (!strcmp(name, "first") || !strcmp(name, "last")) {
		json_t *items = api__j_as_list(c, n, v), *r = NULL;
		if (!items)
			return NULL;
		if (json_array_size(items) > 0)
			r = json_incref(
			    json_array_get(items, name[0] == 'f' ? 0 : json_array_size(items) - 1));
		json_decref(items);
		return r;
	}
	if (!strcmp(name, "join")) {
		json_t *items = api__j_as_list(c, n, v), *sep = api__j_arg(a, 0, "d", NULL);
		json_t *attr = api__j_arg(a, 1, "attribute", NULL);
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
				api__j_fail(c, n, MLLM_ENOSPACE, "join: output exceeds the limit");
				return NULL;
			}
		}
		json_decref(items);
		return api__j_buf_str(c, n, &b);
	}
	if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "capitalize") ||
	    !strcmp(name, "title")) {
		json_t *s = api__j_to_str(c, n, v), *r;
		if (!s)
			return NULL;
		r = str_case(c, n, s, name[0] == 'u' ? 'u' : name[0] == 'l' ? 'l' : name[0]);
		json_decref(s);
		return r;
	}
	if (!strcmp(name, "replace")) {
		json_t *s = api__j_to_str(c, n, v), *r = NULL;
		json_t *f = api__j_arg(a, 0, "old", NULL), *t = api__j_arg(a, 1, "new", NULL);
		json_t *cnt = api__j_arg(a, 2, "count", NULL);
		if (!s)
			return NULL;
		if (!is_str(f) || !is_str(t))
			api__j_fail(c, n, MLLM_EINVAL, "replace() arguments must be str");
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
			api__j_fail(c, n, MLLM_EINVAL, "items: '%s' is not a mapping",
			            api__j_type_name(v));
			return NULL;
		}
		r = api__j_call_method(c, n, v, "items", a, &handled);
		return r;
	}
	if (!strcmp(name, "list"))
		return api__j_as_list(c, n, v);
	if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr") || !strcmp(name, "select") ||
	    !strcmp(name, "reject"))
		return filter_select(c, n, name, v, a);
	if (!strcmp(name, "map")) {
		json_t *items = api__j_as_list(c, n, v), *out, *x;
		json_t *attr = api__j_arg(a, -1, "attribute", NULL),
		       *dflt = api__j_arg(a, -1, "default", NULL);
		size_t i;
		if (!items)
			return NULL;
		if (!attr && (!is_str(a0) || !api__jinja_filter_known(json_string_value(a0)))) {
			json_decref(items);
			api__j_fail(c, n, MLLM_EUNSUPPORTED,
			            "map: needs attribute= or a filter name");
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
				jargs rest = {.n = 0};
				for (int k = 1; k < a->n; k++) {
					rest.v[rest.n] = a->v[k];
					rest.kw[rest.n++] = a->kw[k];
				}
				y = api__j_apply_filter(c, n, json_string_value(a0), x, &rest);
			}
			if (c->rc || api__j_charge(c, n, 1) != 0) {
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
		return is_str(v) ? json_incref(v) : api__j_to_str(c, n, v);
	if (!strcmp(name, "e") || !strcmp(name, "escape") || !strcmp(name, "striptags")) {
		json_t *s = api__j_to_str(c, n, v), *r;
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
				api__j_fail(c, n, MLLM_ENOSPACE, "output exceeds the limit");
				return NULL;
			}
		}
		json_decref(s);
		r = api__j_buf_str(c, n, &b);
		return r;
	}
	if (!strcmp(name, "int") || !strcmp(name, "float")) {
		json_t *dflt = api__j_arg(a, 0, "default", NULL);
		bool want_int = name[0] == 'i';
		if (is_num(v))
			return want_int ? json_integer(int_of(v)) : api__j_real(c, n, dbl_of(v));
		if (is_str(v)) {
			char *end;
			const char *s = json_string_value(v);
			double d = strtod(s, &end);
			if (end != s && *end == '\0')
				return want_int ? json_integer(
				                      d > -9.2e18 && d < 9.2e18 ? (long long)d : 0)
				                : api__j_real(c, n, d);
		}
		if (dflt)
			return json_incref(dflt);
		return want_int ? json_integer(0) : json_real(0.0);
	}
	if (!strcmp(name, "abs")) {
		if (!is_num(v)) {
			api__j_fail(c, n, MLLM_EINVAL, "bad operand type for abs(): '%s'",
			            api__j_type_name(v));
			return NULL;
		}
		if (is_intlike(v))
			return json_integer(llabs(int_of(v)));
		return json_real(fabs(json_real_value(v)));
	}
	if (!strcmp(name, "round")) {
		json_t *pr = api__j_arg(a, 0, "precision", NULL);
		double p = pr && is_intlike(pr) ? pow(10, (double)int_of(pr)) : 1;
		if (!is_num(v)) {
			api__j_fail(c, n, MLLM_EINVAL, "round: '%s' is not a number",
			            api__j_type_name(v));
			return NULL;
		}
		return api__j_real(c, n, round(dbl_of(v) * p) / p);
	}
	if (!strcmp(name, "unique") || !strcmp(name, "reverse")) {
		json_t *items = api__j_as_list(c, n, v), *out, *x;
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
			return api__j_buf_str(c, n, &b);
		}
		out = json_array();
		MLLM_ASSERT(out);
		json_array_foreach(items, i, x)
		{
			if (name[0] == 'r') {
				json_array_insert(out, 0, x);
				continue;
			}
			json_t *has = api__j_contains(c, n, x, out);
			if (has && !json_is_true(has))
				json_array_append(out, x);
			json_decref(has);
			if (api__j_charge(c, n, (long long)json_array_size(out) / 8 + 1) != 0)
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
		json_t *items, *r, *attr = api__j_arg(a, -1, "attribute", NULL);
		bool rev = false;
		if (!strcmp(name, "dictsort")) {
			bool handled;
			if (!v || !json_is_object(v)) {
				api__j_fail(c, n, MLLM_EINVAL, "dictsort: '%s' is not a mapping",
				            api__j_type_name(v));
				return NULL;
			}
			jargs none = {.n = 0};
			items = api__j_call_method(c, n, v, "items", &none, &handled);
			json_t *zero = json_integer(0);
			json_t *by = api__j_arg(a, 1, "by", NULL);
			if (by && is_str(by) && !strcmp(json_string_value(by), "value")) {
				json_decref(zero);
				zero = json_integer(1);
			}
			rev = api__py_truthy(api__j_arg(a, 2, "reverse", NULL));
			r = items ? sorted(c, n, items, zero, rev) : NULL;
			json_decref(zero);
			json_decref(items);
			return r;
		}
		items = api__j_as_list(c, n, v);
		if (!items)
			return NULL;
		if (name[0] == 's')
			rev = api__py_truthy(api__j_arg(a, 0, "reverse", NULL));
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
		json_t *items = api__j_as_list(c, n, v),
		       *attr = api__j_arg(a, -1, "attribute", NULL);
		json_t *acc = api__j_arg(a, 1, "start", NULL), *x;
		size_t i;
		if (!items)
			return NULL;
		acc = acc ? json_incref(acc) : json_integer(0);
		json_array_foreach(items, i, x)
		{
			json_t *y = attr ? attr_path(c, n, x, attr) : json_incref(x);
			json_t *s = api__j_arith(c, n, JOP_ADD, acc, y);
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
		json_t *s = api__j_to_str(c, n, v), *w = api__j_arg(a, 0, "width", NULL);
		bool first = api__py_truthy(api__j_arg(a, 1, "first", NULL));
		bool blank = api__py_truthy(api__j_arg(a, 2, "blank", NULL));
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
				api__j_fail(c, n, MLLM_ENOSPACE,
				            "indent: output exceeds the limit");
				return NULL;
			}
			line++;
			if (!nl)
				break;
			at = end + 1;
		}
		mllm_buf_free(&pad);
		json_decref(s);
		return api__j_buf_str(c, n, &b);
	}
	if (!strcmp(name, "attr")) {
		if (!is_str(a0))
			return NULL;
		return api__j_get_attr(v, json_string_value(a0));
	}
	if (!strcmp(name, "wordcount")) {
		json_t *s = api__j_to_str(c, n, v), *parts;
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
		json_t *s = api__j_to_str(c, n, v), *w = api__j_arg(a, 0, "width", NULL), *r;
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
		r = api__j_buf_str(c, n, &b);
		return r;
	}
	if (!strcmp(name, "batch")) {
		json_t *items = api__j_as_list(c, n, v), *out, *row = NULL, *x;
		long long k = a0 && is_intlike(a0) ? int_of(a0) : 0;
		size_t i;
		if (!items)
			return NULL;
		if (k <= 0) {
			json_decref(items);
			api__j_fail(c, n, MLLM_EINVAL, "batch: size must be positive");
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
	if (!strcmp(name, "format")) {
		/* jinja2: value % args */
		json_t *s = api__j_to_str(c, n, v), *tuple, *r;
		if (!s)
			return NULL;
		tuple = json_array();
		MLLM_ASSERT(tuple);
		for (int i = 0; i < a->n; i++) {
			if (!a->kw[i])
				json_array_append(tuple, a->v[i] ? a->v[i] : json_null());
		}
		r = api__j_percent(c, n, s, tuple);
		json_decref(tuple);
		json_decref(s);
		return r;
	}
	api__j_fail(c, n, MLLM_EUNSUPPORTED, "unsupported filter '%s'", name);
	return NULL;
}
