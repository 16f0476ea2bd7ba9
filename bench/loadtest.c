/*
 * loadtest.c — a bounded load generator for the daemon, loopback only.
 * Closed-loop clients (each sends its next request when the last ends) and
 * open-loop Poisson arrivals (requests start on a clock whatever the
 * daemon's state), streaming and not, completions and chat, a mix of short,
 * medium and long prompts, and clients that hang up mid-stream. Reports
 * TTFT, TPOT, inter-token latency and end-to-end latency percentiles,
 * throughput and goodput (vLLM benchmark_serving's definitions; see
 * report()), and responses by status. With --soak it also samples the
 * daemon's RSS every 10 s and checks, at the end, RSS flat within 2% after
 * warm-up, no unexpected error, and the KV pool back to its baseline.
 *
 * Every loop is bounded by a count and a deadline; it exits by itself.
 * Plain sockets and pthreads; jansson builds the bodies and reads events.
 * Figures only: the exit status is non-zero only for soak-check failures,
 * a daemon that cannot be reached, or bad options.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define MAX_RESULTS 200000     /* per phase */
#define MAX_ITL     4000000    /* inter-token gaps kept per phase */
#define RESP_CAP    (4u << 20) /* bytes of one response kept */
#define MAX_STATUS  600
#define MAX_RSS     1024

typedef struct {
	char host[64];
	int port;
	const char *model;    /* NULL: the daemon's default */
	double duration_s;    /* per phase */
	long max_requests;    /* per phase */
	int clients;          /* closed loop */
	double rate;          /* open loop, requests/s */
	int max_inflight;     /* open loop bound */
	double stream_frac;   /* share of streamed requests */
	double cancel_frac;   /* share of streamed requests hung up early */
	double chat_frac;     /* share of chat requests */
	int min_out, max_out; /* max_tokens range */
	int mix[3];           /* prompt class weights: short, medium, long */
	double timeout_s;     /* one request */
	double slo_ttft_ms, slo_tpot_ms, slo_e2el_ms; /* goodput; 0 = unused */
	const char *phases;                           /* "closed,open" */
	double soak_s;                                /* 0: no soak */
	int pid;                                      /* daemon pid for RSS (soak) */
	unsigned seed;
} lt_cfg;

enum { ST_CONN = 0, ST_CANCELLED = 1 }; /* pseudo statuses below 100 */

typedef struct {
	int status; /* HTTP status, or ST_CONN / ST_CANCELLED */
	bool stream;
	bool stream_error; /* 200 stream that carried an error event */
	int prompt_class;
	double ttft, e2el; /* seconds; ttft < 0 when no token arrived */
	int n_out;         /* completion tokens (usage) or token events */
} lt_result;

typedef struct {
	pthread_mutex_t mu;
	lt_result *res;
	long n_res;
	double *itl;
	long n_itl;
	long dropped; /* open loop: arrivals past max_inflight */
	double t0, t1;
} lt_phase;

static const lt_cfg *cfg;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
	struct timespec ts;
	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
}

/* xorshift per thread: deterministic for a given --seed and thread. */
static uint32_t rnd(uint32_t *s)
{
	uint32_t x = *s ? *s : 0x9e3779b9u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*s = x;
	return x;
}

static double rnd01(uint32_t *s)
{
	return ((double)(rnd(s) >> 8) + 0.5) / (double)(1u << 24);
}

/* ---- Prompts --------------------------------------------------------------- */

static const char *const words[] = {
    "once",  "upon", "a",    "time",   "there", "was",   "little", "girl", "who",
    "lived", "in",   "the",  "forest", "she",   "liked", "to",     "play", "with",
    "her",   "dog",  "one",  "day",    "they",  "found", "big",    "red",  "ball",
    "and",   "ran",  "home", "happy",  "sun",   "tree",  "bird",   "sang", "song"};
#define N_WORDS (sizeof words / sizeof words[0])

/* Prompt classes: short, medium, long (about 8, 80, 300 tokens), drawn
 * by the weights of --prompts (50:35:15 unless told). */
static const int class_words[3] = {6, 64, 240};

static int pick_class(uint32_t *s)
{
	int total = cfg->mix[0] + cfg->mix[1] + cfg->mix[2];
	double u = rnd01(s) * total;
	return u < cfg->mix[0] ? 0 : u < cfg->mix[0] + cfg->mix[1] ? 1 : 2;
}

static void make_prompt(uint32_t *s, int cls, char *out, size_t cap)
{
	size_t n = 0;
	int w = class_words[cls] + (int)(rnd(s) % 4);
	out[0] = '\0';
	for (int i = 0; i < w; i++) {
		const char *x = words[rnd(s) % N_WORDS];
		size_t l = strlen(x);
		if (n + l + 2 >= cap)
			break;
		if (i)
			out[n++] = ' ';
		memcpy(out + n, x, l);
		n += l;
		out[n] = '\0';
	}
}

