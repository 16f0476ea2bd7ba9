/*
 * test_http.c — the pure parts of server/http.c, white-box: the route table
 * (exact paths, trailing slash, /v1/models/{id}, near-misses) and the
 * Content-Type check behind 415. Everything touching sockets is covered by
 * tests/integration against the real daemon.
 */
#include "harness.h"

#include "../../server/http.c"

START_TEST(test_routes)
{
	ck_assert_int_eq(route_find("/health"), R_HEALTH);
	ck_assert_int_eq(route_find("/health/"), R_HEALTH);
	ck_assert_int_eq(route_find("/readyz"), R_READYZ);
	ck_assert_int_eq(route_find("/livez"), R_LIVEZ);
	ck_assert_int_eq(route_find("/livez/x"), -1);
	ck_assert_int_eq(route_find("/metrics"), R_METRICS);
	ck_assert_int_eq(route_find("/v1/models"), R_MODELS);
	ck_assert_int_eq(route_find("/v1/models/"), R_MODELS);
	ck_assert_int_eq(route_find("/v1/models/st"), R_MODEL);
	ck_assert_int_eq(route_find("/v1/models/a.b:c-d"), R_MODEL);
	ck_assert_int_eq(route_find("/v1/completions"), R_COMPLETIONS);
	ck_assert_int_eq(route_find("/v1/chat/completions"), R_CHAT);
	ck_assert_int_eq(route_find("/tokenize"), R_TOKENIZE);
	ck_assert_int_eq(route_find("/detokenize"), R_DETOKENIZE);
	ck_assert_int_eq(route_find("/"), -1);
	ck_assert_int_eq(route_find(""), -1);
	ck_assert_int_eq(route_find("/v1"), -1);
	ck_assert_int_eq(route_find("/v1/completion"), -1);
	ck_assert_int_eq(route_find("/v1/completionsx"), -1);
	ck_assert_int_eq(route_find("/v1/chat/completions/x"), -1);
	ck_assert_int_eq(route_find("/healthz"), -1);
	ck_assert_int_eq(route_find("/HEALTH"), -1);
	/* Every route names exactly one method and starts with '/'. */
	for (int i = 0; i < N_ROUTES; i++) {
		ck_assert(routes[i].path[0] == '/');
		ck_assert(strcmp(routes[i].method, "GET") == 0 ||
		          strcmp(routes[i].method, "POST") == 0);
	}
	/* Only the probes (/health, /readyz, /livez) and /metrics are open
	 * without a key: orchestrators and scrapers hold none. */
	for (int i = 0; i < N_ROUTES; i++)
		ck_assert_int_eq(routes[i].auth, !(i == R_HEALTH || i == R_READYZ || i == R_LIVEZ ||
		                                   i == R_METRICS));
}
END_TEST

START_TEST(test_content_type)
{
	ck_assert(json_content_type("application/json"));
	ck_assert(json_content_type("application/json; charset=utf-8"));
	ck_assert(json_content_type("Application/JSON"));
	ck_assert(json_content_type(" application/json"));
	ck_assert(!json_content_type(NULL));
	ck_assert(!json_content_type(""));
	ck_assert(!json_content_type("application/jsonx"));
	ck_assert(!json_content_type("application/x-www-form-urlencoded"));
	ck_assert(!json_content_type("text/plain"));
	ck_assert(!json_content_type("application/json-patch+json"));
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("http");
	tcase_add_test(tc, test_routes);
	tcase_add_test(tc, test_content_type);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
