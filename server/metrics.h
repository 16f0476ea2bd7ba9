/*
 * metrics.h — the daemon's counters and latency histograms, rendered as
 * Prometheus text exposition (format 0.0.4) for GET /metrics.
 *
 * Thread-safety: none. Every update and every render happens on the loop
 * thread (the only thread that sees requests finish), so plain integers do.
 * Engine-side gauges (queue, running, KV blocks, prefix cache) are sampled
 * at render time through mllm_engine_stats_get() by the caller and passed in.
 */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include <stdint.h>

#include "base.h"
#include "mllm.h"

#define SRV_HIST_MAX_BUCKETS 16

typedef struct {
	int n_bounds;                              /* finite upper bounds */
	double bounds[SRV_HIST_MAX_BUCKETS];       /* seconds, ascending */
	uint64_t counts[SRV_HIST_MAX_BUCKETS + 1]; /* per bucket; last = +Inf */
	double sum;
	uint64_t count;
} srv_hist;

/* Statuses are counted in a dense table of 100..599. */
typedef struct {
	uint64_t requests_by_status[500];
	uint64_t prompt_tokens;           /* prompt tokens of finished requests */
	uint64_t completion_tokens;       /* generated tokens of finished choices */
	uint64_t cancelled;               /* requests whose client went away */
	int64_t connections_open;         /* gauge */
	uint64_t connections_refused;     /* over max_connections(_per_client) */
	uint64_t connections_timed_out;   /* header/body deadline passed */
	uint64_t connections_idle_closed; /* kept alive, no request in time */
	uint64_t prep_cancelled;          /* prep jobs dropped: client gone */
	int64_t prep_open;                /* gauge: requests handed to the prep
	                                   * threads, not yet answered (sampled by
	                                   * the caller before a render) */
	/* The /v1/responses store (sampled by the caller before a render). */
	int64_t responses_stored, responses_bytes, responses_evicted;
} srv_metrics;

/* A model's latency histograms (per model: models of different sizes have
 * nothing in common to mix). */
typedef struct {
	srv_hist ttft; /* request received -> first token, seconds */
	srv_hist itl;  /* between consecutive tokens, seconds */
	srv_hist e2e;  /* request received -> last byte queued */
} srv_model_hists;

/* One resident model's engine snapshot, for the render. */
typedef struct {
	const char *id;
	bool loaded;
	mllm_engine_stats st;
	const srv_model_hists *h; /* NULL: no histograms */
} srv_model_stats;

/* Zeroes. */
void srv_metrics_init(srv_metrics *m);
/* Zeroes and sets the bucket bounds. */
void srv_model_hists_init(srv_model_hists *h);

void srv_hist_observe(srv_hist *h, double seconds);
/* Counts one response with this HTTP status (out-of-range ones as 599). */
void srv_metrics_count_status(srv_metrics *m, int status);

/* Appends the full exposition. Returns 0 or MLLM_ENOSPACE when `out`'s limit
 * is too small. */
int srv_metrics_render(const srv_metrics *m, const srv_model_stats *models, size_t n_models,
                       mllm_buf *out) MLLM_WUR;

#endif
