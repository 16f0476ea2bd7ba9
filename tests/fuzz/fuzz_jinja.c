/*
 * fuzz_jinja.c — the Jinja chat-template interpreter (api/jinja*.c): the
 * input is a template and a JSON context separated by the first NUL byte
 * (no NUL: the whole input is the template, rendered over a fixed chat).
 * Checks: a template either parses or fails with a "line L, column C"
 * message; rendering never overruns its limits (output size, work, depth):
 * it returns one of the documented codes, and on success the text fits the
 * output limit. Tight limits, so the limit paths are reached too.
 */
#include "fuzz.h"

#include <jansson.h>

#include "api.h"
#include "jinja.h"

static const char chat[] =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
    "{\"role\":\"user\",\"content\":\"Hi <b>there</b>\"},"
    "{\"role\":\"assistant\",\"content\":\"<think>x</think>Hello\","
    "\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
    "\"arguments\":{\"a\":1}}}]},{\"role\":\"tool\",\"content\":\"42\"}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
    "\"add_generation_prompt\":true,\"bos_token\":\"<s>\",\"eos_token\":\"</s>\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t tlen = nul ? (size_t)(nul - data) : size;
	api_jinja *t = NULL;
	char err[512] = "";
	json_t *vars;
	int rc = api_jinja_parse((const char *)data, tlen, &t, err, sizeof err);
	if (rc != 0) {
		FUZZ_CHECK(t == NULL);
		FUZZ_CHECK(rc == MLLM_EFORMAT || rc == MLLM_EUNSUPPORTED);
		FUZZ_CHECK(strstr(err, "line ") != NULL);
		return 0;
	}
	vars = nul ? json_loadb((const char *)nul + 1, size - tlen - 1, 0, NULL)
	           : json_loads(chat, 0, NULL);
	if (!json_is_object(vars)) {
		json_decref(vars);
		vars = json_loads(chat, 0, NULL);
	}
	{
		api_jinja_limits lim = {.max_output = 1 << 16, .max_work = 200000, .max_depth = 32};
		mllm_buf out;
		mllm_buf_init(&out, 1 << 20);
		rc = api_jinja_render(t, vars, &lim, &out, err, sizeof err);
		FUZZ_CHECK(rc == 0 || rc == MLLM_EINVAL || rc == MLLM_ENOSPACE ||
		           rc == MLLM_ERANGE || rc == MLLM_ENOMEM || rc == MLLM_EUNSUPPORTED);
		if (rc == 0)
			FUZZ_CHECK(out.len <= lim.max_output);
		mllm_buf_free(&out);
	}
	json_decref(vars);
	api_jinja_free(t);
	return 0;
}
