/*
 * test_schema.c — JSON Schema → grammar: for each supported keyword, texts
 * the schema accepts are sentences of the grammar and texts it rejects are
 * not; unsupported keywords fail with a 400 whose message names the JSON
 * pointer; response_format goes from a request body to sp.grammar.
 */
#include "harness.h"

#include "../../api/api_internal.h"
#include "../../engine/gmatch.h"

/* Compiles schema text; NULL with *e filled on failure. */
static mllm_grammar *compile_text(const char *schema, api_error *e)
{
	json_error_t jerr;
	json_t *s = json_loads(schema, 0, &jerr);
	api__sc *c;
	mllm_grammar *g = NULL;
	int32_t v;
	ck_assert_msg(s != NULL, "bad test schema: %s", jerr.text);
	memset(e, 0, sizeof *e);
	c = api__sc_create();
	ck_assert_ptr_nonnull(c);
	v = api__sc_schema(c, s, s, "response_format", e);
	if (v >= 0 && api__sc_finish(c, v, "response_format", &g, e) != 0)
		g = NULL;
	api__sc_free(c);
	json_decref(s);
	return g;
}

static void expect(mllm_grammar *g, const char *text, int want)
{
	int got = mllm_grammar_match(g, text, strlen(text));
	ck_assert_msg(got == want, "'%s': match %d, want %d", text, got, want);
}

START_TEST(test_object_required_optional)
{
	api_error e;
	mllm_grammar *g =
	    compile_text("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
	                 "\"b\":{\"type\":\"string\"},\"c\":{\"type\":\"boolean\"}},"
	                 "\"required\":[\"a\",\"c\"],\"additionalProperties\":false}",
	                 &e);
	ck_assert_ptr_nonnull(g);
	expect(g, "{\"a\":1,\"c\":true}", 1);
	expect(g, "{\"a\":-12,\"b\":\"x y\",\"c\":false}", 1);
	expect(g, " {\n  \"a\": 0,\n  \"c\": true\n}", 1);
	expect(g, "{\"a\":1", 0);              /* a viable prefix */
	expect(g, "{\"a\":1}", -1);            /* c missing */
	expect(g, "{\"c\":true,\"a\":1}", -1); /* schema order */
	expect(g, "{\"a\":01,\"c\":true}", -1);
	expect(g, "{\"a\":1,\"c\":true,\"d\":1}", -1);
	expect(g, "{\"a\":1,,\"c\":true}", -1);
	expect(g, "{\"a\":1,\"c\":true} ", -1); /* nothing after the value */
	mllm_grammar_unref(g);
}
END_TEST

START_TEST(test_strings_and_numbers)
{
	api_error e;
	mllm_grammar *g = compile_text(
	    "{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\",\"minLength\":2,"
	    "\"maxLength\":3},{\"type\":\"number\"},{\"type\":\"integer\",\"minimum\":1,"
	    "\"maximum\":5},{\"type\":\"integer\",\"minimum\":0}],\"items\":false}",
	    &e);
	ck_assert_ptr_nonnull(g);
	expect(g, "[\"ab\",1.5e3,3,0]", 1);
	expect(g, "[\"ab\",1.5e99,3,0]", 1);
	expect(g, "[\"ab\",1.5e999,3,0]", -1); /* Infinity as a double */
	expect(g, "[\"\\u00e9\\n\xc3\xa9\",-0.25,5,123]", 1);
	expect(g, "[\"a\",1,3,0]", -1);         /* too short */
	expect(g, "[\"abcd\",1,3,0]", -1);      /* too long */
	expect(g, "[\"ab\",1,6,0]", -1);        /* above maximum */
	expect(g, "[\"ab\",1,3,-1]", -1);       /* below minimum */
	expect(g, "[\"ab\",.5,3,0]", -1);       /* not JSON */
	expect(g, "[\"a\x01\",1,3,0]", -1);     /* raw control character */
	expect(g, "[\"a\\ud800\",1,3,0]", -1);  /* lone surrogate escape */
	expect(g, "[\"a\xc0\xaf\",1,3,0]", -1); /* overlong UTF-8 */
	expect(g, "[\"ab\",1,3,0,1]", -1);      /* items: false */
	mllm_grammar_unref(g);
}
END_TEST

