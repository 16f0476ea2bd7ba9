/*
 * jinja_internal.h — the template tree shared by the parser (jinja_parse.c),
 * the evaluator (jinja_eval.c) and the Python-value helpers (jinja_value.c).
 *
 * One node type for expressions and statements keeps the parser and the
 * evaluator a pair of switch statements. Nodes hold C data only (no json_t),
 * so a parsed tree is shared by threads without reference counting.
 */
#ifndef API_JINJA_INTERNAL_H
#define API_JINJA_INTERNAL_H

#include <stdbool.h>

#include "jinja.h"

typedef enum {
	/* expressions */
	JN_STR,    /* str/len */
	JN_INT,    /* ival */
	JN_FLOAT,  /* fval */
	JN_BOOL,   /* ival 0/1 */
	JN_NONE,   /* none */
	JN_NAME,   /* str */
	JN_ATTR,   /* a.str */
	JN_INDEX,  /* a[b] */
	JN_SLICE,  /* a[b:c:d], each of b c d may be NULL */
	JN_CALL,   /* a(kids), kw[i] names keyword arguments */
	JN_FILTER, /* a | str(kids) */
	JN_TEST,   /* a is [not] str(kids); op = 1 when negated */
	JN_LIST,   /* [kids] */
	JN_TUPLE,  /* (kids) */
	JN_DICT,   /* {kids[0]: kids[1], ...} */
	JN_UNARY,  /* op a: '!' not, '-' neg, '+' pos */
	JN_BINARY, /* a op b, op one of JOP_* */
	JN_AND,    /* a and b */
	JN_OR,     /* a or b */
	JN_COND,   /* a if b else c (c may be NULL) */
	/* statements */
	JN_BODY,        /* kids, in order */
	JN_TEXT,        /* str/len */
	JN_OUTPUT,      /* {{ a }} */
	JN_IF,          /* if a: b else c (c: a body, or an IF for elif) */
	JN_FOR,         /* for names in a [if d]: b else c */
	JN_SET,         /* names = a */
	JN_SET_ATTR,    /* str.names[0] = a (namespace attribute) */
	JN_SET_BLOCK,   /* str = rendered b (then through filter a, may be NULL) */
	JN_MACRO,       /* macro str(names = kids defaults): b */
	JN_CALLBLOCK,   /* call(names) a: b */
	JN_FILTERBLOCK, /* filter a (a JN_FILTER chain on NULL): b */
	JN_BREAK,
	JN_CONTINUE,
} jn_kind;

enum {
	JOP_ADD = 1,
	JOP_SUB,
	JOP_MUL,
	JOP_DIV,
	JOP_FLOORDIV,
	JOP_MOD,
	JOP_POW,
	JOP_CONCAT,
	JOP_EQ,
	JOP_NE,
	JOP_LT,
	JOP_LE,
	JOP_GT,
	JOP_GE,
	JOP_IN,
	JOP_NOTIN,
};

typedef struct jnode jnode;
struct jnode {
	jn_kind kind;
	int op;
	int line, col;
	char *str; /* owned; NUL-terminated, len bytes (may hold NUL) */
	size_t len;
	long long ival;
	double fval;
	jnode *a, *b, *c, *d;
	jnode **kids; /* owned [n_kids]; entries may be NULL (macro defaults) */
	char **kw;    /* owned [n_kids] or NULL: keyword names, NULL = positional */
	int n_kids;
	char **names; /* owned [n_names]: assignment targets, macro parameters */
	int n_names;
};

struct api_jinja {
	jnode *root;
	jnode **nodes; /* every node, for freeing without recursion */
	size_t n_nodes, cap_nodes;
	char *src; /* the source text, for api_jinja_mentions */
	size_t src_len;
};

/* jinja_eval.c: 1 if the filter / test name is implemented. The parser
 * refuses unknown names, as jinja2 does at compile time. */
int api__jinja_filter_known(const char *name);
int api__jinja_test_known(const char *name);

/* ---- jinja_value.c: Python semantics on jansson values -------------------
 * A NULL json_t * is jinja's Undefined; json null is Python's None. */

/* Appends str(v) as Python prints it (None, True, 2.5, [{'a': 1}]);
 * Undefined appends nothing. */
int api__py_str(const json_t *v, mllm_buf *out);
/* Appends json.dumps(v, ensure_ascii=False, indent, separators, sort_keys)
 * as transformers' tojson: indent < 0 = none, else that many spaces (or
 * indent_str when not NULL). item_sep/key_sep NULL = the defaults. */
int api__py_json(const json_t *v, int indent, const char *indent_str, const char *item_sep,
                 const char *key_sep, bool sort_keys, mllm_buf *out);
/* Python repr of a float ("2.5", "1e-07", "1e+20", "inf", "-0.0"). */
void api__py_float_repr(double d, char *buf, size_t cap);
bool api__py_truthy(const json_t *v);
bool api__py_equal(const json_t *a, const json_t *b);
/* Python ordering: -1/0/1 in *cmp, or -1 when the types do not compare. */
int api__py_compare(const json_t *a, const json_t *b, int *cmp);
/* 1 if the code point is whitespace for Python's str.strip()/split(). */
int api__py_isspace(uint32_t cp);
/* Decodes one UTF-8 character at s[0..n) (n >= 1): the code point, and its
 * length in *len (1 for an invalid byte, taken as that byte's value). */
uint32_t api__utf8_next(const char *s, size_t n, size_t *len);

#endif
