/*
 * gguf.c — the GGUF reader behind gguf.h. The header is walked once at open
 * with a bounds-checked cursor: every length is compared with what is left
 * of the file before use, and every count with the least bytes its items
 * need before anything is allocated for them, so a hostile header cannot
 * make us allocate much more than the file's own size. After open the index
 * is immutable and lookups are plain reads of the read-only mapping.
 */
#include "gguf.h"
#include "loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define GGUF_NAME_MAX      256 /* tensor names (ggml uses 64) */
#define GGUF_KEY_MAX       65535
#define GGUF_MAX_DIMS      4
#define GGUF_ARR_DEPTH     3 /* arrays of arrays of ... */
#define GGUF_DEFAULT_ALIGN 32

typedef struct {
	const char *key;
	size_t key_len;
	int type;
	const uint8_t *val; /* scalar payload / first array element */
	int elem_type;      /* arrays */
	uint64_t n;         /* arrays: element count */
	uint64_t *str_offs; /* string arrays: offset of each element's length */
} gguf_kv;

struct mllm__gguf {
	char *path;
	const uint8_t *map;
	size_t size;
	bool own_map;
	uint32_t version, alignment;
	gguf_kv *kv;
	size_t n_kv;
	mllm__gguf_tensor *t;
	size_t n_t;
	size_t data_off;
};

typedef struct {
	const uint8_t *p;
	size_t size, pos;
	const char *path;
	char *err;
	size_t errlen;
} cursor;

/* ---- GGML types ------------------------------------------------------- */

typedef struct {
	const char *name;
	uint32_t blck;  /* elements per block (0: unknown id) */
	uint32_t bytes; /* bytes per block */
	mllm_dtype dtype;
} ggml_type_info;

static const ggml_type_info ggml_types[] = {
    [0] = {"F32", 1, 4, MLLM_DTYPE_F32},
    [1] = {"F16", 1, 2, MLLM_DTYPE_F16},
    [2] = {"Q4_0", 32, 18, MLLM_DTYPE_Q4_0},
    [3] = {"Q4_1", 32, 20, MLLM_DTYPE__COUNT},
    [6] = {"Q5_0", 32, 22, MLLM_DTYPE__COUNT},
    [7] = {"Q5_1", 32, 24, MLLM_DTYPE__COUNT},
    [8] = {"Q8_0", 32, 34, MLLM_DTYPE_Q8_0},
    [9] = {"Q8_1", 32, 36, MLLM_DTYPE__COUNT},
    [10] = {"Q2_K", 256, 84, MLLM_DTYPE__COUNT},
    [11] = {"Q3_K", 256, 110, MLLM_DTYPE__COUNT},
    [12] = {"Q4_K", 256, 144, MLLM_DTYPE__COUNT},
    [13] = {"Q5_K", 256, 176, MLLM_DTYPE__COUNT},
    [14] = {"Q6_K", 256, 210, MLLM_DTYPE__COUNT},
    [15] = {"Q8_K", 256, 292, MLLM_DTYPE__COUNT},
    [16] = {"IQ2_XXS", 256, 66, MLLM_DTYPE__COUNT},
    [17] = {"IQ2_XS", 256, 74, MLLM_DTYPE__COUNT},
    [18] = {"IQ3_XXS", 256, 98, MLLM_DTYPE__COUNT},
    [19] = {"IQ1_S", 256, 50, MLLM_DTYPE__COUNT},
    [20] = {"IQ4_NL", 32, 18, MLLM_DTYPE__COUNT},
    [21] = {"IQ3_S", 256, 110, MLLM_DTYPE__COUNT},
    [22] = {"IQ2_S", 256, 82, MLLM_DTYPE__COUNT},
    [23] = {"IQ4_XS", 256, 136, MLLM_DTYPE__COUNT},
    [24] = {"I8", 1, 1, MLLM_DTYPE__COUNT},
    [25] = {"I16", 1, 2, MLLM_DTYPE__COUNT},
    [26] = {"I32", 1, 4, MLLM_DTYPE__COUNT},
    [27] = {"I64", 1, 8, MLLM_DTYPE__COUNT},
    [28] = {"F64", 1, 8, MLLM_DTYPE__COUNT},
    [29] = {"IQ1_M", 256, 56, MLLM_DTYPE__COUNT},
    [30] = {"BF16", 1, 2, MLLM_DTYPE_BF16},
    [34] = {"TQ1_0", 256, 54, MLLM_DTYPE__COUNT},
    [35] = {"TQ2_0", 256, 66, MLLM_DTYPE__COUNT},
    [39] = {"MXFP4", 32, 17, MLLM_DTYPE__COUNT},
};

