/*
 * test_cpu.c — engine/cpu.c's default thread count, white-box: the cgroup
 * cpu.max parser (quota rounded up, "max" and malformed text mean no
 * quota), and the default never exceeds the CPUs this process may use.
 */
#include "harness.h"

#include <sys/stat.h>

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

/* Writes text to root/rel (directories made as needed). */
static void put(const char *root, const char *rel, const char *text)
{
	char path[512], *p;
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", root, rel);
	for (p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		mkdir(path, 0700);
		*p = '/';
	}
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

START_TEST(test_quota_walk)
{
	char root[] = "/tmp/mllm-cgroup-XXXXXX";

	ck_assert_ptr_nonnull(mkdtemp(root));
	/* systemd: a 1.5-CPU slice holding an unlimited service. */
	put(root, "sys.slice/cpu.max", "150000 100000\n");
	put(root, "sys.slice/app.service/cpu.max", "max 100000\n");
	ck_assert_int_eq(quota_cpus_walk(root, "/sys.slice/app.service"), 2);
	/* The tighter of child and parent wins. */
	put(root, "sys.slice/app.service/cpu.max", "50000 100000\n");
	ck_assert_int_eq(quota_cpus_walk(root, "/sys.slice/app.service"), 1);
	/* No quota anywhere. */
	ck_assert_int_eq(quota_cpus_walk(root, "/other"), 0);
	/* A container's namespace root carries the limit; the path names the
	 * host's view and does not exist here. */
	put(root, "cpu.max", "300000 100000\n");
	ck_assert_int_eq(quota_cpus_walk(root, "/docker/abc"), 3);
	ck_assert_int_eq(quota_cpus_walk(root, "/"), 3);

	static const char *const made[] = {
	    "sys.slice/app.service/cpu.max", "sys.slice/cpu.max", "cpu.max",
	    "sys.slice/app.service",         "sys.slice",         ""};
	for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
		char path[512];
		snprintf(path, sizeof path, "%s/%s", root, made[i]);
		ck_assert_int_eq(remove(path), 0);
	}
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
	tcase_add_test(tc, test_quota_walk);
	tcase_add_test(tc, test_default_within_affinity);
	tcase_add_test(tc, test_affinity_caps_default);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
