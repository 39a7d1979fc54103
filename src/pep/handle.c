#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "core/common.h"

#include "core/clock.h"
#include "pep/addr.h"
#include "pep/handle.h"
#include "pep/policy.h"
#include "pep/target.h"
#include "pep/upstream.h"

/* The host's own addresses are read at most every LOCAL_TTL_MS (a netlink dump per request
 * costs more than the rest of the decision); an address added to an interface is denied
 * within that time. */
#define LOCAL_TTL_MS 1000.0

struct px_pep_handler {
	struct px_pep_policy *policy;
	struct px_pep_env env;
	char *ca_file;
	pthread_mutex_t local_lock;
	struct px_pep_addrs local; /* under local_lock, with local_at */
	double local_at;           /* when local was read; 0: never */
};

int px_pep_handler_new(const struct px_manifest *policy, const struct px_pep_env *env,
                       const char *ca_file, struct px_pep_handler **ret, struct px_err **err)
{
	/* libcurl's global state must exist before worker threads use it. */
	CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (c != CURLE_OK)
		return px_err_set(err, PX_EXIT_FAILURE, "cannot initialise libcurl: %s",
		                  curl_easy_strerror(c));
	struct px_pep_handler *h = xcalloc(1, sizeof(*h));
	if (px_pep_policy_new(policy, &h->policy, err) < 0) {
		free(h);
		return -1;
	}
	if (env)
		h->env = *env;
	else
		px_pep_env_default(&h->env);
	if (ca_file)
		h->ca_file = xstrdup(ca_file);
	pthread_mutex_init(&h->local_lock, NULL);
	*ret = h;
	return 0;
}

void px_pep_handler_free(struct px_pep_handler *h)
{
	if (!h)
		return;
	px_pep_policy_free(h->policy);
	free(h->ca_file);
	pthread_mutex_destroy(&h->local_lock);
	free(h);
}

static int local_addrs(struct px_pep_handler *h, struct px_pep_addrs *ret, struct px_err **err)
{
	int rc = 0;
	pthread_mutex_lock(&h->local_lock);
	double t = (px_mono_seconds() * 1000.0);
	if (h->local_at == 0 || t - h->local_at >= LOCAL_TTL_MS) {
		struct px_pep_addrs a = {0};
		rc = h->env.local_addrs(h->env.ctx, &a, err);
		if (rc == 0) {
			h->local = a;
			h->local_at = t;
		}
	}
	if (rc == 0)
		*ret = h->local;
	pthread_mutex_unlock(&h->local_lock);
	return rc;
}

/* The state of one request while it is decided and fetched. */
struct run {
	struct px_pep_handler *h;
	const struct px_pep_limits *lim;
	struct px_pep_response *resp;
	struct px_pep_trace *trace;
	struct px_pep_addrs local;
	double t0;
	bool reported; /* mode: report let a denial through */
	/* The last name resolved, so that a redirect back to the same host uses the same
	 * answers instead of asking DNS again (a second answer could differ). */
	char *resolved_host;
	struct px_pep_addrs resolved;
};

static void set_reason(struct px_pep_trace *t, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void set_reason(struct px_pep_trace *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->reason, sizeof(t->reason), fmt, ap);
	va_end(ap);
}

/* Ends the request with an error the guest sees as 'code' + 'msg'. */
static void deny(struct run *r, enum px_pep_code code, const char *msg, const char *reason)
{
	px_pep_response_free(r->resp);
	r->resp->code = code;
	r->resp->message = xstrdup(msg && msg[0] ? msg : px_pep_code_name(code));
	r->trace->decision = "deny";
	if (reason && reason[0])
		set_reason(r->trace, "%s", reason);
	else if (!r->trace->reason[0])
		set_reason(r->trace, "%s", px_pep_code_name(code));
}

/* A policy denial: in mode: report it is recorded and the request goes on (returns
 * true); in enforce mode the request ends (returns false). */
static bool policy_denial(struct run *r, enum px_pep_code code, const char *msg, const char *reason)
{
	if (r->lim->report_only) {
		if (!r->reported)
			set_reason(r->trace, "would be %s: %s", px_pep_code_name(code),
			           reason && reason[0] ? reason : msg);
		r->reported = true;
		return true;
	}
	deny(r, code, msg, reason);
	return false;
}

static void trace_add_resolved(struct px_pep_trace *t, const struct px_pep_addrs *a)
{
	for (size_t i = 0; i < a->n; i++) {
		bool seen = false;
		for (size_t j = 0; j < t->resolved.n; j++)
			seen = seen || px_pep_addr_equal(&t->resolved.v[j], &a->v[i]);
		if (!seen && t->resolved.n < PX_PEP_MAX_ADDRS)
			t->resolved.v[t->resolved.n++] = a->v[i];
	}
}

