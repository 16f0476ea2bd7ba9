/*
 * test_tokenizer.c — the SentencePiece tokenizer against SentencePiece's own
 * outputs: the 3,000 fixture cases (encode, decode, streaming detokenizer),
 * llama.cpp's cases from tokenizer.model and from the vocab-only GGUF, the
 * stories260K and tiny-model goldens, invalid UTF-8 and decode edge cases
 * (tables printed by bench/tokenizer_sp.py --edge-cases from SentencePiece),
 * four threads sharing one tokenizer, and the loader's error paths.
 * White-box: includes engine/tokenizer_load.c and engine/tokenizer.c.
 */
#include "harness.h"

#include <jansson.h>
#include <pthread.h>

#include "../../engine/tokenizer_load.c"
#include "../../engine/tokenizer.c"

#define LLAMA_MODEL   "tokenizer/llama2/tokenizer.model"
#define LLAMA_CASES   "tokenizer/llama2/cases.jsonl"
#define LLAMACPP_GGUF "tokenizer/llama2/llamacpp/ggml-vocab-llama-spm.gguf"

static mllm_tokenizer *load(const char *rel)
{
	char path[4096], err[512] = "";
	mllm_tokenizer *tok = NULL;

	mllm_test_path(path, sizeof path, rel);
	MLLM_REQUIRE_FIXTURE(path);
	int rc = mllm_tokenizer_load(path, &tok, err, sizeof err);
	ck_assert_msg(rc == 0, "load %s: %s (%s)", path, err, mllm_strerror(rc));
	ck_assert_ptr_nonnull(tok);
	return tok;
}

/* Whether s[0, n) is a sequence of whole, well-formed UTF-8 characters. */
static bool whole_utf8(const char *s, size_t n)
{
	return utf8_all_valid(s, n);
}

/* Encodes text and compares with want[n_want]; returns false on mismatch
 * and prints both sequences. */
static bool encode_matches(const mllm_tokenizer *tok, const char *text, size_t len,
                           const int32_t *want, size_t n_want, const char *what)
{
	size_t cap = mllm_tokenizer_max_ids(tok, len), n = 0;
	int32_t *ids = malloc(cap * sizeof *ids);
	bool ok;

	ck_assert_ptr_nonnull(ids);
	int rc = mllm_tokenizer_encode(tok, text, len, false, ids, cap, &n);
	ck_assert_int_eq(rc, 0);
	ok = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
	if (!ok) {
		fprintf(stderr, "%s: encode mismatch for \"%.*s\"\n got:", what,
		        (int)(len < 200 ? len : 200), text);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, " %d", ids[i]);
		fprintf(stderr, "\nwant:");
		for (size_t i = 0; i < n_want; i++)
			fprintf(stderr, " %d", want[i]);
		fprintf(stderr, "\n");
	}
	free(ids);
	return ok;
}

/* Decodes ids whole and through the streaming detokenizer (one id at a
 * time, then flush); checks that both agree, every chunk is whole UTF-8,
 * and (if want) both equal want. */
static bool decode_matches(const mllm_tokenizer *tok, const int32_t *ids, size_t n,
                           const char *want, size_t want_len, const char *what)
{
	size_t cap = 16 * n + 64, got_len = 0, s_len = 0;
	char *got = malloc(cap), *stream = malloc(cap);
	char chunk[MLLM_DETOK_MAX];
	mllm_detok d;
	bool ok = true;

	ck_assert_ptr_nonnull(got);
	ck_assert_ptr_nonnull(stream);
	ck_assert_int_eq(mllm_tokenizer_decode(tok, ids, n, got, cap, &got_len), 0);
	ck_assert_uint_eq(strlen(got) <= got_len, 1);
	if (want && (got_len != want_len || memcmp(got, want, want_len) != 0)) {
		fprintf(stderr, "%s: decode mismatch\n got: \"%.*s\"\nwant: \"%.*s\"\n", what,
		        (int)got_len, got, (int)want_len, want);
		ok = false;
	}
	mllm_detok_init(&d, tok);
	for (size_t i = 0; i <= n; i++) {
		int k = i < n ? mllm_detok_push(&d, ids[i], chunk, sizeof chunk)
		              : mllm_detok_flush(&d, chunk, sizeof chunk);
		ck_assert_int_ge(k, 0);
		if (!whole_utf8(chunk, (size_t)k)) {
			fprintf(stderr, "%s: detok chunk %zu is not whole UTF-8\n", what, i);
			ok = false;
		}
		ck_assert_uint_le(s_len + (size_t)k, cap);
		memcpy(stream + s_len, chunk, (size_t)k);
		s_len += (size_t)k;
	}
	if (s_len != got_len || memcmp(stream, got, got_len) != 0) {
		fprintf(stderr, "%s: streamed \"%.*s\" != decoded \"%.*s\"\n", what, (int)s_len,
		        stream, (int)got_len, got);
		ok = false;
	}
	free(got);
	free(stream);
	return ok;
}

static size_t json_ids(json_t *arr, int32_t **out)
{
	size_t n = json_array_size(arr);
	int32_t *ids = malloc((n + 1) * sizeof *ids);

	ck_assert_ptr_nonnull(ids);
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(arr, i);
		ck_assert(json_is_integer(v));
		ids[i] = (int32_t)json_integer_value(v);
	}
	*out = ids;
	return n;
}

/* ---- The 3,000 SentencePiece cases ------------------------------------- */

static void run_cases(const mllm_tokenizer *tok, const char *what)
{
	char path[4096], *line = NULL;
	size_t cap = 0;
	ssize_t got;
	int n_cases = 0, n_bad = 0;
	FILE *f;

	mllm_test_path(path, sizeof path, LLAMA_CASES);
	MLLM_REQUIRE_FIXTURE(path);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while ((got = getline(&line, &cap, f)) > 0) {
		json_error_t je;
		json_t *c = json_loads(line, JSON_ALLOW_NUL, &je);
		int32_t *ids;
		size_t n;
		bool ok;

		ck_assert_msg(c != NULL, "%s line %d: %s", path, n_cases + 1, je.text);
		json_t *text = json_object_get(c, "text");
		json_t *rt = json_object_get(c, "ids_roundtrip");
		json_t *pieces = json_object_get(c, "pieces");
		ck_assert(json_is_string(text) && json_is_string(rt) && json_is_array(pieces));
		n = json_ids(json_object_get(c, "ids"), &ids);
		ck_assert_uint_eq(json_array_size(pieces), n);
		ok = encode_matches(tok, json_string_value(text), json_string_length(text), ids, n,
		                    what);
		ok = decode_matches(tok, ids, n, json_string_value(rt), json_string_length(rt),
		                    what) &&
		     ok;
		for (size_t i = 0; i < n; i++) {
			size_t pl;
			const char *p = mllm_tokenizer_piece(tok, ids[i], &pl);
			json_t *want = json_array_get(pieces, i);
			if (!p || pl != json_string_length(want) ||
			    memcmp(p, json_string_value(want), pl) != 0)
				ok = false;
		}
		n_bad += !ok;
		n_cases++;
		free(ids);
		json_decref(c);
	}
	free(line);
	fclose(f);
	ck_assert_int_eq(n_cases, 3000);
	ck_assert_msg(n_bad == 0, "%s: %d of %d cases differ", what, n_bad, n_cases);
}

START_TEST(test_llama2_cases)
{
	mllm_tokenizer *tok = load(LLAMA_MODEL);

	ck_assert_int_eq(mllm_tokenizer_n_vocab(tok), 32000);
	ck_assert_int_eq(mllm_tokenizer_bos(tok), 1);
	ck_assert_int_eq(mllm_tokenizer_eos(tok), 2);
	ck_assert(mllm_tokenizer_add_bos(tok));
	ck_assert(tok->split_words);
	run_cases(tok, "tokenizer.model");
	mllm_tokenizer_free(tok);
}
END_TEST

