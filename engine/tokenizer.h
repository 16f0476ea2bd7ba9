/*
 * tokenizer.h — SentencePiece-exact BPE tokenizer (LLaMA-1/2 tokenizer.model
 * or GGUF tokenizer.ggml.* metadata) and a streaming-safe detokenizer.
 * Included through mllm.h. A tokenizer is immutable after load and may be
 * used from any number of threads at once (its one internal cache, which
 * words encode to a single piece, is filled with atomics). docs/tokenizer.md
 * describes the algorithm and what is checked against SentencePiece.
 */
#ifndef MLLM_TOKENIZER_H
#define MLLM_TOKENIZER_H

typedef struct mllm_tokenizer mllm_tokenizer;

/* Loads `path`: a SentencePiece tokenizer.model (protobuf ModelProto, BPE
 * only) or a .gguf file (vocabulary from its metadata). Unigram and malformed
 * models fail with MLLM_EUNSUPPORTED / MLLM_EFORMAT and a message in err. The
 * caller owns *out and frees it with mllm_tokenizer_free(). */
int mllm_tokenizer_load(const char *path, mllm_tokenizer **out, char *err, size_t errlen) MLLM_WUR;
void mllm_tokenizer_free(mllm_tokenizer *tok);

int32_t mllm_tokenizer_n_vocab(const mllm_tokenizer *tok);
int32_t mllm_tokenizer_bos(const mllm_tokenizer *tok); /* -1 if none */
int32_t mllm_tokenizer_eos(const mllm_tokenizer *tok); /* -1 if none */
/* Whether BOS is prepended to text prompts (tokenizer_config / GGUF;
 * default true). Always false when the vocabulary has no BOS. */
bool mllm_tokenizer_add_bos(const mllm_tokenizer *tok);
void mllm_tokenizer_set_add_bos(mllm_tokenizer *tok, bool add_bos);

/* Encodes len bytes of text (any bytes; invalid UTF-8 handled as
 * SentencePiece does). Writes at most cap ids; *n_ids receives the number of
 * ids the full encoding has. Returns MLLM_ENOSPACE when cap was too small.
 * cap >= mllm_tokenizer_max_ids(tok, len) always suffices; with the LLaMA
 * vocabulary cap >= len + 2 does. `<s>` in text is plain text; EOS is never
 * added. Allocates only scratch for its input (none below ~1 KB), and may
 * fail with MLLM_ENOMEM. */
int mllm_tokenizer_encode(const mllm_tokenizer *tok, const char *text, size_t len, bool add_bos,
                          int32_t *ids, size_t cap, size_t *n_ids) MLLM_WUR;

/* Cancellation hook for long encodes (a server preparing a 1 MiB prompt whose
 * client hung up): while `flag` is set for the calling thread, each
 * mllm_tokenizer_encode() on that thread checks it between words (and every
 * 4096 merges inside a long word) and returns MLLM_ECANCELLED once it reads
 * true. NULL (the default) turns the check off.
 * Thread-local, so one thread's flag never affects another's encode; the
 * result of an encode that is not cancelled is unchanged. */
void mllm_tokenizer_cancel_watch(const volatile _Atomic(bool) *flag);

/* Decodes like SentencePiece's decode() (control tokens render as nothing,
 * byte pieces are joined into bytes, the leading dummy-prefix space of the
 * first piece is dropped). out has room for cap bytes: the text is written
 * NUL-terminated, truncated to cap - 1 bytes when longer. *n_out gets the
 * full length (without the NUL). MLLM_ENOSPACE when the text did not fit
 * (*n_out >= cap: call again with cap > *n_out); MLLM_ERANGE for an id outside
 * the vocabulary. Invalid UTF-8 formed by byte pieces renders as U+FFFD per
 * byte, as in SentencePiece, so the output is always valid UTF-8. */
int mllm_tokenizer_decode(const mllm_tokenizer *tok, const int32_t *ids, size_t n_ids, char *out,
                          size_t cap, size_t *n_out) MLLM_WUR;

/* The piece's text as stored (with U+2581 for spaces); NULL for a bad id.
 * NUL-terminated; *len (if len != NULL) gets its length. */
const char *mllm_tokenizer_piece(const mllm_tokenizer *tok, int32_t id, size_t *len);

/* Whether id is a control token (<s>, </s>): rendered as nothing. */
bool mllm_tokenizer_is_control(const mllm_tokenizer *tok, int32_t id);
/* The raw bytes of token id on its own (what logprobs report as the token):
 * a byte piece is its byte, U+2581 is a space, anything else its text.
 * Writes at most cap bytes (no NUL) and returns the count; 0 for a bad id. */
size_t mllm_tokenizer_token_bytes(const mllm_tokenizer *tok, int32_t id, char *out, size_t cap);

/* An id capacity that always suffices to encode len bytes with BOS: len + 2
 * for the LLaMA vocabulary (and any with "▁" and U+FFFD pieces or without
 * byte fallback), 3 * len + 5 otherwise. */
size_t mllm_tokenizer_max_ids(const mllm_tokenizer *tok, size_t len);

/* Incremental detokenizer: fed one id at a time, emits only whole UTF-8
 * characters; mllm_detok_flush() emits the rest so that the concatenation
 * equals mllm_tokenizer_decode() of all ids. A value type: no allocation. */
typedef struct {
	const mllm_tokenizer *tok;
	int n_seen;               /* ids pushed so far */
	unsigned char pending[8]; /* incomplete UTF-8 held back */
	int n_pending;
	int n_text; /* ids pushed that were not control tokens: the
	             * first of them drops its dummy-prefix space */
} mllm_detok;

void mllm_detok_init(mllm_detok *d, const mllm_tokenizer *tok);
/* Appends the text that id completes to out (at most cap bytes; a piece is at
 * most MLLM_DETOK_MAX bytes, so cap >= MLLM_DETOK_MAX always suffices).
 * Returns the number of bytes written, or a negative MLLM_E* code. */
#define MLLM_DETOK_MAX 256
/* MLLM_ERANGE for a bad id, MLLM_ENOSPACE when cap is too small (then the
 * state is unchanged and the id may be pushed again). */
int mllm_detok_push(mllm_detok *d, int32_t id, char *out, size_t cap);
/* Emits held-back bytes (each as U+FFFD: they never became a character).
 * The detokenizer may go on being fed afterwards. */
int mllm_detok_flush(mllm_detok *d, char *out, size_t cap);

#endif