START_TEST(test_enum_const_anyof_ref)
{
	api_error e;
	mllm_grammar *g = compile_text(
	    "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"enum\":[\"x\",2,"
	    "null]},\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"},"
	    "\"maxItems\":2}},\"required\":[\"v\"]}},\"anyOf\":[{\"$ref\":\"#/$defs/node\"},"
	    "{\"const\":{\"k\":[1,true]}},{\"type\":[\"null\",\"boolean\"]}]}",
	    &e);
	ck_assert_msg(g != NULL, "%s", e.message);
	expect(g, "{\"v\":\"x\"}", 1);
	expect(g, "{\"v\":2,\"kids\":[{\"v\":null},{\"v\":\"x\",\"kids\":[]}]}", 1);
	expect(g, "{\"v\":3}", -1);
	expect(g, "{\"v\":2,\"kids\":[{\"v\":2},{\"v\":2},{\"v\":2}]}", -1);
	expect(g, "{\"k\":[1,true]}", 1);
	expect(g, "{\"k\":[1,false]}", -1);
	expect(g, "null", 1);
	expect(g, "false", 1);
	expect(g, "\"x\"", -1);
	mllm_grammar_unref(g);
	/* What generators write beside enum/const/anyOf still compiles: a
	 * type every value has, annotations, nullable. */
	static const char *const ok[] = {
	    "{\"type\":\"string\",\"enum\":[\"a\",\"b\"],\"description\":\"d\"}",
	    "{\"type\":[\"integer\",\"null\"],\"enum\":[1,null,2.0]}",
	    "{\"type\":\"number\",\"const\":1.5,\"title\":\"t\"}",
	    "{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}],\"default\":null,"
	    "\"title\":\"T\"}",
	    "{\"enum\":[\"a\"],\"nullable\":true}",
	    /* Inferred types: other types' keywords are vacuous there. */
	    "{\"items\":{\"type\":\"string\"},\"minItems\":1}",
	    "{\"properties\":{\"a\":{\"type\":\"string\"}},\"maxLength\":3}",
	    "{\"type\":\"string\",\"enum\":[\"a\",null],\"nullable\":true}",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		g = compile_text(ok[i], &e);
		ck_assert_msg(g != NULL, "%s: %s", ok[i], e.message);
		mllm_grammar_unref(g);
	}
}
END_TEST