#define N_GGML_TYPES (sizeof ggml_types / sizeof ggml_types[0])

const char *mllm__gguf_type_name(uint32_t t)
{
	if (t < N_GGML_TYPES && ggml_types[t].blck)
		return ggml_types[t].name;
	return "unknown";
}

/* Size in bytes of a scalar metadata type; 0 for string/array/unknown. */
static size_t scalar_size(int t)
{
	switch (t) {
	case MLLM_GGUF_UINT8:
	case MLLM_GGUF_INT8:
	case MLLM_GGUF_BOOL:
		return 1;
	case MLLM_GGUF_UINT16:
	case MLLM_GGUF_INT16:
		return 2;
	case MLLM_GGUF_UINT32:
	case MLLM_GGUF_INT32:
	case MLLM_GGUF_FLOAT32:
		return 4;
	case MLLM_GGUF_UINT64:
	case MLLM_GGUF_INT64:
	case MLLM_GGUF_FLOAT64:
		return 8;
	default:
		return 0;
	}
}

/* ---- Cursor --------------------------------------------------------------- */

static int truncated(cursor *c, const char *what)
{
	return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
	                    "%s: truncated: %s at offset %zu runs past the end of the file (%zu "
	                    "bytes)",
	                    c->path, what, c->pos, c->size);
}

static int need(cursor *c, size_t n, const char *what)
{
	if (n > c->size || c->pos > c->size - n)
		return truncated(c, what);
	return 0;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what)
{
	if (need(c, 4, what))
		return MLLM_EFORMAT;
	memcpy(v, c->p + c->pos, 4);
	c->pos += 4;
	return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what)
{
	if (need(c, 8, what))
		return MLLM_EFORMAT;
	memcpy(v, c->p + c->pos, 8);
	c->pos += 8;
	return 0;
}

static int rd_str(cursor *c, const char **s, size_t *len, size_t max, const char *what)
{
	uint64_t n;

	if (rd_u64(c, &n, what))
		return MLLM_EFORMAT;
	if (n > max)
		return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
		                    "%s: %s at offset %zu has length %llu (limit %zu)", c->path,
		                    what, c->pos - 8, (unsigned long long)n, max);
	if (need(c, (size_t)n, what))
		return MLLM_EFORMAT;
	*s = (const char *)c->p + c->pos;
	*len = (size_t)n;
	c->pos += (size_t)n;
	return 0;
}

