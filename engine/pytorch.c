/*
 * pytorch.c — pytorch_model.bin (torch.save's zip format) without Python:
 * a zip directory reader (stored entries only, zip64 aware) and a pickle
 * interpreter that knows only what a state dict needs. It never imports or
 * calls anything: GLOBAL is checked against a whitelist (OrderedDict, the
 * tensor rebuild functions, torch storages) and REDUCE only applies one of
 * those, so a hostile file can at worst be refused. Pickle state lives in
 * arrays sized from the pickle's length; tensor data points into the map.
 */
#include "loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Zip ------------------------------------------------------------------ */

typedef struct {
	const char *name;
	size_t name_len;
	size_t off;  /* data offset in the file */
	size_t size; /* stored size */
	uint16_t method, flags;
	uint32_t crc;
} zip_entry;

typedef struct {
	const uint8_t *p;
	size_t size;
	zip_entry *e;
	size_t n;
	const char *path;
} zip;

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static bool in_file(size_t size, uint64_t off, uint64_t n)
{
	return off <= size && n <= size - off;
}

/* Zip64 extended information (extra id 1): the fields whose 32-bit value is
 * saturated follow in a fixed order. */
static int zip64_extra(const uint8_t *x, size_t xlen, uint64_t *usize, uint64_t *csize,
                       uint64_t *off)
{
	size_t i = 0;
	while (i + 4 <= xlen) {
		uint16_t id = le16(x + i), n = le16(x + i + 2);
		const uint8_t *d = x + i + 4;
		size_t k = 0;
		if (i + 4 + n > xlen)
			return -1;
		if (id == 1) {
			uint64_t *f[3] = {usize, csize, off};
			for (int j = 0; j < 3; j++) {
				if (*f[j] != 0xFFFFFFFFu)
					continue;
				if (k + 8 > n)
					return -1;
				*f[j] = le64(d + k);
				k += 8;
			}
			return 0;
		}
		i += 4 + (size_t)n;
	}
	return 0;
}