/* The same cases through the whole-text path: no word cuts. The result
 * must not depend on the cut (see tokenizer.c's opening comment). */
START_TEST(test_llama2_cases_unsplit)
{
	mllm_tokenizer *tok = load(LLAMA_MODEL);

	tok->split_words = false;
	run_cases(tok, "tokenizer.model, unsplit");
	mllm_tokenizer_free(tok);
}
END_TEST

START_TEST(test_llama2_cases_gguf)
{
	mllm_tokenizer *tok = load(LLAMACPP_GGUF);

	ck_assert_int_eq(mllm_tokenizer_n_vocab(tok), 32000);
	ck_assert_int_eq(mllm_tokenizer_bos(tok), 1);
	ck_assert_int_eq(mllm_tokenizer_eos(tok), 2);
	ck_assert(mllm_tokenizer_add_bos(tok));
	run_cases(tok, "vocab gguf");
	mllm_tokenizer_free(tok);
}
END_TEST

/* ---- llama.cpp's test vectors ------------------------------------------- */

static char *slurp(const char *rel, size_t *len)
{
	char path[4096];
	FILE *f;
	char *buf;
	long n;

	mllm_test_path(path, sizeof path, rel);
	MLLM_REQUIRE_FIXTURE(path);
	f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void run_llamacpp(const char *tok_rel)
{
	static const char sep[] = "\n__ggml_vocab_test__\n";
	mllm_tokenizer *tok = load(tok_rel);
	size_t in_len, out_len;
	char *in = slurp(LLAMACPP_GGUF ".inp", &in_len);
	char *out = slurp(LLAMACPP_GGUF ".out", &out_len);
	char *ip = in, *op = out;
	int n_cases = 0, n_bad = 0;

	for (;;) {
		char *end = strstr(ip, sep);
		char *eol;
		int32_t want[1024];
		size_t n_want = 0;

		if (!end)
			break;
		eol = strchr(op, '\n');
		ck_assert_ptr_nonnull(eol);
		*eol = '\0';
		for (char *s = op; *s;) {
			char *e;
			long v = strtol(s, &e, 10);
			if (e == s)
				break;
			ck_assert_uint_lt(n_want, 1024);
			want[n_want++] = (int32_t)v;
			s = e;
		}
		if (!encode_matches(tok, ip, (size_t)(end - ip), want, n_want, tok_rel))
			n_bad++;
		/* Decoding gives the text back (these inputs are valid UTF-8
		 * without "▁"). */
		if (!decode_matches(tok, want, n_want, ip, (size_t)(end - ip), tok_rel))
			n_bad++;
		n_cases++;
		ip = end + sizeof sep - 1;
		op = eol + 1;
	}
	/* Every expected line was used: as many cases as .out lines (46). */
	ck_assert_msg(*op == '\0', "more .out lines than .inp cases");
	ck_assert_int_ge(n_cases, 46);
	ck_assert_msg(n_bad == 0, "%d of %d llama.cpp checks fail", n_bad, n_cases);
	free(in);
	free(out);
	mllm_tokenizer_free(tok);
}

START_TEST(test_llamacpp_from_model)
{
	run_llamacpp(LLAMA_MODEL);
}
END_TEST

START_TEST(test_llamacpp_from_gguf)
{
	run_llamacpp(LLAMACPP_GGUF);
}
END_TEST

/* ---- Model goldens (stories260K: 512 pieces; tiny model: 32k) ---------- */

static void run_golden(const char *tok_rel, const char *golden_rel)
{
	char path[4096];
	json_error_t je;
	mllm_tokenizer *tok = load(tok_rel);
	json_t *g, *cases;
	size_t i;
	json_t *c;

	/* max_position_embeddings from config.json beside the golden. */
	mllm_test_path(path, sizeof path, golden_rel);
	strcpy(strrchr(path, '/') + 1, "config.json");
	MLLM_REQUIRE_FIXTURE(path);
	g = json_load_file(path, 0, &je);
	ck_assert_msg(g != NULL, "%s: %s", path, je.text);
	size_t n_ctx = (size_t)json_integer_value(json_object_get(g, "max_position_embeddings"));
	ck_assert_uint_gt(n_ctx, 0);
	json_decref(g);

	mllm_test_path(path, sizeof path, golden_rel);
	MLLM_REQUIRE_FIXTURE(path);
	g = json_load_file(path, 0, &je);
	ck_assert_msg(g != NULL, "%s: %s", path, je.text);
	ck_assert(json_is_true(json_object_get(g, "bos_prepended")));
	cases = json_object_get(g, "cases");
	ck_assert_uint_gt(json_array_size(cases), 0);
	json_array_foreach(cases, i, c)
	{
		json_t *text = json_object_get(c, "text");
		int32_t *want, got[1024];
		size_t n_want = json_ids(json_object_get(c, "ids"), &want), n = 0;
		ck_assert(json_is_string(text));
		ck_assert(mllm_tokenizer_add_bos(tok));
		ck_assert_int_eq(mllm_tokenizer_encode(tok, json_string_value(text),
		                                       json_string_length(text), true, got, 1024,
		                                       &n),
		                 0);
		json_t *greedy = json_object_get(c, "greedy");
		int32_t *gids;
		size_t ng = json_ids(json_object_get(greedy, "ids"), &gids);
		/* make_golden.py cuts long prompts to n_ctx minus the greedy
		 * steps; otherwise the encodings are equal. */
		ck_assert_msg(n >= n_want && memcmp(got, want, n_want * sizeof *got) == 0,
		              "%s case %zu: encoding differs", golden_rel, i);
		if (n > n_want)
			ck_assert_int_eq(n_want + ng, n_ctx);
		/* The greedy continuation decodes to the golden text. */
		json_t *gt = json_object_get(greedy, "text");
		ck_assert(json_is_string(gt));
		ck_assert(decode_matches(tok, gids, ng, json_string_value(gt),
		                         json_string_length(gt), golden_rel));
		free(gids);
		free(want);
	}
	json_decref(g);
	mllm_tokenizer_free(tok);
}

START_TEST(test_stories260k)
{
	mllm_tokenizer *tok = load("models/stories260K/tokenizer.model");
	ck_assert_int_eq(mllm_tokenizer_n_vocab(tok), 512);
	mllm_tokenizer_free(tok);
	run_golden("models/stories260K/tokenizer.model", "models/stories260K/stories260K.json");
	run_golden("models/stories260K/stories260K-f32.gguf",
	           "models/stories260K/stories260K.json");
}
END_TEST

START_TEST(test_tiny_model_goldens)
{
	run_golden("models/tiny-mobilellm-f16/tokenizer.model",
	           "models/tiny-mobilellm-f16/tiny-mobilellm-f16.json");
	run_golden("models/tiny-mobilellm-f16/tiny-mobilellm-f16.gguf",
	           "models/tiny-mobilellm-f16/tiny-mobilellm-f16.gguf.json");
}
END_TEST

/* ---- Edge cases from SentencePiece (bench/tokenizer_sp.py --edge-cases) -- */

/* Generated by: /usr/bin/python3 bench/tokenizer_sp.py --edge-cases
 * ../shared/fixtures/tokenizer/llama2/tokenizer.model (SentencePiece 0.1.97),
 * then clang-format. */
typedef struct {
	const char *text;
	size_t len;
	const int32_t *ids;
	size_t n_ids;
} edge_enc;

static const edge_enc edge_encode[] = {
    {"abc\377 def", 8, (const int32_t[]){25638, 30140, 822}, 3},
    {"\355\240\200x", 4, (const int32_t[]){29871, 26308, 30140, 29916}, 4},
    {"\303", 1, (const int32_t[]){29871, 30140}, 2},
    {"\303 ", 2, (const int32_t[]){29871, 30140, 29871}, 3},
    {"\364\220\200\200", 4, (const int32_t[]){29871, 26308, 26308}, 3},
    {"\300\200", 2, (const int32_t[]){29871, 26308}, 2},
    {"\301\277", 2, (const int32_t[]){29871, 26308}, 2},
    {"\340\200\200", 3, (const int32_t[]){29871, 26308, 30140}, 3},
    {"\340\237\277", 3, (const int32_t[]){29871, 26308, 30140}, 3},
    {"\360\200\200\200", 4, (const int32_t[]){29871, 26308, 26308}, 3},
    {"\360\217\277\277", 4, (const int32_t[]){29871, 26308, 26308}, 3},
    {"\200\200", 2, (const int32_t[]){29871, 26308}, 2},
    {"\357\277\275", 3, (const int32_t[]){29871, 30140}, 2},
    {"\376\377", 2, (const int32_t[]){29871, 26308}, 2},
    {"\370\210\200\200\200", 5, (const int32_t[]){29871, 26308, 26308, 30140}, 4},
    {"a\000b", 3, (const int32_t[]){263, 3, 29890}, 3},
    {"\346\227", 2, (const int32_t[]){29871, 26308}, 2},
    {"\346\227\245\346", 4, (const int32_t[]){29871, 30325, 30140}, 3},
    {"  \377  ", 5, (const int32_t[]){1678, 30140, 259}, 3},
    {"\360\237\230", 3, (const int32_t[]){29871, 26308, 30140}, 3},
    {"caf\303\251 \303(", 8, (const int32_t[]){274, 28059, 29871, 30140, 29898}, 5},
    {"\342\226", 2, (const int32_t[]){29871, 26308}, 2},
    {"\342\226\201\342\226", 5, (const int32_t[]){259, 26308}, 2},
    {"\355\237\277", 3, (const int32_t[]){29871, 240, 162, 194}, 4},
    {"\356\200\200", 3, (const int32_t[]){29871, 241, 131, 131}, 4},
    {"\364\217\277\277", 4, (const int32_t[]){29871, 247, 146, 194, 194}, 5},
    {" ", 1, (const int32_t[]){259}, 1},
    {"   ", 3, (const int32_t[]){268}, 1},
    {"\011", 1, (const int32_t[]){29871, 12}, 2},
    {"\012\012", 2, (const int32_t[]){29871, 13, 13}, 3},
    {"\015\012", 2, (const int32_t[]){6756, 13}, 2},
    {" \012 ", 3, (const int32_t[]){259, 13, 29871}, 3},
    {"<s>", 3, (const int32_t[]){529, 29879, 29958}, 3},
    {"</s>", 4, (const int32_t[]){1533, 29879, 29958}, 3},
    {"<unk>", 5, (const int32_t[]){529, 2960, 29958}, 3},
    {"<0x41>", 6, (const int32_t[]){529, 29900, 29916, 29946, 29896, 29958}, 6},
    {"\342\226\201", 3, (const int32_t[]){259}, 1},
    {"\342\226\201\342\226\201\342\226\201x", 10, (const int32_t[]){1678, 921}, 2},
    {"a\342\226\201b", 5, (const int32_t[]){263, 289}, 2},
    {"x  \342\226\201 y", 8, (const int32_t[]){921, 1678, 343}, 3},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaa",
     300,
     (const int32_t[]){263,   27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137,
                       27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137,
                       27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137,
                       27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137,
                       27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137,
                       27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137,
                       27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 27137, 7340,  29874},
     77},
    {"ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab "
     "ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab",
     149, (const int32_t[]){633, 633, 633, 633, 633, 633, 633, 633, 633, 633, 633, 633, 633,
                            633, 633, 633, 633, 633, 633, 633, 633, 633, 633, 633, 633, 633,
                            633, 633, 633, 633, 633, 633, 633, 633, 633, 633, 633, 633, 633,
                            633, 633, 633, 633, 633, 633, 633, 633, 633, 633, 633},
     50},
    {"\377\377a\360\237\230\200\200\200\230\342\226\201", 13,
     (const int32_t[]){29871, 26308, 29874, 243, 162, 155, 131, 26308, 30140, 29871}, 10},
    {"\227", 1, (const int32_t[]){29871, 30140}, 2},
    {"\377\360\237\230\200\000\346\000\245", 9,
     (const int32_t[]){29871, 30140, 243, 162, 155, 131, 3, 30140, 3, 30140}, 10},
    {"ing\346\227\245b\012\377\227", 10, (const int32_t[]){2348, 30325, 29890, 13, 26308}, 5},
    {"\355\355\346\227\245\237\251 the", 11, (const int32_t[]){29871, 26308, 30325, 26308, 278}, 5},
    {"\346\227\245\227\346\355a\303", 8,
     (const int32_t[]){29871, 30325, 26308, 30140, 29874, 30140}, 6},
    {"\200\200\245", 3, (const int32_t[]){29871, 26308, 30140}, 3},
    {"\360\237\230\200\227ing\227\342\226\201", 12,
     (const int32_t[]){29871, 243, 162, 155, 131, 30140, 292, 30140, 29871}, 9},
    {"\245\000\230\346b\346\227  ", 9, (const int32_t[]){29871, 30140, 3, 26308, 29890, 26308, 259},
     7},
    {"\377\346\227\245", 4, (const int32_t[]){29871, 30140, 30325}, 3},
    {"\377a\200a\360\346\227\245", 8,
     (const int32_t[]){29871, 30140, 29874, 30140, 29874, 30140, 30325}, 7},
    {"\346\227\245\342\226\201\230\237\251bthe", 13,
     (const int32_t[]){29871, 30325, 29871, 26308, 30140, 29890, 1552}, 7},
    {"\377\342\226\201\346\342\226\201", 8, (const int32_t[]){29871, 30140, 29871, 30140, 29871},
     5},
    {"\346\200\342\226\201\303\251\355\346\227\245\200\000b\230", 15,
     (const int32_t[]){29871, 26308, 904, 30140, 30325, 30140, 3, 29890, 30140}, 9},
    {"b\342\226\201\200\355\240b", 8, (const int32_t[]){289, 29871, 26308, 30140, 29890}, 5},
    {"ing", 3, (const int32_t[]){2348}, 1},
    {"\000\251b\200\000\346\227\245b", 9,
     (const int32_t[]){29871, 3, 30140, 29890, 30140, 3, 30325, 29890}, 8},
    {"\346\227\245\346\227\245\360\237\230\200\245\355", 12,
     (const int32_t[]){29871, 30325, 30325, 243, 162, 155, 131, 26308}, 8},
    {"\237\000the", 5, (const int32_t[]){29871, 30140, 3, 1552}, 4},
    {"\346\227\245", 3, (const int32_t[]){29871, 30325}, 2},
    {" ", 1, (const int32_t[]){259}, 1},
    {"\342\226\201\355\377", 5, (const int32_t[]){259, 26308}, 2},
    {" ", 1, (const int32_t[]){259}, 1},
    {"\360\230\000\230", 4, (const int32_t[]){29871, 26308, 3, 30140}, 4},
    {"ing \230", 5, (const int32_t[]){2348, 29871, 30140}, 3},
    {"\342\226\201\227\240the\346\227\245the\200", 15,
     (const int32_t[]){259, 26308, 1552, 30325, 1552, 30140}, 6},
    {"a \012\240\251\000 the\237\012", 12,
     (const int32_t[]){263, 29871, 13, 26308, 3, 278, 30140, 13}, 8},
    {"\251 ", 2, (const int32_t[]){29871, 30140, 29871}, 3},
    {"\012", 1, (const int32_t[]){29871, 13}, 2},
    {" \240\000\012\200\346\227\245\012\303\251\240", 12,
     (const int32_t[]){259, 30140, 3, 13, 30140, 30325, 13, 29948, 30140}, 9},
    {"\377\200\303\346\303\227\346\227\245\355", 10,
     (const int32_t[]){29871, 26308, 26308, 30122, 30325, 30140}, 6},
    {"\240\360\237\230\200ing\303", 9,
     (const int32_t[]){29871, 30140, 243, 162, 155, 131, 292, 30140}, 8},
    {"\360ing\346\227\245ing\346\346", 12, (const int32_t[]){29871, 30140, 292, 30325, 292, 26308},
     6},
    {"\245\360\237\230\200 inga\303\251\355\240\227\342\226\201", 18,
     (const int32_t[]){29871, 30140, 243, 162, 155, 131, 2348, 29874, 29948, 26308, 30140, 29871},
     12},
    {"\303\251\303\251\360\355\237", 7, (const int32_t[]){904, 29948, 26308, 30140}, 4},
    {"\346\227\245\342\226\201\346\227\245", 9, (const int32_t[]){29871, 30325, 29871, 30325}, 4},
    {"\230the\377\346\355", 7, (const int32_t[]){29871, 30140, 1552, 26308, 30140}, 5},
    {"\342\226\201\303\360\251", 6, (const int32_t[]){259, 26308, 30140}, 3},
    {"\012\360\342\226\201\377\342\226\201\245\346\342\226\201\240", 15,
     (const int32_t[]){29871, 13, 30140, 29871, 30140, 29871, 26308, 29871, 30140}, 9},
    {"\251\230", 2, (const int32_t[]){29871, 26308}, 2},
    {"\000", 1, (const int32_t[]){29871, 3}, 2},
    {"\245\245\377\251", 4, (const int32_t[]){29871, 26308, 26308}, 3},
    {"\303\245\303\251ing\237\360", 9, (const int32_t[]){9174, 29948, 292, 26308}, 4},
    {"\360\237\230\200\346\227\245\346ing\342\226\201\000\342\226\201\000\355\303\251", 22,
     (const int32_t[]){29871, 243, 162, 155, 131, 30325, 30140, 292, 29871, 3, 29871, 3, 30140,
                       29948},
     14},
    {"\303\230\000\251\377", 5, (const int32_t[]){29871, 30222, 3, 26308}, 4},
    {"ba\240a", 4, (const int32_t[]){9922, 30140, 29874}, 3},
    {"\303\245\237a\200\251\245\360", 8, (const int32_t[]){9174, 30140, 29874, 26308, 26308}, 5},
    {"\240\346\227\245\240", 5, (const int32_t[]){29871, 30140, 30325, 30140}, 4},
    {"\303\251\237", 3, (const int32_t[]){904, 30140}, 2},
    {"\000", 1, (const int32_t[]){29871, 3}, 2},
    {"\377\012\251\346a\245", 6, (const int32_t[]){29871, 30140, 13, 26308, 29874, 30140}, 6},
    {"\346\227\245\346\227", 5, (const int32_t[]){29871, 30325, 26308}, 3},
    {"\355\230\000\303\251\355\360a\200", 9,
     (const int32_t[]){29871, 26308, 3, 29948, 26308, 29874, 30140}, 7},
    {"\303\012\245\230\012\230\227", 7, (const int32_t[]){29871, 30140, 13, 26308, 13, 26308}, 6},
    {"the\303\251ba", 7, (const int32_t[]){278, 29948, 2291}, 3},
    {"\346\227\245\303\251ing\355", 9, (const int32_t[]){29871, 30325, 29948, 292, 30140}, 5},
    {"\346\251", 2, (const int32_t[]){29871, 26308}, 2},
    {"\303\377\245\227\377\000\360\360\237\230\200\303\251\012", 14,
     (const int32_t[]){29871, 26308, 26308, 30140, 3, 30140, 243, 162, 155, 131, 29948, 13}, 12},
    {"a\240\000\200ing\251\200\377b\245", 12,
     (const int32_t[]){263, 30140, 3, 30140, 292, 26308, 30140, 29890, 30140}, 9},
    {" \000\200\346", 4, (const int32_t[]){259, 3, 26308}, 3},
};

