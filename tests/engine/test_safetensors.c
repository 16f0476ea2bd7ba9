/*
 * test_safetensors.c — the safetensors reader and the shared loader pieces
 * (tensor set, file helpers). The fixture's header is read on its own
 * (json_util.h) and every tensor's dtype, shape and data pointer must match
 * what the reader built from it; then synthetic files, one malformation
 * each, and every truncation of a valid file. (The JSON parsing itself is
 * checked against jansson in test_json.c; this runner links no JSON
 * library.)
 */
#include "harness.h"

#include <fcntl.h>

#include "../../engine/safetensors.c"

#define FILE_UTIL_PREFIX "mllm-st"
#include "file_util.h"
#include "json_util.h"

/* Writes u64 header length + header (padded to 8) + data_len bytes. */
static const char *write_st(const char *hdr, size_t data_len, size_t cut)
{
	const char *p = tmp("t.safetensors");
	size_t hl = strlen(hdr), total;
	unsigned char *b;
	FILE *f;
	uint64_t le;

	while (hl % 8)
		hl++;
	total = 8 + hl + data_len;
	b = calloc(1, total);
	le = hl;
	memcpy(b, &le, 8);
	memset(b + 8, ' ', hl);
	memcpy(b + 8, hdr, strlen(hdr));
	for (size_t i = 0; i < data_len; i++)
		b[8 + hl + i] = (unsigned char)i;
	f = fopen(p, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(b, 1, cut ? cut : total, f), cut ? cut : total);
	fclose(f);
	free(b);
	return p;
}

static void expect_fail(const char *hdr, size_t data_len, int code, const char *needle)
{
	mllm__tset ts;
	char err[512] = "";
	int rc;
	mllm__tset_init(&ts);
	rc = mllm__safetensors_load(&ts, write_st(hdr, data_len, 0), err, sizeof err);
	mllm__tset_free(&ts);
	ck_assert_msg(rc == code, "%s: rc %s want %s: %s", hdr, mllm_strerror_name(rc),
	              mllm_strerror_name(code), err);
	ck_assert_msg(strstr(err, needle) != NULL, "\"%s\" lacks \"%s\"", err, needle);
	ck_assert_msg(strstr(err, "t.safetensors: ") != NULL, "\"%s\" does not name the file", err);
}

