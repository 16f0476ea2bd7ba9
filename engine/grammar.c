/*
 * grammar.c — byte grammars for constrained decoding: the builder api/
 * fills, the frozen grammar, the vocabulary trie and the per-choice matcher
 * that computes token masks (grammar.h, gmatch.h, docs/grammar.md).
 *
 * A frozen grammar is one flat array of elements: each rule's alternatives
 * laid end to end, separated by E_ALT and closed by E_END, so that "the
 * sequence is over" is one test. A matcher state is a set of stacks; a stack
 * is a linked list of frames in an arena (top = a byte-set element still to
 * match, below = where to continue once the rule above completes). A
 * reference in tail position pushes no frame, so right recursion (the
 * repetition idiom) runs in constant stack depth. Stacks share their lower
 * frames, which makes a state small and a trie walk cheap: the walk only
 * appends frames and rolls the arena back as it returns from a subtree.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "gmatch.h"

/* ---- The builder ----------------------------------------------------------- */

enum { E_SET = 0, E_REF, E_ALT, E_END };

typedef struct {
	int32_t kind; /* E_* */
	int32_t arg;  /* E_SET: set index; E_REF: rule */
} gelem;

typedef struct {
	gelem *v;
	int32_t n, cap;
	bool open; /* an alternative is open (items go to it) */
	int32_t n_alts;
} brule;

struct mllm_gbuild {
	brule *rules;
	int32_t n_rules, cap_rules;
	uint8_t (*sets)[32]; /* the first 256 are the single bytes */
	int32_t n_sets, cap_sets;
	int64_t n_items;
	int err;
	char errmsg[128];
};

static void bfail(mllm_gbuild *b, int err, const char *msg)
{
	if (b->err)
		return;
	b->err = err;
	snprintf(b->errmsg, sizeof b->errmsg, "%s", msg);
}

int mllm_gbuild_create(mllm_gbuild **out)
{
	mllm_gbuild *b = mllm_try_calloc(1, sizeof *b);
	*out = NULL;
	if (!b)
		return MLLM_ENOMEM;
	b->cap_sets = 512;
	b->sets = mllm_try_calloc((size_t)b->cap_sets, sizeof *b->sets);
	if (!b->sets) {
		free(b);
		return MLLM_ENOMEM;
	}
	for (int i = 0; i < 256; i++)
		b->sets[i][i / 8] = (uint8_t)(1u << (i % 8));
	b->n_sets = 256;
	*out = b;
	return MLLM_OK;
}

void mllm_gbuild_free(mllm_gbuild *b)
{
	if (!b)
		return;
	for (int32_t i = 0; i < b->n_rules; i++)
		free(b->rules[i].v);
	free(b->rules);
	free(b->sets);
	free(b);
}

int32_t mllm_gbuild_rule(mllm_gbuild *b)
{
	if (b->n_rules >= MLLM_GRAMMAR_MAX_RULES) {
		bfail(b, MLLM_ERANGE, "too many grammar rules");
		return MLLM_ERANGE;
	}
	if (b->n_rules == b->cap_rules) {
		int32_t cap = b->cap_rules ? b->cap_rules * 2 : 64;
		brule *r = mllm_try_realloc(b->rules, (size_t)cap * sizeof *r);
		if (!r) {
			bfail(b, MLLM_ENOMEM, "out of memory");
			return MLLM_ENOMEM;
		}
		b->rules = r;
		b->cap_rules = cap;
	}
	memset(&b->rules[b->n_rules], 0, sizeof b->rules[0]);
	return b->n_rules++;
}

