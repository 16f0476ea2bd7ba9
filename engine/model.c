/*
 * model.c — mllm_model_open(): from a Hugging Face snapshot directory
 * (config.json + model.safetensors, safetensors shards, or pytorch_model.bin)
 * or a GGUF file to a filled, shape-checked struct mllm_model. The readers
 * only validate their container and list tensors in PyTorch [out, in] order;
 * this file decides what they mean, through one binding routine for both
 * naming schemes (HF, GGUF) so the shape checks are written once.
 */

/*
 * Design notes.
 *
 * Layer sharing: config.json's num_hidden_layers counts the STORED blocks.
 * The tiny-mobilellm-ls-bf16 fixture says 3 and ships model.layers.0..2, and
 * the reference (tools/make_golden.py) runs 2 x num_hidden_layers blocks,
 * each stored block twice in a row. So hp.n_layer = num_hidden_layers =
 * len(layers[]) and the forward pass doubles the runs when hp.layer_sharing.
 *
 * RoPE layout: llama.cpp's converter permutes the Q and K rows of llama-arch
 * GGUF files so that interleaved-pair RoPE reproduces HF's rotate_half
 * result. We do not un-permute: GGUF models get hp.rope_interleaved = true,
 * HF checkpoints false. make_golden.py un-permutes and uses rotate_half,
 * which is the same function of the input; with this choice the forward
 * pass reproduces tiny-mobilellm-f16.gguf.json (max |dlogit| ~2e-5).
 *
 * Storage: norm weights become owned F32 copies; everything else stays in
 * the read-only mappings (MAP_PRIVATE), which the model owns until close.
 * Quantized GGUF tensors stay as GGUF blocks. mllm__model_prepare() then
 * re-lays the matrices for the SIMD kernels into owned copies (X16/R16,
 * FR16) and releases those pages of the mapping, so on those tiers the
 * weights are private memory, not shared page cache. params->use_mmap =
 * false is accepted but changes nothing yet. params->convert_to is left
 * to mllm__model_prepare().
 *
 * Output: config.json's share_embedding: true, or no lm_head.weight /
 * output.weight, means logits use the token embedding (hp.shared_output).
 *
 * llama4_text (MobileLLM-R1): the same block with the FFN under
 * feed_forward.*, interleaved-pair RoPE on the HF rows (so, unlike llama
 * GGUF files, its GGUF rows are not permuted and take the same flag),
 * QK-norm, and per-layer RoPE/NoPE flags. Every config field that changes
 * the computation is read; what we do not implement (MoE layers, chunked
 * attention shorter than the context, RoPE scaling) is refused by name,
 * since the transformers defaults for absent fields are Llama-4 Scout's
 * (MoE everywhere, NoPE every 4th layer) and guessing would compute
 * garbage. See parse_llama4() and gguf_llama4().
 */
#include "gguf.h"
#include "json.h"
#include "kernels.h"
#include "loader.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define CONFIG_MAX (1u << 20)  /* config.json, tokenizer_config.json */
#define INDEX_MAX  (64u << 20) /* *.index.json */
#define DIM_MAX    (1 << 20)   /* any hidden / ffn / head size */
#define VOCAB_MAX  (1 << 22)
#define LAYER_MAX  4096

const char *mllm_dtype_name(mllm_dtype t)
{
	switch (t) {
	case MLLM_DTYPE_F32:
		return "F32";
	case MLLM_DTYPE_F16:
		return "F16";
	case MLLM_DTYPE_BF16:
		return "BF16";
	case MLLM_DTYPE_Q8_0:
		return "Q8_0";
	case MLLM_DTYPE_Q4_0:
		return "Q4_0";
	default:
		return "unknown";
	}
}

/* Moves the set's mappings into the model, which unmaps them at close. */
static void take_maps(mllm__tset *ts, mllm_model *m)
{
	for (int i = 0; i < ts->n_maps; i++)
		mllm__model_add_mapping(m, ts->maps[i].addr, ts->maps[i].size);
	free(ts->maps);
	ts->maps = NULL;
	ts->n_maps = 0;
}

void mllm_model_close(mllm_model *m)
{
	if (!m)
		return;
	mllm_tokenizer_free(m->tok);
	for (int i = 0; i < m->n_maps; i++)
		if (m->maps[i].addr)
			munmap(m->maps[i].addr, m->maps[i].size);
	free(m->maps);
	for (int i = 0; i < m->n_owned; i++)
		free(m->owned[i]);
	free(m->owned);
	free(m->layers);
	free(m->path);
	free(m->chat_template);
	free(m);
}

const mllm_hparams *mllm_model_hparams(const mllm_model *m)
{
	return &m->hp;
}

const mllm_tokenizer *mllm_model_tokenizer(const mllm_model *m)
{
	return m->tok;
}

bool mllm_hparams_is_eos(const mllm_hparams *hp, int32_t id)
{
	for (int32_t i = 0; i < hp->n_eos; i++)
		if (hp->eos_ids[i] == id)
			return true;
	return false;
}

/* Adds id to the EOS set (once; ids past MLLM_EOS_MAX are the caller's to
 * refuse before). */
static void eos_add(mllm_hparams *hp, int32_t id)
{
	if (id < 0 || mllm_hparams_is_eos(hp, id) || hp->n_eos >= MLLM_EOS_MAX)
		return;
	hp->eos_ids[hp->n_eos++] = id;
	hp->eos_id = hp->eos_ids[0];
}

const char *mllm_model_chat_template(const mllm_model *m)
{
	return m->chat_template;
}

const char *mllm_model_path(const mllm_model *m)
{
	return m->path;
}

int64_t mllm_model_n_params(const mllm_model *m)
{
	return m->n_params;
}

size_t mllm_model_weight_bytes(const mllm_model *m)
{
	return m->weight_bytes;
}

/* ---- Binding tensors ------------------------------------------------- */

typedef struct {
	mllm_model *m;
	const mllm__tset *ts;
	const char *where; /* file to name when a tensor is missing */
	char *err;
	size_t errlen;
} binder;

static void fmt_shape(char *buf, size_t n, const mllm__ltensor *t)
{
	size_t o = 0;
	buf[0] = '\0';
	o += (size_t)snprintf(buf + o, n - o, "[");
	for (int i = 0; i < t->n_dims && o < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "",
		                      (long long)t->shape[i]);
	if (o < n)
		snprintf(buf + o, n - o, "]");
}

/* Binds `name` as [rows, cols] (rows == 0: a 1-D norm vector of cols, which
 * becomes an owned F32 copy). */