static const edge_enc edge_encode_nofallback[] = {
    {"the\315\270\315\270\303\251 \002", 11, (const int32_t[]){278, 0, 29948, 29871, 0}, 5},
    {"\360\237\246\231\360\237\246\231\303\251\344\270\204the\002\001\360\237\246\231the\352\231"
     "\256",
     28, (const int32_t[]){29871, 0, 29948, 0, 1552, 0, 1552, 0}, 8},
    {"\344\270\202\352\231\256\002\002\012\002\352\231\256\315\270\002", 16,
     (const int32_t[]){29871, 0}, 2},
    {"\001\001\001\344\270\204\360\235\224\230\012\001\012\315\270", 15,
     (const int32_t[]){29871, 0}, 2},
    {"\012\002\315\270\315\270\315\270\315\270", 10, (const int32_t[]){29871, 0}, 2},
    {"the\303\251 \360\237\246\231\344\270\202\360\237\246\231\344\270\202\303\251\352\231\256 aa",
     28, (const int32_t[]){278, 29948, 29871, 0, 29948, 0, 29099}, 7},
    {"\360\235\224\230\360\235\224\230the\344\270\204", 14, (const int32_t[]){29871, 0, 1552, 0},
     4},
    {"\315\270 \344\270\204athe\344\270\202\344\270\204\002\012\001a", 20,
     (const int32_t[]){29871, 0, 29871, 0, 271, 354, 0, 29874}, 8},
    {" \352\231\256\360\235\224\230\012the\012\002\352\231\256\002\352\231\256", 21,
     (const int32_t[]){259, 0, 1552, 0}, 4},
    {"a  \360\235\224\230the", 10, (const int32_t[]){263, 259, 0, 1552}, 4},
    {" \001\315\270\303\251\344\270\202\360\235\224\230", 13, (const int32_t[]){259, 0, 29948, 0},
     4},
    {"\315\270\360\237\246\231\012\344\270\202 the\002the\344\270\202\002\352\231\256a", 26,
     (const int32_t[]){29871, 0, 278, 0, 1552, 0, 29874}, 7},
    {"\360\235\224\230\315\270the", 9, (const int32_t[]){29871, 0, 1552}, 3},
    {"the\352\231\256\012\344\270\204\315\270\352\231\256\360\237\246\231\360\237\246\231 "
     "\344\270\204the\012",
     31, (const int32_t[]){278, 0, 29871, 0, 1552, 0}, 6},
    {"\344\270\202 the\360\237\246\231\001", 12, (const int32_t[]){29871, 0, 278, 0}, 4},
    {"\360\235\224\230\360\237\246\231\002a\344\270\202\303\251", 15,
     (const int32_t[]){29871, 0, 29874, 0, 29948}, 5},
    {"\344\270\202a\001the\352\231\256\344\270\202a ", 16,
     (const int32_t[]){29871, 0, 29874, 0, 1552, 0, 29874, 29871}, 8},
    {"\002\344\270\204thethe\360\237\246\231\344\270\204\315\270\344\270\202\002", 23,
     (const int32_t[]){29871, 0, 386, 23043, 0}, 5},
    {"\315\270\344\270\202\303\251\002\352\231\256a\344\270\202\002\002", 17,
     (const int32_t[]){29871, 0, 29948, 0, 29874, 0}, 6},
    {"\344\270\202the\360\235\224\230\344\270\204\012\344\270\202", 17,
     (const int32_t[]){29871, 0, 1552, 0}, 4},
    {" \012a\352\231\256\315\270\360\235\224\230\315\270\360\235\224\230", 18,
     (const int32_t[]){259, 0, 29874, 0}, 4},
    {"\344\270\202\352\231\256\360\237\246\231\315\270the\344\270\202\001\360\237\246\231\344\270"
     "\202\315\270\344\270\202",
     31, (const int32_t[]){29871, 0, 1552, 0}, 4},
    {"\001the\360\235\224\230\360\237\246\231\303\251", 14,
     (const int32_t[]){29871, 0, 1552, 0, 29948}, 5},
    {"\344\270\202\344\270\204\344\270\202\360\235\224\230\344\270\204", 16,
     (const int32_t[]){29871, 0}, 2},
    {" a \001a\303\251 a\360\235\224\230 ", 14,
     (const int32_t[]){29871, 263, 29871, 0, 29874, 29948, 263, 0, 29871}, 9},
    {"\315\270\315\270\315\270a\352\231\256\344\270\202\360\237\246\231\344\270\204\344\270\204"
     "\001",
     24, (const int32_t[]){29871, 0, 29874, 0}, 4},
    {"\344\270\204  a\360\235\224\230", 10, (const int32_t[]){29871, 0, 29871, 263, 0}, 5},
    {"\012\303\251a\344\270\204the\344\270\204\352\231\256\360\235\224\230", 20,
     (const int32_t[]){29871, 0, 29948, 29874, 0, 1552, 0}, 7},
    {"\352\231\256\344\270\204\002\002\344\270\204the\001\012 a\315\270", 20,
     (const int32_t[]){29871, 0, 1552, 0, 263, 0}, 6},
    {"\012", 1, (const int32_t[]){29871, 0}, 2},
    {"\315\270\012\344\270\204\352\231\256\315\270\001\012\001\344\270\204\352\231\256 a", 22,
     (const int32_t[]){29871, 0, 263}, 3},
    {"\360\237\246\231\360\237\246\231\001", 9, (const int32_t[]){29871, 0}, 2},
    {" ", 1, (const int32_t[]){259}, 1},
    {"\012\002\352\231\256a \344\270\202\001\303\251the\344\270\204", 19,
     (const int32_t[]){29871, 0, 29874, 29871, 0, 29948, 1552, 0}, 8},
    {"\303\251\360\237\246\231 \002the\002\303\251\360\235\224\230\344\270\202\360\235\224\230\002",
     26, (const int32_t[]){904, 0, 29871, 0, 1552, 0, 29948, 0}, 8},
    {"\002", 1, (const int32_t[]){29871, 0}, 2},
    {"a\344\270\204\315\270", 6, (const int32_t[]){263, 0}, 2},
    {" \344\270\202\303\251\360\237\246\231\360\235\224\230\001\344\270\204\352\231\256\344\270\204"
     "\012\344\270\202",
     28, (const int32_t[]){259, 0, 29948, 0}, 4},
    {"\001\012\002\012\303\251\002\001", 8, (const int32_t[]){29871, 0, 29948, 0}, 4},
    {"\352\231\256\360\235\224\230\315\270", 9, (const int32_t[]){29871, 0}, 2},
};

