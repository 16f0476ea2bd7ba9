/*
 * mllm_core.h — the part of the engine's public API that every engine file
 * needs: the error table, the log sink and the OOM handler. mllm.h includes
 * it for server/ and api/; base.h includes it (and nothing else public) so
 * that kernels and loaders compile without the scheduler or the tokenizer in
 * scope. Conventions are stated once, in mllm.h.
 */
#ifndef MLLM_CORE_H
#define MLLM_CORE_H

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

#endif /* MLLM_CORE_H */
