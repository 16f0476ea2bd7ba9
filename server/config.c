/*
 * config.c — the configuration table and everything it drives (STYLE D6):
 * the `key = value` file parser with [model.<id>] sections, MLLMD_*
 * environment variables, --model/--set overrides, validation and the
 * --dump-config writer. Every value, whatever its source, goes through one
 * parser per type and the same bounds, so a default that would not parse
 * from the file cannot exist.
 */
#include "config.h"

#include "api.h"  /* API_*_DEFAULT */
#include "mllm.h" /* MLLM_*_DEFAULT */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define SRV_OFF(f) offsetof(cfg_t, f)
#define MOD_OFF(f) offsetof(cfg_model, f)

/* Defaults that other layers also apply are written once, as macros in
 * engine/scheduler.h and api/api.h, and stringified into the table here. */
#define CFG_STR_(x) #x
#define CFG_NUM(x)  CFG_STR_(x)

#define KIB ((int64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

static const cfg_entry server_table[] = {
    {"host", CFG_STR, 0, 0, "127.0.0.1", SRV_OFF(host),
     "address to listen on (IPv4 or IPv6 literal)"},
    {"port", CFG_INT, 0, 65535, "8080", SRV_OFF(port), "TCP port; 0 picks a free one (logged)"},
    {"api_key", CFG_STR, 0, 0, "", SRV_OFF(api_key),
     "comma-separated bearer keys; empty disables auth (/health is always open)"},
    {"cors_origins", CFG_STR, 0, 0, "", SRV_OFF(cors_origins),
     "comma-separated allowed origins or *; empty disables CORS"},
    {"max_body_bytes", CFG_SIZE, 1 * KIB, 64 * MIB, CFG_NUM(API_MAX_BODY_BYTES_DEFAULT),
     SRV_OFF(max_body_bytes), "largest request body (413 beyond)"},
    {"max_connections", CFG_INT, 1, 100000, "256", SRV_OFF(max_connections),
     "concurrent connections; further ones are accepted and closed at once"},
    {"connection_timeout_s", CFG_INT, 1, 3600, "30", SRV_OFF(connection_timeout_s),
     "a connection idle this long is closed (see also header/body_timeout_ms)"},
    {"header_timeout_ms", CFG_INT, 100, 600000, "10000", SRV_OFF(header_timeout_ms),
     "a request's headers must be complete this long after accept (or the previous response)"},
    {"body_timeout_ms", CFG_INT, 100, 3600000, "30000", SRV_OFF(body_timeout_ms),
     "a request's body must be complete this long after its headers"},
    {"max_connections_per_client", CFG_INT, 1, 100000, "128", SRV_OFF(max_connections_per_client),
     "concurrent connections from one client address"},
    {"prep_threads", CFG_INT, 1, 64, "1", SRV_OFF(prep_threads),
     "threads that parse and tokenize requests off the event loop"},
    {"max_prompt_tokens", CFG_INT, 1, 1048576, CFG_NUM(API_MAX_PROMPT_TOKENS_DEFAULT),
     SRV_OFF(max_prompt_tokens), "prompt tokens per request (also bounded by the model's n_ctx)"},
    {"max_tokens_limit", CFG_INT, 1, 1048576, CFG_NUM(API_MAX_TOKENS_DEFAULT),
     SRV_OFF(max_tokens_limit), "largest max_tokens a request may ask for"},
    {"max_n", CFG_INT, 1, 128, CFG_NUM(API_MAX_N_DEFAULT), SRV_OFF(max_n),
     "largest n (choices) per request"},
    {"retry_after_s", CFG_INT, 0, 3600, "1", SRV_OFF(retry_after_s),
     "Retry-After sent with 503 (overloaded, loading, shutting down)"},
    {"drain_delay_ms", CFG_INT, 0, 600000, "2000", SRV_OFF(drain_delay_ms),
     "on SIGTERM, readiness answers 503 this long while requests are still served"},
    {"shutdown_timeout_ms", CFG_INT, 0, 600000, "5000", SRV_OFF(shutdown_timeout_ms),
     "after the drain delay, in-flight requests get this long before they are cancelled"},
    {"log_level", CFG_LEVEL, 0, 3, "info", SRV_OFF(log_level), "error, warn, info or debug"},
    {"log_file", CFG_STR, 0, 0, "-", SRV_OFF(log_file),
     "log destination; - is stderr (journald); reopened on SIGHUP"},
    {"log_requests", CFG_BOOL, 0, 1, "true", SRV_OFF(log_requests),
     "one info line per request (id, model, status, tokens, timings)"},
    {"log_format", CFG_STR, 0, 0, "text", SRV_OFF(log_format),
     "text (readable lines) or json (one JSON object per line)"},
    {"metrics_auth", CFG_BOOL, 0, 1, "false", SRV_OFF(metrics_auth),
     "require the API key for /metrics (when api_key is set)"},
    {"sd_notify", CFG_BOOL, 0, 1, "true", SRV_OFF(sd_notify),
     "send READY=1 to $NOTIFY_SOCKET once listening and loaded"},
    {"model_default", CFG_STR, 0, 0, "", SRV_OFF(model_default),
     "model for requests that name none; empty = the first model"},
    {"responses_store_max", CFG_INT, 0, 1000000, "10000", SRV_OFF(responses_store_max),
     "stored /v1/responses responses kept at most (LRU eviction); 0 stores none"},
    {"responses_store_bytes", CFG_SIZE, 0, 64 * GIB, "256m", SRV_OFF(responses_store_bytes),
     "memory the stored responses may hold (LRU eviction beyond)"},
    {"responses_store_ttl_s", CFG_INT, 1, 30 * 86400, "3600", SRV_OFF(responses_store_ttl_s),
     "a stored response is forgotten this long after it was made"},
};

