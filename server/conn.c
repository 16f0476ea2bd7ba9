/*
 * conn.c — what one connection may hold, whatever it sends: admission caps
 * at accept (max_connections, max_connections_per_client) and per-request
 * deadlines that activity does not extend (headers within header_timeout_ms,
 * the body within body_timeout_ms). libmicrohttpd's own timeout is an idle
 * timeout that every byte resets, so a client dripping a byte every few
 * seconds would hold its slot forever (slowloris); and past its connection
 * limit MHD stops accepting, leaving new clients unanswered in the kernel's
 * backlog. So MHD is given a limit it never reaches, our accept policy
 * refuses (closes at once) what is over our caps, and a sweep on the loop
 * thread shuts down connections whose deadline passed; MHD then sees the
 * closed socket and frees the connection as it would any other.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "srv.h"

/* A chunked upload whose socket holds unread bytes that MHD does not take
 * for this many sweeps in a row is stuck on a chunk line longer than MHD's
 * buffer (a huge chunk extension): MHD itself would wait for the idle
 * timeout. Sweeps run at least STALL_SWEEP_MS apart while one is watched. */
#define STALL_SWEEPS   3
#define STALL_SWEEP_MS 100

/* A client that sends part of a request and closes at once (the FIN in the
 * same segment as the data): MHD, in external epoll mode, reads the data on
 * that one edge and does not notice the EOF, so the connection would hold
 * its slot until header_timeout_ms / body_timeout_ms. While a connection is
 * reading a request, the sweep looks at its socket this often and lets go
 * of one whose peer has hung up with nothing left unread. */
#define PEER_SWEEP_MS 200

static uint64_t ms_ns(int64_t ms)
{
	return (uint64_t)ms * 1000000ull;
}

/* Same client address (the IP, not the port). IPv4-mapped IPv6 addresses
 * are compared as the IPv4 address they map. */
static bool addr_ip(const struct sockaddr *a, const unsigned char **ip, size_t *len)
{
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;
		*ip = (const unsigned char *)&v4->sin_addr;
		*len = 4;
		return true;
	}
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)a;
		if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
			*ip = (const unsigned char *)&v6->sin6_addr + 12;
			*len = 4;
		} else {
			*ip = (const unsigned char *)&v6->sin6_addr;
			*len = 16;
		}
		return true;
	}
	return false;
}

static bool same_client(const struct sockaddr *a, const struct sockaddr *b)
{
	const unsigned char *ia, *ib;
	size_t la, lb;

	if (!addr_ip(a, &ia, &la) || !addr_ip(b, &ib, &lb))
		return false;
	return la == lb && memcmp(ia, ib, la) == 0;
}

bool srv__conn_admit(srv *s, const struct sockaddr *addr, socklen_t addrlen)
{
	int same = 0;

	(void)addrlen;
	if (s->n_conns >= (int)s->cfg->max_connections) {
		s->metrics.connections_refused++;
		SRV_LOG(MLLM_LOG_DEBUG, "refused a connection: max_connections (%lld) reached",
		        (long long)s->cfg->max_connections);
		return false;
	}
	for (srv_conn *c = s->conns; c; c = c->next)
		if (same_client((const struct sockaddr *)&c->addr, addr))
			same++;
	if (same >= (int)s->cfg->max_connections_per_client) {
		s->metrics.connections_refused++;
		SRV_LOG(MLLM_LOG_DEBUG,
		        "refused a connection: max_connections_per_client (%lld) reached",
		        (long long)s->cfg->max_connections_per_client);
		return false;
	}
	return true;
}

static void want_sweep(srv *s, uint64_t at)
{
	if (s->next_sweep_ns == 0 || at < s->next_sweep_ns)
		s->next_sweep_ns = at;
}

srv_conn *srv__conn_open(srv *s, struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *ci;
	srv_conn *c = xcalloc(1, sizeof *c);

	c->fd = -1;
	c->mc = mc;
	ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci)
		c->fd = ci->connect_fd;
	/* A bounded send buffer: with the kernel's autotuned one (up to
	 * tcp_wmem's 4 MiB) a client reading a long stream slowly left
	 * megabytes queued, the socket unwritable for longer than
	 * connection_timeout_s while it still read, and MHD closed it as idle
	 * mid-stream. Bounded, each write is progress MHD sees; what the
	 * client has not read waits in the stream's outbox, whose own bound
	 * cuts off (and logs) a client that stopped reading. */
	if (c->fd >= 0) {
		int sndbuf = SRV_SNDBUF_BYTES;
		(void)setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	}
	ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr) {
		const struct sockaddr *a = ci->client_addr;
		size_t n = a->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
		                                    : sizeof(struct sockaddr_in);
		memcpy(&c->addr, a, n);
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	srv__conn_phase(s, c, SRV_CONN_HEADERS);
	/* A new connection counts from its first byte: what it sent before
	 * the loop got to it is already its request. */
	if (c->rx_mark != ~(uint64_t)0)
		c->rx_mark = 0;
	return c;
}

