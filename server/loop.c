/*
 * loop.c — the daemon's libuv loop: it polls libmicrohttpd's epoll fd and
 * timeout, receives engine and prep-thread wakeups (uv_async), signals and
 * the shutdown timer, all on one thread, so no state here needs a lock.
 * Shutdown follows STYLE D5, after a lame-duck phase: for drain_delay_ms
 * readiness answers 503 and everything is still served (balancers need a
 * check interval or two to notice); then quiesce and close the listening
 * socket, let in-flight requests (generating or being prepared) finish for
 * shutdown_timeout_ms, then end them with an error, join the prep threads,
 * stop MHD, join the engines, close every handle so uv_loop_close()
 * succeeds, exit 0. A second signal _exit()s.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "srv.h"

/* Grace after the timeout's error events, for them to reach the clients. */
#define FLUSH_GRACE_MS 2000

/* systemd readiness (sd_notify protocol): one datagram to $NOTIFY_SOCKET.
 * Written by hand so the daemon needs no libsystemd. */
static void notify_systemd(const srv *s, const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	size_t len;
	int fd;

	if (!s->cfg->sd_notify || !path || !*path)
		return;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path)
		return;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		SRV_LOG(MLLM_LOG_WARN, "sd_notify: %s", strerror(errno));
	close(fd);
}

static void on_closed(uv_handle_t *h)
{
	(void)h; /* handles live in srv, on srv_run()'s stack: nothing to free */
}

static void close_handle(srv *s, uv_handle_t *h)
{
	if (h->loop && !uv_is_closing(h)) {
		h->data = s;
		uv_close(h, on_closed);
	}
}

static void close_all_handles(srv *s)
{
	close_handle(s, (uv_handle_t *)&s->mhd_poll);
	close_handle(s, (uv_handle_t *)&s->mhd_timer);
	close_handle(s, (uv_handle_t *)&s->shutdown_timer);
	close_handle(s, (uv_handle_t *)&s->sig_term);
	close_handle(s, (uv_handle_t *)&s->sig_int);
	close_handle(s, (uv_handle_t *)&s->sig_hup);
	close_handle(s, (uv_handle_t *)&s->wake);
}

/* Everything in flight is done (or forced): stop MHD, then the engines,
 * then the handles; uv_run() returns once the closes complete. */
static void final_stop(srv *s)
{
	if (s->stopped)
		return;
	s->stopped = true;
	if (s->mhd_poll.loop)
		uv_poll_stop(&s->mhd_poll); /* before MHD closes its epoll fd */
	uv_timer_stop(&s->shutdown_timer);
	uv_timer_stop(&s->mhd_timer);
	srv__http_stop(s);   /* joins the prep threads, then stops MHD */
	srv__models_free(s); /* joins the loader and every engine thread */
	close_all_handles(s);
	SRV_LOG(MLLM_LOG_INFO, "stopped");
}

/* The loader has returned (or never ran): final_stop joins it, which must
 * not block the loop (a second signal could not be answered meanwhile). */
static bool loader_done(const srv *s)
{
	return !s->loader_started || s->ready_seen;
}

static void check_done(srv *s)
{
	if (s->stopping && !s->stopped && srv__http_n_in_flight(s) == 0 && loader_done(s))
		final_stop(s);
}

static void on_shutdown_timer(uv_timer_t *t)
{
	srv *s = t->data;

	if (!s->aborted) {
		s->aborted = true;
		SRV_LOG(MLLM_LOG_WARN,
		        "shutdown timeout (%lld ms): cancelling %d in-flight request(s)",
		        (long long)s->cfg->shutdown_timeout_ms, srv__http_n_in_flight(s));
		srv__http_abort_all(s);
		srv__http_run(s);
		uv_timer_start(&s->shutdown_timer, on_shutdown_timer, FLUSH_GRACE_MS, 0);
		check_done(s);
		return;
	}
	if (!loader_done(s)) {
		/* A model is still being opened and cannot be interrupted:
		 * the shutdown bound holds, the process goes without it. */
		SRV_LOG(MLLM_LOG_WARN, "shutdown timeout: a model is still loading; exiting");
		srv__models_detach_loader(s);
		_exit(s->exit_code);
	}
	SRV_LOG(MLLM_LOG_WARN, "closing %d connection(s) that did not finish",
	        srv__http_n_in_flight(s));
	final_stop(s);
}

