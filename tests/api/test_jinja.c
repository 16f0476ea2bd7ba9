/*
 * test_jinja.c — api/jinja*.c: every fixture (template, conversation)
 * golden renders byte-identical to transformers' apply_chat_template and
 * every raising case raises; a table of small templates whose expected
 * text came from jinja2 3.1.6 set up as transformers sets it up; parse
 * errors with line and column; the output, work and depth limits; and a
 * grammar fuzz (random templates and JSON contexts) that must never crash
 * or run past its limits. The fuzz runs a few thousand cases by default,
 * a hundred times more with MLLM_LONG=1; MLLM_FUZZ_SEED picks the seed,
 * MLLM_FUZZ_DUMP=1 prints each case as JSON on stderr (to compare with
 * jinja2 by hand).
 */
#include "harness.h"

#include <jansson.h>

#include "jinja.h"

#define GOLDEN_DIR "chat_templates/"

static const char *const template_names[] = {"llama3", "llama3_1", "qwen3", "gemma3",
                                             "deepseek_v3"};

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	s = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return s;
}

static api_jinja *parse_ok(const char *src)
{
	char err[512] = "";
	api_jinja *t = NULL;
	int rc = api_jinja_parse(src, strlen(src), &t, err, sizeof err);
	ck_assert_msg(rc == 0, "parse failed: %s\n%s", err, src);
	return t;
}

/* Renders src with vars (JSON text); returns the text (caller frees) or
 * NULL with *rc and err set. */
static char *render_src(const char *src, const char *vars_json, const api_jinja_limits *lim,
                        int *rc, char *err, size_t errlen)
{
	json_error_t je;
	json_t *vars = json_loads(vars_json, 0, &je);
	api_jinja *t = parse_ok(src);
	mllm_buf b;
	char *out = NULL;
	ck_assert_msg(vars != NULL, "bad test vars: %s", je.text);
	mllm_buf_init(&b, (size_t)16 << 20);
	*rc = api_jinja_render(t, vars, lim, &b, err, errlen);
	if (*rc == 0)
		out = b.data ? mllm_buf_take(&b, NULL) : strdup("");
	mllm_buf_free(&b);
	api_jinja_free(t);
	json_decref(vars);
	return out;
}

/* ---- fixture goldens ----------------------------------------------------- */

static json_t *load_jsonl(const char *rel, const char *key_field)
{
	char path[4096], line_err[256];
	json_t *all = json_object(), *list = json_array();
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	mllm_test_path(path, sizeof path, rel);
	MLLM_REQUIRE_FIXTURE(path);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while ((n = getline(&line, &cap, f)) > 0) {
		json_error_t je;
		json_t *o = json_loadb(line, (size_t)n, 0, &je);
		snprintf(line_err, sizeof line_err, "%s: %s", rel, je.text);
		ck_assert_msg(o != NULL, "%s", line_err);
		if (key_field)
			json_object_set_new(all, json_string_value(json_object_get(o, key_field)),
			                    o);
		else
			json_array_append_new(list, o);
	}
	free(line);
	fclose(f);
	if (key_field) {
		json_decref(list);
		return all;
	}
	json_decref(all);
	return list;
}

/* The variables transformers passes: the conversation, tools (None when
 * absent), documents (None), add_generation_prompt, the special tokens of
 * <name>.json, and the extra kwargs. */
static json_t *golden_vars(const char *name, const json_t *conv)
{
	char rel[256], path[4096];
	json_error_t je;
	json_t *sp, *vars, *map, *v, *tools;
	const char *k;
	snprintf(rel, sizeof rel, GOLDEN_DIR "%s.json", name);
	mllm_test_path(path, sizeof path, rel);
	sp = json_load_file(path, 0, &je);
	ck_assert_msg(sp != NULL, "%s: %s", path, je.text);
	tools = json_object_get(conv, "tools");
	vars = json_pack("{sOsOsnsO}", "messages", json_object_get(conv, "messages"), "tools",
	                 tools ? tools : json_null(), "documents", "add_generation_prompt",
	                 json_object_get(conv, "add_generation_prompt"));
	ck_assert_ptr_nonnull(vars);
	map = json_object_get(sp, "special_tokens_map");
	json_object_foreach(map, k, v)
	{
		json_object_set(vars, k, v);
	}
	json_object_set(vars, "bos_token", json_object_get(sp, "bos_token"));
	json_object_set(vars, "eos_token", json_object_get(sp, "eos_token"));
	if (json_is_object(json_object_get(conv, "kwargs")))
		json_object_update(vars, json_object_get(conv, "kwargs"));
	json_decref(sp);
	return vars;
}

START_TEST(test_fixture_goldens)
{
	json_t *convs = load_jsonl(GOLDEN_DIR "conversations.jsonl", "id");
	json_t *goldens = load_jsonl(GOLDEN_DIR "goldens.jsonl", NULL);
	api_jinja *tpl[5] = {NULL};
	size_t i;
	json_t *g;
	int n_rendered = 0, n_raised = 0;
	for (int k = 0; k < 5; k++) {
		char rel[256], path[4096], err[512];
		size_t len;
		char *src;
		snprintf(rel, sizeof rel, GOLDEN_DIR "%s.jinja", template_names[k]);
		mllm_test_path(path, sizeof path, rel);
		MLLM_REQUIRE_FIXTURE(path);
		src = slurp(path, &len);
		ck_assert_msg(api_jinja_parse(src, len, &tpl[k], err, sizeof err) == 0, "%s: %s",
		              template_names[k], err);
		free(src);
	}
	ck_assert_uint_eq(json_array_size(goldens), 210);
	json_array_foreach(goldens, i, g)
	{
		const char *name = json_string_value(json_object_get(g, "template"));
		const char *cid = json_string_value(json_object_get(g, "conversation"));
		json_t *conv = json_object_get(convs, cid), *vars;
		json_t *want = json_object_get(g, "rendered");
		char err[512] = "";
		mllm_buf b;
		int k, rc;
		for (k = 0; k < 5 && strcmp(template_names[k], name) != 0; k++)
			;
		ck_assert_msg(k < 5 && conv, "golden %zu: unknown template or conversation", i);
		vars = golden_vars(name, conv);
		mllm_buf_init(&b, (size_t)1 << 22);
		/* transformers refuses an empty conversation before rendering. */
		if (json_array_size(json_object_get(conv, "messages")) == 0)
			rc = mllm__seterr(err, sizeof err, MLLM_EINVAL, "messages is empty");
		else
			rc = api_jinja_render(tpl[k], vars, NULL, &b, err, sizeof err);
		if (want) {
			ck_assert_msg(rc == 0, "%s/%s raised: %s", name, cid, err);
			ck_assert_msg(
			    b.len == json_string_length(want) &&
			        memcmp(b.data ? b.data : "", json_string_value(want), b.len) == 0,
			    "%s/%s differs:\n got  %s\n want %s", name, cid, b.data ? b.data : "",
			    json_string_value(want));
			n_rendered++;
		} else {
			ck_assert_msg(rc == MLLM_EINVAL, "%s/%s should raise (rc %d)", name, cid,
			              rc);
			ck_assert_msg(err[0] != '\0', "%s/%s raised without a message", name, cid);
			n_raised++;
		}
		mllm_buf_free(&b);
		json_decref(vars);
	}
	ck_assert_int_eq(n_rendered, 188);
	ck_assert_int_eq(n_raised, 22);
	for (int k = 0; k < 5; k++)
		api_jinja_free(tpl[k]);
	json_decref(convs);
	json_decref(goldens);
}
END_TEST

