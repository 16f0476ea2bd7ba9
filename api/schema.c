/*
 * schema.c — JSON Schema (the subset OpenAI's structured outputs define) to
 * an engine grammar over bytes (engine/grammar.h), for response_format and
 * tool calls. Runs on the prep threads (api_request_prepare).
 *
 * Each schema node becomes a rule whose language is a subset of the JSON
 * texts the schema accepts: properties come in the schema's order, optional
 * ones may be left out, no extra properties are generated, numbers have
 * bounded digits and whitespace is bounded (docs/api.md, "Structured
 * outputs"), so a small model can neither leave the schema nor loop inside
 * it. Keywords that cannot be enforced are refused with a 400 naming their
 * JSON pointer rather than silently ignored.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

#define SC_MAX_REPEAT 4096 /* maxLength / maxItems / minItems we unroll */
#define SC_MAX_REFS   256
#define SC_MAX_DEPTH  64 /* schema nesting (not instance nesting) */
#define SC_WS_INDENT  8  /* spaces after a newline between tokens */

typedef struct {
	char *ref;
	json_t *doc;
	int32_t rule;
} sc_ref;

struct api__sc {
	mllm_gbuild *b;
	int32_t ws, chr, dotchr, str, num, integer, value, object_any, array_any;
	sc_ref refs[SC_MAX_REFS];
	int n_refs;
	const char *param;
	json_t *doc;
	api_error *e;
	bool failed;
	int depth;
};

static void set(uint8_t s[32], int c)
{
	s[c / 8] |= (uint8_t)(1u << (c % 8));
}

static void set_range(uint8_t s[32], int lo, int hi)
{
	for (int c = lo; c <= hi; c++)
		set(s, c);
}

static int32_t rule(api__sc *c)
{
	int32_t r = mllm_gbuild_rule(c->b);
	if (r < 0) {
		/* Reported by finish; give a valid id meanwhile. */
		c->failed = true;
		return 0;
	}
	return r;
}

static void lit(api__sc *c, int32_t r, const char *s)
{
	mllm_gbuild_lit(c->b, r, s, strlen(s));
}

static void ref(api__sc *c, int32_t r, int32_t t)
{
	mllm_gbuild_ref(c->b, r, t);
}

static void alt(api__sc *c, int32_t r)
{
	mllm_gbuild_alt(c->b, r);
}

static void empty_alt(api__sc *c, int32_t r)
{
	mllm_gbuild_alt(c->b, r);
}

/* ---- Shared rules --------------------------------------------------------- */

/* Whitespace between tokens: nothing, one space, or a newline and up to 8
 * spaces of indentation. Bounded, so a model cannot spin on whitespace. */
static int32_t ws(api__sc *c)
{
	int32_t r, ind, prev;
	if (c->ws >= 0)
		return c->ws;
	/* ind_k: up to k spaces. */
	prev = rule(c);
	empty_alt(c, prev);
	for (int k = 1; k <= SC_WS_INDENT; k++) {
		ind = rule(c);
		empty_alt(c, ind);
		alt(c, ind);
		lit(c, ind, " ");
		ref(c, ind, prev);
		prev = ind;
	}
	r = rule(c);
	empty_alt(c, r);
	alt(c, r);
	lit(c, r, " ");
	alt(c, r);
	lit(c, r, "\n");
	ref(c, r, prev);
	c->ws = r;
	return r;
}

static int32_t hex(api__sc *c, int32_t r)
{
	uint8_t s[32] = {0};
	set_range(s, '0', '9');
	set_range(s, 'a', 'f');
	set_range(s, 'A', 'F');
	mllm_gbuild_set(c->b, r, s);
	return r;
}

static void cont(api__sc *c, int32_t r, int n)
{
	for (int i = 0; i < n; i++)
		mllm_gbuild_range(c->b, r, 0x80, 0xbf);
}

/* The alternatives every non-ASCII character rule shares: ED (below the
 * surrogates) and the four-byte characters up to U+10FFFF. */
static void utf8_tail(api__sc *c, int32_t r)
{
	alt(c, r);
	lit(c, r, "\xed");
	mllm_gbuild_range(c->b, r, 0x80, 0x9f);
	cont(c, r, 1);
	alt(c, r);
	lit(c, r, "\xf0");
	mllm_gbuild_range(c->b, r, 0x90, 0xbf);
	cont(c, r, 2);
	alt(c, r);
	mllm_gbuild_range(c->b, r, 0xf1, 0xf3);
	cont(c, r, 3);
	alt(c, r);
	lit(c, r, "\xf4");
	mllm_gbuild_range(c->b, r, 0x80, 0x8f);
	cont(c, r, 2);
}

/* One non-ASCII UTF-8 character (well-formed: no overlongs, no
 * surrogates). dot: leave out U+2028 and U+2029, which a regex '.' does
 * not match. */
static void utf8_multi(api__sc *c, int32_t r, bool dot)
{
	alt(c, r);
	mllm_gbuild_range(c->b, r, 0xc2, 0xdf);
	cont(c, r, 1);
	alt(c, r);
	lit(c, r, "\xe0");
	mllm_gbuild_range(c->b, r, 0xa0, 0xbf);
	cont(c, r, 1);
	alt(c, r);
	mllm_gbuild_range(c->b, r, 0xe1, dot ? 0xe1 : 0xec);
	cont(c, r, 2);
	if (dot) {
		uint8_t s[32] = {0};
		alt(c, r);
		lit(c, r, "\xe2");
		mllm_gbuild_range(c->b, r, 0x81, 0xbf);
		cont(c, r, 1);
		alt(c, r);
		lit(c, r, "\xe2\x80");
		set_range(s, 0x80, 0xa7);
		set_range(s, 0xaa, 0xbf);
		mllm_gbuild_set(c->b, r, s);
		alt(c, r);
		mllm_gbuild_range(c->b, r, 0xe3, 0xec);
		cont(c, r, 2);
	}
	alt(c, r);
	mllm_gbuild_range(c->b, r, 0xee, 0xef);
	cont(c, r, 2);
	utf8_tail(c, r);
}

/* One character inside a JSON string, as JSON spells it: unescaped
 * printable characters, the short escapes, or \uXXXX outside the
 * surrogates. dot: only what a regex '.' matches (no line terminators). */
static int32_t chr(api__sc *c, bool dot)
{
	int32_t r;
	uint8_t s[32] = {0};
	if (!dot && c->chr >= 0)
		return c->chr;
	if (dot && c->dotchr >= 0)
		return c->dotchr;
	r = rule(c);
	set_range(s, 0x20, 0x7f);
	s['"' / 8] &= (uint8_t) ~(1u << ('"' % 8));
	s['\\' / 8] &= (uint8_t) ~(1u << ('\\' % 8));
	alt(c, r);
	mllm_gbuild_set(c->b, r, s);
	alt(c, r);
	lit(c, r, "\\");
	memset(s, 0, sizeof s);
	set(s, '"');
	set(s, '\\');
	set(s, '/');
	set(s, 'b');
	set(s, 'f');
	set(s, 't');
	if (!dot) {
		set(s, 'n');
		set(s, 'r');
	}
	mllm_gbuild_set(c->b, r, s);
	if (!dot) {
		memset(s, 0, sizeof s);
		set_range(s, '0', '9');
		set_range(s, 'a', 'c');
		set_range(s, 'A', 'C');
		set(s, 'e');
		set(s, 'f');
		set(s, 'E');
		set(s, 'F');
		alt(c, r);
		lit(c, r, "\\u");
		mllm_gbuild_set(c->b, r, s);
		hex(c, r);
		hex(c, r);
		hex(c, r);
		alt(c, r);
		lit(c, r, "\\u");
		memset(s, 0, sizeof s);
		set(s, 'd');
		set(s, 'D');
		mllm_gbuild_set(c->b, r, s);
		mllm_gbuild_range(c->b, r, '0', '7');
		hex(c, r);
		hex(c, r);
	}
	utf8_multi(c, r, dot);
	if (dot)
		c->dotchr = r;
	else
		c->chr = r;
	return r;
}

/* x repeated min..max times (max < 0: unbounded), optionally separated by
 * the rule sep. Returns the rule; false in *ok when the bounds are too large
 * to unroll. */