static int bind(binder *b, const char *name, int64_t rows, int64_t cols, mllm__tensor *dst)
{
	const mllm__ltensor *t = mllm__tset_find(b->ts, name);
	const char *file;
	char got[96];
	bool ok;

	if (!t)
		return mllm__seterr(b->err, b->errlen, MLLM_EFORMAT, "%s: missing tensor %s",
		                    b->where, name);
	file = b->ts->files[t->file];
	if (t->dtype == MLLM_DTYPE__COUNT)
		return mllm__seterr(b->err, b->errlen, MLLM_EUNSUPPORTED,
		                    "%s: tensor %s has type %s, which is not supported", file, name,
		                    t->type_name);
	if (rows == 0)
		ok = t->n_dims == 1 && t->shape[0] == cols;
	else
		ok = t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols;
	if (!ok) {
		fmt_shape(got, sizeof got, t);
		if (rows == 0)
			return mllm__seterr(b->err, b->errlen, MLLM_EFORMAT,
			                    "%s: tensor %s has shape %s, expected [%lld] from the "
			                    "hyper-parameters",
			                    file, name, got, (long long)cols);
		return mllm__seterr(b->err, b->errlen, MLLM_EFORMAT,
		                    "%s: tensor %s has shape %s, expected [%lld, %lld] from the "
		                    "hyper-parameters",
		                    file, name, got, (long long)rows, (long long)cols);
	}
	if (rows == 0) {
		float *f;
		if (t->dtype != MLLM_DTYPE_F32 && t->dtype != MLLM_DTYPE_F16 &&
		    t->dtype != MLLM_DTYPE_BF16)
			return mllm__seterr(b->err, b->errlen, MLLM_EUNSUPPORTED,
			                    "%s: norm tensor %s is %s; only F32/F16/BF16 norms "
			                    "are supported",
			                    file, name, mllm_dtype_name(t->dtype));
		f = xmallocarray((size_t)cols, sizeof *f);
		for (int64_t i = 0; i < cols; i++) {
			uint16_t h;
			if (t->dtype == MLLM_DTYPE_F32) {
				memcpy(&f[i], (const char *)t->data + 4 * i, 4);
				continue;
			}
			memcpy(&h, (const char *)t->data + 2 * i, 2);
			f[i] =
			    t->dtype == MLLM_DTYPE_F16 ? mllm__f16_to_f32(h) : mllm__bf16_to_f32(h);
		}
		mllm__model_own(b->m, f);
		dst->dtype = MLLM_DTYPE_F32;
		dst->rows = 1;
		dst->cols = cols;
		dst->data = f;
		return 0;
	}
	dst->dtype = t->dtype;
	dst->rows = rows;
	dst->cols = cols;
	dst->data = t->data;
	return 0;
}

typedef struct {
	const char *embd, *norm, *output;
	/* printf formats taking the layer index */
	const char *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm, *gate, *up, *down;
	const char *layer_prefix; /* "model.layers." / "blk." */
} name_scheme;

static const name_scheme hf_names = {
    "model.embed_tokens.weight",
    "model.norm.weight",
    "lm_head.weight",
    "model.layers.%d.input_layernorm.weight",
    "model.layers.%d.self_attn.q_proj.weight",
    "model.layers.%d.self_attn.k_proj.weight",
    "model.layers.%d.self_attn.v_proj.weight",
    "model.layers.%d.self_attn.o_proj.weight",
    "model.layers.%d.post_attention_layernorm.weight",
    "model.layers.%d.mlp.gate_proj.weight",
    "model.layers.%d.mlp.up_proj.weight",
    "model.layers.%d.mlp.down_proj.weight",
    "model.layers.",
};

/* llama4_text: Llama's names but the FFN lives under feed_forward. */
static name_scheme hf_llama4_names(void)
{
	name_scheme ns = hf_names;
	ns.gate = "model.layers.%d.feed_forward.gate_proj.weight";
	ns.up = "model.layers.%d.feed_forward.up_proj.weight";
	ns.down = "model.layers.%d.feed_forward.down_proj.weight";
	return ns;
}

static const name_scheme gguf_names = {
    "token_embd.weight",
    "output_norm.weight",
    "output.weight",
    "blk.%d.attn_norm.weight",
    "blk.%d.attn_q.weight",
    "blk.%d.attn_k.weight",
    "blk.%d.attn_v.weight",
    "blk.%d.attn_output.weight",
    "blk.%d.ffn_norm.weight",
    "blk.%d.ffn_gate.weight",
    "blk.%d.ffn_up.weight",
    "blk.%d.ffn_down.weight",
    "blk.",
};

static void add_stats(mllm_model *m, const mllm__tensor *t, int64_t *per_type)
{
	size_t nb = 0;
	int64_t n = t->rows * t->cols;
	if (mllm__dtype_nbytes(t->dtype, (uint64_t)n, &nb))
		nb = 0;
	m->n_params += n;
	m->weight_bytes += nb;
	if (t->rows > 1 && t->dtype < MLLM_DTYPE__COUNT)
		per_type[t->dtype] += n;
}

/* Fills every tensor of m from ts. share: -1 = decide by the presence of the
 * output tensor, 1 = the config says the embedding is shared. */
static int bind_all(mllm_model *m, const mllm__tset *ts, const name_scheme *ns, const char *where,
                    int share, char *err, size_t errlen)
{
	binder b = {m, ts, where, err, errlen};
	mllm_hparams *hp = &m->hp;
	int64_t q_dim = (int64_t)hp->n_head * hp->head_dim;
	int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
	int64_t per_type[MLLM_DTYPE__COUNT] = {0};
	size_t plen = strlen(ns->layer_prefix);
	char name[128];
	int rc;

	/* A stored block beyond n_layer means the config and the weights
	 * disagree (e.g. layer sharing counted twice): refuse. */
	for (size_t i = 0; i < ts->n; i++) {
		const char *s = ts->t[i].name;
		char *end;
		long l;
		if (strncmp(s, ns->layer_prefix, plen) != 0)
			continue;
		errno = 0;
		l = strtol(s + plen, &end, 10);
		if (end != s + plen && *end == '.' && (l < 0 || l >= hp->n_layer))
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: tensor %s is beyond the %d layers the "
			                    "hyper-parameters declare (inconsistent config)",
			                    ts->files[ts->t[i].file], s, hp->n_layer);
	}

	rc = bind(&b, ns->embd, hp->n_vocab, hp->n_embd, &m->tok_embd);
	if (rc)
		return rc;
	rc = bind(&b, ns->norm, 0, hp->n_embd, &m->output_norm);
	if (rc)
		return rc;
	if (share == 1 || !mllm__tset_find(ts, ns->output)) {
		if (share == 1 && mllm__tset_find(ts, ns->output))
			MLLM_LOG(MLLM_LOG_WARN, "%s: share_embedding is set; ignoring %s", where,
			         ns->output);
		m->output = m->tok_embd;
		hp->shared_output = true;
	} else {
		rc = bind(&b, ns->output, hp->n_vocab, hp->n_embd, &m->output);
		if (rc)
			return rc;
		hp->shared_output = false;
	}
	m->layers = xcalloc((size_t)hp->n_layer, sizeof *m->layers);
	for (int l = 0; l < hp->n_layer; l++) {
		mllm__layer *L = &m->layers[l];
		struct {
			const char *fmt;
			int64_t rows, cols;
			mllm__tensor *dst;
		} want[] = {
		    {ns->attn_norm, 0, hp->n_embd, &L->attn_norm},
		    {ns->wq, q_dim, hp->n_embd, &L->wq},
		    {ns->wk, kv_dim, hp->n_embd, &L->wk},
		    {ns->wv, kv_dim, hp->n_embd, &L->wv},
		    {ns->wo, hp->n_embd, q_dim, &L->wo},
		    {ns->ffn_norm, 0, hp->n_embd, &L->ffn_norm},
		    {ns->gate, hp->n_ff, hp->n_embd, &L->w_gate},
		    {ns->up, hp->n_ff, hp->n_embd, &L->w_up},
		    {ns->down, hp->n_embd, hp->n_ff, &L->w_down},
		};
		for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
			snprintf(name, sizeof name, want[k].fmt, l);
			rc = bind(&b, name, want[k].rows, want[k].cols, want[k].dst);
			if (rc)
				return rc;
			add_stats(m, want[k].dst, per_type);
		}
	}
	add_stats(m, &m->tok_embd, per_type);
	add_stats(m, &m->output_norm, per_type);
	if (!hp->shared_output)
		add_stats(m, &m->output, per_type);
	hp->wtype = MLLM_DTYPE_F32;
	for (int t = 0; t < MLLM_DTYPE__COUNT; t++)
		if (per_type[t] > per_type[hp->wtype])
			hp->wtype = (mllm_dtype)t;
	return 0;
}

