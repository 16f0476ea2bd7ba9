/*
 * file_util.h — file helpers shared by the loader runners (test_gguf,
 * test_pytorch, test_safetensors, test_model_load, test_json): a growable
 * byte buffer for building synthetic files, one mkdtemp() scratch directory
 * per test (removed recursively by rm_tmpdir(), the checked-fixture
 * teardown), and whole-file read/write with every step asserted. All static
 * inline, so a runner may use any subset.
 */
#ifndef MLLM_TESTS_FILE_UTIL_H
#define MLLM_TESTS_FILE_UTIL_H

#include "harness.h"

#include <ftw.h>
#include <sys/stat.h>

/* The scratch directory's name is /tmp/<FILE_UTIL_PREFIX>-XXXXXX; define it
 * before including this header to tell the runners' leftovers apart. */
#ifndef FILE_UTIL_PREFIX
#define FILE_UTIL_PREFIX "mllm-test"
#endif

/* ---- a growable byte buffer ------------------------------------------- */

typedef struct {
	unsigned char *p;
	size_t n, cap;
} wbuf;

static inline void put(wbuf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
	}
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

/* ---- the scratch directory -------------------------------------------- */

static char tmpdir[256];

/* A fresh scratch directory (replaces the name of any earlier one). */
static inline void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/" FILE_UTIL_PREFIX "-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static inline int file_util_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* Removes the scratch directory and all it holds (links, not their
 * targets); a no-op when there is none. */
static inline void rm_tmpdir(void)
{
	if (tmpdir[0])
		nftw(tmpdir, file_util_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	tmpdir[0] = '\0';
}

/* tmpdir/name, creating the scratch directory on first use. The result lives
 * in one of four rotating static buffers. */
static inline const char *tmp(const char *name)
{
	static char buf[4][512];
	static int k;
	if (!tmpdir[0])
		make_tmpdir();
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
	return buf[k];
}

/* ---- whole files ------------------------------------------------------ */

/* The file's bytes plus a terminating NUL (not counted in *n); free(). */
static inline void *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b;
	long sz;
	ck_assert_msg(f != NULL, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)sz + 1);
	ck_assert_uint_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
	fclose(f);
	b[sz] = 0;
	*n = (size_t)sz;
	return b;
}

static inline void spit(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	fclose(f);
}

#endif