static int32_t repeat(api__sc *c, int32_t x, int32_t sep, long long min, long long max)
{
	int32_t r = rule(c), tail, prev;
	if (min > SC_MAX_REPEAT || (max >= 0 && max - min > SC_MAX_REPEAT)) {
		c->failed = true;
		return r;
	}
	/* tail: zero or more further items, each "sep x" (or "x" when the
	 * first is already out); built innermost first. */
	if (max < 0) {
		tail = rule(c);
		empty_alt(c, tail);
		alt(c, tail);
		if (sep >= 0)
			ref(c, tail, sep);
		ref(c, tail, x);
		ref(c, tail, tail);
	} else {
		long long extra = max - (min > 0 ? min : 1);
		prev = rule(c);
		empty_alt(c, prev);
		for (long long k = 0; k < extra; k++) {
			int32_t t = rule(c);
			empty_alt(c, t);
			alt(c, t);
			if (sep >= 0)
				ref(c, t, sep);
			ref(c, t, x);
			ref(c, t, prev);
			prev = t;
		}
		tail = prev;
	}
	if (max == 0) {
		empty_alt(c, r);
		return r;
	}
	alt(c, r);
	ref(c, r, x);
	for (long long k = 1; k < min; k++) {
		if (sep >= 0)
			ref(c, r, sep);
		ref(c, r, x);
	}
	ref(c, r, tail);
	if (min == 0)
		empty_alt(c, r);
	return r;
}

static int32_t string_any(api__sc *c)
{
	int32_t r, body;
	if (c->str >= 0)
		return c->str;
	body = repeat(c, chr(c, false), -1, 0, -1);
	r = rule(c);
	alt(c, r);
	lit(c, r, "\"");
	ref(c, r, body);
	lit(c, r, "\"");
	c->str = r;
	return r;
}

/* Digits: bounded counts so that a number cannot run forever. */
#define SC_INT_DIGITS  15
#define SC_FRAC_DIGITS 15
#define SC_EXP_DIGITS  2 /* 15 digits e99 stays finite as a double; e999 does not */

static int32_t digits(api__sc *c, int min, int max)
{
	int32_t d = rule(c);
	mllm_gbuild_range(c->b, d, '0', '9');
	return repeat(c, d, -1, min, max);
}

/* A non-negative integer without sign: 0 | [1-9][0-9]{0,14}. */
static int32_t uint_rule(api__sc *c)
{
	int32_t r = rule(c);
	alt(c, r);
	lit(c, r, "0");
	alt(c, r);
	mllm_gbuild_range(c->b, r, '1', '9');
	ref(c, r, digits(c, 0, SC_INT_DIGITS - 1));
	return r;
}

static int32_t number_rule(api__sc *c, bool integer, bool nonneg)
{
	int32_t r = rule(c), frac, exp, sign;
	if (!nonneg) {
		sign = rule(c);
		empty_alt(c, sign);
		alt(c, sign);
		lit(c, sign, "-");
		ref(c, r, sign);
	} else {
		alt(c, r);
	}
	ref(c, r, uint_rule(c));
	if (integer)
		return r;
	frac = rule(c);
	empty_alt(c, frac);
	alt(c, frac);
	lit(c, frac, ".");
	ref(c, frac, digits(c, 1, SC_FRAC_DIGITS));
	exp = rule(c);
	empty_alt(c, exp);
	alt(c, exp);
	{
		uint8_t s[32] = {0};
		set(s, 'e');
		set(s, 'E');
		mllm_gbuild_set(c->b, exp, s);
	}
	sign = rule(c);
	empty_alt(c, sign);
	alt(c, sign);
	lit(c, sign, "-");
	alt(c, sign);
	lit(c, sign, "+");
	ref(c, exp, sign);
	ref(c, exp, digits(c, 1, SC_EXP_DIGITS));
	ref(c, r, frac);
	ref(c, r, exp);
	return r;
}

static int32_t value_any(api__sc *c);

/* {"k": v, ...} with string keys and values of rule val. */
static int32_t object_of(api__sc *c, int32_t val)
{
	int32_t r = rule(c), kv = rule(c), sep = rule(c), list;
	ref(c, kv, string_any(c));
	ref(c, kv, ws(c));
	lit(c, kv, ":");
	ref(c, kv, ws(c));
	ref(c, kv, val);
	ref(c, sep, ws(c));
	lit(c, sep, ",");
	ref(c, sep, ws(c));
	list = repeat(c, kv, sep, 0, -1);
	lit(c, r, "{");
	ref(c, r, ws(c));
	ref(c, r, list);
	ref(c, r, ws(c));
	lit(c, r, "}");
	return r;
}

static int32_t array_of(api__sc *c, int32_t item, long long min, long long max)
{
	int32_t r = rule(c), sep = rule(c);
	ref(c, sep, ws(c));
	lit(c, sep, ",");
	ref(c, sep, ws(c));
	lit(c, r, "[");
	ref(c, r, ws(c));
	ref(c, r, repeat(c, item, sep, min, max));
	ref(c, r, ws(c));
	lit(c, r, "]");
	return r;
}

static int32_t value_any(api__sc *c)
{
	int32_t r;
	if (c->value >= 0)
		return c->value;
	r = rule(c);
	c->value = r;
	alt(c, r);
	ref(c, r, object_of(c, r));
	alt(c, r);
	ref(c, r, array_of(c, r, 0, -1));
	alt(c, r);
	ref(c, r, string_any(c));
	alt(c, r);
	ref(c, r, number_rule(c, false, false));
	alt(c, r);
	lit(c, r, "true");
	alt(c, r);
	lit(c, r, "false");
	alt(c, r);
	lit(c, r, "null");
	return r;
}

int32_t api__sc_any_object(api__sc *c)
{
	if (c->object_any < 0)
		c->object_any = object_of(c, value_any(c));
	return c->object_any;
}

/* ---- Errors ------------------------------------------------------------------ */

static int32_t sc_fail(api__sc *c, const char *ptr, const char *fmt, const char *what)
{
	char msg[300];
	if (!c->failed || !c->e->status) {
		snprintf(msg, sizeof msg, fmt, what);
		api_error_set(c->e, 400, c->param, "unsupported_schema", "%s (at %s).", msg, ptr);
	}
	c->failed = true;
	return -1;
}

static void ptr_join(char *out, size_t cap, const char *base, const char *key)
{
	size_t n = (size_t)snprintf(out, cap, "%s/", base);
	/* JSON pointer escapes: ~ → ~0, / → ~1. */
	for (const char *p = key; *p && n + 3 < cap; p++) {
		if (*p == '~') {
			out[n++] = '~';
			out[n++] = '0';
		} else if (*p == '/') {
			out[n++] = '~';
			out[n++] = '1';
		} else {
			out[n++] = *p;
		}
	}
	if (n >= cap)
		n = cap - 1;
	out[n] = '\0';
}

/* ---- Patterns (a regex subset; docs/api.md) ------------------------------------ */

typedef struct {
	api__sc *c;
	const char *p, *end;
	const char *ptr;
	bool bad;
	int depth; /* group nesting: bounded, the parser recurses */
	/* Of what was just parsed: whether it can match nothing, and whether
	 * it holds a quantifier. */
	bool nul, quant;
	char why[128];
} rx;

static void rx_bad(rx *x, const char *why)
{
	if (!x->bad)
		snprintf(x->why, sizeof x->why, "%s", why);
	x->bad = true;
}

/* Appends to r the JSON spelling of ASCII character ch (escaped where JSON
 * needs it). */
static void json_char(api__sc *c, int32_t r, int ch)
{
	char buf[8];
	switch (ch) {
	case '"':
		lit(c, r, "\\\"");
		return;
	case '\\':
		lit(c, r, "\\\\");
		return;
	case '\n':
		lit(c, r, "\\n");
		return;
	case '\r':
		lit(c, r, "\\r");
		return;
	case '\t':
		lit(c, r, "\\t");
		return;
	case '\f':
		lit(c, r, "\\f");
		return;
	default:
		if (ch < 0x20) {
			snprintf(buf, sizeof buf, "\\u%04x", ch);
			lit(c, r, buf);
			return;
		}
		buf[0] = (char)ch;
		mllm_gbuild_lit(c->b, r, buf, 1);
	}
}

