/*
 * tokenizer.c — SentencePiece-exact BPE (LLaMA's tokenizer.model, or the same
 * vocabulary from GGUF metadata), decode and the streaming detokenizer. Every
 * step mirrors SentencePiece 0.1.x: identity normalizer (bad UTF-8 becomes
 * U+FFFD per byte), dummy prefix, `▁` escaping, merges by score (ties:
 * leftmost), byte fallback. For speed, text is cut into words before each
 * `▁` that follows another character (no piece spans such a cut: checked at
 * load), and words that are themselves pieces skip BPE once learned.
 */
#include "base.h"
#include "gguf.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SentencePiece piece types (sentencepiece_model.proto; GGUF uses the same
 * numbers in tokenizer.ggml.token_type, with 0 = undefined). */
enum {
	PT_UNDEFINED = 0,
	PT_NORMAL = 1,
	PT_UNKNOWN = 2,
	PT_CONTROL = 3,
	PT_USER_DEFINED = 4,
	PT_UNUSED = 5,
	PT_BYTE = 6,
};

/* The longest piece we accept: keeps mllm_detok_push()'s output (a piece plus
 * up to three held-back bytes rendered as U+FFFD) within MLLM_DETOK_MAX. */
#define PIECE_MAX 240
/* tokenizer.model files are about 0.5 MB; anything past this is not one. */
#define MODEL_FILE_MAX ((size_t)256 << 20)
#define VOCAB_MAX      (1 << 24)

static const char ws_sym[3] = {'\xe2', '\x96', '\x81'};    /* U+2581 */
static const char repl_char[3] = {'\xef', '\xbf', '\xbd'}; /* U+FFFD */

typedef struct {
	uint32_t hash;
	int32_t id; /* -1: empty slot */
} hslot;

/* Open-addressing string -> id map over the piece blob. */
typedef struct {
	hslot *slots;
	uint32_t mask;
} htab;

struct mllm_tokenizer {
	int32_t n_vocab;
	char *blob;    /* every piece, NUL-terminated, back to back */
	uint32_t *off; /* [n_vocab] piece offsets into blob */
	uint16_t *len; /* [n_vocab] piece lengths in bytes */
	float *score;  /* [n_vocab] */
	uint8_t *type; /* [n_vocab] PT_* */
	htab normal;   /* NORMAL, USER_DEFINED, UNUSED: mergeable pieces */
	htab reserved; /* UNKNOWN, CONTROL, BYTE: looked up first */
	int32_t byte_id[256];
	int32_t unk_id, bos_id, eos_id;
	bool add_bos;
	bool byte_fallback;
	bool add_dummy_prefix;
	bool remove_extra_ws;
	bool split_words; /* no piece spans "x▁" (see the file comment) */
	bool cross_dups;  /* some string is both reserved and mergeable */
	bool tight_ids;   /* encode gives at most len + 2 ids (max_ids) */
	int n_user_defined;
	int n_unused;
	size_t max_piece; /* longest mergeable piece, bytes */
	size_t max_user;  /* longest user-defined piece, bytes */
	char unk_surface[PIECE_MAX + 1];
	size_t unk_surface_len;
	/* Single-byte symbols (ASCII) resolve through this table: the final
	 * id of a one-character symbol, or -1 when it needs byte fallback. */
	int32_t ascii_id[128];
	/* [n_vocab] whether a word that is exactly this piece encodes to this
	 * piece alone (SELF_*). Most words of running text are; they then
	 * cost one lookup instead of a BPE run. Filled lazily, by whichever
	 * thread meets the word first: every thread computes the same value,
	 * so relaxed atomics suffice and the tokenizer stays shareable. */
	_Atomic unsigned char *self_enc;
};

enum { SELF_UNKNOWN = 0, SELF_YES = 1, SELF_NO = 2 };

/* ---- UTF-8 as SentencePiece sees it ------------------------------------ */

static inline bool is_trail(unsigned char c)
{
	return (c & 0xc0) == 0x80;
}

static inline bool cp_valid(uint32_t c)
{
	return c < 0xd800 || (c >= 0xe000 && c <= 0x10ffff);
}

/* SentencePiece's IsValidDecodeUTF8(): one well-formed character at s (not
 * overlong, no surrogates, at most U+10FFFF) sets *mb to its length and
 * returns true; anything else sets *mb = 1 and returns false. */