/* ---- Hyper-parameter checks ------------------------------------------ */

static int check_hparams(const mllm_hparams *hp, const char *file, char *err, size_t errlen)
{
	struct {
		const char *name;
		int32_t v, max;
	} r[] = {
	    {"layers", hp->n_layer, LAYER_MAX},
	    {"hidden size", hp->n_embd, DIM_MAX},
	    {"attention heads", hp->n_head, DIM_MAX},
	    {"KV heads", hp->n_head_kv, DIM_MAX},
	    {"head dim", hp->head_dim, DIM_MAX},
	    {"FFN size", hp->n_ff, DIM_MAX},
	    {"vocabulary size", hp->n_vocab, VOCAB_MAX},
	    {"context length", hp->n_ctx_train, 1 << 24},
	};
	for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
		if (r[i].v <= 0 || r[i].v > r[i].max)
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: %s %d is out of range (1..%d)", file, r[i].name,
			                    r[i].v, r[i].max);
	if (hp->n_head % hp->n_head_kv != 0)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: %d attention heads are not a multiple of %d KV heads "
		                    "(inconsistent config)",
		                    file, hp->n_head, hp->n_head_kv);
	if (hp->head_dim % 2 != 0)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: head dim %d is odd; RoPE needs pairs", file, hp->head_dim);
	if ((int64_t)hp->n_head * hp->head_dim > DIM_MAX)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: heads x head dim too large",
		                    file);
	if (!(hp->norm_eps > 0.0f) || !isfinite(hp->norm_eps) || hp->norm_eps > 1.0f)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: RMS norm epsilon %g is invalid",
		                    file, (double)hp->norm_eps);
	if (!(hp->rope_theta > 0.0f) || !isfinite(hp->rope_theta))
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: RoPE theta %g is invalid", file,
		                    (double)hp->rope_theta);
	return 0;
}

/* ---- config.json ----------------------------------------------------- */

typedef struct {
	const char *file;
	const mllm__json *root;
	char *err;
	size_t errlen;
} cfg_reader;

/* Integer key: required (def < 0 means required) or default. */
static int cfg_int(cfg_reader *c, const char *key, int64_t def, int32_t *out)
{
	const mllm__json *v = mllm__json_get(c->root, key);

	if (!v || v->type == MLLM_JSON_NULL) {
		if (def < 0)
			return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT, "%s: missing \"%s\"",
			                    c->file, key);
		*out = (int32_t)def;
		return 0;
	}
	if (v->type != MLLM_JSON_NUMBER || !v->is_int || v->i < INT32_MIN || v->i > INT32_MAX)
		return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
		                    "%s: \"%s\" must be a 32-bit integer", c->file, key);
	*out = (int32_t)v->i;
	return 0;
}

static int cfg_float(cfg_reader *c, const char *key, double def, float *out)
{
	const mllm__json *v = mllm__json_get(c->root, key);

	if (!v || v->type == MLLM_JSON_NULL) {
		*out = (float)def;
		return 0;
	}
	if (v->type != MLLM_JSON_NUMBER)
		return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT, "%s: \"%s\" must be a number",
		                    c->file, key);
	*out = (float)v->num;
	return 0;
}

/* -1 absent/null, 0 false, 1 true; error for other types. */
static int cfg_bool(cfg_reader *c, const char *key, int *out)
{
	const mllm__json *v = mllm__json_get(c->root, key);

	*out = -1;
	if (!v || v->type == MLLM_JSON_NULL)
		return 0;
	if (v->type != MLLM_JSON_TRUE && v->type != MLLM_JSON_FALSE)
		return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT, "%s: \"%s\" must be a boolean",
		                    c->file, key);
	*out = v->type == MLLM_JSON_TRUE;
	return 0;
}

/* bos/eos: an integer, a list of integers (the first is used) or null. */
static int cfg_token(cfg_reader *c, const char *key, int32_t *out)
{
	const mllm__json *v = mllm__json_get(c->root, key);

	*out = -1;
	if (v && v->type == MLLM_JSON_ARRAY)
		v = v->child;
	if (!v || v->type == MLLM_JSON_NULL)
		return 0;
	if (v->type != MLLM_JSON_NUMBER || !v->is_int || v->i < 0 || v->i > INT32_MAX)
		return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
		                    "%s: \"%s\" must be a token id", c->file, key);
	*out = (int32_t)v->i;
	return 0;
}

/* eos_token_id: an integer, a list of integers (every one ends generation)
 * or null. */
static int cfg_eos(cfg_reader *c, mllm_hparams *hp)
{
	const mllm__json *v = mllm__json_get(c->root, "eos_token_id");
	const mllm__json *e;

	hp->eos_id = -1;
	hp->n_eos = 0;
	if (!v || v->type == MLLM_JSON_NULL)
		return 0;
	if (v->type == MLLM_JSON_ARRAY && v->n > MLLM_EOS_MAX)
		return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
		                    "%s: \"eos_token_id\" lists %u ids; at most %d are supported",
		                    c->file, v->n, MLLM_EOS_MAX);
	e = v->type == MLLM_JSON_ARRAY ? v->child : v;
	for (; e; e = v->type == MLLM_JSON_ARRAY ? e->next : NULL) {
		if (e->type != MLLM_JSON_NUMBER || !e->is_int || e->i < 0 || e->i > INT32_MAX)
			return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
			                    "%s: \"eos_token_id\" must be a token id or a list of "
			                    "them",
			                    c->file);
		eos_add(hp, (int32_t)e->i);
	}
	return 0;
}

/* ---- llama4_text ------------------------------------------------------- */

/* A list of exactly n_layer integers, each 0 or 1 (no_rope_layers). */
static int cfg_layer_flags(cfg_reader *c, const mllm__json *v, const char *key, int32_t n_layer,
                           uint8_t *out)
{
	int32_t i = 0;
	if (v->type != MLLM_JSON_ARRAY || (int64_t)v->n != n_layer)
		return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
		                    "%s: \"%s\" must list one 0/1 flag per layer (%d)", c->file,
		                    key, n_layer);
	for (const mllm__json *e = v->child; e; e = e->next, i++) {
		if (e->type != MLLM_JSON_NUMBER || !e->is_int || (e->i != 0 && e->i != 1))
			return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
			                    "%s: \"%s\"[%d] must be 0 or 1", c->file, key, i);
		out[i] = (uint8_t)e->i;
	}
	return 0;
}

/* RoPE theta: transformers 5.x writes rope_parameters {rope_type,
 * rope_theta} (possibly one per layer type), 4.x rope_theta and
 * rope_scaling. Only plain RoPE is implemented. */
