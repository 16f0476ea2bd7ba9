/*
 * base.h — internal plumbing shared by every module (engine, api, server):
 * the one allocation policy (xmalloc & co.), the engine's log macro, the
 * always-on assertion, and a bounded growable byte buffer.
 *
 * Not part of the public engine API, but api/ and server/ may include it:
 * these helpers carry no model state.
 */
#ifndef MLLM_BASE_H
#define MLLM_BASE_H

#include <stdarg.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "mllm_core.h"

/* ---- Assertions: broken invariants only, kept on in release builds. ---- */
#define MLLM_ASSERT(x)                                                                             \
	do {                                                                                       \
		if (!(x))                                                                          \
			mllm__assert_fail(__FILE__, __LINE__, #x);                                 \
	} while (0)
__attribute__((noreturn)) void mllm__assert_fail(const char *file, int line, const char *expr);

/* ---- Allocation (M4). x* never return NULL; on failure the OOM handler
 * runs and does not return. Use them for small internal allocations. ------ */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* n * size with overflow check; aborts through the OOM handler on overflow. */
void *xmallocarray(size_t n, size_t size);

/* Fallible allocation for sizes a client or a file controls: returns NULL on
 * failure (and when failure injection says so), never calls the handler. */
void *mllm_try_malloc(size_t n);
/* mllm_try_malloc on a 64-byte boundary (a cache line: the kernels' vector
 * loads of weights never straddle two); freed with free(). */
void *mllm__try_malloc64(size_t n);

/* pthread_create with a stack of at least MLLM__THREAD_STACK bytes, whatever
 * RLIMIT_STACK made the default: the float kernels keep a 128 KiB column
 * chunk on the stack of the threads that run products (fr16.c). */
#define MLLM__THREAD_STACK ((size_t)4 << 20)
int mllm__thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
void *mllm_try_calloc(size_t n, size_t size);
void *mllm_try_realloc(void *p, size_t n);

/* Failure injection for tests (T3): after `countdown` more successful
 * mllm_try_* calls, every later one fails. countdown < 0 disables. Not
 * thread-safe; tests only. */
void mllm__alloc_fail_after(long countdown);

/* Overflow-safe helpers: return 1 on overflow, else store the result. */
static inline int mllm__mul_overflow(size_t a, size_t b, size_t *out)
{
	return __builtin_mul_overflow(a, b, out);
}
static inline int mllm__add_overflow(size_t a, size_t b, size_t *out)
{
	return __builtin_add_overflow(a, b, out);
}

/* ---- Logging (D7): level is checked before formatting. ----------------- */
extern int mllm__log_level; /* current max level; -1 when no sink */
void mllm__log(mllm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define MLLM_LOG(level, ...)                                                                       \
	do {                                                                                       \
		if ((int)(level) <= mllm__log_level)                                               \
			mllm__log((level), __VA_ARGS__);                                           \
	} while (0)

/* Writes "err" as a sentence into err[errlen] (printf-style), if err != NULL.
 * Returns `code` so callers can `return mllm__seterr(err, n, MLLM_EFORMAT,
 * "%s: bad header", path);`. */
int mllm__seterr(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- Bounded buffer (M5): growable bytes with a hard limit. ------------ */
typedef struct {
	char *data;   /* NUL-terminated when len > 0 or after any append */
	size_t len;   /* bytes used, excluding the NUL */
	size_t cap;   /* bytes allocated */
	size_t limit; /* maximum len; appends past it fail with MLLM_ENOSPACE */
} mllm_buf;

void mllm_buf_init(mllm_buf *b, size_t limit);
void mllm_buf_free(mllm_buf *b);
void mllm_buf_reset(mllm_buf *b); /* len = 0, keeps memory */
int mllm_buf_append(mllm_buf *b, const void *p, size_t n) MLLM_WUR;
int mllm_buf_appendf(mllm_buf *b, const char *fmt, ...) MLLM_WUR
    __attribute__((format(printf, 2, 3)));
/* Hands the data over (caller frees with free()); the buffer is reset. */
char *mllm_buf_take(mllm_buf *b, size_t *len);

/* ---- UTF-8 ------------------------------------------------------------- */
/* Length (1-4) of the well-formed UTF-8 character at s, reading at most n
 * bytes (n >= 1), or 0 if it is not one: overlong forms, surrogates, values
 * past U+10FFFF and truncated sequences are all refused. */
size_t mllm_utf8_len(const unsigned char *s, size_t n);
/* Writes the UTF-8 form of code point cp (<= U+10FFFF, not a surrogate)
 * to o (room for 4 bytes); returns its length (1-4). */
size_t mllm_utf8_put(char *o, uint32_t cp);

/* Decodes n hex digits (either case) at s into *out (n <= 8). 0, or -1 at
 * the first character that is not one. For \u escapes (JSON, Jinja). */
int mllm_hex_decode(const char *s, int n, uint32_t *out);

/* ---- Monotonic clock --------------------------------------------------- */
uint64_t mllm_now_ns(void);

#endif /* MLLM_BASE_H */
