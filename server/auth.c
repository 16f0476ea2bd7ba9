/*
 * auth.c — API-key checking and CORS origin matching. Keys are compared in
 * constant time so a client cannot learn a key byte by byte from response
 * timing; every configured key is compared on every request for the same
 * reason. CORS matching is exact (scheme://host[:port]) or "*".
 */
#include "auth.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base.h"

/* The next item of the comma-separated list at *p with its blanks trimmed,
 * as [*s, *e) (possibly empty); *p moves past it. False at the list's end. */
static bool csv_next(const char **p, const char **s, const char **e)
{
	const char *end;
	if (!**p)
		return false;
	end = strchr(*p, ',');
	if (!end)
		end = *p + strlen(*p);
	*s = *p;
	*e = end;
	while (*s < *e && isspace((unsigned char)**s))
		(*s)++;
	while (*e > *s && isspace((unsigned char)(*e)[-1]))
		(*e)--;
	*p = *end ? end + 1 : end;
	return true;
}

void srv_auth_add(srv_auth *a, const char *key)
{
	if (!key || !*key)
		return;
	a->keys = xrealloc(a->keys, (a->n + 1) * sizeof *a->keys);
	a->keys[a->n++] = xstrdup(key);
}

void srv_auth_init(srv_auth *a, const char *keys_csv)
{
	const char *p = keys_csv ? keys_csv : "";
	const char *s, *e;

	a->keys = NULL;
	a->n = 0;
	while (csv_next(&p, &s, &e)) {
		if (e > s) {
			char *k = xstrndup(s, (size_t)(e - s));
			srv_auth_add(a, k);
			free(k);
		}
	}
}

void srv_auth_free(srv_auth *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		free(a->keys[i]);
	free(a->keys);
	a->keys = NULL;
	a->n = 0;
}

bool srv_auth_enabled(const srv_auth *a)
{
	return a->n > 0;
}

bool srv_ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	/* Walk the longer length; bytes past the end of the shorter string
	 * compare against 0 and the length difference is folded in, so no
	 * branch depends on content. */
	size_t n = alen > blen ? alen : blen;
	volatile unsigned char acc = (unsigned char)(alen != blen);

	for (size_t i = 0; i < n; i++) {
		unsigned char x = i < alen ? (unsigned char)a[i] : 0;
		unsigned char y = i < blen ? (unsigned char)b[i] : 0;
		acc |= (unsigned char)(x ^ y);
	}
	return acc == 0;
}

bool srv_auth_check(const srv_auth *a, const char *authorization)
{
	const char *tok;
	size_t len;
	bool ok = false;

	if (a->n == 0)
		return true;
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return false;
	tok = authorization + 7;
	while (*tok == ' ')
		tok++;
	len = strlen(tok);
	while (len > 0 && isspace((unsigned char)tok[len - 1]))
		len--;
	for (size_t i = 0; i < a->n; i++)
		ok |= srv_ct_equal(tok, len, a->keys[i], strlen(a->keys[i]));
	return ok;
}

bool srv_cors_allowed(const char *origins_csv, const char *origin)
{
	const char *p = origins_csv ? origins_csv : "";
	const char *s, *e;
	size_t olen;

	if (!origin || !*origin)
		return false;
	olen = strlen(origin);
	while (csv_next(&p, &s, &e)) {
		if (e - s == 1 && *s == '*')
			return true;
		if ((size_t)(e - s) == olen && strncasecmp(s, origin, olen) == 0)
			return true;
	}
	return false;
}