/* ---- HTTP over loopback ------------------------------------------------------ */

static int dial(double timeout_s)
{
	struct sockaddr_in a;
	struct timeval tv = {.tv_sec = (time_t)timeout_s,
	                     .tv_usec = (suseconds_t)((timeout_s - (time_t)timeout_s) * 1e6)};
	int one = 1, fd;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)cfg->port);
	if (inet_pton(AF_INET, cfg->host, &a.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* One response being read: raw bytes in, de-chunked body out, SSE events
 * taken off the body as they complete. */
typedef struct {
	char *raw;
	size_t n_raw, raw_off; /* raw_off: first byte not yet consumed */
	char *body;
	size_t n_body, body_off;
	int status;
	bool headers_done, chunked, done;
	long content_length;
	long chunk_left; /* bytes of the current chunk still to copy; -1: size line next */
} lt_resp;

static void body_add(lt_resp *r, const char *p, size_t n)
{
	if (n > RESP_CAP - r->n_body)
		n = RESP_CAP - r->n_body;
	memcpy(r->body + r->n_body, p, n);
	r->n_body += n;
}

/* Moves what arrived in raw into body; sets done at the end of the body. */
static void resp_advance(lt_resp *r)
{
	if (!r->headers_done) {
		char *e = memmem(r->raw, r->n_raw, "\r\n\r\n", 4);
		if (!e)
			return;
		*e = '\0';
		r->headers_done = true;
		r->status = 0;
		if (strncmp(r->raw, "HTTP/1.", 7) == 0 && strlen(r->raw) > 12)
			r->status = atoi(r->raw + 9);
		for (char *h = strstr(r->raw, "\r\n"); h; h = strstr(h + 2, "\r\n")) {
			if (strncasecmp(h + 2, "transfer-encoding:", 18) == 0 &&
			    strstr(h + 20, "chunked"))
				r->chunked = true;
			if (strncasecmp(h + 2, "content-length:", 15) == 0)
				r->content_length = atol(h + 17);
		}
		r->raw_off = (size_t)(e - r->raw) + 4;
		r->chunk_left = -1;
	}
	if (!r->chunked) {
		body_add(r, r->raw + r->raw_off, r->n_raw - r->raw_off);
		r->raw_off = r->n_raw;
		if (r->content_length >= 0 && (long)r->n_body >= r->content_length)
			r->done = true;
		return;
	}
	while (!r->done && r->raw_off < r->n_raw) {
		if (r->chunk_left < 0) {
			char *nl = memmem(r->raw + r->raw_off, r->n_raw - r->raw_off, "\r\n", 2);
			if (!nl)
				return;
			r->chunk_left = strtol(r->raw + r->raw_off, NULL, 16);
			r->raw_off = (size_t)(nl - r->raw) + 2;
			if (r->chunk_left == 0)
				r->done = true;
		} else if (r->chunk_left > 0) {
			size_t k = r->n_raw - r->raw_off;
			if (k > (size_t)r->chunk_left)
				k = (size_t)r->chunk_left;
			body_add(r, r->raw + r->raw_off, k);
			r->raw_off += k;
			r->chunk_left -= (long)k;
		} else { /* the CRLF after a chunk */
			if (r->n_raw - r->raw_off < 2)
				return;
			r->raw_off += 2;
			r->chunk_left = -1;
		}
	}
}

static int usage_tokens(json_t *j)
{
	json_t *u = json_object_get(j, "usage");
	json_t *c = u ? json_object_get(u, "completion_tokens") : NULL;
	return c ? (int)json_integer_value(c) : -1;
}

/* A streamed chunk carries a token when its first choice has text (or a
 * delta with content). */
static bool chunk_has_text(json_t *j)
{
	json_t *ch = json_array_get(json_object_get(j, "choices"), 0), *t;
	if (!ch)
		return false;
	t = json_object_get(ch, "text");
	if (!t)
		t = json_object_get(json_object_get(ch, "delta"), "content");
	return json_is_string(t) && json_string_length(t) > 0;
}

typedef struct {
	lt_phase *ph;
	uint32_t rng;
} lt_client;

static void record(lt_phase *ph, const lt_result *res, const double *gaps, int n_gaps)
{
	pthread_mutex_lock(&ph->mu);
	if (ph->n_res < MAX_RESULTS)
		ph->res[ph->n_res++] = *res;
	for (int i = 0; i < n_gaps && ph->n_itl < MAX_ITL; i++)
		ph->itl[ph->n_itl++] = gaps[i];
	pthread_mutex_unlock(&ph->mu);
}

#define MAX_GAPS 4096

/* One request from start to end (or to our hang-up). */
static void one_request(lt_client *cl)
{
	lt_result res;
	lt_resp r;
	char prompt[4096], head[512];
	double gaps[MAX_GAPS], t_last = 0, t_start;
	int n_gaps = 0, cancel_after = -1, fd, n_events = 0;
	bool chat = rnd01(&cl->rng) < cfg->chat_frac;
	int max_tokens =
	    cfg->min_out + (int)(rnd(&cl->rng) % (uint32_t)(cfg->max_out - cfg->min_out + 1));
	json_t *body;
	char *b;
	size_t blen;

	memset(&res, 0, sizeof res);
	memset(&r, 0, sizeof r);
	res.ttft = -1;
	res.stream = rnd01(&cl->rng) < cfg->stream_frac;
	res.prompt_class = pick_class(&cl->rng);
	if (res.stream && rnd01(&cl->rng) < cfg->cancel_frac)
		cancel_after = 1 + (int)(rnd(&cl->rng) % 4);
	make_prompt(&cl->rng, res.prompt_class, prompt, sizeof prompt);
	if (chat)
		body = json_pack("{s:[{s:s,s:s}],s:i,s:f,s:b}", "messages", "role", "user",
		                 "content", prompt, "max_tokens", max_tokens, "temperature", 0.8,
		                 "stream", res.stream);
	else
		body = json_pack("{s:s,s:i,s:f,s:b}", "prompt", prompt, "max_tokens", max_tokens,
		                 "temperature", 0.8, "stream", res.stream);
	if (!body)
		return;
	if (res.stream)
		json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
	if (cfg->model)
		json_object_set_new(body, "model", json_string(cfg->model));
	b = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!b)
		return;
	blen = strlen(b);
	snprintf(head, sizeof head,
	         "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
	         "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	         chat ? "/v1/chat/completions" : "/v1/completions", cfg->host, cfg->port, blen);

	r.raw = malloc(RESP_CAP);
	r.body = malloc(RESP_CAP);
	r.content_length = -1;
	t_start = now_s();
	fd = r.raw && r.body ? dial(cfg->timeout_s) : -1;
	if (fd < 0 || !send_all(fd, head, strlen(head)) || !send_all(fd, b, blen)) {
		res.status = ST_CONN;
		goto done;
	}
	while (!r.done && now_s() - t_start < cfg->timeout_s) {
		ssize_t k;
		if (r.n_raw == RESP_CAP) { /* keep only what is not yet consumed */
			memmove(r.raw, r.raw + r.raw_off, r.n_raw - r.raw_off);
			r.n_raw -= r.raw_off;
			r.raw_off = 0;
			if (r.n_raw == RESP_CAP)
				break;
		}
		k = recv(fd, r.raw + r.n_raw, RESP_CAP - r.n_raw, 0);
		if (k <= 0)
			break;
		r.n_raw += (size_t)k;
		resp_advance(&r);
		if (!res.stream || r.status != 200)
			continue;
		/* Complete SSE events: "data: ...\n\n". */
		for (;;) {
			char *e = memmem(r.body + r.body_off, r.n_body - r.body_off, "\n\n", 2);
			char *ev = r.body + r.body_off;
			double t = now_s();
			json_t *j;
			if (!e)
				break;
			r.body_off = (size_t)(e - r.body) + 2;
			if (strncmp(ev, "data: ", 6) != 0 || strncmp(ev + 6, "[DONE]", 6) == 0)
				continue;
			j = json_loadb(ev + 6, (size_t)(e - ev - 6), 0, NULL);
			if (!j)
				continue;
			if (json_object_get(j, "error"))
				res.stream_error = true;
			if (usage_tokens(j) >= 0)
				res.n_out = usage_tokens(j);
			if (chunk_has_text(j)) {
				if (res.ttft < 0)
					res.ttft = t - t_start;
				else if (n_gaps < MAX_GAPS)
					gaps[n_gaps++] = t - t_last;
				t_last = t;
				n_events++;
			}
			json_decref(j);
			if (cancel_after > 0 && n_events >= cancel_after) {
				res.status = ST_CANCELLED;
				goto done;
			}
		}
	}
	res.status = r.done ? r.status : (r.status ? r.status : ST_CONN);
	if (!r.done && r.status == 200)
		res.status = ST_CONN; /* cut short: count as a connection error */
	if (res.stream && res.n_out == 0)
		res.n_out = n_events;
	if (!res.stream && r.status == 200 && r.done) {
		json_t *j = json_loadb(r.body, r.n_body, 0, NULL);
		if (j) {
			res.n_out = usage_tokens(j) > 0 ? usage_tokens(j) : 0;
			json_decref(j);
		}
		res.ttft = -1; /* not measurable without streaming */
	}
done:
	res.e2el = now_s() - t_start;
	if (fd >= 0)
		close(fd);
	free(b);
	free(r.raw);
	free(r.body);
	record(cl->ph, &res, gaps, n_gaps);
}

/* ---- Closed loop ----------------------------------------------------------- */

typedef struct {
	lt_client cl;
	double deadline;
	long *left; /* shared request budget, under ph->mu */
} lt_worker;

static bool take_budget(lt_phase *ph, long *left)
{
	bool ok;
	pthread_mutex_lock(&ph->mu);
	ok = *left > 0;
	if (ok)
		(*left)--;
	pthread_mutex_unlock(&ph->mu);
	return ok;
}

static void *closed_main(void *arg)
{
	lt_worker *w = arg;
	while (now_s() < w->deadline && take_budget(w->cl.ph, w->left))
		one_request(&w->cl);
	return NULL;
}

static void run_closed(lt_phase *ph, double duration, unsigned seed)
{
	int n = cfg->clients;
	pthread_t *th = calloc((size_t)n, sizeof *th);
	lt_worker *w = calloc((size_t)n, sizeof *w);
	long left = cfg->max_requests;
	if (!th || !w)
		goto out;
	ph->t0 = now_s();
	for (int i = 0; i < n; i++) {
		w[i] =
		    (lt_worker){.cl = {.ph = ph, .rng = seed * 7919u + (unsigned)i * 104729u + 1},
		                .deadline = ph->t0 + duration,
		                .left = &left};
		if (pthread_create(&th[i], NULL, closed_main, &w[i]) != 0)
			n = i;
	}
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	ph->t1 = now_s();
out:
	free(th);
	free(w);
}

/* ---- Open loop (Poisson arrivals) ---------------------------------------------- */

typedef struct {
	lt_client cl;
	int *inflight;
	pthread_cond_t *cv;
} lt_arrival;

static void *open_main(void *arg)
{
	lt_arrival *a = arg;
	lt_phase *ph = a->cl.ph;
	one_request(&a->cl);
	pthread_mutex_lock(&ph->mu);
	(*a->inflight)--;
	pthread_cond_signal(a->cv);
	pthread_mutex_unlock(&ph->mu);
	free(a);
	return NULL;
}

static void run_open(lt_phase *ph, double duration, unsigned seed)
{
	uint32_t s = seed * 31u + 17u;
	int inflight = 0;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	pthread_attr_t attr;
	double next;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	ph->t0 = now_s();
	next = ph->t0;
	for (long i = 0; i < cfg->max_requests; i++) {
		lt_arrival *a;
		pthread_t t;
		/* Exponential inter-arrival times: a Poisson process of rate λ. */
		next += -log(rnd01(&s)) / cfg->rate;
		if (next >= ph->t0 + duration)
			break;
		sleep_s(next - now_s());
		pthread_mutex_lock(&ph->mu);
		if (inflight >= cfg->max_inflight) {
			ph->dropped++;
			pthread_mutex_unlock(&ph->mu);
			continue;
		}
		inflight++;
		pthread_mutex_unlock(&ph->mu);
		a = malloc(sizeof *a);
		if (a)
			*a = (lt_arrival){.cl = {.ph = ph, .rng = s ^ (uint32_t)(i * 2654435761u)},
			                  .inflight = &inflight,
			                  .cv = &cv};
		if (!a || pthread_create(&t, &attr, open_main, a) != 0) {
			free(a);
			pthread_mutex_lock(&ph->mu);
			inflight--;
			pthread_mutex_unlock(&ph->mu);
		}
	}
	/* Drain: each request is bounded by timeout_s. */
	pthread_mutex_lock(&ph->mu);
	while (inflight > 0)
		pthread_cond_wait(&cv, &ph->mu);
	pthread_mutex_unlock(&ph->mu);
	ph->t1 = now_s();
	pthread_attr_destroy(&attr);
}

/* ---- Report ------------------------------------------------------------------- */

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, long n, double p)
{
	long k;
	if (n <= 0)
		return NAN;
	k = (long)ceil(p / 100.0 * (double)n) - 1;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

static void print_dist(const char *name, double *v, long n, double scale, const char *unit)
{
	double sum = 0;
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	for (long i = 0; i < n; i++)
		sum += v[i];
	if (n == 0) {
		printf("  %-6s  (no samples)\n", name);
		return;
	}
	printf("  %-6s  n=%-6ld mean %8.1f  p50 %8.1f  p90 %8.1f  p99 %8.1f %s\n", name, n,
	       sum / (double)n * scale, pct(v, n, 50) * scale, pct(v, n, 90) * scale,
	       pct(v, n, 99) * scale, unit);
}

/* Returns the number of unexpected outcomes (anything but 200 and our own
 * hang-ups; a 200 stream that carried an error event counts too).
 *
 * Definitions (as vLLM's benchmarks/benchmark_serving.py):
 *   TTFT  time from sending the request to the first streamed chunk that
 *         carries text (streamed requests only);
 *   TPOT  per request, (E2EL - TTFT) / (output tokens - 1), for streamed
 *         requests with more than one output token;
 *   ITL   every gap between two successive text chunks of a stream;
 *   E2EL  sending the request to the end of the response;
 *   goodput  completed requests (200, not cancelled) meeting every SLO
 *         given (TTFT, TPOT for streamed requests; E2EL for all), divided by
 *         the phase's wall time. Output tokens come from the usage object. */
static long report(const char *name, lt_phase *ph)
{
	long n_ok = 0, n_stream = 0, n_good = 0, unexpected = 0, out_tok = 0;
	long by_status[MAX_STATUS] = {0}, by_class[3] = {0};
	double wall = ph->t1 - ph->t0;
	double *ttft = malloc(sizeof(double) * (size_t)(ph->n_res + 1));
	double *tpot = malloc(sizeof(double) * (size_t)(ph->n_res + 1));
	double *e2el = malloc(sizeof(double) * (size_t)(ph->n_res + 1));
	long n_ttft = 0, n_tpot = 0, n_e2el = 0;
	if (!ttft || !tpot || !e2el) {
		free(ttft);
		free(tpot);
		free(e2el);
		return 1;
	}
	for (long i = 0; i < ph->n_res; i++) {
		const lt_result *r = &ph->res[i];
		double tp = -1;
		bool good;
		if (r->status >= 0 && r->status < MAX_STATUS)
			by_status[r->status]++;
		if (r->status != 200) {
			if (r->status != ST_CANCELLED)
				unexpected++;
			continue;
		}
		if (r->stream_error) {
			unexpected++;
			continue;
		}
		n_ok++;
		by_class[r->prompt_class]++;
		out_tok += r->n_out;
		e2el[n_e2el++] = r->e2el;
		if (r->stream) {
			n_stream++;
			if (r->ttft >= 0)
				ttft[n_ttft++] = r->ttft;
			if (r->ttft >= 0 && r->n_out > 1) {
				tp = (r->e2el - r->ttft) / (double)(r->n_out - 1);
				tpot[n_tpot++] = tp;
			}
		}
		good = true;
		if (cfg->slo_e2el_ms > 0 && r->e2el * 1e3 > cfg->slo_e2el_ms)
			good = false;
		if (r->stream && cfg->slo_ttft_ms > 0 &&
		    (r->ttft < 0 || r->ttft * 1e3 > cfg->slo_ttft_ms))
			good = false;
		if (r->stream && cfg->slo_tpot_ms > 0 && tp >= 0 && tp * 1e3 > cfg->slo_tpot_ms)
			good = false;
		n_good += good;
	}
	printf("== %s: %ld requests in %.1f s (%ld ok: %ld streamed; prompts short/medium/long "
	       "%ld/%ld/%ld)\n",
	       name, ph->n_res, wall, n_ok, n_stream, by_class[0], by_class[1], by_class[2]);
	printf("  throughput %.2f req/s, %.1f output tok/s; goodput %.2f req/s "
	       "(SLO ttft<=%.0f ms, tpot<=%.0f ms, e2el<=%.0f ms; 0 = none)\n",
	       (double)n_ok / wall, (double)out_tok / wall, (double)n_good / wall, cfg->slo_ttft_ms,
	       cfg->slo_tpot_ms, cfg->slo_e2el_ms);
	print_dist("TTFT", ttft, n_ttft, 1e3, "ms");
	print_dist("TPOT", tpot, n_tpot, 1e3, "ms");
	print_dist("ITL", ph->itl, ph->n_itl, 1e3, "ms");
	print_dist("E2EL", e2el, n_e2el, 1e3, "ms");
	printf("  responses:");
	for (int s = 0; s < MAX_STATUS; s++) {
		if (!by_status[s])
			continue;
		if (s == ST_CONN)
			printf(" conn-error=%ld", by_status[s]);
		else if (s == ST_CANCELLED)
			printf(" cancelled-by-client=%ld", by_status[s]);
		else
			printf(" %d=%ld", s, by_status[s]);
	}
	if (ph->dropped)
		printf(" not-sent(client cap %d)=%ld", cfg->max_inflight, ph->dropped);
	printf("; unexpected %ld\n", unexpected);
	free(ttft);
	free(tpot);
	free(e2el);
	return unexpected;
}

/* ---- Daemon probes ------------------------------------------------------------- */

/* GET path into out (body only); returns the status or -1. */
static int http_get(const char *path, char *out, size_t cap)
{
	char req[256];
	size_t n = 0;
	int fd = dial(5.0), status = -1;
	char *sep;
	if (fd < 0)
		return -1;
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
	         cfg->host);
	if (send_all(fd, req, strlen(req))) {
		for (;;) {
			ssize_t k = recv(fd, out + n, cap - 1 - n, 0);
			if (k <= 0)
				break;
			n += (size_t)k;
			if (n == cap - 1)
				break;
		}
	}
	close(fd);
	out[n] = '\0';
	if (n > 12 && strncmp(out, "HTTP/1.", 7) == 0)
		status = atoi(out + 9);
	sep = strstr(out, "\r\n\r\n");
	if (sep)
		memmove(out, sep + 4, strlen(sep + 4) + 1);
	return status;
}

/* A gauge from /metrics (chunked bodies split lines rarely at these sizes;
 * the value is read after the name at the start of a line). */
static double metric(const char *body, const char *name)
{
	size_t l = strlen(name);
	for (const char *p = body; (p = strstr(p, name)) != NULL; p += l)
		if ((p == body || p[-1] == '\n') && (p[l] == ' ' || p[l] == '{')) {
			const char *v = strchr(p + l, ' ');
			return v ? atof(v + 1) : NAN;
		}
	return NAN;
}

typedef struct {
	double used, cached, running, queued;
} lt_kv;

static bool read_kv(lt_kv *kv)
{
	static char buf[1 << 16];
	if (http_get("/metrics", buf, sizeof buf) != 200)
		return false;
	kv->used = metric(buf, "mllm_kv_blocks_used");
	kv->cached = metric(buf, "mllm_kv_blocks_cached");
	kv->running = metric(buf, "mllm_running_sequences");
	kv->queued = metric(buf, "mllm_queue_depth");
	return !isnan(kv->used);
}

static long rss_kb(int pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = atol(line + 6);
	fclose(f);
	return kb;
}

/* ---- Soak ----------------------------------------------------------------------- */

typedef struct {
	lt_phase *ph;
	double duration;
	unsigned seed;
} lt_soak_arg;

static void *soak_load(void *arg)
{
	lt_soak_arg *a = arg;
	run_closed(a->ph, a->duration, a->seed);
	return NULL;
}

/* Closed-loop load for soak_s while the main thread samples RSS every
 * 10 s. Checks: after warm-up (the first quarter, at least 30 s) the RSS
 * samples spread by at most 2% of their minimum; no unexpected response;
 * KV blocks held by sequences (used - cached: the prefix cache may keep
 * finished blocks, evictable) and running/queued back to the baseline
 * once the load stopped. */
static int soak(lt_phase *ph, lt_kv *base)
{
	long rss[MAX_RSS];
	double t_rss[MAX_RSS];
	int n_rss = 0, fails = 0;
	double warm = cfg->soak_s / 4 > 30 ? cfg->soak_s / 4 : 30, lo = 0, hi = 0;
	lt_soak_arg a = {.ph = ph, .duration = cfg->soak_s, .seed = cfg->seed + 99};
	pthread_t th;
	double t0 = now_s();
	lt_kv end;
	long unexpected;
	bool got = false;

	if (pthread_create(&th, NULL, soak_load, &a) != 0)
		return 1;
	printf("== soak: %.0f s, %d closed-loop clients, RSS of pid %d every 10 s\n", cfg->soak_s,
	       cfg->clients, cfg->pid);
	while (n_rss < MAX_RSS) {
		double t = now_s() - t0;
		rss[n_rss] = rss_kb(cfg->pid);
		t_rss[n_rss] = t;
		printf("  t=%5.0f s  RSS %ld kB\n", t, rss[n_rss]);
		fflush(stdout);
		n_rss++;
		if (t >= cfg->soak_s)
			break;
		sleep_s(t + 10 > cfg->soak_s ? cfg->soak_s - t + 0.01 : 10);
	}
	pthread_join(th, NULL);
	unexpected = report("soak load", ph);
	for (int i = 0; i < n_rss; i++) {
		if (t_rss[i] < warm || rss[i] < 0)
			continue;
		if (!got || rss[i] < lo)
			lo = (double)rss[i];
		if (!got || rss[i] > hi)
			hi = (double)rss[i];
		got = true;
	}
	if (!got) {
		printf("  soak: no RSS sample after warm-up (%.0f s)\n", warm);
		fails++;
	} else {
		double spread = (hi - lo) / lo * 100.0;
		printf("  RSS after warm-up (t >= %.0f s): min %.0f kB, max %.0f kB, spread %.2f%% "
		       "(limit 2%%): %s\n",
		       warm, lo, hi, spread, spread <= 2.0 ? "flat" : "NOT FLAT");
		fails += spread > 2.0;
	}
	printf("  unexpected responses: %ld: %s\n", unexpected, unexpected ? "FAIL" : "ok");
	fails += unexpected > 0;
	/* Let the engine notice the last hang-ups (one step) before reading. */
	for (int i = 0; i < 50; i++) {
		if (read_kv(&end) && end.running == 0 && end.queued == 0 &&
		    end.used - end.cached <= base->used - base->cached)
			break;
		sleep_s(0.1);
	}
	if (!read_kv(&end)) {
		printf("  KV: /metrics unreadable: FAIL\n");
		return fails + 1;
	}
	printf("  KV blocks held by sequences: baseline %.0f, end %.0f (cached %.0f -> %.0f, "
	       "running %.0f, queued %.0f): %s\n",
	       base->used - base->cached, end.used - end.cached, base->cached, end.cached,
	       end.running, end.queued,
	       end.used - end.cached == base->used - base->cached && end.running == 0 &&
	               end.queued == 0
	           ? "back to baseline"
	           : "NOT BACK");
	fails += !(end.used - end.cached == base->used - base->cached && end.running == 0 &&
	           end.queued == 0);
	printf("soak: %s\n", fails ? "FAIL" : "PASS");
	return fails;
}

/* ---- Main ------------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
	        "usage: loadtest [--url http://127.0.0.1:PORT] [--model ID] [--duration S]\n"
	        "                [--requests N] [--clients C] [--rate R] [--max-inflight N]\n"
	        "                [--stream F] [--cancel F] [--chat F] [--out MIN:MAX]\n"
	        "                [--prompts S:M:L]\n"
	        "                [--timeout S] [--slo-ttft MS] [--slo-tpot MS] [--slo-e2el MS]\n"
	        "                [--phases closed,open] [--soak S --pid PID] [--seed N]\n"
	        "Loopback only. Phases: closed = C clients back to back; open = Poisson\n"
	        "arrivals at R/s (at most N in flight). Each phase lasts S seconds or N\n"
	        "requests, whichever comes first. --prompts: weights of short, medium and\n"
	        "long prompts (about 8, 80, 300 tokens; default 50:35:15).\n");
}

static int parse_url(lt_cfg *c, const char *url)
{
	const char *p = url, *colon;
	size_t hl;
	if (strncmp(p, "http://", 7) == 0)
		p += 7;
	colon = strchr(p, ':');
	hl = colon ? (size_t)(colon - p) : strcspn(p, "/");
	if (hl == 0 || hl >= sizeof c->host)
		return -1;
	memcpy(c->host, p, hl);
	c->host[hl] = '\0';
	if (strcmp(c->host, "localhost") == 0)
		strcpy(c->host, "127.0.0.1");
	c->port = colon ? atoi(colon + 1) : 80;
	/* Loopback only: this tool must not load anyone else's server. */
	if (strncmp(c->host, "127.", 4) != 0 || c->port <= 0 || c->port > 65535)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	static lt_cfg c = {.host = "127.0.0.1",
	                   .port = 8080,
	                   .duration_s = 30,
	                   .max_requests = 100000,
	                   .clients = 4,
	                   .rate = 2,
	                   .max_inflight = 64,
	                   .stream_frac = 0.5,
	                   .cancel_frac = 0.1,
	                   .chat_frac = 0.3,
	                   .min_out = 16,
	                   .max_out = 64,
	                   .mix = {50, 35, 15},
	                   .timeout_s = 60,
	                   .slo_ttft_ms = 1000,
	                   .slo_tpot_ms = 100,
	                   .slo_e2el_ms = 0,
	                   .phases = "closed,open",
	                   .seed = 1};
	static lt_phase ph;
	lt_kv base;
	long unexpected = 0;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			usage();
			return 2;
		}
		i++;
		if (strcmp(a, "--url") == 0) {
			if (parse_url(&c, v) != 0) {
				fprintf(stderr, "loadtest: --url must be http://127.x.x.x:PORT\n");
				return 2;
			}
		} else if (strcmp(a, "--model") == 0) {
			c.model = v;
		} else if (strcmp(a, "--duration") == 0) {
			c.duration_s = atof(v);
		} else if (strcmp(a, "--requests") == 0) {
			c.max_requests = atol(v);
		} else if (strcmp(a, "--clients") == 0) {
			c.clients = atoi(v);
		} else if (strcmp(a, "--rate") == 0) {
			c.rate = atof(v);
		} else if (strcmp(a, "--max-inflight") == 0) {
			c.max_inflight = atoi(v);
		} else if (strcmp(a, "--stream") == 0) {
			c.stream_frac = atof(v);
		} else if (strcmp(a, "--cancel") == 0) {
			c.cancel_frac = atof(v);
		} else if (strcmp(a, "--chat") == 0) {
			c.chat_frac = atof(v);
		} else if (strcmp(a, "--out") == 0) {
			if (sscanf(v, "%d:%d", &c.min_out, &c.max_out) != 2) {
				usage();
				return 2;
			}
		} else if (strcmp(a, "--prompts") == 0) {
			if (sscanf(v, "%d:%d:%d", &c.mix[0], &c.mix[1], &c.mix[2]) != 3) {
				usage();
				return 2;
			}
		} else if (strcmp(a, "--timeout") == 0) {
			c.timeout_s = atof(v);
		} else if (strcmp(a, "--slo-ttft") == 0) {
			c.slo_ttft_ms = atof(v);
		} else if (strcmp(a, "--slo-tpot") == 0) {
			c.slo_tpot_ms = atof(v);
		} else if (strcmp(a, "--slo-e2el") == 0) {
			c.slo_e2el_ms = atof(v);
		} else if (strcmp(a, "--phases") == 0) {
			c.phases = v;
		} else if (strcmp(a, "--soak") == 0) {
			c.soak_s = atof(v);
		} else if (strcmp(a, "--pid") == 0) {
			c.pid = atoi(v);
		} else if (strcmp(a, "--seed") == 0) {
			c.seed = (unsigned)atol(v);
		} else {
			usage();
			return 2;
		}
	}
	/* Bounds on everything, so that no option makes it run away. */
	if (c.duration_s <= 0 || c.duration_s > 86400 || c.max_requests <= 0 ||
	    c.max_requests > MAX_RESULTS || c.clients < 1 || c.clients > 1024 || c.rate <= 0 ||
	    c.rate > 10000 || c.max_inflight < 1 || c.max_inflight > 1024 || c.min_out < 1 ||
	    c.max_out < c.min_out || c.max_out > 4096 || c.mix[0] < 0 || c.mix[1] < 0 ||
	    c.mix[2] < 0 || c.mix[0] > 1000 || c.mix[1] > 1000 || c.mix[2] > 1000 ||
	    c.mix[0] + c.mix[1] + c.mix[2] == 0 || c.timeout_s <= 0 || c.timeout_s > 3600 ||
	    c.soak_s < 0 || c.soak_s > 86400 || (c.soak_s > 0 && c.pid <= 0)) {
		fprintf(stderr, "loadtest: option out of range\n");
		usage();
		return 2;
	}
	cfg = &c;
	ph.res = calloc(MAX_RESULTS, sizeof *ph.res);
	ph.itl = calloc(MAX_ITL, sizeof *ph.itl);
	if (!ph.res || !ph.itl) {
		fprintf(stderr, "loadtest: out of memory\n");
		return 1;
	}
	pthread_mutex_init(&ph.mu, NULL);
	/* The soak checks read the daemon's KV gauges; the phases need only
	 * the OpenAI endpoints, so other servers (llama-server, vLLM) can be
	 * measured with the same client. */
	if (!read_kv(&base) && c.soak_s > 0) {
		fprintf(stderr, "loadtest: no /metrics at http://%s:%d (the soak needs it)\n",
		        c.host, c.port);
		return 1;
	}
	printf(
	    "loadtest: http://%s:%d, model %s, out %d..%d tokens, stream %.0f%% (%.0f%% of them "
	    "hung up after 1-4 chunks), chat %.0f%%, prompts short/medium/long ~%d/%d/%d words\n",
	    c.host, c.port, c.model ? c.model : "(default)", c.min_out, c.max_out,
	    c.stream_frac * 100, c.cancel_frac * 100, c.chat_frac * 100, class_words[0],
	    class_words[1], class_words[2]);
	if (c.soak_s > 0) {
		rc = soak(&ph, &base) ? 1 : 0;
	} else {
		if (strstr(c.phases, "closed")) {
			char name[64];
			snprintf(name, sizeof name, "closed loop, %d clients", c.clients);
			ph.n_res = ph.n_itl = ph.dropped = 0;
			run_closed(&ph, c.duration_s, c.seed);
			unexpected += report(name, &ph);
		}
		if (strstr(c.phases, "open")) {
			char name[64];
			snprintf(name, sizeof name, "open loop, Poisson %.1f req/s", c.rate);
			ph.n_res = ph.n_itl = ph.dropped = 0;
			run_open(&ph, c.duration_s, c.seed);
			unexpected += report(name, &ph);
		}
		if (unexpected)
			printf("loadtest: %ld unexpected responses (figures above)\n", unexpected);
	}
	free(ph.res);
	free(ph.itl);
	return rc;
}
