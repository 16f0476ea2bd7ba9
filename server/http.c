/*
 * http.c — the libmicrohttpd glue: routing, limits (body size, content type,
 * method, auth, CORS), and the life of a generation request over a suspended
 * connection. MHD runs in external epoll mode on the loop thread (loop.c
 * polls its epoll fd), so every callback here runs on that thread and the
 * per-request state needs no locks. Handlers never parse or tokenize
 * themselves: they hand the body to a prep thread (prep.c) and suspend; the
 * prep wakeup resumes the request, which then submits to the engine and
 * suspends again; engine wakeups drain events into the request's outbox and
 * resume it (STYLE D1-D3).
 *
 * Routing and framing are decided on what the client sent, not on MHD's
 * reading of it: the raw request target (from MHD's URI log callback,
 * before MHD unescapes it) is what routes, so a front proxy's path rules
 * see what we route; conflicting or unsupported body framing is refused
 * before the body is read, and such answers close the connection.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "srv.h"

/* Non-streamed bodies hold every token's logprobs (api.h): bound them far
 * above any sane response but below "a client can exhaust memory". A
 * streaming outbox holds what a slow client has not read yet. */
#define OUT_LIMIT        ((size_t)256 << 20)
#define STREAM_OUT_LIMIT ((size_t)8 << 20)
/* Read bytes are dropped from the outbox's front past this many. */
#define OUTBOX_COMPACT ((size_t)64 << 10)
#define SMALL_LIMIT    ((size_t)16 << 20)
/* Oversized bodies up to this size are read and dropped before the 413. */
#define DISCARD_MAX (256ull << 20)
/* Longest sleep between two MHD rounds. */
#define HOUSEKEEPING_MS 1000
/* MHD's connection limit above max_connections: connections it has closed
 * but not yet freed still count there. */
#define CONN_LIMIT_SLACK 64

enum {
	R_HEALTH,
	R_READYZ,
	R_LIVEZ,
	R_METRICS,
	R_MODELS,
	R_MODEL,
	R_COMPLETIONS,
	R_CHAT,
	R_TOKENIZE,
	R_DETOKENIZE,
	R_RESPONSES,
	R_RESPONSE_COUNT, /* an exact path, before the {id} routes */
	R_RESPONSE_ITEMS, /* before R_RESPONSE: route_find takes the first match */
	R_RESPONSE_CANCEL,
	R_RESPONSE,
};

static const struct {
	const char *path;
	bool prefix;         /* path is a prefix followed by an id */
	const char *method;  /* the method served (plus OPTIONS) */
	const char *method2; /* a second one, or NULL */
	bool auth;           /* needs the API key when keys are configured */
	const char *suffix;  /* prefix routes: what follows the id (which
	                      * then has no '/'), or NULL */
	const char *name;    /* the route as messages name it (prefix routes) */
} routes[] = {
    [R_HEALTH] = {"/health", false, "GET", NULL, false, NULL, NULL},
    [R_READYZ] = {"/readyz", false, "GET", NULL, false, NULL, NULL},
    [R_LIVEZ] = {"/livez", false, "GET", NULL, false, NULL, NULL},
    [R_METRICS] = {"/metrics", false, "GET", NULL, false, NULL, NULL},
    [R_MODELS] = {"/v1/models", false, "GET", NULL, true, NULL, NULL},
    [R_MODEL] = {"/v1/models/", true, "GET", NULL, true, NULL, "/v1/models/{id}"},
    [R_COMPLETIONS] = {"/v1/completions", false, "POST", NULL, true, NULL, NULL},
    [R_CHAT] = {"/v1/chat/completions", false, "POST", NULL, true, NULL, NULL},
    [R_TOKENIZE] = {"/tokenize", false, "POST", NULL, true, NULL, NULL},
    [R_DETOKENIZE] = {"/detokenize", false, "POST", NULL, true, NULL, NULL},
    [R_RESPONSES] = {"/v1/responses", false, "POST", NULL, true, NULL, NULL},
    [R_RESPONSE_COUNT] = {"/v1/responses/input_tokens", false, "POST", NULL, true, NULL, NULL},
    [R_RESPONSE_ITEMS] = {"/v1/responses/", true, "GET", NULL, true, "/input_items",
                          "/v1/responses/{id}/input_items"},
    [R_RESPONSE_CANCEL] = {"/v1/responses/", true, "POST", NULL, true, "/cancel",
                           "/v1/responses/{id}/cancel"},
    [R_RESPONSE] = {"/v1/responses/", true, "GET", "DELETE", true, NULL, "/v1/responses/{id}"},
};
#define N_ROUTES ((int)(sizeof routes / sizeof routes[0]))

/* "GET, HEAD, OPTIONS", "GET, HEAD, DELETE, OPTIONS" or "POST, OPTIONS":
 * the route's Allow header (every GET route answers HEAD too). */
static void route_allow(int route, char *buf, size_t cap)
{
	bool get = strcmp(routes[route].method, "GET") == 0;
	snprintf(buf, cap, "%s%s%s%s, OPTIONS", routes[route].method, get ? ", HEAD" : "",
	         routes[route].method2 ? ", " : "",
	         routes[route].method2 ? routes[route].method2 : "");
}

static bool route_serves(int route, const char *method)
{
	const char *m = routes[route].method, *m2 = routes[route].method2;
	if (strcmp(method, m) == 0 || (m2 && strcmp(method, m2) == 0))
		return true;
	return strcmp(method, "HEAD") == 0 && strcmp(m, "GET") == 0;
}

/* Routes a raw path (no query), len bytes, compared byte for byte: an
 * escaped character never matches its literal (/%6detrics is not /metrics,
 * just as a proxy's path rule would not match it). */
static int route_find(const char *path, size_t len)
{
	for (int i = 0; i < N_ROUTES; i++) {
		size_t n = strlen(routes[i].path);
		const char *sfx = routes[i].suffix;
		if (len < n || memcmp(path, routes[i].path, n) != 0)
			continue;
		if (routes[i].prefix && sfx) {
			size_t sl = strlen(sfx);
			if (len > n + sl && memcmp(path + len - sl, sfx, sl) == 0 &&
			    !memchr(path + n, '/', len - n - sl))
				return i;
		} else if (routes[i].prefix) {
			/* one id segment: /v1/responses/{id}/cancel is no route */
			if (len > n && !memchr(path + n, '/', len - n))
				return i;
		} else if (len == n || (len == n + 1 && path[n] == '/')) {
			return i;
		}
	}
	return -1;
}

/* Finds the path in a raw request target: origin-form "/p?q" or
 * absolute-form "http://host/p?q" (RFC 9112 3.2.2: servers must accept the
 * latter). Sets *path and *len (the path up to '?' or '#'; "/" when an
 * absolute-form target has none). Returns 0, or 400 with e filled for what
 * would route differently once decoded: an encoded '/' in the path (%2F)
 * or an encoded NUL anywhere (%00, which truncates a decoded string). */
static int target_path(const char *target, const char **path, size_t *len, api_error *e)
{
	const char *p = target, *q;

	for (q = target; *q; q++)
		if (q[0] == '%' && q[1] == '0' && q[2] == '0')
			return api_error_set(e, 400, NULL, "invalid_path",
			                     "The request target contains an encoded NUL (%%00)");
	if (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0) {
		p = strstr(p, "//") + 2;
		p += strcspn(p, "/?#");
	}
	*len = strcspn(p, "?#");
	*path = p;
	if (*len == 0) {
		*path = "/";
		*len = 1;
	}
	for (size_t i = 0; i + 2 < *len; i++)
		if (p[i] == '%' && p[i + 1] == '2' && (p[i + 2] == 'f' || p[i + 2] == 'F'))
			return api_error_set(e, 400, NULL, "invalid_path",
			                     "The request path contains an encoded '/' (%%2F)");
	return 0;
}

/* ---- Active-generation list --------------------------------------------- */

static void active_link(srv *s, srv_req *r)
{
	r->prev = NULL;
	r->next = s->active;
	if (s->active)
		s->active->prev = r;
	s->active = r;
}

