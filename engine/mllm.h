/*
 * mllm.h — the one public header of the MobileLLM engine.
 *
 * The engine loads MobileLLM / Llama checkpoints, tokenizes, runs batched
 * forward passes over a paged KV cache and schedules many requests on one
 * engine thread per model. It knows nothing of HTTP, JSON or event loops: the
 * daemon (server/) and the protocol layer (api/) see only what is declared
 * here. Sections of the API live in per-module headers included below so that
 * each module's contract sits next to its implementation.
 *
 * Conventions (for every function declared through this header):
 * - Fallible functions return int: 0 (MLLM_OK) or a negative MLLM_E* code.
 *   Constructors fill `T **out` and leave it NULL on failure. Where a message
 *   matters (file parsing) they also take `char *err, size_t errlen` and write
 *   a NUL-terminated sentence naming the file and the problem.
 * - `_free` / `_close` accept NULL. Ownership is stated per function; inputs
 *   are borrowed unless the name says `_take`.
 * - Nothing in the engine prints or exits; it logs through mllm_log_set().
 */
#ifndef MLLM_H
#define MLLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MLLM_VERSION "0.1.0"

#if defined(__GNUC__)
#define MLLM_WUR __attribute__((warn_unused_result))
#else
#define MLLM_WUR
#endif

/* ---- Errors ----------------------------------------------------------- */

/* One table for every error the project reports. X(NAME, message). */
#define MLLM_ERRNO_MAP(X)                                                                          \
	X(NOMEM, "out of memory")                                                                  \
	X(INVAL, "invalid argument")                                                               \
	X(IO, "I/O error")                                                                         \
	X(FORMAT, "malformed file")                                                                \
	X(UNSUPPORTED, "unsupported format or feature")                                            \
	X(NOTFOUND, "not found")                                                                   \
	X(RANGE, "value out of range")                                                             \
	X(TOOLONG, "input too long for the model's context")                                       \
	X(NOSPACE, "buffer too small")                                                             \
	X(OVERLOADED, "overloaded: too many queued requests")                                      \
	X(CANCELLED, "cancelled")                                                                  \
	X(SHUTDOWN, "shutting down")                                                               \
	X(INTERNAL, "internal error")

enum {
	MLLM_OK = 0,
	MLLM__EFIRST = -64,
#define MLLM__X(name, msg) MLLM_E##name,
	MLLM_ERRNO_MAP(MLLM__X)
#undef MLLM__X
	    MLLM__ELAST
};

/* Static message for an MLLM_E* code (or "unknown error"). Never NULL. */
const char *mllm_strerror(int err);
/* Symbolic name, e.g. "MLLM_ENOMEM". Never NULL. */
const char *mllm_strerror_name(int err);

/* ---- Logging ---------------------------------------------------------- */

typedef enum {
	MLLM_LOG_ERROR = 0,
	MLLM_LOG_WARN = 1,
	MLLM_LOG_INFO = 2,
	MLLM_LOG_DEBUG = 3,
} mllm_log_level;

/* Receives one formatted line (no trailing newline). May be called from any
 * engine thread; the callee must be thread-safe. */
typedef void (*mllm_log_fn)(void *ud, mllm_log_level level, const char *msg);

/* Installs the process-wide log sink (a deliberate singleton). Messages above
 * max_level are dropped before formatting. fn == NULL silences the engine,
 * which is the default. */
void mllm_log_set(mllm_log_fn fn, void *ud, mllm_log_level max_level);

/* ---- Out of memory ----------------------------------------------------- */

/* Small internal allocations never return NULL: on failure they call this
 * handler, which must not return (default: message to fd 2, then abort()).
 * Request-sized allocations use mllm_try_malloc() and report MLLM_ENOMEM. */
typedef void (*mllm_oom_fn)(size_t size);
void mllm_set_oom_handler(mllm_oom_fn fn);

#ifdef __cplusplus
}
#endif

/* Module APIs. Each header states its own contracts. */
#include "tokenizer.h" /* SentencePiece tokenizer, incremental detokenizer */
#include "model.h"     /* checkpoint loading: HF dir, pytorch .bin, GGUF */
#include "forward.h"   /* paged KV cache and the batched forward pass */
#include "sampler.h"   /* OpenAI sampling semantics, stop strings */
#include "scheduler.h" /* engine thread, continuous batching, requests */

#endif /* MLLM_H */
