/*
 * harness.h — the shared frame of every Check runner.
 *
 * A test file defines `static Suite *make_suite(void)` and ends with
 * MLLM_TEST_MAIN(make_suite). Runners use CK_FORK (a crash fails one test,
 * not the runner) and print Check's summary line, which tests/run.sh adds up.
 * Fixture paths come from MLLM_FIXTURES (default ../shared/fixtures).
 */
#ifndef MLLM_TEST_HARNESS_H
#define MLLM_TEST_HARNESS_H

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline const char *mllm_test_fixtures(void)
{
	const char *p = getenv("MLLM_FIXTURES");
	return p && *p ? p : "../shared/fixtures";
}

/* Joins the fixtures root and a relative path into a static-per-call buffer
 * owned by the caller (buf of size n). */
static inline const char *mllm_test_path(char *buf, size_t n, const char *rel)
{
	snprintf(buf, n, "%s/%s", mllm_test_fixtures(), rel);
	return buf;
}

/* Fixture files are required: a missing fixture is a failure, not a skip,
 * so a broken checkout never passes as green. */
#define MLLM_REQUIRE_FIXTURE(path)                                                                 \
	ck_assert_msg(access((path), R_OK) == 0, "fixture %s is missing (set MLLM_FIXTURES)",      \
	              (path))

static inline int mllm_test_long(void)
{
	const char *p = getenv("MLLM_LONG");
	return p && *p && *p != '0';
}

#define MLLM_TEST_MAIN(make_suite)                                                                 \
	int main(void)                                                                             \
	{                                                                                          \
		SRunner *sr = srunner_create(make_suite());                                        \
		int failed;                                                                        \
		srunner_set_fork_status(sr, CK_FORK);                                              \
		srunner_run_all(sr, CK_NORMAL);                                                    \
		failed = srunner_ntests_failed(sr);                                                \
		srunner_free(sr);                                                                  \
		return failed ? EXIT_FAILURE : EXIT_SUCCESS;                                       \
	}

#endif
