/*
 * test_resp_store.c — server/resp_store.c: the count, byte and age limits
 * of the /v1/responses store, LRU order (a get makes a record the most
 * recent), delete, replacement, records bigger than the byte limit, and
 * references that outlive eviction. Records are real ones, made by api/
 * from requests prepared against the fixture tokenizer.
 */
#include "api/api_fixture.h"

#include "resp_store.h"

static void setup(void)
{
	api_fixture_setup(2048, 1700000000);
}

#define NS 1000000000ULL

/* A finished, stored response to input whose output is text. */
static api_resp_record *make_record(const char *input, const char *text)
{
	char body[4096];
	api_limits lim = API_LIMITS_DEFAULT;
	api_request *req = NULL;
	api_resp_record *rec = NULL;
	api_error e;
	mllm_event ev;
	mllm_buf out;
	int status;
	snprintf(body, sizeof body, "{\"input\":\"%s\"}", input);
	ck_assert_int_eq(api_request_parse(API_RESPONSES, body, strlen(body), &lim, &req, &e), 0);
	ck_assert_int_eq(api_request_prepare(req, &model, &e), 0);
	mllm_buf_init(&out, 1 << 20);
	ck_assert_int_eq(api_request_begin(req, &out), 0);
	memset(&ev, 0, sizeof ev);
	ev.kind = MLLM_EV_TOKEN;
	ev.token = 100;
	ev.text = ev.token_text = text;
	ev.text_len = ev.token_text_len = strlen(text);
	ev.token_out = ev.token_text;
	ev.token_out_len = ev.token_text_len;
	ck_assert_int_eq(api_request_feed(req, 0, &ev, &out), 0);
	memset(&ev, 0, sizeof ev);
	ev.kind = MLLM_EV_DONE;
	ev.finish = MLLM_FINISH_STOP;
	ck_assert_int_eq(api_request_feed(req, 0, &ev, &out), 0);
	ck_assert_int_eq(api_request_end(req, &out, &status), 0);
	ck_assert_int_eq(api_request_record(req, &rec), 0);
	ck_assert_ptr_nonnull(rec);
	api_request_free(req);
	mllm_buf_free(&out);
	return rec;
}

static bool has(srv_resp_store *st, const char *id, uint64_t now)
{
	api_resp_record *r = srv_resp_store_get(st, id, now);
	api_resp_record_unref(r);
	return r != NULL;
}

START_TEST(test_count_limit_lru)
{
	srv_resp_store *st;
	srv_resp_store_stats ss;
	char ids[6][64];
	ck_assert_int_eq(srv_resp_store_create(3, 1 << 20, 3600 * NS, &st), 0);
	for (int i = 0; i < 3; i++) {
		api_resp_record *r = make_record("hello", " world");
		snprintf(ids[i], sizeof ids[i], "%s", api_resp_record_id(r));
		ck_assert_int_eq(srv_resp_store_put(st, r, 0), 0);
	}
	/* Reading the oldest makes it the most recent: the next put evicts
	 * the second instead. */
	ck_assert(has(st, ids[0], 1));
	for (int i = 3; i < 5; i++) {
		api_resp_record *r = make_record("hello", " world");
		snprintf(ids[i], sizeof ids[i], "%s", api_resp_record_id(r));
		ck_assert_int_eq(srv_resp_store_put(st, r, 2), 0);
	}
	ck_assert(has(st, ids[0], 3));
	ck_assert(!has(st, ids[1], 3));
	ck_assert(!has(st, ids[2], 3));
	ck_assert(has(st, ids[3], 3));
	ck_assert(has(st, ids[4], 3));
	srv_resp_store_stats_get(st, &ss);
	ck_assert_int_eq(ss.count, 3);
	ck_assert_int_eq(ss.evicted, 2);
	/* Delete, then again: gone. */
	ck_assert(srv_resp_store_delete(st, ids[3], 4));
	ck_assert(!srv_resp_store_delete(st, ids[3], 4));
	ck_assert(!has(st, ids[3], 4));
	srv_resp_store_stats_get(st, &ss);
	ck_assert_int_eq(ss.count, 2);
	srv_resp_store_free(st);
}
END_TEST