static const cfg_entry model_table[] = {
    {"path", CFG_STR, 0, 0, "", MOD_OFF(path),
     "snapshot directory (config.json + weights) or .gguf file (required)"},
    {"n_ctx", CFG_INT, 0, 1048576, "0", MOD_OFF(n_ctx),
     "context per sequence (prompt + completion); 0 = the model's"},
    {"kv_bytes", CFG_SIZE, 1 * MIB, 1024 * GIB, "256m", MOD_OFF(kv_bytes), "KV cache pool budget"},
    {"kv_blocks", CFG_INT, 0, (int64_t)1 << 30, "0", MOD_OFF(kv_blocks),
     "KV pool size in blocks; 0 = derive from kv_bytes"},
    {"kv_block_size", CFG_INT, 1, MLLM_KV_BLOCK_SIZE_MAX, CFG_NUM(MLLM_KV_BLOCK_SIZE_DEFAULT),
     MOD_OFF(kv_block_size), "tokens per KV block"},
    {"kv_f16", CFG_BOOL, 0, 1, "true", MOD_OFF(kv_f16),
     "store K/V as f16 (false: f32, twice the memory)"},
    {"kv_q8", CFG_BOOL, 0, 1, "false", MOD_OFF(kv_q8),
     "store K/V as int8 with a scale per token and KV head (half of f16's memory; "
     "overrides kv_f16)"},
    {"act8", CFG_BOOL, 0, 1, "true", MOD_OFF(act8),
     "Q4_0/Q8_0 weights: 8-bit activations where the CPU has a byte kernel (AVX2 or "
     "AVX-512 VNNI); false: 16 bits"},
    {"threads", CFG_INT, 0, 1024, "0", MOD_OFF(threads),
     "worker threads for this model; 0 = physical cores within cpuset and CPU quota"},
    {"max_batch_tokens", CFG_INT, 1, 65536, CFG_NUM(MLLM_MAX_BATCH_TOKENS_DEFAULT),
     MOD_OFF(max_batch_tokens), "tokens per engine step (prefill chunking)"},
    {"max_running", CFG_INT, 1, 4096, CFG_NUM(MLLM_MAX_RUNNING_DEFAULT), MOD_OFF(max_running),
     "sequences decoding at once"},
    {"max_queue", CFG_INT, 1, 100000, CFG_NUM(MLLM_MAX_QUEUE_DEFAULT), MOD_OFF(max_queue),
     "waiting requests before 503 with Retry-After"},
    {"session_ttl_ms", CFG_INT, 0, 86400000, "300000", MOD_OFF(session_ttl_ms),
     "how long an X-Session-Id prefix stays pinned"},
    {"prefix_cache", CFG_BOOL, 0, 1, "true", MOD_OFF(prefix_cache),
     "reuse KV blocks of shared prompt prefixes"},
    {"chat_template", CFG_STR, 0, 0, "auto", MOD_OFF(chat_template),
     "auto (the model's own Jinja template, else plain), a template file, plain, chatml or raw"},
    {"chat_system", CFG_STR, 0, 0, NULL, MOD_OFF(chat_system),
     "override: system message text, {content} is the message (\\n escapes)"},
    {"chat_user", CFG_STR, 0, 0, NULL, MOD_OFF(chat_user),
     "override: user message text with {content}"},
    {"chat_assistant", CFG_STR, 0, 0, NULL, MOD_OFF(chat_assistant),
     "override: assistant message text with {content}"},
    {"chat_generation", CFG_STR, 0, 0, NULL, MOD_OFF(chat_generation),
     "override: text after the last message that the model continues"},
    {"chat_stop", CFG_STR, 0, 0, NULL, MOD_OFF(chat_stop),
     "override: implicit stop strings, up to 2 separated by ||"},
    {"chat_bos", CFG_STR, 0, 0, NULL, MOD_OFF(chat_bos),
     "override: auto, true or false (BOS before chat prompts)"},
    {"reasoning_format", CFG_STR, 0, 0, "auto", MOD_OFF(reasoning_format),
     "auto (split when the template shows <think>), none or split"},
    {"chat_special_in_messages", CFG_BOOL, 0, 1, "false", MOD_OFF(chat_special_in_messages),
     "special-token text in chat messages: false = 400, true = parsed as the token"},
};

