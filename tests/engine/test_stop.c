/*
 * test_stop.c — the stop-sequence matcher: stops split across pushes, held
 * partial matches, stops inside and around multi-byte characters, several
 * stops at once, and a randomized comparison against the obvious reference
 * (cut the whole text at the first occurrence of any stop string).
 */
#include "harness.h"

#include "../../engine/stop.c"

/* Feeds chunks, checks every release, returns everything released. */
typedef struct {
	char text[4096];
	size_t len;
	bool matched;
} released;

static void feed(mllm_stop *st, released *r, const char *chunk, size_t n)
{
	const char *out;
	size_t k = mllm_stop_push(st, chunk, n, &out);
	ck_assert_uint_le(r->len + k, sizeof r->text);
	memcpy(r->text + r->len, out, k);
	r->len += k;
	r->matched = st->matched;
}

static void finish(mllm_stop *st, released *r)
{
	const char *out;
	size_t k = mllm_stop_flush(st, &out);
	memcpy(r->text + r->len, out, k);
	r->len += k;
	r->text[r->len] = '\0';
}

START_TEST(test_split_across_tokens)
{
	const char *stops[] = {"\n\nUser:"};
	const char *chunks[] = {"Hello", " there", ".\n", "\nUs", "er", ":", " more"};
	mllm_stop st;
	released r = {.len = 0};
	ck_assert_int_eq(mllm_stop_init(&st, stops, 1), 0);
	feed(&st, &r, chunks[0], strlen(chunks[0]));
	feed(&st, &r, chunks[1], strlen(chunks[1]));
	ck_assert_uint_eq(r.len, 11); /* nothing to hold yet */
	feed(&st, &r, chunks[2], strlen(chunks[2]));
	ck_assert_uint_eq(r.len, 12); /* "\n" held back */
	feed(&st, &r, chunks[3], strlen(chunks[3]));
	feed(&st, &r, chunks[4], strlen(chunks[4]));
	ck_assert_uint_eq(r.len, 12);
	ck_assert(!r.matched);
	feed(&st, &r, chunks[5], strlen(chunks[5]));
	ck_assert(r.matched);
	feed(&st, &r, chunks[6], strlen(chunks[6])); /* nothing after a match */
	finish(&st, &r);
	ck_assert_str_eq(r.text, "Hello there.");
	mllm_stop_free(&st);
}
END_TEST

/* skip_lead_space: the space a chat response drops is released without
 * being matched — no stop string sees it, whatever comes after. */
