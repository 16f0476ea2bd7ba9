/*
 * test_conn.c — server/conn.c, white-box and without libmicrohttpd: the
 * accept policy (max_connections, max_connections_per_client, addresses
 * compared by IP with IPv4-mapped IPv6 as IPv4), the deadlines each phase
 * sets, and what the sweep does to a connection past its deadline or stuck
 * on an over-long chunk line (on a socketpair: the bytes the client would
 * read, then EOF). Deadlines are moved into the past by hand, so nothing
 * here waits or measures time. The daemon-level attacks are in
 * tests/integration/test_serve_harden.sh.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "../../server/conn.c"

typedef struct {
	srv s;
	cfg_t cfg;
} fixture;

static void fixture_open(fixture *f, int max_conn, int per_client)
{
	memset(f, 0, sizeof *f);
	cfg_init(&f->cfg);
	f->cfg.max_connections = max_conn;
	f->cfg.max_connections_per_client = per_client;
	f->s.cfg = &f->cfg;
}

static void fixture_close(fixture *f)
{
	while (f->s.conns) {
		if (f->s.conns->fd >= 0)
			close(f->s.conns->fd);
		srv__conn_close(&f->s, f->s.conns);
	}
	ck_assert_int_eq(f->s.n_conns, 0);
	cfg_free(&f->cfg);
}

static struct sockaddr_storage v4(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;
	memset(&ss, 0, sizeof ss);
	a->sin_family = AF_INET;
	a->sin_port = htons(40000);
	ck_assert_int_eq(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
	memset(&ss, 0, sizeof ss);
	a->sin6_family = AF_INET6;
	a->sin6_port = htons(40001);
	ck_assert_int_eq(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
	return ss;
}

/* What srv__conn_open does once MHD has given the fd and address. */
static srv_conn *add(fixture *f, struct sockaddr_storage a, int fd)
{
	srv_conn *c = xcalloc(1, sizeof *c);
	c->fd = fd;
	c->addr = a;
	c->next = f->s.conns;
	if (f->s.conns)
		f->s.conns->prev = c;
	f->s.conns = c;
	f->s.n_conns++;
	srv__conn_phase(&f->s, c, SRV_CONN_HEADERS);
	return c;
}

static bool admit(fixture *f, struct sockaddr_storage a)
{
	return srv__conn_admit(&f->s, (struct sockaddr *)&a, sizeof a);
}

START_TEST(test_admit)
{
	fixture f;

	fixture_open(&f, 5, 2);
	ck_assert(admit(&f, v4("10.0.0.1")));
	add(&f, v4("10.0.0.1"), -1);
	ck_assert(admit(&f, v4("10.0.0.1")));
	add(&f, v4("10.0.0.1"), -1);
	/* A third from the same IP (any port) is over the per-client cap,
	 * also when it arrives as IPv4-mapped IPv6. */
	ck_assert(!admit(&f, v4("10.0.0.1")));
	ck_assert(!admit(&f, v6("::ffff:10.0.0.1")));
	ck_assert_uint_eq(f.s.metrics.connections_refused, 2);
	/* Other addresses are not. */
	ck_assert(admit(&f, v4("10.0.0.2")));
	add(&f, v4("10.0.0.2"), -1);
	ck_assert(admit(&f, v6("2001:db8::1")));
	add(&f, v6("2001:db8::1"), -1);
	ck_assert(admit(&f, v6("2001:db8::2")));
	add(&f, v6("2001:db8::2"), -1);
	/* Five open: nobody else, whatever the address. */
	ck_assert_int_eq(f.s.n_conns, 5);
	ck_assert(!admit(&f, v4("10.0.0.9")));
	ck_assert(!admit(&f, v6("2001:db8::9")));
	ck_assert_uint_eq(f.s.metrics.connections_refused, 4);
	/* One closes: room again. */
	srv__conn_close(&f.s, f.s.conns);
	ck_assert(admit(&f, v4("10.0.0.9")));
	fixture_close(&f);
}
END_TEST

START_TEST(test_phase_deadlines)
{
	fixture f;
	srv_conn *c;
	uint64_t t0;

	fixture_open(&f, 8, 8);
	f.cfg.header_timeout_ms = 2000;
	f.cfg.body_timeout_ms = 50000;
	t0 = mllm_now_ns();
	c = add(&f, v4("10.0.0.1"), -1);
	ck_assert_int_eq(c->phase, SRV_CONN_HEADERS);
	ck_assert_uint_ge(c->deadline_ns, t0 + 2000ull * 1000000ull);
	ck_assert_uint_lt(c->deadline_ns, t0 + 50000ull * 1000000ull);
	/* The sweep comes before the deadline: it also looks for clients
	 * that hung up mid-request (PEER_SWEEP_MS). */
	ck_assert_uint_le(f.s.next_sweep_ns, c->deadline_ns);
	ck_assert_int_le(srv__conn_sweep_in_ms(&f.s), PEER_SWEEP_MS);
	srv__conn_phase(&f.s, c, SRV_CONN_BODY);
	ck_assert_uint_ge(c->deadline_ns, t0 + 50000ull * 1000000ull);
	/* Busy (preparing, generating, replying): no deadline. */
	srv__conn_phase(&f.s, c, SRV_CONN_BUSY);
	ck_assert_uint_eq(c->deadline_ns, 0);
	fixture_close(&f);
}
END_TEST

