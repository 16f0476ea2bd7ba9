/*
 * gmatch.h — engine-internal side of constrained decoding: the byte trie of
 * a vocabulary and the per-choice matcher that turns a grammar state into a
 * token mask (grammar.c). The scheduler, tests and benches include it.
 *
 * A matcher belongs to one choice and one thread (the engine thread). Its
 * state is a set of stacks of grammar positions (a pushdown automaton run
 * on all its branches at once); the mask for the next token is found by
 * walking the vocabulary trie once, advancing the state byte by byte and
 * skipping every subtree whose prefix the grammar rejects. Masks are cached
 * per state (most steps inside a string or a number repeat a state), and
 * the part of a mask that does not depend on the stacks' deeper frames is
 * cached by the top frames alone, so a whole walk runs only for states
 * whose top frames were not seen before (grammar.c).
 */
#ifndef MLLM_GMATCH_H
#define MLLM_GMATCH_H

#include "mllm.h"

/* Longest token (in bytes) a grammar may ever allow; longer ones are never
 * offered (every text can be spelled with shorter tokens). */
#define MLLM_VTRIE_MAX_BYTES 128

typedef struct mllm_vtrie mllm_vtrie;

/* The byte trie of tok's vocabulary (control tokens and empty tokens left
 * out). Immutable once built; MLLM_ENOMEM. */
int mllm_vtrie_create(const mllm_tokenizer *tok, mllm_vtrie **out) MLLM_WUR;
void mllm_vtrie_free(mllm_vtrie *t);
int32_t mllm_vtrie_n_vocab(const mllm_vtrie *t);

typedef struct mllm_gmatch mllm_gmatch;

/* A matcher at the start of g's language, for the vocabulary of t (both
 * borrowed: they must outlive the matcher). eos is the id allowed where the
 * grammar may end (-1: none). MLLM_ENOMEM. */
int mllm_gmatch_create(const mllm_grammar *g, const mllm_vtrie *t, int32_t eos,
                       mllm_gmatch **out) MLLM_WUR;
void mllm_gmatch_free(mllm_gmatch *m);
/* Adds one more id allowed where the grammar may end, besides create's
 * eos: a chat model ends its turn with its own end token (<|eot_id|>,
 * <|im_end|>), which need not be the tokenizer's EOS. Up to
 * MLLM_GMATCH_MAX_EOS ids; more, ids outside the vocabulary and repeats
 * are ignored. Call before the first mask. */
#define MLLM_GMATCH_MAX_EOS 8
void mllm_gmatch_add_eos(mllm_gmatch *m, int32_t id);

/* The tokens allowed next: *allow gets a bitset of n_vocab bits (bit i of
 * word i / 32), valid until the next call on m; the return value is how
 * many tokens it allows (0: a dead end, which a well-formed grammar never
 * reaches), or MLLM_ENOMEM. */
int32_t mllm_gmatch_mask(mllm_gmatch *m, const uint32_t **allow);
/* Advances by token id (its bytes; eos ends the matcher). MLLM_EINVAL if
 * the grammar rejects it (the state is then unchanged). */
int mllm_gmatch_accept(mllm_gmatch *m, int32_t id) MLLM_WUR;
/* Advances by raw bytes (tests). MLLM_EINVAL on rejection. */
int mllm_gmatch_feed(mllm_gmatch *m, const char *s, size_t n) MLLM_WUR;
/* Whether the bytes so far form a complete sentence (EOS is allowed). */
bool mllm_gmatch_can_end(const mllm_gmatch *m);
/* Whether the grammar may end here and nothing else may follow (only EOS
 * is allowed next). */
bool mllm_gmatch_complete(const mllm_gmatch *m);

/* Context-free masks on (the default) or off: the masks are the same
 * either way; benches and tests compare the two. */
void mllm_gmatch_set_context_free(mllm_gmatch *m, bool on);

/* Counters for benches: whole trie walks run, masks served from the cache
 * of whole states, and masks built from a cached context-free part. */
void mllm_gmatch_stats(const mllm_gmatch *m, int64_t *n_walks, int64_t *n_hits, int64_t *n_cf_hits);

#endif
