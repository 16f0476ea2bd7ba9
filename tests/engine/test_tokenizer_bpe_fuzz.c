/*
 * test_tokenizer_bpe_fuzz.c — the byte-level BPE tokenizer on input nobody
 * chose: random bytes, random code points of every plane and runs of
 * special-token text through encode, token bytes and the streaming
 * detokenizer (ids in range, bytes round-trip exactly, never a split
 * character), and mutated or truncated tokenizer.json files through the
 * loader (refused with a message, or usable). MLLM_LONG=1 (make fuzz) runs
 * more rounds. Meant to run under make asan.
 */
#include "harness.h"

#include "../../engine/tokenizer_internal.h"

#include "file_util.h"

#define L3_JSON "tokenizer/llama3/tokenizer.json"

static mllm_tokenizer *load(const char *rel)
{
	char path[1024], err[512];
	mllm_tokenizer *tok = NULL;
	int rc;

	mllm_test_path(path, sizeof path, rel);
	MLLM_REQUIRE_FIXTURE(path);
	rc = mllm_tokenizer_load(path, &tok, err, sizeof err);
	ck_assert_msg(rc == 0, "load %s: %s", path, err);
	return tok;
}

/* Random bytes and random code points: ids are always in range, the pieces'
 * bytes always give back the input exactly, and the detokenizer never
 * emits a partial character. */
static void lossless(const mllm_tokenizer *tok, const unsigned char *s, size_t n, bool special)
{
	static int32_t ids[8192];
	static char back[65536], out[65536];
	mllm_encode_opts o = {.parse_special = special};
	size_t k = 0, m = 0, dn = 0;
	mllm_detok d;

	ck_assert_int_eq(mllm_tokenizer_encode_ex(tok, (const char *)s, n, &o, ids, 8192, &k), 0);
	ck_assert_uint_le(k, n);
	for (size_t i = 0; i < k; i++) {
		ck_assert(ids[i] >= 0 && ids[i] < mllm_tokenizer_n_vocab(tok));
		m += mllm_tokenizer_token_bytes(tok, ids[i], back + m, sizeof back - m);
	}
	ck_assert_msg(m == n && memcmp(back, s, n) == 0, "bytes do not round-trip");
	mllm_detok_init(&d, tok);
	d.keep_special = true;
	for (size_t i = 0; i < k; i++) {
		int r = mllm_detok_push(&d, ids[i], out + dn, MLLM_DETOK_MAX);
		ck_assert_int_ge(r, 0);
		ck_assert(utf8_all_valid(out + dn, (size_t)r));
		dn += (size_t)r;
	}
	ck_assert_int_ge(mllm_detok_flush(&d, out + dn, MLLM_DETOK_MAX), 0);
}

