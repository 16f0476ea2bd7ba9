/*
 * fuzz.h — what every libFuzzer harness under tests/fuzz/ shares: the
 * fixtures root, turning an input into a file path (the loaders take paths,
 * so the bytes go to an anonymous memfd named /proc/self/fd/N: no disk I/O,
 * and mmap works on it), and FUZZ_CHECK for the invariants a harness
 * asserts beyond "no sanitizer report". A harness is one file fuzz_<name>.c
 * defining LLVMFuzzerTestOneInput and, when it needs fixtures, a
 * LLVMFuzzerInitialize; the Makefile finds it by wildcard and builds both the
 * libFuzzer binary and the Check replay runner (replay.c) from it.
 */
#ifndef MLLM_FUZZ_H
#define MLLM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant of the code under test broke: report it and abort, which
 * libFuzzer records as a crash (and the replay runner as a failed test). */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__,      \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* $MLLM_FIXTURES/rel into buf (the default root is the repository's
 * sibling ../shared/fixtures, as for the unit tests). */
static inline const char *fuzz_fixture(char *buf, size_t n, const char *rel)
{
	const char *root = getenv("MLLM_FIXTURES");
	snprintf(buf, n, "%s/%s", root && *root ? root : "../shared/fixtures", rel);
	return buf;
}

/* Loads a fixture the harness cannot run without; a missing one aborts
 * (a fuzz run that silently fuzzes nothing would be worse). */
#define FUZZ_REQUIRE(ok, what)                                                                     \
	do {                                                                                       \
		if (!(ok)) {                                                                       \
			fprintf(stderr, "fuzz: cannot load %s (set MLLM_FIXTURES)\n", (what));     \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* The input as a file: a fresh memfd holding exactly the bytes, named by
 * path (cap >= 32). Returns the fd, which the caller closes, or -1. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t cap)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	size_t off = 0;
	if (fd < 0)
		return -1;
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);
		if (w <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	snprintf(path, cap, "/proc/self/fd/%d", fd);
	return fd;
}

/* Reads the first and the last of n bytes at p, so that a pointer/length
 * pair that leaves its buffer or mapping shows up as an ASan report or a
 * SEGV right here rather than not at all. */
static inline void fuzz_touch(const void *p, size_t n)
{
	const volatile unsigned char *b = p;
	if (n == 0)
		return;
	(void)b[0];
	(void)b[n - 1];
}

/* A small deterministic byte reader over the input, for harnesses that
 * split it into several fields (lengths, choices, then text). */
typedef struct {
	const uint8_t *p;
	size_t n;
} fuzz_in;

static inline unsigned fuzz_byte(fuzz_in *in)
{
	unsigned c;
	if (in->n == 0)
		return 0;
	c = in->p[0];
	in->p++;
	in->n--;
	return c;
}

/* Up to `max` bytes, ending at the next `sep` byte (consumed) or the end. */
static inline size_t fuzz_field(fuzz_in *in, uint8_t sep, size_t max, const uint8_t **out)
{
	size_t k = 0;
	*out = in->p;
	while (k < in->n && k < max && in->p[k] != sep)
		k++;
	in->p += k;
	in->n -= k;
	if (in->n > 0 && in->p[0] == sep) {
		in->p++;
		in->n--;
	}
	return k;
}

#endif
