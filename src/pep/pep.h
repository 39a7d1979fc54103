/* The PEP (policy enforcement point): the model every part of the proxy shares.
 *
 * A request arrives as a frame (frame.c), is checked against the policy (request.c,
 * policy.c, addr.c), fetched upstream (upstream.c: resolve once, pin, re-check, follow
 * redirects itself) and answered as a frame; one audit line records it (audit.c). The
 * server (server.c) owns connections and limits. The guest only ever learns the error
 * class (enum px_pep_code) and a message that names no internal address. */
#ifndef PX_PEP_H
#define PX_PEP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct px_err;
struct px_manifest;

/* The error classes of the frame protocol (DESIGN.md); PX_PEP_OK means "no error". */
enum px_pep_code {
	PX_PEP_OK = 0,
	PX_PEP_DENIED_BY_POLICY,
	PX_PEP_SSRF_BLOCKED,
	PX_PEP_REDIRECT_BLOCKED,
	PX_PEP_CONSTRAINT_VIOLATION,
	PX_PEP_INVALID_METHOD,
	PX_PEP_INVALID_URL,
	PX_PEP_HTTP_ERROR,
};

/* "denied_by_policy" etc.; NULL for PX_PEP_OK. */
const char *px_pep_code_name(enum px_pep_code code);

struct px_pep_header {
	char *name;
	char *value;
};

struct px_pep_headers {
	struct px_pep_header *v;
	size_t n;
};

/* One request as the guest sent it (after frame decoding, before any policy check). */
struct px_pep_request {
	char *id; /* NULL: the frame had no id; answers keep request order */
	char *method;
	char *url;
	struct px_pep_headers headers;
	unsigned char *body;
	size_t body_len;
};

/* One answer. When code != PX_PEP_OK, status is 0 and message says why in words the
 * guest may see. */
struct px_pep_response {
	int status;
	struct px_pep_headers headers;
	unsigned char *body;
	size_t body_len;
	enum px_pep_code code;
	char *message;
};

/* A resolved or literal destination address, binary (never a string). */
struct px_pep_addr {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} u;
};

#define PX_PEP_MAX_ADDRS 16

struct px_pep_addrs {
	struct px_pep_addr v[PX_PEP_MAX_ADDRS];
	size_t n;
};

/* The seams tests replace: name resolution and the host's own addresses. Both must be
 * safe to call from several threads. */
struct px_pep_env {
	/* Resolves 'host' (never an IP literal) within timeout_ms. Returns 0 with at least
	 * one address, or -1 with an error (the request becomes http_error). */
	int (*resolve)(void *ctx, const char *host, uint32_t timeout_ms, struct px_pep_addrs *ret,
	               struct px_err **err);
	/* The addresses of the host's own interfaces, denied like loopback. */
	int (*local_addrs)(void *ctx, struct px_pep_addrs *ret, struct px_err **err);
	void *ctx;
};

/* What one request did, for its audit line. Filled by the policy and upstream code. */
#define PX_PEP_MAX_HOPS 10
struct px_pep_trace {
	const char *decision; /* "allow", "deny", or "report" (denied, allowed by mode: report) */
	char reason[96];      /* sub-reason: rule or address class, e.g. "loopback" */
	char scheme[8];
	char *host;
	uint16_t port;
	char *path; /* path only, query values dropped when configured */
	struct px_pep_addrs resolved;
	struct px_pep_addr pinned;
	bool has_pinned;
	char *hops[PX_PEP_MAX_HOPS]; /* redirect targets followed, as sanitised URLs */
	size_t n_hops;
	uint64_t bytes_out; /* request body sent upstream */
	uint64_t bytes_in;  /* response body received */
	double resolve_ms, connect_ms, total_ms;
};

void px_pep_request_free(struct px_pep_request *r);
void px_pep_response_free(struct px_pep_response *r);
void px_pep_trace_free(struct px_pep_trace *t);
void px_pep_headers_free(struct px_pep_headers *h);

#endif
