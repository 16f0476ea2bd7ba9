/*
 * test_tokenizer_bpe.c — the Llama-3 byte-level BPE tokenizer against
 * Hugging Face tokenizers' own outputs: the 3,000 fixture cases (ids with
 * special-token text parsed and split, decode with and without specials,
 * the streaming detokenizer) from tokenizer.json and from the R1 GGUF's
 * vocabulary; four threads sharing one tokenizer; BOS/EOS handling; the
 * pre-tokenizer on hand-picked strings; Unicode classes; loader refusals
 * (random input: test_tokenizer_bpe_fuzz.c).
 * White-box: includes engine/tokenizer_bpe.c (the pre-tokenizer).
 */
#include "harness.h"

#include <pthread.h>

#include "../../engine/tokenizer_bpe.c"
#include "json.h"

#include "file_util.h"

#define L3_JSON  "tokenizer/llama3/tokenizer.json"
#define L3_CASES "tokenizer/llama3/cases.jsonl"
#define R1_DIR   "models/tiny-mobilellm-r1-bf16"
#define R1_GGUF  R1_DIR "/tiny-mobilellm-r1-q8_0.gguf"

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

/* One case of cases.jsonl. */
typedef struct {
	const char *text;
	size_t len;
	int32_t ids[4096], split[4096];
	size_t n_ids, n_split; /* n_split: SIZE_MAX when absent */
	const mllm__json *decoded, *decoded_skip;
} bpe_case;

static size_t read_ids(const mllm__json *arr, int32_t *out, size_t cap)
{
	size_t n = 0;

	ck_assert(arr && arr->type == MLLM_JSON_ARRAY && arr->n <= cap);
	for (const mllm__json *e = arr->child; e; e = e->next)
		out[n++] = (int32_t)e->i;
	return n;
}

/* Calls fn on every fixture case; returns the number of cases. */
static size_t for_each_case(void (*fn)(const mllm_tokenizer *, const bpe_case *, void *),
                            const mllm_tokenizer *tok, void *ud)
{
	char path[1024], perr[256];
	size_t n, count = 0;
	char *data = slurp(mllm_test_path(path, sizeof path, L3_CASES), &n);
	static bpe_case c;

	ck_assert_msg(data != NULL, "fixture %s is missing", path);
	for (char *line = data, *end; line < data + n; line = end + 1) {
		mllm__json_doc *doc = NULL;
		const mllm__json *root, *t;
		end = memchr(line, '\n', (size_t)(data + n - line));
		if (!end)
			end = data + n;
		if (end == line)
			continue;
		ck_assert_msg(mllm__json_parse(line, (size_t)(end - line), NULL, &doc, perr,
		                               sizeof perr) == 0,
		              "cases line %zu: %s", count + 1, perr);
		root = mllm__json_root(doc);
		t = mllm__json_get(root, "text");
		c.text = t->str;
		c.len = t->len;
		c.n_ids = read_ids(mllm__json_get(root, "ids"), c.ids, 4096);
		c.n_split = SIZE_MAX;
		if (mllm__json_get(root, "ids_split_special"))
			c.n_split =
			    read_ids(mllm__json_get(root, "ids_split_special"), c.split, 4096);
		c.decoded = mllm__json_get(root, "decoded");
		c.decoded_skip = mllm__json_get(root, "decoded_skip_special");
		fn(tok, &c, ud);
		mllm__json_free(doc);
		count++;
	}
	free(data);
	return count;
}

static void check_ids(const char *what, const bpe_case *c, const int32_t *want, size_t n_want,
                      const int32_t *got, size_t n_got)
{
	size_t k = 0;

	while (k < n_want && k < n_got && want[k] == got[k])
		k++;
	ck_assert_msg(n_want == n_got && k == n_want,
	              "%s of \"%.60s\": first difference at %zu (want %d, got %d), %zu vs %zu ids",
	              what, c->text, k, k < n_want ? want[k] : -1, k < n_got ? got[k] : -1, n_want,
	              n_got);
}

