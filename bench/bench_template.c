/*
 * bench_template.c — how long a chat template takes: parse once (model
 * load) and render per request, for each fixture template, on a
 * 20-message conversation (a system prompt, then user and assistant turns
 * of a few sentences each) with three OpenAI-style tools passed along.
 *
 *   build/bench/bench_template FIXTURES_DIR [ITERATIONS]
 *
 * Prints, per template: the rendered size, the parse time and the median
 * and best render time over ITERATIONS (default 2000) renders, in CPU
 * time of this thread (the machine is shared: wall time would measure the
 * neighbours). Figures only: nothing here passes or fails on time.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja.h"

#include "bench_util.h"

static json_t *tool(const char *name, const char *desc, const char *param)
{
	return json_pack("{s:s,s:{s:s,s:s,s:{s:s,s:{s:{s:s,s:s}},s:[s]}}}", "type", "function",
	                 "function", "name", name, "description", desc, "parameters", "type",
	                 "object", "properties", param, "type", "string", "description",
	                 "the value to look up", "required", param);
}

static json_t *conversation(void)
{
	json_t *msgs = json_array();
	json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content",
	                                      "You are a helpful assistant. Answer briefly and "
	                                      "use the tools when they help."));
	for (int i = 0; i < 19; i++) {
		char text[256];
		snprintf(text, sizeof text,
		         i % 2 == 0 ? "Question %d: what is the weather like in Paris today, and "
		                      "should I take an umbrella?"
		                    : "Answer %d: it is mild and cloudy in Paris, 14 degrees, with "
		                      "light rain expected in the afternoon, so yes, take one.",
		         i / 2 + 1);
		json_array_append_new(msgs, json_pack("{s:s,s:s}", "role",
		                                      i % 2 == 0 ? "user" : "assistant", "content",
		                                      text));
	}
	return msgs;
}

int main(int argc, char **argv)
{
	static const char *const names[] = {"llama3", "llama3_1", "qwen3", "gemma3", "deepseek_v3"};
	int iters = argc > 2 ? atoi(argv[2]) : 2000;
	json_t *tools;
	if (argc < 2 || iters <= 0) {
		fprintf(stderr, "usage: bench_template FIXTURES_DIR [ITERATIONS]\n");
		return 2;
	}
	tools = json_pack("[ooo]", tool("get_weather", "Current weather for a city", "city"),
	                  tool("get_time", "Local time in a time zone", "zone"),
	                  tool("search", "Search the web", "query"));
	printf("%-12s %8s %10s %12s %12s  (20 messages + 3 tools, %d renders, CPU time)\n",
	       "template", "bytes", "parse_us", "render_med", "render_best", iters);
	for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
		char path[4096], err[512];
		size_t len;
		char *src;
		api_jinja *t = NULL;
		json_t *vars, *sp;
		double t0, parse_us, *times = malloc((size_t)iters * sizeof *times);
		size_t out_len = 0;
		snprintf(path, sizeof path, "%s/chat_templates/%s.jinja", argv[1], names[k]);
		src = slurp(path, &len);
		if (!src || !times) {
			fprintf(stderr, "cannot read %s\n", path);
			return 1;
		}
		t0 = cpu_now();
		if (api_jinja_parse(src, len, &t, err, sizeof err) != 0) {
			fprintf(stderr, "%s: %s\n", names[k], err);
			return 1;
		}
		parse_us = (cpu_now() - t0) * 1e6;
		snprintf(path, sizeof path, "%s/chat_templates/%s.json", argv[1], names[k]);
		sp = json_load_file(path, 0, NULL);
		vars = json_pack("{s:o,s:O,s:b,s:O,s:O}", "messages", conversation(), "tools",
		                 tools, "add_generation_prompt", 1, "bos_token",
		                 json_object_get(sp, "bos_token"), "eos_token",
		                 json_object_get(sp, "eos_token"));
		for (int i = 0; i < iters; i++) {
			mllm_buf b;
			mllm_buf_init(&b, (size_t)1 << 24);
			t0 = cpu_now();
			if (api_jinja_render(t, vars, NULL, &b, err, sizeof err) != 0) {
				fprintf(stderr, "%s: %s\n", names[k], err);
				return 1;
			}
			times[i] = (cpu_now() - t0) * 1e6;
			out_len = b.len;
			mllm_buf_free(&b);
		}
		qsort(times, (size_t)iters, sizeof *times, cmp_double);
		printf("%-12s %8zu %10.1f %10.1fus %10.1fus\n", names[k], out_len, parse_us,
		       times[iters / 2], times[0]);
		free(times);
		json_decref(vars);
		json_decref(sp);
		api_jinja_free(t);
		free(src);
	}
	json_decref(tools);
	return 0;
}
