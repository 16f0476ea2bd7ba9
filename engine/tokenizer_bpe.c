/*
 * tokenizer_bpe.c — byte-level BPE encode for Llama-3 vocabularies
 * (MobileLLM-R1), matching Hugging Face tokenizers: added tokens are matched
 * first (leftmost, longest; special ones only when asked), each stretch
 * between them is cut by Llama 3's pre-tokenizer regex, written out by hand
 * below with Unicode classes from the generated unicode_tab.h, and each
 * piece is a vocabulary hit (ignore_merges) or merged by rank with a heap.
 * Pieces are raw bytes, so the GPT-2 byte mapping never runs per call.
 */
#include "tokenizer_internal.h"
#include "unicode_tab.h"

#include <stdlib.h>
#include <string.h>

/* ---- Character classes ------------------------------------------------------ */

static uint8_t uc_class(uint32_t cp)
{
	size_t lo = 0, hi = sizeof uc_ranges / sizeof uc_ranges[0];

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (cp < uc_ranges[mid].lo)
			hi = mid;
		else if (cp > uc_ranges[mid].hi)
			lo = mid + 1;
		else
			return uc_ranges[mid].cls;
	}
	return 0;
}

/* One character of the input: its code point, length and class. A byte
 * that does not start a well-formed character stands alone, as a
 * character of no class (a "symbol" to the regex). */
typedef struct {
	uint32_t cp;
	uint32_t len;
	uint8_t cls;
} uch;

static inline uch char_at(const unsigned char *s, size_t n, size_t i)
{
	unsigned char c = s[i];
	size_t k;
	uint32_t cp;

	if (c < 0x80) {
		uint8_t cls = 0;
		if ((unsigned)((c | 0x20) - 'a') < 26)
			cls = UC_L;
		else if ((unsigned)(c - '0') < 10)
			cls = UC_N;
		else if (c == ' ' || (c >= 9 && c <= 13))
			cls = UC_WS;
		return (uch){c, 1, cls};
	}
	k = mllm_utf8_len(s + i, n - i);
	if (k == 0)
		return (uch){0xffffffffu, 1, 0};
	if (k == 2)
		cp = (uint32_t)(c & 0x1f) << 6 | (s[i + 1] & 0x3f);
	else if (k == 3)
		cp = (uint32_t)(c & 0x0f) << 12 | (uint32_t)(s[i + 1] & 0x3f) << 6 |
		     (s[i + 2] & 0x3f);
	else
		cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[i + 1] & 0x3f) << 12 |
		     (uint32_t)(s[i + 2] & 0x3f) << 6 | (s[i + 3] & 0x3f);
	return (uch){cp, (uint32_t)k, uc_class(cp)};
}

static inline bool is_crlf(uint32_t cp)
{
	return cp == '\r' || cp == '\n';
}

/* End of the run of characters of class cls starting at i. */
static size_t run_end(const unsigned char *s, size_t n, size_t i, uint8_t cls)
{
	while (i < n) {
		uch c = char_at(s, n, i);
		if (!(c.cls & cls))
			break;
		i += c.len;
	}
	return i;
}

/* Lower-case ASCII letter at s[i], or 0. U+017F (long s) folds to 's', as
 * in the regex engine's case-insensitive match. */
static int fold_at(const unsigned char *s, size_t n, size_t i, size_t *len)
{
	*len = 1;
	if (i >= n)
		return 0;
	if (s[i] == 0xc5 && i + 1 < n && s[i + 1] == 0xbf) {
		*len = 2;
		return 's';
	}
	if ((unsigned)((s[i] | 0x20) - 'a') < 26)
		return s[i] | 0x20;
	return 0;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) at i (s[i] is the apostrophe): the match
 * length, or 0. */
static size_t contraction(const unsigned char *s, size_t n, size_t i)
{
	size_t l1, l2;
	int a = fold_at(s, n, i + 1, &l1), b;

	if (a == 's' || a == 't' || a == 'm' || a == 'd')
		return 1 + l1;
	b = fold_at(s, n, i + 1 + l1, &l2);
	if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
		return 1 + l1 + l2;
	return 0;
}

/* The end of the pre-token that starts at i (i < n): Llama 3's
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3}
 *   | ' '?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 * tried in order at i, each with its backtracking worked out by hand. */
