/*
 * model.h — loading a checkpoint into an immutable mllm_model.
 * Part of the public API (included through mllm.h).
 *
 * One loader interface for every format a MobileLLM user has: a Hugging Face
 * snapshot directory (config.json + model.safetensors, sharded safetensors or
 * pytorch_model.bin) or a single .gguf file. Weights are mmapped read-only and
 * laid out for the kernels once, at load. A model is immutable after open and
 * may be shared by any number of threads.
 */
#ifndef MLLM_MODEL_H
#define MLLM_MODEL_H

#include "mllm_core.h"
#include "tokenizer.h"

typedef struct mllm_model mllm_model;

typedef enum {
	MLLM_DTYPE_F32 = 0,
	MLLM_DTYPE_F16,
	MLLM_DTYPE_BF16,
	MLLM_DTYPE_Q8_0, /* GGUF block of 32: f16 scale + 32 int8 */
	MLLM_DTYPE_Q4_0, /* GGUF block of 32: f16 scale + 16 bytes of nibbles */
	MLLM_DTYPE__COUNT
} mllm_dtype;

const char *mllm_dtype_name(mllm_dtype t);

/* End-of-generation ids a model may declare (MobileLLM-R1: 3). */
#define MLLM_EOS_MAX 8

/* Hyper-parameters, as read from config.json or GGUF metadata. */
typedef struct {
	int32_t n_layer; /* stored blocks (layer runs = 2x with sharing) */
	int32_t n_embd;  /* hidden_size */
	int32_t n_head;
	int32_t n_head_kv;
	int32_t head_dim;
	int32_t n_ff; /* intermediate_size (llama4_text: intermediate_size_mlp) */
	int32_t n_vocab;
	int32_t n_ctx_train; /* max_position_embeddings */
	float norm_eps;
	float rope_theta;
	bool layer_sharing;    /* each block runs twice in a row */
	bool rope_interleaved; /* pairs (2i, 2i+1) (GGUF-permuted Q/K); else
	                        * HF rotate_half pairs (i, i + d/2) */
	bool shared_output;    /* logits use the token embedding matrix */
	/* llama4_text (MobileLLM-R1). qk_norm: a weightless RMS norm over each
	 * head of q and k after RoPE, on RoPE layers only. n_nope: layers
	 * without RoPE (which layers: the model's own per-layer flags); on
	 * them, with attn_temp_tuning, q is scaled by
	 * 1 + attn_temp_scale * log(1 + floor((pos + 1) / attn_temp_floor)). */
	bool qk_norm;
	bool attn_temp_tuning;
	float attn_temp_scale, attn_temp_floor;
	int32_t n_nope;
	int32_t bos_id;
	int32_t eos_id;                /* the first of eos_ids, or -1 */
	int32_t eos_ids[MLLM_EOS_MAX]; /* every id that ends generation */
	int32_t n_eos;
	mllm_dtype wtype; /* dominant weight type in the file */
	char arch[32];    /* "mobilellm", "llama" or "llama4_text" */
	char format[16];  /* "safetensors", "pytorch", "gguf" */
} mllm_hparams;

typedef struct {
	int n_threads; /* threads the kernels may use; 0 = physical cores */
	bool use_mmap; /* default true; false is accepted and currently
	                * behaves the same (weights are always mapped) */
	/* Convert weights at load (e.g. to Q8_0 for speed), done by
	 * mllm__model_prepare() in prepare.c; MLLM_DTYPE__COUNT keeps the
	 * file's types. */
	mllm_dtype convert_to;
	/* Q4_0 / Q8_0: keep 16-bit activations where a kernel would quantize
	 * them to int8 (AVX2, AVX-512 VNNI; default false: int8, README
	 * "Accuracy"). */
	bool act16;
} mllm_model_params;

#define MLLM_MODEL_PARAMS_DEFAULT                                                                  \
	((mllm_model_params){.n_threads = 0, .use_mmap = true, .convert_to = MLLM_DTYPE__COUNT})

/* Opens a snapshot directory or a .gguf file (a path to a file inside a
 * snapshot — config.json, model.safetensors, its index, pytorch_model.bin —
 * opens that directory). The tokenizer is loaded from
 * tokenizer.model beside the weights or from GGUF metadata; a model without
 * one still opens (mllm_model_tokenizer() returns NULL). Every offset and size
 * is validated; errors name the file and the problem. */
int mllm_model_open(const char *path, const mllm_model_params *params, mllm_model **out, char *err,
                    size_t errlen) MLLM_WUR;
void mllm_model_close(mllm_model *m);
/* What mllm_model_open() checks of the files at path — format, headers,
 * config, every tensor's offset, size and shape, the tokenizer — without
 * preparing the weights (mapped, not read): 0 and *out (may be NULL) filled,
 * or the error open would give. For --check-config. */
int mllm_model_check(const char *path, mllm_hparams *out, char *err, size_t errlen) MLLM_WUR;
/* The same, and whether the files hold a tokenizer (a checkpoint may open
 * without one; the server refuses it). */
int mllm_model_check_ex(const char *path, mllm_hparams *out, bool *has_tokenizer, char *err,
                        size_t errlen) MLLM_WUR;

const mllm_hparams *mllm_model_hparams(const mllm_model *m);
const mllm_tokenizer *mllm_model_tokenizer(const mllm_model *m);
/* True when id is one of hp->eos_ids[] (any of them ends generation). */
bool mllm_hparams_is_eos(const mllm_hparams *hp, int32_t id);
/* Parameter count and bytes of weights resident. */
int64_t mllm_model_n_params(const mllm_model *m);
/* The chat template a GGUF file carries (tokenizer.chat_template, Jinja
 * source, NUL-terminated, owned by the model), or NULL (none, or a snapshot:
 * those keep theirs in tokenizer_config.json, which the server reads). */
const char *mllm_model_chat_template(const mllm_model *m);
size_t mllm_model_weight_bytes(const mllm_model *m);
/* The path the model was opened from (names it in log lines). */
const char *mllm_model_path(const mllm_model *m);

#endif