static void encode_case(const mllm_tokenizer *tok, const bpe_case *c, void *ud)
{
	static int32_t got[8192];
	size_t n = 0;
	mllm_encode_opts o = {.parse_special = true};
	size_t *n_split = ud;

	ck_assert_int_eq(mllm_tokenizer_encode_ex(tok, c->text, c->len, &o, got, 8192, &n), 0);
	check_ids("encode", c, c->ids, c->n_ids, got, n);
	if (c->n_split != SIZE_MAX) {
		o.parse_special = false;
		ck_assert_int_eq(mllm_tokenizer_encode_ex(tok, c->text, c->len, &o, got, 8192, &n),
		                 0);
		check_ids("encode split_special", c, c->split, c->n_split, got, n);
		(*n_split)++;
	} else {
		/* Without special text both modes agree. */
		ck_assert_int_eq(mllm_tokenizer_encode(tok, c->text, c->len, false, got, 8192, &n),
		                 0);
		check_ids("encode (plain)", c, c->ids, c->n_ids, got, n);
	}
}

static void run_encode(const char *rel)
{
	mllm_tokenizer *tok = load(rel);
	size_t n_split = 0;

	ck_assert_uint_eq(for_each_case(encode_case, tok, &n_split), 3000);
	ck_assert_uint_eq(n_split, 109);
	mllm_tokenizer_free(tok);
}

START_TEST(encode_json)
{
	run_encode(L3_JSON);
}
END_TEST

START_TEST(encode_gguf)
{
	run_encode(R1_GGUF);
}
END_TEST

START_TEST(encode_model_dir_json)
{
	run_encode(R1_DIR "/tokenizer.json");
}
END_TEST

static void decode_case(const mllm_tokenizer *tok, const bpe_case *c, void *ud)
{
	static char out[65536], stream[65536];
	const mllm__json *skip = c->decoded_skip ? c->decoded_skip : c->decoded;
	size_t n = 0, o = 0;
	mllm_detok d;
	int k;

	(void)ud;
	ck_assert_int_eq(mllm_tokenizer_decode_ex(tok, c->ids, c->n_ids, true, out, sizeof out, &n),
	                 0);
	ck_assert_msg(n == c->decoded->len && memcmp(out, c->decoded->str, n) == 0,
	              "decode of \"%.60s\" gave \"%.60s\"", c->text, out);
	ck_assert_int_eq(mllm_tokenizer_decode(tok, c->ids, c->n_ids, out, sizeof out, &n), 0);
	ck_assert_msg(n == skip->len && memcmp(out, skip->str, n) == 0,
	              "decode (skip special) of \"%.60s\" gave \"%.60s\"", c->text, out);
	/* Streaming: whole characters only, and the same text in the end. */
	mllm_detok_init(&d, tok);
	d.keep_special = true;
	for (size_t i = 0; i < c->n_ids; i++) {
		k = mllm_detok_push(&d, c->ids[i], stream + o, MLLM_DETOK_MAX);
		ck_assert_int_ge(k, 0);
		ck_assert_msg(utf8_all_valid(stream + o, (size_t)k), "split character from detok");
		o += (size_t)k;
	}
	k = mllm_detok_flush(&d, stream + o, MLLM_DETOK_MAX);
	ck_assert_int_ge(k, 0);
	o += (size_t)k;
	ck_assert_msg(o == c->decoded->len && memcmp(stream, c->decoded->str, o) == 0,
	              "streamed decode of \"%.60s\" differs", c->text);
}

static void run_decode(const char *rel)
{
	mllm_tokenizer *tok = load(rel);

	ck_assert_uint_eq(for_each_case(decode_case, tok, NULL), 3000);
	mllm_tokenizer_free(tok);
}

START_TEST(decode_json)
{
	run_decode(L3_JSON);
}
END_TEST

START_TEST(decode_gguf)
{
	run_decode(R1_GGUF);
}
END_TEST

/* Four threads share one tokenizer (it is immutable after load): each
 * encodes every case and counts the ones that differ from the fixture. */
typedef struct {
	const mllm_tokenizer *tok;
	const char *const *text;
	const size_t *len;
	const int32_t *const *ids;
	const size_t *n_ids;
	size_t n, bad;
} bpe_job;

