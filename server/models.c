/*
 * models.c — the resident models: chat templates built from the config on
 * the main thread (so a typo, or a template file that does not parse, fails
 * --check-config and serve before it listens), then a loader thread that
 * opens every checkpoint and starts its engine while the daemon already
 * listens (GET /health answers 503 until all are loaded). Loading is disk I/O
 * and weight conversion: it must never run on the loop thread (STYLE D1).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "srv.h"

/* Engine threads call this when any request has new events; it only wakes
 * the loop (uv_async_send is async-signal- and thread-safe, and coalesces). */
static void engine_notify(void *ud)
{
	srv *s = ud;
	uv_async_send(&s->wake);
}

static bool is_preset(const char *v)
{
	return !strcmp(v, "plain") || !strcmp(v, "chatml") || !strcmp(v, "raw");
}

#define TEMPLATE_FILE_MAX ((size_t)1 << 20)

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	mllm_buf b;
	char chunk[16384];
	size_t n;
	if (!f)
		return NULL;
	mllm_buf_init(&b, TEMPLATE_FILE_MAX);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (mllm_buf_append(&b, chunk, n) != 0)
			break;
	}
	if (ferror(f) || !feof(f) || !b.data) {
		fclose(f);
		mllm_buf_free(&b);
		return NULL;
	}
	fclose(f);
	return mllm_buf_take(&b, len);
}

/* A special token in tokenizer_config.json: a string, or an AddedToken
 * object {"content": ...}. */