/* ---- semantics, against jinja2 ------------------------------------------ */

/* Expected texts were produced by jinja2 3.1.6 with transformers' set-up
 * (sandboxed, trim_blocks, lstrip_blocks, loopcontrols, its tojson);
 * want == NULL: jinja2 raises. */
static const struct {
	const char *src, *vars, *want;
} cases[] = {
    {"a\n  {% if x %}\n  yes\n  {% endif %}\nb", "{\"x\": true}", "a\n  yes\nb"},
    {"a  {%- if x -%}  yes  {%- endif -%}  b", "{\"x\": true}", "ayesb"},
    {"  {{ x }}  \n{# c #}\n  z", "{\"x\": 1}", "  1  \n  z"},
    {"{% for i in range(3) %}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.revindex }}{{ "
     "loop.length }},{% endfor %}",
     "{}", "1TrueFalse33,2FalseFalse23,3FalseTrue13,"},
    {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
     "{\"d\": {\"b\": 1, \"a\": [1, 2.5, null, true]}}", "b=1;a=[1, 2.5, None, True];"},
    {"{{ d }}|{{ l }}|{{ n }}|{{ f }}|{{ b }}",
     "{\"d\": {\"a\": \"it's\"}, \"l\": [\"x\\ny\", \"\\\"q'\"], \"n\": null, \"f\": 1e-07, \"b\": "
     "false}",
     "{'a': \"it's\"}|['x\\ny', '\"q\\'']|None|1e-07|False"},
    {"{{ x | tojson }}",
     "{\"x\": {\"a\": [1, 2.5, \"é \\u0001\\\"\", null, true, 1e+20, 100.0, 0.1]}}",
     "{\"a\": [1, 2.5, \"é \\u0001\\\"\", null, true, 1e+20, 100.0, 0.1]}"},
    {"{{ x | tojson(indent=2) }}", "{\"x\": {\"a\": [1, {}], \"b\": [], \"c\": {\"d\": 1}}}",
     "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": [],\n  \"c\": {\n    \"d\": 1\n  }\n}"},
    {"{{ x | tojson(sort_keys=true) }}", "{\"x\": {\"b\": 1, \"a\": 2}}", "{\"a\": 2, \"b\": 1}"},
    /* ** by squaring: a huge exponent of 0, 1 or -1 is instant. */
    {"{{ 0 ** 70000000001 }} {{ (-1) ** 70000000001 }} {{ 3 ** 39 }} {{ (-2) ** 63 }} {{ 0 ** 0 }}",
     "{}", "0 -1 4052555153018976267 -9223372036854775808 1"},
    /* ensure_ascii (positional first, as transformers' signature has it):
     * json.dumps escapes, a surrogate pair past U+FFFF; keys too. */
    {"{{ x | tojson(true) }}|{{ x | tojson(ensure_ascii=true, indent=1) }}",
     "{\"x\": {\"k\\u00e9\": \"a\\ud83d\\ude00b\\u2028\\n\"}}",
     "{\"k\\u00e9\": \"a\\ud83d\\ude00b\\u2028\\n\"}|{\n \"k\\u00e9\": "
     "\"a\\ud83d\\ude00b\\u2028\\n\"\n}"},
    {"{{ x | tojson(separators=[',', ':']) }}", "{\"x\": {\"b\": 1, \"a\": [1, 2]}}",
     "{\"b\":1,\"a\":[1,2]}"},
    {"{{ 'abc'[::-1] }}{{ 'héllo'[1:3] }}{{ [1,2,3,4][1:] }}{{ [1,2,3,4][-2:] }}{{ 'abc'[-1] }}",
     "{}", "cbaél[2, 3, 4][3, 4]c"},
    {"{{ ' a b '.split() }}{{ 'a,b,,c'.split(',') }}{{ 'xxhixx'.strip('x') }}{{ "
     "'\\n\\nhi\\n'.lstrip('\\n') }}",
     "{}", "['a', 'b']['a', 'b', '', 'c']hihi\n"},
    {"{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2.5 }} "
     "{{ 'a' ~ 1 ~ none }}",
     "{}", "3 -4 1 2 3.5 1024 3.5 a1None"},
    {"{{ x.y }}", "{}", NULL},
    {"{{ x + 'a' }}", "{}", NULL},
    {"{{ 'a' in x }}", "{}", "False"},
    {"{{ 'a' in x }}", "{\"x\": null}", NULL},
    {"{% set ns = namespace(a=1) %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% set b = i "
     "%}{% endfor %}{{ ns.a }}{{ b }}",
     "{}", "4"},
    {"{% macro m(a, b='d') %}[{{ a }}{{ b }}]{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(b=3, a=4) "
     "}}",
     "{}", "[1d][12][43]"},
    {"{% macro m(x) %}<{{ caller(x) }}>{% endmacro %}{% call(y) m(5) %}got {{ y }}{% endcall %}",
     "{}", "<got 5>"},
    {"{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% "
     "endif %}{{ i }}{% endfor %}",
     "{}", "0134"},
    {"{% for i in [] %}x{% else %}empty{% endfor %}", "{}", "empty"},
    {"{% for i in range(6) if i is even %}{{ i }}{{ loop.length }}{% endfor %}", "{}", "032343"},
    {"{{ [3,1,2] | sort | join(',') }} {{ ['b','A','c'] | sort | list }} {{ [1,2,3] | "
     "map('string') | join }} {{ xs | selectattr('a') | map(attribute='b') | list }}",
     "{\"xs\": [{\"a\": 1, \"b\": \"x\"}, {\"a\": 0, \"b\": \"y\"}, {\"b\": \"z\"}]}",
     "1,2,3 ['A', 'b', 'c'] 123 ['x']"},
    {"{{ xs | rejectattr('a', 'equalto', 1) | list | length }} {{ xs | selectattr('b', 'defined') "
     "| list | length }}",
     "{\"xs\": [{\"a\": 1, \"b\": \"x\"}, {\"a\": 0, \"b\": \"y\"}, {\"b\": \"z\"}]}", "2 3"},
    {"{{ x | default('d') }}{{ none | default('d') }}{{ '' | default('d', true) }}", "{}",
     "dNoned"},
    {"{{ 'a' if x else 'b' }}{{ 'c' if x }}|", "{}", "b|"},
    {"{% set x %}block {{ 1 }}{% endset %}[{{ x }}]", "{}", "[block 1]"},
    {"{{ x is defined }}{{ x is none }}{{ y is none }}{{ 's' is string }}{{ 1 is number }}{{ true "
     "is number }}{{ d is mapping }}{{ d is iterable }}{{ x is iterable }}{{ 1 is iterable }}",
     "{\"y\": null, \"d\": {}}", "FalseFalseTrueTrueTrueTrueTrueTrueTrueFalse"},
    {"{{ raise_exception('boom') }}", "{}", NULL},
    {"{{ true == 1 }}{{ 1 == 1.0 }}{{ [1] == [1.0] }}{{ none == none }}{{ 'a' < 'b' }}{{ x == y }}",
     "{}", "TrueTrueTrueTrueTrueTrue"},
    {"{{ 'Hello World' | upper }}{{ 'Hello' | lower }}{{ 'hello world' | title }}{{ 'hELLO' | "
     "capitalize }}{{ 'aaa' | replace('a', 'b', 2) }}",
     "{}", "HELLO WORLDhelloHello WorldHellobba"},
    {"{{ d | length }}{{ 'héllo' | length }}{{ x | length }}", "{\"d\": {\"a\": 1}}", "150"},
    {"{{ [1,2] | first }}{{ [1,2] | last }}{{ 'abc' | first }}{{ [] | first }}", "{}", "12a"},
    {"{{ x | trim }}|{{ '  a  ' | trim }}|{{ n | trim }}|",
     "{\"x\": [{\"type\": \"text\", \"text\": \"hi\"}], \"n\": null}",
     "[{'type': 'text', 'text': 'hi'}]|a|None|"},
    {"{%- for m in messages -%}\n  {{- m.role }}: {{ m.content }}\n{% endfor -%}",
     "{\"messages\": [{\"role\": \"u\", \"content\": \"a\"}, {\"role\": \"b\", \"content\": "
     "\"c\"}]}",
     "u: a\nb: c\n"},
    {"{% raw %}{{ x }}{% endraw %}", "{}", "{{ x }}"},
    {"  {%- raw %} a {% endraw -%}  x", "{}", " a x"},
    {"{{ 'a' 'b' }}{{ \"x\\ty\\u00e9\" }}", "{}", "abx\tyé"},
    {"{{ -x }}{{ not x }}{{ x and y }}{{ x or y }}", "{\"x\": 0, \"y\": \"q\"}", "0True0q"},
    {"{{ foo() }}", "{}", NULL},
    {"{{ 1 < 'a' }}", "{}", NULL},
    {"{{ x.append(1) }}", "{\"x\": []}", NULL},
    {"{{ 'abc'.startswith(('x', 'a')) }}{{ 'abc'.endswith('bc') }}{{ 'a-b'.replace('-', '+') }}{{ "
     "'x'.upper() }}{{ d.get('a') }}{{ d.get('z', 5) }}{{ d.keys() | list }}",
     "{\"d\": {\"a\": 1}}", "TrueTruea+bX15['a']"},
    {"{% if a %}1{% elif b %}2{% else %}3{% endif %}", "{\"b\": 1}", "2"},
    {"{{ 3 * 'ab' }}{{ [1] + [2] }}{{ 10 / 4 }}{{ 10 / 5 }}{{ 2.0 * 3 }}{{ 1e16 }}{{ "
     "123456789012345678 }}{{ 0.000123 }}{{ 1.5e-5 }}",
     "{}", "ababab[1, 2]2.52.06.01e+161234567890123456780.0001231.5e-05"},
    {"{{ x['a']['b'] }}", "{\"x\": {\"a\": {\"b\": \"deep\"}}}", "deep"},
    {"{{ messages[0].content }}{{ messages[5] }}{{ messages[-1]['role'] }}",
     "{\"messages\": [{\"role\": \"u\", \"content\": \"a\"}]}", "au"},
    {"{% for x in 'ab' %}{{ x }}{% endfor %}{% for k in {'z': 1, 'y': 2} %}{{ k }}{% endfor %}",
     "{}", "abzy"},
    {"{{ 'a\\nb' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}", "{}", "a\n  b|  a\n  b"},
    {"{{ [1,1,2] | unique | list }}{{ [1,2,3] | reverse | list }}{{ [1,2] | sum }}{{ [3,1] | min "
     "}}{{ [3,1] | max }}",
     "{}", "[1, 2][3, 2, 1]313"},
    {"{% for a in x %}{{ loop.previtem }}-{{ loop.nextitem }},{% endfor %}", "{\"x\": [1, 2, 3]}",
     "-2,1-3,2-,"},
    {"{{ loop }}", "{}", ""},
    {"{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}{% for i in [1] %}{% set x = 3 "
     "%}{{ x }}{% endfor %}{{ x }}",
     "{}", "232"},
    {"{{ x is sameas false }}{{ x is false }}{{ 4 is divisibleby 2 }}{{ 3 is odd }}{{ x is not "
     "none }}",
     "{\"x\": false}", "TrueTrueTrueTrueTrue"},
    {"{{ \"'\" }}{{ ['it\\'s', \"a\\\"b\"] }}{{ ['\\u00a0é\\t'] }}", "{}",
     "'[\"it's\", 'a\"b']['\\xa0é\\t']"},
    {"x\n    {% if true %}\n    a\n    {% endif %}\n", "{}", "x\n    a\n"},
    {"x\n    {%+ if true %}\n    a\n    {%+ endif +%}\n y", "{}", "x\n        a\n    \n y"},
    {"{% if true %}\r\na{% endif %}\r\nb", "{}", "ab"},
    {"x  {# comment #}\n  y\n  {#- c -#}  z", "{}", "x    yz"},
    {"  {{ 1 }}\n  {% set x = 1 %}  \n z", "{}", "  1\n  \n z"},
    {"a\n\t {% for i in [1,2] %}\n\t\t{{ i }}\n\t {% endfor %}\nb", "{}", "a\n\t\t1\n\t\t2\nb"},
    {"{% if true %}{% endif %}\n\n{{ 'x' }}\n", "{}", "\nx"},
    {"a {%- if true %} b {% endif -%}\n\n c", "{}", "a b c"},
    {"{{- 'a' -}}   \n  {{- 'b' }}  {{ 'c' -}}  \n d", "{}", "ab  cd"},
    {"{%- set a = 1 -%}\n{{ a }}", "{}", "1"},
    {"{% if true -%}\n   a{%- endif %}", "{}", "a"},
    {"{{ {'a': {'b': 1}} }}", "{}", "{'a': {'b': 1}}"},
    {"{{ {'a': 1}['a'] }}{{ [1,2,3][1] }}", "{}", "12"},
    {"{% for i in range(3) %}{{ loop.cycle('a','b') }}{% endfor %}", "{}", "aba"},
    {"{{ x[1:2:0] }}", "{\"x\": [1, 2]}", NULL},
    {"{{ 1 / 0 }}", "{}", NULL},
    {"{{ none.x }}{{ none['y'] }}|", "{}", "|"},
    {"{{ 'abc'.x }}|{{ [1].y }}|", "{}", "||"},
    {"{{ x.content.startswith('a') }}", "{\"x\": {\"content\": null}}", NULL},
    {"{{ '</think>' in x }}", "{\"x\": null}", NULL},
    {"{% for m in x %}{% endfor %}", "{\"x\": null}", NULL},
    {"{% for m in x %}{{m}}{% endfor %}|", "{}", "|"},
    {"{{ x|length }}", "{\"x\": 5}", NULL},
    {"{% set ns = namespace() %}{% set ns.items = [1] %}{{ ns.items }}", "{}", "[1]"},
    {"{% set d = {} %}{% set d.x = 1 %}", "{}", NULL},
    {"{{ range(2, 10, 3) | list }}{{ range(5, 0, -2) | list }}", "{}", "[2, 5, 8][5, 3, 1]"},
    {"{{ x | tojson }}", "{}", NULL},
    {"{{ 'abc' | list }}{{ x | list }}", "{}", "['a', 'b', 'c'][]"},
    {"{{ 'a b  c'.split(' ') }}{{ 'a b c'.split(none, 1) }}{{ ''.split() }}{{ ' x '.split(' ') }}",
     "{}", "['a', 'b', '', 'c']['a', 'b c'][]['', 'x', '']"},
    {"{{ 'xay'.strip('xy') }}{{ '  '.strip() }}{{ 'ab'.rstrip('b') }}{{ '　a '.strip() }}", "{}",
     "aaa"},
    {"{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}", "{}",
     "54321"},
    {"{{ messages | selectattr('role', 'equalto', 'user') | list | length }}",
     "{\"messages\": [{\"role\": \"user\"}, {\"role\": \"x\"}, {\"role\": \"user\"}]}", "2"},
    {"{{ messages | map(attribute='role') | join(', ') }}",
     "{\"messages\": [{\"role\": \"user\"}, {\"role\": \"x\"}]}", "user, x"},
    {"{%- if tools is not none and tools|length > 0 %}T{% endif %}{{ tools is none }}",
     "{\"tools\": null}", "True"},
    {"{{ 5 is gt 3 }}{{ 5 is lt(3) }}{{ 'a' is in 'abc' }}{{ 2 is in [1, 2] }}", "{}",
     "TrueFalseTrueTrue"},
    {"{{ 'x' ~ loop_var | default('d') }}", "{}", "xd"},
    {"{{ a.b.c }}", "{\"a\": {}}", NULL},
    {"{{ a.b }}", "{\"a\": \"str\"}", ""},
    {"{% filter upper %}hello {{ 'x' }}{% endfilter %}", "{}", "HELLO X"},
    {"{{ [1, 2] * 2 }}", "{}", "[1, 2, 1, 2]"},
    {"{{ 1 if true else 2 if false else 3 }}", "{}", "1"},
    {"{{ not a == b }}{{ not a is defined }}", "{\"a\": 1, \"b\": 2}", "TrueFalse"},
    {"{{ -2 ** 2 }}{{ 2 ** -1 }}{{ (-2) ** 2 }}", "{}", "40.54"},
    {"{{ 'a' + 1 }}", "{}", NULL},
    {"{{ 1 + none }}", "{}", NULL},
    {"{{ x.y.z }}", "{\"x\": {\"y\": null}}", ""},
    {"{{ 'abc' * -1 }}|{{ 'ab' * 0 }}|", "{}", "||"},
    {"{{ x | first }}{{ x | last }}", "{\"x\": {\"a\": 1, \"b\": 2}}", "ab"},
    {"{{ '%s' % 1 }}", "{}", "1"},
    {"{%- for k, v in d | items %}{{ k }}={{ v }};{% endfor %}",
     "{\"d\": {\"a\": 1, \"b\": \"x\"}}", "a=1;b=x;"},
    {"{{ ['a','code_interpreter','b'] | reject('equalto', 'code_interpreter') | join(', ') }}",
     "{}", "a, b"},
    {"{{ t | tojson(indent=4) }}",
     "{\"t\": {\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": "
     "\"object\", \"properties\": {\"x\": {\"type\": \"string\", \"enum\": [\"a\", \"b\"]}}, "
     "\"required\": [\"x\"]}}}}",
     "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"f\",\n        "
     "\"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n        "
     "        \"x\": {\n                    \"type\": \"string\",\n                    \"enum\": "
     "[\n                        \"a\",\n                        \"b\"\n                    ]\n    "
     "            }\n            },\n            \"required\": [\n                \"x\"\n          "
     "  ]\n        }\n    }\n}"},
    {"{{ (messages | selectattr('role', 'equalto', 'system') | list | last).content }}",
     "{\"messages\": [{\"role\": \"system\", \"content\": \"s1\"}, {\"role\": \"user\", "
     "\"content\": \"u\"}, {\"role\": \"system\", \"content\": \"s2\"}]}",
     "s2"},
    {"{%- set x = '  hi  ' | trim %}[{{ x }}]", "{}", "[hi]"},
    {"{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] | "
     "trim %}{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif "
     "%}{{ system_message }}|{{ messages | length }}",
     "{\"messages\": [{\"role\": \"system\", \"content\": \" S \"}, {\"role\": \"user\", "
     "\"content\": \"u\"}]}",
     "S|1"},
    {"{{ '    ' * 2 }}|{{ 'a' + '\\n' * 2 + 'b' }}", "{}", "        |a\n\nb"},
    {"{%- macro render(spec, indent=0) -%}{%- if spec.type is string -%}{{ spec.type }}{%- elif "
     "spec.type is iterable -%}{{ spec.type | join(' | ') }}{%- endif -%}{%- if spec.properties is "
     "defined -%} {{ '{' }}{%- for name, s in spec.properties.items() -%}{{ name }}: {{ render(s, "
     "indent + 1) }}{%- if not loop.last %}, {% endif -%}{%- endfor -%}{{ '}' }}{%- endif -%}{%- "
     "endmacro -%}{{ render(p) }}",
     "{\"p\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}, \"b\": "
     "{\"type\": [\"integer\", \"null\"]}}}}",
     "object{a: string, b: integer | null}"},
    {"{% for m in messages %}{% if loop.index is divisibleby 2 %}E{% else %}O{% endif %}{% endfor "
     "%}",
     "{\"messages\": [1, 2, 3]}", "OEO"},
    {"{{ message.content.split('</think>')[-1].lstrip() }}",
     "{\"message\": {\"content\": \"<think>x</think>\\n\\n answer\"}}", "answer"},
    {"{{ tool_call.arguments | tojson }}",
     "{\"tool_call\": {\"arguments\": {\"city\": \"Paris\", \"n\": 2, \"ok\": true, \"f\": 0.5}}}",
     "{\"city\": \"Paris\", \"n\": 2, \"ok\": true, \"f\": 0.5}"},
    {"{%- if not tools is none %}T{% endif %}{%- if tools is not none and tools | length > 0 %}X{% "
     "endif %}",
     "{\"tools\": []}", "T"},
    {"{{ x | default(none) is none }}{{ y | default('') }}", "{}", "True"},
    {"{{ (a | string).startswith('[') }}", "{\"a\": [1]}", "True"},
    {"{%- set ns = namespace(found=false) -%}{%- for m in messages -%}{%- if m.role == 'system' "
     "-%}{%- set ns.found = true -%}{%- endif -%}{%- endfor -%}{{ ns.found }}",
     "{\"messages\": [{\"role\": \"user\"}, {\"role\": \"system\"}]}", "True"},
    {"{{ messages[-1].content if messages | length > 0 else '' }}",
     "{\"messages\": [{\"content\": \"last\"}]}", "last"},
    {"{{ '\"' + name + '\": ' + value | tojson }}", "{\"name\": \"k\", \"value\": \"v\\\"x\"}",
     "\"k\": \"v\\\"x\""},
    {"{{ content | replace('\\n', '\\\\n') }}", "{\"content\": \"a\\nb\"}", "a\\nb"},
    {"{{ 'Hello' | wordcount }}{{ 'a b c' | wordcount }}", "{}", "13"},
    {"{% for x in [3, 1, 2] | sort(reverse=true) %}{{ x }}{% endfor %}{% for x in items | "
     "sort(attribute='n') %}{{ x.n }}{% endfor %}",
     "{\"items\": [{\"n\": 2}, {\"n\": 1}]}", "32112"},
    {"{{ content[:5] }}|{{ content[-3:] }}|{{ content[2:-2] }}", "{\"content\": \"abcdefghij\"}",
     "abcde|hij|cdefgh"},
    {"{{ m.get('tool_calls') is none }}{{ m.get('tool_calls', []) | length }}", "{\"m\": {}}",
     "True0"},
    {"{%- for tool in tools %}{{- tool.function.name }}{%- if not loop.last %},{% endif %}{%- "
     "endfor %}",
     "{\"tools\": [{\"function\": {\"name\": \"a\"}}, {\"function\": {\"name\": \"b\"}}]}", "a,b"},
    {"{{ 1 if x is true else 0 }}{{ x is boolean }}{{ 1.5 is float }}{{ 2 is integer }}{{ true is "
     "integer }}",
     "{\"x\": true}", "1TrueTrueTrueFalse"},
    {"{{ '%s-%s' | format('a', 'b') }}", "{}", "a-b"},
    {"{{ x | string | length }}", "{\"x\": 12345}", "5"},
    {"{{ 'abc' | upper | lower | capitalize }}", "{}", "Abc"},
    {"{{ [1, 2, 3] | select('odd') | list }}{{ [1, 2, 3] | reject('odd') | list }}", "{}",
     "[1, 3][2]"},
    {"{{ '  a\\n  b  ' | indent(4, true) }}", "{}", "      a\n      b  "},
    {"{{ messages | map(attribute='content') | join('\\n') }}",
     "{\"messages\": [{\"content\": \"a\"}, {\"content\": \"b\"}]}", "a\nb"},
    {"{{ '%s-%s' | format('a', 'b') }}", "{}", "a-b"},
    {"{{ '%d items, %.2f avg, %5s|%-5s|%%' % (3, 2.5, 'ab', 'cd') }}", "{}",
     "3 items, 2.50 avg,    ab|cd   |%"},
    {"{{ '%r' % ('x',) }}{{ '%s' % 'solo' }}{{ '%03d' % 7 }}{{ '%x' % 255 }}", "{}",
     "'x'solo007ff"},
    {"{{ '{} and {}'.format('a', 1) }}|{{ '{0}{1}{0}'.format('x', 'y') }}|{{ "
     "'{name}!'.format(name='N') }}|{{ '{{literal}}'.format() }}",
     "{}", "a and 1|xyx|N!|{literal}"},
    {"{{ '%s %s' % ('only',) }}", "{}", NULL},
    {"{{ '%d' % 'x' }}", "{}", NULL},
    {"{{ '%s' % none }}{{ '%s' % true }}", "{}", "NoneTrue"},
    {"{{ 'Today: %s' | format(date) }}", "{\"date\": \"1 Jan\"}", "Today: 1 Jan"},
};