static void *encode_thread(void *arg)
{
	bpe_job *j = arg;
	int32_t *got = malloc(8192 * sizeof *got);
	mllm_encode_opts o = {.parse_special = true};

	for (size_t r = 0; r < 3; r++)
		for (size_t i = 0; i < j->n; i++) {
			size_t n = 0;
			if (mllm_tokenizer_encode_ex(j->tok, j->text[i], j->len[i], &o, got, 8192,
			                             &n) != 0 ||
			    n != j->n_ids[i] || memcmp(got, j->ids[i], n * sizeof *got) != 0)
				j->bad++;
		}
	free(got);
	return NULL;
}

typedef struct {
	char **text;
	size_t *len;
	int32_t **ids;
	size_t *n_ids;
	size_t n;
} case_copy;

static void copy_case(const mllm_tokenizer *tok, const bpe_case *c, void *ud)
{
	case_copy *cc = ud;
	size_t i = cc->n++;

	(void)tok;
	cc->text[i] = malloc(c->len + 1);
	memcpy(cc->text[i], c->text, c->len);
	cc->len[i] = c->len;
	cc->ids[i] = malloc((c->n_ids + 1) * sizeof(int32_t));
	memcpy(cc->ids[i], c->ids, c->n_ids * sizeof(int32_t));
	cc->n_ids[i] = c->n_ids;
}

START_TEST(threads_share)
{
	mllm_tokenizer *tok = load(L3_JSON);
	case_copy cc = {malloc(3000 * sizeof(char *)), malloc(3000 * sizeof(size_t)),
	                malloc(3000 * sizeof(int32_t *)), malloc(3000 * sizeof(size_t)), 0};
	bpe_job jobs[4];
	pthread_t th[4];

	ck_assert_uint_eq(for_each_case(copy_case, tok, &cc), 3000);
	for (int t = 0; t < 4; t++) {
		jobs[t] = (bpe_job){tok,      (const char *const *)cc.text,
		                    cc.len,   (const int32_t *const *)cc.ids,
		                    cc.n_ids, cc.n,
		                    0};
		ck_assert_int_eq(pthread_create(&th[t], NULL, encode_thread, &jobs[t]), 0);
	}
	for (int t = 0; t < 4; t++) {
		ck_assert_int_eq(pthread_join(th[t], NULL), 0);
		ck_assert_uint_eq(jobs[t].bad, 0);
	}
	for (size_t i = 0; i < cc.n; i++) {
		free(cc.text[i]);
		free(cc.ids[i]);
	}
	free(cc.text);
	free(cc.len);
	free(cc.ids);
	free(cc.n_ids);
	mllm_tokenizer_free(tok);
}
END_TEST