/* One non-ASCII UTF-8 character that is not Unicode whitespace as a JS or
 * Python regex \s sees it (U+00A0, U+1680, U+2000-200A, U+2028/9, U+202F,
 * U+205F, U+3000, U+FEFF), for negated classes holding \s. Coarse: the
 * blocks around them go too (C2 A0; E1 9A xx; E2 80-81 xx; E3 80 xx; EF BB
 * xx), a subset, so every output still matches. */
static void utf8_multi_nows(api__sc *c, int32_t r)
{
	alt(c, r);
	lit(c, r, "\xc2");
	{
		uint8_t s[32] = {0};
		set_range(s, 0x80, 0x84); /* U+0085 (NEL) is Python's \s */
		set_range(s, 0x86, 0x9f);
		set_range(s, 0xa1, 0xbf);
		mllm_gbuild_set(c->b, r, s);
	}
	alt(c, r);
	mllm_gbuild_range(c->b, r, 0xc3, 0xdf);
	cont(c, r, 1);
	alt(c, r);
	lit(c, r, "\xe0");
	mllm_gbuild_range(c->b, r, 0xa0, 0xbf);
	cont(c, r, 1);
	alt(c, r);
	lit(c, r, "\xe1");
	{
		uint8_t s[32] = {0};
		set_range(s, 0x80, 0x99);
		set_range(s, 0x9b, 0xbf);
		mllm_gbuild_set(c->b, r, s);
	}
	cont(c, r, 1);
	alt(c, r);
	lit(c, r, "\xe2");
	mllm_gbuild_range(c->b, r, 0x82, 0xbf);
	cont(c, r, 1);
	alt(c, r);
	lit(c, r, "\xe3");
	mllm_gbuild_range(c->b, r, 0x81, 0xbf);
	cont(c, r, 1);
	alt(c, r);
	mllm_gbuild_range(c->b, r, 0xe4, 0xec);
	cont(c, r, 2);
	alt(c, r);
	lit(c, r, "\xee");
	cont(c, r, 2);
	alt(c, r);
	lit(c, r, "\xef");
	{
		uint8_t s[32] = {0};
		set_range(s, 0x80, 0xba);
		set_range(s, 0xbc, 0xbf);
		mllm_gbuild_set(c->b, r, s);
	}
	cont(c, r, 1);
	utf8_tail(c, r);
}

/* A rule for a set of ASCII characters (plus, when neg, every non-ASCII
 * character), spelled as JSON. */
static int32_t class_rule(api__sc *c, const uint8_t ascii[16], bool neg)
{
	int32_t r = rule(c);
	uint8_t plain[32] = {0};
	bool any_plain = false;
	for (int ch = 0; ch < 128; ch++) {
		bool in = (ascii[ch / 8] >> (ch % 8)) & 1;
		if (neg)
			in = !in;
		if (!in)
			continue;
		if (ch >= 0x20 && ch != '"' && ch != '\\') {
			set(plain, ch);
			any_plain = true;
		} else {
			alt(c, r);
			json_char(c, r, ch);
		}
	}
	if (any_plain) {
		alt(c, r);
		mllm_gbuild_set(c->b, r, plain);
	}
	/* A negated class that leaves out blanks (\S, [^\s], [^ ]) leaves
	 * out Unicode's too. */
	if (neg && ((ascii[' ' / 8] >> (' ' % 8)) & 1))
		utf8_multi_nows(c, r);
	else if (neg)
		utf8_multi(c, r, false);
	return r;
}

static void cls_add(uint8_t s[16], int lo, int hi)
{
	for (int ch = lo; ch <= hi && ch < 128; ch++)
		s[ch / 8] |= (uint8_t)(1u << (ch % 8));
}

/* \d \w \s and their negations into s; returns false if not a class escape. */
static bool class_escape(char e, uint8_t s[16], bool *neg)
{
	*neg = e == 'D' || e == 'W' || e == 'S';
	switch (e) {
	case 'd':
	case 'D':
		cls_add(s, '0', '9');
		return true;
	case 'w':
	case 'W':
		cls_add(s, '0', '9');
		cls_add(s, 'a', 'z');
		cls_add(s, 'A', 'Z');
		cls_add(s, '_', '_');
		return true;
	case 's':
	case 'S':
		cls_add(s, ' ', ' ');
		cls_add(s, '\t', '\r');
		return true;
	default:
		return false;
	}
}

/* The character an escape stands for, or -1. */
static int escape_char(char e)
{
	switch (e) {
	case 'n':
		return '\n';
	case 't':
		return '\t';
	case 'r':
		return '\r';
	case 'f':
		return '\f';
	case 'v':
		return '\v';
	default:
		if ((e >= 0x21 && e <= 0x2f) || (e >= 0x3a && e <= 0x40) ||
		    (e >= 0x5b && e <= 0x60) || (e >= 0x7b && e <= 0x7e))
			return (unsigned char)e;
		return -1;
	}
}

static int32_t rx_alt(rx *x);

static int32_t rx_class(rx *x)
{
	uint8_t s[16] = {0};
	bool neg = false;
	if (x->p < x->end && *x->p == '^') {
		neg = true;
		x->p++;
	}
	for (bool first = true; x->p < x->end && (*x->p != ']' || first); first = false) {
		int lo, hi;
		unsigned char ch = (unsigned char)*x->p++;
		if (ch >= 0x80) {
			rx_bad(x, "non-ASCII characters in a character class");
			return 0;
		}
		if (ch == '\\') {
			bool eneg;
			uint8_t es[16] = {0};
			if (x->p >= x->end)
				break;
			if (class_escape(*x->p, es, &eneg)) {
				if (eneg) {
					rx_bad(x, "negated class escapes inside a class");
					return 0;
				}
				for (int i = 0; i < 16; i++)
					s[i] |= es[i];
				x->p++;
				continue;
			}
			lo = escape_char(*x->p++);
			if (lo < 0) {
				rx_bad(x, "an unsupported escape");
				return 0;
			}
		} else {
			lo = ch;
		}
		hi = lo;
		if (x->p + 1 < x->end && x->p[0] == '-' && x->p[1] != ']') {
			x->p++;
			hi = (unsigned char)*x->p++;
			if (hi == '\\' && x->p < x->end)
				hi = escape_char(*x->p++);
			if (hi < lo || hi >= 0x80) {
				rx_bad(x, "a bad character range");
				return 0;
			}
		}
		cls_add(s, lo, hi);
	}
	if (x->p >= x->end) {
		rx_bad(x, "an unterminated character class");
		return 0;
	}
	x->p++; /* ] */
	return class_rule(x->c, s, neg);
}

/* One atom: returns its rule. */
static int32_t rx_atom(rx *x)
{
	api__sc *c = x->c;
	unsigned char ch = (unsigned char)*x->p++;
	int32_t r;
	x->nul = false;
	x->quant = false;
	if (ch == '(') {
		if (x->p + 1 < x->end && x->p[0] == '?') {
			if (x->p[1] != ':') {
				rx_bad(x, "lookarounds and named groups");
				return 0;
			}
			x->p += 2;
		}
		if (++x->depth > 32) {
			rx_bad(x, "groups nested deeper than 32");
			return 0;
		}
		r = rx_alt(x);
		x->depth--;
		if (x->p >= x->end || *x->p != ')') {
			rx_bad(x, "an unbalanced parenthesis");
			return 0;
		}
		x->p++;
		return r;
	}
	if (ch == '[')
		return rx_class(x);
	if (ch == '.')
		return chr(c, true);
	if (ch == '\\') {
		uint8_t s[16] = {0};
		bool neg;
		int e;
		if (x->p >= x->end) {
			rx_bad(x, "a trailing backslash");
			return 0;
		}
		if (class_escape(*x->p, s, &neg)) {
			x->p++;
			return class_rule(c, s, neg);
		}
		e = escape_char(*x->p);
		if (e < 0) {
			rx_bad(x, "an unsupported escape (backreferences, \\b, \\u)");
			return 0;
		}
		x->p++;
		r = rule(c);
		alt(c, r);
		json_char(c, r, e);
		return r;
	}
	if (ch == '^' || ch == '$') {
		rx_bad(x, "anchors other than a leading ^ and a trailing $");
		return 0;
	}
	if (ch == '*' || ch == '+' || ch == '?' || ch == '{' || ch == ')' || ch == '|') {
		rx_bad(x, "a quantifier with nothing to repeat");
		return 0;
	}
	r = rule(c);
	alt(c, r);
	if (ch >= 0x80) {
		/* A literal multi-byte character: copy its UTF-8 bytes. */
		const char *s = x->p - 1;
		while (x->p < x->end && ((unsigned char)*x->p & 0xc0) == 0x80)
			x->p++;
		mllm_gbuild_lit(c->b, r, s, (size_t)(x->p - s));
	} else {
		json_char(c, r, ch);
	}
	return r;
}