static int llama4_rope(cfg_reader *c, mllm_hparams *hp)
{
	const mllm__json *rp = mllm__json_get(c->root, "rope_parameters");
	const mllm__json *v;
	int rc;

	v = mllm__json_get(c->root, "rope_scaling");
	if (v && v->type != MLLM_JSON_NULL)
		return mllm__seterr(c->err, c->errlen, MLLM_EUNSUPPORTED,
		                    "%s: rope_scaling is not supported", c->file);
	rc = cfg_float(c, "rope_theta", 500000.0, &hp->rope_theta);
	if (rc || !rp || rp->type == MLLM_JSON_NULL)
		return rc;
	if (rp->type != MLLM_JSON_OBJECT)
		return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
		                    "%s: \"rope_parameters\" must be an object", c->file);
	v = mllm__json_get(rp, "full_attention");
	if (v && v->type == MLLM_JSON_OBJECT)
		rp = v;
	v = mllm__json_get(rp, "rope_type");
	if (v && (v->type != MLLM_JSON_STRING || strcmp(v->str, "default") != 0))
		return mllm__seterr(c->err, c->errlen, MLLM_EUNSUPPORTED,
		                    "%s: rope_parameters.rope_type \"%.40s\" is not supported "
		                    "(default)",
		                    c->file, v->type == MLLM_JSON_STRING ? v->str : "?");
	v = mllm__json_get(rp, "rope_theta");
	if (v && v->type != MLLM_JSON_NULL) {
		if (v->type != MLLM_JSON_NUMBER)
			return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
			                    "%s: rope_parameters.rope_theta must be a number",
			                    c->file);
		hp->rope_theta = (float)v->num;
	}
	return 0;
}

/* MoE layers: moe_layers when given, else transformers' default
 * range(step - 1, n_layer, step) of interleave_moe_layer_step (default 1:
 * every layer). A dense model says moe_layers: [] (or step 0). */
static int llama4_moe(cfg_reader *c, const mllm_hparams *hp)
{
	const mllm__json *ml = mllm__json_get(c->root, "moe_layers");
	int32_t step, experts;
	int rc;

	rc = cfg_int(c, "interleave_moe_layer_step", 1, &step);
	if (!rc)
		rc = cfg_int(c, "num_local_experts", 16, &experts);
	if (rc)
		return rc;
	if (ml && ml->type != MLLM_JSON_NULL) {
		if (ml->type != MLLM_JSON_ARRAY)
			return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
			                    "%s: \"moe_layers\" must be a list", c->file);
		if (ml->n > 0)
			return mllm__seterr(c->err, c->errlen, MLLM_EUNSUPPORTED,
			                    "%s: moe_layers lists %u mixture-of-experts layers "
			                    "(num_local_experts %d); MoE is not implemented, only "
			                    "dense models (moe_layers: [])",
			                    c->file, ml->n, experts);
		return 0;
	}
	if (step > 0 && step <= hp->n_layer)
		return mllm__seterr(c->err, c->errlen, MLLM_EUNSUPPORTED,
		                    "%s: interleave_moe_layer_step %d (moe_layers absent) makes "
		                    "every %d%s layer mixture-of-experts; MoE is not implemented",
		                    c->file, step, step, step == 1 ? "" : "th");
	return 0;
}

/* The llama4_text fields on top of the common ones parse_config read.
 * *nope gets a malloc'ed [n_layer] array, 1 = the layer has no RoPE (or
 * NULL when every layer uses RoPE). */
static int parse_llama4(cfg_reader *c, mllm_hparams *hp, int *share, uint8_t **nope)
{
	const mllm__json *v, *lt;
	uint8_t *rope = NULL;
	int32_t chunk = 0;
	int qk, tt, tie, rc;

	*nope = NULL;
	if (hp->n_layer <= 0 || hp->n_layer > LAYER_MAX)
		return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
		                    "%s: layers %d is out of range (1..%d)", c->file, hp->n_layer,
		                    LAYER_MAX);
	/* The dense FFN of a llama4 layer is intermediate_size_mlp wide
	 * (intermediate_size is the experts' width). */
	rc = cfg_int(c, "intermediate_size_mlp", 16384, &hp->n_ff);
	if (!rc)
		rc = llama4_rope(c, hp);
	if (!rc)
		rc = llama4_moe(c, hp);
	if (!rc)
		rc = cfg_bool(c, "use_qk_norm", &qk);
	if (!rc)
		rc = cfg_bool(c, "attn_temperature_tuning", &tt);
	if (!rc)
		rc = cfg_float(c, "attn_scale", 0.1, &hp->attn_temp_scale);
	if (!rc)
		rc = cfg_float(c, "floor_scale", 8192.0, &hp->attn_temp_floor);
	if (!rc)
		rc = cfg_bool(c, "tie_word_embeddings", &tie);
	if (rc)
		return rc;
	/* dtype (5.x) / torch_dtype (4.x) only name the storage type, which
	 * the tensors carry themselves; a wrong type is still malformed. */
	for (int i = 0; i < 2; i++) {
		const char *k = i ? "torch_dtype" : "dtype";
		v = mllm__json_get(c->root, k);
		if (v && v->type != MLLM_JSON_NULL && v->type != MLLM_JSON_STRING)
			return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
			                    "%s: \"%s\" must be a string", c->file, k);
	}
	hp->qk_norm = qk != 0; /* transformers' default: on */
	hp->attn_temp_tuning = tt != 0;
	*share = tie; /* -1 absent: by the presence of lm_head.weight */
	if (hp->attn_temp_tuning &&
	    (!(hp->attn_temp_floor > 0.0f) || !isfinite(hp->attn_temp_floor) ||
	     !isfinite(hp->attn_temp_scale)))
		return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
		                    "%s: floor_scale must be positive and attn_scale finite",
		                    c->file);

	/* RoPE per layer: no_rope_layers (1 = uses RoPE), else transformers'
	 * default of no RoPE on every no_rope_layer_interval-th layer. */
	rope = xmalloc((size_t)hp->n_layer);
	v = mllm__json_get(c->root, "no_rope_layers");
	if (v && v->type == MLLM_JSON_ARRAY && v->n > 0) {
		rc = cfg_layer_flags(c, v, "no_rope_layers", hp->n_layer, rope);
	} else if (v && v->type != MLLM_JSON_NULL && v->type != MLLM_JSON_ARRAY) {
		rc = mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
		                  "%s: \"no_rope_layers\" must be a list", c->file);
	} else {
		int32_t every;
		rc = cfg_int(c, "no_rope_layer_interval", 4, &every);
		if (!rc && every <= 0)
			rc = mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
			                  "%s: \"no_rope_layer_interval\" must be positive",
			                  c->file);
		for (int32_t l = 0; !rc && l < hp->n_layer; l++)
			rope[l] = (l + 1) % every != 0;
	}
	if (rc)
		goto out;

	/* Chunked (local) attention: the layers layer_types names, or without
	 * layer_types (transformers 4.x) the RoPE layers whenever
	 * attention_chunk_size is set. A chunk at least as long as the context
	 * never masks anything; a shorter one is not implemented. */
	rc = cfg_int(c, "attention_chunk_size", 0, &chunk);
	if (rc)
		goto out;
	lt = mllm__json_get(c->root, "layer_types");
	if (lt && lt->type != MLLM_JSON_NULL &&
	    (lt->type != MLLM_JSON_ARRAY || (int64_t)lt->n != hp->n_layer)) {
		rc = mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
		                  "%s: \"layer_types\" must list one type per layer (%d)", c->file,
		                  hp->n_layer);
		goto out;
	}
	for (int32_t l = 0; l < hp->n_layer; l++) {
		const mllm__json *e =
		    lt && lt->type == MLLM_JSON_ARRAY ? mllm__json_at(lt, (size_t)l) : NULL;
		bool chunked;
		if (e &&
		    (e->type != MLLM_JSON_STRING || (strcmp(e->str, "full_attention") != 0 &&
		                                     strcmp(e->str, "chunked_attention") != 0))) {
			rc = mllm__seterr(c->err, c->errlen, MLLM_EUNSUPPORTED,
			                  "%s: layer_types[%d] \"%.40s\" is not supported "
			                  "(full_attention, chunked_attention)",
			                  c->file, l, e->type == MLLM_JSON_STRING ? e->str : "?");
			goto out;
		}
		chunked = e ? strcmp(e->str, "chunked_attention") == 0 : rope[l] && chunk > 0;
		if (chunked && (chunk <= 0 || chunk < hp->n_ctx_train)) {
			rc = mllm__seterr(c->err, c->errlen, MLLM_EUNSUPPORTED,
			                  "%s: attention_chunk_size %d is shorter than the context "
			                  "(max_position_embeddings %d) for layer %d: chunked "
			                  "attention is not implemented",
			                  c->file, chunk, hp->n_ctx_train, l);
			goto out;
		}
	}

	hp->n_nope = 0;
	for (int32_t l = 0; l < hp->n_layer; l++) {
		rope[l] = !rope[l];
		hp->n_nope += rope[l];
	}
	if (hp->n_nope > 0) {
		*nope = rope;
		rope = NULL;
	}