START_TEST(test_semantics_table)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char err[512] = "";
		int rc;
		char *got = render_src(cases[i].src, cases[i].vars, NULL, &rc, err, sizeof err);
		if (cases[i].want) {
			ck_assert_msg(got != NULL, "case %zu raised: %s\n%s", i, err, cases[i].src);
			ck_assert_msg(strcmp(got, cases[i].want) == 0,
			              "case %zu:\n%s\n got  [%s]\n want [%s]", i, cases[i].src, got,
			              cases[i].want);
		} else {
			ck_assert_msg(got == NULL && rc == MLLM_EINVAL,
			              "case %zu should raise (rc %d):\n%s", i, rc, cases[i].src);
		}
		free(got);
	}
}
END_TEST

START_TEST(test_raise_exception_message)
{
	char err[512] = "";
	int rc;
	char *got = render_src("a{{ raise_exception('Roles must alternate: ' ~ 3) }}", "{}", NULL,
	                       &rc, err, sizeof err);
	ck_assert_ptr_null(got);
	ck_assert_int_eq(rc, MLLM_EINVAL);
	/* The template's own words, nothing added: clients see them. */
	ck_assert_str_eq(err, "Roles must alternate: 3");
}
END_TEST

START_TEST(test_parse_errors)
{
	static const struct {
		const char *src;
		int rc;
		const char *where;
	} bad[] = {
	    {"line1\n{{ (1 + }}", MLLM_EFORMAT, "line 2, column "},
	    {"{% if x %}never closed", MLLM_EFORMAT, "line 1, column "},
	    {"ok\n\n  {% include 'x.jinja' %}", MLLM_EUNSUPPORTED, "line 3, column 6"},
	    {"{% extends 'base' %}", MLLM_EUNSUPPORTED, "line 1, column 4"},
	    {"{{ x | frobnicate }}", MLLM_EUNSUPPORTED, "line 1, column 8"},
	    {"{{ x is frobnicated }}", MLLM_EUNSUPPORTED, "line 1, column 9"},
	    {"{% for x in y recursive %}{% endfor %}", MLLM_EUNSUPPORTED, "line 1, column 15"},
	    {"{{ f(*args) }}", MLLM_EUNSUPPORTED, "line 1, column 6"},
	    {"{{ 'open }}", MLLM_EFORMAT, "line 1, column 4"},
	    {"{# open", MLLM_EFORMAT, "line 1, column 1"},
	    {"{% break %}", MLLM_EFORMAT, "line 1, column 4"},
	    {"{% endif %}", MLLM_EFORMAT, "line 1, column 4"},
	    {"{{ }}", MLLM_EFORMAT, "line 1, column 4"},
	    {"{% raw %}no end", MLLM_EFORMAT, "line 1, column "},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char err[512] = "";
		api_jinja *t = NULL;
		int rc = api_jinja_parse(bad[i].src, strlen(bad[i].src), &t, err, sizeof err);
		ck_assert_msg(rc == bad[i].rc, "%s: rc %d (%s)", bad[i].src, rc, err);
		ck_assert_ptr_null(t);
		ck_assert_msg(strncmp(err, bad[i].where, strlen(bad[i].where)) == 0,
		              "%s: error '%s' does not start with '%s'", bad[i].src, err,
		              bad[i].where);
	}
}
END_TEST

