/*
 * prepare.c — load-time weight preparation (mllm__model_prepare): checks
 * every tensor's shape against the hyper-parameters, converts weights when
 * asked (F32/F16/BF16 to Q8_0/Q4_0 and back), re-lays quantized rows for the
 * AVX-512 kernels (qpack.c) and brings up the kernels and OpenBLAS. It runs
 * once per model, after a loader has filled the tensors and before the model
 * is shared; model.c calls it and nothing here calls back into model.c.
 */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- Weight preparation ------------------------------------------------- */

static bool dtype_ok(mllm_dtype t, int64_t cols)
{
	if (t >= MLLM_DTYPE__COUNT)
		return false;
	if (t == MLLM_DTYPE_Q8_0 || t == MLLM_DTYPE_Q4_0)
		return cols % MLLM__QK == 0;
	return true;
}

static int check_tensor(const mllm__tensor *t, const char *name, int layer, int64_t rows,
                        int64_t cols, char *err, size_t errlen)
{
	if (!t->data)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "tensor %s (layer %d) is missing",
		                    name, layer);
	if (t->rows != rows || t->cols != cols)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "tensor %s (layer %d) is [%lld, %lld], expected [%lld, %lld]",
		                    name, layer, (long long)t->rows, (long long)t->cols,
		                    (long long)rows, (long long)cols);
	if (!dtype_ok(t->dtype, cols))
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "tensor %s (layer %d): type %s not supported for %lld columns",
		                    name, layer, mllm_dtype_name(t->dtype), (long long)cols);
	return 0;
}

static int check_norm(const mllm__tensor *t, const char *name, int layer, int64_t n, char *err,
                      size_t errlen)
{
	int rc = check_tensor(t, name, layer, 1, n, err, errlen);
	if (rc)
		return rc;
	if (t->dtype != MLLM_DTYPE_F32)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "norm %s (layer %d) is not F32",
		                    name, layer);
	return 0;
}

