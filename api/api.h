/*
 * api.h — the OpenAI protocol layer: the one header server/ includes.
 *
 * api/ turns HTTP request bodies (bytes) into engine submissions and engine
 * events into response bytes (JSON bodies, SSE chunks, error bodies). It
 * never touches sockets, threads or the clock beyond `created` timestamps,
 * so every function here is testable with no daemon.
 *
 * Ownership and threading, for everything declared below:
 * - Inputs are borrowed for the duration of the call unless stated.
 * - Objects returned through `T **out` are owned by the caller and freed with
 *   the matching `_free` (which accepts NULL).
 * - An api_request is used by one thread at a time (the loop thread); the
 *   functions keep no global mutable state except an atomic id counter, so
 *   different requests may be handled on different threads.
 * - Output goes into a caller-initialised mllm_buf (engine/base.h). Appends
 *   that hit the buffer's limit fail with MLLM_ENOSPACE; the server should
 *   answer that with a 500 and size its limit generously (a non-streamed
 *   body holds every token's logprobs: n * max_tokens * ~200 bytes).
 * - Every failure that is the client's fault is described by an api_error
 *   (HTTP status, OpenAI error type, param, code, message) that
 *   api_error_render() turns into {"error":{"message","type","param","code"}}.
 */
#ifndef API_H
#define API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mllm.h"
#include "base.h" /* mllm_buf */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Errors ------------------------------------------------------------ */

typedef struct {
	int status;        /* HTTP status: 400, 401, 404, 405, 413, 415, 429, 500, 503 */
	const char *type;  /* static: "invalid_request_error", "authentication_error",
	                    * "rate_limit_error", "server_error" */
	const char *code;  /* static or NULL (rendered as null): "model_not_found",
	                    * "context_length_exceeded", "invalid_api_key", ... */
	char param[64];    /* "" renders as null; e.g. "messages[2].content" */
	char message[512]; /* one sentence for humans */
	int retry_after_s; /* > 0: the server sends Retry-After (429/503) */
} api_error;

/* Fills *e. The error `type` follows from the status (400/404/405/413/415 →
 * invalid_request_error, 401 → authentication_error, 403 →
 * permission_error, 429 → rate_limit_error, 5xx → server_error). param and
 * code may be NULL. Returns `status` so handlers can `return api_error_set(...)`. */
int api_error_set(api_error *e, int status, const char *param, const char *code, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));

/* Maps an engine error (MLLM_E* from mllm_engine_submit or an MLLM_EV_ERROR
 * event) to the status the SDKs expect, with a message:
 *   EINVAL, ERANGE → 400; ETOOLONG → 400 code "context_length_exceeded";
 *   ENOTFOUND → 404; EOVERLOADED, ENOMEM → 503 code "overloaded",
 *   Retry-After 1; ESHUTDOWN → 503 code "shutting_down", Retry-After 1;
 *   ECANCELLED → 503 code "cancelled"; anything else → 500 "internal_error".
 * Returns the status. */
int api_error_from_mllm(api_error *e, int mllm_err);

/* Appends the JSON error body {"error":{"message","type","param","code"}}.
 * Returns 0 or MLLM_ENOSPACE / MLLM_ENOMEM. */
int api_error_render(const api_error *e, mllm_buf *out) MLLM_WUR;
/* Appends the same object as one SSE event: `data: {"error":{...}}\n\n`
 * (for failures after a stream has started). */
int api_error_render_sse(const api_error *e, mllm_buf *out) MLLM_WUR;

/* ---- Limits (from the config; the server passes them in) --------------- */

/* Defaults of the limits that the daemon's config table exposes (keys
 * max_body_bytes, max_tokens_limit, max_n, max_prompt_tokens): defined here
 * once, read by that table and by API_LIMITS_DEFAULT. Plain literals, so
 * that the table can stringify them. */
#define API_MAX_BODY_BYTES_DEFAULT    1048576 /* 1 MiB */
#define API_MAX_TOKENS_DEFAULT        4096
#define API_MAX_N_DEFAULT             8
#define API_MAX_PROMPT_TOKENS_DEFAULT 32768

typedef struct {
	size_t max_body_bytes;     /* longer bodies → 413 */
	int32_t max_tokens;        /* upper bound of max_tokens */
	int32_t max_n;             /* upper bound of n */
	int32_t max_prompts;       /* prompts in one completions request (64) */
	int32_t max_choices;       /* prompts x n in one request (128) */
	int32_t max_prompt_tokens; /* per prompt; 0 = the model's n_ctx */
	int32_t max_stop_len;      /* bytes per stop string (256) */
	int32_t max_logit_bias;    /* logit_bias entries (1024) */
	int32_t max_messages;      /* chat messages (1024) */
} api_limits;

