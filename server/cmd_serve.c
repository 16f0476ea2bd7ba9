/*
 * cmd_serve.c — `mobilellmd serve`: builds the configuration from defaults,
 * the config file, MLLMD_* environment variables and the command line (in
 * that order of precedence, last wins), then either checks or dumps it, or
 * opens the log and runs the daemon (loop.c). This is the only server file
 * that prints to stdout/stderr directly: everything here happens before the
 * daemon listens, and the messages are for the person at the terminal.
 */
#include <dirent.h>
#include <netdb.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmds.h"
#include "config.h"
#include "log.h"
#include "srv.h"

#define DEMO_MODEL "models/mobilellm-demo"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: mobilellmd serve [--config FILE] [--model ID=PATH]... [--host ADDR]\n"
	        "                        [--port N] [--api-key KEY]\n"
	        "                        [--set KEY=VALUE]... [--log-level LEVEL]\n"
	        "                        [--check-config] [--dump-config]\n\n"
	        "  --config FILE     key = value file with [model.<id>] sections\n"
	        "                    (see config/mobilellmd.conf for every key)\n"
	        "  --model ID=PATH   serve the checkpoint at PATH as model ID (repeatable)\n"
	        "  --host ADDR       listen address (default 127.0.0.1)\n"
	        "  --port N          listen port (default 8080; 0 = any free port)\n"
	        "  --api-key KEY     require 'Authorization: Bearer KEY' (repeatable)\n"
	        "  --set KEY=VALUE   any config key, e.g. max_n=4 or model.ID.n_ctx=256\n"
	        "  --log-level L     error, warn, info or debug\n"
	        "  --check-config    validate the configuration and exit\n"
	        "  --dump-config     print the effective configuration and exit\n\n"
	        "Environment: MLLMD_<KEY> for every server key (MLLMD_PORT, MLLMD_API_KEY,\n"
	        "...) and MLLMD_MODELS=id=path[,id=path]. Precedence: file < env < flags.\n"
	        "Try it: mobilellmd serve --model mobilellm-demo=%s\n",
	        DEMO_MODEL);
}

/* Options that take a value; returns it and advances *i, or NULL. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (strcmp(argv[*i], name) == 0) {
		if (*i + 1 >= argc)
			return NULL;
		return argv[++*i];
	}
	if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=')
		return argv[*i] + n + 1;
	return NULL;
}

static bool is_opt(const char *arg, const char *name)
{
	size_t n = strlen(name);
	return strcmp(arg, name) == 0 || (strncmp(arg, name, n) == 0 && arg[n] == '=');
}

static const char *env_get(const char *name)
{
	return getenv(name);
}

/* MLLMD_* variables that configure nothing: a typo (MLLMD_PROT) would
 * otherwise be ignored in silence. Warned about on stderr before the log
 * opens (--check-config) or in the log once it is (serve). */
static void warn_unknown_env(bool to_log)
{
	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
		char hint[96];
		if (!cfg_env_unknown(*e, n, hint, sizeof hint))
			continue;
		if (to_log)
			SRV_LOG(MLLM_LOG_WARN, "unknown environment variable %.*s ignored%s%s%s",
			        (int)n, *e, hint[0] ? " (did you mean " : "", hint,
			        hint[0] ? "?)" : "");
		else
			fprintf(stderr,
			        "mobilellmd serve: WARN: unknown environment variable %.*s "
			        "ignored%s%s%s\n",
			        (int)n, *e, hint[0] ? " (did you mean " : "", hint,
			        hint[0] ? "?)" : "");
	}
}

/* Opens and reads the first byte of one file, following symlinks. */
static int check_file(const char *id, const char *path, char *err, size_t errlen)
{
	struct stat st;
	char byte;
	int fd;

	if (stat(path, &st) != 0) {
		bool dangling = lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
		char cwd[4096];
		/* A relative path is the working directory's: under systemd that
		 * is /, not the config file's folder (said where the path itself
		 * is missing, not for a symlink whose target is). */
		bool rel = !dangling && path[0] != '/' && getcwd(cwd, sizeof cwd);
		return mllm__seterr(err, errlen, MLLM_ENOTFOUND, "model %s: '%s' %s%s%s%s", id,
		                    path,
		                    dangling ? "is a symlink to nothing (a cache snapshot "
		                               "without its blobs?)"
		                             : "does not exist",
		                    rel ? " (relative to the working directory " : "",
		                    rel ? cwd : "", rel ? "; give an absolute path)" : "");
	}
	if (!S_ISREG(st.st_mode))
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (st.st_size > 0 && pread(fd, &byte, 1, 0) != 1)) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return mllm__seterr(err, errlen, MLLM_EIO, "model %s: cannot read '%s': %s", id,
		                    path, strerror(e));
	}
	close(fd);
	return 0;
}

