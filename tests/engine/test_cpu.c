/*
 * test_cpu.c — engine/cpu.c's default thread count, white-box: the cgroup
 * cpu.max parser (quota rounded up, "max" and malformed text mean no
 * quota), and the default never exceeds the CPUs this process may use.
 */
#include "harness.h"

#include "../../engine/cpu.c"

START_TEST(test_quota_parse)
{
	ck_assert_int_eq(quota_cpus_parse("max 100000\n"), 0);
	ck_assert_int_eq(quota_cpus_parse("50000 100000\n"), 1);
	ck_assert_int_eq(quota_cpus_parse("100000 100000"), 1);
	ck_assert_int_eq(quota_cpus_parse("150000 100000"), 2);
	ck_assert_int_eq(quota_cpus_parse("400000 100000"), 4);
	ck_assert_int_eq(quota_cpus_parse("1 100000"), 1);
	ck_assert_int_eq(quota_cpus_parse(""), 0);
	ck_assert_int_eq(quota_cpus_parse("-1 100000"), 0);
	ck_assert_int_eq(quota_cpus_parse("100000 0"), 0);
	ck_assert_int_eq(quota_cpus_parse("garbage"), 0);
	ck_assert_int_eq(quota_cpus_parse("9223372036854775807 1"), 4096);
}
END_TEST

START_TEST(test_default_within_affinity)
{
	cpu_set_t set;
	int n = mllm__cpu_physical_cores();

	ck_assert_int_ge(n, 1);
	ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
	ck_assert_int_le(n, CPU_COUNT(&set));
	if (quota_cpus() > 0)
		ck_assert_int_le(n, quota_cpus());
}
END_TEST

START_TEST(test_affinity_caps_default)
{
	/* Pinned to one CPU (taskset / cpuset), the default is one thread,
	 * whatever the machine has. CK_FORK: this process only. */
	cpu_set_t one;

	CPU_ZERO(&one);
	ck_assert_int_eq(sched_getaffinity(0, sizeof one, &one), 0);
	for (int c = 0, kept = 0; c < CPU_SETSIZE; c++) {
		if (CPU_ISSET(c, &one) && kept++ > 0)
			CPU_CLR(c, &one);
	}
	ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
	ck_assert_int_eq(mllm__cpu_physical_cores(), 1);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("cpu");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_quota_parse);
	tcase_add_test(tc, test_default_within_affinity);
	tcase_add_test(tc, test_affinity_caps_default);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
