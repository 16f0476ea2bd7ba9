/*
 * jinja_value.c — Python's view of jansson values, as chat templates see
 * them through jinja2 and transformers: str() and repr() spellings (None,
 * True, 2.5, [{'a': 1}]), json.dumps as transformers' tojson calls it
 * (ensure_ascii=False, ", " and ": " separators, optional indent and
 * sort_keys), truthiness, equality, ordering and Unicode whitespace.
 * Templates are written against Python; matching its spelling byte for
 * byte is the point, so each rule here names the Python behaviour it copies.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

uint32_t api__utf8_next(const char *s, size_t n, size_t *len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t l = mllm_utf8_len(u, n);
	uint32_t cp;
	if (l == 0) {
		*len = 1;
		return u[0];
	}
	*len = l;
	if (l == 1)
		return u[0];
	if (l == 2)
		return ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
	if (l == 3)
		return ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) |
		       (u[2] & 0x3F);
	cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
	     ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
	return cp;
}

/* Python's str.isspace(): Unicode White_Space plus the ASCII separators
 * 0x1C-0x1F. */
int api__py_isspace(uint32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
	       cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
	       cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Python's str.isprintable(), closely enough for repr(): controls, format
 * characters, separators other than the space and private use are not. */
static int py_isprintable(uint32_t cp)
{
	if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD)
		return 0;
	if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
	    (cp >= 0x205F && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x206F) || cp == 0x3000 ||
	    cp == 0xFEFF || cp == 0x180E || cp == 0x061C || (cp >= 0xFFF9 && cp <= 0xFFFB))
		return 0;
	if ((cp >= 0xD800 && cp <= 0xF8FF) || cp >= 0xF0000 || cp == 0xFFFE || cp == 0xFFFF)
		return 0;
	return 1;
}