typedef struct {
	const int32_t *ids;
	size_t n_ids;
	const char *text;
	size_t len;
} edge_dec;

static const edge_dec edge_decode[] = {
    {(const int32_t[]){1, 15043}, 2, "Hello", 5},
    {(const int32_t[]){15043, 15043}, 2, "Hello Hello", 11},
    {(const int32_t[]){0}, 1, " \342\201\207 ", 5},
    {(const int32_t[]){0, 15043}, 2, " \342\201\207  Hello", 11},
    {(const int32_t[]){1}, 1, "", 0},
    {(const int32_t[]){2, 15043}, 2, "Hello", 5},
    {(const int32_t[]){1, 1, 15043}, 3, "Hello", 5},
    {(const int32_t[]){68, 15043}, 2, "A Hello", 7},
    {(const int32_t[]){29871, 15043}, 2, " Hello", 6},
    {(const int32_t[]){29871}, 1, "", 0},
    {(const int32_t[]){259}, 1, " ", 1},
    {(const int32_t[]){233}, 1, "\357\277\275", 3},
    {(const int32_t[]){233, 15043}, 2, "\357\277\275 Hello", 9},
    {(const int32_t[]){233, 154, 15043, 168}, 4, "\357\277\275\357\277\275 Hello\357\277\275", 15},
    {(const int32_t[]){35, 15043}, 2, "  Hello", 7},
    {(const int32_t[]){15043, 229, 153, 132}, 4, "Hello\342\226\201", 8},
    {(const int32_t[]){229, 153, 132, 15043}, 4, "\342\226\201 Hello", 9},
    {(const int32_t[]){1, 68}, 2, "A", 1},
    {(const int32_t[]){1, 0, 15043}, 3, " \342\201\207  Hello", 11},
    {(const int32_t[]){233, 154, 168}, 3, "\346\227\245", 3},
    {(const int32_t[]){243, 162, 155, 131}, 4, "\360\237\230\200", 4},
    {(const int32_t[]){243, 162, 155, 15043}, 4, "\357\277\275\357\277\275\357\277\275 Hello", 15},
    {(const int32_t[]){240, 163, 131}, 3, "\357\277\275\357\277\275\357\277\275", 9},
    {(const int32_t[]){195, 131}, 2, "\357\277\275\357\277\275", 6},
    {(const int32_t[]){233, 1, 154, 168}, 4, "\357\277\275\357\277\275\357\277\275", 9},
    {(const int32_t[]){2, 35}, 2, " ", 1},
    {(const int32_t[]){29871, 29871, 15043}, 3, "  Hello", 7},
    {(const int32_t[]){0}, 0, "", 0},
    {(const int32_t[]){168, 184, 223, 245, 106, 123, 81}, 7,
     "\357\277\275\357\277\275\357\277\275\357\277\275gxN", 15},
    {(const int32_t[]){132, 235, 163, 207, 71, 248}, 6,
     "\357\277\275\357\277\275\357\277\275\357\277\275D\357\277\275", 16},
    {(const int32_t[]){110}, 1, "k", 1},
    {(const int32_t[]){118, 29871, 8}, 3, "s \005", 3},
    {(const int32_t[]){221, 37, 118, 258, 179}, 5, "\357\277\275\042s\357\277\275\357\277\275", 11},
    {(const int32_t[]){183}, 1, "\357\277\275", 3},
    {(const int32_t[]){55, 62, 66, 123, 21, 50, 238, 222}, 8,
     "4;\077x\022/\357\277\275\357\277\275", 12},
    {(const int32_t[]){200, 62, 211, 23}, 4, "\357\277\275;\357\277\275\024", 8},
    {(const int32_t[]){253, 65}, 2, "\357\277\275>", 4},
    {(const int32_t[]){78, 87, 11, 178, 176, 34, 167}, 7,
     "KT\010\357\277\275\357\277\275\037\357\277\275", 13},
    {(const int32_t[]){154, 251, 142}, 3, "\357\277\275\357\277\275\357\277\275", 9},
    {(const int32_t[]){29, 155, 126, 258, 156}, 5, "\032\357\277\275{\357\277\275\357\277\275", 11},
    {(const int32_t[]){149, 155}, 2, "\357\277\275\357\277\275", 6},
    {(const int32_t[]){251, 60, 207, 201, 85}, 5, "\357\277\2759\357\277\275\357\277\275R", 11},
    {(const int32_t[]){175, 84}, 2, "\357\277\275Q", 4},
    {(const int32_t[]){102}, 1, "c", 1},
    {(const int32_t[]){29871, 54}, 2, "3", 1},
    {(const int32_t[]){130, 42, 160}, 3, "\177'\357\277\275", 5},
    {(const int32_t[]){189}, 1, "\357\277\275", 3},
    {(const int32_t[]){196}, 1, "\357\277\275", 3},
    {(const int32_t[]){54, 88, 85}, 3, "3UR", 3},
    {(const int32_t[]){62, 166}, 2, ";\357\277\275", 4},
    {(const int32_t[]){93, 3}, 2, "Z\000", 2},
    {(const int32_t[]){49, 3186, 163, 109, 226, 216}, 6,
     ". world\357\277\275j\357\277\275\357\277\275", 17},
    {(const int32_t[]){22, 168, 246}, 3, "\023\357\277\275\357\277\275", 7},
    {(const int32_t[]){95, 196}, 2, "\134\357\277\275", 4},
    {(const int32_t[]){245, 34, 221}, 3, "\357\277\275\037\357\277\275", 7},
    {(const int32_t[]){62, 70, 161, 193, 136, 29}, 6, ";C\357\277\275\357\277\275\357\277\275\032",
     12},
    {(const int32_t[]){162, 210, 175}, 3, "\357\277\275\317\254", 5},
    {(const int32_t[]){198, 210, 128, 212, 201, 249}, 6,
     "\357\277\275\357\277\275}\357\277\275\357\277\275\357\277\275", 16},
    {(const int32_t[]){95, 222, 212, 104}, 4, "\134\357\277\275\357\277\275e", 8},
    {(const int32_t[]){32, 127, 130}, 3, "\035|\177", 3},
    {(const int32_t[]){255, 0, 257, 207, 173, 231, 1, 67}, 8,
     "\357\277\275 \342\201\207 \357\277\275\314\252\357\277\275@", 17},
    {(const int32_t[]){131, 83, 209, 206, 220, 29871, 225, 26}, 8,
     "\357\277\275P\357\277\275\357\277\275\357\277\275 \357\277\275\027", 18},
    {(const int32_t[]){94, 110, 208, 15}, 4, "[k\357\277\275\014", 6},
    {(const int32_t[]){234, 35, 214, 250, 240, 143}, 6,
     "\357\277\275 \357\277\275\357\277\275\357\277\275\357\277\275", 16},
    {(const int32_t[]){76, 23, 124, 170}, 4, "I\024y\357\277\275", 6},
    {(const int32_t[]){6, 234, 109, 78, 111, 30140, 248, 19}, 8,
     "\003\357\277\275jKl\357\277\275\357\277\275\020", 14},
    {(const int32_t[]){137, 14, 136, 5, 69, 248, 251}, 7,
     "\357\277\275\013\357\277\275\002B\357\277\275\357\277\275", 15},
    {(const int32_t[]){46, 157, 75, 183, 159, 129, 216}, 7,
     "+\357\277\275H\357\277\275\357\277\275~\357\277\275", 15},
    {(const int32_t[]){223, 3, 28}, 3, "\357\277\275\000\031", 5},
    {(const int32_t[]){101, 212}, 2, "b\357\277\275", 4},
    {(const int32_t[]){1678, 201, 222}, 3, "  \357\277\275\357\277\275", 8},
    {(const int32_t[]){203, 82}, 2, "\357\277\275O", 4},
    {(const int32_t[]){29, 155, 78, 192, 23, 215, 180}, 7,
     "\032\357\277\275K\357\277\275\024\324\261", 11},
    {(const int32_t[]){70, 183, 55, 218, 13, 144, 23}, 7,
     "C\357\277\2754\357\277\275\012\357\277\275\024", 13},
    {(const int32_t[]){77, 1678, 237, 249, 169, 217, 56, 70}, 8,
     "J   \357\277\275\357\277\275\357\277\275\357\277\2755C", 18},
    {(const int32_t[]){71, 32, 246, 236, 210}, 5, "D\035\357\277\275\357\277\275\357\277\275", 11},
    {(const int32_t[]){40, 28, 124, 115, 116, 98, 81}, 7, "%\031ypq_N", 7},
    {(const int32_t[]){257}, 1, "\357\277\275", 3},
    {(const int32_t[]){85, 155, 252, 206, 87, 253, 153}, 7,
     "R\357\277\275\357\277\275\357\277\275T\357\277\275\357\277\275", 17},
    {(const int32_t[]){141, 71, 257, 85, 49}, 5, "\357\277\275D\357\277\275R.", 9},
    {(const int32_t[]){14, 257, 43, 125, 178, 173, 116}, 7,
     "\013\357\277\275(z\357\277\275\357\277\275q", 13},
    {(const int32_t[]){63, 21, 202, 231, 230}, 5, "<\022\357\277\275\357\277\275\357\277\275", 11},
    {(const int32_t[]){244}, 1, "\357\277\275", 3},
    {(const int32_t[]){196}, 1, "\357\277\275", 3},
    {(const int32_t[]){184, 247, 140}, 3, "\357\277\275\357\277\275\357\277\275", 9},
    {(const int32_t[]){191}, 1, "\357\277\275", 3},
    {(const int32_t[]){31, 176}, 2, "\034\357\277\275", 4},
    {(const int32_t[]){15043, 42, 124, 15043, 45, 96, 192}, 7, "Hello'y Hello*]\357\277\275", 18},
};

