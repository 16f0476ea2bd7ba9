/*
 * tokenizer_load.c — building a mllm_tokenizer: the SentencePiece ModelProto
 * reader (a bounded protobuf cursor), the GGUF tokenizer.ggml.* reader, and
 * tok_finish(), which indexes the pieces and checks them the way
 * SentencePiece's model loader does. Everything here runs once per load;
 * the hot paths (encode, decode, the streaming detokenizer) are tokenizer.c.
 */
#include "gguf.h"
#include "tokenizer_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tokenizer.model files are about 0.5 MB; anything past this is not one. */
#define MODEL_FILE_MAX ((size_t)256 << 20)
#define VOCAB_MAX      (1 << 24)

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

mllm_tokenizer *mllm__tok_alloc(int32_t n_vocab, size_t blob_bytes)
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
	free(tok->merges);
	free(tok);
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
	mllm__tok_add_eos(tok, tok->eos_id);
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

	tok = mllm__tok_alloc((int32_t)n_pieces, blob);
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

int mllm__tok_read_file(const char *path, size_t max, unsigned char **data, size_t *size, char *err,
                        size_t errlen)
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
	if ((size_t)n > max) {
		rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
		                  "%s: %ld bytes is too large for a tokenizer file", path, n);
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
	buf[n] = '\0';
	fclose(f);
	*data = buf;
	*size = (size_t)n;
	return 0;
fail:
	free(buf);
	fclose(f);
	return rc;
}

void mllm__tok_add_eos(mllm_tokenizer *tok, int32_t id)
{
	if (id < 0 || id >= tok->n_vocab || tok->n_eos >= TOK_EOS_MAX)
		return;
	for (int i = 0; i < tok->n_eos; i++)
		if (tok->eos_ids[i] == id)
			return;
	tok->eos_ids[tok->n_eos++] = id;
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
	if (model_len == 4 && memcmp(model, "gpt2", 4) == 0)
		return mllm__bpe_from_gguf(g, out, err, errlen);
	if (model_len != 5 || memcmp(model, "llama", 5) != 0)
		return mllm__seterr(
		    err, errlen, MLLM_EUNSUPPORTED,
		    "%s: tokenizer model \"%.*s\" is not supported (only \"llama\", "
		    "SentencePiece BPE, and \"gpt2\", byte-level BPE)",
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
	tok = mllm__tok_alloc((int32_t)n, blob);
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
	if (pl >= 5 && strcmp(path + pl - 5, ".json") == 0)
		return mllm__bpe_load_json(path, out, err, errlen);
	if (pl >= 5 && strcmp(path + pl - 5, ".gguf") == 0) {
		mllm__gguf *g = NULL;
		rc = mllm__gguf_open(path, &g, err, errlen);
		if (rc)
			return rc;
		rc = mllm__tokenizer_from_gguf(g, out, err, errlen);
		mllm__gguf_close(g);
		return rc;
	}
	rc = mllm__tok_read_file(path, MODEL_FILE_MAX, &data, &size, err, errlen);
	if (rc)
		return rc;
	rc = tokenizer_from_proto(data, size, path, out, err, errlen);
	free(data);
	if (rc == 0)
		MLLM_LOG(MLLM_LOG_DEBUG, "tokenizer %s: %d pieces, byte fallback %s", path,
		         (int)(*out)->n_vocab, (*out)->byte_fallback ? "on" : "off");
	return rc;
}