static void push(mllm_gbuild *b, int32_t rule, int32_t kind, int32_t arg)
{
	brule *r;
	if (b->err)
		return;
	if (rule < 0 || rule >= b->n_rules) {
		bfail(b, MLLM_EINVAL, "item added to an unknown rule");
		return;
	}
	if (++b->n_items > MLLM_GRAMMAR_MAX_ITEMS) {
		bfail(b, MLLM_ERANGE, "grammar too large");
		return;
	}
	r = &b->rules[rule];
	if (r->n == r->cap) {
		int32_t cap = r->cap ? r->cap * 2 : 8;
		gelem *v = mllm_try_realloc(r->v, (size_t)cap * sizeof *v);
		if (!v) {
			bfail(b, MLLM_ENOMEM, "out of memory");
			return;
		}
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = (gelem){.kind = kind, .arg = arg};
}

void mllm_gbuild_alt(mllm_gbuild *b, int32_t rule)
{
	if (b->err || rule < 0 || rule >= b->n_rules) {
		bfail(b, MLLM_EINVAL, "alternative of an unknown rule");
		return;
	}
	if (b->rules[rule].n_alts > 0)
		push(b, rule, E_ALT, 0);
	b->rules[rule].n_alts++;
	b->rules[rule].open = true;
}

static void open_alt(mllm_gbuild *b, int32_t rule)
{
	if (rule >= 0 && rule < b->n_rules && !b->rules[rule].open)
		mllm_gbuild_alt(b, rule);
}

void mllm_gbuild_lit(mllm_gbuild *b, int32_t rule, const char *s, size_t n)
{
	open_alt(b, rule);
	for (size_t i = 0; i < n; i++)
		push(b, rule, E_SET, (unsigned char)s[i]);
}

void mllm_gbuild_set(mllm_gbuild *b, int32_t rule, const uint8_t set[32])
{
	int32_t idx = -1, n_bits = 0, one = -1;
	open_alt(b, rule);
	if (b->err)
		return;
	for (int i = 0; i < 256; i++) {
		if (set[i / 8] & (1u << (i % 8))) {
			n_bits++;
			one = i;
		}
	}
	if (n_bits == 0) {
		bfail(b, MLLM_EINVAL, "empty byte set");
		return;
	}
	if (n_bits == 1) {
		push(b, rule, E_SET, one);
		return;
	}
	/* Compilers reuse a few classes (string characters, digits): a
	 * linear search over the non-singleton sets is short. */
	for (int32_t i = 256; i < b->n_sets; i++) {
		if (memcmp(b->sets[i], set, 32) == 0) {
			idx = i;
			break;
		}
	}
	if (idx < 0) {
		if (b->n_sets == b->cap_sets) {
			int32_t cap = b->cap_sets * 2;
			uint8_t(*v)[32] = mllm_try_realloc(b->sets, (size_t)cap * sizeof *v);
			if (!v) {
				bfail(b, MLLM_ENOMEM, "out of memory");
				return;
			}
			b->sets = v;
			b->cap_sets = cap;
		}
		memcpy(b->sets[b->n_sets], set, 32);
		idx = b->n_sets++;
	}
	push(b, rule, E_SET, idx);
}

void mllm_gbuild_range(mllm_gbuild *b, int32_t rule, uint8_t lo, uint8_t hi)
{
	uint8_t set[32] = {0};
	for (int i = lo; i <= hi; i++)
		set[i / 8] |= (uint8_t)(1u << (i % 8));
	if (lo > hi) {
		bfail(b, MLLM_EINVAL, "empty byte range");
		return;
	}
	mllm_gbuild_set(b, rule, set);
}

void mllm_gbuild_ref(mllm_gbuild *b, int32_t rule, int32_t target)
{
	open_alt(b, rule);
	push(b, rule, E_REF, target);
}

/* ---- The frozen grammar ---------------------------------------------------- */

struct mllm_grammar {
	atomic_int refs;
	gelem *elems; /* every rule's body, E_ALT-separated, E_END-closed */
	int32_t n_elems;
	int32_t *alt_off; /* [n_rules + 1] into alt_pos */
	int32_t *alt_pos; /* element index where each alternative starts */
	int32_t n_rules, root;
	uint8_t (*sets)[32];
	int32_t n_sets;
};

static void grammar_free(mllm_grammar *g)
{
	if (!g)
		return;
	free(g->elems);
	free(g->alt_off);
	free(g->alt_pos);
	free(g->sets);
	free(g);
}

/* Left recursion would expand forever: a rule that can reach itself
 * without consuming a byte. nullable[] first (fixpoint), then a DFS over
 * the "may start with" edges. */
static bool rule_nullable_alt(const mllm_grammar *g, int32_t pos, const bool *nullable)
{
	for (;; pos++) {
		const gelem *e = &g->elems[pos];
		if (e->kind == E_ALT || e->kind == E_END)
			return true;
		if (e->kind == E_SET || !nullable[e->arg])
			return false;
	}
}

static int left_rec_dfs(const mllm_grammar *g, int32_t r, const bool *nullable, uint8_t *color)
{
	color[r] = 1;
	for (int32_t a = g->alt_off[r]; a < g->alt_off[r + 1]; a++) {
		for (int32_t pos = g->alt_pos[a];; pos++) {
			const gelem *e = &g->elems[pos];
			if (e->kind != E_REF)
				break;
			if (color[e->arg] == 1)
				return 1;
			if (color[e->arg] == 0 && left_rec_dfs(g, e->arg, nullable, color))
				return 1;
			if (!nullable[e->arg])
				break;
		}
	}
	color[r] = 2;
	return 0;
}

static int check_left_recursion(const mllm_grammar *g)
{
	bool *nullable = mllm_try_calloc((size_t)g->n_rules, sizeof *nullable);
	uint8_t *color = mllm_try_calloc((size_t)g->n_rules, 1);
	int rc = MLLM_OK;
	bool changed = true;
	if (!nullable || !color) {
		rc = MLLM_ENOMEM;
		goto out;
	}
	while (changed) {
		changed = false;
		for (int32_t r = 0; r < g->n_rules; r++) {
			if (nullable[r])
				continue;
			for (int32_t a = g->alt_off[r]; a < g->alt_off[r + 1]; a++) {
				if (rule_nullable_alt(g, g->alt_pos[a], nullable)) {
					nullable[r] = true;
					changed = true;
					break;
				}
			}
		}
	}
	/* Recursion depth of the DFS is bounded by the rule count; compilers
	 * emit chains far shorter than MLLM_GRAMMAR_MAX_RULES in practice,
	 * but a deep chain must not overflow the C stack: refuse past 4096. */
	if (g->n_rules > 4096 * 16) {
		rc = MLLM_ERANGE;
		goto out;
	}
	for (int32_t r = 0; r < g->n_rules && rc == MLLM_OK; r++)
		if (color[r] == 0 && left_rec_dfs(g, r, nullable, color))
			rc = MLLM_EINVAL;
out:
	free(nullable);
	free(color);
	return rc;
}

int mllm_gbuild_finish(mllm_gbuild *b, int32_t root, mllm_grammar **out, char *err, size_t errlen)
{
	mllm_grammar *g;
	int64_t n_elems = 0, n_alts = 0;
	int32_t e = 0, a = 0;
	int rc;

	*out = NULL;
	if (b->err) {
		snprintf(err, errlen, "%s", b->errmsg);
		return b->err;
	}
	if (root < 0 || root >= b->n_rules) {
		snprintf(err, errlen, "grammar root is not a rule");
		return MLLM_EINVAL;
	}
	for (int32_t r = 0; r < b->n_rules; r++) {
		if (b->rules[r].n_alts == 0) {
			snprintf(err, errlen, "grammar rule %d has no alternative", (int)r);
			return MLLM_EINVAL;
		}
		for (int32_t i = 0; i < b->rules[r].n; i++) {
			const gelem *x = &b->rules[r].v[i];
			if (x->kind == E_REF && (x->arg < 0 || x->arg >= b->n_rules)) {
				snprintf(err, errlen, "grammar rule %d refers to an unknown rule",
				         (int)r);
				return MLLM_EINVAL;
			}
		}
		n_elems += b->rules[r].n + 1;
		n_alts += b->rules[r].n_alts;
	}
	g = mllm_try_calloc(1, sizeof *g);
	if (!g)
		goto nomem;
	atomic_init(&g->refs, 1);
	g->n_rules = b->n_rules;
	g->root = root;
	g->elems = mllm_try_malloc((size_t)(n_elems + 1) * sizeof *g->elems);
	g->alt_off = mllm_try_malloc(((size_t)b->n_rules + 1) * sizeof *g->alt_off);
	g->alt_pos = mllm_try_malloc((size_t)(n_alts + 1) * sizeof *g->alt_pos);
	g->sets = mllm_try_malloc((size_t)b->n_sets * sizeof *g->sets);
	if (!g->elems || !g->alt_off || !g->alt_pos || !g->sets)
		goto nomem;
	memcpy(g->sets, b->sets, (size_t)b->n_sets * sizeof *g->sets);
	g->n_sets = b->n_sets;
	for (int32_t r = 0; r < b->n_rules; r++) {
		const brule *br = &b->rules[r];
		g->alt_off[r] = a;
		g->alt_pos[a++] = e;
		for (int32_t i = 0; i < br->n; i++) {
			g->elems[e] = br->v[i];
			if (br->v[i].kind == E_ALT)
				g->alt_pos[a++] = e + 1;
			e++;
		}
		g->elems[e++] = (gelem){.kind = E_END};
	}
	g->alt_off[b->n_rules] = a;
	g->n_elems = e;
	rc = check_left_recursion(g);
	if (rc) {
		snprintf(err, errlen, "%s",
		         rc == MLLM_EINVAL ? "grammar is left-recursive" : mllm_strerror(rc));
		grammar_free(g);
		return rc;
	}
	*out = g;
	return MLLM_OK;
nomem:
	grammar_free(g);
	snprintf(err, errlen, "out of memory");
	return MLLM_ENOMEM;
}

mllm_grammar *mllm_grammar_ref(mllm_grammar *g)
{
	if (g)
		atomic_fetch_add(&g->refs, 1);
	return g;
}

void mllm_grammar_unref(mllm_grammar *g)
{
	if (g && atomic_fetch_sub(&g->refs, 1) == 1)
		grammar_free(g);
}

/* ---- The vocabulary trie ------------------------------------------------------ */

/* Nodes in depth-first preorder (root excluded): node i spells the bytes of
 * its ancestors then byte[i]; its subtree is [i, skip[i]). tok_off/tok_ids
 * list the tokens whose bytes end at the node (several ids may spell the
 * same bytes: "A" and the byte piece <0x41>). */
struct mllm_vtrie {
	int32_t n_vocab;
	int32_t n_nodes;
	uint8_t *byte;
	uint8_t *depth; /* 1..MLLM_VTRIE_MAX_BYTES */
	int32_t *skip;
	int32_t *tok_off; /* [n_nodes + 1] */
	int32_t *tok_ids;
	char *bytes;     /* every kept token's bytes, end to end */
	int32_t *id_off; /* [n_vocab]: token id's bytes in `bytes`, -1 if left out */
	uint8_t *id_len; /* [n_vocab] */
};

typedef struct {
	const char *p;
	int32_t len, id;
} vt_tok;

static int vt_cmp(const void *pa, const void *pb)
{
	const vt_tok *a = pa, *b = pb;
	int32_t n = a->len < b->len ? a->len : b->len;
	int c = memcmp(a->p, b->p, (size_t)n);
	if (c)
		return c;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

void mllm_vtrie_free(mllm_vtrie *t)
{
	if (!t)
		return;
	free(t->byte);
	free(t->depth);
	free(t->skip);
	free(t->tok_off);
	free(t->tok_ids);
	free(t->bytes);
	free(t->id_off);
	free(t->id_len);
	free(t);
}

int32_t mllm_vtrie_n_vocab(const mllm_vtrie *t)
{
	return t->n_vocab;
}

/* Built from the tokens sorted by their bytes: consecutive tokens share
 * their common prefix, so each token adds one node per byte past the prefix
 * it shares with the previous one, and the nodes come out in preorder. */
int mllm_vtrie_create(const mllm_tokenizer *tok, mllm_vtrie **out)
{
	int32_t n_vocab = mllm_tokenizer_n_vocab(tok), n = 0, n_nodes = 0, n_ids = 0;
	char *bytes = NULL;
	vt_tok *v = NULL;
	mllm_vtrie *t = NULL;
	int32_t path[MLLM_VTRIE_MAX_BYTES + 1];
	size_t used = 0;
	int rc = MLLM_ENOMEM;

	*out = NULL;
	bytes = mllm_try_malloc((size_t)n_vocab * MLLM_VTRIE_MAX_BYTES + 1);
	v = mllm_try_malloc((size_t)n_vocab * sizeof *v + 1);
	t = mllm_try_calloc(1, sizeof *t);
	if (!bytes || !v || !t)
		goto fail;
	t->id_off = mllm_try_malloc((size_t)n_vocab * sizeof *t->id_off + 1);
	t->id_len = mllm_try_calloc((size_t)n_vocab + 1, 1);
	if (!t->id_off || !t->id_len)
		goto fail;
	for (int32_t id = 0; id < n_vocab; id++) {
		char buf[MLLM_DETOK_MAX];
		size_t len;
		t->id_off[id] = -1;
		if (mllm_tokenizer_is_control(tok, id))
			continue;
		len = mllm_tokenizer_token_bytes(tok, id, buf, sizeof buf);
		t->id_off[id] = -1;
		if (len == 0 || len > MLLM_VTRIE_MAX_BYTES)
			continue;
		t->id_off[id] = (int32_t)used;
		t->id_len[id] = (uint8_t)len;
		memcpy(bytes + used, buf, len);
		v[n++] = (vt_tok){.p = bytes + used, .len = (int32_t)len, .id = id};
		used += len;
	}
	qsort(v, (size_t)n, sizeof *v, vt_cmp);
	/* Upper bound of the node count: the sum of the lengths. */
	t->n_vocab = n_vocab;
	t->byte = mllm_try_malloc(used + 1);
	t->depth = mllm_try_malloc(used + 1);
	t->skip = mllm_try_malloc((used + 1) * sizeof *t->skip);
	t->tok_off = mllm_try_calloc(used + 2, sizeof *t->tok_off);
	t->tok_ids = mllm_try_malloc(((size_t)n + 1) * sizeof *t->tok_ids);
	if (!t->byte || !t->depth || !t->skip || !t->tok_off || !t->tok_ids)
		goto fail;
	for (int32_t i = 0; i < n; i++) {
		int32_t common = 0;
		if (i > 0) {
			const vt_tok *p = &v[i - 1];
			while (common < p->len && common < v[i].len &&
			       p->p[common] == v[i].p[common])
				common++;
		}
		for (int32_t d = common; d < v[i].len; d++) {
			t->byte[n_nodes] = (uint8_t)v[i].p[d];
			t->depth[n_nodes] = (uint8_t)(d + 1);
			path[d + 1] = n_nodes;
			n_nodes++;
		}
		/* Token i ends at node path[len]; tokens come grouped by node
		 * since equal byte strings sort together. tok_off is filled as
		 * a count here and turned into offsets below. */
		t->tok_off[path[v[i].len] + 1]++;
		t->tok_ids[n_ids++] = v[i].id;
	}
	for (int32_t i = 0; i < n_nodes; i++)
		t->tok_off[i + 1] += t->tok_off[i];
	/* skip[i]: the first node after i's subtree, the next node whose
	 * depth is not greater than depth[i]. One backward pass with a
	 * per-depth "next node at this depth or shallower". */
	{
		int32_t next_at[MLLM_VTRIE_MAX_BYTES + 2];
		for (int d = 0; d <= MLLM_VTRIE_MAX_BYTES + 1; d++)
			next_at[d] = n_nodes;
		for (int32_t i = n_nodes - 1; i >= 0; i--) {
			int d = t->depth[i];
			t->skip[i] = next_at[d];
			for (int k = d; k <= MLLM_VTRIE_MAX_BYTES + 1; k++)
				next_at[k] = i;
		}
	}
	t->n_nodes = n_nodes;
	t->bytes = bytes;
	free(v);
	*out = t;
	return MLLM_OK;
fail:
	free(bytes);
	free(v);
	mllm_vtrie_free(t);
	return rc;
}

/* ---- The matcher ----------------------------------------------------------------- */

typedef struct {
	int32_t pos;    /* element to match (top) or to continue at (below) */
	int32_t parent; /* frame below, -1 at the bottom */
	int32_t depth;  /* frames in this stack, this one included */
	uint64_t h;     /* hash of the stack's content from here down */
} gnode;

typedef struct {
	int32_t *tops; /* [MLLM_GRAMMAR_MAX_STACKS] arena indices */
	int32_t n;
	bool accept;       /* some stack is empty: the grammar may end here */
	uint8_t first[32]; /* union of the tops' byte sets */
} gstate;

#define GM_CACHE 16

/* The context-free masks (see mllm_gmatch_mask): each stack of the state is
 * cut to its top GM_CUT frames; a cut stack's last kept frame gets a
 * parent below -1 that records how many frames were cut (-2 - depth), so
 * that depth limits apply as in the whole state. Used only while the state
 * has at most GM_CF_STACKS stacks, far from the stack limit. */
#define GM_CUT 3
/* Closure memo: (pos, stack) pairs add() has expanded into the state
 * being built; probes per lookup. */
#define GM_MEMO 4096
/* Frames one advance may create: a grammar whose closure needs more is
 * treated as out of memory rather than walked for minutes. */
#define GM_ADVANCE_NODES (1 << 18)
#define GM_MEMO_PROBES   8
/* The tops of the state being built, by stack hash: add() finds a
 * duplicate stack in O(1) instead of comparing with every top (a state of
 * many stacks that differ only deep down, e.g. a union's variants inside
 * one shared string, made each byte of a walk quadratic in them). */
#define GM_TOPS_TAB  (2 * MLLM_GRAMMAR_MAX_STACKS)
#define GM_CF_STACKS 16

typedef struct {
	uint64_t hash;
	int32_t *key; /* the serialised state */
	int32_t n_key, cap_key;
	uint32_t *mask;
	int32_t n_allowed;
	int32_t *roots; /* context-free entries: the trie nodes left open */
	int32_t n_roots, cap_roots;
	uint64_t used; /* LRU clock */
	bool valid;
} gm_entry;

struct mllm_gmatch {
	const mllm_grammar *g;
	const mllm_vtrie *t;
	int32_t eos, n_words;
	int32_t eos_more[MLLM_GMATCH_MAX_EOS]; /* mllm_gmatch_add_eos */
	int32_t n_eos_more;
	gnode *nodes;
	int32_t n_nodes, cap_nodes;
	int32_t *remap; /* [cap_nodes] scratch of compaction */
	int32_t cap_remap;
	gstate lv[MLLM_VTRIE_MAX_BYTES + 1]; /* lv[0] = the committed state */
	int32_t mark[MLLM_VTRIE_MAX_BYTES + 1];
	int32_t *key; /* serialisation scratch */
	int32_t n_key, cap_key;
	gm_entry cache[GM_CACHE]; /* masks by whole state */
	gm_entry cf[GM_CACHE];    /* context-free masks by cut state */
	gstate cut;               /* the cut state, swapped into lv[0] to walk */
	uint64_t clock;
	int64_t n_walks, n_hits, n_cf_hits;
	bool oom;
	bool no_cf;        /* context-free masks off (benches, tests) */
	bool escaped;      /* an advance popped a cut frame */
	bool dropped;      /* an advance dropped a stack at MLLM_GRAMMAR_MAX_STACKS */
	int32_t adv_base;  /* the arena's size when the state being built began */
	uint32_t memo_gen; /* the state being built; memo entries of others are free */
	uint32_t memo_g[GM_MEMO];
	uint64_t memo_k[GM_MEMO];
	uint32_t tops_g[GM_TOPS_TAB]; /* memo_gen of the state the slot is of */
	uint64_t tops_h[GM_TOPS_TAB];
	int32_t tops_i[GM_TOPS_TAB]; /* index in that state's tops */
};

/* Frames in the stack whose top is x (-1: none; below -1: a cut stack's
 * bottom, -2 - the frames cut). */
static int32_t frames(const mllm_gmatch *m, int32_t x)
{
	return x >= 0 ? m->nodes[x].depth : x == -1 ? 0 : -2 - x;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
	uint64_t x =
	    (a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2))) * 0xff51afd7ed558ccdULL;
	return x ^ (x >> 33);
}

