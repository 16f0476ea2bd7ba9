/*
 * api_fixture.h — the checked fixture shared by the api/ runners: the
 * fixture LLaMA-2 tokenizer loaded per test, the one model ("tiny") the
 * requests are prepared against, and the tokenizer's golden cases file. A runner defines setup() as
 * a call to api_fixture_setup() with its context size and `created` stamp, and passes
 * setup/teardown to tcase_add_checked_fixture().
 */
#ifndef MLLM_TESTS_API_FIXTURE_H
#define MLLM_TESTS_API_FIXTURE_H

#include "harness.h"

#include "api.h"

static mllm_tokenizer *tok;
static api_model_info model;

static void api_fixture_setup(int32_t n_ctx, int64_t created)
{
	char path[512], err[256];
	mllm_test_path(path, sizeof path, "tokenizer/llama2/tokenizer.model");
	MLLM_REQUIRE_FIXTURE(path);
	ck_assert_int_eq(mllm_tokenizer_load(path, &tok, err, sizeof err), 0);
	model = (api_model_info){.id = "tiny", .tok = tok, .n_ctx = n_ctx, .created = created};
}

/* The fixture tokenizer's golden cases (one JSON object a line), open for
 * reading; the caller closes it. */
static inline FILE *api_fixture_cases(void)
{
	char path[512];
	FILE *f;
	mllm_test_path(path, sizeof path, "tokenizer/llama2/cases.jsonl");
	MLLM_REQUIRE_FIXTURE(path);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	return f;
}

static void teardown(void)
{
	mllm_tokenizer_free(tok);
	tok = NULL;
}

#endif
