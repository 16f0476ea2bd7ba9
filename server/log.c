/*
 * log.c — the daemon's logger. Each line: ISO-8601 UTC timestamp with
 * milliseconds, level, optional request id, message. Lines are written with
 * one write(2) under a mutex so threads never interleave within a line.
 */
#include "log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"

int srv__log_level = MLLM_LOG_INFO;
static int log_fd = 2;
static char *log_path;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int srv_log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

static void write_line(int level, const char *reqid, const char *msg)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int k;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	k = snprintf(line + n, sizeof line - n, ".%03ldZ %-5s %s%s%s%s\n", ts.tv_nsec / 1000000L,
	             level >= 0 && level < 4 ? level_names[level] : "?", reqid ? "[" : "",
	             reqid ? reqid : "", reqid ? "] " : "", msg);
	if (k < 0)
		return;
	n += (size_t)k;
	if (n >= sizeof line) { /* truncated: keep the newline */
		n = sizeof line - 1;
		line[n - 1] = '\n';
	}
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