static void active_unlink(srv *s, srv_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else if (s->active == r)
		s->active = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

/* ---- Preparing list (requests whose job is with the prep threads) ------- */

static void prep_link(srv *s, srv_req *r)
{
	r->prep_prev = NULL;
	r->prep_next = s->preparing;
	if (s->preparing)
		s->preparing->prep_prev = r;
	s->preparing = r;
}

static void prep_unlink(srv *s, srv_req *r)
{
	if (r->prep_prev)
		r->prep_prev->prep_next = r->prep_next;
	else if (s->preparing == r)
		s->preparing = r->prep_next;
	if (r->prep_next)
		r->prep_next->prep_prev = r->prep_prev;
	r->prep_prev = r->prep_next = NULL;
}

/* The request stops waiting for its job (it is going away, or shutdown
 * gave up on it): the job stays with the prep threads, is skipped if not
 * started, and is freed by whoever sees it next with r == NULL (the drain,
 * or srv__prep_stop). */
static void prep_detach(srv_req *r)
{
	srv_job *j = r->job;

	if (!j)
		return;
	j->r = NULL;
	atomic_store(&j->cancelled, true);
	r->job = NULL;
	prep_unlink(r->s, r);
}

static void release_engine_reqs(srv_req *r)
{
	for (int32_t i = 0; i < r->n_ereqs; i++) {
		if (r->ereqs[i])
			mllm_request_release(r->ereqs[i]);
		r->ereqs[i] = NULL;
	}
}

static void cancel_engine_reqs(srv_req *r)
{
	for (int32_t i = 0; i < r->n_ereqs; i++)
		if (r->ereqs[i])
			mllm_request_cancel(r->ereqs[i]);
}

/* ---- Peer hangup watch ----------------------------------------------------
 * A suspended connection is not polled by MHD, so a client that hangs up
 * while its request waits or generates would go unnoticed until the end.
 * libuv watches the socket for EPOLLRDHUP meanwhile; the handle is freed in
 * its close callback because that runs after the request may be gone. */

static void watch_closed(uv_handle_t *h)
{
	free(h);
}

static void watch_stop(srv_req *r)
{
	if (r->watch) {
		r->watch->data = NULL;
		uv_poll_stop(r->watch);
		uv_close((uv_handle_t *)r->watch, watch_closed);
		r->watch = NULL;
	}
}

static void gen_finish(srv_req *r);
static void resume(srv_req *r);

static void on_peer_event(uv_poll_t *h, int status, int events)
{
	srv_req *r = h->data;

	if (!r || (status >= 0 && !(events & UV_DISCONNECT)))
		return;
	watch_stop(r);
	r->peer_gone = true;
	if (r->job) {
		/* Queued for or in preparation: drop it, or stop its
		 * tokenization at the next word. */
		prep_detach(r);
		r->prep_aborted = true;
		r->s->metrics.prep_cancelled++;
	} else if (r->gen_open && !r->finished) {
		cancel_engine_reqs(r);
		r->s->metrics.cancelled++;
		r->cancelled = true;
		gen_finish(r);
	}
	resume(r); /* MHD then sees the closed socket and completes it */
	srv__http_run(r->s);
}

static void watch_start(srv_req *r)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);

	if (!ci || !r->s->loop || r->watch)
		return;
	r->watch = xmalloc(sizeof *r->watch);
	if (uv_poll_init_socket(r->s->loop, r->watch, ci->connect_fd) < 0) {
		free(r->watch);
		r->watch = NULL;
		return;
	}
	r->watch->data = r;
	if (uv_poll_start(r->watch, UV_DISCONNECT, on_peer_event) < 0)
		watch_stop(r);
}

static void req_free(srv_req *r)
{
	if (!r)
		return;
	prep_detach(r);
	srv__job_free(r->prepared);
	watch_stop(r);
	release_engine_reqs(r);
	free(r->ereqs);
	free(r->t_last_ns);
	api_request_free(r->areq);
	mllm_buf_free(&r->body);
	mllm_buf_free(&r->out);
	free(r->origin);
	free(r->target);
	free(r->rpath);
	free(r);
}

/* ---- Responses ------------------------------------------------------------ */

static const char *header(srv_req *r, const char *name);

/* The keep-alive hint: a second under the first of the two closes an
 * unused connection meets (header_timeout_ms in conn.c, MHD's idle
 * connection_timeout_s), in seconds; < 1: none. */
static int64_t keep_alive_s(const cfg_t *c)
{
	int64_t ms = c->header_timeout_ms;
	if (c->connection_timeout_s > 0 && c->connection_timeout_s * 1000 < ms)
		ms = c->connection_timeout_s * 1000;
	return ms / 1000 - 1;
}

/* Whether the request asked to close after its answer (Connection: close). */
static bool asks_close(srv_req *r)
{
	const char *v = header(r, MHD_HTTP_HEADER_CONNECTION);
	return v && strcasestr(v, "close") != NULL;
}

static void add_common_headers(srv_req *r, struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "X-Request-Id", r->id);
	/* What a balancer sticks a conversation to this replica by
	 * (deploy/haproxy/haproxy.cfg): the key its response ids carry. */
	if (r->areq && api_request_kind(r->areq) == API_RESPONSES)
		MHD_add_response_header(resp, "X-Response-Affinity", api_request_affinity(r->areq));
	/* Draining: keep-alive clients reconnect (through their balancer)
	 * rather than reuse a connection to a replica that is going away. */
	if (r->s->draining)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	/* How long an unused connection is kept (keep_alive_s), so that
	 * clients that honour the hint (Node's agents, undici) let it go
	 * first, rather than send a request into a socket being closed. */
	else if (!r->must_close && !r->http10 && !asks_close(r)) {
		int64_t ka_s = keep_alive_s(r->s->cfg);
		char ka[32];
		snprintf(ka, sizeof ka, "timeout=%lld", (long long)ka_s);
		if (ka_s >= 1)
			MHD_add_response_header(resp, "Keep-Alive", ka);
	}
	/* With CORS on, every answer depends on Origin (the allowed ones
	 * get the headers, others not): a shared cache must key on it. */
	if (r->s->cfg->cors_origins && r->s->cfg->cors_origins[0])
		MHD_add_response_header(resp, "Vary", "Origin");
	if (r->cors_ok) {
		MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin);
		MHD_add_response_header(resp, "Access-Control-Expose-Headers",
		                        "X-Request-Id, Retry-After");
	}
}

/* Queues `data` (malloc'd, taken) with the status. */
static enum MHD_Result reply_take(srv_req *r, int status, const char *ctype, char *data, size_t len,
                                  int retry_after_s)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char num[24];

	if (!data) {
		data = xstrdup("");
		len = 0;
	}
	resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(data);
		return MHD_NO;
	}
	if (ctype)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	add_common_headers(r, resp);
	if (retry_after_s > 0 || status == 429 || status == 503) {
		snprintf(num, sizeof num, "%d",
		         retry_after_s > 0 ? retry_after_s : (int)r->s->cfg->retry_after_s);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
	}
	/* RFC 9110 15.5.16: a 415 says which content codings would be
	 * accepted (none but identity; the media type is in the message). */
	if (status == 415)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_ENCODING, "identity");
	/* RFC 9110 11.6.1: a 401 says which scheme would be accepted. */
	if (status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (status == 405 && r->route >= 0) {
		char allow[48];
		route_allow(r->route, allow, sizeof allow);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	}
	if (r->must_close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(r->conn, (unsigned int)status, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES) {
		r->status = status;
		srv__conn_phase(r->s, r->sc, SRV_CONN_BUSY);
	}
	return ret;
}

static enum MHD_Result reply_buf(srv_req *r, int status, const char *ctype, mllm_buf *b,
                                 int retry_after_s)
{
	size_t len;
	char *data = mllm_buf_take(b, &len);
	return reply_take(r, status, ctype, data, len, retry_after_s);
}

static enum MHD_Result reply_text(srv_req *r, int status, const char *ctype, const char *text)
{
	return reply_take(r, status, ctype, xstrdup(text), strlen(text), 0);
}

static enum MHD_Result reply_error(srv_req *r, const api_error *e)
{
	mllm_buf b;

	mllm_buf_init(&b, 1 << 16);
	if (api_error_render(e, &b) < 0) {
		mllm_buf_free(&b);
		return reply_text(r, 500, "application/json",
		                  "{\"error\":{\"message\":\"internal error\",\"type\":"
		                  "\"server_error\",\"param\":null,\"code\":null}}");
	}
	return reply_buf(r, e->status, "application/json", &b, e->retry_after_s);
}

static enum MHD_Result reply_status(srv_req *r, int status, const char *param, const char *code,
                                    const char *msg)
{
	api_error e;
	api_error_set(&e, status, param, code, "%s", msg);
	return reply_error(r, &e);
}

/* ---- Request classification (first call: headers only) ------------------ */

static const char *header(srv_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static bool json_content_type(const char *ct)
{
	size_t n = strlen("application/json");
	if (!ct)
		return false;
	/* RFC 9110: optional whitespace (spaces and tabs) around it, then
	 * nothing or ";" and parameters (charset=utf-8, ...). */
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, "application/json", n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* Every Content-Length and Transfer-Encoding header of the request (MHD's
 * lookup only returns the first of each). */
typedef struct {
	int n_cl, n_te, n_host;
	const char *cl, *te;
	bool cl_conflict, cl_bad, name_bad;
} framing;

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
	framing *f = cls;

	(void)kind;
	if (!key || !value)
		return MHD_YES;
	/* "Content-Length : 5" is a field named "Content-Length " to MHD,
	 * so it would frame nothing and the body would be read as the next
	 * request (RFC 9112 5.1: whitespace before the colon is a 400). */
	if (key[0] == '\0' || strpbrk(key, " \t"))
		f->name_bad = true;
	if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
		f->n_host++;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		if (f->n_cl > 0 && strcmp(f->cl, value) != 0)
			f->cl_conflict = true;
		if (value[0] == '\0' || strspn(value, "0123456789") != strlen(value))
			f->cl_bad = true;
		f->cl = value;
		f->n_cl++;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		f->te = value;
		f->n_te++;
	}
	return MHD_YES;
}

/* Whether a header field's value is tok (any case, blanks around it). */
static bool field_is(const char *v, const char *tok)
{
	size_t n, k = strlen(tok);
	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	return n == k && strncasecmp(v, tok, k) == 0;
}

/* RFC 9112 6.1-6.3: a body is framed by one Content-Length or by chunked
 * transfer coding, nothing else. Two differing lengths, or a length next to
 * a coding, are how requests get smuggled past a proxy that reads them
 * differently (400); a coding other than chunked cannot be framed (501).
 * Either answer closes the connection: its remaining bytes mean nothing.
 * Returns the status, 0 when the framing is sound. */
static int check_framing(srv_req *r, const char *version, api_error *e)
{
	framing f = {0};

	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, framing_header, &f);
	if (f.name_bad)
		return api_error_set(e, 400, NULL, "invalid_header",
		                     "A header field name is empty or has whitespace before its "
		                     "colon");
	/* RFC 9112 3.2: an HTTP/1.1 request has exactly one Host. */
	if (f.n_host > 1 || (f.n_host == 0 && version && strcmp(version, "HTTP/1.1") == 0))
		return api_error_set(e, 400, NULL, "invalid_header",
		                     f.n_host
		                         ? "More than one Host header"
		                         : "A request without a Host header (one is required)");
	if (f.cl_conflict || f.cl_bad)
		return api_error_set(e, 400, NULL, "invalid_content_length",
		                     "%s Content-Length header",
		                     f.cl_conflict ? "Conflicting values in the" : "Invalid");
	if (f.n_te == 0)
		return 0;
	if (f.n_te > 1 || !field_is(f.te, "chunked"))
		return api_error_set(e, 501, NULL, "unsupported_transfer_encoding",
		                     "Transfer-Encoding '%.100s' is not supported; only 'chunked' "
		                     "is",
		                     f.te);
	if (f.n_cl > 0)
		return api_error_set(e, 400, NULL, "invalid_content_length",
		                     "Content-Length and Transfer-Encoding must not both be sent");
	if (r->sc)
		r->sc->chunked = true;
	return 0;
}

