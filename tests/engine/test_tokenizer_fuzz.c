/*
 * test_tokenizer_fuzz.c — random inputs against the tokenizer's invariants:
 * random bytes, random Unicode and random runs of vocabulary pieces must
 * encode without error into ids inside the vocabulary (at most len + 2 for
 * LLaMA), encode -> decode -> encode must give the same ids, the streaming
 * detokenizer must equal the whole decode and emit whole UTF-8 only, and
 * mutated tokenizer.model files must load or fail cleanly. A few thousand
 * inputs by default; MLLM_LONG=1 runs a hundred times more. Seeded
 * (MLLM_FUZZ_SEED overrides), so a failure names the input that broke.
 */
#include "harness.h"

#include "../../engine/tokenizer_load.c"
#include "../../engine/tokenizer.c"

#include "file_util.h"

#define LLAMA_MODEL "tokenizer/llama2/tokenizer.model"

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t rnd_below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static void seed(uint64_t salt)
{
	const char *s = getenv("MLLM_FUZZ_SEED");
	rng_state = (s && *s ? strtoull(s, NULL, 0) : 20261128ull) ^ salt;
}

static int iterations(int base)
{
	return mllm_test_long() ? base * 100 : base;
}

static mllm_tokenizer *load(void)
{
	char path[4096], err[512] = "";
	mllm_tokenizer *tok = NULL;

	mllm_test_path(path, sizeof path, LLAMA_MODEL);
	MLLM_REQUIRE_FIXTURE(path);
	ck_assert_msg(mllm_tokenizer_load(path, &tok, err, sizeof err) == 0, "%s", err);
	return tok;
}

static size_t put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Fills buf (room for cap bytes, cap >= 64) with one random input of a
 * random kind; returns its length. */
static size_t random_text(const mllm_tokenizer *tok, char *buf, size_t cap)
{
	size_t n = 0, want = rnd_below(rnd_below(4) == 0 ? cap - 8 : 48);

	switch (rnd_below(4)) {
	case 0: /* raw bytes, biased towards UTF-8 lead/trail bytes and spaces */
		while (n < want) {
			static const unsigned char pool[] = {' ',  'a',  0xc3, 0xa9, 0xe2, 0x96,
			                                     0x81, 0xf0, 0x9f, 0xed, 0xa0, 0x80,
			                                     0xff, 0x00, '\n', 0xef, 0xbf, 0xbd};
			buf[n++] =
			    (char)(rnd_below(2) ? rnd_below(256) : pool[rnd_below(sizeof pool)]);
		}
		break;
	case 1: /* random scalar values of every length */
		while (n + 4 <= want) {
			uint32_t cp;
			switch (rnd_below(5)) {
			case 0:
				cp = (uint32_t)rnd_below(0x80);
				break;
			case 1:
				cp = 0x80 + (uint32_t)rnd_below(0x780);
				break;
			case 2:
				cp = 0x800 + (uint32_t)rnd_below(0xd800 - 0x800);
				break;
			case 3:
				cp = 0xe000 + (uint32_t)rnd_below(0x2000);
				break;
			default:
				cp = 0x10000 + (uint32_t)rnd_below(0x100000);
				break;
			}
			n += put_utf8(buf + n, cp);
		}
		break;
	case 2: /* runs of vocabulary pieces, "▁" written as a space or kept */
		while (n < want) {
			size_t pl = 0;
			const char *p = mllm_tokenizer_piece(tok, (int32_t)rnd_below(32000), &pl);
			ck_assert_ptr_nonnull(p);
			if (n + pl > want)
				break;
			bool keep = rnd_below(8) == 0;
			for (size_t i = 0; i < pl;) {
				if (!keep && i + 3 <= pl && memcmp(p + i, ws_sym, 3) == 0) {
					buf[n++] = ' ';
					i += 3;
				} else {
					buf[n++] = p[i++];
				}
			}
		}
		break;
	default: /* whitespace-heavy ASCII */
		while (n < want)
			buf[n++] = " \t\n\r  ab.,"[rnd_below(11)];
		break;
	}
	return n;
}

/* Decodes ids whole and streamed; checks the two agree and the stream emits
 * whole UTF-8 only. Returns the decoded text (malloc'd) and its length. */
