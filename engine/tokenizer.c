/*
 * tokenizer.c — SentencePiece-exact BPE encode (LLaMA's tokenizer.model, or
 * the same vocabulary from GGUF metadata), decode and the streaming
 * detokenizer. Every step mirrors SentencePiece 0.1.x: identity normalizer
 * (bad UTF-8 becomes U+FFFD per byte), dummy prefix, `▁` escaping, merges by
 * score (ties: leftmost), byte fallback. For speed, text is cut into words
 * before each `▁` that follows another character (no piece spans such a cut:
 * checked at load), and words that are themselves pieces skip BPE once
 * learned. Loading the vocabulary is tokenizer_load.c's job.
 */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

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

bool mllm_tokenizer_is_eos(const mllm_tokenizer *tok, int32_t id)
{
	for (int i = 0; tok && i < tok->n_eos; i++)
		if (tok->eos_ids[i] == id)
			return true;
	return false;
}

size_t mllm_tokenizer_eos_ids(const mllm_tokenizer *tok, int32_t *out, size_t cap)
{
	for (size_t i = 0; i < (size_t)tok->n_eos && i < cap; i++)
		out[i] = tok->eos_ids[i];
	return (size_t)tok->n_eos;
}

bool mllm_tokenizer_is_control(const mllm_tokenizer *tok, int32_t id)
{
	return id >= 0 && id < tok->n_vocab && tok->type[id] == PT_CONTROL;
}

bool mllm_tokenizer_matches_special(const mllm_tokenizer *tok)
{
	return tok->kind == TOK_BPE;
}

