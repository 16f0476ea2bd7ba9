/*
 * weights.h — the internal layout of a loaded model (engine-only).
 *
 * The loaders (safetensors.c, pytorch.c, gguf.c via model.c) fill these
 * tensors with pointers into read-only mappings; mllm__model_prepare()
 * (prepare.c) may then re-lay weights for the kernels, keeping the owned
 * copies in `owned`. After mllm_model_open() returns, nothing here changes.
 */
#ifndef MLLM_WEIGHTS_H
#define MLLM_WEIGHTS_H

#include "base.h"
#include "model.h"
#include "tokenizer.h"

/* How a weight's rows are laid out: as in GGUF, or re-laid for the SIMD
 * kernels at load (qpack.c, qr16.c, fr16.c; same size). */
typedef enum {
	MLLM__LAYOUT_GGUF = 0,
	MLLM__LAYOUT_X16,
	MLLM__LAYOUT_R16,  /* Q8_0/Q4_0 across 16 rows, 8-bit activations (qr16.c) */
	MLLM__LAYOUT_FR16, /* F32/F16/BF16 across 16 rows, [cols][16] (fr16.c) */
} mllm__layout;

/* A 2-D weight [rows, cols] (rows = output dim, cols = input dim, row-major,
 * the PyTorch nn.Linear layout), or 1-D [1, cols]. Quantized types store
 * rows * cols / 32 blocks, row by row. */
typedef struct {
	mllm_dtype dtype;
	int64_t rows, cols;
	const void *data;
	mllm__layout layout; /* GGUF unless repacked by mllm__model_prepare */
	bool act8;           /* X16: activations quantized to int8 where a byte
	                      * kernel runs (mllm__matmul_act: Q4_0 on AVX2 and
	                      * AVX-512 VNNI, Q8_0 on AVX-512 VNNI) */
} mllm__tensor;

typedef struct {
	mllm__tensor attn_norm; /* [1, n_embd], F32 after load */
	mllm__tensor wq;        /* [n_head * head_dim, n_embd] */
	mllm__tensor wk;        /* [n_head_kv * head_dim, n_embd] */
	mllm__tensor wv;        /* [n_head_kv * head_dim, n_embd] */
	mllm__tensor wo;        /* [n_embd, n_head * head_dim] */
	mllm__tensor ffn_norm;  /* [1, n_embd], F32 after load */
	mllm__tensor w_gate;    /* [n_ff, n_embd] */
	mllm__tensor w_up;      /* [n_ff, n_embd] */
	mllm__tensor w_down;    /* [n_embd, n_ff] */
	bool nope;              /* llama4_text NoPE layer: no RoPE, no QK-norm,
	                         * temperature tuning if hp.attn_temp_tuning */
} mllm__layer;

typedef struct {
	void *addr;
	size_t size;
} mllm__mapping;

struct mllm_model {
	mllm_hparams hp;
	mllm__tensor tok_embd;    /* [n_vocab, n_embd] */
	mllm__tensor output;      /* [n_vocab, n_embd]; == tok_embd if shared */
	mllm__tensor output_norm; /* [1, n_embd], F32 after load */
	mllm__layer *layers;      /* [hp.n_layer] stored blocks */

	mllm_tokenizer *tok; /* owned; NULL if the checkpoint has none */
	int n_threads;       /* default worker count for contexts */
	int64_t n_params;
	size_t weight_bytes;

	/* Storage released by mllm_model_close(). */
	mllm__mapping *maps;
	int n_maps;
	void **owned; /* buffers from xmalloc (converted tensors) */
	int n_owned;
	char *path;
	char *chat_template; /* GGUF tokenizer.chat_template (owned), or NULL */
};

/* weights.c: registers an owned buffer / a mapping with the model (freed
 * at close). */
void mllm__model_own(mllm_model *m, void *buf);
void mllm__model_add_mapping(mllm_model *m, void *addr, size_t size);

/* Implemented by prepare.c: re-lays weights for the kernels and checks every
 * tensor's shape against hp. Called once by mllm_model_open() after a loader
 * has filled the tensors. */
int mllm__model_prepare(mllm_model *m, const mllm_model_params *p, char *err, size_t errlen);

#endif