static const char *token_text(json_t *v)
{
	if (json_is_object(v))
		v = json_object_get(v, "content");
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A snapshot's own template (chat_template = auto): tokenizer_config.json's
 * "chat_template" (a string, or a list of {name, template}: "default"),
 * else chat_template.jinja beside it. (A GGUF file's comes from its
 * metadata: load_template.) */
static char *own_template(const char *dir, json_t *tcfg, size_t *len, const char **source)
{
	json_t *v = json_object_get(tcfg, "chat_template");
	char path[4200];
	if (json_is_array(v)) {
		size_t i;
		json_t *e, *pick = NULL;
		json_array_foreach(v, i, e)
		{
			json_t *name = json_object_get(e, "name");
			if (json_is_string(name) && !strcmp(json_string_value(name), "default"))
				pick = json_object_get(e, "template");
		}
		v = pick;
	}
	if (json_is_string(v)) {
		*source = "tokenizer_config.json";
		*len = json_string_length(v);
		return xstrndup(json_string_value(v), *len);
	}
	snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
	*source = "chat_template.jinja";
	return read_file(path, len);
}

/* Runs on the loader thread (file reads, parsing): installs the model's
 * own or the configured Jinja template. A model's own template (auto) that
 * does not parse leaves the preset in place with a WARN: never a wrong
 * prompt silently. A configured file parsed at startup (srv__models_init),
 * so here it can only fail if it was changed since; it warns the same way. */
static void load_template(srv_model *m)
{
	const cfg_model *cm = m->cfg;
	const char *mode = cm->chat_template ? cm->chat_template : "auto";
	const mllm_tokenizer *tok = mllm_model_tokenizer(m->model);
	char dir[4096], path[4200], err[512], source[300];
	const char *src_name = NULL, *bos = NULL, *eos = NULL;
	char bos_piece[256] = "", eos_piece[256] = "";
	json_t *tcfg = NULL;
	char *src = NULL;
	size_t len = 0, n;
	struct stat st;
	if (is_preset(mode))
		return;
	/* The snapshot directory: the path itself, or the folder of a file. */
	snprintf(dir, sizeof dir, "%s", cm->path);
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		else
			snprintf(dir, sizeof dir, ".");
	}
	snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
	if (access(path, R_OK) == 0)
		tcfg = json_load_file(path, JSON_DECODE_INT_AS_REAL, NULL);
	if (!strcmp(mode, "auto")) {
		const char *gt = mllm_model_chat_template(m->model);
		if (stat(cm->path, &st) == 0 && S_ISDIR(st.st_mode)) {
			src = own_template(dir, tcfg, &len, &src_name);
		} else if (gt) {
			/* A GGUF file: the template in its metadata. */
			len = strlen(gt);
			src = xstrndup(gt, len);
			src_name = "gguf:tokenizer.chat_template";
		} else if (strlen(cm->path) < 5 ||
		           strcmp(cm->path + strlen(cm->path) - 5, ".gguf") != 0) {
			/* A file of a snapshot (model.safetensors, config.json):
			 * the snapshot's template, as for its directory. */
			src = own_template(dir, tcfg, &len, &src_name);
		}
		snprintf(source, sizeof source, "%s", src_name ? src_name : "");
	} else {
		src = read_file(mode, &len);
		snprintf(source, sizeof source, "file:%s", mode);
		if (!src)
			SRV_LOG(MLLM_LOG_WARN, "model %s: cannot read chat template %s; using %s",
			        cm->id, mode, api_chat_template_source(m->tmpl));
	}
	if (src) {
		/* bos_token / eos_token: the tokenizer config's, else the
		 * tokenizer's own BOS/EOS pieces. */
		bos = token_text(json_object_get(tcfg, "bos_token"));
		eos = token_text(json_object_get(tcfg, "eos_token"));
		if (!bos && mllm_tokenizer_bos(tok) >= 0) {
			n = mllm_tokenizer_token_bytes(tok, mllm_tokenizer_bos(tok), bos_piece,
			                               sizeof bos_piece - 1);
			bos_piece[n] = '\0';
			bos = bos_piece;
		}
		if (!eos && mllm_tokenizer_eos(tok) >= 0) {
			n = mllm_tokenizer_token_bytes(tok, mllm_tokenizer_eos(tok), eos_piece,
			                               sizeof eos_piece - 1);
			eos_piece[n] = '\0';
			eos = eos_piece;
		}
		if (api_chat_template_set_jinja(m->tmpl, src, len, bos, eos, source, err,
		                                sizeof err) != 0)
			SRV_LOG(MLLM_LOG_WARN,
			        "model %s: chat template (%s) not usable: %s; using %s instead",
			        cm->id, source, err, api_chat_template_source(m->tmpl));
	}
	SRV_LOG(MLLM_LOG_INFO, "model %s: chat template %s, reasoning %s", cm->id,
	        api_chat_template_source(m->tmpl), api_chat_template_reasoning(m->tmpl));
	free(src);
	json_decref(tcfg);
}

/* A chat_template file must be readable and parse (the loader thread
 * installs it again with the model's BOS/EOS text, which only the model
 * knows; parsing does not depend on them). At most TEMPLATE_FILE_MAX bytes,
 * read on the main thread before the daemon listens. */
