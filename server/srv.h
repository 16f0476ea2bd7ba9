/*
 * srv.h — the daemon's internal state, shared by loop.c (libuv: signals,
 * timers, engine wakeups, shutdown), http.c (libmicrohttpd glue: routing,
 * limits, auth, streaming) and models.c (loading resident models).
 *
 * Threading: everything in srv and srv_req is touched on the loop thread
 * only, except srv_model.loaded / srv.load_* (written by the loader thread,
 * read with atomics), srv.wake (uv_async_send from engine and prep threads)
 * and srv.prep (prep.c: its queue and done list are guarded by prep.mu).
 * libmicrohttpd runs in external-polling mode on the loop thread, so its
 * callbacks run there too: no locks guard connection state.
 */
#ifndef SRV_SRV_H
#define SRV_SRV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <microhttpd.h>
#include <uv.h>

#include "api.h"
#include "auth.h"
#include "config.h"
#include "metrics.h"
#include "resp_store.h"

/* Each client socket's send buffer (SO_SNDBUF; the kernel doubles it):
 * large enough for any token stream's rate, small enough that a slow
 * reader's progress shows as writes (conn.c). */
#define SRV_SNDBUF_BYTES (128 * 1024)

typedef struct srv srv;
typedef struct srv_req srv_req;
typedef struct srv_job srv_job;
typedef struct srv_conn srv_conn;

/* Where a connection is in its current request (conn.c). */
typedef enum {
	SRV_CONN_HEADERS, /* waiting for a complete request head */
	SRV_CONN_BODY,    /* head read, body (if any) arriving */
	SRV_CONN_BUSY,    /* request complete: preparing, generating, replying */
} srv_conn_phase;

/* One accepted connection (MHD's socket context), loop thread only. */
struct srv_conn {
	int fd;
	struct sockaddr_storage addr; /* the client's address */
	srv_conn_phase phase;
	uint64_t deadline_ns;      /* HEADERS/BODY: shut down at this time */
	uint64_t rx_mark;          /* HEADERS: bytes received when it began, or ~0 */
	uint64_t served;           /* requests answered on it */
	bool chunked;              /* BODY: chunked upload (stall watch) */
	uint64_t body_seen;        /* BODY: bytes the access handler received */
	uint64_t stall_seen;       /* body_seen at the last sweep */
	int stall_ticks;           /* sweeps without progress, bytes unread */
	bool closing;              /* shut down by a deadline, MHD not done yet */
	struct MHD_Connection *mc; /* MHD's connection (valid until closed) */
	char req_id[64];           /* X-Request-Id of its current request */
	int answered;              /* status conn.c wrote itself, 0 = none */
	bool peer_hup;             /* the sweep saw the client hang up mid-request */
	srv_conn *prev, *next;
};

typedef struct {
	const cfg_model *cfg;    /* borrowed from srv.cfg */
	mllm_model *model;       /* owned (set by the loader thread) */
	mllm_engine *engine;     /* owned */
	api_chat_template *tmpl; /* owned; built from cfg before loading */
	api_model_info info;     /* what api/ sees; valid once loaded */
	atomic_bool loaded;      /* engine running: requests may route here */
	srv_model_hists hist;    /* its latencies (loop thread) */
	srv *s;
} srv_model;

/* One HTTP request (MHD's per-request context). */
struct srv_req {
	srv *s;
	struct MHD_Connection *conn;
	char id[64];        /* log/X-Request-Id: api id or "req-<16 hex>" */
	char client_id[72]; /* the client's X-Request-Id (logged), "" if none */
	char method[8];
	char path[96];    /* truncated copy of the raw path, for the log line */
	char *target;     /* owned: the raw request target (URI log callback) */
	char *rpath;      /* owned: its path (no query), what routes */
	bool started;     /* the access handler has seen the request head */
	bool must_close;  /* answer with Connection: close (framing errors) */
	bool http10;      /* an HTTP/1.0 request (closed after its answer) */
	srv_conn *sc;     /* the connection's state (conn.c) */
	int route;        /* http.c's route index, -1 = none */
	int status;       /* response status once queued, 0 before */
	int early_status; /* error decided before the body was read */
	api_error early_err;
	bool cors_ok; /* Origin allowed: echo CORS headers */
	char *origin; /* owned copy of the Origin header */
	mllm_buf body;
	bool body_too_large;
	bool answer_now;    /* early 413 sent before reading the body */
	uint64_t body_seen; /* body bytes received (kept or dropped) */
	uint64_t t_start_ns;