out:
	free(rope);
	return rc;
}

/* Parses config.json into hp. *share receives share_embedding (-1 absent);
 * *nope the per-layer NoPE flags of a llama4_text model (else NULL). */
static int parse_config(const char *file, mllm_hparams *hp, int *share, uint8_t **nope, char *err,
                        size_t errlen)
{
	mllm__json_doc *doc = NULL;
	const mllm__json *mt, *v;
	cfg_reader c = {file, NULL, err, errlen};
	char *text = NULL;
	char jerr[160];
	size_t len;
	int rc, ls;
	bool llama4;

	*nope = NULL;
	rc = mllm__read_file(file, CONFIG_MAX, &text, &len, err, errlen);
	if (rc)
		return rc;
	rc = mllm__json_parse(text, len, NULL, &doc, jerr, sizeof jerr);
	if (rc) {
		rc = mllm__seterr(err, errlen, rc, "%s: bad JSON: %s", file, jerr);
		goto out;
	}
	c.root = mllm__json_root(doc);
	rc = MLLM_EFORMAT;
	if (c.root->type != MLLM_JSON_OBJECT) {
		mllm__seterr(err, errlen, rc, "%s: not a JSON object", file);
		goto out;
	}
	mt = mllm__json_get(c.root, "model_type");
	if (!mt || mt->type != MLLM_JSON_STRING) {
		mllm__seterr(err, errlen, rc, "%s: missing \"model_type\"", file);
		goto out;
	}
	llama4 = strcmp(mt->str, "llama4_text") == 0;
	if (strcmp(mt->str, "mobilellm") != 0 && strcmp(mt->str, "llama") != 0 && !llama4) {
		rc = mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                  "%s: model_type \"%.40s\" is not supported (mobilellm, llama, "
		                  "llama4_text)",
		                  file, mt->str);
		goto out;
	}
	snprintf(hp->arch, sizeof hp->arch, "%s", mt->str);
	if (cfg_int(&c, "hidden_size", -1, &hp->n_embd) ||
	    cfg_int(&c, "intermediate_size", -1, &hp->n_ff) ||
	    cfg_int(&c, "num_hidden_layers", -1, &hp->n_layer) ||
	    cfg_int(&c, "num_attention_heads", -1, &hp->n_head) ||
	    cfg_int(&c, "vocab_size", -1, &hp->n_vocab) ||
	    cfg_int(&c, "max_position_embeddings", 2048, &hp->n_ctx_train) ||
	    cfg_float(&c, "rms_norm_eps", 1e-6, &hp->norm_eps) ||
	    cfg_float(&c, "rope_theta", 10000.0, &hp->rope_theta) ||
	    cfg_token(&c, "bos_token_id", &hp->bos_id) || cfg_eos(&c, hp) ||
	    cfg_bool(&c, "layer_sharing", &ls) || cfg_bool(&c, "share_embedding", share))
		goto out;
	if (cfg_int(&c, "num_key_value_heads", hp->n_head > 0 ? hp->n_head : 1, &hp->n_head_kv))
		goto out;
	if (hp->n_head > 0 && hp->n_embd % hp->n_head != 0 && !mllm__json_get(c.root, "head_dim")) {
		mllm__seterr(err, errlen, rc,
		             "%s: hidden_size %d is not a multiple of num_attention_heads %d "
		             "(inconsistent config)",
		             file, hp->n_embd, hp->n_head);
		goto out;
	}
	if (cfg_int(&c, "head_dim", hp->n_head > 0 ? hp->n_embd / hp->n_head : 0, &hp->head_dim))
		goto out;
	hp->layer_sharing = ls == 1;
	if (llama4) {
		rc = parse_llama4(&c, hp, share, nope);
		if (rc)
			goto out;
		rc = MLLM_EFORMAT;
	}
	v = mllm__json_get(c.root, "rope_scaling");
	if (v && v->type != MLLM_JSON_NULL) {
		rc = mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                  "%s: rope_scaling is not supported", file);
		goto out;
	}
	v = mllm__json_get(c.root, "hidden_act");
	if (v && (v->type != MLLM_JSON_STRING || strcmp(v->str, "silu") != 0)) {
		rc = mllm__seterr(err, errlen, MLLM_EUNSUPPORTED, "%s: hidden_act must be \"silu\"",
		                  file);
		goto out;
	}
	v = mllm__json_get(c.root, "attention_bias");
	if (v && v->type == MLLM_JSON_TRUE) {
		rc = mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                  "%s: attention_bias is not supported", file);
		goto out;
	}
	v = mllm__json_get(c.root, "mlp_bias");
	if (v && v->type == MLLM_JSON_TRUE) {
		rc = mllm__seterr(err, errlen, MLLM_EUNSUPPORTED, "%s: mlp_bias is not supported",
		                  file);
		goto out;
	}
	rc = check_hparams(hp, file, err, errlen);
out:
	if (rc) {
		free(*nope);
		*nope = NULL;
	}
	mllm__json_free(doc);
	free(text);
	return rc;
}

/* ---- Weights of a directory ------------------------------------------ */

static char *path_join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = xmalloc(a + b + 2);
	memcpy(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	return p;
}

static bool file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* model.safetensors.index.json / pytorch_model.bin.index.json: maps each
 * listed shard once and checks that every tensor is where the index says. */
