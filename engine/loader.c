/*
 * loader.c — what every checkpoint reader shares: the tensor set of
 * loader.h (named tensors pointing into read-only mappings, indexed by name),
 * dtype sizes, and whole-file mmap / bounded read helpers. Format readers
 * (safetensors.c, pytorch.c, gguf.c) depend on this file and model.c on
 * them; nothing here knows about the model, so no dependency points back.
 */
#include "loader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
