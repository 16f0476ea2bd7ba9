/*
 * test_json.c — the engine's strict JSON reader. Every JSON file in the
 * fixtures (configs, goldens, safetensors headers, the 3,000 tokenizer cases
 * with their hard Unicode) is parsed both by engine/json.c and by jansson and
 * the two trees must agree; then the strictness and limit rules, one
 * malformed input at a time; then seeded mutations (no crash, and whatever
 * we accept jansson reads the same way).
 *
 * This is the one engine runner that links jansson on purpose, and keeps
 * doing so: differential testing needs a second, independent parser as the
 * oracle. The other engine runners read JSON through the engine's own reader
 * (json_util.h) and link no JSON library; the Makefile lists this runner
 * among the few that still get jansson.
 */
#include "harness.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>

#include "../../engine/json.c"

#include "file_util.h"

/* ---- compare with jansson ---------------------------------------------- */

static int same(const mllm__json *a, const json_t *b, char *why, size_t n)
{
	switch (a->type) {
	case MLLM_JSON_NULL:
		if (!json_is_null(b))
			goto differ;
		return 1;
	case MLLM_JSON_TRUE:
		if (!json_is_true(b))
			goto differ;
		return 1;
	case MLLM_JSON_FALSE:
		if (!json_is_false(b))
			goto differ;
		return 1;
	case MLLM_JSON_NUMBER:
		if (json_is_integer(b)) {
			if (!a->is_int || a->i != json_integer_value(b))
				goto differ;
			return 1;
		}
		if (!json_is_real(b) || a->num != json_real_value(b))
			goto differ;
		return 1;
	case MLLM_JSON_STRING:
		if (!json_is_string(b) || json_string_length(b) != a->len ||
		    memcmp(json_string_value(b), a->str, a->len) != 0)
			goto differ;
		return 1;
	case MLLM_JSON_ARRAY:
		if (!json_is_array(b) || json_array_size(b) != a->n)
			goto differ;
		{
			size_t i = 0;
			for (const mllm__json *c = a->child; c; c = c->next, i++)
				if (!same(c, json_array_get(b, i), why, n))
					return 0;
		}
		return 1;
	case MLLM_JSON_OBJECT:
		if (!json_is_object(b) || json_object_size(b) != a->n)
			goto differ;
		for (const mllm__json *c = a->child; c; c = c->next) {
			json_t *v = json_object_getn(b, c->key, c->key_len);
			if (!v) {
				snprintf(why, n, "key %s missing", c->key);
				return 0;
			}
			if (!same(c, v, why, n))
				return 0;
		}
		return 1;
	}
differ:
	snprintf(why, n, "value at offset %zu differs", a->offset);
	return 0;
}

/* Parses buf with both; both must accept and agree. */
static void cross_check(const char *what, const char *buf, size_t len)
{
	mllm__json_doc *doc = NULL;
	json_error_t je;
	json_t *j;
	char err[256], why[256] = "";
	int rc = mllm__json_parse(buf, len, NULL, &doc, err, sizeof err);

	ck_assert_msg(rc == 0, "%s: %s", what, err);
	j = json_loadb(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	if (!j) /* integers beyond int64: jansson can only read them as reals */
		j = json_loadb(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL,
		               &je);
	ck_assert_msg(j != NULL, "%s: jansson: %s", what, je.text);
	if (json_is_object(j) && json_object_get(j, "model_max_length")) {
		/* 1e30 as an integer literal: compare as a double */
		const mllm__json *v = mllm__json_get(mllm__json_root(doc), "model_max_length");
		ck_assert_ptr_nonnull(v);
		ck_assert(!v->is_int);
		ck_assert_double_eq(v->num, 1e30);
		json_object_del(j, "model_max_length");
		json_object_set_new(j, "model_max_length", json_real(v->num));
	}
	ck_assert_msg(same(mllm__json_root(doc), j, why, sizeof why), "%s: %s", what, why);
	json_decref(j);
	mllm__json_free(doc);
}

static int n_checked;

static void check_dir(const char *rel)
{
	char dir[512], path[1024];
	DIR *d;
	struct dirent *e;

	mllm_test_path(dir, sizeof dir, rel);
	d = opendir(dir);
	ck_assert_msg(d != NULL, "fixture dir %s is missing", dir);
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name), n;
		char *b;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (l > 5 && strcmp(e->d_name + l - 5, ".json") == 0) {
			b = slurp(path, &n);
			cross_check(path, b, n);
			free(b);
			n_checked++;
		} else if (l > 12 && strcmp(e->d_name + l - 12, ".safetensors") == 0) {
			uint64_t hl = 0;
			b = slurp(path, &n);
			for (int i = 7; i >= 0; i--)
				hl = hl << 8 | (unsigned char)b[i];
			ck_assert_uint_le(hl, n - 8);
			cross_check(path, b + 8, (size_t)hl);
			free(b);
			n_checked++;
		}
	}
	closedir(d);
}