static int load_shards(mllm__tset *ts, const char *dir, const char *index, bool bin, char *err,
                       size_t errlen)
{
	mllm__json_doc *doc = NULL;
	const mllm__json *wm;
	const char **shards = NULL;
	size_t n_shards = 0;
	char *text = NULL;
	char jerr[160];
	size_t len;
	int rc;

	rc = mllm__read_file(index, INDEX_MAX, &text, &len, err, errlen);
	if (rc)
		return rc;
	rc = mllm__json_parse(text, len, NULL, &doc, jerr, sizeof jerr);
	if (rc) {
		rc = mllm__seterr(err, errlen, rc, "%s: bad JSON: %s", index, jerr);
		goto out;
	}
	wm = mllm__json_get(mllm__json_root(doc), "weight_map");
	if (!wm || wm->type != MLLM_JSON_OBJECT || wm->n == 0) {
		rc = mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: missing \"weight_map\" object",
		                  index);
		goto out;
	}
	shards = xcalloc(wm->n, sizeof *shards);
	for (const mllm__json *e = wm->child; e; e = e->next) {
		size_t k;
		if (e->type != MLLM_JSON_STRING || e->len == 0 || strlen(e->str) != e->len ||
		    strchr(e->str, '/') || strcmp(e->str, "..") == 0 || strcmp(e->str, ".") == 0) {
			rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
			                  "%s: weight_map entry %s must name a file in the same "
			                  "directory",
			                  index, e->key);
			goto out;
		}
		for (k = 0; k < n_shards; k++)
			if (strcmp(shards[k], e->str) == 0)
				break;
		if (k == n_shards)
			shards[n_shards++] = e->str;
	}
	for (size_t k = 0; k < n_shards; k++) {
		char *p = path_join(dir, shards[k]);
		rc = bin ? mllm__pytorch_load(ts, p, err, errlen)
		         : mllm__safetensors_load(ts, p, err, errlen);
		free(p);
		if (rc)
			goto out;
	}
	rc = mllm__tset_index(ts, err, errlen);
	if (rc)
		goto out;
	for (const mllm__json *e = wm->child; e; e = e->next) {
		const mllm__ltensor *t = mllm__tset_find(ts, e->key);
		const char *f = t ? ts->files[t->file] : NULL;
		const char *base = f ? strrchr(f, '/') : NULL;
		base = base ? base + 1 : f;
		if (!t || strcmp(base, e->str) != 0) {
			rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
			                  "%s: tensor %s is listed in shard %s but not found there",
			                  index, e->key, e->str);
			goto out;
		}
	}
out:
	free(shards);
	mllm__json_free(doc);
	free(text);
	return rc;
}

/* tokenizer_config.json's add_bos_token (default true). */
static int read_add_bos(const char *dir, bool *add_bos, char *err, size_t errlen)
{
	char *file = path_join(dir, "tokenizer_config.json");
	mllm__json_doc *doc = NULL;
	const mllm__json *v;
	char *text = NULL;
	char jerr[160];
	size_t len;
	int rc;

	*add_bos = true;
	rc = mllm__read_file(file, CONFIG_MAX, &text, &len, err, errlen);
	if (rc == MLLM_ENOTFOUND) {
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	rc = mllm__json_parse(text, len, NULL, &doc, jerr, sizeof jerr);
	if (rc) {
		rc = mllm__seterr(err, errlen, rc, "%s: bad JSON: %s", file, jerr);
		goto out;
	}
	v = mllm__json_get(mllm__json_root(doc), "add_bos_token");
	if (v && v->type != MLLM_JSON_NULL) {
		if (v->type != MLLM_JSON_TRUE && v->type != MLLM_JSON_FALSE) {
			rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
			                  "%s: \"add_bos_token\" must be a boolean", file);
			goto out;
		}
		*add_bos = v->type == MLLM_JSON_TRUE;
	}
out:
	mllm__json_free(doc);
	free(text);
	free(file);
	return rc;
}

static int check_tokenizer(mllm_model *m, const char *file, char *err, size_t errlen)
{
	if (m->tok && mllm_tokenizer_n_vocab(m->tok) > m->hp.n_vocab)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: the tokenizer has %d tokens but the model only %d "
		                    "embeddings (inconsistent config)",
		                    file, mllm_tokenizer_n_vocab(m->tok), m->hp.n_vocab);
	return 0;
}

static int open_dir(mllm_model *m, const char *dir, char *err, size_t errlen)
{
	mllm__tset ts;
	char *cfg = path_join(dir, "config.json");
	char *where = NULL, *p;
	uint8_t *nope = NULL;
	name_scheme names;
	int share = -1, rc;

	mllm__tset_init(&ts);
	rc = parse_config(cfg, &m->hp, &share, &nope, err, errlen);
	if (rc)
		goto out;

	p = path_join(dir, "model.safetensors");
	if (file_exists(p)) {
		where = p;
		snprintf(m->hp.format, sizeof m->hp.format, "safetensors");
		rc = mllm__safetensors_load(&ts, p, err, errlen);
		if (!rc)
			rc = mllm__tset_index(&ts, err, errlen);
		goto bind;
	}
	free(p);
	p = path_join(dir, "model.safetensors.index.json");
	if (file_exists(p)) {
		where = p;
		snprintf(m->hp.format, sizeof m->hp.format, "safetensors");
		rc = load_shards(&ts, dir, p, false, err, errlen);
		goto bind;
	}
	free(p);
	p = path_join(dir, "pytorch_model.bin");
	if (file_exists(p)) {
		where = p;
		snprintf(m->hp.format, sizeof m->hp.format, "pytorch");
		rc = mllm__pytorch_load(&ts, p, err, errlen);
		if (!rc)
			rc = mllm__tset_index(&ts, err, errlen);
		goto bind;
	}
	free(p);
	p = path_join(dir, "pytorch_model.bin.index.json");
	if (file_exists(p)) {
		where = p;
		snprintf(m->hp.format, sizeof m->hp.format, "pytorch");
		rc = load_shards(&ts, dir, p, true, err, errlen);
		goto bind;
	}
	free(p);
	rc = mllm__seterr(err, errlen, MLLM_ENOTFOUND,
	                  "%s: no weights (model.safetensors, model.safetensors.index.json or "
	                  "pytorch_model.bin)",
	                  dir);
	goto out;
bind:
	if (rc)
		goto out;
	/* llama4_text's HF rows take RoPE on adjacent pairs (view_as_complex) */
	m->hp.rope_interleaved = strcmp(m->hp.arch, "llama4_text") == 0;
	/* transformers would give an untied model without lm_head a random
	 * head: refuse rather than silently tie. */
	if (m->hp.rope_interleaved && share == 0 && !mllm__tset_find(&ts, "lm_head.weight")) {
		rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
		                  "%s: tie_word_embeddings is false but there is no lm_head.weight",
		                  where);
		goto out;
	}
	names = m->hp.rope_interleaved ? hf_llama4_names() : hf_names;
	rc = bind_all(m, &ts, &names, where, share == 1 ? 1 : -1, err, errlen);
	if (rc)
		goto out;
	for (int l = 0; nope && l < m->hp.n_layer; l++)
		m->layers[l].nope = nope[l] != 0;
	take_maps(&ts, m);

	/* The tokenizer: tokenizer.model (SentencePiece, classic MobileLLM) or,
	 * for byte-level BPE snapshots (MobileLLM-R1), tokenizer.json only;
	 * mllm_tokenizer_load() reads either. */
	p = path_join(dir, "tokenizer.model");
	if (!file_exists(p)) {
		free(p);
		p = path_join(dir, "tokenizer.json");
	}
	if (file_exists(p)) {
		bool add_bos;
		rc = read_add_bos(dir, &add_bos, err, errlen);
		if (!rc)
			rc = mllm_tokenizer_load(p, &m->tok, err, errlen);
		if (!rc)
			mllm_tokenizer_set_add_bos(m->tok, add_bos);
		if (!rc)
			rc = check_tokenizer(m, p, err, errlen);
	}
	free(p);