	/* Generation (completions/chat), else NULL. */
	api_request *areq;
	srv_model *m;
	mllm_request **ereqs; /* [n_ereqs], owned references */
	int32_t n_ereqs;
	bool gen_open; /* submitted: counted in srv.n_gen_open */
	bool streaming;
	bool suspended;
	bool finished;       /* api_request_end done: out is complete */
	bool cancelled;      /* client went away or shutdown abort */
	bool shutdown_cut;   /* cancelled by the shutdown timeout */
	int end_status;      /* what api_request_end returned */
	mllm_buf out;        /* bytes not yet handed to MHD */
	size_t out_off;      /* bytes of out already handed over */
	uint64_t t_first_ns; /* first generated token seen (0 = none) */
	uint64_t *t_last_ns; /* [n_ereqs * n] last token per choice */
	int32_t n_choices;   /* per submit (OpenAI n) */
	uint64_t prompt_tokens, completion_tokens, cached_tokens;

	/* Preparation off the loop (prep.c). While job is set the request
	 * is suspended and counted in srv.n_prep_open; the job is owned by
	 * the prep queue until it comes back, then by the request (prepared)
	 * until the next access callback consumes it. */
	srv_job *job;      /* borrowed: in the prep queue or running */
	srv_job *prepared; /* owned: back from the prep thread, unread */
	bool prep_open;    /* counted in srv.n_prep_open until answered */
	bool open;         /* counted in srv.n_req_open until MHD completes it */
	bool prep_aborted; /* shutdown timeout hit while it was queued */
	/* The srv.preparing list (while job is set). */
	srv_req *prep_prev, *prep_next;

	uv_poll_t *watch; /* peer-hangup watch while generating; owned,
	                   * freed by its close callback */
	bool peer_gone;   /* the client hung up before the response */

	srv_req *prev, *next; /* the active-generation list */
};

/* What a prep thread does for one request. */
typedef enum {
	SRV_JOB_GENERATE = 1, /* api_request_parse + model lookup + _prepare */
	SRV_JOB_TOKENIZE,     /* api_handle_tokenize */
	SRV_JOB_DETOKENIZE,   /* api_handle_detokenize */
	SRV_JOB_INPUT_TOKENS, /* a Responses body parsed and prepared, only counted */
} srv_job_kind;

/*
 * One unit of per-request CPU work (JSON parse, chat template,
 * tokenization), done on a prep thread so the loop never runs it (STYLE D1).
 * Ownership: the loop fills the inputs and hands the job to the prep queue
 * (srv__prep_submit); from then on a prep thread owns it until it appends it
 * to the done list, and the loop owns it again once it takes that list. The
 * prep thread never touches the srv_req: `r` is read and written on the loop
 * only, and set to NULL when the request goes away first (client gone,
 * shutdown), in which case the loop frees the job when it comes back.
 */
struct srv_job {
	/* Inputs: set by the loop before submit, read-only afterwards. */
	srv_job_kind kind;
	api_kind akind; /* SRV_JOB_GENERATE: completions or chat */
	srv *s;
	mllm_buf body; /* owned: taken from the request */

	/* Loop only. */
	srv_req *r; /* the request waiting for it; NULL once it went away */

	/* Set by the loop (detach: client gone, shutdown) and read by the
	 * prep thread: skip work nobody will read, and stop tokenizing
	 * between words (mllm_tokenizer_cancel_watch). */
	atomic_bool cancelled;