static int zip_open(zip *z, const uint8_t *p, size_t size, const char *path, char *err,
                    size_t errlen)
{
	size_t eocd = SIZE_MAX, lo, pos;
	uint64_t n, cd_size, cd_off;

	memset(z, 0, sizeof *z);
	z->p = p;
	z->size = size;
	z->path = path;
	if (size < 22 || memcmp(p, "PK\x03\x04", 4) != 0) {
		if (size >= 2 && p[0] == 0x80)
			return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
			                    "%s: a legacy (pre-zip) torch.save file; re-save it "
			                    "with a torch >= 1.6 or convert to safetensors",
			                    path);
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: bad zip: not a zip archive",
		                    path);
	}
	lo = size > 22 + 65535 ? size - 22 - 65535 : 0;
	for (size_t i = size - 22 + 1; i-- > lo;) {
		if (memcmp(p + i, "PK\x05\x06", 4) == 0 && i + 22 + le16(p + i + 20) <= size) {
			eocd = i;
			break;
		}
	}
	if (eocd == SIZE_MAX)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: bad zip: no end-of-central-directory record (truncated?)",
		                    path);
	if (le16(p + eocd + 4) != 0 || le16(p + eocd + 6) != 0)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED, "%s: multi-disk zip", path);
	n = le16(p + eocd + 10);
	cd_size = le32(p + eocd + 12);
	cd_off = le32(p + eocd + 16);
	if (n == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
		uint64_t z64;
		if (eocd < 20 || memcmp(p + eocd - 20, "PK\x06\x07", 4) != 0)
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: bad zip: zip64 locator missing", path);
		z64 = le64(p + eocd - 20 + 8);
		if (!in_file(size, z64, 56) || memcmp(p + z64, "PK\x06\x06", 4) != 0)
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: bad zip: zip64 end record out of range", path);
		n = le64(p + z64 + 32);
		cd_size = le64(p + z64 + 40);
		cd_off = le64(p + z64 + 48);
	}
	if (!in_file(size, cd_off, cd_size))
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: bad zip: central directory [%llu, +%llu) beyond file size "
		                    "%zu",
		                    path, (unsigned long long)cd_off, (unsigned long long)cd_size,
		                    size);
	if (n > cd_size / 46)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: bad zip: %llu entries cannot fit a %llu-byte directory",
		                    path, (unsigned long long)n, (unsigned long long)cd_size);
	z->e = mllm_try_calloc(n ? (size_t)n : 1, sizeof *z->e);
	if (!z->e)
		return mllm__seterr(err, errlen, MLLM_ENOMEM, "%s: out of memory", path);
	pos = (size_t)cd_off;
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *c = p + pos;
		zip_entry *e = &z->e[i];
		size_t end = (size_t)(cd_off + cd_size);
		uint64_t usize, csize, loff;
		uint16_t nl, xl, cl;

		if (pos + 46 > end || memcmp(c, "PK\x01\x02", 4) != 0)
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: bad zip: central directory entry %llu is corrupt",
			                    path, (unsigned long long)i);
		e->flags = le16(c + 8);
		e->method = le16(c + 10);
		e->crc = le32(c + 16);
		csize = le32(c + 20);
		usize = le32(c + 24);
		nl = le16(c + 28);
		xl = le16(c + 30);
		cl = le16(c + 32);
		loff = le32(c + 42);
		if (pos + 46 + (size_t)nl + xl + cl > end)
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: bad zip: central directory entry %llu overruns",
			                    path, (unsigned long long)i);
		if (zip64_extra(c + 46 + nl, xl, &usize, &csize, &loff))
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: bad zip: corrupt zip64 field in entry %llu", path,
			                    (unsigned long long)i);
		e->name = (const char *)c + 46;
		e->name_len = nl;
		pos += 46 + (size_t)nl + xl + cl;
		z->n = (size_t)i + 1;
		if (!in_file(size, loff, 30) || memcmp(p + loff, "PK\x03\x04", 4) != 0)
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: bad zip: local header of %.*s out of range", path,
			                    (int)nl, e->name);
		{
			const uint8_t *l = p + loff;
			uint64_t data = loff + 30 + le16(l + 26) + le16(l + 28);
			if (le16(l + 26) != nl || !in_file(size, loff + 30, nl) ||
			    memcmp(l + 30, e->name, nl) != 0)
				return mllm__seterr(
				    err, errlen, MLLM_EFORMAT,
				    "%s: bad zip: local header name of %.*s differs", path, (int)nl,
				    e->name);
			if (e->flags & 1)
				return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
				                    "%s: zip entry %.*s is encrypted", path,
				                    (int)nl, e->name);
			if (!in_file(size, data, csize))
				return mllm__seterr(err, errlen, MLLM_EFORMAT,
				                    "%s: zip entry %.*s: data [%llu, +%llu) beyond "
				                    "file size %zu (truncated?)",
				                    path, (int)nl, e->name,
				                    (unsigned long long)data,
				                    (unsigned long long)csize, size);
			if (e->method == 0 && csize != usize)
				return mllm__seterr(err, errlen, MLLM_EFORMAT,
				                    "%s: zip entry %.*s: stored but sizes differ",
				                    path, (int)nl, e->name);
			e->off = (size_t)data;
			e->size = (size_t)csize;
		}
	}
	return 0;
}

static const zip_entry *zip_find(const zip *z, const char *a, size_t alen, const char *b,
                                 size_t blen)
{
	for (size_t i = 0; i < z->n; i++) {
		const zip_entry *e = &z->e[i];
		if (e->name_len == alen + blen && memcmp(e->name, a, alen) == 0 &&
		    memcmp(e->name + alen, b, blen) == 0)
			return e;
	}
	return NULL;
}

/* Stored (uncompressed) entries only: tensor data must be mappable. */
static int zip_stored(const zip *z, const zip_entry *e, char *err, size_t errlen)
{
	if (e->method != 0)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: zip entry %.*s is compressed (method %u); only stored "
		                    "entries are supported",
		                    z->path, (int)e->name_len, e->name, e->method);
	return 0;
}

static uint32_t crc32_bytes(const uint8_t *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
	}
	return ~c;
}

/* ---- Pickle --------------------------------------------------------------- */

enum { V_NONE, V_BOOL, V_INT, V_STR, V_TUPLE, V_DICT, V_PAIR, V_GLOBAL, V_STORAGE, V_TENSOR };
enum { G_ODICT, G_REBUILD, G_PARAM, G_STORAGE };

#define NIL UINT32_MAX

typedef struct {
	uint8_t kind;
	int64_t i;      /* int, bool, global id, tensor offset */
	int64_t j;      /* storage numel */
	mllm_dtype dt;  /* storage/global-storage dtype */
	uint8_t es;     /* storage element size */
	const char *tn; /* storage element type, for messages */
	const char *s;  /* str / storage key */
	uint32_t len;
	uint32_t x, y, z; /* tuple: first kid, n; dict: head, tail, -; pair: key,
	                   * value, next; tensor: storage, size, stride */
} pval;