size_t mllm_tokenizer_token_bytes(const mllm_tokenizer *tok, int32_t id, char *out, size_t cap)
{
	const char *p;
	size_t len, o = 0;

	if (!tok || id < 0 || id >= tok->n_vocab || cap == 0)
		return 0;
	p = tok->blob + tok->off[id];
	len = tok->len[id];
	if (tok->kind == TOK_BPE) {
		o = len < cap ? len : cap;
		memcpy(out, p, o);
		return o;
	}
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
static size_t normalize(const mllm_tokenizer *tok, const char *text, size_t len, bool cont,
                        char *out)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0, o = 0;
	bool prev_space;

	if (tok->remove_extra_ws && !cont)
		while (i < len && s[i] == ' ')
			i++;
	if (i == len)
		return 0;
	if (tok->add_dummy_prefix && !cont) {
		memcpy(out, ws_sym, 3);
		o = 3;
	}
	prev_space = tok->remove_extra_ws && !cont;
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

bool mllm__tok_cancelled(void)
{
	return enc_cancelled();
}

static int spm_encode(const mllm_tokenizer *tok, const char *text, size_t len, bool add_bos,
                      bool cont, int32_t *ids, size_t cap, size_t *n_ids)
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
	nlen = len ? normalize(tok, text, len, cont, norm) : 0;

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

int mllm_tokenizer_encode_ex(const mllm_tokenizer *tok, const char *text, size_t len,
                             const mllm_encode_opts *o, int32_t *ids, size_t cap, size_t *n_ids)
{
	bool add_bos = o && o->add_bos;

	if (n_ids)
		*n_ids = 0;
	if (!tok || (!text && len > 0) || (!ids && cap > 0))
		return MLLM_EINVAL;
	if (len > (SIZE_MAX - 16) / 3 || len > UINT32_MAX / 4)
		return MLLM_ETOOLONG;
	if (tok->kind == TOK_BPE)
		return mllm__bpe_encode(tok, text ? text : "", len, o, ids, cap, n_ids);
	return spm_encode(tok, text, len, add_bos, o && o->continuation, ids, cap, n_ids);
}

int mllm_tokenizer_encode(const mllm_tokenizer *tok, const char *text, size_t len, bool add_bos,
                          int32_t *ids, size_t cap, size_t *n_ids)
{
	mllm_encode_opts o = {.add_bos = add_bos};

	return mllm_tokenizer_encode_ex(tok, text, len, &o, ids, cap, n_ids);
}

/* ---- Decoding -------------------------------------------------------------- */

/* Whether the n bytes at s (shorter than their lead byte says) can still
 * become a character mllm_utf8_len() accepts once more bytes arrive. Asked
 * of the validator itself: the missing bytes are filled with trail bytes
 * that reach every sub-range a second byte may be restricted to (E0: A0..,
 * ED: ..9F, F0: 90.., F4: ..8F); later bytes are never restricted. */
static bool utf8_could_complete(const unsigned char *s, size_t n)
{
	static const unsigned char second[3] = {0x80, 0x90, 0xa0};
	unsigned char c[4];
	size_t need = utf8_char_len((const char *)s, 4);

	if (need < 2 || n >= need)
		return false;
	memcpy(c, s, n);
	for (int k = 0; k < 3; k++) {
		if (n == 1)
			c[1] = second[k];
		for (size_t i = n > 1 ? n : 2; i < need; i++)
			c[i] = 0x80;
		if (mllm_utf8_len(c, need) == need)
			return true;
	}
	return false;
}

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

/* Length of the maximal subpart of an ill-formed sequence at s (Unicode's
 * "U+FFFD substitution of maximal subparts", which Rust's from_utf8_lossy
 * and so Hugging Face's decoders follow): the longest prefix that could
 * still have become a character, at least 1. */
static size_t maximal_subpart(const unsigned char *s, size_t n)
{
	size_t k = 1;

	while (k < n && k < 3 && utf8_could_complete(s, k + 1))
		k++;
	return k;
}

/* Renders held-back bytes b[0, *nb): whole characters are written to out;
 * bytes that can no longer become one are written as U+FFFD each (lossy:
 * one U+FFFD per maximal subpart); with final, an unfinished tail is too.
 * What may still complete stays in b. */
static size_t drain_bytes(unsigned char *b, int *nb, bool final, bool lossy, char *out)
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
			i += lossy ? maximal_subpart(b + i, n - i) : 1;
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

/* Byte-level BPE: the piece's bytes join the held-back ones; whole
 * characters go out, an unfinished one (at most 3 bytes) stays. The loader
 * keeps every piece's worst case within PIECE_MAX bytes of output. */
static int detok_step_bpe(mllm_detok *d, int32_t id, char *tmp)
{
	const mllm_tokenizer *tok = d->tok;
	unsigned char buf[sizeof d->pending + PIECE_MAX];
	int nb = d->n_pending;
	size_t o;

	if (tok->type[id] == PT_CONTROL && !d->keep_special)
		return 0;
	memcpy(buf, d->pending, (size_t)nb);
	memcpy(buf + nb, tok->blob + tok->off[id], tok->len[id]);
	nb += tok->len[id];
	o = drain_bytes(buf, &nb, false, true, tmp);
	memcpy(d->pending, buf, (size_t)nb);
	d->n_pending = nb;
	d->n_text++;
	return (int)o;
}

/* Renders what is held back at the end of the text. */
static size_t detok_final(mllm_detok *d, char *tmp)
{
	return drain_bytes(d->pending, &d->n_pending, true, d->tok && d->tok->kind == TOK_BPE, tmp);
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
	if (tok->kind == TOK_BPE)
		return detok_step_bpe(d, id, tmp);
	if (tok->type[id] == PT_BYTE) {
		d->pending[d->n_pending++] =
		    (unsigned char)piece_to_byte(tok->blob + tok->off[id], tok->len[id]);
		d->n_text++;
		return (int)drain_bytes(d->pending, &d->n_pending, false, false, tmp);
	}
	if (d->n_pending > 0)
		o = drain_bytes(d->pending, &d->n_pending, true, false, tmp);
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
	n = detok_final(d, tmp);
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
	return mllm_tokenizer_decode_ex(tok, ids, n_ids, false, out, cap, n_out);
}

int mllm_tokenizer_decode_ex(const mllm_tokenizer *tok, const int32_t *ids, size_t n_ids,
                             bool keep_special, char *out, size_t cap, size_t *n_out)
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
	d.keep_special = keep_special;
	for (size_t i = 0; i <= n_ids; i++) {
		if (i < n_ids) {
			n = detok_step(&d, ids[i], tmp);
			if (n < 0)
				return n;
		} else {
			n = (int)detok_final(&d, tmp);
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