/* Skips one value of type t (validating it); depth bounds nested arrays. */
static int skip_value(cursor *c, int t, int depth, const char *key, size_t key_len)
{
	size_t sz = scalar_size(t);
	const char *s;
	size_t len;

	if (sz) {
		if (need(c, sz, "metadata value"))
			return MLLM_EFORMAT;
		if (t == MLLM_GGUF_BOOL && c->p[c->pos] > 1)
			return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
			                    "%s: metadata key %.*s: boolean value %u", c->path,
			                    (int)key_len, key, c->p[c->pos]);
		c->pos += sz;
		return 0;
	}
	if (t == MLLM_GGUF_STRING)
		return rd_str(c, &s, &len, SIZE_MAX, "metadata string");
	if (t == MLLM_GGUF_ARRAY) {
		uint32_t et;
		uint64_t n;
		if (depth >= GGUF_ARR_DEPTH)
			return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
			                    "%s: metadata key %.*s: arrays nested too deep",
			                    c->path, (int)key_len, key);
		if (rd_u32(c, &et, "array type") || rd_u64(c, &n, "array length"))
			return MLLM_EFORMAT;
		sz = scalar_size((int)et);
		if (sz && et != MLLM_GGUF_BOOL) {
			if (n > (c->size - c->pos) / sz)
				return truncated(c, "metadata array");
			c->pos += (size_t)n * sz;
			return 0;
		}
		if (!sz && et != MLLM_GGUF_STRING && et != MLLM_GGUF_ARRAY)
			return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
			                    "%s: metadata key %.*s: unknown array element type %u",
			                    c->path, (int)key_len, key, et);
		/* every element takes at least one byte */
		if (n > c->size - c->pos)
			return truncated(c, "metadata array");
		for (uint64_t i = 0; i < n; i++)
			if (skip_value(c, (int)et, depth + 1, key, key_len))
				return MLLM_EFORMAT;
		return 0;
	}
	return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
	                    "%s: metadata key %.*s: unknown value type %d", c->path, (int)key_len,
	                    key, t);
}

/* ---- Open ----------------------------------------------------------------- */

static const gguf_kv *find_kv(const mllm__gguf *g, const char *key)
{
	size_t kl = strlen(key);
	for (size_t i = 0; i < g->n_kv; i++)
		if (g->kv[i].key_len == kl && memcmp(g->kv[i].key, key, kl) == 0)
			return &g->kv[i];
	return NULL;
}

static int read_kvs(mllm__gguf *g, cursor *c, uint64_t n_kv)
{
	/* a record needs at least 8 (key length) + 4 (type) + 1 bytes */
	if (n_kv > (c->size - c->pos) / 13)
		return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
		                    "%s: metadata count %llu is more than the file can hold",
		                    c->path, (unsigned long long)n_kv);
	g->kv = mllm_try_calloc((size_t)n_kv ? (size_t)n_kv : 1, sizeof *g->kv);
	if (!g->kv)
		return mllm__seterr(c->err, c->errlen, MLLM_ENOMEM, "%s: out of memory", c->path);
	for (uint64_t i = 0; i < n_kv; i++) {
		gguf_kv *kv = &g->kv[i];
		uint32_t t;

		if (rd_str(c, &kv->key, &kv->key_len, GGUF_KEY_MAX, "metadata key") ||
		    rd_u32(c, &t, "metadata type"))
			return MLLM_EFORMAT;
		g->n_kv = (size_t)i + 1;
		kv->type = (int)t;
		if (t == MLLM_GGUF_ARRAY) {
			uint32_t et;
			size_t start = c->pos;
			if (rd_u32(c, &et, "array type") || rd_u64(c, &kv->n, "array length"))
				return MLLM_EFORMAT;
			kv->elem_type = (int)et;
			kv->val = c->p + c->pos;
			if (et == MLLM_GGUF_STRING) {
				/* index each element so lookups are O(1) */
				if (kv->n > (c->size - c->pos) / 8)
					return truncated(c, "string array");
				kv->str_offs =
				    mllm_try_malloc((size_t)kv->n * sizeof(uint64_t) + 1);
				if (!kv->str_offs)
					return mllm__seterr(c->err, c->errlen, MLLM_ENOMEM,
					                    "%s: out of memory", c->path);
				for (uint64_t k = 0; k < kv->n; k++) {
					const char *s;
					size_t len;
					kv->str_offs[k] = c->pos;
					if (rd_str(c, &s, &len, SIZE_MAX, "metadata string"))
						return MLLM_EFORMAT;
				}
				continue;
			}
			c->pos = start;
		} else {
			kv->val = c->p + c->pos;
		}
		if (skip_value(c, (int)t, 0, kv->key, kv->key_len))
			return MLLM_EFORMAT;
	}
	return 0;
}

