/*
 * test_config.c — the configuration table (server/config.c): defaults parse
 * through their own bounds, file sections, env and --set overrides,
 * precedence, error messages naming file and line, and --dump-config output
 * that parses back to the same values.
 */
#include "harness.h"

#include "../../server/config.c"

static char err[512];

START_TEST(test_defaults_in_bounds)
{
	size_t n;
	const cfg_entry *t = cfg_server_table(&n);
	cfg_t c;

	ck_assert_uint_gt(n, 10);
	cfg_init(&c);
	/* Every INT/SIZE default lies within its own [min, max]. */
	for (size_t i = 0; i < n; i++) {
		if (t[i].type == CFG_INT || t[i].type == CFG_SIZE) {
			int64_t v = *(int64_t *)((char *)&c + t[i].offset);
			ck_assert_msg(v >= t[i].min && v <= t[i].max, "%s", t[i].name);
		}
		ck_assert_ptr_nonnull(t[i].help);
	}
	ck_assert_str_eq(c.host, "127.0.0.1");
	ck_assert_int_eq(c.port, 8080);
	ck_assert_int_eq(c.max_body_bytes, 1 << 20);
	ck_assert_uint_eq(c.n_models, 0);
	cfg_free(&c);
}
END_TEST

START_TEST(test_file_sections)
{
	cfg_t c;
	const char *text = "# comment\n"
	                   "port = 9000\n"
	                   "max_body_bytes = 2m\n"
	                   "log_level = debug\n"
	                   "[model.a]\n"
	                   "path = \"/x/a\"\n"
	                   "n_ctx = 1024\n"
	                   "kv_f16 = yes\n"
	                   "[model.b]\n"
	                   "path = /x/b\n"
	                   "[server]\n"
	                   "host = ::1\n";
	cfg_init(&c);
	ck_assert_int_eq(cfg_load_string(&c, text, "t.conf", err, sizeof err), 0);
	ck_assert_int_eq(c.port, 9000);
	ck_assert_int_eq(c.max_body_bytes, 2 << 20);
	ck_assert_int_eq(c.log_level, MLLM_LOG_DEBUG);
	ck_assert_str_eq(c.host, "::1");
	ck_assert_uint_eq(c.n_models, 2);
	ck_assert_str_eq(cfg_model_find(&c, "a")->path, "/x/a");
	ck_assert_int_eq(cfg_model_find(&c, "a")->n_ctx, 1024);
	ck_assert(cfg_model_find(&c, "a")->kv_f16);
	ck_assert_int_eq(cfg_model_find(&c, "b")->n_ctx, 0);
	ck_assert_int_eq(cfg_validate(&c, err, sizeof err), 0);
	cfg_free(&c);
}
END_TEST

