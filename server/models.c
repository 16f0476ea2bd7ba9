/*
 * models.c — the resident models: chat templates built from the config on
 * the main thread (so a typo fails --check-config), then a loader thread that
 * opens every checkpoint and starts its engine while the daemon already
 * listens (GET /health answers 503 until all are loaded). Loading is disk I/O
 * and weight conversion: it must never run on the loop thread (STYLE D1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int srv__models_init(srv *s, char *err, size_t errlen)
{
	const cfg_t *c = s->cfg;

	s->models = xcalloc(c->n_models, sizeof *s->models);
	s->n_models = c->n_models;
	for (size_t i = 0; i < c->n_models; i++) {
		srv_model *m = &s->models[i];
		const cfg_model *cm = &c->models[i];
		const struct {
			const char *key, *val;
		} keys[] = {
		    {"preset", cm->chat_template},
		    {"system", cm->chat_system},
		    {"user", cm->chat_user},
		    {"assistant", cm->chat_assistant},
		    {"generation", cm->chat_generation},
		    {"stop", cm->chat_stop},
		    {"bos", cm->chat_bos},
		};
		char msg[256];

		m->cfg = cm;
		m->s = s;
		atomic_init(&m->loaded, false);
		m->tmpl = api_chat_template_create();
		for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
			if (!keys[k].val)
				continue;
			if (api_chat_template_set(m->tmpl, keys[k].key, keys[k].val, msg,
			                          sizeof msg) < 0)
				return mllm__seterr(err, errlen, MLLM_EINVAL,
				                    "model %s: chat template: %s", cm->id, msg);
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
	ep.n_threads = (int)cm->threads;
	ep.max_batch_tokens = (int32_t)cm->max_batch_tokens;
	ep.max_running = (int32_t)cm->max_running;
	ep.max_queue = (int32_t)cm->max_queue;
	ep.session_ttl_ms = (int32_t)cm->session_ttl_ms;
	ep.prefix_cache = cm->prefix_cache;
	ep.notify = engine_notify;
	ep.notify_ud = s;
	rc = mllm_engine_create(m->model, &ep, &m->engine, err, errlen);
	if (rc < 0)
		return rc;

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