START_TEST(test_edge_encode)
{
	mllm_tokenizer *tok = load(LLAMA_MODEL);
	int n_bad = 0;

	for (size_t i = 0; i < sizeof edge_encode / sizeof edge_encode[0]; i++) {
		const edge_enc *e = &edge_encode[i];
		if (!encode_matches(tok, e->text, e->len, e->ids, e->n_ids, "edge"))
			n_bad++;
	}
	ck_assert_int_eq(n_bad, 0);
	mllm_tokenizer_free(tok);
}
END_TEST

/* Without byte fallback, unknown characters become <unk>, and a run of
 * them one <unk>. The table comes from the LLaMA model with its byte
 * pieces made normal and byte_fallback off; here byte fallback is switched
 * off on the loaded model, which differs only for text spelling "<0xXX>". */
START_TEST(test_edge_nofallback)
{
	mllm_tokenizer *tok = load(LLAMA_MODEL);
	int n_bad = 0;

	tok->byte_fallback = false;
	for (int c = 0; c < 128; c++)
		if (tok->ascii_id[c] < 0)
			tok->ascii_id[c] = tok->unk_id;
	for (size_t i = 0; i < sizeof edge_encode_nofallback / sizeof edge_encode_nofallback[0];
	     i++) {
		const edge_enc *e = &edge_encode_nofallback[i];
		if (!encode_matches(tok, e->text, e->len, e->ids, e->n_ids, "no fallback"))
			n_bad++;
	}
	ck_assert_int_eq(n_bad, 0);
	mllm_tokenizer_free(tok);
}
END_TEST

