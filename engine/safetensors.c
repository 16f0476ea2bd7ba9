/*
 * safetensors.c — the safetensors reader (u64 header length, JSON header of
 * {dtype, shape, data_offsets}, data; all checked against the file before a
 * pointer is formed), plus what every checkpoint reader shares: the tensor
 * set of loader.h, whole-file mmap/read helpers and dtype sizes. They live
 * here because safetensors is the base format that pytorch.c and model.c
 * build on, and a test of this file alone then needs nothing else.
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

/* ---- Tensor set ------------------------------------------------------ */

void mllm__tset_init(mllm__tset *ts)
{
	memset(ts, 0, sizeof *ts);
}

void mllm__tset_free(mllm__tset *ts)
{
	if (!ts)
		return;
	for (size_t i = 0; i < ts->n; i++)
		free(ts->t[i].name);
	free(ts->t);
	for (int i = 0; i < ts->n_files; i++)
		free(ts->files[i]);
	free(ts->files);
	for (int i = 0; i < ts->n_maps; i++)
		if (ts->maps[i].addr)
			munmap(ts->maps[i].addr, ts->maps[i].size);
	free(ts->maps);
	memset(ts, 0, sizeof *ts);
}

int mllm__tset_add_file(mllm__tset *ts, const char *path)
{
	ts->files = xrealloc(ts->files, sizeof *ts->files * (size_t)(ts->n_files + 1));
	ts->files[ts->n_files] = xstrdup(path);
	return ts->n_files++;
}

void mllm__tset_add_map(mllm__tset *ts, void *addr, size_t size)
{
	ts->maps = xrealloc(ts->maps, sizeof *ts->maps * (size_t)(ts->n_maps + 1));
	ts->maps[ts->n_maps].addr = addr;
	ts->maps[ts->n_maps].size = size;
	ts->n_maps++;
}

mllm__ltensor *mllm__tset_add(mllm__tset *ts, const char *name, size_t name_len, int file)
{
	mllm__ltensor *t;

	if (ts->n == ts->cap) {
		ts->cap = ts->cap ? ts->cap * 2 : 64;
		ts->t = xrealloc(ts->t, sizeof *ts->t * ts->cap);
	}
	t = &ts->t[ts->n++];
	memset(t, 0, sizeof *t);
	t->name = xstrndup(name, name_len);
	t->file = file;
	t->dtype = MLLM_DTYPE__COUNT;
	ts->sorted = false;
	return t;
}

static int cmp_tensor(const void *a, const void *b)
{
	return strcmp(((const mllm__ltensor *)a)->name, ((const mllm__ltensor *)b)->name);
}

int mllm__tset_index(mllm__tset *ts, char *err, size_t errlen)
{
	if (ts->n > 1)
		qsort(ts->t, ts->n, sizeof *ts->t, cmp_tensor);
	for (size_t i = 1; i < ts->n; i++) {
		if (strcmp(ts->t[i - 1].name, ts->t[i].name) == 0)
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: tensor %s is defined twice (also in %s)",
			                    ts->files[ts->t[i].file], ts->t[i].name,
			                    ts->files[ts->t[i - 1].file]);
	}
	ts->sorted = true;
	return 0;
}

const mllm__ltensor *mllm__tset_find(const mllm__tset *ts, const char *name)
{
	size_t lo = 0, hi = ts->n;

	MLLM_ASSERT(ts->sorted || ts->n == 0);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, ts->t[mid].name);
		if (c == 0)
			return &ts->t[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

void mllm__tset_take_maps(mllm__tset *ts, mllm_model *m)
{
	for (int i = 0; i < ts->n_maps; i++)
		mllm__model_add_mapping(m, ts->maps[i].addr, ts->maps[i].size);
	free(ts->maps);
	ts->maps = NULL;
	ts->n_maps = 0;
}

int mllm__dtype_nbytes(mllm_dtype t, uint64_t n, size_t *out)
{
	size_t per, blocks;

	switch (t) {
	case MLLM_DTYPE_F32:
		return mllm__mul_overflow((size_t)n, 4, out) || n > SIZE_MAX;
	case MLLM_DTYPE_F16:
	case MLLM_DTYPE_BF16:
		return mllm__mul_overflow((size_t)n, 2, out) || n > SIZE_MAX;
	case MLLM_DTYPE_Q8_0:
		per = 34;
		break;
	case MLLM_DTYPE_Q4_0:
		per = 18;
		break;
	default:
		return 1;
	}
	if (n % 32 != 0 || n > SIZE_MAX)
		return 1;
	blocks = (size_t)(n / 32);
	return mllm__mul_overflow(blocks, per, out);
}

/* ---- Files ----------------------------------------------------------- */

int mllm__map_file(const char *path, void **addr, size_t *size, char *err, size_t errlen)
{
	struct stat st;
	void *p;
	int fd;

	*addr = NULL;
	*size = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mllm__seterr(err, errlen, errno == ENOENT ? MLLM_ENOTFOUND : MLLM_EIO,
		                    "%s: cannot open: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return mllm__seterr(err, errlen, MLLM_EIO, "%s: cannot stat: %s", path,
		                    strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: not a regular file", path);
	}
	if (st.st_size == 0) {
		close(fd);
		return 0;
	}
	if ((uintmax_t)st.st_size > SIZE_MAX) {
		close(fd);
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED, "%s: file too large", path);
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		int e = errno;
		close(fd);
		return mllm__seterr(err, errlen, e == ENOMEM ? MLLM_ENOMEM : MLLM_EIO,
		                    "%s: mmap failed: %s", path, strerror(e));
	}
	close(fd); /* the mapping keeps the file alive */
	*addr = p;
	*size = (size_t)st.st_size;
	return 0;
}

int mllm__read_file(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mllm__seterr(err, errlen, errno == ENOENT ? MLLM_ENOTFOUND : MLLM_EIO,
		                    "%s: cannot open: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return mllm__seterr(err, errlen, MLLM_EIO, "%s: not a readable regular file", path);
	}
	if ((uintmax_t)st.st_size > max) {
		close(fd);
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: file too large (%jd bytes, limit %zu)", path,
		                    (intmax_t)st.st_size, max);
	}
	buf = mllm_try_malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return mllm__seterr(err, errlen, MLLM_ENOMEM, "%s: out of memory", path);
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = r < 0 ? errno : EIO;
			close(fd);
			free(buf);
			return mllm__seterr(err, errlen, MLLM_EIO, "%s: read failed: %s", path,
			                    strerror(e));
		}
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

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