static bool identity_coding(const char *v);

/* MHD_KeyValueIterator over the headers: *cls gets the first
 * Content-Encoding field that is not identity (every field counts, not
 * only the first). */
static enum MHD_Result coding_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
	const char **bad = cls;
	(void)kind;
	if (key && strcasecmp(key, MHD_HTTP_HEADER_CONTENT_ENCODING) == 0 &&
	    !identity_coding(value ? value : "")) {
		*bad = value ? value : "";
		return MHD_NO;
	}
	return MHD_YES;
}

/* "identity" (any case, blanks around), the only coding bodies may have. */
static bool identity_coding(const char *v)
{
	return field_is(v, "identity");
}

/* Decides what can be decided from the headers. Sets r->early_status when the
 * request is refused; 413 by Content-Length and framing errors are answered
 * before the body. */
static void classify(srv_req *r, const char *method, const char *version)
{
	srv *s = r->s;
	api_error *e = &r->early_err;
	const char *v, *path = "/";
	size_t plen = 1;
	int st;

	st = check_framing(r, version, e);
	if (st) {
		r->early_status = st;
		r->answer_now = true;
		r->must_close = true;
		return;
	}
	st = target_path(r->target, &path, &plen, e);
	if (st) {
		r->early_status = st;
		return;
	}
	r->rpath = xstrndup(path, plen);
	snprintf(r->path, sizeof r->path, "%s", r->rpath);
	r->route = route_find(path, plen);
	v = header(r, "Origin");
	if (v && srv_cors_allowed(s->cfg->cors_origins, v)) {
		r->cors_ok = true;
		r->origin = xstrdup(v);
	}
	/* OpenAI's POST /v1/responses/compact (the SDKs' responses.compact())
	 * is not served here: not "POST is not allowed on /v1/responses/{id}" */
	if (r->route == R_RESPONSE && strcmp(r->rpath, "/v1/responses/compact") == 0 &&
	    strcmp(method, "OPTIONS") != 0 && !route_serves(r->route, method)) {
		r->early_status =
		    api_error_set(e, 404, NULL, "not_found",
		                  "Unknown route: %s /v1/responses/compact (compacting "
		                  "a conversation is not supported by this server)",
		                  method);
		return;
	}
	if (r->route < 0) {
		r->early_status = api_error_set(e, 404, NULL, "not_found",
		                                "Unknown route: %s %.200s", method, r->rpath);
		return;
	}
	if (strcmp(method, "OPTIONS") == 0)
		return; /* preflight: answered without auth */
	if (!route_serves(r->route, method)) {
		char allow[48];
		route_allow(r->route, allow, sizeof allow);
		r->early_status = api_error_set(
		    e, 405, NULL, "method_not_allowed", "Method %s is not allowed on %s; use %s",
		    method, routes[r->route].name ? routes[r->route].name : routes[r->route].path,
		    allow);
		return;
	}
	if ((routes[r->route].auth || (r->route == R_METRICS && s->cfg->metrics_auth)) &&
	    !srv_auth_check(&s->auth, header(r, "Authorization"))) {
		r->early_status =
		    api_error_set(e, 401, NULL, "invalid_api_key",
		                  header(r, "Authorization")
		                      ? "Incorrect API key provided"
		                      : "Missing API key: send 'Authorization: Bearer <key>'");
		return;
	}
	/* POST .../cancel reads no body: the SDKs send none, nor a type. */
	if (strcmp(routes[r->route].method, "POST") == 0 && r->route != R_RESPONSE_CANCEL) {
		v = header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (v) {
			char *end;
			unsigned long long n = strtoull(v, &end, 10);
			if (end != v && n > (unsigned long long)s->cfg->max_body_bytes) {
				const char *expect = header(r, "Expect");
				r->early_status = api_error_set(
				    e, 413, NULL, "request_too_large",
				    "Request body of %llu bytes exceeds the limit of %lld bytes", n,
				    (long long)s->cfg->max_body_bytes);
				/* A client waiting for 100-continue, or one announcing
				 * an absurd size, is answered at once; others are
				 * answered after their body is read and dropped, so
				 * a client that writes before reading sees the 413
				 * instead of a broken pipe. */
				r->answer_now =
				    (expect && strcasecmp(expect, "100-continue") == 0) ||
				    n > DISCARD_MAX;
				/* the body stays unread: the connection ends (and
				 * says so, with no Keep-Alive hint) */
				r->must_close = r->answer_now;
				return;
			}
		}
		v = header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
		if (!json_content_type(v)) {
			r->early_status =
			    api_error_set(e, 415, NULL, "unsupported_media_type",
			                  "Content-Type must be application/json, not '%.100s'",
			                  v ? v : "(none)");
			return;
		}
		/* Bodies are read as sent: a compressed one would be parsed as
		 * (broken) JSON, and one labelled compressed but not would be
		 * taken on trust. RFC 9110 15.5.16: 415 for a content coding
		 * the server does not do. */
		v = NULL;
		MHD_get_connection_values(r->conn, MHD_HEADER_KIND, coding_header, &v);
		if (v) {
			r->early_status =
			    api_error_set(e, 415, NULL, "unsupported_content_encoding",
			                  "Content-Encoding '%.100s' is not supported: send the "
			                  "JSON uncompressed",
			                  v);
			return;
		}
	}
}

/* ---- Simple endpoints ----------------------------------------------------- */

static int load_state(srv *s)
{
	return atomic_load(&s->load_state);
}

/* Readiness (/readyz, and /health as its alias): may traffic come here?
 * Not while loading, nor once a signal started the drain. */
static enum MHD_Result do_health(srv_req *r)
{
	srv *s = r->s;
	int st = load_state(s);

	if (s->draining)
		return reply_text(r, 503, "application/json", "{\"status\":\"shutting_down\"}");
	if (st == 1)
		return reply_text(r, 200, "application/json", "{\"status\":\"ok\"}");
	return reply_text(r, 503, "application/json",
	                  st < 0 ? "{\"status\":\"failed\"}" : "{\"status\":\"loading\"}");
}

