/*
 * log.c — the daemon's logger. Each line: ISO-8601 UTC timestamp with
 * milliseconds, level, optional request id, message; or, with
 * log_format = json, the same fields as one JSON object per line. Lines are
 * written with one write(2) under a mutex so threads never interleave within
 * a line. Messages carry client-controlled text (paths, model names), so
 * every message and request id is escaped before it is written: control
 * bytes, backslash and invalid UTF-8 become \xNN (\\ for backslash), so
 * a client can neither forge a line nor put non-UTF-8 bytes in the log.
 */
#include "log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base.h"

int srv__log_level = MLLM_LOG_INFO;
static int log_fd = 2;
static char *log_path;
static int log_format = SRV_LOG_TEXT;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int srv_log_level_parse(const char *name)
{
	/* Any case, as the configuration takes it. */
	for (int i = 0; i < 4; i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

size_t srv_log_escape(const char *in, size_t n, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0, o = 0;

	if (cap == 0)
		return 0;
	while (i < n) {
		size_t k = mllm_utf8_len(p + i, n - i); /* 0: not valid UTF-8 */
		bool plain = k > 1 || (k == 1 && p[i] >= 0x20 && p[i] != 0x7f && p[i] != '\\');
		if (plain) {
			if (o + k >= cap)
				break; /* never split a character */
			memcpy(out + o, p + i, k);
			o += k;
			i += k;
		} else if (p[i] == '\\') {
			if (o + 2 >= cap)
				break;
			out[o++] = '\\';
			out[o++] = '\\';
			i++;
		} else {
			if (o + 4 >= cap)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[p[i] >> 4];
			out[o++] = hex[p[i] & 15];
			i++;
		}
	}
	out[o] = '\0';
	return o;
}

/* Formats one line into `line` (cap bytes, newline included) from already
 * escaped fields. Returns its length. */
static size_t format_line(char *line, size_t cap, int level, const char *reqid, const char *msg)
{
	const char *lname = level >= 0 && level < 4 ? level_names[level] : "?";
	char ts[40];
	struct timespec now;
	struct tm tm;
	size_t n;
	int k;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000L);
	if (log_format == SRV_LOG_JSON) {
		/* The fields are valid UTF-8 once escaped: jansson takes them. */
		json_t *o = json_object();
		json_object_set_new(o, "ts", json_string(ts));
		json_object_set_new(o, "level", json_string(lname));
		if (reqid)
			json_object_set_new(o, "req", json_string(reqid));
		json_object_set_new(o, "msg", json_string(msg));
		n = json_dumpb(o, line, cap - 1, JSON_COMPACT);
		json_decref(o);
		if (n == 0 || n > cap - 1)
			n = (size_t)snprintf(line, cap - 1,
			                     "{\"ts\":\"%s\",\"level\":\"%s\","
			                     "\"msg\":\"(line too long)\"}",
			                     ts, lname);
		line[n++] = '\n';
		return n;
	}
	k = snprintf(line, cap, "%s %-5s %s%s%s%s\n", ts, lname, reqid ? "[" : "",
	             reqid ? reqid : "", reqid ? "] " : "", msg);
	if (k < 0)
		return 0;
	n = (size_t)k;
	if (n >= cap) { /* truncated: keep the newline */
		n = cap - 1;
		line[n - 1] = '\n';
	}
	return n;
}

static void write_line(int level, const char *reqid, const char *msg)
{
	/* Escaping at most quadruples a byte; the line bound stays fixed
	 * (a truncated message ends on a whole character or escape). */
	char emsg[4096], eid[256], line[6144];
	size_t n;

	srv_log_escape(msg, strlen(msg), emsg, sizeof emsg);
	if (reqid)
		srv_log_escape(reqid, strlen(reqid), eid, sizeof eid);
	n = format_line(line, sizeof line, level, reqid ? eid : NULL, emsg);
	if (n == 0)
		return;
	pthread_mutex_lock(&log_mu);
	ssize_t w = write(log_fd, line, n);
	(void)w;
	pthread_mutex_unlock(&log_mu);
}

void srv__log(int level, const char *reqid, const char *fmt, ...)
{
	char msg[1536];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	write_line(level, reqid, msg);
}

static void engine_sink(void *ud, mllm_log_level level, const char *msg)
{
	(void)ud;
	write_line((int)level, NULL, msg);
}

static int open_file(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

int srv_log_open(int level, const char *path)
{
	srv__log_level = level;
	if (path && *path && strcmp(path, "-") != 0) {
		int fd = open_file(path);
		if (fd < 0)
			return MLLM_EIO;
		pthread_mutex_lock(&log_mu);
		if (log_fd != 2)
			close(log_fd);
		log_fd = fd;
		free(log_path);
		log_path = xstrdup(path);
		pthread_mutex_unlock(&log_mu);
	}
	mllm_log_set(engine_sink, NULL, (mllm_log_level)level);
	return 0;
}

int srv_log_format_parse(const char *name)
{
	if (strcmp(name, "text") == 0)
		return SRV_LOG_TEXT;
	if (strcmp(name, "json") == 0)
		return SRV_LOG_JSON;
	return -1;
}

void srv_log_set_format(int format)
{
	log_format = format == SRV_LOG_JSON ? SRV_LOG_JSON : SRV_LOG_TEXT;
}

int srv_log_reopen(void)
{
	int rc = 0;

	pthread_mutex_lock(&log_mu);
	if (log_path) {
		int fd = open_file(log_path);
		if (fd >= 0) {
			close(log_fd);
			log_fd = fd;
		} else {
			rc = MLLM_EIO;
		}
	}
	pthread_mutex_unlock(&log_mu);
	return rc;
}

void srv_log_close(void)
{
	mllm_log_set(NULL, NULL, MLLM_LOG_ERROR);
	pthread_mutex_lock(&log_mu);
	if (log_fd != 2)
		close(log_fd);
	log_fd = 2;
	free(log_path);
	log_path = NULL;
	pthread_mutex_unlock(&log_mu);
}
