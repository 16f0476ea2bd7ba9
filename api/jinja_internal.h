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

#include <limits.h>
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
/* Appends repr(v): strings quoted as Python quotes them. */
int api__py_repr(const json_t *v, mllm_buf *out);
/* Appends json.dumps(v, ensure_ascii, indent, separators, sort_keys) as
 * transformers' tojson: indent < 0 = none, else that many spaces (or
 * indent_str when not NULL). item_sep/key_sep NULL = the defaults. */
int api__py_json(const json_t *v, int indent, const char *indent_str, const char *item_sep,
                 const char *key_sep, bool sort_keys, bool ensure_ascii, mllm_buf *out);
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

/* ---- the render context: jinja_eval.c (evaluation, statements) and
 * jinja_filter.c (filters, tests, methods) share it. One per render, on
 * the rendering thread's stack; nothing here outlives api_jinja_render. */

#define MAX_ARGS 16

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
} jctx;

typedef struct {
	json_t *v[MAX_ARGS];
	const char *kw[MAX_ARGS];
	int n;
} jargs;

static inline json_t *mkbool(bool b)
{
	return json_boolean(b);
}

static inline bool is_str(const json_t *v)
{
	return v && json_is_string(v);
}

static inline bool is_num(const json_t *v)
{
	return v && (json_is_number(v) || json_is_boolean(v));
}

static inline long long int_of(const json_t *v)
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

static inline double dbl_of(const json_t *v)
{
	if (json_is_real(v))
		return json_real_value(v);
	return (double)int_of(v);
}

static inline bool is_intlike(const json_t *v)
{
	return v && (json_is_integer(v) || json_is_boolean(v));
}

/* jinja_eval.c */
/* Records the first error ("line L, column C: ..." when n is given) and
 * returns it; later calls keep the first. */
int api__j_fail(jctx *c, const jnode *n, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Adds units to the work done; fails with MLLM_ERANGE past max_work. */
int api__j_charge(jctx *c, const jnode *n, long long units);
const char *api__j_type_name(const json_t *v); /* Python's type name */
/* New values, charged to the bounds; NULL (and c->rc set) on failure. */
json_t *api__j_str(jctx *c, const jnode *n, const char *s, size_t len);
json_t *api__j_buf_str(jctx *c, const jnode *n, mllm_buf *b); /* frees b */
json_t *api__j_real(jctx *c, const jnode *n, double d);
/* An argument by position or keyword (borrowed); *found may be NULL. */
json_t *api__j_arg(const jargs *a, int pos, const char *name, bool *found);
int api__j_n_positional(const jargs *a);
json_t *api__j_get_attr(const json_t *obj, const char *name);
json_t *api__j_get_item(jctx *c, const jnode *n, const json_t *obj, const json_t *key);
json_t *api__j_contains(jctx *c, const jnode *n, json_t *item, json_t *seq);
json_t *api__j_arith(jctx *c, const jnode *n, int op, json_t *a, json_t *b);
callable *api__j_find_callable(jctx *c, const json_t *v);
bool api__j_is_namespace(jctx *c, const json_t *v);

/* jinja_filter.c */
/* Byte offsets of each code point of s[0..n), plus n; returns the count.
 * *offs is the caller's to free. */
size_t api__j_char_offsets(const char *s, size_t n, size_t **offs);
json_t *api__j_to_str(jctx *c, const jnode *n, const json_t *v); /* str(v) */
/* A list of v's items (dict keys, string characters; Undefined: empty). */
json_t *api__j_as_list(jctx *c, const jnode *n, json_t *v);
/* obj.name(args); *handled = false when obj has no such method. */
json_t *api__j_call_method(jctx *c, const jnode *n, json_t *obj, const char *name, const jargs *a,
                           bool *handled);
/* Python's printf-style fmt % args (%s %r %d %i %f %e %g %x %o %%,
 * with flags, width and precision); args: a list (the tuple) or one value. */
json_t *api__j_percent(jctx *c, const jnode *n, const json_t *fmt, const json_t *args);
bool api__j_run_test(jctx *c, const jnode *n, const char *name, const json_t *v, const jargs *a);
json_t *api__j_apply_filter(jctx *c, const jnode *n, const char *name, json_t *v, const jargs *a);

#endif