static enum MHD_Result do_metrics(srv_req *r)
{
	srv *s = r->s;
	srv_model_stats *ms = xcalloc(s->n_models ? s->n_models : 1, sizeof *ms);
	mllm_buf b;
	int rc;

	for (size_t i = 0; i < s->n_models; i++) {
		ms[i].id = s->models[i].cfg->id;
		ms[i].loaded = atomic_load(&s->models[i].loaded);
		ms[i].h = &s->models[i].hist;
		if (ms[i].loaded)
			mllm_engine_stats_get(s->models[i].engine, &ms[i].st);
	}
	s->metrics.prep_open = s->n_prep_open;
	{
		srv_resp_store_stats rs;
		srv_resp_store_stats_get(s->responses, &rs);
		s->metrics.responses_stored = rs.count;
		s->metrics.responses_bytes = rs.bytes;
		s->metrics.responses_evicted = rs.evicted;
	}
	mllm_buf_init(&b, SMALL_LIMIT);
	rc = srv_metrics_render(&s->metrics, ms, s->n_models, &b);
	free(ms);
	if (rc < 0) {
		mllm_buf_free(&b);
		return reply_status(r, 500, NULL, "internal_error", "metrics render failed");
	}
	return reply_buf(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b, 0);
}

static const api_model_info *lookup_model(void *ud, const char *id)
{
	srv_model *m = srv__model_find(ud, id);
	return m && atomic_load(&m->loaded) ? &m->info : NULL;
}

static enum MHD_Result not_ready(srv_req *r);

static enum MHD_Result do_models(srv_req *r)
{
	srv *s = r->s;
	const api_model_info **list;
	mllm_buf b;
	int n = 0, rc;

	mllm_buf_init(&b, SMALL_LIMIT);
	if (r->route == R_MODEL) {
		/* The id is percent-decoded (demo%3Av1 is demo:v1, as any
		 * client's URL encoder writes it); routing was on the raw path. */
		const char *raw = r->rpath + strlen(routes[R_MODEL].path);
		char idb[512];
		const char *id =
		    api_url_decode(raw, strlen(raw), false, idb, sizeof idb) < 0 ? raw : idb;
		const api_model_info *mi = lookup_model(s, id);
		api_error e;
		if (!mi && srv__model_find(s, id)) {
			/* Configured, still loading: retry, as generation says. */
			mllm_buf_free(&b);
			return not_ready(r);
		}
		if (!mi) {
			mllm_buf_free(&b);
			api_error_model_not_found(&e, id);
			return reply_error(r, &e);
		}
		rc = api_render_model(mi, &b);
	} else {
		list = xcalloc(s->n_models ? s->n_models : 1, sizeof *list);
		for (size_t i = 0; i < s->n_models; i++)
			if (atomic_load(&s->models[i].loaded))
				list[n++] = &s->models[i].info;
		rc = api_render_models(list, n, &b);
		free(list);
	}
	if (rc < 0) {
		mllm_buf_free(&b);
		return reply_status(r, 500, NULL, "internal_error", "render failed");
	}
	return reply_buf(r, 200, "application/json", &b, 0);
}

static enum MHD_Result not_ready(srv_req *r)
{
	if (r->s->stopping)
		return reply_status(r, 503, NULL, "shutting_down", "The server is shutting down");
	return reply_status(r, 503, NULL, "loading", "The model is still loading; retry shortly");
}

/* ---- Preparation off the loop ---------------------------------------------
 * Parsing, chat templates and tokenization cost time proportional to the
 * body (tens of ms for 1 MiB), so the body goes to a prep thread in a job
 * and the connection is suspended until srv__http_prep_drain() resumes it;
 * the next access callback (prep_reply) then finishes on the loop. The
 * request stays counted in n_prep_open until it is answered, so a shutdown
 * waits for it as it waits for generations. */

static enum MHD_Result prep_submit(srv_req *r, srv_job_kind kind, api_kind akind)
{
	srv *s = r->s;
	srv_job *j = xcalloc(1, sizeof *j);
	api_error e;
	int rc;

	j->kind = kind;
	j->akind = akind;
	j->s = s;
	atomic_init(&j->cancelled, false);
	j->body = r->body; /* moved: the job owns the body now */
	mllm_buf_init(&r->body, 0);
	j->r = r;
	rc = srv__prep_submit(s, j);
	if (rc < 0) {
		srv__job_free(j);
		api_error_from_mllm(&e, rc);
		if (e.retry_after_s <= 0 && (e.status == 429 || e.status == 503))
			e.retry_after_s = (int)s->cfg->retry_after_s;
		return reply_error(r, &e);
	}
	r->job = j;
	r->prep_open = true;
	s->n_prep_open++;
	prep_link(s, r);
	MHD_suspend_connection(r->conn);
	r->suspended = true;
	/* A hang-up from now on cancels the job (on_peer_event): an
	 * abandoned 1 MiB body must not hold a prep thread. */
	watch_start(r);
	return MHD_YES;
}

static enum MHD_Result do_tokenize(srv_req *r)
{
	if (r->route == R_RESPONSE_COUNT)
		return load_state(r->s) < 0 ? not_ready(r)
		                            : prep_submit(r, SRV_JOB_INPUT_TOKENS, API_RESPONSES);
	/* Per model, as generations: the job says 503 for one still loading. */
	if (load_state(r->s) < 0)
		return not_ready(r);
	return prep_submit(r, r->route == R_TOKENIZE ? SRV_JOB_TOKENIZE : SRV_JOB_DETOKENIZE,
	                   API_COMPLETION);
}

/* A /tokenize, /detokenize or /v1/responses/input_tokens job came back. */
static enum MHD_Result tokenize_reply(srv_req *r, srv_job *j)
{
	if (j->status == 200)
		return reply_buf(r, 200, "application/json", &j->out, 0);
	if (j->status < 0)
		return reply_status(r, 500, NULL, "internal_error", "response too large");
	return reply_error(r, &j->err);
}

/* ---- The Responses store ---------------------------------------------------
 * POST /v1/responses keeps its response once it ended well (resp_keep);
 * GET and DELETE read the store on the loop (a lookup under its mutex). */

static void resp_keep(srv_req *r)
{
	api_resp_record *rec = NULL;

	if (api_request_kind(r->areq) != API_RESPONSES || !api_request_store(r->areq))
		return;
	if (api_request_record(r->areq, &rec) != 0 || !rec)
		return;
	/* With responses_store_max = 0 the store is off: nothing to say. */
	if (srv_resp_store_put(r->s->responses, rec, mllm_now_ns()) != 0 &&
	    r->s->cfg->responses_store_max > 0)
		SRV_LOG_REQ(MLLM_LOG_WARN, r->id,
		            "response not stored: larger than responses_store_bytes");
}

/* GET/DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items (the
 * route table refused every other method). */
static enum MHD_Result do_response(srv_req *r, const char *method)
{
	const char *rest = r->rpath + strlen(routes[R_RESPONSE].path);
	const char *slash = strchr(rest, '/');
	const char *query = strchr(r->target, '?');
	size_t idlen = slash ? (size_t)(slash - rest) : strlen(rest);
	bool items = r->route == R_RESPONSE_ITEMS, cancel = r->route == R_RESPONSE_CANCEL;
	api_resp_record *rec;
	api_error e;
	mllm_buf b;
	char id[128];
	int rc;

	if ((slash && !items && !cancel) || idlen == 0 || idlen >= sizeof id)
		return reply_status(r, 404, NULL, "not_found", "Unknown route");
	if (api_url_decode(rest, idlen, false, id, sizeof id) < 0)
		snprintf(id, sizeof id, "%.*s", (int)idlen, rest);
	if (strcmp(method, "DELETE") == 0) {
		if (!srv_resp_store_delete(r->s->responses, id, mllm_now_ns())) {
			api_error_response_not_found(&e, "response_id", id);
			return reply_error(r, &e);
		}
		mllm_buf_init(&b, SMALL_LIMIT);
		if (api_resp_render_deleted(id, &b) < 0) {
			mllm_buf_free(&b);
			return reply_status(r, 500, NULL, "internal_error", "render failed");
		}
		return reply_buf(r, 200, "application/json", &b, 0);
	}
	/* Only a background response can be cancelled, and this server runs
	 * none (background: true is a 400): a stored one has already ended. */
	if (cancel) {
		rec = srv_resp_store_get(r->s->responses, id, mllm_now_ns());
		if (!rec) {
			api_error_response_not_found(&e, "response_id", id);
			return reply_error(r, &e);
		}
		api_resp_record_unref(rec);
		return reply_status(r, 400, NULL, "invalid_request",
		                    "Only background responses can be cancelled; this response "
		                    "has already ended (this server runs no background "
		                    "responses)");
	}
	if (!items && api_resp_retrieve_query(query ? query + 1 : NULL, &e) != 0)
		return reply_error(r, &e);
	rec = srv_resp_store_get(r->s->responses, id, mllm_now_ns());
	if (!rec) {
		api_error_response_not_found(&e, "response_id", id);
		return reply_error(r, &e);
	}
	mllm_buf_init(&b, OUT_LIMIT);
	if (items)
		rc = api_resp_record_render_items(rec, query ? query + 1 : NULL, &b, &e);
	else
		rc = api_resp_record_render(rec, &b) < 0 ? -1 : 200;
	api_resp_record_unref(rec);
	if (rc != 200) {
		mllm_buf_free(&b);
		if (rc > 0)
			return reply_error(r, &e);
		return reply_status(r, 500, NULL, "internal_error", "render failed");
	}
	return reply_buf(r, 200, "application/json", &b, 0);
}