static int read_tensors(mllm__gguf *g, cursor *c, uint64_t n_t, uint64_t **offs)
{
	/* name length 8 + dims 4 + one ne 8 + type 4 + offset 8 */
	if (n_t > (c->size - c->pos) / 32)
		return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
		                    "%s: tensor count %llu is more than the file can hold", c->path,
		                    (unsigned long long)n_t);
	g->t = mllm_try_calloc((size_t)n_t ? (size_t)n_t : 1, sizeof *g->t);
	*offs = mllm_try_calloc((size_t)n_t ? (size_t)n_t : 1, sizeof **offs);
	if (!g->t || !*offs)
		return mllm__seterr(c->err, c->errlen, MLLM_ENOMEM, "%s: out of memory", c->path);
	for (uint64_t i = 0; i < n_t; i++) {
		mllm__gguf_tensor *t = &g->t[i];
		const ggml_type_info *ti;
		const char *name;
		size_t name_len;
		uint32_t nd, type;
		uint64_t off, numel = 1, nb;

		if (rd_str(c, &name, &name_len, GGUF_NAME_MAX, "tensor name"))
			return MLLM_EFORMAT;
		if (memchr(name, '\0', name_len) || name_len == 0)
			return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
			                    "%s: tensor %llu has an empty or invalid name", c->path,
			                    (unsigned long long)i);
		t->name = xstrndup(name, name_len);
		g->n_t = (size_t)i + 1;
		if (rd_u32(c, &nd, "tensor dimensions"))
			return MLLM_EFORMAT;
		if (nd < 1 || nd > GGUF_MAX_DIMS)
			return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
			                    "%s: tensor %s: %u dimensions (1..%d)", c->path,
			                    t->name, nd, GGUF_MAX_DIMS);
		t->n_dims = (int)nd;
		for (uint32_t d = 0; d < nd; d++) {
			uint64_t ne;
			if (rd_u64(c, &ne, "tensor shape"))
				return MLLM_EFORMAT;
			if (ne > ((uint64_t)1 << 40) || __builtin_mul_overflow(numel, ne, &numel) ||
			    numel > ((uint64_t)1 << 50))
				return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
				                    "%s: tensor %s: shape out of range", c->path,
				                    t->name);
			t->ne[d] = (int64_t)ne;
		}
		for (int d = (int)nd; d < 4; d++)
			t->ne[d] = 1;
		if (rd_u32(c, &type, "tensor type") || rd_u64(c, &off, "tensor offset"))
			return MLLM_EFORMAT;
		if (type >= N_GGML_TYPES || ggml_types[type].blck == 0)
			return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
			                    "%s: tensor %s: unknown GGML type %u", c->path, t->name,
			                    type);
		ti = &ggml_types[type];
		t->ggml_type = type;
		t->dtype = ti->dtype;
		if (t->ne[0] % ti->blck != 0)
			return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
			                    "%s: tensor %s: row of %lld is not a whole number of "
			                    "%s blocks (%u)",
			                    c->path, t->name, (long long)t->ne[0], ti->name,
			                    ti->blck);
		nb = numel / ti->blck * ti->bytes;
		if (nb > SIZE_MAX)
			return mllm__seterr(c->err, c->errlen, MLLM_EFORMAT,
			                    "%s: tensor %s: too large", c->path, t->name);
		t->nbytes = (size_t)nb;
		/* offset is checked once the data section's start is known */
		(*offs)[i] = off;
	}
	return 0;
}

static int cmp_kv(const void *a, const void *b)
{
	const gguf_kv *x = *(const gguf_kv *const *)a, *y = *(const gguf_kv *const *)b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);
	if (c)
		return c;
	return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static int cmp_tensor(const void *a, const void *b)
{
	return strcmp((*(const mllm__gguf_tensor *const *)a)->name,
	              (*(const mllm__gguf_tensor *const *)b)->name);
}

/* Duplicate keys or tensor names make lookups ambiguous: refuse them. Sorting
 * pointers keeps this O(n log n) for hostile counts. */