START_TEST(test_newlines_and_mentions)
{
	char err[256] = "";
	int rc;
	/* "\r\n" in the template reads as "\n"; one final newline goes. */
	char *got =
	    render_src("a\r\n{% if 1 %}\r\nb\r\n{% endif %}\r\n", "{}", NULL, &rc, err, sizeof err);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, "a\nb\n");
	free(got);
	api_jinja *t = parse_ok("{{ '<think>\\n' if x }}");
	ck_assert(api_jinja_mentions(t, "<think>"));
	ck_assert(!api_jinja_mentions(t, "</think>"));
	ck_assert(!api_jinja_mentions(NULL, "<think>"));
	api_jinja_free(t);
	api_jinja_free(NULL);
}
END_TEST

START_TEST(test_limits)
{
	char err[512];
	int rc;
	char *got;
	api_jinja_limits small = {.max_output = 1000, .max_work = 100000, .max_depth = 50};
	/* Output past the bound. */
	got = render_src("{% for i in range(1000) %}0123456789{% endfor %}", "{}", &small, &rc, err,
	                 sizeof err);
	ck_assert_ptr_null(got);
	ck_assert_int_eq(rc, MLLM_ENOSPACE);
	/* A string that doubles in a loop, never printed. */
	got = render_src("{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
	                 "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
	                 "{}", &small, &rc, err, sizeof err);
	ck_assert_ptr_null(got);
	ck_assert_int_eq(rc, MLLM_ENOSPACE);
	/* Repetition: an empty string or list any number of times is empty at
	 * once (a string looped 7e10 times, found by fuzzing; a list ran into
	 * the work budget); a non-empty string stops at the output bound. */
	got =
	    render_src("{{ '' * 70000000000 }}x{{ 'ab' * 0 }}{{ 'ab' * -3 }}{{ 70000000000 * '' }}",
	               "{}", &small, &rc, err, sizeof err);
	ck_assert_str_eq(got, "x");
	free(got);
	got = render_src("{{ ([] * 70000000000) | length }}", "{}", &small, &rc, err, sizeof err);
	ck_assert_str_eq(got, "0");
	free(got);
	got = render_src("{{ 'ab' * 70000000000 }}", "{}", &small, &rc, err, sizeof err);
	ck_assert_ptr_null(got);
	ck_assert_int_eq(rc, MLLM_ENOSPACE);
	/* Nested loops: a million iterations against a 100k budget. */
	got = render_src("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}"
	                 "{% endfor %}",
	                 "{}", &small, &rc, err, sizeof err);
	ck_assert_ptr_null(got);
	ck_assert_int_eq(rc, MLLM_ERANGE);
	/* Unbounded recursion. */
	got = render_src("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "{}", &small, &rc, err,
	                 sizeof err);
	ck_assert_ptr_null(got);
	ck_assert_int_eq(rc, MLLM_ERANGE);
	/* A list that doubles. */
	got = render_src("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}"
	                 "{% set ns.l = ns.l + ns.l %}{% endfor %}",
	                 "{}", &small, &rc, err, sizeof err);
	ck_assert_ptr_null(got);
	ck_assert_int_eq(rc, MLLM_ERANGE);
	/* A namespace that holds itself: compared, printed and freed
	 * without recursion running away (ASan checks the freeing). */
	got = render_src("{% set ns = namespace(a=1) %}{% set ns.a = [ns, 2] %}"
	                 "{{ ns == ns }}{{ ns.a | length }}{{ ns.a[0].a[1] }}",
	                 "{}", &small, &rc, err, sizeof err);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, "True22");
	free(got);
	/* A format width that would make snprintf pad for ever. */
	got = render_src("{{ '%999999999999s' % 'x' }}", "{}", &small, &rc, err, sizeof err);
	ck_assert_ptr_null(got);
	ck_assert_int_eq(rc, MLLM_EUNSUPPORTED);
	/* Under the bounds the same kinds of template render. */
	got = render_src("{% for i in range(10) %}{{ i }}{% endfor %}", "{}", &small, &rc, err,
	                 sizeof err);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, "0123456789");
	free(got);
}
END_TEST