/* ---- Generation ------------------------------------------------------------ */

static enum MHD_Result stream_start(srv_req *r);

static enum MHD_Result gen_start(srv_req *r)
{
	srv *s = r->s;

	/* While models load, a request naming one already loaded is served
	 * (the prep thread answers 503 loading for one that is not yet). */
	if (load_state(s) < 0 || s->stopping)
		return not_ready(r);
	return prep_submit(r, SRV_JOB_GENERATE,
	                   r->route == R_CHAT        ? API_CHAT
	                   : r->route == R_RESPONSES ? API_RESPONSES
	                                             : API_COMPLETION);
}

/* The generation's job came back from the prep thread (parse, model lookup,
 * prepare): submit to the engine, or answer the error it found. */
static enum MHD_Result gen_submit(srv_req *r, srv_job *j)
{
	srv *s = r->s;
	const char *session;
	char pin[32];
	api_error e;
	srv_model *m;
	int rc;
	int32_t n;

	/* A shutdown began while it was being prepared: the answer a
	 * request arriving now gets. */
	if (s->stopping)
		return not_ready(r);
	if (j->areq) {
		r->areq = j->areq; /* taken */
		j->areq = NULL;
		snprintf(r->id, sizeof r->id, "%s", api_request_id(r->areq));
	}
	r->m = j->m;
	if (j->status != 0)
		return reply_error(r, &j->err);
	m = r->m;

	n = api_request_n_submits(r->areq);
	MLLM_ASSERT(n > 0);
	r->ereqs = xcalloc((size_t)n, sizeof *r->ereqs);
	session = header(r, "X-Session-Id");
	if (session && (session[0] == '\0' || strlen(session) > 256))
		session = NULL; /* not worth pinning; never an error */
	/* A stored Responses conversation is a session of its own: its
	 * latest turn's KV blocks stay pinned (session_ttl_ms) for the next
	 * one. A response that is not stored can never be continued
	 * (previous_response_id finds nothing), so it pins nothing. */
	if (!session && api_request_kind(r->areq) == API_RESPONSES && api_request_store(r->areq)) {
		snprintf(pin, sizeof pin, "resp:%s", api_request_affinity(r->areq));
		session = pin;
	}
	for (int32_t i = 0; i < n; i++) {
		mllm_submit sub;
		api_request_submit(r->areq, i, &sub);
		sub.session_id = session;
		sub.user = r;
		r->n_choices = sub.n_choices;
		rc = mllm_engine_submit(m->engine, &sub, &r->ereqs[i]);
		r->n_ereqs = i + 1;
		if (rc < 0) {
			r->ereqs[i] = NULL;
			release_engine_reqs(r);
			api_error_from_mllm(&e, rc);
			if (e.retry_after_s <= 0 && (e.status == 429 || e.status == 503))
				e.retry_after_s = (int)s->cfg->retry_after_s;
			return reply_error(r, &e);
		}
	}
	r->t_last_ns = xcalloc((size_t)n * (size_t)(r->n_choices > 0 ? r->n_choices : 1),
	                       sizeof *r->t_last_ns);
	r->streaming = api_request_stream(r->areq);
	/* A streaming outbox only holds what the client has not read yet: a
	 * client that stops reading is cut off at this bound. */
	mllm_buf_init(&r->out, r->streaming ? STREAM_OUT_LIMIT : OUT_LIMIT);
	rc = api_request_begin(r->areq, &r->out);
	if (rc < 0) {
		release_engine_reqs(r);
		return reply_status(r, 500, NULL, "internal_error", "response render failed");
	}
	active_link(s, r);
	r->gen_open = true;
	s->n_gen_open++;
	watch_start(r);
	if (r->streaming)
		return stream_start(r);
	MHD_suspend_connection(r->conn);
	r->suspended = true;
	return MHD_YES;
}

/* MHD pulls streamed bytes from here. With nothing to send the connection
 * is suspended (returning 0 without suspending would spin) and resumed by
 * pump_one() when the engine produced more. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	srv_req *r = cls;
	size_t avail = r->out.len - r->out_off;

	(void)pos;
	if (avail == 0 && r->finished)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (avail == 0) {
		MHD_suspend_connection(r->conn);
		r->suspended = true;
		return 0;
	}
	if (avail > max)
		avail = max;
	memcpy(buf, r->out.data + r->out_off, avail);
	r->out_off += avail;
	if (r->out_off == r->out.len) {
		mllm_buf_reset(&r->out);
		r->out_off = 0;
	} else if (r->out_off >= OUTBOX_COMPACT && r->out_off >= r->out.len / 2) {
		/* Read bytes go once they are half the outbox: each byte is
		 * moved at most about once. */
		memmove(r->out.data, r->out.data + r->out_off, r->out.len - r->out_off + 1);
		r->out.len -= r->out_off;
		r->out_off = 0;
	}
	/* The limit is on bytes unread: what was read and is still in front
	 * does not count (the closing events' lifted limit stays). */
	if (r->out.limit < SIZE_MAX / 2)
		r->out.limit = STREAM_OUT_LIMIT + r->out_off;
	return (ssize_t)avail;
}

static enum MHD_Result stream_start(srv_req *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, r, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	add_common_headers(r, resp);
	ret = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES)
		r->status = 200;
	return ret;
}

/* The engine requests are finished (or abandoned): account and let go. */
static void gen_finish(srv_req *r)
{
	api_usage u;

	api_request_usage(r->areq, &u);
	r->prompt_tokens = (uint64_t)u.prompt_tokens;
	r->completion_tokens = (uint64_t)u.completion_tokens;
	r->cached_tokens = (uint64_t)u.cached_tokens;
	release_engine_reqs(r);
	active_unlink(r->s, r);
	r->finished = true;
	watch_stop(r);
}

static void resume(srv_req *r)
{
	if (r->suspended) {
		r->suspended = false;
		MHD_resume_connection(r->conn);
	}
}

/* Ends the request with `e` (shutdown, outbox overflow). */
static void gen_abort(srv_req *r, const api_error *e)
{
	int rc, status = 200;

	cancel_engine_reqs(r);
	/* A full outbox (the overflow that brought us here) still takes the
	 * closing events (the error and [DONE]; Responses' response.failed,
	 * bounded by what was generated): the client learns the stream was
	 * cut, not a clean end. */
	if (r->streaming)
		r->out.limit = SIZE_MAX / 2;
	rc = api_request_abort(r->areq, e, &r->out);
	if (rc == 0 && !r->streaming)
		rc = api_request_end(r->areq, &r->out, &status);
	r->end_status = rc < 0 ? rc : status;
	r->cancelled = true;
	gen_finish(r);
	resume(r);
}