START_TEST(test_pattern_and_format)
{
	api_error e;
	mllm_grammar *g = compile_text(
	    "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\",\"pattern\":"
	    "\"^[A-Z]{2}-\\\\d{3}(x|yz)?$\"},\"any\":{\"type\":\"string\",\"pattern\":\"a\\\"b\"},"
	    "\"d\":{\"type\":\"string\",\"format\":\"date\"},\"u\":{\"type\":\"string\","
	    "\"format\":\"uuid\"}},\"required\":[\"code\",\"any\",\"d\",\"u\"]}",
	    &e);
	ck_assert_msg(g != NULL, "%s", e.message);
	expect(g,
	       "{\"code\":\"AB-123yz\",\"any\":\"..a\\\"b..\",\"d\":\"2024-02-28\","
	       "\"u\":\"123e4567-e89b-12d3-a456-426614174000\"}",
	       1);
	expect(g,
	       "{\"code\":\"AB-123\",\"any\":\"a\\\"b\",\"d\":\"1999-12-31\","
	       "\"u\":\"123e4567-e89b-12d3-a456-426614174000\"}",
	       1);
	expect(g, "{\"code\":\"Ab-123\"", -1);
	expect(g, "{\"code\":\"AB-123q\"", -1);
	expect(g, "{\"code\":\"AB-123\",\"any\":\"ab", 0);
	expect(g, "{\"code\":\"AB-123\",\"any\":\"ab\"", -1); /* needs a"b somewhere */
	expect(g, "{\"code\":\"AB-123\",\"any\":\"a\\\"b\",\"d\":\"2024-02-30\"", -1);
	expect(g, "{\"code\":\"AB-123\",\"any\":\"a\\\"b\",\"d\":\"2024-13-01\"", -1);
	mllm_grammar_unref(g);
	/* Nested repetition whose repeated part cannot match nothing (a
	 * host name) is fine. */
	g = compile_text("{\"type\":\"string\",\"pattern\":\"^([a-z]+\\\\.)+[a-z]{2,}$\"}", &e);
	ck_assert_msg(g != NULL, "%s", e.message);
	expect(g, "\"mail.example.org\"", 1);
	expect(g, "\"org\"", -1);
	mllm_grammar_unref(g);
	/* \\S and [^\\s] leave out Unicode's blanks too, as JS and Python's
	 * \\s matches them (U+3000, U+2028, U+00A0, U+FEFF). */
	g = compile_text("{\"type\":\"string\",\"pattern\":\"^\\\\S{1,3}[^\\\\s]?$\"}", &e);
	ck_assert_msg(g != NULL, "%s", e.message);
	expect(g, "\"ab\xc3\xa9\"", 1);
	expect(g, "\"\xe4\xbd\xa0\"", 1);
	expect(g, "\"a\xe3\x80\x80\"", -1);
	expect(g, "\"a\xe2\x80\xa8\"", -1);
	expect(g, "\"a\xc2\xa0\"", -1);
	expect(g, "\"a\xef\xbb\xbf\"", -1);
	expect(g, "\"a\xc2\x85\"", -1); /* NEL: Python's \\s */
	mllm_grammar_unref(g);
	/* A final $ after an escaped backslash anchors (^\\$: one
	 * backslash); after an escaping one it is a literal $ (a\$). */
	g = compile_text("{\"type\":\"string\",\"pattern\":\"^\\\\\\\\$\"}", &e);
	ck_assert_msg(g != NULL, "%s", e.message);
	expect(g, "\"\\\\\"", 1);
	expect(g, "\"\\\\x\"", -1);
	expect(g, "\"\\\\\\\\\"", -1);
	mllm_grammar_unref(g);
	g = compile_text("{\"type\":\"string\",\"pattern\":\"a\\\\$\"}", &e);
	ck_assert_msg(g != NULL, "%s", e.message);
	expect(g, "\"xa$y\"", 1);
	expect(g, "\"xa\"", -1);
	mllm_grammar_unref(g);
}
END_TEST

/* OpenAPI's nullable (zod's .nullable() through the OpenAI SDK) adds null
 * to whatever the schema allows. */
START_TEST(test_nullable)
{
	api_error e;
	mllm_grammar *g = compile_text(
	    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"nullable\":"
	    "true},\"b\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3,\"nullable\":false},"
	    "\"c\":{\"enum\":[\"x\"],\"nullable\":true}},\"required\":[\"a\",\"b\",\"c\"],"
	    "\"additionalProperties\":false}",
	    &e);
	ck_assert_msg(g != NULL, "%s", e.message);
	expect(g, "{\"a\":\"s\",\"b\":2,\"c\":\"x\"}", 1);
	expect(g, "{\"a\":null,\"b\":2,\"c\":null}", 1);
	expect(g, "{\"a\":null,\"b\":null", -1); /* nullable: false */
	expect(g, "{\"a\":1", -1);
	mllm_grammar_unref(g);
	g = compile_text("{\"type\":\"string\",\"nullable\":\"yes\"}", &e);
	ck_assert_ptr_null(g);
	ck_assert_int_eq(e.status, 400);
	ck_assert_ptr_nonnull(strstr(e.message, "#/nullable"));
}
END_TEST

/* Numbers between integer bounds (zod's .min(0).max(1)): every decimal in
 * the interval, open ends honoured, nothing outside. */