/* scheme://host:port/path, no query: how hops appear in the audit line. */
static char *target_summary(const struct px_pep_target *t)
{
	bool v6 = t->host_is_ip && t->ip.family == AF_INET6;
	return xasprintf("%s://%s%s%s:%u%s", t->scheme, v6 ? "[" : "", t->host, v6 ? "]" : "",
	                 (unsigned)t->port, t->path ? t->path : "/");
}

static bool same_origin(const struct px_pep_target *a, const struct px_pep_target *b)
{
	return strcmp(a->scheme, b->scheme) == 0 && strcmp(a->host, b->host) == 0 &&
	       a->port == b->port;
}

static void headers_remove(struct px_pep_headers *hs, const char *const *names, size_t n_names)
{
	size_t k = 0;
	for (size_t i = 0; i < hs->n; i++) {
		bool drop = false;
		for (size_t j = 0; j < n_names; j++)
			drop = drop || strcasecmp(hs->v[i].name, names[j]) == 0;
		if (drop) {
			free(hs->v[i].name);
			free(hs->v[i].value);
		} else {
			hs->v[k++] = hs->v[i];
		}
	}
	hs->n = k;
}

/* Decides the addresses target t may be dialled at: the literal, or the answers of one
 * resolution, every one judged (strict: one denied answer denies the name). They are
 * tried in order while they are unreachable. Returns false when the request has ended
 * (r->resp filled). */
static bool choose_address(struct run *r, const struct px_pep_target *t, bool redirect,
                           struct px_pep_addrs *ret)
{
	struct px_pep_handler *h = r->h;
	enum px_pep_code deny_code = redirect ? PX_PEP_REDIRECT_BLOCKED : PX_PEP_SSRF_BLOCKED;
	char reason[96];

	if (t->host_is_ip) {
		/* px_pep_target_check already judged the literal; an address in a denied
		 * class that got this far is an allow_addresses exception or reported (and is
		 * exempted from the callbacks' class check, see fetch_hop). */
		*ret = (struct px_pep_addrs){.v = {t->ip}, .n = 1};
		return true;
	}

	struct px_pep_addrs answers = {0};
	if (r->resolved_host && strcmp(r->resolved_host, t->host) == 0) {
		answers = r->resolved;
	} else {
		double remaining =
		        (double)r->lim->total_timeout_ms - ((px_mono_seconds() * 1000.0) - r->t0);
		uint32_t budget = remaining < 1 ? 1 : (uint32_t)remaining;
		struct px_err *err = NULL;
		double t1 = (px_mono_seconds() * 1000.0);
		int rc = h->env.resolve(h->env.ctx, t->host, budget, &answers, &err);
		r->trace->resolve_ms += (px_mono_seconds() * 1000.0) - t1;
		if (rc < 0 || answers.n == 0) {
			char msg[320];
			snprintf(msg, sizeof(msg), "cannot resolve '%s'", t->host);
			deny(r, PX_PEP_HTTP_ERROR, msg, err ? err->msg : "resolution failed");
			px_err_free(err);
			return false;
		}
		free(r->resolved_host);
		r->resolved_host = xstrdup(t->host);
		r->resolved = answers;
	}
	trace_add_resolved(r->trace, &answers);

	for (size_t i = 0; i < answers.n; i++) {
		reason[0] = '\0';
		enum px_pep_code c = px_pep_policy_check_addr(h->policy, &answers.v[i], t->port,
		                                              &r->local, reason, sizeof(reason));
		if (c == PX_PEP_OK)
			continue;
		char why[160];
		snprintf(why, sizeof(why), "resolved address in a denied class (%s)", reason);
		char msg[512];
		snprintf(msg, sizeof(msg), "'%s' resolves to an address that is not allowed (%s)",
		         t->host, reason);
		if (!policy_denial(r, redirect ? deny_code : c, msg, why))
			return false;
	}
	*ret = answers;
	return true;
}