void srv__conn_close(srv *s, srv_conn *c)
{
	if (!c)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else if (s->conns == c)
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	free(c);
}

/* Linux's struct tcp_info past the fields glibc's <netinet/tcp.h> knows
 * (up to tcpi_total_retrans): the kernel only ever appends, and says how
 * much it filled in. */
struct tcp_info_ext {
	struct tcp_info base;
	uint64_t pacing_rate, max_pacing_rate, bytes_acked;
	uint64_t bytes_received; /* Linux 4.1 */
};
/* Where Linux has it: a libc whose struct is longer would read another
 * field, so such a build stops here. */
_Static_assert(offsetof(struct tcp_info_ext, bytes_received) == 128,
               "struct tcp_info is not glibc's 104 bytes");

/* Bytes the kernel has received on a TCP socket so far, or ~0 (not TCP, or
 * a kernel without the count). */
static uint64_t rx_bytes(const srv_conn *c)
{
	struct tcp_info_ext ti;
	socklen_t n = sizeof ti;
	memset(&ti, 0, sizeof ti);
	if (c->fd < 0 || getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &n) != 0 || n < sizeof ti)
		return ~(uint64_t)0;
	return ti.bytes_received;
}

void srv__conn_phase(srv *s, srv_conn *c, srv_conn_phase ph)
{
	uint64_t now = mllm_now_ns();

	if (!c)
		return;
	if (ph == SRV_CONN_HEADERS && c->phase == SRV_CONN_BUSY)
		c->served++;
	c->phase = ph;
	c->stall_ticks = 0;
	if (ph == SRV_CONN_HEADERS) {
		c->deadline_ns = now + ms_ns(s->cfg->header_timeout_ms);
		c->chunked = false;
		c->rx_mark = rx_bytes(c);
	} else if (ph == SRV_CONN_BODY) {
		c->deadline_ns = now + ms_ns(s->cfg->body_timeout_ms);
	} else {
		c->deadline_ns = 0;
		return;
	}
	want_sweep(s, c->deadline_ns);
	want_sweep(s, now + ms_ns(c->chunked ? STALL_SWEEP_MS : PEER_SWEEP_MS));
}

/* Answers with a final status written straight to the socket, then shuts it
 * down. Only for a connection in its headers or body phase, before the
 * access handler queued anything: MHD has sent nothing on it then except,
 * perhaps, "100 Continue", so these bytes are the response the client
 * reads. It carries what every response of ours carries (X-Request-Id,
 * Date). The write is best effort (non-blocking; a full socket buffer loses
 * it, and the shutdown still frees the slot). */