START_TEST(test_fixture_files_agree_with_jansson)
{
	static const char *dirs[] = {
	    "configs/MobileLLM-125M",        "configs/MobileLLM-350M", "configs/MobileLLM-600M",
	    "configs/MobileLLM-1B",          "configs/MobileLLM-1.5B", "models/tiny-mobilellm-f16",
	    "models/tiny-mobilellm-ls-bf16", "models/stories260K",     "models/stories260K-bin",
	};
	n_checked = 0;
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
		check_dir(dirs[i]);
	ck_assert_int_ge(n_checked, 30);
}
END_TEST

/* Every line of the tokenizer cases: CJK, emoji, control characters,
 * surrogate pairs written as \u escapes. */
START_TEST(test_tokenizer_cases_agree_with_jansson)
{
	char path[512];
	size_t n, lines = 0;
	char *b, *p, *nl;

	mllm_test_path(path, sizeof path, "tokenizer/llama2/cases.jsonl");
	MLLM_REQUIRE_FIXTURE(path);
	b = slurp(path, &n);
	for (p = b; p < b + n; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(b + n - p));
		if (!nl)
			nl = b + n;
		if (nl > p) {
			cross_check("cases.jsonl line", p, (size_t)(nl - p));
			lines++;
		}
	}
	ck_assert_uint_eq(lines, 3000);
	free(b);
}
END_TEST

/* ---- values -------------------------------------------------------------- */

static const mllm__json *parse_ok(mllm__json_doc **doc, const char *s)
{
	char err[256] = "";
	int rc = mllm__json_parse(s, strlen(s), NULL, doc, err, sizeof err);
	ck_assert_msg(rc == 0, "%s: %s", s, err);
	return mllm__json_root(*doc);
}

START_TEST(test_values)
{
	mllm__json_doc *doc;
	const mllm__json *r, *v;

	r = parse_ok(&doc,
	             " {\"a\": [1, -2, 3.5, -0, 1e2, 9223372036854775807, "
	             "-9223372036854775808, 9223372036854775808], \"b\": {\"c\": null, "
	             "\"d\": true, \"e\": false}, \"s\": \"x\\u00e9\\ud83e\\udd99\\n\\\"\\/\", "
	             "\"z\": \"a\\u0000b\"} ");
	ck_assert_int_eq(r->type, MLLM_JSON_OBJECT);
	ck_assert_uint_eq(r->n, 4);
	v = mllm__json_get(r, "a");
	ck_assert_uint_eq(v->n, 8);
	ck_assert(mllm__json_at(v, 0)->is_int && mllm__json_at(v, 0)->i == 1);
	ck_assert(mllm__json_at(v, 1)->is_int && mllm__json_at(v, 1)->i == -2);
	ck_assert(!mllm__json_at(v, 2)->is_int);
	ck_assert_double_eq(mllm__json_at(v, 2)->num, 3.5);
	ck_assert(mllm__json_at(v, 3)->is_int && mllm__json_at(v, 3)->i == 0);
	ck_assert(!mllm__json_at(v, 4)->is_int);
	ck_assert_double_eq(mllm__json_at(v, 4)->num, 100.0);
	ck_assert(mllm__json_at(v, 5)->is_int && mllm__json_at(v, 5)->i == INT64_MAX);
	ck_assert(mllm__json_at(v, 6)->is_int && mllm__json_at(v, 6)->i == INT64_MIN);
	ck_assert(!mllm__json_at(v, 7)->is_int); /* too big: a double only */
	ck_assert_double_eq(mllm__json_at(v, 7)->num, 9223372036854775808.0);
	ck_assert_ptr_null(mllm__json_at(v, 8));
	v = mllm__json_get(r, "b");
	ck_assert_int_eq(mllm__json_get(v, "c")->type, MLLM_JSON_NULL);
	ck_assert_int_eq(mllm__json_get(v, "d")->type, MLLM_JSON_TRUE);
	ck_assert_int_eq(mllm__json_get(v, "e")->type, MLLM_JSON_FALSE);
	ck_assert_ptr_null(mllm__json_get(v, "f"));
	ck_assert_ptr_null(mllm__json_get(mllm__json_get(r, "a"), "c")); /* not an object */
	v = mllm__json_get(r, "s");
	ck_assert_uint_eq(v->len, 1 + 2 + 4 + 3);
	ck_assert(memcmp(v->str, "x\xc3\xa9\xf0\x9f\xa6\x99\n\"/", v->len) == 0);
	v = mllm__json_get(r, "z");
	ck_assert_uint_eq(v->len, 3);
	ck_assert(memcmp(v->str, "a\0b", 3) == 0);
	ck_assert_str_eq(mllm__json_type_name(r->type), "object");
	mllm__json_free(doc);

	r = parse_ok(&doc, "\"\"");
	ck_assert_int_eq(r->type, MLLM_JSON_STRING);
	ck_assert_uint_eq(r->len, 0);
	mllm__json_free(doc);
	r = parse_ok(&doc, "[[], {}]");
	ck_assert_uint_eq(r->n, 2);
	ck_assert_uint_eq(r->child->n, 0);
	ck_assert_ptr_null(r->child->child);
	mllm__json_free(doc);
}
END_TEST

