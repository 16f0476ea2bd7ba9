/*
 * grammar.h — grammars over bytes for constrained decoding. Part of the
 * public API (included through mllm.h): api/ compiles a JSON schema into a
 * grammar with the builder below, hands it to the engine in mllm_sampling,
 * and the engine allows at each step only the tokens whose bytes keep the
 * output inside the grammar's language (docs/grammar.md).
 *
 * A grammar is a set of rules; a rule is a list of alternatives; an
 * alternative is a sequence of items: a byte set (one byte out of a set of
 * 256), a literal (a byte string) or a reference to a rule (recursion
 * allowed, left recursion is not). Rule 0 need not be the root: finish names
 * it. This is the GBNF shape, over bytes, so that UTF-8 and JSON escapes are
 * spelled out by the compiler that builds the grammar.
 *
 * Ownership: the builder is owned by its creator (mllm_gbuild_free). A
 * finished grammar is immutable and reference-counted: mllm_gbuild_finish
 * returns one reference, mllm_grammar_ref adds one (atomically: references
 * may be taken and dropped on any thread), mllm_grammar_unref drops one and
 * frees with the last. mllm_engine_submit takes its own reference to the
 * grammar named in mllm_sampling, so the caller may drop its reference
 * right after submitting.
 */
#ifndef MLLM_GRAMMAR_H
#define MLLM_GRAMMAR_H

#include "mllm_core.h"

typedef struct mllm_grammar mllm_grammar;
typedef struct mllm_gbuild mllm_gbuild;

/* Bounds on a grammar and on the matcher state (see docs/grammar.md). A
 * grammar larger than these fails finish with MLLM_ERANGE; a matcher state
 * deeper or wider than these drops the excess stacks (the output then stays
 * inside the language, only some continuations are no longer offered). */
#define MLLM_GRAMMAR_MAX_RULES  65536
#define MLLM_GRAMMAR_MAX_ITEMS  (1 << 20) /* items over all alternatives */
#define MLLM_GRAMMAR_MAX_DEPTH  256       /* nested rule frames in one stack */
#define MLLM_GRAMMAR_MAX_STACKS 128       /* parallel stacks (ambiguity) */

/* A new, empty builder. MLLM_ENOMEM. */
int mllm_gbuild_create(mllm_gbuild **out) MLLM_WUR;
void mllm_gbuild_free(mllm_gbuild *b);

/* Declares a rule with no alternative yet and returns its id (>= 0), or a
 * negative MLLM_E* code (MLLM_ERANGE past MLLM_GRAMMAR_MAX_RULES). */
int32_t mllm_gbuild_rule(mllm_gbuild *b);
/* Opens a new alternative of rule; the items added next go to it. The first
 * item added to a rule without an open alternative opens one. An
 * alternative with no items matches the empty string. */
void mllm_gbuild_alt(mllm_gbuild *b, int32_t rule);
/* Appends to the open alternative of rule: n literal bytes; one byte of the
 * 256-bit set (bit i of set[i / 8] is byte i); one byte in [lo, hi]; a
 * reference to rule target. These never fail on the spot: the first error
 * (a bad rule id, a size bound, out of memory) is kept and reported by
 * mllm_gbuild_finish, so that a compiler can add items without checking
 * each call. */
void mllm_gbuild_lit(mllm_gbuild *b, int32_t rule, const char *s, size_t n);
void mllm_gbuild_set(mllm_gbuild *b, int32_t rule, const uint8_t set[32]);
void mllm_gbuild_range(mllm_gbuild *b, int32_t rule, uint8_t lo, uint8_t hi);
void mllm_gbuild_ref(mllm_gbuild *b, int32_t rule, int32_t target);

/* Freezes the builder's rules into a grammar whose language is that of
 * root. Fails with MLLM_EINVAL (a rule with no alternative, a reference to
 * an unknown rule, left recursion, the first error kept by the adders) or
 * MLLM_ERANGE / MLLM_ENOMEM, with a sentence in err. The builder may be
 * freed afterwards; it is not reusable. */
int mllm_gbuild_finish(mllm_gbuild *b, int32_t root, mllm_grammar **out, char *err,
                       size_t errlen) MLLM_WUR;

mllm_grammar *mllm_grammar_ref(mllm_grammar *g);
void mllm_grammar_unref(mllm_grammar *g);

/* Whether the bytes s[0..n) form a complete sentence of the grammar (1), a
 * viable prefix only (0), or leave it (-1). For tests and for api/ checks
 * of literals; allocates. MLLM_ENOMEM is reported as -1. */
int mllm_grammar_match(const mllm_grammar *g, const char *s, size_t n);

#endif