static int check_template_file(const cfg_model *cm, char *err, size_t errlen)
{
	api_chat_template *t;
	char msg[384];
	char *src;
	size_t len = 0;
	struct stat st;
	int rc;

	src = read_file(cm->chat_template, &len);
	if (!src && stat(cm->chat_template, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
		return mllm__seterr(err, errlen, MLLM_EINVAL,
		                    "model %s: chat_template: '%s' is empty (auto, plain, chatml, "
		                    "raw or a template file)",
		                    cm->id, cm->chat_template);
	if (!src)
		return mllm__seterr(err, errlen, MLLM_EINVAL,
		                    "model %s: chat_template: cannot read '%s' (auto, plain, "
		                    "chatml, raw or a template file of at most %zu bytes)",
		                    cm->id, cm->chat_template, TEMPLATE_FILE_MAX);
	t = api_chat_template_create();
	rc = api_chat_template_set_jinja(t, src, len, NULL, NULL, NULL, msg, sizeof msg);
	api_chat_template_free(t);
	free(src);
	if (rc != 0)
		return mllm__seterr(err, errlen, MLLM_EINVAL, "model %s: chat_template '%s': %s",
		                    cm->id, cm->chat_template, msg);
	return 0;
}

int srv__models_init(srv *s, char *err, size_t errlen)
{
	const cfg_t *c = s->cfg;

	s->models = xcalloc(c->n_models, sizeof *s->models);
	s->n_models = c->n_models;
	for (size_t i = 0; i < c->n_models; i++) {
		srv_model *m = &s->models[i];
		const cfg_model *cm = &c->models[i];
		srv_model_hists_init(&m->hist);
		const char *preset = cm->chat_template;
		/* "auto" and a file name start from the default preset: the
		 * Jinja template replaces it at load, or it stays (fallback). */
		if (preset && !is_preset(preset))
			preset = NULL;
		const struct {
			const char *key, *val;
		} keys[] = {
		    {"preset", preset},
		    {"system", cm->chat_system},
		    {"user", cm->chat_user},
		    {"assistant", cm->chat_assistant},
		    {"generation", cm->chat_generation},
		    {"stop", cm->chat_stop},
		    {"bos", cm->chat_bos},
		    {"reasoning_format", cm->reasoning_format},
		    {"special_in_messages", cm->chat_special_in_messages ? "true" : "false"},
		};
		char msg[256];

		m->cfg = cm;
		m->s = s;
		atomic_init(&m->loaded, false);
		m->tmpl = api_chat_template_create();
		/* A template file that is not there, or does not parse, is
		 * the operator's mistake: refuse the config (--check-config
		 * says so, serve exits before listening) rather than serve
		 * every chat through a preset the model was not trained on. */
		if (cm->chat_template && !is_preset(cm->chat_template) &&
		    strcmp(cm->chat_template, "auto") != 0 &&
		    check_template_file(cm, err, errlen) < 0)
			return MLLM_EINVAL;
		for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
			if (!keys[k].val)
				continue;
			if (api_chat_template_set(m->tmpl, keys[k].key, keys[k].val, msg,
			                          sizeof msg) < 0)
				return mllm__seterr(err, errlen, MLLM_EINVAL, "model %s: %s",
				                    cm->id, msg);
		}
	}
	return 0;
}

static int load_one(srv *s, srv_model *m, char *err, size_t errlen)
{
	const cfg_model *cm = m->cfg;
	mllm_model_params mp = MLLM_MODEL_PARAMS_DEFAULT;
	mllm_engine_params ep;
	const mllm_hparams *hp;
	uint64_t t0 = mllm_now_ns();
	int rc;

	mp.n_threads = (int)cm->threads;
	mp.act16 = !cm->act8;
	rc = mllm_model_open(cm->path, &mp, &m->model, err, errlen);
	if (rc < 0)
		return rc;
	if (!mllm_model_tokenizer(m->model))
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: the checkpoint has no tokenizer; the server needs one",
		                    cm->path);
	hp = mllm_model_hparams(m->model);

	memset(&ep, 0, sizeof ep);
	ep.n_ctx = (int32_t)cm->n_ctx;
	ep.kv.block_size = (int32_t)cm->kv_block_size;
	ep.kv.n_blocks = cm->kv_blocks;
	ep.kv.max_bytes = (size_t)cm->kv_bytes;
	ep.kv.f16 = cm->kv_f16;
	ep.kv.q8 = cm->kv_q8;
	ep.n_threads = (int)cm->threads;
	ep.max_batch_tokens = (int32_t)cm->max_batch_tokens;
	ep.max_running = (int32_t)cm->max_running;
	ep.max_queue = (int32_t)cm->max_queue;
	ep.session_ttl_ms = (int32_t)cm->session_ttl_ms;
	ep.prefix_cache = cm->prefix_cache;
	ep.notify = engine_notify;
	ep.notify_ud = s;
	ep.name = m->cfg->id;
	rc = mllm_engine_create(m->model, &ep, &m->engine, err, errlen);
	if (rc < 0)
		return rc;

	load_template(m);
	m->info.id = cm->id;
	m->info.tok = mllm_model_tokenizer(m->model);
	m->info.n_ctx = mllm_engine_n_ctx(m->engine);
	m->info.chat_template = m->tmpl;
	m->info.created = (int64_t)time(NULL);
	m->info.owned_by = "mobilellmd";
	{
		/* The pool size is published by the engine thread on its first
		 * pass, right after it starts: wait for it (loader thread; at
		 * most ~1 s, then the KV check is left to the engine). */
		mllm_engine_stats st;
		for (int i = 0; i < 1000; i++) {
			mllm_engine_stats_get(m->engine, &st);
			if (st.kv_blocks_total > 0)
				break;
			usleep(1000);
		}
		m->info.max_running = (int32_t)cm->max_running;
		m->info.max_queue = (int32_t)cm->max_queue;
		m->info.kv_blocks = st.kv_blocks_total;
		m->info.kv_block_size = (int32_t)cm->kv_block_size;
	}
	SRV_LOG(MLLM_LOG_INFO,
	        "model %s loaded from %s in %.0f ms: %s %s, %d layers, dim %d, vocab %d, "
	        "n_ctx %d, %lld params",
	        cm->id, cm->path, (double)(mllm_now_ns() - t0) / 1e6, hp->arch, hp->format,
	        hp->n_layer, hp->n_embd, hp->n_vocab, m->info.n_ctx,
	        (long long)mllm_model_n_params(m->model));
	atomic_store(&m->loaded, true);
	return 0;
}

