/*
 * test_auth.c — API keys and CORS (server/auth.c): bearer parsing, every
 * configured key accepted, near-misses (prefix, suffix, case, empty)
 * refused, constant-time equality semantics, and origin matching.
 */
#include "harness.h"

#include "../../server/auth.c"

START_TEST(test_keys)
{
	srv_auth a;

	srv_auth_init(&a, " alpha , beta,,");
	ck_assert(srv_auth_enabled(&a));
	ck_assert_uint_eq(a.n, 2);
	ck_assert(srv_auth_check(&a, "Bearer alpha"));
	ck_assert(srv_auth_check(&a, "Bearer beta"));
	ck_assert(srv_auth_check(&a, "bearer beta")); /* scheme is case-insensitive */
	ck_assert(!srv_auth_check(&a, "Bearer Beta"));
	ck_assert(!srv_auth_check(&a, "Bearer alph"));
	ck_assert(!srv_auth_check(&a, "Bearer alphaa"));
	ck_assert(!srv_auth_check(&a, "Bearer "));
	ck_assert(!srv_auth_check(&a, "Basic alpha"));
	ck_assert(!srv_auth_check(&a, "alpha"));
	ck_assert(!srv_auth_check(&a, NULL));
	srv_auth_add(&a, "gamma");
	ck_assert(srv_auth_check(&a, "Bearer gamma"));
	srv_auth_free(&a);

	srv_auth_init(&a, "");
	ck_assert(!srv_auth_enabled(&a));
	ck_assert(srv_auth_check(&a, NULL)); /* no keys: open */
	srv_auth_free(&a);
}
END_TEST

START_TEST(test_ct_equal)
{
	ck_assert(srv_ct_equal("abc", 3, "abc", 3));
	ck_assert(!srv_ct_equal("abc", 3, "abd", 3));
	ck_assert(!srv_ct_equal("abc", 3, "abc\0", 4));
	ck_assert(!srv_ct_equal("", 0, "a", 1));
	ck_assert(srv_ct_equal("", 0, "", 0));
	ck_assert(!srv_ct_equal("xbc", 3, "abc", 3));
}
END_TEST

START_TEST(test_cors)
{
	ck_assert(!srv_cors_allowed("", "https://a.example"));
	ck_assert(!srv_cors_allowed(NULL, "https://a.example"));
	ck_assert(srv_cors_allowed("*", "https://a.example"));
	ck_assert(srv_cors_allowed("https://b.example, https://a.example", "https://a.example"));
	ck_assert(!srv_cors_allowed("https://a.example", "https://a.example.evil"));
	ck_assert(!srv_cors_allowed("https://a.example", "http://a.example"));
	ck_assert(!srv_cors_allowed("*", NULL));
	ck_assert(!srv_cors_allowed("*", ""));
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("auth");
	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_ct_equal);
	tcase_add_test(tc, test_cors);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