/* The content hash of the stack whose top frame is x (bottoms: -1, or a
 * cut stack's marker). */
static uint64_t stack_hash(const mllm_gmatch *m, int32_t x)
{
	return x >= 0 ? m->nodes[x].h : mix(0x5bd1e995ULL, (uint64_t)(int64_t)x);
}

static int32_t node_new(mllm_gmatch *m, int32_t pos, int32_t parent)
{
	if (m->n_nodes - m->adv_base > GM_ADVANCE_NODES) {
		m->oom = true;
		return -1;
	}
	if (m->n_nodes == m->cap_nodes) {
		int32_t cap = m->cap_nodes * 2;
		gnode *v = mllm_try_realloc(m->nodes, (size_t)cap * sizeof *v);
		if (!v) {
			m->oom = true;
			return -1;
		}
		m->nodes = v;
		m->cap_nodes = cap;
	}
	m->nodes[m->n_nodes] = (gnode){.pos = pos,
	                               .parent = parent,
	                               .depth = frames(m, parent) + 1,
	                               .h = mix((uint64_t)pos, stack_hash(m, parent))};
	return m->n_nodes++;
}

/* dst |= src over 256 bits, a word at a time (this runs once per trie
 * node a walk visits). */
static void set_or(uint8_t *dst, const uint8_t *src)
{
	uint64_t a[4], b[4];
	memcpy(a, dst, sizeof a);
	memcpy(b, src, sizeof b);
	for (int i = 0; i < 4; i++)
		a[i] |= b[i];
	memcpy(dst, a, sizeof a);
}