static bool utf8_valid_char(const unsigned char *s, size_t n, size_t *mb)
{
	unsigned char c = s[0];
	uint32_t cp;

	*mb = 1;
	if (c < 0x80)
		return true;
	if ((c & 0xe0) == 0xc0) {
		if (n < 2 || !is_trail(s[1]))
			return false;
		cp = ((uint32_t)(c & 0x1f) << 6) | (s[1] & 0x3f);
		if (cp < 0x80)
			return false;
		*mb = 2;
		return true;
	}
	if ((c & 0xf0) == 0xe0) {
		if (n < 3 || !is_trail(s[1]) || !is_trail(s[2]))
			return false;
		cp = ((uint32_t)(c & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
		if (cp < 0x800 || !cp_valid(cp))
			return false;
		*mb = 3;
		return true;
	}
	if ((c & 0xf8) == 0xf0) {
		if (n < 4 || !is_trail(s[1]) || !is_trail(s[2]) || !is_trail(s[3]))
			return false;
		cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
		     ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
		if (cp < 0x10000 || !cp_valid(cp))
			return false;
		*mb = 4;
		return true;
	}
	return false;
}

/* Whether the n bytes at s (shorter than their lead byte says) can still
 * become a character utf8_valid_char() accepts once more bytes arrive. The
 * reachable code points form an interval; it must meet the valid set. */
static bool utf8_could_complete(const unsigned char *s, size_t n)
{
	size_t need;
	uint32_t lo, hi, min;
	unsigned char c = s[0];

	if ((c & 0xe0) == 0xc0) {
		need = 2;
		lo = c & 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		need = 3;
		lo = c & 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		need = 4;
		lo = c & 0x07;
		min = 0x10000;
	} else {
		return false;
	}
	if (n >= need)
		return false;
	for (size_t i = 1; i < n; i++) {
		if (!is_trail(s[i]))
			return false;
		lo = (lo << 6) | (s[i] & 0x3f);
	}
	hi = lo;
	for (size_t i = n; i < need; i++) {
		lo <<= 6;
		hi = (hi << 6) | 0x3f;
	}
	if (hi < min)
		return false;
	if (lo < min)
		lo = min;
	/* [lo, hi] must meet [0, 0xD7FF] or [0xE000, 0x10FFFF]. */
	if (lo <= 0xd7ff)
		return true;
	return hi >= 0xe000 && lo <= 0x10ffff;
}

/* Length of the character at s by its lead byte alone (SentencePiece's
 * OneCharLen), bounded by n. Used on normalized text, which is valid. */
static inline size_t utf8_char_len(const char *s, size_t n)
{
	static const unsigned char tab[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
	size_t l = tab[(unsigned char)s[0] >> 4];
	return l < n ? l : n;
}

static bool utf8_all_valid(const char *s, size_t n)
{
	size_t i = 0, mb;

	while (i < n) {
		if (!utf8_valid_char((const unsigned char *)s + i, n - i, &mb))
			return false;
		i += mb;
	}
	return true;
}

/* ---- Piece hash table --------------------------------------------------- */

static inline uint64_t rd64(const char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint64_t rd32(const char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* A fast hash for short strings that never reads outside s[0, n): the tail
 * is covered by overlapping loads (n itself is mixed in first). */
static inline uint32_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n, w;
	size_t i = 0, r;

	for (; i + 8 < n; i += 8) {
		h = (h ^ rd64(s + i)) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	r = n - i;
	s += i;
	if (r >= 4)
		w = rd32(s) | (rd32(s + r - 4) << 32);
	else if (r > 0)
		w = (uint64_t)(unsigned char)s[0] | ((uint64_t)(unsigned char)s[r / 2] << 8) |
		    ((uint64_t)(unsigned char)s[r - 1] << 16);
	else
		w = 0;
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return (uint32_t)h;
}

/* memcmp(a, b, n) == 0 for short strings, inlined: pieces are a few bytes
 * and the libc call dominated lookups that hit. */
static inline bool eq_bytes(const char *a, const char *b, size_t n)
{
	if (n >= 8) {
		for (size_t i = 0; i + 8 < n; i += 8)
			if (rd64(a + i) != rd64(b + i))
				return false;
		return rd64(a + n - 8) == rd64(b + n - 8);
	}
	if (n >= 4)
		return rd32(a) == rd32(b) && rd32(a + n - 4) == rd32(b + n - 4);
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

static int htab_init(htab *t, size_t n_items)
{
	size_t cap = 16;

	while (cap < 2 * n_items + 1)
		cap <<= 1;
	t->slots = mllm_try_malloc(cap * sizeof *t->slots);
	if (!t->slots)
		return MLLM_ENOMEM;
	for (size_t i = 0; i < cap; i++)
		t->slots[i].id = -1;
	t->mask = (uint32_t)(cap - 1);
	return 0;
}

static inline int32_t htab_find(const mllm_tokenizer *tok, const htab *t, const char *s, size_t n)
{
	uint32_t h = hash_bytes(s, n);
	uint32_t i = h & t->mask;

	for (;;) {
		const hslot *e = &t->slots[i];
		if (e->id < 0)
			return -1;
		if (e->hash == h && tok->len[e->id] == n &&
		    eq_bytes(tok->blob + tok->off[e->id], s, n))
			return e->id;
		i = (i + 1) & t->mask;
	}
}

/* Returns the id already stored under the same string, or -1 after insert. */
static int32_t htab_insert(mllm_tokenizer *tok, htab *t, int32_t id)
{
	const char *s = tok->blob + tok->off[id];
	size_t n = tok->len[id];
	uint32_t h = hash_bytes(s, n);
	uint32_t i = h & t->mask;

	for (;;) {
		hslot *e = &t->slots[i];
		if (e->id < 0) {
			e->hash = h;
			e->id = id;
			return -1;
		}
		if (e->hash == h && tok->len[e->id] == n &&
		    memcmp(tok->blob + tok->off[e->id], s, n) == 0)
			return e->id;
		i = (i + 1) & t->mask;
	}
}

static inline bool type_mergeable(int t)
{
	return t == PT_NORMAL || t == PT_USER_DEFINED || t == PT_UNUSED || t == PT_UNDEFINED;
}

/* SentencePiece's PieceToId(): reserved pieces first, then mergeable ones,
 * else the unknown id. */
static inline int32_t piece_to_id(const mllm_tokenizer *tok, const char *s, size_t n)
{
	int32_t id = htab_find(tok, &tok->reserved, s, n);

	if (id >= 0)
		return id;
	id = htab_find(tok, &tok->normal, s, n);
	return id >= 0 ? id : tok->unk_id;
}

/* ---- Building a tokenizer ----------------------------------------------- */

/* Settings a loader gathers before the vocabulary is indexed. */
typedef struct {
	bool byte_fallback;
	bool add_dummy_prefix;
	bool remove_extra_ws;
	bool add_bos;
	int32_t bos_id, eos_id, unk_id; /* -1: from piece types */
	const char *unk_surface;
	size_t unk_surface_len;
} tok_opts;

static mllm_tokenizer *tok_alloc(int32_t n_vocab, size_t blob_bytes)
{
	mllm_tokenizer *tok = mllm_try_calloc(1, sizeof *tok);

	if (!tok)
		return NULL;
	tok->n_vocab = n_vocab;
	tok->blob = mllm_try_malloc(blob_bytes ? blob_bytes : 1);
	tok->off = mllm_try_calloc((size_t)n_vocab, sizeof *tok->off);
	tok->len = mllm_try_calloc((size_t)n_vocab, sizeof *tok->len);
	tok->score = mllm_try_calloc((size_t)n_vocab, sizeof *tok->score);
	tok->type = mllm_try_calloc((size_t)n_vocab, sizeof *tok->type);
	tok->self_enc = mllm_try_calloc((size_t)n_vocab, sizeof *tok->self_enc);
	if (!tok->blob || !tok->off || !tok->len || !tok->score || !tok->type || !tok->self_enc) {
		mllm_tokenizer_free(tok);
		return NULL;
	}
	return tok;
}

void mllm_tokenizer_free(mllm_tokenizer *tok)
{
	if (!tok)
		return;
	free(tok->blob);
	free(tok->off);
	free(tok->len);
	free(tok->score);
	free(tok->type);
	free((void *)tok->self_enc);
	free(tok->normal.slots);
	free(tok->reserved.slots);
	free(tok);
}

/* "<0xAB>" -> 0xAB, or -1 (SentencePiece's PieceToByte). */
static int piece_to_byte(const char *s, size_t n)
{
	int v = 0;

	if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
		return -1;
	for (int i = 3; i < 5; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* Indexes the pieces stored in tok (blob/off/len/score/type filled) and
 * checks them the way SentencePiece's model loader does. */
static int tok_finish(mllm_tokenizer *tok, const tok_opts *o, const char *src, char *err,
                      size_t errlen)
{
	int32_t n = tok->n_vocab;
	int32_t unk = -1;
	int n_bytes = 0;
	int rc;

	for (int i = 0; i < 256; i++)
		tok->byte_id[i] = -1;
	rc = htab_init(&tok->normal, (size_t)n);
	if (rc == 0)
		rc = htab_init(&tok->reserved, (size_t)n);
	if (rc)
		return mllm__seterr(err, errlen, rc, "%s: out of memory indexing %d pieces", src,
		                    (int)n);

	tok->split_words = true;
	for (int32_t i = 0; i < n; i++) {
		const char *p = tok->blob + tok->off[i];
		size_t l = tok->len[i];
		int t = tok->type[i];
		int32_t dup;

		if (l == 0)
			return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: piece %d is empty", src,
			                    (int)i);
		if (t > PT_BYTE)
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: piece %d has unknown type %d", src, (int)i, t);
		if (!utf8_all_valid(p, l))
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: piece %d is not valid UTF-8", src, (int)i);
		if (!isfinite(tok->score[i]))
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: piece %d has a non-finite score", src, (int)i);
		dup = htab_insert(tok, type_mergeable(t) ? &tok->normal : &tok->reserved, i);
		if (dup >= 0)
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: piece %d (\"%.*s\") duplicates piece %d", src,
			                    (int)i, (int)(l < 40 ? l : 40), p, (int)dup);
		if (t == PT_UNKNOWN) {
			if (unk >= 0)
				return mllm__seterr(err, errlen, MLLM_EFORMAT,
				                    "%s: two unknown pieces (%d and %d)", src,
				                    (int)unk, (int)i);
			unk = i;
		}
		if (t == PT_BYTE) {
			int b = piece_to_byte(p, l);
			if (b < 0)
				return mllm__seterr(err, errlen, MLLM_EFORMAT,
				                    "%s: byte piece %d (\"%.*s\") is not <0xXX>",
				                    src, (int)i, (int)(l < 40 ? l : 40), p);
			if (tok->byte_id[b] < 0)
				n_bytes++;
			tok->byte_id[b] = i;
		}
		if (t == PT_USER_DEFINED) {
			tok->n_user_defined++;
			if (l > tok->max_user)
				tok->max_user = l;
		}
		if (t == PT_UNUSED)
			tok->n_unused++;
		if (type_mergeable(t)) {
			if (l > tok->max_piece)
				tok->max_piece = l;
			/* A mergeable piece with "▁" after some other character
			 * could span a word cut: then encode whole texts. */
			for (size_t k = 1; k + 3 <= l && tok->split_words; k++)
				if (memcmp(p + k, ws_sym, 3) == 0 &&
				    !(k >= 3 && memcmp(p + k - 3, ws_sym, 3) == 0))
					tok->split_words = false;
		}
	}
	/* Strings that are both reserved and mergeable make the id of a merged
	 * symbol depend on lookup order; we then look every final symbol up. */
	for (int32_t i = 0; i < n && !tok->cross_dups; i++)
		if (!type_mergeable(tok->type[i]) &&
		    htab_find(tok, &tok->normal, tok->blob + tok->off[i], tok->len[i]) >= 0)
			tok->cross_dups = true;

	if (o->unk_id >= 0) {
		if (o->unk_id >= n || (unk >= 0 && unk != o->unk_id))
			return mllm__seterr(
			    err, errlen, MLLM_EFORMAT,
			    "%s: unknown-token id %d does not name the unknown piece", src,
			    (int)o->unk_id);
		unk = o->unk_id;
	}
	if (unk < 0)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: no unknown piece (<unk>)", src);
	tok->unk_id = unk;
	tok->byte_fallback = o->byte_fallback;
	if (n_bytes > 0 && !tok->byte_fallback)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: byte pieces present but byte fallback is off", src);
	if (tok->byte_fallback && n_bytes != 256)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: byte fallback needs all 256 <0xXX> pieces, found %d", src,
		                    n_bytes);
	tok->bos_id = (o->bos_id >= 0 && o->bos_id < n) ? o->bos_id : -1;
	tok->eos_id = (o->eos_id >= 0 && o->eos_id < n) ? o->eos_id : -1;
	tok->add_bos = o->add_bos && tok->bos_id >= 0;
	tok->add_dummy_prefix = o->add_dummy_prefix;
	tok->remove_extra_ws = o->remove_extra_ws;
	/* SentencePiece splits a final UNUSED piece the way the last pair that
	 * made it was queued anywhere in the text: only one whole-text run
	 * queues pairs in its order. */
	if (tok->n_unused > 0)
		tok->split_words = false;
	if (tok->n_user_defined > 0)
		for (int32_t i = 0; i < n && tok->split_words; i++)
			if (tok->type[i] == PT_USER_DEFINED &&
			    memmem(tok->blob + tok->off[i], tok->len[i], ws_sym, 3))
				tok->split_words = false;
	if (o->unk_surface_len > PIECE_MAX)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: unk_surface is too long", src);
	memcpy(tok->unk_surface, o->unk_surface, o->unk_surface_len);
	tok->unk_surface[o->unk_surface_len] = '\0';
	tok->unk_surface_len = o->unk_surface_len;

	tok->tight_ids = !tok->byte_fallback || (piece_to_id(tok, ws_sym, 3) != tok->unk_id &&
	                                         piece_to_id(tok, repl_char, 3) != tok->unk_id);
	for (int c = 0; c < 128; c++) {
		char ch = (char)c;
		int32_t id = piece_to_id(tok, &ch, 1);
		tok->ascii_id[c] = (id == tok->unk_id && tok->byte_fallback) ? -1 : id;
	}
	return 0;
}

/* ---- SentencePiece ModelProto (protobuf) -------------------------------- */

/* A bounded read cursor over protobuf bytes. Every read checks the bound;
 * a failed read sets bad and returns zeros, so callers check once. */
typedef struct {
	const unsigned char *p, *end;
	bool bad;
} pb;

static uint64_t pb_varint(pb *r)
{
	uint64_t v = 0;

	for (int shift = 0; shift < 70; shift += 7) {
		if (r->p >= r->end) {
			r->bad = true;
			return 0;
		}
		unsigned char c = *r->p++;
		if (shift == 63 && (c & 0x7e)) {
			r->bad = true; /* more than 64 bits */
			return 0;
		}
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return v;
	}
	r->bad = true;
	return 0;
}

/* Reads the next field's key. Returns false at the end or on error. */
static bool pb_next(pb *r, uint32_t *field, int *wire)
{
	uint64_t key;

	if (r->bad || r->p >= r->end)
		return false;
	key = pb_varint(r);
	if (r->bad)
		return false;
	*field = (uint32_t)(key >> 3);
	*wire = (int)(key & 7);
	if (*field == 0 || key >> 3 > 0x1fffffff) {
		r->bad = true;
		return false;
	}
	return true;
}

/* A length-delimited payload as a sub-cursor. */
static pb pb_bytes(pb *r)
{
	pb sub = {NULL, NULL, true};
	uint64_t n = pb_varint(r);

	if (r->bad)
		return sub;
	if (n > (uint64_t)(r->end - r->p)) {
		r->bad = true;
		return sub;
	}
	sub.p = r->p;
	sub.end = r->p + n;
	sub.bad = false;
	r->p += n;
	return sub;
}

static float pb_float(pb *r)
{
	float f;

	if (r->end - r->p < 4) {
		r->bad = true;
		return 0;
	}
	memcpy(&f, r->p, 4); /* protobuf fixed32 is little-endian, as we are */
	r->p += 4;
	return f;
}

static void pb_skip(pb *r, int wire)
{
	switch (wire) {
	case 0:
		(void)pb_varint(r);
		break;
	case 1:
		if (r->end - r->p < 8)
			r->bad = true;
		else
			r->p += 8;
		break;
	case 2:
		(void)pb_bytes(r);
		break;
	case 5:
		if (r->end - r->p < 4)
			r->bad = true;
		else
			r->p += 4;
		break;
	default:
		r->bad = true; /* groups (3, 4) never appear in ModelProto */
	}
}

/* Proto2 defaults of the fields we read. */
typedef struct {
	int model_type;                 /* TrainerSpec.model_type = 3 (UNIGRAM=1, BPE=2) */
	bool byte_fallback;             /* TrainerSpec 35 */
	bool ws_suffix;                 /* TrainerSpec 24 treat_whitespace_as_suffix */
	int64_t unk_id, bos_id, eos_id; /* TrainerSpec 40, 41, 42 */
	pb unk_surface;                 /* TrainerSpec 44 */
	bool has_unk_surface;
	bool add_dummy_prefix; /* NormalizerSpec 3 */
	bool remove_extra_ws;  /* NormalizerSpec 4 */
	bool escape_ws;        /* NormalizerSpec 5 */
	size_t charsmap_len;   /* NormalizerSpec 2 */
	size_t denorm_charsmap_len;
} sp_spec;

static void parse_trainer(pb r, sp_spec *s, bool *bad)
{
	uint32_t f;
	int w;

	while (pb_next(&r, &f, &w)) {
		if (w == 0 && (f == 3 || f == 24 || f == 35 || f == 40 || f == 41 || f == 42)) {
			uint64_t v = pb_varint(&r);
			if (f == 3)
				s->model_type = (int)(v > 100 ? 100 : v);
			else if (f == 24)
				s->ws_suffix = v != 0;
			else if (f == 35)
				s->byte_fallback = v != 0;
			else if (f == 40)
				s->unk_id = (int64_t)v; /* int32: negatives are 10-byte */
			else if (f == 41)
				s->bos_id = (int64_t)v;
			else
				s->eos_id = (int64_t)v;
		} else if (w == 2 && f == 44) {
			s->unk_surface = pb_bytes(&r);
			s->has_unk_surface = true;
		} else {
			pb_skip(&r, w);
		}
	}
	if (r.bad)
		*bad = true;
}

static void parse_normalizer(pb r, sp_spec *s, bool denorm, bool *bad)
{
	uint32_t f;
	int w;

	while (pb_next(&r, &f, &w)) {
		if (w == 0 && !denorm && (f == 3 || f == 4 || f == 5)) {
			bool v = pb_varint(&r) != 0;
			if (f == 3)
				s->add_dummy_prefix = v;
			else if (f == 4)
				s->remove_extra_ws = v;
			else
				s->escape_ws = v;
		} else if (w == 2 && f == 2) {
			pb m = pb_bytes(&r);
			size_t n = r.bad ? 0 : (size_t)(m.end - m.p);
			if (denorm)
				s->denorm_charsmap_len = n;
			else
				s->charsmap_len = n;
		} else {
			pb_skip(&r, w);
		}
	}
	if (r.bad)
		*bad = true;
}

/* One SentencePiece message: piece (1), score (2), type (3). */
static bool parse_piece(pb r, pb *piece, float *score, int *type)
{
	uint32_t f;
	int w;
	bool have_piece = false;

	*score = 0;
	*type = PT_NORMAL;
	while (pb_next(&r, &f, &w)) {
		if (f == 1 && w == 2) {
			*piece = pb_bytes(&r);
			have_piece = true;
		} else if (f == 2 && w == 5) {
			*score = pb_float(&r);
		} else if (f == 3 && w == 0) {
			uint64_t v = pb_varint(&r);
			*type = v > 255 ? 255 : (int)v;
		} else {
			pb_skip(&r, w);
		}
	}
	if (!have_piece) {
		piece->p = piece->end = r.end;
	}
	return !r.bad;
}

/* Parses a serialized ModelProto held in data[size]. */
static int tokenizer_from_proto(const unsigned char *data, size_t size, const char *src,
                                mllm_tokenizer **out, char *err, size_t errlen)
{
	pb r = {data, data + size, false};
	sp_spec s = {.model_type = 1,
	             .unk_id = 0,
	             .bos_id = 1,
	             .eos_id = 2,
	             .add_dummy_prefix = true,
	             .remove_extra_ws = true,
	             .escape_ws = true};
	uint32_t f;
	int w;
	size_t n_pieces = 0, blob = 0;
	bool bad = false;
	mllm_tokenizer *tok;
	tok_opts o;
	int rc;

	/* Pass 1: count pieces and their bytes, read the specs. */
	while (pb_next(&r, &f, &w)) {
		if (f == 1 && w == 2) {
			pb m = pb_bytes(&r);
			pb piece = {NULL, NULL, false};
			float sc;
			int t;
			if (r.bad || !parse_piece(m, &piece, &sc, &t)) {
				bad = true;
				break;
			}
			n_pieces++;
			blob += (size_t)(piece.end - piece.p) + 1;
		} else if (f == 2 && w == 2) {
			parse_trainer(pb_bytes(&r), &s, &bad);
		} else if (f == 3 && w == 2) {
			parse_normalizer(pb_bytes(&r), &s, false, &bad);
		} else if (f == 5 && w == 2) {
			parse_normalizer(pb_bytes(&r), &s, true, &bad);
		} else {
			pb_skip(&r, w);
		}
	}
	if (r.bad || bad)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: not a SentencePiece model (malformed protobuf)", src);
	if (n_pieces == 0)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: no pieces in the model", src);
	if (n_pieces > VOCAB_MAX)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: %zu pieces is too many", src,
		                    n_pieces);
	if (s.model_type != 2)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: SentencePiece model type %s is not supported (BPE only)",
		                    src,
		                    s.model_type == 1   ? "unigram"
		                    : s.model_type == 3 ? "word"
		                    : s.model_type == 4 ? "char"
		                                        : "unknown");
	if (s.charsmap_len > 0 || s.denorm_charsmap_len > 0)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: normalization rules (precompiled_charsmap) are not "
		                    "supported; only the identity normalizer is",
		                    src);
	if (!s.escape_ws || s.ws_suffix)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED, "%s: %s is not supported", src,
		                    s.ws_suffix ? "treat_whitespace_as_suffix"
		                                : "escape_whitespaces = false");

	tok = tok_alloc((int32_t)n_pieces, blob);
	if (!tok)
		return mllm__seterr(err, errlen, MLLM_ENOMEM, "%s: out of memory", src);

	/* Pass 2: copy the pieces. */
	r = (pb){data, data + size, false};
	size_t i = 0, pos = 0;
	while (pb_next(&r, &f, &w)) {
		if (f == 1 && w == 2) {
			pb m = pb_bytes(&r);
			pb piece = {NULL, NULL, false};
			float sc;
			int t;
			(void)parse_piece(m, &piece, &sc, &t); /* checked in pass 1 */
			size_t l = (size_t)(piece.end - piece.p);
			if (l > PIECE_MAX) {
				rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
				                  "%s: piece %zu is %zu bytes long (limit %d)", src,
				                  i, l, PIECE_MAX);
				goto fail;
			}
			memcpy(tok->blob + pos, piece.p, l);
			tok->blob[pos + l] = '\0';
			tok->off[i] = (uint32_t)pos;
			tok->len[i] = (uint16_t)l;
			tok->score[i] = sc;
			tok->type[i] = (uint8_t)t;
			pos += l + 1;
			i++;
		} else {
			pb_skip(&r, w);
		}
	}

	o = (tok_opts){
	    .byte_fallback = s.byte_fallback,
	    .add_dummy_prefix = s.add_dummy_prefix,
	    .remove_extra_ws = s.remove_extra_ws,
	    .add_bos = true,
	    .bos_id = -1,
	    .eos_id = -1,
	    .unk_id = -1,
	    .unk_surface = " \xe2\x81\x87 ",
	    .unk_surface_len = 5,
	};
	if (s.has_unk_surface) {
		o.unk_surface = (const char *)s.unk_surface.p;
		o.unk_surface_len = (size_t)(s.unk_surface.end - s.unk_surface.p);
	}
	/* SentencePiece's bos_id()/eos_id() report only control pieces. */
	if (s.bos_id >= 0 && s.bos_id < (int64_t)n_pieces && tok->type[s.bos_id] == PT_CONTROL)
		o.bos_id = (int32_t)s.bos_id;
	if (s.eos_id >= 0 && s.eos_id < (int64_t)n_pieces && tok->type[s.eos_id] == PT_CONTROL)
		o.eos_id = (int32_t)s.eos_id;
	rc = tok_finish(tok, &o, src, err, errlen);
	if (rc)
		goto fail;
	*out = tok;
	return 0;
fail:
	mllm_tokenizer_free(tok);
	return rc;
}

static int read_file(const char *path, unsigned char **data, size_t *size, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long n;
	int rc;

	if (!f)
		return mllm__seterr(err, errlen, errno == ENOENT ? MLLM_ENOTFOUND : MLLM_EIO,
		                    "%s: cannot open: %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		rc = mllm__seterr(err, errlen, MLLM_EIO, "%s: cannot read: %s", path,
		                  strerror(errno));
		goto fail;
	}
	if ((size_t)n > MODEL_FILE_MAX) {
		rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
		                  "%s: %ld bytes is too large for a tokenizer model", path, n);
		goto fail;
	}
	buf = mllm_try_malloc((size_t)n + 1);
	if (!buf) {
		rc = mllm__seterr(err, errlen, MLLM_ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		rc = mllm__seterr(err, errlen, MLLM_EIO, "%s: short read", path);
		goto fail;
	}
	fclose(f);
	*data = buf;
	*size = (size_t)n;
	return 0;
fail:
	free(buf);
	fclose(f);
	return rc;
}