static bool rx_num(rx *x, long long *out)
{
	long long v = 0;
	bool any = false;
	while (x->p < x->end && *x->p >= '0' && *x->p <= '9' && v < 100000) {
		v = v * 10 + (*x->p++ - '0');
		any = true;
	}
	*out = v;
	return any;
}

static int32_t rx_seq(rx *x)
{
	api__sc *c = x->c;
	int32_t r = rule(c);
	bool seq_nul = true, seq_quant = false;
	alt(c, r);
	while (x->p < x->end && *x->p != '|' && *x->p != ')' && !x->bad) {
		long long min = 1, max = 1;
		int32_t a;
		bool a_nul, a_quant;
		if (*x->p == '$' && x->p + 1 == x->end)
			break;
		a = rx_atom(x);
		if (x->bad)
			return r;
		a_nul = x->nul;
		a_quant = x->quant;
		if (x->p < x->end) {
			char q = *x->p;
			if (q == '*' || q == '+' || q == '?') {
				x->p++;
				min = q == '+';
				max = q == '?' ? 1 : -1;
			} else if (q == '{') {
				x->p++;
				if (!rx_num(x, &min)) {
					rx_bad(x, "a bad {n,m} quantifier");
					return r;
				}
				max = min;
				if (x->p < x->end && *x->p == ',') {
					x->p++;
					if (!rx_num(x, &max))
						max = -1;
				}
				if (x->p >= x->end || *x->p != '}' || (max >= 0 && max < min)) {
					rx_bad(x, "a bad {n,m} quantifier");
					return r;
				}
				x->p++;
			}
			if (x->p < x->end && *x->p == '?')
				x->p++; /* lazy: same language */
		}
		/* A repeated part that can match nothing and repeats inside
		 * splits the same text in exponentially many ways, and the
		 * matcher follows them all at every byte. */
		if ((max < 0 || max > 1) && a_nul && a_quant) {
			rx_bad(x, "a repeated group that can match nothing and holds a "
			          "repetition itself, such as (a*)* or (a{0,9}){0,9}");
			return r;
		}
		seq_nul = seq_nul && (a_nul || min == 0);
		seq_quant = seq_quant || a_quant || !(min == 1 && max == 1);
		if (min == 1 && max == 1)
			ref(c, r, a);
		else
			ref(c, r, repeat(c, a, -1, min, max));
	}
	x->nul = seq_nul;
	x->quant = seq_quant;
	return r;
}

static int32_t rx_alt(rx *x)
{
	api__sc *c = x->c;
	int32_t r = rule(c);
	bool nul, quant;
	alt(c, r);
	ref(c, r, rx_seq(x));
	nul = x->nul;
	quant = x->quant;
	while (!x->bad && x->p < x->end && *x->p == '|') {
		x->p++;
		alt(c, r);
		ref(c, r, rx_seq(x));
		nul = nul || x->nul;
		quant = quant || x->quant;
	}
	x->nul = nul;
	x->quant = quant;
	return r;
}

/* "..." whose decoded text matches pattern (searched, as JSON Schema
 * says, unless anchored with ^ and $). */
static int32_t pattern_string(api__sc *c, const char *pat, size_t len, const char *ptr)
{
	rx x = {.c = c, .p = pat, .end = pat + len, .ptr = ptr};
	bool head = len > 0 && pat[0] == '^';
	/* a final $ anchors unless escaped: an odd run of backslashes before
	 * it (^\\$ is one backslash, then the end) */
	size_t bs = 0;
	while (len > 0 && bs + 1 < len && pat[len - 2 - bs] == '\\')
		bs++;
	bool tail = len > 0 && pat[len - 1] == '$' && bs % 2 == 0;
	int32_t body, r = rule(c), any = -1;
	if (head)
		x.p++;
	body = rx_alt(&x);
	if (!x.bad && x.p != x.end && !(tail && x.p + 1 == x.end))
		rx_bad(&x, "an unbalanced parenthesis");
	if (x.bad)
		return sc_fail(c, ptr, "pattern uses %s, which is not in the supported subset",
		               x.why);
	if (!head || !tail)
		any = repeat(c, chr(c, true), -1, 0, -1);
	lit(c, r, "\"");
	if (!head)
		ref(c, r, any);
	ref(c, r, body);
	if (!tail)
		ref(c, r, any);
	lit(c, r, "\"");
	return r;
}

/* Years 0001-9999: RFC 3339 allows 0000, but Python's datetime (pydantic)
 * and others refuse it. */
static const char *format_pattern(const char *f)
{
#define SC_DATE                                                                                    \
	"(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-((0[13578]|1[02])-(0[1-9]|[12][0-9]" \
	"|"                                                                                        \
	"3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))"
#define SC_TIME                                                                                    \
	"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][" \
	"0-9])"
#define SC_TIME_UTC "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?Z"
	if (strcmp(f, "date") == 0)
		return "^" SC_DATE "$";
	if (strcmp(f, "time") == 0)
		return "^" SC_TIME "$";
	/* date-time in UTC only: RFC 3339 allows offsets, but zod's default
	 * .datetime() (what the SDK's parse() checks with) refuses them. */
	if (strcmp(f, "date-time") == 0)
		return "^" SC_DATE "T" SC_TIME_UTC "$";
	if (strcmp(f, "uuid") == 0)
		return "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
	if (strcmp(f, "email") == 0)
		return "^[a-zA-Z0-9_+-]{1,32}(\\.[a-zA-Z0-9_+-]{1,32}){0,3}@([a-zA-Z0-9]{1,32}\\.){"
		       "1,"
		       "3}[a-zA-Z]{2,12}$";
	return NULL;
#undef SC_DATE
#undef SC_TIME
#undef SC_TIME_UTC
}

/* ---- Schema nodes ------------------------------------------------------------ */

static int32_t compile(api__sc *c, json_t *s, const char *ptr);

static bool get_count(json_t *s, const char *key, long long *out)
{
	json_t *v = json_object_get(s, key);
	if (!v)
		return false;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = json_integer_value(v);
		return true;
	}
	if (json_is_real(v) && json_real_value(v) >= 0 &&
	    json_real_value(v) == floor(json_real_value(v)) && json_real_value(v) < 1e15) {
		*out = (long long)json_real_value(v);
		return true;
	}
	*out = -2; /* present but bad */
	return true;
}

static int32_t literal_value(api__sc *c, json_t *v, int32_t r)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s) {
		c->failed = true;
		return r;
	}
	alt(c, r);
	lit(c, r, s);
	free(s);
	return r;
}

static int32_t string_schema(api__sc *c, json_t *s, const char *ptr)
{
	long long min = 0, max = -1;
	json_t *pat = json_object_get(s, "pattern"), *fmt = json_object_get(s, "format");
	bool has_min = get_count(s, "minLength", &min), has_max = get_count(s, "maxLength", &max);
	char p2[256];
	int32_t r, body;
	if (!has_min)
		min = 0;
	if (!has_max)
		max = -1;
	if (min == -2 || max == -2 || (max >= 0 && max < min)) {
		ptr_join(p2, sizeof p2, ptr, min == -2 ? "minLength" : "maxLength");
		return sc_fail(c, p2, "%s must be a count with minLength <= maxLength", "length");
	}
	if (pat || fmt) {
		const char *f;
		/* pattern wins over format when both are given (zod emits a
		 * precise pattern beside its format): it is the stricter. */
		if (pat && fmt)
			fmt = NULL;
		if (has_min || has_max) {
			ptr_join(p2, sizeof p2, ptr, pat ? "pattern" : "format");
			return sc_fail(c, p2, "%s cannot be combined with minLength/maxLength",
			               pat ? "pattern" : "format");
		}
		if (pat) {
			ptr_join(p2, sizeof p2, ptr, "pattern");
			if (!json_is_string(pat))
				return sc_fail(c, p2, "%s must be a string", "pattern");
			return pattern_string(c, json_string_value(pat), json_string_length(pat),
			                      p2);
		}
		ptr_join(p2, sizeof p2, ptr, "format");
		f = json_is_string(fmt) ? format_pattern(json_string_value(fmt)) : NULL;
		if (!f)
			return sc_fail(c, p2, "format '%s' is not supported",
			               json_is_string(fmt) ? json_string_value(fmt) : "?");
		return pattern_string(c, f, strlen(f), p2);
	}
	if (min > SC_MAX_REPEAT || (max >= 0 && max > SC_MAX_REPEAT)) {
		ptr_join(p2, sizeof p2, ptr, max > SC_MAX_REPEAT ? "maxLength" : "minLength");
		return sc_fail(c, p2, "%s above 4096 is not supported", "length");
	}
	if (min == 0 && max < 0)
		return string_any(c);
	body = repeat(c, chr(c, false), -1, min, max);
	r = rule(c);
	lit(c, r, "\"");
	ref(c, r, body);
	lit(c, r, "\"");
	return r;
}