out:
	free(nope);
	free(where);
	free(cfg);
	mllm__tset_free(&ts);
	return rc;
}

/* ---- GGUF -------------------------------------------------------------- */

/* Optional integer key: absent keeps *out; wrong type is an error. */
static int gguf_int(const mllm__gguf *g, const char *key, bool required, int32_t *out, char *err,
                    size_t errlen)
{
	int rc = mllm__gguf_get_i32(g, key, out);
	if (rc == MLLM_ENOTFOUND && !required)
		return 0;
	if (rc == MLLM_ENOTFOUND)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: missing metadata key %s",
		                    mllm__gguf_path(g), key);
	if (rc)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: metadata key %s has the wrong type or range",
		                    mllm__gguf_path(g), key);
	return 0;
}

static int gguf_float(const mllm__gguf *g, const char *key, float *out, char *err, size_t errlen)
{
	int rc = mllm__gguf_get_f32(g, key, out);
	if (rc == MLLM_ENOTFOUND)
		return 0;
	if (rc)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: metadata key %s has the wrong type", mllm__gguf_path(g),
		                    key);
	return 0;
}

/* "<arch>.<suffix>" in buf. */
static const char *arch_key(char *buf, size_t n, const char *arch, const char *suffix)
{
	snprintf(buf, n, "%s.%s", arch, suffix);
	return buf;
}

/* llama.cpp's converter writes a dense MobileLLM-R1 as architecture llama4:
 * experts 0, attention.sliding_window 0 (every layer full attention with
 * RoPE), Q/K rows in HF order, no key for QK-norm (llama.cpp turns it on
 * for llama4). Without sliding_window llama.cpp assumes Llama-4 Scout's
 * layout (chunked attention, no RoPE on every 4th layer): refused, as are
 * experts. Unlike llama.cpp's graph, RoPE and QK-norm apply to every layer
 * including the last, as transformers' no_rope_layers says. */
static int gguf_llama4(const mllm__gguf *g, mllm_hparams *hp, char *err, size_t errlen)
{
	const char *path = mllm__gguf_path(g);
	int32_t experts = 0, window = -1;
	int rc;

	rc = gguf_int(g, "llama4.expert_count", false, &experts, err, errlen);
	if (!rc)
		rc = gguf_int(g, "llama4.attention.sliding_window", false, &window, err, errlen);
	if (rc)
		return rc;
	if (experts != 0)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: llama4.expert_count %d: mixture-of-experts layers are not "
		                    "implemented (dense models only, expert_count 0)",
		                    path, experts);
	if (window < 0)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: llama4.attention.sliding_window is missing, which means "
		                    "chunked attention and no RoPE on every 4th layer (Llama 4 "
		                    "Scout's layout); only sliding_window = 0 is implemented",
		                    path);
	if (window != 0)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: llama4.attention.sliding_window %d: chunked attention is "
		                    "not implemented (only 0)",
		                    path, window);
	hp->qk_norm = true;
	hp->n_nope = 0;
	/* tokenizer.ggml.eos_token_id names 128001 only; a Llama-3 vocabulary
	 * also ends turns with <|eot_id|> 128009 and 128008 (<|eom_id|>), as
	 * the models' config.json eos_token_id lists. */
	{
		int32_t id;
		const char *s;
		size_t l;
		if (mllm__gguf_get_i32(g, "tokenizer.ggml.eot_token_id", &id) == 0)
			eos_add(hp, id);
		if (mllm__gguf_get_i32(g, "tokenizer.ggml.eom_token_id", &id) == 0)
			eos_add(hp, id);
		if (mllm__gguf_get_arr_str(g, "tokenizer.ggml.tokens", 128009, &s, &l) == 0 &&
		    l == 10 && memcmp(s, "<|eot_id|>", 10) == 0) {
			eos_add(hp, 128008);
			eos_add(hp, 128009);
		}
	}
	return 0;
}