/* ---- GGUF metadata --------------------------------------------------------- */

int mllm__tokenizer_from_gguf(const mllm__gguf *g, mllm_tokenizer **out, char *err, size_t errlen)
{
	const char *src = mllm__gguf_path(g);
	const char *model;
	size_t model_len;
	int et_scores = -1, et_types = -1, et_tokens = -1;
	uint64_t n, n_scores = 0, n_types = 0;
	const void *scores = NULL, *types = NULL, *tokens = NULL;
	size_t blob = 0;
	mllm_tokenizer *tok = NULL;
	tok_opts o = {.add_dummy_prefix = true,
	              .add_bos = true,
	              .bos_id = -1,
	              .eos_id = -1,
	              .unk_id = -1,
	              .unk_surface = " \xe2\x81\x87 ",
	              .unk_surface_len = 5};
	int rc;
	int32_t v32;
	bool vb;

	*out = NULL;
	if (!src)
		src = "gguf";
	rc = mllm__gguf_get_str(g, "tokenizer.ggml.model", &model, &model_len);
	if (rc)
		return mllm__seterr(err, errlen,
		                    rc == MLLM_ENOTFOUND ? MLLM_ENOTFOUND : MLLM_EFORMAT,
		                    "%s: no tokenizer.ggml.model in the metadata", src);
	if (model_len != 5 || memcmp(model, "llama", 5) != 0)
		return mllm__seterr(
		    err, errlen, MLLM_EUNSUPPORTED,
		    "%s: tokenizer model \"%.*s\" is not supported (only \"llama\", "
		    "SentencePiece BPE)",
		    src, (int)(model_len < 40 ? model_len : 40), model);
	rc = mllm__gguf_get_arr(g, "tokenizer.ggml.tokens", &et_tokens, &n, &tokens);
	if (rc || et_tokens != MLLM_GGUF_STRING)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tokenizer.ggml.tokens is missing or not a string array",
		                    src);
	if (n == 0 || n > VOCAB_MAX)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tokenizer.ggml.tokens has %llu entries", src,
		                    (unsigned long long)n);
	rc = mllm__gguf_get_arr(g, "tokenizer.ggml.scores", &et_scores, &n_scores, &scores);
	if (rc == 0 && (et_scores != MLLM_GGUF_FLOAT32 || n_scores != n))
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tokenizer.ggml.scores is not %llu float32s", src,
		                    (unsigned long long)n);
	if (rc && rc != MLLM_ENOTFOUND)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: bad tokenizer.ggml.scores",
		                    src);
	if (rc)
		scores = NULL;
	rc = mllm__gguf_get_arr(g, "tokenizer.ggml.token_type", &et_types, &n_types, &types);
	if (rc == 0 &&
	    ((et_types != MLLM_GGUF_INT32 && et_types != MLLM_GGUF_UINT32) || n_types != n))
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tokenizer.ggml.token_type is not %llu int32s", src,
		                    (unsigned long long)n);
	if (rc && rc != MLLM_ENOTFOUND)
		return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: bad tokenizer.ggml.token_type",
		                    src);
	if (rc)
		types = NULL;

	for (uint64_t i = 0; i < n; i++) {
		const char *s;
		size_t l;
		rc = mllm__gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s, &l);
		if (rc)
			return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: bad token %llu", src,
			                    (unsigned long long)i);
		if (l > PIECE_MAX)
			return mllm__seterr(err, errlen, MLLM_EFORMAT,
			                    "%s: token %llu is %zu bytes long (limit %d)", src,
			                    (unsigned long long)i, l, PIECE_MAX);
		blob += l + 1;
	}
	tok = tok_alloc((int32_t)n, blob);
	if (!tok)
		return mllm__seterr(err, errlen, MLLM_ENOMEM, "%s: out of memory", src);
	size_t pos = 0;
	for (uint64_t i = 0; i < n; i++) {
		const char *s;
		size_t l;
		rc = mllm__gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s, &l);
		if (rc) {
			rc = mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: bad token %llu", src,
			                  (unsigned long long)i);
			goto fail;
		}
		memcpy(tok->blob + pos, s, l);
		tok->blob[pos + l] = '\0';
		tok->off[i] = (uint32_t)pos;
		tok->len[i] = (uint16_t)l;
		pos += l + 1;
		if (scores)
			memcpy(&tok->score[i], (const char *)scores + 4 * i, 4);
		if (types) {
			int32_t t;
			memcpy(&t, (const char *)types + 4 * i, 4);
			if (t < 0 || t > PT_BYTE) {
				rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
				                  "%s: token %llu has unknown type %d", src,
				                  (unsigned long long)i, (int)t);
				goto fail;
			}
			tok->type[i] = (uint8_t)t;
			if (t == PT_BYTE)
				o.byte_fallback = true;
		} else {
			tok->type[i] = PT_NORMAL;
		}
	}

	if (mllm__gguf_get_i32(g, "tokenizer.ggml.bos_token_id", &v32) == 0)
		o.bos_id = v32;
	else if (n > 1 && tok->type[1] == PT_CONTROL)
		o.bos_id = 1;
	if (mllm__gguf_get_i32(g, "tokenizer.ggml.eos_token_id", &v32) == 0)
		o.eos_id = v32;
	else if (n > 2 && tok->type[2] == PT_CONTROL)
		o.eos_id = 2;
	if (mllm__gguf_get_i32(g, "tokenizer.ggml.unknown_token_id", &v32) == 0)
		o.unk_id = v32;
	if (mllm__gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &vb) == 0)
		o.add_bos = vb;
	if (mllm__gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &vb) == 0)
		o.add_dummy_prefix = vb;
	if (mllm__gguf_get_bool(g, "tokenizer.ggml.remove_extra_whitespaces", &vb) == 0)
		o.remove_extra_ws = vb;
	/* Without token types: <0xXX> pieces are bytes, and the ids the
	 * metadata names are the unknown and control pieces. */
	if (!types) {
		for (uint64_t i = 0; i < n; i++) {
			if (piece_to_byte(tok->blob + tok->off[i], tok->len[i]) >= 0) {
				tok->type[i] = PT_BYTE;
				o.byte_fallback = true;
			}
		}
		if (o.unk_id >= 0 && (uint64_t)o.unk_id < n)
			tok->type[o.unk_id] = PT_UNKNOWN;
		if (o.bos_id >= 0 && (uint64_t)o.bos_id < n)
			tok->type[o.bos_id] = PT_CONTROL;
		if (o.eos_id >= 0 && (uint64_t)o.eos_id < n)
			tok->type[o.eos_id] = PT_CONTROL;
	}
	if (o.unk_id >= 0 && (uint64_t)o.unk_id < n && tok->type[o.unk_id] != PT_UNKNOWN) {
		/* llama.cpp writes the unknown id even when it names a control
		 * piece; trust the types, as llama.cpp does for SPM. */
		o.unk_id = -1;
	}
	rc = tok_finish(tok, &o, src, err, errlen);
	if (rc)
		goto fail;
	*out = tok;
	return 0;