START_TEST(test_errors_name_line)
{
	static const struct {
		const char *text, *needle;
		int code;
	} cases[] = {
	    {"port = 70000\n", "t.conf:1", MLLM_ERANGE},
	    {"\n\nport = abc\n", "t.conf:3", MLLM_EINVAL},
	    {"bogus = 1\n", "unknown key 'bogus'", MLLM_EINVAL},
	    {"[model.x]\nbogus = 1\n", "unknown model key", MLLM_EINVAL},
	    {"[weird]\n", "unknown section", MLLM_EINVAL},
	    {"[model.bad/id]\n", "model id", MLLM_EINVAL},
	    {"port 8080\n", "key = value", MLLM_EINVAL},
	    {"max_body_bytes = 12q\n", "size", MLLM_EINVAL},
	    {"log_requests = maybe\n", "true or false", MLLM_EINVAL},
	    {"host = \"unterminated\n", "unterminated", MLLM_EINVAL},
	    {"max_body_bytes = 99999999999999999999g\n", "size", MLLM_EINVAL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cfg_t c;
		cfg_init(&c);
		err[0] = '\0';
		ck_assert_int_eq(cfg_load_string(&c, cases[i].text, "t.conf", err, sizeof err),
		                 cases[i].code);
		ck_assert_msg(strstr(err, cases[i].needle), "case %zu: '%s'", i, err);
		cfg_free(&c);
	}
}
END_TEST

static const char *fake_env(const char *name)
{
	if (strcmp(name, "MLLMD_PORT") == 0)
		return "1234";
	if (strcmp(name, "MLLMD_API_KEY") == 0)
		return "k1,k2";
	if (strcmp(name, "MLLMD_MODELS") == 0)
		return "m1=/p/1, m2=/p/2";
	return NULL;
}

static const char *bad_env(const char *name)
{
	return strcmp(name, "MLLMD_MAX_N") == 0 ? "0" : NULL;
}

START_TEST(test_env_and_set)
{
	cfg_t c;
	cfg_init(&c);
	ck_assert_int_eq(cfg_load_string(&c, "port = 9000\n", "t", err, sizeof err), 0);
	ck_assert_int_eq(cfg_apply_env(&c, fake_env, err, sizeof err), 0);
	ck_assert_int_eq(c.port, 1234); /* env beats the file */
	ck_assert_str_eq(c.api_key, "k1,k2");
	ck_assert_uint_eq(c.n_models, 2);
	ck_assert_str_eq(cfg_model_find(&c, "m2")->path, "/p/2");
	ck_assert_int_eq(cfg_set(&c, "port", "4321", err, sizeof err), 0);
	ck_assert_int_eq(c.port, 4321); /* the command line beats env */
	ck_assert_int_eq(cfg_set(&c, "model.m1.n_ctx", "256", err, sizeof err), 0);
	ck_assert_int_eq(cfg_model_find(&c, "m1")->n_ctx, 256);
	ck_assert_int_lt(cfg_set(&c, "model.m1.nope", "1", err, sizeof err), 0);
	ck_assert_int_lt(cfg_set(&c, "model.m1.n_ctx", "-1", err, sizeof err), 0);
	ck_assert_int_eq(cfg_add_model_arg(&c, "m1=/other", err, sizeof err), 0);
	ck_assert_str_eq(cfg_model_find(&c, "m1")->path, "/other");
	ck_assert_uint_eq(c.n_models, 2);
	ck_assert_int_lt(cfg_add_model_arg(&c, "nopath", err, sizeof err), 0);
	ck_assert_int_lt(cfg_add_model_arg(&c, "=x", err, sizeof err), 0);
	cfg_free(&c);

	cfg_init(&c);
	ck_assert_int_eq(cfg_apply_env(&c, bad_env, err, sizeof err), MLLM_ERANGE);
	ck_assert_ptr_nonnull(strstr(err, "MLLMD_MAX_N"));
	cfg_free(&c);
}
END_TEST

START_TEST(test_validate)
{
	cfg_t c;
	cfg_init(&c);
	ck_assert_int_lt(cfg_validate(&c, err, sizeof err), 0);
	ck_assert_ptr_nonnull(strstr(err, "--model"));
	ck_assert_int_eq(cfg_load_string(&c, "[model.a]\nn_ctx = 5\n", "t", err, sizeof err), 0);
	ck_assert_int_lt(cfg_validate(&c, err, sizeof err), 0);
	ck_assert_ptr_nonnull(strstr(err, "no path"));
	ck_assert_int_eq(cfg_set(&c, "model.a.path", "/a", err, sizeof err), 0);
	ck_assert_int_eq(cfg_validate(&c, err, sizeof err), 0);
	ck_assert_int_eq(cfg_set(&c, "model_default", "zz", err, sizeof err), 0);
	ck_assert_int_lt(cfg_validate(&c, err, sizeof err), 0);
	cfg_free(&c);
}
END_TEST

START_TEST(test_dump_roundtrip)
{
	cfg_t a, b;
	mllm_buf out;
	size_t n;
	const cfg_entry *t = cfg_server_table(&n);

	cfg_init(&a);
	ck_assert_int_eq(cfg_load_string(&a,
	                                 "port = 1\napi_key = secret\ncors_origins = *\n"
	                                 "[model.q]\npath = /q\nkv_bytes = 3m\n"
	                                 "chat_user = \"U: {content}\\n\"\n",
	                                 "t", err, sizeof err),
	                 0);
	mllm_buf_init(&out, 1 << 20);
	ck_assert_int_eq(cfg_dump(&a, true, &out), 0);
	cfg_init(&b);
	ck_assert_int_eq(cfg_load_string(&b, out.data, "dump", err, sizeof err), 0);
	for (size_t i = 0; i < n; i++) {
		const char *fa = (const char *)&a + t[i].offset;
		const char *fb = (const char *)&b + t[i].offset;
		if (t[i].type == CFG_STR)
			ck_assert_str_eq(*(char *const *)fa, *(char *const *)fb);
		else if (t[i].type == CFG_BOOL)
			ck_assert_int_eq(*(const bool *)fa, *(const bool *)fb);
		else
			ck_assert_int_eq(*(const int64_t *)fa, *(const int64_t *)fb);
	}
	ck_assert_int_eq(cfg_model_find(&b, "q")->kv_bytes, 3 << 20);
	ck_assert_str_eq(cfg_model_find(&b, "q")->chat_user, "U: {content}\\n");
	ck_assert_ptr_null(cfg_model_find(&b, "q")->chat_system);
	/* Without show_secrets the key never appears. */
	mllm_buf_reset(&out);
	ck_assert_int_eq(cfg_dump(&a, false, &out), 0);
	ck_assert_ptr_null(strstr(out.data, "secret"));
	mllm_buf_free(&out);
	cfg_free(&a);
	cfg_free(&b);
}
END_TEST

START_TEST(test_shipped_conf_parses)
{
	cfg_t c;
	cfg_init(&c);
	/* The shipped, documented file must load and name every key. */
	ck_assert_int_eq(cfg_load_file(&c, "config/mobilellmd.conf", err, sizeof err), 0);
	ck_assert_int_eq(cfg_validate(&c, err, sizeof err), 0);
	cfg_free(&c);
	{
		FILE *f = fopen("config/mobilellmd.conf", "rb");
		static char text[1 << 16];
		size_t n, len;
		const cfg_entry *t;
		ck_assert_ptr_nonnull(f);
		len = fread(text, 1, sizeof text - 1, f);
		text[len] = '\0';
		fclose(f);
		t = cfg_server_table(&n);
		for (size_t i = 0; i < n; i++)
			ck_assert_msg(strstr(text, t[i].name), "%s undocumented", t[i].name);
		t = cfg_model_table(&n);
		for (size_t i = 0; i < n; i++)
			ck_assert_msg(strstr(text, t[i].name), "%s undocumented", t[i].name);
	}
}
END_TEST

START_TEST(test_env_unknown)
{
	char hint[96];
	const char *v = "MLLMD_PROT=8080";

	ck_assert(!cfg_env_unknown("MLLMD_PORT", 10, hint, sizeof hint));
	ck_assert(!cfg_env_unknown("MLLMD_MODELS", 12, hint, sizeof hint));
	ck_assert(!cfg_env_unknown("MLLMD_DRAIN_DELAY_MS", 20, hint, sizeof hint));
	ck_assert(!cfg_env_unknown("MLLMD_SHUTDOWN_TIMEOUT_MS", 25, hint, sizeof hint));
	ck_assert(!cfg_env_unknown("PATH", 4, hint, sizeof hint));
	ck_assert(!cfg_env_unknown("MLLM_FIXTURES", 13, hint, sizeof hint));
	/* The name ends at '=' (an environ entry), misspellings get a hint. */
	ck_assert(cfg_env_unknown(v, 10, hint, sizeof hint));
	ck_assert_str_eq(hint, "MLLMD_PORT");
	ck_assert(cfg_env_unknown("MLLMD_API_KYE", 13, hint, sizeof hint));
	ck_assert_str_eq(hint, "MLLMD_API_KEY");
	ck_assert(cfg_env_unknown("MLLMD_SHUTDOWN_TIMEOUT", 22, hint, sizeof hint));
	ck_assert_str_eq(hint, "MLLMD_SHUTDOWN_TIMEOUT_MS");
	/* Far from every name: warned, no hint. */
	ck_assert(cfg_env_unknown("MLLMD_COMPLETELY_DIFFERENT", 26, hint, sizeof hint));
	ck_assert_str_eq(hint, "");
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");
	tcase_add_test(tc, test_defaults_in_bounds);
	tcase_add_test(tc, test_file_sections);
	tcase_add_test(tc, test_errors_name_line);
	tcase_add_test(tc, test_env_and_set);
	tcase_add_test(tc, test_validate);
	tcase_add_test(tc, test_dump_roundtrip);
	tcase_add_test(tc, test_shipped_conf_parses);
	tcase_add_test(tc, test_env_unknown);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