START_TEST(test_skip_lead_space)
{
	static const struct {
		const char *stop;
		const char *chunks[3];
		bool skip;
		const char *want;
		bool matched;
	} cases[] = {
	    {" ", {" Anna", ", he", " said"}, true, " Anna,", true},
	    {" ", {" Anna", ", he", " said"}, false, "", true},
	    {" A", {" Anna", " Ate", ""}, true, " Anna", true},
	    {"A", {" Anna", "", ""}, true, " ", true},
	    {"nn", {"", " Anna", ""}, true, " A", true}, /* the first text, not push */
	    {" x", {" ", " x", ""}, true, " ", true},    /* a lone space, then a match */
	    {"zz", {" a", " b", ""}, true, " a b", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *stops[] = {cases[i].stop};
		mllm_stop st;
		released r = {.len = 0};
		ck_assert_int_eq(mllm_stop_init(&st, stops, 1), 0);
		st.skip_lead_space = cases[i].skip;
		for (int k = 0; k < 3; k++)
			feed(&st, &r, cases[i].chunks[k], strlen(cases[i].chunks[k]));
		finish(&st, &r);
		ck_assert_msg(strcmp(r.text, cases[i].want) == 0, "case %zu: '%s'", i, r.text);
		ck_assert_int_eq(r.matched, cases[i].matched);
		mllm_stop_free(&st);
	}
}
END_TEST

START_TEST(test_partial_released_when_broken)
{
	/* "ab" held while it may become "abc", then released when it cannot. */
	const char *stops[] = {"abc"};
	mllm_stop st;
	released r = {.len = 0};
	ck_assert_int_eq(mllm_stop_init(&st, stops, 1), 0);
	feed(&st, &r, "xa", 2);
	ck_assert_uint_eq(r.len, 1);
	feed(&st, &r, "b", 1);
	ck_assert_uint_eq(r.len, 1);
	feed(&st, &r, "ab", 2); /* "abab": first "ab" can no longer match */
	ck_assert_uint_eq(r.len, 3);
	feed(&st, &r, "d", 1);
	ck_assert_uint_eq(r.len, 6);
	feed(&st, &r, "ab", 2);
	finish(&st, &r); /* held "ab" comes out at the end */
	ck_assert(!st.matched);
	ck_assert_str_eq(r.text, "xababdab");
	mllm_stop_free(&st);
}
END_TEST

START_TEST(test_multibyte)
{
	/* A stop made of a multi-byte character; text arrives as whole
	 * characters (what mllm_detok releases), the stop's first byte is
	 * shared by other characters (é = C3 A9, è = C3 A8). */
	const char *stops[] = {"caf\xc3\xa9", "\xf0\x9f\xa6\x99" /* llama emoji */};
	mllm_stop st;
	released r = {.len = 0};
	ck_assert_int_eq(mllm_stop_init(&st, stops, 2), 0);
	feed(&st, &r, "un caf", 6);
	ck_assert_uint_eq(r.len, 3); /* "caf" held */
	feed(&st, &r, "\xc3\xa8", 2);
	ck_assert_uint_eq(r.len, 8);
	feed(&st, &r, " na\xc3\xaf", 5);
	feed(&st, &r, "ve \xf0\x9f\xa6\x99 x", 9);
	ck_assert(r.matched);
	finish(&st, &r);
	ck_assert_str_eq(r.text, "un caf\xc3\xa8 na\xc3\xafve ");
	mllm_stop_free(&st);

	/* A stop string that starts inside a character (a continuation byte)
	 * still matches bytes, and the held text never splits a character. */
	const char *odd[] = {"\xa9!"};
	released r2 = {.len = 0};
	ck_assert_int_eq(mllm_stop_init(&st, odd, 1), 0);
	feed(&st, &r2, "ab\xc3\xa9", 4);
	ck_assert_uint_eq(r2.len, 2); /* "é" held whole, not only its A9 */
	feed(&st, &r2, "!", 1);
	ck_assert(r2.matched);
	finish(&st, &r2);
	ck_assert_str_eq(r2.text, "ab\xc3");
	mllm_stop_free(&st);
}
END_TEST

START_TEST(test_earliest_of_several)
{
	const char *stops[] = {"world", "lo w", "", "zzz"};
	mllm_stop st;
	released r = {.len = 0};
	ck_assert_int_eq(mllm_stop_init(&st, stops, 4), 0);
	ck_assert_int_eq(st.n_stop, 3); /* the empty string is ignored */
	feed(&st, &r, "hello world", 11);
	finish(&st, &r);
	ck_assert(r.matched);
	ck_assert_str_eq(r.text, "hel");
	mllm_stop_free(&st);
}
END_TEST

START_TEST(test_no_stops_and_errors)
{
	mllm_stop st;
	released r = {.len = 0};
	ck_assert_int_eq(mllm_stop_init(&st, NULL, 0), 0);
	feed(&st, &r, "abc", 3);
	ck_assert_uint_eq(r.len, 3);
	mllm_stop_free(&st);
	const char *five[] = {"a", "b", "c", "d", "e"};
	ck_assert_int_eq(mllm_stop_init(&st, five, 5), MLLM_EINVAL);
	const char *null_one[] = {"a", NULL};
	ck_assert_int_eq(mllm_stop_init(&st, null_one, 2), MLLM_EINVAL);
	mllm__alloc_fail_after(0);
	ck_assert_int_eq(mllm_stop_init(&st, five, 2), MLLM_ENOMEM);
	mllm__alloc_fail_after(-1);
	/* A token's text longer than the initial buffers grows them. */
	char big[3000];
	memset(big, 'q', sizeof big);
	const char *s1[] = {"qz"};
	ck_assert_int_eq(mllm_stop_init(&st, s1, 1), 0);
	released r2 = {.len = 0};
	feed(&st, &r2, big, sizeof big);
	ck_assert_uint_eq(r2.len, sizeof big - 1);
	mllm_stop_free(&st);
}
END_TEST

/* Deterministic PRNG for the randomized test. */
static uint64_t rs = 88172645463325252ULL;
static uint32_t rnd(uint32_t n)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (uint32_t)(rs % n);
}