static bool same_stack(const mllm_gmatch *m, int32_t a, int32_t b)
{
	while (a != b) {
		if (a < 0 || b < 0 || m->nodes[a].pos != m->nodes[b].pos)
			return false;
		a = m->nodes[a].parent;
		b = m->nodes[b].parent;
	}
	return true;
}

static bool ends_seq(const mllm_grammar *g, int32_t pos)
{
	return g->elems[pos].kind == E_ALT || g->elems[pos].kind == E_END;
}

/* Puts "continue at pos, then parent" into st, expanding references and
 * popping finished sequences until every stack's top is a byte set. guard
 * bounds the recursion (a pop chain or a nest of leading references); a
 * stack past it, or past MLLM_GRAMMAR_MAX_DEPTH frames, is dropped. */
/* Whether "continue at pos, then parent" was already expanded into the
 * state being built (and marks it so): what add() puts into a state
 * depends only on pos and the stack's content, so nested optional
 * repeats, which reach the same pair along exponentially many paths,
 * expand each pair once. A full probe window just forgoes the memo. */
static bool memo_seen(mllm_gmatch *m, int32_t pos, int32_t parent)
{
	uint64_t k = mix((uint64_t)pos + 0x100000000ULL, stack_hash(m, parent)) | 1;
	for (uint32_t i = 0; i < GM_MEMO_PROBES; i++) {
		uint32_t j = (uint32_t)(k + i) & (GM_MEMO - 1);
		if (m->memo_g[j] != m->memo_gen) {
			m->memo_g[j] = m->memo_gen;
			m->memo_k[j] = k;
			return false;
		}
		if (m->memo_k[j] == k)
			return true;
	}
	return false;
}