typedef struct {
	const uint8_t *p;
	size_t len, pos, op_pos;
	pval *v;
	size_t n_v, cap_v;
	uint32_t *kids;
	size_t n_kids, cap_kids;
	uint32_t *stack;
	size_t sp, cap_stack;
	size_t *marks;
	size_t n_marks, cap_marks;
	uint32_t *memo;
	size_t cap_memo, n_memo;
	const char *what; /* "<file>: <entry>" for messages */
	char *err;
	size_t errlen;
} unpickler;

/* Sizes the interpreter's arrays from the pickle's length u->len (no opcode
 * sequence of that length can outgrow them) and allocates them, the memo
 * all NIL. MLLM_ENOMEM when they do not fit; unpickler_free() either way. */
static int unpickler_alloc(unpickler *u)
{
	u->cap_v = 2 * u->len + 16;
	u->cap_kids = u->len + 16;
	u->cap_stack = u->len + 16;
	u->cap_marks = 256;
	u->cap_memo = u->len + 256;
	u->v = mllm_try_malloc(u->cap_v * sizeof *u->v);
	u->kids = mllm_try_malloc(u->cap_kids * sizeof *u->kids);
	u->stack = mllm_try_malloc(u->cap_stack * sizeof *u->stack);
	u->marks = mllm_try_malloc(u->cap_marks * sizeof *u->marks);
	u->memo = mllm_try_malloc(u->cap_memo * sizeof *u->memo);
	if (!u->v || !u->kids || !u->stack || !u->marks || !u->memo)
		return MLLM_ENOMEM;
	memset(u->memo, 0xFF, u->cap_memo * sizeof *u->memo);
	return 0;
}

static void unpickler_free(unpickler *u)
{
	free(u->v);
	free(u->kids);
	free(u->stack);
	free(u->marks);
	free(u->memo);
}

static int perr(unpickler *u, int code, const char *msg)
{
	return mllm__seterr(u->err, u->errlen, code, "%s: %s at offset %zu", u->what, msg,
	                    u->op_pos);
}

static uint32_t new_val(unpickler *u, uint8_t kind)
{
	pval *v;
	MLLM_ASSERT(u->n_v < u->cap_v); /* sized from the pickle length */
	v = &u->v[u->n_v];
	memset(v, 0, sizeof *v);
	v->kind = kind;
	v->x = v->y = v->z = NIL;
	return (uint32_t)u->n_v++;
}

static int push(unpickler *u, uint32_t v)
{
	if (u->sp == u->cap_stack)
		return perr(u, MLLM_EFORMAT, "pickle stack overflow");
	u->stack[u->sp++] = v;
	return 0;
}

static int pop(unpickler *u, uint32_t *v)
{
	size_t floor = u->n_marks ? u->marks[u->n_marks - 1] : 0;
	if (u->sp <= floor)
		return perr(u, MLLM_EFORMAT, "pickle stack underflow");
	*v = u->stack[--u->sp];
	return 0;
}

static int need_bytes(unpickler *u, size_t n)
{
	if (n > u->len - u->pos)
		return perr(u, MLLM_EFORMAT, "truncated pickle");
	return 0;
}

/* Pops everything above the last mark into a tuple-like kid list. */
static int pop_mark(unpickler *u, size_t *first, size_t *n)
{
	size_t m;
	if (!u->n_marks)
		return perr(u, MLLM_EFORMAT, "pickle MARK missing");
	m = u->marks[--u->n_marks];
	*first = m;
	*n = u->sp - m;
	return 0;
}

static uint32_t make_tuple(unpickler *u, const uint32_t *items, size_t n)
{
	uint32_t t = new_val(u, V_TUPLE);
	MLLM_ASSERT(u->n_kids + n <= u->cap_kids);
	if (n)
		memcpy(u->kids + u->n_kids, items, n * sizeof *items);
	u->v[t].x = (uint32_t)u->n_kids;
	u->v[t].y = (uint32_t)n;
	u->n_kids += n;
	return t;
}

static uint32_t kid(const unpickler *u, uint32_t tuple, uint32_t i)
{
	return u->kids[u->v[tuple].x + i];
}

static int dict_set(unpickler *u, uint32_t d, uint32_t k, uint32_t val)
{
	uint32_t pr;
	if (u->v[d].kind != V_DICT)
		return perr(u, MLLM_EFORMAT, "pickle SETITEM on a non-dict");
	pr = new_val(u, V_PAIR);
	u->v[pr].x = k;
	u->v[pr].y = val;
	if (u->v[d].x == NIL)
		u->v[d].x = pr;
	else
		u->v[u->v[d].y].z = pr;
	u->v[d].y = pr;
	return 0;
}

