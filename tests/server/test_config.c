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
	    {"kv_q8 = true\n", "per-model key: set it under [model.<id>]", MLLM_EINVAL},
	    {"[model.x]\nbogus = 1\n", "unknown model key", MLLM_EINVAL},
	    {"[weird]\n", "unknown section", MLLM_EINVAL},
	    {"[model.bad/id]\n", "model id", MLLM_EINVAL},
	    {"port 8080\n", "key = value", MLLM_EINVAL},
	    {"max_body_bytes = 12q\n", "size", MLLM_EINVAL},
	    {"log_requests = maybe\n", "true or false", MLLM_EINVAL},
	    {"host = \"unterminated\n", "unterminated", MLLM_EINVAL},
	    {"max_body_bytes = 99999999999999999999g\n", "size", MLLM_EINVAL},
	    /* A key set twice in one section: the last would win silently. */
	    {"port = 1\nport = 2\n", "t.conf:2: 'port' is set twice in [server] (first on line 1)",
	     MLLM_EINVAL},
	    {"port = 1\n[model.a]\npath = /a\n[server]\nport = 2\n",
	     "t.conf:5: 'port' is set twice in [server]", MLLM_EINVAL},
	    {"[model.a]\npath = /a\nn_ctx = 9\npath = /b\n",
	     "t.conf:4: 'path' is set twice in [model.a] (first on line 2)", MLLM_EINVAL},
	    /* Control characters could not be dumped back (one line a key). */
	    {"cors_origins = \"a\tb\"\n", "must not contain control characters", MLLM_EINVAL},
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

/* The same key in different sections is fine; a byte order mark is
 * skipped. */
START_TEST(test_sections_keys_bom)
{
	cfg_t c;
	cfg_init(&c);
	ck_assert_int_eq(cfg_load_string(&c,
	                                 "\xef\xbb\xbfport = 7\n[model.a]\npath = /a\n[model.b]\n"
	                                 "path = /b\n",
	                                 "t", err, sizeof err),
	                 0);
	ck_assert_int_eq(c.port, 7);
	ck_assert_uint_eq(c.n_models, 2);
	cfg_free(&c);
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
	ck_assert_int_eq(cfg_set(&c, "model_default", "", err, sizeof err), 0);
	/* A key of blanks and commas is no key: not a silent "no auth". */
	ck_assert_int_eq(cfg_set(&c, "api_key", " , ", err, sizeof err), 0);
	ck_assert_int_lt(cfg_validate(&c, err, sizeof err), 0);
	ck_assert_ptr_nonnull(strstr(err, "api_key holds no key"));
	ck_assert_int_eq(cfg_set(&c, "api_key", " k1 ", err, sizeof err), 0);
	ck_assert_int_eq(cfg_validate(&c, err, sizeof err), 0);
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
	/* ... and the placeholder it writes does not load back as the key. */
	cfg_free(&b);
	cfg_init(&b);
	ck_assert_int_eq(cfg_load_string(&b, out.data, "dump", err, sizeof err), 0);
	ck_assert_int_eq(cfg_validate(&b, err, sizeof err), MLLM_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "<redacted>"));
	ck_assert_int_eq(cfg_set(&b, "api_key", "real", err, sizeof err), 0);
	ck_assert_int_eq(cfg_validate(&b, err, sizeof err), 0);
	mllm_buf_free(&out);
	cfg_free(&a);
	cfg_free(&b);
}
END_TEST

static const char *dup_env(const char *name)
{
	return strcmp(name, "MLLMD_MODELS") == 0 ? "a=/1,a=/2" : NULL;
}

static const char *one_env(const char *name)
{
	return strcmp(name, "MLLMD_MODELS") == 0 ? "a=/env" : NULL;
}

/* One source naming a model id twice is refused (it used to merge two
 * [model.a] sections, or re-point --model a=... silently); a later source
 * re-pointing an earlier one's id is the precedence. */