START_TEST(test_parse_depth_bounded)
{
	/* 100k nested parentheses or ifs must fail cleanly, not overflow
	 * the stack. */
	size_t n = 100000;
	char *src = malloc(n * 10 + 16);
	char err[256];
	api_jinja *t = NULL;
	size_t o = 0;
	ck_assert_ptr_nonnull(src);
	o += (size_t)sprintf(src + o, "{{ ");
	for (size_t i = 0; i < n; i++)
		src[o++] = '(';
	src[o++] = '1';
	for (size_t i = 0; i < n; i++)
		src[o++] = ')';
	o += (size_t)sprintf(src + o, " }}");
	ck_assert_int_eq(api_jinja_parse(src, o, &t, err, sizeof err), MLLM_EUNSUPPORTED);
	ck_assert_ptr_null(t);
	o = 0;
	for (size_t i = 0; i < n / 10; i++)
		o += (size_t)sprintf(src + o, "{%%if 1%%}");
	ck_assert_int_eq(api_jinja_parse(src, o, &t, err, sizeof err), MLLM_EUNSUPPORTED);
	ck_assert_ptr_null(t);
	free(src);
}
END_TEST

START_TEST(test_shared_tree_threads)
{
	/* A parsed tree holds no jansson values: renders from many threads
	 * at once see the same text. Here: sequential renders of one tree
	 * give identical output, and rendering does not change the tree. */
	api_jinja *t = parse_ok("{% for m in messages %}{{ m.role | upper }}:{{ m.content }};"
	                        "{% endfor %}");
	json_t *vars = json_pack("{s[{ssss}{ssss}]}", "messages", "role", "user", "content", "hi",
	                         "role", "assistant", "content", "yo");
	char err[256];
	for (int k = 0; k < 3; k++) {
		mllm_buf b;
		mllm_buf_init(&b, 1 << 16);
		ck_assert_int_eq(api_jinja_render(t, vars, NULL, &b, err, sizeof err), 0);
		ck_assert_str_eq(b.data, "USER:hi;ASSISTANT:yo;");
		mllm_buf_free(&b);
	}
	/* The caller's variables are borrowed, never modified. */
	ck_assert_int_eq(json_object_size(vars), 1);
	ck_assert_int_eq(vars->refcount, 1);
	json_decref(vars);
	api_jinja_free(t);
}
END_TEST