static bool is_str(const unpickler *u, uint32_t v, const char *s)
{
	size_t n = strlen(s);
	return u->v[v].kind == V_STR && u->v[v].len == n && memcmp(u->v[v].s, s, n) == 0;
}

static int op_global(unpickler *u)
{
	/* Integer and double storages are allowed so that a checkpoint with,
	 * say, an int64 buffer still loads; the model refuses such a tensor only
	 * if it needs it. */
	static const struct {
		const char *mod, *name;
		int id;
		mllm_dtype dt;
		uint8_t es;
		const char *tn;
	} allowed[] = {
	    {"collections", "OrderedDict", G_ODICT, MLLM_DTYPE__COUNT, 0, ""},
	    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD, MLLM_DTYPE__COUNT, 0, ""},
	    {"torch._utils", "_rebuild_parameter", G_PARAM, MLLM_DTYPE__COUNT, 0, ""},
	    {"torch", "HalfStorage", G_STORAGE, MLLM_DTYPE_F16, 2, "F16"},
	    {"torch", "FloatStorage", G_STORAGE, MLLM_DTYPE_F32, 4, "F32"},
	    {"torch", "BFloat16Storage", G_STORAGE, MLLM_DTYPE_BF16, 2, "BF16"},
	    {"torch", "DoubleStorage", G_STORAGE, MLLM_DTYPE__COUNT, 8, "F64"},
	    {"torch", "LongStorage", G_STORAGE, MLLM_DTYPE__COUNT, 8, "I64"},
	    {"torch", "IntStorage", G_STORAGE, MLLM_DTYPE__COUNT, 4, "I32"},
	    {"torch", "ShortStorage", G_STORAGE, MLLM_DTYPE__COUNT, 2, "I16"},
	    {"torch", "CharStorage", G_STORAGE, MLLM_DTYPE__COUNT, 1, "I8"},
	    {"torch", "ByteStorage", G_STORAGE, MLLM_DTYPE__COUNT, 1, "U8"},
	    {"torch", "BoolStorage", G_STORAGE, MLLM_DTYPE__COUNT, 1, "BOOL"},
	};
	const char *mod = (const char *)u->p + u->pos, *name, *nl;
	size_t ml, nlen;
	uint32_t g;

	nl = memchr(mod, '\n', u->len - u->pos);
	if (!nl)
		return perr(u, MLLM_EFORMAT, "truncated pickle GLOBAL");
	ml = (size_t)(nl - mod);
	name = nl + 1;
	nl = memchr(name, '\n', u->len - u->pos - ml - 1);
	if (!nl)
		return perr(u, MLLM_EFORMAT, "truncated pickle GLOBAL");
	nlen = (size_t)(nl - name);
	u->pos += ml + nlen + 2;
	for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
		if (strlen(allowed[i].mod) == ml && memcmp(allowed[i].mod, mod, ml) == 0 &&
		    strlen(allowed[i].name) == nlen && memcmp(allowed[i].name, name, nlen) == 0) {
			g = new_val(u, V_GLOBAL);
			u->v[g].i = allowed[i].id;
			u->v[g].dt = allowed[i].dt;
			u->v[g].es = allowed[i].es;
			u->v[g].tn = allowed[i].tn;
			return push(u, g);
		}
	}
	{
		char msg[200];
		snprintf(msg, sizeof msg,
		         "pickle GLOBAL %.*s.%.*s is not allowed (only a state dict of tensors is)",
		         (int)(ml > 60 ? 60 : ml), mod, (int)(nlen > 60 ? 60 : nlen), name);
		return perr(u, MLLM_EUNSUPPORTED, msg);
	}
}