/* Everything the client side of a socketpair can read (non-blocking). */
static size_t drain(int fd, char *buf, size_t cap, bool *eof)
{
	size_t n = 0;
	*eof = false;
	for (;;) {
		ssize_t k = recv(fd, buf + n, cap - 1 - n, MSG_DONTWAIT);
		if (k == 0) {
			*eof = true;
			break;
		}
		if (k < 0)
			break;
		n += (size_t)k;
	}
	buf[n] = '\0';
	return n;
}

START_TEST(test_sweep_deadlines)
{
	fixture f;
	int hp[2], bp[2], busy[2];
	srv_conn *ch, *cb, *cbusy;
	char buf[2048];
	bool eof;

	fixture_open(&f, 8, 8);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, hp), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, bp), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, busy), 0);
	ch = add(&f, v4("10.0.0.1"), hp[0]);
	cb = add(&f, v4("10.0.0.2"), bp[0]);
	srv__conn_phase(&f.s, cb, SRV_CONN_BODY);
	cbusy = add(&f, v4("10.0.0.3"), busy[0]);
	srv__conn_phase(&f.s, cbusy, SRV_CONN_BUSY);

	/* Nothing due: the sweep does nothing. */
	srv__conn_sweep(&f.s);
	ck_assert(!ch->closing && !cb->closing);
	ck_assert_uint_eq(f.s.metrics.connections_timed_out, 0);

	/* Both deadlines pass (moved into the past, not waited for). */
	ch->deadline_ns = cb->deadline_ns = 1;
	f.s.next_sweep_ns = 1;
	srv__conn_sweep(&f.s);
	ck_assert(ch->closing && cb->closing && !cbusy->closing);
	ck_assert_uint_eq(f.s.metrics.connections_timed_out, 2);
	/* Headers phase: closed without an answer. */
	ck_assert_uint_eq(drain(hp[1], buf, sizeof buf, &eof), 0);
	ck_assert(eof);
	/* Body phase: a 408 with an error body, then EOF. */
	drain(bp[1], buf, sizeof buf, &eof);
	ck_assert(eof);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 408 Request Timeout\r\n", 30) == 0, "%s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "Connection: close\r\n"));
	ck_assert_ptr_nonnull(strstr(buf, "\"code\":\"request_timeout\""));
	/* The busy one was left alone; nothing else is due. */
	ck_assert_uint_eq(drain(busy[1], buf, sizeof buf, &eof), 0);
	ck_assert(!eof);
	ck_assert_int_eq(srv__conn_sweep_in_ms(&f.s), -1);

	close(hp[1]);
	close(bp[1]);
	close(busy[1]);
	fixture_close(&f);
}
END_TEST

/* A connection in its headers phase past header_timeout_ms with nothing
 * sent since it began (kept alive after an answer, or never used) is
 * counted as idle, not as a timed-out request. Over TCP the kernel's count
 * of received bytes says so; on other sockets, whether it answered one. */
static void tcp_pair(int *srv_fd, int *cli_fd)
{
	struct sockaddr_in a;
	socklen_t n = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(l, 4), 0);
	ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &n), 0);
	*cli_fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(*cli_fd, (struct sockaddr *)&a, sizeof a), 0);
	*srv_fd = accept(l, NULL, NULL);
	ck_assert_int_ge(*srv_fd, 0);
	close(l);
}

START_TEST(test_sweep_idle)
{
	fixture f;
	int up[2], peer[2], quiet_s, quiet_c, talk_s, talk_c;
	srv_conn *fresh, *kept, *tq, *tt;

	fixture_open(&f, 8, 8);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, up), 0);
	/* Not TCP: a connection that answered a request is idle, a fresh one
	 * timed out (its headers may be dripping). */
	fresh = add(&f, v4("10.0.0.1"), up[0]);
	peer[0] = up[1];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, up), 0);
	kept = add(&f, v4("10.0.0.2"), up[0]);
	peer[1] = up[1];
	srv__conn_phase(&f.s, kept, SRV_CONN_BUSY);
	srv__conn_phase(&f.s, kept, SRV_CONN_HEADERS);
	ck_assert_uint_eq(kept->served, 1);
	/* TCP: one that sent nothing in its headers phase, one that sent a
	 * partial request head after it began. */
	tcp_pair(&quiet_s, &quiet_c);
	tcp_pair(&talk_s, &talk_c);
	tq = add(&f, v4("10.0.0.3"), quiet_s);
	tt = add(&f, v4("10.0.0.4"), talk_s);
	ck_assert_int_eq(send(talk_c, "GET / HT", 8, 0), 8);
	usleep(20000); /* loopback: there at once; a margin anyway */
	/* one at a time: each lands in its own counter */
	{
		srv_conn *order[] = {fresh, kept, tq, tt};
		const bool idle[] = {false, true, true, false};
		for (int i = 0; i < 4; i++) {
			uint64_t i0 = f.s.metrics.connections_idle_closed;
			uint64_t t0 = f.s.metrics.connections_timed_out;
			order[i]->deadline_ns = 1;
			f.s.next_sweep_ns = 1;
			srv__conn_sweep(&f.s);
			ck_assert(order[i]->closing);
			ck_assert_msg(
			    f.s.metrics.connections_idle_closed - i0 == (idle[i] ? 1u : 0u) &&
			        f.s.metrics.connections_timed_out - t0 == (idle[i] ? 0u : 1u),
			    "connection %d", i);
		}
	}
	close(quiet_c);
	close(talk_c);
	close(peer[0]);
	close(peer[1]);
	fixture_close(&f);
}
END_TEST