#define API_LIMITS_DEFAULT                                                                         \
	((api_limits){.max_body_bytes = API_MAX_BODY_BYTES_DEFAULT,                                \
	              .max_tokens = API_MAX_TOKENS_DEFAULT,                                        \
	              .max_n = API_MAX_N_DEFAULT,                                                  \
	              .max_prompts = 64,                                                           \
	              .max_choices = 128,                                                          \
	              .max_prompt_tokens = API_MAX_PROMPT_TOKENS_DEFAULT,                          \
	              .max_stop_len = 256,                                                         \
	              .max_logit_bias = 1024,                                                      \
	              .max_messages = 1024})

/* ---- Chat templates ---------------------------------------------------- */

/*
 * Base MobileLLM models have no chat template. A template here is a set of
 * plain strings (see docs/api.md):
 *   system, user, assistant  per-role text; "{content}" is replaced by the
 *                            message content (every occurrence)
 *   generation               appended after the last message (the cue the
 *                            model continues from)
 *   stop                     implicit stop strings (up to 2, separated by
 *                            "||"), added after the client's own while
 *                            fewer than MLLM_MAX_STOP are set
 *   bos                      "auto" (the tokenizer's add_bos), "true", "false"
 * The default ("plain") is a transcript a base model continues naturally:
 *   system "System: {content}\n", user "User: {content}\n",
 *   assistant "Assistant: {content}\n", generation "Assistant:",
 *   stop "\nUser:" (and "\nSystem:" is NOT added), bos auto.
 * Presets: "plain" (the default), "chatml" (<|im_start|>role\n…<|im_end|>\n,
 * cue "<|im_start|>assistant\n", stop "<|im_end|>"), "raw" (contents only,
 * no cue, no stop: the client writes the whole prompt).
 */
typedef struct api_chat_template api_chat_template;

/* A copy of the default "plain" template. Never fails (small allocation). */
api_chat_template *api_chat_template_create(void);
void api_chat_template_free(api_chat_template *t);

/* Sets one key of the template from a config value. key is one of
 * "preset" (value: plain|chatml|raw — replaces every field),
 * "system", "user", "assistant", "generation", "stop", "bos",
 * "reasoning_format" (auto|none|split), "special_in_messages"
 * (true|false). Values accept
 * the escapes \n \t \\ (so they fit on one config line); "stop" holds up
 * to 2 strings separated by "||" ("" = no implicit stop).
 * Returns 0, or MLLM_EINVAL with a sentence in err (unknown key or preset,
 * bad escape, a role string without "{content}", too many stop strings). */
int api_chat_template_set(api_chat_template *t, const char *key, const char *value, char *err,
                          size_t errlen) MLLM_WUR;

/* Appends the template's description as "key = value" lines (escaped like
 * the input), for --dump-config. */
int api_chat_template_dump(const api_chat_template *t, const char *prefix, mllm_buf *out) MLLM_WUR;

/* Installs a Jinja chat template (a model's own, or a file named in the
 * config): chats are then rendered as transformers' apply_chat_template
 * renders them (api/jinja.h), with bos_text / eos_text as bos_token /
 * eos_token (NULL = None), and the preset strings are unused. source says
 * where it came from ("tokenizer_config.json", "file:/path", ...), for
 * GET /v1/models/{id}. Parses src[0..len) now; on failure (MLLM_EFORMAT,
 * MLLM_EUNSUPPORTED, with "line L, column C: ..." in err) t is unchanged. */
int api_chat_template_set_jinja(api_chat_template *t, const char *src, size_t len,
                                const char *bos_text, const char *eos_text, const char *source,
                                char *err, size_t errlen) MLLM_WUR;
/* "split" or "none": whether answers are split into reasoning
 * (<think>…</think>) and content, after resolving reasoning_format = auto. */
const char *api_chat_template_reasoning(const api_chat_template *t);
/* "preset:plain" (or chatml, raw) or the source given to _set_jinja. */
const char *api_chat_template_source(const api_chat_template *t);
/* 1 if the template's own text mentions s (Jinja templates only). */
int api_chat_template_mentions(const api_chat_template *t, const char *s);

/* ---- Models ------------------------------------------------------------ */

/* What api/ needs to know about a resident model. Filled by the server; all
 * pointers borrowed and must outlive every request prepared against it. */