static int op_reduce(unpickler *u)
{
	uint32_t args = NIL, fn = NIL, r;
	const pval *f;

	int rc = pop(u, &args);

	if (!rc)
		rc = pop(u, &fn);
	if (rc)
		return rc;
	f = &u->v[fn];
	if (f->kind != V_GLOBAL || u->v[args].kind != V_TUPLE)
		return perr(u, MLLM_EFORMAT, "pickle REDUCE of something not callable");
	switch (f->i) {
	case G_ODICT:
		if (u->v[args].y != 0)
			return perr(u, MLLM_EFORMAT, "OrderedDict() with arguments");
		r = new_val(u, V_DICT);
		return push(u, r);
	case G_REBUILD: {
		/* (storage, storage_offset, size, stride, requires_grad,
		 *  backward_hooks[, metadata]) */
		uint32_t n = u->v[args].y;
		if (n < 6 || n > 7 || u->v[kid(u, args, 0)].kind != V_STORAGE ||
		    u->v[kid(u, args, 1)].kind != V_INT || u->v[kid(u, args, 2)].kind != V_TUPLE ||
		    u->v[kid(u, args, 3)].kind != V_TUPLE)
			return perr(u, MLLM_EFORMAT, "malformed _rebuild_tensor_v2 arguments");
		r = new_val(u, V_TENSOR);
		u->v[r].x = kid(u, args, 0);
		u->v[r].i = u->v[kid(u, args, 1)].i;
		u->v[r].y = kid(u, args, 2);
		u->v[r].z = kid(u, args, 3);
		return push(u, r);
	}
	case G_PARAM:
		if (u->v[args].y < 1 || u->v[kid(u, args, 0)].kind != V_TENSOR)
			return perr(u, MLLM_EFORMAT, "malformed _rebuild_parameter arguments");
		return push(u, kid(u, args, 0));
	default:
		return perr(u, MLLM_EUNSUPPORTED, "pickle REDUCE of a storage type");
	}
}

static int op_persid(unpickler *u)
{
	uint32_t t, s;
	int rc = pop(u, &t);

	if (rc)
		return rc;
	/* ('storage', <StorageType>, key, location, numel) */
	if (u->v[t].kind != V_TUPLE || u->v[t].y != 5 || !is_str(u, kid(u, t, 0), "storage") ||
	    u->v[kid(u, t, 1)].kind != V_GLOBAL || u->v[kid(u, t, 1)].i != G_STORAGE ||
	    u->v[kid(u, t, 2)].kind != V_STR || u->v[kid(u, t, 4)].kind != V_INT ||
	    u->v[kid(u, t, 4)].i < 0)
		return perr(u, MLLM_EFORMAT, "malformed persistent id (expected a storage)");
	s = new_val(u, V_STORAGE);
	u->v[s].dt = u->v[kid(u, t, 1)].dt;
	u->v[s].es = u->v[kid(u, t, 1)].es;
	u->v[s].tn = u->v[kid(u, t, 1)].tn;
	u->v[s].s = u->v[kid(u, t, 2)].s;
	u->v[s].len = u->v[kid(u, t, 2)].len;
	u->v[s].j = u->v[kid(u, t, 4)].i;
	return push(u, s);
}

static int memo_put(unpickler *u, uint64_t idx)
{
	if (!u->sp)
		return perr(u, MLLM_EFORMAT, "pickle PUT on an empty stack");
	if (idx >= u->cap_memo)
		return perr(u, MLLM_EFORMAT, "pickle memo index out of range");
	u->memo[idx] = u->stack[u->sp - 1];
	return 0;
}

static int memo_get(unpickler *u, uint64_t idx)
{
	if (idx >= u->cap_memo || u->memo[idx] == NIL)
		return perr(u, MLLM_EFORMAT, "pickle GET of an unset memo slot");
	return push(u, u->memo[idx]);
}

static int push_str(unpickler *u, size_t n)
{
	uint32_t s;
	if (need_bytes(u, n))
		return MLLM_EFORMAT;
	if (n > UINT32_MAX)
		return perr(u, MLLM_EFORMAT, "pickle string too long");
	s = new_val(u, V_STR);
	u->v[s].s = (const char *)u->p + u->pos;
	u->v[s].len = (uint32_t)n;
	u->pos += n;
	return push(u, s);
}

static int push_int(unpickler *u, int64_t i, uint8_t kind)
{
	uint32_t v = new_val(u, kind);
	u->v[v].i = i;
	return push(u, v);
}

/* Runs the pickle; *root receives the value STOP returned. Every helper
 * returns 0 or the MLLM_E* code of the message it wrote. */
