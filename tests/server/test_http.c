/*
 * test_http.c — the pure parts of server/http.c, white-box: the route table
 * (exact paths, trailing slash, /v1/models/{id}, near-misses, Allow per
 * route), the raw request-target checks (absolute form, %2F and %00
 * refused, nothing decoded), the Content-Type check behind 415, the
 * preflight's Access-Control-Request-Headers check and how MHD judges a
 * Content-Length. Everything touching
 * sockets is covered by tests/integration against the real daemon
 * (test_serve_harden.sh for framing).
 */
#include "harness.h"

#include "../../server/http.c"

#define RF(p) route_find((p), strlen(p))

START_TEST(test_routes)
{
	ck_assert_int_eq(RF("/health"), R_HEALTH);
	ck_assert_int_eq(RF("/health/"), R_HEALTH);
	ck_assert_int_eq(RF("/readyz"), R_READYZ);
	ck_assert_int_eq(RF("/livez"), R_LIVEZ);
	ck_assert_int_eq(RF("/livez/x"), -1);
	ck_assert_int_eq(RF("/metrics"), R_METRICS);
	ck_assert_int_eq(RF("/v1/models"), R_MODELS);
	ck_assert_int_eq(RF("/v1/models/"), R_MODELS);
	ck_assert_int_eq(RF("/v1/models/st"), R_MODEL);
	ck_assert_int_eq(RF("/v1/models/a.b:c-d"), R_MODEL);
	ck_assert_int_eq(RF("/v1/completions"), R_COMPLETIONS);
	ck_assert_int_eq(RF("/v1/chat/completions"), R_CHAT);
	ck_assert_int_eq(RF("/v1/responses"), R_RESPONSES);
	ck_assert_int_eq(RF("/v1/responses/resp_1"), R_RESPONSE);
	ck_assert_int_eq(RF("/v1/responses/resp_1/input_items"), R_RESPONSE_ITEMS);
	ck_assert_int_eq(RF("/v1/responses/input_items"), R_RESPONSE); /* an id */
	/* a second segment after the id: no route (404 for every method, not
	 * a 405 from /v1/responses/{id}) */
	ck_assert_int_eq(RF("/v1/responses//input_items"), -1);
	ck_assert_int_eq(RF("/v1/responses/a/b/input_items"), -1);
	ck_assert_int_eq(RF("/v1/responses/resp_1/other"), -1);
	ck_assert_int_eq(RF("/v1/responses/resp_1/cancel"), R_RESPONSE_CANCEL);
	ck_assert_int_eq(RF("/v1/responses/a/b/cancel"), -1);
	ck_assert_int_eq(RF("/v1/responses/input_tokens"), R_RESPONSE_COUNT);
	ck_assert_int_eq(RF("/v1/responses/input_tokens/"), R_RESPONSE_COUNT);
	ck_assert_int_eq(RF("/v1/responses/input_tokensx"), R_RESPONSE);
	ck_assert_int_eq(RF("/v1/models/a/b"), -1);
	ck_assert_int_eq(RF("/tokenize"), R_TOKENIZE);
	ck_assert_int_eq(RF("/detokenize"), R_DETOKENIZE);
	ck_assert_int_eq(RF("/"), -1);
	ck_assert_int_eq(RF(""), -1);
	ck_assert_int_eq(RF("/v1"), -1);
	ck_assert_int_eq(RF("/v1/completion"), -1);
	ck_assert_int_eq(RF("/v1/completionsx"), -1);
	ck_assert_int_eq(RF("/v1/chat/completions/x"), -1);
	ck_assert_int_eq(RF("/healthz"), -1);
	ck_assert_int_eq(RF("/HEALTH"), -1);
	/* Raw paths: an escape never matches the character it encodes. */
	ck_assert_int_eq(RF("/%6detrics"), -1);
	ck_assert_int_eq(RF("/v1/models%2Fst"), -1);
	ck_assert_int_eq(route_find("/healthz", 7), R_HEALTH); /* by length */
	/* Every route names exactly one method and starts with '/'. */
	for (int i = 0; i < N_ROUTES; i++) {
		ck_assert(routes[i].path[0] == '/');
		ck_assert(strcmp(routes[i].method, "GET") == 0 ||
		          strcmp(routes[i].method, "POST") == 0);
	}
	/* Only the probes (/health, /readyz, /livez) and /metrics are open
	 * without a key: orchestrators and scrapers hold none (metrics_auth
	 * closes /metrics: classify()). */
	for (int i = 0; i < N_ROUTES; i++)
		ck_assert_int_eq(routes[i].auth, !(i == R_HEALTH || i == R_READYZ || i == R_LIVEZ ||
		                                   i == R_METRICS));
}
END_TEST

static int tp(const char *target, char *path, size_t cap, const char **code)
{
	const char *p;
	size_t n;
	api_error e;
	int st = target_path(target, &p, &n, &e);

	*code = st ? e.code : NULL;
	if (!st)
		snprintf(path, cap, "%.*s", (int)n, p);
	return st;
}