START_TEST(test_duplicate_models)
{
	cfg_t c;

	cfg_init(&c);
	ck_assert_int_eq(cfg_load_string(&c, "[model.a]\npath = /1\n[model.a]\npath = /2\n",
	                                 "f.conf", err, sizeof err),
	                 MLLM_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "f.conf:3"));
	ck_assert_ptr_nonnull(strstr(err, "'a'"));
	cfg_free(&c);

	cfg_init(&c);
	ck_assert_int_eq(cfg_add_model_arg(&c, "a=/1", err, sizeof err), 0);
	ck_assert_int_lt(cfg_add_model_arg(&c, "a=/2", err, sizeof err), 0);
	ck_assert_ptr_nonnull(strstr(err, "--model"));
	cfg_free(&c);

	cfg_init(&c);
	ck_assert_int_lt(cfg_apply_env(&c, dup_env, err, sizeof err), 0);
	ck_assert_ptr_nonnull(strstr(err, "MLLMD_MODELS"));
	cfg_free(&c);

	/* file < env < flags, each declaring a once; --set does not declare */
	cfg_init(&c);
	ck_assert_int_eq(cfg_load_string(&c, "[model.a]\npath = /file\n", "f", err, sizeof err), 0);
	ck_assert_int_eq(cfg_apply_env(&c, one_env, err, sizeof err), 0);
	ck_assert_str_eq(cfg_model_find(&c, "a")->path, "/env");
	ck_assert_int_eq(cfg_set(&c, "model.a.n_ctx", "64", err, sizeof err), 0);
	ck_assert_int_eq(cfg_add_model_arg(&c, "a=/flag", err, sizeof err), 0);
	ck_assert_str_eq(cfg_model_find(&c, "a")->path, "/flag");
	ck_assert_uint_eq(c.n_models, 1);
	cfg_free(&c);
}
END_TEST

/* Errors name where the value came from: the flag, not "--set". */
START_TEST(test_error_source)
{
	cfg_t c;

	cfg_init(&c);
	ck_assert_int_lt(cfg_set_as(&c, "port", "70000", "--port", err, sizeof err), 0);
	ck_assert_ptr_nonnull(strstr(err, "--port:"));
	ck_assert_ptr_null(strstr(err, "--set"));
	ck_assert_int_lt(cfg_apply_env(&c, bad_env, err, sizeof err), 0);
	ck_assert_ptr_nonnull(strstr(err, "MLLMD_MAX_N"));
	cfg_free(&c);
}
END_TEST

START_TEST(test_shipped_conf_parses)
{
	cfg_t c;
	cfg_init(&c);
	/* The shipped, documented file must load and name every key. */
	ck_assert_int_eq(cfg_load_file(&c, "config/mobilellmd.conf", err, sizeof err), 0);
	ck_assert_int_eq(cfg_validate(&c, err, sizeof err), 0);
	/* Installed as docs/deploy.md says, it serves the id the README's
	 * examples send. */
	ck_assert_uint_eq(c.n_models, 1);
	ck_assert_str_eq(c.models[0].id, "mobilellm-demo");
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

/* ---- The docs agree with the table ------------------------------------- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s (tests run from the repo root)", path);
	static char buf[1 << 17];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	ck_assert_uint_lt(n, sizeof buf - 1);
	buf[n] = '\0';
	return xstrdup(buf);
}

static const cfg_entry *doc_entry(const char *name, size_t len)
{
	size_t n;
	const cfg_entry *t = cfg_server_table(&n);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++)
			if (strlen(t[i].name) == len && strncmp(t[i].name, name, len) == 0)
				return &t[i];
		t = cfg_model_table(&n);
	}
	return NULL;
}

/* Two spellings of one value of entry e's type are equal ("1m" and
 * "1048576"; "empty" and ""). */
static bool same_value(const cfg_entry *e, const char *a, const char *b)
{
	int64_t x, y;
	bool p, q;
	if (strcmp(a, "empty") == 0)
		a = "";
	if (strcmp(b, "empty") == 0)
		b = "";
	switch (e->type) {
	case CFG_INT:
		return parse_int(a, &x) == 0 && parse_int(b, &y) == 0 && x == y;
	case CFG_SIZE:
		return parse_size(a, &x) == 0 && parse_size(b, &y) == 0 && x == y;
	case CFG_BOOL:
		return parse_bool(a, &p) == 0 && parse_bool(b, &q) == 0 && p == q;
	default:
		return strcmp(a, b) == 0;
	}
}

/* Copies the word at s (up to a space, comma, parenthesis, "..", or a
 * sentence's full stop) into out. */
static void word_at(const char *s, char *out, size_t cap)
{
	size_t n = 0;
	while (s[n] && !strchr(" ,;\n\t()", s[n]) && n + 1 < cap) {
		if (s[n] == '.' && (s[n + 1] == '\0' || s[n + 1] == ' ' || s[n + 1] == '.'))
			break;
		out[n] = s[n];
		n++;
	}
	out[n] = '\0';
}

START_TEST(test_shipped_conf_matches_table)
{
	/* config/mobilellmd.conf documents every key of the table: each
	 * `key = value` line is the default, its comment's "Default X" is the
	 * default and its "bounds A..B" are the table's, so the file, the
	 * table and --dump-config cannot drift apart. */
	char *text = slurp("config/mobilellmd.conf");
	char comment[4096] = "";
	size_t clen = 0;
	int n_checked = 0, n_defaults = 0, n_bounds = 0;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#') {
			size_t l = strlen(line);
			if (clen + l + 2 < sizeof comment) {
				memcpy(comment + clen, line + 1, l - 1);
				clen += l - 1;
				comment[clen++] = ' ';
				comment[clen] = '\0';
			}
			continue;
		}
		const char *eq = strstr(line, " = ");
		if (line[0] == '[' || !eq) {
			clen = 0;
			comment[0] = '\0';
			continue;
		}
		const cfg_entry *e = doc_entry(line, (size_t)(eq - line));
		ck_assert_msg(e != NULL, "config/mobilellmd.conf sets unknown key: %s", line);
		char val[256];
		snprintf(val, sizeof val, "%s", eq + 3);
		size_t vl = strlen(val);
		if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
			memmove(val, val + 1, vl - 2);
			val[vl - 2] = '\0';
		}
		/* `path` is required and has no default; the file shows the
		 * demo model. */
		if (strcmp(e->name, "path") != 0)
			ck_assert_msg(same_value(e, val, e->def ? e->def : ""),
			              "%s = %s in the file, default %s in the table", e->name, val,
			              e->def);
		const char *d = strstr(comment, "Default ");
		if (d && strcmp(e->name, "path") != 0) {
			char w[128];
			word_at(d + 8, w, sizeof w);
			ck_assert_msg(same_value(e, w, e->def ? e->def : ""),
			              "%s: the comment says Default %s, the table %s", e->name, w,
			              e->def);
			n_defaults++;
		}
		const char *b = strstr(comment, "bounds ");
		if (b && (e->type == CFG_INT || e->type == CFG_SIZE)) {
			char lo[64], hi[64];
			int64_t x, y;
			word_at(b + 7, lo, sizeof lo);
			const char *dots = strstr(b, "..");
			ck_assert_ptr_nonnull(dots);
			word_at(dots + 2, hi, sizeof hi);
			int (*parse)(const char *, int64_t *) =
			    e->type == CFG_SIZE ? parse_size : parse_int;
			ck_assert_msg(parse(lo, &x) == 0 && parse(hi, &y) == 0, "%s: bounds %s..%s",
			              e->name, lo, hi);
			ck_assert_msg(x == e->min && y == e->max,
			              "%s: the comment says bounds %s..%s, the table %lld..%lld",
			              e->name, lo, hi, (long long)e->min, (long long)e->max);
			n_bounds++;
		}
		n_checked++;
		clen = 0;
		comment[0] = '\0';
	}
	free(text);

	/* Every key of the table is at least mentioned in the file. */
	text = slurp("config/mobilellmd.conf");
	size_t n;
	const cfg_entry *t = cfg_server_table(&n);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++)
			ck_assert_msg(strstr(text, t[i].name) != NULL,
			              "config/mobilellmd.conf does not document %s", t[i].name);
		t = cfg_model_table(&n);
	}
	free(text);
	ck_assert_int_gt(n_checked, 25);
	ck_assert_int_gt(n_defaults, 25);
	ck_assert_int_gt(n_bounds, 15);
}
END_TEST