#define N_SERVER (sizeof server_table / sizeof server_table[0])
#define N_MODEL  (sizeof model_table / sizeof model_table[0])

const cfg_entry *cfg_server_table(size_t *n)
{
	*n = N_SERVER;
	return server_table;
}

const cfg_entry *cfg_model_table(size_t *n)
{
	*n = N_MODEL;
	return model_table;
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* ---- Value parsing ----------------------------------------------------- */

static int parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || errno == ERANGE)
		return -1;
	*out = (int64_t)v;
	return 0;
}

static int parse_size(const char *s, int64_t *out)
{
	char *end;
	long long v;
	int64_t mul = 1;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || errno == ERANGE || v < 0)
		return -1;
	switch (tolower((unsigned char)*end)) {
	case '\0':
		break;
	case 'k':
		mul = KIB;
		end++;
		break;
	case 'm':
		mul = MIB;
		end++;
		break;
	case 'g':
		mul = GIB;
		end++;
		break;
	case 'b':
		break;
	default:
		return -1;
	}
	/* Accept "64m", "64mb", "64MiB", "100b". */
	if (mul != 1 && tolower((unsigned char)*end) == 'i')
		end++;
	if (tolower((unsigned char)*end) == 'b')
		end++;
	if (*end != '\0')
		return -1;
	if (__builtin_mul_overflow((int64_t)v, mul, out))
		return -1;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* Stores `value` into the field `e` describes inside `base`. `where` names
 * the source for the message ("file.conf:12", "MLLMD_PORT", "--set"). */