static char *decode_checked(const mllm_tokenizer *tok, const int32_t *ids, size_t n,
                            size_t *out_len)
{
	size_t cap = 16 * n + 64, len = 0, s_len = 0;
	char *out = malloc(cap), *stream = malloc(cap), chunk[MLLM_DETOK_MAX];
	mllm_detok d;

	ck_assert(out && stream);
	ck_assert_int_eq(mllm_tokenizer_decode(tok, ids, n, out, cap, &len), 0);
	ck_assert(utf8_all_valid(out, len));
	mllm_detok_init(&d, tok);
	for (size_t i = 0; i <= n; i++) {
		int k = i < n ? mllm_detok_push(&d, ids[i], chunk, sizeof chunk)
		              : mllm_detok_flush(&d, chunk, sizeof chunk);
		ck_assert_int_ge(k, 0);
		ck_assert_msg(utf8_all_valid(chunk, (size_t)k), "partial UTF-8 from detok");
		ck_assert_uint_le(s_len + (size_t)k, cap);
		memcpy(stream + s_len, chunk, (size_t)k);
		s_len += (size_t)k;
	}
	ck_assert_uint_eq(s_len, len);
	ck_assert_int_eq(memcmp(stream, out, len), 0);
	free(stream);
	*out_len = len;
	return out;
}

START_TEST(test_fuzz_encode)
{
	mllm_tokenizer *tok = load();
	size_t cap_text = 4096;
	char *text = malloc(cap_text);
	int32_t *ids = malloc((cap_text + 2) * sizeof *ids);
	int32_t *ids2 = malloc((cap_text + 2) * sizeof *ids2);
	int n_iter = iterations(3000);

	ck_assert(text && ids && ids2);
	seed(1);
	for (int it = 0; it < n_iter; it++) {
		size_t len = random_text(tok, text, cap_text), n = 0, n2 = 0, dlen;

		ck_assert_int_eq(
		    mllm_tokenizer_encode(tok, text, len, false, ids, cap_text + 2, &n), 0);
		ck_assert_uint_le(n, len + 1); /* + the dummy prefix; no BOS asked */
		for (size_t i = 0; i < n; i++)
			ck_assert(ids[i] >= 0 && ids[i] < 32000 &&
			          !mllm_tokenizer_is_control(tok, ids[i]));
		/* encode(decode(encode(x))) == encode(x) */
		char *dec = decode_checked(tok, ids, n, &dlen);
		ck_assert_uint_le(dlen, 3 * len);
		ck_assert_int_eq(
		    mllm_tokenizer_encode(tok, dec, dlen, false, ids2, cap_text + 2, &n2), 0);
		ck_assert_msg(n2 == n && memcmp(ids, ids2, n * sizeof *ids) == 0,
		              "iteration %d: encode(decode(ids)) differs (%zu vs %zu ids)", it, n2,
		              n);
		free(dec);
	}
	free(text);
	free(ids);
	free(ids2);
	mllm_tokenizer_free(tok);
}
END_TEST

/* Random id sequences (weighted towards byte pieces, controls and "▁"):
 * y = decode(ids) re-encodes to text that decodes to y again, with literal
 * "▁" (which byte pieces can spell) read back as spaces. */
START_TEST(test_fuzz_decode)
{
	mllm_tokenizer *tok = load();
	int n_iter = iterations(3000);
	int32_t ids[64];

	seed(2);
	for (int it = 0; it < n_iter; it++) {
		size_t n = rnd_below(64), ylen, zlen, n2 = 0;
		for (size_t i = 0; i < n; i++) {
			switch (rnd_below(4)) {
			case 0:
				ids[i] = 3 + (int32_t)rnd_below(256);
				break;
			case 1:
				ids[i] = (int32_t)rnd_below(3);
				break;
			case 2:
				ids[i] = rnd_below(2) ? 29871 : 259;
				break;
			default:
				ids[i] = (int32_t)rnd_below(32000);
				break;
			}
		}
		char *y = decode_checked(tok, ids, n, &ylen);
		size_t cap = mllm_tokenizer_max_ids(tok, ylen);
		int32_t *re = malloc(cap * sizeof *re);
		ck_assert_ptr_nonnull(re);
		ck_assert_int_eq(mllm_tokenizer_encode(tok, y, ylen, false, re, cap, &n2), 0);
		char *z = decode_checked(tok, re, n2, &zlen);
		/* y with every "▁" turned into a space */
		char *want = malloc(ylen + 1);
		size_t w = 0;
		for (size_t i = 0; i < ylen;) {
			if (i + 3 <= ylen && memcmp(y + i, ws_sym, 3) == 0) {
				want[w++] = ' ';
				i += 3;
			} else {
				want[w++] = y[i++];
			}
		}
		ck_assert_msg(zlen == w && memcmp(z, want, w) == 0,
		              "iteration %d: decode(encode(y)) != y", it);
		free(want);
		free(z);
		free(re);
		free(y);
	}
	mllm_tokenizer_free(tok);
}
END_TEST