void api__py_float_repr(double d, char *buf, size_t cap)
{
	char tmp[64];
	int prec, exp10;
	char digits[32];
	size_t nd = 0;
	char *e;
	if (isnan(d)) {
		snprintf(buf, cap, "nan");
		return;
	}
	if (isinf(d)) {
		snprintf(buf, cap, d < 0 ? "-inf" : "inf");
		return;
	}
	if (d == 0) {
		snprintf(buf, cap, signbit(d) ? "-0.0" : "0.0");
		return;
	}
	/* The shortest %.Ne that reads back as d: Python's repr digits. */
	for (prec = 0; prec < 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*e", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	snprintf(tmp, sizeof tmp, "%.*e", prec, d);
	e = strchr(tmp, 'e');
	exp10 = atoi(e + 1);
	for (char *p = tmp; p < e; p++) {
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	}
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	{
		char o[64];
		size_t k = 0;
		if (d < 0)
			o[k++] = '-';
		if (exp10 < -4 || exp10 >= 16) {
			o[k++] = digits[0];
			if (nd > 1) {
				o[k++] = '.';
				for (size_t i = 1; i < nd; i++)
					o[k++] = digits[i];
			}
			snprintf(o + k, sizeof o - k, "e%c%02d", exp10 < 0 ? '-' : '+',
			         exp10 < 0 ? -exp10 : exp10);
		} else if (exp10 < 0) {
			o[k++] = '0';
			o[k++] = '.';
			for (int i = 0; i < -exp10 - 1; i++)
				o[k++] = '0';
			for (size_t i = 0; i < nd; i++)
				o[k++] = digits[i];
			o[k] = '\0';
		} else {
			for (int i = 0; i <= exp10; i++)
				o[k++] = (size_t)i < nd ? digits[i] : '0';
			o[k++] = '.';
			if ((size_t)exp10 + 1 < nd) {
				for (size_t i = (size_t)exp10 + 1; i < nd; i++)
					o[k++] = digits[i];
			} else {
				o[k++] = '0';
			}
			o[k] = '\0';
		}
		snprintf(buf, cap, "%s", o);
	}
}

static int py_repr_str(const char *s, size_t n, mllm_buf *out)
{
	char q = '\'';
	int rc;
	if (memchr(s, '\'', n) && !memchr(s, '"', n))
		q = '"';
	rc = mllm_buf_append(out, &q, 1);
	for (size_t i = 0; i < n && rc == 0;) {
		size_t l;
		uint32_t cp = api__utf8_next(s + i, n - i, &l);
		if (cp == (uint32_t)q || cp == '\\') {
			char e[2] = {'\\', (char)cp};
			rc = mllm_buf_append(out, e, 2);
		} else if (cp == '\n') {
			rc = mllm_buf_append(out, "\\n", 2);
		} else if (cp == '\r') {
			rc = mllm_buf_append(out, "\\r", 2);
		} else if (cp == '\t') {
			rc = mllm_buf_append(out, "\\t", 2);
		} else if (py_isprintable(cp)) {
			rc = mllm_buf_append(out, s + i, l);
		} else if (cp < 0x100) {
			rc = mllm_buf_appendf(out, "\\x%02x", cp);
		} else if (cp < 0x10000) {
			rc = mllm_buf_appendf(out, "\\u%04x", cp);
		} else {
			rc = mllm_buf_appendf(out, "\\U%08x", cp);
		}
		i += l;
	}
	if (rc == 0)
		rc = mllm_buf_append(out, &q, 1);
	return rc;
}

static int py_number(const json_t *v, mllm_buf *out)
{
	if (json_is_integer(v))
		return mllm_buf_appendf(out, "%lld", (long long)json_integer_value(v));
	char b[64];
	api__py_float_repr(json_real_value(v), b, sizeof b);
	return mllm_buf_append(out, b, strlen(b));
}

static int py_repr(const json_t *v, mllm_buf *out, int depth);

int api__py_repr(const json_t *v, mllm_buf *out)
{
	return v ? py_repr(v, out, 0) : mllm_buf_append(out, "Undefined", 9);
}

static int py_repr(const json_t *v, mllm_buf *out, int depth)
{
	int rc = 0;
	if (depth > 200)
		return MLLM_ERANGE;
	switch (json_typeof(v)) {
	case JSON_STRING:
		return py_repr_str(json_string_value(v), json_string_length(v), out);
	case JSON_ARRAY: {
		size_t i;
		json_t *x;
		rc = mllm_buf_append(out, "[", 1);
		json_array_foreach(v, i, x)
		{
			if (rc == 0 && i > 0)
				rc = mllm_buf_append(out, ", ", 2);
			if (rc == 0)
				rc = py_repr(x, out, depth + 1);
		}
		return rc ? rc : mllm_buf_append(out, "]", 1);
	}
	case JSON_OBJECT: {
		const char *k;
		json_t *x;
		int first = 1;
		rc = mllm_buf_append(out, "{", 1);
		json_object_foreach((json_t *)v, k, x)
		{
			if (rc == 0 && !first)
				rc = mllm_buf_append(out, ", ", 2);
			first = 0;
			if (rc == 0)
				rc = py_repr_str(k, strlen(k), out);
			if (rc == 0)
				rc = mllm_buf_append(out, ": ", 2);
			if (rc == 0)
				rc = py_repr(x, out, depth + 1);
		}
		return rc ? rc : mllm_buf_append(out, "}", 1);
	}
	default:
		return api__py_str(v, out);
	}
}

int api__py_str(const json_t *v, mllm_buf *out)
{
	if (!v)
		return 0;
	switch (json_typeof(v)) {
	case JSON_STRING:
		return mllm_buf_append(out, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
	case JSON_REAL:
		return py_number(v, out);
	case JSON_TRUE:
		return mllm_buf_append(out, "True", 4);
	case JSON_FALSE:
		return mllm_buf_append(out, "False", 5);
	case JSON_NULL:
		return mllm_buf_append(out, "None", 4);
	default:
		return py_repr(v, out, 0);
	}
}

/* A JSON string as json.dumps writes it; ascii: ensure_ascii=True, every
 * character past U+007F as \uXXXX (a surrogate pair past U+FFFF). jansson
 * strings are valid UTF-8; a byte that is not (it cannot happen) is
 * written as U+FFFD. */
static int json_str(const char *s, size_t n, bool ascii, mllm_buf *out)
{
	int rc = mllm_buf_append(out, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *e = NULL;
		char hex[16];
		size_t at = i; /* the character's first byte */
		if (ascii && c >= 0x80) {
			size_t k = mllm_utf8_len((const unsigned char *)s + i, n - i);
			uint32_t cp = 0xfffd;
			if (k >= 2) {
				cp = c & (0x7f >> k);
				for (size_t j = 1; j < k; j++)
					cp = cp << 6 | ((unsigned char)s[i + j] & 0x3f);
				i += k - 1;
			}
			if (cp > 0xffff) {
				cp -= 0x10000;
				snprintf(hex, sizeof hex, "\\u%04x\\u%04x", 0xd800 + (cp >> 10),
				         0xdc00 + (cp & 0x3ff));
			} else {
				snprintf(hex, sizeof hex, "\\u%04x", cp);
			}
			e = hex;
		} else if (c == '"')
			e = "\\\"";
		else if (c == '\\')
			e = "\\\\";
		else if (c == '\n')
			e = "\\n";
		else if (c == '\r')
			e = "\\r";
		else if (c == '\t')
			e = "\\t";
		else if (c == '\b')
			e = "\\b";
		else if (c == '\f')
			e = "\\f";
		else if (c < 0x20) {
			snprintf(hex, sizeof hex, "\\u%04x", c);
			e = hex;
		}
		if (!e) {
			run++;
			continue;
		}
		if (run)
			rc = mllm_buf_append(out, s + at - run, run);
		run = 0;
		if (rc == 0)
			rc = mllm_buf_append(out, e, strlen(e));
	}
	if (rc == 0 && run)
		rc = mllm_buf_append(out, s + n - run, run);
	return rc ? rc : mllm_buf_append(out, "\"", 1);
}

typedef struct {
	int indent;
	const char *indent_str;
	const char *item_sep, *key_sep;
	bool sort_keys;
	bool ascii;
} json_style;

static int json_newline(const json_style *st, int level, mllm_buf *out)
{
	int rc = mllm_buf_append(out, "\n", 1);
	for (int i = 0; i < level && rc == 0; i++) {
		if (st->indent_str)
			rc = mllm_buf_append(out, st->indent_str, strlen(st->indent_str));
		else
			for (int k = 0; k < st->indent && rc == 0; k++)
				rc = mllm_buf_append(out, " ", 1);
	}
	return rc;
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int py_json(const json_t *v, const json_style *st, int level, mllm_buf *out)
{
	int rc = 0;
	int pretty = st->indent >= 0 || st->indent_str;
	if (level > 200)
		return MLLM_ERANGE;
	switch (json_typeof(v)) {
	case JSON_STRING:
		return json_str(json_string_value(v), json_string_length(v), st->ascii, out);
	case JSON_INTEGER:
		return py_number(v, out);
	case JSON_REAL: {
		double d = json_real_value(v);
		if (isnan(d))
			return mllm_buf_append(out, "NaN", 3);
		if (isinf(d))
			return d < 0 ? mllm_buf_append(out, "-Infinity", 9)
			             : mllm_buf_append(out, "Infinity", 8);
		return py_number(v, out);
	}
	case JSON_TRUE:
		return mllm_buf_append(out, "true", 4);
	case JSON_FALSE:
		return mllm_buf_append(out, "false", 5);
	case JSON_NULL:
		return mllm_buf_append(out, "null", 4);
	case JSON_ARRAY: {
		size_t i;
		json_t *x;
		if (json_array_size(v) == 0)
			return mllm_buf_append(out, "[]", 2);
		rc = mllm_buf_append(out, "[", 1);
		json_array_foreach(v, i, x)
		{
			if (rc == 0 && i > 0)
				rc = mllm_buf_append(out, st->item_sep, strlen(st->item_sep));
			if (rc == 0 && pretty)
				rc = json_newline(st, level + 1, out);
			if (rc == 0)
				rc = py_json(x, st, level + 1, out);
		}
		if (rc == 0 && pretty)
			rc = json_newline(st, level, out);
		return rc ? rc : mllm_buf_append(out, "]", 1);
	}
	case JSON_OBJECT: {
		size_t n = json_object_size(v), k = 0;
		const char **keys;
		const char *key;
		json_t *x;
		if (n == 0)
			return mllm_buf_append(out, "{}", 2);
		keys = xmallocarray(n, sizeof *keys);
		json_object_foreach((json_t *)v, key, x)
		{
			keys[k++] = key;
		}
		if (st->sort_keys)
			qsort(keys, n, sizeof *keys, cmp_keys);
		rc = mllm_buf_append(out, "{", 1);
		for (size_t i = 0; i < n && rc == 0; i++) {
			if (i > 0)
				rc = mllm_buf_append(out, st->item_sep, strlen(st->item_sep));
			if (rc == 0 && pretty)
				rc = json_newline(st, level + 1, out);
			if (rc == 0)
				rc = json_str(keys[i], strlen(keys[i]), st->ascii, out);
			if (rc == 0)
				rc = mllm_buf_append(out, st->key_sep, strlen(st->key_sep));
			if (rc == 0)
				rc = py_json(json_object_get(v, keys[i]), st, level + 1, out);
		}
		free(keys);
		if (rc == 0 && pretty)
			rc = json_newline(st, level, out);
		return rc ? rc : mllm_buf_append(out, "}", 1);
	}
	}
	return MLLM_EINVAL;
}

int api__py_json(const json_t *v, int indent, const char *indent_str, const char *item_sep,
                 const char *key_sep, bool sort_keys, bool ensure_ascii, mllm_buf *out)
{
	json_style st = {.indent = indent,
	                 .ascii = ensure_ascii,
	                 .indent_str = indent_str,
	                 .item_sep = item_sep,
	                 .key_sep = key_sep,
	                 .sort_keys = sort_keys};
	/* json.dumps: with an indent the item separator loses its space. */
	if (!st.item_sep)
		st.item_sep = (indent >= 0 || indent_str) ? "," : ", ";
	if (!st.key_sep)
		st.key_sep = ": ";
	return py_json(v, &st, 0, out);
}

bool api__py_truthy(const json_t *v)
{
	if (!v)
		return false;
	switch (json_typeof(v)) {
	case JSON_STRING:
		return json_string_length(v) > 0;
	case JSON_INTEGER:
		return json_integer_value(v) != 0;
	case JSON_REAL:
		return json_real_value(v) != 0;
	case JSON_TRUE:
		return true;
	case JSON_FALSE:
	case JSON_NULL:
		return false;
	case JSON_ARRAY:
		return json_array_size(v) > 0;
	case JSON_OBJECT:
		return json_object_size(v) > 0;
	}
	return false;
}

/* Python numbers: bool is an int, int and float compare by value. */
static int as_number(const json_t *v, double *d, long long *i, int *is_int)
{
	if (json_is_integer(v)) {
		*i = (long long)json_integer_value(v);
		*d = (double)*i;
		*is_int = 1;
		return 1;
	}
	if (json_is_boolean(v)) {
		*i = json_is_true(v);
		*d = (double)*i;
		*is_int = 1;
		return 1;
	}
	if (json_is_real(v)) {
		*d = json_real_value(v);
		*is_int = 0;
		return 1;
	}
	return 0;
}

static bool py_equal(const json_t *a, const json_t *b, int depth);

bool api__py_equal(const json_t *a, const json_t *b)
{
	return py_equal(a, b, 0);
}

/* depth bounds the walk: a namespace can be made to contain itself, and
 * Python would overflow its recursion limit there too. */
static bool py_equal(const json_t *a, const json_t *b, int depth)
{
	double da, db;
	long long ia, ib;
	int ka, kb;
	if (!a || !b)
		return !a && !b;
	if (a == b)
		return true;
	if (depth > 200)
		return false;
	if (as_number(a, &da, &ia, &ka) && as_number(b, &db, &ib, &kb))
		return ka && kb ? ia == ib : da == db;
	if (json_typeof(a) != json_typeof(b))
		return false;
	switch (json_typeof(a)) {
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) ==
		           0;
	case JSON_NULL:
		return true;
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return false;
		for (size_t i = 0; i < json_array_size(a); i++) {
			if (!py_equal(json_array_get(a, i), json_array_get(b, i), depth + 1))
				return false;
		}
		return true;
	case JSON_OBJECT: {
		const char *k;
		json_t *x;
		if (json_object_size(a) != json_object_size(b))
			return false;
		json_object_foreach((json_t *)a, k, x)
		{
			if (!py_equal(x, json_object_get(b, k), depth + 1))
				return false;
		}
		return true;
	}
	default:
		return false;
	}
}

int api__py_compare(const json_t *a, const json_t *b, int *cmp)
{
	double da, db;
	long long ia, ib;
	int ka, kb;
	if (!a || !b)
		return -1;
	if (as_number(a, &da, &ia, &ka) && as_number(b, &db, &ib, &kb)) {
		if (ka && kb)
			*cmp = ia < ib ? -1 : ia > ib;
		else
			*cmp = da < db ? -1 : da > db;
		return 0;
	}
	if (json_is_string(a) && json_is_string(b)) {
		size_t na = json_string_length(a), nb = json_string_length(b);
		int c = memcmp(json_string_value(a), json_string_value(b), na < nb ? na : nb);
		*cmp = c < 0 ? -1 : c > 0 ? 1 : na < nb ? -1 : na > nb;
		return 0;
	}
	if (json_is_array(a) && json_is_array(b)) {
		size_t na = json_array_size(a), nb = json_array_size(b);
		for (size_t i = 0; i < na && i < nb; i++) {
			json_t *x = json_array_get(a, i), *y = json_array_get(b, i);
			if (api__py_equal(x, y))
				continue;
			return api__py_compare(x, y, cmp);
		}
		*cmp = na < nb ? -1 : na > nb;
		return 0;
	}
	return -1;
}