static int set_entry(void *base, const cfg_entry *e, const char *value, const char *where,
                     char *err, size_t errlen)
{
	char *field = (char *)base + e->offset;
	int64_t v = 0;
	bool b;

	switch (e->type) {
	case CFG_STR:
		/* Control characters have no use in any value and could not be
		 * written back by --dump-config (a line per key). */
		for (const char *q = value; q && *q; q++)
			if ((unsigned char)*q < 0x20 || *q == 0x7f)
				return mllm__seterr(err, errlen, MLLM_EINVAL,
				                    "%s: %s must not contain control characters "
				                    "(a newline, a tab ...)",
				                    where, e->name);
		/* A NULL default leaves the key unset (an optional override). */
		free(*(char **)field);
		*(char **)field = value ? xstrdup(value) : NULL;
		return 0;
	case CFG_BOOL:
		if (parse_bool(value, &b) < 0)
			return mllm__seterr(
			    err, errlen, MLLM_EINVAL,
			    "%s: %s must be true or false (or yes/no, on/off, 1/0), not '%s'",
			    where, e->name, value);
		*(bool *)field = b;
		return 0;
	case CFG_LEVEL:
		for (int i = 0; i < 4; i++) {
			if (strcasecmp(value, level_names[i]) == 0) {
				*(int64_t *)field = i;
				return 0;
			}
		}
		return mllm__seterr(err, errlen, MLLM_EINVAL,
		                    "%s: %s must be error, warn, info or debug, not '%s'", where,
		                    e->name, value);
	case CFG_INT:
		if (parse_int(value, &v) < 0)
			return mllm__seterr(err, errlen, MLLM_EINVAL,
			                    "%s: %s must be an integer, not '%s'", where, e->name,
			                    value);
		break;
	case CFG_SIZE:
		if (parse_size(value, &v) < 0)
			return mllm__seterr(err, errlen, MLLM_EINVAL,
			                    "%s: %s must be a size (e.g. 512k, 64m, 2g), not '%s'",
			                    where, e->name, value);
		break;
	}
	if (v < e->min || v > e->max)
		return mllm__seterr(err, errlen, MLLM_ERANGE,
		                    "%s: %s = %s is out of range [%lld, %lld]", where, e->name,
		                    value, (long long)e->min, (long long)e->max);
	*(int64_t *)field = v;
	return 0;
}

static const cfg_entry *find_entry(const cfg_entry *t, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].name, name) == 0)
			return &t[i];
	return NULL;
}

static void fill_defaults(void *base, const cfg_entry *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = set_entry(base, &t[i], t[i].def, "default", NULL, 0);
		MLLM_ASSERT(rc == 0); /* a default outside its own bounds */
	}
}

static void free_strings(void *base, const cfg_entry *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (t[i].type == CFG_STR) {
			char **p = (char **)((char *)base + t[i].offset);
			free(*p);
			*p = NULL;
		}
	}
}

/* ---- Models ------------------------------------------------------------ */

static bool valid_model_id(const char *id, size_t len)
{
	if (len == 0 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)id[i];
		if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-' && ch != ':')
			return false;
	}
	return true;
}

static cfg_model *model_get(cfg_t *c, const char *id, size_t len, const char *where, char *err,
                            size_t errlen)
{
	cfg_model *m;

	if (!valid_model_id(id, len)) {
		mllm__seterr(err, errlen, MLLM_EINVAL,
		             "%s: model id '%.*s' must be 1-64 characters of A-Z a-z 0-9 . _ - :",
		             where, (int)(len > 80 ? 80 : len), id);
		return NULL;
	}
	for (size_t i = 0; i < c->n_models; i++)
		if (strlen(c->models[i].id) == len && memcmp(c->models[i].id, id, len) == 0)
			return &c->models[i];
	c->models = xrealloc(c->models, (c->n_models + 1) * sizeof *c->models);
	m = &c->models[c->n_models++];
	memset(m, 0, sizeof *m);
	fill_defaults(m, model_table, N_MODEL);
	m->id = xstrndup(id, len);
	return m;
}

/* Marks model m declared by `from`; a second declaration by the same
 * source is refused (two [model.x] sections, or --model x=... twice,
 * would otherwise merge or re-point silently). */
static int model_declare(cfg_model *m, unsigned from, const char *where, char *err, size_t errlen)
{
	if (m->declared & from)
		return mllm__seterr(
		    err, errlen, MLLM_EINVAL, "%s: model id '%s' is declared twice%s", where, m->id,
		    from == CFG_FROM_FILE ? " (one [model.<id>] section each)" : "");
	m->declared |= from;
	return 0;
}

const cfg_model *cfg_model_find(const cfg_t *c, const char *id)
{
	for (size_t i = 0; i < c->n_models; i++)
		if (strcmp(c->models[i].id, id) == 0)
			return &c->models[i];
	return NULL;
}