static size_t pretok_end(const unsigned char *s, size_t n, size_t i)
{
	uch c0 = char_at(s, n, i);
	size_t j, last_nl, last_start;

	if (c0.cp == '\'') {
		size_t k = contraction(s, n, i);
		if (k)
			return i + k;
	}
	if (c0.cls & UC_L)
		return run_end(s, n, i, UC_L);
	if (!(c0.cls & UC_N) && !is_crlf(c0.cp) && i + c0.len < n) {
		uch c1 = char_at(s, n, i + c0.len);
		if (c1.cls & UC_L)
			return run_end(s, n, i + c0.len, UC_L);
	}
	if (c0.cls & UC_N) {
		j = i;
		for (int k = 0; k < 3 && j < n; k++) {
			uch c = char_at(s, n, j);
			if (!(c.cls & UC_N))
				break;
			j += c.len;
		}
		return j;
	}
	/* ' '?[^\s\p{L}\p{N}]+[\r\n]* */
	j = c0.cp == ' ' ? i + 1 : i;
	if (j < n) {
		uch c = char_at(s, n, j);
		if (!(c.cls & (UC_WS | UC_L | UC_N))) {
			while (j < n) {
				c = char_at(s, n, j);
				if (c.cls & (UC_WS | UC_L | UC_N))
					break;
				j += c.len;
			}
			while (j < n && (s[j] == '\r' || s[j] == '\n'))
				j++;
			return j;
		}
	}
	/* c0 is whitespace. \s*[\r\n]+ ends after the run's last CR/LF;
	 * \s+(?!\S) gives the last character of the run to a following
	 * non-space; \s+ takes the whole run. */
	j = i;
	last_nl = SIZE_MAX;
	last_start = i;
	while (j < n) {
		uch c = char_at(s, n, j);
		if (!(c.cls & UC_WS))
			break;
		if (is_crlf(c.cp))
			last_nl = j;
		last_start = j;
		j += c.len;
	}
	if (last_nl != SIZE_MAX)
		return last_nl + 1;
	if (j == n || last_start == i)
		return j;
	return last_start;
}

/* ---- Merging ------------------------------------------------------------------ */

static inline const bpe_merge *merge_find(const mllm_tokenizer *tok, int32_t a, int32_t b)
{
	for (uint32_t i = bpe_pair_hash(a, b) & tok->merge_mask;; i = (i + 1) & tok->merge_mask) {
		const bpe_merge *m = &tok->merges[i];
		if (m->left < 0)
			return NULL;
		if (m->left == a && m->right == b)
			return m;
	}
}

typedef struct {
	int32_t id, prev, next;
} bsym;

typedef struct {
	int32_t rank;
	int32_t pos;
} bcand;

typedef struct {
	int32_t *ids;
	size_t cap, n;
	/* Scratch for words longer than the stack arrays. */
	bsym *sym;
	bcand *heap;
	size_t scratch;
} bout;

static inline void out_id(bout *o, int32_t id)
{
	if (o->n < o->cap)
		o->ids[o->n] = id;
	o->n++;
}

static inline bool cand_before(bcand a, bcand b)
{
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void cand_push(bcand *h, size_t *n, bcand c)
{
	size_t i = (*n)++;

	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!cand_before(c, h[p]))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = c;
}

static bcand cand_pop(bcand *h, size_t *n)
{
	bcand top = h[0], last;
	size_t i = 0, m = --(*n);

	if (m == 0)
		return top;
	last = h[m];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= m)
			break;
		if (c + 1 < m && cand_before(h[c + 1], h[c]))
			c++;
		if (!cand_before(h[c], last))
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = last;
	return top;
}

static void cand_pair(const mllm_tokenizer *tok, const bsym *sym, bcand *h, size_t *nh, int32_t pos)
{
	const bpe_merge *m;

	if (pos < 0 || sym[pos].next < 0)
		return;
	m = merge_find(tok, sym[pos].id, sym[sym[pos].next].id);
	if (m)
		cand_push(h, nh, (bcand){m->rank, pos});
}

#define WORD_STACK 64

/* Encodes one pre-token w[0, n): lowest rank first, leftmost among equal
 * ranks (Hugging Face's Word::merge_all). Each merge adds at most two
 * candidates, so the heap never holds more than 3n. */