/* Integers in [lo, hi] enumerated as literals: exact, and cheap for the
 * small ranges (ratings, ages, percentages) schemas use. */
static int32_t int_range(api__sc *c, long long lo, long long hi)
{
	int32_t r = rule(c);
	char buf[32];
	for (long long v = lo; v <= hi; v++) {
		snprintf(buf, sizeof buf, "%lld", v);
		alt(c, r);
		lit(c, r, buf);
	}
	return r;
}

/* Optional fraction: nothing, or '.' and 1..SC_FRAC_DIGITS digits. */
static int32_t frac_opt(api__sc *c, bool zeros)
{
	int32_t r = rule(c), d = rule(c);
	if (zeros)
		lit(c, d, "0");
	else
		mllm_gbuild_range(c->b, d, '0', '9');
	empty_alt(c, r);
	alt(c, r);
	lit(c, r, ".");
	ref(c, r, repeat(c, d, -1, 1, SC_FRAC_DIGITS));
	return r;
}

/* Unsigned decimals (no exponent) in the interval from a to b, integers
 * with 0 <= a <= b and b - a <= 1000, each end open or closed: the
 * integer parts a..b-1 with any fraction, a itself only with a non-zero
 * fraction when open, b only as b[.000] and only when closed. -1: no
 * value. */
static int32_t mag_range(api__sc *c, long long a, bool a_open, long long b, bool b_open)
{
	int32_t r = rule(c);
	bool any = false;
	long long first = a_open ? a + 1 : a;
	if (first <= b - 1) {
		alt(c, r);
		ref(c, r, int_range(c, first, b - 1));
		ref(c, r, frac_opt(c, false));
		any = true;
	}
	if (a_open && a < b) {
		/* a.000d…: a fraction with a non-zero digit. */
		char buf[32];
		int32_t z = rule(c), nz = rule(c);
		lit(c, z, "0");
		mllm_gbuild_range(c->b, nz, '1', '9');
		snprintf(buf, sizeof buf, "%lld.", a);
		alt(c, r);
		lit(c, r, buf);
		ref(c, r, repeat(c, z, -1, 0, SC_FRAC_DIGITS - 1));
		ref(c, r, nz);
		ref(c, r, digits(c, 0, SC_FRAC_DIGITS - 1));
		any = true;
	}
	if (!b_open && (!a_open || a < b)) {
		char buf[32];
		snprintf(buf, sizeof buf, "%lld", b);
		alt(c, r);
		lit(c, r, buf);
		ref(c, r, frac_opt(c, true));
		any = true;
	}
	return any ? r : -1;
}

/* Numbers between integer bounds lo and hi at most 1000 apart (zod's
 * .min(0).max(1), ratings, percentages), written without an exponent:
 * the negative part as '-' and a magnitude, the rest as a magnitude.
 * -1: no number lies between them. */
static int32_t real_range(api__sc *c, long long lo, bool lo_x, long long hi, bool hi_x)
{
	int32_t r = rule(c), m;
	bool any = false;
	if (lo < 0) {
		/* -x for x between max(0, -hi) and -lo; -0 only when 0 is in. */
		long long a = hi < 0 ? -hi : 0;
		bool a_open = hi < 0 ? hi_x : true;
		if ((m = mag_range(c, a, a_open, -lo, lo_x)) >= 0) {
			alt(c, r);
			lit(c, r, "-");
			ref(c, r, m);
			any = true;
		}
	}
	if (hi >= 0) {
		long long a = lo > 0 ? lo : 0;
		bool a_open = lo >= 0 ? lo_x : false;
		if ((m = mag_range(c, a, a_open, hi, hi_x)) >= 0) {
			alt(c, r);
			ref(c, r, m);
			any = true;
		}
	}
	return any ? r : -1;
}

static int32_t number_schema(api__sc *c, json_t *s, const char *ptr, bool integer)
{
	json_t *mn = json_object_get(s, "minimum"), *mx = json_object_get(s, "maximum");
	json_t *xmn = json_object_get(s, "exclusiveMinimum"),
	       *xmx = json_object_get(s, "exclusiveMaximum");
	double lo = -INFINITY, hi = INFINITY;
	bool lo_x = false, hi_x = false;
	char p2[256];
	if ((mn && !json_is_number(mn)) || (mx && !json_is_number(mx)) ||
	    (xmn && !json_is_number(xmn)) || (xmx && !json_is_number(xmx))) {
		ptr_join(p2, sizeof p2, ptr, "minimum");
		return sc_fail(c, p2, "%s must be numbers", "bounds");
	}
	if (mn)
		lo = json_number_value(mn);
	if (xmn && json_number_value(xmn) >= lo) {
		lo = json_number_value(xmn);
		lo_x = true;
	}
	if (mx)
		hi = json_number_value(mx);
	if (xmx && json_number_value(xmx) <= hi) {
		hi = json_number_value(xmx);
		hi_x = true;
	}
	/* Integers are generated with at most SC_INT_DIGITS digits: bounds
	 * beyond that (zod's ±2^53-1 for .int()) constrain nothing. */
	if (integer && lo <= -1e15 + 1)
		lo = -INFINITY;
	if (integer && hi >= 1e15 - 1)
		hi = INFINITY;
	if (lo == -INFINITY && hi == INFINITY)
		return number_rule(c, integer, false);
	if (integer && isfinite(lo) && isfinite(hi)) {
		long long a = (long long)ceil(lo), b = (long long)floor(hi);
		if (lo_x && (double)a == lo)
			a++;
		if (hi_x && (double)b == hi)
			b--;
		if (b >= a && b - a <= 1000)
			return int_range(c, a, b);
	}
	if (!integer && isfinite(lo) && isfinite(hi) && lo == floor(lo) && hi == floor(hi) &&
	    fabs(lo) < 1e15 && fabs(hi) < 1e15 && hi - lo <= 1000) {
		int32_t r = real_range(c, (long long)lo, lo_x, (long long)hi, hi_x);
		if (r >= 0)
			return r;
	}
	/* Non-negative, unbounded above: drop the sign (and the zero when the
	 * bound excludes it, for integers). */
	if (hi == INFINITY && (lo > 0 || (lo == 0 && !lo_x) || (integer && lo > -1 && lo_x))) {
		if (lo == 0 && !lo_x)
			return number_rule(c, integer, true);
		if (integer && lo <= 1 && (lo < 1 || !lo_x)) {
			int32_t r = rule(c);
			mllm_gbuild_range(c->b, r, '1', '9');
			ref(c, r, digits(c, 0, SC_INT_DIGITS - 1));
			return r;
		}
	}
	ptr_join(p2, sizeof p2, ptr,
	         mn || xmn ? (mn ? "minimum" : "exclusiveMinimum")
	                   : (mx ? "maximum" : "exclusiveMaximum"));
	return sc_fail(c, p2,
	               "this %s bound is not expressible (supported: integer bounds at "
	               "most 1000 apart, and minimum 0 or 1 without a maximum)",
	               integer ? "integer" : "number");
}