START_TEST(test_target_path)
{
	char path[256];
	const char *code;

	ck_assert_int_eq(tp("/v1/completions", path, sizeof path, &code), 0);
	ck_assert_str_eq(path, "/v1/completions");
	ck_assert_int_eq(tp("/v1/models?x=%2F#frag", path, sizeof path, &code), 0);
	ck_assert_str_eq(path, "/v1/models");
	/* Absolute form (RFC 9112 3.2.2), any case of the scheme. */
	ck_assert_int_eq(tp("http://h:8080/v1/completions?a=b", path, sizeof path, &code), 0);
	ck_assert_str_eq(path, "/v1/completions");
	ck_assert_int_eq(tp("HTTPS://h/health", path, sizeof path, &code), 0);
	ck_assert_str_eq(path, "/health");
	ck_assert_int_eq(tp("http://h", path, sizeof path, &code), 0);
	ck_assert_str_eq(path, "/");
	ck_assert_int_eq(tp("http://h?q", path, sizeof path, &code), 0);
	ck_assert_str_eq(path, "/");
	/* Nothing is decoded. */
	ck_assert_int_eq(tp("/%6detrics", path, sizeof path, &code), 0);
	ck_assert_str_eq(path, "/%6detrics");
	ck_assert_int_eq(tp("/a%0aFORGED", path, sizeof path, &code), 0);
	ck_assert_str_eq(path, "/a%0aFORGED");
	/* Encoded '/' in the path, encoded NUL anywhere: 400. */
	ck_assert_int_eq(tp("/v1%2Fcompletions", path, sizeof path, &code), 400);
	ck_assert_str_eq(code, "invalid_path");
	ck_assert_int_eq(tp("/v1%2fcompletions", path, sizeof path, &code), 400);
	ck_assert_int_eq(tp("http://h/v1%2Fmodels", path, sizeof path, &code), 400);
	ck_assert_int_eq(tp("/v1/completions%00garbage", path, sizeof path, &code), 400);
	ck_assert_int_eq(tp("/health?x=%00", path, sizeof path, &code), 400);
	ck_assert_int_eq(tp("/%2", path, sizeof path, &code), 0);
	ck_assert_int_eq(tp("/%", path, sizeof path, &code), 0);
	ck_assert_int_eq(tp("/%0", path, sizeof path, &code), 0);
	/* %2F in the query is a query matter, not routing. */
	ck_assert_int_eq(tp("/health?next=%2F", path, sizeof path, &code), 0);
}
END_TEST

/* Allow lists exactly what a route serves, and 405 messages name it. */
START_TEST(test_route_allow)
{
	char allow[48];

	route_allow(R_RESPONSE_ITEMS, allow, sizeof allow);
	ck_assert_str_eq(allow, "GET, HEAD, OPTIONS");
	route_allow(R_RESPONSE, allow, sizeof allow);
	ck_assert_str_eq(allow, "GET, HEAD, DELETE, OPTIONS");
	route_allow(R_CHAT, allow, sizeof allow);
	ck_assert_str_eq(allow, "POST, OPTIONS");
	ck_assert(route_serves(R_RESPONSE_ITEMS, "GET"));
	ck_assert(route_serves(R_RESPONSE_ITEMS, "HEAD"));
	ck_assert(!route_serves(R_RESPONSE_ITEMS, "DELETE"));
	ck_assert(!route_serves(R_RESPONSE_ITEMS, "POST"));
	ck_assert(route_serves(R_RESPONSE, "DELETE"));
	ck_assert_str_eq(routes[R_RESPONSE_ITEMS].name, "/v1/responses/{id}/input_items");
	/* Every prefix route has a name for its messages. */
	for (int i = 0; i < N_ROUTES; i++)
		ck_assert(!routes[i].prefix || routes[i].name);
}
END_TEST

START_TEST(test_cors_request_headers)
{
	char big[CORS_REQUEST_HEADERS_MAX + 2];

	ck_assert(cors_request_headers_ok("authorization,content-type,x-stainless-helper-method"));
	ck_assert(cors_request_headers_ok("x-stainless-timeout"));
	ck_assert(cors_request_headers_ok("Authorization, Content-Type"));
	ck_assert(cors_request_headers_ok(" a ,\tb ,, c "));
	ck_assert(cors_request_headers_ok("x!#$%&'*+-.^_`|~y"));
	ck_assert(!cors_request_headers_ok(NULL));
	ck_assert(!cors_request_headers_ok(""));
	ck_assert(!cors_request_headers_ok(" , ,"));
	ck_assert(!cors_request_headers_ok("a b"));
	ck_assert(!cors_request_headers_ok("a;b"));
	ck_assert(!cors_request_headers_ok("a:b"));
	ck_assert(!cors_request_headers_ok("a,\"b\""));
	ck_assert(!cors_request_headers_ok("a,b\x7f"));
	ck_assert(!cors_request_headers_ok("a,\xc3\xa9"));
	memset(big, 'a', CORS_REQUEST_HEADERS_MAX);
	big[CORS_REQUEST_HEADERS_MAX] = '\0';
	ck_assert(cors_request_headers_ok(big));
	big[CORS_REQUEST_HEADERS_MAX] = 'a';
	big[CORS_REQUEST_HEADERS_MAX + 1] = '\0';
	ck_assert(!cors_request_headers_ok(big));
}
END_TEST

/* What libmicrohttpd refuses itself, and with which status. */
START_TEST(test_content_length_status)
{
	ck_assert_int_eq(content_length_status("0"), 0);
	ck_assert_int_eq(content_length_status("5"), 0);
	ck_assert_int_eq(content_length_status("18446744073709551615"), 0);
	ck_assert_int_eq(content_length_status("000000000000000000000000005"), 0);
	ck_assert_int_eq(content_length_status("18446744073709551616"), 413);
	ck_assert_int_eq(content_length_status("99999999999999999999999"), 413);
	ck_assert_int_eq(content_length_status("5, 5"), 400);
	ck_assert_int_eq(content_length_status(""), 400);
	ck_assert_int_eq(content_length_status("-1"), 400);
	ck_assert_int_eq(content_length_status("5x"), 400);
	ck_assert_int_eq(content_length_status("x5"), 400);
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
	tcase_add_test(tc, test_target_path);
	tcase_add_test(tc, test_route_allow);
	tcase_add_test(tc, test_cors_request_headers);
	tcase_add_test(tc, test_content_length_status);
	tcase_add_test(tc, test_content_type);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
