/*
 * api_internal.h — what the api/ files share and server/ never sees: the
 * layout of api_request (parsed by request.c, rendered by render.c), the
 * chat template internals, and small JSON/UTF-8 helpers (util.c).
 */
#ifndef API_INTERNAL_H
#define API_INTERNAL_H

#include <jansson.h>

#include "api.h"

/* ---- util.c ------------------------------------------------------------ */

/* A token id in JSON: a non-negative integer up to INT32_MAX, or such an
 * integral real (450.0). */
bool api__json_id(const json_t *t, int64_t *out);

/* Appends compact JSON (jansson, insertion order, floats to 9 digits). */
int api__json_append(const json_t *j, mllm_buf *out);
/* Appends `data: <compact JSON>\n\n`. */
int api__sse_append(const json_t *j, mllm_buf *out);
/* 1 if p[0..n) is valid UTF-8 (no overlongs, no surrogates). */
int api__utf8_valid(const char *p, size_t n);
/* Characters (code points) in p[0..n): bytes that are not continuations. */
size_t api__utf8_chars(const char *p, size_t n);
/* A JSON string of p[0..n), each invalid UTF-8 byte replaced by U+FFFD.
 * Never NULL (aborts on OOM like xmalloc). */
json_t *api__json_text(const char *p, size_t n);
/* A JSON string for a token's bytes: the bytes when valid UTF-8 without
 * NUL, else the OpenAI convention "bytes:\xNN\xNN" (as text). Never NULL. */
json_t *api__json_token(const char *p, size_t n);
/* A JSON real for a logprob; non-finite values become -9999.0. */
json_t *api__json_logprob(float lp);
/* A tool or json_schema name as OpenAI allows it: 1-64 of a-z A-Z 0-9 _ -. */
bool api__name_ok(const char *s, size_t n);
/* jansson's parse error, as a client can act on it. */
const char *api__json_error_text(const json_error_t *je);
/* "cmpl-" / "chatcmpl-" followed by 24 hex digits. */
void api__make_id(char *buf, size_t cap, const char *prefix);

/* ---- chat_template.c ---------------------------------------------------- */

typedef enum { API_ROLE_SYSTEM = 0, API_ROLE_USER, API_ROLE_ASSISTANT, API_ROLE__COUNT } api__role;

typedef struct {
	api__role role;
	char *content; /* owned, NUL-terminated (JSON strings hold no NUL) */
	size_t len;
	bool tool; /* role "tool": only Jinja templates render it */
} api__message;

#define API__TEMPLATE_MAX_STOP 2

struct api_chat_template {
	char *role[API_ROLE__COUNT]; /* with "{content}" */
	char *generation;
	char *stop[API__TEMPLATE_MAX_STOP];
	int n_stop;
	int bos; /* -1 auto, 0 no, 1 yes */
	/* A Jinja template (the model's own, or a file): when set it renders
	 * the chat and the preset strings above are unused. */
	struct api_jinja *jinja;
	char *bos_text, *eos_text; /* the template's bos_token / eos_token; NULL = None */
	char source[256];          /* what /v1/models/{id} reports: "preset:plain", ... */
	int reasoning;             /* reasoning_format: 0 auto, 1 none, 2 split */
	/* Special-token text (<|eot_id|> ...) inside message contents:
	 * false = refused with a 400 (the default: a user cannot forge a turn
	 * boundary), true = parsed as the special token like the template's
	 * own markers (transformers' behaviour). */
	bool special_in_messages;
};

/* The built-in default template (plain transcript). */
const api_chat_template *api__chat_template_default(void);
/* Renders messages into prompt text (appended to out), ending with the
 * generation cue. */
int api__chat_apply(const api_chat_template *t, const api__message *msgs, int32_t n_msgs,
                    mllm_buf *out);

