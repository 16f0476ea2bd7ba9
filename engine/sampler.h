/*
 * sampler.h — sampling parameters with OpenAI semantics, and the sampler.
 * Included through mllm.h.
 *
 * mllm_sampling is a transparent value type: api/ fills it from a request,
 * the scheduler copies it (deep) at submission.
 */
#ifndef MLLM_SAMPLER_H
#define MLLM_SAMPLER_H

#define MLLM_MAX_STOP 4          /* OpenAI: up to 4 stop sequences */
#define MLLM_MAX_TOP_LOGPROBS 20 /* chat top_logprobs bound */

typedef struct {
	int32_t id;
	float bias; /* -100..100; -100 bans, +100 all but forces */
} mllm_logit_bias;

typedef struct {
	float temperature;       /* 0 = greedy (default 1) */
	float top_p;             /* (0, 1], default 1 */
	int32_t top_k;           /* 0 = off (extension) */
	float min_p;             /* 0 = off (extension) */
	float presence_penalty;  /* -2..2 */
	float frequency_penalty; /* -2..2 */
	const mllm_logit_bias *logit_bias; /* borrowed until submit copies */
	int32_t n_logit_bias;
	bool has_seed;
	uint64_t seed;
	int32_t logprobs;        /* -1 = none; else top-N alternatives (0..20) */
	bool echo_logprobs;      /* also compute the prompt tokens' logprobs */
	int32_t max_tokens;      /* >= 0; 0 = only echo / prompt logprobs */
	const char *const *stop; /* [n_stop] NUL-terminated, borrowed */
	int32_t n_stop;
	bool ignore_eos;
} mllm_sampling;

#define MLLM_SAMPLING_DEFAULT                                                 \
	((mllm_sampling){ .temperature = 1.0f, .top_p = 1.0f, .top_k = 0,      \
			  .min_p = 0.0f, .logprobs = -1, .max_tokens = 16 })

#endif