static void begin_shutdown(srv *s, const char *why)
{
	MHD_socket fd;

	if (s->stopping)
		return;
	if (!s->draining)
		notify_systemd(s, "STOPPING=1");
	s->draining = true;
	s->stopping = true;
	atomic_store(&s->load_abort, true);
	SRV_LOG(MLLM_LOG_INFO, "%s: no longer accepting connections; %d request(s) in flight", why,
	        srv__http_n_in_flight(s));
	if (s->mhd) {
		/* Closed now, not at exit: a connect that arrives from here on
		 * is refused at once (a balancer retries elsewhere) instead of
		 * waiting in the backlog to be reset when the process ends. */
		fd = MHD_quiesce_daemon(s->mhd);
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
	s->shutdown_timer.data = s;
	uv_timer_start(&s->shutdown_timer, on_shutdown_timer, (uint64_t)s->cfg->shutdown_timeout_ms,
	               0);
	check_done(s);
}

static void on_drain_timer(uv_timer_t *t)
{
	begin_shutdown(t->data, "drain delay over");
	srv__http_run(t->data);
}

/* Lame duck: readiness turns 503 while requests, new connections included,
 * are still served, so that balancers and orchestrators take the replica
 * out of rotation before its socket goes away. Skipped when nothing routes
 * here yet (models still loading: readiness was 503 all along). */
static void begin_drain(srv *s, const char *why)
{
	if (s->draining || s->stopping)
		return;
	s->draining = true;
	notify_systemd(s, "STOPPING=1");
	if (s->cfg->drain_delay_ms == 0 || atomic_load(&s->load_state) != 1) {
		begin_shutdown(s, why);
		return;
	}
	SRV_LOG(MLLM_LOG_INFO, "%s: draining for %lld ms (readiness 503, still serving)", why,
	        (long long)s->cfg->drain_delay_ms);
	s->shutdown_timer.data = s;
	uv_timer_start(&s->shutdown_timer, on_drain_timer, (uint64_t)s->cfg->drain_delay_ms, 0);
}

static void on_signal(uv_signal_t *h, int signum)
{
	srv *s = h->data;

	if (signum == SIGHUP) {
		if (srv_log_reopen() < 0)
			SRV_LOG(MLLM_LOG_ERROR, "SIGHUP: cannot reopen the log file");
		else
			SRV_LOG(MLLM_LOG_INFO, "SIGHUP: log reopened");
		return;
	}
	if (++s->n_signals > 1) {
		SRV_LOG(MLLM_LOG_WARN, "second signal: exiting immediately");
		srv__models_detach_loader(s);
		_exit(1);
	}
	begin_drain(s, signum == SIGTERM ? "SIGTERM" : "SIGINT");
	srv__http_run(s);
}

static void on_wake(uv_async_t *h)
{
	srv *s = h->data;
	int st = atomic_load(&s->load_state);

	if (st != 0 && !s->ready_seen) {
		s->ready_seen = true;
		/* The loader stores load_state last, then returns: joining
		 * here waits at most for that return. */
		srv__models_join_loader(s);
		if (st == 2) {
			/* Stopped by the shutdown under way. */
		} else if (st > 0) {
			bool v6 = strchr(s->cfg->host, ':') != NULL;
			SRV_LOG(MLLM_LOG_INFO, "ready: %zu model(s) on http://%s%s%s:%u",
			        s->n_models, v6 ? "[" : "", s->cfg->host, v6 ? "]" : "",
			        (unsigned)s->port);
			notify_systemd(s, "READY=1");
		} else {
			s->exit_code = 1;
			begin_shutdown(s, "model loading failed");
		}
	}
	if (s->stopped)
		return;
	srv__http_prep_drain(s);
	srv__http_pump(s);
	check_done(s);
	srv__http_run(s);
}

static void on_mhd_poll(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	srv__http_run(h->data);
}

int srv_run(const cfg_t *cfg)
{
	uv_loop_t loop;
	srv s;
	char err[512];
	int epfd, rc;

	memset(&s, 0, sizeof s);
	s.cfg = cfg;
	s.listen_fd = MHD_INVALID_SOCKET;
	atomic_init(&s.load_state, 0);
	atomic_init(&s.load_abort, false);
	srv_auth_init(&s.auth, cfg->api_key);
	s.lim = API_LIMITS_DEFAULT;
	s.lim.max_body_bytes = (size_t)cfg->max_body_bytes;
	s.lim.max_tokens = (int32_t)cfg->max_tokens_limit;
	s.lim.max_n = (int32_t)cfg->max_n;
	s.lim.max_prompt_tokens = (int32_t)cfg->max_prompt_tokens;
	if (s.lim.max_choices < s.lim.max_n)
		s.lim.max_choices = s.lim.max_n;
	srv_metrics_init(&s.metrics);
	/* The config's bounds are valid arguments: it cannot fail. */
	rc = srv_resp_store_create(cfg->responses_store_max, cfg->responses_store_bytes,
	                           (uint64_t)cfg->responses_store_ttl_s * 1000000000ULL,
	                           &s.responses);
	MLLM_ASSERT(rc == 0);

	rc = uv_loop_init(&loop);
	if (rc < 0) {
		SRV_LOG(MLLM_LOG_ERROR, "uv_loop_init: %s", uv_strerror(rc));
		srv_resp_store_free(s.responses);
		srv_auth_free(&s.auth);
		return 1;
	}
	s.loop = &loop;
	err[0] = '\0';
	if (srv__models_init(&s, err, sizeof err) < 0)
		goto fail;

	rc = uv_async_init(&loop, &s.wake, on_wake);
	if (rc == 0)
		rc = uv_timer_init(&loop, &s.mhd_timer);
	if (rc == 0)
		rc = uv_timer_init(&loop, &s.shutdown_timer);
	if (rc == 0)
		rc = uv_signal_init(&loop, &s.sig_term);
	if (rc == 0)
		rc = uv_signal_init(&loop, &s.sig_int);
	if (rc == 0)
		rc = uv_signal_init(&loop, &s.sig_hup);
	s.wake.data = s.mhd_timer.data = s.shutdown_timer.data = &s;
	s.sig_term.data = s.sig_int.data = s.sig_hup.data = &s;
	if (rc == 0)
		rc = uv_signal_start(&s.sig_term, on_signal, SIGTERM);
	if (rc == 0)
		rc = uv_signal_start(&s.sig_int, on_signal, SIGINT);
	if (rc == 0)
		rc = uv_signal_start(&s.sig_hup, on_signal, SIGHUP);
	if (rc < 0) {
		snprintf(err, sizeof err, "libuv setup: %s", uv_strerror(rc));
		goto fail;
	}

	/* Prep threads wake the loop through s.wake: start them after it. */
	if (srv__prep_start(&s, err, sizeof err) < 0)
		goto fail;
	if (srv__http_start(&s, err, sizeof err) < 0)
		goto fail;
	epfd = srv__http_epoll_fd(&s);
	if (epfd < 0) {
		snprintf(err, sizeof err, "libmicrohttpd gave no epoll fd");
		goto fail;
	}
	rc = uv_poll_init(&loop, &s.mhd_poll, epfd);
	s.mhd_poll.data = &s;
	if (rc == 0)
		rc = uv_poll_start(&s.mhd_poll, UV_READABLE, on_mhd_poll);
	if (rc < 0) {
		snprintf(err, sizeof err, "polling libmicrohttpd: %s", uv_strerror(rc));
		goto fail;
	}
	SRV_LOG(MLLM_LOG_INFO, "mobilellmd %s listening on http://%s%s%s:%u (%zu model(s) loading)",
	        MLLM_VERSION, strchr(cfg->host, ':') ? "[" : "", cfg->host,
	        strchr(cfg->host, ':') ? "]" : "", (unsigned)s.port, s.n_models);
	/* Tests and wrappers read the bound port from this line (port = 0). */
	if (srv__models_load_async(&s, err, sizeof err) < 0)
		goto fail;
	srv__http_run(&s);
	uv_run(&loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(&loop);
	if (rc < 0)
		SRV_LOG(MLLM_LOG_ERROR, "uv_loop_close: %s", uv_strerror(rc));
	/* The prep threads, its only other users, are joined. */
	srv_resp_store_free(s.responses);
	srv_auth_free(&s.auth);
	return s.exit_code;

fail:
	SRV_LOG(MLLM_LOG_ERROR, "%s", err[0] ? err : "startup failed");
	s.stopping = true;
	final_stop(&s);
	uv_run(&loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(&loop);
	if (rc < 0)
		SRV_LOG(MLLM_LOG_ERROR, "uv_loop_close: %s", uv_strerror(rc));
	/* The prep threads, its only other users, are joined. */
	srv_resp_store_free(s.responses);
	srv_auth_free(&s.auth);
	return 1;
}
