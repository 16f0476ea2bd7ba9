/*
 * auth.h — bearer API keys and CORS origin checks.
 *
 * An srv_auth owns copies of its keys (srv_auth_init/srv_auth_free). Checks
 * take borrowed header values (may be NULL) and are pure: safe from any
 * thread once initialised.
 */
#ifndef SRV_AUTH_H
#define SRV_AUTH_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
	char **keys; /* [n], owned */
	size_t n;
} srv_auth;

/* Splits a comma-separated list (whitespace around items ignored, empty
 * items dropped). An empty list disables auth. */
void srv_auth_init(srv_auth *a, const char *keys_csv);
/* Adds one more key (e.g. from --api-key). */
void srv_auth_add(srv_auth *a, const char *key);
void srv_auth_free(srv_auth *a);
bool srv_auth_enabled(const srv_auth *a);

/* True when auth is disabled, or `authorization` is "Bearer <key>" for one
 * of the keys. The comparison does the same work whatever the key's
 * content and whichever key matches (no early exit). */
bool srv_auth_check(const srv_auth *a, const char *authorization);

/* Constant-time equality of two byte strings: the running time depends on
 * the lengths only, never on where they differ. */
bool srv_ct_equal(const char *a, size_t alen, const char *b, size_t blen);

/* True when `origin` is allowed by the comma-separated list `origins_csv`
 * ("*" allows any). An empty list allows none (CORS off). */
bool srv_cors_allowed(const char *origins_csv, const char *origin);

#endif