START_TEST(fuzz_random)
{
	mllm_tokenizer *tok = load(L3_JSON);
	static const char *const bits[] = {
	    "<|eot_id|>", "<|begin_of_text|>", "<|", "'s", "'LL", " ", "\r\n", "\n", "\t",
	    "123",        "\xc2\xa0"};
	unsigned char s[2048];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	int rounds = mllm_test_long() ? 20000 : 1500;

	for (int r = 0; r < rounds; r++) {
		size_t n = 0, want;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		want = x % 1024;
		while (n < want) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			switch (r % 3) {
			case 0: /* raw bytes */
				s[n++] = (unsigned char)(x >> 24);
				break;
			case 1: { /* a code point, any plane */
				uint32_t cp = (uint32_t)(x >> 20) % 0x110000;
				if (cp >= 0xd800 && cp < 0xe000)
					cp = 0x41;
				if (cp < 0x80) {
					s[n++] = (unsigned char)cp;
				} else if (cp < 0x800) {
					s[n++] = (unsigned char)(0xc0 | cp >> 6);
					s[n++] = (unsigned char)(0x80 | (cp & 0x3f));
				} else if (cp < 0x10000) {
					s[n++] = (unsigned char)(0xe0 | cp >> 12);
					s[n++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
					s[n++] = (unsigned char)(0x80 | (cp & 0x3f));
				} else {
					s[n++] = (unsigned char)(0xf0 | cp >> 18);
					s[n++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
					s[n++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
					s[n++] = (unsigned char)(0x80 | (cp & 0x3f));
				}
				break;
			}
			default: { /* pieces that stress the regex and specials */
				const char *b = bits[(x >> 33) % (sizeof bits / sizeof bits[0])];
				size_t bl = strlen(b);
				memcpy(s + n, b, bl);
				n += bl;
			}
			}
		}
		lossless(tok, s, n, r & 1);
	}
	/* A long run with no pre-token break goes through the merge heap. */
	memset(s, 'a', sizeof s);
	lossless(tok, s, sizeof s, false);
	for (size_t i = 0; i < sizeof s; i++)
		s[i] = (unsigned char)(0x80 + i % 64);
	lossless(tok, s, sizeof s, false);
	mllm_tokenizer_free(tok);
}
END_TEST

/* A small byte-level tokenizer.json written here: the 256 byte pieces,
 * a few merges, one special and one plain added token. The regex is the
 * one the loader requires, as tokenizer.json spells it. */
static const char llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static void put_str(wbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void json_str(wbuf *b, const char *s, size_t n)
{
	put(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			put(b, "\\", 1);
		put(b, s + i, 1);
	}
	put(b, "\"", 1);
}

/* GPT-2's character for byte c, as UTF-8, into out (returns its length). */
static size_t gpt2_char(int c, char *out)
{
	int k = 0, cp = -1;

	for (int b = 0; b < 256; b++) {
		bool direct = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
		int v = direct ? b : 256 + k++;
		if (b == c)
			cp = v;
	}
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	out[0] = (char)(0xc0 | cp >> 6);
	out[1] = (char)(0x80 | (cp & 0x3f));
	return 2;
}

static char *small_json(size_t *len)
{
	static const char *const extra[] = {
	    "he", "ll", "hell", "hello", "\xc4\xa0w", "or", "\xc4\xa0wor", "ld", "\xc4\xa0world"};
	static const char *const merges[] = {"h e",          "l l",        "he ll",
	                                     "hell o",       "\xc4\xa0 w", "o r",
	                                     "\xc4\xa0w or", "l d",        "\xc4\xa0wor ld"};
	wbuf b = {0};
	char ch[4], num[32];
	int id = 0;

	put_str(&b, "{\"added_tokens\":[{\"id\":265,\"content\":\"<|eot_id|>\",\"special\":true},"
	            "{\"id\":266,\"content\":\"<x>\",\"special\":false}],\"normalizer\":null,"
	            "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":"
	            "\"Split\",\"pattern\":{\"Regex\":");
	json_str(&b, llama3_regex, strlen(llama3_regex));
	put_str(&b, "},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\"}]},"
	            "\"model\":{\"type\":\"BPE\",\"ignore_merges\":true,\"vocab\":{");
	for (int c = 0; c < 256; c++) {
		size_t l = gpt2_char(c, ch);
		json_str(&b, ch, l);
		snprintf(num, sizeof num, ":%d,", id++);
		put(&b, num, strlen(num));
	}
	for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
		json_str(&b, extra[i], strlen(extra[i]));
		snprintf(num, sizeof num, ":%d%s", id++,
		         i + 1 < sizeof extra / sizeof extra[0] ? "," : "");
		put(&b, num, strlen(num));
	}
	put_str(&b, "},\"merges\":[");
	for (size_t i = 0; i < sizeof merges / sizeof merges[0]; i++) {
		if (i)
			put(&b, ",", 1);
		json_str(&b, merges[i], strlen(merges[i]));
	}
	put(&b, "]}}", 4); /* with the NUL */
	*len = b.n - 1;
	return (char *)b.p;
}

START_TEST(loader_small_and_mutants)
{
	char err[512];
	size_t n;
	char *j = small_json(&n);
	mllm_tokenizer *tok = NULL;
	int32_t ids[256];
	size_t k;
	uint64_t x = 0x2545f4914f6cdd1dull;
	int n_ok = 0;

	make_tmpdir();
	spit(tmp("tokenizer.json"), j, n);
	ck_assert_msg(mllm_tokenizer_load(tmp("tokenizer.json"), &tok, err, sizeof err) == 0, "%s",
	              err);
	ck_assert_int_eq(mllm_tokenizer_n_vocab(tok), 267);
	ck_assert_int_eq(mllm_tokenizer_encode(tok, "hello world", 11, false, ids, 256, &k), 0);
	ck_assert_uint_eq(k, 2);
	ck_assert_int_eq(ids[0], 259);
	ck_assert_int_eq(ids[1], 264);
	/* The plain added token always matches, the special one only when asked. */
	ck_assert_int_eq(mllm_tokenizer_encode(tok, "<x><|eot_id|>", 13, false, ids, 256, &k), 0);
	ck_assert_int_eq(ids[0], 266);
	ck_assert_uint_gt(k, 2);
	mllm_tokenizer_free(tok);

	/* Mutants: a few bytes changed, or the file cut short. Whatever
	 * loads must encode and decode without harm. */
	for (int r = 0; r < (mllm_test_long() ? 20000 : 1500); r++) {
		char *m = malloc(n);
		size_t len = n;
		memcpy(m, j, n);
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		if (r % 5 == 0) {
			len = (size_t)(x % n);
		} else {
			for (int f = 0; f < 1 + (int)(x % 4); f++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				m[(x >> 8) % n] = (char)(x >> 40);
			}
		}
		spit(tmp("tokenizer.json"), m, len);
		tok = NULL;
		if (mllm_tokenizer_load(tmp("tokenizer.json"), &tok, err, sizeof err) == 0) {
			static const char probe[] = "hello <x> world<|eot_id|>\xff";
			char out[1024];
			mllm_encode_opts o = {.add_bos = true, .parse_special = true};
			n_ok++;
			ck_assert_int_eq(
			    mllm_tokenizer_encode_ex(tok, probe, strlen(probe), &o, ids, 256, &k),
			    0);
			ck_assert_int_eq(mllm_tokenizer_decode(tok, ids, k, out, sizeof out, &k),
			                 0);
		} else {
			ck_assert(strlen(err) > 0);
		}
		mllm_tokenizer_free(tok);
		free(m);
	}
	ck_assert_int_gt(n_ok, 0);
	free(j);
	rm_tmpdir();
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("tokenizer_bpe_fuzz");
	TCase *tc = tcase_create("fuzz");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, fuzz_random);
	tcase_add_test(tc, loader_small_and_mutants);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