/* ---- Public API -------------------------------------------------------- */

void cfg_init(cfg_t *c)
{
	memset(c, 0, sizeof *c);
	fill_defaults(c, server_table, N_SERVER);
}

void cfg_free(cfg_t *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_models; i++) {
		free_strings(&c->models[i], model_table, N_MODEL);
		free(c->models[i].id);
	}
	free(c->models);
	c->models = NULL;
	c->n_models = 0;
	free_strings(c, server_table, N_SERVER);
}

/* "key" (server) or "model.<id>.<key>". */
static int set_key(cfg_t *c, const char *key, const char *value, const char *where, char *err,
                   size_t errlen)
{
	const cfg_entry *e;

	if (strncmp(key, "model.", 6) == 0) {
		const char *id = key + 6;
		const char *dot = strrchr(id, '.');
		cfg_model *m;

		if (!dot)
			return mllm__seterr(err, errlen, MLLM_EINVAL,
			                    "%s: '%s' should be model.<id>.<key>", where, key);
		e = find_entry(model_table, N_MODEL, dot + 1);
		if (!e)
			return mllm__seterr(err, errlen, MLLM_EINVAL, "%s: unknown model key '%s'",
			                    where, dot + 1);
		m = model_get(c, id, (size_t)(dot - id), where, err, errlen);
		if (!m)
			return MLLM_EINVAL;
		return set_entry(m, e, value, where, err, errlen);
	}
	e = find_entry(server_table, N_SERVER, key);
	if (!e && find_entry(model_table, N_MODEL, key))
		return mllm__seterr(err, errlen, MLLM_EINVAL,
		                    "%s: '%s' is a per-model key: set it under [model.<id>] (or "
		                    "--set model.<id>.%s=...)",
		                    where, key, key);
	if (!e)
		return mllm__seterr(err, errlen, MLLM_EINVAL, "%s: unknown key '%s'", where, key);
	return set_entry(c, e, value, where, err, errlen);
}

int cfg_set(cfg_t *c, const char *key, const char *value, char *err, size_t errlen)
{
	return set_key(c, key, value, "--set", err, errlen);
}

int cfg_set_as(cfg_t *c, const char *key, const char *value, const char *where, char *err,
               size_t errlen)
{
	return set_key(c, key, value, where, err, errlen);
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* Keys one section of a file has set, with their lines: a second setting
 * of a key in one section is refused (the last would win silently). */
typedef struct {
	char **keys;
	int *lines;
	size_t n;
} seen_keys;

static void seen_clear(seen_keys *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->keys[i]);
	free(k->keys);
	free(k->lines);
	memset(k, 0, sizeof *k);
}

/* The line that already set key, or 0 (and key is noted at lineno). */
static int seen_add(seen_keys *k, const char *key, int lineno)
{
	for (size_t i = 0; i < k->n; i++)
		if (strcmp(k->keys[i], key) == 0)
			return k->lines[i];
	k->keys = xrealloc(k->keys, (k->n + 1) * sizeof *k->keys);
	k->lines = xrealloc(k->lines, (k->n + 1) * sizeof *k->lines);
	k->keys[k->n] = xstrdup(key);
	k->lines[k->n++] = lineno;
	return 0;
}

