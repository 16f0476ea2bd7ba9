/*
 * cmd_health.c — `mobilellmd health`: asks a running daemon whether it is
 * ready (GET /readyz) and exits 0 (200) or 1 (anything else, or no answer
 * within the timeout). It is the container HEALTHCHECK, so images need no
 * curl: host and port come from the same file/environment/flags as `serve`
 * (MLLMD_PORT set for the daemon is the port checked), a wildcard listen
 * address is reached on loopback, and every wait is bounded by one deadline.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cmds.h"
#include "config.h"

#define HEALTH_TIMEOUT_MS 2000

static void usage(FILE *f)
{
	fprintf(f, "usage: mobilellmd health [--config FILE] [--host ADDR] [--port N]\n"
	           "                         [--path PATH] [--timeout-ms N]\n\n"
	           "Checks a running daemon: GET PATH (default /readyz) on the host and port\n"
	           "that `serve` would use with the same file, MLLMD_* environment and flags.\n"
	           "Exit 0 when it answers 200, 1 otherwise (loading, draining, down or no\n"
	           "answer within --timeout-ms, default 2000), 2 for usage errors.\n");
}

static const char *env_get(const char *name)
{
	return getenv(name);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for `events` on fd until the deadline; 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd p = {.fd = fd, .events = events};
		int rc;
		if (left <= 0)
			return 0;
		rc = poll(&p, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		return rc < 0 ? -1 : rc > 0;
	}
}

/* Connects to the first address that accepts before the deadline. */
static int connect_to(const char *host, const char *port, int64_t deadline, char *err,
                      size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	int fd = -1, rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	snprintf(err, errlen, "no address for %s", host);
	for (ai = res; ai; ai = ai->ai_next) {
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            ai->ai_protocol);
		if (fd < 0)
			continue;
		rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
		if (rc < 0 && errno == EINPROGRESS) {
			rc = wait_fd(fd, POLLOUT, deadline);
			if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
			    soerr == 0)
				break;
			errno = rc == 0 ? ETIMEDOUT : soerr;
		} else if (rc == 0) {
			break;
		}
		snprintf(err, errlen, "connect %s:%s: %s", host, port, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* Sends the request and returns the response's status code, or -1. */
static int get_status(int fd, const char *path, int64_t deadline, char *err, size_t errlen)
{
	char req[512], resp[256];
	size_t off = 0, len;
	int n, status;

	n = snprintf(req, sizeof req,
	             "GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
	if (n < 0 || (size_t)n >= sizeof req) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	len = (size_t)n;
	while (off < len) {
		ssize_t w;
		if (wait_fd(fd, POLLOUT, deadline) != 1)
			goto timeout;
		w = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(err, errlen, "send: %s", strerror(errno));
			return -1;
		}
		if (w > 0)
			off += (size_t)w;
	}
	/* The status line is all we need: "HTTP/1.x NNN ...". */
	off = 0;
	while (off < sizeof resp - 1 && !memchr(resp, '\n', off)) {
		ssize_t r;
		if (wait_fd(fd, POLLIN, deadline) != 1)
			goto timeout;
		r = recv(fd, resp + off, sizeof resp - 1 - off, 0);
		if (r == 0)
			break;
		if (r < 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(err, errlen, "recv: %s", strerror(errno));
			return -1;
		}
		if (r > 0)
			off += (size_t)r;
	}
	resp[off] = '\0';
	if (sscanf(resp, "HTTP/%*d.%*d %d", &status) != 1) {
		snprintf(err, errlen, "not an HTTP response");
		return -1;
	}
	return status;
timeout:
	snprintf(err, errlen, "no answer within the timeout");
	return -1;
}

int srv_cmd_health(int argc, char **argv)
{
	cfg_t cfg;
	char err[512], port[16];
	const char *config_path = NULL, *host_arg = NULL, *port_arg = NULL, *path = "/readyz";
	const char *host;
	long timeout_ms = HEALTH_TIMEOUT_MS;
	int64_t deadline;
	int fd, status, rc = 2;

	for (int i = 1; i < argc; i++) {
		const char **dst = NULL;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--config") == 0)
			dst = &config_path;
		else if (strcmp(argv[i], "--host") == 0)
			dst = &host_arg;
		else if (strcmp(argv[i], "--port") == 0)
			dst = &port_arg;
		else if (strcmp(argv[i], "--path") == 0)
			dst = &path;
		if (dst && i + 1 < argc) {
			*dst = argv[++i];
		} else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
			char *end;
			timeout_ms = strtol(argv[++i], &end, 10);
			if (*end || timeout_ms < 1 || timeout_ms > 600000) {
				fprintf(stderr,
				        "mobilellmd health: --timeout-ms takes 1..600000\n");
				return 2;
			}
		} else if (dst || strcmp(argv[i], "--timeout-ms") == 0) {
			fprintf(stderr, "mobilellmd health: %s needs a value\n\n", argv[i]);
			usage(stderr);
			return 2;
		} else {
			fprintf(stderr, "mobilellmd health: bad option '%s'\n\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (path[0] != '/' || strpbrk(path, " \r\n")) {
		fprintf(stderr, "mobilellmd health: --path must start with '/' and hold no blanks "
		                "or line breaks\n");
		return 2;
	}

	/* The same sources as `serve`, lowest first: defaults, file, env. */
	cfg_init(&cfg);
	err[0] = '\0';
	if ((config_path && cfg_load_file(&cfg, config_path, err, sizeof err) < 0) ||
	    cfg_apply_env(&cfg, env_get, err, sizeof err) < 0 ||
	    (host_arg && cfg_set_as(&cfg, "host", host_arg, "--host", err, sizeof err) < 0) ||
	    (port_arg && cfg_set_as(&cfg, "port", port_arg, "--port", err, sizeof err) < 0)) {
		fprintf(stderr, "mobilellmd health: %s\n", err);
		goto out;
	}
	if (cfg.port == 0) {
		fprintf(stderr, "mobilellmd health: port 0 (any free port) cannot be checked; "
		                "pass --port\n");
		goto out;
	}
	/* A wildcard listen address accepts on loopback too. */
	host = cfg.host;
	if (strcmp(host, "0.0.0.0") == 0)
		host = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		host = "::1";
	snprintf(port, sizeof port, "%lld", (long long)cfg.port);

	rc = 1;
	deadline = now_ms() + timeout_ms;
	fd = connect_to(host, port, deadline, err, sizeof err);
	if (fd < 0) {
		fprintf(stderr, "mobilellmd health: %s\n", err);
		goto out;
	}
	status = get_status(fd, path, deadline, err, sizeof err);
	close(fd);
	if (status < 0) {
		fprintf(stderr, "mobilellmd health: %s%s: %s\n", host, path, err);
		goto out;
	}
	if (status == 200) {
		printf("ready: %s:%s%s answered 200\n", host, port, path);
		rc = 0;
	} else {
		printf("not ready: %s:%s%s answered %d\n", host, port, path, status);
	}
out:
	cfg_free(&cfg);
	return rc;
}
