/*
 * test_log.c — server/log.c: every byte of a message is escaped so that a
 * client cannot forge a log line or put invalid UTF-8 into the log (control
 * bytes, DEL, backslash, overlong forms, surrogates, truncated sequences),
 * escapes are never cut in half at the buffer's end, and log_format = json
 * writes exactly one parseable JSON object per line. The daemon-level check
 * (paths, models sent by a client) is tests/integration/test_serve_harden.sh.
 */
#include "harness.h"

#include <jansson.h>

#include "../../server/log.c"

static const char *esc(const char *in, size_t n)
{
	static char out[512];
	srv_log_escape(in, n, out, sizeof out);
	return out;
}
#define ESC(lit) esc((lit), sizeof(lit) - 1)

START_TEST(test_escape)
{
	ck_assert_str_eq(ESC("GET /v1/models 200"), "GET /v1/models 200");
	ck_assert_str_eq(ESC("a\nb\rc\td"), "a\\x0ab\\x0dc\\x09d");
	ck_assert_str_eq(ESC("\x1b[31m\x7f"), "\\x1b[31m\\x7f");
	ck_assert_str_eq(ESC("a\\x0a"), "a\\\\x0a"); /* a literal escape stays distinct */
	ck_assert_str_eq(ESC("nul\0end"), "nul\\x00end");
	/* Valid UTF-8 passes through: é, €, U+1F600. */
	ck_assert_str_eq(ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
	                 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	/* Invalid UTF-8, byte by byte. */
	ck_assert_str_eq(ESC("\xff\xfe"), "\\xff\\xfe");
	ck_assert_str_eq(ESC("\xc3("), "\\xc3(");                          /* bad continuation */
	ck_assert_str_eq(ESC("\xc0\xaf"), "\\xc0\\xaf");                   /* overlong '/' */
	ck_assert_str_eq(ESC("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");          /* overlong */
	ck_assert_str_eq(ESC("\xed\xa0\x80"), "\\xed\\xa0\\x80");          /* surrogate */
	ck_assert_str_eq(ESC("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); /* > U+10FFFF */
	ck_assert_str_eq(ESC("\xe2\x82"), "\\xe2\\x82");                   /* truncated */
}
END_TEST

START_TEST(test_escape_bounds)
{
	char out[8];
	size_t n;

	/* "ab" + "\x0a" needs 2 + 4 bytes + NUL = 7: fits in 8. */
	n = srv_log_escape("ab\n", 3, out, sizeof out);
	ck_assert_str_eq(out, "ab\\x0a");
	ck_assert_uint_eq(n, 6);
	/* An escape that does not fit whole is left out, with the rest. */
	n = srv_log_escape("abc\n\n", 5, out, sizeof out);
	ck_assert_str_eq(out, "abc\\x0a");
	ck_assert_uint_eq(n, 7);
	n = srv_log_escape("abcd\nx", 6, out, sizeof out);
	ck_assert_str_eq(out, "abcd");
	ck_assert_uint_eq(n, 4);
	/* Nor is a character split. */
	n = srv_log_escape("abcde\xe2\x82\xac", 8, out, sizeof out);
	ck_assert_str_eq(out, "abcde");
	n = srv_log_escape("x", 1, out, 1);
	ck_assert_str_eq(out, "");
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(srv_log_escape("x", 1, out, 0), 0);
}
END_TEST

/* Logs to a temporary file and returns its lines' count; the file's text
 * goes to buf. */
static int log_to_file(int format, char *buf, size_t cap)
{
	char path[] = "/tmp/mllm_test_log_XXXXXX";
	int fd = mkstemp(path);
	ssize_t n;
	int lines = 0;

	ck_assert_int_ge(fd, 0);
	srv_log_set_format(format);
	ck_assert_int_eq(srv_log_open(MLLM_LOG_DEBUG, path), 0);
	SRV_LOG_REQ(MLLM_LOG_INFO, "req-1", "GET %s 404",
	            "/a\n2026-01-01T00:00:00.000Z info  FORGED");
	SRV_LOG_REQ(MLLM_LOG_WARN, "id\r\nX", "model %s", "\xff\xfe\x1b[2J\"}");
	SRV_LOG(MLLM_LOG_ERROR, "%s", "plain \\ backslash");
	srv_log_close();
	srv_log_set_format(SRV_LOG_TEXT);
	n = pread(fd, buf, cap - 1, 0);
	close(fd);
	unlink(path);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	return lines;
}

START_TEST(test_text_lines)
{
	char buf[4096];

	ck_assert_int_eq(log_to_file(SRV_LOG_TEXT, buf, sizeof buf), 3);
	ck_assert_ptr_null(strstr(buf, "\nFORGED"));
	ck_assert_ptr_null(strstr(buf, "\n2026-01-01"));
	ck_assert_ptr_nonnull(strstr(buf, "/a\\x0a2026-01-01T00:00:00.000Z info  FORGED"));
	ck_assert_ptr_nonnull(strstr(buf, "[id\\x0d\\x0aX] model \\xff\\xfe\\x1b[2J\"}"));
	ck_assert_ptr_nonnull(strstr(buf, "plain \\\\ backslash"));
	for (const char *p = buf; *p; p++)
		ck_assert(*p == '\n' || ((unsigned char)*p >= 0x20 && *p != 0x7f));
}
END_TEST

START_TEST(test_json_lines)
{
	char buf[4096];
	char *line, *save = NULL;
	int n = 0;

	ck_assert_int_eq(log_to_file(SRV_LOG_JSON, buf, sizeof buf), 3);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_error_t je;
		json_t *o = json_loads(line, 0, &je);
		ck_assert_msg(o != NULL, "not JSON: %s (%s)", line, je.text);
		ck_assert(json_is_object(o));
		ck_assert(json_is_string(json_object_get(o, "ts")));
		ck_assert(json_is_string(json_object_get(o, "level")));
		ck_assert(json_is_string(json_object_get(o, "msg")));
		if (n == 0) {
			ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "info");
			ck_assert_str_eq(json_string_value(json_object_get(o, "req")), "req-1");
			ck_assert_str_eq(json_string_value(json_object_get(o, "msg")),
			                 "GET /a\\x0a2026-01-01T00:00:00.000Z info  FORGED 404");
		} else if (n == 1) {
			ck_assert_str_eq(json_string_value(json_object_get(o, "req")),
			                 "id\\x0d\\x0aX");
			ck_assert_str_eq(json_string_value(json_object_get(o, "msg")),
			                 "model \\xff\\xfe\\x1b[2J\"}");
		} else {
			ck_assert_ptr_null(json_object_get(o, "req"));
		}
		json_decref(o);
		n++;
	}
	ck_assert_int_eq(n, 3);
}
END_TEST

START_TEST(test_format_names)
{
	ck_assert_int_eq(srv_log_format_parse("text"), SRV_LOG_TEXT);
	ck_assert_int_eq(srv_log_format_parse("json"), SRV_LOG_JSON);
	ck_assert_int_eq(srv_log_format_parse("JSON"), -1);
	ck_assert_int_eq(srv_log_format_parse(""), -1);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");
	tcase_add_test(tc, test_escape);
	tcase_add_test(tc, test_escape_bounds);
	tcase_add_test(tc, test_text_lines);
	tcase_add_test(tc, test_json_lines);
	tcase_add_test(tc, test_format_names);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
