#include <stdlib.h>

#include "core/common.h"

#include "pep/pep.h"

const char *px_pep_code_name(enum px_pep_code code)
{
	switch (code) {
	case PX_PEP_OK:
		return NULL;
	case PX_PEP_DENIED_BY_POLICY:
		return "denied_by_policy";
	case PX_PEP_SSRF_BLOCKED:
		return "ssrf_blocked";
	case PX_PEP_REDIRECT_BLOCKED:
		return "redirect_blocked";
	case PX_PEP_CONSTRAINT_VIOLATION:
		return "constraint_violation";
	case PX_PEP_INVALID_METHOD:
		return "invalid_method";
	case PX_PEP_INVALID_URL:
		return "invalid_url";
	case PX_PEP_HTTP_ERROR:
		return "http_error";
	}
	return "http_error";
}

void px_pep_headers_free(struct px_pep_headers *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++) {
		free(h->v[i].name);
		free(h->v[i].value);
	}
	free(h->v);
	h->v = NULL;
	h->n = 0;
}

void px_pep_request_free(struct px_pep_request *r)
{
	if (!r)
		return;
	free(r->id);
	free(r->method);
	free(r->url);
	px_pep_headers_free(&r->headers);
	free(r->body);
	*r = (struct px_pep_request){0};
}

void px_pep_response_free(struct px_pep_response *r)
{
	if (!r)
		return;
	px_pep_headers_free(&r->headers);
	free(r->body);
	free(r->message);
	*r = (struct px_pep_response){0};
}

void px_pep_trace_free(struct px_pep_trace *t)
{
	if (!t)
		return;
	free(t->host);
	free(t->path);
	for (size_t i = 0; i < t->n_hops; i++)
		free(t->hops[i]);
	*t = (struct px_pep_trace){0};
}
