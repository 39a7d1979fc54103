/* One upstream hop with libcurl, dialling only the pinned address. The URL handle the
 * policy judged goes to curl as is (CURLOPT_CURLU), the host is pinned to the address the
 * PEP chose (CURLOPT_RESOLVE), and two callbacks re-check what curl actually does: the
 * open-socket callback classifies the sockaddr and requires it to equal the pin, the
 * pre-request callback requires the connection's primary IP and port to equal it.
 * Redirects are not followed here (the caller re-checks every hop); limits on the
 * response (body, header count and bytes) are enforced while it streams. */
#ifndef PX_PEP_UPSTREAM_H
#define PX_PEP_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "pep/pep.h"

struct px_pep_hop {
	CURLU *url;       /* the parsed target, given to curl unchanged */
	const char *host; /* the URL's host for the pin; NULL when the host is an IP literal */
	uint16_t port;
	struct px_pep_addr pinned;
	/* The pin is an address the caller already decided to dial although a class denies
	 * it (an exact allow_addresses entry, or mode: report): the callbacks then only
	 * require equality with the pin, without classifying again. */
	bool pinned_exempt;
	const struct px_pep_addrs *local; /* the host's own addresses, denied */
	const char *method;
	const struct px_pep_headers *headers; /* already checked: sent as they are */
	const unsigned char *body;            /* NULL: no request body */
	size_t body_len;
	uint64_t max_response_bytes;
	size_t max_headers;      /* response header lines */
	size_t max_header_bytes; /* response header bytes */
	uint32_t connect_timeout_ms;
	uint32_t timeout_ms; /* what is left of the request's total time */
	const char *ca_file; /* NULL: the system CAs */
	/* Out (may be NULL): set when no connection could be made (refused, unreachable,
	 * connect timeout), so nothing was sent and another address may be tried. */
	bool *ret_unreachable;
};

struct px_pep_upstream_result {
	int status;
	struct px_pep_headers headers; /* end-to-end headers of the final response */
	unsigned char *body;
	size_t body_len;
	char *location; /* the Location header of a response that has one, else NULL */
	uint64_t bytes_out;
	double connect_ms;
};

/* Performs one request. PX_PEP_OK with 'ret' filled (any HTTP status is a success); else
 * ssrf_blocked (a callback refused the address curl was about to use), constraint_violation
 * (the response went over a limit), or http_error (connect, TLS, timeout, reset, malformed
 * response), with 'msg' in words the guest may see (no address). 'ret' is filled only on
 * PX_PEP_OK. Thread-safe: each call uses its own curl handle. */
enum px_pep_code px_pep_upstream_fetch(const struct px_pep_hop *hop,
                                       struct px_pep_upstream_result *ret, char *msg,
                                       size_t msg_len);

void px_pep_upstream_result_free(struct px_pep_upstream_result *r);

#endif
