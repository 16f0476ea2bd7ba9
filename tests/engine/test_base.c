/*
 * test_base.c — the shared plumbing: error table, bounded buffer, fallible
 * allocation with failure injection, and the log sink's level filter.
 */
#include "harness.h"

#include "../../engine/base.c"

START_TEST(test_strerror_table)
{
	ck_assert_str_eq(mllm_strerror(MLLM_OK), "success");
	ck_assert_str_eq(mllm_strerror(MLLM_ENOMEM), "out of memory");
	ck_assert_str_eq(mllm_strerror_name(MLLM_EFORMAT), "MLLM_EFORMAT");
	ck_assert_str_eq(mllm_strerror(12345), "unknown error");
	ck_assert_str_eq(mllm_strerror(MLLM__EFIRST), "unknown error");
	/* Every code has a distinct, non-empty message. */
	for (int e = MLLM__EFIRST + 1; e < MLLM__ELAST; e++) {
		ck_assert(mllm_strerror(e)[0] != '\0');
		ck_assert(e < 0);
		for (int f = e + 1; f < MLLM__ELAST; f++)
			ck_assert_str_ne(mllm_strerror(e), mllm_strerror(f));
	}
}
END_TEST

START_TEST(test_buf_limit)
{
	mllm_buf b;
	mllm_buf_init(&b, 10);
	ck_assert_int_eq(mllm_buf_append(&b, "hello", 5), 0);
	ck_assert_int_eq(mllm_buf_appendf(&b, "%d", 1234), 0);
	ck_assert_str_eq(b.data, "hello1234");
	ck_assert_int_eq(mllm_buf_append(&b, "xy", 2), MLLM_ENOSPACE);
	ck_assert_uint_eq(b.len, 9); /* a failed append changes nothing */
	ck_assert_int_eq(mllm_buf_append(&b, "x", 1), 0);
	ck_assert_int_eq(mllm_buf_appendf(&b, "%s", "z"), MLLM_ENOSPACE);
	size_t n;
	char *p = mllm_buf_take(&b, &n);
	ck_assert_uint_eq(n, 10);
	ck_assert_str_eq(p, "hello1234x");
	free(p);
	ck_assert_ptr_null(b.data);
	mllm_buf_free(&b);
}
END_TEST

START_TEST(test_alloc_injection)
{
	void *a, *b;
	mllm__alloc_fail_after(1);
	a = mllm_try_malloc(16);
	b = mllm_try_malloc(16);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_null(b);
	mllm__alloc_fail_after(-1);
	b = mllm_try_malloc(16);
	ck_assert_ptr_nonnull(b);
	free(a);
	free(b);

	/* A bounded buffer reports MLLM_ENOMEM, not a crash. */
	mllm_buf buf;
	mllm_buf_init(&buf, 1 << 20);
	mllm__alloc_fail_after(0);
	ck_assert_int_eq(mllm_buf_append(&buf, "abc", 3), MLLM_ENOMEM);
	mllm__alloc_fail_after(-1);
	ck_assert_int_eq(mllm_buf_append(&buf, "abc", 3), 0);
	mllm_buf_free(&buf);
}
END_TEST

START_TEST(test_utf8_len)
{
	static const struct {
		const char *s;
		size_t n, want;
	} cases[] = {
	    {"a", 1, 1},
	    {"\xC3\xA9", 2, 2},         /* é */
	    {"\xE2\x96\x81", 3, 3},     /* U+2581 */
	    {"\xF0\x9F\x98\x80", 4, 4}, /* U+1F600 */
	    {"\xF4\x8F\xBF\xBF", 4, 4}, /* U+10FFFF, the last */
	    {"\xC0\x80", 2, 0},         /* overlong NUL */
	    {"\xE0\x80\x80", 3, 0},     /* overlong */
	    {"\xF0\x80\x80\x80", 4, 0}, /* overlong */
	    {"\xED\xA0\x80", 3, 0},     /* surrogate U+D800 */
	    {"\xF4\x90\x80\x80", 4, 0}, /* past U+10FFFF */
	    {"\xE2\x96", 2, 0},         /* truncated */
	    {"\xE2\x28\x81", 3, 0},     /* bad continuation */
	    {"\x80", 1, 0},             /* lone continuation */
	    {"\xFF", 1, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		ck_assert_msg(mllm_utf8_len((const unsigned char *)cases[i].s, cases[i].n) ==
		                  cases[i].want,
		              "case %zu", i);
}
END_TEST

static int n_lines;
static char last_line[256];
static void sink(void *ud, mllm_log_level level, const char *msg)
{
	(void)ud;
	(void)level;
	n_lines++;
	snprintf(last_line, sizeof last_line, "%s", msg);
}

START_TEST(test_log_levels)
{
	n_lines = 0;
	MLLM_LOG(MLLM_LOG_ERROR, "dropped: no sink");
	ck_assert_int_eq(n_lines, 0);
	mllm_log_set(sink, NULL, MLLM_LOG_INFO);
	MLLM_LOG(MLLM_LOG_DEBUG, "dropped: %d", 1);
	MLLM_LOG(MLLM_LOG_INFO, "kept: %d", 2);
	ck_assert_int_eq(n_lines, 1);
	ck_assert_str_eq(last_line, "kept: 2");
	mllm_log_set(NULL, NULL, MLLM_LOG_DEBUG);
	MLLM_LOG(MLLM_LOG_ERROR, "dropped again");
	ck_assert_int_eq(n_lines, 1);
}
END_TEST

static void test_oom_handler(size_t n)
{
	(void)n;
	_exit(42);
}

START_TEST(test_oom_policy)
{
	mllm_set_oom_handler(test_oom_handler);
	/* An impossible size takes the one OOM path, which exits 42 here. */
	void *p = xmallocarray(SIZE_MAX / 2, 4);
	(void)p;
}
END_TEST

START_TEST(test_assert_aborts)
{
	MLLM_ASSERT(1 + 1 == 3);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("base");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_strerror_table);
	tcase_add_test(tc, test_buf_limit);
	tcase_add_test(tc, test_alloc_injection);
	tcase_add_test(tc, test_log_levels);
	tcase_add_test(tc, test_utf8_len);
	tcase_add_exit_test(tc, test_oom_policy, 42);
	tcase_add_test_raise_signal(tc, test_assert_aborts, SIGABRT);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