/* ---- strictness ---------------------------------------------------------- */

static void reject(const char *s, size_t len, const char *needle)
{
	mllm__json_doc *doc = (mllm__json_doc *)1;
	char err[256] = "";
	int rc = mllm__json_parse(s, len, NULL, &doc, err, sizeof err);
	ck_assert_msg(rc == MLLM_EFORMAT, "accepted %.*s", (int)len, s);
	ck_assert_ptr_null(doc);
	ck_assert_msg(strstr(err, needle) != NULL, "%.*s: \"%s\" lacks \"%s\"", (int)len, s, err,
	              needle);
}

#define REJECT(s, needle) reject((s), sizeof(s) - 1, (needle))

START_TEST(test_strict)
{
	REJECT("", "unexpected end of input at line 1 column 1 (offset 0)");
	REJECT("   ", "unexpected end of input");
	REJECT("{\"a\":1,}", "trailing comma at line 1 column 8");
	REJECT("[1,2,]", "trailing comma");
	REJECT("{\"a\":1}\n// c", "trailing characters after the JSON value at line 2 column 1");
	REJECT("/* c */ {}", "invalid number");
	REJECT("{a:1}", "expected a member name");
	REJECT("{\"a\" 1}", "expected ':'");
	REJECT("[1 2]", "expected ',' or ']'");
	REJECT("{\"a\":1 \"b\":2}", "expected ',' or '}'");
	REJECT("012", "leading zero");
	REJECT("-", "invalid number");
	REJECT("1.", "invalid number");
	REJECT(".5", "invalid number");
	REJECT("1e", "invalid number");
	REJECT("+1", "invalid number");
	REJECT("NaN", "invalid number");
	REJECT("Infinity", "invalid number");
	REJECT("1e400", "number out of range");
	REJECT("tru", "invalid literal");
	REJECT("nul", "invalid literal");
	REJECT("\"abc", "unterminated string");
	REJECT("\"a\tb\"", "control character in string");
	REJECT("\"\\x\"", "invalid escape");
	REJECT("\"\\u12\"", "invalid \\u escape");
	REJECT("\"\\ud800\"", "unpaired surrogate");
	REJECT("\"\\udc00\"", "unpaired surrogate");
	REJECT("\"\\ud800\\u0041\"", "unpaired surrogate");
	REJECT("\"\xff\"", "invalid UTF-8");
	REJECT("\"\xc0\xaf\"", "invalid UTF-8");         /* overlong */
	REJECT("\"\xed\xa0\x80\"", "invalid UTF-8");     /* encoded surrogate */
	REJECT("\"\xf4\x90\x80\x80\"", "invalid UTF-8"); /* > U+10FFFF */
	REJECT("\"\xe2\x82\"", "invalid UTF-8");         /* cut short */
	REJECT("[1]\0", "trailing characters");
	REJECT("\"a\nb\"", "line 1 column 3");
	REJECT("{\"a\":1,\"b\":2,\"a\":3}", "duplicate member name \"a\" at line 1 column 18");
	REJECT("{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,"
	       "\"k8\":8,\"k9\":9,\"k3\":10}",
	       "duplicate member name \"k3\"");
	REJECT("{\"x\":{\"a\":1,\"a\":1}}", "duplicate member name \"a\"");
}
END_TEST

