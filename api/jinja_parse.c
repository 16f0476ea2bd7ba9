/*
 * jinja_parse.c — template text to tree: a lexer that applies jinja2's
 * whitespace rules (trim_blocks, lstrip_blocks, "-"/"+" markers) while it
 * cuts the text, then a recursive-descent parser with jinja2's operator
 * precedence. Everything is done once per model, at load; the evaluator
 * never sees raw template text. Nodes are recorded in one array so a
 * failed parse frees them all without walking a half-built tree, and the
 * nesting depth is bounded so a hostile template cannot exhaust the stack.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

#define PARSE_MAX_DEPTH 200

typedef enum {
	TK_TEXT,
	TK_VAR_BEGIN,
	TK_VAR_END,
	TK_BLOCK_BEGIN,
	TK_BLOCK_END,
	TK_NAME,
	TK_STRING,
	TK_INT,
	TK_FLOAT,
	TK_OP,
	TK_EOF,
} tk_kind;

typedef struct {
	tk_kind k;
	int line, col;
	char *s; /* owned: text, name or decoded string */
	size_t n;
	char op[4];
	long long ival;
	double fval;
} tok;

typedef struct {
	const char *src;
	size_t len, pos;
	int line, col;
	tok *toks;
	size_t n_toks, cap_toks;
	char *err;
	size_t errlen;
	int rc;
} lexer;

typedef struct {
	api_jinja *t;
	tok *toks;
	size_t n_toks, i;
	int depth;
	int loop_depth;
	char *err;
	size_t errlen;
	int rc;
} parser;

/* ---- lexer ------------------------------------------------------------- */