START_TEST(test_random_against_reference)
{
	/* Small alphabet so stops occur often, partially and overlapping. */
	const char alpha[] = "ab\n ";
	for (int iter = 0; iter < 3000; iter++) {
		char text[200], stops_buf[MLLM_MAX_STOP][8];
		const char *stops[MLLM_MAX_STOP];
		int n_text = 1 + (int)rnd(120), n_stop = (int)rnd(MLLM_MAX_STOP + 1);
		for (int i = 0; i < n_text; i++)
			text[i] = alpha[rnd(4)];
		text[n_text] = '\0';
		for (int s = 0; s < n_stop; s++) {
			int len = 1 + (int)rnd(6);
			for (int i = 0; i < len; i++)
				stops_buf[s][i] = alpha[rnd(4)];
			stops_buf[s][len] = '\0';
			stops[s] = stops_buf[s];
		}
		/* Token boundaries, then the reference: generation stops after
		 * the first token whose text completes a stop string; the cut
		 * is the earliest occurrence of any stop in the text so far. */
		int bounds[200], n_bounds = 0;
		for (int i = 0; i < n_text;) {
			int k = 1 + (int)rnd(5);
			i += k < n_text - i ? k : n_text - i;
			bounds[n_bounds++] = i;
		}
		size_t cut = (size_t)n_text;
		bool stopped = false;
		for (int b = 0; b < n_bounds && !stopped; b++) {
			char prefix[200];
			memcpy(prefix, text, (size_t)bounds[b]);
			prefix[bounds[b]] = '\0';
			for (int s = 0; s < n_stop; s++) {
				const char *p = strstr(prefix, stops[s]);
				if (p && (size_t)(p - prefix) < cut) {
					cut = (size_t)(p - prefix);
					stopped = true;
				}
			}
		}
		mllm_stop st;
		released r = {.len = 0};
		ck_assert_int_eq(mllm_stop_init(&st, stops, n_stop), 0);
		for (int b = 0, i = 0; b < n_bounds; b++) {
			feed(&st, &r, text + i, (size_t)(bounds[b] - i));
			i = bounds[b];
			/* Released text is always a prefix of the final answer. */
			ck_assert_uint_le(r.len, cut);
			ck_assert(memcmp(r.text, text, r.len) == 0);
		}
		finish(&st, &r);
		ck_assert_uint_eq(r.len, cut);
		ck_assert(memcmp(r.text, text, cut) == 0);
		ck_assert(r.matched == (cut < (size_t)n_text));
		mllm_stop_free(&st);
	}
}
END_TEST

/* Whole-character check: s[0..n) is valid, complete UTF-8. */
static bool utf8_complete(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t k = c < 0x80         ? 1
		           : (c >> 5) == 6  ? 2
		           : (c >> 4) == 14 ? 3
		           : (c >> 3) == 30 ? 4
		                            : 0;
		if (k == 0 || i + k > n)
			return false;
		for (size_t j = 1; j < k; j++)
			if (((unsigned char)s[i + j] & 0xc0) != 0x80)
				return false;
		i += k;
	}
	return true;
}