static int32_t array_schema(api__sc *c, json_t *s, const char *ptr)
{
	json_t *items = json_object_get(s, "items"), *prefix = json_object_get(s, "prefixItems");
	json_t *extra = json_object_get(s, "additionalItems");
	const char *tname = "prefixItems", *rname = "items";
	long long min = 0, max = -1, k = 0;
	char p2[256];
	int32_t item, r, sep;
	/* Draft-07's tuple (what converters targeting it write): items as an
	 * array is the prefix, additionalItems the rest. */
	if (json_is_array(items)) {
		if (prefix) {
			ptr_join(p2, sizeof p2, ptr, "items");
			return sc_fail(c, p2, "%s as an array beside prefixItems is not supported",
			               "items");
		}
		if (extra && !json_is_boolean(extra) && !json_is_object(extra)) {
			ptr_join(p2, sizeof p2, ptr, "additionalItems");
			return sc_fail(c, p2, "%s must be a boolean or a schema",
			               "additionalItems");
		}
		prefix = items;
		items = extra;
		tname = "items";
		rname = "additionalItems";
		if (json_array_size(prefix) == 0 && !items)
			items = json_true();
	}
	if (get_count(s, "minItems", &min) && min == -2)
		return sc_fail(c, ptr, "%s must be a non-negative integer", "minItems");
	if (!get_count(s, "maxItems", &max))
		max = -1;
	else if (max == -2 || max < min)
		return sc_fail(c, ptr, "%s must be a non-negative integer >= minItems", "maxItems");
	if (max > SC_MAX_REPEAT || min > SC_MAX_REPEAT) {
		ptr_join(p2, sizeof p2, ptr, max > SC_MAX_REPEAT ? "maxItems" : "minItems");
		return sc_fail(c, p2, "%s above 4096 is not supported", "counts");
	}
	if (prefix && !json_is_array(prefix)) {
		ptr_join(p2, sizeof p2, ptr, "prefixItems");
		return sc_fail(c, p2, "%s must be an array", "prefixItems");
	}
	if (!prefix || json_array_size(prefix) == 0) {
		if (items && json_is_false(items) && min > 0)
			return sc_fail(c, ptr,
			               "minItems above 0 with %s false (no item allowed) is not "
			               "satisfiable",
			               rname);
		if (items && json_is_false(items))
			item = -1;
		else if (items && !json_is_true(items)) {
			ptr_join(p2, sizeof p2, ptr, rname);
			item = compile(c, items, p2);
		} else {
			item = value_any(c);
		}
		if (c->failed)
			return -1;
		if (item < 0)
			max = 0;
		return array_of(c, item < 0 ? value_any(c) : item, item < 0 ? 0 : min,
		                item < 0 ? 0 : max);
	}
	/* Tuple: every prefix item in order, then (items) the rest. */
	k = (long long)json_array_size(prefix);
	if (max >= 0 && max < k)
		return sc_fail(c, ptr, "%s smaller than the tuple's item count is not supported",
		               "maxItems");
	r = rule(c);
	sep = rule(c);
	ref(c, sep, ws(c));
	lit(c, sep, ",");
	ref(c, sep, ws(c));
	lit(c, r, "[");
	ref(c, r, ws(c));
	for (long long i = 0; i < k; i++) {
		char p3[256];
		snprintf(p3, sizeof p3, "%s/%s/%lld", ptr, tname, i);
		if (i > 0)
			ref(c, r, sep);
		ref(c, r, compile(c, json_array_get(prefix, (size_t)i), p3));
		if (c->failed)
			return -1;
	}
	if (items && !json_is_false(items)) {
		long long rmin = min > k ? min - k : 0, rmax = max < 0 ? -1 : max - k;
		int32_t more = rule(c);
		ptr_join(p2, sizeof p2, ptr, rname);
		item = json_is_true(items) ? value_any(c) : compile(c, items, p2);
		if (c->failed)
			return -1;
		ref(c, more, sep);
		ref(c, more, item);
		ref(c, r, repeat(c, more, -1, rmin, rmax));
	} else if (min > k) {
		return sc_fail(c, ptr,
		               "%s larger than the tuple without more items is not satisfiable",
		               "minItems");
	}
	ref(c, r, ws(c));
	lit(c, r, "]");
	return r;
}

/* Properties in the schema's order; required ones always, optional ones
 * may be skipped. F[i]: the rest from i with nothing written yet; K[i]: the
 * rest from i after at least one (each then starts with a comma). */
static int32_t object_schema(api__sc *c, json_t *s, const char *ptr, bool strict)
{
	json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
	json_t *addl = json_object_get(s, "additionalProperties");
	size_t n = 0, i;
	const char *key;
	json_t *v;
	char p2[256];
	int32_t *kv, *req_flag, *F, *K, r = -1, sep;
	json_t *rset;
	(void)strict;
	if (props && !json_is_object(props)) {
		ptr_join(p2, sizeof p2, ptr, "properties");
		return sc_fail(c, p2, "%s must be an object", "properties");
	}
	if (req && !json_is_array(req)) {
		ptr_join(p2, sizeof p2, ptr, "required");
		return sc_fail(c, p2, "%s must be an array", "required");
	}
	if (addl && !json_is_boolean(addl) && !json_is_object(addl)) {
		ptr_join(p2, sizeof p2, ptr, "additionalProperties");
		return sc_fail(c, p2, "%s must be a boolean or a schema", "additionalProperties");
	}
	n = props ? json_object_size(props) : 0;
	for (i = 0; req && i < json_array_size(req); i++) {
		json_t *k = json_array_get(req, i);
		if (!json_is_string(k) || !props || !json_object_get(props, json_string_value(k))) {
			char p3[256];
			snprintf(p3, sizeof p3, "%s/required/%zu", ptr, i);
			return sc_fail(c, p3, "%s names a property not in 'properties'",
			               "required");
		}
	}
	if (n == 0) {
		/* No properties: free-form (or additionalProperties' schema). */
		if (addl && json_is_false(addl)) {
			r = rule(c);
			lit(c, r, "{");
			ref(c, r, ws(c));
			lit(c, r, "}");
			return r;
		}
		if (addl && json_is_object(addl)) {
			ptr_join(p2, sizeof p2, ptr, "additionalProperties");
			r = compile(c, addl, p2);
			if (c->failed)
				return -1;
			return object_of(c, r);
		}
		return api__sc_any_object(c);
	}
	kv = calloc(n, sizeof *kv);
	req_flag = calloc(n, sizeof *req_flag);
	F = calloc(n + 1, sizeof *F);
	K = calloc(n + 1, sizeof *K);
	if (!kv || !req_flag || !F || !K) {
		free(kv);
		free(req_flag);
		free(F);
		free(K);
		c->failed = true;
		return api_error_set(c->e, 503, NULL, "overloaded", "Out of memory."), -1;
	}
	/* The required names as a set: one lookup per property, not a scan
	 * of the list (thousands of properties compiled in quadratic time). */
	rset = json_object();
	for (size_t k = 0; req && k < json_array_size(req); k++)
		json_object_set_new(rset, json_string_value(json_array_get(req, k)), json_true());
	i = 0;
	json_object_foreach(props, key, v)
	{
		char *qk;
		json_t *ks = json_string(key);
		char p1[256];
		ptr_join(p1, sizeof p1, ptr, "properties");
		ptr_join(p2, sizeof p2, p1, key);
		kv[i] = rule(c);
		qk = json_dumps(ks, JSON_ENCODE_ANY);
		json_decref(ks);
		if (qk) {
			lit(c, kv[i], qk);
			free(qk);
		}
		ref(c, kv[i], ws(c));
		lit(c, kv[i], ":");
		ref(c, kv[i], ws(c));
		ref(c, kv[i], compile(c, v, p2));
		req_flag[i] = json_object_get(rset, key) != NULL;
		if (c->failed)
			break;
		i++;
	}
	if (!c->failed) {
		sep = rule(c);
		ref(c, sep, ws(c));
		lit(c, sep, ",");
		ref(c, sep, ws(c));
		F[n] = rule(c);
		empty_alt(c, F[n]);
		K[n] = F[n];
		for (size_t j = n; j-- > 0;) {
			K[j] = rule(c);
			alt(c, K[j]);
			ref(c, K[j], sep);
			ref(c, K[j], kv[j]);
			ref(c, K[j], K[j + 1]);
			if (!req_flag[j]) {
				alt(c, K[j]);
				ref(c, K[j], K[j + 1]);
			}
			F[j] = rule(c);
			alt(c, F[j]);
			ref(c, F[j], kv[j]);
			ref(c, F[j], K[j + 1]);
			if (!req_flag[j]) {
				alt(c, F[j]);
				ref(c, F[j], F[j + 1]);
			}
		}
		r = rule(c);
		lit(c, r, "{");
		ref(c, r, ws(c));
		ref(c, r, F[0]);
		ref(c, r, ws(c));
		lit(c, r, "}");
	}
	json_decref(rset);
	free(kv);
	free(req_flag);
	free(F);
	free(K);
	return c->failed ? -1 : r;
}