/* A new state is being built: forget the pairs of the last one. */
static void memo_next(mllm_gmatch *m)
{
	m->adv_base = m->n_nodes;
	if (++m->memo_gen == 0) {
		memset(m->memo_g, 0, sizeof m->memo_g);
		memset(m->tops_g, 0, sizeof m->tops_g);
		m->memo_gen = 1;
	}
}

static void add(mllm_gmatch *m, gstate *st, int32_t pos, int32_t parent, int guard)
{
	const mllm_grammar *g = m->g;
	const gelem *e = &g->elems[pos];
	if (guard > 2 * MLLM_GRAMMAR_MAX_DEPTH || m->oom)
		return;
	if (e->kind != E_SET && memo_seen(m, pos, parent))
		return;
	if (e->kind == E_ALT || e->kind == E_END) {
		if (parent == -1)
			st->accept = true;
		else if (parent < -1)
			m->escaped = true; /* the rest of this stack was cut */
		else
			add(m, st, m->nodes[parent].pos, m->nodes[parent].parent, guard + 1);
		return;
	}
	if (e->kind == E_SET) {
		int32_t id;
		uint64_t h;
		uint32_t j;
		if (frames(m, parent) >= MLLM_GRAMMAR_MAX_DEPTH)
			return;
		/* A top with this stack already? Every top of st went into the
		 * table under this memo_gen (states are built only by add(),
		 * each after memo_next), with the hash node_new gives it. */
		h = mix((uint64_t)pos, stack_hash(m, parent));
		for (j = (uint32_t)h & (GM_TOPS_TAB - 1); m->tops_g[j] == m->memo_gen;
		     j = (j + 1) & (GM_TOPS_TAB - 1)) {
			const gnode *t = &m->nodes[st->tops[m->tops_i[j]]];
			if (m->tops_h[j] == h && t->pos == pos && same_stack(m, t->parent, parent))
				return;
		}
		if (st->n >= MLLM_GRAMMAR_MAX_STACKS) {
			m->dropped = true;
			return;
		}
		id = node_new(m, pos, parent);
		if (id < 0)
			return;
		m->tops_g[j] = m->memo_gen;
		m->tops_h[j] = h;
		m->tops_i[j] = st->n;
		st->tops[st->n++] = id;
		set_or(st->first, g->sets[e->arg]);
		return;
	}
	/* E_REF: the continuation frame, unless the reference is the last
	 * item of its sequence (a tail call: continue with parent). */
	{
		int32_t cont = parent, r = e->arg;
		if (!ends_seq(g, pos + 1)) {
			if (frames(m, parent) >= MLLM_GRAMMAR_MAX_DEPTH)
				return;
			cont = node_new(m, pos + 1, parent);
			if (cont < 0)
				return;
		}
		for (int32_t a = g->alt_off[r]; a < g->alt_off[r + 1]; a++)
			add(m, st, g->alt_pos[a], cont, guard + 1);
	}
}

static void state_clear(gstate *st)
{
	st->n = 0;
	st->accept = false;
	memset(st->first, 0, sizeof st->first);
}

/* out = in after byte c. */
static void advance(mllm_gmatch *m, const gstate *in, uint8_t c, gstate *out)
{
	state_clear(out);
	if (!(in->first[c / 8] & (1u << (c % 8))))
		return;
	memo_next(m);
	for (int32_t i = 0; i < in->n; i++) {
		const gnode *t = &m->nodes[in->tops[i]];
		const uint8_t *set = m->g->sets[m->g->elems[t->pos].arg];
		if (set[c / 8] & (1u << (c % 8)))
			add(m, out, t->pos + 1, t->parent, 0);
	}
}

void mllm_gmatch_free(mllm_gmatch *m)
{
	if (!m)
		return;
	free(m->nodes);
	free(m->remap);
	for (int i = 0; i <= MLLM_VTRIE_MAX_BYTES; i++)
		free(m->lv[i].tops);
	free(m->key);
	free(m->cut.tops);
	for (int i = 0; i < GM_CACHE; i++) {
		free(m->cache[i].key);
		free(m->cache[i].mask);
		free(m->cf[i].key);
		free(m->cf[i].mask);
		free(m->cf[i].roots);
	}
	free(m);
}