typedef struct {
	const char *id;                         /* the name clients use in "model" */
	const mllm_tokenizer *tok;              /* must not be NULL for generation */
	int32_t n_ctx;                          /* context (prompt + completion) */
	const api_chat_template *chat_template; /* NULL = the default */
	int64_t created;                        /* unix seconds (load time) */
	const char *owned_by;                   /* NULL = "mobilellmd" */
	/* The engine's admission limits, so that a request that can never be
	 * admitted is a 400 naming its param rather than an endless 503 or a
	 * misleading context error. 0 = unknown: not checked. */
	int32_t max_running;   /* sequences decoding at once: bounds n */
	int32_t max_queue;     /* waiting requests: bounds the prompt count */
	int64_t kv_blocks;     /* KV pool size in blocks */
	int32_t kv_block_size; /* tokens per KV block */
} api_model_info;

/* GET /v1/models: {"object":"list","data":[{"id","object":"model",
 * "created","owned_by"}...]} */
int api_render_models(const api_model_info *const *models, int n_models, mllm_buf *out) MLLM_WUR;
/* GET /v1/models/{id}: the single model object. */
int api_render_model(const api_model_info *m, mllm_buf *out) MLLM_WUR;

/* ---- Completions and chat: one request through its life ---------------- */

typedef enum {
	API_COMPLETION = 1, /* POST /v1/completions */
	API_CHAT,           /* POST /v1/chat/completions */
	API_RESPONSES,      /* POST /v1/responses (api/responses.c) */
} api_kind;

typedef struct api_request api_request;

/*
 * Phase 1 — parse and validate the body (no model needed). Checks the body
 * size (413), JSON syntax and UTF-8 (400 "invalid JSON ..."), every known
 * field's type and range (400 naming the param), refuses `suffix` and
 * best_of != n, and ignores unknown fields (as OpenAI does). On success
 * *out is the request; on failure *out is NULL, err is filled, and the
 * return value is the HTTP status (>= 400). Returns 0 on success.
 * Cost: proportional to the body; no tokenization.
 */
int api_request_parse(api_kind kind, const char *body, size_t len, const api_limits *lim,
                      api_request **out, api_error *err);
void api_request_free(api_request *req);

/* The "model" field, or NULL when the client left it out (the server may
 * then pick its default model). Valid while req lives. */
const char *api_request_model(const api_request *req);
bool api_request_stream(const api_request *req);

/* Percent-decodes n bytes of a URL component into out (cap bytes, NUL
 * terminated): %XX escapes (either case) become their byte, '+' a space
 * when plus (query values), anything else — a '%' not followed by two hex
 * digits included — stays as it is. Returns the length, or -1 when it
 * does not fit or would hold a NUL. */
int api_url_decode(const char *s, size_t n, bool plus, char *out, size_t cap);
api_kind api_request_kind(const api_request *req);
/* The response id ("cmpl-…" / "chatcmpl-…"), generated at parse; unique
 * within the process. Useful for the log line. */
const char *api_request_id(const api_request *req);
/* Overrides id and created (tests, or a server-chosen request id). id is
 * copied (truncated to 63 bytes). */
void api_request_set_id(api_request *req, const char *id, int64_t created);

/* The 404 for a model name that is not resident (param "model", code
 * "model_not_found"). Returns 404. */
int api_error_model_not_found(api_error *e, const char *model);

/*
 * Phase 2 — bind to a model: apply the chat template, tokenize every prompt
 * (string prompts get BOS when the tokenizer says so; token prompts are used
 * verbatim), check token ids and logit_bias ids against the vocabulary,
 * check prompt length (max_prompt_tokens) and prompt + max_tokens against
 * n_ctx (400 "context_length_exceeded"), and fill the engine sampling
 * parameters (chat's default max_tokens = what the context leaves, capped
 * by lim->max_tokens). m is borrowed and must outlive req. Call it at most
 * once per request (after a failure, free the request).
 * Returns 0, or the HTTP status with err filled.
 * Cost: tokenization, proportional to the prompt bytes.
 */
int api_request_prepare(api_request *req, const api_model_info *m, api_error *err);

/* After prepare: how many engine submissions (one per prompt; chat: 1). */
int32_t api_request_n_submits(const api_request *req);
/* Fills s for prompt i (0 <= i < n_submits): prompt, n_prompt, n_choices
 * (= n), sampling. All pointers inside point into req and stay valid while
 * req lives (mllm_engine_submit deep-copies what it keeps). session_id and
 * user are set to NULL: the server fills them in. */
void api_request_submit(const api_request *req, int32_t i, mllm_submit *s);