START_TEST(test_byte_limit)
{
	srv_resp_store *st;
	srv_resp_store_stats ss;
	api_resp_record *a = make_record("alpha", " one"), *big;
	size_t one = api_resp_record_bytes(a);
	char ida[64], idb[64];
	char input[2048];
	/* Room for two records of this size, not three. */
	ck_assert_int_eq(srv_resp_store_create(100, (int64_t)(2 * one + one / 2), 3600 * NS, &st),
	                 0);
	snprintf(ida, sizeof ida, "%s", api_resp_record_id(a));
	ck_assert_int_eq(srv_resp_store_put(st, a, 0), 0);
	{
		api_resp_record *b = make_record("bravo", " two");
		snprintf(idb, sizeof idb, "%s", api_resp_record_id(b));
		ck_assert_int_eq(srv_resp_store_put(st, b, 0), 0);
	}
	ck_assert_int_eq(srv_resp_store_put(st, make_record("gamma", " six"), 0), 0);
	srv_resp_store_stats_get(st, &ss);
	ck_assert_int_eq(ss.count, 2);
	ck_assert_int_le(ss.bytes, (int64_t)(2 * one + one / 2));
	ck_assert(!has(st, ida, 1));
	ck_assert(has(st, idb, 1));
	/* A record larger than the whole budget is not kept, and evicts
	 * nothing. */
	memset(input, 'x', sizeof input - 1);
	input[sizeof input - 1] = '\0';
	big = make_record(input, " big");
	ck_assert_uint_gt(api_resp_record_bytes(big), 2 * one + one / 2);
	ck_assert_int_eq(srv_resp_store_put(st, big, 1), MLLM_ETOOLONG);
	srv_resp_store_stats_get(st, &ss);
	ck_assert_int_eq(ss.count, 2);
	srv_resp_store_free(st);
}
END_TEST

START_TEST(test_ttl_and_references)
{
	srv_resp_store *st;
	srv_resp_store_stats ss;
	api_resp_record *a = make_record("alpha", " one"), *held;
	char ida[64];
	ck_assert_int_eq(srv_resp_store_create(10, 1 << 20, 10 * NS, &st), 0);
	snprintf(ida, sizeof ida, "%s", api_resp_record_id(a));
	ck_assert_int_eq(srv_resp_store_put(st, a, 0), 0);
	held = srv_resp_store_get(st, ida, 5 * NS);
	ck_assert_ptr_nonnull(held);
	/* Ten seconds after it was made it is gone, but a reference taken
	 * before stays readable until dropped. */
	ck_assert(!has(st, ida, 10 * NS));
	srv_resp_store_stats_get(st, &ss);
	ck_assert_int_eq(ss.count, 0);
	ck_assert_int_eq(ss.evicted, 1);
	ck_assert_str_eq(api_resp_record_id(held), ida);
	api_resp_record_unref(held);
	/* Expired records at the LRU tail go at the next put. */
	ck_assert_int_eq(srv_resp_store_put(st, make_record("a", " b"), 20 * NS), 0);
	ck_assert_int_eq(srv_resp_store_put(st, make_record("c", " d"), 31 * NS), 0);
	srv_resp_store_stats_get(st, &ss);
	ck_assert_int_eq(ss.count, 1);
	/* max_count 0: the store is off. */
	srv_resp_store_free(st);
	ck_assert_int_eq(srv_resp_store_create(0, 1 << 20, NS, &st), 0);
	ck_assert_int_eq(srv_resp_store_put(st, make_record("a", " b"), 0), MLLM_ETOOLONG);
	srv_resp_store_free(st);
	ck_assert_int_eq(srv_resp_store_create(1, 1, 0, &st), MLLM_EINVAL);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("resp_store");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_count_limit_lru);
	tcase_add_test(tc, test_byte_limit);
	tcase_add_test(tc, test_ttl_and_references);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