int mllm_gmatch_create(const mllm_grammar *g, const mllm_vtrie *t, int32_t eos, mllm_gmatch **out)
{
	mllm_gmatch *m = mllm_try_calloc(1, sizeof *m);
	*out = NULL;
	if (!m)
		return MLLM_ENOMEM;
	m->g = g;
	m->t = t;
	m->eos = eos;
	m->n_words = (t->n_vocab + 31) / 32;
	m->cap_nodes = 1024;
	m->nodes = mllm_try_malloc((size_t)m->cap_nodes * sizeof *m->nodes);
	if (!m->nodes)
		goto nomem;
	for (int i = 0; i <= MLLM_VTRIE_MAX_BYTES; i++) {
		m->lv[i].tops = mllm_try_malloc(MLLM_GRAMMAR_MAX_STACKS * sizeof(int32_t));
		if (!m->lv[i].tops)
			goto nomem;
	}
	m->cut.tops = mllm_try_malloc(MLLM_GRAMMAR_MAX_STACKS * sizeof(int32_t));
	if (!m->cut.tops)
		goto nomem;
	state_clear(&m->lv[0]);
	memo_next(m);
	for (int32_t a = g->alt_off[g->root]; a < g->alt_off[g->root + 1]; a++)
		add(m, &m->lv[0], g->alt_pos[a], -1, 0);
	if (m->oom)
		goto nomem;
	*out = m;
	return MLLM_OK;
nomem:
	mllm_gmatch_free(m);
	return MLLM_ENOMEM;
}

void mllm_gmatch_set_context_free(mllm_gmatch *m, bool on)
{
	m->no_cf = !on;
}

void mllm_gmatch_add_eos(mllm_gmatch *m, int32_t id)
{
	if (id < 0 || id >= m->t->n_vocab || id == m->eos || m->n_eos_more >= MLLM_GMATCH_MAX_EOS)
		return;
	for (int32_t i = 0; i < m->n_eos_more; i++)
		if (m->eos_more[i] == id)
			return;
	m->eos_more[m->n_eos_more++] = id;
}

static bool is_end_id(const mllm_gmatch *m, int32_t id)
{
	if (id == m->eos && m->eos >= 0)
		return true;
	for (int32_t i = 0; i < m->n_eos_more; i++)
		if (m->eos_more[i] == id)
			return true;
	return false;
}

bool mllm_gmatch_can_end(const mllm_gmatch *m)
{
	return m->lv[0].accept;
}

bool mllm_gmatch_complete(const mllm_gmatch *m)
{
	return m->lv[0].accept && m->lv[0].n == 0;
}

void mllm_gmatch_stats(const mllm_gmatch *m, int64_t *n_walks, int64_t *n_hits, int64_t *n_cf_hits)
{
	*n_walks = m->n_walks;
	*n_hits = m->n_hits;
	*n_cf_hits = m->n_cf_hits;
}

/* Copies the frames that lv[k]'s stacks use to the front of the arena and
 * makes that state lv[0]: states after a step hold only live frames, so the
 * arena stays as small as the state. */
static int compact(mllm_gmatch *m, int k)
{
	gstate *st = &m->lv[k];
	int32_t n_old = m->n_nodes, n_new = 0;
	if (m->cap_remap < n_old) {
		int32_t *r = mllm_try_realloc(m->remap, (size_t)n_old * sizeof *r);
		if (!r)
			return MLLM_ENOMEM;
		m->remap = r;
		m->cap_remap = n_old;
	}
	for (int32_t i = 0; i < n_old; i++)
		m->remap[i] = -1;
	/* Mark live frames, then copy them in index order: a parent always
	 * has a smaller index than its children, so order is kept and the
	 * parent's new index is known when the child is copied. */
	for (int32_t i = 0; i < st->n; i++)
		for (int32_t x = st->tops[i]; x >= 0 && m->remap[x] == -1; x = m->nodes[x].parent)
			m->remap[x] = -2;
	for (int32_t i = 0; i < n_old; i++) {
		if (m->remap[i] == -1)
			continue;
		gnode nd = m->nodes[i];
		nd.parent = nd.parent < 0 ? -1 : m->remap[nd.parent];
		m->nodes[n_new] = nd;
		m->remap[i] = n_new++;
	}
	m->n_nodes = n_new;
	if (k != 0) {
		gstate *z = &m->lv[0];
		z->n = st->n;
		z->accept = st->accept;
		memcpy(z->first, st->first, sizeof z->first);
		for (int32_t i = 0; i < st->n; i++)
			z->tops[i] = m->remap[st->tops[i]];
	} else {
		for (int32_t i = 0; i < st->n; i++)
			st->tops[i] = m->remap[st->tops[i]];
	}
	return MLLM_OK;
}

int mllm_gmatch_feed(mllm_gmatch *m, const char *s, size_t n)
{
	int32_t base = m->n_nodes;
	size_t done = 0;
	int rc;
	/* In chunks of the level count; each chunk ends in compaction. */
	while (done < n) {
		size_t k = n - done < MLLM_VTRIE_MAX_BYTES ? n - done : MLLM_VTRIE_MAX_BYTES;
		for (size_t i = 0; i < k; i++) {
			advance(m, &m->lv[i], (uint8_t)s[done + i], &m->lv[i + 1]);
			if (m->oom) {
				m->oom = false;
				m->n_nodes = base;
				return MLLM_ENOMEM;
			}
			if (m->lv[i + 1].n == 0 && !m->lv[i + 1].accept) {
				m->n_nodes = base;
				return MLLM_EINVAL;
			}
			if (m->lv[i + 1].n == 0 && i + 1 < k) {
				m->n_nodes = base;
				return MLLM_EINVAL;
			}
		}
		rc = compact(m, (int)k);
		if (rc)
			return rc;
		base = m->n_nodes;
		done += k;
	}
	return MLLM_OK;
}

int mllm_gmatch_accept(mllm_gmatch *m, int32_t id)
{
	if (is_end_id(m, id))
		return m->lv[0].accept ? MLLM_OK : MLLM_EINVAL;
	if (id < 0 || id >= m->t->n_vocab || m->t->id_off[id] < 0)
		return MLLM_EINVAL;
	return mllm_gmatch_feed(m, m->t->bytes + m->t->id_off[id], m->t->id_len[id]);
}

