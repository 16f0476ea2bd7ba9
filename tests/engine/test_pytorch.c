/*
 * test_pytorch.c — pytorch_model.bin: the zip reader and the restricted
 * unpickler. The two .bin fixtures must yield exactly the tensors (names,
 * shapes, dtypes, bytes) of their safetensors twins; synthetic archives built
 * here (a small zip writer and hand-assembled pickles) cover each malformation
 * and each refusal; mutated real pickles must never crash the interpreter.
 */
#include "harness.h"

#include "../../engine/pytorch.c"

#define FILE_UTIL_PREFIX "mllm-pt"
#include "file_util.h"

/* ---- a small zip writer (stored entries, data aligned to 64) ---------------- */

static void w16(wbuf *b, uint16_t v)
{
	put(b, &v, 2);
}
static void w32(wbuf *b, uint32_t v)
{
	put(b, &v, 4);
}

typedef struct {
	const char *name;
	const void *data;
	size_t len;
	uint16_t method;
	bool bad_crc;
} zentry;

static void w64(wbuf *b, uint64_t v)
{
	put(b, &v, 8);
}

/* zip64: sizes, offsets and counts saturated in the classic records and
 * given in zip64 extra fields / end records instead (what torch writes for
 * archives past 4 GB). */
static void make_zip_ex(wbuf *z, const zentry *e, int n, bool zip64)
{
	size_t offs[16];
	size_t cd, cd_end;
	memset(z, 0, sizeof *z);
	for (int i = 0; i < n; i++) {
		size_t nl = strlen(e[i].name), pad;
		uint32_t crc = crc32_bytes(e[i].data, e[i].len) ^ (e[i].bad_crc ? 1u : 0u);
		offs[i] = z->n;
		pad = (64 - (z->n + 30 + nl + 4) % 64) % 64;
		w32(z, 0x04034b50);
		w16(z, 20), w16(z, 0), w16(z, e[i].method), w16(z, 0), w16(z, 0);
		w32(z, crc), w32(z, (uint32_t)e[i].len), w32(z, (uint32_t)e[i].len);
		w16(z, (uint16_t)nl), w16(z, (uint16_t)(pad + 4));
		put(z, e[i].name, nl);
		w16(z, 0xCAFE), w16(z, (uint16_t)pad); /* padding extra field */
		for (size_t k = 0; k < pad; k++)
			put(z, "Z", 1);
		put(z, e[i].data, e[i].len);
	}
	cd = z->n;
	for (int i = 0; i < n; i++) {
		size_t nl = strlen(e[i].name);
		uint32_t crc = crc32_bytes(e[i].data, e[i].len) ^ (e[i].bad_crc ? 1u : 0u);
		uint32_t sz = zip64 ? 0xFFFFFFFFu : (uint32_t)e[i].len;
		w32(z, 0x02014b50);
		w16(z, 20), w16(z, 20), w16(z, 0), w16(z, e[i].method), w16(z, 0), w16(z, 0);
		w32(z, crc), w32(z, sz), w32(z, sz);
		w16(z, (uint16_t)nl), w16(z, zip64 ? 28 : 0), w16(z, 0), w16(z, 0), w16(z, 0);
		w32(z, 0), w32(z, zip64 ? 0xFFFFFFFFu : (uint32_t)offs[i]);
		put(z, e[i].name, nl);
		if (zip64) {
			w16(z, 1), w16(z, 24);
			w64(z, e[i].len), w64(z, e[i].len), w64(z, offs[i]);
		}
	}
	cd_end = z->n;
	if (zip64) {
		w32(z, 0x06064b50), w64(z, 44), w16(z, 45), w16(z, 45), w32(z, 0), w32(z, 0);
		w64(z, (uint64_t)n), w64(z, (uint64_t)n), w64(z, cd_end - cd), w64(z, cd);
		w32(z, 0x07064b50), w32(z, 0), w64(z, cd_end), w32(z, 1);
	}
	w32(z, 0x06054b50);
	w16(z, 0), w16(z, 0);
	w16(z, zip64 ? 0xFFFF : (uint16_t)n), w16(z, zip64 ? 0xFFFF : (uint16_t)n);
	w32(z, zip64 ? 0xFFFFFFFFu : (uint32_t)(cd_end - cd));
	w32(z, zip64 ? 0xFFFFFFFFu : (uint32_t)cd);
	w16(z, 0);
}

