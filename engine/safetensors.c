/*
 * safetensors.c — the safetensors reader (u64 header length, JSON header of
 * {dtype, shape, data_offsets}, data; all checked against the file before a
 * pointer is formed). It appends to the tensor set of loader.h; the set and
 * the file helpers it uses live in loader.c.
 */
#include "json.h"
#include "loader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation refuses headers above 100 MB; so do we. */
#define ST_HEADER_MAX (100u << 20)

/* ---- safetensors ----------------------------------------------------- */

typedef struct {
	const char *name;
	int size;         /* bytes per element */
	mllm_dtype dtype; /* MLLM_DTYPE__COUNT: known but not computable */
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"F32", 4, MLLM_DTYPE_F32},        {"F16", 2, MLLM_DTYPE_F16},
    {"BF16", 2, MLLM_DTYPE_BF16},      {"F64", 8, MLLM_DTYPE__COUNT},
    {"I64", 8, MLLM_DTYPE__COUNT},     {"U64", 8, MLLM_DTYPE__COUNT},
    {"I32", 4, MLLM_DTYPE__COUNT},     {"U32", 4, MLLM_DTYPE__COUNT},
    {"I16", 2, MLLM_DTYPE__COUNT},     {"U16", 2, MLLM_DTYPE__COUNT},
    {"I8", 1, MLLM_DTYPE__COUNT},      {"U8", 1, MLLM_DTYPE__COUNT},
    {"BOOL", 1, MLLM_DTYPE__COUNT},    {"F8_E4M3", 1, MLLM_DTYPE__COUNT},
    {"F8_E5M2", 1, MLLM_DTYPE__COUNT},
};

static const st_dtype *st_find_dtype(const char *s)
{
	for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
		if (strcmp(st_dtypes[i].name, s) == 0)
			return &st_dtypes[i];
	return NULL;
}

static int st_tensor(mllm__tset *ts, int file, const char *path, const mllm__json *e,
                     const char *data, size_t data_size, char *err, size_t errlen)
{
	const mllm__json *jd = mllm__json_get(e, "dtype");
	const mllm__json *js = mllm__json_get(e, "shape");
	const mllm__json *jo = mllm__json_get(e, "data_offsets");
	const mllm__json *b, *en;
	const st_dtype *dt;
	mllm__ltensor *t;
	uint64_t numel = 1;
	size_t want;
	int nd = 0;

	if (e->type != MLLM_JSON_OBJECT)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tensor %s: header entry is a %s, not an object", path,
		                    e->key, mllm__json_type_name(e->type));
	if (!jd || jd->type != MLLM_JSON_STRING)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: tensor %s: missing dtype", path,
		                    e->key);
	dt = st_find_dtype(jd->str);
	if (!dt)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tensor %s: unknown dtype \"%s\"", path, e->key, jd->str);
	if (!js || js->type != MLLM_JSON_ARRAY)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: tensor %s: missing shape", path,
		                    e->key);
	if (js->n > MLLM__MAX_DIMS)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: tensor %s: %u dimensions (at most %d supported)", path,
		                    e->key, js->n, MLLM__MAX_DIMS);
	t = mllm__tset_add(ts, e->key, e->key_len, file);
	for (const mllm__json *d = js->child; d; d = d->next) {
		if (d->type != MLLM_JSON_NUMBER || !d->is_int || d->i < 0 ||
		    d->i > ((int64_t)1 << 40))
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: tensor %s: bad shape entry", path, e->key);
		t->shape[nd++] = d->i;
		if (__builtin_mul_overflow(numel, (uint64_t)d->i, &numel))
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: tensor %s: shape overflows", path, e->key);
	}
	t->n_dims = nd;
	t->dtype = dt->dtype;
	snprintf(t->type_name, sizeof t->type_name, "%s", dt->name);
	if (!jo || jo->type != MLLM_JSON_ARRAY || jo->n != 2)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tensor %s: data_offsets must be [begin, end]", path,
		                    e->key);
	b = jo->child;
	en = b->next;
	if (b->type != MLLM_JSON_NUMBER || !b->is_int || en->type != MLLM_JSON_NUMBER ||
	    !en->is_int || b->i < 0 || en->i < b->i)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: tensor %s: bad data_offsets",
		                    path, e->key);
	if ((uint64_t)en->i > data_size)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tensor %s: data_offsets [%lld,%lld] beyond the data "
		                    "section (%zu bytes)",
		                    path, e->key, (long long)b->i, (long long)en->i, data_size);
	if (__builtin_mul_overflow(numel, (uint64_t)dt->size, &numel) || numel > SIZE_MAX)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: tensor %s: shape overflows",
		                    path, e->key);
	want = (size_t)numel;
	if ((uint64_t)(en->i - b->i) != want)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tensor %s: data_offsets [%lld,%lld] hold %lld bytes, "
		                    "shape and dtype %s need %zu",
		                    path, e->key, (long long)b->i, (long long)en->i,
		                    (long long)(en->i - b->i), dt->name, want);
	t->data = data + b->i;
	t->nbytes = want;
	if (((uintptr_t)t->data) % (uintptr_t)dt->size != 0)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: tensor %s: data is not aligned to its %d-byte elements",
		                    path, e->key, dt->size);
	return 0;
}

int mllm__safetensors_load(mllm__tset *ts, const char *path, char *err, size_t errlen)
{
	mllm__json_doc *doc = NULL;
	const mllm__json *root;
	const unsigned char *p;
	void *addr;
	size_t size, data_size;
	uint64_t hlen = 0;
	char jerr[160];
	int rc, file;

	rc = mllm__map_file(path, &addr, &size, err, errlen);
	if (rc)
		return rc;
	if (addr)
		mllm__tset_add_map(ts, addr, size); /* the set unmaps it on every path */
	file = mllm__tset_add_file(ts, path);
	p = addr;
	if (size < 8)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: truncated: %zu bytes, too short for a safetensors header",
		                    path, size);
	for (int i = 7; i >= 0; i--)
		hlen = (hlen << 8) | p[i];
	if (hlen > size - 8)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: header length %llu beyond file size %zu (truncated?)",
		                    path, (unsigned long long)hlen, size);
	if (hlen > ST_HEADER_MAX)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: header length %llu above the %u-byte limit", path,
		                    (unsigned long long)hlen, ST_HEADER_MAX);
	if (hlen < 2 || p[8] != '{')
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: not a safetensors file (header does not start with '{')",
		                    path);
	rc = mllm__json_parse((const char *)p + 8, (size_t)hlen, NULL, &doc, jerr, sizeof jerr);
	if (rc)
		return mllm__seterr(err, errlen, rc, "%s: bad JSON header: %s", path, jerr);
	root = mllm__json_root(doc);
	if (root->type != MLLM_JSON_OBJECT) {
		rc = mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: header is not a JSON object",
		                  path);
		goto out;
	}
	data_size = size - 8 - (size_t)hlen;
	for (const mllm__json *e = root->child; e; e = e->next) {
		if (strcmp(e->key, "__metadata__") == 0)
			continue;
		if (strlen(e->key) != e->key_len || e->key_len == 0) {
			rc = mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: bad tensor name", path);
			goto out;
		}
		rc = st_tensor(ts, file, path, e, (const char *)p + 8 + hlen, data_size, err,
		               errlen);
		if (rc)
			goto out;
	}
out:
	mllm__json_free(doc);
	return rc;
}