static void pump_one(srv_req *r)
{
	bool got = false;
	mllm_event ev;
	int rc = 0;

	for (int32_t i = 0; i < r->n_ereqs && rc == 0; i++) {
		if (!r->ereqs[i])
			continue;
		while (rc == 0 && mllm_request_poll(r->ereqs[i], &ev) == 1) {
			got = true;
			if (ev.kind == MLLM_EV_TOKEN) {
				uint64_t now = mllm_now_ns();
				size_t k = (size_t)i * (size_t)r->n_choices + (size_t)ev.choice;
				if (!r->t_first_ns) {
					r->t_first_ns = now;
					srv_hist_observe(&r->m->hist.ttft,
					                 (double)(now - r->t_start_ns) / 1e9);
				}
				if (ev.choice >= 0 && ev.choice < r->n_choices) {
					if (r->t_last_ns[k])
						srv_hist_observe(&r->m->hist.itl,
						                 (double)(now - r->t_last_ns[k]) /
						                     1e9);
					r->t_last_ns[k] = now;
				}
			}
			rc = api_request_feed(r->areq, i, &ev, &r->out);
			if (ev.kind == MLLM_EV_ERROR ||
			    (ev.kind == MLLM_EV_DONE && (ev.finish == MLLM_FINISH_ERROR ||
			                                 ev.finish == MLLM_FINISH_CANCELLED)))
				cancel_engine_reqs(r);
		}
	}
	if (rc < 0) {
		api_error e;
		if (rc == MLLM_ENOSPACE && r->streaming) {
			/* The client stopped reading: its outbox is full. */
			SRV_LOG_REQ(MLLM_LOG_WARN, r->id, "client too slow: %zu bytes unread",
			            r->out.len - r->out_off);
			api_error_set(&e, 500, NULL, "client_too_slow",
			              "The client did not read the stream fast enough");
		} else {
			SRV_LOG_REQ(MLLM_LOG_ERROR, r->id, "rendering failed: %s",
			            mllm_strerror(rc));
			api_error_set(&e, 500, NULL, "internal_error",
			              "The response could not be rendered (%s)", mllm_strerror(rc));
		}
		gen_abort(r, &e);
		return;
	}
	if (api_request_done(r->areq)) {
		int status = 200;
		int erc = api_request_end(r->areq, &r->out, &status);
		r->end_status = erc < 0 ? erc : status;
		if (erc == 0)
			resp_keep(r);
		gen_finish(r);
		resume(r);
		return;
	}
	if (got && r->streaming && r->out.len > r->out_off)
		resume(r);
}

void srv__http_pump(srv *s)
{
	srv_req *r = s->active;

	while (r) {
		srv_req *next = r->next; /* pump_one may unlink r */
		pump_one(r);
		r = next;
	}
}

void srv__http_abort_all(srv *s)
{
	api_error e;

	api_error_set(&e, 503, NULL, "shutting_down",
	              "The server is shutting down and cancelled this request");
	e.retry_after_s = (int)s->cfg->retry_after_s;
	while (s->active) {
		s->active->shutdown_cut = true;
		gen_abort(s->active, &e);
	}
	/* Requests still being prepared get the shutdown answer at once
	 * (prep_reply); their jobs are dropped when they come back. */
	while (s->preparing) {
		srv_req *r = s->preparing;
		prep_detach(r);
		r->prep_aborted = true;
		resume(r);
	}
}

void srv__http_prep_drain(srv *s)
{
	srv_job *j = srv__prep_take_done(s);

	while (j) {
		srv_job *next = j->next;
		srv_req *r = j->r;

		j->next = NULL;
		if (!r) {
			srv__job_free(j); /* its request went away meanwhile */
		} else {
			MLLM_ASSERT(r->job == j);
			r->job = NULL;
			r->prepared = j;
			prep_unlink(s, r);
			resume(r);
		}
		j = next;
	}
}

/* Every request being answered, whatever its route: a /tokenize answer or
 * a stored response still being written is in flight as much as a
 * generation (a shutdown that counted only those cut such answers). */
int srv__http_n_in_flight(const srv *s)
{
	return s->n_req_open;
}

/* Resumed with the job back (or abandoned by the shutdown timeout). */
static enum MHD_Result prep_reply(srv_req *r)
{
	srv_job *j = r->prepared;
	enum MHD_Result ret;

	if (!j && !r->prep_aborted) { /* spurious call: keep waiting */
		MHD_suspend_connection(r->conn);
		r->suspended = true;
		return MHD_YES;
	}
	r->prepared = NULL;
	r->prep_open = false;
	r->s->n_prep_open--;
	if (r->peer_gone) { /* hung up while it was prepared */
		srv__job_free(j);
		r->status = 499;
		return MHD_NO;
	}
	if (!j)
		ret = not_ready(r);
	else if (j->kind == SRV_JOB_GENERATE)
		ret = gen_submit(r, j);
	else
		ret = tokenize_reply(r, j);
	srv__job_free(j);
	return ret;
}

/* A non-streamed generation resumed with its body complete. */
static enum MHD_Result gen_reply(srv_req *r)
{
	const api_error *e;

	if (r->peer_gone) {
		r->status = 499; /* nginx's "client closed request", for the log */
		return MHD_NO;
	}
	if (!r->finished) { /* spurious call: keep waiting */
		MHD_suspend_connection(r->conn);
		r->suspended = true;
		return MHD_YES;
	}
	if (r->end_status < 0) {
		mllm_buf_free(&r->out);
		return reply_status(r, 500, NULL, "internal_error",
		                    "The response could not be rendered");
	}
	e = api_request_error(r->areq);
	return reply_buf(r, r->end_status, "application/json", &r->out,
	                 r->end_status != 200 && e ? e->retry_after_s : 0);
}

/* ---- CORS preflight ---------------------------------------------------------- */

/* What a preflight answers when it names no headers, or names them in a
 * form we do not echo: the headers the OpenAI SDKs send. */
#define CORS_ALLOW_HEADERS                                                                         \
	"Authorization, Content-Type, X-Session-Id, OpenAI-Organization, OpenAI-Project, "         \
	"X-Stainless-Lang, X-Stainless-Package-Version, X-Stainless-OS, X-Stainless-Arch, "        \
	"X-Stainless-Runtime, X-Stainless-Runtime-Version, X-Stainless-Retry-Count, "              \
	"X-Stainless-Timeout, X-Stainless-Helper-Method"
/* Longest Access-Control-Request-Headers echoed back. Browsers send the
 * lower-cased names of the request's non-safelisted headers: an SDK
 * request's list is a few hundred bytes. */
#define CORS_REQUEST_HEADERS_MAX 1024

/* RFC 9110 5.6.2 tchar: what a header name is made of. */
static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Whether a preflight's Access-Control-Request-Headers value may be echoed
 * as Access-Control-Allow-Headers: a comma-separated list of header names
 * (tokens, optional spaces or tabs around the commas, empty elements
 * allowed as RFC 9110 5.6.1 says) holding at least one name, at most
 * CORS_REQUEST_HEADERS_MAX bytes. Echoing what the browser asks for is what
 * lets SDK headers we have never heard of through (the JS SDK's
 * X-Stainless-Helper-Method, X-Stainless-Timeout); the headers grant
 * nothing, since every request is still authenticated by its key. */
static bool cors_request_headers_ok(const char *v)
{
	const unsigned char *p = (const unsigned char *)v;
	int names = 0;

	if (!v || strlen(v) > CORS_REQUEST_HEADERS_MAX)
		return false;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (is_tchar(*p)) {
			names++;
			while (is_tchar(*p))
				p++;
			while (*p == ' ' || *p == '\t')
				p++;
		}
		if (*p == '\0')
			return names > 0;
		if (*p != ',')
			return false;
		p++;
	}
}

/* ---- MHD callbacks ---------------------------------------------------------- */

static enum MHD_Result preflight(srv_req *r)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;
	const char *req_headers;
	char allow[48];

	if (!resp)
		return MHD_NO;
	route_allow(r->route, allow, sizeof allow);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	add_common_headers(r, resp);
	if (r->cors_ok) {
		req_headers = header(r, "Access-Control-Request-Headers");
		MHD_add_response_header(resp, "Access-Control-Allow-Methods", allow);
		MHD_add_response_header(resp, "Access-Control-Allow-Headers",
		                        cors_request_headers_ok(req_headers) ? req_headers
		                                                             : CORS_ALLOW_HEADERS);
		/* The answer now depends on the request's list too. */
		MHD_add_response_header(resp, "Vary", "Access-Control-Request-Headers");
		MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
	}
	ret = MHD_queue_response(r->conn, 204, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES)
		r->status = 204;
	return ret;
}

static enum MHD_Result dispatch(srv_req *r, const char *url, const char *method)
{
	if (r->early_status)
		return reply_error(r, &r->early_err);
	if (strcmp(method, "OPTIONS") == 0)
		return preflight(r);
	if (r->body_too_large)
		return reply_status(r, 413, NULL, "request_too_large",
		                    "Request body exceeds the configured max_body_bytes");
	switch (r->route) {
	case R_HEALTH:
	case R_READYZ:
		return do_health(r);
	case R_LIVEZ:
		/* Liveness: the loop answers, so the process works, whether
		 * it is loading, serving or draining. A failed load is not
		 * fixed by a restart loop either: the process exits. */
		return reply_text(r, 200, "application/json", "{\"status\":\"alive\"}");
	case R_METRICS:
		return do_metrics(r);
	case R_MODELS:
	case R_MODEL:
		return do_models(r);
	case R_TOKENIZE:
	case R_DETOKENIZE:
	case R_RESPONSE_COUNT:
		return do_tokenize(r);
	case R_COMPLETIONS:
	case R_CHAT:
	case R_RESPONSES:
		return gen_start(r);
	case R_RESPONSE:
	case R_RESPONSE_ITEMS:
	case R_RESPONSE_CANCEL:
		return do_response(r, method);
	}
	return reply_status(r, 500, NULL, "internal_error", "unrouted request");
}

