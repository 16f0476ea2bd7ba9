/*
 * jinja.h — a Jinja2-subset interpreter for Hugging Face chat templates.
 *
 * A template is parsed once (at model load) into an immutable tree, then
 * rendered per request with jansson values as variables, the way
 * transformers' apply_chat_template renders it: jinja2's sandboxed
 * environment with trim_blocks, lstrip_blocks and loop controls, lenient
 * undefined values, transformers' tojson, raise_exception and strftime_now.
 * What the subset lacks is refused at parse time with the line and column,
 * so an unsupported template is never rendered half right.
 *
 * Ownership and threading:
 * - api_jinja_parse copies what it needs from src; the returned tree is owned
 *   by the caller and freed with api_jinja_free (accepts NULL).
 * - A parsed template is read-only while rendering and holds no jansson
 *   values, so any number of threads may render it at once.
 * - api_jinja_render borrows vars for the call (a JSON object: each key is a
 *   template variable) and appends to a caller-initialised mllm_buf.
 */
#ifndef API_JINJA_H
#define API_JINJA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

typedef struct api_jinja api_jinja;

/* Hard bounds on one render; 0 in a field takes the default. A hostile
 * template or request cannot make a render run longer or grow larger. */
typedef struct {
	size_t max_output; /* bytes of rendered text, and of any one string (default 4 MiB) */
	int64_t max_work;  /* work units: statements, loop iterations, expression
	                    * nodes, and 1 per 32 bytes or items built (default 50M) */
	int32_t max_depth; /* nested evaluation: macro calls and expressions (default 400) */
} api_jinja_limits;

/* Parses a template of len bytes (need not be NUL-terminated).
 * Returns 0 and *out, or MLLM_EUNSUPPORTED (a construct the subset lacks)
 * / MLLM_EFORMAT (a syntax error) with "line L, column C: what" in err.
 * Parsing nests at most 200 levels deep. */
int api_jinja_parse(const char *src, size_t len, api_jinja **out, char *err,
                    size_t errlen) MLLM_WUR;
void api_jinja_free(api_jinja *t);

/* Renders into out (appending). vars: a JSON object whose keys are the
 * template's variables (borrowed, not modified). lim may be NULL.
 * Returns 0, or:
 *   MLLM_EINVAL    the template raised (raise_exception, or an error jinja2
 *                  raises: an undefined value used, a type mismatch, ...);
 *                  err holds the message (raise_exception's own text);
 *   MLLM_ENOSPACE  the output or a string exceeded max_output (or out's limit);
 *   MLLM_ERANGE    max_work or max_depth exceeded;
 *   MLLM_EUNSUPPORTED  a construct only known at run time to be outside
 *                  the subset (a test named by a variable, a format width
 *                  over 999, ...).
 * On error out may hold part of the text. */
int api_jinja_render(const api_jinja *t, json_t *vars, const api_jinja_limits *lim, mllm_buf *out,
                     char *err, size_t errlen) MLLM_WUR;

/* 1 if the template's text contains s (a cheap scan of its literal text and
 * string constants; used to detect reasoning markers such as "<think>"). */
int api_jinja_mentions(const api_jinja *t, const char *s);

#endif