/*
 * Phase 3 — render. The server calls, in this order:
 *   api_request_begin(req, out)    once, after every submission succeeded;
 *                                  streaming chat: the role chunk of each
 *                                  choice. Otherwise appends nothing.
 *   api_request_feed(req, i, ev, out) for every event polled from the
 *                                  engine request of prompt i. Streaming:
 *                                  appends the SSE chunk(s) for the event
 *                                  (possibly none: empty text without
 *                                  logprobs is skipped). Non-streaming:
 *                                  accumulates and appends nothing.
 *   api_request_done(req)          true once every choice of every prompt
 *                                  has finished, or any error arrived.
 *   api_request_end(req, out)      once, when done (or to end early):
 *                                  streaming: the usage chunk (when
 *                                  stream_options.include_usage) and
 *                                  "data: [DONE]\n\n"; non-streaming: the
 *                                  whole JSON body, or the error body when
 *                                  an MLLM_EV_ERROR (or a cancelled choice)
 *                                  arrived.
 * Choices are numbered prompt-major: index = prompt_i * n + choice.
 * Echo prompt logprobs (MLLM_EV_PROMPT) are taken once per prompt, whatever
 * choice they name, and rendered for every choice of that prompt. Chat
 * content drops one leading space (the model's space after the
 * "Assistant:" cue), streamed or not, and so does the first logprobs
 * token, so that the tokens join to the content.
 * A Responses request renders the response object or its typed events
 * (api/responses.c), never `[DONE]`.
 * An MLLM_EV_ERROR (or a DONE with MLLM_FINISH_ERROR/CANCELLED) in streaming
 * mode appends `data: {"error":…}\n\n`; the server should cancel the
 * request's other engine requests.
 *
 * feed/begin return 0 or a negative MLLM_E* (ENOSPACE/ENOMEM from out,
 * EINVAL for an event that cannot belong to this request).
 * end returns 0 or a negative MLLM_E* (ENOSPACE/ENOMEM from out), and on 0
 * stores in *status the HTTP status the response should have when not yet
 * sent: 200, or the error's status for a failed non-streamed request (its
 * api_error is available from api_request_error()).
 */
int api_request_begin(api_request *req, mllm_buf *out) MLLM_WUR;
int api_request_feed(api_request *req, int32_t prompt_i, const mllm_event *ev,
                     mllm_buf *out) MLLM_WUR;
bool api_request_done(const api_request *req);
int api_request_end(api_request *req, mllm_buf *out, int *status) MLLM_WUR;
/* The error that ended the request (NULL if none). */
const api_error *api_request_error(const api_request *req);

/* Ends a stream early with an error event (shutdown timeout, engine gone):
 * appends `data: {"error":…}\n\n` then "data: [DONE]\n\n", marks req done.
 * For non-streamed requests it only records the error: api_request_end()
 * then renders it. */
int api_request_abort(api_request *req, const api_error *e, mllm_buf *out) MLLM_WUR;

/* Totals so far, for the server's log line and metrics. */
typedef struct {
	int64_t prompt_tokens;     /* every prompt counted once */
	int64_t completion_tokens; /* every choice */
	int64_t cached_tokens;
} api_usage;
void api_request_usage(const api_request *req, api_usage *u);

/* ---- The Responses API (api/responses.c) -------------------------------- */

/*
 * A Responses request (API_RESPONSES) goes through the same phases as a
 * chat request: its input items are translated into chat messages and
 * rendered with the model's template, tools and text.format reuse the chat
 * machinery. What differs is the output (a response object, or the typed
 * event stream) and the state: a finished response may be kept as an
 * api_resp_record, which a later request continues from
 * (previous_response_id) with the record's token ids as its prompt prefix.
 *
 * Records are immutable once made and reference-counted (atomically), so
 * the loop thread (store) and a prep thread (continuation) may hold the
 * same record; _unref frees the last reference.
 */
typedef struct api_resp_record api_resp_record;

/* Length of a response id's affinity key: the 16 hex digits after "resp_",
 * the same for every response of one conversation (a balancer hashes or
 * sticks on them; docs/api.md, deploy/haproxy/haproxy.cfg). */
#define API_RESP_AFFINITY_LEN 16

/* POST /v1/responses/input_tokens: call before prepare, which then stops
 * once the input is rendered and tokenized — the count is an answer to
 * "does it fit?", so neither the context nor max_output_tokens refuses it.
 * Everything else (parameters, tools, previous_response_id, truncation
 * "auto") is checked and applied as for a real response. */