START_TEST(test_edge_decode)
{
	mllm_tokenizer *tok = load(LLAMA_MODEL);
	int n_bad = 0;

	for (size_t i = 0; i < sizeof edge_decode / sizeof edge_decode[0]; i++) {
		const edge_dec *e = &edge_decode[i];
		if (!decode_matches(tok, e->ids, e->n_ids, e->text, e->len, "edge"))
			n_bad++;
	}
	ck_assert_int_eq(n_bad, 0);
	mllm_tokenizer_free(tok);
}
END_TEST

/* ---- API contracts ------------------------------------------------------ */

/* ---- Threads: one tokenizer, many encoders ------------------------------ */

typedef struct {
	const mllm_tokenizer *tok;
	json_t *cases;
	size_t first, n_bad;
} thread_job;

static void *encode_thread(void *arg)
{
	thread_job *j = arg;
	size_t n_cases = json_array_size(j->cases);

	/* Every thread walks all cases from its own starting point, so the
	 * lazily learned word flags are written while others read them. */
	for (size_t k = 0; k < n_cases; k++) {
		json_t *c = json_array_get(j->cases, (j->first + k) % n_cases);
		json_t *text = json_object_get(c, "text"), *want = json_object_get(c, "ids");
		size_t len = json_string_length(text), n = 0;
		size_t cap = mllm_tokenizer_max_ids(j->tok, len);
		int32_t *ids = malloc(cap * sizeof *ids);
		bool ok = ids &&
		          mllm_tokenizer_encode(j->tok, json_string_value(text), len, false, ids,
		                                cap, &n) == 0 &&
		          n == json_array_size(want);
		for (size_t i = 0; ok && i < n; i++)
			ok = ids[i] == json_integer_value(json_array_get(want, i));
		j->n_bad += !ok;
		free(ids);
	}
	return NULL;
}