/* One long input of each kind: no quadratic blow-up, no crash. */
START_TEST(test_fuzz_long)
{
	mllm_tokenizer *tok = load();
	size_t len = mllm_test_long() ? (4u << 20) : (256u << 10), n = 0;
	char *text = malloc(len);
	int32_t *ids = malloc((len + 2) * sizeof *ids);

	ck_assert(text && ids);
	seed(3);
	for (int kind = 0; kind < 3; kind++) {
		for (size_t i = 0; i < len; i++)
			text[i] = kind == 0   ? (char)rnd_below(256)
			          : kind == 1 ? "abcdefghij"[rnd_below(10)] /* one huge word */
			                      : " \xe2\x96\x81x"[rnd_below(5)];
		ck_assert_int_eq(mllm_tokenizer_encode(tok, text, len, true, ids, len + 2, &n), 0);
		ck_assert_uint_le(n, len + 2);
		ck_assert_int_eq(ids[0], 1);
	}
	free(text);
	free(ids);
	mllm_tokenizer_free(tok);
}
END_TEST

/* Mutated model files: each loads or fails with a clean error. */
START_TEST(test_fuzz_model_file)
{
	char path[4096], err[512];
	size_t n;
	unsigned char *orig, *buf;
	int n_iter = iterations(150), n_ok = 0;

	mllm_test_path(path, sizeof path, LLAMA_MODEL);
	MLLM_REQUIRE_FIXTURE(path);
	orig = slurp(path, &n);
	buf = malloc(n);
	ck_assert(orig && buf);
	seed(4);
	for (int it = 0; it < n_iter; it++) {
		mllm_tokenizer *tok = NULL;
		size_t len = n;
		memcpy(buf, orig, len);
		int k = 1 + (int)rnd_below(8);
		for (int j = 0; j < k; j++)
			buf[rnd_below(len)] = (unsigned char)rnd();
		if (rnd_below(4) == 0)
			len = rnd_below(len);
		int rc = tokenizer_from_proto(buf, len, "mutant", &tok, err, sizeof err);
		ck_assert_msg(rc == 0 || rc == MLLM_EFORMAT || rc == MLLM_EUNSUPPORTED,
		              "iteration %d: rc %d", it, rc);
		if (rc == 0) {
			/* A model that loads must also encode and decode. */
			int32_t ids[64];
			size_t m = 0, dl;
			ck_assert_ptr_nonnull(tok);
			int erc =
			    mllm_tokenizer_encode(tok, "Hello \xff world", 13, true, ids, 64, &m);
			ck_assert(erc == 0 || erc == MLLM_ENOSPACE);
			if (erc == 0) {
				char out[512];
				int drc = mllm_tokenizer_decode(tok, ids, m, out, sizeof out, &dl);
				ck_assert(drc == 0 || drc == MLLM_ENOSPACE);
			}
			n_ok++;
		} else {
			ck_assert_ptr_null(tok);
			ck_assert(err[0] != '\0');
		}
		mllm_tokenizer_free(tok);
	}
	free(orig);
	free(buf);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("tokenizer_fuzz");
	TCase *tc = tcase_create("fuzz");
	tcase_set_timeout(tc, mllm_test_long() ? 3600 : 120);
	tcase_add_test(tc, test_fuzz_encode);
	tcase_add_test(tc, test_fuzz_decode);
	tcase_add_test(tc, test_fuzz_long);
	tcase_add_test(tc, test_fuzz_model_file);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