static int unpickle(unpickler *u, uint32_t *root)
{
	for (;;) {
		uint8_t op;
		uint32_t a, b;
		size_t first = 0, n = 0, floor;
		char msg[64];
		int rc = 0;

		u->op_pos = u->pos;
		if (u->pos >= u->len)
			return perr(u, MLLM_EFORMAT, "pickle ends without STOP");
		op = u->p[u->pos++];
		switch (op) {
		case 0x80: /* PROTO */
			rc = need_bytes(u, 1);
			if (!rc && (u->p[u->pos] < 2 || u->p[u->pos] > 5))
				rc = perr(u, MLLM_EUNSUPPORTED, "unsupported pickle protocol");
			u->pos++;
			break;
		case 0x95: /* FRAME: a length hint only */
			rc = need_bytes(u, 8);
			u->pos += 8;
			break;
		case '.': /* STOP */
			rc = pop(u, root);
			if (!rc && (u->sp != 0 || u->n_marks != 0))
				rc = perr(u, MLLM_EFORMAT, "pickle STOP with values left");
			return rc;
		case '(': /* MARK */
			if (u->n_marks == u->cap_marks)
				rc = perr(u, MLLM_EFORMAT, "pickle MARKs nested too deep");
			else
				u->marks[u->n_marks++] = u->sp;
			break;
		case '}': /* EMPTY_DICT */
			rc = push(u, new_val(u, V_DICT));
			break;
		case ')': /* EMPTY_TUPLE */
			rc = push(u, make_tuple(u, NULL, 0));
			break;
		case 't': /* TUPLE */
			rc = pop_mark(u, &first, &n);
			if (rc)
				break;
			a = make_tuple(u, u->stack + first, n);
			u->sp = first;
			rc = push(u, a);
			break;
		case 0x85: /* TUPLE1 */
		case 0x86: /* TUPLE2 */
		case 0x87: /* TUPLE3 */
			n = (size_t)(op - 0x84);
			floor = u->n_marks ? u->marks[u->n_marks - 1] : 0;
			if (u->sp < floor + n) {
				rc = perr(u, MLLM_EFORMAT, "pickle stack underflow");
				break;
			}
			a = make_tuple(u, u->stack + u->sp - n, n);
			u->sp -= n;
			rc = push(u, a);
			break;
		case 'X': /* BINUNICODE */
			rc = need_bytes(u, 4);
			if (rc)
				break;
			n = le32(u->p + u->pos);
			u->pos += 4;
			rc = push_str(u, n);
			break;
		case 0x8c: /* SHORT_BINUNICODE */
			rc = need_bytes(u, 1);
			if (rc)
				break;
			n = u->p[u->pos++];
			rc = push_str(u, n);
			break;
		case 'q': /* BINPUT */
			rc = need_bytes(u, 1);
			if (!rc)
				rc = memo_put(u, u->p[u->pos]);
			u->pos++;
			break;
		case 'r': /* LONG_BINPUT */
			rc = need_bytes(u, 4);
			if (!rc)
				rc = memo_put(u, le32(u->p + u->pos));
			u->pos += 4;
			break;
		case 0x94: /* MEMOIZE */
			rc = memo_put(u, u->n_memo);
			u->n_memo++;
			break;
		case 'h': /* BINGET */
			rc = need_bytes(u, 1);
			if (!rc)
				rc = memo_get(u, u->p[u->pos]);
			u->pos++;
			break;
		case 'j': /* LONG_BINGET */
			rc = need_bytes(u, 4);
			if (!rc)
				rc = memo_get(u, le32(u->p + u->pos));
			u->pos += 4;
			break;
		case 'c': /* GLOBAL */
			rc = op_global(u);
			break;
		case 'Q': /* BINPERSID */
			rc = op_persid(u);
			break;
		case 'R': /* REDUCE */
			rc = op_reduce(u);
			break;
		case 'J': /* BININT */
			rc = need_bytes(u, 4);
			if (rc)
				break;
			a = le32(u->p + u->pos);
			u->pos += 4;
			rc = push_int(u, (int32_t)a, V_INT);
			break;
		case 'K': /* BININT1 */
			rc = need_bytes(u, 1);
			if (!rc)
				rc = push_int(u, u->p[u->pos++], V_INT);
			break;
		case 'M': /* BININT2 */
			rc = need_bytes(u, 2);
			if (rc)
				break;
			a = le16(u->p + u->pos);
			u->pos += 2;
			rc = push_int(u, a, V_INT);
			break;
		case 0x8a: { /* LONG1: little-endian two's complement */
			uint64_t v = 0;
			rc = need_bytes(u, 1);
			if (rc)
				break;
			n = u->p[u->pos++];
			if (n > 8) {
				rc = perr(u, MLLM_EUNSUPPORTED, "pickle LONG1 wider than 64 bits");
				break;
			}
			rc = need_bytes(u, n);
			if (rc)
				break;
			for (size_t k = 0; k < n; k++)
				v |= (uint64_t)u->p[u->pos + k] << (8 * k);
			if (n > 0 && n < 8 && (u->p[u->pos + n - 1] & 0x80))
				v |= ~(uint64_t)0 << (8 * n);
			u->pos += n;
			rc = push_int(u, (int64_t)v, V_INT);
			break;
		}
		case 0x88: /* NEWTRUE */
		case 0x89: /* NEWFALSE */
			rc = push_int(u, op == 0x88, V_BOOL);
			break;
		case 'N': /* NONE */
			rc = push(u, new_val(u, V_NONE));
			break;
		case 's': /* SETITEM */
			rc = pop(u, &b);
			if (!rc)
				rc = pop(u, &a);
			if (!rc && !u->sp)
				rc = perr(u, MLLM_EFORMAT, "pickle stack underflow");
			if (!rc)
				rc = dict_set(u, u->stack[u->sp - 1], a, b);
			break;
		case 'u': /* SETITEMS */
			rc = pop_mark(u, &first, &n);
			if (rc)
				break;
			if (n % 2 != 0 || first == 0) {
				rc = perr(u, MLLM_EFORMAT, "malformed pickle SETITEMS");
				break;
			}
			for (size_t k = 0; k < n && !rc; k += 2)
				rc = dict_set(u, u->stack[first - 1], u->stack[first + k],
				              u->stack[first + k + 1]);
			u->sp = first;
			break;
		case 'b': /* BUILD: only the state of an OrderedDict, ignored */
			rc = pop(u, &b);
			if (!rc && !u->sp)
				rc = perr(u, MLLM_EFORMAT, "pickle stack underflow");
			if (!rc && u->v[u->stack[u->sp - 1]].kind != V_DICT)
				rc = perr(u, MLLM_EUNSUPPORTED, "pickle BUILD of a non-dict");
			break;
		default:
			snprintf(msg, sizeof msg, "unsupported pickle opcode 0x%02x", op);
			rc = perr(u, MLLM_EUNSUPPORTED, msg);
			break;
		}
		if (rc)
			return rc;
	}
}