/* Every model file must be there and readable before the daemon starts
 * (the loader would only find out after listening): the path itself and,
 * for a snapshot directory, every file in it, symlinks followed, so that a
 * Hugging Face cache snapshot mounted without its blobs, or weights the
 * service user cannot read, fail here. */
static int check_paths(const cfg_t *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->n_models; i++) {
		const cfg_model *m = &c->models[i];
		struct stat st;
		DIR *d;
		struct dirent *de;
		int rc = check_file(m->id, m->path, err, errlen);
		if (rc < 0)
			return rc;
		if (stat(m->path, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		d = opendir(m->path);
		if (!d)
			return mllm__seterr(err, errlen, MLLM_EIO, "model %s: cannot list '%s': %s",
			                    m->id, m->path, strerror(errno));
		while (rc == 0 && (de = readdir(d)) != NULL) {
			char file[4096];
			if (de->d_name[0] == '.')
				continue;
			if ((size_t)snprintf(file, sizeof file, "%s/%s", m->path, de->d_name) >=
			    sizeof file)
				continue;
			rc = check_file(m->id, file, err, errlen);
		}
		closedir(d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* log_file as serve will open it (append, created if missing): an
 * existing file must open for writing, a new one's directory must let it
 * be created (tried, then removed: nothing is left behind). "-" (stderr)
 * needs nothing. */
static int check_log_file(const cfg_t *c, char *err, size_t errlen)
{
	char dir[4096];
	const char *f = c->log_file, *slash;
	struct stat st;
	if (!f || !f[0] || strcmp(f, "-") == 0)
		return 0;
	if (stat(f, &st) == 0) {
		int fd;
		if (S_ISDIR(st.st_mode))
			return mllm__seterr(err, errlen, MLLM_EINVAL,
			                    "log_file '%s' is a directory", f);
		if (S_ISFIFO(st.st_mode))
			return 0; /* opening it would wait for a reader */
		/* Opened as serve opens it (access() says yes to root
		 * everywhere, /proc and /sys included). */
		fd = open(f, O_WRONLY | O_APPEND | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			return mllm__seterr(err, errlen, MLLM_EIO, "log_file '%s': %s", f,
			                    strerror(errno));
		close(fd);
		return 0;
	}
	if (errno != ENOENT)
		return mllm__seterr(err, errlen, MLLM_EIO, "log_file '%s': %s", f, strerror(errno));
	slash = strrchr(f, '/');
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == f)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - f), f);
	if (access(dir, W_OK | X_OK) != 0)
		return mllm__seterr(err, errlen, MLLM_EIO,
		                    "log_file '%s' cannot be created in '%s': %s", f, dir,
		                    strerror(errno));
	{
		/* Created and removed again: only creating says whether the
		 * directory takes a file (root passes access() in /proc). */
		int fd = open(f, O_WRONLY | O_CREAT | O_EXCL | O_NOCTTY | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			return mllm__seterr(err, errlen, MLLM_EIO,
			                    "log_file '%s' cannot be created in '%s': %s", f, dir,
			                    strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(f);
		}
	}
	return 0;
}

/* Each model as the loader will find it — format, headers, config, every
 * tensor, the tokenizer (mllm_model_check: weights mapped, not read) — and
 * n_ctx within its trained context: what serve would refuse after it
 * listens (exit 1), said here instead. */
static int check_models(const cfg_t *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->n_models; i++) {
		const cfg_model *m = &c->models[i];
		char msg[384];
		mllm_hparams hp;
		bool has_tok = false;
		msg[0] = '\0';
		if (mllm_model_check_ex(m->path, &hp, &has_tok, msg, sizeof msg) < 0)
			return mllm__seterr(err, errlen, MLLM_EINVAL, "model %s: %s", m->id,
			                    msg[0] ? msg : "cannot open the model");
		if (!has_tok)
			return mllm__seterr(err, errlen, MLLM_EINVAL,
			                    "model %s: %s: the checkpoint has no tokenizer; the "
			                    "server needs one",
			                    m->id, m->path);
		mllm_kv_params kp = {.block_size = (int32_t)m->kv_block_size,
		                     .n_blocks = m->kv_blocks,
		                     .max_bytes = (size_t)m->kv_bytes,
		                     .f16 = m->kv_f16,
		                     .q8 = m->kv_q8};
		int64_t nb = 0;
		size_t kv_bytes = 0;
		if (mllm_kv_pool_size(&hp, &kp, &nb, &kv_bytes) < 0)
			return mllm__seterr(err, errlen, MLLM_EINVAL,
			                    "model %s: kv_blocks %lld / kv_bytes %lld give no "
			                    "usable KV pool for this model",
			                    m->id, (long long)m->kv_blocks, (long long)m->kv_bytes);
		long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
		double ram = pages > 0 && page > 0 ? (double)pages * (double)page : 0;
		if (ram > 0 && (double)kv_bytes > ram)
			return mllm__seterr(
			    err, errlen, MLLM_ERANGE,
			    "model %s: the KV pool (%lld blocks, %.1f GiB) is larger than this "
			    "machine's memory (%.1f GiB); lower %s",
			    m->id, (long long)nb, (double)kv_bytes / 1073741824.0,
			    ram / 1073741824.0, m->kv_blocks ? "kv_blocks" : "kv_bytes");
		if (m->n_ctx > hp.n_ctx_train)
			return mllm__seterr(
			    err, errlen, MLLM_EINVAL,
			    "model %s: n_ctx %lld is more than the model's trained "
			    "context (%lld); set n_ctx to at most %lld, or 0 for the "
			    "model's own",
			    m->id, (long long)m->n_ctx, (long long)hp.n_ctx_train,
			    (long long)hp.n_ctx_train);
	}
	return 0;
}

/* The address serve will listen on must resolve (serve: "host ...: ..."). */
static int check_host(const cfg_t *c, char *err, size_t errlen)
{
	struct addrinfo hints, *ai = NULL;
	int rc;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(c->host, "80", &hints, &ai);
	if (rc != 0) {
		if (ai)
			freeaddrinfo(ai);
		return mllm__seterr(err, errlen, MLLM_EINVAL, "host '%s': %s", c->host,
		                    gai_strerror(rc));
	}
	/* An address of another machine resolves but cannot be listened on
	 * (port 0: a running instance holding the port is no error here). */
	rc = ai ? srv__bind_probe(ai->ai_addr, ai->ai_addrlen, false) : 0;
	if (ai)
		freeaddrinfo(ai);
	if (rc == EADDRNOTAVAIL)
		return mllm__seterr(err, errlen, MLLM_EINVAL, "host '%s': %s", c->host,
		                    strerror(rc));
	return 0;
}

static int check_templates(const cfg_t *c, char *err, size_t errlen)
{
	srv s;
	int rc;

	memset(&s, 0, sizeof s);
	s.cfg = c;
	rc = srv__models_init(&s, err, errlen);
	srv__models_free(&s);
	return rc;
}

int srv_cmd_serve(int argc, char **argv)
{
	cfg_t cfg;
	char err[512];
	const char *config_path = NULL, *v;
	bool check = false, dump = false, api_key_set = false;
	int rc = 2;

	cfg_init(&cfg);
	err[0] = '\0';

	/* Pass 1: --help and --config (the file goes under every flag). */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			cfg_free(&cfg);
			return 0;
		}
		if (is_opt(argv[i], "--config")) {
			if (config_path) {
				/* One file: a second would silently replace it. */
				fprintf(stderr, "mobilellmd serve: --config is given twice "
				                "(one file; --set adds to it)\n");
				goto out;
			}
			config_path = opt_value(argc, argv, &i, "--config");
			if (!config_path) {
				fprintf(stderr, "mobilellmd serve: --config needs a FILE\n");
				goto out;
			}
		}
	}
	if (config_path && cfg_load_file(&cfg, config_path, err, sizeof err) < 0)
		goto bad;
	if (cfg_apply_env(&cfg, env_get, err, sizeof err) < 0)
		goto bad;

	/* Pass 2: every other flag, in order. */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (is_opt(a, "--config")) {
			(void)opt_value(argc, argv, &i, "--config");
		} else if (strcmp(a, "--check-config") == 0) {
			check = true;
		} else if (strcmp(a, "--dump-config") == 0) {
			dump = true;
		} else if (is_opt(a, "--model")) {
			v = opt_value(argc, argv, &i, "--model");
			if (!v || cfg_add_model_arg(&cfg, v, err, sizeof err) < 0)
				goto bad_flag;
		} else if (is_opt(a, "--host")) {
			v = opt_value(argc, argv, &i, "--host");
			if (!v || cfg_set_as(&cfg, "host", v, "--host", err, sizeof err) < 0)
				goto bad_flag;
		} else if (is_opt(a, "--port")) {
			v = opt_value(argc, argv, &i, "--port");
			if (!v || cfg_set_as(&cfg, "port", v, "--port", err, sizeof err) < 0)
				goto bad_flag;
		} else if (is_opt(a, "--log-level")) {
			v = opt_value(argc, argv, &i, "--log-level");
			if (!v ||
			    cfg_set_as(&cfg, "log_level", v, "--log-level", err, sizeof err) < 0)
				goto bad_flag;
		} else if (is_opt(a, "--api-key")) {
			/* The first --api-key replaces file/env keys; more add. */
			v = opt_value(argc, argv, &i, "--api-key");
			if (v && strchr(v, ','))
				snprintf(err, sizeof err,
				         "--api-key takes one key (no ','); repeat the option "
				         "for more");
			else if (v && *v && !v[strspn(v, " \t")])
				snprintf(err, sizeof err, "--api-key is blank");
			if (!v || !*v || err[0])
				goto bad_flag;
			if (api_key_set) {
				size_t n = strlen(cfg.api_key) + strlen(v) + 2;
				char *joined = xmalloc(n);
				snprintf(joined, n, "%s,%s", cfg.api_key, v);
				rc = cfg_set_as(&cfg, "api_key", joined, "--api-key", err,
				                sizeof err);
				free(joined);
			} else {
				rc = cfg_set_as(&cfg, "api_key", v, "--api-key", err, sizeof err);
			}
			if (rc < 0)
				goto bad;
			rc = 2;
			api_key_set = true;
		} else if (is_opt(a, "--set")) {
			char *key, *eq;
			v = opt_value(argc, argv, &i, "--set");
			if (!v)
				goto bad_flag;
			if (!strchr(v, '=')) {
				snprintf(err, sizeof err, "--set takes key=value (got '%.200s')",
				         v);
				goto bad;
			}
			key = xstrdup(v);
			eq = strchr(key, '=');
			*eq = '\0';
			rc = cfg_set(&cfg, key, eq + 1, err, sizeof err);
			free(key);
			if (rc < 0)
				goto bad;
			rc = 2;
		} else {
			fprintf(stderr, "mobilellmd serve: unknown option '%s'\n\n", a);
			usage(stderr);
			goto out;
		}
		continue;
	bad_flag:
		if (!err[0])
			snprintf(err, sizeof err, "%s needs a value", a);
		goto bad;
	}

	if (cfg.n_models == 0 && !config_path) {
		fprintf(
		    stderr,
		    "mobilellmd serve: no model to serve and no --config given.\n"
		    "  Pass --model ID=PATH (a Hugging Face snapshot directory or a .gguf file),\n"
		    "  --config FILE with a [model.<id>] section (see config/mobilellmd.conf),\n"
		    "  or set MLLMD_MODELS=id=path.\n"
		    "  To try it with the shipped demo model:\n"
		    "    mobilellmd serve --model mobilellm-demo=%s\n",
		    DEMO_MODEL);
		rc = 2;
		goto out;
	}
	if (cfg_validate(&cfg, err, sizeof err) < 0 || check_templates(&cfg, err, sizeof err) < 0)
		goto bad;
	/* Dumped only once valid: a dump that serve would refuse is no answer. */
	if (dump) {
		mllm_buf b;
		mllm_buf_init(&b, (size_t)1 << 24);
		if (cfg_dump(&cfg, false, &b) != 0) {
			mllm_buf_free(&b);
			fprintf(stderr, "mobilellmd serve: --dump-config: the configuration is "
			                "larger than 16 MiB\n");
			rc = 1;
			goto out;
		}
		fputs(b.data ? b.data : "", stdout);
		mllm_buf_free(&b);
		rc = 0;
		if (!check)
			goto out;
	}
	if (check) {
		warn_unknown_env(false);
		if (check_host(&cfg, err, sizeof err) < 0 ||
		    check_log_file(&cfg, err, sizeof err) < 0 ||
		    check_paths(&cfg, err, sizeof err) < 0 ||
		    check_models(&cfg, err, sizeof err) < 0)
			goto bad;
		printf("configuration ok: %zu model(s), listening on %s:%lld\n", cfg.n_models,
		       cfg.host, (long long)cfg.port);
		rc = 0;
		goto out;
	}
	srv_log_set_format(srv_log_format_parse(cfg.log_format));
	if (srv_log_open((int)cfg.log_level, cfg.log_file) < 0) {
		/* A configuration error, found before listening: exit 2. */
		fprintf(stderr, "mobilellmd serve: cannot open log file '%s': %s\n", cfg.log_file,
		        strerror(errno));
		rc = 2;
		goto out;
	}
	warn_unknown_env(true);
	rc = srv_run(&cfg);
	srv_log_close();
	goto out;

bad:
	fprintf(stderr, "mobilellmd serve: %s\n", err[0] ? err : "invalid configuration");
	rc = 2;
out:
	cfg_free(&cfg);
	return rc;
}