/* Q4_0 as GGML defines it: d = (value of largest magnitude) / -8. */
static void quantize_q4_0(const float *x, int64_t n, mllm__block_q4_0 *out)
{
	for (int64_t b = 0; b < n / MLLM__QK; b++) {
		const float *v = x + b * MLLM__QK;
		float amax = 0.0f, mx = 0.0f;
		for (int j = 0; j < MLLM__QK; j++) {
			if (fabsf(v[j]) > amax) {
				amax = fabsf(v[j]);
				mx = v[j];
			}
		}
		float d = mx / -8.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		out[b].d = mllm__f32_to_f16(d);
		for (int j = 0; j < 16; j++) {
			int q0 = (int)(v[j] * id + 8.5f), q1 = (int)(v[j + 16] * id + 8.5f);
			q0 = q0 > 15 ? 15 : q0;
			q1 = q1 > 15 ? 15 : q1;
			out[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
		}
	}
}

static size_t tensor_bytes(const mllm__tensor *t)
{
	return mllm__row_bytes(t->dtype, t->cols) * (size_t)t->rows;
}

/* After a conversion the file's copy of a tensor is dead weight in RSS:
 * hand the whole pages inside it back (a read-only private file mapping
 * simply re-faults from the file if anyone ever looks again). */
static void release_source(const mllm_model *m, const mllm__tensor *t)
{
	uintptr_t a = (uintptr_t)t->data;
	uintptr_t e = a + tensor_bytes(t);
	long pg = sysconf(_SC_PAGESIZE);
	if (pg <= 0)
		return;
	for (int i = 0; i < m->n_maps; i++) {
		uintptr_t ma = (uintptr_t)m->maps[i].addr;
		if (a < ma || e > ma + m->maps[i].size)
			continue;
		uintptr_t pa = (a + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
		uintptr_t pe = e & ~((uintptr_t)pg - 1);
		if (pe > pa)
			(void)madvise((void *)pa, pe - pa, MADV_DONTNEED);
		return;
	}
}

/* Re-encodes a weight to dtype `to` into an owned buffer. Rows go through
 * f32 one at a time (the scratch row is the only temporary). */
static int convert_tensor(mllm_model *m, mllm__tensor *t, mllm_dtype to)
{
	if (t->dtype == to || !dtype_ok(to, t->cols))
		return 0;
	size_t rb = mllm__row_bytes(to, t->cols), total;
	if (mllm__mul_overflow(rb, (size_t)t->rows, &total))
		return MLLM_ERANGE;
	uint8_t *buf = mllm__try_malloc64(total);
	float *row = mllm_try_malloc((size_t)t->cols * sizeof(float));
	if (!buf || !row) {
		free(buf);
		free(row);
		return MLLM_ENOMEM;
	}
	for (int64_t r = 0; r < t->rows; r++) {
		uint8_t *o = buf + (size_t)r * rb;
		mllm__dequant_rows(t, r, r + 1, row);
		switch (to) {
		case MLLM_DTYPE_F32:
			memcpy(o, row, rb);
			break;
		case MLLM_DTYPE_F16:
			mllm__f32_to_f16_row(row, (uint16_t *)o, t->cols);
			break;
		case MLLM_DTYPE_BF16:
			for (int64_t c = 0; c < t->cols; c++) {
				uint32_t u;
				memcpy(&u, &row[c], 4);
				u = (u + 0x7fff + ((u >> 16) & 1)) >> 16;
				((uint16_t *)o)[c] = (uint16_t)u;
			}
			break;
		case MLLM_DTYPE_Q8_0:
			mllm__quantize_q8_0(row, t->cols, (mllm__block_q8_0 *)o);
			break;
		case MLLM_DTYPE_Q4_0:
			quantize_q4_0(row, t->cols, (mllm__block_q4_0 *)o);
			break;
		default:
			break;
		}
	}
	free(row);
	release_source(m, t);
	mllm__model_own(m, buf);
	t->data = buf;
	t->dtype = to;
	return 0;
}

/* Re-lays a Q8_0 / Q4_0 weight in the interleaved layout of the AVX-512
 * kernels (qpack.c), or with r16 across 16 rows (qr16.c); with fr16 an
 * F32 / F16 / BF16 one across 16 rows (fr16.c).
 * Owned buffers (converted at load) are repacked in place a row (a group
 * of 16) at a time; a mapped file's tensor is copied out. */
static int pack_tensor(mllm_model *m, mllm__tensor *t, bool r16, bool fr16)
{
	if (t->layout != MLLM__LAYOUT_GGUF)
		return 0;
	fr16 = fr16 && mllm__fr16_packable(t->dtype, t->rows, t->cols);
	r16 = !fr16 && r16 && mllm__qr16_packable(t->dtype, t->rows, t->cols);
	if (!fr16 && !r16 && !mllm__qx_packable(t->dtype, t->cols))
		return 0;
	size_t rb = mllm__row_bytes(t->dtype, t->cols), total;
	if (mllm__mul_overflow(rb, (size_t)t->rows, &total))
		return MLLM_ERANGE;
	bool owned = false;
	for (int i = 0; i < m->n_owned && !owned; i++)
		owned = m->owned[i] == t->data;
	int64_t step = r16 || fr16 ? 16 : 1;
	uint8_t *row = mllm_try_malloc(rb * (size_t)step);
	uint8_t *buf = owned ? (uint8_t *)(uintptr_t)t->data : mllm__try_malloc64(total);
	if (!row || !buf) {
		free(row);
		if (!owned)
			free(buf);
		return MLLM_ENOMEM;
	}
	for (int64_t r = 0; r < t->rows; r += step) {
		memcpy(row, (const uint8_t *)t->data + (size_t)r * rb, rb * (size_t)step);
		if (fr16)
			mllm__fr16_pack_group(t->dtype, row, t->cols, buf + (size_t)r * rb);
		else if (r16)
			mllm__qr16_pack_group(t->dtype, row, t->cols, buf + (size_t)r * rb);
		else
			mllm__qx_pack_row(t->dtype, row, t->cols, buf + (size_t)r * rb);
	}
	free(row);
	if (!owned) {
		release_source(m, t);
		mllm__model_own(m, buf);
		t->data = buf;
	}
	t->layout = fr16 ? MLLM__LAYOUT_FR16 : r16 ? MLLM__LAYOUT_R16 : MLLM__LAYOUT_X16;
	return 0;
}

static bool quant_layout(mllm__layout l)
{
	return l == MLLM__LAYOUT_X16 || l == MLLM__LAYOUT_R16;
}

static int pack_weights(mllm_model *m, bool act8)
{
	bool shared = m->output.data == m->tok_embd.data;
	/* Q8_0 / Q4_0 with 8-bit activations on AVX-512 VNNI or AVX2: across
	 * rows (qr16.c); MLLM_R16=0 keeps x16 (A/B runs). */
	const char *e = getenv("MLLM_R16");
	bool r16 = act8 && mllm__cpu_isa() != MLLM__ISA_SCALAR && !(e && strcmp(e, "0") == 0);
	/* F32 / F16 / BF16 across 16 rows (fr16.c); MLLM_FR16=0 keeps the
	 * file's rows (A/B runs). */
	const char *f = getenv("MLLM_FR16");
	bool fr16 = !(f && strcmp(f, "0") == 0);
	/* A token embedding of its own is only ever looked up a row at a
	 * time: it keeps the file's rows (and its pages in the page cache). */
	int rc = 0;
	if (shared) {
		rc = pack_tensor(m, &m->tok_embd, r16, fr16);
		m->output = m->tok_embd;
	} else {
		rc = pack_tensor(m, &m->output, r16, fr16);
	}
	for (int l = 0; l < m->hp.n_layer && !rc; l++) {
		mllm__layer *ly = &m->layers[l];
		mllm__tensor *ts[] = {&ly->wq,     &ly->wk,   &ly->wv,    &ly->wo,
		                      &ly->w_gate, &ly->w_up, &ly->w_down};
		for (size_t i = 0; i < sizeof ts / sizeof ts[0] && !rc; i++)
			rc = pack_tensor(m, ts[i], r16, fr16);
		for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
			ts[i]->act8 = act8 && quant_layout(ts[i]->layout);
	}
	m->output.act8 = act8 && quant_layout(m->output.layout);
	mllm__layout lo = m->output.layout;
	if (!rc && lo != MLLM__LAYOUT_GGUF)
		MLLM_LOG(MLLM_LOG_INFO, "%s: %s for the %s kernels", m->path,
		         lo == MLLM__LAYOUT_FR16  ? "float weights laid across 16 rows"
		         : lo == MLLM__LAYOUT_R16 ? "quantized weights interleaved across rows"
		                                  : "quantized weights interleaved",
		         mllm__isa_name(mllm__cpu_isa()));
	return rc;
}

int mllm__model_prepare(mllm_model *m, const mllm_model_params *p, char *err, size_t errlen)
{
	mllm_hparams *hp = &m->hp;
	int rc;

	/* 1. Hyper-parameters the kernels rely on. */
	if (hp->n_layer <= 0 || hp->n_embd <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 ||
	    hp->head_dim <= 0 || hp->n_ff <= 0 || hp->n_vocab <= 0 || hp->n_ctx_train <= 0)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: bad model dimensions", m->path);
	if (hp->n_head % hp->n_head_kv != 0 || hp->head_dim % 2 != 0)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: %d heads over %d kv heads, head dim %d: not supported",
		                    m->path, hp->n_head, hp->n_head_kv, hp->head_dim);
	if (hp->n_ctx_train > (1 << 20))
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED, "%s: context %d too large",
		                    m->path, hp->n_ctx_train);

	/* 2. Every tensor's shape and type. */
	int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim;
	int64_t KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;
	if ((rc = check_tensor(&m->tok_embd, "token embedding", -1, hp->n_vocab, E, err, errlen)))
		return rc;
	if ((rc = check_tensor(&m->output, "output", -1, hp->n_vocab, E, err, errlen)))
		return rc;
	if ((rc = check_norm(&m->output_norm, "output norm", -1, E, err, errlen)))
		return rc;
	if (!m->layers)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: no layers", m->path);
	for (int l = 0; l < hp->n_layer; l++) {
		mllm__layer *ly = &m->layers[l];
		if ((rc = check_norm(&ly->attn_norm, "attn_norm", l, E, err, errlen)) ||
		    (rc = check_norm(&ly->ffn_norm, "ffn_norm", l, E, err, errlen)) ||
		    (rc = check_tensor(&ly->wq, "wq", l, Q, E, err, errlen)) ||
		    (rc = check_tensor(&ly->wk, "wk", l, KV, E, err, errlen)) ||
		    (rc = check_tensor(&ly->wv, "wv", l, KV, E, err, errlen)) ||
		    (rc = check_tensor(&ly->wo, "wo", l, E, Q, err, errlen)) ||
		    (rc = check_tensor(&ly->w_gate, "w_gate", l, F, E, err, errlen)) ||
		    (rc = check_tensor(&ly->w_up, "w_up", l, F, E, err, errlen)) ||
		    (rc = check_tensor(&ly->w_down, "w_down", l, E, F, err, errlen)))
			return rc;
	}

	/* 3. Optional conversion at load (e.g. to Q8_0 for decode speed). The
	 * shared embedding is converted once and both names point at it. */
	mllm_dtype to = p ? p->convert_to : MLLM_DTYPE__COUNT;
	if (to < MLLM_DTYPE__COUNT) {
		bool shared = m->output.data == m->tok_embd.data;
		rc = convert_tensor(m, &m->tok_embd, to);
		if (!rc && shared)
			m->output = m->tok_embd;
		else if (!rc)
			rc = convert_tensor(m, &m->output, to);
		for (int l = 0; l < hp->n_layer && !rc; l++) {
			mllm__layer *ly = &m->layers[l];
			mllm__tensor *ts[] = {&ly->wq,     &ly->wk,   &ly->wv,    &ly->wo,
			                      &ly->w_gate, &ly->w_up, &ly->w_down};
			for (size_t i = 0; i < sizeof ts / sizeof ts[0] && !rc; i++)
				rc = convert_tensor(m, ts[i], to);
		}
		if (rc)
			return mllm__seterr(err, errlen, rc, "%s: converting weights to %s: %s",
			                    m->path, mllm_dtype_name(to), mllm_strerror(rc));
		size_t wb = tensor_bytes(&m->tok_embd) + tensor_bytes(&m->output_norm);
		if (!shared)
			wb += tensor_bytes(&m->output);
		for (int l = 0; l < hp->n_layer; l++) {
			mllm__layer *ly = &m->layers[l];
			wb += tensor_bytes(&ly->attn_norm) + tensor_bytes(&ly->ffn_norm) +
			      tensor_bytes(&ly->wq) + tensor_bytes(&ly->wk) +
			      tensor_bytes(&ly->wv) + tensor_bytes(&ly->wo) +
			      tensor_bytes(&ly->w_gate) + tensor_bytes(&ly->w_up) +
			      tensor_bytes(&ly->w_down);
		}
		m->weight_bytes = wb;
		hp->wtype = to;
		MLLM_LOG(MLLM_LOG_INFO, "%s: weights converted to %s at load (%.1f MiB)", m->path,
		         mllm_dtype_name(to), (double)wb / 1048576.0);
	}

	/* 4. Weights take the layouts of the AVX-512 or AVX2 kernels where
	 * those run (decided by the same mllm__cpu_isa() as every context;
	 * the scalar reference reads them too): quantized ones interleaved,
	 * float ones across 16 rows. */
	const char *qx = getenv("MLLM_X16"); /* "0": keep the file's layouts (A/B runs) */
	bool pack = mllm__cpu_isa() != MLLM__ISA_SCALAR && !(qx && strcmp(qx, "0") == 0);
	if (pack && (rc = pack_weights(m, !p->act16)))
		return mllm__seterr(err, errlen, rc, "%s: re-laying weights: %s", m->path,
		                    mllm_strerror(rc));

	/* 5. Pick kernels (and bring up OpenBLAS where MLLM_BLAS_MIN_ROWS
	 * asks for it), so the log says what is in use before the first
	 * request. */
	MLLM_LOG(MLLM_LOG_INFO, "forward: %s", mllm_cpu_describe());
	return 0;
}
