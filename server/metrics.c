/*
 * metrics.c — Prometheus text for GET /metrics. Counters live in one
 * srv_metrics value owned by the server and touched only on the loop thread;
 * the render walks it plus per-model engine snapshots. Histogram buckets are
 * fixed at init: latency in seconds, from 1 ms (inter-token on a tiny model)
 * to 60 s (a long completion end to end).
 */
#include "metrics.h"

#include <stddef.h>
#include <string.h>

static const double ttft_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};
static const double itl_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};
static const double e2e_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0};

static void hist_init(srv_hist *h, const double *bounds, int n)
{
	MLLM_ASSERT(n <= SRV_HIST_MAX_BUCKETS);
	memset(h, 0, sizeof *h);
	h->n_bounds = n;
	memcpy(h->bounds, bounds, (size_t)n * sizeof *bounds);
}

void srv_metrics_init(srv_metrics *m)
{
	memset(m, 0, sizeof *m);
}

void srv_model_hists_init(srv_model_hists *h)
{
	hist_init(&h->ttft, ttft_bounds, (int)(sizeof ttft_bounds / sizeof ttft_bounds[0]));
	hist_init(&h->itl, itl_bounds, (int)(sizeof itl_bounds / sizeof itl_bounds[0]));
	hist_init(&h->e2e, e2e_bounds, (int)(sizeof e2e_bounds / sizeof e2e_bounds[0]));
}

void srv_hist_observe(srv_hist *h, double seconds)
{
	int i = 0;

	if (!(seconds >= 0)) /* NaN or negative: a clock bug; count as 0 */
		seconds = 0;
	while (i < h->n_bounds && seconds > h->bounds[i])
		i++;
	h->counts[i]++;
	h->sum += seconds;
	h->count++;
}

void srv_metrics_count_status(srv_metrics *m, int status)
{
	if (status < 100 || status > 599)
		status = 599;
	m->requests_by_status[status - 100]++;
}

/* One histogram family, a series per model that has histograms. */
static int render_hist(mllm_buf *out, const char *name, const char *help,
                       const srv_model_stats *models, size_t n, size_t field_off)
{
	int rc = mllm_buf_appendf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t k = 0; k < n && rc == 0; k++) {
		const srv_hist *h;
		uint64_t cum = 0;
		if (!models[k].h)
			continue;
		h = (const srv_hist *)((const char *)models[k].h + field_off);
		for (int i = 0; i < h->n_bounds && rc == 0; i++) {
			cum += h->counts[i];
			rc = mllm_buf_appendf(out, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", name,
			                      models[k].id, h->bounds[i], (unsigned long long)cum);
		}
		cum += h->counts[h->n_bounds];
		if (rc == 0)
			rc = mllm_buf_appendf(
			    out,
			    "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n%s_sum{model="
			    "\"%s\"} %.9g\n%s_count{model=\"%s\"} %llu\n",
			    name, models[k].id, (unsigned long long)cum, name, models[k].id, h->sum,
			    name, models[k].id, (unsigned long long)h->count);
	}
	return rc;
}

static int render_counter(mllm_buf *out, const char *name, const char *type, const char *help,
                          long long v)
{
	return mllm_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name,
	                        type, name, v);
}

/* One family with a {model="id"} label per resident model. */
static int render_model_family(mllm_buf *out, const char *name, const char *type, const char *help,
                               const srv_model_stats *models, size_t n, size_t field_off)
{
	int rc = mllm_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);

	for (size_t i = 0; i < n && rc == 0; i++) {
		int64_t v = *(const int64_t *)((const char *)&models[i].st + field_off);
		rc = mllm_buf_appendf(out, "%s{model=\"%s\"} %lld\n", name, models[i].id,
		                      (long long)v);
	}
	return rc;
}