START_TEST(test_api_docs_match_table)
{
	/* docs/api.md names the config key and its default where a request
	 * field is bounded by the config: "`max_n` (config, 8)". */
	char *text = slurp("docs/api.md");
	int found = 0;
	const char *mark = "` (config, ";
	for (const char *p = strstr(text, mark); p; p = strstr(p + 1, mark)) {
		const char *k = p;
		while (k > text && k[-1] != '`')
			k--;
		const cfg_entry *e = doc_entry(k, (size_t)(p - k));
		ck_assert_msg(e != NULL, "docs/api.md: unknown config key %.*s", (int)(p - k), k);
		char w[64];
		word_at(p + strlen(mark), w, sizeof w);
		ck_assert_msg(same_value(e, w, e->def), "docs/api.md: %s (config, %s), table %s",
		              e->name, w, e->def);
		found++;
	}
	ck_assert_int_ge(found, 2);
	free(text);

	/* And the API layer's own defaults are the table's. */
	api_limits lim = API_LIMITS_DEFAULT;
	cfg_t c;
	cfg_init(&c);
	ck_assert_int_eq(lim.max_n, c.max_n);
	ck_assert_int_eq(lim.max_tokens, c.max_tokens_limit);
	ck_assert_int_eq((int64_t)lim.max_body_bytes, c.max_body_bytes);
	ck_assert_int_eq(lim.max_prompt_tokens, c.max_prompt_tokens);
	cfg_free(&c);
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
	tcase_add_test(tc, test_sections_keys_bom);
	tcase_add_test(tc, test_env_and_set);
	tcase_add_test(tc, test_validate);
	tcase_add_test(tc, test_dump_roundtrip);
	tcase_add_test(tc, test_duplicate_models);
	tcase_add_test(tc, test_error_source);
	tcase_add_test(tc, test_shipped_conf_parses);
	tcase_add_test(tc, test_shipped_conf_matches_table);
	tcase_add_test(tc, test_api_docs_match_table);
	tcase_add_test(tc, test_env_unknown);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