fail:
	mllm_tokenizer_free(tok);
	return rc;
}

int mllm_tokenizer_load(const char *path, mllm_tokenizer **out, char *err, size_t errlen)
{
	size_t pl;
	unsigned char *data = NULL;
	size_t size = 0;
	int rc;

	if (!out)
		return MLLM_EINVAL;
	*out = NULL;
	if (!path)
		return mllm__seterr(err, errlen, MLLM_EINVAL, "tokenizer: no path");
	pl = strlen(path);
	if (pl >= 5 && strcmp(path + pl - 5, ".gguf") == 0) {
		mllm__gguf *g = NULL;
		rc = mllm__gguf_open(path, &g, err, errlen);
		if (rc)
			return rc;
		rc = mllm__tokenizer_from_gguf(g, out, err, errlen);
		mllm__gguf_close(g);
		return rc;
	}
	rc = read_file(path, &data, &size, err, errlen);
	if (rc)
		return rc;
	rc = tokenizer_from_proto(data, size, path, out, err, errlen);
	free(data);
	if (rc == 0)
		MLLM_LOG(MLLM_LOG_DEBUG, "tokenizer %s: %d pieces, byte fallback %s", path,
		         (int)(*out)->n_vocab, (*out)->byte_fallback ? "on" : "off");
	return rc;
}