START_TEST(test_limits)
{
	mllm__json_limits lim = {.max_nodes = 3, .max_depth = 2};
	mllm__json_doc *doc = NULL;
	char err[256];
	char deep[200];
	int rc;

	rc = mllm__json_parse("[1,2]", 5, &lim, &doc, err, sizeof err);
	ck_assert_int_eq(rc, 0);
	mllm__json_free(doc);
	rc = mllm__json_parse("[1,2,3]", 7, &lim, &doc, err, sizeof err);
	ck_assert_int_eq(rc, MLLM_EFORMAT);
	ck_assert(strstr(err, "too many values") != NULL);
	rc = mllm__json_parse("[[1]]", 5, &lim, &doc, err, sizeof err);
	ck_assert_int_eq(rc, 0);
	mllm__json_free(doc);
	rc = mllm__json_parse("[[[1]]]", 7, &lim, &doc, err, sizeof err);
	ck_assert_int_eq(rc, MLLM_EFORMAT);
	ck_assert(strstr(err, "nesting too deep") != NULL);
	/* the default depth limit (64) stops a stack-smashing input */
	memset(deep, '[', sizeof deep);
	rc = mllm__json_parse(deep, sizeof deep, NULL, &doc, err, sizeof err);
	ck_assert_int_eq(rc, MLLM_EFORMAT);
	ck_assert(strstr(err, "nesting too deep") != NULL);
}
END_TEST

START_TEST(test_alloc_failure)
{
	mllm__json_doc *doc = NULL;
	char err[256];
	const char *s = "{\"a\": [1, 2, 3]}";

	for (long k = 0; k < 3; k++) {
		mllm__alloc_fail_after(k);
		int rc = mllm__json_parse(s, strlen(s), NULL, &doc, err, sizeof err);
		mllm__alloc_fail_after(-1);
		ck_assert_int_eq(rc, MLLM_ENOMEM);
		ck_assert_ptr_null(doc);
		ck_assert(strstr(err, "out of memory") != NULL);
	}
	ck_assert_int_eq(mllm__json_parse(s, strlen(s), NULL, &doc, err, sizeof err), 0);
	mllm__json_free(doc);
	mllm__json_free(NULL);
}
END_TEST

/* Seeded mutations of a real config: never a crash; an error always says
 * where; whatever we accept, jansson reads identically. */
START_TEST(test_mutations)
{
	char path[512], why[256];
	size_t n;
	char *orig, *b;
	uint32_t seed = 12345;
	int rounds = mllm_test_long() ? 200000 : 3000, accepted = 0;

	mllm_test_path(path, sizeof path, "models/tiny-mobilellm-f16/config.json");
	MLLM_REQUIRE_FIXTURE(path);
	orig = slurp(path, &n);
	b = malloc(n);
	for (int r = 0; r < rounds; r++) {
		mllm__json_doc *doc = NULL;
		char err[256] = "";
		size_t len = n;
		int k = 1 + r % 3;
		memcpy(b, orig, n);
		for (int i = 0; i < k; i++) {
			seed = seed * 1103515245u + 12345u;
			size_t at = (seed >> 8) % n;
			seed = seed * 1103515245u + 12345u;
			if ((seed >> 16) % 4 == 0)
				len = at; /* truncate */
			else
				b[at] = "{}[]\",:\\ 0-.eE\x80\xff"[(seed >> 8) % 16];
		}
		if (mllm__json_parse(b, len, NULL, &doc, err, sizeof err) == 0) {
			json_error_t je;
			json_t *j = json_loadb(b, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
			ck_assert_msg(j != NULL, "we accepted what jansson rejects: %s", je.text);
			ck_assert_msg(same(mllm__json_root(doc), j, why, sizeof why), "%s", why);
			json_decref(j);
			mllm__json_free(doc);
			accepted++;
		} else {
			ck_assert_msg(strstr(err, "at line ") != NULL, "%s", err);
		}
	}
	ck_assert_int_gt(accepted, 0);
	free(b);
	free(orig);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_fixture_files_agree_with_jansson);
	tcase_add_test(tc, test_tokenizer_cases_agree_with_jansson);
	tcase_add_test(tc, test_values);
	tcase_add_test(tc, test_strict);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_alloc_failure);
	tcase_add_test(tc, test_mutations);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