/* Renders req's chat with t (its Jinja template over the request's own
 * JSON, or the preset over req->msgs) into out. *skip: bytes at the start
 * of out that stand for the BOS token (the template printed bos_token's
 * text), to be replaced by the BOS id; *bos: whether to add BOS. Returns 0
 * or an HTTP status with e filled (400 when the template raises). Runs on
 * a prep thread: bounded in output, work and depth. */
int api__chat_render(const api_chat_template *t, const struct api_request *req,
                     const mllm_tokenizer *tok, mllm_buf *out, size_t *skip, bool *bos,
                     api_error *e);
/* request.c: with a Jinja template (whose output is encoded with special
 * tokens parsed), a 400 naming the first message whose content holds
 * special-token text, unless t->special_in_messages. 0 when fine. */
int api__check_message_specials(const api_chat_template *t, const mllm_tokenizer *tok,
                                const struct api_request *req, api_error *e);

/* ---- request.c / render.c ----------------------------------------------- */

typedef struct {
	int32_t token;
	bool has_logprob;
	float logprob;
	char *text; /* owned token bytes */
	size_t text_len;
	/* What the response's text shows for it (mllm_event.token_out;
	 * a prompt token's own bytes): the entries are lined up with the
	 * text by these lengths. Owned. */
	char *out;
	size_t out_len;
	int32_t n_top;
	mllm_top_logprob *top; /* owned [n_top] */
} api__lp;

typedef struct {
	api__lp *v;
	size_t n, cap;
} api__lp_list;

/* tools.c: where the parse of a choice's output stands (text before any
 * call, a call's head, its arguments, after it). Zeroed = at the start. */
typedef struct {
	int phase;        /* API__TP_* (tools.c) */
	size_t pos;       /* bytes of the text parsed */
	size_t call_at;   /* where the current call's object starts */
	size_t args_sent; /* bytes of the text out as argument fragments */
	size_t args_at;   /* where the current call's arguments start */
	int32_t n_calls;  /* calls whose head has been seen */
	int32_t depth;    /* scanning the arguments: nesting, */
	bool in_str, esc; /* inside a string, after a backslash */
} api__tparse;

typedef struct {
	mllm_buf text;   /* non-streamed: the accumulated text */
	api__lp_list lp; /* completion tokens (non-streamed) */
	bool started;    /* the echo (if any) has been sent / appended */
	bool lstrip;     /* chat: drop one leading space of the content */
	bool done;
	mllm_finish finish;
	int32_t n_completion;
	size_t offset; /* running text_offset (characters) */
	/* Logprob entries kept in step with the text (render.c lp_align):
	 * where the completion starts in `text` (after an echo), and for
	 * streams, bytes of text released, bytes of entries sent and the
	 * first entry of lp not sent yet. */
	size_t text0;
	size_t released, lp_sent_bytes, lp_head;
	/* Reasoning split (render.c): where the output is relative to a
	 * <think>…</think> block, a held-back possible partial marker, the
	 * reasoning text (non-streamed) and the tokens spent reasoning. */
	int rstate;    /* API__R_* */
	char hold[64]; /* bytes that may be the start of a marker */
	size_t n_hold;
	mllm_buf reasoning;
	bool saw_reasoning;
	int32_t n_reasoning;
	int32_t n_pending; /* tokens held before a possible "<think>" */
	/* Tool calls parsed from the output (tools.c): the text accumulates
	 * in `text` for streams too, and tp says how far it has been cut into
	 * content, call heads and argument fragments. */
	api__tparse tp;
} api__choice;

enum { API__R_OFF = 0, API__R_START, API__R_REASON, API__R_ANSWER_LSTRIP, API__R_ANSWER };

/* render.c: the state a choice starts in, given the rendered prompt: off
 * unless the template splits reasoning; inside the block when the prompt
 * ends with an open "<think>" (the template opened it). */
int api__reasoning_start(const api_chat_template *t, const char *prompt, size_t len);
/* chat_template.c: whether t splits reasoning (reasoning_format split, or
 * auto with a Jinja template that mentions <think>). */