/* ---- Accessors ------------------------------------------------------------ */

int32_t mllm_tokenizer_n_vocab(const mllm_tokenizer *tok)
{
	return tok->n_vocab;
}

int32_t mllm_tokenizer_bos(const mllm_tokenizer *tok)
{
	return tok->bos_id;
}

int32_t mllm_tokenizer_eos(const mllm_tokenizer *tok)
{
	return tok->eos_id;
}

bool mllm_tokenizer_add_bos(const mllm_tokenizer *tok)
{
	return tok->add_bos;
}

void mllm_tokenizer_set_add_bos(mllm_tokenizer *tok, bool add_bos)
{
	tok->add_bos = add_bos && tok->bos_id >= 0;
}

const char *mllm_tokenizer_piece(const mllm_tokenizer *tok, int32_t id, size_t *len)
{
	if (id < 0 || id >= tok->n_vocab)
		return NULL;
	if (len)
		*len = tok->len[id];
	return tok->blob + tok->off[id];
}

bool mllm_tokenizer_is_control(const mllm_tokenizer *tok, int32_t id)
{
	return id >= 0 && id < tok->n_vocab && tok->type[id] == PT_CONTROL;
}

size_t mllm_tokenizer_token_bytes(const mllm_tokenizer *tok, int32_t id, char *out, size_t cap)
{
	const char *p;
	size_t len, o = 0;

	if (!tok || id < 0 || id >= tok->n_vocab || cap == 0)
		return 0;
	p = tok->blob + tok->off[id];
	len = tok->len[id];
	/* Byte pieces were checked to be <0xXX> at load. */
	if (tok->type[id] == PT_BYTE) {
		out[0] = (char)piece_to_byte(p, len);
		return 1;
	}
	for (size_t i = 0; i < len && o < cap; i++) {
		if (i + 2 < len && (unsigned char)p[i] == 0xE2 && (unsigned char)p[i + 1] == 0x96 &&
		    (unsigned char)p[i + 2] == 0x81) {
			out[o++] = ' ';
			i += 2;
		} else {
			out[o++] = p[i];
		}
	}
	return o;
}

