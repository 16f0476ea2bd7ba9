/*
 * tokenizer.h — two tokenizer kinds behind one API: SentencePiece-exact BPE
 * (LLaMA-1/2 tokenizer.model or GGUF tokenizer.ggml.model = llama) and
 * Llama-3 byte-level BPE (Hugging Face tokenizer.json or GGUF
 * tokenizer.ggml.model = gpt2, as MobileLLM-R1 ships), plus a streaming-safe
 * detokenizer. Part of the public API (included through mllm.h). A
 * tokenizer is immutable after load and may be
 * used from any number of threads at once (its one internal cache, which
 * words encode to a single piece, is filled with atomics). docs/tokenizer.md
 * describes the algorithm and what is checked against SentencePiece.
 */
#ifndef MLLM_TOKENIZER_H
#define MLLM_TOKENIZER_H

#include "mllm_core.h"

typedef struct mllm_tokenizer mllm_tokenizer;

/* Loads `path`: a SentencePiece tokenizer.model (protobuf ModelProto, BPE
 * only), a Hugging Face tokenizer.json (byte-level BPE with the Llama-3
 * pre-tokenizer; config.json, generation_config.json and
 * tokenizer_config.json in the same directory are read for BOS/EOS when
 * present) or a .gguf file (vocabulary from its metadata). Unigram, other
 * pre-tokenizers and malformed files fail with MLLM_EUNSUPPORTED /
 * MLLM_EFORMAT and a message in err. The caller owns *out and frees it with
 * mllm_tokenizer_free(). */
int mllm_tokenizer_load(const char *path, mllm_tokenizer **out, char *err, size_t errlen) MLLM_WUR;
void mllm_tokenizer_free(mllm_tokenizer *tok);

int32_t mllm_tokenizer_n_vocab(const mllm_tokenizer *tok);
int32_t mllm_tokenizer_bos(const mllm_tokenizer *tok); /* -1 if none */
int32_t mllm_tokenizer_eos(const mllm_tokenizer *tok); /* -1 if none */
/* Whether id ends generation: the EOS id, and for byte-level BPE also
 * <|eot_id|>, <|eom_id|> and every id of the configs' eos_token_id lists
 * (MobileLLM-R1: 128001, 128008, 128009). */
bool mllm_tokenizer_is_eos(const mllm_tokenizer *tok, int32_t id);
/* The end-of-generation ids (EOS first); writes at most cap, returns how
 * many there are. */
size_t mllm_tokenizer_eos_ids(const mllm_tokenizer *tok, int32_t *out, size_t cap);
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

/* Encoding options; zero-initialised means mllm_tokenizer_encode()'s
 * behaviour with add_bos = false. */
typedef struct {
	bool add_bos; /* prepend BOS; never a second one (byte-level BPE: not
	               * when the text itself starts with the BOS token) */
	/* Byte-level BPE: text equal to a special added token
	 * (<|eot_id|> ...) becomes that token, as Hugging Face does by
	 * default: right for /v1/completions prompts and /tokenize, wrong
	 * for chat message text (a user could forge a turn boundary). When
	 * false, such text is tokenized as plain text (HF's
	 * split_special_tokens). Non-special added tokens always match.
	 * SentencePiece never matches control text; the flag is ignored. */
	bool parse_special;
	/* The text continues text already encoded (the next turn of a
	 * conversation whose ids are kept): SentencePiece adds no
	 * dummy-prefix space and strips no leading spaces, so encoding the
	 * pieces one after another reproduces the text exactly. Byte-level
	 * BPE has neither rule; the flag changes nothing there. */
	bool continuation;
} mllm_encode_opts;

/* mllm_tokenizer_encode() with options (o may be NULL: all false). */
int mllm_tokenizer_encode_ex(const mllm_tokenizer *tok, const char *text, size_t len,
                             const mllm_encode_opts *o, int32_t *ids, size_t cap,
                             size_t *n_ids) MLLM_WUR;

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
/* Byte-level BPE decodes as Hugging Face's ByteLevel decoder: the pieces'
 * bytes joined, each maximal invalid UTF-8 sequence as one U+FFFD (Rust's
 * from_utf8_lossy). Special tokens render as nothing in
 * mllm_tokenizer_decode() (HF's default skip_special_tokens=True) and as
 * their text with keep_special (skip_special_tokens=False); SentencePiece
 * control tokens always render as nothing. */
int mllm_tokenizer_decode_ex(const mllm_tokenizer *tok, const int32_t *ids, size_t n_ids,
                             bool keep_special, char *out, size_t cap, size_t *n_out) MLLM_WUR;

/* The piece's text as stored (with U+2581 for spaces; byte-level BPE: its
 * raw bytes, which may be part of a character); NULL for a bad id.
 * NUL-terminated; *len (if len != NULL) gets its length. */
const char *mllm_tokenizer_piece(const mllm_tokenizer *tok, int32_t id, size_t *len);

/* Whether id is a control token (<s>, </s>; byte-level BPE: a special added
 * token such as <|eot_id|>). */
bool mllm_tokenizer_is_control(const mllm_tokenizer *tok, int32_t id);
/* Whether text can encode to control tokens (parse_special: byte-level BPE;
 * SentencePiece never matches control text). */
bool mllm_tokenizer_matches_special(const mllm_tokenizer *tok);
/* The raw bytes of token id on its own (what logprobs report as the token):
 * a byte piece is its byte, U+2581 is a space, anything else its text;
 * byte-level BPE: the piece's bytes (possibly part of a character), a special
 * token's text.
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
	int n_text;        /* ids pushed that were not control tokens: the
	                    * first of them drops its dummy-prefix space */
	bool keep_special; /* byte-level BPE: special tokens render as their
	                    * text (set after mllm_detok_init; default off) */
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
