/*
 * structured.c — the request fields that constrain generation:
 * response_format (text, json_object, json_schema). Parse (loop thread)
 * only checks their shape and keeps the schema; prepare (a prep thread)
 * compiles it with schema.c into the grammar the engine enforces.
 */
#include <string.h>

#include "api_internal.h"

int api__parse_structured(api_request *req, json_t *root, api_error *e)
{
	json_t *rf = json_object_get(root, "response_format"), *t, *js, *schema, *strict;
	const char *type;
	if (!rf || json_is_null(rf))
		return 0;
	if (!json_is_object(rf))
		return api_error_set(e, 400, "response_format", "invalid_type",
		                     "'response_format' must be an object.");
	t = json_object_get(rf, "type");
	type = json_string_value(t);
	if (!type)
		return api_error_set(e, 400, "response_format.type", "invalid_type",
		                     "'response_format.type' must be a string.");
	if (strcmp(type, "text") == 0)
		return 0;
	if (strcmp(type, "json_object") == 0) {
		req->rf_kind = API__RF_JSON_OBJECT;
		return 0;
	}
	if (strcmp(type, "json_schema") != 0)
		return api_error_set(e, 400, "response_format.type", "invalid_value",
		                     "'response_format.type' must be 'text', 'json_object' or "
		                     "'json_schema', got '%s'.",
		                     type);
	js = json_object_get(rf, "json_schema");
	if (!json_is_object(js))
		return api_error_set(e, 400, "response_format.json_schema", "invalid_type",
		                     "'response_format.json_schema' must be an object with "
		                     "'name' and 'schema'.");
	if (!json_is_string(json_object_get(js, "name")))
		return api_error_set(e, 400, "response_format.json_schema.name", "invalid_type",
		                     "'response_format.json_schema.name' must be a string.");
	if (!api__name_ok(json_string_value(json_object_get(js, "name")),
	                  json_string_length(json_object_get(js, "name"))))
		return api_error_set(
		    e, 400, "response_format.json_schema.name", "invalid_value",
		    "'response_format.json_schema.name' must be 1-64 characters of "
		    "a-z, A-Z, 0-9, '_' and '-'.");
	strict = json_object_get(js, "strict");
	if (strict && !json_is_null(strict) && !json_is_boolean(strict))
		return api_error_set(e, 400, "response_format.json_schema.strict", "invalid_type",
		                     "'response_format.json_schema.strict' must be a boolean.");
	schema = json_object_get(js, "schema");
	if (json_is_null(schema))
		schema = NULL; /* null for an optional field: absent */
	if (schema && !json_is_object(schema) && !json_is_boolean(schema))
		return api_error_set(e, 400, "response_format.json_schema.schema", "invalid_type",
		                     "'response_format.json_schema.schema' must be an object.");
	req->rf_kind = API__RF_JSON_SCHEMA;
	/* No schema: any JSON value is what OpenAI's docs imply; we keep to
	 * objects, as json_object does. */
	req->rf_schema = schema ? json_incref(schema) : NULL;
	return 0;
}

int api__prepare_structured(api_request *req, api_error *e)
{
	api__sc *c;
	int32_t value;
	int rc;
	if (req->rf_kind == API__RF_NONE)
		return 0;
	c = api__sc_create();
	if (!c)
		return api_error_set(e, 503, NULL, "overloaded", "Out of memory for the grammar.");
	if (req->rf_kind == API__RF_JSON_OBJECT || !req->rf_schema)
		value = api__sc_any_object(c);
	else
		value = api__sc_schema(c, req->rf_schema, req->rf_schema, "response_format", e);
	if (value < 0) {
		api__sc_free(c);
		return e->status;
	}
	rc = api__sc_finish(c, value, "response_format", &req->grammar, e);
	api__sc_free(c);
	if (rc)
		return rc;
	req->sp.grammar = req->grammar;
	return 0;
}

void api__structured_free(api_request *req)
{
	json_decref(req->rf_schema);
	mllm_grammar_unref(req->grammar);
}