/* The id of a request that is not a generation: the process's count of
 * requests through a bijective mix keyed at random at startup, so ids
 * never repeat within a process and do not repeat across replicas and
 * restarts as "req-1, req-2, ..." did. */
static uint64_t request_id(srv *s)
{
	uint64_t z;
	if (s->next_req == 0 &&
	    getrandom(&s->req_key, sizeof s->req_key, GRND_NONBLOCK) != (ssize_t)sizeof s->req_key)
		s->req_key = mllm_now_ns() ^ ((uint64_t)getpid() << 32);
	z = ++s->next_req ^ s->req_key;
	/* splitmix64's finaliser: a bijection on 64 bits */
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The client's own X-Request-Id (a balancer's or tracer's), kept for the
 * log line when it is a plain token: visible ASCII, at most 64 bytes. */
static void keep_client_id(srv_req *r, const char *v)
{
	size_t n = v ? strlen(v) : 0;
	if (n == 0 || n > 64)
		return;
	for (size_t i = 0; i < n; i++)
		if (v[i] <= ' ' || v[i] > '~' || v[i] == '"' || v[i] == '\\')
			return;
	memcpy(r->client_id, v, n + 1);
}

/* A request begins: MHD parsed its request line. Called with the raw target
 * (before MHD unescapes it, query included); what it returns is the request
 * context every later callback gets (*con_cls). */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
	srv *s = cls;
	srv_req *r = xcalloc(1, sizeof *r);
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	r->s = s;
	r->conn = conn;
	r->sc = ci ? ci->socket_context : NULL;
	r->t_start_ns = mllm_now_ns();
	snprintf(r->id, sizeof r->id, "req-%016llx", (unsigned long long)request_id(s));
	/* What a response conn.c writes itself (408, 400) says. */
	if (r->sc)
		snprintf(r->sc->req_id, sizeof r->sc->req_id, "%s", r->id);
	/* MHD bounds the request line by its read buffer. */
	r->target = xstrdup(uri ? uri : "/");
	snprintf(r->path, sizeof r->path, "%s", r->target);
	r->route = -1;
	mllm_buf_init(&r->body, (size_t)s->cfg->max_body_bytes);
	return r;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
	srv *s = cls;
	srv_req *r = *con_cls;

	if (!r) { /* no request-line callback (cannot happen): route on url */
		r = on_request_line(s, url, conn);
		*con_cls = r;
	}
	if (!r->open) { /* its head is in: MHD will complete it */
		r->open = true;
		s->n_req_open++;
	}
	if (!r->started) { /* the request head is complete */
		r->started = true;
		snprintf(r->method, sizeof r->method, "%s", method);
		keep_client_id(r, header(r, "X-Request-Id"));
		/* HTTP/1.0: MHD closes after the answer (no keep-alive) */
		r->http10 = version && strcmp(version, "HTTP/1.0") == 0;
		classify(r, method, version);
		/* A client that waits for "100 Continue" gets the refusal
		 * instead (RFC 9110 10.1.1), not an invitation to upload a
		 * body that is then refused; the unread body ends the
		 * connection. */
		if (r->early_status && !r->answer_now) {
			const char *ex = header(r, "Expect");
			if (ex && strcasecmp(ex, "100-continue") == 0) {
				r->answer_now = true;
				r->must_close = true;
			}
		}
		srv__conn_phase(s, r->sc, SRV_CONN_BODY);
		/* Answer an announced oversize body or broken framing before
		 * the body is sent (also spares the client's Expect:
		 * 100-continue upload). */
		if (r->early_status && r->answer_now)
			return reply_error(r, &r->early_err);
		return MHD_YES;
	}
	if (*upload_data_size) {
		r->body_seen += *upload_data_size;
		if (r->sc)
			r->sc->body_seen = r->body_seen;
		if (r->body_seen > DISCARD_MAX && !r->status) {
			/* Dropping this much is a waste: answer and close. MHD
			 * takes no response in the middle of a body (a chunked
			 * one, or one sent to a route that reads none), so the
			 * 413 goes straight to the socket (conn.c), and MHD is
			 * told to drop the connection. */
			*upload_data_size = 0;
			srv__conn_refuse(s, r->sc, 413, "request_too_large",
			                 "Request body exceeds the configured max_body_bytes");
			return MHD_NO;
		}
		if (!r->early_status && !r->body_too_large &&
		    mllm_buf_append(&r->body, upload_data, *upload_data_size) < 0) {
			r->body_too_large = true;
			mllm_buf_free(&r->body);
			mllm_buf_init(&r->body, 0);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	srv__conn_phase(s, r->sc, SRV_CONN_BUSY); /* the request is complete */
	if (r->gen_open)
		return gen_reply(r);
	if (r->prep_open)
		return prep_reply(r);
	if (r->status)
		return MHD_YES; /* already answered (early 413) */
	return dispatch(r, url, method);
}

/* Why MHD ended a request, for the log line of one that did not end well. */
static const char *toe_name(enum MHD_RequestTerminationCode toe)
{
	switch (toe) {
	case MHD_REQUEST_TERMINATED_COMPLETED_OK:
		return "";
	case MHD_REQUEST_TERMINATED_WITH_ERROR:
		return " (connection error)";
	case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
		return " (connection_timeout_s reached)";
	case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
		return " (shutdown)";
	case MHD_REQUEST_TERMINATED_READ_ERROR:
		return " (read error)";
	case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
		return " (client hung up)";
	}
	return " (connection lost)";
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	srv *s = cls;
	srv_req *r = *con_cls;
	double ms;

	(void)conn;
	if (!r)
		return;
	*con_cls = NULL;
	if (r->gen_open && !r->finished) {
		/* The client went away mid-generation: cancel, so the engine
		 * frees its blocks within one step. */
		cancel_engine_reqs(r);
		s->metrics.cancelled++;
		r->cancelled = true;
		gen_finish(r);
		/* Nothing was answered yet (not streamed): nginx's 499, as
		 * gen_reply says when it sees the hang-up first. */
		if (!r->status && toe != MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN)
			r->status = 499;
	}
	if (r->open)
		s->n_req_open--;
	if (r->gen_open)
		s->n_gen_open--;
	if (r->prep_open) { /* went away (or shutdown) before it was answered */
		s->n_prep_open--;
		if (!r->status && toe != MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN)
			r->status = 499;
	}
	/* The disconnect watch saw the hang-up first (and cancelled), but
	 * MHD completed the request before the handler could say 499; or
	 * the client hung up before its request was complete. */
	if (!r->status && (r->peer_gone || ((toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ||
	                                     toe == MHD_REQUEST_TERMINATED_READ_ERROR ||
	                                     (r->sc && r->sc->peer_hup)) &&
	                                    !(r->sc && r->sc->answered))))
		r->status = 499;
	/* The connection may carry a next request: its head has
	 * header_timeout_ms from now. */
	srv__conn_phase(s, r->sc, SRV_CONN_HEADERS);
	ms = (double)(mllm_now_ns() - r->t_start_ns) / 1e6;
	if (!r->status && r->sc && r->sc->answered)
		r->status = r->sc->answered; /* conn.c answered (408, 400, 413) */
	if (r->status)
		srv_metrics_count_status(&s->metrics, r->status);
	if (r->gen_open && r->m) /* generations only: health checks would drown it */
		srv_hist_observe(&r->m->hist.e2e, ms / 1e3);
	s->metrics.prompt_tokens += r->prompt_tokens;
	s->metrics.completion_tokens += r->completion_tokens;
	if (s->cfg->log_requests || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
		int level =
		    toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? MLLM_LOG_INFO : MLLM_LOG_WARN;
		char ttft[32], cid[96] = "";
		/* no first token (refused, cancelled before one, an error):
		 * no time to first token, rather than a 0 that reads as fast */
		if (r->t_first_ns)
			snprintf(ttft, sizeof ttft, "%.1f",
			         (double)(r->t_first_ns - r->t_start_ns) / 1e6);
		else
			snprintf(ttft, sizeof ttft, "-");
		if (r->client_id[0])
			snprintf(cid, sizeof cid, " client_request_id=%s", r->client_id);
		if (r->m)
			SRV_LOG_REQ(level, r->id,
			            "%s %s %d model=%s prompt=%llu completion=%llu cached=%llu "
			            "ttft_ms=%s total_ms=%.1f%s%s%s%s",
			            r->method, r->path, r->status, r->m->cfg->id,
			            (unsigned long long)r->prompt_tokens,
			            (unsigned long long)r->completion_tokens,
			            (unsigned long long)r->cached_tokens, ttft, ms,
			            r->streaming ? " stream" : "",
			            r->shutdown_cut ? " cancelled by the shutdown timeout"
			            : r->cancelled  ? " cancelled"
			                            : "",
			            cid, toe_name(toe));
		else
			SRV_LOG_REQ(level, r->id, "%s %s %d total_ms=%.1f%s%s",
			            r->method[0] ? r->method : "-", r->path, r->status, ms, cid,
			            toe_name(toe));
	}
	req_free(r);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	srv *s = cls;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		s->metrics.connections_open++;
		*socket_context = srv__conn_open(s, conn);
	} else {
		s->metrics.connections_open--;
		s->n_conn_closed++;
		srv__conn_close(s, *socket_context);
		*socket_context = NULL;
	}
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	return srv__conn_admit(cls, addr, addrlen) ? MHD_YES : MHD_NO;
}

/* How libmicrohttpd (0.9.75, parse_connection_headers) judges a
 * Content-Length value: 0 a length it reads, 413 digits past 2^64 - 1,
 * 400 anything else ("5, 5", "", "-1", " 5x"). */
static int content_length_status(const char *v)
{
	uint64_t n = 0;

	if (*v < '0' || *v > '9')
		return 400;
	for (; *v >= '0' && *v <= '9'; v++) {
		uint64_t d = (uint64_t)(*v - '0');
		if (n > (UINT64_MAX - d) / 10)
			return 413;
		n = n * 10 + d;
	}
	return *v ? 400 : 0;
}

/* MHD refuses a Content-Length it cannot parse ("5, 5", or digits past
 * 2^64) itself, before the access handler sees the request, and
 * libmicrohttpd up to 0.9.77 then sends its response head twice
 * (transmit_error_response() builds it, and the state machine, which only
 * checks for CLOSED after parse_connection_headers(), builds it again when
 * it reaches START_REPLY; fixed in 1.0.0). Nothing of that is reachable
 * from the public API, but MHD logs the refusal just before it queues the
 * response and writes it later in the same round: answer first with our
 * own JSON error, as check_framing() would, and shut the socket down, so
 * MHD's bytes go nowhere. The connection is one whose request has not
 * reached the access handler and whose first Content-Length is not a
 * number MHD can read (only that first one is what MHD parses), which the
 * access handler would refuse in the same way. */
static void mhd_refused_length(srv *s)
{
	for (srv_conn *c = s->conns; c; c = c->next) {
		framing f = {0};
		const char *v;
		int st;
		if (c->closing || c->phase != SRV_CONN_HEADERS || !c->mc)
			continue;
		v = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND,
		                                MHD_HTTP_HEADER_CONTENT_LENGTH);
		MHD_get_connection_values(c->mc, MHD_HEADER_KIND, framing_header, &f);
		if (!v || f.n_te > 0)
			continue; /* MHD ignores Content-Length next to a coding */
		st = content_length_status(v);
		if (st == 0)
			continue;
		SRV_LOG_REQ(MLLM_LOG_INFO, c->req_id[0] ? c->req_id : NULL,
		            "closing a connection: unreadable Content-Length");
		if (st == 413)
			srv__conn_refuse(
			    s, c, 413, "request_too_large",
			    "The Content-Length header is larger than the server accepts");
		else
			srv__conn_refuse(s, c, 400, "invalid_content_length",
			                 "Invalid Content-Length header");
	}
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	/* libmicrohttpd's own messages ("Failed to parse `Content-Length'
	 * header", "Too large value of 'Content-Length' header"). */
	if (fmt && strstr(fmt, "Content-Length' header"))
		mhd_refused_length(cls);
	if (MLLM_LOG_DEBUG > srv__log_level)
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	SRV_LOG(MLLM_LOG_DEBUG, "libmicrohttpd: %s", msg);
}