static int check_unique(const mllm__gguf *g, char *err, size_t errlen)
{
	size_t n = g->n_kv > g->n_t ? g->n_kv : g->n_t;
	const void **v = mllm_try_malloc((n ? n : 1) * sizeof *v);
	int rc = 0;

	if (!v)
		return mllm__seterr(err, errlen, MLLM_ENOMEM, "%s: out of memory", g->path);
	for (size_t i = 0; i < g->n_kv; i++)
		v[i] = &g->kv[i];
	qsort(v, g->n_kv, sizeof *v, cmp_kv);
	for (size_t i = 1; i < g->n_kv && !rc; i++)
		if (cmp_kv(&v[i - 1], &v[i]) == 0) {
			const gguf_kv *kv = v[i];
			rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
			                  "%s: metadata key %.*s appears twice", g->path,
			                  (int)(kv->key_len > 200 ? 200 : kv->key_len), kv->key);
		}
	for (size_t i = 0; i < g->n_t && !rc; i++)
		v[i] = &g->t[i];
	if (!rc)
		qsort(v, g->n_t, sizeof *v, cmp_tensor);
	for (size_t i = 1; i < g->n_t && !rc; i++)
		if (cmp_tensor(&v[i - 1], &v[i]) == 0)
			rc = mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: tensor %s appears twice",
			                  g->path, ((const mllm__gguf_tensor *)v[i])->name);
	free(v);
	return rc;
}

int mllm__gguf_open(const char *path, mllm__gguf **out, char *err, size_t errlen)
{
	mllm__gguf *g;
	cursor c = {0};
	void *addr;
	size_t size, data_size;
	uint64_t n_t, n_kv;
	const gguf_kv *al;
	uint64_t *offs = NULL;
	int rc;

	*out = NULL;
	rc = mllm__map_file(path, &addr, &size, err, errlen);
	if (rc)
		return rc;
	g = xcalloc(1, sizeof *g);
	g->path = xstrdup(path);
	g->map = addr;
	g->size = size;
	g->own_map = true;
	c.p = addr;
	c.size = size;
	c.path = path;
	c.err = err;
	c.errlen = errlen;

	rc = MLLM_EFORMAT;
	if (size < 4 || memcmp(addr, "GGUF", 4) != 0) {
		mllm__seterr(err, errlen, rc, "%s: bad magic (not a GGUF file)", path);
		goto fail;
	}
	c.pos = 4;
	if (rd_u32(&c, &g->version, "version"))
		goto fail;
	if (g->version != 2 && g->version != 3) {
		rc =
		    mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                 "%s: unsupported GGUF version %u (2 and 3 are)", path, g->version);
		goto fail;
	}
	if (rd_u64(&c, &n_t, "tensor count") || rd_u64(&c, &n_kv, "metadata count"))
		goto fail;
	rc = read_kvs(g, &c, n_kv);
	if (rc)
		goto fail;
	rc = read_tensors(g, &c, n_t, &offs);
	if (rc)
		goto fail;

	rc = MLLM_EFORMAT;
	g->alignment = GGUF_DEFAULT_ALIGN;
	al = find_kv(g, "general.alignment");
	if (al) {
		if (al->type != MLLM_GGUF_UINT32) {
			mllm__seterr(err, errlen, rc, "%s: general.alignment must be a uint32",
			             path);
			goto fail;
		}
		memcpy(&g->alignment, al->val, 4);
		if (g->alignment == 0 || (g->alignment & (g->alignment - 1)) != 0 ||
		    g->alignment > (1u << 20)) {
			mllm__seterr(err, errlen, rc,
			             "%s: general.alignment %u is not a power of two (1..2^20)",
			             path, g->alignment);
			goto fail;
		}
	}
	g->data_off = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
	if (g->n_t > 0 && g->data_off > size) {
		c.pos = g->data_off;
		truncated(&c, "tensor data");
		goto fail;
	}
	data_size = g->data_off <= size ? size - g->data_off : 0;
	for (size_t i = 0; i < g->n_t; i++) {
		mllm__gguf_tensor *t = &g->t[i];
		uint64_t off = offs[i];
		if (off % g->alignment != 0) {
			mllm__seterr(err, errlen, rc,
			             "%s: tensor %s: offset %llu is not a multiple of the "
			             "alignment %u",
			             path, t->name, (unsigned long long)off, g->alignment);
			goto fail;
		}
		if (off > data_size || t->nbytes > data_size - off) {
			mllm__seterr(err, errlen, rc,
			             "%s: tensor %s: data [%llu, +%zu) beyond the data section "
			             "(%zu bytes; truncated?)",
			             path, t->name, (unsigned long long)off, t->nbytes, data_size);
			goto fail;
		}
		t->data = (const uint8_t *)addr + g->data_off + off;
	}
	rc = check_unique(g, err, errlen);
	if (rc)
		goto fail;
	free(offs);
	*out = g;
	return 0;