int srv_metrics_render(const srv_metrics *m, const srv_model_stats *models, size_t n_models,
                       mllm_buf *out)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} fam[] = {
	    {"mllm_queue_depth", "gauge", "Requests waiting for admission.",
	     offsetof(mllm_engine_stats, n_queued)},
	    {"mllm_running_sequences", "gauge", "Sequences being decoded.",
	     offsetof(mllm_engine_stats, n_running)},
	    {"mllm_kv_blocks_used", "gauge", "KV cache blocks in use.",
	     offsetof(mllm_engine_stats, kv_blocks_used)},
	    {"mllm_kv_blocks_total", "gauge", "KV cache blocks in the pool.",
	     offsetof(mllm_engine_stats, kv_blocks_total)},
	    {"mllm_kv_blocks_cached", "gauge",
	     "KV blocks held only by the prefix cache (part of used; evictable).",
	     offsetof(mllm_engine_stats, kv_blocks_cached)},
	    {"mllm_prefix_cache_hits_total", "counter",
	     "Requests that reused cached prefix blocks.",
	     offsetof(mllm_engine_stats, prefix_hits)},
	    {"mllm_prefix_cache_reused_tokens_total", "counter",
	     "Prompt tokens served from the prefix cache.",
	     offsetof(mllm_engine_stats, prefix_tokens_reused)},
	    {"mllm_engine_prompt_tokens_total", "counter", "Prompt tokens processed by the engine.",
	     offsetof(mllm_engine_stats, n_prompt_tokens)},
	    {"mllm_engine_generated_tokens_total", "counter", "Tokens generated by the engine.",
	     offsetof(mllm_engine_stats, n_generated_tokens)},
	    {"mllm_engine_steps_total", "counter", "Engine steps (batched forward passes).",
	     offsetof(mllm_engine_stats, n_steps)},
	    {"mllm_preemptions_total", "counter",
	     "Requests preempted (KV freed, recomputed later) when the pool ran dry.",
	     offsetof(mllm_engine_stats, n_preemptions)},
	};
	int rc;

	rc = mllm_buf_appendf(out, "# HELP mllm_requests_total HTTP responses by status code.\n"
	                           "# TYPE mllm_requests_total counter\n");
	for (int s = 0; s < 500 && rc == 0; s++)
		if (m->requests_by_status[s])
			rc =
			    mllm_buf_appendf(out, "mllm_requests_total{status=\"%d\"} %llu\n",
			                     s + 100, (unsigned long long)m->requests_by_status[s]);
	if (rc == 0)
		rc = render_counter(out, "mllm_prompt_tokens_total", "counter",
		                    "Prompt tokens of completed requests.",
		                    (long long)m->prompt_tokens);
	if (rc == 0)
		rc = render_counter(out, "mllm_generation_tokens_total", "counter",
		                    "Tokens generated for completed requests.",
		                    (long long)m->completion_tokens);
	if (rc == 0)
		rc = render_counter(out, "mllm_requests_cancelled_total", "counter",
		                    "Requests cancelled because the client went away.",
		                    (long long)m->cancelled);
	if (rc == 0)
		rc = render_counter(out, "mllm_connections_open", "gauge",
		                    "HTTP connections currently open.",
		                    (long long)m->connections_open);
	if (rc == 0)
		rc = render_counter(out, "mllm_connections_refused_total", "counter",
		                    "Connections closed at accept: max_connections or "
		                    "max_connections_per_client reached.",
		                    (long long)m->connections_refused);
	if (rc == 0)
		rc = render_counter(out, "mllm_connections_timed_out_total", "counter",
		                    "Connections closed because a request's headers or body "
		                    "missed header_timeout_ms or body_timeout_ms.",
		                    (long long)m->connections_timed_out);
	if (rc == 0)
		rc = render_counter(out, "mllm_connections_idle_closed_total", "counter",
		                    "Connections closed after header_timeout_ms with nothing "
		                    "sent since their last answer (or since accept).",
		                    (long long)m->connections_idle_closed);
	if (rc == 0)
		rc = render_counter(out, "mllm_prep_cancelled_total", "counter",
		                    "Preparation jobs dropped or stopped because the client hung "
		                    "up.",
		                    (long long)m->prep_cancelled);
	if (rc == 0)
		rc = render_counter(out, "mllm_prep_requests", "gauge",
		                    "Requests being parsed and tokenized off the event loop.",
		                    (long long)m->prep_open);
	if (rc == 0)
		rc = render_counter(out, "mllm_responses_stored", "gauge",
		                    "Responses kept for GET /v1/responses/{id} and "
		                    "previous_response_id.",
		                    (long long)m->responses_stored);
	if (rc == 0)
		rc = render_counter(out, "mllm_responses_stored_bytes", "gauge",
		                    "Memory those responses hold (bounded by "
		                    "responses_store_bytes).",
		                    (long long)m->responses_bytes);
	if (rc == 0)
		rc = render_counter(out, "mllm_responses_evicted_total", "counter",
		                    "Stored responses dropped for a store limit or their age.",
		                    (long long)m->responses_evicted);
	if (rc == 0) {
		rc = mllm_buf_appendf(out, "# HELP mllm_model_loaded Whether the model is ready.\n"
		                           "# TYPE mllm_model_loaded gauge\n");
		for (size_t i = 0; i < n_models && rc == 0; i++)
			rc = mllm_buf_appendf(out, "mllm_model_loaded{model=\"%s\"} %d\n",
			                      models[i].id, models[i].loaded ? 1 : 0);
	}
	for (size_t f = 0; f < sizeof fam / sizeof fam[0] && rc == 0; f++)
		rc = render_model_family(out, fam[f].name, fam[f].type, fam[f].help, models,
		                         n_models, fam[f].off);
	if (rc == 0)
		rc = render_hist(out, "mllm_time_to_first_token_seconds",
		                 "Time from a generation request received (queueing included) to "
		                 "its first generated token.",
		                 models, n_models, offsetof(srv_model_hists, ttft));
	if (rc == 0)
		rc = render_hist(out, "mllm_inter_token_latency_seconds",
		                 "Time between consecutive generated tokens of one choice.", models,
		                 n_models, offsetof(srv_model_hists, itl));
	if (rc == 0)
		rc =
		    render_hist(out, "mllm_e2e_request_latency_seconds",
		                "Time from a generation request received to its response complete.",
		                models, n_models, offsetof(srv_model_hists, e2e));
	return rc;
}