START_TEST(test_sweep_chunk_stall)
{
	fixture f;
	int sp[2];
	srv_conn *c;
	char buf[2048];
	bool eof;

	fixture_open(&f, 8, 8);
	f.cfg.body_timeout_ms = 600000;
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	c = add(&f, v4("10.0.0.1"), sp[0]);
	c->chunked = true;
	srv__conn_phase(&f.s, c, SRV_CONN_BODY);
	/* The sweep is wanted soon for a chunked upload. */
	ck_assert_int_le(srv__conn_sweep_in_ms(&f.s), STALL_SWEEP_MS);

	/* Progress (the access handler got bytes) resets the count even
	 * with bytes unread. */
	ck_assert_int_eq(send(sp[1], "5;xxxxxxxx", 10, 0), 10);
	for (int i = 0; i < 2 * STALL_SWEEPS; i++) {
		c->body_seen += 1;
		f.s.next_sweep_ns = 1;
		srv__conn_sweep(&f.s);
	}
	ck_assert(!c->closing);
	/* No progress but nothing unread either: a slow client, not a stall. */
	{
		char tmp[16];
		ck_assert_int_eq(recv(sp[0], tmp, sizeof tmp, 0), 10);
	}
	for (int i = 0; i < 2 * STALL_SWEEPS; i++) {
		f.s.next_sweep_ns = 1;
		srv__conn_sweep(&f.s);
	}
	ck_assert(!c->closing);
	/* Bytes waiting that nobody takes, STALL_SWEEPS times: 400. */
	ck_assert_int_eq(send(sp[1], "5;yyyyyyyy", 10, 0), 10);
	for (int i = 0; i < STALL_SWEEPS; i++) {
		ck_assert(!c->closing);
		f.s.next_sweep_ns = 1;
		srv__conn_sweep(&f.s);
	}
	ck_assert(c->closing);
	drain(sp[1], buf, sizeof buf, &eof);
	ck_assert(eof);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26) == 0, "%s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "\"code\":\"invalid_chunk\""));
	close(sp[1]);
	fixture_close(&f);
}
END_TEST

/* A client that hung up mid-request (its side shut, nothing unread) is let
 * go by the next sweep, without an answer; one whose bytes still wait for
 * MHD is not (they may complete the request). */
START_TEST(test_sweep_peer_gone)
{
	fixture f;
	int a[2], b[2];
	srv_conn *ca, *cb;
	char buf[64];
	bool eof;

	fixture_open(&f, 8, 8);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	ca = add(&f, v4("10.0.0.1"), a[0]);
	cb = add(&f, v4("10.0.0.2"), b[0]);
	srv__conn_phase(&f.s, cb, SRV_CONN_BODY);
	f.s.next_sweep_ns = 1;
	srv__conn_sweep(&f.s);
	ck_assert(!ca->closing && !cb->closing);
	ck_assert_int_le(srv__conn_sweep_in_ms(&f.s), PEER_SWEEP_MS);
	/* a: shut down with nothing unread; b: bytes left unread, then shut. */
	ck_assert_int_eq(shutdown(a[1], SHUT_WR), 0);
	ck_assert_int_eq(send(b[1], "{\"pro", 5, 0), 5);
	ck_assert_int_eq(shutdown(b[1], SHUT_WR), 0);
	f.s.next_sweep_ns = 1;
	srv__conn_sweep(&f.s);
	ck_assert(ca->closing);
	ck_assert(!cb->closing);
	ck_assert_uint_eq(drain(a[1], buf, sizeof buf, &eof), 0); /* no answer */
	ck_assert(eof);
	/* Once the bytes are read (by MHD), b goes too. */
	ck_assert_int_eq(recv(b[0], buf, sizeof buf, 0), 5);
	f.s.next_sweep_ns = 1;
	srv__conn_sweep(&f.s);
	ck_assert(cb->closing);
	ck_assert_uint_eq(f.s.metrics.connections_timed_out, 0);
	close(a[1]);
	close(b[1]);
	fixture_close(&f);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("conn");
	tcase_add_test(tc, test_admit);
	tcase_add_test(tc, test_phase_deadlines);
	tcase_add_test(tc, test_sweep_deadlines);
	tcase_add_test(tc, test_sweep_idle);
	tcase_add_test(tc, test_sweep_chunk_stall);
	tcase_add_test(tc, test_sweep_peer_gone);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