static void kill_conn(srv_conn *c, int status, const char *code, const char *msg)
{
	char head[512], date[64];
	mllm_buf body;
	api_error e;
	struct tm tm;
	time_t now = time(NULL);
	int hn;

	if (c->fd < 0 || c->closing)
		return;
	c->closing = true;
	c->answered = status;
	if (status) {
		mllm_buf_init(&body, 4096);
		api_error_set(&e, status, NULL, code, "%s", msg);
		/* RFC 9110 5.6.7 IMF-fixdate; strftime's C-locale names (the
		 * daemon never calls setlocale). */
		if (!gmtime_r(&now, &tm) ||
		    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
			date[0] = '\0';
		if (api_error_render(&e, &body) == 0) {
			hn = snprintf(head, sizeof head,
			              "HTTP/1.1 %d %s\r\n%s%s%sConnection: close\r\n"
			              "X-Request-Id: %s\r\nContent-Type: application/json\r\n"
			              "Content-Length: %zu\r\n\r\n",
			              status,
			              status == 408   ? "Request Timeout"
			              : status == 413 ? "Content Too Large"
			                              : "Bad Request",
			              date[0] ? "Date: " : "", date, date[0] ? "\r\n" : "",
			              c->req_id[0] ? c->req_id : "-", body.len);
			if (hn > 0 && (size_t)hn < sizeof head &&
			    send(c->fd, head, (size_t)hn, MSG_NOSIGNAL | MSG_DONTWAIT) == hn) {
				ssize_t w =
				    send(c->fd, body.data, body.len, MSG_NOSIGNAL | MSG_DONTWAIT);
				(void)w;
			}
		}
		mllm_buf_free(&body);
	}
	shutdown(c->fd, SHUT_RDWR);
}

void srv__conn_refuse(srv *s, srv_conn *c, int status, const char *code, const char *msg)
{
	(void)s;
	if (c && c->phase != SRV_CONN_BUSY)
		kill_conn(c, status, code, msg);
}

/* Whether the kernel holds bytes for this socket that nobody reads. */
static bool unread_bytes(const srv_conn *c)
{
	int n = 0;
	return c->fd >= 0 && ioctl(c->fd, FIONREAD, &n) == 0 && n > 0;
}

/* Whether the client has shut its side (or reset) and the kernel holds
 * nothing more from it: the request being read can never complete. */
static bool peer_gone(const srv_conn *c)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
	if (c->fd < 0 || poll(&p, 1, 0) != 1)
		return false;
	return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) && !unread_bytes(c);
}

void srv__conn_sweep(srv *s)
{
	uint64_t now = mllm_now_ns(), next = 0;

	if (s->next_sweep_ns == 0 || now < s->next_sweep_ns)
		return;
	for (srv_conn *c = s->conns; c; c = c->next) {
		if (c->closing || c->phase == SRV_CONN_BUSY)
			continue;
		if (now >= c->deadline_ns) {
			/* Nothing sent since the last answer (or since accept): a
			 * kept-alive connection nobody reused, not a late request.
			 * Without TCP's count, one that has answered a request. */
			bool idle = c->phase == SRV_CONN_HEADERS &&
			            (c->rx_mark != ~(uint64_t)0 ? rx_bytes(c) == c->rx_mark
			                                        : c->served > 0);
			if (idle)
				s->metrics.connections_idle_closed++;
			else
				s->metrics.connections_timed_out++;
			if (c->phase == SRV_CONN_HEADERS) {
				/* Idle or dripping headers: nothing to answer. */
				kill_conn(c, 0, NULL, NULL);
			} else {
				SRV_LOG_REQ(MLLM_LOG_INFO, c->req_id[0] ? c->req_id : NULL,
				            "closing a connection: body not complete within "
				            "body_timeout_ms");
				kill_conn(c, 408, "request_timeout",
				          "The request body was not complete within the server's "
				          "body_timeout_ms");
			}
			continue;
		}
		if (peer_gone(c)) {
			SRV_LOG_REQ(MLLM_LOG_DEBUG, c->req_id[0] ? c->req_id : NULL,
			            "closing a connection: the client hung up mid-request");
			c->peer_hup = true;
			kill_conn(c, 0, NULL, NULL);
			continue;
		}
		if (c->phase == SRV_CONN_BODY && c->chunked) {
			if (c->body_seen == c->stall_seen && unread_bytes(c)) {
				c->stall_ticks++;
			} else {
				c->stall_ticks = 0;
				c->stall_seen = c->body_seen;
			}
			if (c->stall_ticks >= STALL_SWEEPS) {
				SRV_LOG_REQ(MLLM_LOG_INFO, c->req_id[0] ? c->req_id : NULL,
				            "closing a connection: chunk line too long");
				kill_conn(
				    c, 400, "invalid_chunk",
				    "A chunk-size line (with its extensions) is longer than the "
				    "server accepts");
				continue;
			}
			if (!next || now + ms_ns(STALL_SWEEP_MS) < next)
				next = now + ms_ns(STALL_SWEEP_MS);
		}
		if (!next || c->deadline_ns < next)
			next = c->deadline_ns;
		if (now + ms_ns(PEER_SWEEP_MS) < next)
			next = now + ms_ns(PEER_SWEEP_MS);
	}
	s->next_sweep_ns = next;
}

int64_t srv__conn_sweep_in_ms(const srv *s)
{
	uint64_t now = mllm_now_ns();

	if (s->next_sweep_ns == 0)
		return -1;
	if (s->next_sweep_ns <= now)
		return 0;
	return (int64_t)((s->next_sweep_ns - now + 999999) / 1000000);
}