fail:
	free(offs);
	mllm__gguf_close(g);
	return rc;
}

void mllm__gguf_close(mllm__gguf *g)
{
	if (!g)
		return;
	if (g->own_map && g->map)
		munmap((void *)g->map, g->size);
	for (size_t i = 0; i < g->n_kv; i++)
		free(g->kv[i].str_offs);
	free(g->kv);
	for (size_t i = 0; i < g->n_t; i++)
		free((void *)g->t[i].name);
	free(g->t);
	free(g->path);
	free(g);
}

void mllm__gguf_release_mapping(mllm__gguf *g, void **addr, size_t *size)
{
	*addr = g->own_map ? (void *)g->map : NULL;
	*size = g->own_map ? g->size : 0;
	g->own_map = false;
}

const char *mllm__gguf_path(const mllm__gguf *g)
{
	return g->path;
}

uint32_t mllm__gguf_version(const mllm__gguf *g)
{
	return g->version;
}

uint32_t mllm__gguf_alignment(const mllm__gguf *g)
{
	return g->alignment;
}

/* ---- Lookups -------------------------------------------------------------- */

/* Reads an integer value of any integer type as int64/uint64 (in range). */
static int get_int(const gguf_kv *kv, int64_t *s, uint64_t *u, bool *is_neg)
{
	const uint8_t *v = kv->val;
	*is_neg = false;
	switch (kv->type) {
	case MLLM_GGUF_UINT8:
		*u = v[0];
		break;
	case MLLM_GGUF_INT8:
		*s = (int8_t)v[0];
		goto sig;
	case MLLM_GGUF_UINT16: {
		uint16_t x;
		memcpy(&x, v, 2);
		*u = x;
		break;
	}
	case MLLM_GGUF_INT16: {
		int16_t x;
		memcpy(&x, v, 2);
		*s = x;
		goto sig;
	}
	case MLLM_GGUF_UINT32: {
		uint32_t x;
		memcpy(&x, v, 4);
		*u = x;
		break;
	}
	case MLLM_GGUF_INT32: {
		int32_t x;
		memcpy(&x, v, 4);
		*s = x;
		goto sig;
	}
	case MLLM_GGUF_UINT64:
		memcpy(u, v, 8);
		break;
	case MLLM_GGUF_INT64:
		memcpy(s, v, 8);
		goto sig;
	default:
		return MLLM_EFORMAT;
	}
	*s = *u > INT64_MAX ? INT64_MAX : (int64_t)*u;
	return 0;
sig:
	*is_neg = *s < 0;
	*u = *is_neg ? 0 : (uint64_t)*s;
	return 0;
}

int mllm__gguf_get_u32(const mllm__gguf *g, const char *key, uint32_t *out)
{
	const gguf_kv *kv = find_kv(g, key);
	int64_t s = 0;
	uint64_t u = 0;
	bool neg;

	if (!kv)
		return MLLM_ENOTFOUND;
	if (get_int(kv, &s, &u, &neg) || neg || u > UINT32_MAX)
		return MLLM_EFORMAT;
	*out = (uint32_t)u;
	return 0;
}