	/* Results: written by the prep thread, read by the loop after the
	 * handoff through prep.mu. */
	int status;          /* 0 (generate: ready to submit) or the HTTP status */
	api_error err;       /* when status is an error */
	api_request *areq;   /* owned; generate: set once the body parsed */
	srv_model *m;        /* generate: the model found (may fail prepare) */
	mllm_buf out;        /* tokenize/detokenize: the 200 body */
	const char *loading; /* tokenize/detokenize: the id of a model named
	                      * that is still loading (its config's) */

	srv_job *next; /* queue / done-list link, under prep.mu */
};

/* The prep threads and their queue (prep.c). */
typedef struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;    /* queue not empty, or stop */
	srv_job *head, *tail; /* submitted, not yet taken by a thread */
	srv_job *done;        /* finished, for the loop (any order) */
	int n_queued;         /* jobs in head..tail */
	bool stop;            /* threads exit; queued jobs are left behind */
	bool inited;          /* mu and cv exist */
	pthread_t *threads;   /* [n_threads] */
	int n_threads;        /* started (joined by srv__prep_stop) */
} srv_prep;

struct srv {
	const cfg_t *cfg;
	srv_auth auth;
	api_limits lim;
	srv_metrics metrics;
	srv_resp_store *responses; /* /v1/responses records (locked inside) */
	srv_model *models;         /* [n_models] */
	size_t n_models;
	int64_t started_unix;

	uv_loop_t *loop;
	uv_poll_t mhd_poll;
	uv_timer_t mhd_timer;
	uv_async_t wake; /* engine notify + loader done + prep done */
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t shutdown_timer;

	struct MHD_Daemon *mhd;
	MHD_socket listen_fd; /* after quiesce: ours to close */
	uint16_t port;
	uint64_t n_conn_closed; /* connections closed so far (MHD rounds) */
	srv_conn *conns;        /* every open connection (conn.c) */
	int n_conns;
	uint64_t next_sweep_ns; /* earliest deadline to check; 0 = none */

	srv_req *active;    /* generations still producing */
	int n_gen_open;     /* generations whose connection is open */
	srv_req *preparing; /* requests whose job is in the prep queue */
	int n_prep_open;    /* requests handed to prep and not yet answered */
	int n_req_open;     /* requests whose head is in and whose answer is
	                     * not all sent: what a shutdown waits for */
	srv_prep prep;
	uint64_t next_req;
	uint64_t req_key; /* mixes next_req into ids unique across replicas */

	/* Loader thread. */
	pthread_t loader;
	bool loader_started;
	atomic_int load_state;  /* 0 loading, 1 ready, -1 failed, 2 stopped by
	                         * a shutdown before every model loaded */
	atomic_bool load_abort; /* shutdown began: load no further model */
	bool ready_seen;        /* loop thread processed the load result */

	/* Shutdown. */
	int n_signals;
	bool draining; /* lame duck (drain_delay_ms) or later: not ready */
	bool stopping; /* quiesced: finishing in-flight requests */
	bool aborted;  /* shutdown timeout hit: streams cancelled */
	bool stopped;  /* MHD stopped, handles closing */
	int exit_code;
};

/* ---- http.c ------------------------------------------------------------ */

/* Starts MHD in external epoll mode, listening on cfg host:port. */
int srv__http_start(srv *s, char *err, size_t errlen);
/* One round of MHD work and a re-armed timeout (call from uv callbacks
 * only, never from inside an MHD callback). */
void srv__http_run(srv *s);
/* Drains engine events of every active generation (loop thread). */
void srv__http_pump(srv *s);
/* Ends every active generation with a 503 "shutting down" error. */
void srv__http_abort_all(srv *s);
/* MHD's epoll fd, for the loop's uv_poll. */
int srv__http_epoll_fd(srv *s);
/* Binds a fresh TCP socket to sa (its port, or port 0 when !with_port: is
 * the address this machine's at all?) and closes it: 0 or the errno. */
int srv__bind_probe(const struct sockaddr *sa, socklen_t len, bool with_port);
/* Resumes every suspended generation (before MHD_stop_daemon). */
void srv__http_resume_all(srv *s);
/* Stops MHD (closing every connection) and closes the quiesced socket. */
void srv__http_stop(srv *s);
/* Takes the prep threads' finished jobs and resumes their requests (loop
 * thread, from the wake callback). */
