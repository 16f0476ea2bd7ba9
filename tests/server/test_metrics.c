/*
 * test_metrics.c — the Prometheus exposition (server/metrics.c): histogram
 * buckets are cumulative and end in +Inf = count, status counters appear
 * once per status, every engine family carries one line per model, and the
 * text is well-formed (HELP/TYPE before samples, no blank lines).
 */
#include "harness.h"

#include "../../server/metrics.c"

static const char *find_line(const char *text, const char *prefix, char *buf, size_t n)
{
	const char *p = text;
	size_t len = strlen(prefix);
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		if (l >= len && strncmp(p, prefix, len) == 0) {
			snprintf(buf, n, "%.*s", (int)l, p);
			return buf;
		}
		p = nl ? nl + 1 : NULL;
	}
	return NULL;
}

static double sample(const char *text, const char *prefix)
{
	char line[512];
	const char *l = find_line(text, prefix, line, sizeof line);
	ck_assert_msg(l != NULL, "no sample %s", prefix);
	return strtod(line + strlen(prefix), NULL);
}

START_TEST(test_histogram_cumulative)
{
	srv_metrics m;
	srv_model_hists h[2];
	srv_model_stats ms[2];
	mllm_buf b;
	const double obs[] = {0.0005, 0.003, 0.003, 0.2, 100.0};

	srv_metrics_init(&m);
	srv_model_hists_init(&h[0]);
	srv_model_hists_init(&h[1]);
	for (size_t i = 0; i < 5; i++)
		srv_hist_observe(&h[0].itl, obs[i]);
	srv_hist_observe(&h[0].itl, -1.0); /* clock bug: counted as 0 */
	srv_hist_observe(&h[1].itl, 0.02);
	srv_hist_observe(&h[1].ttft, 0.3);
	memset(ms, 0, sizeof ms);
	ms[0].id = "a";
	ms[0].h = &h[0];
	ms[1].id = "b";
	ms[1].h = &h[1];
	mllm_buf_init(&b, 1 << 20);
	ck_assert_int_eq(srv_metrics_render(&m, ms, 2, &b), 0);
	ck_assert_double_eq(
	    sample(b.data, "mllm_inter_token_latency_seconds_bucket{model=\"a\",le=\"0.001\"} "),
	    2);
	ck_assert_double_eq(
	    sample(b.data, "mllm_inter_token_latency_seconds_bucket{model=\"a\",le=\"0.005\"} "),
	    4);
	ck_assert_double_eq(
	    sample(b.data, "mllm_inter_token_latency_seconds_bucket{model=\"a\",le=\"0.25\"} "), 5);
	ck_assert_double_eq(
	    sample(b.data, "mllm_inter_token_latency_seconds_bucket{model=\"a\",le=\"1\"} "), 5);
	ck_assert_double_eq(
	    sample(b.data, "mllm_inter_token_latency_seconds_bucket{model=\"a\",le=\"+Inf\"} "), 6);
	ck_assert_double_eq(sample(b.data, "mllm_inter_token_latency_seconds_count{model=\"a\"} "),
	                    6);
	ck_assert_double_eq_tol(
	    sample(b.data, "mllm_inter_token_latency_seconds_sum{model=\"a\"} "), 100.2065, 1e-6);
	ck_assert_double_eq(sample(b.data, "mllm_time_to_first_token_seconds_count{model=\"a\"} "),
	                    0);
	/* the other model's series are its own */
	ck_assert_double_eq(
	    sample(b.data, "mllm_inter_token_latency_seconds_bucket{model=\"b\",le=\"0.01\"} "), 0);
	ck_assert_double_eq(
	    sample(b.data, "mllm_inter_token_latency_seconds_bucket{model=\"b\",le=\"0.025\"} "),
	    1);
	ck_assert_double_eq(sample(b.data, "mllm_time_to_first_token_seconds_count{model=\"b\"} "),
	                    1);
	ck_assert_double_eq(sample(b.data, "mllm_e2e_request_latency_seconds_count{model=\"b\"} "),
	                    0);
	/* one HELP/TYPE per family */
	ck_assert_ptr_null(strstr(strstr(b.data, "# TYPE mllm_inter_token_latency_seconds") + 1,
	                          "# TYPE mllm_inter_token_latency_seconds"));
	mllm_buf_free(&b);
}
END_TEST