/* ---- fuzz ------------------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t rnd_below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static void seed(uint64_t salt)
{
	const char *s = getenv("MLLM_FUZZ_SEED");
	rng_state = (s && *s ? strtoull(s, NULL, 0) : 20261202ull) ^ salt;
}

static int iterations(int base)
{
	return mllm_test_long() ? base * 100 : base;
}

static const char *const names[] = {"x", "y", "messages", "m", "ns", "loop", "tools", "i", "s"};
static const char *const attrs[] = {"role", "content", "a", "b", "index", "first", "length", "x"};
static const char *const filters[] = {"trim",
                                      "tojson",
                                      "length",
                                      "default('d')",
                                      "first",
                                      "last",
                                      "join(',')",
                                      "upper",
                                      "lower",
                                      "items",
                                      "list",
                                      "string",
                                      "int",
                                      "float",
                                      "abs",
                                      "unique",
                                      "sort",
                                      "reverse",
                                      "sum",
                                      "indent(2)",
                                      "e",
                                      "wordcount",
                                      "center(9)",
                                      "batch(2)",
                                      "map(attribute='a')",
                                      "selectattr('a')",
                                      "rejectattr('b', 'none')",
                                      "dictsort",
                                      "min",
                                      "replace('a', 'bb')",
                                      "tojson(indent=2)",
                                      "select('odd')",
                                      "title",
                                      "capitalize",
                                      "count",
                                      "format(1, 'x')"};
static const char *const tests[] = {"defined", "none",           "string", "mapping", "iterable",
                                    "number",  "false",          "true",   "odd",     "sameas none",
                                    "in [1]",  "divisibleby(3)", "lower",  "eq 1",    "sequence"};
static const char *const methods[] = {
    "startswith('a')", "endswith('')",     "split()",    "split(',')", "strip()",
    "lstrip('x')",     "rstrip()",         "upper()",    "items()",    "get('a')",
    "keys()",          "replace('', '-')", "find('b')",  "count('a')", "join(['q', 'r'])",
    "values()",        "title()",          "cycle(1, 2)"};
static const char *const binops[] = {"+",  "-", "*",  "/", "//", "%",  "**",     "~",   "==",
                                     "!=", "<", "<=", ">", ">=", "in", "not in", "and", "or"};

static void gen_expr(mllm_buf *b, int depth);

static void put(mllm_buf *b, const char *s)
{
	ck_assert_int_eq(mllm_buf_append(b, s, strlen(s)), 0);
}

static void gen_atom(mllm_buf *b, int depth)
{
	char tmp[64];
	switch (rnd_below(depth > 3 ? 6 : 11)) {
	case 0:
		snprintf(tmp, sizeof tmp, "%d", (int)rnd_below(200) - 100);
		put(b, tmp);
		break;
	case 1:
		put(b, rnd_below(2) ? "'a,b x'" : "\"<think>\\n\"");
		break;
	case 2:
		put(b, rnd_below(3) ? "true" : rnd_below(2) ? "none" : "2.5");
		break;
	case 3:
	case 4:
	case 5:
		put(b, names[rnd_below(sizeof names / sizeof names[0])]);
		break;
	case 6:
		put(b, "[");
		gen_expr(b, depth + 1);
		put(b, ", ");
		gen_expr(b, depth + 1);
		put(b, "]");
		break;
	case 7:
		put(b, "{'a': ");
		gen_expr(b, depth + 1);
		put(b, ", 'b': 1}");
		break;
	case 8:
		put(b, "(");
		gen_expr(b, depth + 1);
		put(b, ")");
		break;
	case 9:
		put(b, "range(");
		snprintf(tmp, sizeof tmp, "%d", (int)rnd_below(12) - 2);
		put(b, tmp);
		put(b, ")");
		break;
	default:
		put(b, "namespace(a=");
		gen_expr(b, depth + 1);
		put(b, ")");
		break;
	}
}

/* Every compound form is parenthesised, so any nesting is valid syntax. */
static void gen_expr(mllm_buf *b, int depth)
{
	if (depth > 4 || rnd_below(3) == 0) {
		gen_atom(b, depth);
		return;
	}
	put(b, "(");
	switch (rnd_below(8)) {
	case 0:
		gen_expr(b, depth + 1);
		put(b, ").");
		put(b, attrs[rnd_below(sizeof attrs / sizeof attrs[0])]);
		return;
	case 1:
		gen_expr(b, depth + 1);
		put(b, ")[");
		gen_expr(b, depth + 1);
		put(b, "]");
		return;
	case 2:
		gen_expr(b, depth + 1);
		put(b, rnd_below(2) ? ")[::-1]" : ")[1:]");
		return;
	case 3:
		gen_expr(b, depth + 1);
		put(b, " | ");
		put(b, filters[rnd_below(sizeof filters / sizeof filters[0])]);
		break;
	case 4:
		gen_expr(b, depth + 1);
		put(b, rnd_below(2) ? " is " : " is not ");
		put(b, tests[rnd_below(sizeof tests / sizeof tests[0])]);
		break;
	case 5:
		gen_expr(b, depth + 1);
		put(b, ").");
		put(b, methods[rnd_below(sizeof methods / sizeof methods[0])]);
		return;
	case 6:
		gen_expr(b, depth + 1);
		put(b, " ");
		put(b, binops[rnd_below(sizeof binops / sizeof binops[0])]);
		put(b, " ");
		gen_expr(b, depth + 1);
		break;
	default:
		gen_expr(b, depth + 1);
		put(b, " if ");
		gen_expr(b, depth + 1);
		put(b, " else ");
		gen_expr(b, depth + 1);
		break;
	}
	put(b, ")");
}

