/*
 * fuzz_http.c — the HTTP request path end to end, in process: the real
 * daemon (srv_cmd_serve: libmicrohttpd + libuv + prep threads + engine
 * thread, serving the demo model) runs on a thread of the fuzzer on a free
 * loopback port, and every input is written as raw bytes to a fresh TCP
 * connection, which is then half-closed and read until every response in
 * it is whole (or the daemon closes it, or 500 ms pass quietly). This
 * covers server/http.c's framing, routing, headers, auth, body
 * accumulation, suspend/resume and error rendering, and api/ behind it,
 * with our code instrumented; libmicrohttpd itself is the system library
 * (not instrumented, so its own branches give no coverage). Limits are set
 * small (max_tokens_limit, n_ctx, timeouts) so that a generation the
 * fuzzer asks for costs milliseconds. Checks: the daemon never crashes (a
 * sanitizer report in any of its threads aborts the fuzzer), any answer
 * starts with an HTTP/1.x status line, and after every input a GET /health
 * still gets 200.
 */
#include "fuzz.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include "cmds.h"

static int port;
static pthread_t serve_thread;

static void *serve_main(void *arg)
{
	char port_s[16], model[1100];
	const char *m = getenv("MLLM_FUZZ_MODEL");
	(void)arg;
	snprintf(port_s, sizeof port_s, "%d", port);
	snprintf(model, sizeof model, "demo=%s", m && *m ? m : "models/mobilellm-demo");
	{
		char *argv[] = {"serve",
		                "--model",
		                model,
		                "--host",
		                "127.0.0.1",
		                "--port",
		                port_s,
		                "--log-level",
		                "error",
		                "--set",
		                "log_requests=false",
		                "--set",
		                "sd_notify=false",
		                "--set",
		                "max_tokens_limit=8",
		                "--set",
		                "max_body_bytes=64k",
		                "--set",
		                "connection_timeout_s=2",
		                "--set",
		                "model.demo.n_ctx=256",
		                "--set",
		                "model.demo.kv_bytes=4m",
		                "--set",
		                "model.demo.threads=1",
		                NULL};
		int rc = srv_cmd_serve((int)(sizeof argv / sizeof argv[0]) - 1, argv);
		fprintf(stderr, "fuzz_http: the daemon returned %d\n", rc);
		abort(); /* it must run until the fuzzer exits */
	}
	return NULL;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), p;
	FUZZ_REQUIRE(fd >= 0, "a socket");
	FUZZ_REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0, "a loopback port");
	FUZZ_REQUIRE(getsockname(fd, (struct sockaddr *)&a, &al) == 0, "a loopback port");
	p = ntohs(a.sin_port);
	close(fd);
	return p;
}

static int dial(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {.tv_sec = 2};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return fd;
}

/* Whether buf holds only whole responses (each framed by Content-Length,
 * chunked coding, or a status that has no body). libmicrohttpd keeps a
 * keep-alive connection open after answering, half-closed or not, until
 * its idle timeout: waiting for EOF would cost that timeout per input. */
static bool responses_complete(const char *buf, size_t n)
{
	size_t pos = 0;
	if (n == 0)
		return false;
	while (pos < n) {
		const char *h = buf + pos, *end, *cl, *te;
		int status;
		if (n - pos < 12 || strncmp(h, "HTTP/1.", 7) != 0)
			return false;
		end = memmem(h, n - pos, "\r\n\r\n", 4);
		if (!end)
			return false;
		status = atoi(h + 9);
		cl = memmem(h, (size_t)(end - h), "\r\nContent-Length:", 17);
		if (!cl)
			cl = memmem(h, (size_t)(end - h), "\r\ncontent-length:", 17);
		te = memmem(h, (size_t)(end - h), "chunked", 7);
		pos = (size_t)(end - buf) + 4;
		if (te) {
			for (;;) {
				char *nl;
				long sz;
				if (pos >= n)
					return false;
				sz = strtol(buf + pos, &nl, 16);
				nl = memmem(buf + pos, n - pos, "\r\n", 2);
				if (!nl || sz < 0)
					return false;
				pos = (size_t)(nl - buf) + 2 + (size_t)sz + 2;
				if (sz == 0)
					break;
			}
			if (pos > n)
				return false;
		} else if (cl) {
			pos += (size_t)strtoul(cl + 17, NULL, 10);
			if (pos > n)
				return false;
		} else if (!(status < 200 || status == 204 || status == 304)) {
			return false; /* framed by the close: read to EOF */
		}
	}
	return true;
}

/* Sends req, half-closes, reads the answer into buf (NUL-terminated,
 * truncated to cap - 1) until EOF, or 20 ms of quiet after whole responses,
 * or quiet_ms of quiet otherwise (500 for fuzz inputs): an input that leaves the daemon waiting for
 * more body (a Content-Length longer than what follows) is answered only
 * at its idle timeout, and waiting for that would make every such input
 * cost seconds. A generation here (8 tokens at most) takes milliseconds. */
static long exchange(const void *req, size_t len, char *buf, size_t cap, int quiet_ms)
{
	size_t off = 0, got = 0;
	int fd = dial();
	if (fd < 0)
		return -1;
	while (off < len) {
		ssize_t w = send(fd, (const char *)req + off, len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* the daemon may answer and close before reading it all */
		off += (size_t)w;
	}
	(void)shutdown(fd, SHUT_WR);
	for (;;) {
		char tmp[4096];
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t r;
		int ms = responses_complete(buf, got) ? 20 : quiet_ms;
		if (poll(&pfd, 1, ms) <= 0)
			break;
		r = recv(fd, tmp, sizeof tmp, 0);
		if (r <= 0)
			break;
		if (got < cap - 1) {
			size_t k = (size_t)r < cap - 1 - got ? (size_t)r : cap - 1 - got;
			memcpy(buf + got, tmp, k);
			got += k;
		}
	}
	buf[got] = '\0';
	close(fd);
	return (long)got;
}

/* GET /health answers 200. A loaded machine (ASan, CI running beside
 * us) can take longer than a fuzz input's 500 ms to answer, so this waits
 * up to 2 s per try and tries 3 times: failing means the daemon stayed
 * unresponsive for about as long as libFuzzer's -timeout. */
static bool healthy(void)
{
	static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	char buf[512];
	for (int i = 0; i < 3; i++) {
		long n = exchange(req, sizeof req - 1, buf, sizeof buf, 2000);
		if (n > 12 && strncmp(buf, "HTTP/1.1 200", 12) == 0)
			return true;
	}
	return false;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	port = free_port();
	FUZZ_REQUIRE(pthread_create(&serve_thread, NULL, serve_main, NULL) == 0, "a thread");
	/* Listening comes first, the model loads after: wait for /health. */
	for (int i = 0; i < 600; i++) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		if (healthy())
			return 0;
		nanosleep(&ts, NULL);
	}
	FUZZ_REQUIRE(0, "the daemon (no healthy /health within 30 s)");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[1 << 16];
	long n = exchange(data, size, buf, sizeof buf, 500);
	FUZZ_CHECK(n >= 0);
	if (n > 0)
		FUZZ_CHECK(strncmp(buf, "HTTP/1.", 7) == 0);
	FUZZ_CHECK(healthy());
	return 0;
}