START_TEST(test_number_ranges)
{
	static const struct {
		const char *schema;
		const char *yes[8], *no[8];
	} cases[] = {
	    {"{\"type\":\"number\",\"minimum\":0,\"maximum\":1}",
	     {"0", "1", "0.5", "0.999", "1.0", "1.000", "0.0", NULL},
	     {"1.5", "-0.1", "2", "1.01", "10", "-1", "1e0", NULL}},
	    {"{\"type\":\"number\",\"minimum\":-2,\"maximum\":3}",
	     {"-2", "-1.75", "-0.5", "0", "2.25", "3", "-2.0", "-0.01"},
	     {"-2.5", "-3", "3.5", "4", "-2.01", NULL}},
	    {"{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":1}",
	     {"0.5", "0.001", "0.99", NULL},
	     {"0", "0.0", "0.000", "1", "1.0", "-0.5", NULL}},
	    {"{\"type\":\"number\",\"minimum\":-5,\"exclusiveMaximum\":-1}",
	     {"-5", "-4.5", "-1.5", "-1.001", NULL},
	     {"-1", "-1.0", "0", "-5.5", "-6", NULL}},
	    {"{\"type\":\"number\",\"exclusiveMinimum\":-1,\"maximum\":0}",
	     {"-0.5", "0", "-0.999", NULL},
	     {"-1", "-1.0", "0.5", "1", NULL}},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		api_error e;
		mllm_grammar *g = compile_text(cases[i].schema, &e);
		ck_assert_msg(g != NULL, "%s: %s", cases[i].schema, e.message);
		for (int k = 0; k < 8 && cases[i].yes[k]; k++)
			expect(g, cases[i].yes[k], 1);
		for (int k = 0; k < 8 && cases[i].no[k]; k++) {
			int got = mllm_grammar_match(g, cases[i].no[k], strlen(cases[i].no[k]));
			ck_assert_msg(got != 1, "%s accepts %s", cases[i].schema, cases[i].no[k]);
		}
		mllm_grammar_unref(g);
	}
	/* An empty interval, and bounds too far apart, are refused. */
	static const char *const bad[] = {
	    "{\"type\":\"number\",\"exclusiveMinimum\":1,\"exclusiveMaximum\":1}",
	    "{\"type\":\"number\",\"minimum\":0,\"maximum\":5000}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		api_error e;
		ck_assert_ptr_null(compile_text(bad[i], &e));
		ck_assert_int_eq(e.status, 400);
	}
}
END_TEST

/* date-time in UTC only (what zod's default .datetime() accepts). */
START_TEST(test_date_time_utc)
{
	api_error e;
	mllm_grammar *g = compile_text("{\"type\":\"string\",\"format\":\"date-time\"}", &e);
	ck_assert_msg(g != NULL, "%s", e.message);
	expect(g, "\"2024-02-28T10:43:31Z\"", 1);
	expect(g, "\"2024-02-28T10:43:31.25Z\"", 1);
	expect(g, "\"2024-02-28T10:43:31+02:00\"", -1);
	expect(g, "\"2024-02-28T10:43:31\"", -1);
	expect(g, "\"0001-01-01T00:00:00Z\"", 1);
	expect(g, "\"0000-01-01T00:00:00Z\"", -1); /* year 0: Python's datetime refuses it */
	mllm_grammar_unref(g);
}
END_TEST

/* Draft-07's tuple (items as an array, additionalItems for the rest), as
 * the AI SDK's and zod 3's converters write z.tuple; and zod's record with
 * propertyNames {type: string}, as LangChain's converter writes it. */
START_TEST(test_draft07_tuple_and_record)
{
	api_error e;
	mllm_grammar *g = compile_text(
	    "{\"type\":\"array\",\"items\":[{\"type\":\"boolean\"},{\"enum\":[\"p\",\"q\"]}],"
	    "\"additionalItems\":false,\"minItems\":2,\"maxItems\":2}",
	    &e);
	ck_assert_msg(g != NULL, "%s", e.message);
	expect(g, "[true,\"q\"]", 1);
	expect(g, "[true", 0);
	expect(g, "[true]", -1);
	expect(g, "[\"q\",true]", -1);
	expect(g, "[true,\"q\",1]", -1);
	mllm_grammar_unref(g);
	/* additionalItems as a schema: the rest, each of it */
	g = compile_text("{\"type\":\"array\",\"items\":[{\"type\":\"null\"}],"
	                 "\"additionalItems\":{\"type\":\"integer\"}}",
	                 &e);
	ck_assert_msg(g != NULL, "%s", e.message);
	expect(g, "[null]", 1);
	expect(g, "[null,1,2]", 1);
	expect(g, "[null,\"x\"]", -1);
	mllm_grammar_unref(g);
	g = compile_text(
	    "{\"type\":\"object\",\"properties\":{\"m\":{\"type\":\"object\","
	    "\"propertyNames\":{\"type\":\"string\"},\"additionalProperties\":{"
	    "\"type\":\"integer\"}}},\"required\":[\"m\"],\"additionalProperties\":false}",
	    &e);
	ck_assert_msg(g != NULL, "%s", e.message);
	expect(g, "{\"m\":{\"a\":1,\"b\":2}}", 1);
	expect(g, "{\"m\":{\"a\":\"x\"}}", -1);
	mllm_grammar_unref(g);
	/* names constrained: not enforced, so refused */
	ck_assert_ptr_null(
	    compile_text("{\"type\":\"object\",\"propertyNames\":{\"pattern\":\"^a\"}}", &e));
	ck_assert_msg(strstr(e.message, "#/propertyNames") != NULL, "%s", e.message);
	/* an empty draft-07 tuple: errors name additionalItems, the rest */
	ck_assert_ptr_null(compile_text("{\"type\":\"array\",\"items\":[],\"additionalItems\":{"
	                                "\"type\":\"integer\",\"minimum\":\"x\"}}",
	                                &e));
	ck_assert_msg(strstr(e.message, "#/additionalItems/minimum") != NULL, "%s", e.message);
	ck_assert_ptr_null(
	    compile_text("{\"type\":\"array\",\"items\":[{}],\"prefixItems\":[{}]}", &e));
	ck_assert_msg(strstr(e.message, "#/items") != NULL, "%s", e.message);
}
END_TEST