START_TEST(test_fixture_matches_header)
{
	char path[512], err[512] = "";
	mllm__tset ts;
	mllm__json_doc *doc;
	const mllm__json *h;
	unsigned char *b;
	uint64_t hl = 0;
	size_t n = 0, fsize;

	mllm_test_path(path, sizeof path, "models/tiny-mobilellm-f16/model.safetensors");
	MLLM_REQUIRE_FIXTURE(path);
	b = slurp(path, &fsize);
	doc = ju_parse_st_header(b, fsize, &hl);
	free(b);
	h = mllm__json_root(doc);
	ck_assert_int_eq(h->type, MLLM_JSON_OBJECT);

	mllm__tset_init(&ts);
	ck_assert_msg(mllm__safetensors_load(&ts, path, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(mllm__tset_index(&ts, err, sizeof err), 0);
	ck_assert_int_eq(ts.n_maps, 1);
	for (const mllm__json *v = h->child; v; v = v->next) {
		const char *k = v->key;
		const mllm__ltensor *t;
		const mllm__json *shape, *offs;
		size_t i = 0;
		if (strcmp(k, "__metadata__") == 0)
			continue;
		n++;
		t = mllm__tset_find(&ts, k);
		ck_assert_msg(t != NULL, "%s not loaded", k);
		ck_assert_str_eq(t->type_name, ju_str(ju_get(v, "dtype")));
		ck_assert_int_eq(t->dtype, MLLM_DTYPE_F16);
		shape = ju_get(v, "shape");
		ck_assert_int_eq(t->n_dims, (int)ju_len(shape));
		for (const mllm__json *d = shape->child; d; d = d->next)
			ck_assert_int_eq(t->shape[i++], ju_int(d));
		offs = ju_get(v, "data_offsets");
		ck_assert_ptr_eq(t->data,
		                 (const char *)ts.maps[0].addr + 8 + hl + ju_int(ju_at(offs, 0)));
		ck_assert_uint_eq(t->nbytes,
		                  (size_t)(ju_int(ju_at(offs, 1)) - ju_int(ju_at(offs, 0))));
		ck_assert_str_eq(ts.files[t->file], path);
	}
	ck_assert_uint_eq(ts.n, n);
	ck_assert_ptr_null(mllm__tset_find(&ts, "no.such.tensor"));
	/* the same file twice in one set: every name is a duplicate */
	ck_assert_int_eq(mllm__safetensors_load(&ts, path, err, sizeof err), 0);
	ck_assert_int_eq(mllm__tset_index(&ts, err, sizeof err), MLLM_EFORMAT);
	ck_assert(strstr(err, "is defined twice") != NULL);
	mllm__tset_free(&ts);
	mllm__json_free(doc);
}
END_TEST

START_TEST(test_synthetic_good)
{
	mllm__tset ts;
	char err[512] = "";
	const mllm__ltensor *t;
	const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
	                  "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
	                  "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
	                  "\"c\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[32,40]},"
	                  "\"e\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[40,40]}}";
	mllm__tset_init(&ts);
	ck_assert_msg(mllm__safetensors_load(&ts, write_st(hdr, 40, 0), err, sizeof err) == 0, "%s",
	              err);
	ck_assert_int_eq(mllm__tset_index(&ts, err, sizeof err), 0);
	ck_assert_uint_eq(ts.n, 4);
	t = mllm__tset_find(&ts, "a");
	ck_assert_int_eq(t->dtype, MLLM_DTYPE_F32);
	ck_assert_int_eq(t->shape[1], 3);
	ck_assert_uint_eq(((const unsigned char *)t->data)[5], 5);
	t = mllm__tset_find(&ts, "b");
	ck_assert_int_eq(t->dtype, MLLM_DTYPE_BF16);
	ck_assert_uint_eq(((const unsigned char *)t->data)[0], 24);
	t = mllm__tset_find(&ts, "c"); /* known, not computable */
	ck_assert_int_eq(t->dtype, MLLM_DTYPE__COUNT);
	ck_assert_str_eq(t->type_name, "F64");
	ck_assert_int_eq(t->n_dims, 0);
	t = mllm__tset_find(&ts, "e");
	ck_assert_uint_eq(t->nbytes, 0);
	mllm__tset_free(&ts);
	mllm__tset_free(&ts); /* idempotent */
}
END_TEST

START_TEST(test_malformed_headers)
{
	expect_fail("[]", 0, MLLM_EFORMAT, "not a safetensors file");
	expect_fail("{\"a\":1,}", 0, MLLM_EFORMAT, "bad JSON header: trailing comma");
	expect_fail("{\"a\":1}", 0, MLLM_EFORMAT, "tensor a: header entry is a number");
	expect_fail("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MLLM_EFORMAT,
	            "tensor a: missing dtype");
	expect_fail("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	            MLLM_EFORMAT, "tensor a: unknown dtype \"F33\"");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, MLLM_EFORMAT,
	            "tensor a: missing shape");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
	            MLLM_EFORMAT, "tensor a: bad shape entry");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
	            MLLM_EFORMAT, "tensor a: bad shape entry");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
	            MLLM_EUNSUPPORTED, "tensor a: 5 dimensions");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
	            "\"data_offsets\":[0,4]}}",
	            4, MLLM_EFORMAT, "shape overflows");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
	            MLLM_EFORMAT, "tensor a: data_offsets must be [begin, end]");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
	            MLLM_EFORMAT, "tensor a: bad data_offsets");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
	            MLLM_EFORMAT, "tensor a: data_offsets [0,8] beyond the data section (4 bytes)");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
	            MLLM_EFORMAT, "hold 4 bytes, shape and dtype F32 need 8");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 8,
	            MLLM_EUNSUPPORTED, "tensor a: data is not aligned");
	expect_fail("{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	            MLLM_EFORMAT, "bad tensor name");
}
END_TEST

START_TEST(test_header_length)
{
	mllm__tset ts;
	char err[512] = "";
	const char *p;
	unsigned char b[16];
	uint64_t le;
	FILE *f;
	int fd, rc;

	/* too short for the length */
	p = write_st("{}", 0, 5);
	mllm__tset_init(&ts);
	ck_assert_int_eq(mllm__safetensors_load(&ts, p, err, sizeof err), MLLM_EFORMAT);
	ck_assert(strstr(err, "truncated: 5 bytes") != NULL);
	mllm__tset_free(&ts);

	/* length past the end */
	le = 1000;
	memcpy(b, &le, 8);
	memcpy(b + 8, "{}      ", 8);
	f = fopen(tmp("t.safetensors"), "wb");
	fwrite(b, 1, 16, f);
	fclose(f);
	mllm__tset_init(&ts);
	ck_assert_int_eq(mllm__safetensors_load(&ts, tmp("t.safetensors"), err, sizeof err),
	                 MLLM_EFORMAT);
	ck_assert(strstr(err, "header length 1000 beyond file size 16") != NULL);
	mllm__tset_free(&ts);

	/* above the 100 MB limit (a sparse file: no real disk use) */
	le = (101u << 20);
	memcpy(b, &le, 8);
	fd = open(tmp("big.safetensors"), O_CREAT | O_TRUNC | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, b, 16), 16);
	ck_assert_int_eq(ftruncate(fd, (off_t)le + 8), 0);
	close(fd);
	mllm__tset_init(&ts);
	rc = mllm__safetensors_load(&ts, tmp("big.safetensors"), err, sizeof err);
	mllm__tset_free(&ts);
	ck_assert_int_eq(rc, MLLM_EFORMAT);
	ck_assert_msg(strstr(err, "above the 104857600-byte limit") != NULL, "%s", err);
}
END_TEST

