/*
 * config.h — the daemon's configuration: one table of keys drives the config
 * file parser, environment variables (MLLMD_*), command-line overrides,
 * validation and --dump-config (STYLE D6).
 *
 * Ownership: a cfg_t owns every string and the model array it holds; fill it
 * with cfg_init(), release it with cfg_free() (accepts a partly filled one).
 * Once the daemon starts, the cfg_t is passed down as a const pointer and
 * never changes. Not thread-safe while being filled (main thread only).
 */
#ifndef SRV_CONFIG_H
#define SRV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

typedef enum {
	CFG_INT,   /* decimal integer, int64_t field */
	CFG_SIZE,  /* integer with optional k/m/g suffix (binary), int64_t */
	CFG_BOOL,  /* true/false, yes/no, on/off, 1/0; bool field */
	CFG_STR,   /* free text; char * field (owned) */
	CFG_LEVEL, /* log level name: error/warn/info/debug; int64_t field */
} cfg_type;

typedef struct {
	const char *name; /* key as written in the file */
	cfg_type type;
	int64_t min, max; /* bounds for INT/SIZE (inclusive) */
	const char *def;  /* default, as text: parsed by the same code */
	size_t offset;    /* field offset in cfg_t or cfg_model */
	const char *help; /* one line for --dump-config and the docs */
} cfg_entry;

/* One resident model: a [model.<id>] section or --model ID=PATH. */
typedef struct {
	char *id;              /* [A-Za-z0-9._:-], 1..64 bytes */
	char *path;            /* snapshot directory or .gguf file */
	int64_t n_ctx;         /* 0 = the model's trained context */
	int64_t kv_bytes;      /* KV pool budget in bytes */
	int64_t kv_blocks;     /* 0 = derive from kv_bytes */
	int64_t kv_block_size; /* tokens per KV block */
	bool kv_f16;           /* store K/V as f16 */
	bool kv_q8;            /* store K/V as int8 with scales (overrides kv_f16) */
	bool act8;             /* Q4_0 / Q8_0: 8-bit activations where faster */
	int64_t threads;       /* 0 = physical cores */
	int64_t max_batch_tokens;
	int64_t max_running;
	int64_t max_queue;
	int64_t session_ttl_ms;
	bool prefix_cache;
	char *chat_template; /* auto, a Jinja file, or preset: plain, chatml, raw */
	char *chat_system;   /* optional overrides (NULL = the preset's) */
	char *chat_user;
	char *chat_assistant;
	char *chat_generation;
	char *chat_stop;
	char *chat_bos;
	char *reasoning_format; /* auto, none, split */
	bool chat_special_in_messages;
	unsigned declared; /* CFG_FROM_* bits: the sources that declared this id */
} cfg_model;

/* Where a model was declared: a [model.<id>] section, MLLMD_MODELS, or
 * --model. One source naming an id twice is a mistake (refused); a later
 * source re-pointing an earlier one's id is the documented precedence. */
enum { CFG_FROM_FILE = 1, CFG_FROM_ENV = 2, CFG_FROM_FLAG = 4 };

typedef struct {
	char *host;
	int64_t port;
	char *api_key;      /* comma-separated keys; empty = no auth */
	char *cors_origins; /* comma-separated origins, "*"; empty = off */
	int64_t max_body_bytes;
	int64_t max_connections;
	int64_t connection_timeout_s;
	int64_t header_timeout_ms;          /* headers complete within (slowloris) */
	int64_t body_timeout_ms;            /* body complete within, after the headers */
	int64_t max_connections_per_client; /* per client address */
	int64_t prep_threads;               /* parse/tokenize threads off the loop */
	int64_t max_prompt_tokens;
	int64_t max_tokens_limit;
	int64_t max_n;
	int64_t retry_after_s;
	int64_t drain_delay_ms; /* lame duck: readiness 503, still serving */
	int64_t shutdown_timeout_ms;
	int64_t log_level; /* MLLM_LOG_* */
	char *log_file;    /* "-" = stderr */
	char *log_format;  /* "text" or "json" */
	bool metrics_auth; /* /metrics needs the API key */
	bool log_requests;
	bool sd_notify;
	char *model_default; /* the model used when a request names none */
	/* The /v1/responses store (resp_store.c): entries, bytes, TTL. */
	int64_t responses_store_max;
	int64_t responses_store_bytes;
	int64_t responses_store_ttl_s;

	cfg_model *models; /* [n_models], owned */
	size_t n_models;
} cfg_t;

/* The tables (for tests and docs). n receives the entry count. */
const cfg_entry *cfg_server_table(size_t *n);
const cfg_entry *cfg_model_table(size_t *n);

/* Fills every server key with its default; no models. Never fails. */
void cfg_init(cfg_t *c);
void cfg_free(cfg_t *c);

/* Parses `key = value` lines with optional [server] and [model.<id>]
 * sections; '#' or ';' starts a comment line; values may be double-quoted.
 * Errors name the file (or `name`) and the line. */
int cfg_load_file(cfg_t *c, const char *path, char *err, size_t errlen) MLLM_WUR;
int cfg_load_string(cfg_t *c, const char *text, const char *name, char *err,
                    size_t errlen) MLLM_WUR;

/* Sets one key: "port", or "model.<id>.<key>" (the model is created when
 * missing). The value goes through the table's parser and bounds. */
int cfg_set(cfg_t *c, const char *key, const char *value, char *err, size_t errlen) MLLM_WUR;
/* cfg_set, with errors naming `where` (the flag, e.g. "--port"). */
int cfg_set_as(cfg_t *c, const char *key, const char *value, const char *where, char *err,
               size_t errlen) MLLM_WUR;

/* "--model ID=PATH": adds (or re-points, when an earlier source declared
 * the id) a model with default settings; an id given twice by --model is
 * refused. */
int cfg_add_model_arg(cfg_t *c, const char *arg, char *err, size_t errlen) MLLM_WUR;

/* Applies environment variables: MLLMD_<KEY> for every server key (e.g.
 * MLLMD_PORT, MLLMD_API_KEY) and MLLMD_MODELS="id=path,id2=path2".
 * getenv_fn is getenv in the daemon (a test may pass its own). */
int cfg_apply_env(cfg_t *c, const char *(*getenv_fn)(const char *name), char *err,
                  size_t errlen) MLLM_WUR;

/* Environment names: true when name[0..name_len) starts with MLLMD_ but is
 * none of the variables cfg_apply_env() reads (a misspelling would be
 * ignored silently otherwise). hint receives the nearest known name when
 * one is close (edit distance <= 3), else "". */
bool cfg_env_unknown(const char *name, size_t name_len, char *hint, size_t hintlen);

/* Cross-key checks: at least one model, every model has a path, the
 * default model exists. */
int cfg_validate(const cfg_t *c, char *err, size_t errlen) MLLM_WUR;

/* Writes the effective configuration in the file format (re-parseable);
 * API keys are shown as "<redacted>" unless show_secrets. */
int cfg_dump(const cfg_t *c, bool show_secrets, mllm_buf *out) MLLM_WUR;

/* The model with this id, or NULL. */
const cfg_model *cfg_model_find(const cfg_t *c, const char *id);

#endif