void api_request_set_count_only(api_request *req);
/* After such a prepare: {"object": "response.input_tokens", "input_tokens": N},
 * N the prompt tokens a response to the same body would be billed for
 * (usage.input_tokens). Returns 0 or -1 (out of memory / buffer bound). */
int api_request_render_input_tokens(const api_request *req, mllm_buf *out);

/* The previous_response_id of a Responses request, or NULL. */
const char *api_request_previous_id(const api_request *req);
/* Whether the response is to be stored (store is not false). */
bool api_request_store(const api_request *req);
/* The affinity key of the response id (API_RESP_AFFINITY_LEN chars, NUL
 * terminated), "" for other kinds. */
const char *api_request_affinity(const api_request *req);
/* Before prepare: continue from prev (the record previous_response_id
 * names). Takes its own reference. The affinity key is inherited, and so
 * is the model where the request names none. */
void api_request_set_previous(api_request *req, api_resp_record *prev);
/* Item references in a Responses input ({"type": "item_reference", "id"}
 * naming an output item of a stored response): lookup maps a response id
 * to a new reference to its record, or NULL. Call after parse, before
 * prepare (which refuses unresolved references): each reference becomes
 * the item it names. Returns 0, or an HTTP status with *err set (404 for
 * an item no stored response holds). A no-op for requests without any. */
typedef api_resp_record *(*api_resp_lookup_fn)(void *ud, const char *resp_id);
int api_request_resolve_items(api_request *req, api_resp_lookup_fn lookup, void *ud,
                              api_error *err);
/* The 404 for a stored response that no record answers, on the
 * /v1/responses/{id} routes (param "response_id", code "not_found"; a
 * previous_response_id is a 400 previous_response_not_found, prep.c).
 * Returns 404. */
int api_error_response_not_found(api_error *e, const char *param, const char *id);

/* After api_request_end of a stored, successful Responses request: the
 * record (the response body, its input items, the conversation's messages
 * and token ids). *out NULL when there is nothing to store (failed, not a
 * Responses request, store false). Returns 0 or MLLM_ENOMEM. */
int api_request_record(const api_request *req, api_resp_record **out) MLLM_WUR;

api_resp_record *api_resp_record_ref(api_resp_record *r);
void api_resp_record_unref(api_resp_record *r);
const char *api_resp_record_id(const api_resp_record *r);
/* Bytes the record holds (what a store's byte limit counts). */
size_t api_resp_record_bytes(const api_resp_record *r);
/* GET /v1/responses/{id}'s query: 0, or 400 with e filled for
 * stream=true (replaying a response's events is not supported: without
 * this a streaming client would read a plain body as zero events). */
int api_resp_retrieve_query(const char *query, api_error *e) MLLM_WUR;
/* GET /v1/responses/{id}: the stored response object. */
int api_resp_record_render(const api_resp_record *r, mllm_buf *out) MLLM_WUR;
/* GET /v1/responses/{id}/input_items?limit&order&after: the list object.
 * query is the raw query string (NULL = none). Returns 200 with the body
 * appended, or 400 with e filled (bad limit/order/after), or a negative
 * MLLM_E* when out overflows. */
int api_resp_record_render_items(const api_resp_record *r, const char *query, mllm_buf *out,
                                 api_error *e);
/* DELETE /v1/responses/{id}: {"id","object":"response","deleted":true}. */
int api_resp_render_deleted(const char *id, mllm_buf *out) MLLM_WUR;

/* ---- POST /tokenize and POST /detokenize -------------------------------- */

/* Finds a resident model by id (id NULL = the default model); NULL when
 * there is none. Called during the api_handle_* call only. */
typedef const api_model_info *(*api_model_lookup)(void *ud, const char *id);

/* POST /tokenize {"model", "prompt": string | "messages": [...],
 * "add_special_tokens": bool (default true: BOS per the tokenizer; for
 * messages the template's bos rule)} → {"tokens":[...],"count":N,
 * "max_model_len":n_ctx}. Returns 200 with the body appended to out, or the
 * error status with err filled (out unchanged), or a negative MLLM_E* when
 * out overflows. */
int api_handle_tokenize(const char *body, size_t len, const api_limits *lim,
                        api_model_lookup lookup, void *ud, mllm_buf *out, api_error *err);
/* POST /detokenize {"model", "tokens": [ids]} → {"prompt": text}. */
int api_handle_detokenize(const char *body, size_t len, const api_limits *lim,
                          api_model_lookup lookup, void *ud, mllm_buf *out, api_error *err);

#ifdef __cplusplus
}
#endif

#endif /* API_H */
