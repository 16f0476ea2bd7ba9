/*
 * fuzz_schema.c — JSON Schema to grammar (api/schema.c, api/structured.c,
 * engine/grammar.c): the input is a schema, sent as a chat request's
 * response_format json_schema (byte 0 odd: strict, and as a forced tool's
 * parameters too) through parse and prepare, against the LLaMA-2
 * tokenizer. Checks: a schema is either compiled or refused with a
 * documented status and a 4-field error object naming response_format (or
 * the tool); nothing crashes or runs away (the compiler's own bounds).
 */
#include "fuzz.h"

#include <jansson.h>

#include "api.h"

static mllm_tokenizer *tok;
static api_model_info model;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[1024], err[256];
	(void)argc;
	(void)argv;
	fuzz_fixture(path, sizeof path, "tokenizer/llama2/tokenizer.model");
	FUZZ_REQUIRE(mllm_tokenizer_load(path, &tok, err, sizeof err) == 0, path);
	model = (api_model_info){.id = "tiny", .tok = tok, .n_ctx = 512, .created = 1};
	return 0;
}

static void check_error(const api_error *e)
{
	mllm_buf b;
	json_t *j;
	FUZZ_CHECK(e->status == 400 || e->status == 413 || e->status == 503);
	mllm_buf_init(&b, 1 << 16);
	FUZZ_CHECK(api_error_render(e, &b) == 0);
	j = json_loadb(b.data, b.len, 0, NULL);
	FUZZ_CHECK(j != NULL && json_object_size(json_object_get(j, "error")) == 4);
	json_decref(j);
	mllm_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool strict = size > 0 && (data[0] & 1);
	json_t *schema, *body;
	char *text;
	api_limits lim = API_LIMITS_DEFAULT;
	api_request *req = NULL;
	api_error e;
	if (size == 0)
		return 0;
	schema = json_loadb((const char *)data + 1, size - 1, 0, NULL);
	if (!schema)
		return 0; /* not JSON: the request parser's business (fuzz_request) */
	body = json_pack("{s:[{s:s,s:s}],s:i}", "messages", "role", "user", "content", "x",
	                 "max_tokens", 8);
	json_object_set_new(body, "response_format",
	                    json_pack("{s:s,s:{s:s,s:O,s:b}}", "type", "json_schema", "json_schema",
	                              "name", "s", "schema", schema, "strict", strict));
	if (strict) {
		json_object_set_new(body, "tools",
		                    json_pack("[{s:s,s:{s:s,s:O}}]", "type", "function", "function",
		                              "name", "f", "parameters", schema));
		json_object_set_new(body, "tool_choice", json_string("required"));
		json_object_del(body, "response_format");
	}
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	json_decref(schema);
	if (!text)
		return 0;
	if (api_request_parse(API_CHAT, text, strlen(text), &lim, &req, &e) != 0)
		check_error(&e);
	else if (api_request_prepare(req, &model, &e) != 0)
		check_error(&e);
	api_request_free(req);
	free(text);
	return 0;
}