int cfg_load_string(cfg_t *c, const char *text, const char *name, char *err, size_t errlen)
{
	char *copy = xstrdup(text);
	char *line, *next;
	char where[320];
	char section[80] = "";                      /* "" = server, else the model id */
	seen_keys srv_keys = {0}, model_keys = {0}; /* [server] may come back */
	int lineno = 0;
	int rc = 0;

	/* A UTF-8 byte order mark (some editors write one) is not text. */
	line = copy;
	if ((unsigned char)line[0] == 0xEF && (unsigned char)line[1] == 0xBB &&
	    (unsigned char)line[2] == 0xBF)
		memmove(line, line + 3, strlen(line + 3) + 1);
	for (line = copy; line; line = next) {
		char *eq, *key, *val;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		snprintf(where, sizeof where, "%s:%d", name, lineno);
		line = trim(line);
		if (*line == '\0' || *line == '#' || *line == ';')
			continue;
		if (*line == '[') {
			size_t len = strlen(line);
			if (line[len - 1] != ']') {
				rc = mllm__seterr(err, errlen, MLLM_EINVAL,
				                  "%s: section header lacks ']'", where);
				goto out;
			}
			line[len - 1] = '\0';
			line = trim(line + 1);
			seen_clear(&model_keys);
			if (strcmp(line, "server") == 0) {
				section[0] = '\0';
			} else if (strncmp(line, "model.", 6) == 0) {
				const char *id = line + 6;
				cfg_model *m = model_get(c, id, strlen(id), where, err, errlen);
				if (!m) {
					rc = MLLM_EINVAL;
					goto out;
				}
				rc = model_declare(m, CFG_FROM_FILE, where, err, errlen);
				if (rc < 0)
					goto out;
				snprintf(section, sizeof section, "%s", id);
			} else {
				rc = mllm__seterr(err, errlen, MLLM_EINVAL,
				                  "%s: unknown section [%s] (expected [server] or "
				                  "[model.<id>])",
				                  where, line);
				goto out;
			}
			continue;
		}
		eq = strchr(line, '=');
		if (!eq) {
			rc = mllm__seterr(err, errlen, MLLM_EINVAL, "%s: expected 'key = value'",
			                  where);
			goto out;
		}
		*eq = '\0';
		key = trim(line);
		val = trim(eq + 1);
		if (*val == '"') {
			size_t len = strlen(val);
			if (len < 2 || val[len - 1] != '"') {
				rc = mllm__seterr(err, errlen, MLLM_EINVAL,
				                  "%s: unterminated quoted value", where);
				goto out;
			}
			val[len - 1] = '\0';
			val++;
		}
		if (strchr(key, '.')) {
			rc = mllm__seterr(err, errlen, MLLM_EINVAL,
			                  "%s: key '%s' may not contain '.' (use a section)", where,
			                  key);
			goto out;
		}
		{
			int first = seen_add(section[0] ? &model_keys : &srv_keys, key, lineno);
			if (first) {
				rc = mllm__seterr(
				    err, errlen, MLLM_EINVAL,
				    "%s: '%s' is set twice in %s%s%s (first on line %d)", where,
				    key, section[0] ? "[model." : "[server]", section,
				    section[0] ? "]" : "", first);
				goto out;
			}
		}
		if (section[0]) {
			char full[256];
			snprintf(full, sizeof full, "model.%s.%s", section, key);
			rc = set_key(c, full, val, where, err, errlen);
		} else {
			rc = set_key(c, key, val, where, err, errlen);
		}
		if (rc < 0)
			goto out;
	}
out:
	seen_clear(&srv_keys);
	seen_clear(&model_keys);
	free(copy);
	return rc;
}

int cfg_load_file(cfg_t *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	mllm_buf b;
	char chunk[4096];
	size_t n;
	int rc;
	struct stat st;

	if (!f)
		return mllm__seterr(err, errlen, MLLM_EIO, "%s: cannot open: %s", path,
		                    strerror(errno));
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(f);
		return mllm__seterr(err, errlen, MLLM_EINVAL, "%s: is a directory, not a file",
		                    path);
	}
	mllm_buf_init(&b, 4 * MIB);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (mllm_buf_append(&b, chunk, n) < 0) {
			fclose(f);
			mllm_buf_free(&b);
			return mllm__seterr(err, errlen, MLLM_ERANGE, "%s: larger than 4 MiB",
			                    path);
		}
	}
	if (ferror(f)) {
		fclose(f);
		mllm_buf_free(&b);
		return mllm__seterr(err, errlen, MLLM_EIO, "%s: read error", path);
	}
	fclose(f);
	if (memchr(b.data ? b.data : "", '\0', b.len)) {
		mllm_buf_free(&b);
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: contains a NUL byte", path);
	}
	rc = cfg_load_string(c, b.data ? b.data : "", path, err, errlen);
	mllm_buf_free(&b);
	return rc;
}