size_t mllm_tokenizer_max_ids(const mllm_tokenizer *tok, size_t len)
{
	/* Each input byte normalizes to at most 3 bytes (U+FFFD, "▁") which
	 * may each fall back to a byte piece; plus the dummy prefix and BOS.
	 * When "▁" and U+FFFD are pieces (LLaMA) or nothing falls back to
	 * bytes, every input byte yields at most one id. */
	if (tok->tight_ids)
		return len > SIZE_MAX - 2 ? SIZE_MAX : len + 2;
	if (len > (SIZE_MAX - 8) / 3)
		return SIZE_MAX;
	return 3 * len + 5;
}

/* ---- Normalization ------------------------------------------------------ */

/* Longest user-defined piece that prefixes s (0 if none). */
static size_t match_user(const mllm_tokenizer *tok, const char *s, size_t n)
{
	size_t m = tok->max_user < n ? tok->max_user : n;

	for (size_t l = m; l > 0; l--) {
		int32_t id = htab_find(tok, &tok->normal, s, l);
		if (id >= 0 && tok->type[id] == PT_USER_DEFINED)
			return l;
	}
	return 0;
}

/* SentencePiece's Normalizer::Normalize() for the identity rule set: writes
 * the normalized text to out (room for 3 * len + 3 bytes) and returns its
 * length. Invalid UTF-8 becomes U+FFFD, one per byte; spaces become "▁". */
static size_t normalize(const mllm_tokenizer *tok, const char *text, size_t len, char *out)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0, o = 0;
	bool prev_space;

	if (tok->remove_extra_ws)
		while (i < len && s[i] == ' ')
			i++;
	if (i == len)
		return 0;
	if (tok->add_dummy_prefix) {
		memcpy(out, ws_sym, 3);
		o = 3;
	}
	prev_space = tok->remove_extra_ws;
	while (i < len) {
		unsigned char c = s[i];
		size_t mb;

		if (tok->n_user_defined > 0) {
			size_t u = match_user(tok, text + i, len - i);
			if (u > 0) {
				/* Copied as is, but spaces are still escaped. */
				for (size_t k = 0; k < u; k++) {
					if (text[i + k] == ' ') {
						memcpy(out + o, ws_sym, 3);
						o += 3;
					} else {
						out[o++] = text[i + k];
					}
				}
				prev_space = tok->remove_extra_ws && text[i + u - 1] == ' ';
				i += u;
				continue;
			}
		}
		if (c < 0x80) {
			if (c == ' ') {
				if (!(tok->remove_extra_ws && prev_space)) {
					memcpy(out + o, ws_sym, 3);
					o += 3;
				}
				prev_space = tok->remove_extra_ws;
			} else {
				out[o++] = (char)c;
				prev_space = false;
			}
			i++;
			continue;
		}
		if (utf8_valid_char(s + i, len - i, &mb)) {
			memcpy(out + o, text + i, mb);
			o += mb;
		} else {
			memcpy(out + o, repl_char, 3);
			o += 3;
		}
		i += mb;
		prev_space = false;
	}
	if (tok->remove_extra_ws)
		while (o >= 3 && memcmp(out + o - 3, ws_sym, 3) == 0)
			o -= 3;
	return o;
}

/* ---- BPE ---------------------------------------------------------------- */

typedef struct {
	uint32_t start; /* offset in the normalized text */
	uint32_t len;   /* 0: merged away */
	int32_t prev, next;
	int32_t id;  /* id of the merged piece, -1 if a single character */
	bool freeze; /* user-defined piece: never merged */
} bpe_sym;

typedef struct {
	float score;
	int32_t left, right;
	uint32_t size;
	int32_t id;
} bpe_pair;

/* Recorded for UNUSED pieces only: how a piece was put together, so that
 * final UNUSED symbols can be split again (SentencePiece's rev_merge). */
typedef struct {
	int32_t id;
	uint32_t l_start, l_len, r_start, r_len;
} bpe_rev;

typedef struct {
	bpe_sym *sym;
	size_t sym_cap;
	bpe_pair *heap;
	size_t heap_n, heap_cap;
	bpe_rev *rev;
	size_t rev_n, rev_cap;
	int32_t *ids; /* caller's output */
	size_t cap, n;
	int32_t last; /* the id emitted last */
} bpe_work;

static inline bool pair_before(const bpe_pair *a, const bpe_pair *b)
{
	return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(bpe_work *w, const bpe_pair *p)
{
	size_t i;

	if (w->heap_n == w->heap_cap) {
		size_t nc = w->heap_cap ? 2 * w->heap_cap : 64;
		bpe_pair *nh = mllm_try_realloc(w->heap, nc * sizeof *nh);
		if (!nh)
			return MLLM_ENOMEM;
		w->heap = nh;
		w->heap_cap = nc;
	}
	i = w->heap_n++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!pair_before(p, &w->heap[parent]))
			break;
		w->heap[i] = w->heap[parent];
		i = parent;
	}
	w->heap[i] = *p;
	return 0;
}

static void heap_pop(bpe_work *w, bpe_pair *top)
{
	bpe_pair last;
	size_t i = 0, n;

	*top = w->heap[0];
	n = --w->heap_n;
	if (n == 0)
		return;
	last = w->heap[n];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && pair_before(&w->heap[c + 1], &w->heap[c]))
			c++;
		if (!pair_before(&w->heap[c], &last))
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	w->heap[i] = last;
}

static int rev_record(bpe_work *w, int32_t id, const bpe_sym *l, const bpe_sym *r)
{
	for (size_t k = 0; k < w->rev_n; k++) {
		if (w->rev[k].id == id) {
			w->rev[k] = (bpe_rev){id, l->start, l->len, r->start, r->len};
			return 0;
		}
	}
	if (w->rev_n == w->rev_cap) {
		size_t nc = w->rev_cap ? 2 * w->rev_cap : 16;
		bpe_rev *nr = mllm_try_realloc(w->rev, nc * sizeof *nr);
		if (!nr)
			return MLLM_ENOMEM;
		w->rev = nr;
		w->rev_cap = nc;
	}
	w->rev[w->rev_n++] = (bpe_rev){id, l->start, l->len, r->start, r->len};
	return 0;
}