bool api__chat_template_splits(const api_chat_template *t);

typedef struct {
	char *text; /* string prompt (owned) or, after prepare, decoded ids */
	size_t text_len;
	bool is_tokens; /* given as token ids */
	int32_t *ids;   /* owned */
	size_t n_ids;
	int32_t n_cached;
	/* echo + logprobs: the engine sends prompt logprobs once per prompt
	 * (as choice 0); every choice of the prompt renders them. */
	api__lp_list plp;
	size_t *offsets;   /* [n_ids]: where token k starts in the decoded text */
	size_t text_chars; /* characters in text: where the completion starts */
} api__prompt;

struct api_request {
	api_kind kind;
	char id[64];
	int64_t created;
	char *model; /* NULL when absent */
	api_limits lim;

	bool stream, include_usage, echo;
	int32_t n;
	bool has_max_tokens;
	int32_t max_tokens;
	const char *max_tokens_param; /* the name the client used (errors) */
	int32_t logprobs;             /* -1 = none */
	mllm_sampling sp;

	char *stop[MLLM_MAX_STOP]; /* owned */
	int32_t n_stop_client;
	const char *stop_ptrs[MLLM_MAX_STOP];
	mllm_logit_bias *bias; /* owned */
	int32_t n_bias;

	api__prompt *prompts;
	int32_t n_prompts;
	api__message *msgs;
	int32_t n_msgs;
	/* The chat as the client sent it, for Jinja templates (borrowed
	 * references into the parsed body, kept alive here). */
	json_t *j_messages, *j_tools, *j_kwargs;

	/* Structured outputs (structured.c): the kept schema, and the grammar
	 * prepare compiles from it (one reference, also in sp.grammar). */
	int rf_kind; /* API__RF_* */
	json_t *rf_schema;
	mllm_grammar *grammar;
	/* Tools (tools.c). */
	json_t *tools;     /* validated array, or NULL */
	int tool_choice;   /* API__TC_* */
	char *tool_name;   /* API__TC_NAMED */
	bool parallel;     /* parallel_tool_calls (default true) */
	int tool_syntax;   /* API__TS_*: how calls are written (prepare) */
	bool tool_parse;   /* the output is cut into content and tool_calls */
	bool tool_in_call; /* a continued prefill ends with the opener */

	const api_model_info *m; /* after prepare */
	api__choice *choices;    /* [n_prompts * n] after prepare */
	int32_t n_choices_done;
	bool failed;
	api_error err;
	bool ended;
	bool split; /* reasoning split on: usage says reasoning_tokens */
	/* continue_final_message: the prompt ends inside the last (assistant)
	 * message, whose text the output continues. */
	bool cont_final;
	bool count_only; /* api_request_set_count_only: prepare only tokenizes */
	/* Responses (responses.c): its fields, items and stream state; NULL
	 * for the other kinds. Such a request runs as a chat (one prompt,
	 * n = 1, accumulated like a non-streamed chat: stream is false) and
	 * responses.c turns the accumulated choice into events. */
	struct api__resp *resp;
};

/* Chat and Responses requests share messages, templates and tools. */
static inline bool api__chatlike(const api_request *req)
{
	return req->kind == API_CHAT || req->kind == API_RESPONSES;
}

/* ---- schema.c: JSON Schema → engine grammar ------------------------------ */

typedef struct api__sc api__sc;
/* A compiler with an empty grammar builder; NULL when out of memory. */
api__sc *api__sc_create(void);
void api__sc_free(api__sc *c);
/* Compiles schema (inside document doc, which $ref pointers resolve
 * against) to a rule of the builder. Returns the rule, or -1 with e filled
 * (400, param, the keyword's JSON pointer in the message). Borrowed JSON. */