static void gen_stmts(mllm_buf *b, int depth)
{
	for (int k = (int)rnd_below(5) + 1; k > 0; k--) {
		const char *ws[] = {"", "-", "+"};
		const char *l = ws[rnd_below(3)], *r = ws[rnd_below(2)];
		switch (rnd_below(depth > 3 ? 3 : 10)) {
		case 0:
			put(b, rnd_below(2) ? "text\n  " : " \t");
			break;
		case 1:
			put(b, "{{");
			put(b, rnd_below(2) ? "- " : " ");
			gen_expr(b, depth);
			put(b, " }}");
			break;
		case 2:
			mllm_buf_appendf(b, "{%%%s set %s = ", l, rnd_below(2) ? "x" : "s") == 0
			    ? (void)0
			    : ck_abort();
			gen_expr(b, depth);
			mllm_buf_appendf(b, " %s%%}\n", r) == 0 ? (void)0 : ck_abort();
			break;
		case 3:
		case 4:
			mllm_buf_appendf(b, "{%%%s if ", l) == 0 ? (void)0 : ck_abort();
			gen_expr(b, depth);
			put(b, " %}");
			gen_stmts(b, depth + 1);
			if (rnd_below(2)) {
				put(b, "{% elif ");
				gen_expr(b, depth);
				put(b, " %}");
				gen_stmts(b, depth + 1);
			}
			if (rnd_below(2)) {
				put(b, "{% else %}");
				gen_stmts(b, depth + 1);
			}
			mllm_buf_appendf(b, "{%% endif %s%%}\n", r) == 0 ? (void)0 : ck_abort();
			break;
		case 5:
		case 6:
			put(b, rnd_below(2) ? "{% for m in " : "{% for i, m in ");
			gen_expr(b, depth);
			put(b, rnd_below(3) ? " %}" : " if m %}");
			gen_stmts(b, depth + 1);
			if (rnd_below(4) == 0)
				put(b, rnd_below(2) ? "{% break %}" : "{% continue %}");
			if (rnd_below(3) == 0) {
				put(b, "{% else %}");
				gen_stmts(b, depth + 1);
			}
			put(b, "{% endfor %}");
			break;
		case 7:
			put(b, "{% set ns = namespace(a=1) %}{% set ns.a = ");
			gen_expr(b, depth);
			put(b, " %}");
			break;
		case 8:
			put(b, "{% macro mac(p, q=2) %}");
			gen_stmts(b, depth + 1);
			put(b, "{% endmacro %}{{ mac(");
			gen_expr(b, depth);
			put(b, ") }}");
			break;
		default:
			put(b, "{% set s %}");
			gen_stmts(b, depth + 1);
			put(b, "{% endset %}{# c #}");
			break;
		}
	}
}