int mllm__gguf_get_i32(const mllm__gguf *g, const char *key, int32_t *out)
{
	const gguf_kv *kv = find_kv(g, key);
	int64_t s = 0;
	uint64_t u = 0;
	bool neg;

	if (!kv)
		return MLLM_ENOTFOUND;
	if (get_int(kv, &s, &u, &neg) || s < INT32_MIN || s > INT32_MAX)
		return MLLM_EFORMAT;
	*out = (int32_t)s;
	return 0;
}

int mllm__gguf_get_f32(const mllm__gguf *g, const char *key, float *out)
{
	const gguf_kv *kv = find_kv(g, key);

	if (!kv)
		return MLLM_ENOTFOUND;
	if (kv->type == MLLM_GGUF_FLOAT32) {
		memcpy(out, kv->val, 4);
		return 0;
	}
	if (kv->type == MLLM_GGUF_FLOAT64) {
		double d;
		memcpy(&d, kv->val, 8);
		*out = (float)d;
		return 0;
	}
	return MLLM_EFORMAT;
}

int mllm__gguf_get_bool(const mllm__gguf *g, const char *key, bool *out)
{
	const gguf_kv *kv = find_kv(g, key);

	if (!kv)
		return MLLM_ENOTFOUND;
	if (kv->type != MLLM_GGUF_BOOL)
		return MLLM_EFORMAT;
	*out = kv->val[0] != 0;
	return 0;
}

int mllm__gguf_get_str(const mllm__gguf *g, const char *key, const char **s, size_t *len)
{
	const gguf_kv *kv = find_kv(g, key);
	uint64_t n;

	if (!kv)
		return MLLM_ENOTFOUND;
	if (kv->type != MLLM_GGUF_STRING)
		return MLLM_EFORMAT;
	memcpy(&n, kv->val, 8); /* validated at open */
	*s = (const char *)kv->val + 8;
	*len = (size_t)n;
	return 0;
}

int mllm__gguf_get_arr(const mllm__gguf *g, const char *key, int *elem_type, uint64_t *n,
                       const void **data)
{
	const gguf_kv *kv = find_kv(g, key);

	if (!kv)
		return MLLM_ENOTFOUND;
	if (kv->type != MLLM_GGUF_ARRAY)
		return MLLM_EFORMAT;
	*elem_type = kv->elem_type;
	*n = kv->n;
	*data = kv->val;
	return 0;
}

int mllm__gguf_get_arr_str(const mllm__gguf *g, const char *key, uint64_t i, const char **s,
                           size_t *len)
{
	const gguf_kv *kv = find_kv(g, key);
	uint64_t n;

	if (!kv)
		return MLLM_ENOTFOUND;
	if (kv->type != MLLM_GGUF_ARRAY || kv->elem_type != MLLM_GGUF_STRING)
		return MLLM_EFORMAT;
	if (i >= kv->n)
		return MLLM_ERANGE;
	memcpy(&n, g->map + kv->str_offs[i], 8);
	*s = (const char *)g->map + kv->str_offs[i] + 8;
	*len = (size_t)n;
	return 0;
}

size_t mllm__gguf_n_kv(const mllm__gguf *g)
{
	return g->n_kv;
}

int mllm__gguf_kv_at(const mllm__gguf *g, size_t i, const char **key, size_t *len, int *type)
{
	if (i >= g->n_kv)
		return MLLM_ERANGE;
	*key = g->kv[i].key;
	*len = g->kv[i].key_len;
	*type = g->kv[i].type;
	return 0;
}

size_t mllm__gguf_n_tensors(const mllm__gguf *g)
{
	return g->n_t;
}

const mllm__gguf_tensor *mllm__gguf_tensor_at(const mllm__gguf *g, size_t i)
{
	return i < g->n_t ? &g->t[i] : NULL;
}

const mllm__gguf_tensor *mllm__gguf_tensor_find(const mllm__gguf *g, const char *name)
{
	for (size_t i = 0; i < g->n_t; i++)
		if (strcmp(g->t[i].name, name) == 0)
			return &g->t[i];
	return NULL;
}