START_TEST(test_status_and_models)
{
	srv_metrics m;
	mllm_buf b;
	srv_model_stats ms[2];
	char line[256];

	srv_metrics_init(&m);
	srv_metrics_count_status(&m, 200);
	srv_metrics_count_status(&m, 200);
	srv_metrics_count_status(&m, 404);
	srv_metrics_count_status(&m, 42); /* nonsense: 599 */
	m.prompt_tokens = 17;
	m.completion_tokens = 5;
	memset(ms, 0, sizeof ms);
	ms[0].id = "a";
	ms[0].loaded = true;
	ms[0].st.kv_blocks_used = 3;
	ms[0].st.kv_blocks_total = 64;
	ms[0].st.n_queued = 2;
	ms[1].id = "b";
	ms[1].st.prefix_tokens_reused = 48;
	mllm_buf_init(&b, 1 << 20);
	ck_assert_int_eq(srv_metrics_render(&m, ms, 2, &b), 0);
	ck_assert_double_eq(sample(b.data, "mllm_requests_total{status=\"200\"} "), 2);
	ck_assert_double_eq(sample(b.data, "mllm_requests_total{status=\"404\"} "), 1);
	ck_assert_double_eq(sample(b.data, "mllm_requests_total{status=\"599\"} "), 1);
	ck_assert_ptr_null(
	    find_line(b.data, "mllm_requests_total{status=\"500\"}", line, sizeof line));
	ck_assert_double_eq(sample(b.data, "mllm_prompt_tokens_total "), 17);
	ck_assert_double_eq(sample(b.data, "mllm_generation_tokens_total "), 5);
	ck_assert_double_eq(sample(b.data, "mllm_kv_blocks_used{model=\"a\"} "), 3);
	ck_assert_double_eq(sample(b.data, "mllm_kv_blocks_total{model=\"a\"} "), 64);
	ck_assert_double_eq(sample(b.data, "mllm_queue_depth{model=\"a\"} "), 2);
	ck_assert_double_eq(sample(b.data, "mllm_prefix_cache_reused_tokens_total{model=\"b\"} "),
	                    48);
	ck_assert_double_eq(sample(b.data, "mllm_model_loaded{model=\"a\"} "), 1);
	ck_assert_double_eq(sample(b.data, "mllm_model_loaded{model=\"b\"} "), 0);
	mllm_buf_free(&b);
}
END_TEST

/* Every sample's metric family was announced by a # TYPE line before it. */
START_TEST(test_well_formed)
{
	srv_metrics m;
	mllm_buf b;
	srv_model_stats ms = {.id = "x", .loaded = true};
	char *copy, *save = NULL;
	char typed[64][96];
	int n_typed = 0, n_samples = 0;

	srv_metrics_init(&m);
	srv_metrics_count_status(&m, 200);
	mllm_buf_init(&b, 1 << 20);
	ck_assert_int_eq(srv_metrics_render(&m, &ms, 1, &b), 0);
	ck_assert(b.len > 0 && b.data[b.len - 1] == '\n');
	ck_assert_ptr_null(strstr(b.data, "\n\n"));
	copy = strdup(b.data);
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "# TYPE ", 7) == 0) {
			ck_assert_int_lt(n_typed, 64);
			sscanf(l + 7, "%95s", typed[n_typed++]);
			continue;
		}
		if (l[0] == '#')
			continue;
		int ok = 0;
		for (int i = 0; i < n_typed; i++) {
			size_t k = strlen(typed[i]);
			if (strncmp(l, typed[i], k) == 0 &&
			    (l[k] == ' ' || l[k] == '{' || l[k] == '_'))
				ok = 1;
		}
		ck_assert_msg(ok, "sample before its TYPE: %s", l);
		n_samples++;
	}
	ck_assert_int_gt(n_samples, 20);
	free(copy);
	/* A buffer too small reports ENOSPACE rather than truncating. */
	mllm_buf_free(&b);
	mllm_buf_init(&b, 100);
	ck_assert_int_eq(srv_metrics_render(&m, &ms, 1, &b), MLLM_ENOSPACE);
	mllm_buf_free(&b);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");
	tcase_add_test(tc, test_histogram_cumulative);
	tcase_add_test(tc, test_status_and_models);
	tcase_add_test(tc, test_well_formed);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