/* BOS comes from the configs, never twice; EOS is a set. */
static void check_specials(const mllm_tokenizer *tok)
{
	mllm_encode_opts o = {.add_bos = true, .parse_special = true};
	int32_t ids[64], eos[8];
	size_t n = 0;

	ck_assert_int_eq(mllm_tokenizer_n_vocab(tok), 128256);
	ck_assert_int_eq(mllm_tokenizer_bos(tok), 128000);
	ck_assert(mllm_tokenizer_add_bos(tok));
	ck_assert_int_eq(mllm_tokenizer_eos(tok), 128001);
	ck_assert(mllm_tokenizer_is_eos(tok, 128001));
	ck_assert(mllm_tokenizer_is_eos(tok, 128008));
	ck_assert(mllm_tokenizer_is_eos(tok, 128009));
	ck_assert(!mllm_tokenizer_is_eos(tok, 128000));
	ck_assert(!mllm_tokenizer_is_eos(tok, 13));
	ck_assert_uint_eq(mllm_tokenizer_eos_ids(tok, eos, 8), 3);
	ck_assert_int_eq(eos[0], 128001);
	ck_assert(mllm_tokenizer_is_control(tok, 128009));
	ck_assert(!mllm_tokenizer_is_control(tok, 9906));

	ck_assert_int_eq(mllm_tokenizer_encode_ex(tok, "Hello", 5, &o, ids, 64, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(ids[0], 128000);
	ck_assert_int_eq(ids[1], 9906);
	ck_assert_int_eq(
	    mllm_tokenizer_encode_ex(tok, "<|begin_of_text|>Hello", 22, &o, ids, 64, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(ids[0], 128000);
	ck_assert_int_eq(ids[1], 9906);
	/* Not parsed: the text stays text, and BOS is added. */
	o.parse_special = false;
	ck_assert_int_eq(
	    mllm_tokenizer_encode_ex(tok, "<|begin_of_text|>Hello", 22, &o, ids, 64, &n), 0);
	ck_assert_uint_gt(n, 3);
	ck_assert_int_eq(ids[0], 128000);
	ck_assert_int_ne(ids[1], 128000);
	/* Too small a buffer says how many ids are needed. */
	ck_assert_int_eq(mllm_tokenizer_encode(tok, "Hello world", 11, true, ids, 1, &n),
	                 MLLM_ENOSPACE);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_ge(mllm_tokenizer_max_ids(tok, 11), 13);
}

START_TEST(specials_json)
{
	mllm_tokenizer *tok = load(R1_DIR "/tokenizer.json");
	check_specials(tok);
	mllm_tokenizer_free(tok);
}
END_TEST

START_TEST(specials_gguf)
{
	mllm_tokenizer *tok = load(R1_GGUF);
	check_specials(tok);
	mllm_tokenizer_free(tok);
}
END_TEST

/* The fixture tokenizer directory has no generation config: EOS is the
 * tokenizer_config's, plus Llama 3's end-of-turn ids. */
START_TEST(specials_bare_json)
{
	mllm_tokenizer *tok = load(L3_JSON);
	ck_assert_int_eq(mllm_tokenizer_eos(tok), 128001);
	ck_assert(mllm_tokenizer_is_eos(tok, 128009));
	ck_assert(mllm_tokenizer_is_eos(tok, 128008));
	ck_assert_int_eq(mllm_tokenizer_bos(tok), 128000);
	mllm_tokenizer_free(tok);
}
END_TEST

START_TEST(token_bytes)
{
	mllm_tokenizer *tok = load(L3_JSON);
	char b[64];
	size_t n;
	const char *p;
	int32_t ids[8];

	/* "Ġworld" is " world" as bytes. */
	ck_assert_int_eq(mllm_tokenizer_encode(tok, " world", 6, false, ids, 8, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(mllm_tokenizer_token_bytes(tok, ids[0], b, sizeof b), 6);
	ck_assert(memcmp(b, " world", 6) == 0);
	p = mllm_tokenizer_piece(tok, ids[0], &n);
	ck_assert(p && n == 6 && memcmp(p, " world", 6) == 0);
	/* A special token's bytes are its text. */
	ck_assert_uint_eq(mllm_tokenizer_token_bytes(tok, 128009, b, sizeof b), 10);
	ck_assert(memcmp(b, "<|eot_id|>", 10) == 0);
	/* One byte of a character: the raw byte. */
	ck_assert_int_eq(mllm_tokenizer_encode(tok, "\xe2", 1, false, ids, 8, &n), 0);
	ck_assert_uint_eq(mllm_tokenizer_token_bytes(tok, ids[0], b, sizeof b), 1);
	ck_assert_int_eq((unsigned char)b[0], 0xe2);
	ck_assert_uint_eq(mllm_tokenizer_token_bytes(tok, -1, b, sizeof b), 0);
	ck_assert_uint_eq(mllm_tokenizer_token_bytes(tok, 128256, b, sizeof b), 0);
	mllm_tokenizer_free(tok);
}
END_TEST

/* The pre-tokenizer alone, on the regex's corner cases. */
static void pretok_is(const char *text, const char *const *want)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t n = strlen(text), i = 0, k = 0;

	while (i < n) {
		size_t e = pretok_end(s, n, i);
		ck_assert_msg(want[k] != NULL, "\"%s\": more pieces than expected", text);
		ck_assert_msg(e - i == strlen(want[k]) && memcmp(text + i, want[k], e - i) == 0,
		              "\"%s\": piece %zu is \"%.*s\", want \"%s\"", text, k, (int)(e - i),
		              text + i, want[k]);
		i = e;
		k++;
	}
	ck_assert_msg(want[k] == NULL, "\"%s\": fewer pieces than expected", text);
}

START_TEST(pretokenizer)
{
	pretok_is("Hello world", (const char *const[]){"Hello", " world", NULL});
	pretok_is("I'M we'Re they'LL it's", (const char *const[]){"I", "'M", " we", "'Re", " they",
	                                                          "'LL", " it", "'s", NULL});
	pretok_is("'sup", (const char *const[]){"'s", "up", NULL});
	pretok_is("1234567", (const char *const[]){"123", "456", "7", NULL});
	pretok_is("a 123", (const char *const[]){"a", " ", "123", NULL});
	pretok_is("x  \n\n  y", (const char *const[]){"x", "  \n\n", " ", " y", NULL});
	pretok_is("a   b", (const char *const[]){"a", "  ", " b", NULL});
	pretok_is("end  ", (const char *const[]){"end", "  ", NULL});
	pretok_is(" ...!!\r\nx", (const char *const[]){" ...!!\r\n", "x", NULL});
	pretok_is("(hello)", (const char *const[]){"(hello", ")", NULL});
	pretok_is("\t\tword", (const char *const[]){"\t", "\tword", NULL});
	/* NBSP is whitespace, ideographic letters are letters, and ² a number. */
	pretok_is("a\xc2\xa0"
	          "b",
	          (const char *const[]){"a",
	                                "\xc2\xa0"
	                                "b",
	                                NULL});
	pretok_is("\xe4\xbd\xa0\xe5\xa5\xbd",
	          (const char *const[]){"\xe4\xbd\xa0\xe5\xa5\xbd", NULL});
	pretok_is("x\xc2\xb2\xc2\xb2", (const char *const[]){"x", "\xc2\xb2\xc2\xb2", NULL});
	/* An invalid byte is a symbol of its own class. */
	pretok_is("a\xff\xfe b", (const char *const[]){"a", "\xff\xfe", " b", NULL});
}
END_TEST

START_TEST(unicode_classes)
{
	ck_assert_int_eq(uc_class('A'), UC_L);
	ck_assert_int_eq(uc_class(0x4e00), UC_L);  /* CJK */
	ck_assert_int_eq(uc_class(0x0660), UC_N);  /* Arabic-Indic zero */
	ck_assert_int_eq(uc_class(0x2167), UC_N);  /* Roman numeral eight, Nl */
	ck_assert_int_eq(uc_class(0x3000), UC_WS); /* ideographic space */
	ck_assert_int_eq(uc_class(0x0085), UC_WS);
	ck_assert_int_eq(uc_class(0x200b), 0); /* zero width space: not White_Space */
	ck_assert_int_eq(uc_class(0x0301), 0); /* combining acute: Mn */
	ck_assert_int_eq(uc_class(0x1f600), 0);
	ck_assert_int_eq(uc_class(0x10ffff), 0);
	for (uint32_t c = 0; c < 128; c++) {
		unsigned char b = (unsigned char)c;
		ck_assert_int_eq(char_at(&b, 1, 0).cls, uc_class(c));
	}
}
END_TEST

static char *patched(const char *from, const char *to);

/* With ignore_merges off every pre-token goes through the merge loop, and
 * the fixture cases (built so that it never matters) must not change. */
START_TEST(encode_json_by_merges)
{
	char *j = patched("\"ignore_merges\": true", "\"ignore_merges\": false");
	mllm_tokenizer *tok = NULL;
	char err[512];
	size_t n_split = 0;

	make_tmpdir();
	spit(tmp("tokenizer.json"), j, strlen(j));
	ck_assert_int_eq(mllm_tokenizer_load(tmp("tokenizer.json"), &tok, err, sizeof err), 0);
	ck_assert(!tok->ignore_merges);
	ck_assert_uint_eq(for_each_case(encode_case, tok, &n_split), 3000);
	mllm_tokenizer_free(tok);
	free(j);
	rm_tmpdir();
}
END_TEST

/* A tokenizer.json with another pre-tokenizer, or a broken one, is refused
 * with a message; an invalid vocabulary too. */
static int load_text(const char *json, char *err, size_t errlen)
{
	mllm_tokenizer *tok = NULL;
	int rc;

	spit(tmp("tokenizer.json"), json, strlen(json));
	rc = mllm_tokenizer_load(tmp("tokenizer.json"), &tok, err, errlen);
	mllm_tokenizer_free(tok);
	return rc;
}

START_TEST(loader_refusals)
{
	char err[512];

	make_tmpdir();
	ck_assert_int_eq(load_text("{", err, sizeof err), MLLM_EFORMAT);
	ck_assert_int_eq(load_text("{\"model\": {\"type\": \"Unigram\"}}", err, sizeof err),
	                 MLLM_EUNSUPPORTED);
	ck_assert_msg(strstr(err, "BPE") != NULL, "%s", err);
	ck_assert_int_eq(
	    load_text("{\"normalizer\": null, \"model\": {\"type\": \"BPE\", \"vocab\": "
	              "{}, \"merges\": []}, \"pre_tokenizer\": {\"type\": "
	              "\"ByteLevel\"}}",
	              err, sizeof err),
	    MLLM_EUNSUPPORTED);
	ck_assert_msg(strstr(err, "pre_tokenizer") != NULL, "%s", err);
	rm_tmpdir();
}
END_TEST

/* A copy of the real file with one thing broken. */
static char *patched(const char *from, const char *to)
{
	char path[1024];
	size_t n;
	char *src = slurp(mllm_test_path(path, sizeof path, L3_JSON), &n), *p, *out;
	size_t fl = strlen(from), tl = strlen(to);

	ck_assert(src != NULL);
	p = strstr(src, from);
	ck_assert_msg(p != NULL, "'%s' not in the fixture", from);
	out = malloc(n - fl + tl + 1);
	memcpy(out, src, (size_t)(p - src));
	memcpy(out + (p - src), to, tl);
	memcpy(out + (p - src) + tl, p + fl, n - (size_t)(p - src) - fl);
	out[n - fl + tl] = '\0';
	free(src);
	return out;
}

START_TEST(loader_broken_vocab)
{
	char err[512];
	char *j;

	make_tmpdir();
	/* A merge whose result is not a piece. */
	j = patched("\"Ġ Ġ\"", "\"zq xj\"");
	ck_assert_int_eq(load_text(j, err, sizeof err), MLLM_EFORMAT);
	ck_assert_msg(strstr(err, "merge 0") != NULL, "%s", err);
	free(j);
	/* A piece outside GPT-2's byte alphabet. */
	j = patched("\"!\": 0", "\"\\u0001\": 0");
	ck_assert_int_eq(load_text(j, err, sizeof err), MLLM_EFORMAT);
	ck_assert_msg(strstr(err, "byte-level") != NULL, "%s", err);
	free(j);
	/* ignore_merges off still encodes (by merges) the same. */
	j = patched("\"ignore_merges\": true", "\"ignore_merges\": false");
	{
		mllm_tokenizer *tok = NULL;
		int32_t ids[16];
		size_t n;
		spit(tmp("tokenizer.json"), j, strlen(j));
		ck_assert_int_eq(mllm_tokenizer_load(tmp("tokenizer.json"), &tok, err, sizeof err),
		                 0);
		ck_assert(!tok->ignore_merges);
		ck_assert_int_eq(mllm_tokenizer_encode(tok, "Hello world", 11, false, ids, 16, &n),
		                 0);
		ck_assert_uint_eq(n, 2);
		ck_assert_int_eq(ids[0], 9906);
		ck_assert_int_eq(ids[1], 1917);
		mllm_tokenizer_free(tok);
	}
	free(j);
	rm_tmpdir();
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("tokenizer_bpe");
	TCase *tc = tcase_create("bpe");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, encode_json);
	tcase_add_test(tc, encode_gguf);
	tcase_add_test(tc, encode_model_dir_json);
	tcase_add_test(tc, encode_json_by_merges);
	tcase_add_test(tc, decode_json);
	tcase_add_test(tc, decode_gguf);
	tcase_add_test(tc, threads_share);
	tcase_add_test(tc, specials_json);
	tcase_add_test(tc, specials_gguf);
	tcase_add_test(tc, specials_bare_json);
	tcase_add_test(tc, token_bytes);
	tcase_add_test(tc, pretokenizer);
	tcase_add_test(tc, unicode_classes);
	tcase_add_test(tc, loader_refusals);
	tcase_add_test(tc, loader_broken_vocab);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