static int open_gguf(mllm_model *m, const char *path, char *err, size_t errlen)
{
	mllm_hparams *hp = &m->hp;
	mllm__gguf *g = NULL;
	mllm__tset ts;
	const char *arch;
	size_t arch_len;
	int32_t rope_dims = -1, kl, eos = -1;
	char a[16], kb[96];
	void *addr;
	size_t size;
	int rc, file;

	mllm__tset_init(&ts);
	rc = mllm__gguf_open(path, &g, err, errlen);
	if (rc)
		return rc;
	rc = mllm__gguf_get_str(g, "general.architecture", &arch, &arch_len);
	if (rc) {
		rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
		                  "%s: missing metadata key general.architecture", path);
		goto out;
	}
	if (!(arch_len == 5 && memcmp(arch, "llama", 5) == 0) &&
	    !(arch_len == 6 && memcmp(arch, "llama4", 6) == 0)) {
		rc = mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                  "%s: architecture \"%.*s\" is not supported (llama, llama4)",
		                  path, (int)(arch_len > 40 ? 40 : arch_len), arch);
		goto out;
	}
	snprintf(a, sizeof a, "%.*s", (int)arch_len, arch);
	snprintf(hp->arch, sizeof hp->arch, "%s", arch_len == 6 ? "llama4_text" : "llama");
	snprintf(hp->format, sizeof hp->format, "gguf");
	hp->norm_eps = 1e-5f;
	hp->rope_theta = 10000.0f;
	hp->n_ctx_train = 2048;
	hp->n_vocab = -1;
	hp->bos_id = -1;
	hp->eos_id = -1;
	rc =
	    gguf_int(g, arch_key(kb, sizeof kb, a, "block_count"), true, &hp->n_layer, err, errlen);
	if (!rc)
		rc = gguf_int(g, arch_key(kb, sizeof kb, a, "embedding_length"), true, &hp->n_embd,
		              err, errlen);
	if (!rc)
		rc = gguf_int(g, arch_key(kb, sizeof kb, a, "feed_forward_length"), true, &hp->n_ff,
		              err, errlen);
	if (!rc)
		rc = gguf_int(g, arch_key(kb, sizeof kb, a, "attention.head_count"), true,
		              &hp->n_head, err, errlen);
	if (rc)
		goto out;
	hp->n_head_kv = hp->n_head;
	hp->head_dim = hp->n_head > 0 ? hp->n_embd / hp->n_head : 0;
	rc = gguf_int(g, arch_key(kb, sizeof kb, a, "attention.head_count_kv"), false,
	              &hp->n_head_kv, err, errlen);
	if (!rc)
		rc = gguf_int(g, arch_key(kb, sizeof kb, a, "attention.key_length"), false,
		              &hp->head_dim, err, errlen);
	if (!rc)
		rc = gguf_int(g, arch_key(kb, sizeof kb, a, "context_length"), false,
		              &hp->n_ctx_train, err, errlen);
	if (!rc)
		rc = gguf_int(g, arch_key(kb, sizeof kb, a, "vocab_size"), false, &hp->n_vocab, err,
		              errlen);
	if (!rc)
		rc = gguf_int(g, "tokenizer.ggml.bos_token_id", false, &hp->bos_id, err, errlen);
	if (!rc)
		rc = gguf_int(g, "tokenizer.ggml.eos_token_id", false, &eos, err, errlen);
	if (!rc)
		rc = gguf_float(g, arch_key(kb, sizeof kb, a, "attention.layer_norm_rms_epsilon"),
		                &hp->norm_eps, err, errlen);
	if (!rc)
		rc = gguf_float(g, arch_key(kb, sizeof kb, a, "rope.freq_base"), &hp->rope_theta,
		                err, errlen);
	if (rc)
		goto out;
	eos_add(hp, eos);
	if (arch_len == 6) {
		rc = gguf_llama4(g, hp, err, errlen);
		if (rc)
			goto out;
	}
	if (hp->n_vocab < 0) {
		const mllm__gguf_tensor *te = mllm__gguf_tensor_find(g, "token_embd.weight");
		hp->n_vocab =
		    te && te->n_dims == 2 && te->ne[1] <= INT32_MAX ? (int32_t)te->ne[1] : 0;
	}
	/* llama: rows permuted by the converter; llama4: HF's own adjacent
	 * pairs, rows as stored. The same RoPE either way. */
	hp->rope_interleaved = true;
	hp->layer_sharing = false;
	/* without key_length, head_dim is n_embd / n_head: it must divide */
	if (mllm__gguf_get_i32(g, arch_key(kb, sizeof kb, a, "attention.key_length"), &kl) ==
	        MLLM_ENOTFOUND &&
	    hp->n_head > 0 && hp->n_embd % hp->n_head != 0) {
		rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
		                  "%s: embedding length %d is not a multiple of %d heads "
		                  "(inconsistent metadata)",
		                  path, hp->n_embd, hp->n_head);
		goto out;
	}
	rc = gguf_int(g, arch_key(kb, sizeof kb, a, "rope.dimension_count"), false, &rope_dims, err,
	              errlen);
	if (rc)
		goto out;
	rc = check_hparams(hp, path, err, errlen);
	if (rc)
		goto out;
	if (rope_dims >= 0 && rope_dims != hp->head_dim) {
		rc = mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                  "%s: partial RoPE (%d of %d dims) is not supported", path,
		                  rope_dims, hp->head_dim);
		goto out;
	}

	file = mllm__tset_add_file(&ts, path);
	for (size_t i = 0; i < mllm__gguf_n_tensors(g); i++) {
		const mllm__gguf_tensor *gt = mllm__gguf_tensor_at(g, i);
		mllm__ltensor *t = mllm__tset_add(&ts, gt->name, strlen(gt->name), file);
		t->dtype = gt->dtype;
		t->n_dims = gt->n_dims;
		for (int d = 0; d < gt->n_dims; d++)
			t->shape[d] = gt->ne[gt->n_dims - 1 - d];
		t->data = gt->data;
		t->nbytes = gt->nbytes;
		snprintf(t->type_name, sizeof t->type_name, "%s",
		         mllm__gguf_type_name(gt->ggml_type));
	}
	rc = mllm__tset_index(&ts, err, errlen);
	if (rc)
		goto out;
	rc = bind_all(m, &ts, &gguf_names, path, -1, err, errlen);
	if (rc)
		goto out;
	mllm__gguf_release_mapping(g, &addr, &size);
	if (addr)
		mllm__model_add_mapping(m, addr, size);
	{
		const char *tm;
		size_t tl;
		/* "llama" is SentencePiece, "gpt2" the Llama-3 byte-level BPE
		 * (tokenizer.ggml.pre llama-bpe / smaug-bpe); a file without
		 * tokenizer metadata opens without a tokenizer. */
		if (mllm__gguf_get_str(g, "tokenizer.ggml.model", &tm, &tl) == 0) {
			rc = mllm__tokenizer_from_gguf(g, &m->tok, err, errlen);
			if (!rc)
				rc = check_tokenizer(m, path, err, errlen);
		}
		if (!rc && mllm__gguf_get_str(g, "tokenizer.chat_template", &tm, &tl) == 0)
			m->chat_template = xstrndup(tm, tl);
	}
out:
	mllm__tset_free(&ts);
	mllm__gguf_close(g);
	return rc;
}

/* ---- Open -------------------------------------------------------------- */

static bool names_snapshot_file(const char *path)
{
	static const char *const names[] = {"config.json", "model.safetensors",
	                                    "model.safetensors.index.json", "pytorch_model.bin"};
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(base, names[i]) == 0)
			return true;
	return false;
}

/* Opens m's files at path (mapped, headers parsed and every tensor
 * validated) without preparing the weights for the kernels. */
static int open_files(mllm_model *m, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int rc;

	if (stat(path, &st) != 0)
		return mllm__seterr(err, errlen, errno == ENOENT ? MLLM_ENOTFOUND : MLLM_EIO,
		                    "%s: %s", path, strerror(errno));
	m->path = xstrdup(path);
	if (S_ISDIR(st.st_mode)) {
		rc = open_dir(m, path, err, errlen);
	} else if (S_ISREG(st.st_mode) && names_snapshot_file(path)) {
		/* config.json / model.safetensors / pytorch_model.bin: the
		 * snapshot is the directory that holds it */
		char *dir = xstrdup(path);
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		rc = open_dir(m, slash ? (dir[0] ? dir : "/") : ".", err, errlen);
		free(dir);
	} else if (S_ISREG(st.st_mode)) {
		rc = open_gguf(m, path, err, errlen);
	} else {
		rc = mllm__seterr(err, errlen, MLLM_EINVAL,
		                  "%s: neither a snapshot directory nor a GGUF file", path);
	}
	return rc;
}

int mllm_model_check_ex(const char *path, mllm_hparams *out, bool *has_tokenizer, char *err,
                        size_t errlen)
{
	mllm_model *m;
	int rc;

	if (!path || !*path)
		return mllm__seterr(err, errlen, MLLM_EINVAL, "no model path given");
	m = xcalloc(1, sizeof *m);
	rc = open_files(m, path, err, errlen);
	if (rc == 0 && out)
		*out = m->hp;
	if (rc == 0 && has_tokenizer)
		*has_tokenizer = m->tok != NULL;
	mllm_model_close(m);
	return rc;
}

int mllm_model_check(const char *path, mllm_hparams *out, char *err, size_t errlen)
{
	return mllm_model_check_ex(path, out, NULL, err, errlen);
}

int mllm_model_open(const char *path, const mllm_model_params *params, mllm_model **out, char *err,
                    size_t errlen)
{
	mllm_model_params def = MLLM_MODEL_PARAMS_DEFAULT;
	mllm_model *m;
	int rc;

	*out = NULL;
	if (!path || !*path)
		return mllm__seterr(err, errlen, MLLM_EINVAL, "no model path given");
	if (!params)
		params = &def;
	m = xcalloc(1, sizeof *m);
	m->n_threads = params->n_threads;
	rc = open_files(m, path, err, errlen);
	if (rc)
		goto fail;
	rc = mllm__model_prepare(m, params, err, errlen);
	if (rc)
		goto fail;
	MLLM_LOG(
	    MLLM_LOG_INFO, "%s: %s %s, %d layers%s, dim %d, heads %d/%d, vocab %d, %s, %lld params",
	    path, m->hp.arch, m->hp.format, m->hp.n_layer,
	    m->hp.layer_sharing ? " (each run twice)" : "", m->hp.n_embd, m->hp.n_head,
	    m->hp.n_head_kv, m->hp.n_vocab, mllm_dtype_name(m->hp.wtype), (long long)m->n_params);
	*out = m;
	return 0;
fail:
	mllm_model_close(m);
	return rc;
}