static void make_zip(wbuf *z, const zentry *e, int n)
{
	make_zip_ex(z, e, n, false);
}

/* ---- a pickle assembler ------------------------------------------------------ */

static void op(wbuf *b, int c)
{
	unsigned char x = (unsigned char)c;
	put(b, &x, 1);
}
static void pstr(wbuf *b, const char *s)
{
	op(b, 'X');
	w32(b, (uint32_t)strlen(s));
	put(b, s, strlen(s));
}
static void pint(wbuf *b, int32_t v)
{
	op(b, 'J');
	put(b, &v, 4);
}
static void pglobal(wbuf *b, const char *mod, const char *name)
{
	op(b, 'c');
	put(b, mod, strlen(mod));
	op(b, '\n');
	put(b, name, strlen(name));
	op(b, '\n');
}

typedef struct {
	const char *storage_type, *key;
	int32_t numel, offset, rows, cols, s0, s1;
} tspec;

static void ptensor(wbuf *b, const tspec *t)
{
	pglobal(b, "torch._utils", "_rebuild_tensor_v2");
	op(b, '(');
	op(b, '(');
	pstr(b, "storage");
	pglobal(b, "torch", t->storage_type);
	pstr(b, t->key);
	pstr(b, "cpu");
	pint(b, t->numel);
	op(b, 't');
	op(b, 'Q');
	pint(b, t->offset);
	pint(b, t->rows), pint(b, t->cols), op(b, 0x86);
	pint(b, t->s0), pint(b, t->s1), op(b, 0x86);
	op(b, 0x89);
	pglobal(b, "collections", "OrderedDict");
	op(b, ')');
	op(b, 'R');
	op(b, 't');
	op(b, 'R');
}

/* OrderedDict with one tensor "w". */
static void state_dict(wbuf *b, const tspec *t)
{
	memset(b, 0, sizeof *b);
	op(b, 0x80), op(b, 2);
	pglobal(b, "collections", "OrderedDict");
	op(b, ')'), op(b, 'R'), op(b, 'q'), op(b, 0);
	op(b, '(');
	pstr(b, "w");
	ptensor(b, t);
	op(b, 'u');
	op(b, '.');
}

static const tspec good_t = {"FloatStorage", "0", 6, 0, 2, 3, 3, 1};

static const char *write_zip(const wbuf *z, size_t len)
{
	const char *path = tmp("pytorch_model.bin");
	spit(path, z->p, len);
	return path;
}

static const float storage_data[8] = {1, 2, 3, 4, 5, 6, 7, 8};

/* A torch-style archive: archive/data.pkl, archive/byteorder, archive/data/0. */
static void archive64(wbuf *z, const wbuf *pkl, uint16_t data_method, bool bad_crc,
                      const char *byteorder, bool zip64)
{
	zentry e[3] = {
	    {"archive/data.pkl", pkl->p, pkl->n, 0, bad_crc},
	    {"archive/byteorder", byteorder, strlen(byteorder), 0, false},
	    {"archive/data/0", storage_data, 24, data_method, false},
	};
	make_zip_ex(z, e, 3, zip64);
}

static void archive(wbuf *z, const wbuf *pkl, uint16_t data_method, bool bad_crc,
                    const char *byteorder)
{
	archive64(z, pkl, data_method, bad_crc, byteorder, false);
}

static int load(const wbuf *z, size_t len, mllm__tset *ts, char *err, size_t errlen)
{
	mllm__tset_init(ts);
	return mllm__pytorch_load(ts, write_zip(z, len), err, errlen);
}

static void expect_fail_zip(const wbuf *z, int code, const char *needle)
{
	mllm__tset ts;
	char err[512] = "";
	int rc = load(z, z->n, &ts, err, sizeof err);
	mllm__tset_free(&ts);
	ck_assert_msg(rc == code, "rc %s want %s: %s", mllm_strerror_name(rc),
	              mllm_strerror_name(code), err);
	ck_assert_msg(strstr(err, needle) != NULL, "\"%s\" lacks \"%s\"", err, needle);
	ck_assert_msg(strstr(err, "pytorch_model.bin") != NULL, "\"%s\" names no file", err);
}