/* ---- State dict -> tensor set ---------------------------------------------- */

static int add_tensor(mllm__tset *ts, int file, const zip *z, const char *prefix, size_t plen,
                      const unpickler *u, uint32_t key, uint32_t tv, char *err, size_t errlen)
{
	const pval *k = &u->v[key], *t = &u->v[tv], *st = &u->v[t->x];
	const pval *sz = &u->v[t->y], *sd = &u->v[t->z];
	const zip_entry *e;
	mllm__ltensor *out;
	uint64_t numel = 1, expect = 1, need;
	size_t es = st->es;
	char sub[300];
	int nd;

	if (sz->y > MLLM__MAX_DIMS || sd->y != sz->y)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tensor %.*s: %u dimensions with %u strides (at most %d "
		                    "supported)",
		                    z->path, (int)k->len, k->s, sz->y, sd->y, MLLM__MAX_DIMS);
	nd = (int)sz->y;
	out = mllm__tset_add(ts, k->s, k->len, file);
	out->n_dims = nd;
	out->dtype = st->dt;
	snprintf(out->type_name, sizeof out->type_name, "%s", st->tn);
	for (int d = 0; d < nd; d++) {
		const pval *v = &u->v[kid(u, t->y, (uint32_t)d)];
		if (v->kind != V_INT || v->i < 0 || v->i > ((int64_t)1 << 40) ||
		    __builtin_mul_overflow(numel, (uint64_t)v->i, &numel))
			return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: tensor %s: bad size",
			                    z->path, out->name);
		out->shape[d] = v->i;
	}
	/* contiguous row-major: stride[d] == prod(size[d+1:]) where size > 1 */
	for (int d = nd - 1; d >= 0; d--) {
		const pval *v = &u->v[kid(u, t->z, (uint32_t)d)];
		if (v->kind != V_INT)
			return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: tensor %s: bad stride",
			                    z->path, out->name);
		if (out->shape[d] > 1 && (uint64_t)v->i != expect)
			return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
			                    "%s: tensor %s is not contiguous (stride %lld in "
			                    "dimension %d)",
			                    z->path, out->name, (long long)v->i, d);
		expect *= (uint64_t)out->shape[d];
	}
	if (t->i < 0 || st->j < t->i || numel > (uint64_t)(st->j - t->i))
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tensor %s: offset %lld + %llu elements beyond its "
		                    "storage of %lld",
		                    z->path, out->name, (long long)t->i, (unsigned long long)numel,
		                    (long long)st->j);
	snprintf(sub, sizeof sub, "/data/%.*s", (int)(st->len > 200 ? 200 : st->len), st->s);
	e = zip_find(z, prefix, plen, sub, strlen(sub));
	if (!e)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tensor %s: storage %.*s%s is missing from the archive",
		                    z->path, out->name, (int)plen, prefix, sub);
	if (zip_stored(z, e, err, errlen))
		return MLLM_EUNSUPPORTED;
	need = 0;
	if (__builtin_mul_overflow((uint64_t)st->j, (uint64_t)es, &need) || need > e->size)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tensor %s: storage of %lld elements needs %llu bytes, the "
		                    "archive entry has %zu",
		                    z->path, out->name, (long long)st->j,
		                    (unsigned long long)st->j * es, e->size);
	out->data = z->p + e->off + (size_t)t->i * es;
	out->nbytes = (size_t)numel * es;
	if ((uintptr_t)out->data % es != 0)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: tensor %s: data is not aligned to its elements", z->path,
		                    out->name);
	return 0;
}