/* SentencePiece's MaybeAddNewSymbolPair(). */
static int try_pair(const mllm_tokenizer *tok, bpe_work *w, const char *text, int32_t left,
                    int32_t right)
{
	const bpe_sym *l, *r;
	size_t n;
	int32_t id;
	bpe_pair p;

	if (left < 0 || right < 0)
		return 0;
	l = &w->sym[left];
	r = &w->sym[right];
	if (l->freeze || r->freeze)
		return 0;
	n = (size_t)l->len + r->len;
	if (n > tok->max_piece)
		return 0;
	id = htab_find(tok, &tok->normal, text + l->start, n);
	if (id < 0)
		return 0;
	p = (bpe_pair){tok->score[id], left, right, (uint32_t)n, id};
	if (tok->type[id] == PT_UNUSED && rev_record(w, id, l, r))
		return MLLM_ENOMEM;
	return heap_push(w, &p);
}

static inline void emit(bpe_work *w, int32_t id)
{
	if (w->n < w->cap)
		w->ids[w->n] = id;
	w->n++;
	w->last = id;
}

/* Emits the final id(s) of the symbol text[start, start+len), with id the
 * merged piece's id when known (SentencePiece's resegment + byte fallback). */
static void emit_symbol(const mllm_tokenizer *tok, bpe_work *w, const char *text, uint32_t start,
                        uint32_t len, int32_t id, int depth)
{
	if (id < 0 || tok->cross_dups) {
		if (len == 1 && (unsigned char)text[start] < 0x80) {
			id = tok->ascii_id[(unsigned char)text[start]];
			if (id < 0)
				id = tok->unk_id;
		} else {
			id = piece_to_id(tok, text + start, len);
		}
	}
	if (tok->type[id] == PT_UNUSED && depth < 64) {
		for (size_t k = 0; k < w->rev_n; k++) {
			const bpe_rev *r = &w->rev[k];
			if (r->id == id) {
				emit_symbol(tok, w, text, r->l_start, r->l_len, -1, depth + 1);
				emit_symbol(tok, w, text, r->r_start, r->r_len, -1, depth + 1);
				return;
			}
		}
	}
	if (tok->type[id] == PT_UNKNOWN) {
		if (tok->byte_fallback) {
			for (uint32_t k = 0; k < len; k++)
				emit(w, tok->byte_id[(unsigned char)text[start + k]]);
			return;
		}
		/* Without byte fallback SentencePiece merges a run of unknown
		 * symbols into one <unk>. */
		if (w->last == id)
			return;
	}
	emit(w, id);
}

/* The calling thread's cancel flag (mllm_tokenizer_cancel_watch). */
static _Thread_local const volatile _Atomic(bool) *enc_cancel;

static bool enc_cancelled(void)
{
	return enc_cancel && atomic_load_explicit(enc_cancel, memory_order_relaxed);
}

/* Runs BPE over one word text[0, n) (absolute offset base in the whole
 * normalized text, so recorded offsets stay valid). */
static int bpe_word(const mllm_tokenizer *tok, bpe_work *w, const char *text, size_t base, size_t n)
{
	size_t n_sym = 0;
	int rc;

	/* One symbol per character (or per user-defined piece, frozen). */
	if (n > w->sym_cap) {
		size_t nc = w->sym_cap ? w->sym_cap : 64;
		while (nc < n)
			nc *= 2;
		bpe_sym *ns = mllm_try_realloc(w->sym, nc * sizeof *ns);
		if (!ns)
			return MLLM_ENOMEM;
		w->sym = ns;
		w->sym_cap = nc;
	}
	for (size_t i = 0; i < n;) {
		size_t l = 0;
		bool freeze = false;
		if (tok->n_user_defined > 0) {
			l = match_user(tok, text + base + i, n - i);
			freeze = l > 0;
		}
		if (l == 0)
			l = utf8_char_len(text + base + i, n - i);
		w->sym[n_sym] = (bpe_sym){(uint32_t)(base + i), (uint32_t)l, (int32_t)n_sym - 1,
		                          (int32_t)n_sym + 1,   -1,          freeze};
		n_sym++;
		i += l;
	}
	if (n_sym == 0)
		return 0;
	w->sym[n_sym - 1].next = -1;

	w->heap_n = 0;
	for (size_t i = 0; i + 1 < n_sym; i++) {
		rc = try_pair(tok, w, text, (int32_t)i, (int32_t)i + 1);
		if (rc)
			return rc;
	}
	for (uint32_t pops = 1; w->heap_n > 0; pops++) {
		bpe_pair top;
		bpe_sym *l, *r;

		/* A word can be the whole text (no spaces): check the cancel
		 * flag inside it too, every 4096 merges. */
		if ((pops & 4095) == 0 && enc_cancelled())
			return MLLM_ECANCELLED;
		heap_pop(w, &top);
		l = &w->sym[top.left];
		r = &w->sym[top.right];
		/* Stale: one side was merged since this pair was queued. */
		if (l->len == 0 || r->len == 0 || l->len + r->len != top.size)
			continue;
		l->len += r->len;
		l->id = top.id;
		l->next = r->next;
		if (r->next >= 0)
			w->sym[r->next].prev = top.left;
		r->len = 0;
		rc = try_pair(tok, w, text, l->prev, top.left);
		if (rc == 0)
			rc = try_pair(tok, w, text, top.left, l->next);
		if (rc)
			return rc;
	}
	for (int32_t i = 0; i >= 0; i = w->sym[i].next)
		emit_symbol(tok, w, text, w->sym[i].start, w->sym[i].len, w->sym[i].id, 0);
	return 0;
}

/* Stack space for typical prompts, so short encodes do not touch malloc. */
#define ENC_STACK_TEXT 4096

void mllm_tokenizer_cancel_watch(const volatile _Atomic(bool) *flag)
{
	enc_cancel = flag;
}

