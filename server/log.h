/*
 * log.h — the daemon's leveled logger: one line per event on stderr (for
 * journald) or a file reopened on SIGHUP. A process singleton, by design.
 * It also installs itself as the engine's log sink.
 */
#ifndef SRV_LOG_H
#define SRV_LOG_H

#include "mllm.h"

/* Level names: "error", "warn", "info", "debug". Returns -1 if unknown. */
int srv_log_level_parse(const char *name);
/* Sets the level and the destination (path NULL or "-" = stderr). Installs
 * the engine callback. Returns 0 or MLLM_EIO if the file cannot be opened. */
int srv_log_open(int level, const char *path);
/* Line formats: SRV_LOG_TEXT ("<ts> <level> [<req>] <msg>", the default)
 * or SRV_LOG_JSON (one {"ts","level","req","msg"} object per line, "req"
 * only when there is one). */
enum { SRV_LOG_TEXT = 0, SRV_LOG_JSON = 1 };
/* "text" or "json"; -1 if unknown. */
int srv_log_format_parse(const char *name);
/* Sets the line format (before the first line, or at any time: each line
 * reads it once). */
void srv_log_set_format(int format);

/* Escapes n bytes of `in` into out (cap bytes, always NUL-terminated when
 * cap > 0) for a log line: valid UTF-8 other than control characters and
 * DEL is copied, backslash becomes \\, every other byte \xNN. Stops
 * before an escape or character that would not fit whole. Returns the
 * length written. Every message goes through it (srv__log). */
size_t srv_log_escape(const char *in, size_t n, char *out, size_t cap);

/* Reopens the log file (SIGHUP; log rotation). No-op for stderr. */
int srv_log_reopen(void);
void srv_log_close(void);

extern int srv__log_level;
void srv__log(int level, const char *reqid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* LOG(level, fmt, ...) checks the level before formatting (D7). */
#define SRV_LOG(level, ...)                                                                        \
	do {                                                                                       \
		if ((int)(level) <= srv__log_level)                                                \
			srv__log((level), NULL, __VA_ARGS__);                                      \
	} while (0)
#define SRV_LOG_REQ(level, reqid, ...)                                                             \
	do {                                                                                       \
		if ((int)(level) <= srv__log_level)                                                \
			srv__log((level), (reqid), __VA_ARGS__);                                   \
	} while (0)

#endif