/* ---- Start / run / stop ----------------------------------------------------- */

int srv__http_start(srv *s, char *err, size_t errlen)
{
	const cfg_t *c = s->cfg;
	struct addrinfo hints, *ai = NULL;
	char port[16];
	unsigned int flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;
	int rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof port, "%lld", (long long)c->port);
	rc = getaddrinfo(c->host, port, &hints, &ai);
	if (rc != 0 || !ai)
		return mllm__seterr(err, errlen, MLLM_EINVAL, "host '%s': %s", c->host,
		                    gai_strerror(rc));
	/* "::" takes IPv4 clients too (as IPv4-mapped addresses, which
	 * max_connections_per_client counts as IPv4): a dual-stack socket,
	 * whatever the host's net.ipv6.bindv6only says. */
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_DUAL_STACK;

	/* MHD's own limit is set above ours so that it never stops accepting
	 * (which would leave clients unanswered in the backlog): on_accept
	 * refuses what is over max_connections by closing it at once. */
	s->mhd = MHD_start_daemon(
	    flags, (uint16_t)c->port, on_accept, s, on_access, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)c->max_connections + CONN_LIMIT_SLACK,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)c->connection_timeout_s,
	    MHD_OPTION_URI_LOG_CALLBACK, on_request_line, s, MHD_OPTION_NOTIFY_COMPLETED,
	    on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, MHD_OPTION_END);
	if (!s->mhd) {
		/* MHD does not say why: a bind of our own does. */
		int e = srv__bind_probe(ai->ai_addr, ai->ai_addrlen, true);
		freeaddrinfo(ai);
		return mllm__seterr(err, errlen, MLLM_EIO, "cannot listen on %s:%lld: %s", c->host,
		                    (long long)c->port,
		                    e ? strerror(e) : "the HTTP server did not start");
	}
	freeaddrinfo(ai);
	info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : (uint16_t)c->port;
	return 0;
}

int srv__bind_probe(const struct sockaddr *sa, socklen_t len, bool with_port)
{
	struct sockaddr_storage ss;
	int fd, e = 0, one = 1;
	if (len > sizeof ss)
		return EINVAL;
	memcpy(&ss, sa, len);
	if (!with_port) {
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = 0;
		else if (ss.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&ss)->sin6_port = 0;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, len) != 0)
		e = errno;
	close(fd);
	return e;
}

int srv__http_epoll_fd(srv *s)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	return info ? info->epoll_fd : -1;
}

static void on_mhd_timer(uv_timer_t *t)
{
	srv__http_run(t->data);
}

void srv__http_run(srv *s)
{
	MHD_UNSIGNED_LONG_LONG to;
	int64_t sweep_ms;

	if (!s->mhd)
		return;
	/* MHD frees closed connections at the end of a round but only puts
	 * its listening socket back into the epoll set (after it hit
	 * max_connections) at the start of the next one; nothing would wake
	 * us for that round, so run again while connections are closing. */
	srv__conn_sweep(s); /* deadlines: shut sockets down before the round */
	for (int i = 0; i < 4; i++) {
		uint64_t closed = s->n_conn_closed;
		MHD_run(s->mhd);
		if (s->n_conn_closed == closed)
			break;
	}
	/* Also never sleep more than a second without a round: a cheap
	 * guard against any wakeup MHD's edge-triggered epoll set might not
	 * turn into a readable epoll fd. */
	if (MHD_get_timeout(s->mhd, &to) != MHD_YES || to > HOUSEKEEPING_MS)
		to = HOUSEKEEPING_MS;
	sweep_ms = srv__conn_sweep_in_ms(s);
	if (sweep_ms >= 0 && (MHD_UNSIGNED_LONG_LONG)sweep_ms < to)
		to = (MHD_UNSIGNED_LONG_LONG)sweep_ms;
	s->mhd_timer.data = s;
	uv_timer_start(&s->mhd_timer, on_mhd_timer, (uint64_t)to, 0);
	/* The last in-flight response of a shutdown may have completed in
	 * this round: let the loop's wake handler finish the stop (it cannot
	 * happen here, inside whatever callback called us). */
	if (s->stopping && srv__http_n_in_flight(s) == 0)
		uv_async_send(&s->wake);
}

void srv__http_resume_all(srv *s)
{
	for (srv_req *r = s->active; r; r = r->next)
		resume(r);
}

void srv__http_stop(srv *s)
{
	/* Join the prep threads before MHD goes (STYLE D5). No request may
	 * point at a job then: detach them all (their connections are
	 * resumed below and closed by MHD_stop_daemon). */
	while (s->preparing) {
		srv_req *r = s->preparing;
		prep_detach(r);
		r->prep_aborted = true;
		resume(r);
	}
	srv__prep_stop(s);
	if (s->mhd) {
		srv__http_resume_all(s);
		MHD_stop_daemon(s->mhd);
		s->mhd = NULL;
	}
	/* MHD reports every connection closed when it stops; whatever it
	 * did not is freed here so nothing outlives the daemon. */
	while (s->conns)
		srv__conn_close(s, s->conns);
	if (s->listen_fd != MHD_INVALID_SOCKET) {
		close(s->listen_fd);
		s->listen_fd = MHD_INVALID_SOCKET;
	}
}
