/*
 * replay.c — the Check runner `make test` builds for every harness
 * tests/fuzz/fuzz_<name>.c (linked with it, without -fsanitize=fuzzer): it
 * feeds the harness the empty input, every committed seed in
 * tests/fuzz/corpus/<name>/ and every past finding in
 * tests/fuzz/regressions/<name>/, one test each under CK_FORK, so a finding
 * that crashes or trips a FUZZ_CHECK again fails that one test. Under
 * `make asan` the same inputs run with the sanitizers that found them.
 */
#include "harness.h"

#include <dirent.h>
#include <stdint.h>

#include "fuzz.h"

#ifndef FUZZ_NAME
#error "build with -DFUZZ_NAME='\"name\"'"
#endif

/* A harness without fixtures need not define an initializer. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_INPUTS 4096

static char *inputs[MAX_INPUTS];
static int n_inputs;

static const char *fuzz_dir(void)
{
	const char *d = getenv("MLLM_FUZZ_DIR");
	return d && *d ? d : "tests/fuzz";
}

static void collect(const char *kind)
{
	char dir[1024];
	DIR *d;
	struct dirent *e;
	snprintf(dir, sizeof dir, "%s/%s/%s", fuzz_dir(), kind, FUZZ_NAME);
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d)) != NULL && n_inputs < MAX_INPUTS) {
		size_t n;
		if (e->d_name[0] == '.')
			continue;
		n = strlen(dir) + strlen(e->d_name) + 2;
		inputs[n_inputs] = malloc(n);
		if (!inputs[n_inputs])
			break;
		snprintf(inputs[n_inputs], n, "%s/%s", dir, e->d_name);
		n_inputs++;
	}
	closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void setup(void)
{
	if (LLVMFuzzerInitialize) {
		int argc = 1;
		char *args[] = {(char *)"replay", NULL}, **argv = args;
		ck_assert_int_eq(LLVMFuzzerInitialize(&argc, &argv), 0);
	}
}

/* Loop index 0 is the empty input; i > 0 is inputs[i - 1]. */
START_TEST(test_replay)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	if (_i > 0) {
		FILE *f = fopen(inputs[_i - 1], "rb");
		long sz;
		ck_assert_msg(f != NULL, "cannot open %s", inputs[_i - 1]);
		ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
		sz = ftell(f);
		ck_assert_int_ge(sz, 0);
		rewind(f);
		len = (size_t)sz;
		buf = malloc(len ? len : 1);
		ck_assert_ptr_nonnull(buf);
		ck_assert_uint_eq(fread(buf, 1, len, f), len);
		fclose(f);
	}
	/* libFuzzer hands over an exact-size heap buffer; so do we, so that ASan
	 * sees the same one-past-the-end reads. */
	ck_assert_int_eq(LLVMFuzzerTestOneInput(buf ? buf : (const uint8_t *)"", len), 0);
	free(buf);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("fuzz_" FUZZ_NAME);
	TCase *tc = tcase_create("replay");
	collect("corpus");
	collect("regressions");
	qsort(inputs, (size_t)n_inputs, sizeof inputs[0], cmp_str);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_replay, 0, n_inputs + 1);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