START_TEST(test_detok_multibyte_stops)
{
	/* The real pipeline: token ids from the stories260K tokenizer, whose
	 * 512-piece vocabulary spells non-ASCII characters with byte-fallback
	 * tokens, so each multi-byte character arrives over several tokens.
	 * Stops on such characters match once the character is complete, and
	 * every release is whole UTF-8. */
	char path[1024], err[256];
	mllm_tokenizer *tok = NULL;
	const char *text =
	    "the na\xc3\xafve caf\xc3\xa9 \xf0\x9f\xa6\x99 ran \xe6\x97\xa5\xe6\x9c\xac end";
	const char *stops_list[][2] = {
	    {"\xc3\xa9", NULL},           /* é, from two byte tokens */
	    {"\xf0\x9f\xa6\x99 r", NULL}, /* emoji + following text */
	    {"\xe6\x9c\xac", "zz"},       /* second CJK character */
	    /* held back over many tokens, then broken: all released */
	    {"caf\xc3\xa9 \xf0\x9f\xa6\x99 ran \xe6\x97\xa5 X", NULL},
	};
	mllm_test_path(path, sizeof path, "models/stories260K/tokenizer.model");
	MLLM_REQUIRE_FIXTURE(path);
	ck_assert_msg(mllm_tokenizer_load(path, &tok, err, sizeof err) == 0, "%s", err);
	int32_t ids[256];
	size_t n_ids = 0;
	ck_assert_int_eq(mllm_tokenizer_encode(tok, text, strlen(text), false, ids, 256, &n_ids),
	                 0);
	ck_assert_uint_gt(n_ids, strlen(text) / 2); /* byte fallback in use */
	for (size_t k = 0; k < sizeof stops_list / sizeof stops_list[0]; k++) {
		const char *stops[2] = {stops_list[k][0], stops_list[k][1]};
		int n_stop = stops[1] ? 2 : 1;
		mllm_stop st;
		mllm_detok d;
		released r = {.len = 0};
		char piece[MLLM_DETOK_MAX + 16];
		ck_assert_int_eq(mllm_stop_init(&st, stops, n_stop), 0);
		mllm_detok_init(&d, tok);
		for (size_t i = 0; i < n_ids && !st.matched; i++) {
			int n = mllm_detok_push(&d, ids[i], piece, sizeof piece);
			ck_assert_int_ge(n, 0);
			size_t before = r.len;
			feed(&st, &r, piece, (size_t)n);
			ck_assert(utf8_complete(r.text + before, r.len - before));
		}
		if (!st.matched) {
			int n = mllm_detok_flush(&d, piece, sizeof piece);
			feed(&st, &r, piece, (size_t)(n > 0 ? n : 0));
		}
		finish(&st, &r);
		/* Reference: the decoded text cut at the stop. */
		char full[512];
		size_t n_full;
		ck_assert_int_eq(mllm_tokenizer_decode(tok, ids, n_ids, full, sizeof full, &n_full),
		                 0);
		const char *at = strstr(full, stops[0]);
		size_t cut = at ? (size_t)(at - full) : n_full;
		ck_assert_uint_eq(r.len, cut);
		ck_assert(memcmp(r.text, full, cut) == 0);
		ck_assert(st.matched == (at != NULL));
		mllm_stop_free(&st);
	}
	mllm_tokenizer_free(tok);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("stop");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_split_across_tokens);
	tcase_add_test(tc, test_skip_lead_space);
	tcase_add_test(tc, test_partial_released_when_broken);
	tcase_add_test(tc, test_multibyte);
	tcase_add_test(tc, test_earliest_of_several);
	tcase_add_test(tc, test_no_stops_and_errors);
	tcase_add_test(tc, test_random_against_reference);
	tcase_add_test(tc, test_detok_multibyte_stops);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