/* An RFC 9110 token: what a method must be to go on the wire at all. */
static bool is_token(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!strchr("!#$%&'*+-.^_`|~", *s) && !(*s >= '0' && *s <= '9') &&
		    !(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z'))
			return false;
	return true;
}

/* At most this many answers of one name are tried when the first ones are unreachable. */
#define MAX_ATTEMPTS 3

/* Fetches one hop from the first reachable candidate address. Returns false when the
 * request has ended with an error (r->resp filled). */
static bool fetch_hop(struct run *r, const struct px_pep_target *t, const struct px_pep_addrs *cand,
                      const char *method, const struct px_pep_headers *hdrs,
                      const unsigned char *body, size_t body_len,
                      struct px_pep_upstream_result *ret)
{
	char msg[512] = "";
	for (size_t i = 0; i < cand->n; i++) {
		struct px_pep_addr pin = cand->v[i];
		r->trace->pinned = pin;
		r->trace->has_pinned = true;
		double remaining =
		        (double)r->lim->total_timeout_ms - ((px_mono_seconds() * 1000.0) - r->t0);
		if (remaining < 1) {
			deny(r, PX_PEP_HTTP_ERROR, "upstream timed out", "total timeout");
			return false;
		}
		bool unreachable = false;
		struct px_pep_hop hp = {
		        .url = t->url,
		        .host = t->host_is_ip ? NULL : t->host,
		        .port = t->port,
		        .pinned = pin,
		        /* Judged above: a denied class here is an allow_addresses exception
		         * or mode: report; the callbacks still require the pin itself. */
		        .pinned_exempt = px_pep_addr_denied(&pin, &r->local) != NULL,
		        .local = &r->local,
		        .method = method,
		        .headers = hdrs,
		        .body = body,
		        .body_len = body_len,
		        .max_response_bytes = r->lim->max_response_bytes,
		        .max_headers = r->lim->max_headers,
		        .max_header_bytes = r->lim->max_header_bytes,
		        .connect_timeout_ms = r->lim->connect_timeout_ms,
		        .timeout_ms = (uint32_t)remaining,
		        .ca_file = r->h->ca_file,
		        .ret_unreachable = &unreachable,
		};
		enum px_pep_code code = px_pep_upstream_fetch(&hp, ret, msg, sizeof(msg));
		if (code == PX_PEP_OK)
			return true;
		if (!unreachable || i + 1 >= cand->n || i + 1 >= MAX_ATTEMPTS) {
			deny(r, code, msg, msg);
			return false;
		}
	}
	deny(r, PX_PEP_HTTP_ERROR, "upstream unreachable", "no address");
	return false;
}

static bool is_redirect(int status)
{
	return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static void run_request(struct run *r, const struct px_pep_request *req)
{
	struct px_pep_handler *h = r->h;
	struct px_pep_trace *tr = r->trace;
	char msg[512] = "", reason[96] = "";

	struct px_err *err = NULL;
	if (local_addrs(h, &r->local, &err) < 0) {
		/* Without the host's own addresses the SSRF model is incomplete: fail closed. */
		deny(r, PX_PEP_HTTP_ERROR, "the proxy cannot judge destinations now",
		     err ? err->msg : "local addresses unavailable");
		px_err_free(err);
		return;
	}

	struct px_pep_headers hdrs = {0};
	enum px_pep_code code = px_pep_request_check(h->policy, req, &hdrs, msg, sizeof(msg));
	if (code == PX_PEP_INVALID_METHOD && r->lim->report_only && is_token(req->method) &&
	    !px_pep_policy_method_allowed(h->policy, req->method) &&
	    px_pep_policy_method_allowed(h->policy, "GET")) {
		/* mode: report: a well-formed method off the allowlist is reported, and the
		 * rest of the request is checked as if it were allowed. A method that is no
		 * token cannot be sent at all and stays refused. */
		struct px_pep_request as_get = *req;
		as_get.method = (char *)"GET";
		char m2[512];
		code = px_pep_request_check(h->policy, &as_get, &hdrs, m2, sizeof(m2));
		if (code == PX_PEP_OK)
			policy_denial(r, PX_PEP_INVALID_METHOD, msg, msg);
		else
			snprintf(msg, sizeof(msg), "%s", m2);
	}
	if (code != PX_PEP_OK) {
		deny(r, code, msg, msg);
		return;
	}

	struct px_pep_target t = {0};
	code = px_pep_target_parse(h->policy, req->url, &t, msg, sizeof(msg));
	if (code != PX_PEP_OK) {
		px_pep_headers_free(&hdrs);
		deny(r, code, msg, msg);
		return;
	}
	snprintf(tr->scheme, sizeof(tr->scheme), "%s", t.scheme);
	tr->host = xstrdup(t.host);
	tr->port = t.port;
	tr->path = xstrdup(t.path ? t.path : "/");

	char *method = xstrdup(req->method);
	const unsigned char *body = req->body;
	size_t body_len = req->body_len;
	/* An empty body is no body (a GET says no Content-Length), except for the methods
	 * that carry one: POST with an empty body says Content-Length: 0. */
	bool has_body = req->body_len > 0 || strcmp(method, "POST") == 0 ||
	                strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0;
	static const unsigned char empty[1];
	if (has_body && !body)
		body = empty;

	unsigned max_hops =
	        r->lim->max_redirects < PX_PEP_MAX_HOPS ? r->lim->max_redirects : PX_PEP_MAX_HOPS;
	for (unsigned hop = 0;; hop++) {
		bool redirect = hop > 0;
		reason[0] = '\0';
		code = px_pep_target_check(h->policy, &t, &r->local, reason, sizeof(reason));
		if (code != PX_PEP_OK) {
			char m[400];
			if (code == PX_PEP_SSRF_BLOCKED)
				snprintf(m, sizeof(m), "destination address is not allowed (%s)",
				         reason);
			else
				snprintf(m, sizeof(m), "host '%s' port %u is not allowed by policy",
				         t.host, (unsigned)t.port);
			if (redirect) {
				char m2[480];
				snprintf(m2, sizeof(m2), "redirect blocked: %s", m);
				if (!policy_denial(r, PX_PEP_REDIRECT_BLOCKED, m2, reason))
					break;
			} else if (!policy_denial(r, code, m, reason)) {
				break;
			}
		}

		struct px_pep_addrs cand;
		if (!choose_address(r, &t, redirect, &cand))
			break;
		struct px_pep_upstream_result res = {0};
		if (!fetch_hop(r, &t, &cand, method, &hdrs, has_body ? body : NULL,
		               has_body ? body_len : 0, &res))
			break;
		tr->bytes_out += res.bytes_out;
		tr->connect_ms += res.connect_ms;

		if (!is_redirect(res.status) || !res.location) {
			tr->bytes_in = res.body_len;
			r->resp->status = res.status;
			r->resp->headers = res.headers;
			r->resp->body = res.body;
			r->resp->body_len = res.body_len;
			r->resp->code = PX_PEP_OK;
			res.headers = (struct px_pep_headers){0};
			res.body = NULL;
			px_pep_upstream_result_free(&res);
			tr->decision = r->reported ? "report" : "allow";
			break;
		}

		/* A redirect: the PEP follows it itself, every hop judged like the first. */
		if (hop >= max_hops) {
			px_pep_upstream_result_free(&res);
			snprintf(msg, sizeof(msg), "redirect blocked: more than %u redirects",
			         max_hops);
			deny(r, PX_PEP_REDIRECT_BLOCKED, msg, "too many redirects");
			break;
		}
		struct px_pep_target next = {0};
		code = px_pep_target_redirect(h->policy, &t, res.location, &next, msg, sizeof(msg));
		int status = res.status;
		px_pep_upstream_result_free(&res);
		if (code != PX_PEP_OK) {
			char m2[600];
			snprintf(m2, sizeof(m2), "redirect blocked: %s", msg);
			deny(r, PX_PEP_REDIRECT_BLOCKED, m2, msg);
			break;
		}
		if (tr->n_hops < PX_PEP_MAX_HOPS)
			tr->hops[tr->n_hops++] = target_summary(&next);
		if (strcmp(t.scheme, "https") == 0 && strcmp(next.scheme, "http") == 0 &&
		    !r->lim->allow_https_to_http &&
		    !policy_denial(r, PX_PEP_REDIRECT_BLOCKED,
		                   "redirect blocked: https to http downgrade", "https to http")) {
			px_pep_target_free(&next);
			break;
		}
		if (!same_origin(&t, &next)) {
			static const char *const creds[] = {"Authorization", "Cookie",
			                                    "Proxy-Authorization"};
			headers_remove(&hdrs, creds, PX_ARRAY_SIZE(creds));
		}
		/* 303 makes every method but HEAD a GET; 301 and 302 do so for POST (what
		 * browsers do); 307 and 308 keep the method and the body. */
		if ((status == 303 && strcmp(method, "HEAD") != 0 && strcmp(method, "GET") != 0) ||
		    ((status == 301 || status == 302) && strcmp(method, "POST") == 0)) {
			free(method);
			method = xstrdup("GET");
			has_body = false;
			body = NULL;
			body_len = 0;
			static const char *const content[] = {"Content-Type", "Content-Encoding",
			                                      "Content-Language",
			                                      "Content-Location"};
			headers_remove(&hdrs, content, PX_ARRAY_SIZE(content));
		}
		px_pep_target_free(&t);
		t = next;
	}
	free(method);
	px_pep_target_free(&t);
	px_pep_headers_free(&hdrs);
}

void px_pep_handle(struct px_pep_handler *h, const struct px_pep_request *req,
                   struct px_pep_response *resp, struct px_pep_trace *trace)
{
	*resp = (struct px_pep_response){0};
	*trace = (struct px_pep_trace){.decision = "deny"};
	struct run r = {
	        .h = h,
	        .lim = px_pep_policy_limits(h->policy),
	        .resp = resp,
	        .trace = trace,
	        .t0 = (px_mono_seconds() * 1000.0),
	};
	run_request(&r, req);
	free(r.resolved_host);
	trace->total_ms = (px_mono_seconds() * 1000.0) - r.t0;
}