static int lex_fail(lexer *lx, int code, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int lex_fail(lexer *lx, int code, int line, int col, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (lx->rc == 0)
		lx->rc = mllm__seterr(lx->err, lx->errlen, code, "line %d, column %d: %s", line,
		                      col, msg);
	return lx->rc;
}

/* Moves the cursor to pos, counting lines and columns (in bytes). */
static void lex_advance(lexer *lx, size_t to)
{
	while (lx->pos < to) {
		if (lx->src[lx->pos] == '\n') {
			lx->line++;
			lx->col = 1;
		} else {
			lx->col++;
		}
		lx->pos++;
	}
}

static tok *lex_push(lexer *lx, tk_kind k)
{
	tok *t;
	if (lx->n_toks == lx->cap_toks) {
		lx->cap_toks = lx->cap_toks ? lx->cap_toks * 2 : 64;
		lx->toks = xrealloc(lx->toks, lx->cap_toks * sizeof *lx->toks);
	}
	t = &lx->toks[lx->n_toks++];
	memset(t, 0, sizeof *t);
	t->k = k;
	t->line = lx->line;
	t->col = lx->col;
	return t;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void lex_text(lexer *lx, size_t from, size_t to, int line, int col)
{
	tok *t;
	if (to <= from)
		return;
	t = lex_push(lx, TK_TEXT);
	t->line = line;
	t->col = col;
	t->s = xstrndup(lx->src + from, to - from);
	t->n = to - from;
}

/* After a tag's closing delimiter: "-" eats all whitespace, "+" nothing,
 * otherwise trim_blocks eats one newline (block and comment tags only).
 * Returns 1 when what was eaten ends with a newline (jinja2's
 * "line_starting" for lstrip_blocks). */
static int lex_after_tag(lexer *lx, char sign, int is_block)
{
	size_t p = lx->pos;
	if (sign == '-') {
		while (p < lx->len && is_ws(lx->src[p]))
			p++;
	} else if (sign != '+' && is_block) {
		if (p + 1 < lx->len && lx->src[p] == '\r' && lx->src[p + 1] == '\n')
			p += 2;
		else if (p < lx->len && (lx->src[p] == '\n' || lx->src[p] == '\r'))
			p++;
	}
	lex_advance(lx, p);
	return p > 0 && lx->src[p - 1] == '\n';
}

/* A quoted string at lx->pos with Python's escapes; unknown escapes keep
 * their backslash, as Python does. */
static int lex_string(lexer *lx)
{
	char q = lx->src[lx->pos];
	size_t p = lx->pos + 1, o = 0;
	char *s;
	tok *t;
	int line = lx->line, col = lx->col;
	while (p < lx->len && lx->src[p] != q) {
		if (lx->src[p] == '\\' && p + 1 < lx->len)
			p++;
		p++;
	}
	if (p >= lx->len)
		return lex_fail(lx, MLLM_EFORMAT, line, col, "unterminated string");
	s = xmalloc(p - lx->pos + 1);
	for (size_t i = lx->pos + 1; i < p; i++) {
		char c = lx->src[i];
		uint32_t cp;
		int nhex = 0;
		if (c != '\\') {
			s[o++] = c;
			continue;
		}
		c = lx->src[++i];
		/* Python's one-character escapes, then \x \u \U. */
		static const char from[] = "ntrfvba0\\'\"";
		static const char to[] = "\n\t\r\f\v\b\a\0\\'\"";
		const char *hit = c ? strchr(from, c) : NULL;
		if (hit)
			s[o++] = to[hit - from];
		else if (c == 'x' || c == 'u' || c == 'U')
			nhex = c == 'x' ? 2 : c == 'u' ? 4 : 8;
		else if (c != '\n') { /* backslash-newline: a line continuation */
			s[o++] = '\\';
			s[o++] = c;
		}
		if (nhex) {
			if (i + (size_t)nhex >= p ||
			    mllm_hex_decode(lx->src + i + 1, nhex, &cp) != 0 || cp > 0x10FFFF ||
			    (cp >= 0xD800 && cp <= 0xDFFF)) {
				free(s);
				return lex_fail(lx, MLLM_EFORMAT, line, col,
				                "bad \\%c escape in string", c);
			}
			/* The escape is at most 10 bytes, its UTF-8 at most 4. */
			o += mllm_utf8_put(s + o, cp);
			i += (size_t)nhex;
		}
	}
	s[o] = '\0';
	t = lex_push(lx, TK_STRING);
	t->line = line;
	t->col = col;
	t->s = s;
	t->n = o;
	lex_advance(lx, p + 1);
	return 0;
}

static int lex_number(lexer *lx)
{
	size_t p = lx->pos;
	int is_float = 0;
	char buf[128];
	size_t o = 0;
	tok *t;
	while (p < lx->len) {
		char c = lx->src[p];
		if ((c >= '0' && c <= '9') || c == '_') {
			p++;
		} else if (c == '.' && !is_float && p + 1 < lx->len && lx->src[p + 1] >= '0' &&
		           lx->src[p + 1] <= '9') {
			is_float = 1;
			p++;
		} else if ((c == 'e' || c == 'E') && p + 1 < lx->len &&
		           ((lx->src[p + 1] >= '0' && lx->src[p + 1] <= '9') ||
		            ((lx->src[p + 1] == '+' || lx->src[p + 1] == '-') && p + 2 < lx->len &&
		             lx->src[p + 2] >= '0' && lx->src[p + 2] <= '9'))) {
			is_float = 1;
			p += 2;
		} else {
			break;
		}
	}
	for (size_t i = lx->pos; i < p; i++) {
		if (lx->src[i] == '_')
			continue;
		if (o + 1 >= sizeof buf)
			return lex_fail(lx, MLLM_EFORMAT, lx->line, lx->col, "number too long");
		buf[o++] = lx->src[i];
	}
	buf[o] = '\0';
	t = lex_push(lx, is_float ? TK_FLOAT : TK_INT);
	errno = 0;
	if (is_float) {
		t->fval = strtod(buf, NULL);
	} else {
		t->ival = strtoll(buf, NULL, 10);
		if (errno == ERANGE)
			return lex_fail(lx, MLLM_EUNSUPPORTED, lx->line, lx->col,
			                "integer literal out of range");
	}
	lex_advance(lx, p);
	return 0;
}

static const char *const ops[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*",
                                  "/",  "%",  "~",  "<",  ">",  "=",  ".", ",", ":",
                                  "|",  "(",  ")",  "[",  "]",  "{",  "}"};

/* Lexes the inside of a {{ }} or {% %} tag up to and including its end.
 * Returns the end's whitespace sign ('-', '+' or 0) through *sign. */
static int lex_tag(lexer *lx, int is_block, char *sign)
{
	int depth = 0;
	int line = lx->line, col = lx->col;
	for (;;) {
		char c;
		while (lx->pos < lx->len && is_ws(lx->src[lx->pos]))
			lex_advance(lx, lx->pos + 1);
		if (lx->pos >= lx->len)
			return lex_fail(lx, MLLM_EFORMAT, line, col, "unclosed tag");
		if (depth == 0) {
			const char *p = lx->src + lx->pos;
			size_t rest = lx->len - lx->pos;
			const char *close = is_block ? "%}" : "}}";
			char s = 0;
			if (rest >= 3 && (p[0] == '-' || (p[0] == '+' && is_block)) &&
			    memcmp(p + 1, close, 2) == 0)
				s = p[0];
			if (s || (rest >= 2 && memcmp(p, close, 2) == 0)) {
				lex_push(lx, is_block ? TK_BLOCK_END : TK_VAR_END);
				lex_advance(lx, lx->pos + (s ? 3 : 2));
				*sign = s;
				return 0;
			}
		}
		c = lx->src[lx->pos];
		if (c == '\'' || c == '"') {
			if (lex_string(lx) != 0)
				return lx->rc;
		} else if (c >= '0' && c <= '9') {
			if (lex_number(lx) != 0)
				return lx->rc;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
			size_t p = lx->pos;
			tok *t;
			while (p < lx->len &&
			       ((lx->src[p] >= 'a' && lx->src[p] <= 'z') ||
			        (lx->src[p] >= 'A' && lx->src[p] <= 'Z') ||
			        (lx->src[p] >= '0' && lx->src[p] <= '9') || lx->src[p] == '_'))
				p++;
			t = lex_push(lx, TK_NAME);
			t->s = xstrndup(lx->src + lx->pos, p - lx->pos);
			t->n = p - lx->pos;
			lex_advance(lx, p);
		} else {
			size_t k;
			for (k = 0; k < sizeof ops / sizeof ops[0]; k++) {
				size_t n = strlen(ops[k]);
				if (lx->len - lx->pos >= n &&
				    memcmp(lx->src + lx->pos, ops[k], n) == 0)
					break;
			}
			if (k == sizeof ops / sizeof ops[0])
				return lex_fail(lx, MLLM_EFORMAT, lx->line, lx->col,
				                "unexpected character '%c'", c);
			tok *t = lex_push(lx, TK_OP);
			memcpy(t->op, ops[k], strlen(ops[k]) + 1);
			if (strchr("([{", ops[k][0]))
				depth++;
			else if (strchr(")]}", ops[k][0]) && depth > 0)
				depth--;
			lex_advance(lx, lx->pos + strlen(ops[k]));
		}
	}
}

/* After "{% raw %}": everything up to "{% endraw %}" is text. */
static int lex_raw(lexer *lx, int *line_starting)
{
	size_t p = lx->pos;
	int line = lx->line, col = lx->col;
	for (;;) {
		const char *hit = NULL;
		size_t q, text_end;
		char lsign = 0, rsign = 0;
		for (size_t i = p; i + 1 < lx->len; i++) {
			if (lx->src[i] == '{' && lx->src[i + 1] == '%') {
				hit = lx->src + i;
				break;
			}
		}
		if (!hit)
			return lex_fail(lx, MLLM_EFORMAT, line, col, "raw block without endraw");
		q = (size_t)(hit - lx->src) + 2;
		if (q < lx->len && (lx->src[q] == '-' || lx->src[q] == '+'))
			lsign = lx->src[q++];
		while (q < lx->len && is_ws(lx->src[q]))
			q++;
		if (lx->len - q < 6 || memcmp(lx->src + q, "endraw", 6) != 0) {
			p = (size_t)(hit - lx->src) + 2;
			continue;
		}
		q += 6;
		while (q < lx->len && is_ws(lx->src[q]))
			q++;
		if (q < lx->len && (lx->src[q] == '-' || lx->src[q] == '+'))
			rsign = lx->src[q++];
		if (lx->len - q < 2 || memcmp(lx->src + q, "%}", 2) != 0) {
			p = (size_t)(hit - lx->src) + 2;
			continue;
		}
		text_end = (size_t)(hit - lx->src);
		if (lsign == '-') {
			while (text_end > lx->pos && is_ws(lx->src[text_end - 1]))
				text_end--;
		} else if (lsign != '+') {
			size_t l = text_end;
			while (l > lx->pos && lx->src[l - 1] != '\n')
				l--;
			if ((l > lx->pos || *line_starting) && l < text_end) {
				size_t k = l;
				while (k < text_end && is_ws(lx->src[k]))
					k++;
				if (k == text_end)
					text_end = l;
			}
		}
		lex_text(lx, lx->pos, text_end, line, col);
		lex_advance(lx, q + 2);
		*line_starting = lex_after_tag(lx, rsign, 1);
		return 0;
	}
}

static int lex_all(lexer *lx)
{
	int line_starting = 1;
	while (lx->pos < lx->len) {
		size_t p = lx->pos, tag = lx->len, text_end;
		char kind = 0, sign = 0;
		int line = lx->line, col = lx->col;
		for (size_t i = p; i + 1 < lx->len; i++) {
			char c = lx->src[i + 1];
			if (lx->src[i] == '{' && (c == '{' || c == '%' || c == '#')) {
				tag = i;
				kind = c;
				break;
			}
		}
		text_end = tag;
		if (tag < lx->len && tag + 2 < lx->len &&
		    (lx->src[tag + 2] == '-' || (lx->src[tag + 2] == '+' && kind != '{')))
			sign = lx->src[tag + 2];
		if (tag < lx->len) {
			if (sign == '-') {
				while (text_end > p && is_ws(lx->src[text_end - 1]))
					text_end--;
			} else if (sign != '+' && kind != '{') {
				/* lstrip_blocks: blanks between a line start and
				 * a block or comment tag go. */
				size_t l = text_end;
				while (l > p && lx->src[l - 1] != '\n')
					l--;
				if ((l > p || line_starting) && l < text_end) {
					size_t k = l;
					while (k < text_end && is_ws(lx->src[k]))
						k++;
					if (k == text_end)
						text_end = l;
				}
			}
		}
		lex_text(lx, p, text_end, line, col);
		if (tag >= lx->len) {
			lex_advance(lx, lx->len);
			break;
		}
		lex_advance(lx, tag);
		line = lx->line;
		col = lx->col;
		lex_advance(lx, tag + 2 + (sign ? 1 : 0));
		if (kind == '#') {
			size_t q = lx->pos;
			char rs = 0;
			while (q + 1 < lx->len && !(lx->src[q] == '#' && lx->src[q + 1] == '}'))
				q++;
			if (q + 1 >= lx->len)
				return lex_fail(lx, MLLM_EFORMAT, line, col, "unclosed comment");
			if (q > lx->pos && (lx->src[q - 1] == '-' || lx->src[q - 1] == '+'))
				rs = lx->src[q - 1];
			lex_advance(lx, q + 2);
			line_starting = lex_after_tag(lx, rs, 1);
			continue;
		}
		size_t first = lx->n_toks;
		tok *b = lex_push(lx, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN);
		b->line = line;
		b->col = col;
		char end_sign = 0;
		if (lex_tag(lx, kind == '%', &end_sign) != 0)
			return lx->rc;
		line_starting = lex_after_tag(lx, end_sign, kind == '%');
		if (kind == '%' && lx->n_toks == first + 3 && lx->toks[first + 1].k == TK_NAME &&
		    strcmp(lx->toks[first + 1].s, "raw") == 0) {
			free(lx->toks[first + 1].s);
			lx->n_toks = first;
			if (lex_raw(lx, &line_starting) != 0)
				return lx->rc;
		}
	}
	lex_push(lx, TK_EOF);
	return 0;
}

/* ---- parser ------------------------------------------------------------ */

static int pfail(parser *ps, int code, const tok *t, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int pfail(parser *ps, int code, const tok *t, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (ps->rc == 0)
		ps->rc = mllm__seterr(ps->err, ps->errlen, code, "line %d, column %d: %s", t->line,
		                      t->col, msg);
	return ps->rc;
}

static jnode *node(parser *ps, jn_kind k, const tok *at)
{
	api_jinja *t = ps->t;
	jnode *n = xcalloc(1, sizeof *n);
	n->kind = k;
	n->line = at->line;
	n->col = at->col;
	if (t->n_nodes == t->cap_nodes) {
		t->cap_nodes = t->cap_nodes ? t->cap_nodes * 2 : 64;
		t->nodes = xrealloc(t->nodes, t->cap_nodes * sizeof *t->nodes);
	}
	t->nodes[t->n_nodes++] = n;
	return n;
}

static void add_kid(jnode *n, jnode *kid, const char *kw)
{
	n->kids = xrealloc(n->kids, (size_t)(n->n_kids + 1) * sizeof *n->kids);
	if (kw && !n->kw) {
		/* the first keyword: earlier arguments were positional */
		n->kw = xcalloc((size_t)n->n_kids + 1, sizeof *n->kw);
	} else if (n->kw) {
		n->kw = xrealloc(n->kw, (size_t)(n->n_kids + 1) * sizeof *n->kw);
	}
	if (n->kw)
		n->kw[n->n_kids] = kw ? xstrdup(kw) : NULL;
	n->kids[n->n_kids++] = kid;
}

static void add_name(jnode *n, const char *name)
{
	n->names = xrealloc(n->names, (size_t)(n->n_names + 1) * sizeof *n->names);
	n->names[n->n_names++] = xstrdup(name);
}

static tok *cur(parser *ps)
{
	return &ps->toks[ps->i];
}

static tok *next(parser *ps)
{
	tok *t = &ps->toks[ps->i];
	if (t->k != TK_EOF)
		ps->i++;
	return t;
}

static int is_op(const tok *t, const char *op)
{
	return t->k == TK_OP && strcmp(t->op, op) == 0;
}

static int is_name(const tok *t, const char *name)
{
	return t->k == TK_NAME && strcmp(t->s, name) == 0;
}

/* What a message says of t: quoted where it is the token's own text. buf
 * holds a quoted name or operator. */
static const char *tok_desc_buf(const tok *t, char *buf, size_t cap)
{
	switch (t->k) {
	case TK_TEXT:
		return "text";
	case TK_VAR_BEGIN:
		return "'{{'";
	case TK_VAR_END:
		return "'}}'";
	case TK_BLOCK_BEGIN:
		return "'{%'";
	case TK_BLOCK_END:
		return "'%}'";
	case TK_NAME:
		snprintf(buf, cap, "'%.64s'", t->s);
		return buf;
	case TK_STRING:
		return "a string";
	case TK_INT:
	case TK_FLOAT:
		return "a number";
	case TK_OP:
		snprintf(buf, cap, "'%.16s'", t->op);
		return buf;
	case TK_EOF:
		return "the end of the template";
	}
	return "?";
}

#define tok_desc(t) tok_desc_buf((t), (char[80]){0}, 80)

static int expect_op(parser *ps, const char *op)
{
	tok *t = cur(ps);
	if (!is_op(t, op))
		return pfail(ps, MLLM_EFORMAT, t, "expected '%s', found %s", op, tok_desc(t));
	next(ps);
	return 0;
}

static int expect_kind(parser *ps, tk_kind k, const char *what)
{
	tok *t = cur(ps);
	if (t->k != k)
		return pfail(ps, MLLM_EFORMAT, t, "expected %s, found %s", what, tok_desc(t));
	next(ps);
	return 0;
}

static jnode *parse_expr(parser *ps, int with_cond);
static jnode *parse_unary(parser *ps, int with_filter);
static jnode *parse_or(parser *ps);

static int enter(parser *ps)
{
	if (++ps->depth > PARSE_MAX_DEPTH) {
		pfail(ps, MLLM_EUNSUPPORTED, cur(ps), "nesting deeper than %d levels",
		      PARSE_MAX_DEPTH);
		return -1;
	}
	return 0;
}

/* "(a, b=c)" after the "(": fills n's kids / kw. */
static int parse_call_args(parser *ps, jnode *n)
{
	if (expect_op(ps, "(") != 0)
		return ps->rc;
	while (!is_op(cur(ps), ")")) {
		tok *t = cur(ps);
		jnode *v;
		char *kw = NULL;
		if (n->n_kids > 0 && expect_op(ps, ",") != 0)
			return ps->rc;
		if (is_op(cur(ps), ")"))
			break;
		t = cur(ps);
		if (is_op(t, "*") || is_op(t, "**"))
			return pfail(ps, MLLM_EUNSUPPORTED, t,
			             "*args and **kwargs are not supported");
		if (t->k == TK_NAME && is_op(&ps->toks[ps->i + 1], "=")) {
			kw = t->s;
			next(ps);
			next(ps);
		} else if (n->kw) {
			for (int k = 0; k < n->n_kids; k++) {
				if (n->kw[k])
					return pfail(
					    ps, MLLM_EFORMAT, t,
					    "positional argument after a keyword argument");
			}
		}
		v = parse_expr(ps, 1);
		if (!v)
			return ps->rc;
		add_kid(n, v, kw);
	}
	next(ps);
	return 0;
}

static jnode *parse_subscript(parser *ps, jnode *obj)
{
	tok *at = cur(ps);
	jnode *parts[3] = {NULL, NULL, NULL};
	int n_colons = 0;
	next(ps); /* "[" */
	for (;;) {
		tok *t = cur(ps);
		if (is_op(t, "]"))
			break;
		if (is_op(t, ":")) {
			if (++n_colons > 2)
				return pfail(ps, MLLM_EFORMAT, t, "too many ':' in a slice"), NULL;
			next(ps);
			continue;
		}
		if (parts[n_colons])
			return pfail(ps, MLLM_EUNSUPPORTED, t, "expected ':' or ']', found %s",
			             tok_desc(t)),
			       NULL;
		parts[n_colons] = parse_expr(ps, 1);
		if (!parts[n_colons])
			return NULL;
	}
	next(ps);
	if (n_colons == 0) {
		jnode *n;
		if (!parts[0])
			return pfail(ps, MLLM_EFORMAT, at, "empty subscript"), NULL;
		n = node(ps, JN_INDEX, at);
		n->a = obj;
		n->b = parts[0];
		return n;
	}
	jnode *n = node(ps, JN_SLICE, at);
	n->a = obj;
	n->b = parts[0];
	n->c = parts[1];
	n->d = parts[2];
	return n;
}

static jnode *parse_postfix(parser *ps, jnode *n)
{
	for (;;) {
		tok *t = cur(ps);
		if (is_op(t, ".")) {
			tok *a;
			next(ps);
			a = cur(ps);
			if (a->k == TK_NAME) {
				jnode *x = node(ps, JN_ATTR, t);
				x->a = n;
				x->str = xstrdup(a->s);
				x->len = a->n;
				n = x;
			} else if (a->k == TK_INT) {
				jnode *x = node(ps, JN_INDEX, t);
				jnode *i = node(ps, JN_INT, a);
				i->ival = a->ival;
				x->a = n;
				x->b = i;
				n = x;
			} else {
				return pfail(ps, MLLM_EFORMAT, a, "expected a name after '.'"),
				       NULL;
			}
			next(ps);
		} else if (is_op(t, "[")) {
			n = parse_subscript(ps, n);
			if (!n)
				return NULL;
		} else if (is_op(t, "(")) {
			jnode *x = node(ps, JN_CALL, t);
			x->a = n;
			if (parse_call_args(ps, x) != 0)
				return NULL;
			n = x;
		} else {
			return n;
		}
	}
}

static jnode *parse_filter(parser *ps, jnode *value, tok *at)
{
	tok *t = cur(ps);
	jnode *f;
	if (t->k != TK_NAME)
		return pfail(ps, MLLM_EFORMAT, t, "expected a filter name"), NULL;
	if (!api__jinja_filter_known(t->s))
		return pfail(ps, MLLM_EUNSUPPORTED, t, "unsupported filter '%s'", t->s), NULL;
	f = node(ps, JN_FILTER, at);
	f->a = value;
	f->str = xstrdup(t->s);
	f->len = t->n;
	next(ps);
	if (is_op(cur(ps), "(") && parse_call_args(ps, f) != 0)
		return NULL;
	return f;
}

static jnode *parse_filter_expr(parser *ps, jnode *n)
{
	for (;;) {
		tok *t = cur(ps);
		if (is_op(t, "|")) {
			next(ps);
			n = parse_filter(ps, n, t);
			if (!n)
				return NULL;
		} else if (is_name(t, "is")) {
			jnode *x = node(ps, JN_TEST, t);
			tok *name;
			next(ps);
			if (is_name(cur(ps), "not")) {
				x->op = 1;
				next(ps);
			}
			name = cur(ps);
			if (name->k != TK_NAME)
				return pfail(ps, MLLM_EFORMAT, name, "expected a test name"), NULL;
			if (!api__jinja_test_known(name->s))
				return pfail(ps, MLLM_EUNSUPPORTED, name, "unsupported test '%s'",
				             name->s),
				       NULL;
			x->a = n;
			x->str = xstrdup(name->s);
			x->len = name->n;
			next(ps);
			t = cur(ps);
			if (is_op(t, "(")) {
				if (parse_call_args(ps, x) != 0)
					return NULL;
			} else if ((t->k == TK_NAME || t->k == TK_STRING || t->k == TK_INT ||
			            t->k == TK_FLOAT || is_op(t, "[") || is_op(t, "{")) &&
			           !is_name(t, "else") && !is_name(t, "or") && !is_name(t, "and") &&
			           !is_name(t, "if") && !is_name(t, "in") && !is_name(t, "not") &&
			           !is_name(t, "recursive")) {
				jnode *arg;
				if (is_name(t, "is"))
					return pfail(ps, MLLM_EFORMAT, t,
					             "tests cannot be chained"),
					       NULL;
				arg = parse_unary(ps, 0);
				if (!arg)
					return NULL;
				add_kid(x, arg, NULL);
			}
			n = x;
		} else if (is_op(t, "(")) {
			jnode *x = node(ps, JN_CALL, t);
			x->a = n;
			if (parse_call_args(ps, x) != 0)
				return NULL;
			n = x;
		} else {
			return n;
		}
	}
}

static jnode *parse_primary(parser *ps)
{
	tok *t = cur(ps);
	jnode *n;
	switch (t->k) {
	case TK_NAME:
		if (!strcmp(t->s, "true") || !strcmp(t->s, "True") || !strcmp(t->s, "false") ||
		    !strcmp(t->s, "False")) {
			n = node(ps, JN_BOOL, t);
			n->ival = t->s[0] == 't' || t->s[0] == 'T';
		} else if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) {
			n = node(ps, JN_NONE, t);
		} else {
			n = node(ps, JN_NAME, t);
			n->str = xstrdup(t->s);
			n->len = t->n;
		}
		next(ps);
		return n;
	case TK_STRING: {
		/* Adjacent strings concatenate, as in Python. */
		mllm_buf b;
		mllm_buf_init(&b, (size_t)-1);
		n = node(ps, JN_STR, t);
		while (cur(ps)->k == TK_STRING) {
			tok *s = next(ps);
			if (mllm_buf_append(&b, s->s, s->n) != 0) {
				mllm_buf_free(&b);
				return pfail(ps, MLLM_ENOMEM, s, "string too long"), NULL;
			}
		}
		n->len = b.len;
		n->str = b.data ? mllm_buf_take(&b, NULL) : xstrdup("");
		return n;
	}
	case TK_INT:
		n = node(ps, JN_INT, t);
		n->ival = t->ival;
		next(ps);
		return n;
	case TK_FLOAT:
		n = node(ps, JN_FLOAT, t);
		n->fval = t->fval;
		next(ps);
		return n;
	case TK_OP:
		if (is_op(t, "(")) {
			next(ps);
			if (is_op(cur(ps), ")")) {
				next(ps);
				return node(ps, JN_TUPLE, t);
			}
			n = parse_expr(ps, 1);
			if (!n)
				return NULL;
			if (is_op(cur(ps), ",")) {
				jnode *tu = node(ps, JN_TUPLE, t);
				add_kid(tu, n, NULL);
				while (is_op(cur(ps), ",")) {
					next(ps);
					if (is_op(cur(ps), ")"))
						break;
					n = parse_expr(ps, 1);
					if (!n)
						return NULL;
					add_kid(tu, n, NULL);
				}
				n = tu;
			}
			if (expect_op(ps, ")") != 0)
				return NULL;
			return n;
		}
		if (is_op(t, "[") || is_op(t, "{")) {
			int is_dict = is_op(t, "{");
			const char *close = is_dict ? "}" : "]";
			n = node(ps, is_dict ? JN_DICT : JN_LIST, t);
			next(ps);
			while (!is_op(cur(ps), close)) {
				jnode *v;
				if (n->n_kids > 0 && expect_op(ps, ",") != 0)
					return NULL;
				if (is_op(cur(ps), close))
					break;
				v = parse_expr(ps, 1);
				if (!v)
					return NULL;
				add_kid(n, v, NULL);
				if (is_dict) {
					if (expect_op(ps, ":") != 0)
						return NULL;
					v = parse_expr(ps, 1);
					if (!v)
						return NULL;
					add_kid(n, v, NULL);
				}
			}
			next(ps);
			return n;
		}
		break;
	default:
		break;
	}
	return pfail(ps, MLLM_EFORMAT, t, "unexpected %s", tok_desc(t)), NULL;
}

static jnode *parse_unary(parser *ps, int with_filter)
{
	tok *t = cur(ps);
	jnode *n;
	if (enter(ps) != 0)
		return NULL;
	if (is_op(t, "-") || is_op(t, "+")) {
		next(ps);
		n = node(ps, JN_UNARY, t);
		n->op = t->op[0];
		n->a = parse_unary(ps, 0);
		if (!n->a)
			return NULL;
	} else {
		n = parse_primary(ps);
		if (!n)
			return NULL;
	}
	n = parse_postfix(ps, n);
	if (n && with_filter)
		n = parse_filter_expr(ps, n);
	ps->depth--;
	return n;
}

static jnode *binary(parser *ps, tok *at, int op, jnode *a, jnode *b)
{
	jnode *n = node(ps, JN_BINARY, at);
	n->op = op;
	n->a = a;
	n->b = b;
	return n;
}

static jnode *parse_pow(parser *ps)
{
	jnode *n = parse_unary(ps, 1);
	while (n && is_op(cur(ps), "**")) {
		tok *t = next(ps);
		jnode *r = parse_unary(ps, 1);
		if (!r)
			return NULL;
		n = binary(ps, t, JOP_POW, n, r);
	}
	return n;
}

static jnode *parse_math2(parser *ps)
{
	jnode *n = parse_pow(ps);
	while (n) {
		tok *t = cur(ps);
		int op = is_op(t, "*")    ? JOP_MUL
		         : is_op(t, "/")  ? JOP_DIV
		         : is_op(t, "//") ? JOP_FLOORDIV
		         : is_op(t, "%")  ? JOP_MOD
		                          : 0;
		jnode *r;
		if (!op)
			break;
		next(ps);
		r = parse_pow(ps);
		if (!r)
			return NULL;
		n = binary(ps, t, op, n, r);
	}
	return n;
}

static jnode *parse_concat(parser *ps)
{
	jnode *n = parse_math2(ps);
	while (n && is_op(cur(ps), "~")) {
		tok *t = next(ps);
		jnode *r = parse_math2(ps);
		if (!r)
			return NULL;
		n = binary(ps, t, JOP_CONCAT, n, r);
	}
	return n;
}

static jnode *parse_math1(parser *ps)
{
	jnode *n = parse_concat(ps);
	while (n && (is_op(cur(ps), "+") || is_op(cur(ps), "-"))) {
		tok *t = next(ps);
		jnode *r = parse_concat(ps);
		if (!r)
			return NULL;
		n = binary(ps, t, t->op[0] == '+' ? JOP_ADD : JOP_SUB, n, r);
	}
	return n;
}

static jnode *parse_compare(parser *ps)
{
	jnode *n = parse_math1(ps);
	while (n) {
		tok *t = cur(ps);
		int op = is_op(t, "==")     ? JOP_EQ
		         : is_op(t, "!=")   ? JOP_NE
		         : is_op(t, "<")    ? JOP_LT
		         : is_op(t, "<=")   ? JOP_LE
		         : is_op(t, ">")    ? JOP_GT
		         : is_op(t, ">=")   ? JOP_GE
		         : is_name(t, "in") ? JOP_IN
		                            : 0;
		jnode *r;
		if (!op && is_name(t, "not") && is_name(&ps->toks[ps->i + 1], "in")) {
			op = JOP_NOTIN;
			next(ps);
		}
		if (!op)
			break;
		next(ps);
		r = parse_math1(ps);
		if (!r)
			return NULL;
		n = binary(ps, t, op, n, r);
	}
	return n;
}

static jnode *parse_not(parser *ps)
{
	tok *t = cur(ps);
	if (is_name(t, "not")) {
		jnode *n = node(ps, JN_UNARY, t);
		next(ps);
		if (enter(ps) != 0)
			return NULL;
		n->op = '!';
		n->a = parse_not(ps);
		ps->depth--;
		return n->a ? n : NULL;
	}
	return parse_compare(ps);
}

static jnode *parse_and(parser *ps)
{
	jnode *n = parse_not(ps);
	while (n && is_name(cur(ps), "and")) {
		tok *t = next(ps);
		jnode *x = node(ps, JN_AND, t);
		x->a = n;
		x->b = parse_not(ps);
		if (!x->b)
			return NULL;
		n = x;
	}
	return n;
}

static jnode *parse_or(parser *ps)
{
	jnode *n = parse_and(ps);
	while (n && is_name(cur(ps), "or")) {
		tok *t = next(ps);
		jnode *x = node(ps, JN_OR, t);
		x->a = n;
		x->b = parse_and(ps);
		if (!x->b)
			return NULL;
		n = x;
	}
	return n;
}

static jnode *parse_expr(parser *ps, int with_cond)
{
	jnode *n;
	if (enter(ps) != 0)
		return NULL;
	n = parse_or(ps);
	while (n && with_cond && is_name(cur(ps), "if")) {
		tok *t = next(ps);
		jnode *x = node(ps, JN_COND, t);
		x->a = n;
		x->b = parse_or(ps);
		if (!x->b)
			return NULL;
		if (is_name(cur(ps), "else")) {
			next(ps);
			x->c = parse_expr(ps, 1);
			if (!x->c)
				return NULL;
		}
		n = x;
	}
	ps->depth--;
	return n;
}

/* "a" or "a, b": an expression, or a tuple of them without parentheses. */
static jnode *parse_tuple(parser *ps, int with_cond)
{
	tok *at = cur(ps);
	jnode *n = parse_expr(ps, with_cond);
	if (!n || !is_op(cur(ps), ","))
		return n;
	jnode *tu = node(ps, JN_TUPLE, at);
	add_kid(tu, n, NULL);
	while (is_op(cur(ps), ",")) {
		next(ps);
		if (cur(ps)->k == TK_BLOCK_END || cur(ps)->k == TK_VAR_END)
			break;
		n = parse_expr(ps, with_cond);
		if (!n)
			return NULL;
		add_kid(tu, n, NULL);
	}
	return tu;
}

/* ---- statements -------------------------------------------------------- */

static jnode *parse_body(parser *ps, const char *const *until, const tok *opener);

static int end_tag(parser *ps)
{
	return expect_kind(ps, TK_BLOCK_END, "'%}'");
}

static int parse_targets(parser *ps, jnode *n)
{
	do {
		tok *t = cur(ps);
		if (n->n_names > 0)
			next(ps); /* "," */
		t = cur(ps);
		if (t->k != TK_NAME)
			return pfail(ps, MLLM_EFORMAT, t, "expected a variable name, found %s",
			             tok_desc(t));
		add_name(n, t->s);
		next(ps);
	} while (is_op(cur(ps), ","));
	return 0;
}

static jnode *parse_if(parser *ps, tok *at)
{
	static const char *const until[] = {"elif", "else", "endif", NULL};
	static const char *const until_end[] = {"endif", NULL};
	jnode *n = node(ps, JN_IF, at);
	tok *t;
	n->a = parse_tuple(ps, 1);
	if (!n->a || end_tag(ps) != 0)
		return NULL;
	n->b = parse_body(ps, until, at);
	if (!n->b)
		return NULL;
	t = next(ps);
	if (is_name(t, "elif")) {
		n->c = parse_if(ps, t);
		return n->c ? n : NULL;
	}
	if (is_name(t, "else")) {
		if (end_tag(ps) != 0)
			return NULL;
		n->c = parse_body(ps, until_end, at);
		if (!n->c)
			return NULL;
		next(ps);
	}
	return end_tag(ps) == 0 ? n : NULL;
}

static jnode *parse_for(parser *ps, tok *at)
{
	static const char *const until[] = {"else", "endfor", NULL};
	static const char *const until_end[] = {"endfor", NULL};
	jnode *n = node(ps, JN_FOR, at);
	tok *t;
	if (parse_targets(ps, n) != 0)
		return NULL;
	if (!is_name(cur(ps), "in"))
		return pfail(ps, MLLM_EFORMAT, cur(ps), "expected 'in'"), NULL;
	next(ps);
	n->a = parse_tuple(ps, 0);
	if (!n->a)
		return NULL;
	if (is_name(cur(ps), "if")) {
		next(ps);
		n->d = parse_expr(ps, 1);
		if (!n->d)
			return NULL;
	}
	if (is_name(cur(ps), "recursive"))
		return pfail(ps, MLLM_EUNSUPPORTED, cur(ps), "recursive loops are not supported"),
		       NULL;
	if (end_tag(ps) != 0)
		return NULL;
	ps->loop_depth++;
	n->b = parse_body(ps, until, at);
	ps->loop_depth--;
	if (!n->b)
		return NULL;
	t = next(ps);
	if (is_name(t, "else")) {
		if (end_tag(ps) != 0)
			return NULL;
		n->c = parse_body(ps, until_end, at);
		if (!n->c)
			return NULL;
		next(ps);
	}
	return end_tag(ps) == 0 ? n : NULL;
}

static jnode *parse_set(parser *ps, tok *at)
{
	static const char *const until[] = {"endset", NULL};
	tok *t = cur(ps);
	jnode *n;
	if (t->k != TK_NAME)
		return pfail(ps, MLLM_EFORMAT, t, "expected a variable name"), NULL;
	if (is_op(&ps->toks[ps->i + 1], ".")) {
		tok *attr = &ps->toks[ps->i + 2];
		if (attr->k != TK_NAME)
			return pfail(ps, MLLM_EFORMAT, attr, "expected an attribute name"), NULL;
		n = node(ps, JN_SET_ATTR, at);
		n->str = xstrdup(t->s);
		n->len = t->n;
		add_name(n, attr->s);
		ps->i += 3;
		if (expect_op(ps, "=") != 0)
			return NULL;
		n->a = parse_tuple(ps, 1);
		return n->a && end_tag(ps) == 0 ? n : NULL;
	}
	if (ps->toks[ps->i + 1].k == TK_BLOCK_END) {
		n = node(ps, JN_SET_BLOCK, at);
		n->str = xstrdup(t->s);
		n->len = t->n;
		ps->i += 2;
		n->b = parse_body(ps, until, at);
		if (!n->b)
			return NULL;
		next(ps);
		return end_tag(ps) == 0 ? n : NULL;
	}
	if (is_op(&ps->toks[ps->i + 1], "|"))
		return pfail(ps, MLLM_EUNSUPPORTED, t, "filtered block set is not supported"), NULL;
	n = node(ps, JN_SET, at);
	if (parse_targets(ps, n) != 0)
		return NULL;
	if (expect_op(ps, "=") != 0)
		return NULL;
	n->a = parse_tuple(ps, 1);
	return n->a && end_tag(ps) == 0 ? n : NULL;
}

/* "name(a, b=default)" for macro and call blocks: fills names and kids. */
static int parse_params(parser *ps, jnode *n)
{
	if (expect_op(ps, "(") != 0)
		return ps->rc;
	while (!is_op(cur(ps), ")")) {
		tok *t;
		jnode *def = NULL;
		if (n->n_names > 0 && expect_op(ps, ",") != 0)
			return ps->rc;
		t = cur(ps);
		if (t->k != TK_NAME)
			return pfail(ps, MLLM_EFORMAT, t, "expected a parameter name");
		next(ps);
		if (is_op(cur(ps), "=")) {
			next(ps);
			def = parse_expr(ps, 1);
			if (!def)
				return ps->rc;
		}
		add_name(n, t->s);
		add_kid(n, def, NULL);
	}
	next(ps);
	return 0;
}

static jnode *parse_macro(parser *ps, tok *at)
{
	static const char *const until[] = {"endmacro", NULL};
	tok *t = cur(ps);
	jnode *n = node(ps, JN_MACRO, at);
	int saved = ps->loop_depth;
	if (t->k != TK_NAME)
		return pfail(ps, MLLM_EFORMAT, t, "expected a macro name"), NULL;
	n->str = xstrdup(t->s);
	n->len = t->n;
	next(ps);
	if (parse_params(ps, n) != 0 || end_tag(ps) != 0)
		return NULL;
	ps->loop_depth = 0;
	n->b = parse_body(ps, until, at);
	ps->loop_depth = saved;
	if (!n->b)
		return NULL;
	next(ps);
	if (cur(ps)->k == TK_NAME && strcmp(cur(ps)->s, n->str) == 0)
		next(ps);
	return end_tag(ps) == 0 ? n : NULL;
}

static jnode *parse_call_block(parser *ps, tok *at)
{
	static const char *const until[] = {"endcall", NULL};
	jnode *n = node(ps, JN_CALLBLOCK, at);
	int saved = ps->loop_depth;
	if (is_op(cur(ps), "(") && parse_params(ps, n) != 0)
		return NULL;
	n->a = parse_expr(ps, 1);
	if (!n->a)
		return NULL;
	if (n->a->kind != JN_CALL)
		return pfail(ps, MLLM_EFORMAT, at, "expected a macro call"), NULL;
	if (end_tag(ps) != 0)
		return NULL;
	ps->loop_depth = 0;
	n->b = parse_body(ps, until, at);
	ps->loop_depth = saved;
	if (!n->b)
		return NULL;
	next(ps);
	return end_tag(ps) == 0 ? n : NULL;
}

static jnode *parse_filter_block(parser *ps, tok *at)
{
	static const char *const until[] = {"endfilter", NULL};
	jnode *n = node(ps, JN_FILTERBLOCK, at);
	jnode *chain = NULL;
	do {
		tok *t = cur(ps);
		if (chain)
			next(ps); /* "|" */
		chain = parse_filter(ps, chain, t);
		if (!chain)
			return NULL;
	} while (is_op(cur(ps), "|"));
	n->a = chain;
	if (end_tag(ps) != 0)
		return NULL;
	n->b = parse_body(ps, until, at);
	if (!n->b)
		return NULL;
	next(ps);
	return end_tag(ps) == 0 ? n : NULL;
}

static jnode *parse_statement(parser *ps)
{
	static const char *const until_gen[] = {"endgeneration", NULL};
	tok *at = cur(ps);
	tok *t;
	jnode *n;
	next(ps); /* "{%" */
	t = next(ps);
	if (t->k != TK_NAME)
		return pfail(ps, MLLM_EFORMAT, t, "expected a statement, found %s", tok_desc(t)),
		       NULL;
	if (!strcmp(t->s, "if"))
		return parse_if(ps, t);
	if (!strcmp(t->s, "for"))
		return parse_for(ps, t);
	if (!strcmp(t->s, "set"))
		return parse_set(ps, t);
	if (!strcmp(t->s, "macro"))
		return parse_macro(ps, t);
	if (!strcmp(t->s, "call"))
		return parse_call_block(ps, t);
	if (!strcmp(t->s, "filter"))
		return parse_filter_block(ps, t);
	if (!strcmp(t->s, "break") || !strcmp(t->s, "continue")) {
		if (ps->loop_depth == 0)
			return pfail(ps, MLLM_EFORMAT, t, "'%s' outside a loop", t->s), NULL;
		n = node(ps, t->s[0] == 'b' ? JN_BREAK : JN_CONTINUE, t);
		return end_tag(ps) == 0 ? n : NULL;
	}
	if (!strcmp(t->s, "generation")) {
		/* transformers' AssistantTracker: marks assistant text for
		 * masks; rendering just emits the body. */
		if (end_tag(ps) != 0)
			return NULL;
		n = parse_body(ps, until_gen, at);
		if (!n)
			return NULL;
		next(ps);
		return end_tag(ps) == 0 ? n : NULL;
	}
	return pfail(ps, MLLM_EUNSUPPORTED, t, "unsupported tag '%s'", t->s), NULL;
}

/* Statements until a "{% name %}" with name in until (NULL-terminated;
 * until == NULL: the end of the template). Stops with the cursor on that
 * name token. */
static jnode *parse_body(parser *ps, const char *const *until, const tok *opener)
{
	jnode *body = node(ps, JN_BODY, cur(ps));
	if (enter(ps) != 0)
		return NULL;
	for (;;) {
		tok *t = cur(ps);
		jnode *n = NULL;
		if (t->k == TK_EOF) {
			if (until)
				return pfail(ps, MLLM_EFORMAT, opener,
				             "'%s' is never closed (missing '%s')",
				             opener->k == TK_NAME ? opener->s : "block", until[0]),
				       NULL;
			break;
		}
		if (t->k == TK_TEXT) {
			n = node(ps, JN_TEXT, t);
			n->str = t->s;
			n->len = t->n;
			t->s = NULL;
			next(ps);
		} else if (t->k == TK_VAR_BEGIN) {
			next(ps);
			n = node(ps, JN_OUTPUT, t);
			n->a = parse_tuple(ps, 1);
			if (!n->a || expect_kind(ps, TK_VAR_END, "'}}'") != 0)
				return NULL;
		} else if (t->k == TK_BLOCK_BEGIN) {
			tok *name = &ps->toks[ps->i + 1];
			if (name->k == TK_NAME && until) {
				int hit = 0;
				for (int k = 0; until[k]; k++)
					hit |= !strcmp(name->s, until[k]);
				if (hit) {
					ps->i++;
					break;
				}
			}
			if (name->k == TK_NAME &&
			    (!strncmp(name->s, "end", 3) || !strcmp(name->s, "else") ||
			     !strcmp(name->s, "elif")))
				return pfail(ps, MLLM_EFORMAT, name, "unexpected '%s'", name->s),
				       NULL;
			n = parse_statement(ps);
			if (!n)
				return NULL;
		} else {
			return pfail(ps, MLLM_EFORMAT, t, "unexpected %s", tok_desc(t)), NULL;
		}
		add_kid(body, n, NULL);
	}
	ps->depth--;
	return body;
}

void api_jinja_free(api_jinja *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_nodes; i++) {
		jnode *n = t->nodes[i];
		free(n->str);
		for (int k = 0; k < n->n_kids && n->kw; k++)
			free(n->kw[k]);
		free(n->kw);
		free(n->kids);
		for (int k = 0; k < n->n_names; k++)
			free(n->names[k]);
		free(n->names);
		free(n);
	}
	free(t->nodes);
	free(t->src);
	free(t);
}

static int parse_text(const char *src, size_t len, api_jinja **out, char *err, size_t errlen)
{
	lexer lx = {.src = src, .len = len, .line = 1, .col = 1, .err = err, .errlen = errlen};
	parser ps = {.err = err, .errlen = errlen};
	api_jinja *t;
	int rc;
	*out = NULL;
	if (lex_all(&lx) != 0) {
		rc = lx.rc;
		goto fail_lex;
	}
	t = xcalloc(1, sizeof *t);
	ps.t = t;
	ps.toks = lx.toks;
	ps.n_toks = lx.n_toks;
	t->root = parse_body(&ps, NULL, &lx.toks[0]);
	if (!t->root) {
		rc = ps.rc ? ps.rc : MLLM_EFORMAT;
		api_jinja_free(t);
		goto fail_lex;
	}
	t->src = xstrndup(src, len);
	t->src_len = len;
	for (size_t i = 0; i < lx.n_toks; i++)
		free(lx.toks[i].s);
	free(lx.toks);
	*out = t;
	return 0;

fail_lex:
	for (size_t i = 0; i < lx.n_toks; i++)
		free(lx.toks[i].s);
	free(lx.toks);
	return rc;
}

/* jinja2 reads "\r\n" and "\r" as "\n" and drops one newline at the
 * very end (keep_trailing_newline is off in transformers). */
static char *normalize_newlines(const char *src, size_t len, size_t *out_len)
{
	char *s = xmalloc(len + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (src[i] == '\r') {
			s[o++] = '\n';
			if (i + 1 < len && src[i + 1] == '\n')
				i++;
		} else {
			s[o++] = src[i];
		}
	}
	if (o > 0 && s[o - 1] == '\n')
		o--;
	s[o] = '\0';
	*out_len = o;
	return s;
}

int api_jinja_parse(const char *src, size_t len, api_jinja **out, char *err, size_t errlen)
{
	size_t n;
	char *text = normalize_newlines(src, len, &n);
	int rc = parse_text(text, n, out, err, errlen);
	free(text);
	return rc;
}

int api_jinja_mentions(const api_jinja *t, const char *s)
{
	return t && t->src && memmem(t->src, t->src_len, s, strlen(s)) != NULL;
}