static void expect_fail_pkl(const wbuf *pkl, int code, const char *needle)
{
	wbuf z;
	archive(&z, pkl, 0, false, "little");
	expect_fail_zip(&z, code, needle);
	free(z.p);
}

static void expect_fail_tensor(const tspec *t, int code, const char *needle)
{
	wbuf pkl;
	state_dict(&pkl, t);
	expect_fail_pkl(&pkl, code, needle);
	free(pkl.p);
}

/* ---- fixtures --------------------------------------------------------------- */

static void compare_with_safetensors(const char *bin_rel, const char *st_rel)
{
	char bp[512], sp[512], err[512] = "";
	mllm__tset a, b;

	mllm_test_path(bp, sizeof bp, bin_rel);
	mllm_test_path(sp, sizeof sp, st_rel);
	MLLM_REQUIRE_FIXTURE(bp);
	MLLM_REQUIRE_FIXTURE(sp);
	mllm__tset_init(&a);
	mllm__tset_init(&b);
	ck_assert_msg(mllm__pytorch_load(&a, bp, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(mllm__safetensors_load(&b, sp, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(mllm__tset_index(&a, err, sizeof err), 0);
	ck_assert_int_eq(mllm__tset_index(&b, err, sizeof err), 0);
	ck_assert_uint_eq(a.n, b.n);
	for (size_t i = 0; i < a.n; i++) {
		const mllm__ltensor *x = &a.t[i], *y = mllm__tset_find(&b, x->name);
		ck_assert_msg(y != NULL, "%s only in the .bin", x->name);
		ck_assert_int_eq(x->dtype, y->dtype);
		ck_assert_int_eq(x->n_dims, y->n_dims);
		for (int d = 0; d < x->n_dims; d++)
			ck_assert_int_eq(x->shape[d], y->shape[d]);
		ck_assert_uint_eq(x->nbytes, y->nbytes);
		ck_assert_msg(memcmp(x->data, y->data, x->nbytes) == 0, "%s differs", x->name);
		ck_assert_uint_eq((uintptr_t)x->data % 64, 0); /* torch aligns storages */
	}
	mllm__tset_free(&a);
	mllm__tset_free(&b);
}

START_TEST(test_fixtures_match_safetensors)
{
	compare_with_safetensors("models/stories260K-bin/pytorch_model.bin",
	                         "models/stories260K/model.safetensors");
	compare_with_safetensors("models/tiny-mobilellm-f16-bin/pytorch_model.bin",
	                         "models/tiny-mobilellm-f16/model.safetensors");
}
END_TEST

/* ---- synthetic archives ------------------------------------------------------ */

START_TEST(test_synthetic_good)
{
	wbuf pkl, z;
	mllm__tset ts;
	char err[512] = "";
	const mllm__ltensor *t;
	tspec spec = good_t;
	float f;

	spec.numel = 6;
	spec.offset = 0;
	state_dict(&pkl, &spec);
	archive(&z, &pkl, 0, false, "little");
	ck_assert_msg(load(&z, z.n, &ts, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(mllm__tset_index(&ts, err, sizeof err), 0);
	ck_assert_uint_eq(ts.n, 1);
	t = mllm__tset_find(&ts, "w");
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(t->dtype, MLLM_DTYPE_F32);
	ck_assert_int_eq(t->n_dims, 2);
	ck_assert_int_eq(t->shape[0], 2);
	ck_assert_int_eq(t->shape[1], 3);
	ck_assert_uint_eq(t->nbytes, 24);
	memcpy(&f, (const char *)t->data + 20, 4);
	ck_assert_float_eq(f, 6.0f);
	mllm__tset_free(&ts);
	free(z.p);

	/* an int64 buffer loads (as a type the model cannot compute with) */
	{
		tspec lt = {"LongStorage", "0", 3, 0, 1, 3, 3, 1};
		wbuf p2, z2;
		state_dict(&p2, &lt);
		archive(&z2, &p2, 0, false, "little");
		ck_assert_msg(load(&z2, z2.n, &ts, err, sizeof err) == 0, "%s", err);
		ck_assert_int_eq(ts.t[0].dtype, MLLM_DTYPE__COUNT);
		ck_assert_str_eq(ts.t[0].type_name, "I64");
		ck_assert_uint_eq(ts.t[0].nbytes, 24);
		mllm__tset_free(&ts);
		free(p2.p);
		free(z2.p);
	}

	/* the same archive in zip64 form */
	archive64(&z, &pkl, 0, false, "little", true);
	ck_assert_msg(load(&z, z.n, &ts, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(ts.n, 1);
	memcpy(&f, (const char *)ts.t[0].data + 20, 4);
	ck_assert_float_eq(f, 6.0f);
	mllm__tset_free(&ts);
	/* zip64 with its locator destroyed */
	z.p[z.n - 22 - 20] = 'X';
	expect_fail_zip(&z, MLLM_EFORMAT, "zip64 locator missing");
	free(z.p);
	free(pkl.p);

	/* a state dict carrying _metadata (BUILD on the OrderedDict), as
	 * torch.save(model.state_dict()) writes it: the state is ignored */
	state_dict(&pkl, &good_t);
	pkl.n--; /* drop STOP */
	op(&pkl, '}'), pstr(&pkl, "_metadata"), op(&pkl, '}'), pstr(&pkl, "");
	op(&pkl, '}'), pstr(&pkl, "version"), op(&pkl, 'K'), op(&pkl, 1), op(&pkl, 's');
	op(&pkl, 's'), op(&pkl, 's'), op(&pkl, 'b'), op(&pkl, '.');
	archive(&z, &pkl, 0, false, "little");
	ck_assert_msg(load(&z, z.n, &ts, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(ts.n, 1);
	mllm__tset_free(&ts);
	free(pkl.p);
	free(z.p);

	/* a storage offset: a [1, 3] view starting at element 3 */
	spec.offset = 3;
	spec.rows = 1;
	state_dict(&pkl, &spec);
	archive(&z, &pkl, 0, false, "little");
	ck_assert_msg(load(&z, z.n, &ts, err, sizeof err) == 0, "%s", err);
	memcpy(&f, ts.t[0].data, 4);
	ck_assert_float_eq(f, 4.0f);
	mllm__tset_free(&ts);
	free(pkl.p);
	free(z.p);
}
END_TEST

START_TEST(test_bad_zip)
{
	wbuf pkl, z;
	mllm__tset ts;
	char err[512];

	state_dict(&pkl, &good_t);
	archive(&z, &pkl, 0, false, "little");
	/* every truncation fails cleanly */
	for (size_t len = 0; len < z.n; len++) {
		int rc = load(&z, len, &ts, err, sizeof err);
		mllm__tset_free(&ts);
		ck_assert_msg(rc == MLLM_EFORMAT, "len %zu: %s", len, err);
	}
	ck_assert_int_eq(load(&z, z.n - 1, &ts, err, sizeof err), MLLM_EFORMAT);
	mllm__tset_free(&ts);
	ck_assert(strstr(err, "no end-of-central-directory record") != NULL);
	/* central directory pointing past the end */
	z.p[z.n - 22 + 16] = 0xFF;
	expect_fail_zip(&z, MLLM_EFORMAT, "central directory");
	free(z.p);

	archive(&z, &pkl, 8, false, "little");
	expect_fail_zip(&z, MLLM_EUNSUPPORTED, "zip entry archive/data/0 is compressed (method 8)");
	free(z.p);
	archive(&z, &pkl, 0, true, "little");
	expect_fail_zip(&z, MLLM_EFORMAT, "archive/data.pkl: CRC mismatch");
	free(z.p);
	archive(&z, &pkl, 0, false, "big");
	expect_fail_zip(&z, MLLM_EUNSUPPORTED, "not little-endian");
	free(z.p);
	{
		zentry e[1] = {{"archive/other", "x", 1, 0, false}};
		make_zip(&z, e, 1);
		expect_fail_zip(&z, MLLM_EFORMAT, "no <name>/data.pkl");
		free(z.p);
	}
	memset(&z, 0, sizeof z);
	put(&z, "hello, this is not a zip archive at all", 39);
	expect_fail_zip(&z, MLLM_EFORMAT, "bad zip: not a zip archive");
	z.p[0] = 0x80;
	expect_fail_zip(&z, MLLM_EUNSUPPORTED, "legacy");
	free(z.p);
	free(pkl.p);
}
END_TEST

START_TEST(test_bad_tensors)
{
	tspec t = good_t;

	t.key = "7";
	expect_fail_tensor(&t, MLLM_EFORMAT, "tensor w: storage archive/data/7 is missing");
	t = good_t;
	t.numel = 100;
	expect_fail_tensor(&t, MLLM_EFORMAT, "the archive entry has 24");
	t = good_t;
	t.offset = 1;
	expect_fail_tensor(&t, MLLM_EFORMAT, "tensor w: offset 1 + 6 elements beyond its storage");
	t = good_t;
	t.s0 = 1, t.s1 = 2;
	expect_fail_tensor(&t, MLLM_EUNSUPPORTED, "tensor w is not contiguous");
	t = good_t;
	t.rows = -2;
	expect_fail_tensor(&t, MLLM_EFORMAT, "tensor w: bad size");
	t = good_t;
	t.storage_type = "DoubleStorage"; /* 6 doubles need 48 bytes */
	expect_fail_tensor(&t, MLLM_EFORMAT, "storage of 6 elements needs 48 bytes");
	t = good_t;
	t.storage_type = "QUInt8Storage";
	expect_fail_tensor(&t, MLLM_EUNSUPPORTED,
	                   "pickle GLOBAL torch.QUInt8Storage is not allowed");
}
END_TEST

START_TEST(test_bad_pickles)
{
	wbuf b;

	/* code execution is refused, not attempted */
	memset(&b, 0, sizeof b);
	op(&b, 0x80), op(&b, 2);
	pglobal(&b, "os", "system");
	pstr(&b, "echo pwned");
	op(&b, 0x85), op(&b, 'R'), op(&b, '.');
	expect_fail_pkl(&b, MLLM_EUNSUPPORTED, "pickle GLOBAL os.system is not allowed");
	free(b.p);

	memset(&b, 0, sizeof b);
	op(&b, 0x80), op(&b, 2), op(&b, 'G');
	put(&b, "\0\0\0\0\0\0\0\0", 8);
	op(&b, '.');
	expect_fail_pkl(&b, MLLM_EUNSUPPORTED,
	                "archive/data.pkl: unsupported pickle opcode 0x47 at offset 2");
	free(b.p);

	memset(&b, 0, sizeof b);
	op(&b, 0x80), op(&b, 1);
	expect_fail_pkl(&b, MLLM_EUNSUPPORTED, "unsupported pickle protocol at offset 0");
	free(b.p);

	memset(&b, 0, sizeof b);
	op(&b, 0x80), op(&b, 2), pstr(&b, "abc"), op(&b, '.');
	expect_fail_pkl(&b, MLLM_EFORMAT, "not a state dict");
	free(b.p);

	memset(&b, 0, sizeof b);
	op(&b, 0x80), op(&b, 2), op(&b, '}'), pstr(&b, "w"), pint(&b, 5), op(&b, 's'), op(&b, '.');
	expect_fail_pkl(&b, MLLM_EFORMAT, "state dict entry w is not a tensor");
	free(b.p);

	memset(&b, 0, sizeof b);
	op(&b, 0x80), op(&b, 2), op(&b, 't');
	expect_fail_pkl(&b, MLLM_EFORMAT, "pickle MARK missing at offset 2");
	free(b.p);

	memset(&b, 0, sizeof b);
	op(&b, 0x80), op(&b, 2), op(&b, 'R');
	expect_fail_pkl(&b, MLLM_EFORMAT, "pickle stack underflow");
	free(b.p);

	memset(&b, 0, sizeof b);
	op(&b, 0x80), op(&b, 2), op(&b, 'h'), op(&b, 9);
	expect_fail_pkl(&b, MLLM_EFORMAT, "unset memo slot");
	free(b.p);

	memset(&b, 0, sizeof b);
	op(&b, 0x80), op(&b, 2), op(&b, '}');
	expect_fail_pkl(&b, MLLM_EFORMAT, "pickle ends without STOP");
	free(b.p);

	memset(&b, 0, sizeof b);
	op(&b, 0x80), op(&b, 2), op(&b, '}'), op(&b, '}'), op(&b, '.');
	expect_fail_pkl(&b, MLLM_EFORMAT, "STOP with values left");
	free(b.p);

	memset(&b, 0, sizeof b);
	op(&b, 0x80), op(&b, 2), op(&b, 'X'), w32(&b, 1000), op(&b, '.');
	expect_fail_pkl(&b, MLLM_EFORMAT, "truncated pickle");
	free(b.p);

	memset(&b, 0, sizeof b);
	op(&b, 0x80), op(&b, 2);
	for (int i = 0; i < 300; i++)
		op(&b, '(');
	expect_fail_pkl(&b, MLLM_EFORMAT, "MARKs nested too deep");
	free(b.p);

	memset(&b, 0, sizeof b);
	op(&b, 0x80), op(&b, 2), op(&b, '}'), op(&b, 'r'), w32(&b, 0x7FFFFFFF);
	expect_fail_pkl(&b, MLLM_EFORMAT, "memo index out of range");
	free(b.p);
}
END_TEST

/* Mutated copies of the real stories260K pickle go straight to the
 * interpreter: any outcome but a crash or an unbounded allocation is fine,
 * and errors say where. */
START_TEST(test_mutated_pickles)
{
	char path[512], err[512];
	mllm__tset ts;
	zip z;
	const zip_entry *pkl = NULL;
	unsigned char *buf;
	uint32_t seed = 777;
	int rounds = mllm_test_long() ? 100000 : 2000, ok = 0;

	mllm_test_path(path, sizeof path, "models/stories260K-bin/pytorch_model.bin");
	MLLM_REQUIRE_FIXTURE(path);
	mllm__tset_init(&ts);
	ck_assert_int_eq(mllm__pytorch_load(&ts, path, err, sizeof err), 0);
	ck_assert_int_eq(zip_open(&z, ts.maps[0].addr, ts.maps[0].size, path, err, sizeof err), 0);
	for (size_t i = 0; i < z.n; i++)
		if (z.e[i].name_len > 9 &&
		    memcmp(z.e[i].name + z.e[i].name_len - 9, "/data.pkl", 9) == 0)
			pkl = &z.e[i];
	ck_assert_ptr_nonnull(pkl);
	buf = malloc(pkl->size);
	for (int r = 0; r < rounds; r++) {
		unpickler u = {0};
		uint32_t root;
		int rc;
		memcpy(buf, z.p + pkl->off, pkl->size);
		for (int k = 0; k < 1 + r % 4; k++) {
			seed = seed * 1103515245u + 12345u;
			buf[(seed >> 8) % pkl->size] = (unsigned char)(seed >> 24);
		}
		u.p = buf;
		u.len = pkl->size;
		u.what = "mutant";
		u.err = err;
		u.errlen = sizeof err;
		ck_assert_int_eq(unpickler_alloc(&u), 0);
		rc = unpickle(&u, &root);
		if (rc == 0)
			ok++;
		else
			ck_assert_msg(strstr(err, "mutant: ") && strstr(err, " at offset "), "%s",
			              err);
		unpickler_free(&u);
	}
	ck_assert_int_lt(ok, rounds); /* the mutations do break things */
	free(buf);
	free(z.e);
	mllm__tset_free(&ts);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("pytorch");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, rm_tmpdir);
	tcase_add_test(tc, test_fixtures_match_safetensors);
	tcase_add_test(tc, test_synthetic_good);
	tcase_add_test(tc, test_bad_zip);
	tcase_add_test(tc, test_bad_tensors);
	tcase_add_test(tc, test_bad_pickles);
	tcase_add_test(tc, test_mutated_pickles);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