int32_t api__sc_schema(api__sc *c, json_t *doc, json_t *schema, const char *param, api_error *e);
/* Any JSON object (response_format json_object). */
int32_t api__sc_any_object(api__sc *c);
/* The bounded-whitespace rule, and the builder, to assemble other forms
 * (tool calls) around compiled schemas. */
int32_t api__sc_ws(api__sc *c);
mllm_gbuild *api__sc_builder(api__sc *c);
/* Freezes "ws value" into *out (one reference). 0 or the HTTP status. */
int api__sc_finish(api__sc *c, int32_t value, const char *param, mllm_grammar **out, api_error *e);

/* ---- structured.c --------------------------------------------------------- */

enum { API__RF_NONE = 0, API__RF_JSON_OBJECT, API__RF_JSON_SCHEMA };
/* Reads response_format (shape only). 0 or the status with e filled. */
int api__parse_structured(api_request *req, json_t *root, api_error *e);
/* Compiles what parse kept into req->grammar / req->sp.grammar. */
int api__prepare_structured(api_request *req, api_error *e);
void api__structured_free(api_request *req);

/* ---- tools.c ------------------------------------------------------------------ */

enum { API__TC_NONE = 0, API__TC_AUTO, API__TC_REQUIRED, API__TC_NAMED };
/* Tool-call syntaxes a chat template may use (api__tool_syntax). NONE is
 * the daemon's own {"name", "arguments"} object, for forced calls only. */
enum { API__TS_NONE = 0, API__TS_HERMES, API__TS_LLAMA3 };
/* The syntax t's Jinja source shows: HERMES when it mentions <tool_call>
 * (Qwen 2.5/3, Hermes), LLAMA3 when it is a Llama-3 template that asks
 * for {"name", "parameters"} or mentions <|python_tag|>; else NONE (also
 * for presets and t NULL). A cheap text scan, no rendering. */
int api__tool_syntax(const api_chat_template *t);
/* "hermes", "llama3_json" or "plain_text": what tool_choice auto does. */
const char *api__tool_syntax_name(int syntax);
/* Whether the syntax writes several calls in one answer. */
bool api__tool_syntax_parallel(int syntax);
/* tools, tool_choice, parallel_tool_calls (chat; after response_format). */
int api__parse_tools(api_request *req, json_t *root, api_error *e);
/* Chat: each tool message names (tool_call_id) a call of the assistant
 * message before it (other tool messages between), and each call of an
 * assistant message is answered by the tool messages right after it, as
 * OpenAI requires. 400 naming the message or the call otherwise. */
int api__check_tool_links(const json_t *msgs, api_error *e);
/* A "tool" message or an assistant message with tool_calls: fills *out
 * (rendered text) and returns 1; 0 when m is neither; else the status. */
int api__tool_message(json_t *m, size_t i, api__message *out, api_error *e);
/* tool_choice required / named: generation is a call. */
bool api__tool_forced(const api_request *req);
/* render.c: entries [from, to) of choice c's logprobs in the chat shape's
 * "content" list ({token, logprob, bytes, top_logprobs}), as the Responses
 * API's output_text.logprobs. */
json_t *api__logprob_entries(const api_request *req, const api__choice *c, size_t from, size_t to);
/* For a stream that shows c's text as it grows: the end of the entries,
 * from `from` on, whose bytes the text already holds (*bytes: the bytes
 * of the entries before `from`, advanced); `from` when the entries do not
 * follow the text (reasoning split, tool calls). Drops the first entry's
 * leading space where the text has none, as the final list does (once:
 * *fixed says it was done). */
size_t api__logprob_release(const api_request *req, api__choice *c, size_t from, size_t *bytes,
                            bool *fixed);
/* Whether c is an array of {"type": "text", "text": string} parts. */
bool api__text_parts(const json_t *c);
/* Appends content to b: a string, or text parts (api__text_parts) joined
 * with "\n". */