void srv__http_prep_drain(srv *s);
/* Requests still generating or waiting for preparation: shutdown waits
 * until none are left. */
int srv__http_n_in_flight(const srv *s);

/* ---- conn.c ------------------------------------------------------------ */

/* MHD's accept policy: false (close at once) when max_connections are open
 * or the client's address holds max_connections_per_client. */
bool srv__conn_admit(srv *s, const struct sockaddr *addr, socklen_t addrlen);
/* A connection started (MHD notify): tracked, its header deadline set. */
srv_conn *srv__conn_open(srv *s, struct MHD_Connection *mc);
void srv__conn_close(srv *s, srv_conn *c);
/* Enters a phase: HEADERS and BODY start their deadline, BUSY has none. */
void srv__conn_phase(srv *s, srv_conn *c, srv_conn_phase ph);
/* Shuts down connections past their deadline, and chunked uploads stuck on
 * an over-long chunk line (answered 400). Cheap when nothing is due. */
void srv__conn_sweep(srv *s);
/* Answers a connection that the access handler has not answered (headers
 * or body phase) with a JSON error written straight to the socket (status
 * 400, 408 or 413, with X-Request-Id, Date and Connection: close), then
 * shuts it down: MHD sees the closed socket and frees it. */
void srv__conn_refuse(srv *s, srv_conn *c, int status, const char *code, const char *msg);
/* Milliseconds until the sweep has something to check; -1 = nothing. */
int64_t srv__conn_sweep_in_ms(const srv *s);

/* ---- prep.c ------------------------------------------------------------ */

/* Starts cfg->prep_threads prep threads. On failure the ones started keep
 * running until srv__prep_stop(). */
int srv__prep_start(srv *s, char *err, size_t errlen) MLLM_WUR;
/* Queues a job (loop thread). Returns 0, or MLLM_ESHUTDOWN once stopping,
 * or MLLM_EOVERLOADED when max_connections jobs are already queued (one
 * per suspended connection at most, so that is a bound, never a wait).
 * On failure the caller still owns the job. */
int srv__prep_submit(srv *s, srv_job *job) MLLM_WUR;
/* Takes every finished job (loop thread), linked through ->next. */
srv_job *srv__prep_take_done(srv *s);
/* Stops and joins the prep threads (a running job finishes first), then
 * frees every job still queued or done: call it only once no request
 * points at a job (srv_req.job cleared). Accepts a never-started srv. */
void srv__prep_stop(srv *s);
/* Frees a job and everything it owns (NULL is fine). */
void srv__job_free(srv_job *j);

/* ---- models.c ---------------------------------------------------------- */

/* Builds every model's chat template from cfg (fast, main thread). */
int srv__models_init(srv *s, char *err, size_t errlen);
/* Starts the loader thread: opens each model, starts its engine, then sets
 * load_state and wakes the loop. Once load_abort is set it loads no further
 * model (load_state 2). */
int srv__models_load_async(srv *s, char *err, size_t errlen);
/* Joins the loader thread if it was started and not yet joined. The loop
 * calls it as soon as load_state is set (the thread is then returning), so a
 * finished loader never outlives loading, not even across an immediate
 * _exit() on a second signal. */
void srv__models_join_loader(srv *s);
/* Before an _exit() while the loader may still be opening a model (it
 * cannot be interrupted): lets it go unjoined. */
void srv__models_detach_loader(srv *s);
/* Joins the loader, stops engines, closes models. */
void srv__models_free(srv *s);
srv_model *srv__model_find(srv *s, const char *id);

/* ---- loop.c ------------------------------------------------------------ */

/* Runs the daemon until SIGTERM/SIGINT (or a load failure). cfg must be
 * validated and outlive the call. Returns the process exit code: 0 after a
 * clean shutdown, 1 when listening or loading failed. */
int srv_run(const cfg_t *cfg);

#endif