static int bpe_word(const mllm_tokenizer *tok, bout *o, const unsigned char *w, size_t n)
{
	bsym stack_sym[WORD_STACK];
	bcand stack_heap[3 * WORD_STACK];
	bsym *sym = stack_sym;
	bcand *heap = stack_heap;
	size_t nh = 0;

	if (n == 1) {
		out_id(o, tok->byte_id[w[0]]);
		return 0;
	}
	if (tok->ignore_merges && n <= tok->max_piece) {
		int32_t id = htab_find(tok, &tok->normal, (const char *)w, n);
		if (id >= 0) {
			out_id(o, id);
			return 0;
		}
	}
	if (n > WORD_STACK) {
		if (n > o->scratch) {
			bsym *ns = mllm_try_realloc(o->sym, n * sizeof *ns);
			if (ns)
				o->sym = ns;
			bcand *nhp = ns ? mllm_try_realloc(o->heap, 3 * n * sizeof *nhp) : NULL;
			if (!nhp)
				return MLLM_ENOMEM;
			o->heap = nhp;
			o->scratch = n;
		}
		sym = o->sym;
		heap = o->heap;
	}
	for (size_t i = 0; i < n; i++)
		sym[i] =
		    (bsym){tok->byte_id[w[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
	for (size_t i = 0; i + 1 < n; i++)
		cand_pair(tok, sym, heap, &nh, (int32_t)i);
	for (uint32_t pops = 1; nh > 0; pops++) {
		/* A pre-token can be most of the text: check the cancel flag
		 * inside it too, every 4096 merges. */
		if ((pops & 4095) == 0 && mllm__tok_cancelled())
			return MLLM_ECANCELLED;
		bcand c = cand_pop(heap, &nh);
		bsym *l = &sym[c.pos];
		const bpe_merge *m;
		int32_t r;

		/* Stale: this symbol was merged away, or its neighbour changed. */
		if (l->id < 0 || l->next < 0)
			continue;
		r = l->next;
		m = merge_find(tok, l->id, sym[r].id);
		if (!m || m->rank != c.rank)
			continue;
		l->id = m->id;
		l->next = sym[r].next;
		if (l->next >= 0)
			sym[l->next].prev = c.pos;
		sym[r].id = -1;
		cand_pair(tok, sym, heap, &nh, l->prev);
		cand_pair(tok, sym, heap, &nh, c.pos);
	}
	for (int32_t i = 0; i >= 0; i = sym[i].next)
		out_id(o, sym[i].id);
	return 0;
}

/* Pre-tokenizes and encodes s[0, n), which holds no added token. */
static int bpe_span(const mllm_tokenizer *tok, bout *o, const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t e = pretok_end(s, n, i);
		int rc;
		/* mllm_tokenizer_cancel_watch: checked between pre-tokens. */
		if (mllm__tok_cancelled())
			return MLLM_ECANCELLED;
		rc = bpe_word(tok, o, s + i, e - i);
		if (rc)
			return rc;
		i = e;
	}
	return 0;
}

/* The longest added token at s[0, n) that may match here, or -1. */
static int32_t added_at(const mllm_tokenizer *tok, const char *s, size_t n, bool special,
                        size_t *len)
{
	size_t m = tok->added_max < n ? tok->added_max : n;

	for (size_t l = m; l >= tok->added_min && l > 0; l--) {
		int32_t id;
		if (!tok->added_last[(unsigned char)s[l - 1]])
			continue;
		id = htab_find(tok, &tok->reserved, s, l);
		if (id >= 0 && (special || tok->type[id] != PT_CONTROL)) {
			*len = l;
			return id;
		}
	}
	return -1;
}

int mllm__bpe_encode(const mllm_tokenizer *tok, const char *text, size_t len,
                     const mllm_encode_opts *opt, int32_t *ids, size_t cap, size_t *n_ids)
{
	const unsigned char *s = (const unsigned char *)text;
	bout o = {.ids = ids, .cap = cap};
	bool special = opt && opt->parse_special;
	size_t i = 0, seg = 0, l = 0;
	int rc = 0;

	if (opt && opt->add_bos && tok->bos_id >= 0) {
		/* Never a second BOS: the text may start with its own. */
		bool has =
		    special && tok->type[tok->bos_id] == PT_CONTROL &&
		    len >= tok->len[tok->bos_id] &&
		    memcmp(text, tok->blob + tok->off[tok->bos_id], tok->len[tok->bos_id]) == 0;
		if (!has)
			out_id(&o, tok->bos_id);
	}
	while (i < len && rc == 0) {
		int32_t id;
		if (tok->n_added == 0 || !tok->added_first[s[i]]) {
			i++;
			continue;
		}
		id = added_at(tok, text + i, len - i, special, &l);
		if (id < 0) {
			i++;
			continue;
		}
		rc = bpe_span(tok, &o, s + seg, i - seg);
		out_id(&o, id);
		i += l;
		seg = i;
	}
	if (rc == 0)
		rc = bpe_span(tok, &o, s + seg, len - seg);
	free(o.sym);
	free(o.heap);
	if (rc)
		return rc;
	if (n_ids)
		*n_ids = o.n;
	return o.n > cap ? MLLM_ENOSPACE : 0;
}