/* ---- Masks ------------------------------------------------------------------------- */

/* A mask is found by walking the vocabulary trie from the state; walks are
 * what constrained decoding costs, so two caches avoid them:
 * - by whole state (stacks and accept flag): a state seen before (inside a
 *   string, most steps) reuses its mask as is;
 * - by cut state, for the many states that differ only deep in their
 *   stacks (the same string or number rule in different properties): each
 *   stack cut to its top GM_CUT frames is walked once; a token whose walk
 *   never pops a cut frame is allowed or refused whatever lies below the
 *   cut, so that part of the mask is shared, and only the trie subtrees
 *   where some stack popped a cut frame ("roots") are walked again from
 *   the whole state. Both give exactly the whole state's mask. */

static uint64_t key_hash(const int32_t *k, int32_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (int32_t i = 0; i < n; i++) {
		h ^= (uint32_t)k[i];
		h *= 1099511628211ull;
	}
	return h;
}

static int key_room(mllm_gmatch *m, int32_t need)
{
	if (need > m->cap_key) {
		int32_t *k = mllm_try_realloc(m->key, (size_t)need * sizeof *k);
		if (!k)
			return MLLM_ENOMEM;
		m->key = k;
		m->cap_key = need;
	}
	return MLLM_OK;
}

/* The committed state as a list of ints into m->key: per stack its
 * positions top to bottom and a -1, then the accept flag. Two equal lists
 * are the same state (the mask depends on nothing else). With cut, each
 * stack stops after GM_CUT frames with -2 - (frames cut) when it goes on,
 * and there is no accept flag (the context-free part ignores EOS). */
static int serialise(mllm_gmatch *m, bool cut)
{
	const gstate *st = &m->lv[0];
	int32_t need = 1;
	for (int32_t i = 0; i < st->n; i++)
		need += m->nodes[st->tops[i]].depth + 2;
	if (key_room(m, need))
		return MLLM_ENOMEM;
	m->n_key = 0;
	for (int32_t i = 0; i < st->n; i++) {
		int32_t kept = 0;
		for (int32_t x = st->tops[i]; x >= 0; x = m->nodes[x].parent) {
			if (cut && kept == GM_CUT) {
				m->key[m->n_key++] = -2 - m->nodes[x].depth;
				break;
			}
			m->key[m->n_key++] = m->nodes[x].pos;
			kept++;
		}
		m->key[m->n_key++] = -1;
	}
	if (!cut)
		m->key[m->n_key++] = st->accept;
	return MLLM_OK;
}

/* The entry of cache c holding m->key, or NULL. */
static gm_entry *cache_find(mllm_gmatch *m, gm_entry *c, uint64_t h)
{
	for (int i = 0; i < GM_CACHE; i++)
		if (c[i].valid && c[i].hash == h && c[i].n_key == m->n_key &&
		    (m->n_key == 0 ||
		     memcmp(c[i].key, m->key, (size_t)m->n_key * sizeof *m->key) == 0)) {
			c[i].used = m->clock;
			return &c[i];
		}
	return NULL;
}

/* The least recently used entry of c, emptied and keyed by m->key, with
 * room for a mask; NULL when out of memory. */
static gm_entry *cache_take(mllm_gmatch *m, gm_entry *c, uint64_t h)
{
	gm_entry *e = NULL;
	for (int i = 0; i < GM_CACHE && !(e && !e->valid); i++)
		if (!e || !c[i].valid || c[i].used < e->used)
			e = &c[i];
	e->valid = false;
	if (!e->mask) {
		e->mask = mllm_try_malloc((size_t)m->n_words * sizeof *e->mask);
		if (!e->mask)
			return NULL;
	}
	if (e->cap_key < m->n_key) {
		int32_t *k = mllm_try_realloc(e->key, (size_t)m->n_key * sizeof *k);
		if (!k)
			return NULL;
		e->key = k;
		e->cap_key = m->n_key;
	}
	if (m->n_key > 0) /* both may be NULL when empty: memcpy's UB */
		memcpy(e->key, m->key, (size_t)m->n_key * sizeof *m->key);
	e->n_key = m->n_key;
	e->hash = h;
	e->n_roots = 0;
	e->used = m->clock;
	return e;
}

static int add_root(mllm_gmatch *m, gm_entry *e, int32_t node)
{
	if (e->n_roots == e->cap_roots) {
		int32_t cap = e->cap_roots ? 2 * e->cap_roots : 64;
		int32_t *r = mllm_try_realloc(e->roots, (size_t)cap * sizeof *r);
		if (!r) {
			m->oom = true;
			return MLLM_ENOMEM;
		}
		e->roots = r;
		e->cap_roots = cap;
	}
	e->roots[e->n_roots++] = node;
	return MLLM_OK;
}

/* Walks the trie nodes [from, to) (whole subtrees), the state before node
 * `from` being lv[depth[from] - 1] with its frames below mark[] of that
 * level; sets the bits of the tokens allowed and returns how many. With
 * cf, the walk is of a cut state: a subtree where some stack popped a cut
 * frame (or overflowed the stack limit, which the whole state may reach
 * differently) is neither allowed nor refused but listed in cf's roots. */
static int32_t walk(mllm_gmatch *m, int32_t from, int32_t to, uint32_t *mask, gm_entry *cf)
{
	const mllm_vtrie *t = m->t;
	int32_t n_allowed = 0;
	for (int32_t i = from; i < to;) {
		int d = t->depth[i];
		gstate *st = &m->lv[d];
		m->n_nodes = m->mark[d - 1];
		m->escaped = m->dropped = false;
		advance(m, &m->lv[d - 1], t->byte[i], st);
		if (m->oom)
			break;
		if (cf && (m->escaped || m->dropped)) {
			if (add_root(m, cf, i))
				break;
			i = t->skip[i];
			continue;
		}
		if (st->n == 0 && !st->accept) {
			i = t->skip[i];
			continue;
		}
		m->mark[d] = m->n_nodes;
		for (int32_t k = t->tok_off[i]; k < t->tok_off[i + 1]; k++) {
			int32_t id = t->tok_ids[k];
			mask[id / 32] |= 1u << (id % 32);
			n_allowed++;
		}
		i = st->n == 0 ? t->skip[i] : i + 1;
	}
	return n_allowed;
}

