/*
 * tokenizer_internal.h — what the tokenizer's files share (engine-internal;
 * tests and bench may include it). tokenizer_load.c builds a mllm_tokenizer
 * from a SentencePiece model or GGUF metadata; tokenizer.c encodes, decodes
 * and streams text with it. The struct, the piece hash table and the UTF-8
 * helpers live here so that both files see one definition. UTF-8 validity
 * always comes from base.c's mllm_utf8_len(): there is no second copy of the
 * rules.
 */
#ifndef MLLM_TOKENIZER_INTERNAL_H
#define MLLM_TOKENIZER_INTERNAL_H

#include "base.h"
#include "tokenizer.h"

#include <stdatomic.h>
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

static const char ws_sym[3] = {'\xe2', '\x96', '\x81'};    /* U+2581 */
static const char repl_char[3] = {'\xef', '\xbf', '\xbd'}; /* U+FFFD */

enum { TOK_SPM = 0, TOK_BPE = 1 };
#define TOK_EOS_MAX 8

/* One BPE merge: the adjacent pieces (left, right) become id; lower rank
 * merges first. */
typedef struct {
	int32_t left, right;
	int32_t rank, id;
} bpe_merge;

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

	/* ---- Byte-level BPE (kind == TOK_BPE; tokenizer_bpe*.c) ---- */
	int kind; /* TOK_SPM or TOK_BPE */
	/* Pieces are stored as raw bytes (the GPT-2 byte-to-unicode form
	 * undone at load); `normal` indexes the ranked vocabulary, `reserved`
	 * the added tokens (type PT_CONTROL when special, PT_USER_DEFINED
	 * when not), byte_id[] the 256 single-byte pieces. */
	bpe_merge *merges; /* open addressing, mask merge_mask; left = -1: empty */
	uint32_t merge_mask;
	size_t n_merges;
	bool ignore_merges;    /* a pre-token that is a piece is that piece */
	bool added_first[256]; /* first bytes of added tokens */
	bool added_last[256];  /* last bytes: most lengths are skipped unhashed */
	size_t added_min, added_max;
	int n_added;
	/* End of generation: the EOS id first, then eot/eom and the config's
	 * eos_token_id list (duplicates removed). */
	int32_t eos_ids[TOK_EOS_MAX];
	int n_eos;
};

enum { SELF_UNKNOWN = 0, SELF_YES = 1, SELF_NO = 2 };

/* ---- UTF-8 -------------------------------------------------------------- */

/* One well-formed character at s (SentencePiece's IsValidDecodeUTF8(), which
 * accepts exactly what mllm_utf8_len() does): sets *mb to its length and
 * returns true; anything else sets *mb = 1 and returns false. */
static inline bool utf8_valid_char(const unsigned char *s, size_t n, size_t *mb)
{
	size_t k = mllm_utf8_len(s, n);

	*mb = k ? k : 1;
	return k != 0;
}

/* Length of the character at s by its lead byte alone (SentencePiece's
 * OneCharLen), bounded by n. Used on normalized text, which is valid. */
static inline size_t utf8_char_len(const char *s, size_t n)
{
	static const unsigned char tab[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
	size_t l = tab[(unsigned char)s[0] >> 4];
	return l < n ? l : n;
}

static inline bool utf8_all_valid(const char *s, size_t n)
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

static inline int htab_init(htab *t, size_t n_items)
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
static inline int32_t htab_insert(mllm_tokenizer *tok, htab *t, int32_t id)
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
/* "<0xAB>" -> 0xAB, or -1 (SentencePiece's PieceToByte). */
static inline int piece_to_byte(const char *s, size_t n)
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

/* Hash of a merge pair of ids (tokenizer_bpe*.c). */
static inline uint32_t bpe_pair_hash(int32_t a, int32_t b)
{
	uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;

	k *= 0x9e3779b97f4a7c15ull;
	return (uint32_t)(k >> 32);
}

/* ---- Shared between the loaders and the two kinds --------------------- */

/* Reads a whole file of at most max bytes (NUL-terminated copy). */
int mllm__tok_read_file(const char *path, size_t max, unsigned char **data, size_t *size, char *err,
                        size_t errlen) MLLM_WUR;
mllm_tokenizer *mllm__tok_alloc(int32_t n_vocab, size_t blob_bytes);
/* Whether the calling thread's mllm_tokenizer_cancel_watch() flag is set. */
bool mllm__tok_cancelled(void);
/* Adds id to the end-of-generation set (ignored when out of range, already
 * there or the set is full). */
void mllm__tok_add_eos(mllm_tokenizer *tok, int32_t id);

/* Byte-level BPE (tokenizer_bpe_load.c): from a Hugging Face tokenizer.json
 * (config.json, generation_config.json and tokenizer_config.json beside it
 * are read when present) or from GGUF metadata with tokenizer.ggml.model =
 * "gpt2". */
int mllm__bpe_load_json(const char *path, mllm_tokenizer **out, char *err, size_t errlen) MLLM_WUR;
struct mllm__gguf;
int mllm__bpe_from_gguf(const struct mllm__gguf *g, mllm_tokenizer **out, char *err,
                        size_t errlen) MLLM_WUR;
/* Byte-level BPE encode (tokenizer_bpe.c); same contract as
 * mllm_tokenizer_encode_ex(). */
int mllm__bpe_encode(const mllm_tokenizer *tok, const char *text, size_t len,
                     const mllm_encode_opts *o, int32_t *ids, size_t cap, size_t *n_ids) MLLM_WUR;

#endif