START_TEST(test_threads)
{
	char path[4096], *line = NULL;
	size_t cap = 0;
	mllm_tokenizer *tok = load(LLAMA_MODEL);
	json_t *cases = json_array();
	thread_job jobs[4];
	pthread_t th[4];
	FILE *f;

	mllm_test_path(path, sizeof path, LLAMA_CASES);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (getline(&line, &cap, f) > 0 && json_array_size(cases) < 1000) {
		json_t *c = json_loads(line, JSON_ALLOW_NUL, NULL);
		ck_assert_ptr_nonnull(c);
		json_array_append_new(cases, c);
	}
	free(line);
	fclose(f);
	for (int t = 0; t < 4; t++) {
		jobs[t] = (thread_job){tok, cases, (size_t)t * 250, 0};
		ck_assert_int_eq(pthread_create(&th[t], NULL, encode_thread, &jobs[t]), 0);
	}
	for (int t = 0; t < 4; t++) {
		ck_assert_int_eq(pthread_join(th[t], NULL), 0);
		ck_assert_uint_eq(jobs[t].n_bad, 0);
	}
	json_decref(cases);
	mllm_tokenizer_free(tok);
}
END_TEST

START_TEST(test_encode_api)
{
	mllm_tokenizer *tok = load(LLAMA_MODEL);
	int32_t ids[64], small[2];
	size_t n = 99, n2 = 0;
	const char *t = "<s> Hello world</s>";

	/* Empty text: no ids, BOS only when asked. */
	ck_assert_int_eq(mllm_tokenizer_encode(tok, "", 0, false, ids, 64, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(mllm_tokenizer_encode(tok, NULL, 0, true, ids, 64, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(ids[0], mllm_tokenizer_bos(tok));
	/* "<s>" is text: BOS appears once, at the front, and never EOS. */
	ck_assert_int_eq(mllm_tokenizer_encode(tok, t, strlen(t), true, ids, 64, &n), 0);
	ck_assert_int_eq(ids[0], 1);
	for (size_t i = 1; i < n; i++) {
		ck_assert_int_ne(ids[i], 1);
		ck_assert_int_ne(ids[i], 2);
	}
	/* A short buffer: ENOSPACE with the full count, prefix written. */
	ck_assert_int_eq(mllm_tokenizer_encode(tok, t, strlen(t), true, small, 2, &n2),
	                 MLLM_ENOSPACE);
	ck_assert_uint_eq(n2, n);
	ck_assert_int_eq(small[0], ids[0]);
	ck_assert_int_eq(small[1], ids[1]);
	/* The documented bound holds for LLaMA: len + 2. */
	ck_assert_uint_le(n, strlen(t) + 2);
	mllm_tokenizer_set_add_bos(tok, false);
	ck_assert(!mllm_tokenizer_add_bos(tok));
	mllm_tokenizer_set_add_bos(tok, true);
	ck_assert(mllm_tokenizer_add_bos(tok));
	ck_assert(mllm_tokenizer_is_control(tok, 1));
	ck_assert(!mllm_tokenizer_is_control(tok, 3));
	ck_assert_ptr_null(mllm_tokenizer_piece(tok, -1, NULL));
	ck_assert_ptr_null(mllm_tokenizer_piece(tok, 32000, NULL));
	mllm_tokenizer_free(tok);
}
END_TEST

START_TEST(test_decode_api)
{
	mllm_tokenizer *tok = load(LLAMA_MODEL);
	int32_t ids[64];
	size_t n, m = 0;
	char out[64], tiny[4];
	const char *t = "Hello world";
	mllm_detok d;

	ck_assert_int_eq(mllm_tokenizer_encode(tok, t, strlen(t), true, ids, 64, &n), 0);
	ck_assert_int_eq(mllm_tokenizer_decode(tok, ids, n, out, sizeof out, &m), 0);
	ck_assert_str_eq(out, t);
	ck_assert_uint_eq(m, strlen(t));
	/* Too small: truncated, NUL-terminated, full length reported. */
	ck_assert_int_eq(mllm_tokenizer_decode(tok, ids, n, tiny, sizeof tiny, &m), MLLM_ENOSPACE);
	ck_assert_uint_eq(m, strlen(t));
	ck_assert_uint_eq(strlen(tiny), sizeof tiny - 1);
	ck_assert_int_eq(memcmp(tiny, t, 3), 0);
	/* Out-of-range ids. */
	int32_t bad[2] = {ids[1], 32000};
	ck_assert_int_eq(mllm_tokenizer_decode(tok, bad, 2, out, sizeof out, &m), MLLM_ERANGE);
	bad[1] = -1;
	ck_assert_int_eq(mllm_tokenizer_decode(tok, bad, 2, out, sizeof out, &m), MLLM_ERANGE);
	mllm_detok_init(&d, tok);
	ck_assert_int_eq(mllm_detok_push(&d, 32000, out, sizeof out), MLLM_ERANGE);
	/* A push that does not fit leaves the state as it was. */
	ck_assert_int_eq(mllm_detok_push(&d, ids[1], out, 1), MLLM_ENOSPACE);
	int k = mllm_detok_push(&d, ids[1], out, sizeof out);
	ck_assert_int_eq(k, 5);
	ck_assert_int_eq(memcmp(out, "Hello", 5), 0);
	mllm_tokenizer_free(tok);
}
END_TEST

/* Token bytes (logprobs' `tokens`): a byte piece is its byte, U+2581 a
 * space, control pieces their text; bad ids give nothing. Checked on every
 * byte piece of the vocabulary. */
START_TEST(test_token_bytes)
{
	mllm_tokenizer *tok = load(LLAMA_MODEL);
	char out[64];
	int32_t ids[8];
	size_t n, n_byte = 0;

	ck_assert_int_eq(mllm_tokenizer_encode(tok, " world", 6, false, ids, 8, &n), 0);
	ck_assert_uint_ge(n, 1);
	size_t k = mllm_tokenizer_token_bytes(tok, ids[n - 1], out, sizeof out);
	ck_assert_uint_eq(k, 6);
	ck_assert_int_eq(memcmp(out, " world", 6), 0);
	ck_assert_uint_eq(mllm_tokenizer_token_bytes(tok, mllm_tokenizer_bos(tok), out, sizeof out),
	                  3);
	ck_assert_int_eq(memcmp(out, "<s>", 3), 0);
	ck_assert_uint_eq(mllm_tokenizer_token_bytes(tok, -1, out, sizeof out), 0);
	ck_assert_uint_eq(mllm_tokenizer_token_bytes(tok, 32000, out, sizeof out), 0);
	for (int32_t id = 0; id < mllm_tokenizer_n_vocab(tok); id++) {
		size_t len;
		const char *p = mllm_tokenizer_piece(tok, id, &len);
		unsigned v;
		if (len != 6 || sscanf(p, "<0x%2X>", &v) != 1)
			continue;
		ck_assert_uint_eq(mllm_tokenizer_token_bytes(tok, id, out, sizeof out), 1);
		ck_assert_uint_eq((unsigned char)out[0], v);
		n_byte++;
	}
	ck_assert_uint_eq(n_byte, 256);
	mllm_tokenizer_free(tok);
}
END_TEST

/* Every piece of the vocabulary streams as whole UTF-8 on its own and after
 * any byte piece; a byte piece alone renders as SentencePiece would. */
START_TEST(test_detok_every_piece)
{
	mllm_tokenizer *tok = load(LLAMA_MODEL);
	int n_bad = 0;

	for (int32_t id = 0; id < mllm_tokenizer_n_vocab(tok); id++) {
		int32_t seq[3] = {1, id, 29871 + (id % 7)};
		if (!decode_matches(tok, seq, 3, NULL, 0, "piece"))
			n_bad++;
		seq[0] = 3 + (id % 256); /* a byte piece first */
		if (!decode_matches(tok, seq, 3, NULL, 0, "piece"))
			n_bad++;
	}
	ck_assert_int_eq(n_bad, 0);
	mllm_tokenizer_free(tok);
}
END_TEST

/* ---- Loader errors ------------------------------------------------------- */

static unsigned char *read_fixture(const char *rel, size_t *n)
{
	return (unsigned char *)slurp(rel, n);
}

/* Appends a protobuf varint / key / length-delimited field. */
static size_t put_varint(unsigned char *b, uint64_t v)
{
	size_t n = 0;
	do {
		b[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return n;
}

/* The real model with its trainer_spec's model_type set to `type`: an extra
 * trainer_spec message after the original wins (protobuf merges repeated
 * sub-messages field by field, last value wins). */
static int load_with_trainer_override(const unsigned char *model, size_t n, uint32_t field,
                                      uint64_t value, char *err, size_t errlen,
                                      mllm_tokenizer **out)
{
	unsigned char *buf = malloc(n + 32), sub[16];
	size_t k = 0, m = 0;

	ck_assert_ptr_nonnull(buf);
	memcpy(buf, model, n);
	k = n;
	m += put_varint(sub + m, (uint64_t)field << 3);
	m += put_varint(sub + m, value);
	buf[k++] = (2 << 3) | 2;
	k += put_varint(buf + k, m);
	memcpy(buf + k, sub, m);
	k += m;
	int rc = tokenizer_from_proto(buf, k, "test", out, err, errlen);
	free(buf);
	return rc;
}

START_TEST(test_load_errors)
{
	char err[512], path[4096];
	mllm_tokenizer *tok = (mllm_tokenizer *)1;
	size_t n;
	unsigned char *model = read_fixture(LLAMA_MODEL, &n);
	int rc;

	/* Missing file: NOTFOUND, message names the path, *out NULL. */
	rc = mllm_tokenizer_load("/nonexistent/tokenizer.model", &tok, err, sizeof err);
	ck_assert_int_eq(rc, MLLM_ENOTFOUND);
	ck_assert_ptr_null(tok);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/tokenizer.model"));

	/* Not a protobuf (a JSON file). */
	rc = mllm_tokenizer_load(
	    mllm_test_path(path, sizeof path, "models/stories260K/tokenizer_config.json"), &tok,
	    err, sizeof err);
	ck_assert_int_eq(rc, MLLM_EFORMAT);

	/* Unigram (model_type 1) and unknown types are refused clearly. */
	rc = load_with_trainer_override(model, n, 3, 1, err, sizeof err, &tok);
	ck_assert_int_eq(rc, MLLM_EUNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(err, "unigram"));
	rc = load_with_trainer_override(model, n, 3, 2, err, sizeof err, &tok);
	ck_assert_int_eq(rc, 0); /* BPE again: the override mechanism works */
	mllm_tokenizer_free(tok);
	/* Byte pieces without byte fallback are malformed (as in SentencePiece). */
	rc = load_with_trainer_override(model, n, 35, 0, err, sizeof err, &tok);
	ck_assert_int_eq(rc, MLLM_EFORMAT);

	/* Truncations fail cleanly (or, at a field boundary, load); none
	 * crashes. Every 2503rd length through the pieces, and every 3rd in
	 * the last 600 bytes, where the trainer and normalizer specs are. */
	for (size_t cut = 0; cut < n; cut += cut + 600 < n ? 2503 : 3) {
		tok = NULL;
		rc = tokenizer_from_proto(model, cut, "cut", &tok, err, sizeof err);
		ck_assert(rc == 0 || rc == MLLM_EFORMAT || rc == MLLM_EUNSUPPORTED);
		mllm_tokenizer_free(tok);
	}

	/* Allocation failures report ENOMEM, never crash or leak. */
	for (long k = 0; k < 12; k++) {
		tok = NULL;
		mllm__alloc_fail_after(k);
		rc = tokenizer_from_proto(model, n, "oom", &tok, err, sizeof err);
		mllm__alloc_fail_after(-1);
		ck_assert(rc == 0 || rc == MLLM_ENOMEM);
		mllm_tokenizer_free(tok);
	}
	free(model);
}
END_TEST

START_TEST(test_encode_oom)
{
	mllm_tokenizer *tok = load(LLAMA_MODEL);
	size_t len = 20000, n = 0;
	char *text = malloc(len);
	int32_t *ids = malloc((len + 2) * sizeof *ids);

	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(ids);
	for (size_t i = 0; i < len; i++)
		text[i] = "abcdefgh"[i % 8]; /* one long word: heap on malloc */
	mllm__alloc_fail_after(0);
	ck_assert_int_eq(mllm_tokenizer_encode(tok, text, len, false, ids, len + 2, &n),
	                 MLLM_ENOMEM);
	mllm__alloc_fail_after(-1);
	ck_assert_int_eq(mllm_tokenizer_encode(tok, text, len, false, ids, len + 2, &n), 0);
	ck_assert_uint_gt(n, 0);
	free(text);
	free(ids);
	mllm_tokenizer_free(tok);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("tokenizer");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_llama2_cases);
	tcase_add_test(tc, test_llama2_cases_unsplit);
	tcase_add_test(tc, test_llama2_cases_gguf);
	tcase_add_test(tc, test_llamacpp_from_model);
	tcase_add_test(tc, test_llamacpp_from_gguf);
	tcase_add_test(tc, test_stories260k);
	tcase_add_test(tc, test_tiny_model_goldens);
	tcase_add_test(tc, test_edge_encode);
	tcase_add_test(tc, test_edge_nofallback);
	tcase_add_test(tc, test_edge_decode);
	tcase_add_test(tc, test_threads);
	tcase_add_test(tc, test_encode_api);
	tcase_add_test(tc, test_decode_api);
	tcase_add_test(tc, test_token_bytes);
	tcase_add_test(tc, test_detok_every_piece);
	tcase_add_test(tc, test_load_errors);
	tcase_add_test(tc, test_encode_oom);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