/* m->cut = lv[0] with every stack cut to its top GM_CUT frames (frames
 * appended to the arena; stacks that become equal are kept once). */
static void build_cut(mllm_gmatch *m)
{
	const gstate *st = &m->lv[0];
	gstate *c = &m->cut;
	state_clear(c);
	for (int32_t i = 0; i < st->n && !m->oom; i++) {
		int32_t pos[GM_CUT], k = 0, x, below, top;
		for (x = st->tops[i]; x >= 0 && k < GM_CUT; x = m->nodes[x].parent)
			pos[k++] = m->nodes[x].pos;
		below = x < 0 ? -1 : -2 - m->nodes[x].depth;
		top = below;
		for (int32_t j = k - 1; j >= 0 && !m->oom; j--)
			top = node_new(m, pos[j], top);
		if (m->oom)
			return;
		for (int32_t j = 0; j < c->n; j++)
			if (same_stack(m, c->tops[j], top)) {
				top = -1;
				break;
			}
		if (top >= 0) {
			c->tops[c->n++] = top;
			set_or(c->first, m->g->sets[m->g->elems[m->nodes[top].pos].arg]);
		}
	}
}

/* The context-free entry for the committed state: found, or walked now. */
static gm_entry *cf_entry(mllm_gmatch *m)
{
	int32_t base = m->n_nodes;
	gm_entry *e;
	gstate tmp;
	uint64_t h;
	if (serialise(m, true))
		return NULL;
	h = key_hash(m->key, m->n_key);
	e = cache_find(m, m->cf, h);
	if (e) {
		m->n_cf_hits++;
		return e;
	}
	e = cache_take(m, m->cf, h);
	if (!e)
		return NULL;
	build_cut(m);
	if (!m->oom) {
		memset(e->mask, 0, (size_t)m->n_words * sizeof *e->mask);
		tmp = m->lv[0];
		m->lv[0] = m->cut;
		m->cut = tmp;
		m->mark[0] = m->n_nodes;
		e->n_allowed = walk(m, 0, m->t->n_nodes, e->mask, e);
		m->n_walks++;
		tmp = m->lv[0];
		m->lv[0] = m->cut;
		m->cut = tmp;
	}
	m->n_nodes = base;
	if (m->oom)
		return NULL;
	e->valid = true;
	return e;
}

/* mask = cf's mask plus what the whole state allows in cf's open subtrees:
 * each is walked from the state after its prefix, the levels of the
 * previous subtree's prefix reused where the bytes agree. */
static int32_t resolve(mllm_gmatch *m, const gm_entry *cf, uint32_t *mask)
{
	const mllm_vtrie *t = m->t;
	int32_t n = cf->n_allowed, have = 0, base = m->n_nodes;
	const char *prev = NULL;
	memcpy(mask, cf->mask, (size_t)m->n_words * sizeof *mask);
	m->mark[0] = base;
	for (int32_t r = 0; r < cf->n_roots && !m->oom; r++) {
		int32_t node = cf->roots[r], d = t->depth[node], j = 0;
		int32_t first = t->tok_ids[t->tok_off[node]];
		const char *pre = t->bytes + t->id_off[first];
		bool dead = false;
		while (j < have && j < d - 1 && pre[j] == prev[j])
			j++;
		for (; j < d - 1; j++) {
			m->n_nodes = m->mark[j];
			advance(m, &m->lv[j], (uint8_t)pre[j], &m->lv[j + 1]);
			m->mark[j + 1] = m->n_nodes;
			if (m->lv[j + 1].n == 0) {
				dead = true; /* no stack goes on: nothing below */
				break;
			}
		}
		have = j;
		prev = pre;
		if (!dead && !m->oom)
			n += walk(m, node, t->skip[node], mask, NULL);
	}
	m->n_nodes = base;
	return n;
}

int32_t mllm_gmatch_mask(mllm_gmatch *m, const uint32_t **allow)
{
	gm_entry *e, *cf = NULL;
	uint64_t h;
	int32_t n;
	if (serialise(m, false))
		return MLLM_ENOMEM;
	h = key_hash(m->key, m->n_key);
	m->clock++;
	e = cache_find(m, m->cache, h);
	if (e) {
		m->n_hits++;
		*allow = e->mask;
		return e->n_allowed;
	}
	e = cache_take(m, m->cache, h);
	if (!e)
		return MLLM_ENOMEM;
	if (!m->no_cf && m->lv[0].n <= GM_CF_STACKS) {
		cf = cf_entry(m);
		if (!cf) {
			m->oom = false;
			return MLLM_ENOMEM;
		}
		/* cf_entry reused m->key: the whole state's key is in e. */
		n = resolve(m, cf, e->mask);
	} else {
		memset(e->mask, 0, (size_t)m->n_words * sizeof *e->mask);
		m->mark[0] = m->n_nodes;
		n = walk(m, 0, m->t->n_nodes, e->mask, NULL);
		m->n_nodes = m->mark[0];
		m->n_walks++;
	}
	if (m->oom) {
		m->oom = false;
		return MLLM_ENOMEM;
	}
	if (m->lv[0].accept && m->eos >= 0 && m->eos < m->t->n_vocab) {
		e->mask[m->eos / 32] |= 1u << (m->eos % 32);
		n++;
	}
	for (int32_t k = 0; k < m->n_eos_more && m->lv[0].accept; k++) {
		int32_t id = m->eos_more[k];
		/* An end id the trie also holds (a plain-text piece) is
		 * already counted when the grammar allows its bytes. */
		if (!(e->mask[id / 32] & (1u << (id % 32)))) {
			e->mask[id / 32] |= 1u << (id % 32);
			n++;
		}
	}
	e->n_allowed = n;
	e->valid = true;
	*allow = e->mask;
	return n;
}

int mllm_grammar_match(const mllm_grammar *g, const char *s, size_t n)
{
	mllm_vtrie empty = {0};
	mllm_gmatch *m;
	int rc;
	if (mllm_gmatch_create(g, &empty, -1, &m))
		return -1;
	rc = mllm_gmatch_feed(m, s, n);
	rc = rc ? -1 : mllm_gmatch_can_end(m) ? 1 : 0;
	mllm_gmatch_free(m);
	return rc;
}
