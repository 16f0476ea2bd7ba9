/*
 * test_chat_template.c — api/chat_template.c: the documented default
 * transcript, presets, config-line values with escapes, the errors a bad
 * config line gets, and --dump-config output that reads back the same.
 */
#include "harness.h"

#include "../../api/chat_template.c"

static char *render(const api_chat_template *t, const api__message *m, int n)
{
	mllm_buf b;
	mllm_buf_init(&b, 1 << 16);
	ck_assert_int_eq(api__chat_apply(t, m, n, &b), 0);
	return mllm_buf_take(&b, NULL);
}

static api__message msg(api__role r, const char *s)
{
	return (api__message){.role = r, .content = (char *)s, .len = strlen(s)};
}

START_TEST(test_default_transcript)
{
	api__message m[3] = {msg(API_ROLE_SYSTEM, "Be kind."), msg(API_ROLE_USER, "Hi {content}"),
	                     msg(API_ROLE_ASSISTANT, "")};
	api_chat_template *t = api_chat_template_create();
	char *a = render(NULL, m, 3), *b = render(t, m, 3);
	/* Content is inserted verbatim: a "{content}" inside it stays. */
	ck_assert_str_eq(a, "System: Be kind.\nUser: Hi {content}\nAssistant: \nAssistant:");
	ck_assert_str_eq(a, b);
	ck_assert_int_eq(api__chat_template_default()->n_stop, 1);
	ck_assert_str_eq(api__chat_template_default()->stop[0], "\nUser:");
	ck_assert_int_eq(t->n_stop, 1);
	ck_assert_str_eq(t->stop[0], "\nUser:");
	free(a);
	free(b);
	api_chat_template_free(t);
	api_chat_template_free(NULL);
}
END_TEST

START_TEST(test_presets_and_keys)
{
	char err[256];
	api__message m[2] = {msg(API_ROLE_USER, "q"), msg(API_ROLE_ASSISTANT, "a")};
	api_chat_template *t = api_chat_template_create();
	char *s;
	ck_assert_int_eq(api_chat_template_set(t, "preset", "chatml", err, sizeof err), 0);
	s = render(t, m, 2);
	ck_assert_str_eq(s, "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n"
	                    "<|im_start|>assistant\n");
	free(s);
	ck_assert_int_eq(api_chat_template_set(t, "preset", "raw", err, sizeof err), 0);
	s = render(t, m, 2);
	ck_assert_str_eq(s, "qa");
	ck_assert_int_eq(t->n_stop, 0);
	free(s);
	/* Keys with escapes, one config line each. */
	ck_assert_int_eq(
	    api_chat_template_set(t, "user", "Q: {content}\\n\\t\\\\", err, sizeof err), 0);
	ck_assert_int_eq(api_chat_template_set(t, "assistant", "A: {content}\\n", err, sizeof err),
	                 0);
	ck_assert_int_eq(api_chat_template_set(t, "generation", "A:", err, sizeof err), 0);
	ck_assert_int_eq(api_chat_template_set(t, "stop", "\\nQ:||###", err, sizeof err), 0);
	ck_assert_int_eq(api_chat_template_set(t, "bos", "false", err, sizeof err), 0);
	s = render(t, m, 2);
	ck_assert_str_eq(s, "Q: q\n\t\\A: a\nA:");
	free(s);
	ck_assert_int_eq(t->n_stop, 2);
	ck_assert_str_eq(t->stop[0], "\nQ:");
	ck_assert_str_eq(t->stop[1], "###");
	ck_assert_int_eq(t->bos, 0);
	ck_assert_int_eq(api_chat_template_set(t, "stop", "", err, sizeof err), 0);
	ck_assert_int_eq(t->n_stop, 0);
	api_chat_template_free(t);
}
END_TEST

START_TEST(test_bad_values)
{
	static const char *const bad[][2] = {
	    {"preset", "jinja"},   {"bos", "maybe"},    {"user", "no placeholder"},
	    {"system", "bad \\q"}, {"stop", "a||b||c"}, {"colour", "blue"},
	    {"assistant", "x\\"},
	};
	api_chat_template *t = api_chat_template_create();
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char err[256] = "";
		ck_assert_int_eq(api_chat_template_set(t, bad[i][0], bad[i][1], err, sizeof err),
		                 MLLM_EINVAL);
		ck_assert_msg(strstr(err, "chat template") != NULL, "%s: '%s'", bad[i][0], err);
	}
	/* Failed sets leave the template as it was. */
	ck_assert_str_eq(t->role[API_ROLE_USER], "User: {content}\n");
	ck_assert_int_eq(t->n_stop, 1);
	api_chat_template_free(t);
}
END_TEST

START_TEST(test_dump_reads_back)
{
	char err[256];
	api_chat_template *t = api_chat_template_create(), *u = api_chat_template_create();
	mllm_buf b;
	char *line, *save = NULL;
	ck_assert_int_eq(api_chat_template_set(t, "preset", "chatml", err, sizeof err), 0);
	ck_assert_int_eq(api_chat_template_set(t, "stop", "<|im_end|>||\\n\\\\x", err, sizeof err),
	                 0);
	ck_assert_int_eq(api_chat_template_set(t, "bos", "true", err, sizeof err), 0);
	ck_assert_int_eq(api_chat_template_set(u, "preset", "raw", err, sizeof err), 0);
	mllm_buf_init(&b, 1 << 16);
	ck_assert_int_eq(api_chat_template_dump(t, "chat_template.", &b), 0);
	/* Every line is "prefix.key = value" and sets u to the same. */
	for (line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strstr(line, " = ");
		ck_assert_ptr_nonnull(eq);
		ck_assert(strncmp(line, "chat_template.", 14) == 0);
		*eq = '\0';
		ck_assert_int_eq(api_chat_template_set(u, line + 14, eq + 3, err, sizeof err), 0);
	}
	for (int r = 0; r < API_ROLE__COUNT; r++)
		ck_assert_str_eq(u->role[r], t->role[r]);
	ck_assert_str_eq(u->generation, t->generation);
	ck_assert_int_eq(u->n_stop, 2);
	ck_assert_str_eq(u->stop[1], "\n\\x");
	ck_assert_int_eq(u->bos, 1);
	mllm_buf_free(&b);
	api_chat_template_free(t);
	api_chat_template_free(u);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("api_chat_template");
	TCase *tc = tcase_create("template");
	tcase_add_test(tc, test_default_transcript);
	tcase_add_test(tc, test_presets_and_keys);
	tcase_add_test(tc, test_bad_values);
	tcase_add_test(tc, test_dump_reads_back);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