START_TEST(test_every_truncation)
{
	const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
	                  "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]}}";
	size_t total = 8 + (strlen(hdr) + 7) / 8 * 8 + 32;
	for (size_t cut = 1; cut < total; cut++) {
		mllm__tset ts;
		char err[512] = "";
		int rc;
		mllm__tset_init(&ts);
		rc = mllm__safetensors_load(&ts, write_st(hdr, 32, cut), err, sizeof err);
		mllm__tset_free(&ts);
		ck_assert_msg(rc == MLLM_EFORMAT, "cut %zu: %s", cut, err);
		ck_assert_msg(strstr(err, "t.safetensors: ") != NULL, "%s", err);
	}
}
END_TEST

START_TEST(test_files_and_alloc_failure)
{
	mllm__tset ts;
	char err[512] = "", *buf;
	size_t len;
	void *addr;
	const char *p;
	int rc;

	ck_assert_int_eq(mllm__read_file("/nonexistent/x.json", 100, &buf, &len, err, sizeof err),
	                 MLLM_ENOTFOUND);
	ck_assert(strstr(err, "/nonexistent/x.json: cannot open") != NULL);
	p = write_st("{}", 0, 0);
	ck_assert_int_eq(mllm__read_file(p, 4, &buf, &len, err, sizeof err), MLLM_EFORMAT);
	ck_assert(strstr(err, "file too large") != NULL);
	ck_assert_int_eq(mllm__read_file(p, 100, &buf, &len, err, sizeof err), 0);
	ck_assert_uint_eq(len, 16);
	free(buf);
	ck_assert_int_eq(mllm__map_file("/tmp", &addr, &len, err, sizeof err), MLLM_EFORMAT);
	ck_assert(strstr(err, "not a regular file") != NULL);

	for (long k = 0; k < 2; k++) {
		mllm__tset_init(&ts);
		mllm__alloc_fail_after(k);
		rc = mllm__safetensors_load(&ts, p, err, sizeof err);
		mllm__alloc_fail_after(-1);
		mllm__tset_free(&ts);
		ck_assert_int_eq(rc, MLLM_ENOMEM);
	}
}
END_TEST

START_TEST(test_dtype_nbytes)
{
	size_t n;
	ck_assert_int_eq(mllm__dtype_nbytes(MLLM_DTYPE_F32, 10, &n), 0);
	ck_assert_uint_eq(n, 40);
	ck_assert_int_eq(mllm__dtype_nbytes(MLLM_DTYPE_BF16, 10, &n), 0);
	ck_assert_uint_eq(n, 20);
	ck_assert_int_eq(mllm__dtype_nbytes(MLLM_DTYPE_Q8_0, 64, &n), 0);
	ck_assert_uint_eq(n, 68);
	ck_assert_int_eq(mllm__dtype_nbytes(MLLM_DTYPE_Q4_0, 64, &n), 0);
	ck_assert_uint_eq(n, 36);
	ck_assert_int_eq(mllm__dtype_nbytes(MLLM_DTYPE_Q4_0, 33, &n), 1);
	ck_assert_int_eq(mllm__dtype_nbytes(MLLM_DTYPE_F32, UINT64_MAX / 2, &n), 1);
	ck_assert_int_eq(mllm__dtype_nbytes(MLLM_DTYPE__COUNT, 1, &n), 1);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("safetensors");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, rm_tmpdir);
	tcase_add_test(tc, test_fixture_matches_header);
	tcase_add_test(tc, test_synthetic_good);
	tcase_add_test(tc, test_malformed_headers);
	tcase_add_test(tc, test_header_length);
	tcase_add_test(tc, test_every_truncation);
	tcase_add_test(tc, test_files_and_alloc_failure);
	tcase_add_test(tc, test_dtype_nbytes);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