int mllm__pytorch_load(mllm__tset *ts, const char *path, char *err, size_t errlen)
{
	unpickler u = {0};
	const zip_entry *pkl = NULL, *bo;
	const char *prefix;
	size_t plen;
	char what[600];
	void *addr;
	size_t size;
	zip z = {0};
	uint32_t root;
	int rc, file;

	rc = mllm__map_file(path, &addr, &size, err, errlen);
	if (rc)
		return rc;
	if (addr)
		mllm__tset_add_map(ts, addr, size);
	file = mllm__tset_add_file(ts, path);
	rc = zip_open(&z, addr, size, path, err, errlen);
	if (rc)
		goto out;
	for (size_t i = 0; i < z.n; i++) {
		const zip_entry *e = &z.e[i];
		const char *slash = memchr(e->name, '/', e->name_len);
		if (slash && e->name_len - (size_t)(slash - e->name) == 9 &&
		    memcmp(slash, "/data.pkl", 9) == 0) {
			if (pkl) {
				rc =
				    mllm__seterr(err, errlen, MLLM_EFORMAT,
				                 "%s: more than one data.pkl in the archive", path);
				goto out;
			}
			pkl = e;
		}
	}
	if (!pkl) {
		rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
		                  "%s: no <name>/data.pkl in the archive (not a torch.save file)",
		                  path);
		goto out;
	}
	prefix = pkl->name;
	plen = pkl->name_len - 9;
	rc = zip_stored(&z, pkl, err, errlen);
	if (rc)
		goto out;
	if (crc32_bytes(z.p + pkl->off, pkl->size) != pkl->crc) {
		rc = mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: %.*s: CRC mismatch (corrupt)",
		                  path, (int)pkl->name_len, pkl->name);
		goto out;
	}
	bo = zip_find(&z, prefix, plen, "/byteorder", 10);
	if (bo && !(bo->method == 0 && bo->size == 6 && memcmp(z.p + bo->off, "little", 6) == 0)) {
		rc = mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                  "%s: tensors are not little-endian", path);
		goto out;
	}

	snprintf(what, sizeof what, "%s: %.*s", path, (int)pkl->name_len, pkl->name);
	u.p = z.p + pkl->off;
	u.len = pkl->size;
	u.what = what;
	u.err = err;
	u.errlen = errlen;
	if (unpickler_alloc(&u) != 0) {
		rc = mllm__seterr(err, errlen, MLLM_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	rc = unpickle(&u, &root);
	if (rc) {
		/* perr wrote the message; keep its code where it set one */
		goto out;
	}
	if (u.v[root].kind != V_DICT) {
		rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
		                  "%s: the pickle is not a state dict (top-level value is not a "
		                  "dict)",
		                  path);
		goto out;
	}
	for (uint32_t pr = u.v[root].x; pr != NIL; pr = u.v[pr].z) {
		uint32_t k = u.v[pr].x, v = u.v[pr].y;
		if (u.v[k].kind != V_STR || u.v[k].len == 0 || memchr(u.v[k].s, 0, u.v[k].len)) {
			rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
			                  "%s: state dict key is not a name", path);
			goto out;
		}
		if (u.v[v].kind != V_TENSOR) {
			rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
			                  "%s: state dict entry %.*s is not a tensor", path,
			                  (int)(u.v[k].len > 200 ? 200 : u.v[k].len), u.v[k].s);
			goto out;
		}
		rc = add_tensor(ts, file, &z, prefix, plen, &u, k, v, err, errlen);
		if (rc)
			goto out;
	}
out:
	unpickler_free(&u);
	free(z.e);
	return rc;
}