static int add_model(cfg_t *c, const char *arg, unsigned from, char *err, size_t errlen)
{
	const char *eq = strchr(arg, '=');
	const char *where = from == CFG_FROM_ENV ? "MLLMD_MODELS" : "--model";
	cfg_model *m;

	if (!eq || eq[1] == '\0')
		return mllm__seterr(err, errlen, MLLM_EINVAL,
		                    "%s '%s': expected ID=PATH (e.g. demo=models/mobilellm-demo)",
		                    where, arg);
	m = model_get(c, arg, (size_t)(eq - arg), where, err, errlen);
	if (!m)
		return MLLM_EINVAL;
	if (model_declare(m, from, where, err, errlen) < 0)
		return MLLM_EINVAL;
	free(m->path);
	m->path = xstrdup(eq + 1);
	return 0;
}

int cfg_add_model_arg(cfg_t *c, const char *arg, char *err, size_t errlen)
{
	return add_model(c, arg, CFG_FROM_FLAG, err, errlen);
}

int cfg_apply_env(cfg_t *c, const char *(*getenv_fn)(const char *name), char *err, size_t errlen)
{
	char name[96];
	const char *v;
	int rc;

	for (size_t i = 0; i < N_SERVER; i++) {
		size_t k = 0;
		k += (size_t)snprintf(name, sizeof name, "MLLMD_");
		for (const char *p = server_table[i].name; *p && k + 1 < sizeof name; p++)
			name[k++] = (char)toupper((unsigned char)*p);
		name[k] = '\0';
		v = getenv_fn(name);
		if (!v)
			continue;
		rc = set_entry(c, &server_table[i], v, name, err, errlen);
		if (rc < 0)
			return rc;
	}
	v = getenv_fn("MLLMD_MODELS");
	if (v && *v) {
		char *copy = xstrdup(v);
		char *save = NULL;
		rc = 0;
		for (char *tok = strtok_r(copy, ",", &save); tok;
		     tok = strtok_r(NULL, ",", &save)) {
			tok = trim(tok);
			if (*tok == '\0')
				continue;
			rc = add_model(c, tok, CFG_FROM_ENV, err, errlen);
			if (rc < 0)
				break;
		}
		free(copy);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Edit distance between two short names (bounded: names are < 64 bytes). */
static size_t name_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[64];

	if (la >= 64 || lb >= 64)
		return (size_t)-1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (toupper((unsigned char)a[i - 1]) !=
			                      toupper((unsigned char)b[j - 1]));
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

bool cfg_env_unknown(const char *name, size_t name_len, char *hint, size_t hintlen)
{
	char env[96], given[96];
	size_t best = 4; /* suggest only near misses */

	if (hintlen)
		hint[0] = '\0';
	if (name_len < 6 || strncmp(name, "MLLMD_", 6) != 0 || name_len >= sizeof given)
		return name_len >= 6 && strncmp(name, "MLLMD_", 6) == 0;
	memcpy(given, name, name_len);
	given[name_len] = '\0';
	for (size_t i = 0; i <= N_SERVER; i++) {
		const char *key = i < N_SERVER ? server_table[i].name : "models";
		size_t k = (size_t)snprintf(env, sizeof env, "MLLMD_");
		for (const char *p = key; *p && k + 1 < sizeof env; p++)
			env[k++] = (char)toupper((unsigned char)*p);
		env[k] = '\0';
		if (strcmp(env, given) == 0)
			return false;
		size_t d = name_distance(given + 6, env + 6);
		if (d < best && hintlen) {
			best = d;
			snprintf(hint, hintlen, "%s", env);
		}
	}
	return true;
}

int cfg_validate(const cfg_t *c, char *err, size_t errlen)
{
	if (c->n_models == 0)
		return mllm__seterr(
		    err, errlen, MLLM_EINVAL,
		    "no model configured: pass --model ID=PATH, a --config file with a "
		    "[model.<id>] section, or MLLMD_MODELS");
	for (size_t i = 0; i < c->n_models; i++) {
		const cfg_model *m = &c->models[i];
		if (!m->path || !m->path[0])
			return mllm__seterr(err, errlen, MLLM_EINVAL,
			                    "model '%s' has no path (set model.%s.path)", m->id,
			                    m->id);
	}
	if (c->model_default && c->model_default[0] && !cfg_model_find(c, c->model_default))
		return mllm__seterr(err, errlen, MLLM_EINVAL,
		                    "model_default '%s' names no configured model",
		                    c->model_default);
	if (!c->host || !c->host[0])
		return mllm__seterr(err, errlen, MLLM_EINVAL, "host must not be empty");
	/* --dump-config writes a set key as this placeholder: served as is,
	 * it would be the (published) key and the real one would fail. The
	 * environment or --api-key may still replace it. */
	/* Blanks and commas only: no key at all, which would silently mean
	 * no authentication. */
	if (c->api_key && c->api_key[0] && !c->api_key[strspn(c->api_key, " \t,")])
		return mllm__seterr(err, errlen, MLLM_EINVAL,
		                    "api_key holds no key (only blanks and commas); leave it "
		                    "empty for no authentication");
	if (c->api_key && strstr(c->api_key, "<redacted>"))
		return mllm__seterr(err, errlen, MLLM_EINVAL,
		                    "api_key is --dump-config's placeholder \"<redacted>\": write "
		                    "the real key in the file, or pass --api-key / MLLMD_API_KEY");
	if (!c->log_format ||
	    (strcmp(c->log_format, "text") != 0 && strcmp(c->log_format, "json") != 0))
		return mllm__seterr(err, errlen, MLLM_EINVAL,
		                    "log_format must be text or json, not '%s'",
		                    c->log_format ? c->log_format : "");
	return 0;
}

/* Quotes a string value when it would not survive trimming otherwise. */
static int dump_value(mllm_buf *out, const void *base, const cfg_entry *e, bool redact)
{
	const char *field = (const char *)base + e->offset;

	switch (e->type) {
	case CFG_STR: {
		const char *s = *(char *const *)field;
		if (!s)
			s = "";
		if (redact && *s)
			s = "<redacted>";
		return mllm_buf_appendf(out, "\"%s\"", s);
	}
	case CFG_BOOL:
		return mllm_buf_appendf(out, "%s", *(const bool *)field ? "true" : "false");
	case CFG_LEVEL: {
		int64_t v = *(const int64_t *)field;
		return mllm_buf_appendf(out, "%s", v >= 0 && v < 4 ? level_names[v] : "info");
	}
	case CFG_INT:
	case CFG_SIZE:
		return mllm_buf_appendf(out, "%lld", (long long)*(const int64_t *)field);
	}
	return MLLM_EINVAL;
}

static int dump_table(mllm_buf *out, const void *base, const cfg_entry *t, size_t n,
                      bool show_secrets)
{
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		bool redact = !show_secrets && strcmp(t[i].name, "api_key") == 0;
		if (t[i].type == CFG_STR && !*(char *const *)((const char *)base + t[i].offset)) {
			rc = mllm_buf_appendf(out, "# %s (unset)\n# %s =\n", t[i].help, t[i].name);
			continue;
		}
		if (t[i].def && !t[i].def[0]) /* no default to name, e.g. a model's path */
			rc = mllm_buf_appendf(out, "# %s\n%s = ", t[i].help, t[i].name);
		else
			rc = mllm_buf_appendf(out, "# %s (default %s)\n%s = ", t[i].help,
			                      t[i].def ? t[i].def : "unset", t[i].name);
		if (rc == 0)
			rc = dump_value(out, base, &t[i], redact);
		if (rc == 0)
			rc = mllm_buf_append(out, "\n", 1);
	}
	return rc;
}

int cfg_dump(const cfg_t *c, bool show_secrets, mllm_buf *out)
{
	int rc = mllm_buf_appendf(out, "# mobilellmd effective configuration\n[server]\n");

	if (rc == 0)
		rc = dump_table(out, c, server_table, N_SERVER, show_secrets);
	for (size_t i = 0; i < c->n_models && rc == 0; i++) {
		rc = mllm_buf_appendf(out, "\n[model.%s]\n", c->models[i].id);
		if (rc == 0)
			rc = dump_table(out, &c->models[i], model_table, N_MODEL, true);
	}
	return rc;
}