static int32_t resolve_ref(api__sc *c, json_t *refv, const char *ptr)
{
	const char *s = json_string_value(refv);
	json_t *t = c->doc;
	char seg[256], p2[256];
	int32_t r;
	ptr_join(p2, sizeof p2, ptr, "$ref");
	if (!s || s[0] != '#')
		return sc_fail(c, p2, "$ref '%s' must be a local reference ('#...')",
		               s ? s : "(not a string)");
	for (int i = 0; i < c->n_refs; i++)
		if (c->refs[i].doc == c->doc && strcmp(c->refs[i].ref, s) == 0)
			return c->refs[i].rule;
	for (const char *p = s + 1; *p && t;) {
		size_t n = 0;
		if (*p != '/')
			return sc_fail(c, p2, "$ref '%s' is not a JSON pointer", s);
		p++;
		while (*p && *p != '/' && n + 1 < sizeof seg) {
			if (p[0] == '~' && (p[1] == '0' || p[1] == '1')) {
				seg[n++] = p[1] == '0' ? '~' : '/';
				p += 2;
			} else {
				seg[n++] = *p++;
			}
		}
		seg[n] = '\0';
		if (json_is_array(t))
			t = json_array_get(t, (size_t)strtoul(seg, NULL, 10));
		else
			t = json_object_get(t, seg);
	}
	if (!t)
		return sc_fail(c, p2, "$ref '%s' points at nothing", s);
	if (c->n_refs >= SC_MAX_REFS)
		return sc_fail(c, p2, "more than 256 distinct %s targets", "$ref");
	/* Declared before compiling so that recursion refers to it. */
	r = rule(c);
	c->refs[c->n_refs++] = (sc_ref){.ref = xstrdup(s), .doc = c->doc, .rule = r};
	{
		int32_t body = compile(c, t, s);
		if (c->failed)
			return -1;
		ref(c, r, body);
	}
	return r;
}

static const char *const ignored_keys[] = {
    "description", "title",    "$schema",   "$id",   "$comment",    "default", "examples",
    "deprecated",  "readOnly", "writeOnly", "$defs", "definitions", "strict",  NULL};

static const char *const known_keys[] = {"type",
                                         "properties",
                                         "required",
                                         "additionalProperties",
                                         "enum",
                                         "const",
                                         "anyOf",
                                         "oneOf",
                                         "allOf",
                                         "$ref",
                                         "items",
                                         "prefixItems",
                                         "additionalItems",
                                         "propertyNames",
                                         "minItems",
                                         "maxItems",
                                         "minLength",
                                         "maxLength",
                                         "pattern",
                                         "format",
                                         "minimum",
                                         "maximum",
                                         "exclusiveMinimum",
                                         "exclusiveMaximum",
                                         "nullable",
                                         NULL};

static bool in_list(const char *const *l, const char *k)
{
	for (; *l; l++)
		if (strcmp(*l, k) == 0)
			return true;
	return false;
}

static int32_t type_rule(api__sc *c, json_t *s, const char *t, const char *ptr)
{
	if (strcmp(t, "object") == 0)
		return object_schema(c, s, ptr, true);
	if (strcmp(t, "array") == 0)
		return array_schema(c, s, ptr);
	if (strcmp(t, "string") == 0)
		return string_schema(c, s, ptr);
	if (strcmp(t, "number") == 0)
		return number_schema(c, s, ptr, false);
	if (strcmp(t, "integer") == 0)
		return number_schema(c, s, ptr, true);
	if (strcmp(t, "boolean") == 0) {
		int32_t r = rule(c);
		alt(c, r);
		lit(c, r, "true");
		alt(c, r);
		lit(c, r, "false");
		return r;
	}
	if (strcmp(t, "null") == 0) {
		int32_t r = rule(c);
		lit(c, r, "null");
		return r;
	}
	{
		char p2[256];
		ptr_join(p2, sizeof p2, ptr, "type");
		return sc_fail(c, p2, "unknown type '%s'", t);
	}
}

static int32_t compile_body(api__sc *c, json_t *s, const char *ptr);

static int32_t compile_inner(api__sc *c, json_t *s, const char *ptr)
{
	const char *key;
	json_t *v, *r_v;
	char p2[256];
	int32_t r, body;

	if (json_is_true(s) || (json_is_object(s) && json_object_size(s) == 0))
		return value_any(c);
	if (!json_is_object(s))
		return sc_fail(c, ptr, "a schema must be an object or true (%s)",
		               "got another type");
	json_object_foreach(s, key, v)
	{
		if (in_list(ignored_keys, key) || in_list(known_keys, key))
			continue;
		ptr_join(p2, sizeof p2, ptr, key);
		return sc_fail(c, p2, "unsupported JSON Schema keyword '%s'", key);
	}
	/* propertyNames: every JSON key is a string already, so only the
	 * schemas that say no more than that (what zod's record converts to)
	 * are accepted; a constraint on the names is not enforced. */
	v = json_object_get(s, "propertyNames");
	if (v && !json_is_true(v)) {
		bool trivial = json_is_object(v);
		json_object_foreach(v, key, r_v)
		{
			trivial = trivial && (in_list(ignored_keys, key) ||
			                      (strcmp(key, "type") == 0 && json_is_string(r_v) &&
			                       strcmp(json_string_value(r_v), "string") == 0));
		}
		if (!trivial) {
			ptr_join(p2, sizeof p2, ptr, "propertyNames");
			return sc_fail(c, p2,
			               "%s is supported only as true, {} or {\"type\": \"string\"}",
			               "propertyNames");
		}
	}
	v = json_object_get(s, "nullable");
	if (v && !json_is_boolean(v)) {
		ptr_join(p2, sizeof p2, ptr, "nullable");
		return sc_fail(c, p2, "%s must be true or false", "nullable");
	}
	body = compile_body(c, s, ptr);
	if (!json_is_true(v) || c->failed)
		return body;
	/* OpenAPI 3.0's nullable (the OpenAI SDK's zod helper writes
	 * .nullable() so): the schema's values or null. */
	r = rule(c);
	alt(c, r);
	ref(c, r, body);
	alt(c, r);
	lit(c, r, "null");
	return r;
}

/* The JSON Schema type names a value has ("integer" also for a real with
 * an integral value, which is "number" too). */
static bool value_has_type(const json_t *x, const char *t)
{
	if (strcmp(t, "number") == 0)
		return json_is_number(x);
	if (strcmp(t, "integer") == 0)
		return json_is_integer(x) ||
		       (json_is_real(x) && json_real_value(x) == floor(json_real_value(x)));
	if (strcmp(t, "string") == 0)
		return json_is_string(x);
	if (strcmp(t, "boolean") == 0)
		return json_is_boolean(x);
	if (strcmp(t, "null") == 0)
		return json_is_null(x);
	if (strcmp(t, "object") == 0)
		return json_is_object(x);
	return strcmp(t, "array") == 0 && json_is_array(x);
}

/* The keywords beside a const/enum/anyOf/oneOf/allOf/$ref that the value
 * would have to obey too: the grammar follows only the one keyword, so
 * rather than ignore them silently (outputs that fail validation), such a
 * schema is refused. const/enum may sit beside "type" when every value has
 * it. Returns 0, or fails. */
