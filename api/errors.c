/*
 * errors.c — every error the daemon answers with, in the one OpenAI shape
 * {"error":{"message","type","param","code"}}, and the mapping from engine
 * codes and HTTP statuses to what the SDKs expect (they pick their typed
 * error from the status alone; `type` and `code` are for humans and logs).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api_internal.h"

static const char *type_for_status(int status)
{
	switch (status) {
	case 401:
		return "authentication_error";
	case 403:
		return "permission_error";
	case 429:
		return "rate_limit_error";
	default:
		return status >= 500 ? "server_error" : "invalid_request_error";
	}
}

int api_error_set(api_error *e, int status, const char *param, const char *code, const char *fmt,
                  ...)
{
	va_list ap;
	memset(e, 0, sizeof *e);
	e->status = status;
	e->type = type_for_status(status);
	e->code = code;
	if (param)
		snprintf(e->param, sizeof e->param, "%s", param);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
	return status;
}

int api_error_from_mllm(api_error *e, int mllm_err)
{
	switch (mllm_err) {
	case MLLM_EINVAL:
	case MLLM_ERANGE:
		return api_error_set(e, 400, NULL, NULL, "Invalid request: %s.",
		                     mllm_strerror(mllm_err));
	case MLLM_ETOOLONG:
		return api_error_set(
		    e, 400, NULL, "context_length_exceeded",
		    "The prompt plus max_tokens exceeds the model's context length.");
	case MLLM_ENOTFOUND:
		return api_error_set(e, 404, NULL, "not_found", "Not found.");
	case MLLM_EOVERLOADED:
	case MLLM_ENOMEM:
		api_error_set(e, 503, NULL, "overloaded",
		              "The server is overloaded (%s); please retry shortly.",
		              mllm_strerror(mllm_err));
		e->retry_after_s = 0; /* the server's retry_after_s */
		return 503;
	case MLLM_ESHUTDOWN:
		api_error_set(e, 503, NULL, "shutting_down",
		              "The server is shutting down; please retry on another replica.");
		e->retry_after_s = 0; /* the server's retry_after_s */
		return 503;
	case MLLM_ECANCELLED:
		return api_error_set(e, 503, NULL, "cancelled", "The request was cancelled.");
	default:
		return api_error_set(e, 500, NULL, "internal_error", "Internal error: %s.",
		                     mllm_strerror(mllm_err));
	}
}

int api_error_model_not_found(api_error *e, const char *model)
{
	return api_error_set(e, 404, "model", "model_not_found",
	                     "The model '%s' does not exist or is not loaded.", model ? model : "");
}

static json_t *error_json(const api_error *e)
{
	json_t *inner = json_object();
	json_t *outer = json_object();
	MLLM_ASSERT(inner && outer);
	json_object_set_new(inner, "message",
	                    api__json_text(e->message, strnlen(e->message, sizeof e->message)));
	json_object_set_new(inner, "type",
	                    json_string(e->type ? e->type : type_for_status(e->status)));
	json_object_set_new(inner, "param",
	                    e->param[0]
	                        ? api__json_text(e->param, strnlen(e->param, sizeof e->param))
	                        : json_null());
	json_object_set_new(inner, "code", e->code ? json_string(e->code) : json_null());
	json_object_set_new(outer, "error", inner);
	return outer;
}

int api_error_render(const api_error *e, mllm_buf *out)
{
	json_t *j = error_json(e);
	int rc = api__json_append(j, out);
	json_decref(j);
	return rc;
}

int api_error_render_sse(const api_error *e, mllm_buf *out)
{
	json_t *j = error_json(e);
	int rc = api__sse_append(j, out);
	json_decref(j);
	return rc;
}