int api__append_content(mllm_buf *b, const json_t *content);
/* Prepare: the tools preamble and the call grammar (forced choice only). */
int api__prepare_tools(api_request *req, api_error *e);
/* Streaming (req->tool_parse): cuts the choice's accumulated text into
 * content deltas (before an opener; a possible partial opener is held
 * back unless final), a delta with the call's index, id and name, and
 * argument fragments. */
int api__tool_stream(api_request *req, int32_t idx, mllm_buf *out, bool final);
/* Non-streamed: when the output holds calls and the last is complete,
 * sets message.content (the text before the first call, or null) and
 * message.tool_calls, and returns true; false otherwise (text stays). */
bool api__tool_message_json(const api_request *req, int32_t idx, json_t *msg);
/* The parse state a choice's output starts in (inside a call when a
 * continued prefill ended with the opener). */
void api__tool_choice_init(const api_request *req, api__tparse *tp);
/* Streamed: whether the choice's output so far ends on complete calls
 * (finish_reason "tool_calls"). */
bool api__tool_calls_done(const api_request *req, int32_t idx);
/* A forced answer of one call that is complete in choice idx's text:
 * nothing but blanks could have followed, so a max_tokens cut there lost
 * nothing (the choice counts as finished on its own). */
bool api__tool_calls_final(const api_request *req, int32_t idx);
void api__tools_free(api_request *req);
/* render.c: appends one SSE chunk with the request's envelope. */
int api__emit_chunk(const api_request *req, json_t *choice, mllm_buf *out);

/* request.c: reads root["messages"] into req->msgs / n_msgs (shared with
 * POST /tokenize). Returns 0 or the HTTP status with e filled. */
int api__parse_messages(api_request *req, json_t *root, const api_limits *lim, api_error *e);

/* request.c: its field readers (0, or the status with e filled). */
int api__get_int(json_t *root, const char *key, long long lo, long long hi, long long *out,
                 bool *present, api_error *e);
int api__get_real(json_t *root, const char *key, double lo, double hi, float *out, api_error *e);
/* top_p in [0, 1]; 0 (the one best token) becomes the smallest positive
 * float the sampler takes. */
int api__get_top_p(json_t *root, float *out, api_error *e);
int api__get_bool(json_t *root, const char *key, bool *out, api_error *e);

/* ---- responses.c --------------------------------------------------------------- */

/* Parses a POST /v1/responses body (fields, input items, tools, text). */
int api__parse_responses(api_request *req, json_t *root, const api_limits *lim, api_error *e);
/* A Responses request's error from the chat code it shares, renamed to the
 * Responses fields: tools[i].function.X -> tools[i].X, response_format ->
 * text.format, messages[k] -> instructions / input[i] /
 * previous_response_id. */
void api__resp_fix_error(const api_request *req, api_error *e);
/* Prepare, before the template: the chat messages (instructions, the
 * previous response's conversation, the input) into req->msgs. */
int api__resp_messages(api_request *req, api_error *e);
/* truncation "auto": drops the oldest message that is not the
 * instructions; false when none is left to drop. */
bool api__resp_truncate(api_request *req);
bool api__resp_truncation_auto(const api_request *req);
/* Prepare: tokenizes the rendered prompt text[0..len) into p, reusing the
 * previous response's ids when its text is a prefix of this one. */
int api__resp_tokenize(api_request *req, const mllm_tokenizer *tok, const char *text, size_t len,
                       bool bos, bool parse_special, api__prompt *p, api_error *e);
/* Whether the client asked for the event stream. */
bool api__resp_streaming(const api_request *req);
int api__resp_begin(api_request *req, mllm_buf *out);
/* After every event fed to choice 0 (ev NULL: errors). */
int api__resp_event(api_request *req, const mllm_event *ev, mllm_buf *out);
int api__resp_end(api_request *req, mllm_buf *out, int *status);
int api__resp_abort(api_request *req, const api_error *e, mllm_buf *out);
void api__resp_free(api_request *req);

#endif