START_TEST(test_unsupported_keywords)
{
	static const struct {
		const char *schema, *pointer;
	} cases[] = {
	    {"{\"type\":\"array\",\"uniqueItems\":true}", "#/uniqueItems"},
	    {"{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"number\","
	     "\"multipleOf\":2}}}",
	     "#/properties/n/multipleOf"},
	    {"{\"type\":\"string\",\"pattern\":\"(?=a)b\"}", "#/pattern"},
	    {"{\"type\":\"string\",\"format\":\"hostname\"}", "#/format"},
	    {"{\"type\":\"number\",\"minimum\":2.5}", "#/minimum"},
	    {"{\"$ref\":\"http://example.com/s.json\"}", "#/$ref"},
	    {"{\"type\":\"object\",\"properties\":{},\"required\":[\"x\"]}", "#/required/0"},
	    {"{\"type\":\"strin\"}", "#/type"},
	    {"{\"type\":\"string\",\"pattern\":\"((((((((((((((((((((((((((((((((((a)))))))))))))))"
	     ")))))))))))))))))))\"}",
	     "#/pattern"},
	    /* Keywords the grammar would not follow are refused, not
	     * ignored: beside anyOf/$ref/enum/const, and without a type. */
	    {"{\"type\":\"string\",\"anyOf\":[{\"maxLength\":3},{\"pattern\":\"^x\"}]}",
	     "'type' beside 'anyOf'"},
	    {"{\"$ref\":\"#/$defs/s\",\"maxLength\":2,\"$defs\":{\"s\":{\"type\":\"string\"}}}",
	     "'maxLength' beside '$ref'"},
	    {"{\"type\":\"integer\",\"enum\":[1,\"x\"]}", "not the schema's 'type'"},
	    {"{\"type\":\"string\",\"const\":5}", "not the schema's 'type'"},
	    {"{\"pattern\":\"^a$\"}", "needs a 'type'"},
	    {"{\"maxLength\":2}", "needs a 'type'"},
	    {"{\"type\":\"array\",\"items\":false,\"minItems\":1}", "not satisfiable"},
	    {"{\"type\":\"string\",\"maxLength\":2,\"allOf\":[{\"type\":\"string\"}]}",
	     "beside 'allOf'"},
	    {"{\"type\":\"string\",\"pattern\":\"(a*)*\"}", "can match nothing"},
	    /* Exponentially many ways to split a text (the matcher would
	     * follow them all at every byte). */
	    {"{\"type\":\"string\",\"pattern\":\"^(((a{0,10}){0,10}){0,10})$\"}",
	     "can match nothing"},
	    {"{\"type\":\"string\",\"pattern\":\"^(x|(b?c?)+)$\"}", "can match nothing"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		api_error e;
		mllm_grammar *g = compile_text(cases[i].schema, &e);
		ck_assert_msg(g == NULL, "%s compiled", cases[i].schema);
		ck_assert_int_eq(e.status, 400);
		ck_assert_str_eq(e.param, "response_format");
		ck_assert_msg(strstr(e.message, cases[i].pointer) != NULL, "'%s' lacks %s",
		              e.message, cases[i].pointer);
	}
}
END_TEST

START_TEST(test_request_response_format)
{
	api_limits lim = API_LIMITS_DEFAULT;
	api_request *req = NULL;
	api_error e;
	const char *ok = "{\"prompt\":\"x\",\"response_format\":{\"type\":\"json_schema\","
	                 "\"json_schema\":{\"name\":\"t\",\"strict\":true,\"schema\":{\"type\":"
	                 "\"object\",\"properties\":{\"a\":{\"type\":\"boolean\"}},"
	                 "\"required\":[\"a\"]}}}}";
	const char *bad_type = "{\"prompt\":\"x\",\"response_format\":{\"type\":\"xml\"}}";
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(api_request_parse(API_COMPLETION, ok, strlen(ok), &lim, &req, &e), 0);
	ck_assert_int_eq(req->rf_kind, API__RF_JSON_SCHEMA);
	ck_assert_int_eq(api__prepare_structured(req, &e), 0);
	ck_assert_ptr_nonnull(req->sp.grammar);
	expect(req->sp.grammar, "{\"a\":true}", 1);
	expect(req->sp.grammar, "{}", -1);
	api_request_free(req);
	ck_assert_int_eq(
	    api_request_parse(API_COMPLETION, bad_type, strlen(bad_type), &lim, &req, &e), 400);
	ck_assert_str_eq(e.param, "response_format.type");
	{
		/* The name is what OpenAI allows: 1-64 of [a-zA-Z0-9_-]. */
		const char *bad_name = "{\"prompt\":\"x\",\"response_format\":{\"type\":"
		                       "\"json_schema\",\"json_schema\":{\"name\":\"a b/c\"}}}";
		ck_assert_int_eq(
		    api_request_parse(API_COMPLETION, bad_name, strlen(bad_name), &lim, &req, &e),
		    400);
		ck_assert_str_eq(e.param, "response_format.json_schema.name");
	}
	{
		/* schema null: absent (any object), as null is for optional fields */
		const char *null_schema = "{\"prompt\":\"x\",\"response_format\":{\"type\":"
		                          "\"json_schema\",\"json_schema\":{\"name\":\"t\","
		                          "\"schema\":null}}}";
		ck_assert_int_eq(api_request_parse(API_COMPLETION, null_schema, strlen(null_schema),
		                                   &lim, &req, &e),
		                 0);
		ck_assert_int_eq(api__prepare_structured(req, &e), 0);
		expect(req->sp.grammar, "{\"z\":[1]}", 1);
		expect(req->sp.grammar, "[1]", -1);
		api_request_free(req);
	}
}
END_TEST

START_TEST(test_json_object_mode)
{
	api_error e;
	api__sc *c = api__sc_create();
	mllm_grammar *g = NULL;
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(api__sc_finish(c, api__sc_any_object(c), "response_format", &g, &e), 0);
	api__sc_free(c);
	expect(g, "{}", 1);
	expect(g, "{\"a\":[1,{\"b\":null},\"c\"],\"d\":-1.5E+2}", 1);
	expect(g, "[1]", -1);
	expect(g, "{\"a\":tru}", -1);
	mllm_grammar_unref(g);
}
END_TEST

/* The context-free masks (grammar.c) against whole walks: a document with
 * many free strings in different places (properties, array items, nested
 * objects), fed token by token (longest allowed token that spells the next
 * bytes, as a model might pick), must see at every step the same mask from
 * a matcher with context-free masks as from one without, and the former
 * must actually have used them. */
START_TEST(test_context_free_masks)
{
	static const char schema[] =
	    "{\"type\":\"object\",\"properties\":{"
	    "\"name\":{\"type\":\"string\"},\"city\":{\"type\":\"string\"},"
	    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
	    "\"people\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
	    "\"first\":{\"type\":\"string\"},\"last\":{\"type\":\"string\"},"
	    "\"age\":{\"type\":\"integer\"}},\"required\":[\"first\",\"last\",\"age\"]}},"
	    "\"note\":{\"type\":\"string\",\"maxLength\":12}},"
	    "\"required\":[\"name\",\"city\",\"tags\",\"people\",\"note\"]}";
	static const char doc[] =
	    "{\"name\":\"Ada Lovelace\",\"city\":\"London, \\\"UK\\\"\","
	    "\"tags\":[\"math\",\"poetry\",\"engines\"],\"people\":["
	    "{\"first\":\"Charles\",\"last\":\"Babbage\",\"age\":79},"
	    "{\"first\":\"Mary\",\"last\":\"Somerville\",\"age\":91}],\"note\":\"é ok\"}";
	char path[512], err[256];
	mllm_tokenizer *tok;
	mllm_vtrie *t;
	mllm_gmatch *a, *b;
	api_error e;
	mllm_grammar *g = compile_text(schema, &e);
	size_t len = strlen(doc), pos = 0;
	int32_t n_vocab, eos, n_words;
	int64_t walks, hits, cf_hits;
	ck_assert_ptr_nonnull(g);
	mllm_test_path(path, sizeof path, "tokenizer/llama2/tokenizer.model");
	MLLM_REQUIRE_FIXTURE(path);
	ck_assert_int_eq(mllm_tokenizer_load(path, &tok, err, sizeof err), 0);
	ck_assert_int_eq(mllm_vtrie_create(tok, &t), 0);
	n_vocab = mllm_tokenizer_n_vocab(tok);
	n_words = (n_vocab + 31) / 32;
	eos = mllm_tokenizer_eos(tok);
	ck_assert_int_eq(mllm_gmatch_create(g, t, eos, &a), 0);
	ck_assert_int_eq(mllm_gmatch_create(g, t, eos, &b), 0);
	mllm_gmatch_set_context_free(b, false);
	for (;;) {
		const uint32_t *ma, *mb;
		int32_t na = mllm_gmatch_mask(a, &ma), nb = mllm_gmatch_mask(b, &mb);
		int32_t best = -1;
		size_t best_n = 0;
		ck_assert_int_gt(na, 0);
		ck_assert_int_eq(na, nb);
		ck_assert_msg(memcmp(ma, mb, (size_t)n_words * sizeof *ma) == 0,
		              "masks differ after %zu bytes", pos);
		if (pos == len) {
			ck_assert(ma[eos / 32] >> (eos % 32) & 1u);
			break;
		}
		ck_assert(!(ma[eos / 32] >> (eos % 32) & 1u));
		for (int32_t id = 0; id < n_vocab; id++) {
			char buf[64];
			size_t n;
			if (!(ma[id / 32] >> (id % 32) & 1u) || id == eos)
				continue;
			n = mllm_tokenizer_token_bytes(tok, id, buf, sizeof buf);
			if (n > best_n && n <= len - pos && memcmp(buf, doc + pos, n) == 0) {
				best = id;
				best_n = n;
			}
		}
		ck_assert_msg(best >= 0, "no allowed token spells the text at byte %zu", pos);
		ck_assert_int_eq(mllm_gmatch_accept(a, best), 0);
		ck_assert_int_eq(mllm_gmatch_accept(b, best), 0);
		pos += best_n;
	}
	mllm_gmatch_stats(a, &walks, &hits, &cf_hits);
	ck_assert_int_gt(cf_hits, 0);
	mllm_gmatch_stats(b, &walks, &hits, &cf_hits);
	ck_assert_int_eq(cf_hits, 0);
	mllm_gmatch_free(a);
	mllm_gmatch_free(b);
	mllm_vtrie_free(t);
	mllm_tokenizer_free(tok);
	mllm_grammar_unref(g);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("schema");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_object_required_optional);
	tcase_add_test(tc, test_strings_and_numbers);
	tcase_add_test(tc, test_enum_const_anyof_ref);
	tcase_add_test(tc, test_pattern_and_format);
	tcase_add_test(tc, test_nullable);
	tcase_add_test(tc, test_number_ranges);
	tcase_add_test(tc, test_date_time_utc);
	tcase_add_test(tc, test_draft07_tuple_and_record);
	tcase_add_test(tc, test_unsupported_keywords);
	tcase_add_test(tc, test_request_response_format);
	tcase_add_test(tc, test_json_object_mode);
	tcase_add_test(tc, test_context_free_masks);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