static json_t *gen_json(int depth)
{
	switch (rnd_below(depth > 3 ? 5 : 8)) {
	case 0:
		return json_integer((json_int_t)rnd_below(7) - 3);
	case 1:
		return json_string(rnd_below(2) ? "a b" : "x</think>y\u00e9");
	case 2:
		return rnd_below(2) ? json_null() : json_true();
	case 3:
		return json_real(rnd_below(2) ? 0.5 : -1e-7);
	case 4:
		return json_string("");
	case 5:
	case 6: {
		json_t *a = json_array();
		for (int k = (int)rnd_below(4); k > 0; k--)
			json_array_append_new(a, gen_json(depth + 1));
		return a;
	}
	default: {
		json_t *o = json_object();
		for (int k = (int)rnd_below(4); k > 0; k--)
			json_object_set_new(o, attrs[rnd_below(sizeof attrs / sizeof attrs[0])],
			                    gen_json(depth + 1));
		return o;
	}
	}
}

static void fuzz_one(const char *src, size_t len, json_t *vars, int *n_parsed, int *n_ok)
{
	static const api_jinja_limits lim = {
	    .max_output = 1 << 16, .max_work = 200000, .max_depth = 120};
	char err[512];
	api_jinja *t = NULL;
	mllm_buf b;
	int rc = api_jinja_parse(src, len, &t, err, sizeof err);
	ck_assert_msg(rc == 0 || rc == MLLM_EFORMAT || rc == MLLM_EUNSUPPORTED, "parse rc %d", rc);
	if (rc != 0) {
		if (getenv("MLLM_FUZZ_DUMP"))
			fprintf(stderr, "%s\n%.*s\n\n", err, (int)len, src);
		ck_assert_ptr_null(t);
		ck_assert_msg(strncmp(err, "line ", 5) == 0, "parse error without a position: %s",
		              err);
		return;
	}
	(*n_parsed)++;
	mllm_buf_init(&b, (size_t)1 << 20);
	rc = api_jinja_render(t, vars, &lim, &b, err, sizeof err);
	ck_assert_msg(rc == 0 || rc == MLLM_EINVAL || rc == MLLM_ENOSPACE || rc == MLLM_ERANGE ||
	                  rc == MLLM_EUNSUPPORTED,
	              "render rc %d: %s\n%.*s", rc, err, (int)len, src);
	ck_assert_uint_le(b.len, lim.max_output);
	*n_ok += rc == 0;
	mllm_buf_free(&b);
	api_jinja_free(t);
}

START_TEST(test_fuzz_grammar)
{
	int n = iterations(1500), n_parsed = 0, n_ok = 0;
	seed(1);
	for (int i = 0; i < n; i++) {
		mllm_buf b;
		json_t *vars = json_object();
		mllm_buf_init(&b, (size_t)1 << 20);
		gen_stmts(&b, 0);
		for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
			if (rnd_below(3))
				json_object_set_new(vars, names[k], gen_json(0));
		}
		if (getenv("MLLM_FUZZ_DUMP")) {
			json_t *o = json_pack("{s:s%,s:O}", "t", b.data, b.len, "v", vars);
			char *line = json_dumps(o, JSON_COMPACT);
			fprintf(stderr, "%s\n", line);
			free(line);
			json_decref(o);
		}
		fuzz_one(b.data, b.len, vars, &n_parsed, &n_ok);
		json_decref(vars);
		mllm_buf_free(&b);
	}
	/* The grammar writes valid templates, and most render: a generator
	 * that only produced errors would test nothing. */
	ck_assert_int_eq(n_parsed, n);
	ck_assert_int_gt(n_ok, n / 20);
}
END_TEST

START_TEST(test_fuzz_mutated_fixtures)
{
	int n = iterations(200), n_parsed = 0, n_ok = 0;
	json_t *convs = load_jsonl(GOLDEN_DIR "conversations.jsonl", NULL);
	seed(2);
	for (int i = 0; i < n; i++) {
		const char *name = template_names[rnd_below(5)];
		char rel[256], path[4096];
		size_t len;
		char *src;
		json_t *conv = json_array_get(convs, rnd_below(json_array_size(convs)));
		json_t *vars = golden_vars(name, conv);
		snprintf(rel, sizeof rel, GOLDEN_DIR "%s.jinja", name);
		mllm_test_path(path, sizeof path, rel);
		src = slurp(path, &len);
		/* A few byte edits: deletions, duplications, flips. */
		for (int k = (int)rnd_below(4); k > 0 && len > 2; k--) {
			size_t at = rnd_below(len);
			switch (rnd_below(3)) {
			case 0:
				memmove(src + at, src + at + 1, len - at - 1);
				len--;
				break;
			case 1:
				src[at] = "{}%#-+()[]|.'\"\n x"[rnd_below(17)];
				break;
			default:
				src[at] ^= (char)(1 << rnd_below(8));
				break;
			}
		}
		if (rnd_below(2))
			json_object_set_new(vars, "messages", gen_json(0));
		fuzz_one(src, len, vars, &n_parsed, &n_ok);
		json_decref(vars);
		free(src);
	}
	ck_assert_int_gt(n_parsed, 0);
	json_decref(convs);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("jinja");
	TCase *tc = tcase_create("render");
	TCase *fz = tcase_create("fuzz");
	tcase_add_test(tc, test_fixture_goldens);
	tcase_add_test(tc, test_semantics_table);
	tcase_add_test(tc, test_raise_exception_message);
	tcase_add_test(tc, test_parse_errors);
	tcase_add_test(tc, test_newlines_and_mentions);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_parse_depth_bounded);
	tcase_add_test(tc, test_shared_tree_threads);
	tcase_set_timeout(tc, 60);
	tcase_add_test(fz, test_fuzz_grammar);
	tcase_add_test(fz, test_fuzz_mutated_fixtures);
	tcase_set_timeout(fz, mllm_test_long() ? 3600 : 120);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, fz);
	return s;
}

MLLM_TEST_MAIN(make_suite)