static void *loader_main(void *arg)
{
	srv *s = arg;
	char err[512];

	for (size_t i = 0; i < s->n_models; i++) {
		err[0] = '\0';
		if (atomic_load(&s->load_abort)) {
			SRV_LOG(MLLM_LOG_INFO, "shutting down: %zu model(s) not loaded",
			        s->n_models - i);
			atomic_store(&s->load_state, 2);
			uv_async_send(&s->wake);
			return NULL;
		}
		if (load_one(s, &s->models[i], err, sizeof err) < 0) {
			SRV_LOG(MLLM_LOG_ERROR, "model %s: %s", s->models[i].cfg->id,
			        err[0] ? err : "failed to load");
			atomic_store(&s->load_state, -1);
			uv_async_send(&s->wake);
			return NULL;
		}
	}
	atomic_store(&s->load_state, 1);
	uv_async_send(&s->wake);
	return NULL;
}

int srv__models_load_async(srv *s, char *err, size_t errlen)
{
	int rc = pthread_create(&s->loader, NULL, loader_main, s);

	if (rc != 0)
		return mllm__seterr(err, errlen, MLLM_EINTERNAL, "cannot start the loader: %s",
		                    strerror(rc));
	s->loader_started = true;
	return 0;
}

void srv__models_join_loader(srv *s)
{
	if (s->loader_started) {
		pthread_join(s->loader, NULL);
		s->loader_started = false;
	}
}

void srv__models_detach_loader(srv *s)
{
	if (s->loader_started && !s->ready_seen) {
		pthread_detach(s->loader);
		s->loader_started = false;
	}
}

void srv__models_free(srv *s)
{
	srv__models_join_loader(s);
	for (size_t i = 0; i < s->n_models; i++) {
		srv_model *m = &s->models[i];
		mllm_engine_free(m->engine);
		mllm_model_close(m->model);
		api_chat_template_free(m->tmpl);
	}
	free(s->models);
	s->models = NULL;
	s->n_models = 0;
}

srv_model *srv__model_find(srv *s, const char *id)
{
	const char *def = s->cfg->model_default;

	if (!id) {
		if (def && *def)
			id = def;
		else
			return s->n_models ? &s->models[0] : NULL;
	}
	for (size_t i = 0; i < s->n_models; i++)
		if (strcmp(s->models[i].cfg->id, id) == 0)
			return &s->models[i];
	return NULL;
}