int mllm_tokenizer_encode(const mllm_tokenizer *tok, const char *text, size_t len, bool add_bos,
                          int32_t *ids, size_t cap, size_t *n_ids)
{
	char stack_text[ENC_STACK_TEXT];
	bpe_sym stack_sym[256];
	bpe_pair stack_heap[512];
	char *norm = stack_text;
	size_t nlen, need;
	bpe_work w = {
	    .sym = stack_sym, .sym_cap = 256, .heap = NULL, .ids = ids, .cap = cap, .last = -1};
	bool heap_on_stack = true;
	int rc = 0;

	if (n_ids)
		*n_ids = 0;
	if (!tok || (!text && len > 0) || (!ids && cap > 0))
		return MLLM_EINVAL;
	if (len > (SIZE_MAX - 16) / 3 || len > UINT32_MAX / 4)
		return MLLM_ETOOLONG;
	need = 3 * len + 3;
	if (need > sizeof stack_text) {
		norm = mllm_try_malloc(need);
		if (!norm)
			return MLLM_ENOMEM;
	}
	/* The heap starts on the stack; heap_push reallocs, so copy it out the
	 * first time it grows (tracked by heap_on_stack). */
	w.heap = stack_heap;
	w.heap_cap = sizeof stack_heap / sizeof stack_heap[0];

	if (add_bos && tok->bos_id >= 0)
		emit(&w, tok->bos_id);
	nlen = len ? normalize(tok, text, len, norm) : 0;

	size_t start = 0;
	while (start < nlen && rc == 0) {
		size_t end = nlen;
		if (enc_cancelled()) {
			rc = MLLM_ECANCELLED;
			break;
		}
		if (tok->split_words) {
			/* The word ends before the next "▁" that follows a
			 * character other than "▁". */
			size_t i = start;
			while (i + 3 <= nlen && memcmp(norm + i, ws_sym, 3) == 0)
				i += 3;
			end = nlen;
			while (i < nlen) {
				const char *p = memchr(norm + i, '\xe2', nlen - i);
				if (!p)
					break;
				i = (size_t)(p - norm);
				if (i + 3 <= nlen && p[1] == ws_sym[1] && p[2] == ws_sym[2]) {
					end = i;
					break;
				}
				i++;
			}
		}
		/* A word that is one piece and known to encode to itself. */
		size_t wl = end - start;
		int32_t wid = -1;
		if (wl <= tok->max_piece && tok->n_unused == 0) {
			wid = htab_find(tok, &tok->normal, norm + start, wl);
			if (wid >= 0 && atomic_load_explicit(&tok->self_enc[wid],
			                                     memory_order_relaxed) == SELF_YES) {
				emit(&w, wid);
				start = end;
				continue;
			}
		}
		/* Swap in malloc'd storage before bpe_word may realloc. */
		if (heap_on_stack && end - start > w.heap_cap / 3) {
			size_t hc = 3 * (end - start) + 16;
			bpe_pair *nh = mllm_try_malloc(hc * sizeof *nh);
			if (!nh) {
				rc = MLLM_ENOMEM;
				break;
			}
			w.heap = nh;
			w.heap_cap = hc;
			heap_on_stack = false;
		}
		if (w.sym == stack_sym && end - start > w.sym_cap) {
			size_t sc = end - start;
			bpe_sym *ns = mllm_try_malloc(sc * sizeof *ns);
			if (!ns) {
				rc = MLLM_ENOMEM;
				break;
			}
			w.sym = ns;
			w.sym_cap = sc;
		}
		size_t n0 = w.n;
		rc = bpe_word(tok, &w, norm, start, end - start);
		if (rc == 0 && wid >= 0)
			atomic_store_explicit(&tok->self_enc[wid],
			                      w.n == n0 + 1 && w.last == wid ? SELF_YES : SELF_NO,
			                      memory_order_relaxed);
		start = end;
	}

	if (norm != stack_text)
		free(norm);
	if (w.sym != stack_sym)
		free(w.sym);
	if (!heap_on_stack)
		free(w.heap);
	free(w.rev);
	if (rc)
		return rc;
	if (n_ids)
		*n_ids = w.n;
	return w.n > cap ? MLLM_ENOSPACE : 0;
}

/* ---- Decoding -------------------------------------------------------------- */

/* Appends the surface of a non-byte piece (SentencePiece's
 * DecodeSentencePiece) to out, which has room for PIECE_MAX bytes.
 * *bos_ws says whether the leading "▁" is still to be dropped. */
static size_t piece_surface(const mllm_tokenizer *tok, int32_t id, bool *bos_ws, char *out)
{
	const char *p = tok->blob + tok->off[id];
	size_t n = tok->len[id], o = 0, i = 0;

	switch (tok->type[id]) {
	case PT_CONTROL:
		return 0; /* invisible; keeps *bos_ws */
	case PT_UNKNOWN:
		*bos_ws = false;
		memcpy(out, tok->unk_surface, tok->unk_surface_len);
		return tok->unk_surface_len;
	default:
		break;
	}
	/* SentencePiece drops the first piece's "▁" when the normalizer may
	 * have put it there: a dummy prefix, or spaces squeezed together. */
	if (*bos_ws && (tok->add_dummy_prefix || tok->remove_extra_ws) && n >= 3 &&
	    memcmp(p, ws_sym, 3) == 0)
		i = 3;
	*bos_ws = false;
	while (i < n) {
		if (i + 3 <= n && memcmp(p + i, ws_sym, 3) == 0) {
			out[o++] = ' ';
			i += 3;
		} else {
			out[o++] = p[i++];
		}
	}
	return o;
}

/* Renders held-back bytes b[0, *nb): whole characters are written to out;
 * bytes that can no longer become one are written as U+FFFD each; with
 * final, an unfinished tail is too. What may still complete stays in b. */
static size_t drain_bytes(unsigned char *b, int *nb, bool final, char *out)
{
	size_t o = 0, i = 0, n = (size_t)*nb, mb;

	while (i < n) {
		if (utf8_valid_char(b + i, n - i, &mb)) {
			memcpy(out + o, b + i, mb);
			o += mb;
			i += mb;
		} else if (!final && utf8_could_complete(b + i, n - i)) {
			break;
		} else {
			memcpy(out + o, repl_char, 3);
			o += 3;
			i += 1;
		}
	}
	memmove(b, b + i, n - i);
	*nb = (int)(n - i);
	return o;
}

void mllm_detok_init(mllm_detok *d, const mllm_tokenizer *tok)
{
	memset(d, 0, sizeof *d);
	d->tok = tok;
}

/* The text id completes, into tmp (room for PIECE_MAX + 16 bytes). */
static int detok_step(mllm_detok *d, int32_t id, char *tmp)
{
	const mllm_tokenizer *tok = d->tok;
	size_t o = 0;
	bool bos_ws;

	if (!tok || id < 0 || id >= tok->n_vocab)
		return MLLM_ERANGE;
	d->n_seen++;
	if (tok->type[id] == PT_BYTE) {
		d->pending[d->n_pending++] =
		    (unsigned char)piece_to_byte(tok->blob + tok->off[id], tok->len[id]);
		d->n_text++;
		return (int)drain_bytes(d->pending, &d->n_pending, false, tmp);
	}
	if (d->n_pending > 0)
		o = drain_bytes(d->pending, &d->n_pending, true, tmp);
	bos_ws = d->n_text == 0;
	o += piece_surface(tok, id, &bos_ws, tmp + o);
	if (tok->type[id] != PT_CONTROL)
		d->n_text++;
	return (int)o;
}

int mllm_detok_push(mllm_detok *d, int32_t id, char *out, size_t cap)
{
	char tmp[PIECE_MAX + 16];
	mllm_detok save = *d;
	int n = detok_step(d, id, tmp);

	if (n < 0)
		return n;
	if ((size_t)n > cap) {
		*d = save;
		return MLLM_ENOSPACE;
	}
	memcpy(out, tmp, (size_t)n);
	return n;
}

int mllm_detok_flush(mllm_detok *d, char *out, size_t cap)
{
	char tmp[16];
	unsigned char save[8];
	int save_n = d->n_pending;
	size_t n;

	memcpy(save, d->pending, sizeof save);
	n = drain_bytes(d->pending, &d->n_pending, true, tmp);
	if (n > cap) {
		memcpy(d->pending, save, sizeof save);
		d->n_pending = save_n;
		return MLLM_ENOSPACE;
	}
	memcpy(out, tmp, n);
	return (int)n;
}

int mllm_tokenizer_decode(const mllm_tokenizer *tok, const int32_t *ids, size_t n_ids, char *out,
                          size_t cap, size_t *n_out)
{
	mllm_detok d;
	char tmp[PIECE_MAX + 16];
	size_t o = 0;
	int n;

	if (n_out)
		*n_out = 0;
	if (!tok || (!ids && n_ids > 0) || (!out && cap > 0))
		return MLLM_EINVAL;
	mllm_detok_init(&d, tok);
	for (size_t i = 0; i <= n_ids; i++) {
		if (i < n_ids) {
			n = detok_step(&d, ids[i], tmp);
			if (n < 0)
				return n;
		} else {
			n = (int)drain_bytes(d.pending, &d.n_pending, true, tmp);
		}
		if (o < cap) {
			size_t room = cap - 1 - o;
			memcpy(out + o, tmp, (size_t)n < room ? (size_t)n : room);
		}
		o += (size_t)n;
	}
	if (cap > 0)
		out[o < cap ? o : cap - 1] = '\0';
	if (n_out)
		*n_out = o;
	return o < cap ? 0 : MLLM_ENOSPACE;
}