static int check_siblings(api__sc *c, json_t *s, const char *kw, const char *ptr)
{
	const char *key;
	json_t *v, *type = json_object_get(s, "type");
	char p2[256];
	bool lits = strcmp(kw, "const") == 0 || strcmp(kw, "enum") == 0;
	json_object_foreach(s, key, v)
	{
		if (strcmp(key, kw) == 0 || strcmp(key, "nullable") == 0 ||
		    in_list(ignored_keys, key) || (lits && strcmp(key, "type") == 0))
			continue;
		/* anyOf/oneOf side by side are the same branch list's spelling. */
		char what[96];
		snprintf(what, sizeof what, "'%s' beside '%s'", key, kw);
		ptr_join(p2, sizeof p2, ptr, key);
		sc_fail(c, p2, "%s is not supported (put it inside the branches, or drop it)",
		        what);
		return -1;
	}
	if (lits && type) {
		json_t *vals = strcmp(kw, "const") == 0 ? NULL : json_object_get(s, "enum");
		json_t *one = strcmp(kw, "const") == 0 ? json_object_get(s, "const") : NULL;
		size_t n = vals ? json_array_size(vals) : 1;
		for (size_t i = 0; i < n; i++) {
			json_t *x = vals ? json_array_get(vals, i) : one;
			/* OpenAPI's nullable adds null to whatever type says. */
			bool ok = json_is_null(x) && json_is_true(json_object_get(s, "nullable"));
			if (json_is_string(type)) {
				ok = ok || value_has_type(x, json_string_value(type));
			} else {
				size_t k;
				json_t *t;
				json_array_foreach(type, k, t) ok =
				    ok ||
				    (json_is_string(t) && value_has_type(x, json_string_value(t)));
			}
			if (!ok) {
				ptr_join(p2, sizeof p2, ptr, kw);
				sc_fail(c, p2,
				        "%s holds a value whose type is not the schema's 'type'",
				        kw);
				return -1;
			}
		}
	}
	return 0;
}

/* Keywords that constrain one type only; without a "type" the value could
 * be of any type while these went unenforced, so they need one. */
static const char *const typed_keys[] = {
    "minLength",        "maxLength",        "pattern",  "format",   "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", NULL};

/* The schema s (an object whose keywords are known) without nullable. */
static int32_t compile_body(api__sc *c, json_t *s, const char *ptr)
{
	json_t *v, *type, *any;
	char p2[256];
	int32_t r;
	static const char *const exclusive[] = {"$ref",  "const", "enum", "anyOf",
	                                        "oneOf", "allOf", NULL};
	for (const char *const *k = exclusive; *k; k++) {
		if (!json_object_get(s, *k))
			continue;
		if (check_siblings(c, s, *k, ptr) != 0)
			return -1;
		break;
	}
	if (!json_object_get(s, "type")) {
		const char *key;
		json_t *x;
		/* An exclusive keyword decides, or the type is inferred from
		 * properties/items (other types' keywords are then vacuous). */
		bool listed = json_object_get(s, "properties") || json_object_get(s, "items") ||
		              json_object_get(s, "prefixItems") ||
		              json_object_get(s, "additionalProperties");
		for (const char *const *k = exclusive; *k; k++)
			listed = listed || json_object_get(s, *k) != NULL;
		json_object_foreach(s, key, x)
		{
			if (listed || !in_list(typed_keys, key))
				continue;
			ptr_join(p2, sizeof p2, ptr, key);
			return sc_fail(c, p2,
			               "'%s' needs a 'type' beside it (it constrains one type "
			               "only)",
			               key);
		}
	}

	if ((v = json_object_get(s, "$ref")) != NULL)
		return resolve_ref(c, v, ptr);
	if ((v = json_object_get(s, "const")) != NULL)
		return literal_value(c, v, rule(c));
	if ((v = json_object_get(s, "enum")) != NULL) {
		size_t i;
		json_t *x;
		ptr_join(p2, sizeof p2, ptr, "enum");
		if (!json_is_array(v) || json_array_size(v) == 0)
			return sc_fail(c, p2, "%s must be a non-empty array", "enum");
		r = rule(c);
		json_array_foreach(v, i, x) literal_value(c, x, r);
		return r;
	}
	any = json_object_get(s, "anyOf");
	if (!any)
		any = json_object_get(s, "oneOf");
	if (!any && (v = json_object_get(s, "allOf")) != NULL) {
		ptr_join(p2, sizeof p2, ptr, "allOf");
		if (!json_is_array(v) || json_array_size(v) != 1)
			return sc_fail(c, p2, "%s is supported with exactly one schema", "allOf");
		strncat(p2, "/0", sizeof p2 - strlen(p2) - 1);
		return compile(c, json_array_get(v, 0), p2);
	}
	if (any) {
		size_t i;
		json_t *x;
		const char *kw = json_object_get(s, "anyOf") ? "anyOf" : "oneOf";
		ptr_join(p2, sizeof p2, ptr, kw);
		if (!json_is_array(any) || json_array_size(any) == 0)
			return sc_fail(c, p2, "%s must be a non-empty array", kw);
		r = rule(c);
		json_array_foreach(any, i, x)
		{
			char p3[300];
			int32_t a;
			snprintf(p3, sizeof p3, "%s/%zu", p2, i);
			a = compile(c, x, p3);
			if (c->failed)
				return -1;
			alt(c, r);
			ref(c, r, a);
		}
		return r;
	}
	type = json_object_get(s, "type");
	if (!type) {
		/* No type: infer from the keywords, else any value. */
		if (json_object_get(s, "properties") || json_object_get(s, "additionalProperties"))
			return object_schema(c, s, ptr, true);
		if (json_object_get(s, "items") || json_object_get(s, "prefixItems"))
			return array_schema(c, s, ptr);
		return value_any(c);
	}
	if (json_is_string(type))
		return type_rule(c, s, json_string_value(type), ptr);
	if (json_is_array(type) && json_array_size(type) > 0) {
		size_t i;
		json_t *x;
		r = rule(c);
		json_array_foreach(type, i, x)
		{
			int32_t a;
			if (!json_is_string(x)) {
				ptr_join(p2, sizeof p2, ptr, "type");
				return sc_fail(c, p2, "%s must hold type names", "type");
			}
			a = type_rule(c, s, json_string_value(x), ptr);
			if (c->failed)
				return -1;
			alt(c, r);
			ref(c, r, a);
		}
		return r;
	}
	ptr_join(p2, sizeof p2, ptr, "type");
	return sc_fail(c, p2, "%s must be a type name or a list of them", "type");
}

static int32_t compile(api__sc *c, json_t *s, const char *ptr)
{
	int32_t r;
	if (c->failed)
		return -1;
	if (++c->depth > SC_MAX_DEPTH) {
		c->depth--;
		return sc_fail(c, ptr, "schema nested deeper than %s levels", "64");
	}
	r = compile_inner(c, s, ptr);
	c->depth--;
	return c->failed ? -1 : r;
}

/* ---- Entry points --------------------------------------------------------------- */

api__sc *api__sc_create(void)
{
	api__sc *c = xcalloc(1, sizeof *c);
	if (mllm_gbuild_create(&c->b)) {
		free(c);
		return NULL;
	}
	c->ws = c->chr = c->dotchr = c->str = c->num = c->integer = c->value = -1;
	c->object_any = c->array_any = -1;
	return c;
}

void api__sc_free(api__sc *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->n_refs; i++)
		free(c->refs[i].ref);
	mllm_gbuild_free(c->b);
	free(c);
}

mllm_gbuild *api__sc_builder(api__sc *c)
{
	return c->b;
}

int32_t api__sc_ws(api__sc *c)
{
	return ws(c);
}

int32_t api__sc_schema(api__sc *c, json_t *doc, json_t *schema, const char *param, api_error *e)
{
	int32_t r;
	/* $ref targets are per document (each tool's parameters are one):
	 * the limit counts one document's, not every tool's together. */
	if (c->doc != doc) {
		for (int i = 0; i < c->n_refs; i++)
			free(c->refs[i].ref);
		c->n_refs = 0;
	}
	c->doc = doc;
	c->param = param;
	c->e = e;
	c->failed = false;
	c->depth = 0;
	r = compile(c, schema, "#");
	if (c->failed && e->status == 0)
		api_error_set(e, 400, param, "unsupported_schema",
		              "The schema is too large to compile.");
	return c->failed ? -1 : r;
}

int api__sc_finish(api__sc *c, int32_t value, const char *param, mllm_grammar **out, api_error *e)
{
	char err[160];
	int32_t root = rule(c);
	int rc;
	ref(c, root, ws(c));
	ref(c, root, value);
	rc = mllm_gbuild_finish(c->b, root, out, err, sizeof err);
	if (rc == MLLM_ENOMEM)
		return api_error_set(e, 503, NULL, "overloaded", "Out of memory for the grammar.");
	if (rc)
		return api_error_set(e, 400, param, "unsupported_schema",
		                     "The schema cannot be compiled: %s.", err);
	return 0;
}
